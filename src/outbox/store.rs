//! The outbox's keys in the state store (see `state/mod.rs` for the prefix table):
//!
//! - `o/<seq>`: an [`Entry`], the alert JSON and when it was stored (seq: 8 bytes big-endian,
//!   so key order is log order);
//! - `i/<id>`: when an alert id was stored: an alert produced again after a crash (recovery
//!   replays from the last checkpoint) is not stored, hence not delivered, twice;
//! - `c/<sink>`: the next seq the sink delivers; entries below every cursor are deleted;
//! - `x/<sink>/<seq>`: a [`DeadLetter`];
//! - `m/outbox-next`: the seq the next alert gets.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::state::StateWrites;
use crate::state::{StateError, Store};

pub const ENTRY_PREFIX: &[u8] = b"o/";
pub const ID_PREFIX: &[u8] = b"i/";
pub const CURSOR_PREFIX: &[u8] = b"c/";
pub const DEAD_PREFIX: &[u8] = b"x/";
pub const NEXT_KEY: &[u8] = b"m/outbox-next";

pub type SharedStore = Arc<dyn Store + Send + Sync>;

/// Log entries with their seq; an unreadable one as the reason.
pub type Page = Vec<(u64, Result<Entry, String>)>;

/// One stored alert.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Entry {
    /// Wall clock, epoch milliseconds: the start of its `max_age`.
    pub stored_at: i64,
    /// Set on a redriven alert: only this sink delivers it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only: Option<String>,
    pub alert: Value,
}

impl Entry {
    pub fn is_for(&self, sink: &str) -> bool {
        self.only.as_deref().is_none_or(|s| s == sink)
    }
}

/// An alert a sink gave up on.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct DeadLetter {
    pub sink: String,
    pub seq: u64,
    /// Epoch milliseconds: when the alert was stored, and when it was given up.
    pub stored_at: i64,
    pub dead_at: i64,
    pub attempts: u32,
    pub reason: String,
    pub alert: Value,
}

pub fn entry_key(seq: u64) -> Vec<u8> {
    [ENTRY_PREFIX, &seq.to_be_bytes()].concat()
}

pub fn id_key(id: &str) -> Vec<u8> {
    [ID_PREFIX, id.as_bytes()].concat()
}

pub fn cursor_key(sink: &str) -> Vec<u8> {
    [CURSOR_PREFIX, sink.as_bytes()].concat()
}

/// Sink names hold no `/` (config validation), so `x/<sink>/` is exactly one sink's letters.
pub fn dead_prefix(sink: &str) -> Vec<u8> {
    [DEAD_PREFIX, sink.as_bytes(), b"/"].concat()
}

pub fn dead_key(sink: &str, seq: u64) -> Vec<u8> {
    [dead_prefix(sink).as_slice(), &seq.to_be_bytes()].concat()
}

fn seq_of(key: &[u8]) -> u64 {
    let tail: [u8; 8] = key[key.len().saturating_sub(8)..]
        .try_into()
        .unwrap_or([0; 8]);
    u64::from_be_bytes(tail)
}

fn u64_of(value: &[u8]) -> u64 {
    value.try_into().map(u64::from_be_bytes).unwrap_or(0)
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StateError {
    StateError::Corrupt {
        dir: "state".into(),
        reason: format!("{what}: {e}"),
    }
}

/// Reads and changes the outbox keys.
#[derive(Clone)]
pub struct OutboxStore {
    pub store: SharedStore,
}

impl OutboxStore {
    pub fn new(store: SharedStore) -> OutboxStore {
        OutboxStore { store }
    }

    /// The seq the next stored alert gets.
    pub fn next_seq(&self) -> Result<u64, StateError> {
        Ok(self.store.get(NEXT_KEY)?.map_or(0, |v| u64_of(&v)))
    }

    /// The lowest seq still in the log.
    pub fn first_seq(&self) -> Result<Option<u64>, StateError> {
        Ok(self
            .store
            .scan_from(ENTRY_PREFIX, ENTRY_PREFIX, 1)?
            .first()
            .map(|(k, _)| seq_of(k)))
    }

    /// Up to `limit` entries from `from` on; an unreadable one comes back as an error value.
    pub fn read(&self, from: u64, limit: usize) -> Result<Page, StateError> {
        Ok(self
            .store
            .scan_from(ENTRY_PREFIX, &entry_key(from), limit)?
            .into_iter()
            .map(|(k, v)| {
                (
                    seq_of(&k),
                    serde_json::from_slice(&v).map_err(|e| format!("unreadable entry: {e}")),
                )
            })
            .collect())
    }

    pub fn holds(&self, id: &str) -> Result<bool, StateError> {
        Ok(self.store.get(&id_key(id))?.is_some())
    }

    /// Every stored cursor: (sink, next seq).
    pub fn cursors(&self) -> Result<Vec<(String, u64)>, StateError> {
        Ok(self
            .store
            .scan(CURSOR_PREFIX)?
            .into_iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(&k[CURSOR_PREFIX.len()..]).into_owned(),
                    u64_of(&v),
                )
            })
            .collect())
    }

    /// Dead letters of one sink, or of all.
    pub fn dead_letters(&self, sink: Option<&str>) -> Result<Vec<DeadLetter>, StateError> {
        let prefix = sink.map_or_else(|| DEAD_PREFIX.to_vec(), dead_prefix);
        self.store
            .scan(&prefix)?
            .into_iter()
            .map(|(_, v)| serde_json::from_slice(&v).map_err(|e| corrupt("dead letter", e)))
            .collect()
    }

    /// Entries from `cursor` on that `wanted` accepts (a sink's backlog).
    pub fn count_from(
        &self,
        cursor: u64,
        wanted: &dyn Fn(&Entry) -> bool,
    ) -> Result<u64, StateError> {
        const PAGE: usize = 1024;
        let mut n = 0;
        let mut from = cursor;
        loop {
            let page = self.read(from, PAGE)?;
            let Some((last, _)) = page.last() else {
                return Ok(n);
            };
            from = last + 1;
            n += page
                .iter()
                .filter(|(_, e)| e.as_ref().map_or(true, wanted))
                .count() as u64;
            if page.len() < PAGE {
                return Ok(n);
            }
        }
    }

    /// Moves dead letters (of `sink`, or all; only `id` when given) back into the log, each
    /// for its own sink only; returns how many. Offline: the daemon holds the store while it
    /// runs, and delivers them on its next start.
    pub fn redrive(&self, sink: Option<&str>, id: Option<&str>) -> Result<usize, StateError> {
        let mut next = self.next_seq()?;
        let mut writes = StateWrites::default();
        let mut n = 0;
        let now = chrono::Utc::now().timestamp_millis();
        for letter in self.dead_letters(sink)? {
            if id.is_some_and(|id| letter.alert["id"].as_str() != Some(id)) {
                continue;
            }
            let entry = Entry {
                // A fresh max_age: the operator has decided to try again.
                stored_at: now,
                only: Some(letter.sink.clone()),
                alert: letter.alert,
            };
            let value = serde_json::to_vec(&entry).map_err(|e| corrupt("entry", e))?;
            writes.put(entry_key(next), value);
            writes.delete(dead_key(&letter.sink, letter.seq));
            next += 1;
            n += 1;
        }
        if n > 0 {
            writes.put(NEXT_KEY.to_vec(), next.to_be_bytes().to_vec());
            self.store.commit(writes)?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_in_log_order_and_name_their_sink() {
        assert!(entry_key(255) < entry_key(256));
        assert_eq!(seq_of(&entry_key(77)), 77);
        assert_eq!(seq_of(&dead_key("hook", 9)), 9);
        assert!(dead_key("hook", 1).starts_with(&dead_prefix("hook")));
        assert!(!dead_key("hook-2", 1).starts_with(&dead_prefix("hook")));
    }
}
