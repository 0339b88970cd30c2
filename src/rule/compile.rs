//! Compiles one rule's positioned YAML tree into a [`Rule`], reporting every mistake.

use std::sync::Arc;

use super::diag::{Diagnostics, did_you_mean};
use super::matcher::{Matcher, compile_match};
use super::yaml::{Node, Value};
use super::{Expectation, Kind, Origin, Rule, RuleTest, Severity, Step};
use crate::event::{Event, Field, decode_value};

/// Every key a rule may have. Unknown keys are errors (a typo must not silently disable logic).
const RULE_KEYS: [&str; 17] = [
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
    "suppress",
    "tests",
];

const KINDS: [&str; 6] = [
    "match",
    "threshold",
    "distinct",
    "sequence",
    "new_value",
    "impossible_travel",
];

/// Keys that only some kinds take.
const KIND_KEYS: [(&str, &[&str]); 5] = [
    ("window", &["threshold", "distinct"]),
    ("threshold", &["threshold", "distinct"]),
    ("distinct", &["distinct"]),
    ("within", &["sequence"]),
    ("steps", &["sequence"]),
];

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
    if let Some(k) = &kind_name {
        if !KINDS.contains(&k.as_str()) {
            let hint = did_you_mean(k, KINDS);
            diags.error(
                node.get("kind")?.pos,
                format!("unknown kind `{k}`{hint}; kinds are {}", KINDS.join(", ")),
            );
        } else if matches!(k.as_str(), "new_value" | "impossible_travel") {
            diags.error(
                node.get("kind")?.pos,
                format!("kind `{k}` is not available in this version of authwatch"),
            );
        }
        for (key, kinds) in KIND_KEYS {
            if let Some(n) = node.get(key)
                && KINDS.contains(&k.as_str())
                && !kinds.contains(&k.as_str())
            {
                diags.error(
                    n.pos,
                    format!(
                        "`{key}` does not apply to kind {k} (only {})",
                        kinds.join(", ")
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

    let kind = match kind_name.as_deref() {
        Some("match") => Some(Kind::Match),
        Some("threshold") => {
            let window_ms =
                required(node, "window", diags).and_then(|n| duration_ms(n, diags, false));
            let threshold = required(node, "threshold", diags).and_then(|n| count(n, diags));
            Some(Kind::Threshold {
                window_ms: window_ms?,
                threshold: threshold?,
            })
        }
        Some("distinct") => {
            let window_ms =
                required(node, "window", diags).and_then(|n| duration_ms(n, diags, false));
            let threshold = required(node, "threshold", diags).and_then(|n| count(n, diags));
            let field = required(node, "distinct", diags).and_then(|n| field(n, diags));
            Some(Kind::Distinct {
                field: field?,
                window_ms: window_ms?,
                threshold: threshold?,
            })
        }
        Some("sequence") => {
            let within_ms =
                required(node, "within", diags).and_then(|n| duration_ms(n, diags, false));
            let steps = required(node, "steps", diags).and_then(|n| steps(n, diags));
            Some(Kind::Sequence {
                within_ms: within_ms?,
                steps: steps?,
            })
        }
        _ => None,
    };
    if matches!(kind, Some(Kind::Threshold { .. } | Kind::Distinct { .. })) && filter.is_none() {
        diags.error(
            node.pos,
            "missing `match`: a counting rule must say which events it counts",
        );
    }

    // Default suppression: one alert per window for counting rules, none for `match`.
    let suppress_ms = suppress_ms.unwrap_or_else(|| kind.as_ref().map_or(0, Kind::horizon_ms));
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
    })
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
        Some(items) => items.iter().filter_map(|i| field(i, diags)).collect(),
        None => field(n, diags).into_iter().collect(),
    }
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
