//! Benchmark of the etcd overlay against a real local etcd: a full read of
//! N backend keys (paginated, one revision), read + parse, and the latency
//! from a put to the watcher's dirty notification.
//!
//! Run: `cargo bench --bench etcd` (needs /usr/bin/etcd). Prints one line
//! per measurement; record them in docs/benchmarks.md with machine and date.

#[path = "../tests/support/etcd.rs"]
mod support;

use std::time::{Duration, Instant};

use clusterf::source::etcd::watch::{OverlayWatch, Tuning};
use clusterf::source::etcd::{self as etcd_source, Settings};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this as a
    // quick smoke test with small sizes instead.
    let full = std::env::args().any(|a| a == "--bench");
    let (sizes, puts) = if full {
        (vec![1_000usize, 10_000], 300)
    } else {
        (vec![100usize], 20)
    };
    let Some(etcd) = support::Etcd::start() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let settings = Settings::new(vec![etcd.url()], "/clusterf").unwrap();
        let mut written = 0usize;
        for n in sizes.iter().copied() {
            // Fill up to n backends, 16 writers at a time.
            let mut tasks = Vec::new();
            for w in 0..16 {
                let mut c = etcd.client().await;
                let (from, to) = (written, n);
                tasks.push(tokio::spawn(async move {
                    for i in (from..to).filter(|i| i % 16 == w) {
                        let v = format!(
                            r#"{{"ipv4": "10.{}.{}.{}", "tcp": 8080}}"#,
                            i / 65536 % 256,
                            i / 256 % 256,
                            i % 256
                        );
                        c.put(format!("/clusterf/services/s{}/backends/b{i}", i % 100), v)
                            .await
                            .unwrap();
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            written = n;

            let client = etcd_source::connect(&settings).await.unwrap();
            let mut reads = Vec::new();
            let mut parses = Vec::new();
            for _ in 0..7 {
                let t = Instant::now();
                let tree = etcd_source::read(&client, &settings).await.unwrap();
                reads.push(t.elapsed());
                assert_eq!(tree.files.len(), n);
                let t = Instant::now();
                let (overlay, _) = clusterf::config::parse_overlay(&tree);
                parses.push(t.elapsed());
                assert_eq!(overlay.skipped, 0);
            }
            println!(
                "etcd read {n} keys: median {:?} (page size {}); parse_overlay: median {:?}",
                median(reads),
                etcd_source::PAGE_SIZE,
                median(parses)
            );
        }

        // Put -> dirty notification latency, with the largest tree.
        let mut watch = OverlayWatch::spawn(settings.clone(), Tuning::default());
        watch.ready(Duration::from_secs(30)).await.unwrap();
        let mut dirty = watch.subscribe();
        dirty.borrow_and_update();
        let mut c = etcd.client().await;
        let mut lat = Vec::new();
        for i in 0..puts {
            let t = Instant::now();
            c.put(format!("/clusterf/routes/r{}", i % 10), format!("{i}"))
                .await
                .unwrap();
            dirty.changed().await.unwrap();
            lat.push(t.elapsed());
        }
        println!(
            "watch put->dirty latency ({puts} puts, {written}-key tree, includes the put round trip): median {:?}, p99 {:?}",
            median(lat.clone()),
            percentile(lat, 0.99)
        );
        // A relist of the whole tree, as after a compaction or a reconnect.
        let t = Instant::now();
        let c2 = etcd_source::connect(&settings).await.unwrap();
        let tree = etcd_source::read(&c2, &settings).await.unwrap();
        println!(
            "reconnect + relist of {} keys: {:?}",
            tree.files.len(),
            t.elapsed()
        );
    });
}
