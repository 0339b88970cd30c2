//! Throughput of each stage on synthetic traffic with the whole default pack loaded:
//! decoding JSON lines, the engine alone, and both together; of each provider format's
//! normaliser on its attack fixture (`normalize/<format>`); and of each rule kind alone on two
//! days of an organisation's traffic (`kinds/<kind>`), with the memory a group of that kind
//! costs, printed once. Run with `cargo bench`; criterion prints events/s (its "elements/s").

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicIsize, Ordering};

/// The allocator the `authwatch` binary uses, so the figures are the daemon's, counting the
/// bytes live so that a kind's memory per group can be measured.
#[global_allocator]
static GLOBAL: Counting = Counting(mimalloc::MiMalloc);

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

struct Counting(mimalloc::MiMalloc);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { self.0.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { self.0.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { self.0.realloc(ptr, layout, new_size) }
    }
}

use std::path::Path;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use authwatch::engine::{Engine, EngineOptions};
use authwatch::event::{Admission, decode_line};
use authwatch::normalize::{Format, normalize};
use authwatch::pipeline::Decoder;
use authwatch::rule;
use authwatch::synth::{Traffic, to_json_lines};

/// Events per iteration: enough for windows to fill and expire as in a real stream.
const EVENTS: usize = 100_000;

fn pack() -> Vec<rule::Rule> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    rule::load_dir(&dir)
        .expect("the default pack loads")
        .enabled()
}

fn benches(c: &mut Criterion) {
    let events = Traffic::default().generate(EVENTS);
    let lines = to_json_lines(&events);
    let rules = pack();
    let options = EngineOptions::default();

    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(10);

    group.bench_function("decode", |b| {
        b.iter(|| {
            let mut ok = 0usize;
            for line in lines.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
                ok += usize::from(decode_line(line).is_ok());
            }
            ok
        })
    });

    // What the daemon's decoder does per record: decode, then the clock bound and the
    // nesting limit (a clock read and a walk of `attrs`).
    let decoder = Decoder::new(Format::Native, Admission::default());
    group.bench_function("decode_admitted", |b| {
        b.iter(|| {
            let mut ok = 0usize;
            for line in lines.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
                ok += usize::from(decoder.decode(line).is_ok());
            }
            ok
        })
    });

    group.bench_function("engine_whole_pack", |b| {
        b.iter_batched(
            || (Engine::new(rules.clone(), &options), events.clone()),
            |(mut engine, events)| {
                let mut alerts = Vec::new();
                for e in events {
                    engine.process(e, &mut alerts);
                }
                engine.flush(&mut alerts);
                alerts.len()
            },
            BatchSize::LargeInput,
        )
    });

    group.bench_function("decode_and_engine", |b| {
        b.iter_batched(
            || Engine::new(rules.clone(), &options),
            |mut engine| {
                let mut alerts = Vec::new();
                for line in lines.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
                    if let Ok(e) = decode_line(line) {
                        engine.process(e, &mut alerts);
                    }
                }
                engine.flush(&mut alerts);
                alerts.len()
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

/// Lines per iteration of a normaliser bench: each format's attack fixture, repeated.
const PROVIDER_LINES: usize = 20_000;

/// Each provider format's normaliser on the realistic records of its attack fixture (log
/// lines for Keycloak, which are parsed differently from its JSON).
fn normalisers(c: &mut Criterion) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut group = c.benchmark_group("normalize");
    group.throughput(Throughput::Elements(PROVIDER_LINES as u64));
    group.sample_size(10);
    for format in Format::all().filter(|f| *f != Format::Native) {
        let file = match format {
            Format::Keycloak => "attack.log",
            _ => "attack.jsonl",
        };
        let text = std::fs::read_to_string(fixtures.join(format.as_str()).join(file))
            .expect("every provider format has an attack fixture");
        let records: Vec<&[u8]> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::as_bytes)
            .collect();
        let lines: Vec<&[u8]> = records
            .iter()
            .copied()
            .cycle()
            .take(PROVIDER_LINES)
            .collect();
        group.bench_function(format.as_str(), |b| {
            b.iter(|| {
                lines
                    .iter()
                    .filter(|line| normalize(format, line).is_ok())
                    .count()
            })
        });
    }
    group.finish();
}

/// Okta's event types the generated Sigma rules select, cycled.
const OKTA_TYPES: [&str; 10] = [
    "user.session.start",
    "user.authentication.auth_via_mfa",
    "user.mfa.factor.deactivate",
    "user.account.reset_password",
    "app.oauth2.token.detect_reuse",
    "system.push.send_factor_verify_push",
    "user.mfa.okta_verify.deny_push",
    "user.account.update_primary_email",
    "policy.evaluate_sign_on",
    "user.account.lock",
];

/// `count` Sigma rules in the shapes SigmaHQ's identity rules take (an event type with an
/// outcome, a list of types, `contains`, a filter with `not`, `1 of`, a regex), plus one
/// `event_count` correlation per ten rules; `okta` for Okta's fields, else canonical ones.
fn sigma_rules(count: usize, okta: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..count {
        let t = OKTA_TYPES[i % OKTA_TYPES.len()];
        let (logsource, detection) = if okta {
            let detection = match i % 6 {
                0 => format!(
                    "selection:\n        eventType: {t}\n        outcome.result: FAILURE\n    condition: selection"
                ),
                1 => format!(
                    "selection:\n        eventType:\n            - {t}\n            - user.session.end\n    condition: selection"
                ),
                2 => format!(
                    "selection:\n        eventType: {t}\n        displayMessage|contains: okta\n    condition: selection"
                ),
                3 => format!(
                    "selection:\n        eventType: {t}\n    filter:\n        securityContext.isProxy: 'false'\n    condition: selection and not filter"
                ),
                4 => format!(
                    "selection_a:\n        eventType: {t}\n    selection_b:\n        client.ipAddress|cidr: 203.0.113.0/24\n    condition: 1 of selection_*"
                ),
                _ => format!(
                    "selection:\n        eventType|re: '^{}$'\n    condition: selection",
                    t.replace('.', "\\.")
                ),
            };
            ("product: okta", detection)
        } else {
            // As identity rules do: an event type and what makes it suspicious.
            let ty = authwatch::event::EventType::ALL[i % 22].as_str();
            let detection = match i % 3 {
                0 => format!(
                    "selection:\n        type: {ty}\n        reason: mfa_denied\n    condition: selection"
                ),
                1 => format!(
                    "selection:\n        type: {ty}\n        ip|cidr: 198.51.100.0/24\n    condition: selection"
                ),
                _ => format!(
                    "selection:\n        type: {ty}\n        username|startswith: admin\n    filter:\n        username|endswith: '@example.com'\n    condition: selection and not filter"
                ),
            };
            ("product: authwatch", detection)
        };
        text.push_str(&format!(
            "---\ntitle: Generated {i}\nname: sigma_{i}\nlogsource:\n    {logsource}\ndetection:\n    {detection}\nlevel: low\n"
        ));
        if i % 10 == 9 {
            let group = if okta {
                "actor.alternateId"
            } else {
                "username"
            };
            text.push_str(&format!(
                "---\ntitle: Count {i}\nname: count_{i}\ncorrelation:\n    type: event_count\n    rules: [sigma_{i}]\n    group-by: [{group}]\n    timespan: 10m\n    condition: {{gte: 5}}\n    generate: true\nlevel: high\n"
            ));
        }
    }
    std::fs::write(dir.path().join("generated.yml"), text).unwrap();
    dir
}

fn with_sigma(count: usize, okta: bool) -> Vec<rule::Rule> {
    let dir = sigma_rules(count, okta);
    let sigma = rule::load_dir(dir.path()).expect("the generated Sigma rules load");
    let mut rules = pack();
    rules.extend(sigma.enabled());
    rules
}

/// Okta's attack fixture repeated to `n` records, each with its own id and a later time.
fn okta_lines(n: usize) -> Vec<Vec<u8>> {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/okta/attack.jsonl");
    let text = std::fs::read_to_string(fixture).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (0..n)
        .map(|i| {
            let mut r = records[i % records.len()].clone();
            r["uuid"] = format!("bench-{i}").into();
            r["published"] = authwatch::event::format_ts(1_772_442_000_000 + i as i64 * 100).into();
            serde_json::to_vec(&r).unwrap()
        })
        .collect()
}

/// The engine with the pack alone, and with 80 Sigma rules (and 8 correlations) beside it:
/// on canonical events, and on Okta records normalised with their record kept for Sigma.
/// `one_rule/*`: one native `match` against the Sigma selection that says the same, in one run.
fn sigma(c: &mut Criterion) {
    let events = Traffic::default().generate(EVENTS);
    let options = EngineOptions::default();
    let mut group = c.benchmark_group("sigma");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(10);
    // As `pipeline/engine_whole_pack`: the engine and the events are made outside the timing.
    let run = |b: &mut criterion::Bencher, rules: &[rule::Rule]| {
        b.iter_batched(
            || (Engine::new(rules.to_vec(), &options), events.clone()),
            |(mut engine, events)| {
                let mut alerts = Vec::new();
                for e in events {
                    engine.process(e, &mut alerts);
                }
                engine.flush(&mut alerts);
                alerts.len()
            },
            BatchSize::LargeInput,
        )
    };
    let native_sigma = with_sigma(80, false);
    group.bench_function("engine_pack_and_80_sigma", |b| run(b, &native_sigma));

    let one_native = rule::load_file_text(
        Path::new("native.yaml"),
        "id: one\ntitle: One\nseverity: low\nkind: match\nmatch: {type: login.failure, reason: bad_password}\n",
    )
    .0;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("one.yml"),
        "title: One\nname: one\nlogsource: {product: authwatch}\ndetection:\n  selection: {type: login.failure, reason: bad_password}\n  condition: selection\n",
    )
    .unwrap();
    let one_sigma = rule::load_dir(dir.path()).unwrap().enabled();
    group.bench_function("one_rule/native_match", |b| run(b, &one_native));
    group.bench_function("one_rule/sigma_selection", |b| run(b, &one_sigma));

    let lines = okta_lines(EVENTS);
    let pack_rules = pack();
    let okta_sigma = with_sigma(80, true);
    // Normalising included: the record is kept for Sigma only while such an engine lives.
    let okta = |b: &mut criterion::Bencher, rules: &[rule::Rule]| {
        b.iter_batched(
            || Engine::new(rules.to_vec(), &options),
            |mut engine| {
                let mut alerts = Vec::new();
                for line in &lines {
                    if let Ok(e) = normalize(Format::Okta, line) {
                        engine.process(e, &mut alerts);
                    }
                }
                engine.flush(&mut alerts);
                alerts.len()
            },
            BatchSize::LargeInput,
        )
    };
    group.bench_function("okta_pack", |b| okta(b, &pack_rules));
    group.bench_function("okta_pack_and_80_sigma", |b| okta(b, &okta_sigma));
    // SigmaHQ's identity rules, where a checkout's folders were copied (their licence keeps
    // them out of this repository): `SIGMAHQ_RULES=/tmp/sigmahq-identity cargo bench sigma/`.
    if let Some(dir) = std::env::var_os("SIGMAHQ_RULES") {
        let mut rules = pack();
        let hq = rule::load_dir(Path::new(&dir)).expect("the SigmaHQ rules load");
        rules.extend(hq.enabled());
        group.bench_function("okta_pack_and_sigmahq", |b| okta(b, &rules));
        group.bench_function("engine_pack_and_sigmahq", |b| run(b, &rules));
    }
    group.finish();
}

/// One rule of each kind (thresholds high enough never to fire, so the cost is the counting),
/// over the same two days: exact windows beside their bucketed and estimated forms, a
/// per-user and a per-session baseline, a learned spike.
const KINDS: [(&str, &str); 8] = [
    (
        "threshold",
        "kind: threshold\nmatch: {type: login.failure}\ngroup_by: [tenant, username]\nwindow: 6h\nthreshold: 100000\n",
    ),
    (
        "threshold_bucketed",
        "kind: threshold\nmatch: {type: login.failure}\ngroup_by: [tenant, username]\nwindow: 6h\nbucket: 15m\nthreshold: 100000\n",
    ),
    (
        "distinct",
        "kind: distinct\nmatch: {type: login.failure}\ngroup_by: [tenant, ip/24]\ndistinct: username\nwindow: 1d\nthreshold: 100000\n",
    ),
    (
        "distinct_approximate",
        "kind: distinct\nmatch: {type: login.failure}\ngroup_by: [tenant, ip/24]\ndistinct: username\nwindow: 1d\nbucket: 1h\napproximate: true\nthreshold: 100000\n",
    ),
    (
        "new_value",
        "kind: new_value\nmatch: {type: login.success}\ngroup_by: [tenant, user]\nfield: device\n",
    ),
    (
        "new_value_session",
        "kind: new_value\nmatch: {type: [login.success, token.refresh]}\ngroup_by: [tenant, session]\nfield: [geo.country, geo.asn, user_agent]\nmin_new: 2\nforget_after: 1d\n",
    ),
    (
        "spike",
        "kind: spike\nmatch: {type: [login.failure, login.success]}\ngroup_by: [tenant, ip/24]\nwindow: 1h\nlearn_for: 1d\nfactor: 4\nmin_count: 100000\n",
    ),
    (
        "none",
        "kind: threshold\nmatch: {type: signup}\ngroup_by: [tenant]\nwindow: 1m\nthreshold: 100000\n",
    ),
];

fn kind_rule(name: &str, body: &str) -> rule::Rule {
    let text = format!(
        "id: bench-{}\ntitle: T\nseverity: low\n{body}",
        name.replace('_', "-")
    );
    let (mut rules, diags) = rule::load_file_text(Path::new("bench.yaml"), &text);
    assert!(diags.is_empty(), "{name}: {diags:?}");
    rules.remove(0)
}

/// Live heap bytes after running `events` through an engine holding `rule` (the engine kept).
fn heap_after(rule: &rule::Rule, events: &[authwatch::event::Event]) -> (isize, usize, Engine) {
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let mut engine = Engine::new(vec![rule.clone()], &EngineOptions::default());
    let mut alerts = Vec::new();
    for e in events.iter().cloned() {
        engine.process(e, &mut alerts);
    }
    let groups = engine.state_sizes()[0].1;
    (LIVE_BYTES.load(Ordering::Relaxed) - before, groups, engine)
}

fn kinds(c: &mut Criterion) {
    use authwatch::synth::evasive::{Org, Scenario};
    // Two days of 3,000 people, with the spray and the proxy stuffing for many groups.
    let events = Org {
        seed: 17,
        users: 3_000,
        days: 2,
        scenarios: vec![(Scenario::SlowSpray, 0), (Scenario::ProxyStuffing, 1)],
    }
    .generate();
    let rules: Vec<(&str, rule::Rule)> = KINDS.iter().map(|(n, b)| (*n, kind_rule(n, b))).collect();
    // Memory per group: the heap an engine with the rule holds at the end, less an engine
    // whose rule counts nothing (the lateness buffer's events), over its groups.
    // Measured at noon of the second day, when most groups are alive (at the end of the
    // stream the windows of the morning have closed).
    let noon = authwatch::synth::evasive::MONDAY_MS + 36 * 3_600_000;
    let events_to_noon = &events[..events.partition_point(|e| e.ts < noon)];
    let (idle, _, keep) = heap_after(&rules[KINDS.len() - 1].1, events_to_noon);
    drop(keep);
    println!(
        "kind memory after {} events (noon of day 2): (bytes held - idle engine) / groups",
        events_to_noon.len()
    );
    for (name, rule) in &rules[..KINDS.len() - 1] {
        let (bytes, groups, engine) = heap_after(rule, events_to_noon);
        drop(engine);
        println!(
            "  {name:<22} {groups:>6} groups {:>8} bytes/group",
            (bytes - idle) / groups.max(1) as isize
        );
    }
    let mut group = c.benchmark_group("kinds");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.sample_size(10);
    for (name, rule) in &rules {
        group.bench_function(*name, |b| {
            b.iter_batched(
                || {
                    (
                        Engine::new(vec![rule.clone()], &EngineOptions::default()),
                        events.clone(),
                    )
                },
                |(mut engine, events)| {
                    let mut alerts = Vec::new();
                    for e in events {
                        engine.process(e, &mut alerts);
                    }
                    engine.flush(&mut alerts);
                    alerts.len()
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(pipeline, benches, normalisers, kinds, sigma);
criterion_main!(pipeline);
