//! `[source] kind = "okta_api"` and `"auth0_api"` against fake provider APIs (axum on
//! 127.0.0.1) that page as Okta's System Log (`since`, `after`, `Link` headers) and Auth0's
//! Management API logs (`from`, `take`, `Link`) do, check the token, rate-limit with 429 and
//! the providers' reset headers, and fail with 5xx: the provider fixtures served through them
//! raise exactly the alerts `replay --format okta|auth0` raises from the same files, through
//! failures, throttling and restarts (SIGTERM and SIGKILL) that lose and duplicate nothing.

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::sinks_harness::{Daemon, poll};
use crate::support::{repo, rules_dir};

const TOKEN: &str = "test-api-token-5f1d9c";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Api {
    Okta,
    Auth0,
}

impl Api {
    fn kind(self) -> &'static str {
        match self {
            Api::Okta => "okta_api",
            Api::Auth0 => "auth0_api",
        }
    }

    fn format(self) -> &'static str {
        match self {
            Api::Okta => "okta",
            Api::Auth0 => "auth0",
        }
    }

    fn fixture(self) -> PathBuf {
        repo().join(format!("tests/fixtures/{}/attack.jsonl", self.format()))
    }
}

/// A scripted answer to one request, instead of a page.
#[derive(Clone, Copy, Debug)]
enum Fault {
    Status(u16),
    /// 429 with the provider's rate-limit headers: the window resets in this many seconds.
    RateLimited(u64),
    /// A page, but with `Remaining: 0` and a reset in this many seconds.
    LastInWindow(u64),
}

/// A log event as the fake serves it: its bytes as written in the fixture (so each record's
/// fingerprint, hence every alert id, is what replay computes), its id and time.
struct Record {
    raw: String,
    id: String,
    published_ms: i64,
}

/// One request the fake answered.
#[derive(Clone, Debug)]
struct Seen {
    query: String,
    at: SystemTime,
    status: u16,
    /// The reset (epoch seconds) a rate-limited answer named.
    reset: Option<u64>,
    /// The records served: indexes `start..end`.
    start: usize,
    end: usize,
}

struct State {
    api: Api,
    records: Vec<Record>,
    /// Records the API has so far; the rest "happen" later.
    available: usize,
    faults: VecDeque<Option<Fault>>,
    delay: Duration,
    seen: Vec<Seen>,
    /// Requests with a wrong or missing Authorization header.
    unauthorized: usize,
}

struct FakeApi {
    base: String,
    state: Arc<Mutex<State>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl FakeApi {
    fn start(api: Api, lines: &[String]) -> FakeApi {
        let records = lines.iter().map(|l| record(api, l)).collect::<Vec<_>>();
        let state = Arc::new(Mutex::new(State {
            api,
            available: records.len(),
            records,
            faults: VecDeque::new(),
            delay: Duration::ZERO,
            seen: Vec::new(),
            unauthorized: 0,
        }));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shared = state.clone();
        let origin = base.clone();
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
            let state = shared.clone();
            let origin = origin.clone();
            async move { answer(state, &origin, uri, headers).await }
        });
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeApi {
            base,
            state,
            runtime: Some(runtime),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    fn seen(&self) -> Vec<Seen> {
        self.with(|s| s.seen.clone())
    }

    /// The furthest record served so far.
    fn served_up_to(&self) -> usize {
        self.with(|s| s.seen.iter().map(|r| r.end).max().unwrap_or(0))
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn record(api: Api, line: &str) -> Record {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let (id, ts) = match api {
        Api::Okta => (v["uuid"].clone(), v["published"].clone()),
        Api::Auth0 => {
            let inner = if v["data"].is_object() {
                &v["data"]
            } else {
                &v
            };
            let id = v.get("log_id").unwrap_or(&inner["log_id"]).clone();
            (id, inner["date"].clone())
        }
    };
    Record {
        raw: line.to_string(),
        id: id.as_str().unwrap().to_string(),
        published_ms: millis(ts.as_str().unwrap()),
    }
}

fn millis(ts: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(ts)
        .unwrap()
        .timestamp_millis()
}

fn epoch_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn answer(state: Arc<Mutex<State>>, origin: &str, uri: Uri, headers: HeaderMap) -> Response {
    let delay = state.lock().unwrap().delay;
    tokio::time::sleep(delay).await;
    let mut s = state.lock().unwrap();
    let query = uri.query().unwrap_or("").to_string();
    let mut seen = Seen {
        query: query.clone(),
        at: SystemTime::now(),
        status: 200,
        reset: None,
        start: 0,
        end: 0,
    };
    let response = serve(&mut s, origin, &uri, &headers, &mut seen);
    seen.status = response.status().as_u16();
    s.seen.push(seen);
    response
}

fn error(status: u16, body: serde_json::Value) -> Response {
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

/// Answers one request as the provider documents it.
fn serve(s: &mut State, origin: &str, uri: &Uri, headers: &HeaderMap, seen: &mut Seen) -> Response {
    let api = s.api;
    let (path, scheme) = match api {
        Api::Okta => ("/api/v1/logs", "SSWS"),
        Api::Auth0 => ("/api/v2/logs", "Bearer"),
    };
    if uri.path() != path {
        return error(404, serde_json::json!({"error": "not found"}));
    }
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some(&format!("{scheme} {TOKEN}")) {
        s.unauthorized += 1;
        return match api {
            Api::Okta => error(
                401,
                serde_json::json!({"errorCode": "E0000011", "errorSummary": "Invalid token provided"}),
            ),
            Api::Auth0 => error(
                401,
                serde_json::json!({"statusCode": 401, "error": "Unauthorized", "message": "Invalid token"}),
            ),
        };
    }
    let (limit_h, remaining_h, reset_h) = match api {
        Api::Okta => (
            "x-rate-limit-limit",
            "x-rate-limit-remaining",
            "x-rate-limit-reset",
        ),
        Api::Auth0 => (
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
        ),
    };
    let fault = s.faults.pop_front().flatten();
    let mut remaining = 50;
    let mut reset = epoch_secs() + 60;
    match fault {
        Some(Fault::Status(code)) => {
            return match api {
                Api::Okta => error(
                    code,
                    serde_json::json!({"errorCode": "E0000009", "errorSummary": "Internal Server Error"}),
                ),
                Api::Auth0 => error(
                    code,
                    serde_json::json!({"statusCode": code, "error": "Internal Server Error", "message": "Internal error"}),
                ),
            };
        }
        Some(Fault::RateLimited(secs)) => {
            let reset = epoch_secs() + secs;
            seen.reset = Some(reset);
            let body = match api {
                Api::Okta => serde_json::json!({"errorCode": "E0000047",
                    "errorSummary": "API call exceeded rate limit due to too many requests."}),
                Api::Auth0 => serde_json::json!({"statusCode": 429, "error": "Too Many Requests",
                    "message": "Global limit has been reached", "errorCode": "too_many_requests"}),
            };
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [
                    (limit_h, "50".to_string()),
                    (remaining_h, "0".to_string()),
                    (reset_h, reset.to_string()),
                ],
                axum::Json(body),
            )
                .into_response();
        }
        Some(Fault::LastInWindow(secs)) => {
            remaining = 0;
            reset = epoch_secs() + secs;
            seen.reset = Some(reset);
        }
        None => {}
    }
    let params: Vec<(String, String)> = reqwest::Url::parse(&format!("{origin}{uri}"))
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let available = s.available;
    let (start, size, link) = match api {
        Api::Okta => {
            let limit: usize = param("limit").map_or(100, |v| v.parse().unwrap());
            if limit > 1000 {
                return error(
                    400,
                    serde_json::json!({"errorCode": "E0000001", "errorSummary": "Api validation failed: limit"}),
                );
            }
            let start = match (param("after"), param("since")) {
                (Some(after), _) => after.trim_start_matches('c').parse().unwrap(),
                (None, Some(since)) => {
                    let since = millis(&since);
                    s.records[..available]
                        .iter()
                        .position(|r| r.published_ms >= since)
                        .unwrap_or(available)
                }
                (None, None) => 0,
            };
            let end = (start + limit).min(available);
            // A polling query (no `until`) always links to its continuation.
            let link = format!(
                "<{origin}{path}?limit={limit}&sortOrder=ASCENDING&after=c{end}>; rel=\"next\""
            );
            (start, limit, Some(link))
        }
        Api::Auth0 => match param("from") {
            Some(from) => {
                let take: usize = param("take").map_or(50, |v| v.parse().unwrap());
                if take > 100 {
                    return error(
                        400,
                        serde_json::json!({"statusCode": 400, "error": "Bad Request", "message": "take must be at most 100"}),
                    );
                }
                let Some(at) = s.records.iter().position(|r| r.id == from) else {
                    return error(
                        400,
                        serde_json::json!({"statusCode": 400, "error": "Bad Request", "message": "Invalid log_id"}),
                    );
                };
                let end = (at + 1 + take).min(available);
                let last = if end > at + 1 {
                    &s.records[end - 1].id
                } else {
                    &from
                };
                let link = format!("<{origin}{path}?from={last}&take={take}>; rel=\"next\"");
                (at + 1, take, Some(link))
            }
            // Search mode: a numbered page, no checkpoint link.
            None => {
                let per_page: usize = param("per_page").map_or(50, |v| v.parse().unwrap());
                let page: usize = param("page").map_or(0, |v| v.parse().unwrap());
                (page * per_page, per_page, None)
            }
        },
    };
    let start = start.min(available);
    let end = (start + size).min(available);
    seen.start = start;
    seen.end = end;
    let body = format!(
        "[{}]",
        s.records[start..end]
            .iter()
            .map(|r| r.raw.as_str())
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut response = (
        StatusCode::OK,
        [
            ("content-type", "application/json".to_string()),
            (limit_h, "50".to_string()),
            (remaining_h, remaining.to_string()),
            (reset_h, reset.to_string()),
        ],
        body,
    )
        .into_response();
    if let Some(link) = link {
        let self_link = format!("<{origin}{uri}>; rel=\"self\"");
        response
            .headers_mut()
            .append("link", self_link.parse().unwrap());
        response.headers_mut().append("link", link.parse().unwrap());
    }
    response
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// The alert ids `replay --format` gives for these lines.
fn replayed(dir: &Path, api: Api, lines: &[String]) -> BTreeSet<String> {
    let input = dir.join(format!("replay-{}.jsonl", api.format()));
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let out = crate::sinks_harness::authwatch(&[
        "replay",
        "--format",
        api.format(),
        "--rules",
        rules_dir().to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ids: BTreeSet<String> = crate::sinks_harness::json_lines(&out)
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.len() >= 3, "the attack raises alerts: {ids:?}");
    ids
}

/// The polling settings of most tests: fast polls, short backoff.
const FAST: &str = "poll_interval = \"200ms\"\nmax_backoff = \"2s\"\nrequest_timeout = \"5s\"\n";

fn config(dir: &Path, api: Api, fake: &FakeApi, page_size: usize) -> PathBuf {
    config_with(dir, api, fake, page_size, FAST)
}

/// A configuration pulling from `fake` with `tuning` (poll, backoff and bound keys), the
/// token in a file, and alerts in `alerts.jsonl`.
fn config_with(dir: &Path, api: Api, fake: &FakeApi, page_size: usize, tuning: &str) -> PathBuf {
    let token = dir.join("token");
    if !token.exists() {
        std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    }
    let cfg = dir.join("authwatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "[source]\nkind = \"{}\"\nurl = \"{}\"\ntoken_file = \"{}\"\npage_size = {page_size}\n\
             {tuning}[state]\ndir = \"{}\"\ncheckpoint_interval = \"100ms\"\n[rules]\ndir = \"{}\"\n\
             [[sink]]\nkind = \"file\"\npath = \"{}\"\n",
            api.kind(),
            fake.base,
            token.display(),
            dir.join("state").display(),
            rules_dir().display(),
            dir.join("alerts.jsonl").display(),
        ),
    )
    .unwrap();
    cfg
}

fn alert_ids(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("alerts.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// Waits until the alert file holds every expected id (alerts come out once the source has
/// caught up and event time follows the wall clock).
fn wait_for_alerts(dir: &Path, expected: &BTreeSet<String>, daemon: &Daemon) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: BTreeSet<String> = alert_ids(dir).into_iter().collect();
        if expected.is_subset(&got) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "missing alerts {:?}; log:\n{}",
            expected.difference(&got).collect::<Vec<_>>(),
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `duplicates` in the daemon's "authwatch stopped" line: events the engine saw twice.
fn duplicates_at_stop(log: &str) -> u64 {
    let line = log
        .lines()
        .find(|l| l.contains("authwatch stopped"))
        .unwrap_or_else(|| panic!("no stop line in:\n{log}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    v["fields"]["duplicates"]
        .as_u64()
        .or_else(|| v["duplicates"].as_u64())
        .unwrap_or_else(|| panic!("no duplicates field: {line}"))
}

fn stop(daemon: Daemon) -> String {
    let log = daemon.log.clone();
    assert!(daemon.stop().success());
    std::fs::read_to_string(log).unwrap()
}

/// The fixture through the fake API in pages, half of it at first and the rest once that was
/// read (the poll after an empty page), through a 500, a 503, a 429 and a window used up:
/// the alerts are replay's, each request after a throttle waited for the reset, a failed
/// request is asked again after the backoff, and the token is in no log line.
fn same_alerts_as_replay(api: Api, page_size: usize) {
    let dir = tempfile::tempdir().unwrap();
    let fixture = lines(&api.fixture());
    let expected = replayed(dir.path(), api, &fixture);
    let fake = FakeApi::start(api, &fixture);
    let half = fixture.len() / 2;
    fake.with(|s| {
        s.available = half;
        s.faults = [
            None,
            Some(Fault::Status(500)),
            None,
            Some(Fault::RateLimited(1)),
            None,
            Some(Fault::LastInWindow(1)),
            None,
            Some(Fault::Status(503)),
        ]
        .into();
    });
    let cfg = config(dir.path(), api, &fake, page_size);
    let daemon = Daemon::start(&cfg, &[]);
    poll("the first half served", Duration::from_secs(30), || {
        (fake.served_up_to() >= half).then_some(())
    });
    fake.with(|s| s.available = s.records.len());
    wait_for_alerts(dir.path(), &expected, &daemon);
    let log = stop(daemon);

    let got: BTreeSet<String> = alert_ids(dir.path()).into_iter().collect();
    assert_eq!(got, expected, "the alerts replay raises, no more");
    assert_eq!(duplicates_at_stop(&log), 0, "no event handed over twice");
    assert!(!log.contains(TOKEN), "the token is never logged");
    let seen = fake.seen();
    assert_eq!(fake.with(|s| s.unauthorized), 0);
    for (i, r) in seen.iter().enumerate().take(seen.len() - 1) {
        let next = &seen[i + 1];
        if r.status == 429 || r.reset.is_some_and(|_| r.status == 200) {
            let reset = UNIX_EPOCH + Duration::from_secs(r.reset.unwrap());
            assert!(
                next.at >= reset,
                "request {} came before the rate-limit reset: {:?} < {:?}",
                i + 1,
                next.at,
                reset
            );
        }
        if r.status >= 500 {
            assert_eq!(next.query, r.query, "the failed request is asked again");
            let gap = next.at.duration_since(r.at).unwrap();
            assert!(
                gap >= Duration::from_millis(900),
                "backoff after a 5xx: {gap:?}"
            );
        }
    }
    assert!(seen.iter().any(|r| r.status == 429));
    assert!(seen.iter().filter(|r| r.status >= 500).count() == 2);
    if api == Api::Okta {
        assert!(
            seen.iter().any(|r| r.query.contains("after=")),
            "Okta's next links are followed: {seen:?}"
        );
    } else {
        assert!(seen[0].query.contains("per_page"), "{:?}", seen[0]);
        assert!(seen.iter().skip(1).all(|r| r.query.contains("from=")));
    }
}

#[test]
fn okta_api_pages_through_failures_and_throttling_to_replays_alerts() {
    same_alerts_as_replay(Api::Okta, 5);
}

#[test]
fn auth0_api_pages_through_failures_and_throttling_to_replays_alerts() {
    same_alerts_as_replay(Api::Auth0, 4);
}

/// Okta lines in threes sharing one `published` instant, so a page of two ends inside an
/// instant and a restart's inclusive `since` asks for records already handed over.
fn okta_with_shared_instants(fixture: &[String]) -> Vec<String> {
    let mut instant = String::new();
    fixture
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
            if i % 3 == 0 {
                instant = v["published"].as_str().unwrap().to_string();
            }
            v["published"] = instant.clone().into();
            v.to_string()
        })
        .collect()
}

/// Stopped with SIGTERM and SIGKILL at points through the stream and restarted each time, the
/// daemon raises exactly replay's alerts, and no run (among those that stop cleanly and can
/// say) sees an event twice.
fn a_restart_loses_and_duplicates_nothing(api: Api) {
    let dir = tempfile::tempdir().unwrap();
    let mut fixture = lines(&api.fixture());
    if api == Api::Okta {
        fixture = okta_with_shared_instants(&fixture);
    }
    let expected = replayed(dir.path(), api, &fixture);
    let fake = FakeApi::start(api, &fixture);
    fake.with(|s| s.delay = Duration::from_millis(100));
    let cfg = config(dir.path(), api, &fake, 2);
    let n = fixture.len();
    let mut checked = 0;
    for (step, kill) in [(1, false), (2, false), (3, true), (4, false), (5, true)] {
        let asked_before = fake.seen().len();
        let daemon = Daemon::start(&cfg, &[]);
        let target = n * step / 6;
        // Records served to this run (so it has started, signal handlers and all), and the
        // stream past this step's point.
        poll(
            "progress through the stream",
            Duration::from_secs(30),
            || {
                let served_now = fake.seen()[asked_before..].iter().any(|r| r.end > r.start);
                (served_now && fake.served_up_to() >= target).then_some(())
            },
        );
        if kill {
            drop(daemon); // SIGKILL
        } else {
            let log = stop(daemon);
            assert_eq!(duplicates_at_stop(&log), 0, "step {step}: {log}");
            checked += 1;
        }
    }
    let daemon = Daemon::start(&cfg, &[]);
    wait_for_alerts(dir.path(), &expected, &daemon);
    let log = stop(daemon);
    assert_eq!(duplicates_at_stop(&log), 0, "{log}");
    assert_eq!(checked, 3);
    let got: BTreeSet<String> = alert_ids(dir.path()).into_iter().collect();
    assert_eq!(got, expected, "nothing lost, nothing invented");
    // Every start after the first resumed from a stored cursor rather than the beginning.
    let first_requests: Vec<String> = fake
        .seen()
        .iter()
        .map(|r| r.query.clone())
        .filter(|q| !q.contains("after="))
        .collect();
    assert!(
        first_requests
            .iter()
            .skip(1)
            .all(|q| q.contains("since=") || q.contains("from=")),
        "{first_requests:?}"
    );
}

#[test]
fn okta_api_restarts_resume_from_the_stored_cursor() {
    a_restart_loses_and_duplicates_nothing(Api::Okta);
}

#[test]
fn auth0_api_restarts_resume_from_the_stored_cursor() {
    a_restart_loses_and_duplicates_nothing(Api::Auth0);
}

/// An outage in the middle of a backlog (four 503s in a row: 7 s of backoff, longer than the
/// 5 s after which a quiet source counts as caught up and its held events are released) must
/// not make the rest of the backlog late: the source tells detection it is still behind. The
/// first record after the outage is 10 s older than the last before it, as Okta's eventually
/// consistent log may serve them; replay sorts it within the lateness, and so must the daemon.
#[test]
fn an_outage_mid_backlog_makes_nothing_late() {
    let api = Api::Okta;
    let dir = tempfile::tempdir().unwrap();
    let mut fixture = lines(&api.fixture());
    fixture.swap(4, 5);
    let mut older: serde_json::Value = serde_json::from_str(&fixture[5]).unwrap();
    let before: serde_json::Value = serde_json::from_str(&fixture[4]).unwrap();
    let ts = millis(before["published"].as_str().unwrap()) - 10_000;
    older["published"] = chrono::DateTime::from_timestamp_millis(ts)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        .into();
    fixture[5] = older.to_string();
    let expected = replayed(dir.path(), api, &fixture);
    let fake = FakeApi::start(api, &fixture);
    fake.with(|s| {
        s.faults = [
            None,
            Some(Fault::Status(503)),
            Some(Fault::Status(503)),
            Some(Fault::Status(503)),
            Some(Fault::Status(503)),
        ]
        .into();
    });
    let cfg = config(dir.path(), api, &fake, 5);
    let daemon = Daemon::start(&cfg, &[]);
    wait_for_alerts(dir.path(), &expected, &daemon);
    let log = stop(daemon);
    assert!(log.contains("\"late\":0"), "{log}");
    let got: BTreeSet<String> = alert_ids(dir.path()).into_iter().collect();
    assert_eq!(got, expected);
    let seen = fake.seen();
    let outage = seen[5].at.duration_since(seen[1].at).unwrap();
    assert!(outage >= Duration::from_secs(6), "{outage:?}");
}

/// A refused token (401) is retried with backoff and `token_file` read again: once the file
/// holds the right token, the source goes on with nothing lost. Neither token is logged.
#[test]
fn a_refused_token_is_read_again_from_its_file() {
    let api = Api::Auth0;
    let dir = tempfile::tempdir().unwrap();
    let fixture = lines(&api.fixture());
    let expected = replayed(dir.path(), api, &fixture);
    let fake = FakeApi::start(api, &fixture);
    let stale = "stale-token-0a7e3b";
    std::fs::write(dir.path().join("token"), format!("{stale}\n")).unwrap();
    let cfg = config(dir.path(), api, &fake, 10);
    let daemon = Daemon::start(&cfg, &[]);
    poll("a refusal", Duration::from_secs(30), || {
        (fake.with(|s| s.unauthorized) >= 2).then_some(())
    });
    std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
    wait_for_alerts(dir.path(), &expected, &daemon);
    let log = stop(daemon);
    assert!(log.contains("refused the token"), "{log}");
    assert!(log.contains("read a new token from token_file"), "{log}");
    assert!(!log.contains(TOKEN) && !log.contains(stale), "{log}");
    let got: BTreeSet<String> = alert_ids(dir.path()).into_iter().collect();
    assert_eq!(got, expected);
}

/// Every answer is read up to `max_response_bytes` and every request ends at
/// `request_timeout`: an answer over the bound and one slower than the timeout are failures,
/// logged (without the query) and retried, and the daemon stays up.
#[test]
fn large_and_slow_answers_are_bounded_failures() {
    let api = Api::Okta;
    let fixture = lines(&api.fixture());
    for (tuning, delay, says) in [
        (
            "poll_interval = \"200ms\"\nmax_backoff = \"1s\"\nmax_response_bytes = 2048\n",
            Duration::ZERO,
            "larger than max_response_bytes (2048)",
        ),
        (
            "poll_interval = \"200ms\"\nmax_backoff = \"1s\"\nrequest_timeout = \"300ms\"\n",
            Duration::from_secs(2),
            "timed out",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeApi::start(api, &fixture);
        fake.with(|s| s.delay = delay);
        let cfg = config_with(dir.path(), api, &fake, 5, tuning);
        let daemon = Daemon::start(&cfg, &[]);
        let line = poll("the failure logged twice", Duration::from_secs(30), || {
            let log = daemon.log_text();
            let hits: Vec<String> = log
                .lines()
                .filter(|l| l.contains(says))
                .map(str::to_string)
                .collect();
            (hits.len() >= 2).then(|| hits[0].clone())
        });
        assert!(
            line.contains(&format!("{}/api/v1/logs", fake.base)),
            "{line}"
        );
        assert!(!line.contains("limit="), "no query in logs: {line}");
        let log = stop(daemon);
        assert!(!log.contains(TOKEN));
        assert!(alert_ids(dir.path()).is_empty());
    }
}
