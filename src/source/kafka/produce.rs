//! Queueing a record with librdkafka's producer: a full local queue (`queue.buffering.max.*`)
//! is waited out, never turned into a lost record. Every producer here (the repartition hop,
//! the changelog, dead letters, the alert topic) sends through this.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::ToBytes;
use rdkafka::producer::{BaseRecord, ProducerContext, ThreadedProducer};

/// Queues `record`, waiting `wait` at a time while the producer's queue is full (it drains as
/// the brokers acknowledge); any other refusal is returned.
pub fn send_when_room<'a, C, K, P>(
    producer: &ThreadedProducer<C>,
    mut record: BaseRecord<'a, K, P, C::DeliveryOpaque>,
    wait: Duration,
) -> Result<(), KafkaError>
where
    C: ProducerContext + 'static,
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                std::thread::sleep(wait);
            }
            Err((e, _)) => return Err(e),
        }
    }
}
