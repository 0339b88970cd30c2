//! The pipeline's end in the daemon: an [`AlertSink`] that stores each alert in the outbox
//! (skipping an id it already holds) and, on flush, commits them durably in one batch and
//! wakes the sink workers. Detection thus waits for one store commit per batch of input that
//! produced alerts, never for a receiver.

use std::collections::HashSet;
use std::io;
use std::sync::{Arc, Weak};

use tokio::sync::watch;

use super::store::{Entry, NEXT_KEY, OutboxStore, entry_key, id_key};
use crate::engine::Alert;
use crate::sink::{AlertSink, Deliver};
use crate::state::StateWrites;

pub struct OutboxWriter {
    outbox: OutboxStore,
    next: u64,
    staged: StateWrites,
    staged_ids: HashSet<String>,
    head: watch::Sender<u64>,
    /// For reopening files. Weak: the sinks belong to the delivery side, which drops them
    /// inside the runtime (an SMTP pool spawns its goodbye when dropped).
    sinks: Vec<Weak<dyn Deliver>>,
    /// Alerts not stored because their id was already there (recovery after a crash).
    pub duplicates: u64,
}

impl OutboxWriter {
    pub(super) fn new(
        outbox: OutboxStore,
        next: u64,
        head: watch::Sender<u64>,
        sinks: &[Arc<dyn Deliver>],
    ) -> OutboxWriter {
        OutboxWriter {
            outbox,
            next,
            staged: StateWrites::default(),
            staged_ids: HashSet::new(),
            head,
            sinks: sinks.iter().map(Arc::downgrade).collect(),
            duplicates: 0,
        }
    }
}

fn io_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("cannot store an alert in the outbox: {e}"))
}

impl AlertSink for OutboxWriter {
    fn deliver(&mut self, alert: &Alert) -> io::Result<()> {
        if self.staged_ids.contains(&alert.id) || self.outbox.holds(&alert.id).map_err(io_error)? {
            self.duplicates += 1;
            tracing::debug!(id = %alert.id, "alert already in the outbox; not stored again");
            return Ok(());
        }
        let now = chrono::Utc::now().timestamp_millis();
        let entry = Entry {
            stored_at: now,
            only: None,
            alert: serde_json::to_value(alert).map_err(io_error)?,
        };
        self.staged.put(
            entry_key(self.next),
            serde_json::to_vec(&entry).map_err(io_error)?,
        );
        self.staged
            .put(id_key(&alert.id), now.to_be_bytes().to_vec());
        self.staged_ids.insert(alert.id.clone());
        self.next += 1;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.staged_ids.is_empty() {
            return Ok(());
        }
        let mut writes = std::mem::take(&mut self.staged);
        writes.put(NEXT_KEY.to_vec(), self.next.to_be_bytes().to_vec());
        self.outbox.store.commit(writes).map_err(io_error)?;
        self.staged_ids.clear();
        self.head.send_replace(self.next);
        Ok(())
    }

    fn reopen(&mut self) {
        for s in self.sinks.iter().filter_map(Weak::upgrade) {
            s.reopen();
        }
    }
}
