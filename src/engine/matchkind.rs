//! `match`: every matching event is an alert; per group only the last alert time is kept,
//! and only when the rule suppresses repeats.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::table::GroupState;
use crate::event::Event;

#[derive(Default, Clone, Serialize, Deserialize)]
pub struct MatchGroup {
    pub last_fired: i64,
}

impl GroupState for MatchGroup {
    fn last_seen(&self) -> i64 {
        self.last_fired
    }
    fn events(&self) -> Vec<&Arc<Event>> {
        Vec::new()
    }
    fn forget(&mut self, _: &dyn Fn(&Event) -> bool) {}
    fn is_empty(&self) -> bool {
        false
    }
}
