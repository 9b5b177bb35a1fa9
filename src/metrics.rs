//! The daemon's Prometheus metrics: one [`Metrics`] value holding every
//! series, updated by the watch loop, rendered in the Prometheus text
//! exposition format (via the official `prometheus-client` crate).
//!
//! Invariant: metrics only record what they are told; they never read the
//! clock, the kernel or a source themselves (the caller passes timestamps),
//! and serving them over HTTP is the daemon's job (`daemon::http`).
//!
//! A scrape is written in pieces ([`Metrics::encode`],
//! [`Metrics::write_chunks`]) and holds no lock of ours or of
//! `prometheus_client` while its writer waits: the registry's own families
//! (small: a few kB) are written into a buffer first, then the traffic
//! series (most of the text: ~0.9 kB a service) from a snapshot of the
//! last read.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::model::Op;
use crate::model::traffic::TrafficTable;
use crate::reconcile::Source;

pub mod traffic;

/// The size of the pieces [`Metrics::write_chunks`] hands over (the last
/// one is shorter). Small: for a slow client hyper queues up to 16 of them
/// (or 408 KiB) beside the few of ours.
pub const SCRAPE_CHUNK: usize = 16 * 1024;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InfoLabels {
    git_commit: String,
    etcd_revision: String,
    plan_hash: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DiagLabels {
    source: &'static str,
    severity: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    dest: String,
    check: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Label value of an op's kind (`add_dest`, `del_service`, ...).
pub fn op_kind(op: &Op) -> &'static str {
    match op {
        Op::AddService { .. } => "add_service",
        Op::EditService { .. } => "edit_service",
        Op::DelService { .. } => "del_service",
        Op::AddDest { .. } => "add_dest",
        Op::EditDest { .. } => "edit_dest",
        Op::DelDest { .. } => "del_dest",
    }
}

/// What the info metric says about the last successful pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Info {
    pub git_commit: String,
    pub etcd_revision: String,
    pub plan_hash: String,
}

/// Every series the daemon exports.
pub struct Metrics {
    /// Every family but the traffic series, written first.
    registry: Registry,
    /// The traffic collector alone (the same prefix), written after.
    traffic_registry: Registry,
    passes: Family<OutcomeLabels, Counter>,
    pass_duration: Histogram,
    change_to_apply: Histogram,
    ops_applied: Family<KindLabels, Counter>,
    desired_services: Gauge,
    desired_dests: Gauge,
    live_services: Gauge,
    live_dests: Gauge,
    drift_corrections: Counter,
    failed_services: Gauge,
    services_emptied: Counter,
    empty_services: Gauge,
    kernel_reads: Counter,
    kernel_cached: Counter,
    errors: Family<SourceLabels, Counter>,
    last_success: Gauge<f64, AtomicU64>,
    staleness: Family<SourceLabels, Gauge<f64, AtomicU64>>,
    info: Family<InfoLabels, Gauge>,
    drains_active: Gauge,
    drains_completed: Family<ReasonLabels, Counter>,
    diagnostics: Family<DiagLabels, Gauge>,
    ready: Gauge,
    checks: Family<ResultLabels, Counter>,
    check_duration: Histogram,
    dest_healthy: Family<TargetLabels, Gauge>,
    health_drained: Gauge,
    health_fail_open: Gauge,
    /// VIPs on the VIP interface: desired, present (registered only with
    /// `--vip-interface`).
    vips: Family<StateLabels, Gauge>,
    vip_withdrawals: Counter,
    /// Unix seconds of the last good read per source, for staleness.
    last_good: Mutex<BTreeMap<Source, f64>>,
    /// The kernel's traffic counters, as last read.
    traffic: Arc<traffic::TrafficCollector>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::build(false)
    }

    /// [`Metrics::new`] with the VIP series (`--vip-interface`).
    pub fn with_vips() -> Metrics {
        Metrics::build(true)
    }

    fn build(vips: bool) -> Metrics {
        let m = Metrics {
            passes: Family::default(),
            pass_duration: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            change_to_apply: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            ops_applied: Family::default(),
            desired_services: Gauge::default(),
            desired_dests: Gauge::default(),
            live_services: Gauge::default(),
            live_dests: Gauge::default(),
            drift_corrections: Counter::default(),
            failed_services: Gauge::default(),
            services_emptied: Counter::default(),
            empty_services: Gauge::default(),
            kernel_reads: Counter::default(),
            kernel_cached: Counter::default(),
            errors: Family::default(),
            last_success: Gauge::default(),
            staleness: Family::default(),
            info: Family::default(),
            drains_active: Gauge::default(),
            drains_completed: Family::default(),
            diagnostics: Family::default(),
            ready: Gauge::default(),
            checks: Family::default(),
            check_duration: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            dest_healthy: Family::default(),
            health_drained: Gauge::default(),
            health_fail_open: Gauge::default(),
            vips: Family::default(),
            vip_withdrawals: Counter::default(),
            last_good: Mutex::new(BTreeMap::new()),
            traffic: Arc::default(),
            registry: Registry::default(),
            traffic_registry: Registry::default(),
        };
        // In this order in the exposition.
        let mut registry = Registry::with_prefix("clusterf");
        m.register_passes(&mut registry);
        m.register_tables(&mut registry);
        m.register_health(&mut registry);
        m.register_drains(&mut registry);
        m.register_render(&mut registry);
        m.register_checks(&mut registry);
        if vips {
            m.register_vips(&mut registry);
        }
        let mut traffic_registry = Registry::with_prefix("clusterf");
        traffic_registry.register_collector(Box::new(m.traffic.clone()));
        m.create_zero_series();
        Metrics {
            registry,
            traffic_registry,
            ..m
        }
    }

    /// Passes: how many, how long, how soon after a change.
    fn register_passes(&self, r: &mut Registry) {
        r.register(
            "passes",
            "Reconcile passes by outcome (ok, failed)",
            self.passes.clone(),
        );
        r.register_with_unit(
            "pass_duration",
            "Duration of a reconcile pass: read, render, plan, apply",
            Unit::Seconds,
            self.pass_duration.clone(),
        );
        r.register_with_unit(
            "change_to_apply",
            "Time from an input change (config, git, etcd, signal) to its successful apply",
            Unit::Seconds,
            self.change_to_apply.clone(),
        );
    }

    /// The IPVS tables: ops applied, desired and live sizes, drift, and
    /// how the live table was had.
    fn register_tables(&self, r: &mut Registry) {
        r.register(
            "ops_applied",
            "Kernel IPVS operations applied, by kind",
            self.ops_applied.clone(),
        );
        r.register(
            "desired_services",
            "IPVS services in the desired state (after drains)",
            self.desired_services.clone(),
        );
        r.register(
            "desired_dests",
            "IPVS dests in the desired state (after drains)",
            self.desired_dests.clone(),
        );
        r.register(
            "live_services",
            "IPVS services in the kernel at the last pass",
            self.live_services.clone(),
        );
        r.register(
            "live_dests",
            "IPVS dests in the kernel at the last pass",
            self.live_dests.clone(),
        );
        r.register(
            "drift_corrections",
            "Passes that changed the kernel although the desired state had not changed since the last apply (someone changed IPVS by hand)",
            self.drift_corrections.clone(),
        );
        r.register(
            "failed_services",
            "Services an op of which the kernel refused in the last apply: the rest of their changes was skipped, every other service was applied (0 after a clean apply)",
            self.failed_services.clone(),
        );
        r.register(
            "services_emptied",
            "Owned services an applied plan left without a dest that takes connections (they had one): a wiped or wrong etcd prefix shows here",
            self.services_emptied.clone(),
        );
        r.register(
            "empty_services",
            "Services in the desired state without a dest of weight above 0 (new connections to them fail)",
            self.empty_services.clone(),
        );
        r.register(
            "kernel_reads",
            "Passes that read the kernel's IPVS table (a netlink dump of every service and dest)",
            self.kernel_reads.clone(),
        );
        r.register(
            "kernel_cached_passes",
            "Passes that planned against the daemon's copy of the table (last read plus its own ops) instead of reading the kernel",
            self.kernel_cached.clone(),
        );
    }

    /// Health: errors, the last success, source staleness, the inputs.
    fn register_health(&self, r: &mut Registry) {
        r.register(
            "errors",
            "Failed passes and Git polls, by where they failed",
            self.errors.clone(),
        );
        r.register_with_unit(
            "last_success_timestamp",
            "Unix time of the last successful pass",
            Unit::Seconds,
            self.last_success.clone(),
        );
        r.register_with_unit(
            "source_staleness",
            "Age of the last good read of each source",
            Unit::Seconds,
            self.staleness.clone(),
        );
        r.register(
            "info",
            "The inputs of the last successful pass: git commit, etcd revision, plan hash",
            self.info.clone(),
        );
    }

    /// Drains in progress and ended.
    fn register_drains(&self, r: &mut Registry) {
        r.register(
            "drains_active",
            "Dests draining at weight 0 before their delete",
            self.drains_active.clone(),
        );
        r.register(
            "drains_completed",
            "Drains that ended, by reason (idle, timeout, returned, vanished)",
            self.drains_completed.clone(),
        );
    }

    /// The last render's problems, and readiness.
    fn register_render(&self, r: &mut Registry) {
        r.register(
            "diagnostics",
            "Files and keys with problems in the last render, by source (config, etcd, overlay) and severity: errors fail the pass, warnings are skipped or partly used",
            self.diagnostics.clone(),
        );
        r.register("ready", "1 once a pass has succeeded", self.ready.clone());
    }

    /// Backend health checks.
    fn register_checks(&self, r: &mut Registry) {
        r.register(
            "health_checks",
            "Backend health checks run, by result (passed, failed, skipped: over the in-flight limit)",
            self.checks.clone(),
        );
        r.register_with_unit(
            "health_check_duration",
            "How long each backend health check took",
            Unit::Seconds,
            self.check_duration.clone(),
        );
        r.register(
            "dest_healthy",
            "1 while a checked dest counts as up (healthy, or failing fewer than fall checks), 0 while down; absent until first checked",
            self.dest_healthy.clone(),
        );
        r.register(
            "health_drained_dests",
            "Dests held back (weight 0 or removed) for failing their health check",
            self.health_drained.clone(),
        );
        r.register(
            "health_fail_open_dests",
            "Dests down but kept in service because too few of their service's dests would stay up",
            self.health_fail_open.clone(),
        );
    }

    /// The VIP interface.
    fn register_vips(&self, r: &mut Registry) {
        r.register(
            "vips",
            "VIPs of the owned services, by state: desired (the last successful pass), present (on the VIP interface after it)",
            self.vips.clone(),
        );
        r.register(
            "vip_withdrawals",
            "Times every VIP was withdrawn from the VIP interface (fail static past --withdraw-after, or exit with --withdraw-on-exit)",
            self.vip_withdrawals.clone(),
        );
        for state in ["desired", "present"] {
            let _ = self.vips.get_or_create(&StateLabels { state });
        }
    }

    /// The VIPs after a VIP step.
    pub fn vips(&self, desired: usize, present: usize) {
        for (state, n) in [("desired", desired), ("present", present)] {
            self.vips
                .get_or_create(&StateLabels { state })
                .set(n as i64);
        }
    }

    /// Every VIP was withdrawn; `present` are left (0 unless it failed).
    pub fn vips_withdrawn(&self, present: usize) {
        self.vip_withdrawals.inc();
        self.vips
            .get_or_create(&StateLabels { state: "present" })
            .set(present as i64);
    }

    /// Series shown at 0 before anything happens.
    fn create_zero_series(&self) {
        for s in Source::ALL {
            let _ = self
                .errors
                .get_or_create(&SourceLabels { source: s.as_str() });
        }
        for outcome in ["ok", "failed"] {
            let _ = self.passes.get_or_create(&OutcomeLabels { outcome });
        }
        for result in ["passed", "failed", "skipped"] {
            let _ = self.checks.get_or_create(&ResultLabels { result });
        }
    }

    /// A health check ended (`None`: skipped, over the in-flight limit).
    pub fn check_done(&self, passed: Option<bool>, took: Duration) {
        let result = match passed {
            Some(true) => "passed",
            Some(false) => "failed",
            None => "skipped",
        };
        self.checks.get_or_create(&ResultLabels { result }).inc();
        if passed.is_some() {
            self.check_duration.observe(took.as_secs_f64());
        }
    }

    /// A checked dest's state (`None`: no longer checked).
    pub fn dest_health(&self, dest: std::net::SocketAddr, check: &'static str, up: Option<bool>) {
        let labels = TargetLabels {
            dest: dest.to_string(),
            check,
        };
        match up {
            Some(up) => {
                self.dest_healthy.get_or_create(&labels).set(i64::from(up));
            }
            None => {
                self.dest_healthy.remove(&labels);
            }
        }
    }

    /// What health does to the desired state now.
    pub fn health_verdicts(&self, drained: usize, fail_open: usize) {
        self.health_drained.set(drained as i64);
        self.health_fail_open.set(fail_open as i64);
    }

    /// A pass ended. `duration`: how long it took.
    pub fn pass_finished(&self, ok: bool, duration: Duration) {
        let outcome = if ok { "ok" } else { "failed" };
        self.passes.get_or_create(&OutcomeLabels { outcome }).inc();
        self.pass_duration.observe(duration.as_secs_f64());
    }

    /// A pass or poll failed at `source`.
    pub fn error(&self, source: Source) {
        self.errors
            .get_or_create(&SourceLabels {
                source: source.as_str(),
            })
            .inc();
    }

    /// A change reached the kernel `latency` after it happened.
    pub fn change_applied(&self, latency: Duration) {
        self.change_to_apply.observe(latency.as_secs_f64());
    }

    pub fn ops_applied<'a>(&self, ops: impl IntoIterator<Item = &'a Op>) {
        for op in ops {
            self.ops_applied
                .get_or_create(&KindLabels { kind: op_kind(op) })
                .inc();
        }
    }

    /// How many services the last apply failed (0: none).
    pub fn failed_services(&self, n: usize) {
        self.failed_services
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// An applied plan emptied `emptied` services; `empty` services of the
    /// desired state have no dest of weight above 0.
    pub fn emptied(&self, emptied: usize, empty: usize) {
        self.services_emptied.inc_by(emptied as u64);
        self.empty_services
            .set(i64::try_from(empty).unwrap_or(i64::MAX));
    }

    pub fn drift_corrected(&self) {
        self.drift_corrections.inc();
    }

    /// A pass planned against the kernel's table: read for real (`true`) or
    /// the daemon's copy of it.
    pub fn kernel_table(&self, read: bool) {
        if read {
            self.kernel_reads.inc();
        } else {
            self.kernel_cached.inc();
        }
    }

    pub fn set_sizes(&self, desired: (usize, usize), live: (usize, usize)) {
        let g = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.desired_services.set(g(desired.0));
        self.desired_dests.set(g(desired.1));
        self.live_services.set(g(live.0));
        self.live_dests.set(g(live.1));
    }

    /// A pass succeeded at `unix_secs`.
    pub fn success(&self, unix_secs: f64, info: &Info) {
        self.last_success.set(unix_secs);
        self.ready.set(1);
        self.info.clear();
        self.info
            .get_or_create(&InfoLabels {
                git_commit: info.git_commit.clone(),
                etcd_revision: info.etcd_revision.clone(),
                plan_hash: info.plan_hash.clone(),
            })
            .set(1);
    }

    /// `source` was read successfully at `unix_secs`.
    pub fn source_ok(&self, source: Source, unix_secs: f64) {
        self.last_good
            .lock()
            .expect("metrics lock")
            .insert(source, unix_secs);
    }

    /// Unix seconds of the last good read per source (the status page).
    pub fn last_good(&self) -> BTreeMap<Source, f64> {
        self.last_good.lock().expect("metrics lock").clone()
    }

    pub fn drains(&self, active: usize, completed: impl IntoIterator<Item = &'static str>) {
        self.drains_active
            .set(i64::try_from(active).unwrap_or(i64::MAX));
        for reason in completed {
            self.drains_completed
                .get_or_create(&ReasonLabels { reason })
                .inc();
        }
    }

    /// The diagnostics of the last render: how many files or keys have them,
    /// per (source, severity);
    /// every pair of `sources` x (error, warning) not given is set to 0.
    pub fn set_diagnostics(
        &self,
        sources: &[&'static str],
        counts: &BTreeMap<(&'static str, &'static str), usize>,
    ) {
        for source in sources {
            for severity in ["error", "warning"] {
                let n = counts.get(&(*source, severity)).copied().unwrap_or(0);
                self.diagnostics
                    .get_or_create(&DiagLabels { source, severity })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }

    /// A read of the kernel's traffic counters, which replaces the last.
    pub fn traffic_read(&self, table: TrafficTable, at_unix_secs: f64, took: Duration) {
        self.traffic.read(table, at_unix_secs, took.as_secs_f64());
    }

    /// The last read of the traffic counters and when (Unix seconds).
    pub fn traffic_last(&self) -> Option<(Arc<TrafficTable>, f64)> {
        self.traffic.last()
    }

    /// A read of the traffic counters that failed (the last one stays).
    pub fn traffic_read_failed(&self) {
        self.traffic.failed();
    }

    /// The text exposition, with source staleness computed against
    /// `now_unix_secs`, whole (tests; `/metrics` uses
    /// [`Metrics::write_chunks`]).
    pub fn render(&self, now_unix_secs: f64) -> String {
        let mut out = String::new();
        self.encode(now_unix_secs, &mut out)
            .expect("writing to a string cannot fail");
        out
    }

    /// The text exposition written to `out`, the same text as
    /// [`Metrics::render`]'s. No lock is held while `out` is written to, so
    /// `out` may block (on a slow client) without holding up a pass that
    /// updates a metric: a `Family` holds its lock while it is encoded,
    /// so the registry's families are encoded into a buffer first; the
    /// traffic series are written from the collector's snapshot of the
    /// last read (its lock released before).
    pub fn encode(&self, now_unix_secs: f64, out: &mut impl fmt::Write) -> fmt::Result {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        for (source, at) in self.last_good.lock().expect("metrics lock").iter() {
            self.staleness
                .get_or_create(&SourceLabels {
                    source: source.as_str(),
                })
                .set((now_unix_secs - at).max(0.0));
        }
        let mut families = String::new();
        encode_registry(&mut families, &self.registry)?;
        out.write_str(&families)?;
        drop(families);
        encode_registry(out, &self.traffic_registry)?;
        encode_eof(out)
    }

    /// [`Metrics::encode`] in pieces of [`SCRAPE_CHUNK`] bytes, each handed
    /// to `send` as it is full, the last (shorter, never empty) at the
    /// end: memory bounded by a chunk, whatever the size of the text. An
    /// error from `send` (the reader is gone) ends the encoding.
    pub fn write_chunks(
        &self,
        now_unix_secs: f64,
        send: impl FnMut(Vec<u8>) -> fmt::Result,
    ) -> fmt::Result {
        let mut chunks = Chunks {
            buf: Vec::with_capacity(SCRAPE_CHUNK),
            send,
        };
        self.encode(now_unix_secs, &mut chunks)?;
        let last = std::mem::take(&mut chunks.buf);
        if last.is_empty() {
            Ok(())
        } else {
            (chunks.send)(last)
        }
    }
}

/// A writer that cuts its text into [`SCRAPE_CHUNK`]-byte pieces (a piece
/// may end inside a UTF-8 character: they are bytes for the wire).
struct Chunks<F> {
    buf: Vec<u8>,
    send: F,
}

impl<F: FnMut(Vec<u8>) -> fmt::Result> fmt::Write for Chunks<F> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s.as_bytes();
        while !rest.is_empty() {
            let room = SCRAPE_CHUNK - self.buf.len();
            let (now, later) = rest.split_at(room.min(rest.len()));
            self.buf.extend_from_slice(now);
            rest = later;
            if self.buf.len() == SCRAPE_CHUNK {
                let full = std::mem::replace(&mut self.buf, Vec::with_capacity(SCRAPE_CHUNK));
                (self.send)(full)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ServiceKey;

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn exposition_has_every_series() {
        let m = Metrics::new();
        m.pass_finished(true, Duration::from_millis(3));
        m.pass_finished(false, Duration::from_millis(3));
        m.error(Source::Etcd);
        m.change_applied(Duration::from_millis(12));
        let svc: ServiceKey = "tcp://10.0.0.1:80".parse().unwrap();
        m.ops_applied(&[
            Op::DelService { service: svc },
            Op::DelDest {
                service: svc,
                dest: "10.1.0.1:80".parse().unwrap(),
            },
        ]);
        m.drift_corrected();
        m.failed_services(2);
        m.emptied(3, 4);
        m.set_sizes((2, 5), (1, 4));
        m.success(
            1000.0,
            &Info {
                git_commit: "abc".into(),
                etcd_revision: "42".into(),
                plan_hash: "ff".into(),
            },
        );
        m.source_ok(Source::Etcd, 990.0);
        m.drains(1, ["idle"]);
        m.set_diagnostics(
            &["config", "etcd"],
            &BTreeMap::from([(("etcd", "warning"), 200)]),
        );
        let text = m.render(1000.0);
        for (series, v) in [
            ("clusterf_passes_total{outcome=\"ok\"}", 1.0),
            ("clusterf_passes_total{outcome=\"failed\"}", 1.0),
            ("clusterf_errors_total{source=\"etcd\"}", 1.0),
            ("clusterf_errors_total{source=\"config\"}", 0.0),
            ("clusterf_ops_applied_total{kind=\"del_service\"}", 1.0),
            ("clusterf_drift_corrections_total", 1.0),
            ("clusterf_failed_services", 2.0),
            ("clusterf_services_emptied_total", 3.0),
            ("clusterf_empty_services", 4.0),
            ("clusterf_desired_dests", 5.0),
            ("clusterf_live_services", 1.0),
            ("clusterf_last_success_timestamp_seconds", 1000.0),
            ("clusterf_source_staleness_seconds{source=\"etcd\"}", 10.0),
            (
                "clusterf_info{git_commit=\"abc\",etcd_revision=\"42\",plan_hash=\"ff\"}",
                1.0,
            ),
            ("clusterf_drains_active", 1.0),
            ("clusterf_drains_completed_total{reason=\"idle\"}", 1.0),
            (
                "clusterf_diagnostics{source=\"etcd\",severity=\"warning\"}",
                200.0,
            ),
            (
                "clusterf_diagnostics{source=\"config\",severity=\"error\"}",
                0.0,
            ),
            ("clusterf_ready", 1.0),
            ("clusterf_pass_duration_seconds_count", 2.0),
            ("clusterf_change_to_apply_seconds_count", 1.0),
        ] {
            assert_eq!(value(&text, series), Some(v), "{series} in\n{text}");
        }
    }

    /// Metrics with every family holding series, and `services` services'
    /// traffic.
    fn busy(services: u32) -> Metrics {
        let m = Metrics::with_vips();
        m.pass_finished(true, Duration::from_millis(3));
        m.success(1.0, &Info::default());
        m.source_ok(Source::Etcd, 0.5);
        m.drains(1, ["idle"]);
        m.set_diagnostics(&["config"], &BTreeMap::new());
        m.check_done(Some(true), Duration::from_millis(1));
        m.dest_health("10.1.0.1:80".parse().unwrap(), "tcp", Some(true));
        m.vips(1, 1);
        m.traffic_read(services_table(services), 1.0, Duration::ZERO);
        m
    }

    fn services_table(services: u32) -> TrafficTable {
        use crate::model::traffic::Traffic;
        let mut table = TrafficTable::default();
        for i in 0..services {
            let key = ServiceKey::addr(
                crate::model::Protocol::Tcp,
                std::net::Ipv4Addr::from(0x0a00_0000 + i).into(),
                80,
            );
            let t = Traffic {
                connections: u64::from(i),
                ..Traffic::default()
            };
            table.services.insert(key, t);
        }
        table
    }

    #[test]
    fn the_chunks_are_the_rendered_text_cut_at_the_chunk_size() {
        let m = busy(2_000);
        let whole = m.render(2.0);
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        m.write_chunks(2.0, |c| {
            chunks.push(c);
            Ok(())
        })
        .unwrap();
        assert!(chunks.len() > 20, "{} chunks", chunks.len());
        let (last, full) = chunks.split_last().unwrap();
        assert!(full.iter().all(|c| c.len() == SCRAPE_CHUNK));
        assert!(!last.is_empty() && last.len() <= SCRAPE_CHUNK);
        assert_eq!(String::from_utf8(chunks.concat()).unwrap(), whole);
        assert!(whole.ends_with("# EOF\n"));
    }

    #[test]
    fn a_failed_send_ends_the_encoding() {
        let m = busy(2_000);
        let mut sent = 0;
        let r = m.write_chunks(0.0, |_| {
            sent += 1;
            if sent == 3 { Err(fmt::Error) } else { Ok(()) }
        });
        assert!(r.is_err());
        assert_eq!(sent, 3);
    }

    /// Every update a pass or the health checker or the traffic reader
    /// makes, new series included (a `Family` takes its write lock for
    /// them), run on another thread: it must finish while the scrape's
    /// writer is blocked.
    fn updates_finish(m: &Arc<Metrics>, round: u32, table: TrafficTable) -> bool {
        let m = m.clone();
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let n = round % 250;
            m.pass_finished(round.is_multiple_of(2), Duration::from_millis(1));
            m.success(
                f64::from(round),
                &Info {
                    git_commit: format!("c{round}"),
                    ..Info::default()
                },
            );
            m.error(Source::Etcd);
            m.source_ok(Source::Config, f64::from(round));
            m.dest_health(
                std::net::SocketAddr::from(([10, 2, (round / 250) as u8, n as u8], 80)),
                "tcp",
                Some(true),
            );
            m.check_done(None, Duration::ZERO);
            m.drains(0, ["timeout"]);
            m.set_diagnostics(&["etcd"], &BTreeMap::new());
            m.ops_applied(&[Op::DelService {
                service: "tcp://10.0.0.1:80".parse().unwrap(),
            }]);
            m.vips(2, 2);
            m.traffic_read(table, f64::from(round), Duration::ZERO);
            let _ = m.last_good();
            let _ = done.send(());
        });
        finished.recv_timeout(Duration::from_secs(10)).is_ok()
    }

    #[test]
    fn no_lock_is_held_while_the_scrape_writer_waits() {
        struct Blocking<'a> {
            m: &'a Arc<Metrics>,
            writes: u32,
            text: String,
        }
        impl fmt::Write for Blocking<'_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                // The writer "waits on the client" at every write: the
                // updates must get through meanwhile.
                self.writes += 1;
                assert!(
                    updates_finish(self.m, self.writes, services_table(20)),
                    "an update waited on the scrape's writer (write {}, after:\n{})",
                    self.writes,
                    self.text
                );
                self.text.push_str(s);
                Ok(())
            }
        }
        let m = Arc::new(busy(20));
        let before = m.render(1.0);
        let mut w = Blocking {
            m: &m,
            writes: 0,
            text: String::new(),
        };
        m.encode(1.0, &mut w).unwrap();
        assert!(w.writes > 100, "{} writes", w.writes);
        // The registry's families as at the scrape's start (the traffic
        // series: as at the start of their part, after the first write).
        let traffic = "# HELP clusterf_traffic_reads ";
        let split = |t: &str| t.split_once(traffic).map(|(a, _)| a.to_string());
        assert_eq!(split(&w.text).unwrap(), split(&before).unwrap());
        let series = "clusterf_ipvs_service_connections_total{";
        assert_eq!(w.text.matches(series).count(), 20);
        assert!(w.text.ends_with("\n# EOF\n"));
    }

    #[test]
    fn info_keeps_only_the_latest_inputs() {
        let m = Metrics::new();
        let info = |c: &str| Info {
            git_commit: c.into(),
            ..Info::default()
        };
        m.success(1.0, &info("one"));
        m.success(2.0, &info("two"));
        let text = m.render(2.0);
        assert!(!text.contains("git_commit=\"one\""), "{text}");
        assert!(text.contains("git_commit=\"two\""), "{text}");
    }
}
