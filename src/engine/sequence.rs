//! `sequence`: steps that must happen in order for one group within a time limit.
//!
//! The steps are flattened into positions (5 failures then a success = 6 positions). For each
//! number of positions matched, a group keeps only the partial match that started latest:
//! every later constraint depends only on the start time, so the latest start dominates and the
//! state stays at one entry per position, however many events arrive.

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::held::Held;
use super::table::GroupState;
use super::{Fired, Note};
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

#[derive(Default, Clone)]
pub struct SequenceGroup {
    /// `partials[k]`: the latest-starting match of the first `k` positions (index 0 unused).
    partials: Vec<Option<Partial>>,
    pub last_fired: Option<i64>,
    pub last_seen: i64,
}

impl Partial {
    /// The partial's events, oldest first.
    fn events(&self) -> Vec<Arc<Event>> {
        let mut out = Vec::new();
        let mut link = self.chain.as_ref();
        while let Some(l) = link {
            out.push(Arc::clone(&l.event));
            link = l.prev.as_ref();
        }
        out.reverse();
        out
    }

    fn from_events(start: i64, events: Vec<Arc<Event>>) -> Partial {
        let chain = events
            .into_iter()
            .fold(None, |prev, event| Some(Arc::new(Link { event, prev })));
        Partial { start, chain }
    }
}

/// How a group is written to the state store: each partial as its start and events.
#[derive(Serialize, Deserialize)]
struct Repr {
    partials: Vec<Option<(i64, Vec<Held>)>>,
    last_fired: Option<i64>,
    last_seen: i64,
}

impl Serialize for SequenceGroup {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Repr {
            partials: self
                .partials
                .iter()
                .map(|p| {
                    p.as_ref()
                        .map(|p| (p.start, p.events().into_iter().map(Held).collect()))
                })
                .collect(),
            last_fired: self.last_fired,
            last_seen: self.last_seen,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for SequenceGroup {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let repr = Repr::deserialize(d)?;
        Ok(SequenceGroup {
            partials: repr
                .partials
                .into_iter()
                .map(|p| {
                    p.map(|(start, events)| {
                        Partial::from_events(start, events.into_iter().map(|h| h.0).collect())
                    })
                })
                .collect(),
            last_fired: repr.last_fired,
            last_seen: repr.last_seen,
        })
    }
}

impl GroupState for SequenceGroup {
    fn last_seen(&self) -> i64 {
        self.last_seen
    }
    fn events(&self) -> Vec<&Arc<Event>> {
        let mut out = Vec::new();
        for p in self.partials.iter().flatten() {
            let mut link = p.chain.as_ref();
            while let Some(l) = link {
                out.push(&l.event);
                link = l.prev.as_ref();
            }
        }
        out
    }
    /// A partial match that involves the subject is dropped whole: without the subject's
    /// event it is not a match of that many steps.
    fn forget(&mut self, about: &dyn Fn(&Event) -> bool) {
        for slot in self.partials.iter_mut() {
            if slot
                .as_ref()
                .is_some_and(|p| p.events().iter().any(|e| about(e)))
            {
                *slot = None;
            }
        }
    }
    fn is_empty(&self) -> bool {
        self.partials.iter().all(Option::is_none) && self.last_fired.is_none()
    }
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
        let triggers = done.events();
        Some(Fired {
            count: triggers.len() as u64,
            first_ts: done.start,
            triggers,
            note: Note::None,
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
