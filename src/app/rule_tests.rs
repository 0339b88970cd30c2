//! Runs the `tests:` written inside rule files: each test feeds its events to an engine that
//! holds only its own rule, and compares the alerts with `expect`.

use crate::engine::{Alert, Engine, EngineOptions};
use crate::rule::{Expectation, Rule, RuleTest};

/// The outcome of one test.
#[derive(Debug)]
pub struct TestOutcome {
    pub rule: String,
    pub test: String,
    /// `None` when it passed; otherwise what went wrong.
    pub failure: Option<String>,
}

/// Runs every test of every rule (disabled rules included: their tests must still hold).
pub fn run_all(rules: &[Rule], options: &EngineOptions) -> Vec<TestOutcome> {
    rules
        .iter()
        .flat_map(|rule| rule.tests.iter().map(move |t| (rule, t)))
        .map(|(rule, test)| TestOutcome {
            rule: rule.id.clone(),
            test: test.name.clone(),
            failure: run_one(rule, test, options).err(),
        })
        .collect()
}

/// Runs one test; the error says which expectation failed and what fired instead.
pub fn run_one(rule: &Rule, test: &RuleTest, options: &EngineOptions) -> Result<(), String> {
    let mut enabled = rule.clone();
    enabled.enabled = true;
    let mut engine = Engine::new(vec![enabled], options);
    let mut alerts = Vec::new();
    for event in &test.events {
        engine.process((**event).clone(), &mut alerts);
    }
    engine.flush(&mut alerts);
    compare(&test.expect, &alerts)
}

fn compare(expect: &[Expectation], alerts: &[Alert]) -> Result<(), String> {
    let fired = || {
        if alerts.is_empty() {
            "no alert".to_string()
        } else {
            alerts
                .iter()
                .map(|a| {
                    format!(
                        "{} (count {}, group {})",
                        a.summary,
                        a.count,
                        serde_json::Value::Object(a.group.clone())
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        }
    };
    if expect.len() != alerts.len() {
        return Err(format!(
            "expected {} alert(s), got {}: {}",
            expect.len(),
            alerts.len(),
            fired()
        ));
    }
    for (i, (want, got)) in expect.iter().zip(alerts).enumerate() {
        for (field, value) in &want.group {
            if got.group.get(field) != Some(value) {
                return Err(format!(
                    "alert {}: expected group {field}={value}, got: {}",
                    i + 1,
                    fired()
                ));
            }
        }
        if let Some(count) = want.count
            && count != got.count
        {
            return Err(format!(
                "alert {}: expected count {count}, got {}",
                i + 1,
                got.count
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::load_file_text;
    use std::path::Path;

    const RULE: &str = r#"
id: brute-force-user
title: Brute force against one account
severity: high
kind: threshold
match: {type: login.failure}
group_by: [tenant, username]
window: 15m
threshold: 10
tests:
  - name: ten failures in ten minutes fire once
    events:
      - {at: 0s, type: login.failure, username: A@x.io, ip: 198.51.100.7, reason: bad_password}
      - {repeat: 9, every: 60s, type: login.failure, username: a@x.io, ip: 198.51.100.7, reason: bad_password}
    expect:
      - {group: {username: a@x.io}, count: 10}
  - name: nine failures do not
    events:
      - {repeat: 9, every: 60s, type: login.failure, username: a@x.io}
    expect: []
  - name: this one is wrong on purpose
    events:
      - {repeat: 9, every: 60s, type: login.failure, username: "u{i}@x.io"}
    expect: [{group: {username: a@x.io}}]
"#;

    #[test]
    fn passing_tests_pass_and_a_wrong_expectation_fails() {
        let (rules, diags) = load_file_text(Path::new("r.yaml"), RULE);
        assert!(diags.is_empty(), "{diags:?}");
        let outcomes = run_all(&rules, &EngineOptions::default());
        assert_eq!(outcomes.len(), 3);
        assert!(outcomes[0].failure.is_none(), "{:?}", outcomes[0]);
        assert!(outcomes[1].failure.is_none(), "{:?}", outcomes[1]);
        let failure = outcomes[2].failure.as_deref().unwrap();
        assert!(
            failure.starts_with("expected 1 alert(s), got 0"),
            "{failure}"
        );
    }
}
