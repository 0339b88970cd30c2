//! Standard input (or `replay`'s files) as a source: read in blocks on a thread, its lines
//! sent in batches as slices of those blocks.

use std::io;
use std::sync::mpsc::SyncSender;

use super::lines::{Lines, Piece};
use super::{BATCH_RECORDS, Batch, Item};

/// Reads records and sends them in batches; a batch also goes out whenever the input had no
/// more at hand, so a slow live source is not held back waiting for a full batch.
pub fn read_batches<R: io::Read>(mut input: R, tx: SyncSender<Batch>) -> io::Result<()> {
    let mut lines = Lines::default();
    let mut line_no = 0u64;
    let mut items = Vec::with_capacity(BATCH_RECORDS);
    let item = |piece, line_no| match piece {
        Piece::Line(bytes) => Item::Line(bytes, line_no),
        Piece::TooLong(len) => Item::TooLong(len, line_no),
    };
    loop {
        let (read, more_at_hand) = lines.read_from(&mut input)?;
        if read == 0 {
            break;
        }
        let mut stopped = false;
        lines.drain(|piece, _| {
            line_no += 1;
            items.push(item(piece, line_no));
            if items.len() >= BATCH_RECORDS && !stopped {
                let full = std::mem::replace(&mut items, Vec::with_capacity(BATCH_RECORDS));
                stopped = tx.send(Batch::without_position(full)).is_err();
            }
        });
        if stopped {
            return Ok(());
        }
        if !more_at_hand && !items.is_empty() {
            let some = std::mem::replace(&mut items, Vec::with_capacity(BATCH_RECORDS));
            if tx.send(Batch::without_position(some)).is_err() {
                return Ok(());
            }
        }
    }
    if let Some((piece, _)) = lines.finish() {
        line_no += 1;
        items.push(item(piece, line_no));
    }
    if !items.is_empty() {
        let _ = tx.send(Batch::without_position(items));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_go_in_bounded_batches_numbered_in_order_with_the_unterminated_last() {
        let mut input = "{}\n".repeat(2 * BATCH_RECORDS + 1).into_bytes();
        input.extend_from_slice(b"last");
        let (tx, rx) = std::sync::mpsc::sync_channel(16);
        read_batches(&input[..], tx).unwrap();
        let batches: Vec<Batch> = rx.iter().collect();
        assert!(batches.iter().all(|b| b.items.len() <= BATCH_RECORDS));
        let numbers: Vec<u64> = batches
            .iter()
            .flat_map(|b| &b.items)
            .map(|item| match item {
                Item::Line(_, n) => *n,
                _ => panic!("only lines"),
            })
            .collect();
        assert_eq!(
            numbers,
            (1..=2 * BATCH_RECORDS as u64 + 2).collect::<Vec<_>>()
        );
        let Some(Item::Line(last, _)) = batches.last().and_then(|b| b.items.last()) else {
            panic!("a last line")
        };
        assert_eq!(&last[..], b"last");
    }
}
