//! Makes the delivery side of each configured sink. Nothing here connects: clients and TLS
//! settings are built (so a bad CA file stops the start), connections are made on first use.

use std::sync::Arc;

use super::Deliver;
use super::elasticsearch::Elasticsearch;
use super::email::Email;
use super::file::FileDeliver;
use super::pagerduty::PagerDuty;
use super::slack::Slack;
use super::splunk_hec::SplunkHec;
use super::stdout::StdoutDeliver;
use super::syslog::Syslog;
use super::webhook::Webhook;
use crate::config::{AlertFormat, SinkConfig, SinkKind};

/// The sink for one `[[sink]]`; the error names the sink and what is wrong.
pub fn build(config: &SinkConfig) -> Result<Arc<dyn Deliver>, String> {
    let (policy, evidence) = (&config.delivery, config.include_evidence);
    let format = config.format.unwrap_or(AlertFormat::Json);
    let sink: Result<Arc<dyn Deliver>, String> = match &config.kind {
        SinkKind::Stdout => Ok(Arc::new(StdoutDeliver::new(
            config.format.unwrap_or_else(terminal_default),
        ))),
        SinkKind::File { path } => FileDeliver::open(path, format)
            .map(|f| Arc::new(f) as Arc<dyn Deliver>)
            .map_err(|e| e.to_string()),
        SinkKind::Webhook(c) => Webhook::new(c.clone(), policy, evidence, format).map(wrap),
        SinkKind::SplunkHec(c) => SplunkHec::new(c.clone(), policy, evidence).map(wrap),
        SinkKind::Elasticsearch(c) => Elasticsearch::new(c.clone(), policy, evidence).map(wrap),
        SinkKind::Syslog(c) => Syslog::new(c.clone(), policy, evidence).map(wrap),
        SinkKind::PagerDuty(c) => PagerDuty::new(c.clone(), policy, evidence).map(wrap),
        SinkKind::Slack(c) => Slack::new(c.clone(), policy, evidence).map(wrap),
        SinkKind::Email(c) => Email::new(c.clone(), policy, evidence).map(wrap),
    };
    sink.map_err(|e| format!("sink `{}` ({}): {e}", config.name, config.kind.name()))
}

/// Alerts on standard output with no format chosen: a table when a person is watching (a
/// terminal), JSON lines for a program or a file otherwise.
pub fn terminal_default() -> AlertFormat {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() {
        AlertFormat::Table
    } else {
        AlertFormat::Json
    }
}

fn wrap<D: Deliver + 'static>(d: D) -> Arc<dyn Deliver> {
    Arc::new(d)
}
