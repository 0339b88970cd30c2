//! When to try a failing sink again: exponential backoff with jitter, `Retry-After` obeyed,
//! and a circuit breaker that, after repeated failures, sends one alert at a time (a probe)
//! instead of whole batches until the receiver answers again.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::progress::SinkStatus;
use crate::sink::{DeliveryPolicy, SendError};

/// Consecutive failures after which the breaker opens. Five failures at the default backoff
/// span about 15 s: past a blip, into an outage worth a log line of its own.
pub const BREAKER_THRESHOLD: u32 = 5;

#[derive(Debug)]
pub struct Retry {
    initial: Duration,
    max: Duration,
    /// Consecutive failures.
    pub failures: u32,
}

/// What a failure changed.
#[derive(Debug, PartialEq)]
pub struct Wait {
    pub delay: Duration,
    /// The breaker opened with this failure.
    pub opened: bool,
}

impl Retry {
    pub fn new(initial: Duration, max: Duration) -> Retry {
        Retry {
            initial,
            max,
            failures: 0,
        }
    }

    pub fn is_open(&self) -> bool {
        self.failures >= BREAKER_THRESHOLD
    }

    /// A delivery went through; returns whether the breaker was open.
    pub fn success(&mut self) -> bool {
        let was_open = self.is_open();
        self.failures = 0;
        was_open
    }

    /// A delivery failed; `after` is the receiver's Retry-After. A receiver that says when to
    /// come back is alive and throttling: its wait is used as given (plus a little jitter so
    /// that many senders do not return at once) and it does not count toward the breaker.
    pub fn failure(&mut self, after: Option<Duration>) -> Wait {
        if let Some(after) = after {
            let jitter = after.mul_f64(rand::random_range(0.0..0.1));
            return Wait {
                delay: after + jitter,
                opened: false,
            };
        }
        self.failures = self.failures.saturating_add(1);
        let exp = self
            .initial
            .saturating_mul(1u32 << (self.failures - 1).min(20))
            .min(self.max);
        // "Equal jitter": half the step fixed, half random, so retries neither synchronise
        // nor come sooner than half the backoff.
        let half = exp / 2;
        let delay = half + half.mul_f64(rand::random_range(0.0..=1.0));
        Wait {
            delay,
            opened: self.failures == BREAKER_THRESHOLD,
        }
    }
}

/// What a delivery loop does about failures, the same for the embedded outbox's workers
/// (`worker.rs`) and the alert topic's (`topic.rs`): the batch size (one probe while the
/// breaker is open), when an alert is given up (`max_attempts` failures that are its own, or
/// older than `max_age`), and how long to wait before the next attempt.
pub(super) struct Failures<K> {
    retry: Retry,
    /// The alert the last failure stopped at, and the failures counted against it.
    stuck: Option<K>,
    charged: u32,
}

/// What becomes of an alert the receiver failed on.
#[derive(Debug, PartialEq)]
pub(super) enum Verdict {
    /// Tried again after the wait.
    Again,
    /// Moved to the dead letters with this reason. `expired`: for its age, so the alerts after
    /// it that are as old go too (the receiver is known to fail).
    GiveUp { why: String, expired: bool },
}

impl<K: PartialEq + Copy> Failures<K> {
    pub fn new(policy: &DeliveryPolicy) -> Self {
        Failures {
            retry: Retry::new(policy.retry_initial, policy.retry_max),
            stuck: None,
            charged: 0,
        }
    }

    /// Alerts per attempt: the sink's batch, or one probe while the breaker is open.
    pub fn batch_limit(&self, max_batch: usize) -> usize {
        if self.retry.is_open() {
            1
        } else {
            max_batch.max(1)
        }
    }

    /// A batch went through.
    pub fn succeeded(&mut self, sink: &str, status: &SinkStatus) {
        if self.retry.success() {
            tracing::info!(%sink, "circuit closed: the receiver answers again");
            status.breaker_open.store(false, Ordering::Relaxed);
        }
    }

    /// Judges a failure on the alert at `at` (stored or produced at `stored_at`, epoch ms).
    #[allow(clippy::too_many_arguments)]
    pub fn failed(
        &mut self,
        sink: &str,
        status: &SinkStatus,
        policy: &DeliveryPolicy,
        at: K,
        id: &str,
        stored_at: i64,
        error: &SendError,
    ) -> Verdict {
        status.failures.fetch_add(1, Ordering::Relaxed);
        if self.stuck != Some(at) {
            (self.stuck, self.charged) = (Some(at), 0);
        }
        if error.counts_against_alert() {
            self.charged += 1;
        }
        let reason = error.reason();
        let now = chrono::Utc::now().timestamp_millis();
        if self.charged >= policy.max_attempts {
            let why = format!("failed {} times: {reason}", self.charged);
            tracing::warn!(%sink, %id, reason = %why, "alert moved to the dead letters; the sink moves on");
            Verdict::GiveUp {
                why,
                expired: false,
            }
        } else if now - stored_at > policy.max_age.as_millis() as i64 {
            let why = format!(
                "undeliverable for {}: {reason}",
                humantime::format_duration(policy.max_age)
            );
            tracing::warn!(%sink, %id, reason = %why, "alert moved to the dead letters");
            Verdict::GiveUp { why, expired: true }
        } else {
            Verdict::Again
        }
    }

    /// How long to wait after `error` before the next attempt; opens the breaker after
    /// repeated failures.
    pub fn wait(&mut self, sink: &str, status: &SinkStatus, error: &SendError) -> Duration {
        let after = match error {
            SendError::Retry { after, .. } => *after,
            _ => None,
        };
        let reason = error.reason();
        let wait = self.retry.failure(after);
        if wait.opened {
            status.breaker_open.store(true, Ordering::Relaxed);
            tracing::warn!(%sink, %reason, "circuit open: the receiver keeps failing; probing with one alert at a time");
        } else if self.retry.failures == 1 || after.is_some() {
            tracing::warn!(%sink, %reason, retry_in_ms = wait.delay.as_millis() as u64, "delivery failed; will retry");
        } else {
            tracing::debug!(%sink, %reason, retry_in_ms = wait.delay.as_millis() as u64, "delivery failed again");
        }
        wait.delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap_and_the_breaker_opens_at_five() {
        let mut r = Retry::new(Duration::from_millis(100), Duration::from_millis(1000));
        let mut opened_at = None;
        for i in 1..=8u32 {
            let w = r.failure(None);
            let step = Duration::from_millis((100 * (1u64 << (i - 1))).min(1000));
            assert!(w.delay >= step / 2 && w.delay <= step, "{i}: {w:?}");
            if w.opened {
                opened_at = Some(i);
            }
        }
        assert_eq!(opened_at, Some(BREAKER_THRESHOLD));
        assert!(r.is_open());
        assert!(r.success());
        assert!(!r.is_open());
    }

    #[test]
    fn retry_after_is_obeyed_and_does_not_count_as_a_failure() {
        let mut r = Retry::new(Duration::from_millis(100), Duration::from_secs(1));
        let w = r.failure(Some(Duration::from_secs(2)));
        assert!(w.delay >= Duration::from_secs(2) && w.delay < Duration::from_millis(2200));
        assert_eq!(r.failures, 0);
    }
}
