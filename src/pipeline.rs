//! The synchronous heart shared by `run` and `replay`: bytes in, decode, enrich, engine, sinks
//! out.
//! Bad input is counted by reason and logged with its position, rate-limited per reason.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use crate::engine::{Alert, Engine};
use crate::enrich::Enricher;
use crate::event::{Admission, BadInput, BadReason, Event};
use crate::normalize::Format;
use crate::sink::Router;
use crate::telemetry::{Metrics, Tally};

/// Turns one input record into a canonical event (native JSON or a provider format) and
/// admits it. Every source's records go through one of these, so the future-timestamp bound
/// and the nesting limit hold on every path (lines, HTTP batches, Kafka's source thread).
#[derive(Clone, Copy, Debug)]
pub struct Decoder {
    format: Format,
    admission: Admission,
}

impl Decoder {
    pub fn new(format: Format, admission: Admission) -> Decoder {
        Decoder { format, admission }
    }

    /// The same admission for records in another format (an HTTP route fixes its format).
    pub fn with_format(self, format: Format) -> Decoder {
        Decoder { format, ..self }
    }

    pub fn admission(&self) -> Admission {
        self.admission
    }

    pub fn decode(&self, record: &[u8]) -> Result<Event, BadInput> {
        let event = crate::normalize::normalize(self.format, record)?;
        self.admission.check(&event)?;
        Ok(event)
    }

    /// Decodes a record that may hold several events (an Entra Event Hubs body), handing each
    /// to `each` in the record's order; any other record gives exactly [`Decoder::decode`].
    pub fn decode_each(&self, record: &[u8], mut each: impl FnMut(Result<Event, BadInput>)) {
        crate::normalize::normalize_each(self.format, record, |decoded| {
            each(decoded.and_then(|event| {
                self.admission.check(&event)?;
                Ok(event)
            }))
        });
    }
}

/// Bad lines of one reason logged one by one before they are only counted.
const BAD_LINES_LOGGED_PER_REASON: u64 = 10;

/// What went through the pipeline.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    /// Records read (blank lines excluded).
    pub records: u64,
    /// Records that decoded into events.
    pub events: u64,
    pub bad: BTreeMap<BadReason, u64>,
    pub alerts: u64,
}

impl Counts {
    pub fn bad_total(&self) -> u64 {
        self.bad.values().sum()
    }
}

pub struct Pipeline {
    engine: Engine,
    decode: Decoder,
    enricher: Enricher,
    router: Router,
    counts: Counts,
    /// Counts for the metrics, published by the daemon once per batch.
    tally: Tally,
    alerts: Vec<Alert>,
}

impl Pipeline {
    pub fn new(engine: Engine, decode: Decoder, router: Router) -> Pipeline {
        Pipeline {
            engine,
            decode,
            enricher: Enricher::none(),
            router,
            counts: Counts::default(),
            tally: Tally::default(),
            alerts: Vec::new(),
        }
    }

    /// Enriches events (GeoIP) between decoding and the engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// For a checkpoint or a rule reload.
    pub fn engine_mut(&mut self) -> &mut Engine {
        &mut self.engine
    }

    pub fn enricher(&self) -> &Enricher {
        &self.enricher
    }

    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// Whether the identity metrics name the top offenders (`[http] metrics_top_offenders`).
    pub fn publish_top_offenders(&mut self, on: bool) {
        self.tally.publish_top_offenders(on);
    }

    /// Publishes the counts gathered since the last call, and the engine's figures.
    pub fn publish_metrics(&mut self, m: &Metrics, source: &str, format: &str, now_ms: i64) {
        self.tally
            .publish(m, source, format, self.engine.stats(), now_ms);
    }

    /// [`Pipeline::publish_metrics`] with the engine figures of several engines (tasks)
    /// summed by the caller; they must never go down.
    pub fn publish_metrics_with(
        &mut self,
        m: &Metrics,
        source: &str,
        format: &str,
        stats: &crate::engine::EngineStats,
        now_ms: i64,
    ) {
        self.tally.publish(m, source, format, stats, now_ms);
    }

    pub fn with_enricher(mut self, enricher: Enricher) -> Pipeline {
        self.enricher = enricher;
        self
    }

    /// Feeds one record; `origin` and `line_no` say where it came from, for the log.
    pub fn feed(&mut self, record: &[u8], origin: &str, line_no: u64) -> io::Result<()> {
        if record.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let decode = self.decode;
        let mut fed = Ok(());
        decode.decode_each(record, |decoded| {
            if fed.is_err() {
                return;
            }
            self.counts.records += 1;
            match decoded {
                Ok(event) => fed = self.accept(event),
                Err(bad) => self.reject(&bad, origin, line_no),
            }
        });
        fed
    }

    /// Feeds one record in a format other than the source's (an HTTP route fixes the format
    /// of what it receives); otherwise exactly [`Pipeline::feed`].
    pub fn feed_as(
        &mut self,
        format: Format,
        record: &[u8],
        origin: &str,
        line_no: u64,
    ) -> io::Result<()> {
        let decode = self.decode.with_format(format);
        let configured = std::mem::replace(&mut self.decode, decode);
        let fed = self.feed(record, origin, line_no);
        self.decode = configured;
        fed
    }

    /// Counts a record that was too long to read.
    pub fn too_long(&mut self, len: usize, origin: &str, line_no: u64) {
        self.counts.records += 1;
        let bad = BadInput::new(BadReason::TooLarge, format!("{len} bytes"));
        self.reject(&bad, origin, line_no);
    }

    /// Feeds an event its source already decoded (Kafka decodes on its own thread); from
    /// here on exactly what [`Pipeline::feed`] does with a record that decodes.
    ///
    /// The event comes shared, as the engine holds it: a decoder thread made the one
    /// allocation, and nothing here copies the event again (enrichment writes into it in place
    /// while it is not yet shared).
    pub fn feed_decoded(&mut self, event: Arc<Event>) -> io::Result<()> {
        self.counts.records += 1;
        self.accept_shared(event)
    }

    /// A decoded event: enriched, counted, detected on.
    fn accept(&mut self, event: Event) -> io::Result<()> {
        self.accept_shared(Arc::new(event))
    }

    fn accept_shared(&mut self, mut event: Arc<Event>) -> io::Result<()> {
        self.counts.events += 1;
        self.enricher.enrich(Arc::make_mut(&mut event));
        self.tally.event(&event);
        self.engine.process_shared(event, &mut self.alerts);
        self.deliver()
    }

    /// Counts a record its source decoded and found bad; `at` is its position (an offset).
    pub fn rejected(&mut self, bad: &BadInput, origin: &str, at: u64) {
        self.counts.records += 1;
        self.reject(bad, origin, at);
    }

    /// Lets event time advance to `ts` on a quiet source.
    pub fn advance_to(&mut self, ts: i64) -> io::Result<()> {
        self.engine.advance_to(ts, &mut self.alerts);
        self.deliver()
    }

    /// End of input: processes what the lateness buffer holds and flushes the sinks.
    pub fn finish(&mut self) -> io::Result<()> {
        self.engine.flush(&mut self.alerts);
        self.deliver()?;
        self.router.flush()
    }

    pub fn flush_sinks(&mut self) -> io::Result<()> {
        self.router.flush()
    }

    /// Reopens the sinks' files (SIGHUP after log rotation).
    pub fn reopen_sinks(&mut self) {
        self.router.reopen();
    }

    fn deliver(&mut self) -> io::Result<()> {
        for mut alert in self.alerts.drain(..) {
            alert.stamp_detected_now();
            self.counts.alerts += 1;
            self.tally.alert(&alert);
            self.router.deliver(&alert)?;
        }
        Ok(())
    }

    fn reject(&mut self, bad: &BadInput, origin: &str, line_no: u64) {
        self.tally.bad(bad.reason);
        let seen = self.counts.bad.entry(bad.reason).or_default();
        *seen += 1;
        if *seen <= BAD_LINES_LOGGED_PER_REASON {
            tracing::warn!(source = origin, line = line_no, reason = %bad.reason, "bad input set aside: {}", bad.message);
            if *seen == BAD_LINES_LOGGED_PER_REASON {
                tracing::warn!(reason = %bad.reason, "further bad input of this kind is counted, not logged");
            }
        }
    }
}
