//! Alerts as lines in the format a stdout or file sink was given: SPEC §3 JSON, OCSF Detection
//! Findings (`ocsf.rs`) or table rows under one header (`table.rs`).

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use super::common::AlertFormat;
use super::{Record, ocsf, table};
use crate::engine::Alert;

/// Encodes alerts one line each; shared by the blocking writers of one sink.
pub struct LineEncoder {
    format: AlertFormat,
    with_evidence: bool,
    /// The table's header goes before the first row only.
    header_written: AtomicBool,
}

impl LineEncoder {
    pub fn new(format: AlertFormat, with_evidence: bool) -> LineEncoder {
        LineEncoder {
            format,
            with_evidence,
            header_written: AtomicBool::new(false),
        }
    }

    /// Appends the line for a stored alert.
    pub fn encode(&self, alert: &Record, buf: &mut Vec<u8>) -> io::Result<()> {
        match self.format {
            AlertFormat::Json if self.with_evidence => serde_json::to_writer(&mut *buf, alert)?,
            AlertFormat::Json => serde_json::to_writer(&mut *buf, &alert.to_json(false))?,
            AlertFormat::Ocsf => {
                serde_json::to_writer(&mut *buf, &ocsf::finding(alert, self.with_evidence))?
            }
            AlertFormat::Table => {
                if !self.header_written.swap(true, Ordering::Relaxed) {
                    buf.extend_from_slice(table::header().as_bytes());
                }
                // The row carries its own newline.
                buf.extend_from_slice(table::row(alert).as_bytes());
                return Ok(());
            }
        }
        buf.push(b'\n');
        Ok(())
    }

    /// Appends the line for an alert fresh from the engine (`replay`). JSON is written from
    /// the alert itself, byte for byte as before; the other formats read it as a [`Record`],
    /// as the outbox's sinks do, so each format has one mapping.
    pub fn encode_alert(&self, alert: &Alert, buf: &mut Vec<u8>) -> io::Result<()> {
        if self.format == AlertFormat::Json && self.with_evidence {
            serde_json::to_writer(&mut *buf, alert)?;
            buf.push(b'\n');
            return Ok(());
        }
        self.encode(&Record::from_alert(alert)?, buf)
    }
}
