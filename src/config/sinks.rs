//! `[[sink]]` entries: routing, delivery policy and each kind's own keys, validated with every
//! error collected. Nothing here touches the network: URLs, addresses, mailboxes and CA files
//! are checked for form (and readability) only, so `check` can run anywhere.

use std::path::PathBuf;
use std::time::Duration;

use super::Routing;
use super::raw::RawSink;
use super::secret::{self, Secret};
use crate::rule::Severity;

/// A request that has not been answered in 10 s is treated as a failure and retried: long
/// enough for a loaded SIEM, short enough that a hung receiver is noticed within a retry cycle.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// An alert that could not be delivered for a day goes to the dead letters: by then a person
/// must look at it (the outage is no longer transient), and `redrive` sends it again.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// First retry after a failure; doubled per consecutive failure (with jitter) up to the max.
pub const DEFAULT_RETRY_INITIAL: Duration = Duration::from_secs(1);
/// Longest wait between retries: a receiver that comes back is used within 5 minutes.
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(300);
/// Alerts per request for the bulk APIs (Splunk HEC, Elasticsearch `_bulk`): a backlog after
/// an outage drains in few requests, each far below the receivers' body limits.
pub const DEFAULT_BATCH_SIZE: usize = 100;
/// Tries of one alert that the receiver answered with a failure (5xx, 408, an item error)
/// before it goes to the dead letters and the sink moves on: at the default backoff about ten
/// minutes, the last five as single-alert probes (the breaker is open), so a receiver that
/// keeps failing on one large or malformed alert holds the sink minutes, not `max_age`. Failures
/// that say nothing about the alert (no connection, a timeout, 401/403/404, a Retry-After) do
/// not count: an outage is bounded by `max_age` alone.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;
/// The most of a receiver's answer read: a 10,000-item bulk answer with an error per item is
/// about 5 MB; a receiver that streams more is not waited for, nor held in memory.
pub const DEFAULT_MAX_ANSWER_BYTES: usize = 16 << 20;
/// The PagerDuty Events API v2 endpoint.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// Every kind a `[[sink]]` may name.
pub const SINK_KINDS: [&str; 9] = [
    "stdout",
    "file",
    "webhook",
    "splunk_hec",
    "elasticsearch",
    "syslog",
    "pagerduty",
    "slack",
    "email",
];

#[derive(Clone, Debug, PartialEq)]
pub struct SinkConfig {
    /// Stable name: the outbox keeps this sink's position and dead letters under it.
    pub name: String,
    pub kind: SinkKind,
    pub routing: Routing,
    pub delivery: DeliveryPolicy,
    /// Whether the evidence events go out with the alert (on-call kinds default to no).
    pub include_evidence: bool,
    /// `format` of the `stdout`, `file` and `webhook` sinks; `None` elsewhere and when unset
    /// (JSON, or for `stdout` a table when it is a terminal).
    pub format: Option<AlertFormat>,
}

/// How an alert is written: SPEC §3 JSON, a table for a person, or an OCSF Detection Finding
/// (`docs/ocsf.md`). Sinks take `json` and `ocsf` (`format`); `replay` and `run` take all
/// three (`--output`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertFormat {
    Json,
    Table,
    Ocsf,
}

impl AlertFormat {
    pub fn parse(s: &str) -> Option<AlertFormat> {
        match s {
            "json" => Some(AlertFormat::Json),
            "table" => Some(AlertFormat::Table),
            "ocsf" => Some(AlertFormat::Ocsf),
            _ => None,
        }
    }
}

impl SinkConfig {
    /// A sink with the defaults of its kind (the embedded configuration's stdout sink).
    pub fn new(name: &str, kind: SinkKind) -> SinkConfig {
        SinkConfig {
            name: name.into(),
            include_evidence: !kind.is_on_call(),
            format: None,
            kind,
            routing: Routing::default(),
            delivery: DeliveryPolicy::default(),
        }
    }
}

/// How hard a sink tries.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryPolicy {
    pub timeout: Duration,
    pub max_age: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// Alerts per request (bulk kinds); 1 elsewhere.
    pub batch_size: usize,
    /// Failures of one alert, counted as [`DEFAULT_MAX_ATTEMPTS`] says, before it is dead-lettered.
    pub max_attempts: u32,
    /// The most of an HTTP answer read.
    pub max_answer_bytes: usize,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            timeout: DEFAULT_TIMEOUT,
            max_age: DEFAULT_MAX_AGE,
            retry_initial: DEFAULT_RETRY_INITIAL,
            retry_max: DEFAULT_RETRY_MAX,
            batch_size: 1,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            max_answer_bytes: DEFAULT_MAX_ANSWER_BYTES,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum SinkKind {
    Stdout,
    File { path: PathBuf },
    Webhook(WebhookConfig),
    SplunkHec(SplunkHecConfig),
    Elasticsearch(ElasticsearchConfig),
    Syslog(SyslogConfig),
    PagerDuty(PagerDutyConfig),
    Slack(SlackConfig),
    Email(EmailConfig),
}

impl SinkKind {
    pub fn name(&self) -> &'static str {
        match self {
            SinkKind::Stdout => "stdout",
            SinkKind::File { .. } => "file",
            SinkKind::Webhook(_) => "webhook",
            SinkKind::SplunkHec(_) => "splunk_hec",
            SinkKind::Elasticsearch(_) => "elasticsearch",
            SinkKind::Syslog(_) => "syslog",
            SinkKind::PagerDuty(_) => "pagerduty",
            SinkKind::Slack(_) => "slack",
            SinkKind::Email(_) => "email",
        }
    }

    /// People read these: they get the summary and links, not the raw events, by default.
    pub fn is_on_call(&self) -> bool {
        matches!(
            self,
            SinkKind::PagerDuty(_) | SinkKind::Slack(_) | SinkKind::Email(_)
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct WebhookConfig {
    pub url: String,
    /// `Authorization: Bearer <token>`.
    pub token: Option<Secret>,
    /// HMAC-SHA256 key for the signature header.
    pub secret: Option<Secret>,
    pub headers: Vec<(String, String)>,
    pub ca_file: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SplunkHecConfig {
    /// The full event endpoint (`.../services/collector/event`).
    pub url: String,
    pub token: Secret,
    pub index: Option<String>,
    pub source: String,
    pub sourcetype: String,
    pub host: Option<String>,
    pub ca_file: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ElasticsearchConfig {
    /// The cluster's base URL; `/_bulk` is appended.
    pub url: String,
    pub index: String,
    pub api_key: Option<Secret>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub ca_file: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SyslogConfig {
    /// `host:port`.
    pub address: String,
    pub tls: bool,
    pub ca_file: Option<PathBuf>,
    /// The name the server's certificate must carry (default: the host of `address`).
    pub server_name: Option<String>,
    /// RFC 5424 facility number (`auth` = 4 by default).
    pub facility: u8,
    pub app_name: String,
    pub hostname: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PagerDutyConfig {
    pub url: String,
    pub routing_key: Secret,
    /// `payload.source`: the host name unless set.
    pub source: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SlackConfig {
    /// The incoming-webhook URL: it carries its own credential, hence a secret.
    pub webhook_url: Secret,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// `smtps://`: TLS from the first byte.
    Implicit,
    /// `smtp://` (default): STARTTLS, refused if the server does not offer it.
    StartTls,
    /// `tls = "opportunistic"`: STARTTLS when offered.
    Opportunistic,
    /// `tls = "none"`: plain text, for a relay on the same host.
    None,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EmailConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub ca_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub from: String,
    pub to: Vec<String>,
    pub subject_prefix: String,
}

/// Validates every `[[sink]]` and names them; sinks with errors are left out (and reported).
pub fn sinks(raw: Vec<RawSink>, error: &mut dyn FnMut(String)) -> Vec<SinkConfig> {
    let mut out: Vec<SinkConfig> = Vec::new();
    let mut explicit = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let n = i + 1;
        if let Some((sink, named)) = sink(n, r, error) {
            if named {
                if explicit.contains(&sink.name) {
                    error(format!(
                        "[[sink]] #{n}: the name `{}` is used twice; sink names must be unique",
                        sink.name
                    ));
                    continue;
                }
                explicit.push(sink.name.clone());
            }
            out.push(sink);
        }
    }
    // Unnamed sinks are called after their kind: `webhook`, then `webhook-2`, ...
    let mut taken = explicit;
    for s in &mut out {
        if !s.name.is_empty() {
            continue;
        }
        let base = s.kind.name().to_string();
        let mut name = base.clone();
        let mut k = 2;
        while taken.contains(&name) {
            name = format!("{base}-{k}");
            k += 1;
        }
        taken.push(name.clone());
        s.name = name;
    }
    out
}

/// One `[[sink]]`; the flag says whether it was named explicitly.
fn sink(n: usize, raw: RawSink, error: &mut dyn FnMut(String)) -> Option<(SinkConfig, bool)> {
    let at = format!("[[sink]] #{n} ({})", raw.kind);
    let mut routing = Routing::default();
    if let Some(min) = &raw.min_severity {
        routing.min_severity = Severity::parse(min);
        if routing.min_severity.is_none() {
            error(format!(
                "{at}: unknown min_severity `{min}`; use one of {}",
                Severity::NAMES.join(", ")
            ));
        }
    }
    for r in raw.rules.unwrap_or_default() {
        match r.strip_prefix('!') {
            Some(excluded) => routing.exclude_rules.push(excluded.to_string()),
            None => routing.include_rules.push(r),
        }
    }
    routing.tags = raw.tags.unwrap_or_default();
    let mut o = Opts {
        table: raw.options,
        at: at.clone(),
        error,
        failed: false,
    };
    let name = o.str("name");
    if let Some(n) = &name
        && !valid_name(n)
    {
        o.fail(format!(
            "name `{n}` must be 1 to 64 of a-z, 0-9, `-` and `_`"
        ));
    }
    let kind = match raw.kind.as_str() {
        "stdout" => Some(SinkKind::Stdout),
        "file" => o
            .required("path")
            .map(|p| SinkKind::File { path: p.into() }),
        "webhook" => webhook(&mut o).map(SinkKind::Webhook),
        "splunk_hec" => splunk_hec(&mut o).map(SinkKind::SplunkHec),
        "elasticsearch" => elasticsearch(&mut o).map(SinkKind::Elasticsearch),
        "syslog" => syslog(&mut o).map(SinkKind::Syslog),
        "pagerduty" => pagerduty(&mut o).map(SinkKind::PagerDuty),
        "slack" => slack(&mut o).map(SinkKind::Slack),
        "email" => email(&mut o).map(SinkKind::Email),
        other => {
            o.fail(format!(
                "unknown kind `{other}`; use one of {}",
                SINK_KINDS.join(", ")
            ));
            o.table.clear();
            None
        }
    };
    let mut delivery = DeliveryPolicy::default();
    let mut include_evidence = None;
    if kind
        .as_ref()
        .is_some_and(|k| !matches!(k, SinkKind::Stdout | SinkKind::File { .. }))
    {
        if let Some(d) = o.duration("timeout") {
            delivery.timeout = d;
        }
        if let Some(d) = o.duration("max_age") {
            delivery.max_age = d;
        }
        if let Some(d) = o.duration("retry_initial") {
            delivery.retry_initial = d;
        }
        if let Some(d) = o.duration("retry_max") {
            delivery.retry_max = d;
        }
        if delivery.retry_initial > delivery.retry_max {
            o.fail("retry_initial must not exceed retry_max".into());
        }
        include_evidence = o.bool("include_evidence");
        match o.take("max_attempts") {
            Some(toml::Value::Integer(n)) if (1..=1_000_000).contains(&n) => {
                delivery.max_attempts = n as u32
            }
            Some(_) => o.fail("max_attempts must be a number from 1 to 1000000".into()),
            None => {}
        }
        match o.take("max_answer_bytes") {
            Some(toml::Value::Integer(n)) if (1024..=1 << 30).contains(&n) => {
                delivery.max_answer_bytes = n as usize
            }
            Some(_) => o.fail("max_answer_bytes must be a number from 1024 to 1073741824".into()),
            None => {}
        }
    }
    if matches!(
        kind,
        Some(SinkKind::SplunkHec(_) | SinkKind::Elasticsearch(_))
    ) {
        delivery.batch_size = DEFAULT_BATCH_SIZE;
        match o.take("batch_size") {
            Some(toml::Value::Integer(b)) if (1..=10_000).contains(&b) => {
                delivery.batch_size = b as usize
            }
            Some(_) => o.fail("batch_size must be a number from 1 to 10000".into()),
            None => {}
        }
    }
    // A table is for a person at a terminal (`--output table`), not for a file or a receiver.
    let mut format = None;
    if kind.as_ref().is_some_and(|k| {
        matches!(
            k,
            SinkKind::Stdout | SinkKind::File { .. } | SinkKind::Webhook(_)
        )
    }) && let Some(f) = o.str("format")
    {
        match AlertFormat::parse(&f) {
            Some(f @ (AlertFormat::Json | AlertFormat::Ocsf)) => format = Some(f),
            _ => o.fail(format!("format `{f}`: use json or ocsf")),
        }
    }
    o.finish();
    let failed = o.failed;
    let kind = kind?;
    if failed {
        return None;
    }
    let mut config = SinkConfig::new(name.as_deref().unwrap_or(""), kind);
    config.routing = routing;
    config.delivery = delivery;
    if let Some(e) = include_evidence {
        config.include_evidence = e;
    }
    config.format = format;
    Some((config, name.is_some()))
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn webhook(o: &mut Opts<'_>) -> Option<WebhookConfig> {
    let url = o.url("url");
    let token = o.secret("token");
    let secret = o.secret("secret");
    let headers = o.headers("headers");
    let ca_file = o.ca_file();
    Some(WebhookConfig {
        url: url?,
        token,
        secret,
        headers,
        ca_file,
    })
}

fn splunk_hec(o: &mut Opts<'_>) -> Option<SplunkHecConfig> {
    let url = o.url("url").map(|u| {
        if u.contains("/services/collector") {
            u
        } else {
            format!("{}/services/collector/event", u.trim_end_matches('/'))
        }
    });
    let token = o.required_secret("token", "the HEC token");
    let index = o.str("index");
    let source = o.str("source").unwrap_or_else(|| "authwatch".into());
    let sourcetype = o
        .str("sourcetype")
        .unwrap_or_else(|| "authwatch:alert".into());
    let host = o.str("host");
    let ca_file = o.ca_file();
    Some(SplunkHecConfig {
        url: url?,
        token: token?,
        index,
        source,
        sourcetype,
        host,
        ca_file,
    })
}

fn elasticsearch(o: &mut Opts<'_>) -> Option<ElasticsearchConfig> {
    let url = o.url("url").map(|u| u.trim_end_matches('/').to_string());
    let index = o.str("index").unwrap_or_else(|| "authwatch-alerts".into());
    let api_key = o.secret("api_key");
    let username = o.str("username");
    let password = o.secret("password");
    if username.is_some() != password.is_some() {
        o.fail("username and password_env (or password_file) go together".into());
    }
    if api_key.is_some() && username.is_some() {
        o.fail("give api_key_env or username/password, not both".into());
    }
    let ca_file = o.ca_file();
    Some(ElasticsearchConfig {
        url: url?,
        index,
        api_key,
        username,
        password,
        ca_file,
    })
}

/// RFC 5424 facility names and numbers.
const FACILITIES: [(&str, u8); 12] = [
    ("kern", 0),
    ("user", 1),
    ("daemon", 3),
    ("auth", 4),
    ("authpriv", 10),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
];

fn syslog(o: &mut Opts<'_>) -> Option<SyslogConfig> {
    let address = o.required("address");
    if let Some(a) = &address
        && split_host_port(a).is_none()
    {
        o.fail(format!(
            "address `{a}` must be host:port, like siem.example.com:6514"
        ));
    }
    let tls = match o.str("protocol").as_deref() {
        None | Some("tcp") => false,
        Some("tls") => true,
        Some(other) => {
            o.fail(format!("protocol `{other}`: use tcp or tls"));
            false
        }
    };
    let ca_file = o.ca_file();
    if ca_file.is_some() && !tls {
        o.fail("ca_file needs protocol = \"tls\"".into());
    }
    let server_name = o.str("server_name");
    let facility = match o.str("facility") {
        None => 4,
        Some(f) => match FACILITIES.iter().find(|(n, _)| *n == f) {
            Some((_, v)) => *v,
            None => {
                let names: Vec<&str> = FACILITIES.iter().map(|(n, _)| *n).collect();
                o.fail(format!("facility `{f}`: use one of {}", names.join(", ")));
                4
            }
        },
    };
    let app_name = o.str("app_name").unwrap_or_else(|| "authwatch".into());
    let hostname = o.str("hostname");
    Some(SyslogConfig {
        address: address?,
        tls,
        ca_file,
        server_name,
        facility,
        app_name,
        hostname,
    })
}

/// `host:port` or `[v6]:port`.
pub fn split_host_port(address: &str) -> Option<(String, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_string(), port))
}

fn pagerduty(o: &mut Opts<'_>) -> Option<PagerDutyConfig> {
    let url = o
        .url_optional("url")
        .unwrap_or_else(|| PAGERDUTY_EVENTS_URL.into());
    let routing_key = o.required_secret("routing_key", "the integration key");
    let source = o.str("source");
    Some(PagerDutyConfig {
        url,
        routing_key: routing_key?,
        source,
    })
}

fn slack(o: &mut Opts<'_>) -> Option<SlackConfig> {
    let webhook_url = o.required_secret("webhook_url", "the incoming webhook URL");
    if webhook_url
        .as_ref()
        .is_some_and(|u| reqwest::Url::parse(u.expose()).is_err())
    {
        o.fail("webhook_url is not a URL".into());
    }
    Some(SlackConfig {
        webhook_url: webhook_url?,
    })
}

fn email(o: &mut Opts<'_>) -> Option<EmailConfig> {
    let smtp_url = o.required("smtp_url");
    let tls_key = o.str("tls");
    let ca_file = o.ca_file();
    let username = o.str("username");
    let password = o.secret("password");
    if password.is_some() && username.is_none() {
        o.fail("password_env needs username".into());
    }
    let from = o.required("from");
    if let Some(f) = &from
        && f.parse::<lettre::message::Mailbox>().is_err()
    {
        o.fail(format!("from `{f}` is not a mail address"));
    }
    let to = o.strings("to");
    match &to {
        None => o.fail("missing `to` (a list of addresses)".into()),
        Some(list) if list.is_empty() => o.fail("`to` lists no address".into()),
        Some(list) => {
            for t in list {
                if t.parse::<lettre::message::Mailbox>().is_err() {
                    o.fail(format!("to `{t}` is not a mail address"));
                }
            }
        }
    }
    let subject_prefix = o
        .str("subject_prefix")
        .unwrap_or_else(|| "[authwatch]".into());
    let url = smtp_url
        .as_deref()
        .and_then(|u| match reqwest::Url::parse(u) {
            Ok(url) => Some(url),
            Err(_) => {
                o.fail(format!(
                    "smtp_url `{u}` is not a URL like smtp://mail.example.com:587"
                ));
                None
            }
        })?;
    let (default_port, mut tls) = match url.scheme() {
        "smtps" => (465, SmtpTls::Implicit),
        "smtp" => (587, SmtpTls::StartTls),
        other => {
            o.fail(format!(
                "smtp_url scheme `{other}`: use smtp:// (STARTTLS) or smtps:// (TLS)"
            ));
            return None;
        }
    };
    match (tls_key.as_deref(), tls) {
        (None, _) => {}
        (Some("starttls"), SmtpTls::StartTls) => {}
        (Some("opportunistic"), SmtpTls::StartTls) => tls = SmtpTls::Opportunistic,
        (Some("none"), SmtpTls::StartTls) => tls = SmtpTls::None,
        (Some(other), _) => o.fail(format!(
            "tls `{other}`: with smtp:// use starttls (default), opportunistic or none; smtps:// is always TLS"
        )),
    }
    if !url.username().is_empty() || url.password().is_some() {
        o.fail("smtp_url must not carry credentials; use username and password_env".into());
    }
    let Some(host) = url.host_str().map(str::to_string) else {
        o.fail("smtp_url names no host".into());
        return None;
    };
    Some(EmailConfig {
        host,
        port: url.port().unwrap_or(default_port),
        tls,
        ca_file,
        username,
        password,
        from: from?,
        to: to?,
        subject_prefix,
    })
}

/// The kind's own keys, taken one by one; what is left at the end is unknown.
struct Opts<'a> {
    table: toml::Table,
    at: String,
    error: &'a mut dyn FnMut(String),
    failed: bool,
}

impl Opts<'_> {
    fn fail(&mut self, message: String) {
        self.failed = true;
        (self.error)(format!("{}: {message}", self.at));
    }

    fn take(&mut self, key: &str) -> Option<toml::Value> {
        self.table.remove(key)
    }

    fn str(&mut self, key: &str) -> Option<String> {
        match self.take(key)? {
            toml::Value::String(s) => Some(s),
            other => {
                self.fail(format!(
                    "`{key}` must be a string, found {}",
                    other.type_str()
                ));
                None
            }
        }
    }

    fn required(&mut self, key: &str) -> Option<String> {
        if !self.table.contains_key(key) {
            self.fail(format!("missing `{key}`"));
        }
        self.str(key)
    }

    fn bool(&mut self, key: &str) -> Option<bool> {
        match self.take(key)? {
            toml::Value::Boolean(b) => Some(b),
            other => {
                self.fail(format!(
                    "`{key}` must be true or false, found {}",
                    other.type_str()
                ));
                None
            }
        }
    }

    fn duration(&mut self, key: &str) -> Option<Duration> {
        let text = self.str(key)?;
        match humantime::parse_duration(&text) {
            Ok(d) if !d.is_zero() => Some(d),
            _ => {
                self.fail(format!(
                    "`{key}` `{text}` must be a duration above 0 like 10s"
                ));
                None
            }
        }
    }

    /// A string or a list of strings.
    fn strings(&mut self, key: &str) -> Option<Vec<String>> {
        match self.take(key)? {
            toml::Value::String(s) => Some(vec![s]),
            toml::Value::Array(items) => {
                let mut out = Vec::new();
                for item in items {
                    match item {
                        toml::Value::String(s) => out.push(s),
                        other => {
                            self.fail(format!(
                                "`{key}` must list strings, found {}",
                                other.type_str()
                            ));
                            return None;
                        }
                    }
                }
                Some(out)
            }
            other => {
                self.fail(format!(
                    "`{key}` must be a list of strings, found {}",
                    other.type_str()
                ));
                None
            }
        }
    }

    fn url(&mut self, key: &str) -> Option<String> {
        o_url(self, key, true)
    }

    fn url_optional(&mut self, key: &str) -> Option<String> {
        o_url(self, key, false)
    }

    /// Refuses a secret written inline (SPEC §5).
    fn no_inline(&mut self, key: &str) {
        if self.take(key).is_some() {
            self.fail(format!(
                "`{key}` is a secret and is never written inline; use {key}_env or {key}_file"
            ));
        }
    }

    fn secret(&mut self, key: &str) -> Option<Secret> {
        self.no_inline(key);
        let env = self.str(&format!("{key}_env"));
        let file = self.str(&format!("{key}_file"));
        let at = format!("{}:", self.at);
        let mut failed = false;
        let value = secret::resolve(&at, key, env.as_deref(), file.as_deref(), &mut |m| {
            failed = true;
            (self.error)(m)
        });
        self.failed |= failed;
        value
    }

    /// A secret the kind cannot work without.
    fn required_secret(&mut self, key: &str, what: &str) -> Option<Secret> {
        let given = [format!("{key}_env"), format!("{key}_file")]
            .iter()
            .any(|k| self.table.contains_key(k));
        if !given {
            self.fail(format!("needs {key}_env or {key}_file ({what})"));
        }
        self.secret(key)
    }

    fn headers(&mut self, key: &str) -> Vec<(String, String)> {
        match self.take(key) {
            None => Vec::new(),
            Some(toml::Value::Table(t)) => {
                let mut out = Vec::new();
                for (name, value) in t {
                    let ok_name = reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_ok();
                    match value {
                        toml::Value::String(v)
                            if ok_name && reqwest::header::HeaderValue::from_str(&v).is_ok() =>
                        {
                            out.push((name, v))
                        }
                        _ => self.fail(format!(
                            "header `{name}` must be a valid header name with a string value"
                        )),
                    }
                }
                out
            }
            Some(other) => {
                self.fail(format!(
                    "`{key}` must be a table like {{ X-Team = \"secops\" }}, found {}",
                    other.type_str()
                ));
                Vec::new()
            }
        }
    }

    /// `ca_file`: a readable PEM file with at least one certificate.
    fn ca_file(&mut self) -> Option<PathBuf> {
        let path = PathBuf::from(self.str("ca_file")?);
        match std::fs::read(&path) {
            Ok(pem) if pem_has_certificate(&pem) => Some(path),
            Ok(_) => {
                self.fail(format!(
                    "ca_file `{}` holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                    path.display()
                ));
                None
            }
            Err(e) => {
                self.fail(format!("ca_file `{}`: {e}", path.display()));
                None
            }
        }
    }

    fn finish(&mut self) {
        let keys: Vec<String> = self.table.keys().cloned().collect();
        for key in keys {
            self.fail(format!("unknown key `{key}`"));
        }
    }
}

fn o_url(o: &mut Opts<'_>, key: &str, required: bool) -> Option<String> {
    let text = if required {
        o.required(key)?
    } else {
        o.str(key)?
    };
    match reqwest::Url::parse(&text) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => Some(text),
        // The URL is not quoted: its path or query may be a credential.
        Ok(u) => {
            o.fail(format!(
                "`{key}` must be an http(s) URL, not `{}:`",
                u.scheme()
            ));
            None
        }
        Err(e) => {
            o.fail(format!("`{key}` is not a URL: {e}"));
            None
        }
    }
}

fn pem_has_certificate(pem: &[u8]) -> bool {
    String::from_utf8_lossy(pem).contains("-----BEGIN CERTIFICATE-----")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::parse;
    use super::*;

    #[test]
    fn every_kind_is_read_with_its_keys() {
        // SAFETY: tests in this module read only this variable, set once to the same value.
        unsafe { std::env::set_var("AUTHWATCH_TEST_SINK_SECRET", "s3cret") };
        let text = r#"
[[sink]]
kind = "webhook"
url = "https://siem.example.com/hook"
secret_env = "AUTHWATCH_TEST_SINK_SECRET"
headers = { X-Team = "secops" }
min_severity = "medium"
[[sink]]
kind = "webhook"
name = "second-hook"
url = "http://127.0.0.1:9/hook"
max_age = "1h"
retry_initial = "100ms"
max_attempts = 3
max_answer_bytes = 4096
[[sink]]
kind = "splunk_hec"
url = "https://splunk.example.com:8088"
token_env = "AUTHWATCH_TEST_SINK_SECRET"
[[sink]]
kind = "elasticsearch"
url = "https://es.example.com:9200/"
api_key_env = "AUTHWATCH_TEST_SINK_SECRET"
batch_size = 10
[[sink]]
kind = "syslog"
address = "siem.example.com:6514"
protocol = "tls"
[[sink]]
kind = "pagerduty"
routing_key_env = "AUTHWATCH_TEST_SINK_SECRET"
[[sink]]
kind = "slack"
webhook_url_env = "AUTHWATCH_TEST_SINK_SECRET"
[[sink]]
kind = "email"
smtp_url = "smtps://mail.example.com"
from = "authwatch@example.com"
to = ["oncall@example.com"]
include_evidence = true
"#
        .replace(
            "webhook_url_env = \"AUTHWATCH_TEST_SINK_SECRET\"",
            "webhook_url_file = \"/dev/null\"",
        );
        // The slack URL file is empty: refused.
        let err = parse(Path::new("a.toml"), &text).unwrap_err();
        assert_eq!(err.0.len(), 1, "{err}");
        assert!(err.0[0].contains("webhook_url is empty"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("slack-url");
        std::fs::write(&url, "https://hooks.slack.com/services/T/B/X\n").unwrap();
        let text = text.replace("/dev/null", url.to_str().unwrap());
        let c = parse(Path::new("a.toml"), &text).unwrap();
        let names: Vec<&str> = c.sinks.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "webhook",
                "second-hook",
                "splunk_hec",
                "elasticsearch",
                "syslog",
                "pagerduty",
                "slack",
                "email"
            ]
        );
        let SinkKind::SplunkHec(hec) = &c.sinks[2].kind else {
            panic!()
        };
        assert_eq!(
            hec.url,
            "https://splunk.example.com:8088/services/collector/event"
        );
        assert_eq!(c.sinks[3].delivery.batch_size, 10);
        assert_eq!(c.sinks[1].delivery.max_age, Duration::from_secs(3600));
        assert_eq!(c.sinks[1].delivery.max_attempts, 3);
        assert_eq!(c.sinks[1].delivery.max_answer_bytes, 4096);
        assert_eq!(c.sinks[0].delivery.max_attempts, DEFAULT_MAX_ATTEMPTS);
        assert!(c.sinks[0].include_evidence && !c.sinks[5].include_evidence);
        assert!(c.sinks[7].include_evidence, "configured");
        let SinkKind::Email(mail) = &c.sinks[7].kind else {
            panic!()
        };
        assert_eq!((mail.port, mail.tls), (465, SmtpTls::Implicit));
        assert!(!format!("{c:?}").contains("s3cret"), "secrets never print");
    }

    #[test]
    fn mistakes_are_all_reported_with_the_way_out() {
        let text = r#"
[[sink]]
kind = "webhook"
url = "ftp://x"
token = "inline"
[[sink]]
kind = "email"
smtp_url = "smtp://mail.example.com"
from = "not an address"
tls = "sometimes"
[[sink]]
kind = "syslog"
address = "nohost"
colour = "red"
[[sink]]
kind = "file"
name = "Bad Name"
path = "/tmp/a"
"#;
        let err = parse(Path::new("a.toml"), text).unwrap_err();
        let all = err.to_string();
        for want in [
            "must be an http(s) URL",
            "never written inline",
            "is not a mail address",
            "missing `to`",
            "tls `sometimes`",
            "must be host:port",
            "unknown key `colour`",
            "name `Bad Name`",
        ] {
            assert!(all.contains(want), "{want}: {all}");
        }
    }

    #[test]
    fn explicit_names_must_be_unique_and_defaults_avoid_them() {
        let err = parse(
            Path::new("a.toml"),
            "[[sink]]\nkind = \"stdout\"\nname = \"a\"\n[[sink]]\nkind = \"stdout\"\nname = \"a\"\n",
        )
        .unwrap_err();
        assert!(err.0[0].contains("used twice"), "{err}");
        let c = parse(
            Path::new("a.toml"),
            "[[sink]]\nkind = \"stdout\"\n[[sink]]\nkind = \"stdout\"\nname = \"stdout-2\"\n[[sink]]\nkind = \"stdout\"\n",
        )
        .unwrap();
        let names: Vec<&str> = c.sinks.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["stdout", "stdout-2", "stdout-3"]);
    }
}
