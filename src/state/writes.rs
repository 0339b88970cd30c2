//! A batch of writes for the store: puts and deletes of plain keys and values, plus work that
//! produces more of them on the committing thread. Whoever owns keys (the engine, the outbox,
//! sources) fills one; the store applies it atomically, knowing nothing of what it holds.

/// Work that produces writes later, on the thread that commits them.
pub type Deferred = Box<dyn FnOnce(&mut StateWrites) + Send>;

/// Writes produced by a checkpoint, applied by the store in one atomic batch.
#[derive(Default)]
pub struct StateWrites {
    pub puts: Vec<(Vec<u8>, Vec<u8>)>,
    pub deletes: Vec<Vec<u8>>,
    /// Serialisation left to the committing thread; `resolve` runs it.
    deferred: Vec<Deferred>,
}

impl std::fmt::Debug for StateWrites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateWrites")
            .field("puts", &self.puts.len())
            .field("deletes", &self.deletes.len())
            .field("deferred", &self.deferred.len())
            .finish()
    }
}

impl StateWrites {
    pub fn defer(&mut self, work: Deferred) {
        self.deferred.push(work);
    }

    /// Runs the deferred serialisation so `puts` and `deletes` are complete.
    pub fn resolve(&mut self) {
        for work in std::mem::take(&mut self.deferred) {
            work(self);
        }
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.puts.push((key, value));
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        self.deletes.push(key);
    }

    pub fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.deletes.is_empty() && self.deferred.is_empty()
    }
}
