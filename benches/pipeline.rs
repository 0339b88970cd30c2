//! Throughput of each stage on synthetic traffic with the whole default pack loaded:
//! decoding JSON lines, the engine alone, and both together. Run with `cargo bench`;
//! criterion prints events/s (its "elements/s").

/// The allocator the `authwatch` binary uses, so the figures are the daemon's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::Path;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use authwatch::engine::{Engine, EngineOptions};
use authwatch::event::{Admission, decode_line};
use authwatch::normalize::Format;
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

criterion_group!(pipeline, benches);
criterion_main!(pipeline);
