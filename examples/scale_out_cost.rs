//! Scale-out cost harness: the CPU one `authwatch run` spends per event with and without the
//! repartition hop (`[source.scale_out]`), and the hop's write amplification (bytes produced
//! to the repartition topic per input byte).
//!
//! ```sh
//! cargo build --release --bin authwatch --example scale_out_cost
//! AUTHWATCH_KAFKA_BROKERS=127.0.0.1:9092 target/release/examples/scale_out_cost [EVENTS] [PARTITIONS]
//! ```
//!
//! Events are keyed at random. Each run is one instance with the whole default pack, reading
//! the topic from the start; it is stopped once its group committed every event (through the
//! hop: once detection's group committed every event of the repartition topic), and its CPU
//! (user + system, all threads, from `/proc`) is divided by the events.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use authwatch::synth::Traffic;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const DEFAULT_EVENTS: usize = 200_000;
const DEFAULT_PARTITIONS: i32 = 6;
/// How long a run may take before the harness gives up.
const PATIENCE: Duration = Duration::from_secs(600);

fn main() -> anyhow::Result<()> {
    let brokers = std::env::var("AUTHWATCH_KAFKA_BROKERS")
        .map_err(|_| anyhow::anyhow!("set AUTHWATCH_KAFKA_BROKERS to host:port"))?;
    let mut args = std::env::args().skip(1);
    let events: usize = args.next().map_or(Ok(DEFAULT_EVENTS), |a| a.parse())?;
    let partitions: i32 = args.next().map_or(Ok(DEFAULT_PARTITIONS), |a| a.parse())?;
    let topic = format!("aw-scale-cost-{}", std::process::id());
    create_topic(&brokers, &topic, partitions)?;
    let input_bytes = produce(&brokers, &topic, events, partitions)?;
    println!(
        "topic {topic}: {events} events keyed at random in {partitions} partitions, {:.0} bytes per event (key and value)",
        input_bytes as f64 / events as f64
    );
    for hop in [false, true] {
        let run = run(&brokers, &topic, events, partitions, hop)?;
        let name = if hop { "with the hop" } else { "direct" };
        println!(
            "{name:>13}: {:.2} s CPU, {:.2} us/event, {:.1}s wall{}",
            run.cpu,
            run.cpu * 1e6 / events as f64,
            run.wall,
            match run.hop_bytes {
                Some(b) => format!(
                    ", {b} bytes to the repartition topic ({:.2} per input byte)",
                    b as f64 / input_bytes as f64
                ),
                None => String::new(),
            }
        );
    }
    Ok(())
}

struct Run {
    cpu: f64,
    wall: f64,
    hop_bytes: Option<u64>,
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

/// Produces synthetic traffic keyed at random; returns the key and payload bytes.
fn produce(brokers: &str, topic: &str, events: usize, partitions: i32) -> anyhow::Result<usize> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .create()?;
    let mut bytes = 0;
    let traffic = Traffic {
        tenants: 6,
        ..Traffic::default()
    };
    for (i, e) in traffic.generate(events).into_iter().enumerate() {
        let payload = serde_json::to_vec(&e)?;
        let key = format!("k{}", authwatch::event::fingerprint(&i.to_be_bytes()));
        bytes += payload.len() + key.len();
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
    Ok(bytes)
}

/// One instance reading the whole topic, directly or through the hop.
fn run(
    brokers: &str,
    topic: &str,
    events: usize,
    partitions: i32,
    hop: bool,
) -> anyhow::Result<Run> {
    let dir = tempfile::tempdir()?;
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let group = format!("{topic}-{}", if hop { "hop" } else { "direct" });
    let scale = if hop {
        "[source.scale_out]\nreplication_factor = 1\n"
    } else {
        ""
    };
    let cfg = dir.path().join("authwatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "[source]\nkind = \"kafka\"\nbrokers = \"{brokers}\"\ntopics = [\"{topic}\"]\ngroup_id = \"{group}\"\n{scale}[state]\ndir = \"{}\"\ncheckpoint_interval = \"1s\"\n[rules]\ndir = \"{}\"\n[[sink]]\nkind = \"file\"\npath = \"{}\"\n",
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
    let log = dir.path().join("log.jsonl");
    let started = Instant::now();
    let mut child = Command::new(&bin)
        .args(["run", "--config", cfg.to_str().unwrap_or_default()])
        .env("RUST_LOG", "info,librdkafka=warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run {} ({e}); build it with --bins", bin.display()))?;
    let (done_topic, done_group) = if hop {
        let task_group = format!("{group}-by-tenant");
        (format!("{task_group}-repartition"), task_group)
    } else {
        (topic.to_string(), group.clone())
    };
    let result = await_committed(brokers, &done_topic, &done_group, partitions, events);
    let cpu = cpu_seconds(&child);
    let wall = started.elapsed().as_secs_f64();
    stop(&mut child)?;
    result?;
    let text = std::fs::read_to_string(&log)?;
    let hop_bytes = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "kafka: repartition stopped")
        .and_then(|v| v["bytes"].as_u64());
    Ok(Run {
        cpu: cpu?,
        wall,
        hop_bytes,
    })
}

/// Waits until `group` committed `events` messages of `topic` in all.
fn await_committed(
    brokers: &str,
    topic: &str,
    group: &str,
    partitions: i32,
    events: usize,
) -> anyhow::Result<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()?;
    let deadline = Instant::now() + PATIENCE;
    let mut committed = BTreeMap::new();
    while Instant::now() < deadline {
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        if let Ok(list) = consumer.committed_offsets(tpl, Duration::from_secs(5)) {
            committed = list
                .elements()
                .iter()
                .filter_map(|e| match e.offset() {
                    Offset::Offset(o) => Some((e.partition(), o)),
                    _ => None,
                })
                .collect();
        }
        if committed.values().sum::<i64>() >= events as i64 {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!("{group} never committed {events} events of {topic}: {committed:?}")
}

/// User and system CPU of a running child, all threads, from `/proc/<pid>/stat`.
fn cpu_seconds(child: &Child) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id()))?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow::anyhow!("unexpected /proc stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    let per_second = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0);
    Ok(ticks as f64 / per_second)
}

fn stop(child: &mut Child) -> anyhow::Result<()> {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    let status = child.wait()?;
    anyhow::ensure!(status.success(), "authwatch failed: {status}");
    Ok(())
}
