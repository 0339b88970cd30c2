//! The configuration file as written: serde structs that mirror `authwatch.toml` and reject
//! unknown keys. Nothing here is validated beyond types; see `super::validate`.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub source: Option<RawSource>,
    pub state: Option<RawState>,
    pub rules: Option<RawRules>,
    pub geoip: Option<RawGeoip>,
    pub runbooks: Option<RawRunbooks>,
    pub http: Option<RawHttp>,
    pub daemon: Option<RawDaemon>,
    #[serde(default)]
    pub sink: Vec<RawSink>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub kind: String,
    pub format: Option<String>,
    pub path: Option<String>,
    /// file: keep following the file (`tail -F`); false reads to the end and stops.
    pub follow: Option<bool>,
    /// file: how long a rotated file must stay unchanged before the new one is read.
    pub rotate_wait: Option<String>,
    // kind = "http" (see `super::ingest`): route credentials and limits.
    pub token_env: Option<String>,
    pub token_file: Option<String>,
    pub auth0_token_env: Option<String>,
    pub auth0_token_file: Option<String>,
    pub okta_header: Option<String>,
    pub okta_secret_env: Option<String>,
    pub okta_secret_file: Option<String>,
    pub max_body_bytes: Option<usize>,
    pub queue_batches: Option<usize>,
    pub max_events_per_body: Option<usize>,
    pub ack_timeout: Option<String>,
    // kind = "kafka" (see `super::kafka`).
    pub brokers: Option<String>,
    pub topics: Option<Vec<String>>,
    pub group_id: Option<String>,
    pub dead_letter_topic: Option<String>,
    pub idle_partition_timeout: Option<String>,
    pub tls: Option<super::kafka::RawKafkaTls>,
    pub sasl: Option<super::kafka::RawKafkaSasl>,
    /// librdkafka settings; numbers and booleans are accepted as written.
    pub properties: Option<BTreeMap<String, toml::Value>>,
    // kind = "okta_api" | "auth0_api" (see `super::pull`); the token is `token_env`/`token_file`.
    pub url: Option<String>,
    pub poll_interval: Option<String>,
    pub page_size: Option<usize>,
    pub request_timeout: Option<String>,
    pub max_response_bytes: Option<usize>,
    pub max_backoff: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    pub dir: Option<String>,
    pub checkpoint_interval: Option<String>,
    pub max_groups_per_rule: Option<usize>,
    pub io_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRules {
    pub dir: Option<String>,
    pub lateness: Option<String>,
    pub max_clock_skew: Option<String>,
    pub max_held_events: Option<usize>,
    pub max_held_bytes: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGeoip {
    pub city: Option<String>,
    pub asn: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRunbooks {
    pub base_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDaemon {
    pub shutdown_timeout: Option<String>,
    pub stall_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttp {
    pub listen: Option<String>,
    // Connection limits and the metrics listener (see `super::ingest::http_server`).
    pub metrics_listen: Option<String>,
    pub header_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub max_connections: Option<usize>,
    pub metrics_top_offenders: Option<bool>,
}

/// A `[[sink]]`: the routing keys every kind shares, plus the kind's own keys, which are
/// checked per kind during validation (serde cannot deny unknown keys through a flatten).
#[derive(Debug, Deserialize)]
pub struct RawSink {
    pub kind: String,
    pub min_severity: Option<String>,
    pub rules: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
    #[serde(flatten)]
    pub options: toml::Table,
}
