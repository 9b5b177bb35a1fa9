//! `clusterf apply --watch`: the daemon a frontend host runs. It keeps the
//! kernel's IPVS table equal to the config (directory or Git repository)
//! plus the overlay (etcd or a directory), continuously.
//!
//! This is the I/O edge around the pure loop in [`crate::reconcile`]: it
//! owns the clock, the timers, the config-directory watcher (notify), Git
//! polls, the etcd watch, signals, the metrics/health HTTP listener, the
//! drain state file and the kernel client, and turns all of them into
//! [`Event`]s for the [`Schedule`]. Each pass reads the sources, validates,
//! renders (incrementally: [`render::memo`] re-renders only the services
//! whose inputs changed), applies drains, plans against the kernel's table
//! and applies. The table is read from the kernel (a netlink dump of every
//! service and dest) only when the daemon's copy of it
//! ([`crate::reconcile::live`]: last read plus the ops applied since) may
//! not be used: first pass, after any failed pass, once per `--resync`
//! interval (the anti-entropy pass), after SIGHUP, and while drains are in
//! progress or about to start (they need fresh connection counters).
//!
//! Invariant: fail static. A pass that fails anywhere before the apply
//! changes nothing in the kernel; the daemon never flushes on start or stop
//! (only `--flush-on-exit` deletes, on request, the services it owns; never
//! others), and it never decides what to
//! change itself: the planner does, against the table as last read plus our
//! own acked ops, never anything newer, so it never deletes something that
//! is not in that table. A change by hand is corrected at the next real
//! read, at the latest one resync interval after the last one; an op that
//! fails because of it fails the pass, and the retry reads the kernel.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, ValueEnum};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

use crate::cli::source::{ConfigArgs, OverlayArgs};
use crate::compile;
use crate::diag::Diagnostic;
use crate::error::format_error;
use crate::metrics::{Info, Metrics};
use crate::model::{IpvsState, Op};
use crate::netlink;
use crate::plan::{self, Guards, Ownership};
use crate::reconcile::drain::{self, Completion, Drains};
use crate::reconcile::live::{self, LiveCache};
use crate::reconcile::{Action, Event, Schedule, Settings, Source, Trigger};
use crate::render;
use crate::source;
use crate::source::etcd::watch::{OverlayWatch, Tuning};
use crate::tree::Tree;

/// The daemon's flags (flattened into `clusterf apply`).
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Keep running: reconcile continuously on every change, resync
    /// periodically, never flush
    #[arg(long)]
    pub watch: bool,

    /// Git poll interval for --config-repo (e.g. 15s, 1m; not 0: use
    /// POST /hooks/git to poll on demand)
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_interval, requires = "watch")]
    pub poll: Duration,

    /// Period of the anti-entropy pass that re-reads every source and the
    /// kernel and corrects drift, whatever other passes run (not 0)
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_interval, requires = "watch")]
    pub resync: Duration,

    /// Window that coalesces bursts of changes into one pass (0: none,
    /// a pass starts at the first change; changes during a pass still
    /// coalesce into the next one)
    #[arg(long, value_name = "DURATION", default_value = "20ms", value_parser = parse_duration, requires = "watch")]
    pub debounce: Duration,

    /// Drain dests that leave the desired state: weight 0 until their active
    /// connections reach 0 or this much time passed (0: delete at once)
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration, requires = "watch")]
    pub drain_timeout: Duration,

    /// File that keeps drains in progress across restarts
    #[arg(long, value_name = "FILE", requires = "watch")]
    pub state_file: Option<PathBuf>,

    /// Serve /metrics, /healthz, /readyz and POST /hooks/git on this address
    /// (e.g. 127.0.0.1:9469); off by default
    #[arg(long, value_name = "ADDR", requires = "watch")]
    pub metrics_listen: Option<SocketAddr>,

    /// On exit, delete the IPVS services clusterf owns (--own; every
    /// service without --own), never others (default: leave the rules in
    /// place)
    #[arg(long, requires = "watch")]
    pub flush_on_exit: bool,

    /// Log format on stderr
    #[arg(long, value_enum, default_value = "text", requires = "watch")]
    pub log_format: LogFormat,
}

impl Default for WatchArgs {
    fn default() -> Self {
        WatchArgs {
            watch: true,
            poll: Duration::from_secs(15),
            resync: Duration::from_secs(30),
            debounce: Duration::from_millis(20),
            drain_timeout: Duration::ZERO,
            state_file: None,
            metrics_listen: None,
            flush_on_exit: false,
            log_format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `250ms`, `15s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 250ms, 15s, 2m, 1h"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration {s:?}: unknown unit {unit:?}, expected ms, s, m or h"
            ));
        }
    };
    if !secs.is_finite() || secs > 1e9 {
        return Err(format!("invalid duration {s:?}: too long"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A period: a duration as [`parse_duration`], but not zero (a zero period
/// would run its pass or poll in a busy loop).
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err("must be longer than 0 (a zero period would run in a busy loop)".to_string());
    }
    Ok(d)
}

/// Everything the daemon needs, already validated.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub config: ConfigArgs,
    pub overlay: OverlayArgs,
    pub compile: compile::Options,
    pub ownership: Ownership,
    pub guards: Guards,
    pub watch: WatchArgs,
    /// Timing of the etcd watcher.
    pub etcd_tuning: Tuning,
    /// First retry delay after a failed pass (doubles up to 30 s).
    pub backoff_initial: Duration,
    /// How long the startup pass waits for the first etcd read.
    pub etcd_startup_wait: Duration,
}

impl WatchOptions {
    pub fn new(
        config: ConfigArgs,
        overlay: OverlayArgs,
        compile: compile::Options,
        watch: WatchArgs,
    ) -> WatchOptions {
        WatchOptions {
            config,
            overlay,
            compile,
            ownership: Ownership::all(),
            guards: Guards::default(),
            watch,
            etcd_tuning: Tuning::default(),
            backoff_initial: Duration::from_millis(500),
            etcd_startup_wait: Duration::from_secs(5),
        }
    }
}

/// The kernel as the daemon sees it: read the table with counters, apply
/// ops. [`netlink::Client`] in production; tests may use [`MemoryKernel`].
/// There is no flush: `--flush-on-exit` deletes the owned services through
/// `apply`, so that services clusterf does not own are never touched.
pub trait Kernel: Send {
    fn read(&mut self) -> Result<netlink::Live>;
    /// Applies `ops` in order; on failure, which ops were applied.
    fn apply(&mut self, ops: &[Op]) -> Result<(), ApplyFailure>;
}

/// Not every op was applied.
#[derive(Debug, Clone)]
pub struct ApplyFailure {
    pub error: String,
    /// Per op: whether the kernel acked it.
    pub applied: Vec<bool>,
}

impl Kernel for netlink::Client {
    fn read(&mut self) -> Result<netlink::Live> {
        netlink::Client::read(self)
    }

    fn apply(&mut self, ops: &[Op]) -> Result<(), ApplyFailure> {
        netlink::Client::apply(self, ops)
            .map(|_| ())
            .map_err(|f| ApplyFailure {
                error: f.describe(ops).trim_end().to_string(),
                applied: f
                    .outcomes
                    .iter()
                    .map(|o| matches!(o, netlink::Outcome::Applied))
                    .collect(),
            })
    }
}

/// An in-memory kernel table (for tests and for running the daemon where
/// there is no IPVS): ops are applied as the kernel would, with
/// [`Op::apply_to`].
#[derive(Clone, Debug, Default)]
pub struct MemoryKernel {
    pub live: Arc<Mutex<netlink::Live>>,
    /// How many times the table was read (dumped), as a netlink client
    /// would dump it.
    pub reads: Arc<AtomicU64>,
}

impl MemoryKernel {
    pub fn table(&self) -> IpvsState {
        lock(&self.live).state.clone()
    }

    /// How many times the daemon read the whole table.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
}

impl Kernel for MemoryKernel {
    fn read(&mut self) -> Result<netlink::Live> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        Ok(lock(&self.live).clone())
    }

    fn apply(&mut self, ops: &[Op]) -> Result<(), ApplyFailure> {
        let mut live = lock(&self.live);
        let mut applied = vec![false; ops.len()];
        for (i, op) in ops.iter().enumerate() {
            if let Err(e) = op.apply_to(&mut live.state) {
                return Err(ApplyFailure { error: e, applied });
            }
            applied[i] = true;
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

// --- the pass -------------------------------------------------------------

enum ConfigInput {
    Dir(PathBuf),
    /// The tree of the last Git poll.
    Git(Arc<Mutex<Option<Arc<Tree>>>>),
}

enum OverlayInput {
    None,
    Dir(PathBuf),
    Etcd(Arc<OverlayWatch>),
}

/// A successful pass.
#[derive(Debug, Clone)]
struct PassReport {
    ops: usize,
    drains_active: usize,
    next_drain_deadline_ms: Option<u64>,
    /// The drain state file could not be written: retry soon.
    state_unsaved: bool,
}

/// A failed pass: where, and why (one line).
#[derive(Debug, Clone)]
struct PassFailure {
    source: Source,
    error: String,
}

fn fail(source: Source) -> impl Fn(anyhow::Error) -> PassFailure {
    move |e| PassFailure {
        source,
        error: format_error(&e),
    }
}

/// What one pass needs; lives across passes (caches, drains, last state).
struct Pass {
    config: ConfigInput,
    config_tree: Option<Arc<Tree>>,
    git_subdir: Option<String>,
    overlay: OverlayInput,
    ownership: Ownership,
    guards: Guards,
    drain_timeout: Duration,
    drains: Drains,
    state_file: Option<PathBuf>,
    kernel: Box<dyn Kernel>,
    metrics: Arc<Metrics>,
    /// The last render, kept by the incremental renderer: a pass re-renders
    /// only the services whose inputs changed (none on a resync, drain
    /// recheck or SIGHUP over unchanged trees). It keeps copies of the
    /// trees, not the trees: the etcd watcher then patches its tree in
    /// place instead of copying it on every event.
    memo: render::memo::Memo,
    /// The kernel's table as last read plus the ops applied since; taken
    /// out at the start of a pass and put back only by a successful one.
    table: LiveCache,
    /// Set (by SIGHUP) to make the next pass read the kernel.
    table_stale: Arc<AtomicBool>,
    /// The daemon's clock: `epoch.elapsed()` is the schedule's now.
    epoch: tokio::time::Instant,
    /// The memo's generation (equal: an equal desired state) applied by the
    /// last successful pass, and the drains then (drift: the kernel changed
    /// although these did not).
    last_ok: Option<(u64, Drains)>,
    /// Inputs whose diagnostics were already logged.
    logged_diags_for: Option<String>,
    /// The diagnostics logged and still present: each is logged once when
    /// it appears and once (info) when it goes, not at every pass.
    logged_diags: BTreeSet<Diagnostic>,
    /// The last save of the drain state failed: retried at every pass
    /// until it succeeds.
    state_unsaved: bool,
}

impl Pass {
    fn run(&mut self, triggers: &BTreeSet<Trigger>) -> Result<PassReport, PassFailure> {
        let now = unix_now();
        let clock = self.epoch.elapsed();

        // The copy of the kernel's table, if this pass may use it. Taken out
        // here: a pass that fails anywhere below does not put it back, so
        // the next pass reads the kernel. Drains in progress need fresh
        // connection counters: read.
        // The resync is the anti-entropy pass: it re-reads every source
        // (below) and the kernel.
        if self.table_stale.swap(false, Ordering::Relaxed) || triggers.contains(&Trigger::Resync) {
            self.table.invalidate();
        }
        let cached = self.table.take(clock).filter(|_| self.drains.is_empty());

        // Config: re-read unless only etcd or a drain asked for this pass.
        let reread = self.config_tree.is_none()
            || triggers
                .iter()
                .any(|t| !matches!(t, Trigger::Etcd | Trigger::Drain));
        match &self.config {
            ConfigInput::Dir(path) => {
                if reread {
                    let tree = source::dir::read(path).map_err(fail(Source::Config))?;
                    self.config_tree = Some(Arc::new(tree));
                    self.metrics.source_ok(Source::Config, now.as_secs_f64());
                }
            }
            ConfigInput::Git(slot) => {
                let tree = lock(slot).clone().ok_or_else(|| PassFailure {
                    source: Source::Git,
                    error: "no commit of the config repository read yet".to_string(),
                })?;
                self.config_tree = Some(tree);
            }
        }
        let config_tree = self.config_tree.clone().expect("read above");

        // Overlay.
        let mut etcd_revision = String::new();
        let overlay: Option<Arc<Tree>> = match &self.overlay {
            OverlayInput::None => None,
            OverlayInput::Dir(path) => Some(Arc::new(
                source::dir::read(path).map_err(fail(Source::Config))?,
            )),
            OverlayInput::Etcd(watch) => {
                let snap = watch.snapshot().ok_or_else(|| PassFailure {
                    source: Source::Etcd,
                    error: format!(
                        "etcd overlay not read yet: {}",
                        watch
                            .status()
                            .last_error
                            .unwrap_or_else(|| "no answer".into())
                    ),
                })?;
                etcd_revision = snap.revision.to_string();
                let last_good = now.saturating_sub(snap.age());
                self.metrics
                    .source_ok(Source::Etcd, last_good.as_secs_f64());
                Some(snap.tree)
            }
        };

        // Render and validate: only what changed since the last pass.
        self.memo.render(&config_tree, overlay.as_deref());
        debug!(work = ?self.memo.work(), "rendered");
        let generation = self.memo.generation();
        let rendered = self.memo.rendered().expect("rendered above");
        let inputs = format!(
            "{}:{}",
            rendered.config_hash,
            rendered.overlay_hash.as_deref().unwrap_or("")
        );
        let log_diags = self.logged_diags_for.as_deref() != Some(inputs.as_str());
        if log_diags || !rendered.is_ok() {
            // Named from the repository root when the config is a
            // subdirectory of it (a copy: the memo keeps the render as is).
            let diags = match &self.git_subdir {
                Some(sub) => {
                    let mut d = rendered.diags.clone();
                    source::git::name_from_root(&mut d, sub, &config_tree, overlay.as_deref());
                    std::borrow::Cow::Owned(d)
                }
                None => std::borrow::Cow::Borrowed(&rendered.diags),
            };
            if log_diags {
                let overlay_source = match &self.overlay {
                    OverlayInput::Etcd(_) => "etcd",
                    _ => "overlay",
                };
                report_diagnostics(
                    &mut self.logged_diags,
                    &self.metrics,
                    overlay_source,
                    diags.iter(),
                );
                self.logged_diags_for = Some(inputs.clone());
            }
            if !rendered.is_ok() {
                let n = diags
                    .iter()
                    .filter(|d| d.severity == crate::diag::Severity::Error)
                    .count();
                let first = diags
                    .iter()
                    .find(|d| d.severity == crate::diag::Severity::Error)
                    .map(ToString::to_string)
                    .unwrap_or_default();
                let at = match &config_tree.origin.revision {
                    Some(rev) => format!(" at commit {rev}"),
                    None => String::new(),
                };
                return Err(PassFailure {
                    source: Source::Config,
                    error: format!(
                        "invalid config{at} ({n} errors, first: {first}): keeping the kernel as it is"
                    ),
                });
            }
        }
        // The etcd watcher patches its tree in place when nobody else holds
        // it.
        drop(overlay);

        // The kernel's table, then drains and the plan.
        let now_ms = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
        let ownership = &self.ownership;
        let plan_against = |table: &live::Table, outcome: &drain::Outcome<'_>| {
            plan::plan(&outcome.desired, &table.state, ownership, &self.guards).map_err(|e| {
                PassFailure {
                    source: Source::Plan,
                    error: format!("{e}: keeping the kernel as it is"),
                }
            })
        };
        // Against the copy: no drain in progress (checked above), so no
        // drain record to complete. A dest leaving the desired state may
        // have connections to drain, which only a real read can tell: then
        // read after all.
        let mut decided = None;
        if let Some(table) = cached {
            let outcome = drain::Outcome::unchanged(&rendered.state);
            let plan = plan_against(&table, &outcome)?;
            let may_drain =
                !self.drain_timeout.is_zero() && drain::deletes_drainable(plan.ops(), &table.state);
            if !may_drain {
                self.metrics.kernel_table(false);
                decided = Some((table, outcome, plan));
            }
        }
        let (mut table, outcome, plan) = match decided {
            Some(d) => d,
            None => {
                let read = self.kernel.read().map_err(fail(Source::Kernel))?;
                self.metrics.source_ok(Source::Kernel, now.as_secs_f64());
                self.metrics.kernel_table(true);
                let table = live::Table {
                    state: read.state,
                    stats: read.stats,
                    read_at: clock,
                };
                let outcome = drain::apply(
                    &rendered.state,
                    &table.state,
                    &table.stats,
                    &self.drains,
                    now_ms,
                    self.drain_timeout,
                    &|k| ownership.owns(k),
                );
                let plan = plan_against(&table, &outcome)?;
                (table, outcome, plan)
            }
        };
        let live_sizes = (table.state.services.len(), table.state.dest_count());
        let mut keep_table = true;

        if !plan.is_empty() {
            let text = plan::output::text(&plan, &outcome.desired, false);
            info!(
                changes = plan.changes.len(),
                "applying\n{}",
                text.trim_end()
            );
            let ops: Vec<Op> = plan.ops().cloned().collect();
            // On failure the copy of the table is not put back: the next
            // pass reads the kernel.
            if let Err(f) = self.kernel.apply(&ops) {
                self.metrics.ops_applied(
                    ops.iter()
                        .zip(&f.applied)
                        .filter(|(_, a)| **a)
                        .map(|(op, _)| op),
                );
                return Err(PassFailure {
                    source: Source::Apply,
                    error: f.error,
                });
            }
            self.metrics.ops_applied(&ops);
            // The kernel acked every op: the copy follows. An op that does
            // not apply to the copy means the copy was wrong: not kept.
            if let Err(e) = table.apply(&ops) {
                warn!(
                    "the copy of the kernel's table was wrong ({e}): the next pass reads the kernel"
                );
                keep_table = false;
            }
        }

        // The apply deleted the dests whose drain ended: their records go
        // (they are kept through a failed apply so it does not restart them).
        let mut outcome = outcome;
        for (service, dest, why) in &outcome.completed {
            info!(%service, %dest, reason = completion_label(*why), "drain ended");
            outcome.drains.remove(service, dest);
        }
        // Drift: ops although neither the desired state nor the drains
        // changed since the last good pass. Compared after the records of
        // ended drains are gone: a drain that ends changes the drains (its
        // delete is no correction).
        let unchanged = self
            .last_ok
            .as_ref()
            .is_some_and(|(g, d)| *g == generation && *d == outcome.drains);
        if !plan.is_empty() && unchanged {
            warn!(
                changes = plan.changes.len(),
                "corrected drift: the kernel differed from the unchanged desired state"
            );
            self.metrics.drift_corrected();
        }
        for d in &outcome.active {
            if self.drains.get(&d.service, &d.dest).is_none() {
                info!(service = %d.service, dest = %d.dest, active_conns = d.active_conns,
                    timeout_s = self.drain_timeout.as_secs(), "drain started: weight 0");
            }
        }
        self.metrics.drains(
            outcome.active.len(),
            outcome
                .completed
                .iter()
                .map(|(_, _, c)| completion_label(*c)),
        );
        // The records stay in memory whether or not the file could be
        // written (a drain must end at its timeout, not restart on every
        // pass); a failed save is counted and retried until it succeeds.
        if outcome.drains != self.drains || self.state_unsaved {
            if let Some(path) = &self.state_file {
                match save_drains(path, &outcome.drains) {
                    Ok(()) => {
                        if self.state_unsaved {
                            info!(source = "state", "drain state saved again");
                        }
                        self.state_unsaved = false;
                    }
                    Err(e) => {
                        if !self.state_unsaved {
                            error!(
                                source = "state",
                                "{}: drains go on from memory, retrying the save",
                                format_error(&e)
                            );
                        }
                        self.metrics.error(Source::State);
                        self.state_unsaved = true;
                    }
                }
            }
            self.drains = outcome.drains;
        }

        self.metrics.set_sizes(
            (outcome.desired.services.len(), outcome.desired.dest_count()),
            live_sizes,
        );
        let plan_hash = {
            use sha2::{Digest, Sha256};
            let mut h = Sha256::new();
            h.update(inputs.as_bytes());
            h.update(self.drains.to_json().as_bytes());
            crate::tree::hex(&h.finalize()[..8])
        };
        self.metrics.success(
            now.as_secs_f64(),
            &Info {
                git_commit: config_tree.origin.revision.clone().unwrap_or_default(),
                etcd_revision,
                plan_hash,
            },
        );
        if keep_table {
            self.table.put(table);
        }
        let report = PassReport {
            ops: plan.changes.len(),
            drains_active: outcome.active.len(),
            next_drain_deadline_ms: outcome.next_deadline_ms,
            state_unsaved: self.state_unsaved,
        };
        self.last_ok = Some((generation, self.drains.clone()));
        Ok(report)
    }
}

impl Pass {
    /// `--flush-on-exit`: deletes the services this daemon owns from the
    /// kernel (read for real), as ordinary ops; how many.
    fn delete_owned(&mut self) -> Result<usize> {
        let live = self.kernel.read()?;
        let ops: Vec<Op> = live
            .state
            .services
            .keys()
            .filter(|k| self.ownership.owns(k))
            .map(|k| Op::DelService { service: *k })
            .collect();
        if !ops.is_empty() {
            self.kernel
                .apply(&ops)
                .map_err(|f| anyhow!("deleting the owned services: {}", f.error))?;
            self.metrics.ops_applied(&ops);
        }
        Ok(ops.len())
    }
}

/// Where a diagnostic comes from: the overlay (`overlay:` keys; etcd or an
/// overlay directory, as `overlay_source` says) or the config.
fn diag_source(d: &Diagnostic, overlay_source: &'static str) -> &'static str {
    if d.file.starts_with("overlay:") {
        overlay_source
    } else {
        "config"
    }
}

/// Logs the diagnostics that appeared since `logged` (warn or error) and
/// those that went away (info), keeps `logged` equal to `now`, and sets the
/// `clusterf_diagnostics` gauge (files or keys with a problem, by source and
/// severity); (appeared, resolved).
fn report_diagnostics<'a>(
    logged: &mut BTreeSet<Diagnostic>,
    metrics: &Metrics,
    overlay_source: &'static str,
    now: impl IntoIterator<Item = &'a Diagnostic>,
) -> (usize, usize) {
    use crate::diag::Severity;
    // The level says warning or error already: not the text again.
    let line = |d: &Diagnostic| {
        let s = d.to_string();
        match s.strip_prefix("warning: ") {
            Some(rest) => rest.to_string(),
            None => s,
        }
    };
    let now: BTreeSet<&Diagnostic> = now.into_iter().collect();
    // The gauge counts files and keys, not lines: a skipped key has a
    // "skipped" line and the reason.
    let mut files = BTreeSet::new();
    let mut appeared = 0;
    for d in &now {
        let source = diag_source(d, overlay_source);
        let severity = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        files.insert((source, severity, d.file.as_str()));
        if !logged.contains(*d) {
            appeared += 1;
            match d.severity {
                Severity::Error => error!(source, "{}", line(d)),
                Severity::Warning => warn!(source, "{}", line(d)),
            }
        }
    }
    let gone: Vec<Diagnostic> = logged
        .iter()
        .filter(|d| !now.contains(d))
        .cloned()
        .collect();
    for d in &gone {
        info!(
            source = diag_source(d, overlay_source),
            "resolved: {}",
            line(d)
        );
    }
    let mut counts = std::collections::BTreeMap::new();
    for (source, severity, _) in files {
        *counts.entry((source, severity)).or_insert(0usize) += 1;
    }
    *logged = now.into_iter().cloned().collect();
    metrics.set_diagnostics(&["config", overlay_source], &counts);
    (appeared, gone.len())
}

fn completion_label(c: Completion) -> &'static str {
    match c {
        Completion::Idle => "idle",
        Completion::Timeout => "timeout",
        Completion::Returned => "returned",
        Completion::Vanished => "vanished",
    }
}

/// The directory of the state file and the temporary file written next to
/// it before the rename.
fn state_temp(path: &Path) -> Result<(&Path, PathBuf)> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("--state-file {}: not a file name", path.display()))?;
    Ok((dir, dir.join(format!(".{}.tmp", name.to_string_lossy()))))
}

/// Writes the drain records atomically: a temporary file in the same
/// directory, synced, then renamed over the old one.
pub fn save_drains(path: &Path, drains: &Drains) -> Result<()> {
    use std::io::Write;
    let (_, tmp) = state_temp(path)?;
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(drains.to_json().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().with_context(|| format!("writing the drain state {}", path.display()))
}

/// Checks at start that the drain state can be written where `path` says:
/// the directory exists and a file can be created in it (the temporary file
/// [`save_drains`] writes, removed again).
pub fn check_state_dir(path: &Path) -> Result<()> {
    let (dir, tmp) = state_temp(path)?;
    std::fs::File::create(&tmp)
        .and_then(|_| std::fs::remove_file(&tmp))
        .map_err(|e| {
            anyhow!(
                "--state-file {}: cannot write in {}: {e}",
                path.display(),
                dir.display()
            )
        })
}

/// Reads the drain records; a missing file is no drains.
pub fn load_drains(path: &Path) -> Result<Drains> {
    match std::fs::read_to_string(path) {
        Ok(text) => Drains::from_json(&text).map_err(|e| anyhow!("{}:{e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Drains::default()),
        Err(e) => Err(e).with_context(|| format!("reading the drain state {}", path.display())),
    }
}

// --- Git polls ------------------------------------------------------------

struct GitPoller {
    source: source::git::GitSource,
    slot: Arc<Mutex<Option<Arc<Tree>>>>,
}

impl GitPoller {
    /// Fetches and reads the ref; whether the tree changed.
    fn poll(&mut self) -> Result<bool> {
        self.source.fetch()?;
        let tree = self.source.read_commit(None)?;
        let mut slot = lock(&self.slot);
        let changed = slot.as_ref().is_none_or(|old| {
            old.origin.revision != tree.origin.revision || old.content_hash() != tree.content_hash()
        });
        if changed {
            info!(
                source = "git",
                commit = tree.origin.revision.as_deref().unwrap_or(""),
                "new commit"
            );
            *slot = Some(Arc::new(tree));
        }
        Ok(changed)
    }
}

// --- the daemon -----------------------------------------------------------

enum Msg {
    PassDone {
        result: Result<PassReport, PassFailure>,
        took: Duration,
        changed_at: Option<Duration>,
    },
    GitPolled(Result<bool, String>),
    HookGit,
    ConfigChanged,
}

/// What the daemon reports about itself (for tests and health checks).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    pub passes_ok: u64,
    pub passes_failed: u64,
    /// Ops applied by the last successful pass.
    pub last_ops: usize,
    /// The error of the last failed pass, until a pass succeeds.
    pub last_error: Option<String>,
    pub drains_active: usize,
}

/// A running daemon.
pub struct Daemon {
    metrics_addr: Option<SocketAddr>,
    metrics: Arc<Metrics>,
    status: Arc<Mutex<Status>>,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<()>>,
}

struct Http {
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    hook: Option<mpsc::UnboundedSender<Msg>>,
}

impl Daemon {
    /// Starts the daemon inside the current tokio runtime.
    pub async fn start(opts: WatchOptions, kernel: Box<dyn Kernel>) -> Result<Daemon> {
        let metrics = Arc::new(Metrics::new());
        let status = Arc::new(Mutex::new(Status::default()));
        let ready = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::unbounded_channel::<Msg>();

        // Config source.
        let mut git = None;
        let mut fs_watcher = None;
        let (config, git_subdir) = if let Some(path) = &opts.config.config_path {
            fs_watcher = Some(ConfigWatch::start(path, tx.clone())?);
            (ConfigInput::Dir(path.clone()), None)
        } else if let Some(gopts) = opts.config.git_options() {
            let subdir = gopts.normalized_subdir();
            let slot = Arc::new(Mutex::new(None));
            git = Some(Arc::new(Mutex::new(GitPoller {
                source: source::git::GitSource::new(gopts)?,
                slot: slot.clone(),
            })));
            (ConfigInput::Git(slot), subdir)
        } else {
            bail!("no config source: give --config-path DIR or --config-repo PATH|URL")
        };

        // Overlay source.
        let overlay = if let Some(path) = &opts.overlay.overlay_path {
            OverlayInput::Dir(path.clone())
        } else if !opts.overlay.etcd.is_empty() {
            let settings = crate::cli::etcd::settings(&opts.overlay)?;
            OverlayInput::Etcd(Arc::new(OverlayWatch::spawn(
                settings,
                opts.etcd_tuning.clone(),
            )))
        } else {
            OverlayInput::None
        };
        // Give the etcd watcher a moment for its first read, so that the
        // startup pass does not fail (and back off) only because it raced it.
        if let OverlayInput::Etcd(w) = &overlay {
            let deadline = tokio::time::Instant::now() + opts.etcd_startup_wait;
            while w.snapshot().is_none() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let etcd_rx = match &overlay {
            OverlayInput::Etcd(w) => Some((w.clone(), w.subscribe())),
            _ => None,
        };

        if let Some(path) = &opts.watch.state_file {
            check_state_dir(path)?;
        }
        let drains = match &opts.watch.state_file {
            Some(path) => match load_drains(path) {
                Ok(d) => {
                    if !d.is_empty() {
                        info!(drains = d.len(), "resuming drains from {}", path.display());
                    }
                    d
                }
                Err(e) => {
                    warn!("{}: starting without drain records", format_error(&e));
                    Drains::default()
                }
            },
            None => Drains::default(),
        };

        // The daemon's clock, shared by the schedule and the passes (the
        // copy of the kernel's table expires on it).
        let epoch = tokio::time::Instant::now();
        let table_stale = Arc::new(AtomicBool::new(false));
        let pass = Arc::new(Mutex::new(Pass {
            config,
            config_tree: None,
            git_subdir,
            overlay,
            ownership: opts.ownership.clone(),
            guards: opts.guards,
            drain_timeout: opts.watch.drain_timeout,
            drains,
            state_file: opts.watch.state_file.clone(),
            kernel,
            metrics: metrics.clone(),
            memo: render::memo::Memo::new(opts.compile.clone()),
            table: LiveCache::new(opts.watch.resync),
            table_stale: table_stale.clone(),
            epoch,
            last_ok: None,
            logged_diags_for: None,
            logged_diags: BTreeSet::new(),
            state_unsaved: false,
        }));

        // HTTP.
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let (http_stop_tx, http_stop_rx) = oneshot::channel::<()>();
        let metrics_addr = match opts.watch.metrics_listen {
            Some(addr) => {
                let http = Arc::new(Http {
                    metrics: metrics.clone(),
                    ready: ready.clone(),
                    hook: git.is_some().then(|| tx.clone()),
                });
                Some(serve_http(addr, http, http_stop_rx).await?)
            }
            None => None,
        };

        let settings = Settings {
            debounce: opts.watch.debounce,
            resync: opts.watch.resync,
            poll: git.as_ref().map(|_| opts.watch.poll),
            backoff_initial: opts.backoff_initial,
            backoff_max: Duration::from_secs(30).max(opts.backoff_initial),
        };
        let core = Core {
            settings,
            epoch,
            table_stale,
            pass,
            git,
            etcd: etcd_rx,
            metrics: metrics.clone(),
            status: status.clone(),
            ready,
            tx,
            rx,
            flush_on_exit: opts.watch.flush_on_exit,
            fs_watcher,
        };
        let task = tokio::spawn(async move {
            let r = core.run(shutdown_rx).await;
            let _ = http_stop_tx.send(());
            r
        });
        Ok(Daemon {
            metrics_addr,
            metrics,
            status,
            shutdown: Some(shutdown_tx),
            task,
        })
    }

    /// Where the metrics listener is bound (the port of `:0` resolved).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn status(&self) -> Status {
        lock(&self.status).clone()
    }

    /// Stops the daemon, leaving the kernel as it is (unless
    /// `--flush-on-exit`); returns within about a second.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => Err(anyhow!("daemon task failed: {e}")),
        }
    }

    /// Waits until the daemon ends by itself (it does not, short of an
    /// internal error) .
    pub async fn join(self) -> Result<()> {
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(anyhow!("daemon task failed: {e}")),
        }
    }
}

struct Core {
    settings: Settings,
    epoch: tokio::time::Instant,
    /// Set on SIGHUP: the next pass reads the kernel.
    table_stale: Arc<AtomicBool>,
    pass: Arc<Mutex<Pass>>,
    git: Option<Arc<Mutex<GitPoller>>>,
    etcd: Option<(Arc<OverlayWatch>, tokio::sync::watch::Receiver<u64>)>,
    metrics: Arc<Metrics>,
    status: Arc<Mutex<Status>>,
    ready: Arc<AtomicBool>,
    tx: mpsc::UnboundedSender<Msg>,
    rx: mpsc::UnboundedReceiver<Msg>,
    flush_on_exit: bool,
    fs_watcher: Option<ConfigWatch>,
}

impl Core {
    async fn run(mut self, mut shutdown: oneshot::Receiver<()>) -> Result<()> {
        let start = self.epoch;
        let now = move || start.elapsed();
        let mut sched = Schedule::new(self.settings.clone(), now());
        let mut events: Vec<Event> = Vec::new();
        let mut pass_running = false;
        let mut etcd_failures = 0u64;
        let far = Duration::from_secs(86_400 * 365);
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(|e| warn!("cannot handle SIGHUP: {e}"))
            .ok();
        loop {
            let mut wake = far;
            for action in sched.step(now(), events.drain(..)) {
                match action {
                    Action::StartPass {
                        triggers,
                        changed_at,
                    } => {
                        pass_running = true;
                        self.start_pass(triggers, changed_at);
                    }
                    Action::PollGit => self.start_poll(),
                    Action::WakeAt(t) => wake = t,
                }
            }
            let sleep = tokio::time::sleep_until(start + wake);
            let etcd_changed = async {
                match &mut self.etcd {
                    Some((_, rx)) => rx.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut shutdown => break,
                _ = sleep => events.push(Event::Tick),
                ok = etcd_changed => {
                    if ok {
                        events.push(Event::EtcdChanged);
                    } else {
                        warn!(source = "etcd", "etcd watcher stopped; keeping the last overlay");
                        self.etcd = None;
                    }
                }
                Some(msg) = self.rx.recv() => match msg {
                    Msg::PassDone { result, took, changed_at } => {
                        pass_running = false;
                        events.push(self.pass_done(result, took, changed_at, now()));
                    }
                    Msg::GitPolled(Ok(new_commit)) => {
                        self.metrics.source_ok(Source::Git, unix_now().as_secs_f64());
                        events.push(Event::GitPolled { new_commit });
                    }
                    Msg::GitPolled(Err(e)) => {
                        warn!(source = "git", "poll failed (a commit read before stays in use): {e}");
                        self.metrics.error(Source::Git);
                        events.push(Event::GitPollFailed);
                    }
                    Msg::HookGit => events.push(Event::HookGit),
                    Msg::ConfigChanged => {
                        if let Some(w) = &mut self.fs_watcher {
                            w.refresh();
                        }
                        events.push(Event::ConfigChanged);
                    }
                },
                got = async {
                    match &mut hup {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    if got.is_some() {
                        info!("SIGHUP: reloading");
                        self.table_stale.store(true, Ordering::Relaxed);
                        events.push(Event::Sighup);
                    } else {
                        hup = None;
                    }
                }
            }
            // The etcd watcher's own failures count as etcd errors.
            if let Some((w, _)) = &self.etcd {
                let failures = w.status().failures;
                for _ in etcd_failures..failures {
                    self.metrics.error(Source::Etcd);
                }
                etcd_failures = failures;
            }
        }

        // Shutdown: let a running pass finish (briefly), then leave.
        if pass_running {
            let deadline = tokio::time::Instant::now() + Duration::from_millis(800);
            while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
                if let Msg::PassDone {
                    result,
                    took,
                    changed_at,
                } = msg
                {
                    self.pass_done(result, took, changed_at, now());
                    pass_running = false;
                    break;
                }
            }
        }
        if self.flush_on_exit {
            if pass_running {
                warn!("--flush-on-exit: a pass is still running; not flushing");
            } else {
                let pass = self.pass.clone();
                let r = tokio::task::spawn_blocking(move || lock(&pass).delete_owned()).await;
                match r {
                    Ok(Ok(n)) => info!(
                        services = n,
                        "deleted the owned IPVS services (--flush-on-exit); others stay"
                    ),
                    Ok(Err(e)) => error!("--flush-on-exit: {}", format_error(&e)),
                    Err(e) => error!("--flush-on-exit: {e}"),
                }
            }
        } else {
            info!("stopping; the IPVS rules stay in place");
        }
        Ok(())
    }

    fn start_pass(&self, triggers: BTreeSet<Trigger>, changed_at: Option<Duration>) {
        let pass = self.pass.clone();
        let tx = self.tx.clone();
        let names: Vec<&str> = triggers.iter().map(|t| t.as_str()).collect();
        debug!(triggers = names.join(","), "pass");
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let result = lock(&pass).run(&triggers);
            let _ = tx.send(Msg::PassDone {
                result,
                took: started.elapsed(),
                changed_at,
            });
        });
    }

    fn start_poll(&self) {
        let Some(git) = self.git.clone() else { return };
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || {
            let r = lock(&git).poll().map_err(|e| format_error(&e));
            let _ = tx.send(Msg::GitPolled(r));
        });
    }

    fn pass_done(
        &self,
        result: Result<PassReport, PassFailure>,
        took: Duration,
        changed_at: Option<Duration>,
        now: Duration,
    ) -> Event {
        self.metrics.pass_finished(result.is_ok(), took);
        let mut status = lock(&self.status);
        match result {
            Ok(report) => {
                if let Some(at) = changed_at {
                    self.metrics.change_applied(now.saturating_sub(at));
                }
                if status.last_error.take().is_some() {
                    info!("recovered: the kernel matches the desired state again");
                }
                if report.ops > 0 {
                    info!(
                        changes = report.ops,
                        ms = took.as_millis() as u64,
                        "applied"
                    );
                }
                status.passes_ok += 1;
                status.last_ops = report.ops;
                status.drains_active = report.drains_active;
                self.ready.store(true, Ordering::Relaxed);
                // Look again at the next drain deadline, and every second
                // while drains wait for connections to close.
                // (A change by hand is seen by the resync, which re-reads
                // the kernel every --resync whatever other passes run.)
                let mut recheck_at = report.next_drain_deadline_ms.map(|deadline| {
                    let left = Duration::from_millis(deadline)
                        .saturating_sub(unix_now())
                        .min(Duration::from_secs(1));
                    now + left
                });
                // An unsaved drain state is retried within seconds.
                if report.state_unsaved {
                    let retry = now + Duration::from_secs(5);
                    recheck_at = Some(recheck_at.map_or(retry, |at| at.min(retry)));
                }
                Event::PassOk { recheck_at }
            }
            Err(f) => {
                error!(source = f.source.as_str(), "pass failed: {}", f.error);
                self.metrics.error(f.source);
                status.passes_failed += 1;
                status.last_error = Some(f.error);
                Event::PassFailed { source: f.source }
            }
        }
    }
}

/// Watches the config directory: the directory itself recursively (any
/// change below it except to hidden files marks the config dirty: creates,
/// writes, renames, editors that save by rename included), and its parent
/// for the entry of the path, so that a replacement of the whole directory
/// (`rm -rf` and a fresh copy) or a swap of a symlink to it (`ln -sfn r2
/// tmp && mv -T tmp current`) is seen too: [`ConfigWatch::refresh`] then
/// moves the recursive watch to what the path names now.
struct ConfigWatch {
    /// The path as given (absolute).
    path: PathBuf,
    watcher: notify::RecommendedWatcher,
    /// What the recursive watch is on: the resolved directory and its
    /// (device, inode); `None` while the path names nothing watchable.
    watched: Option<(PathBuf, (u64, u64))>,
    /// The watched directory, for the event handler.
    root: Arc<Mutex<Option<PathBuf>>>,
    /// Set by the event handler when the watched directory itself went
    /// away (deleted or moved): its watch is gone even if a new directory
    /// at the same path got the same inode number.
    lost: Arc<AtomicBool>,
}

impl ConfigWatch {
    fn start(path: &Path, tx: mpsc::UnboundedSender<Msg>) -> Result<ConfigWatch> {
        use notify::{EventKind, RecursiveMode, Watcher};
        let path = std::path::absolute(path)
            .with_context(|| format!("--config-path {}", path.display()))?;
        let parent = path.parent().map(Path::to_path_buf);
        let name = path.file_name().map(|n| n.to_os_string());
        let filter_parent = parent.clone();
        let root: Arc<Mutex<Option<PathBuf>>> = Arc::default();
        let lost = Arc::new(AtomicBool::new(false));
        let (h_root, h_lost) = (root.clone(), lost.clone());
        let mut watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
                Ok(ev) => {
                    if matches!(ev.kind, EventKind::Access(_)) {
                        return;
                    }
                    if matches!(
                        ev.kind,
                        EventKind::Remove(_)
                            | EventKind::Modify(notify::event::ModifyKind::Name(_))
                    ) && lock(&h_root).as_ref().is_some_and(|r| ev.paths.contains(r))
                    {
                        h_lost.store(true, Ordering::Relaxed);
                    }
                    let relevant = ev.paths.is_empty()
                        || ev.paths.iter().any(|p| {
                            // Directly in the parent: only the config
                            // path's own entry.
                            if p.parent() == filter_parent.as_deref() {
                                return p.file_name() == name.as_deref();
                            }
                            p.file_name()
                                .is_none_or(|n| !crate::tree::is_hidden(&n.to_string_lossy()))
                        });
                    if relevant {
                        let _ = tx.send(Msg::ConfigChanged);
                    }
                }
                Err(e) => {
                    warn!(source = "config", "watching the config directory: {e}");
                    let _ = tx.send(Msg::ConfigChanged);
                }
            })
            .context("starting the config directory watcher")?;
        // Without the parent's watch a replaced directory or a swapped
        // symlink is seen at the next resync only: not fatal.
        if let Some(parent) = &parent
            && let Err(e) = watcher.watch(parent, RecursiveMode::NonRecursive)
        {
            warn!(
                source = "config",
                "watching {}: {e}; a replaced config directory is seen at the next resync",
                parent.display()
            );
        }
        let mut w = ConfigWatch {
            path,
            watcher,
            watched: None,
            root,
            lost,
        };
        w.rewatch()
            .with_context(|| format!("watching {}", w.path.display()))?;
        Ok(w)
    }

    /// What the path names now: the resolved directory and its identity.
    fn resolve(&self) -> std::io::Result<(PathBuf, (u64, u64))> {
        use std::os::unix::fs::MetadataExt;
        let target = std::fs::canonicalize(&self.path)?;
        let meta = std::fs::metadata(&target)?;
        Ok((target, (meta.dev(), meta.ino())))
    }

    fn rewatch(&mut self) -> Result<()> {
        use notify::{RecursiveMode, Watcher};
        let now = self.resolve()?;
        if let Some((old, _)) = self.watched.take() {
            // Gone already when the directory was deleted: nothing to undo.
            let _ = self.watcher.unwatch(&old);
        }
        *lock(&self.root) = Some(now.0.clone());
        self.lost.store(false, Ordering::Relaxed);
        self.watcher.watch(&now.0, RecursiveMode::Recursive)?;
        self.watched = Some(now);
        Ok(())
    }

    /// Moves the recursive watch if the path names another directory than
    /// the watched one (replaced, or a symlink swapped); whether it moved.
    fn refresh(&mut self) -> bool {
        let current = self.resolve().ok();
        if current.is_none() || (current == self.watched && !self.lost.load(Ordering::Relaxed)) {
            return false;
        }
        match self.rewatch() {
            Ok(()) => {
                info!(
                    source = "config",
                    path = %self.path.display(),
                    target = %self.watched.as_ref().map(|w| w.0.display().to_string()).unwrap_or_default(),
                    "the config directory was replaced: watching the new one"
                );
                true
            }
            Err(e) => {
                // Retried at the next event in the parent directory; the
                // resync reads the directory meanwhile.
                warn!(
                    source = "config",
                    "watching {}: {}",
                    self.path.display(),
                    format_error(&e)
                );
                false
            }
        }
    }
}

async fn serve_http(
    addr: SocketAddr,
    http: Arc<Http>,
    stop: oneshot::Receiver<()>,
) -> Result<SocketAddr> {
    use axum::Router;
    use axum::extract::State;
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    use axum::routing::{get, post};

    async fn metrics(State(h): State<Arc<Http>>) -> impl IntoResponse {
        (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            h.metrics.render(unix_now().as_secs_f64()),
        )
    }
    async fn readyz(State(h): State<Arc<Http>>) -> impl IntoResponse {
        if h.ready.load(Ordering::Relaxed) {
            (StatusCode::OK, "ready\n")
        } else {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: no successful pass yet\n",
            )
        }
    }
    async fn hook(State(h): State<Arc<Http>>) -> impl IntoResponse {
        match &h.hook {
            Some(tx) => {
                let _ = tx.send(Msg::HookGit);
                (StatusCode::ACCEPTED, "git poll scheduled\n")
            }
            None => (
                StatusCode::NOT_FOUND,
                "no git config source to poll (--config-repo)\n",
            ),
        }
    }

    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/hooks/git", post(hook))
        .with_state(http);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("--metrics-listen {addr}: cannot listen"))?;
    let local = listener.local_addr()?;
    info!(addr = %local, "serving /metrics, /healthz, /readyz, POST /hooks/git");
    tokio::spawn(async move {
        let r = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop.await;
            })
            .await;
        if let Err(e) = r {
            error!("metrics listener: {e}");
        }
    });
    Ok(local)
}

/// Sets up logging on stderr: text (coloured only on a terminal without
/// NO_COLOR) or JSON lines; `CLUSTERF_LOG` filters (default `info`).
pub fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("CLUSTERF_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => {
            let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            builder.with_ansi(color).try_init()
        }
    };
}

/// `clusterf apply --watch ...`: the daemon with apply's sources,
/// ownership and guards.
pub fn run_from_apply(args: &crate::cli::apply::ApplyArgs) -> Result<u8> {
    if args.plan.is_some() {
        bail!("--watch applies from the sources, not a saved plan");
    }
    if args.dry_run {
        bail!("--watch and --dry-run exclude each other: use clusterf plan");
    }
    let mut opts = WatchOptions::new(
        args.config.clone(),
        args.overlay.clone(),
        args.compile.options()?,
        args.watch.clone(),
    );
    opts.ownership = args.safety.ownership()?;
    opts.guards = args.safety.guards();
    run_watch(opts)
}

/// Runs the daemon against the kernel until SIGTERM or SIGINT.
pub fn run_watch(opts: WatchOptions) -> Result<u8> {
    init_logging(opts.watch.log_format);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let result = rt.block_on(async {
        let kernel = netlink::Client::connect()?;
        info!("clusterf apply --watch starting; the IPVS table is never flushed on start");
        let daemon = Daemon::start(opts, Box::new(kernel)).await?;
        wait_for_termination().await?;
        info!("shutting down");
        daemon.stop().await
    });
    rt.shutdown_timeout(Duration::from_millis(100));
    result.map(|()| 0)
}

async fn wait_for_termination() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("20ms"), Ok(Duration::from_millis(20)));
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("15"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert!(
            parse_duration("5 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("1e400").is_err());
    }

    #[test]
    fn zero_periods_are_refused_at_parsing() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            watch: WatchArgs,
        }
        for flag in ["--resync", "--poll"] {
            let e = Cli::try_parse_from(["t", "--watch", flag, "0"])
                .err()
                .unwrap_or_else(|| panic!("{flag} 0 accepted"))
                .to_string();
            assert!(
                e.contains(flag) && e.contains("must be longer than 0"),
                "{e}"
            );
            assert!(Cli::try_parse_from(["t", "--watch", flag, "0ms"]).is_err());
        }
        let ok =
            Cli::try_parse_from(["t", "--watch", "--debounce", "0", "--resync", "1s"]).unwrap();
        assert_eq!(ok.watch.debounce, Duration::ZERO);
        assert_eq!(ok.watch.resync, Duration::from_secs(1));
    }

    #[test]
    fn a_diagnostic_is_logged_once_while_it_persists() {
        let metrics = Metrics::new();
        let mut logged = BTreeSet::new();
        let mut bad = crate::diag::Diagnostics::default();
        for i in 0..200 {
            let key = format!("overlay:services/test/backends/b{i}");
            bad.warning(&key, None, "skipped");
            bad.warning(key, None, "invalid json");
        }
        bad.error("services/test/frontend", None, "missing port");
        // The first time: all of them.
        assert_eq!(
            report_diagnostics(&mut logged, &metrics, "etcd", bad.iter()),
            (401, 0)
        );
        // Inputs changed elsewhere, the same problems: nothing logged again.
        for _ in 0..10 {
            assert_eq!(
                report_diagnostics(&mut logged, &metrics, "etcd", bad.iter()),
                (0, 0)
            );
        }
        let text = metrics.render(0.0);
        assert!(
            text.contains("clusterf_diagnostics{source=\"etcd\",severity=\"warning\"} 200"),
            "{text}"
        );
        assert!(
            text.contains("clusterf_diagnostics{source=\"config\",severity=\"error\"} 1"),
            "{text}"
        );
        // One fixed, one new: one line each way.
        let mut next = crate::diag::Diagnostics(bad.0[2..].to_vec());
        next.warning("overlay:services/test/backends/new", None, "invalid json");
        assert_eq!(
            report_diagnostics(&mut logged, &metrics, "etcd", next.iter()),
            (1, 2)
        );
        // All fixed: the gauge goes to 0.
        assert_eq!(
            report_diagnostics(&mut logged, &metrics, "etcd", []),
            (0, 400)
        );
        let text = metrics.render(0.0);
        assert!(
            text.contains("clusterf_diagnostics{source=\"etcd\",severity=\"warning\"} 0"),
            "{text}"
        );
    }

    #[test]
    fn drain_state_file_is_written_atomically_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("drains.json");
        assert!(load_drains(&path).unwrap().is_empty());
        let mut drains = Drains::default();
        drains.insert(drain::DrainRecord {
            service: "tcp://10.0.0.1:80".parse().unwrap(),
            dest: "10.1.0.1:80".parse().unwrap(),
            since_ms: 5,
            attrs: crate::model::DestAttrs::new(crate::model::Method::Masq, 10),
            service_attrs: crate::model::ServiceAttrs::with_scheduler("wlc"),
        });
        save_drains(&path, &drains).unwrap();
        assert_eq!(load_drains(&path).unwrap(), drains);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("drains.json")]);
        std::fs::write(&path, "{not json").unwrap();
        let e = format_error(&load_drains(&path).unwrap_err());
        assert!(e.starts_with(&format!("{}:1:", path.display())), "{e}");
    }
}
