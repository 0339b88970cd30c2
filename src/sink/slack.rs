//! `slack`: an incoming-webhook message people read: a header with the severity and title,
//! the summary, the fields that say who and where, and a button to the runbook. Every field
//! of the alert is in the message; the evidence events only with `include_evidence = true`
//! (as a code block), since a channel is a wide audience. Every text Slack reads as markup
//! (`mrkdwn` and the notification `text`) is escaped: a username `<!channel>` must not ping.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{BoxFuture, Deliver, Record, Results, http};
use super::common::{AlertFormat, DeliveryPolicy};
use super::kind::{Kind, Options, Shared, deliver};
use crate::secret::Secret;
use crate::rule::Severity;

/// `[[sink]] kind = "slack"`: its keys, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct SlackConfig {
    /// The incoming-webhook URL: it carries its own credential, hence a secret.
    pub webhook_url: Secret,
}

impl Kind for SlackConfig {
    const SHARED: Shared = Shared {
        on_call: true,
        ..Shared::RECEIVER
    };

    fn read(o: &mut Options<'_>) -> Option<Self> {
        let webhook_url = o.required_secret("webhook_url", "the incoming webhook URL");
        if webhook_url
            .as_ref()
            .is_some_and(|u| reqwest::Url::parse(u.expose()).is_err())
        {
            o.fail("webhook_url is not a URL".into());
        }
        Some(SlackConfig {
            webhook_url: webhook_url?,
        })
    }

    fn build(
        &self,
        policy: &DeliveryPolicy,
        include_evidence: bool,
        _format: Option<AlertFormat>,
    ) -> Result<Arc<dyn Deliver>, String> {
        Slack::new(self.clone(), policy, include_evidence).map(deliver)
    }
}


/// Slack refuses section texts over 3000 characters.
const MAX_TEXT_CHARS: usize = 2900;

pub struct Slack {
    config: SlackConfig,
    client: http::Client,
    include_evidence: bool,
}

impl Slack {
    pub fn new(
        config: SlackConfig,
        policy: &DeliveryPolicy,
        include_evidence: bool,
    ) -> Result<Slack, String> {
        Ok(Slack {
            client: http::client(policy, None)?,
            config,
            include_evidence,
        })
    }

    pub fn message(&self, a: &Record) -> Value {
        let marker = match a.severity() {
            Severity::Critical => ":red_circle:",
            Severity::High => ":large_orange_circle:",
            Severity::Medium => ":large_yellow_circle:",
            Severity::Low | Severity::Info => ":white_circle:",
        };
        let head = format!("{marker} {} alert: {}", a.severity.to_uppercase(), a.title);
        let mut fields = vec![
            field("Rule", &a.rule),
            field("Group", &a.group_text()),
            field("Count", &a.count.to_string()),
            field("Seen", &format!("{} to {}", a.first_seen, a.last_seen)),
        ];
        for (label, value) in [
            ("Tenant", &a.tenant),
            ("User", &a.user),
            ("Username", &a.username),
            ("IP", &a.ip),
        ] {
            if let Some(v) = value {
                fields.push(field(label, v));
            }
        }
        let mut blocks = vec![
            json!({"type": "header", "text": {"type": "plain_text", "text": cut(&head, 150)}}),
            json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(&escape(&a.summary), MAX_TEXT_CHARS)}}),
            json!({"type": "section", "fields": fields}),
        ];
        let mut context = format!(
            "alert `{}` · event time {} · detected {}",
            a.id,
            a.ts,
            a.detected_at.as_deref().unwrap_or("-")
        );
        if !a.tags.is_empty() {
            context.push_str(&format!(" · tags {}", a.tags.join(", ")));
        }
        if !a.extra.is_empty() {
            context.push_str(&format!(" · {}", Value::Object(a.extra.clone())));
        }
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": cut(&escape(&context), MAX_TEXT_CHARS)}]}));
        match (a.web_runbook(), &a.runbook_url) {
            (Some(url), _) => blocks.push(json!({"type": "actions", "elements": [{
                "type": "button", "style": "primary", "url": url,
                "text": {"type": "plain_text", "text": "Open runbook"},
            }]})),
            // A file:// link cannot be a button; show it so it can be copied.
            (None, Some(url)) => blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("Runbook: `{}`", escape(url))}})),
            (None, None) => {}
        }
        if self.include_evidence && !a.evidence.is_empty() {
            let events: Vec<String> = a.evidence.iter().map(Value::to_string).collect();
            let text = format!(
                "```{}```",
                cut(&escape(&events.join("\n")), MAX_TEXT_CHARS - 6)
            );
            blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": text}}));
        }
        // The notification text is parsed as markup too.
        let mut text = escape(&format!("{head}: {}", a.summary));
        if let Some(url) = &a.runbook_url {
            text.push_str(&format!(" (runbook: {})", escape(url)));
        }
        json!({"text": text, "blocks": blocks})
    }
}

fn field(label: &str, value: &str) -> Value {
    json!({"type": "mrkdwn", "text": cut(&format!("*{label}*\n{}", escape(value)), 1900)})
}

/// Slack's three control characters.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

impl Deliver for Slack {
    fn deliver<'a>(&'a self, alerts: &'a [Arc<Record>]) -> BoxFuture<'a, Results> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(alerts.len());
            for a in alerts {
                let req = self
                    .client
                    .post(self.config.webhook_url.expose())
                    .json(&self.message(a));
                out.push(self.client.deliver(req).await);
            }
            out
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::sink::record::tests::sample;

    #[test]
    fn the_message_has_the_summary_fields_and_a_runbook_button_but_no_evidence() {
        let s = Slack::new(
            SlackConfig {
                webhook_url: Secret::new("http://127.0.0.1:9/x"),
            },
            &DeliveryPolicy::default(),
            false,
        )
        .unwrap();
        let m = s.message(&sample()).to_string();
        assert!(
            m.contains("HIGH alert: Brute force against one account"),
            "{m}"
        );
        assert!(m.contains("\"url\":\"https://runbooks.example.com/account-takeover\""));
        assert!(m.contains("203.0.113.45") && m.contains("FR"), "{m}");
        assert!(!m.contains("attrs"), "no evidence: {m}");
    }

    #[test]
    fn markup_in_alert_text_is_escaped_everywhere() {
        let s = Slack::new(
            SlackConfig {
                webhook_url: Secret::new("http://127.0.0.1:9/x"),
            },
            &DeliveryPolicy::default(),
            true,
        )
        .unwrap();
        let hostile = "<!channel> & <https://evil.example|click>";
        let mut j = sample().to_json(true);
        j["username"] = json!(hostile);
        j["user"] = json!(hostile);
        j["group"]["username"] = json!(hostile);
        j["summary"] = json!(format!("12 failed logins for {hostile}"));
        j["tags"] = json!([hostile]);
        j["evidence"] = json!([{"username": hostile}]);
        j["extra_field"] = json!(hostile);
        let m = s.message(&Record::from_json(&j).unwrap());
        let mut texts = vec![m["text"].as_str().unwrap().to_string()];
        collect_texts(&m["blocks"], &mut texts);
        for t in &texts {
            assert!(!t.contains('<') && !t.contains('>'), "markup left in {t:?}");
        }
        let all = texts.join("\n");
        assert!(
            all.contains("&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;"),
            "{all}"
        );
    }

    fn collect_texts(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(t)) = o.get("text") {
                    out.push(t.clone());
                }
                o.values().for_each(|v| collect_texts(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| collect_texts(v, out)),
            _ => {}
        }
    }
}
