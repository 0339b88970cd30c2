//! Connections of the daemon's HTTP servers: a cap on how many are open, a deadline for each
//! request head and for each idle keep-alive wait, and a stop that closes idle connections at
//! once and drops the rest after the shutdown bound. axum's own `serve` has none of these, so
//! connections are accepted here and served with hyper directly.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;

/// How each connection of a server is held to account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// A request head must arrive whole within this, counted from the connection's start or
    /// from its first byte after an idle wait (`[http] header_timeout`).
    pub header_timeout: Duration,
    /// A keep-alive connection with no request for this long is closed (`[http] idle_timeout`).
    pub idle_timeout: Duration,
    /// Connections open at once; one more is closed as soon as it is accepted
    /// (`[http] max_connections`).
    pub max_connections: usize,
    /// On a stop, requests still being answered get this long; then their connections are
    /// dropped (`[daemon] shutdown_timeout`).
    pub shutdown_timeout: Duration,
}

/// Accepts and serves until `stop` turns true, then stops accepting, closes idle connections,
/// and waits for the others at most `limits.shutdown_timeout` before dropping them.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    let mut refused_logged: Option<Instant> = None;
    let told = stop.clone();
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning on the error.
                        tracing::warn!(error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    // Over the cap: closed at once, so it holds neither a descriptor nor a
                    // place in the kernel's backlog.
                    if refused_logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
                        tracing::warn!(
                            max_connections = limits.max_connections,
                            "too many open connections; closing new ones ([http] max_connections)"
                        );
                        refused_logged = Some(Instant::now());
                    }
                    drop(stream);
                    continue;
                };
                let router = router.clone();
                let stop = told.clone();
                connections.spawn(async move {
                    serve_connection(stream, router, limits, stop).await;
                    drop(slot);
                });
            }
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(limits.shutdown_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "connections still open after [daemon] shutdown_timeout; dropping them"
        );
        connections.shutdown().await;
    }
}

/// Resolves once a stop is asked for (or the server is dropped).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// What the watchdog of one connection reads: requests being answered, when the connection
/// went idle, and when the first byte of the next head arrived (milliseconds since `epoch`,
/// 0 for none).
struct Activity {
    epoch: Instant,
    busy: AtomicUsize,
    idle_since: AtomicU64,
    head_started: AtomicU64,
    /// No request has completed yet: the first head is due within `header_timeout` of the
    /// connection's start, not `idle_timeout`.
    answered: AtomicBool,
    /// Woken when a head starts, so a long idle wait gives way to the shorter head deadline.
    head: Notify,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            epoch: Instant::now(),
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(0),
            answered: AtomicBool::new(false),
            head: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        // +1 so that 0 stays "none".
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// When the connection must be closed if nothing changes, or `None` while a request is
    /// being answered (the handlers bound their own waits).
    fn deadline(&self, limits: &Limits) -> Option<u64> {
        if self.busy.load(Ordering::Acquire) > 0 {
            return None;
        }
        let ms = |d: Duration| d.as_millis() as u64;
        let head = self.head_started.load(Ordering::Acquire);
        if head > 0 {
            return Some(head + ms(limits.header_timeout));
        }
        let idle = self.idle_since.load(Ordering::Acquire);
        if !self.answered.load(Ordering::Acquire) {
            return Some(idle + ms(limits.header_timeout));
        }
        Some(idle + ms(limits.idle_timeout))
    }
}

/// Marks a request as being answered from the moment its head is parsed until its response
/// is ready.
struct Busy(Arc<Activity>);

impl Busy {
    fn start(activity: &Arc<Activity>) -> Busy {
        activity.busy.fetch_add(1, Ordering::AcqRel);
        activity.head_started.store(0, Ordering::Release);
        Busy(activity.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let now = self.0.now();
        self.0.idle_since.store(now, Ordering::Release);
        self.0.answered.store(true, Ordering::Release);
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn serve_connection(
    stream: TcpStream,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        stream,
        activity: activity.clone(),
    });
    let tower = TowerToHyperService::new(router);
    let tracked = activity.clone();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let busy = Busy::start(&tracked);
        let answer = hyper::service::Service::call(&tower, request);
        async move {
            let response = answer.await;
            drop(busy);
            response
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(connection);
    let mut stopping = false;
    loop {
        let deadline = if stopping {
            // Stopping: an idle connection is closed now; a busy one finishes its request
            // (keep-alive is off) within the server's shutdown bound.
            activity.deadline(&limits).map(|_| 0)
        } else {
            activity.deadline(&limits)
        };
        let wait = match deadline {
            Some(at) => Duration::from_millis(at.saturating_sub(activity.now())),
            // Busy: look again once the idle timeout has passed.
            None => limits.idle_timeout,
        };
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = activity.head.notified() => {}
            _ = stopped(&mut stop), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = tokio::time::sleep(wait) => {
                let expired = match activity.deadline(&limits) {
                    Some(_) if stopping => true,
                    Some(at) => at <= activity.now(),
                    None => false,
                };
                if expired {
                    // Dropping the connection closes the socket.
                    return;
                }
            }
        }
    }
}

/// The socket, noting when the first byte of a request head arrives on an idle connection.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            let a = &self.activity;
            if a.busy.load(Ordering::Acquire) == 0 && a.head_started.load(Ordering::Acquire) == 0 {
                a.head_started.store(a.now(), Ordering::Release);
                a.head.notify_one();
            }
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
