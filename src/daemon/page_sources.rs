//! The status page's inputs (`GET /`, `/status`, `/status.json`): the
//! daemon's state gathered into a [`Snapshot`] once per request, holding
//! each lock only to copy what the page shows.
//!
//! Must not: change anything, wait on a running pass for longer than
//! [`PASS_WAIT`], or show a secret (sources are shown by their redacted
//! descriptions).

use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use super::clock::unix_now;
use super::event_loop::Status;
use super::health::HealthChecker;
use super::pass::Pass;
use super::status_page::snapshot;
use super::status_page::{Query, Snapshot};
use super::sync::lock;
use crate::metrics::Metrics;
use crate::reconcile::Source;
use crate::source::etcd::watch::OverlayWatch;

/// How long a request waits for a running pass before it shows the page
/// without the services.
pub const PASS_WAIT: Duration = Duration::from_secs(2);

/// Where the page's data is read from.
pub struct PageSources {
    pub pass: Arc<Mutex<Pass>>,
    pub status: Arc<Mutex<Status>>,
    pub metrics: Arc<Metrics>,
    pub checker: Arc<HealthChecker>,
    /// The etcd watch, for its current error.
    pub etcd: Option<Arc<OverlayWatch>>,
    /// Each input (the `Source` its staleness is kept under, or `None`)
    /// by name and redacted description.
    pub inputs: Vec<(&'static str, Option<Source>, String)>,
}

impl PageSources {
    /// The snapshot for `query`, now. Blocks up to [`PASS_WAIT`]: call off
    /// the async runtime's threads.
    pub fn snapshot(&self, query: Query) -> Snapshot {
        let now_ms = u64::try_from(unix_now().as_millis()).unwrap_or(u64::MAX);
        let status = lock(&self.status).clone();
        let from_pass = self.with_pass(|p| p.page(&query, now_ms));
        let mut problems = Vec::new();
        if let Some(last) = status.last_pass.as_ref().filter(|l| !l.ok) {
            problems.extend(last.error.clone());
            problems.extend(last.diagnostics.iter().cloned());
        }
        let (services, counters, last_plan, fleet, diagnostics, vips) = match from_pass {
            Some(p) => {
                if !p.render_ok && problems.is_empty() {
                    problems.push("the last render of the config has errors".to_string());
                }
                let d = p.diagnostics;
                (
                    Some(p.services),
                    p.counters,
                    p.last_plan,
                    p.fleet,
                    d,
                    p.vips,
                )
            }
            None => (None, Default::default(), None, None, Vec::new(), None),
        };
        let (checked, down) = self.checker.counts();
        Snapshot {
            format: snapshot::FORMAT,
            now_ms,
            version: env!("CLUSTERF_VERSION").to_string(),
            query,
            problems,
            last_pass: status.last_pass,
            sources: self.sources(now_ms),
            services,
            counters,
            health: snapshot::HealthSummary { checked, down },
            last_plan,
            diagnostics,
            fleet,
            vips,
        }
    }

    /// `f` over the pass's state, if no pass holds it for [`PASS_WAIT`].
    fn with_pass<T>(&self, f: impl FnOnce(&Pass) -> T) -> Option<T> {
        lock_within(&self.pass, PASS_WAIT).map(|pass| f(&pass))
    }

    fn sources(&self, now_ms: u64) -> Vec<snapshot::SourceRow> {
        let good = self.metrics.last_good();
        let now = now_ms as f64 / 1000.0;
        self.inputs
            .iter()
            .map(|(name, source, description)| {
                let error = match (source, &self.etcd) {
                    (Some(Source::Etcd), Some(w)) => {
                        let st = w.status();
                        (!st.in_sync).then_some(st.last_error).flatten()
                    }
                    _ => None,
                };
                snapshot::SourceRow {
                    source: (*name).to_string(),
                    description: description.clone(),
                    staleness_s: source
                        .and_then(|s| good.get(&s).copied())
                        .map(|at| (now - at).max(0.0)),
                    error,
                }
            })
            .collect()
    }
}

/// The lock, unless someone else holds it for longer than `wait` (a
/// poisoned lock is taken: the page only reads).
fn lock_within<T>(m: &Mutex<T>, wait: Duration) -> Option<MutexGuard<'_, T>> {
    let start = std::time::Instant::now();
    loop {
        match m.try_lock() {
            Ok(guard) => return Some(guard),
            Err(TryLockError::Poisoned(p)) => return Some(p.into_inner()),
            Err(TryLockError::WouldBlock) if start.elapsed() < wait => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(TryLockError::WouldBlock) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_held_past_the_wait_is_given_up_and_one_released_within_it_is_taken() {
        let m = Arc::new(Mutex::new(1));
        let held = m.lock().unwrap();
        let start = std::time::Instant::now();
        assert!(lock_within(&m, Duration::from_millis(50)).is_none());
        assert!(start.elapsed() >= Duration::from_millis(50));
        let other = m.clone();
        let waiter =
            std::thread::spawn(move || lock_within(&other, Duration::from_secs(10)).map(|g| *g));
        std::thread::sleep(Duration::from_millis(30));
        drop(held);
        assert_eq!(waiter.join().unwrap(), Some(1));
    }
}
