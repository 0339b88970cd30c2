//! `webhook`: the alert JSON POSTed as is (or as an OCSF Detection Finding, `format = "ocsf"`), with an optional bearer token, custom headers and
//! an HMAC-SHA256 signature a receiver checks (docs/sinks.md, "Verifying webhook signatures"):
//! `X-Authwatch-Signature: sha256=<hex of HMAC(secret, timestamp + "." + body)>` with the
//! Unix-seconds timestamp in `X-Authwatch-Timestamp`, so a captured request cannot be replayed
//! outside the receiver's window.

use std::path::PathBuf;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{BoxFuture, Deliver, Record, Results, SendError, http, ocsf};
use super::common::{AlertFormat, DeliveryPolicy};
use super::kind::{Kind, Options, Shared, deliver};
use crate::secret::Secret;

/// `[[sink]] kind = "webhook"`: its keys, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookConfig {
    pub url: String,
    /// `Authorization: Bearer <token>`.
    pub token: Option<Secret>,
    /// HMAC-SHA256 key for the signature header.
    pub secret: Option<Secret>,
    pub headers: Vec<(String, String)>,
    pub ca_file: Option<PathBuf>,
}

impl Kind for WebhookConfig {
    const SHARED: Shared = Shared {
        format: true,
        ..Shared::RECEIVER
    };

    fn read(o: &mut Options<'_>) -> Option<Self> {
        let url = o.url("url");
        let token = o.secret("token");
        let secret = o.secret("secret");
        let headers = o.headers("headers");
        let ca_file = o.ca_file();
        Some(WebhookConfig {
            url: url?,
            token,
            secret,
            headers,
            ca_file,
        })
    }

    fn build(
        &self,
        policy: &DeliveryPolicy,
        include_evidence: bool,
        format: Option<AlertFormat>,
    ) -> Result<Arc<dyn Deliver>, String> {
        Webhook::new(
            self.clone(),
            policy,
            include_evidence,
            format.unwrap_or(AlertFormat::Json),
        )
        .map(deliver)
    }
}


pub const TIMESTAMP_HEADER: &str = "X-Authwatch-Timestamp";
pub const SIGNATURE_HEADER: &str = "X-Authwatch-Signature";
/// The alert id again, for receivers that deduplicate on a header (deliveries are at least once).
pub const ID_HEADER: &str = "X-Authwatch-Alert-Id";

pub struct Webhook {
    config: WebhookConfig,
    client: http::Client,
    include_evidence: bool,
    format: AlertFormat,
}

impl Webhook {
    pub fn new(
        config: WebhookConfig,
        policy: &DeliveryPolicy,
        include_evidence: bool,
        format: AlertFormat,
    ) -> Result<Webhook, String> {
        let client = http::client(policy, config.ca_file.as_deref())?;
        Ok(Webhook {
            config,
            client,
            include_evidence,
            format,
        })
    }

    async fn send(&self, alert: &Record) -> Result<(), SendError> {
        let payload = match self.format {
            AlertFormat::Ocsf => ocsf::finding(alert, self.include_evidence),
            _ => alert.to_json(self.include_evidence),
        };
        let body = serde_json::to_vec(&payload).map_err(|e| SendError::Reject {
            reason: format!("cannot encode the alert: {e}"),
        })?;
        let mut req = self
            .client
            .post(&self.config.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(ID_HEADER, &alert.id);
        for (name, value) in &self.config.headers {
            req = req.header(name, value);
        }
        if let Some(token) = &self.config.token {
            req = req.bearer_auth(token.expose());
        }
        if let Some(secret) = &self.config.secret {
            let ts = chrono::Utc::now().timestamp().to_string();
            req = req.header(TIMESTAMP_HEADER, &ts).header(
                SIGNATURE_HEADER,
                signature(secret.expose().as_bytes(), &ts, &body),
            );
        }
        self.client.deliver(req.body(body)).await
    }
}

/// `sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`.
pub fn signature(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

impl Deliver for Webhook {
    fn deliver<'a>(&'a self, alerts: &'a [Arc<Record>]) -> BoxFuture<'a, Results> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(alerts.len());
            for a in alerts {
                out.push(self.send(a).await);
            }
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_over_timestamp_dot_body() {
        // As Python computes it: hmac.new(b"Jefe", b"what do ya want.for nothing?", sha256).
        assert_eq!(
            signature(b"Jefe", "what do ya want", b"for nothing?"),
            "sha256=e33f91577b90d4b3bbd73cb61803074f1965d27701b5527942dd9ea9443af37c"
        );
    }
}
