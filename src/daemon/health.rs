//! The health checker: runs each wanted target's probe on its schedule
//! ([`crate::health::schedule`]), keeps the health table, and calls back
//! when a dest goes down or comes up, so that the loop marks a pass dirty.
//! A pass reads a [`HealthChecker::down`] snapshot like any input.
//!
//! Must not: change the kernel or the desired state (the pure verdict
//! does, inside a pass), or wait on a probe while scheduling the next.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::probe::probe;
use super::sync::lock;
use crate::health::schedule::Schedule;
use crate::health::{HealthTable, Status, Target};
use crate::metrics::Metrics;

/// Checks in flight at most; beyond, a due check is skipped and counted
/// (its dest keeps its state) rather than delaying every other check.
pub const MAX_IN_FLIGHT: usize = 16_384;

/// Lateness is counted in 1 ms buckets up to this, then in one more.
const LATENESS_BUCKETS: usize = 1_000;

/// What the checker has done since it started.
#[derive(Clone, Debug)]
pub struct CheckStats {
    pub passed: u64,
    pub failed: u64,
    /// Due checks skipped because [`MAX_IN_FLIGHT`] were running.
    pub skipped: u64,
    /// Checks by how late they started, in ms (the last bucket: later).
    late_ms: Vec<u64>,
}

impl Default for CheckStats {
    fn default() -> Self {
        CheckStats {
            passed: 0,
            failed: 0,
            skipped: 0,
            late_ms: vec![0; LATENESS_BUCKETS + 1],
        }
    }
}

impl CheckStats {
    /// The lateness (ms) that `q` (0 to 1) of the checks started within;
    /// `None` before any check.
    pub fn lateness_quantile(&self, q: f64) -> Option<u64> {
        let total: u64 = self.late_ms.iter().sum();
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (ms, n) in self.late_ms.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(ms as u64);
            }
        }
        None
    }
}

#[derive(Default)]
struct Shared {
    table: Mutex<HealthTable>,
    /// The down entries of `table` only: what a pass reads.
    down: Mutex<HealthTable>,
    wanted: Mutex<Arc<BTreeSet<Target>>>,
    stats: Mutex<CheckStats>,
    metrics: Option<Arc<Metrics>>,
}

/// The running checker; dropping it stops every check.
pub struct HealthChecker {
    shared: Arc<Shared>,
    wanted: watch::Sender<Arc<BTreeSet<Target>>>,
    task: JoinHandle<()>,
}

impl Drop for HealthChecker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HealthChecker {
    /// Starts checking nothing; `on_change` runs (on a probe's task) each
    /// time a target goes down or comes up.
    pub fn start(on_change: impl Fn() + Send + Sync + 'static) -> HealthChecker {
        HealthChecker::start_with(on_change, None)
    }

    /// [`HealthChecker::start`], counting checks and dest states in
    /// `metrics`.
    pub fn start_with(
        on_change: impl Fn() + Send + Sync + 'static,
        metrics: Option<Arc<Metrics>>,
    ) -> HealthChecker {
        let shared = Arc::new(Shared {
            metrics,
            ..Shared::default()
        });
        let (wanted, rx) = watch::channel(Arc::new(BTreeSet::new()));
        let task = tokio::spawn(run(shared.clone(), rx, Arc::new(on_change)));
        HealthChecker {
            shared,
            wanted,
            task,
        }
    }

    /// Makes these the checked targets: new ones start unknown, gone ones
    /// are forgotten.
    pub fn set_targets(&self, targets: BTreeSet<Target>) {
        let targets = Arc::new(targets);
        let old = std::mem::replace(&mut *lock(&self.shared.wanted), targets.clone());
        if let Some(m) = &self.shared.metrics {
            for gone in old.difference(&targets) {
                m.dest_health(gone.addr, gone.check.probe.kind(), None);
            }
        }
        lock(&self.shared.table).retain(|t| targets.contains(t));
        lock(&self.shared.down).retain(|t| targets.contains(t));
        self.wanted.send_replace(targets);
    }

    /// A copy of the health table (every target checked).
    pub fn table(&self) -> HealthTable {
        lock(&self.shared.table).clone()
    }

    /// A copy of the down targets' entries, for a pass: as small as the
    /// outage, whatever the number of targets.
    pub fn down(&self) -> HealthTable {
        lock(&self.shared.down).clone()
    }

    /// Every target's state, as `GET /health/checks` serves it: format 1,
    /// `targets` in address order, each with `addr`, `check`, `status`
    /// (`unknown`, `healthy`, `failing`, `unhealthy`, `recovering`), the
    /// counts, `down_since_ms` and the `last` outcome.
    pub fn table_json(&self) -> serde_json::Value {
        let table = self.table();
        let targets: Vec<serde_json::Value> = table
            .iter()
            .map(|(t, h)| {
                let (status, count) = match h.status {
                    Status::Unknown => ("unknown", None),
                    Status::Healthy => ("healthy", None),
                    Status::Failing { failures } => ("failing", Some(failures)),
                    Status::Unhealthy { failures } => ("unhealthy", Some(failures)),
                    Status::Recovering { successes } => ("recovering", Some(successes)),
                };
                serde_json::json!({
                    "addr": t.addr.to_string(),
                    "check": t.check.probe.kind(),
                    "status": status,
                    "count": count,
                    "rise": t.check.rise,
                    "fall": t.check.fall,
                    "down_since_ms": h.down_since_ms,
                    "reason": h.reason(t.check.rise, t.check.fall),
                    "last": h.last.as_ref().map(|o| serde_json::json!({
                        "ok": o.ok, "detail": o.detail, "at_ms": o.at_ms,
                    })),
                })
            })
            .collect();
        serde_json::json!({ "format": 1, "targets": targets })
    }

    /// Targets checked, and how many of them are down.
    pub fn counts(&self) -> (usize, usize) {
        let checked = lock(&self.shared.table).len();
        (checked, lock(&self.shared.down).len())
    }

    pub fn stats(&self) -> CheckStats {
        lock(&self.shared.stats).clone()
    }
}

type OnChange = Arc<dyn Fn() + Send + Sync>;

async fn run(
    shared: Arc<Shared>,
    mut wanted: watch::Receiver<Arc<BTreeSet<Target>>>,
    on_change: OnChange,
) {
    let epoch = Instant::now();
    let now_ms = || epoch.elapsed().as_millis() as u64;
    let limit = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut schedule = Schedule::default();
    loop {
        let now = now_ms();
        for (due, target) in schedule.pop_due(now) {
            let Ok(permit) = limit.clone().try_acquire_owned() else {
                lock(&shared.stats).skipped += 1;
                if let Some(m) = &shared.metrics {
                    m.check_done(None, Duration::ZERO);
                }
                continue;
            };
            record_lateness(&shared, now - due);
            let (shared, on_change) = (shared.clone(), on_change.clone());
            tokio::spawn(async move {
                check(&shared, &target, &on_change).await;
                drop(permit);
            });
        }
        let next = schedule.next_due().map(|due| due.saturating_sub(now_ms()));
        let sleep =
            tokio::time::sleep(next.map_or(Duration::from_secs(3600), Duration::from_millis));
        tokio::select! {
            changed = wanted.changed() => {
                if changed.is_err() {
                    return;
                }
                let targets = wanted.borrow_and_update().clone();
                schedule.set(targets.iter().map(|t| (t.clone(), t.check.interval)), now_ms());
            }
            () = sleep => {}
        }
    }
}

async fn check(shared: &Shared, target: &Target, on_change: &OnChange) {
    let started = Instant::now();
    let outcome = probe(target).await;
    if let Some(m) = &shared.metrics {
        m.check_done(Some(outcome.ok), started.elapsed());
    }
    {
        let mut stats = lock(&shared.stats);
        if outcome.ok {
            stats.passed += 1;
        } else {
            stats.failed += 1;
        }
    }
    // A target dropped while its probe ran is not brought back.
    if !lock(&shared.wanted).contains(target) {
        return;
    }
    let (changed, down) = {
        let mut table = lock(&shared.table);
        let changed = table.record(target, outcome);
        (changed, table.get(target).filter(|h| h.is_down()).cloned())
    };
    if changed || down.is_some() {
        lock(&shared.down).set(target, down.clone());
    }
    if let Some(m) = &shared.metrics {
        m.dest_health(target.addr, target.check.probe.kind(), Some(down.is_none()));
    }
    if changed {
        on_change();
    }
}

fn record_lateness(shared: &Shared, late_ms: u64) {
    let bucket = (late_ms as usize).min(LATENESS_BUCKETS);
    lock(&shared.stats).late_ms[bucket] += 1;
}
