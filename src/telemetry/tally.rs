//! Counts kept by the detection thread in plain integers, published into [`Metrics`] once per
//! batch; plus the seed's observability signals derived from events (top offenders, opt-in,
//! with bounded cardinality; active sessions). Every label value comes from a closed set:
//! what an event carries is mapped into it (`other` for anything else), so no input can grow
//! a metric family.

use std::collections::{BTreeMap, HashMap};

use super::metrics::{Labels, Metrics, label};
use crate::engine::{Alert, EngineStats};
use crate::event::{BadReason, Event, EventType};

/// Offenders tracked per minute, at most: a flood of distinct IPs cannot grow this.
const OFFENDERS_TRACKED: usize = 10_000;
/// Offenders published per minute (the gauge's cardinality).
const OFFENDERS_PUBLISHED: usize = 10;
const MINUTE_MS: i64 = 60_000;
/// The `factor` label values (SPEC §1); any other factor is counted as `other`.
const KNOWN_FACTORS: [&str; 7] = [
    "push", "sms", "totp", "webauthn", "email", "voice", "recovery",
];
/// The `reason` label values (SPEC §1); any other reason is counted as `other`.
const KNOWN_REASONS: [&str; 11] = [
    "bad_password",
    "unknown_user",
    "locked",
    "disabled",
    "breached_password",
    "mfa_denied",
    "mfa_timeout",
    "bad_code",
    "expired",
    "phishing",
    "rate_limited",
];

/// `value` if it is one of `known`, `none` when absent, else `other`.
fn bounded(value: Option<&str>, known: &[&'static str]) -> &'static str {
    match value {
        None => "none",
        Some(v) => known.iter().find(|k| **k == v).copied().unwrap_or("other"),
    }
}

#[derive(Default)]
pub struct Tally {
    events: [u64; EventType::ALL.len()],
    bad: BTreeMap<BadReason, u64>,
    alerts: BTreeMap<(String, &'static str), u64>,
    mfa_failures: BTreeMap<(&'static str, &'static str), u64>,
    /// Usernames and IPs as labels (`[http] metrics_top_offenders`): off by default, since
    /// they are personal data shown to whoever reaches `/metrics`.
    top_offenders: bool,
    failed_by_ip: HashMap<String, u64>,
    failed_by_user: HashMap<String, u64>,
    minute_started_ms: i64,
    sessions_delta: i64,
    last_late: u64,
    last_duplicates: u64,
    last_forced: u64,
}

impl Tally {
    /// Publishes the top offending usernames and IPs as labels (off unless asked for).
    pub fn publish_top_offenders(&mut self, on: bool) {
        self.top_offenders = on;
    }

    pub fn event(&mut self, e: &Event) {
        self.events[e.kind.index()] += 1;
        match e.kind {
            EventType::LoginFailure if self.top_offenders => {
                if let Some(ip) = e.ip {
                    count_offender(&mut self.failed_by_ip, &ip.to_string());
                }
                if let Some(u) = e.username.as_deref() {
                    count_offender(&mut self.failed_by_user, u);
                }
            }
            EventType::MfaFailure => {
                let key = (
                    bounded(e.factor.as_deref(), &KNOWN_FACTORS),
                    bounded(e.reason.as_deref(), &KNOWN_REASONS),
                );
                *self.mfa_failures.entry(key).or_default() += 1;
            }
            EventType::LoginSuccess => self.sessions_delta += 1,
            EventType::Logout | EventType::SessionRevoke => self.sessions_delta -= 1,
            _ => {}
        }
    }

    pub fn bad(&mut self, reason: BadReason) {
        *self.bad.entry(reason).or_default() += 1;
    }

    pub fn alert(&mut self, a: &Alert) {
        *self
            .alerts
            .entry((a.rule.clone(), a.severity.as_str()))
            .or_default() += 1;
    }

    /// Moves the counts into the metrics; `now_ms` is the wall clock (for the per-minute
    /// offender gauges).
    pub fn publish(
        &mut self,
        m: &Metrics,
        source: &str,
        format: &str,
        stats: &EngineStats,
        now_ms: i64,
    ) {
        for (i, n) in self.events.iter_mut().enumerate().filter(|(_, n)| **n > 0) {
            let kind = EventType::ALL[i];
            let labels: Labels = vec![
                ("source", source.to_string()),
                ("format", format.to_string()),
                ("type", kind.as_str().to_string()),
            ];
            m.events.get_or_create(&labels).inc_by(*n);
            match kind {
                EventType::PasswordResetRequest | EventType::PasswordReset => {
                    m.password_resets
                        .get_or_create(&label("type", kind.as_str()))
                        .inc_by(*n);
                }
                EventType::TokenReuse => {
                    m.token_reuse.inc_by(*n);
                }
                _ => {}
            }
            *n = 0;
        }
        for (reason, n) in std::mem::take(&mut self.bad) {
            m.bad_input
                .get_or_create(&label("reason", reason.as_str()))
                .inc_by(n);
        }
        for ((rule, severity), n) in std::mem::take(&mut self.alerts) {
            match rule.as_str() {
                "new-country-login" => drop(m.new_country_logins.inc_by(n)),
                "new-device-login" => drop(m.new_device_logins.inc_by(n)),
                _ => {}
            }
            m.alerts
                .get_or_create(&vec![("rule", rule), ("severity", severity.to_string())])
                .inc_by(n);
        }
        for ((factor, reason), n) in std::mem::take(&mut self.mfa_failures) {
            m.mfa_failures
                .get_or_create(&vec![
                    ("factor", factor.to_string()),
                    ("reason", reason.to_string()),
                ])
                .inc_by(n);
        }
        let sessions = (m.active_sessions.get() + std::mem::take(&mut self.sessions_delta)).max(0);
        m.active_sessions.set(sessions);
        m.late_events.inc_by(stats.late - self.last_late);
        m.duplicate_events
            .inc_by(stats.duplicates - self.last_duplicates);
        (self.last_late, self.last_duplicates) = (stats.late, stats.duplicates);
        m.forced_releases
            .inc_by(stats.forced_releases - self.last_forced);
        self.last_forced = stats.forced_releases;
        if self.top_offenders && now_ms - self.minute_started_ms >= MINUTE_MS {
            publish_top(&m.failed_logins_top_ip, "ip", &mut self.failed_by_ip);
            publish_top(
                &m.failed_logins_top_user,
                "username",
                &mut self.failed_by_user,
            );
            self.minute_started_ms = now_ms;
        }
    }
}

/// Counts one failure for `key`; a key seen for the first time is only tracked while the map
/// has room, so a flood of distinct values cannot grow it (and allocates only then).
fn count_offender(counts: &mut HashMap<String, u64>, key: &str) {
    if let Some(n) = counts.get_mut(key) {
        *n += 1;
    } else if counts.len() < OFFENDERS_TRACKED {
        counts.insert(key.to_string(), 1);
    }
}

/// Replaces a gauge family with the top offenders of the minute, and starts a new minute.
fn publish_top(
    family: &prometheus_client::metrics::family::Family<
        Labels,
        prometheus_client::metrics::gauge::Gauge,
    >,
    name: &'static str,
    counts: &mut HashMap<String, u64>,
) {
    let mut top: Vec<(String, u64)> = counts.drain().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    family.clear();
    for (key, n) in top.into_iter().take(OFFENDERS_PUBLISHED) {
        family.get_or_create(&label(name, key)).set(n as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offenders_are_bounded_to_the_top_ten() {
        let m = Metrics::new();
        let mut t = Tally::default();
        t.publish_top_offenders(true);
        for i in 0..50u8 {
            for _ in 0..=i {
                let mut e = Event::new(0, EventType::LoginFailure);
                e.ip = Some(std::net::IpAddr::from([203, 0, 113, i]));
                t.event(&e);
            }
        }
        t.publish(&m, "stdin", "native", &EngineStats::default(), MINUTE_MS);
        let text = m.render();
        let lines = text
            .lines()
            .filter(|l| l.starts_with("authwatch_failed_logins_top_ip{"))
            .count();
        assert_eq!(lines, 10, "{text}");
        assert!(
            text.contains("authwatch_failed_logins_top_ip{ip=\"203.0.113.49\"} 50"),
            "{text}"
        );
        assert!(text.contains(
            "authwatch_events_total{source=\"stdin\",format=\"native\",type=\"login.failure\"} 1275"
        ));
    }

    #[test]
    fn offenders_are_not_labels_unless_asked_for() {
        let m = Metrics::new();
        let mut t = Tally::default();
        let mut e = Event::new(0, EventType::LoginFailure);
        e.ip = Some(std::net::IpAddr::from([203, 0, 113, 9]));
        e.username = Some("victim@acme.test".into());
        t.event(&e);
        t.publish(&m, "stdin", "native", &EngineStats::default(), MINUTE_MS);
        let text = m.render();
        assert!(!text.contains("203.0.113.9"), "{text}");
        assert!(!text.contains("victim@acme.test"), "{text}");
        assert!(text.contains("type=\"login.failure\"} 1"), "{text}");
    }

    #[test]
    fn mfa_failure_labels_take_known_values_only() {
        let m = Metrics::new();
        let mut t = Tally::default();
        for i in 0..1000 {
            let mut e = Event::new(0, EventType::MfaFailure);
            e.factor = Some(if i % 2 == 0 { "push" } else { "carrier-pigeon" }.into());
            e.reason = Some(if i < 10 {
                "mfa_denied".into()
            } else {
                format!("r{i}").into()
            });
            t.event(&e);
        }
        t.event(&Event::new(0, EventType::MfaFailure));
        t.publish(&m, "stdin", "native", &EngineStats::default(), 0);
        let text = m.render();
        let mut series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("authwatch_mfa_failures_total{"))
            .collect();
        series.sort();
        assert_eq!(
            series,
            [
                "authwatch_mfa_failures_total{factor=\"none\",reason=\"none\"} 1",
                "authwatch_mfa_failures_total{factor=\"other\",reason=\"mfa_denied\"} 5",
                "authwatch_mfa_failures_total{factor=\"other\",reason=\"other\"} 495",
                "authwatch_mfa_failures_total{factor=\"push\",reason=\"mfa_denied\"} 5",
                "authwatch_mfa_failures_total{factor=\"push\",reason=\"other\"} 495",
            ],
            "{text}"
        );
    }
}
