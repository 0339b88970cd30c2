//! Compiles one rule's positioned YAML tree into a [`Rule`], reporting every mistake.

use std::sync::Arc;

use super::diag::{Diagnostics, did_you_mean};
use super::matcher::{Matcher, compile_match};
use super::yaml::{Node, Value};
use super::{
    Bucketed, ClearedDistinct, Expectation, Kind, KindName, NewValue, NewValues, Origin, Rule,
    RuleTest, Seasonality, Severity, Spike, Step, Travel,
};
use crate::event::{Event, Field, decode_value};

/// Every key a rule may have. Unknown keys are errors (a typo must not silently disable logic).
const RULE_KEYS: [&str; 32] = [
    "id",
    "title",
    "description",
    "severity",
    "tags",
    "runbook",
    "enabled",
    "kind",
    "match",
    "group_by",
    "window",
    "threshold",
    "distinct",
    "within",
    "steps",
    "field",
    "learn_for",
    "min_history",
    "forget_after",
    "max_speed_kmh",
    "min_distance_km",
    "ignore_asns",
    "suppress",
    "tests",
    "bucket",
    "approximate",
    "min_new",
    "factor",
    "deviations",
    "min_count",
    "seasonality",
    "cleared_by",
];

/// Keys that only some kinds take.
const KIND_KEYS: [(&str, &[KindName]); 20] = [
    (
        "window",
        &[KindName::Threshold, KindName::Distinct, KindName::Spike],
    ),
    ("threshold", &[KindName::Threshold, KindName::Distinct]),
    ("distinct", &[KindName::Distinct]),
    ("within", &[KindName::Sequence]),
    ("steps", &[KindName::Sequence]),
    ("field", &[KindName::NewValue]),
    ("learn_for", &[KindName::NewValue, KindName::Spike]),
    ("min_history", &[KindName::NewValue]),
    ("forget_after", &[KindName::NewValue]),
    ("max_speed_kmh", &[KindName::ImpossibleTravel]),
    ("min_distance_km", &[KindName::ImpossibleTravel]),
    ("ignore_asns", &[KindName::ImpossibleTravel]),
    ("bucket", &[KindName::Threshold, KindName::Distinct]),
    ("approximate", &[KindName::Distinct]),
    ("min_new", &[KindName::NewValue]),
    ("factor", &[KindName::Spike]),
    ("deviations", &[KindName::Spike]),
    ("min_count", &[KindName::Spike]),
    ("seasonality", &[KindName::Spike]),
    ("cleared_by", &[KindName::Distinct]),
];

/// `spike` without `learn_for`: a week, so every hour of every day has been seen once.
const DEFAULT_SPIKE_LEARN_FOR_MS: i64 = 7 * DAY_MS;

/// Buckets a group may keep (`window / bucket`): a day in 1-minute buckets, and far more than
/// any detection needs; beyond, the bucket is too fine for the window to be cheap.
const MAX_BUCKETS: i64 = 1_440;

/// The relative standard error of `approximate: true` distinct counts (HyperLogLog++ with
/// 2^10 registers: 1.04 / sqrt(1024)); exact while a group has seen few values.
pub const APPROXIMATE_ERROR: f64 = 0.0325;

/// `new_value` without `learn_for`: alerts may start as soon as `min_history` is reached.
const DEFAULT_LEARN_FOR_MS: i64 = 0;
/// `new_value` without `min_history`: a group's first value is its baseline, never "new".
const DEFAULT_MIN_HISTORY: u32 = 1;
/// `new_value` without `forget_after`: a quarter of a year, long enough for quarterly trips
/// and devices, short enough that a baseline follows a user who moved.
const DEFAULT_FORGET_AFTER_MS: i64 = 90 * DAY_MS;
/// Baselines remember when a value was last seen to the hour, so they cannot forget sooner.
const MIN_FORGET_AFTER_MS: i64 = 3_600_000;
/// SPEC §2 default: faster than an airliner's cruising speed.
const DEFAULT_MAX_SPEED_KMH: f64 = 900.0;
/// SPEC §2 default: below this, GeoIP's error between neighbouring cities and mobile
/// carriers' regional exits would make trips out of nothing.
const DEFAULT_MIN_DISTANCE_KM: f64 = 500.0;
const DAY_MS: i64 = 86_400_000;

/// The fixed instant that `at:` offsets in rule tests count from.
pub const TEST_START_MS: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

/// Test events without `every` follow each other by one second.
const DEFAULT_TEST_STEP_MS: i64 = 1_000;

/// Compiles one rule map. Returns `None` when it has errors (they are in `diags`).
pub fn compile_rule(node: &Node, diags: &mut Diagnostics<'_>, origin: Origin) -> Option<Rule> {
    let errors_before = diags.len();
    let Some(entries) = node.as_map() else {
        diags.error(
            node.pos,
            format!("a rule must be a map, found {}", node.value.kind_name()),
        );
        return None;
    };
    let id = node.get("id").and_then(|n| rule_id(n, diags));
    diags.set_rule(id.clone());
    if node.get("id").is_none() {
        diags.error(
            node.pos,
            "missing `id` (lowercase letters, digits and dashes)",
        );
    }
    for (key, _) in entries {
        let name = key.scalar_text();
        if !RULE_KEYS.contains(&name.as_str()) {
            let hint = did_you_mean(&name, RULE_KEYS);
            diags.error(key.pos, format!("unknown key `{name}`{hint}"));
        }
    }

    let kind_name = required_str(node, "kind", diags);
    let kind_of = kind_name
        .as_deref()
        .and_then(|k| k.parse::<KindName>().ok())
        .filter(|k| !k.is_form());
    if let Some(k) = &kind_name {
        if kind_of.is_none() {
            let names = KindName::rule_names();
            let hint = did_you_mean(k, names.iter().copied());
            diags.error(
                node.get("kind")?.pos,
                format!("unknown kind `{k}`{hint}; kinds are {}", names.join(", ")),
            );
        }
        for (key, kinds) in KIND_KEYS {
            if let Some(n) = node.get(key)
                && let Some(kind) = kind_of
                && !kinds.contains(&kind)
            {
                let only: Vec<&str> = kinds.iter().map(|&k| k.into()).collect();
                diags.error(
                    n.pos,
                    format!(
                        "`{key}` does not apply to kind {k} (only {})",
                        only.join(", ")
                    ),
                );
            }
        }
    }

    let title = required_str(node, "title", diags).unwrap_or_default();
    let description = optional_str(node, "description", diags).unwrap_or_default();
    let severity = required_str(node, "severity", diags).and_then(|s| {
        let sev = Severity::parse(&s);
        if sev.is_none() {
            let hint = did_you_mean(&s, Severity::NAMES);
            diags.error(
                node.get("severity")?.pos,
                format!(
                    "unknown severity `{s}`{hint}; use one of {}",
                    Severity::NAMES.join(", ")
                ),
            );
        }
        sev
    });
    let tags = node
        .get("tags")
        .map(|n| string_list(n, "tags", diags))
        .unwrap_or_default();
    let runbook = optional_str(node, "runbook", diags);
    if let (Some(rb), Some(n)) = (&runbook, node.get("runbook"))
        && !rb.starts_with("https://")
        && !is_runbook_name(rb)
    {
        diags.error(n.pos, format!("runbook `{rb}` must be a name like account-takeover (rules/runbooks/<name>.md) or an https:// URL"));
    }
    let enabled = match node.get("enabled") {
        None => true,
        Some(n) => match n.value {
            Value::Bool(b) => b,
            ref other => {
                diags.error(
                    n.pos,
                    format!("`enabled` takes true or false, found {}", other.kind_name()),
                );
                true
            }
        },
    };
    let filter = node.get("match").map(|m| compile_match(m, diags));
    let group_by = node
        .get("group_by")
        .map(|n| fields(n, diags))
        .unwrap_or_default();
    let suppress_ms = node
        .get("suppress")
        .and_then(|n| duration_ms(n, diags, true));

    let kind = match kind_of {
        Some(KindName::Match) => Some(Kind::Match),
        Some(KindName::Distinct)
            if node.get("cleared_by").is_some() && node.get("bucket").is_some() =>
        {
            diags.error(
                node.get("cleared_by")?.pos,
                "`cleared_by` needs an exact count (an estimate cannot forget a value): drop `bucket` and `approximate`",
            );
            None
        }
        Some(KindName::Distinct) if node.get("cleared_by").is_some() => {
            let window_ms =
                required(node, "window", diags).and_then(|n| duration_ms(n, diags, false));
            let threshold = required(node, "threshold", diags).and_then(|n| count(n, diags));
            let field = required(node, "distinct", diags).and_then(|n| grouping_field(n, diags));
            let cleared_by = node.get("cleared_by").map(|m| compile_match(m, diags));
            Some(Kind::ClearedDistinct(ClearedDistinct {
                field: field?,
                window_ms: window_ms?,
                threshold: threshold?,
                cleared_by: cleared_by?,
            }))
        }
        Some(k @ (KindName::Threshold | KindName::Distinct)) if node.get("bucket").is_some() => {
            bucketed(node, k.into(), diags).map(Kind::Bucketed)
        }
        Some(KindName::Distinct) if node.get("approximate").is_some() => {
            let n = node.get("approximate")?;
            diags.error(
                n.pos,
                "`approximate` needs `bucket`: an estimated distinct count is kept per time bucket (like bucket: 1h)",
            );
            None
        }
        Some(KindName::Threshold) => {
            let window_ms =
                required(node, "window", diags).and_then(|n| duration_ms(n, diags, false));
            let threshold = required(node, "threshold", diags).and_then(|n| count(n, diags));
            Some(Kind::Threshold {
                window_ms: window_ms?,
                threshold: threshold?,
            })
        }
        Some(KindName::Distinct) => {
            let window_ms =
                required(node, "window", diags).and_then(|n| duration_ms(n, diags, false));
            let threshold = required(node, "threshold", diags).and_then(|n| count(n, diags));
            let field = required(node, "distinct", diags).and_then(|n| grouping_field(n, diags));
            Some(Kind::Distinct {
                field: field?,
                window_ms: window_ms?,
                threshold: threshold?,
            })
        }
        Some(KindName::Sequence) => {
            let within_ms =
                required(node, "within", diags).and_then(|n| duration_ms(n, diags, false));
            let steps = required(node, "steps", diags).and_then(|n| steps(n, diags));
            Some(Kind::Sequence {
                within_ms: within_ms?,
                steps: steps?,
            })
        }
        Some(KindName::NewValue) => new_value_kind(node, diags),
        Some(KindName::ImpossibleTravel) => travel(node, diags).map(Kind::ImpossibleTravel),
        Some(KindName::Spike) => spike(node, diags).map(Kind::Spike),
        // Forms of the kinds above, reached through their keys (`bucket`, `cleared_by`, a
        // list of fields), never by name: `kind_of` refuses them.
        Some(KindName::Bucketed | KindName::NewValues | KindName::ClearedDistinct) | None => None,
    };
    if !matches!(kind, None | Some(Kind::Match | Kind::Sequence { .. })) && filter.is_none() {
        diags.error(
            node.pos,
            "missing `match`: a counting rule must say which events it counts",
        );
    }

    let suppress_ms =
        suppress_ms.unwrap_or_else(|| kind.as_ref().map_or(0, Kind::default_suppress_ms));
    let tests = node
        .get("tests")
        .map(|n| tests(n, diags))
        .unwrap_or_default();

    if diags.len() > errors_before {
        return None;
    }
    Some(Rule {
        id: id?,
        title,
        description,
        severity: severity?,
        tags,
        runbook,
        enabled,
        filter: filter.unwrap_or_else(Matcher::always),
        group_by,
        kind: kind?,
        suppress_ms,
        tests,
        origin,
        sigma: None,
    })
}

/// `threshold` or `distinct` with `bucket:` (the long-window form).
fn bucketed(node: &Node, kind: &str, diags: &mut Diagnostics<'_>) -> Option<Bucketed> {
    let window_ms = required(node, "window", diags).and_then(|n| duration_ms(n, diags, false));
    let threshold = required(node, "threshold", diags).and_then(|n| count(n, diags));
    let bucket_node = node.get("bucket")?;
    let bucket_ms = duration_ms(bucket_node, diags, false);
    let distinct = if kind == "distinct" {
        let field = required(node, "distinct", diags).and_then(|n| grouping_field(n, diags));
        match node.get("approximate").map(|n| (n, &n.value)) {
            Some((_, Value::Bool(true))) => {}
            Some((n, _)) => diags.error(
                n.pos,
                "`approximate` takes true: a bucketed distinct count is an estimate (±3.25%), and the rule must say it accepts that",
            ),
            None => diags.error(
                bucket_node.pos,
                "a bucketed distinct count is an estimate (±3.25%): add `approximate: true`, or drop `bucket` for an exact count",
            ),
        }
        Some(field?)
    } else {
        None
    };
    let (window_ms, bucket_ms) = (window_ms?, bucket_ms?);
    if bucket_ms > window_ms {
        diags.error(
            bucket_node.pos,
            format!(
                "`bucket` ({}) is longer than `window` ({}); use a bucket a fraction of the window, like a 24th",
                bucket_node.scalar_text(),
                node.get("window").map(Node::scalar_text).unwrap_or_default()
            ),
        );
        return None;
    }
    if window_ms / bucket_ms > MAX_BUCKETS {
        diags.error(
            bucket_node.pos,
            format!(
                "`bucket` makes more than {MAX_BUCKETS} buckets of the window; use a longer bucket"
            ),
        );
        return None;
    }
    Some(Bucketed {
        window_ms,
        bucket_ms,
        threshold: threshold?,
        distinct,
    })
}

/// `new_value` over one field, or over a list of them (`min_new` of which must be new).
fn new_value_kind(node: &Node, diags: &mut Diagnostics<'_>) -> Option<Kind> {
    let list = node.get("field").and_then(Node::as_seq);
    let min_new_node = node.get("min_new");
    let Some(items) = list.filter(|items| items.len() > 1) else {
        if let Some(n) = min_new_node {
            diags.error(
                n.pos,
                "`min_new` needs `field` to be a list of at least two fields, like [geo.country, user_agent]",
            );
        }
        return new_value(node, diags).map(Kind::NewValue);
    };
    let fields: Vec<Field> = items
        .iter()
        .filter_map(|i| grouping_field(i, diags))
        .collect();
    for (i, item) in items.iter().enumerate() {
        if fields.len() == items.len() && fields[..i].contains(&fields[i]) {
            diags.error(item.pos, format!("`{}` is listed twice", fields[i]));
        }
    }
    let min_new = min_new_node.map_or(Some(1), |n| count(n, diags))?;
    if min_new as usize > items.len() {
        diags.error(
            min_new_node?.pos,
            format!(
                "`min_new` is {min_new} but `field` lists {} fields; at most that many can be new",
                items.len()
            ),
        );
    }
    let base = new_value(node, diags)?;
    (fields.len() == items.len()).then_some(Kind::NewValues(NewValues {
        base,
        fields,
        min_new,
    }))
}

fn new_value(node: &Node, diags: &mut Diagnostics<'_>) -> Option<NewValue> {
    let field_node = required(node, "field", diags);
    let field = match field_node.and_then(Node::as_seq) {
        // A list (checked by the caller): the shared options take its first field.
        Some(items) => items.first().and_then(|n| grouping_field(n, diags)),
        None => field_node.and_then(|n| grouping_field(n, diags)),
    };
    let learn_for_ms = node
        .get("learn_for")
        .map_or(Some(DEFAULT_LEARN_FOR_MS), |n| duration_ms(n, diags, true));
    let min_history = node
        .get("min_history")
        .map_or(Some(DEFAULT_MIN_HISTORY), |n| count(n, diags));
    let forget_after_ms = match node.get("forget_after") {
        None => Some(DEFAULT_FORGET_AFTER_MS),
        Some(n) => duration_ms(n, diags, false).and_then(|ms| {
            if ms < MIN_FORGET_AFTER_MS {
                diags.error(
                    n.pos,
                    "`forget_after` must be at least 1h (baselines keep last-seen times to the hour)",
                );
                return None;
            }
            Some(ms)
        }),
    };
    Some(NewValue {
        field: field?,
        learn_for_ms: learn_for_ms?,
        min_history: min_history?,
        forget_after_ms: forget_after_ms?,
    })
}

fn spike(node: &Node, diags: &mut Diagnostics<'_>) -> Option<Spike> {
    let window_ms = required(node, "window", diags).and_then(|n| duration_ms(n, diags, false));
    let learn_for_ms = node
        .get("learn_for")
        .map_or(Some(DEFAULT_SPIKE_LEARN_FOR_MS), |n| {
            duration_ms(n, diags, true)
        });
    let factor = node.get("factor").map(|n| {
        number(n, diags, false).filter(|f| {
            let ok = *f > 1.0;
            if !ok {
                diags.error(n.pos, "`factor` must be above 1 (the count is compared with factor × the usual count)");
            }
            ok
        })
    });
    let deviations = node.get("deviations").map(|n| number(n, diags, false));
    if factor.is_none() && deviations.is_none() {
        diags.error(
            node.pos,
            "a spike rule needs `factor` (like 4: four times the usual count) or `deviations` (like 4: four standard deviations above it), or both",
        );
    }
    let min_count = required(node, "min_count", diags).and_then(|n| count(n, diags));
    let seasonality = match node.get("seasonality") {
        None => Some(Seasonality::WeekdayHour),
        Some(n) => {
            let text = n.scalar_text();
            let parsed = Seasonality::parse(&text);
            if parsed.is_none() {
                let hint = did_you_mean(&text, Seasonality::NAMES);
                diags.error(
                    n.pos,
                    format!(
                        "unknown seasonality `{text}`{hint}; use one of {}",
                        Seasonality::NAMES.join(", ")
                    ),
                );
            }
            parsed
        }
    };
    let window_ms = window_ms?;
    if let Some(s) = seasonality
        && s != Seasonality::None
        && window_ms > 3_600_000
        && let Some(n) = node.get("window")
    {
        diags.error(
            n.pos,
            format!(
                "a window longer than 1h cannot follow the hour of day (seasonality {}); use a window of at most 1h, or seasonality: none",
                s.as_str()
            ),
        );
        return None;
    }
    Some(Spike {
        window_ms,
        learn_for_ms: learn_for_ms?,
        factor: match factor {
            Some(f) => Some(f?),
            None => None,
        },
        deviations: match deviations {
            Some(d) => Some(d?),
            None => None,
        },
        min_count: min_count?,
        seasonality: seasonality?,
    })
}

fn travel(node: &Node, diags: &mut Diagnostics<'_>) -> Option<Travel> {
    let max_speed_kmh = node
        .get("max_speed_kmh")
        .map_or(Some(DEFAULT_MAX_SPEED_KMH), |n| number(n, diags, false));
    let min_distance_km = node
        .get("min_distance_km")
        .map_or(Some(DEFAULT_MIN_DISTANCE_KM), |n| number(n, diags, true));
    let ignore_asns = node
        .get("ignore_asns")
        .map_or(Some(Vec::new()), |n| asns(n, diags));
    Some(Travel {
        max_speed_kmh: max_speed_kmh?,
        min_distance_km: min_distance_km?,
        ignore_asns: ignore_asns?,
    })
}

/// A number above 0 (or at least 0 when `zero_ok`), integer or not.
fn number(n: &Node, diags: &mut Diagnostics<'_>, zero_ok: bool) -> Option<f64> {
    let value = match n.value {
        Value::Int(i) => Some(i as f64),
        Value::Float(f) if f.is_finite() => Some(f),
        _ => None,
    };
    match value {
        Some(v) if v > 0.0 || (zero_ok && v == 0.0) => Some(v),
        _ => {
            let bound = if zero_ok { "0 or more" } else { "above 0" };
            diags.error(
                n.pos,
                format!("expected a number {bound}, found `{}`", n.scalar_text()),
            );
            None
        }
    }
}

/// A list of AS numbers, written `13335` or `AS13335`.
fn asns(n: &Node, diags: &mut Diagnostics<'_>) -> Option<Vec<u32>> {
    let Some(items) = n.as_seq() else {
        diags.error(
            n.pos,
            format!(
                "`ignore_asns` must be a list of AS numbers like [14593, AS36183], found {}",
                n.value.kind_name()
            ),
        );
        return None;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for item in items {
        let parsed = match &item.value {
            Value::Int(i) => u32::try_from(*i).ok(),
            Value::Str(s) => s
                .strip_prefix("AS")
                .or_else(|| s.strip_prefix("as"))
                .and_then(|d| d.parse().ok()),
            _ => None,
        };
        match parsed {
            Some(asn) => out.push(asn),
            None => {
                ok = false;
                diags.error(
                    item.pos,
                    format!(
                        "`{}` is not an AS number; write it like 14593 or AS14593",
                        item.scalar_text()
                    ),
                );
            }
        }
    }
    ok.then_some(out)
}

fn is_runbook_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn rule_id(node: &Node, diags: &mut Diagnostics<'_>) -> Option<String> {
    let Some(id) = node.as_str() else {
        diags.error(
            node.pos,
            "`id` must be a string of lowercase letters, digits and dashes",
        );
        return None;
    };
    let valid = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !valid {
        diags.error(
            node.pos,
            format!("invalid id `{id}`: use lowercase letters, digits and dashes ([a-z0-9-]+)"),
        );
        return None;
    }
    Some(id.to_string())
}

fn required<'n>(node: &'n Node, key: &str, diags: &mut Diagnostics<'_>) -> Option<&'n Node> {
    let found = node.get(key);
    if found.is_none() {
        diags.error(node.pos, format!("missing `{key}`"));
    }
    found
}

fn required_str(node: &Node, key: &str, diags: &mut Diagnostics<'_>) -> Option<String> {
    let n = required(node, key, diags)?;
    string(n, key, diags)
}

fn optional_str(node: &Node, key: &str, diags: &mut Diagnostics<'_>) -> Option<String> {
    string(node.get(key)?, key, diags)
}

fn string(n: &Node, key: &str, diags: &mut Diagnostics<'_>) -> Option<String> {
    match n.as_str() {
        Some(s) => Some(s.to_string()),
        None => {
            diags.error(
                n.pos,
                format!("`{key}` must be a string, found {}", n.value.kind_name()),
            );
            None
        }
    }
}

fn string_list(n: &Node, key: &str, diags: &mut Diagnostics<'_>) -> Vec<String> {
    let Some(items) = n.as_seq() else {
        diags.error(
            n.pos,
            format!("`{key}` must be a list, found {}", n.value.kind_name()),
        );
        return Vec::new();
    };
    items.iter().filter_map(|i| string(i, key, diags)).collect()
}

fn field(n: &Node, diags: &mut Diagnostics<'_>) -> Option<Field> {
    let path = n.as_str().unwrap_or_default();
    let parsed = Field::parse(path);
    if parsed.is_none() {
        let hint = did_you_mean(path, Field::NAMES);
        diags.error(n.pos, format!("unknown field `{}`{hint}", n.scalar_text()));
    }
    parsed
}

fn fields(n: &Node, diags: &mut Diagnostics<'_>) -> Vec<Field> {
    match n.as_seq() {
        Some(items) => items
            .iter()
            .filter_map(|i| grouping_field(i, diags))
            .collect(),
        None => grouping_field(n, diags).into_iter().collect(),
    }
}

/// A field a rule groups or counts by: any field, or the address's network (`ip/24`).
fn grouping_field(n: &Node, diags: &mut Diagnostics<'_>) -> Option<Field> {
    let path = n.as_str().unwrap_or_default();
    if path.starts_with("ip/") {
        return Field::parse_grouping(path)
            .map_err(|err| diags.error(n.pos, err))
            .ok();
    }
    field(n, diags)
}

/// A duration such as `15m`; bare numbers are refused because their unit would be a guess.
pub(crate) fn duration_ms(n: &Node, diags: &mut Diagnostics<'_>, zero_ok: bool) -> Option<i64> {
    let Some(text) = n.as_str() else {
        diags.error(
            n.pos,
            format!(
                "expected a duration with a unit like 30s, 15m, 1h or 7d, found `{}`",
                n.scalar_text()
            ),
        );
        return None;
    };
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() && !zero_ok => {
            diags.error(n.pos, "the duration must be longer than 0s");
            None
        }
        Ok(d) => Some(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        Err(err) => {
            diags.error(
                n.pos,
                format!("invalid duration `{text}`: {err}; write it like 30s, 15m, 1h or 7d"),
            );
            None
        }
    }
}

fn count(n: &Node, diags: &mut Diagnostics<'_>) -> Option<u32> {
    match n.value {
        Value::Int(i) if i >= 1 && i <= i64::from(u32::MAX) => Some(i as u32),
        _ => {
            diags.error(
                n.pos,
                format!(
                    "expected a whole number of at least 1, found `{}`",
                    n.scalar_text()
                ),
            );
            None
        }
    }
}

fn steps(n: &Node, diags: &mut Diagnostics<'_>) -> Option<Vec<Step>> {
    let Some(items) = n.as_seq() else {
        diags.error(n.pos, "`steps` must be a list of {match, count}");
        return None;
    };
    if items.len() < 2 {
        diags.error(
            n.pos,
            "a sequence needs at least two steps (use kind threshold for one)",
        );
    }
    let mut steps = Vec::new();
    for item in items {
        let Some(entries) = item.as_map() else {
            diags.error(
                item.pos,
                "a step must be a map with `match` and optionally `count`",
            );
            continue;
        };
        for (key, _) in entries {
            let name = key.scalar_text();
            if name != "match" && name != "count" {
                let hint = did_you_mean(&name, ["match", "count"]);
                diags.error(key.pos, format!("unknown step key `{name}`{hint}"));
            }
        }
        let matcher = required(item, "match", diags).map(|m| compile_match(m, diags));
        let count = item.get("count").map_or(Some(1), |c| count(c, diags));
        if let (Some(matcher), Some(count)) = (matcher, count) {
            steps.push(Step { matcher, count });
        }
    }
    Some(steps)
}

fn tests(n: &Node, diags: &mut Diagnostics<'_>) -> Vec<RuleTest> {
    let Some(items) = n.as_seq() else {
        diags.error(n.pos, "`tests` must be a list of {name, events, expect}");
        return Vec::new();
    };
    items.iter().filter_map(|t| rule_test(t, diags)).collect()
}

fn rule_test(n: &Node, diags: &mut Diagnostics<'_>) -> Option<RuleTest> {
    let entries = n.as_map().or_else(|| {
        diags.error(
            n.pos,
            "a test must be a map with `name`, `events` and `expect`",
        );
        None
    })?;
    for (key, _) in entries {
        let name = key.scalar_text();
        if !["name", "events", "expect"].contains(&name.as_str()) {
            let hint = did_you_mean(&name, ["name", "events", "expect"]);
            diags.error(key.pos, format!("unknown test key `{name}`{hint}"));
        }
    }
    let name = required_str(n, "name", diags);
    let events = required(n, "events", diags).and_then(|e| test_events(e, diags));
    let expect = required(n, "expect", diags).and_then(|e| expectations(e, diags));
    Some(RuleTest {
        name: name?,
        pos: n.pos,
        events: events?,
        expect: expect?,
    })
}

/// Expands `at`/`repeat`/`every` lines into decoded events.
fn test_events(n: &Node, diags: &mut Diagnostics<'_>) -> Option<Vec<Arc<Event>>> {
    let Some(lines) = n.as_seq() else {
        diags.error(n.pos, "`events` must be a list of events");
        return None;
    };
    let mut events = Vec::new();
    let mut cursor: Option<i64> = None;
    for line in lines {
        let Some(entries) = line.as_map() else {
            diags.error(line.pos, "a test event must be a map of event fields");
            continue;
        };
        let every = line
            .get("every")
            .and_then(|e| duration_ms(e, diags, true))
            .unwrap_or(DEFAULT_TEST_STEP_MS);
        let at = line.get("at").and_then(|a| duration_ms(a, diags, true));
        let repeat = line.get("repeat").map_or(Some(1), |r| count(r, diags))?;
        let start = at.unwrap_or_else(|| cursor.map_or(0, |c| c + every));
        let fields: Vec<&(Node, Node)> = entries
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), Some("at" | "repeat" | "every")))
            .collect();
        for copy in 0..repeat {
            let offset = start + i64::from(copy) * every;
            let mut object = serde_json::Map::new();
            for (k, v) in &fields {
                object.insert(k.scalar_text(), substitute_index(v.to_json(), copy + 1));
            }
            object.insert("ts".into(), (TEST_START_MS + offset).into());
            match decode_value(serde_json::Value::Object(object)) {
                Ok(e) => events.push(Arc::new(e)),
                Err(err) => {
                    diags.error(line.pos, format!("bad test event: {}", err.message));
                    break;
                }
            }
            cursor = Some(offset);
        }
    }
    Some(events)
}

/// Replaces `{i}` in every string with the copy number, so repeats can vary a field.
fn substitute_index(v: serde_json::Value, i: u32) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        J::String(s) if s.contains("{i}") => J::String(s.replace("{i}", &i.to_string())),
        J::Array(items) => J::Array(items.into_iter().map(|x| substitute_index(x, i)).collect()),
        J::Object(m) => J::Object(
            m.into_iter()
                .map(|(k, x)| (k, substitute_index(x, i)))
                .collect(),
        ),
        other => other,
    }
}

fn expectations(n: &Node, diags: &mut Diagnostics<'_>) -> Option<Vec<Expectation>> {
    let Some(items) = n.as_seq() else {
        diags.error(
            n.pos,
            "`expect` must be a list of expected alerts ([] for none)",
        );
        return None;
    };
    let mut out = Vec::new();
    for item in items {
        let Some(entries) = item.as_map() else {
            diags.error(
                item.pos,
                "an expected alert must be a map like {group: {username: a@x.io}}",
            );
            continue;
        };
        let mut expectation = Expectation {
            group: serde_json::Map::new(),
            count: None,
        };
        for (key, value) in entries {
            match key.scalar_text().as_str() {
                "group" => match value.to_json() {
                    serde_json::Value::Object(mut group) => {
                        if let Some(serde_json::Value::String(u)) = group.get_mut("username") {
                            *u = u.to_lowercase();
                        }
                        expectation.group = group;
                    }
                    _ => diags.error(value.pos, "`group` must be a map of field: value"),
                },
                "count" => expectation.count = count(value, diags).map(u64::from),
                other => {
                    let hint = did_you_mean(other, ["group", "count"]);
                    diags.error(key.pos, format!("unknown expectation key `{other}`{hint}"));
                }
            }
        }
        out.push(expectation);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::rule::{Kind, load_file_text};

    fn errors(text: &str) -> Vec<String> {
        let (_, diags) = load_file_text(Path::new("r.yaml"), text);
        diags.iter().map(ToString::to_string).collect()
    }

    /// Kind names come from `Kind`'s variants; an unknown one lists them all.
    #[test]
    fn kind_names_are_the_variants_and_an_unknown_one_lists_them() {
        let lines = errors("id: a\ntitle: A\nseverity: low\nkind: treshold\nmatch: {}\n");
        assert_eq!(
            lines,
            [
                "r.yaml:4:7: rule a: unknown kind `treshold` (did you mean `threshold`?); kinds \
                 are match, threshold, distinct, sequence, new_value, impossible_travel, spike"
            ]
        );
        let (rules, diags) = load_file_text(
            Path::new("r.yaml"),
            "id: a\ntitle: A\nseverity: low\nkind: new_value\nmatch: {}\nfield: ip\n",
        );
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(rules[0].kind.name(), "new_value");
        // The engine's forms of a kind are no `kind:` of their own.
        let lines = errors("id: a\ntitle: A\nseverity: low\nkind: cleared_distinct\nmatch: {}\n");
        assert!(
            lines[0].contains("unknown kind `cleared_distinct`"),
            "{lines:?}"
        );
    }

    #[test]
    fn baseline_kinds_compile_with_their_defaults() {
        let (rules, diags) = load_file_text(
            Path::new("r.yaml"),
            "id: a\ntitle: A\nseverity: low\nkind: new_value\nmatch: {type: login.success}\nfield: device\n",
        );
        assert!(diags.is_empty(), "{diags:?}");
        let Kind::NewValue(n) = &rules[0].kind else {
            panic!("new_value")
        };
        assert_eq!(
            (n.learn_for_ms, n.min_history, n.forget_after_ms),
            (0, 1, 90 * 86_400_000)
        );
        assert_eq!(rules[0].suppress_ms, 0);
        let (rules, diags) = load_file_text(
            Path::new("r.yaml"),
            "id: b\ntitle: B\nseverity: low\nkind: impossible_travel\nmatch: {type: login.success}\nignore_asns: [14593, AS36183]\n",
        );
        assert!(diags.is_empty(), "{diags:?}");
        let Kind::ImpossibleTravel(t) = &rules[0].kind else {
            panic!("impossible_travel")
        };
        assert_eq!(
            (t.max_speed_kmh, t.min_distance_km, t.ignore_asns.clone()),
            (900.0, 500.0, vec![14593, 36183])
        );
        // Beyond 20,015 km / 900 km/h no trip can be impossible: the state goes after ~22h.
        assert_eq!(rules[0].kind.horizon_ms(), 80_060_400);
    }

    #[test]
    fn every_baseline_mistake_is_positioned() {
        let lines = errors(
            "\
id: a
title: A
severity: low
kind: new_value
match: {type: login.success}
forget_after: 10m
min_history: 0
max_speed_kmh: 900
",
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("r.yaml:1:1: rule a: missing `field`")),
            "{lines:#?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("r.yaml:6:15: rule a: `forget_after` must be at least 1h")),
            "{lines:#?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("r.yaml:7:14: rule a: expected a whole number")),
            "{lines:#?}"
        );
        assert!(
            lines.iter().any(|l| l.starts_with(
                "r.yaml:8:16: rule a: `max_speed_kmh` does not apply to kind new_value"
            )),
            "{lines:#?}"
        );
        let lines = errors(
            "\
id: b
title: B
severity: low
kind: impossible_travel
match: {type: login.success}
max_speed_kmh: -3
min_distance_km: far
ignore_asns: [14593, starlink]
field: geo.country
",
        );
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("r.yaml:6:16: rule b: expected a number above 0")),
            "{lines:#?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("r.yaml:7:18: rule b: expected a number 0 or more")),
            "{lines:#?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("r.yaml:8:22: rule b: `starlink` is not an AS number")),
            "{lines:#?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("r.yaml:9:8: rule b: `field` does not apply")),
            "{lines:#?}"
        );
    }

    #[test]
    fn network_groupings_compile_and_bad_prefixes_are_positioned() {
        let (rules, diags) = load_file_text(
            Path::new("r.yaml"),
            "id: a\ntitle: A\nseverity: low\nkind: distinct\nmatch: {type: login.failure}\ngroup_by: [tenant, ip/24]\ndistinct: ip/64\nwindow: 1h\nthreshold: 3\n",
        );
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(rules[0].group_by[1].to_string(), "ip/24");
        let lines = errors(
            "\
id: b
title: B
severity: low
kind: threshold
match: {type: login.failure, ip/24: 198.51.100.0}
group_by: [tenant, ip/33/64, geo.asn, ip/0]
window: 1h
threshold: 3
",
        );
        assert!(
            lines.iter().any(|l| l.starts_with(
                "r.yaml:6:20: rule b: `ip/33/64` is not a network prefix; write `ip/<length>`"
            )),
            "{lines:#?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("r.yaml:6:39: rule b: `ip/0` is not a network prefix")),
            "{lines:#?}"
        );
        // In `match` a network is a `cidr`, not a field.
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("r.yaml:5:30: rule b: unknown field `ip/24`")),
            "{lines:#?}"
        );
    }

    #[test]
    fn bucketed_counts_compile_and_their_misuse_is_positioned() {
        let (rules, diags) = load_file_text(
            Path::new("r.yaml"),
            "id: a\ntitle: A\nseverity: low\nkind: distinct\nmatch: {type: login.failure}\ngroup_by: [tenant, ip/24]\ndistinct: username\nwindow: 1d\nbucket: 1h\napproximate: true\nthreshold: 30\n",
        );
        assert!(diags.is_empty(), "{diags:?}");
        let Kind::Bucketed(b) = &rules[0].kind else {
            panic!("bucketed")
        };
        assert_eq!((b.buckets(), rules[0].kind.name()), (25, "distinct"));
        assert_eq!(rules[0].suppress_ms, 86_400_000);
        let lines = errors(
            "\
- id: b
  title: B
  severity: low
  kind: distinct
  match: {type: login.failure}
  distinct: username
  window: 1d
  bucket: 1h
  threshold: 30
- id: c
  title: C
  severity: low
  kind: threshold
  match: {type: login.failure}
  window: 1h
  bucket: 2h
  approximate: true
  threshold: 3
- id: d
  title: D
  severity: low
  kind: distinct
  match: {type: login.failure}
  distinct: username
  window: 1h
  approximate: true
  threshold: 3
- id: e
  title: E
  severity: low
  kind: threshold
  match: {type: login.failure}
  window: 7d
  bucket: 1s
  threshold: 3
",
        );
        for want in [
            "r.yaml:8:11: rule b: a bucketed distinct count is an estimate",
            "r.yaml:16:11: rule c: `bucket` (2h) is longer than `window` (1h)",
            "r.yaml:17:16: rule c: `approximate` does not apply to kind threshold",
            "r.yaml:26:16: rule d: `approximate` needs `bucket`",
            "r.yaml:34:11: rule e: `bucket` makes more than 1440 buckets",
        ] {
            assert!(
                lines.iter().any(|l| l.starts_with(want)),
                "{want}\n{lines:#?}"
            );
        }
    }

    #[test]
    fn new_value_over_several_fields_and_its_misuse() {
        let (rules, diags) = load_file_text(
            Path::new("r.yaml"),
            "id: a\ntitle: A\nseverity: low\nkind: new_value\nmatch: {type: token.refresh}\ngroup_by: [tenant, session]\nfield: [geo.country, geo.asn, user_agent]\nmin_new: 2\nforget_after: 1d\n",
        );
        assert!(diags.is_empty(), "{diags:?}");
        let Kind::NewValues(n) = &rules[0].kind else {
            panic!("new_values")
        };
        assert_eq!(
            (n.fields.len(), n.min_new, n.base.forget_after_ms),
            (3, 2, 86_400_000)
        );
        let lines = errors(
            "\
- id: b
  title: B
  severity: low
  kind: new_value
  match: {type: token.refresh}
  field: device
  min_new: 2
- id: c
  title: C
  severity: low
  kind: new_value
  match: {type: token.refresh}
  field: [geo.country, user_agent, geo.country]
  min_new: 4
",
        );
        for want in [
            "r.yaml:7:12: rule b: `min_new` needs `field` to be a list",
            "r.yaml:13:36: rule c: `geo.country` is listed twice",
            "r.yaml:14:12: rule c: `min_new` is 4 but `field` lists 3 fields",
        ] {
            assert!(
                lines.iter().any(|l| l.starts_with(want)),
                "{want}\n{lines:#?}"
            );
        }
    }

    #[test]
    fn spike_rules_compile_with_defaults_and_their_misuse_is_positioned() {
        let (rules, diags) = load_file_text(
            Path::new("r.yaml"),
            "id: a\ntitle: A\nseverity: low\nkind: spike\nmatch: {type: login.failure}\ngroup_by: [tenant]\nwindow: 1h\nfactor: 4\nmin_count: 30\n",
        );
        assert!(diags.is_empty(), "{diags:?}");
        let Kind::Spike(s) = &rules[0].kind else {
            panic!("spike")
        };
        assert_eq!(s.learn_for_ms, 7 * 86_400_000);
        assert_eq!(s.seasonality, crate::rule::Seasonality::WeekdayHour);
        assert_eq!((s.factor, s.deviations), (Some(4.0), None));
        let lines = errors(
            "\
- id: b
  title: B
  severity: low
  kind: spike
  match: {type: login.failure}
  window: 1h
  min_count: 3
- id: c
  title: C
  severity: low
  kind: spike
  match: {type: login.failure}
  window: 1d
  factor: 0.5
  min_count: 0
  seasonality: hour_of_week
- id: d
  title: D
  severity: low
  kind: spike
  match: {type: login.failure}
  window: 2h
  deviations: 3
  min_count: 10
  threshold: 5
",
        );
        for want in [
            "r.yaml:1:3: rule b: a spike rule needs `factor`",
            "r.yaml:14:11: rule c: `factor` must be above 1",
            "r.yaml:15:14: rule c: expected a whole number of at least 1",
            "r.yaml:16:16: rule c: unknown seasonality `hour_of_week`",
            "r.yaml:22:11: rule d: a window longer than 1h cannot follow the hour of day",
            "r.yaml:25:14: rule d: `threshold` does not apply to kind spike",
        ] {
            assert!(
                lines.iter().any(|l| l.starts_with(want)),
                "{want}\n{lines:#?}"
            );
        }
    }

    #[test]
    fn cleared_by_takes_a_match_and_an_exact_count() {
        let (rules, diags) = load_file_text(
            Path::new("r.yaml"),
            "id: a\ntitle: A\nseverity: low\nkind: distinct\nmatch: {type: login.failure}\ngroup_by: [tenant, ip]\ndistinct: username\ncleared_by: {type: login.success}\nwindow: 1h\nthreshold: 8\n",
        );
        assert!(diags.is_empty(), "{diags:?}");
        assert!(matches!(rules[0].kind, Kind::ClearedDistinct(_)));
        let lines = errors(
            "\
- id: b
  title: B
  severity: low
  kind: distinct
  match: {type: login.failure}
  distinct: username
  cleared_by: {type: login.sucess}
  window: 1d
  bucket: 1h
  approximate: true
  threshold: 8
- id: c
  title: C
  severity: low
  kind: threshold
  match: {type: login.failure}
  cleared_by: {type: login.success}
  window: 1h
  threshold: 8
- id: d
  title: D
  severity: low
  kind: distinct
  match: {type: login.failure}
  distinct: username
  cleared_by: {type: login.sucess}
  window: 1h
  threshold: 8
",
        );
        for want in [
            "r.yaml:7:15: rule b: `cleared_by` needs an exact count",
            "r.yaml:17:15: rule c: `cleared_by` does not apply to kind threshold",
            "r.yaml:26:22: rule d: unknown event type `login.sucess`",
        ] {
            assert!(
                lines.iter().any(|l| l.starts_with(want)),
                "{want}\n{lines:#?}"
            );
        }
    }
}
