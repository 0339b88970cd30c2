//! `elasticsearch`: `_bulk` requests of `create` actions, the alert id as document id (a
//! second delivery of an alert is a 409 conflict, read as delivered: the index holds it once).
//! Documents use ECS names where ECS has them and keep the whole alert under `authwatch`,
//! the evidence events as JSON strings so that their free-form `attrs` never clash with the
//! index mapping. Each item's status is read: some alerts of a batch may be delivered, others
//! retried or rejected.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Value, json};

use super::http::Bulk;
use super::{BoxFuture, Deliver, Record, Results, SendError, all, http};
use super::common::{AlertFormat, DeliveryPolicy};
use super::kind::{Kind, Options, Shared, deliver};
use crate::secret::Secret;
use crate::rule::Severity;

/// `[[sink]] kind = "elasticsearch"`: its keys, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct ElasticsearchConfig {
    /// The cluster's base URL; `/_bulk` is appended.
    pub url: String,
    pub index: String,
    pub api_key: Option<Secret>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub ca_file: Option<PathBuf>,
}

impl Kind for ElasticsearchConfig {
    const SHARED: Shared = Shared {
        bulk: true,
        ..Shared::RECEIVER
    };

    fn read(o: &mut Options<'_>) -> Option<Self> {
        let url = o.url("url").map(|u| u.trim_end_matches('/').to_string());
        let index = o.str("index").unwrap_or_else(|| "authwatch-alerts".into());
        let api_key = o.secret("api_key");
        let username = o.str("username");
        let password = o.secret("password");
        if username.is_some() != password.is_some() {
            o.fail("username and password_env (or password_file) go together".into());
        }
        if api_key.is_some() && username.is_some() {
            o.fail("give api_key_env or username/password, not both".into());
        }
        let ca_file = o.ca_file();
        Some(ElasticsearchConfig {
            url: url?,
            index,
            api_key,
            username,
            password,
            ca_file,
        })
    }

    fn build(
        &self,
        policy: &DeliveryPolicy,
        include_evidence: bool,
        _format: Option<AlertFormat>,
    ) -> Result<Arc<dyn Deliver>, String> {
        Elasticsearch::new(self.clone(), policy, include_evidence).map(deliver)
    }
}


pub struct Elasticsearch {
    config: ElasticsearchConfig,
    client: http::Client,
    include_evidence: bool,
    batch: usize,
}

impl Elasticsearch {
    pub fn new(
        config: ElasticsearchConfig,
        policy: &DeliveryPolicy,
        include_evidence: bool,
    ) -> Result<Elasticsearch, String> {
        Ok(Elasticsearch {
            client: http::client(policy, config.ca_file.as_deref())?,
            config,
            include_evidence,
            batch: policy.batch_size,
        })
    }

    /// The NDJSON body: an action line and a document line per alert.
    pub fn body(&self, alerts: &[Arc<Record>]) -> Vec<u8> {
        let mut body = Vec::new();
        for a in alerts {
            let action = json!({"create": {"_index": self.config.index, "_id": a.id}});
            serde_json::to_writer(&mut body, &action).expect("JSON values encode");
            body.push(b'\n');
            serde_json::to_writer(&mut body, &ecs(a, self.include_evidence))
                .expect("JSON values encode");
            body.push(b'\n');
        }
        body
    }
}

/// ECS risk scores (as Elastic's detection rules use them) for the five severities.
fn risk_score(s: Severity) -> u8 {
    match s {
        Severity::Info => 0,
        Severity::Low => 21,
        Severity::Medium => 47,
        Severity::High => 73,
        Severity::Critical => 99,
    }
}

/// The alert as an ECS document.
pub fn ecs(a: &Record, include_evidence: bool) -> Value {
    let mut whole = a.to_json(include_evidence);
    if let Some(Value::Array(events)) = whole.get_mut("evidence") {
        for e in events.iter_mut() {
            *e = Value::String(e.to_string());
        }
    }
    let severity = a.severity();
    let mut doc = json!({
        "@timestamp": a.ts,
        "message": a.summary,
        "tags": a.tags,
        "event": {
            "kind": "alert",
            "category": ["authentication", "iam"],
            "type": ["info"],
            "id": a.id,
            "created": a.detected_at,
            "start": a.first_seen,
            "end": a.last_seen,
            "severity": severity as u8 + 1,
            "risk_score": risk_score(severity),
            "dataset": "authwatch.alert",
            "module": "authwatch",
            "reference": a.runbook_url,
        },
        "rule": {
            "id": a.rule,
            "name": a.title,
            "description": a.summary,
            "reference": a.runbook_url,
            "ruleset": "authwatch",
        },
        "log": {"level": a.severity},
        "observer": {"vendor": "authwatch", "product": "authwatch", "type": "ids"},
        "authwatch": whole,
    });
    let d = doc.as_object_mut().expect("an object");
    if a.user.is_some() || a.username.is_some() {
        d.insert("user".into(), json!({"id": a.user, "name": a.username}));
    }
    if let Some(ip) = &a.ip {
        d.insert("source".into(), json!({"ip": ip}));
    }
    if let Some(tenant) = &a.tenant {
        d.insert("organization".into(), json!({"id": tenant}));
    }
    let techniques = a.techniques();
    if !techniques.is_empty() {
        d.insert(
            "threat".into(),
            json!({"framework": "MITRE ATT&CK", "technique": {"id": techniques}}),
        );
    }
    doc
}

/// Per-item results of a `_bulk` answer; a missing or unreadable item is retried.
pub fn item_results(n: usize, answer: &Value) -> Results {
    let items = answer["items"].as_array();
    (0..n)
        .map(|i| {
            let item = items.and_then(|it| it.get(i)).and_then(|it| {
                it.as_object()
                    .and_then(|o| o.values().next())
                    .filter(|v| v["status"].is_u64())
            });
            let Some(item) = item else {
                return Err(SendError::retry(
                    "the bulk answer has no status for this alert",
                ));
            };
            let status = item["status"].as_u64().unwrap_or(0);
            let reason = format!(
                "item status {status}: {}",
                http::quote(&item["error"].to_string())
            );
            match status {
                200..=299 | 409 => Ok(()), // 409: a document with this id is already there
                // es_rejected_execution: the cluster is busy, no fault of the document.
                429 => Err(SendError::unavailable(reason)),
                500..=599 => Err(SendError::retry(reason)),
                _ => Err(SendError::Reject { reason }),
            }
        })
        .collect()
}

impl Deliver for Elasticsearch {
    fn deliver<'a>(&'a self, alerts: &'a [Arc<Record>]) -> BoxFuture<'a, Results> {
        Box::pin(http::split_when_too_large(alerts, |part| self.send(part)))
    }

    fn max_batch(&self) -> usize {
        self.batch
    }
}

impl Elasticsearch {
    async fn send(&self, alerts: &[Arc<Record>]) -> Bulk {
        {
            let mut req = self
                .client
                .post(&format!("{}/_bulk", self.config.url))
                .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
                .body(self.body(alerts));
            if let Some(key) = &self.config.api_key {
                req = req.header(
                    reqwest::header::AUTHORIZATION,
                    format!("ApiKey {}", key.expose()),
                );
            } else if let (Some(user), Some(pass)) = (&self.config.username, &self.config.password)
            {
                req = req.basic_auth(user, Some(pass.expose()));
            }
            let answer = match self.client.send(req).await {
                Ok(a) => a,
                Err(e) => return Bulk::Results(all(alerts.len(), Err(e))),
            };
            if http::too_large(answer.status) {
                return Bulk::TooLarge(http::quote(&answer.body));
            }
            if let Err(e) = http::classify(answer.status, &answer.headers, &answer.body) {
                return Bulk::Results(all(alerts.len(), Err(e)));
            }
            if answer.truncated {
                return Bulk::Results(all(
                    alerts.len(),
                    Err(SendError::retry(
                        "the bulk answer is longer than max_answer_bytes; its items cannot be read",
                    )),
                ));
            }
            Bulk::Results(match serde_json::from_str::<Value>(&answer.body) {
                Ok(answer) if answer["errors"] == json!(false) => all(alerts.len(), Ok(())),
                Ok(answer) => item_results(alerts.len(), &answer),
                Err(e) => all(
                    alerts.len(),
                    Err(SendError::retry(format!(
                        "the bulk answer is not JSON: {e}"
                    ))),
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::record::tests::sample;

    #[test]
    fn documents_carry_ecs_names_and_the_whole_alert() {
        let d = ecs(&sample(), true);
        assert_eq!(d["@timestamp"], "2026-03-02T07:42:03Z");
        assert_eq!(d["rule"]["id"], "brute-force-user");
        assert_eq!(d["source"]["ip"], "203.0.113.45");
        assert_eq!(d["user"]["name"], "a@x.io");
        assert_eq!(d["threat"]["technique"]["id"][0], "T1110.001");
        assert_eq!(d["authwatch"]["geo"]["country"], "FR");
        assert!(d["authwatch"]["evidence"][0].is_string());
    }

    #[test]
    fn bulk_items_are_read_one_by_one() {
        let answer = json!({"errors": true, "items": [
            {"create": {"status": 201}},
            {"create": {"status": 409, "error": {"type": "version_conflict_engine_exception"}}},
            {"create": {"status": 400, "error": {"type": "mapper_parsing_exception"}}},
            {"create": {"status": 429, "error": {"type": "es_rejected_execution_exception"}}},
        ]});
        let r = item_results(5, &answer);
        assert!(r[0].is_ok() && r[1].is_ok());
        assert!(matches!(r[2], Err(SendError::Reject { .. })));
        assert!(matches!(r[3], Err(SendError::Unavailable { .. })));
        assert!(matches!(r[4], Err(SendError::Retry { .. })), "missing item");
    }
}
