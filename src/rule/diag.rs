//! Rule and config errors that point at a file, line and column, collected rather than thrown.

use std::fmt;
use std::path::{Path, PathBuf};

use super::yaml::Pos;

/// One problem found in a rule file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub pos: Pos,
    /// The id of the rule the problem is in, when it is known.
    pub rule: Option<String>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A diagnostic about a whole file or directory has no position (line 0): printing
        // `:0:0` would send an editor to a line that does not exist.
        if self.pos.line == 0 {
            write!(f, "{}: ", self.file.display())?;
        } else {
            write!(f, "{}:{}: ", self.file.display(), self.pos)?;
        }
        if let Some(rule) = &self.rule {
            write!(f, "rule {rule}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Collects diagnostics for one file while it is being compiled.
pub struct Diagnostics<'a> {
    file: &'a Path,
    rule: Option<String>,
    pub items: Vec<Diagnostic>,
}

impl<'a> Diagnostics<'a> {
    pub fn new(file: &'a Path) -> Diagnostics<'a> {
        Diagnostics {
            file,
            rule: None,
            items: Vec::new(),
        }
    }

    /// Names the rule that later diagnostics belong to.
    pub fn set_rule(&mut self, rule: Option<String>) {
        self.rule = rule;
    }

    pub fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.items.push(Diagnostic {
            file: self.file.to_path_buf(),
            pos,
            rule: self.rule.clone(),
            message: message.into(),
        });
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// The closest candidate to a misspelt name, for "did you mean" hints.
pub fn did_you_mean<'a>(given: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    candidates
        .into_iter()
        .map(|c| (edit_distance(given, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min()
        .map(|(_, c)| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses_get_a_suggestion_and_far_ones_none() {
        assert_eq!(
            did_you_mean("treshold", ["threshold", "window"]),
            " (did you mean `threshold`?)"
        );
        assert_eq!(did_you_mean("zzz", ["threshold", "window"]), "");
    }
}
