//! How alerts are written: OCSF Detection Findings (validated against the OCSF schema by the
//! tool `.ci/ocsf.sh` installs) from `replay`, `run` and the stdout, file and webhook sinks;
//! the table for a person; the default on a terminal and off one.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::sinks_harness::{self, HIGH_RULE, Receiver, poll};
use super::support::{alerts, authwatch, repo, rules_dir, stderr};

/// The demo's alerts in every output; `--now` keeps the run the same whatever the date.
fn replay_demo(output: Option<&str>) -> std::process::Output {
    let demo = repo().join("demo/events.jsonl");
    let rules = rules_dir();
    let mut args = vec![
        "replay",
        demo.to_str().unwrap(),
        "--rules",
        rules.to_str().unwrap(),
        "--now",
        "2026-03-03T00:00:00Z",
    ];
    if let Some(o) = output {
        args.extend(["--output", o]);
    }
    let out = authwatch(&args, b"");
    assert!(out.status.success(), "{}", stderr(&out));
    out
}

/// The Python of the OCSF validator's environment (`.ci/ocsf.sh`), or `None` after saying why
/// the test is skipped (a failure under CI=true).
fn ocsf_python() -> Option<PathBuf> {
    match std::env::var_os("AUTHWATCH_OCSF_PYTHON") {
        Some(p) => Some(p.into()),
        None => {
            super::support::skip_unless_ci(
                "AUTHWATCH_OCSF_PYTHON is not set (.ci/run installs the OCSF validator and sets it)",
            );
            None
        }
    }
}

/// Validates OCSF lines against the version they declare and the newest schema the validator
/// ships; panics with its findings on any error.
fn assert_valid_ocsf(python: &PathBuf, lines: &[u8]) {
    let mut child = Command::new(python)
        .arg(repo().join(".ci/ocsf_validate.py"))
        .args(["--version", "1.8.0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the OCSF validator runs");
    child.stdin.take().unwrap().write_all(lines).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the OCSF validator refused the output:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn replay_ocsf_over_the_demo_gives_one_valid_detection_finding_per_alert() {
    let json = alerts(&replay_demo(Some("json")));
    let out = replay_demo(Some("ocsf"));
    let findings = alerts(&out);
    assert!(
        json.len() >= 15,
        "the demo raises its alerts: {}",
        json.len()
    );
    assert_eq!(findings.len(), json.len());
    for (a, f) in json.iter().zip(&findings) {
        assert_eq!(f["class_uid"], 2004);
        assert_eq!(f["type_uid"], 200401);
        assert_eq!(f["finding_info"]["uid"], a["id"]);
        assert_eq!(f["finding_info"]["title"], a["title"]);
        assert_eq!(f["finding_info"]["analytic"]["uid"], a["rule"]);
        let severity = ["info", "low", "medium", "high", "critical"]
            .iter()
            .position(|s| a["severity"] == *s)
            .unwrap()
            + 1;
        assert_eq!(f["severity_id"], severity as u64);
        assert_eq!(
            f["evidences"].as_array().unwrap().len(),
            a["evidence"].as_array().unwrap().len()
        );
        assert_eq!(f["evidences"][0]["data"], a["evidence"][0]);
        assert_eq!(f["remediation"]["references"][0], a["runbook_url"]);
    }
    if let Some(python) = ocsf_python() {
        assert_valid_ocsf(&python, &out.stdout);
    }
}

#[test]
fn hostile_values_still_give_valid_ocsf() {
    let Some(python) = ocsf_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let rules = sinks_harness::rules(dir.path());
    // A user id past the schema's 65,535-character bound, control characters, an ip-less event.
    let long = "x".repeat(70_000);
    let events = format!(
        "{{\"ts\":\"2026-03-02T07:00:00Z\",\"type\":\"token.reuse\",\"user\":\"{long}\",\"username\":\"a\\u001b[2J@x.io\",\"ip\":\"2001:db8::7\",\"geo\":{{\"asn\":64500}}}}\n\
         {{\"ts\":\"2026-03-02T07:00:01Z\",\"type\":\"token.reuse\",\"user\":\"u\\u0000\\u202e\"}}\n"
    );
    let out = authwatch(
        &[
            "replay",
            "--rules",
            rules.to_str().unwrap(),
            "--output",
            "ocsf",
            "--now",
            "2026-03-03T00:00:00Z",
        ],
        events.as_bytes(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let findings = alerts(&out);
    assert_eq!(findings.len(), 2, "{}", stderr(&out));
    assert_eq!(
        findings[0]["evidences"][0]["data"]["user"], long,
        "the whole value stays in the event"
    );
    assert_valid_ocsf(&python, &out.stdout);
}

#[test]
fn replay_table_prints_a_header_and_one_aligned_row_per_alert() {
    let json = alerts(&replay_demo(Some("json")));
    let out = replay_demo(Some("table"));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        json.len() + 1,
        "a header, then a row per alert"
    );
    let header = lines[0];
    for column in [
        "TIME (UTC)",
        "SEVERITY",
        "RULE",
        "GROUP",
        "RUNBOOK",
        "SUMMARY",
    ] {
        assert!(header.contains(column), "{header}");
    }
    let (rule_at, summary_at) = (
        header.find("RULE").unwrap(),
        header.find("SUMMARY").unwrap(),
    );
    for (row, a) in lines[1..].iter().zip(&json) {
        let rule = a["rule"].as_str().unwrap();
        assert_eq!(&row[rule_at..rule_at + rule.len()], rule, "{row}");
        assert!(row.contains(a["severity"].as_str().unwrap()), "{row}");
        // The summary ends the row, whole, starting under its header (every character here
        // takes one cell; a cut group ends in a 3-byte ellipsis, so count characters).
        let summary = a["summary"].as_str().unwrap();
        assert!(row.ends_with(summary), "{row}");
        let before = &row[..row.len() - summary.len()];
        assert_eq!(before.chars().count(), summary_at, "{row}");
    }
    assert!(lines[1].starts_with("2026-03-02 "), "{}", lines[1]);
}

#[test]
fn replay_prints_a_table_on_a_terminal_and_json_lines_otherwise() {
    // Off a terminal (a pipe, as here): JSON lines, as scripts expect.
    let piped = replay_demo(None);
    assert!(!alerts(&piped).is_empty());

    // On a terminal: `script` gives the command a pseudo-terminal.
    if Command::new("script").arg("--version").output().is_err() {
        super::support::skip_unless_ci("`script` (util-linux) is not installed");
        return;
    }
    let cmd = format!(
        "{} replay {} --rules {} --now 2026-03-03T00:00:00Z 2>/dev/null",
        env!("CARGO_BIN_EXE_authwatch"),
        repo().join("demo/events.jsonl").display(),
        rules_dir().display()
    );
    let tty = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(tty.status.success());
    let text = String::from_utf8_lossy(&tty.stdout);
    assert!(
        text.starts_with("TIME (UTC)"),
        "a table on a terminal: {text}"
    );
    assert!(!text.contains("\"id\":"), "no JSON on a terminal");

    // `run` too: its stdout sink without a `format` prints a table on a terminal.
    let dir = tempfile::tempdir().unwrap();
    let cfg = sinks_harness::config(dir.path(), "[[sink]]\nkind = \"stdout\"\n");
    let events = dir.path().join("events.jsonl");
    std::fs::write(&events, sinks_harness::event(1, false)).unwrap();
    let run = Command::new("script")
        .args([
            "-qec",
            &format!(
                "{} run --config {} < {} 2>/dev/null",
                env!("CARGO_BIN_EXE_authwatch"),
                cfg.display(),
                events.display()
            ),
            "/dev/null",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(run.status.success());
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(
        text.starts_with("TIME (UTC)"),
        "run: a table on a terminal: {text}"
    );
    assert!(text.contains(HIGH_RULE), "{text}");

    // An explicit --output wins over the terminal.
    let explicit = Command::new("script")
        .args(["-qec", &format!("{cmd} --output json"), "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let first = String::from_utf8_lossy(&explicit.stdout);
    let first = first.lines().next().unwrap_or("");
    assert!(
        serde_json::from_str::<serde_json::Value>(first.trim_end()).is_ok(),
        "{first}"
    );
}

#[test]
fn run_output_and_the_sinks_format_write_ocsf_to_stdout_file_and_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    let file = dir.path().join("findings.jsonl");
    let cfg = sinks_harness::config(
        dir.path(),
        &format!(
            "[[sink]]\nkind = \"stdout\"\n[[sink]]\nkind = \"file\"\npath = \"{}\"\nformat = \"ocsf\"\n\
             [[sink]]\nkind = \"webhook\"\nurl = \"{}\"\nformat = \"ocsf\"\nsecret_env = \"T_SECRET\"\n",
            file.display(),
            rx.url("/hook")
        ),
    );
    // `run` ends at the end of its standard input, having delivered what it raised.
    let events: String = (1..=3).map(|i| sinks_harness::event(i, false)).collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_authwatch"))
        .args(["run", "--config", cfg.to_str().unwrap(), "--output", "ocsf"])
        .env("T_SECRET", "s3cret")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(events.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    let stdout = alerts(&out);
    assert_eq!(stdout.len(), 3, "{}", stderr(&out));
    let written = std::fs::read(&file).unwrap();
    let in_file: Vec<serde_json::Value> = written
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    let hooks = poll("3 webhook deliveries", Duration::from_secs(30), || {
        let r = rx.accepted("/hook");
        (r.len() >= 3).then_some(r)
    });
    for (place, findings) in [
        ("stdout", stdout.clone()),
        ("file", in_file),
        ("webhook", hooks.iter().map(|h| h.json()).collect()),
    ] {
        assert_eq!(findings.len(), 3, "{place}");
        for f in &findings {
            assert_eq!(f["class_uid"], 2004, "{place}: {f}");
            assert_eq!(f["finding_info"]["analytic"]["uid"], HIGH_RULE, "{place}");
            assert_eq!(f["evidences"][0]["data"]["type"], "token.reuse", "{place}");
        }
    }
    // The webhook signs the body it sends, OCSF as JSON, and names the alert in its header.
    for h in &hooks {
        assert_eq!(
            h.header("x-authwatch-alert-id"),
            h.json()["finding_info"]["uid"].as_str().unwrap()
        );
        assert!(h.header("x-authwatch-signature").starts_with("sha256="));
    }
    if let Some(python) = ocsf_python() {
        assert_valid_ocsf(&python, &out.stdout);
        assert_valid_ocsf(&python, &written);
    }
}

#[test]
fn run_stdout_sink_takes_its_format_and_a_table_from_output() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = sinks_harness::config(
        dir.path(),
        "[[sink]]\nkind = \"stdout\"\nformat = \"ocsf\"\n",
    );
    let events: String = (1..=2).map(|i| sinks_harness::event(i, false)).collect();
    let run = |extra: &[&str]| {
        let mut args = vec!["run", "--config", cfg.to_str().unwrap()];
        args.extend(extra);
        let out = authwatch(&args, events.as_bytes());
        assert!(out.status.success(), "{}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let configured = run(&[]);
    assert!(
        configured.lines().all(|l| l.contains("\"class_uid\":2004")),
        "{configured}"
    );
    let table = run(&["--reset-state", "--output", "table"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("TIME (UTC)"), "{table}");
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[1].contains(HIGH_RULE));
}

#[test]
fn format_is_json_or_ocsf_and_only_on_stdout_file_and_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let check = |sinks: &str| {
        let cfg = sinks_harness::config(dir.path(), sinks);
        sinks_harness::authwatch(&["check", "--config", cfg.to_str().unwrap()])
    };
    let table = check("[[sink]]\nkind = \"file\"\npath = \"/tmp/x\"\nformat = \"table\"\n");
    assert_eq!(table.status.code(), Some(78));
    assert!(
        stderr(&table).contains("format `table`: use json or ocsf"),
        "{}",
        stderr(&table)
    );
    let hec = check(
        "[[sink]]\nkind = \"splunk_hec\"\nurl = \"https://h.example\"\ntoken_env = \"T\"\nformat = \"ocsf\"\n",
    );
    assert_eq!(hec.status.code(), Some(78));
    assert!(
        stderr(&hec).contains("unknown key `format`"),
        "{}",
        stderr(&hec)
    );
    let ok =
        check("[[sink]]\nkind = \"webhook\"\nurl = \"https://h.example/x\"\nformat = \"ocsf\"\n");
    assert!(ok.status.success(), "{}", stderr(&ok));
    let bad = authwatch(&["replay", "--output", "yaml"], b"");
    assert_eq!(
        bad.status.code(),
        Some(2),
        "clap refuses an unknown --output"
    );
}
