//! Alerts appended as JSON lines to a file.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use super::AlertSink;
use crate::engine::Alert;

pub struct FileSink {
    out: BufWriter<File>,
}

impl FileSink {
    pub fn open(path: &Path) -> io::Result<FileSink> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot open the alert file {}: {e}", path.display()),
                )
            })?;
        Ok(FileSink {
            out: BufWriter::new(file),
        })
    }
}

impl AlertSink for FileSink {
    fn deliver(&mut self, alert: &Alert) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, alert)?;
        self.out.write_all(b"\n")
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
