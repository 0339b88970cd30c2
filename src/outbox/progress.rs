//! What delivery workers report: each sink's counters ([`SinkStatus`], for logs and metrics)
//! and the progress not yet committed ([`Progress`]), which `service.rs` flushes. A module of
//! its own so that the service (which reads them) and the workers (which write them) both
//! depend on it and not on each other.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64};

use crate::state::StateWrites;

/// A sink's counters, for logs and metrics.
#[derive(Debug)]
pub struct SinkStatus {
    pub name: String,
    pub delivered: AtomicU64,
    /// Failed attempts (each retried or, when too old, dead-lettered).
    pub failures: AtomicU64,
    pub dead_letters: AtomicU64,
    pub breaker_open: AtomicBool,
    /// The next seq the sink delivers.
    pub cursor: AtomicU64,
}

/// Progress not yet committed: the workers add, the flusher takes.
#[derive(Default)]
pub(super) struct Progress {
    pub(super) pending: Mutex<Pending>,
}

#[derive(Default)]
pub(super) struct Pending {
    pub(super) writes: StateWrites,
    pub(super) cursors: BTreeMap<String, u64>,
    pub(super) dirty: bool,
}

impl Progress {
    /// Records a sink's new cursor and the dead letters it wrote getting there; both are
    /// committed together.
    pub fn advance(&self, sink: &str, cursor: u64, dead: Vec<(Vec<u8>, Vec<u8>)>) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for (k, v) in dead {
            p.writes.put(k, v);
        }
        p.cursors.insert(sink.to_string(), cursor);
        p.dirty = true;
    }
}
