//! Holds events for `lateness` of event time so that out-of-order arrivals are processed sorted.
//!
//! An event is released once the newest event time seen is at least `lateness` past it.
//! Ties on `ts` are broken by the event fingerprint, so any arrival order within the lateness
//! gives exactly the processing order (and the alerts) of the sorted stream.
//!
//! The buffer is bounded in events and in (estimated) bytes. When a push takes it over either
//! bound, the oldest held events are released early, as Flink and Kafka Streams do with a full
//! buffer: the release point advances past them, so they are processed (not dropped) and an
//! arrival older than them later counts as late. Each such release is counted.
//!
//! Most streams arrive nearly sorted, so held events live in two places: a queue of those that
//! arrived in order (each at or after the queue's last), pushed and popped in O(1), and a heap
//! of the rest. The next event is the smaller of the two heads.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

use super::held_log::HeldLog;
use crate::event::Event;
use crate::state::StateWrites;

/// How much the buffer may hold before the oldest events are released early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    pub max_events: usize,
    pub max_bytes: usize,
}

pub struct Reorder {
    lateness_ms: i64,
    held: Held,
    /// The newest event time seen.
    max_ts: i64,
    /// The sort key of the last released event: anything before it is too late.
    released: Option<(i64, u64)>,
    bounds: Bounds,
    /// Estimated bytes of the held events.
    bytes: usize,
    /// Events released before their lateness had passed because the buffer was full.
    pub forced_releases: u64,
    /// The number the next pushed event gets (the stored log follows events by it).
    next_n: u64,
    log: HeldLog,
}

/// A held event, its estimated bytes and its push number.
struct Pending(Arc<Event>, usize, u64);

/// The held events: those that arrived in order in a queue, the others in a heap.
#[derive(Default)]
struct Held {
    in_order: VecDeque<Pending>,
    out_of_order: BinaryHeap<Reverse<Pending>>,
}

impl Held {
    fn push(&mut self, p: Pending) {
        if self
            .in_order
            .back()
            .is_none_or(|last| last.key() <= p.key())
        {
            self.in_order.push_back(p);
        } else {
            self.out_of_order.push(Reverse(p));
        }
    }

    /// The held event that comes first.
    fn peek(&self) -> Option<&Pending> {
        match (self.in_order.front(), self.out_of_order.peek()) {
            (Some(a), Some(Reverse(b))) => Some(if a.key() <= b.key() { a } else { b }),
            (a, b) => a.or(b.map(|Reverse(b)| b)),
        }
    }

    fn pop(&mut self) -> Option<Pending> {
        let from_queue = match (self.in_order.front(), self.out_of_order.peek()) {
            (Some(a), Some(Reverse(b))) => a.key() <= b.key(),
            (Some(_), None) => true,
            (None, _) => false,
        };
        if from_queue {
            self.in_order.pop_front()
        } else {
            self.out_of_order.pop().map(|Reverse(p)| p)
        }
    }

    fn len(&self) -> usize {
        self.in_order.len() + self.out_of_order.len()
    }

    fn iter(&self) -> impl Iterator<Item = &Pending> {
        self.in_order
            .iter()
            .chain(self.out_of_order.iter().map(|Reverse(p)| p))
    }

    fn retain(&mut self, mut keep: impl FnMut(&Pending) -> bool) {
        self.in_order.retain(&mut keep);
        self.out_of_order.retain(|Reverse(p)| keep(p));
    }
}

impl Pending {
    fn key(&self) -> (i64, u64) {
        (self.0.ts, self.0.fingerprint)
    }
}

/// What a held event costs in memory, roughly: the struct, its strings and its `attrs`. An
/// estimate is enough for a bound, and costs a walk of fields the decoder has just built.
pub fn held_bytes(e: &Event) -> usize {
    let strings = [
        &e.id,
        &e.tenant,
        &e.user,
        &e.username,
        &e.user_agent,
        &e.device,
        &e.session,
        &e.client,
        &e.factor,
        &e.reason,
        &e.source,
    ];
    let text: usize = strings.iter().map(|s| text_heap(s)).sum();
    let geo = e.geo.as_ref().map_or(0, |g| {
        std::mem::size_of::<crate::event::Geo>()
            + text_heap(&g.city)
            + text_heap(&g.country)
            + text_heap(&g.as_org)
    });
    let attrs = e.attrs.as_ref().map_or(0, |a| {
        a.iter()
            .map(|(k, v)| MAP_ENTRY + k.len() + value_bytes(v))
            .sum()
    });
    // The Arc's counters and the queue or heap slot come with the event.
    std::mem::size_of::<Event>() + 32 + text + geo + attrs
}

/// Overhead of one entry in a JSON map or array, beyond its contents.
const MAP_ENTRY: usize = 64;

fn value_bytes(v: &serde_json::Value) -> usize {
    use serde_json::Value;
    std::mem::size_of::<Value>()
        + match v {
            Value::String(s) => s.len(),
            Value::Array(a) => a.iter().map(|v| MAP_ENTRY + value_bytes(v)).sum(),
            Value::Object(o) => o
                .iter()
                .map(|(k, v)| MAP_ENTRY + k.len() + value_bytes(v))
                .sum(),
            _ => 0,
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
    pub fn new(lateness_ms: i64, bounds: Bounds) -> Reorder {
        Reorder {
            lateness_ms: lateness_ms.max(0),
            held: Held::default(),
            max_ts: i64::MIN,
            released: None,
            bounds: Bounds {
                max_events: bounds.max_events.max(1),
                max_bytes: bounds.max_bytes,
            },
            bytes: 0,
            forced_releases: 0,
            next_n: 0,
            log: HeldLog::default(),
        }
    }

    pub fn push(&mut self, event: Arc<Event>) -> Admit {
        let key = (event.ts, event.fingerprint);
        if self.released.is_some_and(|r| key < r) {
            return Admit::Late;
        }
        self.max_ts = self.max_ts.max(event.ts);
        let bytes = held_bytes(&event);
        self.bytes += bytes;
        let n = self.next_n;
        self.next_n += 1;
        self.held.push(Pending(event, bytes, n));
        Admit::Buffered
    }

    /// The next event whose turn has come, if any: its lateness has passed, or the buffer is
    /// over a bound and it is the oldest.
    pub fn pop_ready(&mut self) -> Option<Arc<Event>> {
        let horizon = self.max_ts.saturating_sub(self.lateness_ms);
        let ready = self.held.peek().is_some_and(|p| p.0.ts <= horizon);
        if ready {
            return self.pop();
        }
        if self.held.len() > self.bounds.max_events || self.bytes > self.bounds.max_bytes {
            self.forced_releases += 1;
            return self.pop();
        }
        None
    }

    /// The next buffered event regardless of lateness (end of input).
    pub fn pop(&mut self) -> Option<Arc<Event>> {
        let Pending(event, bytes, n) = self.held.pop()?;
        self.bytes -= bytes;
        self.log.released(n);
        self.released = Some((event.ts, event.fingerprint));
        Some(event)
    }

    /// Held events and their estimated bytes.
    pub fn held(&self) -> (usize, usize) {
        (self.held.len(), self.bytes)
    }

    /// Brings a clock beyond `latest` back (a restored state poisoned by a far-future
    /// event): held events beyond `latest` are dropped, and the clock and a release point
    /// beyond it go back to `newest`, the newest event time the rest of the state holds, or
    /// to no clock at all. Returns the clock as it was and how many events were dropped, or
    /// `None` when nothing was beyond.
    pub fn bound_clock(&mut self, latest: i64, newest: Option<i64>) -> Option<(i64, usize)> {
        let was = self.max_ts;
        let released_beyond = self.released.is_some_and(|(ts, _)| ts > latest);
        if was <= latest && !released_beyond {
            return None;
        }
        let dropped = self.forget(&|e| e.ts > latest);
        if released_beyond {
            self.released = newest.map(|ts| (ts, 0));
        }
        let held = self.held.iter().map(|p| p.0.ts).max();
        let released = self.released.map(|(ts, _)| ts);
        self.max_ts = [newest, held, released]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(i64::MIN);
        Some((was, dropped))
    }

    /// Treats event time as having reached `ts` (a live source that went quiet).
    pub fn advance_to(&mut self, ts: i64) {
        self.max_ts = self.max_ts.max(ts);
    }

    /// The events held back, in no particular order.
    pub fn pending(&self) -> impl Iterator<Item = &Arc<Event>> {
        self.held.iter().map(|p| &p.0)
    }

    /// Writes the held events new since the last checkpoint; deletes segments whose events
    /// are all released.
    pub fn checkpoint(&mut self, out: &mut StateWrites) {
        let held = self.held.iter().map(|p| (&p.0, p.2));
        self.log.checkpoint(held, self.next_n, out);
    }

    /// Notes a stored key of the buffer read at restore (replaced at the next checkpoint).
    pub fn restored_key(&mut self, key: &[u8]) {
        self.log.restored(key);
    }

    /// Stored segments still holding events.
    #[cfg(test)]
    pub fn stored_segments(&self) -> usize {
        self.log.segments()
    }

    /// True when an event with this key was released already (a restore skips it).
    pub fn is_released(&self, event: &Event) -> bool {
        self.released
            .is_some_and(|r| (event.ts, event.fingerprint) <= r)
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
        let before = self.held.len();
        let (bytes, log) = (&mut self.bytes, &mut self.log);
        self.held.retain(|p| {
            let keep = !about(&p.0);
            if !keep {
                *bytes -= p.1;
                log.released(p.2);
            }
            keep
        });
        let gone = before - self.held.len();
        if gone > 0 {
            // The stored segments still hold what is gone (a user forgotten).
            self.log.rewrite();
        }
        gone
    }
}

/// The heap bytes of a text field: none when it is stored inline (up to 24 bytes).
fn text_heap(s: &Option<crate::event::Text>) -> usize {
    s.as_ref()
        .filter(|s| s.is_heap_allocated())
        .map_or(0, |s| s.capacity())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;

    fn event(ts: i64) -> Arc<Event> {
        Arc::new(Event::new(ts, EventType::Other).with_computed_fingerprint())
    }

    const WIDE: Bounds = Bounds {
        max_events: usize::MAX,
        max_bytes: usize::MAX,
    };

    #[test]
    fn arrivals_mostly_in_order_with_stragglers_leave_sorted() {
        // In order with every seventh event 0..40 ms behind, and runs of equal times: the
        // queue takes the in-order ones, the heap the stragglers, and the merge of the two
        // is the sorted stream (ties by fingerprint).
        let mut r = Reorder::new(100, WIDE);
        let mut pushed = Vec::new();
        for i in 0..2_000_i64 {
            let ts = if i % 7 == 0 {
                i * 10 - (i % 5) * 10
            } else {
                (i / 3) * 30
            };
            let e = event(ts);
            pushed.push((e.ts, e.fingerprint));
            assert_eq!(r.push(e), Admit::Buffered);
        }
        let mut out = Vec::new();
        while let Some(e) = r.pop_ready() {
            out.push((e.ts, e.fingerprint));
        }
        while let Some(e) = r.pop() {
            out.push((e.ts, e.fingerprint));
        }
        pushed.sort();
        assert_eq!(out, pushed);
        assert_eq!(r.held(), (0, 0));
    }

    #[test]
    fn a_full_buffer_releases_its_oldest_early_and_counts_them() {
        let mut r = Reorder::new(
            60_000,
            Bounds {
                max_events: 3,
                ..WIDE
            },
        );
        // A flood with one timestamp: nothing ever becomes due by lateness.
        let mut out = Vec::new();
        for i in 0..10 {
            assert_eq!(r.push(event(1_000 + i)), Admit::Buffered);
            while let Some(e) = r.pop_ready() {
                out.push(e.ts);
            }
            assert!(r.held().0 <= 3);
        }
        assert_eq!(out, (1_000..1_007).collect::<Vec<_>>(), "oldest first");
        assert_eq!(r.forced_releases, 7);
        // The release point moved: an arrival older than what was released is late.
        assert_eq!(r.push(event(1_003)), Admit::Late);
        assert_eq!(r.push(event(1_008)), Admit::Buffered);
    }

    #[test]
    fn the_byte_bound_counts_held_events_and_their_release() {
        let one = held_bytes(&event(1));
        let mut r = Reorder::new(
            60_000,
            Bounds {
                max_events: usize::MAX,
                max_bytes: one * 2,
            },
        );
        for ts in 1..=5 {
            r.push(event(ts));
            while r.pop_ready().is_some() {}
        }
        assert_eq!(r.held(), (2, 2 * one));
        assert_eq!(r.forced_releases, 3);
        r.forget(&|e| e.ts == 5);
        assert_eq!(r.held(), (1, one));
        while r.pop().is_some() {}
        assert_eq!(r.held(), (0, 0));
    }

    #[test]
    fn big_attrs_cost_more_bytes() {
        let mut e = Event::new(1, EventType::Other);
        let small = held_bytes(&e);
        e.attrs = Some(
            serde_json::from_str(r#"{"a":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx","b":[1,2,3]}"#)
                .unwrap(),
        );
        assert!(held_bytes(&e) > small + 40);
    }

    #[test]
    fn a_clock_beyond_the_bound_comes_back_and_future_events_go() {
        const Y2999: i64 = 32_503_680_000_000;
        let mut r = Reorder::new(60_000, WIDE);
        r.push(event(500_000));
        r.push(event(Y2999));
        assert_eq!(r.bound_clock(1_300_000, Some(400_000)), Some((Y2999, 1)));
        assert_eq!(r.position(), (500_000, None), "the newest event still held");
        assert_eq!(r.held().0, 1);
        assert_eq!(r.bound_clock(1_300_000, None), None, "nothing left beyond");
        // A release point beyond the bound goes back to the newest event the state holds,
        // so real events after it are not late.
        while r.pop().is_some() {}
        r.push(event(Y2999));
        r.advance_to(Y2999 + 60_000);
        while r.pop_ready().is_some() {}
        assert_eq!(r.push(event(990_000)), Admit::Late);
        assert!(r.bound_clock(1_300_000, Some(700_000)).is_some());
        assert_eq!(r.position(), (700_000, Some((700_000, 0))));
        assert_eq!(r.push(event(690_000)), Admit::Late);
        assert_eq!(r.push(event(990_000)), Admit::Buffered);
    }
}
