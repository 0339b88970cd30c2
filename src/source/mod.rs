//! Event sources: newline-delimited records from standard input or a followed file, read on
//! their own thread, batches posted over HTTP, a Kafka consumer group, and the Okta and Auth0
//! logs APIs polled, handed to the detection thread in batches.

pub mod decoding;
pub mod file;
pub mod http;
pub mod kafka;
pub mod lines;
pub mod pull;
pub mod stdin;

use serde::{Deserialize, Serialize};

use crate::event::{BadInput, Event};
use crate::normalize::Format;

/// Records handed from a reader to the engine at once, at most.
pub const BATCH_RECORDS: usize = 1024;

/// One record read from a source.
pub enum Item {
    /// The record's bytes and its line number. A slice of the block or body it was read in,
    /// shared rather than copied (`source::lines`).
    Line(bytes::Bytes, u64),
    /// A record over the size limit: its length and line number (its bytes were dropped).
    TooLong(usize, u64),
    // Kafka decodes on its own thread (it orders partitions by event time, and sends bad
    // messages to a dead-letter topic), so it hands over outcomes rather than bytes.
    /// An event the source already decoded.
    Event(std::sync::Arc<Event>),
    /// A record the source decoded and found bad: why, where from (for the log), position.
    Bad(BadInput, String, u64),
    /// Not a record: the records after it (up to the next such item or the batch's end) were
    /// read from this partition of the input (`kafka::group::partition_id`). Only the Kafka
    /// source in front of the repartition hop sends it; detection ignores it.
    Partition(u64),
    /// Not a record: the records after it (up to the next such item or the batch's end) belong
    /// to this task, the partition of detection's topic they were read from. Only a Kafka
    /// source with a changelog (`[source.scale_out] changelog`) sends it.
    Task(i32),
    /// Not a record: this task was assigned to the instance, and its state (engine entries and
    /// the partition's position) restored from the changelog; it replaces any the detector
    /// held. Sent before any of the task's records.
    TaskRestored(i32, std::collections::BTreeMap<Vec<u8>, Vec<u8>>),
    /// Not a record: these tasks were revoked. Sent with a `CheckpointNow` after it: the
    /// checkpoint writes their state to the changelog, then the detector drops them.
    TasksRevoked(Vec<i32>),
    /// Not a record: these tasks were lost (the group session expired, so another instance
    /// may own them and be writing their changelog already): dropped at once, never
    /// checkpointed again here.
    TasksLost(Vec<i32>),
    /// Not a record: checkpoint once everything before it is processed and send back the
    /// checkpoint's sequence number. A Kafka revocation waits for that checkpoint to be
    /// durable (`state::OnDurable`) and commits its offsets before the rebalance completes.
    CheckpointNow(std::sync::mpsc::Sender<u64>),
    /// Not a record: the sequence number of the checkpoint that covers everything before it
    /// is sent here when that checkpoint is taken (soon: the detector checkpoints once the
    /// queue is empty while such a request waits). HTTP ingest answers 200 only once that
    /// checkpoint is durable (`state::OnDurable`), so an acknowledged event survives a crash.
    AckWhenDurable(Ack),
}

/// A request waiting for the checkpoint that covers its batch, and the place its batch holds
/// in its route's share of the queue until then.
pub struct Ack {
    pub reply: tokio::sync::oneshot::Sender<u64>,
    pub share: tokio::sync::OwnedSemaphorePermit,
}

impl Ack {
    /// The checkpoint `seq` covers the batch: tell the request, free its place.
    pub fn covered_by(self, seq: u64) {
        let _ = self.reply.send(seq);
    }
}

/// Records, and where the source will be once they are processed: state-store entries
/// (key, value) that the next checkpoint writes together with the engine state, so a restart
/// resumes exactly after the last checkpointed record.
pub struct Batch {
    pub items: Vec<Item>,
    pub positions: Vec<(Vec<u8>, Vec<u8>)>,
    /// The format of every record in the batch when it is not the configured `[source]
    /// format`: an HTTP route fixes the format of what it receives (`/v1/ingest/okta` is
    /// always Okta), so one source can carry several formats. `None`: the configured one.
    pub format: Option<Format>,
}

impl Batch {
    pub fn without_position(items: Vec<Item>) -> Batch {
        Batch {
            items,
            positions: Vec::new(),
            format: None,
        }
    }
}

/// Where a followed file was read up to: the file's identity (device and inode, so a rotated
/// file is told apart from its successor, and a fingerprint of its first bytes, so a reused
/// inode or a copy is recognised) and the offset after the last complete line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePosition {
    pub dev: u64,
    pub inode: u64,
    pub offset: u64,
    /// Lines consumed so far, so line numbers in logs stay true after a restart.
    pub line: u64,
    /// xxh3 of the file's first `fingerprint_len` bytes (0 and 0 in positions written before
    /// fingerprints: such a position matches on device and inode alone).
    #[serde(default)]
    pub fingerprint: u64,
    #[serde(default)]
    pub fingerprint_len: u64,
}
