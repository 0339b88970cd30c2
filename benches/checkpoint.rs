//! The cost of checkpointing: the engine with the whole default pack on synthetic traffic,
//! without checkpoints and with a checkpoint into a real sled store every 50k events, taken on
//! the engine thread and committed by the checkpoint writer thread, as the daemon does.
//! At the measured ~0.75M events/s, 50k events is ~65 ms of work, so this checkpoints about
//! 15 times more often than the daemon's default of once a second: a pessimistic measure.

use std::path::Path;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use authwatch::engine::{Engine, EngineOptions, StateWrites};
use authwatch::event::Event;
use authwatch::rule;
use std::sync::Arc;

use authwatch::state::{CheckpointWriter, SledStore};
use authwatch::synth::Traffic;

const EVENTS: usize = 200_000;
const CHECKPOINT_EVERY: usize = 50_000;

fn benches(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let rules = rule::load_dir(&dir)
        .expect("the default pack loads")
        .enabled();
    let events = Traffic::default().generate(EVENTS);
    let options = EngineOptions::default();

    let mut group = c.benchmark_group("checkpoint");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(10);

    group.bench_function("off", |b| {
        b.iter_batched(
            || (Engine::new(rules.clone(), &options), events.clone()),
            |(mut engine, events)| {
                let mut alerts = Vec::new();
                for e in events {
                    engine.process(e, &mut alerts);
                }
                alerts.len()
            },
            BatchSize::LargeInput,
        )
    });

    group.bench_function("every_50k_events", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let store = Arc::new(SledStore::open(dir.path()).expect("the store opens"));
                let writer = CheckpointWriter::start(store, None);
                (
                    Engine::new(rules.clone(), &options),
                    events.clone(),
                    writer,
                    dir,
                )
            },
            |(engine, events, writer, _dir)| run(engine, events, writer, CHECKPOINT_EVERY),
            BatchSize::LargeInput,
        )
    });
    group.finish();
    at_the_default_rate(c, &rules, &options);
}

/// The daemon's default: one checkpoint per second of processing. At ~0.9M events/s that is
/// one per 900k events, so this runs 1.8M events with and without two (delta) checkpoints; the
/// second ends the run and its commit is waited for, which a running daemon would overlap.
fn at_the_default_rate(c: &mut Criterion, rules: &[rule::Rule], options: &EngineOptions) {
    const LONG: usize = 1_800_000;
    const EVERY: usize = 900_000;
    let events = Traffic {
        users: 200_000,
        ..Traffic::default()
    }
    .generate(LONG);
    let mut group = c.benchmark_group("checkpoint_default_rate");
    group.throughput(Throughput::Elements(LONG as u64));
    group.sample_size(10);
    for (name, every) in [("off", usize::MAX), ("every_900k_events", EVERY)] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let dir = tempfile::tempdir().expect("a temporary directory");
                    let store = Arc::new(SledStore::open(dir.path()).expect("the store opens"));
                    let mut writer = CheckpointWriter::start(store, None);
                    // A running daemon's checkpoints are deltas (a full snapshot comes once
                    // every 60): take the first, empty, snapshot before the clock starts.
                    let mut engine = Engine::new(rules.to_vec(), options);
                    let mut writes = StateWrites::default();
                    engine.checkpoint(&mut writes);
                    writer.submit(writes).expect("the checkpoint is queued");
                    (engine, events.clone(), writer, dir)
                },
                |(engine, events, writer, _dir)| run(engine, events, writer, every),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

/// Processes the events with a checkpoint every `every` of them; the run counts as done only
/// once the last checkpoint is durable.
fn run(
    mut engine: Engine,
    events: Vec<Event>,
    mut writer: CheckpointWriter,
    every: usize,
) -> usize {
    let mut alerts = Vec::new();
    for (i, e) in events.into_iter().enumerate() {
        engine.process(e, &mut alerts);
        if (i + 1) % every == 0 {
            let mut writes = StateWrites::default();
            engine.checkpoint(&mut writes);
            writer.submit(writes).expect("the checkpoint is queued");
        }
    }
    writer.finish().expect("every checkpoint commits");
    alerts.len()
}

criterion_group!(checkpoint, benches);
criterion_main!(checkpoint);
