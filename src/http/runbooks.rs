//! `/runbooks/` on the daemon's HTTP server: the runbooks under the rules directory, rendered
//! from Markdown to HTML, so that alert links work without a documentation site (SPEC §5:
//! when `[runbooks] base_url` is unset). Files are read on each request: an edited runbook
//! shows at once, and the handful of requests an incident makes cost nothing. The HTML is
//! sanitised (ammonia: raw HTML in Markdown passes through the renderer) and every page says
//! so again in a Content-Security-Policy: no script runs, nothing loads from elsewhere.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

/// The path prefix runbook links use.
pub const PREFIX: &str = "/runbooks";

/// Runbook pages need their inline style and images; nothing else, from nowhere else, and no
/// framing (a runbook page inside another site is a clickjacking aid).
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https: data:; \
                       base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// A page with the security headers every runbook answer carries.
fn html_page(html: String) -> Response {
    (
        [
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(html),
    )
        .into_response()
}

/// Routes serving `dir/<name>.md` at `/runbooks/<name>` and an index at `/runbooks/`.
pub fn runbook_routes(dir: PathBuf) -> Router {
    Router::new()
        .route("/runbooks", get(index))
        .route("/runbooks/", get(index))
        .route("/runbooks/{name}", get(page))
        .with_state(Arc::new(dir))
}

/// The base URL runbook links get when the daemon serves them: `http://<listen>/runbooks`,
/// with this machine's name when the server listens on every address.
pub fn served_base(listen: std::net::SocketAddr) -> String {
    let host = if listen.ip().is_unspecified() {
        crate::sink::hostname()
    } else if listen.is_ipv6() {
        format!("[{}]", listen.ip())
    } else {
        listen.ip().to_string()
    };
    format!("http://{host}:{}{PREFIX}", listen.port())
}

/// Runbook names are file stems: letters, digits, `-` and `_` (nothing that leaves the dir).
fn valid(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

async fn page(State(dir): State<Arc<PathBuf>>, Path(name): Path<String>) -> Response {
    let name = name.strip_suffix(".md").unwrap_or(&name).to_string();
    if !valid(&name) {
        return (StatusCode::NOT_FOUND, "no such runbook\n").into_response();
    }
    let path = dir.join(format!("{name}.md"));
    match tokio::fs::read_to_string(&path).await {
        Ok(markdown) => html_page(render(&name, &markdown)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("no runbook `{name}`; see {PREFIX}/ for the list\n"),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot read a runbook");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot read the runbook\n",
            )
                .into_response()
        }
    }
}

async fn index(State(dir): State<Arc<PathBuf>>) -> Response {
    let mut names = Vec::new();
    if let Ok(mut entries) = tokio::fs::read_dir(dir.as_path()).await {
        while let Ok(Some(e)) = entries.next_entry().await {
            let file = e.file_name().to_string_lossy().into_owned();
            if let Some(stem) = file.strip_suffix(".md")
                && valid(stem)
            {
                names.push(stem.to_string());
            }
        }
    }
    names.sort();
    let items: String = names
        .iter()
        .map(|n| format!("<li><a href=\"{PREFIX}/{n}\">{n}</a></li>"))
        .collect();
    html_page(page_html(
        "Runbooks",
        &format!("<h1>Runbooks</h1><ul>{items}</ul>"),
    ))
}

/// A runbook as a complete HTML page: Markdown rendered, then sanitised (scripts, event
/// handlers, `javascript:` links, forms and frames removed; links get `rel="noopener
/// noreferrer"`).
pub fn render(name: &str, markdown: &str) -> String {
    let mut body = String::new();
    let parser = pulldown_cmark::Parser::new_ext(markdown, pulldown_cmark::Options::all());
    pulldown_cmark::html::push_html(&mut body, parser);
    page_html(name, &ammonia::clean(&body))
}

fn page_html(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} - authwatch</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <style>body{{font-family:system-ui,sans-serif;max-width:50rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}\
         code,pre{{background:#f4f4f4}}pre{{padding:.5rem;overflow-x:auto}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.25rem .5rem}}</style>\
         </head><body>{body}<hr><p><a href=\"{PREFIX}/\">All runbooks</a></p></body></html>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_becomes_a_page_and_names_cannot_escape_the_directory() {
        let html = render(
            "x",
            "# Steps\n\n1. Lock the account\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
        );
        assert!(
            html.contains("<h1>Steps</h1>") && html.contains("<ol>"),
            "{html}"
        );
        assert!(html.contains("<table>"), "{html}");
        let hostile = render(
            "x",
            "# Steps\n\n<script>alert(1)</script>\n\n<img src=x onerror=\"alert(2)\">\n\n\
             [click](javascript:alert(3)) <iframe src=\"https://evil.example\"></iframe>\n",
        );
        for bad in ["<script", "onerror", "javascript:", "<iframe", "alert(1)"] {
            assert!(!hostile.contains(bad), "{bad} in {hostile}");
        }
        assert!(hostile.contains("<h1>Steps</h1>"), "{hostile}");
        assert!(valid("account-takeover") && !valid("../etc/passwd") && !valid(""));
        assert_eq!(
            served_base("127.0.0.1:9640".parse().unwrap()),
            "http://127.0.0.1:9640/runbooks"
        );
    }
}
