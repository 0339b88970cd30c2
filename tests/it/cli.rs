//! The command line as users meet it: exit codes, error listings, summaries, embedded defaults.

use crate::support::{alerts, authwatch, authwatch_in, repo, rules_dir, stderr};

#[test]
fn the_default_pack_checks_and_its_tests_pass() {
    let rules = rules_dir();
    let check = authwatch(&["check", "--rules", rules.to_str().unwrap()], b"");
    assert_eq!(check.status.code(), Some(0), "{}", stderr(&check));
    let test = authwatch(&["test", "--rules", rules.to_str().unwrap()], b"");
    let out = String::from_utf8_lossy(&test.stdout);
    assert_eq!(test.status.code(), Some(0), "{out}");
    assert!(out.contains(" passed, 0 failed"), "{out}");
}

#[test]
fn a_rule_file_with_three_mistakes_gets_three_positioned_errors_and_exit_78() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "id: bad-rule\ntitle: Bad\nseverity: hgih\nkind: threshold\nmatch: {type: login.failure, usernme: x}\ngroup_by: [username]\nwindow: 15\nthreshold: 3\n",
    )
    .unwrap();
    let out = authwatch(&["check", "--rules", dir.path().to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(78));
    let err = stderr(&out);
    let file = dir.path().join("bad.yaml").display().to_string();
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with(&file)).collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
        lines[0].starts_with(&format!(
            "{file}:3:11: rule bad-rule: unknown severity `hgih`"
        )),
        "{err}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "{file}:5:30: rule bad-rule: unknown field `usernme`"
        )),
        "{err}"
    );
    assert!(
        lines[2].starts_with(&format!("{file}:7:9: rule bad-rule: expected a duration")),
        "{err}"
    );
}

#[test]
fn every_file_with_errors_is_listed_not_just_the_first() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        "id: a\ntitle: A\nseverity: low\nkind: match\nmatch: {type: nope}\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("b.yaml"), "id: b\ntitle: [unclosed\n").unwrap();
    let out = authwatch(&["check", "--rules", dir.path().to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(78));
    let err = stderr(&out);
    assert!(
        err.contains("a.yaml:5:15: rule a: unknown event type `nope`"),
        "{err}"
    );
    assert!(
        err.contains("b.yaml:") && err.contains("invalid YAML"),
        "{err}"
    );
}

#[test]
fn a_bad_config_exits_78_and_usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("authwatch.toml");
    std::fs::write(&cfg, "[rules]\nlatness = \"1s\"\n").unwrap();
    let out = authwatch(&["check", "--config", cfg.to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(78));
    assert!(
        stderr(&out).contains("authwatch.toml:2:1: unknown field `latness`"),
        "{}",
        stderr(&out)
    );
    let out = authwatch(&["run", "--config", cfg.to_str().unwrap()], b"");
    assert_eq!(
        out.status.code(),
        Some(78),
        "run must refuse to start on a bad config"
    );
    assert_eq!(
        authwatch(&["replay", "--no-such-flag"], b"").status.code(),
        Some(2)
    );
}

#[test]
fn failing_rule_tests_exit_1_and_name_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("r.yaml"),
        "id: r\ntitle: R\nseverity: low\nkind: match\nmatch: {type: logout}\ntests:\n  - name: expects what cannot happen\n    events: [{type: login.success, user: u1}]\n    expect: [{group: {}}]\n",
    )
    .unwrap();
    let out = authwatch(&["test", "--rules", dir.path().to_str().unwrap()], b"");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("FAILED r / expects what cannot happen: expected 1 alert(s), got 0"),
        "{text}"
    );
}

#[test]
fn replay_counts_bad_lines_by_reason_and_keeps_going() {
    let input = b"{\"ts\":\"2026-01-01T00:00:00Z\",\"type\":\"token.reuse\",\"user\":\"u1\"}\nnot json\n{\"type\":\"logout\"}\n\n{\"ts\":\"2026-01-01T00:00:01Z\",\"type\":\"token.reuse\",\"user\":\"u2\",\"ip\":\"bad\"}\n{\"ts\":\"2026-01-01T00:00:02Z\",\"type\":\"token.reuse\",\"user\":\"u3\"}\n";
    let rules = rules_dir();
    let out = authwatch(&["replay", "--rules", rules.to_str().unwrap(), "-"], input);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let got = alerts(&out);
    let users: Vec<&str> = got.iter().map(|a| a["user"].as_str().unwrap()).collect();
    assert_eq!(users, ["u1", "u3"]);
    let err = stderr(&out);
    assert!(
        err.contains("replayed 2 events") && err.contains("3 bad"),
        "{err}"
    );
    assert!(
        err.contains("invalid_json") && err.contains("missing_field") && err.contains("bad_ip"),
        "{err}"
    );
    // Each bad line is reported with its line number.
    assert!(
        err.contains("\"line\":2") && err.contains("\"line\":3") && err.contains("\"line\":5"),
        "{err}"
    );
}

#[test]
fn run_on_embedded_defaults_reads_stdin_and_writes_alerts_with_runbook_links() {
    let demo = std::fs::read(repo().join("demo/events.jsonl")).unwrap();
    // A fresh working directory: the embedded defaults read ./rules and keep ./authwatch-state.
    let cwd = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(rules_dir(), cwd.path().join("rules")).unwrap();
    let out = authwatch_in(cwd.path(), &["run"], &demo);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let got = alerts(&out);
    assert!(
        got.len() >= 15,
        "the demo holds many attacks, got {} alerts",
        got.len()
    );
    for a in &got {
        let url = a["runbook_url"].as_str().unwrap();
        let path = url
            .strip_prefix("file://")
            .expect("a file link without a base_url");
        assert!(
            std::path::Path::new(path).is_file(),
            "runbook link must resolve: {url}"
        );
        assert!(a["detected_at"].is_string());
        assert!(!a["evidence"].as_array().unwrap().is_empty());
    }
    assert!(
        cwd.path().join("authwatch-state").is_dir(),
        "state is kept in ./authwatch-state"
    );
    // A second run over the same events adds nothing: the state remembers them.
    let again = authwatch_in(cwd.path(), &["run"], &demo);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert!(
        alerts(&again).is_empty(),
        "replayed events were already counted"
    );
}

#[test]
fn replay_into_a_reader_that_stops_early_ends_quietly() {
    // `replay ... | head -1`: the pipe closes after the first alert; that is the reader's
    // choice, not a failure, as for `cat` and `grep`. Thousands of breached-password alerts
    // (one per username) overflow the pipe's buffer, so replay is still writing when it closes.
    use std::io::{Read, Write};
    let events: String = (0..20_000)
        .map(|i| {
            format!(
                "{{\"ts\":\"2026-01-01T00:00:{:02}Z\",\"type\":\"login.failure\",\"username\":\"u{i}\",\"reason\":\"breached_password\"}}\n",
                i % 60
            )
        })
        .collect();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_authwatch"))
        .args(["replay", "-"])
        .current_dir(crate::support::repo())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(events.as_bytes());
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
}

#[test]
fn run_outside_the_repository_names_the_missing_rules_directory_without_a_fake_position() {
    let dir = tempfile::tempdir().unwrap();
    let out = authwatch_in(dir.path(), &["check"], b"");
    assert_eq!(out.status.code(), Some(78));
    let stderr = stderr(&out);
    let resolved = dir.path().join("rules");
    assert!(
        stderr.starts_with(&format!(
            "rules: the rules directory {}",
            resolved.display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains(":0:0:"), "{stderr}");
}
