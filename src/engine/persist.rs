//! The engine's state as key/value pairs for the state store: what changed since the last
//! checkpoint goes out, everything comes back on restore. No IO here; `crate::state` does it.
//!
//! Groups are written log-structured: each checkpoint writes one blob holding every group that
//! changed (a delta), and every [`SNAPSHOT_EVERY`] checkpoints one blob holding all groups (a
//! snapshot) that replaces everything before it. One large value per checkpoint instead of
//! one per group matters: sled's cost is per key (20k small values take ~10x longer to write
//! than the same bytes in a few large ones). Blobs are serialised on the checkpoint writer's
//! thread, from copies of the changed groups (cheap: events are shared), not on the detection
//! thread. Inside a blob, groups refer to the events they hold by fingerprint, and each event
//! is written once per snapshot cycle, in the first blob that needs it (see [`super::held`]).
//!
//! Key layout (all in one keyspace, so one atomic batch covers a whole checkpoint):
//!
//! | key | value |
//! |---|---|
//! | `g/<seq u64 BE><0>` | a snapshot: JSON lines `[fingerprint, event]` for every event the groups hold, then `{"rule", "key", "state"}` for every group |
//! | `g/<seq u64 BE><1>` | a delta: lines for the events not stored since the snapshot, then for changed groups (`"state": null` for removed ones) |
//! | `r/<rule id>` | the rule's shape (`shape.rs`: `v<version>:<hash>`): groups of a rule whose shape changed are dropped |
//! | `e/held/<seq u64 BE>` | the events held back for lateness, one segment per checkpoint (`held_log.rs`) |
//! | `e/pending` | (older versions) JSON list of all the events held back: read, then replaced |
//! | `e/clock` | JSON `{max_ts, released, last_sweep}`: the reorder buffer's position |
//! | `d/<segment u64 BE>` | packed `(ts i64 LE, id hash u64 LE)` of event ids first seen in one checkpoint |

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::table::GroupState;

use super::held::{self, Held, RestorePool, concerns};
use super::held_log::HELD_PREFIX;
use super::table::Table;
use super::{Engine, group, shape};

use crate::state::StateWrites;

pub const GROUP_PREFIX: &[u8] = b"g/";
/// Deltas between full snapshots: at one checkpoint a second, a snapshot a minute bounds what a
/// restore replays and how long removed data lingers on disk.
pub const SNAPSHOT_EVERY: u32 = 60;
/// Events stored since the last snapshot beyond which the next checkpoint is a snapshot: the
/// set of their fingerprints is the memory the log costs (about 16 MB at this bound).
const MAX_STORED_EVENTS: usize = 1_000_000;
const SNAPSHOT: u8 = 0;
const DELTA: u8 = 1;
pub const RULE_PREFIX: &[u8] = b"r/";
pub const PENDING_KEY: &[u8] = b"e/pending";
pub const CLOCK_KEY: &[u8] = b"e/clock";
pub const DEDUP_PREFIX: &[u8] = b"d/";
/// Every prefix the engine keeps its state under: what a restore reads
/// (`state::scan_prefixes`). The store itself knows none of them.
pub const STATE_PREFIXES: [&[u8]; 4] = [GROUP_PREFIX, RULE_PREFIX, b"e/", DEDUP_PREFIX];

/// What a restore found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RestoreReport {
    pub groups: usize,
    pub pending: usize,
    /// Groups of rules that are gone or changed shape: dropped.
    pub dropped: usize,
}

/// Writes one table's lines into a blob (runs on the checkpoint writer's thread).
pub type Encoder = Box<dyn FnOnce(&mut Vec<u8>) + Send>;

/// A table with its group type erased, for what the engine does to every table alike.
pub trait AnyTable {
    fn len(&self) -> usize;
    fn evictions(&self) -> u64;
    fn expire(&mut self, oldest: i64);
    /// Drops groups last seen after `latest`; returns how many.
    fn drop_after(&mut self, latest: i64) -> usize;
    /// The newest `last_seen` of any group.
    fn newest(&self) -> Option<i64>;
    /// The changes since the last checkpoint, or `None` when there are none.
    fn changes(&mut self, rule: &str) -> Option<Encoder>;
    /// Every group.
    fn snapshot(&mut self, rule: &str) -> Encoder;
    /// Applies one stored line: a group's state, or `None` for a removed group.
    fn restore(&mut self, key: &str, state: Option<&str>) -> Result<(), String>;
    fn forget(&mut self, subject: &str) -> usize;
    fn export(&self, subject: &str) -> Vec<(String, serde_json::Value)>;
}

/// One line of a blob.
#[derive(Serialize)]
struct Line<'a, G> {
    rule: &'a str,
    key: &'a str,
    state: Option<&'a G>,
}

#[derive(Deserialize)]
struct StoredLine<'a> {
    rule: String,
    key: String,
    #[serde(borrow)]
    state: Option<&'a serde_json::value::RawValue>,
}

fn encoder<G: GroupState>(rule: &str, items: Vec<(Box<str>, Option<G>)>) -> Encoder {
    let rule = rule.to_string();
    Box::new(move |out: &mut Vec<u8>| {
        for (key, state) in &items {
            let line = Line {
                rule: &rule,
                key,
                state: state.as_ref(),
            };
            serde_json::to_writer(&mut *out, &line).expect("group state serialises");
            out.push(b'\n');
        }
    })
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
    fn drop_after(&mut self, latest: i64) -> usize {
        Table::drop_after(self, latest)
    }
    fn newest(&self) -> Option<i64> {
        Table::newest(self)
    }
    fn changes(&mut self, rule: &str) -> Option<Encoder> {
        let items = self.drain_changes();
        (!items.is_empty()).then(|| encoder(rule, items))
    }
    fn snapshot(&mut self, rule: &str) -> Encoder {
        encoder(rule, Table::snapshot(self))
    }
    fn restore(&mut self, key: &str, state: Option<&str>) -> Result<(), String> {
        match state {
            Some(json) => {
                let state: G = serde_json::from_str(json).map_err(|e| e.to_string())?;
                Table::restore(self, key, state);
            }
            None => Table::remove_restored(self, key),
        }
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

impl GroupLog {
    /// Makes the next checkpoint a full snapshot (stored data must be rewritten).
    pub fn request_snapshot(&mut self) {
        self.snapshot_due = true;
    }
}

/// The set of stored events; a panic elsewhere cannot leave it half-changed in a way that
/// matters (the next snapshot rewrites it), so a poisoned lock is taken over.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn blob_key(seq: u64, kind: u8) -> Vec<u8> {
    [GROUP_PREFIX, &seq.to_be_bytes(), &[kind]].concat()
}

/// Where the group log stands: the next blob number and the blobs a snapshot replaces.
#[derive(Default)]
pub struct GroupLog {
    next_seq: u64,
    /// Keys of the last snapshot and the deltas after it.
    live_blobs: Vec<Vec<u8>>,
    deltas_since_snapshot: u32,
    /// Set when stored data must be rewritten without delay (after `forget`, or when a
    /// restore dropped the groups of changed rules).
    snapshot_due: bool,
    /// Fingerprints of the events in the live blobs. Shared with the blob encoders, which run
    /// on the checkpoint writer's thread in checkpoint order.
    stored_events: Arc<std::sync::Mutex<foldhash::HashSet<u64>>>,
    /// How many there are, readable without waiting for an encoder that holds the set.
    stored_count: Arc<std::sync::atomic::AtomicUsize>,
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
        let log = &mut self.group_log;
        let snapshot = log.snapshot_due
            || log.deltas_since_snapshot >= SNAPSHOT_EVERY
            || log.live_blobs.is_empty()
            || log.stored_count.load(std::sync::atomic::Ordering::Relaxed) >= MAX_STORED_EVENTS;
        let mut parts: Vec<Encoder> = Vec::new();
        for live in &mut self.rules {
            let rule = live.rule.id.as_str();
            let table = live.groups.table_mut();
            if snapshot {
                parts.push(table.snapshot(rule));
            } else if let Some(part) = table.changes(rule) {
                parts.push(part);
            }
            out.put(
                [RULE_PREFIX, rule.as_bytes()].concat(),
                live.shape.clone().into_bytes(),
            );
        }
        if snapshot || !parts.is_empty() {
            let key = blob_key(log.next_seq, if snapshot { SNAPSHOT } else { DELTA });
            log.next_seq += 1;
            if snapshot {
                for old in log.live_blobs.drain(..) {
                    out.delete(old);
                }
                log.deltas_since_snapshot = 0;
                log.snapshot_due = false;
            } else {
                log.deltas_since_snapshot += 1;
            }
            log.live_blobs.push(key.clone());
            let stored_events = Arc::clone(&log.stored_events);
            let stored_count = Arc::clone(&log.stored_count);
            out.defer(Box::new(move |w: &mut StateWrites| {
                let mut stored = lock(&stored_events);
                if snapshot {
                    stored.clear();
                }
                let mut groups = Vec::new();
                let ((), fresh) = held::encoding(&mut stored, || {
                    for part in parts {
                        part(&mut groups);
                    }
                });
                stored_count.store(stored.len(), std::sync::atomic::Ordering::Relaxed);
                let mut blob = Vec::with_capacity(groups.len() + fresh.len() * 256);
                for event in fresh {
                    serde_json::to_writer(&mut blob, &Held(event)).expect("events serialise");
                    blob.push(b'\n');
                }
                blob.extend_from_slice(&groups);
                w.put(key, blob);
            }));
        }
        self.reorder.checkpoint(out);
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

    /// Restores state from every stored entry, in key order. Groups of rules that no longer
    /// exist or whose shape changed are dropped (and the next checkpoint rewrites the log
    /// without them).
    pub fn restore(
        &mut self,
        entries: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
    ) -> Result<RestoreReport, String> {
        let mut report = RestoreReport::default();
        let mut blobs = Vec::new();
        let mut held_events = Vec::new();
        let mut shapes = std::collections::HashMap::new();
        for (key, value) in entries {
            if key.starts_with(GROUP_PREFIX) {
                blobs.push((key, value));
            } else if let Some(rule) = key.strip_prefix(RULE_PREFIX) {
                shapes.insert(
                    String::from_utf8_lossy(rule).into_owned(),
                    String::from_utf8_lossy(&value).into_owned(),
                );
            } else if key == PENDING_KEY || key.starts_with(HELD_PREFIX) {
                let pending: Vec<Held> =
                    serde_json::from_slice(&value).map_err(|e| format!("held events: {e}"))?;
                held_events.extend(pending);
                self.reorder.restored_key(&key);
            } else if key == CLOCK_KEY {
                let clock: Clock =
                    serde_json::from_slice(&value).map_err(|e| format!("clock: {e}"))?;
                self.reorder.set_position(clock.max_ts, clock.released);
                self.last_sweep = clock.last_sweep;
            } else if let Some(seg) = key.strip_prefix(DEDUP_PREFIX) {
                self.dedup.restore_segment(seg, &value)?;
            }
        }
        // Once the release point is known: a segment may still hold events released since.
        for h in held_events {
            if !self.reorder.is_released(&h) {
                report.pending += 1;
                self.reorder.push(h.0);
            }
        }
        blobs.sort_by(|a, b| a.0.cmp(&b.0));
        // Only the last snapshot and the deltas after it count; anything older is stale.
        let start = blobs
            .iter()
            .rposition(|(k, _)| k.last() == Some(&SNAPSHOT))
            .unwrap_or(0);
        for (key, _) in blobs.drain(..start) {
            self.stale_keys.push(key);
        }
        // State from before the versioned shape: a rule whose old shape is unchanged keeps its
        // groups (the next checkpoint stores the versioned shape).
        for live in &self.rules {
            if let Some(stored) = shapes.get_mut(&live.rule.id)
                && shape::is_legacy(stored)
                && *stored == shape::legacy_rule_shape(&live.rule)
            {
                stored.clone_from(&live.shape);
            }
        }
        let mut kept: std::collections::HashSet<(String, String)> =
            std::collections::HashSet::new();
        let pool = RestorePool::begin();
        let mut stored_events = lock(&self.group_log.stored_events);
        for (key, blob) in &blobs {
            let seq = key
                .get(GROUP_PREFIX.len()..GROUP_PREFIX.len() + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .ok_or("a malformed group blob key")?;
            self.group_log.next_seq = self.group_log.next_seq.max(seq + 1);
            self.group_log.live_blobs.push(key.clone());
            if key.last() == Some(&DELTA) {
                self.group_log.deltas_since_snapshot += 1;
            }
            for line in blob.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                if line.first() == Some(&b'[') {
                    let event: Held = serde_json::from_slice(line)
                        .map_err(|e| format!("group blob {seq}: an event: {e}"))?;
                    stored_events.insert(event.fingerprint);
                    pool.add(event);
                    continue;
                }
                let line: StoredLine<'_> =
                    serde_json::from_slice(line).map_err(|e| format!("group blob {seq}: {e}"))?;
                let live = self
                    .rules
                    .iter_mut()
                    .find(|l| l.rule.id == line.rule && shapes.get(&line.rule) == Some(&l.shape));
                let Some(live) = live else {
                    self.group_log.snapshot_due = true;
                    continue;
                };
                let state = line.state.map(|s| s.get()).filter(|s| *s != "null");
                live.groups
                    .table_mut()
                    .restore(&line.key, state)
                    .map_err(|e| format!("rule {}: {e}", line.rule))?;
                if state.is_some() {
                    kept.insert((line.rule, line.key));
                } else {
                    kept.remove(&(line.rule, line.key));
                }
            }
        }
        self.group_log
            .stored_count
            .store(stored_events.len(), std::sync::atomic::Ordering::Relaxed);
        drop(stored_events);
        drop(pool);
        report.groups = kept.len();
        for rule in shapes.keys() {
            if !self.rules.iter().any(|l| &l.rule.id == rule) {
                self.stale_keys
                    .push([RULE_PREFIX, rule.as_bytes()].concat());
                report.dropped += 1;
            }
        }
        if self.group_log.snapshot_due {
            report.dropped += 1;
        }
        Ok(report)
    }

    /// Removes everything held about a subject (a `user` or `username`): groups keyed by it,
    /// its events in other groups and in the lateness buffer. Returns how much was touched.
    pub fn forget(&mut self, subject: &str) -> usize {
        // The subject may be in older blobs: the next checkpoint rewrites everything.
        self.group_log.snapshot_due = true;
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::engine::EngineOptions;
    use crate::synth::Traffic;

    /// Applies checkpoints to a map, as the store does.
    fn commit(stored: &mut BTreeMap<Vec<u8>, Vec<u8>>, mut writes: StateWrites) {
        writes.resolve();
        for key in writes.deletes {
            stored.remove(&key);
        }
        stored.extend(writes.puts);
    }

    fn ids(alerts: &[crate::engine::Alert]) -> Vec<String> {
        alerts.iter().map(|a| a.id.clone()).collect()
    }

    #[test]
    fn a_restore_from_a_snapshot_and_its_deltas_continues_exactly() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let rules = crate::rule::load_dir(&dir).unwrap().enabled();
        let options = EngineOptions::default();
        let events = Traffic {
            attack_every: 300,
            ..Traffic::default()
        }
        .generate(30_000);

        let mut whole = Engine::new(rules.clone(), &options);
        let mut want = Vec::new();
        for e in events.iter().cloned() {
            whole.process(e, &mut want);
        }
        whole.flush(&mut want);

        // Checkpoints every 2,000 events (a snapshot, then deltas whose groups refer to
        // events stored by earlier blobs), a restart from the store after 20,000.
        let mut stored = BTreeMap::new();
        let mut first = Engine::new(rules.clone(), &options);
        let mut got = Vec::new();
        for (i, e) in events[..20_000].iter().cloned().enumerate() {
            first.process(e, &mut got);
            if (i + 1) % 2_000 == 0 {
                let mut w = StateWrites::default();
                first.checkpoint(&mut w);
                commit(&mut stored, w);
            }
        }
        let blobs = stored
            .keys()
            .filter(|k| k.starts_with(GROUP_PREFIX))
            .count();
        assert_eq!(blobs, 10, "one snapshot and nine deltas");
        let mut second = Engine::new(rules, &options);
        let report = second.restore(stored.clone()).unwrap();
        assert!(report.groups > 0 && report.dropped == 0, "{report:?}");
        for e in events[20_000..].iter().cloned() {
            second.process(e, &mut got);
        }
        second.flush(&mut got);
        assert!(want.len() > 10, "the traffic holds attacks: {}", want.len());
        assert_eq!(ids(&got), ids(&want));
    }

    /// The held events stored under `e/held/` segments.
    fn held_stored(stored: &BTreeMap<Vec<u8>, Vec<u8>>) -> usize {
        stored
            .iter()
            .filter(|(k, _)| k.starts_with(HELD_PREFIX))
            .map(|(_, v)| {
                serde_json::from_slice::<Vec<serde_json::Value>>(v)
                    .unwrap()
                    .len()
            })
            .sum()
    }

    #[test]
    fn the_lateness_buffer_is_checkpointed_incrementally_and_restores_exactly() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let rules = crate::rule::load_dir(&dir).unwrap().enabled();
        // An hour of lateness: the buffer holds all but the first events of the run.
        let options = EngineOptions {
            lateness_ms: 3_600_000,
            ..EngineOptions::default()
        };
        let events = Traffic {
            attack_every: 300,
            mean_gap_ms: 1_000,
            ..Traffic::default()
        }
        .generate(6_000);
        let mut whole = Engine::new(rules.clone(), &options);
        let mut want = Vec::new();
        for e in events.iter().cloned() {
            whole.process(e, &mut want);
        }
        whole.flush(&mut want);

        let mut stored = BTreeMap::new();
        let mut first = Engine::new(rules.clone(), &options);
        let mut got = Vec::new();
        for (i, chunk) in events[..4_000].chunks(500).enumerate() {
            for e in chunk.iter().cloned() {
                first.process(e, &mut got);
            }
            let before = held_stored(&stored);
            let mut w = StateWrites::default();
            first.checkpoint(&mut w);
            w.resolve();
            // Only this interval's events are written, not the whole buffer.
            let written: usize = w
                .puts
                .iter()
                .filter(|(k, _)| k.starts_with(HELD_PREFIX))
                .map(|(_, v)| {
                    serde_json::from_slice::<Vec<serde_json::Value>>(v)
                        .unwrap()
                        .len()
                })
                .sum();
            assert_eq!(written, 500, "checkpoint {i}");
            commit(&mut stored, w);
            // Segments whose events are all released are deleted.
            assert!(held_stored(&stored) <= before + 500);
            assert_eq!(
                first.reorder.stored_segments(),
                stored.keys().filter(|k| k.starts_with(HELD_PREFIX)).count()
            );
        }
        let (held, _) = first.held();
        assert!(held > 3_000 && held_stored(&stored) >= held, "{held}");
        assert!(!stored.contains_key(PENDING_KEY));

        let mut second = Engine::new(rules.clone(), &options);
        let report = second.restore(stored.clone()).unwrap();
        assert_eq!(report.pending, held);
        // The first checkpoint after a restore writes the buffer once, as one segment.
        let mut w = StateWrites::default();
        second.checkpoint(&mut w);
        commit(&mut stored, w);
        assert_eq!(second.reorder.stored_segments(), 1);
        assert_eq!(held_stored(&stored), held);
        for e in events[4_000..].iter().cloned() {
            second.process(e, &mut got);
        }
        second.flush(&mut got);
        assert!(want.len() > 5, "the traffic holds attacks: {}", want.len());
        assert_eq!(ids(&got), ids(&want));
        // Everything released: the next checkpoint leaves no segment behind.
        let mut w = StateWrites::default();
        second.checkpoint(&mut w);
        commit(&mut stored, w);
        assert_eq!(held_stored(&stored), 0);
        assert_eq!(second.reorder.stored_segments(), 0);
    }

    #[test]
    fn a_store_of_the_previous_version_restores_its_pending_list() {
        let mut old = BTreeMap::new();
        let mut e = crate::event::Event::new(5_000, crate::event::EventType::Other);
        e.username = Some("a@x.io".into());
        let held = vec![Held(Arc::new(e.with_computed_fingerprint()))];
        old.insert(PENDING_KEY.to_vec(), serde_json::to_vec(&held).unwrap());
        let mut engine = Engine::new(Vec::new(), &EngineOptions::default());
        assert_eq!(engine.restore(old.clone()).unwrap().pending, 1);
        let mut w = StateWrites::default();
        engine.checkpoint(&mut w);
        commit(&mut old, w);
        assert!(!old.contains_key(PENDING_KEY));
        assert_eq!(held_stored(&old), 1);
    }

    /// State written before shapes were versioned (`r/<id>` = a hash of `Debug` text) keeps
    /// its groups when the rule is unchanged; the next checkpoint stores the versioned shape.
    #[test]
    fn state_with_the_previous_unversioned_shapes_is_restored() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        let rules = crate::rule::load_dir(&dir).unwrap().enabled();
        let options = EngineOptions::default();
        let events = Traffic {
            attack_every: 300,
            ..Traffic::default()
        }
        .generate(5_000);
        let mut first = Engine::new(rules.clone(), &options);
        let mut alerts = Vec::new();
        for e in events {
            first.process(e, &mut alerts);
        }
        let mut stored = BTreeMap::new();
        let mut w = StateWrites::default();
        first.checkpoint(&mut w);
        commit(&mut stored, w);
        for r in &rules {
            stored.insert(
                [RULE_PREFIX, r.id.as_bytes()].concat(),
                shape::legacy_rule_shape(r).into_bytes(),
            );
        }
        let mut second = Engine::new(rules.clone(), &options);
        let report = second.restore(stored.clone()).unwrap();
        assert!(report.groups > 0 && report.dropped == 0, "{report:?}");
        let mut w = StateWrites::default();
        second.checkpoint(&mut w);
        commit(&mut stored, w);
        for r in &rules {
            let key = [RULE_PREFIX, r.id.as_bytes()].concat();
            assert!(stored[&key].starts_with(b"v1:"), "{}", r.id);
        }
    }
}
