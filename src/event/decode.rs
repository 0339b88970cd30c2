//! Decoding canonical events from JSON, and classifying what makes an input line bad.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer};

use super::{Event, Text, fingerprint};

/// Lines longer than this are rejected unread: no identity provider emits a 1 MiB login event,
/// and parsing one would let a single line stall the pipeline.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// Why an input was rejected. The names are stable: they label metrics and dead letters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BadReason {
    InvalidJson,
    NotAnObject,
    MissingField,
    UnknownType,
    BadTimestamp,
    BadIp,
    WrongType,
    TooLarge,
    /// A provider-format record that cannot be turned into a canonical event.
    Unmappable,
    /// Stamped later than the wall clock plus `[rules] max_clock_skew` (SPEC §7).
    FutureTimestamp,
    /// Nested deeper than `admit::MAX_EVENT_DEPTH`.
    TooDeep,
}

impl BadReason {
    pub fn as_str(self) -> &'static str {
        match self {
            BadReason::InvalidJson => "invalid_json",
            BadReason::NotAnObject => "not_an_object",
            BadReason::MissingField => "missing_field",
            BadReason::UnknownType => "unknown_type",
            BadReason::BadTimestamp => "bad_timestamp",
            BadReason::BadIp => "bad_ip",
            BadReason::WrongType => "wrong_type",
            BadReason::TooLarge => "too_large",
            BadReason::Unmappable => "unmappable",
            BadReason::FutureTimestamp => "future_timestamp",
            BadReason::TooDeep => "too_deep",
        }
    }
}

impl fmt::Display for BadReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected input: the reason (for counting) and a message (for the log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadInput {
    pub reason: BadReason,
    pub message: String,
}

impl BadInput {
    pub fn new(reason: BadReason, message: impl Into<String>) -> BadInput {
        BadInput {
            reason,
            message: message.into(),
        }
    }
}

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}

impl std::error::Error for BadInput {}

/// Decodes one JSON line into a canonical event; the fingerprint is the hash of the bytes.
pub fn decode_line(line: &[u8]) -> Result<Event, BadInput> {
    if line.len() > MAX_EVENT_BYTES {
        return Err(BadInput::new(
            BadReason::TooLarge,
            format!("{} bytes, the limit is {MAX_EVENT_BYTES}", line.len()),
        ));
    }
    // An object is required; checking the first byte is cheaper than parsing twice.
    match line.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        Some(_) if serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok() => {
            return Err(BadInput::new(
                BadReason::NotAnObject,
                "an event must be a JSON object",
            ));
        }
        _ => {}
    }
    // The line's UTF-8 is checked once, whole (a fast pass over ASCII), so that serde_json
    // need not check each string again; a line that fails is parsed as bytes, for the same
    // error and message as ever.
    let parsed = match std::str::from_utf8(line) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(line),
    };
    let mut event: Event = parsed.map_err(classify)?;
    event.fingerprint = fingerprint(line);
    Ok(event)
}

/// Decodes an already parsed JSON value (rule test events, normaliser output).
pub fn decode_value(value: serde_json::Value) -> Result<Event, BadInput> {
    if !value.is_object() {
        return Err(BadInput::new(
            BadReason::NotAnObject,
            "an event must be a JSON object",
        ));
    }
    let bytes = serde_json::to_vec(&value).unwrap_or_default();
    let mut event: Event = serde_json::from_value(value).map_err(classify)?;
    event.fingerprint = fingerprint(&bytes);
    Ok(event)
}

/// Maps a serde_json error to a stable reason, keeping its text (which names the field).
pub(crate) fn classify(err: serde_json::Error) -> BadInput {
    use serde_json::error::Category;
    let message = err.to_string();
    let reason = match err.classify() {
        // Deeper than serde_json's own limit (128): the same reason as over ours.
        _ if message.starts_with("recursion limit exceeded") => BadReason::TooDeep,
        Category::Syntax | Category::Eof | Category::Io => BadReason::InvalidJson,
        Category::Data => {
            if message.starts_with("missing field") {
                BadReason::MissingField
            } else if message.starts_with("unknown event type") {
                BadReason::UnknownType
            } else if message.starts_with("invalid timestamp") {
                BadReason::BadTimestamp
            } else if message.starts_with("invalid ip") {
                BadReason::BadIp
            } else {
                BadReason::WrongType
            }
        }
    };
    BadInput::new(reason, message)
}

/// serde glue: usernames are compared case-insensitively, so they are stored lower-cased.
pub(crate) fn lowercase<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Text>, D::Error> {
    let s = Option::<Text>::deserialize(d)?;
    Ok(s.map(|s| {
        if s.bytes().any(|b| b.is_ascii_uppercase()) || !s.is_ascii() {
            s.to_lowercase()
        } else {
            s
        }
    }))
}

/// serde glue: an `ip` must parse as an IPv4 or IPv6 address.
pub(crate) fn ip<'de, D: Deserializer<'de>>(d: D) -> Result<Option<IpAddr>, D::Error> {
    let s = Option::<std::borrow::Cow<'de, str>>::deserialize(d)?;
    match s {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom(format!("invalid ip `{s}`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;

    fn reason(line: &str) -> BadReason {
        decode_line(line.as_bytes()).unwrap_err().reason
    }

    #[test]
    fn a_complete_event_decodes_with_username_lowercased() {
        let e = decode_line(
            br#"{"ts":"2026-01-01T00:00:00Z","type":"login.failure","username":"A@X.io","ip":"2001:db8::1","geo":{"country":"DE","asn":3320},"attrs":{"a":{"b":1}}}"#,
        )
        .unwrap();
        assert_eq!(e.kind, EventType::LoginFailure);
        assert_eq!(e.username.as_deref(), Some("a@x.io"));
        assert_eq!(e.ip, Some("2001:db8::1".parse().unwrap()));
        assert_eq!(e.geo.unwrap().asn, Some(3320));
        assert_ne!(e.fingerprint, 0);
    }

    #[test]
    fn epoch_millis_are_accepted() {
        let e = decode_line(br#"{"ts":1767225600000,"type":"logout"}"#).unwrap();
        assert_eq!(e.ts, 1_767_225_600_000);
    }

    #[test]
    fn each_kind_of_bad_line_gets_its_reason() {
        assert_eq!(reason("{not json"), BadReason::InvalidJson);
        assert_eq!(reason("[1,2]"), BadReason::NotAnObject);
        assert_eq!(reason(r#"{"type":"logout"}"#), BadReason::MissingField);
        assert_eq!(
            reason(r#"{"ts":1,"type":"login.maybe"}"#),
            BadReason::UnknownType
        );
        assert_eq!(
            reason(r#"{"ts":"yesterday","type":"logout"}"#),
            BadReason::BadTimestamp
        );
        assert_eq!(
            reason(r#"{"ts":-5,"type":"logout"}"#),
            BadReason::BadTimestamp
        );
        assert_eq!(
            reason(r#"{"ts":1,"type":"logout","ip":"1.2.3"}"#),
            BadReason::BadIp
        );
        assert_eq!(
            reason(r#"{"ts":1,"type":"logout","user":7}"#),
            BadReason::WrongType
        );
        assert_eq!(
            reason(r#"{"ts":1,"type":"logout","geo":{"lat":"x"}}"#),
            BadReason::WrongType
        );
        let abyss = format!(
            r#"{{"ts":1,"type":"logout","attrs":{{"a":{}1{}}}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert_eq!(reason(&abyss), BadReason::TooDeep);
    }

    #[test]
    fn oversized_lines_are_rejected_unread() {
        let line = vec![b' '; MAX_EVENT_BYTES + 1];
        assert_eq!(decode_line(&line).unwrap_err().reason, BadReason::TooLarge);
    }
}
