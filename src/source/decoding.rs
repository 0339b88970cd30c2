//! The decode stage: turns the lines of a source's batches into events on worker threads,
//! in order, between the source and detection, so decoding runs beside the engine rather
//! than before it on the detection thread.
//!
//! Batches are dealt to the workers in turn and collected from them in the same turn, so the
//! order of batches (and of everything inside them: records, checkpoint requests, HTTP
//! acknowledgements) is the source's, with no sequence numbers or reordering buffer. Every
//! channel is bounded, so the stage holds at most a few batches per worker. When detection
//! stops reading, the collector's send fails and the whole chain unwinds back to the source;
//! when the source ends, the dealer ends, then each worker, then the collector.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::{self, JoinHandle};

use super::{Batch, Item};
use crate::pipeline::Decoder;

/// Batches waiting at each worker's door and at its way out.
const PER_WORKER: usize = 2;

/// Decode workers: `configured` (`[daemon] decode_threads`), else one per CPU available but
/// detection's, at least one (so decoding still leaves the detection thread on a single
/// core). `available_parallelism` honours CPU affinity and cgroup quotas, so a pinned or
/// limited daemon sizes itself.
pub fn workers(configured: Option<usize>) -> usize {
    configured.unwrap_or_else(|| {
        thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
    })
}

/// Starts the stage over `input`; its batches come out of the returned receiver with each
/// `Item::Line` replaced by what it decodes to (`Item::Event` or `Item::Bad`, several for a
/// record holding several events) and blank lines dropped. `origin` names the source in the
/// log lines of bad records. The threads end on their own (see the module comment).
pub fn start(
    decoder: Decoder,
    origin: String,
    workers: usize,
    input: Receiver<Batch>,
) -> (Receiver<Batch>, Vec<JoinHandle<()>>) {
    let workers = workers.max(1);
    let mut doors = Vec::with_capacity(workers);
    let mut exits = Vec::with_capacity(workers);
    let mut threads = Vec::with_capacity(workers + 2);
    for n in 0..workers {
        let (door, todo) = sync_channel::<Batch>(PER_WORKER);
        let (done, exit) = sync_channel::<Batch>(PER_WORKER);
        let origin = origin.clone();
        threads.push(spawn(&format!("authwatch-decode-{n}"), move || {
            for batch in todo {
                if done.send(decode_batch(decoder, &origin, batch)).is_err() {
                    return;
                }
            }
        }));
        doors.push(door);
        exits.push(exit);
    }
    threads.push(spawn("authwatch-deal", move || deal(input, doors)));
    let (out, decoded) = sync_channel::<Batch>(PER_WORKER);
    threads.push(spawn("authwatch-collect", move || collect(exits, out)));
    (decoded, threads)
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .expect("a decode thread can be started")
}

/// Hands batch i to worker i mod n.
fn deal(input: Receiver<Batch>, doors: Vec<SyncSender<Batch>>) {
    for (batch, door) in input.into_iter().zip(doors.iter().cycle()) {
        if door.send(batch).is_err() {
            return;
        }
    }
}

/// Takes batch i from worker i mod n: the order they were dealt in.
fn collect(exits: Vec<Receiver<Batch>>, out: SyncSender<Batch>) {
    for exit in exits.iter().cycle() {
        let Ok(batch) = exit.recv() else { return };
        if out.send(batch).is_err() {
            return;
        }
    }
}

/// Decodes the lines of one batch in place of their bytes; other items pass as they are.
pub fn decode_batch(decoder: Decoder, origin: &str, batch: Batch) -> Batch {
    // A batch may name its own format (HTTP routes); otherwise the source's.
    let decoder = batch.format.map_or(decoder, |f| decoder.with_format(f));
    let mut items = Vec::with_capacity(batch.items.len());
    for item in batch.items {
        match item {
            Item::Line(line, _) if line.iter().all(u8::is_ascii_whitespace) => {}
            Item::Line(line, n) => decoder.decode_each(&line, |decoded| {
                items.push(match decoded {
                    Ok(event) => Item::Event(Arc::new(event)),
                    Err(bad) => Item::Bad(bad, origin.to_string(), n),
                })
            }),
            other => items.push(other),
        }
    }
    Batch {
        items,
        positions: batch.positions,
        format: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Admission;
    use crate::normalize::Format;

    fn line(ts: i64, user: &str) -> Item {
        let json = format!(r#"{{"ts":{ts},"type":"login.failure","username":"{user}"}}"#);
        Item::Line(json.into_bytes().into(), ts as u64)
    }

    /// What comes out, as (user or bad line number) per item, batch by batch.
    fn outcome(batches: Receiver<Batch>) -> Vec<Vec<String>> {
        batches
            .into_iter()
            .map(|b| {
                b.items
                    .iter()
                    .map(|i| match i {
                        Item::Event(e) => e.username.as_deref().unwrap_or_default().to_string(),
                        Item::Bad(bad, _, n) => format!("bad {n} {}", bad.reason.as_str()),
                        Item::TooLong(len, n) => format!("long {n} {len}"),
                        _ => "other".into(),
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn batches_leave_decoded_and_in_the_order_they_came_whatever_the_workers() {
        let decoder = Decoder::new(Format::Native, Admission::default());
        for workers in [1, 2, 3] {
            let (tx, rx) = sync_channel(1);
            let (out, threads) = start(decoder, "test".into(), workers, rx);
            let feeder = thread::spawn(move || {
                for b in 0..50_i64 {
                    let items = vec![
                        line(b * 10 + 1, &format!("u{b}a")),
                        Item::Line(b"  ".to_vec().into(), 0),
                        Item::Line(b"{oops".to_vec().into(), (b * 10 + 2) as u64),
                        Item::TooLong(9, 3),
                        line(b * 10 + 4, &format!("u{b}b")),
                    ];
                    tx.send(Batch::without_position(items)).unwrap();
                }
            });
            let got = outcome(out);
            feeder.join().unwrap();
            threads.into_iter().for_each(|t| t.join().unwrap());
            assert_eq!(got.len(), 50, "{workers} workers");
            for (b, items) in got.iter().enumerate() {
                let want = [
                    format!("u{b}a"),
                    format!("bad {} invalid_json", b * 10 + 2),
                    "long 3 9".to_string(),
                    format!("u{b}b"),
                ];
                assert_eq!(items, &want, "{workers} workers, batch {b}");
            }
        }
    }

    #[test]
    fn a_batch_of_another_format_is_decoded_in_it() {
        let decoder = Decoder::new(Format::Native, Admission::default());
        let auth0 = br#"{"date":"2024-01-01T00:00:00Z","type":"slo","user_name":"ann"}"#;
        let batch = Batch {
            items: vec![Item::Line(auth0.to_vec().into(), 1)],
            positions: vec![(b"k".to_vec(), b"v".to_vec())],
            format: Some(Format::Auth0),
        };
        let out = decode_batch(decoder, "http", batch);
        assert!(matches!(&out.items[..], [Item::Event(e)] if e.source.as_deref() == Some("auth0")));
        assert_eq!(out.positions.len(), 1, "positions travel with their batch");
    }

    #[test]
    fn the_stage_unwinds_when_detection_stops_reading() {
        let decoder = Decoder::new(Format::Native, Admission::default());
        let (tx, rx) = sync_channel(1);
        let (out, threads) = start(decoder, "test".into(), 2, rx);
        drop(out);
        // The source sees its sends fail once the chain has noticed, instead of blocking.
        let mut sent = 0;
        while tx.send(Batch::without_position(vec![line(1, "u")])).is_ok() {
            sent += 1;
            assert!(sent < 1_000, "the stage kept taking batches nobody reads");
        }
        threads.into_iter().for_each(|t| t.join().unwrap());
    }
}
