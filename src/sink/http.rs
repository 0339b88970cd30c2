//! What the HTTP sinks share: a client per sink (timeout, optional private CA) and the one
//! reading of an HTTP answer: 2xx delivered; 429, 408 and 5xx retried (with Retry-After);
//! 401, 403 and 404 retried too, since they mean a credential or URL an operator can fix;
//! other 4xx rejected, since the receiver would refuse the same alert again.

use std::path::Path;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};

use super::SendError;

/// A receiver's answer is quoted in the dead letter and the log up to this many characters.
const QUOTED_BODY_CHARS: usize = 300;
/// Retry-After is obeyed up to an hour: a longer ask is more likely a broken receiver than a
/// plan, and `max_age` still bounds how long an alert is tried.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// A client with the sink's timeout, trusting `ca_file` in addition to the public roots.
pub fn client(timeout: Duration, ca_file: Option<&Path>) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("authwatch/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("ca_file {}: {e}", path.display()))?
        {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Sends a request; the status, headers and body, or the transport failure as a retry.
pub async fn send(request: RequestBuilder) -> Result<(StatusCode, HeaderMap, String), SendError> {
    let response = request.send().await.map_err(|e| {
        let what = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "cannot connect"
        } else {
            "request failed"
        };
        SendError::retry(format!("{what}: {}", error_chain(&e)))
    })?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .text()
        .await
        .map_err(|e| SendError::retry(format!("reading the answer failed: {e}")))?;
    Ok((status, headers, body))
}

/// Sends and reads the answer as one result.
pub async fn post(request: RequestBuilder) -> Result<(), SendError> {
    let (status, headers, body) = send(request).await?;
    classify(status, &headers, &body)
}

pub fn classify(status: StatusCode, headers: &HeaderMap, body: &str) -> Result<(), SendError> {
    if status.is_success() {
        return Ok(());
    }
    let reason = format!("HTTP {}: {}", status.as_u16(), quote(body));
    match status.as_u16() {
        429 | 408 | 500..=599 => Err(SendError::Retry {
            reason,
            after: retry_after(headers),
        }),
        401 | 403 | 404 => Err(SendError::retry(format!(
            "{reason} (check the sink's URL and credentials)"
        ))),
        _ => Err(SendError::Reject { reason }),
    }
}

/// `Retry-After` in seconds or as an HTTP date, capped.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
            let ms = at.timestamp_millis() - chrono::Utc::now().timestamp_millis();
            Duration::from_millis(ms.max(0) as u64)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

pub fn quote(body: &str) -> String {
    let body = body.trim();
    match body.char_indices().nth(QUOTED_BODY_CHARS) {
        Some((i, _)) => format!("{}...", &body[..i]),
        None if body.is_empty() => "(empty answer)".into(),
        None => body.to_string(),
    }
}

/// An error with its causes ("error sending request: connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_as_delivered_retry_or_reject() {
        let mut h = HeaderMap::new();
        assert!(classify(StatusCode::ACCEPTED, &h, "").is_ok());
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, &h, "slow down"),
            Err(SendError::Retry {
                reason: "HTTP 429: slow down".into(),
                after: Some(Duration::from_secs(7))
            })
        );
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, &h, ""),
            Err(SendError::Reject { .. })
        ));
        assert!(matches!(
            classify(StatusCode::UNAUTHORIZED, &h, ""),
            Err(SendError::Retry { .. })
        ));
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO), "a date in the past");
    }
}
