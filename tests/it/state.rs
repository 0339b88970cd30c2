//! State that survives restarts, crashes and floods (issue 3): split replays, SIGKILL at random
//! points, a flood of attacker-chosen keys, and forgetting a user.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use authwatch::synth::{Rng, Traffic, to_json_lines};

use crate::support::{alerts, authwatch, rules_dir, stderr};

fn failure(ts: &str, username: &str, ip: &str) -> String {
    format!(
        r#"{{"ts":"{ts}","type":"login.failure","tenant":"acme","username":"{username}","ip":"{ip}","reason":"bad_password"}}"#
    )
}

#[test]
fn a_threshold_crossing_split_across_two_replays_fires_once() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let rules = rules_dir();
    let lines: Vec<String> = (0..12)
        .map(|i| {
            failure(
                &format!("2026-03-02T08:{:02}:00Z", i),
                "victim@example.com",
                "198.51.100.9",
            )
        })
        .collect();
    let first = format!("{}\n", lines[..5].join("\n"));
    let second = format!("{}\n", lines[5..10].join("\n"));
    let third = format!("{}\n", lines[10..].join("\n"));
    let args = |state: &Path| {
        vec![
            "replay".to_string(),
            "--rules".into(),
            rules.display().to_string(),
            "--state".into(),
            state.display().to_string(),
            "-".into(),
        ]
    };
    let run = |input: &str| {
        let a = args(&state);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let out = authwatch(&a, input.as_bytes());
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        alerts(&out)
            .into_iter()
            .filter(|a| a["rule"] == "brute-force-user")
            .count()
    };
    assert_eq!(run(&first), 0, "five failures are below the threshold");
    assert_eq!(
        run(&second),
        1,
        "the window carried over: ten failures in ten minutes"
    );
    assert_eq!(
        run(&third),
        0,
        "the crossing fired once; later failures are suppressed"
    );
    // Without the state, the second half alone is not enough.
    let alone = authwatch(
        &["replay", "--rules", rules.to_str().unwrap(), "-"],
        second.as_bytes(),
    );
    assert_eq!(
        alerts(&alone)
            .iter()
            .filter(|a| a["rule"] == "brute-force-user")
            .count(),
        0
    );
}

fn write_config(dir: &Path, events: &Path, state: &Path, alerts: &Path) -> PathBuf {
    let cfg = dir.join("authwatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "[source]\nkind = \"file\"\npath = \"{}\"\nfollow = false\n[state]\ndir = \"{}\"\ncheckpoint_interval = \"100ms\"\n[rules]\ndir = \"{}\"\n[[sink]]\nkind = \"file\"\npath = \"{}\"\n",
            events.display(),
            state.display(),
            rules_dir().display(),
            alerts.display()
        ),
    )
    .unwrap();
    cfg
}

fn alert_ids(path: &Path) -> Vec<String> {
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

fn daemon(cfg: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_authwatch"));
    c.args(["run", "--config", cfg.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

#[test]
fn sigkill_at_twenty_random_points_loses_and_invents_no_alert() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events.jsonl");
    let traffic = Traffic {
        attack_every: 400,
        ..Traffic::default()
    };
    std::fs::write(&events, to_json_lines(&traffic.generate(100_000))).unwrap();

    // The uninterrupted run.
    let clean_alerts = dir.path().join("clean.jsonl");
    let cfg = write_config(
        dir.path(),
        &events,
        &dir.path().join("clean-state"),
        &clean_alerts,
    );
    let started = Instant::now();
    let status = daemon(&cfg).status().unwrap();
    let full_run = started.elapsed();
    assert!(status.success());
    let expected: BTreeSet<String> = alert_ids(&clean_alerts).into_iter().collect();
    assert!(
        expected.len() > 100,
        "the traffic holds attacks: {} alerts",
        expected.len()
    );

    // The same input, killed with SIGKILL at 20 random points and restarted each time.
    let crash_alerts = dir.path().join("crash.jsonl");
    let cfg = write_config(
        dir.path(),
        &events,
        &dir.path().join("crash-state"),
        &crash_alerts,
    );
    let mut rng = Rng::new(42);
    let mut killed = 0;
    for _ in 0..20 {
        let mut child = daemon(&cfg).spawn().unwrap();
        let delay = 50 + rng.below((full_run.as_millis() as u64 / 8).max(1));
        std::thread::sleep(Duration::from_millis(delay));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
        }
        child.wait().unwrap();
    }
    let last = daemon(&cfg).stderr(Stdio::piped()).output().unwrap();
    assert!(
        last.status.success(),
        "the last restart runs to the end: {}; stderr:\n{}",
        last.status,
        String::from_utf8_lossy(&last.stderr)
    );
    assert!(
        killed >= 10,
        "most runs must really be killed mid-way, only {killed} were"
    );
    let got: BTreeSet<String> = alert_ids(&crash_alerts).into_iter().collect();
    let missing: Vec<_> = expected.difference(&got).collect();
    let extra: Vec<_> = got.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?} ({killed} kills)"
    );
}

/// Runs `authwatch` like `support::authwatch` and returns its output with the peak resident
/// memory of that one process since it started running authwatch: the high-water mark
/// `VmHWM` of `/proc/<pid>/status`, followed until it exits (it only grows, and a new program
/// starts a new one). Not `wait4`'s `ru_maxrss`: that also counts the moment between fork and
/// exec, when the child's resident set is this test binary's, and other tests running beside
/// this one make that larger than authwatch ever is.
fn authwatch_with_peak_rss_kib(args: &[&str], stdin: &[u8]) -> (std::process::Output, i64) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_authwatch"))
        .args(args)
        .current_dir(crate::support::repo())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the authwatch binary runs");
    let status = format!("/proc/{}/status", child.id());
    let status_of = status.clone();
    let watcher = std::thread::spawn(move || {
        let mut peak = 0;
        // A process that has exited (a zombie) has no VmHWM line; neither has a gone one.
        while let Some(kib) = std::fs::read_to_string(&status).ok().and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<i64>().ok()
        }) {
            peak = peak.max(kib);
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        peak
    });
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let output = child.wait_with_output().expect("authwatch ran");
    writer.join().unwrap();
    let peak = watcher.join().unwrap();
    assert!(peak > 0, "the peak of {status_of} was never read");
    (output, peak)
}

/// The documented bound for a flood with default caps (docs/operations.md, "State").
const FLOOD_RSS_CAP_MIB: i64 = 512;

#[test]
fn a_flood_of_a_million_ips_and_usernames_stays_under_the_memory_cap() {
    let mut input = Vec::with_capacity(180_000_000);
    let start = 1_772_438_400_000i64;
    for i in 0..1_000_000u64 {
        let ip = format!(
            "{}.{}.{}.{}",
            11 + (i >> 24) % 200,
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255
        );
        writeln!(
            input,
            r#"{{"ts":{},"type":"login.failure","username":"flood{i}@example.com","ip":"{ip}","reason":"unknown_user"}}"#,
            start + i as i64
        )
        .unwrap();
    }
    let rules = rules_dir();
    let (out, peak_kib) =
        authwatch_with_peak_rss_kib(&["replay", "--rules", rules.to_str().unwrap(), "-"], &input);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let peak_mib = peak_kib / 1024;
    let err = stderr(&out);
    assert!(err.contains("replayed 1000000 events"), "{err}");
    assert!(
        err.contains("evicted"),
        "evictions are counted and reported: {err}"
    );
    println!("flood: peak RSS {peak_mib} MiB (cap {FLOOD_RSS_CAP_MIB} MiB)\n{err}");
    assert!(
        peak_mib < FLOOD_RSS_CAP_MIB,
        "peak RSS {peak_mib} MiB is over the cap"
    );
}

#[test]
fn after_forget_export_prints_nothing_and_the_keys_are_gone_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let cfg = dir.path().join("authwatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "[state]\ndir = \"{}\"\n[rules]\ndir = \"{}\"\n",
            state.display(),
            rules_dir().display()
        ),
    )
    .unwrap();
    let mut lines = Vec::new();
    for i in 0..4 {
        lines.push(failure(
            &format!("2026-03-02T08:0{i}:00Z"),
            "Alice@Example.com",
            "203.0.113.5",
        ));
        lines.push(failure(
            &format!("2026-03-02T08:0{i}:30Z"),
            "bob@example.com",
            "203.0.113.5",
        ));
    }
    lines.push(r#"{"ts":"2026-03-02T08:05:00Z","type":"mfa.challenge","user":"u-alice","username":"alice@example.com","factor":"push"}"#.into());
    let input = format!("{}\n", lines.join("\n"));
    let out = authwatch(
        &[
            "replay",
            "--config",
            cfg.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
            "-",
        ],
        input.as_bytes(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let export = |who: &str| {
        let out = authwatch(
            &["export", "--user", who, "--config", cfg.to_str().unwrap()],
            b"",
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let before = export("alice@example.com");
    assert!(
        before.contains("brute-force-user") && before.contains("credential-stuffing-ip"),
        "{before}"
    );
    assert!(export("u-alice").contains("mfa-push-flood"));

    for who in ["alice@example.com", "u-alice"] {
        let out = authwatch(
            &["forget", "--user", who, "--config", cfg.to_str().unwrap()],
            b"",
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    assert_eq!(export("alice@example.com"), "");
    assert_eq!(export("u-alice"), "");
    assert!(
        export("bob@example.com").contains("brute-force-user"),
        "other users are kept"
    );

    let db = sled::open(&state).unwrap();
    for entry in db.iter() {
        let (k, v) = entry.unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&k),
            String::from_utf8_lossy(&v)
        )
        .to_lowercase();
        assert!(
            !text.contains("alice"),
            "a stored entry still mentions the user: {text}"
        );
    }
}
