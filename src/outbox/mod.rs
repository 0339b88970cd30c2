//! The durable outbox between detection and the sinks. Every alert is stored (and made
//! durable) before any sink sees it; each sink then delivers from the log at its own cursor,
//! on its own tokio task, with retries, a circuit breaker and dead letters, so a slow or
//! broken receiver holds up neither detection nor the other sinks.
//!
//! - [`store`]: the keys in the state store (log, id index, cursors, dead letters) and the
//!   offline operations of `dead-letters`, `redrive` and `outbox`;
//! - [`writer`]: the pipeline's side: stores alerts (once per id) and wakes the workers;
//! - [`worker`]: one sink's delivery loop; `progress`: what the workers report (counters,
//!   uncommitted cursors and dead letters);
//! - [`forget`]: `forget` and `export` of one user over stored alerts and dead letters;
//! - [`retry`]: exponential backoff with jitter, the circuit breaker, and the failure policy
//!   both delivery loops share;
//! - [`topic`]: in Kafka scale-out with `alert_topic = true`, the outbox is a Kafka topic
//!   delivered by a consumer group per sink, so alerts outlive the instance that raised them;
//! - [`service`]: starts the workers on the daemon's runtime, persists their progress, and
//!   drains them at shutdown.

mod forget;
mod progress;
pub mod retry;
pub mod service;
pub mod store;
pub mod topic;
mod worker;
pub mod writer;

pub use service::{Delivery, StartError};
pub use store::{DeadLetter, OutboxStore};
pub use writer::OutboxWriter;

/// Runs a store call from async code without holding a tokio worker: on the daemon's
/// multi-threaded runtime the worker hands its other tasks to a new one for the call
/// (`block_in_place`), so a store slowed or hung by its disk never stalls delivery, HTTP or
/// signals. Elsewhere (a current-thread runtime in a test) the call runs in place.
pub(crate) fn off_async_workers<T>(call: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(call),
        _ => call(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    #[test]
    fn a_slow_store_call_leaves_the_only_async_worker_to_other_tasks() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let ticks = Arc::new(AtomicU32::new(0));
        let counted = ticks.clone();
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                counted.fetch_add(1, Ordering::Relaxed);
            }
        });
        let during = runtime.block_on(async {
            tokio::spawn(async move {
                super::off_async_workers(|| {
                    let before = ticks.load(Ordering::Relaxed);
                    // A store stuck on its disk.
                    std::thread::sleep(Duration::from_millis(300));
                    ticks.load(Ordering::Relaxed) - before
                })
            })
            .await
            .unwrap()
        });
        assert!(during >= 5, "the other task ran {during} times meanwhile");
        runtime.shutdown_background();
    }
}
