//! The alert (SPEC §3): what fired, for whom, why, and where the runbook is.

use std::fmt::Write;
use std::sync::Arc;

use serde::Serialize;

use crate::event::{Event, format_ts};
use crate::rule::Severity;

/// Evidence is capped: an alert is a pointer to an investigation, not a log export.
pub const MAX_EVIDENCE: usize = 10;

/// One alert, as delivered to every sink (sinks reshape it but keep every field).
#[derive(Clone, Debug, Serialize)]
pub struct Alert {
    /// Deterministic: the same rule, group and triggering events give the same id.
    pub id: String,
    pub rule: String,
    pub title: String,
    pub severity: Severity,
    pub tags: Vec<String>,
    /// Event time of the event that fired the rule.
    pub ts: String,
    /// Wall-clock time of detection, stamped by the edge that emits the alert
    /// (the engine itself reads no clock).
    pub detected_at: Option<String>,
    pub group: serde_json::Map<String, serde_json::Value>,
    pub summary: String,
    pub count: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub runbook_url: Option<String>,
    pub evidence: Vec<Arc<Event>>,
    pub tenant: Option<String>,
    pub user: Option<String>,
    pub username: Option<String>,
    pub ip: Option<String>,
    /// Sigma rules' `references` and `falsepositives`, for the analyst; absent otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub falsepositives: Vec<String>,
}

impl Alert {
    /// Stamps the wall-clock detection time.
    pub fn stamp_detected_now(&mut self) {
        self.detected_at = Some(format_ts(chrono::Utc::now().timestamp_millis()));
    }
}

/// A stable id over the rule, the group and every triggering event (time and fingerprint).
pub fn alert_id<'a>(
    rule: &str,
    group_key: &str,
    triggers: impl Iterator<Item = &'a Event>,
) -> String {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    hasher.update(rule.as_bytes());
    hasher.update(&[0]);
    hasher.update(group_key.as_bytes());
    hasher.update(&[0]);
    for e in triggers {
        hasher.update(&e.ts.to_le_bytes());
        hasher.update(&e.fingerprint.to_le_bytes());
    }
    format!("{:032x}", hasher.digest128())
}

/// "username=a@x.io, ip=198.51.100.7" (absent tenant left out), or "all events".
pub fn describe_group(group: &serde_json::Map<String, serde_json::Value>) -> String {
    let mut out = String::new();
    for (k, v) in group {
        let text = match v {
            serde_json::Value::Null => continue,
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if !out.is_empty() {
            out.push_str(", ");
        }
        let _ = write!(out, "{k}={text}");
    }
    if out.is_empty() {
        out.push_str("all events");
    }
    out
}

/// "15m", "1h", "1h 30m".
pub fn describe_duration(ms: i64) -> String {
    humantime::format_duration(std::time::Duration::from_millis(ms.max(0) as u64)).to_string()
}
