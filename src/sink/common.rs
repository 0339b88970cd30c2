//! What every `[[sink]]` shares whatever its kind: which alerts it receives ([`Routing`]),
//! how hard it tries ([`DeliveryPolicy`], with the defaults), and how a line-writing sink
//! writes an alert ([`AlertFormat`]).

use std::time::Duration;

use crate::rule::Severity;

/// A request that has not been answered in 10 s is treated as a failure and retried: long
/// enough for a loaded SIEM, short enough that a hung receiver is noticed within a retry cycle.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// An alert that could not be delivered for a day goes to the dead letters: by then a person
/// must look at it (the outage is no longer transient), and `redrive` sends it again.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// First retry after a failure; doubled per consecutive failure (with jitter) up to the max.
pub const DEFAULT_RETRY_INITIAL: Duration = Duration::from_secs(1);
/// Longest wait between retries: a receiver that comes back is used within 5 minutes.
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(300);
/// Alerts per request for the bulk APIs (Splunk HEC, Elasticsearch `_bulk`): a backlog after
/// an outage drains in few requests, each far below the receivers' body limits.
pub const DEFAULT_BATCH_SIZE: usize = 100;
/// Tries of one alert that the receiver answered with a failure (5xx, 408, an item error)
/// before it goes to the dead letters and the sink moves on: at the default backoff about ten
/// minutes, the last five as single-alert probes (the breaker is open), so a receiver that
/// keeps failing on one large or malformed alert holds the sink minutes, not `max_age`. Failures
/// that say nothing about the alert (no connection, a timeout, 401/403/404, a Retry-After) do
/// not count: an outage is bounded by `max_age` alone.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;
/// The most of a receiver's answer read: a 10,000-item bulk answer with an error per item is
/// about 5 MB; a receiver that streams more is not waited for, nor held in memory.
pub const DEFAULT_MAX_ANSWER_BYTES: usize = 16 << 20;

/// How hard a sink tries.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryPolicy {
    pub timeout: Duration,
    pub max_age: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// Alerts per request (bulk kinds); 1 elsewhere.
    pub batch_size: usize,
    /// Failures of one alert, counted as [`DEFAULT_MAX_ATTEMPTS`] says, before it is dead-lettered.
    pub max_attempts: u32,
    /// The most of an HTTP answer read.
    pub max_answer_bytes: usize,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            timeout: DEFAULT_TIMEOUT,
            max_age: DEFAULT_MAX_AGE,
            retry_initial: DEFAULT_RETRY_INITIAL,
            retry_max: DEFAULT_RETRY_MAX,
            batch_size: 1,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            max_answer_bytes: DEFAULT_MAX_ANSWER_BYTES,
        }
    }
}

/// How an alert is written: SPEC §3 JSON, a table for a person, or an OCSF Detection Finding
/// (`docs/ocsf.md`). Sinks take `json` and `ocsf` (`format`); `replay` and `run` take all
/// three (`--output`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::EnumString, strum::VariantNames)]
#[strum(serialize_all = "snake_case")]
pub enum AlertFormat {
    Json,
    Table,
    Ocsf,
}

impl AlertFormat {
    /// Every format's name (`--output` takes these).
    pub const NAMES: &[&str] = <AlertFormat as strum::VariantNames>::VARIANTS;

    pub fn parse(s: &str) -> Option<AlertFormat> {
        s.parse().ok()
    }
}

/// Which alerts a sink receives.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Routing {
    pub min_severity: Option<Severity>,
    /// Rule ids to include; empty means all.
    pub include_rules: Vec<String>,
    /// Rule ids to leave out (written `!id`).
    pub exclude_rules: Vec<String>,
    /// The alert must carry one of these tags (or a tag below one, `attack.t1110` covers
    /// `attack.t1110.001`); empty means any.
    pub tags: Vec<String>,
}

impl Routing {
    pub fn accepts(&self, rule: &str, severity: Severity, tags: &[String]) -> bool {
        self.min_severity.is_none_or(|min| severity >= min)
            && (self.include_rules.is_empty() || self.include_rules.iter().any(|r| r == rule))
            && !self.exclude_rules.iter().any(|r| r == rule)
            && (self.tags.is_empty()
                || tags.iter().any(|t| {
                    self.tags.iter().any(|want| {
                        t == want
                            || t.strip_prefix(want.as_str())
                                .is_some_and(|rest| rest.starts_with('.'))
                    })
                }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_route_by_prefix_on_dot_boundaries() {
        let r = Routing {
            tags: vec!["attack.t1110".into()],
            ..Routing::default()
        };
        assert!(r.accepts("x", Severity::Low, &["attack.t1110.001".into()]));
        assert!(!r.accepts("x", Severity::Low, &["attack.t11101".into()]));
    }
}
