//! Kafka throughput harness: produces synthetic events to a fresh topic, then measures a bare
//! rdkafka consumer and `authwatch run` (Kafka source, the whole default rule pack, state
//! checkpoints, offset commits) reading the same topic on the same broker.
//!
//! ```sh
//! cargo build --release --bins --examples
//! AUTHWATCH_KAFKA_BROKERS=127.0.0.1:9092 target/release/examples/kafka_throughput [EVENTS] [PARTITIONS]
//! ```
//!
//! Both rates run from the moment the consumer is given its partitions to the moment the
//! last event is consumed, taken for authwatch from its own log (the assignment line and the
//! end line, which says how long ago the last message came). authwatch's source cannot run
//! ahead of detection by more than the bounded channel between them (16 batches), so its
//! consume rate is its detect rate; every event is checked to have been counted by detection.
//! The bare consumer uses the same librdkafka tuning as authwatch, so the difference is
//! authwatch's own work: decoding, the event-time merge, the whole rule pack, checkpoints
//! and offset commits.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use authwatch::config::KafkaConfig;
use authwatch::config::kafka_client as client;
use authwatch::synth::Traffic;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext, Message};

/// Events produced when no count is given.
const DEFAULT_EVENTS: usize = 1_000_000;
/// Partitions of the topic when not given: several, so the event-time merge is exercised.
const DEFAULT_PARTITIONS: i32 = 4;

fn main() -> anyhow::Result<()> {
    let brokers = std::env::var("AUTHWATCH_KAFKA_BROKERS")
        .map_err(|_| anyhow::anyhow!("set AUTHWATCH_KAFKA_BROKERS to host:port"))?;
    let mut args = std::env::args().skip(1);
    let events: usize = args.next().map_or(Ok(DEFAULT_EVENTS), |a| a.parse())?;
    let partitions: i32 = args.next().map_or(Ok(DEFAULT_PARTITIONS), |a| a.parse())?;
    let topic = format!("aw-throughput-{}", std::process::id());
    create_topic(&brokers, &topic, partitions)?;
    let bytes = produce(&brokers, &topic, events, partitions)?;
    println!(
        "topic {topic}: {events} events in {partitions} partitions, {:.0} bytes per event",
        bytes as f64 / events as f64
    );

    let bare = bare_consumer(&brokers, &topic, events)?;
    println!("bare rdkafka consumer: {:>9.0} events/s", bare);
    let detected = authwatch_run(&brokers, &topic, events)?;
    println!(
        "authwatch run:         {:>9.0} events/s ({:.0}% of bare)",
        detected,
        100.0 * detected / bare
    );
    let bare_again = bare_consumer(&brokers, &topic, events)?;
    println!(
        "bare rdkafka consumer: {:>9.0} events/s (again)",
        bare_again
    );
    Ok(())
}

fn tuning(brokers: &str, topic: &str, group: &str) -> KafkaConfig {
    KafkaConfig {
        brokers: brokers.to_string(),
        topics: vec![topic.to_string()],
        group_id: group.to_string(),
        dead_letter_topic: None,
        tls: None,
        sasl: None,
        properties: Default::default(),
        follow: false,
        idle_partition: Duration::from_secs(1),
        scale_out: None,
    }
}

fn create_topic(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for r in runtime.block_on(admin.create_topics(
        &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
        &AdminOptions::new(),
    ))? {
        r.map_err(|(t, e)| anyhow::anyhow!("cannot create {t}: {e}"))?;
    }
    Ok(())
}

/// Produces synthetic traffic keyed by username; returns the payload bytes.
fn produce(brokers: &str, topic: &str, events: usize, partitions: i32) -> anyhow::Result<usize> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .create()?;
    let started = Instant::now();
    let mut bytes = 0;
    for e in Traffic::default().generate(events) {
        let payload = serde_json::to_vec(&e)?;
        bytes += payload.len();
        let key = e.username.unwrap_or_default();
        let partition = (authwatch::event::fingerprint(key.as_bytes()) % partitions as u64) as i32;
        let mut record = BaseRecord::to(topic)
            .partition(partition)
            .key(key.as_bytes())
            .payload(payload.as_slice());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
    }
    producer.flush(Duration::from_secs(300))?;
    println!("produced in {:.1}s", started.elapsed().as_secs_f64());
    Ok(bytes)
}

/// Records when the partitions are assigned.
struct Assigned(Arc<Mutex<Option<Instant>>>);

impl ClientContext for Assigned {}

impl ConsumerContext for Assigned {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(_) = rebalance {
            self.0.lock().unwrap().get_or_insert_with(Instant::now);
        }
    }
}

/// A bare consumer with authwatch's librdkafka tuning: poll, touch the payload, count.
fn bare_consumer(brokers: &str, topic: &str, events: usize) -> anyhow::Result<f64> {
    let group = format!("{topic}-bare-{}", rand::random::<u32>());
    let assigned = Arc::new(Mutex::new(None));
    let consumer: BaseConsumer<Assigned> = client::consumer_config(&tuning(brokers, topic, &group))
        .create_with_context(Assigned(assigned.clone()))?;
    consumer.subscribe(&[topic])?;
    let mut seen = 0usize;
    let mut bytes = 0usize;
    while seen < events {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            bytes += m?.payload().map_or(0, <[u8]>::len);
            seen += 1;
        }
    }
    let start = assigned
        .lock()
        .unwrap()
        .expect("assigned before any message");
    let seconds = start.elapsed().as_secs_f64();
    std::hint::black_box(bytes);
    Ok(events as f64 / seconds)
}

/// `authwatch run` on the topic with `follow = false`, the default rule pack, a file sink.
fn authwatch_run(brokers: &str, topic: &str, events: usize) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let cfg = dir.path().join("authwatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "[source]\nkind = \"kafka\"\nbrokers = \"{brokers}\"\ntopics = [\"{topic}\"]\ngroup_id = \"{topic}-authwatch\"\nfollow = false\n[state]\ndir = \"{}\"\n[rules]\ndir = \"{}\"\n[[sink]]\nkind = \"file\"\npath = \"{}\"\n",
            dir.path().join("state").display(),
            repo.join("rules").display(),
            dir.path().join("alerts.jsonl").display(),
        ),
    )?;
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .and_then(|examples| examples.parent())
        .map(|profile| profile.join("authwatch"))
        .ok_or_else(|| anyhow::anyhow!("cannot find the authwatch binary"))?;
    let mut child = Command::new(&bin)
        .args(["run", "--config", cfg.to_str().unwrap_or_default()])
        .env("RUST_LOG", "info,librdkafka=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run {} ({e}); build it with --bins", bin.display()))?;
    let stderr = child.stderr.take().expect("piped");
    let mut assigned = None;
    let mut last_message = None;
    let mut counted = None;
    for line in BufReader::new(stderr).lines() {
        let line = line?;
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let field = |name: &str| match &v[name] {
            serde_json::Value::Null => v["fields"][name].clone(),
            other => other.clone(),
        };
        let at = v["timestamp"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        match field("message").as_str() {
            Some("kafka: partitions assigned") if assigned.is_none() => assigned = at,
            Some("kafka: the assigned partitions are read to their end") => {
                let since_last = field("seconds_since_last").as_f64().unwrap_or(0.0);
                last_message =
                    at.map(|t| t - chrono::Duration::microseconds((since_last * 1e6) as i64));
            }
            Some("authwatch stopped") => counted = field("events").as_u64(),
            _ => {}
        }
    }
    let status = child.wait()?;
    anyhow::ensure!(status.success(), "authwatch failed: {status}");
    anyhow::ensure!(
        counted == Some(events as u64),
        "authwatch counted {counted:?} events, expected {events}"
    );
    let (Some(start), Some(end)) = (assigned, last_message) else {
        anyhow::bail!("authwatch did not log its assignment and its end");
    };
    let seconds = (end - start).num_microseconds().unwrap_or(0) as f64 / 1e6;
    let alerts = std::fs::read_to_string(dir.path().join("alerts.jsonl"))?
        .lines()
        .count();
    println!("authwatch: {events} events, {alerts} alerts in {seconds:.2}s");
    Ok(events as f64 / seconds)
}
