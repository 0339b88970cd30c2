//! The documentation's examples still parse: every ```toml block of README.md and docs/*.md
//! passes `authwatch check --config <block> --rules rules`, and every ```yaml block is a rule
//! (it has `id:` and `kind:`) that passes `authwatch check` in a rules directory of its own (the
//! pack's runbooks beside it), and `authwatch test` when it has `tests:`; a Sigma example (it
//! has `logsource:` and `detection:`, or `correlation:`) passes `authwatch check --strict`.
//!
//! Examples name secrets and files as a deployment would (`token_env = "AUTHWATCH_INGEST_TOKEN"`,
//! `ca_file = "/etc/authwatch/kafka-ca.pem"`); `check` requires the variables to be set and the
//! files to exist (it opens nothing else and touches no network). So each block is checked with
//! every variable its `*_env` keys name set in the child's environment, and with every path its
//! `*_file` keys name, and `[geoip]`'s `city` and `asn`, replaced by files made in a temporary
//! directory (a PEM-shaped placeholder for certificates, test MaxMind databases for the
//! databases); the rest of the block is checked as written.
//!
//! Every relative link of those pages, ARCHITECTURE.md and demo/README.md names a file that
//! exists and, with `#anchor`, a heading of it (GitHub's anchors: lower case, punctuation dropped,
//! spaces as hyphens), so moving a section cannot leave a link behind.
//!
//! A block that is deliberately a fragment (a few keys out of context) says so with `# fragment`
//! as its first line, and is skipped. Prefer complete examples: none is a fragment today.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::fuzz_harness::{fenced_blocks, files};
use crate::geodb;
use crate::support::{authwatch, repo, rules_dir, stderr};

const FRAGMENT: &str = "# fragment";

/// What stands in for a certificate file: `check` looks for a PEM certificate in a sink's
/// `ca_file` (and only that a Kafka TLS file exists); the handshake is what reads it in full.
const CERTIFICATE: &[u8] = b"-----BEGIN CERTIFICATE-----\nexample\n-----END CERTIFICATE-----\n";

/// README.md and every page under docs/: the pages whose examples are checked.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![repo().join("README.md")];
    pages.extend(files(&repo().join("docs"), ".md"));
    pages
}

/// The blocks of one language on every page, each with a label naming its page and number.
fn blocks(language: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for page in pages() {
        let markdown = std::fs::read_to_string(&page).unwrap();
        let name = page.strip_prefix(repo()).unwrap().display().to_string();
        for (i, block) in fenced_blocks(&markdown, language).into_iter().enumerate() {
            let text = String::from_utf8(block).unwrap();
            if text.lines().next().is_some_and(|l| l.trim() == FRAGMENT) {
                continue;
            }
            out.push((format!("{name}, ```{language} block {}", i + 1), text));
        }
    }
    out
}

/// Every (key path, string value) of a TOML document, at any depth.
fn strings(prefix: &str, value: &toml::Value, out: &mut Vec<(String, String)>) {
    match value {
        toml::Value::String(s) => out.push((prefix.to_string(), s.clone())),
        toml::Value::Table(table) => {
            for (key, v) in table {
                strings(&format!("{prefix}.{key}"), v, out);
            }
        }
        toml::Value::Array(items) => items.iter().for_each(|v| strings(prefix, v, out)),
        _ => {}
    }
}

/// A value a `*_env` key's variable may hold: a URL for keys that are URLs (a Slack webhook).
fn secret_for(key: &str) -> &'static str {
    if key.contains("url") {
        "https://hooks.example.com/services/T0/B0/example"
    } else {
        "example-secret"
    }
}

/// Writes `block` into `dir` with its files replaced by ones made there, and checks it with
/// the variables it names set.
fn check_config(dir: &Path, label: &str, block: &str) -> Output {
    let parsed: toml::Value =
        toml::from_str(block).unwrap_or_else(|e| panic!("{label} is not TOML: {e}"));
    let mut values = Vec::new();
    strings("", &parsed, &mut values);
    let mut text = block.to_string();
    let mut env = Vec::new();
    for (n, (key, value)) in values.iter().enumerate() {
        let made = if key.ends_with("_env") {
            env.push((value.clone(), secret_for(key)));
            None
        } else if key.ends_with("ca_file") || key.ends_with("cert_file") {
            Some(CERTIFICATE.to_vec())
        } else if key.ends_with("_file") {
            Some(b"example-secret\n".to_vec())
        } else if key == ".geoip.city" {
            Some(geodb::city_db())
        } else if key == ".geoip.asn" {
            Some(geodb::asn_db())
        } else {
            None
        };
        if let Some(content) = made {
            let path = dir.join(format!("file-{n}"));
            std::fs::write(&path, content).unwrap();
            text = text.replace(&format!("\"{value}\""), &format!("\"{}\"", path.display()));
        }
    }
    let config = dir.join("authwatch.toml");
    std::fs::write(&config, text).unwrap();
    let rules = rules_dir();
    let args = [
        "check",
        "--config",
        config.to_str().unwrap(),
        "--rules",
        rules.to_str().unwrap(),
    ];
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_authwatch"));
    command.args(args).current_dir(repo());
    for (var, value) in env {
        command.env(var, value);
    }
    command.output().expect("the authwatch binary runs")
}

#[test]
fn every_toml_example_passes_check() {
    let blocks = blocks("toml");
    assert!(
        blocks.len() >= 9,
        "the pages hold the configuration examples"
    );
    let mut failures = Vec::new();
    for (label, block) in &blocks {
        let dir = tempfile::tempdir().unwrap();
        let out = check_config(dir.path(), label, block);
        if !out.status.success() {
            failures.push(format!("{label}:\n{block}\n{}", stderr(&out)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_yaml_example_is_a_rule_that_passes_check_and_its_tests() {
    let blocks = blocks("yaml");
    assert!(blocks.len() >= 2, "docs/rules.md holds the rule examples");
    let mut failures = Vec::new();
    for (label, block) in &blocks {
        let top = |key: &str| {
            block
                .lines()
                .any(|l| l.trim_start_matches("- ").starts_with(key))
        };
        // Sigma examples (docs/sigma.md) are rules too, and must load with nothing skipped.
        let sigma = (top("logsource:") && top("detection:")) || top("correlation:");
        let native = top("id:") && top("kind:");
        if !(native || sigma) {
            failures.push(format!(
                "{label} is not a rule (no `id:` and `kind:`): make it one or mark it {FRAGMENT}"
            ));
            continue;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("example.yaml"), block).unwrap();
        let runbooks = dir.path().join("runbooks");
        std::fs::create_dir(&runbooks).unwrap();
        for runbook in files(&rules_dir().join("runbooks"), ".md") {
            std::fs::copy(&runbook, runbooks.join(runbook.file_name().unwrap())).unwrap();
        }
        let rules = dir.path().to_str().unwrap();
        let mut commands = vec![vec!["check"]];
        if sigma {
            commands = vec![vec!["check", "--strict"]];
        }
        if top("tests:") {
            commands.push(vec!["test"]);
        }
        for command in commands {
            let args: Vec<&str> = command.iter().copied().chain(["--rules", rules]).collect();
            let out = authwatch(&args, b"");
            let command = command.join(" ");
            if !out.status.success() {
                failures.push(format!(
                    "{label}: authwatch {command}:\n{block}\n{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    stderr(&out)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The anchor GitHub gives a heading.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The lines of a page outside its fenced code blocks.
fn prose(markdown: &str) -> impl Iterator<Item = &str> {
    let mut in_code = false;
    markdown.lines().filter(move |line| {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            return false;
        }
        !in_code
    })
}

/// A page's headings, without their `#`s.
fn headings(markdown: &str) -> Vec<&str> {
    prose(markdown)
        .filter(|l| l.starts_with('#'))
        .map(|l| l.trim_start_matches('#'))
        .collect()
}

/// The targets of a page's Markdown links, `[text](target)`, outside code blocks.
fn links(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose(markdown) {
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let target = &rest[at + 2..];
            let end = target.find(')').unwrap_or(target.len());
            out.push(target[..end].to_string());
            rest = &target[end..];
        }
    }
    out
}

#[test]
fn every_relative_link_names_a_file_and_heading_that_exist() {
    let mut pages = pages();
    pages.push(repo().join("ARCHITECTURE.md"));
    pages.push(repo().join("demo/README.md"));
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in &pages {
        let markdown = std::fs::read_to_string(page).unwrap();
        for link in links(&markdown) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, fragment) = link.split_once('#').unwrap_or((&link, ""));
            let target = if path.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(path)
            };
            if !target.exists() {
                broken.push(format!("{}: {link}: no such file", page.display()));
                continue;
            }
            if !fragment.is_empty() {
                let text = std::fs::read_to_string(&target).unwrap();
                if !headings(&text).iter().any(|h| anchor(h) == fragment) {
                    broken.push(format!("{}: {link}: no such heading", page.display()));
                }
            }
        }
    }
    assert!(
        checked >= 20,
        "the pages link to each other ({checked} links)"
    );
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}
