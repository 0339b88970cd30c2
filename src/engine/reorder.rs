//! Holds events for `lateness` of event time so that out-of-order arrivals are processed sorted.
//!
//! An event is released once the newest event time seen is at least `lateness` past it.
//! Ties on `ts` are broken by the event fingerprint, so any arrival order within the lateness
//! gives exactly the processing order (and the alerts) of the sorted stream.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Arc;

use crate::event::Event;

pub struct Reorder {
    lateness_ms: i64,
    heap: BinaryHeap<Reverse<Pending>>,
    /// The newest event time seen.
    max_ts: i64,
    /// The sort key of the last released event: anything before it is too late.
    released: Option<(i64, u64)>,
}

struct Pending(Arc<Event>);

impl Pending {
    fn key(&self) -> (i64, u64) {
        (self.0.ts, self.0.fingerprint)
    }
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

/// What happened to a pushed event.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    Buffered,
    /// Older than what was already processed: counted and dropped from windows.
    Late,
}

impl Reorder {
    pub fn new(lateness_ms: i64) -> Reorder {
        Reorder {
            lateness_ms: lateness_ms.max(0),
            heap: BinaryHeap::new(),
            max_ts: i64::MIN,
            released: None,
        }
    }

    pub fn push(&mut self, event: Arc<Event>) -> Admit {
        let key = (event.ts, event.fingerprint);
        if self.released.is_some_and(|r| key < r) {
            return Admit::Late;
        }
        self.max_ts = self.max_ts.max(event.ts);
        self.heap.push(Reverse(Pending(event)));
        Admit::Buffered
    }

    /// The next event whose turn has come, if any.
    pub fn pop_ready(&mut self) -> Option<Arc<Event>> {
        let horizon = self.max_ts.saturating_sub(self.lateness_ms);
        let ready = self.heap.peek().is_some_and(|Reverse(p)| p.0.ts <= horizon);
        if ready { self.pop() } else { None }
    }

    /// The next buffered event regardless of lateness (end of input).
    pub fn pop(&mut self) -> Option<Arc<Event>> {
        let Reverse(Pending(event)) = self.heap.pop()?;
        self.released = Some((event.ts, event.fingerprint));
        Some(event)
    }

    /// Treats event time as having reached `ts` (a live source that went quiet).
    pub fn advance_to(&mut self, ts: i64) {
        self.max_ts = self.max_ts.max(ts);
    }

    /// The events held back, in no particular order.
    pub fn pending(&self) -> impl Iterator<Item = &Arc<Event>> {
        self.heap.iter().map(|Reverse(p)| &p.0)
    }

    /// The newest event time seen and the last released position (for checkpoints).
    pub fn position(&self) -> (i64, Option<(i64, u64)>) {
        (self.max_ts, self.released)
    }

    pub fn set_position(&mut self, max_ts: i64, released: Option<(i64, u64)>) {
        self.max_ts = self.max_ts.max(max_ts);
        self.released = released;
    }

    /// Drops held events `about` returns true for; returns how many.
    pub fn forget(&mut self, about: &dyn Fn(&Event) -> bool) -> usize {
        let before = self.heap.len();
        self.heap.retain(|Reverse(p)| !about(&p.0));
        before - self.heap.len()
    }
}
