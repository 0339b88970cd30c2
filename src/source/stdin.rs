//! Standard input as a source: lines read on a thread and sent in batches.

use std::io::{self, BufReader};
use std::sync::mpsc::SyncSender;

use super::lines::{LineReader, Record};
use super::{BATCH_RECORDS, Batch, Item};

/// Reads records and sends them in batches; a batch also goes out whenever nothing more is
/// buffered, so a slow live source is not held back waiting for a full batch.
pub fn read_batches<R: io::Read>(input: BufReader<R>, tx: SyncSender<Batch>) -> io::Result<()> {
    let mut lines = LineReader::new(input);
    let mut buf = Vec::new();
    let mut items = Vec::with_capacity(BATCH_RECORDS);
    while let Some(record) = lines.next_record(&mut buf)? {
        items.push(match record {
            Record::Line => Item::Line(std::mem::take(&mut buf), lines.line_no),
            Record::TooLong(len) => Item::TooLong(len, lines.line_no),
        });
        if items.len() >= BATCH_RECORDS || !lines.has_buffered() {
            let full = std::mem::replace(&mut items, Vec::with_capacity(BATCH_RECORDS));
            if tx.send(Batch::without_position(full)).is_err() {
                return Ok(());
            }
        }
    }
    if !items.is_empty() {
        let _ = tx.send(Batch::without_position(items));
    }
    Ok(())
}
