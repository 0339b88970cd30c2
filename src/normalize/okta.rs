//! Okta System Log events (`/api/v1/logs`, event hooks, log streams), mapped by `eventType`
//! and `outcome`.

use serde_json::Value;

use super::common::{
    boolean, factor_in_text, get, new_event, number, owned, path, present, set_attr, set_attr_opt,
    set_geo, set_ip, set_username, text, timestamp,
};
use super::country::country_code;
use crate::event::{BadInput, BadReason, Event, EventType as T, Geo, Text};

/// Whose account an event is about: the actor who did it, or the user it was done to (an
/// admin resetting someone's factors acts on the target; the ATO chain follows the target).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Subject {
    Actor,
    Target,
}

/// What an event type means, given its outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `login.success`, or `login.failure` when the outcome is FAILURE or DENY.
    Login,
    /// `mfa.success`, `mfa.failure` (FAILURE, DENY, UNANSWERED) or `mfa.challenge` (CHALLENGE).
    Mfa,
    /// This type whatever the outcome: the event type itself is the result.
    Always(T),
    /// This type when it succeeded; a failed attempt changed nothing and is `other`.
    Done(T),
    /// An org-wide protection switched on (`true`) or off: `admin.security_change` with
    /// `attrs.setting` and `attrs.enabled`.
    Setting(&'static str, bool),
    /// `email.change` when the profile update changed the email, else `other`.
    Profile,
}

/// One row of the event-type table.
pub(crate) struct Row {
    pub event_type: &'static str,
    pub kind: Kind,
    subject: Subject,
    pub reason: Option<&'static str>,
    pub factor: Option<&'static str>,
}

const fn on(event_type: &'static str, kind: Kind, subject: Subject) -> Row {
    Row {
        event_type,
        kind,
        subject,
        reason: None,
        factor: None,
    }
}

const fn mfa(
    event_type: &'static str,
    kind: T,
    reason: Option<&'static str>,
    factor: &'static str,
) -> Row {
    Row {
        event_type,
        kind: Kind::Always(kind),
        subject: Subject::Actor,
        reason,
        factor: Some(factor),
    }
}

use Kind::{Always, Done, Login, Mfa, Profile, Setting};
use Subject::{Actor, Target};

/// Okta `eventType`s and their canonical meaning. Types not listed become `other`.
pub(crate) static EVENT_TYPES: &[Row] = &[
    // Sign-in.
    on("user.session.start", Login, Actor),
    on("user.authentication.auth_via_IDP", Login, Actor),
    on("user.authentication.auth_via_social", Login, Actor),
    on("user.session.end", Done(T::Logout), Actor),
    on("user.session.clear", Always(T::SessionRevoke), Target),
    on(
        "user.authentication.universal_logout",
        Always(T::SessionRevoke),
        Target,
    ),
    // MFA. Identity Engine reports a denied push as a failed `auth_via_mfa` whose
    // debugData says OV_RESPONSE_DENY; Classic has its own `deny_push` types.
    on("user.authentication.auth_via_mfa", Mfa, Actor),
    mfa(
        "user.mfa.okta_verify.deny_push",
        T::MfaFailure,
        Some("mfa_denied"),
        "push",
    ),
    mfa(
        "user.mfa.okta_verify.deny_push_upgrade_needed",
        T::MfaFailure,
        Some("mfa_denied"),
        "push",
    ),
    mfa(
        "system.push.send_factor_verify_push",
        T::MfaChallenge,
        None,
        "push",
    ),
    mfa(
        "system.sms.send_factor_verify_message",
        T::MfaChallenge,
        None,
        "sms",
    ),
    on("user.mfa.factor.activate", Done(T::MfaEnroll), Target),
    on("user.mfa.factor.deactivate", Done(T::MfaRemove), Target),
    on("user.mfa.factor.reset_all", Done(T::MfaRemove), Target),
    on("user.mfa.factor.suspend", Done(T::MfaRemove), Target),
    // Account state and recovery.
    on("user.account.lock", Always(T::AccountLock), Target),
    on("user.account.lock.limit", Always(T::AccountLock), Target),
    on("user.account.unlock", Done(T::AccountUnlock), Target),
    on(
        "user.account.unlock_by_admin",
        Done(T::AccountUnlock),
        Target,
    ),
    on(
        "system.email.password_reset.sent_message",
        Always(T::PasswordResetRequest),
        Target,
    ),
    on(
        "user.account.reset_password",
        Done(T::PasswordReset),
        Target,
    ),
    on(
        "user.account.update_password",
        Done(T::PasswordChange),
        Target,
    ),
    on(
        "user.account.update_primary_email",
        Done(T::EmailChange),
        Target,
    ),
    on("user.account.update_profile", Profile, Target),
    on("user.lifecycle.create", Done(T::Signup), Target),
    on(
        "user.lifecycle.delete.initiated",
        Done(T::AccountDelete),
        Target,
    ),
    // Tokens.
    on(
        "app.oauth2.token.grant.refresh_token",
        Done(T::TokenRefresh),
        Target,
    ),
    on(
        "app.oauth2.as.token.grant.refresh_token",
        Done(T::TokenRefresh),
        Target,
    ),
    on(
        "app.oauth2.token.detect_reuse",
        Always(T::TokenReuse),
        Target,
    ),
    on(
        "app.oauth2.as.token.detect_reuse",
        Always(T::TokenReuse),
        Target,
    ),
    // Impersonation: granting Okta Support access and starting the session both alert.
    on(
        "user.session.impersonation.grant",
        Done(T::ImpersonationStart),
        Target,
    ),
    on(
        "user.session.impersonation.initiate",
        Done(T::ImpersonationStart),
        Target,
    ),
    // Org-wide protections.
    on(
        "system.mfa.factor.deactivate",
        Setting("mfa_factor", false),
        Actor,
    ),
    on(
        "system.mfa.factor.activate",
        Setting("mfa_factor", true),
        Actor,
    ),
    on(
        "policy.lifecycle.deactivate",
        Setting("policy", false),
        Actor,
    ),
    on("policy.lifecycle.activate", Setting("policy", true), Actor),
    on(
        "policy.rule.deactivate",
        Setting("policy_rule", false),
        Actor,
    ),
    on("policy.rule.activate", Setting("policy_rule", true), Actor),
];

/// `outcome.reason` of a failed sign-in → canonical reason, matched ignoring case.
/// VERIFICATION_ERROR is refined in [`login_reason`]: Okta uses it for unknown users too.
const LOGIN_REASONS: [(&str, &str); 8] = [
    ("INVALID_CREDENTIALS", "bad_password"),
    ("VERIFICATION_ERROR", "bad_password"),
    ("LOCKED_OUT", "locked"),
    ("PASSWORD_EXPIRED", "expired"),
    ("phishing", "phishing"),
    ("USER_SUSPENDED", "disabled"),
    ("deactivated", "disabled"),
    ("rate limit", "rate_limited"),
];

/// The debugData keys in which Identity Engine reports the answer to an Okta Verify push.
const PUSH_RESPONSE_KEYS: [&str; 2] = [
    "pushOnlyResponseType",
    "pushWithNumberChallengeResponseType",
];

/// Normalises one Okta System Log event.
pub(crate) fn from_value(v: &Value) -> Result<Event, BadInput> {
    let event_type = text(v, &["eventType"]).ok_or_else(|| {
        BadInput::new(
            BadReason::MissingField,
            "okta event has no `eventType` (such as `user.session.start`)",
        )
    })?;
    // `published` is Okta's; `p_event_time` is what Panther keeps when it re-exports events.
    let ts = timestamp(v, &[&["published"], &["p_event_time"]], "okta")?;
    let row = EVENT_TYPES.iter().find(|r| r.event_type == event_type);
    let mut e = new_event(ts, T::Other, event_type);
    if let Some(row) = row {
        classify(&mut e, row, v);
    }
    fill_subject(&mut e, v, row.map_or(Actor, |r| r.subject));
    fill_context(&mut e, v);
    if e.kind == T::LoginFailure && e.reason.is_none() {
        e.reason = login_reason(v, e.user.is_some());
    }
    Ok(e)
}

/// The outcome: `SUCCESS`, `FAILURE`, `ALLOW`, `DENY`, `CHALLENGE`, ... (upper-cased).
fn outcome(v: &Value) -> Option<Text> {
    text(v, &["outcome", "result"]).map(|s| s.to_ascii_uppercase().into())
}

/// Sets type, reason and factor from the table row and the outcome.
fn classify(e: &mut Event, row: &Row, v: &Value) {
    let result = outcome(v);
    let succeeded = matches!(result.as_deref(), Some("SUCCESS" | "ALLOW"));
    let failed = matches!(result.as_deref(), Some("FAILURE" | "DENY"));
    e.kind = match row.kind {
        Login if succeeded => T::LoginSuccess,
        Login if failed => T::LoginFailure,
        Mfa => mfa_kind(result.as_deref()),
        Always(t) => t,
        Done(t) if succeeded || result.is_none() => t,
        Setting(setting, enabled) if succeeded || result.is_none() => {
            set_attr(e, "setting", setting);
            set_attr(e, "enabled", enabled);
            T::AdminSecurityChange
        }
        Profile if email_changed(v) => T::EmailChange,
        _ => T::Other,
    };
    e.reason = owned(row.reason);
    e.factor = owned(row.factor).or_else(|| mfa_factor(v));
    if e.kind == T::MfaFailure && e.reason.is_none() {
        e.reason = mfa_reason(v, result.as_deref());
    }
    if !is_mfa(e.kind) {
        e.factor = None;
    }
}

fn mfa_kind(result: Option<&str>) -> T {
    match result {
        Some("SUCCESS" | "ALLOW") => T::MfaSuccess,
        Some("FAILURE" | "DENY" | "UNANSWERED" | "ABANDONED") => T::MfaFailure,
        Some("CHALLENGE") => T::MfaChallenge,
        _ => T::Other,
    }
}

fn is_mfa(kind: T) -> bool {
    matches!(
        kind,
        T::MfaChallenge | T::MfaSuccess | T::MfaFailure | T::MfaEnroll | T::MfaRemove
    )
}

fn debug_data(v: &Value) -> Option<&Value> {
    path(v, &["debugContext", "debugData"]).filter(|d| d.is_object())
}

/// The factor, from debugData (`factor: OKTA_VERIFY_PUSH`), a push response, or the
/// outcome reason ("User set up SMS_FACTOR factor").
fn mfa_factor(v: &Value) -> Option<Text> {
    let debug = debug_data(v);
    if debug.is_some_and(|d| PUSH_RESPONSE_KEYS.iter().any(|k| get(d, k).is_some())) {
        return Some("push".into());
    }
    let named = [
        debug.and_then(|d| text(d, &["factor"])),
        text(v, &["outcome", "reason"]),
    ];
    named
        .into_iter()
        .flatten()
        .find_map(factor_in_text)
        .map(Into::into)
}

/// Why an MFA step failed: a denied push, a blocked phishing attempt, an unanswered prompt
/// or a wrong code.
fn mfa_reason(v: &Value, result: Option<&str>) -> Option<Text> {
    let debug = debug_data(v);
    let push_answer = debug
        .and_then(|d| PUSH_RESPONSE_KEYS.iter().find_map(|k| text(d, &[k])))
        .unwrap_or_default();
    let said = text(v, &["outcome", "reason"])
        .unwrap_or_default()
        .to_ascii_lowercase();
    let reason = if push_answer.eq_ignore_ascii_case("OV_RESPONSE_DENY")
        || said.contains("ov_response_deny")
        || said.contains("denied")
        || said.contains("rejected")
    {
        "mfa_denied"
    } else if said.contains("phishing") {
        "phishing"
    } else if matches!(result, Some("UNANSWERED" | "ABANDONED")) || said.contains("timeout") {
        "mfa_timeout"
    } else if said.contains("invalid_credentials") || said.contains("invalid") {
        "bad_code"
    } else {
        return None;
    };
    Some(reason.into())
}

/// Why a sign-in failed. Okta reports an unknown username as VERIFICATION_ERROR with an
/// `unknown` actor, so without a known user that reason means `unknown_user`.
fn login_reason(v: &Value, known_user: bool) -> Option<Text> {
    let said = text(v, &["outcome", "reason"])?;
    if said.eq_ignore_ascii_case("VERIFICATION_ERROR") && !known_user {
        return Some("unknown_user".into());
    }
    let lower = said.to_ascii_lowercase();
    LOGIN_REASONS
        .iter()
        .find(|(marker, _)| lower.contains(&marker.to_ascii_lowercase()))
        .map(|(_, reason)| Text::from(*reason))
}

/// Whether a profile update changed the email (debugData `changedAttributes`).
fn email_changed(v: &Value) -> bool {
    debug_data(v)
        .and_then(|d| text(d, &["changedAttributes"]))
        .is_some_and(|c| c.to_ascii_lowercase().contains("email"))
}

/// The account the event is about, and the actor when that is someone else.
fn fill_subject(e: &mut Event, v: &Value, subject: Subject) {
    let actor = get(v, "actor");
    let target_user = (subject == Target).then(|| target_user(v)).flatten();
    let who = target_user.or(actor.filter(|a| is_user(a)));
    if let Some(who) = who {
        e.user = owned(text(who, &["id"]).and_then(known));
        set_username(e, text(who, &["alternateId"]).and_then(known));
    }
    if e.user.is_none() {
        // Token events are acted by the client app; debugData names the user.
        e.user = owned(debug_data(v).and_then(|d| text(d, &["userId"])));
    }
    if let (Some(actor), Some(_)) = (actor, target_user) {
        set_attr_opt(e, "actor", text(actor, &["alternateId"]).and_then(known));
        set_attr_opt(e, "actor_id", text(actor, &["id"]).and_then(known));
    }
}

/// Okta writes `unknown` for an actor it could not resolve (a mistyped username).
fn known(s: &str) -> Option<&str> {
    present(s).filter(|s| !s.eq_ignore_ascii_case("unknown"))
}

fn is_user(v: &Value) -> bool {
    text(v, &["type"]).is_some_and(|t| t.eq_ignore_ascii_case("User"))
}

/// The first target of type User.
fn target_user(v: &Value) -> Option<&Value> {
    get(v, "target")?.as_array()?.iter().find(|t| is_user(t))
}

/// Network, device, session, geo and the attrs worth keeping.
fn fill_context(e: &mut Event, v: &Value) {
    e.id = owned(text(v, &["uuid"]));
    set_ip(e, text(v, &["client", "ipAddress"]));
    e.user_agent = owned(text(v, &["client", "userAgent", "rawUserAgent"]));
    e.client = owned(text(v, &["client", "id"]));
    e.device = owned(debug_data(v).and_then(|d| text(d, &["dtHash"])));
    // Okta writes `unknown` when a request had no session yet.
    e.session = owned(text(v, &["authenticationContext", "externalSessionId"]).and_then(known));
    set_geo(e, geo(v));
    if let Some(name) = text(v, &["client", "geographicalContext", "country"])
        && country_code(name).is_none()
    {
        set_attr(e, "country_name", name);
    }
    set_attr_opt(e, "outcome", text(v, &["outcome", "result"]));
    set_attr_opt(e, "outcome_reason", text(v, &["outcome", "reason"]));
    set_attr_opt(e, "description", text(v, &["displayMessage"]));
    set_attr_opt(e, "is_proxy", boolean(v, &["securityContext", "isProxy"]));
    set_attr_opt(e, "auth_method", auth_method(v));
}

fn geo(v: &Value) -> Geo {
    let place = path(v, &["client", "geographicalContext"]).unwrap_or(&Value::Null);
    Geo {
        country: text(place, &["country"])
            .and_then(country_code)
            .map(Into::into),
        city: owned(text(place, &["city"])),
        lat: number(place, &["geolocation", "lat"]),
        lon: number(place, &["geolocation", "lon"]),
        asn: number(v, &["securityContext", "asNumber"])
            .filter(|n| *n >= 0.0 && *n <= f64::from(u32::MAX))
            .map(|n| n as u32),
        as_org: owned(text(v, &["securityContext", "asOrg"])),
        ..Geo::default()
    }
}

/// `password` when the session was established with a password.
fn auth_method(v: &Value) -> Option<String> {
    text(v, &["authenticationContext", "credentialType"]).map(str::to_ascii_lowercase)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn okta(event_type: &str, result: &str, extra: Value) -> Event {
        let mut v = json!({"published": "2024-05-01T10:00:00.000Z", "eventType": event_type,
            "uuid": "u-1", "outcome": {"result": result},
            "actor": {"id": "00u1", "type": "User", "alternateId": "Alice@Example.com"},
            "client": {"ipAddress": "203.0.113.9", "userAgent": {"rawUserAgent": "UA"},
                "geographicalContext": {"country": "United States", "city": "Queens",
                    "geolocation": {"lat": 40.7, "lon": -73.8}}},
            "securityContext": {"asNumber": 701, "asOrg": "verizon", "isProxy": false},
            "authenticationContext": {"externalSessionId": "idx1"},
            "debugContext": {"debugData": {"dtHash": "dt-1"}}});
        if let (Some(o), Some(x)) = (v.as_object_mut(), extra.as_object()) {
            for (k, val) in x {
                o.insert(k.clone(), val.clone());
            }
        }
        from_value(&v).unwrap()
    }

    #[test]
    fn a_sign_in_fills_identity_network_device_session_and_geo() {
        let e = okta("user.session.start", "SUCCESS", json!({}));
        assert_eq!(e.kind, T::LoginSuccess);
        assert_eq!(e.user.as_deref(), Some("00u1"));
        assert_eq!(e.username.as_deref(), Some("alice@example.com"));
        assert_eq!(e.ip, Some("203.0.113.9".parse().unwrap()));
        assert_eq!(e.device.as_deref(), Some("dt-1"));
        assert_eq!(e.session.as_deref(), Some("idx1"));
        let geo = e.geo.unwrap();
        assert_eq!(geo.country.as_deref(), Some("US"));
        assert_eq!(
            (geo.asn, geo.as_org.as_deref()),
            (Some(701), Some("verizon"))
        );
        assert_eq!(e.id.as_deref(), Some("u-1"));
    }

    #[test]
    fn failed_sign_ins_get_reasons_and_unknown_actors_are_unknown_users() {
        let e = okta(
            "user.session.start",
            "FAILURE",
            json!({"outcome": {"result": "FAILURE", "reason": "INVALID_CREDENTIALS"}}),
        );
        assert_eq!(
            (e.kind, e.reason.as_deref()),
            (T::LoginFailure, Some("bad_password"))
        );
        let e = okta(
            "user.session.start",
            "FAILURE",
            json!({"outcome": {"result": "FAILURE", "reason": "VERIFICATION_ERROR"},
            "actor": {"id": "unknown", "type": "User", "alternateId": "Nobody@x.io"}}),
        );
        assert_eq!(e.reason.as_deref(), Some("unknown_user"));
        assert_eq!((e.user, e.username.as_deref()), (None, Some("nobody@x.io")));
        let e = okta(
            "user.session.start",
            "FAILURE",
            json!({"outcome": {"result": "FAILURE", "reason": "LOCKED_OUT"}}),
        );
        assert_eq!(e.reason.as_deref(), Some("locked"));
    }

    #[test]
    fn push_denials_are_recognised_in_classic_and_identity_engine_forms() {
        let classic = okta("user.mfa.okta_verify.deny_push", "FAILURE", json!({}));
        let oie = okta(
            "user.authentication.auth_via_mfa",
            "FAILURE",
            json!({
            "outcome": {"result": "FAILURE", "reason": "INVALID_CREDENTIALS"},
            "debugContext": {"debugData": {"factor": "OKTA_VERIFY_PUSH", "pushOnlyResponseType": "OV_RESPONSE_DENY"}}}),
        );
        for e in [classic, oie] {
            assert_eq!(e.kind, T::MfaFailure);
            assert_eq!(e.reason.as_deref(), Some("mfa_denied"));
            assert_eq!(e.factor.as_deref(), Some("push"));
        }
        let sent = okta("system.push.send_factor_verify_push", "SUCCESS", json!({}));
        assert_eq!(
            (sent.kind, sent.factor.as_deref()),
            (T::MfaChallenge, Some("push"))
        );
        let code = okta(
            "user.authentication.auth_via_mfa",
            "FAILURE",
            json!({
            "outcome": {"result": "FAILURE", "reason": "INVALID_CREDENTIALS"},
            "debugContext": {"debugData": {"factor": "TOKEN:SOFTWARE:TOTP"}}}),
        );
        assert_eq!(
            (code.reason.as_deref(), code.factor.as_deref()),
            (Some("bad_code"), Some("totp"))
        );
    }

    #[test]
    fn changes_done_to_a_user_follow_the_target_and_keep_the_actor() {
        let e = okta(
            "user.mfa.factor.deactivate",
            "SUCCESS",
            json!({"actor": {"id": "00adm", "type": "User", "alternateId": "admin@x.io"},
            "target": [{"id": "00u9", "type": "User", "alternateId": "Bob@x.io"}]}),
        );
        assert_eq!(e.kind, T::MfaRemove);
        assert_eq!(e.user.as_deref(), Some("00u9"));
        assert_eq!(e.username.as_deref(), Some("bob@x.io"));
        assert_eq!(e.attrs.unwrap()["actor"], "admin@x.io");
    }

    #[test]
    fn account_events_map_as_the_table_says() {
        let cases = [
            ("user.account.lock", "FAILURE", T::AccountLock),
            ("user.account.reset_password", "SUCCESS", T::PasswordReset),
            ("user.account.reset_password", "FAILURE", T::Other),
            (
                "user.account.update_primary_email",
                "SUCCESS",
                T::EmailChange,
            ),
            ("user.account.update_password", "SUCCESS", T::PasswordChange),
            (
                "user.session.impersonation.initiate",
                "SUCCESS",
                T::ImpersonationStart,
            ),
            ("user.mfa.factor.activate", "SUCCESS", T::MfaEnroll),
            ("app.oauth2.token.detect_reuse", "SUCCESS", T::TokenReuse),
            ("user.authentication.sso", "SUCCESS", T::Other),
        ];
        for (event_type, result, kind) in cases {
            assert_eq!(
                okta(event_type, result, json!({})).kind,
                kind,
                "{event_type} {result}"
            );
        }
    }

    #[test]
    fn token_reuse_by_a_client_app_finds_the_user() {
        let e = okta(
            "app.oauth2.token.detect_reuse",
            "SUCCESS",
            json!({
            "actor": {"id": "0oa1", "type": "PublicClientApp", "alternateId": "app"},
            "debugContext": {"debugData": {"userId": "00u7"}}}),
        );
        assert_eq!((e.kind, e.user.as_deref()), (T::TokenReuse, Some("00u7")));
    }

    #[test]
    fn disabling_an_org_factor_is_a_security_change() {
        let e = okta("system.mfa.factor.deactivate", "SUCCESS", json!({}));
        assert_eq!(e.kind, T::AdminSecurityChange);
        let attrs = e.attrs.unwrap();
        assert_eq!(
            (attrs["setting"].as_str(), &attrs["enabled"]),
            (Some("mfa_factor"), &json!(false))
        );
    }

    #[test]
    fn profile_updates_are_email_changes_only_when_the_email_changed() {
        let changed = okta(
            "user.account.update_profile",
            "SUCCESS",
            json!({
            "debugContext": {"debugData": {"changedAttributes": "email,secondEmail"}}}),
        );
        assert_eq!(changed.kind, T::EmailChange);
        let other = okta(
            "user.account.update_profile",
            "SUCCESS",
            json!({
            "debugContext": {"debugData": {"changedAttributes": "title"}}}),
        );
        assert_eq!(other.kind, T::Other);
    }

    #[test]
    fn lower_cased_keys_from_exports_are_accepted() {
        let v = json!({"published": "2022-12-13 15:22:58.759", "eventtype": "app.oauth2.token.detect_reuse",
            "outcome": {"result": "SUCCESS"}, "target": [{"id": "abcd123", "type": "User"}],
            "debugcontext": {"debugData": {"dtHash": "h"}}, "authenticationcontext": {"externalSessionId": "s"}});
        let e = from_value(&v).unwrap();
        assert_eq!(e.kind, T::TokenReuse);
        assert_eq!(
            (e.device.as_deref(), e.session.as_deref()),
            (Some("h"), Some("s"))
        );
    }

    #[test]
    fn events_without_a_usable_time_or_type_are_rejected() {
        let err = from_value(&json!({"eventType": "user.session.start"})).unwrap_err();
        assert_eq!(err.reason, BadReason::MissingField);
        let err = from_value(&json!({"eventType": "user.session.start", "published": "redacted"}))
            .unwrap_err();
        assert_eq!(err.reason, BadReason::BadTimestamp);
        let err = from_value(&json!({"published": "2024-01-01T00:00:00Z"})).unwrap_err();
        assert!(err.message.contains("eventType"));
    }

    #[test]
    fn every_event_type_in_the_table_is_documented() {
        let docs = include_str!("../../docs/formats.md");
        for row in EVENT_TYPES {
            assert!(
                docs.contains(&format!("`{}`", row.event_type)),
                "docs/formats.md lacks `{}`",
                row.event_type
            );
        }
    }
}
