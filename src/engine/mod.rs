//! The detection engine: pure, deterministic, no IO, no clock.
//!
//! `process` takes canonical events in arrival order and returns alerts. Events pass a dedup
//! (same `id` twice is one event), then a reorder buffer that holds them for `lateness` of
//! event time, then every rule that can want their type. The same events in any order within
//! the lateness give the same alerts with the same ids.

mod alert;
mod dedup;
mod distinct;
mod group;
mod reorder;
mod sequence;
mod window;

pub use alert::{Alert, MAX_EVIDENCE, alert_id, describe_duration, describe_group};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use foldhash::HashMap;

use crate::event::{Event, EventType, format_ts};
use crate::rule::{Kind, Rule};
use dedup::Dedup;
use distinct::DistinctGroup;
use group::{GroupKey, group_json};
use reorder::{Admit, Reorder};
use sequence::SequenceGroup;
use window::WindowGroup;

/// SPEC §2: events may arrive this much out of order and still count exactly.
pub const DEFAULT_LATENESS_MS: i64 = 60_000;

/// Expired groups are swept whenever event time has moved on this much, so an idle key's
/// memory is returned within a minute of event time after its window closes.
const SWEEP_EVERY_MS: i64 = 60_000;

/// Where alert runbook links point.
#[derive(Clone, Debug)]
pub enum RunbookLinks {
    /// `[runbooks] base_url`: the link is the base plus the runbook name.
    BaseUrl(String),
    /// No base URL: link to the runbook file itself.
    Dir(PathBuf),
}

impl RunbookLinks {
    pub fn url(&self, runbook: &str) -> String {
        if runbook.starts_with("https://") {
            return runbook.to_string();
        }
        match self {
            RunbookLinks::BaseUrl(base) => {
                format!("{}/{runbook}", base.trim_end_matches('/'))
            }
            RunbookLinks::Dir(dir) => {
                let path = dir.join(format!("{runbook}.md"));
                let abs = std::path::absolute(&path).unwrap_or(path);
                format!("file://{}", abs.display())
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct EngineOptions {
    pub lateness_ms: i64,
    pub runbooks: RunbookLinks,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lateness_ms: DEFAULT_LATENESS_MS,
            runbooks: RunbookLinks::Dir(PathBuf::from("rules/runbooks")),
        }
    }
}

/// Counters the engine keeps about what it saw.
#[derive(Clone, Debug, Default)]
pub struct EngineStats {
    /// Events evaluated against the rules.
    pub events: u64,
    /// Events dropped because their `id` was already seen.
    pub duplicates: u64,
    /// Events older than `lateness` behind the newest, dropped from windows.
    pub late: u64,
    pub alerts_by_rule: BTreeMap<String, u64>,
}

/// What a counting kind reports when it fires.
pub struct Fired {
    pub count: u64,
    pub first_ts: i64,
    /// Every event that made it fire, oldest first.
    pub triggers: Vec<Arc<Event>>,
}

/// Per-group state of one rule.
enum Groups {
    /// `match` rules only keep the last alert time, and only when they suppress.
    Match(HashMap<Box<str>, i64>),
    Threshold(HashMap<Box<str>, WindowGroup>),
    Distinct(HashMap<Box<str>, DistinctGroup>),
    Sequence {
        positions: Vec<usize>,
        groups: HashMap<Box<str>, SequenceGroup>,
    },
}

struct LiveRule {
    rule: Rule,
    runbook_url: Option<String>,
    groups: Groups,
}

pub struct Engine {
    rules: Vec<LiveRule>,
    /// For each event type, the rules that can match it.
    by_type: Vec<Vec<usize>>,
    reorder: Reorder,
    dedup: Dedup,
    stats: EngineStats,
    key: GroupKey,
    last_sweep: i64,
}

impl Engine {
    pub fn new(rules: Vec<Rule>, options: &EngineOptions) -> Engine {
        let mut by_type = vec![Vec::new(); EventType::ALL.len()];
        let rules: Vec<LiveRule> = rules
            .into_iter()
            .filter(|r| r.enabled)
            .map(|rule| LiveRule {
                runbook_url: rule.runbook.as_deref().map(|r| options.runbooks.url(r)),
                groups: match &rule.kind {
                    Kind::Match => Groups::Match(HashMap::default()),
                    Kind::Threshold { .. } => Groups::Threshold(HashMap::default()),
                    Kind::Distinct { .. } => Groups::Distinct(HashMap::default()),
                    Kind::Sequence { steps, .. } => Groups::Sequence {
                        positions: sequence::positions(steps),
                        groups: HashMap::default(),
                    },
                },
                rule,
            })
            .collect();
        for (i, live) in rules.iter().enumerate() {
            for t in rule_types(&live.rule) {
                by_type[t.index()].push(i);
            }
        }
        Engine {
            rules,
            by_type,
            reorder: Reorder::new(options.lateness_ms),
            dedup: Dedup::default(),
            stats: EngineStats::default(),
            key: GroupKey::default(),
            last_sweep: i64::MIN,
        }
    }

    /// Takes one event in arrival order; alerts for every event whose turn came are appended.
    pub fn process(&mut self, event: Event, out: &mut Vec<Alert>) {
        if let Some(id) = &event.id
            && self.dedup.is_duplicate(id, event.ts)
        {
            self.stats.duplicates += 1;
            return;
        }
        if self.reorder.push(Arc::new(event)) == Admit::Late {
            self.stats.late += 1;
            return;
        }
        while let Some(e) = self.reorder.pop_ready() {
            self.evaluate(&e, out);
        }
    }

    /// Processes everything still held for lateness (end of input).
    pub fn flush(&mut self, out: &mut Vec<Alert>) {
        while let Some(e) = self.reorder.pop() {
            self.evaluate(&e, out);
        }
    }

    /// Lets event time move to `ts` without an event (a quiet live source), releasing what
    /// the lateness was holding.
    pub fn advance_to(&mut self, ts: i64, out: &mut Vec<Alert>) {
        self.reorder.advance_to(ts);
        while let Some(e) = self.reorder.pop_ready() {
            self.evaluate(&e, out);
        }
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Groups currently held per rule.
    pub fn state_sizes(&self) -> Vec<(&str, usize)> {
        self.rules
            .iter()
            .map(|l| {
                let n = match &l.groups {
                    Groups::Match(g) => g.len(),
                    Groups::Threshold(g) => g.len(),
                    Groups::Distinct(g) => g.len(),
                    Groups::Sequence { groups, .. } => groups.len(),
                };
                (l.rule.id.as_str(), n)
            })
            .collect()
    }

    fn evaluate(&mut self, e: &Arc<Event>, out: &mut Vec<Alert>) {
        self.stats.events += 1;
        if e.ts >= self.last_sweep.saturating_add(SWEEP_EVERY_MS) {
            self.sweep(e.ts);
        }
        for &i in &self.by_type[e.kind.index()] {
            let live = &mut self.rules[i];
            if !live.rule.filter.matches(e) || !self.key.build(&live.rule.group_by, e) {
                continue;
            }
            if let Some(alert) = observe(live, self.key.as_str(), e) {
                *self
                    .stats
                    .alerts_by_rule
                    .entry(alert.rule.clone())
                    .or_default() += 1;
                out.push(alert);
            }
        }
    }

    /// Drops every group whose window (and suppression) has passed.
    fn sweep(&mut self, now: i64) {
        self.last_sweep = now;
        for live in &mut self.rules {
            let keep_ms = live.rule.kind.horizon_ms().max(live.rule.suppress_ms);
            let oldest = now.saturating_sub(keep_ms);
            match &mut live.groups {
                Groups::Match(g) => g.retain(|_, fired| *fired >= oldest),
                Groups::Threshold(g) => g.retain(|_, s| s.last_seen >= oldest),
                Groups::Distinct(g) => g.retain(|_, s| s.last_seen >= oldest),
                Groups::Sequence { groups, .. } => groups.retain(|_, s| s.last_seen >= oldest),
            }
        }
    }
}

/// The types a rule can match (all of them when its `match` does not pin `type`).
fn rule_types(rule: &Rule) -> Vec<EventType> {
    let pinned = match &rule.kind {
        Kind::Sequence { steps, .. } => rule.filter.possible_types().or_else(|| {
            let per_step: Option<Vec<Vec<EventType>>> =
                steps.iter().map(|s| s.matcher.possible_types()).collect();
            per_step.map(|v| v.into_iter().flatten().collect())
        }),
        _ => rule.filter.possible_types(),
    };
    let mut types = pinned.unwrap_or_else(|| EventType::ALL.to_vec());
    types.sort();
    types.dedup();
    types
}

/// Feeds one matching event to one rule's group; returns the alert if it fired.
fn observe(live: &mut LiveRule, key: &str, e: &Arc<Event>) -> Option<Alert> {
    let rule = &live.rule;
    let suppress = rule.suppress_ms;
    let fired = match (&mut live.groups, &rule.kind) {
        (Groups::Match(last), Kind::Match) => {
            if suppress > 0 {
                if last.get(key).is_some_and(|t| e.ts - t < suppress) {
                    return None;
                }
                last.insert(key.into(), e.ts);
            }
            return Some(make_alert(
                live,
                key,
                e,
                Fired {
                    count: 1,
                    first_ts: e.ts,
                    triggers: vec![Arc::clone(e)],
                },
            ));
        }
        (
            Groups::Threshold(groups),
            Kind::Threshold {
                window_ms,
                threshold,
            },
        ) => {
            let g = entry(groups, key);
            let fired = g.observe(e, *window_ms, *threshold);
            fired.filter(|_| take_turn(&mut g.last_fired, e.ts, suppress))
        }
        (
            Groups::Distinct(groups),
            Kind::Distinct {
                field,
                window_ms,
                threshold,
            },
        ) => {
            let value = field.get(e)?.to_text();
            let g = entry(groups, key);
            let fired = g.observe(&value, e, *window_ms, *threshold);
            fired.filter(|_| take_turn(&mut g.last_fired, e.ts, suppress))
        }
        (Groups::Sequence { positions, groups }, Kind::Sequence { within_ms, steps }) => {
            let step_matches: Vec<bool> = steps.iter().map(|s| s.matcher.matches(e)).collect();
            if !step_matches.contains(&true) {
                return None;
            }
            let g = entry(groups, key);
            let fired = g.observe(e, &step_matches, positions, *within_ms);
            fired.filter(|_| take_turn(&mut g.last_fired, e.ts, suppress))
        }
        _ => unreachable!("a rule's state always matches its kind"),
    }?;
    Some(make_alert(live, key, e, fired))
}

fn entry<'a, G: Default>(groups: &'a mut HashMap<Box<str>, G>, key: &str) -> &'a mut G {
    // Look up by &str first so the common case (existing group) allocates nothing.
    if !groups.contains_key(key) {
        groups.insert(key.into(), G::default());
    }
    groups.get_mut(key).expect("inserted above")
}

/// Suppression: true (and records the alert) when the group may alert again at `ts`.
fn take_turn(last_fired: &mut Option<i64>, ts: i64, suppress_ms: i64) -> bool {
    if last_fired.is_some_and(|last| ts - last < suppress_ms) {
        return false;
    }
    *last_fired = Some(ts);
    true
}

fn make_alert(live: &LiveRule, key: &str, e: &Arc<Event>, fired: Fired) -> Alert {
    let rule = &live.rule;
    let group = group_json(&rule.group_by, e);
    let evidence_from = fired.triggers.len().saturating_sub(MAX_EVIDENCE);
    Alert {
        id: alert_id(&rule.id, key, fired.triggers.iter().map(|t| &**t)),
        rule: rule.id.clone(),
        title: rule.title.clone(),
        severity: rule.severity,
        tags: rule.tags.clone(),
        ts: format_ts(e.ts),
        detected_at: None,
        summary: summary(rule, &group, fired.count),
        group,
        count: fired.count,
        first_seen: format_ts(fired.first_ts),
        last_seen: format_ts(e.ts),
        runbook_url: live.runbook_url.clone(),
        evidence: fired.triggers[evidence_from..].to_vec(),
        tenant: e.tenant.clone(),
        user: e.user.clone(),
        username: e.username.clone(),
        ip: e.ip.map(|ip| ip.to_string()),
    }
}

/// One line an on-call engineer can read: what, for whom, how many, over what time.
fn summary(rule: &Rule, group: &serde_json::Map<String, serde_json::Value>, count: u64) -> String {
    let who = describe_group(group);
    let what = rule
        .filter
        .single_type()
        .map_or("matching events", |t| t.as_str());
    match &rule.kind {
        Kind::Match => format!("{what} for {who}"),
        Kind::Threshold { window_ms, .. } => {
            format!(
                "{count} {what} for {who} within {}",
                describe_duration(*window_ms)
            )
        }
        Kind::Distinct {
            field, window_ms, ..
        } => format!(
            "{count} distinct {field} in {what} for {who} within {}",
            describe_duration(*window_ms)
        ),
        Kind::Sequence { within_ms, steps } => {
            let chain: Vec<String> = steps
                .iter()
                .map(|s| {
                    let t = s.matcher.single_type().or(rule.filter.single_type());
                    let name = t.map_or("matching event", |t| t.as_str());
                    if s.count > 1 {
                        format!("{} {name}", s.count)
                    } else {
                        name.to_string()
                    }
                })
                .collect();
            format!(
                "{} for {who} within {}",
                chain.join(" then "),
                describe_duration(*within_ms)
            )
        }
    }
}
