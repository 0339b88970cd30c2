//! Splits newline-delimited input into records without copying them: input is read in large
//! blocks straight into a shared buffer, and each complete line is handed on as a slice of its
//! block (`Bytes`, a reference count, no allocation of its own). Only a line cut by the end of
//! a block is copied, once, to the start of the next. An endless line is skipped and
//! reported, never held in memory whole.

use std::io::{self, Read};

use bytes::{Bytes, BytesMut};

use crate::event::decode::MAX_EVENT_BYTES;

/// Bytes asked of the input per read: large enough that reading and splitting cost little
/// per line, small enough that a block's lines are decoded (and the block freed) soon.
pub const BLOCK_BYTES: usize = 256 << 10;

/// One record of the input.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    /// A line without its line ending (`\n` or `\r\n`), a slice of its block.
    Line(Bytes),
    /// A line longer than the limit: its length in bytes. Nothing of it was kept.
    TooLong(usize),
}

pub struct Lines {
    /// Read and not yet handed on: the start of a line not yet complete, then what the last
    /// read brought.
    buf: BytesMut,
    /// Bytes of the current line already dropped because it outgrew the limit.
    overlong: Option<usize>,
    max_len: usize,
    block: usize,
}

impl Default for Lines {
    fn default() -> Self {
        Lines::with_limit(MAX_EVENT_BYTES, BLOCK_BYTES)
    }
}

impl Lines {
    pub fn with_limit(max_len: usize, block: usize) -> Lines {
        Lines {
            buf: BytesMut::new(),
            overlong: None,
            max_len,
            block,
        }
    }

    /// Reads once from `input`, appending to what is buffered. The number of bytes read (0
    /// at end of input), and whether the read filled all the room it was offered (when it
    /// did not, the input had nothing more at hand: a live source is waiting for its writer).
    pub fn read_from(&mut self, input: &mut impl Read) -> io::Result<(usize, bool)> {
        let start = self.buf.len();
        if self.buf.capacity() - start < self.block / 2 {
            // A new block; the incomplete line at the end of the last one moves here.
            self.buf.reserve(self.block);
        }
        let room = self.buf.capacity() - start;
        self.buf.resize(start + room, 0);
        let read = loop {
            match input.read(&mut self.buf[start..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.buf.truncate(start);
                    return Err(e);
                }
            }
        };
        self.buf.truncate(start + read);
        Ok((read, read == room))
    }

    /// Hands on each complete line buffered, with the bytes it consumed of the input (its line
    /// ending included); the incomplete tail stays buffered.
    pub fn drain(&mut self, mut each: impl FnMut(Piece, usize)) {
        let Some(last) = memchr::memrchr(b'\n', &self.buf) else {
            self.bound_partial();
            return;
        };
        let block = self.buf.split_to(last + 1).freeze();
        let mut at = 0;
        for end in memchr::memchr_iter(b'\n', &block) {
            let consumed = end + 1 - at + self.overlong.unwrap_or(0);
            each(self.piece(&block, at, end), consumed);
            at = end + 1;
        }
        self.bound_partial();
    }

    /// At end of input: the last line, complete even without a newline, with the bytes it
    /// consumed; `None` when the input ended with a newline.
    pub fn finish(&mut self) -> Option<(Piece, usize)> {
        if self.buf.is_empty() && self.overlong.is_none() {
            return None;
        }
        let consumed = self.buf.len() + self.overlong.unwrap_or(0);
        let block = std::mem::take(&mut self.buf).freeze();
        Some((self.piece(&block, 0, block.len()), consumed))
    }

    /// The line `block[at..end]`, or its length when over the limit.
    fn piece(&mut self, block: &Bytes, at: usize, end: usize) -> Piece {
        let len = end - at;
        if let Some(dropped) = self.overlong.take() {
            return Piece::TooLong(dropped + len);
        }
        if len > self.max_len {
            return Piece::TooLong(len);
        }
        let end = if end > at && block[end - 1] == b'\r' {
            end - 1
        } else {
            end
        };
        Piece::Line(block.slice(at..end))
    }

    /// An incomplete line over the limit is dropped as it comes, only its length kept.
    fn bound_partial(&mut self) {
        let held = self.buf.len();
        match &mut self.overlong {
            Some(dropped) => *dropped += held,
            None if held > self.max_len => self.overlong = Some(held),
            None => return,
        }
        self.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every piece of `input` read `step` bytes at a time, with the bytes each consumed.
    fn split(input: &[u8], max_len: usize, step: usize) -> Vec<(Piece, usize)> {
        let mut lines = Lines::with_limit(max_len, 2 * step);
        let mut reader = input.chunks(step).map(<[u8]>::to_vec).collect::<Vec<_>>();
        reader.reverse();
        let mut out = Vec::new();
        while let Some(chunk) = reader.pop() {
            let (n, _) = lines.read_from(&mut &chunk[..]).unwrap();
            assert_eq!(n, chunk.len(), "the block has room for a whole chunk");
            lines.drain(|piece, consumed| out.push((piece, consumed)));
        }
        out.extend(lines.finish());
        out
    }

    #[test]
    fn lines_are_split_and_long_ones_skipped_without_losing_the_next() {
        let input = b"one\r\ntwo-is-too-long\nthree";
        for step in [1, 2, 4, 7, 64] {
            let got = split(input, 6, step);
            let want = vec![
                (Piece::Line(Bytes::from_static(b"one")), 5),
                (Piece::TooLong(15), 16),
                (Piece::Line(Bytes::from_static(b"three")), 5),
            ];
            assert_eq!(got, want, "read {step} bytes at a time");
            let consumed: usize = got.iter().map(|(_, n)| n).sum();
            assert_eq!(consumed, input.len());
        }
    }

    #[test]
    fn an_input_ending_in_a_newline_has_no_last_piece_and_blank_lines_are_kept() {
        let got = split(b"a\n\nb\n", 10, 3);
        let lines: Vec<_> = got.into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            lines,
            [b"a" as &[u8], b"", b"b"].map(|l| Piece::Line(Bytes::copy_from_slice(l)))
        );
    }

    #[test]
    fn lines_of_a_block_share_it_instead_of_being_copied() {
        let mut lines = Lines::default();
        lines
            .read_from(&mut &b"{\"a\":1}\n{\"b\":2}\n"[..])
            .unwrap();
        let mut got = Vec::new();
        lines.drain(|piece, _| got.push(piece));
        let [Piece::Line(a), Piece::Line(b)] = &got[..] else {
            panic!("two lines: {got:?}")
        };
        assert_eq!(a.as_ptr().wrapping_add(a.len() + 1), b.as_ptr());
    }
}
