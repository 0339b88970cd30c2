//! `[source] kind = "kafka"`: brokers, topics, consumer group, dead-letter topic, TLS and SASL,
//! and librdkafka properties passed through. Validation touches no network: files are checked
//! for existence, secrets are read from the environment or files, and the properties are
//! checked by librdkafka's own configuration parser (which opens no connection).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::event::Field;
use crate::secret::{self, Secret};

/// The consumer group when `group_id` is not given.
pub const DEFAULT_GROUP_ID: &str = "authwatch";

/// How long a partition may deliver nothing before the event-time merge stops waiting for it.
/// A second keeps alerts from the other partitions prompt while a partition whose fetch is
/// merely slow still gets its turn. It applies to a partition at its end too: a live producer's
/// next message to it may be older than the other partitions' heads.
pub const DEFAULT_IDLE_PARTITION_MS: u64 = 1_000;

/// librdkafka properties authwatch owns: setting them would break the delivery guarantee
/// (offsets are committed only after the checkpoint that covers them) or duplicate a key.
const OWNED_PROPERTIES: [(&str, &str); 8] = [
    ("bootstrap.servers", "use [source] brokers"),
    ("metadata.broker.list", "use [source] brokers"),
    ("group.id", "use [source] group_id"),
    (
        "enable.auto.commit",
        "offsets are committed after each durable checkpoint",
    ),
    (
        "enable.auto.offset.store",
        "offsets are committed after each durable checkpoint",
    ),
    (
        "security.protocol",
        "it follows from [source.tls] and [source.sasl]",
    ),
    ("sasl.password", "use [source.sasl] password_env"),
    ("ssl.key.password", "use [source.tls] key_password_env"),
];

#[derive(Clone, Debug, PartialEq)]
pub struct KafkaConfig {
    /// `host:port[,host:port...]`, librdkafka's `bootstrap.servers`.
    pub brokers: String,
    pub topics: Vec<String>,
    pub group_id: String,
    /// Bad messages are produced here with their original bytes and headers naming why.
    pub dead_letter_topic: Option<String>,
    pub tls: Option<KafkaTls>,
    pub sasl: Option<KafkaSasl>,
    /// `[source.properties]`: librdkafka settings, applied after authwatch's tuning.
    pub properties: BTreeMap<String, String>,
    /// false: read what the assigned partitions hold now, then stop (backfills, tests).
    pub follow: bool,
    /// See [`DEFAULT_IDLE_PARTITION_MS`].
    pub idle_partition: Duration,
    /// `[source.scale_out]`: several instances detecting exactly whatever the producer's key.
    pub scale_out: Option<ScaleOut>,
}

/// `[source.scale_out]`: events are repartitioned by the key every loaded rule's groups agree
/// on, through an internal topic named from the `group_id` (`source::kafka::scale_out`).
#[derive(Clone, Debug, PartialEq)]
pub struct ScaleOut {
    /// What the producer keys the input topic by, when it is a grouping of the events (for
    /// example `["tenant", "username"]`); the hop is skipped when every rule's groups agree.
    pub input_key: Option<Vec<Field>>,
    /// Create the internal topic when it is missing (with the input's partition count).
    pub create_topics: bool,
    /// Replicas of a created internal topic.
    pub replication_factor: i32,
    /// The outbox is the topic `<group_id>-alerts`, delivered by every instance
    /// (`outbox::topic`), instead of each instance's state directory.
    pub alert_topic: bool,
    /// Each partition of detection is a task whose state is kept in the topic
    /// `<detection group>-changelog` and restored from it by whichever instance is assigned
    /// the partition (`source::kafka::changelog`, `app::tasks`).
    pub changelog: bool,
    /// A task writes its whole state to the changelog every this many checkpoints (and on
    /// the first checkpoint after it was assigned); in between, only what changed. Restore
    /// reads from the task's last snapshot, so this bounds restore time.
    pub snapshot_every: u32,
    /// How long a write to an internal topic (the hop, the changelog, the alert topic) may
    /// wait for the brokers' acknowledgement; librdkafka retries within it, and beyond it the
    /// process ends with the error (nothing unacknowledged was committed).
    pub ack_timeout: Duration,
}

/// `[source.scale_out] ack_timeout`: a broker restart or a leader election takes seconds to
/// tens of seconds; a minute rides those out and still ends a process whose brokers are gone
/// soon enough for its supervisor to say so.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(60);

impl KafkaConfig {
    /// `[source.scale_out] ack_timeout`, or its default when there is no scale-out.
    pub fn ack_timeout(&self) -> Duration {
        self.scale_out
            .as_ref()
            .map_or(DEFAULT_ACK_TIMEOUT, |s| s.ack_timeout)
    }
}

/// `[source.scale_out] snapshot_every`: with the default 1 s checkpoint interval, a snapshot a
/// minute; a restore then reads one snapshot and at most a minute of changes.
pub const DEFAULT_SNAPSHOT_EVERY: u32 = 60;

/// The topic that is the outbox with `[source.scale_out] alert_topic = true`.
pub fn alert_topic_name(group_id: &str) -> String {
    format!("{group_id}-alerts")
}

/// The consumer group in which the instances deliver the alert topic to one sink.
pub fn deliver_group(group_id: &str, sink: &str) -> String {
    format!("{group_id}-deliver-{sink}")
}

/// `[source.scale_out] replication_factor`: three copies, Kafka's usual production choice, so
/// losing one broker loses nothing the hop has acknowledged.
pub const DEFAULT_REPLICATION_FACTOR: i32 = 3;

/// The longest topic name Kafka accepts.
const MAX_TOPIC_NAME: usize = 249;

/// `[source.tls]`: TLS to the brokers; without `ca_file` the system's CAs are trusted.
#[derive(Clone, Debug, PartialEq)]
pub struct KafkaTls {
    pub ca_file: Option<PathBuf>,
    /// A client certificate and its key, for brokers that authenticate clients by TLS.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub key_password: Option<Secret>,
}

/// `[source.sasl]`: SASL PLAIN or SCRAM.
#[derive(Clone, Debug, PartialEq)]
pub struct KafkaSasl {
    /// librdkafka's name: `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: String,
    pub username: String,
    pub password: Secret,
}

/// `[source] kind = "kafka"` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKafka {
    pub format: Option<String>,
    /// false: read what the partitions hold now, then stop.
    pub follow: Option<bool>,
    pub brokers: Option<String>,
    pub topics: Option<Vec<String>>,
    pub group_id: Option<String>,
    pub dead_letter_topic: Option<String>,
    pub idle_partition_timeout: Option<String>,
    pub tls: Option<RawKafkaTls>,
    pub sasl: Option<RawKafkaSasl>,
    /// librdkafka settings; numbers and booleans are accepted as written.
    pub properties: Option<BTreeMap<String, toml::Value>>,
    /// Boxed: the one large optional table, kept out of every other source's size.
    pub scale_out: Option<Box<RawScaleOut>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScaleOut {
    pub input_key: Option<Vec<String>>,
    pub create_topics: Option<bool>,
    pub replication_factor: Option<i32>,
    pub alert_topic: Option<bool>,
    pub changelog: Option<bool>,
    pub snapshot_every: Option<u32>,
    pub ack_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKafkaTls {
    pub ca_file: Option<String>,
    pub cert_file: Option<String>,
    pub key_file: Option<String>,
    pub key_password_env: Option<String>,
    pub key_password_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKafkaSasl {
    pub mechanism: String,
    pub username: Option<String>,
    pub password_env: Option<String>,
    pub password_file: Option<String>,
}

const MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// Validates a `[source]` of kind `kafka`; `None` when something is wrong (every error is
/// reported through `error`).
pub fn kafka_source(raw: &RawKafka, error: &mut dyn FnMut(String)) -> Option<KafkaConfig> {
    let mut errors = 0;
    let mut report = |msg: String| {
        errors += 1;
        error(msg);
    };
    let brokers = match raw.brokers.as_deref().map(str::trim) {
        Some(b) if !b.is_empty() => b.to_string(),
        _ => {
            report(
                "[source] kind = \"kafka\" needs `brokers`, like \"kafka-1:9092,kafka-2:9092\""
                    .into(),
            );
            String::new()
        }
    };
    let topics = raw.topics.clone().unwrap_or_default();
    if topics.is_empty() || topics.iter().any(|t| t.trim().is_empty()) {
        report(
            "[source] kind = \"kafka\" needs `topics`, a list of topic names like [\"auth-events\"]"
                .into(),
        );
    }
    let group_id = raw
        .group_id
        .clone()
        .unwrap_or_else(|| DEFAULT_GROUP_ID.to_string());
    if group_id.trim().is_empty() {
        report("[source] group_id must not be empty".into());
    }
    if let Some(dlq) = &raw.dead_letter_topic
        && (dlq.trim().is_empty() || topics.contains(dlq))
    {
        report(format!(
            "[source] dead_letter_topic `{dlq}` must be a topic name other than the consumed topics"
        ));
    }
    let tls = raw.tls.as_ref().and_then(|t| tls(t, &mut report));
    let sasl = raw.sasl.as_ref().and_then(|s| sasl(s, &mut report));
    let mut properties = BTreeMap::new();
    for (key, value) in raw.properties.iter().flatten() {
        let value = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                report(format!(
                    "[source.properties] `{key}` must be a string, number or boolean, found {}",
                    other.type_str()
                ));
                continue;
            }
        };
        if let Some((_, why)) = OWNED_PROPERTIES.iter().find(|(k, _)| k == key) {
            report(format!(
                "[source.properties] `{key}` is set by authwatch: {why}"
            ));
            continue;
        }
        properties.insert(key.clone(), value);
    }
    let idle_partition = match &raw.idle_partition_timeout {
        None => Duration::from_millis(DEFAULT_IDLE_PARTITION_MS),
        Some(text) => match humantime::parse_duration(text) {
            Ok(d) if !d.is_zero() => d,
            _ => {
                report(format!(
                    "[source] idle_partition_timeout `{text}` must be a duration above 0 like 1s"
                ));
                Duration::ZERO
            }
        },
    };
    let follow = raw.follow.unwrap_or(true);
    let scale_out = raw
        .scale_out
        .as_ref()
        .and_then(|so| scale_out(so, &group_id, follow, &mut report));
    if let Some(so) = &scale_out
        && so.alert_topic
    {
        let alerts = alert_topic_name(&group_id);
        if topics.contains(&alerts) || raw.dead_letter_topic.as_ref() == Some(&alerts) {
            report(format!(
                "[source.scale_out] alert_topic = true writes alerts to the topic `{alerts}`, which must not also be an input or dead-letter topic"
            ));
        }
    }
    let config = KafkaConfig {
        brokers,
        topics,
        group_id,
        dead_letter_topic: raw.dead_letter_topic.clone(),
        tls,
        sasl,
        properties,
        follow,
        idle_partition,
        scale_out,
    };
    (errors == 0).then_some(config)
}

fn scale_out(
    raw: &RawScaleOut,
    group_id: &str,
    follow: bool,
    report: &mut dyn FnMut(String),
) -> Option<ScaleOut> {
    let at = "[source.scale_out]";
    let mut ok = true;
    // Internal topics are named from the group (`<group_id>-by-<key>-repartition`).
    let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if !group_id.chars().all(legal) || group_id.len() > MAX_TOPIC_NAME / 2 {
        ok = false;
        report(format!(
            "{at} names its internal topic after group_id `{group_id}`, which must then be at most {} characters of a-z, A-Z, 0-9, '.', '_' and '-'",
            MAX_TOPIC_NAME / 2
        ));
    }
    if !follow {
        ok = false;
        report(format!(
            "{at} needs `follow = true`: an instance cannot tell when the other instances have finished repartitioning, so it has no end to read to"
        ));
    }
    let mut input_key = None;
    if let Some(names) = &raw.input_key {
        let mut fields = Vec::new();
        for name in names {
            match Field::parse_grouping(name) {
                Ok(f) => fields.push(f),
                Err(e) => {
                    ok = false;
                    report(format!("{at} input_key: {e}"));
                }
            }
        }
        if names.is_empty() {
            ok = false;
            report(format!(
                "{at} input_key must name at least one field, like [\"tenant\", \"username\"]; leave it out when the producer's key is random or unknown"
            ));
        }
        input_key = Some(fields);
    }
    let replication_factor = raw.replication_factor.unwrap_or(DEFAULT_REPLICATION_FACTOR);
    if replication_factor < 1 {
        ok = false;
        report(format!(
            "{at} replication_factor must be 1 or more, not {replication_factor}"
        ));
    }
    let snapshot_every = raw.snapshot_every.unwrap_or(DEFAULT_SNAPSHOT_EVERY);
    if snapshot_every == 0 {
        ok = false;
        report(format!(
            "{at} snapshot_every must be 1 or more checkpoints, not 0"
        ));
    }
    let ack_timeout = match &raw.ack_timeout {
        None => DEFAULT_ACK_TIMEOUT,
        Some(text) => match humantime::parse_duration(text) {
            Ok(d) if !d.is_zero() => d,
            _ => {
                ok = false;
                report(format!(
                    "{at} ack_timeout `{text}` must be a duration above 0 like 60s"
                ));
                DEFAULT_ACK_TIMEOUT
            }
        },
    };
    ok.then(|| ScaleOut {
        input_key,
        create_topics: raw.create_topics.unwrap_or(true),
        replication_factor,
        alert_topic: raw.alert_topic.unwrap_or(false),
        changelog: raw.changelog.unwrap_or(false),
        snapshot_every,
        ack_timeout,
    })
}

fn existing_file(
    at: &str,
    key: &str,
    path: &Option<String>,
    ok: &mut bool,
    error: &mut dyn FnMut(String),
) -> Option<PathBuf> {
    let path = PathBuf::from(path.as_ref()?);
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => Some(path),
        Ok(_) => {
            *ok = false;
            error(format!("{at} {key} `{}` is not a file", path.display()));
            None
        }
        Err(e) => {
            *ok = false;
            error(format!("{at} {key} `{}`: {e}", path.display()));
            None
        }
    }
}

fn tls(raw: &RawKafkaTls, error: &mut dyn FnMut(String)) -> Option<KafkaTls> {
    let at = "[source.tls]";
    let mut ok = true;
    let ca_file = existing_file(at, "ca_file", &raw.ca_file, &mut ok, error);
    let cert_file = existing_file(at, "cert_file", &raw.cert_file, &mut ok, error);
    let key_file = existing_file(at, "key_file", &raw.key_file, &mut ok, error);
    if raw.cert_file.is_some() != raw.key_file.is_some() {
        ok = false;
        error(format!(
            "{at} cert_file and key_file go together: a client certificate needs its key"
        ));
    }
    let key_password = secret::resolve(
        at,
        "key_password",
        raw.key_password_env.as_deref(),
        raw.key_password_file.as_deref(),
        &mut |m| {
            ok = false;
            error(m)
        },
    );
    ok.then_some(KafkaTls {
        ca_file,
        cert_file,
        key_file,
        key_password,
    })
}

fn sasl(raw: &RawKafkaSasl, error: &mut dyn FnMut(String)) -> Option<KafkaSasl> {
    let at = "[source.sasl]";
    let mut ok = true;
    let mechanism = raw.mechanism.to_ascii_uppercase();
    if !MECHANISMS.contains(&mechanism.as_str()) {
        ok = false;
        error(format!(
            "{at} unknown mechanism `{}`; use one of {}",
            raw.mechanism,
            MECHANISMS.join(", ")
        ));
    }
    let username = raw.username.clone().unwrap_or_default();
    if username.is_empty() {
        ok = false;
        error(format!("{at} needs `username`"));
    }
    let password = secret::resolve(
        at,
        "password",
        raw.password_env.as_deref(),
        raw.password_file.as_deref(),
        &mut |m| {
            ok = false;
            error(m)
        },
    );
    if password.is_none() && raw.password_env.is_none() && raw.password_file.is_none() {
        ok = false;
        error(format!(
            "{at} needs `password_env` (or `password_file`): secrets are never written inline"
        ));
    }
    if ok {
        password.map(|password| KafkaSasl {
            mechanism,
            username,
            password,
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::super::Source;
    use super::super::parse;
    use std::path::Path;

    fn kafka(text: &str) -> Result<super::KafkaConfig, Vec<String>> {
        match parse(Path::new("a.toml"), text) {
            Ok(c) => match c.source {
                Source::Kafka(k) => Ok(*k),
                other => panic!("not a kafka source: {other:?}"),
            },
            Err(e) => Err(e.0),
        }
    }

    #[test]
    fn a_minimal_kafka_source_gets_defaults() {
        let k = kafka("[source]\nkind = \"kafka\"\nbrokers = \"k:9092\"\ntopics = [\"auth\"]\n")
            .unwrap();
        assert_eq!(k.group_id, "authwatch");
        assert!(k.follow);
        assert!(k.tls.is_none() && k.sasl.is_none());
    }

    #[test]
    fn properties_are_parsed_by_librdkafka_and_owned_ones_refused() {
        let k = kafka(
            "[source]\nkind = \"kafka\"\nbrokers = \"k:9092\"\ntopics = [\"auth\"]\n[source.properties]\n\"fetch.wait.max.ms\" = 20\n\"auto.offset.reset\" = \"latest\"\n",
        )
        .unwrap();
        assert_eq!(k.properties["fetch.wait.max.ms"], "20");
        let err = kafka(
            "[source]\nkind = \"kafka\"\nbrokers = \"k:9092\"\ntopics = [\"auth\"]\n[source.properties]\n\"fetch.wiat.max.ms\" = 20\n",
        )
        .unwrap_err();
        assert!(err[0].contains("fetch.wiat.max.ms"), "{err:?}");
        let err = kafka(
            "[source]\nkind = \"kafka\"\nbrokers = \"k:9092\"\ntopics = [\"auth\"]\n[source.properties]\n\"enable.auto.commit\" = true\n",
        )
        .unwrap_err();
        assert!(err[0].contains("set by authwatch"), "{err:?}");
    }

    #[test]
    fn every_error_is_collected() {
        let err = kafka(
            "[source]\nkind = \"kafka\"\ntopics = []\n[source.tls]\nca_file = \"/nonexistent/ca.pem\"\ncert_file = \"/nonexistent/c.pem\"\n[source.sasl]\nmechanism = \"GSSAPI\"\n",
        )
        .unwrap_err();
        // brokers, topics, ca_file, cert_file, cert without key, mechanism, username, password
        assert_eq!(err.len(), 8, "{err:#?}");
    }

    #[test]
    fn sasl_reads_the_password_from_the_environment() {
        // SAFETY (test): no other test reads this variable.
        unsafe { std::env::set_var("AUTHWATCH_TEST_KAFKA_PASSWORD", "s3cret") };
        let k = kafka(
            "[source]\nkind = \"kafka\"\nbrokers = \"k:9093\"\ntopics = [\"auth\"]\n[source.tls]\n[source.sasl]\nmechanism = \"scram-sha-512\"\nusername = \"aw\"\npassword_env = \"AUTHWATCH_TEST_KAFKA_PASSWORD\"\n",
        )
        .unwrap();
        let sasl = k.sasl.unwrap();
        assert_eq!(sasl.mechanism, "SCRAM-SHA-512");
        assert_eq!(sasl.password.expose(), "s3cret");
        assert!(k.tls.is_some());
    }

    #[test]
    fn kafka_keys_on_another_kind_are_errors_at_their_line() {
        let err = parse(
            Path::new("a.toml"),
            "[rules]\ndir = \"r\"\n[source]\nkind = \"stdin\"\n  brokers = \"k:9092\"\n",
        )
        .unwrap_err();
        assert_eq!(
            err.0,
            ["a.toml:5:3: unknown field `brokers` for source kind `stdin`, expected `format`"]
        );
        // In a sub-table of the right kind, the key's line too; a type error names the kind.
        let err =
            kafka("[source]\nkind = \"kafka\"\nbrokers = \"k\"\n[source.tls]\nca_fil = \"x\"\n")
                .unwrap_err();
        assert!(
            err[0].starts_with("a.toml:5:1: unknown field `ca_fil` for source kind `kafka`"),
            "{err:?}"
        );
        let err = kafka("[source]\nkind = \"kafka\"\nbrokers = 3\n").unwrap_err();
        assert_eq!(
            err,
            ["a.toml:1:1: source kind `kafka`: invalid type: integer `3`, expected a string"]
        );
    }
}
