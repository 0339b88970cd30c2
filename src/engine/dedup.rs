//! Drops a source event seen twice (same `id`), as SPEC §1 requires: at-least-once sources
//! redeliver, and a redelivered failure must not count twice in a window.

use std::collections::VecDeque;

use foldhash::HashMap;

use super::persist::StateWrites;

/// Ids are remembered at most this long in event time past the newest event...
pub const DEDUP_HORIZON_MS: i64 = 24 * 3_600_000;
/// ...and at most this many at once (oldest forgotten first), so a flood cannot grow it.
pub const DEDUP_CAPACITY: usize = 1_000_000;

#[derive(Default)]
pub struct Dedup {
    seen: HashMap<u64, i64>,
    order: VecDeque<(i64, u64)>,
    max_ts: i64,
    /// Ids first seen since the last checkpoint.
    fresh: Vec<(i64, u64)>,
    /// Stored segments: number and newest time, oldest first.
    segments: VecDeque<(u64, i64)>,
}

impl Dedup {
    /// True when an event with this id was already seen.
    pub fn is_duplicate(&mut self, id: &str, ts: i64) -> bool {
        let hash = xxhash_rust::xxh3::xxh3_64(id.as_bytes());
        if self.seen.contains_key(&hash) {
            return true;
        }
        self.max_ts = self.max_ts.max(ts);
        self.seen.insert(hash, ts);
        self.order.push_back((ts, hash));
        self.fresh.push((ts, hash));
        self.expire();
        false
    }

    /// Writes the ids seen since the last checkpoint as one segment, and deletes segments
    /// that are entirely past the horizon.
    pub fn checkpoint(&mut self, prefix: &[u8], out: &mut StateWrites) {
        if !self.fresh.is_empty() {
            let number = self.segments.back().map_or(0, |(n, _)| n + 1);
            let mut packed = Vec::with_capacity(self.fresh.len() * 16);
            let mut newest = i64::MIN;
            for (ts, hash) in self.fresh.drain(..) {
                packed.extend_from_slice(&ts.to_le_bytes());
                packed.extend_from_slice(&hash.to_le_bytes());
                newest = newest.max(ts);
            }
            out.put([prefix, &number.to_be_bytes()].concat(), packed);
            self.segments.push_back((number, newest));
        }
        let cutoff = self.max_ts.saturating_sub(DEDUP_HORIZON_MS);
        while let Some(&(number, newest)) = self.segments.front() {
            if newest >= cutoff {
                break;
            }
            self.segments.pop_front();
            out.delete([prefix, &number.to_be_bytes()].concat());
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
            if self.seen.insert(hash, ts).is_none() {
                self.order.push_back((ts, hash));
            }
        }
        // Segments arrive in key order, which is their number order.
        self.segments.push_back((number, newest));
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
        }
    }
}
