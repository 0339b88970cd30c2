//! Merges the partitions of a consumer by event time, so the engine (one watermark: the
//! newest event time seen) receives a stream no more disordered than each partition is.
//!
//! Each assigned partition has a lane (a queue of decoded messages). The smallest head is
//! released while every lane has data; a lane that is empty blocks the others unless its
//! partition is at its end (nothing more to fetch now) or has delivered nothing for the
//! idleness timeout, as stream processors do, so a quiet partition never stalls the rest.
//! Messages without an event time (bad ones) leave as soon as they reach the head.
//!
//! A lane that runs far ahead in event time is paused at the broker (the caller applies
//! [`Merge::flow`]) rather than buffered without bound; if memory still reaches
//! [`MAX_HELD`], the smallest head is released anyway (the engine's lateness then absorbs
//! the disorder).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A partition: topic name and partition number.
pub type Tp = (Arc<str>, i32);

/// Messages queued in one lane before its partition is paused at the broker.
pub const LANE_PAUSE_AT: usize = 50_000;
/// ... and resumed once the lane drains below this.
pub const LANE_RESUME_AT: usize = 10_000;
/// Messages held across lanes beyond which order gives way to memory.
pub const MAX_HELD: usize = 500_000;

/// One decoded message waiting in a lane.
#[derive(Debug)]
pub struct Entry<T> {
    /// Event time; `None` for a message that did not decode (it carries no order).
    pub ts: Option<i64>,
    pub offset: i64,
    pub payload: T,
}

#[derive(Debug)]
struct Lane<T> {
    queue: VecDeque<Entry<T>>,
    /// When a message last arrived (or the partition was assigned).
    last_seen: Instant,
    /// The offset after the last message received, when known: the partition is at its end
    /// when the broker's high watermark is not above it.
    next_fetch: Option<i64>,
    /// The offset after the last message released: where a checkpoint resumes.
    released: Option<i64>,
    paused: bool,
}

#[derive(Debug)]
pub struct Merge<T> {
    lanes: BTreeMap<Tp, Lane<T>>,
    idle_after: Duration,
    held: usize,
}

/// Pause and resume requests for the broker.
#[derive(Debug, Default, PartialEq)]
pub struct Flow {
    pub pause: Vec<Tp>,
    pub resume: Vec<Tp>,
}

impl<T> Merge<T> {
    pub fn new(idle_after: Duration) -> Merge<T> {
        Merge {
            lanes: BTreeMap::new(),
            idle_after,
            held: 0,
        }
    }

    /// A partition was assigned; `start` is where consumption begins, when known.
    pub fn add(&mut self, tp: Tp, start: Option<i64>, now: Instant) {
        self.remove(&tp);
        self.lanes.insert(
            tp,
            Lane {
                queue: VecDeque::new(),
                last_seen: now,
                next_fetch: start,
                released: start,
                paused: false,
            },
        );
    }

    /// A partition was revoked: what it still holds was never handed on, so its next owner
    /// reads it again from the checkpointed offset.
    pub fn remove(&mut self, tp: &Tp) {
        if let Some(lane) = self.lanes.remove(tp) {
            self.held -= lane.queue.len();
        }
    }

    /// Queues a message; `false` (and the message dropped) when the partition is not assigned.
    pub fn push(&mut self, tp: &Tp, entry: Entry<T>, now: Instant) -> bool {
        let Some(lane) = self.lanes.get_mut(tp) else {
            return false;
        };
        lane.last_seen = now;
        lane.next_fetch = Some(entry.offset + 1);
        lane.queue.push_back(entry);
        self.held += 1;
        true
    }

    /// Releases messages in event-time order for as long as no lane may still deliver an
    /// earlier one. `at_end(tp, next_fetch)` says whether a partition has nothing more to
    /// fetch right now.
    pub fn release(
        &mut self,
        now: Instant,
        mut at_end: impl FnMut(&Tp, Option<i64>) -> bool,
        mut out: impl FnMut(&Tp, Entry<T>),
    ) {
        let idle_after = self.idle_after;
        let waits = |tp: &Tp, lane: &Lane<T>, at_end: &mut dyn FnMut(&Tp, Option<i64>) -> bool| {
            lane.queue.is_empty()
                && now.duration_since(lane.last_seen) < idle_after
                && !at_end(tp, lane.next_fetch)
        };
        if self.held < MAX_HELD
            && self
                .lanes
                .iter()
                .any(|(tp, lane)| waits(tp, lane, &mut at_end))
        {
            return;
        }
        loop {
            let mut best: Option<(&Tp, i64)> = None;
            for (tp, lane) in &self.lanes {
                if let Some(head) = lane.queue.front() {
                    let key = head.ts.unwrap_or(i64::MIN);
                    if best.is_none_or(|(_, k)| key < k) {
                        best = Some((tp, key));
                    }
                }
            }
            let Some((tp, _)) = best else { return };
            let tp = tp.clone();
            let lane = self.lanes.get_mut(&tp).expect("the lane was just found");
            let entry = lane.queue.pop_front().expect("the lane has a head");
            lane.released = Some(entry.offset + 1);
            self.held -= 1;
            let emptied = lane.queue.is_empty();
            out(&tp, entry);
            if emptied && self.held < MAX_HELD && waits(&tp, &self.lanes[&tp], &mut at_end) {
                return;
            }
        }
    }

    /// Lanes to pause (far ahead, long queue) and to resume (drained).
    pub fn flow(&mut self) -> Flow {
        let mut flow = Flow::default();
        for (tp, lane) in &mut self.lanes {
            if !lane.paused && lane.queue.len() >= LANE_PAUSE_AT {
                lane.paused = true;
                flow.pause.push(tp.clone());
            } else if lane.paused && lane.queue.len() < LANE_RESUME_AT {
                lane.paused = false;
                flow.resume.push(tp.clone());
            }
        }
        flow
    }

    /// Messages held across lanes.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Every assigned partition with its next offset to fetch and to hand on, when known.
    pub fn partitions(&self) -> impl Iterator<Item = (&Tp, Option<i64>, Option<i64>)> {
        self.lanes
            .iter()
            .map(|(tp, l)| (tp, l.next_fetch, l.released))
    }

    /// Whether something is assigned, nothing is held, and every partition is at its end and
    /// has delivered nothing for `quiet` (a high watermark alone is not trusted to be final:
    /// some brokers report a stale one).
    pub fn drained(
        &self,
        now: Instant,
        quiet: Duration,
        mut at_end: impl FnMut(&Tp, Option<i64>) -> bool,
    ) -> bool {
        !self.lanes.is_empty()
            && self.held == 0
            && self
                .lanes
                .iter()
                .all(|(tp, l)| now.duration_since(l.last_seen) >= quiet && at_end(tp, l.next_fetch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> Tp {
        (Arc::from("t"), p)
    }

    fn entry(ts: Option<i64>, offset: i64) -> Entry<i64> {
        Entry {
            ts,
            offset,
            payload: ts.unwrap_or(-1),
        }
    }

    fn released(m: &mut Merge<i64>, now: Instant, ends: &[i32]) -> Vec<(i32, i64)> {
        let mut out = Vec::new();
        m.release(
            now,
            |tp, _| ends.contains(&tp.1),
            |tp, e| out.push((tp.1, e.payload)),
        );
        out
    }

    #[test]
    fn partitions_interleave_by_event_time_and_an_empty_lane_waits() {
        let now = Instant::now();
        let mut m = Merge::new(Duration::from_secs(1));
        m.add(tp(0), None, now);
        m.add(tp(1), None, now);
        for (i, ts) in [10, 30, 50].into_iter().enumerate() {
            m.push(&tp(0), entry(Some(ts), i as i64), now);
        }
        assert!(
            released(&mut m, now, &[]).is_empty(),
            "partition 1 may still send earlier events"
        );
        m.push(&tp(1), entry(Some(20), 0), now);
        m.push(&tp(1), entry(Some(40), 1), now);
        // Partition 1 empties after 40: 50 must wait for it.
        assert_eq!(
            released(&mut m, now, &[]),
            [(0, 10), (1, 20), (0, 30), (1, 40)]
        );
        assert_eq!(m.held(), 1);
        // At its end, partition 1 no longer holds the other back.
        assert_eq!(released(&mut m, now, &[1]), [(0, 50)]);
        let positions: Vec<_> = m.partitions().map(|(tp, _, r)| (tp.1, r)).collect();
        assert_eq!(positions, [(0, Some(3)), (1, Some(2))]);
    }

    #[test]
    fn an_idle_partition_stops_holding_the_others_after_the_timeout() {
        let start = Instant::now();
        let mut m = Merge::new(Duration::from_secs(1));
        m.add(tp(0), None, start);
        m.add(tp(1), None, start);
        m.push(&tp(0), entry(Some(10), 0), start);
        assert!(released(&mut m, start + Duration::from_millis(500), &[]).is_empty());
        assert_eq!(
            released(&mut m, start + Duration::from_secs(1), &[]),
            [(0, 10)]
        );
    }

    #[test]
    fn bad_messages_leave_at_once_and_revoked_lanes_drop_what_they_hold() {
        let now = Instant::now();
        let mut m = Merge::new(Duration::from_secs(1));
        m.add(tp(0), Some(5), now);
        m.add(tp(1), None, now);
        m.push(&tp(0), entry(Some(10), 5), now);
        m.push(&tp(0), entry(None, 6), now);
        m.push(&tp(1), entry(Some(5), 0), now);
        m.remove(&tp(1));
        assert_eq!(m.held(), 2);
        assert_eq!(released(&mut m, now, &[0]), [(0, 10), (0, -1)]);
        assert!(!m.push(&tp(1), entry(Some(1), 1), now), "not assigned");
        assert!(!m.drained(now, Duration::from_millis(500), |_, _| true));
        assert!(m.drained(
            now + Duration::from_millis(500),
            Duration::from_millis(500),
            |_, _| true
        ));
    }

    #[test]
    fn a_lane_far_ahead_is_paused_then_resumed() {
        let now = Instant::now();
        let mut m = Merge::new(Duration::from_secs(60));
        m.add(tp(0), None, now);
        m.add(tp(1), None, now);
        for i in 0..LANE_PAUSE_AT as i64 {
            m.push(&tp(0), entry(Some(1000 + i), i), now);
        }
        assert_eq!(m.flow().pause, [tp(0)]);
        m.push(&tp(1), entry(Some(2_000_000), 0), now);
        let out = released(&mut m, now, &[]);
        assert_eq!(out.len(), LANE_PAUSE_AT);
        assert_eq!(m.flow().resume, [tp(0)]);
    }
}
