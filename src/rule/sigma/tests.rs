//! Conformance: every modifier and condition form, with events that match and events that
//! do not; loading (documents, warnings, errors). Correlations through the engine are tested
//! in `engine/sigma_chain.rs` (the engine depends on rules, not the reverse). The rules are
//! written here for this project.

use std::path::Path;

use serde_json::{Value, json};

use super::detection;
use super::logsource::View;
use crate::event::decode_line;
use crate::normalize::Format;
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
fn the_loader_keeps_native_files_native() {
    let (rules, diags) = crate::rule::load_file_text(
        Path::new("r.yaml"),
        "id: a\ntitle: A\nseverity: low\nkind: match\nmatch: {type: logout}\n",
    );
    assert!(diags.is_empty(), "{diags:?}");
    assert!(rules[0].sigma.is_none());
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

#[test]
fn a_correlation_of_correlations_is_idle_only_when_what_it_counts_is() {
    // Written here: two detections, a count over each, and an ordering of the two counts.
    let text = |product: &str| {
        format!(
            "title: Denied
name: denied
logsource: {{product: {product}}}
detection: {{selection: {{eventType: user.mfa.okta_verify.deny_push}}, condition: selection}}
---
title: Allowed
name: allowed
logsource: {{product: {product}}}
detection: {{selection: {{eventType: user.authentication.auth_via_mfa}}, condition: selection}}
---
title: Many denied
name: many_denied
correlation: {{type: event_count, rules: [denied], group-by: [actor.alternateId], timespan: 10m, condition: {{gte: 3}}}}
---
title: Some allowed
name: some_allowed
correlation: {{type: event_count, rules: [allowed], group-by: [actor.alternateId], timespan: 10m, condition: {{gte: 1}}}}
---
title: Denied then allowed
name: fatigue
correlation: {{type: temporal, rules: [many_denied, some_allowed], group-by: [actor.alternateId], timespan: 10m}}
"
        )
    };
    let load = |product: &str| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("r.yml"), text(product)).unwrap();
        crate::rule::load_dir(dir.path())
            .map_err(|d| format!("{d:?}"))
            .unwrap()
            .rules
    };
    let fatigue = |rules: &[crate::rule::Rule]| {
        let r = rules.iter().find(|r| r.id == "fatigue").unwrap();
        r.sigma.clone().unwrap()
    };
    let okta = load("okta");
    let f = fatigue(&okta);
    assert!(f.chained);
    assert!(!f.starved(None, &okta), "okta is a format authwatch reads");
    assert!(!f.starved(Some(&[Format::Okta]), &okta));
    assert!(f.starved(Some(&[Format::Entra]), &okta));
    let vendor = load("onelogin");
    assert!(fatigue(&vendor).starved(None, &vendor));
}
