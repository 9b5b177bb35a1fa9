//! Benchmark of `clusterf docker`'s per-change work: translating N labelled
//! containers into the desired key set and planning against what is
//! published (pure), and the first publish / a one-container change / a
//! no-op reconcile of N containers against a real local etcd.
//!
//! Run: `cargo bench --bench docker` (the etcd part needs /usr/bin/etcd).
//! Prints one line per measurement; record them in docs/benchmarks.md with
//! machine and date.

#[path = "../tests/support/etcd.rs"]
mod support;

use std::time::{Duration, Instant};

use clusterf::docker::keys::{self, KeySet};
use clusterf::docker::labels::{self, Backends, Container, NetworkAddrs, Options, Port, State};
use clusterf::docker::store::Store;
use clusterf::source::etcd::Settings;

fn containers(n: usize) -> Vec<Container> {
    (0..n)
        .map(|i| {
            let mut c = Container::new(format!("{i:064x}"), format!("c{i}"));
            c.labels.insert(
                "net.qmsk.clusterf.service".into(),
                format!("svc{} all", i % 50),
            );
            c.labels
                .insert("net.qmsk.clusterf.backend.tcp".into(), "8080".into());
            c.exposed.insert(Port::tcp(8080));
            c.networks.insert(
                "bridge".into(),
                NetworkAddrs {
                    ipv4: Some(std::net::Ipv4Addr::new(
                        172,
                        17,
                        (i / 250) as u8,
                        (i % 250) as u8 + 2,
                    )),
                    ipv6: None,
                },
            );
            c
        })
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn desired(cs: &[Container], previous: &Backends) -> KeySet {
    let t = labels::translate(cs, &Options::default(), previous);
    keys::desired(
        &t.backends,
        None,
        Some(("bench", keys::marker_value(1, 10))),
    )
}

fn main() {
    for n in [100usize, 1_000, 10_000] {
        let cs = containers(n);
        let current = desired(&cs, &Backends::new());
        let previous = keys::backends_of(&current);
        let mut changed = cs.clone();
        changed[0].state = State::Exited;
        let mut times = Vec::new();
        for _ in 0..11 {
            let t0 = Instant::now();
            let want = desired(&changed, &previous);
            let plan = keys::plan(&current, &want);
            times.push(t0.elapsed());
            assert_eq!(plan.len(), 2);
        }
        println!(
            "translate+plan {n} containers ({} keys), one stopped: median {:?}",
            current.len(),
            median(times)
        );
    }

    let Some(etcd) = support::Etcd::start() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for (i, n) in [100usize, 1_000].into_iter().enumerate() {
            let settings = Settings::new(vec![etcd.url()], &format!("/bench{i}")).unwrap();
            let (mut store, _) = Store::open(settings, "bench", Duration::from_secs(30))
                .await
                .unwrap();
            let cs = containers(n);
            let want = |store: &Store, cs: &[Container]| {
                let t = labels::translate(cs, &Options::default(), &store.published_backends());
                keys::desired(&t.backends, None, Some(store.marker()))
            };
            let t0 = Instant::now();
            let applied = store.reconcile(&want(&store, &cs)).await.unwrap();
            println!(
                "etcd first publish {n} containers: {} puts in {} txns, {:?}",
                applied.puts,
                applied.transactions,
                t0.elapsed()
            );
            let mut times = Vec::new();
            for _ in 0..11 {
                let t0 = Instant::now();
                let applied = store.reconcile(&want(&store, &cs)).await.unwrap();
                times.push(t0.elapsed());
                assert_eq!(applied.puts + applied.deletes, 0);
            }
            println!(
                "etcd no-op reconcile {n} containers: median {:?}",
                median(times)
            );
            let mut times = Vec::new();
            for k in 0..11 {
                let mut cs2 = cs.clone();
                cs2[k]
                    .labels
                    .insert("net.qmsk.clusterf.backend.weight".into(), "5".into());
                let t0 = Instant::now();
                let applied = store.reconcile(&want(&store, &cs2)).await.unwrap();
                times.push(t0.elapsed());
                assert!(applied.puts >= 2);
                store.reconcile(&want(&store, &cs)).await.unwrap();
            }
            println!(
                "etcd one-container change among {n} containers: median {:?}",
                median(times)
            );
            store.flush().await.unwrap();
        }
    });
}
