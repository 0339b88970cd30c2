//! The canonical authentication event (SPEC §1) that every source format is normalised into.

pub mod admit;
pub mod decode;
mod field;
mod time;

pub use admit::{Admission, Clock, MAX_EVENT_DEPTH};
pub use decode::{BadInput, BadReason, decode_line, decode_value};
pub use field::{Field, FieldValue, GeoField};
pub use time::{format_ts, parse_rfc3339_ms};

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// An event's text field: inline up to 24 bytes (most tenants, usernames, reasons, factors),
/// so decoding one allocates nothing and dropping one on another thread frees nothing.
pub type Text = compact_str::CompactString;

/// What happened, from the fixed list of SPEC §1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    LoginSuccess,
    LoginFailure,
    Logout,
    MfaChallenge,
    MfaSuccess,
    MfaFailure,
    MfaEnroll,
    MfaRemove,
    PasswordResetRequest,
    PasswordReset,
    PasswordChange,
    EmailChange,
    TokenRefresh,
    TokenReuse,
    SessionRevoke,
    AccountLock,
    AccountUnlock,
    Signup,
    AccountDelete,
    ImpersonationStart,
    AdminSecurityChange,
    Other,
}

impl EventType {
    /// Every type, in a fixed order (used to index rules by type).
    pub const ALL: [EventType; 22] = [
        EventType::LoginSuccess,
        EventType::LoginFailure,
        EventType::Logout,
        EventType::MfaChallenge,
        EventType::MfaSuccess,
        EventType::MfaFailure,
        EventType::MfaEnroll,
        EventType::MfaRemove,
        EventType::PasswordResetRequest,
        EventType::PasswordReset,
        EventType::PasswordChange,
        EventType::EmailChange,
        EventType::TokenRefresh,
        EventType::TokenReuse,
        EventType::SessionRevoke,
        EventType::AccountLock,
        EventType::AccountUnlock,
        EventType::Signup,
        EventType::AccountDelete,
        EventType::ImpersonationStart,
        EventType::AdminSecurityChange,
        EventType::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::LoginSuccess => "login.success",
            EventType::LoginFailure => "login.failure",
            EventType::Logout => "logout",
            EventType::MfaChallenge => "mfa.challenge",
            EventType::MfaSuccess => "mfa.success",
            EventType::MfaFailure => "mfa.failure",
            EventType::MfaEnroll => "mfa.enroll",
            EventType::MfaRemove => "mfa.remove",
            EventType::PasswordResetRequest => "password.reset_request",
            EventType::PasswordReset => "password.reset",
            EventType::PasswordChange => "password.change",
            EventType::EmailChange => "email.change",
            EventType::TokenRefresh => "token.refresh",
            EventType::TokenReuse => "token.reuse",
            EventType::SessionRevoke => "session.revoke",
            EventType::AccountLock => "account.lock",
            EventType::AccountUnlock => "account.unlock",
            EventType::Signup => "signup",
            EventType::AccountDelete => "account.delete",
            EventType::ImpersonationStart => "impersonation.start",
            EventType::AdminSecurityChange => "admin.security_change",
            EventType::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.iter().copied().find(|t| t.as_str() == s)
    }

    /// Position in [`EventType::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        EventType::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown event type `{s}`")))
    }
}

/// Where an event happened, from the event itself or from GeoIP enrichment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Geo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lat: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lon: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_km: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_org: Option<Text>,
}

/// One canonical event. `username` is stored lower-cased, because SPEC §1 compares it
/// case-insensitively and every rule and group key then gets that for free.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Event time in milliseconds since the Unix epoch.
    #[serde(with = "time::ts_serde")]
    pub ts: i64,
    #[serde(rename = "type")]
    pub kind: EventType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Text>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "decode::lowercase"
    )]
    pub username: Option<Text>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "decode::ip"
    )]
    pub ip: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<Box<Geo>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attrs: Option<serde_json::Map<String, serde_json::Value>>,
    /// A stable hash of the event as it arrived. It breaks ties between events with the same
    /// `ts` so that any arrival order yields the same processing order (and alert ids).
    #[serde(skip)]
    pub fingerprint: u64,
    /// The provider's record as it arrived, kept only while some loaded Sigma rule reads that
    /// format (`normalize::RetainRaw`). The engine takes it at arrival, marks the Sigma rules
    /// it matches, and drops it: it is never held for lateness nor stored.
    #[serde(skip)]
    pub raw: Option<Raw>,
}

/// A provider record carried with its event. Transport, not identity: two events are equal
/// whatever records they carry (a test comparing events must not depend on whether some
/// engine alive at the time reads the format).
#[derive(Clone, Debug)]
pub struct Raw(pub Box<serde_json::Value>);

impl PartialEq for Raw {
    fn eq(&self, _: &Raw) -> bool {
        true
    }
}

impl Event {
    /// A minimal event, mostly for tests and normalisers that fill the rest.
    pub fn new(ts: i64, kind: EventType) -> Event {
        Event {
            ts,
            kind,
            id: None,
            tenant: None,
            user: None,
            username: None,
            ip: None,
            user_agent: None,
            device: None,
            session: None,
            client: None,
            factor: None,
            reason: None,
            geo: None,
            source: None,
            attrs: None,
            fingerprint: 0,
            raw: None,
        }
    }

    /// Sets the fingerprint from the event's own canonical JSON, for events that were built
    /// in code rather than read from bytes.
    pub fn with_computed_fingerprint(mut self) -> Event {
        self.compute_fingerprint();
        self
    }

    /// [`Event::with_computed_fingerprint`] in place.
    pub fn compute_fingerprint(&mut self) {
        let json = serde_json::to_vec(&*self).unwrap_or_default();
        self.fingerprint = fingerprint(&json);
    }
}

/// The hash used for event fingerprints: stable across runs and releases.
pub fn fingerprint(bytes: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(bytes)
}
