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
//! Behind the repartition hop, a partition interleaves the input's partitions (each written
//! by whichever instance reads it, at its own pace). Each is a sub-stream of the lane, merged
//! by the same rule as partitions, so the order is the input's again; a topic's own partition
//! is a single sub-stream.
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
    /// The sub-stream of the partition the message belongs to: 0 for a topic's own
    /// partitions; behind the repartition hop, the input partition it was read from (each is
    /// in its own order there, interleaved with the others in the repartition topic).
    pub lane: u64,
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

/// One sub-stream of a partition: its messages in the order it wrote them.
#[derive(Debug)]
struct Sub<T> {
    id: u64,
    queue: VecDeque<Entry<T>>,
    /// When a message of it last arrived.
    last_seen: Instant,
}

#[derive(Debug)]
struct Lane<T> {
    /// One per sub-stream seen (a topic's own partition has one, 0); merged by event time
    /// like partitions, so interleaved sub-streams come out in order.
    subs: Vec<Sub<T>>,
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
                subs: Vec::new(),
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
            self.held -= lane.subs.iter().map(|s| s.queue.len()).sum::<usize>();
        }
    }

    /// Queues a message; `false` (and the message dropped) when the partition is not assigned.
    pub fn push(&mut self, tp: &Tp, entry: Entry<T>, now: Instant) -> bool {
        let Some(lane) = self.lanes.get_mut(tp) else {
            return false;
        };
        lane.last_seen = now;
        lane.next_fetch = Some(entry.offset + 1);
        let at = match lane.subs.iter().position(|s| s.id == entry.lane) {
            Some(at) => at,
            None => {
                lane.subs.push(Sub {
                    id: entry.lane,
                    queue: VecDeque::new(),
                    last_seen: now,
                });
                lane.subs.len() - 1
            }
        };
        let sub = &mut lane.subs[at];
        sub.last_seen = now;
        sub.queue.push_back(entry);
        self.held += 1;
        true
    }

    /// Releases messages in event-time order for as long as no lane may still deliver an
    /// earlier one. `at_end(tp, next_fetch)` says whether a partition has nothing more to
    /// fetch right now. `out` receives each message with the offset its partition resumes at
    /// once it is handed on: the earliest offset still held (sub-streams leave out of offset
    /// order), or the offset after the last message received.
    pub fn release(
        &mut self,
        now: Instant,
        mut at_end: impl FnMut(&Tp, Option<i64>) -> Option<bool>,
        mut out: impl FnMut(&Tp, Entry<T>, i64),
    ) {
        let idle_after = self.idle_after;
        // A sub-stream with nothing waiting holds the rest back while its partition is known
        // to hold more, or until it has been silent for the timeout; a partition that has
        // delivered nothing yet is one such sub-stream.
        let waits =
            |tp: &Tp, lane: &Lane<T>, at_end: &mut dyn FnMut(&Tp, Option<i64>) -> Option<bool>| {
                let recent = |seen: Instant| now.duration_since(seen) < idle_after;
                let behind = |at_end: &mut dyn FnMut(&Tp, Option<i64>) -> Option<bool>| {
                    at_end(tp, lane.next_fetch) == Some(false)
                };
                match lane.subs.as_slice() {
                    [] => recent(lane.last_seen) || behind(at_end),
                    [one] => one.queue.is_empty() && (recent(one.last_seen) || behind(at_end)),
                    // Sub-streams are waited for while they are not silent, whatever the
                    // partition holds: reading it goes on only while the shortest of those is
                    // short, so waiting for a silent one could wait for good.
                    many => many
                        .iter()
                        .any(|s| s.queue.is_empty() && recent(s.last_seen)),
                }
            };
        // Once a sub-stream waits it stays empty (nothing arrives during a release), so the
        // answer only changes when one empties.
        let mut blocked = self
            .lanes
            .iter()
            .any(|(tp, lane)| waits(tp, lane, &mut at_end));
        loop {
            if blocked && self.held < MAX_HELD {
                return;
            }
            let mut best: Option<(&Tp, usize, i64)> = None;
            for (tp, lane) in &self.lanes {
                for (at, sub) in lane.subs.iter().enumerate() {
                    if let Some(head) = sub.queue.front() {
                        let key = head.ts.unwrap_or(i64::MIN);
                        if best.is_none_or(|(_, _, k)| key < k) {
                            best = Some((tp, at, key));
                        }
                    }
                }
            }
            let Some((tp, at, _)) = best else { return };
            let tp = tp.clone();
            let lane = self.lanes.get_mut(&tp).expect("the lane was just found");
            let entry = lane.subs[at]
                .queue
                .pop_front()
                .expect("the sub-stream has a head");
            let resume = lane
                .subs
                .iter()
                .filter_map(|s| s.queue.front().map(|h| h.offset))
                .min()
                .unwrap_or_else(|| lane.next_fetch.unwrap_or(entry.resume_offset()));
            lane.released = Some(resume);
            if blocked {
                self.forced += 1;
            }
            self.held -= 1;
            let emptied = lane.subs[at].queue.is_empty();
            out(&tp, entry, resume);
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
        self.lanes
            .get(tp)
            .map_or(0, |l| l.subs.iter().map(|s| s.queue.len()).sum())
    }

    /// Messages waiting in the partition's shortest sub-stream that is not silent (a partition
    /// of one sub-stream: all it holds). Reading a partition goes on while this is short: the
    /// messages a late sub-stream needs may be behind many of another's.
    pub fn queued_shortest(&self, tp: &Tp, now: Instant) -> usize {
        let Some(lane) = self.lanes.get(tp) else {
            return 0;
        };
        if lane.subs.len() <= 1 {
            return self.queued(tp);
        }
        lane.subs
            .iter()
            .filter(|s| now.duration_since(s.last_seen) < self.idle_after)
            .map(|s| s.queue.len())
            .min()
            .unwrap_or_else(|| self.queued(tp))
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
            lane: 0,
            payload: ts.unwrap_or(-1),
        }
    }

    fn released(m: &mut Merge<i64>, now: Instant, ends: &[i32]) -> Vec<(i32, i64)> {
        let mut out = Vec::new();
        m.release(
            now,
            |tp, _| ends.contains(&tp.1).then_some(true),
            |tp, e, _| out.push((tp.1, e.payload)),
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
            |_, e, _| out.push(e.payload),
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
            |_, e, at| {
                assert_eq!(at, e.resume_offset());
                resume.push(at)
            },
        );
        assert_eq!(resume, [7, 7, 8, 9]);
        let positions: Vec<_> = m.partitions().map(|(_, _, r)| r).collect();
        assert_eq!(positions, [Some(9)]);
    }

    /// Behind the repartition hop a partition interleaves the input's partitions, each in its
    /// own order: they are merged back by event time, an empty one waits until it is silent,
    /// and the partition resumes at the earliest offset still held.
    #[test]
    fn sub_streams_of_a_partition_merge_by_event_time() {
        let now = Instant::now();
        let mut m = Merge::new(Duration::from_secs(1));
        m.add(tp(0), Some(0), now);
        let sub = |lane, ts, offset| Entry {
            lane,
            ..entry(Some(ts), offset)
        };
        // Input partition 1 ran ahead of input partition 2 into the repartition topic.
        for (offset, ts) in [10, 20, 30, 40].into_iter().enumerate() {
            m.push(&tp(0), sub(1, ts, offset as i64), now);
        }
        m.push(&tp(0), sub(2, 15, 4), now);
        let release = |m: &mut Merge<i64>, at| {
            let mut out = Vec::new();
            m.release(
                at,
                |_, _| None,
                |_, e, resume| out.push((e.payload, resume)),
            );
            out
        };
        // 10 and 15 leave; 20 waits for input partition 2, which is empty but not silent.
        assert_eq!(release(&mut m, now), [(10, 1), (15, 1)]);
        m.push(&tp(0), sub(2, 35, 5), now);
        assert_eq!(release(&mut m, now), [(20, 2), (30, 3), (35, 3)]);
        // Input partition 2 falls silent: the rest leaves, and the partition resumes after it.
        assert_eq!(release(&mut m, now + Duration::from_secs(1)), [(40, 6)]);
        assert_eq!(m.held(), 0);
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
