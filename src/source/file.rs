//! A file followed like `tail -F`, by identity: complete lines only (a line still being
//! written waits); files known by device, inode and a fingerprint of their first bytes (as
//! Vector and Filebeat do); a rotated file finished before the new one, including what its
//! writer appends after the rename; copytruncate noticed (the file shrank, or its first bytes
//! changed) and the copy's unread tail read first; and a resume position that finds its file
//! again after a rotation while the daemon was stopped.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

use super::lines::{Lines, Piece};
use super::{BATCH_RECORDS, Batch, FilePosition, Item};
use crate::state::{self, StateError, Store};

/// The state-store name of the file source's position.
const POSITION_NAME: &str = "file";

/// How often a followed file at its end is checked for growth, rotation or truncation.
const POLL: Duration = Duration::from_millis(200);
/// Bytes at the start of a file its fingerprint covers: Filebeat's default. Enough to tell
/// apart log files whose first lines carry timestamps; a file shorter than this is
/// fingerprinted over what it has, and the fingerprint grows with it.
const FINGERPRINT_BYTES: u64 = 1024;

pub struct FileSource {
    pub path: PathBuf,
    pub follow: bool,
    /// After a rotation, how long the old file must stay unchanged before the new one is
    /// read: its writer may append to it until it reopens the path (`[source] rotate_wait`).
    pub rotate_wait: Duration,
    /// Where a previous run stopped, from the state store.
    pub resume: Option<FilePosition>,
    /// Set to stop following (shutdown).
    pub stop: Arc<AtomicBool>,
}

/// The file being read and how far.
struct Open {
    file: File,
    /// The name it was found under, for logs.
    name: PathBuf,
    dev: u64,
    inode: u64,
    offset: u64,
    line: u64,
    fingerprint: u64,
    fingerprint_len: u64,
}

impl Open {
    fn position(&self) -> FilePosition {
        FilePosition {
            dev: self.dev,
            inode: self.inode,
            offset: self.offset,
            line: self.line,
            fingerprint: self.fingerprint,
            fingerprint_len: self.fingerprint_len,
        }
    }

    /// Grows the fingerprint while the file is shorter than [`FINGERPRINT_BYTES`] (called
    /// after [`Open::same_start`] said the bytes it covers are unchanged).
    fn refresh_fingerprint(&mut self) -> io::Result<()> {
        if self.fingerprint_len < FINGERPRINT_BYTES {
            (self.fingerprint, self.fingerprint_len) = fingerprint(&self.file, FINGERPRINT_BYTES)?;
        }
        Ok(())
    }

    /// Whether the file still starts with the bytes fingerprinted (false after a truncation
    /// that regrew past the fingerprint with other lines).
    fn same_start(&self) -> io::Result<bool> {
        starts_with(&self.file, self.fingerprint, self.fingerprint_len)
    }
}

/// The file as the source reads it: the open file and a line not yet complete (a line that
/// outgrows the limit has its bytes dropped and only its length counted).
struct Reader {
    open: Open,
    lines: Lines,
    /// When the file last grew, or was found rotated (whichever is later).
    last_change: Instant,
    /// Found rotated: no longer the file at the path.
    rotated: bool,
}

impl Reader {
    fn new(open: Open) -> Reader {
        Reader {
            open,
            lines: Lines::default(),
            last_change: Instant::now(),
            rotated: false,
        }
    }

    /// Reads to the end of the file, sending batches.
    fn read_to_end(&mut self, tx: &SyncSender<Batch>) -> io::Result<ReadTo> {
        loop {
            let (n, _) = self.lines.read_from(&mut self.open.file)?;
            if n == 0 {
                return Ok(ReadTo::End);
            }
            // A copytruncate that regrew past the offset before this read gave bytes of
            // another file from the middle of a line: checked after the read, so what was
            // read is known to come from the file fingerprinted.
            if !self.open.same_start()? {
                return Ok(ReadTo::Truncated);
            }
            self.last_change = Instant::now();
            self.open.refresh_fingerprint()?;
            // A block holds many lines (tiny ones by the hundred thousand): sent in batches of
            // at most `BATCH_RECORDS`, each with the position after its last line.
            let (mut items, mut stopped) = (Vec::new(), false);
            let open = &mut self.open;
            self.lines.drain(|piece, consumed| {
                items.push(complete(piece, consumed, open));
                if items.len() >= BATCH_RECORDS && !stopped {
                    stopped = !send(tx, std::mem::take(&mut items), open);
                }
            });
            if stopped || (!items.is_empty() && !send(tx, items, &self.open)) {
                return Ok(ReadTo::Stopped);
            }
        }
    }

    /// The file is done with: its last line, even without a newline, is complete.
    fn finish(&mut self, tx: &SyncSender<Batch>) -> bool {
        match self.lines.finish() {
            Some((piece, consumed)) => {
                let item = complete(piece, consumed, &mut self.open);
                send(tx, vec![item], &self.open)
            }
            None => true,
        }
    }
}

/// How reading a file to its end went.
enum ReadTo {
    End,
    /// The file no longer starts with its fingerprinted bytes (what was read is dropped).
    Truncated,
    /// The detector is gone.
    Stopped,
}

/// What became of the path since the file was opened.
enum Change {
    Same,
    /// Another file is at the path now.
    Rotated,
    /// The same file, shorter than what was read or starting with other bytes.
    Truncated,
}

impl FileSource {
    /// Reads until the end (or forever when following) and sends batches.
    pub fn run(self, tx: SyncSender<Batch>) -> io::Result<()> {
        let mut reader = Reader::new(self.open_at_start()?);
        loop {
            match reader.read_to_end(&tx)? {
                ReadTo::End => {}
                ReadTo::Stopped => return Ok(()),
                ReadTo::Truncated => {
                    reader = self.after_truncation(reader)?;
                    continue;
                }
            }
            let stopping = self.stop.load(Ordering::Relaxed);
            match self.change(&reader.open)? {
                Change::Rotated => {
                    if !reader.rotated {
                        tracing::info!(path = %self.path.display(), file = %reader.open.name.display(), "file rotated; finishing it before the new one");
                        reader.rotated = true;
                        reader.last_change = Instant::now();
                    }
                    // Its writer may still append until it reopens the path.
                    let settled = reader.last_change.elapsed() >= self.rotate_wait;
                    if settled || !self.follow {
                        if !reader.finish(&tx) {
                            return Ok(());
                        }
                        reader = Reader::new(open_file(&self.path)?);
                        tracing::info!(path = %self.path.display(), "following the new file");
                        continue;
                    }
                }
                Change::Truncated => {
                    reader = self.after_truncation(reader)?;
                    continue;
                }
                Change::Same => {}
            }
            if !self.follow || stopping {
                reader.finish(&tx);
                return Ok(());
            }
            std::thread::sleep(POLL);
        }
    }

    fn change(&self, open: &Open) -> io::Result<Change> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            // Renamed away and not yet recreated: keep reading the old file.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Change::Same),
            Err(e) => return Err(e),
        };
        if meta.dev() != open.dev || meta.ino() != open.inode {
            return Ok(Change::Rotated);
        }
        if meta.len() < open.offset || !open.same_start()? {
            return Ok(Change::Truncated);
        }
        Ok(Change::Same)
    }

    /// The file at the path was truncated under the reader (copytruncate): the copy, if one
    /// is beside it, holds what was written after the last read; it is read from where the
    /// reader was, then the path from its start.
    fn after_truncation(&self, reader: Reader) -> io::Result<Reader> {
        let pos = reader.open.position();
        match find_file(&self.path, &pos, pos.inode)? {
            Some(mut copy) => {
                tracing::warn!(path = %self.path.display(), copy = %copy.name.display(), "file truncated (copytruncate); finishing its copy first");
                resume_at(&mut copy, &pos)?;
                let mut r = Reader::new(copy);
                r.rotated = true;
                Ok(r)
            }
            None => {
                tracing::warn!(path = %self.path.display(), "file truncated and no copy of it found beside it; reading it again from the start");
                Ok(Reader::new(open_file(&self.path)?))
            }
        }
    }

    /// The file to start with: the one at the resume position (at the path, or found beside it
    /// after a rotation while stopped), else the file at the path from its start.
    fn open_at_start(&self) -> io::Result<Open> {
        let mut open = open_file(&self.path)?;
        let Some(pos) = &self.resume else {
            return Ok(open);
        };
        let len = open.file.metadata()?.len();
        if pos.inode == open.inode
            && pos.dev == open.dev
            && pos.offset <= len
            && starts_with(&open.file, pos.fingerprint, pos.fingerprint_len)?
        {
            resume_at(&mut open, pos)?;
            tracing::info!(path = %self.path.display(), offset = pos.offset, "resuming the file where the last checkpoint left it");
            return Ok(open);
        }
        if pos.offset > 0
            && let Some(mut found) = find_file(&self.path, pos, open.inode)?
        {
            resume_at(&mut found, pos)?;
            tracing::info!(path = %self.path.display(), file = %found.name.display(), offset = pos.offset, "the file was rotated while stopped; finishing it first");
            return Ok(found);
        }
        tracing::warn!(path = %self.path.display(), "the file read last is gone (rotated away or truncated); reading the file from the start");
        Ok(open)
    }
}

fn open_file(path: &Path) -> io::Result<Open> {
    let file = File::open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display())))?;
    open_found(file, path.to_path_buf())
}

/// Moves a freshly opened file to a stored position.
fn resume_at(open: &mut Open, pos: &FilePosition) -> io::Result<()> {
    open.file.seek(SeekFrom::Start(pos.offset))?;
    open.offset = pos.offset;
    open.line = pos.line;
    Ok(())
}

/// xxh3 of the first `max` bytes of a file (fewer if it is shorter), and how many it covered.
/// Read at an offset, so the reading position is untouched.
fn fingerprint(file: &File, max: u64) -> io::Result<(u64, u64)> {
    let mut buf = vec![0u8; max as usize];
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((xxhash_rust::xxh3::xxh3_64(&buf[..got]), got as u64))
}

/// Whether a file's first `len` bytes have the fingerprint `fp`.
fn starts_with(file: &File, fp: u64, len: u64) -> io::Result<bool> {
    let (got, covered) = fingerprint(file, len)?;
    Ok(covered == len && got == fp)
}

/// The file beside `path` that a position was in: the same device and inode and first bytes
/// (renamed by a rotation), else a file with the same first bytes and at least `offset` bytes
/// (a copytruncate copy; the newest if several). `not_inode` is the inode at the path itself,
/// (the new file, or the truncated one). Names are not guessed (`.1`, `-20260301`, ...): every file
/// in the directory is looked at, which costs a stat each.
fn find_file(path: &Path, pos: &FilePosition, not_inode: u64) -> io::Result<Option<Open>> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut copy: Option<(std::time::SystemTime, PathBuf)> = None;
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let candidate = entry.path();
        if candidate == path {
            continue;
        }
        let Ok(meta) = std::fs::metadata(&candidate) else {
            continue;
        };
        if !meta.is_file() || meta.len() < pos.offset || meta.ino() == not_inode {
            continue;
        }
        let same_inode = meta.dev() == pos.dev && meta.ino() == pos.inode;
        // A position without a fingerprint only knows its inode.
        if !same_inode && pos.fingerprint_len == 0 {
            continue;
        }
        let Ok(file) = File::open(&candidate) else {
            continue;
        };
        if !starts_with(&file, pos.fingerprint, pos.fingerprint_len)? {
            continue;
        }
        if same_inode {
            return open_found(file, candidate).map(Some);
        }
        let modified = meta.modified()?;
        if copy.as_ref().is_none_or(|(t, _)| modified > *t) {
            copy = Some((modified, candidate));
        }
    }
    match copy {
        Some((_, p)) => open_found(File::open(&p)?, p).map(Some),
        None => Ok(None),
    }
}

fn open_found(file: File, name: PathBuf) -> io::Result<Open> {
    let meta = file.metadata()?;
    let (fingerprint, fingerprint_len) = fingerprint(&file, FINGERPRINT_BYTES)?;
    Ok(Open {
        file,
        name,
        dev: meta.dev(),
        inode: meta.ino(),
        offset: 0,
        line: 0,
        fingerprint,
        fingerprint_len,
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

/// A complete line as a record; the position moves past it (never into a line, so a resume
/// never starts mid-line).
fn complete(piece: Piece, consumed: usize, open: &mut Open) -> Item {
    open.line += 1;
    open.offset += consumed as u64;
    match piece {
        Piece::Line(line) => Item::Line(line, open.line),
        Piece::TooLong(len) => Item::TooLong(len, open.line),
    }
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
            rotate_wait: TEST_ROTATE_WAIT,
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
            rotate_wait: TEST_ROTATE_WAIT,
            resume: Some(pos),
            stop: Default::default(),
        }
        .run(tx)
        .unwrap();
        assert_eq!(lines_of(&rx.iter().collect::<Vec<_>>()), ["2:b", "3:c"]);
    }

    #[test]
    fn a_block_of_many_lines_goes_in_bounded_batches_each_with_the_position_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, "x\n".repeat(3 * BATCH_RECORDS + 5)).unwrap();
        let (tx, rx) = mpsc::sync_channel(16);
        source(&path, false, None).run(tx).unwrap();
        let batches: Vec<Batch> = rx.iter().collect();
        assert_eq!(batches.len(), 4);
        let mut lines = 0;
        for batch in &batches {
            assert!(batch.items.len() <= BATCH_RECORDS);
            lines += batch.items.len() as u64;
            let pos: FilePosition = serde_json::from_slice(&batch.positions[0].1).unwrap();
            assert_eq!((pos.line, pos.offset), (lines, 2 * lines));
        }
        assert_eq!(lines, 3 * BATCH_RECORDS as u64 + 5);
    }

    const TEST_ROTATE_WAIT: Duration = Duration::from_secs(1);

    fn source(path: &Path, follow: bool, resume: Option<FilePosition>) -> FileSource {
        FileSource {
            path: path.to_path_buf(),
            follow,
            rotate_wait: TEST_ROTATE_WAIT,
            resume,
            stop: Default::default(),
        }
    }

    /// Reads a file to its end (not following); the lines and the last position.
    fn read_once(path: &Path, resume: Option<FilePosition>) -> (Vec<String>, FilePosition) {
        let (tx, rx) = mpsc::sync_channel(64);
        source(path, false, resume).run(tx).unwrap();
        let batches: Vec<Batch> = rx.iter().collect();
        let pos = serde_json::from_slice(&batches.last().unwrap().positions[0].1).unwrap();
        (lines_of(&batches), pos)
    }

    /// A followed file on its own thread.
    struct Follower {
        rx: mpsc::Receiver<Batch>,
        stop: Arc<AtomicBool>,
        thread: std::thread::JoinHandle<io::Result<()>>,
    }

    impl Follower {
        fn start(path: &Path) -> Follower {
            let (tx, rx) = mpsc::sync_channel(64);
            let s = source(path, true, None);
            let stop = s.stop.clone();
            Follower {
                rx,
                stop,
                thread: std::thread::spawn(move || s.run(tx)),
            }
        }

        /// The next `n` lines (waiting up to 10 s for them).
        fn lines(&self, n: usize) -> Vec<String> {
            let mut out = Vec::new();
            while out.len() < n {
                let b = self
                    .rx
                    .recv_timeout(Duration::from_secs(10))
                    .unwrap_or_else(|_| panic!("{n} lines arrive; got {out:?}"));
                out.extend(lines_of(&[b]));
            }
            out
        }

        /// Stops the reader; the lines it had not handed over yet.
        fn stop(self) -> Vec<String> {
            self.stop.store(true, Ordering::Relaxed);
            self.thread.join().unwrap().unwrap();
            lines_of(&self.rx.try_iter().collect::<Vec<_>>())
        }
    }

    /// Waits until this process holds `path` open read-only and has read `bytes` of it (its
    /// offset in /proc/self/fdinfo): the reader has consumed them.
    fn wait_until_read(path: &Path, bytes: u64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            for fd in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
                if std::fs::read_link(fd.path()).ok().as_deref() != Some(path) {
                    continue;
                }
                let info = std::fs::read_to_string(format!(
                    "/proc/self/fdinfo/{}",
                    fd.file_name().to_string_lossy()
                ))
                .unwrap_or_default();
                let field = |name: &str| {
                    info.lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(|v| v.trim().to_string())
                };
                let read_only = field("flags:")
                    .and_then(|f| u32::from_str_radix(&f, 8).ok())
                    .is_some_and(|f| f & 3 == 0);
                let pos: u64 = field("pos:").and_then(|p| p.parse().ok()).unwrap_or(0);
                if read_only && pos >= bytes {
                    return;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} not read to {bytes}",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    /// logrotate's copytruncate: copy, then truncate in place.
    fn copytruncate(path: &Path, copy: &Path) {
        std::fs::copy(path, copy).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .unwrap()
            .set_len(0)
            .unwrap();
    }

    #[test]
    fn a_followed_file_yields_appended_lines_and_a_half_written_line_waits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, "one\n").unwrap();
        let f = Follower::start(&path);
        assert_eq!(f.lines(1), ["1:one"]);
        append(&path, "tw");
        wait_until_read(&path, 6);
        append(&path, "o\n");
        assert_eq!(
            f.lines(1),
            ["2:two"],
            "a half-written line waits for its end"
        );
        assert!(f.stop().is_empty());
    }

    #[test]
    fn a_file_renamed_while_followed_is_finished_with_what_its_writer_appends_after_the_rename() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let rotated = dir.path().join("events.jsonl.1");
        std::fs::write(&path, "one\n").unwrap();
        let f = Follower::start(&path);
        assert_eq!(f.lines(1), ["1:one"]);
        // The writer keeps its descriptor across the rename, as a logger does until it is
        // told to reopen.
        let mut writer = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        writer.write_all(b"two\n").unwrap();
        std::fs::rename(&path, &rotated).unwrap();
        writer.write_all(b"three\n").unwrap();
        std::fs::write(&path, "four\n").unwrap();
        wait_until_read(&rotated, 14);
        writer.write_all(b"five\n").unwrap(); // after the reader reached the old file's end
        assert_eq!(f.lines(4), ["2:two", "3:three", "4:five", "1:four"]);
        append(&path, "six\n");
        assert_eq!(f.lines(1), ["2:six"]);
        assert!(f.stop().is_empty());
    }

    #[test]
    fn a_copytruncate_while_followed_loses_and_repeats_no_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let copy = dir.path().join("events.jsonl.1");
        std::fs::write(&path, "a1\na2\n").unwrap();
        let f = Follower::start(&path);
        assert_eq!(f.lines(2), ["1:a1", "2:a2"]);
        // Written just before the copy: the reader may not have seen it in the file.
        append(&path, "a3\n");
        copytruncate(&path, &copy);
        append(&path, "b1\n");
        assert_eq!(f.lines(2), ["3:a3", "1:b1"]);
        // Again, and this time the file regrows past the old offset before the reader looks.
        append(&path, "b2\n");
        copytruncate(&path, &copy);
        append(&path, "c1 is longer than what was there\nc2\n");
        assert_eq!(
            f.lines(3),
            ["2:b2", "1:c1 is longer than what was there", "2:c2"]
        );
        assert!(f.stop().is_empty());
    }

    #[test]
    fn a_file_rotated_while_stopped_is_finished_before_the_new_one() {
        // By rename.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, "a\nb\n").unwrap();
        let (lines, pos) = read_once(&path, None);
        assert_eq!(lines, ["1:a", "2:b"]);
        append(&path, "c\n");
        std::fs::rename(&path, dir.path().join("events.jsonl.1")).unwrap();
        std::fs::write(&path, "d\n").unwrap();
        assert_eq!(read_once(&path, Some(pos)).0, ["3:c", "1:d"]);

        // By copytruncate, the file then shorter than the offset, or longer with other lines.
        for regrown in ["d\n", "d is longer than what was read\n"] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("events.jsonl");
            std::fs::write(&path, "a\nb\n").unwrap();
            let (_, pos) = read_once(&path, None);
            append(&path, "c\n");
            copytruncate(&path, &dir.path().join("events.jsonl.1"));
            append(&path, regrown);
            let expected = format!("1:{}", regrown.trim_end());
            assert_eq!(read_once(&path, Some(pos)).0, ["3:c", expected.as_str()]);
        }

        // A stored inode now used by another file (other first bytes) is not resumed.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, "a\nb\n").unwrap();
        let (_, mut pos) = read_once(&path, None);
        pos.fingerprint ^= 1;
        assert_eq!(read_once(&path, Some(pos)).0, ["1:a", "2:b"]);
    }
}
