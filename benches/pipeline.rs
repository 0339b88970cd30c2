//! Throughput of each stage on synthetic traffic with the whole default pack loaded:
//! decoding JSON lines, the engine alone, and both together; and of each provider format's
//! normaliser on its attack fixture (`normalize/<format>`). Run with `cargo bench`;
//! criterion prints events/s (its "elements/s").

/// The allocator the `authwatch` binary uses, so the figures are the daemon's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

criterion_group!(pipeline, benches, normalisers);
criterion_main!(pipeline);
