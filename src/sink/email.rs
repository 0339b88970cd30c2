//! `email`: one message per alert through an SMTP relay (lettre): STARTTLS on `smtp://`
//! (required unless `tls` says otherwise), TLS from the first byte on `smtps://`, login from
//! `username` and `password_env`. A text and an HTML body, both with the summary, every field
//! and the runbook link; the evidence events only with `include_evidence = true`. The
//! Message-ID is derived from the alert id, so a mail client shows a redelivery as the same
//! message. A 4xx answer is retried, a 5xx one is the alert's dead letter.

use std::path::PathBuf;
use std::sync::Arc;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde_json::Value;

use super::{BoxFuture, Deliver, Record, Results, SendError};
use super::common::{AlertFormat, DeliveryPolicy};
use super::kind::{Kind, Options, Shared, deliver};
use crate::secret::Secret;

/// `[[sink]] kind = "email"`: its keys, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct EmailConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub ca_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub from: String,
    pub to: Vec<String>,
    pub subject_prefix: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// `smtps://`: TLS from the first byte.
    Implicit,
    /// `smtp://` (default): STARTTLS, refused if the server does not offer it.
    StartTls,
    /// `tls = "opportunistic"`: STARTTLS when offered.
    Opportunistic,
    /// `tls = "none"`: plain text, for a relay on the same host.
    None,
}

impl Kind for EmailConfig {
    const SHARED: Shared = Shared {
        on_call: true,
        ..Shared::RECEIVER
    };

    fn read(o: &mut Options<'_>) -> Option<Self> {
        let smtp_url = o.required("smtp_url");
        let tls_key = o.str("tls");
        let ca_file = o.ca_file();
        let username = o.str("username");
        let password = o.secret("password");
        if password.is_some() && username.is_none() {
            o.fail("password_env needs username".into());
        }
        let from = o.required("from");
        if let Some(f) = &from
            && f.parse::<lettre::message::Mailbox>().is_err()
        {
            o.fail(format!("from `{f}` is not a mail address"));
        }
        let to = o.strings("to");
        match &to {
            None => o.fail("missing `to` (a list of addresses)".into()),
            Some(list) if list.is_empty() => o.fail("`to` lists no address".into()),
            Some(list) => {
                for t in list {
                    if t.parse::<lettre::message::Mailbox>().is_err() {
                        o.fail(format!("to `{t}` is not a mail address"));
                    }
                }
            }
        }
        let subject_prefix = o
            .str("subject_prefix")
            .unwrap_or_else(|| "[authwatch]".into());
        let url = smtp_url
            .as_deref()
            .and_then(|u| match reqwest::Url::parse(u) {
                Ok(url) => Some(url),
                Err(_) => {
                    o.fail(format!(
                        "smtp_url `{u}` is not a URL like smtp://mail.example.com:587"
                    ));
                    None
                }
            })?;
        let (default_port, mut tls) = match url.scheme() {
            "smtps" => (465, SmtpTls::Implicit),
            "smtp" => (587, SmtpTls::StartTls),
            other => {
                o.fail(format!(
                    "smtp_url scheme `{other}`: use smtp:// (STARTTLS) or smtps:// (TLS)"
                ));
                return None;
            }
        };
        match (tls_key.as_deref(), tls) {
            (None, _) => {}
            (Some("starttls"), SmtpTls::StartTls) => {}
            (Some("opportunistic"), SmtpTls::StartTls) => tls = SmtpTls::Opportunistic,
            (Some("none"), SmtpTls::StartTls) => tls = SmtpTls::None,
            (Some(other), _) => o.fail(format!(
                "tls `{other}`: with smtp:// use starttls (default), opportunistic or none; smtps:// is always TLS"
            )),
        }
        if !url.username().is_empty() || url.password().is_some() {
            o.fail("smtp_url must not carry credentials; use username and password_env".into());
        }
        let Some(host) = url.host_str().map(str::to_string) else {
            o.fail("smtp_url names no host".into());
            return None;
        };
        Some(EmailConfig {
            host,
            port: url.port().unwrap_or(default_port),
            tls,
            ca_file,
            username,
            password,
            from: from?,
            to: to?,
            subject_prefix,
        })
    }

    fn build(
        &self,
        policy: &DeliveryPolicy,
        include_evidence: bool,
        _format: Option<AlertFormat>,
    ) -> Result<Arc<dyn Deliver>, String> {
        Email::new(self.clone(), policy, include_evidence).map(deliver)
    }
}


pub struct Email {
    config: EmailConfig,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    include_evidence: bool,
}

impl Email {
    pub fn new(
        config: EmailConfig,
        policy: &DeliveryPolicy,
        include_evidence: bool,
    ) -> Result<Email, String> {
        let mut tls = TlsParameters::builder(config.host.clone());
        if let Some(path) = &config.ca_file {
            let pem =
                std::fs::read(path).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            tls = tls.add_root_certificate(cert);
        }
        let tls = tls
            .build_rustls()
            .map_err(|e| format!("TLS setup for {}: {e}", config.host))?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
            .port(config.port)
            .timeout(Some(policy.timeout))
            .tls(match config.tls {
                SmtpTls::Implicit => Tls::Wrapper(tls),
                SmtpTls::StartTls => Tls::Required(tls),
                SmtpTls::Opportunistic => Tls::Opportunistic(tls),
                SmtpTls::None => Tls::None,
            });
        if let (Some(user), Some(pass)) = (&config.username, &config.password) {
            builder = builder.credentials(Credentials::new(user.clone(), pass.expose().into()));
        }
        let from = config
            .from
            .parse()
            .map_err(|e| format!("from `{}`: {e}", config.from))?;
        let to = config
            .to
            .iter()
            .map(|t| t.parse().map_err(|e| format!("to `{t}`: {e}")))
            .collect::<Result<_, String>>()?;
        Ok(Email {
            transport: builder.build(),
            config,
            from,
            to,
            include_evidence,
        })
    }

    pub fn message(&self, a: &Record) -> Result<Message, String> {
        let subject = format!(
            "{} {} {}: {} ({})",
            self.config.subject_prefix,
            a.severity.to_uppercase(),
            a.rule,
            a.title,
            a.group_text()
        );
        let mut m = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .message_id(Some(format!("<{}@authwatch>", a.id)))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("X-Authwatch-Alert-Id"),
                a.id.clone(),
            ));
        for to in &self.to {
            m = m.to(to.clone());
        }
        let (text, html) = bodies(a, self.include_evidence);
        m.multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| format!("cannot build the message: {e}"))
    }

    async fn send(&self, a: &Record) -> Result<(), SendError> {
        let message = self
            .message(a)
            .map_err(|reason| SendError::Reject { reason })?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(SendError::Reject {
                reason: format!("the mail server refused the message: {e}"),
            }),
            // A 4xx reply (greylisting, a full mailbox or spool) or no connection: the
            // server's state, not the message's, so it does not use up the alert's attempts.
            Err(e) => Err(SendError::unavailable(format!(
                "mail to {}:{} failed: {e}",
                self.config.host, self.config.port
            ))),
        }
    }
}

/// The fields people read, in order, as (label, value).
fn fields(a: &Record) -> Vec<(&'static str, String)> {
    let mut out = vec![
        ("Rule", a.rule.clone()),
        ("Severity", a.severity.clone()),
        ("Group", a.group_text()),
        ("Count", a.count.to_string()),
        ("First seen", a.first_seen.clone()),
        ("Last seen", a.last_seen.clone()),
        ("Event time", a.ts.clone()),
        ("Detected", a.detected_at.clone().unwrap_or_default()),
    ];
    for (label, v) in [
        ("Tenant", &a.tenant),
        ("User", &a.user),
        ("Username", &a.username),
        ("IP", &a.ip),
    ] {
        if let Some(v) = v {
            out.push((label, v.clone()));
        }
    }
    out.push(("Tags", a.tags.join(", ")));
    out.push(("Alert id", a.id.clone()));
    for (k, v) in &a.extra {
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out.push(("Other", format!("{k}: {text}")));
    }
    out
}

/// The text and HTML bodies.
pub fn bodies(a: &Record, include_evidence: bool) -> (String, String) {
    let runbook = a.runbook_url.clone().unwrap_or_default();
    let mut text = format!("{}\n\n{}\n\n", a.title, a.summary);
    if !runbook.is_empty() {
        text.push_str(&format!("Runbook: {runbook}\n\n"));
    }
    let mut rows = String::new();
    for (label, value) in fields(a) {
        text.push_str(&format!("{label}: {value}\n"));
        rows.push_str(&format!(
            "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
            esc(label),
            esc(&value)
        ));
    }
    let mut evidence_html = String::new();
    if include_evidence && !a.evidence.is_empty() {
        text.push_str("\nEvidence:\n");
        for e in &a.evidence {
            text.push_str(&format!("{e}\n"));
            evidence_html.push_str(&format!("{}\n", esc(&e.to_string())));
        }
        evidence_html = format!("<h3>Evidence</h3><pre>{evidence_html}</pre>");
    }
    let link = if runbook.is_empty() {
        String::new()
    } else {
        format!(
            "<p><a href=\"{0}\">Open the runbook</a> ({0})</p>",
            esc(&runbook)
        )
    };
    let html = format!(
        "<!DOCTYPE html><html><body><h2>{}</h2><p>{}</p>{link}<table>{rows}</table>{evidence_html}</body></html>",
        esc(&a.title),
        esc(&a.summary)
    );
    (text, html)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Deliver for Email {
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
    use crate::sink::record::tests::sample;

    #[test]
    fn both_bodies_carry_the_runbook_and_fields_but_not_the_evidence() {
        let (text, html) = bodies(&sample(), false);
        for body in [&text, &html] {
            assert!(body.contains("https://runbooks.example.com/account-takeover"));
            assert!(
                body.contains("203.0.113.45") && body.contains("FR"),
                "{body}"
            );
            assert!(!body.contains("attrs"), "{body}");
        }
        assert!(html.contains("<a href=\"https://runbooks.example.com/account-takeover\">"));
        assert!(bodies(&sample(), true).0.contains("attrs"));
    }
}
