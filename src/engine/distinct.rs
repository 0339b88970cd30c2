//! `distinct`: the number of distinct values of a field per group inside a sliding window.
//!
//! Each value is kept once, with its most recent event, ordered by that event's time; at most
//! `threshold` values are held, since reaching N distinct values is all the rule asks.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::held::Held;
use super::table::GroupState;
use super::{Fired, Note};
use crate::event::Event;

#[derive(Default, Clone, Serialize, Deserialize)]
pub struct DistinctGroup {
    values: VecDeque<(Box<str>, Held)>,
    pub last_fired: Option<i64>,
    pub last_seen: i64,
}

impl GroupState for DistinctGroup {
    fn last_seen(&self) -> i64 {
        self.last_seen
    }
    fn events(&self) -> Vec<&Arc<Event>> {
        self.values.iter().map(|(_, h)| &h.0).collect()
    }
    fn forget(&mut self, about: &dyn Fn(&Event) -> bool) {
        self.values.retain(|(_, e)| !about(e));
    }
    fn is_empty(&self) -> bool {
        self.values.is_empty() && self.last_fired.is_none()
    }
}

impl DistinctGroup {
    pub fn observe(
        &mut self,
        value: &str,
        e: &Arc<Event>,
        window_ms: i64,
        threshold: u32,
    ) -> Option<Fired> {
        self.last_seen = e.ts;
        let oldest = e.ts.saturating_sub(window_ms);
        while self.values.front().is_some_and(|(_, f)| f.ts < oldest) {
            self.values.pop_front();
        }
        // A value seen again moves to the back with its newer time.
        let entry = match self.values.iter().position(|(v, _)| &**v == value) {
            Some(i) => self.values.remove(i).map(|(v, _)| v),
            None => None,
        };
        let key = entry.unwrap_or_else(|| value.into());
        self.values.push_back((key, Held(Arc::clone(e))));
        if self.values.len() > threshold as usize {
            self.values.pop_front();
        }
        (self.values.len() >= threshold as usize).then(|| Fired {
            count: self.values.len() as u64,
            first_ts: self.values.front().map_or(e.ts, |(_, f)| f.ts),
            triggers: self.values.iter().map(|(_, ev)| Arc::clone(ev)).collect(),
            note: Note::None,
        })
    }

    /// Drops `value` from the count (`cleared_by`); true if it was counted.
    pub fn clear(&mut self, value: &str) -> bool {
        let before = self.values.len();
        self.values.retain(|(v, _)| &**v != value);
        self.values.len() != before
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.values.len()
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
    fn repeated_values_count_once_and_refresh_their_time() {
        let mut g = DistinctGroup::default();
        assert!(g.observe("a", &at(0), 10_000, 3).is_none());
        assert!(g.observe("b", &at(1_000), 10_000, 3).is_none());
        assert!(g.observe("a", &at(2_000), 10_000, 3).is_none());
        assert_eq!(g.len(), 2);
        // `a` was refreshed at 2s, so at 11.5s it is still inside the window; `b` is not.
        assert!(g.observe("c", &at(11_500), 10_000, 3).is_none());
        assert_eq!(g.observe("d", &at(11_600), 10_000, 3).unwrap().count, 3);
    }

    #[test]
    fn a_cleared_value_leaves_the_count_and_can_come_back() {
        let mut g = DistinctGroup::default();
        assert!(g.observe("a", &at(0), 10_000, 3).is_none());
        assert!(g.observe("b", &at(1_000), 10_000, 3).is_none());
        assert!(g.clear("a"));
        assert!(!g.clear("zzz"));
        assert!(g.observe("c", &at(2_000), 10_000, 3).is_none());
        assert_eq!(g.observe("a", &at(3_000), 10_000, 3).unwrap().count, 3);
    }

    #[test]
    fn never_holds_more_values_than_the_threshold() {
        let mut g = DistinctGroup::default();
        for i in 0..1000 {
            g.observe(&i.to_string(), &at(i), 60_000, 8);
            assert!(g.len() <= 8);
        }
    }
}
