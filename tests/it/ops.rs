//! Running in production (issue 8): metrics move, readiness flips, rules reload from disk
//! keeping unchanged rules' state, a broken edit keeps the old set, SIGTERM stops in time
//! with the state checkpointed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::{Daemon, free_port, rules_dir};

/// A plain HTTP GET: (status, body), or `None` while nothing listens.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// Polls until `check` holds, failing after 20 s.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for: {what}");
}

/// The value of one metric line (name with labels), 0 when absent.
fn metric(port: u16, line_start: &str) -> f64 {
    get(port, "/metrics")
        .map(|(_, body)| {
            body.lines()
                .find(|l| l.starts_with(line_start))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0)
        })
        .unwrap_or(0.0)
}

/// A daemon reading a file, with alerts to a file and HTTP on a port of its own.
struct FileDaemon {
    daemon: Daemon,
    port: u16,
    alerts: PathBuf,
}

impl FileDaemon {
    fn start(dir: &Path, rules: &Path, events: &Path) -> FileDaemon {
        let port = free_port();
        let alerts = dir.join("alerts.jsonl");
        let cfg = dir.join("authwatch.toml");
        std::fs::write(
            &cfg,
            format!(
                "[source]\nkind = \"file\"\npath = \"{}\"\n[state]\ndir = \"{}\"\ncheckpoint_interval = \"200ms\"\n[rules]\ndir = \"{}\"\nlateness = \"0s\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n[[sink]]\nkind = \"file\"\npath = \"{}\"\n",
                events.display(),
                dir.join("state").display(),
                rules.display(),
                alerts.display()
            ),
        )
        .unwrap();
        FileDaemon {
            daemon: Daemon::start(&cfg, &[]),
            port,
            alerts,
        }
    }

    fn alert_rules(&self) -> Vec<String> {
        std::fs::read_to_string(&self.alerts)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["rule"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    fn sigterm(&mut self) -> (Option<i32>, Duration) {
        let (status, took) = self.daemon.sigterm();
        (status.code(), took)
    }
}

fn append(path: &Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

fn failures(user: &str, from_minute: u32, n: u32) -> Vec<String> {
    (from_minute..from_minute + n)
        .map(|m| format!(r#"{{"ts":"2026-03-02T08:{m:02}:00Z","type":"login.failure","username":"{user}","ip":"198.51.100.7","reason":"bad_password"}}"#))
        .collect()
}

fn copy_rules(to: &Path) {
    std::fs::create_dir_all(to.join("runbooks")).unwrap();
    for entry in std::fs::read_dir(rules_dir()).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
    for entry in std::fs::read_dir(rules_dir().join("runbooks")).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, to.join("runbooks").join(p.file_name().unwrap())).unwrap();
    }
}

#[test]
fn metrics_move_readiness_flips_and_rules_reload_keeping_unchanged_state() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    copy_rules(&rules);
    let events = dir.path().join("events.jsonl");
    std::fs::write(&events, "").unwrap();
    let mut daemon = FileDaemon::start(dir.path(), &rules, &events);
    let port = daemon.port;

    eventually("/healthz answers", || {
        get(port, "/healthz").is_some_and(|(s, _)| s == 200)
    });
    eventually("/readyz is ready", || {
        get(port, "/readyz").is_some_and(|(s, _)| s == 200)
    });

    append(&events, &failures("victim@example.com", 0, 5));
    let failed = r#"authwatch_events_total{source="file",format="native",type="login.failure"}"#;
    eventually("the event counter moves", || metric(port, failed) >= 5.0);
    // Registered from the start, set once checkpoints are written (it used to stay 0).
    eventually("the state size is published", || {
        metric(port, "authwatch_state_size_bytes ") > 0.0
    });

    // Edit a neighbour rule: brute-force-user must keep its five failures.
    let ip_rule = rules.join("brute-force-ip.yaml");
    let text = std::fs::read_to_string(&ip_rule).unwrap();
    std::fs::write(&ip_rule, text.replacen("title: ", "title: Edited - ", 1)).unwrap();
    eventually("the edit is picked up", || {
        metric(port, r#"authwatch_rule_reloads_total{outcome="ok"}"#) >= 1.0
    });
    append(&events, &failures("victim@example.com", 5, 5));
    eventually("brute-force-user fires on its kept count", || {
        daemon.alert_rules().iter().any(|r| r == "brute-force-user")
    });

    // A broken edit keeps the running set.
    std::fs::write(
        rules.join("broken.yaml"),
        "id: broken\nkind: threshold\nwindow: soon\n",
    )
    .unwrap();
    eventually("the broken edit is refused", || {
        metric(port, r#"authwatch_rule_reloads_total{outcome="failed"}"#) >= 1.0
    });
    append(&events, &failures("other@example.com", 20, 10));
    eventually("detection goes on with the old set", || {
        daemon
            .alert_rules()
            .iter()
            .filter(|r| *r == "brute-force-user")
            .count()
            >= 2
    });
    assert!(
        metric(
            port,
            r#"authwatch_alerts_total{rule="brute-force-user",severity="high"}"#
        ) >= 2.0
    );

    let (code, took) = daemon.sigterm();
    assert_eq!(code, Some(0));
    assert!(took < Duration::from_secs(15), "stopped in {took:?}");
}

#[test]
fn sigterm_under_load_stops_in_time_and_the_next_start_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let traffic = authwatch::synth::Traffic {
        attack_every: 400,
        ..Default::default()
    };
    std::fs::write(
        &events,
        authwatch::synth::to_json_lines(&traffic.generate(300_000)),
    )
    .unwrap();
    let mut daemon = FileDaemon::start(dir.path(), &rules_dir(), &events);
    let port = daemon.port;
    eventually("the daemon is under load", || {
        get(port, "/metrics").is_some_and(|(_, b)| {
            b.lines()
                .any(|l| l.starts_with("authwatch_events_total{source=\"file\""))
        })
    });
    let (code, took) = daemon.sigterm();
    assert_eq!(code, Some(0), "SIGTERM is a clean stop");
    assert!(
        took < Duration::from_secs(15),
        "stopped in {took:?}, over the bound"
    );

    // The next start resumes from the checkpoint instead of reading the file again.
    let mut again = FileDaemon::start(dir.path(), &rules_dir(), &events);
    let port = again.port;
    eventually("the restarted daemon catches up", || {
        let body = get(port, "/metrics").map(|(_, b)| b).unwrap_or_default();
        let total: f64 = body
            .lines()
            .filter(|l| l.starts_with("authwatch_events_total{source=\"file\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        total > 0.0 && total < 300_000.0 && {
            // Caught up when the count stops moving.
            std::thread::sleep(Duration::from_millis(500));
            let body2 = get(port, "/metrics").map(|(_, b)| b).unwrap_or_default();
            let total2: f64 = body2
                .lines()
                .filter(|l| l.starts_with("authwatch_events_total{source=\"file\""))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            total2 == total
        }
    });
    let (code, _) = again.sigterm();
    assert_eq!(code, Some(0));
}
