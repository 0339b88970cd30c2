//! The module graph stays acyclic: no two top-level modules of `src/` import each other (not
//! even through a third), and no two files of one module do. Read from the sources
//! (`crate::` and `super::` paths outside comments and `#[cfg(test)] mod tests`), so a new
//! cycle fails here, naming the files that make it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

fn modules(dir: &Path, prefix: &[String], out: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let mut parts = prefix.to_vec();
        if path.is_dir() {
            parts.push(name);
            modules(&path, &parts, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            if !["mod", "lib", "main"].contains(&name.as_str()) {
                parts.push(name);
            }
            let text = std::fs::read_to_string(&path).unwrap();
            out.insert(parts.join("::"), text);
        }
    }
}

/// The source without its unit tests and comments.
fn code(text: &str) -> String {
    let text = text
        .find("#[cfg(test)]\nmod tests")
        .map_or(text, |i| &text[..i]);
    text.lines()
        .map(|l| l.find("//").map_or(l, |i| &l[..i]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The longest module that `path` (`a::b::Item`) names.
fn resolve(path: &[&str], known: &BTreeMap<String, String>) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|m| known.contains_key(m))
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn graph() -> Graph {
    let mut sources = BTreeMap::new();
    modules(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &[],
        &mut sources,
    );
    let mut graph = Graph::new();
    for (module, text) in &sources {
        let code = code(text);
        // `super` is the parent: of `a::b` (`a/b.rs` or `a/b/mod.rs`) it is `a`.
        let mut parent: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
        parent.pop();
        let deps = graph.entry(module.clone()).or_default();
        for (anchor, base) in [("crate::", Vec::new()), ("super::", parent)] {
            for (i, _) in code.match_indices(anchor) {
                if code[..i].chars().next_back().is_some_and(is_ident) {
                    continue;
                }
                let rest = &code[i + anchor.len()..];
                let end = rest
                    .find(|c: char| !(is_ident(c) || c == ':'))
                    .unwrap_or(rest.len());
                let mut path = base.clone();
                path.extend(rest[..end].split("::").filter(|s| !s.is_empty()));
                let mut targets = vec![resolve(&path, &sources)];
                // `use crate::a::{b, c::D}`: each item may be a module of its own.
                if rest[end..].starts_with('{') {
                    let group = &rest[end + 1..rest[end..].find('}').map_or(end, |j| end + j)];
                    for item in group.split(',') {
                        let first = item.trim().split("::").next().unwrap_or("");
                        let mut p = path.clone();
                        p.push(first);
                        targets.push(resolve(&p, &sources));
                    }
                }
                for t in targets.into_iter().flatten() {
                    if t != *module && !t.is_empty() {
                        deps.insert(t);
                    }
                }
            }
        }
    }
    graph
}

fn top(m: &str) -> &str {
    m.split("::").next().unwrap()
}

/// Whether `to` is reachable from `from` in `g`.
fn reaches(g: &BTreeMap<&str, BTreeSet<&str>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from];
    while let Some(n) = stack.pop() {
        for &next in g.get(n).into_iter().flatten() {
            if next == to {
                return true;
            }
            if seen.insert(next) {
                stack.push(next);
            }
        }
    }
    false
}

#[test]
fn no_two_top_level_modules_depend_on_each_other() {
    let graph = graph();
    let mut tops: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (from, deps) in &graph {
        for to in deps {
            if top(from) != top(to) && !from.is_empty() {
                tops.entry(top(from)).or_default().insert(top(to));
            }
        }
    }
    let mut cycles = Vec::new();
    for (&a, deps) in &tops {
        for &b in deps {
            if reaches(&tops, b, a) {
                let files: Vec<String> = graph
                    .iter()
                    .flat_map(|(f, d)| d.iter().map(move |t| (f, t)))
                    .filter(|(f, t)| top(f) == a && top(t) == b)
                    .map(|(f, t)| format!("{f} -> {t}"))
                    .collect();
                cycles.push(format!("{a} -> {b} (and back): {}", files.join(", ")));
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn no_two_files_depend_on_each_other() {
    let graph = graph();
    let mut cycles = Vec::new();
    for (a, deps) in &graph {
        for b in deps {
            if a < b && graph.get(b).is_some_and(|d| d.contains(a)) {
                cycles.push(format!("{a} <-> {b}"));
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "files importing each other:\n{}",
        cycles.join("\n")
    );
}

/// The checker itself finds what it is for (a graph with no edges would pass anything).
#[test]
fn the_graph_sees_known_dependencies() {
    let graph = graph();
    assert!(
        graph["app::run"].contains("shared"),
        "{:?}",
        graph["app::run"]
    );
    assert!(graph["engine::persist"].contains("state"));
    assert!(graph["config::raw"].contains("config::kafka"));
}
