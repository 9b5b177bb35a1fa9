//! The health checker at scale: N TCP targets checked every 5 s against
//! listeners on loopback, in a child process of this bench (so that this
//! process's CPU time is the checker's alone). Prints the check rate, the
//! checker's CPU per 1,000 checks/s, and the lateness of check starts
//! (p50, p99) over the run, after one interval of warm-up. Failed checks
//! against the live listeners mean the machine could not keep up (connect
//! timeouts): they are reported, not hidden.
//!
//! Run: `cargo bench --bench health` (optionally `-- N...`, default 10000
//! and 100000). The listeners bind 0.0.0.0 on 10 ports so that targets can
//! be 127.x.y.z addresses (100k distinct targets); nothing but this bench
//! connects to them, and they live for the run only.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clusterf::daemon::health::HealthChecker;
use clusterf::health::{CheckSpec, Probe, Target};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PORTS: usize = 10;

/// The child: binds the listeners, prints their ports, accepts and drops
/// connections until stdin closes.
fn serve() {
    let ports: Vec<u16> = (0..PORTS)
        .map(|_| {
            let l = TcpListener::bind("0.0.0.0:0").unwrap();
            let port = l.local_addr().unwrap().port();
            std::thread::spawn(move || {
                while let Ok((s, _)) = l.accept() {
                    drop(s);
                }
            });
            port
        })
        .collect();
    let line: Vec<String> = ports.iter().map(u16::to_string).collect();
    println!("{}", line.join(" "));
    std::io::stdout().flush().unwrap();
    let _ = std::io::stdin().read_line(&mut String::new());
}

fn cpu_time() -> Duration {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn targets(n: usize, ports: &[u16]) -> BTreeSet<Target> {
    let check = CheckSpec::new(Probe::Tcp);
    (0..n)
        .map(|i| {
            let host = (i / PORTS) as u32;
            let ip = Ipv4Addr::from(0x7f01_0001 + host + host / 254 * 2);
            Target {
                addr: SocketAddr::new(ip.into(), ports[i % PORTS]),
                check: check.clone(),
            }
        })
        .collect()
}

async fn measure(n: usize, ports: &[u16], warm: Duration, window: Duration) {
    let checker = HealthChecker::start(|| {});
    checker.set_targets(targets(n, ports));
    tokio::time::sleep(warm).await;
    let (before, cpu0, t0) = (checker.stats(), cpu_time(), Instant::now());
    tokio::time::sleep(window).await;
    let (after, cpu1, elapsed) = (checker.stats(), cpu_time(), t0.elapsed());
    let checks = (after.passed + after.failed) - (before.passed + before.failed);
    let failed = after.failed - before.failed;
    let rate = checks as f64 / elapsed.as_secs_f64();
    let cpu = (cpu1 - cpu0).as_secs_f64() / elapsed.as_secs_f64();
    println!(
        "health {n} targets every 5s: {rate:.0} checks/s ({failed} failed, {} skipped), checker CPU {:.1}% of a core = {:.2}% per 1k checks/s; start lateness p50 {} ms, p99 {} ms (whole run)",
        after.skipped - before.skipped,
        cpu * 100.0,
        cpu * 100.0 / (rate / 1000.0),
        after.lateness_quantile(0.5).unwrap_or(0),
        after.lateness_quantile(0.99).unwrap_or(0),
    );
}

fn main() {
    if std::env::var_os("CLUSTERF_HEALTH_BENCH_SERVE").is_some() {
        return serve();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let full = args.iter().any(|a| a == "--bench");
    let mut sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    if sizes.is_empty() {
        sizes = if full {
            vec![10_000, 100_000]
        } else {
            vec![200]
        };
    }
    let (warm, window) = if full {
        (Duration::from_secs(6), Duration::from_secs(20))
    } else {
        (Duration::from_secs(1), Duration::from_secs(1))
    };
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("CLUSTERF_HEALTH_BENCH_SERVE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ports: Vec<u16> = line
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for n in sizes {
        rt.block_on(measure(n, &ports, warm, window));
    }
    drop(child.stdin.take());
    let _ = child.wait();
}
