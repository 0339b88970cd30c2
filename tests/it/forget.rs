//! `forget` leaves nothing of the user in the state directory (issue 11): after `run` over a
//! morning of traffic whose alerts went to a file, are still waiting for a receiver that is
//! down, and were dead-lettered by one that refuses them, `export` shows the outbox entries
//! and dead letters, and after `forget` not one byte of the address remains on disk.

use std::path::{Path, PathBuf};

use crate::sinks_harness::{Receiver, Reply, free_port};
use crate::support::{authwatch, repo, rules_dir, stderr};

const VICTIM: &str = "victim1@acme.test";
/// The demo's brute-force target, renamed to the victim.
const DEMO_USER: &str = "priya.natarajan@example.com";

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// The files under `dir` whose raw bytes hold `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|f| {
            std::fs::read(f)
                .unwrap()
                .windows(needle.len())
                .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
        })
        .collect()
}

#[test]
fn forget_leaves_no_byte_of_the_user_in_the_state_directory() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let events = dir.path().join("events.jsonl");
    let demo = std::fs::read_to_string(repo().join("demo/events.jsonl")).unwrap();
    std::fs::write(&events, demo.replace(DEMO_USER, VICTIM)).unwrap();
    let refusing = Receiver::start();
    refusing.script("/refuse", (0..200).map(|_| Reply::Status(400)).collect());
    let alerts = dir.path().join("alerts.jsonl");
    let cfg = dir.path().join("authwatch.toml");
    std::fs::write(
        &cfg,
        format!(
            "[source]\nkind = \"file\"\npath = \"{}\"\nfollow = false\n[state]\ndir = \"{}\"\n[rules]\ndir = \"{}\"\n[daemon]\nshutdown_timeout = \"5s\"\n\
             [[sink]]\nkind = \"file\"\npath = \"{}\"\n\
             [[sink]]\nname = \"refusing\"\nkind = \"webhook\"\nurl = \"{}\"\n\
             [[sink]]\nname = \"down\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{}/hook\"\ntimeout = \"200ms\"\n",
            events.display(),
            state.display(),
            rules_dir().display(),
            alerts.display(),
            refusing.url("/refuse"),
            free_port(),
        ),
    )
    .unwrap();
    let config = cfg.to_str().unwrap();
    let out = authwatch(&["run", "--config", config], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let delivered = std::fs::read_to_string(&alerts).unwrap();
    assert!(
        delivered.contains(VICTIM),
        "the file sink got the victim's alert"
    );

    let export = |who: &str| {
        let out = authwatch(&["export", "--user", who, "--config", config], b"");
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let before = export(VICTIM);
    assert!(before.contains(r#""table":"outbox""#), "{before}");
    assert!(before.contains(r#""table":"dead_letter""#), "{before}");
    assert!(
        !files_holding(&state, VICTIM).is_empty(),
        "the state holds the address before forget"
    );
    let others_before = export("tom.becker@example.com");

    let out = authwatch(&["forget", "--user", VICTIM, "--config", config], b"");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let count: usize = err
        .split_once(": ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("forget reports a count: {err}"));
    assert!(count > 0, "{err}");

    let left = files_holding(&state, VICTIM);
    assert!(left.is_empty(), "the address is still in {left:?}");
    assert_eq!(export(VICTIM), "");
    let others_after = export("tom.becker@example.com");
    assert!(
        others_after.contains(r#""table":"outbox""#) && others_after.len() == others_before.len(),
        "other users' alerts are kept whole"
    );
    // The state still opens and the daemon's undelivered alerts are still there.
    let out = authwatch(&["outbox", "--config", config], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
