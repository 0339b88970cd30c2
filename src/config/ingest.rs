//! `[source] kind = "http"`: the credentials and limits of HTTP ingest, and the `[http]` keys
//! of the daemon's servers (connection limits, the metrics listener), validated with every
//! error collected. The routes themselves are in `crate::source::http`.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::secret::{self, Secret};

/// Largest request body accepted. Identity providers send small batches (an Okta event hook
/// carries at most a few dozen events, an Auth0 log stream request a few hundred KiB), so
/// 4 MiB leaves room for bulk native posts while bounding what one request can hold in memory.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 << 20;

/// Requests queued between the HTTP handlers and detection (one batch per request); beyond
/// this, clients are told to retry. The bound the file and stdin sources use too
/// (`BATCHES_IN_FLIGHT` in `app/detect.rs`).
pub const DEFAULT_QUEUE_BATCHES: usize = 16;

/// Events (array elements, NDJSON lines) in one body, at most. A body's memory is its bytes
/// plus a record per element, about 80 bytes each (a 64-byte `source::Item` and the
/// allocation of its bytes): a 4 MiB body of `{}` elements would be 1.4 million records,
/// about 110 MiB, 27 times its size. This bounds that part to about 1.6 MiB a body while
/// leaving room for bulk posts (a 4 MiB body of real events holds about 15,000).
pub const DEFAULT_MAX_EVENTS_PER_BODY: usize = 20_000;

/// How long a request waits for its batch to be processed and checkpointed durably before it
/// is answered 503 (the batch may still be processed; the client retries). Below the 3 s
/// Okta waits for an event hook's answer.
pub const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(2);

/// `[http] header_timeout`: a request head must arrive whole within this (nginx's
/// `client_header_timeout` is 60 s; a webhook sender writes its head at once).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// `[http] idle_timeout`: a keep-alive connection with no request for this long is closed
/// (nginx's `keepalive_timeout` is 75 s; Auth0 and Okta reuse connections within seconds).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// `[http] max_connections`: connections open at once per listener (nginx's
/// `worker_connections` default is 512 per worker); the file-descriptor limit is raised at
/// start to leave room for it.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// The header Okta event hooks carry their secret in unless the hook names another one.
pub const DEFAULT_OKTA_HEADER: &str = "Authorization";

/// `[source] kind = "http"` as written: route credentials and limits.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIngest {
    /// Refused with a reason: each route fixes its format.
    pub format: Option<String>,
    pub token_env: Option<String>,
    pub token_file: Option<String>,
    pub auth0_token_env: Option<String>,
    pub auth0_token_file: Option<String>,
    pub okta_header: Option<String>,
    pub okta_secret_env: Option<String>,
    pub okta_secret_file: Option<String>,
    pub max_body_bytes: Option<usize>,
    pub queue_batches: Option<usize>,
    pub max_events_per_body: Option<usize>,
    pub ack_timeout: Option<String>,
}

/// `[http]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    pub listen: Option<String>,
    // Connection limits and the metrics listener (see `http_server`).
    pub metrics_listen: Option<String>,
    pub header_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub max_connections: Option<usize>,
    pub metrics_top_offenders: Option<bool>,
}

/// Validated HTTP ingest settings. A route whose credential is not configured answers 404:
/// no route ever accepts events without a credential.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpIngest {
    /// Bearer token for `POST /v1/events`.
    pub token: Option<Secret>,
    /// The Authorization header value configured in the Auth0 custom-webhook log stream.
    pub auth0_token: Option<Secret>,
    /// The header name and secret configured as the Okta event hook's authentication.
    pub okta_header: String,
    pub okta_secret: Option<Secret>,
    pub max_body_bytes: usize,
    pub queue_batches: usize,
    /// Events in one body at most (413 beyond).
    pub max_events_per_body: usize,
    /// How long a request waits for its batch to be durable before 503.
    pub ack_timeout: Duration,
}

/// `[http]` beyond `listen`.
#[derive(Clone, Debug, PartialEq)]
pub struct HttpServer {
    /// `/metrics` served here only, not on `listen`.
    pub metrics_listen: Option<SocketAddr>,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// Usernames and IPs as metric labels (`failed_logins_top_*`): off unless asked for,
    /// since they are personal data and readable by whoever reaches `/metrics`.
    pub metrics_top_offenders: bool,
}

impl Default for HttpServer {
    fn default() -> Self {
        HttpServer {
            metrics_listen: None,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            metrics_top_offenders: false,
        }
    }
}

/// Reads `[http]` beyond `listen`.
pub fn http_server(raw: &RawHttp, error: &mut dyn FnMut(String)) -> HttpServer {
    let mut http = HttpServer::default();
    if let Some(addr) = &raw.metrics_listen {
        match addr.parse() {
            Ok(addr) => http.metrics_listen = Some(addr),
            Err(_) => error(format!(
                "[http] metrics_listen `{addr}` must be an address like 127.0.0.1:9641"
            )),
        }
    }
    if let Some(d) = duration(
        "[http]",
        "header_timeout",
        raw.header_timeout.as_deref(),
        error,
    ) {
        http.header_timeout = d;
    }
    if let Some(d) = duration("[http]", "idle_timeout", raw.idle_timeout.as_deref(), error) {
        http.idle_timeout = d;
    }
    if let Some(n) = at_least_one("[http]", "max_connections", raw.max_connections, error) {
        http.max_connections = n;
    }
    http.metrics_top_offenders = raw.metrics_top_offenders.unwrap_or(false);
    http
}

/// A positive duration written like `10s`.
fn duration(
    at: &str,
    key: &str,
    value: Option<&str>,
    error: &mut dyn FnMut(String),
) -> Option<Duration> {
    let value = value?;
    match humantime::parse_duration(value) {
        Ok(d) if !d.is_zero() => Some(d),
        Ok(_) => {
            error(format!("{at} {key} must be more than 0"));
            None
        }
        Err(e) => {
            error(format!("{at} {key} `{value}`: {e}; write it like 10s"));
            None
        }
    }
}

/// Reads the http keys of `[source]`; `None` (with errors) when they cannot make a source.
pub fn http_source(raw: &RawIngest, error: &mut dyn FnMut(String)) -> Option<HttpIngest> {
    let at = "[source]";
    let mut failed = false;
    let mut report = |message: String| {
        failed = true;
        error(message)
    };
    let token = secret::resolve(
        at,
        "token",
        raw.token_env.as_deref(),
        raw.token_file.as_deref(),
        &mut report,
    );
    let auth0_token = secret::resolve(
        at,
        "auth0_token",
        raw.auth0_token_env.as_deref(),
        raw.auth0_token_file.as_deref(),
        &mut report,
    );
    let okta_secret = secret::resolve(
        at,
        "okta_secret",
        raw.okta_secret_env.as_deref(),
        raw.okta_secret_file.as_deref(),
        &mut report,
    );
    let named = [
        &raw.token_env,
        &raw.token_file,
        &raw.auth0_token_env,
        &raw.auth0_token_file,
        &raw.okta_secret_env,
        &raw.okta_secret_file,
    ]
    .iter()
    .any(|key| key.is_some());
    if !named {
        report(format!(
            "{at} kind = \"http\" needs a credential for at least one route: token_env or \
             token_file (POST /v1/events), auth0_token_env or auth0_token_file \
             (/v1/ingest/auth0), okta_secret_env or okta_secret_file (/v1/ingest/okta)"
        ));
    }
    let okta_header = raw
        .okta_header
        .clone()
        .unwrap_or_else(|| DEFAULT_OKTA_HEADER.to_string());
    if axum::http::HeaderName::from_bytes(okta_header.as_bytes()).is_err() {
        report(format!(
            "{at} okta_header `{okta_header}` is not an HTTP header name"
        ));
    }
    let max_body_bytes = at_least_one(at, "max_body_bytes", raw.max_body_bytes, &mut report)
        .unwrap_or(DEFAULT_MAX_BODY_BYTES);
    let queue_batches = at_least_one(at, "queue_batches", raw.queue_batches, &mut report)
        .unwrap_or(DEFAULT_QUEUE_BATCHES);
    let max_events_per_body = at_least_one(
        at,
        "max_events_per_body",
        raw.max_events_per_body,
        &mut report,
    )
    .unwrap_or(DEFAULT_MAX_EVENTS_PER_BODY);
    let ack_timeout = duration(at, "ack_timeout", raw.ack_timeout.as_deref(), &mut report)
        .unwrap_or(DEFAULT_ACK_TIMEOUT);
    if raw.format.is_some() {
        error(
            "[source] format does not apply to kind = \"http\": each route fixes its format \
             (/v1/events native, /v1/ingest/auth0, /v1/ingest/okta)"
                .into(),
        );
    }
    (!failed).then_some(HttpIngest {
        token,
        auth0_token,
        okta_header,
        okta_secret,
        max_body_bytes,
        queue_batches,
        max_events_per_body,
        ack_timeout,
    })
}

fn at_least_one(
    at: &str,
    key: &str,
    value: Option<usize>,
    error: &mut dyn FnMut(String),
) -> Option<usize> {
    match value {
        Some(0) => {
            error(format!("{at} {key} must be at least 1"));
            None
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{Source, parse};
    use super::*;

    /// A config with `[source] kind = "http"`, `source` appended to the section, and a
    /// token file holding `secret`.
    fn config(dir: &Path, source: &str, listen: bool) -> String {
        let token = dir.join("token");
        std::fs::write(&token, "secret\n").unwrap();
        let http = if listen {
            "[http]\nlisten = \"127.0.0.1:9640\"\n"
        } else {
            ""
        };
        format!(
            "[source]\nkind = \"http\"\ntoken_file = \"{}\"\n{source}\n{http}",
            token.display()
        )
    }

    #[test]
    fn defaults_apply_and_secrets_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let parsed = parse(Path::new("a.toml"), &config(dir.path(), "", true)).unwrap();
        let Source::Http(ingest) = parsed.source else {
            panic!("{:?}", parsed.source)
        };
        assert_eq!(ingest.token, Some(Secret::new("secret")));
        assert_eq!((ingest.auth0_token, ingest.okta_secret), (None, None));
        assert_eq!(ingest.okta_header, DEFAULT_OKTA_HEADER);
        assert_eq!(ingest.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(ingest.queue_batches, DEFAULT_QUEUE_BATCHES);
        assert_eq!(ingest.max_events_per_body, DEFAULT_MAX_EVENTS_PER_BODY);
        assert_eq!(ingest.ack_timeout, DEFAULT_ACK_TIMEOUT);
        assert_eq!(parsed.http, HttpServer::default());
        assert!(!parsed.http.metrics_top_offenders);
    }

    #[test]
    fn http_server_keys_are_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let good = config(
            dir.path(),
            "ack_timeout = \"500ms\"\nmax_events_per_body = 7",
            false,
        ) + "[http]\nlisten = \"127.0.0.1:9640\"\nmetrics_listen = \"127.0.0.1:9641\"\n\
               header_timeout = \"2s\"\nidle_timeout = \"3s\"\nmax_connections = 5\n\
               metrics_top_offenders = true\n";
        let parsed = parse(Path::new("a.toml"), &good).unwrap();
        assert_eq!(
            parsed.http,
            HttpServer {
                metrics_listen: Some("127.0.0.1:9641".parse().unwrap()),
                header_timeout: Duration::from_secs(2),
                idle_timeout: Duration::from_secs(3),
                max_connections: 5,
                metrics_top_offenders: true,
            }
        );
        let Source::Http(ingest) = parsed.source else {
            panic!("{:?}", parsed.source)
        };
        assert_eq!(ingest.ack_timeout, Duration::from_millis(500));
        assert_eq!(ingest.max_events_per_body, 7);
        let bad = "[http]\nmetrics_listen = \"nowhere\"\nheader_timeout = \"0s\"\n\
                   idle_timeout = \"soon\"\nmax_connections = 0\n";
        let err = parse(Path::new("a.toml"), bad).unwrap_err();
        for says in [
            "metrics_listen `nowhere`",
            "header_timeout must be more than 0",
            "idle_timeout `soon`",
            "max_connections must be at least 1",
        ] {
            assert!(err.to_string().contains(says), "{says}: {err}");
        }
    }

    #[test]
    fn every_mistake_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let source = "okta_header = \"bad header\"\nmax_body_bytes = 0\nqueue_batches = 0\n\
                      auth0_token_env = \"AUTHWATCH_TEST_SURELY_UNSET_VAR\"\nformat = \"okta\"";
        let err = parse(Path::new("a.toml"), &config(dir.path(), source, false)).unwrap_err();
        let text = err.to_string();
        for says in [
            "okta_header `bad header`",
            "max_body_bytes must be at least 1",
            "queue_batches must be at least 1",
            "AUTHWATCH_TEST_SURELY_UNSET_VAR",
            "format does not apply",
            "needs `[http] listen`",
        ] {
            assert!(text.contains(says), "{says}: {text}");
        }
        assert_eq!(err.0.len(), 6, "{text}");
    }

    #[test]
    fn a_route_credential_is_required_and_http_keys_belong_to_http() {
        let err = parse(
            Path::new("a.toml"),
            "[source]\nkind = \"http\"\n[http]\nlisten = \"127.0.0.1:9640\"\n",
        )
        .unwrap_err();
        assert!(err.0[0].contains("needs a credential"), "{err}");
        let err = parse(
            Path::new("a.toml"),
            "[source]\nkind = \"stdin\"\nformat = \"okta\"\ntoken_env = \"X\"\n",
        )
        .unwrap_err();
        assert_eq!(
            err.0,
            ["a.toml:4:1: unknown field `token_env` for source kind `stdin`, expected `format`"]
        );
    }
}
