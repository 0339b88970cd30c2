//! The repartition hop: takes what the input topic's source hands over (decoded events in
//! event-time order per instance) and produces each event once to the internal topic, keyed
//! by the plan's key, so every group of every rule is whole in one of its partitions. The
//! input offsets a batch carries are reported durable (and so committed to the group) only
//! once the broker has acknowledged every event before them: a crash re-reads, never skips.
//!
//! An event travels as its canonical JSON with its fingerprint in a header: the fingerprint
//! is the event's identity in alert ids and tie-breaking, and it was computed from the bytes
//! the producer wrote, which are not the bytes forwarded. A second header names the input
//! partition the event was read from: detection merges each input partition back as a
//! sub-stream of its own (`merge.rs`), so the hop keeps the input's event-time order.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};

use super::log::librdkafka_log;
use super::produce::send_when_room;
use super::scale_out::Plan;
use crate::config::{KafkaConfig, ScaleOut, kafka_client};
use crate::source::{Batch, Item};
use crate::state::OnDurable;

/// The header carrying the event's fingerprint (8 bytes, big-endian).
pub const HEADER_FINGERPRINT: &str = "authwatch-fingerprint";
/// The header naming the input partition the event was read from (`group::partition_id`, 8
/// bytes, big-endian): detection merges each one back as a sub-stream of its own.
pub const HEADER_PARTITION: &str = "authwatch-input-partition";

/// How often acknowledged input offsets are reported (and so committed) while events flow.
const ACK_EVERY: Duration = Duration::from_millis(200);
/// How long a send waits for room in the producer's queue before trying again.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(5);
/// How long topic metadata and creation may take at start.
const ADMIN_WAIT: Duration = Duration::from_secs(30);
/// Bad messages logged one by one before they are only counted.
const BAD_LOGGED: u64 = 20;
/// The producer batches for this long: the hop adds at most this to an event's latency.
const LINGER_MS: u32 = 5;

/// Counts deliveries that failed for good (after librdkafka's retries).
#[derive(Default)]
pub struct Acks {
    failed: AtomicU64,
}

impl ClientContext for Acks {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        librdkafka_log("repartition producer", level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::error!(%error, "kafka repartition producer: {reason}");
    }
}

impl ProducerContext for Acks {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, _)) = result
            && self.failed.fetch_add(1, Ordering::Relaxed) == 0
        {
            tracing::error!(%error, "kafka: an event could not be produced to the repartition topic");
        }
    }
}

/// Makes sure the repartition topic exists (see [`ensure_internal_topic`]).
pub fn ensure_topic(config: &KafkaConfig, scale: &ScaleOut, plan: &Plan) -> anyhow::Result<()> {
    if ensure_internal_topic(config, scale, &plan.topic, "repartition topic")? {
        tracing::info!(topic = %plan.topic, key = %plan.key_names(), "kafka: created the repartition topic");
    }
    Ok(())
}

/// Makes sure an internal topic (`what`, for messages) exists with as many partitions as the
/// input's largest topic; where it may not be created, says how to create it. True when it
/// was created.
pub fn ensure_internal_topic(
    config: &KafkaConfig,
    scale: &ScaleOut,
    topic: &str,
    what: &str,
) -> anyhow::Result<bool> {
    let consumer: BaseConsumer = kafka_client::consumer_config(config)
        .create()
        .context("cannot create a Kafka client to read topic metadata")?;
    let metadata = consumer
        .fetch_metadata(None, ADMIN_WAIT)
        .context("cannot read the topics' metadata from the brokers")?;
    let partitions_of = |name: &str| {
        metadata
            .topics()
            .iter()
            .find(|t| t.name() == name)
            .map(|t| t.partitions().len())
            .filter(|n| *n > 0)
    };
    let partitions = config
        .topics
        .iter()
        .filter_map(|t| partitions_of(t))
        .max()
        .with_context(|| format!("the input topics {} do not exist", config.topics.join(",")))?
        as i32;
    if let Some(have) = partitions_of(topic) {
        if have as i32 != partitions {
            tracing::warn!(%topic, have, input = partitions, "kafka: the {what}'s partition count differs from the input's; only its parallelism follows it");
        }
        return Ok(false);
    }
    let command = format!(
        "kafka-topics.sh --bootstrap-server {} --create --topic {} --partitions {partitions} --replication-factor {}",
        config.brokers, topic, scale.replication_factor
    );
    if !scale.create_topics {
        anyhow::bail!(
            "the {what} {topic} does not exist and [source.scale_out] create_topics = false; create it with: {command}"
        );
    }
    drop(metadata);
    drop(consumer);
    let admin: AdminClient<DefaultClientContext> = kafka_client::producer_config(config)
        .create()
        .context("cannot create a Kafka admin client")?;
    let new_topic = NewTopic::new(
        topic,
        partitions,
        TopicReplication::Fixed(scale.replication_factor),
    );
    let options = AdminOptions::new().operation_timeout(Some(ADMIN_WAIT));
    // The admin client answers through a future; a small runtime of its own drives it.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let answers = runtime
        .block_on(admin.create_topics(&[new_topic], &options))
        .with_context(|| format!("cannot create the {what}; create it with: {command}"))?;
    for answer in answers {
        match answer {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => anyhow::bail!(
                "cannot create the {what} {topic} ({code}); create it with: {command}"
            ),
        }
    }
    tracing::info!(%topic, partitions, "kafka: created the {what}");
    Ok(true)
}

pub struct Repartitioner {
    producer: ThreadedProducer<Acks>,
    plan: Plan,
    /// `[source.scale_out] ack_timeout`.
    ack_timeout: Duration,
    /// Tells the input's source which offsets it may commit.
    on_durable: OnDurable,
}

impl Repartitioner {
    pub fn new(config: &KafkaConfig, plan: Plan, on_durable: OnDurable) -> anyhow::Result<Self> {
        let mut settings = kafka_client::producer_config(config);
        // Retries must not reorder a partition's events (event-time order is what the
        // consumer's lateness is measured against), nor write one twice.
        settings
            .set("enable.idempotence", "true")
            .set("linger.ms", LINGER_MS.to_string());
        let producer = settings
            .create_with_context(Acks::default())
            .context("cannot create the repartition producer")?;
        Ok(Repartitioner {
            producer,
            plan,
            ack_timeout: config.ack_timeout(),
            on_durable,
        })
    }

    /// Forwards until the source closes the channel; an event the broker refused for good
    /// ends the hop with an error (nothing after it is committed, so a restart re-reads it).
    pub fn run(self, rx: Receiver<Batch>) -> anyhow::Result<()> {
        let mut seq = 0u64;
        let mut pending: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut last_ack = Instant::now();
        let mut key = String::new();
        let mut from = 0u64;
        let (mut events, mut bytes, mut rejected) = (0u64, 0u64, 0u64);
        loop {
            let batch = match rx.recv_timeout(ACK_EVERY) {
                Ok(b) => Some(b),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut now_asked = Vec::new();
            if let Some(batch) = batch {
                for item in batch.items {
                    match item {
                        Item::Event(event) => {
                            self.plan.key_of(&event, &mut key);
                            let payload = serde_json::to_vec(&*event)?;
                            bytes += (key.len() + payload.len()) as u64;
                            events += 1;
                            self.send(&key, &payload, event.fingerprint, from)?;
                        }
                        Item::Partition(id) => from = id,
                        Item::CheckpointNow(reply) => now_asked.push(reply),
                        // Dead-lettered by the source when configured; never forwarded.
                        Item::Bad(bad, origin, offset) => {
                            rejected += 1;
                            if rejected <= BAD_LOGGED {
                                tracing::warn!(reason = bad.reason.as_str(), error = %bad, %origin, offset, "kafka: a bad message is not repartitioned");
                            }
                        }
                        // Lines and acknowledgements do not come from Kafka.
                        _ => {}
                    }
                }
                pending.extend(batch.positions);
            }
            if !now_asked.is_empty() || (!pending.is_empty() && last_ack.elapsed() >= ACK_EVERY) {
                seq += 1;
                self.acknowledge(seq, &mut pending)?;
                for reply in now_asked {
                    let _ = reply.send(seq);
                }
                last_ack = Instant::now();
            }
        }
        seq += 1;
        self.acknowledge(seq, &mut pending)?;
        tracing::info!(events, bytes, bad = rejected, topic = %self.plan.topic, "kafka: repartition stopped");
        Ok(())
    }

    fn send(&self, key: &str, payload: &[u8], fingerprint: u64, from: u64) -> anyhow::Result<()> {
        let fingerprint = fingerprint.to_be_bytes();
        let from = from.to_be_bytes();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: HEADER_FINGERPRINT,
                value: Some(&fingerprint[..]),
            })
            .insert(Header {
                key: HEADER_PARTITION,
                value: Some(&from[..]),
            });
        let record = BaseRecord::to(&self.plan.topic)
            .key(key.as_bytes())
            .payload(payload)
            .headers(headers);
        send_when_room(&self.producer, record, QUEUE_FULL_WAIT)
            .with_context(|| format!("cannot produce to {}", self.plan.topic))
    }

    /// Waits until the broker acknowledged everything sent, then reports `pending` (the input
    /// positions after it) durable.
    fn acknowledge(
        &self,
        seq: u64,
        pending: &mut BTreeMap<Vec<u8>, Vec<u8>>,
    ) -> anyhow::Result<()> {
        self.producer
            .flush(self.ack_timeout)
            .context("the brokers did not acknowledge the repartitioned events in time")?;
        if self.producer.context().failed.load(Ordering::Relaxed) > 0 {
            anyhow::bail!(
                "events could not be produced to {}; the input offsets after them are not committed",
                self.plan.topic
            );
        }
        let positions: Vec<(Vec<u8>, Vec<u8>)> = std::mem::take(pending).into_iter().collect();
        (self.on_durable)(seq, &positions);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::normalize::{Format, normalize};

    /// The hop forwards an event as its canonical JSON: read back as a native event it must be
    /// the same event, whatever format it was read from.
    #[test]
    fn an_event_forwarded_as_canonical_json_reads_back_the_same() {
        // As the input's source decoded them.
        let mut events: Vec<_> = crate::synth::Traffic::default()
            .generate(2_000)
            .iter()
            .map(|e| normalize(Format::Native, &serde_json::to_vec(e).unwrap()).unwrap())
            .collect();
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        for (format, dir) in [
            (Format::Okta, "okta"),
            (Format::Entra, "entra"),
            (Format::Auth0, "auth0"),
        ] {
            for entry in std::fs::read_dir(fixtures.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                let text = std::fs::read_to_string(&path).unwrap();
                for line in text.lines() {
                    if let Ok(e) = normalize(format, line.as_bytes()) {
                        events.push(e);
                    }
                }
            }
        }
        assert!(events.len() > 2_010, "fixtures were read: {}", events.len());
        for event in events {
            let json = serde_json::to_vec(&event).unwrap();
            let mut back = normalize(Format::Native, &json).unwrap();
            back.fingerprint = event.fingerprint;
            let mut want = event.clone();
            want.raw = None;
            assert_eq!(back, want, "{}", String::from_utf8_lossy(&json));
        }
    }
}
