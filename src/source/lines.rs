//! Reads newline-delimited records with a bounded buffer: an endless line is skipped and
//! reported, never held in memory whole.

use std::io::{self, BufRead};

use crate::event::decode::MAX_EVENT_BYTES;

/// One record read from the input.
#[derive(Debug, PartialEq, Eq)]
pub enum Record {
    /// A line (without its line ending) in the caller's buffer.
    Line,
    /// A line longer than the limit; its length in bytes. Nothing of it was kept.
    TooLong(usize),
}

pub struct LineReader<R> {
    inner: R,
    max_len: usize,
    /// 1-based number of the line last returned.
    pub line_no: u64,
    /// Bytes consumed so far (for progress and file positions).
    pub offset: u64,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(inner: R) -> LineReader<R> {
        LineReader::with_limit(inner, MAX_EVENT_BYTES)
    }

    pub fn with_limit(inner: R, max_len: usize) -> LineReader<R> {
        LineReader {
            inner,
            max_len,
            line_no: 0,
            offset: 0,
        }
    }

    /// Reads the next record into `buf`; `None` at end of input.
    pub fn next_record(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<Record>> {
        buf.clear();
        let mut len = 0usize;
        let mut saw_any = false;
        loop {
            let available = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                // End of input: a last line without a newline still counts.
                if !saw_any {
                    return Ok(None);
                }
                break;
            }
            saw_any = true;
            let (chunk, done) = match memchr(available) {
                Some(i) => (&available[..i], Some(i + 1)),
                None => (available, None),
            };
            len += chunk.len();
            if len <= self.max_len {
                buf.extend_from_slice(chunk);
            } else {
                buf.clear();
            }
            let consumed = done.unwrap_or(available.len());
            self.inner.consume(consumed);
            self.offset += consumed as u64;
            if done.is_some() {
                break;
            }
        }
        self.line_no += 1;
        if len > self.max_len {
            return Ok(Some(Record::TooLong(len)));
        }
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        Ok(Some(Record::Line))
    }
}

impl<T: io::Read> LineReader<io::BufReader<T>> {
    /// True when more input is already buffered (the next read will not block).
    pub fn has_buffered(&self) -> bool {
        !self.inner.buffer().is_empty()
    }
}

fn memchr(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_and_long_ones_skipped_without_losing_the_next() {
        let input = b"one\r\ntwo-is-too-long\nthree";
        let mut r = LineReader::with_limit(io::BufReader::with_capacity(4, &input[..]), 6);
        let mut buf = Vec::new();
        assert_eq!(r.next_record(&mut buf).unwrap(), Some(Record::Line));
        assert_eq!(buf, b"one");
        assert_eq!(r.next_record(&mut buf).unwrap(), Some(Record::TooLong(15)));
        assert_eq!(r.next_record(&mut buf).unwrap(), Some(Record::Line));
        assert_eq!((buf.as_slice(), r.line_no), (&b"three"[..], 3));
        assert_eq!(r.next_record(&mut buf).unwrap(), None);
        assert_eq!(r.offset, input.len() as u64);
    }
}
