//! Match conditions: compiled from a rule's `match:` map, evaluated against events.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use regex::Regex;

use super::diag::{Diagnostics, did_you_mean};
use super::yaml::{Node, Value};
use crate::event::{Event, EventType, Field, FieldValue};

/// A compiled `match:` map.
#[derive(Clone, Debug)]
pub enum Matcher {
    /// Every part must hold (the keys of one map).
    All(Vec<Matcher>),
    /// One part must hold (`any:`).
    Any(Vec<Matcher>),
    /// The part must not hold (`not:`).
    Not(Box<Matcher>),
    Cond(Field, Op),
    /// A test compiled elsewhere, run as is.
    Predicate(Arc<dyn Predicate>),
}

/// A test compiled outside this module: a Sigma detection that reads the canonical event is
/// run where its rule is, as a native `match` would be, so the event needs no mark.
pub trait Predicate: std::fmt::Debug + Send + Sync {
    fn holds(&self, e: &Event) -> bool;
    /// The event types it can hold for, when it pins them (rules are indexed by type).
    fn possible_types(&self) -> Option<Vec<EventType>>;
    /// What names the test in a rule's shape: a changed test is a changed rule.
    fn shape(&self) -> String;
}

/// One operator applied to one field.
#[derive(Clone, Debug)]
pub enum Op {
    Eq(Literal),
    In(Vec<Literal>),
    NotIn(Vec<Literal>),
    Cidr(Vec<IpNet>),
    NotCidr(Vec<IpNet>),
    Prefix(String),
    Suffix(String),
    Contains(String),
    Regex(Regex),
    Exists(bool),
    Gt(f64),
    Gte(f64),
    Lt(f64),
    Lte(f64),
}

/// A value written in a rule.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Str(String),
    Num(f64),
    Bool(bool),
    Ip(IpAddr),
}

/// The operator names, for messages.
const OPERATORS: [&str; 14] = [
    "eq", "in", "not_in", "cidr", "not_cidr", "prefix", "suffix", "contains", "regex", "exists",
    "gt", "gte", "lt", "lte",
];

impl Matcher {
    /// A matcher that holds for every event (a rule without `match:`).
    pub fn always() -> Matcher {
        Matcher::All(Vec::new())
    }

    pub fn matches(&self, e: &Event) -> bool {
        match self {
            Matcher::All(parts) => parts.iter().all(|m| m.matches(e)),
            Matcher::Any(parts) => parts.iter().any(|m| m.matches(e)),
            Matcher::Not(inner) => !inner.matches(e),
            Matcher::Cond(field, op) => op.holds(field.get(e)),
            Matcher::Predicate(p) => p.holds(e),
        }
    }

    /// The event types this matcher can accept, when its top level pins `type` down.
    /// Used to index rules by type so that an event is only offered to rules that can want it.
    pub fn possible_types(&self) -> Option<Vec<EventType>> {
        let parts = match self {
            Matcher::All(parts) => parts,
            Matcher::Predicate(p) => return p.possible_types(),
            _ => return None,
        };
        parts.iter().find_map(|part| match part {
            Matcher::Cond(Field::Type, Op::Eq(Literal::Str(t))) => {
                EventType::parse(t).map(|t| vec![t])
            }
            Matcher::Cond(Field::Type, Op::In(list)) => Some(
                list.iter()
                    .filter_map(|l| match l {
                        Literal::Str(t) => EventType::parse(t),
                        _ => None,
                    })
                    .collect(),
            ),
            _ => None,
        })
    }

    /// The single event type this matcher is pinned to, for summaries.
    pub fn single_type(&self) -> Option<EventType> {
        match self.possible_types()?.as_slice() {
            [t] => Some(*t),
            _ => None,
        }
    }
}

impl Op {
    fn holds(&self, value: Option<FieldValue<'_>>) -> bool {
        match (self, value) {
            (Op::Exists(want), v) => v.is_some() == *want,
            // A missing value is "not in" any list and "not in" any network.
            (Op::NotIn(_) | Op::NotCidr(_), None) => true,
            (_, None) => false,
            (Op::Eq(lit), Some(v)) => lit.equals(&v),
            (Op::In(lits), Some(v)) => lits.iter().any(|l| l.equals(&v)),
            (Op::NotIn(lits), Some(v)) => !lits.iter().any(|l| l.equals(&v)),
            (Op::Cidr(nets), Some(v)) => {
                ip_of(&v).is_some_and(|ip| nets.iter().any(|n| n.contains(&ip)))
            }
            (Op::NotCidr(nets), Some(v)) => {
                !ip_of(&v).is_some_and(|ip| nets.iter().any(|n| n.contains(&ip)))
            }
            (Op::Prefix(p), Some(v)) => with_text(&v, |s| s.starts_with(p.as_str())),
            (Op::Suffix(p), Some(v)) => with_text(&v, |s| s.ends_with(p.as_str())),
            (Op::Contains(p), Some(v)) => with_text(&v, |s| s.contains(p.as_str())),
            (Op::Regex(re), Some(v)) => with_text(&v, |s| re.is_match(s)),
            (Op::Gt(n), Some(v)) => v.as_f64().is_some_and(|x| x > *n),
            (Op::Gte(n), Some(v)) => v.as_f64().is_some_and(|x| x >= *n),
            (Op::Lt(n), Some(v)) => v.as_f64().is_some_and(|x| x < *n),
            (Op::Lte(n), Some(v)) => v.as_f64().is_some_and(|x| x <= *n),
        }
    }
}

impl Literal {
    fn equals(&self, v: &FieldValue<'_>) -> bool {
        match (self, v) {
            (Literal::Str(a), FieldValue::Str(b)) => a == b,
            (Literal::Num(a), v) => v.as_f64() == Some(*a),
            (Literal::Bool(a), FieldValue::Bool(b)) => a == b,
            (Literal::Ip(a), FieldValue::Ip(b)) => a == b,
            // Mixed kinds (a string "false" in attrs against `false`) compare as text.
            (lit, v) => with_text(v, |s| s == lit.text()),
        }
    }

    fn text(&self) -> String {
        match self {
            Literal::Str(s) => s.clone(),
            Literal::Num(n) => n.to_string(),
            Literal::Bool(b) => b.to_string(),
            Literal::Ip(ip) => ip.to_string(),
        }
    }
}

fn ip_of(v: &FieldValue<'_>) -> Option<IpAddr> {
    match v {
        FieldValue::Ip(ip) => Some(*ip),
        FieldValue::Str(s) => s.parse().ok(),
        _ => None,
    }
}

/// Runs `f` on the value's text without allocating for strings.
fn with_text(v: &FieldValue<'_>, f: impl FnOnce(&str) -> bool) -> bool {
    match v {
        FieldValue::Str(s) => f(s),
        other => f(&other.to_text()),
    }
}

/// Compiles a `match:` map; every problem is reported to `diags`.
pub fn compile_match(node: &Node, diags: &mut Diagnostics<'_>) -> Matcher {
    let Some(entries) = node.as_map() else {
        diags.error(
            node.pos,
            format!(
                "`match` must be a map of field: condition, found {}",
                node.value.kind_name()
            ),
        );
        return Matcher::always();
    };
    let mut parts = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        let Some(name) = key.as_str() else {
            diags.error(key.pos, "a match key must be a field name");
            continue;
        };
        match name {
            "any" => {
                let Some(items) = value.as_seq() else {
                    diags.error(value.pos, "`any` takes a list of match maps");
                    continue;
                };
                if items.is_empty() {
                    diags.error(value.pos, "`any` needs at least one match map");
                }
                parts.push(Matcher::Any(
                    items.iter().map(|m| compile_match(m, diags)).collect(),
                ));
            }
            "not" => parts.push(Matcher::Not(Box::new(compile_match(value, diags)))),
            path => {
                let Some(field) = Field::parse(path) else {
                    let hint =
                        did_you_mean(path, Field::NAMES.iter().copied().chain(["any", "not"]));
                    diags.error(
                        key.pos,
                        format!("unknown field `{path}`{hint}; fields are the event's (SPEC §1), `geo.*` and `attrs.*`"),
                    );
                    continue;
                };
                compile_conditions(&field, value, diags, &mut parts);
            }
        }
    }
    Matcher::All(parts)
}

/// `field: scalar`, `field: [list]` or `field: {op: value, ...}`.
fn compile_conditions(
    field: &Field,
    value: &Node,
    diags: &mut Diagnostics<'_>,
    out: &mut Vec<Matcher>,
) {
    match &value.value {
        Value::Seq(items) => {
            let lits = items
                .iter()
                .filter_map(|i| literal(field, i, diags))
                .collect();
            out.push(Matcher::Cond(field.clone(), Op::In(lits)));
        }
        Value::Map(ops) => {
            if ops.is_empty() {
                diags.error(
                    value.pos,
                    format!(
                        "no operator given for `{field}`; use one of {}",
                        OPERATORS.join(", ")
                    ),
                );
            }
            for (op_key, arg) in ops {
                let name = op_key.scalar_text();
                if let Some(op) = compile_op(field, &name, op_key, arg, diags) {
                    out.push(Matcher::Cond(field.clone(), op));
                }
            }
        }
        _ => {
            if let Some(lit) = literal(field, value, diags) {
                out.push(Matcher::Cond(field.clone(), Op::Eq(lit)));
            }
        }
    }
}

fn compile_op(
    field: &Field,
    name: &str,
    key: &Node,
    arg: &Node,
    diags: &mut Diagnostics<'_>,
) -> Option<Op> {
    let list = |diags: &mut Diagnostics<'_>| -> Vec<Literal> {
        match &arg.value {
            Value::Seq(items) => items
                .iter()
                .filter_map(|i| literal(field, i, diags))
                .collect(),
            _ => literal(field, arg, diags).into_iter().collect(),
        }
    };
    let text = |diags: &mut Diagnostics<'_>| -> Option<String> {
        match &arg.value {
            Value::Str(s) if *field == Field::Username => Some(s.to_lowercase()),
            Value::Str(s) => Some(s.clone()),
            Value::Int(_) | Value::Float(_) | Value::Bool(_) => Some(arg.scalar_text()),
            other => {
                diags.error(
                    arg.pos,
                    format!("`{name}` takes a string, found {}", other.kind_name()),
                );
                None
            }
        }
    };
    let number = |diags: &mut Diagnostics<'_>| -> Option<f64> {
        match &arg.value {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            other => {
                diags.error(
                    arg.pos,
                    format!("`{name}` takes a number, found {}", other.kind_name()),
                );
                None
            }
        }
    };
    Some(match name {
        "eq" => Op::Eq(literal(field, arg, diags)?),
        "in" => Op::In(list(diags)),
        "not_in" => Op::NotIn(list(diags)),
        "cidr" => Op::Cidr(networks(arg, diags)),
        "not_cidr" => Op::NotCidr(networks(arg, diags)),
        "prefix" => Op::Prefix(text(diags)?),
        "suffix" => Op::Suffix(text(diags)?),
        "contains" => Op::Contains(text(diags)?),
        "regex" => {
            let pattern = text(diags)?;
            match Regex::new(&pattern) {
                Ok(re) => Op::Regex(re),
                Err(err) => {
                    let first = err
                        .to_string()
                        .lines()
                        .last()
                        .unwrap_or("")
                        .trim()
                        .to_string();
                    diags.error(arg.pos, format!("invalid regex for `{field}`: {first}"));
                    return None;
                }
            }
        }
        "exists" => match arg.value {
            Value::Bool(b) => Op::Exists(b),
            ref other => {
                diags.error(
                    arg.pos,
                    format!("`exists` takes true or false, found {}", other.kind_name()),
                );
                return None;
            }
        },
        "gt" => Op::Gt(number(diags)?),
        "gte" => Op::Gte(number(diags)?),
        "lt" => Op::Lt(number(diags)?),
        "lte" => Op::Lte(number(diags)?),
        other => {
            let hint = did_you_mean(other, OPERATORS);
            diags.error(
                key.pos,
                format!(
                    "unknown operator `{other}` for `{field}`{hint}; operators are {}",
                    OPERATORS.join(", ")
                ),
            );
            return None;
        }
    })
}

/// A scalar written for `field`, checked against what the field can hold.
fn literal(field: &Field, node: &Node, diags: &mut Diagnostics<'_>) -> Option<Literal> {
    let lit = match &node.value {
        Value::Str(s) => Literal::Str(s.clone()),
        Value::Int(i) => Literal::Num(*i as f64),
        Value::Float(f) => Literal::Num(*f),
        Value::Bool(b) => Literal::Bool(*b),
        other => {
            diags.error(
                node.pos,
                format!(
                    "expected a value for `{field}`, found {}",
                    other.kind_name()
                ),
            );
            return None;
        }
    };
    match (field, lit) {
        (Field::Type, Literal::Str(t)) => {
            if EventType::parse(&t).is_none() {
                let hint = did_you_mean(&t, EventType::ALL.iter().map(|t| t.as_str()));
                diags.error(node.pos, format!("unknown event type `{t}`{hint}"));
                return None;
            }
            Some(Literal::Str(t))
        }
        (Field::Ip, Literal::Str(s)) => match s.parse::<IpAddr>() {
            Ok(ip) => Some(Literal::Ip(ip)),
            Err(_) => {
                diags.error(
                    node.pos,
                    format!("`{s}` is not an IP address (use `cidr` for networks)"),
                );
                None
            }
        },
        (Field::Username, Literal::Str(s)) => Some(Literal::Str(s.to_lowercase())),
        (_, lit) => Some(lit),
    }
}

fn networks(arg: &Node, diags: &mut Diagnostics<'_>) -> Vec<IpNet> {
    let items: Vec<&Node> = match &arg.value {
        Value::Seq(items) => items.iter().collect(),
        _ => vec![arg],
    };
    items
        .into_iter()
        .filter_map(|n| {
            let text = n.scalar_text();
            let parsed = text
                .parse::<IpNet>()
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from));
            match parsed {
                Ok(net) => Some(net),
                Err(_) => {
                    diags.error(
                        n.pos,
                        format!("`{text}` is not a network like 10.0.0.0/8 or 2001:db8::/32"),
                    );
                    None
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::decode_line;
    use crate::rule::yaml::parse;
    use std::path::Path;

    fn compile(yaml: &str) -> (Matcher, Vec<String>) {
        let node = parse(yaml).unwrap();
        let mut diags = Diagnostics::new(Path::new("t.yaml"));
        let m = compile_match(&node, &mut diags);
        (m, diags.items.iter().map(|d| d.to_string()).collect())
    }

    fn event(json: &str) -> Event {
        decode_line(json.as_bytes()).unwrap()
    }

    #[test]
    fn every_operator_works_on_a_real_event() {
        let e = event(
            r#"{"ts":1,"type":"login.failure","username":"Bob@Example.com","ip":"10.1.2.3","reason":"bad_password","attrs":{"n":5,"enabled":false}}"#,
        );
        let cases = [
            ("type: login.failure", true),
            ("type: [login.success, login.failure]", true),
            ("reason: {not_in: [locked]}", true),
            ("reason: {in: [locked]}", false),
            ("ip: {cidr: [10.0.0.0/8]}", true),
            ("ip: {not_cidr: [10.0.0.0/8]}", false),
            ("ip: 10.1.2.3", true),
            ("username: BOB@example.com", true),
            ("username: {prefix: BOB}", true),
            ("username: {suffix: '@example.com'}", true),
            ("username: {contains: nope}", false),
            ("username: {regex: '^bob@'}", true),
            ("device: {exists: false}", true),
            ("device: {exists: true}", false),
            ("attrs.n: {gt: 4, lte: 5}", true),
            ("attrs.n: {gte: 6}", false),
            ("attrs.n: {lt: 6}", true),
            ("attrs.enabled: false", true),
            ("attrs.enabled: {eq: true}", false),
            ("any: [{reason: locked}, {reason: bad_password}]", true),
            ("not: {reason: bad_password}", false),
            ("device: {not_in: [x]}", true),
        ];
        for (yaml, want) in cases {
            let (m, errors) = compile(yaml);
            assert!(errors.is_empty(), "{yaml}: {errors:?}");
            assert_eq!(m.matches(&e), want, "{yaml}");
        }
    }

    #[test]
    fn every_mistake_is_reported_with_its_position() {
        let (_, errors) = compile(
            "type: login.failed\nusernme: x\nip: {cidr: [10.0.0.0/33]}\nreason: {regx: x}\nattrs.n: {gt: many}\n",
        );
        assert_eq!(errors.len(), 5, "{errors:#?}");
        assert!(errors[0].starts_with(
            "t.yaml:1:7: unknown event type `login.failed` (did you mean `login.failure`?)"
        ));
        assert!(
            errors[1].starts_with("t.yaml:2:1: unknown field `usernme` (did you mean `username`?)")
        );
        assert!(errors[2].starts_with("t.yaml:3:13:"));
        assert!(errors[3].contains("unknown operator `regx`"));
        assert!(errors[4].contains("takes a number"));
    }

    #[test]
    fn types_are_indexed_only_when_pinned_at_top_level() {
        let (m, _) = compile("type: [login.failure, logout]\nreason: x");
        assert_eq!(
            m.possible_types(),
            Some(vec![EventType::LoginFailure, EventType::Logout])
        );
        let (m, _) = compile("any: [{type: logout}]");
        assert_eq!(m.possible_types(), None);
    }
}
