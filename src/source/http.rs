//! HTTP ingest (`[source] kind = "http"`): routes on the daemon's server that turn posted
//! batches into records for detection.
//!
//! | route | format | credential |
//! |---|---|---|
//! | `POST /v1/events` | native | `Authorization: Bearer <token>` |
//! | `POST /v1/ingest/auth0` | auth0 | the Authorization value set in the Auth0 custom webhook |
//! | `GET /v1/ingest/okta` | | none: Okta's one-time verification, echoed back |
//! | `POST /v1/ingest/okta` | okta | the header and secret set as the event hook's authentication |
//!
//! Each element of a batch is decoded from its bytes exactly as sent, in its route's format,
//! by the decode stage's `decode_batch` on the runtime's blocking pool (so requests decode in
//! parallel, beside detection), the way a file line is (same bad-input counting, same
//! fingerprints). A request is one
//! batch, handed over with `try_send` on the bounded channel. Each configured route has its
//! own share of that channel (and of the bodies read at once), so a client flooding one route
//! is answered 503 with `Retry-After` while the others still get their place; nothing is
//! buffered beyond it. The response (200) is sent only once the batch is processed and a
//! checkpoint covering it is durable (`Item::AckWhenDurable`), so a crash after a 200 loses
//! nothing; a batch not durable within `ack_timeout` is answered 503. Events that are bad on
//! their own (missing `ts`, an unknown type) are the pipeline's bad input, counted like bad
//! lines of a file; only a body that is not a batch at all is refused with 400, and one with
//! more than `max_events_per_body` events with 413.

use std::cell::Cell;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::header::{
    AUTHORIZATION, CONNECTION, CONTENT_LENGTH, RETRY_AFTER, WWW_AUTHENTICATE,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde_json::value::RawValue;
use tokio::sync::{Semaphore, oneshot, watch};

use super::{Ack, Batch, Item, decoding};
use crate::config::{HttpIngest, Secret};
use crate::normalize::Format;
use crate::pipeline::Decoder;
use crate::shared::Shared;

/// Request bodies read and split at once, shared evenly among the configured routes. Each may
/// be `max_body_bytes`, so this (with the channel's bound) caps the memory ingest can hold;
/// more concurrent requests wait.
const BODIES_IN_FLIGHT: usize = 8;
/// How long a request waits for one of those slots before it is told to retry.
const BODY_SLOT_WAIT: Duration = Duration::from_secs(5);
/// A client that has not sent its whole body by then is cut off (408), so slow senders
/// cannot hold the slots.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// What `Retry-After` tells a client when the pipeline is saturated: detection drains a
/// full queue in well under a second at the measured rates.
const RETRY_AFTER_SECS: u64 = 1;
/// The header Okta's one-time verification request carries the challenge in.
const OKTA_CHALLENGE: &str = "x-okta-verification-challenge";

/// Checkpoints made durable so far (the newest one's sequence number plus one), set by the
/// checkpoint writer's callback: a request whose batch a checkpoint covers waits for it here.
pub fn durable_checkpoints() -> (crate::state::OnDurable, watch::Receiver<u64>) {
    let (tx, rx) = watch::channel(0);
    let on_durable: crate::state::OnDurable = Box::new(move |seq, _| {
        tx.send_replace(seq + 1);
    });
    (on_durable, rx)
}

/// The capacity of the channel to detection: every configured route's share, so a route
/// within its share never finds the channel full.
pub fn queue_capacity(config: &HttpIngest) -> usize {
    share(config.queue_batches, config) * configured_routes(config)
}

fn configured_routes(config: &HttpIngest) -> usize {
    ROUTES
        .iter()
        .filter(|route| route.secret(config).0.is_some())
        .count()
        .max(1)
}

/// One route's part of `total`, at least 1.
fn share(total: usize, config: &HttpIngest) -> usize {
    (total / configured_routes(config)).max(1)
}

/// The ingest routes, to merge into the daemon's router.
pub fn routes(
    config: HttpIngest,
    decoder: Decoder,
    tx: SyncSender<Batch>,
    shared: Arc<Shared>,
    durable: watch::Receiver<u64>,
) -> Router {
    let shares = ROUTES.map(|_| Share {
        bodies: Semaphore::new(share(BODIES_IN_FLIGHT, &config)),
        batches: Arc::new(Semaphore::new(share(config.queue_batches, &config))),
    });
    let ingest = Arc::new(Ingest {
        config,
        decoder,
        tx,
        shared,
        shares,
        durable,
    });
    Router::new()
        .route("/v1/events", post(native))
        .route("/v1/ingest/auth0", post(auth0))
        .route("/v1/ingest/okta", post(okta).get(okta_verification))
        .with_state(ingest)
}

struct Ingest {
    config: HttpIngest,
    /// The daemon's decoder (its admission); each route decodes in its own format.
    decoder: Decoder,
    tx: SyncSender<Batch>,
    shared: Arc<Shared>,
    /// Per route (`Route::index`).
    shares: [Share; 3],
    durable: watch::Receiver<u64>,
}

/// A route's part of the bodies read at once and of the batches queued for detection: one
/// flooding client fills its route's share, not the queue that the others need.
struct Share {
    bodies: Semaphore,
    /// Held by a batch from its hand-over until a checkpoint covers it.
    batches: Arc<Semaphore>,
}

/// The three ingest routes differ in format, credential and body shape only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Native,
    Auth0,
    Okta,
}

const ROUTES: [Route; 3] = [Route::Native, Route::Auth0, Route::Okta];

impl Route {
    fn index(self) -> usize {
        self as usize
    }

    fn format(self) -> Format {
        match self {
            Route::Native => Format::Native,
            Route::Auth0 => Format::Auth0,
            Route::Okta => Format::Okta,
        }
    }

    /// The configured credential, and the `[source]` keys that set it (for the 404 message).
    fn secret(self, config: &HttpIngest) -> (Option<&Secret>, &'static str) {
        match self {
            Route::Native => (config.token.as_ref(), "token_env or token_file"),
            Route::Auth0 => (
                config.auth0_token.as_ref(),
                "auth0_token_env or auth0_token_file",
            ),
            Route::Okta => (
                config.okta_secret.as_ref(),
                "okta_secret_env or okta_secret_file",
            ),
        }
    }

    /// The header the credential arrives in.
    fn credential_header(self, config: &HttpIngest) -> &str {
        match self {
            Route::Native | Route::Auth0 => AUTHORIZATION.as_str(),
            Route::Okta => &config.okta_header,
        }
    }
}

async fn native(State(ingest): State<Arc<Ingest>>, request: Request) -> Response {
    accept(&ingest, Route::Native, request).await
}

async fn auth0(State(ingest): State<Arc<Ingest>>, request: Request) -> Response {
    accept(&ingest, Route::Auth0, request).await
}

async fn okta(State(ingest): State<Arc<Ingest>>, request: Request) -> Response {
    accept(&ingest, Route::Okta, request).await
}

/// Okta's one-time verification: echo the challenge header as `{"verification": ...}`. No
/// credential is required: the answer only repeats what the caller sent and changes nothing,
/// and a hook must be verifiable whatever headers Okta adds to this request.
async fn okta_verification(State(ingest): State<Arc<Ingest>>, headers: HeaderMap) -> Response {
    if let Err(refused) = configured(&ingest.config, Route::Okta) {
        return refused.into_response();
    }
    match headers.get(OKTA_CHALLENGE).map(HeaderValue::to_str) {
        Some(Ok(challenge)) => {
            axum::Json(serde_json::json!({ "verification": challenge })).into_response()
        }
        _ => Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("the verification request needs the {OKTA_CHALLENGE} header"),
        )
        .into_response(),
    }
}

/// The whole life of an ingest request: credential, readiness, body, shape, hand-over.
async fn accept(ingest: &Ingest, route: Route, request: Request) -> Response {
    match try_accept(ingest, route, request).await {
        Ok(accepted) => {
            tracing::debug!(?route, accepted, "batch accepted");
            axum::Json(serde_json::json!({ "accepted": accepted })).into_response()
        }
        Err(refused) => {
            tracing::debug!(?route, status = %refused.status, reason = %refused.message, "batch refused");
            refused.into_response()
        }
    }
}

async fn try_accept(ingest: &Ingest, route: Route, request: Request) -> Result<usize, Refusal> {
    let share = &ingest.shares[route.index()];
    let body = receive(ingest, route, share, request)
        .await
        .map_err(Refusal::closing)?;
    // Each record is a slice of the body (no copy per event); the body is freed once the
    // last of them is decoded.
    let body = bytes::Bytes::from(body);
    let items = records(route, &body, ingest.config.max_events_per_body)?;
    drop(body);
    let accepted = items.len();
    if accepted == 0 {
        return Ok(0);
    }
    // Decoded here, on the runtime's blocking pool, so requests decode in parallel beside
    // detection instead of one after another on the detection thread.
    let decoder = ingest.decoder;
    let lines = Batch {
        items,
        positions: Vec::new(),
        format: Some(route.format()),
    };
    let mut items =
        tokio::task::spawn_blocking(move || decoding::decode_batch(decoder, "http", lines).items)
            .await
            .map_err(|_| Refusal::retry("authwatch is stopping"))?;
    let place = share.batches.clone().try_acquire_owned().map_err(|_| {
        Refusal::retry(
            "this route's share of the detection queue is full (the pipeline is saturated)",
        )
    })?;
    let (reply, covered) = oneshot::channel();
    items.push(Item::AckWhenDurable(Ack {
        reply,
        share: place,
    }));
    match ingest.tx.try_send(Batch::without_position(items)) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => return Err(Refusal::retry("the pipeline is saturated")),
        Err(TrySendError::Disconnected(_)) => return Err(Refusal::retry("authwatch is stopping")),
    }
    let mut durable = ingest.durable.clone();
    let durable = async move {
        let seq = covered.await.map_err(|_| "authwatch is stopping")?;
        durable
            .wait_for(|&done| done > seq)
            .await
            .map(drop)
            .map_err(|_| "authwatch is stopping")
    };
    match tokio::time::timeout(ingest.config.ack_timeout, durable).await {
        Ok(Ok(())) => Ok(accepted),
        Ok(Err(why)) => Err(Refusal::retry(why)),
        Err(_) => Err(Refusal::retry(
            "the batch was not checkpointed within [source] ack_timeout",
        )),
    }
}

/// Everything before the body is split: credential, readiness, size, then the body itself.
/// A refusal here leaves (part of) the body unread, so the connection is closed after it.
async fn receive(
    ingest: &Ingest,
    route: Route,
    share: &Share,
    request: Request,
) -> Result<Vec<u8>, Refusal> {
    let config = &ingest.config;
    authorize(config, route, request.headers())?;
    if !ingest.shared.ready.load(Ordering::Relaxed) || ingest.shared.stopping() {
        return Err(Refusal::retry("authwatch is starting or stopping"));
    }
    let declared = declared_length(request.headers());
    if declared.is_some_and(|n| n > config.max_body_bytes) {
        return Err(Refusal::too_large(config.max_body_bytes));
    }
    // Waiting for a slot holds no body in memory: it is read only once the slot is ours.
    let _slot = tokio::time::timeout(BODY_SLOT_WAIT, share.bodies.acquire())
        .await
        .map_err(|_| Refusal::retry("too many requests are being read"))?
        .map_err(|_| Refusal::retry("authwatch is stopping"))?;
    tokio::time::timeout(
        BODY_READ_TIMEOUT,
        read_body(request.into_body(), declared, config.max_body_bytes),
    )
    .await
    .map_err(|_| Refusal::new(StatusCode::REQUEST_TIMEOUT, "the body took too long"))?
}

/// 404 for a route whose credential is not configured (it cannot be used), 401 for a
/// missing or wrong credential.
fn authorize(config: &HttpIngest, route: Route, headers: &HeaderMap) -> Result<(), Refusal> {
    let secret = configured(config, route)?;
    let given = headers
        .get(route.credential_header(config))
        .map(HeaderValue::as_bytes);
    if given.is_some_and(|value| credential_matches(secret, route, value)) {
        return Ok(());
    }
    let mut refusal = Refusal::new(
        StatusCode::UNAUTHORIZED,
        format!(
            "missing or wrong credential in the {} header",
            route.credential_header(config)
        ),
    );
    if route == Route::Native {
        refusal.challenge = true;
    }
    Err(refusal)
}

fn configured(config: &HttpIngest, route: Route) -> Result<&Secret, Refusal> {
    match route.secret(config) {
        (Some(secret), _) => Ok(secret),
        (None, keys) => Err(Refusal::new(
            StatusCode::NOT_FOUND,
            format!("this route is not configured; set [source] {keys}"),
        )),
    }
}

/// Native requests send `Bearer <token>`. Auth0 and Okta send the header value exactly as
/// it was typed into their consoles, which may or may not start with `Bearer `; both forms
/// are accepted so the secret can be configured either way. Both comparisons always run.
fn credential_matches(secret: &Secret, route: Route, value: &[u8]) -> bool {
    let token = strip_bearer(value);
    match route {
        Route::Native => token.is_some_and(|t| secret.matches(t)),
        Route::Auth0 | Route::Okta => {
            let exact = secret.matches(value);
            let bare = token.is_some_and(|t| secret.matches(t));
            exact | bare
        }
    }
}

/// The token after a `Bearer ` scheme (the scheme is case-insensitive, RFC 7235).
fn strip_bearer(value: &[u8]) -> Option<&[u8]> {
    const SCHEME: &[u8] = b"bearer ";
    (value.len() > SCHEME.len() && value[..SCHEME.len()].eq_ignore_ascii_case(SCHEME))
        .then(|| value[SCHEME.len()..].trim_ascii())
}

fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Reads the body, refusing it as soon as it passes `limit` (a chunked body has no
/// Content-Length to check up front). A declared length (already checked against the
/// limit) sizes the buffer once.
async fn read_body(
    mut body: Body,
    declared: Option<usize>,
    limit: usize,
) -> Result<Vec<u8>, Refusal> {
    let mut buf = Vec::with_capacity(declared.unwrap_or(0));
    while let Some(frame) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|e| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(Refusal::too_large(limit));
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf)
}

/// The body splitting of the ingest route for `format` (native, auth0 or okta; `None` for a
/// format no route takes), as a request would meet it: the records, or the refusal's status
/// and message. Public for the fuzz harness (`tests/common/fuzz.rs`), which drives hostile
/// bodies through exactly this code.
pub fn split_body(
    format: Format,
    body: &[u8],
    max_events: usize,
) -> Option<Result<Vec<Item>, (u16, String)>> {
    let route = ROUTES.into_iter().find(|r| r.format() == format)?;
    let body = bytes::Bytes::copy_from_slice(body);
    Some(records(route, &body, max_events).map_err(|r| (r.status.as_u16(), r.message)))
}

/// Splits a body into one record per event, or says why it is not a batch (400) or is too
/// many events (413, found before more than `max` records are made).
fn records(route: Route, whole: &bytes::Bytes, max: usize) -> Result<Vec<Item>, Refusal> {
    let body: &[u8] = whole;
    let over = Cell::new(false);
    let shape = |message: String| {
        if over.get() {
            Refusal::too_many(max)
        } else {
            Refusal::new(StatusCode::BAD_REQUEST, message)
        }
    };
    let elements = match (route, first_byte(body)) {
        (_, None) => {
            return Err(shape(
                "the body is empty; send a JSON array of events".into(),
            ));
        }
        (_, Some(b'[')) => array(body, max, &over).map_err(shape)?,
        (Route::Okta, Some(b'{')) => okta_hook(body, max, &over).map_err(shape)?,
        (Route::Native | Route::Auth0, Some(b'{')) => return object_or_lines(whole, max),
        (Route::Okta, Some(_)) => {
            return Err(shape(
                "expected an Okta event hook body, {\"data\": {\"events\": [...]}}".into(),
            ));
        }
        (_, Some(_)) => {
            return Err(shape(
                "expected a JSON array of events, one event object, or NDJSON (one event \
                 object per line)"
                    .into(),
            ));
        }
    };
    Ok(elements
        .into_iter()
        .zip(1..)
        .map(|(raw, n)| Item::Line(whole.slice_ref(raw.get().as_bytes()), n))
        .collect())
}

/// A JSON array read element by element, refused as soon as it holds more than `max`
/// (setting `over`): a body of tiny elements never becomes more records than the bound.
struct Bounded<'a> {
    max: usize,
    over: &'a Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for Bounded<'_> {
    type Value = Vec<&'de RawValue>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Bounded<'_> {
    type Value = Vec<&'de RawValue>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(raw) = seq.next_element::<&RawValue>()? {
            if out.len() == self.max {
                self.over.set(true);
                return Err(serde::de::Error::custom("too many events"));
            }
            out.push(raw);
        }
        Ok(out)
    }
}

fn bounded_array<'a>(
    json: &'a [u8],
    max: usize,
    over: &Cell<bool>,
) -> Result<Vec<&'a RawValue>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let elements = Bounded { max, over }.deserialize(&mut de)?;
    de.end()?;
    Ok(elements)
}

fn first_byte(body: &[u8]) -> Option<u8> {
    body.iter().copied().find(|b| !b.is_ascii_whitespace())
}

fn array<'a>(body: &'a [u8], max: usize, over: &Cell<bool>) -> Result<Vec<&'a RawValue>, String> {
    bounded_array(body, max, over).map_err(|e| format!("the body is not a JSON array: {e}"))
}

/// Okta event hooks deliver `{"data": {"events": [...]}}` plus envelope fields we ignore.
fn okta_hook<'a>(
    body: &'a [u8],
    max: usize,
    over: &Cell<bool>,
) -> Result<Vec<&'a RawValue>, String> {
    #[derive(Deserialize)]
    struct Hook<'a> {
        #[serde(borrow)]
        data: HookData<'a>,
    }
    #[derive(Deserialize)]
    struct HookData<'a> {
        #[serde(borrow)]
        events: &'a RawValue,
    }
    serde_json::from_slice::<Hook>(body)
        .and_then(|hook| bounded_array(hook.data.events.get().as_bytes(), max, over))
        .map_err(|e| {
            format!("expected an Okta event hook body, {{\"data\": {{\"events\": [...]}}}}: {e}")
        })
}

/// A body starting with `{`: one event (possibly pretty-printed, as Auth0's "JSON object"
/// format sends), else NDJSON. A first line that is not JSON means the body is not a batch
/// (400); a later bad line is one bad event among good ones, counted by the pipeline.
fn object_or_lines(whole: &bytes::Bytes, max: usize) -> Result<Vec<Item>, Refusal> {
    let body: &[u8] = whole;
    if serde_json::from_slice::<&RawValue>(body).is_ok() {
        return Ok(vec![Item::Line(whole.slice_ref(body.trim_ascii()), 1)]);
    }
    let mut lines = body
        .split(|&b| b == b'\n')
        .zip(1..)
        .filter(|(line, _)| !line.trim_ascii().is_empty())
        .map(|(line, n)| (line.trim_ascii(), n));
    if let Some((first, n)) = lines.clone().next()
        && let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(first)
    {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("the body is neither a JSON object nor NDJSON: line {n}: {e}"),
        ));
    }
    if lines.clone().nth(max).is_some() {
        return Err(Refusal::too_many(max));
    }
    Ok(lines
        .by_ref()
        .map(|(line, n)| Item::Line(whole.slice_ref(line), n))
        .collect())
}

/// A refused request: status and reason, as `{"error": reason}`.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    message: String,
    /// Adds `WWW-Authenticate: Bearer` (a 401 on the bearer-token route).
    challenge: bool,
    /// Adds `Connection: close`: the body was not read to its end, so the connection cannot
    /// carry another request (a client that reused it would fail).
    close: bool,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            message: message.into(),
            challenge: false,
            close: false,
        }
    }

    fn closing(mut self) -> Refusal {
        self.close = true;
        self
    }

    /// 503 with `Retry-After`: the request was fine, try it again shortly.
    fn retry(message: &str) -> Refusal {
        Refusal::new(StatusCode::SERVICE_UNAVAILABLE, format!("{message}; retry"))
    }

    fn too_many(max: usize) -> Refusal {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body holds more than {max} events ([source] max_events_per_body); send \
                 smaller batches"
            ),
        )
    }

    fn too_large(limit: usize) -> Refusal {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is over {limit} bytes ([source] max_body_bytes); send smaller batches"
            ),
        )
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            axum::Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        if self.challenge {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.close {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(route: Route, body: &[u8], max: usize) -> Result<Vec<Item>, Refusal> {
        super::records(route, &bytes::Bytes::copy_from_slice(body), max)
    }

    fn lines(items: &[Item]) -> Vec<String> {
        items
            .iter()
            .map(|item| match item {
                Item::Line(bytes, n) => format!("{n}:{}", String::from_utf8_lossy(bytes)),
                _ => panic!("the HTTP source hands over lines only"),
            })
            .collect()
    }

    #[test]
    fn arrays_give_each_element_exactly_as_sent() {
        let body = br#" [ {"a": 1}, {"b" :[2, 3]}, "x", 4 ] "#;
        let items = records(Route::Native, body, 100).unwrap();
        assert_eq!(
            lines(&items),
            ["1:{\"a\": 1}", "2:{\"b\" :[2, 3]}", "3:\"x\"", "4:4"]
        );
        assert!(records(Route::Auth0, b"[]", 100).unwrap().is_empty());
    }

    #[test]
    fn objects_and_ndjson_are_told_apart() {
        let pretty = b"{\n  \"a\": 1\n}\n";
        assert_eq!(
            lines(&records(Route::Native, pretty, 100).unwrap()),
            ["1:{\n  \"a\": 1\n}"]
        );
        let ndjson = b"{\"a\":1}\n\n{\"b\":2}\r\nnot json\n";
        assert_eq!(
            lines(&records(Route::Auth0, ndjson, 100).unwrap()),
            ["1:{\"a\":1}", "3:{\"b\":2}", "4:not json"]
        );
    }

    #[test]
    fn bodies_that_are_not_batches_are_refused_with_the_reason() {
        for (route, body, says) in [
            (Route::Native, &b""[..], "empty"),
            (Route::Native, b"  \n", "empty"),
            (Route::Native, b"hello", "JSON array"),
            (Route::Native, b"[{\"a\":1}", "not a JSON array"),
            (
                Route::Auth0,
                b"{\"a\":\n1",
                "neither a JSON object nor NDJSON",
            ),
            (Route::Okta, b"{\"events\": []}", "data"),
            (Route::Okta, b"{\"data\": {\"events\": {}}}", "data"),
            (Route::Okta, b"42", "event hook"),
        ] {
            let Err(err) = records(route, body, 100) else {
                panic!("{route:?} {body:?} was accepted");
            };
            assert_eq!(err.status, StatusCode::BAD_REQUEST);
            assert!(err.message.contains(says), "{route:?} {body:?}: {err:?}");
        }
    }

    #[test]
    fn okta_hooks_give_their_events_and_arrays_are_accepted_too() {
        let body =
            br#"{"eventType":"com.okta.event_hook","data":{"events":[{"uuid":"1"},{"uuid":"2"}]}}"#;
        assert_eq!(
            lines(&records(Route::Okta, body, 100).unwrap()),
            ["1:{\"uuid\":\"1\"}", "2:{\"uuid\":\"2\"}"]
        );
        assert_eq!(records(Route::Okta, b"[{}]", 100).unwrap().len(), 1);
    }

    #[test]
    fn a_body_of_tiny_elements_is_refused_past_the_event_cap_in_every_shape() {
        let tiny = |n: usize| format!("[{}]", vec!["{}"; n].join(","));
        assert_eq!(
            records(Route::Native, tiny(3).as_bytes(), 3).unwrap().len(),
            3
        );
        let hook = |n: usize| format!("{{\"data\":{{\"events\":{}}}}}", tiny(n));
        assert_eq!(
            records(Route::Okta, hook(3).as_bytes(), 3).unwrap().len(),
            3
        );
        let ndjson = |n: usize| "{}\n".repeat(n);
        assert_eq!(
            records(Route::Auth0, ndjson(3).as_bytes(), 3)
                .unwrap()
                .len(),
            3
        );
        // Four megabytes of `{}`: refused, without making a record per element first.
        let huge = tiny((4 << 20) / 3);
        for (route, body) in [
            (Route::Native, tiny(4)),
            (Route::Native, huge),
            (Route::Okta, hook(4)),
            (Route::Auth0, ndjson(4)),
        ] {
            let Err(err) = records(route, body.as_bytes(), 3) else {
                panic!("{route:?}: accepted over the cap");
            };
            assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE, "{err:?}");
            assert!(err.message.contains("max_events_per_body"), "{err:?}");
        }
    }

    #[test]
    fn each_configured_route_gets_its_share_of_the_queue() {
        let mut config = HttpIngest {
            token: Some(Secret::new("a")),
            auth0_token: None,
            okta_header: "Authorization".into(),
            okta_secret: None,
            max_body_bytes: 1,
            queue_batches: 16,
            max_events_per_body: 1,
            ack_timeout: Duration::from_secs(1),
        };
        assert_eq!((share(16, &config), queue_capacity(&config)), (16, 16));
        config.auth0_token = Some(Secret::new("b"));
        config.okta_secret = Some(Secret::new("c"));
        assert_eq!((share(16, &config), queue_capacity(&config)), (5, 15));
        config.queue_batches = 1;
        assert_eq!((share(1, &config), queue_capacity(&config)), (1, 3));
    }

    #[test]
    fn credentials_must_match_in_the_form_each_route_uses() {
        let secret = Secret::new("s3cret");
        assert!(credential_matches(&secret, Route::Native, b"Bearer s3cret"));
        assert!(credential_matches(&secret, Route::Native, b"bearer s3cret"));
        assert!(!credential_matches(&secret, Route::Native, b"s3cret"));
        assert!(!credential_matches(&secret, Route::Native, b"Bearer s3cre"));
        assert!(credential_matches(&secret, Route::Auth0, b"s3cret"));
        assert!(credential_matches(&secret, Route::Auth0, b"Bearer s3cret"));
        assert!(!credential_matches(&secret, Route::Okta, b"Bearer"));
        assert!(!credential_matches(&secret, Route::Okta, b""));
        let typed_with_scheme = Secret::new("Bearer abc");
        assert!(credential_matches(
            &typed_with_scheme,
            Route::Auth0,
            b"Bearer abc"
        ));
    }
}
