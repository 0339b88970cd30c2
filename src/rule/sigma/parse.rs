//! Reading Sigma files: YAML documents (`---` separated) into positioned trees, and the
//! metadata every Sigma rule or correlation carries.

use crate::rule::Severity;
use crate::rule::yaml::{self, Node, Pos, SyntaxError, Value};

/// Whether a document is a Sigma rule (`title`, `logsource`, `detection`) or a correlation.
pub fn is_sigma(node: &Node) -> bool {
    node.get("correlation").is_some()
        || (node.get("detection").is_some() && node.get("logsource").is_some())
}

/// A cheap look at the text before parsing: native rule files never have these keys.
pub fn may_be_sigma(text: &str) -> bool {
    text.lines().any(|l| {
        l.starts_with("detection:") || l.starts_with("correlation:") || l.starts_with("logsource:")
    })
}

/// Parses each YAML document of a file; positions are those of the whole file.
pub fn documents(text: &str) -> Vec<Result<Node, SyntaxError>> {
    let mut out = Vec::new();
    let mut start_line = 0u64;
    let mut chunk = String::new();
    let flush = |chunk: &mut String, start_line: u64, out: &mut Vec<_>| {
        if !chunk.trim().is_empty() {
            out.push(
                yaml::parse(chunk)
                    .map(|mut n| {
                        shift(&mut n, start_line);
                        n
                    })
                    .map_err(|mut e| {
                        e.pos.line += start_line;
                        e
                    }),
            );
        }
        chunk.clear();
    };
    for (i, line) in text.lines().enumerate() {
        if line.trim_end() == "---" {
            flush(&mut chunk, start_line, &mut out);
            start_line = i as u64 + 1;
            continue;
        }
        chunk.push_str(line);
        chunk.push('\n');
    }
    flush(&mut chunk, start_line, &mut out);
    out
}

fn shift(node: &mut Node, lines: u64) {
    node.pos.line += lines;
    match &mut node.value {
        Value::Seq(items) => items.iter_mut().for_each(|n| shift(n, lines)),
        Value::Map(entries) => entries.iter_mut().for_each(|(k, v)| {
            shift(k, lines);
            shift(v, lines);
        }),
        _ => {}
    }
}

/// What a Sigma rule or correlation says about itself.
#[derive(Clone, Debug, Default)]
pub struct Meta {
    pub title: String,
    pub id: Option<String>,
    pub name: Option<String>,
    pub description: String,
    pub level: Option<Severity>,
    pub tags: Vec<String>,
    pub references: Vec<String>,
    pub falsepositives: Vec<String>,
    /// `authwatch: {runbook: ...}`, a custom attribute Sigma allows.
    pub runbook: Option<String>,
    pub enabled: bool,
}

impl Meta {
    /// The authwatch rule id: the Sigma `name` if any, else its `id`.
    pub fn rule_id(&self) -> Option<&str> {
        self.name.as_deref().or(self.id.as_deref())
    }
}

/// Reads the metadata; problems are (position, message) errors.
pub fn meta(node: &Node, errors: &mut Vec<(Pos, String)>) -> Meta {
    let text = |key: &str, errors: &mut Vec<(Pos, String)>| -> Option<String> {
        let n = node.get(key)?;
        match &n.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(_) | Value::Float(_) => Some(n.scalar_text()),
            other => {
                errors.push((
                    n.pos,
                    format!("`{key}` must be a string, found {}", other.kind_name()),
                ));
                None
            }
        }
    };
    let list = |key: &str, errors: &mut Vec<(Pos, String)>| -> Vec<String> {
        match node.get(key) {
            None => Vec::new(),
            Some(n) => match &n.value {
                Value::Seq(items) => items.iter().map(Node::scalar_text).collect(),
                Value::Str(s) => vec![s.clone()],
                other => {
                    errors.push((
                        n.pos,
                        format!("`{key}` must be a list, found {}", other.kind_name()),
                    ));
                    Vec::new()
                }
            },
        }
    };
    let title = text("title", errors).unwrap_or_default();
    if title.is_empty() {
        errors.push((node.pos, "a Sigma rule needs a `title`".into()));
    }
    let level = node.get("level").and_then(|n| {
        let word = n.scalar_text();
        let severity = match word.as_str() {
            "informational" => Some(Severity::Info),
            other => Severity::parse(other),
        };
        if severity.is_none() {
            errors.push((
                n.pos,
                format!("unknown level `{word}`: use informational, low, medium, high or critical"),
            ));
        }
        severity
    });
    let authwatch = node.get("authwatch");
    let runbook = authwatch
        .and_then(|a| a.get("runbook"))
        .map(Node::scalar_text);
    let enabled = authwatch
        .and_then(|a| a.get("enabled"))
        .is_none_or(|n| n.value != Value::Bool(false));
    let meta = Meta {
        id: text("id", errors),
        name: text("name", errors),
        description: text("description", errors).unwrap_or_default(),
        level,
        tags: list("tags", errors),
        references: list("references", errors),
        falsepositives: list("falsepositives", errors),
        runbook,
        enabled,
        title,
    };
    if meta.rule_id().is_none() {
        errors.push((node.pos, "a Sigma rule needs a `name` or an `id`".into()));
    }
    meta
}

/// The runbook of the default pack that fits a rule's ATT&CK tags, most specific first.
pub fn runbook_for_tags(tags: &[String]) -> Option<&'static str> {
    const BY_TAG: [(&str, &str); 9] = [
        ("attack.t1110.003", "password-spray"),
        ("attack.t1110.004", "credential-stuffing"),
        ("attack.t1110", "brute-force"),
        ("attack.t1621", "mfa-fatigue"),
        ("attack.t1556", "protection-disabled"),
        ("attack.t1562", "protection-disabled"),
        ("attack.t1550", "refresh-token-reuse"),
        ("attack.t1098", "identity-provider-actions"),
        ("attack.t1078", "account-takeover"),
    ];
    BY_TAG.iter().find_map(|(prefix, runbook)| {
        tags.iter()
            .any(|t| t.to_ascii_lowercase().starts_with(prefix))
            .then_some(*runbook)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_keep_file_positions() {
        let docs = documents("title: a\n---\ntitle: b\nlevel: high\n");
        assert_eq!(docs.len(), 2);
        let b = docs[1].as_ref().unwrap();
        assert_eq!(b.get("level").unwrap().pos, Pos { line: 4, col: 8 });
    }

    #[test]
    fn tags_pick_the_most_specific_runbook() {
        let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            runbook_for_tags(&tags(&["attack.credential_access", "attack.t1110.003"])),
            Some("password-spray")
        );
        assert_eq!(
            runbook_for_tags(&tags(&["attack.t1110.001"])),
            Some("brute-force")
        );
        assert_eq!(runbook_for_tags(&tags(&["attack.t9999"])), None);
    }
}
