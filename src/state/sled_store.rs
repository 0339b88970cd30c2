//! The state store on sled 0.34: one tree, atomic batches, a flush per checkpoint.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::{Entries, STATE_VERSION, StateError, Store, VERSION_KEY};
use crate::engine::StateWrites;

pub struct SledStore {
    db: sled::Db,
    dir: PathBuf,
}

impl SledStore {
    /// Opens (or creates) the state in `dir`, checking that no other process holds it and
    /// that it was written in this build's format.
    pub fn open(dir: &Path) -> Result<SledStore, StateError> {
        std::fs::create_dir_all(dir).map_err(|e| StateError::Io {
            dir: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        let db = sled::Config::new()
            .path(dir)
            .open()
            .map_err(|e| open_error(dir, e))?;
        let store = SledStore {
            db,
            dir: dir.to_path_buf(),
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
}

fn open_error(dir: &Path, e: sled::Error) -> StateError {
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
                r.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(|e| self.error(e))
            })
            .collect()
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self
            .db
            .get(key)
            .map_err(|e| self.error(e))?
            .map(|v| v.to_vec()))
    }

    fn scan_from(&self, prefix: &[u8], start: &[u8], limit: usize) -> Result<Entries, StateError> {
        self.db
            .range(start.to_vec()..)
            .take_while(|r| r.as_ref().map_or(true, |(k, _)| k.starts_with(prefix)))
            .take(limit)
            .map(|r| {
                r.map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(|e| self.error(e))
            })
            .collect()
    }

    fn commit(&self, mut writes: StateWrites) -> Result<(), StateError> {
        writes.resolve();
        let mut batch = sled::Batch::default();
        for key in writes.deletes {
            batch.remove(key);
        }
        for (key, value) in writes.puts {
            batch.insert(key, value);
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
}
