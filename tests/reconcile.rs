//! Integration tests of the watch daemon (`clusterf apply --watch`): a real
//! etcd on loopback (see `support/etcd.rs`), a real config directory watched
//! with notify, the real metrics HTTP listener, and the in-memory kernel
//! table (kernel IPVS is exercised in the VM: tests/vm/scenarios/watch.sh).
//!
//! Without the etcd binary these tests fail when `CI` is set and print a
//! loud SKIP otherwise.

#[path = "support/etcd.rs"]
mod support;
#[path = "support/http.rs"]
mod support_http;

#[path = "support/daemon.rs"]
mod support_daemon;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use clap::Parser;
use clusterf::cli::watch::{WatchArgs, resolve};
use clusterf::daemon::{Daemon, Kernel, MemoryKernel, Options};
use clusterf::model::{DestStats, IpvsState, Op};
use clusterf::netlink::PartialFailure;
use clusterf::reconcile::live::Table;
use clusterf::source::etcd::watch::Tuning;
use support::Etcd;
use support_daemon::{Sources, eventually, started};
use support_http::http;

const FRONTEND: &str = r#"{"ipv4": "10.107.107.107", "tcp": 1337}"#;
const VIP: &str = "tcp://10.107.107.107:1337";

fn options(config_dir: &Path, etcd: Option<&Etcd>, watch: WatchArgs) -> Options {
    let mut argv = vec![
        "t".to_string(),
        "--config-path".to_string(),
        config_dir.display().to_string(),
    ];
    if let Some(e) = etcd {
        argv.push("--etcd".into());
        argv.push(e.url());
    }
    let s = Sources::try_parse_from(argv).expect("source args");
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

fn watch_args() -> WatchArgs {
    WatchArgs {
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        resync: Duration::from_secs(3600),
        ..WatchArgs::default()
    }
}

fn config_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let svc = dir.path().join("services/test");
    std::fs::create_dir_all(&svc).unwrap();
    std::fs::write(svc.join("frontend"), FRONTEND).unwrap();
    dir
}

/// Replaces a file the way editors save: write a temporary file, rename it
/// over the original.
fn save_by_rename(path: &Path, content: &str) {
    let tmp = path.with_file_name(".save.tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Config backends `a`, `b`, ... at `ips` for service `test`; their
/// directory.
fn write_backends(dir: &Path, ips: &[&str]) -> std::path::PathBuf {
    let backends = dir.join("services/test/backends");
    std::fs::create_dir_all(&backends).unwrap();
    for (name, ip) in ["a", "b", "c"].iter().zip(ips) {
        std::fs::write(backends.join(name), backend(ip)).unwrap();
    }
    backends
}

fn backend(ip: &str) -> String {
    format!(r#"{{"ipv4": "{ip}", "tcp": 1337}}"#)
}

fn dests(state: &IpvsState) -> Vec<(String, u32)> {
    state
        .services
        .values()
        .flat_map(|s| s.dests.iter().map(|(a, d)| (a.to_string(), d.attrs.weight)))
        .collect()
}

/// The value of one series in a Prometheus text exposition.
fn series(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no series {name} in\n{text}"))
}

async fn put(etcd: &Etcd, key: &str, value: &str) {
    etcd.client()
        .await
        .put(format!("/clusterf/{key}"), value)
        .await
        .unwrap();
}

async fn delete(etcd: &Etcd, key: &str) {
    etcd.client()
        .await
        .delete(format!("/clusterf/{key}"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_changes_reach_the_kernel_and_bursts_coalesce() {
    let Some(etcd) = Etcd::start() else { return };
    let dir = config_dir();
    let kernel = MemoryKernel::default();
    let daemon = started(options(dir.path(), Some(&etcd), watch_args()), &kernel).await;
    let addr = daemon.metrics_addr().unwrap();
    assert_eq!(http(addr, "GET", "/readyz").0, 200);
    assert_eq!(http(addr, "GET", "/healthz"), (200, "ok\n".to_string()));
    assert_eq!(kernel.table().services.len(), 1);
    assert!(dests(&kernel.table()).is_empty());

    // One backend: it reaches the kernel within the debounce window plus a pass.
    let start = Instant::now();
    put(
        &etcd,
        "services/test/backends/test3-1",
        &backend("10.3.107.1"),
    )
    .await;
    eventually(Duration::from_secs(5), "the backend in the kernel", || {
        dests(&kernel.table()) == vec![("10.3.107.1:1337".to_string(), 10)]
    })
    .await;
    eprintln!("etcd put -> kernel: {:?}", start.elapsed());

    // A burst of 200 puts, all in flight at once, becomes far fewer
    // passes. (Puts made one after another are not a burst: on a busy host
    // each can land on an idle loop, whose pass starts at once.)
    let before = daemon.status().passes_ok;
    let client = std::sync::Arc::new(etcd.client().await.0);
    let mut puts = tokio::task::JoinSet::new();
    for i in 0..200u32 {
        let client = client.clone();
        puts.spawn(async move {
            let req = clusterf::etcd::proto::PutRequest {
                key: format!("/clusterf/services/test/backends/b{i}").into_bytes(),
                value: backend(&format!("10.4.{}.{}", i / 250, i % 250 + 1)).into_bytes(),
                ..Default::default()
            };
            client.put(req).await
        });
    }
    while let Some(put) = puts.join_next().await {
        put.unwrap().unwrap();
    }
    // A pass records its metrics after its apply: wait for both.
    eventually(Duration::from_secs(10), "201 dests", || {
        kernel.table().dest_count() == 201
            && series(&daemon.metrics().render(0.0), "clusterf_desired_dests") == 201.0
    })
    .await;
    let passes = daemon.status().passes_ok - before;
    assert!(passes < 100, "200 puts took {passes} passes");
    eprintln!("200 etcd puts -> {passes} passes");

    let text = http(addr, "GET", "/metrics").1;
    assert!(series(&text, "clusterf_change_to_apply_seconds_count") >= 2.0);
    assert_eq!(series(&text, "clusterf_desired_dests"), 201.0);
    assert!(series(&text, "clusterf_ops_applied_total{kind=\"add_dest\"}") >= 201.0);
    assert!(text.contains("clusterf_info{git_commit=\"\",etcd_revision=\""));
    // No Git source: the hook has nothing to poll.
    assert_eq!(http(addr, "POST", "/hooks/git").0, 404);
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_config_keeps_the_kernel_and_recovers_when_fixed() {
    let Some(etcd) = Etcd::start() else { return };
    let dir = config_dir();
    put(&etcd, "services/test/backends/a", &backend("10.3.107.1")).await;
    let kernel = MemoryKernel::default();
    let daemon = Daemon::start(
        options(dir.path(), Some(&etcd), watch_args()),
        Box::new(kernel.clone()),
    )
    .await
    .unwrap();
    let addr = daemon.metrics_addr().unwrap();
    eventually(Duration::from_secs(10), "the first apply", || {
        kernel.table().dest_count() == 1
    })
    .await;
    let good = kernel.table();

    // Break the frontend (saved by rename, as editors do): notify marks the
    // config dirty, the pass fails, the kernel stays.
    let frontend = dir.path().join("services/test/frontend");
    let failed = daemon.status().passes_failed;
    save_by_rename(&frontend, r#"{"ipv4": "10.107.107.107", "tcp": 99999}"#);
    eventually(Duration::from_secs(5), "a failed pass", || {
        daemon.status().passes_failed > failed
    })
    .await;
    let err = daemon.status().last_error.unwrap();
    assert!(err.contains("invalid config"), "{err}");
    // A change in etcd meanwhile is not applied either: the config is broken.
    put(&etcd, "services/test/backends/b", &backend("10.3.107.2")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(kernel.table(), good);
    let text = http(addr, "GET", "/metrics").1;
    assert!(series(&text, "clusterf_errors_total{source=\"config\"}") >= 1.0);
    assert!(series(&text, "clusterf_passes_total{outcome=\"failed\"}") >= 1.0);
    // Still ready: the last good config is being served.
    assert_eq!(http(addr, "GET", "/readyz").0, 200);

    // Fix it: recovery by itself, with both backends.
    save_by_rename(&frontend, FRONTEND);
    eventually(Duration::from_secs(5), "recovery", || {
        kernel.table().dest_count() == 2 && daemon.status().last_error.is_none()
    })
    .await;
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_corrects_drift_and_a_dead_etcd_removes_nothing() {
    let Some(mut etcd) = Etcd::start() else {
        return;
    };
    let dir = config_dir();
    put(&etcd, "services/test/backends/a", &backend("10.3.107.1")).await;
    let kernel = MemoryKernel::default();
    let mut args = watch_args();
    args.resync = Duration::from_millis(300);
    let daemon = Daemon::start(
        options(dir.path(), Some(&etcd), args),
        Box::new(kernel.clone()),
    )
    .await
    .unwrap();
    let addr = daemon.metrics_addr().unwrap();
    eventually(Duration::from_secs(10), "the first apply", || {
        kernel.table().dest_count() == 1
    })
    .await;
    let good = kernel.table();

    // Someone edits IPVS by hand: the resync puts it back.
    {
        let mut live = kernel.live.lock().unwrap();
        let svc = live.state.services.values_mut().next().unwrap();
        svc.dests.values_mut().next().unwrap().attrs.weight = 99;
    }
    eventually(Duration::from_secs(5), "the drift corrected", || {
        kernel.table() == good
    })
    .await;
    let text = http(addr, "GET", "/metrics").1;
    assert!(series(&text, "clusterf_drift_corrections_total") >= 1.0);

    // etcd dies: passes go on with the last good overlay; nothing removed.
    etcd.stop();
    let before = daemon.status().passes_ok;
    eventually(Duration::from_secs(5), "resync passes without etcd", || {
        daemon.status().passes_ok >= before + 3
    })
    .await;
    assert_eq!(kernel.table(), good);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let text = http(addr, "GET", "/metrics").1;
    assert!(
        series(&text, "clusterf_source_staleness_seconds{source=\"etcd\"}") >= 1.0,
        "{text}"
    );
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_changes_after_the_startup_pass_do_not_read_the_kernel() {
    let Some(etcd) = Etcd::start() else { return };
    let dir = config_dir();
    let kernel = MemoryKernel::default();
    let daemon = started(options(dir.path(), Some(&etcd), watch_args()), &kernel).await;
    let addr = daemon.metrics_addr().unwrap();
    assert_eq!(kernel.reads(), 1, "the startup pass reads the kernel");

    // Three changes, each its own pass: planned against the daemon's copy
    // of the table (the startup read plus its own ops), no dump.
    for (i, ip) in ["10.3.107.1", "10.3.107.2", "10.3.107.3"]
        .iter()
        .enumerate()
    {
        let passes = daemon.status().passes_ok;
        put(&etcd, &format!("services/test/backends/b{i}"), &backend(ip)).await;
        eventually(Duration::from_secs(5), "the backend in the kernel", || {
            kernel.table().dest_count() == i + 1 && daemon.status().passes_ok > passes
        })
        .await;
    }
    // A removal too (no drain timeout: nothing to drain, no counters needed).
    delete(&etcd, "services/test/backends/b0").await;
    eventually(Duration::from_secs(5), "the backend deleted", || {
        kernel.table().dest_count() == 2
    })
    .await;
    assert_eq!(kernel.reads(), 1, "no pass after the first read the kernel");
    let text = http(addr, "GET", "/metrics").1;
    assert_eq!(series(&text, "clusterf_kernel_reads_total"), 1.0);
    assert!(series(&text, "clusterf_kernel_cached_passes_total") >= 4.0);
    assert_eq!(
        series(&text, "clusterf_live_dests"),
        3.0,
        "sizes before the apply"
    );
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failed_apply_the_next_pass_reads_the_kernel() {
    let Some(etcd) = Etcd::start() else { return };
    let dir = config_dir();
    put(&etcd, "services/test/backends/a", &backend("10.3.107.1")).await;
    let kernel = MemoryKernel::default();
    let daemon = Daemon::start(
        options(dir.path(), Some(&etcd), watch_args()),
        Box::new(kernel.clone()),
    )
    .await
    .unwrap();
    eventually(Duration::from_secs(10), "the first apply", || {
        kernel.table().dest_count() == 1
    })
    .await;
    assert_eq!(kernel.reads(), 1);

    // Someone deletes the service by hand: the daemon's copy still has it,
    // so the next change (a dest added to it) fails in the kernel.
    kernel.live.lock().unwrap().state.services.clear();
    let failed = daemon.status().passes_failed;
    put(&etcd, "services/test/backends/b", &backend("10.3.107.2")).await;
    eventually(Duration::from_secs(5), "the failed apply", || {
        daemon.status().passes_failed > failed
    })
    .await;
    let err = daemon.status().last_error.unwrap_or_default();
    assert!(err.contains("no such service"), "{err}");
    assert_eq!(kernel.reads(), 1, "the failed pass used the copy");

    // The retry reads the kernel and puts everything back.
    eventually(Duration::from_secs(5), "the retry", || {
        kernel.table().dest_count() == 2 && daemon.status().last_error.is_none()
    })
    .await;
    assert_eq!(kernel.reads(), 2, "the retry read the kernel once");
    assert_eq!(
        dests(&kernel.table()),
        vec![
            ("10.3.107.1:1337".to_string(), 10),
            ("10.3.107.2:1337".to_string(), 10)
        ]
    );
    daemon.stop().await.unwrap();
}

/// The memory kernel, but its first read panics: a bug in a pass.
struct PanicsOnFirstRead {
    kernel: MemoryKernel,
    panicked: bool,
}

impl Kernel for PanicsOnFirstRead {
    fn read(&mut self) -> anyhow::Result<Table> {
        if !std::mem::replace(&mut self.panicked, true) {
            panic!("a bug in the first read");
        }
        self.kernel.read()
    }

    fn apply(&mut self, ops: &[Op]) -> Result<(), PartialFailure> {
        self.kernel.apply(ops)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_that_panics_is_a_failed_pass_and_the_next_one_applies() {
    let dir = config_dir();
    write_backends(dir.path(), &["10.3.107.1"]);
    let kernel = MemoryKernel::default();
    let panicking = PanicsOnFirstRead {
        kernel: kernel.clone(),
        panicked: false,
    };
    let daemon = Daemon::start(options(dir.path(), None, watch_args()), Box::new(panicking))
        .await
        .unwrap();
    // The pass is counted after its apply: wait for both.
    eventually(Duration::from_secs(10), "the retry applies", || {
        kernel.table().dest_count() == 1 && daemon.status().passes_ok >= 1
    })
    .await;
    let status = daemon.status();
    assert_eq!((status.passes_failed, status.passes_ok), (1, 1));
    assert_eq!(kernel.reads(), 1, "the retry read the kernel");
    let text = daemon.metrics().render(0.0);
    assert_eq!(series(&text, "clusterf_errors_total{source=\"pass\"}"), 1.0);
    daemon.stop().await.unwrap();
}

/// A config of two services, `test` and `other`, with one etcd backend each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_add_skips_the_rest_of_its_service_in_later_chunks_and_drops_the_copy() {
    use clusterf::daemon::kernel::CHUNK;
    use clusterf::model::{Dest, DestAttrs, Method};
    // No etcd: the backends are files of the config directory.
    let dir = config_dir();
    let kernel = MemoryKernel::default();
    let mut opts = options(dir.path(), None, watch_args());
    // Time to look at the kernel between the failed pass and its retry.
    opts.backoff_initial = Duration::from_millis(1500);
    let daemon = Daemon::start(opts, Box::new(kernel.clone())).await.unwrap();
    eventually(Duration::from_secs(10), "the first apply", || {
        kernel.table().services.len() == 1
    })
    .await;
    assert_eq!(kernel.reads(), 1);

    // More new dests than one chunk of ops; the first (the lowest
    // address, the plan's first op) is put in the kernel by hand, not in
    // the daemon's copy, so its add is refused.
    let n = CHUNK + 100;
    let ip = |i: usize| format!("10.3.{}.{}", i / 250, i % 250 + 1);
    let first: SocketAddr = format!("{}:1337", ip(0)).parse().unwrap();
    let service: clusterf::model::ServiceKey = VIP.parse().unwrap();
    let by_hand = Dest {
        attrs: DestAttrs::new(Method::Masq, 5),
        provenance: Box::default(),
    };
    {
        let mut live = kernel.live.lock().unwrap();
        let svc = live.state.services.get_mut(&service).unwrap();
        svc.dests.insert(first, by_hand);
    }
    // All of them in one pass: written beside the config, moved in with
    // one rename.
    let staged = tempfile::tempdir().unwrap();
    for i in 0..n {
        let path = staged.path().join(format!("b{i:05}"));
        std::fs::write(path, backend(&ip(i))).unwrap();
    }
    let failed = daemon.status().passes_failed;
    std::fs::rename(staged.path(), dir.path().join("services/test/backends")).unwrap();
    eventually(Duration::from_secs(20), "the failed apply", || {
        daemon.status().passes_failed > failed
    })
    .await;
    let err = daemon.status().last_error.unwrap_or_default();
    assert!(
        err.starts_with(&format!(
            "1 service failed: dest {first} of {VIP}: already exists; the other services were applied (applied 0 of {n} changes)"
        )),
        "{err}"
    );
    // The adds after the refused one were skipped, in the first chunk by
    // the kernel, in the later one by the apply.
    assert_eq!(
        dests(&kernel.table()),
        vec![(first.to_string(), 5)],
        "nothing of the refused service's later chunk was applied"
    );
    assert_eq!(kernel.reads(), 1, "the failed pass used the copy");

    // The copy was dropped: the retry reads the kernel and applies what is
    // left.
    eventually(Duration::from_secs(20), "the retry", || {
        kernel.table().dest_count() == n && daemon.status().last_error.is_none()
    })
    .await;
    assert_eq!(kernel.reads(), 2, "the retry read the kernel");
    assert!(dests(&kernel.table()).iter().all(|(_, w)| *w == 10));
    daemon.stop().await.unwrap();
}

async fn two_services(etcd: &Etcd) -> tempfile::TempDir {
    let dir = config_dir();
    let other = dir.path().join("services/other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(
        other.join("frontend"),
        r#"{"ipv4": "10.107.107.108", "tcp": 1337}"#,
    )
    .unwrap();
    put(etcd, "services/test/backends/a", &backend("10.3.107.1")).await;
    put(etcd, "services/other/backends/a", &backend("10.4.107.1")).await;
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_service_does_not_stop_the_others_and_the_retry_applies_only_what_is_left() {
    let Some(etcd) = Etcd::start() else { return };
    let dir = two_services(&etcd).await;
    let kernel = MemoryKernel::default();
    let mut opts = options(dir.path(), Some(&etcd), watch_args());
    // Time to look at the kernel between the failed pass and its retry.
    opts.backoff_initial = Duration::from_millis(1500);
    let daemon = Daemon::start(opts, Box::new(kernel.clone())).await.unwrap();
    let addr = daemon.metrics_addr().unwrap();
    eventually(Duration::from_secs(10), "the first apply", || {
        kernel.table().dest_count() == 2
    })
    .await;
    let add_dests = |text: &str| series(text, "clusterf_ops_applied_total{kind=\"add_dest\"}");
    let before = add_dests(&http(addr, "GET", "/metrics").1);

    // The test service is deleted by hand; the daemon's copy still has it,
    // so adding a dest to it fails. The other service's new dest, planned
    // after it, is applied in the same pass.
    let test: clusterf::model::ServiceKey = VIP.parse().unwrap();
    kernel.live.lock().unwrap().state.services.remove(&test);
    let failed = daemon.status().passes_failed;
    // One transaction: one watch event, one pass.
    use clusterf::etcd::proto::{PutRequest, Request, RequestOp, TxnRequest};
    let put_op = |key: &str, value: String| RequestOp {
        request: Some(Request::Put(PutRequest {
            key: format!("/clusterf/{key}").into_bytes(),
            value: value.into_bytes(),
            ..Default::default()
        })),
    };
    etcd.client()
        .await
        .0
        .txn(TxnRequest {
            success: vec![
                put_op("services/test/backends/b", backend("10.3.107.2")),
                put_op("services/other/backends/b", backend("10.4.107.2")),
            ],
            failure: Vec::new(),
        })
        .await
        .unwrap();
    eventually(Duration::from_secs(5), "the failed apply", || {
        daemon.status().passes_failed > failed
    })
    .await;
    let err = daemon.status().last_error.unwrap_or_default();
    assert!(
        err.starts_with(
            "1 service failed: service tcp://10.107.107.107:1337: no such service; the other services were applied (applied 1 of 2 changes)"
        ),
        "{err}"
    );
    assert!(err.contains("the other services were applied"), "{err}");
    assert_eq!(
        dests(&kernel.table()),
        vec![
            ("10.4.107.1:1337".to_string(), 10),
            ("10.4.107.2:1337".to_string(), 10)
        ],
        "the other service was applied"
    );
    let text = http(addr, "GET", "/metrics").1;
    assert_eq!(series(&text, "clusterf_failed_services"), 1.0);
    assert_eq!(add_dests(&text), before + 1.0);

    // The retry reads the kernel and applies only what the failed service
    // still needs: the service and its two dests.
    eventually(Duration::from_secs(5), "the retry", || {
        kernel.table().dest_count() == 4 && daemon.status().last_error.is_none()
    })
    .await;
    assert_eq!(kernel.reads(), 2, "the retry read the kernel");
    let text = http(addr, "GET", "/metrics").1;
    assert_eq!(add_dests(&text), before + 3.0);
    assert_eq!(series(&text, "clusterf_failed_services"), 0.0);
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emptied_services_are_counted_and_emptying_most_of_them_is_refused() {
    let Some(etcd) = Etcd::start() else { return };
    let dir = two_services(&etcd).await;
    let kernel = MemoryKernel::default();
    let daemon = Daemon::start(
        options(dir.path(), Some(&etcd), watch_args()),
        Box::new(kernel.clone()),
    )
    .await
    .unwrap();
    let addr = daemon.metrics_addr().unwrap();
    eventually(Duration::from_secs(10), "the first apply", || {
        kernel.table().dest_count() == 2
    })
    .await;

    // One of two services loses its only backend: half, allowed, counted.
    delete(&etcd, "services/other/backends/a").await;
    eventually(Duration::from_secs(5), "the emptied service", || {
        kernel.table().dest_count() == 1
    })
    .await;
    let text = http(addr, "GET", "/metrics").1;
    assert_eq!(series(&text, "clusterf_services_emptied_total"), 1.0);
    assert_eq!(series(&text, "clusterf_empty_services"), 1.0);

    // The last service with dests would end empty too: refused, the kernel
    // keeps its dest.
    let failed = daemon.status().passes_failed;
    delete(&etcd, "services/test/backends/a").await;
    eventually(Duration::from_secs(5), "the refused pass", || {
        daemon.status().passes_failed > failed
    })
    .await;
    let err = daemon.status().last_error.unwrap_or_default();
    assert!(
        err.starts_with("refusing a plan that empties 1 of 1 owned service with dests (100%, more than --max-empty-percent 50)"),
        "{err}"
    );
    assert_eq!(
        dests(&kernel.table()),
        vec![("10.3.107.1:1337".to_string(), 10)]
    );
    let text = http(addr, "GET", "/metrics").1;
    assert_eq!(series(&text, "clusterf_services_emptied_total"), 1.0);
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_by_hand_is_corrected_within_a_resync_while_changes_keep_coming() {
    let Some(etcd) = Etcd::start() else { return };
    let dir = config_dir();
    put(&etcd, "services/test/backends/a", &backend("10.3.107.1")).await;
    let kernel = MemoryKernel::default();
    let mut args = watch_args();
    args.resync = Duration::from_millis(500);
    let daemon = Daemon::start(
        options(dir.path(), Some(&etcd), args),
        Box::new(kernel.clone()),
    )
    .await
    .unwrap();
    eventually(Duration::from_secs(10), "the first apply", || {
        kernel.table().dest_count() == 1
    })
    .await;
    let a: SocketAddr = "10.3.107.1:1337".parse().unwrap();
    let weight = |k: &MemoryKernel| {
        k.table()
            .services
            .values()
            .find_map(|s| s.dests.get(&a).map(|d| d.attrs.weight))
    };

    // A weight changed by hand, then an etcd change every 50 ms: passes
    // keep coming (and push the schedule's own resync back), but the copy
    // of the table expires one resync interval after the last read and the
    // pass after that reads the kernel.
    kernel
        .live
        .lock()
        .unwrap()
        .state
        .services
        .values_mut()
        .next()
        .unwrap()
        .dests
        .get_mut(&a)
        .unwrap()
        .attrs
        .weight = 99;
    let start = Instant::now();
    let reads = kernel.reads();
    let passes = daemon.status().passes_ok;
    let mut i = 0u32;
    while weight(&kernel) != Some(10) {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "the change by hand was not corrected"
        );
        put(
            &etcd,
            &format!("services/test/backends/x{i}"),
            &backend(&format!("10.5.0.{}", i % 250 + 1)),
        )
        .await;
        i += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let passes = daemon.status().passes_ok - passes;
    let reads = kernel.reads() - reads;
    eprintln!(
        "corrected after {:?}: {passes} passes, {reads} reads",
        start.elapsed()
    );
    assert!(
        reads >= 1 && reads < passes,
        "{reads} reads in {passes} passes"
    );
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_applies_nothing() {
    let Some(etcd) = Etcd::start() else { return };
    let dir = config_dir();
    put(&etcd, "services/test/backends/a", &backend("10.3.107.1")).await;
    let kernel = MemoryKernel::default();
    let first = Daemon::start(
        options(dir.path(), Some(&etcd), watch_args()),
        Box::new(kernel.clone()),
    )
    .await
    .unwrap();
    eventually(Duration::from_secs(10), "the first apply", || {
        kernel.table().dest_count() == 1
    })
    .await;
    let text = first.metrics().render(0.0);
    assert_eq!(
        series(&text, "clusterf_ops_applied_total{kind=\"add_dest\"}"),
        1.0
    );
    first.stop().await.unwrap();
    // Stopping leaves the rules in place.
    assert_eq!(kernel.table().dest_count(), 1);

    let second = Daemon::start(
        options(dir.path(), Some(&etcd), watch_args()),
        Box::new(kernel.clone()),
    )
    .await
    .unwrap();
    eventually(Duration::from_secs(10), "the startup pass", || {
        second.status().passes_ok >= 1
    })
    .await;
    assert_eq!(second.status().last_ops, 0);
    let text = second.metrics().render(0.0);
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("clusterf_ops_applied_total"))
            .count(),
        0,
        "{text}"
    );
    second.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_backend_drains_then_goes_and_the_drain_survives_a_restart() {
    let Some(etcd) = Etcd::start() else { return };
    let dir = config_dir();
    let state = dir.path().join("state/drains.json");
    std::fs::create_dir_all(state.parent().unwrap()).unwrap();
    put(&etcd, "services/test/backends/a", &backend("10.3.107.1")).await;
    put(&etcd, "services/test/backends/b", &backend("10.3.107.2")).await;
    let kernel = MemoryKernel::default();
    let mut args = watch_args();
    args.drain_timeout = Duration::from_secs(60);
    args.state_file = Some(state.clone());
    // The config dir holds the state file here; keep it out of the config.
    let cfg = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(cfg.path().join("services/test")).unwrap();
    std::fs::write(cfg.path().join("services/test/frontend"), FRONTEND).unwrap();
    let daemon = Daemon::start(
        options(cfg.path(), Some(&etcd), args.clone()),
        Box::new(kernel.clone()),
    )
    .await
    .unwrap();
    eventually(Duration::from_secs(10), "the first apply", || {
        kernel.table().dest_count() == 2
    })
    .await;

    // b has an open connection when its backend goes away.
    let svc = VIP.parse().unwrap();
    let b: SocketAddr = "10.3.107.2:1337".parse().unwrap();
    kernel
        .live
        .lock()
        .unwrap()
        .stats
        .entry(svc)
        .or_default()
        .insert(
            b,
            DestStats {
                active_conns: 1,
                ..DestStats::default()
            },
        );
    delete(&etcd, "services/test/backends/b").await;
    eventually(Duration::from_secs(5), "b at weight 0", || {
        dests(&kernel.table())
            == vec![
                ("10.3.107.1:1337".to_string(), 10),
                ("10.3.107.2:1337".to_string(), 0),
            ]
    })
    .await;
    eventually(Duration::from_secs(5), "the drain reported", || {
        daemon.status().drains_active == 1
    })
    .await;
    let saved = std::fs::read_to_string(&state).unwrap();
    assert!(saved.contains("10.3.107.2:1337"), "{saved}");
    let text = daemon.metrics().render(0.0);
    assert!(text.contains("clusterf_drains_active 1"), "{text}");

    // A restart keeps draining (nothing applied, the drain is resumed).
    daemon.stop().await.unwrap();
    let daemon = started(options(cfg.path(), Some(&etcd), args), &kernel).await;
    assert_eq!(daemon.status().last_ops, 0);
    assert_eq!(daemon.status().drains_active, 1);

    // The connection closes: the dest is deleted at the next recheck.
    kernel
        .live
        .lock()
        .unwrap()
        .stats
        .get_mut(&svc)
        .unwrap()
        .get_mut(&b)
        .unwrap()
        .active_conns = 0;
    eventually(Duration::from_secs(5), "b deleted", || {
        kernel.table().dest_count() == 1
    })
    .await;
    eventually(Duration::from_secs(5), "the drain record gone", || {
        std::fs::read_to_string(&state).is_ok_and(|s| !s.contains("10.3.107.2"))
    })
    .await;
    daemon.stop().await.unwrap();
    drop(dir);
}

/// Gives `dest` of the test service `n` active connections in the
/// in-memory kernel.
fn set_active(kernel: &MemoryKernel, dest: &str, n: u32) {
    let svc = VIP.parse().unwrap();
    let dest: SocketAddr = dest.parse().unwrap();
    kernel
        .live
        .lock()
        .unwrap()
        .stats
        .entry(svc)
        .or_default()
        .entry(dest)
        .or_default()
        .active_conns = n;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_state_file_is_refused_at_start_and_a_failed_save_does_not_stop_drains() {
    let dir = config_dir();
    let backends = write_backends(dir.path(), &["10.3.107.1", "10.3.107.2"]);
    let state_dir = tempfile::tempdir().unwrap();

    // A state file in a directory that does not exist: refused at start.
    let mut args = watch_args();
    args.drain_timeout = Duration::from_secs(1);
    args.state_file = Some(state_dir.path().join("nonexistent/drains.json"));
    let kernel = MemoryKernel::default();
    let e = match Daemon::start(
        options(dir.path(), None, args.clone()),
        Box::new(kernel.clone()),
    )
    .await
    {
        Ok(_) => panic!("started with an unwritable --state-file"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        e.starts_with("--state-file ") && e.contains("cannot write in"),
        "{e}"
    );

    // Writable at start, unwritable later (a directory where the file
    // goes): the drain still ends at its timeout, the error is counted.
    let state = state_dir.path().join("drains.json");
    args.state_file = Some(state.clone());
    let daemon = started(options(dir.path(), None, args), &kernel).await;
    assert_eq!(kernel.table().dest_count(), 2);
    std::fs::create_dir(&state).unwrap();
    std::fs::write(state.join("keep"), "").unwrap();
    set_active(&kernel, "10.3.107.2:1337", 1);
    std::fs::remove_file(backends.join("b")).unwrap();
    eventually(Duration::from_secs(5), "b at weight 0", || {
        dests(&kernel.table())
            == vec![
                ("10.3.107.1:1337".to_string(), 10),
                ("10.3.107.2:1337".to_string(), 0),
            ]
    })
    .await;
    eventually(
        Duration::from_secs(5),
        "b deleted at the drain timeout",
        || kernel.table().dest_count() == 1,
    )
    .await;
    let text = daemon.metrics().render(0.0);
    assert!(
        series(&text, "clusterf_errors_total{source=\"state\"}") >= 1.0,
        "{text}"
    );
    eventually(Duration::from_secs(5), "no drain reported", || {
        daemon.status().drains_active == 0
    })
    .await;
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_that_ends_is_not_a_drift_correction() {
    let dir = config_dir();
    let backends = write_backends(dir.path(), &["10.3.107.1", "10.3.107.2"]);
    let mut args = watch_args();
    args.drain_timeout = Duration::from_secs(60);
    let kernel = MemoryKernel::default();
    let daemon = started(options(dir.path(), None, args), &kernel).await;
    set_active(&kernel, "10.3.107.2:1337", 1);
    std::fs::remove_file(backends.join("b")).unwrap();
    eventually(Duration::from_secs(5), "the drain reported", || {
        daemon.status().drains_active == 1
    })
    .await;
    // The last connection closes: the dest goes at the next recheck.
    set_active(&kernel, "10.3.107.2:1337", 0);
    eventually(Duration::from_secs(5), "b deleted", || {
        kernel.table().dest_count() == 1
    })
    .await;
    eventually(Duration::from_secs(5), "no drain reported", || {
        daemon.status().drains_active == 0
    })
    .await;
    let text = daemon.metrics().render(0.0);
    assert_eq!(
        series(&text, "clusterf_drift_corrections_total"),
        0.0,
        "{text}"
    );
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_etcd_values_are_counted_as_etcd_diagnostics() {
    let Some(etcd) = Etcd::start() else { return };
    let dir = config_dir();
    let kernel = MemoryKernel::default();
    let daemon = started(options(dir.path(), Some(&etcd), watch_args()), &kernel).await;
    let gauge = |d: &Daemon| {
        series(
            &d.metrics().render(0.0),
            "clusterf_diagnostics{source=\"etcd\",severity=\"warning\"}",
        )
    };
    for i in 0..5 {
        put(
            &etcd,
            &format!("services/test/backends/bad{i}"),
            "{not json",
        )
        .await;
    }
    put(&etcd, "services/test/backends/good", &backend("10.3.107.1")).await;
    eventually(Duration::from_secs(5), "the good backend applied", || {
        kernel.table().dest_count() == 1
    })
    .await;
    eventually(Duration::from_secs(5), "5 etcd warnings counted", || {
        gauge(&daemon) == 5.0
    })
    .await;
    delete(&etcd, "services/test/backends/bad0").await;
    eventually(Duration::from_secs(5), "4 etcd warnings counted", || {
        gauge(&daemon) == 4.0
    })
    .await;
    let text = daemon.metrics().render(0.0);
    assert_eq!(
        series(
            &text,
            "clusterf_diagnostics{source=\"config\",severity=\"warning\"}"
        ),
        0.0
    );
    daemon.stop().await.unwrap();
}

/// The `clusterf_diagnostics` gauge of one source and severity.
fn diagnostics(daemon: &Daemon, source: &str, severity: &str) -> f64 {
    series(
        &daemon.metrics().render(0.0),
        &format!("clusterf_diagnostics{{source=\"{source}\",severity=\"{severity}\"}}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_file_that_does_not_parse_is_one_config_error_and_no_etcd_warning() {
    let Some(etcd) = Etcd::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("services")).unwrap();
    let web = dir.path().join("services/web.yaml");
    let good = "frontend: {ipv4: 10.107.107.107, tcp: 1337}\n";
    std::fs::write(&web, good).unwrap();
    put(&etcd, "services/web/backends/a", &backend("10.3.107.1")).await;
    put(&etcd, "services/web/backends/b", &backend("10.3.107.2")).await;
    let kernel = MemoryKernel::default();
    let daemon = started(options(dir.path(), Some(&etcd), watch_args()), &kernel).await;
    eventually(Duration::from_secs(5), "both backends applied", || {
        kernel.table().dest_count() == 2
    })
    .await;
    let applied = kernel.table();

    // A YAML syntax error (saved by rename, as editors do).
    let failed = daemon.status().passes_failed;
    save_by_rename(&web, &good.replace('}', ""));
    eventually(Duration::from_secs(5), "the config error counted", || {
        daemon.status().passes_failed > failed && diagnostics(&daemon, "config", "error") == 1.0
    })
    .await;
    assert_eq!(diagnostics(&daemon, "etcd", "warning"), 0.0);
    // An etcd change meanwhile: held back too, and not warned about.
    let failed = daemon.status().passes_failed;
    put(&etcd, "services/web/backends/c", &backend("10.3.107.3")).await;
    eventually(Duration::from_secs(5), "a pass with the new key", || {
        daemon.status().passes_failed > failed
    })
    .await;
    assert_eq!(diagnostics(&daemon, "etcd", "warning"), 0.0);
    assert_eq!(diagnostics(&daemon, "config", "error"), 1.0);
    assert_eq!(kernel.table(), applied);

    // Fixed: every backend, no problem left.
    save_by_rename(&web, good);
    eventually(
        Duration::from_secs(5),
        "recovery with three backends",
        || kernel.table().dest_count() == 3 && diagnostics(&daemon, "config", "error") == 0.0,
    )
    .await;
    assert_eq!(diagnostics(&daemon, "etcd", "warning"), 0.0);
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_on_exit_deletes_only_the_owned_services() {
    let dir = config_dir();
    let kernel = MemoryKernel::default();
    // Someone else's service, outside --own.
    let other: clusterf::model::ServiceKey = "tcp://10.200.0.1:80".parse().unwrap();
    kernel.live.lock().unwrap().state.services.insert(
        other,
        clusterf::model::Service::new(clusterf::model::ServiceAttrs::with_scheduler("wlc")),
    );
    let mut args = watch_args();
    args.flush_on_exit = true;
    let mut opts = options(dir.path(), None, args);
    opts.ownership = clusterf::plan::Ownership::parse(&["10.107.107.107/32".into()], &[]).unwrap();
    let daemon = started(opts, &kernel).await;
    let keys = |k: &MemoryKernel| -> Vec<String> {
        k.table().services.keys().map(|k| k.to_string()).collect()
    };
    assert_eq!(keys(&kernel), vec![VIP.to_string(), other.to_string()]);
    daemon.stop().await.unwrap();
    assert_eq!(keys(&kernel), vec![other.to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_directory_changes_apply_without_etcd() {
    // No etcd at all: a config directory alone, edited in place and by
    // rename, is followed through notify.
    let dir = config_dir();
    let kernel = MemoryKernel::default();
    let daemon = Daemon::start(
        options(dir.path(), None, watch_args()),
        Box::new(kernel.clone()),
    )
    .await
    .unwrap();
    eventually(Duration::from_secs(10), "the startup pass", || {
        kernel.table().services.len() == 1
    })
    .await;
    // Idle: no spurious passes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(daemon.status().passes_ok, 1);
    // SIGHUP: one more pass (the daemon's handler is installed by now).
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    eventually(Duration::from_secs(5), "a pass after SIGHUP", || {
        daemon.status().passes_ok == 2
    })
    .await;
    let backends = write_backends(dir.path(), &["10.3.107.1"]);
    let took = eventually(Duration::from_secs(5), "a new file applied", || {
        kernel.table().dest_count() == 1
    })
    .await;
    eprintln!("config file write -> kernel: {took:?}");
    save_by_rename(&backends.join("a"), &backend("10.3.107.9"));
    eventually(Duration::from_secs(5), "a rename-save applied", || {
        dests(&kernel.table()) == vec![("10.3.107.9:1337".to_string(), 10)]
    })
    .await;
    daemon.stop().await.unwrap();
}

/// Writes a config tree with one backend at `ip` into `root/name`.
fn config_tree(root: &Path, name: &str, ip: &str) -> std::path::PathBuf {
    let dir = root.join(name);
    let svc = dir.join("services/test");
    std::fs::create_dir_all(svc.join("backends")).unwrap();
    std::fs::write(svc.join("frontend"), FRONTEND).unwrap();
    std::fs::write(svc.join("backends/a"), backend(ip)).unwrap();
    dir
}

fn only_dest(kernel: &MemoryKernel, ip: &str) -> bool {
    dests(&kernel.table()) == vec![(format!("{ip}:1337"), 10)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swapped_symlink_and_a_replaced_directory_are_followed() {
    // The resync is an hour away: only the config watch can see these.
    let root = tempfile::tempdir().unwrap();
    config_tree(root.path(), "r1", "10.3.107.1");
    config_tree(root.path(), "r2", "10.3.107.2");
    let current = root.path().join("current");
    std::os::unix::fs::symlink("r1", &current).unwrap();
    let kernel = MemoryKernel::default();
    let daemon = started(options(&current, None, watch_args()), &kernel).await;
    assert!(only_dest(&kernel, "10.3.107.1"));

    // A release swap: `ln -sfn r2 cur.tmp && mv -T cur.tmp current`.
    let tmp = root.path().join("cur.tmp");
    std::os::unix::fs::symlink("r2", &tmp).unwrap();
    std::fs::rename(&tmp, &current).unwrap();
    eventually(
        Duration::from_secs(5),
        "the swapped-in tree applied",
        || only_dest(&kernel, "10.3.107.2"),
    )
    .await;
    // And the watch is on r2 now: an edit inside it is seen.
    save_by_rename(
        &root.path().join("r2/services/test/backends/a"),
        &backend("10.3.107.3"),
    );
    eventually(
        Duration::from_secs(5),
        "an edit in the new target applied",
        || only_dest(&kernel, "10.3.107.3"),
    )
    .await;
    daemon.stop().await.unwrap();

    // A plain directory replaced: `rm -rf` and a fresh copy.
    let plain = config_tree(root.path(), "plain", "10.3.108.1");
    let kernel = MemoryKernel::default();
    let daemon = started(options(&plain, None, watch_args()), &kernel).await;
    assert!(only_dest(&kernel, "10.3.108.1"));
    std::fs::remove_dir_all(&plain).unwrap();
    config_tree(root.path(), "plain", "10.3.108.2");
    eventually(Duration::from_secs(5), "the fresh copy applied", || {
        only_dest(&kernel, "10.3.108.2")
    })
    .await;
    std::fs::write(
        plain.join("services/test/backends/a"),
        backend("10.3.108.3"),
    )
    .unwrap();
    eventually(
        Duration::from_secs(5),
        "an edit in the fresh copy applied",
        || only_dest(&kernel, "10.3.108.3"),
    )
    .await;
    daemon.stop().await.unwrap();
}

// --- the VM scenario ------------------------------------------------------------

/// `apply --watch` against the real kernel in the qemu guest, with etcd
/// running inside the guest: tests/vm/scenarios/watch.sh (its header says
/// what it checks). Fails in CI without qemu, the guest or etcd.
#[test]
fn watch_scenario_in_the_vm() {
    support::vm_scenario_with_etcd("watch", env!("CARGO_BIN_EXE_clusterf"));
}

fn git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.net"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_git_hook_polls_the_repository_now() {
    if support::which("git").is_none() {
        support::missing("git (to make a test repository)");
        return;
    }
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path();
    git(r, &["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(r.join("services/test/backends")).unwrap();
    std::fs::write(r.join("services/test/frontend"), FRONTEND).unwrap();
    git(r, &["add", "."]);
    git(r, &["commit", "-q", "-m", "frontend"]);

    let s = Sources::try_parse_from([
        "t",
        "--config-repo",
        &r.display().to_string(),
        "--ref",
        "main",
    ])
    .unwrap();
    let mut args = watch_args();
    args.poll = Duration::from_secs(3600);
    args.flush_on_exit = true;
    let kernel = MemoryKernel::default();
    let daemon = Daemon::start(
        resolve(&s.config, &s.overlay, Default::default(), &args).unwrap(),
        Box::new(kernel.clone()),
    )
    .await
    .unwrap();
    let addr = daemon.metrics_addr().unwrap();
    eventually(Duration::from_secs(10), "the first commit applied", || {
        kernel.table().services.len() == 1
    })
    .await;

    std::fs::write(r.join("services/test/backends/a"), backend("10.3.107.1")).unwrap();
    git(r, &["add", "."]);
    git(r, &["commit", "-q", "-m", "backend a"]);
    // The next poll is an hour away: only the hook makes it happen now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(kernel.table().dest_count(), 0);
    assert_eq!(http(addr, "POST", "/hooks/git").0, 202);
    eventually(Duration::from_secs(10), "the new commit applied", || {
        kernel.table().dest_count() == 1
    })
    .await;
    let text = http(addr, "GET", "/metrics").1;
    assert!(!text.contains("git_commit=\"\""), "{text}");
    assert!(series(&text, "clusterf_source_staleness_seconds{source=\"git\"}") < 60.0);

    // --flush-on-exit empties the table when the daemon stops.
    daemon.stop().await.unwrap();
    assert!(kernel.table().services.is_empty());
}
