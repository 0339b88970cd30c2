//! OCSF Authentication (class 3002) and Account Change (class 3001) events of any 1.x schema
//! version, mapped by `class_uid`, `activity_id` and `status_id`.

use serde_json::Value;

use super::common::{
    boolean, factor_in_text, get, new_event, number, owned, path, set_attr, set_attr_opt, set_geo,
    set_ip, set_username, text, timestamp,
};
use super::country::country_code;
use crate::event::{BadInput, BadReason, Event, EventType as T, Geo, Text};

const AUTHENTICATION: i64 = 3002;
const ACCOUNT_CHANGE: i64 = 3001;

/// What an activity means, given `status_id` (1 success, 2 failure).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Logon: `login.success`; a failure is `mfa.failure` when `is_mfa`, else `login.failure`.
    Logon,
    /// This type whatever the status.
    Always(T),
    /// This type when it succeeded (or says nothing); a failure changed nothing: `other`.
    Done(T),
    /// Only a failure means something: `login.failure` (Kerberos pre-authentication).
    FailureOnly,
    /// `token.refresh` on success; a failure whose detail says "reuse" is `token.reuse`.
    Renew,
    /// `email.change` when `user_result.email_addr` differs from `user.email_addr`.
    EmailIfChanged,
}

use Kind::{Always, Done, EmailIfChanged, FailureOnly, Logon, Renew};

/// (class_uid, activity_id, activity name in the schema, meaning). Others become `other`.
pub(crate) static ACTIVITIES: &[(i64, i64, &str, Kind)] = &[
    (AUTHENTICATION, 1, "Logon", Logon),
    (AUTHENTICATION, 2, "Logoff", Always(T::Logout)),
    (AUTHENTICATION, 3, "Authentication Ticket", Renew),
    (AUTHENTICATION, 5, "Service Ticket Renew", Renew),
    (AUTHENTICATION, 6, "Preauth", FailureOnly),
    (ACCOUNT_CHANGE, 1, "Create", Done(T::Signup)),
    (
        ACCOUNT_CHANGE,
        3,
        "Password Change",
        Done(T::PasswordChange),
    ),
    (ACCOUNT_CHANGE, 4, "Password Reset", Done(T::PasswordReset)),
    (ACCOUNT_CHANGE, 6, "Delete", Done(T::AccountDelete)),
    (ACCOUNT_CHANGE, 9, "Lock", Always(T::AccountLock)),
    (ACCOUNT_CHANGE, 10, "MFA Factor Enable", Done(T::MfaEnroll)),
    (ACCOUNT_CHANGE, 11, "MFA Factor Disable", Done(T::MfaRemove)),
    (ACCOUNT_CHANGE, 99, "Other", EmailIfChanged),
];

/// `auth_factors[].factor_type_id` → canonical factor (names are tried first).
const FACTOR_TYPE_IDS: [(i64, &str); 8] = [
    (1, "sms"),
    (3, "voice"),
    (5, "push"),
    (6, "totp"),
    (7, "totp"),
    (8, "email"),
    (9, "webauthn"),
    (10, "webauthn"),
];

/// Markers in `status_detail` / `status_code` of a failed logon → reason, tried in order.
const LOGIN_REASONS: [(&str, &str); 12] = [
    // Windows says "Unknown user name or bad password." for both; a wrong password is the
    // common case and the one brute-force rules are about.
    ("bad password", "bad_password"),
    ("unknown user", "unknown_user"),
    ("user not found", "unknown_user"),
    ("unknown_user", "unknown_user"),
    ("no such user", "unknown_user"),
    ("locked", "locked"),
    ("disabled", "disabled"),
    ("suspended", "disabled"),
    ("expired", "expired"),
    ("rate", "rate_limited"),
    ("password", "bad_password"),
    ("credential", "bad_password"),
];

/// Markers of a failed MFA step → reason, tried in order.
const MFA_REASONS: [(&str, &str); 7] = [
    ("denied", "mfa_denied"),
    ("declined", "mfa_denied"),
    ("rejected", "mfa_denied"),
    ("timeout", "mfa_timeout"),
    ("timed out", "mfa_timeout"),
    ("code", "bad_code"),
    ("invalid", "bad_code"),
];

/// Normalises one OCSF event.
pub(crate) fn from_value(v: &Value) -> Result<Event, BadInput> {
    let int = |key: &str| match get(v, key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    let type_uid = int("type_uid");
    let class = int("class_uid").or(type_uid.map(|t| t / 100)).ok_or_else(|| {
        BadInput::new(
            BadReason::MissingField,
            "ocsf event has no `class_uid` or `type_uid` (3002 Authentication, 3001 Account Change)",
        )
    })?;
    let activity = int("activity_id")
        .or(type_uid.map(|t| t % 100))
        .unwrap_or(0);
    let ts = event_time(v)?;
    let row = ACTIVITIES
        .iter()
        .find(|(c, a, _, _)| *c == class && *a == activity);
    let raw_type = format!("{class}:{activity}");
    let mut e = new_event(ts, T::Other, &raw_type);
    let status = int("status_id").unwrap_or(0);
    if let Some((_, _, _, kind)) = row {
        e.kind = classify(&mut e, *kind, status, v);
    }
    fill(&mut e, v, class);
    Ok(e)
}

/// Epoch values below this are seconds: OCSF says milliseconds, but some producers (and the
/// OCSF project's own Okta example) write seconds, which as milliseconds would be 1970.
const SECONDS_BELOW: i64 = 100_000_000_000;

/// `time_dt` (an RFC 3339 string, unambiguous) when present, else `time`.
fn event_time(v: &Value) -> Result<i64, BadInput> {
    if get(v, "time_dt").is_some_and(|t| !t.is_null()) {
        return timestamp(v, &[&["time_dt"]], "ocsf");
    }
    let ms = timestamp(v, &[&["time"]], "ocsf")?;
    Ok(if ms < SECONDS_BELOW { ms * 1000 } else { ms })
}

/// The free text a producer explains a status with.
fn status_text(v: &Value) -> String {
    [
        text(v, &["status_detail"]),
        text(v, &["status_code"]),
        text(v, &["message"]),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ")
    .to_ascii_lowercase()
}

fn first_marker(said: &str, markers: &[(&str, &'static str)]) -> Option<Text> {
    markers
        .iter()
        .find(|(m, _)| said.contains(m))
        .map(|(_, r)| Text::const_new(r))
}

fn classify(e: &mut Event, kind: Kind, status: i64, v: &Value) -> T {
    let (succeeded, failed) = (status == 1, status == 2);
    let said = status_text(v);
    match kind {
        Logon if succeeded => {
            e.factor = factor(v);
            T::LoginSuccess
        }
        Logon if failed && boolean(v, &["is_mfa"]) == Some(true) => {
            e.factor = factor(v);
            e.reason = first_marker(&said, &MFA_REASONS);
            T::MfaFailure
        }
        Logon | FailureOnly if failed => {
            e.reason = first_marker(&said, &LOGIN_REASONS);
            T::LoginFailure
        }
        Always(t) => t,
        Done(t) if !failed => t,
        Renew if succeeded => T::TokenRefresh,
        Renew if failed && said.contains("reuse") => T::TokenReuse,
        EmailIfChanged if !failed && email_changed(v) => T::EmailChange,
        _ => T::Other,
    }
}

/// The second factor of `auth_factors` (a password entry is skipped), else `factor` of an
/// Account Change's MFA activity.
fn factor(v: &Value) -> Option<Text> {
    let factors = get(v, "auth_factors").and_then(Value::as_array);
    factors
        .into_iter()
        .flatten()
        .find_map(|f| {
            let name = text(f, &["factor_type"]);
            if name.is_some_and(|n| n.eq_ignore_ascii_case("password")) {
                return None;
            }
            name.and_then(ocsf_factor).or_else(|| {
                let id = number(f, &["factor_type_id"])? as i64;
                FACTOR_TYPE_IDS
                    .iter()
                    .find(|(i, _)| *i == id)
                    .map(|(_, f)| *f)
            })
        })
        .map(Into::into)
}

/// OCSF factor type names: `SMS`, `Phone Call`, `Push Notification`, `OTP`, `Email`,
/// `U2F`, `WebAuthn`, `Hardware Token`.
fn ocsf_factor(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    if lower.contains("phone call") {
        Some("voice")
    } else if lower.contains("hardware token") {
        Some("totp")
    } else {
        factor_in_text(&lower)
    }
}

fn email_changed(v: &Value) -> bool {
    let before = text(v, &["user", "email_addr"]);
    let after = text(v, &["user_result", "email_addr"]);
    matches!((before, after), (Some(b), Some(a)) if !b.eq_ignore_ascii_case(a))
        || (before.is_none() && after.is_some())
}

/// Identity, network, device, session, geo and the attrs worth keeping.
fn fill(e: &mut Event, v: &Value, class: i64) {
    e.id = owned(text(v, &["metadata", "uid"]));
    e.tenant = owned(
        text(v, &["metadata", "tenant_uid"]).or_else(|| text(v, &["cloud", "account", "uid"])),
    );
    e.user = owned(text(v, &["user", "uid"]));
    set_username(
        e,
        text(v, &["user", "email_addr"]).or_else(|| text(v, &["user", "name"])),
    );
    let src = get(v, "src_endpoint").unwrap_or(&Value::Null);
    set_ip(e, text(src, &["ip"]));
    e.user_agent = owned(text(v, &["http_request", "user_agent"]));
    e.device = owned(text(v, &["device", "uid"]).or_else(|| text(src, &["uid"])));
    e.session = owned(text(v, &["session", "uid"]));
    e.client =
        owned(text(v, &["service", "uid"]).or_else(|| text(v, &["dst_endpoint", "svc_name"])));
    let place = get(src, "location").unwrap_or(&Value::Null);
    set_geo(
        e,
        Geo {
            country: text(place, &["country"])
                .and_then(country_code)
                .map(Into::into),
            city: owned(text(place, &["city"])),
            lat: number(place, &["lat"]),
            lon: number(place, &["long"]),
            asn: number(src, &["autonomous_system", "number"])
                .filter(|n| *n >= 0.0 && *n <= f64::from(u32::MAX))
                .map(|n| n as u32),
            as_org: owned(text(src, &["autonomous_system", "name"])),
            ..Geo::default()
        },
    );
    if class == ACCOUNT_CHANGE && matches!(e.kind, T::MfaEnroll | T::MfaRemove) {
        e.factor = factor(v);
    }
    set_attr_opt(e, "status", text(v, &["status"]));
    set_attr_opt(e, "status_detail", text(v, &["status_detail"]));
    set_attr_opt(e, "product", text(v, &["metadata", "product", "name"]));
    set_attr_opt(e, "schema_version", text(v, &["metadata", "version"]));
    set_attr_opt(e, "actor", text(v, &["actor", "user", "name"]));
    if let Some(b) = boolean(v, &["is_mfa"]) {
        set_attr(e, "is_mfa", b);
    }
    let method = get(v, "auth_factors")
        .and_then(Value::as_array)
        .is_some_and(|f| {
            f.iter().any(|x| {
                text(x, &["factor_type"]).is_some_and(|n| n.eq_ignore_ascii_case("password"))
            })
        });
    if method || path(v, &["auth_protocol"]).is_some_and(|p| p == "Password") {
        set_attr(e, "auth_method", "password");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(class: i64, activity: i64, status: i64, extra: Value) -> Value {
        let mut v = json!({"class_uid": class, "activity_id": activity, "status_id": status,
            "time": 1_714_557_600_123_i64, "metadata": {"version": "1.1.0", "uid": "m-1", "tenant_uid": "acme"},
            "user": {"uid": "u-1", "name": "alice", "email_addr": "Alice@Example.com"},
            "src_endpoint": {"ip": "203.0.113.5", "location": {"country": "DE", "city": "Berlin", "lat": 52.5, "long": 13.4}}});
        if let (Some(o), Some(x)) = (v.as_object_mut(), extra.as_object()) {
            o.extend(x.clone());
        }
        v
    }

    #[test]
    fn logons_fill_identity_network_and_geo() {
        let e = from_value(&event(3002, 1, 1, json!({}))).unwrap();
        assert_eq!(e.kind, T::LoginSuccess);
        assert_eq!(
            (e.user.as_deref(), e.username.as_deref()),
            (Some("u-1"), Some("alice@example.com"))
        );
        assert_eq!(
            (e.tenant.as_deref(), e.id.as_deref()),
            (Some("acme"), Some("m-1"))
        );
        let geo = e.geo.unwrap();
        assert_eq!((geo.country.as_deref(), geo.lon), (Some("DE"), Some(13.4)));
        assert_eq!(e.attrs.unwrap()["raw_type"], "3002:1");
    }

    #[test]
    fn failures_get_reasons_from_the_status_detail() {
        let fail = |detail: &str, mfa: bool| {
            from_value(&event(
                3002,
                1,
                2,
                json!({"status_detail": detail, "is_mfa": mfa,
                "auth_factors": [{"factor_type": "Push Notification", "factor_type_id": 5}]}),
            ))
            .unwrap()
        };
        let e = fail("Unknown user name or bad password.", false);
        assert_eq!(
            (e.kind, e.reason.as_deref()),
            (T::LoginFailure, Some("bad_password"))
        );
        assert_eq!(
            fail("User not found", false).reason.as_deref(),
            Some("unknown_user")
        );
        assert_eq!(
            fail("Account locked out", false).reason.as_deref(),
            Some("locked")
        );
        let e = fail("MFA push denied by user", true);
        assert_eq!(
            (e.kind, e.reason.as_deref(), e.factor.as_deref()),
            (T::MfaFailure, Some("mfa_denied"), Some("push"))
        );
        assert_eq!(
            fail("Push timed out", true).reason.as_deref(),
            Some("mfa_timeout")
        );
    }

    #[test]
    fn activities_map_as_the_table_says() {
        let cases = [
            (3002, 2, 1, T::Logout),
            (3002, 5, 1, T::TokenRefresh),
            (3002, 6, 2, T::LoginFailure),
            (3002, 6, 1, T::Other),
            (3001, 1, 1, T::Signup),
            (3001, 4, 1, T::PasswordReset),
            (3001, 4, 2, T::Other),
            (3001, 9, 2, T::AccountLock),
            (3001, 11, 1, T::MfaRemove),
            (3001, 99, 1, T::Other),
            (4001, 1, 1, T::Other),
        ];
        for (class, activity, status, kind) in cases {
            let e = from_value(&event(class, activity, status, json!({}))).unwrap();
            assert_eq!(e.kind, kind, "{class}:{activity} status {status}");
        }
        let reuse = event(
            3002,
            5,
            2,
            json!({"status_detail": "Refresh token reuse detected"}),
        );
        assert_eq!(from_value(&reuse).unwrap().kind, T::TokenReuse);
        let email = event(
            3001,
            99,
            1,
            json!({"user_result": {"email_addr": "new@example.com"}}),
        );
        assert_eq!(from_value(&email).unwrap().kind, T::EmailChange);
    }

    #[test]
    fn type_uid_stands_in_for_class_and_activity_and_seconds_are_read_as_seconds() {
        let v = json!({"type_uid": 300201, "status_id": 2, "time": 1_723_564_700_i64});
        let e = from_value(&v).unwrap();
        assert_eq!((e.kind, e.ts), (T::LoginFailure, 1_723_564_700_000));
        let v = json!({"type_uid": 300201, "status_id": 1, "time": 1, "time_dt": "2024-08-13T15:58:20.000Z"});
        assert_eq!(from_value(&v).unwrap().ts, 1_723_564_700_000);
    }

    #[test]
    fn events_without_a_class_or_time_are_rejected() {
        let err =
            from_value(&json!({"activity_id": 1, "time": 1_714_557_600_123_i64})).unwrap_err();
        assert_eq!(err.reason, BadReason::MissingField);
        let err = from_value(&json!({"class_uid": 3002})).unwrap_err();
        assert_eq!(err.reason, BadReason::MissingField);
        let err = from_value(&json!({"class_uid": 3002, "time": "soon"})).unwrap_err();
        assert_eq!(err.reason, BadReason::BadTimestamp);
    }

    #[test]
    fn every_activity_in_the_table_is_documented() {
        let docs = include_str!("../../docs/formats.md");
        for (class, activity, name, _) in ACTIVITIES {
            let row = format!("| {class} | {activity} {name} |");
            assert!(docs.contains(&row), "docs/formats.md lacks the row `{row}`");
        }
    }
}
