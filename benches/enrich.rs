//! GeoIP enrichment and baseline updates: a lookup answered by the per-ip cache, one that
//! misses it and decodes the City and ASN records, and a `new_value` baseline update (known
//! value, new value, and through the whole engine with the three geo rules of the pack).
//! Run with `cargo bench --bench enrich`; criterion's elements/s are events/s.
//!
//! Lookups run against a generated City database of 50,000 networks; set
//! `AUTHWATCH_BENCH_GEOIP_CITY` to the path of a real GeoLite2/GeoIP2 City file to measure
//! on real records (their size and shape change the decoding cost).

/// The allocator the `authwatch` binary uses, so the figures are the daemon's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "../tests/common/geodb.rs"]
mod geodb;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use authwatch::config::GeoipConfig;
use authwatch::engine::{BaselineGroup, Engine, EngineOptions, ValueId};
use authwatch::enrich::{Database, DbKind, Enricher, GeoIp, Verify};
use authwatch::event::{Event, EventType, Field, Geo};
use authwatch::rule::{self, NewValue};

/// Networks in the generated City database.
const NETWORKS: u32 = 50_000;
/// Distinct ips of the miss benchmark.
const MISS_IPS: u32 = 20_000;
/// Distinct ips of the hit benchmark: a working set well inside the cache.
const HIT_IPS: u32 = 1_000;

fn real_city_db() -> Option<PathBuf> {
    std::env::var_os("AUTHWATCH_BENCH_GEOIP_CITY").map(PathBuf::from)
}

fn databases(dir: &Path) -> (PathBuf, PathBuf) {
    let (_, asn) = geodb::write_all(dir);
    let city = real_city_db().unwrap_or_else(|| {
        let city = dir.join("Big-City.mmdb");
        std::fs::write(&city, geodb::big_city_db(NETWORKS)).expect("write the database");
        city
    });
    (city, asn)
}

/// Addresses to look up: inside the generated networks, or spread over public IPv4 space
/// for a real file.
fn ips(n: u32) -> Vec<IpAddr> {
    let real = real_city_db().is_some();
    (0..n)
        .map(|i| {
            let v4 = if real {
                // A multiplicative walk over 1.0.0.0..224.0.0.0.
                Ipv4Addr::from(0x0100_0000 + i.wrapping_mul(2_654_435_761) % 0xdf00_0000)
            } else {
                Ipv4Addr::from(u32::from(geodb::bench_ip(i % NETWORKS)) | 7)
            };
            IpAddr::V4(v4)
        })
        .collect()
}

fn event_from(ip: IpAddr) -> Event {
    let mut e = Event::new(0, EventType::LoginSuccess);
    e.ip = Some(ip);
    e
}

fn enrichment(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (city, asn) = databases(dir.path());
    let config = GeoipConfig {
        city: Some(city.clone()),
        asn: Some(asn.clone()),
    };
    let mut group = c.benchmark_group("enrich");
    group.sample_size(20);

    let hits: Vec<Event> = ips(HIT_IPS).into_iter().map(event_from).collect();
    let mut warm = Enricher::open(&config, Verify::Metadata).expect("open");
    for e in &hits {
        warm.enrich(&mut e.clone());
    }
    group.throughput(Throughput::Elements(hits.len() as u64));
    group.bench_function("cache_hit", |b| {
        b.iter_batched_ref(
            || hits.clone(),
            |events| events.iter_mut().for_each(|e| warm.enrich(e)),
            BatchSize::LargeInput,
        )
    });

    let misses: Vec<Event> = ips(MISS_IPS).into_iter().map(event_from).collect();
    let open = |kind, path: &Path| Some(Database::open(kind, path, Verify::Metadata).unwrap());
    // A cache of one entry per generation: every lookup decodes both databases.
    let mut cold = Enricher::with_geoip(GeoIp::with_cache(
        open(DbKind::City, &city),
        open(DbKind::Asn, &asn),
        1,
    ));
    group.throughput(Throughput::Elements(misses.len() as u64));
    group.bench_function("cache_miss", |b| {
        b.iter_batched_ref(
            || misses.clone(),
            |events| events.iter_mut().for_each(|e| cold.enrich(e)),
            BatchSize::LargeInput,
        )
    });
    let mut sample = misses.clone();
    sample.iter_mut().for_each(|e| cold.enrich(e));
    let located = sample.iter().filter(|e| e.geo.is_some()).count();
    eprintln!(
        "enrich/cache_miss: {located} of {} ips located",
        sample.len()
    );
    group.finish();
}

fn baselines(c: &mut Criterion) {
    let mut group = c.benchmark_group("baseline");
    let opts = NewValue {
        field: Field::parse("geo.country").expect("a field"),
        learn_for_ms: 0,
        min_history: 1,
        forget_after_ms: 90 * 86_400_000,
    };
    let country = |c: &str| ValueId::of_text(c);
    group.bench_function("update_known_value", |b| {
        let mut g = BaselineGroup::default();
        g.observe(country("FR"), 0, &opts);
        g.observe(country("DE"), 0, &opts);
        let mut ts = 0;
        b.iter(|| {
            ts += 60_000;
            g.observe(country("DE"), ts, &opts).is_some()
        })
    });
    group.bench_function("update_new_value", |b| {
        b.iter_batched_ref(
            || {
                let mut g = BaselineGroup::default();
                g.observe(country("DE"), 0, &opts);
                g.observe(country("FR"), 1, &opts);
                g
            },
            |g| g.observe(country("BR"), 2, &opts).map(|n| n.describe()),
            BatchSize::SmallInput,
        )
    });

    // The three geo rules of the pack through the whole engine (reorder, group keys, table,
    // baselines, travel): 20,000 users with eight days of logins, then one more login each.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let geo_rules = ["new-country-login", "new-device-login", "impossible-travel"];
    let rules: Vec<rule::Rule> = rule::load_dir(&dir)
        .expect("the pack loads")
        .enabled()
        .into_iter()
        .filter(|r| geo_rules.contains(&r.id.as_str()))
        .collect();
    let users = 20_000;
    let history = logins(users, 0..8);
    let next = logins(users, 8..9);
    group.throughput(Throughput::Elements(next.len() as u64));
    group.sample_size(10);
    group.bench_function("engine_geo_rules_per_login", |b| {
        b.iter_batched(
            || {
                let mut engine = Engine::new(rules.clone(), &EngineOptions::default());
                let mut alerts = Vec::new();
                history
                    .iter()
                    .for_each(|e| engine.process(e.clone(), &mut alerts));
                (engine, next.clone())
            },
            |(mut engine, events)| {
                let mut alerts = Vec::new();
                events
                    .into_iter()
                    .for_each(|e| engine.process(e, &mut alerts));
                engine.flush(&mut alerts);
                // Returned, so that freeing the engine is not timed.
                (engine, alerts)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

/// A daily login of each of `users` users from Berlin on each of `days`.
fn logins(users: u32, days: std::ops::Range<i64>) -> Vec<Event> {
    let place = geodb::BERLIN;
    let (lat, lon, accuracy) = place.location.expect("located");
    let mut out = Vec::new();
    for day in days {
        for u in 0..users {
            // A millisecond apart: a busy tenant's morning, not one login a second.
            let ts = 1_772_352_000_000 + day * 86_400_000 + i64::from(u);
            let mut e = Event::new(ts, EventType::LoginSuccess);
            e.tenant = Some("acme".into());
            e.user = Some(format!("u-{u}").into());
            e.device = Some(format!("laptop-{u}").into());
            e.geo = Some(Box::new(Geo {
                country: Some(place.country.into()),
                city: place.city.map(Into::into),
                lat: Some(lat),
                lon: Some(lon),
                accuracy_km: Some(f64::from(accuracy)),
                ..Geo::default()
            }));
            out.push(e.with_computed_fingerprint());
        }
    }
    out
}

criterion_group!(enrich, enrichment, baselines);
criterion_main!(enrich);
