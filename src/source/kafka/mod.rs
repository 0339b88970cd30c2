//! The Kafka source: a consumer-group member that hands decoded events to detection in
//! event-time order across its partitions, with at-least-once delivery and exact state.
//!
//! One thread polls a librdkafka `BaseConsumer` in bursts, decodes each message right there
//! (off the async runtime, beside the detection thread), sends bad ones to the dead-letter
//! topic, and queues the rest in the event-time merge ([`merge`]). Each assigned partition's
//! messages are split off into a queue of its own, and a partition's queue is read only while
//! its lane in the merge is short: a partition that runs ahead then fills librdkafka's
//! prefetch queue, librdkafka stops fetching it, and the broker's answers go to the partitions
//! the merge is waiting for. That is backpressure per partition without pausing (which
//! resumes mid-batch; see [`merge`]). What the merge releases
//! goes to detection in batches whose positions are the partitions' next offsets, so the
//! checkpoint that covers a batch also records where each partition resumes. Offsets are
//! committed to the group only when that checkpoint is durable ([`group`]).
//!
//! | file | job |
//! |---|---|
//! | `config/kafka_client.rs` | librdkafka settings: tuning, TLS/SASL, pass-through properties (beside the config they are built from) |
//! | `group.rs` | assignment and revocation, commits, the state shared with the poll loop |
//! | `merge.rs` | the event-time merge of partitions, with idleness and a bound on what it holds (no pausing) |
//! | `offsets.rs` | partition positions in the state store; the durable-checkpoint channel |
//! | `changelog.rs` | changelog mode: tasks' state produced to the changelog topic, and restored from it on assignment |
//! | `dead_letter.rs` | bad messages to the dead-letter topic |
//! | `produce.rs` | queueing a record with a producer, waiting out a full queue |
//! | `lag.rs` | consumer lag per partition, shared with metrics |
//! | `scale_out.rs` | the repartition key the loaded rules need, the internal topic and group |
//! | `repartition.rs` | the hop: events produced to the internal topic, input offsets committed once acknowledged |

pub mod changelog;
pub mod dead_letter;
mod group;
pub mod lag;
pub mod log;
pub mod merge;
pub mod offsets;
pub mod produce;
pub mod repartition;
pub mod scale_out;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use rdkafka::Message;
use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Headers};

use self::dead_letter::DeadLetters;
use self::group::GroupContext;
use self::lag::ConsumerLag;
use self::merge::{Entry, Merge, Tp};
use crate::config::{KafkaConfig, kafka_client};
use crate::pipeline::Decoder;
use crate::source::{Batch, Item};
use crate::state::{OnDurable, Store};
use crate::telemetry::metrics::Labels;

/// Messages a partition's lane is topped up to from its queue per round; beyond it they wait
/// in librdkafka's prefetch queue, whose bound stops the fetching.
const LANE_TARGET: usize = 4096;
/// How long the loop waits on the main queue when the last round received nothing: it also
/// serves callbacks there, but cannot wait on the partition queues, so it is short.
const IDLE_WAIT: Duration = Duration::from_millis(10);
/// Without `follow`, how long every partition must have been at its end and silent before the
/// source stops: a high watermark alone is not final (some brokers report a stale one), and a
/// fetch can stall for a moment on a loaded machine.
const END_QUIET: Duration = Duration::from_secs(2);
/// ... and how long a partition may stay silent although its watermark says it is not at its
/// end (a transactional topic's last offset is a marker the consumer never receives).
const END_SILENT: Duration = Duration::from_secs(10);
/// How often the lag figures are refreshed from librdkafka's cached watermarks.
const LAG_REFRESH: Duration = Duration::from_secs(1);
/// How often the lag is logged at info.
const LAG_LOG_EVERY: Duration = Duration::from_secs(30);
/// How long a stopping source waits for detection's last checkpoint to commit its offsets.
const LAST_CHECKPOINT_WAIT: Duration = Duration::from_secs(30);
/// Consumer errors logged one by one before they are only counted.
const ERRORS_LOGGED: u64 = 20;

/// A number the repartition hop put in a message's header.
fn forwarded_u64(message: &BorrowedMessage<'_>, name: &str) -> Option<u64> {
    let headers = message.headers()?;
    let header = headers.iter().find(|h| h.key == name)?;
    Some(u64::from_be_bytes(header.value?.try_into().ok()?))
}

/// Consumer errors seen (a broker down, a partition gone): logged, the first few one by one.
#[derive(Default)]
struct ConsumerErrors(u64);

impl ConsumerErrors {
    fn note(&mut self, e: &rdkafka::error::KafkaError) {
        self.0 += 1;
        if self.0 <= ERRORS_LOGGED {
            tracing::warn!(error = %e, "kafka consumer error");
        }
    }
}

pub struct KafkaSource {
    /// Shared with the partition queues split off it (they must not outlive it).
    consumer: Arc<BaseConsumer<GroupContext>>,
    decode: Decoder,
    dead: Option<Arc<DeadLetters>>,
    follow: bool,
    stop: Arc<AtomicBool>,
    lag: Arc<ConsumerLag>,
    /// `authwatch_source_lag{topic, partition}`, when the daemon exports metrics.
    lag_metric: Option<Family<Labels, Gauge>>,
    /// Events come from the repartition hop, which carries each one's fingerprint in a
    /// header (the forwarded bytes are not the ones it was computed from).
    forwarded: bool,
}

impl KafkaSource {
    /// Creates the consumer (and the dead-letter producer) and subscribes. Returns the
    /// callback the checkpoint writer must be started with: it tells the source which
    /// offsets are durable, the only ones it commits.
    pub fn start(
        config: &KafkaConfig,
        decode: Decoder,
        store: Arc<dyn Store + Send + Sync>,
        stop: Arc<AtomicBool>,
        tx: SyncSender<Batch>,
    ) -> anyhow::Result<(KafkaSource, OnDurable)> {
        let (on_durable, durable) = offsets::durable_channel();
        let dead = match &config.dead_letter_topic {
            Some(topic) => Some(Arc::new(
                DeadLetters::new(config, topic)
                    .context("cannot create the dead-letter producer")?,
            )),
            None => None,
        };
        let lag = Arc::new(ConsumerLag::default());
        let context = GroupContext::new(
            tx,
            durable,
            store,
            Merge::new(config.idle_partition),
            dead.clone(),
            lag.clone(),
        );
        let consumer: BaseConsumer<GroupContext> = kafka_client::consumer_config(config)
            .create_with_context(context)
            .context("cannot create the Kafka consumer")?;
        let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .context("cannot subscribe to the Kafka topics")?;
        tracing::info!(brokers = %config.brokers, topics = %config.topics.join(","), group = %config.group_id, "kafka: subscribed");
        Ok((
            KafkaSource {
                consumer: Arc::new(consumer),
                decode,
                dead,
                follow: config.follow,
                stop,
                lag,
                lag_metric: None,
                forwarded: false,
            },
            on_durable,
        ))
    }

    /// Publishes the lag per partition into this gauge family as it is refreshed.
    pub fn with_lag_metric(mut self, family: Family<Labels, Gauge>) -> Self {
        self.lag_metric = Some(family);
        self
    }

    /// Reads the events' fingerprints and input partitions from the repartition hop's
    /// headers.
    pub fn forwarded(mut self) -> Self {
        self.forwarded = true;
        self
    }

    /// Changelog mode: each partition is a task restored by `restorer` on assignment
    /// (`changelog`, `group`).
    pub fn with_tasks(self, restorer: changelog::Restorer) -> Self {
        self.consumer.context().lock().tasks = Some(Arc::new(restorer));
        self
    }

    /// Names, before the records it hands on, the partition they were read from
    /// (`Item::Partition`), for the repartition hop.
    pub fn tag_partitions(self) -> Self {
        self.consumer.context().lock().tag_partitions = true;
        self
    }

    /// Consumes until stopped (or, without `follow`, until the assigned partitions are read
    /// to their end), then commits the last durable offsets and leaves the group.
    pub fn run(self) -> anyhow::Result<()> {
        let consumer = &self.consumer;
        let mut queues: BTreeMap<Tp, PartitionQueue<GroupContext>> = BTreeMap::new();
        let mut generation = 0;
        let mut last_lag = Instant::now();
        let mut last_lag_log = Instant::now();
        let mut first_message: Option<Instant> = None;
        let mut last_message = Instant::now();
        let mut messages: u64 = 0;
        let mut errors = ConsumerErrors::default();
        let mut published = Vec::new();
        let mut wait = Duration::ZERO;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            // The main queue: callbacks (assignment, revocation, errors run in here), and
            // messages fetched before their partition's queue was split off.
            let mut received = self.drain_main(wait, &mut errors);
            let changed = consumer.context().lock().generation;
            if changed != generation {
                generation = changed;
                queues = self.split_queues(queues);
                // Whatever reached the main queue before the split comes before what the
                // partition's queue holds.
                received += self.drain_main(Duration::ZERO, &mut errors);
            }
            received += self.top_up_lanes(&queues, &mut errors);
            if received > 0 {
                messages += received as u64;
                last_message = Instant::now();
                first_message.get_or_insert(last_message);
            }
            wait = if received == 0 {
                IDLE_WAIT
            } else {
                Duration::ZERO
            };
            let now = Instant::now();
            let mut c = consumer.context().lock();
            if !c.release(consumer, now) {
                break;
            }
            c.absorb_durable();
            c.commit(consumer, CommitMode::Async, None);
            if now.duration_since(last_lag) >= LAG_REFRESH {
                c.update_lag(consumer);
                last_lag = now;
                published = self.publish_lag(published);
            }
            let forced = c.merge.forced();
            let drained = !self.follow
                && c.merge.drained(now, END_QUIET, END_SILENT, |tp, next| {
                    group::at_end(consumer, tp, next)
                });
            drop(c);
            if now.duration_since(last_lag_log) >= LAG_LOG_EVERY {
                self.log_lag();
                last_lag_log = now;
            }
            if drained {
                tracing::info!(
                    messages,
                    seconds_since_first = first_message.map_or(0.0, |t| t.elapsed().as_secs_f64()),
                    seconds_since_last = last_message.elapsed().as_secs_f64(),
                    released_before_order = forced,
                    "kafka: the assigned partitions are read to their end"
                );
                break;
            }
        }
        // The queues hold the consumer: they go first, so that closing really drops it.
        drop(queues);
        self.close();
        Ok(())
    }

    /// Takes what the main queue has (waiting up to `wait` for the first); returns how many
    /// messages it held.
    fn drain_main(&self, wait: Duration, errors: &mut ConsumerErrors) -> usize {
        let mut received = 0;
        let mut wait = wait;
        loop {
            match self.consumer.poll(wait) {
                None => return received,
                Some(Ok(message)) => {
                    self.take(&message);
                    received += 1;
                    wait = Duration::ZERO;
                }
                Some(Err(e)) => {
                    errors.note(&e);
                    return received;
                }
            }
        }
    }

    /// Splits off the queue of every assigned partition, after an assignment changed (which
    /// deactivates the queues split before it).
    fn split_queues(
        &self,
        old: BTreeMap<Tp, PartitionQueue<GroupContext>>,
    ) -> BTreeMap<Tp, PartitionQueue<GroupContext>> {
        drop(old);
        let assigned: Vec<Tp> = self
            .consumer
            .context()
            .lock()
            .merge
            .partitions()
            .map(|(tp, _, _)| tp.clone())
            .collect();
        let mut queues = BTreeMap::new();
        for tp in assigned {
            match self.consumer.split_partition_queue(&tp.0, tp.1) {
                Some(queue) => {
                    queues.insert(tp, queue);
                }
                // Its messages keep arriving on the main queue, which is read anyway.
                None => {
                    tracing::warn!(topic = %tp.0, partition = tp.1, "kafka: cannot split off a partition's queue")
                }
            }
        }
        queues
    }

    /// Tops each partition's lane up to [`LANE_TARGET`] from its queue, without waiting;
    /// returns how many messages were taken.
    fn top_up_lanes(
        &self,
        queues: &BTreeMap<Tp, PartitionQueue<GroupContext>>,
        errors: &mut ConsumerErrors,
    ) -> usize {
        let mut received = 0;
        let mut entries = Vec::new();
        for (tp, queue) in queues {
            let queued = self
                .consumer
                .context()
                .lock()
                .merge
                .queued_shortest(tp, Instant::now());
            // Decoded without the lock, queued under one lock per partition and round.
            for _ in queued..LANE_TARGET {
                match queue.poll(Duration::ZERO) {
                    None => break,
                    Some(Ok(message)) => {
                        self.decode_into(&message, &mut entries);
                        received += 1;
                    }
                    Some(Err(e)) => {
                        errors.note(&e);
                        break;
                    }
                }
            }
            if entries.is_empty() {
                continue;
            }
            let now = Instant::now();
            let mut c = self.consumer.context().lock();
            for entry in entries.drain(..) {
                c.merge.push(tp, entry, now);
            }
        }
        received
    }

    /// Decodes one message and queues its events in its partition's lane.
    fn take(&self, message: &BorrowedMessage<'_>) {
        let mut entries = Vec::with_capacity(1);
        self.decode_into(message, &mut entries);
        let mut c = self.consumer.context().lock();
        let tp = c.tp(message.topic(), message.partition());
        let now = Instant::now();
        for entry in entries {
            c.merge.push(&tp, entry, now);
        }
    }

    /// Decodes one message into lane entries appended to `entries` (the caller's buffer: no
    /// allocation per message): one per event it holds (several for an Entra Event Hubs
    /// body), in event-time order, the bad ones first. A message with a bad event goes to the
    /// dead-letter topic once, with the first bad event's reason.
    fn decode_into(&self, message: &BorrowedMessage<'_>, entries: &mut Vec<Entry<Item>>) {
        let payload = message.payload().unwrap_or_default();
        let offset = message.offset();
        let origin = || format!("kafka {}/{}", message.topic(), message.partition());
        let first = entries.len();
        let mut dead_lettered = false;
        // Behind the hop, a partition interleaves the input's partitions: each is merged
        // back as a sub-stream of its own.
        let lane = if self.forwarded {
            forwarded_u64(message, repartition::HEADER_PARTITION).unwrap_or(0)
        } else {
            0
        };
        self.decode.decode_each(payload, |decoded| {
            let (ts, payload) = match decoded {
                Ok(mut event) => {
                    if self.forwarded
                        && let Some(fingerprint) =
                            forwarded_u64(message, repartition::HEADER_FINGERPRINT)
                    {
                        event.fingerprint = fingerprint;
                    }
                    (Some(event.ts), Item::Event(Arc::new(event)))
                }
                Err(bad) => {
                    if let Some(dead) = self.dead.as_ref().filter(|_| !dead_lettered) {
                        dead.send(message, &bad);
                        dead_lettered = true;
                    }
                    (None, Item::Bad(bad, origin(), offset.max(0) as u64))
                }
            };
            entries.push(Entry {
                ts,
                offset,
                more_in_message: true,
                lane,
                payload,
            });
        });
        // The merge releases a lane's head first: the message's events leave in time order.
        let own = &mut entries[first..];
        own.sort_by_key(|e| e.ts.unwrap_or(i64::MIN));
        if let Some(last) = own.last_mut() {
            last.more_in_message = false;
        }
    }

    /// Sets the gauges of the partitions held now and removes those of partitions gone;
    /// returns the label sets published.
    fn publish_lag(&self, before: Vec<Labels>) -> Vec<Labels> {
        let Some(family) = &self.lag_metric else {
            return before;
        };
        let mut now = Vec::new();
        for ((topic, partition), figures) in self.lag.snapshot() {
            let labels: Labels = vec![("topic", topic), ("partition", partition.to_string())];
            family
                .get_or_create(&labels)
                .set(figures.lag().unwrap_or(0));
            now.push(labels);
        }
        for gone in before.iter().filter(|l| !now.contains(l)) {
            family.remove(gone);
        }
        now
    }

    fn log_lag(&self) {
        let snapshot = self.lag.snapshot();
        if snapshot.is_empty() {
            tracing::info!("kafka: no partitions assigned");
            return;
        }
        let per: Vec<String> = snapshot
            .iter()
            .map(|((t, p), l)| match l.lag() {
                Some(n) => format!("{t}/{p}={n}"),
                None => format!("{t}/{p}=?"),
            })
            .collect();
        tracing::info!(total = self.lag.total(), partitions = %per.join(" "), "kafka consumer lag");
    }

    /// Stops handing on, commits what detection's last checkpoint made durable, and leaves
    /// the group (the consumer's drop runs the final revocation, which only commits now).
    fn close(self) {
        let mut c = self.consumer.context().lock();
        c.closing = true;
        c.close_channel();
        c.await_last_checkpoint(LAST_CHECKPOINT_WAIT);
        c.commit(&self.consumer, CommitMode::Sync, None);
        let failed = c.dead.as_ref().map_or(0, |d| d.failed());
        drop(c);
        if failed > 0 {
            tracing::error!(failed, "kafka: dead letters that could not be delivered");
        }
        drop(self.consumer);
        tracing::info!("kafka: left the consumer group");
    }
}
