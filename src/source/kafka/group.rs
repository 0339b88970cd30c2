//! The consumer-group side of the source: what happens on assignment and revocation (run by
//! librdkafka inside `poll`, on the source thread), and the state those callbacks share with
//! the poll loop: the event-time merge, the channel to detection, and the offsets that are
//! durable and committed.
//!
//! - **Assignment**: each partition starts at the larger of its checkpointed offset (this
//!   instance's state covers the events before it) and the group's committed offset (another
//!   member processed up to there while this one did not hold the partition); with neither,
//!   librdkafka's `auto.offset.reset` applies.
//! - **Revocation**: what the merge still holds for the partitions is dropped (never handed on,
//!   so never counted), detection checkpoints everything handed on so far, and once that
//!   checkpoint is durable its offsets are committed synchronously, all before the rebalance
//!   completes: the next owner starts exactly where this one's state ends.
//! - **Commits** happen only for offsets a durable checkpoint wrote, never per message.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::bindings;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::changelog::Restorer;
use super::dead_letter::DeadLetters;
use super::lag::{ConsumerLag, PartitionLag};
use super::log::librdkafka_log;
use super::merge::{Merge, Tp};
use super::offsets::{self, Durable};
use crate::source::{BATCH_RECORDS, Batch, Item};
use crate::state::Store;

/// How long a revocation waits for detection to checkpoint and for the checkpoint to be
/// durable. Well under librdkafka's `max.poll.interval.ms` (5 min) and the broker's rebalance
/// timeout; a checkpoint takes milliseconds to a second.
const REVOKE_WAIT: Duration = Duration::from_secs(30);
/// How long an assignment waits for the group's committed offsets.
const COMMITTED_WAIT: Duration = Duration::from_secs(10);
/// How long a commit waits for dead letters to be acknowledged before trying again later.
const DEAD_LETTER_FLUSH: Duration = Duration::from_secs(5);

pub struct GroupContext {
    inner: Mutex<Coordinator>,
    /// Set by the commit callback when an asynchronous commit failed (it may not take the
    /// lock); the next commit then forgets what it believed committed and commits again.
    commit_failed: AtomicBool,
}

pub struct Coordinator {
    /// To detection; `None` once it is gone or the source is closing.
    tx: Option<SyncSender<Batch>>,
    durable: Receiver<Durable>,
    store: Arc<dyn Store + Send + Sync>,
    pub merge: Merge<Item>,
    /// The newest durable position per partition, and the last committed one.
    durable_offsets: BTreeMap<(String, i32), i64>,
    committed: BTreeMap<(String, i32), i64>,
    durable_seq: Option<u64>,
    /// Set once the source stops: a revocation then only commits (detection has stopped).
    pub closing: bool,
    pub dead: Option<Arc<DeadLetters>>,
    topics: Vec<Arc<str>>,
    lag: Arc<ConsumerLag>,
    /// Bumped by every assignment and revocation: the poll loop then splits off the
    /// partitions' queues again (an assignment deactivates the queues split before it).
    pub generation: u64,
    /// Precede records with `Item::Partition` naming where they were read (for the
    /// repartition hop, which carries it on so detection can merge them back in order).
    pub tag_partitions: bool,
    /// Changelog mode: each partition is a task, restored from its changelog on assignment
    /// (its position there is where it starts), written to it on revocation; records are
    /// preceded by `Item::Task` naming their partition.
    pub tasks: Option<Arc<Restorer>>,
}

impl GroupContext {
    pub fn new(
        tx: SyncSender<Batch>,
        durable: Receiver<Durable>,
        store: Arc<dyn Store + Send + Sync>,
        merge: Merge<Item>,
        dead: Option<Arc<DeadLetters>>,
        lag: Arc<ConsumerLag>,
    ) -> GroupContext {
        GroupContext {
            commit_failed: AtomicBool::new(false),
            inner: Mutex::new(Coordinator {
                tx: Some(tx),
                durable,
                store,
                merge,
                durable_offsets: BTreeMap::new(),
                committed: BTreeMap::new(),
                durable_seq: None,
                closing: false,
                dead,
                topics: Vec::new(),
                lag,
                generation: 0,
                tag_partitions: false,
                tasks: None,
            }),
        }
    }

    /// The shared state. Never held across `poll` or the consumer's drop, which run the
    /// rebalance callbacks that take it.
    pub fn lock(&self) -> MutexGuard<'_, Coordinator> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ClientContext for GroupContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        librdkafka_log("consumer", level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(%error, "kafka consumer: {reason}");
    }
}

impl ConsumerContext for GroupContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.lock().on_assign(consumer, tpl);
                if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let lost = consumer.assignment_lost();
                self.lock().on_revoke(consumer, tpl, lost);
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                }
            }
            other => {
                tracing::warn!(error = ?other, "kafka rebalance failed; dropping the assignment");
                let mut c = self.lock();
                let all: Vec<Tp> = c.merge.partitions().map(|(tp, _, _)| tp.clone()).collect();
                for tp in &all {
                    c.merge.remove(tp);
                }
                drop(c);
                consumer.unassign()
            }
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "kafka: applying the rebalance failed");
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        // Never takes the lock: librdkafka may call this from inside a synchronous commit.
        if let Err(e) = result {
            self.commit_failed.store(true, Ordering::Release);
            tracing::warn!(error = %e, partitions = offsets.count(), "kafka offset commit failed; the next durable checkpoint commits again");
        }
    }
}

impl Coordinator {
    /// The interned name of `topic` with `partition`.
    pub fn tp(&mut self, topic: &str, partition: i32) -> Tp {
        let name = match self.topics.iter().find(|t| &***t == topic) {
            Some(t) => t.clone(),
            None => {
                let t: Arc<str> = Arc::from(topic);
                self.topics.push(t.clone());
                t
            }
        };
        (name, partition)
    }

    fn on_assign(&mut self, consumer: &BaseConsumer<GroupContext>, tpl: &mut TopicPartitionList) {
        self.generation += 1;
        if let Some(restorer) = self.tasks.clone() {
            self.assign_tasks(&restorer, tpl);
            return;
        }
        let now = Instant::now();
        let parts = partitions_of(tpl);
        let mut stored = BTreeMap::new();
        for (topic, partition) in &parts {
            match offsets::stored(&*self.store, topic, *partition) {
                Ok(Some(offset)) => {
                    stored.insert((topic.clone(), *partition), offset);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(error = %e, topic, partition, "cannot read the checkpointed offset; using the group's")
                }
            }
        }
        // The group's offsets matter only where this instance has its own to compare with;
        // elsewhere librdkafka starts from them itself.
        let committed = if stored.is_empty() {
            BTreeMap::new()
        } else {
            committed_offsets(consumer, tpl)
        };
        let mut starts = Vec::new();
        for (topic, partition) in parts {
            let key = (topic.clone(), partition);
            let group = committed.get(&key).copied();
            let start = match (stored.get(&key).copied(), group) {
                (Some(s), Some(g)) => Some(s.max(g)),
                (Some(s), None) => Some(s),
                (None, _) => None,
            };
            if let Some(offset) = start {
                if let Err(e) = tpl.set_partition_offset(&topic, partition, Offset::Offset(offset))
                {
                    tracing::error!(error = %e, topic, partition, "cannot set the start offset");
                }
                starts.push(format!("{topic}/{partition}@{offset}"));
            } else {
                starts.push(format!("{topic}/{partition}@group"));
            }
            // What this instance last committed says nothing about the group after the
            // partition was away (lost, or committed by another member since).
            self.committed.remove(&key);
            if let Some(g) = group {
                self.committed.insert(key, g);
            }
            let tp = self.tp(&topic, partition);
            self.merge.add(tp, start, now);
        }
        tracing::info!(partitions = %starts.join(" "), "kafka: partitions assigned");
    }

    /// Changelog mode: each assigned partition's state is read from its changelog and handed
    /// to detection before any of its records, and the partition starts at the position that
    /// state holds (from its beginning when the changelog has none: the state is then empty).
    fn assign_tasks(&mut self, restorer: &Restorer, tpl: &mut TopicPartitionList) {
        let _busy = restorer.busy();
        let now = Instant::now();
        let parts = partitions_of(tpl);
        let mut starts = Vec::new();
        for (topic, partition) in parts {
            let restored = restorer.restore(partition);
            let position = offsets::stored_in(&restored.state, &topic, partition);
            // As in `on_assign`: commit again from what the restored state holds.
            self.committed.remove(&(topic.clone(), partition));
            let offset = position.map_or(Offset::Beginning, Offset::Offset);
            if let Err(e) = tpl.set_partition_offset(&topic, partition, offset) {
                tracing::error!(error = %e, topic, partition, "cannot set the start offset");
            }
            if let Some(tx) = &self.tx
                && tx
                    .send(Batch::without_position(vec![Item::TaskRestored(
                        partition,
                        restored.state,
                    )]))
                    .is_err()
            {
                self.tx = None;
            }
            starts.push(format!(
                "{topic}/{partition}@{}",
                position.map_or("start".to_string(), |o| o.to_string())
            ));
            let tp = self.tp(&topic, partition);
            self.merge.add(tp, position, now);
        }
        tracing::info!(partitions = %starts.join(" "), "kafka: partitions assigned");
    }

    fn on_revoke(
        &mut self,
        consumer: &BaseConsumer<GroupContext>,
        tpl: &TopicPartitionList,
        lost: bool,
    ) {
        self.generation += 1;
        let revoked: Vec<Tp> = tpl
            .elements()
            .iter()
            .map(|e| self.tp(e.topic(), e.partition()))
            .collect();
        for tp in &revoked {
            self.merge.remove(tp);
        }
        let tasks: Vec<i32> = revoked.iter().map(|tp| tp.1).collect();
        if self.tasks.is_some() && lost {
            // Another member may own them and be writing their changelog already: a
            // checkpoint from here would overwrite its state with this one's.
            if let Some(tx) = &self.tx
                && tx
                    .send(Batch::without_position(vec![Item::TasksLost(tasks)]))
                    .is_err()
            {
                self.tx = None;
            }
        } else if !self.closing {
            // Changelog mode: the checkpoint writes the revoked tasks' state to the changelog
            // before the next owner restores it; detection then drops them.
            let before = match self.tasks {
                Some(_) => vec![Item::TasksRevoked(tasks)],
                None => Vec::new(),
            };
            self.checkpoint_now(before);
        }
        self.absorb_durable();
        if lost {
            tracing::warn!(
                "kafka: partitions lost (the session expired); another member may own them already, so their offsets are not committed"
            );
        } else {
            self.commit(consumer, CommitMode::Sync, Some(&revoked));
        }
        let names: Vec<String> = revoked.iter().map(|(t, p)| format!("{t}/{p}")).collect();
        tracing::info!(partitions = %names.join(" "), "kafka: partitions revoked");
    }

    /// Asks detection to checkpoint everything handed on so far and waits until that
    /// checkpoint is durable; `false` when it could not (detection gone, timeout).
    fn checkpoint_now(&mut self, mut before: Vec<Item>) -> bool {
        let Some(tx) = &self.tx else { return false };
        let (reply, answer) = mpsc::channel();
        before.push(Item::CheckpointNow(reply));
        if tx.send(Batch::without_position(before)).is_err() {
            self.tx = None;
            return false;
        }
        let Ok(seq) = answer.recv_timeout(REVOKE_WAIT) else {
            tracing::warn!("kafka: detection did not checkpoint in time for the rebalance");
            return false;
        };
        let deadline = Instant::now() + REVOKE_WAIT;
        while self.durable_seq.is_none_or(|s| s < seq) {
            match self
                .durable
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(d) => self.note_durable(d),
                Err(_) => {
                    tracing::warn!(
                        seq,
                        "kafka: the checkpoint for the rebalance is not durable in time"
                    );
                    return false;
                }
            }
        }
        true
    }

    fn note_durable(&mut self, d: Durable) {
        self.durable_seq = Some(d.seq);
        for (topic, partition, next) in d.positions {
            self.durable_offsets.insert((topic, partition), next);
        }
    }

    /// Takes in the checkpoints that became durable since the last call.
    pub fn absorb_durable(&mut self) {
        while let Ok(d) = self.durable.try_recv() {
            self.note_durable(d);
        }
    }

    /// Waits for detection's last checkpoint (the writer drops its callback when it stops,
    /// which closes the channel), up to `wait`.
    pub fn await_last_checkpoint(&mut self, wait: Duration) {
        let deadline = Instant::now() + wait;
        loop {
            match self
                .durable
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(d) => self.note_durable(d),
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    tracing::warn!(
                        "kafka: detection's last checkpoint did not arrive in time; committing what is durable"
                    );
                    return;
                }
            }
        }
    }

    /// Commits durable offsets beyond the committed ones, for `only` these partitions or
    /// for every assigned one. Dead letters are acknowledged first, so an offset never moves
    /// past a bad message whose dead letter could still be lost.
    pub fn commit(
        &mut self,
        consumer: &BaseConsumer<GroupContext>,
        mode: CommitMode,
        only: Option<&[Tp]>,
    ) {
        let assigned: Vec<(String, i32)> = match only {
            Some(list) => list.iter().map(|(t, p)| (t.to_string(), *p)).collect(),
            None => self
                .merge
                .partitions()
                .map(|((t, p), _, _)| (t.to_string(), *p))
                .collect(),
        };
        // An asynchronous commit is counted as done when it is sent; one that failed later
        // (the coordinator gone in a broker restart, say) must be sent again, or the group
        // would stay behind what this instance believes committed for good.
        if consumer
            .context()
            .commit_failed
            .swap(false, Ordering::AcqRel)
        {
            self.committed.clear();
        }
        let mut tpl = TopicPartitionList::new();
        let mut moved = Vec::new();
        for key in assigned {
            let Some(&next) = self.durable_offsets.get(&key) else {
                continue;
            };
            if self.committed.get(&key).is_some_and(|&c| c >= next) {
                continue;
            }
            if tpl
                .add_partition_offset(&key.0, key.1, Offset::Offset(next))
                .is_ok()
            {
                moved.push((key, next));
            }
        }
        if moved.is_empty() {
            return;
        }
        if let Some(dead) = &self.dead
            && !dead.flush(DEAD_LETTER_FLUSH)
        {
            return;
        }
        match consumer.commit(&tpl, mode) {
            Ok(()) => {
                for (key, next) in moved {
                    self.committed.insert(key, next);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "kafka offset commit failed; the next durable checkpoint commits again")
            }
        }
    }

    /// Hands on what the merge can release, in batches carrying the partitions' positions
    /// after their last released message; `false` once detection is gone.
    pub fn release(&mut self, consumer: &BaseConsumer<GroupContext>, now: Instant) -> bool {
        let Some(tx) = self.tx.clone() else {
            return false;
        };
        let mut items = Vec::new();
        let mut next: BTreeMap<Tp, i64> = BTreeMap::new();
        let mut gone = false;
        let tag_partitions = self.tag_partitions;
        let tag_tasks = self.tasks.is_some();
        let mut from: Option<Tp> = None;
        let send = |items: &mut Vec<Item>, next: &mut BTreeMap<Tp, i64>| -> bool {
            let positions = std::mem::take(next)
                .into_iter()
                .map(|((t, p), n)| offsets::entry(&t, p, n))
                .collect();
            let mut batch = Batch::without_position(std::mem::take(items));
            batch.positions = positions;
            tx.send(batch).is_ok()
        };
        self.merge.release(
            now,
            |tp, next_fetch| at_end(consumer, tp, next_fetch),
            |tp, entry, resume| {
                if gone {
                    return;
                }
                next.insert(tp.clone(), resume);
                if from.as_ref() != Some(tp) {
                    if tag_partitions {
                        items.push(Item::Partition(partition_id(tp)));
                    }
                    if tag_tasks {
                        items.push(Item::Task(tp.1));
                    }
                    from = Some(tp.clone());
                }
                items.push(entry.payload);
                if items.len() >= BATCH_RECORDS {
                    gone = !send(&mut items, &mut next);
                    // The next batch names its partition again before its first record.
                    from = None;
                }
            },
        );
        if !gone && !items.is_empty() && !send(&mut items, &mut next) {
            gone = true;
        }
        if gone {
            self.tx = None;
        }
        !gone
    }

    /// Refreshes the shared lag figures from librdkafka's cached high watermarks.
    pub fn update_lag(&self, consumer: &BaseConsumer<GroupContext>) {
        let figures = self
            .merge
            .partitions()
            .map(|(tp, _, released)| {
                // A watermark below what was already received is not a real one.
                let high = watermarks(consumer, tp)
                    .map(|(_, h)| h)
                    .filter(|h| released.is_none_or(|r| r <= *h))
                    .unwrap_or(-1);
                (
                    (tp.0.to_string(), tp.1),
                    PartitionLag {
                        high_watermark: high,
                        position: released.unwrap_or(-1),
                    },
                )
            })
            .collect();
        self.lag.set(figures);
    }

    /// Drops the channel to detection: nothing more is handed on.
    pub fn close_channel(&mut self) {
        self.tx = None;
    }
}

/// The topics and partitions of a rebalance's list.
fn partitions_of(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

/// A partition's stable name in the repartition hop's header (never 0, which stands for a
/// topic's own partition in the merge).
pub fn partition_id(tp: &Tp) -> u64 {
    crate::event::fingerprint(format!("{}/{}", tp.0, tp.1).as_bytes()).max(1)
}

/// The group's committed offsets for `tpl`'s partitions (empty on failure: the checkpoint
/// alone then decides).
fn committed_offsets(
    consumer: &BaseConsumer<GroupContext>,
    tpl: &TopicPartitionList,
) -> BTreeMap<(String, i32), i64> {
    let mut out = BTreeMap::new();
    match consumer.committed_offsets(tpl.clone(), COMMITTED_WAIT) {
        Ok(list) => {
            for e in list.elements() {
                if let Offset::Offset(o) = e.offset() {
                    out.insert((e.topic().to_string(), e.partition()), o);
                }
            }
            // Dropped here, before the consumer can be: a list that outlives it hangs its drop.
            drop(list);
        }
        Err(e) => {
            tracing::warn!(error = %e, "kafka: cannot read the group's committed offsets; starting from the checkpointed ones")
        }
    }
    out
}

/// librdkafka's cached low and high watermarks of a partition, from its last fetch (no
/// request is made); `None` before the first fetch.
pub fn watermarks(consumer: &BaseConsumer<GroupContext>, tp: &Tp) -> Option<(i64, i64)> {
    let topic = CString::new(tp.0.as_bytes()).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client handle is valid while `consumer` lives; the call reads librdkafka's
    // cached partition state under its own lock and writes only the two out-parameters.
    let err = unsafe {
        bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            tp.1,
            &mut low,
            &mut high,
        )
    };
    (err == RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some((low, high))
}

/// Whether a partition has nothing more to fetch right now: its next offset is the high
/// watermark; `None` when that cannot be told: before the first fetch, before the first
/// message of a partition that is not empty, or when the broker's watermark is evidently
/// wrong (below an offset already received: tansu 0.6 counts record batches there).
pub fn at_end(
    consumer: &BaseConsumer<GroupContext>,
    tp: &Tp,
    next_fetch: Option<i64>,
) -> Option<bool> {
    let (low, high) = watermarks(consumer, tp)?;
    match next_fetch {
        Some(next) if next > high => None,
        Some(next) => Some(next == high),
        None if low == high => Some(true),
        None => None,
    }
}
