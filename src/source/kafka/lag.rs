//! Consumer lag per partition: how many messages the broker holds beyond what this consumer
//! has handed to detection. Shared with whoever reports it (metrics, the periodic log).

use std::collections::BTreeMap;
use std::sync::Mutex;

/// One assigned partition's figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartitionLag {
    /// The broker's high watermark as of the last fetch (-1 before the first).
    pub high_watermark: i64,
    /// The next offset to hand to detection (-1 while unknown).
    pub position: i64,
}

impl PartitionLag {
    /// Messages behind, when both ends are known.
    pub fn lag(&self) -> Option<i64> {
        (self.high_watermark >= 0 && self.position >= 0)
            .then(|| (self.high_watermark - self.position).max(0))
    }
}

/// Lag of the partitions this consumer holds now, keyed by (topic, partition).
#[derive(Debug, Default)]
pub struct ConsumerLag {
    partitions: Mutex<BTreeMap<(String, i32), PartitionLag>>,
}

impl ConsumerLag {
    /// Every assigned partition's figures, in (topic, partition) order.
    pub fn snapshot(&self) -> Vec<((String, i32), PartitionLag)> {
        self.lock().iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// The sum over partitions whose lag is known.
    pub fn total(&self) -> i64 {
        self.lock().values().filter_map(PartitionLag::lag).sum()
    }

    /// Replaces the figures with those of the current assignment.
    pub(super) fn set(&self, figures: BTreeMap<(String, i32), PartitionLag>) {
        *self.lock() = figures;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, i32), PartitionLag>> {
        // The map is replaced whole: a panic elsewhere cannot leave it half-written.
        self.partitions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_known_only_when_both_ends_are() {
        let lag = ConsumerLag::default();
        lag.set(BTreeMap::from([
            (
                ("t".into(), 0),
                PartitionLag {
                    high_watermark: 100,
                    position: 40,
                },
            ),
            (
                ("t".into(), 1),
                PartitionLag {
                    high_watermark: -1,
                    position: 0,
                },
            ),
        ]));
        assert_eq!(lag.total(), 60);
        assert_eq!(lag.snapshot()[1].1.lag(), None);
    }
}
