//! What a decoded event must satisfy before it may reach the engine: a timestamp no further
//! ahead of the wall clock than `[rules] max_clock_skew`, and a bounded nesting depth.
//!
//! Both are judged on the decoded event, whatever its format, by the one decoder every source
//! goes through (`pipeline::Decoder`): an event that fails is bad input like any other and
//! moves nothing (no watermark, no idle advance).

use super::{BadInput, BadReason, Event, format_ts};

/// SPEC §7: `[rules] max_clock_skew` when the configuration does not set it.
pub const DEFAULT_MAX_CLOCK_SKEW_MS: i64 = 5 * 60_000;

/// The deepest nesting a decoded event may have, the event object itself counting as one
/// (`{"attrs":{"a":[1]}}` is 3 deep). Every stored copy wraps the event a few levels deeper (a
/// checkpoint's pending list by 2, an outbox entry by about 3, a dead letter by 1 more) and is
/// read back with serde_json, whose recursion limit is 128: half of it leaves ample room, and
/// no identity provider nests anywhere near this.
pub const MAX_EVENT_DEPTH: usize = 64;

/// The wall clock the future-timestamp bound is taken against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// The system clock, read per event (`run`, and `replay` without `--now`).
    Wall,
    /// A fixed instant in epoch milliseconds (`replay --now`).
    Fixed(i64),
}

impl Clock {
    pub fn now_ms(self) -> i64 {
        match self {
            Clock::Wall => chrono::Utc::now().timestamp_millis(),
            Clock::Fixed(ms) => ms,
        }
    }
}

/// The admission rules: how far ahead of which clock an event may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admission {
    pub clock: Clock,
    pub max_skew_ms: i64,
}

impl Default for Admission {
    fn default() -> Self {
        Admission {
            clock: Clock::Wall,
            max_skew_ms: DEFAULT_MAX_CLOCK_SKEW_MS,
        }
    }
}

impl Admission {
    /// The latest event time accepted now.
    pub fn latest_ms(&self) -> i64 {
        self.clock.now_ms().saturating_add(self.max_skew_ms)
    }

    /// Ok when the event may go on; otherwise why not.
    pub fn check(&self, event: &Event) -> Result<(), BadInput> {
        let latest = self.latest_ms();
        if event.ts > latest {
            return Err(BadInput::new(
                BadReason::FutureTimestamp,
                format!(
                    "ts {} is beyond the clock ({}) plus max_clock_skew",
                    format_ts(event.ts),
                    format_ts(latest.saturating_sub(self.max_skew_ms)),
                ),
            ));
        }
        let depth = event_depth(event);
        if depth > MAX_EVENT_DEPTH {
            return Err(BadInput::new(
                BadReason::TooDeep,
                format!("nested {depth} levels deep, the limit is {MAX_EVENT_DEPTH}"),
            ));
        }
        Ok(())
    }
}

/// The nesting depth of the event's JSON: the object itself, `geo` one below, and `attrs`,
/// the only field whose shape the input chooses.
pub fn event_depth(event: &Event) -> usize {
    let attrs = event
        .attrs
        .as_ref()
        .map_or(0, |a| 1 + a.values().map(value_depth).max().unwrap_or(0));
    let geo = usize::from(event.geo.is_some());
    1 + attrs.max(geo)
}

/// Depth of a JSON value: scalars 0, a container one more than its deepest member. Values
/// come from serde_json, which refuses more than 128 levels, so the recursion is bounded.
fn value_depth(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => 1 + a.iter().map(value_depth).max().unwrap_or(0),
        serde_json::Value::Object(o) => 1 + o.values().map(value_depth).max().unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventType, decode_line};

    /// A JSON value `levels` containers deep.
    fn nested(levels: usize) -> serde_json::Value {
        (0..levels).fold(serde_json::json!(1), |v, _| serde_json::json!({ "n": v }))
    }

    fn at(ts: i64) -> Event {
        Event::new(ts, EventType::Other)
    }

    #[test]
    fn an_event_beyond_the_clock_plus_skew_is_a_future_timestamp() {
        let admit = Admission {
            clock: Clock::Fixed(1_000_000),
            max_skew_ms: 60_000,
        };
        assert!(admit.check(&at(1_060_000)).is_ok());
        let bad = admit.check(&at(1_060_001)).unwrap_err();
        assert_eq!(bad.reason, BadReason::FutureTimestamp);
        assert_eq!(bad.reason.as_str(), "future_timestamp");
        // The past is no concern of this bound.
        assert!(admit.check(&at(0)).is_ok());
    }

    #[test]
    fn the_wall_clock_is_read_at_each_check() {
        let admit = Admission::default();
        let now = chrono::Utc::now().timestamp_millis();
        assert!(admit.check(&at(now + 60_000)).is_ok());
        assert!(admit.check(&at(now + 6 * 60_000)).is_err());
    }

    #[test]
    fn depth_counts_the_event_object_and_every_container_in_attrs() {
        let line = |attrs: &str| format!(r#"{{"ts":1,"type":"other","attrs":{attrs}}}"#);
        let depth = |attrs: &str| event_depth(&decode_line(line(attrs).as_bytes()).unwrap());
        assert_eq!(event_depth(&at(1)), 1);
        assert_eq!(depth("{}"), 2);
        assert_eq!(depth(r#"{"a":1}"#), 2);
        assert_eq!(depth(r#"{"a":[1]}"#), 3);
        assert_eq!(depth(r#"{"a":[{"b":{}}],"c":2}"#), 5);
        let exact =
            serde_json::json!({"ts":1,"type":"other","attrs":{"a":nested(MAX_EVENT_DEPTH - 2)}});
        let e = decode_line(exact.to_string().as_bytes()).unwrap();
        assert_eq!(event_depth(&e), MAX_EVENT_DEPTH);
    }

    #[test]
    fn an_event_over_the_depth_limit_is_too_deep() {
        let admit = Admission::default();
        let event = |depth: usize| {
            let json = serde_json::json!({"ts":1,"type":"other","attrs":{"a":nested(depth - 2)}});
            decode_line(json.to_string().as_bytes()).unwrap()
        };
        assert!(admit.check(&event(MAX_EVENT_DEPTH)).is_ok());
        let bad = admit.check(&event(MAX_EVENT_DEPTH + 1)).unwrap_err();
        assert_eq!(bad.reason, BadReason::TooDeep);
        assert_eq!(bad.reason.as_str(), "too_deep");
    }
}
