//! Ingest throughput over HTTP: starts a (release-built) daemon with `[source] kind = "http"`
//! and the default rule pack, posts synthetic native events in batches from concurrent
//! clients (retrying on 503 as `Retry-After` asks, after a short pause), stops it with SIGTERM
//! and prints events/s: accepted (handed to the detection queue) and processed (until the
//! daemon has run every accepted event through the engine and exited).
//!
//! ```sh
//! cargo build --release && cargo run --release --example http_ingest_load -- \
//!     [--batches 400] [--batch-size 500] [--concurrency 8] [--binary target/release/authwatch]
//! ```

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use authwatch::synth::{Traffic, to_json_lines};

const TOKEN: &str = "load-test-token";
/// Pause before re-posting a batch the daemon refused with 503. Shorter than the
/// `Retry-After: 1` it sends, so the measurement sees capacity rather than the back-off.
const RETRY_PAUSE: Duration = Duration::from_millis(5);

struct Options {
    batches: usize,
    batch_size: usize,
    concurrency: usize,
    binary: PathBuf,
}

fn options() -> Options {
    let mut o = Options {
        batches: 400,
        batch_size: 500,
        concurrency: 8,
        binary: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/authwatch"),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).expect("every option takes a value");
        match pair[0].as_str() {
            "--batches" => o.batches = value.parse().expect("--batches N"),
            "--batch-size" => o.batch_size = value.parse().expect("--batch-size M"),
            "--concurrency" => o.concurrency = value.parse().expect("--concurrency C"),
            "--binary" => o.binary = value.into(),
            other => panic!("unknown option {other}"),
        }
    }
    o
}

/// The synthetic traffic, as JSON-array bodies of `batch_size` events each.
fn bodies(o: &Options) -> Vec<String> {
    let events = Traffic::default().generate(o.batches * o.batch_size);
    let lines = String::from_utf8(to_json_lines(&events)).expect("JSON is UTF-8");
    let lines: Vec<&str> = lines.lines().collect();
    lines
        .chunks(o.batch_size)
        .map(|chunk| format!("[{}]", chunk.join(",")))
        .collect()
}

fn start_daemon(binary: &Path, dir: &Path) -> (Child, String) {
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let token = dir.join("token");
    std::fs::write(&token, TOKEN).unwrap();
    let rules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules");
    let config = format!(
        "[source]\nkind = \"http\"\ntoken_file = \"{}\"\n[http]\nlisten = \"{addr}\"\n\
         [state]\ndir = \"{}\"\n[rules]\ndir = \"{}\"\n[[sink]]\nkind = \"file\"\npath = \"{}\"\n",
        token.display(),
        dir.join("state").display(),
        rules.display(),
        dir.join("alerts.jsonl").display(),
    );
    let config_path = dir.join("authwatch.toml");
    std::fs::write(&config_path, config).unwrap();
    let log = std::fs::File::create(dir.join("daemon.log")).unwrap();
    let child = Command::new(binary)
        .args(["run", "--config", config_path.to_str().unwrap()])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; build it with cargo build --release",
                binary.display()
            )
        });
    (child, format!("http://{addr}"))
}

async fn wait_ready(client: &reqwest::Client, base: &str) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let ready = client.get(format!("{base}/readyz")).send().await;
        if ready.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the daemon did not become ready");
}

/// Posts every body, `concurrency` at a time; returns how many 503s were retried.
async fn post_all(
    client: &reqwest::Client,
    base: &str,
    bodies: Vec<String>,
    concurrency: usize,
) -> usize {
    let url = format!("{base}/v1/events");
    let bodies = Arc::new(bodies);
    let next = Arc::new(AtomicUsize::new(0));
    let retries = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, bodies, next, retries) = (
            client.clone(),
            url.clone(),
            bodies.clone(),
            next.clone(),
            retries.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else { return };
                loop {
                    let reply = client
                        .post(&url)
                        .bearer_auth(TOKEN)
                        .body(body.clone())
                        .send()
                        .await
                        .expect("the daemon answers");
                    match reply.status().as_u16() {
                        200 => break,
                        503 => {
                            retries.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(RETRY_PAUSE).await;
                        }
                        other => panic!(
                            "unexpected {other}: {}",
                            reply.text().await.unwrap_or_default()
                        ),
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("a client task");
    }
    retries.load(Ordering::Relaxed)
}

/// The `events` count of the daemon's "authwatch stopped" log line.
fn processed_events(log: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text.lines().find(|l| l.contains("authwatch stopped"))?;
    let json: serde_json::Value = serde_json::from_str(line).ok()?;
    json["events"].as_u64()
}

fn main() {
    let o = options();
    let dir = tempfile::tempdir().unwrap();
    let bodies = bodies(&o);
    let bytes: usize = bodies.iter().map(String::len).sum();
    let total = o.batches * o.batch_size;
    let (mut child, base) = start_daemon(&o.binary, dir.path());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::new();
    runtime.block_on(wait_ready(&client, &base));

    let started = Instant::now();
    let retries = runtime.block_on(post_all(&client, &base, bodies, o.concurrency));
    let accepted_in = started.elapsed();
    // SAFETY: kill(2) on the pid of the child spawned above, not yet reaped.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let processed_in = started.elapsed();
    let processed = processed_events(&dir.path().join("daemon.log"));

    println!(
        "{} batches x {} events ({:.1} MiB of JSON), {} concurrent clients, {retries} retried 503s",
        o.batches,
        o.batch_size,
        bytes as f64 / (1 << 20) as f64,
        o.concurrency
    );
    println!(
        "accepted:  {total} events in {:.2} s = {:.0} events/s",
        accepted_in.as_secs_f64(),
        total as f64 / accepted_in.as_secs_f64()
    );
    println!(
        "processed: {} events by exit ({status}) in {:.2} s = {:.0} events/s",
        processed.map_or("?".to_string(), |n| n.to_string()),
        processed_in.as_secs_f64(),
        total as f64 / processed_in.as_secs_f64()
    );
}
