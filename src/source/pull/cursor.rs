//! Where an API source has read up to, per provider: the first request after a start, and
//! which records of a page are new. Stored in the state with the checkpoint (`s/okta_api`,
//! `s/auth0_api`), so a restart resumes after the last record the engine state covers.

use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::config::Provider;

/// Okta: the newest `published` handed over and the `uuid`s published at that instant.
/// `since` is inclusive, so a restart asks from that instant and skips the records it lists;
/// records published earlier but stored later (Okta's log is eventually consistent) may come
/// again and are dropped by the engine's event-id dedup, which the same checkpoint holds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OktaCursor {
    pub since: Option<String>,
    pub seen: Vec<String>,
}

/// Auth0: the `log_id` of the last record handed over; `from` is exclusive.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Auth0Cursor {
    pub from: Option<String>,
}

/// A provider's cursor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cursor {
    Okta(OktaCursor),
    Auth0(Auth0Cursor),
}

/// What the state holds: the cursor and the tenant it belongs to, so a cursor is never used
/// against another tenant's API.
#[derive(Debug, Serialize, Deserialize)]
pub struct Stored {
    pub url: String,
    pub cursor: Cursor,
}

/// The most Okta ids an Okta cursor keeps for its one instant. Records at the same millisecond
/// are few in practice; past this the list (stored with every checkpoint, searched per
/// record) stops growing, and a record served again beyond it is still dropped by the
/// engine's event-id dedup (the uuid is the event's id), whose state is in the same checkpoint.
const MAX_SEEN_AT_ONE_INSTANT: usize = 10_000;

/// The fields of an event a cursor looks at; the rest of the record is skipped unparsed.
#[derive(Default, Deserialize)]
struct Head {
    uuid: Option<String>,
    published: Option<String>,
    log_id: Option<String>,
    data: Option<Box<Head>>,
}

impl Cursor {
    pub fn start(provider: Provider) -> Cursor {
        match provider {
            Provider::Okta => Cursor::Okta(OktaCursor::default()),
            Provider::Auth0 => Cursor::Auth0(Auth0Cursor::default()),
        }
    }

    /// The request that continues from here, when there is no `next` link to follow (the
    /// first request after a start). Okta: ascending from `since` (without one, Okta's
    /// default of seven days back). Auth0: after `from`; without one, the oldest page of the
    /// tenant's retention in date order, whose last record starts the checkpoint paging.
    pub fn request(&self, base: &Url, page_size: usize) -> Url {
        let mut url = endpoint(base, self.path());
        {
            let mut q = url.query_pairs_mut();
            match self {
                Cursor::Okta(c) => {
                    q.append_pair("sortOrder", "ASCENDING");
                    q.append_pair("limit", &page_size.to_string());
                    if let Some(since) = &c.since {
                        q.append_pair("since", since);
                    }
                }
                Cursor::Auth0(Auth0Cursor { from: Some(from) }) => {
                    q.append_pair("from", from);
                    q.append_pair("take", &page_size.to_string());
                }
                Cursor::Auth0(Auth0Cursor { from: None }) => {
                    q.append_pair("sort", "date:1");
                    q.append_pair("page", "0");
                    q.append_pair("per_page", &page_size.to_string());
                }
            }
        }
        url
    }

    fn path(&self) -> &'static str {
        match self {
            Cursor::Okta(_) => "api/v1/logs",
            Cursor::Auth0(_) => "api/v2/logs",
        }
    }

    /// Whether a `next` link may be followed from here. Auth0's search mode (no `from` yet)
    /// pages by number, not by checkpoint; its first page is followed by a `from` request.
    pub fn follows_links(&self) -> bool {
        !matches!(self, Cursor::Auth0(Auth0Cursor { from: None }))
    }

    /// Moves past one record of a page; false when the record was handed over before (the
    /// overlap of Okta's inclusive `since`). A record the cursor cannot place (no id or
    /// time) is handed over without moving: the normaliser counts it as bad input.
    pub fn take(&mut self, record: &RawValue) -> bool {
        let head: Head = serde_json::from_str(record.get()).unwrap_or_default();
        match self {
            Cursor::Okta(c) => {
                let (Some(uuid), Some(published)) = (head.uuid, head.published) else {
                    return true;
                };
                let Some(at) = millis(&published) else {
                    return true;
                };
                match c.since.as_deref().and_then(millis) {
                    Some(since) if at == since => {
                        if c.seen.contains(&uuid) {
                            return false;
                        }
                        if c.seen.len() < MAX_SEEN_AT_ONE_INSTANT {
                            c.seen.push(uuid);
                        }
                    }
                    // Published before the newest seen (stored late): since stays, which is
                    // safe because a polling `since` bounds the time records were stored.
                    Some(since) if at < since => {}
                    _ => {
                        c.since = Some(published);
                        c.seen = vec![uuid];
                    }
                }
                true
            }
            Cursor::Auth0(c) => {
                let id = head.log_id.or_else(|| head.data.and_then(|d| d.log_id));
                if let Some(id) = id {
                    c.from = Some(id);
                }
                true
            }
        }
    }
}

/// `base` with the API path appended to its own (a proxy may serve the API under a prefix).
pub fn endpoint(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!("{}/{path}", base.path().trim_end_matches('/'));
    url.set_path(&joined);
    url.set_query(None);
    url
}

fn millis(ts: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(ts)
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_string()).unwrap()
    }

    fn okta(uuid: &str, at: &str) -> Box<RawValue> {
        raw(&format!(
            r#"{{"uuid":"{uuid}","published":"{at}","eventType":"x"}}"#
        ))
    }

    #[test]
    fn the_ids_kept_for_one_instant_are_bounded() {
        let mut c = Cursor::start(Provider::Okta);
        let at = "2026-03-02T09:00:00.211Z";
        for i in 0..MAX_SEEN_AT_ONE_INSTANT + 50 {
            assert!(c.take(&okta(&format!("u{i}"), at)));
        }
        let Cursor::Okta(okta_cursor) = &c else {
            unreachable!("an Okta cursor")
        };
        assert_eq!(okta_cursor.seen.len(), MAX_SEEN_AT_ONE_INSTANT);
        assert!(
            !c.take(&okta("u0", at)),
            "ids within the bound are still skipped"
        );
    }

    #[test]
    fn okta_skips_what_it_saw_at_the_inclusive_since_and_nothing_else() {
        let mut c = Cursor::start(Provider::Okta);
        let t1 = "2026-03-02T09:00:00.211Z";
        let t2 = "2026-03-02T09:00:01.000Z";
        assert!(c.take(&okta("a", t1)));
        assert!(c.take(&okta("b", t2)));
        assert!(c.take(&okta("c", t2)));
        // A restart here asks `since=t2` and gets b, c again, then d at the same instant.
        let base = Url::parse("https://acme.okta.com").unwrap();
        let url = c.request(&base, 2);
        assert_eq!(
            url.as_str(),
            "https://acme.okta.com/api/v1/logs?sortOrder=ASCENDING&limit=2&since=2026-03-02T09%3A00%3A01.000Z"
        );
        let stored = serde_json::to_vec(&c).unwrap();
        let mut again: Cursor = serde_json::from_slice(&stored).unwrap();
        assert!(!again.take(&okta("b", t2)));
        assert!(!again.take(&okta("c", t2)));
        assert!(again.take(&okta("d", t2)));
        // Stored late with an older time: handed over, and since does not go back.
        assert!(again.take(&okta("e", t1)));
        assert!(again.take(&okta("f", "2026-03-02T09:00:02Z")));
        assert_eq!(
            again,
            Cursor::Okta(OktaCursor {
                since: Some("2026-03-02T09:00:02Z".into()),
                seen: vec!["f".into()]
            })
        );
        // No uuid or time: handed over (to be counted bad), cursor unchanged.
        assert!(again.take(&raw(r#"{"eventType":"x"}"#)));
        assert!(again.take(&raw("[1]")));
    }

    #[test]
    fn auth0_continues_from_the_last_log_id_wrapped_or_bare() {
        let base = Url::parse("https://acme.eu.auth0.com/").unwrap();
        let mut c = Cursor::start(Provider::Auth0);
        assert!(!c.follows_links());
        assert_eq!(
            c.request(&base, 100).as_str(),
            "https://acme.eu.auth0.com/api/v2/logs?sort=date%3A1&page=0&per_page=100"
        );
        assert!(c.take(&raw(r#"{"log_id":"900a","type":"s"}"#)));
        assert!(c.take(&raw(r#"{"data":{"log_id":"900b","type":"s"}}"#)));
        assert!(c.follows_links());
        assert_eq!(
            c.request(&base, 100).as_str(),
            "https://acme.eu.auth0.com/api/v2/logs?from=900b&take=100"
        );
    }

    #[test]
    fn the_api_path_goes_after_a_proxy_prefix() {
        let base = Url::parse("http://127.0.0.1:8080/okta/").unwrap();
        assert_eq!(
            endpoint(&base, "api/v1/logs").as_str(),
            "http://127.0.0.1:8080/okta/api/v1/logs"
        );
    }
}
