//! The lateness buffer in the store, incrementally: each checkpoint writes only the events
//! held since the last one, as one segment, and deletes the segments all of whose events have
//! been released. Nothing is rewritten per checkpoint but what is new.
//!
//! Events are numbered as they are pushed; a checkpoint picks out the held events numbered
//! since the last one (a walk over pointers; nothing else is kept, so a run that never
//! checkpoints, like `replay`, holds no extra copies). A segment covers a range of numbers and
//! counts how many of its events are still held; a release (in key order, so every released
//! event is at or before the release point) decrements its segment's count. A restore reads
//! every live segment and skips what is at or before the stored release point (a segment
//! may outlive some of its events until its last one goes). After a restore, `forget` or a
//! clock correction the whole buffer is written once as one segment replacing the others.
//!
//! | key | value |
//! |---|---|
//! | `e/held/<seq u64 BE>` | JSON list of `[fingerprint, event]`: events pushed in one checkpoint interval |

use std::collections::BTreeMap;
use std::sync::Arc;

use super::held::Held;
use crate::event::Event;
use crate::state::StateWrites;

pub const HELD_PREFIX: &[u8] = b"e/held/";

#[derive(Clone, Copy, Debug)]
struct Segment {
    seq: u64,
    /// Its events still held.
    live: usize,
}

#[derive(Default)]
pub struct HeldLog {
    /// Events numbered from here on are not stored yet.
    fresh_start: u64,
    /// Stored segments by the push number they start at: a segment covers up to the next.
    segments: BTreeMap<u64, Segment>,
    next_seq: u64,
    /// Segments whose events are all released: deleted at the next checkpoint.
    dead: Vec<u64>,
    /// Write the whole buffer as one segment at the next checkpoint (and drop the others).
    rewrite: bool,
    /// Keys read at restore that the next rewrite replaces.
    stale: Vec<Vec<u8>>,
}

fn key(seq: u64) -> Vec<u8> {
    [HELD_PREFIX, &seq.to_be_bytes()].concat()
}

impl HeldLog {
    /// Event number `n` left the buffer (released or forgotten).
    pub fn released(&mut self, n: u64) {
        if n >= self.fresh_start {
            return;
        }
        if let Some((&start, segment)) = self.segments.range_mut(..=n).next_back() {
            segment.live -= 1;
            if segment.live == 0 {
                self.dead.push(segment.seq);
                self.segments.remove(&start);
            }
        }
    }

    /// The stored segments no longer match what is held (restore, `forget`, a clock
    /// correction): the next checkpoint writes the whole buffer.
    pub fn rewrite(&mut self) {
        self.rewrite = true;
    }

    /// Notes a key read at restore (a segment, or the whole-buffer key of older versions);
    /// the first checkpoint replaces it.
    pub fn restored(&mut self, key: &[u8]) {
        if let Some(Ok(bytes)) = key.strip_prefix(HELD_PREFIX).map(<[u8; 8]>::try_from) {
            self.next_seq = self.next_seq.max(u64::from_be_bytes(bytes) + 1);
        }
        self.stale.push(key.to_vec());
        self.rewrite = true;
    }

    /// Writes what is new since the last checkpoint (or everything, after a rewrite request):
    /// `held` is every event held now with its number, `next_n` the number the next push will
    /// get. Serialisation is deferred to the checkpoint writer's thread.
    pub fn checkpoint<'a>(
        &mut self,
        held: impl Iterator<Item = (&'a Arc<Event>, u64)>,
        next_n: u64,
        out: &mut StateWrites,
    ) {
        for seq in self.dead.drain(..) {
            out.delete(key(seq));
        }
        let start = if self.rewrite {
            self.rewrite = false;
            for old in self.stale.drain(..) {
                out.delete(old);
            }
            for (_, segment) in std::mem::take(&mut self.segments) {
                out.delete(key(segment.seq));
            }
            0
        } else {
            self.fresh_start
        };
        self.fresh_start = next_n;
        let events: Vec<Held> = held
            .filter(|&(_, n)| n >= start)
            .map(|(e, _)| Held(Arc::clone(e)))
            .collect();
        let live = events.len();
        if live == 0 {
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.segments.insert(start, Segment { seq, live });
        out.defer(Box::new(move |w: &mut StateWrites| {
            w.put(
                key(seq),
                serde_json::to_vec(&events).expect("events serialise"),
            );
        }));
    }

    /// Stored segments still holding events.
    #[cfg(test)]
    pub fn segments(&self) -> usize {
        self.segments.len()
    }
}
