//! The daemon's HTTP listener (`--metrics-listen`): `/metrics`,
//! `/healthz`, `/readyz` (ready after the first successful pass) and
//! `POST /hooks/git` (poll the config repository now).
//!
//! Must not: change anything but through the hook's callback, which only
//! schedules a poll.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio::sync::oneshot;
use tracing::{error, info};

use super::clock::unix_now;
use crate::metrics::Metrics;

/// What the handlers read.
pub struct Http {
    pub metrics: Arc<Metrics>,
    /// Set by the first successful pass.
    pub ready: Arc<AtomicBool>,
    /// Schedules a Git poll; `None` without a Git config source.
    pub hook: Option<Box<dyn Fn() + Send + Sync>>,
}

/// Binds `addr` and serves until `stop`; the address bound (the port of
/// `:0` resolved).
pub async fn serve(
    addr: SocketAddr,
    http: Http,
    stop: oneshot::Receiver<()>,
) -> Result<SocketAddr> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/hooks/git", post(hook))
        .with_state(Arc::new(http));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--metrics-listen {addr}: cannot listen"))?;
    let local = listener.local_addr()?;
    info!(addr = %local, "serving /metrics, /healthz, /readyz, POST /hooks/git");
    tokio::spawn(async move {
        let r = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop.await;
            })
            .await;
        if let Err(e) = r {
            error!("metrics listener: {e}");
        }
    });
    Ok(local)
}

async fn metrics(State(h): State<Arc<Http>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        h.metrics.render(unix_now().as_secs_f64()),
    )
}

async fn readyz(State(h): State<Arc<Http>>) -> impl IntoResponse {
    if h.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no successful pass yet\n",
        )
    }
}

async fn hook(State(h): State<Arc<Http>>) -> impl IntoResponse {
    match &h.hook {
        Some(poll) => {
            poll();
            (StatusCode::ACCEPTED, "git poll scheduled\n")
        }
        None => (
            StatusCode::NOT_FOUND,
            "no git config source to poll (--config-repo)\n",
        ),
    }
}
