//! `forget` and `export` over the outbox: the alerts waiting for delivery and the dead letters
//! hold their users in the group, the summary and the evidence. Forgetting a subject scrubs
//! it from them rather than dropping the alerts: an alert about an attack stays deliverable,
//! without the subject's events and with every mention of it replaced by [`FORGOTTEN`].

use serde_json::Value;

use super::store::{DEAD_PREFIX, DeadLetter, ENTRY_PREFIX, Entry, OutboxStore};
use crate::state::StateError;
use crate::state::StateWrites;

/// What a mention of a forgotten subject becomes.
pub const FORGOTTEN: &str = "[forgotten]";

/// Characters that continue an identifier (an address, a user id): a subject found inside a
/// longer identifier (`u1` in `u10`, `bob@x.test` in `jimbob@x.test`) is someone else.
fn continues(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '@' | '_' | '-' | '+' | '.')
}

/// Byte ranges of `text` where `subject` stands as a whole identifier, case-insensitively
/// (usernames are compared lower-cased everywhere else too).
fn mentions(text: &str, subject: &str) -> Vec<(usize, usize)> {
    if subject.is_empty() {
        return Vec::new();
    }
    let lower = text.to_lowercase();
    let wanted = subject.to_lowercase();
    // Case mapping that changes lengths (some non-ASCII letters) would shift the ranges:
    // such a text is searched for the exact forms only.
    let (haystack, needles): (&str, Vec<&str>) = if lower.len() == text.len() {
        (&lower, vec![&wanted])
    } else {
        (text, vec![subject, &wanted])
    };
    let mut found = Vec::new();
    for needle in needles {
        for (start, _) in haystack.match_indices(needle) {
            let end = start + needle.len();
            let before = text[..start].chars().next_back();
            let mut after = text[end..].chars();
            // A sentence may end right after an address: "... for bob@x.test."
            let after_ok = match after.next() {
                None => true,
                Some('.') => after.next().is_none_or(|c| !continues(c)),
                Some(c) => !continues(c),
            };
            if before.is_none_or(|c| !continues(c)) && after_ok {
                found.push((start, end));
            }
        }
    }
    found.sort_unstable();
    found.dedup();
    found
}

/// True when some string in `value` (or a key of an object in it) mentions the subject.
pub fn concerns(value: &Value, subject: &str) -> bool {
    match value {
        Value::String(s) => !mentions(s, subject).is_empty(),
        Value::Array(items) => items.iter().any(|v| concerns(v, subject)),
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| !mentions(k, subject).is_empty() || concerns(v, subject)),
        _ => false,
    }
}

/// `text` with every mention of the subject replaced; `None` when there is none.
fn scrub_text(text: &str, subject: &str) -> Option<String> {
    let found = mentions(text, subject);
    if found.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in found {
        if start < at {
            continue;
        }
        out.push_str(&text[at..start]);
        out.push_str(FORGOTTEN);
        at = end;
    }
    out.push_str(&text[at..]);
    Some(out)
}

/// Replaces every mention of the subject in `value`; returns whether anything changed.
fn scrub_value(value: &mut Value, subject: &str) -> bool {
    match value {
        Value::String(s) => match scrub_text(s, subject) {
            Some(clean) => {
                *s = clean;
                true
            }
            None => false,
        },
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, v| scrub_value(v, subject) | changed),
        Value::Object(map) => {
            let mut changed = false;
            let renamed: Vec<String> = map
                .keys()
                .filter(|k| !mentions(k, subject).is_empty())
                .cloned()
                .collect();
            for key in renamed {
                if let Some(v) = map.remove(&key) {
                    map.insert(scrub_text(&key, subject).unwrap_or(key), v);
                    changed = true;
                }
            }
            map.values_mut()
                .fold(changed, |changed, v| scrub_value(v, subject) | changed)
        }
        _ => false,
    }
}

/// Removes the subject from an alert: its events leave the evidence, every other mention is
/// replaced. Returns whether the alert changed.
pub fn scrub_alert(alert: &mut Value, subject: &str) -> bool {
    let mut changed = false;
    if let Some(Value::Array(evidence)) = alert.get_mut("evidence") {
        let before = evidence.len();
        evidence.retain(|e| !concerns(e, subject));
        changed = evidence.len() != before;
    }
    scrub_value(alert, subject) | changed
}

impl OutboxStore {
    /// Scrubs the subject from every stored alert and dead letter into `writes`; returns how
    /// many were changed (an entry too damaged to read that mentions it is deleted).
    pub fn forget(&self, subject: &str, writes: &mut StateWrites) -> Result<usize, StateError> {
        let mut touched = 0;
        for (key, raw) in self.store.scan(ENTRY_PREFIX)? {
            match serde_json::from_slice::<Entry>(&raw) {
                Ok(mut entry) => {
                    if scrub_alert(&mut entry.alert, subject) {
                        writes.put(key, serde_json::to_vec(&entry).expect("an entry encodes"));
                        touched += 1;
                    }
                }
                Err(_) => {
                    if !mentions(&String::from_utf8_lossy(&raw), subject).is_empty() {
                        writes.delete(key);
                        touched += 1;
                    }
                }
            }
        }
        for (key, raw) in self.store.scan(DEAD_PREFIX)? {
            match serde_json::from_slice::<DeadLetter>(&raw) {
                Ok(mut letter) => {
                    let alert = scrub_alert(&mut letter.alert, subject);
                    let reason = scrub_text(&letter.reason, subject);
                    if let Some(reason) = &reason {
                        letter.reason = reason.clone();
                    }
                    if alert || reason.is_some() {
                        writes.put(key, serde_json::to_vec(&letter).expect("a letter encodes"));
                        touched += 1;
                    }
                }
                Err(_) => {
                    if !mentions(&String::from_utf8_lossy(&raw), subject).is_empty() {
                        writes.delete(key);
                        touched += 1;
                    }
                }
            }
        }
        Ok(touched)
    }

    /// Every stored alert and dead letter that concerns the subject, as JSON objects.
    pub fn export(&self, subject: &str) -> Result<Vec<Value>, StateError> {
        let mut out = Vec::new();
        for (seq, entry) in self.read(0, usize::MAX)? {
            if let Ok(entry) = entry
                && concerns(&entry.alert, subject)
            {
                out.push(serde_json::json!({"table": "outbox", "seq": seq, "stored_at": entry.stored_at, "alert": entry.alert}));
            }
        }
        for letter in self.dead_letters(None)? {
            if concerns(&letter.alert, subject) || !mentions(&letter.reason, subject).is_empty() {
                out.push(serde_json::json!({"table": "dead_letter", "letter": letter}));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_mention_is_a_whole_identifier_in_any_case() {
        assert_eq!(mentions("Bob@X.test", "bob@x.test"), vec![(0, 10)]);
        assert_eq!(
            mentions("10 failures for bob@x.test.", "bob@x.test").len(),
            1
        );
        assert!(mentions("jimbob@x.test", "bob@x.test").is_empty());
        assert!(mentions("bob@x.test.evil", "bob@x.test").is_empty());
        assert!(mentions("u10", "u1").is_empty());
        assert_eq!(mentions("acme|u1", "u1").len(), 1);
    }

    #[test]
    fn an_alert_keeps_its_shape_without_the_subject() {
        let mut alert = json!({
            "rule": "credential-stuffing-ip",
            "summary": "15 usernames from 203.0.113.5, among them Victim@acme.test",
            "group": {"ip": "203.0.113.5"},
            "username": "victim@acme.test",
            "evidence": [
                {"username": "victim@acme.test", "ip": "203.0.113.5"},
                {"username": "other@acme.test", "ip": "203.0.113.5"},
            ],
        });
        assert!(concerns(&alert, "victim@acme.test"));
        assert!(scrub_alert(&mut alert, "victim@acme.test"));
        assert!(!concerns(&alert, "victim@acme.test"));
        assert_eq!(alert["evidence"].as_array().unwrap().len(), 1);
        assert_eq!(alert["username"], FORGOTTEN);
        assert_eq!(
            alert["summary"],
            "15 usernames from 203.0.113.5, among them [forgotten]"
        );
        assert!(!scrub_alert(&mut alert, "victim@acme.test"), "nothing left");
    }
}
