//! Group keys: the `group_by` values of an event, joined into one string.

use crate::event::{Event, Field};

/// Separates values in a key; it cannot appear in a field value written as JSON text.
const SEPARATOR: char = '\u{1f}';
/// Stands for an absent value: a tenant (single-tenant deployments send none) or, in `match`
/// rules, any other group field.
const NO_TENANT: char = '\u{0}';

/// A reusable buffer, so building a key for an existing group allocates nothing.
#[derive(Default)]
pub struct GroupKey(String);

impl GroupKey {
    /// Builds the key. For counting rules (`counting`), an absent `group_by` field other than
    /// `tenant` means the rule does not count the event (as `stats ... by` does in a SIEM):
    /// lumping every event without a username into one group would invent attacks. A `match`
    /// rule alerts on every matching event, so there an absent field is just an empty value.
    pub fn build(&mut self, fields: &[Field], e: &Event, counting: bool) -> bool {
        self.0.clear();
        for f in fields {
            match f.get(e) {
                Some(v) => v.write_to(&mut self.0),
                None if *f == Field::Tenant || !counting => self.0.push(NO_TENANT),
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

/// True when one of the key's values is the subject (case-insensitively, as usernames are).
pub fn names(key: &str, subject: &str) -> bool {
    let lower = subject.to_lowercase();
    key.split(SEPARATOR).any(|v| v == subject || v == lower)
}

/// A key's values for people: `tenant|username`, an absent tenant shown as `-`.
pub fn display(key: &str) -> String {
    key.trim_end_matches(SEPARATOR)
        .split(SEPARATOR)
        .map(|v| if v == NO_TENANT.to_string() { "-" } else { v })
        .collect::<Vec<_>>()
        .join("|")
}
