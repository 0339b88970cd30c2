//! Where alerts go. Each sink kind has its own module that reshapes the alert (SPEC §3) for
//! its receiver; [`build`] makes them from the configuration. Two ways in:
//!
//! - [`Router`] with synchronous [`AlertSink`]s: `replay` prints to stdout directly, and the
//!   daemon's pipeline hands every alert to the outbox writer, which is such a sink too;
//! - [`Deliver`]: the asynchronous delivery each outbox worker drives (`crate::outbox`), one
//!   per configured sink, with retries and dead letters around it.

mod cef;
mod common;
mod config;
mod http;
mod kind;
mod lines;
pub mod ocsf;
mod record;
mod table;

pub use common::{AlertFormat, DeliveryPolicy, Routing};
pub use config::{RawSink, SinkConfig, build, sinks};
pub use record::{Record, hostname};
pub use stdout::{StdoutSink, terminal_default};
pub use webhook::{SIGNATURE_HEADER, TIMESTAMP_HEADER, signature};

// Every sink kind, one line each: `module => Variant(its config type)`. The module is
// `src/sink/<module>.rs`, its name is the `kind` a `[[sink]]` names, and it implements
// `kind::Kind` for its config type; `kind::sink_kinds!` declares the modules and makes the
// `SinkKind` enum with every `match` on it from this list.
kind::sink_kinds! {
    stdout => Stdout(StdoutConfig),
    file => File(FileConfig),
    webhook => Webhook(WebhookConfig),
    splunk_hec => SplunkHec(SplunkHecConfig),
    elasticsearch => Elasticsearch(ElasticsearchConfig),
    syslog => Syslog(SyslogConfig),
    pagerduty => PagerDuty(PagerDutyConfig),
    slack => Slack(SlackConfig),
    email => Email(EmailConfig),
}

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::Alert;

/// A destination for alerts, written to synchronously.
pub trait AlertSink {
    fn deliver(&mut self, alert: &Alert) -> io::Result<()>;
    /// Pushes buffered alerts out (called after each batch and at shutdown).
    fn flush(&mut self) -> io::Result<()>;
    /// Reopens files (SIGHUP after log rotation); nothing for sinks without files.
    fn reopen(&mut self) {}
}

/// Every configured sink with its routing.
pub struct Router {
    sinks: Vec<(Routing, Box<dyn AlertSink>)>,
}

impl Router {
    pub fn new(sinks: Vec<(Routing, Box<dyn AlertSink>)>) -> Router {
        Router { sinks }
    }

    pub fn deliver(&mut self, alert: &Alert) -> io::Result<()> {
        for (routing, sink) in &mut self.sinks {
            if routing.accepts(&alert.rule, alert.severity, &alert.tags) {
                sink.deliver(alert)?;
            }
        }
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.sinks.iter_mut().try_for_each(|(_, s)| s.flush())
    }

    pub fn reopen(&mut self) {
        self.sinks.iter_mut().for_each(|(_, s)| s.reopen());
    }
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why one alert was not delivered.
#[derive(Clone, Debug, PartialEq)]
pub enum SendError {
    /// Worth trying again: the receiver answered with a failure that may be this alert's
    /// doing (a 5xx on its body), or is throttling (`after`: its Retry-After). Without
    /// `after` it counts toward the sink's `max_attempts` for the alert.
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// Worth trying again, and no fault of the alert: the receiver cannot be reached (no
    /// connection, a timeout) or refuses the sink's credentials or address, which an operator
    /// fixes. Bounded by `max_age` only, so an outage dead-letters nothing before it.
    Unavailable { reason: String },
    /// The receiver refused this alert itself (malformed for it, too large): trying again
    /// gives the same answer, so it goes to the dead letters at once.
    Reject { reason: String },
}

impl SendError {
    pub fn retry(reason: impl Into<String>) -> SendError {
        SendError::Retry {
            reason: reason.into(),
            after: None,
        }
    }

    pub fn unavailable(reason: impl Into<String>) -> SendError {
        SendError::Unavailable {
            reason: reason.into(),
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            SendError::Retry { reason, .. }
            | SendError::Unavailable { reason }
            | SendError::Reject { reason } => reason,
        }
    }

    /// Whether this failure counts toward the alert's `max_attempts`: the receiver was
    /// reached, did not ask to wait, and failed on it.
    pub fn counts_against_alert(&self) -> bool {
        matches!(self, SendError::Retry { after: None, .. })
    }
}

/// One result per alert of a batch, in order.
pub type Results = Vec<Result<(), SendError>>;

/// The same result for every alert of a batch (receivers that take a batch whole or not at all).
pub fn all(n: usize, result: Result<(), SendError>) -> Results {
    vec![result; n]
}

/// Asynchronous delivery to one receiver.
pub trait Deliver: Send + Sync {
    /// Sends `alerts` (at most [`Deliver::max_batch`]); one result per alert, in order.
    fn deliver<'a>(&'a self, alerts: &'a [Arc<Record>]) -> BoxFuture<'a, Results>;
    /// Alerts per call: 1 unless the receiver has a bulk API.
    fn max_batch(&self) -> usize {
        1
    }
    /// Reopens files after log rotation (SIGHUP).
    fn reopen(&self) {}
}
