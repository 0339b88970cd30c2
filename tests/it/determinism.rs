//! Alert ids depend only on the events: the same stream gives the same ids, and a stream
//! shuffled within the lateness gives exactly the alerts of the sorted stream.

use std::collections::BTreeSet;

use authwatch::engine::{Alert, Engine, EngineOptions};
use authwatch::event::Event;
use authwatch::rule;
use authwatch::synth::{Rng, Traffic};

use crate::support::rules_dir;

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

fn ids(alerts: &[Alert]) -> Vec<String> {
    alerts.iter().map(|a| a.id.clone()).collect()
}

/// Reorders events so that none arrives more than `max_delay_ms` (event time) after an event
/// that is newer than it: each gets a random delay and they are sorted by delayed time.
fn shuffle_within(events: &[Event], max_delay_ms: i64, seed: u64) -> Vec<Event> {
    let mut rng = Rng::new(seed);
    let mut keyed: Vec<(i64, Event)> = events
        .iter()
        .map(|e| (e.ts + rng.below(max_delay_ms as u64) as i64, e.clone()))
        .collect();
    keyed.sort_by_key(|(k, _)| *k);
    keyed.into_iter().map(|(_, e)| e).collect()
}

fn stream() -> Vec<Event> {
    // Dense traffic so that many events share a timestamp and ties must be broken stably.
    let traffic = Traffic {
        mean_gap_ms: 3,
        attack_every: 300,
        ..Traffic::default()
    };
    let mut events = traffic.generate(60_000);
    for e in &mut events {
        e.ts -= e.ts % 1_000; // whole seconds, as many IdPs log
    }
    events
}

#[test]
fn a_stream_shuffled_within_sixty_seconds_gives_the_same_alert_ids() {
    let sorted = stream();
    let expected = ids(&run(&sorted));
    assert!(
        expected.len() > 50,
        "the stream must hold attacks, got {} alerts",
        expected.len()
    );
    for seed in [1, 2, 3] {
        let shuffled = shuffle_within(&sorted, 59_999, seed);
        assert_ne!(
            shuffled.iter().map(|e| e.fingerprint).collect::<Vec<_>>(),
            sorted.iter().map(|e| e.fingerprint).collect::<Vec<_>>(),
            "the shuffle must change the order"
        );
        assert_eq!(ids(&run(&shuffled)), expected, "seed {seed}");
    }
}

#[test]
fn events_later_than_the_lateness_are_counted_and_dropped() {
    let sorted = stream();
    let mut late = sorted.clone();
    // Move one event far back in arrival order: three minutes behind newer events.
    let victim = late.remove(100);
    let pos = late
        .iter()
        .position(|e| e.ts > victim.ts + 180_000)
        .unwrap();
    late.insert(pos, victim);
    let set = rule::load_dir(&rules_dir()).unwrap();
    let mut engine = Engine::new(set.enabled(), &EngineOptions::default());
    let mut out = Vec::new();
    for e in &late {
        engine.process(e.clone(), &mut out);
    }
    engine.flush(&mut out);
    assert_eq!(engine.stats().late, 1);
}

#[test]
fn the_same_event_id_twice_is_one_event() {
    let sorted = stream();
    let mut doubled = Vec::new();
    for e in &sorted {
        doubled.push(e.clone());
        doubled.push(e.clone());
    }
    let a = run(&sorted);
    let b = run(&doubled);
    assert_eq!(ids(&a), ids(&b));
    let counts: BTreeSet<u64> = b.iter().map(|x| x.count).collect();
    assert!(!counts.is_empty());
}
