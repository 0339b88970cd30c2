//! What the sink tests share: a rules directory with two match rules, events that fire them,
//! a daemon driven through stdin and stopped with SIGTERM (`support::Daemon`), an HTTP receiver (axum on
//! 127.0.0.1) that records requests and answers as scripted, and polling with a deadline.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

pub use crate::support::{Daemon, free_port};

/// Rule ids the test rules use: a high one on `token.reuse`, a critical one on
/// `impersonation.start`, both one alert per event.
pub const HIGH_RULE: &str = "token-reuse-test";
pub const CRITICAL_RULE: &str = "impersonation-test";

/// A rules directory with the two test rules and their runbook.
pub fn rules(dir: &Path) -> PathBuf {
    let rules = dir.join("rules");
    std::fs::create_dir_all(rules.join("runbooks")).unwrap();
    for (id, severity, ty) in [
        (HIGH_RULE, "high", "token.reuse"),
        (CRITICAL_RULE, "critical", "impersonation.start"),
    ] {
        std::fs::write(
            rules.join(format!("{id}.yaml")),
            format!(
                "id: {id}\ntitle: Test rule {id}\ndescription: For the sink tests.\nseverity: {severity}\n\
                 tags: [attack.t1550.001]\nrunbook: token-theft\nkind: match\nmatch:\n  type: {ty}\ngroup_by: [user]\n"
            ),
        )
        .unwrap();
    }
    std::fs::write(
        rules.join("runbooks/token-theft.md"),
        "# Token theft\n\n1. Revoke the user's sessions.\n2. Reset the password.\n",
    )
    .unwrap();
    rules
}

/// An event line: `token.reuse` (or `impersonation.start` when `critical`) by user `u<i>`,
/// an hour ago plus `i` seconds, so that the daemon releases it as soon as it is idle.
pub fn event(i: usize, critical: bool) -> String {
    let ts = chrono::Utc::now().timestamp_millis() - 3_600_000 + i as i64 * 1000;
    let ty = if critical {
        "impersonation.start"
    } else {
        "token.reuse"
    };
    format!(
        "{{\"ts\":{ts},\"type\":\"{ty}\",\"tenant\":\"acme\",\"user\":\"u{i}\",\"username\":\"u{i}@example.com\",\"ip\":\"198.51.100.{}\",\"attrs\":{{\"n\":{i}}}}}\n",
        i % 250
    )
}

/// A configuration: stdin source, state and rules under `dir`, then `rest` (sinks, etc.).
pub fn config(dir: &Path, rest: &str) -> PathBuf {
    let rules = rules(dir);
    let cfg = dir.join("authwatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "[source]\nkind = \"stdin\"\n[state]\ndir = \"{}\"\ncheckpoint_interval = \"100ms\"\n[rules]\ndir = \"{}\"\n{rest}",
            dir.join("state").display(),
            rules.display()
        ),
    )
    .unwrap();
    cfg
}

/// Runs an authwatch command (not the daemon) to completion.
pub fn authwatch(args: &[&str]) -> Output {
    authwatch_with(args, &[])
}

/// The same with environment variables (the secrets a configuration names).
pub fn authwatch_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_authwatch"))
        .args(args)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The JSON lines a command printed.
pub fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Polls `f` every 50 ms until it gives a value; panics with `what` after `timeout`.
pub fn poll<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of an environment variable the CI receivers set, or `None` after printing why
/// the test is skipped.
pub fn receiver_env(names: &[&str]) -> Option<Vec<String>> {
    let mut out = Vec::new();
    for n in names {
        match std::env::var(n) {
            Ok(v) => out.push(v),
            Err(_) => {
                crate::support::skip_unless_ci(&format!(
                    "{n} is not set (.ci/run starts the receivers and sets it)"
                ));
                return None;
            }
        }
    }
    Some(out)
}

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Request {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub at: Instant,
    /// What it was answered (0: no answer yet, or the sender gave up).
    pub status: u16,
}

impl Request {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// A scripted answer.
#[derive(Clone, Debug)]
pub enum Reply {
    Status(u16),
    /// 429 with `Retry-After: <seconds>`.
    TooMany(u64),
    /// No answer for this long (the sender times out first).
    Hang(Duration),
    Json(u16, serde_json::Value),
    /// 307 to this URL (a redirect that keeps the method and body).
    Redirect(String),
}

#[derive(Default)]
struct Shared {
    requests: Vec<Request>,
    scripts: HashMap<String, VecDeque<Reply>>,
    /// Per path, the largest body taken; larger ones are answered 413.
    body_limits: HashMap<String, usize>,
}

/// An HTTP receiver on 127.0.0.1: records every request, answers from the path's script,
/// then as the real service would on success.
pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Receiver {
    pub fn start() -> Receiver {
        Receiver::start_on(0)
    }

    pub fn start_on(port: u16) -> Receiver {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let state = shared.clone();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move { answer(state, method, uri, headers, body).await }
            },
        );
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            addr,
            shared,
            runtime: Some(runtime),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn script(&self, path: &str, replies: Vec<Reply>) {
        self.shared
            .lock()
            .unwrap()
            .scripts
            .insert(path.into(), replies.into());
    }

    /// Answers 413 to every request to `path` whose body is longer than `bytes`.
    pub fn limit_body(&self, path: &str, bytes: usize) {
        self.shared
            .lock()
            .unwrap()
            .body_limits
            .insert(path.into(), bytes);
    }

    pub fn requests(&self, path: &str) -> Vec<Request> {
        self.shared
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Requests to `path` that were answered 2xx.
    pub fn accepted(&self, path: &str) -> Vec<Request> {
        self.requests(path)
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

async fn answer(
    state: Arc<Mutex<Shared>>,
    _method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let reply = {
        let mut s = state.lock().unwrap();
        match s.body_limits.get(&path) {
            Some(&limit) if body.len() > limit => Some(Reply::Status(413)),
            _ => s.scripts.get_mut(&path).and_then(VecDeque::pop_front),
        }
    };
    // Recorded on arrival: a sender that gives up on a hung answer drops the connection, and
    // with it this handler.
    let index = {
        let mut s = state.lock().unwrap();
        s.requests.push(Request {
            path: path.clone(),
            headers,
            body: body.to_vec(),
            at: Instant::now(),
            status: 0,
        });
        s.requests.len() - 1
    };
    let response = match reply {
        Some(Reply::Status(s)) => {
            (StatusCode::from_u16(s).unwrap(), "scripted failure").into_response()
        }
        Some(Reply::TooMany(secs)) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", secs.to_string())],
            "slow down",
        )
            .into_response(),
        Some(Reply::Hang(d)) => {
            tokio::time::sleep(d).await;
            (StatusCode::SERVICE_UNAVAILABLE, "too late").into_response()
        }
        Some(Reply::Json(s, v)) => {
            (StatusCode::from_u16(s).unwrap(), axum::Json(v)).into_response()
        }
        Some(Reply::Redirect(to)) => {
            (StatusCode::TEMPORARY_REDIRECT, [("location", to)], "moved").into_response()
        }
        None => success(&path, &body),
    };
    state.lock().unwrap().requests[index].status = response.status().as_u16();
    response
}

/// What each service answers when it took the request.
fn success(path: &str, body: &[u8]) -> Response {
    if path.ends_with("/_bulk") {
        let n = body
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count()
            / 2;
        let items: Vec<_> = (0..n)
            .map(|_| serde_json::json!({"create": {"status": 201}}))
            .collect();
        axum::Json(serde_json::json!({"errors": false, "items": items})).into_response()
    } else if path.contains("/services/collector") {
        axum::Json(serde_json::json!({"text": "Success", "code": 0})).into_response()
    } else if path.contains("/enqueue") {
        (
            StatusCode::ACCEPTED,
            axum::Json(serde_json::json!({"status": "success", "message": "Event processed"})),
        )
            .into_response()
    } else {
        "ok".into_response()
    }
}

/// The alert ids in a set of webhook requests (one alert per body).
pub fn ids(requests: &[Request]) -> Vec<String> {
    requests
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_string())
        .collect()
}
