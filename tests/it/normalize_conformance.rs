//! Conformance of the provider normalisers with the shared corpus of real provider events
//! (../shared/corpus: auth0, okta, keycloak, Entra ID as `azure_signin`, Google Workspace as
//! `gsuite_login`) and with the samples of the providers' public documentation
//! (tests/fixtures/<format>/docs.jsonl): every line normalises to what its sidecar implies, or
//! is rejected for a reason the line itself justifies. Run with `--nocapture` for the counts.
//!
//! What a sidecar "implies" depends on its source:
//! - Panther annotations name the upstream rule a line tests and its verdict; [`panther`]
//!   says which canonical event each rule's verdict requires (or that the rule has no
//!   canonical meaning, or depends on state the line does not carry);
//! - Elastic annotations give the parsed fields (outcome, code, user, ip, realm, ...) and a
//!   derived detection expectation ("not a credential failure");
//! - the Okta scenario annotations give an attack narrative per step.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use authwatch::event::{BadInput, BadReason, Event, EventType as T};
use authwatch::normalize::{Format, normalize};
use serde_json::Value;

/// `../shared/corpus` beside the checkout, or `AUTHWATCH_CORPUS` (a git worktree elsewhere).
fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("AUTHWATCH_CORPUS").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus")),
        PathBuf::from,
    );
    dir.is_dir().then_some(dir)
}

/// What happened to the lines of one file.
#[derive(Default)]
struct Tally {
    normalised: usize,
    rejected: BTreeMap<String, usize>,
    types: BTreeMap<String, usize>,
    /// Provider codes left as `other`, by code: what the mapping tables do not cover.
    unmapped: BTreeMap<String, usize>,
    mismatches: Vec<String>,
}

impl Tally {
    fn count(&mut self, result: &Result<Event, BadInput>) {
        match result {
            Ok(e) => {
                self.normalised += 1;
                *self.types.entry(e.kind.to_string()).or_default() += 1;
                if e.kind == T::Other {
                    let code = attr_str(e, "raw_type").unwrap_or("?").to_string();
                    *self.unmapped.entry(code).or_default() += 1;
                }
            }
            Err(bad) => *self.rejected.entry(bad.reason.to_string()).or_default() += 1,
        }
    }

    fn add(&mut self, other: &Tally) {
        self.normalised += other.normalised;
        for (k, n) in &other.rejected {
            *self.rejected.entry(k.clone()).or_default() += n;
        }
        for (k, n) in &other.types {
            *self.types.entry(k.clone()).or_default() += n;
        }
        for (k, n) in &other.unmapped {
            *self.unmapped.entry(k.clone()).or_default() += n;
        }
        self.mismatches.extend(other.mismatches.iter().cloned());
    }

    fn print(&self, name: &str) {
        println!(
            "{name}: {} normalised, rejected {:?}\n  per type {:?}\n  left as other {:?}",
            self.normalised, self.rejected, self.types, self.unmapped
        );
    }
}

/// A checker gets the raw line, its sidecar entry and the result, and returns what is wrong.
type Check = fn(&str, &Value, &Result<Event, BadInput>) -> Vec<String>;

fn run_file(dir: &Path, events: &str, sidecar: &str, format: Format, check: Check) -> Tally {
    let mut tally = Tally::default();
    let lines = read_lines(&dir.join(events));
    let expected = read_lines(&dir.join(sidecar));
    if lines.len() != expected.len() {
        tally.mismatches.push(format!(
            "{events}: {} lines but {sidecar} has {}",
            lines.len(),
            expected.len()
        ));
    }
    for (i, (line, side)) in lines.iter().zip(&expected).enumerate() {
        let side: Value = serde_json::from_str(side).expect("sidecar lines are JSON");
        let result = normalize(format, line.as_bytes());
        tally.count(&result);
        for problem in check(line, &side, &result) {
            tally
                .mismatches
                .push(format!("{events}:{}: {problem}", i + 1));
        }
    }
    tally.print(events);
    tally
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn provider_corpus_lines_normalise_to_what_their_sidecars_imply() {
    let Some(dir) = corpus() else {
        crate::support::skip_unless_ci(
            "../shared/corpus is absent: provider conformance not checked",
        );
        return;
    };
    let files: [(&str, &str, Format, Check); 8] = [
        (
            "auth0_events.elastic.jsonl",
            "auth0_events.elastic.expected.jsonl",
            Format::Auth0,
            auth0_elastic,
        ),
        (
            "auth0_events.panther.jsonl",
            "auth0_events.panther.expected.jsonl",
            Format::Auth0,
            panther_auth0,
        ),
        (
            "okta_events.panther.jsonl",
            "okta_events.panther.expected.jsonl",
            Format::Okta,
            panther_okta,
        ),
        (
            "okta_scenarios.panther.jsonl",
            "okta_scenarios.panther.expected.jsonl",
            Format::Okta,
            okta_scenario,
        ),
        (
            "keycloak_events.jsonl",
            "keycloak_events.expected.jsonl",
            Format::Keycloak,
            keycloak,
        ),
        (
            "keycloak_events.log",
            "keycloak_events.expected.jsonl",
            Format::Keycloak,
            keycloak,
        ),
        (
            "azure_signin_events.panther.jsonl",
            "azure_signin_events.panther.expected.jsonl",
            Format::Entra,
            panther_entra,
        ),
        (
            "gsuite_login_events.panther.jsonl",
            "gsuite_login_events.panther.expected.jsonl",
            Format::GoogleWorkspace,
            panther_gsuite,
        ),
    ];
    let mut total = Tally::default();
    for (events, sidecar, format, check) in files {
        total.add(&run_file(&dir, events, sidecar, format, check));
    }
    total.print("all provider files");
    assert!(total.normalised > 0, "nothing was normalised");
    assert!(
        total.mismatches.is_empty(),
        "{} lines do not normalise to what their sidecar implies:\n{}",
        total.mismatches.len(),
        total.mismatches.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// Shared checks.

fn attr<'a>(e: &'a Event, key: &str) -> Option<&'a Value> {
    e.attrs.as_ref()?.get(key)
}

fn attr_str<'a>(e: &'a Event, key: &str) -> Option<&'a str> {
    attr(e, key)?.as_str()
}

/// `2021-11-03...`: the start of a date, which a normaliser must be able to read.
fn date_like(v: Option<&Value>) -> bool {
    let Some(s) = v.and_then(Value::as_str) else {
        return false;
    };
    let b = s.as_bytes();
    b.len() >= 10 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[7] == b'-'
}

/// A rejection is only acceptable when the record really has no usable time or type code.
fn justified_rejection(bad: &BadInput, has_time: bool, has_type: bool) -> Vec<String> {
    let ok = match bad.reason {
        BadReason::MissingField | BadReason::BadTimestamp => !has_time || !has_type,
        _ => false,
    };
    if ok {
        Vec::new()
    } else {
        vec![format!("rejected without cause ({bad})")]
    }
}

/// The provider's code is kept and a readable source ip is carried over.
fn common_fields(e: &Event, raw_type: Option<&str>, ip: Option<&str>) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(code) = raw_type
        && attr_str(e, "raw_type") != Some(code)
    {
        problems.push(format!(
            "attrs.raw_type {:?}, want {code}",
            attr(e, "raw_type")
        ));
    }
    if let Some(ip) = ip.and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
        && e.ip != Some(ip)
    {
        problems.push(format!("ip {:?}, want {ip}", e.ip));
    }
    problems
}

fn want(ok: bool, what: impl FnOnce() -> String) -> Vec<String> {
    if ok { Vec::new() } else { vec![what()] }
}

fn describe(e: &Event) -> String {
    format!(
        "{} reason={:?} factor={:?} setting={:?} enabled={:?}",
        e.kind,
        e.reason,
        e.factor,
        attr(e, "setting"),
        attr(e, "enabled")
    )
}

// ---------------------------------------------------------------------------------------
// Panther: the verdict of each upstream rule, translated into canonical terms.

/// A condition on the canonical event.
type Pred = fn(&Event) -> bool;

/// What a Panther rule's verdict requires of the canonical event: `on_true` when its unit
/// test expects an alert, `on_false` (when the rule's whole condition is canonical) when it
/// expects none. `None` as `on_false` means the rule has conditions the canonical event does
/// not decide (thresholds, allow-lists, prior state in `mocks`, tenant specifics).
struct RuleMeaning {
    on_true: Pred,
    on_false: Option<Pred>,
}

fn setting_is(e: &Event, prefixes: &[&str], enabled: bool) -> bool {
    e.kind == T::AdminSecurityChange
        && attr(e, "enabled") == Some(&Value::Bool(enabled))
        && attr_str(e, "setting").is_some_and(|s| prefixes.iter().any(|p| s.starts_with(p)))
}

/// Tenant administration with no canonical meaning: must not turn into an auth event.
fn administration(e: &Event) -> bool {
    matches!(e.kind, T::Other | T::AdminSecurityChange)
}

fn login(e: &Event) -> bool {
    matches!(e.kind, T::LoginSuccess | T::LoginFailure)
}

/// The canonical meaning of every Panther rule the corpus annotates.
fn panther(rule: &str) -> Option<RuleMeaning> {
    let exact = |on_true: Pred, negated: Pred| {
        Some(RuleMeaning {
            on_true,
            on_false: Some(negated),
        })
    };
    let loose = |on_true: Pred| {
        Some(RuleMeaning {
            on_true,
            on_false: None,
        })
    };
    match rule {
        // Auth0.
        "Auth0.AttackProtection.Disabled" => exact(
            |e| {
                setting_is(
                    e,
                    &[
                        "suspicious_ip_throttling",
                        "brute_force_protection",
                        "breached_password_detection",
                    ],
                    false,
                )
            },
            |e| {
                !setting_is(
                    e,
                    &[
                        "suspicious_ip_throttling",
                        "brute_force_protection",
                        "breached_password_detection",
                    ],
                    false,
                )
            },
        ),
        "Auth0.BotDetection.Disabled" => exact(
            |e| setting_is(e, &["bot_detection"], false),
            |e| !setting_is(e, &["bot_detection"], false),
        ),
        "Auth0.MFA.Policy.Disabled" => exact(
            |e| setting_is(e, &["mfa_policy"], false),
            |e| !setting_is(e, &["mfa_policy"], false),
        ),
        "Auth0.MFA.Policy.Enabled" => exact(
            |e| setting_is(e, &["mfa_policy"], true),
            |e| !setting_is(e, &["mfa_policy"], true),
        ),
        "Auth0.MFA.Risk.Assessment.Disabled" => exact(
            |e| setting_is(e, &["risk_assessment"], false),
            |e| !setting_is(e, &["risk_assessment"], false),
        ),
        "Auth0.MFA.Risk.Assessment.Enabled" => exact(
            |e| setting_is(e, &["risk_assessment"], true),
            |e| !setting_is(e, &["risk_assessment"], true),
        ),
        "Auth0.MFA.Factor.Setting.Enabled" => exact(
            |e| setting_is(e, &["mfa_factor"], true),
            |e| !setting_is(e, &["mfa_factor"], true),
        ),
        "Auth0.CIC.Credential.Stuffing" => loose(login),
        "Auth0.Leaked.Password.Login.Attempt" => exact(
            |e| e.kind == T::LoginFailure && e.reason.as_deref() == Some("breached_password"),
            |e| e.reason.as_deref() != Some("breached_password"),
        ),
        "Auth0.Limits" => loose(|e| e.kind == T::AccountLock),
        "Auth0.PushNotification.Fatigue" => exact(
            |e| e.kind == T::MfaChallenge && e.factor.as_deref() == Some("push"),
            |e| e.kind != T::MfaChallenge,
        ),
        "Auth0.RefreshToken.Reuse" => {
            exact(|e| e.kind == T::TokenReuse, |e| e.kind != T::TokenReuse)
        }
        "Auth0.SamePhone.MultipleUsers.MFA" => {
            loose(|e| e.kind == T::MfaEnroll && e.factor.as_deref() == Some("sms"))
        }
        "Auth0.Custom.Role.Created"
        | "Auth0.Delete.TenantMember"
        | "Auth0.FraudRisk.Volume"
        | "Auth0.Integration.Installed"
        | "Auth0.NewAdmin.Invitation"
        | "Auth0.Post.Login.Action.Flow"
        | "Auth0.Rapid.DynamicClient.Creation"
        | "Auth0.User.Invitation.Created"
        | "Auth0.User.Joined.Tenant" => loose(administration),
        // Okta.
        "Okta.Support.Access" => exact(
            |e| e.kind == T::ImpersonationStart,
            |e| e.kind != T::ImpersonationStart,
        ),
        "Okta.Global.MFA.Disabled" => exact(
            |e| setting_is(e, &["mfa_factor"], false),
            |e| !setting_is(e, &["mfa_factor"], false),
        ),
        "Okta.Refresh.Access.Token.Reuse" => {
            exact(|e| e.kind == T::TokenReuse, |e| e.kind != T::TokenReuse)
        }
        "Okta.User.Account.Locked" => {
            exact(|e| e.kind == T::AccountLock, |e| e.kind != T::AccountLock)
        }
        "Okta.Phishing.Attempt.Blocked.FastPass" => exact(
            |e| {
                matches!(e.kind, T::LoginFailure | T::MfaFailure)
                    && e.reason.as_deref() == Some("phishing")
            },
            |e| e.reason.as_deref() != Some("phishing"),
        ),
        "Okta.Login.Success" => exact(|e| e.kind == T::LoginSuccess, |e| e.kind != T::LoginSuccess),
        "Okta.Identity.Provider.SignIn"
        | "Okta.PotentiallyStolenSession"
        | "Okta.GeographicallyImprobableAccess"
        | "Standard.ImpossibleTravel.Login"
        | "Standard.SignInFromRogueState" => loose(|e| e.kind == T::LoginSuccess),
        "Okta.Anonymizing.VPN.Login" => loose(login),
        "Okta.BruteForceLogins" | "Standard.BruteForceByIP" | "Standard.BruteForceByUser" => {
            loose(|e| e.kind == T::LoginFailure)
        }
        "Okta.Support.Reset" => loose(|e| e.kind == T::PasswordReset),
        "Okta.User.MFA.Factor.Suspend"
        | "Okta.User.MFA.Reset.All"
        | "Okta.User.MFA.Reset.Single"
        | "Standard.MFADisabled" => loose(|e| e.kind == T::MfaRemove),
        // An app sign-on inside an existing session checks no credential.
        "Okta.SSO.to.AWS" => loose(|e| e.kind == T::Other),
        "Okta.AdminRoleAssigned"
        | "Okta.APIKeyCreated"
        | "Okta.APIKeyRevoked"
        | "Okta.App.Unauthorized.Access.Attempt"
        | "Okta.Group.Admin.Role.Assigned"
        | "Okta.Identity.Provider.Created.Modified"
        | "Okta.Login.Without.Push.Marker"
        | "Okta.New.Behavior.Accessing.Admin.Console"
        | "Okta.Org2org.Creation.Modification"
        | "Okta.Password.Extraction.via.SCIM"
        | "Okta.PasswordAccess"
        | "Okta.Rate.Limits"
        | "Okta.ThreatInsight.Security.Threat.Detected"
        | "Okta.User.Reported.Suspicious.Activity" => loose(administration),
        // Entra ID (Panther's Azure.Audit log type).
        "Azure.Audit.MFADisabled" => exact(
            |e| setting_is(e, &["conditional_access"], false),
            |e| !setting_is(e, &["conditional_access"], false),
        ),
        "Azure.Audit.ExcessiveAccountLockouts" => {
            loose(|e| e.kind == T::LoginFailure && e.reason.as_deref() == Some("locked"))
        }
        // A service principal's wrong client secret is its failed credential.
        "Azure.Audit.ManyFailedSignIns" => loose(|e| e.kind == T::LoginFailure),
        "Azure.Audit.HighRiskSignIn" => {
            loose(|e| e.kind == T::LoginSuccess && attr_str(e, "risk_level") == Some("high"))
        }
        // Any assessed risk passes through, not only high.
        "Azure.Audit.RiskLevelPassthrough" => loose(|e| {
            login(e)
                && [
                    attr_str(e, "risk_level"),
                    attr_str(e, "risk_level_aggregated"),
                ]
                .iter()
                .any(|r| r.is_some_and(|r| r != "none"))
        }),
        "Azure.Audit.DeviceCodeBrokerClient"
        | "Azure.Audit.GraphSessionMultipleIPs"
        | "Azure.Audit.MultipleProtectionAlerts" => loose(|e| e.kind == T::LoginSuccess),
        "Azure.Audit.LegacyAuth" | "Azure.Audit.ROPCLoginNoMFA" => loose(login),
        // A non-interactive sign-in redeems a token: a refresh.
        "Azure.Audit.VSCodeOAuthPhishing" => {
            loose(|e| matches!(e.kind, T::TokenRefresh | T::LoginSuccess))
        }
        "Azure.Audit.OIDC.Changed"
        | "Azure.Audit.DomainSettingsModified"
        | "Azure.Audit.ElevateUserAccessAdministrator"
        | "Azure.Audit.InviteExternalUsers"
        | "Azure.Audit.PolicyChanged"
        | "Azure.Audit.RoleChangedPIM"
        | "Azure.Audit.ServicePrincipalCredentialsAdded" => loose(administration),
        // Google Workspace.
        "GSuite.LeakedPassword" => exact(
            |e| e.kind == T::AccountLock && e.reason.as_deref() == Some("breached_password"),
            |e| e.reason.as_deref() != Some("breached_password"),
        ),
        "GSuite.TwoStepVerification" => {
            exact(|e| e.kind == T::MfaRemove, |e| e.kind != T::MfaRemove)
        }
        "GSuite.LoginType" => loose(login),
        // Account warnings with no canonical type: kept as other with their name.
        "GSuite.SuspiciousLogins" | "GSuite.GovernmentBackedAttack" => {
            loose(|e| e.kind == T::Other)
        }
        _ => None,
    }
}

fn check_annotations(side: &Value, e: &Event) -> Vec<String> {
    let mut problems = Vec::new();
    for a in side["annotations"].as_array().into_iter().flatten() {
        let rule = a["rule_id"].as_str().unwrap_or_default();
        let verdict = a["expected_result"].as_bool().unwrap_or(false);
        let Some(meaning) = panther(rule) else {
            problems.push(format!(
                "no canonical meaning recorded for Panther rule {rule}"
            ));
            continue;
        };
        let pred = if verdict {
            Some(meaning.on_true)
        } else {
            meaning.on_false
        };
        if let Some(pred) = pred
            && !pred(e)
        {
            problems.push(format!(
                "{rule} / {:?} expects {verdict}, got {}",
                a["test_name"].as_str().unwrap_or_default(),
                describe(e)
            ));
        }
    }
    problems
}

fn panther_auth0(line: &str, side: &Value, result: &Result<Event, BadInput>) -> Vec<String> {
    let raw: Value = serde_json::from_str(line).expect("corpus lines are JSON");
    let data = raw.get("data").unwrap_or(&raw);
    match result {
        Err(bad) => {
            justified_rejection(bad, date_like(data.get("date")), data.get("type").is_some())
        }
        Ok(e) => {
            let mut p = common_fields(e, data["type"].as_str(), data["ip"].as_str());
            p.extend(check_annotations(side, e));
            p
        }
    }
}

/// Okta keys as Okta writes them, or lower-cased as in some fixtures.
fn okta_field<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).or_else(|| v.get(key.to_ascii_lowercase()))
}

fn panther_okta(line: &str, side: &Value, result: &Result<Event, BadInput>) -> Vec<String> {
    let raw: Value = serde_json::from_str(line).expect("corpus lines are JSON");
    let event_type = okta_field(&raw, "eventType").and_then(Value::as_str);
    match result {
        Err(bad) => {
            let has_time = date_like(raw.get("published")) || date_like(raw.get("p_event_time"));
            justified_rejection(bad, has_time, event_type.is_some())
        }
        Ok(e) => {
            let ip = raw.pointer("/client/ipAddress").and_then(Value::as_str);
            let mut p = common_fields(e, event_type, ip);
            p.extend(check_annotations(side, e));
            p
        }
    }
}

/// Entra records: an Event Hubs record (`properties` wraps the Graph object) or a bare one.
fn panther_entra(line: &str, side: &Value, result: &Result<Event, BadInput>) -> Vec<String> {
    let raw: Value = serde_json::from_str(line).expect("corpus lines are JSON");
    let props = raw.get("properties").unwrap_or(&raw);
    match result {
        Err(bad) => {
            let has_time = ["createdDateTime", "activityDateTime"]
                .iter()
                .any(|k| date_like(props.get(*k)))
                || date_like(raw.get("time"));
            let has_type = props.get("status").is_some()
                || props.get("activityDisplayName").is_some()
                || raw.get("resultType").is_some()
                || raw.get("resulttype").is_some();
            justified_rejection(bad, has_time, has_type)
        }
        Ok(e) => {
            let raw_type = props
                .get("activityDisplayName")
                .or(raw.get("category"))
                .and_then(Value::as_str);
            let ip = props.get("ipAddress").and_then(Value::as_str);
            let mut p = common_fields(e, raw_type, ip);
            p.extend(check_annotations(side, e));
            p
        }
    }
}

/// Google Workspace activities as Panther keeps them: one event flattened to the top.
fn panther_gsuite(line: &str, side: &Value, result: &Result<Event, BadInput>) -> Vec<String> {
    let raw: Value = serde_json::from_str(line).expect("corpus lines are JSON");
    match result {
        Err(bad) => {
            let has_time = date_like(raw.pointer("/id/time")) || date_like(raw.get("p_event_time"));
            justified_rejection(bad, has_time, raw.get("name").is_some())
        }
        Ok(e) => {
            let mut p = common_fields(e, raw["name"].as_str(), raw["ipAddress"].as_str());
            p.extend(check_annotations(side, e));
            p
        }
    }
}

// ---------------------------------------------------------------------------------------
// Okta scenarios: the narrative of each step.

fn okta_scenario(line: &str, side: &Value, result: &Result<Event, BadInput>) -> Vec<String> {
    let raw: Value = serde_json::from_str(line).expect("corpus lines are JSON");
    let scenario = side["scenario"].as_str().unwrap_or_default();
    let step = side["step"].as_u64().unwrap_or(0);
    let index = side["index_in_file"].as_u64().unwrap_or(0);
    let expected = match (scenario, step) {
        // "baseline: legitimate logins" / "legit employee login".
        ("okta-add-administrator" | "compromised-root-creds", 1) => T::LoginSuccess,
        // "9 user.session.start FAILURE ... then SUCCESS from the last attacker IP".
        ("okta-add-administrator", 2) if index < 9 => T::LoginFailure,
        ("okta-add-administrator", 2) => T::LoginSuccess,
        // "attacker creates a user": an account now exists.
        ("okta-add-administrator", 3) => T::Signup,
        // "attacker grants admin privileges": no canonical type, kept as other.
        ("okta-add-administrator", 4) => T::Other,
        // "failed logins for look-alike username".
        ("compromised-root-creds", 2) => T::LoginFailure,
        _ => {
            return vec![format!(
                "no expectation for scenario {scenario} step {step}"
            )];
        }
    };
    match result {
        Err(bad) => vec![format!("rejected ({bad}), want {expected}")],
        Ok(e) => {
            let ip = raw.pointer("/client/ipAddress").and_then(Value::as_str);
            let mut p = common_fields(e, raw["eventType"].as_str(), ip);
            p.extend(want(e.kind == expected, || {
                format!("{}, want {expected}", describe(e))
            }));
            p
        }
    }
}

// ---------------------------------------------------------------------------------------
// Elastic: parsed fields and derived detection expectations.

fn auth0_elastic(line: &str, side: &Value, result: &Result<Event, BadInput>) -> Vec<String> {
    let raw: Value = serde_json::from_str(line).expect("corpus lines are JSON");
    let data = raw.get("data").unwrap_or(&raw);
    let x = &side["normalised_expectation"];
    let Ok(e) = result else {
        return vec![format!("rejected: {}", result.as_ref().unwrap_err())];
    };
    let mut p = common_fields(e, x["auth0_type"].as_str(), x["ip"].as_str());
    let failure = x["outcome"] == "failure";
    if x["credential_failure"] == true {
        let reason = match x["failure_reason"].as_str() {
            Some("wrong_password") => Some("bad_password"),
            other => other,
        };
        p.extend(want(
            e.kind == T::LoginFailure && e.reason.as_deref() == reason,
            || format!("{}, want login.failure {reason:?}", describe(e)),
        ));
    } else if failure {
        // "Should NOT count toward password brute force": no login.failure at all.
        p.extend(want(e.kind != T::LoginFailure, || {
            format!("{}: a client error counted as a login failure", describe(e))
        }));
    }
    match x["category"].as_str() {
        Some("login") => p.extend(want(e.kind == T::LoginSuccess, || {
            format!("{}, want login.success", describe(e))
        })),
        // An authorization-code exchange issues tokens; it is neither a login nor a refresh.
        Some("token_exchange") => p.extend(want(e.kind == T::Other, || {
            format!("{}, want other", describe(e))
        })),
        _ => {}
    }
    if let Some(name) = x["user"].as_str() {
        p.extend(want(
            e.username.as_deref() == Some(&name.to_lowercase()),
            || format!("username {:?}, want {name}", e.username),
        ));
    }
    let user_id = x["user_id"]
        .as_str()
        .or(data["user_id"].as_str())
        .filter(|u| !u.is_empty());
    p.extend(want(e.user.as_deref() == user_id, || {
        format!("user {:?}, want {user_id:?}", e.user)
    }));
    if let Some(session) = x["session_id"].as_str() {
        p.extend(want(e.session.as_deref() == Some(session), || {
            format!("session {:?}, want {session}", e.session)
        }));
    }
    p
}

fn keycloak(line: &str, side: &Value, result: &Result<Event, BadInput>) -> Vec<String> {
    // The .jsonl file wraps each log line as {"raw": ...}; the .log file has the line itself.
    let raw_line = serde_json::from_str::<Value>(line)
        .ok()
        .and_then(|v| v["raw"].as_str().map(str::to_string))
        .unwrap_or_else(|| line.to_string());
    let x = &side["elastic_expected_normalisation"];
    let time_only =
        raw_line.as_bytes().get(2) == Some(&b':') && raw_line.as_bytes().get(5) == Some(&b':');
    let e = match result {
        // A time of day without a date cannot be placed in any window.
        Err(bad) if time_only => {
            return want(bad.reason == BadReason::BadTimestamp, || {
                format!("rejected as {bad}, want bad_timestamp")
            });
        }
        Ok(e) if time_only => {
            return vec![format!(
                "a line without a date was accepted as {}",
                describe(e)
            )];
        }
        Err(bad) => return vec![format!("rejected: {bad}")],
        Ok(e) => e,
    };
    let action = x["event.action"].as_str().unwrap_or_default();
    let admin = x["keycloak.event_type"] == "admin";
    let mut p = common_fields(e, Some(action), x["source.ip"].as_str());
    p.extend(keycloak_type(e, action, x, admin));
    let fields: [(&str, Option<&str>); 7] = [
        ("user.name", e.username.as_deref()),
        (
            "user.id",
            if admin {
                attr_str(e, "actor_user")
            } else {
                e.user.as_deref()
            },
        ),
        ("keycloak.realm.id", attr_str(e, "realm_id")),
        ("keycloak.client.id", e.client.as_deref()),
        ("keycloak.session.id", e.session.as_deref()),
        ("keycloak.impersonator", attr_str(e, "impersonator")),
        ("keycloak.reason", attr_str(e, "reason")),
    ];
    for (key, got) in fields {
        let Some(expected) = x.get(key) else { continue };
        let expected = expected.as_str().map(|s| {
            if key == "user.name" {
                s.to_lowercase()
            } else {
                s.to_string()
            }
        });
        p.extend(want(got.map(str::to_string) == expected, || {
            format!("{key} {got:?}, want {expected:?}")
        }));
    }
    if let Some(code) = x["event.code"].as_str().filter(|_| !admin) {
        p.extend(want(attr_str(e, "error") == Some(code), || {
            format!("attrs.error {:?}, want {code}", attr(e, "error"))
        }));
    }
    p
}

/// The canonical type Elastic's action, outcome and code imply.
fn keycloak_type(e: &Event, action: &str, x: &Value, admin: bool) -> Vec<String> {
    let code = x["event.code"].as_str().unwrap_or_default();
    let (ok, wanted) = match (action, code) {
        ("LOGIN", _) => (e.kind == T::LoginSuccess, "login.success"),
        ("LOGIN_ERROR", "invalid_user_credentials") => (
            e.kind == T::LoginFailure && e.reason.as_deref() == Some("bad_password"),
            "login.failure bad_password",
        ),
        ("LOGIN_ERROR", "user_not_found") => (
            e.kind == T::LoginFailure && e.reason.as_deref() == Some("unknown_user"),
            "login.failure unknown_user",
        ),
        // "not a credential failure ... must not count toward brute force".
        ("LOGIN_ERROR", "invalid_redirect_uri") => (e.kind != T::LoginFailure, "no login.failure"),
        ("LOGOUT", _) => (e.kind == T::Logout, "logout"),
        ("IMPERSONATE", _) => (e.kind == T::ImpersonationStart, "impersonation.start"),
        ("CODE_TO_TOKEN", _) => (e.kind == T::Other, "other"),
        // Reuse is the only refresh error that is an attack signal.
        ("REFRESH_TOKEN_ERROR", _) => {
            let reuse = x["keycloak.reason"]
                .as_str()
                .is_some_and(|r| r.contains("refresh token reuse"));
            (
                (e.kind == T::TokenReuse) == reuse,
                if reuse {
                    "token.reuse"
                } else {
                    "no token.reuse"
                },
            )
        }
        ("CREATE-USER", _) if admin => (e.kind == T::Signup, "signup (an account was created)"),
        // "admin event (not an auth event)".
        (_, _) if admin => (e.kind == T::Other, "other"),
        _ => {
            return vec![format!(
                "no expectation for Keycloak action {action} / {code}"
            )];
        }
    };
    want(ok, || format!("{}, want {wanted}", describe(e)))
}

// ---------------------------------------------------------------------------------------
// The samples of the providers' public documentation (tests/fixtures/<format>/docs.jsonl),
// each line with what it must become in the sidecar `docs.expected.jsonl`.

#[test]
fn documented_samples_normalise_to_what_their_sidecars_say() {
    let fixtures = crate::support::repo().join("tests/fixtures");
    let mut problems = Vec::new();
    let mut checked = 0;
    for format in [
        Format::Entra,
        Format::GoogleWorkspace,
        Format::Cognito,
        Format::Ocsf,
    ] {
        let dir = fixtures.join(format.as_str());
        let lines = read_lines(&dir.join("docs.jsonl"));
        let expected = read_lines(&dir.join("docs.expected.jsonl"));
        assert_eq!(lines.len(), expected.len(), "{format}: sidecar length");
        assert!(!lines.is_empty(), "{format}: no documented samples");
        for (i, (line, side)) in lines.iter().zip(&expected).enumerate() {
            let want: Value = serde_json::from_str(side).expect("sidecar lines are JSON");
            let at = format!("{format}/docs.jsonl:{}", i + 1);
            let e = match normalize(format, line.as_bytes()) {
                Ok(e) => e,
                Err(bad) => {
                    problems.push(format!("{at}: rejected ({bad})"));
                    continue;
                }
            };
            checked += 1;
            let got = serde_json::to_value(&e).expect("events serialise");
            for (key, value) in want.as_object().into_iter().flatten() {
                let same = match key.as_str() {
                    "source" => continue,
                    "attrs" => value
                        .as_object()
                        .into_iter()
                        .flatten()
                        .all(|(k, v)| got["attrs"].get(k) == Some(v)),
                    _ => got.get(key) == Some(value),
                };
                if !same {
                    problems.push(format!("{at}: {key} is {:?}, want {value}", got.get(key)));
                }
            }
        }
    }
    assert!(checked > 0);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
