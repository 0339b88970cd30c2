//! reqwest errors as text safe to log and store: never the URL (its path or query may be a
//! credential, as a Slack webhook's is), always the causes, so "connection refused" is seen.
//! Shared by the HTTP sinks and the API pull sources.

/// A reqwest error's kind and causes, without its URL: "timed out: ...", "cannot connect: ...".
pub fn describe(e: reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    format!("{what}: {}", chain(&e.without_url()))
}

/// An error with its causes ("error sending request: connection refused").
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
