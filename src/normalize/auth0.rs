//! Auth0 log events (log streams, custom webhooks, `/api/v2/logs`), wrapped as
//! `{log_id, data}` or bare, mapped by their type code.

use serde_json::Value;

use super::common::{
    boolean, factor_in_text, new_event, number, owned, path, set_attr, set_attr_opt, set_geo,
    set_ip, set_username, text, timestamp,
};
use super::country::country_code;
use crate::event::{BadInput, BadReason, Event, EventType as T, Geo, Text};

/// One row of the type-code table: what an Auth0 code means canonically.
pub(crate) struct Code {
    pub code: &'static str,
    pub kind: T,
    pub reason: Option<&'static str>,
    pub factor: Option<&'static str>,
}

const fn row(code: &'static str, kind: T) -> Code {
    Code {
        code,
        kind,
        reason: None,
        factor: None,
    }
}

const fn with(
    code: &'static str,
    kind: T,
    reason: Option<&'static str>,
    factor: Option<&'static str>,
) -> Code {
    Code {
        code,
        kind,
        reason,
        factor,
    }
}

/// Auth0 log type codes and their canonical meaning. Codes not listed become `other`.
/// Two rows are refined by the record (see [`refine_failed_login`], [`refine_management_call`]):
/// `f` becomes `other` for client configuration errors, and `sapi` is a security change only
/// when it switches one of the protections in [`SETTINGS`].
pub(crate) static CODES: &[Code] = &[
    // Logins.
    row("s", T::LoginSuccess),
    row("scoa", T::LoginSuccess),
    row("sens", T::LoginSuccess),
    row("sepft", T::LoginSuccess),
    row("f", T::LoginFailure),
    with("fp", T::LoginFailure, Some("bad_password"), None),
    with("fu", T::LoginFailure, Some("unknown_user"), None),
    row("fcoa", T::LoginFailure),
    row("fens", T::LoginFailure),
    row("fepft", T::LoginFailure),
    with("pwd_leak", T::LoginFailure, Some("breached_password"), None),
    row("slo", T::Logout),
    // Attack protection blocks: an account blocked for an IP, or for too many logins.
    row("limit_wc", T::AccountLock),
    row("limit_sul", T::AccountLock),
    row("ublkdu", T::AccountUnlock),
    // Account lifecycle and recovery. Auth0 users change a password only through the reset
    // ticket, so a successful change (`scp`) is the completion of a reset.
    row("ss", T::Signup),
    row("sdu", T::AccountDelete),
    row("du", T::AccountDelete),
    row("scpr", T::PasswordResetRequest),
    row("scp", T::PasswordReset),
    row("sce", T::EmailChange),
    // Tokens.
    row("sertft", T::TokenRefresh),
    row("ferrt", T::TokenReuse),
    // Guardian MFA.
    with("gd_send_pn", T::MfaChallenge, None, Some("push")),
    with("gd_send_sms", T::MfaChallenge, None, Some("sms")),
    with("gd_send_voice", T::MfaChallenge, None, Some("voice")),
    with("gd_send_email", T::MfaChallenge, None, Some("email")),
    row("gd_auth_succeed", T::MfaSuccess),
    with(
        "gd_auth_email_verification",
        T::MfaSuccess,
        None,
        Some("email"),
    ),
    with("gd_recovery_succeed", T::MfaSuccess, None, Some("recovery")),
    with(
        "gd_auth_rejected",
        T::MfaFailure,
        Some("mfa_denied"),
        Some("push"),
    ),
    with("gd_auth_failed", T::MfaFailure, Some("bad_code"), None),
    with(
        "gd_auth_fail_email_verification",
        T::MfaFailure,
        Some("bad_code"),
        Some("email"),
    ),
    with(
        "gd_webauthn_challenge_failed",
        T::MfaFailure,
        None,
        Some("webauthn"),
    ),
    with(
        "gd_recovery_failed",
        T::MfaFailure,
        Some("bad_code"),
        Some("recovery"),
    ),
    with(
        "gd_otp_rate_limit_exceed",
        T::MfaFailure,
        Some("rate_limited"),
        None,
    ),
    with(
        "gd_recovery_rate_limit_exceed",
        T::MfaFailure,
        Some("rate_limited"),
        Some("recovery"),
    ),
    row("gd_enrollment_complete", T::MfaEnroll),
    row("gd_unenroll", T::MfaRemove),
    // Tenant configuration.
    row("gd_module_switch", T::AdminSecurityChange),
    row("gd_tenant_update", T::AdminSecurityChange),
    row("sapi", T::AdminSecurityChange),
];

/// How to read whether a protection is on after a management API call.
#[derive(Clone, Copy, Debug)]
enum Read {
    /// `enabled` (bool or "enabled"/"disabled"); a protection whose `shields` no longer
    /// include `block` only notifies, so it counts as off.
    EnabledAndBlocking,
    /// Bot detection: off when any of its policies is `off`.
    PoliciesNotOff,
    /// Risk assessment: the `AfterAuthentication` flag.
    AfterAuthentication,
    /// MFA policies: a list, empty meaning "never".
    NonEmptyList,
    /// A factor: its `enabled` flag.
    Enabled,
}

/// A protection a `sapi` call can switch: Auth0's description of the call, the path it
/// is made on (used when the description is missing), and the canonical `attrs.setting`.
struct Setting {
    description: &'static str,
    path: &'static str,
    setting: &'static str,
    read: Read,
}

/// The protections whose changes are `admin.security_change` (Auth0 attack protection,
/// bot detection, adaptive MFA risk assessment, MFA policy and factors).
static SETTINGS: &[Setting] = &[
    Setting {
        description: "Update Suspicious IP Throttling settings",
        path: "attack-protection/suspicious-ip-throttling",
        setting: "suspicious_ip_throttling",
        read: Read::EnabledAndBlocking,
    },
    Setting {
        description: "Update Brute-force settings",
        path: "attack-protection/brute-force-protection",
        setting: "brute_force_protection",
        read: Read::EnabledAndBlocking,
    },
    Setting {
        description: "Update Breached Password Detection settings",
        path: "attack-protection/breached-password-detection",
        setting: "breached_password_detection",
        read: Read::EnabledAndBlocking,
    },
    Setting {
        description: "Create or update the anomaly detection captcha",
        path: "attack-protection/bot-detection",
        setting: "bot_detection",
        read: Read::PoliciesNotOff,
    },
    Setting {
        description: "Updates risk assessment configs",
        path: "risk-assessment/config",
        setting: "risk_assessment",
        read: Read::AfterAuthentication,
    },
    Setting {
        description: "Set the Multi-factor Authentication policies",
        path: "guardian/policies",
        setting: "mfa_policy",
        read: Read::NonEmptyList,
    },
    Setting {
        description: "Update a Multi-factor Authentication Factor",
        path: "guardian/factors/",
        setting: "mfa_factor",
        read: Read::Enabled,
    },
];

/// Text in a failed login (`f`) that says the application, not the person, got something
/// wrong: such failures are configuration errors and must not feed brute-force counts.
const CLIENT_ERRORS: [&str; 7] = [
    "callback url mismatch",
    "connection is not enabled",
    "not in the list of allowed",
    "unauthorized_client",
    "invalid_request",
    "invalid_client",
    "service not enabled",
];

/// Failure reasons recognised in the text of a failed login (`f`), first match wins.
const FAILED_LOGIN_REASONS: [(&str, &str); 8] = [
    ("wrong email or password", "bad_password"),
    ("wrong username or password", "bad_password"),
    ("invalid_user_password", "bad_password"),
    ("leaked password", "breached_password"),
    ("user is blocked", "disabled"),
    ("too many", "rate_limited"),
    ("blocked", "locked"),
    ("password has expired", "expired"),
];

/// Normalises one Auth0 log event, wrapped or bare.
pub(crate) fn from_value(v: &Value) -> Result<Event, BadInput> {
    let data = unwrap(v)?;
    let code = text(data, &["type"]).ok_or_else(|| {
        BadInput::new(
            BadReason::MissingField,
            "auth0 event has no `type` code (such as `s`, `fp` or `gd_auth_rejected`)",
        )
    })?;
    let ts = timestamp(data, &[&["date"]], "auth0")?;
    let mut e = classify(code, data, ts);
    fill_identity(&mut e, v, data, code);
    fill_context(&mut e, data);
    Ok(e)
}

/// The log event itself: `data` of a `{log_id, data}` wrapper, or the object as it is.
fn unwrap(v: &Value) -> Result<&Value, BadInput> {
    match path(v, &["data"]) {
        Some(d) if d.is_object() => Ok(d),
        Some(_) => Err(BadInput::new(
            BadReason::WrongType,
            "auth0 event `data` must be an object",
        )),
        None => Ok(v),
    }
}

/// The table row's meaning, refined by the record for `f`, `sapi` and MFA factors.
fn classify(code: &str, data: &Value, ts: i64) -> Event {
    let Some(row) = CODES.iter().find(|r| r.code == code) else {
        return new_event(ts, T::Other, code);
    };
    let mut e = new_event(ts, row.kind, code);
    e.reason = owned(row.reason);
    e.factor = owned(row.factor);
    match code {
        "f" => refine_failed_login(&mut e, data),
        "sapi" => refine_management_call(&mut e, data),
        "gd_module_switch" | "gd_tenant_update" => set_attr(&mut e, "setting", "guardian"),
        _ => {}
    }
    if is_mfa(row.kind) && e.factor.is_none() {
        e.factor = mfa_factor(data);
    }
    e
}

fn is_mfa(kind: T) -> bool {
    matches!(
        kind,
        T::MfaChallenge | T::MfaSuccess | T::MfaFailure | T::MfaEnroll | T::MfaRemove
    )
}

/// The factor of a Guardian event, from its authenticator details or its description
/// ("Guardian - Enrollment complete (sms)").
fn mfa_factor(data: &Value) -> Option<Text> {
    let named = [
        &["details", "authenticator", "type"][..],
        &["details", "authenticator_type"],
        &["details", "factor"],
        &["description"],
    ];
    named
        .iter()
        .filter_map(|keys| text(data, keys))
        .find_map(factor_in_text)
        .map(Into::into)
}

/// A generic failed login is a credential failure unless its text names a client
/// configuration error; the reason comes from the same text.
fn refine_failed_login(e: &mut Event, data: &Value) {
    let said = failure_text(data);
    if CLIENT_ERRORS.iter().any(|m| said.contains(m)) {
        e.kind = T::Other;
        e.reason = Some("client_error".into());
        set_attr(e, "outcome", "failure");
        return;
    }
    e.reason = FAILED_LOGIN_REASONS
        .iter()
        .find(|(marker, _)| said.contains(marker))
        .map(|(_, reason)| Text::from(*reason));
}

/// Description and error details of a failure, lower-cased, for marker matching.
fn failure_text(data: &Value) -> String {
    let parts = [
        &["description"][..],
        &["details", "error", "message"],
        &["details", "error", "oauthError"],
        &["details", "error", "type"],
    ];
    parts
        .iter()
        .filter_map(|keys| text(data, keys))
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// A management API call is a security change only when it switches a protection in
/// [`SETTINGS`] and succeeded; anything else is `other` (with the call kept in attrs).
fn refine_management_call(e: &mut Event, data: &Value) {
    let description = text(data, &["description"]);
    let api_path = text(data, &["details", "request", "path"]);
    set_attr_opt(e, "path", api_path);
    let Some(setting) = find_setting(description, api_path) else {
        e.kind = T::Other;
        return;
    };
    let status = number(data, &["details", "response", "statusCode"]);
    if status.is_some_and(|s| !(200.0..300.0).contains(&s)) {
        // The call was refused: nothing changed.
        e.kind = T::Other;
        set_attr_opt(e, "status_code", status.map(|s| s as i64));
        return;
    }
    set_attr(e, "setting", factor_setting(setting, api_path));
    set_attr_opt(e, "enabled", read_enabled(setting.read, data));
}

/// Finds the setting by Auth0's description of the call; the path is used only when the
/// description is missing, because a record whose description and path disagree cannot be
/// trusted to say which protection changed.
fn find_setting(description: Option<&str>, api_path: Option<&str>) -> Option<&'static Setting> {
    match description {
        Some(d) => SETTINGS
            .iter()
            .find(|s| s.description.eq_ignore_ascii_case(d)),
        None => {
            let p = api_path?;
            SETTINGS.iter().find(|s| p.contains(s.path))
        }
    }
}

/// `mfa_factor:<name>` when the path names the factor (`/api/v2/guardian/factors/sms`).
fn factor_setting(setting: &Setting, api_path: Option<&str>) -> String {
    let factor = api_path
        .and_then(|p| p.split_once("guardian/factors/"))
        .map(|(_, rest)| rest.trim_matches('/'))
        .filter(|f| !f.is_empty() && setting.setting == "mfa_factor");
    match factor {
        Some(f) => format!("{}:{f}", setting.setting),
        None => setting.setting.to_string(),
    }
}

/// Whether the protection is on after the call; `None` when the record does not say.
fn read_enabled(read: Read, data: &Value) -> Option<bool> {
    let response = path(data, &["details", "response", "body"]);
    let request = path(data, &["details", "request", "body"]);
    // The response is what the tenant now has; the request is what was asked for.
    let body = |keys: &[&str]| {
        response
            .and_then(|b| path(b, keys))
            .or_else(|| request.and_then(|b| path(b, keys)))
    };
    match read {
        Read::EnabledAndBlocking => {
            let enabled = flag(body(&["enabled"])?)?;
            let blocking = body(&["shields"]).is_none_or(|s| s.to_string().contains("block"));
            Some(enabled && blocking)
        }
        Read::PoliciesNotOff => {
            let policies = ["policy", "password_reset_policy", "passwordless_policy"];
            let found: Vec<&str> = policies
                .iter()
                .filter_map(|p| body(&[p]).and_then(Value::as_str))
                .collect();
            (!found.is_empty()).then(|| found.iter().all(|p| *p != "off"))
        }
        Read::AfterAuthentication => flag(body(&["AfterAuthentication"])?),
        Read::NonEmptyList => response
            .filter(|b| b.is_array())
            .or(request)
            .and_then(Value::as_array)
            .map(|list| !list.is_empty()),
        Read::Enabled => flag(body(&["enabled"])?),
    }
}

/// A boolean written as `true`/`false` or `"enabled"`/`"disabled"`.
fn flag(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("enabled") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("disabled") => Some(false),
        _ => None,
    }
}

/// Who: the subject of the flow, or for management calls the admin who made it.
fn fill_identity(e: &mut Event, outer: &Value, data: &Value, code: &str) {
    e.id = owned(text(data, &["log_id"]).or_else(|| text(outer, &["log_id"])));
    e.tenant = owned(text(data, &["tenant_name"]));
    e.user = owned(text(data, &["user_id"]));
    set_username(e, text(data, &["user_name"]));
    if matches!(code, "sapi" | "fapi") {
        let admin = ["details", "request", "auth", "user"];
        if e.user.is_none() {
            e.user = owned(text(data, &[admin.as_slice(), &["user_id"]].concat()));
        }
        if e.username.is_none() {
            set_username(e, text(data, &[admin.as_slice(), &["email"]].concat()));
        }
    }
}

/// Where and how: network, client, session, geo and the attrs rules use.
fn fill_context(e: &mut Event, data: &Value) {
    set_ip(e, text(data, &["ip"]));
    e.user_agent = owned(text(data, &["user_agent"]));
    e.client = owned(text(data, &["client_id"]));
    e.session = owned(text(data, &["details", "session_id"]));
    set_geo(e, geo(data));
    set_attr_opt(e, "description", text(data, &["description"]));
    set_attr_opt(e, "connection", text(data, &["connection"]));
    set_attr_opt(e, "hostname", text(data, &["hostname"]));
    set_attr_opt(e, "auth_method", auth_method(data));
    set_attr_opt(e, "email_verified", email_verified(data));
}

/// Auth0's `location_info`, when the log carries it.
fn geo(data: &Value) -> Geo {
    let info = |k: &str| text(data, &["location_info", k]);
    Geo {
        country: info("country_code")
            .or_else(|| info("country_name"))
            .and_then(country_code)
            .map(Into::into),
        city: owned(info("city_name")),
        lat: number(data, &["location_info", "latitude"]),
        lon: number(data, &["location_info", "longitude"]),
        ..Geo::default()
    }
}

/// How the person authenticated, from the connection's strategy: `password` for database
/// connections, `passwordless` for email/SMS links and codes, `federated` otherwise.
fn auth_method(data: &Value) -> Option<&'static str> {
    let strategy_type = text(data, &["strategy_type"]).map(str::to_ascii_lowercase);
    let strategy = text(data, &["strategy"]).map(str::to_ascii_lowercase);
    match (strategy_type.as_deref(), strategy.as_deref()) {
        (Some("database"), _) | (None, Some("auth0")) => Some("password"),
        (Some("passwordless"), _) | (None, Some("email" | "sms")) => Some("passwordless"),
        (Some("social" | "enterprise"), _) => Some("federated"),
        _ if text(data, &["connection"]) == Some("Username-Password-Authentication") => {
            Some("password")
        }
        _ => None,
    }
}

/// `email_verified` where Auth0 puts it in a log (signup and login details).
fn email_verified(data: &Value) -> Option<bool> {
    const PLACES: [&[&str]; 4] = [
        &["details", "email_verified"],
        &["details", "user", "email_verified"],
        &["details", "body", "email_verified"],
        &["email_verified"],
    ];
    PLACES.iter().find_map(|keys| boolean(data, keys))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(v: Value) -> Event {
        from_value(&v).unwrap()
    }

    fn wrapped(data: Value) -> Value {
        json!({"log_id": "900", "data": data})
    }

    #[test]
    fn wrapped_and_bare_events_normalise_alike() {
        let data = json!({"date": "2021-11-03T08:25:14.466Z", "type": "fp", "user_id": "auth0|61",
            "user_name": "New@Test.com", "ip": "81.2.69.143", "client_id": "c1", "tenant_name": "acme"});
        let bare = event(data.clone());
        let wrapped = event(wrapped(data));
        assert_eq!(bare.kind, T::LoginFailure);
        assert_eq!(bare.reason.as_deref(), Some("bad_password"));
        assert_eq!(bare.username.as_deref(), Some("new@test.com"));
        assert_eq!(bare.user.as_deref(), Some("auth0|61"));
        assert_eq!(bare.tenant.as_deref(), Some("acme"));
        assert_eq!(wrapped.id.as_deref(), Some("900"));
        assert_eq!(
            (wrapped.kind, wrapped.reason, wrapped.ip),
            (bare.kind, bare.reason, bare.ip)
        );
    }

    #[test]
    fn the_key_codes_map_to_their_canonical_types() {
        let cases = [
            ("s", T::LoginSuccess, None, None),
            ("fu", T::LoginFailure, Some("unknown_user"), None),
            ("pwd_leak", T::LoginFailure, Some("breached_password"), None),
            ("limit_wc", T::AccountLock, None, None),
            ("gd_send_pn", T::MfaChallenge, None, Some("push")),
            (
                "gd_auth_rejected",
                T::MfaFailure,
                Some("mfa_denied"),
                Some("push"),
            ),
            ("gd_auth_failed", T::MfaFailure, Some("bad_code"), None),
            (
                "gd_otp_rate_limit_exceed",
                T::MfaFailure,
                Some("rate_limited"),
                None,
            ),
            ("gd_auth_succeed", T::MfaSuccess, None, None),
            ("ferrt", T::TokenReuse, None, None),
            ("scpr", T::PasswordResetRequest, None, None),
            ("scp", T::PasswordReset, None, None),
            ("sce", T::EmailChange, None, None),
            ("gd_unenroll", T::MfaRemove, None, None),
            ("slo", T::Logout, None, None),
        ];
        for (code, kind, reason, factor) in cases {
            let e = event(json!({"date": "2024-01-01T00:00:00Z", "type": code}));
            assert_eq!(e.kind, kind, "{code}");
            assert_eq!(e.reason.as_deref(), reason, "{code}");
            assert_eq!(e.factor.as_deref(), factor, "{code}");
        }
    }

    #[test]
    fn unmapped_codes_become_other_with_the_raw_code() {
        let e = event(json!({"date": "2024-01-01T00:00:00Z", "type": "seacft"}));
        assert_eq!(e.kind, T::Other);
        assert_eq!(e.attrs.unwrap()["raw_type"], "seacft");
    }

    #[test]
    fn enrollment_factor_comes_from_the_description() {
        let e = event(
            json!({"date": "2024-01-01T00:00:00Z", "type": "gd_enrollment_complete",
            "description": "Guardian - Enrollment complete (sms)"}),
        );
        assert_eq!((e.kind, e.factor.as_deref()), (T::MfaEnroll, Some("sms")));
    }

    #[test]
    fn failed_logins_caused_by_client_configuration_are_not_credential_failures() {
        let e = event(json!({"date": "2021-11-03T03:06:05.696Z", "type": "f",
            "description": "Callback URL mismatch. http://localhost:3000/callback is not in the list of allowed callback URLs"}));
        assert_eq!(e.kind, T::Other);
        assert_eq!(e.reason.as_deref(), Some("client_error"));
        let e = event(json!({"date": "2021-11-03T03:06:05.696Z", "type": "f",
            "description": "Wrong email or password."}));
        assert_eq!(
            (e.kind, e.reason.as_deref()),
            (T::LoginFailure, Some("bad_password"))
        );
    }

    fn sapi(description: &str, api_path: &str, status: i64, response: Value) -> Event {
        event(
            json!({"date": "2025-10-03 14:09:32.149000000", "type": "sapi", "description": description,
            "details": {"request": {"path": api_path, "auth": {"user": {"email": "Admin@X.io", "user_id": "auth0|adm"}}},
            "response": {"statusCode": status, "body": response}}}),
        )
    }

    fn attrs(e: &Event) -> &serde_json::Map<String, Value> {
        e.attrs.as_ref().unwrap()
    }

    #[test]
    fn disabling_a_protection_is_a_security_change_with_enabled_false() {
        let e = sapi(
            "Update Brute-force settings",
            "/v2/attack-protection/brute-force-protection",
            200,
            json!({"enabled": false}),
        );
        assert_eq!(e.kind, T::AdminSecurityChange);
        assert_eq!(attrs(&e)["setting"], "brute_force_protection");
        assert_eq!(attrs(&e)["enabled"], false);
        assert_eq!(e.username.as_deref(), Some("admin@x.io"));
        // Enabled but only notifying: the protection no longer blocks.
        let e = sapi(
            "Update Suspicious IP Throttling settings",
            "/v2/attack-protection/suspicious-ip-throttling",
            200,
            json!({"enabled": true, "shields": ["admin_notification"]}),
        );
        assert_eq!(attrs(&e)["enabled"], false);
        let e = sapi(
            "Set the Multi-factor Authentication policies",
            "/api/v2/guardian/policies",
            200,
            json!(["all-applications"]),
        );
        assert_eq!(
            (attrs(&e)["setting"].as_str(), &attrs(&e)["enabled"]),
            (Some("mfa_policy"), &json!(true))
        );
    }

    #[test]
    fn refused_or_unrelated_management_calls_are_other() {
        let refused = sapi(
            "Update Brute-force settings",
            "/v2/attack-protection/brute-force-protection",
            400,
            json!({"enabled": false}),
        );
        assert_eq!(refused.kind, T::Other);
        let role = sapi("Create a role", "/api/v2/guardian/policies", 200, json!([]));
        assert_eq!(role.kind, T::Other);
        assert_eq!(attrs(&role)["raw_type"], "sapi");
    }

    #[test]
    fn password_logins_say_so_and_email_verification_is_kept() {
        let e = event(
            json!({"date": "2024-01-01T00:00:00Z", "type": "s", "strategy_type": "database",
            "details": {"email_verified": false}}),
        );
        assert_eq!(attrs(&e)["auth_method"], "password");
        assert_eq!(attrs(&e)["email_verified"], false);
    }

    #[test]
    fn location_info_becomes_geo() {
        let e = event(
            json!({"date": "2024-01-01T00:00:00Z", "type": "s", "location_info":
            {"country_code": "DE", "city_name": "Berlin", "latitude": 52.5, "longitude": 13.4}}),
        );
        let geo = e.geo.unwrap();
        assert_eq!(
            (geo.country.as_deref(), geo.city.as_deref()),
            (Some("DE"), Some("Berlin"))
        );
        assert_eq!((geo.lat, geo.lon), (Some(52.5), Some(13.4)));
    }

    #[test]
    fn records_without_a_type_or_date_are_rejected_precisely() {
        let err = from_value(&json!({"date": "2024-01-01T00:00:00Z"})).unwrap_err();
        assert_eq!(err.reason, BadReason::MissingField);
        assert!(err.message.contains("`type`"));
        let err = from_value(&json!({"type": "s"})).unwrap_err();
        assert_eq!(err.reason, BadReason::MissingField);
        let err = from_value(&json!({"type": "s", "date": "yesterday"})).unwrap_err();
        assert_eq!(err.reason, BadReason::BadTimestamp);
    }

    #[test]
    fn every_code_in_the_table_is_documented() {
        let docs = include_str!("../../docs/formats.md");
        for row in CODES {
            assert!(
                docs.contains(&format!("`{}`", row.code)),
                "docs/formats.md lacks `{}`",
                row.code
            );
        }
        for s in SETTINGS {
            assert!(
                docs.contains(s.setting),
                "docs/formats.md lacks {}",
                s.setting
            );
        }
    }
}
