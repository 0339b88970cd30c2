//! Wiring: turns a command into components (config, rules, engine, sinks) and runs them.
//! Errors come back as [`Failure`], which `main` maps to SPEC §4 exit codes.

mod check;
mod detect;
mod outbox;
mod reload;
mod replay;
mod rule_tests;
mod run;
mod subject;
mod tasks;
mod test;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cli::Command;
use crate::config::{self, Config};
use crate::engine::{Engine, EngineOptions, RunbookLinks};
use crate::enrich::{Enricher, Verify};
use crate::event::{Admission, format_ts};
use crate::normalize::Format;
use crate::rule::{self, RuleSet};
use crate::state::{self, SledStore};

/// How a command failed, which decides the exit code.
#[derive(Debug)]
pub enum Failure {
    /// Invalid configuration or rules; nothing was started. Exit 78 (EX_CONFIG).
    Invalid(Vec<String>),
    /// Rule tests failed. Exit 1.
    TestsFailed,
    /// Something went wrong while running. Exit 1.
    Runtime(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Runtime(e)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Runtime(e.into())
    }
}

/// A store failure while running (the store opened, then a read or a commit failed).
impl From<state::StateError> for Failure {
    fn from(e: state::StateError) -> Self {
        Failure::Runtime(e.into())
    }
}

/// Starting delivery: a sink that cannot be built is configuration (nothing was started, 78);
/// the outbox unreadable or uncommittable is a runtime failure of the store (1).
impl From<crate::outbox::StartError> for Failure {
    fn from(e: crate::outbox::StartError) -> Self {
        match e {
            crate::outbox::StartError::Sink(why) => Failure::Invalid(vec![why]),
            crate::outbox::StartError::Store(e) => e.into(),
        }
    }
}

/// SPEC §4 exit codes.
pub const EXIT_RUNTIME: u8 = 1;
pub const EXIT_CONFIG: u8 = 78;

/// `--output`, which clap has already held to the names `AlertFormat` reads.
fn output_format(output: Option<&str>) -> Option<crate::sink::AlertFormat> {
    output.and_then(crate::sink::AlertFormat::parse)
}

pub fn execute(command: Command) -> ExitCode {
    // A reader that stops early (`replay ... | head -1`) is a normal end for the commands that
    // print a report, as for `cat` or `grep`; for the daemon it means alerts cannot be
    // delivered, which stays a failure.
    let quiet_on_broken_pipe = !matches!(command, Command::Run { .. });
    let result = match command {
        Command::Run {
            config,
            reset_state,
            output,
        } => run::run(
            config.as_deref(),
            reset_state,
            output_format(output.as_deref()),
        ),
        Command::Replay {
            files,
            rules,
            format,
            lateness,
            config,
            state,
            reset_state,
            now,
            output,
        } => replay::replay(
            &files,
            &replay::Options {
                rules: rules.as_deref(),
                format: format.as_deref(),
                lateness: lateness.as_deref(),
                config: config.as_deref(),
                state: state.as_deref(),
                reset_state,
                now: now.as_deref(),
                output: output_format(output.as_deref()),
            },
        ),
        Command::DeadLetters { sink, config } => {
            outbox::dead_letters(sink.as_deref(), config.as_deref())
        }
        Command::Redrive { sink, id, config } => {
            outbox::redrive(sink.as_deref(), id.as_deref(), config.as_deref())
        }
        Command::Outbox { config } => outbox::status(config.as_deref()),
        Command::Forget { user, config } => subject::forget(&user, config.as_deref()),
        Command::Export { user, config } => subject::export(&user, config.as_deref()),
        Command::Check {
            rules,
            config,
            dir,
            strict,
        } => check::check(rules.or(dir).as_deref(), config.as_deref(), strict),
        Command::Test {
            rules,
            dir,
            verbose,
        } => test::test(rules.or(dir).as_deref(), verbose),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Invalid(errors)) => {
            for e in &errors {
                eprintln!("{e}");
            }
            eprintln!("authwatch: {} error(s); nothing was started", errors.len());
            ExitCode::from(EXIT_CONFIG)
        }
        Err(Failure::TestsFailed) => ExitCode::from(EXIT_RUNTIME),
        Err(Failure::Runtime(e)) if quiet_on_broken_pipe && is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(Failure::Runtime(e)) => {
            eprintln!("authwatch: {e:#}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The configuration from `--config`, or the embedded defaults.
fn load_config(path: Option<&Path>) -> Result<Config, Failure> {
    match path {
        Some(p) => config::load(p).map_err(|e| Failure::Invalid(e.0)),
        None => Ok(Config::default()),
    }
}

/// The rules of `dir` (or the configured directory), or every error in them.
fn load_rules(dir: &Path) -> Result<RuleSet, Failure> {
    let set = rule::load_dir(dir)
        .map_err(|diags| Failure::Invalid(diags.iter().map(ToString::to_string).collect()))?;
    for w in &set.warnings {
        tracing::warn!(warning = %w, "rule skipped");
    }
    Ok(set)
}

fn rules_dir(flag: Option<&Path>, config: &Config) -> PathBuf {
    flag.map_or_else(|| config.rules_dir.clone(), Path::to_path_buf)
}

fn engine_options(config: &Config, rules: &RuleSet) -> EngineOptions {
    EngineOptions {
        lateness_ms: config.lateness_ms,
        max_groups_per_rule: config.max_groups_per_rule,
        max_held_events: config.max_held_events,
        max_held_bytes: config.max_held_bytes,
        runbooks: match &config.runbook_base_url {
            Some(base) => RunbookLinks::BaseUrl(base.clone()),
            // Served by the daemon itself at /runbooks/ (`http::runbooks`).
            None if config.http_listen.is_some() => RunbookLinks::BaseUrl(
                crate::http::runbooks::served_base(config.http_listen.expect("checked")),
            ),
            None => RunbookLinks::Dir(rules.runbook_dir()),
        },
    }
}

/// A restored event clock beyond the admission bound (a state poisoned before the bound
/// existed, or a clock set back) is brought back, with a warning: left there it would judge
/// every real event late.
fn bound_restored_clock(engine: &mut Engine, admission: &Admission) {
    if let Some(fixed) = engine.bound_clock(admission.latest_ms()) {
        tracing::warn!(
            was = %format_ts(fixed.was),
            to = %fixed.to.map_or_else(|| "unset".to_string(), format_ts),
            dropped_held = fixed.dropped_held,
            dropped_groups = fixed.dropped_groups,
            "the restored event clock was beyond the wall clock plus max_clock_skew; corrected to the newest event time the rest of the state holds"
        );
    }
}

/// Opens the state store, after moving the old one aside when asked to.
fn open_state(dir: &Path, reset: bool) -> Result<SledStore, Failure> {
    if reset && let Some(moved) = state::reset(dir)? {
        tracing::warn!(from = %dir.display(), to = %moved.display(), "old state moved aside");
    }
    Ok(SledStore::open(dir)?)
}

/// The `[geoip]` databases, opened and checked: a damaged file or one of the wrong schema is
/// invalid configuration, not a silent stream of empty lookups.
fn enricher(config: &Config) -> Result<Enricher, Failure> {
    Enricher::open(&config.geoip, Verify::Full)
        .map_err(|errors| Failure::Invalid(errors.iter().map(ToString::to_string).collect()))
}

/// `--format`: a name of [`Format::NAMES`].
fn input_format(name: &str) -> Result<Format, Failure> {
    name.parse()
        .map_err(|e: crate::normalize::UnknownFormat| Failure::Invalid(vec![e.to_string()]))
}

#[cfg(test)]
mod failure_tests {
    use std::path::PathBuf;

    use super::Failure;
    use crate::outbox::StartError;
    use crate::state::StateError;

    /// A runtime store failure while starting delivery used to exit 78 ("nothing was
    /// started", as for a bad config); only an unbuildable sink is a configuration error.
    #[test]
    fn delivery_start_failures_map_to_their_exit_codes() {
        let store = StartError::Store(StateError::Io {
            dir: PathBuf::from("/state"),
            reason: "input/output error".into(),
        });
        assert!(matches!(Failure::from(store), Failure::Runtime(_)));
        let sink = StartError::Sink("sink \"pager\": bad url".into());
        assert!(matches!(Failure::from(sink), Failure::Invalid(v) if v.len() == 1));
    }
}
