//! The syslog sink against rsyslog (started by `.ci/run`): RFC 5424 with CEF over TCP with
//! octet counting and over TLS with a CA file; rsyslog parses the header and, with
//! mmnormalize's CEF parser, the CEF payload, and writes one JSON line per message.

use std::time::Duration;

use super::sinks_harness::{Daemon, config, event, poll, receiver_env};

#[test]
fn rsyslog_receives_and_parses_the_cef_lines_over_tcp_and_tls() {
    let Some(env) = receiver_env(&[
        "AUTHWATCH_TEST_SYSLOG_TCP",
        "AUTHWATCH_TEST_SYSLOG_TLS",
        "AUTHWATCH_TEST_SYSLOG_OUT",
        "AUTHWATCH_TEST_CA",
    ]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // A host name of our own picks this run's lines out of the shared output file.
    let host = format!("it-{}", chrono::Utc::now().timestamp_micros());
    let cfg = config(
        dir.path(),
        &format!(
            r#"[[sink]]
kind = "syslog"
name = "plain"
address = "{}"
hostname = "{host}"
[[sink]]
kind = "syslog"
name = "tls"
address = "{}"
protocol = "tls"
ca_file = "{}"
hostname = "{host}"
[[sink]]
kind = "file"
path = "{}"
"#,
            env[0],
            env[1],
            env[3],
            dir.path().join("alerts.jsonl").display()
        ),
    );
    let mut d = Daemon::start(&cfg, &[]);
    d.send(&format!("{}{}", event(1, false), event(2, true)));
    let lines = poll(
        "two messages over each transport",
        Duration::from_secs(30),
        || {
            let text = std::fs::read_to_string(&env[2]).ok()?;
            let ours: Vec<serde_json::Value> = text
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|v| v["host"] == host.as_str())
                .collect();
            (ours.len() >= 4).then_some(ours)
        },
    );
    assert!(d.stop().success());
    let alerts: Vec<serde_json::Value> = std::fs::read_to_string(dir.path().join("alerts.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    for transport in ["tcp", "tls"] {
        for a in &alerts {
            let l = lines
                .iter()
                .find(|l| {
                    l["transport"] == transport
                        && l["parsed"]["cef"]["Extensions"]["externalId"] == a["id"]
                })
                .unwrap_or_else(|| panic!("alert {} over {transport}: {lines:?}", a["id"]));
            let cef = &l["parsed"]["cef"];
            assert_eq!(l["app"], "authwatch");
            assert_eq!(l["msgid"], a["rule"]);
            assert!(
                l["sd"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("id=\"{}\"", a["id"].as_str().unwrap()))
            );
            assert_eq!(cef["DeviceVendor"], "authwatch");
            assert_eq!(cef["SignatureID"], a["rule"]);
            assert_eq!(cef["Name"], a["title"]);
            let ext = &cef["Extensions"];
            assert_eq!(ext["src"], a["ip"]);
            assert_eq!(ext["suid"], a["user"]);
            assert_eq!(ext["msg"], a["summary"]);
            assert_eq!(ext["cs2"], a["runbook_url"], "{ext}");
            let (pri, sev) = if a["severity"] == "critical" {
                (34, "10")
            } else {
                (35, "8")
            };
            assert_eq!(
                (
                    l["pri"].as_u64().unwrap(),
                    cef["Severity"].as_str().unwrap()
                ),
                (pri, sev)
            );
        }
    }
}
