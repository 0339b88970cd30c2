//! Rules: YAML files (syntax) compiled into checked, executable rules (semantics).
//!
//! Reading goes `yaml` (positioned tree) -> `compile` (every error collected with
//! file:line:col) -> [`Rule`]. `load` walks a rules directory. The `tests:` a rule carries
//! run in `app/rule_tests.rs`: they need the engine, which needs this module.

mod compile;
pub mod diag;
mod load;
pub mod matcher;
pub mod sigma;
pub mod yaml;

pub use compile::APPROXIMATE_ERROR;
pub use diag::Diagnostic;
pub use load::{RuleSet, load_dir, load_file_text};
pub use matcher::Matcher;
pub use sigma::SigmaPart;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::event::{Event, Field};
use yaml::Pos;

/// How bad an alert is; ordered so routing can say "at least".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const NAMES: [&'static str; 5] = ["info", "low", "medium", "high", "critical"];

    pub fn parse(s: &str) -> Option<Severity> {
        Some(match s {
            "info" => Severity::Info,
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        Severity::NAMES[self as usize]
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A compiled rule, ready for the engine.
#[derive(Clone, Debug)]
pub struct Rule {
    pub id: String,
    pub title: String,
    pub description: String,
    pub severity: Severity,
    pub tags: Vec<String>,
    /// A runbook name (rules/runbooks/<name>.md) or an absolute https URL.
    pub runbook: Option<String>,
    pub enabled: bool,
    /// Which events feed the rule (for sequences: a filter on every step).
    pub filter: Matcher,
    pub group_by: Vec<Field>,
    pub kind: Kind,
    /// At most one alert per group per this many milliseconds (0: every time).
    pub suppress_ms: i64,
    pub tests: Vec<RuleTest>,
    pub origin: Origin,
    /// Set for rules read from Sigma files: their detections and alert metadata.
    pub sigma: Option<Arc<SigmaPart>>,
}

/// Where a rule was written.
#[derive(Clone, Debug, Default)]
pub struct Origin {
    pub file: PathBuf,
    pub pos: Pos,
}

/// What a rule counts, per kind. Its variants are the one table of rule kinds: strum makes
/// [`KindName`] (a rule's `kind:`, the variant in snake_case) from them, `compile.rs` matches
/// on that to read a kind's keys and the engine on `Kind` for its state, so a kind that
/// either misses does not compile.
#[derive(Clone, Debug, strum::EnumDiscriminants)]
#[strum_discriminants(
    name(KindName),
    derive(strum::EnumString, strum::IntoStaticStr, strum::VariantNames),
    strum(serialize_all = "snake_case")
)]
pub enum Kind {
    Match,
    Threshold {
        window_ms: i64,
        threshold: u32,
    },
    Distinct {
        field: Field,
        window_ms: i64,
        threshold: u32,
    },
    Sequence {
        within_ms: i64,
        steps: Vec<Step>,
    },
    /// A value of `field` the group's baseline does not hold.
    NewValue(NewValue),
    /// Consecutive located events of a group too far apart for the time between them.
    ImpossibleTravel(Travel),
    /// `threshold` or `distinct` with `bucket:`: counted in time buckets, so a window of hours
    /// or days costs a few bytes a bucket, not an event a count.
    Bucketed(Bucketed),
    /// `new_value` over several fields at once (`field: [geo.country, user_agent]`): alerts
    /// when at least `min_new` of them take a value new for the group in one event.
    NewValues(NewValues),
    /// The count in `window` compared with what the group usually sees then (learned).
    Spike(Spike),
    /// `distinct` with `cleared_by:`: a value leaves the count when an event matching
    /// `cleared_by` comes for the same group and value (a typo followed by a login).
    ClearedDistinct(ClearedDistinct),
}

/// `distinct` with `cleared_by` (docs/rules.md, "Cleared values").
#[derive(Clone, Debug)]
pub struct ClearedDistinct {
    pub field: Field,
    pub window_ms: i64,
    pub threshold: u32,
    pub cleared_by: Matcher,
}

/// `spike` options (docs/rules.md, "Thresholds relative to a learned baseline").
#[derive(Clone, Debug)]
pub struct Spike {
    pub window_ms: i64,
    /// No alert until the group's history is this old.
    pub learn_for_ms: i64,
    /// Fire when the count is at least this many times the usual one.
    pub factor: Option<f64>,
    /// Fire when the count is at least the usual one plus this many standard deviations.
    pub deviations: Option<f64>,
    /// Never fire below this count, whatever the baseline (a quiet group's 0 -> 3 is no spike).
    pub min_count: u32,
    pub seasonality: Seasonality,
}

/// What the usual count depends on: one learned figure per slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seasonality {
    /// One figure for every window.
    None,
    /// One per hour of the day (UTC): 24 slots.
    HourOfDay,
    /// One per hour of the day, apart for weekdays and weekends (UTC): 48 slots.
    WeekdayHour,
}

impl Seasonality {
    pub const NAMES: [&'static str; 3] = ["none", "hour_of_day", "weekday_hour"];

    pub fn parse(s: &str) -> Option<Seasonality> {
        Some(match s {
            "none" => Seasonality::None,
            "hour_of_day" => Seasonality::HourOfDay,
            "weekday_hour" => Seasonality::WeekdayHour,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        Seasonality::NAMES[self as usize]
    }

    pub fn slots(self) -> usize {
        match self {
            Seasonality::None => 1,
            Seasonality::HourOfDay => 24,
            Seasonality::WeekdayHour => 48,
        }
    }

    /// The slot an instant (epoch ms, UTC) belongs to.
    pub fn slot(self, ts: i64) -> usize {
        let hour = ts.div_euclid(3_600_000);
        let hour_of_day = hour.rem_euclid(24) as usize;
        match self {
            Seasonality::None => 0,
            Seasonality::HourOfDay => hour_of_day,
            Seasonality::WeekdayHour => {
                // 1970-01-01 was a Thursday: day 0 is Thursday, days 2 and 3 the weekend.
                let weekday = hour.div_euclid(24).rem_euclid(7);
                let weekend = matches!(weekday, 2 | 3);
                usize::from(weekend) * 24 + hour_of_day
            }
        }
    }
}

/// `new_value` with a list of fields (docs/rules.md, "Several fields at once").
#[derive(Clone, Debug)]
pub struct NewValues {
    /// The options every field's baseline shares; its `field` is the first of `fields`.
    pub base: NewValue,
    pub fields: Vec<Field>,
    /// How many fields must be new in the same event (default 1).
    pub min_new: u32,
}

/// Options of a bucketed `threshold` / `distinct` (docs/rules.md, "Long windows").
#[derive(Clone, Debug)]
pub struct Bucketed {
    pub window_ms: i64,
    pub bucket_ms: i64,
    pub threshold: u32,
    /// `distinct`: the field whose distinct values are estimated (HyperLogLog, the rule opted
    /// in with `approximate: true`); `None` for `threshold`, which counts events exactly.
    pub distinct: Option<Field>,
}

impl Bucketed {
    /// The buckets a group keeps: enough that events `window` apart always fall in buckets
    /// held together (so nothing the exact window would count is missed).
    pub fn buckets(&self) -> i64 {
        self.window_ms / self.bucket_ms + 1
    }
}

/// `new_value` options (SPEC §2).
#[derive(Clone, Debug)]
pub struct NewValue {
    pub field: Field,
    /// No alert until the group's history is this old.
    pub learn_for_ms: i64,
    /// No alert until the group has had this many events with a value.
    pub min_history: u32,
    /// A value unseen this long is new again (and a group silent this long is dropped).
    pub forget_after_ms: i64,
}

/// `impossible_travel` options (SPEC §2).
#[derive(Clone, Debug)]
pub struct Travel {
    pub max_speed_kmh: f64,
    pub min_distance_km: f64,
    /// Networks (VPN exits, private relays, satellite) whose locations never count.
    pub ignore_asns: Vec<u32>,
}

/// How long a silent `spike` group is kept: a week, so a group quiet over a weekend or a
/// holiday keeps what it learned; one silent longer learns afresh.
pub const SPIKE_KEEP_MS: i64 = 7 * 86_400_000;

/// Half the Earth's circumference: no two places are further apart.
pub const MAX_DISTANCE_KM: f64 = 20_015.1;

impl Travel {
    /// How long a location can matter: beyond this no distance on Earth exceeds the speed.
    pub fn horizon_ms(&self) -> i64 {
        let hours = MAX_DISTANCE_KM / self.max_speed_kmh;
        (hours * 3_600_000.0).ceil().min(i64::MAX as f64) as i64
    }
}

impl KindName {
    /// Variants of [`Kind`] that are forms of another kind, chosen by its keys (`threshold`
    /// or `distinct` with `bucket`, `distinct` with `cleared_by`, `new_value` with a list of
    /// fields): the engine's, never a rule's `kind:`.
    pub const FORMS: [KindName; 3] = [
        KindName::Bucketed,
        KindName::NewValues,
        KindName::ClearedDistinct,
    ];

    pub fn is_form(self) -> bool {
        KindName::FORMS.contains(&self)
    }

    /// The names a rule's `kind:` takes, in the order of `Kind`'s variants.
    pub fn rule_names() -> Vec<&'static str> {
        use strum::VariantNames;
        KindName::VARIANTS
            .iter()
            .copied()
            .filter(|n| n.parse::<KindName>().is_ok_and(|k| !k.is_form()))
            .collect()
    }
}

impl Kind {
    pub fn name(&self) -> &'static str {
        match self {
            // Forms of a kind are named as the kind the rule wrote.
            Kind::Bucketed(b) if b.distinct.is_some() => "distinct",
            Kind::Bucketed(_) => "threshold",
            Kind::NewValues(_) => "new_value",
            Kind::ClearedDistinct(_) => "distinct",
            other => KindName::from(other).into(),
        }
    }

    /// How long state for one group can matter after its last event.
    pub fn horizon_ms(&self) -> i64 {
        match self {
            Kind::Match => 0,
            Kind::Threshold { window_ms, .. } | Kind::Distinct { window_ms, .. } => *window_ms,
            Kind::Sequence { within_ms, .. } => *within_ms,
            // A baseline lives as long as its values are remembered, not a window.
            Kind::NewValue(n) => n.forget_after_ms,
            Kind::NewValues(n) => n.base.forget_after_ms,
            // A learned baseline outlives its window: a group silent for a week is dropped.
            Kind::Spike(s) => s.window_ms.max(SPIKE_KEEP_MS),
            Kind::ClearedDistinct(c) => c.window_ms,
            Kind::ImpossibleTravel(t) => t.horizon_ms(),
            // The oldest bucket can start up to one bucket before the window.
            Kind::Bucketed(b) => b.window_ms.saturating_add(b.bucket_ms),
        }
    }

    /// Suppression when the rule sets none: one alert per window for counting kinds. A new
    /// value alerts once by nature (it is learned), and every impossible trip is news.
    pub fn default_suppress_ms(&self) -> i64 {
        match self {
            Kind::NewValue(_) | Kind::NewValues(_) | Kind::ImpossibleTravel(_) => 0,
            Kind::Bucketed(b) => b.window_ms,
            Kind::Spike(s) => s.window_ms,
            other => other.horizon_ms(),
        }
    }
}

/// One step of a sequence: `count` events matching `matcher`.
#[derive(Clone, Debug)]
pub struct Step {
    pub matcher: Matcher,
    pub count: u32,
}

/// One entry of a rule's `tests:`, with its events already expanded and decoded.
#[derive(Clone, Debug)]
pub struct RuleTest {
    pub name: String,
    pub pos: Pos,
    pub events: Vec<Arc<Event>>,
    pub expect: Vec<Expectation>,
}

/// One alert a test expects: its group must contain these values; `count` if given.
#[derive(Clone, Debug)]
pub struct Expectation {
    pub group: serde_json::Map<String, serde_json::Value>,
    pub count: Option<u64>,
}
