//! Keeps a failing store from hanging the daemon: every store call has a deadline, any store
//! error is fatal, and a watchdog thread ends the process when a call overruns its deadline,
//! when the state directory is removed or replaced, or when a failure was not acted on in time.
//!
//! sled 0.34 does not always return an error when its disk fails: with its directory removed it
//! was seen waiting forever inside `flush` (`make_stable`), and a thread blocked there cannot
//! be interrupted. So the daemon never waits on sled without a deadline, and what cannot be
//! interrupted is ended with the process (`std::process::exit`), after saying why.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use super::StateWrites;
use super::{Entries, LOCK_FILE, StateError, Store};

/// How often the watchdog looks at the store's calls and directory.
const WATCH_EVERY: Duration = Duration::from_millis(250);
/// How long the daemon has, after the store failed, to stop on its own before the watchdog
/// ends the process: enough to log and leave the detection loop, not enough to look hung.
pub const FATAL_GRACE: Duration = Duration::from_secs(5);

/// How a failure caused by the state directory's removal or replacement begins.
const REMOVED: &str = "the state directory was removed or replaced";

/// The health of one open store, shared by its [`Guarded`] handle, the watchdog and whoever
/// asks (the detection loop, `/healthz`).
pub struct StoreGuard {
    dir: PathBuf,
    io_timeout: Duration,
    /// The first failure and when it happened; later ones add nothing.
    failure: OnceLock<(String, Instant)>,
    /// Calls in progress: id -> (started, what).
    in_flight: Mutex<BTreeMap<u64, (Instant, &'static str)>>,
    next_call: AtomicU64,
    /// Device and inode of the directory's lock file when the store was opened.
    lock_file: Option<(u64, u64)>,
}

impl StoreGuard {
    /// Watches the store open in `dir`: each call may take at most `io_timeout`.
    pub fn new(dir: &Path, io_timeout: Duration) -> Arc<StoreGuard> {
        Arc::new(StoreGuard {
            dir: dir.to_path_buf(),
            io_timeout,
            failure: OnceLock::new(),
            in_flight: Mutex::new(BTreeMap::new()),
            next_call: AtomicU64::new(0),
            lock_file: identity(&dir.join(LOCK_FILE)),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Why the store failed, once it has.
    pub fn failure(&self) -> Option<&str> {
        self.failure.get().map(|(why, _)| why.as_str())
    }

    /// Marks the store failed (the first cause is kept) and logs it with the directory.
    pub fn fail(&self, cause: String) {
        // A write that failed because the directory is gone says so, whichever thread (the
        // checkpoint writer or the watchdog) notices first.
        let cause = match self.lock_file {
            Some(expected)
                if !cause.starts_with(REMOVED)
                    && identity(&self.dir.join(LOCK_FILE)) != Some(expected) =>
            {
                format!("{REMOVED} (its {LOCK_FILE} is gone): {cause}")
            }
            _ => cause,
        };
        if self.failure.set((cause, Instant::now())).is_ok() {
            tracing::error!(
                dir = %self.dir.display(),
                cause = self.failure().unwrap_or_default(),
                "the state store failed; authwatch stops"
            );
        }
    }

    /// The message the process ends with.
    pub fn exit_message(&self) -> String {
        format!(
            "the state store in {} failed: {}; exiting (fix the disk or directory, then start again)",
            self.dir.display(),
            self.failure().unwrap_or("unknown cause")
        )
    }

    /// Ends the process with exit code 1 after saying why. For a store that failed: threads
    /// may be blocked inside sled for good, and sled flushes when dropped, so nothing of it is
    /// waited for or dropped.
    pub fn exit_now(&self) -> ! {
        let message = self.exit_message();
        tracing::error!("{message}");
        eprintln!("authwatch: {message}");
        std::process::exit(1)
    }

    /// Runs one store call under the deadline's watch; an error fails the store. Once it has
    /// failed no call reaches it: after a failed write sled's memory and disk may disagree (as
    /// PostgreSQL concluded of a failed fsync), so nothing more is read or written.
    fn call<T>(
        &self,
        what: &'static str,
        f: impl FnOnce() -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        if let Some(why) = self.failure() {
            return Err(StateError::Io {
                dir: self.dir.clone(),
                reason: format!("the store failed earlier: {why}"),
            });
        }
        let id = self.next_call.fetch_add(1, Ordering::Relaxed);
        self.calls().insert(id, (Instant::now(), what));
        let in_flight = InFlight { guard: self, id };
        let result = f();
        drop(in_flight);
        if let Err(e) = &result {
            self.fail(cause(e));
        }
        result
    }

    fn calls(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, (Instant, &'static str)>> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One look by the watchdog: what is wrong now, if anything, and whether it is past waiting
    /// for the daemon to stop by itself.
    fn inspect(&self) -> Option<Verdict> {
        let overdue = self
            .calls()
            .values()
            .find(|(started, _)| started.elapsed() >= self.io_timeout)
            .map(|(_, what)| *what);
        if let Some(what) = overdue {
            self.fail(format!(
                "a {what} got no answer within io_timeout ({})",
                humantime::format_duration(self.io_timeout)
            ));
            // The caller is blocked inside sled and cannot be woken: nothing will stop it.
            return Some(Verdict::ExitNow);
        }
        if let Some(expected) = self.lock_file
            && identity(&self.dir.join(LOCK_FILE)) != Some(expected)
        {
            // As PostgreSQL rechecks postmaster.pid: a directory removed or replaced under a
            // running daemon means its writes go nowhere anyone will read.
            self.fail(format!("{REMOVED} (its {LOCK_FILE} is gone)"));
        }
        let (_, at) = self.failure.get()?;
        Some(if at.elapsed() >= FATAL_GRACE {
            Verdict::ExitNow
        } else {
            Verdict::Failed
        })
    }
}

/// A call in progress; leaving it, by return or by panic, takes it off the watch. A panic
/// inside the store fails it: the thread that would have reported an error is gone.
struct InFlight<'a> {
    guard: &'a StoreGuard,
    id: u64,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.guard.calls().remove(&self.id);
        if thread::panicking() {
            self.guard.fail("a store call panicked".into());
        }
    }
}

/// A store error's cause, without the directory the exit message names anyway.
fn cause(e: &StateError) -> String {
    match e {
        StateError::Io { reason, .. } | StateError::Corrupt { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

enum Verdict {
    /// Failed: the daemon is expected to stop by itself.
    Failed,
    /// Failed and the daemon has not stopped in time (or cannot): end the process.
    ExitNow,
}

/// Device and inode of a file, `None` when it cannot be read.
fn identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Starts the watchdog thread; it runs until the process ends.
pub fn start_watchdog(guard: Arc<StoreGuard>) {
    thread::Builder::new()
        .name("authwatch-store-watch".into())
        .spawn(move || {
            loop {
                thread::sleep(WATCH_EVERY);
                if let Some(Verdict::ExitNow) = guard.inspect() {
                    guard.exit_now();
                }
            }
        })
        .expect("the store watchdog starts");
}

/// A store whose every call is watched by a [`StoreGuard`].
pub struct Guarded<S> {
    inner: S,
    guard: Arc<StoreGuard>,
}

impl<S> Guarded<S> {
    pub fn new(inner: S, guard: Arc<StoreGuard>) -> Guarded<S> {
        Guarded { inner, guard }
    }
}

impl<S: Store> Store for Guarded<S> {
    fn scan(&self, prefix: &[u8]) -> Result<Entries, StateError> {
        self.guard.call("read", || self.inner.scan(prefix))
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.guard.call("read", || self.inner.get(key))
    }

    fn scan_from(&self, prefix: &[u8], start: &[u8], limit: usize) -> Result<Entries, StateError> {
        self.guard
            .call("read", || self.inner.scan_from(prefix, start, limit))
    }

    fn commit(&self, writes: StateWrites) -> Result<(), StateError> {
        self.guard.call("write", || self.inner.commit(writes))
    }

    fn size_on_disk(&self) -> u64 {
        self.guard
            .call("size query", || Ok(self.inner.size_on_disk()))
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::SledStore;

    #[test]
    fn an_error_fails_the_store_and_no_later_call_reaches_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let guard = StoreGuard::new(dir.path(), Duration::from_secs(30));
        let guarded = Guarded::new(store, guard.clone());
        assert!(guarded.get(b"s/x").unwrap().is_none());
        assert!(guard.failure().is_none());
        guard.fail("No space left on device (os error 28)".into());
        let err = guarded.get(b"s/x").unwrap_err().to_string();
        assert!(err.contains("No space left"), "{err}");
        assert!(
            guard
                .exit_message()
                .contains(&dir.path().display().to_string())
        );
    }

    #[test]
    fn a_call_past_its_deadline_ends_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let _store = SledStore::open(dir.path()).unwrap();
        let guard = StoreGuard::new(dir.path(), Duration::from_millis(50));
        assert!(guard.inspect().is_none());
        let g = guard.clone();
        let stuck = thread::spawn(move || {
            let _ = g.call("write", || {
                thread::sleep(Duration::from_millis(300));
                Ok(())
            });
        });
        thread::sleep(Duration::from_millis(150));
        assert!(matches!(guard.inspect(), Some(Verdict::ExitNow)));
        assert!(guard.failure().unwrap().contains("io_timeout"));
        stuck.join().unwrap();
    }

    #[test]
    fn a_panic_inside_a_store_call_fails_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let guard = StoreGuard::new(dir.path(), Duration::from_secs(30));
        let g = guard.clone();
        let panicked = thread::spawn(move || g.call::<()>("write", || panic!("sled bug")));
        assert!(panicked.join().is_err());
        assert_eq!(guard.failure(), Some("a store call panicked"));
        assert!(guard.calls().is_empty());
    }

    #[test]
    fn a_removed_directory_fails_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let _store = SledStore::open(&state).unwrap();
        let guard = StoreGuard::new(&state, Duration::from_secs(30));
        assert!(guard.inspect().is_none());
        std::fs::remove_dir_all(&state).unwrap();
        assert!(matches!(guard.inspect(), Some(Verdict::Failed)));
        assert!(guard.failure().unwrap().contains("removed"));
    }
}
