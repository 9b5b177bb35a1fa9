//! The monitoring assets in examples/monitoring/ against real tools and a
//! real daemon: the alert rules load in `promtool check rules` and every
//! alert has a unit test (`promtool test rules`) that fires and one that
//! stays quiet; the Grafana dashboard is well formed and every query is
//! PromQL that promtool parses; and every series the dashboard and the
//! rules name is in `/metrics` of a running daemon (in-memory kernel,
//! a health-checked service on loopback, a drain), while the dashboard
//! shows every series the daemon exports.

#[path = "support/daemon.rs"]
mod support_daemon;
use support_daemon::Sources;
#[path = "support/http.rs"]
mod support_http;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clusterf::cli::watch::WatchArgs;
use clusterf::daemon::{Daemon, MemoryKernel};
use clusterf::model::{DestStats, ServiceKey};
use serde::Deserialize;
use serde_json::Value;

fn assets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/monitoring")
}

/// A program on PATH.
fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// promtool (Debian's prometheus package); `None` (a loud SKIP, or a
/// failure when CI is set) when it is missing.
fn promtool() -> Option<PathBuf> {
    let found = which("promtool");
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is missing, and CI is set: tests must not skip (apt-get install prometheus)"
        );
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "\n!!!!!!!! SKIP: promtool is missing: the assets were not checked with it !!!!!!!!\n"
        );
    }
    found
}

/// Runs promtool in `dir`; its output, after asserting it succeeded.
fn run_promtool(promtool: &Path, dir: &Path, args: &[&str]) -> String {
    let out = Command::new(promtool)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[derive(Deserialize)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Deserialize)]
struct RuleGroup {
    rules: Vec<Rule>,
}

#[derive(Deserialize)]
struct Rule {
    alert: String,
    expr: String,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct UnitTestFile {
    rule_files: Vec<String>,
    tests: Vec<UnitTest>,
}

#[derive(Deserialize)]
struct UnitTest {
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
}

#[derive(Deserialize)]
struct AlertTest {
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<Value>,
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn rules() -> Vec<Rule> {
    let path = assets().join("alerts.yml");
    let file: RuleFile = serde_saphyr::from_str(&read(&path)).expect("alerts.yml");
    file.groups.into_iter().flat_map(|g| g.rules).collect()
}

/// Every `clusterf_...` metric name in a PromQL expression or text.
fn metric_names(text: &str) -> BTreeSet<String> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = BTreeSet::new();
    for (i, _) in text.match_indices("clusterf_") {
        if text[..i].chars().next_back().is_some_and(is_name) {
            continue;
        }
        let end = text[i..]
            .find(|c| !is_name(c))
            .map_or(text.len(), |n| i + n);
        names.insert(text[i..end].trim_end_matches(':').to_string());
    }
    names
}

#[test]
fn the_alert_rules_load_in_promtool_and_every_alert_has_unit_tests_that_pass() {
    let rules = rules();
    let names: Vec<&str> = rules.iter().map(|r| r.alert.as_str()).collect();
    for expected in [
        "ClusterfNoSuccessfulApply",
        "ClusterfSourceStale",
        "ClusterfFailStatic",
        "ClusterfDriftCorrectionsRising",
        "ClusterfGuardRefused",
        "ClusterfHealthFailOpen",
    ] {
        assert!(names.contains(&expected), "{expected} not in {names:?}");
    }
    let path = assets().join("alerts.test.yml");
    let tests: UnitTestFile = serde_saphyr::from_str(&read(&path)).expect("alerts.test.yml");
    assert_eq!(tests.rule_files, ["alerts.yml"]);
    let cases: Vec<&AlertTest> = tests
        .tests
        .iter()
        .flat_map(|t| &t.alert_rule_test)
        .collect();
    for rule in &rules {
        assert!(
            !metric_names(&rule.expr).is_empty(),
            "{}: no clusterf series in {}",
            rule.alert,
            rule.expr
        );
        let of = |fires: bool| {
            cases
                .iter()
                .any(|c| c.alertname == rule.alert && c.exp_alerts.is_empty() != fires)
        };
        assert!(of(true), "{}: no unit test where it fires", rule.alert);
        assert!(
            of(false),
            "{}: no unit test where it stays quiet",
            rule.alert
        );
    }
    let Some(promtool) = promtool() else { return };
    let out = run_promtool(&promtool, &assets(), &["check", "rules", "alerts.yml"]);
    assert!(
        out.contains(&format!("SUCCESS: {} rules found", rules.len())),
        "{out}"
    );
    let out = run_promtool(&promtool, &assets(), &["test", "rules", "alerts.test.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
}

fn dashboard() -> Value {
    let path = assets().join("grafana-dashboard.json");
    serde_json::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every query of the dashboard: (where, PromQL as Grafana sends it).
fn queries(dash: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for var in dash["templating"]["list"]
        .as_array()
        .expect("templating.list")
    {
        if var["type"] == "query" {
            let q = var["query"]["query"].as_str().expect("a variable's query");
            out.push((format!("variable {}", var["name"]), q.to_string()));
        }
    }
    for panel in dash["panels"].as_array().expect("panels") {
        for t in panel["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().expect("every target has an expr");
            out.push((
                format!("panel {} {}", panel["title"], t["refId"]),
                expr.into(),
            ));
        }
    }
    out
}

/// The panels' layout: unique ids, on the 24-column grid, none overlapping,
/// every panel querying the dashboard's data source variable.
fn check_panels(dash: &Value) {
    let vars: Vec<&str> = dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert!(
        vars.contains(&"datasource") && vars.contains(&"instance"),
        "{vars:?}"
    );
    let mut ids = BTreeSet::new();
    let mut boxes: Vec<(u64, u64, u64, u64, String)> = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        let title = p["title"].as_str().expect("a panel title").to_string();
        assert!(
            ids.insert(p["id"].as_u64().expect("a panel id")),
            "{title}: id twice"
        );
        let g = &p["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| g[k].as_u64().expect("gridPos"));
        assert!(w > 0 && h > 0 && x + w <= 24, "{title}: {g}");
        for (bx, by, bw, bh, other) in &boxes {
            let apart = x >= bx + bw || bx >= &(x + w) || y >= by + bh || by >= &(y + h);
            assert!(apart, "{title} overlaps {other}");
        }
        boxes.push((x, y, w, h, title.clone()));
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{title}");
        }
    }
}

#[test]
fn the_dashboard_is_well_formed_and_every_query_is_promql_on_clusterf_series() {
    let dash = dashboard();
    assert_eq!(dash["uid"], "clusterf");
    assert!(dash["schemaVersion"].as_u64().is_some_and(|v| v >= 36));
    check_panels(&dash);
    // Each query as a recording rule, with Grafana's variables as Grafana
    // substitutes them, so that promtool parses it.
    let mut recording = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (at, expr)) in queries(&dash).iter().enumerate() {
        assert!(
            !metric_names(expr).is_empty(),
            "{at}: no clusterf series in {expr}"
        );
        for (j, _) in expr.match_indices('$') {
            let var: String = expr[j + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            assert!(
                ["instance", "__rate_interval"].contains(&var.as_str()),
                "{at}: ${var}"
            );
        }
        let expr = expr
            .replace("$__rate_interval", "1m")
            .replace("$instance", ".+")
            .replace("label_values(clusterf_ready, instance)", "clusterf_ready");
        recording.push_str(&format!(
            "      - record: clusterf_dashboard:query_{i}\n        expr: {}\n",
            serde_json::to_string(&expr).unwrap()
        ));
    }
    let Some(promtool) = promtool() else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dashboard.rules.yml"), &recording).unwrap();
    let out = run_promtool(
        &promtool,
        dir.path(),
        &["check", "rules", "dashboard.rules.yml"],
    );
    let n = queries(&dash).len();
    assert!(out.contains(&format!("SUCCESS: {n} rules found")), "{out}");
}

/// An HTTP backend on loopback whose `/health` answers 200.
async fn healthy_backend() -> SocketAddr {
    let app = axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Writes services/web.yaml: one service checked over HTTP every 100 ms,
/// with `backends` (by rename, as editors save).
fn write_service(dir: &Path, backends: &[SocketAddr]) {
    let mut yaml = String::from(
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\n\
         healthcheck: {type: http, path: /health, interval: 100ms, timeout: 90ms, rise: 1, fall: 2}\n\
         backends:\n",
    );
    for (i, b) in backends.iter().enumerate() {
        yaml.push_str(&format!("  b{i}: {{ipv4: 127.0.0.1, tcp: {}}}\n", b.port()));
    }
    std::fs::create_dir_all(dir.join("services")).unwrap();
    let tmp = dir.join("services/.web.yaml.tmp");
    std::fs::write(&tmp, yaml).unwrap();
    std::fs::rename(&tmp, dir.join("services/web.yaml")).unwrap();
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A daemon on the in-memory kernel with a health-checked service of two
/// backends, one of which then leaves with a connection open and drains
/// until it closes: every series has been set at least once.
async fn busy_daemon(dir: &Path, kernel: &MemoryKernel) -> Daemon {
    let (a, b) = (healthy_backend().await, healthy_backend().await);
    write_service(dir, &[a, b]);
    let watch = WatchArgs {
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        resync: Duration::from_secs(3600),
        drain_timeout: Duration::from_secs(60),
        metrics_per_dest: true,
        traffic_interval: Duration::from_millis(100),
        vip_interface: Some("clusterf0".into()),
        ..WatchArgs::default()
    };
    let opts = Sources::options(&["--config-path", &dir.display().to_string()], &watch);
    let daemon = Daemon::start(opts, Box::new(kernel.clone())).await.unwrap();
    eventually("both dests checked", || {
        let text = daemon.metrics().render(0.0);
        [a, b].iter().all(|d| {
            text.contains(&format!(
                "clusterf_dest_healthy{{dest=\"{d}\",check=\"http\"}} 1"
            ))
        })
    })
    .await;
    let svc: ServiceKey = "tcp://10.0.0.1:80".parse().unwrap();
    let set_active = |n: u32| {
        let mut live = kernel.live.lock().unwrap();
        let stats = live.stats.entry(svc).or_default().entry(b).or_default();
        *stats = DestStats {
            active_conns: n,
            ..DestStats::default()
        };
    };
    set_active(1);
    write_service(dir, &[a]);
    eventually("the drain", || daemon.status().drains_active == 1).await;
    set_active(0);
    eventually("the drain's end", || kernel.table().dest_count() == 1).await;
    eventually("the traffic counters of the dest", || {
        daemon
            .metrics()
            .render(0.0)
            .contains("clusterf_ipvs_dest_connections_total{")
    })
    .await;
    daemon
}

/// Sample names and metric families (`# TYPE` lines) of an exposition.
fn exported(text: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut samples = BTreeSet::new();
    let mut families = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            families.insert(rest.split(' ').next().unwrap().to_string());
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            samples.insert(line[..end].to_string());
        }
    }
    (samples, families)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_series_the_assets_name_is_exported_by_a_running_daemon_and_the_dashboard_shows_every_one()
 {
    let dir = tempfile::tempdir().unwrap();
    let kernel = MemoryKernel::default();
    let daemon = busy_daemon(dir.path(), &kernel).await;
    let addr = daemon.metrics_addr().expect("a metrics listener");
    let (status, text) =
        tokio::task::spawn_blocking(move || support_http::http(addr, "GET", "/metrics"))
            .await
            .unwrap();
    daemon.stop().await.unwrap();
    assert_eq!(status, 200, "{text}");
    let (samples, families) = exported(&text);

    let dash = dashboard();
    let on_dashboard: BTreeSet<String> = queries(&dash)
        .iter()
        .flat_map(|(_, q)| metric_names(q))
        .collect();
    let in_rules: BTreeSet<String> = rules()
        .iter()
        .flat_map(|r| {
            let text = format!("{} {:?}", r.expr, r.annotations);
            metric_names(&text)
        })
        .collect();
    for name in on_dashboard.iter().chain(&in_rules) {
        assert!(samples.contains(name), "{name} is not in /metrics:\n{text}");
    }
    // The other way round: the dashboard shows every family.
    for family in &families {
        let shown = ["", "_total", "_bucket", "_sum", "_count"]
            .iter()
            .any(|suffix| on_dashboard.contains(&format!("{family}{suffix}")));
        assert!(shown, "the dashboard does not show {family}");
    }
    for expected in [
        "clusterf_health_checks_total",
        "clusterf_health_check_duration_seconds_bucket",
        "clusterf_dest_healthy",
        "clusterf_health_drained_dests",
        "clusterf_health_fail_open_dests",
        "clusterf_drains_completed_total",
    ] {
        assert!(on_dashboard.contains(expected), "{expected}");
    }
}
