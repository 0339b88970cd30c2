//! The daemon's HTTP servers: on `[http] listen` health and readiness always, plus whatever the
//! other parts mount (ingest, metrics, runbooks); on `[http] metrics_listen`, when set,
//! `/metrics` alone. Routes are axum's; connections are held to account by `conn`.

pub mod conn;
pub mod runbooks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use tokio::sync::watch;

use crate::shared::Shared;

pub use conn::Limits;

/// Routes every daemon serves: `/healthz` (the store works, detection moves) and `/readyz`
/// (state loaded, rules compiled, source connected).
pub fn health_routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(shared)
}

/// `/metrics` (Prometheus): on the main listener, or alone on `[http] metrics_listen` so that
/// whoever can reach ingest cannot read it.
pub fn metrics_routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(shared)
}

/// Prometheus text exposition.
async fn metrics(State(shared): State<Arc<Shared>>) -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        shared.metrics.render(),
    )
}

/// 503 once the store has failed or detection has stalled (`Shared::health`).
async fn healthz(State(shared): State<Arc<Shared>>) -> (StatusCode, String) {
    match shared.health() {
        Ok(()) => (StatusCode::OK, "ok\n".into()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

async fn readyz(State(shared): State<Arc<Shared>>) -> (StatusCode, &'static str) {
    if shared.is_ready() {
        (StatusCode::OK, "ready\n")
    } else if shared.ready.load(Ordering::Relaxed) {
        (StatusCode::SERVICE_UNAVAILABLE, "restoring\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n")
    }
}

/// A running server; dropping `stop` (or sending on it) shuts it down: no more connections,
/// idle ones closed, busy ones dropped after `Limits::shutdown_timeout`.
pub struct Server {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Binds `addr` and serves `router` on the current runtime.
    pub async fn start(
        addr: SocketAddr,
        router: Router,
        limits: Limits,
    ) -> std::io::Result<Server> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(conn::serve(listener, router, limits, stopped));
        tracing::info!(%addr, "HTTP server listening");
        Ok(Server { addr, stop, task })
    }

    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
