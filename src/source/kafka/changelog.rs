//! The changelog of detection's tasks (`[source.scale_out] changelog = true`): each partition
//! of detection is a task whose state (windows, held events, baselines, suppression, dedup
//! ids, and the partition's position) lives in the topic `<detection group>-changelog`, in the
//! partition of the same number, so whichever instance is assigned a partition restores its
//! state from there before processing it, as Kafka Streams restores a task from its changelog
//! topic. An instance that dies with its disk loses nothing a checkpoint had written.
//!
//! **Writing.** The detector (`app::tasks`) puts a task's changes under [`task_key`]s in the
//! checkpoint's writes. [`ChangelogStore`], the store the checkpoint writer commits to, takes
//! them out, produces each task's part as one *commit* to its partition, waits for the
//! brokers' acknowledgement (idempotent producer, `acks=all`), and only then commits the rest
//! locally and reports the checkpoint durable (so the group's offsets move only past state the
//! changelog holds).
//!
//! **A commit** is the task's operations (deletes, then puts, as the store applies them)
//! encoded into one byte stream and cut into messages of at most [`MESSAGE_BYTES`]; each
//! message carries the header `authwatch-commit` = `<index>/<count>`. A commit flagged
//! `authwatch-snapshot` holds the task's whole state: restoring starts over from it. A task's
//! first commit after its assignment is a snapshot, and so is every `snapshot_every`-th.
//!
//! Every message names, in `authwatch-base`, the offset where the task's last acknowledged
//! snapshot starts.
//!
//! **Restoring** ([`restore`]) reads the partition's last message for that offset, reads from
//! there to the end (one snapshot and at most `snapshot_every` commits of changes: restore
//! time is bounded by the snapshot interval, not by the topic's retention), and applies whole
//! commits only: a commit cut short by a crash (its last message never written) is ignored,
//! so the restored state is always exactly that of one checkpoint, whose position is where
//! processing resumes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

use super::log::librdkafka_log;
use super::produce::send_when_room;
use crate::config::{KafkaConfig, kafka_client};
use crate::shared::Shared;
use crate::state::{Entries, StateError, StateWrites, Store};

/// The header numbering a commit's messages: `<index>/<count>`, from 1.
pub const HEADER_COMMIT: &str = "authwatch-commit";
/// The header marking the messages of a snapshot commit.
pub const HEADER_SNAPSHOT: &str = "authwatch-snapshot";
/// The header giving the offset where the task's last acknowledged snapshot starts: a restore
/// reads the partition's last message and starts there, so it reads one snapshot and the
/// changes after it, however long the topic's retention.
pub const HEADER_BASE: &str = "authwatch-base";
/// A changelog message's largest payload: well under the brokers' default `message.max.bytes`
/// (1 MiB), whatever a single stored value weighs.
pub const MESSAGE_BYTES: usize = 512 * 1024;
/// The prefix of a task's keys in the checkpoint's writes; never stored locally.
const TASK_PREFIX: &[u8] = b"t/";
/// How long a send waits for room in the producer's queue before trying again.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(5);
/// Restoring: how long a partition read to its high watermark must stay silent to be at its
/// end (some brokers, tansu among them, report a watermark below the real end).
const QUIET_AT_END: Duration = Duration::from_millis(500);
/// ... and how long it may stay silent below its watermark before the restore fails.
const QUIET_BELOW_END: Duration = Duration::from_secs(30);
/// How long reading the partition's watermarks may take.
const WATERMARK_WAIT: Duration = Duration::from_secs(10);
/// How long reading the partition's last message (for its base) may take.
const LAST_MESSAGE_WAIT: Duration = Duration::from_secs(3);
/// The delivery tag of a snapshot's first message (the task in the low 32 bits).
const FIRST_OF_SNAPSHOT: usize = 1 << 32;
/// Attempts at restoring a task before the daemon gives up (the broker may be restarting).
const RESTORE_ATTEMPTS: u32 = 4;
/// Restore progress is logged every this many bytes.
const PROGRESS_LOG_BYTES: u64 = 16 << 20;

/// The changelog topic of the detection group `task_group`.
pub fn topic_name(task_group: &str) -> String {
    format!("{task_group}-changelog")
}

/// The key under which the detector writes `key` of task `task` into a checkpoint's writes.
pub fn task_key(task: i32, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(TASK_PREFIX.len() + 4 + key.len());
    out.extend_from_slice(TASK_PREFIX);
    out.extend_from_slice(&(task as u32).to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// The key whose put says the task's part of this checkpoint is a whole snapshot.
pub fn snapshot_marker(task: i32) -> Vec<u8> {
    task_key(task, b"")
}

/// A task key's task and the key within the task.
fn split_task_key(key: &[u8]) -> Option<(i32, &[u8])> {
    let rest = key.strip_prefix(TASK_PREFIX)?;
    let (task, key) = rest.split_at_checked(4)?;
    Some((u32::from_be_bytes(task.try_into().ok()?) as i32, key))
}

/// One task's part of a checkpoint.
#[derive(Debug, Default, PartialEq)]
pub struct TaskCommit {
    pub snapshot: bool,
    pub deletes: Vec<Vec<u8>>,
    pub puts: Vec<(Vec<u8>, Vec<u8>)>,
}

const OP_DELETE: u8 = 2;
const OP_PUT: u8 = 1;

fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

impl TaskCommit {
    /// The operations as one byte stream: `2 <len key>` per delete, then `1 <len key> <len
    /// value>` per put, lengths as u32 big-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for key in &self.deletes {
            out.push(OP_DELETE);
            push_bytes(&mut out, key);
        }
        for (key, value) in &self.puts {
            out.push(OP_PUT);
            push_bytes(&mut out, key);
            push_bytes(&mut out, value);
        }
        out
    }

    /// Reads [`TaskCommit::encode`]'s stream back.
    pub fn decode(mut bytes: &[u8], snapshot: bool) -> Result<TaskCommit, String> {
        fn take<'a>(bytes: &mut &'a [u8]) -> Result<&'a [u8], String> {
            let (len, rest) = bytes.split_at_checked(4).ok_or("a length is cut short")?;
            let len = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
            let (value, rest) = rest.split_at_checked(len).ok_or("a value is cut short")?;
            *bytes = rest;
            Ok(value)
        }
        let mut commit = TaskCommit {
            snapshot,
            ..TaskCommit::default()
        };
        while let Some((&op, rest)) = bytes.split_first() {
            bytes = rest;
            match op {
                OP_DELETE => commit.deletes.push(take(&mut bytes)?.to_vec()),
                OP_PUT => {
                    let key = take(&mut bytes)?.to_vec();
                    commit.puts.push((key, take(&mut bytes)?.to_vec()));
                }
                other => return Err(format!("unknown operation {other}")),
            }
        }
        Ok(commit)
    }

    /// Applies the operations to a task's state, as the store would.
    pub fn apply_to(self, state: &mut BTreeMap<Vec<u8>, Vec<u8>>) {
        if self.snapshot {
            state.clear();
        }
        for key in self.deletes {
            state.remove(&key);
        }
        for (key, value) in self.puts {
            state.insert(key, value);
        }
    }
}

/// Splits a checkpoint's writes into each task's commit and the writes that stay local.
pub fn split_tasks(writes: StateWrites) -> (BTreeMap<i32, TaskCommit>, StateWrites) {
    let mut tasks: BTreeMap<i32, TaskCommit> = BTreeMap::new();
    let mut local = StateWrites::default();
    for key in writes.deletes {
        match split_task_key(&key) {
            Some((task, inner)) => tasks.entry(task).or_default().deletes.push(inner.to_vec()),
            None => local.delete(key),
        }
    }
    for (key, value) in writes.puts {
        match split_task_key(&key) {
            Some((task, [])) => tasks.entry(task).or_default().snapshot = true,
            Some((task, inner)) => tasks
                .entry(task)
                .or_default()
                .puts
                .push((inner.to_vec(), value)),
            None => local.put(key, value),
        }
    }
    (tasks, local)
}

/// A task's state being rebuilt from its changelog partition, message by message.
#[derive(Debug, Default)]
pub struct Restoring {
    pub state: BTreeMap<Vec<u8>, Vec<u8>>,
    /// The commit being read: its bytes so far, its message count, whether a snapshot.
    pending: Vec<u8>,
    pending_parts: Option<(u32, u32, bool)>,
    pub commits: u64,
    /// Commits found cut short (a writer that died mid-commit) and ignored.
    pub torn: u64,
    /// A change came before any snapshot: what preceded it is gone (retention deleted the
    /// snapshot), so the state may be incomplete.
    pub without_base: bool,
    seen_snapshot: bool,
}

impl Restoring {
    /// Takes one message: its payload and its `authwatch-commit` / `authwatch-snapshot`
    /// headers.
    pub fn message(&mut self, payload: &[u8], part: (u32, u32), snapshot: bool) {
        let (index, count) = part;
        match self.pending_parts {
            _ if index == 1 => {
                if self.pending_parts.is_some() {
                    self.torn += 1;
                }
                self.pending.clear();
            }
            Some((seen, total, _)) if index == seen + 1 && count == total => {}
            _ => {
                // A part out of sequence: the commit it belongs to is torn.
                if self.pending_parts.take().is_some() {
                    self.torn += 1;
                }
                self.pending.clear();
                return;
            }
        }
        self.pending.extend_from_slice(payload);
        self.pending_parts = Some((index, count, snapshot));
        if index == count {
            self.pending_parts = None;
            let bytes = std::mem::take(&mut self.pending);
            match TaskCommit::decode(&bytes, snapshot) {
                Ok(commit) => {
                    if snapshot {
                        self.seen_snapshot = true;
                    } else if !self.seen_snapshot {
                        self.without_base = true;
                    }
                    commit.apply_to(&mut self.state);
                    self.commits += 1;
                }
                Err(e) => {
                    tracing::error!(error = %e, "kafka: a changelog commit cannot be read; skipped");
                    self.torn += 1;
                }
            }
        }
    }
}

/// Counts deliveries that failed for good (after librdkafka's retries), and notes where each
/// snapshot's first message landed.
#[derive(Default)]
struct ChangelogAcks {
    failed: AtomicU64,
    snapshot_starts: Mutex<BTreeMap<i32, i64>>,
}

impl ClientContext for ChangelogAcks {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        librdkafka_log("changelog producer", level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::error!(%error, "kafka changelog producer: {reason}");
    }
}

impl ProducerContext for ChangelogAcks {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, tag: usize) {
        match result {
            Ok(message) if tag & FIRST_OF_SNAPSHOT != 0 => {
                let task = (tag & 0xffff_ffff) as u32 as i32;
                self.snapshot_starts
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(task, message.offset());
            }
            Ok(_) => {}
            Err((error, _)) => {
                if self.failed.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::error!(%error, "kafka: a task's state could not be written to the changelog");
                }
            }
        }
    }
}

/// The store the checkpoint writer commits to in changelog mode: tasks' writes go to the
/// changelog topic (acknowledged before anything else is committed), the rest to the local
/// store.
pub struct ChangelogStore {
    local: Arc<dyn Store + Send + Sync>,
    producer: ThreadedProducer<ChangelogAcks>,
    topic: String,
    /// `[source.scale_out] ack_timeout`.
    ack_timeout: Duration,
    /// Per task, the offset where its last acknowledged snapshot starts.
    bases: Mutex<BTreeMap<i32, i64>>,
}

impl ChangelogStore {
    pub fn new(
        config: &KafkaConfig,
        topic: String,
        local: Arc<dyn Store + Send + Sync>,
    ) -> anyhow::Result<ChangelogStore> {
        let mut settings = kafka_client::producer_config(config);
        // A commit's messages must land in order and once each.
        settings
            .set("enable.idempotence", "true")
            .set("linger.ms", "1");
        let producer = settings
            .create_with_context(ChangelogAcks::default())
            .context("cannot create the changelog producer")?;
        Ok(ChangelogStore {
            local,
            producer,
            topic,
            ack_timeout: config.ack_timeout(),
            bases: Mutex::new(BTreeMap::new()),
        })
    }

    fn fail(&self, reason: String) -> StateError {
        StateError::Changelog {
            topic: self.topic.clone(),
            reason,
        }
    }

    fn produce(&self, task: i32, commit: &TaskCommit) -> Result<(), StateError> {
        let bytes = commit.encode();
        let parts: Vec<&[u8]> = if bytes.is_empty() {
            vec![&[]]
        } else {
            bytes.chunks(MESSAGE_BYTES).collect()
        };
        let count = parts.len();
        let key = task.to_string();
        let base = self
            .bases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&task)
            .map(i64::to_string);
        for (i, payload) in parts.into_iter().enumerate() {
            let numbering = format!("{}/{count}", i + 1);
            let mut headers = OwnedHeaders::new().insert(Header {
                key: HEADER_COMMIT,
                value: Some(numbering.as_bytes()),
            });
            if let Some(base) = &base {
                headers = headers.insert(Header {
                    key: HEADER_BASE,
                    value: Some(base.as_bytes()),
                });
            }
            let tag = match (commit.snapshot, i) {
                (true, 0) => FIRST_OF_SNAPSHOT | task as u32 as usize,
                _ => 0,
            };
            if commit.snapshot {
                headers = headers.insert(Header {
                    key: HEADER_SNAPSHOT,
                    value: Some(&b"1"[..]),
                });
            }
            let record = BaseRecord::with_opaque_to(&self.topic, tag)
                .partition(task)
                .key(key.as_bytes())
                .payload(payload)
                .headers(headers);
            send_when_room(&self.producer, record, QUEUE_FULL_WAIT)
                .map_err(|e| self.fail(e.to_string()))?;
        }
        Ok(())
    }
}

impl Store for ChangelogStore {
    fn scan(&self, prefix: &[u8]) -> Result<Entries, StateError> {
        self.local.scan(prefix)
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.local.get(key)
    }

    fn scan_from(&self, prefix: &[u8], start: &[u8], limit: usize) -> Result<Entries, StateError> {
        self.local.scan_from(prefix, start, limit)
    }

    fn commit(&self, mut writes: StateWrites) -> Result<(), StateError> {
        writes.resolve();
        let (tasks, local) = split_tasks(writes);
        if !tasks.is_empty() {
            for (task, commit) in &tasks {
                self.produce(*task, commit)?;
            }
            self.producer
                .flush(self.ack_timeout)
                .map_err(|e| self.fail(format!("not acknowledged in time: {e}")))?;
            if self.producer.context().failed.load(Ordering::Relaxed) > 0 {
                return Err(self.fail("a commit could not be produced".into()));
            }
            // Snapshots acknowledged: the commits after them name where they start.
            let starts = std::mem::take(
                &mut *self
                    .producer
                    .context()
                    .snapshot_starts
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()),
            );
            self.bases
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(starts);
        }
        self.local.commit(local)
    }

    fn size_on_disk(&self) -> u64 {
        self.local.size_on_disk()
    }
}

/// A task's state read back from its changelog partition.
#[derive(Debug)]
pub struct Restored {
    /// The offset the restore read from: the last snapshot's start, or the partition's.
    pub from: i64,
    pub state: BTreeMap<Vec<u8>, Vec<u8>>,
    pub commits: u64,
    pub messages: u64,
    pub bytes: u64,
    pub torn: u64,
    pub without_base: bool,
}

/// The numbering header of a changelog message, `(index, count)`.
fn commit_part(message: &rdkafka::message::BorrowedMessage<'_>) -> Option<((u32, u32), bool)> {
    let headers = message.headers()?;
    let mut part = None;
    let mut snapshot = false;
    for h in headers.iter() {
        match h.key {
            HEADER_COMMIT => {
                let text = std::str::from_utf8(h.value?).ok()?;
                let (i, n) = text.split_once('/')?;
                part = Some((i.parse().ok()?, n.parse().ok()?));
            }
            HEADER_SNAPSHOT => snapshot = true,
            _ => {}
        }
    }
    Some((part?, snapshot))
}

/// The `authwatch-base` of the partition's last message, if it can be read.
fn last_base(consumer: &BaseConsumer, topic: &str, task: i32, high: i64) -> Option<i64> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, task, Offset::Offset(high - 1))
        .ok()?;
    consumer.assign(&tpl).ok()?;
    let deadline = Instant::now() + LAST_MESSAGE_WAIT;
    while Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            let headers = message.headers()?;
            let base = headers.iter().find(|h| h.key == HEADER_BASE)?;
            return std::str::from_utf8(base.value?).ok()?.parse().ok();
        }
    }
    None
}

/// Reads task `task`'s changelog partition from its last snapshot to its end and rebuilds the state
/// its last whole commit left. `progress` is told the bytes read as they come.
pub fn restore(
    config: &KafkaConfig,
    topic: &str,
    task: i32,
    mut progress: impl FnMut(u64),
) -> anyhow::Result<Restored> {
    let mut settings = kafka_client::consumer_config(config);
    // A reader of its own, outside every group: it commits nothing.
    settings.set("group.id", format!("{}-restore", config.group_id));
    let consumer: BaseConsumer = settings
        .create()
        .context("cannot create the changelog reader")?;
    let (low, high) = consumer
        .fetch_watermarks(topic, task, WATERMARK_WAIT)
        .with_context(|| format!("cannot read the watermarks of {topic}/{task}"))?;
    let mut restoring = Restoring::default();
    let (mut messages, mut bytes) = (0u64, 0u64);
    let mut from = low;
    if high > low {
        // The last message names where the last snapshot before it starts; without one
        // (a single snapshot so far, or a message that cannot be read), from the start.
        if let Some(base) = last_base(&consumer, topic, task, high)
            && base > low
            && base < high
        {
            from = base;
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, task, Offset::Offset(from))?;
        consumer.assign(&tpl)?;
        let mut next = from;
        let mut last = Instant::now();
        loop {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => {
                    last = Instant::now();
                    next = message.offset() + 1;
                    messages += 1;
                    let payload = message.payload().unwrap_or_default();
                    bytes += payload.len() as u64;
                    progress(payload.len() as u64);
                    match commit_part(&message) {
                        Some((part, snapshot)) => restoring.message(payload, part, snapshot),
                        None => tracing::warn!(
                            topic,
                            task,
                            offset = message.offset(),
                            "kafka: a changelog message without its commit header; skipped"
                        ),
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, topic, task, "kafka: reading the changelog")
                }
                None => {}
            }
            let quiet = last.elapsed();
            if next >= high && quiet >= QUIET_AT_END {
                break;
            }
            if quiet >= QUIET_BELOW_END {
                anyhow::bail!(
                    "{topic}/{task} stopped at offset {next} below its end {high} for {}s",
                    QUIET_BELOW_END.as_secs()
                );
            }
        }
    }
    Ok(Restored {
        from,
        state: restoring.state,
        commits: restoring.commits,
        messages,
        bytes,
        torn: restoring.torn,
        without_base: restoring.without_base,
    })
}

/// See [`Restorer::busy`].
pub struct Busy<'a>(&'a Shared);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.restoring.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Restores tasks as they are assigned (called by the source's rebalance callback, before any
/// of the partition's messages is handed on): readiness is off meanwhile, progress is in the
/// metrics and the log.
pub struct Restorer {
    config: KafkaConfig,
    topic: String,
    shared: Arc<Shared>,
}

impl Restorer {
    /// `config` is the detection consumer's (its group names the reader).
    pub fn new(config: &KafkaConfig, topic: String, shared: Arc<Shared>) -> Restorer {
        Restorer {
            config: config.clone(),
            topic,
            shared,
        }
    }

    /// Marks the daemon as restoring (not ready, no quiet source) until the guard is dropped:
    /// held over a whole assignment, between its tasks too.
    pub fn busy(&self) -> Busy<'_> {
        self.shared.restoring.fetch_add(1, Ordering::Relaxed);
        Busy(&self.shared)
    }

    /// Task `task`'s state. One that cannot be read after a few attempts ends the process:
    /// processing the partition from nothing would raise alerts from forgotten baselines and
    /// then overwrite its changelog with that empty state. The changelog and the group's
    /// offsets are as a crash leaves them, so the next start (or another instance) restores.
    pub fn restore(&self, task: i32) -> Restored {
        let metrics = &self.shared.metrics;
        self.shared.restoring.fetch_add(1, Ordering::Relaxed);
        metrics.restoring_tasks.inc();
        let started = Instant::now();
        let mut attempt = 0;
        let result = loop {
            let mut read = 0u64;
            let mut logged = 0u64;
            let progress = |bytes: u64| {
                read += bytes;
                metrics.restored_bytes.inc_by(bytes);
                if read - logged >= PROGRESS_LOG_BYTES {
                    logged = read;
                    tracing::info!(topic = %self.topic, task, bytes = read, "kafka: restoring a task");
                }
            };
            match restore(&self.config, &self.topic, task, progress) {
                Ok(restored) => break Ok(restored),
                Err(e) if attempt + 1 < RESTORE_ATTEMPTS => {
                    attempt += 1;
                    tracing::warn!(error = %e, topic = %self.topic, task, attempt, "kafka: cannot restore a task yet; trying again");
                    std::thread::sleep(Duration::from_secs(1 << attempt));
                }
                Err(e) => break Err(e),
            }
        };
        self.shared.restoring.fetch_sub(1, Ordering::Relaxed);
        metrics.restoring_tasks.dec();
        let took = started.elapsed();
        match result {
            Ok(restored) => {
                metrics.restore_seconds.observe(took.as_secs_f64());
                tracing::info!(
                    topic = %self.topic,
                    task,
                    entries = restored.state.len(),
                    from = restored.from,
                    commits = restored.commits,
                    messages = restored.messages,
                    bytes = restored.bytes,
                    ms = took.as_millis() as u64,
                    "kafka: task restored"
                );
                if restored.torn > 0 {
                    tracing::warn!(
                        task,
                        torn = restored.torn,
                        "kafka: changelog commits cut short by a crash were ignored; the events after the last whole one are processed again"
                    );
                }
                if restored.without_base {
                    tracing::error!(task, topic = %self.topic, "kafka: the changelog holds changes without the snapshot before them (deleted by retention?); the task's state may be incomplete: set the topic's retention.ms well above snapshot_every checkpoints");
                }
                restored
            }
            Err(e) => {
                tracing::error!(error = %e, topic = %self.topic, task, "kafka: cannot restore a task's state; stopping (processing it without its state would lose detection)");
                std::process::exit(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(snapshot: bool, puts: &[(&str, &str)], deletes: &[&str]) -> TaskCommit {
        TaskCommit {
            snapshot,
            deletes: deletes.iter().map(|k| k.as_bytes().to_vec()).collect(),
            puts: puts
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect(),
        }
    }

    fn state(r: &Restoring) -> Vec<(String, String)> {
        r.state
            .iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect()
    }

    /// Feeds a commit as its writer would, cut into `parts` messages (the last `drop` parts
    /// never written, as when the writer dies mid-commit).
    fn feed(r: &mut Restoring, c: &TaskCommit, parts: usize, drop: usize) {
        let bytes = c.encode();
        let size = bytes.len().div_ceil(parts).max(1);
        let chunks: Vec<&[u8]> = bytes.chunks(size).collect();
        let count = chunks.len() as u32;
        for (i, chunk) in chunks.iter().enumerate().take(chunks.len() - drop) {
            r.message(chunk, (i as u32 + 1, count), c.snapshot);
        }
    }

    #[test]
    fn a_commit_round_trips_through_its_encoding() {
        let c = commit(true, &[("a", "1"), ("b", "")], &["c"]);
        assert_eq!(TaskCommit::decode(&c.encode(), true).unwrap(), c);
        assert!(TaskCommit::decode(&[1, 0, 0, 0, 9, b'x'], false).is_err());
    }

    #[test]
    fn restore_applies_whole_commits_and_ignores_one_cut_short() {
        let mut r = Restoring::default();
        feed(&mut r, &commit(true, &[("a", "1"), ("b", "2")], &[]), 3, 0);
        feed(&mut r, &commit(false, &[("c", "3")], &["a"]), 2, 0);
        // The writer died after the first of two messages.
        feed(
            &mut r,
            &commit(false, &[("d", "4"), ("e", "5")], &["b"]),
            2,
            1,
        );
        assert_eq!(
            state(&r),
            [("b".into(), "2".into()), ("c".into(), "3".into())]
        );
        // The next owner starts with a snapshot of what it restored plus its changes.
        feed(&mut r, &commit(true, &[("b", "2"), ("c", "30")], &[]), 1, 0);
        assert_eq!(
            state(&r),
            [("b".into(), "2".into()), ("c".into(), "30".into())]
        );
        assert_eq!((r.commits, r.torn, r.without_base), (3, 1, false));
    }

    #[test]
    fn a_snapshot_replaces_everything_before_it_and_changes_without_one_are_flagged() {
        let mut r = Restoring::default();
        feed(&mut r, &commit(false, &[("x", "1")], &[]), 1, 0);
        assert!(r.without_base);
        feed(&mut r, &commit(true, &[("y", "2")], &[]), 1, 0);
        assert_eq!(state(&r), [("y".into(), "2".into())]);
    }

    #[test]
    fn writes_split_into_task_commits_and_local_writes() {
        let mut w = StateWrites::default();
        w.put(snapshot_marker(3), Vec::new());
        w.put(task_key(3, b"g/1"), b"v".to_vec());
        w.delete(task_key(5, b"g/2"));
        w.put(b"s/kafka/t/3".to_vec(), b"{}".to_vec());
        let (tasks, local) = split_tasks(w);
        assert_eq!(tasks[&3], commit(true, &[("g/1", "v")], &[]));
        assert_eq!(tasks[&5], commit(false, &[], &["g/2"]));
        assert_eq!(local.puts, [(b"s/kafka/t/3".to_vec(), b"{}".to_vec())]);
        assert!(local.deletes.is_empty());
    }
}
