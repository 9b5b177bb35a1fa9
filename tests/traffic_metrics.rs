//! Traffic metrics in the daemon (`apply --watch --metrics-listen`): the
//! traffic reader reads the kernel's counters on its own schedule and
//! `/metrics` shows them per service and, with `--metrics-per-dest`, per
//! dest. Here the in-memory kernel holds the counters a test sets; the real
//! kernel's counters after real requests: tests/vm/scenarios/traffic-metrics.sh.

#[path = "support/daemon.rs"]
mod support_daemon;
#[path = "support/http.rs"]
mod support_http;

use std::path::Path;
use std::time::Duration;

use clusterf::cli::watch::WatchArgs;
use clusterf::daemon::{MemoryKernel, Options};
use clusterf::model::ServiceKey;
use clusterf::model::traffic::Traffic;
use support_daemon::{Sources, eventually, started};

fn options(config_dir: &Path, watch: WatchArgs) -> Options {
    Sources::options(
        &["--config-path", &config_dir.display().to_string()],
        &watch,
    )
}

fn watch_args(per_dest: bool) -> WatchArgs {
    WatchArgs {
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        resync: Duration::from_secs(3600),
        traffic_interval: Duration::from_millis(50),
        metrics_per_dest: per_dest,
        ..WatchArgs::default()
    }
}

fn write_service(dir: &Path, name: &str, vip: &str) {
    std::fs::create_dir_all(dir.join("services")).unwrap();
    let yaml = format!(
        "frontend: {{ipv4: {vip}, tcp: 80}}\nbackends:\n  a: {{ipv4: 10.1.0.1, tcp: 8080}}\n  b: {{ipv4: 10.1.0.2, tcp: 8080}}\n"
    );
    std::fs::write(dir.join(format!("services/{name}.yaml")), yaml).unwrap();
}

fn counts(connections: u64, bytes_out: u64) -> Traffic {
    Traffic {
        connections,
        bytes_out,
        ..Traffic::default()
    }
}

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kernels_counters_reach_metrics_per_service_and_per_dest_and_leave_with_the_service() {
    let dir = tempfile::tempdir().unwrap();
    write_service(dir.path(), "web", "10.0.0.1");
    let kernel = MemoryKernel::default();
    let daemon = started(options(dir.path(), watch_args(true)), &kernel).await;
    let web: ServiceKey = "tcp://10.0.0.1:80".parse().unwrap();
    let svc = "service=\"tcp://10.0.0.1:80\"";

    // A service the kernel has just got: zeros, as the kernel's would be.
    eventually(WAIT, "zero counters", || {
        daemon.metrics().render(0.0).contains(&format!(
            "clusterf_ipvs_service_connections_total{{{svc}}} 0\n"
        ))
    })
    .await;

    {
        let mut t = kernel.traffic.lock().unwrap();
        t.services.insert(web, counts(7, 9000));
        let dest = "10.1.0.2:8080".parse().unwrap();
        t.dests
            .entry(web)
            .or_default()
            .insert(dest, counts(3, 4000));
    }
    let want = [
        format!("clusterf_ipvs_service_connections_total{{{svc}}} 7"),
        format!("clusterf_ipvs_service_bytes_total{{{svc},direction=\"out\"}} 9000"),
        format!("clusterf_ipvs_dest_connections_total{{{svc},dest=\"10.1.0.2:8080\"}} 3"),
        format!("clusterf_ipvs_dest_connections_total{{{svc},dest=\"10.1.0.1:8080\"}} 0"),
        format!(
            "clusterf_ipvs_dest_bytes_total{{{svc},dest=\"10.1.0.2:8080\",direction=\"out\"}} 4000"
        ),
    ];
    let addr = daemon.metrics_addr().unwrap();
    let scrape = move || support_http::http(addr, "GET", "/metrics");
    eventually(WAIT, "the counters set", || {
        let (status, text) = scrape();
        status == 200 && want.iter().all(|w| text.lines().any(|l| l == w))
    })
    .await;

    // The service leaves the config (another one stays: a plan deleting
    // every owned service is refused), then the kernel, then /metrics.
    write_service(dir.path(), "api", "10.0.0.2");
    let api: ServiceKey = "tcp://10.0.0.2:80".parse().unwrap();
    eventually(WAIT, "the other service in the kernel", || {
        kernel.table().services.contains_key(&api)
    })
    .await;
    std::fs::remove_file(dir.path().join("services/web.yaml")).unwrap();
    eventually(WAIT, "the service gone from the kernel", || {
        !kernel.table().services.contains_key(&web)
    })
    .await;
    eventually(WAIT, "the service's series gone", || {
        let text = scrape().1;
        !text.contains("10.0.0.1:80") && text.contains("service=\"tcp://10.0.0.2:80\"")
    })
    .await;
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_per_dest_only_services_are_exported_and_interval_zero_reads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write_service(dir.path(), "web", "10.0.0.1");
    let kernel = MemoryKernel::default();
    let daemon = started(options(dir.path(), watch_args(false)), &kernel).await;
    eventually(WAIT, "service counters", || {
        daemon
            .metrics()
            .render(0.0)
            .contains("clusterf_ipvs_service_connections_total{service=\"tcp://10.0.0.1:80\"} 0\n")
    })
    .await;
    assert!(!daemon.metrics().render(0.0).contains("clusterf_ipvs_dest_"));
    daemon.stop().await.unwrap();

    let off = WatchArgs {
        traffic_interval: Duration::ZERO,
        ..watch_args(false)
    };
    let daemon = started(options(dir.path(), off), &kernel).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = daemon.metrics().render(0.0);
    assert!(!text.contains("clusterf_ipvs_"), "{text}");
    assert!(text.contains("clusterf_traffic_reads_total{outcome=\"ok\"} 0\n"));
    daemon.stop().await.unwrap();
}
