//! What the daemon's threads and tasks share: control flags set by signals and HTTP,
//! readiness, and the metrics. Plain atomics: the detection thread polls them between batches.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::state::StoreGuard;
use crate::telemetry::Metrics;

#[derive(Default)]
pub struct Shared {
    /// Everything `/metrics` shows.
    pub metrics: Metrics,
    /// Set once state is restored, rules compiled and the source connected.
    pub ready: AtomicBool,
    /// Tasks whose state is being restored from the changelog (`[source.scale_out]
    /// changelog`): not ready meanwhile.
    pub restoring: AtomicU64,
    /// SIGTERM/SIGINT: stop intake, drain, checkpoint, exit.
    pub stop: AtomicBool,
    /// SIGHUP: reload rules, reopen files.
    pub reload: AtomicBool,
    /// When the detection loop last turned, in ms of [`monotonic_ms`]; 0 before it starts.
    last_progress_ms: AtomicU64,
    /// `[daemon] stall_timeout` in ms; 0 until `run` sets it (never stalled).
    stall_timeout_ms: AtomicU64,
    /// The store's health, once `run` has opened it.
    pub store: OnceLock<Arc<StoreGuard>>,
}

/// Milliseconds since the first call: a clock that wall-clock steps cannot move.
fn monotonic_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

impl Shared {
    /// What `/readyz` reports: started, and no task's state being restored.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && self.restoring.load(Ordering::Relaxed) == 0
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The detection loop turned: it is not stalled.
    pub fn progress(&self) {
        // At least 1, so a beat at the clock's start is not read as "never".
        self.last_progress_ms
            .store(monotonic_ms().max(1), Ordering::Relaxed);
    }

    /// `/healthz` fails after this long without progress.
    pub fn set_stall_timeout(&self, timeout: Duration) {
        self.stall_timeout_ms
            .store(timeout.as_millis() as u64, Ordering::Relaxed);
        self.progress();
    }

    /// Why the store failed, once it has.
    pub fn store_failure(&self) -> Option<&str> {
        self.store.get().and_then(|g| g.failure())
    }

    /// What `/healthz` reports: healthy, or why not (a failed store, a stalled loop).
    pub fn health(&self) -> Result<(), String> {
        if let Some(guard) = self.store.get()
            && guard.failure().is_some()
        {
            return Err(guard.exit_message());
        }
        let timeout = self.stall_timeout_ms.load(Ordering::Relaxed);
        let last = self.last_progress_ms.load(Ordering::Relaxed);
        let idle = monotonic_ms().saturating_sub(last);
        if timeout > 0 && last > 0 && idle >= timeout {
            return Err(format!(
                "the detection loop has made no progress for {} s (stall_timeout {} s)",
                idle / 1000,
                timeout / 1000
            ));
        }
        Ok(())
    }

    /// Takes a pending reload request.
    pub fn take_reload(&self) -> bool {
        self.reload.swap(false, Ordering::Relaxed)
    }
}

/// Sets the flags from SIGTERM, SIGINT and SIGHUP for as long as the runtime runs.
pub async fn watch_signals(shared: std::sync::Arc<Shared>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); shared.stop.store(true, Ordering::Relaxed); }
            _ = int.recv() => { tracing::info!("SIGINT: shutting down"); shared.stop.store(true, Ordering::Relaxed); }
            _ = hup.recv() => { tracing::info!("SIGHUP: reloading"); shared.reload.store(true, Ordering::Relaxed); }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_fails_when_the_loop_stalls_and_recovers_when_it_turns() {
        let shared = Shared::default();
        assert!(shared.health().is_ok(), "healthy before the loop starts");
        shared.set_stall_timeout(Duration::from_millis(50));
        assert!(shared.health().is_ok());
        std::thread::sleep(Duration::from_millis(80));
        let why = shared.health().unwrap_err();
        assert!(why.contains("no progress"), "{why}");
        shared.progress();
        assert!(shared.health().is_ok());
    }

    #[test]
    fn health_fails_once_the_store_has_failed() {
        let dir = tempfile::tempdir().unwrap();
        let guard = StoreGuard::new(dir.path(), Duration::from_secs(30));
        let shared = Shared::default();
        let _ = shared.store.set(guard.clone());
        assert!(shared.health().is_ok());
        guard.fail("Input/output error (os error 5)".into());
        let why = shared.health().unwrap_err();
        assert!(
            why.contains(&dir.path().display().to_string()) && why.contains("os error 5"),
            "{why}"
        );
    }
}
