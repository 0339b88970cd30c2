//! Integration tests: one binary, one module per area.

mod cli;
mod clock;
mod determinism;
mod docs;
mod evasive;
mod forget;
mod fuzz;
#[path = "../common/fuzz.rs"]
mod fuzz_harness;
mod geo;
#[path = "../common/geodb.rs"]
mod geodb;
mod http_ingest;
mod kafka;
mod normalize_attacks;
mod normalize_conformance;
mod ops;
mod output;
mod pull_api;
mod sigma;
mod sinks_email;
mod sinks_harness;
mod sinks_hostile;
mod sinks_http;
mod sinks_latency;
mod sinks_outage;
mod sinks_syslog;
mod state;
mod store_failure;
mod support;
