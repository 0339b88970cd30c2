//! Loads every rule file under a directory, collecting all errors of all files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::compile::compile_rule;
use super::diag::{Diagnostic, Diagnostics};
use super::yaml::{self, Pos, Value};
use super::{Origin, Rule};

/// The name of the folder under the rules directory that holds the runbooks.
pub const RUNBOOK_DIR: &str = "runbooks";

/// All rules of a directory, sorted by id so processing order never depends on the filesystem.
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    pub dir: PathBuf,
    pub rules: Vec<Rule>,
    /// Sigma rules skipped for features authwatch does not run (`check --strict` fails).
    pub warnings: Vec<Diagnostic>,
}

impl RuleSet {
    /// The rules that are switched on.
    pub fn enabled(&self) -> Vec<Rule> {
        self.rules.iter().filter(|r| r.enabled).cloned().collect()
    }

    pub fn runbook_dir(&self) -> PathBuf {
        self.dir.join(RUNBOOK_DIR)
    }
}

/// Loads `*.yaml` / `*.yml` under `dir` recursively. Returns every diagnostic on failure.
pub fn load_dir(dir: &Path) -> Result<RuleSet, Vec<Diagnostic>> {
    let mut diagnostics = Vec::new();
    let mut warnings = Vec::new();
    let mut rules = Vec::new();
    let files = match rule_files(dir) {
        Ok(files) => files,
        Err(message) => {
            return Err(vec![Diagnostic {
                file: dir.to_path_buf(),
                pos: Pos { line: 0, col: 0 },
                rule: None,
                message,
            }]);
        }
    };
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                let (mut found, mut diags, mut warned) = load_file(&file, &text);
                rules.append(&mut found);
                diagnostics.append(&mut diags);
                warnings.append(&mut warned);
            }
            Err(err) => diagnostics.push(Diagnostic {
                file: file.clone(),
                pos: Pos { line: 0, col: 0 },
                rule: None,
                message: format!("cannot read the file: {err}"),
            }),
        }
    }
    let (mut sigma_errors, mut sigma_warnings) =
        super::sigma::resolve(&dir.join(RUNBOOK_DIR), &mut rules);
    diagnostics.append(&mut sigma_errors);
    warnings.append(&mut sigma_warnings);
    check_unique_ids(&rules, &mut diagnostics);
    check_runbooks(dir, &rules, &mut diagnostics);
    if !diagnostics.is_empty() {
        diagnostics.sort_by(|a, b| {
            (&a.file, a.pos.line, a.pos.col).cmp(&(&b.file, b.pos.line, b.pos.col))
        });
        return Err(diagnostics);
    }
    rules.sort_by(|a, b| a.id.cmp(&b.id));
    warnings
        .sort_by(|a, b| (&a.file, a.pos.line, a.pos.col).cmp(&(&b.file, b.pos.line, b.pos.col)));
    Ok(RuleSet {
        dir: dir.to_path_buf(),
        rules,
        warnings,
    })
}

/// Compiles the rules in one file's text (a rule map or a list of them, or Sigma documents).
pub fn load_file_text(file: &Path, text: &str) -> (Vec<Rule>, Vec<Diagnostic>) {
    let (rules, errors, _) = load_file(file, text);
    (rules, errors)
}

/// One file's rules, errors and warnings (Sigma features authwatch skips).
fn load_file(file: &Path, text: &str) -> (Vec<Rule>, Vec<Diagnostic>, Vec<Diagnostic>) {
    if let Some(sigma) = super::sigma::load_text(file, text) {
        let diagnostic = |(pos, rule, message)| Diagnostic {
            file: file.to_path_buf(),
            pos,
            rule,
            message,
        };
        return (
            sigma.rules,
            sigma.errors.into_iter().map(diagnostic).collect(),
            sigma.warnings.into_iter().map(diagnostic).collect(),
        );
    }
    let (rules, errors) = load_native_text(file, text);
    (rules, errors, Vec::new())
}

fn load_native_text(file: &Path, text: &str) -> (Vec<Rule>, Vec<Diagnostic>) {
    let mut diags = Diagnostics::new(file);
    let doc = match yaml::parse(text) {
        Ok(doc) => doc,
        Err(err) => {
            diags.error(err.pos, format!("invalid YAML: {}", err.message));
            return (Vec::new(), diags.items);
        }
    };
    let nodes = match &doc.value {
        Value::Seq(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        _ => vec![&doc],
    };
    let mut rules = Vec::new();
    for node in nodes {
        diags.set_rule(None);
        let origin = Origin {
            file: file.to_path_buf(),
            pos: node.pos,
        };
        if let Some(rule) = compile_rule(node, &mut diags, origin) {
            rules.push(rule);
        }
    }
    (rules, diags.items)
}

fn rule_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    if !dir.is_dir() {
        // Name the directory as resolved: a relative default (`./rules`) is read from wherever
        // the command was started, which is the usual surprise.
        let resolved = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        return Err(format!(
            "the rules directory {} does not exist or is not a directory; pass --rules DIR or set [rules] dir",
            resolved.display()
        ));
    }
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
    {
        let entry = entry.map_err(|e| format!("cannot list the rules directory: {e}"))?;
        let is_yaml = entry
            .path()
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml");
        if entry.file_type().is_file() && is_yaml {
            files.push(entry.into_path());
        }
    }
    Ok(files)
}

fn check_unique_ids(rules: &[Rule], diagnostics: &mut Vec<Diagnostic>) {
    let mut first: HashMap<&str, &Rule> = HashMap::new();
    for rule in rules {
        if let Some(earlier) = first.insert(&rule.id, rule) {
            diagnostics.push(Diagnostic {
                file: rule.origin.file.clone(),
                pos: rule.origin.pos,
                rule: Some(rule.id.clone()),
                message: format!(
                    "duplicate id: also defined at {}:{}; rule ids must be unique",
                    earlier.origin.file.display(),
                    earlier.origin.pos
                ),
            });
        }
    }
}

/// A runbook named by a rule must exist, or the on-call engineer gets a dead link.
fn check_runbooks(dir: &Path, rules: &[Rule], diagnostics: &mut Vec<Diagnostic>) {
    for rule in rules {
        let Some(name) = &rule.runbook else { continue };
        if name.starts_with("https://") {
            continue;
        }
        let path = dir.join(RUNBOOK_DIR).join(format!("{name}.md"));
        if !path.is_file() {
            diagnostics.push(Diagnostic {
                file: rule.origin.file.clone(),
                pos: rule.origin.pos,
                rule: Some(rule.id.clone()),
                message: format!("runbook `{name}` not found: create {}", path.display()),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_mistakes_give_three_positioned_errors() {
        let text = "\
id: brute-force-user
title: Brute force
severity: hgh
kind: threshold
match:
  type: login.failure
group_by: [tenant, usrname]
window: 15m
treshold: 10
";
        let (rules, diags) = load_file_text(Path::new("r.yaml"), text);
        assert!(rules.is_empty());
        let lines: Vec<String> = diags.iter().map(ToString::to_string).collect();
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert!(lines.iter().any(|l| l.starts_with(
            "r.yaml:9:1: rule brute-force-user: unknown key `treshold` (did you mean `threshold`?)"
        )));
        assert!(
            lines.iter().any(
                |l| l.starts_with("r.yaml:3:11: rule brute-force-user: unknown severity `hgh`")
            )
        );
        assert!(
            lines
                .iter()
                .any(|l| l
                    .starts_with("r.yaml:7:20: rule brute-force-user: unknown field `usrname`"))
        );
        // The misspelt key also means the real one is missing.
        assert!(lines.iter().any(|l| l.contains("missing `threshold`")));
    }
}
