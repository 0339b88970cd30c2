//! One sink's delivery loop: read the log from the sink's cursor, skip what its routing
//! refuses, deliver a batch, and move the cursor past what is done (delivered, or rejected
//! into the dead letters). On a retryable failure the cursor stays, the loop waits (backoff,
//! Retry-After, breaker) and tries the same alert again, until the receiver has failed on it
//! `max_attempts` times (failures that say nothing about the alert, such as no connection, do
//! not count) or it is older than `max_age`: then it goes to the dead letters (with, on
//! `max_age`, every expired alert after it) and the cursor moves on.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use super::progress::{Progress, SinkStatus};
use super::retry::{Failures, Verdict};
use super::store::{DeadLetter, OutboxStore, dead_key};
use crate::sink::{Deliver, DeliveryPolicy, Record, Routing, SendError};
use crate::state::StateError;

/// Entries examined per read beyond the batch size, so that a sink whose routing refuses
/// most alerts still moves through the log in few reads.
const READ_AHEAD: usize = 256;
/// Expired alerts moved to the dead letters per step without trying them (the receiver is
/// known to be failing), so a long outage's backlog is cleared in bounded steps.
const EXPIRE_STEP: usize = 10_000;
/// Entries read per page once the routing has skipped some (the first page is the batch size).
const SKIP_PAGE: usize = 32;
/// Pause after the store itself failed to read, before trying again.
const STORE_RETRY: Duration = Duration::from_secs(1);

pub(super) struct Worker {
    pub name: String,
    pub sink: Arc<dyn Deliver>,
    pub routing: Routing,
    pub policy: DeliveryPolicy,
    pub outbox: OutboxStore,
    pub progress: Arc<Progress>,
    pub status: Arc<SinkStatus>,
    pub head: watch::Receiver<u64>,
    pub closing: watch::Receiver<bool>,
    pub cursor: u64,
}

/// An alert of the batch being delivered.
struct Item {
    seq: u64,
    stored_at: i64,
    record: Arc<Record>,
    alert: Value,
}

/// Dead letters with their keys, ready for the store.
type Letters = Vec<(Vec<u8>, Vec<u8>)>;

impl Worker {
    pub async fn run(mut self) {
        let mut failures = Failures::new(&self.policy);
        let (mut head_seq, mut attempts) = (u64::MAX, 0u32);
        loop {
            if !self.wait_for_work().await {
                return;
            }
            let limit = failures.batch_limit(self.sink.max_batch());
            let (batch, end, mut dead) = match super::off_async_workers(|| self.next_batch(limit)) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(sink = %self.name, error = %e, "cannot read the outbox");
                    tokio::time::sleep(STORE_RETRY).await;
                    continue;
                }
            };
            if batch.is_empty() {
                self.advance(end, dead);
                continue;
            }
            if batch[0].seq != head_seq {
                (head_seq, attempts) = (batch[0].seq, 0);
            }
            attempts += 1;
            let records: Vec<Arc<Record>> = batch.iter().map(|i| i.record.clone()).collect();
            let mut results = self.sink.deliver(&records).await;
            results.resize(
                records.len(),
                Err(SendError::retry("the sink gave no result for this alert")),
            );
            let mut cursor = end;
            let mut failed = None;
            for (i, result) in results.into_iter().enumerate() {
                match result {
                    Ok(()) => {
                        self.status.delivered.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(SendError::Reject { reason }) => {
                        tracing::warn!(sink = %self.name, id = %batch[i].record.id, %reason, "alert refused by the receiver; moved to the dead letters");
                        dead.push(self.letter(&batch[i], attempts, reason));
                    }
                    Err(e) => {
                        cursor = batch[i].seq;
                        failed = Some((i, e));
                        break;
                    }
                }
            }
            let Some((i, error)) = failed else {
                failures.succeeded(&self.name, &self.status);
                self.advance(cursor, dead);
                continue;
            };
            let item = &batch[i];
            let verdict = failures.failed(
                &self.name,
                &self.status,
                &self.policy,
                item.seq,
                &item.record.id,
                item.stored_at,
                &error,
            );
            if let Verdict::GiveUp { why, expired } = verdict {
                dead.push(self.letter(item, attempts, why.clone()));
                cursor = item.seq + 1;
                if expired {
                    let now = chrono::Utc::now().timestamp_millis();
                    match super::off_async_workers(|| self.expire_from(cursor, now, &why)) {
                        Ok((more, c)) => {
                            dead.extend(more);
                            cursor = c;
                        }
                        Err(e) => {
                            tracing::error!(sink = %self.name, error = %e, "cannot read the outbox")
                        }
                    }
                }
            }
            self.advance(cursor, dead);
            let delay = failures.wait(&self.name, &self.status, &error);
            // On shutdown a failing sink is not waited for: its alerts stay in the outbox.
            if *self.closing.borrow() {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.closing.changed() => return,
            }
        }
    }

    /// Waits until the log holds something past the cursor; false when it is time to stop
    /// (closing and caught up).
    async fn wait_for_work(&mut self) -> bool {
        loop {
            if self.cursor < *self.head.borrow_and_update() {
                return true;
            }
            if *self.closing.borrow() {
                return false;
            }
            tokio::select! {
                changed = self.head.changed() => if changed.is_err() { return false },
                _ = self.closing.changed() => {}
            }
        }
    }

    /// Up to `limit` alerts for this sink from the cursor; where the cursor goes once they are
    /// done; and dead letters for entries that cannot be read. Reads in small pages and stops
    /// once the batch is full: parsing entries the batch does not take would cost more than
    /// the delivery of a local receiver.
    fn next_batch(&self, limit: usize) -> Result<(Vec<Item>, u64, Letters), StateError> {
        let mut batch = Vec::new();
        let mut dead = Vec::new();
        let mut end = self.cursor;
        let mut examined = 0;
        let mut page_size = limit;
        'pages: while batch.len() < limit && examined < limit + READ_AHEAD {
            let page = self.outbox.read(end, page_size)?;
            let full = page.len() == page_size;
            if page.is_empty() && examined == 0 {
                // Nothing stored past the cursor although the head says so: follow the head.
                return Ok((batch, (*self.head.borrow()).max(self.cursor), dead));
            }
            for (seq, entry) in page {
                if batch.len() == limit {
                    break 'pages;
                }
                examined += 1;
                end = seq + 1;
                let entry = match entry {
                    Ok(e) => e,
                    Err(reason) => {
                        dead.push(self.unreadable(seq, reason, Value::Null));
                        continue;
                    }
                };
                if !entry.is_for(&self.name) {
                    continue;
                }
                match Record::from_json(&entry.alert) {
                    Ok(r) if self.routing.accepts(&r.rule, r.severity(), &r.tags) => {
                        batch.push(Item {
                            seq,
                            stored_at: entry.stored_at,
                            record: Arc::new(r),
                            alert: entry.alert,
                        })
                    }
                    Ok(_) => {}
                    Err(e) => dead.push(self.unreadable(seq, e.to_string(), entry.alert)),
                }
            }
            if !full {
                break;
            }
            page_size = SKIP_PAGE;
        }
        Ok((batch, end, dead))
    }

    /// Moves every expired alert for this sink from `from` on to the dead letters, up to the
    /// first one still within `max_age`.
    fn expire_from(&self, from: u64, now: i64, why: &str) -> Result<(Letters, u64), StateError> {
        let max_age = self.policy.max_age.as_millis() as i64;
        let mut dead = Vec::new();
        let mut cursor = from;
        for (seq, entry) in self.outbox.read(from, EXPIRE_STEP)? {
            if let Ok(e) = &entry
                && e.is_for(&self.name)
                && Record::from_json(&e.alert)
                    .is_ok_and(|r| self.routing.accepts(&r.rule, r.severity(), &r.tags))
            {
                if now - e.stored_at <= max_age {
                    break;
                }
                let item = Item {
                    seq,
                    stored_at: e.stored_at,
                    record: Arc::new(Record::default()),
                    alert: e.alert.clone(),
                };
                dead.push(self.letter(&item, 0, why.to_string()));
            }
            cursor = seq + 1;
        }
        Ok((dead, cursor))
    }

    fn letter(&self, item: &Item, attempts: u32, reason: String) -> (Vec<u8>, Vec<u8>) {
        self.status.dead_letters.fetch_add(1, Ordering::Relaxed);
        let letter = DeadLetter {
            sink: self.name.clone(),
            seq: item.seq,
            stored_at: item.stored_at,
            dead_at: chrono::Utc::now().timestamp_millis(),
            attempts,
            reason,
            alert: item.alert.clone(),
        };
        (
            dead_key(&self.name, item.seq),
            serde_json::to_vec(&letter).expect("a dead letter encodes"),
        )
    }

    fn unreadable(&self, seq: u64, reason: String, alert: Value) -> (Vec<u8>, Vec<u8>) {
        tracing::error!(sink = %self.name, seq, %reason, "unreadable outbox entry moved to the dead letters");
        let item = Item {
            seq,
            stored_at: 0,
            record: Arc::new(Record::default()),
            alert,
        };
        self.letter(&item, 0, reason)
    }

    fn advance(&mut self, cursor: u64, dead: Letters) {
        self.cursor = cursor;
        self.status.cursor.store(cursor, Ordering::Relaxed);
        self.progress.advance(&self.name, cursor, dead);
    }
}
