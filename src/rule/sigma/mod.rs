//! Sigma rules (specification v2) as authwatch rules, compiled down to the engine's kinds.
//!
//! A Sigma rule's detection is evaluated once per event when it arrives at the engine
//! ([`Stage::mark`]), against the provider's own record (or the canonical event for
//! `product: authwatch`); the rules it matched are written into the event's
//! `attrs.sigma.rules` (name -> detection hash), and the raw record is dropped. The rule itself
//! is an ordinary `match` rule whose filter reads that mark; a correlation is a `threshold`
//! (event_count), `distinct` (value_count, temporal) or `sequence` (temporal_ordered) rule
//! over the marks, its group-by values copied into `attrs.sigma.<correlation>` at arrival.
//! So windows, suppression, state and reload are the engine's, unchanged.
//!
//! `parse` reads documents and metadata, `value` modifiers, `condition` the condition
//! language, `detection` selections, `logsource` formats and fields, `correlation` the
//! correlation types, `stage` the per-event marking.

mod condition;
mod correlation;
mod describe;
mod detection;
mod logsource;
mod parse;
mod stage;
mod value;

use std::path::Path;
use std::sync::Arc;

use super::diag::Diagnostic;
use super::matcher::{Literal, Matcher, Op, Predicate};
use super::yaml::{Node, Pos};
use super::{Kind, Origin, Rule, Severity};
use crate::event::{Event, EventType, Field};
use crate::normalize::Format;

pub use describe::describe;
pub use detection::Detection;
pub use logsource::format_of;
pub use stage::Stage;

/// The `attrs` key the marks live under.
pub const ATTRS_KEY: &str = "sigma";
/// Severity of a Sigma rule without `level`.
const DEFAULT_LEVEL: Severity = Severity::Medium;

/// One Sigma detection, compiled for its format.
#[derive(Debug)]
pub struct Compiled {
    /// The rule id it marks events with (the Sigma `name`, else `id`).
    pub key: String,
    /// A hash of the detection and logsource: a changed detection is a changed rule.
    pub hash: String,
    /// `None`: no format authwatch reads; the rule is idle.
    pub format: Option<Format>,
    pub detection: Detection,
    /// For the canonical event: the event types the detection pins, if it pins `type` (read
    /// per alert for its summary, so worked out once).
    types: Option<Vec<EventType>>,
}

/// What a rule compiled from Sigma carries beyond the native fields.
#[derive(Clone, Debug, Default)]
pub struct SigmaPart {
    pub sigma_id: Option<String>,
    pub name: Option<String>,
    pub references: Vec<String>,
    pub falsepositives: Vec<String>,
    /// The detections whose marks this rule reads (its own, or a correlation's rules').
    pub detections: Vec<Arc<Compiled>>,
    /// A correlation: the values to copy into `attrs.sigma.<id>` for it.
    pub extract: Option<Arc<correlation::Extract>>,
    /// A correlation not yet resolved against the rules it names (see [`resolve`]).
    pending: Option<Arc<Node>>,
    /// Whether the runbook was left to the tags (set by [`resolve`] when one exists).
    runbook_from_tags: bool,
    /// A correlation that counts another correlation's firings (chained copies of events).
    pub chained: bool,
    /// A correlation that only feeds others (`generate: false`): its alerts are not sent.
    pub silent: bool,
    /// A plain rule reading the canonical event that no correlation counts: its detection is
    /// its filter ([`Predicate`]), run where the rule is, so events carry no mark for it.
    pub direct: bool,
}

impl SigmaPart {
    /// Whether nothing can feed the rule: no format of `formats` (`None`: no format authwatch
    /// reads at all) reaches its detections, nor, for a correlation of correlations, those of
    /// the rules it counts (found in `rules`; cycles were refused at load).
    pub fn starved(&self, formats: Option<&[Format]>, rules: &[Rule]) -> bool {
        let own = self.detections.iter().all(|d| match (d.format, formats) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(f), Some(list)) => f != Format::Native && !list.contains(&f),
        });
        let counted = match &self.extract {
            Some(x) if self.chained => x.rules.as_slice(),
            _ => &[],
        };
        own && counted.iter().all(|id| {
            rules
                .iter()
                .find(|r| &r.id == id)
                .and_then(|r| r.sigma.as_ref())
                .is_none_or(|s| s.starved(formats, rules))
        })
    }

    /// The name an alert's `group` shows for a group-by field.
    pub fn group_name<'a>(&self, field: &'a str) -> &'a str {
        match &self.extract {
            Some(x) => field
                .strip_prefix("attrs.sigma.")
                .and_then(|rest| rest.strip_prefix(x.id.as_str()))
                .and_then(|rest| rest.strip_prefix('.'))
                .unwrap_or(field),
            None => field,
        }
    }
}

/// The result of reading one file that holds Sigma documents.
pub struct SigmaFile {
    pub rules: Vec<Rule>,
    pub errors: Vec<(Pos, Option<String>, String)>,
    pub warnings: Vec<(Pos, Option<String>, String)>,
}

/// Reads a file's Sigma documents; `None` when the file is not Sigma (a native rule file).
pub fn load_text(file: &Path, text: &str) -> Option<SigmaFile> {
    if !parse::may_be_sigma(text) {
        return None;
    }
    let docs = parse::documents(text);
    let sigma = docs.iter().any(|d| d.as_ref().is_ok_and(parse::is_sigma));
    if !sigma {
        return None;
    }
    let mut out = SigmaFile {
        rules: Vec::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    for doc in docs {
        let node = match doc {
            Ok(node) => node,
            Err(e) => {
                out.errors
                    .push((e.pos, None, format!("invalid YAML: {}", e.message)));
                continue;
            }
        };
        if node.value == super::yaml::Value::Null {
            // Only comments (a file's header before its first `---`).
            continue;
        }
        if node.get("action").is_some() {
            out.warnings.push((
                node.pos,
                None,
                "Sigma v1 rule collections (`action: global`) are not supported: the document is skipped".into(),
            ));
            continue;
        }
        let origin = Origin {
            file: file.to_path_buf(),
            pos: node.pos,
        };
        if node.get("correlation").is_some() {
            correlation::read(node, origin, &mut out);
        } else if parse::is_sigma(&node) {
            base_rule(&node, origin, &mut out);
        } else {
            out.errors.push((
                node.pos,
                None,
                "a document in a Sigma file must be a Sigma rule (`title`, `logsource`, `detection`) or a correlation".into(),
            ));
        }
    }
    Some(out)
}

/// The engine's matcher for "the event was marked by this detection".
pub fn marked(key: &str, hash: &str) -> Matcher {
    Matcher::Cond(
        Field::Attr(vec![ATTRS_KEY.into(), "rules".into(), key.into()]),
        Op::Eq(Literal::Str(hash.into())),
    )
}

/// A detection of the canonical event as a rule's own filter (see [`SigmaPart::direct`]).
impl Predicate for Compiled {
    fn holds(&self, e: &Event) -> bool {
        self.detection.matches(&logsource::View::Canonical(e))
    }

    fn possible_types(&self) -> Option<Vec<EventType>> {
        self.types.clone()
    }

    fn shape(&self) -> String {
        format!("sigma:{}:{}", self.key, self.hash)
    }
}

fn base_rule(node: &Node, origin: Origin, out: &mut SigmaFile) {
    let mut errors = Vec::new();
    let meta = parse::meta(node, &mut errors);
    let id = meta.rule_id().map(str::to_string);
    let logsource = node.get("logsource");
    let field = |k: &str| logsource.and_then(|l| l.get(k)).map(Node::scalar_text);
    let format = format_of(field("product").as_deref(), field("service").as_deref());
    let detection_node = node.get("detection").expect("is_sigma checked");
    let detection = match detection::compile(detection_node, format) {
        Ok(d) => Some(d),
        Err(problems) => {
            let unsupported = problems.iter().any(|p| p.unsupported);
            for p in problems {
                if p.unsupported {
                    out.warnings.push((
                        p.pos,
                        id.clone(),
                        format!("{}; the rule is skipped", p.message),
                    ));
                } else {
                    errors.push((p.pos, p.message));
                }
            }
            if unsupported && errors.is_empty() {
                return;
            }
            None
        }
    };
    for (pos, message) in &errors {
        out.errors.push((*pos, id.clone(), message.clone()));
    }
    let (Some(detection), Some(key), true) = (detection, id, errors.is_empty()) else {
        return;
    };
    let hash = format!(
        "{:016x}",
        xxhash_rust::xxh3::xxh3_64(
            format!(
                "{}{}",
                detection_node.to_json(),
                logsource.map(Node::to_json).unwrap_or_default()
            )
            .as_bytes()
        )
    );
    let types = match detection.pinned() {
        // A value that is no event type can match no event.
        Some((field, values)) if format == Some(Format::Native) && field == "type" => {
            Some(values.iter().filter_map(|v| EventType::parse(v)).collect())
        }
        _ => None,
    };
    let compiled = Arc::new(Compiled {
        key: key.clone(),
        hash: hash.clone(),
        format,
        detection,
        types,
    });
    out.rules.push(Rule {
        id: key.clone(),
        title: meta.title.clone(),
        description: meta.description.clone(),
        severity: meta.level.unwrap_or(DEFAULT_LEVEL),
        tags: meta.tags.clone(),
        runbook: meta.runbook.clone(),
        enabled: meta.enabled,
        filter: marked(&key, &hash),
        group_by: Vec::new(),
        kind: Kind::Match,
        suppress_ms: 0,
        tests: Vec::new(),
        origin,
        sigma: Some(Arc::new(SigmaPart {
            sigma_id: meta.id.clone(),
            name: meta.name.clone(),
            references: meta.references.clone(),
            falsepositives: meta.falsepositives.clone(),
            detections: vec![compiled],
            extract: None,
            pending: None,
            runbook_from_tags: meta.runbook.is_none(),
            chained: false,
            silent: false,
            direct: false,
        })),
    });
}

/// After every file is read: correlations are compiled against the rules they name, base
/// rules that only feed correlations are switched off (`generate: false`), and runbooks are
/// taken from the tags where the rules directory has one. Returns (errors, warnings).
pub fn resolve(runbook_dir: &Path, rules: &mut Vec<Rule>) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let pending: Vec<usize> = (0..rules.len())
        .filter(|i| {
            rules[*i]
                .sigma
                .as_ref()
                .is_some_and(|s| s.pending.is_some())
        })
        .collect();
    let cyclic = cycles(rules, &pending);
    let mut generated: Vec<String> = Vec::new();
    let mut referenced: Vec<String> = Vec::new();
    let mut compiled: Vec<(usize, Option<Rule>)> = Vec::new();
    for &i in &pending {
        let rule = &rules[i];
        let node = rule
            .sigma
            .as_ref()
            .and_then(|s| s.pending.clone())
            .expect("pending");
        let result = if cyclic.contains(&i) {
            Err(vec![value::Problem {
                pos: rule.origin.pos,
                message: "correlations reference each other in a cycle".into(),
                unsupported: false,
            }])
        } else {
            correlation::compile(&node, rule, rules)
        };
        match result {
            Ok((done, refs, generate)) => {
                if generate {
                    generated.extend(refs.iter().cloned());
                }
                referenced.extend(refs);
                compiled.push((i, Some(done)));
            }
            Err(problems) => {
                for p in problems {
                    let d = Diagnostic {
                        file: rule.origin.file.clone(),
                        pos: p.pos,
                        rule: Some(rule.id.clone()),
                        message: if p.unsupported {
                            format!("{}; the correlation is skipped", p.message)
                        } else {
                            p.message
                        },
                    };
                    if p.unsupported {
                        warnings.push(d)
                    } else {
                        errors.push(d)
                    }
                }
                compiled.push((i, None));
            }
        }
    }
    for (i, done) in compiled.into_iter().rev() {
        match done {
            Some(rule) => rules[i] = rule,
            None => {
                rules.remove(i);
            }
        }
    }
    for rule in rules.iter_mut() {
        let Some(part) = &mut rule.sigma else {
            continue;
        };
        let direct = match part.detections.as_slice() {
            [d] if part.extract.is_none()
                && !referenced.contains(&rule.id)
                && d.format == Some(Format::Native) =>
            {
                Some(Arc::clone(d))
            }
            _ => None,
        };
        if let Some(d) = direct {
            // Nothing reads its mark but itself: it is tested where the rule is, as a native
            // `match`, and costs no more.
            rule.filter = Matcher::Predicate(d);
            Arc::make_mut(part).direct = true;
        }
        if referenced.contains(&rule.id) && !generated.contains(&rule.id) {
            if part.extract.is_none() {
                // A Sigma rule that only feeds correlations: its detection runs with them.
                rule.enabled = false;
            } else {
                Arc::make_mut(part).silent = true;
            }
        }
        let part = rule.sigma.as_ref().expect("checked");
        if part.runbook_from_tags
            && rule.runbook.is_none()
            && let Some(name) = parse::runbook_for_tags(&rule.tags)
            && runbook_dir.join(format!("{name}.md")).is_file()
        {
            rule.runbook = Some(name.to_string());
        }
    }
    (errors, warnings)
}

/// The pending correlations (indices into `rules`) that reach themselves through `rules:`.
fn cycles(rules: &[Rule], pending: &[usize]) -> Vec<usize> {
    let edges: Vec<Vec<usize>> = pending
        .iter()
        .map(|&i| {
            let node = rules[i].sigma.as_ref().and_then(|s| s.pending.as_deref());
            let refs = node.map(correlation::references).unwrap_or_default();
            pending
                .iter()
                .copied()
                .filter(|&j| {
                    let s = rules[j].sigma.as_ref().expect("pending");
                    refs.iter().any(|r| {
                        *r == rules[j].id
                            || s.pending.as_deref().is_some_and(|n| {
                                n.get("id").map(Node::scalar_text).as_ref() == Some(r)
                                    || n.get("name").map(Node::scalar_text).as_ref() == Some(r)
                            })
                    })
                })
                .collect()
        })
        .collect();
    let position = |i: usize| pending.iter().position(|&p| p == i).expect("pending");
    pending
        .iter()
        .copied()
        .filter(|&start| {
            let mut seen = vec![false; pending.len()];
            let mut stack: Vec<usize> = edges[position(start)].clone();
            while let Some(next) = stack.pop() {
                if next == start {
                    return true;
                }
                let p = position(next);
                if !std::mem::replace(&mut seen[p], true) {
                    stack.extend(&edges[p]);
                }
            }
            false
        })
        .collect()
}

#[cfg(test)]
mod tests;
