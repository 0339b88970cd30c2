//! What the daemon's threads and tasks share: control flags set by signals and HTTP,
//! readiness, and the metrics. Plain atomics: the detection thread polls them between batches.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::telemetry::Metrics;

#[derive(Default)]
pub struct Shared {
    /// Everything `/metrics` shows.
    pub metrics: Metrics,
    /// Set once state is restored, rules compiled and the source connected.
    pub ready: AtomicBool,
    /// SIGTERM/SIGINT: stop intake, drain, checkpoint, exit.
    pub stop: AtomicBool,
    /// SIGHUP: reload rules, reopen files.
    pub reload: AtomicBool,
}

impl Shared {
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
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
