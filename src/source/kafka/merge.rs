//! Merges the partitions of a consumer by event time, so the engine (one watermark: the
//! newest event time seen) receives a stream no more disordered than each partition is.
//!
//! Each assigned partition has a lane (a queue of decoded messages). The smallest head is
//! released while every lane has data; a lane that is empty blocks the others until its
//! partition has delivered nothing for the idleness timeout, as stream processors do, so a
//! quiet partition never stalls the rest. Being at its end (its high watermark reached) does
//! not exempt a partition from that wait: with a live producer the next message may be a
//! moment away and older than the other partitions' heads (a burst of one user's events is
//! written to one partition while the others move on). A partition known to hold more is
//! waited for, however long it takes. Messages without an event time (bad ones) leave as soon
//! as they reach the head.
//!
//! Memory is bounded: once [`MAX_HELD`] messages wait, the smallest head is released even if
//! a lane is empty (the engine's lateness then absorbs the disorder). Partitions are not
//! paused at the broker instead: librdkafka resumes a paused partition at the next offset to
//! hand out, usually inside a record batch, which some brokers cannot serve (tansu 0.6
//! answers such a fetch with nothing and the rest of the batch is skipped).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A partition: topic name and partition number.
pub type Tp = (Arc<str>, i32);

/// Messages held across lanes beyond which order gives way to memory: about 80 MB of decoded
/// events, and at 1M events/s a fifth of a second of input.
pub const MAX_HELD: usize = 200_000;

/// One decoded message waiting in a lane.
#[derive(Debug)]
pub struct Entry<T> {
    /// Event time; `None` for a message that did not decode (it carries no order).
    pub ts: Option<i64>,
    pub offset: i64,
    /// More events of the same message follow this one in its lane (a message holding several
    /// records, such as an Entra Event Hubs body).
    pub more_in_message: bool,
    pub payload: T,
}

impl<T> Entry<T> {
    /// Where a partition resumes once this entry is handed on: after its message, or at its
    /// message again while the message's later events are still held. A restart then reads
    /// the whole message again, and the events already detected on are dropped as duplicates
    /// by their ids (the engine's dedup), so none is lost and none counted twice.
    pub fn resume_offset(&self) -> i64 {
        if self.more_in_message {
            self.offset
        } else {
            self.offset + 1
        }
    }
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
}

#[derive(Debug)]
pub struct Merge<T> {
    lanes: BTreeMap<Tp, Lane<T>>,
    idle_after: Duration,
    held: usize,
    forced: u64,
}

impl<T> Merge<T> {
    pub fn new(idle_after: Duration) -> Merge<T> {
        Merge {
            lanes: BTreeMap::new(),
            idle_after,
            held: 0,
            forced: 0,
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
        mut at_end: impl FnMut(&Tp, Option<i64>) -> Option<bool>,
        mut out: impl FnMut(&Tp, Entry<T>),
    ) {
        let idle_after = self.idle_after;
        let waits =
            |tp: &Tp, lane: &Lane<T>, at_end: &mut dyn FnMut(&Tp, Option<i64>) -> Option<bool>| {
                // One known to hold more is behind, not idle, and is waited for; one at its end
                // (or that cannot tell) is waited for until it has been silent for the timeout.
                lane.queue.is_empty()
                    && (at_end(tp, lane.next_fetch) == Some(false)
                        || now.duration_since(lane.last_seen) < idle_after)
            };
        // Once a lane waits it stays empty (nothing arrives during a release), so the
        // answer only changes when a lane empties.
        let mut blocked = self
            .lanes
            .iter()
            .any(|(tp, lane)| waits(tp, lane, &mut at_end));
        loop {
            if blocked && self.held < MAX_HELD {
                return;
            }
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
            lane.released = Some(entry.resume_offset());
            if blocked {
                self.forced += 1;
            }
            self.held -= 1;
            let emptied = lane.queue.is_empty();
            out(&tp, entry);
            if emptied && waits(&tp, &self.lanes[&tp], &mut at_end) {
                blocked = true;
            }
        }
    }

    /// Messages released out of order because memory was full.
    pub fn forced(&self) -> u64 {
        self.forced
    }

    /// Messages waiting in one partition's lane (0 when it is not assigned).
    pub fn queued(&self, tp: &Tp) -> usize {
        self.lanes.get(tp).map_or(0, |l| l.queue.len())
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

    /// Whether something is assigned, nothing is held, and every partition has delivered
    /// nothing for `quiet` and is at its end or cannot tell (a broker whose watermarks are not
    /// usable); or has delivered nothing for `silent`, whatever its watermark says (a
    /// transactional topic's last offset is a marker no consumer receives).
    pub fn drained(
        &self,
        now: Instant,
        quiet: Duration,
        silent: Duration,
        mut at_end: impl FnMut(&Tp, Option<i64>) -> Option<bool>,
    ) -> bool {
        !self.lanes.is_empty()
            && self.held == 0
            && self.lanes.iter().all(|(tp, l)| {
                let idle = now.duration_since(l.last_seen);
                idle >= silent || (idle >= quiet && at_end(tp, l.next_fetch) != Some(false))
            })
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
            more_in_message: false,
            payload: ts.unwrap_or(-1),
        }
    }

    fn released(m: &mut Merge<i64>, now: Instant, ends: &[i32]) -> Vec<(i32, i64)> {
        let mut out = Vec::new();
        m.release(
            now,
            |tp, _| ends.contains(&tp.1).then_some(true),
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
        // At its end, partition 1 still holds the other back while a live producer may add
        // to it: the next message may be older than 50.
        assert!(released(&mut m, now + Duration::from_millis(999), &[1]).is_empty());
        // Silent for the idleness timeout, it no longer does.
        assert_eq!(
            released(&mut m, now + Duration::from_secs(1), &[1]),
            [(0, 50)]
        );
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
        // A partition known to hold more (below its high watermark) is behind, not idle.
        m.push(&tp(0), entry(Some(20), 1), start);
        let mut out = Vec::new();
        m.release(
            start + Duration::from_secs(60),
            |tp, _| Some(tp.1 == 0),
            |_, e| out.push(e.payload),
        );
        assert!(out.is_empty());
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

        let (quiet, silent) = (Duration::from_millis(500), Duration::from_secs(10));
        assert!(!m.drained(now, quiet, silent, |_, _| Some(true)));
        assert!(m.drained(now + quiet, quiet, silent, |_, _| Some(true)));
        assert!(m.drained(now + quiet, quiet, silent, |_, _| None));
        assert!(!m.drained(now + quiet, quiet, silent, |_, _| Some(false)));
        assert!(m.drained(now + silent, quiet, silent, |_, _| Some(false)));
    }

    #[test]
    fn a_message_of_several_events_is_resumed_at_until_its_last_event_leaves() {
        let now = Instant::now();
        let mut m = Merge::new(Duration::from_secs(1));
        m.add(tp(0), Some(7), now);
        for (ts, more) in [(10, true), (20, true), (30, false)] {
            let part = Entry {
                more_in_message: more,
                ..entry(Some(ts), 7)
            };
            m.push(&tp(0), part, now);
        }
        m.push(&tp(0), entry(Some(40), 8), now);
        let mut resume = Vec::new();
        m.release(
            now,
            |_, _| Some(true),
            |_, e| resume.push(e.resume_offset()),
        );
        assert_eq!(resume, [7, 7, 8, 9]);
        let positions: Vec<_> = m.partitions().map(|(_, _, r)| r).collect();
        assert_eq!(positions, [Some(9)]);
    }

    #[test]
    fn beyond_the_memory_bound_the_smallest_head_leaves_anyway() {
        let now = Instant::now();
        let mut m = Merge::new(Duration::from_secs(60));
        m.add(tp(0), None, now);
        m.add(tp(1), None, now);
        for i in 0..MAX_HELD as i64 {
            m.push(&tp(0), entry(Some(1000 + i), i), now);
        }
        // Partition 1 is empty and may still deliver: order waits, until memory says no.
        assert_eq!(released(&mut m, now, &[]).len(), 1);
        assert_eq!(m.held(), MAX_HELD - 1);
    }
}
