//! Drops a source event seen twice (same `id`), as SPEC §1 requires: at-least-once sources
//! redeliver, and a redelivered failure must not count twice in a window.

use std::collections::VecDeque;

use foldhash::HashSet;

use crate::state::StateWrites;

/// Ids are remembered at most this long in event time past the newest event...
pub const DEDUP_HORIZON_MS: i64 = 24 * 3_600_000;
/// ...and at most this many at once (oldest forgotten first), so a flood cannot grow it.
pub const DEDUP_CAPACITY: usize = 1_000_000;

#[derive(Default)]
pub struct Dedup {
    /// The ids' hashes (their times are in `order`, which forgets them oldest first).
    seen: HashSet<u64>,
    order: VecDeque<(i64, u64)>,
    max_ts: i64,
    /// `remembered` at the last checkpoint: the ids first seen since are the tail of
    /// `order` (those still remembered), so they need no list of their own.
    checkpointed: u64,
    /// Stored segments, oldest first: number, newest time, and how many ids had been
    /// remembered in all (`remembered`) once its last one was.
    segments: VecDeque<Segment>,
    /// Ids ever remembered, and ever forgotten (past the horizon or the capacity): a segment
    /// whose ids are all forgotten is deleted, so the store holds no more than memory does.
    remembered: u64,
    forgotten: u64,
}

#[derive(Clone, Copy)]
struct Segment {
    number: u64,
    newest: i64,
    end: u64,
}

impl Dedup {
    /// True when an event with this id was already seen.
    pub fn is_duplicate(&mut self, id: &str, ts: i64) -> bool {
        let hash = xxhash_rust::xxh3::xxh3_64(id.as_bytes());
        // One probe: the insert says whether it was there.
        if !self.seen.insert(hash) {
            return true;
        }
        self.max_ts = self.max_ts.max(ts);
        self.order.push_back((ts, hash));
        self.remembered += 1;
        self.expire();
        false
    }

    /// A restored newest time beyond `latest` comes back to `to`, so real ids are not taken
    /// as past the horizon.
    pub fn bound_clock(&mut self, latest: i64, to: i64) {
        if self.max_ts > latest {
            self.max_ts = to;
        }
    }

    /// Writes the ids seen since the last checkpoint as one segment, and deletes segments
    /// that are entirely past the horizon.
    pub fn checkpoint(&mut self, prefix: &[u8], out: &mut StateWrites) {
        // `order` holds ids `forgotten..remembered`; those from `checkpointed` on are new.
        let first_fresh = self.checkpointed.saturating_sub(self.forgotten) as usize;
        self.checkpointed = self.remembered;
        if first_fresh < self.order.len() {
            let number = self.segments.back().map_or(0, |s| s.number + 1);
            let fresh: Vec<(i64, u64)> = self.order.range(first_fresh..).copied().collect();
            let newest = fresh.iter().map(|&(ts, _)| ts).max().unwrap_or(i64::MIN);
            let key = [prefix, &number.to_be_bytes()].concat();
            // Packed on the checkpoint writer's thread: a busy second holds a million ids.
            out.defer(Box::new(move |w: &mut StateWrites| {
                let mut packed = Vec::with_capacity(fresh.len() * 16);
                for (ts, hash) in fresh {
                    packed.extend_from_slice(&ts.to_le_bytes());
                    packed.extend_from_slice(&hash.to_le_bytes());
                }
                w.put(key, packed);
            }));
            self.segments.push_back(Segment {
                number,
                newest,
                end: self.remembered,
            });
        }
        let cutoff = self.max_ts.saturating_sub(DEDUP_HORIZON_MS);
        while let Some(&segment) = self.segments.front() {
            if segment.newest >= cutoff && segment.end > self.forgotten {
                break;
            }
            self.segments.pop_front();
            out.delete([prefix, &segment.number.to_be_bytes()].concat());
        }
    }

    /// Loads one stored segment (`number` is the key after the prefix).
    pub fn restore_segment(&mut self, number: &[u8], packed: &[u8]) -> Result<(), String> {
        let number = u64::from_be_bytes(
            number
                .try_into()
                .map_err(|_| "a dedup segment key is not 8 bytes")?,
        );
        if !packed.len().is_multiple_of(16) {
            return Err(format!(
                "dedup segment {number} is {} bytes, not a multiple of 16",
                packed.len()
            ));
        }
        let mut newest = i64::MIN;
        for chunk in packed.chunks_exact(16) {
            let ts = i64::from_le_bytes(chunk[..8].try_into().expect("8 bytes"));
            let hash = u64::from_le_bytes(chunk[8..].try_into().expect("8 bytes"));
            newest = newest.max(ts);
            self.max_ts = self.max_ts.max(ts);
            if self.seen.insert(hash) {
                self.order.push_back((ts, hash));
                self.remembered += 1;
            }
        }
        // Segments arrive in key order, which is their number order.
        self.segments.push_back(Segment {
            number,
            newest,
            end: self.remembered,
        });
        self.checkpointed = self.remembered;
        self.expire();
        Ok(())
    }

    fn expire(&mut self) {
        let cutoff = self.max_ts.saturating_sub(DEDUP_HORIZON_MS);
        while let Some(&(ts, hash)) = self.order.front() {
            if ts >= cutoff && self.order.len() <= DEDUP_CAPACITY {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&hash);
            self.forgotten += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segments(writes: &mut StateWrites) -> (Vec<u64>, Vec<u64>) {
        writes.resolve();
        let number = |k: &[u8]| u64::from_be_bytes(k[2..].try_into().unwrap());
        (
            writes.puts.iter().map(|(k, _)| number(k)).collect(),
            writes.deletes.iter().map(|k| number(k)).collect(),
        )
    }

    #[test]
    fn ids_survive_a_checkpoint_and_restore() {
        let mut d = Dedup::default();
        assert!(!d.is_duplicate("a", 1));
        assert!(d.is_duplicate("a", 2));
        let mut w = StateWrites::default();
        d.checkpoint(b"d/", &mut w);
        w.resolve();
        let mut again = Dedup::default();
        for (k, v) in &w.puts {
            again.restore_segment(&k[2..], v).unwrap();
        }
        assert!(again.is_duplicate("a", 3));
        assert!(!again.is_duplicate("b", 3));
    }

    #[test]
    fn each_segment_holds_the_ids_first_seen_since_the_last_checkpoint_and_no_others() {
        let ids_in = |w: &mut StateWrites| {
            w.resolve();
            w.puts.iter().map(|(_, v)| v.len() / 16).collect::<Vec<_>>()
        };
        let mut d = Dedup::default();
        d.is_duplicate("a", 1);
        let mut w = StateWrites::default();
        d.checkpoint(b"d/", &mut w);
        assert_eq!(ids_in(&mut w), [1]);
        d.is_duplicate("a", 2);
        d.is_duplicate("b", 2);
        d.is_duplicate("c", 3);
        let mut w = StateWrites::default();
        d.checkpoint(b"d/", &mut w);
        assert_eq!(ids_in(&mut w), [2], "b and c, not a again");
        let mut w = StateWrites::default();
        d.checkpoint(b"d/", &mut w);
        assert_eq!(
            ids_in(&mut w),
            Vec::<usize>::new(),
            "nothing new, no segment"
        );
        // Restored ids are not new: the next checkpoint writes only what follows them.
        let mut again = Dedup::default();
        again
            .restore_segment(&0u64.to_be_bytes(), &[0; 32])
            .unwrap();
        again.is_duplicate("d", 4);
        let mut w = StateWrites::default();
        again.checkpoint(b"d/", &mut w);
        assert_eq!(ids_in(&mut w), [1]);
    }

    #[test]
    fn segments_are_deleted_past_the_horizon_and_past_the_capacity() {
        let mut d = Dedup::default();
        d.is_duplicate("old", 0);
        let mut w = StateWrites::default();
        d.checkpoint(b"d/", &mut w);
        assert_eq!(segments(&mut w), (vec![0], vec![]));
        // A day later the first segment is past the horizon.
        d.is_duplicate("new", DEDUP_HORIZON_MS + 1);
        let mut w = StateWrites::default();
        d.checkpoint(b"d/", &mut w);
        assert_eq!(segments(&mut w), (vec![1], vec![0]));
        // A flood of new ids within the horizon pushes segment 1's id out of memory: the
        // store lets it go too.
        for i in 0..DEDUP_CAPACITY {
            d.is_duplicate(&format!("flood-{i}"), DEDUP_HORIZON_MS + 2);
        }
        let mut w = StateWrites::default();
        d.checkpoint(b"d/", &mut w);
        assert_eq!(segments(&mut w), (vec![2], vec![1]));
        assert!(!d.is_duplicate("new", DEDUP_HORIZON_MS + 3), "forgotten");
    }
}
