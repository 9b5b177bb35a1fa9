//! The status page (docs/status-page.md) in a real browser: a daemon on the
//! in-memory kernel with a real etcd on loopback and a real config
//! directory, an overlay backend whose name is an HTML-injection attempt,
//! a dest draining, then a config that fails validation. Headless Chromium
//! (Debian's `chromium`) loads the page; the test checks the DOM it built
//! and saves a screenshot under target/. A dest drained by a health check
//! shows why (JSON and HTML, without the browser).
//!
//! Without etcd or Chromium these tests fail when `CI` is set and print a
//! loud SKIP otherwise.

#[path = "support/etcd.rs"]
mod support;
#[path = "support/daemon.rs"]
mod support_daemon;
use support_daemon::Sources;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use clap::Parser;
use clusterf::cli::watch::{WatchArgs, resolve};
use clusterf::daemon::{Daemon, MemoryKernel, Options};
use clusterf::model::traffic::Traffic;
use clusterf::model::{DestStats, ServiceKey};
use clusterf::source::etcd::watch::Tuning;
use support::Etcd;
use support_daemon::eventually;

/// A backend name no config accepts: the overlay's warning quotes it, and
/// the page must show it as text.
const INJECTION: &str = "<img src=x onerror=alert(1)>";
const WEB: &str = "tcp://10.107.107.107:80";

fn options(config_dir: &Path, etcd: &Etcd, state: &Path) -> Options {
    let argv = [
        "t".to_string(),
        "--config-path".to_string(),
        config_dir.display().to_string(),
        "--etcd".to_string(),
        etcd.url(),
    ];
    let s = Sources::try_parse_from(argv).expect("source args");
    let watch = WatchArgs {
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        resync: Duration::from_secs(3600),
        drain_timeout: Duration::from_secs(600),
        state_file: Some(state.to_path_buf()),
        frontend_id: Some("lb1".into()),
        traffic_interval: Duration::from_millis(200),
        metrics_per_dest: true,
        ..WatchArgs::default()
    };
    let mut opts = resolve(&s.config, &s.overlay, Default::default(), &watch).expect("options");
    opts.etcd_tuning = Tuning {
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        progress_interval: Duration::from_secs(1),
        stall_timeout: Duration::from_secs(3),
        before_watch: None,
    };
    opts.backoff_initial = Duration::from_millis(100);
    opts
}

/// Two services: web (three backends from etcd) and api (one).
fn config_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, frontend) in [
        ("web", r#"{"ipv4": "10.107.107.107", "tcp": 80}"#),
        ("api", r#"{"ipv4": "10.107.107.108", "tcp": 443}"#),
    ] {
        let svc = dir.path().join("services").join(name);
        std::fs::create_dir_all(&svc).unwrap();
        std::fs::write(svc.join("frontend"), frontend).unwrap();
    }
    dir
}

async fn put(etcd: &Etcd, key: &str, value: &str) {
    etcd.client()
        .await
        .put(format!("/clusterf/{key}"), value)
        .await
        .unwrap();
}

/// Puts each (key, address, port) backend, in order.
async fn put_backends(etcd: &Etcd, backends: &[(&str, &str, u16)]) {
    for (key, ip, port) in backends {
        put(etcd, key, &backend(ip, *port)).await;
    }
}

async fn delete(etcd: &Etcd, key: &str) {
    etcd.client()
        .await
        .delete(format!("/clusterf/{key}"))
        .await
        .unwrap();
}

fn backend(ip: &str, port: u16) -> String {
    format!(r#"{{"ipv4": "{ip}", "tcp": {port}}}"#)
}

/// Chromium's path; `None` (failing in CI) when it is not installed.
fn chromium() -> Option<PathBuf> {
    let found = support::which("chromium");
    if found.is_none() {
        support::missing("chromium (Debian's package; tests/run.sh installs it)");
    }
    found
}

/// How long one Chromium run may take before the test kills it and fails.
const BROWSER_LIMIT: Duration = Duration::from_secs(90);

/// Headless Chromium with `args` and the URL; its stdout. Killed (and the
/// test failed) after [`BROWSER_LIMIT`].
async fn browse(chromium: &Path, args: &[&str], url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(args)
    .arg(url)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run chromium");
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = r.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > BROWSER_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {args:?} took more than {BROWSER_LIMIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let err = stderr.join().unwrap();
    assert!(status.success(), "chromium {args:?}: {err}");
    stdout.join().unwrap()
}

/// One HTTP/1.0 GET; (head, body).
fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.to_ascii_lowercase(), body.to_string())
}

/// The page's service table.
fn service_table(dom: &str) -> &str {
    let table = dom
        .split("id=\"service-table\"")
        .nth(1)
        .expect("the service table");
    table.split("</table>").next().unwrap()
}

/// The rows of the page's service table whose text has `needle`.
fn rows_with<'a>(dom: &'a str, needle: &str) -> Vec<&'a str> {
    service_table(dom)
        .split("<tr")
        .map(|r| r.split("</tr>").next().unwrap_or(r))
        .filter(|r| r.contains(needle))
        .collect()
}

/// Checks shared by both loads: the web service, the draining dest with
/// its time left, the injection as text and as nothing else.
fn check_dom(dom: &str) {
    assert!(service_table(dom).contains(WEB), "{dom}");
    let drained = rows_with(dom, "10.3.107.2:8080");
    assert_eq!(drained.len(), 1, "{dom}");
    let row = drained[0];
    assert!(row.contains("class=\"dest draining\""), "{row}");
    assert!(row.contains(" left"), "{row}");
    assert!(
        rows_with(dom, "10.3.107.1:8080")[0].contains(">up<"),
        "{dom}"
    );
    // The injection is text: escaped in the serialized DOM, and no element
    // came of it (the page has no img at all, nor any script).
    assert!(dom.contains("&lt;img src=x onerror=alert(1)&gt;"), "{dom}");
    let lower = dom.to_ascii_lowercase();
    assert!(!lower.contains("<img"), "{dom}");
    assert!(!lower.contains("<script"), "{dom}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_shows_services_a_drain_and_the_error_banner_and_the_injection_as_text() {
    let Some(etcd) = Etcd::start() else { return };
    let Some(chromium) = chromium() else { return };
    let dir = config_dir();
    let state = tempfile::tempdir().unwrap();
    put_backends(
        &etcd,
        &[
            ("services/web/backends/web-1", "10.3.107.1", 8080),
            ("services/web/backends/web-2", "10.3.107.2", 8080),
            ("services/web/backends/web-3", "10.3.107.3", 8080),
            ("services/api/backends/api-1", "10.3.108.1", 8443),
        ],
    )
    .await;
    let injected = format!("services/web/backends/{INJECTION}");
    put(&etcd, &injected, &backend("10.3.107.9", 8080)).await;
    let kernel = MemoryKernel::default();
    let opts = options(dir.path(), &etcd, &state.path().join("drains.json"));
    let daemon = Daemon::start(opts, Box::new(kernel.clone())).await.unwrap();
    eventually(Duration::from_secs(10), "the first apply", || {
        kernel.table().dest_count() == 4
    })
    .await;
    let addr = daemon.metrics_addr().unwrap();

    // Connections on web-1 and web-2; web-2's backend goes: it drains.
    let web: ServiceKey = WEB.parse().unwrap();
    {
        let mut live = kernel.live.lock().unwrap();
        let stats = live.stats.entry(web).or_default();
        for (dest, active, inactive) in [("10.3.107.1:8080", 12, 40), ("10.3.107.2:8080", 3, 7)] {
            let stat = DestStats {
                active_conns: active,
                inactive_conns: inactive,
                ..DestStats::default()
            };
            stats.insert(dest.parse().unwrap(), stat);
        }
        let mut traffic = kernel.traffic.lock().unwrap();
        let counts = |connections, bytes_in, bytes_out| Traffic {
            connections,
            bytes_in,
            bytes_out,
            connection_rate: 4,
            byte_rate_out: 52_000,
            ..Traffic::default()
        };
        traffic
            .services
            .insert(web, counts(1234, 612_340, 10_442_112));
        let dests = traffic.dests.entry(web).or_default();
        dests.insert(
            "10.3.107.1:8080".parse().unwrap(),
            counts(980, 500_000, 9_000_000),
        );
    }
    eventually(Duration::from_secs(10), "the traffic read", || {
        get(addr, "/status.json")
            .1
            .contains("\"connections\": 1234")
    })
    .await;
    delete(&etcd, "services/web/backends/web-2").await;
    eventually(Duration::from_secs(10), "the drain", || {
        daemon.status().drains_active == 1
    })
    .await;

    let url = format!("http://{addr}/?refresh=0");
    let dom = browse(&chromium, &["--dump-dom"], &url).await;
    check_dom(&dom);
    assert!(!dom.contains("id=\"errors\""), "no error yet: {dom}");
    // The last pass read etcd; this frontend's fleet record is shown.
    let last = dom.split("id=\"last-pass\"").nth(1).unwrap();
    assert!(last.contains(">ok<"), "{last}");
    let fleet = dom.split("id=\"fleet\"").nth(1).expect("the fleet table");
    assert!(fleet.contains("<td>lb1</td>"), "{fleet}");
    assert!(
        service_table(&dom).contains("tcp://10.107.107.108:443"),
        "{dom}"
    );
    let row = rows_with(&dom, "10.3.107.2:8080")[0];
    assert!(
        row.contains(">3<") && row.contains(">7<"),
        "counters: {row}"
    );
    // The kernel's traffic counters: the service's, and web-1's per dest.
    assert!(
        service_table(&dom)
            .contains("1234 connections (4/s), in 612.3 kB (0 B/s), out 10.4 MB (52.0 kB/s)"),
        "{dom}"
    );
    let row = rows_with(&dom, "10.3.107.1:8080")[0];
    assert!(row.contains("980 conns, in 500.0 kB, out 9.0 MB"), "{row}");

    // A config file that fails validation: the pass fails, the banner says
    // so, the services and the drain are still shown.
    let failed = daemon.status().passes_failed;
    std::fs::write(
        dir.path().join("services/api/frontend"),
        r#"{"ipv4": "10.107.107.999", "tcp": 443}"#,
    )
    .unwrap();
    eventually(Duration::from_secs(10), "the failed pass", || {
        daemon.status().passes_failed > failed
    })
    .await;
    let dom = browse(&chromium, &["--dump-dom"], &url).await;
    let banner = dom.split("id=\"errors\"").nth(1).expect("the error banner");
    let banner = banner.split("</div>").next().unwrap();
    assert!(banner.contains("invalid config"), "{banner}");
    assert!(banner.contains("services/api/frontend"), "{banner}");
    check_dom(&dom);
    assert!(dom.contains("The config has errors"), "{dom}");
    // The service the invalid config lacks, as the kernel still has it.
    let api = rows_with(&dom, "10.3.108.1:8443");
    assert!(api.len() == 1 && api[0].contains(">kernel<"), "{dom}");
    let row = rows_with(&dom, "10.3.107.2:8080")[0];
    assert!(
        row.contains(">3<") && row.contains(">7<"),
        "counters: {row}"
    );

    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let arg = format!("--screenshot={}", shot.display());
    browse(&chromium, &[&arg, "--window-size=1100,1400"], &url).await;
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    // To the stderr handle, not eprintln!, which the harness captures.
    let _ = writeln!(
        std::io::stderr(),
        "status page screenshot: {}",
        shot.display()
    );
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_takes_the_same_query_and_both_are_served_with_strict_headers() {
    let Some(etcd) = Etcd::start() else { return };
    let dir = config_dir();
    let state = tempfile::tempdir().unwrap();
    put_backends(
        &etcd,
        &[
            ("services/web/backends/web-1", "10.3.107.1", 8080),
            ("services/api/backends/api-1", "10.3.108.1", 8443),
        ],
    )
    .await;
    let kernel = MemoryKernel::default();
    let opts = options(dir.path(), &etcd, &state.path().join("drains.json"));
    let daemon = support_daemon::started(opts, &kernel).await;
    let addr = daemon.metrics_addr().unwrap();

    let (head, body) = get(addr, "/status.json?q=API&per_page=1");
    assert!(
        head.starts_with("http/1.0 200") || head.starts_with("http/1.1 200"),
        "{head}"
    );
    assert!(
        head.contains("content-type: application/json; charset=utf-8"),
        "{head}"
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let page = &v["services"];
    assert_eq!(
        (page["total"].as_u64(), page["matched"].as_u64()),
        (Some(2), Some(1)),
        "{body}"
    );
    assert_eq!(
        page["services"][0]["service"], "tcp://10.107.107.108:443",
        "{body}"
    );
    let dest = &page["services"][0]["dests"][0];
    assert_eq!(dest["dest"], "10.3.108.1:8443", "{body}");
    assert_eq!(
        dest["origins"][0]["source"], "overlay:services/api/backends/api-1",
        "{body}"
    );
    assert_eq!(v["last_pass"]["ok"], true, "{body}");
    assert!(
        v["sources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["source"] == "etcd"),
        "{body}"
    );

    for path in ["/", "/status", "/status.json"] {
        let (head, _) = get(addr, path);
        for want in [
            "cache-control: no-store",
            "x-content-type-options: nosniff",
            "content-security-policy: default-src 'none'; style-src 'unsafe-inline'",
        ] {
            assert!(head.contains(want), "{path}: {want} in {head}");
        }
    }
    let (head, html) = get(addr, "/");
    assert!(
        head.contains("content-type: text/html; charset=utf-8"),
        "{head}"
    );
    assert!(
        html.contains("<meta http-equiv=\"refresh\" content=\"10\">"),
        "{html}"
    );
    let (_, html) = get(addr, "/?refresh=0&page=2&per_page=1");
    assert!(!html.contains("http-equiv=\"refresh\""), "{html}");
    assert!(html.contains("page 2 of 2"), "{html}");
    assert!(
        service_table(&html).contains("tcp://10.107.107.108:443"),
        "{html}"
    );
    assert!(
        !service_table(&html).contains("tcp://10.107.107.107:80"),
        "{html}"
    );
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dest_down_for_health_shows_drained_and_why() {
    // One backend listens, the other's port is closed: a TCP check drains it.
    let up = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (up_port, down_port) = (
        up.local_addr().unwrap().port(),
        closed.local_addr().unwrap().port(),
    );
    drop(closed);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("services")).unwrap();
    std::fs::write(
        dir.path().join("services/web.yaml"),
        format!(
            "frontend: {{ipv4: 10.0.0.1, tcp: 80}}\n\
             healthcheck: {{type: tcp, interval: 100ms, timeout: 90ms, rise: 2, fall: 2}}\n\
             backends:\n  \
               up: {{ipv4: 127.0.0.1, tcp: {up_port}}}\n  \
               down: {{ipv4: 127.0.0.1, tcp: {down_port}}}\n"
        ),
    )
    .unwrap();
    let watch = WatchArgs {
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        resync: Duration::from_secs(3600),
        ..WatchArgs::default()
    };
    let opts = Sources::options(
        &["--config-path", &dir.path().display().to_string()],
        &watch,
    );
    let kernel = MemoryKernel::default();
    let daemon = support_daemon::started(opts, &kernel).await;
    let addr = daemon.metrics_addr().unwrap();
    let down = format!("127.0.0.1:{down_port}");
    let dest_of = |v: &serde_json::Value| -> Option<serde_json::Value> {
        v["services"]["services"][0]["dests"]
            .as_array()?
            .iter()
            .find(|d| d["dest"] == down.as_str())
            .cloned()
    };
    let mut doc = serde_json::Value::Null;
    let start = std::time::Instant::now();
    while dest_of(&doc).is_none_or(|d| d["state"] != "health-drained") {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never drained: {doc:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        let body = tokio::task::spawn_blocking(move || get(addr, "/status.json").1)
            .await
            .unwrap();
        doc = serde_json::from_str(&body).unwrap();
    }
    let d = dest_of(&doc).unwrap();
    assert_eq!(d["weight"], 0, "{doc:#}");
    let why = d["health"].as_str().unwrap_or_default().to_string();
    assert!(why.contains("2 of 2 failed"), "{doc:#}");
    assert_eq!(doc["services"]["with_problems"], 1, "{doc:#}");
    assert_eq!(
        (
            doc["health"]["checked"].as_u64(),
            doc["health"]["down"].as_u64()
        ),
        (Some(2), Some(1))
    );
    let (_, html) = get(addr, "/?only=problems");
    let row = rows_with(&html, &down);
    assert!(
        row.len() == 1 && row[0].contains("health-drained"),
        "{html}"
    );
    assert!(row[0].contains(&why.replace('"', "&quot;")), "{html}");
    drop(up);
    daemon.stop().await.unwrap();
}
