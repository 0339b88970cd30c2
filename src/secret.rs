//! Secrets named in the configuration: never written inline (SPEC §5), but read from the
//! environment variable a `*_env` key names or the file a `*_file` key names.

use std::fmt;

use sha2::{Digest, Sha256};

/// A credential read at startup. Its `Debug` never shows the value, so a logged or printed
/// `Config` does not leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is the secret, in time that does not depend on where (or whether)
    /// the two differ: both sides are hashed and the digests compared without an early exit,
    /// so neither a matching prefix nor the secret's length can be timed from outside.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        let want = Sha256::digest(self.0.as_bytes());
        let got = Sha256::digest(candidate);
        let diff = want
            .iter()
            .zip(got.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Reads the secret that `<key>_env` or `<key>_file` names; `None` when neither is given.
/// `at` names the section for messages (`[source]`). A file's trailing newline is dropped
/// (editors and `echo` add one); an empty value is an error, never an empty credential.
pub fn resolve(
    at: &str,
    key: &str,
    env: Option<&str>,
    file: Option<&str>,
    error: &mut dyn FnMut(String),
) -> Option<Secret> {
    let value = match (env, file) {
        (None, None) => return None,
        (Some(_), Some(_)) => {
            error(format!(
                "{at} give one of {key}_env and {key}_file, not both"
            ));
            return None;
        }
        (Some(var), None) => match std::env::var(var) {
            Ok(v) => v,
            Err(_) => {
                error(format!(
                    "{at} {key}_env names `{var}`, which is not set; export it or use {key}_file"
                ));
                return None;
            }
        },
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(v) => v.trim_end_matches(['\r', '\n']).to_string(),
            Err(e) => {
                error(format!("{at} {key}_file `{path}`: {e}"));
                return None;
            }
        },
    };
    if value.is_empty() {
        error(format!(
            "{at} {key} is empty; a credential must not be empty"
        ));
        return None;
    }
    Some(Secret(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve_collecting(env: Option<&str>, file: Option<&str>) -> (Option<Secret>, Vec<String>) {
        let mut errors = Vec::new();
        let secret = resolve("[source]", "token", env, file, &mut |e| errors.push(e));
        (secret, errors)
    }

    #[test]
    fn matches_only_the_exact_value() {
        let s = Secret::new("s3cret");
        assert!(s.matches(b"s3cret"));
        assert!(!s.matches(b"s3cre"));
        assert!(!s.matches(b"s3cret "));
        assert!(!s.matches(b""));
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
    }

    #[test]
    fn reads_files_without_their_newline_and_refuses_empty_or_missing_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "abc\n").unwrap();
        let (secret, errors) = resolve_collecting(None, path.to_str());
        assert_eq!(secret.map(|s| s.expose().to_string()), Some("abc".into()));
        assert!(errors.is_empty());

        std::fs::write(&path, "\n").unwrap();
        let (secret, errors) = resolve_collecting(None, path.to_str());
        assert!(
            secret.is_none() && errors[0].contains("empty"),
            "{errors:?}"
        );

        let (_, errors) = resolve_collecting(Some("AUTHWATCH_TEST_SURELY_UNSET_VAR"), None);
        assert!(errors[0].contains("not set"), "{errors:?}");
        let (_, errors) = resolve_collecting(Some("X"), path.to_str());
        assert!(errors[0].contains("not both"), "{errors:?}");
        assert_eq!(resolve_collecting(None, None), (None, vec![]));
    }
}
