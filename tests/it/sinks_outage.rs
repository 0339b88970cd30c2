//! An outage: the webhook and SMTP receivers are down while alerts are produced, the daemon
//! is restarted in between, and when the receivers come back every alert arrives, once per
//! id, at both; nothing is dead-lettered and the outbox drains.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::sinks_harness::{
    Daemon, Receiver, authwatch_with, config, event, free_port, ids, json_lines, poll, receiver_env,
};

const WAIT: Duration = Duration::from_secs(60);

struct Smtp(Child);

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn alerts_in(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
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

/// Alert id -> number of messages in the spool that carry it.
fn spooled(spool: &std::path::Path) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(spool).into_iter().flatten().flatten() {
        if e.path().extension().is_some_and(|x| x == "eml") {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            if let Some(id) = text
                .lines()
                .find_map(|l| l.strip_prefix("X-Authwatch-Alert-Id: "))
            {
                *out.entry(id.trim().to_string()).or_default() += 1;
            }
        }
    }
    out
}

#[test]
fn alerts_produced_during_an_outage_and_a_restart_arrive_once_each_when_receivers_return() {
    let Some(env) = receiver_env(&[
        "AUTHWATCH_TEST_SMTP_RECEIVER",
        "AUTHWATCH_TEST_SERVER_CERT",
        "AUTHWATCH_TEST_SERVER_KEY",
        "AUTHWATCH_TEST_CA",
    ]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (hook_port, smtp_port) = (free_port(), free_port());
    let file = dir.path().join("alerts.jsonl");
    let cfg = config(
        dir.path(),
        &format!(
            r#"[[sink]]
kind = "webhook"
url = "http://127.0.0.1:{hook_port}/hook"
timeout = "1s"
retry_initial = "100ms"
retry_max = "300ms"
[[sink]]
kind = "email"
smtp_url = "smtp://127.0.0.1:{smtp_port}"
ca_file = "{}"
username = "oncall"
password_env = "T_SMTP_PASSWORD"
from = "authwatch@example.com"
to = "oncall@example.com"
timeout = "2s"
retry_initial = "100ms"
retry_max = "300ms"
[[sink]]
kind = "file"
path = "{}"
"#,
            env[3],
            file.display()
        ),
    );
    let secret = [("T_SMTP_PASSWORD", "pw")];
    let events = |range: std::ops::RangeInclusive<usize>| {
        range.map(|i| event(i, i % 4 == 0)).collect::<String>()
    };

    // Both receivers down; five alerts stored; the daemon stopped with them undelivered.
    let mut d = Daemon::start(&cfg, &secret);
    d.send(&events(1..=5));
    poll("five alerts stored", WAIT, || {
        (alerts_in(&file).len() >= 5).then_some(())
    });
    let stopped = std::time::Instant::now();
    assert!(d.stop().success());
    assert!(
        stopped.elapsed() < Duration::from_secs(15),
        "a failing sink does not hold the stop"
    );

    // Restarted, still down; five more.
    let mut d = Daemon::start(&cfg, &secret);
    d.send(&events(6..=10));
    poll("ten alerts stored", WAIT, || {
        (alerts_in(&file).len() >= 10).then_some(())
    });
    let expected: Vec<String> = alerts_in(&file);
    assert_eq!(expected.len(), 10);

    // The receivers come back.
    let rx = Receiver::start_on(hook_port);
    let spool = dir.path().join("spool");
    let _smtp = Smtp(
        Command::new("python3")
            .args([
                env[0].as_str(),
                "--port",
                &smtp_port.to_string(),
                "--spool",
                spool.to_str().unwrap(),
                "--cert",
                &env[1],
                "--key",
                &env[2],
                "--auth",
                "oncall:pw",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    poll(
        "every alert at the webhook and in the mailbox",
        WAIT,
        || {
            let hook: std::collections::BTreeSet<String> =
                ids(&rx.accepted("/hook")).into_iter().collect();
            let mail = spooled(&spool);
            expected
                .iter()
                .all(|id| hook.contains(id) && mail.contains_key(id))
                .then_some(())
        },
    );
    assert!(d.stop().success());

    let mut hook = ids(&rx.accepted("/hook"));
    hook.sort();
    let mut want = expected.clone();
    want.sort();
    assert_eq!(hook, want, "each alert exactly once at the webhook");
    let mail = spooled(&spool);
    assert!(
        mail.values().all(|n| *n == 1),
        "each alert exactly once by mail: {mail:?}"
    );
    assert_eq!(mail.len(), 10);
    let status = json_lines(&authwatch_with(
        &["outbox", "--config", cfg.to_str().unwrap()],
        &secret,
    ));
    assert_eq!(status.len(), 3, "one line per sink");
    for s in &status {
        assert_eq!(
            (s["pending"].as_u64(), s["dead_letters"].as_u64()),
            (Some(0), Some(0)),
            "drained: {s}"
        );
    }
}
