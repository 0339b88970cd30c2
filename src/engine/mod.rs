//! The detection engine: pure, deterministic, no IO, no clock.
//!
//! `process` takes canonical events in arrival order and returns alerts. Events pass a dedup
//! (same `id` twice is one event), then a reorder buffer that holds them for `lateness` of
//! event time, then every rule that can want their type. The same events in any order within
//! the lateness give the same alerts with the same ids.

mod alert;
mod baseline;
mod bucket;
mod dedup;
mod distinct;
mod drift;
mod group;
mod held;
mod held_log;
mod matchkind;
mod persist;
mod reload;
mod reorder;
mod sequence;
mod shape;
mod sigma_chain;
mod spike;
mod table;
mod travel;
mod window;

pub use alert::{Alert, MAX_EVIDENCE, alert_id, describe_duration, describe_group};
pub use baseline::{BaselineGroup, MAX_VALUES_PER_GROUP, ValueId};
pub use persist::{RestoreReport, STATE_PREFIXES};
pub use reload::RuleDiff;
pub use travel::{Place, Trip, distance_km};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::event::{Event, EventType, format_ts};
use crate::rule::{Kind, Rule};
use baseline::Novelty;
use bucket::{CountGroup, SketchGroup};
use dedup::Dedup;
use distinct::DistinctGroup;
use drift::DriftGroup;
use group::{GroupKey, group_json};
use matchkind::MatchGroup;
use reorder::{Admit, Bounds, Reorder};
use sequence::SequenceGroup;
use spike::SpikeGroup;
use table::Table;
use travel::TravelGroup;
use window::WindowGroup;

/// SPEC §2: events may arrive this much out of order and still count exactly.
pub const DEFAULT_LATENESS_MS: i64 = 60_000;

/// Groups one rule may hold at once before the least recently seen are evicted. At a few
/// hundred bytes a group, 100k groups per rule keeps a flood of millions of attacker-chosen
/// usernames or IPs to tens of megabytes per rule.
pub const DEFAULT_MAX_GROUPS_PER_RULE: usize = 100_000;

/// `[rules] max_held_events`: events the lateness buffer holds before the oldest are released
/// early. A minute of lateness at 15k events/s, well above an identity provider's peak.
pub const DEFAULT_MAX_HELD_EVENTS: usize = 1_000_000;

/// `[rules] max_held_bytes`: the same bound in estimated memory (a typical event is 500 to
/// 1,000 bytes held), so a flood of large events is held to this too.
pub const DEFAULT_MAX_HELD_BYTES: usize = 256 << 20;

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
    pub max_groups_per_rule: usize,
    pub max_held_events: usize,
    pub max_held_bytes: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lateness_ms: DEFAULT_LATENESS_MS,
            runbooks: RunbookLinks::Dir(PathBuf::from("rules/runbooks")),
            max_groups_per_rule: DEFAULT_MAX_GROUPS_PER_RULE,
            max_held_events: DEFAULT_MAX_HELD_EVENTS,
            max_held_bytes: DEFAULT_MAX_HELD_BYTES,
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
    /// Events released before their lateness passed because the buffer was full.
    pub forced_releases: u64,
    pub alerts_by_rule: BTreeMap<String, u64>,
}

impl EngineStats {
    /// Adds another engine's counts (the engines of several tasks make one daemon's figures).
    pub fn add(&mut self, other: &EngineStats) {
        self.events += other.events;
        self.duplicates += other.duplicates;
        self.late += other.late;
        self.forced_releases += other.forced_releases;
        for (rule, n) in &other.alerts_by_rule {
            *self.alerts_by_rule.entry(rule.clone()).or_default() += n;
        }
    }
}

/// What [`Engine::bound_clock`] corrected.
#[derive(Debug, PartialEq, Eq)]
pub struct ClockFix {
    /// The event clock as restored, and as corrected (none: the next event sets it).
    pub was: i64,
    pub to: Option<i64>,
    pub dropped_held: usize,
    pub dropped_groups: usize,
}

/// What a counting kind reports when it fires.
pub struct Fired {
    pub count: u64,
    pub first_ts: i64,
    /// Every event that made it fire, oldest first.
    pub triggers: Vec<Arc<Event>>,
    /// What the summary says beyond the count, for kinds that have more to say.
    pub note: Note,
}

/// Kind-specific facts for an alert's summary.
pub enum Note {
    None,
    /// `new_value`: the new value (`field=value`) and what the baseline held.
    NewValue {
        value: String,
        known: Novelty,
    },
    /// `impossible_travel`: from where to where, how far, how fast.
    Trip(String),
    /// `new_value` over several fields: each new value and what its baseline held.
    Changed(String),
    /// `spike`: what the group usually counts.
    Baseline(String),
}

/// Per-group state of one rule.
enum Groups {
    /// `match` rules only keep the last alert time, and only when they suppress.
    Match(Table<MatchGroup>),
    Threshold(Table<WindowGroup>),
    Distinct(Table<DistinctGroup>),
    Sequence {
        positions: Vec<usize>,
        table: Table<SequenceGroup>,
    },
    NewValue(Table<BaselineGroup>),
    Travel(Table<TravelGroup>),
    /// Bucketed `threshold` (counts) and `distinct` (sketches).
    Counts(Table<CountGroup>),
    Sketches(Table<SketchGroup>),
    /// `new_value` over several fields.
    Drift(Table<DriftGroup>),
    Spike(Table<SpikeGroup>),
}

impl Groups {
    fn table(&self) -> &dyn persist::AnyTable {
        match self {
            Groups::Match(t) => t,
            Groups::Threshold(t) => t,
            Groups::Distinct(t) => t,
            Groups::Sequence { table, .. } => table,
            Groups::NewValue(t) => t,
            Groups::Travel(t) => t,
            Groups::Counts(t) => t,
            Groups::Sketches(t) => t,
            Groups::Drift(t) => t,
            Groups::Spike(t) => t,
        }
    }

    fn table_mut(&mut self) -> &mut dyn persist::AnyTable {
        match self {
            Groups::Match(t) => t,
            Groups::Threshold(t) => t,
            Groups::Distinct(t) => t,
            Groups::Sequence { table, .. } => table,
            Groups::NewValue(t) => t,
            Groups::Travel(t) => t,
            Groups::Counts(t) => t,
            Groups::Sketches(t) => t,
            Groups::Drift(t) => t,
            Groups::Spike(t) => t,
        }
    }
}

struct LiveRule {
    rule: Rule,
    runbook_url: Option<String>,
    groups: Groups,
    /// A hash of what the rule counts; stored state of a rule whose shape changed is dropped.
    shape: String,
}

pub struct Engine {
    rules: Vec<LiveRule>,
    /// For each event type, the rules that can match it.
    by_type: Vec<Vec<usize>>,
    /// Sigma rules, offered only events their detections marked.
    sigma_rules: Vec<usize>,
    reorder: Reorder,
    dedup: Dedup,
    stats: EngineStats,
    key: GroupKey,
    last_sweep: i64,
    /// Stored keys found stale at restore (rules removed or changed), deleted at the next
    /// checkpoint.
    stale_keys: Vec<Vec<u8>>,
    group_log: persist::GroupLog,
    /// Sigma detections tested at each event's arrival (`rule::sigma::Stage`).
    sigma: Option<crate::rule::sigma::Stage>,
    /// What it was built with, for [`Engine::fresh`].
    options: EngineOptions,
}

impl Engine {
    pub fn new(rules: Vec<Rule>, options: &EngineOptions) -> Engine {
        let mut by_type = vec![Vec::new(); EventType::ALL.len()];
        let cap = options.max_groups_per_rule;
        let rules: Vec<LiveRule> = rules
            .into_iter()
            .filter(|r| r.enabled)
            .map(|rule| LiveRule {
                runbook_url: rule.runbook.as_deref().map(|r| options.runbooks.url(r)),
                groups: match &rule.kind {
                    Kind::Match => Groups::Match(Table::new(cap)),
                    Kind::Threshold { .. } => Groups::Threshold(Table::new(cap)),
                    Kind::Distinct { .. } => Groups::Distinct(Table::new(cap)),
                    Kind::Sequence { steps, .. } => Groups::Sequence {
                        positions: sequence::positions(steps),
                        table: Table::new(cap),
                    },
                    Kind::NewValue(_) => Groups::NewValue(Table::new(cap)),
                    Kind::ImpossibleTravel(_) => Groups::Travel(Table::new(cap)),
                    Kind::Bucketed(b) if b.distinct.is_some() => Groups::Sketches(Table::new(cap)),
                    Kind::Bucketed(_) => Groups::Counts(Table::new(cap)),
                    Kind::NewValues(_) => Groups::Drift(Table::new(cap)),
                    Kind::Spike(_) => Groups::Spike(Table::new(cap)),
                    Kind::ClearedDistinct(_) => Groups::Distinct(Table::new(cap)),
                },
                shape: shape::rule_shape(&rule),
                rule,
            })
            .collect();
        let sigma = crate::rule::sigma::Stage::new(rules.iter().map(|l| &l.rule));
        let mut sigma_rules = Vec::new();
        for (i, live) in rules.iter().enumerate() {
            // A direct Sigma rule is found by type like a native one.
            if live.rule.sigma.as_ref().is_some_and(|s| !s.direct) {
                sigma_rules.push(i);
                continue;
            }
            for t in rule_types(&live.rule) {
                by_type[t.index()].push(i);
            }
        }
        Engine {
            rules,
            by_type,
            sigma_rules,
            reorder: Reorder::new(
                options.lateness_ms,
                Bounds {
                    max_events: options.max_held_events,
                    max_bytes: options.max_held_bytes,
                },
            ),
            dedup: Dedup::default(),
            stats: EngineStats::default(),
            key: GroupKey::default(),
            last_sweep: i64::MIN,
            stale_keys: Vec::new(),
            group_log: persist::GroupLog::default(),
            sigma,
            options: options.clone(),
        }
    }

    /// An engine with the same rules and options and no state: the engine of a task whose
    /// partition was just assigned (`app::tasks`), before its state is restored into it.
    pub fn fresh(&self) -> Engine {
        let rules = self.rules.iter().map(|l| l.rule.clone()).collect();
        Engine::new(rules, &self.options)
    }

    /// Takes one event in arrival order; alerts for every event whose turn came are appended.
    pub fn process(&mut self, event: Event, out: &mut Vec<Alert>) {
        self.process_shared(Arc::new(event), out)
    }

    /// [`Engine::process`] for an event already in the `Arc` the engine holds it in (sources
    /// that decode on another thread allocate it there, so detection copies nothing).
    pub fn process_shared(&mut self, mut event: Arc<Event>, out: &mut Vec<Alert>) {
        if event.fingerprint == 0 {
            // Built in code rather than read from bytes: the fingerprint is the event's
            // identity in stored state and alert ids, so it must not be left blank.
            Arc::make_mut(&mut event).compute_fingerprint();
        }
        if let Some(id) = &event.id
            && self.dedup.is_duplicate(id, event.ts)
        {
            self.stats.duplicates += 1;
            return;
        }
        // Sigma detections read the provider record once, here; it is never held. The Arc is
        // the decoder's own until here, so this writes in place.
        match &mut self.sigma {
            Some(stage) => stage.mark(Arc::make_mut(&mut event)),
            None if event.raw.is_some() => Arc::make_mut(&mut event).raw = None,
            None => {}
        }
        if self.reorder.push(event) == Admit::Late {
            self.stats.late += 1;
            return;
        }
        while let Some(e) = self.reorder.pop_ready() {
            self.evaluate(&e, out);
        }
        self.stats.forced_releases = self.reorder.forced_releases;
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

    /// Brings a restored event clock beyond `latest` back: groups and held events beyond it
    /// are dropped, and event time goes back to the newest the rest of the state holds.
    /// `None` when nothing was beyond.
    pub fn bound_clock(&mut self, latest: i64) -> Option<ClockFix> {
        let mut dropped_groups = 0;
        let mut newest = None;
        for live in &mut self.rules {
            let table = live.groups.table_mut();
            dropped_groups += table.drop_after(latest);
            newest = newest.max(table.newest());
        }
        let fixed = self.reorder.bound_clock(latest, newest);
        if fixed.is_none() && dropped_groups == 0 {
            return None;
        }
        let to = self.event_time();
        if self.last_sweep > latest {
            self.last_sweep = to.unwrap_or(i64::MIN);
        }
        self.dedup.bound_clock(latest, to.unwrap_or(i64::MIN));
        let (was, dropped_held) = fixed.unwrap_or((to.unwrap_or(i64::MIN), 0));
        Some(ClockFix {
            was,
            to,
            dropped_held,
            dropped_groups,
        })
    }

    /// Held events and their estimated bytes in the lateness buffer.
    pub fn held(&self) -> (usize, usize) {
        self.reorder.held()
    }

    /// The newest event time seen, if any.
    pub fn event_time(&self) -> Option<i64> {
        let (max_ts, _) = self.reorder.position();
        (max_ts != i64::MIN).then_some(max_ts)
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Per rule: groups held and groups evicted because the table was full.
    pub fn state_sizes(&self) -> Vec<(&str, usize, u64)> {
        self.rules
            .iter()
            .map(|l| {
                let t = l.groups.table();
                (l.rule.id.as_str(), t.len(), t.evictions())
            })
            .collect()
    }

    fn evaluate(&mut self, e: &Arc<Event>, out: &mut Vec<Alert>) {
        self.stats.events += 1;
        if e.ts >= self.last_sweep.saturating_add(SWEEP_EVERY_MS) {
            self.sweep(e.ts);
        }
        let from = out.len();
        self.offer(e, out, false);
        if self.sigma.is_some() {
            self.sigma_chains(e, from, out);
        }
    }

    /// Offers the event to every rule that can want its type (with `chained_only`, to the
    /// Sigma correlations of correlations only).
    fn offer(&mut self, e: &Arc<Event>, out: &mut Vec<Alert>, chained_only: bool) {
        // A Sigma rule reads the marks its detections left: only a marked event is offered
        // to them, after the rules of its type.
        let marked = e
            .attrs
            .as_ref()
            .is_some_and(|a| a.contains_key(crate::rule::sigma::ATTRS_KEY));
        let typed = self.by_type[e.kind.index()].len();
        let sigma = if marked { self.sigma_rules.len() } else { 0 };
        for k in 0..typed + sigma {
            let i = match k.checked_sub(typed) {
                None => self.by_type[e.kind.index()][k],
                Some(s) => self.sigma_rules[s],
            };
            let live = &mut self.rules[i];
            if chained_only && !live.rule.sigma.as_ref().is_some_and(|s| s.chained) {
                continue;
            }
            let counting = !matches!(live.rule.kind, Kind::Match);
            let wanted = live.rule.filter.matches(e) || clears(&live.rule, e);
            if !wanted || !self.key.build(&live.rule.group_by, e, counting) {
                continue;
            }
            if let Some(alert) = observe(live, self.key.as_str(), e) {
                // A Sigma correlation that only feeds another emits nothing of its own.
                if !live.rule.sigma.as_ref().is_some_and(|s| s.silent) {
                    *self
                        .stats
                        .alerts_by_rule
                        .entry(alert.rule.clone())
                        .or_default() += 1;
                }
                out.push(alert);
            }
        }
    }

    /// Drops every group whose window (and suppression) has passed.
    fn sweep(&mut self, now: i64) {
        self.last_sweep = now;
        for live in &mut self.rules {
            let keep_ms = live.rule.kind.horizon_ms().max(live.rule.suppress_ms);
            live.groups.table_mut().expire(now.saturating_sub(keep_ms));
        }
    }
}

/// True when `e` clears a value of a `cleared_by` rule (and is not counted by it).
fn clears(rule: &Rule, e: &Event) -> bool {
    matches!(&rule.kind, Kind::ClearedDistinct(c) if c.cleared_by.matches(e))
}

/// The types a rule can match (all of them when its `match` does not pin `type`).
fn rule_types(rule: &Rule) -> Vec<EventType> {
    let mut types = counted_types(rule);
    if let Kind::ClearedDistinct(c) = &rule.kind {
        types.extend(
            c.cleared_by
                .possible_types()
                .unwrap_or_else(|| EventType::ALL.to_vec()),
        );
        types.sort();
        types.dedup();
    }
    types
}

fn counted_types(rule: &Rule) -> Vec<EventType> {
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
        (Groups::Match(table), Kind::Match) => {
            if suppress > 0 {
                if table
                    .get(key)
                    .is_some_and(|g| e.ts - g.last_fired < suppress)
                {
                    return None;
                }
                table.entry(key).last_fired = e.ts;
            }
            Fired {
                count: 1,
                first_ts: e.ts,
                triggers: vec![Arc::clone(e)],
                note: Note::None,
            }
        }
        (
            Groups::Threshold(table),
            Kind::Threshold {
                window_ms,
                threshold,
            },
        ) => {
            let g = table.entry(key);
            let fired = g.observe(e, *window_ms, *threshold)?;
            take_turn(&mut g.last_fired, e.ts, suppress).then_some(fired)?
        }
        (
            Groups::Distinct(table),
            Kind::Distinct {
                field,
                window_ms,
                threshold,
            },
        ) => {
            let value = field.get(e)?.to_text();
            let g = table.entry(key);
            let fired = g.observe(&value, e, *window_ms, *threshold)?;
            take_turn(&mut g.last_fired, e.ts, suppress).then_some(fired)?
        }
        (Groups::Sequence { positions, table }, Kind::Sequence { within_ms, steps }) => {
            let step_matches: Vec<bool> = steps.iter().map(|s| s.matcher.matches(e)).collect();
            // Only the first step can start a group: a later step with no partial match to
            // advance (every ordinary login.success) must not cost a group.
            let starts = step_matches[positions[0]];
            if !step_matches.contains(&true) || (!starts && table.get(key).is_none()) {
                return None;
            }
            let g = table.entry(key);
            let fired = g.observe(e, &step_matches, positions, *within_ms)?;
            take_turn(&mut g.last_fired, e.ts, suppress).then_some(fired)?
        }
        (Groups::NewValue(table), Kind::NewValue(opts)) => {
            // Events without a value are no part of the history.
            let value = opts.field.get(e)?;
            let g = table.entry(key);
            let known = g.observe(ValueId::of(&value), e.ts, opts)?;
            take_turn(&mut g.last_fired, e.ts, suppress).then_some(())?;
            Fired {
                count: 1,
                first_ts: e.ts,
                triggers: vec![Arc::clone(e)],
                note: Note::NewValue {
                    value: format!("{}={}", opts.field, value.to_text()),
                    known,
                },
            }
        }
        (Groups::Travel(table), Kind::ImpossibleTravel(limits)) => {
            // Looked at before the group is touched: an unlocated event creates no state.
            let here = travel::place(e, &limits.ignore_asns)?;
            let g = table.entry(key);
            let fired = g.observe(e, here, limits)?;
            take_turn(&mut g.last_fired, e.ts, suppress).then_some(fired)?
        }
        (Groups::Counts(table), Kind::Bucketed(opts)) => {
            let g = table.entry(key);
            let fired = g.observe(e, opts)?;
            take_turn(&mut g.last_fired, e.ts, suppress).then_some(fired)?
        }
        (Groups::Sketches(table), Kind::Bucketed(opts)) => {
            let field = opts.distinct.as_ref()?;
            let value = field.get(e)?.to_text();
            let g = table.entry(key);
            let fired = g.observe(&value, e, opts)?;
            take_turn(&mut g.last_fired, e.ts, suppress).then_some(fired)?
        }
        (Groups::Drift(table), Kind::NewValues(opts)) => {
            // An event with none of the fields creates no state.
            if opts.fields.iter().all(|f| f.get(e).is_none()) {
                return None;
            }
            let g = table.entry(key);
            let changed = g.observe(e, opts)?;
            take_turn(&mut g.last_fired, e.ts, suppress).then_some(())?;
            Fired {
                count: 1,
                first_ts: e.ts,
                triggers: vec![Arc::clone(e)],
                note: Note::Changed(changed),
            }
        }
        (Groups::Spike(table), Kind::Spike(opts)) => {
            let g = table.entry(key);
            let (mut fired, usual) = g.observe(e, opts)?;
            take_turn(&mut g.last_fired, e.ts, suppress).then_some(())?;
            fired.note = Note::Baseline(format!(
                "usually {:.1} (σ {:.1}) {}",
                usual.mean,
                usual.sd,
                match opts.seasonality {
                    crate::rule::Seasonality::None => "in such a window",
                    crate::rule::Seasonality::HourOfDay => "at this hour",
                    crate::rule::Seasonality::WeekdayHour => "at this hour of a weekday or weekend",
                }
            ));
            fired
        }
        (Groups::Distinct(table), Kind::ClearedDistinct(opts)) => {
            let value = opts.field.get(e)?.to_text();
            if !rule.filter.matches(e) {
                // A clearing event: the value leaves the count; it never creates a group.
                if let Some(g) = table.get_mut(key) {
                    g.clear(&value);
                }
                return None;
            }
            let g = table.entry(key);
            let fired = g.observe(&value, e, opts.window_ms, opts.threshold)?;
            take_turn(&mut g.last_fired, e.ts, suppress).then_some(fired)?
        }
        _ => unreachable!("a rule's state always matches its kind"),
    };
    Some(make_alert(live, key, e, fired))
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
    let mut group = group_json(&rule.group_by, e);
    if let Some(sigma) = &rule.sigma {
        group = group
            .into_iter()
            .map(|(k, v)| (sigma.group_name(&k).to_string(), v))
            .collect();
    }
    let evidence_from = fired.triggers.len().saturating_sub(MAX_EVIDENCE);
    Alert {
        id: alert_id(&rule.id, key, fired.triggers.iter().map(|t| &**t)),
        rule: rule.id.clone(),
        title: rule.title.clone(),
        severity: rule.severity,
        tags: rule.tags.clone(),
        ts: format_ts(e.ts),
        detected_at: None,
        summary: summary(rule, &group, &fired),
        group,
        count: fired.count,
        first_seen: format_ts(fired.first_ts),
        last_seen: format_ts(e.ts),
        runbook_url: live.runbook_url.clone(),
        evidence: fired.triggers[evidence_from..].to_vec(),
        tenant: e.tenant.as_deref().map(String::from),
        user: e.user.as_deref().map(String::from),
        username: e.username.as_deref().map(String::from),
        ip: e.ip.map(|ip| ip.to_string()),
        references: rule
            .sigma
            .as_ref()
            .map_or_else(Vec::new, |s| s.references.clone()),
        falsepositives: rule
            .sigma
            .as_ref()
            .map_or_else(Vec::new, |s| s.falsepositives.clone()),
    }
}

/// One line an on-call engineer can read: what, for whom, how many, over what time.
fn summary(
    rule: &Rule,
    group: &serde_json::Map<String, serde_json::Value>,
    fired: &Fired,
) -> String {
    let count = fired.count;
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
        Kind::ClearedDistinct(c) => format!(
            "{count} distinct {} in {what} for {who} within {}, none followed by {}",
            c.field,
            describe_duration(c.window_ms),
            c.cleared_by
                .single_type()
                .map_or("a clearing event", |t| t.as_str())
        ),
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
        Kind::Bucketed(b) => match &b.distinct {
            None => format!(
                "{count} {what} for {who} within {} (counted in {} buckets)",
                describe_duration(b.window_ms),
                describe_duration(b.bucket_ms)
            ),
            Some(field) => format!(
                "about {count} distinct {field} in {what} for {who} within {} (estimated, ±{:.2}%)",
                describe_duration(b.window_ms),
                crate::rule::APPROXIMATE_ERROR * 100.0
            ),
        },
        Kind::Spike(spike) => match &fired.note {
            Note::Baseline(usual) => format!(
                "{count} {what} for {who} within {}, {usual}",
                describe_duration(spike.window_ms)
            ),
            _ => format!("{count} {what} for {who}"),
        },
        Kind::NewValues(_) => {
            // The event that brought the new values names itself (the rule may take several
            // types: a login, a refresh).
            let kind = fired.triggers.last().map_or(what, |t| t.kind.as_str());
            match &fired.note {
                Note::Changed(changed) => format!("{kind} for {who} with new {changed}"),
                _ => format!("{kind} for {who}"),
            }
        }
        Kind::NewValue(_) | Kind::ImpossibleTravel(_) => match &fired.note {
            Note::NewValue { value, known } => {
                format!("{what} from new {value} for {who} ({})", known.describe())
            }
            Note::Trip(trip) => format!("impossible travel for {who}: {trip}"),
            Note::None | Note::Changed(_) | Note::Baseline(_) => format!("{what} for {who}"),
        },
    }
}
