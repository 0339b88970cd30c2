//! `spike`: the count in a sliding window compared with what the group usually sees at that
//! time, learned per season slot (hour of day, weekday or weekend).
//!
//! Events are counted in windows aligned on `window` (epoch-based); the sliding count at an
//! instant is the current window's count plus the previous window's, weighted by the share of
//! it still inside the sliding window (the sliding-window counter of rate limiters: exact for
//! evenly spread events, never more than the previous window's count off), and so is the usual
//! count it is compared with (the two slots' means in the same shares). Each closed window
//! teaches its slot an exponentially weighted mean and variance (windows without events teach
//! a 0). A group holds a mean, a variance and a sample count per slot (9 bytes a slot, 432 for
//! 48 slots) plus a few counters, and no events (the alert's evidence is the event that made
//! the count stand out; the summary gives the numbers): under a kilobyte whatever the traffic.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::table::GroupState;
use super::{Fired, Note};
use crate::event::Event;
use crate::rule::Spike;

/// Weight of a new window in a slot's mean and variance once the slot has seen `1 / ALPHA`
/// windows (before, every window weighs the same: a plain mean). With hourly slots learned once
/// a day, about the last two weeks count.
const ALPHA: f32 = 0.07;

/// Closed windows taught at once after a silence: two weeks of hourly windows. A group silent
/// longer has its slots decay as far as they will (each is then close to 0 anyway).
const MAX_CATCH_UP: i64 = 14 * 24;

#[derive(Clone, Default, Serialize, Deserialize)]
pub struct SpikeGroup {
    /// Per slot: the usual count, its variance, and how many windows taught it (saturating).
    mean: Box<[f32]>,
    var: Box<[f32]>,
    seen: Box<[u8]>,
    /// The window being counted (`ts / window`) and its count; the previous window's count.
    window: i64,
    count: u32,
    previous: u32,
    /// When the history began (learning counts from here).
    since: i64,
    pub last_fired: Option<i64>,
    pub last_seen: i64,
}

impl GroupState for SpikeGroup {
    fn last_seen(&self) -> i64 {
        self.last_seen
    }
    fn events(&self) -> Vec<&Arc<Event>> {
        Vec::new()
    }
    /// Holds no events; a subject's counts go whole with its group key.
    fn forget(&mut self, _: &dyn Fn(&Event) -> bool) {}
    fn is_empty(&self) -> bool {
        self.seen.is_empty() && self.last_fired.is_none()
    }
}

/// What the alert says about the baseline.
pub struct Usual {
    pub mean: f32,
    pub sd: f32,
}

impl SpikeGroup {
    /// Counts an event (in event-time order); fires when the sliding count stands out from
    /// the usual count of its slot by every test the rule sets, above `min_count`, once the
    /// group has learned for `learn_for`.
    pub fn observe(&mut self, e: &Arc<Event>, opts: &Spike) -> Option<(Fired, Usual)> {
        let slots = opts.seasonality.slots();
        if self.seen.len() != slots {
            *self = SpikeGroup {
                mean: vec![0.0; slots].into(),
                var: vec![0.0; slots].into(),
                seen: vec![0; slots].into(),
                window: e.ts.div_euclid(opts.window_ms),
                since: e.ts,
                last_fired: self.last_fired,
                ..SpikeGroup::default()
            };
        }
        self.last_seen = e.ts;
        self.roll_to(e.ts.div_euclid(opts.window_ms), opts);
        self.count = self.count.saturating_add(1);
        if e.ts - self.since < opts.learn_for_ms {
            return None;
        }
        let into_window = e.ts.rem_euclid(opts.window_ms) as f64 / opts.window_ms as f64;
        let sliding = f64::from(self.count) + f64::from(self.previous) * (1.0 - into_window);
        let sliding = sliding.floor();
        // The sliding window spans the end of the previous window and the start of this one:
        // what is usual for it is mixed from both slots in the same shares (otherwise the
        // hour after a usual rush would look like a spike).
        let (now, before) = (
            opts.seasonality.slot(e.ts),
            opts.seasonality.slot(e.ts - opts.window_ms),
        );
        let mix = |v: &[f32]| {
            f64::from(v[now]) * into_window + f64::from(v[before]) * (1.0 - into_window)
        };
        let mean = mix(&self.mean);
        // Counts vary at least as a Poisson count does: a perfectly steady history does not
        // make one extra event a spike of infinite deviations.
        let sd = mix(&self.var).max(mean).max(0.0).sqrt();
        let above_factor = opts.factor.is_none_or(|f| sliding >= f * mean);
        let above_deviations = opts.deviations.is_none_or(|d| sliding >= mean + d * sd);
        let fires = sliding >= f64::from(opts.min_count) && above_factor && above_deviations;
        fires.then(|| {
            (
                Fired {
                    count: sliding as u64,
                    // The count covers the last window: first_seen is its start.
                    first_ts: e.ts.saturating_sub(opts.window_ms).max(self.since),
                    triggers: vec![Arc::clone(e)],
                    note: Note::None,
                },
                Usual {
                    mean: mean as f32,
                    sd: sd as f32,
                },
            )
        })
    }

    /// Closes every window before `window`, teaching each its slot (silent ones as 0).
    fn roll_to(&mut self, window: i64, opts: &Spike) {
        if window <= self.window {
            return;
        }
        let closed = window - self.window;
        let first_taught = (self.window).max(window - MAX_CATCH_UP);
        for w in first_taught..window {
            let count = if w == self.window { self.count } else { 0 };
            self.learn(opts.seasonality.slot(w * opts.window_ms), count as f32);
        }
        self.previous = if closed == 1 { self.count } else { 0 };
        self.count = 0;
        self.window = window;
    }

    fn learn(&mut self, slot: usize, x: f32) {
        self.seen[slot] = self.seen[slot].saturating_add(1);
        let alpha = ALPHA.max(1.0 / f32::from(self.seen[slot]));
        let diff = x - self.mean[slot];
        let step = alpha * diff;
        self.mean[slot] += step;
        self.var[slot] = (1.0 - alpha) * (self.var[slot] + diff * step);
    }

    /// Bytes a group holds: the struct and its slot arrays.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        std::mem::size_of::<SpikeGroup>()
            + self.mean.len() * 4
            + self.var.len() * 4
            + self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;
    use crate::rule::Seasonality;

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;

    fn at(ms: i64) -> Arc<Event> {
        Arc::new(Event::new(ms, EventType::LoginFailure))
    }

    fn opts(seasonality: Seasonality) -> Spike {
        Spike {
            window_ms: HOUR,
            learn_for_ms: 7 * DAY,
            factor: Some(4.0),
            deviations: Some(4.0),
            min_count: 20,
            seasonality,
        }
    }

    /// Feeds `per_hour(hour_index)` events evenly into each hour of `hours`; returns alerts.
    fn feed(
        g: &mut SpikeGroup,
        o: &Spike,
        hours: std::ops::Range<i64>,
        per_hour: impl Fn(i64) -> i64,
    ) -> usize {
        let mut fired = 0;
        for h in hours {
            let n = per_hour(h);
            for i in 0..n {
                if g.observe(&at(h * HOUR + i * HOUR / n.max(1)), o).is_some() {
                    fired += 1;
                }
            }
        }
        fired
    }

    /// Mondays to Fridays 30 failures at 9:00, 5 other working hours, 1 at night and weekends.
    fn office(h: i64) -> i64 {
        let weekday = (h / 24).rem_euclid(7);
        let hour = h.rem_euclid(24);
        match (weekday, hour) {
            (2 | 3, _) => 1,
            (_, 9) => 30,
            (_, 8..=17) => 5,
            _ => 1,
        }
    }

    #[test]
    fn a_busy_monday_morning_is_usual_and_a_burst_at_night_is_not() {
        let o = opts(Seasonality::WeekdayHour);
        let mut g = SpikeGroup::default();
        // Three weeks of office rhythm (day 0 is a Thursday): nothing fires.
        assert_eq!(feed(&mut g, &o, 0..21 * 24, office), 0);
        // The 9:00 rush again: usual.
        let start = 21 * 24 + 4 * 24; // a Monday
        assert_eq!(feed(&mut g, &o, start..start + 24, office), 0);
        // 60 failures at 03:00 the next night: fires.
        let night = start + 24 + 3;
        assert!(feed(&mut g, &o, night..night + 1, |_| 60) > 0);
        assert!(g.bytes() < 1024, "{}", g.bytes());
    }

    #[test]
    fn nothing_fires_while_learning_or_below_the_floor() {
        let o = opts(Seasonality::HourOfDay);
        let mut g = SpikeGroup::default();
        // A burst on day 2: still learning.
        assert_eq!(feed(&mut g, &o, 0..48, |_| 1), 0);
        assert_eq!(feed(&mut g, &o, 48..49, |_| 200), 0);
        // After learning, a quiet group going from 0 to 19 in an hour stays under the floor.
        let mut g = SpikeGroup::default();
        assert_eq!(feed(&mut g, &o, 0..8 * 24, |h| i64::from(h % 24 == 0)), 0);
        assert_eq!(feed(&mut g, &o, 8 * 24 + 5..8 * 24 + 6, |_| 19), 0);
        assert!(feed(&mut g, &o, 9 * 24 + 5..9 * 24 + 6, |_| 40) > 0);
    }

    #[test]
    fn the_same_week_learned_twice_gives_the_same_alerts_after_a_round_trip() {
        let o = opts(Seasonality::WeekdayHour);
        let mut g = SpikeGroup::default();
        feed(&mut g, &o, 0..10 * 24, office);
        let json = serde_json::to_string(&g).unwrap();
        let mut back: SpikeGroup = serde_json::from_str(&json).unwrap();
        let night = 10 * 24 + 3;
        assert_eq!(
            feed(&mut g, &o, night..night + 1, |_| 80),
            feed(&mut back, &o, night..night + 1, |_| 80)
        );
    }

    #[test]
    fn slots_follow_the_weekday_and_hour() {
        // 2026-01-01 was a Thursday, 2026-01-03 a Saturday.
        let thursday_9 = 1_767_225_600_000 + 9 * HOUR;
        assert_eq!(Seasonality::WeekdayHour.slot(thursday_9), 9);
        assert_eq!(Seasonality::WeekdayHour.slot(thursday_9 + 2 * DAY), 33);
        assert_eq!(Seasonality::HourOfDay.slot(thursday_9 + 2 * DAY), 9);
        assert_eq!(Seasonality::None.slot(thursday_9), 0);
    }
}
