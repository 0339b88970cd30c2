//! The cost of checkpointing: the engine with the whole default pack on synthetic traffic,
//! without checkpoints and with a checkpoint into a real sled store every 50k events, taken on
//! the engine thread and committed by the checkpoint writer thread, as the daemon does.
//! 50k events is well under a second of work, so this checkpoints many times more often than
//! the daemon's default of once a second: a pessimistic measure. `checkpoint_default_rate`
//! below is the daemon's pace.

/// The allocator the `authwatch` binary uses, so the figures are the daemon's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

use authwatch::engine::{Engine, EngineOptions};
use authwatch::event::Event;
use authwatch::rule;
use authwatch::state::StateWrites;
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

/// The daemon's default: a checkpoint once a second of processing, taken as its detection
/// loop takes them (looked at after every batch of 512 events), plus the last one at the end,
/// whose commit is waited for (a running daemon would overlap it with more work, so this is
/// pessimistic). 1.8M events of 200k users: a few seconds, so two or three checkpoints of
/// steady-state deltas (the first, empty, snapshot is taken before the clock starts).
fn at_the_default_rate(c: &mut Criterion, rules: &[rule::Rule], options: &EngineOptions) {
    const LONG: usize = 1_800_000;
    let events = Traffic {
        users: 200_000,
        ..Traffic::default()
    }
    .generate(LONG);
    let mut group = c.benchmark_group("checkpoint_default_rate");
    group.throughput(Throughput::Elements(LONG as u64));
    group.sample_size(10);
    for (name, every) in [
        ("off", None),
        ("every_second", Some(Duration::from_secs(1))),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let dir = tempfile::tempdir().expect("a temporary directory");
                    let store = Arc::new(SledStore::open(dir.path()).expect("the store opens"));
                    let mut writer = CheckpointWriter::start(store, None);
                    let mut engine = Engine::new(rules.to_vec(), options);
                    let mut writes = StateWrites::default();
                    engine.checkpoint(&mut writes);
                    writer.submit(writes).expect("the checkpoint is queued");
                    (engine, events.clone(), writer, dir)
                },
                |(engine, events, writer, _dir)| run_timed(engine, events, writer, every),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

/// Processes the events in batches, checkpointing when `every` has passed since the last
/// checkpoint and once at the end (never when `None`); done once the last one is durable.
fn run_timed(
    mut engine: Engine,
    events: Vec<Event>,
    mut writer: CheckpointWriter,
    every: Option<Duration>,
) -> usize {
    const BATCH: usize = 512;
    let mut alerts = Vec::new();
    let mut last = Instant::now();
    let mut events = events.into_iter();
    loop {
        let mut took = 0;
        for e in events.by_ref().take(BATCH) {
            engine.process(e, &mut alerts);
            took += 1;
        }
        let done = took < BATCH;
        if every.is_some_and(|every| done || last.elapsed() >= every) {
            let mut writes = StateWrites::default();
            engine.checkpoint(&mut writes);
            writer.submit(writes).expect("the checkpoint is queued");
            last = Instant::now();
        }
        if done {
            break;
        }
    }
    writer.finish().expect("every checkpoint commits");
    alerts.len()
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
