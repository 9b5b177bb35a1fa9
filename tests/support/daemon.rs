//! Helpers for tests that run the daemon on the in-memory kernel: the
//! daemon's options from flags as the CLI resolves them, wait for a
//! condition, start a daemon and wait for its first pass.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use clap::Parser;
use clusterf::cli::source::{ConfigArgs, OverlayArgs};
use clusterf::cli::watch::{WatchArgs, resolve};
use clusterf::daemon::{Daemon, MemoryKernel, Options};

/// The source flags of `clusterf apply`.
#[derive(Parser)]
pub struct Sources {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub overlay: OverlayArgs,
}

impl Sources {
    /// The daemon's options from source flags (`--config-path DIR`,
    /// `--etcd URL`, ...) and `watch`, as `clusterf apply --watch`
    /// resolves them.
    pub fn options<S: AsRef<str>>(flags: &[S], watch: &WatchArgs) -> Options {
        let argv = std::iter::once("t").chain(flags.iter().map(AsRef::as_ref));
        let s = Sources::try_parse_from(argv).expect("source args");
        resolve(&s.config, &s.overlay, Default::default(), watch).expect("options")
    }
}

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
