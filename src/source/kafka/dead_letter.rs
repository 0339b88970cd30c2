//! The dead-letter topic: a bad message is produced there with its original key, bytes,
//! timestamp and headers, plus headers naming why it was set aside and where it came from.
//! Producing never blocks the partition the message came from; the offset commit that moves
//! past a dead letter first waits for it to be acknowledged ([`DeadLetters::flush`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, DeliveryResult, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};

use super::log::librdkafka_log;
use super::produce::send_when_room;
use crate::config::KafkaConfig;
use crate::config::kafka_client;
use crate::event::BadInput;

/// Header names on a dead letter.
pub const HEADER_REASON: &str = "authwatch-reason";
pub const HEADER_ERROR: &str = "authwatch-error";
pub const HEADER_TOPIC: &str = "authwatch-source-topic";
pub const HEADER_PARTITION: &str = "authwatch-source-partition";
pub const HEADER_OFFSET: &str = "authwatch-source-offset";

/// How long a send waits for room in the producer's queue before trying again.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(50);

/// Counts deliveries that failed for good (after librdkafka's retries).
#[derive(Default)]
pub struct DeliveryLog {
    pub failed: AtomicU64,
}

impl ClientContext for DeliveryLog {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        librdkafka_log("dead-letter producer", level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::error!(%error, "kafka dead-letter producer: {reason}");
    }
}

impl ProducerContext for DeliveryLog {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((error, message)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(%error, topic = message.topic(), "a dead letter could not be delivered; the bad message is only counted");
        }
    }
}

pub struct DeadLetters {
    producer: ThreadedProducer<DeliveryLog>,
    topic: String,
    /// Dead letters sent since the last flush.
    unflushed: AtomicU64,
}

impl DeadLetters {
    pub fn new(config: &KafkaConfig, topic: &str) -> Result<DeadLetters, KafkaError> {
        Ok(DeadLetters {
            producer: kafka_client::producer_config(config)
                .create_with_context(DeliveryLog::default())?,
            topic: topic.to_string(),
            unflushed: AtomicU64::new(0),
        })
    }

    /// Queues `message` for the dead-letter topic with headers naming why.
    pub fn send(&self, message: &BorrowedMessage<'_>, bad: &BadInput) {
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let mut headers = OwnedHeaders::new();
        if let Some(original) = message.headers() {
            for h in original.iter() {
                headers = headers.insert(Header {
                    key: h.key,
                    value: h.value,
                });
            }
        }
        let headers = headers
            .insert(Header {
                key: HEADER_REASON,
                value: Some(bad.reason.as_str()),
            })
            .insert(Header {
                key: HEADER_ERROR,
                value: Some(bad.message.as_str()),
            })
            .insert(Header {
                key: HEADER_TOPIC,
                value: Some(message.topic()),
            })
            .insert(Header {
                key: HEADER_PARTITION,
                value: Some(partition.as_str()),
            })
            .insert(Header {
                key: HEADER_OFFSET,
                value: Some(offset.as_str()),
            });
        let payload = message.payload().unwrap_or_default();
        let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&self.topic)
            .payload(payload)
            .headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(ts) = message.timestamp().to_millis() {
            record = record.timestamp(ts);
        }
        if let Err(error) = send_when_room(&self.producer, record, QUEUE_FULL_WAIT) {
            self.producer
                .context()
                .failed
                .fetch_add(1, Ordering::Relaxed);
            tracing::error!(%error, "a dead letter could not be queued; the bad message is only counted");
            return;
        }
        self.unflushed.fetch_add(1, Ordering::Relaxed);
    }

    /// Waits until every dead letter sent so far is acknowledged (or failed for good);
    /// `false` on timeout, when offsets must not yet move past them.
    pub fn flush(&self, timeout: Duration) -> bool {
        let sent = self.unflushed.load(Ordering::Relaxed);
        if sent == 0 {
            return true;
        }
        match self.producer.flush(timeout) {
            Ok(()) => {
                self.unflushed.fetch_sub(sent, Ordering::Relaxed);
                true
            }
            Err(error) => {
                tracing::warn!(%error, "dead letters are not acknowledged yet; the offset commit waits");
                false
            }
        }
    }

    /// Dead letters that could not be delivered.
    pub fn failed(&self) -> u64 {
        self.producer.context().failed.load(Ordering::Relaxed)
    }
}
