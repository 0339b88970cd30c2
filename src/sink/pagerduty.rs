//! `pagerduty`: Events API v2 `trigger` events. The alert id is the `dedup_key`, so a second
//! delivery updates the same incident; severities map to PagerDuty's four; the runbook is a
//! link on the incident; every other field is in `custom_details` (the evidence events only
//! with `include_evidence = true`).

use std::sync::Arc;

use serde_json::{Value, json};

use super::record::hostname;
use super::{BoxFuture, Deliver, Record, Results, http};
use super::common::{AlertFormat, DeliveryPolicy};
use super::kind::{Kind, Options, Shared, deliver};
use crate::secret::Secret;
use crate::rule::Severity;

/// `[[sink]] kind = "pagerduty"`: its keys, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct PagerDutyConfig {
    pub url: String,
    pub routing_key: Secret,
    /// `payload.source`: the host name unless set.
    pub source: Option<String>,
}

/// The PagerDuty Events API v2 endpoint.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

impl Kind for PagerDutyConfig {
    const SHARED: Shared = Shared {
        on_call: true,
        ..Shared::RECEIVER
    };

    fn read(o: &mut Options<'_>) -> Option<Self> {
        let url = o
            .url_optional("url")
            .unwrap_or_else(|| PAGERDUTY_EVENTS_URL.into());
        let routing_key = o.required_secret("routing_key", "the integration key");
        let source = o.str("source");
        Some(PagerDutyConfig {
            url,
            routing_key: routing_key?,
            source,
        })
    }

    fn build(
        &self,
        policy: &DeliveryPolicy,
        include_evidence: bool,
        _format: Option<AlertFormat>,
    ) -> Result<Arc<dyn Deliver>, String> {
        PagerDuty::new(self.clone(), policy, include_evidence).map(deliver)
    }
}


/// PagerDuty truncates summaries at 1024 characters; we cut first, on a character boundary.
const MAX_SUMMARY_CHARS: usize = 1024;

pub struct PagerDuty {
    config: PagerDutyConfig,
    client: http::Client,
    source: String,
    include_evidence: bool,
}

impl PagerDuty {
    pub fn new(
        config: PagerDutyConfig,
        policy: &DeliveryPolicy,
        include_evidence: bool,
    ) -> Result<PagerDuty, String> {
        Ok(PagerDuty {
            client: http::client(policy, None)?,
            source: config.source.clone().unwrap_or_else(hostname),
            config,
            include_evidence,
        })
    }

    pub fn event(&self, a: &Record) -> Value {
        let summary: String = format!("{}: {}", a.title, a.summary)
            .chars()
            .take(MAX_SUMMARY_CHARS)
            .collect();
        let mut e = json!({
            "routing_key": self.config.routing_key.expose(),
            "event_action": "trigger",
            "dedup_key": a.id,
            "client": "authwatch",
            "payload": {
                "summary": summary,
                "source": self.source,
                "severity": severity(a.severity()),
                "timestamp": a.ts,
                "component": a.tenant.as_deref().unwrap_or("default"),
                "group": a.rule,
                "class": a.tags.first().cloned().unwrap_or_else(|| a.rule.clone()),
                "custom_details": a.to_json(self.include_evidence),
            },
        });
        if let Some(url) = &a.runbook_url {
            let text = format!("Runbook: {}", a.runbook_name().unwrap_or("open"));
            e["links"] = json!([{"href": url, "text": text}]);
            if a.web_runbook().is_some() {
                e["client_url"] = json!(url);
            }
        }
        e
    }
}

/// PagerDuty knows critical, error, warning and info.
pub fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "info",
    }
}

impl Deliver for PagerDuty {
    fn deliver<'a>(&'a self, alerts: &'a [Arc<Record>]) -> BoxFuture<'a, Results> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(alerts.len());
            for a in alerts {
                let req = self.client.post(&self.config.url).json(&self.event(a));
                out.push(self.client.deliver(req).await);
            }
            out
        })
    }
}
