//! A Sigma `detection`: named selections (maps AND their fields, lists OR their items,
//! lists of strings are keywords) and the condition over them.

use super::condition::{self, Cond};
use super::logsource::{View, keyword_locator, locate};
use super::value::{self, FieldTest, Problem, Test};
use crate::normalize::Format;
use crate::rule::yaml::{Node, Value};

/// A field and the lowercase values it must hold for a detection to match at all.
pub type Pin = (String, Vec<String>);

/// A compiled detection, ready to test events of its format.
#[derive(Clone, Debug)]
pub struct Detection {
    pub selections: Vec<Selection>,
    pub names: Vec<String>,
    pub conditions: Vec<Cond>,
}

#[derive(Clone, Debug)]
pub enum Selection {
    /// A map: every field holds.
    All(Vec<FieldTest>),
    /// A list of maps (or of keywords): one item holds.
    Any(Vec<Selection>),
    /// A keyword found in the format's message field.
    Keyword(FieldTest),
}

impl Detection {
    pub fn matches(&self, view: &View<'_>) -> bool {
        // Several conditions (a Sigma v1 list) mean any of them.
        self.conditions.iter().any(|c| self.holds(c, view))
    }

    fn holds(&self, cond: &Cond, view: &View<'_>) -> bool {
        match cond {
            Cond::Sel(i) => self.selections[*i].matches(view),
            Cond::And(parts) => parts.iter().all(|c| self.holds(c, view)),
            Cond::Or(parts) => parts.iter().any(|c| self.holds(c, view)),
            Cond::Not(inner) => !self.holds(inner, view),
        }
    }
}

impl Detection {
    /// A field and the values (lowercase) it must hold for the detection to match at all,
    /// when the condition says so; the stage indexes detections by it.
    pub fn pinned(&self) -> Option<Pin> {
        union(self.conditions.iter().map(|c| self.pin(c)))
    }

    fn pin(&self, cond: &Cond) -> Option<Pin> {
        match cond {
            Cond::Sel(i) => self.selections[*i].pin(),
            Cond::And(parts) => parts.iter().find_map(|p| self.pin(p)),
            Cond::Or(parts) => union(parts.iter().map(|p| self.pin(p))),
            Cond::Not(_) => None,
        }
    }
}

/// The pins of alternatives: one field for all of them, with every value any allows.
fn union(pins: impl Iterator<Item = Option<Pin>>) -> Option<Pin> {
    let mut out: Option<Pin> = None;
    for pin in pins {
        let (field, values) = pin?;
        match &mut out {
            None => out = Some((field, values)),
            Some((f, v)) if *f == field => v.extend(values),
            Some(_) => return None,
        }
    }
    out
}

impl Selection {
    fn pin(&self) -> Option<Pin> {
        match self {
            Selection::All(fields) => fields.iter().find_map(|f| {
                if f.negate || f.all {
                    return None;
                }
                let values: Option<Vec<String>> = f
                    .values
                    .iter()
                    .map(|t| match t {
                        Test::Equal(p) => Some(p.clone()),
                        Test::EqualCased(p) => Some(p.to_lowercase()),
                        _ => None,
                    })
                    .collect();
                Some((f.field.clone(), values?))
            }),
            Selection::Any(items) if !items.is_empty() => union(items.iter().map(Selection::pin)),
            _ => None,
        }
    }

    fn matches(&self, view: &View<'_>) -> bool {
        match self {
            Selection::All(fields) => fields.iter().all(|f| f.matches(view)),
            Selection::Any(items) => items.iter().any(|s| s.matches(view)),
            Selection::Keyword(test) => test.matches(view),
        }
    }
}

/// Compiles `detection:` for `format` (`None`: an idle rule, compiled as if native so its
/// mistakes are still found).
pub fn compile(node: &Node, format: Option<Format>) -> Result<Detection, Vec<Problem>> {
    let format = format.unwrap_or(Format::Native);
    let problem = |n: &Node, message: String| Problem {
        pos: n.pos,
        message,
        unsupported: false,
    };
    let Some(entries) = node.as_map() else {
        return Err(vec![problem(node, "`detection` must be a map".into())]);
    };
    let mut problems = Vec::new();
    let mut names = Vec::new();
    let mut selections = Vec::new();
    let mut condition_nodes = Vec::new();
    for (key, value) in entries {
        let name = key.scalar_text();
        match name.as_str() {
            "condition" => condition_nodes.push(value),
            // Sigma v1 `timeframe` belonged to aggregations; correlations have `timespan`.
            "timeframe" => problems.push(Problem {
                pos: key.pos,
                message: "`timeframe` (Sigma v1) is not supported: write a correlation rule".into(),
                unsupported: true,
            }),
            _ => match selection(value, format) {
                Ok(s) => {
                    names.push(name);
                    selections.push(s);
                }
                Err(mut p) => {
                    // Still named, so the condition is checked and not blamed for it.
                    names.push(name);
                    selections.push(Selection::Any(Vec::new()));
                    problems.append(&mut p);
                }
            },
        }
    }
    let mut conditions = Vec::new();
    match condition_nodes.as_slice() {
        [] => problems.push(problem(node, "the detection has no `condition`".into())),
        [c] => {
            let texts: Vec<&Node> = match &c.value {
                Value::Seq(items) => items.iter().collect(),
                _ => vec![c],
            };
            for t in texts {
                let Some(text) = t.as_str() else {
                    problems.push(problem(t, "a condition must be a string".into()));
                    continue;
                };
                match condition::parse(text, &names) {
                    Ok(cond) => conditions.push(cond),
                    Err(e) => problems.push(Problem {
                        pos: t.pos,
                        message: e.message,
                        unsupported: e.unsupported,
                    }),
                }
            }
        }
        [_, second, ..] => problems.push(problem(second, "`condition` is given twice".into())),
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Detection {
        selections,
        names,
        conditions,
    })
}

fn selection(node: &Node, format: Format) -> Result<Selection, Vec<Problem>> {
    let locate = |name: &str| locate(format, name);
    match &node.value {
        Value::Map(entries) => {
            let mut fields = Vec::new();
            let mut problems = Vec::new();
            for (key, value) in entries {
                match value::compile(key, value, &locate) {
                    Ok(f) => fields.push(f),
                    Err(p) => problems.push(p),
                }
            }
            if problems.is_empty() {
                Ok(Selection::All(fields))
            } else {
                Err(problems)
            }
        }
        Value::Seq(items) => {
            let mut out = Vec::new();
            let mut problems = Vec::new();
            for item in items {
                match selection(item, format) {
                    Ok(s) => out.push(s),
                    Err(mut p) => problems.append(&mut p),
                }
            }
            if problems.is_empty() {
                Ok(Selection::Any(out))
            } else {
                Err(problems)
            }
        }
        Value::Null => Err(vec![Problem {
            pos: node.pos,
            message: "a selection cannot be empty".into(),
            unsupported: false,
        }]),
        _ => keyword(node, format).map_err(|p| vec![p]),
    }
}

/// A keyword: the value searched anywhere in the message field, case-insensitively.
fn keyword(node: &Node, format: Format) -> Result<Selection, Problem> {
    let Some(at) = keyword_locator(format) else {
        return Err(Problem {
            pos: node.pos,
            message: format!(
                "keyword detections (values without a field) need a message field, which \
                 the {format} format does not have"
            ),
            unsupported: true,
        });
    };
    let key = Node {
        pos: node.pos,
        value: Value::Str("keyword|contains".into()),
    };
    let mut test = value::compile(&key, node, &|_| at.clone())?;
    test.at = at;
    Ok(Selection::Keyword(test))
}
