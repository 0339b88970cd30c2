//! An alert as an OCSF Detection Finding (class 2004), the one mapping every OCSF output uses
//! (`--output ocsf`, `format = "ocsf"` on the stdout, file and webhook sinks); the table of
//! fields is in `docs/ocsf.md`, and CI validates the output against the OCSF schema.

use serde_json::{Map, Value, json};

use super::Record;
use crate::rule::Severity;

/// The OCSF schema version findings declare (`metadata.version`): 1.1.0 is the first with
/// Detection Finding, and what most OCSF consumers (Amazon Security Lake among them) take;
/// every field used here is unchanged in later 1.x versions.
pub const OCSF_VERSION: &str = "1.1.0";

const CLASS_UID: u32 = 2004;
const CATEGORY_UID: u32 = 2;
/// `activity_id` 1: a finding was created (authwatch never updates or closes one).
const ACTIVITY_CREATE: u32 = 1;
/// `status_id` 1: new, yet to be reviewed.
const STATUS_NEW: u32 = 1;
/// `analytic.type_id` 1: a rule.
const ANALYTIC_RULE: u32 = 1;
/// Observable `type_id`s.
const OBSERVABLE_IP: u32 = 2;
const OBSERVABLE_USER_NAME: u32 = 4;
/// The schema bounds every string (but a few) to this many characters; longer values (an
/// attacker's 100 kB username) are cut, and stay whole in `evidences[].data`.
const MAX_STRING: usize = 65_535;

/// The finding for one alert; the evidence events go in `evidences` when `with_evidence`.
pub fn finding(alert: &Record, with_evidence: bool) -> Value {
    let severity = alert.severity();
    let (severity_id, severity_name) = severity_id(severity);
    let time = alert.ts_millis();
    let mut info = json!({
        "uid": alert.id,
        "title": bounded(&alert.title),
        "desc": bounded(&alert.summary),
        "analytic": {
            "uid": bounded(&alert.rule),
            "name": bounded(&alert.rule),
            "type_id": ANALYTIC_RULE,
            "type": "Rule",
        },
        "first_seen_time": super::record::millis(&alert.first_seen),
        "last_seen_time": super::record::millis(&alert.last_seen),
    });
    let attacks = attacks(&alert.tags);
    if !attacks.is_empty() {
        info["attacks"] = Value::Array(attacks);
    }
    if let Some(at) = &alert.detected_at {
        info["created_time"] = json!(super::record::millis(at));
    }
    let mut metadata = json!({
        "version": OCSF_VERSION,
        "uid": alert.id,
        "product": {
            "name": "authwatch",
            "vendor_name": "authwatch",
            "version": env!("CARGO_PKG_VERSION"),
        },
    });
    if !alert.tags.is_empty() {
        metadata["labels"] = json!(alert.tags.iter().map(|t| bounded(t)).collect::<Vec<_>>());
    }
    if let Some(t) = &alert.tenant {
        metadata["tenant_uid"] = json!(bounded(t));
    }
    let mut out = json!({
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "activity_id": ACTIVITY_CREATE,
        "activity_name": "Create",
        "type_uid": CLASS_UID * 100 + ACTIVITY_CREATE,
        "type_name": "Detection Finding: Create",
        "severity_id": severity_id,
        "severity": severity_name,
        "status_id": STATUS_NEW,
        "status": "New",
        "time": time,
        "start_time": super::record::millis(&alert.first_seen),
        "end_time": super::record::millis(&alert.last_seen),
        "count": alert.count,
        "message": bounded(&alert.summary),
        "metadata": metadata,
        "finding_info": info,
    });
    if let Some(url) = &alert.runbook_url {
        out["remediation"] = json!({
            "desc": format!("Follow the runbook {}.", alert.runbook_name().unwrap_or(url)),
            "references": [bounded(url)],
        });
    }
    let observables = observables(alert);
    if !observables.is_empty() {
        out["observables"] = Value::Array(observables);
    }
    if with_evidence && !alert.evidence.is_empty() {
        out["evidences"] = Value::Array(alert.evidence.iter().map(evidence).collect());
    }
    out["unmapped"] = Value::Object(unmapped(alert));
    out
}

/// authwatch's severities are OCSF's 1 to 5 (Informational to Critical).
fn severity_id(severity: Severity) -> (u32, &'static str) {
    match severity {
        Severity::Info => (1, "Informational"),
        Severity::Low => (2, "Low"),
        Severity::Medium => (3, "Medium"),
        Severity::High => (4, "High"),
        Severity::Critical => (5, "Critical"),
    }
}

/// One evidence event: who (`actor.user`, `actor.session`) and from where (`src_endpoint`),
/// with the whole canonical event in `data` so that nothing is lost.
fn evidence(event: &Value) -> Value {
    let text = |k: &str| event.get(k).and_then(Value::as_str).map(bounded);
    let mut out = Map::new();
    let mut actor = Map::new();
    let mut user = Map::new();
    if let Some(uid) = text("user") {
        user.insert("uid".into(), uid.into());
    }
    if let Some(name) = text("username") {
        user.insert("name".into(), name.into());
    }
    if !user.is_empty() {
        actor.insert("user".into(), user.into());
    }
    if let Some(session) = text("session") {
        actor.insert("session".into(), json!({ "uid": session }));
    }
    if !actor.is_empty() {
        out.insert("actor".into(), actor.into());
    }
    // Event ips are parsed addresses (the decoder refuses others); parsed again here so that
    // a stored alert from elsewhere cannot put a malformed one where OCSF wants an address.
    if let Some(ip) = text("ip").filter(|ip| ip.parse::<std::net::IpAddr>().is_ok()) {
        let mut endpoint = json!({ "ip": ip });
        if let Some(location) = event.get("geo").and_then(location) {
            endpoint["location"] = location;
        }
        out.insert("src_endpoint".into(), endpoint);
    }
    out.insert("data".into(), event.clone());
    Value::Object(out)
}

/// `geo` as an OCSF location, when it names at least a country, a city or coordinates.
fn location(geo: &Value) -> Option<Value> {
    let mut out = Map::new();
    for (from, to) in [("country", "country"), ("city", "city"), ("as_org", "isp")] {
        if let Some(s) = geo.get(from).and_then(Value::as_str) {
            out.insert(to.into(), bounded(s).into());
        }
    }
    if let (Some(lat), Some(lon)) = (
        geo.get("lat").and_then(Value::as_f64),
        geo.get("lon").and_then(Value::as_f64),
    ) {
        // OCSF coordinates are [longitude, latitude], as in GeoJSON.
        out.insert("coordinates".into(), json!([lon, lat]));
    }
    (["country", "city", "coordinates"]
        .iter()
        .any(|k| out.contains_key(*k)))
    .then_some(Value::Object(out))
}

/// The alert's user name and address, for SIEMs that index observables.
fn observables(alert: &Record) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(name) = &alert.username {
        out.push(json!({
            "name": "evidences.actor.user.name",
            "type_id": OBSERVABLE_USER_NAME,
            "type": "User Name",
            "value": bounded(name),
        }));
    }
    if let Some(ip) = alert
        .ip
        .as_deref()
        .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok())
    {
        out.push(json!({
            "name": "evidences.src_endpoint.ip",
            "type_id": OBSERVABLE_IP,
            "type": "IP Address",
            "value": ip,
        }));
    }
    out
}

/// MITRE ATT&CK from the tags: one entry per technique and tactic pair (`attack.t1110.001`
/// with `attack.credential_access`), or per technique or tactic when the rule names only one
/// kind.
fn attacks(tags: &[String]) -> Vec<Value> {
    let tactics: Vec<Value> = tags
        .iter()
        .filter_map(|t| t.strip_prefix("attack."))
        .filter_map(|t| {
            TACTICS
                .iter()
                .find(|(tag, _, _)| *tag == t)
                .map(|(_, uid, name)| json!({ "uid": uid, "name": name }))
        })
        .collect();
    let techniques: Vec<Map<String, Value>> = tags
        .iter()
        .filter_map(|t| t.strip_prefix("attack.t"))
        .filter(|t| t.starts_with(|c: char| c.is_ascii_digit()))
        .map(|t| {
            let uid = format!("T{}", t.to_ascii_uppercase());
            let mut m = Map::new();
            match uid.split_once('.') {
                Some((parent, _)) => {
                    m.insert("technique".into(), json!({ "uid": parent }));
                    m.insert("sub_technique".into(), json!({ "uid": bounded(&uid) }));
                }
                None => {
                    m.insert("technique".into(), json!({ "uid": bounded(&uid) }));
                }
            }
            m
        })
        .collect();
    match (techniques.is_empty(), tactics.is_empty()) {
        (true, _) => tactics
            .into_iter()
            .map(|t| json!({ "tactic": t }))
            .collect(),
        (false, true) => techniques.into_iter().map(Value::Object).collect(),
        (false, false) => techniques
            .iter()
            .flat_map(|technique| {
                tactics.iter().map(move |tactic| {
                    let mut m = technique.clone();
                    m.insert("tactic".into(), tactic.clone());
                    Value::Object(m)
                })
            })
            .collect(),
    }
}

/// The enterprise tactics, by the tag names rules use (SPEC §2 tags).
const TACTICS: [(&str, &str, &str); 14] = [
    ("reconnaissance", "TA0043", "Reconnaissance"),
    ("resource_development", "TA0042", "Resource Development"),
    ("initial_access", "TA0001", "Initial Access"),
    ("execution", "TA0002", "Execution"),
    ("persistence", "TA0003", "Persistence"),
    ("privilege_escalation", "TA0004", "Privilege Escalation"),
    ("defense_evasion", "TA0005", "Defense Evasion"),
    ("credential_access", "TA0006", "Credential Access"),
    ("discovery", "TA0007", "Discovery"),
    ("lateral_movement", "TA0008", "Lateral Movement"),
    ("collection", "TA0009", "Collection"),
    ("command_and_control", "TA0011", "Command and Control"),
    ("exfiltration", "TA0010", "Exfiltration"),
    ("impact", "TA0040", "Impact"),
];

/// What has no OCSF field of its own: the group the rule counted by, the alert's runbook link
/// and subject as SPEC §3 names them, and any field a later authwatch adds.
fn unmapped(alert: &Record) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("group".into(), Value::Object(alert.group.clone()));
    for (key, value) in [
        ("runbook_url", &alert.runbook_url),
        ("user", &alert.user),
        ("username", &alert.username),
        ("ip", &alert.ip),
    ] {
        if let Some(v) = value {
            out.insert(key.into(), v.clone().into());
        }
    }
    for (k, v) in &alert.extra {
        out.insert(k.clone(), v.clone());
    }
    out
}

/// `s` cut to the schema's string bound (on a character boundary).
fn bounded(s: &str) -> String {
    match s.char_indices().nth(MAX_STRING) {
        Some((at, _)) => s[..at].to_string(),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::record::tests::sample;

    #[test]
    fn an_alert_is_a_detection_finding_with_its_id_rule_and_evidence() {
        let f = finding(&sample(), true);
        assert_eq!(f["class_uid"], 2004);
        assert_eq!(f["category_uid"], 2);
        assert_eq!(f["type_uid"], 200401);
        assert_eq!(f["activity_id"], 1);
        assert_eq!(f["status_id"], 1);
        assert_eq!(f["severity_id"], 4, "high");
        assert_eq!(f["time"], 1_772_437_323_000_i64);
        assert_eq!(f["metadata"]["version"], OCSF_VERSION);
        assert_eq!(f["metadata"]["product"]["name"], "authwatch");
        assert_eq!(f["metadata"]["tenant_uid"], "acme");
        let info = &f["finding_info"];
        assert_eq!(info["uid"], "0123456789abcdef0123456789abcdef");
        assert_eq!(info["title"], "Brute force against one account");
        assert_eq!(info["analytic"]["uid"], "brute-force-user");
        assert_eq!(info["analytic"]["type"], "Rule");
        assert_eq!(info["created_time"], 1_772_437_383_120_i64);
        assert_eq!(
            info["attacks"],
            json!([{
                "technique": {"uid": "T1110"},
                "sub_technique": {"uid": "T1110.001"},
                "tactic": {"uid": "TA0006", "name": "Credential Access"}
            }])
        );
        let ev = &f["evidences"][0];
        assert_eq!(ev["actor"]["user"]["name"], "a@x.io");
        assert_eq!(ev["data"]["attrs"]["x"], 1, "the whole event is kept");
        assert!(ev.get("src_endpoint").is_none(), "the event has no ip");
        assert_eq!(
            f["remediation"]["references"][0],
            "https://runbooks.example.com/account-takeover"
        );
        assert_eq!(f["unmapped"]["group"]["username"], "a@x.io");
        assert_eq!(f["unmapped"]["geo"]["country"], "FR", "unknown fields kept");
        assert_eq!(f["observables"][1]["value"], "203.0.113.45");
    }

    /// Every field the mapping writes is in the table of `docs/ocsf.md` (objects whose content
    /// is listed in one cell, such as `location`, `attacks` or `data`, count as one field).
    #[test]
    fn every_field_written_is_documented() {
        fn paths(prefix: &str, v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m)
                    if !["unmapped", "location"]
                        .contains(&prefix.rsplit('.').next().unwrap_or("")) =>
                {
                    for (k, v) in m {
                        let p = if prefix.is_empty() {
                            k.clone()
                        } else {
                            format!("{prefix}.{k}")
                        };
                        if p.ends_with(".data") {
                            out.push(p);
                        } else {
                            paths(&p, v, out);
                        }
                    }
                }
                Value::Array(items) if prefix == "evidences" => {
                    paths("evidences[]", &items[0], out)
                }
                _ => out.push(prefix.to_string()),
            }
        }
        let mut alert = sample();
        alert.evidence[0] = json!({
            "user": "u1", "username": "a@x.io", "session": "s1", "ip": "192.0.2.1",
            "geo": {"country": "NL"}
        });
        let mut found = Vec::new();
        paths("", &finding(&alert, true), &mut found);
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/ocsf.md"))
            .expect("docs/ocsf.md");
        let missing: Vec<_> = found
            .iter()
            .filter(|p| !doc.contains(&format!("`{p}`")))
            .collect();
        assert!(missing.is_empty(), "not in docs/ocsf.md: {missing:?}");
        assert!(found.len() > 40, "{found:?}");
    }

    #[test]
    fn evidence_is_left_out_on_request_and_severities_map_one_to_five() {
        assert!(finding(&sample(), false).get("evidences").is_none());
        let ids: Vec<u32> = [
            Severity::Info,
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ]
        .into_iter()
        .map(|s| severity_id(s).0)
        .collect();
        assert_eq!(ids, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn an_evidence_event_gives_actor_endpoint_and_location() {
        let e = evidence(&json!({
            "ts": "2026-03-02T07:42:03Z", "type": "login.failure", "user": "u1",
            "username": "a@x.io", "session": "s1", "ip": "2001:db8::1",
            "geo": {"country": "NL", "city": "Amsterdam", "lat": 52.37, "lon": 4.895}
        }));
        assert_eq!(e["actor"]["user"], json!({"uid": "u1", "name": "a@x.io"}));
        assert_eq!(e["actor"]["session"]["uid"], "s1");
        assert_eq!(e["src_endpoint"]["ip"], "2001:db8::1");
        assert_eq!(
            e["src_endpoint"]["location"]["coordinates"],
            json!([4.895, 52.37])
        );
        let bad = evidence(&json!({"ip": "not an address", "geo": {"asn": 1}}));
        assert!(bad.get("src_endpoint").is_none() && bad.get("actor").is_none());
        assert_eq!(bad["data"]["ip"], "not an address");
    }

    #[test]
    fn long_strings_are_cut_to_the_schema_bound_on_a_character_boundary() {
        let long = "é".repeat(MAX_STRING + 10);
        assert_eq!(bounded(&long).chars().count(), MAX_STRING);
        assert_eq!(bounded("short"), "short");
    }

    #[test]
    fn tactics_alone_and_techniques_alone_each_make_entries() {
        let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            attacks(&tags(&["attack.persistence"]))[0]["tactic"]["uid"],
            "TA0003"
        );
        assert_eq!(
            attacks(&tags(&["attack.t1078"]))[0]["technique"]["uid"],
            "T1078"
        );
        let pairs = attacks(&tags(&[
            "attack.initial_access",
            "attack.persistence",
            "attack.t1078",
        ]));
        assert_eq!(pairs.len(), 2);
        assert!(attacks(&tags(&["custom", "attack.unknown_tactic"])).is_empty());
    }
}
