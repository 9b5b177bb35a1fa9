//! `clusterf docker` against a real etcd (started per test on loopback, see
//! `support/etcd.rs`): the reconcile-to-etcd side driven with synthetic
//! container facts, so no Docker Engine is needed here. The real Engine is
//! exercised in a VM by `tests/vm/docker/` (see `docker_engine_in_vm`).
//!
//! Without the etcd binary these tests fail when `CI` is set and print a
//! loud SKIP otherwise.

#[path = "support/etcd.rs"]
mod support;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use clusterf::docker::keys::{self, KeySet, RouteAd};
use clusterf::docker::labels::{self, Container, NetworkAddrs, Options, Port, State};
use clusterf::docker::store::{Start, Store};
use clusterf::etcd::proto::EventType;
use clusterf::source::etcd::Settings;
use support::Etcd;

const PREFIX: &str = "/clusterf";
const WEB: &str = "aaaa000000000000000000000000000000000000000000000000000000000001";
const DNS: &str = "bbbb000000000000000000000000000000000000000000000000000000000002";

fn settings(etcd: &Etcd) -> Settings {
    Settings::new(vec![etcd.url()], PREFIX).unwrap()
}

/// A running container on the bridge.
fn container(
    id: &str,
    name: &str,
    ip: &str,
    labels: &[(&str, &str)],
    exposed: &[Port],
) -> Container {
    let mut c = Container::new(id, name);
    c.labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    c.exposed = exposed.iter().copied().collect();
    c.networks.insert(
        "bridge".into(),
        NetworkAddrs {
            ipv4: Some(ip.parse().unwrap()),
            ipv6: None,
        },
    );
    c
}

fn web() -> Container {
    container(
        WEB,
        "web",
        "172.17.0.2",
        &[
            ("net.qmsk.clusterf.service", "web"),
            ("net.qmsk.clusterf.backend.tcp", "8080"),
        ],
        &[Port::tcp(8080)],
    )
}

fn dns() -> Container {
    container(
        DNS,
        "dns",
        "172.17.0.3",
        &[
            ("net.qmsk.clusterf.service", "dns web"),
            ("net.qmsk.clusterf.backend:dns.udp", "53"),
            ("net.qmsk.clusterf.backend:web.tcp", "80"),
            ("net.qmsk.clusterf.backend.weight", "20"),
        ],
        &[Port::udp(53), Port::tcp(80)],
    )
}

/// The key set for `containers`, as the publisher loop computes it.
fn desired(store: &Store, containers: &[Container], route: Option<&RouteAd>) -> KeySet {
    let t = labels::translate(containers, &Options::default(), &store.published_backends());
    keys::desired(&t.backends, route, Some(store.marker()))
}

/// Every key below the prefix: path -> (value, lease, mod revision).
async fn dump(etcd: &Etcd) -> BTreeMap<String, (String, i64, i64)> {
    let mut client = etcd.client().await;
    let resp = client.get_prefix(format!("{PREFIX}/")).await.unwrap();
    resp.kvs
        .iter()
        .map(|kv| {
            (
                std::str::from_utf8(&kv.key).unwrap()[PREFIX.len() + 1..].to_string(),
                (
                    std::str::from_utf8(&kv.value).unwrap().to_string(),
                    kv.lease,
                    kv.mod_revision,
                ),
            )
        })
        .collect()
}

/// path -> value of the published backends and routes (no marker).
async fn values(etcd: &Etcd) -> BTreeMap<String, String> {
    dump(etcd)
        .await
        .into_iter()
        .filter(|(k, _)| !k.starts_with(".publishers/"))
        .map(|(k, (v, _, _))| (k, v))
        .collect()
}

fn web_key() -> String {
    format!("services/web/backends/{WEB}")
}

#[tokio::test(flavor = "multi_thread")]
async fn publishes_drains_and_deletes() {
    let Some(etcd) = Etcd::start() else { return };
    let (mut store, start) = Store::open(settings(&etcd), "host-a", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(start, Start::Fresh);

    let mut containers = vec![web(), dns()];
    let applied = store
        .reconcile(&desired(&store, &containers, None))
        .await
        .unwrap();
    assert_eq!((applied.puts, applied.deletes), (4, 0));
    let want: BTreeMap<String, String> = [
        (
            format!("services/dns/backends/{DNS}"),
            r#"{"ipv4":"172.17.0.3","udp":53,"weight":20}"#,
        ),
        (
            format!("services/web/backends/{DNS}"),
            r#"{"ipv4":"172.17.0.3","tcp":80,"weight":20}"#,
        ),
        (web_key(), r#"{"ipv4":"172.17.0.2","tcp":8080,"weight":10}"#),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_string()))
    .collect();
    assert_eq!(values(&etcd).await, want);
    // Every key, the marker included, is on the one lease.
    let all = dump(&etcd).await;
    assert_eq!(all.len(), 4);
    assert!(all.values().all(|(_, lease, _)| *lease == store.lease()));
    assert_eq!(
        keys::parse_marker(all[".publishers/host-a"].0.as_bytes()),
        Some(store.lease())
    );

    // Nothing changed: nothing written.
    let applied = store
        .reconcile(&desired(&store, &containers, None))
        .await
        .unwrap();
    assert_eq!((applied.puts, applied.deletes), (0, 0));

    // The web container stops: its address is gone, the backend drains.
    containers[0].state = State::Exited;
    containers[0]
        .networks
        .insert("bridge".into(), NetworkAddrs::default());
    let applied = store
        .reconcile(&desired(&store, &containers, None))
        .await
        .unwrap();
    assert_eq!((applied.puts, applied.deletes), (1, 0));
    assert_eq!(
        values(&etcd).await[&web_key()],
        r#"{"ipv4":"172.17.0.2","tcp":8080,"weight":0}"#
    );

    // Removed: deleted.
    containers.remove(0);
    let applied = store
        .reconcile(&desired(&store, &containers, None))
        .await
        .unwrap();
    assert_eq!((applied.puts, applied.deletes), (0, 1));
    assert!(!values(&etcd).await.contains_key(&web_key()));
    assert_eq!(values(&etcd).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn other_keys_are_never_touched() {
    let Some(etcd) = Etcd::start() else { return };
    let mut client = etcd.client().await;
    // A hand-written backend and another publisher's.
    client
        .put(
            format!("{PREFIX}/services/web/backends/manual"),
            r#"{"ipv4":"10.0.0.1","tcp":80}"#,
        )
        .await
        .unwrap();
    let (mut other, _) = Store::open(settings(&etcd), "host-b", Duration::from_secs(10))
        .await
        .unwrap();
    other
        .reconcile(&desired(&other, &[dns()], None))
        .await
        .unwrap();

    let (mut store, _) = Store::open(settings(&etcd), "host-a", Duration::from_secs(10))
        .await
        .unwrap();
    store
        .reconcile(&desired(&store, &[web()], None))
        .await
        .unwrap();
    store.reconcile(&desired(&store, &[], None)).await.unwrap();
    let v = values(&etcd).await;
    assert_eq!(
        v.keys().cloned().collect::<Vec<_>>(),
        vec![
            format!("services/dns/backends/{DNS}"),
            format!("services/web/backends/{DNS}"),
            "services/web/backends/manual".to_string(),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_neither_duplicates_nor_flaps() {
    let Some(etcd) = Etcd::start() else { return };
    let route = RouteAd::new(
        "host-a",
        "172.17.0.0/16".parse().unwrap(),
        Some("10.107.107.6".parse().unwrap()),
        Some(clusterf::model::Method::Masq),
    )
    .unwrap();
    let (mut store, _) = Store::open(settings(&etcd), "host-a", Duration::from_secs(10))
        .await
        .unwrap();
    let lease = store.lease();
    store
        .reconcile(&desired(&store, &[web(), dns()], Some(&route)))
        .await
        .unwrap();
    let before = dump(&etcd).await;
    assert_eq!(
        before["routes/host-a"].0,
        r#"{"Prefix":"172.17.0.0/16","Gateway":"10.107.107.6","IPVSMethod":"masq"}"#
    );

    // Watch everything from here on: a restart must not delete anything.
    let mut client = etcd.client().await;
    let rev = before.values().map(|(_, _, r)| *r).max().unwrap();
    let mut events = client
        .watch_prefix(format!("{PREFIX}/"), rev + 1)
        .await
        .unwrap();

    // The publisher dies (no revoke) and comes back within the TTL.
    drop(store);
    let (mut store, start) = Store::open(settings(&etcd), "host-a", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(start, Start::Adopted);
    assert_eq!(store.lease(), lease);
    assert_eq!(store.current().len(), before.len());
    let applied = store
        .reconcile(&desired(&store, &[web(), dns()], Some(&route)))
        .await
        .unwrap();
    assert_eq!((applied.puts, applied.deletes), (0, 0));
    assert_eq!(dump(&etcd).await, before, "keys rewritten on restart");

    // Restarted while a container went away: exactly that key goes.
    drop(store);
    let (mut store, _) = Store::open(settings(&etcd), "host-a", Duration::from_secs(10))
        .await
        .unwrap();
    let applied = store
        .reconcile(&desired(&store, &[dns()], Some(&route)))
        .await
        .unwrap();
    assert_eq!((applied.puts, applied.deletes), (0, 1));

    // Restarted with another TTL: the keys move to a new lease, without
    // ever disappearing; the old lease is revoked.
    drop(store);
    let (mut store, start) = Store::open(settings(&etcd), "host-a", Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(start, Start::Replaced);
    assert_ne!(store.lease(), lease);
    store
        .reconcile(&desired(&store, &[dns()], Some(&route)))
        .await
        .unwrap();
    let after = dump(&etcd).await;
    assert_eq!(after.len(), before.len() - 1);
    assert!(after.values().all(|(_, l, _)| *l == store.lease()));
    assert_eq!(after["routes/host-a"].0, before["routes/host-a"].0);
    let mut ttl_client = etcd.client().await;
    let old = ttl_client.lease_time_to_live(lease).await.unwrap();
    assert!(old.ttl <= 0, "the replaced lease still lives");

    // Collect the events: the only delete is the removed container's.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut deletes = Vec::new();
    let mut puts = 0;
    while puts < after.len() && Instant::now() < deadline {
        let Ok(Ok(Some(resp))) =
            tokio::time::timeout(Duration::from_secs(1), events.message()).await
        else {
            continue;
        };
        for ev in &resp.events {
            let key = std::str::from_utf8(&ev.kv.as_ref().unwrap().key)
                .unwrap()
                .to_string();
            match ev.r#type() {
                EventType::Delete => deletes.push(key),
                EventType::Put => puts += 1,
            }
        }
    }
    assert_eq!(
        deletes,
        vec![format!("{PREFIX}/services/web/backends/{WEB}")],
        "keys flapped across restarts"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_publisher_keys_expire_after_the_ttl() {
    let Some(etcd) = Etcd::start() else { return };
    let (mut store, _) = Store::open(settings(&etcd), "host-a", Duration::from_secs(2))
        .await
        .unwrap();
    store
        .reconcile(&desired(&store, &[web(), dns()], None))
        .await
        .unwrap();
    // Kept alive, the keys outlive the TTL.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(store.keep_alive().await.unwrap());
    }
    assert_eq!(dump(&etcd).await.len(), 4);
    // Killed: no revoke, no keep-alive. Gone within TTL + a little.
    drop(store);
    let killed = Instant::now();
    while !dump(&etcd).await.is_empty() {
        assert!(
            killed.elapsed() < Duration::from_secs(6),
            "keys still there {:?} after the publisher died",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Not before the TTL ran out (they were just renewed).
    assert!(
        killed.elapsed() > Duration::from_millis(1000),
        "{:?}",
        killed.elapsed()
    );

    // A publisher starting after the expiry starts afresh.
    let (_store, start) = Store::open(settings(&etcd), "host-a", Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(start, Start::Fresh);
}

#[tokio::test(flavor = "multi_thread")]
async fn flush_revokes_and_a_lost_lease_is_republished() {
    let Some(etcd) = Etcd::start() else { return };
    let (mut store, _) = Store::open(settings(&etcd), "host-a", Duration::from_secs(10))
        .await
        .unwrap();
    store
        .reconcile(&desired(&store, &[web()], None))
        .await
        .unwrap();
    let old = store.lease();

    // Someone revokes the lease (or etcd lost it): the keys go, the next
    // keep-alive notices, and the next reconcile publishes everything again.
    etcd.client().await.lease_revoke(old).await.unwrap();
    assert!(values(&etcd).await.is_empty());
    assert!(!store.keep_alive().await.unwrap());
    assert_ne!(store.lease(), old);
    let applied = store
        .reconcile(&desired(&store, &[web()], None))
        .await
        .unwrap();
    assert_eq!((applied.puts, applied.deletes), (2, 0));
    assert_eq!(values(&etcd).await.len(), 1);

    // A key deleted behind the publisher's back comes back at the resync.
    etcd.client()
        .await
        .delete(format!("{PREFIX}/{}", web_key()))
        .await
        .unwrap();
    store.mark_stale();
    let applied = store
        .reconcile(&desired(&store, &[web()], None))
        .await
        .unwrap();
    assert_eq!((applied.puts, applied.deletes), (1, 0));

    // --flush-on-exit: everything goes at once.
    store.flush().await.unwrap();
    assert!(dump(&etcd).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn many_containers_go_out_in_bounded_transactions() {
    let Some(etcd) = Etcd::start() else { return };
    let (mut store, _) = Store::open(settings(&etcd), "host-a", Duration::from_secs(10))
        .await
        .unwrap();
    let containers: Vec<Container> = (0..150)
        .map(|i| {
            container(
                &format!("{i:064x}"),
                &format!("c{i}"),
                &format!("172.17.{}.{}", i / 200, i % 200 + 2),
                &[
                    ("net.qmsk.clusterf.service", "a b"),
                    ("net.qmsk.clusterf.backend.tcp", "80"),
                ],
                &[Port::tcp(80)],
            )
        })
        .collect();
    let applied = store
        .reconcile(&desired(&store, &containers, None))
        .await
        .unwrap();
    assert_eq!(applied.puts, 301);
    assert!(applied.transactions >= 3, "{applied:?}");
    assert_eq!(values(&etcd).await.len(), 300);
    let applied = store.reconcile(&desired(&store, &[], None)).await.unwrap();
    assert_eq!(applied.deletes, 300);
    assert!(values(&etcd).await.is_empty());
}

/// One `clusterf` run.
fn clusterf(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_clusterf"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("DOCKER_HOST")
        .output()
        .expect("run clusterf");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What the publisher wrote is what the frontend renders.
#[tokio::test(flavor = "multi_thread")]
async fn render_sees_what_was_published() {
    let Some(etcd) = Etcd::start() else { return };
    let repo = etcd.scratch().join("repo");
    fs::create_dir_all(repo.join("services/web")).unwrap();
    fs::write(
        repo.join("services/web/frontend"),
        r#"{"ipv4": "10.107.107.107", "tcp": 80}"#,
    )
    .unwrap();
    let (mut store, _) = Store::open(settings(&etcd), "host-a", Duration::from_secs(10))
        .await
        .unwrap();
    store
        .reconcile(&desired(&store, &[web(), dns()], None))
        .await
        .unwrap();
    let render = |repo: &Path| {
        let url = etcd.url();
        clusterf(&[
            "render",
            "--config-path",
            repo.to_str().unwrap(),
            "--etcd",
            &url,
            "--output",
            "ipvsadm",
        ])
    };
    let (code, stdout, stderr) = tokio::task::block_in_place(|| render(&repo));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        "-A -t 10.107.107.107:80 -s wlc\n\
         -a -t 10.107.107.107:80 -r 172.17.0.2:8080 -m -w 10\n\
         -a -t 10.107.107.107:80 -r 172.17.0.3:80 -m -w 20\n",
        "{stderr}"
    );
    // The marker is a dot-file to the overlay reader: no warning about it.
    assert!(!stderr.contains("publishers"), "{stderr}");
}

#[test]
fn bad_arguments_are_clear_errors() {
    let (code, _, stderr) = clusterf(&["docker", "--dry-run", "--publisher-id", "a/b"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("--publisher-id \"a/b\": use letters, digits and - _ . @ :"),
        "{stderr}"
    );
    let (code, _, stderr) = clusterf(&["docker", "--publisher-id", "a"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no etcd given"), "{stderr}");
    let (code, _, stderr) = clusterf(&[
        "docker",
        "--dry-run",
        "--publisher-id",
        "a",
        "--advertise-route-prefix",
        "10.0.0.0/8",
        "--advertise-route-gateway",
        "2001:db8::1",
    ]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("gateway 2001:db8::1 is ipv6 but prefix 10.0.0.0/8 is ipv4"),
        "{stderr}"
    );
    let (code, _, stderr) = clusterf(&["docker", "--published", "--etcd", "http://127.0.0.1:1"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("--host-address"), "{stderr}");
    // No engine on that socket: a clear error, not a hang or a panic.
    let (code, _, stderr) = clusterf(&[
        "docker",
        "--dry-run",
        "--publisher-id",
        "a",
        "--docker-host",
        "unix:///nonexistent/docker.sock",
    ]);
    assert_eq!(code, 1);
    assert!(
        stderr
            .starts_with("error: docker unix:///nonexistent/docker.sock: cannot reach the engine"),
        "{stderr}"
    );
}

fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The real Docker Engine (Debian's 20.10, API 1.41) in the test guest, with
/// a real etcd: every real-engine check in one boot (`tests/vm/docker/`).
/// Without qemu or the packages: fails with CI set, else a loud SKIP.
#[test]
fn docker_engine_in_vm() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let unavailable = |why: String| {
        if in_ci() {
            panic!("docker_engine_in_vm needs the VM and CI is set: {why}");
        }
        eprintln!(
            "\n**********************************************************************\n\
             SKIP docker_engine_in_vm: {why}\n\
             (install qemu-system-x86, etcd-server, etcd-client, busybox-static and allow\n\
             apt-get download; with CI set this fails)\n\
             **********************************************************************\n"
        );
    };
    match Command::new("qemu-system-x86_64").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => return unavailable(format!("qemu-system-x86_64 --version: {}", out.status)),
        Err(e) => return unavailable(format!("qemu-system-x86_64 not runnable: {e}")),
    }
    let build = Command::new(root.join("tests/vm/docker/build.sh"))
        .output()
        .expect("run tests/vm/docker/build.sh");
    if !build.status.success() {
        return unavailable(format!(
            "tests/vm/docker/build.sh failed ({}):\n{}",
            build.status,
            String::from_utf8_lossy(&build.stderr)
        ));
    }
    let layer = String::from_utf8_lossy(&build.stdout).trim().to_string();
    let started = Instant::now();
    let out = Command::new(root.join("tests/vm/run.sh"))
        .arg(root.join("tests/vm/docker/scenario.sh"))
        .arg(format!("{layer}:dockerroot"))
        .arg(format!(
            "{}:repo",
            root.join("tests/vm/docker/repo").display()
        ))
        .env("CLUSTERF_BIN", env!("CARGO_BIN_EXE_clusterf"))
        .env("CLUSTERF_VM_MEM", "2048")
        .env(
            "CLUSTERF_VM_TIMEOUT",
            std::env::var("CLUSTERF_VM_TIMEOUT").unwrap_or_else(|_| "900".into()),
        )
        .output()
        .expect("run tests/vm/run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "{stdout}\n{stderr}\nreal engine scenario: {:?}",
        started.elapsed()
    );
    assert!(
        out.status.success(),
        "the docker scenario failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
}
