//! authwatch: detects attacks on identity systems from authentication events.
//!
//! Code map, in pipeline order:
//! - [`source`]: reading records (lines from files and stdin);
//! - [`event`]: the canonical event (SPEC §1), JSON decoding, field paths;
//! - [`normalize`]: provider formats (auth0, okta, keycloak) into canonical events;
//! - [`enrich`]: GeoIP location and network of an event's ip (an edge: the engine stays pure);
//! - [`rule`]: rule files (YAML) compiled into checked rules (their `tests:` run in `app`);
//! - [`engine`]: windows, distinct sets, sequences, suppression, alert ids (pure, no IO);
//! - [`state`]: the durable store (sled) that checkpoints engine state and source positions;
//! - [`outbox`]: alerts stored before delivery, per-sink cursors, retries and dead letters;
//! - [`sink`]: alert destinations (one module per kind) and routing;
//! - [`pipeline`]: decode -> engine -> sinks, with bad-input accounting;
//! - [`config`]: `authwatch.toml`, raw then validated;
//! - [`app`], [`cli`]: the commands and their wiring; [`shared`]: the daemon handle its
//!   threads share (flags, readiness, metrics); [`telemetry`]: logging;
//! - [`synth`]: synthetic traffic for benchmarks and tests.
pub mod app;
pub mod cli;
pub mod config;
pub mod engine;
pub mod enrich;
pub mod event;
pub mod http;
pub mod http_error;
pub mod normalize;
pub mod outbox;
pub mod pipeline;
pub mod rule;
pub mod secret;
pub mod shared;
pub mod sink;
pub mod source;
pub mod state;
pub mod synth;
pub mod telemetry;
