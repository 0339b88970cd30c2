//! The detection loop of the daemon: batches from the source through the pipeline, event time
//! advanced on a quiet source, checkpoints on an interval, and an orderly stop.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::Failure;
use crate::pipeline::Pipeline;
use crate::shared::Shared;
use crate::source::{Batch, Item};
use crate::state::CheckpointWriter;
use crate::state::StateWrites;
use crate::telemetry::metrics::label;

use super::reload::Reloader;
use super::tasks::Tasks;

/// Batches in flight between source and detection: a bound, so a fast source waits (or an
/// HTTP client is told to retry) instead of filling memory.
pub const BATCHES_IN_FLIGHT: usize = 16;

/// The watchdog interval systemd asked for (`WatchdogSec=`), pinged at half of it.
fn watchdog() -> Option<Watchdog> {
    let mut usec = 0;
    sd_notify::watchdog_enabled(false, &mut usec).then(|| Watchdog {
        every: Duration::from_micros(usec / 2),
        last: Instant::now(),
    })
}

/// How often the loop looks at its control flags when no input arrives.
const TICK: Duration = Duration::from_millis(200);
/// How often the loop looks whether the checkpoint writer is free while HTTP requests wait
/// for a checkpoint.
const ACK_POLL: Duration = Duration::from_millis(1);
/// How long the source may be quiet before it counts as caught up and event time jumps to the
/// wall clock.
const CAUGHT_UP: Duration = Duration::from_secs(5);
/// How long the source may be quiet before event time advances with the wall clock.
const IDLE: Duration = Duration::from_secs(1);

/// Where event time goes on a source quiet for `quiet` since event time `base`: on at the
/// wall clock's pace, to the wall clock once caught up, and never past the wall clock (an
/// event up to `max_clock_skew` ahead may have set `base` there; moving on from it would
/// release what the lateness holds for real events).
fn idle_event_time(base: i64, quiet: Duration, wall: i64) -> i64 {
    if quiet >= CAUGHT_UP {
        wall
    } else {
        base.saturating_add(quiet.as_millis() as i64).min(wall)
    }
}

/// Why the loop ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The source has no more input (stdin closed, a file read to its end).
    EndOfInput,
    /// SIGTERM/SIGINT.
    Stopped,
}

pub struct Detector {
    pipeline: Pipeline,
    writer: CheckpointWriter,
    shared: Arc<Shared>,
    origin: String,
    checkpoint_every: Duration,
    /// Source positions covered by the events processed so far, written at the next checkpoint.
    positions: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Rule reloads on SIGHUP and on changed files; `None` where rules never change (tests).
    reloader: Option<Reloader>,
    /// The `source` and `format` labels of the event metrics.
    labels: (String, String),
    watchdog: Option<Watchdog>,
    /// Batches the source channel holds: after a stop request, what was already queued (and,
    /// for HTTP, acknowledged) is processed; a file or Kafka is read again after the restart.
    queue_capacity: usize,
    /// HTTP requests waiting for the checkpoint that covers their batch (`Item::AckWhenDurable`).
    acks: Vec<crate::source::Ack>,
    /// Changelog mode: an engine per partition of detection's topic (`app::tasks`).
    tasks: Option<Tasks>,
}

/// systemd's watchdog: pinged from the detection thread, so a wedged loop gets restarted.
struct Watchdog {
    every: Duration,
    last: Instant,
}

impl Detector {
    pub fn new(
        pipeline: Pipeline,
        writer: CheckpointWriter,
        shared: Arc<Shared>,
        origin: String,
        checkpoint_every: Duration,
    ) -> Self {
        Detector {
            pipeline,
            writer,
            shared,
            origin,
            checkpoint_every,
            positions: BTreeMap::new(),
            reloader: None,
            labels: ("unknown".into(), "native".into()),
            watchdog: watchdog(),
            queue_capacity: BATCHES_IN_FLIGHT,
            acks: Vec::new(),
            tasks: None,
        }
    }

    /// Runs an engine per task, checkpointed into the changelog (`[source.scale_out]
    /// changelog`).
    pub fn with_tasks(mut self, tasks: Tasks) -> Self {
        self.tasks = Some(tasks);
        self
    }

    /// The engines' figures: the pipeline's engine, or every task's.
    pub fn engine_stats(&mut self) -> crate::engine::EngineStats {
        match &mut self.tasks {
            Some(tasks) => tasks.stats(&mut self.pipeline),
            None => self.pipeline.engine().stats().clone(),
        }
    }

    /// The newest event time detection has seen.
    fn event_time(&mut self) -> Option<i64> {
        match &mut self.tasks {
            Some(tasks) => tasks.event_time(&mut self.pipeline),
            None => self.pipeline.engine().event_time(),
        }
    }

    /// Runs `f` once per engine: the pipeline's, or each task's in the pipeline in turn.
    fn each_engine(
        &mut self,
        f: impl FnMut(&mut Pipeline) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let mut f = f;
        match &mut self.tasks {
            Some(tasks) => tasks.each(&mut self.pipeline, f),
            None => f(&mut self.pipeline),
        }
    }

    /// The capacity of the channel the source sends on.
    pub fn with_queue_capacity(mut self, batches: usize) -> Self {
        self.queue_capacity = batches;
        self
    }

    /// Reloads rules from this reloader on SIGHUP and when files change.
    pub fn with_reloader(mut self, reloader: Reloader) -> Self {
        self.reloader = Some(reloader);
        self
    }

    /// Labels the event metrics with the source kind and input format.
    pub fn with_labels(mut self, source: &str, format: &str) -> Self {
        self.labels = (source.to_string(), format.to_string());
        self
    }

    /// Runs until the input ends or a stop is requested, then checkpoints.
    pub fn run(&mut self, rx: &Receiver<Batch>) -> Result<Ended, Failure> {
        let mut last_checkpoint = Instant::now();
        let mut last_input = Instant::now();
        // Event time when the source went quiet (set on the first idle tick).
        let mut quiet_from: Option<i64> = None;
        let ended = loop {
            // A failed store ends the daemon (`state/guard.rs`): nothing more is fed to it.
            if let Some(guard) = self.shared.store.get()
                && guard.failure().is_some()
            {
                return Err(Failure::Runtime(anyhow::anyhow!(guard.exit_message())));
            }
            self.shared.progress();
            if self.shared.stopping() {
                // Stop intake, but process what the source had already handed over: at most
                // what the channel holds, since a fast source keeps refilling it.
                self.take_queued(rx)?;
                break Ended::Stopped;
            }
            // SIGHUP: alert files are reopened after log rotation, and rules reloaded.
            if self.shared.take_reload() {
                self.pipeline.reopen_sinks();
                self.reload_rules("SIGHUP");
            } else if self.reloader.as_mut().is_some_and(Reloader::files_changed) {
                self.reload_rules("a rule file changed");
            }
            self.ping_watchdog();
            // Clients wait for a durable checkpoint: while the writer writes one, look again
            // soon, so the next is taken as soon as it is free.
            let wait = if self.acks.is_empty() { TICK } else { ACK_POLL };
            match rx.recv_timeout(wait) {
                Ok(batch) => {
                    self.process(batch)?;
                    last_input = Instant::now();
                    quiet_from = None;
                }
                Err(RecvTimeoutError::Timeout) if !self.acks.is_empty() => {}
                Err(RecvTimeoutError::Timeout) => {
                    self.publish_metrics();
                    // Tasks being restored hold the input back; that is no quiet source.
                    if self
                        .shared
                        .restoring
                        .load(std::sync::atomic::Ordering::Relaxed)
                        > 0
                    {
                        last_input = Instant::now();
                        quiet_from = None;
                    }
                    // A quiet source: event time moves on at the pace of the wall clock from
                    // the newest event, so what the lateness holds comes out on a live stream.
                    // Only a source quiet for longer is taken as caught up, and event time
                    // jumps to the wall clock: a backlog whose reader stalls for a moment must
                    // not see the rest of its events judged late.
                    let quiet = last_input.elapsed();
                    if quiet >= IDLE
                        && let Some(base) = quiet_from.or_else(|| self.event_time())
                    {
                        quiet_from = Some(base);
                        let wall = chrono::Utc::now().timestamp_millis();
                        let now = idle_event_time(base, quiet, wall);
                        self.each_engine(|p| p.advance_to(now))?;
                        self.pipeline.flush_sinks()?;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break Ended::EndOfInput,
            }
            // Group commit, as PostgreSQL does: requests that arrive while a checkpoint is
            // written wait for the next, which covers all of them and is taken once the
            // writer is free. Taking one per request instead filled the writer's queue and
            // blocked this thread in `submit` while requests piled up unprocessed.
            if !self.acks.is_empty() && self.writer.in_flight() == 0 {
                self.take_queued(rx)?;
                self.checkpoint()?;
                last_checkpoint = Instant::now();
            }
            if last_checkpoint.elapsed() >= self.checkpoint_every {
                self.checkpoint()?;
                last_checkpoint = Instant::now();
            }
        };
        if ended == Ended::EndOfInput {
            // Nothing more will come: what the lateness holds can be judged now. On a stop it
            // stays held and is checkpointed, so the next start continues exactly.
            self.each_engine(Pipeline::finish)?;
        }
        self.checkpoint()?;
        Ok(ended)
    }

    /// Processes what is still queued after the sources stopped, and checkpoints it.
    pub fn drain(&mut self, rx: &Receiver<Batch>) -> Result<(), Failure> {
        if self.take_queued(rx)? > 0 {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Processes the batches already queued, at most what the channel holds (a fast source
    /// keeps refilling it); returns how many.
    fn take_queued(&mut self, rx: &Receiver<Batch>) -> Result<usize, Failure> {
        let mut taken = 0;
        while taken < self.queue_capacity {
            let Ok(batch) = rx.try_recv() else { break };
            self.process(batch)?;
            taken += 1;
        }
        Ok(taken)
    }

    fn reload_rules(&mut self, why: &str) {
        let Some(reloader) = &mut self.reloader else {
            return;
        };
        let metrics = &self.shared.metrics;
        let (pipeline, tasks) = (&mut self.pipeline, &mut self.tasks);
        reloader.reload(metrics, why, |apply| match tasks {
            Some(tasks) => {
                let _ = tasks.each(pipeline, |p| {
                    apply(p.engine_mut());
                    Ok(())
                });
                // The idle engine too (after `each` parked the tasks' engines): a task
                // assigned later starts from its rules.
                apply(pipeline.engine_mut());
            }
            None => apply(pipeline.engine_mut()),
        });
    }

    fn publish_metrics(&mut self) {
        let now = chrono::Utc::now().timestamp_millis();
        match &mut self.tasks {
            Some(tasks) => {
                let stats = tasks.stats(&mut self.pipeline);
                let (source, format) = &self.labels;
                self.pipeline.publish_metrics_with(
                    &self.shared.metrics,
                    source,
                    format,
                    &stats,
                    now,
                );
            }
            None => {
                let (source, format) = &self.labels;
                self.pipeline
                    .publish_metrics(&self.shared.metrics, source, format, now);
            }
        }
    }

    fn ping_watchdog(&mut self) {
        if let Some(w) = &mut self.watchdog
            && w.last.elapsed() >= w.every
        {
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
            w.last = Instant::now();
        }
    }

    /// Waits for the last checkpoint to be durable; hands back the pipeline for its counts,
    /// and the engines' figures.
    pub fn close(mut self) -> Result<(Pipeline, crate::engine::EngineStats), Failure> {
        let stats = self.engine_stats();
        self.writer.finish()?;
        Ok((self.pipeline, stats))
    }

    fn process(&mut self, batch: Batch) -> Result<(), Failure> {
        // A batch may name its own format (HTTP routes); otherwise the source's decoder.
        let format = batch.format;
        let mut checkpoint_now = None;
        let mut revoked = Vec::new();
        for item in batch.items {
            match (item, format) {
                (Item::Line(line, n), Some(d)) => {
                    self.pipeline.feed_as(d, &line, &self.origin, n)?
                }
                (Item::Line(line, n), None) => self.pipeline.feed(&line, &self.origin, n)?,
                (Item::TooLong(len, n), _) => self.pipeline.too_long(len, &self.origin, n),
                (Item::Event(event), _) => self.pipeline.feed_decoded(event)?,
                (Item::Bad(bad, origin, at), _) => self.pipeline.rejected(&bad, &origin, at),
                (Item::CheckpointNow(reply), _) => checkpoint_now = Some(reply),
                (Item::AckWhenDurable(ack), _) => self.acks.push(ack),
                // For the repartition hop only.
                (Item::Partition(_), _) => {}
                (Item::Task(task), _) => {
                    if let Some(tasks) = &mut self.tasks {
                        tasks.enter(task, &mut self.pipeline);
                    }
                }
                (Item::TaskRestored(task, state), _) => {
                    if let Some(tasks) = &mut self.tasks {
                        let report =
                            tasks
                                .restored(task, state, &mut self.pipeline)
                                .map_err(|e| {
                                    Failure::Runtime(anyhow::anyhow!(
                                        "cannot restore task {task} from its changelog: {e}"
                                    ))
                                })?;
                        tracing::info!(
                            task,
                            groups = report.groups,
                            pending = report.pending,
                            dropped = report.dropped,
                            "task state restored"
                        );
                    }
                }
                (Item::TasksRevoked(list), _) => revoked.extend(list),
                (Item::TasksLost(list), _) => {
                    if let Some(tasks) = &mut self.tasks {
                        tasks.revoke(&list, &mut self.pipeline);
                        tracing::warn!(tasks = ?list, "tasks lost: dropped without writing their changelog (another instance may own them)");
                    }
                }
            }
        }
        self.positions.extend(batch.positions);
        self.pipeline.flush_sinks()?;
        self.publish_metrics();
        // A source that must know when its records are durable (Kafka, before a rebalance)
        // asked for a checkpoint covering this batch; it waits on the writer's callback.
        if let Some(reply) = checkpoint_now {
            let seq = self.checkpoint()?;
            self.drop_tasks(&revoked);
            let _ = reply.send(seq);
        } else if !revoked.is_empty() {
            self.checkpoint()?;
            self.drop_tasks(&revoked);
        }
        Ok(())
    }

    /// Drops revoked tasks, once a checkpoint has written them.
    fn drop_tasks(&mut self, revoked: &[i32]) {
        if let Some(tasks) = &mut self.tasks
            && !revoked.is_empty()
        {
            tasks.revoke(revoked, &mut self.pipeline);
            tracing::info!(tasks = ?revoked, "tasks revoked: their state is in the changelog");
        }
    }

    /// Takes engine state and source positions as one atomic batch for the checkpoint writer.
    /// Sinks are flushed first: an alert must be out before the checkpoint that moves past its
    /// events.
    pub fn checkpoint(&mut self) -> Result<u64, Failure> {
        let started = Instant::now();
        self.pipeline.flush_sinks()?;
        let mut writes = StateWrites::default();
        // Tasks first: it puts the pipeline's own engine back in place.
        if let Some(tasks) = &mut self.tasks {
            tasks.checkpoint(&mut self.pipeline, &self.positions, &mut writes);
        }
        self.pipeline.engine_mut().checkpoint(&mut writes);
        for (key, value) in std::mem::take(&mut self.positions) {
            writes.put(key, value);
        }
        let (puts, deletes) = (writes.puts.len(), writes.deletes.len());
        let metrics = &self.shared.metrics;
        metrics
            .checkpoint_seconds
            .observe(started.elapsed().as_secs_f64());
        let sizes = match &mut self.tasks {
            Some(tasks) => tasks.state_sizes(&mut self.pipeline),
            None => self
                .pipeline
                .engine()
                .state_sizes()
                .into_iter()
                .map(|(rule, groups, evicted)| (rule.to_string(), groups, evicted))
                .collect(),
        };
        for (rule, groups, evicted) in &sizes {
            let (groups, evicted) = (*groups, *evicted);
            metrics
                .state_groups
                .get_or_create(&label("rule", rule))
                .set(groups as i64);
            metrics
                .state_evictions
                .get_or_create(&label("rule", rule))
                .set(evicted as i64);
        }
        // The size the previous checkpoint left (this one is still being written).
        metrics
            .state_size_bytes
            .set(self.writer.size_on_disk() as i64);
        let seq = self.writer.submit(writes)?;
        for ack in self.acks.drain(..) {
            ack.covered_by(seq);
        }
        tracing::debug!(
            seq,
            puts,
            deletes,
            ms = started.elapsed().as_millis() as u64,
            "checkpoint taken"
        );
        Ok(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_event_time_never_passes_the_wall_clock() {
        let wall = 1_000_000;
        // A backlog: moves on at the wall clock's pace.
        assert_eq!(idle_event_time(5_000, Duration::from_secs(2), wall), 7_000);
        // Caught up: the wall clock itself, even from ahead of it.
        assert_eq!(idle_event_time(5_000, CAUGHT_UP, wall), wall);
        assert_eq!(idle_event_time(wall + 240_000, CAUGHT_UP, wall), wall);
        // An event within the skew ahead of the wall clock moves nothing on its own.
        assert_eq!(idle_event_time(wall + 240_000, IDLE, wall), wall);
        assert_eq!(idle_event_time(i64::MAX - 10, IDLE, wall), wall);
    }
}
