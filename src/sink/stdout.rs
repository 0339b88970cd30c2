//! Alerts as JSON lines on standard output: `replay` writes to it directly, the daemon
//! through the outbox.

use std::io::{self, BufWriter, Stdout, Write};
use std::sync::Arc;

use super::{AlertSink, BoxFuture, Deliver, Record, Results, SendError, all};
use crate::engine::Alert;

pub struct StdoutSink {
    out: BufWriter<Stdout>,
}

impl StdoutSink {
    pub fn new() -> StdoutSink {
        StdoutSink {
            out: BufWriter::new(io::stdout()),
        }
    }
}

impl Default for StdoutSink {
    fn default() -> Self {
        StdoutSink::new()
    }
}

impl AlertSink for StdoutSink {
    fn deliver(&mut self, alert: &Alert) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, alert)?;
        self.out.write_all(b"\n")
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The outbox's stdout sink: a blocking write, moved off the runtime's threads.
pub struct StdoutDeliver;

impl Deliver for StdoutDeliver {
    fn deliver<'a>(&'a self, alerts: &'a [Arc<Record>]) -> BoxFuture<'a, Results> {
        let alerts = alerts.to_vec();
        Box::pin(async move {
            let n = alerts.len();
            let written = tokio::task::spawn_blocking(move || {
                let mut out = io::stdout().lock();
                write_lines(&mut out, &alerts)
            })
            .await;
            all(n, outcome(written))
        })
    }
}

/// JSON lines of every alert, flushed.
pub fn write_lines(out: &mut dyn Write, alerts: &[Arc<Record>]) -> io::Result<()> {
    let mut buf = Vec::new();
    for a in alerts {
        serde_json::to_writer(&mut buf, a.as_ref())?;
        buf.push(b'\n');
    }
    out.write_all(&buf)?;
    out.flush()
}

pub fn outcome(written: Result<io::Result<()>, tokio::task::JoinError>) -> Result<(), SendError> {
    match written {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(SendError::unavailable(format!("write failed: {e}"))),
        Err(e) => Err(SendError::unavailable(format!("the writer stopped: {e}"))),
    }
}
