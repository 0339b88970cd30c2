//! Provider formats (auth0, okta, keycloak, entra, google_workspace, cognito, ocsf) normalised into canonical events (SPEC §1, §5).
//!
//! One input line (or one already parsed element of an HTTP batch) becomes one canonical
//! [`Event`] or one [`BadInput`]. Each provider module holds its mapping as a table in code;
//! `docs/formats.md` repeats the tables for people, and a unit test checks the two agree.

mod auth0;
mod cognito;
mod common;
mod country;
pub mod entra;
mod google_workspace;
mod keycloak;
mod ocsf;
mod okta;

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Deserialize;

use crate::event::{BadInput, BadReason, Event, Text, decode_line, decode_value, fingerprint};

pub use country::country_code;

/// Lines longer than this are rejected unread: the same 1 MiB limit as native input, for the
/// same reason (no identity provider emits a 1 MiB event, and parsing one stalls the pipeline).
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// The format of a source (`[source] format` in the configuration, `--format` on replay).
/// Its variants are the one list of formats: their names (serde's and strum's, both the
/// variant in snake_case), the order documentation lists them in, and every `match` below.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Deserialize,
    strum::EnumIter,
    strum::IntoStaticStr,
    strum::VariantNames,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Format {
    /// Canonical events as SPEC §1 defines them.
    Native,
    /// Auth0 log events (log streams, custom webhooks, the `/api/v2/logs` API).
    Auth0,
    /// Okta System Log events (`/api/v1/logs`, event hooks, log streams).
    Okta,
    /// Keycloak events: JSON from the admin API or an event listener, or log lines.
    Keycloak,
    /// Microsoft Entra ID sign-in and audit logs (Event Hubs records, Graph objects).
    Entra,
    /// Google Workspace Admin SDK Reports API `login` activities.
    GoogleWorkspace,
    /// Amazon Cognito user-pool authentication events (`AdminListUserAuthEvents`, log exports).
    Cognito,
    /// OCSF Authentication (3002) and Account Change (3001) events, schema 1.x.
    Ocsf,
}

impl Format {
    /// Every format, in the order the documentation lists them.
    pub fn all() -> impl Iterator<Item = Format> {
        <Format as strum::IntoEnumIterator>::iter()
    }

    /// Every format's name, in the same order.
    pub const NAMES: &[&str] = <Format as strum::VariantNames>::VARIANTS;

    /// The name used in configuration, on the command line and in `event.source`.
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A format name that is not one of [`Format::NAMES`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown format `{0}`, expected one of {names}", names = Format::NAMES.join(", "))]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Format, UnknownFormat> {
        Format::all()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| UnknownFormat(s.to_string()))
    }
}

/// Normalises one input line. The fingerprint is the hash of the line's bytes, so the same
/// line always gives the same fingerprint whatever its format.
pub fn normalize(format: Format, line: &[u8]) -> Result<Event, BadInput> {
    if format == Format::Native {
        return decode_line(line).map(native_source);
    }
    if line.len() > MAX_EVENT_BYTES {
        return Err(BadInput::new(
            BadReason::TooLarge,
            format!("{} bytes, the limit is {MAX_EVENT_BYTES}", line.len()),
        ));
    }
    let mut event = if format == Format::Keycloak && !starts_like_json(line) {
        // Keycloak's jboss-logging listener writes `type=LOGIN_ERROR, realmId=...` lines.
        keycloak_line(&String::from_utf8_lossy(line))?
    } else {
        let value = parse_json(line)?;
        let mut event = from_parsed(format, &value)?;
        retain_raw(format, &mut event, value);
        event
    };
    event.fingerprint = fingerprint(line);
    event.source = Some(Text::const_new(format.as_str()));
    Ok(event)
}

/// Normalises one input record that may hold several events, handing each to `each` in the
/// record's order. Only an Entra Event Hubs body (`{"records": [...]}`, as diagnostic settings
/// export and Event Hubs' Kafka endpoint delivers) holds several: each of its records is an
/// event with the fingerprint of its own compact JSON, as an HTTP batch element has, and a bad
/// record is one bad input among good ones. Every other record is exactly [`normalize`].
/// `each` is called at least once (a body with no records is one bad input), so a source
/// always has something to account a record's position with.
pub fn normalize_each(format: Format, line: &[u8], mut each: impl FnMut(Result<Event, BadInput>)) {
    if format != Format::Entra || line.len() > MAX_EVENT_BYTES {
        return each(normalize(format, line));
    }
    let value = match parse_json(line) {
        Ok(value) => value,
        Err(bad) => return each(Err(bad)),
    };
    match entra::records(&value).map(Vec::len) {
        Some(0) => each(Err(BadInput::new(
            BadReason::Unmappable,
            "an Event Hubs body with no records",
        ))),
        Some(n) if n > 1 => {
            for record in entra::records(&value).into_iter().flatten() {
                each(normalize_value(format, record.clone()));
            }
        }
        records => {
            // A body of one record is that record: it is what a Sigma rule reads.
            let record = match (records, value) {
                (Some(_), serde_json::Value::Object(mut body)) => match body.remove("records") {
                    Some(serde_json::Value::Array(mut one)) => one.pop().unwrap_or_default(),
                    _ => serde_json::Value::Null,
                },
                (_, value) => value,
            };
            each(from_parsed(format, &record).map(|mut event| {
                event.fingerprint = fingerprint(line);
                event.source = Some(Text::const_new(format.as_str()));
                retain_raw(format, &mut event, record);
                event
            }))
        }
    }
}

/// Normalises an already parsed record (an element of an HTTP batch: Okta's `data.events`,
/// an Auth0 webhook array). The fingerprint is the hash of the value's compact JSON.
pub fn normalize_value(format: Format, value: serde_json::Value) -> Result<Event, BadInput> {
    if format == Format::Native {
        return decode_value(value).map(native_source);
    }
    let bytes = serde_json::to_vec(&value).unwrap_or_default();
    let mut event = from_parsed(format, &value)?;
    retain_raw(format, &mut event, value);
    event.fingerprint = fingerprint(&bytes);
    event.source = Some(Text::const_new(format.as_str()));
    Ok(event)
}

/// Per format, how many live engines hold Sigma rules that read the provider's own record.
static RAW_READERS: [AtomicUsize; Format::NAMES.len()] =
    [const { AtomicUsize::new(0) }; Format::NAMES.len()];

/// While alive, events of these formats keep their provider record in [`Event::raw`] for Sigma
/// rules. Counted, not a flag: engines (a reload's new one beside the old, tests in parallel)
/// each hold their own, and the record is kept while any of them reads it.
#[derive(Debug)]
pub struct RetainRaw(Vec<Format>);

impl RetainRaw {
    pub fn new(formats: impl IntoIterator<Item = Format>) -> RetainRaw {
        let mut formats: Vec<Format> = formats.into_iter().collect();
        formats.sort();
        formats.dedup();
        for f in &formats {
            RAW_READERS[*f as usize].fetch_add(1, Ordering::Relaxed);
        }
        RetainRaw(formats)
    }
}

impl Drop for RetainRaw {
    fn drop(&mut self) {
        for f in &self.0 {
            RAW_READERS[*f as usize].fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Moves the parsed record into the event when a Sigma rule reads this format; otherwise it
/// is dropped here as before, so formats without Sigma rules pay nothing.
fn retain_raw(format: Format, event: &mut Event, value: serde_json::Value) {
    // A Keycloak log line arriving as a JSON string already kept its pairs (`keycloak_line`).
    if event.raw.is_none() && RAW_READERS[format as usize].load(Ordering::Relaxed) > 0 {
        event.raw = Some(crate::event::Raw(Box::new(value)));
    }
}

/// A Keycloak log line (`type=LOGIN_ERROR, realmId=...`, as the jboss-logging listener
/// writes it): its event, keeping its pairs as the record Sigma rules read.
fn keycloak_line(line: &str) -> Result<Event, BadInput> {
    let (mut event, fields) = keycloak::from_log_line_with_fields(line, None)?;
    retain_raw(Format::Keycloak, &mut event, fields);
    Ok(event)
}

/// Native events keep a `source` they already carry (an upstream normaliser may have set
/// it); the others are marked as native.
fn native_source(mut event: Event) -> Event {
    if event.source.is_none() {
        event.source = Some(Text::const_new(Format::Native.as_str()));
    }
    event
}

fn from_parsed(format: Format, value: &serde_json::Value) -> Result<Event, BadInput> {
    // A Keycloak log line may arrive as a JSON string (an array of lines, a quoted line).
    if let (Format::Keycloak, serde_json::Value::String(line)) = (format, value) {
        return keycloak_line(line);
    }
    if !value.is_object() {
        return Err(BadInput::new(
            BadReason::NotAnObject,
            format!("a {format} event must be a JSON object"),
        ));
    }
    match format {
        Format::Auth0 => auth0::from_value(value),
        Format::Okta => okta::from_value(value),
        Format::Keycloak => keycloak::from_value(value),
        Format::Entra => entra::from_value(value),
        Format::GoogleWorkspace => google_workspace::from_value(value),
        Format::Cognito => cognito::from_value(value),
        Format::Ocsf => ocsf::from_value(value),
        // Callers handle native input first; this arm keeps the function total.
        Format::Native => decode_value(value.clone()).map(native_source),
    }
}

fn starts_like_json(line: &[u8]) -> bool {
    matches!(
        line.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{' | b'[' | b'"')
    )
}

fn parse_json(line: &[u8]) -> Result<serde_json::Value, BadInput> {
    serde_json::from_slice(line).map_err(|e| match crate::event::decode::classify(e) {
        // Only nesting beyond serde_json's limit keeps its own reason; the rest is not JSON.
        bad if bad.reason == BadReason::TooDeep => bad,
        bad => BadInput::new(BadReason::InvalidJson, bad.message),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventType;

    #[test]
    fn a_sigma_rule_reads_a_keycloak_log_line_as_its_pairs() {
        let _reading = RetainRaw::new([Format::Keycloak]);
        let line = b"2024-07-17 12:05:32,104 WARN [org.keycloak.events] (executor-thread-1) \
            type=\"LOGIN_ERROR\", realmId=\"acme\", clientId=\"app\", userId=\"null\", \
            ipAddress=\"203.0.113.7\", error=\"invalid_user_credentials\", username=\"bob\"";
        let raw = normalize(Format::Keycloak, line).unwrap().raw.map(|r| *r.0);
        let raw = raw.expect("the pairs are kept");
        assert_eq!(raw["type"], "LOGIN_ERROR");
        assert_eq!(raw["error"], "invalid_user_credentials");
        assert_eq!(raw["ipAddress"], "203.0.113.7");
    }

    #[test]
    fn a_sigma_rule_reads_the_record_of_a_one_record_event_hubs_body() {
        let _reading = RetainRaw::new([Format::Entra]);
        let record = serde_json::json!({"time": "2024-05-01T10:00:00Z", "category": "SignInLogs",
            "resultType": "50126", "properties": {"id": "s-1", "userPrincipalName": "a@x.io",
            "status": {"errorCode": 50126}}});
        let body = serde_json::json!({ "records": [record.clone()] }).to_string();
        let mut raws = Vec::new();
        normalize_each(Format::Entra, body.as_bytes(), |e| {
            raws.push(e.unwrap().raw.map(|r| *r.0));
        });
        assert_eq!(raws, [Some(record)]);
    }

    #[test]
    fn format_names_round_trip_and_unknown_names_are_refused() {
        for (f, name) in Format::all().zip(Format::NAMES) {
            assert_eq!(f.as_str(), *name);
            assert_eq!(f.as_str().parse::<Format>(), Ok(f));
            assert_eq!(f.to_string(), f.as_str());
            // serde's name (configuration files) is strum's.
            assert_eq!(
                serde_json::from_value::<Format>(serde_json::json!(name)).unwrap(),
                f
            );
        }
        assert_eq!(Format::all().count(), Format::NAMES.len());
        let err = "Okta".parse::<Format>().unwrap_err();
        assert!(err.to_string().contains("expected one of"));
    }

    #[test]
    fn format_deserializes_from_lowercase_config_values() {
        #[derive(Deserialize)]
        struct Source {
            format: Format,
        }
        let s: Source = toml::from_str(r#"format = "keycloak""#).unwrap();
        assert_eq!(s.format, Format::Keycloak);
        assert!(toml::from_str::<Source>(r#"format = "Keycloak""#).is_err());
        let s: Source = toml::from_str(r#"format = "google_workspace""#).unwrap();
        assert_eq!(s.format, Format::GoogleWorkspace);
    }

    #[test]
    fn each_format_normalises_in_that_format() {
        let line = br#"{"date":"2024-01-01T00:00:00Z","type":"slo"}"#;
        assert_eq!(
            normalize(Format::Auth0, line).unwrap().kind,
            EventType::Logout
        );
        assert!(normalize(Format::Okta, line).is_err());
    }

    #[test]
    fn native_lines_are_decoded_and_marked_native() {
        let e = normalize(Format::Native, br#"{"ts":1,"type":"logout"}"#).unwrap();
        assert_eq!(e.source.as_deref(), Some("native"));
        let e = normalize(
            Format::Native,
            br#"{"ts":1,"type":"logout","source":"okta"}"#,
        )
        .unwrap();
        assert_eq!(e.source.as_deref(), Some("okta"));
    }

    #[test]
    fn identical_lines_get_identical_fingerprints_and_the_source_is_set() {
        let line = br#"{"date":"2021-11-03T03:06:05.696Z","type":"s","user_id":"auth0|1"}"#;
        let a = normalize(Format::Auth0, line).unwrap();
        let b = normalize(Format::Auth0, line).unwrap();
        assert_eq!(a.kind, EventType::LoginSuccess);
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_ne!(a.fingerprint, 0);
        assert_eq!(a.source.as_deref(), Some("auth0"));
    }

    #[test]
    fn lines_that_are_not_objects_are_rejected_with_their_reason() {
        let reason = |f, l: &str| normalize(f, l.as_bytes()).unwrap_err().reason;
        assert_eq!(reason(Format::Okta, "[1]"), BadReason::NotAnObject);
        assert_eq!(reason(Format::Auth0, "{oops"), BadReason::InvalidJson);
        assert_eq!(reason(Format::Keycloak, "{oops"), BadReason::InvalidJson);
        let big = vec![b'{'; MAX_EVENT_BYTES + 1];
        assert_eq!(
            normalize(Format::Okta, &big).unwrap_err().reason,
            BadReason::TooLarge
        );
        // The newer formats share these rules.
        for f in [
            Format::Entra,
            Format::GoogleWorkspace,
            Format::Cognito,
            Format::Ocsf,
        ] {
            assert_eq!(reason(f, "{oops"), BadReason::InvalidJson, "{f}");
            assert_eq!(reason(f, "[1]"), BadReason::NotAnObject, "{f}");
            assert_eq!(reason(f, "{}"), BadReason::MissingField, "{f}");
            assert_eq!(
                normalize(f, &big).unwrap_err().reason,
                BadReason::TooLarge,
                "{f}"
            );
        }
    }

    #[test]
    fn parsed_values_normalise_like_lines() {
        let v = serde_json::json!({"published":"2024-01-01T00:00:00Z","eventType":"user.session.start",
            "outcome":{"result":"SUCCESS"},"actor":{"id":"00u1","type":"User","alternateId":"A@X.io"}});
        let e = normalize_value(Format::Okta, v).unwrap();
        assert_eq!(e.kind, EventType::LoginSuccess);
        assert_eq!(e.username.as_deref(), Some("a@x.io"));
        assert_eq!(e.source.as_deref(), Some("okta"));
        let line = serde_json::Value::String(
            "2024-01-01 00:00:00,000 INFO [org.keycloak.events] (t) type=LOGOUT, realmId=r, userId=u"
                .into(),
        );
        assert_eq!(
            normalize_value(Format::Keycloak, line).unwrap().kind,
            EventType::Logout
        );
    }
}
