//! Alerts on standard output, one line each in the sink's format (`lines.rs`): `replay`
//! writes to it directly, the daemon through the outbox.

use std::io::{self, BufWriter, Stdout, Write};
use std::sync::Arc;

use super::lines::LineEncoder;
use super::common::{AlertFormat, DeliveryPolicy};
use super::kind::{Kind, Options, Shared, deliver};
use super::{AlertSink, BoxFuture, Deliver, Record, Results, SendError, all};
use crate::engine::Alert;

/// `[[sink]] kind = "stdout"`: no keys of its own.
#[derive(Clone, Debug, PartialEq)]
pub struct StdoutConfig;

impl Kind for StdoutConfig {
    const SHARED: Shared = Shared {
        delivery: false,
        bulk: false,
        format: true,
        on_call: false,
    };

    fn read(_: &mut Options<'_>) -> Option<Self> {
        Some(StdoutConfig)
    }

    fn build(
        &self,
        _: &DeliveryPolicy,
        _: bool,
        format: Option<AlertFormat>,
    ) -> Result<Arc<dyn Deliver>, String> {
        Ok(deliver(StdoutDeliver::new(
            format.unwrap_or_else(terminal_default),
        )))
    }
}

/// Alerts on standard output with no format chosen: a table when a person is watching (a
/// terminal), JSON lines for a program or a file otherwise.
pub fn terminal_default() -> AlertFormat {
    use std::io::IsTerminal;
    if std::io::stdout().is_terminal() {
        AlertFormat::Table
    } else {
        AlertFormat::Json
    }
}

pub struct StdoutSink {
    out: BufWriter<Stdout>,
    encoder: LineEncoder,
    buf: Vec<u8>,
}

impl StdoutSink {
    pub fn new(format: AlertFormat) -> StdoutSink {
        StdoutSink {
            out: BufWriter::new(io::stdout()),
            encoder: LineEncoder::new(format, true),
            buf: Vec::new(),
        }
    }
}

impl AlertSink for StdoutSink {
    fn deliver(&mut self, alert: &Alert) -> io::Result<()> {
        self.buf.clear();
        self.encoder.encode_alert(alert, &mut self.buf)?;
        self.out.write_all(&self.buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The outbox's stdout sink: a blocking write, moved off the runtime's threads.
pub struct StdoutDeliver {
    encoder: Arc<LineEncoder>,
}

impl StdoutDeliver {
    pub fn new(format: AlertFormat) -> StdoutDeliver {
        StdoutDeliver {
            encoder: Arc::new(LineEncoder::new(format, true)),
        }
    }
}

impl Deliver for StdoutDeliver {
    fn deliver<'a>(&'a self, alerts: &'a [Arc<Record>]) -> BoxFuture<'a, Results> {
        let alerts = alerts.to_vec();
        let encoder = self.encoder.clone();
        Box::pin(async move {
            let n = alerts.len();
            let written = tokio::task::spawn_blocking(move || {
                let mut out = io::stdout().lock();
                write_lines(&mut out, &alerts, &encoder)
            })
            .await;
            all(n, outcome(written))
        })
    }
}

/// Every alert as a line in the encoder's format, flushed.
pub fn write_lines(
    out: &mut dyn Write,
    alerts: &[Arc<Record>],
    encoder: &LineEncoder,
) -> io::Result<()> {
    let mut buf = Vec::new();
    for a in alerts {
        encoder.encode(a, &mut buf)?;
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
