//! An event held in engine state. It persists with its fingerprint, which the canonical JSON
//! leaves out but alert ids and the processing order depend on.
//!
//! Standalone (the lateness buffer, `export`) a held event serialises whole, as
//! `[fingerprint, event]`. Inside a checkpoint's group blob ([`encoding`]) it serialises as
//! its fingerprint alone, and the events not yet stored since the last snapshot are written
//! once, ahead of the groups, whichever rules and checkpoints refer to them: the same failed
//! login sits in half a dozen rules' windows and in every checkpoint while its windows last.
//! A restore reads those events into a pool first ([`RestorePool`]) and resolves the
//! fingerprints against it.

use std::cell::RefCell;
use std::ops::Deref;
use std::sync::Arc;

use foldhash::{HashMap, HashSet};
use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::event::Event;

#[derive(Clone, Debug)]
pub struct Held(pub Arc<Event>);

impl Deref for Held {
    type Target = Arc<Event>;
    fn deref(&self) -> &Arc<Event> {
        &self.0
    }
}

/// The state of an encoding in progress on this thread.
struct Encoding {
    /// Fingerprints of the events already in the stored blobs (or in this one).
    written: HashSet<u64>,
    /// Events this blob must carry, in the order first met.
    fresh: Vec<Arc<Event>>,
}

thread_local! {
    static ENCODING: RefCell<Option<Encoding>> = const { RefCell::new(None) };
    static RESTORING: RefCell<Option<HashMap<u64, Arc<Event>>>> = const { RefCell::new(None) };
}

/// Runs `encode` with held events serialised by reference: `written` holds the fingerprints
/// already stored, and gains those met now. Returns what `encode` returned and the events
/// met for the first time, which the blob must carry ahead of the groups.
pub fn encoding<R>(written: &mut HashSet<u64>, encode: impl FnOnce() -> R) -> (R, Vec<Arc<Event>>) {
    let state = Encoding {
        written: std::mem::take(written),
        fresh: Vec::new(),
    };
    ENCODING.with(|cell| *cell.borrow_mut() = Some(state));
    let result = encode();
    let state = ENCODING
        .with(|cell| cell.borrow_mut().take())
        .expect("the encoding state is still set");
    *written = state.written;
    (result, state.fresh)
}

/// While alive, held events written by reference resolve against the events added to it.
pub struct RestorePool(());

impl RestorePool {
    pub fn begin() -> RestorePool {
        RESTORING.with(|cell| *cell.borrow_mut() = Some(HashMap::default()));
        RestorePool(())
    }

    pub fn add(&self, held: Held) {
        RESTORING.with(|cell| {
            if let Some(pool) = cell.borrow_mut().as_mut() {
                pool.insert(held.fingerprint, held.0);
            }
        });
    }
}

impl Drop for RestorePool {
    fn drop(&mut self) {
        RESTORING.with(|cell| *cell.borrow_mut() = None);
    }
}

impl Serialize for Held {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let fingerprint = self.0.fingerprint;
        let by_reference = ENCODING.with(|cell| match cell.borrow_mut().as_mut() {
            Some(encoding) => {
                if encoding.written.insert(fingerprint) {
                    encoding.fresh.push(Arc::clone(&self.0));
                }
                true
            }
            None => false,
        });
        if by_reference {
            s.serialize_u64(fingerprint)
        } else {
            (fingerprint, &*self.0).serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Held {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(HeldVisitor)
    }
}

struct HeldVisitor;

impl<'de> Visitor<'de> for HeldVisitor {
    type Value = Held;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an event fingerprint or a [fingerprint, event] pair")
    }

    fn visit_u64<E: de::Error>(self, fingerprint: u64) -> Result<Held, E> {
        RESTORING
            .with(|cell| {
                cell.borrow()
                    .as_ref()
                    .and_then(|pool| pool.get(&fingerprint).cloned())
            })
            .map(Held)
            .ok_or_else(|| {
                E::custom(format!(
                    "event {fingerprint:016x} is referred to but stored nowhere"
                ))
            })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Held, A::Error> {
        let fingerprint: u64 = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let mut event: Event = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        event.fingerprint = fingerprint;
        Ok(Held(Arc::new(event)))
    }
}

/// True when the event concerns the subject: its `user` or its `username`.
pub fn concerns(e: &Event, subject: &str) -> bool {
    e.user.as_deref() == Some(subject)
        || e.username.as_deref() == Some(subject.to_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;

    fn held(user: &str, ts: i64) -> Held {
        let mut e = Event::new(ts, EventType::LoginFailure);
        e.user = Some(user.into());
        Held(Arc::new(e.with_computed_fingerprint()))
    }

    #[test]
    fn standalone_a_held_event_is_whole_and_round_trips() {
        let h = held("alice", 1_000);
        let json = serde_json::to_string(&h).unwrap();
        assert!(json.starts_with(&format!("[{},", h.fingerprint)), "{json}");
        let back: Held = serde_json::from_str(&json).unwrap();
        assert_eq!(back.fingerprint, h.fingerprint);
        assert_eq!(back.user.as_deref(), Some("alice"));
    }

    #[test]
    fn in_a_blob_each_event_is_written_once_and_referred_to_by_fingerprint() {
        let (a, b) = (held("alice", 1), held("bob", 2));
        let mut written = HashSet::default();
        let (json, fresh) = encoding(&mut written, || {
            serde_json::to_string(&vec![a.clone(), b.clone(), a.clone()]).unwrap()
        });
        assert_eq!(json, format!("[{0},{1},{0}]", a.fingerprint, b.fingerprint));
        assert_eq!(fresh.len(), 2);
        // The next blob carries neither again.
        let (_, fresh) = encoding(&mut written, || serde_json::to_string(&a).unwrap());
        assert!(fresh.is_empty());

        let pool = RestorePool::begin();
        pool.add(a.clone());
        let back: Vec<Held> = serde_json::from_str(&format!("[{}]", a.fingerprint)).unwrap();
        assert_eq!(back[0].user.as_deref(), Some("alice"));
        let missing = serde_json::from_str::<Held>(&b.fingerprint.to_string()).unwrap_err();
        assert!(missing.to_string().contains("stored nowhere"), "{missing}");
        drop(pool);
        assert!(serde_json::from_str::<Held>(&a.fingerprint.to_string()).is_err());
    }
}
