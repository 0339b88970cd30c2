//! Keycloak events: JSON from the admin REST API or an event listener, and the
//! `type=LOGIN_ERROR, realmId=...` lines of the jboss-logging listener (old unquoted and new
//! quoted forms), mapped by event type, error and admin operation.

use serde_json::{Map, Value};

use super::common::{
    factor_in_text, get, new_event, owned, parse_timestamp, parse_timestamp_str, set_attr,
    set_attr_opt, set_ip, set_username, text, timestamp,
};
use crate::event::{BadInput, BadReason, Event, EventType as T, Text};

/// What a user event type means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Always this type.
    Is(T),
    /// This MFA type, with this factor.
    Factor(T, &'static str),
    /// `LOGIN_ERROR`: decided by [`LOGIN_ERRORS`].
    LoginError,
    /// `REFRESH_TOKEN_ERROR`: `token.reuse` when Keycloak refused a reused refresh token,
    /// else `other` (an expired or revoked token is routine).
    RefreshError,
    /// `UPDATE_PROFILE`: `email.change` when the email changed, else `other`.
    Profile,
    /// `UPDATE_CREDENTIAL`: `password.change` for a password, `mfa.enroll` for a factor.
    CredentialUpdate,
    /// `REMOVE_CREDENTIAL`: `mfa.remove` for a factor, `other` for a password.
    CredentialRemove,
}

use Kind::{CredentialRemove, CredentialUpdate, Factor, Is, LoginError, Profile, RefreshError};

/// Keycloak user event types (`org.keycloak.events.EventType`) and their canonical meaning.
/// Types not listed (CODE_TO_TOKEN, CLIENT_LOGIN, the other `*_ERROR`s, ...) become `other`.
pub(crate) static EVENT_TYPES: &[(&str, Kind)] = &[
    ("LOGIN", Is(T::LoginSuccess)),
    ("LOGIN_ERROR", LoginError),
    ("LOGOUT", Is(T::Logout)),
    ("REGISTER", Is(T::Signup)),
    ("REFRESH_TOKEN", Is(T::TokenRefresh)),
    ("REFRESH_TOKEN_ERROR", RefreshError),
    ("SEND_RESET_PASSWORD", Is(T::PasswordResetRequest)),
    ("RESET_PASSWORD", Is(T::PasswordReset)),
    ("UPDATE_PASSWORD", Is(T::PasswordChange)),
    ("UPDATE_EMAIL", Is(T::EmailChange)),
    ("UPDATE_PROFILE", Profile),
    ("UPDATE_TOTP", Factor(T::MfaEnroll, "totp")),
    ("REMOVE_TOTP", Factor(T::MfaRemove, "totp")),
    ("UPDATE_CREDENTIAL", CredentialUpdate),
    ("REMOVE_CREDENTIAL", CredentialRemove),
    ("USER_DISABLED_BY_TEMPORARY_LOCKOUT", Is(T::AccountLock)),
    ("USER_DISABLED_BY_PERMANENT_LOCKOUT", Is(T::AccountLock)),
    ("IMPERSONATE", Is(T::ImpersonationStart)),
    ("REVOKE_GRANT", Is(T::SessionRevoke)),
    ("DELETE_ACCOUNT", Is(T::AccountDelete)),
];

/// What a `LOGIN_ERROR`'s `error` means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// `login.failure` with this reason, or `mfa.failure` with `bad_code` when the
    /// `credential_type` detail names a second factor.
    Credential(&'static str),
    /// The person refused a prompt: `mfa.failure` / `mfa_denied` when a second factor was
    /// being checked (push-MFA extensions report a denied push this way), else `other`
    /// (a declined consent screen).
    Refused,
    /// The application, not the person, got something wrong: `other`, reason
    /// `client_error`, so misconfigurations never feed brute-force counts.
    Client,
}

/// `LOGIN_ERROR` errors (`org.keycloak.events.Errors`). Errors not listed are
/// `login.failure` with the error kept as the reason.
pub(crate) static LOGIN_ERRORS: &[(&str, Failure)] = &[
    (
        "invalid_user_credentials",
        Failure::Credential("bad_password"),
    ),
    ("user_not_found", Failure::Credential("unknown_user")),
    ("user_disabled", Failure::Credential("disabled")),
    ("user_temporarily_disabled", Failure::Credential("locked")),
    ("expired_code", Failure::Credential("expired")),
    ("rejected_by_user", Failure::Refused),
    ("invalid_redirect_uri", Failure::Client),
    ("invalid_client", Failure::Client),
    ("invalid_client_credentials", Failure::Client),
    ("client_not_found", Failure::Client),
    ("client_disabled", Failure::Client),
    ("invalid_request", Failure::Client),
    ("invalid_code", Failure::Client),
    ("cookie_not_found", Failure::Client),
    ("ssl_required", Failure::Client),
    ("illegal_origin", Failure::Client),
    ("realm_disabled", Failure::Client),
];

/// An admin event the rules care about: operation, resource type, resource path
/// (`*` matches one segment, `**` any path) and what it means.
pub(crate) struct AdminRow {
    pub operation: &'static str,
    pub resource: &'static str,
    pub path: &'static str,
    pub kind: AdminKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AdminKind {
    /// This type, about the user named in the path.
    User(T),
    /// A realm update: `admin.security_change` when it carries `bruteForceProtected`.
    Realm,
    /// An authentication-flow step changed: `admin.security_change`, disabled when its
    /// `requirement` is DISABLED.
    FlowStep,
}

/// Keycloak admin events and their canonical meaning. Others become `other`, with
/// `attrs.raw_type` as Elastic names them (`CREATE-GROUP`).
pub(crate) static ADMIN_EVENTS: &[AdminRow] = &[
    admin("CREATE", "USER", "users/*", AdminKind::User(T::Signup)),
    admin(
        "DELETE",
        "USER",
        "users/*",
        AdminKind::User(T::AccountDelete),
    ),
    admin(
        "DELETE",
        "USER",
        "users/*/credentials/*",
        AdminKind::User(T::MfaRemove),
    ),
    admin(
        "ACTION",
        "USER",
        "users/*/reset-password",
        AdminKind::User(T::PasswordReset),
    ),
    admin(
        "UPDATE",
        "USER",
        "users/*/reset-password",
        AdminKind::User(T::PasswordReset),
    ),
    admin(
        "DELETE",
        "*",
        "attack-detection/brute-force/users/*",
        AdminKind::User(T::AccountUnlock),
    ),
    admin("UPDATE", "REALM", "**", AdminKind::Realm),
    admin("UPDATE", "AUTH_EXECUTION", "**", AdminKind::FlowStep),
];

const fn admin(
    operation: &'static str,
    resource: &'static str,
    path: &'static str,
    kind: AdminKind,
) -> AdminRow {
    AdminRow {
        operation,
        resource,
        path,
        kind,
    }
}

/// Fields of a JSON wrapper (Quarkus JSON logging, log shippers, exports) that hold a log line.
const LINE_FIELDS: [&str; 3] = ["message", "log", "raw"];

/// Keycloak's error for a refresh token presented again after rotation (TokenManager).
const REUSE_MARKER: &str = "refresh token reuse";

/// Details kept in `attrs` under the same name.
const KEPT_DETAILS: [&str; 8] = [
    "error",
    "reason",
    "impersonator",
    "impersonator_realm",
    "credential_type",
    "grant_type",
    "previous_email",
    "updated_email",
];

/// Normalises one JSON record: an event (`type`) or admin event (`operationType`) as the
/// admin API and event listeners write them, or a wrapper holding a log line.
pub(crate) fn from_value(v: &Value) -> Result<Event, BadInput> {
    if get(v, "type").is_none()
        && get(v, "operationType").is_none()
        && let Some(line) = LINE_FIELDS.iter().find_map(|k| text(v, &[k]))
    {
        let wrapper_time = ["timestamp", "@timestamp", "time"]
            .iter()
            .find_map(|k| get(v, k))
            .and_then(parse_timestamp);
        return from_log_line(line, wrapper_time);
    }
    let ts = timestamp(v, &[&["time"], &["timestamp"], &["@timestamp"]], "keycloak")?;
    from_fields(ts, &flatten(v))
}

/// Normalises one log line. `fallback_ts` is used when the line itself carries no time
/// (a JSON log wrapper supplies it).
pub(crate) fn from_log_line(line: &str, fallback_ts: Option<i64>) -> Result<Event, BadInput> {
    from_log_line_with_fields(line, fallback_ts).map(|(event, _)| event)
}

/// [`from_log_line`], with the line's `key=value` pairs as a JSON object: the record a Sigma
/// rule reads (the same names as Keycloak's JSON events: `type`, `realmId`, `userId`, ...).
pub(crate) fn from_log_line_with_fields(
    line: &str,
    fallback_ts: Option<i64>,
) -> Result<(Event, Value), BadInput> {
    let line = line.trim();
    let start = body_start(line).ok_or_else(|| {
        BadInput::new(
            BadReason::Unmappable,
            "not a Keycloak event line: it has no `type=` or `operationType=` field",
        )
    })?;
    let (prefix, body) = line.split_at(start);
    let ts = match line_timestamp(prefix) {
        Some(ts) => ts,
        None => fallback_ts.ok_or_else(|| no_timestamp(prefix))?,
    };
    let fields = Value::Object(parse_pairs(body));
    Ok((from_fields(ts, &fields)?, fields))
}

/// Where the `key=value` part starts: the first `type=` or `operationType=` at the start of
/// the line or after a space.
fn body_start(line: &str) -> Option<usize> {
    ["type=", "operationType="]
        .iter()
        .flat_map(|key| line.match_indices(key).map(|(i, _)| i))
        .filter(|&i| i == 0 || line[..i].ends_with(char::is_whitespace))
        .min()
}

/// The time at the start of the line: `2021-10-22 21:01:45,403`, `2024-07-17T12:05:32,104`,
/// or a syslog `2025-12-09T08:49:18.495105+00:00` (which wins over Keycloak's own local
/// time after it because it carries an offset). Times without an offset are taken as UTC.
fn line_timestamp(prefix: &str) -> Option<i64> {
    let mut tokens = prefix.split_whitespace();
    let first = tokens.next()?;
    parse_timestamp_str(first).or_else(|| {
        let second = tokens.next()?;
        parse_timestamp_str(&format!("{first} {second}"))
    })
}

/// The error for a line whose time cannot be read, saying what to fix.
fn no_timestamp(prefix: &str) -> BadInput {
    let first = prefix.split_whitespace().next().unwrap_or_default();
    let time_only = first.len() >= 8 && first.as_bytes()[2] == b':' && first.as_bytes()[5] == b':';
    let message = if time_only {
        format!(
            "keycloak log line has a time of day (`{first}`) but no date; configure the log \
             format with a date, e.g. %d{{yyyy-MM-dd HH:mm:ss,SSS}}"
        )
    } else if first.is_empty() {
        "keycloak log line has no timestamp before its fields".to_string()
    } else {
        format!("keycloak log line does not start with a timestamp (found `{first}`)")
    };
    BadInput::new(BadReason::BadTimestamp, message)
}

/// Parses `key=value, key="value", key=\"value\"` pairs. Unquoted values run to the next
/// `, key=` (so `realmId=ABCD TEST` and URLs with commas survive); quoted values may hold
/// anything, with `\"` for a quote.
fn parse_pairs(body: &str) -> Map<String, Value> {
    let mut out = Map::new();
    let mut rest = body.trim();
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].trim().trim_start_matches(',').trim();
        let (value, remaining) = read_value(&rest[eq + 1..]);
        if !key.is_empty() {
            out.insert(key.to_string(), Value::String(value));
        }
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

/// Reads one value and returns it with the text after it.
fn read_value(s: &str) -> (String, &str) {
    // Lines copied out of JSON strings keep their escapes: `type=\"LOGOUT\"`.
    if let Some(inner) = s.strip_prefix("\\\"") {
        return match inner.find("\\\"") {
            Some(end) => (inner[..end].to_string(), &inner[end + 2..]),
            None => (inner.to_string(), ""),
        };
    }
    if let Some(inner) = s.strip_prefix('"') {
        return read_quoted(inner);
    }
    let end = next_pair(s).unwrap_or(s.len());
    (s[..end].trim().to_string(), &s[end..])
}

fn read_quoted(inner: &str) -> (String, &str) {
    let mut value = String::new();
    let mut chars = inner.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => value.extend(chars.next().map(|(_, c)| c)),
            '"' => return (value, &inner[i + 1..]),
            c => value.push(c),
        }
    }
    (value, "")
}

/// The position of the `, ` that starts the next `key=` pair.
fn next_pair(s: &str) -> Option<usize> {
    s.match_indices(", ").map(|(i, _)| i).find(|&i| {
        let next = &s[i + 2..];
        let key_len = next
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        key_len > 0 && next.as_bytes().get(key_len) == Some(&b'=')
    })
}

/// One flat object from a JSON event: its own fields, then `details` and `authDetails`
/// (admin events) where they do not clash, as log lines have them.
fn flatten(v: &Value) -> Value {
    let mut out = Map::new();
    let Some(obj) = v.as_object() else {
        return Value::Object(out);
    };
    for (k, val) in obj {
        if !val.is_object() {
            out.insert(k.clone(), val.clone());
        }
    }
    for nested in ["details", "authDetails"] {
        if let Some(Value::Object(inner)) = get(v, nested) {
            for (k, val) in inner {
                out.entry(k.clone()).or_insert_with(|| val.clone());
            }
        }
    }
    Value::Object(out)
}

/// Maps one flat record (from JSON or a log line).
fn from_fields(ts: i64, f: &Value) -> Result<Event, BadInput> {
    let mut e = if let Some(op) = text(f, &["operationType"]) {
        admin_event(ts, op, f)
    } else {
        let event_type = text(f, &["type"]).ok_or_else(|| {
            BadInput::new(
                BadReason::MissingField,
                "keycloak event has no `type` or `operationType`",
            )
        })?;
        user_event(ts, event_type, f)
    };
    fill_common(&mut e, f);
    Ok(e)
}

/// A user event: identity from `userId` and the `username` detail.
fn user_event(ts: i64, event_type: &str, f: &Value) -> Event {
    let upper = event_type.to_ascii_uppercase();
    let kind = EVENT_TYPES
        .iter()
        .find(|(t, _)| *t == upper)
        .map(|(_, k)| *k);
    let mut e = new_event(ts, T::Other, &upper);
    e.user = owned(text(f, &["userId"]));
    set_username(&mut e, text(f, &["username"]));
    let credential = text(f, &["credential_type"]);
    // A credential type other than the password means a second factor was involved.
    let second_factor = credential.filter(|c| !c.eq_ignore_ascii_case("password"));
    let factor = second_factor.and_then(factor_in_text).map(Into::into);
    match kind {
        Some(Is(t)) => e.kind = t,
        Some(Factor(t, name)) => (e.kind, e.factor) = (t, Some(name.into())),
        Some(LoginError) => login_error(&mut e, text(f, &["error"]), second_factor.is_some()),
        Some(RefreshError) => {
            let said = text(f, &["reason"])
                .unwrap_or_default()
                .to_ascii_lowercase();
            if said.contains(REUSE_MARKER) {
                e.kind = T::TokenReuse;
            }
        }
        Some(Profile) if email_changed(f) => e.kind = T::EmailChange,
        Some(CredentialUpdate) if second_factor.is_some() => e.kind = T::MfaEnroll,
        Some(CredentialUpdate) if credential.is_some() => e.kind = T::PasswordChange,
        Some(CredentialRemove) if second_factor.is_some() => e.kind = T::MfaRemove,
        Some(Profile | CredentialUpdate | CredentialRemove) | None => {}
    }
    if matches!(e.kind, T::MfaEnroll | T::MfaRemove | T::MfaFailure) && e.factor.is_none() {
        e.factor = factor;
    }
    e
}

/// `LOGIN_ERROR` by its error, see [`LOGIN_ERRORS`]; `second_factor` when the failed step
/// checked an MFA credential.
fn login_error(e: &mut Event, error: Option<&str>, second_factor: bool) {
    let failure = error.and_then(|err| {
        LOGIN_ERRORS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(err))
            .map(|(_, f)| *f)
    });
    let mfa = |reason: &str| (T::MfaFailure, Some(Text::from(reason)));
    let (kind, reason) = match (failure, second_factor) {
        (Some(Failure::Credential(_)), true) => mfa("bad_code"),
        (Some(Failure::Credential(reason)), false) => (T::LoginFailure, Some(Text::from(reason))),
        (Some(Failure::Refused), true) => mfa("mfa_denied"),
        (Some(Failure::Refused), false) => (T::Other, None),
        (Some(Failure::Client), _) => (T::Other, Some(Text::from("client_error"))),
        (None, _) => (T::LoginFailure, error.map(Into::into)),
    };
    e.kind = kind;
    e.reason = reason;
}

/// `UPDATE_PROFILE` details name the old and new email when the email changed.
fn email_changed(f: &Value) -> bool {
    match (text(f, &["previous_email"]), text(f, &["updated_email"])) {
        (Some(old), Some(new)) => !old.eq_ignore_ascii_case(new),
        (None, Some(_)) => true,
        _ => false,
    }
}

/// An admin event: the user is the one named in the resource path; the admin who acted
/// (`authDetails.userId`) goes to `attrs.actor_user`.
fn admin_event(ts: i64, operation: &str, f: &Value) -> Event {
    let op = operation.to_ascii_uppercase();
    let resource = text(f, &["resourceType"])
        .unwrap_or_default()
        .to_ascii_uppercase();
    let resource_path = text(f, &["resourcePath"]).unwrap_or_default();
    let raw_type = if resource.is_empty() {
        op.clone()
    } else {
        format!("{op}-{resource}")
    };
    let mut e = new_event(ts, T::Other, &raw_type);
    set_attr_opt(&mut e, "actor_user", text(f, &["userId"]));
    set_attr_opt(
        &mut e,
        "resource_path",
        (!resource_path.is_empty()).then_some(resource_path),
    );
    let row = ADMIN_EVENTS.iter().find(|r| {
        r.operation == op
            && (r.resource == "*" || r.resource == resource)
            && path_matches(r.path, resource_path)
    });
    match row.map(|r| r.kind) {
        Some(AdminKind::User(t)) => {
            e.kind = t;
            e.user = user_in_path(resource_path);
            if t == T::MfaRemove {
                set_attr(&mut e, "by_admin", true);
            }
        }
        Some(AdminKind::Realm) => realm_change(&mut e, f),
        Some(AdminKind::FlowStep) => flow_step_change(&mut e, f),
        None => {}
    }
    e
}

/// `users/*/credentials/*` style matching, `*` standing for one segment, `**` for any path.
fn path_matches(pattern: &str, actual: &str) -> bool {
    if pattern == "**" {
        return true;
    }
    let want: Vec<&str> = pattern.split('/').collect();
    let got: Vec<&str> = actual.trim_matches('/').split('/').collect();
    want.len() == got.len() && want.iter().zip(&got).all(|(w, g)| *w == "*" || w == g)
}

/// The user id after `users/` in a resource path.
fn user_in_path(resource_path: &str) -> Option<Text> {
    let mut segments = resource_path.split('/');
    segments.find(|s| *s == "users")?;
    segments.next().filter(|s| !s.is_empty()).map(Into::into)
}

/// The admin event's `representation` (a JSON document in a string), when present.
fn representation(f: &Value) -> Option<Value> {
    match get(f, "representation")? {
        Value::String(s) => serde_json::from_str(s).ok(),
        other => Some(other.clone()),
    }
}

/// A realm update switches brute-force detection when its representation says so.
fn realm_change(e: &mut Event, f: &Value) {
    let Some(enabled) = representation(f).and_then(|r| get(&r, "bruteForceProtected")?.as_bool())
    else {
        return;
    };
    e.kind = T::AdminSecurityChange;
    set_attr(e, "setting", "brute_force_detection");
    set_attr(e, "enabled", enabled);
}

/// A step of an authentication flow (OTP form, WebAuthn) set to DISABLED turns it off.
fn flow_step_change(e: &mut Event, f: &Value) {
    let Some(repr) = representation(f) else {
        return;
    };
    let Some(requirement) = text(&repr, &["requirement"]) else {
        return;
    };
    let step = text(&repr, &["providerId"])
        .or_else(|| text(&repr, &["displayName"]))
        .unwrap_or("unknown");
    e.kind = T::AdminSecurityChange;
    set_attr(e, "setting", format!("authentication_flow:{step}"));
    set_attr(e, "enabled", !requirement.eq_ignore_ascii_case("DISABLED"));
}

/// Realm, client, session, network and the details worth keeping.
fn fill_common(e: &mut Event, f: &Value) {
    e.id = owned(text(f, &["id"]));
    // New versions write a realm UUID in realmId and the name in realmName; old ones the
    // name in realmId. The name is what people and rules use.
    let realm_id = text(f, &["realmId"]);
    e.tenant = owned(text(f, &["realmName"]).or(realm_id));
    set_attr_opt(e, "realm_id", realm_id);
    e.client = owned(text(f, &["clientId"]));
    e.session = owned(text(f, &["sessionId"]));
    set_ip(e, text(f, &["ipAddress"]));
    // Keycloak's `auth_method` is the protocol (openid-connect, saml), not how the person
    // proved who they are, so it is kept under another name.
    set_attr_opt(e, "protocol", text(f, &["auth_method"]));
    for key in KEPT_DETAILS {
        set_attr_opt(e, key, text(f, &[key]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(l: &str) -> Event {
        from_log_line(l, None).unwrap()
    }

    fn attr<'a>(e: &'a Event, k: &str) -> Option<&'a Value> {
        e.attrs.as_ref()?.get(k)
    }

    #[test]
    fn old_unquoted_lines_parse_with_spaces_and_urls_in_values() {
        let e = line(
            "2021-10-22 20:58:02,700 WARN  [org.keycloak.events] (default task-18) type=LOGIN_ERROR, realmId=ABCD TEST, clientId=https://www.example.com/shibboleth, userId=ce637d23, ipAddress=10.2.2.156, error=invalid_user_credentials, auth_method=saml, username=Admin",
        );
        assert_eq!(e.kind, T::LoginFailure);
        assert_eq!(e.reason.as_deref(), Some("bad_password"));
        assert_eq!(e.tenant.as_deref(), Some("ABCD TEST"));
        assert_eq!(
            e.client.as_deref(),
            Some("https://www.example.com/shibboleth")
        );
        assert_eq!(e.username.as_deref(), Some("admin"));
        assert_eq!(e.user.as_deref(), Some("ce637d23"));
        assert_eq!(e.ip, Some("10.2.2.156".parse().unwrap()));
        assert_eq!(
            e.ts,
            parse_timestamp_str("2021-10-22T20:58:02.700Z").unwrap()
        );
    }

    #[test]
    fn new_quoted_lines_and_escaped_quotes_parse() {
        let e = line(
            r#"2025-10-11 23:56:34,733 WARN [events] (executor-thread-1) type="REFRESH_TOKEN_ERROR", realmId="253a", realmName="bodhi", clientId="res", userId="null", ipAddress="49.207.233.26", error="invalid_token", reason="Token is not active", grant_type="refresh_token""#,
        );
        assert_eq!(e.kind, T::Other);
        assert_eq!(e.tenant.as_deref(), Some("bodhi"));
        assert_eq!(attr(&e, "realm_id"), Some(&json!("253a")));
        assert_eq!(e.user, None);
        assert_eq!(attr(&e, "reason"), Some(&json!("Token is not active")));
        let e = line(
            r#"2024-07-17T12:05:32,104 INFO [org.keycloak.events] (main-thread-1) type=\"LOGOUT\", realmId=\"r1\", userId=\"u1\", sessionId=\"s1\", ipAddress=\"192.168.1.1\", username=\"dummyuser\""#,
        );
        assert_eq!((e.kind, e.session.as_deref()), (T::Logout, Some("s1")));
        assert_eq!(e.username.as_deref(), Some("dummyuser"));
    }

    #[test]
    fn refresh_token_reuse_is_recognised_by_keycloaks_reason() {
        let e = line(
            r#"2025-01-01 00:00:00,000 WARN [org.keycloak.events] (t) type="REFRESH_TOKEN_ERROR", realmId="acme", userId="u1", ipAddress="203.0.113.5", error="invalid_token", reason="Maximum allowed refresh token reuse exceeded""#,
        );
        assert_eq!(e.kind, T::TokenReuse);
    }

    #[test]
    fn lines_without_a_date_are_rejected_saying_how_to_fix_the_format() {
        let err = from_log_line("21:01:49,114 WARN  [org.keycloak.events] (default task-1) type=LOGIN_ERROR, realmId=test", None).unwrap_err();
        assert_eq!(err.reason, BadReason::BadTimestamp);
        assert!(err.message.contains("no date"), "{}", err.message);
        let err = from_log_line(
            "2024-01-01 00:00:00,000 INFO [org.keycloak.services] started",
            None,
        )
        .unwrap_err();
        assert_eq!(err.reason, BadReason::Unmappable);
    }

    #[test]
    fn a_syslog_prefix_with_an_offset_gives_the_time() {
        let e = line(
            r#"2025-12-09T08:49:18.495105+00:00 openshift_1 service[keycloak-qk] 2025-12-09 09:49:17,971 INFO [org.keycloak.events] (executor-thread-399) type="IMPERSONATE", realmId="realm1", clientId="null", userId="aaaa", ipAddress="", impersonator_realm="master", impersonator="admin""#,
        );
        assert_eq!(e.kind, T::ImpersonationStart);
        assert_eq!(
            e.ts,
            parse_timestamp_str("2025-12-09T08:49:18.495Z").unwrap()
        );
        assert_eq!((e.client.as_deref(), e.ip), (None, None));
        assert_eq!(attr(&e, "impersonator"), Some(&json!("admin")));
    }

    #[test]
    fn login_errors_map_by_error() {
        let error = |err: &str, extra: &str| {
            line(&format!(
                "2024-01-01 00:00:00,000 WARN [org.keycloak.events] (t) type=LOGIN_ERROR, realmId=r, userId=u, error={err}{extra}"
            ))
        };
        assert_eq!(
            error("user_not_found", "").reason.as_deref(),
            Some("unknown_user")
        );
        assert_eq!(
            error("user_temporarily_disabled", "").reason.as_deref(),
            Some("locked")
        );
        let client = error("invalid_redirect_uri", "");
        assert_eq!(
            (client.kind, client.reason.as_deref()),
            (T::Other, Some("client_error"))
        );
        let denied = error("rejected_by_user", ", credential_type=push-mfa");
        assert_eq!(denied.kind, T::MfaFailure);
        assert_eq!(
            (denied.reason.as_deref(), denied.factor.as_deref()),
            (Some("mfa_denied"), Some("push"))
        );
        let otp = error("invalid_user_credentials", ", credential_type=otp");
        assert_eq!(
            (otp.kind, otp.reason.as_deref()),
            (T::MfaFailure, Some("bad_code"))
        );
        let consent = error("rejected_by_user", "");
        assert_eq!(consent.kind, T::Other);
        let odd = error("some_new_error", "");
        assert_eq!(
            (odd.kind, odd.reason.as_deref()),
            (T::LoginFailure, Some("some_new_error"))
        );
    }

    #[test]
    fn json_events_from_the_admin_api_map_like_lines() {
        let e = from_value(&json!({"id": "e1", "time": 1_700_000_000_000_i64, "type": "UPDATE_PROFILE",
            "realmId": "acme", "userId": "u1", "ipAddress": "198.51.100.4",
            "details": {"username": "Carol", "previous_email": "carol@acme.io", "updated_email": "c@evil.io"}})).unwrap();
        assert_eq!(e.kind, T::EmailChange);
        assert_eq!((e.id.as_deref(), e.ts), (Some("e1"), 1_700_000_000_000));
        assert_eq!(e.username.as_deref(), Some("carol"));
        let totp = from_value(&json!({"time": 1_700_000_000_000_i64, "type": "REMOVE_TOTP", "realmId": "acme", "userId": "u1"})).unwrap();
        assert_eq!(
            (totp.kind, totp.factor.as_deref()),
            (T::MfaRemove, Some("totp"))
        );
        let cred = from_value(&json!({"time": 1_700_000_000_000_i64, "type": "UPDATE_CREDENTIAL", "realmId": "acme", "userId": "u1",
            "details": {"credential_type": "password"}})).unwrap();
        assert_eq!(cred.kind, T::PasswordChange);
    }

    #[test]
    fn admin_events_follow_the_user_in_the_path_and_keep_the_admin() {
        let e = line(
            "2021-10-22 22:12:09,871 DEBUG [org.keycloak.events] (default task-3) operationType=CREATE, realmId=test, clientId=7bca, userId=ce63, ipAddress=10.2.2.156, resourceType=USER, resourcePath=users/0797",
        );
        assert_eq!(e.kind, T::Signup);
        assert_eq!(e.user.as_deref(), Some("0797"));
        assert_eq!(attr(&e, "actor_user"), Some(&json!("ce63")));
        assert_eq!(attr(&e, "raw_type"), Some(&json!("CREATE-USER")));
        let group = line(
            "2021-10-22 22:14:29,031 DEBUG [org.keycloak.events] (t) operationType=CREATE, realmId=test, userId=ce63, resourceType=GROUP, resourcePath=groups/d043",
        );
        assert_eq!(group.kind, T::Other);
        let cred = from_value(&json!({"time": 1_700_000_000_000_i64, "operationType": "DELETE", "resourceType": "USER",
            "resourcePath": "users/u9/credentials/c1", "realmId": "acme",
            "authDetails": {"realmId": "master", "userId": "adm", "ipAddress": "192.0.2.1"}})).unwrap();
        assert_eq!(
            (cred.kind, cred.user.as_deref()),
            (T::MfaRemove, Some("u9"))
        );
    }

    #[test]
    fn turning_off_brute_force_detection_is_a_security_change() {
        let e = from_value(&json!({"time": 1_700_000_000_000_i64, "operationType": "UPDATE", "resourceType": "REALM",
            "resourcePath": "", "realmId": "acme", "representation": "{\"bruteForceProtected\":false}",
            "authDetails": {"userId": "adm"}})).unwrap();
        assert_eq!(e.kind, T::AdminSecurityChange);
        assert_eq!(attr(&e, "enabled"), Some(&json!(false)));
        assert_eq!(attr(&e, "setting"), Some(&json!("brute_force_detection")));
    }

    #[test]
    fn wrapped_log_lines_use_the_wrapper_time_when_the_line_has_none() {
        let e = from_value(&json!({"timestamp": "2024-03-01T10:00:00.000Z", "loggerName": "org.keycloak.events",
            "message": "type=\"LOGIN\", realmId=\"acme\", userId=\"u1\", ipAddress=\"198.51.100.7\", username=\"dave\""})).unwrap();
        assert_eq!(e.kind, T::LoginSuccess);
        assert_eq!(e.ts, parse_timestamp_str("2024-03-01T10:00:00Z").unwrap());
        let raw = from_value(&json!({"raw": "2021-10-22 22:11:31,257 DEBUG [org.keycloak.events] (t) type=LOGIN, realmId=test, userId=u"})).unwrap();
        assert_eq!(raw.kind, T::LoginSuccess);
    }

    #[test]
    fn every_mapping_in_the_tables_is_documented() {
        let docs = include_str!("../../docs/formats.md");
        let names = EVENT_TYPES
            .iter()
            .map(|(t, _)| *t)
            .chain(LOGIN_ERRORS.iter().map(|(e, _)| *e))
            .chain(ADMIN_EVENTS.iter().map(|r| r.path));
        for name in names {
            assert!(
                docs.contains(&format!("`{name}`")),
                "docs/formats.md lacks `{name}`"
            );
        }
    }
}
