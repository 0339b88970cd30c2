//! `splunk_hec`: a batch of alerts as HEC event objects in one POST to
//! `/services/collector/event` (`Authorization: Splunk <token>`). Each event carries the
//! whole alert as `event`, its event time as `time`, and the alert id as the indexed field
//! `alert_id`, which a search deduplicates on (`| dedup alert_id`): HEC has no document ids.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};

use super::http::Bulk;
use super::record::hostname;
use super::{BoxFuture, Deliver, Record, Results, all, http};
use super::common::{AlertFormat, DeliveryPolicy};
use super::kind::{Kind, Options, Shared, deliver};
use crate::secret::Secret;

/// `[[sink]] kind = "splunk_hec"`: its keys, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct SplunkHecConfig {
    /// The full event endpoint (`.../services/collector/event`).
    pub url: String,
    pub token: Secret,
    pub index: Option<String>,
    pub source: String,
    pub sourcetype: String,
    pub host: Option<String>,
    pub ca_file: Option<PathBuf>,
}

impl Kind for SplunkHecConfig {
    const SHARED: Shared = Shared {
        bulk: true,
        ..Shared::RECEIVER
    };

    fn read(o: &mut Options<'_>) -> Option<Self> {
        let url = o.url("url").map(|u| {
            if u.contains("/services/collector") {
                u
            } else {
                format!("{}/services/collector/event", u.trim_end_matches('/'))
            }
        });
        let token = o.required_secret("token", "the HEC token");
        let index = o.str("index");
        let source = o.str("source").unwrap_or_else(|| "authwatch".into());
        let sourcetype = o
            .str("sourcetype")
            .unwrap_or_else(|| "authwatch:alert".into());
        let host = o.str("host");
        let ca_file = o.ca_file();
        Some(SplunkHecConfig {
            url: url?,
            token: token?,
            index,
            source,
            sourcetype,
            host,
            ca_file,
        })
    }

    fn build(
        &self,
        policy: &DeliveryPolicy,
        include_evidence: bool,
        _format: Option<AlertFormat>,
    ) -> Result<Arc<dyn Deliver>, String> {
        SplunkHec::new(self.clone(), policy, include_evidence).map(deliver)
    }
}


pub struct SplunkHec {
    config: SplunkHecConfig,
    client: http::Client,
    host: String,
    include_evidence: bool,
    batch: usize,
}

impl SplunkHec {
    pub fn new(
        config: SplunkHecConfig,
        policy: &DeliveryPolicy,
        include_evidence: bool,
    ) -> Result<SplunkHec, String> {
        Ok(SplunkHec {
            client: http::client(policy, config.ca_file.as_deref())?,
            host: config.host.clone().unwrap_or_else(hostname),
            config,
            include_evidence,
            batch: policy.batch_size,
        })
    }

    /// One HEC event object.
    pub fn event(&self, alert: &Record) -> Value {
        let mut e = json!({
            "time": alert.ts_millis() as f64 / 1000.0,
            "host": self.host,
            "source": self.config.source,
            "sourcetype": self.config.sourcetype,
            "event": alert.to_json(self.include_evidence),
            "fields": {"alert_id": alert.id, "rule": alert.rule, "severity": alert.severity},
        });
        if let Some(index) = &self.config.index {
            e["index"] = json!(index);
        }
        e
    }
}

impl Deliver for SplunkHec {
    fn deliver<'a>(&'a self, alerts: &'a [Arc<Record>]) -> BoxFuture<'a, Results> {
        Box::pin(http::split_when_too_large(alerts, |part| self.send(part)))
    }

    fn max_batch(&self) -> usize {
        self.batch
    }
}

impl SplunkHec {
    async fn send(&self, alerts: &[Arc<Record>]) -> Bulk {
        {
            // HEC takes event objects one after the other in a body, not an array.
            let mut body = Vec::new();
            for a in alerts {
                serde_json::to_writer(&mut body, &self.event(a)).expect("JSON values encode");
                body.push(b'\n');
            }
            let req = self
                .client
                .post(&self.config.url)
                .header(
                    reqwest::header::AUTHORIZATION,
                    format!("Splunk {}", self.config.token.expose()),
                )
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
            let answer = match self.client.send(req).await {
                Ok(a) => a,
                Err(e) => return Bulk::Results(all(alerts.len(), Err(e))),
            };
            if http::too_large(answer.status) {
                return Bulk::TooLarge(http::quote(&answer.body));
            }
            let result = http::classify(answer.status, &answer.headers, &answer.body);
            Bulk::Results(all(alerts.len(), result))
        }
    }
}
