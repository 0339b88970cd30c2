//! Starts one delivery worker per sink on the daemon's runtime, persists their progress
//! (cursors and dead letters, in one commit every [`FLUSH_EVERY`]), deletes log entries every
//! sink is past, and drains the workers at shutdown.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::progress::{Progress, SinkStatus};
use super::store::{ID_PREFIX, OutboxStore, SharedStore, cursor_key, entry_key};
use super::worker::Worker;
use super::writer::OutboxWriter;
use crate::sink::{self, Deliver, SinkConfig};
use crate::state::{StateError, StateWrites};

/// How often cursors and dead letters are committed. A crash loses at most this much
/// progress, which means those alerts are delivered again (with the same id): at least once.
pub const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// How long the id index remembers an alert id. Recovery replays from the last checkpoint,
/// so an alert comes again within seconds of the restart; a day covers any restart.
const ID_RETENTION_MS: i64 = 24 * 3600 * 1000;
/// The id index is pruned this often, and first only after this long: ids produced again right
/// after a restart, however long the daemon was down, are checked before anything is pruned.
const ID_PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Why delivery did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A sink could not be built from its configuration (the message names the sink).
    #[error("{0}")]
    Sink(String),
    /// The outbox's cursors or log could not be read or written.
    #[error("cannot start delivery: {0}")]
    Store(#[from] StateError),
}

/// The running delivery side of the daemon.
pub struct Delivery {
    runtime: Handle,
    closing: watch::Sender<bool>,
    stop_flusher: watch::Sender<bool>,
    head: watch::Receiver<u64>,
    workers: Vec<JoinHandle<()>>,
    flusher: Option<JoinHandle<()>>,
    statuses: Vec<Arc<SinkStatus>>,
    sinks: Vec<Arc<dyn Deliver>>,
}

impl Delivery {
    /// Builds the sinks, reads the cursors, and starts a worker per sink on `runtime`. The
    /// writer goes to the pipeline.
    pub fn start(
        runtime: &Handle,
        store: SharedStore,
        configs: &[SinkConfig],
    ) -> Result<(Delivery, OutboxWriter), StartError> {
        // Some transports (the SMTP pool) start tasks when built.
        let _in_runtime = runtime.enter();
        let sinks = configs
            .iter()
            .map(sink::build)
            .collect::<Result<Vec<_>, _>>()
            .map_err(StartError::Sink)?;
        let outbox = OutboxStore::new(store);
        let next = outbox.next_seq()?;
        let stored: BTreeMap<String, u64> = outbox.cursors()?.into_iter().collect();
        // A new sink's place is stored before any alert can be: were the daemon killed before
        // its first cursor commit, the next start would otherwise take it for new again and
        // skip every alert stored in between.
        let mut placed = StateWrites::default();
        for c in configs.iter().filter(|c| !stored.contains_key(&c.name)) {
            placed.put(cursor_key(&c.name), next.to_be_bytes().to_vec());
        }
        if !placed.is_empty() {
            outbox.store.commit(placed)?;
        }
        let progress = Arc::new(Progress::default());
        {
            let mut p = progress.pending.lock().unwrap_or_else(|e| e.into_inner());
            for name in stored.keys() {
                if !configs.iter().any(|c| &c.name == name) {
                    tracing::warn!(sink = %name, "a sink no longer configured: its place in the outbox is dropped");
                    p.writes.delete(cursor_key(name));
                }
            }
            for c in configs {
                let at = stored.get(&c.name).copied().unwrap_or_else(|| {
                    tracing::info!(sink = %c.name, "new sink: it receives alerts from now on");
                    next
                });
                p.cursors.insert(c.name.clone(), at.min(next));
            }
            p.dirty = true;
        }
        let gc_from = outbox.first_seq()?.unwrap_or(next);
        let (head_tx, head) = watch::channel(next);
        let (closing, closing_rx) = watch::channel(false);
        let (stop_flusher, stop_rx) = watch::channel(false);
        let mut statuses = Vec::new();
        let mut workers = Vec::new();
        for (c, s) in configs.iter().zip(&sinks) {
            let cursor = progress
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .cursors[&c.name];
            let status = Arc::new(SinkStatus {
                name: c.name.clone(),
                delivered: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                dead_letters: AtomicU64::new(0),
                breaker_open: AtomicBool::new(false),
                cursor: AtomicU64::new(cursor),
            });
            let worker = Worker {
                name: c.name.clone(),
                sink: s.clone(),
                routing: c.routing.clone(),
                policy: c.delivery.clone(),
                outbox: outbox.clone(),
                progress: progress.clone(),
                status: status.clone(),
                head: head.clone(),
                closing: closing_rx.clone(),
                cursor,
            };
            statuses.push(status);
            workers.push(runtime.spawn(worker.run()));
        }
        let flusher = runtime.spawn(flush_loop(outbox.clone(), progress, gc_from, stop_rx));
        let writer = OutboxWriter::new(outbox, next, head_tx, &sinks);
        Ok((
            Delivery {
                runtime: runtime.clone(),
                closing,
                stop_flusher,
                head,
                workers,
                flusher: Some(flusher),
                statuses,
                sinks,
            },
            writer,
        ))
    }

    /// Reopens the file sinks (SIGHUP after log rotation).
    pub fn reopen(&self) {
        for s in &self.sinks {
            s.reopen();
        }
    }

    /// Copies the sinks' counters into the metrics every few seconds, on the runtime, until
    /// the process ends.
    pub fn export_metrics(
        &self,
        runtime: &tokio::runtime::Handle,
        shared: Arc<crate::shared::Shared>,
    ) {
        export_counters(
            runtime,
            shared,
            self.statuses.clone(),
            Some(self.head.clone()),
        );
    }

    /// Lets every worker deliver what is stored, for at most `grace`; a worker that is
    /// failing stops at once. What is left stays in the outbox for the next start.
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.closing.send(true);
        let deadline = tokio::time::Instant::now() + grace;
        for (mut w, status) in std::mem::take(&mut self.workers)
            .into_iter()
            .zip(&self.statuses)
        {
            if tokio::time::timeout_at(deadline, &mut w).await.is_err() {
                tracing::warn!(sink = %status.name, "delivery still busy at shutdown; the rest is sent on the next start");
                w.abort();
            }
        }
        let _ = self.stop_flusher.send(true);
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.await;
        }
        for s in &self.statuses {
            tracing::info!(
                sink = %s.name,
                delivered = s.delivered.load(Ordering::Relaxed),
                failures = s.failures.load(Ordering::Relaxed),
                dead_letters = s.dead_letters.load(Ordering::Relaxed),
                behind = self.head.borrow().saturating_sub(s.cursor.load(Ordering::Relaxed)),
                "sink stopped"
            );
        }
    }
}

impl Drop for Delivery {
    /// The sinks are dropped inside the runtime, on every path out of `run`: an SMTP pool
    /// spawns a task to say goodbye to its connections when dropped.
    fn drop(&mut self) {
        let _in_runtime = self.runtime.enter();
        self.sinks.clear();
    }
}

/// Copies the sinks' counters into the metrics every few seconds, on the runtime, until the
/// process ends; with `head`, each sink's depth behind it (the embedded log's end).
pub(super) fn export_counters(
    runtime: &tokio::runtime::Handle,
    shared: Arc<crate::shared::Shared>,
    statuses: Vec<Arc<SinkStatus>>,
    head: Option<watch::Receiver<u64>>,
) {
    runtime.spawn(async move {
        let mut reported: Vec<(u64, u64, u64)> = vec![(0, 0, 0); statuses.len()];
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tick.tick().await;
            let m = &shared.metrics;
            for (s, last) in statuses.iter().zip(reported.iter_mut()) {
                let labels = crate::telemetry::metrics::label("sink", s.name.clone());
                let delivered = s.delivered.load(Ordering::Relaxed);
                let failures = s.failures.load(Ordering::Relaxed);
                // Every failed attempt is retried unless it was dead-lettered.
                let retries = failures.saturating_sub(s.dead_letters.load(Ordering::Relaxed));
                m.sink_deliveries
                    .get_or_create(&labels)
                    .inc_by(delivered.saturating_sub(last.0));
                m.sink_failures
                    .get_or_create(&labels)
                    .inc_by(failures.saturating_sub(last.1));
                m.sink_retries
                    .get_or_create(&labels)
                    .inc_by(retries.saturating_sub(last.2));
                *last = (delivered, failures, retries);
                if let Some(head) = &head {
                    let behind = head
                        .borrow()
                        .saturating_sub(s.cursor.load(Ordering::Relaxed));
                    m.outbox_depth.get_or_create(&labels).set(behind as i64);
                }
            }
        }
    });
}

async fn flush_loop(
    outbox: OutboxStore,
    progress: Arc<Progress>,
    mut gc_from: u64,
    mut stop: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let mut last_prune = started;
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(FLUSH_EVERY) => false,
            _ = stop.changed() => true,
        };
        let prune = last_prune.elapsed() >= ID_PRUNE_EVERY;
        if prune {
            last_prune = Instant::now();
        }
        let (o, p) = (outbox.clone(), progress.clone());
        let from = gc_from;
        match tokio::task::spawn_blocking(move || flush(&o, &p, from, prune)).await {
            Ok(Some(to)) => gc_from = to,
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "the outbox flush stopped"),
        }
        if stopping {
            return;
        }
    }
}

/// Commits pending progress and deletes entries below every cursor; returns the new low end
/// of the log when it committed.
fn flush(outbox: &OutboxStore, progress: &Progress, gc_from: u64, prune: bool) -> Option<u64> {
    let (mut writes, cursors) = {
        let mut p = progress.pending.lock().unwrap_or_else(|e| e.into_inner());
        if !p.dirty && !prune {
            return None;
        }
        p.dirty = false;
        (std::mem::take(&mut p.writes), p.cursors.clone())
    };
    for (name, at) in &cursors {
        writes.put(cursor_key(name), at.to_be_bytes().to_vec());
    }
    let low = cursors
        .values()
        .copied()
        .min()
        .unwrap_or(gc_from)
        .max(gc_from);
    for seq in gc_from..low {
        writes.delete(entry_key(seq));
    }
    if prune {
        prune_ids(outbox, &mut writes);
    }
    let (puts, deletes) = (writes.puts.clone(), writes.deletes.clone());
    match outbox.store.commit(writes) {
        Ok(()) => Some(low),
        Err(e) => {
            tracing::error!(error = %e, "cannot commit delivery progress; will try again");
            let mut p = progress.pending.lock().unwrap_or_else(|e| e.into_inner());
            // Keep what newer progress has not replaced; cursors are rewritten anyway.
            let mut again = StateWrites::default();
            for (k, v) in puts {
                again.put(k, v);
            }
            for k in deletes {
                again.delete(k);
            }
            for (k, v) in std::mem::take(&mut p.writes).puts {
                again.put(k, v);
            }
            p.writes = again;
            p.dirty = true;
            None
        }
    }
}

fn prune_ids(outbox: &OutboxStore, writes: &mut StateWrites) {
    let cutoff = chrono::Utc::now().timestamp_millis() - ID_RETENTION_MS;
    match outbox.store.scan(ID_PREFIX) {
        Ok(ids) => {
            for (k, v) in ids {
                let at = v.as_slice().try_into().map(i64::from_be_bytes).unwrap_or(0);
                if at < cutoff {
                    writes.delete(k);
                }
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot read the outbox id index"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::state::{Entries, Store};

    /// A store whose every call fails, as a disk gone bad after opening would.
    struct Broken;

    impl Store for Broken {
        fn scan(&self, _: &[u8]) -> Result<Entries, StateError> {
            Err(broken())
        }
        fn get(&self, _: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
            Err(broken())
        }
        fn commit(&self, _: StateWrites) -> Result<(), StateError> {
            Err(broken())
        }
        fn size_on_disk(&self) -> u64 {
            0
        }
    }

    fn broken() -> StateError {
        StateError::Io {
            dir: PathBuf::from("/state"),
            reason: "input/output error".into(),
        }
    }

    #[test]
    fn a_store_failure_at_start_is_a_store_error_not_a_configuration_error() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let Err(e) = Delivery::start(runtime.handle(), Arc::new(Broken), &[]) else {
            panic!("started on a broken store");
        };
        assert!(
            matches!(e, StartError::Store(StateError::Io { .. })),
            "{e:?}"
        );
        assert!(e.to_string().contains("/state"), "{e}");
    }
}
