//! `authwatch run`: the daemon. Reads events from its source, detects, delivers alerts, and
//! checkpoints engine state with the source position.
//!
//! Input is read on its own thread and handed over in batches; detection runs on this thread.
//! When the source goes quiet, event time is advanced to the wall clock so that alerts held
//! back for lateness still come out on a live stream.

use std::io::{self, BufReader};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use super::{Failure, decoder, engine_options, load_config, load_rules, open_state};
use crate::config::Source;
use crate::engine::{Engine, StateWrites};
use crate::pipeline::Pipeline;
use crate::sink::Router;
use crate::source::file::FileSource;
use crate::source::{Batch, FilePosition, Item, stdin};
use crate::state::{self, Store};

/// Batches in flight between reader and engine: a bound, so a fast source waits instead of
/// filling memory.
const BATCHES_IN_FLIGHT: usize = 16;
/// How long the source may be quiet before event time follows the wall clock.
const IDLE_TICK: Duration = Duration::from_secs(1);
/// The state-store key of the file source's position.
const FILE_SOURCE: &str = "file";

pub fn run(config: Option<&Path>, reset_state: bool) -> Result<(), Failure> {
    let cfg = load_config(config)?;
    let set = load_rules(&cfg.rules_dir)?;
    let decode = decoder(&cfg.format)?;
    let store = open_state(&cfg.state_dir, reset_state)?;
    let router = Router::from_config(&cfg.sinks)?;
    let mut engine = Engine::new(set.enabled(), &engine_options(&cfg, &set));
    let restored = engine
        .restore(state::engine_entries(&store).map_err(|e| Failure::Runtime(e.into()))?)
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot restore the state in {}: {e}; start with --reset-state to begin afresh",
                cfg.state_dir.display()
            )
        })?;
    tracing::info!(
        groups = restored.groups,
        pending = restored.pending,
        dropped = restored.dropped,
        "state restored"
    );
    let mut pipeline = Pipeline::new(engine, decode, router);

    let (tx, rx) = mpsc::sync_channel::<Batch>(BATCHES_IN_FLIGHT);
    let stop = Arc::new(AtomicBool::new(false));
    let (reader, origin) = match &cfg.source {
        Source::Stdin => (
            thread::spawn(move || stdin::read_batches(BufReader::new(io::stdin().lock()), tx)),
            "stdin".to_string(),
        ),
        Source::File { path, follow } => {
            let resume = store
                .get(&state::source_key(FILE_SOURCE))
                .map_err(|e| Failure::Runtime(e.into()))?
                .and_then(|v| serde_json::from_slice::<FilePosition>(&v).ok());
            let source = FileSource {
                path: path.clone(),
                follow: *follow,
                resume,
                stop: stop.clone(),
            };
            (
                thread::spawn(move || source.run(tx)),
                path.display().to_string(),
            )
        }
    };
    tracing::info!(rules = set.enabled().len(), source = %origin, "authwatch started");

    let mut position: Option<FilePosition> = None;
    let mut last_checkpoint = Instant::now();
    let interval = Duration::from_millis(cfg.checkpoint_interval_ms as u64);
    loop {
        match rx.recv_timeout(IDLE_TICK) {
            Ok(batch) => {
                for item in batch.items {
                    match item {
                        Item::Line(line, n) => pipeline.feed(&line, &origin, n)?,
                        Item::TooLong(len, n) => pipeline.too_long(len, &origin, n),
                    }
                }
                if batch.position.is_some() {
                    position = batch.position;
                }
                pipeline.flush_sinks()?;
            }
            Err(RecvTimeoutError::Timeout) => {
                pipeline.advance_to(chrono::Utc::now().timestamp_millis())?;
                pipeline.flush_sinks()?;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_checkpoint.elapsed() >= interval {
            checkpoint(&mut pipeline, &store, position.as_ref())?;
            last_checkpoint = Instant::now();
        }
    }
    let read_result = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the input reader panicked"))?;
    pipeline.finish()?;
    checkpoint(&mut pipeline, &store, position.as_ref())?;
    read_result?;
    let c = &pipeline.counts;
    tracing::info!(
        events = c.events,
        bad = c.bad_total(),
        alerts = c.alerts,
        "input ended; authwatch stopped"
    );
    Ok(())
}

/// Writes engine state and the source position in one atomic batch. Sinks are flushed first:
/// an alert must be out before the checkpoint that moves past its events.
fn checkpoint(
    pipeline: &mut Pipeline,
    store: &dyn Store,
    position: Option<&FilePosition>,
) -> Result<(), Failure> {
    let started = Instant::now();
    pipeline.flush_sinks()?;
    let mut writes = StateWrites::default();
    pipeline.engine.checkpoint(&mut writes);
    if let Some(pos) = position {
        writes.put(
            state::source_key(FILE_SOURCE),
            serde_json::to_vec(pos).expect("a position serialises"),
        );
    }
    let (puts, deletes) = (writes.puts.len(), writes.deletes.len());
    store
        .commit(writes)
        .map_err(|e| Failure::Runtime(e.into()))?;
    tracing::debug!(
        puts,
        deletes,
        ms = started.elapsed().as_millis() as u64,
        "checkpoint written"
    );
    Ok(())
}
