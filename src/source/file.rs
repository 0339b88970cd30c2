//! A file followed like `tail -F`: complete lines only (a line still being written waits),
//! rotation (a new file at the path) and truncation (the file shrank) handled, and a resume
//! position that says which file and which offset.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::time::Duration;

use super::{Batch, FilePosition, Item};
use crate::event::decode::MAX_EVENT_BYTES;
use crate::state::{self, StateError, Store};

/// The state-store name of the file source's position.
const POSITION_NAME: &str = "file";

/// How often a followed file at its end is checked for growth, rotation or truncation.
const POLL: Duration = Duration::from_millis(200);
const READ_CHUNK: usize = 1 << 16;

pub struct FileSource {
    pub path: PathBuf,
    pub follow: bool,
    /// Where a previous run stopped, from the state store.
    pub resume: Option<FilePosition>,
    /// Set to stop following (shutdown).
    pub stop: Arc<AtomicBool>,
}

struct Open {
    file: File,
    dev: u64,
    inode: u64,
    offset: u64,
    line: u64,
}

impl Open {
    fn position(&self) -> FilePosition {
        FilePosition {
            dev: self.dev,
            inode: self.inode,
            offset: self.offset,
            line: self.line,
        }
    }
}

impl FileSource {
    /// Reads until the end (or forever when following) and sends batches.
    pub fn run(self, tx: SyncSender<Batch>) -> io::Result<()> {
        let mut open = self.open_at_start()?;
        let mut partial: Vec<u8> = Vec::new();
        // When a line outgrows the limit its bytes are dropped and only its length counted.
        let mut overlong: Option<usize> = None;
        let mut chunk = vec![0u8; READ_CHUNK];
        loop {
            let n = match open.file.read(&mut chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n > 0 {
                let items = split_lines(&chunk[..n], &mut partial, &mut overlong, &mut open);
                if !items.is_empty() && !send(&tx, items, &open) {
                    return Ok(());
                }
                continue;
            }
            // At the end of the file.
            if !self.follow || self.stop.load(Ordering::Relaxed) {
                if let Some(item) = last_line(&mut partial, &mut overlong, &mut open) {
                    send(&tx, vec![item], &open);
                }
                return Ok(());
            }
            std::thread::sleep(POLL);
            match std::fs::metadata(&self.path) {
                Ok(meta) if meta.ino() != open.inode || meta.dev() != open.dev => {
                    tracing::info!(path = %self.path.display(), "file rotated; following the new one");
                    if let Some(item) = last_line(&mut partial, &mut overlong, &mut open) {
                        send(&tx, vec![item], &open);
                    }
                    open = open_file(&self.path)?;
                }
                Ok(meta) if meta.len() < open.offset => {
                    tracing::warn!(path = %self.path.display(), "file truncated; reading it again from the start");
                    open.file.seek(SeekFrom::Start(0))?;
                    open.offset = 0;
                    open.line = 0;
                    partial.clear();
                    overlong = None;
                }
                _ => {}
            }
        }
    }

    /// Opens the file at the resume position when it is the same file and still that long.
    fn open_at_start(&self) -> io::Result<Open> {
        let mut open = open_file(&self.path)?;
        if let Some(pos) = &self.resume {
            let len = open.file.metadata()?.len();
            if pos.inode == open.inode && pos.dev == open.dev && pos.offset <= len {
                open.file.seek(SeekFrom::Start(pos.offset))?;
                open.offset = pos.offset;
                open.line = pos.line;
                tracing::info!(path = %self.path.display(), offset = pos.offset, "resuming the file where the last checkpoint left it");
            } else {
                tracing::warn!(path = %self.path.display(), "the file changed since the last checkpoint (rotated or truncated); reading it from the start");
            }
        }
        Ok(open)
    }
}

fn open_file(path: &Path) -> io::Result<Open> {
    let file = File::open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display())))?;
    let meta = file.metadata()?;
    Ok(Open {
        file,
        dev: meta.dev(),
        inode: meta.ino(),
        offset: 0,
        line: 0,
    })
}

fn send(tx: &SyncSender<Batch>, items: Vec<Item>, open: &Open) -> bool {
    let position = serde_json::to_vec(&open.position()).expect("a position serialises");
    tx.send(Batch {
        items,
        positions: vec![(state::source_key(POSITION_NAME), position)],
        format: None,
    })
    .is_ok()
}

/// Reads the position a previous run checkpointed, if any.
pub fn stored_position(store: &dyn Store) -> Result<Option<FilePosition>, StateError> {
    Ok(store
        .get(&state::source_key(POSITION_NAME))?
        .and_then(|v| serde_json::from_slice(&v).ok()))
}

/// Splits a chunk into complete lines; the incomplete tail stays in `partial`. The offset
/// advances only past complete lines, so a resume never starts mid-line.
fn split_lines(
    chunk: &[u8],
    partial: &mut Vec<u8>,
    overlong: &mut Option<usize>,
    open: &mut Open,
) -> Vec<Item> {
    let mut items = Vec::new();
    let mut rest = chunk;
    while let Some(i) = rest.iter().position(|&b| b == b'\n') {
        let piece = &rest[..i];
        open.line += 1;
        let consumed = partial.len() + overlong.unwrap_or(0) + i + 1;
        open.offset += consumed as u64;
        if let Some(len) = overlong.take() {
            items.push(Item::TooLong(len + piece.len(), open.line));
        } else if partial.len() + piece.len() > MAX_EVENT_BYTES {
            items.push(Item::TooLong(partial.len() + piece.len(), open.line));
        } else {
            let mut line = std::mem::take(partial);
            line.extend_from_slice(piece);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            items.push(Item::Line(line, open.line));
        }
        partial.clear();
        rest = &rest[i + 1..];
    }
    match overlong {
        Some(len) => *len += rest.len(),
        None if partial.len() + rest.len() > MAX_EVENT_BYTES => {
            *overlong = Some(partial.len() + rest.len());
            partial.clear();
        }
        None => partial.extend_from_slice(rest),
    }
    items
}

/// The final line of a file that does not end in a newline.
fn last_line(partial: &mut Vec<u8>, overlong: &mut Option<usize>, open: &mut Open) -> Option<Item> {
    let len = partial.len() + overlong.unwrap_or(0);
    if len == 0 {
        return None;
    }
    open.line += 1;
    open.offset += len as u64;
    Some(match overlong.take() {
        Some(n) => Item::TooLong(n, open.line),
        None => Item::Line(std::mem::take(partial), open.line),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::mpsc;

    fn lines_of(batches: &[Batch]) -> Vec<String> {
        batches
            .iter()
            .flat_map(|b| b.items.iter())
            .map(|i| match i {
                Item::Line(l, n) => format!("{n}:{}", String::from_utf8_lossy(l)),
                Item::TooLong(len, n) => format!("{n}:too long {len}"),
                _ => unreachable!("the file source hands over bytes"),
            })
            .collect()
    }

    #[test]
    fn reads_to_the_end_and_resumes_after_the_last_complete_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, "a\nb\nc").unwrap();
        let (tx, rx) = mpsc::sync_channel(16);
        let source = FileSource {
            path: path.clone(),
            follow: false,
            resume: None,
            stop: Default::default(),
        };
        source.run(tx).unwrap();
        let batches: Vec<Batch> = rx.iter().collect();
        assert_eq!(lines_of(&batches), ["1:a", "2:b", "3:c"]);

        // Resume from the position after "a\n".
        let mut pos: FilePosition = serde_json::from_slice(&batches[0].positions[0].1).unwrap();
        pos.offset = 2;
        pos.line = 1;
        let (tx, rx) = mpsc::sync_channel(16);
        FileSource {
            path,
            follow: false,
            resume: Some(pos),
            stop: Default::default(),
        }
        .run(tx)
        .unwrap();
        assert_eq!(lines_of(&rx.iter().collect::<Vec<_>>()), ["2:b", "3:c"]);
    }

    #[test]
    fn a_followed_file_yields_appended_lines_and_survives_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, "one\n").unwrap();
        let (tx, rx) = mpsc::sync_channel(16);
        let stop = Arc::new(AtomicBool::new(false));
        let source = FileSource {
            path: path.clone(),
            follow: true,
            resume: None,
            stop: stop.clone(),
        };
        let reader = std::thread::spawn(move || source.run(tx));
        let next = || {
            let b = rx
                .recv_timeout(Duration::from_secs(5))
                .expect("a batch arrives");
            lines_of(&[b])
        };
        assert_eq!(next(), ["1:one"]);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"tw").unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        f.write_all(b"o\n").unwrap();
        assert_eq!(next(), ["2:two"], "a half-written line waits for its end");
        std::fs::rename(&path, dir.path().join("events.jsonl.1")).unwrap();
        std::fs::write(&path, "three\n").unwrap();
        assert_eq!(next(), ["1:three"]);
        stop.store(true, Ordering::Relaxed);
        reader.join().unwrap().unwrap();
    }
}
