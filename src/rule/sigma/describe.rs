//! authwatch's reading of a Sigma file as a neutral JSON tree: per rule, each selection's
//! fields, modifiers and values as written and the condition tree; per correlation, its type,
//! rules, grouping, window and condition. CI compares it with pySigma's reading of the same
//! file (`.ci/sigma_describe.py`), so both parsers are seen to agree on what every rule selects.

use serde_json::{Value as J, json};

use super::condition::Cond;
use super::detection::{self, Detection, Selection};
use super::logsource::format_of;
use super::parse;
use super::value::{FieldTest, canonical};
use crate::rule::compile::duration_ms;
use crate::rule::diag::Diagnostics;
use crate::rule::yaml::Node;

/// One entry per document, in file order; a document that does not compile is described by
/// its error messages (`{"title", "errors": [...]}`).
pub fn describe(text: &str) -> Vec<J> {
    parse::documents(text)
        .into_iter()
        .filter_map(|doc| match doc {
            Err(e) => Some(json!({"errors": [e.message]})),
            // Only comments: no document.
            Ok(node) if node.value == crate::rule::yaml::Value::Null => None,
            Ok(node) => Some(describe_doc(&node)),
        })
        .collect()
}

fn describe_doc(node: &Node) -> J {
    let title = node.get("title").map(Node::scalar_text);
    if let Some(corr) = node.get("correlation") {
        return correlation(title, corr, node);
    }
    let Some(detection_node) = node.get("detection") else {
        return json!({"title": title, "errors": ["no detection"]});
    };
    let logsource = node.get("logsource");
    let field = |k: &str| logsource.and_then(|l| l.get(k)).map(Node::scalar_text);
    let format = format_of(field("product").as_deref(), field("service").as_deref());
    match detection::compile(detection_node, format) {
        Ok(d) => json!({
            "title": title,
            "detections": selections(&d),
            "conditions": d.conditions.iter().map(|c| condition(c, &d)).collect::<Vec<_>>(),
        }),
        Err(problems) => json!({
            "title": title,
            "errors": problems.into_iter().map(|p| p.message).collect::<Vec<_>>(),
        }),
    }
}

fn selections(d: &Detection) -> serde_json::Map<String, J> {
    d.names
        .iter()
        .zip(&d.selections)
        .map(|(name, s)| (name.clone(), selection(s)))
        .collect()
}

fn selection(s: &Selection) -> J {
    match s {
        Selection::All(fields) => {
            json!({"and": fields.iter().map(|f| item(f, false)).collect::<Vec<_>>()})
        }
        Selection::Any(items) => json!({"or": items.iter().map(selection).collect::<Vec<_>>()}),
        Selection::Keyword(test) => item(test, true),
    }
}

fn item(f: &FieldTest, keyword: bool) -> J {
    // Values of these modifiers are not Sigma strings: no wildcards to write canonically.
    let literal = f
        .modifiers
        .iter()
        .any(|m| ["re", "cidr", "fieldref", "exists"].contains(&m.as_str()));
    let values: Vec<Option<String>> = f
        .written
        .iter()
        .map(|v| {
            v.as_deref()
                .map(|s| if literal { s.to_string() } else { canonical(s) })
        })
        .collect();
    let modifiers: Vec<&str> = f
        .modifiers
        .iter()
        .map(|m| match m.as_str() {
            "ignorecase" => "i",
            "multiline" => "m",
            "dotall" => "s",
            other => other,
        })
        .collect();
    json!({
        "field": if keyword { J::Null } else { J::from(f.field.clone()) },
        "modifiers": if keyword { Vec::new() } else { modifiers },
        "values": values,
        "linking": if f.all { "and" } else { "or" },
    })
}

fn condition(c: &Cond, d: &Detection) -> J {
    match c {
        Cond::Sel(i) => J::from(d.names[*i].clone()),
        Cond::And(parts) => {
            json!({"and": parts.iter().map(|p| condition(p, d)).collect::<Vec<_>>()})
        }
        Cond::Or(parts) => json!({"or": parts.iter().map(|p| condition(p, d)).collect::<Vec<_>>()}),
        Cond::Not(inner) => json!({"not": condition(inner, d)}),
    }
}

fn correlation(title: Option<String>, corr: &Node, node: &Node) -> J {
    let list = |key: &str| -> Vec<String> {
        corr.get(key)
            .and_then(Node::as_seq)
            .map(|items| items.iter().map(Node::scalar_text).collect())
            .unwrap_or_default()
    };
    let mut diags = Diagnostics::new(std::path::Path::new(""));
    let timespan_ms = corr
        .get("timespan")
        .and_then(|t| duration_ms(t, &mut diags, false));
    let condition: serde_json::Map<String, J> = corr
        .get("condition")
        .and_then(Node::as_map)
        .map(|entries| {
            entries
                .iter()
                .map(|(k, v)| (k.scalar_text(), J::from(v.scalar_text())))
                .collect()
        })
        .unwrap_or_default();
    // Absent (temporal types), every rule must have matched: `gte` their number, as the
    // specification and pySigma have it.
    let condition = if condition.is_empty() {
        let count = list("rules").len().max(1).to_string();
        serde_json::Map::from_iter([("gte".to_string(), J::from(count))])
    } else {
        condition
    };
    let aliases: serde_json::Map<String, J> = corr
        .get("aliases")
        .and_then(Node::as_map)
        .map(|entries| {
            entries
                .iter()
                .map(|(k, v)| (k.scalar_text(), v.to_json()))
                .collect()
        })
        .unwrap_or_default();
    let generate = [corr.get("generate"), node.get("generate")]
        .into_iter()
        .flatten()
        .any(|g| g.value == crate::rule::yaml::Value::Bool(true));
    json!({
        "title": title,
        "correlation": {
            "type": corr.get("type").map(Node::scalar_text),
            "rules": list("rules"),
            "group-by": list("group-by"),
            "timespan_ms": timespan_ms,
            "condition": condition,
            "aliases": aliases,
            "generate": generate,
        }
    })
}
