//! End-to-end latency of the watch daemon on the host: a backend's weight
//! put into a real etcd (loopback) until the daemon's kernel table shows it,
//! over many changes, for a small table and for large ones. The daemon is
//! the real one (`daemon::Daemon`: etcd watch, debounce, incremental
//! render, plan, apply); only the kernel is the in-memory table
//! (`MemoryKernel`), since this host has no IPVS (the same run against the
//! real kernel is `tests/vm/scenarios/watch.sh`, under emulation).
//!
//! Each change: put `services/s0/backends/b0` with a new weight, then poll
//! the in-memory table every 100 us until dest b0 has that weight. The
//! default debounce window (20 ms) is part of every figure, as it is of the
//! daemon's.
//!
//! Each table size also prints the process's resident memory (VmRSS after
//! the changes, VmHWM: the peak so far), which is the daemon's plus the
//! in-memory kernel's table and the bench's etcd client; `/usr/bin/time
//! -f %M` of a run with one size gives the same peak for another build.
//! The allocator's options are the daemon's; `MIMALLOC_PURGE_DELAY=1000
//! MIMALLOC_ARENA_EAGER_COMMIT=2` gives mimalloc's defaults for comparison.
//!
//! Run: `cargo bench --bench latency` (1,000 changes at 1 service, 1k and
//! 10k services x 10 backends; needs etcd: /usr/bin/etcd or
//! `$CLUSTERF_ETCD_BIN`). Under `cargo test --all-targets` it runs as a
//! smoke test with 20 changes and small tables.

#[path = "../tests/support/etcd.rs"]
mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use clap::Parser;
use clusterf::cli::source::{ConfigArgs, OverlayArgs};
use clusterf::cli::watch::{WatchArgs, resolve};
use clusterf::daemon::{Daemon, MemoryKernel};
use clusterf::etcd::proto::{PutRequest, Request, RequestOp, TxnRequest};
use clusterf::model::{Protocol, ServiceKey};

// As in the binary (src/main.rs), so that the numbers are the binary's:
// the allocator and the daemon's options.
#[global_allocator]
static GLOBAL: clusterf::allocator::MiMalloc = clusterf::allocator::MiMalloc;

extern "C" fn tune_allocator() {
    // SAFETY: `.init_array` runs before any thread and before the
    // runtime's first allocation.
    unsafe { clusterf::allocator::set_options(clusterf::cli::Lifetime::UntilStopped) }
}

#[used]
#[unsafe(link_section = ".init_array")]
static ALLOCATOR_OPTIONS: extern "C" fn() = tune_allocator;

const BACKENDS: u32 = 10;

#[derive(Parser)]
struct Sources {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    overlay: OverlayArgs,
}

fn frontend_ip(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a64_0000 + i)
}

fn backend_ip(i: u32, j: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a00_0000 + i * BACKENDS + j)
}

fn backend_json(i: u32, j: u32, weight: u32) -> String {
    format!(
        r#"{{"ipv4": "{}", "tcp": 8080, "weight": {weight}}}"#,
        backend_ip(i, j)
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let k = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[k - 1]
}

/// A line of /proc/self/status in MB (`VmRSS`, `VmHWM`).
fn status_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One table size: `services` frontends in the config directory, 10
/// backends each in etcd; then `changes` reweights of one backend.
fn run(etcd: &support::Etcd, rt: &tokio::runtime::Runtime, services: u32, changes: u32) {
    let prefix = format!("/clusterf-{services}");
    // The config: one frontend per service, the original JSON layout.
    let dir = tempfile::tempdir().unwrap();
    for i in 0..services {
        let svc = dir.path().join(format!("services/s{i}"));
        std::fs::create_dir_all(&svc).unwrap();
        std::fs::write(
            svc.join("frontend"),
            format!(r#"{{"ipv4": "{}", "tcp": 80}}"#, frontend_ip(i)),
        )
        .unwrap();
    }
    // The overlay: 10 backends per service, written 16 at a time.
    let t = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for w in 0..16u32 {
            let mut c = etcd.client().await;
            let prefix = prefix.clone();
            tasks.push(tokio::spawn(async move {
                for n in (0..services * BACKENDS).filter(|n| n % 16 == w) {
                    let (i, j) = (n / BACKENDS, n % BACKENDS);
                    c.put(
                        format!("{prefix}/services/s{i}/backends/b{j}"),
                        backend_json(i, j, 10),
                    )
                    .await
                    .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let filled = t.elapsed();

    let s = Sources::try_parse_from([
        "bench",
        "--config-path",
        &dir.path().display().to_string(),
        "--etcd",
        &etcd.url(),
        "--etcd-prefix",
        &prefix,
    ])
    .expect("source args");
    let watch = WatchArgs {
        resync: Duration::from_secs(3600),
        ..WatchArgs::default()
    };
    let opts = resolve(&s.config, &s.overlay, Default::default(), &watch).expect("options");
    let kernel = MemoryKernel::default();
    let t = Instant::now();
    let daemon = rt
        .block_on(Daemon::start(opts, Box::new(kernel.clone())))
        .expect("start the daemon");
    let vip = ServiceKey::addr(Protocol::Tcp, IpAddr::V4(frontend_ip(0)), 80);
    let dest = SocketAddr::new(IpAddr::V4(backend_ip(0, 0)), 8080);
    let weight_now = || {
        let live = kernel.live.lock().unwrap_or_else(|e| e.into_inner());
        live.state
            .services
            .get(&vip)
            .and_then(|s| s.dests.get(&dest))
            .map(|d| d.attrs.weight)
    };
    let wait = |want: u32, limit: Duration| {
        let start = Instant::now();
        while weight_now() != Some(want) {
            assert!(
                start.elapsed() < limit,
                "timed out after {limit:?} waiting for weight {want}"
            );
            std::thread::sleep(Duration::from_micros(100));
        }
    };
    // The first pass applies its plan a chunk at a time: wait for every
    // backend, counted under the lock (a copy of the table,
    // `kernel.table()`, would add its size to the peak measured below).
    let applied = || {
        let live = kernel.live.lock().unwrap_or_else(|e| e.into_inner());
        live.state.dest_count()
    };
    while applied() != (services * BACKENDS) as usize {
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "timed out waiting for every backend"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    wait(10, Duration::from_secs(30));
    let first = t.elapsed();

    let mut client = rt.block_on(etcd.client());
    let key = format!("{prefix}/services/s0/backends/b0");
    let mut lat = Vec::with_capacity(changes as usize);
    for c in 0..changes {
        // 11..=110, never the weight before.
        let w = 11 + c % 100;
        let start = Instant::now();
        rt.block_on(client.put(key.as_str(), backend_json(0, 0, w)))
            .unwrap();
        wait(w, Duration::from_secs(30));
        lat.push(start.elapsed());
    }
    let status = daemon.status();
    let (rss, peak) = (status_mb("VmRSS"), status_mb("VmHWM"));
    // (Below 100 services, moving 1% of them is more than the guards let
    // a pass delete.)
    let steps = (services >= 100).then(|| {
        let inputs = (&daemon, &kernel);
        later_steps(rt, &mut client, &prefix, dir.path(), inputs, services)
    });
    rt.block_on(daemon.stop()).unwrap();
    lat.sort();
    println!(
        "{services:>6} services x {BACKENDS} backends: {changes} changes, put -> table p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms  (min {:.1} ms; {} passes ok; etcd fill {:.1} s, daemon start -> table {:.2} s)",
        ms(percentile(&lat, 0.50)),
        ms(percentile(&lat, 0.99)),
        ms(lat[lat.len() - 1]),
        ms(lat[0]),
        status.passes_ok,
        filled.as_secs_f64(),
        first.as_secs_f64(),
    );
    println!("{services:>6} services: resident {rss:.0} MB, peak {peak:.0} MB");
    if let Some(steps) = steps {
        println!("{services:>6} services, each step's own peak / resident after it (MB): {steps}");
    }
}

/// Resets the process's VmHWM to its VmRSS (`/proc/self/clear_refs`), so
/// that the next reading is one step's own peak.
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").expect("clear_refs");
}

/// The changes of `tests/vm/bench-daemon.sh` after its reweights, each
/// with its own peak and the resident memory after it: one transaction
/// reweighting every backend of 1% of the services, then 1% of the
/// frontends moved to port 81 in the config directory (each written beside
/// and renamed, as the VM bench does; here in two steps).
fn later_steps(
    rt: &tokio::runtime::Runtime,
    client: &mut support::TestClient,
    prefix: &str,
    dir: &std::path::Path,
    (daemon, kernel): (&Daemon, &MemoryKernel),
    services: u32,
) -> String {
    let has = |key: ServiceKey, dest: SocketAddr, weight: u32| {
        let live = kernel.live.lock().unwrap_or_else(|e| e.into_inner());
        live.state
            .services
            .get(&key)
            .and_then(|s| s.dests.get(&dest))
            .is_some_and(|d| d.attrs.weight == weight)
    };
    let wait = |key: ServiceKey, dest: SocketAddr, weight: u32| {
        let start = Instant::now();
        while !has(key, dest, weight) {
            assert!(start.elapsed() < Duration::from_secs(120), "timed out");
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(200));
        format!("{:.1} / {:.1}", status_mb("VmHWM"), status_mb("VmRSS"))
    };
    let hundredth = (services / 100).max(1);
    let key = |i: u32, port: u16| ServiceKey::addr(Protocol::Tcp, IpAddr::V4(frontend_ip(i)), port);
    let dest = |i: u32, j: u32| SocketAddr::new(IpAddr::V4(backend_ip(i, j)), 8080);

    reset_peak();
    let (lo, hi) = (services / 2, services / 2 + hundredth - 1);
    let puts: Vec<(String, String)> = (lo..=hi)
        .flat_map(|i| (0..BACKENDS).map(move |j| (i, j)))
        .map(|(i, j)| {
            let key = format!("{prefix}/services/s{i}/backends/b{j}");
            (key, backend_json(i, j, 20))
        })
        .collect();
    let success = puts
        .into_iter()
        .map(|(key, value)| RequestOp {
            request: Some(Request::Put(PutRequest {
                key: key.into_bytes(),
                value: value.into_bytes(),
                ..Default::default()
            })),
        })
        .collect();
    let request = TxnRequest {
        success,
        failure: Vec::new(),
    };
    rt.block_on(client.0.txn(request))
        .expect("the 1% transaction");
    let txn = wait(key(hi, 80), dest(hi, BACKENDS - 1), 20);

    // Written beside first, and a pass made while they are there (a path
    // outside the layout: the memo's global part), as happens by chance
    // when the VM bench's renames are slow; then renamed.
    reset_peak();
    let passes = daemon.status().passes_ok;
    let first = services / 4;
    let moved = first..first + hundredth;
    let svc = |i: u32| dir.join(format!("services/s{i}"));
    for i in moved.clone() {
        let body = format!(r#"{{"ipv4": "{}", "tcp": 81}}"#, frontend_ip(i));
        std::fs::write(svc(i).join("frontend.tmp"), body).unwrap();
    }
    let start = Instant::now();
    while daemon.status().passes_ok == passes {
        assert!(start.elapsed() < Duration::from_secs(120), "timed out");
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(200));
    let written = format!("{:.1} / {:.1}", status_mb("VmHWM"), status_mb("VmRSS"));
    reset_peak();
    for i in moved {
        std::fs::rename(svc(i).join("frontend.tmp"), svc(i).join("frontend")).unwrap();
    }
    let last = first + hundredth - 1;
    let renamed = wait(key(last, 81), dest(last, BACKENDS - 1), 10);

    // SIGHUP: the pass re-reads the config directory and the kernel's
    // whole table (the VM bench's last step).
    reset_peak();
    let (passes, reads) = (daemon.status().passes_ok, kernel.reads());
    // SAFETY: kill(2) on our own pid; the daemon's event loop handles it.
    assert_eq!(unsafe { libc::kill(libc::getpid(), libc::SIGHUP) }, 0);
    let start = Instant::now();
    while daemon.status().passes_ok == passes || kernel.reads() == reads {
        assert!(start.elapsed() < Duration::from_secs(120), "timed out");
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(200));
    let sighup = format!("{:.1} / {:.1}", status_mb("VmHWM"), status_mb("VmRSS"));
    format!(
        "1% txn {txn}; 1% frontends written beside (a pass sees them) {written}; renamed into place {renamed}; SIGHUP (config and kernel read) {sighup}"
    )
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this as a
    // quick smoke test with small sizes instead.
    let full = std::env::args().any(|a| a == "--bench");
    let args: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let (sizes, changes) = match (full, args.is_empty()) {
        (_, false) => (args, 1000),
        (true, true) => (vec![1, 1_000, 10_000], 1000),
        (false, true) => (vec![1, 100], 20),
    };
    // One transaction of 1% of 10k x 10 (`later_steps`), as in the VM.
    let Some(etcd) = support::Etcd::start_flags(&["--max-txn-ops", "1000"]) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for services in sizes {
        run(&etcd, &rt, services, changes);
    }
}
