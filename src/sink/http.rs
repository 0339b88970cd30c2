//! What the HTTP sinks share: a client per sink (timeout, optional private CA, no redirects,
//! answers read up to `max_answer_bytes`) and the one reading of an HTTP answer: 2xx
//! delivered; 429, 408 and 5xx retried (with Retry-After); 401, 403, 404 and redirects retried
//! too, since they mean a credential or URL an operator can fix; 413 is a size refusal (bulk
//! sinks split the batch); other 4xx rejected, since the receiver would refuse the same alert
//! again. No error text carries a URL past its host: a Slack webhook's path is its secret.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};

use super::common::DeliveryPolicy;
use super::{Record, Results, SendError};

/// A receiver's answer is quoted in the dead letter and the log up to this many characters.
const QUOTED_BODY_CHARS: usize = 300;
/// Retry-After is obeyed up to an hour: a longer ask is more likely a broken receiver than a
/// plan, and `max_age` still bounds how long an alert is tried.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// A sink's HTTP client and the most of an answer it reads.
pub struct Client {
    inner: reqwest::Client,
    max_answer_bytes: usize,
}

/// A receiver's answer; `truncated` when its body was longer than `max_answer_bytes`.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
    pub truncated: bool,
}

/// A client with the sink's timeout, trusting `ca_file` in addition to the public roots.
/// Redirects are not followed: a redirect to another host would carry the sink's custom
/// headers and signature there (reqwest strips only `Authorization` and cookies), and a 301
/// or 302 turns a POST into a GET anyway. A redirect is reported for the operator to fix.
pub fn client(policy: &DeliveryPolicy, ca_file: Option<&Path>) -> Result<Client, String> {
    let mut builder = reqwest::Client::builder()
        .timeout(policy.timeout)
        .connect_timeout(policy.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("authwatch/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("ca_file {}: {e}", path.display()))?
        {
            builder = builder.add_root_certificate(cert);
        }
    }
    let inner = builder
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    Ok(Client {
        inner,
        max_answer_bytes: policy.max_answer_bytes,
    })
}

impl Client {
    pub fn post(&self, url: &str) -> RequestBuilder {
        self.inner.post(url)
    }

    /// Sends a request; its answer (body read up to the bound), or the transport failure.
    pub async fn send(&self, request: RequestBuilder) -> Result<Answer, SendError> {
        let (client, request) = request.build_split();
        let request = request.map_err(|e| SendError::Reject {
            reason: format!(
                "cannot build the request: {}",
                crate::http_error::chain(&e.without_url())
            ),
        })?;
        let url = request.url().clone();
        let mut response = client.execute(request).await.map_err(|e| {
            let text = crate::http_error::describe(e);
            SendError::unavailable(scrub(&text, &url))
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        let mut truncated = false;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = self.max_answer_bytes - body.len();
                    if chunk.len() > room {
                        body.extend_from_slice(&chunk[..room]);
                        truncated = true;
                        break; // the rest is dropped with the connection
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    let text = format!(
                        "reading the answer failed: {}",
                        crate::http_error::chain(&e.without_url())
                    );
                    return Err(SendError::unavailable(scrub(&text, &url)));
                }
            }
        }
        Ok(Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            truncated,
        })
    }

    /// Sends and reads the answer as one result.
    pub async fn deliver(&self, request: RequestBuilder) -> Result<(), SendError> {
        let a = self.send(request).await?;
        classify(a.status, &a.headers, &a.body)
    }
}

/// A URL as logs and dead letters may show it: scheme, host and port, no user, path or query
/// (a Slack webhook's path and many a webhook's query are the credential).
pub fn url_for_logs(url: &reqwest::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{}://{host}:{port}/...", url.scheme()),
        (Some(host), None) => format!("{}://{host}/...", url.scheme()),
        _ => format!("{}:...", url.scheme()),
    }
}

/// `text` with any trace of `url` past its host replaced, should a cause below reqwest quote it.
fn scrub(text: &str, url: &reqwest::Url) -> String {
    let mut out = text.replace(url.as_str(), &url_for_logs(url));
    for secret in [
        url.path(),
        url.query().unwrap_or(""),
        url.password().unwrap_or(""),
    ] {
        if secret.len() > 1 {
            out = out.replace(secret, "...");
        }
    }
    out
}

/// Whether an answer refuses the request for its size (413): bulk sinks then split the batch.
pub fn too_large(status: StatusCode) -> bool {
    status == StatusCode::PAYLOAD_TOO_LARGE
}

/// What one bulk request came to: a result per alert, or a refusal of the whole body for size.
pub enum Bulk {
    Results(Results),
    TooLarge(String),
}

/// Sends `alerts` with `send`; a batch refused for size is split in halves and each half sent
/// on its own (and split again), so a 413 costs log2(batch) requests rather than the batch. A
/// single alert refused for size is rejected: it will never fit. After a half fails with a
/// retry, the halves after it are not sent (the worker retries from the first failure).
pub async fn split_when_too_large<'a, F, Fut>(alerts: &'a [Arc<Record>], mut send: F) -> Results
where
    F: FnMut(&'a [Arc<Record>]) -> Fut,
    Fut: Future<Output = Bulk>,
{
    let mut out: Results = Vec::with_capacity(alerts.len());
    let mut parts: Vec<&'a [Arc<Record>]> = vec![alerts];
    while let Some(part) = parts.pop() {
        if out
            .iter()
            .any(|r| matches!(r, Err(e) if !matches!(e, SendError::Reject { .. })))
        {
            let e = SendError::unavailable("not sent: an earlier part of the batch failed");
            out.extend(std::iter::repeat_n(Err(e), part.len()));
            continue;
        }
        match send(part).await {
            Bulk::Results(results) => out.extend(results),
            Bulk::TooLarge(reason) if part.len() > 1 => {
                tracing::debug!(alerts = part.len(), %reason, "batch refused for size; splitting it");
                let (first, second) = part.split_at(part.len() / 2);
                parts.push(second);
                parts.push(first);
            }
            Bulk::TooLarge(reason) => out.push(Err(SendError::Reject {
                reason: format!("too large for the receiver even alone: {reason}"),
            })),
        }
    }
    out
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
        401 | 403 | 404 => Err(SendError::unavailable(format!(
            "{reason} (check the sink's URL and credentials)"
        ))),
        300..=399 => Err(SendError::unavailable(format!(
            "{reason} (a redirect, which authwatch does not follow: set the sink's URL to where it points)"
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
            Err(SendError::Unavailable { .. })
        ));
        assert!(matches!(
            classify(StatusCode::FOUND, &h, ""),
            Err(SendError::Unavailable { .. })
        ));
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO), "a date in the past");
    }

    #[test]
    fn urls_in_texts_keep_only_scheme_host_and_port() {
        let url: reqwest::Url =
            "https://u:pw@hooks.example.com:8443/services/T1/B2/s3cr3t?token=q5"
                .parse()
                .unwrap();
        assert_eq!(url_for_logs(&url), "https://hooks.example.com:8443/...");
        let text =
            format!("error sending request for url ({url}): /services/T1/B2/s3cr3t token=q5");
        let clean = scrub(&text, &url);
        for secret in ["s3cr3t", "q5", "pw"] {
            assert!(!clean.contains(secret), "{clean}");
        }
        assert!(clean.contains("hooks.example.com:8443"), "{clean}");
    }

    fn record(id: &str) -> Arc<Record> {
        Arc::new(Record {
            id: id.into(),
            ..Default::default()
        })
    }

    #[tokio::test]
    async fn a_batch_refused_for_size_is_split_until_it_fits_and_only_the_huge_alert_is_rejected() {
        let alerts: Vec<_> = ["a", "b", "huge", "d", "e"].map(record).into();
        let calls = std::sync::Mutex::new(Vec::new());
        let results = split_when_too_large(&alerts, |part| {
            let ids: Vec<String> = part.iter().map(|r| r.id.clone()).collect();
            calls.lock().unwrap().push(ids.join(","));
            async move {
                if ids.len() > 2 || ids.iter().any(|i| i == "huge") {
                    Bulk::TooLarge("HTTP 413".into())
                } else {
                    Bulk::Results(vec![Ok(()); ids.len()])
                }
            }
        })
        .await;
        assert_eq!(
            calls.into_inner().unwrap(),
            ["a,b,huge,d,e", "a,b", "huge,d,e", "huge", "d,e"]
        );
        assert!(
            results[0].is_ok() && results[1].is_ok() && results[3].is_ok() && results[4].is_ok()
        );
        assert!(
            matches!(&results[2], Err(SendError::Reject { reason }) if reason.contains("even alone"))
        );

        // After a part fails with a retry, the parts after it are not sent.
        let sent = std::sync::Mutex::new(0);
        let results = split_when_too_large(&alerts, |part| {
            *sent.lock().unwrap() += 1;
            let n = part.len();
            async move {
                if n > 2 {
                    Bulk::TooLarge("HTTP 413".into())
                } else {
                    Bulk::Results(vec![Err(SendError::retry("HTTP 503")); n])
                }
            }
        })
        .await;
        assert_eq!(
            *sent.lock().unwrap(),
            2,
            "the whole batch, then its first half"
        );
        assert_eq!(results.len(), 5);
        assert!(matches!(results[4], Err(SendError::Unavailable { .. })));
    }

    #[tokio::test]
    async fn an_endless_answer_is_read_up_to_the_bound() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(
                    b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 1073741824\r\n\r\n",
                )
                .await;
            let chunk = vec![b'x'; 65536];
            while s.write_all(&chunk).await.is_ok() {}
        });
        let policy = DeliveryPolicy {
            max_answer_bytes: 4096,
            timeout: Duration::from_secs(20),
            ..Default::default()
        };
        let c = client(&policy, None).unwrap();
        let started = std::time::Instant::now();
        let answer = c.send(c.post(&format!("http://{addr}/x"))).await.unwrap();
        assert!(answer.truncated);
        assert_eq!(answer.body.len(), 4096);
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
