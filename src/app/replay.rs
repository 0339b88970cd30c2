//! `authwatch replay`: recorded events through the rules, alerts on stdout, a summary on stderr
//! (and a progress bar when stderr is a terminal).

use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal};
use std::path::{Path, PathBuf};
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
use crate::source::lines::{LineReader, Record};
use crate::state::StateWrites;
use crate::state::{self, Store};

/// Progress is redrawn every this many records (drawing per line would cost more than parsing).
const PROGRESS_EVERY: u64 = 4096;

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
        let reader: Box<dyn BufRead> = if name == "-" {
            Box::new(BufReader::new(io::stdin().lock()))
        } else {
            let file = File::open(input).with_context(|| format!("cannot open {name}"))?;
            Box::new(BufReader::with_capacity(1 << 16, file))
        };
        let mut lines = LineReader::new(reader);
        let mut buf = Vec::new();
        while let Some(record) = lines
            .next_record(&mut buf)
            .with_context(|| format!("reading {name}"))?
        {
            match record {
                Record::Line => pipeline.feed(&buf, &name, lines.line_no)?,
                Record::TooLong(len) => pipeline.too_long(len, &name, lines.line_no),
            }
            if lines.line_no.is_multiple_of(PROGRESS_EVERY)
                && let Some(p) = &progress
            {
                p.set_position(done_bytes + lines.offset);
            }
        }
        done_bytes += lines.offset;
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
