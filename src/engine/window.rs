//! `threshold`: an exact sliding count per group on event time.
//!
//! A group keeps the timestamps (with their events) inside the window, never more than the
//! threshold: once N are held the count has been reached, and older entries can only leave.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::held::Held;
use super::table::GroupState;
use super::{Fired, Note};
use crate::event::Event;

#[derive(Default, Clone, Serialize, Deserialize)]
pub struct WindowGroup {
    events: VecDeque<Held>,
    pub last_fired: Option<i64>,
    pub last_seen: i64,
}

impl GroupState for WindowGroup {
    fn last_seen(&self) -> i64 {
        self.last_seen
    }
    fn events(&self) -> Vec<&Arc<Event>> {
        self.events.iter().map(|h| &h.0).collect()
    }
    fn forget(&mut self, about: &dyn Fn(&Event) -> bool) {
        self.events.retain(|e| !about(e));
    }
    fn is_empty(&self) -> bool {
        self.events.is_empty() && self.last_fired.is_none()
    }
}

impl WindowGroup {
    /// Adds an event (in event-time order). Returns what fired, if the count was reached.
    pub fn observe(&mut self, e: &Arc<Event>, window_ms: i64, threshold: u32) -> Option<Fired> {
        self.last_seen = e.ts;
        // Inclusive window: an event exactly `window` older still counts.
        let oldest = e.ts.saturating_sub(window_ms);
        while self.events.front().is_some_and(|f| f.ts < oldest) {
            self.events.pop_front();
        }
        self.events.push_back(Held(Arc::clone(e)));
        if self.events.len() > threshold as usize {
            self.events.pop_front();
        }
        (self.events.len() >= threshold as usize).then(|| Fired {
            count: self.events.len() as u64,
            first_ts: self.events.front().map_or(e.ts, |f| f.ts),
            triggers: self.events.iter().map(|h| Arc::clone(h)).collect(),
            note: Note::None,
        })
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.events.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;

    fn at(ms: i64) -> Arc<Event> {
        Arc::new(Event::new(ms, EventType::LoginFailure))
    }

    #[test]
    fn fires_when_n_fall_inside_any_window_and_not_otherwise() {
        let mut g = WindowGroup::default();
        // 3 within 10s, the first one exactly 10s before the third: inclusive, fires.
        assert!(g.observe(&at(0), 10_000, 3).is_none());
        assert!(g.observe(&at(5_000), 10_000, 3).is_none());
        assert_eq!(g.observe(&at(10_000), 10_000, 3).unwrap().count, 3);

        let mut g = WindowGroup::default();
        assert!(g.observe(&at(0), 10_000, 3).is_none());
        assert!(g.observe(&at(5_000), 10_000, 3).is_none());
        assert!(g.observe(&at(10_001), 10_000, 3).is_none());
        assert!(g.len() <= 3);
    }

    #[test]
    fn state_never_holds_more_than_the_threshold() {
        let mut g = WindowGroup::default();
        for i in 0..1000 {
            g.observe(&at(i), 60_000, 5);
            assert!(g.len() <= 5);
        }
    }
}
