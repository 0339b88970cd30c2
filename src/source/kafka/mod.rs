//! The Kafka source: a consumer-group member that hands decoded events to detection in
//! event-time order across its partitions, with at-least-once delivery and exact state.
//!
//! One thread polls a librdkafka `BaseConsumer` in bursts, decodes each message right there
//! (off the async runtime, beside the detection thread), sends bad ones to the dead-letter
//! topic, and queues the rest in the event-time merge ([`merge`]). What the merge releases
//! goes to detection in batches whose positions are the partitions' next offsets, so the
//! checkpoint that covers a batch also records where each partition resumes. Offsets are
//! committed to the group only when that checkpoint is durable ([`group`]).
//!
//! | file | job |
//! |---|---|
//! | `client.rs` | librdkafka settings: tuning, TLS/SASL, pass-through properties |
//! | `group.rs` | assignment and revocation, commits, the state shared with the poll loop |
//! | `merge.rs` | the event-time merge of partitions with idleness and pausing |
//! | `offsets.rs` | partition positions in the state store; the durable-checkpoint channel |
//! | `dead_letter.rs` | bad messages to the dead-letter topic |
//! | `lag.rs` | consumer lag per partition, shared with metrics |

pub mod client;
pub mod dead_letter;
mod group;
pub mod lag;
mod log;
pub mod merge;
pub mod offsets;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::BorrowedMessage;

use self::dead_letter::DeadLetters;
use self::group::GroupContext;
use self::lag::ConsumerLag;
use self::merge::{Entry, Merge};
use crate::config::KafkaConfig;
use crate::pipeline::Decoder;
use crate::source::{Batch, Item};
use crate::state::{OnDurable, Store};
use crate::telemetry::metrics::Labels;

/// Messages taken from librdkafka per burst before the merge releases them.
const BURST: usize = 4096;
/// How long a poll waits for the first message of a burst: also how often the loop looks
/// at the stop flag, idle partitions and durable checkpoints when the topic is quiet.
const POLL_WAIT: Duration = Duration::from_millis(100);
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

pub struct KafkaSource {
    consumer: BaseConsumer<GroupContext>,
    decode: Decoder,
    dead: Option<Arc<DeadLetters>>,
    follow: bool,
    stop: Arc<AtomicBool>,
    lag: Arc<ConsumerLag>,
    /// `authwatch_source_lag{topic, partition}`, when the daemon exports metrics.
    lag_metric: Option<Family<Labels, Gauge>>,
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
        let consumer: BaseConsumer<GroupContext> = client::consumer_config(config)
            .create_with_context(context)
            .context("cannot create the Kafka consumer")?;
        let topics: Vec<&str> = config.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .context("cannot subscribe to the Kafka topics")?;
        tracing::info!(brokers = %config.brokers, topics = %config.topics.join(","), group = %config.group_id, "kafka: subscribed");
        Ok((
            KafkaSource {
                consumer,
                decode,
                dead,
                follow: config.follow,
                stop,
                lag,
                lag_metric: None,
            },
            on_durable,
        ))
    }

    /// Lag per partition, for metrics.
    pub fn lag(&self) -> Arc<ConsumerLag> {
        self.lag.clone()
    }

    /// Publishes the lag per partition into this gauge family as it is refreshed.
    pub fn with_lag_metric(mut self, family: Family<Labels, Gauge>) -> Self {
        self.lag_metric = Some(family);
        self
    }

    /// Consumes until stopped (or, without `follow`, until the assigned partitions are read
    /// to their end), then commits the last durable offsets and leaves the group.
    pub fn run(self) -> anyhow::Result<()> {
        let consumer = &self.consumer;
        let mut last_lag = Instant::now();
        let mut last_lag_log = Instant::now();
        let mut first_message: Option<Instant> = None;
        let mut last_message = Instant::now();
        let mut messages: u64 = 0;
        let mut errors: u64 = 0;
        let mut published = Vec::new();
        loop {
            if self.stop.load(Ordering::Relaxed) {
                break;
            }
            let mut wait = POLL_WAIT;
            for _ in 0..BURST {
                match consumer.poll(wait) {
                    None => break,
                    Some(Ok(message)) => {
                        self.take(&message);
                        messages += 1;
                        last_message = Instant::now();
                        first_message.get_or_insert(last_message);
                        wait = Duration::ZERO;
                    }
                    Some(Err(e)) => {
                        errors += 1;
                        if errors <= ERRORS_LOGGED {
                            tracing::warn!(error = %e, "kafka consumer error");
                        }
                        break;
                    }
                }
            }
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
        self.close();
        Ok(())
    }

    /// Decodes one message and queues it in its partition's lane.
    fn take(&self, message: &BorrowedMessage<'_>) {
        let payload = message.payload().unwrap_or_default();
        let offset = message.offset();
        let (ts, item) = match (self.decode)(payload) {
            Ok(event) => (Some(event.ts), Item::Event(Box::new(event))),
            Err(bad) => {
                if let Some(dead) = &self.dead {
                    dead.send(message, &bad);
                }
                let origin = format!("kafka {}/{}", message.topic(), message.partition());
                (None, Item::Bad(bad, origin, offset.max(0) as u64))
            }
        };
        let mut c = self.consumer.context().lock();
        let tp = c.tp(message.topic(), message.partition());
        c.merge.push(
            &tp,
            Entry {
                ts,
                offset,
                payload: item,
            },
            Instant::now(),
        );
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
