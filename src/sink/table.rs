//! Alerts as a fixed-width table for a person at a terminal (`--output table`): one row per
//! alert under a header, the columns a responder scans first (when, how bad, which rule, whom,
//! which runbook) and the summary last, unbounded.

use std::fmt::Write;

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use super::Record;

/// Column widths in terminal cells. The rule column fits the longest rule id of the pack;
/// longer values are cut with an ellipsis, the summary never is.
const TIME: usize = 19;
const SEVERITY: usize = 8;
const RULE: usize = 31;
const GROUP: usize = 40;
const RUNBOOK: usize = 22;
const GAP: &str = "  ";

/// The header line (with its newline).
pub fn header() -> String {
    let mut out = String::new();
    for (name, width) in [
        ("TIME (UTC)", TIME),
        ("SEVERITY", SEVERITY),
        ("RULE", RULE),
        ("GROUP", GROUP),
        ("RUNBOOK", RUNBOOK),
    ] {
        out.push_str(&fit(name, width));
        out.push_str(GAP);
    }
    out.push_str("SUMMARY\n");
    out
}

/// One alert's row (with its newline).
pub fn row(alert: &Record) -> String {
    let time = chrono::DateTime::parse_from_rfc3339(&alert.ts)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| alert.ts.clone());
    let group = alert.group_text();
    let mut out = String::new();
    for (value, width) in [
        (time.as_str(), TIME),
        (alert.severity.as_str(), SEVERITY),
        (alert.rule.as_str(), RULE),
        (group.as_str(), GROUP),
        (alert.runbook_name().unwrap_or("-"), RUNBOOK),
    ] {
        out.push_str(&fit(&printable(value), width));
        out.push_str(GAP);
    }
    out.push_str(&printable(&alert.summary));
    out.push('\n');
    out
}

/// Control characters escaped: the values come from the events, and an attacker's username
/// must not move the cursor, recolour the terminal or hide a row.
fn printable(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `s` padded to `width` cells, or cut to `width - 1` cells and an ellipsis.
fn fit(s: &str, width: usize) -> String {
    let w = s.width();
    if w <= width {
        return format!("{s}{}", " ".repeat(width - w));
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let cw = c.width().unwrap_or(0);
        if used + cw > width - 1 {
            break;
        }
        out.push(c);
        used += cw;
    }
    out.push('…');
    out.push_str(&" ".repeat(width - 1 - used));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::record::tests::sample;

    #[test]
    fn a_row_aligns_under_the_header() {
        let h = header();
        let r = row(&sample());
        assert!(r.starts_with("2026-03-02 07:42:03  high      brute-force-user "));
        let at = |line: &str, col: &str| line.find(col).unwrap();
        assert_eq!(at(&h, "SUMMARY"), at(&r, "10 login.failure"));
        assert_eq!(at(&h, "RUNBOOK"), at(&r, "account-takeover"));
        assert_eq!(at(&h, "GROUP"), at(&r, "tenant=acme"));
    }

    #[test]
    fn every_rule_id_of_the_pack_fits_its_column() {
        let rules = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        for entry in std::fs::read_dir(&rules).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
            for id in text.lines().filter_map(|l| l.strip_prefix("id: ")) {
                assert!(
                    id.trim().width() <= RULE,
                    "`{id}` is wider than {RULE} cells"
                );
            }
        }
    }

    #[test]
    fn long_and_wide_values_are_cut_to_their_cells() {
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("ab", 4), "ab  ");
        // Two cells a character: three fit in 7 cells beside the ellipsis.
        let cut = fit("日本語日本語", 7);
        assert_eq!(cut.width(), 7);
        assert!(cut.starts_with("日本語…"));
    }

    #[test]
    fn control_characters_are_escaped_not_printed() {
        let mut a = sample();
        a.summary = "x\u{1b}[2J\rhidden".into();
        a.group.insert("username".into(), "evil\u{7}".into());
        let r = row(&a);
        assert!(
            !r.trim_end_matches('\n').chars().any(char::is_control),
            "{r:?}"
        );
        assert!(r.contains("x\\u{1b}[2J\\rhidden"));
    }
}
