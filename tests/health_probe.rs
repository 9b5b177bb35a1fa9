//! Health probes against real listeners on loopback: TCP, HTTP (axum),
//! HTTPS (tokio-rustls with a self-signed certificate from
//! tests/fixtures/health/) and DNS over UDP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clusterf::daemon::probe::probe;
use clusterf::health::{CheckSpec, Expect, HttpProbe, Probe, Target};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

fn target(addr: SocketAddr, probe: Probe) -> Target {
    let mut check = CheckSpec::new(probe);
    check.timeout = Duration::from_millis(500);
    Target { addr, check }
}

fn http(path: &str, host: Option<&str>) -> HttpProbe {
    HttpProbe {
        path: path.to_string(),
        host: host.map(str::to_string),
        expect: Expect::default(),
    }
}

/// An HTTP server: `/ok` answers 200, `/down` 503, `/host` 200 only for
/// the Host `web.example`.
async fn http_app() -> axum::Router {
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::get;
    axum::Router::new()
        .route("/ok", get(|| async { "fine" }))
        .route("/down", get(|| async { StatusCode::SERVICE_UNAVAILABLE }))
        .route(
            "/host",
            get(|h: HeaderMap| async move {
                if h.get("host").is_some_and(|v| v == "web.example") {
                    StatusCode::OK
                } else {
                    StatusCode::NOT_FOUND
                }
            }),
        )
}

async fn serve_http() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = http_app().await;
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A port nobody listens on (bound, then closed).
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test]
async fn tcp_passes_on_a_listener_and_fails_on_a_closed_port() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = probe(&target(listener.local_addr().unwrap(), Probe::Tcp)).await;
    assert!(up.ok, "{up:?}");
    let down = probe(&target(closed_port().await, Probe::Tcp)).await;
    assert!(!down.ok);
    assert!(down.detail.starts_with("connect: "), "{down:?}");
}

#[tokio::test]
async fn http_judges_the_status_and_sends_the_host_asked_for() {
    let addr = serve_http().await;
    let ok = probe(&target(addr, Probe::Http(http("/ok", None)))).await;
    assert_eq!((ok.ok, ok.detail.as_str()), (true, "http 200"));
    let down = probe(&target(addr, Probe::Http(http("/down", None)))).await;
    assert_eq!((down.ok, down.detail.as_str()), (false, "http 503"));
    let wrong = probe(&target(addr, Probe::Http(http("/host", None)))).await;
    assert_eq!(wrong.detail, "http 404");
    let host = probe(&target(
        addr,
        Probe::Http(http("/host", Some("web.example"))),
    ))
    .await;
    assert!(host.ok, "{host:?}");
    let mut expect_503 = http("/down", None);
    expect_503.expect = Expect::parse("503").unwrap();
    assert!(probe(&target(addr, Probe::Http(expect_503))).await.ok);
}

#[tokio::test]
async fn a_listener_that_never_answers_fails_by_the_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let started = std::time::Instant::now();
    let out = probe(&target(addr, Probe::Http(http("/ok", None)))).await;
    assert_eq!(
        (out.ok, out.detail.as_str()),
        (false, "timeout after 500ms")
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn https_reaches_a_self_signed_server_and_judges_its_status() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/health/");
    let certs = CertificateDer::pem_file_iter(format!("{dir}cert.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(format!("{dir}key.pem")).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(|req: hyper::Request<_>| async move {
                    let status = if req.uri().path() == "/ok" { 200 } else { 503 };
                    let body = http_body_util::Empty::<bytes::Bytes>::new();
                    hyper::Response::builder().status(status).body(body)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    let ok = probe(&target(addr, Probe::Https(http("/ok", None)))).await;
    assert_eq!((ok.ok, ok.detail.as_str()), (true, "https 200"), "{ok:?}");
    let down = probe(&target(addr, Probe::Https(http("/down", None)))).await;
    assert_eq!(down.detail, "https 503");
    // Plain HTTP against the TLS port is no answer.
    assert!(
        !probe(&target(addr, Probe::Http(http("/ok", None))))
            .await
            .ok
    );
}

/// A DNS server answering with the response code given.
async fn serve_dns(rcode: u8) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let mut answer = buf[..n].to_vec();
            answer[2] |= 0x80;
            answer[3] = 0x80 | rcode;
            let _ = socket.send_to(&answer, from).await;
        }
    });
    addr
}

#[tokio::test]
async fn dns_passes_on_an_answer_and_fails_on_refused_or_silence() {
    let dns = |addr| {
        target(
            addr,
            Probe::Dns {
                query: "health.example".into(),
            },
        )
    };
    let ok = probe(&dns(serve_dns(3).await)).await;
    assert_eq!((ok.ok, ok.detail.as_str()), (true, "dns NXDOMAIN"));
    let refused = probe(&dns(serve_dns(5).await)).await;
    assert_eq!(refused.detail, "dns REFUSED");
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let out = probe(&dns(silent.local_addr().unwrap())).await;
    assert!(!out.ok, "{out:?}");
}

#[tokio::test]
async fn a_server_that_closes_at_once_fails_http() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 64];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(b"garbage\r\n\r\n").await;
        }
    });
    let out = probe(&target(addr, Probe::Http(http("/ok", None)))).await;
    assert!(!out.ok && out.detail.starts_with("http: "), "{out:?}");
}

/// Polls `f` every 20 ms for up to 5 s.
async fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_checker_marks_a_stopped_listener_down_and_a_restarted_one_up() {
    use clusterf::daemon::health::HealthChecker;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let steady = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut t = target(addr, Probe::Tcp);
    (t.check.interval, t.check.timeout) = (Duration::from_millis(300), Duration::from_millis(250));
    (t.check.rise, t.check.fall) = (2, 2);
    let mut s = t.clone();
    s.addr = steady.local_addr().unwrap();
    let changes = Arc::new(AtomicUsize::new(0));
    let counted = changes.clone();
    let checker = HealthChecker::start(move || {
        counted.fetch_add(1, Ordering::SeqCst);
    });
    checker.set_targets([t.clone(), s.clone()].into());
    eventually("both checked", || {
        let table = checker.table();
        table.get(&t).is_some() && table.get(&s).is_some()
    })
    .await;
    assert!(!checker.table().is_down(&t));
    drop(listener);
    eventually("down", || checker.table().is_down(&t)).await;
    assert_eq!(changes.load(Ordering::SeqCst), 1);
    let _back = TcpListener::bind(addr).await.unwrap();
    eventually("up again", || !checker.table().is_down(&t)).await;
    assert_eq!(changes.load(Ordering::SeqCst), 2);
    assert!(
        !checker.table().is_down(&s),
        "the steady listener never went down"
    );
    let stats = checker.stats();
    assert!(stats.passed > 0 && stats.failed >= 2, "{stats:?}");
    // Forgotten targets leave the table.
    checker.set_targets([s.clone()].into());
    assert!(checker.table().get(&t).is_none());
}
