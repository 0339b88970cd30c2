//! Issue 17: the default pack catches the evasive attacks (rotating proxies, low and slow,
//! stolen sessions, slow MFA fatigue) and stays silent on busy but benign days (a
//! password-expiry morning behind the NAT, an identity-provider outage, a help-desk MFA
//! re-enrolment), on generated weeks of an organisation: 3,000 people for the benign weeks
//! (1,200 of them behind the office NAT), 1,000 for the attacked ones.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use authwatch::engine::{Alert, Engine, EngineOptions};
use authwatch::event::Event;
use authwatch::rule;
use authwatch::state::StateWrites;
use authwatch::synth::evasive::{Org, Scenario, is_attacker_ip};

use crate::support::rules_dir;

const USERS: u32 = 1_000;
const DAYS: u32 = 14;
/// A large office NAT is the hard negative of the per-network rules: a dozen typos an hour.
const BENIGN_USERS: u32 = 3_000;
const BENIGN_DAYS: u32 = 11;

/// Benign floods on working days of the second week (the learned baselines are in place).
fn benign_floods() -> Vec<(Scenario, u32)> {
    vec![
        (Scenario::ExpiryMorning, 8),
        (Scenario::IdpOutage, 9),
        (Scenario::MfaReenrolment, 10),
    ]
}

/// Every attack, each on its own day of the second week, among the benign floods.
fn attacks() -> Vec<(Scenario, u32)> {
    let mut all = benign_floods();
    all.extend([
        (Scenario::ProxyStuffing, 8),
        (Scenario::SlowSpray, 9),
        (Scenario::SlowBruteForce, 10),
        (Scenario::SessionHijack, 11),
        (Scenario::SlowMfaFatigue, 11),
    ]);
    all
}

fn run(events: &[Event]) -> Vec<Alert> {
    let set = rule::load_dir(&rules_dir()).expect("the default pack loads");
    let mut engine = Engine::new(set.enabled(), &EngineOptions::default());
    let mut out = Vec::new();
    for e in events {
        engine.process(e.clone(), &mut out);
    }
    engine.flush(&mut out);
    out
}

fn org(scenarios: Vec<(Scenario, u32)>) -> Org {
    Org {
        seed: 17,
        users: USERS,
        days: DAYS,
        scenarios,
    }
}

/// The two weeks with every attack, and their alerts (generated once for all tests).
fn attacked() -> &'static (Vec<Event>, Vec<Alert>) {
    static RUN: OnceLock<(Vec<Event>, Vec<Alert>)> = OnceLock::new();
    RUN.get_or_init(|| {
        let events = org(attacks()).generate();
        let alerts = run(&events);
        (events, alerts)
    })
}

/// An alert is about an attack when its evidence holds an event from an attacker's address.
fn about_attack(a: &Alert) -> bool {
    a.evidence
        .iter()
        .any(|e| e.ip.is_some_and(|ip| is_attacker_ip(&ip)))
}

fn fired(rule: &str) -> Vec<&'static Alert> {
    attacked().1.iter().filter(|a| a.rule == rule).collect()
}

#[test]
fn two_benign_weeks_with_an_expiry_morning_an_outage_and_a_reenrolment_raise_no_alert() {
    let events = Org {
        users: BENIGN_USERS,
        days: BENIGN_DAYS,
        ..org(benign_floods())
    }
    .generate();
    // The floods are there: 150 expired-password failures from the one NAT address.
    let expired = events
        .iter()
        .filter(|e| e.reason.as_deref() == Some("expired"))
        .count();
    assert_eq!(expired, 150);
    let alerts = run(&events);
    let per_rule: BTreeMap<&str, usize> = alerts.iter().fold(BTreeMap::new(), |mut m, a| {
        *m.entry(a.rule.as_str()).or_default() += 1;
        m
    });
    assert!(
        alerts.is_empty(),
        "{} events over {BENIGN_DAYS} days of {BENIGN_USERS} users raised {per_rule:?}: {:#?}",
        events.len(),
        alerts.iter().map(|a| &a.summary).collect::<Vec<_>>()
    );
}

#[test]
fn every_alert_in_the_attacked_weeks_is_about_an_attack() {
    let (_, alerts) = attacked();
    let false_alerts: Vec<(&str, &str)> = alerts
        .iter()
        .filter(|a| !about_attack(a))
        .map(|a| (a.rule.as_str(), a.summary.as_str()))
        .collect();
    assert!(false_alerts.is_empty(), "{false_alerts:#?}");
    let rules: BTreeSet<&str> = alerts.iter().map(|a| a.rule.as_str()).collect();
    for (scenario, _) in attacks() {
        for want in scenario.expected_rules() {
            assert!(
                rules.contains(want),
                "{} missed: fired {rules:?}",
                scenario.name()
            );
        }
    }
}

#[test]
fn credential_stuffing_through_residential_proxies_is_caught_per_tenant_and_per_network_operator() {
    let tenant = fired("credential-stuffing-tenant");
    assert_eq!(tenant.len(), 1, "one alert for the campaign");
    assert!(tenant[0].count >= 100 && tenant[0].summary.contains("estimated"));
    // 8 proxy networks, 50 usernames each: every one of them crosses 25.
    let asns: BTreeSet<String> = fired("credential-stuffing-asn")
        .iter()
        .map(|a| a.group["geo.asn"].to_string())
        .collect();
    assert_eq!(asns.len(), 8, "{asns:?}");
    // Each proxy tried twice: no per-ip rule could see it.
    assert!(fired("credential-stuffing-ip").is_empty());
    // In the second week, the learned level of the tenant says it too.
    let spike = fired("credential-failure-spike-tenant");
    assert_eq!(spike.len(), 1, "{spike:?}");
    assert!(spike[0].summary.contains("usually"), "{}", spike[0].summary);
}

#[test]
fn a_low_and_slow_spray_is_caught_per_network_within_the_day() {
    let spray = fired("password-spray-network");
    let networks: BTreeSet<String> = spray
        .iter()
        .map(|a| a.group["ip/24"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        networks,
        BTreeSet::from([
            "198.18.200.0/24".to_string(),
            "198.19.201.0/24".to_string(),
            "203.0.113.0/24".to_string()
        ])
    );
    assert!(
        spray
            .iter()
            .all(|a| a.summary.contains("none followed by login.success"))
    );
    // A handful an hour from rotating addresses: the hourly per-ip rule saw nothing.
    assert!(fired("password-spray-ip").is_empty());
}

#[test]
fn a_slow_brute_force_over_six_hours_is_caught_once() {
    let slow = fired("slow-brute-force-user");
    assert_eq!(slow.len(), 1, "{slow:?}");
    assert_eq!(slow[0].count, 20);
    assert!(
        fired("brute-force-user").is_empty(),
        "never ten in fifteen minutes"
    );
}

#[test]
fn a_hijacked_session_alerts_once_and_phones_moving_to_cellular_do_not() {
    let hijack = fired("session-hijack");
    assert_eq!(hijack.len(), 1, "{hijack:?}");
    assert_eq!(hijack[0].group["session"], "s-hijacked-7");
    assert!(
        hijack[0]
            .summary
            .contains("geo.country=SG (seen before: DE)"),
        "{}",
        hijack[0].summary
    );
    // The weeks hold sessions whose network changed (wifi to cellular) without an alert.
    let (events, _) = attacked();
    let mut networks: BTreeMap<&str, BTreeSet<u32>> = BTreeMap::new();
    for e in events {
        if let (Some(s), Some(asn)) = (&e.session, e.geo.as_ref().and_then(|g| g.asn)) {
            networks.entry(s.as_str()).or_default().insert(asn);
        }
    }
    let moved = networks.values().filter(|asns| asns.len() > 1).count();
    assert!(moved > 10, "{moved} sessions changed network");
}

#[test]
fn slow_mfa_fatigue_ending_in_an_approval_is_caught() {
    let slow = fired("mfa-fatigue-slow");
    assert_eq!(slow.len(), 1, "{slow:?}");
    assert_eq!(slow[0].group["user"], "u-11");
    // Paced under the fast rules.
    assert!(fired("mfa-push-flood").is_empty() && fired("mfa-fatigue-success").is_empty());
}

/// Bucketed counts, sketches, per-session baselines and learned levels are engine state like
/// any other: a restart from a checkpoint in the middle of the attacked week gives the alerts
/// of an uninterrupted run.
#[test]
fn the_new_kinds_state_survives_a_restart_mid_attack() {
    let (events, want) = attacked();
    let set = rule::load_dir(&rules_dir()).unwrap();
    let options = EngineOptions::default();
    // Restart at 04:00 on day 9: inside the spray (which began at midnight) and after the
    // stuffing; the hijack and the fatigue are still to come.
    let cut = authwatch::synth::evasive::MONDAY_MS + 9 * 86_400_000 + 4 * 3_600_000;
    let split = events.partition_point(|e| e.ts < cut);
    let mut first = Engine::new(set.enabled(), &options);
    let mut got = Vec::new();
    let mut stored: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let commit = |engine: &mut Engine, stored: &mut BTreeMap<Vec<u8>, Vec<u8>>| {
        let mut w = StateWrites::default();
        engine.checkpoint(&mut w);
        w.resolve();
        for key in w.deletes {
            stored.remove(&key);
        }
        stored.extend(w.puts);
    };
    for (i, e) in events[..split].iter().enumerate() {
        first.process(e.clone(), &mut got);
        if i % 20_000 == 0 {
            commit(&mut first, &mut stored);
        }
    }
    commit(&mut first, &mut stored);
    drop(first);
    let mut second = Engine::new(set.enabled(), &options);
    let report = second.restore(stored).unwrap();
    assert_eq!(report.dropped, 0, "{report:?}");
    for e in &events[split..] {
        second.process(e.clone(), &mut got);
    }
    second.flush(&mut got);
    let ids = |alerts: &[Alert]| alerts.iter().map(|a| a.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&got), ids(want));
    assert!(got.iter().any(|a| a.rule == "password-spray-network"));
}
