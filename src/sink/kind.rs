//! What a sink kind implements ([`Kind`]): its own keys read into its config, what it takes
//! of the keys every sink shares ([`Shared`]), and its delivery. [`Options`] reads the keys;
//! `sink_kinds!` (used once, in `mod.rs`) makes the `SinkKind` enum from the list of kinds.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::Deliver;
use super::common::{AlertFormat, DeliveryPolicy};
use crate::secret::{self, Secret};

/// A sink kind: the config type one `[[sink]]` of this kind validates into.
pub trait Kind: Sized {
    /// What the kind takes of the keys every sink shares.
    const SHARED: Shared;
    /// Reads the kind's own keys; `None` when they cannot make a sink (reported through `o`).
    fn read(o: &mut Options<'_>) -> Option<Self>;
    /// The delivery side. Nothing connects here: clients and TLS settings are built (so a
    /// bad CA file stops the start), connections are made on first use.
    fn build(
        &self,
        policy: &DeliveryPolicy,
        include_evidence: bool,
        format: Option<AlertFormat>,
    ) -> Result<Arc<dyn Deliver>, String>;
}

/// Which of the keys every `[[sink]]` may carry apply to a kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shared {
    /// `timeout`, `max_age`, `retry_initial`, `retry_max`, `max_attempts`, `max_answer_bytes`
    /// and `include_evidence`: a receiver that can fail. Not for the local writers.
    pub delivery: bool,
    /// `batch_size`: the receiver takes alerts in bulk (default `DEFAULT_BATCH_SIZE`).
    pub bulk: bool,
    /// `format` (json or ocsf): the kind writes the alert as it is.
    pub format: bool,
    /// People read it: they get the summary and links, not the raw events, by default.
    pub on_call: bool,
}

impl Shared {
    /// A receiver that takes one alert at a time in its own shape.
    pub const RECEIVER: Shared = Shared {
        delivery: true,
        bulk: false,
        format: false,
        on_call: false,
    };
}

/// A delivery as the `Arc<dyn Deliver>` the outbox workers hold.
pub fn deliver<D: Deliver + 'static>(d: D) -> Arc<dyn Deliver> {
    Arc::new(d)
}

/// Makes `SinkKind` (one variant per kind, wrapping the module's config type) and its
/// dispatch from one list of `module => Variant(Config)`; the module's name is the `kind` a
/// `[[sink]]` names. It declares the modules too, so a kind is registered by its line alone,
/// and every `match` on the kind is generated, so none can miss one.
macro_rules! sink_kinds {
    ($($module:ident => $variant:ident($config:ident),)+) => {
        $(mod $module; pub use $module::$config;)+

        /// A sink kind with its validated keys.
        #[derive(Clone, Debug, PartialEq)]
        pub enum SinkKind {
            $($variant($config),)+
        }

        impl SinkKind {
            /// Every kind a `[[sink]]` may name.
            pub const NAMES: &[&str] = &[$(stringify!($module)),+];

            pub fn name(&self) -> &'static str {
                match self {
                    $(SinkKind::$variant(_) => stringify!($module),)+
                }
            }

            pub fn shared(&self) -> $crate::sink::kind::Shared {
                match self {
                    $(SinkKind::$variant(_) => <$config as $crate::sink::kind::Kind>::SHARED,)+
                }
            }

            /// The kind called `name` with what it takes of the shared keys, and its own
            /// keys read (`None` if they are wrong); `None` for an unknown name.
            pub fn read(
                name: &str,
                o: &mut $crate::sink::kind::Options<'_>,
            ) -> Option<($crate::sink::kind::Shared, Option<SinkKind>)> {
                use $crate::sink::kind::Kind;
                match name {
                    $(stringify!($module) => Some((
                        $config::SHARED,
                        $config::read(o).map(SinkKind::$variant),
                    )),)+
                    _ => None,
                }
            }

            pub fn build(
                &self,
                policy: &$crate::sink::DeliveryPolicy,
                include_evidence: bool,
                format: Option<$crate::sink::AlertFormat>,
            ) -> Result<std::sync::Arc<dyn $crate::sink::Deliver>, String> {
                use $crate::sink::kind::Kind;
                match self {
                    $(SinkKind::$variant(c) => c.build(policy, include_evidence, format),)+
                }
            }
        }
    };
}
pub(super) use sink_kinds;

/// The kind's own keys of one `[[sink]]`, taken one by one with their type checked; every
/// mistake is reported (naming the sink) and remembered, and what is left at the end is an
/// unknown key.
pub struct Options<'a> {
    table: toml::Table,
    at: String,
    error: &'a mut dyn FnMut(String),
    failed: bool,
}

impl<'a> Options<'a> {
    /// `at` names the sink in every message.
    pub fn new(table: toml::Table, at: String, error: &'a mut dyn FnMut(String)) -> Options<'a> {
        Options {
            table,
            at,
            error,
            failed: false,
        }
    }

    /// Whether a mistake was reported.
    pub fn failed(&self) -> bool {
        self.failed
    }

    pub fn fail(&mut self, message: String) {
        self.failed = true;
        (self.error)(format!("{}: {message}", self.at));
    }

    pub fn take(&mut self, key: &str) -> Option<toml::Value> {
        self.table.remove(key)
    }

    pub fn str(&mut self, key: &str) -> Option<String> {
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

    pub fn required(&mut self, key: &str) -> Option<String> {
        if !self.table.contains_key(key) {
            self.fail(format!("missing `{key}`"));
        }
        self.str(key)
    }

    pub fn bool(&mut self, key: &str) -> Option<bool> {
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

    pub fn duration(&mut self, key: &str) -> Option<Duration> {
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
    pub fn strings(&mut self, key: &str) -> Option<Vec<String>> {
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

    pub fn url(&mut self, key: &str) -> Option<String> {
        url(self, key, true)
    }

    pub fn url_optional(&mut self, key: &str) -> Option<String> {
        url(self, key, false)
    }

    /// Refuses a secret written inline (SPEC §5).
    pub fn no_inline(&mut self, key: &str) {
        if self.take(key).is_some() {
            self.fail(format!(
                "`{key}` is a secret and is never written inline; use {key}_env or {key}_file"
            ));
        }
    }

    pub fn secret(&mut self, key: &str) -> Option<Secret> {
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
    pub fn required_secret(&mut self, key: &str, what: &str) -> Option<Secret> {
        let given = [format!("{key}_env"), format!("{key}_file")]
            .iter()
            .any(|k| self.table.contains_key(k));
        if !given {
            self.fail(format!("needs {key}_env or {key}_file ({what})"));
        }
        self.secret(key)
    }

    pub fn headers(&mut self, key: &str) -> Vec<(String, String)> {
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
    pub fn ca_file(&mut self) -> Option<PathBuf> {
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

    pub fn finish(&mut self) {
        let keys: Vec<String> = self.table.keys().cloned().collect();
        for key in keys {
            self.fail(format!("unknown key `{key}`"));
        }
    }
}

fn url(o: &mut Options<'_>, key: &str, required: bool) -> Option<String> {
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
    use super::super::SinkKind;

    /// A module that implements `Kind` but is missing from the list in `mod.rs` is not even
    /// compiled; this finds it.
    #[test]
    fn every_module_implementing_kind_is_listed() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sink");
        let mut modules: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| {
                std::fs::read_to_string(path)
                    .unwrap()
                    .contains("\nimpl Kind for ")
            })
            .map(|path| path.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        modules.sort();
        let mut names = SinkKind::NAMES.to_vec();
        names.sort();
        assert_eq!(modules, names);
    }
}
