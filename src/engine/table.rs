//! A per-rule table of group states: lookup without allocation, a cap with eviction of the
//! least recently seen groups, and change tracking for checkpoints.

use std::sync::Arc;

use foldhash::HashMap;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::event::Event;

/// What every kind's per-group state offers the table.
pub trait GroupState:
    Default + Clone + Send + Sync + Serialize + DeserializeOwned + 'static
{
    /// Event time of the group's last event (for expiry and eviction).
    fn last_seen(&self) -> i64;
    /// The events the state holds (for `export`).
    fn events(&self) -> Vec<&Arc<Event>>;
    /// Drops every held event `about` returns true for (for `forget`).
    fn forget(&mut self, about: &dyn Fn(&Event) -> bool);
    /// True when nothing is left worth keeping.
    fn is_empty(&self) -> bool;
}

/// When a table is full, this share of it (the least recently seen groups) is evicted at once,
/// so the cost of finding them is paid once per many inserts.
const EVICT_FRACTION: usize = 10;

struct Slot<G> {
    state: G,
    /// Changed since the last checkpoint.
    dirty: bool,
    /// Present in the stored state (written by a checkpoint, or restored). A group that
    /// lived and died between two checkpoints never reached the store, so its removal is not
    /// written either: under a fast stream most groups are such.
    stored: bool,
}

pub struct Table<G> {
    groups: HashMap<Box<str>, Slot<G>>,
    /// Stored keys removed since the last checkpoint (expired, evicted or forgotten).
    removed: Vec<Box<str>>,
    cap: usize,
    pub evictions: u64,
}

impl<G: GroupState> Table<G> {
    pub fn new(cap: usize) -> Table<G> {
        Table {
            groups: HashMap::default(),
            removed: Vec::new(),
            cap: cap.max(1),
            evictions: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.groups.len()
    }

    /// The group for `key`, created if needed (evicting the least recently seen when full),
    /// marked as changed.
    pub fn entry(&mut self, key: &str) -> &mut G {
        if !self.groups.contains_key(key) {
            if self.groups.len() >= self.cap {
                self.evict();
            }
            self.groups.insert(
                key.into(),
                Slot {
                    state: G::default(),
                    dirty: true,
                    stored: false,
                },
            );
        }
        let slot = self.groups.get_mut(key).expect("present or inserted above");
        slot.dirty = true;
        &mut slot.state
    }

    pub fn get(&self, key: &str) -> Option<&G> {
        self.groups.get(key).map(|s| &s.state)
    }

    /// The group for `key` if it exists (never created), marked as changed.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut G> {
        let slot = self.groups.get_mut(key)?;
        slot.dirty = true;
        Some(&mut slot.state)
    }

    /// Drops groups last seen before `oldest`.
    pub fn expire(&mut self, oldest: i64) {
        let removed = &mut self.removed;
        self.groups.retain(|k, s| {
            let keep = s.state.last_seen() >= oldest;
            if !keep && s.stored {
                removed.push(k.clone());
            }
            keep
        });
    }

    /// Drops groups last seen after `latest` (a restored state with a far-future clock).
    pub fn drop_after(&mut self, latest: i64) -> usize {
        let before = self.groups.len();
        let removed = &mut self.removed;
        self.groups.retain(|k, s| {
            let keep = s.state.last_seen() <= latest;
            if !keep && s.stored {
                removed.push(k.clone());
            }
            keep
        });
        before - self.groups.len()
    }

    pub fn newest(&self) -> Option<i64> {
        self.groups.values().map(|s| s.state.last_seen()).max()
    }

    /// Evicts the least recently seen tenth of the table. Ties on `last_seen` (a flood shares
    /// timestamps) are broken by the group key, not by the map's randomly seeded order, so
    /// the same input evicts the same groups in every process (same input, same alerts).
    fn evict(&mut self) {
        let count = (self.groups.len() / EVICT_FRACTION).max(1);
        let mut order: Vec<(i64, &str)> = self
            .groups
            .iter()
            .map(|(k, s)| (s.state.last_seen(), &**k))
            .collect();
        order.select_nth_unstable(count - 1);
        let victims: Vec<Box<str>> = order[..count].iter().map(|&(_, k)| k.into()).collect();
        for key in victims {
            if let Some(slot) = self.groups.remove(&key)
                && slot.stored
            {
                self.removed.push(key);
            }
        }
        self.evictions += count as u64;
    }

    /// Every change since the last checkpoint: removed keys (`None`) and copies of changed
    /// groups, which are cheap (events are shared) and let serialisation happen off the
    /// detection thread. Clears the change marks.
    pub fn drain_changes(&mut self) -> Vec<(Box<str>, Option<G>)> {
        let mut out: Vec<(Box<str>, Option<G>)> = Vec::new();
        for key in self.removed.drain(..) {
            if !self.groups.contains_key(&key) {
                out.push((key, None));
            }
        }
        for (key, slot) in self.groups.iter_mut().filter(|(_, s)| s.dirty) {
            slot.dirty = false;
            slot.stored = true;
            out.push((key.clone(), Some(slot.state.clone())));
        }
        out
    }

    /// Copies of every group (for a full snapshot); clears the change marks.
    pub fn snapshot(&mut self) -> Vec<(Box<str>, Option<G>)> {
        self.removed.clear();
        self.groups
            .iter_mut()
            .map(|(key, slot)| {
                slot.dirty = false;
                slot.stored = true;
                (key.clone(), Some(slot.state.clone()))
            })
            .collect()
    }

    /// Drops a group that a later checkpoint recorded as removed.
    pub fn remove_restored(&mut self, key: &str) {
        self.groups.remove(key);
    }

    /// Puts back a group read from a checkpoint.
    pub fn restore(&mut self, key: &str, state: G) {
        self.groups.insert(
            key.into(),
            Slot {
                state,
                dirty: false,
                stored: true,
            },
        );
    }

    /// Removes what concerns a subject: whole groups whose key names it, and its events in
    /// the others. Returns how many groups were touched.
    pub fn forget(
        &mut self,
        key_names: &dyn Fn(&str) -> bool,
        about: &dyn Fn(&Event) -> bool,
    ) -> usize {
        let mut touched = 0;
        let removed = &mut self.removed;
        self.groups.retain(|k, s| {
            if key_names(k) {
                touched += 1;
                if s.stored {
                    removed.push(k.clone());
                }
                return false;
            }
            if s.state.events().iter().any(|e| about(e)) {
                touched += 1;
                s.state.forget(about);
                s.dirty = true;
                if s.state.is_empty() {
                    if s.stored {
                        removed.push(k.clone());
                    }
                    return false;
                }
            }
            true
        });
        touched
    }

    /// Every group whose key names the subject or whose events concern it.
    pub fn about<'a>(
        &'a self,
        key_names: &'a dyn Fn(&str) -> bool,
        about: &'a dyn Fn(&Event) -> bool,
    ) -> impl Iterator<Item = (&'a str, &'a G)> + 'a {
        self.groups
            .iter()
            .filter(move |(k, s)| key_names(k) || s.state.events().iter().any(|e| about(e)))
            .map(|(k, s)| (&**k, &s.state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Default, Clone, Serialize, Deserialize)]
    struct Seen(i64);

    impl GroupState for Seen {
        fn last_seen(&self) -> i64 {
            self.0
        }
        fn events(&self) -> Vec<&Arc<Event>> {
            Vec::new()
        }
        fn forget(&mut self, _: &dyn Fn(&Event) -> bool) {}
        fn is_empty(&self) -> bool {
            false
        }
    }

    #[test]
    fn a_full_table_evicts_the_least_recently_seen_and_counts_them() {
        let mut t: Table<Seen> = Table::new(100);
        for i in 0..1000 {
            t.entry(&i.to_string()).0 = i;
            assert!(t.len() <= 100);
        }
        assert!(t.evictions >= 900);
        // The newest groups survive.
        assert!(t.get("999").is_some() && t.get("0").is_none());
    }

    #[test]
    fn tables_seeded_differently_evict_the_same_groups() {
        let keys: Vec<String> = (0..250).map(|i| format!("user{i}@example.com")).collect();
        let fill = || {
            let mut t: Table<Seen> = Table::new(100);
            for (i, k) in keys.iter().enumerate() {
                // Ties everywhere: seven groups share each timestamp, and an eviction (ten
                // groups) splits them.
                t.entry(k).0 = (i / 7) as i64;
            }
            t
        };
        let (a, b) = (fill(), fill());
        let order = |t: &Table<Seen>| t.groups.keys().cloned().collect::<Vec<_>>();
        assert_ne!(
            order(&a),
            order(&b),
            "the two maps iterate in different orders"
        );
        let survivors = |t: &Table<Seen>| {
            let mut k: Vec<Box<str>> = t.groups.keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(survivors(&a), survivors(&b));
        assert_eq!(a.evictions, b.evictions);
        // Among tied groups the smaller keys went first.
        let mut t: Table<Seen> = Table::new(10);
        for k in ["e", "c", "a", "j", "b", "i", "d", "h", "f", "g"] {
            t.entry(k).0 = 7;
        }
        t.entry("k").0 = 8;
        assert!(t.get("a").is_none() && t.get("b").is_some() && t.get("k").is_some());
    }

    #[test]
    fn a_group_born_and_gone_between_checkpoints_is_never_written() {
        let mut t: Table<Seen> = Table::new(10);
        t.entry("stored").0 = 1;
        assert_eq!(t.drain_changes().len(), 1);
        t.entry("brief").0 = 2;
        t.expire(10);
        let seen: Vec<(String, bool)> = t
            .drain_changes()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.is_some()))
            .collect();
        assert_eq!(seen, [("stored".to_string(), false)]);
    }

    #[test]
    fn changes_are_reported_once() {
        let mut t: Table<Seen> = Table::new(10);
        t.entry("a").0 = 1;
        t.entry("b").0 = 1;
        assert_eq!(t.drain_changes().len(), 2);
        t.entry("a").0 = 5;
        t.expire(3);
        let mut seen: Vec<(String, Option<i64>)> = t
            .drain_changes()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.map(|s| s.0)))
            .collect();
        seen.sort();
        assert_eq!(seen, [("a".to_string(), Some(5)), ("b".to_string(), None)]);
        assert!(t.drain_changes().is_empty());
    }
}
