//! `sequence`: steps that must happen in order for one group within a time limit.
//!
//! The steps are flattened into positions (5 failures then a success = 6 positions). For each
//! number of positions matched, a group keeps only the partial match that started latest:
//! every later constraint depends only on the start time, so the latest start dominates and the
//! state stays at one entry per position, however many events arrive.

use std::sync::Arc;

use super::Fired;
use crate::event::Event;
use crate::rule::Step;

/// The events of a partial match, newest first, shared between partials.
struct Link {
    event: Arc<Event>,
    prev: Option<Arc<Link>>,
}

#[derive(Clone)]
struct Partial {
    start: i64,
    chain: Option<Arc<Link>>,
}

#[derive(Default)]
pub struct SequenceGroup {
    /// `partials[k]`: the latest-starting match of the first `k` positions (index 0 unused).
    partials: Vec<Option<Partial>>,
    pub last_fired: Option<i64>,
    pub last_seen: i64,
}

/// The step each flattened position needs.
pub fn positions(steps: &[Step]) -> Vec<usize> {
    steps
        .iter()
        .enumerate()
        .flat_map(|(i, s)| std::iter::repeat_n(i, s.count as usize))
        .collect()
}

impl SequenceGroup {
    /// `step_matches[s]` says whether the event matches step `s`.
    pub fn observe(
        &mut self,
        e: &Arc<Event>,
        step_matches: &[bool],
        positions: &[usize],
        within_ms: i64,
    ) -> Option<Fired> {
        self.last_seen = e.ts;
        let total = positions.len();
        if self.partials.len() != total {
            self.partials = vec![None; total];
        }
        let oldest = e.ts.saturating_sub(within_ms);
        for p in self.partials.iter_mut() {
            if p.as_ref().is_some_and(|p| p.start < oldest) {
                *p = None;
            }
        }
        let mut completed: Option<Partial> = None;
        // Highest position first, so one event advances each partial by at most one step.
        for k in (1..=total).rev() {
            if !step_matches[positions[k - 1]] {
                continue;
            }
            let from = if k == 1 {
                Partial {
                    start: e.ts,
                    chain: None,
                }
            } else {
                match &self.partials[k - 1] {
                    Some(p) => p.clone(),
                    None => continue,
                }
            };
            let advanced = Partial {
                start: from.start,
                chain: Some(Arc::new(Link {
                    event: Arc::clone(e),
                    prev: from.chain,
                })),
            };
            let slot = if k == total {
                &mut completed
            } else {
                &mut self.partials[k]
            };
            if slot.as_ref().is_none_or(|cur| advanced.start > cur.start) {
                *slot = Some(advanced);
            }
        }
        let done = completed?;
        // A completed sequence starts over: its events cannot complete another one.
        self.partials.iter_mut().for_each(|p| *p = None);
        let mut triggers = Vec::with_capacity(total);
        let mut link = done.chain;
        while let Some(l) = link {
            triggers.push(Arc::clone(&l.event));
            link = l.prev.clone();
        }
        triggers.reverse();
        Some(Fired {
            count: triggers.len() as u64,
            first_ts: done.start,
            triggers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType::{self, LoginFailure as F, LoginSuccess as S};
    use crate::rule::Matcher;

    fn step(count: u32) -> Step {
        Step {
            matcher: Matcher::always(),
            count,
        }
    }

    fn run(events: &[(i64, EventType)], within: i64) -> Vec<u64> {
        let steps = [step(3), step(1)];
        let pos = positions(&steps);
        let mut g = SequenceGroup::default();
        let mut fired = Vec::new();
        for (ts, kind) in events {
            let e = Arc::new(Event::new(*ts, *kind));
            let matches = [*kind == F, *kind == S];
            if let Some(f) = g.observe(&e, &matches, &pos, within) {
                fired.push(f.count);
            }
        }
        fired
    }

    #[test]
    fn three_failures_then_a_success_fire_with_all_four_events() {
        assert_eq!(run(&[(0, F), (1, F), (2, F), (3, S)], 10), vec![4]);
    }

    #[test]
    fn a_success_before_enough_failures_does_not_fire() {
        assert!(run(&[(0, F), (1, F), (2, S)], 10).is_empty());
    }

    #[test]
    fn the_whole_sequence_must_fit_within_the_limit() {
        assert!(run(&[(0, F), (1, F), (2, F), (11, S)], 10).is_empty());
        // Later failures restart the clock: 1, 2, 9 then 11 fits (span 10).
        assert_eq!(run(&[(0, F), (1, F), (2, F), (9, F), (11, S)], 10), vec![4]);
    }
}
