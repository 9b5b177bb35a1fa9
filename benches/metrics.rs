//! The cost of a scrape of `/metrics` with the kernel's traffic counters
//! (`metrics::traffic`): N services x 10 dests, without and with per-dest
//! series (`--metrics-per-dest`). Prints the exposition's size, the time
//! to write it (min / median / max) and the most heap it took above what
//! was live before (the largest of the runs), two ways: whole into a
//! `String` (`Metrics::render`, what `/metrics` sent before session 12)
//! and in chunks handed over one by one (`Metrics::write_chunks`, what
//! `/metrics` streams: the chunks are dropped here as the client takes
//! them there); and the time to hand a read over (`Metrics::traffic_read`).
//!
//! Run: `cargo bench --bench metrics` (optionally `-- SERVICES...`).

use std::alloc::{GlobalAlloc, Layout};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use clusterf::metrics::Metrics;
use clusterf::model::traffic::{Traffic, TrafficTable};
use clusterf::model::{Protocol, ServiceKey};

// mimalloc as in the binary (src/main.rs), so that the times are the
// daemon's, with the bytes asked for counted (not mimalloc's rounding).
// benches/support/counting.rs counts over the system allocator and keeps
// no peak, hence this one.
#[global_allocator]
static GLOBAL: Peak = Peak;

struct Peak;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let live = LIVE.fetch_add(n, Relaxed) + n;
    PEAK.fetch_max(live, Relaxed);
}

// SAFETY: every call is passed to mimalloc unchanged; only counters are
// added.
unsafe impl GlobalAlloc for Peak {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { mimalloc::MiMalloc.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { mimalloc::MiMalloc.dealloc(p, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { mimalloc::MiMalloc.realloc(p, layout, new_size) };
        if !q.is_null() {
            // Counted as both held at once: a move may need both.
            grew(new_size);
            LIVE.fetch_sub(layout.size(), Relaxed);
        }
        q
    }
}

/// `f`'s result, how long it took and the most heap it held above what
/// was live when it began.
fn measure<T>(f: impl FnOnce() -> T) -> (T, Duration, usize) {
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    let start = Instant::now();
    let out = f();
    let took = start.elapsed();
    (out, took, PEAK.load(Relaxed).saturating_sub(base))
}

const DESTS: u32 = 10;
const RUNS: usize = 7;

fn table(services: u32, per_dest: bool) -> TrafficTable {
    let mut t = TrafficTable::default();
    for i in 0..services {
        let key = ServiceKey::addr(
            Protocol::Tcp,
            IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)),
            80,
        );
        let n = u64::from(i) * 1_000_003;
        let traffic = Traffic {
            connections: n,
            packets_in: n * 7,
            packets_out: n * 9,
            bytes_in: n * 900,
            bytes_out: n * 12_000,
            connection_rate: u64::from(i % 1000),
            packet_rate_in: u64::from(i % 7000),
            packet_rate_out: u64::from(i % 9000),
            byte_rate_in: u64::from(i) * 13,
            byte_rate_out: u64::from(i) * 170,
        };
        t.services.insert(key, traffic);
        if per_dest {
            let dests = (0..DESTS).map(|j| {
                let ip = Ipv4Addr::from(0x6400_0000 + i * 16 + j);
                (SocketAddr::new(IpAddr::V4(ip), 8080), traffic)
            });
            t.dests.insert(key, dests.collect());
        }
    }
    t
}

fn summary(mut v: Vec<Duration>) -> String {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "{:.1} / {:.1} / {:.1} ms",
        ms(v[0]),
        ms(v[v.len() / 2]),
        ms(v[v.len() - 1])
    )
}

fn main() {
    let args: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if !args.is_empty() {
        args
    } else if std::env::args().any(|a| a == "--bench") {
        vec![1_000, 10_000]
    } else {
        // `cargo test --all-targets` runs this as a smoke test.
        vec![100]
    };
    println!("scrape of /metrics with traffic counters, {DESTS} dests per service");
    println!("  peak: the most heap a scrape held above what was live before (bytes asked for)");
    for services in sizes {
        for per_dest in [false, true] {
            let t = table(services, per_dest);
            let m = Metrics::new();
            let mut hand_over = Vec::new();
            let mut scrape = Vec::new();
            let mut stream = Vec::new();
            let (mut bytes, mut streamed) = (0, 0);
            let (mut scrape_peak, mut stream_peak) = (0, 0);
            for _ in 0..RUNS {
                let copy = t.clone();
                let start = Instant::now();
                m.traffic_read(copy, 0.0, Duration::ZERO);
                hand_over.push(start.elapsed());
                let (text, took, peak) = measure(|| m.render(0.0));
                scrape.push(took);
                scrape_peak = scrape_peak.max(peak);
                bytes = text.len();
                drop(text);
                let (n, took, peak) = measure(|| {
                    let mut n = 0;
                    m.write_chunks(0.0, |chunk| {
                        n += chunk.len();
                        Ok(())
                    })
                    .expect("nothing fails");
                    n
                });
                stream.push(took);
                stream_peak = stream_peak.max(peak);
                streamed = n;
            }
            assert_eq!(streamed, bytes, "the chunks are the text");
            println!(
                "{services:>7} services, per-dest {:<5}: {:>6.1} MB, scrape {} peak {}, \
                 streamed {} peak {}, hand-over {}",
                per_dest,
                bytes as f64 / 1e6,
                summary(scrape),
                mb(scrape_peak),
                summary(stream),
                mb(stream_peak),
                summary(hand_over)
            );
        }
    }
}

fn mb(bytes: usize) -> String {
    if bytes < 1_000_000 {
        format!("{:.1} kB", bytes as f64 / 1e3)
    } else {
        format!("{:.1} MB", bytes as f64 / 1e6)
    }
}
