//! Group keys: the `group_by` values of an event, joined into one string.

use crate::event::{Event, Field};

/// Separates values in a key; it cannot appear in a field value written as JSON text.
const SEPARATOR: char = '\u{1f}';
/// Stands for an absent tenant (single-tenant deployments send none).
const NO_TENANT: char = '\u{0}';

/// A reusable buffer, so building a key for an existing group allocates nothing.
#[derive(Default)]
pub struct GroupKey(String);

impl GroupKey {
    /// Builds the key; false when a `group_by` field other than `tenant` is absent, in which
    /// case the rule does not count the event (as `stats ... by` does in a SIEM).
    pub fn build(&mut self, fields: &[Field], e: &Event) -> bool {
        self.0.clear();
        for f in fields {
            match f.get(e) {
                Some(v) => v.write_to(&mut self.0),
                None if *f == Field::Tenant => self.0.push(NO_TENANT),
                None => return false,
            }
            self.0.push(SEPARATOR);
        }
        true
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The alert's `group` object: each `group_by` field and its value (null when absent).
pub fn group_json(fields: &[Field], e: &Event) -> serde_json::Map<String, serde_json::Value> {
    fields
        .iter()
        .map(|f| {
            (
                f.to_string(),
                f.get(e).map_or(serde_json::Value::Null, |v| v.to_json()),
            )
        })
        .collect()
}
