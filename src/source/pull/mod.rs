//! Okta's System Log API and Auth0's Management API logs, polled on a thread of the source's
//! own: pages followed by their `next` links while a backlog lasts, then a request every
//! `poll_interval`; a 429 waits for the rate-limit reset, failures back off exponentially up
//! to `max_backoff`; each page goes to detection as one batch carrying the cursor after it,
//! which the next checkpoint stores with the engine state.

mod cursor;
mod fetch;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::{Duration, Instant};

use reqwest::Url;

use super::{Batch, Item};
use crate::config::{Provider, PullConfig, Secret};
use crate::state::{self, StateError, Store};
pub use cursor::{Cursor, Stored};
use fetch::{Failure, Page};

/// The first wait after a failure; it doubles with each failure in a row.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Waits are cut into slices this long, so a stop is seen promptly.
const SLICE: Duration = Duration::from_millis(100);
/// While the source may be behind, an empty batch at least this often tells detection that
/// input is still coming (see [`PullSource::wait`]).
const HEARTBEAT: Duration = Duration::from_millis(400);

pub struct PullSource {
    pub cfg: PullConfig,
    /// Where a previous run stopped, from the state store.
    pub resume: Option<Cursor>,
    /// Set to stop polling (shutdown).
    pub stop: Arc<AtomicBool>,
}

/// The state-store name of a provider's cursor (`s/okta_api`, `s/auth0_api`).
fn position_key(provider: Provider) -> Vec<u8> {
    state::source_key(provider.kind())
}

/// Reads the cursor a previous run checkpointed for this tenant, if any. A cursor stored for
/// another URL is ignored (with a warning): it means nothing to this tenant's API.
pub fn stored_cursor(store: &dyn Store, cfg: &PullConfig) -> Result<Option<Cursor>, StateError> {
    let Some(bytes) = store.get(&position_key(cfg.provider))? else {
        return Ok(None);
    };
    let Ok(stored) = serde_json::from_slice::<Stored>(&bytes) else {
        tracing::warn!("the stored API cursor is unreadable; starting from the API's beginning");
        return Ok(None);
    };
    if stored.url != cfg.url.as_str() {
        tracing::warn!(stored = %stored.url, "the stored API cursor belongs to another tenant URL; starting from the API's beginning");
        return Ok(None);
    }
    Ok(Some(stored.cursor))
}

/// The poll loop's state.
struct Poller {
    cfg: PullConfig,
    client: reqwest::Client,
    token: Secret,
    cursor: Cursor,
    /// The `next` link of the last page, followed while it is there.
    next: Option<Url>,
    /// More may be waiting at the API: true at a start, after a full page and after a failure.
    behind: bool,
    failures: u32,
    /// Records handed over in this run (their "line" numbers in logs).
    records: u64,
    stop: Arc<AtomicBool>,
    tx: SyncSender<Batch>,
}

impl PullSource {
    /// Polls until stopped or until detection is gone; returns an error only if the HTTP
    /// client cannot be built (the API's failures are waited out, never fatal).
    pub fn run(self, tx: SyncSender<Batch>) -> io::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let client = fetch::client(&self.cfg).map_err(io::Error::other)?;
        let cursor = match self.resume {
            Some(c) => {
                tracing::info!(url = %fetch::for_logs(&self.cfg.url), "resuming the API where the last checkpoint left it");
                c
            }
            None => Cursor::start(self.cfg.provider),
        };
        let mut poller = Poller {
            token: self.cfg.token.clone(),
            cfg: self.cfg,
            client,
            cursor,
            next: None,
            behind: true,
            failures: 0,
            records: 0,
            stop: self.stop,
            tx,
        };
        runtime.block_on(poller.run());
        Ok(())
    }
}

impl Poller {
    async fn run(&mut self) {
        let mut not_before: Option<Instant> = None;
        loop {
            if let Some(at) = not_before.take()
                && !self
                    .wait(at.saturating_duration_since(Instant::now()), self.behind)
                    .await
            {
                return;
            }
            if self.stopping() {
                return;
            }
            let url = match self.next.take() {
                Some(next) if self.cursor.follows_links() => next,
                _ => self.cursor.request(&self.cfg.url, self.cfg.page_size),
            };
            let auth = fetch::authorization(self.cfg.provider, &self.token);
            match fetch::fetch(&self.client, &self.cfg, &auth, &url).await {
                Ok(page) => {
                    if self.failures > 0 {
                        tracing::info!(url = %fetch::for_logs(&url), "the API answers again");
                    }
                    self.failures = 0;
                    let full = page.records.len() >= self.cfg.page_size;
                    not_before = page.exhausted.map(|d| {
                        let d = d.min(self.cfg.max_backoff);
                        tracing::info!(
                            wait_ms = d.as_millis() as u64,
                            "the API's rate-limit window is used up; waiting for its reset"
                        );
                        Instant::now() + d
                    });
                    if !self.hand_over(page) {
                        return;
                    }
                    self.behind = full;
                    if !full {
                        // Caught up: the next request after the poll interval, unless the
                        // rate limit asks for longer.
                        let at = Instant::now() + self.cfg.poll_interval;
                        not_before = Some(not_before.map_or(at, |t| t.max(at)));
                    }
                }
                Err(failure) => {
                    // The same request again (a `next` link is not lost by a failure).
                    if self.cursor.follows_links() {
                        self.next = Some(url.clone());
                    }
                    // Until the API answers, more may be waiting there: detection must not
                    // take the silence for a caught-up source.
                    self.behind = true;
                    let wait = self.after_failure(failure, &url);
                    not_before = Some(Instant::now() + wait);
                }
            }
        }
    }

    /// Sends a page's new records with the cursor after them; false once detection is gone.
    fn hand_over(&mut self, page: Page) -> bool {
        let before = self.cursor.clone();
        let mut items = Vec::with_capacity(page.records.len());
        for record in page.records {
            if self.cursor.take(&record) {
                self.records += 1;
                let raw: Box<str> = record.into();
                items.push(Item::Line(
                    raw.into_boxed_bytes().into_vec().into(),
                    self.records,
                ));
            }
        }
        // Auth0's first page (search mode, before any `from`) is followed by a `from` request,
        // never by a link it may carry.
        self.next = if before.follows_links() {
            page.next
        } else {
            None
        };
        if items.is_empty() && self.cursor == before {
            return true;
        }
        let stored = Stored {
            url: self.cfg.url.to_string(),
            cursor: self.cursor.clone(),
        };
        let position = serde_json::to_vec(&stored).expect("a cursor serialises");
        let format = self.cfg.provider.format();
        self.tx
            .send(Batch {
                items,
                positions: vec![(position_key(self.cfg.provider), position)],
                format: Some(format),
            })
            .is_ok()
    }

    /// Logs a failure and says how long to wait before trying again.
    fn after_failure(&mut self, failure: Failure, url: &Url) -> Duration {
        let shown = fetch::for_logs(url);
        self.failures = self.failures.saturating_add(1);
        let backoff = FIRST_BACKOFF
            .saturating_mul(1 << (self.failures - 1).min(20))
            .min(self.cfg.max_backoff);
        match failure {
            Failure::RateLimited(wait) => {
                // A throttle is not the API failing: it does not grow the backoff.
                self.failures -= 1;
                let wait = wait.unwrap_or(backoff).min(self.cfg.max_backoff);
                tracing::warn!(url = %shown, wait_ms = wait.as_millis() as u64, "the API is rate limiting (429); waiting for its reset");
                wait
            }
            Failure::Refused(why) => {
                self.reread_token();
                tracing::error!(url = %shown, wait_ms = backoff.as_millis() as u64, "the API refused the token ({why}); check token_env/token_file and the token's permissions (Okta: a read-only admin's API token; Auth0: read:logs)");
                backoff
            }
            Failure::Failed(why) => {
                tracing::warn!(url = %shown, wait_ms = backoff.as_millis() as u64, failures = self.failures, "pulling from the API failed: {why}; retrying");
                backoff
            }
        }
    }

    /// After a 401 or 403 the token file is read again: a job that renews tokens (Auth0
    /// access tokens expire) replaces the file, and the next request uses the new token.
    fn reread_token(&mut self) {
        let Some(path) = &self.cfg.token_file else {
            return;
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let value = text.trim_end_matches(['\r', '\n']);
                if !value.is_empty() && value != self.token.expose() {
                    tracing::info!(file = %path.display(), "read a new token from token_file");
                    self.token = Secret::new(value);
                }
            }
            Err(e) => tracing::warn!(file = %path.display(), "cannot read token_file again: {e}"),
        }
    }

    /// Sleeps `d` unless stopped (false: stop, or detection is gone). While the source may be
    /// behind (`heartbeat`), empty batches tell detection that input is still coming: a quiet
    /// source counts as caught up after a few seconds and event time then jumps to the wall
    /// clock, so the backlog after a long rate-limit wait or an outage would be judged late.
    async fn wait(&self, d: Duration, heartbeat: bool) -> bool {
        let end = Instant::now() + d;
        let mut beat = Instant::now();
        loop {
            if self.stopping() {
                return false;
            }
            if heartbeat && beat.elapsed() >= HEARTBEAT {
                beat = Instant::now();
                if let Err(TrySendError::Disconnected(_)) =
                    self.tx.try_send(Batch::without_position(Vec::new()))
                {
                    return false;
                }
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            tokio::time::sleep(left.min(SLICE)).await;
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}
