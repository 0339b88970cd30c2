//! The durable outbox between detection and the sinks. Every alert is stored (and made
//! durable) before any sink sees it; each sink then delivers from the log at its own cursor,
//! on its own tokio task, with retries, a circuit breaker and dead letters, so a slow or
//! broken receiver holds up neither detection nor the other sinks.
//!
//! - [`store`]: the keys in the state store (log, id index, cursors, dead letters) and the
//!   offline operations of `dead-letters`, `redrive` and `outbox`;
//! - [`writer`]: the pipeline's side: stores alerts (once per id) and wakes the workers;
//! - [`worker`]: one sink's delivery loop;
//! - [`retry`]: exponential backoff with jitter, and the circuit breaker;
//! - [`service`]: starts the workers on the daemon's runtime, persists their progress, and
//!   drains them at shutdown.

pub mod retry;
pub mod service;
pub mod store;
mod worker;
pub mod writer;

pub use service::{Delivery, SinkStatus};
pub use store::{DeadLetter, OutboxStore};
pub use writer::OutboxWriter;
