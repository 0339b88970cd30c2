//! A failing store ends the daemon (issue 11): a full filesystem under the state directory,
//! or the directory removed under a running daemon, makes `run` exit 1 within seconds with
//! a message naming the directory, instead of hanging inside sled.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::support::{Daemon, free_port, repo, rules_dir};

/// How long the daemon may take to exit once its store has failed.
const EXIT_WITHIN: Duration = Duration::from_secs(15);

/// The status of a GET, or `None` while nothing answers.
fn status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.split_whitespace().nth(1)?.parse().ok()
}

/// A daemon reading a file, its state in a directory the test breaks.
struct FileDaemon {
    daemon: Daemon,
    port: u16,
    events: PathBuf,
}

impl FileDaemon {
    fn start(dir: &Path, state: &Path) -> FileDaemon {
        let port = free_port();
        let events = dir.join("events.jsonl");
        std::fs::write(&events, "").unwrap();
        let cfg = dir.join("authwatch.toml");
        std::fs::write(
            &cfg,
            format!(
                "[source]\nkind = \"file\"\npath = \"{}\"\n[state]\ndir = \"{}\"\ncheckpoint_interval = \"200ms\"\nio_timeout = \"5s\"\n[rules]\ndir = \"{}\"\nlateness = \"0s\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n[[sink]]\nkind = \"file\"\npath = \"{}\"\n",
                events.display(),
                state.display(),
                rules_dir().display(),
                dir.join("alerts.jsonl").display()
            ),
        )
        .unwrap();
        let daemon = FileDaemon {
            daemon: Daemon::start(&cfg, &[("RUST_LOG", "warn")]),
            port,
            events,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while status(daemon.port, "/healthz") != Some(200) {
            assert!(
                Instant::now() < deadline,
                "the daemon did not come up: {}",
                daemon.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        daemon
    }

    /// A morning of traffic: engine state, checkpoints and outbox entries to write.
    fn feed_demo(&self) {
        let demo = std::fs::read_to_string(repo().join("demo/events.jsonl")).unwrap();
        std::fs::write(&self.events, demo).unwrap();
    }

    fn stderr(&self) -> String {
        self.daemon.log_text()
    }

    /// Waits for the process to end, at most `within`; `None` when it is still running.
    fn exits_within(&mut self, within: Duration) -> Option<(ExitStatus, Duration)> {
        self.daemon.exits_within(within)
    }
}

/// A tmpfs mounted for the test, lazily unmounted when dropped.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_filesystem_under_the_state_ends_the_daemon_naming_the_directory() {
    // SAFETY: geteuid(2) has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root && std::env::var("CI").as_deref() != Ok("true") {
        println!("skipped: mounting a tmpfs needs root (CI runs this test as root)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&state)
        .status()
        .unwrap();
    assert!(mounted.success(), "mount -t tmpfs failed");
    let _tmpfs = Tmpfs(state.clone());
    let mut daemon = FileDaemon::start(dir.path(), &state);
    // Fill what is left of the filesystem, then give the daemon something to write.
    let mut filler = std::fs::File::create(state.join("filler")).unwrap();
    let block = vec![0u8; 64 * 1024];
    while filler.write_all(&block).is_ok() {}
    let _ = filler.sync_all();
    daemon.feed_demo();
    let Some((status, took)) = daemon.exits_within(EXIT_WITHIN) else {
        panic!(
            "still running {EXIT_WITHIN:?} after its filesystem filled up:\n{}",
            daemon.stderr()
        );
    };
    let err = daemon.stderr();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("state store in {} failed", state.display())),
        "{err}"
    );
    assert!(err.contains("No space left on device"), "{err}");
    println!("exited {took:?} after the events were appended");
}

#[test]
fn removing_the_state_directory_under_a_running_daemon_ends_it() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut daemon = FileDaemon::start(dir.path(), &state);
    daemon.feed_demo();
    let alerts = dir.path().join("alerts.jsonl");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::metadata(&alerts).map_or(0, |m| m.len()) == 0 {
        assert!(Instant::now() < deadline, "no alert: {}", daemon.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::remove_dir_all(&state).unwrap();
    let Some((status, took)) = daemon.exits_within(EXIT_WITHIN) else {
        panic!(
            "still running {EXIT_WITHIN:?} after its state directory was removed:\n{}",
            daemon.stderr()
        );
    };
    let err = daemon.stderr();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("state store in {} failed", state.display()))
            && err.contains("removed"),
        "{err}"
    );
    println!("exited {took:?} after the directory was removed");
}
