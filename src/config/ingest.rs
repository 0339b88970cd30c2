//! `[source] kind = "http"`: the credentials and limits of HTTP ingest, validated with every
//! error collected. The routes themselves are in `crate::source::http`.

use super::raw::RawSource;
use super::secret::{self, Secret};

/// Largest request body accepted. Identity providers send small batches (an Okta event hook
/// carries at most a few dozen events, an Auth0 log stream request a few hundred KiB), so
/// 4 MiB leaves room for bulk native posts while bounding what one request can hold in memory.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 << 20;

/// Requests queued between the HTTP handlers and detection (one batch per request); beyond
/// this, clients are told to retry. The bound the file and stdin sources use too
/// (`BATCHES_IN_FLIGHT` in `app/run.rs`).
pub const DEFAULT_QUEUE_BATCHES: usize = 16;

/// The header Okta event hooks carry their secret in unless the hook names another one.
pub const DEFAULT_OKTA_HEADER: &str = "Authorization";

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
}

/// Reads the http keys of `[source]`; `None` (with errors) when they cannot make a source.
pub fn http_source(raw: &RawSource, error: &mut dyn FnMut(String)) -> Option<HttpIngest> {
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
    (!failed).then_some(HttpIngest {
        token,
        auth0_token,
        okta_header,
        okta_secret,
        max_body_bytes,
        queue_batches,
    })
}

/// Reports http-only keys given for another source kind: they would silently do nothing.
pub fn reject_http_keys(raw: &RawSource, error: &mut dyn FnMut(String)) {
    // The API sources (`super::pull`) read their token from the same two keys.
    let api = super::pull::Provider::from_kind(&raw.kind).is_some();
    let given = [
        ("token_env", raw.token_env.is_some() && !api),
        ("token_file", raw.token_file.is_some() && !api),
        ("auth0_token_env", raw.auth0_token_env.is_some()),
        ("auth0_token_file", raw.auth0_token_file.is_some()),
        ("okta_header", raw.okta_header.is_some()),
        ("okta_secret_env", raw.okta_secret_env.is_some()),
        ("okta_secret_file", raw.okta_secret_file.is_some()),
        ("max_body_bytes", raw.max_body_bytes.is_some()),
        ("queue_batches", raw.queue_batches.is_some()),
    ];
    for (key, _) in given.iter().filter(|(_, set)| *set) {
        error(format!(
            "[source] {key} applies to kind = \"http\" only; remove it or change the kind"
        ));
    }
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
            "[source]\nkind = \"stdin\"\ntoken_env = \"X\"\nqueue_batches = 2\n",
        )
        .unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
        assert!(
            err.0[0].contains("token_env applies to kind = \"http\" only"),
            "{err}"
        );
    }
}
