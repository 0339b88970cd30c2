//! The detection loop of the daemon: batches from the source through the pipeline, event time
//! advanced on a quiet source, checkpoints on an interval, and an orderly stop.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::Failure;
use super::shared::Shared;
use crate::engine::StateWrites;
use crate::normalize::Format;
use crate::pipeline::Pipeline;
use crate::source::{Batch, Item};
use crate::state::CheckpointWriter;

/// How often the loop looks at its control flags when no input arrives.
const TICK: Duration = Duration::from_millis(200);
/// How long the source may be quiet before event time follows the wall clock.
const IDLE: Duration = Duration::from_secs(1);

/// Why the loop ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The source has no more input (stdin closed, a file read to its end).
    EndOfInput,
    /// SIGTERM/SIGINT.
    Stopped,
}

pub struct Detector {
    pub pipeline: Pipeline,
    pub writer: CheckpointWriter,
    pub shared: Arc<Shared>,
    pub origin: String,
    pub checkpoint_every: Duration,
    /// Source positions covered by the events processed so far, written at the next checkpoint.
    positions: BTreeMap<Vec<u8>, Vec<u8>>,
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
        }
    }

    /// Runs until the input ends or a stop is requested, then checkpoints.
    pub fn run(&mut self, rx: &Receiver<Batch>) -> Result<Ended, Failure> {
        let mut last_checkpoint = Instant::now();
        let mut last_input = Instant::now();
        let ended = loop {
            if self.shared.stopping() {
                // Stop intake, but process what the source had already handed over.
                while let Ok(batch) = rx.try_recv() {
                    self.process(batch)?;
                }
                break Ended::Stopped;
            }
            match rx.recv_timeout(TICK) {
                Ok(batch) => {
                    self.process(batch)?;
                    last_input = Instant::now();
                }
                Err(RecvTimeoutError::Timeout) => {
                    if last_input.elapsed() >= IDLE {
                        self.pipeline
                            .advance_to(chrono::Utc::now().timestamp_millis())?;
                        self.pipeline.flush_sinks()?;
                        last_input = Instant::now();
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break Ended::EndOfInput,
            }
            if last_checkpoint.elapsed() >= self.checkpoint_every {
                self.checkpoint()?;
                last_checkpoint = Instant::now();
            }
        };
        if ended == Ended::EndOfInput {
            // Nothing more will come: what the lateness holds can be judged now. On a stop it
            // stays held and is checkpointed, so the next start continues exactly.
            self.pipeline.finish()?;
        }
        self.checkpoint()?;
        Ok(ended)
    }

    /// Waits for the last checkpoint to be durable; hands back the pipeline for its counts.
    pub fn close(self) -> Result<Pipeline, Failure> {
        self.writer
            .finish()
            .map_err(|e| Failure::Runtime(e.into()))?;
        Ok(self.pipeline)
    }

    fn process(&mut self, batch: Batch) -> Result<(), Failure> {
        // A batch may name its own format (HTTP routes); otherwise the source's decoder.
        let decode = batch.format.map(Format::decoder);
        for item in batch.items {
            match (item, decode) {
                (Item::Line(line, n), Some(d)) => {
                    self.pipeline.feed_as(d, &line, &self.origin, n)?
                }
                (Item::Line(line, n), None) => self.pipeline.feed(&line, &self.origin, n)?,
                (Item::TooLong(len, n), _) => self.pipeline.too_long(len, &self.origin, n),
            }
        }
        self.positions.extend(batch.positions);
        self.pipeline.flush_sinks()?;
        Ok(())
    }

    /// Takes engine state and source positions as one atomic batch for the checkpoint writer.
    /// Sinks are flushed first: an alert must be out before the checkpoint that moves past its
    /// events.
    pub fn checkpoint(&mut self) -> Result<(), Failure> {
        let started = Instant::now();
        self.pipeline.flush_sinks()?;
        let mut writes = StateWrites::default();
        self.pipeline.engine.checkpoint(&mut writes);
        for (key, value) in std::mem::take(&mut self.positions) {
            writes.put(key, value);
        }
        let (puts, deletes) = (writes.puts.len(), writes.deletes.len());
        let seq = self
            .writer
            .submit(writes)
            .map_err(|e| Failure::Runtime(e.into()))?;
        tracing::debug!(
            seq,
            puts,
            deletes,
            ms = started.elapsed().as_millis() as u64,
            "checkpoint taken"
        );
        Ok(())
    }
}
