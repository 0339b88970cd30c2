//! The evasive-attack weeks of issue 17 (`authwatch::synth::evasive`): as JSON lines for the
//! demo, or run through the default pack to measure the alert volume on benign weeks.
//!
//! ```sh
//! cargo run --release --example evasive -- demo | cargo run --release -- replay -   # demo/README.md
//! cargo run --release --example evasive -- benign 3000 14 > /tmp/benign.jsonl     # users, days
//! cargo run --release --example evasive -- attacked 3000 2 > /tmp/attacked.jsonl  # users, weeks
//! cargo run --release --example evasive -- rate 3000 4                            # users, weeks
//! ```
//!
//! `rate` prints, for every rule of the pack, its alerts per 1,000 users per day on benign
//! weeks (ordinary days plus an expiry morning, an outage and a re-enrolment each week), then
//! the alerts per rule of the same weeks with the five attacks added.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use authwatch::engine::{Engine, EngineOptions};
use authwatch::synth::evasive::{Org, Scenario};
use authwatch::synth::to_json_lines;

/// The demo: nine days of 300 people (a week to learn, then Monday and Tuesday with every
/// attack and every benign flood).
fn demo() -> Org {
    Org {
        seed: 17,
        users: 300,
        days: 9,
        scenarios: vec![
            (Scenario::SlowSpray, 7),
            (Scenario::ExpiryMorning, 7),
            (Scenario::IdpOutage, 7),
            (Scenario::ProxyStuffing, 8),
            (Scenario::SlowMfaFatigue, 8),
            (Scenario::SessionHijack, 8),
            (Scenario::SlowBruteForce, 8),
            (Scenario::MfaReenrolment, 8),
        ],
    }
}

/// Benign floods on the Tuesday, Wednesday and Thursday of every week.
fn weekly_floods(weeks: u32) -> Vec<(Scenario, u32)> {
    (0..weeks)
        .flat_map(|w| {
            Scenario::BENIGN
                .iter()
                .enumerate()
                .map(move |(i, &s)| (s, w * 7 + 1 + i as u32))
        })
        .collect()
}

fn benign_weeks(users: u32, weeks: u32) -> Org {
    Org {
        seed: 17,
        users,
        days: weeks * 7,
        scenarios: weekly_floods(weeks),
    }
}

/// The same weeks with the five attacks in the second week, once the baselines are learned.
fn attacked(mut org: Org) -> Org {
    org.scenarios.extend(
        Scenario::ATTACKS
            .iter()
            .enumerate()
            .map(|(i, &s)| (s, 8 + i as u32 % 3)),
    );
    org
}

fn per_rule(org: &Org) -> (usize, BTreeMap<String, u64>) {
    let rules = authwatch::rule::load_dir(Path::new("rules"))
        .unwrap_or_else(|d| panic!("the pack loads: {d:?}"))
        .enabled();
    let mut counts: BTreeMap<String, u64> = rules.iter().map(|r| (r.id.clone(), 0)).collect();
    let events = org.generate();
    let mut engine = Engine::new(rules, &EngineOptions::default());
    let mut alerts = Vec::new();
    for e in &events {
        engine.process(e.clone(), &mut alerts);
    }
    engine.flush(&mut alerts);
    for a in &alerts {
        *counts.entry(a.rule.clone()).or_default() += 1;
    }
    (events.len(), counts)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: u32| -> anyhow::Result<u32> {
        Ok(args.get(i).map_or(Ok(default), |a| a.parse())?)
    };
    match args.first().map(String::as_str) {
        Some("demo") => std::io::stdout().write_all(&to_json_lines(&demo().generate()))?,
        Some("benign") => {
            let (users, days) = (number(1, 3_000)?, number(2, 14)?);
            let org = Org {
                seed: 17,
                users,
                days,
                scenarios: weekly_floods(days.div_ceil(7)),
            };
            std::io::stdout().write_all(&to_json_lines(&org.generate()))?;
        }
        Some("attacked") => {
            let (users, weeks) = (number(1, 3_000)?, number(2, 2)?.max(2));
            let org = attacked(benign_weeks(users, weeks));
            std::io::stdout().write_all(&to_json_lines(&org.generate()))?;
        }
        Some("rate") => {
            let (users, weeks) = (number(1, 3_000)?, number(2, 4)?.max(2));
            let benign = benign_weeks(users, weeks);
            let (events, quiet) = per_rule(&benign);
            let (_, loud) = per_rule(&attacked(benign));
            let user_days = f64::from(users) * f64::from(weeks * 7) / 1_000.0;
            println!(
                "{events} benign events, {users} users, {} days, floods: {:?}",
                weeks * 7,
                Scenario::BENIGN.map(Scenario::name)
            );
            println!(
                "{:<34} {:>22} {:>18}",
                "rule", "benign /1k users/day", "attacked weeks"
            );
            for (rule, n) in &quiet {
                println!(
                    "{rule:<34} {:>22.3} {:>18}",
                    *n as f64 / user_days,
                    loud.get(rule).copied().unwrap_or(0)
                );
            }
            let total: u64 = quiet.values().sum();
            println!("total benign alerts: {total}");
        }
        _ => anyhow::bail!(
            "usage: evasive demo | benign USERS DAYS | attacked USERS WEEKS | rate USERS WEEKS"
        ),
    }
    Ok(())
}
