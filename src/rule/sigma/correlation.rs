//! Sigma correlations on the engine's exact event-time windows: `event_count` is a
//! `threshold` rule, `value_count` a `distinct` rule, `temporal` a `distinct` rule over which
//! referenced rule matched (all of them within the timespan), `temporal_ordered` a `sequence`.
//!
//! A count condition fires the moment the window's count enters it, as the engine's kinds
//! do: `gte`/`gt`/`eq` and ranges with a lower bound. A bare upper bound (`lt`, `lte`) asks
//! for the absence of events, which needs the window to close first; it is refused.

use std::sync::Arc;

use super::logsource::{Locator, locate};
use super::parse;
use super::value::Problem;
use super::{ATTRS_KEY, Compiled, DEFAULT_LEVEL, SigmaFile, SigmaPart, marked};
use crate::event::Field;
use crate::normalize::Format;
use crate::rule::compile::duration_ms;
use crate::rule::diag::Diagnostics;
use crate::rule::matcher::Matcher;
use crate::rule::yaml::{Node, Value};
use crate::rule::{Kind, Origin, Rule, Step};

/// The value a `temporal` correlation counts: which of its rules the event matched.
pub const TEMPORAL_FIELD: &str = "@rule";

const TYPES: [&str; 4] = ["event_count", "value_count", "temporal", "temporal_ordered"];

/// Values a correlation needs from each event its rules mark, copied at arrival into
/// `attrs.sigma.<id>.<field>`.
#[derive(Debug)]
pub struct Extract {
    pub id: String,
    /// What marks this correlation's firing, for correlations that count it.
    pub hash: String,
    /// The referenced rules' keys, in the correlation's order.
    pub rules: Vec<String>,
    /// Per field: where each referenced rule finds it (aliases resolved).
    pub fields: Vec<(String, Vec<Source>)>,
    pub temporal: bool,
}

/// Where one referenced rule finds a correlation field.
#[derive(Debug)]
pub struct Source {
    pub rule: String,
    /// The field's name for that rule (after `aliases`): a group field of a referenced
    /// correlation's alert.
    pub name: String,
    /// Where a referenced Sigma rule's event holds it.
    pub at: Locator,
}

/// The mark of a correlation's firing: a hash of its document.
pub fn correlation_hash(node: &Node) -> String {
    format!(
        "{:016x}",
        xxhash_rust::xxh3::xxh3_64(node.to_json().to_string().as_bytes())
    )
}

/// The names or ids of the rules a correlation document references.
pub fn references(node: &Node) -> Vec<String> {
    node.get("correlation")
        .and_then(|c| c.get("rules"))
        .and_then(Node::as_seq)
        .map(|items| items.iter().map(Node::scalar_text).collect())
        .unwrap_or_default()
}

/// Registers a correlation document; it is compiled by `resolve` once every file is read.
pub fn read(node: Node, origin: Origin, out: &mut SigmaFile) {
    let mut errors = Vec::new();
    let meta = parse::meta(&node, &mut errors);
    let id = meta.rule_id().map(str::to_string);
    for (pos, message) in errors {
        out.errors.push((pos, id.clone(), message));
    }
    let Some(id) = id else { return };
    out.rules.push(Rule {
        id,
        title: meta.title,
        description: meta.description,
        severity: meta.level.unwrap_or(DEFAULT_LEVEL),
        tags: meta.tags,
        runbook: meta.runbook,
        enabled: false,
        filter: Matcher::Not(Box::new(Matcher::always())),
        group_by: Vec::new(),
        kind: Kind::Match,
        suppress_ms: 0,
        tests: Vec::new(),
        origin,
        sigma: Some(Arc::new(SigmaPart {
            pending: Some(Arc::new(node)),
            ..SigmaPart::default()
        })),
    });
}

fn problem(n: &Node, message: impl Into<String>) -> Problem {
    Problem {
        pos: n.pos,
        message: message.into(),
        unsupported: false,
    }
}

fn unsupported(n: &Node, message: impl Into<String>) -> Problem {
    Problem {
        pos: n.pos,
        message: message.into(),
        unsupported: true,
    }
}

/// Compiles a correlation against every rule loaded. Returns the rule, the keys of the
/// rules it references, and whether they `generate` their own alerts.
pub fn compile(
    node: &Node,
    placeholder: &Rule,
    rules: &[Rule],
) -> Result<(Rule, Vec<String>, bool), Vec<Problem>> {
    let mut problems = Vec::new();
    let mut ignored = Vec::new();
    let meta = parse::meta(node, &mut ignored);
    let corr = node.get("correlation").expect("a correlation");
    if corr.as_map().is_none() {
        return Err(vec![problem(corr, "`correlation` must be a map")]);
    }
    let kind_name = corr.get("type").map(Node::scalar_text).unwrap_or_default();
    if !TYPES.contains(&kind_name.as_str()) {
        return Err(vec![problem(
            corr.get("type").unwrap_or(corr),
            format!(
                "unknown correlation type `{kind_name}`; types are {}",
                TYPES.join(", ")
            ),
        )]);
    }
    let generate = [corr.get("generate"), node.get("generate")]
        .into_iter()
        .flatten()
        .any(|g| g.value == Value::Bool(true));

    // The referenced rules: their keys, marks, and detections (for Sigma rules) or nothing
    // (for correlations, whose firings mark chained copies of events).
    let mut keys = Vec::new();
    let mut hashes: Vec<String> = Vec::new();
    let mut formats: Vec<Option<Format>> = Vec::new();
    let mut chained = false;
    let mut detections: Vec<Arc<Compiled>> = Vec::new();
    match corr.get("rules").map(|r| (r, r.as_seq())) {
        Some((_, Some(items))) if !items.is_empty() => {
            for item in items {
                let reference = item.scalar_text();
                let found = rules.iter().find(|r| {
                    r.sigma.as_ref().is_some_and(|s| {
                        s.name.as_deref() == Some(&reference)
                            || s.sigma_id.as_deref() == Some(&reference)
                            || (s.pending.is_some() && r.id == reference)
                    })
                });
                match found.and_then(|r| r.sigma.as_ref().map(|s| (r, s))) {
                    Some((r, s)) if s.pending.is_some() => {
                        if keys.contains(&r.id) {
                            continue;
                        }
                        chained = true;
                        keys.push(r.id.clone());
                        hashes.push(correlation_hash(s.pending.as_deref().expect("pending")));
                        formats.push(None);
                    }
                    Some((r, s)) => {
                        if keys.contains(&r.id) {
                            continue;
                        }
                        let d = &s.detections[0];
                        keys.push(r.id.clone());
                        hashes.push(d.hash.clone());
                        formats.push(Some(d.format.unwrap_or(Format::Native)));
                        detections.extend(s.detections.iter().cloned());
                    }
                    None => problems.push(problem(
                        item,
                        format!("the correlation names `{reference}`, which no loaded Sigma rule has as name or id"),
                    )),
                }
            }
        }
        _ => problems.push(problem(
            corr,
            "a correlation needs `rules`: the names or ids of the rules it counts",
        )),
    }

    let window_ms = match corr.get("timespan") {
        None => {
            problems.push(problem(corr, "a correlation needs a `timespan` such as 5m"));
            None
        }
        Some(n) => {
            let mut diags = Diagnostics::new(std::path::Path::new(""));
            let ms = duration_ms(n, &mut diags, false);
            problems.extend(diags.items.into_iter().map(|d| Problem {
                pos: d.pos,
                message: d.message.replace("30s, 15m, 1h or 7d", "30s, 5m, 1h or 1d"),
                unsupported: false,
            }));
            ms
        }
    };

    let id = placeholder.id.clone();
    let aliases = corr.get("aliases");
    let extract_field = |name: &str| -> (String, Vec<Source>) {
        let per_rule = keys
            .iter()
            .zip(&formats)
            .map(|(k, format)| {
                let source = aliases
                    .and_then(|a| a.get(name))
                    .and_then(|a| {
                        a.get(k).or_else(|| {
                            // An alias may name the rule by its other identifier.
                            rules.iter().find(|r| &r.id == k).and_then(|r| {
                                r.sigma.as_ref().and_then(|s| {
                                    [s.name.as_deref(), s.sigma_id.as_deref()]
                                        .into_iter()
                                        .flatten()
                                        .find_map(|alt| a.get(alt))
                                })
                            })
                        })
                    })
                    .map_or_else(|| name.to_string(), Node::scalar_text);
                Source {
                    rule: k.clone(),
                    at: format.map_or(Locator::Paths(Vec::new()), |f| locate(f, &source)),
                    name: source,
                }
            })
            .collect();
        (name.to_string(), per_rule)
    };
    let field = |name: &str| Field::Attr(vec![ATTRS_KEY.into(), id.clone(), name.into()]);

    let mut group_by = Vec::new();
    let mut fields = Vec::new();
    if let Some(g) = corr.get("group-by") {
        match g.as_seq() {
            Some(items) => {
                for item in items {
                    let name = item.scalar_text();
                    group_by.push(field(&name));
                    fields.push(extract_field(&name));
                }
            }
            None => problems.push(problem(g, "`group-by` must be a list of field names")),
        }
    }

    let condition = corr.get("condition");
    let threshold = |problems: &mut Vec<Problem>| -> Option<u32> {
        let Some(c) = condition else {
            problems.push(problem(
                corr,
                format!("a {kind_name} correlation needs a `condition` such as {{gte: 10}}"),
            ));
            return None;
        };
        count_threshold(c).map_err(|p| problems.push(p)).ok()
    };
    let filter = Matcher::Any(
        keys.iter()
            .zip(&hashes)
            .map(|(k, h)| marked(k, h))
            .collect(),
    );
    let mut temporal = false;
    let kind = match kind_name.as_str() {
        "event_count" => threshold(&mut problems).map(|threshold| Kind::Threshold {
            window_ms: window_ms.unwrap_or(1),
            threshold,
        }),
        "value_count" => {
            let value = condition
                .and_then(|c| c.get("field"))
                .map(Node::scalar_text);
            match value {
                None => {
                    problems.push(problem(
                        condition.unwrap_or(corr),
                        "a value_count correlation needs `field` in its condition",
                    ));
                    None
                }
                Some(name) => {
                    fields.push(extract_field(&name));
                    threshold(&mut problems).map(|threshold| Kind::Distinct {
                        field: field(&name),
                        window_ms: window_ms.unwrap_or(1),
                        threshold,
                    })
                }
            }
        }
        "temporal" => {
            temporal = true;
            Some(Kind::Distinct {
                field: field(TEMPORAL_FIELD),
                window_ms: window_ms.unwrap_or(1),
                threshold: u32::try_from(keys.len()).unwrap_or(u32::MAX).max(1),
            })
        }
        _ => {
            if keys.len() < 2 && problems.is_empty() {
                problems.push(problem(corr, "temporal_ordered needs at least two rules"));
            }
            Some(Kind::Sequence {
                within_ms: window_ms.unwrap_or(1),
                steps: keys
                    .iter()
                    .zip(&hashes)
                    .map(|(k, h)| Step {
                        matcher: marked(k, h),
                        count: 1,
                    })
                    .collect(),
            })
        }
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    let kind = kind.expect("no problems");
    let suppress_ms = kind.default_suppress_ms();
    let rule = Rule {
        id: id.clone(),
        title: meta.title.clone(),
        description: meta.description.clone(),
        severity: meta.level.unwrap_or(DEFAULT_LEVEL),
        tags: meta.tags.clone(),
        runbook: meta.runbook.clone(),
        enabled: meta.enabled,
        filter,
        group_by,
        kind,
        suppress_ms,
        tests: Vec::new(),
        origin: placeholder.origin.clone(),
        sigma: Some(Arc::new(SigmaPart {
            sigma_id: meta.id.clone(),
            name: meta.name.clone(),
            references: meta.references.clone(),
            falsepositives: meta.falsepositives.clone(),
            detections,
            extract: Some(Arc::new(Extract {
                id,
                hash: correlation_hash(node),
                rules: keys.clone(),
                fields,
                temporal,
            })),
            pending: None,
            direct: false,
            runbook_from_tags: meta.runbook.is_none(),
            chained,
            silent: false,
        })),
    };
    Ok((rule, keys, generate))
}

/// The count at which a condition first holds: `gte: n` n, `gt: n` n+1, `eq: n` n; an upper
/// bound beside a lower one must not be below it.
fn count_threshold(c: &Node) -> Result<u32, Problem> {
    let Some(entries) = c.as_map() else {
        return Err(problem(c, "a condition must be a map such as {gte: 10}"));
    };
    let mut lower: Option<i64> = None;
    let mut upper: Option<(i64, &Node)> = None;
    for (key, value) in entries {
        let op = key.scalar_text();
        if op == "field" {
            continue;
        }
        let Value::Int(n) = value.value else {
            return Err(problem(
                value,
                format!(
                    "`{op}` takes a whole number, found `{}`",
                    value.scalar_text()
                ),
            ));
        };
        match op.as_str() {
            "gte" => lower = Some(lower.map_or(n, |l| l.max(n))),
            "gt" => lower = Some(lower.map_or(n.saturating_add(1), |l| l.max(n.saturating_add(1)))),
            "eq" => {
                lower = Some(n);
                upper = Some((n, value));
            }
            "lte" => upper = Some((n, value)),
            "lt" => upper = Some((n.saturating_sub(1), value)),
            other => {
                return Err(problem(
                    key,
                    format!("unknown condition `{other}`; use gt, gte, lt, lte, eq"),
                ));
            }
        }
    }
    let Some(lower) = lower else {
        return Err(match upper {
            Some((_, n)) => unsupported(
                n,
                "a count condition with only an upper bound (lt, lte) waits for a window to close, which authwatch's windows do not",
            ),
            None => problem(c, "the condition has no bound: use gte, gt or eq"),
        });
    };
    if let Some((up, n)) = upper
        && up < lower
    {
        return Err(problem(
            n,
            "the upper bound is below the lower bound: the condition can never hold",
        ));
    }
    u32::try_from(lower.max(1)).map_err(|_| problem(c, "the count is too large"))
}
