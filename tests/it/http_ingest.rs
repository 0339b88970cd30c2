//! HTTP ingest against the real daemon: provider batches posted to their routes raise exactly
//! the alerts `replay` raises from the same records; credentials, bodies, sizes and event
//! counts are checked; a flooded route answers 503 with `Retry-After` while the others keep
//! their share; Okta's verification handshake; a SIGKILL after any 200 loses no event. The
//! server's connections: half-open ones do not hold a stop, a connection over the cap is
//! closed, idle ones time out; `/metrics` on its own listener, offender labels opt-in.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::{Daemon, authwatch, free_port, repo, rules_dir, stderr};

const TOKEN: &str = "native-token-0123";
const AUTH0_TOKEN: &str = "auth0-token-4567";
const OKTA_SECRET: &str = "okta-secret-89ab";
/// How long the daemon may take to start, or to raise the alerts of a posted batch (it
/// releases held events a second after input goes quiet; a loaded CI machine is slow).
const PATIENCE: Duration = Duration::from_secs(60);

/// A daemon started on a free port with ingest configured (`support::Daemon`: killed if a
/// test fails midway).
struct IngestDaemon {
    daemon: Daemon,
    addr: SocketAddr,
    alerts: PathBuf,
    config: PathBuf,
    stdout_alerts: bool,
    _dir: tempfile::TempDir,
}

/// What a test adds to the daemon's configuration.
#[derive(Default)]
struct Setup<'a> {
    /// Appended to `[source]`.
    source: &'a str,
    /// Appended to `[http]`.
    http: &'a str,
    /// Appended to `[state]`.
    state: &'a str,
    /// `[daemon]` keys.
    daemon: &'a str,
    /// The rules directory (the default pack when `None`).
    rules: Option<&'a Path>,
    /// `[rules] lateness` (60s when empty).
    lateness: &'a str,
    /// Alerts to a stdout pipe instead of a file.
    stdout_alerts: bool,
}

impl IngestDaemon {
    /// Starts `authwatch run` with file alerts (or stdout alerts, piped, when `stdout_alerts`),
    /// `extra` appended to `[source]` and `lateness` in `[rules]`.
    fn start(extra: &str, rules: &Path, lateness: &str, stdout_alerts: bool) -> IngestDaemon {
        IngestDaemon::start_with(Setup {
            source: extra,
            rules: Some(rules),
            lateness,
            stdout_alerts,
            ..Setup::default()
        })
    }

    fn start_with(setup: Setup) -> IngestDaemon {
        let dir = tempfile::tempdir().unwrap();
        let addr = free_addr();
        let alerts = dir.path().join("alerts.jsonl");
        let sink = if setup.stdout_alerts {
            "kind = \"stdout\"".to_string()
        } else {
            format!("kind = \"file\"\npath = \"{}\"", alerts.display())
        };
        let rules = setup.rules.map_or_else(rules_dir, Path::to_path_buf);
        let lateness = if setup.lateness.is_empty() {
            "60s"
        } else {
            setup.lateness
        };
        let config = format!(
            "[source]\nkind = \"http\"\ntoken_env = \"AW_TEST_TOKEN\"\n\
             auth0_token_env = \"AW_TEST_AUTH0\"\nokta_secret_file = \"{okta}\"\n{extra}\n\
             [http]\nlisten = \"{addr}\"\n{http}\n[state]\ndir = \"{state}\"\n{state_extra}\n\
             [daemon]\n{daemon}\n[rules]\ndir = \"{rules}\"\nlateness = \"{lateness}\"\n\
             [[sink]]\n{sink}\n",
            okta = write(dir.path(), "okta-secret", &format!("{OKTA_SECRET}\n")).display(),
            extra = setup.source,
            http = setup.http,
            state = dir.path().join("state").display(),
            state_extra = setup.state,
            daemon = setup.daemon,
            rules = rules.display(),
        );
        let config = write(dir.path(), "authwatch.toml", &config);
        let mut daemon = IngestDaemon {
            daemon: spawn(&config, setup.stdout_alerts),
            addr,
            alerts,
            config,
            stdout_alerts: setup.stdout_alerts,
            _dir: dir,
        };
        daemon.wait_ready();
        daemon
    }

    /// SIGKILL, then the same daemon (config, state, port) again, ready.
    fn kill_and_restart(&mut self) {
        self.daemon.kill();
        self.daemon = spawn(&self.config, self.stdout_alerts);
        self.wait_ready();
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn wait_ready(&mut self) {
        let client = Client::new();
        let started = Instant::now();
        loop {
            if let Some((status, _)) = self.daemon.exits_within(Duration::ZERO) {
                panic!("the daemon exited while starting: {status}");
            }
            if client
                .send(client.http.get(self.url("/readyz")))
                .is_ok_and(|r| r.status == StatusCode::OK)
            {
                return;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "the daemon never became ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then the exit status.
    fn terminate(&mut self) -> ExitStatus {
        self.daemon.terminate();
        match self.daemon.exits_within(PATIENCE) {
            Some((status, _)) => status,
            None => panic!("the daemon ignored SIGTERM"),
        }
    }

    /// The alerts written so far, as (rule, id); a line still being written is left out.
    fn alerts(&self) -> BTreeSet<(String, String)> {
        let text = std::fs::read_to_string(&self.alerts).unwrap_or_default();
        let complete = text.rfind('\n').map_or("", |end| &text[..=end]);
        rule_ids(complete)
    }
}

fn spawn(config: &Path, stdout_alerts: bool) -> Daemon {
    let mut command = Daemon::command(config);
    command
        .env("RUST_LOG", "warn")
        .env("AW_TEST_TOKEN", TOKEN)
        .env("AW_TEST_AUTH0", AUTH0_TOKEN)
        .stdin(Stdio::null())
        .stdout(if stdout_alerts {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    Daemon::spawn(command, &config.with_extension("log"))
}

fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn rule_ids(jsonl: &str) -> BTreeSet<(String, String)> {
    jsonl
        .lines()
        .map(|l| {
            let alert: Value = serde_json::from_str(l).expect("an alert is JSON");
            (
                alert["rule"].as_str().unwrap().to_string(),
                alert["id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A response, read whole.
struct Reply {
    status: StatusCode,
    retry_after: Option<String>,
    body: Value,
}

/// reqwest (async) driven from plain tests through a small runtime of its own.
struct Client {
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Client {
    fn new() -> Client {
        Client {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            http: reqwest::Client::new(),
        }
    }

    fn send(&self, request: reqwest::RequestBuilder) -> reqwest::Result<Reply> {
        self.runtime.block_on(async {
            let response = request.timeout(PATIENCE).send().await?;
            let status = response.status();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .map(|v| v.to_str().unwrap().to_string());
            let bytes = response.bytes().await?;
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            Ok(Reply {
                status,
                retry_after,
                body,
            })
        })
    }

    fn post(&self, url: &str, header: (&str, &str), body: impl Into<reqwest::Body>) -> Reply {
        self.send(self.http.post(url).header(header.0, header.1).body(body))
            .expect("the daemon answers")
    }
}

fn bearer(token: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {token}"))
}

fn fixture_lines(name: &str) -> Vec<String> {
    std::fs::read_to_string(repo().join("tests/fixtures").join(name))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// What `authwatch replay --format <format>` raises from a fixture, as (rule, id).
fn replayed(format: &str, fixture: &str) -> BTreeSet<(String, String)> {
    let path = repo().join("tests/fixtures").join(fixture);
    let rules = rules_dir();
    let out = authwatch(
        &[
            "replay",
            path.to_str().unwrap(),
            "--format",
            format,
            "--rules",
            rules.to_str().unwrap(),
        ],
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    rule_ids(&String::from_utf8_lossy(&out.stdout))
}

/// Waits for the daemon's alerts to be exactly `want` (they come a second after input goes
/// quiet, when event time follows the wall clock past the lateness).
fn assert_alerts_become(daemon: &IngestDaemon, want: &BTreeSet<(String, String)>) {
    let started = Instant::now();
    loop {
        let got = daemon.alerts();
        if &got == want {
            return;
        }
        if started.elapsed() > PATIENCE || got.len() > want.len() {
            panic!("alerts over HTTP differ from replay's:\n got {got:?}\nwant {want:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn native_auth0_and_okta_batches_raise_the_alerts_replay_raises() {
    for (format, fixture) in [
        ("native", "auth0/attack.native.jsonl"),
        ("auth0", "auth0/attack.jsonl"),
        ("okta", "okta/attack.jsonl"),
    ] {
        let want = replayed(format, fixture);
        let rules: BTreeSet<&str> = want.iter().map(|(r, _)| r.as_str()).collect();
        for required in [
            "brute-force-user",
            "refresh-token-reuse",
            "mfa-denied-repeatedly",
        ] {
            assert!(rules.contains(required), "{format}: {rules:?}");
        }
        let daemon = IngestDaemon::start("", &rules_dir(), "60s", false);
        let client = Client::new();
        let lines = fixture_lines(fixture);
        let (first, second) = lines.split_at(lines.len() / 2);
        // Each route in the shapes its sender uses, over two requests.
        let bodies = match format {
            "native" => [json_array(first), ndjson(second)],
            "auth0" => [json_array(first), ndjson(second)],
            _ => [okta_hook(first), okta_hook(second)],
        };
        let (path, header) = match format {
            "native" => ("/v1/events", bearer(TOKEN)),
            "auth0" => (
                "/v1/ingest/auth0",
                ("Authorization", AUTH0_TOKEN.to_string()),
            ),
            _ => (
                "/v1/ingest/okta",
                ("Authorization", OKTA_SECRET.to_string()),
            ),
        };
        for (body, sent) in bodies.into_iter().zip([first.len(), second.len()]) {
            let reply = client.post(&daemon.url(path), (header.0, &header.1), body);
            assert_eq!(reply.status, StatusCode::OK, "{format}: {}", reply.body);
            assert_eq!(reply.body["accepted"], sent, "{format}");
        }
        assert_alerts_become(&daemon, &want);
    }
}

fn json_array(lines: &[String]) -> String {
    format!("[{}]", lines.join(",\n"))
}

fn ndjson(lines: &[String]) -> String {
    lines.join("\n") + "\n"
}

fn okta_hook(lines: &[String]) -> String {
    format!(
        r#"{{"eventType":"com.okta.event_hook","eventTypeVersion":"1.0","cloudEventsVersion":"0.1","source":"https://acme.okta.com/api/v1/eventHooks/who8vt36qfNpCGz9H1e6","eventId":"b5a188b9-5ece-4636-b041-482ffda96311","data":{{"events":[{}]}},"eventTime":"2026-03-02T14:12:00.000Z","contentType":"application/json"}}"#,
        lines.join(",")
    )
}

#[test]
fn credentials_bodies_sizes_and_the_okta_handshake_are_checked() {
    let daemon = IngestDaemon::start(
        "okta_header = \"X-Hook-Secret\"\nmax_body_bytes = 65536",
        &rules_dir(),
        "60s",
        false,
    );
    let client = Client::new();
    let events = daemon.url("/v1/events");
    let auth0 = daemon.url("/v1/ingest/auth0");
    let okta = daemon.url("/v1/ingest/okta");
    let event = r#"[{"ts":"2026-03-02T09:00:00Z","type":"login.failure","username":"a@x.io"}]"#;

    // Credentials: missing, wrong, or in the wrong header.
    let no_auth = client.send(client.http.post(&events).body(event)).unwrap();
    assert_eq!(no_auth.status, StatusCode::UNAUTHORIZED);
    for (url, header, value) in [
        (&events, "Authorization", format!("Bearer {AUTH0_TOKEN}")),
        (&events, "Authorization", TOKEN.to_string()),
        (&auth0, "Authorization", format!("{AUTH0_TOKEN}x")),
        (&okta, "Authorization", OKTA_SECRET.to_string()),
        (&okta, "X-Hook-Secret", TOKEN.to_string()),
    ] {
        let reply = client.post(url, (header, &value), event);
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{url} {header}: {value}"
        );
        assert!(reply.body["error"].as_str().unwrap().contains("credential"));
    }

    // Bodies that are not batches: 400 with the reason.
    for (url, header, body, says) in [
        (&events, bearer(TOKEN), "not json", "JSON array"),
        (&events, bearer(TOKEN), "[{\"ts\":", "not a JSON array"),
        (&events, bearer(TOKEN), "", "empty"),
        (
            &auth0,
            ("Authorization", AUTH0_TOKEN.into()),
            "{\"log_id\": ",
            "NDJSON",
        ),
        (
            &okta,
            ("X-Hook-Secret", OKTA_SECRET.into()),
            "{\"events\": []}",
            "data",
        ),
    ] {
        let reply = client.post(url, (header.0, &header.1), body);
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{url}: {body}");
        let reason = reply.body["error"].as_str().unwrap();
        assert!(reason.contains(says), "{url}: {body}: {reason}");
    }

    // A valid batch with a bad event in it is accepted whole; the bad one is the pipeline's
    // bad input.
    let mixed = format!("[{},{{\"nope\":1}}]", &event[1..event.len() - 1]);
    let (h, v) = bearer(TOKEN);
    let reply = client.post(&events, (h, &v), mixed);
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["accepted"], 2);

    // Over max_body_bytes: 413.
    let big = format!("[{}]", vec![&event[1..event.len() - 1]; 1000].join(","));
    assert!(big.len() > 65536);
    let reply = client.post(&events, (h, &v), big);
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);

    // Okta's one-time verification echoes the challenge.
    let challenge = "5fJ4-8ksWFOyC6Hx-dTfOPMkDCP6CXdjXB2QDOQBKQg";
    let reply = client
        .send(
            client
                .http
                .get(&okta)
                .header("X-Okta-Verification-Challenge", challenge),
        )
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, serde_json::json!({ "verification": challenge }));
    let reply = client.send(client.http.get(&okta)).unwrap();
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);

    let mut daemon = daemon;
    assert!(daemon.terminate().success());
}

/// 2026-03-02T09:00:00Z. Each failure is a millisecond after the one before: with no lateness,
/// an event at the same time as one already judged but ordered before it would be late.
const FIRST_TS_MS: i64 = 1_772_442_000_000;

fn failures(from: usize, n: usize) -> String {
    let events: Vec<String> = (from..from + n)
        .map(|i| {
            format!(
                r#"{{"ts":{},"type":"login.failure","username":"user{i}@x.io"}}"#,
                FIRST_TS_MS + i as i64
            )
        })
        .collect();
    format!("[{}]", events.join(","))
}

#[test]
fn a_flood_on_one_route_is_refused_while_the_others_keep_their_share() {
    // Three routes share a queue of three batches: one each. Eight clients flood the native
    // route with large batches; it answers 503 + Retry-After once its one place is taken,
    // while every Auth0 delivery in the meantime is accepted.
    let mut daemon = IngestDaemon::start_with(Setup {
        source: "queue_batches = 3\nack_timeout = \"60s\"",
        lateness: "0s",
        ..Setup::default()
    });
    let url = daemon.url("/v1/events");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooders: Vec<_> = (0..8)
        .map(|t| {
            let (url, stop) = (url.clone(), stop.clone());
            std::thread::spawn(move || {
                let client = Client::new();
                let (h, v) = bearer(TOKEN);
                let mut refused = Vec::new();
                for round in 0..400 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let body = failures((t * 400 + round) * 2000, 2000);
                    let reply = client.post(&url, (h, &v), body);
                    match reply.status {
                        StatusCode::OK => {}
                        StatusCode::SERVICE_UNAVAILABLE => refused.push(reply),
                        other => panic!("unexpected {other}: {}", reply.body),
                    }
                }
                refused
            })
        })
        .collect();
    let client = Client::new();
    let auth0 = daemon.url("/v1/ingest/auth0");
    let started = Instant::now();
    let mut delivered = 0;
    while delivered < 10 {
        assert!(started.elapsed() < PATIENCE, "the flood never ended");
        let event = r#"{"type":"f","date":"2026-03-02T09:00:00Z","user_name":"a@x.io"}"#;
        let reply = client.post(&auth0, ("Authorization", AUTH0_TOKEN), event);
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "auth0 during the flood: {}",
            reply.body
        );
        delivered += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let refused: Vec<Reply> = flooders
        .into_iter()
        .flat_map(|f| f.join().unwrap())
        .collect();
    let first = refused.first().expect("the flooded route answered 503");
    assert_eq!(first.retry_after.as_deref(), Some("1"));
    assert!(
        first.body["error"].as_str().unwrap().contains("share"),
        "{}",
        first.body
    );

    // A body of tiny elements is refused by count before it becomes a million records.
    let tiny = format!("[{}]", vec!["{}"; 1_300_000].join(","));
    assert!(tiny.len() < 4 << 20);
    let (h, v) = bearer(TOKEN);
    let reply = client.post(&url, (h, &v), tiny);
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        reply.body["error"]
            .as_str()
            .unwrap()
            .contains("max_events_per_body"),
        "{}",
        reply.body
    );
    assert!(daemon.terminate().success());
}

/// Five failed logins of one user: a threshold the daemon reaches only if it keeps every
/// acknowledged event across crashes.
const FIVE_FAILURES: &str = "id: five-failures\ntitle: Five failed logins\n\
    description: For tests.\nseverity: low\n\
    runbook: https://runbooks.example.com/five-failures\nkind: threshold\n\
    match:\n  type: login.failure\ngroup_by: [username]\nwindow: 1h\nthreshold: 5\n";

#[test]
fn a_sigkill_right_after_any_200_loses_no_event() {
    let rules = tempfile::tempdir().unwrap();
    write(rules.path(), "five-failures.yaml", FIVE_FAILURES);
    // Checkpoints on the interval would come too late: only the acknowledgement's own
    // checkpoint can keep an event across the SIGKILL that follows its 200.
    let mut daemon = IngestDaemon::start_with(Setup {
        state: "checkpoint_interval = \"1h\"",
        rules: Some(rules.path()),
        lateness: "0s",
        ..Setup::default()
    });
    let (h, v) = bearer(TOKEN);
    for round in 0..5 {
        // A new client each time: a pooled connection would be to the killed process.
        let client = Client::new();
        // Stamped now: on restart, event time may jump to the wall clock.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let event = format!(r#"[{{"ts":{now},"type":"login.failure","username":"victim@x.io"}}]"#);
        let reply = client.post(&daemon.url("/v1/events"), (h, &v), event);
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "round {round}: {}",
            reply.body
        );
        daemon.kill_and_restart();
    }
    let started = Instant::now();
    while !daemon
        .alerts()
        .iter()
        .any(|(rule, _)| rule == "five-failures")
    {
        assert!(
            started.elapsed() < PATIENCE,
            "acknowledged events were lost: no alert after five failures"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn http_ingest_needs_a_listen_address_and_its_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "authwatch.toml",
        "[source]\nkind = \"http\"\ntoken_env = \"AW_TEST_SURELY_UNSET\"\nformat = \"okta\"\n",
    );
    let out = authwatch(&["check", "--config", config.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(78));
    let err = stderr(&out);
    for says in [
        "AW_TEST_SURELY_UNSET",
        "[http] listen",
        "format does not apply",
    ] {
        assert!(err.contains(says), "{says}: {err}");
    }
}

/// Opens a connection and sends `bytes` on it.
fn connect_and_send(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("the daemon accepts");
    stream.write_all(bytes).unwrap();
    stream
}

/// Reads until the peer closes (or `within` passes): what was read, and whether it closed.
fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (String::from_utf8_lossy(&got).into_owned(), true);
            }
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
        }
    }
}

const HALF_A_HEAD: &[u8] = b"POST /v1/events HTTP/1.1\r\nHost: authwatch\r\nContent-Le";

#[test]
fn idle_half_open_connections_do_not_hold_a_stop() {
    // Timeouts far beyond the test: only the stop itself may close these connections.
    let mut daemon = IngestDaemon::start_with(Setup {
        http: "header_timeout = \"1h\"\nidle_timeout = \"1h\"",
        daemon: "shutdown_timeout = \"2s\"",
        ..Setup::default()
    });
    let mut held: Vec<TcpStream> = (0..200)
        .map(|_| connect_and_send(daemon.addr, HALF_A_HEAD))
        .collect();
    // And requests being answered: head whole, body half sent; these wait for the bound.
    let busy_head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: authwatch\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Length: 1000\r\n\r\n[{{\"ts\":"
    );
    held.extend((0..5).map(|_| connect_and_send(daemon.addr, busy_head.as_bytes())));
    // Every one of them is accepted once a request after them is answered.
    let client = Client::new();
    let health = client
        .send(client.http.get(daemon.url("/healthz")))
        .unwrap();
    assert_eq!(health.status, StatusCode::OK);

    let started = Instant::now();
    assert!(daemon.terminate().success());
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2 + 6),
        "the stop took {took:?}, beyond shutdown_timeout (2s) and some slack"
    );
    for stream in &mut held {
        assert!(read_until_closed(stream, Duration::from_secs(5)).1);
    }
}

#[test]
fn a_connection_over_the_cap_is_closed_and_idle_ones_time_out() {
    let daemon = IngestDaemon::start_with(Setup {
        http: "max_connections = 20\nheader_timeout = \"4s\"\nidle_timeout = \"6s\"",
        ..Setup::default()
    });
    // A keep-alive connection that was answered once, then says nothing.
    let get = b"GET /healthz HTTP/1.1\r\nHost: authwatch\r\n\r\n";
    let mut kept = connect_and_send(daemon.addr, get);
    kept.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut answer = [0; 512];
    let n = kept.read(&mut answer).unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"));
    let idle_from = Instant::now();
    // Nineteen more with half a head: the cap of twenty is reached.
    let mut half_open: Vec<TcpStream> = (0..19)
        .map(|_| connect_and_send(daemon.addr, HALF_A_HEAD))
        .collect();
    let mut over = connect_and_send(daemon.addr, get);
    let (said, closed) = read_until_closed(&mut over, Duration::from_secs(3));
    assert!(
        closed && said.is_empty(),
        "a connection over the cap was served: {said:?}"
    );
    // The half-open ones are closed after header_timeout; then /healthz answers again.
    for stream in &mut half_open {
        let (said, closed) = read_until_closed(stream, PATIENCE);
        assert!(closed, "a half-open connection was kept: {said:?}");
    }
    let started = Instant::now();
    loop {
        let mut probe = connect_and_send(daemon.addr, get);
        let (said, _) = read_until_closed(&mut probe, Duration::from_secs(1));
        if said.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "/healthz never answered again"
        );
    }
    // The answered connection is closed after idle_timeout, not header_timeout.
    let (_, closed) = read_until_closed(&mut kept, PATIENCE);
    assert!(closed);
    let idle = idle_from.elapsed();
    assert!(idle >= Duration::from_secs(5), "closed after {idle:?}");
}

/// `/metrics` as text.
fn metrics_text(client: &Client, url: &str) -> (StatusCode, String) {
    client.runtime.block_on(async {
        let response = client.http.get(url).send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    })
}

#[test]
fn metrics_listen_keeps_metrics_apart_and_offender_labels_are_opt_in() {
    for offenders in [false, true] {
        let metrics_addr = free_addr();
        let http =
            format!("metrics_listen = \"{metrics_addr}\"\nmetrics_top_offenders = {offenders}");
        let mut daemon = IngestDaemon::start_with(Setup {
            http: &http,
            lateness: "0s",
            ..Setup::default()
        });
        let client = Client::new();
        let (status, _) = metrics_text(&client, &daemon.url("/metrics"));
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "/metrics on the ingest listener"
        );
        let events = r#"[
            {"ts":"2026-03-02T09:00:00Z","type":"login.failure","username":"offender@x.io","ip":"203.0.113.77"},
            {"ts":"2026-03-02T09:00:01Z","type":"mfa.failure","username":"a@x.io","factor":"push","reason":"pigeon-1234"}
        ]"#;
        let (h, v) = bearer(TOKEN);
        let reply = client.post(&daemon.url("/v1/events"), (h, &v), events);
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let url = format!("http://{metrics_addr}/metrics");
        let started = Instant::now();
        let text = loop {
            let (status, text) = metrics_text(&client, &url);
            assert_eq!(status, StatusCode::OK);
            if text.contains("type=\"mfa.failure\"} 1") {
                break text;
            }
            assert!(started.elapsed() < PATIENCE, "events never counted: {text}");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            text.contains("authwatch_mfa_failures_total{factor=\"push\",reason=\"other\"} 1"),
            "{text}"
        );
        assert!(!text.contains("pigeon"), "{text}");
        for personal in ["offender@x.io", "203.0.113.77"] {
            assert_eq!(text.contains(personal), offenders, "{personal}: {text}");
        }
        assert!(daemon.terminate().success());
    }
}
