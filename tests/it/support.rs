//! Helpers shared by the integration tests: the built binary and the repository's paths.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn rules_dir() -> PathBuf {
    repo().join("rules")
}

/// Runs the built `authwatch` binary with `stdin` as its standard input.
pub fn authwatch(args: &[&str], stdin: &[u8]) -> Output {
    authwatch_in(&repo(), args, stdin)
}

pub fn authwatch_in(dir: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_authwatch"))
        .args(args)
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the authwatch binary runs");
    let mut input = child.stdin.take().expect("stdin is piped");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("authwatch finishes");
    writer.join().expect("stdin writer");
    out
}

/// The alerts printed on stdout, parsed.
pub fn alerts(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("alert line is JSON ({e}): {l}"))
        })
        .collect()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A test that needs something only CI provides (a broker, a receiver, a data folder) calls this
/// when it is missing: on a developer's machine the test is skipped with the printed reason; under
/// `CI=true` (where `.ci/run` provides everything) a missing dependency is a failure, so a skipped
/// suite can never pass as a green one.
pub fn skip_unless_ci(reason: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but {reason}");
    }
    eprintln!("skipped: {reason}");
}
