//! Integration tests: one binary, one module per area.

mod cli;
mod determinism;
mod support;
