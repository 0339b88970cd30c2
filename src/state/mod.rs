//! Durable state: the store trait, its sled implementation, and opening a state directory
//! with errors that name the directory and the way out.
//!
//! Everything lives in one sled tree so that a checkpoint (engine state and source positions) is
//! one atomic batch, and the outbox (alerts, cursors, dead letters) shares it. Key prefixes:
//!
//! | prefix | owner | holds |
//! |---|---|---|
//! | `m/` | this module | `m/version`: the state format |
//! | `g/`, `r/`, `e/`, `d/` | the engine (`engine/persist.rs`) | groups, rule shapes, lateness buffer and clock, event-id dedup segments |
//! | `s/` | sources | `s/<source>`: the position to resume from (JSON) |
//! | `o/` | the outbox (`outbox/store.rs`) | `o/<seq>`: alerts waiting for delivery (seq: 8 bytes big-endian) |
//! | `i/` | the outbox | `i/<alert id>`: ids already stored, so an alert produced again after a crash is not sent twice |
//! | `c/` | the outbox | `c/<sink>`: the next seq each sink delivers |
//! | `x/` | the outbox | `x/<sink>/<seq>`: dead letters, listed by `dead-letters`, sent again by `redrive` |
//! | `m/outbox-next` | the outbox | the seq the next stored alert gets |
//! | `t/<task u32>` | the detector (`app/tasks.rs`), in a checkpoint's writes only | a task's state, produced to the changelog topic by `source/kafka/changelog.rs`, never stored here |
//! | `0xFE <len u16><key><n u32>` | `sled_store.rs` | chunk `n` of a value over 32 KiB stored under `<key>` |
//!
//! Besides sled's files the directory holds `authwatch.lock`, locked while a process has the
//! store open.
//!
//! Every value is stored behind a tag byte (inline, or the number of chunks); see
//! `sled_store.rs` for why large values are chunked.

mod guard;
mod rewrite;
mod sled_store;
mod writer;
mod writes;

pub use guard::{Guarded, StoreGuard, start_watchdog};
pub use sled_store::{LOCK_FILE, SledStore};
pub use writer::{CheckpointWriter, OnDurable};
pub use writes::{Deferred, StateWrites};

use std::path::{Path, PathBuf};

/// The state format this build reads and writes.
pub const STATE_VERSION: &str = "authwatch-state/2";
pub const VERSION_KEY: &[u8] = b"m/version";
pub const SOURCE_PREFIX: &[u8] = b"s/";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "the state directory {dir} is in use by another authwatch process; stop that process, or set another [state] dir"
    )]
    Locked { dir: PathBuf },
    #[error(
        "the state in {dir} is unreadable ({reason}); start with --reset-state to move it aside and begin afresh"
    )]
    Corrupt { dir: PathBuf, reason: String },
    #[error(
        "the state in {dir} was written by an incompatible version ({found}, this build reads {STATE_VERSION}); start with --reset-state to move it aside"
    )]
    WrongVersion { dir: PathBuf, found: String },
    #[error("cannot use the state directory {dir}: {reason}")]
    Io { dir: PathBuf, reason: String },
    #[error("cannot write the tasks' state to the changelog topic {topic}: {reason}")]
    Changelog { topic: String, reason: String },
}

/// Stored entries: keys and values in key order.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// A key/value store with atomic batches.
pub trait Store {
    /// Every entry whose key starts with `prefix`, in key order.
    fn scan(&self, prefix: &[u8]) -> Result<Entries, StateError>;
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;
    /// At most `limit` entries whose key starts with `prefix`, from `start` (inclusive) on, in
    /// key order: the outbox reads its log from a cursor without loading the whole log.
    fn scan_from(&self, prefix: &[u8], start: &[u8], limit: usize) -> Result<Entries, StateError> {
        let mut all = self.scan(prefix)?;
        all.retain(|(k, _)| k.as_slice() >= start);
        all.truncate(limit);
        Ok(all)
    }
    /// Applies all writes atomically and durably.
    fn commit(&self, writes: StateWrites) -> Result<(), StateError>;
    /// Bytes on disk (for metrics and the checkpoint log).
    fn size_on_disk(&self) -> u64;
}

/// Every entry under any of `prefixes` (an owner's keys, e.g. the engine's), in prefix order.
pub fn scan_prefixes(store: &dyn Store, prefixes: &[&[u8]]) -> Result<Entries, StateError> {
    let mut all = Vec::new();
    for prefix in prefixes {
        all.extend(store.scan(prefix)?);
    }
    Ok(all)
}

/// Moves a state directory aside (`<dir>.old-<unix seconds>`) so a fresh one can start;
/// returns where it went, or `None` when there was nothing to move.
pub fn reset(dir: &Path) -> Result<Option<PathBuf>, StateError> {
    if !dir.exists() {
        return Ok(None);
    }
    let stamp = chrono::Utc::now().timestamp();
    let mut name = dir.as_os_str().to_owned();
    name.push(format!(".old-{stamp}"));
    let target = PathBuf::from(name);
    std::fs::rename(dir, &target).map_err(|e| StateError::Io {
        dir: dir.to_path_buf(),
        reason: format!("cannot move it aside: {e}"),
    })?;
    Ok(Some(target))
}

/// The key a source keeps its position under.
pub fn source_key(source: &str) -> Vec<u8> {
    [SOURCE_PREFIX, source.as_bytes()].concat()
}
