//! Health checks in the daemon (`apply --watch`): real HTTP, TCP and DNS
//! listeners on loopback started here, the config directory declaring the
//! checks, and the in-memory kernel table. A listener that fails takes its
//! dest to weight 0 after `fall` checks and back after `rise`; when every
//! dest fails, fail-open keeps the weights; flapping within the thresholds
//! changes nothing. `clusterf check` runs the same checks once.
//! (The real kernel with real traffic: tests/vm/scenarios/health.sh.)

#[path = "support/daemon.rs"]
mod support_daemon;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use clusterf::cli::watch::WatchArgs;
use clusterf::daemon::{Daemon, MemoryKernel, Options};
use clusterf::model::IpvsState;
use support_daemon::{Sources, eventually, started};

fn options(config_dir: &Path, panic_percent: u8) -> Options {
    let watch = WatchArgs {
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        resync: Duration::from_secs(3600),
        health_panic_percent: panic_percent,
        ..WatchArgs::default()
    };
    let mut opts = Sources::options(
        &["--config-path", &config_dir.display().to_string()],
        &watch,
    );
    opts.backoff_initial = Duration::from_millis(100);
    opts
}

/// An HTTP backend on loopback whose `/health` answers 200 while `up`,
/// else 503; with `flap`, it alternates 503 and 200 on every request.
struct Backend {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    flap: Arc<AtomicBool>,
    requests: Arc<AtomicUsize>,
}

async fn backend() -> Backend {
    let up = Arc::new(AtomicBool::new(true));
    let flap = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicUsize::new(0));
    let (u, f, r) = (up.clone(), flap.clone(), requests.clone());
    let app = axum::Router::new().route(
        "/health",
        axum::routing::get(move || {
            let (u, f, r) = (u.clone(), f.clone(), r.clone());
            async move {
                let n = r.fetch_add(1, Ordering::SeqCst);
                let ok = if f.load(Ordering::SeqCst) {
                    n % 2 == 1
                } else {
                    u.load(Ordering::SeqCst)
                };
                if ok {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Backend {
        addr,
        up,
        flap,
        requests,
    }
}

/// A config directory with one service checked over HTTP every 100 ms
/// (rise 2, fall 3) whose backends are `backends`, at weight 10 each.
fn config(backends: &[&Backend]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("services")).unwrap();
    write_service(dir.path(), backends);
    dir
}

/// Writes the service file of [`config`] (by rename, as editors save).
fn write_service(dir: &Path, backends: &[&Backend]) {
    let mut yaml = String::from(
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\n\
         healthcheck: {type: http, path: /health, interval: 100ms, timeout: 90ms, rise: 2, fall: 3}\n\
         backends:\n",
    );
    for (i, b) in backends.iter().enumerate() {
        yaml.push_str(&format!(
            "  b{i}: {{ipv4: 127.0.0.1, tcp: {}}}\n",
            b.addr.port()
        ));
    }
    let tmp = dir.join("services/.web.yaml.tmp");
    std::fs::write(&tmp, yaml).unwrap();
    std::fs::rename(&tmp, dir.join("services/web.yaml")).unwrap();
}

fn weight(state: &IpvsState, dest: SocketAddr) -> Option<u32> {
    state
        .services
        .values()
        .find_map(|s| s.dests.get(&dest))
        .map(|d| d.attrs.weight)
}

/// The value of one series in the daemon's Prometheus exposition.
fn series(daemon: &Daemon, name: &str) -> f64 {
    let text = daemon.metrics().render(0.0);
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no series {name} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_dest_goes_to_weight_0_after_fall_checks_and_back_after_rise() {
    let (a, b) = (backend().await, backend().await);
    let dir = config(&[&a, &b]);
    let kernel = MemoryKernel::default();
    let daemon = started(options(dir.path(), 0), &kernel).await;
    eventually(Duration::from_secs(5), "both dests checked", || {
        a.requests.load(Ordering::SeqCst) >= 2 && b.requests.load(Ordering::SeqCst) >= 2
    })
    .await;
    assert_eq!(weight(&kernel.table(), b.addr), Some(10));

    b.up.store(false, Ordering::SeqCst);
    let failing_from = b.requests.load(Ordering::SeqCst);
    eventually(
        Duration::from_secs(5),
        "the failing dest at weight 0",
        || weight(&kernel.table(), b.addr) == Some(0),
    )
    .await;
    // Not before `fall` failed checks; the other dest untouched.
    assert!(b.requests.load(Ordering::SeqCst) - failing_from >= 3);
    assert_eq!(weight(&kernel.table(), a.addr), Some(10));
    assert_eq!(series(&daemon, "clusterf_health_drained_dests"), 1.0);
    let gauge = format!(
        "clusterf_dest_healthy{{dest=\"{}\",check=\"http\"}}",
        b.addr
    );
    assert_eq!(series(&daemon, &gauge), 0.0);

    b.up.store(true, Ordering::SeqCst);
    let passing_from = b.requests.load(Ordering::SeqCst);
    eventually(Duration::from_secs(5), "the weight back", || {
        weight(&kernel.table(), b.addr) == Some(10)
    })
    .await;
    assert!(b.requests.load(Ordering::SeqCst) - passing_from >= 2);
    assert_eq!(series(&daemon, "clusterf_health_drained_dests"), 0.0);
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dest_that_leaves_the_config_while_unhealthy_is_removed() {
    let (a, b) = (backend().await, backend().await);
    let dir = config(&[&a, &b]);
    let kernel = MemoryKernel::default();
    let daemon = started(options(dir.path(), 0), &kernel).await;
    b.up.store(false, Ordering::SeqCst);
    eventually(
        Duration::from_secs(5),
        "the failing dest at weight 0",
        || weight(&kernel.table(), b.addr) == Some(0),
    )
    .await;
    write_service(dir.path(), &[&a]);
    eventually(
        Duration::from_secs(5),
        "the dest gone from the kernel",
        || weight(&kernel.table(), b.addr).is_none(),
    )
    .await;
    assert_eq!(weight(&kernel.table(), a.addr), Some(10));
    assert_eq!(series(&daemon, "clusterf_health_drained_dests"), 0.0);
    // No longer checked: its series is gone.
    let text = daemon.metrics().render(0.0);
    assert!(!text.contains(&b.addr.to_string()), "{text}");
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_dest_fails_none_is_drained_and_fail_open_is_counted() {
    let (a, b) = (backend().await, backend().await);
    let dir = config(&[&a, &b]);
    let kernel = MemoryKernel::default();
    let daemon = started(options(dir.path(), 0), &kernel).await;
    a.up.store(false, Ordering::SeqCst);
    b.up.store(false, Ordering::SeqCst);
    eventually(Duration::from_secs(5), "fail-open for both dests", || {
        series(&daemon, "clusterf_health_fail_open_dests") == 2.0
    })
    .await;
    let table = kernel.table();
    assert_eq!(weight(&table, a.addr), Some(10));
    assert_eq!(weight(&table, b.addr), Some(10));
    assert_eq!(series(&daemon, "clusterf_health_drained_dests"), 0.0);
    daemon.stop().await.unwrap();
}

/// With a fallback dest (never checked: no listener behind it), every
/// dest failing is drained and the fallback serves, instead of fail-open;
/// one back, the fallback returns to weight 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_fallback_every_failing_dest_is_drained_and_the_fallback_serves() {
    let (a, b) = (backend().await, backend().await);
    let dir = config(&[&a, &b]);
    let path = dir.path().join("services/web.yaml");
    let mut yaml = std::fs::read_to_string(&path).unwrap();
    yaml.push_str("fallback: {ipv4: 127.0.0.9, tcp: 9, weight: 2}\n");
    std::fs::write(&path, yaml).unwrap();
    let fallback: SocketAddr = "127.0.0.9:9".parse().unwrap();
    let kernel = MemoryKernel::default();
    let daemon = started(options(dir.path(), 50), &kernel).await;
    eventually(Duration::from_secs(5), "both dests checked", || {
        a.requests.load(Ordering::SeqCst) >= 2 && b.requests.load(Ordering::SeqCst) >= 2
    })
    .await;
    assert_eq!(weight(&kernel.table(), fallback), Some(0));
    a.up.store(false, Ordering::SeqCst);
    b.up.store(false, Ordering::SeqCst);
    eventually(Duration::from_secs(5), "the fallback serving", || {
        let t = kernel.table();
        weight(&t, fallback) == Some(2)
            && weight(&t, a.addr) == Some(0)
            && weight(&t, b.addr) == Some(0)
    })
    .await;
    assert_eq!(series(&daemon, "clusterf_health_fail_open_dests"), 0.0);
    assert_eq!(series(&daemon, "clusterf_health_drained_dests"), 2.0);
    b.up.store(true, Ordering::SeqCst);
    eventually(Duration::from_secs(5), "b back, the fallback at 0", || {
        let t = kernel.table();
        weight(&t, b.addr) == Some(10) && weight(&t, fallback) == Some(0)
    })
    .await;
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn below_the_panic_threshold_the_service_fails_open() {
    let (a, b, c) = (backend().await, backend().await, backend().await);
    let dir = config(&[&a, &b, &c]);
    let kernel = MemoryKernel::default();
    // Two of three down leaves 33% up, under 50%: nothing drained.
    let daemon = started(options(dir.path(), 50), &kernel).await;
    a.up.store(false, Ordering::SeqCst);
    b.up.store(false, Ordering::SeqCst);
    eventually(
        Duration::from_secs(5),
        "fail-open under the threshold",
        || series(&daemon, "clusterf_health_fail_open_dests") == 2.0,
    )
    .await;
    assert_eq!(weight(&kernel.table(), a.addr), Some(10));
    // One down leaves 67% up: drained.
    b.up.store(true, Ordering::SeqCst);
    eventually(
        Duration::from_secs(5),
        "the one failing dest drained",
        || weight(&kernel.table(), a.addr) == Some(0),
    )
    .await;
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flapping_within_the_thresholds_changes_nothing() {
    let (a, b) = (backend().await, backend().await);
    let dir = config(&[&a, &b]);
    let kernel = MemoryKernel::default();
    let daemon = started(options(dir.path(), 0), &kernel).await;
    let passes = daemon.status().passes_ok;
    // 503, 200, 503, ...: never 3 failures in a row.
    b.flap.store(true, Ordering::SeqCst);
    let from = b.requests.load(Ordering::SeqCst);
    eventually(Duration::from_secs(10), "ten flapping checks", || {
        b.requests.load(Ordering::SeqCst) - from >= 10
    })
    .await;
    assert_eq!(weight(&kernel.table(), b.addr), Some(10));
    assert_eq!(daemon.status().passes_ok, passes, "no pass for a flap");
    assert!(series(&daemon, "clusterf_health_checks_total{result=\"failed\"}") >= 4.0);
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_and_dns_checks_drain_a_dest_that_stops_answering() {
    // TCP: a listener that is closed refuses the connect.
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_port = tcp.local_addr().unwrap().port();
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // DNS: a responder that answers every query with NOERROR until stopped.
    let dns = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dns_port = dns.local_addr().unwrap().port();
    let dns_other = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dns_other_port = dns_other.local_addr().unwrap().port();
    let dns_up = Arc::new(AtomicBool::new(true));
    for (sock, up) in [
        (dns, dns_up.clone()),
        (dns_other, Arc::new(AtomicBool::new(true))),
    ] {
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            while let Ok((n, from)) = sock.recv_from(&mut buf).await {
                if up.load(Ordering::SeqCst) && n >= 12 {
                    let mut answer = buf[..n].to_vec();
                    answer[2] |= 0x80; // a response, NOERROR
                    let _ = sock.send_to(&answer, from).await;
                }
            }
        });
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("services")).unwrap();
    let other_port = other.local_addr().unwrap().port();
    std::fs::write(
        dir.path().join("services/db.yaml"),
        format!(
            "frontend: {{ipv4: 10.0.0.2, tcp: 5432}}\n\
             healthcheck: {{type: tcp, interval: 100ms, timeout: 90ms, rise: 1, fall: 2}}\n\
             backends:\n  a: {{ipv4: 127.0.0.1, tcp: {tcp_port}}}\n  b: {{ipv4: 127.0.0.1, tcp: {other_port}}}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("services/ns.yaml"),
        format!(
            "frontend: {{ipv4: 10.0.0.53, udp: 53}}\n\
             healthcheck: {{type: dns, query: health.example., interval: 100ms, timeout: 90ms, rise: 1, fall: 2}}\n\
             backends:\n  a: {{ipv4: 127.0.0.1, udp: {dns_port}}}\n  b: {{ipv4: 127.0.0.1, udp: {dns_other_port}}}\n"
        ),
    )
    .unwrap();
    let kernel = MemoryKernel::default();
    let daemon = started(options(dir.path(), 0), &kernel).await;
    let tcp_dest: SocketAddr = ([127, 0, 0, 1], tcp_port).into();
    let dns_dest: SocketAddr = ([127, 0, 0, 1], dns_port).into();
    assert_eq!(weight(&kernel.table(), tcp_dest), Some(10));
    drop(tcp);
    eventually(
        Duration::from_secs(5),
        "the closed TCP dest drained",
        || weight(&kernel.table(), tcp_dest) == Some(0),
    )
    .await;
    dns_up.store(false, Ordering::SeqCst);
    eventually(
        Duration::from_secs(5),
        "the silent DNS dest drained",
        || weight(&kernel.table(), dns_dest) == Some(0),
    )
    .await;
    drop(other);
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_runs_every_check_once_and_exits_2_when_one_fails() {
    let (a, b) = (backend().await, backend().await);
    b.up.store(false, Ordering::SeqCst);
    let dir = config(&[&a, &b]);
    let dir_path = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_clusterf"))
            .args(["check", "--config-path"])
            .arg(&dir_path)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    let line = |addr: SocketAddr| {
        stdout
            .lines()
            .find(|l| l.contains(&addr.to_string()))
            .unwrap_or_else(|| panic!("no line for {addr} in\n{stdout}"))
            .to_string()
    };
    assert!(line(a.addr).contains("passed"), "{stdout}");
    assert!(
        line(b.addr).contains("failed") && line(b.addr).contains("http 503"),
        "{stdout}"
    );
    assert_eq!(a.requests.load(Ordering::SeqCst), 1, "each check runs once");
    b.up.store(true, Ordering::SeqCst);
    let dir_path = dir.path().to_path_buf();
    let ok = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_clusterf"))
            .args(["check", "-o", "json", "--config-path"])
            .arg(&dir_path)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(ok.status.code(), Some(0));
    let rows: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .all(|r| r["result"] == "passed")
    );
}
