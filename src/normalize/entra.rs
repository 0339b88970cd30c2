//! Microsoft Entra ID sign-in and audit logs (Event Hubs records, Graph `signIns` objects),
//! mapped by category, `status.errorCode` and audit activity.

use serde_json::Value;

use super::common::{
    boolean, factor_in_text, get, new_event, number, owned, path, present, set_attr, set_attr_opt,
    set_geo, set_ip, set_username, text, timestamp,
};
use super::country::country_code;
use crate::event::{BadInput, BadReason, Event, EventType as T, Geo, Text};

/// What a sign-in `errorCode` means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The credential was refused: `login.failure` with this reason.
    Failed(&'static str),
    /// The password was right and a second factor is now asked for: `mfa.challenge`.
    MfaRequired,
    /// The second factor failed; `authenticationDetails` says a denial from a timeout.
    MfaFailed,
    /// A refresh token was refused because it was revoked or is not valid for this caller:
    /// `token.reuse` with this reason when the sign-in is non-interactive (a token
    /// redemption), else `other`.
    TokenRefused(&'static str),
    /// A token or session that routinely goes stale (after a password change): `other`
    /// with this reason, so every device of a user who changed a password does not alert.
    Stale(&'static str),
    /// An interrupt (keep me signed in, registration, device check): the flow goes on, nothing
    /// failed. `other`.
    Interrupt,
}

use Outcome::{Failed, Interrupt, MfaFailed, MfaRequired, Stale, TokenRefused};

/// Sign-in `errorCode`s and their meaning. 0 is success; codes not listed become `other`
/// with `attrs.error_code` (most are client configuration errors, such as 700016 unknown
/// application or 7000215 bad client secret, which must never look like password guessing).
pub(crate) static ERROR_CODES: &[(i64, Outcome)] = &[
    (50126, Failed("bad_password")),
    (50034, Failed("unknown_user")),
    (50053, Failed("locked")),
    (50055, Failed("expired")),
    (50144, Failed("expired")),
    (50057, Failed("disabled")),
    (53003, Failed("conditional_access")),
    // Workload identities: a wrong or expired client secret is their failed credential.
    (7000215, Failed("bad_password")),
    (7000222, Failed("expired")),
    (50074, MfaRequired),
    (50076, MfaRequired),
    (500121, MfaFailed),
    (50158, MfaFailed),
    (50173, TokenRefused("token_revoked")),
    (50133, Stale("session_invalid")),
    (70000, TokenRefused("invalid_grant")),
    (50140, Interrupt),
    (50125, Interrupt),
    (50097, Interrupt),
    (50199, Interrupt),
    (50072, Interrupt),
    (50079, Interrupt),
    (16000, Interrupt),
    (16001, Interrupt),
    (81010, Interrupt),
    (81012, Interrupt),
];

/// What an audit activity means when it succeeded; a failed one changed nothing (`other`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Audit {
    /// This type, about the target user.
    Is(T),
    /// `email.change` when a modified property is a mail address, else `other`.
    UpdateUser,
    /// `admin.security_change`, setting `conditional_access`, when a policy stopped (enabled
    /// false) or started (true) being enforced or requiring MFA; else `other`.
    ConditionalAccess,
}

/// Audit `activityDisplayName`s and their canonical meaning; others become `other`.
pub(crate) static AUDIT_ACTIVITIES: &[(&str, Audit)] = &[
    ("Reset password (self-service)", Audit::Is(T::PasswordReset)),
    ("Reset user password", Audit::Is(T::PasswordReset)),
    (
        "Change password (self-service)",
        Audit::Is(T::PasswordChange),
    ),
    ("Change user password", Audit::Is(T::PasswordChange)),
    ("User registered security info", Audit::Is(T::MfaEnroll)),
    ("Admin registered security info", Audit::Is(T::MfaEnroll)),
    ("User deleted security info", Audit::Is(T::MfaRemove)),
    ("Admin deleted security info", Audit::Is(T::MfaRemove)),
    ("Delete user", Audit::Is(T::AccountDelete)),
    ("Add user", Audit::Is(T::Signup)),
    ("Update user", Audit::UpdateUser),
    ("Update conditional access policy", Audit::ConditionalAccess),
    ("Delete conditional access policy", Audit::ConditionalAccess),
];

/// Who signed in and how, from the category of Azure Monitor diagnostic settings (else Graph's
/// `isInteractive`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    /// `SignInLogs`: a person entered credentials.
    Interactive,
    /// `NonInteractiveUserSignInLogs`: a client redeemed a token on a person's behalf.
    NonInteractive,
    /// `ServicePrincipalSignInLogs`, `ManagedIdentitySignInLogs`: an application signed in with
    /// its own secret or certificate; its id and name stand in for user and username, and
    /// `attrs.workload` is true so rules can leave such accounts out.
    Workload,
}

impl Flow {
    fn of(category: &str, props: &Value) -> Flow {
        const WORKLOAD: [&str; 2] = ["ServicePrincipalSignInLogs", "ManagedIdentitySignInLogs"];
        if category.eq_ignore_ascii_case("SignInLogs") {
            Flow::Interactive
        } else if category.eq_ignore_ascii_case("NonInteractiveUserSignInLogs") {
            Flow::NonInteractive
        } else if WORKLOAD.iter().any(|w| w.eq_ignore_ascii_case(category))
            || text(props, &["servicePrincipalId"]).is_some() && text(props, &["userId"]).is_none()
        {
            Flow::Workload
        } else if boolean(props, &["isInteractive"]) == Some(false) {
            Flow::NonInteractive
        } else {
            Flow::Interactive
        }
    }
}

/// Modified properties of `Update user` that hold a mail address.
const MAIL_PROPERTIES: [&str; 3] = ["Mail", "OtherMails", "Email"];

/// The `records` array of an Event Hubs body (`{"records": [...]}`); `None` when the value
/// is not such a body. [`super::normalize_each`] makes one event of each.
pub(super) fn records(v: &Value) -> Option<&Vec<Value>> {
    let obj = v.as_object()?;
    obj.get("records")?.as_array()
}

/// Normalises one Entra record: an Event Hubs record (`category`, `properties`), a Graph
/// `signIn` or `directoryAudit` object, or a body holding exactly one record.
pub(crate) fn from_value(v: &Value) -> Result<Event, BadInput> {
    if let Some(records) = records(v) {
        return match records.as_slice() {
            [one] if one.is_object() => from_value(one),
            [_] => Err(BadInput::new(
                BadReason::NotAnObject,
                "an entra record must be a JSON object",
            )),
            many => Err(BadInput::new(
                BadReason::Unmappable,
                format!(
                    "an Event Hubs body with {} records where one event is expected: give \
                     one record per line (`jq -c '.records[]'`)",
                    many.len()
                ),
            )),
        };
    }
    // Event Hubs records wrap the Graph object in `properties`; Graph objects are bare.
    let props = get(v, "properties").filter(|p| p.is_object()).unwrap_or(v);
    let category = text(v, &["category"]).unwrap_or_default();
    if text(props, &["activityDisplayName"]).is_some() {
        return audit(v, props);
    }
    if get(props, "status").is_none() && text(v, &["resultType"]).is_none() && !is_code(v) {
        return Err(BadInput::new(
            BadReason::MissingField,
            "entra record has neither a sign-in `status.errorCode`/`resultType` nor an audit \
             `activityDisplayName`",
        ));
    }
    sign_in(v, props, category)
}

/// A numeric `resultType` (some exports write it as a number).
fn is_code(v: &Value) -> bool {
    get(v, "resultType").is_some_and(Value::is_number)
}

/// The event time: the sign-in's own time first, then the record's.
fn event_time(v: &Value, props: &Value) -> Result<i64, BadInput> {
    let own = [
        ["createdDateTime"].as_slice(),
        ["activityDateTime"].as_slice(),
    ];
    for keys in own {
        if path(props, keys).is_some_and(|t| !t.is_null()) {
            return timestamp(props, &[keys], "entra");
        }
    }
    timestamp(v, &[&["time"], &["p_event_time"]], "entra")
}

/// `status.errorCode`, else a numeric `resultType` (`"0"`, `"50126"`); Panther's `Success` and
/// `Failure` carry no code (a failure without one is `None`).
fn error_code(v: &Value, props: &Value) -> Option<i64> {
    let from = |x: Option<&Value>| match x? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    from(path(props, &["status", "errorCode"]))
        .or_else(|| from(get(v, "resultType")))
        .or_else(|| {
            text(v, &["resultType"])
                .filter(|r| r.eq_ignore_ascii_case("success"))
                .map(|_| 0)
        })
}

fn sign_in(v: &Value, props: &Value, category: &str) -> Result<Event, BadInput> {
    let ts = event_time(v, props)?;
    let code = error_code(v, props);
    let raw_type = if category.is_empty() {
        "signIn"
    } else {
        category
    };
    let mut e = new_event(ts, T::Other, raw_type);
    let flow = Flow::of(category, props);
    e.kind = classify(&mut e, props, code, flow);
    set_attr_opt(&mut e, "error_code", code.filter(|c| *c != 0));
    set_attr_opt(
        &mut e,
        "failure_reason",
        text(props, &["status", "failureReason"]),
    );
    set_attr(&mut e, "interactive", flow == Flow::Interactive);
    if flow == Flow::Workload {
        set_attr(&mut e, "workload", true);
    }
    fill_sign_in(&mut e, v, props);
    Ok(e)
}

/// Type, reason and factor of a user sign-in.
fn classify(e: &mut Event, props: &Value, code: Option<i64>, flow: Flow) -> T {
    let Some(code) = code else {
        return T::Other;
    };
    if code == 0 {
        e.factor = mfa_factor(props, true);
        return match flow {
            Flow::Interactive | Flow::Workload => T::LoginSuccess,
            Flow::NonInteractive if is_refresh(props) => T::TokenRefresh,
            Flow::NonInteractive => T::Other,
        };
    }
    let Some((_, outcome)) = ERROR_CODES.iter().find(|(c, _)| *c == code) else {
        return T::Other;
    };
    match *outcome {
        Failed(reason) => {
            e.reason = Some(reason.into());
            T::LoginFailure
        }
        MfaRequired => {
            e.factor = mfa_factor(props, false);
            T::MfaChallenge
        }
        MfaFailed => {
            e.factor = mfa_factor(props, false);
            e.reason = mfa_reason(props);
            T::MfaFailure
        }
        TokenRefused(reason) | Stale(reason) => {
            e.reason = Some(reason.into());
            if matches!(outcome, TokenRefused(_)) && flow == Flow::NonInteractive {
                T::TokenReuse
            } else {
                T::Other
            }
        }
        Interrupt => {
            set_attr(e, "interrupt", true);
            T::Other
        }
    }
}

/// A non-interactive sign-in that redeemed a refresh token (or one that does not say what it
/// redeemed: non-interactive user sign-ins are token redemptions by definition).
fn is_refresh(props: &Value) -> bool {
    match text(props, &["incomingTokenType"]) {
        None => true,
        Some(t) => {
            let t = t.to_ascii_lowercase();
            t == "none" || t.contains("refreshtoken")
        }
    }
}

/// The MFA steps of `authenticationDetails` (the first factor, `Password`, is skipped).
fn mfa_steps(props: &Value) -> impl Iterator<Item = &Value> {
    get(props, "authenticationDetails")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|d| {
            text(d, &["authenticationMethod"]).is_some_and(|m| !m.eq_ignore_ascii_case("password"))
        })
}

/// The factor of the MFA step (the last succeeded one for a success), else `mfaDetail`.
fn mfa_factor(props: &Value, succeeded: bool) -> Option<Text> {
    let step = mfa_steps(props)
        .filter(|d| !succeeded || boolean(d, &["succeeded"]) == Some(true))
        .last();
    let named = [
        step.and_then(|d| text(d, &["authenticationMethod"])),
        text(props, &["mfaDetail", "authMethod"]),
    ];
    named
        .into_iter()
        .flatten()
        .find_map(entra_factor)
        .map(Into::into)
}

/// Entra's method names (`Mobile app notification`, `Text message`, `OATH verification
/// code`, `FIDO2 security key`, `Passkey (Microsoft Authenticator)`).
fn entra_factor(method: &str) -> Option<&'static str> {
    let lower = method.to_ascii_lowercase();
    if lower.contains("notification") || lower.contains("authenticator app") {
        Some("push")
    } else if lower.contains("text message") {
        Some("sms")
    } else if lower.contains("phone call") {
        Some("voice")
    } else if lower.contains("verification code") || lower.contains("oath") {
        Some("totp")
    } else if lower.contains("fido") || lower.contains("passkey") || lower.contains("hello") {
        Some("webauthn")
    } else {
        factor_in_text(method)
    }
}

/// Why the second factor failed, from the step's `authenticationStepResultDetail` ("MFA
/// denied; user declined the authentication", "MFA denied; user did not respond to mobile app
/// notification", "MFA denied; invalid verification code") or `status.additionalDetails`.
fn mfa_reason(props: &Value) -> Option<Text> {
    let said: Vec<String> = mfa_steps(props)
        .filter_map(|d| text(d, &["authenticationStepResultDetail"]))
        .chain(text(props, &["status", "additionalDetails"]))
        .map(str::to_ascii_lowercase)
        .collect();
    let any = |markers: &[&str]| said.iter().any(|s| markers.iter().any(|m| s.contains(m)));
    let reason = if any(&["declined", "fraud", "denied the"]) {
        "mfa_denied"
    } else if any(&["did not respond", "timed out", "timeout", "not respond"]) {
        "mfa_timeout"
    } else if any(&["invalid verification code", "invalid code", "incorrect"]) {
        "bad_code"
    } else {
        return None;
    };
    Some(reason.into())
}

/// Identity, network, device, session, geo and the attrs worth keeping, of a sign-in.
fn fill_sign_in(e: &mut Event, v: &Value, props: &Value) {
    e.id = owned(text(props, &["id"]));
    // Graph objects name the tenant only as the user's home tenant.
    e.tenant = owned(
        text(props, &["tenantId"])
            .or_else(|| text(v, &["tenantId"]))
            .or_else(|| text(props, &["homeTenantId"])),
    );
    e.user = owned(text(props, &["userId"]).or_else(|| text(props, &["servicePrincipalId"])));
    set_username(
        e,
        text(props, &["userPrincipalName"]).or_else(|| text(props, &["servicePrincipalName"])),
    );
    set_ip(
        e,
        text(props, &["ipAddress"]).or_else(|| text(v, &["callerIpAddress"])),
    );
    e.user_agent = owned(text(props, &["userAgent"]));
    e.client = owned(text(props, &["appId"]));
    e.device = owned(text(props, &["deviceDetail", "deviceId"]));
    e.session = owned(text(props, &["sessionId"]));
    set_attr_opt(e, "correlation_id", text(props, &["correlationId"]));
    set_geo(e, geo(props));
    set_attr_opt(e, "app", text(props, &["appDisplayName"]));
    set_attr_opt(e, "resource", text(props, &["resourceDisplayName"]));
    set_attr_opt(e, "client_app", text(props, &["clientAppUsed"]));
    set_attr_opt(e, "protocol", text(props, &["authenticationProtocol"]));
    set_attr_opt(
        e,
        "incoming_token_type",
        text(props, &["incomingTokenType"]),
    );
    set_attr_opt(
        e,
        "conditional_access",
        text(props, &["conditionalAccessStatus"]),
    );
    set_attr_opt(e, "risk_level", text(props, &["riskLevelDuringSignIn"]));
    set_attr_opt(
        e,
        "risk_level_aggregated",
        text(props, &["riskLevelAggregated"]),
    );
    set_attr_opt(e, "risk_state", text(props, &["riskState"]));
    if mfa_steps(props).next().is_some() || e.kind == T::LoginSuccess {
        let method = get(props, "authenticationDetails")
            .and_then(Value::as_array)
            .and_then(|d| d.first())
            .and_then(|d| text(d, &["authenticationMethod"]));
        set_attr_opt(e, "auth_method", method.map(str::to_ascii_lowercase));
    }
}

fn geo(props: &Value) -> Geo {
    let place = get(props, "location").unwrap_or(&Value::Null);
    Geo {
        country: text(place, &["countryOrRegion"])
            .and_then(country_code)
            .map(Into::into),
        city: owned(text(place, &["city"])),
        lat: number(place, &["geoCoordinates", "latitude"]),
        lon: number(place, &["geoCoordinates", "longitude"]),
        ..Geo::default()
    }
}

/// An audit record: the user is the first target of type User; the initiator goes to
/// `attrs.actor`.
fn audit(v: &Value, props: &Value) -> Result<Event, BadInput> {
    let ts = event_time(v, props)?;
    let activity = text(props, &["activityDisplayName"]).unwrap_or_default();
    let mut e = new_event(ts, T::Other, activity);
    let succeeded = text(props, &["result"]).is_none_or(|r| r.eq_ignore_ascii_case("success"));
    let target = get(props, "targetResources")
        .and_then(Value::as_array)
        .and_then(|t| {
            t.iter()
                .find(|r| text(r, &["type"]).is_some_and(|k| k.eq_ignore_ascii_case("User")))
        });
    let row = AUDIT_ACTIVITIES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(activity));
    if let (Some((_, meaning)), true) = (row, succeeded) {
        e.kind = match meaning {
            Audit::Is(t) => *t,
            Audit::UpdateUser if target.is_some_and(mail_changed) => T::EmailChange,
            Audit::UpdateUser => T::Other,
            Audit::ConditionalAccess => conditional_access(&mut e, props),
        };
    }
    let actor = path(props, &["initiatedBy", "user"]);
    let who = target.or(actor);
    if let Some(who) = who {
        e.user = owned(text(who, &["id"]));
        set_username(&mut e, text(who, &["userPrincipalName"]));
    }
    if let (Some(actor), Some(_)) = (actor, target) {
        set_attr_opt(&mut e, "actor", text(actor, &["userPrincipalName"]));
        set_attr_opt(&mut e, "actor_id", text(actor, &["id"]));
    }
    if matches!(e.kind, T::MfaEnroll | T::MfaRemove) {
        e.factor = additional_detail(props, "Method")
            .or_else(|| additional_detail(props, "AuthenticationMethod"))
            .and_then(entra_factor)
            .map(Into::into);
    }
    e.id = owned(text(props, &["id"]));
    e.tenant = owned(text(props, &["tenantId"]).or_else(|| text(v, &["tenantId"])));
    set_ip(
        &mut e,
        actor
            .and_then(|a| text(a, &["ipAddress"]))
            .or_else(|| text(v, &["callerIpAddress"])),
    );
    set_attr_opt(&mut e, "result", text(props, &["result"]));
    set_attr_opt(&mut e, "audit_category", text(props, &["category"]));
    set_attr_opt(&mut e, "service", text(props, &["loggedByService"]));
    Ok(e)
}

/// What a policy enforced: (enforced at all, requires MFA), from the JSON text Entra keeps
/// in `modifiedProperties` (`state`, `grantControls.builtInControls`). A deleted policy
/// enforces nothing; report-only mode (`enabledForReportingButNotEnforced`) does not enforce.
fn policy_enforces(json_text: Option<&str>) -> (bool, bool) {
    let Some(policy) = json_text.and_then(|t| serde_json::from_str::<Value>(t).ok()) else {
        return (false, false);
    };
    let enforced = text(&policy, &["state"]).is_some_and(|s| s.eq_ignore_ascii_case("enabled"));
    let mfa = path(&policy, &["grantControls", "builtInControls"])
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter()
                .filter_map(Value::as_str)
                .any(|c| c.eq_ignore_ascii_case("mfa"))
        });
    (enforced, enforced && mfa)
}

/// A Conditional Access policy update or deletion that changed protection.
fn conditional_access(e: &mut Event, props: &Value) -> T {
    let policy = get(props, "targetResources")
        .and_then(Value::as_array)
        .and_then(|t| t.first());
    let change = policy
        .and_then(|p| get(p, "modifiedProperties"))
        .and_then(Value::as_array)
        .and_then(|m| {
            m.iter().find(|p| {
                text(p, &["displayName"])
                    .is_some_and(|n| n.eq_ignore_ascii_case("ConditionalAccessPolicy"))
            })
        });
    let Some(change) = change else {
        return T::Other;
    };
    let before = policy_enforces(text(change, &["oldValue"]));
    let after = policy_enforces(text(change, &["newValue"]));
    if before == after {
        return T::Other;
    }
    // Weaker in either respect is a protection switched off.
    let enabled = after.0 >= before.0 && after.1 >= before.1;
    set_attr(e, "setting", "conditional_access");
    set_attr(e, "enabled", enabled);
    set_attr_opt(e, "policy", policy.and_then(|p| text(p, &["displayName"])));
    T::AdminSecurityChange
}

/// The value of an `additionalDetails` entry with this key.
fn additional_detail<'a>(props: &'a Value, key: &str) -> Option<&'a str> {
    get(props, "additionalDetails")?
        .as_array()?
        .iter()
        .find(|d| text(d, &["key"]).is_some_and(|k| k.eq_ignore_ascii_case(key)))
        .and_then(|d| text(d, &["value"]))
        .and_then(present)
}

/// Whether `Update user` changed a mail property of the target.
fn mail_changed(target: &Value) -> bool {
    get(target, "modifiedProperties")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| text(p, &["displayName"]))
        .any(|name| MAIL_PROPERTIES.iter().any(|m| m.eq_ignore_ascii_case(name)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// An Event Hubs sign-in record with this category, error code and extra properties.
    fn record(category: &str, code: i64, extra: Value) -> Value {
        let mut props = json!({"id": "s-1", "createdDateTime": "2024-05-01T10:00:00.1234567Z",
            "userPrincipalName": "Alice@Contoso.com", "userId": "u-1", "appId": "app-1",
            "ipAddress": "203.0.113.9", "status": {"errorCode": code},
            "deviceDetail": {"deviceId": "dev-1"},
            "location": {"city": "Redmond", "countryOrRegion": "US",
                "geoCoordinates": {"latitude": 47.6, "longitude": -122.1}}});
        if let (Some(p), Some(x)) = (props.as_object_mut(), extra.as_object()) {
            p.extend(x.clone());
        }
        json!({"time": "2024-05-01T10:01:00Z", "category": category, "tenantId": "t-1",
            "resultType": code.to_string(), "callerIpAddress": "203.0.113.9", "properties": props})
    }

    fn mfa_step(method: &str, succeeded: bool, detail: &str) -> Value {
        json!({"authenticationDetails": [
            {"authenticationMethod": "Password", "succeeded": true},
            {"authenticationMethod": method, "succeeded": succeeded,
             "authenticationStepResultDetail": detail}]})
    }

    #[test]
    fn an_interactive_success_fills_identity_network_device_and_geo() {
        let e = from_value(&record("SignInLogs", 0, json!({}))).unwrap();
        assert_eq!(e.kind, T::LoginSuccess);
        assert_eq!(e.ts, 1_714_557_600_123);
        assert_eq!(
            (e.user.as_deref(), e.username.as_deref()),
            (Some("u-1"), Some("alice@contoso.com"))
        );
        assert_eq!(e.tenant.as_deref(), Some("t-1"));
        assert_eq!(e.device.as_deref(), Some("dev-1"));
        assert_eq!(e.client.as_deref(), Some("app-1"));
        let geo = e.geo.unwrap();
        assert_eq!((geo.country.as_deref(), geo.lat), (Some("US"), Some(47.6)));
    }

    #[test]
    fn error_codes_decide_the_outcome_as_the_table_says() {
        let cases = [
            (50126, T::LoginFailure, Some("bad_password")),
            (50034, T::LoginFailure, Some("unknown_user")),
            (50053, T::LoginFailure, Some("locked")),
            (50055, T::LoginFailure, Some("expired")),
            (50057, T::LoginFailure, Some("disabled")),
            (53003, T::LoginFailure, Some("conditional_access")),
            (50074, T::MfaChallenge, None),
            (50140, T::Other, None),
            (50125, T::Other, None),
            (700016, T::Other, None),
        ];
        for (code, kind, reason) in cases {
            let e = from_value(&record("SignInLogs", code, json!({}))).unwrap();
            assert_eq!((e.kind, e.reason.as_deref()), (kind, reason), "{code}");
            assert_eq!(e.attrs.unwrap()["error_code"], code);
        }
    }

    #[test]
    fn authentication_details_tell_a_denied_push_from_a_timeout_and_a_wrong_code() {
        let cases = [
            (
                "Mobile app notification",
                "MFA denied; user declined the authentication",
                "mfa_denied",
                "push",
            ),
            (
                "Mobile app notification",
                "MFA denied; user did not respond to mobile app notification",
                "mfa_timeout",
                "push",
            ),
            (
                "OATH verification code",
                "MFA denied; invalid verification code",
                "bad_code",
                "totp",
            ),
            (
                "Text message",
                "MFA denied; user declined the authentication",
                "mfa_denied",
                "sms",
            ),
        ];
        for (method, detail, reason, factor) in cases {
            let e = from_value(&record(
                "SignInLogs",
                500121,
                mfa_step(method, false, detail),
            ))
            .unwrap();
            assert_eq!(e.kind, T::MfaFailure, "{detail}");
            assert_eq!(
                (e.reason.as_deref(), e.factor.as_deref()),
                (Some(reason), Some(factor))
            );
        }
        let ok = from_value(&record(
            "SignInLogs",
            0,
            mfa_step("Mobile app notification", true, "MFA completed"),
        ))
        .unwrap();
        assert_eq!(
            (ok.kind, ok.factor.as_deref()),
            (T::LoginSuccess, Some("push"))
        );
    }

    #[test]
    fn non_interactive_refreshes_and_revoked_tokens() {
        let refresh = json!({"incomingTokenType": "refreshToken"});
        let e = from_value(&record("NonInteractiveUserSignInLogs", 0, refresh.clone())).unwrap();
        assert_eq!(e.kind, T::TokenRefresh);
        let e = from_value(&record(
            "NonInteractiveUserSignInLogs",
            50173,
            refresh.clone(),
        ))
        .unwrap();
        assert_eq!(
            (e.kind, e.reason.as_deref()),
            (T::TokenReuse, Some("token_revoked"))
        );
        let e = from_value(&record(
            "NonInteractiveUserSignInLogs",
            70000,
            refresh.clone(),
        ))
        .unwrap();
        assert_eq!(e.kind, T::TokenReuse);
        // A session made stale by a password change is routine on every device.
        let e = from_value(&record("NonInteractiveUserSignInLogs", 50133, refresh)).unwrap();
        assert_eq!(
            (e.kind, e.reason.as_deref()),
            (T::Other, Some("session_invalid"))
        );
        // An interactive sign-in with a revoked token is not a token redemption.
        let e = from_value(&record("SignInLogs", 50173, json!({}))).unwrap();
        assert_eq!(e.kind, T::Other);
    }

    #[test]
    fn workload_identities_sign_in_under_their_own_names() {
        let sp = json!({"userId": null, "userPrincipalName": null, "servicePrincipalId": "sp-1",
            "servicePrincipalName": "Backup-Job"});
        let e = from_value(&record("ServicePrincipalSignInLogs", 7000215, sp)).unwrap();
        assert_eq!(
            (e.kind, e.reason.as_deref()),
            (T::LoginFailure, Some("bad_password"))
        );
        assert_eq!(
            (e.user.as_deref(), e.username.as_deref()),
            (Some("sp-1"), Some("backup-job"))
        );
        assert_eq!(e.attrs.unwrap()["workload"], true);
    }

    #[test]
    fn graph_objects_and_single_record_bodies_read_like_records() {
        let rec = record("SignInLogs", 50126, json!({"homeTenantId": "t-1"}));
        let graph = rec["properties"].clone();
        let body = json!({"records": [rec.clone()]});
        for v in [rec, graph, body] {
            let e = from_value(&v).unwrap();
            assert_eq!(
                (e.kind, e.tenant.as_deref()),
                (T::LoginFailure, Some("t-1"))
            );
        }
    }

    #[test]
    fn bodies_of_several_records_are_split_not_decoded() {
        let body = json!({"records": [record("SignInLogs", 0, json!({})), record("SignInLogs", 50126, json!({}))]});
        let err = from_value(&body).unwrap_err();
        assert_eq!(err.reason, BadReason::Unmappable);
        let mut kinds = Vec::new();
        let each = |r: Result<Event, BadInput>| kinds.push(r.map(|e| (e.kind, e.fingerprint)));
        crate::normalize::normalize_each(
            super::super::Format::Entra,
            body.to_string().as_bytes(),
            each,
        );
        let [Ok((first, a)), Ok((second, b))] = kinds.as_slice() else {
            panic!("two events: {kinds:?}");
        };
        assert_eq!([*first, *second], [T::LoginSuccess, T::LoginFailure]);
        assert_ne!(a, b, "each record has its own fingerprint");
        // A bad record is one bad input among good ones; an empty body is one bad input.
        let body = json!({"records": [record("SignInLogs", 0, json!({})), 7]});
        let mut reasons = Vec::new();
        let each = |r: Result<Event, BadInput>| reasons.push(r.err().map(|b| b.reason));
        crate::normalize::normalize_each(
            super::super::Format::Entra,
            body.to_string().as_bytes(),
            each,
        );
        assert_eq!(reasons, [None, Some(BadReason::NotAnObject)]);
        let mut empty = Vec::new();
        let each = |r: Result<Event, BadInput>| empty.push(r.err().map(|b| b.reason));
        crate::normalize::normalize_each(super::super::Format::Entra, b"{\"records\": []}", each);
        assert_eq!(empty, [Some(BadReason::Unmappable)]);
    }

    #[test]
    fn audit_records_follow_the_target_user() {
        let audit = |activity: &str, modified: Value, result: &str| {
            from_value(&json!({"time": "2024-05-01T10:00:00Z", "category": "AuditLogs",
                "properties": {"activityDisplayName": activity, "result": result,
                "activityDateTime": "2024-05-01T10:00:00Z",
                "initiatedBy": {"user": {"id": "adm", "userPrincipalName": "admin@x.io", "ipAddress": "192.0.2.1"}},
                "targetResources": [{"id": "u-9", "type": "User", "userPrincipalName": "Bob@x.io",
                    "modifiedProperties": modified}]}}))
            .unwrap()
        };
        let e = audit("Reset user password", json!([]), "success");
        assert_eq!((e.kind, e.user.as_deref()), (T::PasswordReset, Some("u-9")));
        assert_eq!(e.attrs.as_ref().unwrap()["actor"], "admin@x.io");
        assert_eq!(
            audit("Reset user password", json!([]), "failure").kind,
            T::Other
        );
        let mail =
            json!([{"displayName": "OtherMails", "oldValue": "[]", "newValue": "[\"x@y.z\"]"}]);
        assert_eq!(audit("Update user", mail, "success").kind, T::EmailChange);
        let title = json!([{"displayName": "JobTitle"}]);
        assert_eq!(audit("Update user", title, "success").kind, T::Other);
        assert_eq!(
            audit("User deleted security info", json!([]), "success").kind,
            T::MfaRemove
        );
    }

    #[test]
    fn conditional_access_policies_that_stop_requiring_mfa_are_disabled_protections() {
        let policy = |state: &str, mfa: bool| {
            let controls = if mfa {
                json!(["mfa"])
            } else {
                json!(["block"])
            };
            json!({"state": state, "grantControls": {"builtInControls": controls}}).to_string()
        };
        let change = |old: Option<String>, new: Option<String>| {
            from_value(&json!({"time": "2024-05-01T10:00:00Z", "properties": {
                "activityDisplayName": "Update conditional access policy", "result": "success",
                "initiatedBy": {"user": {"id": "adm", "userPrincipalName": "admin@x.io"}},
                "targetResources": [{"displayName": "Require MFA", "type": "Policy",
                    "modifiedProperties": [{"displayName": "ConditionalAccessPolicy",
                        "oldValue": old, "newValue": new}]}]}}))
            .unwrap()
        };
        let off = change(
            Some(policy("enabled", true)),
            Some(policy("disabled", true)),
        );
        assert_eq!(off.kind, T::AdminSecurityChange);
        assert_eq!(off.attrs.as_ref().unwrap()["enabled"], false);
        let weaker = change(
            Some(policy("enabled", true)),
            Some(policy("enabled", false)),
        );
        assert_eq!(weaker.attrs.as_ref().unwrap()["enabled"], false);
        let on = change(
            Some(policy("disabled", true)),
            Some(policy("enabled", true)),
        );
        assert_eq!(on.attrs.as_ref().unwrap()["enabled"], true);
        let same = change(Some(policy("enabled", true)), Some(policy("enabled", true)));
        assert_eq!(same.kind, T::Other);
    }

    #[test]
    fn records_without_a_time_or_an_outcome_are_rejected() {
        let mut no_time = record("SignInLogs", 0, json!({}));
        no_time["properties"]
            .as_object_mut()
            .unwrap()
            .remove("createdDateTime");
        no_time.as_object_mut().unwrap().remove("time");
        assert_eq!(
            from_value(&no_time).unwrap_err().reason,
            BadReason::MissingField
        );
        let mut bad_time = record("SignInLogs", 0, json!({}));
        bad_time["properties"]["createdDateTime"] = json!("yesterday");
        assert_eq!(
            from_value(&bad_time).unwrap_err().reason,
            BadReason::BadTimestamp
        );
        let err = from_value(&json!({"time": "2024-05-01T10:00:00Z"})).unwrap_err();
        assert_eq!(err.reason, BadReason::MissingField);
    }

    #[test]
    fn every_code_and_activity_in_the_tables_is_documented() {
        let docs = include_str!("../../docs/formats.md");
        for (code, _) in ERROR_CODES {
            assert!(
                docs.contains(&format!("`{code}`")),
                "docs/formats.md lacks `{code}`"
            );
        }
        for (activity, _) in AUDIT_ACTIVITIES {
            assert!(
                docs.contains(&format!("`{activity}`")),
                "docs/formats.md lacks `{activity}`"
            );
        }
    }
}
