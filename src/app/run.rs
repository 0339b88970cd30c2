//! `authwatch run`: the daemon's wiring. Config, rules and state first (any error exits before
//! anything starts), then the HTTP server and signal handling on a small tokio runtime, the
//! source on its own thread, and detection on this thread until the input ends or a signal
//! stops it.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use super::detect::{BATCHES_IN_FLIGHT, Detector, Ended};
use super::reload::Reloader;
use super::tasks::Tasks;
use super::{
    Failure, bound_restored_clock, engine_options, enricher, load_config, load_rules, open_state,
};
use crate::config::{KafkaConfig, Source};
use crate::engine::{self, Engine};
use crate::event::{Admission, Clock};
use crate::http::{self, Server};
use crate::normalize::Format;
use crate::outbox::Delivery;
use crate::outbox::topic::TopicDelivery;
use crate::pipeline::Decoder;
use crate::pipeline::Pipeline;
use crate::shared::{Shared, watch_signals};
use crate::sink::{AlertFormat, AlertSink, Router, Routing, SinkKind};
use crate::source::file::{self, FileSource};
use crate::source::kafka::KafkaSource;
use crate::source::kafka::changelog::{ChangelogStore, Restorer};
use crate::source::kafka::repartition::{self, Repartitioner};
use crate::source::kafka::scale_out::{self, Plan, Route};
use crate::source::pull::{self, PullSource};
use crate::source::{self, Batch, decoding, stdin};
use crate::state::{self, CheckpointWriter, Guarded, StoreGuard};

/// Runtime threads for network IO; detection has its own thread.
const IO_THREADS: usize = 2;

pub fn run(
    config: Option<&Path>,
    reset_state: bool,
    output: Option<AlertFormat>,
) -> Result<(), Failure> {
    let mut cfg = load_config(config)?;
    raise_fd_limit();
    // `--output` chooses for every stdout sink, over its `format`.
    if let Some(format) = output {
        cfg.sinks
            .iter_mut()
            .filter(|s| matches!(s.kind, SinkKind::Stdout(_)))
            .for_each(|s| s.format = Some(format));
    }
    let set = load_rules(&cfg.rules_dir)?;
    let admission = Admission {
        clock: Clock::Wall,
        max_skew_ms: cfg.max_clock_skew_ms,
    };
    let decode = Decoder::new(cfg.format, admission);
    let enricher = enricher(&cfg)?;
    let store = open_state(&cfg.state_dir, reset_state)?;
    // From here every store call has a deadline and any store error ends the daemon.
    let guard = StoreGuard::new(
        &cfg.state_dir,
        Duration::from_millis(cfg.io_timeout_ms.max(1) as u64),
    );
    state::start_watchdog(guard.clone());
    let store = Arc::new(Guarded::new(store, guard.clone()));
    let mut engine = Engine::new(set.enabled(), &engine_options(&cfg, &set));
    let entries = state::scan_prefixes(&*store, &engine::STATE_PREFIXES)?;
    let restored = engine.restore(entries).map_err(|e| {
        anyhow::anyhow!(
            "cannot restore the state in {}: {e}; start with --reset-state to begin afresh",
            cfg.state_dir.display()
        )
    })?;
    bound_restored_clock(&mut engine, &admission);
    tracing::info!(
        groups = restored.groups,
        pending = restored.pending,
        dropped = restored.dropped,
        "state restored"
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(IO_THREADS)
        .thread_name("authwatch-io")
        .enable_all()
        .build()?;
    let shared = Arc::new(Shared::default());
    let _ = shared.store.set(guard.clone());
    shared.set_stall_timeout(Duration::from_millis(cfg.stall_timeout_ms.max(1) as u64));
    runtime.spawn(watch_signals(shared.clone()));
    // Delivery (issue 6): alerts go into the outbox; a worker per sink delivers from it. With
    // `[source.scale_out] alert_topic` the outbox is a Kafka topic every instance delivers.
    let (delivery, outbox): (Deliveries, Box<dyn AlertSink>) = match &cfg.source {
        Source::Kafka(kafka) if kafka.scale_out.as_ref().is_some_and(|s| s.alert_topic) => {
            let scale = kafka.scale_out.as_ref().expect("scale-out");
            let topic = crate::config::alert_topic_name(&kafka.group_id);
            repartition::ensure_internal_topic(kafka, scale, &topic, "alert topic")?;
            let (delivery, writer) =
                TopicDelivery::start(runtime.handle(), kafka, store.clone(), &cfg.sinks)?;
            delivery.export_metrics(runtime.handle(), shared.clone());
            (Deliveries::Topic(delivery), Box::new(writer))
        }
        _ => {
            let (delivery, writer) = Delivery::start(runtime.handle(), store.clone(), &cfg.sinks)?;
            delivery.export_metrics(runtime.handle(), shared.clone());
            (Deliveries::Store(delivery), Box::new(writer))
        }
    };
    let router = Router::new(vec![(Routing::default(), outbox)]);
    let queue = match &cfg.source {
        Source::Http(ingest) => source::http::queue_capacity(ingest),
        _ => BATCHES_IN_FLIGHT,
    };
    let (tx, rx) = mpsc::sync_channel::<Batch>(queue);
    // Kafka commits offsets when a checkpoint is durable, and is joined on a stop too, so
    // it commits the last checkpoint's offsets and leaves its group before the process ends.
    // HTTP ingest answers a request once the checkpoint covering its batch is durable.
    let mut on_durable = None;
    let mut routes = http::health_routes(shared.clone());
    if cfg.http.metrics_listen.is_none() {
        routes = routes.merge(http::metrics_routes(shared.clone()));
    }
    if cfg.runbook_base_url.is_none() {
        routes = routes.merge(http::runbooks::runbook_routes(set.runbook_dir()));
    }
    if let Source::Http(ingest) = &cfg.source {
        let (durable, checkpoints) = source::http::durable_checkpoints();
        on_durable = Some(durable);
        routes = routes.merge(source::http::routes(
            ingest.clone(),
            decode,
            tx.clone(),
            shared.clone(),
            checkpoints,
        ));
    }
    let grace = Duration::from_millis(cfg.shutdown_timeout_ms.max(0) as u64);
    let limits = http::Limits {
        header_timeout: cfg.http.header_timeout,
        idle_timeout: cfg.http.idle_timeout,
        max_connections: cfg.http.max_connections,
        shutdown_timeout: grace,
    };
    let mut servers = Vec::new();
    if let Some(addr) = cfg.http_listen {
        servers.push(runtime.block_on(Server::start(addr, routes, limits))?);
    }
    if let Some(addr) = cfg.http.metrics_listen {
        let metrics = http::metrics_routes(shared.clone());
        servers.push(runtime.block_on(Server::start(addr, metrics, limits))?);
    }

    // Scale-out: how events reach detection, and the key a rule reload must keep.
    let route = match &cfg.source {
        Source::Kafka(kafka) => match &kafka.scale_out {
            Some(scale) => Some(
                scale_out::plan(kafka, scale, &set.enabled())
                    .map_err(|e| Failure::Invalid(vec![e]))?,
            ),
            None => None,
        },
        _ => None,
    };
    let scale_key = match (&route, &cfg.source) {
        (Some(Route::Hop(plan)), _) => Some(plan.key.clone()),
        (Some(Route::Direct), Source::Kafka(kafka)) => kafka
            .scale_out
            .as_ref()
            .and_then(|scale| scale.input_key.clone()),
        _ => None,
    };
    // Changelog mode: the tasks' state lives in a topic, restored on assignment.
    let changelog = match (&route, &cfg.source) {
        (Some(route), Source::Kafka(kafka))
            if kafka.scale_out.as_ref().is_some_and(|s| s.changelog) =>
        {
            let scale = kafka.scale_out.as_ref().expect("scale-out");
            let (topic, tasks_topic) =
                scale_out::changelog_topics(kafka, route).map_err(|e| Failure::Invalid(vec![e]))?;
            if repartition::ensure_internal_topic(kafka, scale, &topic, "changelog topic")? {
                tracing::info!(%topic, "kafka: created the changelog topic");
            }
            Some(Changelog {
                topic,
                tasks_topic,
                snapshot_every: scale.snapshot_every,
            })
        }
        _ => None,
    };
    let stop_source = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut join_on_stop = false;
    let (reader, origin) = match &cfg.source {
        Source::Stdin => {
            let reader = thread::spawn(move || stdin::read_batches(io::stdin().lock(), tx));
            (reader, "stdin".to_string())
        }
        Source::File {
            path,
            follow,
            rotate_wait,
        } => {
            let resume = file::stored_position(&*store)?;
            let source = FileSource {
                path: path.clone(),
                follow: *follow,
                rotate_wait: *rotate_wait,
                resume,
                stop: stop_source.clone(),
            };
            (
                thread::spawn(move || source.run(tx)),
                path.display().to_string(),
            )
        }
        Source::Http(_) => {
            // The handlers hold their own senders (in the router, dropped when the server
            // stops); there is no reader thread, so one that has already finished stands in.
            drop(tx);
            (thread::spawn(|| Ok(())), "http".to_string())
        }
        Source::Kafka(kafka) => {
            join_on_stop = true;
            match route.clone().unwrap_or(Route::Direct) {
                Route::Direct => {
                    let (mut source, durable) =
                        KafkaSource::start(kafka, decode, store.clone(), stop_source.clone(), tx)?;
                    if let Some(c) = &changelog {
                        source = source.with_tasks(Restorer::new(
                            kafka,
                            c.topic.clone(),
                            shared.clone(),
                        ));
                    }
                    let source = source.with_lag_metric(shared.metrics.source_lag.clone());
                    on_durable = Some(durable);
                    (
                        thread::spawn(move || source.run().map_err(io::Error::other)),
                        format!("kafka {}", kafka.topics.join(",")),
                    )
                }
                Route::Hop(plan) => {
                    let origin = format!("kafka {} via {}", kafka.topics.join(","), plan.topic);
                    let (reader, durable) = start_hop(
                        kafka,
                        plan,
                        decode,
                        store.clone(),
                        shared.clone(),
                        stop_source.clone(),
                        tx,
                        changelog.as_ref().map(|c| c.topic.clone()),
                    )?;
                    on_durable = Some(durable);
                    (reader, origin)
                }
            }
        }
        Source::Pull(api) => {
            let resume = pull::stored_cursor(&*store, api)?;
            let origin = format!("{} {}", api.provider.kind(), api.url);
            let source = PullSource {
                cfg: (**api).clone(),
                resume,
                stop: stop_source.clone(),
            };
            (thread::spawn(move || source.run(tx)), origin)
        }
    };
    // Lines read from standard input or a file are decoded beside detection, on threads of
    // their own (`source::decoding`); Kafka decodes on its source thread, HTTP in its
    // handlers, and an API poll's few records go to detection as they are.
    let rx = match &cfg.source {
        Source::Stdin | Source::File { .. } => {
            let workers = decoding::workers(cfg.decode_threads);
            decoding::start(decode, origin.clone(), workers, rx).0
        }
        _ => rx,
    };
    tracing::info!(rules = set.enabled().len(), source = %origin, "authwatch started");
    shared.ready.store(true, Ordering::Relaxed);

    let mut pipeline = Pipeline::new(engine, decode, router).with_enricher(enricher);
    pipeline.publish_top_offenders(cfg.http.metrics_top_offenders);
    let interval = Duration::from_millis(cfg.checkpoint_interval_ms as u64);
    // In changelog mode the writer commits tasks' state to the changelog topic first.
    let committed_to: Arc<dyn state::Store + Send + Sync> = match (&changelog, &cfg.source) {
        (Some(c), Source::Kafka(kafka)) => {
            Arc::new(ChangelogStore::new(kafka, c.topic.clone(), store.clone())?)
        }
        _ => store.clone(),
    };
    let writer = CheckpointWriter::start(committed_to, on_durable);
    let mut detector = Detector::new(pipeline, writer, shared.clone(), origin, interval)
        .with_reloader(match scale_key {
            Some(key) => Reloader::new(cfg.rules_dir.clone(), engine_options(&cfg, &set))
                .with_guard(Box::new(move |rules| scale_out::keeps(&key, rules))),
            None => Reloader::new(cfg.rules_dir.clone(), engine_options(&cfg, &set)),
        })
        .with_labels(source_kind(&cfg.source), cfg.format.as_str())
        .with_queue_capacity(queue);
    if let Some(c) = &changelog {
        detector = detector.with_tasks(Tasks::new(
            c.tasks_topic.clone(),
            c.snapshot_every,
            admission,
        ));
    }
    shared.metrics.rules_loaded.set(set.enabled().len() as i64);
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    let ended = detector.run(&rx);
    if guard.failure().is_some() {
        // Nothing that touches the store can be waited for (threads may be blocked inside
        // sled, which also flushes when dropped): say why and end here.
        guard.exit_now();
    }
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    shared.ready.store(false, Ordering::Relaxed);
    stop_source.store(true, Ordering::Relaxed);
    // The servers stop accepting and close idle connections at once; requests being answered
    // get `[daemon] shutdown_timeout`. Meanwhile their batches are processed and checkpointed
    // here, so they are answered 200 rather than cut off.
    let stopping: Vec<_> = servers
        .into_iter()
        .map(|server| runtime.spawn(server.shutdown()))
        .collect();
    let ended = ended?;
    if ended == Ended::Stopped {
        while !stopping.iter().all(|s| s.is_finished()) {
            detector.drain(&rx)?;
            thread::sleep(Duration::from_millis(20));
        }
        // A request the server accepted while the detector was draining is in the channel
        // now that the server has stopped: process it, so no accepted event is lost.
        detector.drain(&rx)?;
    }
    for server in stopping {
        let _ = runtime.block_on(server);
    }
    let (pipeline, stats) = detector.close()?;
    // Healthy sinks get `[daemon] shutdown_timeout` to deliver what is stored (a failing sink
    // is not waited for); the rest is delivered on the next start.
    match delivery {
        Deliveries::Store(delivery) => runtime.block_on(delivery.shutdown(grace)),
        // What is not delivered stays in the topic for the other instances.
        Deliveries::Topic(delivery) => delivery.shutdown(),
    }
    // A source blocked on a full channel sees it closed.
    drop(rx);
    if ended == Ended::EndOfInput || join_on_stop {
        let read_result = reader
            .join()
            .map_err(|_| anyhow::anyhow!("the input reader panicked"))?;
        read_result?;
    }
    // On a stop the reader may be blocked on stdin; it ends with the process.
    let c = pipeline.counts();
    tracing::info!(
        events = c.events,
        bad = c.bad_total(),
        late = stats.late,
        duplicates = stats.duplicates,
        alerts = c.alerts,
        ?ended,
        "authwatch stopped"
    );
    runtime.shutdown_timeout(Duration::from_secs(1));
    if guard.failure().is_some() {
        // The store failed during the stop: what it was given is not known to be durable.
        guard.exit_now();
    }
    Ok(())
}

/// Scale-out with the repartition hop (`[source.scale_out]`): the input topic's source hands
/// its events to the repartitioner, which produces them to the internal topic; detection
/// reads that topic as a member of its own group, exactly as a single instance reads a topic
/// keyed by what its rules group by. Returns the reader thread (it runs the three parts and
/// ends with them) and the callback for the checkpoint writer.
#[allow(clippy::too_many_arguments)]
fn start_hop(
    kafka: &KafkaConfig,
    plan: Plan,
    decode: Decoder,
    store: Arc<dyn state::Store + Send + Sync>,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    tx: mpsc::SyncSender<Batch>,
    changelog: Option<String>,
) -> Result<(thread::JoinHandle<io::Result<()>>, state::OnDurable), Failure> {
    let scale = kafka
        .scale_out
        .as_ref()
        .expect("a hop is planned from [source.scale_out]");
    repartition::ensure_topic(kafka, scale, &plan)?;
    tracing::info!(key = %plan.key_names(), topic = %plan.topic, group = %plan.task_group, "kafka: scale-out through the repartition topic");
    let (hop_tx, hop_rx) = mpsc::sync_channel::<Batch>(BATCHES_IN_FLIGHT);
    let (input, input_durable) =
        KafkaSource::start(kafka, decode, store.clone(), stop.clone(), hop_tx)?;
    let input = input
        .tag_partitions()
        .with_lag_metric(shared.metrics.source_lag.clone());
    let forward = Repartitioner::new(kafka, plan.clone(), input_durable)?;
    let mut tasks = kafka.clone();
    tasks.topics = vec![plan.topic.clone()];
    tasks.group_id = plan.task_group.clone();
    tasks.dead_letter_topic = None;
    tasks.scale_out = None;
    // The hop forwards canonical events; the clock bound is judged again on arrival.
    let forwarded = decode.with_format(Format::Native);
    let (mut detect, durable) = KafkaSource::start(&tasks, forwarded, store, stop.clone(), tx)?;
    if let Some(topic) = changelog {
        detect = detect.with_tasks(Restorer::new(&tasks, topic, shared.clone()));
    }
    let detect = detect
        .forwarded()
        .with_lag_metric(shared.metrics.source_lag.clone());
    let reader = thread::spawn(move || {
        let input = thread::spawn(move || input.run());
        let forward = thread::spawn(move || {
            let result = forward.run(hop_rx);
            if let Err(e) = &result {
                // Detection must not go on as if the input were read: stop the daemon.
                tracing::error!(error = %e, "kafka: the repartition hop failed; stopping");
                stop.store(true, Ordering::Relaxed);
                shared.stop.store(true, Ordering::Relaxed);
            }
            result
        });
        let detected = detect.run();
        let forwarded = forward
            .join()
            .map_err(|_| io::Error::other("the repartition hop panicked"))?;
        let read = input
            .join()
            .map_err(|_| io::Error::other("the input source panicked"))?;
        detected.and(forwarded).and(read).map_err(io::Error::other)
    });
    Ok((reader, durable))
}

/// Changelog mode: where tasks' state goes, and the topic whose partitions are the tasks.
struct Changelog {
    topic: String,
    tasks_topic: String,
    snapshot_every: u32,
}

/// The delivery side: the embedded outbox, or the alert topic in Kafka scale-out.
enum Deliveries {
    Store(Delivery),
    Topic(TopicDelivery),
}

/// Raises the file-descriptor soft limit to the hard limit: each HTTP connection holds one, and
/// a default soft limit of 1024 is below `[http] max_connections` plus the store's files.
fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "file-descriptor limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the file-descriptor limit"),
    }
}

/// The `source` label of the event metrics.
fn source_kind(source: &Source) -> &'static str {
    match source {
        Source::Stdin => "stdin",
        Source::File { .. } => "file",
        Source::Http(_) => "http",
        Source::Kafka(_) => "kafka",
        Source::Pull(api) => api.provider.kind(),
    }
}
