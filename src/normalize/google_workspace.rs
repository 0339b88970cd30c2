//! Google Workspace Admin SDK Reports API `login` activities, mapped by event `name` and its
//! parameters.

use serde_json::Value;

use super::common::{
    factor_in_text, get, new_event, path, present, set_attr, set_attr_opt, set_ip, set_username,
    text, timestamp,
};
use crate::event::{BadInput, BadReason, Event, EventType as T, Text};

/// What an event name means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// This type.
    Is(T),
    /// `login.failure`, reason from `login_failure_type` (a wrong second factor is an
    /// `mfa.failure`).
    LoginFailure,
    /// `mfa.success` / `mfa.failure` by `login_challenge_status`, factor from
    /// `login_challenge_method`.
    Challenge,
    /// Google disabled the account: `account.lock` with this reason.
    Disabled(&'static str),
}

/// Login event names and their canonical meaning. Names not listed become `other`.
pub(crate) static EVENT_NAMES: &[(&str, Kind)] = &[
    ("login_success", Kind::Is(T::LoginSuccess)),
    ("login_failure", Kind::LoginFailure),
    ("login_challenge", Kind::Challenge),
    ("login_verification", Kind::Challenge),
    ("logout", Kind::Is(T::Logout)),
    ("2sv_enroll", Kind::Is(T::MfaEnroll)),
    ("2sv_disable", Kind::Is(T::MfaRemove)),
    ("password_edit", Kind::Is(T::PasswordChange)),
    ("recovery_email_edit", Kind::Is(T::EmailChange)),
    (
        "account_disabled_password_leak",
        Kind::Disabled("breached_password"),
    ),
    ("account_disabled_hijacked", Kind::Disabled("hijacked")),
    ("account_disabled_spamming", Kind::Disabled("spamming")),
    (
        "account_disabled_spamming_through_relay",
        Kind::Disabled("spamming"),
    ),
    ("account_disabled_generic", Kind::Disabled("disabled")),
];

/// `login_failure_type` → reason.
const FAILURE_TYPES: [(&str, &str); 4] = [
    ("login_failure_invalid_password", "bad_password"),
    ("login_failure_account_disabled", "disabled"),
    ("login_failure_unknown", "unknown"),
    ("login_failure_invalid_second_factor", "bad_code"),
];

/// `login_challenge_method` values → canonical factor; others by [`factor_in_text`].
const CHALLENGE_METHODS: [(&str, &str); 7] = [
    ("google_prompt", "push"),
    ("internal_two_factor", "push"),
    ("google_authenticator", "totp"),
    ("offline_otp", "totp"),
    ("idv_preregistered_phone", "sms"),
    ("security_key", "webauthn"),
    ("backup_code", "recovery"),
];

/// Normalises one Reports API activity. An activity carries a list of events (one for login
/// activities); the first whose name is in the table is used, else the first. Exports that
/// flatten the activity (Panther: one event's `name`, `type` and `parameters` at the top, the
/// parameters as an object) are read too.
pub(crate) fn from_value(v: &Value) -> Result<Event, BadInput> {
    let events: Vec<&Value> = match get(v, "events") {
        Some(Value::Array(list)) => list.iter().filter(|e| e.is_object()).collect(),
        // Exports that split activities per event (Elastic) keep `events` as one object.
        Some(one @ Value::Object(_)) => vec![one],
        Some(_) => {
            return Err(BadInput::new(
                BadReason::WrongType,
                "google_workspace `events` is neither a list nor an object",
            ));
        }
        None => vec![v],
    };
    let event = events
        .iter()
        .copied()
        .find(|e| text(e, &["name"]).is_some_and(|n| row(n).is_some()))
        .or_else(|| events.first().copied())
        .filter(|e| text(e, &["name"]).is_some())
        .ok_or_else(|| {
            BadInput::new(
                BadReason::MissingField,
                "google_workspace activity has no event `name` (such as `login_failure`)",
            )
        })?;
    let name = text(event, &["name"]).unwrap_or_default();
    let ts = timestamp(v, &[&["id", "time"], &["p_event_time"]], "google_workspace")?;
    let mut e = new_event(ts, T::Other, name);
    if let Some(kind) = row(name) {
        classify(&mut e, kind, event);
    }
    fill(&mut e, v, event);
    Ok(e)
}

fn row(name: &str) -> Option<Kind> {
    EVENT_NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, kind)| *kind)
}

/// A parameter's value, from the API's list (`[{name, value | boolValue | intValue |
/// multiValue}]`) or an export's object (`{name: value}`).
fn param<'a>(event: &'a Value, name: &str) -> Option<&'a Value> {
    match get(event, "parameters")? {
        Value::Array(list) => {
            let p = list
                .iter()
                .find(|p| text(p, &["name"]).is_some_and(|n| n == name))?;
            ["value", "boolValue", "intValue", "multiValue"]
                .iter()
                .find_map(|k| get(p, k).filter(|v| !v.is_null()))
        }
        obj @ Value::Object(_) => get(obj, name).filter(|v| !v.is_null()),
        _ => None,
    }
}

/// A parameter as text; a `multiValue` gives its first value.
fn param_text<'a>(event: &'a Value, name: &str) -> Option<&'a str> {
    match param(event, name)? {
        Value::String(s) => present(s),
        Value::Array(values) => values.iter().filter_map(Value::as_str).find_map(present),
        _ => None,
    }
}

fn classify(e: &mut Event, kind: Kind, event: &Value) {
    match kind {
        Kind::Is(t) => e.kind = t,
        Kind::LoginFailure => {
            let failure = param_text(event, "login_failure_type");
            let reason = failure.and_then(|f| {
                FAILURE_TYPES
                    .iter()
                    .find(|(t, _)| t.eq_ignore_ascii_case(f))
                    .map(|(_, r)| *r)
            });
            if reason == Some("bad_code") {
                e.kind = T::MfaFailure;
                e.factor = challenge_factor(event);
            } else {
                e.kind = T::LoginFailure;
            }
            e.reason = reason.filter(|r| *r != "unknown").map(Into::into);
        }
        Kind::Challenge => {
            let status = param_text(event, "login_challenge_status").unwrap_or_default();
            let lower = status.to_ascii_lowercase();
            e.factor = challenge_factor(event);
            if lower.contains("passed") {
                e.kind = T::MfaSuccess;
            } else if lower.contains("failed") {
                e.kind = T::MfaFailure;
                // The Reports API does not tell "No, it's not me" from an unanswered prompt;
                // a failed prompt is counted as a denial, a failed code as a wrong code.
                e.reason = Some(
                    if e.factor.as_deref() == Some("push") {
                        "mfa_denied"
                    } else {
                        "bad_code"
                    }
                    .into(),
                );
            }
        }
        Kind::Disabled(reason) => {
            e.kind = T::AccountLock;
            e.reason = Some(reason.into());
        }
    }
}

/// An identifier Google writes as a string (`"104839562817364592014"`, `"-7348112290011223300"`)
/// and some exports as a number.
fn id_text(v: &Value, keys: &[&str]) -> Option<Text> {
    match path(v, keys)? {
        Value::Number(n) => Some(n.to_string().into()),
        Value::String(s) => present(s).map(Into::into),
        _ => None,
    }
}

fn challenge_factor(event: &Value) -> Option<Text> {
    let method = param_text(event, "login_challenge_method")?;
    CHALLENGE_METHODS
        .iter()
        .find(|(m, _)| m.eq_ignore_ascii_case(method))
        .map(|(_, f)| *f)
        .or_else(|| factor_in_text(method))
        .map(Into::into)
}

/// Identity, network and the attrs worth keeping. The account is the actor, or for account
/// warnings (which have no actor) the `affected_email_address` parameter.
fn fill(e: &mut Event, v: &Value, event: &Value) {
    e.id = id_text(v, &["id", "uniqueQualifier"]);
    e.tenant = id_text(v, &["id", "customerId"]);
    e.user = id_text(v, &["actor", "profileId"]);
    set_username(
        e,
        text(v, &["actor", "email"]).or_else(|| param_text(event, "affected_email_address")),
    );
    set_ip(e, text(v, &["ipAddress"]));
    set_attr_opt(e, "event_type", text(event, &["type"]));
    set_attr_opt(e, "login_type", param_text(event, "login_type"));
    set_attr_opt(e, "failure_type", param_text(event, "login_failure_type"));
    set_attr_opt(
        e,
        "challenge_method",
        param_text(event, "login_challenge_method"),
    );
    set_attr_opt(
        e,
        "challenge_status",
        param_text(event, "login_challenge_status"),
    );
    if let Some(Value::Bool(b)) = param(event, "is_suspicious") {
        set_attr(e, "is_suspicious", *b);
    }
    set_attr_opt(
        e,
        "auth_method",
        param_text(event, "login_type")
            .filter(|t| t.eq_ignore_ascii_case("google_password"))
            .map(|_| "password"),
    );
    set_attr_opt(e, "caller_type", text(v, &["actor", "callerType"]));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn activity(name: &str, params: Value) -> Value {
        json!({"kind": "admin#reports#activity",
            "id": {"time": "2024-05-01T10:00:00.123Z", "uniqueQualifier": "-42", "applicationName": "login", "customerId": "C01"},
            "actor": {"email": "Liz@Example.com", "profileId": "1002"}, "ipAddress": "203.0.113.10",
            "events": [{"type": "login", "name": name, "parameters": params}]})
    }

    #[test]
    fn a_failed_password_fills_identity_and_reason() {
        let v = activity(
            "login_failure",
            json!([{"name": "login_type", "value": "google_password"},
            {"name": "login_failure_type", "value": "login_failure_invalid_password"}]),
        );
        let e = from_value(&v).unwrap();
        assert_eq!(
            (e.kind, e.reason.as_deref()),
            (T::LoginFailure, Some("bad_password"))
        );
        assert_eq!(
            (e.user.as_deref(), e.username.as_deref()),
            (Some("1002"), Some("liz@example.com"))
        );
        assert_eq!(
            (e.tenant.as_deref(), e.id.as_deref()),
            (Some("C01"), Some("-42"))
        );
        assert_eq!(e.ip, Some("203.0.113.10".parse().unwrap()));
        assert_eq!(e.attrs.unwrap()["auth_method"], "password");
    }

    #[test]
    fn challenges_pass_or_fail_with_their_factor() {
        let challenge = |method: Value, status: &str| {
            from_value(&activity(
                "login_challenge",
                json!([
                {"name": "login_challenge_method", "multiValue": method},
                {"name": "login_challenge_status", "value": status}]),
            ))
            .unwrap()
        };
        let denied = challenge(json!(["google_prompt"]), "Challenge Failed");
        assert_eq!(
            (
                denied.kind,
                denied.reason.as_deref(),
                denied.factor.as_deref()
            ),
            (T::MfaFailure, Some("mfa_denied"), Some("push"))
        );
        let code = challenge(json!(["google_authenticator"]), "Challenge Failed");
        assert_eq!(
            (code.reason.as_deref(), code.factor.as_deref()),
            (Some("bad_code"), Some("totp"))
        );
        let passed = challenge(json!(["security_key"]), "Challenge Passed.");
        assert_eq!(
            (passed.kind, passed.factor.as_deref()),
            (T::MfaSuccess, Some("webauthn"))
        );
    }

    #[test]
    fn account_warnings_are_about_the_affected_address() {
        let mut v = activity(
            "account_disabled_password_leak",
            json!([{"name": "affected_email_address", "value": "Homer@Example.com"}]),
        );
        v.as_object_mut().unwrap().remove("actor");
        let e = from_value(&v).unwrap();
        assert_eq!(
            (e.kind, e.reason.as_deref()),
            (T::AccountLock, Some("breached_password"))
        );
        assert_eq!(e.username.as_deref(), Some("homer@example.com"));
        let e = from_value(&activity("suspicious_login", json!([]))).unwrap();
        assert_eq!(e.kind, T::Other);
    }

    #[test]
    fn flattened_exports_and_single_event_objects_are_read() {
        let panther = json!({"id": {"applicationName": "login"}, "p_event_time": "2021-06-04 09:59:53.650807",
            "actor": {"email": "bob@example.com"}, "type": "2sv_change", "name": "2sv_disable",
            "parameters": {"login_type": "google_password"}});
        let e = from_value(&panther).unwrap();
        assert_eq!(
            (e.kind, e.attrs.unwrap()["login_type"].as_str()),
            (T::MfaRemove, Some("google_password"))
        );
        let mut elastic = activity("logout", json!([]));
        elastic["events"] = elastic["events"][0].clone();
        elastic["actor"]["profileId"] = json!(1);
        let e = from_value(&elastic).unwrap();
        assert_eq!((e.kind, e.user.as_deref()), (T::Logout, Some("1")));
    }

    #[test]
    fn activities_without_a_name_or_time_are_rejected() {
        let mut v = activity("login_success", json!([]));
        v["id"].as_object_mut().unwrap().remove("time");
        assert_eq!(from_value(&v).unwrap_err().reason, BadReason::MissingField);
        let v = json!({"id": {"time": "2024-05-01T10:00:00Z"}, "events": []});
        assert_eq!(from_value(&v).unwrap_err().reason, BadReason::MissingField);
        let v = json!({"id": {"time": "2024-05-01T10:00:00Z"}, "events": "login"});
        assert_eq!(from_value(&v).unwrap_err().reason, BadReason::WrongType);
    }

    #[test]
    fn every_event_name_in_the_table_is_documented() {
        let docs = include_str!("../../docs/formats.md");
        for (name, _) in EVENT_NAMES {
            assert!(
                docs.contains(&format!("`{name}`")),
                "docs/formats.md lacks `{name}`"
            );
        }
    }
}
