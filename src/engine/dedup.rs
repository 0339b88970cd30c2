//! Drops a source event seen twice (same `id`), as SPEC §1 requires: at-least-once sources
//! redeliver, and a redelivered failure must not count twice in a window.

use std::collections::VecDeque;

use foldhash::HashMap;

/// Ids are remembered at most this long in event time past the newest event...
pub const DEDUP_HORIZON_MS: i64 = 24 * 3_600_000;
/// ...and at most this many at once (oldest forgotten first), so a flood cannot grow it.
pub const DEDUP_CAPACITY: usize = 1_000_000;

#[derive(Default)]
pub struct Dedup {
    seen: HashMap<u64, i64>,
    order: VecDeque<(i64, u64)>,
    max_ts: i64,
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
        self.expire();
        false
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
