//! Integration tests: one binary, one module per area.

mod cli;
mod determinism;
mod geo;
#[path = "../common/geodb.rs"]
mod geodb;
mod http_ingest;
mod normalize_attacks;
mod normalize_conformance;
mod state;
mod support;
