//! Helpers for tests that run the daemon on the in-memory kernel: wait for
//! a condition, start a daemon and wait for its first pass.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use clusterf::daemon::{Daemon, MemoryKernel, Options};

/// Polls `cond` every 2 ms until it holds (how long that took), failing the
/// test after `limit`.
pub async fn eventually(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if cond() {
            return start.elapsed();
        }
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Starts the daemon on the in-memory kernel and waits for its startup pass.
pub async fn started(opts: Options, kernel: &MemoryKernel) -> Daemon {
    let daemon = Daemon::start(opts, Box::new(kernel.clone())).await.unwrap();
    eventually(Duration::from_secs(10), "the startup pass", || {
        daemon.status().passes_ok >= 1
    })
    .await;
    daemon
}
