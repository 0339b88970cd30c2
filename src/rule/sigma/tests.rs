//! Conformance: every modifier and condition form, with events that match and events that
//! do not; loading (documents, warnings, errors); correlations through the engine. The rules
//! are written here for this project.

use std::path::Path;

use serde_json::{Value, json};

use super::detection;
use super::logsource::View;
use crate::engine::{Alert, Engine, EngineOptions};
use crate::event::{Event, EventType, decode_line};
use crate::normalize::{Format, normalize};
use crate::rule::yaml;

/// Whether `detection` (YAML) for `format` matches the provider record `record`.
fn matches(format: Format, detection: &str, record: &Value) -> bool {
    let node = yaml::parse(detection).expect("YAML");
    let d = match detection::compile(&node, Some(format)) {
        Ok(d) => d,
        Err(p) => panic!(
            "{detection}: {:?}",
            p.iter().map(|p| &p.message).collect::<Vec<_>>()
        ),
    };
    d.matches(&View::raw(record))
}

fn okta() -> Value {
    json!({
        "eventType": "user.session.start",
        "displayMessage": "User login to Okta",
        "outcome": {"result": "FAILURE", "reason": "INVALID_CREDENTIALS"},
        "actor": {"alternateId": "Alice@Example.com", "displayName": "Alice"},
        "client": {"ipAddress": "203.0.113.66", "userAgent": {"rawUserAgent": "python-requests/2.32"}},
        "securityContext": {"isProxy": true, "asNumber": 9009},
        "debugContext": {"debugData": {"threatSuspected": "false", "risk": "{level=HIGH}",
            "behaviors": "TLUwMTE2IC1lbmNvZGVkQ29tbWFuZA==", "encoded": "bXktc2VjcmV0LXZhbHVl",
            "cmd": "tool.exe /enc abc"}},
        "target": [{"type": "User", "alternateId": "alice@example.com"},
                   {"type": "AppInstance", "alternateId": "Salesforce"}],
        "authenticationContext": {"authenticationStep": 0, "credentialType": "PASSWORD"},
        "severity": "WARN",
        "note": null,
        "path": "C:\\Windows\\*star"
    })
}

#[test]
fn every_modifier_and_value_form_matches_and_misses() {
    let e = okta();
    let cases: &[(&str, bool)] = &[
        // Plain values: case-insensitive equality; lists OR; maps AND.
        ("eventType: USER.SESSION.START", true),
        ("eventType: user.session", false),
        ("eventType: [user.session.end, user.session.start]", true),
        (
            "eventType: user.session.start\noutcome.result: SUCCESS",
            false,
        ),
        // Wildcards and escapes.
        ("eventType: user.*.start", true),
        ("eventType: user.session.star?", true),
        ("eventType: user.session.sta?", false),
        (r"path: 'C:\Windows\\*star'", true),
        (r"path: 'C:\Windows\*star'", false),
        (r"path: 'C:\Windows\\\*star'", true),
        (r"path: 'C:\Windows\\\*'", false),
        // contains / startswith / endswith / all.
        ("displayMessage|contains: LOGIN TO", true),
        ("displayMessage|contains: logout", false),
        ("displayMessage|startswith: user", true),
        ("displayMessage|startswith: login", false),
        ("displayMessage|endswith: okta", true),
        ("displayMessage|contains|all: [user, okta]", true),
        ("displayMessage|contains|all: [user, logout]", false),
        ("displayMessage|contains: [logout, okta]", true),
        // cased.
        ("displayMessage|cased: User login to Okta", true),
        ("displayMessage|cased: user login to okta", false),
        ("displayMessage|contains|cased: Okta", true),
        ("displayMessage|contains|cased: OKTA", false),
        // Regular expressions and their flags.
        ("displayMessage|re: '^User login'", true),
        ("displayMessage|re: '^user login'", false),
        ("displayMessage|re|i: '^user login'", true),
        (
            "debugContext.debugData.risk|re: 'level=(HIGH|MEDIUM)'",
            true,
        ),
        ("displayMessage|re|m: '^to Okta$'", false),
        ("displayMessage|re|s: 'User.*Okta'", true),
        // Networks.
        ("client.ipAddress|cidr: 203.0.113.0/24", true),
        ("client.ipAddress|cidr: [10.0.0.0/8, 192.168.0.0/16]", false),
        // Existence and null.
        ("securityContext.isProxy|exists: true", true),
        ("securityContext.domain|exists: true", false),
        ("securityContext.domain|exists: false", true),
        ("note: null", true),
        ("securityContext.domain: null", true),
        ("eventType: null", false),
        // Numbers: compared as numbers, and as text like JSON writes them.
        ("securityContext.asNumber|gt: 9000", true),
        ("securityContext.asNumber|gte: 9009", true),
        ("securityContext.asNumber|lt: 9009", false),
        ("securityContext.asNumber|lte: 9009", true),
        ("securityContext.asNumber: 9009", true),
        ("authenticationContext.authenticationStep: 0", true),
        // Booleans: 'true' matches JSON true, and true matches the string "false"'s opposite.
        ("securityContext.isProxy: 'true'", true),
        ("securityContext.isProxy: true", true),
        ("securityContext.isProxy: false", false),
        ("debugContext.debugData.threatSuspected: false", true),
        // Arrays: any element.
        ("target.type: AppInstance", true),
        ("target.alternateId: Workday", false),
        // base64 and base64offset (with contains, as Sigma writes it).
        (
            "debugContext.debugData.encoded|base64: my-secret-value",
            true,
        ),
        ("debugContext.debugData.encoded|base64: other", false),
        (
            "debugContext.debugData.behaviors|base64offset|contains: encodedCommand",
            true,
        ),
        (
            "debugContext.debugData.behaviors|base64offset|contains: decodedCommand",
            false,
        ),
        // windash: `/enc` written as `-enc`.
        (
            "debugContext.debugData.cmd|windash|contains: ' -enc '",
            true,
        ),
        (
            "debugContext.debugData.cmd|windash|contains: ' -dec '",
            false,
        ),
        // fieldref: one field equal to another (case-insensitively).
        ("actor.alternateId|fieldref: target.alternateId", true),
        ("actor.displayName|fieldref: target.alternateId", false),
        (
            "actor.alternateId|fieldref|startswith: actor.displayName",
            true,
        ),
    ];
    for (selection, want) in cases {
        let detection = format!(
            "sel:\n{}\ncondition: sel\n",
            selection
                .lines()
                .map(|l| format!("  {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert_eq!(matches(Format::Okta, &detection, &e), *want, "{selection}");
    }
}

#[test]
fn every_condition_form_holds_as_sigma_defines() {
    let e = okta();
    let selections = "\
sel_login: {eventType: user.session.start}
sel_fail: {outcome.result: FAILURE}
sel_mfa: {eventType: user.authentication.auth_via_mfa}
filter_proxy: {securityContext.isProxy: true}
_helper: {severity: DEBUG}
keywords: [login to okta]
";
    let cases: &[(&str, bool)] = &[
        ("sel_login and sel_fail", true),
        ("sel_login and sel_mfa", false),
        ("sel_mfa or sel_fail", true),
        ("sel_mfa or _helper", false),
        ("not sel_mfa", true),
        ("sel_login and not filter_proxy", false),
        ("(sel_mfa or sel_login) and sel_fail", true),
        ("sel_mfa or sel_login and not sel_fail", false),
        ("1 of sel_*", true),
        ("all of sel_*", false),
        ("all of sel_l* and all of sel_f*", true),
        ("1 of them", true),
        // `them` leaves out names starting with `_`: all others hold but sel_mfa.
        ("all of them", false),
        ("any of filter_*", true),
        ("keywords and sel_login", true),
        ("not sel_mfa and sel_login", true),
    ];
    for (condition, want) in cases {
        let detection = format!("{selections}condition: {condition}\n");
        assert_eq!(matches(Format::Okta, &detection, &e), *want, "{condition}");
    }
    // A list of maps is one of them; a list of conditions is any of them.
    let list = "sel:\n  - {eventType: x}\n  - {outcome.result: failure}\ncondition: sel\n";
    assert!(matches(Format::Okta, list, &e));
    let two = "a: {eventType: x}\nb: {eventType: y}\ncondition: [a, b]\n";
    assert!(!matches(Format::Okta, two, &e));
}

#[test]
fn entra_and_workspace_records_are_read_through_their_columns() {
    let signin = json!({"time": "2026-03-02T09:00:00Z", "category": "SignInLogs",
        "resultType": "50126", "properties": {"status": {"errorCode": 50126},
        "authenticationRequirement": "singleFactorAuthentication",
        "deviceDetail": {"isCompliant": false}, "userPrincipalName": "bob@contoso.com"}});
    let d = "sel:\n  ResultType: 50126\n  AuthenticationRequirement: singleFactorAuthentication\n  DeviceDetail.isCompliant: 'false'\n  Status: Failure\ncondition: sel\n";
    assert!(matches(Format::Entra, d, &signin));
    assert!(!matches(
        Format::Entra,
        "sel: {ResultType: 0}\ncondition: sel\n",
        &signin
    ));
    let login = json!({"id": {"applicationName": "login"}, "events": [{"type": "login",
        "name": "login_failure", "parameters": [{"name": "login_type", "value": "google_password"}]}]});
    assert!(matches(
        Format::GoogleWorkspace,
        "sel: {eventName: login_failure, login_type: google_password}\ncondition: sel\n",
        &login
    ));
}

#[test]
fn native_events_match_canonical_fields_and_attrs() {
    let e = decode_line(
        br#"{"ts":1,"type":"login.failure","username":"bob@x.io","ip":"10.1.2.3","reason":"bad_password","attrs":{"risk":{"level":"high"},"n":3}}"#,
    )
    .unwrap();
    let node = yaml::parse(
        "sel:\n  type: login.failure\n  ip|cidr: 10.0.0.0/8\n  risk.level: HIGH\n  n|gte: 3\ncondition: sel\n",
    )
    .unwrap();
    let d = detection::compile(&node, Some(Format::Native)).unwrap();
    assert!(d.matches(&View::Canonical(&e)));
    let node = yaml::parse("sel: {username|endswith: '@y.io'}\ncondition: sel\n").unwrap();
    let d = detection::compile(&node, Some(Format::Native)).unwrap();
    assert!(!d.matches(&View::Canonical(&e)));
}

fn load(files: &[(&str, &str)]) -> (tempfile::TempDir, crate::rule::RuleSet) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let set = crate::rule::load_dir(dir.path()).unwrap_or_else(|d| {
        panic!(
            "{:#?}",
            d.iter().map(ToString::to_string).collect::<Vec<_>>()
        )
    });
    (dir, set)
}

const FAILED_LOGIN: &str = "\
title: Okta login failure
name: okta_login_failure
id: 5d1c7e0c-0000-4000-8000-000000000001
logsource: {product: okta, service: okta}
detection:
  selection:
    eventType: user.session.start
    outcome.result: FAILURE
  condition: selection
level: low
tags: [attack.credential_access, attack.t1110]
references: [https://example.com/okta-failures]
falsepositives: [Forgotten passwords]
";

const SUCCESS_LOGIN: &str = "\
title: Okta login success
name: okta_login_success
logsource: {product: okta}
detection:
  selection: {eventType: user.session.start, outcome.result: SUCCESS}
  condition: selection
";

fn okta_line(ts: &str, user: &str, ip: &str, result: &str) -> String {
    json!({"uuid": format!("{ts}{user}{ip}{result}"), "published": ts, "eventType": "user.session.start",
        "outcome": {"result": result}, "actor": {"id": user, "type": "User", "alternateId": user},
        "client": {"ipAddress": ip}})
    .to_string()
}

/// Runs okta lines through an engine over `set`, returning the alerts.
fn run(set: &crate::rule::RuleSet, lines: &[String]) -> Vec<Alert> {
    let options = EngineOptions {
        lateness_ms: 0,
        ..EngineOptions::default()
    };
    // The engine exists first: while it holds Sigma rules for okta, records are kept.
    let mut engine = Engine::new(set.enabled(), &options);
    let mut alerts = Vec::new();
    for line in lines {
        let event = normalize(Format::Okta, line.as_bytes()).unwrap();
        assert!(event.raw.is_some(), "the okta record is kept for Sigma");
        engine.process(event, &mut alerts);
    }
    engine.flush(&mut alerts);
    alerts
}

fn at(minute: u32) -> String {
    format!("2026-03-02T09:{minute:02}:00Z")
}

#[test]
fn a_sigma_rule_alerts_with_its_metadata_and_keeps_no_record() {
    let (_dir, set) = load(&[("fail.yml", FAILED_LOGIN)]);
    let alerts = run(
        &set,
        &[
            okta_line(&at(0), "a@x.io", "203.0.113.1", "FAILURE"),
            okta_line(&at(1), "a@x.io", "203.0.113.1", "SUCCESS"),
        ],
    );
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    assert_eq!(a.rule, "okta_login_failure");
    assert_eq!(a.title, "Okta login failure");
    assert_eq!(a.severity, crate::rule::Severity::Low);
    assert_eq!(a.tags, ["attack.credential_access", "attack.t1110"]);
    assert_eq!(a.references, ["https://example.com/okta-failures"]);
    assert_eq!(a.falsepositives, ["Forgotten passwords"]);
    assert!(
        a.evidence[0].raw.is_none(),
        "the record is dropped at arrival"
    );
    // No runbook folder here: the tag's default is not invented.
    assert_eq!(a.runbook_url, None);
}

#[test]
fn event_count_fires_on_the_engines_exact_window_and_silences_its_rule() {
    let corr = "\
title: Okta brute force
name: okta_brute_force
correlation:
  type: event_count
  rules: [5d1c7e0c-0000-4000-8000-000000000001]
  group-by: [actor.alternateId]
  timespan: 5m
  condition: {gte: 3}
level: high
";
    let (_dir, set) = load(&[("fail.yml", FAILED_LOGIN), ("corr.yml", corr)]);
    let base = set
        .rules
        .iter()
        .find(|r| r.id == "okta_login_failure")
        .unwrap();
    assert!(!base.enabled, "generate: false by default");
    // Three failures 5 minutes apart end to end: inside an inclusive window of 5m.
    let lines: Vec<String> = [0, 2, 5]
        .iter()
        .map(|m| okta_line(&at(*m), "a@x.io", "203.0.113.1", "FAILURE"))
        .chain([okta_line(&at(20), "b@x.io", "203.0.113.1", "FAILURE")])
        .chain(
            [0, 3, 9]
                .iter()
                .map(|m| okta_line(&at(30 + m), "c@x.io", "203.0.113.1", "FAILURE")),
        )
        .collect();
    let alerts = run(&set, &lines);
    let rules: Vec<&str> = alerts.iter().map(|a| a.rule.as_str()).collect();
    assert_eq!(rules, ["okta_brute_force"], "{alerts:#?}");
    assert_eq!(alerts[0].count, 3);
    assert_eq!(
        alerts[0].group.get("actor.alternateId"),
        Some(&json!("a@x.io"))
    );
    assert_eq!(alerts[0].severity, crate::rule::Severity::High);
}

#[test]
fn value_count_temporal_ordered_aliases_and_generate() {
    let files = [
        ("fail.yml", FAILED_LOGIN),
        ("ok.yml", SUCCESS_LOGIN),
        (
            "corr.yml",
            "\
title: One IP, many users
name: spray
correlation:
  type: value_count
  rules: [okta_login_failure]
  group-by: [client.ipAddress]
  timespan: 10m
  condition: {field: actor.alternateId, gte: 3}
  generate: true
---
title: Failures then success from one source
name: failed_then_ok
correlation:
  type: temporal_ordered
  rules: [okta_login_failure, okta_login_success]
  group-by: [ip]
  aliases:
    ip:
      okta_login_failure: client.ipAddress
      okta_login_success: client.ipAddress
  timespan: 10m
---
title: Both within minutes, any order
name: both
correlation:
  type: temporal
  rules: [okta_login_success, okta_login_failure]
  group-by: [actor.alternateId]
  timespan: 2m
",
        ),
    ];
    let (_dir, set) = load(&files);
    // `spray` generates: its rule alerts on its own too.
    assert!(
        set.rules
            .iter()
            .find(|r| r.id == "okta_login_failure")
            .unwrap()
            .enabled
    );
    assert!(
        !set.rules
            .iter()
            .find(|r| r.id == "okta_login_success")
            .unwrap()
            .enabled
    );
    let lines = vec![
        okta_line(&at(0), "a@x.io", "198.51.100.7", "FAILURE"),
        okta_line(&at(1), "b@x.io", "198.51.100.7", "FAILURE"),
        okta_line(&at(2), "b@x.io", "198.51.100.7", "FAILURE"),
        okta_line(&at(3), "c@x.io", "198.51.100.7", "FAILURE"),
        okta_line(&at(4), "c@x.io", "198.51.100.7", "SUCCESS"),
        // A success with no failure before it from this address: no sequence.
        okta_line(&at(30), "d@x.io", "192.0.2.9", "SUCCESS"),
    ];
    let alerts = run(&set, &lines);
    let by = |rule: &str| alerts.iter().filter(|a| a.rule == rule).collect::<Vec<_>>();
    assert_eq!(by("okta_login_failure").len(), 4);
    let spray = by("spray");
    assert_eq!(spray.len(), 1, "{alerts:#?}");
    assert_eq!(spray[0].count, 3);
    assert_eq!(
        spray[0].group.get("client.ipAddress"),
        Some(&json!("198.51.100.7"))
    );
    let ordered = by("failed_then_ok");
    assert_eq!(ordered.len(), 1);
    assert_eq!(ordered[0].group.get("ip"), Some(&json!("198.51.100.7")));
    // c@x.io failed at 3 and succeeded at 4: both within 2m.
    let both = by("both");
    assert_eq!(both.len(), 1, "{alerts:#?}");
    assert_eq!(
        both[0].group.get("actor.alternateId"),
        Some(&json!("c@x.io"))
    );
}

#[test]
fn chained_correlations_count_firings_and_feeders_stay_silent() {
    let chain = "\
title: Brute force per user
name: user_brute
correlation:
  type: event_count
  rules: [okta_login_failure]
  group-by: [actor.alternateId, client.ipAddress]
  timespan: 5m
  condition: {gte: 2}
---
title: One address brute-forcing several users
name: many_users_brute
correlation:
  type: value_count
  rules: [user_brute]
  group-by: [client.ipAddress]
  timespan: 1h
  condition: {field: actor.alternateId, gte: 2}
";
    let (_dir, set) = load(&[("fail.yml", FAILED_LOGIN), ("chain.yml", chain)]);
    let lines: Vec<String> = ["a@x.io", "a@x.io", "b@x.io", "b@x.io"]
        .iter()
        .enumerate()
        .map(|(i, u)| okta_line(&at(i as u32), u, "198.51.100.7", "FAILURE"))
        .collect();
    let alerts = run(&set, &lines);
    let rules: Vec<&str> = alerts.iter().map(|a| a.rule.as_str()).collect();
    assert_eq!(rules, ["many_users_brute"], "{alerts:#?}");
    assert_eq!(
        alerts[0].group.get("client.ipAddress"),
        Some(&json!("198.51.100.7"))
    );
    assert_eq!(alerts[0].count, 2);
}

#[test]
fn unsupported_features_warn_with_positions_and_skip_the_rule() {
    let text = "\
title: Old aggregation
name: v1_count
logsource: {product: okta}
detection:
  selection: {eventType: user.session.start}
  condition: selection | count() by actor.alternateId > 5
---
title: Unknown modifier
name: unknown_mod
logsource: {product: okta}
detection:
  selection:
    eventType|expand: '%types%'
  condition: selection
---
title: Keywords on Entra
name: entra_keywords
logsource: {product: azure, service: signinlogs}
detection:
  keywords: [password]
  condition: keywords
---
title: Fine
name: fine
logsource: {product: okta}
detection:
  selection: {eventType: user.session.start}
  condition: selection
";
    let (_dir, set) = load(&[("mixed.yml", text)]);
    let ids: Vec<&str> = set.rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["fine"]);
    let warnings: Vec<String> = set.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 3, "{warnings:#?}");
    assert!(
        warnings[0].contains("mixed.yml:6:14: rule v1_count: Sigma v1 aggregations"),
        "{warnings:#?}"
    );
    assert!(
        warnings[1]
            .contains("mixed.yml:13:5: rule unknown_mod: unsupported Sigma modifier `expand`"),
        "{warnings:#?}"
    );
    assert!(
        warnings[2].contains("mixed.yml:20:14: rule entra_keywords: keyword detections"),
        "{warnings:#?}"
    );
}

#[test]
fn mistakes_are_errors_with_positions() {
    let text = "\
title: Broken
name: broken
logsource: {product: okta}
detection:
  selection:
    client.ipAddress|cidr: 10.0.0.0/99
    eventType|re: '(['
  condition: selection and missing
---
title: Bad correlation
name: bad_corr
correlation:
  type: event_count
  rules: [nothing_here]
  timespan: forever
  condition: {gte: 3}
";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.yml"), text).unwrap();
    let errors: Vec<String> = crate::rule::load_dir(dir.path())
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    let expect = [
        "bad.yml:6:28: rule broken: `10.0.0.0/99` is not a network",
        "bad.yml:7:19: rule broken: invalid regex",
        "bad.yml:8:14: rule broken: the condition names `missing`",
        "bad.yml:14:11: rule bad_corr: the correlation names `nothing_here`",
        "bad.yml:15:13: rule bad_corr: invalid duration `forever`",
    ];
    for e in expect {
        assert!(errors.iter().any(|x| x.contains(e)), "{e}\n{errors:#?}");
    }
}

#[test]
fn input_cannot_claim_a_sigma_match() {
    let (_dir, set) = load(&[("fail.yml", FAILED_LOGIN)]);
    let mut engine = Engine::new(set.enabled(), &EngineOptions::default());
    let mut alerts = Vec::new();
    let mut forged = Event::new(1, EventType::LoginFailure);
    forged.attrs = Some(
        json!({"sigma": {"rules": {"okta_login_failure": set.rules[0].sigma.as_ref().unwrap().detections[0].hash}}})
            .as_object()
            .unwrap()
            .clone(),
    );
    engine.process(forged, &mut alerts);
    engine.flush(&mut alerts);
    assert!(alerts.is_empty(), "{alerts:#?}");
}

#[test]
fn the_loader_keeps_native_files_native() {
    let (rules, diags) = crate::rule::load_file_text(
        Path::new("r.yaml"),
        "id: a\ntitle: A\nseverity: low\nkind: match\nmatch: {type: logout}\n",
    );
    assert!(diags.is_empty(), "{diags:?}");
    assert!(rules[0].sigma.is_none());
}

#[test]
fn a_reload_keeps_an_unchanged_correlations_window_and_restarts_a_changed_one() {
    let corr = |threshold: u32| {
        format!(
            "title: Brute force\nname: brute\ncorrelation:\n  type: event_count\n  rules: [okta_login_failure]\n  group-by: [actor.alternateId]\n  timespan: 1h\n  condition: {{gte: {threshold}}}\n"
        )
    };
    let options = EngineOptions {
        lateness_ms: 0,
        ..EngineOptions::default()
    };
    let (_a, first) = load(&[("fail.yml", FAILED_LOGIN), ("corr.yml", &corr(3))]);
    let mut engine = Engine::new(first.enabled(), &options);
    let mut alerts = Vec::new();
    let feed = |engine: &mut Engine, minute: u32, alerts: &mut Vec<Alert>| {
        let line = okta_line(&at(minute), "a@x.io", "203.0.113.1", "FAILURE");
        engine.process(normalize(Format::Okta, line.as_bytes()).unwrap(), alerts);
    };
    feed(&mut engine, 0, &mut alerts);
    feed(&mut engine, 1, &mut alerts);
    // The same files again (a SIGHUP with nothing changed): the two failures stay counted.
    let (_b, same) = load(&[("fail.yml", FAILED_LOGIN), ("corr.yml", &corr(3))]);
    let diff = engine.reload(same.enabled(), &options);
    assert!(diff.changed.is_empty() && diff.added.is_empty(), "{diff:?}");
    feed(&mut engine, 2, &mut alerts);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    // A changed detection is a changed rule: its correlation starts over.
    let stricter =
        FAILED_LOGIN.replace("outcome.result: FAILURE", "outcome.result|startswith: FAIL");
    let (_c, changed) = load(&[("fail.yml", &stricter), ("corr.yml", &corr(3))]);
    let diff = engine.reload(changed.enabled(), &options);
    assert_eq!(diff.changed, ["brute"]);
    feed(&mut engine, 3, &mut alerts);
    feed(&mut engine, 4, &mut alerts);
    assert_eq!(alerts.len(), 1);
    feed(&mut engine, 5, &mut alerts);
    assert_eq!(
        alerts.len(),
        2,
        "three failures counted by the new detection"
    );
}

#[test]
fn detections_pin_the_field_the_stage_indexes_them_by() {
    let pin = |d: &str| {
        let node = yaml::parse(d).unwrap();
        detection::compile(&node, Some(Format::Okta))
            .unwrap()
            .pinned()
    };
    assert_eq!(
        pin("sel: {eventType: [User.Session.Start, x], outcome.result: FAILURE}\ncondition: sel\n"),
        Some((
            "eventType".into(),
            vec!["user.session.start".into(), "x".into()]
        ))
    );
    assert_eq!(
        pin("a: {eventType: a}\nb: {eventType: b}\nf: {x: 1}\ncondition: (a or b) and not f\n"),
        Some(("eventType".into(), vec!["a".into(), "b".into()]))
    );
    assert_eq!(
        pin("a: {eventType: a}\nb: {x: b}\ncondition: a or b\n"),
        None
    );
    assert_eq!(pin("a: {eventType: a}\ncondition: not a\n"), None);
    assert_eq!(pin("a: {eventType|contains: a}\ncondition: a\n"), None);
    assert_eq!(pin("a: {eventType|neq: a}\ncondition: a\n"), None);
}
