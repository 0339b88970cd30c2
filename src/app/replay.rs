//! `authwatch replay`: recorded events through the rules, alerts on stdout, a summary on stderr
//! (and a progress bar when stderr is a terminal).

use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use super::{
    Failure, bound_restored_clock, engine_options, enricher, input_format, load_config, load_rules,
    open_state, rules_dir,
};
use crate::engine::{self, Engine};
use crate::event::{Admission, Clock, parse_rfc3339_ms};
use crate::pipeline::{Decoder, Pipeline};
use crate::sink::{AlertFormat, Router, StdoutSink, terminal_default};
use crate::source::{Item, decoding, stdin};
use crate::state::StateWrites;
use crate::state::{self, Store};

/// Progress is redrawn every this many records (drawing per line would cost more than parsing).
const PROGRESS_EVERY: u64 = 4096;
/// Batches between the reader, the decode stage and detection (each up to `BATCH_RECORDS`).
const BATCHES_IN_FLIGHT: usize = 4;

/// An input that counts the bytes read from it, for the progress bar.
struct Counted {
    inner: Box<dyn Read + Send>,
    read: Arc<AtomicU64>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// What `replay` was asked to do.
pub struct Options<'a> {
    pub rules: Option<&'a Path>,
    pub format: Option<&'a str>,
    pub lateness: Option<&'a str>,
    pub config: Option<&'a Path>,
    /// Carry engine state across invocations in this directory.
    pub state: Option<&'a Path>,
    pub reset_state: bool,
    /// `--now`: the clock the future-timestamp bound is taken against.
    pub now: Option<&'a str>,
    /// `--output`; `None`: a table on a terminal, JSON lines otherwise.
    pub output: Option<AlertFormat>,
}

pub fn replay(files: &[PathBuf], opts: &Options<'_>) -> Result<(), Failure> {
    let mut cfg = load_config(opts.config)?;
    if let Some(l) = opts.lateness {
        cfg.lateness_ms = humantime::parse_duration(l)
            .map_err(|e| {
                Failure::Invalid(vec![format!("--lateness `{l}`: {e}; write it like 60s")])
            })?
            .as_millis() as i64;
    }
    let set = load_rules(&rules_dir(opts.rules, &cfg))?;
    let clock = match opts.now {
        Some(now) => Clock::Fixed(parse_rfc3339_ms(now).ok_or_else(|| {
            Failure::Invalid(vec![format!(
                "--now `{now}` is not an RFC 3339 time; write it like 2026-03-02T12:00:00Z"
            )])
        })?),
        None => Clock::Wall,
    };
    let admission = Admission {
        clock,
        max_skew_ms: cfg.max_clock_skew_ms,
    };
    let format = match opts.format {
        Some(name) => input_format(name)?,
        None => cfg.format,
    };
    let decode = Decoder::new(format, admission);
    let enricher = enricher(&cfg)?;
    let mut engine = Engine::new(set.enabled(), &engine_options(&cfg, &set));
    let store = match opts.state {
        Some(dir) => {
            let store = open_state(dir, opts.reset_state)?;
            let entries = state::scan_prefixes(&store, &engine::STATE_PREFIXES)?;
            engine.restore(entries).map_err(|e| {
                anyhow::anyhow!(
                    "cannot restore the state in {}: {e}; use --reset-state to begin afresh",
                    dir.display()
                )
            })?;
            bound_restored_clock(&mut engine, &admission);
            Some(store)
        }
        None => None,
    };
    // replay always prints to stdout: it is a tool for tuning, not the daemon's delivery.
    let format = opts.output.unwrap_or_else(terminal_default);
    let router = Router::new(vec![(
        Default::default(),
        Box::new(StdoutSink::new(format)),
    )]);
    let mut pipeline = Pipeline::new(engine, decode, router).with_enricher(enricher);

    let inputs: Vec<PathBuf> = if files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        files.to_vec()
    };
    let progress = progress_bar(&inputs);
    let started = Instant::now();
    let mut done_bytes = 0;
    for input in &inputs {
        let name = input.display().to_string();
        let reader: Box<dyn Read + Send> = if name == "-" {
            Box::new(io::stdin())
        } else {
            let file = File::open(input).with_context(|| format!("cannot open {name}"))?;
            Box::new(file)
        };
        // Read and decoded on threads of their own, detected on here (`source::decoding`).
        let read = Arc::new(AtomicU64::new(0));
        let counted = Counted {
            inner: reader,
            read: read.clone(),
        };
        let (tx, lines) = mpsc::sync_channel(BATCHES_IN_FLIGHT);
        let reader = thread::spawn(move || stdin::read_batches(counted, tx));
        let (batches, _) = decoding::start(
            decode,
            name.clone(),
            decoding::workers(cfg.decode_threads),
            lines,
        );
        let mut since_progress = 0;
        for batch in batches {
            since_progress += batch.items.len() as u64;
            for item in batch.items {
                match item {
                    Item::Event(event) => pipeline.feed_decoded(event)?,
                    Item::Bad(bad, origin, n) => pipeline.rejected(&bad, &origin, n),
                    Item::TooLong(len, n) => pipeline.too_long(len, &name, n),
                    Item::Line(..)
                    | Item::CheckpointNow(_)
                    | Item::AckWhenDurable(_)
                    | Item::Partition(_)
                    | Item::Task(_)
                    | Item::TaskRestored(..)
                    | Item::TasksRevoked(_)
                    | Item::TasksLost(_) => {
                        unreachable!(
                            "the decode stage decodes lines; a file asks for no checkpoint"
                        )
                    }
                }
            }
            if since_progress >= PROGRESS_EVERY
                && let Some(p) = &progress
            {
                p.set_position(done_bytes + read.load(Ordering::Relaxed));
                since_progress = 0;
            }
        }
        reader
            .join()
            .map_err(|_| anyhow::anyhow!("the reader of {name} panicked"))?
            .with_context(|| format!("reading {name}"))?;
        done_bytes += read.load(Ordering::Relaxed);
    }
    pipeline.finish()?;
    if let Some(store) = &store {
        let mut writes = StateWrites::default();
        pipeline.engine_mut().checkpoint(&mut writes);
        store.commit(writes)?;
    }
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    print_summary(&pipeline, started.elapsed().as_secs_f64());
    Ok(())
}

fn progress_bar(inputs: &[PathBuf]) -> Option<ProgressBar> {
    if !io::stderr().is_terminal() {
        return None;
    }
    let total: u64 = inputs
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    Some(bar)
}

fn print_summary(pipeline: &Pipeline, seconds: f64) {
    let counts = pipeline.counts();
    let stats = pipeline.engine().stats();
    let rate = counts.events as f64 / seconds.max(1e-9);
    eprintln!(
        "replayed {} events in {seconds:.2}s ({rate:.0} events/s): {} bad, {} duplicates, {} late, {} alerts",
        counts.events,
        counts.bad_total(),
        stats.duplicates,
        stats.late,
        counts.alerts,
    );
    if let Some(geo) = pipeline.enricher().geo_stats() {
        eprintln!(
            "geoip: {} lookups ({} from the cache), {} located, {} private or reserved, {} errors",
            geo.lookups, geo.cache_hits, geo.located, geo.not_public, geo.errors
        );
    }
    if stats.forced_releases > 0 {
        eprintln!(
            "  {} events released early: the lateness buffer was full ([rules] max_held_events, max_held_bytes)",
            stats.forced_releases
        );
    }
    for (reason, n) in &counts.bad {
        eprintln!("  bad input {reason:<24} {n}");
    }
    for (rule, n) in &stats.alerts_by_rule {
        eprintln!("  alerts {rule:<27} {n}");
    }
    let sizes = pipeline.engine().state_sizes();
    let held: usize = sizes.iter().map(|(_, n, _)| n).sum();
    let evicted: u64 = sizes.iter().map(|(_, _, e)| e).sum();
    eprintln!("state: {held} groups held, {evicted} evicted");
    for (rule, n, e) in sizes.iter().filter(|(_, _, e)| *e > 0) {
        eprintln!("  state {rule:<28} {n} groups held, {e} evicted (table full)");
    }
}
