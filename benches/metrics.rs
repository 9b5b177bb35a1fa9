//! The cost of a scrape of `/metrics` with the kernel's traffic counters
//! (`metrics::traffic`): N services x 10 dests, without and with per-dest
//! series (`--metrics-per-dest`). Prints the exposition's size and the
//! time to write it (min / median / max), and the time to hand a read over
//! (`Metrics::traffic_read`).
//!
//! Run: `cargo bench --bench metrics` (optionally `-- SERVICES...`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use clusterf::metrics::Metrics;
use clusterf::model::traffic::{Traffic, TrafficTable};
use clusterf::model::{Protocol, ServiceKey};

// As in the binary (src/main.rs), so that the numbers are the daemon's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let sizes = if args.is_empty() {
        vec![1_000, 10_000]
    } else {
        args
    };
    println!("scrape of /metrics with traffic counters, {DESTS} dests per service");
    for services in sizes {
        for per_dest in [false, true] {
            let t = table(services, per_dest);
            let m = Metrics::new();
            let mut hand_over = Vec::new();
            let mut scrape = Vec::new();
            let mut bytes = 0;
            for _ in 0..RUNS {
                let copy = t.clone();
                let start = Instant::now();
                m.traffic_read(copy, 0.0, Duration::ZERO);
                hand_over.push(start.elapsed());
                let start = Instant::now();
                let text = m.render(0.0);
                scrape.push(start.elapsed());
                bytes = text.len();
            }
            println!(
                "{services:>7} services, per-dest {:<5}: {:>6.1} MB, scrape {}, hand-over {}",
                per_dest,
                bytes as f64 / 1e6,
                summary(scrape),
                summary(hand_over)
            );
        }
    }
}
