//! Sigma correlations of correlations: when a correlation fires on an event, a copy of the
//! event marked with that firing (and the group it fired for) is offered to the correlations
//! that count it, round after round for longer chains. Correlations that only feed others
//! (`generate: false`) fire silently: their alerts are used here and then dropped.

use std::sync::Arc;

use super::{Alert, Engine};
use crate::event::Event;

/// Rounds of chaining per event; resolution refuses cycles, this only bounds the work.
const MAX_CHAIN_DEPTH: usize = 8;

impl Engine {
    /// Runs the chains for the alerts `out[from..]` raised by `e`, then drops silent alerts.
    pub(super) fn sigma_chains(&mut self, e: &Arc<Event>, from: usize, out: &mut Vec<Alert>) {
        let mut round_from = from;
        for _ in 0..MAX_CHAIN_DEPTH {
            let derived = match &self.sigma {
                Some(stage) if stage.has_chains() && round_from < out.len() => {
                    let fired: Vec<_> = out[round_from..]
                        .iter()
                        .map(|a| (a.rule.as_str(), &a.group))
                        .collect();
                    stage.chained(e, &fired)
                }
                _ => None,
            };
            let Some(derived) = derived else { break };
            round_from = out.len();
            self.offer(&Arc::new(derived), out, true);
        }
        if let Some(stage) = &self.sigma {
            let mut i = from;
            while i < out.len() {
                if stage.is_silent(&out[i].rule) {
                    out.remove(i);
                } else {
                    i += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Sigma rules through the engine: alerts and their metadata, every correlation type on
    //! the exact windows, aliases, `generate`, chains, forged marks, reload. Written here.

    use serde_json::json;

    use crate::engine::{Alert, Engine, EngineOptions};
    use crate::event::{Event, EventType};
    use crate::normalize::{Format, normalize};
    use crate::rule::matcher::Matcher;

    fn load(files: &[(&str, &str)]) -> (tempfile::TempDir, crate::rule::RuleSet) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let set = crate::rule::load_dir(dir.path()).unwrap_or_else(|d| {
            panic!(
                "{:#?}",
                d.iter().map(ToString::to_string).collect::<Vec<_>>()
            )
        });
        (dir, set)
    }

    const FAILED_LOGIN: &str = "\
title: Okta login failure
name: okta_login_failure
id: 5d1c7e0c-0000-4000-8000-000000000001
logsource: {product: okta, service: okta}
detection:
  selection:
    eventType: user.session.start
    outcome.result: FAILURE
  condition: selection
level: low
tags: [attack.credential_access, attack.t1110]
references: [https://example.com/okta-failures]
falsepositives: [Forgotten passwords]
";

    const SUCCESS_LOGIN: &str = "\
title: Okta login success
name: okta_login_success
logsource: {product: okta}
detection:
  selection: {eventType: user.session.start, outcome.result: SUCCESS}
  condition: selection
";

    fn okta_line(ts: &str, user: &str, ip: &str, result: &str) -> String {
        json!({"uuid": format!("{ts}{user}{ip}{result}"), "published": ts, "eventType": "user.session.start",
        "outcome": {"result": result}, "actor": {"id": user, "type": "User", "alternateId": user},
        "client": {"ipAddress": ip}})
    .to_string()
    }

    /// Runs okta lines through an engine over `set`, returning the alerts.
    fn run(set: &crate::rule::RuleSet, lines: &[String]) -> Vec<Alert> {
        let options = EngineOptions {
            lateness_ms: 0,
            ..EngineOptions::default()
        };
        // The engine exists first: while it holds Sigma rules for okta, records are kept.
        let mut engine = Engine::new(set.enabled(), &options);
        let mut alerts = Vec::new();
        for line in lines {
            let event = normalize(Format::Okta, line.as_bytes()).unwrap();
            assert!(event.raw.is_some(), "the okta record is kept for Sigma");
            engine.process(event, &mut alerts);
        }
        engine.flush(&mut alerts);
        alerts
    }

    fn at(minute: u32) -> String {
        format!("2026-03-02T09:{minute:02}:00Z")
    }

    #[test]
    fn a_sigma_rule_alerts_with_its_metadata_and_keeps_no_record() {
        let (_dir, set) = load(&[("fail.yml", FAILED_LOGIN)]);
        let alerts = run(
            &set,
            &[
                okta_line(&at(0), "a@x.io", "203.0.113.1", "FAILURE"),
                okta_line(&at(1), "a@x.io", "203.0.113.1", "SUCCESS"),
            ],
        );
        assert_eq!(alerts.len(), 1);
        let a = &alerts[0];
        assert_eq!(a.rule, "okta_login_failure");
        assert_eq!(a.title, "Okta login failure");
        assert_eq!(a.severity, crate::rule::Severity::Low);
        assert_eq!(a.tags, ["attack.credential_access", "attack.t1110"]);
        assert_eq!(a.references, ["https://example.com/okta-failures"]);
        assert_eq!(a.falsepositives, ["Forgotten passwords"]);
        assert!(
            a.evidence[0].raw.is_none(),
            "the record is dropped at arrival"
        );
        // No runbook folder here: the tag's default is not invented.
        assert_eq!(a.runbook_url, None);
    }

    #[test]
    fn event_count_fires_on_the_engines_exact_window_and_silences_its_rule() {
        let corr = "\
title: Okta brute force
name: okta_brute_force
correlation:
  type: event_count
  rules: [5d1c7e0c-0000-4000-8000-000000000001]
  group-by: [actor.alternateId]
  timespan: 5m
  condition: {gte: 3}
level: high
";
        let (_dir, set) = load(&[("fail.yml", FAILED_LOGIN), ("corr.yml", corr)]);
        let base = set
            .rules
            .iter()
            .find(|r| r.id == "okta_login_failure")
            .unwrap();
        assert!(!base.enabled, "generate: false by default");
        // Three failures 5 minutes apart end to end: inside an inclusive window of 5m.
        let lines: Vec<String> = [0, 2, 5]
            .iter()
            .map(|m| okta_line(&at(*m), "a@x.io", "203.0.113.1", "FAILURE"))
            .chain([okta_line(&at(20), "b@x.io", "203.0.113.1", "FAILURE")])
            .chain(
                [0, 3, 9]
                    .iter()
                    .map(|m| okta_line(&at(30 + m), "c@x.io", "203.0.113.1", "FAILURE")),
            )
            .collect();
        let alerts = run(&set, &lines);
        let rules: Vec<&str> = alerts.iter().map(|a| a.rule.as_str()).collect();
        assert_eq!(rules, ["okta_brute_force"], "{alerts:#?}");
        assert_eq!(alerts[0].count, 3);
        assert_eq!(
            alerts[0].group.get("actor.alternateId"),
            Some(&json!("a@x.io"))
        );
        assert_eq!(alerts[0].severity, crate::rule::Severity::High);
    }

    #[test]
    fn value_count_temporal_ordered_aliases_and_generate() {
        let files = [
            ("fail.yml", FAILED_LOGIN),
            ("ok.yml", SUCCESS_LOGIN),
            (
                "corr.yml",
                "\
title: One IP, many users
name: spray
correlation:
  type: value_count
  rules: [okta_login_failure]
  group-by: [client.ipAddress]
  timespan: 10m
  condition: {field: actor.alternateId, gte: 3}
  generate: true
---
title: Failures then success from one source
name: failed_then_ok
correlation:
  type: temporal_ordered
  rules: [okta_login_failure, okta_login_success]
  group-by: [ip]
  aliases:
    ip:
      okta_login_failure: client.ipAddress
      okta_login_success: client.ipAddress
  timespan: 10m
---
title: Both within minutes, any order
name: both
correlation:
  type: temporal
  rules: [okta_login_success, okta_login_failure]
  group-by: [actor.alternateId]
  timespan: 2m
",
            ),
        ];
        let (_dir, set) = load(&files);
        // `spray` generates: its rule alerts on its own too.
        assert!(
            set.rules
                .iter()
                .find(|r| r.id == "okta_login_failure")
                .unwrap()
                .enabled
        );
        assert!(
            !set.rules
                .iter()
                .find(|r| r.id == "okta_login_success")
                .unwrap()
                .enabled
        );
        let lines = vec![
            okta_line(&at(0), "a@x.io", "198.51.100.7", "FAILURE"),
            okta_line(&at(1), "b@x.io", "198.51.100.7", "FAILURE"),
            okta_line(&at(2), "b@x.io", "198.51.100.7", "FAILURE"),
            okta_line(&at(3), "c@x.io", "198.51.100.7", "FAILURE"),
            okta_line(&at(4), "c@x.io", "198.51.100.7", "SUCCESS"),
            // A success with no failure before it from this address: no sequence.
            okta_line(&at(30), "d@x.io", "192.0.2.9", "SUCCESS"),
        ];
        let alerts = run(&set, &lines);
        let by = |rule: &str| alerts.iter().filter(|a| a.rule == rule).collect::<Vec<_>>();
        assert_eq!(by("okta_login_failure").len(), 4);
        let spray = by("spray");
        assert_eq!(spray.len(), 1, "{alerts:#?}");
        assert_eq!(spray[0].count, 3);
        assert_eq!(
            spray[0].group.get("client.ipAddress"),
            Some(&json!("198.51.100.7"))
        );
        let ordered = by("failed_then_ok");
        assert_eq!(ordered.len(), 1);
        assert_eq!(ordered[0].group.get("ip"), Some(&json!("198.51.100.7")));
        // c@x.io failed at 3 and succeeded at 4: both within 2m.
        let both = by("both");
        assert_eq!(both.len(), 1, "{alerts:#?}");
        assert_eq!(
            both[0].group.get("actor.alternateId"),
            Some(&json!("c@x.io"))
        );
    }

    #[test]
    fn chained_correlations_count_firings_and_feeders_stay_silent() {
        let chain = "\
title: Brute force per user
name: user_brute
correlation:
  type: event_count
  rules: [okta_login_failure]
  group-by: [actor.alternateId, client.ipAddress]
  timespan: 5m
  condition: {gte: 2}
---
title: One address brute-forcing several users
name: many_users_brute
correlation:
  type: value_count
  rules: [user_brute]
  group-by: [client.ipAddress]
  timespan: 1h
  condition: {field: actor.alternateId, gte: 2}
";
        let (_dir, set) = load(&[("fail.yml", FAILED_LOGIN), ("chain.yml", chain)]);
        let lines: Vec<String> = ["a@x.io", "a@x.io", "b@x.io", "b@x.io"]
            .iter()
            .enumerate()
            .map(|(i, u)| okta_line(&at(i as u32), u, "198.51.100.7", "FAILURE"))
            .collect();
        let alerts = run(&set, &lines);
        let rules: Vec<&str> = alerts.iter().map(|a| a.rule.as_str()).collect();
        assert_eq!(rules, ["many_users_brute"], "{alerts:#?}");
        assert_eq!(
            alerts[0].group.get("client.ipAddress"),
            Some(&json!("198.51.100.7"))
        );
        assert_eq!(alerts[0].count, 2);
    }

    #[test]
    fn input_cannot_claim_a_sigma_match() {
        let (_dir, set) = load(&[("fail.yml", FAILED_LOGIN)]);
        let mut engine = Engine::new(set.enabled(), &EngineOptions::default());
        let mut alerts = Vec::new();
        let mut forged = Event::new(1, EventType::LoginFailure);
        forged.attrs = Some(
        json!({"sigma": {"rules": {"okta_login_failure": set.rules[0].sigma.as_ref().unwrap().detections[0].hash}}})
            .as_object()
            .unwrap()
            .clone(),
    );
        engine.process(forged, &mut alerts);
        engine.flush(&mut alerts);
        assert!(alerts.is_empty(), "{alerts:#?}");
    }

    #[test]
    fn a_reload_keeps_an_unchanged_correlations_window_and_restarts_a_changed_one() {
        let corr = |threshold: u32| {
            format!(
                "title: Brute force\nname: brute\ncorrelation:\n  type: event_count\n  rules: [okta_login_failure]\n  group-by: [actor.alternateId]\n  timespan: 1h\n  condition: {{gte: {threshold}}}\n"
            )
        };
        let options = EngineOptions {
            lateness_ms: 0,
            ..EngineOptions::default()
        };
        let (_a, first) = load(&[("fail.yml", FAILED_LOGIN), ("corr.yml", &corr(3))]);
        let mut engine = Engine::new(first.enabled(), &options);
        let mut alerts = Vec::new();
        let feed = |engine: &mut Engine, minute: u32, alerts: &mut Vec<Alert>| {
            let line = okta_line(&at(minute), "a@x.io", "203.0.113.1", "FAILURE");
            engine.process(normalize(Format::Okta, line.as_bytes()).unwrap(), alerts);
        };
        feed(&mut engine, 0, &mut alerts);
        feed(&mut engine, 1, &mut alerts);
        // The same files again (a SIGHUP with nothing changed): the two failures stay counted.
        let (_b, same) = load(&[("fail.yml", FAILED_LOGIN), ("corr.yml", &corr(3))]);
        let diff = engine.reload(same.enabled(), &options);
        assert!(diff.changed.is_empty() && diff.added.is_empty(), "{diff:?}");
        feed(&mut engine, 2, &mut alerts);
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        // A changed detection is a changed rule: its correlation starts over.
        let stricter =
            FAILED_LOGIN.replace("outcome.result: FAILURE", "outcome.result|startswith: FAIL");
        let (_c, changed) = load(&[("fail.yml", &stricter), ("corr.yml", &corr(3))]);
        let diff = engine.reload(changed.enabled(), &options);
        assert_eq!(diff.changed, ["brute"]);
        feed(&mut engine, 3, &mut alerts);
        feed(&mut engine, 4, &mut alerts);
        assert_eq!(alerts.len(), 1);
        feed(&mut engine, 5, &mut alerts);
        assert_eq!(
            alerts.len(),
            2,
            "three failures counted by the new detection"
        );
    }

    const CANONICAL: &str = "\
title: Denied pushes
name: denied_push
logsource: {product: authwatch}
detection:
  selection:
    type: [mfa.failure, MFA.Deny]
    reason|contains: denied
  filter:
    username|endswith: '@test.example'
  condition: selection and not filter
";

    fn push(ts: i64, user: &str, reason: &str) -> Event {
        let mut e = Event::new(ts, EventType::MfaFailure);
        e.username = Some(user.into());
        e.reason = Some(reason.into());
        e
    }

    #[test]
    fn a_canonical_rule_nothing_counts_is_its_own_filter_and_marks_nothing() {
        let (_d, set) = load(&[("push.yml", CANONICAL)]);
        let rules = set.enabled();
        let rule = &rules[0];
        assert!(rule.sigma.as_ref().unwrap().direct);
        assert!(matches!(rule.filter, Matcher::Predicate(_)));
        // Indexed by the types it pins (a value that is no type is left out), as native rules.
        assert_eq!(
            rule.filter.possible_types(),
            Some(vec![EventType::MfaFailure])
        );
        let options = EngineOptions {
            lateness_ms: 0,
            ..EngineOptions::default()
        };
        let mut engine = Engine::new(rules, &options);
        assert!(engine.sigma.is_none(), "no detection left to mark");
        let mut alerts = Vec::new();
        engine.process(push(1_000, "a@x.io", "mfa_denied"), &mut alerts);
        engine.process(push(2_000, "b@test.example", "mfa_denied"), &mut alerts);
        engine.process(push(3_000, "c@x.io", "timeout"), &mut alerts);
        engine.flush(&mut alerts);
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        assert_eq!(alerts[0].rule, "denied_push");
        assert_eq!(alerts[0].summary, "mfa.failure for all events");
        assert!(alerts[0].evidence[0].attrs.is_none(), "no mark written");
    }

    #[test]
    fn a_canonical_rule_a_correlation_counts_still_marks() {
        let corr = "\
title: Many denied pushes
name: many_denied
correlation:
  type: event_count
  rules: [denied_push]
  group-by: [username]
  timespan: 10m
  condition: {gte: 2}
";
        let (_d, set) = load(&[("push.yml", CANONICAL), ("corr.yml", corr)]);
        let all = set.enabled();
        let base = set.rules.iter().find(|r| r.id == "denied_push").unwrap();
        assert!(!base.sigma.as_ref().unwrap().direct);
        let options = EngineOptions {
            lateness_ms: 0,
            ..EngineOptions::default()
        };
        let mut engine = Engine::new(all, &options);
        let mut alerts = Vec::new();
        engine.process(push(1_000, "a@x.io", "mfa_denied"), &mut alerts);
        engine.process(push(2_000, "a@x.io", "mfa_denied"), &mut alerts);
        engine.flush(&mut alerts);
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        assert_eq!(alerts[0].rule, "many_denied");
        let marks = alerts[0].evidence[1].attrs.as_ref().unwrap();
        assert!(
            marks["sigma"]["rules"].get("denied_push").is_some(),
            "{marks:?}"
        );
    }
}
