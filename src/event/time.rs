//! Event time: RFC 3339 strings or epoch milliseconds in, RFC 3339 with milliseconds out.

use chrono::{DateTime, SecondsFormat, Utc};

/// Parses an RFC 3339 timestamp into epoch milliseconds.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Formats epoch milliseconds as RFC 3339 UTC with millisecond precision.
pub fn format_ts(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// serde glue for `Event::ts`: accepts a string or an integer, writes a string.
pub(crate) mod ts_serde {
    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    /// The smallest and largest epoch milliseconds accepted (years 1970 to 9999): anything else
    /// is a unit mistake (seconds or microseconds) that would poison every window.
    const MIN_MS: i64 = 0;
    const MAX_MS: i64 = 253_402_300_799_999;

    pub fn serialize<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_ts(*ms))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        d.deserialize_any(TsVisitor)
    }

    struct TsVisitor;

    impl Visitor<'_> for TsVisitor {
        type Value = i64;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an RFC 3339 timestamp or epoch milliseconds")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
            super::parse_rfc3339_ms(v)
                .filter(|ms| (MIN_MS..=MAX_MS).contains(ms))
                .ok_or_else(|| E::custom(format!("invalid timestamp `{v}`")))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
            if (MIN_MS..=MAX_MS).contains(&v) {
                Ok(v)
            } else {
                Err(E::custom(format!("invalid timestamp {v}")))
            }
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
            self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_with_offsets_normalised_to_utc() {
        let ms = parse_rfc3339_ms("2026-01-01T01:00:00.250+01:00").unwrap();
        assert_eq!(format_ts(ms), "2026-01-01T00:00:00.250Z");
    }
}
