//! The state store on sled 0.34: one tree, atomic batches, a flush per checkpoint.
//!
//! sled keeps values inline in its tree's leaves (up to 16 keys each) and rewrites a whole
//! leaf when it consolidates one, so a leaf holding a few multi-megabyte checkpoint blobs was
//! rewritten, blobs and all, whenever a key beside them changed: a million-event run wrote
//! 500 MB for 20 MB of state. Values above [`CHUNK`] bytes are therefore stored in chunks of
//! that size under keys of their own (`0xFE`, the key's length, the key, the chunk number),
//! which sort after every other key, and the value's own key holds how many there are. Every
//! stored value starts with a tag byte saying which form it has.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::StateWrites;
use super::{Entries, STATE_VERSION, StateError, Store, VERSION_KEY};

/// Values longer than this are stored in chunks of this size. sled writes a leaf larger than
/// a quarter of its 512 KiB segment as a file of its own (a file created, written and synced
/// per leaf rewrite: a fifth of the checkpoint writer's time under HTTP ingest); a leaf holds
/// up to 16 keys, so 4 KiB chunks keep every leaf in the log. The count is stored with the
/// value, so values written with another chunk size read back unchanged.
const CHUNK: usize = 4 * 1024;
/// Tag bytes: the value follows inline / the value is in chunks (count: u32 big-endian).
const INLINE: u8 = 0;
const CHUNKED: u8 = 1;
/// First byte of chunk keys: above every key the state uses (all start with ASCII).
const CHUNK_KEY: u8 = 0xFE;

fn chunk_key(key: &[u8], index: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 7);
    k.push(CHUNK_KEY);
    k.extend_from_slice(&(key.len() as u16).to_be_bytes());
    k.extend_from_slice(key);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

/// The number of chunks a stored value's tag says it has (0 for an inline value).
fn chunks_of(stored: &[u8]) -> u32 {
    match stored {
        [CHUNKED, count @ ..] => count
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_be_bytes),
        _ => 0,
    }
}

pub struct SledStore {
    pub(super) db: sled::Db,
    pub(super) dir: PathBuf,
    /// Held while the store is open (declared after `db`, so released after it closes).
    pub(super) lock: std::fs::File,
}

/// The lock file in a state directory: whoever holds it owns the directory.
pub const LOCK_FILE: &str = "authwatch.lock";

/// Takes the directory's lock, or says who holds it.
pub(super) fn lock(dir: &Path) -> Result<std::fs::File, StateError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))
        .map_err(|e| StateError::Io {
            dir: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StateError::Locked {
            dir: dir.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(StateError::Io {
            dir: dir.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

/// Removes sled snapshots that a crash left half-written. sled writes its snapshot to
/// `snap.<lsn>.generating`, syncs it and renames it; a process killed before the rename leaves
/// the file behind, and sled 0.34 then takes it as the newest snapshot and refuses to open
/// ("empty/corrupt snapshot file", spacejam/sled#1527). Such a file is never complete by
/// construction; the previous snapshot is still there and the log is the source of truth, so
/// removing it is safe. Only called with the directory's lock held, so no live process is
/// writing one.
pub(super) fn remove_incomplete_snapshots(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {
                    tracing::warn!(file = %entry.path().display(), "removed a half-written sled snapshot left by a crash")
                }
                Err(e) => {
                    tracing::warn!(file = %entry.path().display(), error = %e, "cannot remove a half-written sled snapshot")
                }
            }
        }
    }
}

/// How long to wait for sled's own file lock once ours is held.
const SLED_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens sled in `dir`, whose authwatch lock the caller holds. sled takes a file lock of its
/// own and releases it only when the last of its background threads lets go of a closed
/// database, a moment after the drop; with our lock held, a sled "locked" can only be such
/// remains of a store this process just closed (a rewrite, a test's reopen), so it is retried
/// for a bounded time rather than reported as another process.
pub(super) fn open_sled(dir: &Path) -> Result<sled::Db, StateError> {
    let deadline = std::time::Instant::now() + SLED_LOCK_WAIT;
    loop {
        match sled::Config::new().path(dir).open() {
            Ok(db) => return Ok(db),
            Err(e) => match open_error(dir, e) {
                StateError::Locked { .. } if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return Err(other),
            },
        }
    }
}

impl SledStore {
    /// Opens (or creates) the state in `dir`, checking that no other process holds it and
    /// that it was written in this build's format.
    pub fn open(dir: &Path) -> Result<SledStore, StateError> {
        std::fs::create_dir_all(dir).map_err(|e| StateError::Io {
            dir: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        let lock = lock(dir)?;
        remove_incomplete_snapshots(dir);
        let db = open_sled(dir)?;
        let store = SledStore {
            db,
            dir: dir.to_path_buf(),
            lock,
        };
        match store.db.get(VERSION_KEY).map_err(|e| open_error(dir, e))? {
            Some(v) if v.as_ref() == STATE_VERSION.as_bytes() => {}
            Some(v) => {
                return Err(StateError::WrongVersion {
                    dir: dir.to_path_buf(),
                    found: String::from_utf8_lossy(&v).into_owned(),
                });
            }
            None => {
                store
                    .db
                    .insert(VERSION_KEY, STATE_VERSION.as_bytes())
                    .map_err(|e| open_error(dir, e))?;
                store.db.flush().map_err(|e| open_error(dir, e))?;
            }
        }
        Ok(store)
    }

    fn error(&self, e: sled::Error) -> StateError {
        open_error(&self.dir, e)
    }

    /// A value as it was put, from its stored form.
    fn load(&self, key: &[u8], stored: &[u8]) -> Result<Vec<u8>, StateError> {
        match stored.first() {
            Some(&INLINE) => Ok(stored[1..].to_vec()),
            Some(&CHUNKED) => {
                let mut value = Vec::new();
                for index in 0..chunks_of(stored) {
                    let chunk = self
                        .db
                        .get(chunk_key(key, index))
                        .map_err(|e| self.error(e))?
                        .ok_or_else(|| StateError::Corrupt {
                            dir: self.dir.clone(),
                            reason: format!(
                                "chunk {index} of {} is missing",
                                String::from_utf8_lossy(key)
                            ),
                        })?;
                    value.extend_from_slice(&chunk);
                }
                Ok(value)
            }
            _ => Err(StateError::Corrupt {
                dir: self.dir.clone(),
                reason: format!("{} has no value tag", String::from_utf8_lossy(key)),
            }),
        }
    }

    /// Removes the chunks of `key`'s current value from `first` on.
    fn drop_chunks(
        &self,
        batch: &mut sled::Batch,
        key: &[u8],
        first: u32,
    ) -> Result<(), StateError> {
        if let Some(old) = self.db.get(key).map_err(|e| self.error(e))? {
            for index in first..chunks_of(&old) {
                batch.remove(chunk_key(key, index));
            }
        }
        Ok(())
    }
}

pub(super) fn open_error(dir: &Path, e: sled::Error) -> StateError {
    let dir = dir.to_path_buf();
    match e {
        // sled takes an exclusive file lock; a second process gets WouldBlock.
        sled::Error::Io(io)
            if io.kind() == ErrorKind::WouldBlock || io.to_string().contains("lock") =>
        {
            StateError::Locked { dir }
        }
        sled::Error::Io(io) => StateError::Io {
            dir,
            reason: io.to_string(),
        },
        sled::Error::Corruption { .. }
        | sled::Error::Unsupported(_)
        | sled::Error::ReportableBug(_) => StateError::Corrupt {
            dir,
            reason: e.to_string(),
        },
        other => StateError::Io {
            dir,
            reason: other.to_string(),
        },
    }
}

impl Store for SledStore {
    fn scan(&self, prefix: &[u8]) -> Result<Entries, StateError> {
        self.db
            .scan_prefix(prefix)
            .map(|r| {
                let (k, v) = r.map_err(|e| self.error(e))?;
                Ok((k.to_vec(), self.load(&k, &v)?))
            })
            .collect()
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        match self.db.get(key).map_err(|e| self.error(e))? {
            Some(v) => Ok(Some(self.load(key, &v)?)),
            None => Ok(None),
        }
    }

    fn scan_from(&self, prefix: &[u8], start: &[u8], limit: usize) -> Result<Entries, StateError> {
        self.db
            .range(start.to_vec()..)
            .take_while(|r| r.as_ref().map_or(true, |(k, _)| k.starts_with(prefix)))
            .take(limit)
            .map(|r| {
                let (k, v) = r.map_err(|e| self.error(e))?;
                Ok((k.to_vec(), self.load(&k, &v)?))
            })
            .collect()
    }

    fn commit(&self, mut writes: StateWrites) -> Result<(), StateError> {
        writes.resolve();
        let mut batch = sled::Batch::default();
        for key in writes.deletes {
            self.drop_chunks(&mut batch, &key, 0)?;
            batch.remove(key);
        }
        // The last put of a key wins; earlier ones are skipped (their chunks would be
        // counted against the stored value, not against each other).
        let mut seen = std::collections::HashSet::new();
        for (key, value) in writes.puts.into_iter().rev() {
            if !seen.insert(key.clone()) {
                continue;
            }
            if value.len() <= CHUNK {
                self.drop_chunks(&mut batch, &key, 0)?;
                let mut stored = Vec::with_capacity(value.len() + 1);
                stored.push(INLINE);
                stored.extend_from_slice(&value);
                batch.insert(key, stored);
                continue;
            }
            let count = value.len().div_ceil(CHUNK) as u32;
            self.drop_chunks(&mut batch, &key, count)?;
            for (index, chunk) in value.chunks(CHUNK).enumerate() {
                batch.insert(chunk_key(&key, index as u32), chunk);
            }
            let mut stored = vec![CHUNKED];
            stored.extend_from_slice(&count.to_be_bytes());
            batch.insert(key, stored);
        }
        self.db.apply_batch(batch).map_err(|e| self.error(e))?;
        self.db.flush().map_err(|e| self.error(e))?;
        Ok(())
    }

    fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_of_the_same_directory_is_refused_as_locked() {
        let dir = tempfile::tempdir().unwrap();
        let _first = SledStore::open(dir.path()).unwrap();
        // sled's lock is per process via flock; a second open in-process may succeed on some
        // platforms, so only check that when it fails, it says "in use".
        if let Err(e) = SledStore::open(dir.path()) {
            assert!(e.to_string().contains("in use"), "{e}");
        }
    }

    #[test]
    fn a_snapshot_left_half_written_by_a_crash_does_not_stop_the_store_opening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = SledStore::open(dir.path()).unwrap();
            let mut w = StateWrites::default();
            w.put(b"s/file".to_vec(), b"42".to_vec());
            store.commit(w).unwrap();
        }
        // What a SIGKILL during sled's snapshot leaves: sled alone refuses to open this.
        std::fs::write(
            dir.path().join("snap.FFFFFFFFFFFFFFF0.generating"),
            b"partial",
        )
        .unwrap();
        // Past sled's own lock, which the closed store's threads release a moment late.
        let raw = loop {
            match sled::open(dir.path()) {
                Err(e)
                    if open_error(dir.path(), e.clone())
                        .to_string()
                        .contains("in use") =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                other => break other.err().map(|e| e.to_string()).unwrap_or_default(),
            }
        };
        assert!(
            raw.contains("snapshot") || raw.contains("orrupt"),
            "sled 0.34 trips over it: {raw}"
        );
        let store = SledStore::open(dir.path()).unwrap();
        assert_eq!(store.get(b"s/file").unwrap(), Some(b"42".to_vec()));
    }

    #[test]
    fn a_different_format_version_is_refused_with_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            db.insert(VERSION_KEY, &b"authwatch-state/0"[..]).unwrap();
            db.flush().unwrap();
        }
        let err = SledStore::open(dir.path()).err().unwrap();
        assert!(err.to_string().contains("--reset-state"), "{err}");
        assert!(err.to_string().contains(&dir.path().display().to_string()));
    }

    #[test]
    fn batches_are_applied_and_read_back_by_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let mut w = StateWrites::default();
        w.put(b"g/a".to_vec(), b"1".to_vec());
        w.put(b"g/b".to_vec(), b"2".to_vec());
        w.put(b"x/c".to_vec(), b"3".to_vec());
        store.commit(w).unwrap();
        let mut w = StateWrites::default();
        w.delete(b"g/a".to_vec());
        store.commit(w).unwrap();
        assert_eq!(
            store.scan(b"g/").unwrap(),
            vec![(b"g/b".to_vec(), b"2".to_vec())]
        );
    }

    #[test]
    fn large_values_are_chunked_replaced_and_deleted_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let big: Vec<u8> = (0..CHUNK * 3 + 5).map(|i| (i % 251) as u8).collect();
        let mut w = StateWrites::default();
        w.put(b"g/big".to_vec(), big.clone());
        w.put(b"g/small".to_vec(), b"s".to_vec());
        store.commit(w).unwrap();
        assert_eq!(store.get(b"g/big").unwrap(), Some(big.clone()));
        assert_eq!(
            store.scan(b"g/").unwrap(),
            vec![
                (b"g/big".to_vec(), big),
                (b"g/small".to_vec(), b"s".to_vec())
            ]
        );
        let raw_keys = |store: &SledStore| store.db.iter().keys().count();
        assert_eq!(
            raw_keys(&store),
            1 + 2 + 4,
            "version, two keys, four chunks"
        );
        // A shorter value leaves no stale chunk behind, and neither does a delete.
        let smaller = vec![7u8; CHUNK + 1];
        let mut w = StateWrites::default();
        w.put(b"g/big".to_vec(), smaller.clone());
        store.commit(w).unwrap();
        assert_eq!(store.get(b"g/big").unwrap(), Some(smaller));
        assert_eq!(raw_keys(&store), 1 + 2 + 2);
        let mut w = StateWrites::default();
        w.delete(b"g/big".to_vec());
        store.commit(w).unwrap();
        assert_eq!(raw_keys(&store), 1 + 1);
        assert_eq!(store.get(b"g/big").unwrap(), None);
    }
}
