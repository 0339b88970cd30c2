//! Helpers the provider normalisers share: JSON lookups, timestamps, identities and attrs.

use std::net::IpAddr;

use chrono::{DateTime, NaiveDateTime};
use serde_json::{Map, Value};

use crate::event::{BadInput, BadReason, Event, EventType, Geo, parse_rfc3339_ms};

/// The epoch-millisecond range accepted (years 1970 to 9999), as for native events: anything
/// outside is a unit mistake that would poison every window.
const MAX_MS: i64 = 253_402_300_799_999;

/// Looks a key up in an object: the exact key first, then ignoring ASCII case.
///
/// The case-insensitive fallback exists because exports re-keyed by other tools (Panther's
/// Okta fixtures, some SIEM exports) lower-case field names; real providers send camelCase,
/// which the exact lookup finds first, so the fallback costs nothing on real traffic.
pub(crate) fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    let obj = v.as_object()?;
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// Follows a path of keys; `None` when any step is missing or not an object.
pub(crate) fn path<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().try_fold(v, |v, k| get(v, k))
}

/// A non-empty string at `keys`. Providers write "no value" as `""`, `null` or the text
/// `"null"` (Keycloak), so all three count as absent.
pub(crate) fn text<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a str> {
    path(v, keys).and_then(Value::as_str).and_then(present)
}

/// `s` unless it is empty or one of the "no value" spellings.
pub(crate) fn present(s: &str) -> Option<&str> {
    let t = s.trim();
    (!t.is_empty() && t != "null").then_some(t)
}

/// A boolean at `keys`, also accepting the strings `"true"`/`"false"` (Okta's debugData
/// values are always strings).
pub(crate) fn boolean(v: &Value, keys: &[&str]) -> Option<bool> {
    match path(v, keys)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// Parses the timestamp forms providers and their exporters use: RFC 3339 / ISO 8601 with any
/// number of fraction digits, Panther's `2025-10-03 14:09:32.149000000`, Keycloak's
/// `2021-10-22 21:01:45,403` (both without an offset, taken as UTC), and epoch milliseconds.
pub(crate) fn parse_timestamp(v: &Value) -> Option<i64> {
    let ms = match v {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) => parse_timestamp_str(s)?,
        _ => return None,
    };
    (0..=MAX_MS).contains(&ms).then_some(ms)
}

/// The string forms of [`parse_timestamp`].
pub(crate) fn parse_timestamp_str(s: &str) -> Option<i64> {
    let s = s.trim();
    // Keycloak (log4j/jboss) writes a comma before the milliseconds.
    let s = s.replacen(',', ".", 1);
    if let Some(ms) = parse_rfc3339_ms(&s) {
        return Some(ms);
    }
    const ZONED: [&str; 2] = ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%dT%H:%M:%S%.f%z"];
    if let Some(t) = ZONED
        .iter()
        .find_map(|f| DateTime::parse_from_str(&s, f).ok())
    {
        return Some(t.timestamp_millis());
    }
    const NAIVE: [&str; 2] = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"];
    NAIVE
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(&s, f).ok())
        .map(|t| t.and_utc().timestamp_millis())
}

/// The event time from the first of `fields` that is present; a present but unreadable value
/// is an error rather than a reason to try the next field, so a typo is never silently
/// replaced by a later, less precise time.
pub(crate) fn timestamp(v: &Value, fields: &[&[&str]], format: &str) -> Result<i64, BadInput> {
    for keys in fields {
        match path(v, keys) {
            None | Some(Value::Null) => continue,
            Some(t) => {
                return parse_timestamp(t).ok_or_else(|| {
                    BadInput::new(
                        BadReason::BadTimestamp,
                        format!(
                            "{format} event field `{}` is not a timestamp: {t}",
                            keys.join(".")
                        ),
                    )
                });
            }
        }
    }
    let names: Vec<String> = fields
        .iter()
        .map(|k| format!("`{}`", k.join(".")))
        .collect();
    Err(BadInput::new(
        BadReason::MissingField,
        format!("{format} event has no timestamp ({})", names.join(" or ")),
    ))
}

/// A new event, with the provider's own code kept in `attrs.raw_type` so rules and people can
/// always see what the provider said, mapped or not.
pub(crate) fn new_event(ts: i64, kind: EventType, raw_type: &str) -> Event {
    let mut e = Event::new(ts, kind);
    set_attr(&mut e, "raw_type", raw_type);
    e
}

/// Sets `attrs.<key>`.
pub(crate) fn set_attr(e: &mut Event, key: &str, value: impl Into<Value>) {
    e.attrs
        .get_or_insert_with(Map::new)
        .insert(key.to_string(), value.into());
}

/// Sets `attrs.<key>` when there is a value.
pub(crate) fn set_attr_opt(e: &mut Event, key: &str, value: Option<impl Into<Value>>) {
    if let Some(v) = value {
        set_attr(e, key, v);
    }
}

/// Sets the identifier that was typed, lower-cased like native input (SPEC §1 compares
/// usernames case-insensitively).
pub(crate) fn set_username(e: &mut Event, name: Option<&str>) {
    if let Some(n) = name.and_then(present) {
        e.username = Some(n.to_lowercase().into());
    }
}

/// Sets `ip`. A provider value that is not an address (masked, `"redacted"`) goes to
/// `attrs.ip_raw` instead of rejecting the whole event: losing a login event to a cosmetic
/// field would hide exactly what the rules look for.
pub(crate) fn set_ip(e: &mut Event, ip: Option<&str>) {
    let Some(ip) = ip.and_then(present) else {
        return;
    };
    match ip.parse::<IpAddr>() {
        Ok(addr) => e.ip = Some(addr),
        Err(_) => set_attr(e, "ip_raw", ip),
    }
}

/// An owned copy of an optional text value.
pub(crate) fn owned<T: for<'a> From<&'a str>>(s: Option<&str>) -> Option<T> {
    s.map(T::from)
}

/// Stores `geo` only when something is known, so an empty object never hides GeoIP.
pub(crate) fn set_geo(e: &mut Event, geo: Geo) {
    if geo != Geo::default() {
        e.geo = Some(Box::new(geo));
    }
}

/// A float at `keys`, from a number or a numeric string.
pub(crate) fn number(v: &Value, keys: &[&str]) -> Option<f64> {
    match path(v, keys)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The canonical factor named somewhere in a provider's free text or code (`OKTA_VERIFY_PUSH`,
/// `Guardian - Enrollment complete (sms)`, `credential_type=otp`).
pub(crate) fn factor_in_text(text: &str) -> Option<&'static str> {
    /// Markers in the order they are tried: more specific first (`push` before `sms` for
    /// "push or sms", `webauthn` before anything). No bare `call`: it matches "callback".
    const MARKERS: [(&str, &str); 13] = [
        ("push", "push"),
        ("webauthn", "webauthn"),
        ("fido", "webauthn"),
        ("u2f", "webauthn"),
        ("recovery", "recovery"),
        ("sms", "sms"),
        ("voice", "voice"),
        ("call_factor", "voice"),
        ("email", "email"),
        ("totp", "totp"),
        ("otp", "totp"),
        ("soft_token", "totp"),
        ("token:software", "totp"),
    ];
    let lower = text.to_ascii_lowercase();
    MARKERS
        .iter()
        .find(|(marker, _)| lower.contains(marker))
        .map(|(_, factor)| *factor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps_in_every_provider_form_parse_to_the_same_instant() {
        let want = parse_timestamp_str("2025-10-03T14:09:32.149Z").unwrap();
        for s in [
            "2025-10-03 14:09:32.149000000",
            "2025-10-03 14:09:32,149",
            "2025-10-03T14:09:32,149",
            "2025-10-03T16:09:32.149+02:00",
            "2025-10-03 14:09:32.149+00:00",
        ] {
            assert_eq!(parse_timestamp_str(s), Some(want), "{s}");
        }
        assert_eq!(parse_timestamp(&json!(1_759_500_572_149_i64)), Some(want));
        assert_eq!(parse_timestamp(&json!("redacted")), None);
        assert_eq!(parse_timestamp(&json!(-1)), None);
    }

    #[test]
    fn keys_match_exactly_first_then_ignoring_case() {
        let v = json!({"eventtype": "a", "debugContext": {"debugData": {"dtHash": "h"}}});
        assert_eq!(text(&v, &["eventType"]), Some("a"));
        assert_eq!(
            text(&v, &["debugcontext", "debugdata", "dthash"]),
            Some("h")
        );
        let both = json!({"eventType": "exact", "eventtype": "lower"});
        assert_eq!(text(&both, &["eventType"]), Some("exact"));
    }

    #[test]
    fn absent_values_have_several_spellings() {
        let v = json!({"a": "", "b": "null", "c": null, "d": "x"});
        for k in ["a", "b", "c", "missing"] {
            assert_eq!(text(&v, &[k]), None, "{k}");
        }
        assert_eq!(text(&v, &["d"]), Some("x"));
    }

    #[test]
    fn unparseable_ips_are_kept_in_attrs() {
        let mut e = Event::new(0, EventType::Other);
        set_ip(&mut e, Some("redacted"));
        assert_eq!(e.ip, None);
        assert_eq!(e.attrs.unwrap()["ip_raw"], "redacted");
    }

    #[test]
    fn factors_are_recognised_in_provider_text() {
        assert_eq!(factor_in_text("OKTA_VERIFY_PUSH"), Some("push"));
        assert_eq!(
            factor_in_text("Guardian - Enrollment complete (sms)"),
            Some("sms")
        );
        assert_eq!(factor_in_text("FIDO_WEBAUTHN"), Some("webauthn"));
        assert_eq!(factor_in_text("token:software:totp"), Some("totp"));
        assert_eq!(factor_in_text("password"), None);
    }
}
