//! Sigma rules beside the default pack, as a user runs them: provider-format events replayed
//! with `authwatch replay --format okta --rules <dir>`, `check` warnings and `--strict`, idle
//! rules. The rules are written here for this project.

use std::path::Path;

use serde_json::Value;

use crate::support::{alerts, authwatch, repo, rules_dir, stderr};

/// A rules directory: the default pack and its runbooks, plus `sigma/` with `files`.
fn pack_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&rules_dir(), dir.path());
    std::fs::create_dir(dir.path().join("sigma")).unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join("sigma").join(name), text).unwrap();
    }
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

const OKTA_RULES: &str = "\
title: Okta MFA factor deactivated
name: okta_mfa_factor_deactivated
id: 3f7c2a10-5b1e-4c55-9d0e-7a1b2c3d4e01
description: A user's MFA factor was removed.
references:
    - https://developer.okta.com/docs/reference/api/event-types/
tags:
    - attack.persistence
    - attack.t1556.006
logsource:
    product: okta
    service: okta
detection:
    selection:
        eventtype: user.mfa.factor.deactivate
        outcome.result: success
    condition: selection
falsepositives:
    - A help desk resetting a lost phone
level: high
authwatch:
    runbook: account-takeover
---
title: Okta sign-on policy evaluated for the admin console
name: okta_admin_console_policy
logsource:
    product: okta
detection:
    selection:
        eventType: policy.evaluate_sign_on
        target.displayName|contains: admin console
    condition: selection
level: medium
---
title: Okta login failure
name: okta_login_failure
logsource:
    product: okta
detection:
    selection:
        eventType: user.session.start
        outcome.result: FAILURE
    filter_proxy:
        securityContext.isProxy: 'true'
    condition: selection and not 1 of filter_*
level: low
tags:
    - attack.t1110
---
title: Okta brute force on one account
name: okta_brute_force_user
correlation:
    type: event_count
    rules:
        - okta_login_failure
    group-by:
        - actor.alternateId
    timespan: 10m
    condition:
        gte: 5
    generate: true
level: high
tags:
    - attack.credential_access
    - attack.t1110
";

/// An Okta event type the normaliser has no canonical meaning for (it becomes `other`).
const POLICY_EVENT: &str = r#"{"uuid":"7a0c1d9e-0000-4000-8000-00000000a001","published":"2026-03-02T15:00:00.000Z","eventType":"policy.evaluate_sign_on","displayMessage":"Evaluation of sign-on policy","outcome":{"result":"ALLOW"},"actor":{"id":"00u1","type":"User","alternateId":"erin.walsh@acme.example"},"client":{"ipAddress":"198.51.100.20"},"target":[{"type":"AppInstance","displayName":"Okta Admin Console"}]}"#;

fn by_rule<'a>(alerts: &'a [Value], rule: &str) -> Vec<&'a Value> {
    alerts.iter().filter(|a| a["rule"] == rule).collect()
}

#[test]
fn okta_events_fire_sigma_rules_beside_the_pack() {
    let dir = pack_with(&[("okta.yml", OKTA_RULES)]);
    let mut input = std::fs::read(repo().join("tests/fixtures/okta/attack.jsonl")).unwrap();
    input.extend_from_slice(POLICY_EVENT.as_bytes());
    input.push(b'\n');
    let rules = dir.path().to_str().unwrap();
    let out = authwatch(
        &["replay", "--format", "okta", "--rules", rules, "-"],
        &input,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let alerts = alerts(&out);

    // The pack still fires on the same events.
    assert!(
        !by_rule(&alerts, "brute-force-user").is_empty(),
        "{alerts:#?}"
    );

    // A Sigma rule's alert carries its metadata and the runbook its `authwatch:` names.
    let mfa = by_rule(&alerts, "okta_mfa_factor_deactivated");
    assert_eq!(mfa.len(), 1, "{alerts:#?}");
    let a = mfa[0];
    assert_eq!(a["title"], "Okta MFA factor deactivated");
    assert_eq!(a["severity"], "high");
    assert_eq!(a["tags"][1], "attack.t1556.006");
    assert_eq!(
        a["references"][0],
        "https://developer.okta.com/docs/reference/api/event-types/"
    );
    assert_eq!(a["falsepositives"][0], "A help desk resetting a lost phone");
    assert!(
        a["runbook_url"]
            .as_str()
            .unwrap()
            .ends_with("account-takeover.md"),
        "{a}"
    );
    assert_eq!(a["evidence"][0]["type"], "mfa.remove");

    // An event the normaliser has no type for still reaches Sigma rules.
    let policy = by_rule(&alerts, "okta_admin_console_policy");
    assert_eq!(policy.len(), 1, "{alerts:#?}");
    assert_eq!(policy[0]["evidence"][0]["type"], "other");

    // The correlation counts on the engine's window; `generate: true` keeps the base rule's
    // alerts, whose runbook comes from its ATT&CK tag.
    let brute = by_rule(&alerts, "okta_brute_force_user");
    assert_eq!(brute.len(), 1, "{alerts:#?}");
    assert_eq!(
        brute[0]["group"]["actor.alternateId"],
        "alice.martin@acme.example"
    );
    assert_eq!(brute[0]["count"], 5);
    let failures = by_rule(&alerts, "okta_login_failure");
    assert!(failures.len() >= 5, "{alerts:#?}");
    assert!(
        failures[0]["runbook_url"]
            .as_str()
            .unwrap()
            .ends_with("brute-force.md")
    );
}

#[test]
fn the_same_events_in_native_format_do_not_fire_provider_rules() {
    let dir = pack_with(&[("okta.yml", OKTA_RULES)]);
    let input = std::fs::read(repo().join("tests/fixtures/okta/attack.native.jsonl")).unwrap();
    let rules = dir.path().to_str().unwrap();
    let out = authwatch(&["replay", "--rules", rules, "-"], &input);
    assert!(out.status.success(), "{}", stderr(&out));
    let alerts = alerts(&out);
    assert!(!by_rule(&alerts, "brute-force-user").is_empty());
    assert!(
        alerts
            .iter()
            .all(|a| !a["rule"].as_str().unwrap().starts_with("okta_")),
        "{alerts:#?}"
    );
}

const UNSUPPORTED: &str = "\
title: A Sigma v1 aggregation
name: v1_aggregation
logsource:
    product: okta
detection:
    selection:
        eventType: user.session.start
    condition: selection | count() by actor.alternateId > 5
level: low
";

/// A provider authwatch has no normaliser for (written here, in the shape of an event log
/// rule with a numeric event id).
const NO_FORMAT: &str = "\
title: Vendor account suspended
id: 0d7d5a7e-2f0e-4c57-9a8e-1f5a3b9c0e11
logsource:
    product: onelogin
    service: onelogin.events
detection:
    selection:
        event_type_id: 551
    condition: selection
level: low
";

#[test]
fn check_warns_about_unsupported_sigma_and_strict_refuses_it() {
    let dir = pack_with(&[
        ("old.yml", UNSUPPORTED),
        ("okta.yml", OKTA_RULES),
        ("vendor.yml", NO_FORMAT),
    ]);
    let rules = dir.path().to_str().unwrap();
    let file = dir.path().join("sigma/old.yml").display().to_string();
    let out = authwatch(&["check", "--rules", rules], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "warning: {file}:8:16: rule v1_aggregation: Sigma v1 aggregations"
        )),
        "{err}"
    );
    // Without a configuration the source is native: the okta rules load and are idle; a
    // logsource no normaliser reads is idle under any configuration, and said so apart.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = |needle: &str| {
        stdout
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in {stdout}"))
            .to_string()
    };
    let unconfigured = line("no configured format: native");
    assert!(unconfigured.contains("okta_brute_force_user"), "{stdout}");
    assert!(!unconfigured.contains("0d7d5a7e"), "{stdout}");
    let unread = line("no format authwatch reads");
    assert!(unread.starts_with("1 Sigma rules idle"), "{stdout}");
    assert!(
        unread.contains("0d7d5a7e-2f0e-4c57-9a8e-1f5a3b9c0e11"),
        "{stdout}"
    );

    let strict = authwatch(&["check", "--strict", "--rules", rules], b"");
    assert_eq!(strict.status.code(), Some(78));
    assert!(
        stderr(&strict).contains(&format!("{file}:8:16: rule v1_aggregation")),
        "{}",
        stderr(&strict)
    );

    // `test` runs the pack's tests with the Sigma rules loaded beside them.
    let test = authwatch(&["test", "--rules", rules], b"");
    assert!(test.status.success(), "{}", stderr(&test));
}

#[test]
fn a_mistake_in_a_sigma_rule_is_an_error_with_its_position() {
    let broken = OKTA_RULES.replace("eventtype: user.mfa", "eventtype|cidr: user.mfa");
    let dir = pack_with(&[("okta.yml", &broken)]);
    let rules = dir.path().to_str().unwrap();
    let out = authwatch(&["check", "--rules", rules], b"");
    assert_eq!(out.status.code(), Some(78));
    let file = dir.path().join("sigma/okta.yml").display().to_string();
    assert!(
        stderr(&out).contains(&format!(
            "{file}:15:25: rule okta_mfa_factor_deactivated: `user.mfa.factor.deactivate` is not a network"
        )),
        "{}",
        stderr(&out)
    );
}

/// The fixture files both parsers read.
const FIXTURES: [&str; 2] = [
    "tests/fixtures/sigma/conformance.yml",
    "tests/fixtures/sigma/correlations.yml",
];

#[test]
fn the_conformance_rules_alert_exactly_as_they_expect() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo().join(FIXTURES[0])).unwrap();
    std::fs::write(dir.path().join("conformance.yml"), &text).unwrap();
    let event = repo().join("tests/fixtures/sigma/conformance-event.json");
    let rules = dir.path().to_str().unwrap();
    let out = authwatch(
        &[
            "replay",
            "--format",
            "okta",
            "--rules",
            rules,
            event.to_str().unwrap(),
        ],
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let alerted: std::collections::BTreeSet<String> = alerts(&out)
        .iter()
        .map(|a| a["rule"].as_str().unwrap().to_string())
        .collect();
    let mut expected = std::collections::BTreeSet::new();
    let mut rules_seen = 0;
    for doc in text.split("\n---\n") {
        let field = |key: &str| {
            doc.lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|v| v.trim().to_string())
        };
        let (Some(name), Some(expect)) = (field("name: "), field("expect: ")) else {
            continue;
        };
        rules_seen += 1;
        if expect == "match" {
            expected.insert(name);
        }
    }
    assert!(rules_seen >= 70, "{rules_seen} rules");
    assert_eq!(alerted, expected);
}

/// One shape for both readings: an item with several values is an `or`/`and` of one-value
/// items, nested operators of one kind are one, and an operator of one operand is that operand.
fn normalize(v: &Value) -> Value {
    use serde_json::json;
    if let Some(obj) = v.as_object() {
        if obj.contains_key("field") && obj.contains_key("values") {
            let values = obj["values"].as_array().cloned().unwrap_or_default();
            let one = |value: &Value| json!({"field": obj["field"], "modifiers": obj["modifiers"], "value": value});
            if values.len() == 1 {
                return one(&values[0]);
            }
            let op = obj["linking"].as_str().unwrap_or("or").to_string();
            return normalize(&json!({op: values.iter().map(one).collect::<Vec<_>>()}));
        }
        for op in ["and", "or"] {
            if let Some(items) = obj.get(op).and_then(Value::as_array) {
                let mut flat = Vec::new();
                for item in items.iter().map(normalize) {
                    match item.get(op).and_then(Value::as_array) {
                        Some(inner) => flat.extend(inner.iter().cloned()),
                        None => flat.push(item),
                    }
                }
                return if flat.len() == 1 {
                    flat.pop().unwrap()
                } else {
                    json!({op: flat})
                };
            }
        }
        return Value::Object(obj.iter().map(|(k, x)| (k.clone(), normalize(x))).collect());
    }
    match v {
        Value::Array(items) => Value::Array(items.iter().map(normalize).collect()),
        other => other.clone(),
    }
}

#[test]
fn pysigma_reads_every_fixture_rule_as_authwatch_does() {
    let Ok(python) = std::env::var("AUTHWATCH_PYSIGMA_PYTHON") else {
        crate::support::skip_unless_ci(
            "AUTHWATCH_PYSIGMA_PYTHON is not set (.ci/sigma.sh makes a pySigma environment)",
        );
        return;
    };
    let mut files: Vec<std::path::PathBuf> = FIXTURES.iter().map(|f| repo().join(f)).collect();
    // Rules kept outside the repository (SigmaHQ's, under their own licence) can be compared
    // too: SIGMAHQ_RULES names a folder, searched recursively.
    if let Some(dir) = std::env::var_os("SIGMAHQ_RULES") {
        let mut stack = vec![std::path::PathBuf::from(dir)];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let p = entry.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| e == "yml") {
                    files.push(p);
                }
            }
        }
    }
    for path in &files {
        let fixture = path.display();
        let out = std::process::Command::new(&python)
            .arg(repo().join(".ci/sigma_describe.py"))
            .arg(path)
            .output()
            .expect("pySigma's Python runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let theirs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        let ours = authwatch::rule::sigma::describe(&std::fs::read_to_string(path).unwrap());
        assert_eq!(theirs.len(), ours.len(), "{fixture}: documents");
        let outside = !path.starts_with(repo());
        for (t, o) in theirs.iter().zip(&ours) {
            if outside && let Some(errors) = t.get("errors").and_then(Value::as_array) {
                // A rule from outside that pySigma refuses (a Sigma v1 aggregation): authwatch
                // must refuse it as well, unless all pySigma objects to is a malformed `date`
                // or `modified`, which authwatch does not read (docs/sigma.md).
                let metadata_only = errors.iter().all(|e| {
                    e.as_str().is_some_and(|m| {
                        m.starts_with("Rule date") || m.starts_with("Rule modified")
                    })
                });
                assert!(
                    metadata_only || o.get("errors").is_some(),
                    "{fixture}: only pySigma refused {t}"
                );
                continue;
            }
            assert!(t.get("errors").is_none(), "{fixture}: pySigma refused {t}");
            assert_eq!(normalize(t), normalize(o), "{fixture}: {}", o["title"]);
        }
    }
}

const ENTRA_RULES: &str = "\
title: Entra sign-in with a wrong password
name: entra_bad_password
logsource:
    product: azure
    service: signinlogs
detection:
    selection:
        ResultType: 50126
        Status: Failure
        AuthenticationRequirement: multiFactorAuthentication
        UserPrincipalName|endswith: '@acme.example'
    condition: selection
level: low
---
title: Entra password spray from one address
name: entra_spray
correlation:
    type: event_count
    rules:
        - entra_bad_password
    group-by:
        - IPAddress
    timespan: 1h
    condition:
        gte: 5
level: high
";

#[test]
fn entra_records_are_read_through_the_sign_in_columns() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("entra.yml"), ENTRA_RULES).unwrap();
    let input = std::fs::read(repo().join("tests/fixtures/entra/attack.jsonl")).unwrap();
    let rules = dir.path().to_str().unwrap();
    let out = authwatch(
        &["replay", "--format", "entra", "--rules", rules, "-"],
        &input,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let alerts = alerts(&out);
    // The fixture's five 50126 failures, all from one address.
    let spray = by_rule(&alerts, "entra_spray");
    assert_eq!(spray.len(), 1, "{alerts:#?}");
    assert_eq!(spray[0]["count"], 5);
    assert_eq!(spray[0]["group"]["IPAddress"], "203.0.113.66");
    assert!(
        by_rule(&alerts, "entra_bad_password").is_empty(),
        "generate: false"
    );
}

#[test]
fn keycloak_log_lines_are_read_by_sigma_rules_as_their_json_events_are() {
    let rule = "\
title: Keycloak bad credentials
name: kc_bad_credentials
logsource:
    product: keycloak
detection:
    selection:
        type: LOGIN_ERROR
        error: invalid_user_credentials
    condition: selection
level: low
";
    let dir = pack_with(&[("keycloak.yml", rule)]);
    let fired = |fixture: &str| {
        let path = repo().join("tests/fixtures/keycloak").join(fixture);
        let args = ["replay", "--format", "keycloak", "--rules"];
        let out = authwatch(
            &[
                &args[..],
                &[dir.path().to_str().unwrap(), path.to_str().unwrap()],
            ]
            .concat(),
            b"",
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let alerts = alerts(&out);
        let mut times: Vec<String> = by_rule(&alerts, "kc_bad_credentials")
            .iter()
            .map(|a| a["ts"].to_string())
            .collect();
        times.sort();
        times
    };
    let from_lines = fired("attack.log");
    assert!(
        !from_lines.is_empty(),
        "the log lines' pairs are what the rule reads"
    );
    assert_eq!(from_lines, fired("attack.jsonl"));
}
