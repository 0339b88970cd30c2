//! The command line (SPEC §4).

use std::path::PathBuf;

use clap::builder::PossibleValuesParser;
use clap::{Parser, Subcommand};

use crate::normalize::Format;
use crate::sink::AlertFormat;

#[derive(Debug, Parser)]
#[command(
    name = "authwatch",
    version,
    about = "Detects attacks on identity systems from authentication events"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (embedded defaults without --config: rules from ./rules, events on
    /// stdin, alerts on stdout).
    Run {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Move the state directory aside (to <dir>.old-<time>) and start afresh.
        #[arg(long)]
        reset_state: bool,
        /// How `stdout` sinks print alerts (overrides their `format`; default: a table on a
        /// terminal, JSON lines otherwise).
        #[arg(long, value_name = "FORMAT", value_parser = PossibleValuesParser::new(AlertFormat::NAMES))]
        output: Option<String>,
    },
    /// Process recorded events and print alerts (JSON lines, a table on a terminal); a
    /// summary goes to stderr.
    Replay {
        /// Event files; `-` or none reads standard input.
        #[arg(value_name = "FILE")]
        files: Vec<PathBuf>,
        #[arg(long, value_name = "DIR")]
        rules: Option<PathBuf>,
        #[arg(long, value_name = "F", help = format!("Input format: {}", Format::NAMES.join(", ")))]
        format: Option<String>,
        /// Out-of-order tolerance in event time, like 60s.
        #[arg(long, value_name = "DURATION")]
        lateness: Option<String>,
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Carry windows across invocations in this state directory.
        #[arg(long, value_name = "DIR")]
        state: Option<PathBuf>,
        /// With --state: move the old state aside first.
        #[arg(long, requires = "state")]
        reset_state: bool,
        /// The wall clock events are judged against (RFC 3339): an event stamped later than
        /// it plus `[rules] max_clock_skew` is bad input. Default: the system clock.
        #[arg(long, value_name = "TIME")]
        now: Option<String>,
        /// How alerts are printed: json (SPEC §3 lines), table (for a person) or ocsf (OCSF
        /// Detection Findings). Default: a table on a terminal, JSON lines otherwise.
        #[arg(long, value_name = "FORMAT", value_parser = PossibleValuesParser::new(AlertFormat::NAMES))]
        output: Option<String>,
    },
    /// Erase everything the state holds about one user (by `user` id and by `username`).
    Forget {
        #[arg(long, value_name = "ID")]
        user: String,
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Print everything the state holds about one user, as JSON lines.
    Export {
        #[arg(long, value_name = "ID")]
        user: String,
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Validate rules and configuration without touching the network.
    Check {
        #[arg(long, value_name = "DIR")]
        rules: Option<PathBuf>,
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Rules directory given without --rules (as in `authwatch check rules`).
        #[arg(value_name = "DIR", conflicts_with = "rules")]
        dir: Option<PathBuf>,
    },
    /// List the alerts sinks gave up on (dead letters), as JSON lines.
    DeadLetters {
        /// Only this sink's.
        #[arg(long, value_name = "NAME")]
        sink: Option<String>,
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Put dead letters back in the outbox; the daemon delivers them on its next start.
    Redrive {
        /// Only this sink's.
        #[arg(long, value_name = "NAME")]
        sink: Option<String>,
        /// Only the alert with this id.
        #[arg(long, value_name = "ID")]
        id: Option<String>,
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Show each sink's backlog and dead letters, as JSON lines.
    Outbox {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Run the `tests:` of every rule.
    Test {
        #[arg(long, value_name = "DIR")]
        rules: Option<PathBuf>,
        /// Rules directory given without --rules (as in `authwatch test rules`).
        #[arg(value_name = "DIR", conflicts_with = "rules")]
        dir: Option<PathBuf>,
        /// Print every test, not only failures.
        #[arg(long, short)]
        verbose: bool,
    },
}
