//! Benchmark of the etcd overlay against a real local etcd: a full read of
//! N backend keys (paginated, one revision), read + parse, and the latency
//! from a put to the watcher's dirty notification. First, without etcd, the
//! heap the watch's tree holds for 10k services x 10 backends (a counting
//! allocator: bytes asked for and allocations live, not the allocator's
//! rounding).
//!
//! Run: `cargo bench --bench etcd` (needs /usr/bin/etcd). Prints one line
//! per measurement; record them in docs/benchmarks.md with machine and date.

#[path = "../tests/support/etcd.rs"]
mod support;

use std::time::{Duration, Instant};

use clusterf::source::etcd::watch::{OverlayWatch, Tuning};
use clusterf::source::etcd::{self as etcd_source, Keyspace, Settings, keys};
use clusterf::tree::{Files, Tree};

#[path = "support/counting.rs"]
mod counting;
use counting::live;

#[global_allocator]
static ALLOC: counting::Counting = counting::Counting;

/// The heap of the watch's tree at `services` x 10 backends, built as a
/// list builds it (`keys::apply_put` in key order); then the cost of a
/// put while a pass holds a snapshot (the watch's `Arc::make_mut`), and
/// the time to read every entry and to look each up. `compressed`: as
/// the watch holds it (`Files::compressed`), else plain as a config tree.
fn tree_heap(services: usize, compressed: bool) {
    let ks = Keyspace::new("/clusterf");
    let key = |i: usize| format!("/clusterf/services/s{}/backends/b{}", i / 10, i % 10);
    let value = |i: usize| {
        format!(
            r#"{{"ipv4": "10.{}.{}.{}", "tcp": 8080, "weight": 10}}"#,
            i / 65536 % 256,
            i / 256 % 256,
            i % 256
        )
    };
    let n = services * 10;
    let mut sorted: Vec<(String, String)> = (0..n).map(|i| (key(i), value(i))).collect();
    sorted.sort();
    let payload: usize = sorted.iter().map(|(k, v)| k.len() - 10 + v.len()).sum();
    let (b0, a0) = live();
    let t = Instant::now();
    let mut tree = Tree::new("etcd");
    if compressed {
        tree.files = Files::compressed();
    }
    for (k, v) in &sorted {
        keys::apply_put(&mut tree, &ks, k.as_bytes(), v.as_bytes());
    }
    let build = t.elapsed();
    let (b1, a1) = live();
    assert_eq!(tree.files.len(), n);
    println!(
        "{} tree of {n} keys: heap {:.2} MB in {} allocations ({:.1} B a key; paths and values {:.2} MB); built in {build:?}",
        if compressed { "compressed" } else { "plain" },
        (b1 - b0) as f64 / 1e6,
        a1 - a0,
        (b1 - b0) as f64 / n as f64,
        payload as f64 / 1e6,
    );
    // The watch patches its tree through `Arc::make_mut` while a pass may
    // hold the last snapshot.
    let mut shared = std::sync::Arc::new(tree);
    let pass = shared.clone();
    let t = Instant::now();
    keys::apply_put(
        std::sync::Arc::make_mut(&mut shared),
        &ks,
        key(n / 2).as_bytes(),
        b"{}",
    );
    let put = t.elapsed();
    let (b2, _) = live();
    println!(
        "  a put while a pass holds the snapshot: {:+.2} MB ({put:?})",
        (b2 as f64 - b1 as f64) / 1e6,
    );
    drop(pass);
    let mut tree = std::sync::Arc::try_unwrap(shared).expect("the only holder");
    let t = Instant::now();
    let bytes: usize = tree
        .files
        .iter()
        .map(|f| f.path().len() + f.data().len())
        .sum();
    let iter = t.elapsed();
    let t = Instant::now();
    let found = sorted
        .iter()
        .filter(|(k, _)| tree.files.get(&k[10..]).is_some())
        .count();
    let gets = t.elapsed();
    assert_eq!(found, n);
    let t = Instant::now();
    for i in (0..n).step_by(97) {
        keys::apply_put(&mut tree, &ks, key(i).as_bytes(), value(i + 1).as_bytes());
    }
    let puts = t.elapsed();
    println!(
        "  read every entry ({:.1} MB): {iter:?}; get every path: {gets:?}; {} puts in place: {puts:?}",
        bytes as f64 / 1e6,
        n.div_ceil(97),
    );
}

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
    for compressed in [false, true] {
        tree_heap(if full { 10_000 } else { 100 }, compressed);
    }
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
