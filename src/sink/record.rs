//! An alert as the outbox hands it to a sink: read back from its stored JSON, every field of
//! SPEC §3 typed, anything else (fields added later) kept in `extra`, so that no sink drops
//! a field it does not know about.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::engine::Alert;
use crate::rule::Severity;

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct Record {
    pub id: String,
    pub rule: String,
    pub title: String,
    pub severity: String,
    pub tags: Vec<String>,
    pub ts: String,
    pub detected_at: Option<String>,
    pub group: Map<String, Value>,
    pub summary: String,
    pub count: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub runbook_url: Option<String>,
    pub evidence: Vec<Value>,
    pub tenant: Option<String>,
    pub user: Option<String>,
    pub username: Option<String>,
    pub ip: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Record {
    pub fn from_json(json: &Value) -> Result<Record, serde_json::Error> {
        Record::deserialize(json)
    }

    /// An alert fresh from the engine, read as the outbox would read it back.
    pub fn from_alert(alert: &Alert) -> Result<Record, serde_json::Error> {
        Record::from_json(&serde_json::to_value(alert)?)
    }

    pub fn severity(&self) -> Severity {
        Severity::parse(&self.severity).unwrap_or(Severity::Medium)
    }

    /// The alert as a JSON object, without the evidence events unless `with_evidence`
    /// (on-call receivers get the summary and links, not raw identity data).
    pub fn to_json(&self, with_evidence: bool) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if !with_evidence && let Value::Object(map) = &mut v {
            map.remove("evidence");
        }
        v
    }

    /// The runbook link when it is one a browser elsewhere can open (http or https).
    pub fn web_runbook(&self) -> Option<&str> {
        self.runbook_url
            .as_deref()
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
    }

    /// The runbook's name: the last path segment of its link, without `.md`.
    pub fn runbook_name(&self) -> Option<&str> {
        let url = self.runbook_url.as_deref()?;
        let last = url.trim_end_matches('/').rsplit('/').next()?;
        Some(last.strip_suffix(".md").unwrap_or(last))
    }

    /// Event time as epoch milliseconds (0 when unreadable).
    pub fn ts_millis(&self) -> i64 {
        millis(&self.ts)
    }

    /// "username=a@x.io, ip=..." for messages people read.
    pub fn group_text(&self) -> String {
        crate::engine::describe_group(&self.group)
    }

    /// The ATT&CK technique ids among the tags (`attack.t1110.001` -> `T1110.001`).
    pub fn techniques(&self) -> Vec<String> {
        self.tags
            .iter()
            .filter_map(|t| t.strip_prefix("attack.t"))
            .filter(|t| t.starts_with(|c: char| c.is_ascii_digit()))
            .map(|t| format!("T{}", t.to_ascii_uppercase()))
            .collect()
    }
}

/// RFC 3339 to epoch milliseconds (0 when unreadable).
pub fn millis(ts: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(ts).map_or(0, |t| t.timestamp_millis())
}

/// This machine's name, for receivers that want a host (syslog, HEC, PagerDuty source).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// An alert as the engine writes it, with a field this build does not know.
    pub fn sample() -> Record {
        Record::from_json(&serde_json::json!({
            "id": "0123456789abcdef0123456789abcdef", "rule": "brute-force-user",
            "title": "Brute force against one account", "severity": "high",
            "tags": ["attack.credential_access", "attack.t1110.001"],
            "ts": "2026-03-02T07:42:03Z", "detected_at": "2026-03-02T07:43:03.120Z",
            "group": {"tenant": "acme", "username": "a@x.io"},
            "summary": "10 login.failure for username=a@x.io within 15m", "count": 10,
            "first_seen": "2026-03-02T07:30:00Z", "last_seen": "2026-03-02T07:42:03Z",
            "runbook_url": "https://runbooks.example.com/account-takeover",
            "evidence": [{"ts": "2026-03-02T07:42:03Z", "type": "login.failure", "username": "a@x.io", "attrs": {"x": 1}}],
            "tenant": "acme", "user": "auth0|41", "username": "a@x.io", "ip": "203.0.113.45",
            "geo": {"country": "FR"}
        }))
        .unwrap()
    }

    #[test]
    fn every_field_survives_and_evidence_is_left_out_on_request() {
        let r = sample();
        let full = r.to_json(true);
        assert_eq!(full["geo"]["country"], "FR", "unknown fields are kept");
        assert_eq!(full["evidence"][0]["attrs"]["x"], 1);
        assert!(r.to_json(false).get("evidence").is_none());
        assert_eq!(r.runbook_name(), Some("account-takeover"));
        assert_eq!(r.techniques(), ["T1110.001"]);
        assert_eq!(r.severity(), Severity::High);
        assert_eq!(r.ts_millis(), 1_772_437_323_000);
    }
}
