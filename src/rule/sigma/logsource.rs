//! Sigma `logsource` to authwatch formats, and Sigma field names to places in an event.
//!
//! A rule for a provider reads the provider's record as it arrived (`Event::raw`): Okta's
//! `eventType`, `outcome.result`; Entra's sign-in columns as pySigma's Azure pipeline names
//! them, found in an exported record; a rule for `product: authwatch` reads the canonical
//! event (its fields, then `attrs`).

use serde_json::Value;

use crate::event::{Event, Field, FieldValue};
use crate::normalize::Format;

/// The format a `logsource` selects; `None` when authwatch reads no such source (the rule
/// loads and stays idle).
pub fn format_of(product: Option<&str>, service: Option<&str>) -> Option<Format> {
    let product = product.map(str::to_ascii_lowercase);
    let service = service.map(str::to_ascii_lowercase);
    Some(match (product.as_deref()?, service.as_deref()) {
        ("authwatch", _) => Format::Native,
        ("okta", _) => Format::Okta,
        ("auth0", _) => Format::Auth0,
        ("keycloak", _) => Format::Keycloak,
        ("cognito", _) | ("aws", Some("cognito")) => Format::Cognito,
        ("azure" | "entra_id" | "entra", Some("signinlogs" | "auditlogs")) => Format::Entra,
        ("gcp" | "google_workspace", Some("google_workspace.login" | "login")) => {
            Format::GoogleWorkspace
        }
        _ => return None,
    })
}

/// Where a Sigma field is read from, resolved once when the rule is compiled.
#[derive(Clone, Debug)]
pub enum Locator {
    /// Paths into the provider record, tried in order; the first that holds a value wins.
    /// Arrays on the way are searched element by element.
    Paths(Vec<Vec<String>>),
    /// Entra `Status` as a word: `Success` when the error code is 0, else `Failure`.
    EntraStatus,
    /// A Workspace event parameter by name (`events[].parameters[]` whose `name` is it),
    /// after the direct path.
    WorkspaceParam(Vec<String>, String),
    /// Cloud Logging's `protoPayload.serviceName` (the path, if the record has it), else the
    /// Reports API application as the service Cloud Logging names (`login.googleapis.com`).
    WorkspaceService(Vec<String>),
    /// A canonical field (native events).
    Canonical(Field),
}

/// The field Sigma calls the message, searched by keyword detections; `None` when the
/// format has none (such rules are refused with a warning).
pub fn keyword_locator(format: Format) -> Option<Locator> {
    let path = match format {
        Format::Okta => "displayMessage",
        Format::Auth0 => "description",
        Format::Native => return Some(Locator::Canonical(Field::Reason)),
        _ => return None,
    };
    Some(Locator::Paths(vec![split(path)]))
}

/// A field name as a path. Splunk's `name{}` (every element of an array), which rules written
/// for Splunk's copy of a log use, is the name: arrays fan out on every path anyway.
fn split(path: &str) -> Vec<String> {
    path.split('.')
        .map(|p| p.strip_suffix("{}").unwrap_or(p).to_string())
        .collect()
}

/// pySigma's Azure sign-in columns and where an exported record (an Event Hubs record with
/// `properties`, or a bare Graph `signIn`) holds them.
const ENTRA_COLUMNS: &[(&str, &[&str])] = &[
    (
        "ResultType",
        &[
            "resultType",
            "properties.status.errorCode",
            "status.errorCode",
        ],
    ),
    (
        "ResultDescription",
        &[
            "resultDescription",
            "properties.status.failureReason",
            "status.failureReason",
        ],
    ),
    (
        "IPAddress",
        &["callerIpAddress", "properties.ipAddress", "ipAddress"],
    ),
    (
        "Location",
        &[
            "location",
            "properties.location.countryOrRegion",
            "location.countryOrRegion",
        ],
    ),
    ("OperationName", &["operationName"]),
    ("Category", &["category"]),
];

/// Resolves a Sigma field name for a format.
pub fn locate(format: Format, name: &str) -> Locator {
    match format {
        Format::Native => Field::parse(name)
            .or_else(|| Field::parse(&format!("attrs.{name}")))
            .map_or_else(|| Locator::Paths(Vec::new()), Locator::Canonical),
        Format::Entra => {
            if name.eq_ignore_ascii_case("Status") {
                return Locator::EntraStatus;
            }
            if let Some((_, paths)) = ENTRA_COLUMNS
                .iter()
                .find(|(c, _)| c.eq_ignore_ascii_case(name))
            {
                return Locator::Paths(paths.iter().map(|p| split(p)).collect());
            }
            // Log Analytics columns are the Graph properties in PascalCase.
            let camel: Vec<String> = name.split('.').map(lower_first).collect();
            let mut under = vec!["properties".to_string()];
            under.extend(camel.iter().cloned());
            Locator::Paths(vec![split(name), under, camel])
        }
        Format::GoogleWorkspace => workspace(name),
        _ => Locator::Paths(vec![split(name)]),
    }
}

/// Workspace fields as SigmaHQ names them: the Reports API's own (`eventName`, a parameter by
/// its name) and Cloud Logging's (`protoPayload.serviceName`, `protoPayload.metadata.event.*`),
/// each read from either shape of the record.
fn workspace(name: &str) -> Locator {
    const EVENT: &str = "protopayload.metadata.event.";
    let lower = name.to_ascii_lowercase();
    if lower == "protopayload.servicename" {
        return Locator::WorkspaceService(split(name));
    }
    if let Some(rest) = lower.strip_prefix(EVENT) {
        return match rest {
            "eventname" => Locator::Paths(vec![split(name), split("events.name")]),
            "eventtype" => Locator::Paths(vec![split(name), split("events.type")]),
            _ => Locator::WorkspaceParam(split(name), name[EVENT.len()..].to_string()),
        };
    }
    match name {
        "eventName" => Locator::Paths(vec![split("events.name")]),
        "eventType" => Locator::Paths(vec![split("events.type")]),
        "eventService" | "applicationName" => Locator::Paths(vec![split("id.applicationName")]),
        other => Locator::WorkspaceParam(split(other), other.to_string()),
    }
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map_or_else(String::new, |c| {
        c.to_lowercase().chain(chars).collect::<String>()
    })
}

/// What a detection reads: the provider record or the canonical event.
#[derive(Clone, Copy)]
pub enum View<'a> {
    Raw(&'a Value),
    Canonical(&'a Event),
}

impl<'a> View<'a> {
    /// The provider record, unwrapped from a one-record envelope (Event Hubs `records`,
    /// Cognito `AuthEvents`) the way the normalisers unwrap it.
    pub fn raw(record: &'a Value) -> View<'a> {
        for envelope in ["records", "AuthEvents"] {
            if let Some([one]) = record
                .get(envelope)
                .and_then(Value::as_array)
                .map(Vec::as_slice)
            {
                return View::Raw(one);
            }
        }
        View::Raw(record)
    }

    /// Calls `f` with each value the field holds, as text, until `f` returns true.
    /// Returns whether `f` did. Null and absent fields hold nothing.
    pub fn any(&self, at: &Locator, f: &mut dyn FnMut(&str) -> bool) -> bool {
        match (self, at) {
            (View::Raw(v), Locator::Paths(paths)) => {
                for path in paths {
                    let mut found = false;
                    let hit = walk(v, path, &mut |x| {
                        found = true;
                        f(x)
                    });
                    if found {
                        return hit;
                    }
                }
                false
            }
            (View::Raw(v), Locator::EntraStatus) => {
                let code = [
                    "resultType",
                    "properties.status.errorCode",
                    "status.errorCode",
                ]
                .iter()
                .find_map(|p| {
                    let mut out = None;
                    walk(v, &split(p), &mut |x| {
                        out = Some(x.to_string());
                        true
                    });
                    out
                });
                match code {
                    Some(c) => f(if c == "0" { "Success" } else { "Failure" }),
                    None => false,
                }
            }
            (View::Raw(v), Locator::WorkspaceParam(path, name)) => {
                let mut found = false;
                let hit = walk(v, path, &mut |x| {
                    found = true;
                    f(x)
                });
                if found {
                    return hit;
                }
                workspace_param(v, name, f)
            }
            (View::Raw(v), Locator::WorkspaceService(path)) => {
                let mut found = false;
                let hit = walk(v, path, &mut |x| {
                    found = true;
                    f(x)
                });
                if found {
                    return hit;
                }
                match v.pointer("/id/applicationName").and_then(Value::as_str) {
                    Some(app) => f(&format!("{app}.googleapis.com")),
                    None => false,
                }
            }
            (View::Canonical(e), Locator::Canonical(field)) => match field.get(e) {
                None => false,
                Some(FieldValue::Str(s)) => f(s),
                Some(FieldValue::Json(v)) => walk(v, &[], f),
                Some(other) => f(&other.to_text()),
            },
            // A provider path against a canonical event (or the reverse) reads nothing.
            _ => false,
        }
    }

    /// Whether the field holds any value.
    pub fn has(&self, at: &Locator) -> bool {
        self.any(at, &mut |_| true)
    }

    /// The field's first value, for group keys.
    pub fn first(&self, at: &Locator) -> Option<String> {
        let mut out = None;
        self.any(at, &mut |x| {
            out = Some(x.to_string());
            true
        });
        out
    }
}

/// Follows `path` from `v`, fanning out over arrays; calls `f` on each scalar reached.
fn walk(v: &Value, path: &[String], f: &mut dyn FnMut(&str) -> bool) -> bool {
    match v {
        Value::Array(items) => items.iter().any(|i| walk(i, path, f)),
        Value::Object(map) => match path.split_first() {
            // Field names as rules write them (`eventtype`, `actor.alternateid`) find the
            // provider's camelCase keys: SIEMs compare field names without case.
            Some((head, rest)) => map
                .get(head)
                .or_else(|| {
                    map.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(head))
                        .map(|(_, v)| v)
                })
                .is_some_and(|x| walk(x, rest, f)),
            // An object itself is no scalar value.
            None => false,
        },
        _ if !path.is_empty() => false,
        Value::Null => false,
        Value::String(s) => f(s),
        Value::Bool(b) => f(if *b { "true" } else { "false" }),
        Value::Number(n) => f(&n.to_string()),
    }
}

fn workspace_param(v: &Value, name: &str, f: &mut dyn FnMut(&str) -> bool) -> bool {
    let Some(events) = v.get("events").and_then(Value::as_array) else {
        return false;
    };
    events
        .iter()
        .filter_map(|e| e.get("parameters").and_then(Value::as_array))
        .flatten()
        .filter(|p| p.get("name").and_then(Value::as_str) == Some(name))
        .any(|p| {
            ["value", "boolValue", "intValue", "multiValue"]
                .iter()
                .filter_map(|k| p.get(*k))
                .any(|x| walk(x, &[], f))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn values(v: &Value, at: &Locator) -> Vec<String> {
        let mut out = Vec::new();
        View::raw(v).any(at, &mut |x| {
            out.push(x.to_string());
            false
        });
        out
    }

    #[test]
    fn logsources_map_to_formats() {
        assert_eq!(format_of(Some("okta"), Some("okta")), Some(Format::Okta));
        assert_eq!(
            format_of(Some("azure"), Some("signinlogs")),
            Some(Format::Entra)
        );
        assert_eq!(
            format_of(Some("gcp"), Some("google_workspace.login")),
            Some(Format::GoogleWorkspace)
        );
        assert_eq!(
            format_of(Some("aws"), Some("cognito")),
            Some(Format::Cognito)
        );
        assert_eq!(format_of(Some("authwatch"), None), Some(Format::Native));
        assert_eq!(format_of(Some("windows"), Some("security")), None);
        assert_eq!(format_of(None, None), None);
    }

    #[test]
    fn entra_columns_are_found_in_exported_and_graph_records() {
        let hub = json!({"resultType": "50126", "properties": {"status": {"errorCode": 50126},
            "authenticationRequirement": "singleFactorAuthentication",
            "deviceDetail": {"isCompliant": false}}});
        let graph = json!({"status": {"errorCode": 0}, "deviceDetail": {"isCompliant": true}});
        let at = |n| locate(Format::Entra, n);
        assert_eq!(values(&hub, &at("ResultType")), ["50126"]);
        assert_eq!(values(&graph, &at("ResultType")), ["0"]);
        assert_eq!(values(&hub, &at("Status")), ["Failure"]);
        assert_eq!(values(&graph, &at("Status")), ["Success"]);
        assert_eq!(
            values(&hub, &at("AuthenticationRequirement")),
            ["singleFactorAuthentication"]
        );
        assert_eq!(values(&hub, &at("DeviceDetail.isCompliant")), ["false"]);
        assert_eq!(values(&graph, &at("DeviceDetail.isCompliant")), ["true"]);
        let wrapped = json!({"records": [hub]});
        assert_eq!(values(&wrapped, &at("ResultType")), ["50126"]);
    }

    #[test]
    fn arrays_fan_out_and_workspace_parameters_are_found() {
        let okta =
            json!({"target": [{"type": "User", "alternateId": "a"}, {"type": "AppInstance"}]});
        assert_eq!(
            values(&okta, &locate(Format::Okta, "target.type")),
            ["User", "AppInstance"]
        );
        let ws = json!({"id": {"applicationName": "login"}, "events": [{"name": "login_failure",
            "parameters": [{"name": "login_type", "value": "google_password"},
                           {"name": "is_suspicious", "boolValue": true}]}]});
        let at = |n| locate(Format::GoogleWorkspace, n);
        assert_eq!(values(&ws, &at("eventName")), ["login_failure"]);
        assert_eq!(values(&ws, &at("login_type")), ["google_password"]);
        assert_eq!(values(&ws, &at("is_suspicious")), ["true"]);
        assert_eq!(values(&ws, &at("eventService")), ["login"]);
        // Cloud Logging's names for the same record, as SigmaHQ's Workspace rules write them.
        assert_eq!(
            values(&ws, &at("protoPayload.serviceName")),
            ["login.googleapis.com"]
        );
        assert_eq!(
            values(&ws, &at("protoPayload.Servicename")),
            ["login.googleapis.com"]
        );
        assert_eq!(
            values(&ws, &at("protoPayload.metadata.event.eventName")),
            ["login_failure"]
        );
        assert_eq!(
            values(&ws, &at("protoPayload.metadata.event.login_type")),
            ["google_password"]
        );
        let logged = json!({"protoPayload": {"serviceName": "login.googleapis.com",
            "metadata": {"event": [{"eventName": "gov_attack_warning"}]}}});
        assert_eq!(
            values(&logged, &at("protoPayload.metadata.event.eventName")),
            ["gov_attack_warning"]
        );
        assert_eq!(
            values(&logged, &at("protoPayload.serviceName")),
            ["login.googleapis.com"]
        );
        // Splunk's notation for the elements of an array names the array.
        let auth0 = json!({"data": {"details": {"response": {"body": {"shields": ["admin_notification", "block"]}}}}});
        assert_eq!(
            values(
                &auth0,
                &locate(Format::Auth0, "data.details.response.body.shields{}")
            ),
            ["admin_notification", "block"]
        );
        // Field names are found whatever their case, as SIEMs find them.
        assert_eq!(
            values(&okta, &locate(Format::Okta, "TARGET.alternateid")),
            ["a"]
        );
    }
}
