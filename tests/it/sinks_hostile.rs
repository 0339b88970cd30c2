//! Receivers that fail in the ways that used to hurt: unreachable URLs whose path is a secret
//! (it must reach no log or dead letter), a receiver that keeps failing on one alert (it must
//! not hold the sink), a body refused for size (the batch is split), and a redirect to another
//! host (the sink's headers must not follow it).

use std::time::Duration;

use super::sinks_harness::{
    Daemon, Receiver, Reply, authwatch_with, config, event, free_port, ids, json_lines, poll,
};

const WAIT: Duration = Duration::from_secs(30);

fn dead_letters(cfg: &std::path::Path, env: &[(&str, &str)]) -> (Vec<serde_json::Value>, String) {
    let out = authwatch_with(&["dead-letters", "--config", cfg.to_str().unwrap()], env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (json_lines(&out), text)
}

#[test]
fn a_sink_url_path_and_query_reach_no_log_and_no_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    let down = free_port(); // nothing listens: every delivery fails to connect
    let slack =
        format!("http://127.0.0.1:{down}/services/T0SLACKSECRET/B0SLACKSECRET/slackpathsecret");
    let cfg = config(
        dir.path(),
        &format!(
            r#"[[sink]]
kind = "slack"
webhook_url_env = "T_SLACK"
max_age = "1s"
retry_initial = "100ms"
retry_max = "200ms"
[[sink]]
kind = "webhook"
url = "http://127.0.0.1:{down}/hook/hookpathsecret?token=hookquerysecret"
max_age = "1s"
retry_initial = "100ms"
retry_max = "200ms"
"#
        ),
    );
    let env = [("T_SLACK", slack.as_str())];
    let mut d = Daemon::start(&cfg, &[("T_SLACK", &slack), ("RUST_LOG", "debug")]);
    d.send(&format!(
        "{}{}{}",
        event(1, false),
        event(2, true),
        event(3, false)
    ));
    poll("both sinks' first dead letters", WAIT, || {
        let log = d.log_text();
        (log.contains("\"sink\":\"slack\"")
            && log.contains("\"sink\":\"webhook\"")
            && log.matches("moved to the dead letters").count() >= 2)
            .then_some(())
    });
    let log_path = d.log.clone();
    assert!(d.stop().success());
    let log = std::fs::read_to_string(&log_path).unwrap();
    let (letters, listing) = dead_letters(&cfg, &env);
    for sink in ["slack", "webhook"] {
        assert!(letters.iter().any(|l| l["sink"] == sink), "{listing}");
    }
    assert!(
        letters[0]["reason"]
            .as_str()
            .unwrap()
            .contains("cannot connect"),
        "{listing}"
    );
    for secret in [
        "SLACKSECRET",
        "slackpathsecret",
        "hookpathsecret",
        "hookquerysecret",
    ] {
        assert!(
            !log.contains(secret),
            "{secret} in the daemon's log:\n{log}"
        );
        assert!(
            !listing.contains(secret),
            "{secret} in the dead letters:\n{listing}"
        );
    }
    assert!(
        log.contains(&format!("127.0.0.1:{down}")),
        "the host is named: {log}"
    );
}

#[test]
fn an_alert_the_receiver_keeps_failing_on_is_dead_lettered_after_max_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    rx.script("/hook", vec![Reply::Status(500); 6]);
    let cfg = config(
        dir.path(),
        &format!(
            "[[sink]]\nkind = \"webhook\"\nurl = \"{}\"\nmax_attempts = 3\nretry_initial = \"50ms\"\nretry_max = \"100ms\"\n",
            rx.url("/hook")
        ),
    );
    let mut d = Daemon::start(&cfg, &[]);
    d.send(&format!("{}{}", event(1, false), event(2, false)));
    // The first alert fails three times and is dead-lettered; the second fails three times too
    // (the script has six failures), then the script is empty: nothing more is failed.
    poll("two dead letters", WAIT, || {
        (d.log_text().matches("the sink moves on").count() >= 2).then_some(())
    });
    d.send(&event(3, false));
    let ok = poll("the third alert delivered", WAIT, || {
        let ok = rx.accepted("/hook");
        (!ok.is_empty()).then_some(ok)
    });
    assert!(d.stop().success());
    let reqs = rx.requests("/hook");
    let tried = ids(&reqs);
    assert_eq!(tried.len(), 7, "3 + 3 failures and one delivery: {tried:?}");
    assert!(tried[..3].iter().all(|i| i == &tried[0]));
    assert!(tried[3..6].iter().all(|i| i == &tried[3]) && tried[3] != tried[0]);
    assert_eq!(ids(&ok), [tried[6].clone()]);
    let (letters, listing) = dead_letters(&cfg, &[]);
    assert_eq!(letters.len(), 2, "{listing}");
    assert_eq!(letters[0]["id"].as_str().unwrap(), tried[0]);
    assert!(
        letters[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("failed 3 times: HTTP 500"),
        "{listing}"
    );
}

#[test]
fn an_unreachable_receiver_does_not_use_up_an_alerts_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = config(
        dir.path(),
        &format!(
            "[[sink]]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\nmax_attempts = 2\nretry_initial = \"50ms\"\nretry_max = \"100ms\"\n"
        ),
    );
    let mut d = Daemon::start(&cfg, &[("RUST_LOG", "debug")]);
    d.send(&event(1, false));
    poll("five failed connections", WAIT, || {
        (d.log_text().matches("cannot connect").count() >= 5).then_some(())
    });
    let rx = Receiver::start_on(port);
    poll("the alert delivered once the receiver is up", WAIT, || {
        (!rx.accepted("/hook").is_empty()).then_some(())
    });
    assert!(d.stop().success());
    let (letters, listing) = dead_letters(&cfg, &[]);
    assert!(letters.is_empty(), "{listing}");
}

/// An event whose alert carries a large evidence attribute.
fn big_event(i: usize, bytes: usize) -> String {
    let line = event(i, false);
    line.replace(
        &format!("\"attrs\":{{\"n\":{i}}}"),
        &format!("\"attrs\":{{\"n\":{i},\"blob\":\"{}\"}}", "x".repeat(bytes)),
    )
}

#[test]
fn a_bulk_batch_refused_for_size_is_split_and_only_the_alert_too_large_alone_is_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    // About three ordinary alerts fit; the big one never does.
    rx.limit_body("/_bulk", 8_000);
    let cfg = config(
        dir.path(),
        &format!(
            "[[sink]]\nkind = \"elasticsearch\"\nurl = \"{}\"\nretry_initial = \"50ms\"\n",
            rx.url("")
        ),
    );
    let mut d = Daemon::start(&cfg, &[]);
    let lines: String = (1..=7)
        .map(|i| {
            if i == 4 {
                big_event(i, 20_000)
            } else {
                event(i, false)
            }
        })
        .collect();
    d.send(&lines);
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
    let delivered = |rx: &Receiver| -> Vec<String> {
        rx.accepted("/_bulk")
            .iter()
            .flat_map(|r| doc_ids(&r.body))
            .collect()
    };
    poll("six alerts indexed", WAIT, || {
        (delivered(&rx).len() >= 6).then_some(())
    });
    poll("the big alert dead-lettered", WAIT, || {
        d.log_text()
            .contains("refused by the receiver")
            .then_some(())
    });
    assert!(d.stop().success());
    let reqs = rx.requests("/_bulk");
    assert!(
        reqs.iter()
            .any(|r| r.status == 413 && doc_ids(&r.body).len() > 1),
        "a batch was refused for size: {:?}",
        reqs.iter()
            .map(|r| (r.status, doc_ids(&r.body).len()))
            .collect::<Vec<_>>()
    );
    let mut got = delivered(&rx);
    got.sort();
    let n = got.len();
    got.dedup();
    assert_eq!((n, got.len()), (6, 6), "each small alert once");
    let (letters, listing) = dead_letters(&cfg, &[]);
    assert_eq!(letters.len(), 1, "{listing}");
    assert!(!got.contains(&letters[0]["id"].as_str().unwrap().to_string()));
    assert!(
        letters[0]["reason"]
            .as_str()
            .unwrap()
            .contains("too large for the receiver even alone"),
        "{listing}"
    );
    assert!(
        letters[0]["alert"]["evidence"][0]["attrs"]["blob"].is_string(),
        "the big one"
    );
}

#[test]
fn a_redirect_to_another_host_is_not_followed_with_the_sinks_headers() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    let elsewhere = Receiver::start();
    rx.script("/hook", vec![Reply::Redirect(elsewhere.url("/stolen"))]);
    let cfg = config(
        dir.path(),
        &format!(
            "[[sink]]\nkind = \"webhook\"\nurl = \"{}\"\ntoken_env = \"T_TOKEN\"\nheaders = {{ X-Api-Key = \"custom-secret\" }}\nretry_initial = \"50ms\"\n",
            rx.url("/hook")
        ),
    );
    let mut d = Daemon::start(&cfg, &[("T_TOKEN", "tok-123")]);
    d.send(&event(1, false));
    poll(
        "the alert delivered after the redirect was refused",
        WAIT,
        || (!rx.accepted("/hook").is_empty()).then_some(()),
    );
    let log = d.log_text();
    assert!(d.stop().success());
    assert!(
        elsewhere.requests("/stolen").is_empty(),
        "the redirect was followed: {:?}",
        elsewhere.requests("/stolen")
    );
    assert!(
        log.contains("HTTP 307") && log.contains("does not follow"),
        "{log}"
    );
    let reqs = rx.requests("/hook");
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].header("x-api-key"), "custom-secret");
}
