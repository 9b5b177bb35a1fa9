//! The daemon's HTTP listener (`--metrics-listen`): `/metrics`,
//! `/healthz`, `/readyz` (ready after the first successful pass), the
//! status page (`/` and `/status`, its JSON at `/status.json`:
//! `status_page`, docs/status-page.md) and `POST /hooks/git` (poll the
//! config repository now), rate-limited: a burst of [`HOOK_BURST`], then
//! one per [`HOOK_EVERY`]; beyond that the answer is 429 and nothing is
//! scheduled.
//!
//! Must not: change anything but through the hook's callback, which only
//! schedules a poll.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{debug, error, info};

use super::clock::unix_now;
use super::health::HealthChecker;
use super::page_sources::PageSources;
use super::status_page::{self, Query, Snapshot};
use crate::metrics::Metrics;

/// Hooks accepted at once...
pub const HOOK_BURST: u32 = 5;
/// ...and then one per this interval. Each accepted hook costs a fetch
/// from the remote: a flood of requests must not become a flood of fetches.
pub const HOOK_EVERY: Duration = Duration::from_secs(1);

/// What the handlers read.
pub struct Http {
    pub metrics: Arc<Metrics>,
    /// Set by the first successful pass.
    pub ready: Arc<AtomicBool>,
    /// Schedules a Git poll; `None` without a Git config source.
    pub hook: Option<Box<dyn Fn() + Send + Sync>>,
    /// The health checker, for `GET /health/checks`.
    pub checks: Option<Arc<HealthChecker>>,
    /// The status page's inputs (`None`: the page answers 404).
    pub page: Option<Arc<PageSources>>,
}

/// The handlers' state: what they read, and the hook's rate limit.
struct Shared {
    http: Http,
    hook_limit: Mutex<HookLimit>,
}

/// A token bucket in its "theoretical arrival time" form (GCRA): a request
/// is admitted unless it comes earlier than `tat` allows, and each admitted
/// one moves `tat` on by [`HOOK_EVERY`].
struct HookLimit {
    tat: Instant,
}

impl HookLimit {
    /// Admits a hook at `now`, or says how long until one would be.
    fn admit(&mut self, now: Instant) -> Result<(), Duration> {
        let tolerance = HOOK_EVERY * (HOOK_BURST - 1);
        let earliest = self.tat.checked_sub(tolerance).unwrap_or(now);
        if now < earliest {
            return Err(earliest - now);
        }
        self.tat = self.tat.max(now) + HOOK_EVERY;
        Ok(())
    }
}

/// The paths that answer, for the log: the status page, the health
/// checks and the Git hook only when there is one.
fn served(http: &Http) -> String {
    let mut paths = Vec::new();
    if http.page.is_some() {
        paths.push("the status page (/), /status.json");
    }
    paths.push("/metrics, /healthz, /readyz");
    if http.checks.is_some() {
        paths.push("/health/checks");
    }
    if http.hook.is_some() {
        paths.push("POST /hooks/git");
    }
    paths.join(", ")
}

/// Binds `addr` and serves until `stop`; the address bound (the port of
/// `:0` resolved).
pub async fn serve(
    addr: SocketAddr,
    http: Http,
    stop: oneshot::Receiver<()>,
) -> Result<SocketAddr> {
    let paths = served(&http);
    let shared = Shared {
        http,
        hook_limit: Mutex::new(HookLimit {
            tat: Instant::now(),
        }),
    };
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/hooks/git", post(hook))
        .route("/health/checks", get(checks))
        .route("/", get(status_html))
        .route("/status", get(status_html))
        .route("/status.json", get(status_json))
        .with_state(Arc::new(shared));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--metrics-listen {addr}: cannot listen"))?;
    let local = listener.local_addr()?;
    info!(addr = %local, "serving {paths}");
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

async fn metrics(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.http.metrics.render(unix_now().as_secs_f64()),
    )
}

/// Every checked target's state as JSON (README, "Health checks").
async fn checks(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    let body = s.http.checks.as_ref().map_or_else(
        || serde_json::json!({"format": 1, "targets": []}),
        |c| c.table_json(),
    );
    (
        [(header::CONTENT_TYPE, "application/json")],
        format!("{body:#}\n"),
    )
}

/// The page's headers: no caching, no sniffing, nothing but inline style.
const PAGE_HEADERS: [(header::HeaderName, &str); 3] = [
    (header::CACHE_CONTROL, "no-store"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
    ),
];

/// The status snapshot for the request's query, made off the runtime's
/// threads (it may wait briefly for a running pass).
async fn snapshot(s: &Shared, raw: Option<String>) -> Option<Snapshot> {
    let page = s.http.page.clone()?;
    let query = Query::parse(raw.as_deref());
    tokio::task::spawn_blocking(move || page.snapshot(query))
        .await
        .ok()
}

async fn status_html(State(s): State<Arc<Shared>>, RawQuery(raw): RawQuery) -> Response {
    match snapshot(&s, raw).await {
        Some(snap) => (
            PAGE_HEADERS,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            status_page::html::render(&snap),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no status page\n").into_response(),
    }
}

async fn status_json(State(s): State<Arc<Shared>>, RawQuery(raw): RawQuery) -> Response {
    match snapshot(&s, raw).await {
        Some(snap) => (
            PAGE_HEADERS,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            serde_json::to_string_pretty(&snap).unwrap_or_default() + "\n",
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no status page\n").into_response(),
    }
}

async fn readyz(State(s): State<Arc<Shared>>) -> impl IntoResponse {
    if s.http.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no successful pass yet\n",
        )
    }
}

async fn hook(State(s): State<Arc<Shared>>) -> Response {
    let Some(poll) = &s.http.hook else {
        return (
            StatusCode::NOT_FOUND,
            "no git config source to poll (--config-repo)\n",
        )
            .into_response();
    };
    let admitted = match s.hook_limit.lock() {
        Ok(mut limit) => limit.admit(Instant::now()),
        Err(poisoned) => poisoned.into_inner().admit(Instant::now()),
    };
    match admitted {
        Ok(()) => {
            poll();
            (StatusCode::ACCEPTED, "git poll scheduled\n").into_response()
        }
        Err(wait) => {
            let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
            // Not logged above debug: a flood must not become one of logs.
            debug!("POST /hooks/git: rate limited, answered 429");
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, secs.to_string())],
                format!(
                    "too many hook requests: {HOOK_BURST} at once, then one per {}s; \
                     try again in {secs}s\n",
                    HOOK_EVERY.as_secs()
                ),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn the_log_names_only_the_paths_that_answer() {
        let mut http = Http {
            metrics: Arc::new(Metrics::new()),
            ready: Arc::new(AtomicBool::new(false)),
            hook: None,
            checks: None,
            page: None,
        };
        assert_eq!(served(&http), "/metrics, /healthz, /readyz");
        http.hook = Some(Box::new(|| {}));
        assert_eq!(
            served(&http),
            "/metrics, /healthz, /readyz, POST /hooks/git"
        );
    }

    /// One plain HTTP/1.0 request; (status, whole response).
    async fn request(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("{method} {path} HTTP/1.0\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).await.unwrap();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (status, text)
    }

    #[tokio::test]
    async fn a_flood_of_git_hooks_is_answered_429_beyond_the_burst() {
        let polls = Arc::new(AtomicUsize::new(0));
        let counted = polls.clone();
        let http = Http {
            metrics: Arc::new(Metrics::new()),
            ready: Arc::new(AtomicBool::new(false)),
            hook: Some(Box::new(move || {
                counted.fetch_add(1, Ordering::Relaxed);
            })),
            checks: None,
            page: None,
        };
        let (stop, stopped) = oneshot::channel();
        let addr = serve("127.0.0.1:0".parse().unwrap(), http, stopped)
            .await
            .unwrap();
        let start = Instant::now();
        let mut answers = Vec::new();
        for _ in 0..HOOK_BURST + 5 {
            answers.push(request(addr, "POST", "/hooks/git").await);
        }
        let elapsed = start.elapsed();
        let accepted = answers.iter().filter(|(s, _)| *s == 202).count();
        let limited: Vec<&String> = answers
            .iter()
            .filter(|(s, _)| *s == 429)
            .map(|(_, t)| t)
            .collect();
        assert_eq!(accepted + limited.len(), answers.len(), "{answers:?}");
        // The burst is always admitted; beyond it, one per HOOK_EVERY.
        assert!(
            answers[..HOOK_BURST as usize]
                .iter()
                .all(|(s, _)| *s == 202)
        );
        let allowed =
            HOOK_BURST as usize + (elapsed.as_secs_f64() / HOOK_EVERY.as_secs_f64()) as usize;
        assert!(accepted <= allowed, "{accepted} accepted in {elapsed:?}");
        assert!(!limited.is_empty(), "no 429 in {elapsed:?}: {answers:?}");
        assert!(
            limited[0].to_ascii_lowercase().contains("retry-after: "),
            "{}",
            limited[0]
        );
        // Only admitted hooks schedule a poll; the rest of the listener
        // still answers.
        assert_eq!(polls.load(Ordering::Relaxed), accepted);
        assert_eq!(request(addr, "GET", "/healthz").await.0, 200);
        let _ = stop.send(());
    }
}
