//! Commits checkpoints on a thread of their own, so the store's write cost (sled inserts are
//! the expensive part of a checkpoint, several times the cost of serialising) is paid beside
//! detection rather than inside it.
//!
//! At most one checkpoint is queued behind the one being written: if the store falls behind,
//! `submit` waits, which is the backpressure a durable checkpoint needs.

use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use super::StateWrites;
use super::{SOURCE_PREFIX, StateError, Store};

/// Called after a checkpoint is durable, with its sequence number and the source positions
/// (`s/` entries) it wrote: sources that acknowledge upstream, like Kafka offset commits, do
/// so here and only here.
pub type OnDurable = Box<dyn Fn(u64, &[(Vec<u8>, Vec<u8>)]) + Send>;

pub struct CheckpointWriter {
    tx: Option<SyncSender<(u64, StateWrites)>>,
    thread: Option<JoinHandle<()>>,
    failure: Arc<Mutex<Option<StateError>>>,
    next: u64,
}

impl CheckpointWriter {
    pub fn start(
        store: Arc<dyn Store + Send + Sync>,
        on_durable: Option<OnDurable>,
    ) -> CheckpointWriter {
        let (tx, rx) = mpsc::sync_channel::<(u64, StateWrites)>(1);
        let failure = Arc::new(Mutex::new(None));
        let slot = failure.clone();
        let thread = thread::Builder::new()
            .name("authwatch-checkpoint".into())
            .spawn(move || write_loop(&*store, &rx, &slot, on_durable))
            .expect("the checkpoint thread starts");
        CheckpointWriter {
            tx: Some(tx),
            thread: Some(thread),
            failure,
            next: 0,
        }
    }

    /// Queues a checkpoint; fails if an earlier one could not be written.
    pub fn submit(&mut self, writes: StateWrites) -> Result<u64, StateError> {
        self.check()?;
        let seq = self.next;
        self.next += 1;
        if let Some(tx) = &self.tx
            && tx.send((seq, writes)).is_err()
        {
            self.check()?;
        }
        Ok(seq)
    }

    /// Waits until every submitted checkpoint is written (shutdown).
    pub fn finish(mut self) -> Result<(), StateError> {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.check()
    }

    fn check(&self) -> Result<(), StateError> {
        match self
            .failure
            .lock()
            .expect("the failure slot is never poisoned")
            .take()
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for CheckpointWriter {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn write_loop(
    store: &dyn Store,
    rx: &Receiver<(u64, StateWrites)>,
    failure: &Mutex<Option<StateError>>,
    on_durable: Option<OnDurable>,
) {
    for (seq, mut writes) in rx {
        let started = std::time::Instant::now();
        writes.resolve();
        let puts = writes.puts.len();
        let bytes: usize = writes.puts.iter().map(|(k, v)| k.len() + v.len()).sum();
        let positions: Vec<(Vec<u8>, Vec<u8>)> = match &on_durable {
            Some(_) => writes
                .puts
                .iter()
                .filter(|(k, _)| k.starts_with(SOURCE_PREFIX))
                .cloned()
                .collect(),
            None => Vec::new(),
        };
        match store.commit(writes) {
            Ok(()) => {
                tracing::debug!(
                    seq,
                    puts,
                    bytes,
                    ms = started.elapsed().as_millis() as u64,
                    "checkpoint durable"
                );
                if let Some(f) = &on_durable {
                    f(seq, &positions);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "a checkpoint could not be written");
                *failure.lock().expect("the failure slot is never poisoned") = Some(e);
                return;
            }
        }
    }
}
