//! Where each partition resumes: state-store entries `s/kafka/<topic>/<partition>` holding
//! the next offset to process, written by the checkpoint that covers the events before it,
//! and the channel on which the checkpoint writer reports them durable (the only moment
//! offsets may be committed to the group).

use std::sync::mpsc::{self, Receiver};

use serde::{Deserialize, Serialize};

use crate::state::{self, OnDurable, StateError, Store};

/// Source name prefix of partition positions in the state store.
const PREFIX: &str = "kafka/";

#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    offset: i64,
}

/// The state-store key of a partition's position.
pub fn key(topic: &str, partition: i32) -> Vec<u8> {
    state::source_key(&format!("{PREFIX}{topic}/{partition}"))
}

/// The state-store entry saying `partition` resumes at `next`.
pub fn entry(topic: &str, partition: i32, next: i64) -> (Vec<u8>, Vec<u8>) {
    let value = serde_json::to_vec(&Stored { offset: next }).expect("a position serialises");
    (key(topic, partition), value)
}

/// Reads an entry back: topic, partition and next offset; `None` for another source's entry.
pub fn parse(key: &[u8], value: &[u8]) -> Option<(String, i32, i64)> {
    let name = std::str::from_utf8(key.strip_prefix(state::SOURCE_PREFIX)?).ok()?;
    let (topic, partition) = name.strip_prefix(PREFIX)?.rsplit_once('/')?;
    let stored: Stored = serde_json::from_slice(value).ok()?;
    Some((topic.to_string(), partition.parse().ok()?, stored.offset))
}

/// The checkpointed position of a partition, if any.
pub fn stored(store: &dyn Store, topic: &str, partition: i32) -> Result<Option<i64>, StateError> {
    Ok(store
        .get(&key(topic, partition))?
        .and_then(|v| serde_json::from_slice::<Stored>(&v).ok())
        .map(|s| s.offset))
}

/// The position of a partition in a task's restored state, if it holds one.
pub fn stored_in(
    state: &std::collections::BTreeMap<Vec<u8>, Vec<u8>>,
    topic: &str,
    partition: i32,
) -> Option<i64> {
    let value = state.get(&key(topic, partition))?;
    serde_json::from_slice::<Stored>(value)
        .ok()
        .map(|s| s.offset)
}

/// A durable checkpoint: its sequence number and the partition positions it wrote.
pub struct Durable {
    pub seq: u64,
    pub positions: Vec<(String, i32, i64)>,
}

/// The checkpoint writer's callback and the receiving end the source reads.
pub fn durable_channel() -> (OnDurable, Receiver<Durable>) {
    let (tx, rx) = mpsc::channel();
    let on_durable: OnDurable = Box::new(move |seq, entries| {
        let positions = entries.iter().filter_map(|(k, v)| parse(k, v)).collect();
        // The source may have stopped; then nobody needs to hear it.
        let _ = tx.send(Durable { seq, positions });
    });
    (on_durable, rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_other_sources_are_ignored() {
        let (k, v) = entry("auth.events", 3, 42);
        assert_eq!(k, b"s/kafka/auth.events/3");
        assert_eq!(parse(&k, &v), Some(("auth.events".into(), 3, 42)));
        assert_eq!(parse(b"s/file", br#"{"offset":1}"#), None);
    }
}
