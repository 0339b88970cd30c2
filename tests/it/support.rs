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

/// A free port on 127.0.0.1 (bound, then released for a daemon or receiver to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A running `authwatch run` started by a test: the one daemon harness. Killed and reaped
/// when dropped, so a test that fails midway leaves no process behind. Each area builds its
/// configuration and, where it needs one, a command of its own ([`Daemon::spawn`]).
pub struct Daemon {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    /// Where its stderr (the logs) goes.
    pub log: PathBuf,
}

impl Daemon {
    /// `authwatch run --config cfg` with `env` and `RUST_LOG=info`: stdin piped (see
    /// [`Daemon::send`]), stdout discarded, stderr to a log file beside the configuration.
    pub fn start(cfg: &Path, env: &[(&str, &str)]) -> Daemon {
        let log = cfg.with_extension(format!("{}.log", chrono::Utc::now().timestamp_micros()));
        let mut command = Daemon::command(cfg);
        command
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::null());
        Daemon::spawn(command, &log)
    }

    /// `authwatch run --config cfg`, for a test to add its environment and standard streams to.
    pub fn command(cfg: &Path) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_authwatch"));
        command.args(["run", "--config", cfg.to_str().unwrap()]);
        command
    }

    /// Starts `command` with its stderr appended to `log`.
    pub fn spawn(mut command: Command, log: &Path) -> Daemon {
        let file = std::fs::File::options()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut child = command
            .stderr(file)
            .spawn()
            .expect("the authwatch binary runs");
        let stdin = child.stdin.take();
        Daemon {
            child,
            stdin,
            log: log.to_path_buf(),
        }
    }

    /// SIGKILL (no checkpoint, no revocation, no last commit), then reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Writes lines to its stdin (a `kind = "stdin"` source).
    pub fn send(&mut self, lines: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is piped");
        stdin.write_all(lines.as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
    }

    /// Waits for the process to end, at most `within`: its status and how long it took, or
    /// `None` while it still runs.
    pub fn exits_within(
        &mut self,
        within: std::time::Duration,
    ) -> Option<(std::process::ExitStatus, std::time::Duration)> {
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some((status, started.elapsed()));
            }
            if started.elapsed() > within {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// SIGTERM, then the exit (within 30 s) and how long it took; panics with the log
    /// otherwise.
    pub fn sigterm(&mut self) -> (std::process::ExitStatus, std::time::Duration) {
        self.terminate();
        match self.exits_within(std::time::Duration::from_secs(30)) {
            Some(exit) => exit,
            None => panic!("the daemon did not stop within 30 s:\n{}", self.log_text()),
        }
    }

    /// SIGTERM, then the exit status; the log is printed when the exit is not clean.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let (status, _) = self.sigterm();
        if !status.success() {
            eprintln!(
                "the daemon exited with {status}; its log:\n{}",
                self.log_text()
            );
        }
        status
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
