//! ArcSight CEF (Common Event Format) for an alert: the header names the rule and severity,
//! extensions carry every field (standard keys where CEF has them, labelled custom strings
//! for the rest), escaped as the CEF specification requires.

use serde_json::Value;

use super::Record;
use crate::rule::Severity;

/// CEF severity 0-10.
pub fn severity(s: Severity) -> u8 {
    match s {
        Severity::Info => 1,
        Severity::Low => 3,
        Severity::Medium => 5,
        Severity::High => 8,
        Severity::Critical => 10,
    }
}

/// `CEF:0|authwatch|authwatch|<version>|<rule>|<title>|<severity>|<extensions>`.
pub fn line(a: &Record, include_evidence: bool) -> String {
    let mut ext: Vec<(&str, String)> = vec![
        ("externalId", a.id.clone()),
        (
            "rt",
            millis_or(&a.detected_at.clone().unwrap_or_default(), &a.ts),
        ),
        ("start", millis_or(&a.first_seen, &a.ts)),
        ("end", millis_or(&a.last_seen, &a.ts)),
        ("cnt", a.count.to_string()),
        ("msg", a.summary.clone()),
        ("cat", a.tags.join(",")),
    ];
    if let Some(v) = &a.username {
        ext.push(("suser", v.clone()));
    }
    if let Some(v) = &a.user {
        ext.push(("suid", v.clone()));
    }
    if let Some(v) = &a.ip {
        ext.push(("src", v.clone()));
    }
    let group = Value::Object(a.group.clone()).to_string();
    let mut custom = vec![
        ("tenant", a.tenant.clone().unwrap_or_default()),
        ("runbook", a.runbook_url.clone().unwrap_or_default()),
        ("group", group),
        ("eventTime", a.ts.clone()),
        ("severity", a.severity.clone()),
    ];
    if !a.extra.is_empty() {
        custom.push(("extra", Value::Object(a.extra.clone()).to_string()));
    }
    // cs1..cs6 are CEF's labelled custom strings; the evidence goes in flexString1.
    let mut labels: Vec<(String, String)> = Vec::new();
    for (i, (label, value)) in custom.into_iter().enumerate().take(6) {
        labels.push((format!("cs{}Label", i + 1), label.to_string()));
        labels.push((format!("cs{}", i + 1), value));
    }
    if include_evidence {
        let events: Vec<Value> = a.evidence.clone();
        labels.push(("flexString1Label".into(), "evidence".into()));
        labels.push(("flexString1".into(), Value::Array(events).to_string()));
    }
    // A space after the header's last `|`: extensions are space-separated, so it is legal,
    // and liblognorm's CEF parser (rsyslog's mmnormalize) drops the character there.
    let mut out = format!(
        "CEF:0|authwatch|authwatch|{}|{}|{}|{}| ",
        header(env!("CARGO_PKG_VERSION")),
        header(&a.rule),
        header(&a.title),
        severity(a.severity())
    );
    let pairs = ext
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .chain(labels);
    let mut first = true;
    for (k, v) in pairs {
        if !first {
            out.push(' ');
        }
        first = false;
        out.push_str(&k);
        out.push('=');
        out.push_str(&extension(&v));
    }
    out
}

fn millis_or(ts: &str, fallback: &str) -> String {
    let ms = super::record::millis(ts);
    let ms = if ms == 0 {
        super::record::millis(fallback)
    } else {
        ms
    };
    ms.to_string()
}

/// Header fields escape `\` and `|`.
fn header(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\r', '\n'], " ")
}

/// Extension values escape `\`, `=` and line breaks.
fn extension(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('=', "\\=")
        .replace("\r\n", "\\n")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::record::tests::sample;

    #[test]
    fn the_line_has_the_header_and_escaped_extensions() {
        let mut a = sample();
        a.title = "a|b".into();
        a.summary = "x=1\nnext".into();
        let l = line(&a, false);
        assert!(
            l.starts_with("CEF:0|authwatch|authwatch|")
                && l.contains("|brute-force-user|a\\|b|8| externalId="),
            "{l}"
        );
        assert!(l.contains("msg=x\\=1\\nnext"), "{l}");
        assert!(l.contains("externalId=0123456789abcdef0123456789abcdef"));
        assert!(
            l.contains("src=203.0.113.45") && l.contains("cs1Label=tenant cs1=acme"),
            "{l}"
        );
        assert!(!l.contains("flexString1"), "no evidence unless asked");
        assert!(line(&a, true).contains("flexString1Label=evidence"));
    }
}
