//! Swapping the rule set of a running engine: rules whose kind, match, grouping and window
//! did not change keep their state; the others start empty.

use std::collections::HashMap;

use super::{Engine, EngineOptions, LiveRule, persist};
use crate::rule::Rule;

/// What a reload changed, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RuleDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Rules whose counting changed: their state starts empty.
    pub changed: Vec<String>,
    /// Rules whose title, severity, tags, runbook or suppression changed: state kept.
    pub retitled: Vec<String>,
    pub unchanged: usize,
}

impl RuleDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.retitled.is_empty()
    }
}

impl Engine {
    /// Replaces the rules. The reorder buffer, dedup and clock carry on untouched.
    pub fn reload(&mut self, rules: Vec<Rule>, options: &EngineOptions) -> RuleDiff {
        let fresh = Engine::new(rules, options);
        let mut old: HashMap<String, LiveRule> = self
            .rules
            .drain(..)
            .map(|l| (l.rule.id.clone(), l))
            .collect();
        let mut diff = RuleDiff::default();
        let mut rules = fresh.rules;
        for live in &mut rules {
            match old.remove(&live.rule.id) {
                Some(prev) if prev.shape == live.shape => {
                    live.groups = prev.groups;
                    if same_presentation(&prev.rule, &live.rule) {
                        diff.unchanged += 1;
                    } else {
                        diff.retitled.push(live.rule.id.clone());
                    }
                }
                Some(_) => diff.changed.push(live.rule.id.clone()),
                None => diff.added.push(live.rule.id.clone()),
            }
        }
        diff.removed = old.into_keys().collect();
        diff.removed.sort();
        for id in &diff.removed {
            self.stale_keys
                .push([persist::RULE_PREFIX, id.as_bytes()].concat());
        }
        if !diff.removed.is_empty() || !diff.changed.is_empty() {
            // Their groups are in stored blobs: rewrite the log without them.
            self.group_log.request_snapshot();
        }
        self.rules = rules;
        self.by_type = fresh.by_type;
        self.sigma_rules = fresh.sigma_rules;
        self.sigma = fresh.sigma;
        self.options = options.clone();
        diff
    }

    /// The number of rules running.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }
}

fn same_presentation(a: &Rule, b: &Rule) -> bool {
    a.title == b.title
        && a.description == b.description
        && a.severity == b.severity
        && a.tags == b.tags
        && a.runbook == b.runbook
        && a.suppress_ms == b.suppress_ms
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventType};
    use crate::rule::load_file_text;
    use std::path::Path;

    fn rules(threshold_b: u32, title_a: &str) -> Vec<Rule> {
        let text = format!(
            "- {{id: a, title: {title_a}, severity: low, kind: threshold, match: {{type: login.failure}}, group_by: [username], window: 1h, threshold: 3}}\n- {{id: b, title: B, severity: low, kind: threshold, match: {{type: login.failure}}, group_by: [username], window: 1h, threshold: {threshold_b}}}\n"
        );
        let (rules, diags) = load_file_text(Path::new("r.yaml"), &text);
        assert!(diags.is_empty(), "{diags:?}");
        rules
    }

    #[test]
    fn unchanged_rules_keep_their_counts_and_changed_ones_start_over() {
        let options = EngineOptions {
            lateness_ms: 0,
            ..EngineOptions::default()
        };
        let mut engine = Engine::new(rules(3, "A"), &options);
        let mut alerts = Vec::new();
        let fail = |ts| {
            let mut e = Event::new(ts, EventType::LoginFailure);
            e.username = Some("u".into());
            e.with_computed_fingerprint()
        };
        engine.process(fail(1), &mut alerts);
        engine.process(fail(2), &mut alerts);
        let diff = engine.reload(rules(4, "A renamed"), &options);
        assert_eq!(diff.changed, ["b"]);
        assert_eq!(diff.retitled, ["a"]);
        engine.process(fail(3), &mut alerts);
        // `a` kept its two failures, so the third fires; `b` restarted and holds one.
        let fired: Vec<&str> = alerts.iter().map(|a| a.rule.as_str()).collect();
        assert_eq!(fired, ["a"]);
        assert_eq!(alerts[0].title, "A renamed");
    }
}
