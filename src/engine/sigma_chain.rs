//! Sigma correlations of correlations: when a correlation fires on an event, a copy of the
//! event marked with that firing (and the group it fired for) is offered to the correlations
//! that count it, round after round for longer chains. Correlations that only feed others
//! (`generate: false`) fire silently: their alerts are used here and then dropped.

use std::sync::Arc;

use super::{Alert, Engine};
use crate::event::Event;

/// Rounds of chaining per event; resolution refuses cycles, this only bounds the work.
const MAX_CHAIN_DEPTH: usize = 8;

impl Engine {
    /// Runs the chains for the alerts `out[from..]` raised by `e`, then drops silent alerts.
    pub(super) fn sigma_chains(&mut self, e: &Arc<Event>, from: usize, out: &mut Vec<Alert>) {
        let mut round_from = from;
        for _ in 0..MAX_CHAIN_DEPTH {
            let derived = match &self.sigma {
                Some(stage) if stage.has_chains() && round_from < out.len() => {
                    let fired: Vec<_> = out[round_from..]
                        .iter()
                        .map(|a| (a.rule.as_str(), &a.group))
                        .collect();
                    stage.chained(e, &fired)
                }
                _ => None,
            };
            let Some(derived) = derived else { break };
            round_from = out.len();
            self.offer(&Arc::new(derived), out, true);
        }
        if let Some(stage) = &self.sigma {
            let mut i = from;
            while i < out.len() {
                if stage.is_silent(&out[i].rule) {
                    out.remove(i);
                } else {
                    i += 1;
                }
            }
        }
    }
}
