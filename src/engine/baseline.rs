//! `new_value`: per group, a compact baseline of the values a field has taken, each with the
//! hour it was last seen; a value the baseline does not hold is new.
//!
//! A baseline holds no events and no strings: each value is 32 bits ([`ValueId`]) and its
//! last-seen hour 32 more, so a user with a few countries or devices costs tens of bytes. The
//! baseline learns from every event, alerting or not, so a new value alerts once and is then
//! known; values unseen for `forget_after` are dropped and would be new again.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::table::GroupState;
use crate::event::{Event, FieldValue};
use crate::rule::NewValue;

const HOUR_MS: i64 = 3_600_000;

/// Values one group remembers at most; past this the least recently seen is dropped. A user
/// whose device id changes at every login would otherwise grow a baseline for 90 days; 64
/// values (512 bytes) is far beyond any real history of countries, networks or devices.
pub const MAX_VALUES_PER_GROUP: usize = 64;

/// How many known values an alert names before it only counts the rest.
const VALUES_NAMED_IN_ALERTS: usize = 5;

/// A field value in 32 bits. Short values keep their own content, so an alert can name them
/// ("seen before: DE, FR", "AS3320"): the top two bits say which form it is.
/// - `11`: a decimal number below 2^30 (AS numbers);
/// - `10`: up to three bytes of text, zero-padded (country codes);
/// - `0`: a 31-bit xxh3 hash of the text (devices, user agents, cities).
///
/// A hash collision could only hide a new value behind a known one with odds of one in two
/// billion per known value, and an attacker able to aim for one must already know a value
/// the user has, which it could simply send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ValueId(u32);

const FORM_MASK: u32 = 0b11 << 30;
const NUMBER_FORM: u32 = 0b11 << 30;
const TEXT_FORM: u32 = 0b10 << 30;
const HASH_MASK: u32 = !(1 << 31);
const INLINE_TEXT_BYTES: usize = 3;

impl ValueId {
    /// The id of a field value, as its text form (`5` and `"5"` are the same value).
    pub fn of(value: &FieldValue<'_>) -> ValueId {
        match *value {
            FieldValue::Str(s) => ValueId::of_text(s),
            FieldValue::Int(i) if (0..1 << 30).contains(&i) => ValueId(NUMBER_FORM | i as u32),
            ref other => ValueId::of_text(&other.to_text()),
        }
    }

    pub fn of_text(text: &str) -> ValueId {
        let bytes = text.as_bytes();
        if let Some(n) = canonical_number(text) {
            return ValueId(NUMBER_FORM | n);
        }
        if bytes.len() <= INLINE_TEXT_BYTES && !bytes.contains(&0) {
            let packed = bytes
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
            return ValueId(TEXT_FORM | packed);
        }
        ValueId(xxhash_rust::xxh3::xxh3_64(bytes) as u32 & HASH_MASK)
    }

    /// The value itself, when it is short enough to have been kept.
    pub fn name(self) -> Option<String> {
        match self.0 & FORM_MASK {
            NUMBER_FORM => Some((self.0 & !FORM_MASK).to_string()),
            TEXT_FORM => {
                let bytes: Vec<u8> = (0..INLINE_TEXT_BYTES)
                    .map(|i| (self.0 >> (16 - 8 * i)) as u8)
                    .take_while(|&b| b != 0)
                    .collect();
                String::from_utf8(bytes).ok()
            }
            _ => None,
        }
    }
}

/// `text` as a number when it is written the one canonical way (`7`, not `07`) and fits.
fn canonical_number(text: &str) -> Option<u32> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits || (text.len() > 1 && text.starts_with('0')) || text.len() > 10 {
        return None;
    }
    text.parse::<u32>().ok().filter(|&n| n < 1 << 30)
}

/// One remembered value: its id and the hour (since the epoch) it was last seen.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct Seen(ValueId, u32);

/// 48 bytes plus 8 per value: with the table's change mark it fits a 56-byte slot. Hence the
/// boxed slice (no spare capacity) and the hour, not the millisecond, of the first event.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct BaselineGroup {
    pub last_seen: i64,
    pub last_fired: Option<i64>,
    values: Box<[Seen]>,
    /// The hour the history began: learning counts from its end, so never too early.
    since_hour: u32,
    /// Events with a value, saturating.
    events: u32,
}

/// What an alert says about a new value: the values the baseline held, most recent first.
pub struct Novelty {
    known: Vec<ValueId>,
}

impl Novelty {
    /// "seen before: DE, FR", "seen before: DE and 2 other values", "seen before: 4 values".
    pub fn describe(&self) -> String {
        let named: Vec<String> = self
            .known
            .iter()
            .filter_map(|v| v.name())
            .take(VALUES_NAMED_IN_ALERTS)
            .collect();
        let others = self.known.len() - named.len();
        let plural = |n: usize| if n == 1 { "value" } else { "values" };
        match (named.is_empty(), others) {
            (true, n) => format!("seen before: {n} {}", plural(n)),
            (false, 0) => format!("seen before: {}", named.join(", ")),
            (false, n) => format!(
                "seen before: {} and {n} other {}",
                named.join(", "),
                plural(n)
            ),
        }
    }
}

impl GroupState for BaselineGroup {
    fn last_seen(&self) -> i64 {
        self.last_seen
    }
    fn events(&self) -> Vec<&Arc<Event>> {
        Vec::new()
    }
    /// A baseline holds no events; a subject's baseline goes whole with its group key.
    fn forget(&mut self, _: &dyn Fn(&Event) -> bool) {}
    fn is_empty(&self) -> bool {
        self.values.is_empty() && self.last_fired.is_none()
    }
}

impl BaselineGroup {
    /// Learns `value` seen at `ts` (events come in event-time order); returns what the
    /// baseline knew if the value is new and the history is long enough to say so.
    pub fn observe(&mut self, value: ValueId, ts: i64, opts: &NewValue) -> Option<Novelty> {
        if self.events > 0 && ts - self.last_seen > opts.forget_after_ms {
            // Silent for longer than anything is remembered: a history starts afresh.
            *self = BaselineGroup {
                last_fired: self.last_fired,
                ..BaselineGroup::default()
            };
        }
        if self.events == 0 {
            self.since_hour = hour_of(ts);
        }
        self.forget_older_than(ts, opts.forget_after_ms);
        let history_from = (i64::from(self.since_hour) + 1) * HOUR_MS;
        let old_enough = opts.learn_for_ms == 0 || ts - history_from >= opts.learn_for_ms;
        let learned = old_enough && self.events >= opts.min_history;
        let known = self.values.iter().position(|s| s.0 == value);
        let novelty = (known.is_none() && learned).then(|| self.novelty());
        self.remember(known, value, hour_of(ts));
        self.events = self.events.saturating_add(1);
        self.last_seen = self.last_seen.max(ts);
        novelty
    }

    /// Drops values unseen for longer than `forget_after_ms`. A value's last sighting counts as
    /// the end of its hour, so rounding can only make a baseline remember longer, never less.
    fn forget_older_than(&mut self, ts: i64, forget_after_ms: i64) {
        let remembered = |s: &Seen| (i64::from(s.1) + 1) * HOUR_MS + forget_after_ms >= ts;
        if !self.values.iter().all(remembered) {
            let mut values = std::mem::take(&mut self.values).into_vec();
            values.retain(remembered);
            self.values = values.into_boxed_slice();
        }
    }

    fn remember(&mut self, known: Option<usize>, value: ValueId, hour: u32) {
        match known {
            Some(i) => self.values[i].1 = self.values[i].1.max(hour),
            None => {
                // New values are rare: reallocating to the exact size keeps baselines tight.
                let mut values = std::mem::take(&mut self.values).into_vec();
                if values.len() >= MAX_VALUES_PER_GROUP {
                    let stalest = (0..values.len()).min_by_key(|&i| values[i].1);
                    values.swap_remove(stalest.unwrap_or(0));
                }
                values.push(Seen(value, hour));
                self.values = values.into_boxed_slice();
            }
        }
    }

    fn novelty(&self) -> Novelty {
        let mut values = self.values.to_vec();
        values.sort_by_key(|s| std::cmp::Reverse(s.1));
        Novelty {
            known: values.into_iter().map(|s| s.0).collect(),
        }
    }

    #[cfg(test)]
    pub fn known_values(&self) -> usize {
        self.values.len()
    }
}

fn hour_of(ts: i64) -> u32 {
    u32::try_from(ts.div_euclid(HOUR_MS)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Field;

    const DAY: i64 = 86_400_000;

    fn opts(learn_for_ms: i64, min_history: u32, forget_after_ms: i64) -> NewValue {
        NewValue {
            field: Field::Device,
            learn_for_ms,
            min_history,
            forget_after_ms,
        }
    }

    fn id(s: &str) -> ValueId {
        ValueId::of_text(s)
    }

    #[test]
    fn a_baseline_is_48_bytes_plus_8_per_value() {
        assert_eq!(std::mem::size_of::<BaselineGroup>(), 48);
        assert_eq!(std::mem::size_of::<Seen>(), 8);
    }

    #[test]
    fn short_values_keep_their_names_and_long_ones_are_hashed() {
        assert_eq!(id("DE").name().as_deref(), Some("DE"));
        assert_eq!(id("é").name().as_deref(), Some("é"));
        assert_eq!(id("").name().as_deref(), Some(""));
        assert_eq!(id("3320").name().as_deref(), Some("3320"));
        assert_eq!(ValueId::of(&FieldValue::Int(3320)), id("3320"));
        assert_eq!(id("007").name().as_deref(), Some("007"));
        assert_ne!(id("007"), id("7"));
        assert_eq!(id("laptop-1").name(), None);
        assert_ne!(id("laptop-1"), id("laptop-2"));
        // Numbers too large to inline are hashed, and never mistaken for an inline form.
        assert_eq!(id("4200000000").name(), None);
        assert_eq!(id("4200000000").0 & (1 << 31), 0);
    }

    #[test]
    fn nothing_is_new_while_learning_and_a_new_value_alerts_once_after() {
        let o = opts(7 * DAY, 3, 90 * DAY);
        let mut g = BaselineGroup::default();
        assert!(g.observe(id("DE"), 0, &o).is_none());
        assert!(g.observe(id("FR"), DAY, &o).is_none(), "still learning");
        assert!(g.observe(id("DE"), 8 * DAY, &o).is_none(), "known");
        let novelty = g
            .observe(id("BR"), 9 * DAY, &o)
            .expect("new after learning");
        assert_eq!(novelty.describe(), "seen before: DE, FR");
        assert!(g.observe(id("BR"), 9 * DAY + 1, &o).is_none(), "learned");
    }

    #[test]
    fn min_history_counts_earlier_events() {
        let o = opts(0, 3, 90 * DAY);
        let mut g = BaselineGroup::default();
        g.observe(id("DE"), 0, &o);
        g.observe(id("DE"), 1, &o);
        assert!(
            g.observe(id("FR"), 2, &o).is_none(),
            "two events of history"
        );
        assert!(
            g.observe(id("BR"), 3, &o).is_some(),
            "three events of history"
        );
    }

    #[test]
    fn a_value_unseen_for_forget_after_is_new_again() {
        let o = opts(0, 1, 30 * DAY);
        let mut g = BaselineGroup::default();
        g.observe(id("DE"), 0, &o);
        for day in 1..=40 {
            g.observe(id("FR"), day * DAY, &o);
        }
        // DE was last seen 41 days ago (30 allowed).
        assert_eq!(
            g.observe(id("DE"), 41 * DAY, &o).unwrap().describe(),
            "seen before: FR"
        );
        // But not one day early.
        let mut g = BaselineGroup::default();
        g.observe(id("DE"), 0, &o);
        g.observe(id("FR"), DAY, &o);
        assert!(g.observe(id("DE"), 29 * DAY, &o).is_none());
    }

    #[test]
    fn a_group_silent_past_forget_after_learns_again() {
        let o = opts(7 * DAY, 1, 30 * DAY);
        let mut g = BaselineGroup::default();
        g.observe(id("DE"), 0, &o);
        g.observe(id("DE"), 10 * DAY, &o);
        assert!(g.observe(id("BR"), 50 * DAY, &o).is_none(), "a new history");
        assert_eq!(g.known_values(), 1);
    }

    #[test]
    fn a_baseline_never_holds_more_than_its_cap() {
        let o = opts(0, 1, 90 * DAY);
        let mut g = BaselineGroup::default();
        for i in 0..1000 {
            g.observe(id(&format!("device-{i}")), i * 60_000, &o);
            assert!(g.known_values() <= MAX_VALUES_PER_GROUP);
        }
        // The most recent survive.
        assert!(g.values.iter().any(|s| s.0 == id("device-999")));
    }

    #[test]
    fn unnamed_values_are_counted() {
        let o = opts(0, 1, 90 * DAY);
        let mut g = BaselineGroup::default();
        g.observe(id("laptop-1"), 0, &o);
        g.observe(id("DE"), 1, &o);
        let n = g.observe(id("phone-1"), HOUR_MS, &o).unwrap();
        assert_eq!(n.describe(), "seen before: DE and 1 other value");
    }
}
