//! One request to a provider's logs API and the reading of its answer: a page of raw records,
//! the `Link: rel="next"` to follow, and what the rate-limit headers ask; or why to wait.
//! No text here carries a URL past its path (queries hold cursors, never the token, but logs
//! stay short and uniform) and none carries the token.

use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap};
use reqwest::{StatusCode, Url};
use serde_json::value::RawValue;

use crate::config::{Provider, PullConfig, Secret};

/// An error body is quoted in the log up to this many characters.
const QUOTED_CHARS: usize = 200;

/// A page of records, in the API's order, and what comes next.
pub struct Page {
    pub records: Vec<Box<RawValue>>,
    /// The `rel="next"` link, when it is on the tenant's own origin.
    pub next: Option<Url>,
    /// The rate-limit window is used up: wait this long before the next request.
    pub exhausted: Option<Duration>,
}

/// Why a request gave no page.
#[derive(Debug, PartialEq)]
pub enum Failure {
    /// 429: wait this long (from the reset headers), if they said.
    RateLimited(Option<Duration>),
    /// 401 or 403: the token is wrong, expired or lacks the scope.
    Refused(String),
    /// A connection error, a timeout, a 5xx or an answer that is not a page: try again later.
    Failed(String),
}

pub fn client(cfg: &PullConfig) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(cfg.request_timeout)
        .connect_timeout(cfg.request_timeout)
        // A redirect to another host would carry the token there.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("authwatch/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| {
            format!(
                "cannot build the HTTP client: {}",
                crate::http_error::chain(&e.without_url())
            )
        })
}

/// The Authorization header value: Okta API tokens are `SSWS`, Auth0 access tokens `Bearer`.
pub fn authorization(provider: Provider, token: &Secret) -> String {
    match provider {
        Provider::Okta => format!("SSWS {}", token.expose()),
        Provider::Auth0 => format!("Bearer {}", token.expose()),
    }
}

/// A URL as logs show it: scheme, host, port and path; no query.
pub fn for_logs(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

pub async fn fetch(
    client: &reqwest::Client,
    cfg: &PullConfig,
    auth: &str,
    url: &Url,
) -> Result<Page, Failure> {
    let mut response = client
        .get(url.clone())
        .header(AUTHORIZATION, auth)
        .header(ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| Failure::Failed(crate::http_error::describe(e)))?;
    let status = response.status();
    let headers = response.headers().clone();
    if let Some(len) = response.content_length()
        && len > cfg.max_response_bytes as u64
    {
        return Err(too_large(cfg));
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > cfg.max_response_bytes {
                    if status.is_success() {
                        return Err(too_large(cfg));
                    }
                    break; // enough of an error answer to quote
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => {
                return Err(Failure::Failed(format!(
                    "reading the answer failed: {}",
                    crate::http_error::chain(&e.without_url())
                )));
            }
        }
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Err(Failure::RateLimited(rate_limit_wait(&headers)));
    }
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Err(Failure::Refused(format!(
            "answered {status}: {}",
            quote(&body)
        )));
    }
    if !status.is_success() {
        return Err(Failure::Failed(format!(
            "answered {status}: {}",
            quote(&body)
        )));
    }
    let records: Vec<Box<RawValue>> = serde_json::from_slice(&body).map_err(|e| {
        Failure::Failed(format!("the answer is not a JSON array of log events: {e}"))
    })?;
    let exhausted = remaining(&headers)
        .filter(|&n| n == 0)
        .map(|_| rate_limit_wait(&headers).unwrap_or(Duration::from_secs(1)));
    Ok(Page {
        records,
        next: next_link(&headers, url),
        exhausted,
    })
}

fn too_large(cfg: &PullConfig) -> Failure {
    Failure::Failed(format!(
        "the answer is larger than max_response_bytes ({}); lower page_size or raise \
         max_response_bytes",
        cfg.max_response_bytes
    ))
}

/// The `rel="next"` target of the `Link` headers (Okta sends `self` and `next` as two
/// headers, RFC 8288 allows both in one), resolved against the request. A link to another
/// origin is not followed: the token would go with it.
pub fn next_link(headers: &HeaderMap, request: &Url) -> Option<Url> {
    for value in headers.get_all(reqwest::header::LINK) {
        let Ok(text) = value.to_str() else { continue };
        for link in text.split(',') {
            let Some((target, params)) = link.trim().split_once(';') else {
                continue;
            };
            let is_next = params.split(';').any(|p| {
                let p = p.trim().to_ascii_lowercase();
                p == "rel=\"next\"" || p == "rel=next"
            });
            let target = target.trim().trim_start_matches('<').trim_end_matches('>');
            if !is_next {
                continue;
            }
            let url = request.join(target).ok()?;
            if url.origin() != request.origin() {
                tracing::warn!(
                    link = %for_logs(&url),
                    "the API's next link points to another origin; not followed"
                );
                return None;
            }
            return Some(url);
        }
    }
    None
}

/// Requests left in the rate-limit window: Okta `X-Rate-Limit-Remaining`, Auth0
/// `X-RateLimit-Remaining`.
fn remaining(headers: &HeaderMap) -> Option<u64> {
    header_number(
        headers,
        &["x-rate-limit-remaining", "x-ratelimit-remaining"],
    )
}

/// How long until the rate-limit window resets: `Retry-After` seconds if given, else the
/// reset header (Okta `X-Rate-Limit-Reset`, Auth0 `X-RateLimit-Reset`: UTC epoch seconds)
/// less the answer's own `Date` (Okta's advice: the two clocks are the server's, so ours may
/// be skewed), or less our clock without one. At least a second, since the reset is in
/// whole seconds.
pub fn rate_limit_wait(headers: &HeaderMap) -> Option<Duration> {
    if let Some(secs) = header_number(headers, &["retry-after"]) {
        return Some(Duration::from_secs(secs.max(1)));
    }
    let reset = header_number(headers, &["x-rate-limit-reset", "x-ratelimit-reset"])? as i64;
    let now = headers
        .get(reqwest::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|d| chrono::DateTime::parse_from_rfc2822(d).ok())
        .map_or_else(|| chrono::Utc::now().timestamp(), |d| d.timestamp());
    Some(Duration::from_secs((reset - now).max(1) as u64))
}

fn header_number(headers: &HeaderMap, names: &[&str]) -> Option<u64> {
    names.iter().find_map(|n| {
        headers
            .get(*n)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
    })
}

fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().take(QUOTED_CHARS).collect();
    if text.chars().count() > QUOTED_CHARS {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn the_next_link_is_found_among_links_and_stays_on_the_origin() {
        let req = Url::parse("https://acme.okta.com/api/v1/logs?since=x").unwrap();
        let h = headers(&[
            (
                "link",
                "<https://acme.okta.com/api/v1/logs?since=x>; rel=\"self\"",
            ),
            (
                "link",
                "<https://acme.okta.com/api/v1/logs?after=abc>; rel=\"next\"",
            ),
        ]);
        assert_eq!(
            next_link(&h, &req).unwrap().as_str(),
            "https://acme.okta.com/api/v1/logs?after=abc"
        );
        let h = headers(&[(
            "link",
            "</api/v2/logs?from=9&take=100>; rel=\"next\", <https://x>; rel=\"prev\"",
        )]);
        assert_eq!(
            next_link(&h, &req).unwrap().as_str(),
            "https://acme.okta.com/api/v2/logs?from=9&take=100"
        );
        let h = headers(&[("link", "<https://evil.example/api/v1/logs>; rel=\"next\"")]);
        assert_eq!(next_link(&h, &req), None);
        assert_eq!(next_link(&HeaderMap::new(), &req), None);
    }

    #[test]
    fn waits_come_from_retry_after_or_the_reset_less_the_server_date() {
        let h = headers(&[
            ("x-rate-limit-reset", "1772442007"),
            ("date", "Mon, 02 Mar 2026 09:00:00 GMT"), // 1772442000
        ]);
        assert_eq!(rate_limit_wait(&h), Some(Duration::from_secs(7)));
        let h = headers(&[
            ("x-ratelimit-reset", "1772441990"),
            ("date", "Mon, 02 Mar 2026 09:00:00 GMT"),
        ]);
        assert_eq!(rate_limit_wait(&h), Some(Duration::from_secs(1)));
        let h = headers(&[("retry-after", "3"), ("x-rate-limit-reset", "1")]);
        assert_eq!(rate_limit_wait(&h), Some(Duration::from_secs(3)));
        assert_eq!(rate_limit_wait(&HeaderMap::new()), None);
        assert_eq!(
            remaining(&headers(&[("X-Rate-Limit-Remaining", "0")])),
            Some(0)
        );
    }

    #[test]
    fn logged_urls_have_no_query() {
        let url = Url::parse("https://acme.okta.com/api/v1/logs?after=secret-cursor").unwrap();
        assert_eq!(for_logs(&url), "https://acme.okta.com/api/v1/logs");
    }
}
