//! Sigma values and modifiers (`field|contains|all: [...]`) compiled into tests on one field.
//!
//! Sigma compares strings case-insensitively unless `cased`; `*` and `?` are wildcards (`\*`,
//! `\?` and `\\` write them literally); numbers and booleans compare as the text JSON writes
//! them, so `'true'` matches a JSON `true` and `5` matches `"5"`. A plain value without
//! wildcards is compared directly; everything else becomes one anchored regex, built once.

use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ipnet::IpNet;
use regex::{Regex, RegexBuilder};

use super::logsource::{Locator, View};
use crate::rule::yaml::{Node, Pos, Value};

/// Every modifier authwatch implements (pySigma's long names for the regex flags too); others
/// are refused with a warning.
pub const MODIFIERS: [&str; 27] = [
    "contains",
    "startswith",
    "endswith",
    "all",
    "cased",
    "neq",
    "re",
    "i",
    "m",
    "s",
    "ignorecase",
    "multiline",
    "dotall",
    "cidr",
    "exists",
    "gt",
    "gte",
    "lt",
    "lte",
    "base64",
    "base64offset",
    "utf16le",
    "utf16be",
    "utf16",
    "wide",
    "windash",
    "fieldref",
];

/// One field's condition: `any` of its values (or `all` of them with `|all`).
#[derive(Clone, Debug)]
pub struct FieldTest {
    pub field: String,
    pub at: Locator,
    pub all: bool,
    /// `neq`: the field holds none of the values.
    pub negate: bool,
    pub values: Vec<Test>,
    /// The modifiers and values as written, for `describe`.
    pub modifiers: Vec<String>,
    pub written: Vec<Option<String>>,
}

/// One value of a field condition.
#[derive(Clone, Debug)]
pub enum Test {
    /// Equal, ignoring case (the pattern is lowercase).
    Equal(String),
    /// Equal exactly (`cased`).
    EqualCased(String),
    /// Wildcards, `contains`/`startswith`/`endswith`, `re`, encodings: one regex.
    Pattern(Regex),
    Cidr(Vec<IpNet>),
    Exists(bool),
    /// `null`: the field is absent or null.
    Null,
    Number(Cmp, f64),
    /// `fieldref`: compared with the values of another field.
    FieldRef {
        at: Locator,
        how: Placement,
        cased: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Gt,
    Gte,
    Lt,
    Lte,
}

/// Where a value must sit in the field's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    Whole,
    Contains,
    Start,
    End,
}

/// A problem in a field entry: the message and where; `unsupported` problems skip the rule
/// with a warning (the rule is valid Sigma that authwatch cannot run), others are errors.
#[derive(Debug)]
pub struct Problem {
    pub pos: Pos,
    pub message: String,
    pub unsupported: bool,
}

impl FieldTest {
    pub fn matches(&self, view: &View<'_>) -> bool {
        let one = |t: &Test| t.matches(view, &self.at);
        let hit = if self.all {
            self.values.iter().all(one)
        } else {
            self.values.iter().any(one)
        };
        hit != self.negate
    }
}

impl Test {
    fn matches(&self, view: &View<'_>, at: &Locator) -> bool {
        match self {
            Test::Exists(want) => view.has(at) == *want,
            Test::Null => !view.has(at),
            Test::Equal(p) => view.any(at, &mut |s| eq_ignore_case(s, p)),
            Test::EqualCased(p) => view.any(at, &mut |s| s == p),
            Test::Pattern(re) => view.any(at, &mut |s| re.is_match(s)),
            Test::Cidr(nets) => view.any(at, &mut |s| {
                s.parse::<IpAddr>()
                    .is_ok_and(|ip| nets.iter().any(|n| n.contains(&ip)))
            }),
            Test::Number(cmp, n) => view.any(at, &mut |s| {
                s.parse::<f64>().is_ok_and(|x| match cmp {
                    Cmp::Gt => x > *n,
                    Cmp::Gte => x >= *n,
                    Cmp::Lt => x < *n,
                    Cmp::Lte => x <= *n,
                })
            }),
            Test::FieldRef {
                at: other,
                how,
                cased,
            } => {
                let mut theirs = Vec::new();
                view.any(other, &mut |s| {
                    theirs.push(if *cased {
                        s.to_string()
                    } else {
                        s.to_lowercase()
                    });
                    false
                });
                view.any(at, &mut |s| {
                    let s = if *cased {
                        s.to_string()
                    } else {
                        s.to_lowercase()
                    };
                    theirs.iter().any(|t| match how {
                        Placement::Whole => s == *t,
                        Placement::Contains => s.contains(t.as_str()),
                        Placement::Start => s.starts_with(t.as_str()),
                        Placement::End => s.ends_with(t.as_str()),
                    })
                })
            }
        }
    }
}

/// Sigma's default comparison, without allocating for ASCII text.
fn eq_ignore_case(s: &str, lower: &str) -> bool {
    if s.is_ascii() {
        s.eq_ignore_ascii_case(lower)
    } else {
        s.to_lowercase() == lower
    }
}

/// Compiles `field|mods: value(s)`. `locate` resolves field names for the rule's format.
pub fn compile(
    key: &Node,
    value: &Node,
    locate: &dyn Fn(&str) -> Locator,
) -> Result<FieldTest, Problem> {
    let text = key.scalar_text();
    let mut parts = text.split('|');
    let field = parts.next().unwrap_or_default().to_string();
    let mods: Vec<&str> = parts.collect();
    let problem = |message: String, unsupported| Problem {
        pos: key.pos,
        message,
        unsupported,
    };
    for m in &mods {
        if !MODIFIERS.contains(m) {
            return Err(problem(
                format!("unsupported Sigma modifier `{m}` on `{field}`"),
                true,
            ));
        }
    }
    let has = |m: &str| mods.contains(&m);
    let placement = if has("contains") {
        Placement::Contains
    } else if has("startswith") {
        Placement::Start
    } else if has("endswith") {
        Placement::End
    } else {
        Placement::Whole
    };
    let cased = has("cased");
    let items: Vec<&Node> = match &value.value {
        Value::Seq(items) => items.iter().collect(),
        _ => vec![value],
    };
    if items.is_empty() {
        return Err(problem(
            format!("`{field}` has an empty list of values"),
            false,
        ));
    }
    let mut values = Vec::new();
    let mut written = Vec::new();
    for item in &items {
        values.push(compile_value(item, &mods, placement, cased, locate)?);
        written.push((item.value != Value::Null).then(|| item.scalar_text()));
    }
    Ok(FieldTest {
        at: locate(&field),
        field,
        all: has("all"),
        negate: has("neq"),
        values,
        modifiers: mods.iter().map(|m| m.to_string()).collect(),
        written,
    })
}

fn compile_value(
    item: &Node,
    mods: &[&str],
    placement: Placement,
    cased: bool,
    locate: &dyn Fn(&str) -> Locator,
) -> Result<Test, Problem> {
    let has = |m: &str| mods.contains(&m);
    let problem = |message: String| Problem {
        pos: item.pos,
        message,
        unsupported: false,
    };
    if let Value::Null = item.value {
        return Ok(Test::Null);
    }
    if matches!(item.value, Value::Seq(_) | Value::Map(_)) {
        return Err(problem(format!(
            "a Sigma value must be a scalar, found {}",
            item.value.kind_name()
        )));
    }
    let text = item.scalar_text();
    if has("exists") {
        return match item.value {
            Value::Bool(b) => Ok(Test::Exists(b)),
            _ => Err(problem("`exists` takes true or false".into())),
        };
    }
    for (name, cmp) in [
        ("gt", Cmp::Gt),
        ("gte", Cmp::Gte),
        ("lt", Cmp::Lt),
        ("lte", Cmp::Lte),
    ] {
        if has(name) {
            return match item.value {
                Value::Int(i) => Ok(Test::Number(cmp, i as f64)),
                Value::Float(f) => Ok(Test::Number(cmp, f)),
                _ => Err(problem(format!("`{name}` takes a number, found `{text}`"))),
            };
        }
    }
    if has("cidr") {
        return text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
            .map(|n| Test::Cidr(vec![n]))
            .map_err(|_| problem(format!("`{text}` is not a network like 10.0.0.0/8")));
    }
    if has("fieldref") {
        return Ok(Test::FieldRef {
            at: locate(&text),
            how: placement,
            cased,
        });
    }
    if has("re") {
        return RegexBuilder::new(&text)
            .case_insensitive(has("i") || has("ignorecase"))
            .multi_line(has("m") || has("multiline"))
            .dot_matches_new_line(has("s") || has("dotall"))
            .build()
            .map(Test::Pattern)
            .map_err(|e| {
                let reason = e.to_string();
                let reason = reason.lines().last().unwrap_or("").trim().to_string();
                problem(format!("invalid regex `{text}`: {reason}"))
            });
    }
    // Encodings turn one value into the alternatives a log could hold; each is then placed
    // like the value itself would be.
    let alternatives: Vec<Glob> = if has("base64") || has("base64offset") {
        let bytes = encode_text(&text, mods);
        let encoded = if has("base64offset") {
            base64_offsets(&bytes)
        } else {
            vec![STANDARD.encode(&bytes)]
        };
        // An encoded value is literal text: its wildcards were encoded with it.
        encoded.into_iter().map(|s| Glob::literal(&s)).collect()
    } else if has("windash") {
        windash(&text).iter().map(|s| Glob::parse(s)).collect()
    } else {
        vec![Glob::parse(&text)]
    };
    let base64offset = has("base64offset");
    if let [one] = alternatives.as_slice()
        && placement == Placement::Whole
        && !one.wild
    {
        return Ok(if cased {
            Test::EqualCased(one.text.clone())
        } else {
            Test::Equal(one.text.to_lowercase())
        });
    }
    let body = alternatives
        .iter()
        .map(|g| g.regex.clone())
        .collect::<Vec<_>>()
        .join("|");
    // base64offset strings are fragments of a longer encoding: found inside a value.
    let (start, end) = match (placement, base64offset) {
        (_, true) | (Placement::Contains, _) => ("", ""),
        (Placement::Start, _) => ("^", ""),
        (Placement::End, _) => ("", "$"),
        (Placement::Whole, _) => ("^", "$"),
    };
    RegexBuilder::new(&format!("{start}(?:{body}){end}"))
        .case_insensitive(!cased)
        .dot_matches_new_line(true)
        .build()
        .map(Test::Pattern)
        .map_err(|e| problem(format!("cannot compile `{text}`: {e}")))
}

/// A Sigma string: its regex form and, when it has no wildcard, its literal text.
struct Glob {
    regex: String,
    text: String,
    wild: bool,
}

impl Glob {
    fn literal(s: &str) -> Glob {
        Glob {
            regex: regex::escape(s),
            text: s.to_string(),
            wild: false,
        }
    }

    /// `*` any run, `?` one character; `\*`, `\?`, `\\` literal; another `\` is itself.
    fn parse(s: &str) -> Glob {
        let mut regex = String::new();
        let mut text = String::new();
        let mut wild = false;
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if matches!(chars.peek(), Some('*' | '?' | '\\')) => {
                    let lit = chars.next().expect("peeked");
                    regex.push_str(&regex::escape(&lit.to_string()));
                    text.push(lit);
                }
                '*' => {
                    regex.push_str(".*");
                    wild = true;
                }
                '?' => {
                    regex.push('.');
                    wild = true;
                }
                other => {
                    regex.push_str(&regex::escape(&other.to_string()));
                    text.push(other);
                }
            }
        }
        Glob { regex, text, wild }
    }
}

/// A Sigma string written back as pySigma writes it: wildcards bare, a literal `*` or `?`
/// escaped, a literal backslash doubled only where it would otherwise escape what follows.
/// Two strings with the same canonical form are the same pattern.
pub fn canonical(s: &str) -> String {
    #[derive(Clone, Copy, PartialEq)]
    enum Tok {
        Lit(char),
        Wild(char),
    }
    let mut toks = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        toks.push(match c {
            '\\' if matches!(chars.peek(), Some('*' | '?' | '\\')) => {
                Tok::Lit(chars.next().expect("peeked"))
            }
            '*' | '?' => Tok::Wild(c),
            other => Tok::Lit(other),
        });
    }
    let mut out = String::new();
    for (i, t) in toks.iter().enumerate() {
        match *t {
            Tok::Wild(c) => out.push(c),
            Tok::Lit(c @ ('*' | '?')) => {
                out.push('\\');
                out.push(c);
            }
            Tok::Lit('\\') => {
                let special = matches!(
                    toks.get(i + 1),
                    Some(Tok::Wild(_) | Tok::Lit('*' | '?' | '\\'))
                );
                out.push_str(if special { "\\\\" } else { "\\" });
            }
            Tok::Lit(c) => out.push(c),
        }
    }
    out
}

/// The bytes a value is encoded from: UTF-8, or UTF-16 with `utf16le`/`wide`/`utf16be`/`utf16`.
fn encode_text(text: &str, mods: &[&str]) -> Vec<u8> {
    let has = |m: &str| mods.contains(&m);
    if has("utf16le") || has("wide") {
        text.encode_utf16().flat_map(u16::to_le_bytes).collect()
    } else if has("utf16be") {
        text.encode_utf16().flat_map(u16::to_be_bytes).collect()
    } else if has("utf16") {
        // With a byte-order mark, little-endian as Windows writes it.
        [0xFF, 0xFE]
            .into_iter()
            .chain(text.encode_utf16().flat_map(u16::to_le_bytes))
            .collect()
    } else {
        text.as_bytes().to_vec()
    }
}

/// The three encodings of `bytes` at each offset inside a longer base64 text, trimmed to the
/// characters that do not depend on the neighbours (Sigma's definition).
fn base64_offsets(bytes: &[u8]) -> Vec<String> {
    const START: [usize; 3] = [0, 2, 3];
    const END: [usize; 3] = [0, 3, 2];
    (0..3)
        .map(|i| {
            let mut shifted = vec![b' '; i];
            shifted.extend_from_slice(bytes);
            let encoded = STANDARD.encode(&shifted);
            let end = encoded.len() - END[(bytes.len() + i) % 3];
            encoded[START[i]..end].to_string()
        })
        .collect()
}

/// `windash`: a `-` or `/` that starts a command-line switch (at the start or after a
/// non-word character, before a word character), in every spelling Windows accepts.
fn windash(text: &str) -> Vec<String> {
    const DASHES: [char; 5] = ['-', '/', '\u{2013}', '\u{2014}', '\u{2015}'];
    let chars: Vec<char> = text.chars().collect();
    let word = |c: Option<&char>| c.is_some_and(|c| c.is_alphanumeric() || *c == '_');
    let mut out: Vec<String> = DASHES
        .iter()
        .map(|d| {
            (0..chars.len())
                .map(|i| {
                    let switch = (chars[i] == '-' || chars[i] == '/')
                        && !word(i.checked_sub(1).and_then(|p| chars.get(p)))
                        && word(chars.get(i + 1));
                    if switch { *d } else { chars[i] }
                })
                .collect()
        })
        .collect();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64offset_gives_sigmas_three_fragments() {
        // pySigma's documented example: `/bin/bash` in any position.
        assert_eq!(
            base64_offsets(b"/bin/bash"),
            ["L2Jpbi9iYXNo", "9iaW4vYmFza", "vYmluL2Jhc2"]
        );
    }

    #[test]
    fn globs_escape_and_wildcards() {
        let g = Glob::parse(r"a\*b*c?\\d\e");
        assert_eq!(g.regex, r"a\*b.*c.\\d\\e");
        assert!(g.wild);
        let g = Glob::parse(r"C:\Windows");
        assert_eq!(g.text, r"C:\Windows");
        assert!(!g.wild);
    }

    #[test]
    fn canonical_strings_escape_only_what_needs_it() {
        assert_eq!(canonical(r"C:\Windows\\*star"), r"C:\Windows\\*star");
        assert_eq!(canonical(r"C:\Windows\*star"), r"C:\Windows\*star");
        assert_eq!(canonical(r"a\\b"), r"a\b");
        assert_eq!(canonical("user.*.st?rt"), "user.*.st?rt");
    }

    #[test]
    fn windash_spells_every_dash() {
        let all = windash("-enc");
        assert_eq!(all.len(), 5);
        assert!(all.contains(&"/enc".to_string()));
        assert!(all.contains(&"\u{2014}enc".to_string()));
    }
}
