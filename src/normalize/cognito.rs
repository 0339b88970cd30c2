//! Amazon Cognito user-pool authentication events: `AdminListUserAuthEvents` `AuthEvents`
//! and the user activity logs that threat protection exports, mapped by event type, response
//! and challenge results.

use serde_json::Value;

use super::common::{
    boolean, get, new_event, owned, parse_timestamp, parse_timestamp_str, set_attr, set_attr_opt,
    set_geo, set_ip, set_username, text,
};
use super::country::country_code;
use crate::event::{BadInput, BadReason, Event, EventType as T, Geo, Text};

/// What an event type means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// By the response and the challenges: success, a refused password, a failed or pending
    /// second factor.
    SignIn,
    /// This type when the response is `Pass` (a failed attempt changed nothing: `other`).
    Done(T),
}

/// Cognito `EventType`s and their canonical meaning; others become `other`.
pub(crate) static EVENT_TYPES: &[(&str, Kind)] = &[
    ("SignIn", Kind::SignIn),
    ("SignUp", Kind::Done(T::Signup)),
    ("ForgotPassword", Kind::Done(T::PasswordResetRequest)),
    ("PasswordChange", Kind::Done(T::PasswordChange)),
    ("DeleteUser", Kind::Done(T::AccountDelete)),
];

/// Epoch values below this are seconds (the AWS JSON protocol writes `CreationDate` as
/// seconds with a fraction); above, milliseconds (the log exports' `eventTimestamp`).
const SECONDS_BELOW: f64 = 100_000_000_000.0;

/// Normalises one Cognito authentication event. A whole `AdminListUserAuthEvents` response
/// with one event is read as that event; one with several cannot be one event.
pub(crate) fn from_value(v: &Value) -> Result<Event, BadInput> {
    if let Some(events) = v.as_object().and_then(|o| o.get("AuthEvents")) {
        return match events.as_array().map(Vec::as_slice) {
            Some([one]) if one.is_object() => from_value(one),
            Some(many) => Err(BadInput::new(
                BadReason::Unmappable,
                format!(
                    "an AdminListUserAuthEvents response with {} events: give one event per \
                     line (`jq -c '.AuthEvents[]'`)",
                    many.len()
                ),
            )),
            None => Err(BadInput::new(
                BadReason::WrongType,
                "cognito `AuthEvents` is not a list",
            )),
        };
    }
    let event_type = text(v, &["EventType"]).ok_or_else(|| {
        BadInput::new(
            BadReason::MissingField,
            "cognito event has no `EventType` (such as `SignIn`)",
        )
    })?;
    let ts = event_time(v)?;
    let mut e = new_event(ts, T::Other, event_type);
    let response = text(v, &["EventResponse"]).map(str::to_ascii_lowercase);
    let passed = response.as_deref() == Some("pass");
    if let Some((_, kind)) = EVENT_TYPES
        .iter()
        .find(|(t, _)| t.eq_ignore_ascii_case(event_type))
    {
        e.kind = match kind {
            Kind::SignIn => sign_in(&mut e, v, response.as_deref()),
            Kind::Done(t) if passed => *t,
            Kind::Done(_) => T::Other,
        };
    }
    fill(&mut e, v);
    Ok(e)
}

/// `CreationDate` (epoch seconds, or an ISO string from the CLI) or `eventTimestamp` (epoch
/// milliseconds as a string); a present but unreadable value is rejected.
fn event_time(v: &Value) -> Result<i64, BadInput> {
    let field = ["CreationDate", "eventTimestamp", "p_event_time"]
        .into_iter()
        .find_map(|k| get(v, k).filter(|t| !t.is_null()).map(|t| (k, t)));
    let Some((key, t)) = field else {
        return Err(BadInput::new(
            BadReason::MissingField,
            "cognito event has no timestamp (`CreationDate` or `eventTimestamp`)",
        ));
    };
    let epoch = match t {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    let ms = match epoch {
        Some(x) if x < SECONDS_BELOW => parse_timestamp(&Value::from((x * 1000.0).round() as i64)),
        Some(x) => parse_timestamp(&Value::from(x.round() as i64)),
        None => t.as_str().and_then(parse_timestamp_str),
    };
    ms.ok_or_else(|| {
        BadInput::new(
            BadReason::BadTimestamp,
            format!("cognito event field `{key}` is not a timestamp: {t}"),
        )
    })
}

/// The challenges and their results, from `ChallengeResponses` (`ChallengeName`,
/// `ChallengeResponse`: Success, Failure) or the exports' `challenges` (`challenge`,
/// `outcome`: Success, Incorrect, Failure).
fn challenges(v: &Value) -> Vec<(String, String)> {
    let list = get(v, "ChallengeResponses").or_else(|| get(v, "challenges"));
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let name = text(c, &["ChallengeName"]).or_else(|| text(c, &["challenge"]))?;
            let result = text(c, &["ChallengeResponse"])
                .or_else(|| text(c, &["outcome"]))
                .unwrap_or_default();
            Some((name.to_ascii_lowercase(), result.to_ascii_lowercase()))
        })
        .collect()
}

fn failed(result: &str) -> bool {
    result == "failure" || result == "incorrect"
}

fn sign_in(e: &mut Event, v: &Value, response: Option<&str>) -> T {
    let challenges = challenges(v);
    let mfa = challenges.iter().find(|(n, _)| n != "password");
    let password = challenges.iter().find(|(n, _)| n == "password");
    if let Some((name, _)) = mfa {
        e.factor = factor(name);
    }
    let breached = boolean(v, &["EventRisk", "CompromisedCredentialsDetected"]) == Some(true);
    match response {
        Some("pass") => T::LoginSuccess,
        Some("fail") if mfa.is_some_and(|(_, r)| failed(r)) => {
            e.reason = Some("bad_code".into());
            T::MfaFailure
        }
        Some("fail") => {
            let reason = if breached {
                Some("breached_password")
            } else if risk_blocked(v) {
                Some("risk_blocked")
            } else if password.is_some_and(|(_, r)| failed(r)) {
                Some("bad_password")
            } else {
                None
            };
            e.reason = reason.map(Into::into);
            T::LoginFailure
        }
        // The password passed and a further challenge (a second factor, or the one adaptive
        // authentication asks for on a risky sign-in) is now asked for.
        Some("inprogress") => T::MfaChallenge,
        _ => {
            e.factor = None;
            T::Other
        }
    }
}

/// Threat protection blocked the attempt (adaptive authentication).
fn risk_blocked(v: &Value) -> bool {
    text(v, &["EventRisk", "RiskDecision"]).is_some_and(|d| {
        d.eq_ignore_ascii_case("Block") || d.eq_ignore_ascii_case("AccountTakeover")
    })
}

/// Cognito's challenge names: `Mfa` (SMS or TOTP, not said which), `SmsMfa`/`SMS_MFA`,
/// `SoftwareTokenMfa`, `EmailOtp`, `WebAuthn`.
fn factor(challenge: &str) -> Option<Text> {
    let c = challenge.replace('_', "");
    let f = if c.contains("sms") {
        "sms"
    } else if c.contains("softwaretoken") || c.contains("totp") {
        "totp"
    } else if c.contains("email") {
        "email"
    } else if c.contains("webauthn") {
        "webauthn"
    } else {
        return None;
    };
    Some(f.into())
}

/// Identity, network, geo, risk and the attrs worth keeping.
fn fill(e: &mut Event, v: &Value) {
    e.id = owned(text(v, &["EventId"]));
    e.tenant = owned(text(v, &["userPoolId"]));
    e.user = owned(text(v, &["userSub"]));
    set_username(e, text(v, &["userName"]).or_else(|| text(v, &["username"])));
    e.client = owned(text(v, &["clientId"]));
    let context = get(v, "EventContextData").unwrap_or(&Value::Null);
    set_ip(
        e,
        text(context, &["IpAddress"]).or_else(|| text(v, &["ipAddress"])),
    );
    e.device = owned(text(context, &["DeviceName"]));
    e.user_agent = owned(text(v, &["userAgent"]));
    let country = text(context, &["Country"]).or_else(|| text(v, &["country"]));
    set_geo(
        e,
        Geo {
            country: country.and_then(country_code).map(Into::into),
            city: owned(text(context, &["City"]).or_else(|| text(v, &["city"]))),
            ..Geo::default()
        },
    );
    set_attr_opt(e, "response", text(v, &["EventResponse"]));
    set_attr_opt(e, "risk_decision", text(v, &["EventRisk", "RiskDecision"]));
    set_attr_opt(e, "risk_level", text(v, &["EventRisk", "RiskLevel"]));
    if let Some(b) = boolean(v, &["EventRisk", "CompromisedCredentialsDetected"]) {
        set_attr(e, "compromised_credentials", b);
    }
    if challenges(v).iter().any(|(n, _)| n == "password") {
        set_attr(e, "auth_method", "password");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn auth_event(response: &str, challenges: Value) -> Value {
        json!({"EventId": "ev-1", "EventType": "SignIn", "CreationDate": 1_726_694_203.495,
            "EventResponse": response,
            "EventRisk": {"RiskDecision": "NoRisk", "RiskLevel": "Low", "CompromisedCredentialsDetected": false},
            "ChallengeResponses": challenges,
            "EventContextData": {"IpAddress": "192.0.2.1", "DeviceName": "Chrome", "City": "Seattle", "Country": "United States"}})
    }

    #[test]
    fn sign_ins_by_response_and_challenges() {
        let pw = |r: &str| json!({"ChallengeName": "Password", "ChallengeResponse": r});
        let mfa = |r: &str| json!({"ChallengeName": "Mfa", "ChallengeResponse": r});
        let e = from_value(&auth_event("Pass", json!([pw("Success")]))).unwrap();
        assert_eq!(e.kind, T::LoginSuccess);
        assert_eq!(e.ts, 1_726_694_203_495);
        assert_eq!(e.ip, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(e.geo.unwrap().country.as_deref(), Some("US"));
        let e = from_value(&auth_event("Fail", json!([pw("Failure")]))).unwrap();
        assert_eq!(
            (e.kind, e.reason.as_deref()),
            (T::LoginFailure, Some("bad_password"))
        );
        let e = from_value(&auth_event("Fail", json!([pw("Success"), mfa("Failure")]))).unwrap();
        assert_eq!(
            (e.kind, e.reason.as_deref()),
            (T::MfaFailure, Some("bad_code"))
        );
        let e = from_value(&auth_event("InProgress", json!([pw("Success")]))).unwrap();
        assert_eq!(e.kind, T::MfaChallenge);
    }

    #[test]
    fn compromised_credentials_and_risk_blocks_are_reasons() {
        let mut v = auth_event("Fail", json!([]));
        v["EventRisk"]["CompromisedCredentialsDetected"] = json!(true);
        assert_eq!(
            from_value(&v).unwrap().reason.as_deref(),
            Some("breached_password")
        );
        let mut v = auth_event("Fail", json!([]));
        v["EventRisk"]["RiskDecision"] = json!("Block");
        assert_eq!(
            from_value(&v).unwrap().reason.as_deref(),
            Some("risk_blocked")
        );
    }

    #[test]
    fn log_exports_name_the_user_and_time_in_milliseconds() {
        let v = json!({"eventTimestamp": "1726694203495", "eventType": "SignIn", "eventResponse": "Fail",
            "challenges": [{"challenge": "Password", "outcome": "Incorrect"}],
            "userName": "Alice", "userSub": "sub-1", "userPoolId": "eu-west-1_X",
            "eventContextData": {"ipAddress": "192.0.2.7"}});
        let e = from_value(&v).unwrap();
        assert_eq!((e.kind, e.ts), (T::LoginFailure, 1_726_694_203_495));
        assert_eq!(
            (e.user.as_deref(), e.username.as_deref()),
            (Some("sub-1"), Some("alice"))
        );
        assert_eq!(e.tenant.as_deref(), Some("eu-west-1_X"));
    }

    #[test]
    fn other_event_types_count_only_when_they_passed() {
        let mut v = auth_event("Pass", json!([]));
        for (t, kind) in [
            ("ForgotPassword", T::PasswordResetRequest),
            ("SignUp", T::Signup),
            ("PasswordChange", T::PasswordChange),
            ("ResendCode", T::Other),
        ] {
            v["EventType"] = json!(t);
            assert_eq!(from_value(&v).unwrap().kind, kind, "{t}");
        }
        v["EventResponse"] = json!("Fail");
        v["EventType"] = json!("PasswordChange");
        assert_eq!(from_value(&v).unwrap().kind, T::Other);
    }

    #[test]
    fn responses_and_bad_records() {
        let one = json!({"AuthEvents": [auth_event("Pass", json!([]))]});
        assert_eq!(from_value(&one).unwrap().kind, T::LoginSuccess);
        let two =
            json!({"AuthEvents": [auth_event("Pass", json!([])), auth_event("Pass", json!([]))]});
        assert_eq!(from_value(&two).unwrap_err().reason, BadReason::Unmappable);
        assert_eq!(
            from_value(&json!({"CreationDate": 1})).unwrap_err().reason,
            BadReason::MissingField
        );
        let mut v = auth_event("Pass", json!([]));
        v.as_object_mut().unwrap().remove("CreationDate");
        assert_eq!(from_value(&v).unwrap_err().reason, BadReason::MissingField);
        v["CreationDate"] = json!("last tuesday");
        assert_eq!(from_value(&v).unwrap_err().reason, BadReason::BadTimestamp);
    }

    #[test]
    fn every_event_type_in_the_table_is_documented() {
        let docs = include_str!("../../docs/formats.md");
        for (t, _) in EVENT_TYPES {
            assert!(
                docs.contains(&format!("`{t}`")),
                "docs/formats.md lacks `{t}`"
            );
        }
    }
}
