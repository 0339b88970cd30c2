//! When to try a failing sink again: exponential backoff with jitter, `Retry-After` obeyed,
//! and a circuit breaker that, after repeated failures, sends one alert at a time (a probe)
//! instead of whole batches until the receiver answers again.

use std::time::Duration;

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
