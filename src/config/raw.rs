//! The configuration file as written: serde structs that mirror `authwatch.toml` and reject
//! unknown keys. Nothing here is validated beyond types; see `super::validate`. The structs of
//! each `[source]` kind and of `[http]` live beside their validation, `[[sink]]`'s in `sink`.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub source: Option<RawSource>,
    pub state: Option<RawState>,
    pub rules: Option<RawRules>,
    pub geoip: Option<RawGeoip>,
    pub runbooks: Option<RawRunbooks>,
    pub http: Option<super::ingest::RawHttp>,
    pub daemon: Option<RawDaemon>,
    #[serde(default)]
    pub sink: Vec<crate::sink::RawSink>,
}

/// `[source]`: the keys of one `kind`. serde picks the variant by `kind`, and each variant's
/// struct refuses keys it does not know, so a key of another kind (`topics` under
/// `kind = "file"`) is an error naming the key, the kind and the keys that kind takes. Each
/// kind's struct lives beside its validation (`super::ingest`, `super::kafka`, `super::pull`).
#[derive(Debug, Deserialize)]
#[serde(tag = "kind")]
pub enum RawSource {
    #[serde(rename = "stdin", deserialize_with = "of_kind::stdin")]
    Stdin(RawStdin),
    #[serde(rename = "file", deserialize_with = "of_kind::file")]
    File(RawFile),
    #[serde(rename = "kafka", deserialize_with = "of_kind::kafka")]
    Kafka(super::kafka::RawKafka),
    #[serde(rename = "http", deserialize_with = "of_kind::http")]
    Http(super::ingest::RawIngest),
    #[serde(rename = "okta_api", deserialize_with = "of_kind::okta_api")]
    OktaApi(super::pull::RawPull),
    #[serde(rename = "auth0_api", deserialize_with = "of_kind::auth0_api")]
    Auth0Api(super::pull::RawPull),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStdin {
    pub format: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    pub format: Option<String>,
    pub path: Option<String>,
    /// Keep following the file (`tail -F`); false reads to the end and stops.
    pub follow: Option<bool>,
    /// How long a rotated file must stay unchanged before the new one is read.
    pub rotate_wait: Option<String>,
}

/// serde's own message (`unknown field `x`, expected one of ...`) does not say which kind it
/// read the keys for; these add it. One function per kind, since serde passes a variant's
/// deserializer to a plain function and not its name.
mod of_kind {
    use serde::de::{Deserialize, Deserializer, Error};

    pub fn stdin<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
        named(d, "stdin")
    }
    pub fn file<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
        named(d, "file")
    }
    pub fn kafka<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
        named(d, "kafka")
    }
    pub fn http<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
        named(d, "http")
    }
    pub fn okta_api<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
        named(d, "okta_api")
    }
    pub fn auth0_api<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
        named(d, "auth0_api")
    }

    fn named<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
        kind: &str,
    ) -> Result<T, D::Error> {
        T::deserialize(d).map_err(|e| {
            let message = e.to_string();
            let message = message.trim_end();
            D::Error::custom(match unknown_field(message) {
                Some((key, rest)) => {
                    format!("unknown field `{key}` for source kind `{kind}`{rest}")
                }
                None => format!("source kind `{kind}`: {message}"),
            })
        })
    }

    /// `unknown field `key`, expected ...` as the key and what follows it.
    pub fn unknown_field(message: &str) -> Option<(&str, &str)> {
        message.strip_prefix("unknown field `")?.split_once('`')
    }
}

/// Where a parse error is. serde reads `[source]` through a buffer (to find `kind` first), so
/// toml can place its errors at the `[source]` header only; an unknown key is placed at its
/// own line again, found below that header, as toml places it in every other table.
pub fn error_offset(text: &str, span: std::ops::Range<usize>, message: &str) -> usize {
    let for_source = |(_, rest): &(&str, &str)| rest.starts_with(" for source kind");
    let Some((key, _)) = of_kind::unknown_field(message).filter(for_source) else {
        return span.start;
    };
    // From the line after the header to the next table other than `[source.*]`.
    let mut offset = text[span.start..]
        .find('\n')
        .map_or(text.len(), |i| span.start + i + 1);
    while offset < text.len() {
        let end = text[offset..]
            .find('\n')
            .map_or(text.len(), |i| offset + i + 1);
        let line = &text[offset..end];
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') && !trimmed.starts_with("[source") {
            break;
        }
        let rest = trimmed.strip_prefix(key).map(str::trim_start);
        if rest.is_some_and(|r| r.starts_with('=')) {
            return offset + (line.len() - trimmed.len());
        }
        offset = end;
    }
    span.start
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
    pub decode_threads: Option<usize>,
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::parse;

    #[test]
    fn a_key_of_another_kind_is_refused_naming_the_key_the_kind_and_its_line() {
        for kind in ["stdin", "file", "kafka", "http", "okta_api", "auth0_api"] {
            let text = format!("[source]\nkind = \"{kind}\"\n\ntopic = \"auth\"\n");
            let err = parse(Path::new("a.toml"), &text).unwrap_err();
            let want = format!("a.toml:4:1: unknown field `topic` for source kind `{kind}`, ");
            assert!(err.0[0].starts_with(&want), "{kind}: {err}");
        }
        let err = parse(
            Path::new("a.toml"),
            "[source]\nkind = \"file\"\npath = \"p\"\ntopics = [\"auth\"]\n",
        )
        .unwrap_err();
        assert_eq!(
            err.0,
            [
                "a.toml:4:1: unknown field `topics` for source kind `file`, expected one of \
                 `format`, `path`, `follow`, `rotate_wait`"
            ]
        );
        // An inline table has no line of its own per key: its position is the table's.
        let err = parse(
            Path::new("a.toml"),
            "source = { kind = \"stdin\", path = \"p\" }\n",
        )
        .unwrap_err();
        assert!(
            err.0[0].starts_with("a.toml:1:10: unknown field `path`"),
            "{err}"
        );
        let err = parse(Path::new("a.toml"), "[source]\nkind = \"kafak\"\n").unwrap_err();
        assert!(
            err.0[0].starts_with("a.toml:2:8: unknown variant `kafak`, expected one of `stdin`"),
            "{err}"
        );
    }
}
