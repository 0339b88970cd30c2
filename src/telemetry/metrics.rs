//! Prometheus metrics (`/metrics`), all named `authwatch_*`.
//!
//! The detection thread never touches these on its hot path: it counts into a plain
//! [`super::tally::Tally`] and publishes once per batch, so a labelled lookup costs once per
//! label combination per batch, not once per event.

use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label sets are small lists of (name, value).
pub type Labels = Vec<(&'static str, String)>;

pub struct Metrics {
    registry: Mutex<Registry>,
    pub events: Family<Labels, Counter>,
    pub bad_input: Family<Labels, Counter>,
    pub late_events: Counter,
    pub duplicate_events: Counter,
    pub forced_releases: Counter,
    pub alerts: Family<Labels, Counter>,
    pub state_groups: Family<Labels, Gauge>,
    pub state_evictions: Family<Labels, Gauge>,
    pub checkpoint_seconds: Histogram,
    pub state_size_bytes: Gauge,
    pub source_lag: Family<Labels, Gauge>,
    pub restoring_tasks: Gauge,
    pub restored_bytes: Counter,
    pub restore_seconds: Histogram,
    pub sink_deliveries: Family<Labels, Counter>,
    pub sink_failures: Family<Labels, Counter>,
    pub sink_retries: Family<Labels, Counter>,
    pub outbox_depth: Family<Labels, Gauge>,
    pub failed_logins_top_ip: Family<Labels, Gauge>,
    pub failed_logins_top_user: Family<Labels, Gauge>,
    pub new_country_logins: Counter,
    pub new_device_logins: Counter,
    pub mfa_failures: Family<Labels, Counter>,
    pub password_resets: Family<Labels, Counter>,
    pub token_reuse: Counter,
    pub active_sessions: Gauge,
    pub rules_loaded: Gauge,
    pub reloads: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let m = Metrics {
            registry: Mutex::new(Registry::with_prefix("authwatch")),
            events: Family::default(),
            bad_input: Family::default(),
            late_events: Counter::default(),
            duplicate_events: Counter::default(),
            forced_releases: Counter::default(),
            alerts: Family::default(),
            state_groups: Family::default(),
            state_evictions: Family::default(),
            // 1 ms to ~16 s.
            checkpoint_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            state_size_bytes: Gauge::default(),
            source_lag: Family::default(),
            restoring_tasks: Gauge::default(),
            restored_bytes: Counter::default(),
            // 10 ms to ~160 s.
            restore_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 15)),
            sink_deliveries: Family::default(),
            sink_failures: Family::default(),
            sink_retries: Family::default(),
            outbox_depth: Family::default(),
            failed_logins_top_ip: Family::default(),
            failed_logins_top_user: Family::default(),
            new_country_logins: Counter::default(),
            new_device_logins: Counter::default(),
            mfa_failures: Family::default(),
            password_resets: Family::default(),
            token_reuse: Counter::default(),
            active_sessions: Gauge::default(),
            rules_loaded: Gauge::default(),
            reloads: Family::default(),
        };
        {
            let mut r = m
                .registry
                .lock()
                .expect("the registry lock is never poisoned");
            r.register(
                "events",
                "Events decoded, by source, format and type",
                m.events.clone(),
            );
            r.register(
                "bad_input",
                "Input records set aside, by reason",
                m.bad_input.clone(),
            );
            r.register(
                "late_events",
                "Events older than the lateness, dropped from windows",
                m.late_events.clone(),
            );
            r.register(
                "duplicate_events",
                "Events whose id was already seen",
                m.duplicate_events.clone(),
            );
            r.register(
                "forced_releases",
                "Events released before their lateness passed because the lateness buffer was full",
                m.forced_releases.clone(),
            );
            r.register(
                "alerts",
                "Alerts raised, by rule and severity",
                m.alerts.clone(),
            );
            r.register(
                "state_groups",
                "Groups held in memory, by rule",
                m.state_groups.clone(),
            );
            r.register(
                "state_evictions",
                "Groups evicted because a rule's table was full, by rule",
                m.state_evictions.clone(),
            );
            r.register(
                "checkpoint_duration_seconds",
                "Time to take a checkpoint on the detection thread",
                m.checkpoint_seconds.clone(),
            );
            r.register(
                "state_size_bytes",
                "Size of the state store on disk",
                m.state_size_bytes.clone(),
            );
            r.register(
                "restoring_tasks",
                "Tasks whose state is being restored from the changelog topic (not ready meanwhile)",
                m.restoring_tasks.clone(),
            );
            r.register(
                "restored_bytes",
                "Bytes of task state read from the changelog topic",
                m.restored_bytes.clone(),
            );
            r.register(
                "restore_duration_seconds",
                "Time to restore one task's state from the changelog topic",
                m.restore_seconds.clone(),
            );
            r.register(
                "source_lag",
                "How far the source is behind (Kafka messages per partition, file bytes)",
                m.source_lag.clone(),
            );
            r.register(
                "sink_deliveries",
                "Alerts delivered, by sink",
                m.sink_deliveries.clone(),
            );
            r.register(
                "sink_failures",
                "Failed delivery attempts, by sink",
                m.sink_failures.clone(),
            );
            r.register(
                "sink_retries",
                "Delivery retries, by sink",
                m.sink_retries.clone(),
            );
            r.register(
                "outbox_depth",
                "Alerts waiting for delivery, by sink",
                m.outbox_depth.clone(),
            );
            r.register(
                "failed_logins_top_ip",
                "Failed logins in the last full minute for the top offending IPs",
                m.failed_logins_top_ip.clone(),
            );
            r.register(
                "failed_logins_top_user",
                "Failed logins in the last full minute for the top targeted usernames",
                m.failed_logins_top_user.clone(),
            );
            r.register(
                "new_country_logins",
                "Logins from a country new for the user (new-country-login alerts)",
                m.new_country_logins.clone(),
            );
            r.register(
                "new_device_logins",
                "Logins from a device new for the user (new-device-login alerts)",
                m.new_device_logins.clone(),
            );
            r.register(
                "mfa_failures",
                "MFA failures, by factor and reason",
                m.mfa_failures.clone(),
            );
            r.register(
                "password_resets",
                "Password reset requests and resets, by type",
                m.password_resets.clone(),
            );
            r.register(
                "token_reuse",
                "Refresh tokens presented again after rotation",
                m.token_reuse.clone(),
            );
            r.register(
                "active_sessions",
                "Sessions started minus sessions ended, revoked or expired",
                m.active_sessions.clone(),
            );
            r.register(
                "rules_loaded",
                "Rules in the running set",
                m.rules_loaded.clone(),
            );
            r.register(
                "rule_reloads",
                "Rule reloads, by outcome",
                m.reloads.clone(),
            );
        }
        m
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self
            .registry
            .lock()
            .expect("the registry lock is never poisoned");
        encode(&mut out, &registry).expect("writing to a String cannot fail");
        out
    }
}

/// One label.
pub fn label(name: &'static str, value: impl Into<String>) -> Labels {
    vec![(name, value.into())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_with_the_prefix_and_labels() {
        let m = Metrics::new();
        m.events
            .get_or_create(&vec![("type", "login.failure".to_string())])
            .inc_by(3);
        let text = m.render();
        assert!(
            text.contains("authwatch_events_total{type=\"login.failure\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE authwatch_late_events counter"),
            "{text}"
        );
    }
}
