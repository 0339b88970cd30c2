//! The Kafka source against a real broker (tansu, started by `.ci/run`, which exports
//! `AUTHWATCH_KAFKA_BROKERS`; without it every test here skips with a printed reason):
//! alerts equal `replay`'s, partitions merge by event time, bad messages go to the dead-letter
//! topic, a restarted consumer resumes at its offsets, and group members split the partitions
//! and take over from each other without losing or double-counting a detection.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use authwatch::synth::Traffic;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::DefaultProducerContext;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::support::{Daemon, alerts, authwatch, repo, rules_dir, stderr};

/// How long a test waits for the daemon to catch up before failing.
const PATIENCE: Duration = Duration::from_secs(90);

fn brokers(test: &str) -> Option<String> {
    match std::env::var("AUTHWATCH_KAFKA_BROKERS") {
        Ok(b) if !b.is_empty() => Some(b),
        _ => {
            crate::support::skip_unless_ci(&format!(
                "{test}: AUTHWATCH_KAFKA_BROKERS is unset (.ci/run starts a broker and sets it)"
            ));
            None
        }
    }
}

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("aw-{name}-{}-{nanos}", std::process::id())
}

/// Creates a topic with the admin API (the test broker does not create topics itself).
fn create_topic(brokers: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("an admin client");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let results = runtime
        .block_on(admin.create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        ))
        .expect("create_topics answers");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("cannot create topic {t}: {e:?}"));
    }
}

/// One message to produce: partition, key, payload.
type Record = (i32, Vec<u8>, Vec<u8>);

fn produce(brokers: &str, topic: &str, records: &[Record], compression: &str) {
    produce_batched(brokers, topic, records, compression, 10_000);
}

/// `per_batch`: records per record batch at most. tansu 0.6 cannot serve a fetch that
/// starts in the middle of a record batch (it answers with nothing), so tests that resume
/// at an arbitrary checkpointed offset produce one record per batch.
fn produce_batched(
    brokers: &str,
    topic: &str,
    records: &[Record],
    compression: &str,
    per_batch: usize,
) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", if per_batch == 1 { "0" } else { "5" })
        .set("batch.num.messages", per_batch.to_string())
        .set("compression.type", compression)
        .create()
        .expect("a producer");
    for (partition, key, payload) in records {
        let mut record = BaseRecord::to(topic)
            .partition(*partition)
            .key(key.as_slice())
            .payload(payload.as_slice());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => panic!("produce: {e}"),
            }
        }
    }
    // Records of one per batch are slow to acknowledge on a loaded machine: wait generously.
    producer
        .flush(Duration::from_secs(180))
        .expect("every record is acknowledged");
}

/// The partition a key goes to: a stable hash, as a producer keyed by user would do.
fn partition_of(key: &str, partitions: i32) -> i32 {
    (authwatch::event::fingerprint(key.as_bytes()) % partitions as u64) as i32
}

/// Synthetic traffic starting `days_ahead` days from now (future event time, so the daemon's
/// idle clock, which follows the wall clock, never makes it late; the daemons and `replay`
/// therefore accept events up to `FUTURE_SKEW` ahead of the wall clock), as JSON lines keyed by
/// username, followed by one marker per partition an hour after the last event: the markers
/// move every partition's event time past the lateness, so everything before them is judged.
/// How far ahead of the wall clock the tests' traffic may be stamped: `traffic` starts at most
/// two days ahead and spans hours.
const FUTURE_SKEW: &str = "7d";

fn traffic(seed: u64, n: usize, days_ahead: i64, partitions: i32) -> (Vec<Record>, Vec<u8>) {
    let now = chrono::Utc::now().timestamp_millis();
    let events = Traffic {
        seed,
        start_ms: now + days_ahead * 86_400_000,
        users: 2_000,
        attack_every: 300,
        ..Traffic::default()
    }
    .generate(n);
    let mut records = Vec::new();
    let mut lines = Vec::new();
    for e in &events {
        let json = serde_json::to_vec(e).unwrap();
        let key = e.username.as_deref().unwrap_or_default().to_string();
        records.push((
            partition_of(&key, partitions),
            key.into_bytes(),
            json.clone(),
        ));
        lines.extend_from_slice(&json);
        lines.push(b'\n');
    }
    let last = events.last().map_or(now, |e| e.ts);
    for p in 0..partitions {
        let marker = format!(
            r#"{{"ts":{},"type":"other","tenant":"tenant0","user":"marker-{seed}-{p}","username":"marker-{seed}-{p}"}}"#,
            last + 3_600_000 + p as i64
        );
        records.push((p, b"marker".to_vec(), marker.clone().into_bytes()));
        lines.extend_from_slice(marker.as_bytes());
        lines.push(b'\n');
    }
    (records, lines)
}

struct Setup {
    dir: PathBuf,
    brokers: String,
    topic: String,
    group: String,
    rules: PathBuf,
}

impl Setup {
    fn new(dir: &Path, brokers: String, name: &str, partitions: i32) -> Setup {
        let topic = unique(name);
        create_topic(&brokers, &topic, partitions);
        Setup {
            dir: dir.to_path_buf(),
            brokers,
            group: format!("{topic}-group"),
            topic,
            rules: rules_dir(),
        }
    }

    /// A setup on librdkafka's mock cluster `mock`: the input topic `name` of `partitions`, and
    /// each of `internal` (suffixes of the group's name, such as `-by-tenant-changelog`) with
    /// as many, since the mock cluster creates no topic itself.
    fn on_mock(
        mock: &rdkafka::mocking::MockCluster<'_, DefaultProducerContext>,
        dir: &Path,
        name: &str,
        partitions: i32,
        rules: PathBuf,
        internal: &[&str],
    ) -> Setup {
        let topic = unique(name);
        mock.create_topic(&topic, partitions, 1)
            .expect("a mock topic");
        let group = format!("{topic}-group");
        for suffix in internal {
            mock.create_topic(&format!("{group}{suffix}"), partitions, 1)
                .expect("an internal topic");
        }
        Setup {
            dir: dir.to_path_buf(),
            brokers: mock.bootstrap_servers(),
            group,
            topic,
            rules,
        }
    }

    /// A daemon configuration named `name` (its state, alerts and log are named after it).
    fn config(&self, name: &str, follow: bool, extra_source: &str) -> PathBuf {
        let path = self.dir.join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!(
                r#"[source]
kind = "kafka"
brokers = "{brokers}"
topics = ["{topic}"]
group_id = "{group}"
follow = {follow}
# tansu's watermarks are unusable (it counts record batches), so there the merge relies on
# the idleness timeout, and a loaded machine can stall one partition's fetch for a second.
idle_partition_timeout = "5s"
{extra_source}
[source.properties]
"session.timeout.ms" = 6000
"heartbeat.interval.ms" = 500
"max.poll.interval.ms" = 7000
[state]
dir = "{state}"
checkpoint_interval = "200ms"
[rules]
dir = "{rules}"
max_clock_skew = "{skew}"
[[sink]]
kind = "file"
path = "{alerts}"
"#,
                brokers = self.brokers,
                topic = self.topic,
                group = self.group,
                state = self.dir.join(format!("{name}-state")).display(),
                rules = self.rules.display(),
                skew = FUTURE_SKEW,
                alerts = self.alerts(name).display(),
            ),
        )
        .unwrap();
        path
    }

    fn alerts(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}-alerts.jsonl"))
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.log"))
    }

    /// Starts `authwatch run` with the configuration `name`; its log goes to a file.
    fn spawn(&self, name: &str, follow: bool, extra_source: &str) -> Daemon {
        let cfg = self.config(name, follow, extra_source);
        self.spawn_config(name, &cfg)
    }

    /// Starts `authwatch run` with the configuration file `cfg`; the log is named after `name`.
    fn spawn_config(&self, name: &str, cfg: &Path) -> Daemon {
        let mut command = Daemon::command(cfg);
        command
            .env("RUST_LOG", "info,librdkafka=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        Daemon::spawn(command, &self.log(name))
    }

    /// Runs a daemon that reads the topic to its end and stops; its exit must be clean.
    fn run_to_end(&self, name: &str, extra_source: &str) {
        let mut child = self.spawn(name, false, extra_source);
        let status = wait_exit(&mut child, PATIENCE);
        assert_eq!(
            status,
            Some(0),
            "the daemon reads to the end and exits 0; log:\n{}",
            self.log_text(name)
        );
    }

    fn log_text(&self, name: &str) -> String {
        std::fs::read_to_string(self.log(name)).unwrap_or_default()
    }

    /// The partitions of `topic` that `name` holds now, from its assignment and revocation
    /// log lines.
    fn assignment_in(&self, name: &str, topic: &str) -> BTreeSet<i32> {
        let mut held = BTreeSet::new();
        for line in self.log_text(name).lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let parts = || {
                field(&v, "partitions")
                    .as_str()
                    .unwrap_or_default()
                    .split_whitespace()
                    .filter(|p| p.split_once('/').is_some_and(|(t, _)| t == topic))
                    .filter_map(|p| p.split(['/', '@']).nth(1)?.parse::<i32>().ok())
                    .collect::<Vec<_>>()
            };
            match field(&v, "message").as_str() {
                Some("kafka: partitions assigned") => held.extend(parts()),
                Some("kafka: partitions revoked") => {
                    for p in parts() {
                        held.remove(&p);
                    }
                }
                _ => {}
            }
        }
        held
    }

    /// Waits until the members' assignments are exactly `want` (one set per member).
    fn await_assignment(&self, want: &[(&str, usize)], total: usize) {
        self.await_assignment_in(&self.topic, want, total)
    }

    /// [`Setup::await_assignment`] for the partitions of `topic`.
    fn await_assignment_in(&self, topic: &str, want: &[(&str, usize)], total: usize) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let sets: Vec<BTreeSet<i32>> = want
                .iter()
                .map(|(n, _)| self.assignment_in(n, topic))
                .collect();
            let union: BTreeSet<i32> = sets.iter().flatten().copied().collect();
            let sizes_ok = want.iter().zip(&sets).all(|((_, min), s)| s.len() >= *min);
            let disjoint = sets.iter().map(BTreeSet::len).sum::<usize>() == union.len();
            if sizes_ok && disjoint && union.len() == total {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "assignments never settled: {sets:?}; logs:\n{}",
                want.iter()
                    .map(|(n, _)| self.log_text(n))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until the group has committed `ends` (partition -> offset after its last
    /// message; the test broker's ListOffsets answer is not the end, so the tests count what
    /// they produced); the logs of the daemons `names` are shown if it never does.
    fn await_committed(&self, ends: &BTreeMap<i32, i64>, names: &[&str]) {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", &self.group)
            .create()
            .unwrap();
        let deadline = Instant::now() + PATIENCE;
        loop {
            let mut tpl = TopicPartitionList::new();
            for p in ends.keys() {
                tpl.add_partition(&self.topic, *p);
            }
            let committed: BTreeMap<i32, i64> =
                match consumer.committed_offsets(tpl, Duration::from_secs(5)) {
                    Ok(list) => list
                        .elements()
                        .iter()
                        .filter_map(|e| match e.offset() {
                            Offset::Offset(o) => Some((e.partition(), o)),
                            _ => None,
                        })
                        .collect(),
                    Err(_) => BTreeMap::new(),
                };
            if ends
                .iter()
                .all(|(p, end)| *end == 0 || committed.get(p) == Some(end))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the group never committed the end: committed {committed:?}, ends {ends:?}; logs:\n{}",
                names
                    .iter()
                    .map(|n| self.log_text(n))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Adds to `ends` (partition -> offset after its last message) what `records` add.
fn advance_ends(ends: &mut BTreeMap<i32, i64>, partitions: i32, records: &[Record]) {
    for p in 0..partitions {
        ends.entry(p).or_insert(0);
    }
    for (p, _, _) in records {
        *ends.entry(*p).or_insert(0) += 1;
    }
}

/// A field of a JSON log line, flattened or under `fields`.
fn field<'a>(line: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    match &line[name] {
        serde_json::Value::Null => &line["fields"][name],
        v => v,
    }
}

fn wait_exit(daemon: &mut Daemon, patience: Duration) -> Option<i32> {
    let exit = daemon.exits_within(patience);
    exit.and_then(|(status, _)| status.code())
}

fn sigterm(child: &mut Daemon) {
    child.terminate();
    assert_eq!(
        wait_exit(child, PATIENCE),
        Some(0),
        "a stopped daemon exits 0"
    );
}

fn ids_in(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("alert JSON")["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// Alert ids `replay` gives for these lines with these rules.
fn replay_ids(dir: &Path, rules: &Path, lines: &[u8]) -> BTreeSet<String> {
    let input = dir.join("replay-input.jsonl");
    std::fs::write(&input, lines).unwrap();
    // `--now` as far ahead as the daemons' `max_clock_skew`: the traffic is stamped ahead.
    let now = (chrono::Utc::now() + chrono::Duration::days(7)).to_rfc3339();
    let out = authwatch(
        &[
            "replay",
            "--rules",
            rules.to_str().unwrap(),
            "--now",
            &now,
            input.to_str().unwrap(),
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    alerts(&out)
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect()
}

/// The events the daemon `name` counted, from its last "authwatch stopped" line.
fn events_counted(setup: &Setup, name: &str) -> u64 {
    stopped_total(setup, name, "events")
}

/// A count from the "authwatch stopped" lines of a member's runs, summed.
fn stopped_total(setup: &Setup, name: &str, key: &str) -> u64 {
    setup
        .log_text(name)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| field(v, "message") == "authwatch stopped")
        .map(|v| field(&v, key).as_u64().unwrap_or(0))
        .sum()
}

#[test]
fn events_produced_to_a_topic_raise_the_same_alerts_as_replay() {
    let Some(brokers) = brokers("events_produced_to_a_topic_raise_the_same_alerts_as_replay")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup::new(dir.path(), brokers, "replay", 1);
    let (records, lines) = traffic(11, 20_000, 1, 1);
    // zstd-compressed batches: the consumer must be built with zstd to read them.
    produce(&setup.brokers, &setup.topic, &records, "zstd");
    setup.run_to_end("solo", "");
    let got: BTreeSet<String> = ids_in(&setup.alerts("solo")).into_iter().collect();
    let want = replay_ids(dir.path(), &setup.rules, &lines);
    assert!(want.len() > 20, "the traffic holds attacks: {}", want.len());
    assert_eq!(got, want);
}

#[test]
fn a_multi_partition_topic_keyed_by_user_gives_the_alerts_of_the_sorted_stream() {
    let Some(brokers) =
        brokers("a_multi_partition_topic_keyed_by_user_gives_the_alerts_of_the_sorted_stream")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup::new(dir.path(), brokers, "merge", 4);
    // 30k events over ~10 minutes of event time, far more than the 60 s lateness: a consumer
    // that took each partition's fetch as it came would judge most of the others late.
    let (records, lines) = traffic(12, 30_000, 1, 4);
    produce(&setup.brokers, &setup.topic, &records, "none");
    setup.run_to_end("merged", "");
    let want = replay_ids(dir.path(), &setup.rules, &lines);
    let got: BTreeSet<String> = ids_in(&setup.alerts("merged")).into_iter().collect();
    assert!(want.len() > 20, "the traffic holds attacks: {}", want.len());
    assert_eq!(got, want, "log:\n{}", setup.log_text("merged"));
    assert_eq!(events_counted(&setup, "merged"), 30_000 + 4);
    assert_eq!(
        stopped_total(&setup, "merged", "late"),
        0,
        "no event judged late"
    );
}

#[test]
fn a_poison_message_lands_in_the_dead_letter_topic_and_the_partition_moves_on() {
    let Some(brokers) =
        brokers("a_poison_message_lands_in_the_dead_letter_topic_and_the_partition_moves_on")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup::new(dir.path(), brokers, "poison", 1);
    let dlq = format!("{}-dlq", setup.topic);
    create_topic(&setup.brokers, &dlq, 1);
    let (mut records, _) = traffic(13, 2_000, 1, 1);
    let poison = b"this is not JSON {".to_vec();
    records.insert(1_000, (0, b"poison-key".to_vec(), poison.clone()));
    // A far-future event (a producer with a wrong clock, or an attacker): bad input too, so
    // it is dead-lettered and moves no event time (else every event after it would be late).
    let future = br#"{"ts":"2999-01-01T00:00:00Z","type":"other"}"#.to_vec();
    records.insert(1_500, (0, b"future-key".to_vec(), future.clone()));
    let lines: Vec<u8> = records
        .iter()
        .flat_map(|(_, _, p)| p.iter().copied().chain([b'\n']))
        .collect();
    produce(&setup.brokers, &setup.topic, &records, "none");
    setup.run_to_end("dlq", &format!("dead_letter_topic = \"{dlq}\""));
    let got: BTreeSet<String> = ids_in(&setup.alerts("dlq")).into_iter().collect();
    assert_eq!(got, replay_ids(dir.path(), &setup.rules, &lines));
    assert_eq!(events_counted(&setup, "dlq"), records.len() as u64 - 2);

    // The dead letter: the original bytes and key, headers naming why and where from.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &setup.brokers)
        .set("group.id", format!("{dlq}-reader"))
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&dlq, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + PATIENCE;
    let next_letter = || {
        let message = loop {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => break m,
                Some(Err(e)) => panic!("reading the dead-letter topic: {e}"),
                None => assert!(Instant::now() < deadline, "no dead letter arrived"),
            }
        };
        let headers: BTreeMap<String, String> = message
            .headers()
            .expect("headers")
            .iter()
            .map(|h| {
                (
                    h.key.to_string(),
                    String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                )
            })
            .collect();
        let payload = message.payload().unwrap_or_default().to_vec();
        let key = message.key().unwrap_or_default().to_vec();
        (payload, key, headers)
    };
    let (payload, key, headers) = next_letter();
    assert_eq!(payload, poison);
    assert_eq!(key, b"poison-key");
    assert_eq!(headers["authwatch-reason"], "invalid_json");
    assert_eq!(headers["authwatch-source-topic"], setup.topic);
    assert_eq!(headers["authwatch-source-partition"], "0");
    assert_eq!(headers["authwatch-source-offset"], "1000");
    let (payload, key, headers) = next_letter();
    assert_eq!(payload, future);
    assert_eq!(key, b"future-key");
    assert_eq!(headers["authwatch-reason"], "future_timestamp");
    assert_eq!(headers["authwatch-source-offset"], "1500");
}

/// Moves every Entra timestamp (`time`, `createdDateTime`, `activityDateTime`) of `record`
/// by `by_ms`.
fn shift_entra_times(record: &mut serde_json::Value, by_ms: i64) {
    match record {
        serde_json::Value::Object(fields) => {
            for (name, value) in fields.iter_mut() {
                let stamped = matches!(
                    name.as_str(),
                    "time" | "createdDateTime" | "activityDateTime"
                );
                match value.as_str().map(chrono::DateTime::parse_from_rfc3339) {
                    Some(Ok(t)) if stamped => {
                        let moved =
                            t.with_timezone(&chrono::Utc) + chrono::Duration::milliseconds(by_ms);
                        *value = moved
                            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                            .into();
                    }
                    _ => shift_entra_times(value, by_ms),
                }
            }
        }
        serde_json::Value::Array(items) => {
            items.iter_mut().for_each(|v| shift_entra_times(v, by_ms));
        }
        _ => {}
    }
}

#[test]
fn entra_event_hubs_messages_of_several_records_raise_the_alerts_of_one_record_per_line() {
    let Some(brokers) = brokers(
        "entra_event_hubs_messages_of_several_records_raise_the_alerts_of_one_record_per_line",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup::new(dir.path(), brokers, "entra", 1);
    // The fixture's attack moved to tomorrow (the idle clock follows the wall clock), then a
    // sign-in an hour after it that moves event time past the lateness.
    let fixture = repo().join("tests/fixtures/entra/attack.jsonl");
    let mut records: Vec<serde_json::Value> = std::fs::read_to_string(fixture)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let first = chrono::DateTime::parse_from_rfc3339(records[0]["time"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    let by = chrono::Utc::now().timestamp_millis() + 86_400_000 - first;
    records.iter_mut().for_each(|r| shift_entra_times(r, by));
    let mut marker = records[0].clone();
    shift_entra_times(&mut marker, 3_600_000 * 3);
    marker["properties"]["id"] = "marker-sign-in".into();
    records.push(marker);
    // Three records a message, as Event Hubs' Kafka endpoint hands a diagnostic export on.
    let bodies = crate::normalize_attacks::event_hubs_bodies(&records, 3);
    let messages: Vec<Record> = bodies
        .lines()
        .map(|b| (0, b"entra".to_vec(), b.as_bytes().to_vec()))
        .collect();
    produce(&setup.brokers, &setup.topic, &messages, "none");
    setup.run_to_end("entra", "format = \"entra\"");
    assert_eq!(events_counted(&setup, "entra"), records.len() as u64);

    let one_per_line: String = records.iter().map(|r| format!("{r}\n")).collect();
    let input = dir.path().join("entra-records.jsonl");
    std::fs::write(&input, one_per_line).unwrap();
    let now = (chrono::Utc::now() + chrono::Duration::days(7)).to_rfc3339();
    let rules = setup.rules.to_str().unwrap();
    let args = [
        "replay", "--format", "entra", "--rules", rules, "--now", &now,
    ];
    let out = authwatch(&[&args[..], &[input.to_str().unwrap()]].concat(), b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let want: BTreeSet<String> = alerts(&out)
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    let got: BTreeSet<String> = ids_in(&setup.alerts("entra")).into_iter().collect();
    assert!(
        want.len() >= 4,
        "the attack raises the pack's alerts: {want:?}"
    );
    assert_eq!(got, want, "log:\n{}", setup.log_text("entra"));
}

#[test]
fn a_consumer_killed_mid_stream_resumes_at_its_checkpointed_offsets() {
    let Some(brokers) = brokers("a_consumer_killed_mid_stream_resumes_at_its_checkpointed_offsets")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut setup = Setup::new(dir.path(), brokers, "restart", 2);
    let (first, mut lines) = traffic(14, 10_000, 1, 2);
    let (second, more) = traffic(15, 30_000, 2, 2);
    lines.extend_from_slice(&more);
    produce(&setup.brokers, &setup.topic, &first, "none");
    let mut ends = BTreeMap::new();
    advance_ends(&mut ends, 2, &first);
    let mut child = setup.spawn("crash", true, "");
    setup.await_committed(&ends, &["crash"]);
    // More arrives while it runs (one record per batch: it resumes mid-way through it), it
    // dies with SIGKILL, and the rest arrives while it is down.
    let (during, after) = second.split_at(second.len() / 2);
    produce_batched(&setup.brokers, &setup.topic, during, "none", 1);
    child.kill();
    produce_batched(&setup.brokers, &setup.topic, after, "none", 1);
    // The same state directory: it must resume at its own checkpointed offsets. In a fresh
    // group, so that the group has no offsets to offer (and because tansu never evicts a
    // member killed with SIGKILL: the old group would keep assigning it partitions).
    setup.group = format!("{}-again", setup.group);
    setup.run_to_end("crash", "");
    let counted = events_counted(&setup, "crash");
    assert!(
        counted < second.len() as u64 + 1_000,
        "the restart resumed near where the checkpoint left off, not at the start: it counted {counted}"
    );
    let got: BTreeSet<String> = ids_in(&setup.alerts("crash")).into_iter().collect();
    let want = replay_ids(dir.path(), &setup.rules, &lines);
    assert!(
        got == want,
        "missing {:?}, extra {:?}; log:\n{}",
        want.difference(&got).collect::<Vec<_>>(),
        got.difference(&want).collect::<Vec<_>>(),
        setup.log_text("crash")
    );
}

/// Rules whose groups are all per user: with a topic keyed by user, each group lives in one
/// partition, so the members of a consumer group together see every group whole.
fn per_user_rules(dir: &Path) -> PathBuf {
    let rules = dir.join("per-user-rules");
    std::fs::create_dir_all(rules.join("runbooks")).unwrap();
    for name in [
        "brute-force-user",
        "brute-force-then-success",
        "distributed-stuffing-user",
        "mfa-push-flood",
        "mfa-denied-repeatedly",
        "mfa-fatigue-success",
        "refresh-token-reuse",
    ] {
        let file = format!("{name}.yaml");
        std::fs::copy(repo().join("rules").join(&file), rules.join(&file)).unwrap();
    }
    for entry in std::fs::read_dir(repo().join("rules/runbooks")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), rules.join("runbooks").join(entry.file_name())).unwrap();
    }
    rules
}

/// Runs phases of per-user traffic (one day apart) against the group, checking after each
/// that the group committed the end; returns every line produced, for `replay`.
struct Phases<'a> {
    setup: &'a Setup,
    partitions: i32,
    lines: Vec<u8>,
    ends: BTreeMap<i32, i64>,
}

impl Phases<'_> {
    fn run(&mut self, seed: u64, day: i64, members: &[&str]) {
        let (records, lines) = traffic(seed, 8_000, day, self.partitions);
        produce(&self.setup.brokers, &self.setup.topic, &records, "none");
        self.lines.extend_from_slice(&lines);
        advance_ends(&mut self.ends, self.partitions, &records);
        self.setup.await_committed(&self.ends, members);
    }

    /// The members' alerts together must be the single run's, each raised once: every
    /// handover started exactly where the previous owner's state ended.
    fn check_alerts(&self, dir: &Path, members: &[&str]) {
        let mut ids = Vec::new();
        for m in members {
            ids.extend(ids_in(&self.setup.alerts(m)));
        }
        let union: BTreeSet<String> = ids.iter().cloned().collect();
        let want = replay_ids(dir, &self.setup.rules, &self.lines);
        assert!(want.len() > 10, "the traffic holds attacks: {}", want.len());
        assert!(
            union == want,
            "the members together raise the single run's alerts: missing {:?}, extra {:?}",
            want.difference(&union).collect::<Vec<_>>(),
            union.difference(&want).collect::<Vec<_>>()
        );
        assert_eq!(ids.len(), union.len(), "no window was counted twice");
    }
}

#[test]
fn group_members_split_partitions_and_take_over_when_one_leaves() {
    let Some(brokers) = brokers("group_members_split_partitions_and_take_over_when_one_leaves")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut setup = Setup::new(dir.path(), brokers, "group", 4);
    setup.rules = per_user_rules(dir.path());
    let mut phases = Phases {
        setup: &setup,
        partitions: 4,
        lines: Vec::new(),
        ends: BTreeMap::new(),
    };
    // Two members split the four partitions.
    let mut a = setup.spawn("a", true, "");
    let mut b = setup.spawn("b", true, "");
    setup.await_assignment(&[("a", 1), ("b", 1)], 4);
    phases.run(21, 1, &["a", "b"]);
    // a leaves: b takes over its partitions from the offsets a checkpointed and committed
    // on revocation.
    sigterm(&mut a);
    setup.await_assignment(&[("b", 4)], 4);
    phases.run(22, 2, &["b"]);
    // a comes back (its own state is older than the group's offsets: it starts from those).
    let mut a = setup.spawn("a", true, "");
    setup.await_assignment(&[("a", 1), ("b", 1)], 4);
    phases.run(23, 3, &["a", "b"]);
    sigterm(&mut a);
    sigterm(&mut b);
    phases.check_alerts(dir.path(), &["a", "b"]);
}

/// The test broker never evicts a member that dies without leaving, so this one runs on
/// librdkafka's mock cluster (in this process, listening on 127.0.0.1), which expires
/// sessions as Kafka does.
#[test]
fn a_member_killed_with_sigkill_is_taken_over_from_its_committed_offsets() {
    let mock = rdkafka::mocking::MockCluster::new(1).expect("a mock cluster");
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup::on_mock(
        &mock,
        dir.path(),
        "killed",
        4,
        per_user_rules(dir.path()),
        &[],
    );
    let mut phases = Phases {
        setup: &setup,
        partitions: 4,
        lines: Vec::new(),
        ends: BTreeMap::new(),
    };
    let mut a = setup.spawn("a", true, "");
    let mut b = setup.spawn("b", true, "");
    setup.await_assignment(&[("a", 1), ("b", 1)], 4);
    phases.run(31, 1, &["a", "b"]);
    b.kill(); // SIGKILL: no revocation, no last commit
    setup.await_assignment(&[("a", 4)], 4);
    phases.run(32, 2, &["a"]);
    sigterm(&mut a);
    phases.check_alerts(dir.path(), &["a", "b"]);
}

#[test]
fn an_idle_partition_does_not_stall_detection() {
    let Some(brokers) = brokers("an_idle_partition_does_not_stall_detection") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup::new(dir.path(), brokers, "idle", 2);
    let mut child = setup.spawn("idle", true, "");
    setup.await_assignment(&[("idle", 2)], 2);
    // A brute force on partition 0 only, then a later event that moves event time past the
    // lateness; partition 1 never receives anything.
    let start = chrono::Utc::now().timestamp_millis() + 86_400_000;
    let mut records = Vec::new();
    for i in 0..10 {
        let line = format!(
            r#"{{"ts":{},"type":"login.failure","tenant":"acme","username":"victim@example.com","ip":"203.0.113.9","reason":"bad_password"}}"#,
            start + i * 1_000
        );
        records.push((0, b"victim".to_vec(), line.into_bytes()));
    }
    let later = format!(
        r#"{{"ts":{},"type":"logout","tenant":"acme","username":"someone@example.com"}}"#,
        start + 3_600_000
    );
    records.push((0, b"someone".to_vec(), later.into_bytes()));
    produce(&setup.brokers, &setup.topic, &records, "none");
    let deadline = Instant::now() + Duration::from_secs(30);
    let fired = loop {
        let text = std::fs::read_to_string(setup.alerts("idle")).unwrap_or_default();
        if text.contains("brute-force-user") {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    sigterm(&mut child);
    assert!(
        fired,
        "the alert came although partition 1 is idle; log:\n{}",
        setup.log_text("idle")
    );
}

/// Synthetic traffic over six tenants as JSON lines keyed at random (a producer that keys by
/// session or not at all), and apart one marker per tenant an hour after the last event: with
/// the repartition hop keyed by tenant, each marker moves its tenant's partition past the
/// lateness. Returns the traffic, the markers and every line (for `replay`).
fn traffic_keyed_at_random(
    seed: u64,
    n: usize,
    partitions: i32,
) -> (Vec<Record>, Vec<Record>, Vec<u8>) {
    traffic_of_tenants_keyed_at_random(seed, n, partitions, 6)
}

/// [`traffic_keyed_at_random`] over `tenants` tenants.
fn traffic_of_tenants_keyed_at_random(
    seed: u64,
    n: usize,
    partitions: i32,
    tenants: u64,
) -> (Vec<Record>, Vec<Record>, Vec<u8>) {
    let now = chrono::Utc::now().timestamp_millis();
    let events = Traffic {
        seed,
        start_ms: now + 86_400_000,
        users: 2_000,
        tenants,
        attack_every: 300,
        ..Traffic::default()
    }
    .generate(n);
    let mut records = Vec::new();
    let mut lines = Vec::new();
    let mut push = |i: usize, json: Vec<u8>| {
        let key = format!(
            "k{}",
            authwatch::event::fingerprint(format!("{seed}/{i}").as_bytes())
        );
        records.push((
            partition_of(&key, partitions),
            key.into_bytes(),
            json.clone(),
        ));
        lines.extend_from_slice(&json);
        lines.push(b'\n');
    };
    for (i, e) in events.iter().enumerate() {
        push(i, serde_json::to_vec(e).unwrap());
    }
    let last = events.last().map_or(now, |e| e.ts);
    for t in 0..tenants {
        let marker = format!(
            r#"{{"ts":{},"type":"other","tenant":"tenant{t}","user":"marker-{seed}-{t}","username":"marker-{seed}-{t}"}}"#,
            last + 3_600_000 + t as i64
        );
        push(n + t as usize, marker.into_bytes());
    }
    let markers = records.split_off(n);
    (records, markers, lines)
}

/// Alert ids in the members' alert files: all of them, and the distinct ones.
fn union_of(setup: &Setup, members: &[&str]) -> (Vec<String>, BTreeSet<String>) {
    let ids: Vec<String> = members
        .iter()
        .flat_map(|m| ids_in(&setup.alerts(m)))
        .collect();
    let union = ids.iter().cloned().collect();
    (ids, union)
}

/// Every member's log, one after the other (for a failing assertion).
fn logs_of(setup: &Setup, members: &[&str]) -> String {
    members
        .iter()
        .map(|m| setup.log_text(m))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits, at most [`PATIENCE`], until the members' alerts together are `want`.
fn await_union(setup: &Setup, members: &[&str], want: &BTreeSet<String>) {
    let deadline = Instant::now() + PATIENCE;
    while union_of(setup, members).1 != *want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Asserts that the members' alerts together are exactly `want` (`what` says what that
/// shows), naming what is missing and extra and showing their logs otherwise; returns every
/// id raised, repeats included.
fn assert_union(
    setup: &Setup,
    members: &[&str],
    want: &BTreeSet<String>,
    what: &str,
) -> Vec<String> {
    let (ids, union) = union_of(setup, members);
    assert!(
        union == *want,
        "{what}: missing {:?}, extra {:?}; logs:\n{}",
        want.difference(&union).collect::<Vec<_>>(),
        union.difference(want).collect::<Vec<_>>(),
        logs_of(setup, members)
    );
    ids
}

/// Issue 12: three instances in one group, a topic keyed at random, the whole default pack
/// (rules grouped by user, username, ip, ip/24, ASN, session and tenant alike): through the
/// repartition hop (keyed by the tenant, which every rule groups by), their alerts together
/// are exactly `replay`'s over the stream sorted by event time, each raised once.
#[test]
fn instances_scaled_out_raise_the_alerts_of_replay_whatever_the_producers_key() {
    let Some(brokers) =
        brokers("instances_scaled_out_raise_the_alerts_of_replay_whatever_the_producers_key")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup::new(dir.path(), brokers, "scale", 6);
    let internal = format!("{}-by-tenant-repartition", setup.group);
    let scale = "[source.scale_out]\nreplication_factor = 1\n";
    let members = ["a", "b", "c"];
    let mut daemons: Vec<Daemon> = members
        .iter()
        .map(|m| setup.spawn(m, true, scale))
        .collect();
    // Both groups settle before anything is produced: a task moving between instances
    // mid-stream would start its windows afresh (state that follows its partition is the
    // next step of issue 12).
    let want_split: Vec<(&str, usize)> = members.iter().map(|m| (*m, 1)).collect();
    setup.await_assignment(&want_split, 6);
    setup.await_assignment_in(&internal, &want_split, 6);
    let (records, markers, lines) = traffic_keyed_at_random(41, 20_000, 6);
    produce(&setup.brokers, &setup.topic, &records, "none");
    // The markers go last, once the input group committed the traffic (which it does only
    // after the repartition topic acknowledged it): one that overtook traffic in the hop would
    // make it late.
    let mut ends = BTreeMap::new();
    advance_ends(&mut ends, 6, &records);
    setup.await_committed(&ends, &members);
    produce(&setup.brokers, &setup.topic, &markers, "none");
    let want = replay_ids(dir.path(), &setup.rules, &lines);
    assert!(want.len() > 20, "the traffic holds attacks: {}", want.len());
    await_union(&setup, &members, &want);
    for d in &mut daemons {
        sigterm(d);
    }
    let ids = assert_union(
        &setup,
        &members,
        &want,
        "the instances together raise replay's alerts",
    );
    assert_eq!(ids.len(), want.len(), "no alert was raised twice");
    let logs = || logs_of(&setup, &members);
    // Order survived the hop: the input partitions interleaved in each partition of the
    // repartition topic are merged back by event time, so nothing came later than the lateness.
    let late: u64 = members
        .iter()
        .map(|m| stopped_total(&setup, m, "late"))
        .sum();
    assert_eq!(late, 0, "no event was late; logs:\n{}", logs());
    // Detection was shared: the tenants' partitions are spread over the instances.
    let detecting = members
        .iter()
        .filter(|m| events_counted(&setup, m) > 0)
        .count();
    assert!(
        detecting >= 2,
        "one instance detected everything; logs:\n{}",
        logs()
    );
}

/// Issue 12, state that follows its partition: one instance detects a stream keyed at random
/// with `changelog = true`; a second one, on an empty disk, joins mid-stream and takes about
/// half the tasks, each with the state its changelog holds (snapshots and changes: a snapshot
/// every 3 checkpoints here). Together they raise exactly `replay`'s alerts. Without the
/// changelog the second would start those tasks' windows and baselines afresh.
#[test]
fn tasks_move_with_their_state_to_an_instance_that_joins_mid_stream() {
    let Some(brokers) = brokers("tasks_move_with_their_state_to_an_instance_that_joins_mid_stream")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup::new(dir.path(), brokers, "tasks", 6);

    let internal = format!("{}-by-tenant-repartition", setup.group);
    let scale =
        "[source.scale_out]\nreplication_factor = 1\nchangelog = true\nsnapshot_every = 3\n";
    // On tansu: see `spawn_one_per_batch`.
    let spawn = |name: &str| spawn_one_per_batch(&setup, name, scale);
    let mut a = spawn("a");
    setup.await_assignment(&[("a", 6)], 6);
    setup.await_assignment_in(&internal, &[("a", 6)], 6);
    let (records, markers, lines) = traffic_keyed_at_random(43, 20_000, 6);
    let (first, second) = records.split_at(records.len() / 2);
    produce(&setup.brokers, &setup.topic, first, "none");
    let mut ends = BTreeMap::new();
    advance_ends(&mut ends, 6, first);
    setup.await_committed(&ends, &["a"]);
    // Windows are open in a's tasks when b joins.
    let mut b = spawn("b");
    // Both groups settle before the rest is produced: this is about detection's tasks.
    setup.await_assignment(&[("a", 1), ("b", 1)], 6);
    setup.await_assignment_in(&internal, &[("a", 1), ("b", 1)], 6);
    produce(&setup.brokers, &setup.topic, second, "none");
    advance_ends(&mut ends, 6, second);
    setup.await_committed(&ends, &["a", "b"]);
    produce(&setup.brokers, &setup.topic, &markers, "none");
    let want = replay_ids(dir.path(), &setup.rules, &lines);
    assert!(want.len() > 20, "the traffic holds attacks: {}", want.len());
    let members = ["a", "b"];
    await_union(&setup, &members, &want);
    sigterm(&mut a);
    sigterm(&mut b);
    assert_union(
        &setup,
        &members,
        &want,
        "the instances together raise replay's alerts",
    );
    let logs = || logs_of(&setup, &members);
    // b detected, on tasks it restored from what a had written, reading from their last
    // snapshot rather than from the changelog's start.
    assert!(
        events_counted(&setup, "b") > 0,
        "b detected nothing; logs:\n{}",
        logs()
    );
    let restored_state = setup.log_text("b").lines().any(|l| {
        serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| {
            field(&v, "message") == "kafka: task restored"
                && field(&v, "entries").as_u64().unwrap_or(0) > 0
                && field(&v, "from").as_u64().unwrap_or(0) > 0
        })
    });
    assert!(
        restored_state,
        "b restored no task state from a snapshot; logs:\n{}",
        logs()
    );
}

/// Issue 12, an instance that leaves hands its tasks over with their state: two instances in
/// changelog mode detect the first half of a stream keyed at random; one is stopped (SIGTERM:
/// its last checkpoint writes its tasks to the changelog as they are revoked), the other takes
/// every task, restoring those it did not hold, and with the second half the two raise exactly
/// `replay`'s alerts. On tansu, one message per batch as above.
#[test]
fn an_instance_that_leaves_mid_stream_hands_its_tasks_over_with_their_state() {
    let Some(brokers) =
        brokers("an_instance_that_leaves_mid_stream_hands_its_tasks_over_with_their_state")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup::new(dir.path(), brokers, "leave", 6);
    let internal = format!("{}-by-tenant-repartition", setup.group);
    let scale =
        "[source.scale_out]\nreplication_factor = 1\nchangelog = true\nsnapshot_every = 3\n";
    let spawn = |name: &str| spawn_one_per_batch(&setup, name, scale);
    let mut a = spawn("a");
    let mut b = spawn("b");
    setup.await_assignment(&[("a", 1), ("b", 1)], 6);
    setup.await_assignment_in(&internal, &[("a", 1), ("b", 1)], 6);
    let (records, markers, lines) = traffic_keyed_at_random(61, 20_000, 6);
    let (first, second) = records.split_at(records.len() / 2);
    produce(&setup.brokers, &setup.topic, first, "none");
    let mut ends = BTreeMap::new();
    advance_ends(&mut ends, 6, first);
    setup.await_committed(&ends, &["a", "b"]);
    // Windows are open in b's tasks when it leaves.
    let (status, _) = b.sigterm();
    assert!(status.success(), "b stops cleanly: {}", setup.log_text("b"));
    setup.await_assignment(&[("a", 6)], 6);
    setup.await_assignment_in(&internal, &[("a", 6)], 6);
    produce(&setup.brokers, &setup.topic, second, "none");
    advance_ends(&mut ends, 6, second);
    setup.await_committed(&ends, &["a"]);
    produce(&setup.brokers, &setup.topic, &markers, "none");
    let want = replay_ids(dir.path(), &setup.rules, &lines);
    assert!(want.len() > 20, "the traffic holds attacks: {}", want.len());
    let members = ["a", "b"];
    await_union(&setup, &members, &want);
    sigterm(&mut a);
    assert_union(
        &setup,
        &members,
        &want,
        "b's tasks went on at a with their state",
    );
}

/// Starts `authwatch run` as `name` with `[rules] lateness` raised to 10 minutes. After a
/// rebalance a task's merge meets the input partitions interleaved in its partition again one
/// by one, as their forwarders resume; a loaded machine lets one forwarder run minutes of event
/// time ahead of another, and the lateness absorbs that (docs/kafka.md). The tests' streams
/// arrive as bursts of 400 s of event time, where a live stream moves with the wall clock.
fn spawn_with_lateness(setup: &Setup, name: &str, extra_source: &str) -> Daemon {
    spawn_edited(setup, name, extra_source, false)
}

/// [`spawn_with_lateness`] with one message per record batch from the daemon's producers: a
/// task resumes at the earliest offset its merge still held, which may lie inside a record
/// batch, and tansu cannot serve a fetch that starts there (it skips and repeats messages;
/// Kafka serves it). For the tests on tansu.
fn spawn_one_per_batch(setup: &Setup, name: &str, extra_source: &str) -> Daemon {
    spawn_edited(setup, name, extra_source, true)
}

fn spawn_edited(setup: &Setup, name: &str, extra_source: &str, one_per_batch: bool) -> Daemon {
    let cfg = setup.config(name, true, extra_source);
    let mut text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[rules]\n", "[rules]\nlateness = \"10m\"\n");
    if one_per_batch {
        text = text.replace(
            "[source.properties]\n",
            "[source.properties]\n\"batch.num.messages\" = 1\n",
        );
    }
    std::fs::write(&cfg, text).unwrap();
    setup.spawn_config(name, &cfg)
}

/// Issue 12, failover forgets nothing: two instances in changelog mode, with the alert topic,
/// on a stream keyed at random; one is killed with SIGKILL once half the stream is in, and a
/// replacement starts on an empty disk. The survivor and the replacement restore the dead
/// one's tasks from the changelog, deliver what it raised and had not delivered, and the
/// alerts of the three together are exactly `replay`'s. On librdkafka's mock cluster: tansu
/// never evicts a member that dies without leaving, so its partitions would never move.
#[test]
fn an_instance_killed_mid_stream_and_replaced_on_an_empty_disk_loses_no_detection() {
    let mock = rdkafka::mocking::MockCluster::new(1).expect("a mock cluster");
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup::on_mock(
        &mock,
        dir.path(),
        "failover",
        6,
        rules_dir(),
        &["-by-tenant-repartition", "-by-tenant-changelog", "-alerts"],
    );
    let internal = format!("{}-by-tenant-repartition", setup.group);
    let scale = "[source.scale_out]\nreplication_factor = 1\nchangelog = true\nsnapshot_every = 3\nalert_topic = true\n";
    let mut a = spawn_with_lateness(&setup, "a", scale);
    let mut b = spawn_with_lateness(&setup, "b", scale);
    setup.await_assignment(&[("a", 1), ("b", 1)], 6);
    setup.await_assignment_in(&internal, &[("a", 1), ("b", 1)], 6);
    let (records, markers, lines) = traffic_keyed_at_random(47, 20_000, 6);
    let (first, second) = records.split_at(records.len() / 2);
    produce(&setup.brokers, &setup.topic, first, "none");
    let mut ends = BTreeMap::new();
    advance_ends(&mut ends, 6, first);
    setup.await_committed(&ends, &["a", "b"]);
    a.kill(); // SIGKILL, and its disk is never used again
    let mut c = spawn_with_lateness(&setup, "c", scale);
    setup.await_assignment(&[("b", 1), ("c", 1)], 6);
    setup.await_assignment_in(&internal, &[("b", 1), ("c", 1)], 6);
    produce(&setup.brokers, &setup.topic, second, "none");
    advance_ends(&mut ends, 6, second);
    setup.await_committed(&ends, &["b", "c"]);
    produce(&setup.brokers, &setup.topic, &markers, "none");
    let want = replay_ids(dir.path(), &setup.rules, &lines);
    assert!(want.len() > 20, "the traffic holds attacks: {}", want.len());
    let members = ["a", "b", "c"];
    await_union(&setup, &members, &want);
    sigterm(&mut b);
    sigterm(&mut c);
    assert_union(&setup, &members, &want, "no detection was lost with a");
}

/// Issue 12, rebalances move tasks with their state while events flow: three instances in
/// changelog mode detect a stream of 24 tenants (every partition of detection holds some)
/// keyed at random, and a fourth joins while it is being produced, so both groups rebalance
/// mid-stream and tasks with open windows change instance. Together the four raise exactly
/// `replay`'s alerts. On librdkafka's mock cluster, which serves a fetch starting inside a
/// record batch (tansu does not: see above).
#[test]
fn a_fourth_instance_joining_while_events_flow_takes_tasks_with_their_state() {
    let mock = rdkafka::mocking::MockCluster::new(1).expect("a mock cluster");
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup::on_mock(
        &mock,
        dir.path(),
        "fourth",
        6,
        rules_dir(),
        &["-by-tenant-repartition", "-by-tenant-changelog"],
    );
    let internal = format!("{}-by-tenant-repartition", setup.group);
    let scale =
        "[source.scale_out]\nreplication_factor = 1\nchangelog = true\nsnapshot_every = 3\n";
    let members = ["a", "b", "c", "d"];
    let mut daemons: Vec<Daemon> = members[..3]
        .iter()
        .map(|m| spawn_with_lateness(&setup, m, scale))
        .collect();
    let three: Vec<(&str, usize)> = members[..3].iter().map(|m| (*m, 1)).collect();
    setup.await_assignment(&three, 6);
    setup.await_assignment_in(&internal, &three, 6);
    let (records, markers, lines) = traffic_of_tenants_keyed_at_random(53, 20_000, 6, 24);
    let brokers = setup.brokers.clone();
    let input = setup.topic.clone();
    let flowing = records.clone();
    let producer = std::thread::spawn(move || {
        for chunk in flowing.chunks(400) {
            produce(&brokers, &input, chunk, "none");
            std::thread::sleep(Duration::from_millis(150));
        }
    });
    std::thread::sleep(Duration::from_secs(2));
    daemons.push(spawn_with_lateness(&setup, "d", scale));
    producer.join().unwrap();
    let four: Vec<(&str, usize)> = members.iter().map(|m| (*m, 1)).collect();
    setup.await_assignment_in(&internal, &four, 6);
    let mut ends = BTreeMap::new();
    advance_ends(&mut ends, 6, &records);
    setup.await_committed(&ends, &members);
    produce(&setup.brokers, &setup.topic, &markers, "none");
    let want = replay_ids(dir.path(), &setup.rules, &lines);
    assert!(want.len() > 20, "the traffic holds attacks: {}", want.len());
    await_union(&setup, &members, &want);
    for d in &mut daemons {
        sigterm(d);
    }
    assert_union(&setup, &members, &want, "the four raise replay's alerts");
    // Every partition holds events, so d's tasks came from another instance with their state.
    assert!(
        events_counted(&setup, "d") > 0,
        "d took tasks and detected; log:\n{}",
        setup.log_text("d")
    );
}

/// A tansu broker of the test's own, on a free port, keeping its logs in an SQLite file so a
/// restart finds them again (the shared broker keeps them in memory). Killed when dropped.
struct OwnBroker {
    binary: PathBuf,
    /// Holds `tansu.db`, its log file.
    dir: PathBuf,
    log: PathBuf,
    port: u16,
    child: Option<std::process::Child>,
}

impl OwnBroker {
    /// The binary is `AUTHWATCH_TANSU` (`.ci/kafka.sh` builds tansu with its SQLite engine and
    /// exports it); `None`, with the skip printed, without it.
    fn start(test: &str, dir: &Path) -> Option<OwnBroker> {
        let binary = match std::env::var("AUTHWATCH_TANSU") {
            Ok(b) if !b.is_empty() => PathBuf::from(b),
            _ => {
                crate::support::skip_unless_ci(&format!(
                    "{test}: AUTHWATCH_TANSU is unset (.ci/run builds tansu with SQLite storage and sets it)"
                ));
                return None;
            }
        };
        let mut broker = OwnBroker {
            binary,
            dir: dir.to_path_buf(),
            log: dir.join("tansu.log"),
            port: crate::support::free_port(),
            child: None,
        };
        broker.up();
        Some(broker)
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the broker on its port and file, and waits until it accepts connections.
    fn up(&mut self) {
        let url = format!("tcp://{}", self.address());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = std::process::Command::new(&self.binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            // tansu reads the path of a `sqlite://` URL as relative: it runs in the file's folder.
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("tansu starts");
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut child = child;
        while std::net::TcpStream::connect(self.address()).is_err() {
            assert!(
                Instant::now() < deadline && child.try_wait().unwrap().is_none(),
                "tansu did not listen; its log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        self.child = Some(child);
    }

    /// Kills the broker (SIGKILL: a crash, not a shutdown).
    fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.down();
    }
}

/// Issue 12, a broker restart: two instances in changelog mode with the alert topic detect a
/// stream keyed at random; the broker is killed while they are busy with the first half (the
/// hop, detection, the changelog and the alert topic all in flight) and started again on its
/// files seconds later. The instances ride it out (nothing exits, nothing acknowledged is lost:
/// each retries until the broker is back) and, with the second half, raise exactly `replay`'s
/// alerts. On tansu with SQLite storage, started by the test.
#[test]
fn instances_ride_out_a_broker_restart_without_losing_a_detection() {
    let test = "instances_ride_out_a_broker_restart_without_losing_a_detection";
    let dir = tempfile::tempdir().unwrap();
    let Some(mut broker) = OwnBroker::start(test, dir.path()) else {
        return;
    };
    let setup = Setup::new(dir.path(), broker.address(), "restart", 6);
    let internal = format!("{}-by-tenant-repartition", setup.group);
    let scale = "[source.scale_out]\nreplication_factor = 1\nchangelog = true\nsnapshot_every = 3\nalert_topic = true\n";
    // After the restart the groups may resume at any committed offset: see
    // `spawn_one_per_batch`.
    let spawn = |name: &str| spawn_one_per_batch(&setup, name, scale);
    let members = ["a", "b"];
    let mut daemons: Vec<Daemon> = members.iter().map(|m| spawn(m)).collect();
    setup.await_assignment(&[("a", 1), ("b", 1)], 6);
    setup.await_assignment_in(&internal, &[("a", 1), ("b", 1)], 6);
    let (records, markers, lines) = traffic_keyed_at_random(59, 6_000, 6);
    let (first, second) = records.split_at(records.len() / 2);
    produce_batched(&setup.brokers, &setup.topic, first, "none", 1);
    // The broker dies while the instances are still at work on the first half.
    std::thread::sleep(Duration::from_millis(300));
    broker.down();
    std::thread::sleep(Duration::from_secs(5));
    for (name, daemon) in members.iter().zip(&mut daemons) {
        assert!(
            daemon.exits_within(Duration::ZERO).is_none(),
            "{name} exited while the broker was down; log:\n{}",
            setup.log_text(name)
        );
    }
    broker.up();
    let mut ends = BTreeMap::new();
    advance_ends(&mut ends, 6, first);
    setup.await_committed(&ends, &members);
    produce_batched(&setup.brokers, &setup.topic, second, "none", 1);
    advance_ends(&mut ends, 6, second);
    setup.await_committed(&ends, &members);
    produce_batched(&setup.brokers, &setup.topic, &markers, "none", 1);
    let want = replay_ids(dir.path(), &setup.rules, &lines);
    assert!(want.len() > 10, "the traffic holds attacks: {}", want.len());
    await_union(&setup, &members, &want);
    for d in &mut daemons {
        sigterm(d);
    }
    assert_union(
        &setup,
        &members,
        &want,
        "the broker's restart lost no detection",
    );
}

/// `check` validates `[source.scale_out]` against the loaded rules without a broker (the
/// address here has none), saying how events will flow, and collects every mistake.
#[test]
fn check_plans_the_scale_out_without_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let check = |source: &str| {
        let path = dir.path().join("scale.toml");
        std::fs::write(
            &path,
            format!(
                "[source]\nkind = \"kafka\"\nbrokers = \"127.0.0.1:9\"\ntopics = [\"auth\"]\n{source}\n[rules]\ndir = \"{}\"\n",
                rules_dir().display()
            ),
        )
        .unwrap();
        authwatch(&["check", "--config", path.to_str().unwrap()], b"")
    };
    let out = check("group_id = \"aw\"\n[source.scale_out]\n");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        said.contains("repartitioned by [tenant] through the topic aw-by-tenant-repartition (consumer group aw-by-tenant)"),
        "{said}"
    );
    // Changelog mode names the topic each task's state is kept in.
    let out =
        check("group_id = \"aw\"\n[source.scale_out]\nchangelog = true\nsnapshot_every = 10\n");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        said.contains("each partition of aw-by-tenant-repartition is a task whose state is kept in the topic aw-by-tenant-changelog (a snapshot every 10 checkpoints that changed it)"),
        "{said}"
    );
    let out = check("[source.scale_out]\nchangelog = true\nsnapshot_every = 0\n");
    assert_eq!(out.status.code(), Some(78));
    assert!(
        stderr(&out).contains("snapshot_every must be 1 or more"),
        "{}",
        stderr(&out)
    );
    let out = check("[source.scale_out]\nack_timeout = \"soon\"\n");
    assert_eq!(out.status.code(), Some(78));
    assert!(
        stderr(&out).contains("ack_timeout `soon` must be a duration above 0"),
        "{}",
        stderr(&out)
    );
    // A topic keyed by tenant already holds every group of the pack whole.
    let out = check("[source.scale_out]\ninput_key = [\"tenant\"]\n");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("detection reads it directly"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = check(
        "group_id = \"a group\"\nfollow = false\n[source.scale_out]\ninput_key = [\"tenat\"]\nreplication_factor = 0\n",
    );
    assert_eq!(out.status.code(), Some(78));
    let err = stderr(&out);
    for said in [
        "internal topic after group_id `a group`",
        "needs `follow = true`",
        "input_key: unknown field `tenat`",
        "replication_factor must be 1 or more",
    ] {
        assert!(err.contains(said), "{said}: {err}");
    }
}

/// Where the cluster may not create topics (here: `create_topics = false`), the start is
/// refused with the command that creates the repartition topic, with the input's partitions.
#[test]
fn a_missing_repartition_topic_is_refused_with_the_command_that_creates_it() {
    let Some(brokers) =
        brokers("a_missing_repartition_topic_is_refused_with_the_command_that_creates_it")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup::new(dir.path(), brokers, "nocreate", 3);
    let mut child = setup.spawn(
        "refused",
        true,
        "[source.scale_out]\ncreate_topics = false\nreplication_factor = 1\n",
    );
    let status = wait_exit(&mut child, PATIENCE);
    let log = setup.log_text("refused");
    assert_eq!(status, Some(1), "{log}");
    let command = format!(
        "kafka-topics.sh --bootstrap-server {} --create --topic {}-by-tenant-repartition --partitions 3 --replication-factor 1",
        setup.brokers, setup.group
    );
    assert!(log.contains(&command), "{command}\n{log}");
}

/// The repartition topic is keyed by what every rule groups by, so a reload whose rules no
/// longer all group by it is refused, and the running rules stay.
#[test]
fn a_reload_that_needs_another_scale_out_key_is_refused() {
    let Some(brokers) = brokers("a_reload_that_needs_another_scale_out_key_is_refused") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut setup = Setup::new(dir.path(), brokers, "rekey", 2);
    setup.rules = per_user_rules(dir.path());
    let mut child = setup.spawn(
        "rekey",
        true,
        "[source.scale_out]\nreplication_factor = 1\n",
    );
    let internal = format!("{}-by-tenant-repartition", setup.group);
    setup.await_assignment_in(&internal, &[("rekey", 2)], 2);
    std::fs::write(
        setup.rules.join("per-ip.yaml"),
        "id: per-ip\ntitle: Failures per address\nseverity: low\nkind: threshold\nmatch: {type: login.failure}\ngroup_by: [ip]\nwindow: 1m\nthreshold: 5\n",
    )
    .unwrap();
    let deadline = Instant::now() + PATIENCE;
    let refused = loop {
        let log = setup.log_text("rekey");
        if log.contains("rules not reloaded") {
            break log;
        }
        assert!(Instant::now() < deadline, "no reload was tried:\n{log}");
        std::thread::sleep(Duration::from_millis(200));
    };
    sigterm(&mut child);
    assert!(
        refused.contains("these rules do not group by the scale-out key [tenant] the running instances partition by: per-ip"),
        "{refused}"
    );
}

/// Rules grouped by `[tenant, username]` only: an input keyed by username holds their groups
/// whole, so `[source.scale_out] input_key = ["username"]` reads it without the hop.
fn per_username_rules(dir: &Path) -> PathBuf {
    let rules = per_user_rules(dir);
    for name in [
        "mfa-push-flood",
        "mfa-denied-repeatedly",
        "mfa-fatigue-success",
        "refresh-token-reuse",
    ] {
        std::fs::remove_file(rules.join(format!("{name}.yaml"))).unwrap();
    }
    rules
}

/// The distinct alert ids in `topic`, read from its start.
fn ids_in_topic(brokers: &str, topic: &str, partitions: i32, want: usize) -> BTreeSet<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut ids = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while ids.len() < want && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let alert: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            ids.insert(alert["id"].as_str().unwrap().to_string());
        }
    }
    ids
}

/// Issue 12, alerts are not lost with a machine: with `alert_topic = true` the outbox is the
/// topic `<group_id>-alerts`. The instance that raised every alert is killed (SIGKILL) while
/// the receiver is down; once the receiver is up, the surviving instance delivers each of
/// `replay`'s ids. On librdkafka's mock cluster: the test broker never evicts a member that
/// dies without leaving, so the survivor would never be given the dead one's partitions.
#[test]
fn alerts_of_an_instance_killed_before_delivering_them_are_delivered_by_another() {
    use crate::sinks_harness::{Receiver, ids};
    let mock = rdkafka::mocking::MockCluster::new(1).expect("a mock cluster");
    let dir = tempfile::tempdir().unwrap();
    let setup = Setup::on_mock(
        &mock,
        dir.path(),
        "outbox",
        4,
        per_username_rules(dir.path()),
        &["-alerts"],
    );
    let alert_topic = format!("{}-alerts", setup.group);
    let port = crate::support::free_port();
    let config = |name: &str| {
        let path = setup.config(
            name,
            true,
            "[source.scale_out]\ninput_key = [\"username\"]\nalert_topic = true\n",
        );
        // The webhook is the only sink: the file sink of the shared configuration is replaced.
        let text = std::fs::read_to_string(&path).unwrap();
        let text = &text[..text.find("[[sink]]").unwrap()];
        std::fs::write(
            &path,
            format!(
                "{text}[[sink]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\nretry_initial = \"50ms\"\nretry_max = \"200ms\"\n"
            ),
        )
        .unwrap();
        path
    };
    // a alone reads every partition and raises every alert; the receiver is down.
    let mut a = setup.spawn_config("a", &config("a"));
    setup.await_assignment(&[("a", 4)], 4);
    let (records, lines) = traffic(51, 8_000, 1, 4);
    produce(&setup.brokers, &setup.topic, &records, "none");
    let want = replay_ids(dir.path(), &setup.rules, &lines);
    assert!(want.len() > 3, "the traffic holds attacks: {}", want.len());
    let deadline = Instant::now() + PATIENCE;
    let mut raised = BTreeSet::new();
    while raised != want && Instant::now() < deadline {
        raised = ids_in_topic(&setup.brokers, &alert_topic, 4, want.len());
    }
    assert!(
        raised == want,
        "a raised replay's alerts into {alert_topic}: missing {:?}, extra {:?}; log:\n{}",
        want.difference(&raised).collect::<Vec<_>>(),
        raised.difference(&want).collect::<Vec<_>>(),
        setup.log_text("a")
    );
    // a committed the input behind every alert: b has nothing to detect again.
    let mut ends = BTreeMap::new();
    advance_ends(&mut ends, 4, &records);
    setup.await_committed(&ends, &["a"]);
    let mut b = setup.spawn_config("b", &config("b"));
    let deadline = Instant::now() + PATIENCE;
    while !setup
        .log_text("b")
        .contains("delivering from the alert topic")
    {
        assert!(
            Instant::now() < deadline,
            "b started; log:\n{}",
            setup.log_text("b")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        setup.log_text("a").contains("delivery failed; will retry"),
        "a tried its receiver and failed; log:\n{}",
        setup.log_text("a")
    );
    a.kill(); // SIGKILL: its undelivered alerts stay in the topic, uncommitted
    let receiver = Receiver::start_on(port);
    let deadline = Instant::now() + PATIENCE;
    let mut delivered = BTreeSet::new();
    while delivered != want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        delivered = ids(&receiver.accepted("/hook")).into_iter().collect();
    }
    sigterm(&mut b);
    assert!(
        delivered == want,
        "b delivered every alert a raised: missing {:?}, extra {:?}; log of b:\n{}",
        want.difference(&delivered).collect::<Vec<_>>(),
        delivered.difference(&want).collect::<Vec<_>>(),
        setup.log_text("b")
    );
}

/// The alert topic on the test broker: created at start (with the input's partitions), and the
/// alerts an instance left undelivered when it stopped (its receiver down all along) are
/// delivered by the instance that stays, each of `replay`'s ids.
#[test]
fn the_alert_topic_is_created_and_the_instance_that_stays_delivers_what_the_other_left() {
    use crate::sinks_harness::{Receiver, ids};
    let Some(brokers) = brokers(
        "the_alert_topic_is_created_and_the_instance_that_stays_delivers_what_the_other_left",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut setup = Setup::new(dir.path(), brokers, "alerts", 4);
    setup.rules = per_username_rules(dir.path());
    let alert_topic = format!("{}-alerts", setup.group);
    let port = crate::support::free_port();
    let config = |name: &str| {
        let path = setup.config(
            name,
            true,
            "[source.scale_out]\ninput_key = [\"username\"]\nalert_topic = true\nreplication_factor = 1\n",
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let text = &text[..text.find("[[sink]]").unwrap()];
        std::fs::write(
            &path,
            format!(
                "{text}[[sink]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\nretry_initial = \"50ms\"\nretry_max = \"200ms\"\n"
            ),
        )
        .unwrap();
        path
    };
    let mut a = setup.spawn_config("a", &config("a"));
    let mut b = setup.spawn_config("b", &config("b"));
    setup.await_assignment(&[("a", 1), ("b", 1)], 4);
    let created = |n: &str| setup.log_text(n).contains("kafka: created the alert topic");
    assert!(
        created("a") || created("b"),
        "one of them created {alert_topic}; logs:\n{}\n{}",
        setup.log_text("a"),
        setup.log_text("b")
    );
    let (records, lines) = traffic(51, 8_000, 1, 4);
    produce_batched(&setup.brokers, &setup.topic, &records, "none", 1);
    let mut ends = BTreeMap::new();
    advance_ends(&mut ends, 4, &records);
    setup.await_committed(&ends, &["a", "b"]);
    let want = replay_ids(dir.path(), &setup.rules, &lines);
    assert!(want.len() > 3, "the traffic holds attacks: {}", want.len());
    let deadline = Instant::now() + PATIENCE;
    let mut raised = BTreeSet::new();
    while raised != want && Instant::now() < deadline {
        raised = ids_in_topic(&setup.brokers, &alert_topic, 4, want.len());
    }
    assert!(
        raised == want,
        "the instances raised replay's alerts into {alert_topic}: missing {:?}, extra {:?}",
        want.difference(&raised).collect::<Vec<_>>(),
        raised.difference(&want).collect::<Vec<_>>(),
    );
    sigterm(&mut a);
    let receiver = Receiver::start_on(port);
    let deadline = Instant::now() + PATIENCE;
    let mut delivered = BTreeSet::new();
    while delivered != want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        delivered = ids(&receiver.accepted("/hook")).into_iter().collect();
    }
    sigterm(&mut b);
    assert!(
        delivered == want,
        "b delivered every alert: missing {:?}, extra {:?}; log of a:\n{}\nlog of b:\n{}",
        want.difference(&delivered).collect::<Vec<_>>(),
        delivered.difference(&want).collect::<Vec<_>>(),
        setup.log_text("a"),
        setup.log_text("b")
    );
}

/// `check` names the alert topic and each sink's delivery group without a broker, and refuses
/// an alert topic that is also an input.
#[test]
fn check_names_the_alert_topic_and_the_delivery_groups_without_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let check = |topics: &str| {
        let path = dir.path().join("alerts.toml");
        std::fs::write(
            &path,
            format!(
                "[source]\nkind = \"kafka\"\nbrokers = \"127.0.0.1:9\"\ntopics = [{topics}]\ngroup_id = \"aw\"\n[source.scale_out]\nalert_topic = true\n[rules]\ndir = \"{}\"\n[[sink]]\nkind = \"webhook\"\nurl = \"https://h.example/x\"\n[[sink]]\nname = \"siem\"\nkind = \"webhook\"\nurl = \"https://s.example/x\"\n",
                rules_dir().display()
            ),
        )
        .unwrap();
        authwatch(&["check", "--config", path.to_str().unwrap()], b"")
    };
    let out = check("\"auth\"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        said.contains("alerts go through the topic aw-alerts, delivered by the consumer groups aw-deliver-webhook, aw-deliver-siem"),
        "{said}"
    );
    let out = check("\"auth\", \"aw-alerts\"");
    assert_eq!(out.status.code(), Some(78));
    assert!(
        stderr(&out).contains("`aw-alerts`, which must not also be an input"),
        "{}",
        stderr(&out)
    );
}
