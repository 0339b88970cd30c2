//! `[[sink]]` entries validated with every error collected: the keys every kind shares
//! (name, routing, delivery policy, format) and the kind's own keys, which its module reads
//! (`Kind::read`). Nothing here touches the network: URLs, addresses, mailboxes and CA files
//! are checked for form (and readability) only, so `check` can run anywhere.

use std::sync::Arc;

use serde::Deserialize;

use super::common::{AlertFormat, DEFAULT_BATCH_SIZE, DeliveryPolicy, Routing};
use super::kind::Options;
use super::{Deliver, SinkKind};
use crate::rule::Severity;

/// A `[[sink]]` as written: the routing keys every kind shares, plus the kind's own keys,
/// which its module reads (serde cannot deny unknown keys through a flatten).
#[derive(Debug, Deserialize)]
pub struct RawSink {
    pub kind: String,
    pub min_severity: Option<String>,
    pub rules: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
    #[serde(flatten)]
    pub options: toml::Table,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SinkConfig {
    /// Stable name: the outbox keeps this sink's position and dead letters under it.
    pub name: String,
    pub kind: SinkKind,
    pub routing: Routing,
    pub delivery: DeliveryPolicy,
    /// Whether the evidence events go out with the alert (on-call kinds default to no).
    pub include_evidence: bool,
    /// `format` of the `stdout`, `file` and `webhook` sinks; `None` elsewhere and when unset
    /// (JSON, or for `stdout` a table when it is a terminal).
    pub format: Option<AlertFormat>,
}

impl SinkConfig {
    /// A sink with the defaults of its kind (the embedded configuration's stdout sink).
    pub fn new(name: &str, kind: SinkKind) -> SinkConfig {
        SinkConfig {
            name: name.into(),
            include_evidence: !kind.shared().on_call,
            format: None,
            kind,
            routing: Routing::default(),
            delivery: DeliveryPolicy::default(),
        }
    }
}

/// The sink for one `[[sink]]`; the error names the sink and what is wrong.
pub fn build(config: &SinkConfig) -> Result<Arc<dyn Deliver>, String> {
    config
        .kind
        .build(&config.delivery, config.include_evidence, config.format)
        .map_err(|e| format!("sink `{}` ({}): {e}", config.name, config.kind.name()))
}

/// Validates every `[[sink]]` and names them; sinks with errors are left out (and reported).
pub fn sinks(raw: Vec<RawSink>, error: &mut dyn FnMut(String)) -> Vec<SinkConfig> {
    let mut out: Vec<SinkConfig> = Vec::new();
    let mut explicit = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let n = i + 1;
        if let Some((sink, named)) = sink(n, r, error) {
            if named {
                if explicit.contains(&sink.name) {
                    error(format!(
                        "[[sink]] #{n}: the name `{}` is used twice; sink names must be unique",
                        sink.name
                    ));
                    continue;
                }
                explicit.push(sink.name.clone());
            }
            out.push(sink);
        }
    }
    // Unnamed sinks are called after their kind: `webhook`, then `webhook-2`, ...
    let mut taken = explicit;
    for s in &mut out {
        if !s.name.is_empty() {
            continue;
        }
        let base = s.kind.name().to_string();
        let mut name = base.clone();
        let mut k = 2;
        while taken.contains(&name) {
            name = format!("{base}-{k}");
            k += 1;
        }
        taken.push(name.clone());
        s.name = name;
    }
    out
}

/// One `[[sink]]`; the flag says whether it was named explicitly.
fn sink(n: usize, raw: RawSink, error: &mut dyn FnMut(String)) -> Option<(SinkConfig, bool)> {
    let at = format!("[[sink]] #{n} ({})", raw.kind);
    let mut routing = Routing::default();
    if let Some(min) = &raw.min_severity {
        routing.min_severity = Severity::parse(min);
        if routing.min_severity.is_none() {
            error(format!(
                "{at}: unknown min_severity `{min}`; use one of {}",
                Severity::NAMES.join(", ")
            ));
        }
    }
    for r in raw.rules.unwrap_or_default() {
        match r.strip_prefix('!') {
            Some(excluded) => routing.exclude_rules.push(excluded.to_string()),
            None => routing.include_rules.push(r),
        }
    }
    routing.tags = raw.tags.unwrap_or_default();
    let mut o = Options::new(raw.options, at, error);
    let name = o.str("name");
    if let Some(n) = &name
        && !valid_name(n)
    {
        o.fail(format!(
            "name `{n}` must be 1 to 64 of a-z, 0-9, `-` and `_`"
        ));
    }
    let Some((shared, kind)) = SinkKind::read(&raw.kind, &mut o) else {
        o.fail(format!(
            "unknown kind `{}`; use one of {}",
            raw.kind,
            SinkKind::NAMES.join(", ")
        ));
        return None;
    };
    let mut delivery = DeliveryPolicy::default();
    let mut include_evidence = None;
    if shared.delivery {
        if let Some(d) = o.duration("timeout") {
            delivery.timeout = d;
        }
        if let Some(d) = o.duration("max_age") {
            delivery.max_age = d;
        }
        if let Some(d) = o.duration("retry_initial") {
            delivery.retry_initial = d;
        }
        if let Some(d) = o.duration("retry_max") {
            delivery.retry_max = d;
        }
        if delivery.retry_initial > delivery.retry_max {
            o.fail("retry_initial must not exceed retry_max".into());
        }
        include_evidence = o.bool("include_evidence");
        match o.take("max_attempts") {
            Some(toml::Value::Integer(n)) if (1..=1_000_000).contains(&n) => {
                delivery.max_attempts = n as u32
            }
            Some(_) => o.fail("max_attempts must be a number from 1 to 1000000".into()),
            None => {}
        }
        match o.take("max_answer_bytes") {
            Some(toml::Value::Integer(n)) if (1024..=1 << 30).contains(&n) => {
                delivery.max_answer_bytes = n as usize
            }
            Some(_) => o.fail("max_answer_bytes must be a number from 1024 to 1073741824".into()),
            None => {}
        }
    }
    if shared.bulk {
        delivery.batch_size = DEFAULT_BATCH_SIZE;
        match o.take("batch_size") {
            Some(toml::Value::Integer(b)) if (1..=10_000).contains(&b) => {
                delivery.batch_size = b as usize
            }
            Some(_) => o.fail("batch_size must be a number from 1 to 10000".into()),
            None => {}
        }
    }
    // A table is for a person at a terminal (`--output table`), not for a file or a receiver.
    let mut format = None;
    if shared.format
        && let Some(f) = o.str("format")
    {
        match AlertFormat::parse(&f) {
            Some(f @ (AlertFormat::Json | AlertFormat::Ocsf)) => format = Some(f),
            _ => o.fail(format!("format `{f}`: use json or ocsf")),
        }
    }
    o.finish();
    let failed = o.failed();
    let kind = kind?;
    if failed {
        return None;
    }
    let mut config = SinkConfig::new(name.as_deref().unwrap_or(""), kind);
    config.routing = routing;
    config.delivery = delivery;
    if let Some(e) = include_evidence {
        config.include_evidence = e;
    }
    config.format = format;
    Some((config, name.is_some()))
}
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use std::time::Duration;

    use super::super::common::DEFAULT_MAX_ATTEMPTS;
    use super::super::email::SmtpTls;
    use super::*;
    use crate::config::parse;

    #[test]
    fn every_kind_is_read_with_its_keys() {
        // SAFETY: tests in this module read only this variable, set once to the same value.
        unsafe { std::env::set_var("AUTHWATCH_TEST_SINK_SECRET", "s3cret") };
        let text = r#"
[[sink]]
kind = "webhook"
url = "https://siem.example.com/hook"
secret_env = "AUTHWATCH_TEST_SINK_SECRET"
headers = { X-Team = "secops" }
min_severity = "medium"
[[sink]]
kind = "webhook"
name = "second-hook"
url = "http://127.0.0.1:9/hook"
max_age = "1h"
retry_initial = "100ms"
max_attempts = 3
max_answer_bytes = 4096
[[sink]]
kind = "splunk_hec"
url = "https://splunk.example.com:8088"
token_env = "AUTHWATCH_TEST_SINK_SECRET"
[[sink]]
kind = "elasticsearch"
url = "https://es.example.com:9200/"
api_key_env = "AUTHWATCH_TEST_SINK_SECRET"
batch_size = 10
[[sink]]
kind = "syslog"
address = "siem.example.com:6514"
protocol = "tls"
[[sink]]
kind = "pagerduty"
routing_key_env = "AUTHWATCH_TEST_SINK_SECRET"
[[sink]]
kind = "slack"
webhook_url_env = "AUTHWATCH_TEST_SINK_SECRET"
[[sink]]
kind = "email"
smtp_url = "smtps://mail.example.com"
from = "authwatch@example.com"
to = ["oncall@example.com"]
include_evidence = true
"#
        .replace(
            "webhook_url_env = \"AUTHWATCH_TEST_SINK_SECRET\"",
            "webhook_url_file = \"/dev/null\"",
        );
        // The slack URL file is empty: refused.
        let err = parse(Path::new("a.toml"), &text).unwrap_err();
        assert_eq!(err.0.len(), 1, "{err}");
        assert!(err.0[0].contains("webhook_url is empty"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("slack-url");
        std::fs::write(&url, "https://hooks.slack.com/services/T/B/X\n").unwrap();
        let text = text.replace("/dev/null", url.to_str().unwrap());
        let c = parse(Path::new("a.toml"), &text).unwrap();
        let names: Vec<&str> = c.sinks.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "webhook",
                "second-hook",
                "splunk_hec",
                "elasticsearch",
                "syslog",
                "pagerduty",
                "slack",
                "email"
            ]
        );
        let SinkKind::SplunkHec(hec) = &c.sinks[2].kind else {
            panic!()
        };
        assert_eq!(
            hec.url,
            "https://splunk.example.com:8088/services/collector/event"
        );
        assert_eq!(c.sinks[3].delivery.batch_size, 10);
        assert_eq!(c.sinks[1].delivery.max_age, Duration::from_secs(3600));
        assert_eq!(c.sinks[1].delivery.max_attempts, 3);
        assert_eq!(c.sinks[1].delivery.max_answer_bytes, 4096);
        assert_eq!(c.sinks[0].delivery.max_attempts, DEFAULT_MAX_ATTEMPTS);
        assert!(c.sinks[0].include_evidence && !c.sinks[5].include_evidence);
        assert!(c.sinks[7].include_evidence, "configured");
        let SinkKind::Email(mail) = &c.sinks[7].kind else {
            panic!()
        };
        assert_eq!((mail.port, mail.tls), (465, SmtpTls::Implicit));
        assert!(!format!("{c:?}").contains("s3cret"), "secrets never print");
    }

    #[test]
    fn mistakes_are_all_reported_with_the_way_out() {
        let text = r#"
[[sink]]
kind = "webhook"
url = "ftp://x"
token = "inline"
[[sink]]
kind = "email"
smtp_url = "smtp://mail.example.com"
from = "not an address"
tls = "sometimes"
[[sink]]
kind = "syslog"
address = "nohost"
colour = "red"
[[sink]]
kind = "file"
name = "Bad Name"
path = "/tmp/a"
"#;
        let err = parse(Path::new("a.toml"), text).unwrap_err();
        let all = err.to_string();
        for want in [
            "must be an http(s) URL",
            "never written inline",
            "is not a mail address",
            "missing `to`",
            "tls `sometimes`",
            "must be host:port",
            "unknown key `colour`",
            "name `Bad Name`",
        ] {
            assert!(all.contains(want), "{want}: {all}");
        }
    }

    #[test]
    fn explicit_names_must_be_unique_and_defaults_avoid_them() {
        let err = parse(
            Path::new("a.toml"),
            "[[sink]]\nkind = \"stdout\"\nname = \"a\"\n[[sink]]\nkind = \"stdout\"\nname = \"a\"\n",
        )
        .unwrap_err();
        assert!(err.0[0].contains("used twice"), "{err}");
        let c = parse(
            Path::new("a.toml"),
            "[[sink]]\nkind = \"stdout\"\n[[sink]]\nkind = \"stdout\"\nname = \"stdout-2\"\n[[sink]]\nkind = \"stdout\"\n",
        )
        .unwrap();
        let names: Vec<&str> = c.sinks.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["stdout", "stdout-2", "stdout-3"]);
    }
}
