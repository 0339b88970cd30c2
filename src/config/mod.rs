//! Configuration: `authwatch.toml` read into raw structs, then validated into a [`Config`] with
//! every error collected. With no file, the embedded defaults of SPEC §5 apply.

mod ingest;
mod kafka;
pub mod kafka_client;
mod pull;
mod raw;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use raw::RawConfig;

use crate::engine::{DEFAULT_LATENESS_MS, DEFAULT_MAX_GROUPS_PER_RULE};
use crate::normalize::Format;
pub use crate::secret::Secret;
use crate::sink::{SinkConfig, SinkKind, StdoutConfig};
pub use ingest::{DEFAULT_MAX_BODY_BYTES, DEFAULT_QUEUE_BATCHES, HttpIngest, HttpServer};
pub use kafka::{
    DEFAULT_GROUP_ID, DEFAULT_IDLE_PARTITION_MS, DEFAULT_REPLICATION_FACTOR, KafkaConfig,
    KafkaSasl, KafkaTls, ScaleOut,
};
pub use pull::{Provider, PullConfig};

/// SPEC §5 defaults, used when there is no configuration file.
pub const DEFAULT_RULES_DIR: &str = "rules";
pub const DEFAULT_STATE_DIR: &str = "authwatch-state";

/// A checkpoint a second bounds what a crash can make the daemon re-read to one second of
/// input, at a cost measured by the checkpoint benchmark.
pub const DEFAULT_CHECKPOINT_INTERVAL_MS: i64 = 1_000;

/// At a stop, healthy sinks get this long to deliver what is stored; the rest goes out on the
/// next start. Well inside systemd's default 90 s stop timeout.
pub const DEFAULT_SHUTDOWN_TIMEOUT_MS: i64 = 10_000;

/// `[state] io_timeout`: the longest a store call may take before the daemon gives the store
/// up and exits. Far above a healthy checkpoint (milliseconds) or a slow disk's worst fsync,
/// short enough that a hung disk is noticed within a minute.
pub const DEFAULT_IO_TIMEOUT_MS: i64 = 30_000;

/// `[daemon] stall_timeout`: `/healthz` fails once the detection loop has made no progress for
/// this long. The loop turns at least every 200 ms, and a store call that takes longer than
/// `io_timeout` ends the process first.
pub const DEFAULT_STALL_TIMEOUT_MS: i64 = 60_000;
/// `[daemon] decode_threads` at most: past the cores of any machine it would run on, more
/// threads only hold more batches.
pub const MAX_DECODE_THREADS: usize = 64;

/// After a rotation, the old file is read until it has not changed for this long before the
/// new one: a writer appends to the renamed file until it reopens the path, which logrotate's
/// `postrotate` signal makes it do within milliseconds; two seconds leave a wide margin at the
/// cost of alerts from the new file coming two seconds later, once per rotation.
pub const DEFAULT_ROTATE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub source: Source,
    pub format: Format,
    pub state_dir: PathBuf,
    /// How often engine state and the source position are written to the store.
    pub checkpoint_interval_ms: i64,
    pub max_groups_per_rule: usize,
    pub rules_dir: PathBuf,
    pub lateness_ms: i64,
    /// `[rules] max_clock_skew`: how far past the wall clock an event may be stamped.
    pub max_clock_skew_ms: i64,
    /// `[rules] max_held_events` / `max_held_bytes`: the lateness buffer's bounds.
    pub max_held_events: usize,
    pub max_held_bytes: usize,
    pub runbook_base_url: Option<String>,
    pub http_listen: Option<SocketAddr>,
    /// `[http]` beyond `listen`: connection limits, the metrics listener, offender labels.
    pub http: HttpServer,
    /// `[daemon] shutdown_timeout`: how long sinks get to deliver at a stop.
    pub shutdown_timeout_ms: i64,
    /// `[state] io_timeout`: the deadline of every store call in `run`.
    pub io_timeout_ms: i64,
    /// `[daemon] stall_timeout`: no detection progress this long fails `/healthz`.
    pub stall_timeout_ms: i64,
    /// `[daemon] decode_threads`: threads decoding lines beside detection (stdin, file,
    /// replay); `None`: one per CPU available but detection's, at least one.
    pub decode_threads: Option<usize>,
    pub sinks: Vec<SinkConfig>,
    /// `[geoip]`: MaxMind databases that locate events which carry an ip but no `geo`.
    pub geoip: GeoipConfig,
}

/// `[geoip]`: paths of MaxMind DB files in the GeoIP2/GeoLite2 City and ASN schemas.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GeoipConfig {
    pub city: Option<PathBuf>,
    pub asn: Option<PathBuf>,
}

impl GeoipConfig {
    pub fn is_empty(&self) -> bool {
        self.city.is_none() && self.asn.is_none()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    Stdin,
    /// A file followed like `tail -F` (or read once to its end when `follow` is false).
    File {
        path: PathBuf,
        follow: bool,
        /// `rotate_wait`: a rotated file is finished once unchanged this long.
        rotate_wait: std::time::Duration,
    },
    /// Webhooks and batches posted to the ingest routes on `[http] listen`.
    Http(HttpIngest),
    /// A Kafka consumer-group member (boxed: it is much larger than the other kinds).
    Kafka(Box<KafkaConfig>),
    /// Okta's System Log API or Auth0's Management API logs, polled.
    Pull(Box<PullConfig>),
}

impl Default for Config {
    fn default() -> Self {
        Config {
            source: Source::Stdin,
            format: Format::Native,
            state_dir: DEFAULT_STATE_DIR.into(),
            checkpoint_interval_ms: DEFAULT_CHECKPOINT_INTERVAL_MS,
            max_groups_per_rule: DEFAULT_MAX_GROUPS_PER_RULE,
            rules_dir: DEFAULT_RULES_DIR.into(),
            lateness_ms: DEFAULT_LATENESS_MS,
            max_clock_skew_ms: crate::event::admit::DEFAULT_MAX_CLOCK_SKEW_MS,
            max_held_events: crate::engine::DEFAULT_MAX_HELD_EVENTS,
            max_held_bytes: crate::engine::DEFAULT_MAX_HELD_BYTES,
            runbook_base_url: None,
            http_listen: None,
            http: HttpServer::default(),
            shutdown_timeout_ms: DEFAULT_SHUTDOWN_TIMEOUT_MS,
            io_timeout_ms: DEFAULT_IO_TIMEOUT_MS,
            stall_timeout_ms: DEFAULT_STALL_TIMEOUT_MS,
            decode_threads: None,
            geoip: GeoipConfig::default(),
            sinks: vec![SinkConfig::new("stdout", SinkKind::Stdout(StdoutConfig))],
        }
    }
}

/// Everything wrong with a configuration file, each line naming the file and the key.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<String>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for ConfigErrors {}

/// Loads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![format!(
            "{}: cannot read the configuration: {e}",
            path.display()
        )])
    })?;
    parse(path, &text)
}

/// Validates configuration text; `path` is only used in messages.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let message = e.message().to_string();
        let at = e.span().map(|s| raw::error_offset(text, s, &message));
        let (line, col) = at.map_or((1, 1), |at| line_col(text, at));
        ConfigErrors(vec![format!("{file}:{line}:{col}: {message}")])
    })?;
    let mut errors = Vec::new();
    let config = validate(raw, &mut |msg: String| {
        errors.push(format!("{file}: {msg}"))
    });
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(errors))
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn validate(raw: RawConfig, error: &mut dyn FnMut(String)) -> Config {
    let mut config = Config::default();
    let http_kind = matches!(raw.source, Some(raw::RawSource::Http(_)));
    if let Some(source) = raw.source {
        source_kind(source, &mut config, error);
    }
    if let Some(state) = raw.state {
        if let Some(dir) = state.dir {
            config.state_dir = dir.into();
        }
        if let Some(interval) = state.checkpoint_interval {
            match humantime::parse_duration(&interval) {
                Ok(d) if !d.is_zero() => config.checkpoint_interval_ms = d.as_millis() as i64,
                _ => error(format!(
                    "[state] checkpoint_interval `{interval}` must be a duration above 0 like 1s"
                )),
            }
        }
        if let Some(timeout) = state.io_timeout {
            match humantime::parse_duration(&timeout) {
                Ok(d) if !d.is_zero() => config.io_timeout_ms = d.as_millis() as i64,
                _ => error(format!(
                    "[state] io_timeout `{timeout}` must be a duration above 0 like 30s"
                )),
            }
        }
        match state.max_groups_per_rule {
            Some(0) => error("[state] max_groups_per_rule must be at least 1".into()),
            Some(n) => config.max_groups_per_rule = n,
            None => {}
        }
    }
    if let Some(rules) = raw.rules {
        if let Some(dir) = rules.dir {
            config.rules_dir = dir.into();
        }
        if let Some(lateness) = rules.lateness {
            match humantime::parse_duration(&lateness) {
                Ok(d) => config.lateness_ms = d.as_millis() as i64,
                Err(e) => error(format!(
                    "[rules] lateness `{lateness}`: {e}; write it like 60s"
                )),
            }
        }
        if let Some(skew) = rules.max_clock_skew {
            match humantime::parse_duration(&skew) {
                Ok(d) => config.max_clock_skew_ms = d.as_millis().min(i64::MAX as u128) as i64,
                Err(e) => error(format!(
                    "[rules] max_clock_skew `{skew}`: {e}; write it like 5m"
                )),
            }
        }
        match rules.max_held_events {
            Some(0) => error("[rules] max_held_events must be at least 1".into()),
            Some(n) => config.max_held_events = n,
            None => {}
        }
        match rules.max_held_bytes {
            Some(n) if n < crate::event::decode::MAX_EVENT_BYTES => error(format!(
                "[rules] max_held_bytes must be at least {} (one event of the largest size)",
                crate::event::decode::MAX_EVENT_BYTES
            )),
            Some(n) => config.max_held_bytes = n,
            None => {}
        }
    }
    if let Some(geoip) = raw.geoip {
        config.geoip = GeoipConfig {
            city: geoip.city.and_then(|p| database_path("city", p, error)),
            asn: geoip.asn.and_then(|p| database_path("asn", p, error)),
        };
    }
    if let Some(base) = raw.runbooks.and_then(|r| r.base_url) {
        if base.starts_with("https://") || base.starts_with("http://") {
            config.runbook_base_url = Some(base);
        } else {
            error(format!(
                "[runbooks] base_url `{base}` must be an http(s) URL"
            ));
        }
    }
    let (shutdown_timeout, stall_timeout, decode_threads) =
        raw.daemon.map_or((None, None, None), |d| {
            (d.shutdown_timeout, d.stall_timeout, d.decode_threads)
        });
    match decode_threads {
        Some(n @ 1..=MAX_DECODE_THREADS) => config.decode_threads = Some(n),
        Some(n) => error(format!(
            "[daemon] decode_threads {n} must be from 1 to {MAX_DECODE_THREADS}"
        )),
        None => {}
    }
    if let Some(timeout) = shutdown_timeout {
        match humantime::parse_duration(&timeout) {
            Ok(d) => config.shutdown_timeout_ms = d.as_millis() as i64,
            Err(e) => error(format!(
                "[daemon] shutdown_timeout `{timeout}`: {e}; write it like 10s"
            )),
        }
    }
    if let Some(timeout) = stall_timeout {
        match humantime::parse_duration(&timeout) {
            Ok(d) if !d.is_zero() => config.stall_timeout_ms = d.as_millis() as i64,
            _ => error(format!(
                "[daemon] stall_timeout `{timeout}` must be a duration above 0 like 60s"
            )),
        }
    }
    let listen_given = raw.http.as_ref().is_some_and(|h| h.listen.is_some());
    if let Some(http) = &raw.http {
        config.http = ingest::http_server(http, error);
    }
    if let Some(listen) = raw.http.and_then(|h| h.listen) {
        match listen.parse() {
            Ok(addr) => config.http_listen = Some(addr),
            Err(_) => error(format!(
                "[http] listen `{listen}` must be an address like 127.0.0.1:9640"
            )),
        }
    }
    if http_kind && !listen_given {
        error(
            "[source] kind = \"http\" needs `[http] listen`, the address to serve ingest on".into(),
        );
    }
    if let Source::Pull(p) = &config.source
        && p.poll_interval.as_millis() as i64 >= config.lateness_ms
    {
        // A poll brings events up to an interval old; once the source is quiet event time
        // follows the wall clock, so older events would be judged late and dropped.
        error(format!(
            "[source] poll_interval ({}) must be shorter than [rules] lateness ({} ms): events \
             a poll brings would otherwise arrive too late to count",
            humantime::format_duration(p.poll_interval),
            config.lateness_ms
        ));
    }
    if !raw.sink.is_empty() {
        config.sinks = crate::sink::sinks(raw.sink, error);
    }
    config
}

/// `[source]`: the kind's own keys (serde has refused those of other kinds) and `format`.
fn source_kind(source: raw::RawSource, config: &mut Config, error: &mut dyn FnMut(String)) {
    use raw::RawSource as Raw;
    let format = match source {
        Raw::Stdin(stdin) => {
            config.source = Source::Stdin;
            stdin.format
        }
        Raw::File(file) => {
            match &file.path {
                Some(path) => {
                    let rotate_wait = match file.rotate_wait.as_deref() {
                        None => DEFAULT_ROTATE_WAIT,
                        Some(text) => humantime::parse_duration(text).unwrap_or_else(|_| {
                            error(format!(
                                "[source] rotate_wait `{text}` must be a duration like 2s"
                            ));
                            DEFAULT_ROTATE_WAIT
                        }),
                    };
                    config.source = Source::File {
                        path: path.into(),
                        follow: file.follow.unwrap_or(true),
                        rotate_wait,
                    }
                }
                None => error("[source] kind = \"file\" needs `path`".into()),
            }
            file.format
        }
        Raw::Http(http) => {
            if let Some(ingest) = ingest::http_source(&http, error) {
                config.source = Source::Http(ingest);
            }
            None
        }
        Raw::Kafka(kafka) => {
            if let Some(k) = kafka::kafka_source(&kafka, error) {
                // librdkafka parses every property now, without connecting: a misspelt
                // key or a bad value is a configuration error at `check`, not a failure
                // at start. (Here, not in `kafka.rs`: the settings are built from the
                // validated `KafkaConfig`, so the check follows the validation.)
                if let Err(e) = kafka_client::check_properties(&k) {
                    error(format!("[source.properties] {e}"));
                }
                config.source = Source::Kafka(Box::new(k));
            }
            kafka.format
        }
        Raw::OktaApi(api) => pull_kind(Provider::Okta, &api, config, error),
        Raw::Auth0Api(api) => pull_kind(Provider::Auth0, &api, config, error),
    };
    if let Some(format) = format {
        match format.parse() {
            Ok(format) => config.format = format,
            Err(e) => error(format!("[source] {e}")),
        }
    }
}

/// An API source; its format follows from the provider (`None`: nothing more to read).
fn pull_kind(
    provider: Provider,
    raw: &pull::RawPull,
    config: &mut Config,
    error: &mut dyn FnMut(String),
) -> Option<String> {
    if let Some(p) = pull::pull_source(provider, raw, error) {
        config.source = Source::Pull(Box::new(p));
    }
    config.format = provider.format();
    None
}

/// A `[geoip]` path that must name an existing file (its content is checked when opened).
fn database_path(key: &str, path: String, error: &mut dyn FnMut(String)) -> Option<PathBuf> {
    let path = PathBuf::from(path);
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => Some(path),
        Ok(_) => {
            error(format!(
                "[geoip] {key} `{}` is not a file; give the path of the .mmdb file",
                path.display()
            ));
            None
        }
        Err(e) => {
            error(format!(
                "[geoip] {key} `{}`: {e}; download the MaxMind database (geoipupdate) or fix the path",
                path.display()
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule::Severity;

    #[test]
    fn an_empty_file_means_the_embedded_defaults() {
        assert_eq!(parse(Path::new("a.toml"), "").unwrap(), Config::default());
    }

    #[test]
    fn a_full_valid_file_is_read() {
        let c = parse(
            Path::new("a.toml"),
            r#"
[source]
kind = "stdin"
format = "native"
[state]
dir = "/tmp/s"
[rules]
dir = "/etc/authwatch/rules"
lateness = "30s"
[runbooks]
base_url = "https://runbooks.example.com/"
[http]
listen = "127.0.0.1:9640"
[[sink]]
kind = "file"
path = "/tmp/alerts.jsonl"
min_severity = "high"
rules = ["!impersonation-started"]
"#,
        )
        .unwrap();
        assert_eq!(c.lateness_ms, 30_000);
        assert_eq!(
            c.sinks[0].kind,
            SinkKind::File(crate::sink::FileConfig {
                path: "/tmp/alerts.jsonl".into()
            })
        );
        assert!(
            !c.sinks[0]
                .routing
                .accepts("impersonation-started", Severity::Critical, &[])
        );
        assert!(!c.sinks[0].routing.accepts("x", Severity::Medium, &[]));
        assert!(c.sinks[0].routing.accepts("x", Severity::High, &[]));
    }

    #[test]
    fn store_and_stall_deadlines_are_read_and_zero_is_refused() {
        let c = parse(
            Path::new("a.toml"),
            "[state]\nio_timeout = \"5s\"\n[daemon]\nstall_timeout = \"2m\"\n",
        )
        .unwrap();
        assert_eq!((c.io_timeout_ms, c.stall_timeout_ms), (5_000, 120_000));
        let err = parse(
            Path::new("a.toml"),
            "[state]\nio_timeout = \"0s\"\n[daemon]\nstall_timeout = \"never\"\n",
        )
        .unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
    }

    #[test]
    fn decode_threads_are_read_and_bounded() {
        let c = parse(Path::new("a.toml"), "[daemon]\ndecode_threads = 3\n").unwrap();
        assert_eq!(c.decode_threads, Some(3));
        assert_eq!(parse(Path::new("a.toml"), "").unwrap().decode_threads, None);
        for n in [0, MAX_DECODE_THREADS + 1] {
            let err = parse(
                Path::new("a.toml"),
                &format!("[daemon]\ndecode_threads = {n}\n"),
            )
            .unwrap_err();
            assert!(err.to_string().contains("decode_threads"), "{err}");
        }
    }

    #[test]
    fn unknown_keys_name_file_line_and_column() {
        let err = parse(
            Path::new("a.toml"),
            "[rules]\ndir = \"r\"\nlatness = \"1s\"\n",
        )
        .unwrap_err();
        assert!(
            err.0[0].starts_with("a.toml:3:1: unknown field `latness`"),
            "{err}"
        );
    }

    #[test]
    fn every_semantic_error_is_collected() {
        let err = parse(
            Path::new("a.toml"),
            "[rules]\nlateness = \"soon\"\n[http]\nlisten = \"nowhere\"\n[[sink]]\nkind = \"file\"\nmin_severity = \"hi\"\ncolour = \"red\"\n",
        )
        .unwrap_err();
        assert_eq!(err.0.len(), 5, "{err}");
    }

    #[test]
    fn geoip_paths_must_name_files() {
        let dir = tempfile::tempdir().unwrap();
        let city = dir.path().join("City.mmdb");
        std::fs::write(&city, b"").unwrap();
        let text = format!(
            "[geoip]\ncity = \"{}\"\nasn = \"{}\"\n",
            city.display(),
            dir.path().join("missing.mmdb").display()
        );
        let err = parse(Path::new("a.toml"), &text).unwrap_err();
        assert_eq!(err.0.len(), 1, "{err}");
        assert!(err.0[0].starts_with("a.toml: [geoip] asn `"), "{err}");
        let text = format!("[geoip]\ncity = \"{}\"\n", city.display());
        let config = parse(Path::new("a.toml"), &text).unwrap();
        assert_eq!(config.geoip.city.as_deref(), Some(city.as_path()));
        assert!(parse(Path::new("a.toml"), "[geoip]\ncountry = \"x\"\n").is_err());
    }

    #[test]
    fn clock_skew_and_lateness_buffer_bounds_are_read_and_checked() {
        let c = Config::default();
        assert_eq!(c.max_clock_skew_ms, 300_000);
        let c = parse(
            Path::new("a.toml"),
            "[rules]\nmax_clock_skew = \"30s\"\nmax_held_events = 500\nmax_held_bytes = 2097152\n",
        )
        .unwrap();
        assert_eq!(
            (c.max_clock_skew_ms, c.max_held_events, c.max_held_bytes),
            (30_000, 500, 2 << 20)
        );
        let err = parse(
            Path::new("a.toml"),
            "[rules]\nmax_clock_skew = \"later\"\nmax_held_events = 0\nmax_held_bytes = 10\n",
        )
        .unwrap_err();
        assert_eq!(err.0.len(), 3, "{err}");
        assert!(err.0[0].contains("max_clock_skew"), "{err}");
    }

    #[test]
    fn every_input_format_is_a_source_format() {
        for format in Format::all() {
            let toml = format!("[source]\nkind = \"stdin\"\nformat = \"{format}\"\n");
            assert_eq!(parse(Path::new("a.toml"), &toml).unwrap().format, format);
        }
        let err = parse(
            Path::new("a.toml"),
            "[source]\nkind = \"stdin\"\nformat = \"azure\"\n",
        )
        .unwrap_err();
        assert!(
            err.0[0].contains("unknown format `azure`, expected one of native, "),
            "{err}"
        );
    }
}
