//! Rewrites a store into a fresh directory, so that nothing deleted survives on disk.
//!
//! sled never rewrites in place what it has logged: an overwritten or deleted value stays in
//! old segments (and its snapshot) until segment cleaning happens to reuse the space, which may
//! be never. `forget` promises that no byte of a user's identifiers remains in the state
//! directory, so after its commit every live key is copied into a new sled database beside the
//! old one, the two directories are swapped in one step (`renameat2(RENAME_EXCHANGE)`), and the
//! old one is deleted. The lock is held throughout: a daemon starting meanwhile is refused.

use std::path::{Path, PathBuf};

use super::StateError;
use super::sled_store::{SledStore, lock, open_error, open_sled};

/// Raw entries copied per batch into the fresh database.
const COPY_BATCH: usize = 1024;

/// `<dir><suffix>`, beside `dir`.
fn beside(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn io_error(dir: &Path, what: &str, e: impl std::fmt::Display) -> StateError {
    StateError::Io {
        dir: dir.to_path_buf(),
        reason: format!("{what}: {e}"),
    }
}

/// Swaps two directories atomically; where the filesystem cannot (`EINVAL`, `ENOSYS`), moves
/// `a` aside and `b` into its place. Returns where `a`'s old content is now.
fn exchange(a: &Path, b: &Path) -> std::io::Result<PathBuf> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    match renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE) {
        Ok(()) => return Ok(b.to_path_buf()),
        Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {}
        Err(e) => return Err(e.into()),
    }
    let aside = beside(a, ".rewrite-old");
    std::fs::rename(a, &aside)?;
    std::fs::rename(b, a)?;
    Ok(aside)
}

/// Makes renames in `dir`'s parent durable.
fn sync_parent(dir: &Path) -> std::io::Result<()> {
    match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => std::fs::File::open(parent)?.sync_all(),
        None => std::fs::File::open(".")?.sync_all(),
    }
}

impl SledStore {
    /// Copies every live key into a fresh database that replaces this one in its directory;
    /// returns how many raw entries were copied. The old files are deleted.
    pub fn rewrite(self) -> Result<usize, StateError> {
        let dir = self.dir.clone();
        let fresh = beside(&dir, ".rewrite");
        // What an interrupted rewrite left: a partial copy, or the old state after the swap.
        for leftover in [&fresh, &beside(&dir, ".rewrite-old")] {
            if leftover.exists() {
                std::fs::remove_dir_all(leftover)
                    .map_err(|e| io_error(leftover, "cannot remove a leftover rewrite", e))?;
            }
        }
        std::fs::create_dir_all(&fresh).map_err(|e| io_error(&fresh, "cannot create", e))?;
        let fresh_lock = lock(&fresh)?;
        let copied = {
            let db = open_sled(&fresh)?;
            let mut copied = 0;
            let mut batch = sled::Batch::default();
            for entry in self.db.iter() {
                let (key, value) = entry.map_err(|e| open_error(&dir, e))?;
                batch.insert(key, value);
                copied += 1;
                if copied % COPY_BATCH == 0 {
                    db.apply_batch(std::mem::take(&mut batch))
                        .map_err(|e| open_error(&fresh, e))?;
                }
            }
            db.apply_batch(batch).map_err(|e| open_error(&fresh, e))?;
            db.flush().map_err(|e| open_error(&fresh, e))?;
            copied
        };
        let SledStore {
            db, lock: old_lock, ..
        } = self;
        db.flush().map_err(|e| open_error(&dir, e))?;
        drop(db);
        let old = exchange(&dir, &fresh)
            .map_err(|e| io_error(&dir, "cannot swap in the rewritten state", e))?;
        sync_parent(&dir).map_err(|e| io_error(&dir, "cannot sync", e))?;
        drop(old_lock);
        std::fs::remove_dir_all(&old)
            .map_err(|e| io_error(&old, "cannot delete the state it replaced", e))?;
        drop(fresh_lock);
        Ok(copied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::StateWrites;
    use crate::state::Store;

    fn bytes_under(dir: &Path) -> Vec<u8> {
        let mut all = Vec::new();
        for entry in walkdir(dir) {
            all.extend(std::fs::read(entry).unwrap_or_default());
        }
        all
    }

    fn walkdir(dir: &Path) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                files.extend(walkdir(&path));
            } else {
                files.push(path);
            }
        }
        files
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn a_deleted_value_is_gone_from_disk_after_a_rewrite_and_the_rest_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let store = SledStore::open(&state).unwrap();
        let mut w = StateWrites::default();
        w.put(b"g/secret".to_vec(), b"erase-me@example.test".to_vec());
        w.put(b"g/big".to_vec(), vec![7u8; 100_000]);
        w.put(b"s/file".to_vec(), b"42".to_vec());
        store.commit(w).unwrap();
        let mut w = StateWrites::default();
        w.delete(b"g/secret".to_vec());
        store.commit(w).unwrap();
        assert!(
            contains(&bytes_under(&state), b"erase-me@example.test"),
            "sled keeps a deleted value in its files"
        );
        assert!(store.rewrite().unwrap() > 3);
        assert!(!contains(&bytes_under(&state), b"erase-me@example.test"));
        assert!(!beside(&state, ".rewrite").exists());
        let store = SledStore::open(&state).unwrap();
        assert_eq!(store.get(b"s/file").unwrap(), Some(b"42".to_vec()));
        assert_eq!(store.get(b"g/big").unwrap(), Some(vec![7u8; 100_000]));
        assert_eq!(store.get(b"g/secret").unwrap(), None);
    }
}
