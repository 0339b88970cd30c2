//! Hostile clocks and shapes (issue 11): a far-future event cannot blind detection, in `run`,
//! in `replay` (with and without `--now`) or through a stored state; an event nested to the
//! limit survives every stored copy, one level deeper is rejected.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use authwatch::event::{MAX_EVENT_DEPTH, format_ts, parse_rfc3339_ms};

use crate::support::{alerts, authwatch, free_port, repo, rules_dir, stderr};

const POISON: &str = r#"{"ts":"2999-01-01T00:00:00Z","type":"other"}"#;

/// The demo morning moved so that its last event is ten minutes before now.
fn demo_shifted_to_now() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("demo/events.jsonl")).unwrap();
    let mut events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ts = |e: &serde_json::Value| parse_rfc3339_ms(e["ts"].as_str().unwrap()).unwrap();
    let last = events.iter().map(ts).max().unwrap();
    let target = chrono::Utc::now().timestamp_millis() - 10 * 60_000;
    let shift = (target - last) / 1000 * 1000;
    for e in &mut events {
        e["ts"] = format_ts(ts(e) + shift).into();
    }
    events.iter().map(|e| e.to_string()).collect()
}

fn metrics(port: u16) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(s, "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text
}

fn alert_ids(path: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let a: serde_json::Value = serde_json::from_str(l).expect("alert JSON");
            a["id"].as_str().unwrap().to_string()
        })
        .collect()
}

/// `run` on stdin: `first` is written, and once the daemon has taken it in, the source stays
/// quiet for `quiet` (the idle logic advances event time then) before `rest` follows and
/// stdin closes. Returns the alert ids and the daemon's stderr.
fn run_on_stdin(first: &[String], quiet: Duration, rest: &[String]) -> (BTreeSet<String>, String) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let alerts = dir.path().join("alerts.jsonl");
    let cfg = dir.path().join("authwatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "[source]\nkind = \"stdin\"\n[state]\ndir = \"{}\"\n[rules]\ndir = \"{}\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n[[sink]]\nkind = \"file\"\npath = \"{}\"\n",
            dir.path().join("state").display(),
            rules_dir().display(),
            alerts.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_authwatch"))
        .args(["run", "--config", cfg.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if !first.is_empty() {
        writeln!(input, "{}", first.join("\n")).unwrap();
        input.flush().unwrap();
        // Taken in: counted as an event or as bad input.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let m = metrics(port);
            let counted = m.lines().any(|l| {
                (l.starts_with("authwatch_events_total{")
                    || l.starts_with("authwatch_bad_input_total{"))
                    && l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) >= Some(1.0)
            });
            if counted {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon never took in the first lines"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // The quiet period is part of the scenario, not a wait for something to happen.
        std::thread::sleep(quiet);
    }
    writeln!(input, "{}", rest.join("\n")).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    (alert_ids(&alerts), err)
}

#[test]
fn a_far_future_event_then_a_quiet_spell_does_not_blind_run() {
    let demo = demo_shifted_to_now();
    let (clean, _) = run_on_stdin(&[], Duration::ZERO, &demo);
    assert!(
        clean.len() >= 20,
        "the demo holds attacks: {} alerts",
        clean.len()
    );
    // Quiet for longer than the idle threshold (1 s): on `main` event time moved on from
    // the poison then, released it, and every real event after it was judged late.
    let (poisoned, err) = run_on_stdin(&[POISON.to_string()], Duration::from_millis(2_500), &demo);
    assert_eq!(
        poisoned, clean,
        "the poison changed the alerts; stderr:\n{err}"
    );
    assert!(
        err.contains("future_timestamp"),
        "the poison is logged as a future timestamp: {err}"
    );
}

fn replay(args: &[&str], input: &str) -> (BTreeSet<String>, String) {
    let rules = rules_dir();
    let mut all = vec!["replay", "--rules", rules.to_str().unwrap()];
    all.extend_from_slice(args);
    all.push("-");
    let out = authwatch(&all, input.as_bytes());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ids = alerts(&out)
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    (ids, stderr(&out))
}

/// The summary's count for one bad-input reason.
fn bad(summary: &str, reason: &str) -> u64 {
    summary
        .lines()
        .find_map(|l| l.trim().strip_prefix("bad input ")?.strip_prefix(reason))
        .map_or(0, |n| n.trim().parse().unwrap())
}

fn demo_text() -> String {
    std::fs::read_to_string(repo().join("demo/events.jsonl")).unwrap()
}

#[test]
fn replay_judges_future_timestamps_against_now() {
    let demo = demo_text();
    let poisoned = format!("{POISON}\n{demo}");
    let (clean, _) = replay(&[], &demo);
    assert!(clean.len() >= 20);
    // Without --now: the wall clock; the historical demo replays unchanged.
    let (got, summary) = replay(&[], &poisoned);
    assert_eq!(got, clean);
    assert_eq!(bad(&summary, "future_timestamp"), 1, "{summary}");
    // --now before the morning: every event is beyond it.
    let (got, summary) = replay(&["--now", "2026-03-01T00:00:00Z"], &demo);
    assert!(got.is_empty());
    assert_eq!(bad(&summary, "future_timestamp"), 506, "{summary}");
    // --now mid-morning (the demo runs 07:05 to 10:59): events after 09:05 are beyond.
    let (got, summary) = replay(&["--now", "2026-03-02T09:00:00Z"], &demo);
    let beyond = demo
        .lines()
        .filter(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["ts"].as_str().unwrap() > "2026-03-02T09:05:00Z"
        })
        .count() as u64;
    assert!(beyond > 0 && got.len() < clean.len());
    assert_eq!(bad(&summary, "future_timestamp"), beyond, "{summary}");
    let refused = authwatch(&["replay", "--now", "tomorrow", "-"], b"");
    assert_eq!(refused.status.code(), Some(78), "{}", stderr(&refused));
}

#[test]
fn a_stored_clock_beyond_the_bound_is_corrected_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    let demo = demo_text();
    let (clean, _) = replay(&[], &demo);
    // A state poisoned as `main` let it be (here by a clock that allowed the event).
    let (_, summary) = replay(
        &["--state", state, "--now", "2999-01-01T00:00:00Z"],
        &format!("{POISON}\n"),
    );
    assert_eq!(bad(&summary, "future_timestamp"), 0, "{summary}");
    let (got, err) = replay(&["--state", state], &demo);
    assert!(err.contains("restored event clock was beyond"), "{err}");
    assert_eq!(got, clean, "{err}");
    // Corrected and stored: the next start finds nothing to correct.
    let (_, err) = replay(&["--state", state], "");
    assert!(!err.contains("restored event clock was beyond"), "{err}");
}

/// A failed login whose `attrs` make it exactly `depth` levels deep.
fn deep_failure(minute: u32, depth: usize) -> String {
    let nested = (0..depth - 2).fold(serde_json::json!("x"), |v, _| serde_json::json!({ "n": v }));
    serde_json::json!({
        "ts": format!("2026-03-02T08:{minute:02}:00Z"),
        "type": "login.failure",
        "tenant": "acme",
        "username": "deep@example.com",
        "ip": "198.51.100.9",
        "reason": "bad_password",
        "attrs": {"a": nested},
    })
    .to_string()
}

fn depth(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        serde_json::Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn run_file(dir: &Path, events: &Path, alerts: &Path) -> String {
    let cfg = dir.join("authwatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "[source]\nkind = \"file\"\npath = \"{}\"\nfollow = false\n[state]\ndir = \"{}\"\n[rules]\ndir = \"{}\"\n[[sink]]\nkind = \"file\"\npath = \"{}\"\n",
            events.display(),
            dir.join("state").display(),
            rules_dir().display(),
            alerts.display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_authwatch"))
        .args(["run", "--config", cfg.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    err
}

#[test]
fn events_at_the_depth_limit_survive_checkpoint_restart_and_outbox_and_deeper_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let events: PathBuf = dir.path().join("events.jsonl");
    let alerts = dir.path().join("alerts.jsonl");
    let lines: Vec<String> = (0..12).map(|m| deep_failure(m, MAX_EVENT_DEPTH)).collect();
    let line_depth = depth(&serde_json::from_str(&lines[0]).unwrap());
    assert_eq!(line_depth, MAX_EVENT_DEPTH);
    // Six in the first run: their windows go into the checkpoint.
    std::fs::write(&events, format!("{}\n", lines[..6].join("\n"))).unwrap();
    run_file(dir.path(), &events, &alerts);
    assert!(alert_ids(&alerts).is_empty());
    // The restart reads them back, and the next six (and one too deep) cross the threshold.
    let too_deep = deep_failure(30, MAX_EVENT_DEPTH + 1);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&events)
        .unwrap();
    writeln!(f, "{}\n{too_deep}", lines[6..].join("\n")).unwrap();
    drop(f);
    let err = run_file(dir.path(), &events, &alerts);
    assert!(err.contains("too_deep"), "{err}");
    let text = std::fs::read_to_string(&alerts).unwrap();
    let fired: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|a: &serde_json::Value| a["rule"] == "brute-force-user")
        .collect();
    assert_eq!(fired.len(), 1, "{text}");
    let evidence = fired[0]["evidence"].as_array().expect("evidence delivered");
    assert!(!evidence.is_empty());
    assert!(
        evidence.iter().all(|e| depth(e) == MAX_EVENT_DEPTH),
        "{text}"
    );
    let (_, summary) = replay(&[], &format!("{too_deep}\n"));
    assert_eq!(bad(&summary, "too_deep"), 1, "{summary}");
}

#[test]
fn a_flood_with_one_timestamp_is_held_to_the_bound_and_released_early() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("authwatch.toml");
    std::fs::write(&cfg, "[rules]\nlateness = \"1h\"\nmax_held_events = 100\n").unwrap();
    let flood: String = (0..1_000)
        .map(|i| {
            format!(
                "{{\"ts\":\"2026-03-02T08:00:00Z\",\"type\":\"login.failure\",\"username\":\"u{i}@example.com\",\"ip\":\"198.51.100.9\"}}\n"
            )
        })
        .collect();
    let (_, summary) = replay(&["--config", cfg.to_str().unwrap()], &flood);
    let number_before = |what: &str| -> u64 {
        let at = summary
            .find(what)
            .unwrap_or_else(|| panic!("no `{what}`: {summary}"));
        summary[..at]
            .split_whitespace()
            .last()
            .unwrap()
            .parse()
            .unwrap()
    };
    let forced = number_before(" events released early");
    let late = number_before(" late,");
    // At most 100 held at the end: the rest went early, or (at the same timestamp, ordered
    // by fingerprint before what went early) came too late.
    assert!(forced > 0, "{summary}");
    assert_eq!(forced + late, 900, "{summary}");
    // Within the bound nothing is released early.
    let (_, summary) = replay(&[], &flood);
    assert!(!summary.contains("released early"), "{summary}");
}
