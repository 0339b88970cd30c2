//! Writes synthetic authentication traffic (the generator the tests and benchmarks use) as
//! JSON lines on stdout, for profiling the daemon on a file or stdin source.
//!
//! ```sh
//! cargo run --release --example synth -- 1000000 200000 > /tmp/events.jsonl   # events, users
//! ```

use std::io::Write;

use authwatch::synth::{Traffic, to_json_lines};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let events: usize = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let users: u64 = args
        .next()
        .map_or(Ok(Traffic::default().users), |a| a.parse())?;
    let traffic = Traffic {
        users,
        ..Traffic::default()
    };
    std::io::stdout().write_all(&to_json_lines(&traffic.generate(events)))?;
    Ok(())
}
