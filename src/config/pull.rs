//! `[source] kind = "okta_api"` and `kind = "auth0_api"`: the provider's URL, the API token
//! from a secret, and the polling bounds, validated with every error collected. The poll loop
//! itself is in `crate::source::pull`.

use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

use crate::normalize::Format;
use crate::secret::{self, Secret};

/// How often a caught-up source asks for new events. Okta and Auth0 both show events within
/// seconds; ten seconds keeps alerts prompt at 6 requests a minute, far inside either
/// provider's rate limit for the logs endpoint.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(10);
/// The longest one request (connect, answer and body) may take.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The most of one answer read. A full Okta page (1,000 events of a few KiB) is a few MiB;
/// anything beyond 32 MiB is not a page of log events.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 32 << 20;
/// Exponential backoff after failures starts at a second and doubles up to this.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The provider an API source pulls from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    /// Okta System Log API, `GET /api/v1/logs`.
    Okta,
    /// Auth0 Management API, `GET /api/v2/logs`.
    Auth0,
}

impl Provider {
    /// The `[source] kind` naming it.
    pub fn kind(self) -> &'static str {
        match self {
            Provider::Okta => "okta_api",
            Provider::Auth0 => "auth0_api",
        }
    }

    /// The input format of its events.
    pub fn format(self) -> Format {
        match self {
            Provider::Okta => Format::Okta,
            Provider::Auth0 => Format::Auth0,
        }
    }

    /// The largest page the API serves: Okta's `limit` and Auth0's `take` maxima.
    pub fn max_page_size(self) -> usize {
        match self {
            Provider::Okta => 1000,
            Provider::Auth0 => 100,
        }
    }
}

/// `[source] kind = "okta_api"` or `"auth0_api"` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPull {
    /// Only the provider's own format is accepted (it is implied).
    pub format: Option<String>,
    pub token_env: Option<String>,
    pub token_file: Option<String>,
    pub url: Option<String>,
    pub poll_interval: Option<String>,
    pub page_size: Option<usize>,
    pub request_timeout: Option<String>,
    pub max_response_bytes: Option<usize>,
    pub max_backoff: Option<String>,
}

/// A validated API source.
#[derive(Clone, Debug, PartialEq)]
pub struct PullConfig {
    pub provider: Provider,
    /// The tenant's base URL (`https://acme.okta.com`, `https://acme.eu.auth0.com`); the API
    /// path is appended to it.
    pub url: Url,
    /// Okta: an API token (sent as `SSWS <token>`); Auth0: a Management API access token with
    /// `read:logs` (sent as `Bearer <token>`).
    pub token: Secret,
    /// Where the token was read from, when from a file: it is read again after a 401, so a
    /// job that renews the token (Auth0 access tokens expire) need not restart the daemon.
    pub token_file: Option<std::path::PathBuf>,
    pub poll_interval: Duration,
    /// Events asked for per request (Okta `limit`, Auth0 `take`).
    pub page_size: usize,
    pub request_timeout: Duration,
    pub max_response_bytes: usize,
    pub max_backoff: Duration,
}

/// Reads the API keys of `[source]`; `None` (with errors) when they cannot make a source.
pub fn pull_source(
    provider: Provider,
    raw: &RawPull,
    error: &mut dyn FnMut(String),
) -> Option<PullConfig> {
    let at = "[source]";
    let kind = provider.kind();
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
    if raw.token_env.is_none() && raw.token_file.is_none() {
        report(format!(
            "{at} kind = \"{kind}\" needs the API token: token_env or token_file"
        ));
    }
    let url = match &raw.url {
        None => {
            let example = match provider {
                Provider::Okta => "https://acme.okta.com",
                Provider::Auth0 => "https://acme.eu.auth0.com",
            };
            report(format!(
                "{at} kind = \"{kind}\" needs `url`, the tenant's address, like {example}"
            ));
            None
        }
        Some(text) => base_url(text, &mut report),
    };
    if raw
        .format
        .as_deref()
        .is_some_and(|f| f != provider.format().as_str())
    {
        report(format!(
            "{at} kind = \"{kind}\" reads format `{}` only; remove `format`",
            provider.format()
        ));
    }
    let poll_interval = duration(at, "poll_interval", &raw.poll_interval, &mut report)
        .unwrap_or(DEFAULT_POLL_INTERVAL);
    let request_timeout = duration(at, "request_timeout", &raw.request_timeout, &mut report)
        .unwrap_or(DEFAULT_REQUEST_TIMEOUT);
    let max_backoff =
        duration(at, "max_backoff", &raw.max_backoff, &mut report).unwrap_or(DEFAULT_MAX_BACKOFF);
    let max = provider.max_page_size();
    let page_size = match raw.page_size {
        None => max,
        Some(n) if (1..=max).contains(&n) => n,
        Some(n) => {
            report(format!(
                "{at} page_size {n} must be between 1 and {max}, the most the API serves"
            ));
            max
        }
    };
    let max_response_bytes = match raw.max_response_bytes {
        None => DEFAULT_MAX_RESPONSE_BYTES,
        Some(n) if n >= 1024 => n,
        Some(n) => {
            report(format!("{at} max_response_bytes {n} must be at least 1024"));
            DEFAULT_MAX_RESPONSE_BYTES
        }
    };
    (!failed).then(|| PullConfig {
        provider,
        url: url.expect("a missing url is an error"),
        token: token.expect("a missing token is an error"),
        token_file: raw.token_file.as_ref().map(Into::into),
        poll_interval,
        page_size,
        request_timeout,
        max_response_bytes,
        max_backoff,
    })
}

/// The tenant's base URL: https (plain http only to this machine, for tests and local
/// proxies: the token travels in a header), no user, query or fragment. A bare domain is
/// taken as https.
fn base_url(text: &str, error: &mut dyn FnMut(String)) -> Option<Url> {
    let at = "[source] url";
    // Okta and Auth0 both name a tenant by its domain (`acme.okta.com`): that means https.
    let full = if text.contains("://") {
        text.to_string()
    } else {
        format!("https://{text}")
    };
    let url = match Url::parse(&full) {
        Ok(u) => u,
        Err(e) => {
            error(format!(
                "{at} `{text}` is not a URL ({e}); write it like https://acme.okta.com"
            ));
            return None;
        }
    };
    let local = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    let ok_scheme = url.scheme() == "https" || (url.scheme() == "http" && local);
    if !ok_scheme {
        error(format!(
            "{at} `{text}` must be https (the API token travels with every request); plain http \
             is accepted for localhost only"
        ));
        return None;
    }
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        error(format!(
            "{at} must be the tenant's address only, like https://acme.okta.com (no user, query \
             or fragment)"
        ));
        return None;
    }
    Some(url)
}

fn duration(
    at: &str,
    key: &str,
    value: &Option<String>,
    error: &mut dyn FnMut(String),
) -> Option<Duration> {
    let text = value.as_ref()?;
    match humantime::parse_duration(text) {
        Ok(d) if !d.is_zero() => Some(d),
        _ => {
            error(format!(
                "{at} {key} `{text}` must be a duration above 0 like 10s"
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{Source, parse};
    use super::*;

    fn config(dir: &Path, kind: &str, rest: &str) -> String {
        let token = dir.join("token");
        std::fs::write(&token, "t0ken\n").unwrap();
        format!(
            "[source]\nkind = \"{kind}\"\ntoken_file = \"{}\"\n{rest}\n",
            token.display()
        )
    }

    #[test]
    fn defaults_apply_and_the_format_follows_the_kind() {
        let dir = tempfile::tempdir().unwrap();
        for (kind, page, format) in [("okta_api", 1000, "okta"), ("auth0_api", 100, "auth0")] {
            let text = config(dir.path(), kind, "url = \"https://acme.example.com\"");
            let parsed = parse(Path::new("a.toml"), &text).unwrap();
            let Source::Pull(pull) = parsed.source else {
                panic!("{:?}", parsed.source)
            };
            assert_eq!(parsed.format.as_str(), format);
            assert_eq!(pull.token, Secret::new("t0ken"));
            assert_eq!(pull.page_size, page);
            assert_eq!(pull.poll_interval, DEFAULT_POLL_INTERVAL);
            assert_eq!(pull.request_timeout, DEFAULT_REQUEST_TIMEOUT);
            assert_eq!(pull.max_response_bytes, DEFAULT_MAX_RESPONSE_BYTES);
            assert_eq!(pull.max_backoff, DEFAULT_MAX_BACKOFF);
        }
    }

    #[test]
    fn every_mistake_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let rest = "url = \"http://acme.okta.com/?x=1\"\npage_size = 101\npoll_interval = \"0s\"\n\
                    request_timeout = \"soon\"\nmax_response_bytes = 10\nformat = \"okta\"";
        let err = parse(Path::new("a.toml"), &config(dir.path(), "auth0_api", rest)).unwrap_err();
        let text = err.to_string();
        for says in [
            "must be https",
            "page_size 101 must be between 1 and 100",
            "poll_interval `0s`",
            "request_timeout `soon`",
            "max_response_bytes 10",
            "reads format `auth0` only",
        ] {
            assert!(text.contains(says), "{says}: {text}");
        }
        let err = parse(Path::new("a.toml"), "[source]\nkind = \"okta_api\"\n").unwrap_err();
        assert!(err.to_string().contains("needs the API token"), "{err}");
        assert!(err.to_string().contains("needs `url`"), "{err}");
        let err = parse(
            Path::new("a.toml"),
            "[source]\nkind = \"file\"\npath = \"x\"\nurl = \"https://a.okta.com\"\n",
        )
        .unwrap_err();
        assert_eq!(err.0.len(), 1, "{err}");
        assert!(
            err.0[0].starts_with("a.toml:4:1: unknown field `url` for source kind `file`, expected one of `format`, `path`"),
            "{err}"
        );
    }

    #[test]
    fn the_poll_interval_must_be_under_the_lateness() {
        let dir = tempfile::tempdir().unwrap();
        let text = config(
            dir.path(),
            "okta_api",
            "url = \"https://acme.okta.com\"\npoll_interval = \"30s\"\n[rules]\nlateness = \"30s\"",
        );
        let err = parse(Path::new("a.toml"), &text).unwrap_err();
        assert!(
            err.to_string()
                .contains("must be shorter than [rules] lateness"),
            "{err}"
        );
        let text = text.replace("lateness = \"30s\"", "lateness = \"31s\"");
        assert!(parse(Path::new("a.toml"), &text).is_ok());
    }

    #[test]
    fn plain_http_is_for_this_machine_only() {
        let mut errors = Vec::new();
        assert!(base_url("http://127.0.0.1:8080", &mut |e| errors.push(e)).is_some());
        assert!(base_url("https://acme.okta.com", &mut |e| errors.push(e)).is_some());
        assert_eq!(
            base_url("acme.eu.auth0.com", &mut |e| errors.push(e)).map(String::from),
            Some("https://acme.eu.auth0.com/".to_string())
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert!(base_url("http://acme.okta.com", &mut |e| errors.push(e)).is_none());
        assert!(base_url("https://u:p@acme.okta.com", &mut |e| errors.push(e)).is_none());
        assert_eq!(errors.len(), 2);
    }
}
