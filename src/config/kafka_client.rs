//! librdkafka client settings: authwatch's tuning, security from `[source.tls]` and
//! `[source.sasl]`, and `[source.properties]` last so an operator can override the tuning.

use rdkafka::ClientConfig;
use rdkafka::config::RDKafkaLogLevel;

use super::kafka::KafkaConfig;

/// How long the broker may hold a fetch waiting for `fetch.min.bytes`. librdkafka's 500 ms
/// default caps a consumer of a quiet topic at a fetch round trip per half second; 10 ms gave
/// 0.8-0.97M msg/s against the test broker where the default gave 60k msg/s.
pub const FETCH_WAIT_MAX_MS: u32 = 10;
/// Answer a fetch as soon as there is any data: latency first; batching comes from the
/// prefetch queue below, not from the broker holding requests.
pub const FETCH_MIN_BYTES: u32 = 1;
/// Per-partition prefetch: librdkafka keeps fetching a partition until this many messages
/// are queued locally, so the poll loop never waits on a round trip while catching up.
pub const QUEUED_MIN_MESSAGES: u32 = 100_000;
/// The prefetch queue's size bound across partitions (64 MiB), librdkafka's own default,
/// written out because it is the consumer's main memory cost.
pub const QUEUED_MAX_MESSAGES_KBYTES: u32 = 65_536;
/// Bytes per partition per fetch response. 4 MiB (librdkafka: 1 MiB) lets one round trip
/// carry ~13k events of 300 bytes, so a single busy partition is not capped by round trips.
pub const MAX_PARTITION_FETCH_BYTES: u32 = 4 << 20;
/// How long librdkafka waits before fetching a partition again once its prefetch queue is
/// full. The default (1 s) leaves a fast consumer idle after it drains the queue; 10 ms keeps
/// the queue topped up.
pub const FETCH_QUEUE_BACKOFF_MS: u32 = 10;
/// A new group starts at the oldest retained event: for a detector, missing events is worse
/// than reading history. `auto.offset.reset = "latest"` in `[source.properties]` skips it.
pub const AUTO_OFFSET_RESET: &str = "earliest";

/// Dead letters are rare: a short linger batches a burst of bad messages without delaying
/// the offset commit that waits for them.
const DEAD_LETTER_LINGER_MS: u32 = 5;

/// Property prefixes that only a consumer understands; they are not applied to the
/// dead-letter producer (librdkafka would warn that it ignores them).
const CONSUMER_ONLY: [&str; 12] = [
    "fetch.",
    "queued.",
    "auto.offset.reset",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "partition.assignment.strategy",
    "group.",
    "isolation.level",
    "check.crcs",
    "max.partition.fetch.bytes",
    "enable.partition.eof",
];

/// Settings both clients share: brokers, identity, security, logging.
fn common(config: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers)
        .set("client.id", "authwatch")
        .set_log_level(RDKafkaLogLevel::Warning);
    let protocol = match (config.tls.is_some(), config.sasl.is_some()) {
        (false, false) => "plaintext",
        (true, false) => "ssl",
        (false, true) => "sasl_plaintext",
        (true, true) => "sasl_ssl",
    };
    c.set("security.protocol", protocol);
    if let Some(tls) = &config.tls {
        if let Some(ca) = &tls.ca_file {
            c.set("ssl.ca.location", ca.display().to_string());
        }
        if let Some(cert) = &tls.cert_file {
            c.set("ssl.certificate.location", cert.display().to_string());
        }
        if let Some(key) = &tls.key_file {
            c.set("ssl.key.location", key.display().to_string());
        }
        if let Some(password) = &tls.key_password {
            c.set("ssl.key.password", password.expose());
        }
    }
    if let Some(sasl) = &config.sasl {
        c.set("sasl.mechanisms", &sasl.mechanism)
            .set("sasl.username", &sasl.username)
            .set("sasl.password", sasl.password.expose());
    }
    c
}

/// The consumer: a group member that never commits on its own.
pub fn consumer_config(config: &KafkaConfig) -> ClientConfig {
    let mut c = common(config);
    c.set("group.id", &config.group_id)
        // Offsets are committed by the source after the checkpoint that covers them.
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", AUTO_OFFSET_RESET)
        .set("fetch.wait.max.ms", FETCH_WAIT_MAX_MS.to_string())
        .set("fetch.min.bytes", FETCH_MIN_BYTES.to_string())
        .set("queued.min.messages", QUEUED_MIN_MESSAGES.to_string())
        .set(
            "queued.max.messages.kbytes",
            QUEUED_MAX_MESSAGES_KBYTES.to_string(),
        )
        .set(
            "max.partition.fetch.bytes",
            MAX_PARTITION_FETCH_BYTES.to_string(),
        )
        .set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS.to_string());
    for (key, value) in &config.properties {
        c.set(key, value);
    }
    c
}

/// The dead-letter producer: acknowledged by all in-sync replicas. Dead letters are
/// at-least-once like everything else (a retry or a replay after a crash may repeat one; the
/// headers name the source offset, so a reader can tell).
pub fn producer_config(config: &KafkaConfig) -> ClientConfig {
    let mut c = common(config);
    c.set("acks", "all")
        .set("linger.ms", DEAD_LETTER_LINGER_MS.to_string());
    for (key, value) in &config.properties {
        if !CONSUMER_ONLY.iter().any(|p| key.starts_with(p)) {
            c.set(key, value);
        }
    }
    c
}

/// Parses both clients' settings with librdkafka, opening no connection (`check`).
pub fn check_properties(config: &KafkaConfig) -> Result<(), String> {
    consumer_config(config)
        .create_native_config()
        .map_err(|e| e.to_string())?;
    if config.dead_letter_topic.is_some() {
        producer_config(config)
            .create_native_config()
            .map_err(|e| format!("dead-letter producer: {e}"))?;
    }
    Ok(())
}
