//! The daemon's HTTP listener (`--metrics-listen`): `/metrics`,
//! `/healthz`, `/readyz` (ready after the first successful pass), the
//! status page (`/` and `/status`, its JSON at `/status.json`:
//! `status_page`, docs/status-page.md) and `POST /hooks/git` (poll the
//! config repository now), rate-limited: a burst of [`HOOK_BURST`], then
//! one per [`HOOK_EVERY`]; beyond that the answer is 429 and nothing is
//! scheduled.
//!
//! `/metrics` is streamed: written on a blocking thread in
//! [`SCRAPE_CHUNK`](crate::metrics::SCRAPE_CHUNK)-byte pieces through a
//! channel of [`SCRAPE_AHEAD`], so a scrape holds a few chunks whatever the
//! size of the exposition, and a slow client slows the writing instead of
//! making us buffer the rest.
//! A client gone ends the writing; one that takes no chunk for
//! [`SCRAPE_STALL`] has its scrape abandoned (the body ends in an error,
//! never cut short as if complete).
//!
//! Must not: change anything but through the hook's callback, which only
//! schedules a poll.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll, ready};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::{mpsc, oneshot};
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

/// Chunks of a scrape written ahead of the client, at most.
const SCRAPE_AHEAD: usize = 2;
/// A scrape whose client takes no chunk for this long is abandoned.
pub const SCRAPE_STALL: Duration = Duration::from_secs(30);

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
    let now = unix_now().as_secs_f64();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        exposition(s.http.metrics.clone(), now, SCRAPE_STALL),
    )
}

/// A piece of a streamed exposition.
enum Piece {
    Chunk(Bytes),
    /// Written whole: the body ends here.
    Done,
}

/// The exposition as a response body, written on a blocking thread as the
/// client takes it (module doc). Must be called within the runtime.
fn exposition(metrics: Arc<Metrics>, now_unix_secs: f64, stall: Duration) -> Body {
    let (tx, rx) = mpsc::channel(SCRAPE_AHEAD);
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        // Waits for room in the channel, `stall` at most; fails once the
        // body is dropped (the client went away).
        let send = |piece| {
            runtime
                .block_on(tx.send_timeout(piece, stall))
                .map_err(|_| std::fmt::Error)
        };
        let written = metrics
            .write_chunks(now_unix_secs, |chunk| {
                send(Piece::Chunk(Bytes::from(chunk)))
            })
            .and_then(|()| send(Piece::Done));
        if written.is_err() {
            debug!("GET /metrics: the client went away or stalled, scrape abandoned");
        }
    });
    Body::from_stream(Pieces { rx, done: false })
}

/// The body's side of [`exposition`]'s channel.
struct Pieces {
    rx: mpsc::Receiver<Piece>,
    done: bool,
}

impl futures_util::Stream for Pieces {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match ready!(self.rx.poll_recv(cx)) {
            Some(Piece::Chunk(chunk)) => Poll::Ready(Some(Ok(chunk))),
            Some(Piece::Done) => {
                self.done = true;
                Poll::Ready(None)
            }
            // The writer gave up (stalled) or panicked: an error, so the
            // client sees the response cut, not a shorter exposition.
            None => {
                self.done = true;
                Poll::Ready(Some(Err(std::io::Error::other(
                    "the exposition was not written whole",
                ))))
            }
        }
    }
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

    /// Metrics with the traffic of `services` services, and the table's
    /// `Arc` (its count says who holds the table: the metrics, the test,
    /// a scrape in flight).
    fn traffic_metrics(services: u32) -> (Arc<Metrics>, Arc<crate::model::traffic::TrafficTable>) {
        use crate::model::traffic::{Traffic, TrafficTable};
        use crate::model::{Protocol, ServiceKey};
        let mut table = TrafficTable::default();
        for i in 0..services {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            let t = Traffic {
                bytes_in: u64::from(i) * 1000,
                ..Traffic::default()
            };
            table
                .services
                .insert(ServiceKey::addr(Protocol::Tcp, ip.into(), 80), t);
        }
        let m = Metrics::new();
        m.pass_finished(true, Duration::from_millis(2));
        m.traffic_read(table, 1.0, Duration::ZERO);
        let table = m.traffic_last().unwrap().0;
        (Arc::new(m), table)
    }

    async fn serve_metrics(metrics: Arc<Metrics>) -> (SocketAddr, oneshot::Sender<()>) {
        let http = Http {
            metrics,
            ready: Arc::new(AtomicBool::new(true)),
            hook: None,
            checks: None,
            page: None,
        };
        serve_on_loopback(http).await
    }

    /// Serves `http` on a free loopback port: its address, and the sender
    /// that stops it.
    async fn serve_on_loopback(http: Http) -> (SocketAddr, oneshot::Sender<()>) {
        let (stop, stopped) = oneshot::channel();
        let addr = serve("127.0.0.1:0".parse().unwrap(), http, stopped)
            .await
            .unwrap();
        (addr, stop)
    }

    /// An HTTP/1.1 `GET /metrics` sent on a new connection, with a small
    /// receive buffer: the client reads nothing yet.
    async fn scrape_request(addr: SocketAddr) -> tokio::net::TcpStream {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut s = socket.connect(addr).await.unwrap();
        let req = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        s.write_all(req.as_bytes()).await.unwrap();
        s
    }

    /// The head and the chunked body of a whole HTTP/1.1 response.
    fn dechunk(raw: &[u8]) -> (String, Vec<u8>, usize) {
        let at = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&raw[..at]).to_ascii_lowercase();
        let mut rest = &raw[at + 4..];
        let (mut body, mut chunks) = (Vec::new(), 0);
        loop {
            let eol = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size = std::str::from_utf8(&rest[..eol]).unwrap();
            let size = usize::from_str_radix(size, 16).unwrap();
            rest = &rest[eol + 2..];
            if size == 0 {
                assert_eq!(rest, b"\r\n", "after the last chunk");
                return (head, body, chunks);
            }
            body.extend_from_slice(&rest[..size]);
            assert_eq!(&rest[size..size + 2], b"\r\n");
            rest = &rest[size + 2..];
            chunks += 1;
        }
    }

    /// Waits (10 s at most) for the table's `Arc` to be held `n` times.
    async fn held(table: &Arc<crate::model::traffic::TrafficTable>, n: usize) -> bool {
        for _ in 0..1000 {
            if Arc::strong_count(table) == n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_scrape_is_streamed_in_chunks_and_is_the_rendered_text() {
        let (m, _) = traffic_metrics(3_000);
        let (addr, stop) = serve_metrics(m.clone()).await;
        let mut s = scrape_request(addr).await;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.unwrap();
        let (head, body, chunks) = dechunk(&raw);
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(head.contains("transfer-encoding: chunked"), "{head}");
        assert!(
            head.contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
            "{head}"
        );
        assert!(chunks > 50, "{chunks} chunks");
        let text = String::from_utf8(body).unwrap();
        assert_eq!(text.len(), m.render(0.0).len());
        assert!(text == m.render(0.0), "the body is not the rendered text");
        let _ = stop.send(());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_scraper_holds_up_no_update_of_the_metrics() {
        // ~9 MB of text: more than the sockets and hyper can hold, so the
        // scrape waits on the client.
        let (m, table) = traffic_metrics(10_000);
        let expected = m.render(0.0);
        let (addr, stop) = serve_metrics(m.clone()).await;
        let mut s = scrape_request(addr).await;
        assert!(held(&table, 3).await, "the scrape never started");
        tokio::time::sleep(Duration::from_millis(500)).await;
        // What a pass, the health checker and the traffic reader do.
        let updater = m.clone();
        let updates = tokio::task::spawn_blocking(move || {
            for i in 0..200u8 {
                updater.pass_finished(true, Duration::from_millis(1));
                updater.success(f64::from(i), &crate::metrics::Info::default());
                updater.source_ok(crate::reconcile::Source::Etcd, f64::from(i));
                let dest = SocketAddr::from(([10, 9, 0, i], 80));
                updater.dest_health(dest, "tcp", Some(true));
                updater.traffic_read(Default::default(), f64::from(i), Duration::ZERO);
            }
        });
        tokio::time::timeout(Duration::from_secs(20), updates)
            .await
            .expect("the updates waited on the stalled scrape")
            .unwrap();
        // The metrics let go of the old table: the scrape still holds it.
        assert_eq!(Arc::strong_count(&table), 2, "the scrape is not in flight");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.unwrap();
        let text = String::from_utf8(dechunk(&raw).1).unwrap();
        assert!(
            text == expected,
            "the body is not the text at the scrape's start"
        );
        assert!(held(&table, 1).await, "the scrape kept the table");
        let _ = stop.send(());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_scraper_gone_ends_the_scrape() {
        let (m, table) = traffic_metrics(10_000);
        let (addr, stop) = serve_metrics(m.clone()).await;
        let mut s = scrape_request(addr).await;
        let mut some = [0; 1024];
        s.read_exact(&mut some).await.unwrap();
        assert_eq!(Arc::strong_count(&table), 3, "the scrape is not in flight");
        drop(s);
        // Well before SCRAPE_STALL: the scrape ends because the client left.
        let start = Instant::now();
        assert!(held(&table, 2).await, "the scrape outlived its client");
        assert!(start.elapsed() < SCRAPE_STALL / 2);
        let _ = stop.send(());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_scrape_is_abandoned_and_its_body_ends_in_an_error() {
        use http_body_util::BodyExt;
        let (m, table) = traffic_metrics(3_000);
        let mut body = exposition(m.clone(), 0.0, Duration::from_millis(300));
        let first = body.frame().await.unwrap().unwrap();
        assert!(first.into_data().unwrap().starts_with(b"# HELP clusterf_"));
        // Nothing more is taken: the writer gives up and lets go.
        assert!(held(&table, 2).await, "the stalled scrape never ended");
        let rest = body.collect().await;
        assert!(rest.is_err(), "a cut exposition ended as if whole");
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
        let (addr, stop) = serve_on_loopback(http).await;
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
