//! Delivery figures: latency from an event written to the daemon's stdin to the webhook
//! receiving its alert (p50, p99, max), and throughput of a burst, printed for the record
//! (`cargo test --release --test it sinks_latency -- --nocapture`), with loose bounds so a
//! regression by an order of magnitude fails.

use std::time::{Duration, Instant};

use super::sinks_harness::{Daemon, Receiver, config, poll};

/// Events paced for the latency figure, and the burst for throughput.
const PACED: usize = 200;
const PACE: Duration = Duration::from_millis(10);
const BURST: usize = 2000;

/// An event at the current time, a millisecond after the previous one at least: with no
/// lateness, an event no newer than the last one processed counts as late.
fn now_event(i: usize, last: &mut i64) -> String {
    let ts = chrono::Utc::now().timestamp_millis().max(*last + 1);
    *last = ts;
    format!(
        "{{\"ts\":{ts},\"type\":\"token.reuse\",\"tenant\":\"acme\",\"user\":\"u{i}\",\"ip\":\"198.51.100.7\"}}\n"
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[test]
fn delivery_latency_and_throughput_from_event_in_to_webhook_received() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start();
    // No lateness (the first line lands in [rules]): an alert leaves as soon as its event is
    // processed.
    let cfg = config(
        dir.path(),
        &format!(
            "lateness = \"0s\"\n[[sink]]\nkind = \"webhook\"\nurl = \"{}\"\n",
            rx.url("/hook")
        ),
    );
    let mut d = Daemon::start(&cfg, &[]);

    let mut sent = Vec::with_capacity(PACED);
    let mut last = 0;
    for i in 0..PACED {
        sent.push(Instant::now());
        d.send(&now_event(i, &mut last));
        std::thread::sleep(PACE);
    }
    let got = poll("every paced alert", Duration::from_secs(60), || {
        let r = rx.accepted("/hook");
        (r.len() >= PACED).then_some(r)
    });
    let mut latencies: Vec<Duration> = got
        .iter()
        .map(|r| {
            let user = r.json()["user"].as_str().unwrap().to_string();
            let i: usize = user[1..].parse().unwrap();
            r.at.duration_since(sent[i])
        })
        .collect();
    latencies.sort();

    let burst: String = (PACED..PACED + BURST)
        .map(|i| now_event(i, &mut last))
        .collect();
    let started = Instant::now();
    d.send(&burst);
    poll("every burst alert", Duration::from_secs(120), || {
        (rx.accepted("/hook").len() >= PACED + BURST).then_some(())
    });
    let took = started.elapsed();
    assert!(d.stop().success());

    let (p50, p99, max) = (
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        *latencies.last().unwrap(),
    );
    let rate = BURST as f64 / took.as_secs_f64();
    println!(
        "delivery (event in -> webhook received), {PACED} paced alerts: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; burst of {BURST}: {:.2} s, {rate:.0} alerts/s",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        took.as_secs_f64()
    );
    assert_eq!(rx.accepted("/hook").len(), PACED + BURST, "each alert once");
    assert!(p99 < Duration::from_secs(2), "p99 {p99:?}");
    assert!(rate > 50.0, "{rate} alerts/s");
}
