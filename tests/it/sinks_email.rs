//! The email sink against real SMTP servers that `.ci/run` starts: aiosmtpd with STARTTLS and
//! AUTH receives a well-formed message (parsed by Python's `email` package) with the runbook
//! link; postfix's smtp-sink answers 4xx (retried until `max_age`, then a dead letter) and
//! 5xx (a dead letter at once), and a dead letter redriven to a working server arrives.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::sinks_harness::{
    Daemon, authwatch, authwatch_with, config, event, json_lines, poll, receiver_env,
};

const WAIT: Duration = Duration::from_secs(30);

/// The messages in the spool whose X-Authwatch-Alert-Id is `id`, parsed by Python.
fn parsed_messages(spool: &str, id: &str) -> Vec<serde_json::Value> {
    let out = Command::new("python3")
        .args(["-c", PARSE_MAIL, spool, id])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Parses every message with the standard library's strict policy and prints its headers
/// and decoded parts as JSON, for the messages of one alert id.
const PARSE_MAIL: &str = r#"
import email, email.policy, json, os, sys
spool, want = sys.argv[1], sys.argv[2]
for name in sorted(os.listdir(spool)):
    if not name.endswith(".eml"):
        continue
    with open(os.path.join(spool, name), "rb") as f:
        m = email.message_from_binary_file(f, policy=email.policy.strict)
    if m["X-Authwatch-Alert-Id"] != want:
        continue
    parts = [{"type": p.get_content_type(), "content": p.get_content()} for p in m.walk() if not p.is_multipart()]
    print(json.dumps({"from": str(m["From"]), "to": str(m["To"]), "subject": str(m["Subject"]),
                      "message_id": str(m["Message-ID"]), "type": m.get_content_type(),
                      "defects": len(m.defects), "parts": parts}))
"#;

fn alert_id_from_dead(cfg: &Path, sink: &str) -> Vec<serde_json::Value> {
    json_lines(&authwatch(&[
        "dead-letters",
        "--sink",
        sink,
        "--config",
        cfg.to_str().unwrap(),
    ]))
}

#[test]
fn a_message_over_starttls_with_auth_is_well_formed_and_links_the_runbook() {
    let Some(env) = receiver_env(&[
        "AUTHWATCH_TEST_SMTP",
        "AUTHWATCH_TEST_SMTP_SPOOL",
        "AUTHWATCH_TEST_CA",
        "AUTHWATCH_TEST_SMTP_USER",
        "AUTHWATCH_TEST_SMTP_PASSWORD",
    ]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        &format!(
            r#"[runbooks]
base_url = "https://runbooks.example.com/"
[[sink]]
kind = "email"
smtp_url = "smtp://{}"
ca_file = "{}"
username = "{}"
password_env = "T_SMTP_PASSWORD"
from = "authwatch <authwatch@example.com>"
to = ["oncall@example.com", "secops@example.com"]
[[sink]]
kind = "file"
path = "{}"
"#,
            env[0],
            env[2],
            env[3],
            dir.path().join("alerts.jsonl").display()
        ),
    );
    let mut d = Daemon::start(&cfg, &[("T_SMTP_PASSWORD", &env[4])]);
    d.send(&event(1, false));
    let alert: serde_json::Value = poll("the alert in the file sink", WAIT, || {
        let text = std::fs::read_to_string(dir.path().join("alerts.jsonl")).ok()?;
        serde_json::from_str(text.lines().next()?).ok()
    });
    let id = alert["id"].as_str().unwrap().to_string();
    let m = poll("the message in the spool", WAIT, || {
        parsed_messages(&env[1], &id).pop()
    });
    assert!(d.stop().success());
    assert_eq!(m["defects"], 0, "{m}");
    assert_eq!(m["from"], "authwatch <authwatch@example.com>");
    assert_eq!(m["to"], "oncall@example.com, secops@example.com");
    assert_eq!(m["message_id"], format!("<{id}@authwatch>"));
    assert_eq!(m["type"], "multipart/alternative");
    let subject = m["subject"].as_str().unwrap();
    assert!(
        subject.starts_with("[authwatch] HIGH token-reuse-test: "),
        "{subject}"
    );
    let parts = m["parts"].as_array().unwrap();
    assert_eq!(parts[0]["type"], "text/plain");
    assert_eq!(parts[1]["type"], "text/html");
    let link = "https://runbooks.example.com/token-theft";
    let text = parts[0]["content"].as_str().unwrap();
    let html = parts[1]["content"].as_str().unwrap();
    assert!(text.contains(&format!("Runbook: {link}")), "{text}");
    assert!(html.contains(&format!("<a href=\"{link}\">")), "{html}");
    assert!(
        text.contains("198.51.100.1") && text.contains(&id),
        "{text}"
    );
    assert!(
        !text.contains("\"attrs\""),
        "no evidence by default: {text}"
    );
}

#[test]
fn soft_failures_are_retried_until_max_age_and_hard_ones_dead_lettered_then_redriven() {
    let Some(env) = receiver_env(&[
        "AUTHWATCH_TEST_SMTP_SOFT",
        "AUTHWATCH_TEST_SMTP_HARD",
        "AUTHWATCH_TEST_SMTP",
        "AUTHWATCH_TEST_SMTP_SPOOL",
        "AUTHWATCH_TEST_CA",
        "AUTHWATCH_TEST_SMTP_USER",
        "AUTHWATCH_TEST_SMTP_PASSWORD",
    ]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sinks = |hard: &str, hard_extra: &str| {
        format!(
            r#"[[sink]]
kind = "email"
name = "soft"
smtp_url = "smtp://{}"
tls = "none"
from = "authwatch@example.com"
to = "oncall@example.com"
max_age = "2s"
retry_initial = "100ms"
retry_max = "300ms"
[[sink]]
kind = "email"
name = "hard"
smtp_url = "smtp://{hard}"
{hard_extra}
from = "authwatch@example.com"
to = "oncall@example.com"
retry_initial = "100ms"
"#,
            env[0]
        )
    };
    let cfg = config(dir.path(), &sinks(&env[1], "tls = \"none\""));
    let mut d = Daemon::start(&cfg, &[]);
    d.send(&event(7, false));
    poll("both sinks giving up", WAIT, || {
        let log = d.log_text();
        (log.contains("refused by the receiver") && log.contains("undeliverable for 2s"))
            .then_some(())
    });
    assert!(d.stop().success());

    let soft = alert_id_from_dead(&cfg, "soft");
    assert_eq!(soft.len(), 1, "{soft:?}");
    let reason = soft[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("undeliverable for 2s") && reason.contains("450"),
        "{reason}"
    );
    assert!(
        soft[0]["attempts"].as_u64().unwrap() > 1,
        "retried first: {}",
        soft[0]
    );
    let hard = alert_id_from_dead(&cfg, "hard");
    assert_eq!(hard.len(), 1, "{hard:?}");
    assert!(
        hard[0]["reason"].as_str().unwrap().contains("500"),
        "{}",
        hard[0]
    );
    assert_eq!(hard[0]["attempts"], 1, "a 5xx is not retried");
    let id = hard[0]["id"].as_str().unwrap().to_string();

    // The operator fixes the relay of `hard` and redrives its dead letters.
    let fixed = format!(
        "tls = \"starttls\"\nca_file = \"{}\"\nusername = \"{}\"\npassword_env = \"T_SMTP_PASSWORD\"",
        env[4], env[5]
    );
    let cfg = config(dir.path(), &sinks(&env[2], &fixed));
    // The commands read the same configuration, so they need its secrets too.
    let secret = [("T_SMTP_PASSWORD", env[6].as_str())];
    let out = authwatch_with(
        &[
            "redrive",
            "--sink",
            "hard",
            "--config",
            cfg.to_str().unwrap(),
        ],
        &secret,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = Daemon::start(&cfg, &secret);
    let m = poll("the redriven message", WAIT, || {
        parsed_messages(&env[3], &id).pop()
    });
    assert!(d.stop().success());
    assert_eq!(m["defects"], 0);
    let status = json_lines(&authwatch_with(
        &["outbox", "--config", cfg.to_str().unwrap()],
        &secret,
    ));
    assert_eq!(status.len(), 2, "one line per sink");
    let hard_status = status.iter().find(|s| s["sink"] == "hard").unwrap();
    assert_eq!(hard_status["pending"], 0);
    assert_eq!(hard_status["dead_letters"], 0);
    let soft_status = status.iter().find(|s| s["sink"] == "soft").unwrap();
    assert_eq!(
        soft_status["dead_letters"], 1,
        "only what was redriven left"
    );
}
