//! Alerts appended as lines (JSON or OCSF, `lines.rs`) to a file, reopened on request (SIGHUP
//! after log rotation: the rotated file is left to the rotator and writing goes on in a new
//! file at `path`).

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::lines::LineEncoder;
use super::stdout::{outcome, write_lines};
use super::common::{AlertFormat, DeliveryPolicy};
use super::kind::{Kind, Options, Shared, deliver};
use super::{BoxFuture, Deliver, Record, Results, all};

/// `[[sink]] kind = "file"`: `path`.
#[derive(Clone, Debug, PartialEq)]
pub struct FileConfig {
    pub path: PathBuf,
}

impl Kind for FileConfig {
    const SHARED: Shared = Shared {
        delivery: false,
        bulk: false,
        format: true,
        on_call: false,
    };

    fn read(o: &mut Options<'_>) -> Option<Self> {
        o.required("path").map(|p| FileConfig { path: p.into() })
    }

    fn build(
        &self,
        _: &DeliveryPolicy,
        _: bool,
        format: Option<AlertFormat>,
    ) -> Result<Arc<dyn Deliver>, String> {
        FileDeliver::open(&self.path, format.unwrap_or(AlertFormat::Json))
            .map(deliver)
            .map_err(|e| e.to_string())
    }
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot open the alert file {}: {e}", path.display()),
            )
        })
}

/// The outbox's file sink. `reopen` only raises a flag: the next write (on a blocking thread)
/// reopens, so the signal handler's side never does file IO.
pub struct FileDeliver {
    path: PathBuf,
    file: Arc<Mutex<Option<File>>>,
    reopen: Arc<AtomicBool>,
    encoder: Arc<LineEncoder>,
}

impl FileDeliver {
    /// Opens the file now, so a path that cannot be written stops the daemon at start.
    pub fn open(path: &Path, format: AlertFormat) -> io::Result<FileDeliver> {
        Ok(FileDeliver {
            path: path.to_path_buf(),
            file: Arc::new(Mutex::new(Some(open(path)?))),
            reopen: Arc::new(AtomicBool::new(false)),
            encoder: Arc::new(LineEncoder::new(format, true)),
        })
    }

    /// Reopens the file before the next write (log rotation).
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Relaxed);
    }
}

impl Deliver for FileDeliver {
    fn deliver<'a>(&'a self, alerts: &'a [Arc<Record>]) -> BoxFuture<'a, Results> {
        let alerts = alerts.to_vec();
        let (path, file, reopen) = (self.path.clone(), self.file.clone(), self.reopen.clone());
        let encoder = self.encoder.clone();
        Box::pin(async move {
            let n = alerts.len();
            let written = tokio::task::spawn_blocking(move || {
                let mut slot = file.lock().unwrap_or_else(|p| p.into_inner());
                if reopen.swap(false, Ordering::Relaxed) || slot.is_none() {
                    *slot = None;
                    *slot = Some(open(&path)?);
                    tracing::info!(path = %path.display(), "alert file reopened");
                }
                let f = slot.as_mut().expect("opened above");
                write_lines(f, &alerts, &encoder)
            })
            .await;
            all(n, outcome(written))
        })
    }

    fn reopen(&self) {
        FileDeliver::reopen(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_rotated_file_is_left_behind_and_a_new_one_written_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        let sink = FileDeliver::open(&path, AlertFormat::Json).unwrap();
        let a = Arc::new(crate::sink::record::tests::sample());
        assert!(
            sink.deliver(std::slice::from_ref(&a))
                .await
                .iter()
                .all(Result::is_ok)
        );
        std::fs::rename(&path, dir.path().join("alerts.jsonl.1")).unwrap();
        sink.reopen();
        assert!(
            sink.deliver(&[a.clone(), a])
                .await
                .iter()
                .all(Result::is_ok)
        );
        let lines = |p: &Path| std::fs::read_to_string(p).unwrap().lines().count();
        assert_eq!(lines(&dir.path().join("alerts.jsonl.1")), 1);
        assert_eq!(lines(&path), 2);
    }
}
