//! The daemon's VIP step (`apply --watch --vip-interface`) on the
//! in-memory kernel, whose VIP interface journals every VIP change and
//! every applied IPVS op in order: a real config directory watched with
//! notify, the real metrics listener. The real kernel's interface is
//! exercised in the VM: tests/vm/scenarios/vips.sh.

#[path = "support/daemon.rs"]
mod support_daemon;
#[path = "support/http.rs"]
mod support_http;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use clusterf::cli::watch::WatchArgs;
use clusterf::daemon::{Daemon, MemoryKernel, Options};
use clusterf::model::{Service, ServiceAttrs, ServiceKey};
use clusterf::plan::Ownership;
use support_daemon::{Sources, eventually, started};

const V4: &str = "198.51.100.10";
const V6: &str = "2001:db8::10";
const SECOND: Duration = Duration::from_secs(10);

fn options(dir: &Path, watch: WatchArgs) -> Options {
    let mut opts = Sources::options(&["--config-path", &dir.display().to_string()], &watch);
    opts.backoff_initial = Duration::from_millis(50);
    // 10.9.9.9, in the kernel, is not ours.
    opts.ownership =
        Ownership::parse(&["198.51.100.0/24".into(), "2001:db8::/64".into()], &[]).unwrap();
    opts
}

fn watch_args() -> WatchArgs {
    WatchArgs {
        metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
        resync: Duration::from_secs(3600),
        vip_interface: Some("clusterf0".into()),
        ..WatchArgs::default()
    }
}

fn write_service(dir: &Path, name: &str, frontend: &str) {
    let svc = dir.join("services").join(name);
    std::fs::create_dir_all(&svc).unwrap();
    std::fs::write(svc.join("frontend"), frontend).unwrap();
}

fn config_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_service(
        dir.path(),
        "web4",
        &format!(r#"{{"ipv4": "{V4}", "tcp": 80}}"#),
    );
    write_service(
        dir.path(),
        "web6",
        &format!(r#"{{"ipv6": "{V6}", "tcp": 443}}"#),
    );
    dir
}

/// A kernel holding a service that is not ours (outside --own).
fn kernel() -> MemoryKernel {
    let kernel = MemoryKernel::default();
    let theirs: ServiceKey = "tcp://10.9.9.9:80".parse().unwrap();
    let service = Service::new(ServiceAttrs::with_scheduler("wlc"));
    kernel
        .live
        .lock()
        .unwrap()
        .state
        .services
        .insert(theirs, service);
    kernel
}

/// The body of a GET of `path` on the daemon's metrics listener.
async fn get(daemon: &Daemon, path: &'static str) -> String {
    let addr = daemon.metrics_addr().unwrap();
    tokio::task::spawn_blocking(move || support_http::http(addr, "GET", path).1)
        .await
        .unwrap()
}

fn vips(kernel: &MemoryKernel) -> BTreeSet<IpAddr> {
    kernel.vips.lock().unwrap().addrs.clone()
}

fn ips(a: &[&str]) -> BTreeSet<IpAddr> {
    a.iter().map(|a| a.parse().unwrap()).collect()
}

fn journal(kernel: &MemoryKernel) -> Vec<String> {
    kernel.vips.lock().unwrap().journal.clone()
}

fn position(journal: &[String], line: &str) -> usize {
    journal
        .iter()
        .position(|l| l == line)
        .unwrap_or_else(|| panic!("no {line:?} in {journal:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vips_of_owned_services_come_after_their_service_and_go_before_it() {
    let dir = config_dir();
    let kernel = kernel();
    let daemon = started(options(dir.path(), watch_args()), &kernel).await;
    assert_eq!(vips(&kernel), ips(&[V4, V6]), "10.9.9.9 is not ours");
    let j = journal(&kernel);
    for (vip, service) in [
        (V4, "tcp://198.51.100.10:80"),
        (V6, "tcp://[2001:db8::10]:443"),
    ] {
        let added = position(&j, &format!("add service {service}"));
        assert!(added < position(&j, &format!("+ vip {vip}")), "{j:#?}");
    }
    let text = get(&daemon, "/metrics").await;
    assert!(
        text.contains("clusterf_vips{state=\"desired\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("clusterf_vips{state=\"present\"} 2"),
        "{text}"
    );

    std::fs::remove_dir_all(dir.path().join("services/web4")).unwrap();
    eventually(SECOND, "the VIP of the removed service gone", || {
        vips(&kernel) == ips(&[V6])
    })
    .await;
    eventually(SECOND, "the service gone", || {
        kernel.table().services.len() == 2
    })
    .await;
    let j = journal(&kernel);
    let removed = position(&j, &format!("- vip {V4}"));
    assert!(
        removed < position(&j, "delete service tcp://198.51.100.10:80"),
        "{j:#?}"
    );
    // The status page's last applied plan reads in the same order.
    let page = get(&daemon, "/status.json").await;
    let plan: serde_json::Value = serde_json::from_str(&page).unwrap();
    let text = plan["last_plan"]["text"].as_str().unwrap_or_default();
    let vip_line = text.find(&format!("- vip {V4}/32 on "));
    let service_line = text.find("- service tcp://198.51.100.10:80");
    assert!(
        vip_line.is_some() && vip_line < service_line,
        "last plan: {text}"
    );
    // And it lists the interface's VIPs as the pass left them.
    let rows = plan["vips"]["vips"].as_array().cloned().unwrap_or_default();
    let shown: Vec<(String, bool, bool)> = rows
        .iter()
        .map(|r| {
            let vip = r["vip"].as_str().unwrap_or_default().to_string();
            (vip, r["desired"] == true, r["present"] == true)
        })
        .collect();
    assert_eq!(shown, [(format!("{V6}/128"), true, true)], "{page}");
    daemon.stop().await.unwrap();
    assert_eq!(vips(&kernel), ips(&[V6]), "no --withdraw-on-exit: kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_nothing_changed_keeps_the_vips_and_withdraw_on_exit_removes_them() {
    let dir = config_dir();
    let kernel = kernel();
    let daemon = started(options(dir.path(), watch_args()), &kernel).await;
    daemon.stop().await.unwrap();
    assert_eq!(vips(&kernel), ips(&[V4, V6]));

    kernel.vips.lock().unwrap().journal.clear();
    let mut args = watch_args();
    args.withdraw_on_exit = true;
    let daemon = started(options(dir.path(), args), &kernel).await;
    assert_eq!(journal(&kernel), Vec::<String>::new(), "no flap on restart");
    assert_eq!(vips(&kernel), ips(&[V4, V6]));
    daemon.stop().await.unwrap();
    assert_eq!(vips(&kernel), ips(&[]), "--withdraw-on-exit");
    assert_eq!(kernel.table().services.len(), 3, "the services stay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_static_past_withdraw_after_withdraws_and_the_next_good_pass_restores() {
    let dir = config_dir();
    let kernel = kernel();
    let mut args = watch_args();
    args.withdraw_after = Some(Duration::from_millis(400));
    let daemon = started(options(dir.path(), args), &kernel).await;
    assert_eq!(vips(&kernel), ips(&[V4, V6]));

    let frontend = dir.path().join("services/web6/frontend");
    std::fs::write(&frontend, "{not json").unwrap();
    eventually(SECOND, "a failed pass", || {
        daemon.status().passes_failed >= 1
    })
    .await;
    assert_eq!(vips(&kernel), ips(&[V4, V6]), "fail static: kept at first");
    let took = eventually(SECOND, "the withdrawal", || vips(&kernel).is_empty()).await;
    assert!(
        took >= Duration::from_millis(200),
        "withdrawn after {took:?}"
    );
    assert_eq!(kernel.table().services.len(), 3, "the IPVS table stays");
    let text = get(&daemon, "/metrics").await;
    assert!(text.contains("clusterf_vip_withdrawals_total 1"), "{text}");

    std::fs::write(&frontend, format!(r#"{{"ipv6": "{V6}", "tcp": 443}}"#)).unwrap();
    eventually(SECOND, "the VIPs back", || vips(&kernel) == ips(&[V4, V6])).await;
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_the_kernel_refuses_neither_holds_back_other_vips_nor_withdraws_them() {
    let dir = config_dir();
    let kernel = kernel();
    let mut args = watch_args();
    args.withdraw_after = Some(Duration::from_millis(300));
    let daemon = started(options(dir.path(), args), &kernel).await;
    assert_eq!(vips(&kernel), ips(&[V4, V6]));

    // Every op of `bad` is refused, as the kernel refuses an address it
    // cannot use; `new` comes with it.
    let bad: ServiceKey = "tcp://198.51.100.30:80".parse().unwrap();
    kernel.refuse.lock().unwrap().insert(bad);
    write_service(dir.path(), "bad", r#"{"ipv4": "198.51.100.30", "tcp": 80}"#);
    write_service(dir.path(), "new", r#"{"ipv4": "198.51.100.20", "tcp": 80}"#);
    let all = ips(&[V4, V6, "198.51.100.20"]);
    eventually(SECOND, "the new service's VIP", || vips(&kernel) == all).await;
    eventually(SECOND, "a pass failed for the refused service", || {
        daemon.status().passes_failed >= 1
    })
    .await;
    // Well past --withdraw-after, passes still failing for `bad` alone.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let failed = daemon.status().passes_failed;
    assert!(failed >= 2, "the refused service keeps failing: {failed}");
    assert_eq!(vips(&kernel), all, "bad's VIP not added");
    let text = get(&daemon, "/metrics").await;
    assert!(
        text.contains("clusterf_vip_withdrawals_total 0"),
        "no withdrawal: {text}"
    );

    kernel.refuse.lock().unwrap().clear();
    let with_bad = ips(&[V4, V6, "198.51.100.20", "198.51.100.30"]);
    eventually(SECOND, "bad's VIP once it applies", || {
        vips(&kernel) == with_bad
    })
    .await;
    daemon.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interface_of_that_name_that_is_not_ours_stops_the_start_untouched() {
    let dir = config_dir();
    let kernel = kernel();
    {
        let mut v = kernel.vips.lock().unwrap();
        v.name = Some("clusterf0".into());
        v.foreign = true;
        v.addrs = ips(&["192.0.2.1"]);
    }
    let err = match Daemon::start(options(dir.path(), watch_args()), Box::new(kernel.clone())).await
    {
        Ok(_) => panic!("started on an interface that is not ours"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("clusterf0") && err.contains("not ours"),
        "{err}"
    );
    assert_eq!(vips(&kernel), ips(&["192.0.2.1"]));
    assert_eq!(kernel.table().services.len(), 1, "nothing applied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_on_exit_withdraws_each_vip_before_deleting_its_service() {
    let dir = config_dir();
    let kernel = kernel();
    let mut args = watch_args();
    args.flush_on_exit = true;
    let daemon = started(options(dir.path(), args), &kernel).await;
    assert_eq!(vips(&kernel), ips(&[V4, V6]));
    daemon.stop().await.unwrap();
    assert_eq!(vips(&kernel), ips(&[]));
    assert_eq!(kernel.table().services.len(), 1, "only theirs is left");
    let j = journal(&kernel);
    let removed = position(&j, &format!("- vip {V4}"));
    assert!(
        removed < position(&j, "delete service tcp://198.51.100.10:80"),
        "{j:#?}"
    );
}
