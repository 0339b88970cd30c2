//! The engine's state as key/value pairs for the state store: what changed since the last
//! checkpoint goes out, everything comes back on restore. No IO here; `crate::state` does it.
//!
//! Key layout (all in one keyspace, so one atomic batch covers a whole checkpoint):
//!
//! | key | value |
//! |---|---|
//! | `g/<rule id>\0<group key>` | JSON of one group's state (events with their fingerprints) |
//! | `r/<rule id>` | the rule's shape hash: groups of a rule whose shape changed are dropped |
//! | `e/pending` | JSON list of the events held back for lateness |
//! | `e/clock` | JSON `{max_ts, released}`: the reorder buffer's position |
//! | `d/<segment, u64 BE>` | packed `(ts i64 LE, id hash u64 LE)` of event ids first seen in one checkpoint |

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::held::{Held, concerns};
use super::table::{GroupState, Table};
use super::{Engine, group};
use crate::rule::{Kind, Rule};

pub const GROUP_PREFIX: &[u8] = b"g/";
pub const RULE_PREFIX: &[u8] = b"r/";
pub const PENDING_KEY: &[u8] = b"e/pending";
pub const CLOCK_KEY: &[u8] = b"e/clock";
pub const DEDUP_PREFIX: &[u8] = b"d/";

/// Writes produced by a checkpoint, applied by the store in one atomic batch.
#[derive(Debug, Default)]
pub struct StateWrites {
    pub puts: Vec<(Vec<u8>, Vec<u8>)>,
    pub deletes: Vec<Vec<u8>>,
}

impl StateWrites {
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.puts.push((key, value));
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        self.deletes.push(key);
    }

    pub fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.deletes.is_empty()
    }
}

/// What a restore found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RestoreReport {
    pub groups: usize,
    pub pending: usize,
    /// Groups of rules that are gone or changed shape: dropped.
    pub dropped: usize,
}

/// A table with its group type erased, for what the engine does to every table alike.
pub trait AnyTable {
    fn len(&self) -> usize;
    fn evictions(&self) -> u64;
    fn expire(&mut self, oldest: i64);
    fn drain_changes(&mut self, write: &mut dyn FnMut(&str, Option<Vec<u8>>));
    fn restore(&mut self, key: &str, value: &[u8]) -> Result<(), String>;
    fn forget(&mut self, subject: &str) -> usize;
    fn export(&self, subject: &str) -> Vec<(String, serde_json::Value)>;
}

impl<G: GroupState> AnyTable for Table<G> {
    fn len(&self) -> usize {
        Table::len(self)
    }
    fn evictions(&self) -> u64 {
        self.evictions
    }
    fn expire(&mut self, oldest: i64) {
        Table::expire(self, oldest)
    }
    fn drain_changes(&mut self, write: &mut dyn FnMut(&str, Option<Vec<u8>>)) {
        Table::drain_changes(self, &mut |key, state| {
            write(
                key,
                state.map(|s| serde_json::to_vec(s).expect("group state serialises")),
            )
        })
    }
    fn restore(&mut self, key: &str, value: &[u8]) -> Result<(), String> {
        let state: G = serde_json::from_slice(value).map_err(|e| e.to_string())?;
        Table::restore(self, key, state);
        Ok(())
    }
    fn forget(&mut self, subject: &str) -> usize {
        Table::forget(self, &|key| group::names(key, subject), &|e| {
            concerns(e, subject)
        })
    }
    fn export(&self, subject: &str) -> Vec<(String, serde_json::Value)> {
        let key_names = |key: &str| group::names(key, subject);
        let about = |e: &crate::event::Event| concerns(e, subject);
        self.about(&key_names, &about)
            .map(|(k, g)| {
                (
                    group::display(k),
                    serde_json::to_value(g).unwrap_or_default(),
                )
            })
            .collect()
    }
}

/// A stable hash of what a rule counts: kind (with window and threshold), match and grouping.
pub fn rule_shape(rule: &Rule) -> String {
    let kind = match &rule.kind {
        // Baselines take weeks to learn: tuning when they alert must not throw them away,
        // only a change of what they hold (the field) does.
        Kind::NewValue(n) => format!("NewValue({:?})", n.field),
        Kind::ImpossibleTravel(_) => "ImpossibleTravel".to_string(),
        other => format!("{other:?}"),
    };
    let text = format!("{kind}|{:?}|{:?}", rule.filter, rule.group_by);
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
}

fn group_key(rule: &str, group: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + rule.len() + 1 + group.len());
    k.extend_from_slice(GROUP_PREFIX);
    k.extend_from_slice(rule.as_bytes());
    k.push(0);
    k.extend_from_slice(group.as_bytes());
    k
}

#[derive(Serialize, Deserialize)]
struct Clock {
    max_ts: i64,
    released: Option<(i64, u64)>,
    last_sweep: i64,
}

impl Engine {
    /// Everything that changed since the last checkpoint (or since restore).
    pub fn checkpoint(&mut self, out: &mut StateWrites) {
        for key in self.stale_keys.drain(..) {
            out.delete(key);
        }
        for live in &mut self.rules {
            let rule = live.rule.id.clone();
            live.groups
                .table_mut()
                .drain_changes(&mut |key, value| match value {
                    Some(v) => out.put(group_key(&rule, key), v),
                    None => out.delete(group_key(&rule, key)),
                });
            out.put(
                [RULE_PREFIX, rule.as_bytes()].concat(),
                live.shape.clone().into_bytes(),
            );
        }
        let pending: Vec<Held> = self
            .reorder
            .pending()
            .map(|e| Held(Arc::clone(e)))
            .collect();
        out.put(
            PENDING_KEY.to_vec(),
            serde_json::to_vec(&pending).expect("events serialise"),
        );
        let (max_ts, released) = self.reorder.position();
        let clock = Clock {
            max_ts,
            released,
            last_sweep: self.last_sweep,
        };
        out.put(
            CLOCK_KEY.to_vec(),
            serde_json::to_vec(&clock).expect("clock serialises"),
        );
        self.dedup.checkpoint(DEDUP_PREFIX, out);
    }

    /// Restores state from every stored entry (any order). Groups of rules that no longer
    /// exist or whose shape changed are dropped (and deleted at the next checkpoint).
    pub fn restore(
        &mut self,
        entries: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
    ) -> Result<RestoreReport, String> {
        let mut report = RestoreReport::default();
        let mut groups = Vec::new();
        let mut shapes = std::collections::HashMap::new();
        for (key, value) in entries {
            if let Some(rest) = key.strip_prefix(GROUP_PREFIX) {
                groups.push((rest.to_vec(), value));
            } else if let Some(rule) = key.strip_prefix(RULE_PREFIX) {
                shapes.insert(
                    String::from_utf8_lossy(rule).into_owned(),
                    String::from_utf8_lossy(&value).into_owned(),
                );
            } else if key == PENDING_KEY {
                let pending: Vec<Held> =
                    serde_json::from_slice(&value).map_err(|e| format!("pending events: {e}"))?;
                report.pending = pending.len();
                for h in pending {
                    self.reorder.push(h.0);
                }
            } else if key == CLOCK_KEY {
                let clock: Clock =
                    serde_json::from_slice(&value).map_err(|e| format!("clock: {e}"))?;
                self.reorder.set_position(clock.max_ts, clock.released);
                self.last_sweep = clock.last_sweep;
            } else if let Some(seg) = key.strip_prefix(DEDUP_PREFIX) {
                self.dedup.restore_segment(seg, &value)?;
            }
        }
        for (rest, value) in groups {
            let split = rest
                .iter()
                .position(|&b| b == 0)
                .ok_or("a group key without a rule")?;
            let rule = std::str::from_utf8(&rest[..split]).map_err(|e| e.to_string())?;
            let group = std::str::from_utf8(&rest[split + 1..]).map_err(|e| e.to_string())?;
            let live = self
                .rules
                .iter_mut()
                .find(|l| l.rule.id == rule && shapes.get(rule) == Some(&l.shape));
            match live {
                Some(live) => {
                    live.groups
                        .table_mut()
                        .restore(group, &value)
                        .map_err(|e| format!("rule {rule}: {e}"))?;
                    report.groups += 1;
                }
                None => {
                    report.dropped += 1;
                    self.stale_keys.push(group_key(rule, group));
                }
            }
        }
        for rule in shapes.keys() {
            if !self.rules.iter().any(|l| &l.rule.id == rule) {
                self.stale_keys
                    .push([RULE_PREFIX, rule.as_bytes()].concat());
            }
        }
        Ok(report)
    }

    /// Removes everything held about a subject (a `user` or `username`): groups keyed by it,
    /// its events in other groups and in the lateness buffer. Returns how much was touched.
    pub fn forget(&mut self, subject: &str) -> usize {
        let mut touched = self.reorder.forget(&|e| concerns(e, subject));
        for live in &mut self.rules {
            touched += live.groups.table_mut().forget(subject);
        }
        touched
    }

    /// Everything held about a subject, as JSON objects.
    pub fn export(&self, subject: &str) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        for live in &self.rules {
            for (group, state) in live.groups.table().export(subject) {
                out.push(serde_json::json!({"table": "group", "rule": live.rule.id, "group": group, "state": state}));
            }
        }
        for e in self.reorder.pending().filter(|e| concerns(e, subject)) {
            out.push(serde_json::json!({"table": "pending", "event": &**e}));
        }
        out
    }
}
