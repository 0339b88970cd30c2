//! A rule's shape: the explicit, versioned encoding of what a rule counts, whose hash is stored
//! under `r/<rule id>` so that groups of a rule whose shape changed are dropped on restore.
//!
//! The encoding names every part in the rule language's own terms (kind and operator names,
//! field paths as rules write them, literals as JSON) and never goes through `Debug`, so a
//! changed `Debug` impl or a renamed Rust variant keeps every stored window. A change of the
//! encoding itself is a new [`SHAPE_VERSION`].

use serde::Serialize;
use serde_json::{Value, json};

use crate::rule::matcher::{Literal, Op};
use crate::rule::{Kind, Matcher, Rule};

/// The version of the encoding below; part of every stored shape (`v<N>:<xxh3-64 hex>`).
pub const SHAPE_VERSION: u32 = 1;

/// The stored shape of `rule`: `v1:` and the xxh3-64 of its canonical JSON encoding.
pub fn rule_shape(rule: &Rule) -> String {
    let bytes = serde_json::to_vec(&encode(rule)).expect("a shape serialises");
    format!(
        "v{SHAPE_VERSION}:{:016x}",
        xxhash_rust::xxh3::xxh3_64(&bytes)
    )
}

/// What a rule counts, and only that (objects built with `json!` serialise with sorted keys,
/// serde_json's default; the golden test below would catch a change of that): title, severity, suppression and the like can change
/// without losing state.
#[derive(Serialize)]
struct Shape {
    version: u32,
    kind: Value,
    filter: Value,
    group_by: Vec<String>,
}

fn encode(rule: &Rule) -> Shape {
    let kind = match &rule.kind {
        Kind::Match => json!({"kind": "match"}),
        Kind::Threshold {
            window_ms,
            threshold,
        } => json!({"kind": "threshold", "window_ms": window_ms, "threshold": threshold}),
        Kind::Distinct {
            field,
            window_ms,
            threshold,
        } => json!({
            "kind": "distinct", "field": field.to_string(),
            "window_ms": window_ms, "threshold": threshold,
        }),
        Kind::Sequence { within_ms, steps } => json!({
            "kind": "sequence", "within_ms": within_ms,
            "steps": steps
                .iter()
                .map(|s| json!({"match": matcher(&s.matcher), "count": s.count}))
                .collect::<Vec<_>>(),
        }),
        // Baselines take weeks to learn: tuning when they alert must not throw them away,
        // only a change of what they hold (the field) does.
        Kind::NewValue(n) => json!({"kind": "new_value", "field": n.field.to_string()}),
        // Trips are judged on the last place alone; the options only decide when to alert.
        Kind::ImpossibleTravel(_) => json!({"kind": "impossible_travel"}),
        // A new form with its own tag: the shapes of the kinds above are unchanged (no new
        // SHAPE_VERSION), and counts or sketches never meet another kind's state.
        Kind::Bucketed(b) => json!({
            "kind": "bucketed", "distinct": b.distinct.as_ref().map(ToString::to_string),
            "window_ms": b.window_ms, "bucket_ms": b.bucket_ms, "threshold": b.threshold,
        }),
        // Like new_value: the fields are what the baselines hold; min_new only decides when
        // to alert.
        Kind::NewValues(n) => json!({
            "kind": "new_values",
            "fields": n.fields.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }),
        // A learned baseline takes weeks: only the window and the seasons (what each slot
        // means) are its shape; factor, deviations, floor and learning period only decide
        // when to alert, and retuning them keeps what was learned.
        Kind::Spike(s) => json!({
            "kind": "spike", "window_ms": s.window_ms, "seasonality": s.seasonality.as_str(),
        }),
        Kind::ClearedDistinct(c) => json!({
            "kind": "distinct_cleared", "field": c.field.to_string(),
            "window_ms": c.window_ms, "threshold": c.threshold,
            "cleared_by": matcher(&c.cleared_by),
        }),
    };
    Shape {
        version: SHAPE_VERSION,
        kind,
        filter: matcher(&rule.filter),
        group_by: rule.group_by.iter().map(ToString::to_string).collect(),
    }
}

fn matcher(m: &Matcher) -> Value {
    match m {
        Matcher::All(parts) => json!({"all": parts.iter().map(matcher).collect::<Vec<_>>()}),
        Matcher::Any(parts) => json!({"any": parts.iter().map(matcher).collect::<Vec<_>>()}),
        Matcher::Not(inner) => json!({"not": matcher(inner)}),
        Matcher::Predicate(p) => json!({"predicate": p.shape()}),
        Matcher::Cond(field, op) => {
            let (name, value) = operator(op);
            json!({"field": field.to_string(), "op": name, "value": value})
        }
    }
}

fn operator(op: &Op) -> (&'static str, Value) {
    let list = |l: &[Literal]| Value::Array(l.iter().map(literal).collect());
    let nets = |n: &[ipnet::IpNet]| json!(n.iter().map(ToString::to_string).collect::<Vec<_>>());
    match op {
        Op::Eq(l) => ("eq", literal(l)),
        Op::In(l) => ("in", list(l)),
        Op::NotIn(l) => ("not_in", list(l)),
        Op::Cidr(n) => ("cidr", nets(n)),
        Op::NotCidr(n) => ("not_cidr", nets(n)),
        Op::Prefix(s) => ("prefix", json!(s)),
        Op::Suffix(s) => ("suffix", json!(s)),
        Op::Contains(s) => ("contains", json!(s)),
        Op::Regex(r) => ("regex", json!(r.as_str())),
        Op::Exists(b) => ("exists", json!(b)),
        Op::Gt(x) => ("gt", json!(x)),
        Op::Gte(x) => ("gte", json!(x)),
        Op::Lt(x) => ("lt", json!(x)),
        Op::Lte(x) => ("lte", json!(x)),
    }
}

/// A literal as JSON; an address is tagged so that it never equals the same text as a string.
fn literal(l: &Literal) -> Value {
    match l {
        Literal::Str(s) => json!(s),
        Literal::Num(x) => json!(x),
        Literal::Bool(b) => json!(b),
        Literal::Ip(ip) => json!({"ip": ip.to_string()}),
    }
}

/// The shape as versions before [`SHAPE_VERSION`] 1 stored it (a hash of `Debug` text,
/// unversioned). Read only to keep state written by the previous release: a stored value
/// without a version prefix that equals this is taken as the rule's current shape, and the
/// next checkpoint stores the versioned one. Should the `Debug` text have changed meanwhile,
/// the groups are dropped (and reported) as for any changed shape.
pub fn legacy_rule_shape(rule: &Rule) -> String {
    let kind = match &rule.kind {
        Kind::NewValue(n) => format!("NewValue({:?})", n.field),
        Kind::ImpossibleTravel(_) => "ImpossibleTravel".to_string(),
        other => format!("{other:?}"),
    };
    let text = format!("{kind}|{:?}|{:?}", rule.filter, rule.group_by);
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
}

/// Whether a stored shape predates the versioned encoding.
pub fn is_legacy(stored: &str) -> bool {
    !stored.starts_with('v')
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::rule::load_file_text;

    fn rule(yaml: &str) -> Rule {
        let (mut rules, diags) = load_file_text(Path::new("r.yml"), yaml);
        assert!(diags.is_empty(), "{diags:?}");
        rules.remove(0)
    }

    const SAMPLE: &str = r#"
id: sample
title: Sample
severity: high
kind: threshold
window: 5m
threshold: 10
group_by: [user, geo.country, attrs.app.name]
match:
  type: login.failure
  ip: {not_cidr: [10.0.0.0/8]}
  any:
    - reason: {in: [bad_password, 3]}
    - user: {regex: "^adm"}
"#;

    /// A golden value: the key depends on this encoding alone, so a changed `Debug` impl or
    /// a renamed Rust variant cannot change it (and drop every stored window). Changing the
    /// encoding on purpose means a new `SHAPE_VERSION` and a new value here.
    #[test]
    fn the_shape_of_a_sample_rule_is_a_stable_golden_value() {
        let r = rule(SAMPLE);
        let text = serde_json::to_string(&encode(&r)).unwrap();
        let golden = concat!(
            r#"{"version":1,"kind":{"kind":"threshold","threshold":10,"window_ms":300000},"#,
            r#""filter":{"all":[{"field":"type","op":"eq","value":"login.failure"},"#,
            r#"{"field":"ip","op":"not_cidr","value":["10.0.0.0/8"]},"#,
            r#"{"any":[{"all":[{"field":"reason","op":"in","value":["bad_password",3.0]}]},"#,
            r#"{"all":[{"field":"user","op":"regex","value":"^adm"}]}]}]},"#,
            r#""group_by":["user","geo.country","attrs.app.name"]}"#,
        );
        assert_eq!(text, golden);
        assert_eq!(rule_shape(&r), "v1:1bd44f76500920e2");
    }

    #[test]
    fn only_what_a_rule_counts_is_in_its_shape() {
        let base = rule(SAMPLE);
        let retitled = rule(
            &SAMPLE
                .replace("title: Sample", "title: Other")
                .replace("high", "low"),
        );
        assert_eq!(rule_shape(&base), rule_shape(&retitled));
        for (from, to) in [
            ("threshold: 10", "threshold: 11"),
            ("window: 5m", "window: 6m"),
            ("10.0.0.0/8", "10.0.0.0/9"),
            ("bad_password, 3", "bad_password, \"3\""),
            ("geo.country", "geo.city"),
        ] {
            let changed = rule(&SAMPLE.replace(from, to));
            assert_ne!(rule_shape(&base), rule_shape(&changed), "{from} -> {to}");
        }
    }

    #[test]
    fn legacy_shapes_are_told_apart_from_versioned_ones() {
        let r = rule(SAMPLE);
        assert!(is_legacy(&legacy_rule_shape(&r)));
        assert!(!is_legacy(&rule_shape(&r)));
    }
}
