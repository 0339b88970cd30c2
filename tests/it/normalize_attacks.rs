//! Realistic attacks written in each provider's own format (tests/fixtures/<format>/) raise
//! the same default-pack alerts as their canonical equivalents (`attack.native.jsonl`): a
//! brute force that ends in a login, refresh token reuse, MFA push denials and an
//! account-takeover chain (password reset, email change, MFA factor removal), each where the
//! provider's log can express it ([`required_rules`]).

use std::collections::BTreeSet;
use std::path::PathBuf;

use authwatch::event::{Event, decode_line};
use authwatch::normalize::{Format, normalize};
use serde_json::Value;

use crate::support::{alerts, authwatch, repo, rules_dir, stderr};

/// (format, provider fixture, canonical equivalent). Keycloak's attack is written both as
/// log lines and as the JSON the admin API and event listeners produce.
const CASES: [(&str, &str, &str); 8] = [
    ("auth0", "auth0/attack.jsonl", "auth0/attack.native.jsonl"),
    ("okta", "okta/attack.jsonl", "okta/attack.native.jsonl"),
    (
        "keycloak",
        "keycloak/attack.log",
        "keycloak/attack.native.jsonl",
    ),
    (
        "keycloak",
        "keycloak/attack.jsonl",
        "keycloak/attack.native.jsonl",
    ),
    ("entra", "entra/attack.jsonl", "entra/attack.native.jsonl"),
    (
        "google_workspace",
        "google_workspace/attack.jsonl",
        "google_workspace/attack.native.jsonl",
    ),
    (
        "cognito",
        "cognito/attack.jsonl",
        "cognito/attack.native.jsonl",
    ),
    ("ocsf", "ocsf/attack.jsonl", "ocsf/attack.native.jsonl"),
];

/// The rules each attack must raise, whatever the format.
const REQUIRED_RULES: [&str; 4] = [
    "brute-force-user",
    "refresh-token-reuse",
    "mfa-denied-repeatedly",
    "account-takeover-chain",
];

/// The rules an attack in `format` must raise: all of [`REQUIRED_RULES`] where the provider
/// logs every step. Google Workspace's login audit has no token events and no password reset
/// (only `password_edit`), so no reuse and no takeover chain; Cognito has no push factor, no
/// token events and no email or factor change events, so its MFA attack is code guessing.
fn required_rules(format: &str) -> Vec<&'static str> {
    match format {
        "google_workspace" => vec![
            "brute-force-user",
            "brute-force-then-success",
            "mfa-denied-repeatedly",
            "mfa-fatigue-success",
        ],
        "cognito" => vec![
            "brute-force-user",
            "brute-force-then-success",
            "mfa-code-guessing",
        ],
        _ => REQUIRED_RULES.to_vec(),
    }
}

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures").join(name)
}

fn lines(name: &str) -> Vec<String> {
    std::fs::read_to_string(fixture(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// The fields rules group and match on must agree exactly; every other field the canonical
/// line states (session, device, geo, client, attrs) must be what the normaliser produced.
fn differences(got: &Event, want_json: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let got_json = serde_json::to_value(got).expect("events serialise");
    let rule_fields = [
        "ts", "type", "tenant", "user", "username", "ip", "reason", "factor",
    ];
    for key in rule_fields {
        if got_json.get(key) != want_json.get(key) {
            out.push(format!(
                "{key}: got {:?}, want {:?}",
                got_json.get(key),
                want_json.get(key)
            ));
        }
    }
    for (key, value) in want_json.as_object().into_iter().flatten() {
        let same = match key.as_str() {
            "attrs" => value
                .as_object()
                .into_iter()
                .flatten()
                .all(|(k, v)| got_json["attrs"].get(k) == Some(v)),
            _ => got_json.get(key) == Some(value),
        };
        if !same && !rule_fields.contains(&key.as_str()) {
            out.push(format!("{key}: got {:?}, want {value}", got_json.get(key)));
        }
    }
    out
}

#[test]
fn each_provider_attack_normalises_line_by_line_to_its_canonical_equivalent() {
    for (format, provider, native) in CASES {
        let format: Format = format.parse().expect("a known format");
        let provider_lines = lines(provider);
        let native_lines = lines(native);
        assert_eq!(
            provider_lines.len(),
            native_lines.len(),
            "{provider} and {native} differ in length"
        );
        let mut problems = Vec::new();
        for (i, (p, n)) in provider_lines.iter().zip(&native_lines).enumerate() {
            let got = normalize(format, p.as_bytes())
                .unwrap_or_else(|e| panic!("{provider}:{}: {e}", i + 1));
            // The canonical equivalent must itself be valid native input.
            decode_line(n.as_bytes()).unwrap_or_else(|e| panic!("{native}:{}: {e}", i + 1));
            let want_json: Value = serde_json::from_str(n).expect("native lines are JSON");
            for d in differences(&got, &want_json) {
                problems.push(format!("{provider}:{}: {d}", i + 1));
            }
        }
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }
}

/// (rule, group) of every alert `authwatch replay` prints for `args`.
fn replay(args: &[&str]) -> BTreeSet<(String, String)> {
    let rules = rules_dir();
    let mut full = vec!["replay", "--rules", rules.to_str().expect("utf-8 path")];
    full.extend_from_slice(args);
    let out = authwatch(&full, b"");
    assert!(
        out.status.success(),
        "authwatch {} failed: {}",
        full.join(" "),
        stderr(&out)
    );
    alerts(&out)
        .iter()
        .map(|a| {
            let rule = a["rule"].as_str().unwrap_or_default().to_string();
            (rule, a["group"].to_string())
        })
        .collect()
}

#[test]
fn provider_attacks_raise_the_same_alerts_as_their_canonical_equivalents() {
    for (format, provider, native) in CASES {
        let provider_path = fixture(provider);
        let native_path = fixture(native);
        let from_provider = replay(&[
            "--format",
            format,
            provider_path.to_str().expect("utf-8 path"),
        ]);
        let from_native = replay(&[native_path.to_str().expect("utf-8 path")]);
        println!("{provider}: {from_provider:?}");
        assert!(!from_provider.is_empty(), "{provider} raised no alert");
        assert_eq!(
            from_provider, from_native,
            "{provider} and {native} raise different alerts"
        );
        let rules: BTreeSet<&str> = from_provider.iter().map(|(r, _)| r.as_str()).collect();
        for rule in required_rules(format) {
            assert!(
                rules.contains(rule),
                "{provider} did not raise {rule}: {rules:?}"
            );
        }
    }
}

/// Entra's records packed `per_body` to an Event Hubs body (`{"records": [...]}`), one body
/// per line: the shape diagnostic settings export and Event Hubs' Kafka endpoint delivers.
pub fn event_hubs_bodies(records: &[Value], per_body: usize) -> String {
    records
        .chunks(per_body)
        .map(|chunk| serde_json::json!({ "records": chunk }).to_string() + "\n")
        .collect()
}

#[test]
fn entra_event_hubs_bodies_of_several_records_raise_the_alerts_of_one_record_per_line() {
    let records: Vec<Value> = lines("entra/attack.jsonl")
        .iter()
        .map(|l| serde_json::from_str(l).expect("a fixture record"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let bodies = dir.path().join("bodies.jsonl");
    std::fs::write(&bodies, event_hubs_bodies(&records, 3)).unwrap();
    let one_per_line = fixture("entra/attack.jsonl");
    let from_bodies = replay(&["--format", "entra", bodies.to_str().unwrap()]);
    let from_lines = replay(&["--format", "entra", one_per_line.to_str().unwrap()]);
    assert!(from_lines.len() >= REQUIRED_RULES.len(), "{from_lines:?}");
    assert_eq!(from_bodies, from_lines);
}
