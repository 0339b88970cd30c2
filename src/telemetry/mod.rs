//! Telemetry: metrics for Prometheus, and logging through tracing: human-readable on a terminal, JSON lines otherwise (journald,
//! log shippers). `RUST_LOG` overrides the level (default info).

pub mod metrics;
pub mod tally;

pub use metrics::Metrics;
pub use tally::Tally;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests) is harmless: the first subscriber stays.
    let _ = if std::io::stderr().is_terminal() {
        builder.compact().try_init()
    } else {
        builder.json().flatten_event(true).try_init()
    };
}
