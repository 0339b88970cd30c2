//! `authwatch run`: the daemon. Reads events from its source, detects, and delivers alerts.
//!
//! Input is read on its own thread and handed over in batches; detection runs on this thread.
//! When the source goes quiet, event time is advanced to the wall clock so that alerts held
//! back for lateness still come out on a live stream.

use std::io::{self, BufReader};
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::Duration;

use super::{Failure, decoder, engine_options, load_config, load_rules};
use crate::config::Source;
use crate::engine::Engine;
use crate::pipeline::Pipeline;
use crate::sink::Router;
use crate::source::lines::{LineReader, Record};

/// Records handed from the reader to the engine at once, at most.
const BATCH_RECORDS: usize = 1024;
/// Batches in flight between reader and engine: a bound, so a fast source waits instead of
/// filling memory.
const BATCHES_IN_FLIGHT: usize = 16;
/// How long the source may be quiet before event time follows the wall clock.
const IDLE_TICK: Duration = Duration::from_secs(1);

enum Item {
    Line(Vec<u8>, u64),
    TooLong(usize, u64),
}

pub fn run(config: Option<&Path>) -> Result<(), Failure> {
    let cfg = load_config(config)?;
    let set = load_rules(&cfg.rules_dir)?;
    let decode = decoder(&cfg.format)?;
    let router = Router::from_config(&cfg.sinks)?;
    let engine = Engine::new(set.enabled(), &engine_options(&cfg, &set));
    let mut pipeline = Pipeline::new(engine, decode, router);
    tracing::info!(rules = set.enabled().len(), dir = %cfg.rules_dir.display(), "authwatch started");

    let Source::Stdin = cfg.source;
    let (tx, rx) = mpsc::sync_channel::<Vec<Item>>(BATCHES_IN_FLIGHT);
    let reader = thread::spawn(move || read_batches(BufReader::new(io::stdin().lock()), tx));

    loop {
        match rx.recv_timeout(IDLE_TICK) {
            Ok(batch) => {
                for item in batch {
                    match item {
                        Item::Line(line, n) => pipeline.feed(&line, "stdin", n)?,
                        Item::TooLong(len, n) => pipeline.too_long(len, "stdin", n),
                    }
                }
                pipeline.flush_sinks()?;
            }
            Err(RecvTimeoutError::Timeout) => {
                pipeline.advance_to(chrono::Utc::now().timestamp_millis())?;
                pipeline.flush_sinks()?;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    let read_result = reader
        .join()
        .map_err(|_| anyhow::anyhow!("the input reader panicked"))?;
    pipeline.finish()?;
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

/// Reads records and sends them in batches; a batch also goes out whenever the reader has
/// nothing buffered, so a slow live source is not held back waiting for a full batch.
fn read_batches<R: io::Read>(
    input: BufReader<R>,
    tx: mpsc::SyncSender<Vec<Item>>,
) -> io::Result<()> {
    let mut lines = LineReader::new(input);
    let mut buf = Vec::new();
    let mut batch = Vec::with_capacity(BATCH_RECORDS);
    while let Some(record) = lines.next_record(&mut buf)? {
        batch.push(match record {
            Record::Line => Item::Line(std::mem::take(&mut buf), lines.line_no),
            Record::TooLong(len) => Item::TooLong(len, lines.line_no),
        });
        if batch.len() >= BATCH_RECORDS || !lines.has_buffered() {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_RECORDS));
            if tx.send(full).is_err() {
                return Ok(());
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(batch);
    }
    Ok(())
}
