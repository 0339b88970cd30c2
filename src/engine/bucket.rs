//! Bucketed `threshold` and `distinct`: counts over windows of hours or days at a cost per
//! time bucket, not per event.
//!
//! A group keeps, per bucket of `bucket` ms (numbered `ts / bucket`), an event count
//! ([`CountGroup`]) or a HyperLogLog++ sketch of the distinct values ([`SketchGroup`]), and the
//! buckets from the one holding `ts - window` to the current one. Events at most `window`
//! apart are therefore always counted together (nothing the exact window counts is missed);
//! events up to `window + bucket` apart may be too. A few of the latest events are kept as the
//! alert's evidence.

use std::collections::VecDeque;
use std::sync::Arc;

use cardinality_estimator::CardinalityEstimator;
use serde::{Deserialize, Serialize};

use super::held::Held;
use super::table::GroupState;
use super::{Fired, Note};
use crate::event::Event;
use crate::rule::Bucketed;

/// The latest events a bucketed group keeps for the alert's evidence.
pub const EVIDENCE_KEPT: usize = 5;

/// 2^10 registers of 5 bits: a relative standard error of 3.25% (`rule::APPROXIMATE_ERROR`);
/// exact (up to hash collisions) while a sketch holds few values, about 650 bytes beyond.
pub type Sketch = CardinalityEstimator<str, xxhash_rust::xxh3::Xxh3Default, 10, 5>;

/// The bucket an instant falls in.
fn bucket_of(ts: i64, bucket_ms: i64) -> i64 {
    ts.div_euclid(bucket_ms)
}

/// The oldest bucket still counted at `ts`.
fn oldest_bucket(ts: i64, opts: &Bucketed) -> i64 {
    bucket_of(ts.saturating_sub(opts.window_ms), opts.bucket_ms)
}

fn keep_evidence(recent: &mut VecDeque<Held>, e: &Arc<Event>) {
    recent.push_back(Held(Arc::clone(e)));
    if recent.len() > EVIDENCE_KEPT {
        recent.pop_front();
    }
}

/// A bucketed event count.
#[derive(Default, Clone, Serialize, Deserialize)]
pub struct CountGroup {
    /// `(bucket number, events, first event time)`, oldest first.
    buckets: VecDeque<(i64, u32, i64)>,
    total: u64,
    recent: VecDeque<Held>,
    pub last_fired: Option<i64>,
    pub last_seen: i64,
}

impl GroupState for CountGroup {
    fn last_seen(&self) -> i64 {
        self.last_seen
    }
    fn events(&self) -> Vec<&Arc<Event>> {
        self.recent.iter().map(|h| &h.0).collect()
    }
    fn forget(&mut self, about: &dyn Fn(&Event) -> bool) {
        self.recent.retain(|e| !about(e));
    }
    fn is_empty(&self) -> bool {
        self.buckets.is_empty() && self.last_fired.is_none()
    }
}

impl CountGroup {
    /// Counts an event (in event-time order); what fired if the count reached the threshold.
    pub fn observe(&mut self, e: &Arc<Event>, opts: &Bucketed) -> Option<Fired> {
        self.last_seen = e.ts;
        let oldest = oldest_bucket(e.ts, opts);
        while let Some(&(b, n, _)) = self.buckets.front()
            && b < oldest
        {
            self.total -= u64::from(n);
            self.buckets.pop_front();
        }
        let current = bucket_of(e.ts, opts.bucket_ms);
        match self.buckets.back_mut() {
            Some((b, n, _)) if *b == current => *n = n.saturating_add(1),
            _ => self.buckets.push_back((current, 1, e.ts)),
        }
        self.total += 1;
        keep_evidence(&mut self.recent, e);
        (self.total >= u64::from(opts.threshold)).then(|| Fired {
            count: self.total,
            first_ts: self.buckets.front().map_or(e.ts, |&(_, _, first)| first),
            triggers: self.recent.iter().map(|h| Arc::clone(h)).collect(),
            note: Note::None,
        })
    }

    #[cfg(test)]
    pub fn buckets(&self) -> usize {
        self.buckets.len()
    }
}

/// A bucketed, estimated distinct count.
#[derive(Default, Clone, Serialize, Deserialize)]
pub struct SketchGroup {
    /// `(bucket number, sketch of its values, first event time)`, oldest first.
    buckets: VecDeque<(i64, Sketch, i64)>,
    /// The union of every bucket's sketch: one insert per event keeps it current, and it is
    /// rebuilt only when a bucket leaves the window (once per bucket at most).
    merged: Sketch,
    recent: VecDeque<Held>,
    pub last_fired: Option<i64>,
    pub last_seen: i64,
}

impl GroupState for SketchGroup {
    fn last_seen(&self) -> i64 {
        self.last_seen
    }
    fn events(&self) -> Vec<&Arc<Event>> {
        self.recent.iter().map(|h| &h.0).collect()
    }
    fn forget(&mut self, about: &dyn Fn(&Event) -> bool) {
        self.recent.retain(|e| !about(e));
    }
    fn is_empty(&self) -> bool {
        self.buckets.is_empty() && self.last_fired.is_none()
    }
}

impl SketchGroup {
    /// Adds a value seen at `e.ts`; what fired if the estimate reached the threshold.
    pub fn observe(&mut self, value: &str, e: &Arc<Event>, opts: &Bucketed) -> Option<Fired> {
        self.last_seen = e.ts;
        let oldest = oldest_bucket(e.ts, opts);
        let before = self.buckets.len();
        while self.buckets.front().is_some_and(|(b, _, _)| *b < oldest) {
            self.buckets.pop_front();
        }
        if self.buckets.len() != before {
            let mut merged = Sketch::new();
            for (_, sketch, _) in &self.buckets {
                merged.merge(sketch);
            }
            self.merged = merged;
        }
        let current = bucket_of(e.ts, opts.bucket_ms);
        if self.buckets.back().is_none_or(|(b, _, _)| *b != current) {
            self.buckets.push_back((current, Sketch::new(), e.ts));
        }
        // A fixed, unseeded hash: the same values give the same estimate in every process
        // (replay gives the same alerts), and the sketch survives a restart.
        let hash = xxhash_rust::xxh3::xxh3_64(value.as_bytes());
        if let Some((_, sketch, _)) = self.buckets.back_mut() {
            sketch.insert_hash(hash);
        }
        self.merged.insert_hash(hash);
        keep_evidence(&mut self.recent, e);
        let estimate = self.merged.estimate() as u64;
        (estimate >= u64::from(opts.threshold)).then(|| Fired {
            count: estimate,
            first_ts: self.buckets.front().map_or(e.ts, |&(_, _, first)| first),
            triggers: self.recent.iter().map(|h| Arc::clone(h)).collect(),
            note: Note::None,
        })
    }

    /// Heap bytes of the sketches (memory per group, measured in the tests).
    #[cfg(test)]
    pub fn sketch_bytes(&self) -> usize {
        self.merged.size_of()
            + self
                .buckets
                .iter()
                .map(|(_, s, _)| s.size_of())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventType, Field};

    const MIN: i64 = 60_000;

    fn at(ms: i64) -> Arc<Event> {
        Arc::new(Event::new(ms, EventType::LoginFailure))
    }

    fn opts(window_ms: i64, bucket_ms: i64, threshold: u32, distinct: bool) -> Bucketed {
        Bucketed {
            window_ms,
            bucket_ms,
            threshold,
            distinct: distinct.then_some(Field::Username),
        }
    }

    #[test]
    fn events_a_window_apart_always_count_and_state_is_per_bucket() {
        let o = opts(360 * MIN, 15 * MIN, 25, false);
        let mut g = CountGroup::default();
        // 25 events evenly over exactly six hours: the first and last are `window` apart.
        let step = 360 * MIN / 24;
        for i in 0..24 {
            assert!(g.observe(&at(i * step), &o).is_none());
        }
        assert_eq!(g.observe(&at(24 * step), &o).unwrap().count, 25);
        assert!(g.buckets() <= o.buckets() as usize);
        assert!(g.recent.len() <= EVIDENCE_KEPT);
        // Spread over twelve hours, at most half of them share a window (plus a bucket).
        let mut g = CountGroup::default();
        for i in 0..25 {
            assert!(g.observe(&at(i * 2 * step), &o).is_none());
        }
    }

    #[test]
    fn a_flood_costs_one_bucket_not_one_entry_an_event() {
        let o = opts(24 * 60 * MIN, 60 * MIN, u32::MAX, false);
        let mut g = CountGroup::default();
        for i in 0..100_000 {
            g.observe(&at(i * 100), &o);
        }
        assert_eq!(g.total, 100_000);
        assert_eq!(g.buckets(), 3);
    }

    #[test]
    fn estimates_are_exact_while_small_and_within_the_stated_error_beyond() {
        let o = opts(24 * 60 * MIN, 60 * MIN, 40, true);
        let mut g = SketchGroup::default();
        for i in 0..39 {
            let v = format!("user{i}@example.com");
            assert!(g.observe(&v, &at(i * 30 * MIN), &o).is_none());
            // The same value again is not a new one.
            assert!(g.observe(&v, &at(i * 30 * MIN + 1), &o).is_none());
        }
        let fired = g.observe("user39@example.com", &at(39 * 30 * MIN), &o);
        // 40 values in 19.5 h: all inside the day.
        assert_eq!(fired.unwrap().count, 40);

        let o = opts(24 * 60 * MIN, 60 * MIN, u32::MAX, true);
        let mut g = SketchGroup::default();
        for i in 0..20_000 {
            g.observe(&format!("v{i}"), &at(i), &o);
        }
        let estimate = g.merged.estimate() as f64;
        assert!(
            (estimate - 20_000.0).abs() / 20_000.0 < 3.0 * crate::rule::APPROXIMATE_ERROR,
            "{estimate}"
        );
    }

    /// The memory a day-long spray count costs a group: a network that sent 300 distinct
    /// usernames in 24 hourly buckets.
    #[test]
    fn a_day_of_spray_costs_a_few_kilobytes_a_group() {
        let o = opts(24 * 60 * MIN, 60 * MIN, u32::MAX, true);
        let mut g = SketchGroup::default();
        for i in 0..300 {
            g.observe(&format!("user{i}@example.com"), &at(i * 4 * MIN), &o);
        }
        let bytes = g.sketch_bytes();
        assert!(bytes < 8 * 1024, "{bytes}");
        let mut g = CountGroup::default();
        let o = opts(360 * MIN, 15 * MIN, u32::MAX, false);
        for i in 0..1000 {
            g.observe(&at(i * MIN / 2), &o);
        }
        assert!(g.buckets.len() * std::mem::size_of::<(i64, u32, i64)>() <= 25 * 24);
    }

    #[test]
    fn values_leave_with_their_bucket() {
        let o = opts(60 * MIN, 10 * MIN, 3, true);
        let mut g = SketchGroup::default();
        assert!(g.observe("a", &at(0), &o).is_none());
        assert!(g.observe("b", &at(MIN), &o).is_none());
        // 71 minutes on, bucket 0 (0-10 min) is before the window's oldest bucket (1).
        assert!(g.observe("c", &at(71 * MIN), &o).is_none());
        assert_eq!(g.merged.estimate(), 1);
        assert!(g.observe("d", &at(72 * MIN), &o).is_none());
        assert_eq!(g.observe("e", &at(73 * MIN), &o).unwrap().count, 3);
    }

    #[test]
    fn sketches_survive_a_round_trip_through_json() {
        let o = opts(60 * MIN, 10 * MIN, u32::MAX, true);
        let mut g = SketchGroup::default();
        for i in 0..500 {
            g.observe(&format!("v{i}"), &at(i * 1000), &o);
        }
        let json = serde_json::to_string(&g).unwrap();
        let back: SketchGroup = serde_json::from_str(&json).unwrap();
        assert_eq!(back.merged.estimate(), g.merged.estimate());
        assert_eq!(back.buckets.len(), g.buckets.len());
    }
}
