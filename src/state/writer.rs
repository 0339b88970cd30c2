//! Commits checkpoints on a thread of their own, so the store's write cost (sled inserts are
//! the expensive part of a checkpoint, several times the cost of serialising) is paid beside
//! detection rather than inside it.
//!
//! At most one checkpoint is queued behind the one being written: if the store falls behind,
//! `submit` waits, which is the backpressure a durable checkpoint needs.

use std::sync::atomic::{AtomicU64, Ordering};
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
    /// The store's size on disk, measured on the writer's thread after each commit (so the
    /// detection thread never waits on the query).
    size_on_disk: Arc<AtomicU64>,
    /// Checkpoints written (durable or failed), counted by the writer's thread: `next` less
    /// this is how many are queued or being written.
    written: Arc<AtomicU64>,
}

impl CheckpointWriter {
    pub fn start(
        store: Arc<dyn Store + Send + Sync>,
        on_durable: Option<OnDurable>,
    ) -> CheckpointWriter {
        let (tx, rx) = mpsc::sync_channel::<(u64, StateWrites)>(1);
        let failure = Arc::new(Mutex::new(None));
        let slot = failure.clone();
        let size_on_disk = Arc::new(AtomicU64::new(0));
        let size = size_on_disk.clone();
        let written = Arc::new(AtomicU64::new(0));
        let done = written.clone();
        let thread = thread::Builder::new()
            .name("authwatch-checkpoint".into())
            .spawn(move || write_loop(&*store, &rx, &slot, on_durable, &size, &done))
            .expect("the checkpoint thread starts");
        CheckpointWriter {
            tx: Some(tx),
            thread: Some(thread),
            failure,
            next: 0,
            size_on_disk,
            written,
        }
    }

    /// Checkpoints submitted and not yet written: 0 when the writer is idle, 1 while it
    /// writes one, 2 when another waits behind it (the next `submit` would block).
    pub fn in_flight(&self) -> u64 {
        self.next - self.written.load(Ordering::Acquire)
    }

    /// Bytes on disk after the last durable checkpoint (0 before the first).
    pub fn size_on_disk(&self) -> u64 {
        self.size_on_disk.load(Ordering::Relaxed)
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
    size_on_disk: &AtomicU64,
    written: &AtomicU64,
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
                size_on_disk.store(store.size_on_disk(), Ordering::Relaxed);
                written.fetch_add(1, Ordering::Release);
            }
            Err(e) => {
                tracing::error!(error = %e, "a checkpoint could not be written");
                *failure.lock().expect("the failure slot is never poisoned") = Some(e);
                written.fetch_add(1, Ordering::Release);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::state::SledStore;

    /// A store whose commits wait until the test opens its gate.
    struct Gated(Mutex<mpsc::Receiver<()>>);

    impl Store for Gated {
        fn scan(&self, _: &[u8]) -> Result<crate::state::Entries, StateError> {
            Ok(Vec::new())
        }
        fn get(&self, _: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
            Ok(None)
        }
        fn commit(&self, _: StateWrites) -> Result<(), StateError> {
            let _ = self.0.lock().unwrap().recv();
            Ok(())
        }
        fn size_on_disk(&self) -> u64 {
            0
        }
    }

    #[test]
    fn in_flight_counts_checkpoints_until_they_are_written() {
        let (gate, opened) = mpsc::channel();
        let mut writer = CheckpointWriter::start(Arc::new(Gated(Mutex::new(opened))), None);
        assert_eq!(writer.in_flight(), 0);
        writer.submit(StateWrites::default()).unwrap();
        writer.submit(StateWrites::default()).unwrap();
        assert_eq!(writer.in_flight(), 2);
        gate.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while writer.in_flight() != 1 {
            assert!(
                Instant::now() < deadline,
                "the first checkpoint was not counted"
            );
            std::thread::yield_now();
        }
        gate.send(()).unwrap();
        writer.finish().unwrap();
    }

    #[test]
    fn the_size_on_disk_is_measured_after_a_durable_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(&dir.path().join("state")).unwrap());
        let mut writer = CheckpointWriter::start(store, None);
        assert_eq!(writer.size_on_disk(), 0);
        let mut writes = StateWrites::default();
        writes.put(b"s/test".to_vec(), vec![7; 4096]);
        writer.submit(writes).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while writer.size_on_disk() == 0 {
            assert!(Instant::now() < deadline, "no size after the checkpoint");
            std::thread::sleep(Duration::from_millis(5));
        }
        writer.finish().unwrap();
    }
}
