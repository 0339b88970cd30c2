//! The HTTP sinks against a receiver written here: each payload shape (webhook with its
//! signature, Splunk HEC, Elasticsearch bulk, PagerDuty, Slack), routing per sink, and the
//! failures a receiver inflicts (5xx, 429 with Retry-After, a hang, per-item bulk errors, a
//! permanent 400), with dead letters listed and re-driven.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::sinks_harness::{
    CRITICAL_RULE, Daemon, HIGH_RULE, Receiver, Reply, authwatch, config, event, free_port, ids,
    json_lines, poll,
};

const WAIT: Duration = Duration::from_secs(30);

fn verify(secret: &str, ts: &str, body: &[u8], signature: &str) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    signature == format!("sha256={hex}")
}

#[test]
fn each_http_sink_gets_its_payload_shape_and_only_what_its_routing_takes() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    let cfg = config(
        dir.path(),
        &format!(
            r#"[runbooks]
base_url = "https://runbooks.example.com/"
[[sink]]
kind = "webhook"
url = "{hook}"
token_env = "T_TOKEN"
secret_env = "T_SECRET"
headers = {{ X-Team = "secops" }}
[[sink]]
kind = "splunk_hec"
url = "{hec}"
token_env = "T_TOKEN"
index = "security"
[[sink]]
kind = "elasticsearch"
url = "{es}"
index = "alerts"
[[sink]]
kind = "pagerduty"
url = "{pd}"
routing_key_env = "T_TOKEN"
min_severity = "critical"
[[sink]]
kind = "slack"
webhook_url_env = "T_SLACK"
rules = ["!{CRITICAL_RULE}"]
"#,
            hook = rx.url("/hook"),
            hec = rx.url("/"),
            es = rx.url("/"),
            pd = rx.url("/v2/enqueue"),
        ),
    );
    let slack = rx.url("/slack/T000/B000/XXXX");
    let mut d = Daemon::start(
        &cfg,
        &[
            ("T_TOKEN", "tok-123"),
            ("T_SECRET", "s3cret"),
            ("T_SLACK", &slack),
        ],
    );
    d.send(&format!(
        "{}{}{}",
        event(1, false),
        event(2, false),
        event(3, true)
    ));

    let hooks = poll("3 webhook deliveries", WAIT, || {
        let r = rx.accepted("/hook");
        (r.len() >= 3).then_some(r)
    });
    poll("3 events in HEC", WAIT, || {
        let n: usize = rx
            .accepted("/services/collector/event")
            .iter()
            .map(|r| String::from_utf8_lossy(&r.body).lines().count())
            .sum();
        (n >= 3).then_some(())
    });
    poll("3 documents in _bulk", WAIT, || {
        let n: usize = rx
            .accepted("/_bulk")
            .iter()
            .map(|r| String::from_utf8_lossy(&r.body).lines().count() / 2)
            .sum();
        (n >= 3).then_some(())
    });
    poll("the critical alert at PagerDuty", WAIT, || {
        (!rx.accepted("/v2/enqueue").is_empty()).then_some(())
    });
    let slack_path = "/slack/T000/B000/XXXX";
    poll("2 Slack messages", WAIT, || {
        (rx.accepted(slack_path).len() >= 2).then_some(())
    });
    assert!(d.stop().success());

    // Webhook: the whole alert, bearer token, custom header, a signature that verifies.
    let mut all_ids = ids(&hooks);
    all_ids.sort();
    all_ids.dedup();
    assert_eq!(all_ids.len(), 3, "each alert once: {all_ids:?}");
    for h in &hooks {
        assert_eq!(h.header("authorization"), "Bearer tok-123");
        assert_eq!(h.header("x-team"), "secops");
        let ts = h.header("x-authwatch-timestamp");
        let age = chrono::Utc::now().timestamp() - ts.parse::<i64>().unwrap();
        assert!((0..300).contains(&age), "timestamp within the window: {ts}");
        assert!(
            verify("s3cret", ts, &h.body, h.header("x-authwatch-signature")),
            "signature verifies"
        );
        assert!(!verify(
            "wrong",
            ts,
            &h.body,
            h.header("x-authwatch-signature")
        ));
        let a = h.json();
        assert_eq!(h.header("x-authwatch-alert-id"), a["id"].as_str().unwrap());
        for field in [
            "id",
            "rule",
            "title",
            "severity",
            "tags",
            "ts",
            "detected_at",
            "group",
            "summary",
            "count",
            "first_seen",
            "last_seen",
            "runbook_url",
            "evidence",
            "tenant",
            "user",
            "username",
            "ip",
        ] {
            assert!(a.get(field).is_some(), "webhook body keeps `{field}`: {a}");
        }
        assert!(a["evidence"][0]["attrs"]["n"].as_u64().is_some());
        assert_eq!(
            a["runbook_url"], "https://runbooks.example.com/token-theft",
            "base_url plus runbook name"
        );
    }

    // HEC: Splunk token, one event object per alert, the id as an indexed field.
    for r in rx.accepted("/services/collector/event") {
        assert_eq!(r.header("authorization"), "Splunk tok-123");
        for line in String::from_utf8_lossy(&r.body).lines() {
            let e: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(e["index"], "security");
            assert_eq!(e["sourcetype"], "authwatch:alert");
            assert_eq!(e["fields"]["alert_id"], e["event"]["id"]);
            assert!(all_ids.contains(&e["event"]["id"].as_str().unwrap().to_string()));
            assert!(e["time"].as_f64().unwrap() > 1.7e9);
            assert!(e["event"]["evidence"].is_array());
        }
    }

    // Elasticsearch: NDJSON create actions with the alert id as _id, ECS documents.
    for r in rx.accepted("/_bulk") {
        assert_eq!(r.header("content-type"), "application/x-ndjson");
        let text = String::from_utf8_lossy(&r.body).into_owned();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for pair in lines.chunks(2) {
            let (action, doc) = (&pair[0]["create"], &pair[1]);
            assert_eq!(action["_index"], "alerts");
            assert_eq!(action["_id"], doc["authwatch"]["id"]);
            assert_eq!(doc["event"]["kind"], "alert");
            assert_eq!(doc["event"]["id"], action["_id"]);
            assert!(doc["@timestamp"].is_string() && doc["rule"]["id"].is_string());
            assert!(
                doc["source"]["ip"]
                    .as_str()
                    .unwrap()
                    .starts_with("198.51.100.")
            );
            assert!(doc["user"]["id"].as_str().unwrap().starts_with('u'));
            assert_eq!(doc["threat"]["technique"]["id"][0], "T1550.001");
            assert!(
                doc["authwatch"]["evidence"][0].is_string(),
                "evidence as JSON text"
            );
        }
    }

    // PagerDuty: only the critical alert; dedup_key = id; a runbook link; no evidence.
    let pd = rx.accepted("/v2/enqueue");
    assert_eq!(pd.len(), 1, "routing: min_severity = critical");
    let e = pd[0].json();
    assert_eq!(e["routing_key"], "tok-123");
    assert_eq!(e["event_action"], "trigger");
    assert_eq!(e["payload"]["severity"], "critical");
    assert_eq!(e["payload"]["custom_details"]["rule"], CRITICAL_RULE);
    assert_eq!(e["dedup_key"], e["payload"]["custom_details"]["id"]);
    assert_eq!(
        e["links"][0]["href"],
        "https://runbooks.example.com/token-theft"
    );
    assert!(
        e["payload"]["custom_details"].get("evidence").is_none(),
        "redacted"
    );

    // Slack: the two high alerts (the critical rule is excluded), a runbook button, no evidence.
    let messages = rx.accepted(slack_path);
    assert_eq!(messages.len(), 2, "routing: rules = [!critical]");
    for m in messages {
        let text = String::from_utf8_lossy(&m.body).into_owned();
        let v = m.json();
        assert!(v["text"].as_str().unwrap().contains("HIGH alert"), "{text}");
        assert!(text.contains(HIGH_RULE));
        let button = &v["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == "actions")
            .expect("a runbook button")["elements"][0];
        assert_eq!(button["url"], "https://runbooks.example.com/token-theft");
        assert!(!text.contains("\"attrs\""), "no evidence events: {text}");
    }
}

#[test]
fn failures_are_retried_with_backoff_retry_after_and_timeouts_and_refusals_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    rx.script(
        "/hook",
        vec![
            Reply::Status(503),
            Reply::TooMany(1),
            Reply::Hang(Duration::from_secs(3)),
            Reply::Status(200),
            Reply::Status(400), // the second alert: refused for good
        ],
    );
    let cfg = config(
        dir.path(),
        &format!(
            "[[sink]]\nkind = \"webhook\"\nurl = \"{}\"\ntimeout = \"500ms\"\nretry_initial = \"100ms\"\nretry_max = \"200ms\"\n",
            rx.url("/hook")
        ),
    );
    let mut d = Daemon::start(&cfg, &[]);
    d.send(&format!("{}{}", event(1, false), event(2, false)));
    poll("the refusal of the second alert", WAIT, || {
        (rx.requests("/hook").len() >= 5).then_some(())
    });
    // Give the worker time to record the dead letter before stopping.
    poll("the dead letter logged", WAIT, || {
        d.log_text()
            .contains("refused by the receiver")
            .then_some(())
    });
    assert!(d.stop().success());

    let reqs = rx.requests("/hook");
    let attempt_ids = ids(&reqs);
    assert_eq!(reqs.len(), 5, "{attempt_ids:?}");
    assert!(
        attempt_ids[..4].iter().all(|i| i == &attempt_ids[0]),
        "retries carry the same id"
    );
    assert_ne!(attempt_ids[4], attempt_ids[0]);
    let gap = |i: usize| reqs[i + 1].at.duration_since(reqs[i].at);
    assert!(
        gap(0) >= Duration::from_millis(50),
        "backoff after a 503: {:?}",
        gap(0)
    );
    assert!(
        gap(1) >= Duration::from_secs(1),
        "Retry-After: 1 obeyed: {:?}",
        gap(1)
    );
    assert!(
        gap(2) >= Duration::from_millis(500) && gap(2) < Duration::from_secs(3),
        "a hung receiver times out after 500ms: {:?}",
        gap(2)
    );

    // The refused alert is a dead letter; redriven, it is delivered on the next start.
    let cfg_arg = cfg.to_str().unwrap();
    let dead = json_lines(&authwatch(&["dead-letters", "--config", cfg_arg]));
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["sink"], "webhook");
    assert_eq!(dead[0]["id"].as_str().unwrap(), attempt_ids[4]);
    assert!(
        dead[0]["reason"].as_str().unwrap().contains("HTTP 400"),
        "{}",
        dead[0]
    );
    let out = authwatch(&["redrive", "--sink", "webhook", "--config", cfg_arg]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = json_lines(&authwatch(&["outbox", "--config", cfg_arg]));
    assert_eq!(
        (
            status[0]["pending"].as_u64(),
            status[0]["dead_letters"].as_u64()
        ),
        (Some(1), Some(0))
    );

    let d = Daemon::start(&cfg, &[]);
    let delivered = poll("the redriven alert", WAIT, || {
        let ok = rx.accepted("/hook");
        (ok.len() >= 2).then_some(ok)
    });
    assert!(d.stop().success());
    assert_eq!(ids(&delivered)[1], attempt_ids[4]);
    let status = json_lines(&authwatch(&["outbox", "--config", cfg_arg]));
    assert_eq!(
        (
            status[0]["pending"].as_u64(),
            status[0]["dead_letters"].as_u64()
        ),
        (Some(0), Some(0)),
        "the outbox drained"
    );
}

#[test]
fn bulk_items_are_judged_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    rx.script(
        "/_bulk",
        vec![
            Reply::Json(
                200,
                serde_json::json!({"errors": true, "items": [
                    {"create": {"status": 201}},
                    {"create": {"status": 400, "error": {"type": "mapper_parsing_exception"}}},
                    {"create": {"status": 429, "error": {"type": "es_rejected_execution_exception"}}},
                ]}),
            ),
            Reply::Json(
                200,
                serde_json::json!({"errors": true, "items": [
                    {"create": {"status": 409, "error": {"type": "version_conflict_engine_exception"}}},
                ]}),
            ),
        ],
    );
    let cfg = config(
        dir.path(),
        &format!(
            "[[sink]]\nkind = \"elasticsearch\"\nurl = \"{}\"\nretry_initial = \"100ms\"\n",
            rx.url("")
        ),
    );
    let mut d = Daemon::start(&cfg, &[]);
    d.send(&format!(
        "{}{}{}",
        event(1, false),
        event(2, false),
        event(3, false)
    ));
    let reqs = poll("two bulk requests", WAIT, || {
        let r = rx.requests("/_bulk");
        (r.len() >= 2).then_some(r)
    });
    poll("progress committed", WAIT, || {
        d.log_text()
            .contains("refused by the receiver")
            .then_some(())
    });
    assert!(d.stop().success());
    let doc_ids = |body: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(body)
            .lines()
            .step_by(2)
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["create"]["_id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    let first = doc_ids(&reqs[0].body);
    assert_eq!(first.len(), 3, "one request for the three alerts");
    assert_eq!(
        doc_ids(&reqs[1].body),
        [first[2].clone()],
        "only the throttled item again"
    );
    assert_eq!(
        reqs.len(),
        2,
        "a 409 conflict means the index has it: delivered"
    );
    let dead = json_lines(&authwatch(&[
        "dead-letters",
        "--config",
        cfg.to_str().unwrap(),
    ]));
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["id"].as_str().unwrap(), first[1]);
    assert!(
        dead[0]["reason"]
            .as_str()
            .unwrap()
            .contains("mapper_parsing_exception")
    );
}

#[test]
fn runbook_links_point_at_the_daemon_which_serves_them_as_html() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    let port = free_port();
    let cfg = config(
        dir.path(),
        &format!(
            "[http]\nlisten = \"127.0.0.1:{port}\"\n[[sink]]\nkind = \"webhook\"\nurl = \"{}\"\n",
            rx.url("/hook")
        ),
    );
    std::fs::write(
        dir.path().join("rules/runbooks/hostile.md"),
        "# Hostile\n\n<script>alert(1)</script><img src=x onerror=\"alert(2)\">\n",
    )
    .unwrap();
    let mut d = Daemon::start(&cfg, &[]);
    d.send(&event(1, false));
    let hook = poll("the alert", WAIT, || rx.accepted("/hook").pop());
    let url = hook.json()["runbook_url"].as_str().unwrap().to_string();
    assert_eq!(url, format!("http://127.0.0.1:{port}/runbooks/token-theft"));
    let page = http_get(port, "/runbooks/token-theft");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(
        page.contains("<h1>Token theft</h1>") && page.contains("<ol>"),
        "{page}"
    );
    assert!(http_get(port, "/runbooks/").contains("href=\"/runbooks/token-theft\""));
    assert!(http_get(port, "/runbooks/..%2Fauthwatch").starts_with("HTTP/1.1 404"));
    // Raw HTML in a runbook is sanitised, and pages forbid scripts and framing.
    let hostile = http_get(port, "/runbooks/hostile");
    assert!(hostile.contains("<h1>Hostile</h1>"), "{hostile}");
    assert!(
        !hostile.contains("<script") && !hostile.contains("onerror"),
        "{hostile}"
    );
    for p in [page.as_str(), hostile.as_str()] {
        let head = p.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
        assert!(
            head.contains("content-security-policy: default-src 'none'")
                && head.contains("frame-ancestors 'none'"),
            "{head}"
        );
    }
    assert!(d.stop().success());
}

/// A plain HTTP/1.1 GET, the whole answer as text.
fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}
