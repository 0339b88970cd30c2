//! A mutation fuzzer on stable Rust for everything authwatch parses from outside: seeded with the
//! repository's own fixtures, it mutates bytes and JSON structure and asserts that no input makes
//! a target panic. Shared by the short CI run (`tests/it/fuzz.rs`) and the long release run
//! (`examples/fuzz.rs`).
//!
//! Why not libFuzzer or AFL: they need a nightly toolchain or an external driver, and the machine
//! CI runs on has neither. Coverage guidance matters most for deep branchy parsers; ours are serde
//! and JSON-shaped, so structure-aware mutations (replacing a node of the parsed seed with a
//! hostile value) reach the normalisers' branches directly, and each run is reproducible from its
//! seed.

#![allow(dead_code)] // each includer uses part of it

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

/// Values that broke parsers before, or that sit on a bound: timestamps far out, numbers past
/// every integer type, surrogates, control characters, markup, very long strings.
const HOSTILE_STRINGS: &[&str] = &[
    "",
    "2999-01-01T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "-292277022657-01-27T08:29:52Z",
    "2024-02-30T25:61:61Z",
    "2024-06-01T00:00:00+99:99",
    "9999999999999999999",
    "-1",
    "NaN",
    "1e309",
    "\u{0}",
    "\u{202e}evil",
    "<!channel>",
    "<script>alert(1)</script>",
    "%s%n%x",
    "../../../../etc/passwd",
    "::ffff:127.0.0.1",
    "999.999.999.999",
    "fe80::1%eth0",
    "login.failure",
    "login.success",
    "mfa.challenge",
    "token.refresh",
    "bad_password",
    "unknown_user",
];

/// Byte sequences spliced into raw input.
const HOSTILE_BYTES: &[&[u8]] = &[
    b"\"",
    b"\\",
    b"\\u",
    b"\\ud800",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\n",
    b"\r\n",
    b"\0",
    b"\xff\xfe",
    b"\xc3",
    b"1e999999",
    b"-0",
    b"18446744073709551616",
    b"null",
    b"true",
    b"type=LOGIN_ERROR, ",
    b"error=",
    b"=",
];

/// The code under test: it may return any result for any input, but never panic.
pub type Check<'a> = Box<dyn FnMut(&[u8]) + 'a>;

/// One fuzz target: a name, the seeds its mutations start from, and the code under test.
pub struct Target<'a> {
    pub name: String,
    pub seeds: Vec<Vec<u8>>,
    pub run: Check<'a>,
}

/// What a run found.
#[derive(Debug, Default)]
pub struct Report {
    pub cases: u64,
    /// Inputs that made the target panic, with the panic message.
    pub panics: Vec<(Vec<u8>, String)>,
}

/// Runs `cases` mutated inputs through `target`, deterministically from `seed`. The first
/// cases are the seeds themselves, unchanged.
pub fn run(target: &mut Target<'_>, cases: u64, seed: u64) -> Report {
    assert!(!target.seeds.is_empty(), "{}: no seeds", target.name);
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut report = Report::default();
    for case in 0..cases {
        let input = if (case as usize) < target.seeds.len() {
            target.seeds[case as usize].clone()
        } else {
            mutate(&mut rng, &target.seeds)
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| (target.run)(&input)));
        if let Err(payload) = outcome {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            report.panics.push((input, message));
        }
        report.cases += 1;
    }
    report
}

/// A mutated copy of one seed: one to four mutations stacked, structural or raw.
pub fn mutate(rng: &mut SmallRng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds[rng.random_range(0..seeds.len())].clone();
    for _ in 0..rng.random_range(1..=4) {
        data = if rng.random_bool(0.5) {
            match serde_json::from_slice::<Value>(&data) {
                Ok(mut value) => {
                    mutate_value(rng, &mut value);
                    serde_json::to_vec(&value).unwrap_or(data)
                }
                Err(_) => mutate_bytes(rng, data, seeds),
            }
        } else {
            mutate_bytes(rng, data, seeds)
        };
    }
    data
}

fn mutate_bytes(rng: &mut SmallRng, mut data: Vec<u8>, seeds: &[Vec<u8>]) -> Vec<u8> {
    let at = |rng: &mut SmallRng, data: &Vec<u8>| rng.random_range(0..=data.len());
    match rng.random_range(0..7) {
        0 if !data.is_empty() => {
            let i = rng.random_range(0..data.len());
            data[i] ^= 1 << rng.random_range(0..8);
        }
        1 if !data.is_empty() => {
            let i = rng.random_range(0..data.len());
            data[i] = rng.random();
        }
        2 => {
            let i = at(rng, &data);
            let token = HOSTILE_BYTES[rng.random_range(0..HOSTILE_BYTES.len())];
            data.splice(i..i, token.iter().copied());
        }
        3 if !data.is_empty() => {
            let a = rng.random_range(0..data.len());
            let b = (a + rng.random_range(1..64)).min(data.len());
            data.drain(a..b);
        }
        4 if !data.is_empty() => {
            // Duplicate a slice: repeated keys, repeated brackets.
            let a = rng.random_range(0..data.len());
            let b = (a + rng.random_range(1..32)).min(data.len());
            let chunk = data[a..b].to_vec();
            data.splice(a..a, chunk);
        }
        5 => {
            // Splice the tail of another seed after a prefix of this one.
            let other = &seeds[rng.random_range(0..seeds.len())];
            let cut = at(rng, &data);
            let from = rng.random_range(0..=other.len());
            data.truncate(cut);
            data.extend_from_slice(&other[from..]);
        }
        _ => {
            let cut = at(rng, &data);
            data.truncate(cut);
        }
    }
    data
}

fn mutate_value(rng: &mut SmallRng, value: &mut Value) {
    let node = pick_node(rng, value);
    *node = hostile_value(rng, node);
}

/// A random node of the tree, each level descended with three-in-four odds.
fn pick_node<'v>(rng: &mut SmallRng, value: &'v mut Value) -> &'v mut Value {
    let len = match &*value {
        Value::Object(map) => map.len(),
        Value::Array(items) => items.len(),
        _ => 0,
    };
    if len == 0 || !rng.random_bool(0.75) {
        return value;
    }
    let i = rng.random_range(0..len);
    let child = match value {
        Value::Object(map) => map.values_mut().nth(i).expect("index in range"),
        Value::Array(items) => &mut items[i],
        _ => unreachable!("only containers have children"),
    };
    pick_node(rng, child)
}

fn hostile_value(rng: &mut SmallRng, old: &Value) -> Value {
    match rng.random_range(0..12) {
        0 => Value::Null,
        1 => Value::Bool(rng.random()),
        2 => serde_json::json!(rng.random::<i64>()),
        3 => serde_json::json!(u64::MAX),
        4 => serde_json::json!(rng.random::<f64>() * 1e300),
        5 => Value::String(HOSTILE_STRINGS[rng.random_range(0..HOSTILE_STRINGS.len())].into()),
        6 => Value::String("A".repeat(rng.random_range(1..70_000))),
        7 => {
            // Nesting around the bound decoders set (and past serde_json's 128).
            let depth = rng.random_range(1..140);
            let mut v = old.clone();
            for _ in 0..depth {
                v = if rng.random_bool(0.5) {
                    Value::Array(vec![v])
                } else {
                    serde_json::json!({ "a": v })
                };
            }
            v
        }
        8 => Value::Array(vec![old.clone(); rng.random_range(0..50)]),
        9 => serde_json::json!({}),
        10 => Value::Array(vec![]),
        // Keep the type, change the content: a string that still parses as the old one did.
        _ => match old {
            Value::String(s) => Value::String(format!("{s}{s}")),
            Value::Number(_) => serde_json::json!(-rng.random_range(0..i64::MAX)),
            other => other.clone(),
        },
    }
}

/// Non-empty lines of a file.
pub fn lines(path: &Path) -> Vec<Vec<u8>> {
    std::fs::read(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .split(|b| *b == b'\n')
        .filter(|l| !l.trim_ascii().is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// Every file under `dir` whose name ends with `suffix`.
pub fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    out.sort();
    out
}

/// The fenced blocks of one language in a Markdown file (the documentation's config examples).
pub fn fenced_blocks(markdown: &str, language: &str) -> Vec<Vec<u8>> {
    let open = format!("```{language}");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim_start() == open => current = Some(String::new()),
            Some(block) if line.trim_start() == "```" => {
                blocks.push(std::mem::take(block).into_bytes());
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// Every target: each input format's decoder (and the engine with the whole default pack behind
/// it, so decoded hostile events are also processed), the HTTP ingest routes' body splitting,
/// the rule parser and the config parser.
/// Seeds come from `repo`'s fixtures, demo, rules and documentation (README.md, docs/), and
/// `../shared/corpus` (or `AUTHWATCH_CORPUS`) when present.
pub fn targets(repo: &Path) -> Vec<Target<'static>> {
    use authwatch::engine::{Engine, EngineOptions};
    use authwatch::normalize::{Format, normalize};

    let fixtures = repo.join("tests/fixtures");
    let corpus = std::env::var_os("AUTHWATCH_CORPUS")
        .map_or_else(|| repo.join("../shared/corpus"), PathBuf::from);
    let corpus_lines = |prefix: &str| -> Vec<Vec<u8>> {
        if !corpus.is_dir() {
            return Vec::new();
        }
        files(&corpus, ".jsonl")
            .into_iter()
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                name.starts_with(prefix) && !name.contains("expected")
            })
            .flat_map(|p| lines(&p).into_iter().take(200))
            .collect()
    };
    let seeds = |format: Format| -> Vec<Vec<u8>> {
        let mut seeds = match format {
            Format::Native => {
                let mut s: Vec<Vec<u8>> = lines(&repo.join("demo/events.jsonl"))
                    .into_iter()
                    .take(300)
                    .collect();
                for provider in [
                    "auth0",
                    "okta",
                    "keycloak",
                    "entra",
                    "google_workspace",
                    "cognito",
                    "ocsf",
                ] {
                    s.extend(lines(&fixtures.join(provider).join("attack.native.jsonl")));
                }
                s
            }
            Format::Auth0 => lines(&fixtures.join("auth0/attack.jsonl")),
            Format::Okta => lines(&fixtures.join("okta/attack.jsonl")),
            Format::Keycloak => {
                let mut s = lines(&fixtures.join("keycloak/attack.jsonl"));
                s.extend(lines(&fixtures.join("keycloak/attack.log")));
                s
            }
            // The attack and the public documentation's samples of each newer format.
            Format::Entra | Format::GoogleWorkspace | Format::Cognito | Format::Ocsf => {
                let dir = fixtures.join(format.as_str());
                let mut s = lines(&dir.join("attack.jsonl"));
                s.extend(lines(&dir.join("docs.jsonl")));
                s
            }
        };
        // The corpus names some providers by their older product names.
        let corpus_prefix = match format {
            Format::Entra => "azure_signin",
            Format::GoogleWorkspace => "gsuite",
            other => other.as_str(),
        };
        seeds.extend(corpus_lines(corpus_prefix));
        seeds
    };

    let rules = authwatch::rule::load_dir(&repo.join("rules"))
        .unwrap_or_else(|e| panic!("the default pack loads: {e:?}"))
        .enabled();
    let mut targets: Vec<Target<'static>> = Vec::new();
    for format in Format::all() {
        let mut engine = Engine::new(rules.clone(), &EngineOptions::default());
        let mut alerts = Vec::new();
        targets.push(Target {
            name: format!("decode+engine:{format}"),
            seeds: seeds(format),
            run: Box::new(move |input| {
                if let Ok(event) = normalize(format, input) {
                    engine.process(event, &mut alerts);
                    alerts.clear();
                }
            }),
        });
    }

    // HTTP ingest bodies: the route's splitting, then each record through its decoder. Seeds
    // are the shapes providers send: JSON arrays, NDJSON, one object, Okta hook envelopes.
    for format in [Format::Native, Format::Auth0, Format::Okta] {
        let lines = seeds(format);
        let mut bodies: Vec<Vec<u8>> = Vec::new();
        for chunk in lines.chunks(7) {
            let elements: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
            let array = [b"[".as_slice(), &elements.join(&b","[..]), b"]"].concat();
            if format == Format::Okta {
                bodies.push([b"{\"data\":{\"events\":".as_slice(), &array, b"}}"].concat());
            }
            bodies.push(array);
            bodies.push(elements.join(&b"\n"[..]));
            bodies.push(chunk[0].clone());
        }
        targets.push(Target {
            name: format!("ingest body:{format}"),
            seeds: bodies,
            run: Box::new(move |body| {
                let split = authwatch::source::http::split_body(format, body, 20_000);
                if let Some(Ok(items)) = split {
                    for item in items {
                        if let authwatch::source::Item::Line(record, _) = item {
                            let _ = normalize(format, &record);
                        }
                    }
                }
            }),
        });
    }

    let rule_seeds: Vec<Vec<u8>> = files(&repo.join("rules"), ".yaml")
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    targets.push(Target {
        name: "rule parser".into(),
        seeds: rule_seeds,
        run: Box::new(|input| {
            let text = String::from_utf8_lossy(input);
            let _ = authwatch::rule::load_file_text(Path::new("fuzz.yaml"), &text);
        }),
    });

    let mut config_seeds = Vec::new();
    let pages = std::iter::once(repo.join("README.md")).chain(files(&repo.join("docs"), ".md"));
    for page in pages {
        config_seeds.extend(fenced_blocks(
            &std::fs::read_to_string(page).unwrap(),
            "toml",
        ));
    }
    config_seeds.push(std::fs::read(repo.join("systemd/authwatch.toml")).unwrap());
    targets.push(Target {
        name: "config parser".into(),
        seeds: config_seeds,
        run: Box::new(|input| {
            let text = String::from_utf8_lossy(input);
            let _ = authwatch::config::parse(Path::new("fuzz.toml"), &text);
        }),
    });
    targets
}
