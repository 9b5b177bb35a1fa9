//! One pass of the daemon, as named steps over one snapshot of the inputs
//! ([`Pass::run`]): read the inputs, render and report, choose the live
//! table, plan, apply, record. The decisions are pure functions (when the
//! copy of the kernel's table may be used: `reconcile::live`; drains:
//! `reconcile::drain`; the changes: `plan`); the steps do the I/O around
//! them. After either outcome, [`Pass::publish_status`] hands the fleet
//! status record (`fleet::after_pass`) to the publisher.
//!
//! With `--vip-interface`, the VIP step wraps the apply: VIP removals
//! before the IPVS ops, additions after (`daemon::vips`).
//!
//! Must not: decide when a pass runs (`reconcile::schedule` does) or change
//! the kernel anywhere but in the apply step (and the VIP step around it).
//! Fail static: a pass that fails before the apply changes nothing in the
//! kernel.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Result, anyhow};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use super::clock::Now;
use super::diagnostics::DiagnosticLog;
use super::health_view::{Desired, Generation, HealthStep};
use super::inputs::{ConfigInput, OverlayInput};
use super::kernel::{self, ApplyFailure, Kernel};
use super::plan_log::{PlanHead, PlanLog};
use super::state_file::save_drains;
use super::status::StatusPublisher;
use super::status_page::Query;
use super::status_page::snapshot::{
    self, Counters, PlanText, ServiceInput, ServicePage, VipSection,
};
use super::sync::lock;
use super::vips::VipStep;
use crate::diag::Diagnostics;
use crate::error::format_error;
use crate::fleet::{self, FrontendError, FrontendStatus, PassFacts, PassOutcome, ProblemKind};
use crate::health::HealthConfig;
use crate::metrics::{Info, Metrics};
use crate::model::{IpvsState, Op, ServiceKey};
use crate::plan::{self, Guards, Outline, Ownership};
use crate::reconcile::drain::{self, Completion, DrainStatus, Drains};
use crate::reconcile::live::{self, LiveCache, LiveCopy, Situation, Table};
use crate::reconcile::{Source, Trigger};
use crate::render::memo::Memo;
use crate::source;
use crate::tree::Tree;
use crate::vip::{self, VipPlan};

/// A successful pass.
#[derive(Debug, Clone)]
pub struct PassReport {
    pub ops: usize,
    pub drains_active: usize,
    pub next_drain_deadline_ms: Option<u64>,
    /// The drain state file could not be written: retry soon.
    pub state_unsaved: bool,
    /// Services and dests of the desired state applied (drained dests
    /// included).
    pub desired_size: (usize, usize),
    /// Identifies the desired state applied ([`desired_hash`]).
    pub desired_hash: String,
    /// The pass corrected drift.
    pub drift_corrected: bool,
    /// The etcd revision of the overlay rendered (empty without etcd).
    pub etcd_revision: String,
    /// Dests health checks found down (drained, removed or kept by
    /// fail-open).
    pub unhealthy_dests: usize,
}

/// What [`Pass::page`] gives the status page.
pub struct PassPage {
    pub services: ServicePage,
    pub counters: Counters,
    pub last_plan: Option<PlanText>,
    /// The current diagnostics, errors and warnings.
    pub diagnostics: Vec<String>,
    pub fleet: Option<fleet::Fleet>,
    pub vips: Option<VipSection>,
    /// The last render had no error.
    pub render_ok: bool,
}

/// A failed pass: where, and why (one line).
#[derive(Debug, Clone)]
pub struct PassFailure {
    pub source: Source,
    pub error: String,
    /// An invalid config: its first errors, as `validate` prints them
    /// (empty for every other failure).
    pub diagnostics: Vec<String>,
    /// An apply the kernel refused ops of: the services that failed (the
    /// rest of the plan was applied). Empty for every other failure.
    pub refused: Vec<ServiceKey>,
}

impl PassFailure {
    /// Whether the kernel was left behind the desired state as a whole (a
    /// source, the planner or the kernel failed): fail static, as
    /// `reconcile::withdraw` counts it. Not when only some services' ops
    /// were refused and the rest of the plan was applied.
    pub fn is_static(&self) -> bool {
        self.refused.is_empty()
    }
}

impl PassFailure {
    /// A pass that panicked: the panic's message. Its copy of the table
    /// was taken out and not put back, so the next pass reads the kernel;
    /// the memo holds its last render out while it works, so a panic in
    /// it leaves none and the next render is a full one.
    pub fn panicked(payload: &(dyn std::any::Any + Send)) -> PassFailure {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_string());
        PassFailure {
            source: Source::Pass,
            error: format!("the pass panicked: {message}; the next pass reads the kernel"),
            diagnostics: Vec::new(),
            refused: Vec::new(),
        }
    }
}

fn fail(source: Source) -> impl Fn(anyhow::Error) -> PassFailure {
    move |e| PassFailure {
        source,
        error: format_error(&e),
        diagnostics: Vec::new(),
        refused: Vec::new(),
    }
}

/// How many of an invalid config's errors its fleet status record carries.
const STATUS_DIAGNOSTICS: usize = 10;

/// What passes keep from one to the next.
pub struct Pass {
    config: ConfigInput,
    /// The config tree of the last pass (kept when only etcd or a drain
    /// asked for this one).
    config_tree: Option<Arc<Tree>>,
    overlay: OverlayInput,
    render: Render,
    health: HealthStep,
    kernel: KernelView,
    rules: Rules,
    /// Drains in progress. The records stay in memory whether or not the
    /// state file could be written: a drain must end at its timeout, not
    /// restart on every pass.
    drains: Drains,
    state_file: Option<PathBuf>,
    /// The last save of the drain state failed: retried at every pass
    /// until it succeeds.
    state_unsaved: bool,
    /// The desired state's generation (equal: an equal desired state)
    /// applied by the last successful pass, and the drains then (drift: the
    /// kernel changed although these did not).
    last_ok: Option<(Generation, Drains)>,
    /// The desired state's generation that the copy of the kernel's table
    /// equals (in what the planner compares), set by a pass that applied
    /// its whole plan with no dest held back by a drain: the next pass
    /// plans only the services its render or health changed
    /// (`plan::plan_within`).
    copy_generation: Option<Generation>,
    metrics: Arc<Metrics>,
    /// The daemon's clock: `epoch.elapsed()` is the schedule's now.
    epoch: Instant,
    /// This frontend's fleet status, when published.
    fleet: Option<FleetStatus>,
    /// For the status page: the last applied plan's text...
    last_plan: Option<PlanText>,
    /// ...and the commit and etcd revision the last pass read...
    last_input: (Option<String>, Option<String>),
    /// ...and, while the config is invalid, the copy of the kernel's table
    /// as the last successful pass left it.
    shown_copy: Option<LiveCopy>,
    /// The VIP step (`--vip-interface`).
    vips: Option<VipStep>,
}

/// This frontend's fleet status record (issue 17) and where it goes.
pub struct FleetStatus {
    /// The record after the last pass.
    pub last: FrontendStatus,
    pub publisher: StatusPublisher,
    /// The compile options, part of what identifies a desired state.
    pub compile: String,
}

/// What [`Pass::new`] takes.
pub struct PassSetup {
    pub config: ConfigInput,
    pub overlay: OverlayInput,
    pub memo: Memo,
    pub health: HealthStep,
    pub kernel: Box<dyn Kernel>,
    /// How long the copy of the kernel's table may be used.
    pub resync: Duration,
    /// Set (by SIGHUP) to make the next pass read the kernel.
    pub sighup: Arc<AtomicBool>,
    pub ownership: Ownership,
    pub guards: Guards,
    pub drain_timeout: Duration,
    pub drains: Drains,
    pub state_file: Option<PathBuf>,
    pub metrics: Arc<Metrics>,
    pub epoch: Instant,
    pub fleet: Option<FleetStatus>,
    pub vips: Option<VipStep>,
}

/// The render step's state: the incremental renderer and what was logged.
struct Render {
    /// The last render, kept by the incremental renderer: a pass re-renders
    /// only the services whose inputs changed (none on a resync, drain
    /// recheck or SIGHUP over unchanged trees). It keeps fingerprints, not
    /// the trees: the etcd watcher then patches its tree in place instead
    /// of copying it on every event.
    memo: Memo,
    log: DiagnosticLog,
}

/// The kernel, and the copy of its table kept between passes.
struct KernelView {
    kernel: Box<dyn Kernel>,
    /// The table as last read plus the ops applied since; taken out at the
    /// start of a pass and put back only by a successful one.
    copy: LiveCache,
    /// Set by SIGHUP: the next pass reads the kernel.
    sighup: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

/// What the plan step may do.
struct Rules {
    ownership: Ownership,
    guards: Guards,
    drain_timeout: Duration,
}

/// The inputs of one pass, read once.
struct Snapshot {
    config: Arc<Tree>,
    overlay: Option<Arc<Tree>>,
    /// The overlay paths the etcd watch saw change since the last pass
    /// took them: a hint for the memo, which checks it.
    hint: Option<BTreeSet<String>>,
    etcd_revision: String,
}

/// The overlay tree, the paths changed since the last pass, the etcd
/// revision.
type OverlayRead = (Option<Arc<Tree>>, Option<BTreeSet<String>>, String);

/// What the render step gives the later steps.
struct Rendering<'m> {
    desired: &'m IpvsState,
    /// The memo's generation: equal, an equal desired state.
    generation: u64,
    /// The inputs' content hashes, `config:overlay`.
    inputs: String,
    /// The services the render may have changed (`None`: any).
    touched: Option<&'m BTreeSet<ServiceKey>>,
    /// The services' health checks.
    health: &'m HealthConfig,
}

/// A plan and the table it was made against; its adds are made again
/// from `outcome.desired`, the state it was planned toward.
struct Planned<'d> {
    table: LiveCopy,
    outcome: drain::Outcome<'d>,
    plan: Outline,
}

/// What the apply step leaves for the record step (owned: the render is
/// no longer borrowed).
struct Applied {
    /// The copy of the table after the ops; `None` when it proved wrong.
    table: Option<LiveCopy>,
    changes: usize,
    desired_size: (usize, usize),
    live_size: (usize, usize),
    drains: Drains,
    active: Vec<DrainStatus>,
    completed: Vec<(ServiceKey, SocketAddr, Completion)>,
    next_deadline_ms: Option<u64>,
    /// The head of the plan's text, when it changed anything.
    plan_text: Option<PlanHead>,
}

impl Pass {
    pub fn new(s: PassSetup) -> Pass {
        let overlay_label = s.overlay.label();
        Pass {
            config: s.config,
            config_tree: None,
            overlay: s.overlay,
            render: Render {
                memo: s.memo,
                log: DiagnosticLog::new(overlay_label),
            },
            health: s.health,
            kernel: KernelView {
                kernel: s.kernel,
                copy: LiveCache::new(s.resync),
                sighup: s.sighup,
                metrics: s.metrics.clone(),
            },
            rules: Rules {
                ownership: s.ownership,
                guards: s.guards,
                drain_timeout: s.drain_timeout,
            },
            drains: s.drains,
            state_file: s.state_file,
            state_unsaved: false,
            last_ok: None,
            copy_generation: None,
            metrics: s.metrics,
            epoch: s.epoch,
            fleet: s.fleet,
            last_plan: None,
            last_input: (None, None),
            shown_copy: None,
            vips: s.vips,
        }
    }

    /// One pass.
    pub fn run(&mut self, triggers: &BTreeSet<Trigger>) -> Result<PassReport, PassFailure> {
        let now = Now::read(self.epoch);
        let (copy, unusable) = self.take_copy(triggers, now);
        let copy_generation = self.copy_generation.take();
        let mut input = self.read_inputs(triggers, now)?;
        let before = (self.render.memo.generation(), self.health.version());
        let rendering = match self.render.run(&input, &self.metrics) {
            Ok(r) => {
                // Not held while the kernel is read.
                drop(unusable);
                self.shown_copy = None;
                r
            }
            Err(e) => {
                // Kept for the status page only: nothing is planned
                // against it (the next pass reads the kernel).
                self.shown_copy = copy.or(unusable).or(self.shown_copy.take());
                return Err(e);
            }
        };
        let inputs = rendering.inputs;
        let Desired {
            state: desired,
            generation,
            touched,
        } = self.health.apply(
            Desired {
                state: rendering.desired,
                generation: (rendering.generation, before.1),
                touched: rendering.touched,
            },
            before.0,
            rendering.health,
            &self.metrics,
        );
        // The copy equals the last desired state: only what this render
        // and health changed can differ.
        let scope = touched.filter(|_| copy.is_some() && copy_generation == Some(before));
        // The etcd watcher patches its tree in place when nobody else
        // holds it.
        input.overlay = None;
        // Choose the live table and plan: the copy if the rule allows, else
        // a fresh read.
        let planned = match self.rules.plan_on_copy(copy, desired, scope)? {
            Some(planned) => {
                self.metrics.kernel_table(false);
                planned
            }
            None => {
                let table = self.kernel.read(now)?;
                self.rules.plan_on_read(table, desired, &self.drains, now)?
            }
        };
        // The VIPs around the IPVS ops: removals before, additions after.
        let vips = vips_before(self.vips.as_mut(), &planned.outcome.desired)?;
        let owners = vips
            .as_ref()
            .map(|v| vip::owners(&planned.outcome.desired, &v.add));
        let mut applied = match self.kernel.apply(planned) {
            Ok(applied) => applied,
            Err(failure) => {
                vips_after_refusals(self.vips.as_mut(), vips, owners, &failure);
                return Err(failure);
            }
        };
        if let Some(v) = &vips {
            applied.plan_text = around(v, applied.plan_text.take());
        }
        let added = vips_after(self.vips.as_mut(), vips);
        let report = self.record(applied, generation, &inputs, &input, now);
        added.map(|()| report)
    }

    /// Withdraws every VIP (`reconcile::withdraw` said so); how many were
    /// removed (`None`: no VIP interface).
    pub fn withdraw_vips(&mut self) -> Result<Option<usize>> {
        self.vips.as_mut().map(|v| v.withdraw()).transpose()
    }

    /// Step (choose the live table, first half): the copy of the kernel's
    /// table, if this pass may plan against it (else, second, the copy
    /// anyway, for the status page only). Taken out here: a pass that
    /// fails anywhere below does not put it back, so the next pass reads
    /// the kernel.
    fn take_copy(
        &mut self,
        triggers: &BTreeSet<Trigger>,
        now: Now,
    ) -> (Option<LiveCopy>, Option<LiveCopy>) {
        let situation = Situation {
            resync: triggers.contains(&Trigger::Resync),
            sighup: self.kernel.sighup.swap(false, Ordering::Relaxed),
            draining: !self.drains.is_empty(),
        };
        match self.kernel.copy.take_either(now.clock, situation) {
            Ok(copy) => (Some(copy), None),
            Err(unusable) => (None, unusable),
        }
    }

    /// Step: the config and overlay trees of this pass.
    fn read_inputs(
        &mut self,
        triggers: &BTreeSet<Trigger>,
        now: Now,
    ) -> Result<Snapshot, PassFailure> {
        let config = self.read_config(triggers, now)?;
        let (overlay, hint, etcd_revision) = self.read_overlay(now)?;
        self.last_input = (
            config.source.revision.clone(),
            Some(etcd_revision.clone()).filter(|r| !r.is_empty()),
        );
        Ok(Snapshot {
            config,
            overlay,
            hint,
            etcd_revision,
        })
    }

    /// The config tree: the directory re-read unless only etcd or a drain
    /// asked for this pass; the last Git poll's tree.
    fn read_config(
        &mut self,
        triggers: &BTreeSet<Trigger>,
        now: Now,
    ) -> Result<Arc<Tree>, PassFailure> {
        match &self.config {
            ConfigInput::Dir(path) => {
                if rereads_config(triggers, self.config_tree.is_some()) {
                    let tree = source::dir::read(path).map_err(fail(Source::Config))?;
                    self.config_tree = Some(Arc::new(tree));
                    self.metrics
                        .source_ok(Source::Config, now.unix.as_secs_f64());
                }
            }
            ConfigInput::Git(slot) => {
                let tree = lock(slot).clone().ok_or_else(|| PassFailure {
                    source: Source::Git,
                    error: "no commit of the config repository read yet".to_string(),
                    diagnostics: Vec::new(),
                    refused: Vec::new(),
                })?;
                self.config_tree = Some(tree);
            }
        }
        Ok(self.config_tree.clone().expect("read above"))
    }

    /// The overlay tree, the paths changed since the last pass (etcd
    /// only), and the etcd revision it is at (empty without etcd).
    fn read_overlay(&self, now: Now) -> Result<OverlayRead, PassFailure> {
        match &self.overlay {
            OverlayInput::None => Ok((None, None, String::new())),
            OverlayInput::Dir(path) => {
                let tree = source::dir::read(path).map_err(fail(Source::Config))?;
                Ok((Some(Arc::new(tree)), None, String::new()))
            }
            OverlayInput::Etcd(watch) => {
                let (snap, changes) = watch.snapshot_with_changes().ok_or_else(|| PassFailure {
                    source: Source::Etcd,
                    error: format!(
                        "etcd overlay not read yet: {}",
                        watch
                            .status()
                            .last_error
                            .unwrap_or_else(|| "no answer".into())
                    ),
                    diagnostics: Vec::new(),
                    refused: Vec::new(),
                })?;
                let last_good = now.unix.saturating_sub(snap.age());
                self.metrics
                    .source_ok(Source::Etcd, last_good.as_secs_f64());
                Ok((Some(snap.tree), changes, snap.revision.to_string()))
            }
        }
    }

    /// Step: keeps what the pass leaves (drain records and their file, the
    /// copy of the table, metrics); the report for the loop.
    fn record(
        &mut self,
        mut applied: Applied,
        generation: Generation,
        inputs: &str,
        input: &Snapshot,
        now: Now,
    ) -> PassReport {
        let drift_corrected = self.log_drains(&mut applied, generation);
        if let Some(p) = applied.plan_text.take() {
            self.last_plan = Some(p.plan_text(now.unix_ms()));
        }
        self.keep_drains(std::mem::take(&mut applied.drains));
        self.metrics
            .set_sizes(applied.desired_size, applied.live_size);
        self.metrics.success(
            now.unix.as_secs_f64(),
            &Info {
                git_commit: input.config.source.revision.clone().unwrap_or_default(),
                etcd_revision: input.etcd_revision.clone(),
                plan_hash: plan_hash(inputs, &self.drains),
            },
        );
        if let Some(table) = applied.table {
            self.kernel.copy.put(table);
            self.copy_generation = applied.active.is_empty().then_some(generation);
        }
        self.last_ok = Some((generation, self.drains.clone()));
        let desired_hash = match &self.fleet {
            Some(fleet) => desired_hash(
                inputs,
                &fleet.compile,
                &self.drains,
                &self.health.fingerprint(),
            ),
            None => String::new(),
        };
        PassReport {
            ops: applied.changes,
            drains_active: applied.active.len(),
            next_drain_deadline_ms: applied.next_deadline_ms,
            state_unsaved: self.state_unsaved,
            desired_size: applied.desired_size,
            desired_hash,
            drift_corrected,
            etcd_revision: input.etcd_revision.clone(),
            unhealthy_dests: self.health.down_count(),
        }
    }

    /// The commit and etcd revision the last pass read (for the status
    /// page).
    pub fn last_input(&self) -> (Option<String>, Option<String>) {
        self.last_input.clone()
    }

    /// The status page's view of what passes keep: the query's page of
    /// services (the desired state planned, with health and drains), where
    /// the counters come from, the last plan, the fleet record.
    pub fn page(&self, query: &Query, now_ms: u64) -> PassPage {
        let rendered = self.render.memo.rendered();
        let render_ok = rendered.is_none_or(|r| r.is_ok());
        let empty = IpvsState::default();
        let desired = self
            .health
            .state()
            .or(rendered.map(|r| &r.state))
            .unwrap_or(&empty);
        let health = self
            .health
            .verdicts()
            .map(|v| ((v.service, v.dest), (v.kind, v.reason.clone())))
            .collect();
        let copy = self.kernel.copy.peek().or(self.shown_copy.as_ref());
        // Only while the config is invalid: the copy as a state.
        let kernel = copy.filter(|_| !render_ok).map(|c| c.table.to_state());
        let clock = self.epoch.elapsed();
        let traffic = self.metrics.traffic_last();
        let input = ServiceInput {
            desired,
            kernel: kernel.as_ref(),
            drains: &self.drains,
            drain_timeout: self.rules.drain_timeout,
            stats: copy.map(|c| &c.table),
            health: &health,
            traffic: traffic.as_ref().map(|(t, _)| &**t),
            now_ms,
        };
        let mut services = snapshot::services(&input, query);
        services.render_failed = !render_ok;
        PassPage {
            services,
            counters: Counters {
                age_ms: copy.map(|c| clock.saturating_sub(c.read_at).as_millis() as u64),
                traffic_read_ms: traffic.map(|(_, at)| (at * 1000.0) as u64),
            },
            last_plan: self.last_plan.clone(),
            diagnostics: self.render.log.current().map(ToString::to_string).collect(),
            fleet: self.fleet.as_ref().map(|f| {
                let id = f.last.frontend.clone();
                let alive = std::iter::once(id.clone()).collect();
                fleet::view(&[(id, f.last.to_bytes())], &alive, None, now_ms)
            }),
            vips: self.vips.as_ref().map(VipStep::section),
            render_ok,
        }
    }

    /// Step (record, after either outcome): this frontend's fleet status
    /// record after the pass, handed to the publisher (which never blocks
    /// and never fails the pass).
    pub fn publish_status(&mut self, result: &Result<PassReport, PassFailure>) {
        let Some(fleet) = &mut self.fleet else {
            return;
        };
        let now_ms = Now::read(self.epoch).unix_ms();
        let facts = status_facts(result, self.config_tree.as_deref(), now_ms);
        fleet.last = fleet::after_pass(&fleet.last, facts);
        fleet.publisher.update(fleet.last.clone());
    }

    /// Logs the drains that ended (their records go: the apply deleted the
    /// dests; they are kept through a failed apply so it does not restart
    /// them) and started, and drift: ops although neither the desired
    /// state nor the drains changed since the last good pass (compared
    /// after the ended records are gone: a drain that ends changes the
    /// drains, its delete is no correction). Whether it was drift.
    fn log_drains(&self, applied: &mut Applied, generation: Generation) -> bool {
        for (service, dest, why) in &applied.completed {
            info!(%service, %dest, reason = completion_label(*why), "drain ended");
            applied.drains.remove(service, dest);
        }
        let unchanged = self
            .last_ok
            .as_ref()
            .is_some_and(|(g, d)| *g == generation && *d == applied.drains);
        let drift = applied.changes > 0 && unchanged;
        if drift {
            warn!(
                changes = applied.changes,
                "corrected drift: the kernel differed from the unchanged desired state"
            );
            self.metrics.drift_corrected();
        }
        for d in &applied.active {
            if self.drains.get(&d.service, &d.dest).is_none() {
                info!(service = %d.service, dest = %d.dest, active_conns = d.active_conns,
                    timeout_s = self.rules.drain_timeout.as_secs(), "drain started: weight 0");
            }
        }
        self.metrics.drains(
            applied.active.len(),
            applied
                .completed
                .iter()
                .map(|(_, _, c)| completion_label(*c)),
        );
        drift
    }

    /// Keeps the drain records, and writes them to the state file when
    /// they changed or the last save failed (a failed save is counted and
    /// retried until it succeeds).
    fn keep_drains(&mut self, drains: Drains) {
        if drains == self.drains && !self.state_unsaved {
            return;
        }
        if let Some(path) = &self.state_file {
            match save_drains(path, &drains) {
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
        self.drains = drains;
    }

    /// `--flush-on-exit`: deletes the services this daemon owns from the
    /// kernel (read for real), as ordinary ops; how many.
    pub fn delete_owned(&mut self) -> Result<usize> {
        let live = self.kernel.kernel.read()?;
        let ops: Vec<Op> = live
            .keys()
            .filter(|k| self.rules.ownership.owns(k))
            .map(|k| Op::DelService { service: *k })
            .collect();
        if !ops.is_empty() {
            self.kernel
                .kernel
                .apply(&ops)
                .map_err(|f| anyhow!("deleting the owned services: {f}"))?;
            self.metrics.ops_applied(&ops);
        }
        Ok(ops.len())
    }
}

impl Render {
    /// Step: renders the snapshot (only what changed since the last pass),
    /// logs the diagnostics that changed, and fails on an invalid config.
    fn run(&mut self, input: &Snapshot, metrics: &Metrics) -> Result<Rendering<'_>, PassFailure> {
        self.memo
            .render_hinted(&input.config, input.overlay.as_deref(), input.hint.as_ref());
        debug!(work = ?self.memo.work(), "rendered");
        let generation = self.memo.generation();
        let rendered = self.memo.rendered().expect("rendered above");
        let inputs = format!(
            "{}:{}",
            rendered.config_hash,
            rendered.overlay_hash.as_deref().unwrap_or("")
        );
        let report = !self.log.has_reported(&inputs);
        if report || !rendered.is_ok() {
            // Named from the repository root when the config is a
            // subdirectory of it (a copy: the memo keeps the render).
            let diags = rendered
                .diags
                .from_root(&input.config, input.overlay.as_deref());
            if report {
                self.log.report(&inputs, diags.iter(), metrics);
            }
            if !rendered.is_ok() {
                return Err(invalid_config(
                    &diags,
                    input.config.source.revision.as_deref(),
                ));
            }
        }
        Ok(Rendering {
            desired: &rendered.state,
            generation,
            inputs,
            touched: self.memo.touched(),
            health: &rendered.health,
        })
    }
}

impl KernelView {
    /// Step (choose the live table, second half): a real read of the
    /// kernel's table, compact as it is kept.
    fn read(&mut self, now: Now) -> Result<Table, PassFailure> {
        let read = self.kernel.read().map_err(fail(Source::Kernel))?;
        self.metrics
            .source_ok(Source::Kernel, now.unix.as_secs_f64());
        self.metrics.kernel_table(true);
        Ok(read)
    }

    /// Step: applies the plan's ops in order, a chunk at a time
    /// (`kernel::apply_chunked`: neither the plan's changes nor its ops
    /// are held whole), each chunk's acked ops to the copy of the table
    /// too. On failure the copy is not put back: the next pass reads the
    /// kernel. An op that the kernel acked but that does not apply to the
    /// copy means the copy was wrong: not kept either.
    fn apply(&mut self, planned: Planned<'_>) -> Result<Applied, PassFailure> {
        let Planned {
            table,
            outcome,
            plan,
        } = planned;
        let live_size = (table.table.services(), table.table.dest_count());
        let mut table = Some(table);
        let mut plan_text = None;
        let changes = plan.rest.summary.total();
        let desired = &*outcome.desired;
        if !plan.is_empty() {
            // Logged as it is written: a first pass's text is a line a dest.
            let mut log = PlanLog::new(changes);
            let _ = plan::output::write_outline_text(&mut log, &plan, desired, false, None);
            plan_text = Some(log.finish());
            let metrics = &self.metrics;
            let mut wrong = None;
            let mut services_added = 0;
            let ops = plan.ops(desired);
            kernel::apply_chunked(&mut *self.kernel, ops, kernel::CHUNK, |ops| {
                metrics.ops_applied(ops);
                services_added += ops
                    .iter()
                    .filter(|op| matches!(op, Op::AddService { .. }))
                    .count();
                if let Some(Err(e)) = table.as_mut().map(|t| t.apply(ops)) {
                    wrong = Some(e);
                    table = None;
                }
            })
            .map_err(|f| self.record_failure(f))?;
            // Most of the copy added in key order (a first pass): its map
            // rebuilt full, now that the apply's chunk is freed.
            if let Some(t) = table
                .as_mut()
                .filter(|t| services_added > t.table.services() / 2)
            {
                t.table.compact();
            }
            for e in &plan.rest.emptied {
                warn!(service = %e.service, dests_before = e.dests_before,
                    "service emptied: no dest left to take connections");
            }
            if let Some(e) = wrong {
                warn!(
                    "the copy of the kernel's table was wrong ({e}): the next pass reads the kernel"
                );
            }
        }
        self.metrics.failed_services(0);
        let empty = desired
            .services
            .values()
            .filter(|s| s.dests.values().all(|d| d.attrs.weight == 0))
            .count();
        self.metrics.emptied(plan.rest.emptied.len(), empty);
        Ok(Applied {
            table,
            changes,
            desired_size: (desired.services.len(), desired.dest_count()),
            live_size,
            drains: outcome.drains,
            active: outcome.active,
            completed: outcome.completed,
            next_deadline_ms: outcome.next_deadline_ms,
            plan_text,
        })
    }
}

impl KernelView {
    /// A partly failed apply: the services that failed go to the metrics
    /// and the log (the applied ops went to the metrics chunk by chunk).
    /// The pass fails, so the copy of the table is dropped and the retry
    /// reads the kernel and plans only what is still needed
    /// (`reconcile::live`).
    fn record_failure(&self, f: ApplyFailure) -> PassFailure {
        self.metrics.failed_services(f.failed.len());
        for service in &f.failed {
            warn!(%service, "apply failed for this service: the rest of its changes was skipped");
        }
        if !f.report.is_empty() {
            warn!("not applied:\n{}", f.report);
        }
        PassFailure {
            source: Source::Apply,
            error: format!(
                "{}; the next pass reads the kernel and retries what is still needed",
                f.error
            ),
            diagnostics: Vec::new(),
            refused: f.failed,
        }
    }
}

impl Rules {
    /// Step (plan) against the copy: no drain is in progress (else the
    /// copy was not taken), so there is no drain record to complete. `None`
    /// when there is no copy or the plan needs a fresh read after all
    /// ([`live::may_start_drain`]).
    /// `scope`: the only services that can differ (see `copy_generation`).
    fn plan_on_copy<'d>(
        &self,
        copy: Option<LiveCopy>,
        desired: &'d IpvsState,
        scope: Option<&BTreeSet<ServiceKey>>,
    ) -> Result<Option<Planned<'d>>, PassFailure> {
        let Some(mut table) = copy else {
            return Ok(None);
        };
        let outcome = drain::Outcome::unchanged(desired);
        let plan = match scope {
            Some(scope) => {
                let counts = table
                    .counts
                    .get_or_insert_with(|| table.table.counts(&self.ownership));
                plan::plan_within(
                    desired,
                    &table.table,
                    scope,
                    &self.ownership,
                    &self.guards,
                    counts,
                )
                .map_err(refused)?
                .into()
            }
            None => self.plan(&table.table, &outcome)?,
        };
        // Adds never start a drain: the rest of the plan says.
        if live::may_start_drain(plan.rest.ops(), &table, self.drain_timeout) {
            return Ok(None);
        }
        Ok(Some(Planned {
            table,
            outcome,
            plan,
        }))
    }

    /// Step (plan) against a fresh read: drains first, then the plan.
    /// `read`: the kernel's table, read at `now` (kept as the copy).
    fn plan_on_read<'d>(
        &self,
        read: Table,
        desired: &'d IpvsState,
        drains: &Drains,
        now: Now,
    ) -> Result<Planned<'d>, PassFailure> {
        let outcome = drain::apply(
            desired,
            &read,
            &read,
            drains,
            now.unix_ms(),
            self.drain_timeout,
            &|k| self.ownership.owns(k),
        );
        let plan = self.plan(&read, &outcome)?;
        Ok(Planned {
            table: LiveCopy::of(read, now.clock),
            outcome,
            plan,
        })
    }

    /// The plan toward `outcome.desired`, as an outline (its adds are
    /// made again from that state when they are written and applied).
    fn plan(&self, live: &Table, outcome: &drain::Outcome<'_>) -> Result<Outline, PassFailure> {
        let (outline, refusal) =
            plan::outline(&outcome.desired, live, &self.ownership, &self.guards)
                .map_err(refused)?;
        match refusal {
            None => Ok(outline),
            Some(reason) => Err(PassFailure {
                source: Source::Plan,
                error: format!("{reason}: keeping the kernel as it is"),
                diagnostics: Vec::new(),
                refused: Vec::new(),
            }),
        }
    }
}

/// The status page's plan with the VIP changes around the IPVS plan's
/// head (`VipPlan::around`).
fn around(vips: &VipPlan, ipvs: Option<PlanHead>) -> Option<PlanHead> {
    let beyond = ipvs.as_ref().map_or(0, PlanHead::beyond_head);
    let head = vips.around(ipvs.as_ref().map(|p| p.head.as_str()))?;
    Some(PlanHead {
        lines: head.lines().count() + beyond,
        head,
    })
}

/// Step (VIPs, first half, `--vip-interface`): reads the interface,
/// plans it toward `desired` (the state the apply leaves) and runs
/// the removals.
fn vips_before(
    step: Option<&mut VipStep>,
    desired: &IpvsState,
) -> Result<Option<VipPlan>, PassFailure> {
    let Some(step) = step else {
        return Ok(None);
    };
    let plan = step.plan(desired).map_err(vip_failure)?;
    step.remove(&plan).map_err(vip_failure)?;
    Ok(Some(plan))
}

/// Step (VIPs, second half): the additions, once the IPVS apply
/// succeeded.
fn vips_after(step: Option<&mut VipStep>, plan: Option<VipPlan>) -> Result<(), PassFailure> {
    match (step, plan) {
        (Some(step), Some(plan)) => step.add(&plan).map_err(vip_failure),
        _ => Ok(()),
    }
}

/// Step (VIPs, second half, after an apply the kernel refused some
/// services' ops of): the additions of the VIPs whose services were
/// applied, so that one refused service does not hold back the others'
/// VIPs. A failure here is logged; the pass fails for the refusal anyway.
fn vips_after_refusals(
    step: Option<&mut VipStep>,
    plan: Option<VipPlan>,
    owners: Option<BTreeMap<IpAddr, Vec<ServiceKey>>>,
    failure: &PassFailure,
) {
    let (Some(plan), Some(owners)) = (plan, owners) else {
        return;
    };
    if failure.refused.is_empty() {
        return;
    }
    let plan = plan.after_refusals(&owners, &failure.refused);
    if let Err(e) = vips_after(step, Some(plan)) {
        warn!("{}", e.error);
    }
}

fn vip_failure(e: anyhow::Error) -> PassFailure {
    PassFailure {
        source: Source::Apply,
        error: format!("VIP interface: {}", format_error(&e)),
        diagnostics: Vec::new(),
        refused: Vec::new(),
    }
}

fn refused(e: plan::PlanError) -> PassFailure {
    PassFailure {
        source: Source::Plan,
        error: format!("{e}: keeping the kernel as it is"),
        diagnostics: Vec::new(),
        refused: Vec::new(),
    }
}

/// Whether the config directory is read again: unless only etcd, a drain
/// or health asked for this pass (and a tree was read before).
fn rereads_config(triggers: &BTreeSet<Trigger>, have_tree: bool) -> bool {
    !have_tree
        || triggers
            .iter()
            .any(|t| !matches!(t, Trigger::Etcd | Trigger::Drain | Trigger::Health))
}

/// The failure of a pass over an invalid config: how many errors, the
/// first; the first few for the fleet status.
fn invalid_config(diags: &Diagnostics, revision: Option<&str>) -> PassFailure {
    let n = diags.errors().count();
    let first = diags
        .errors()
        .next()
        .map(ToString::to_string)
        .unwrap_or_default();
    let at = match revision {
        Some(rev) => format!(" at commit {rev}"),
        None => String::new(),
    };
    let n = crate::text::plural(n, "error");
    PassFailure {
        source: Source::Config,
        error: format!("invalid config{at} ({n}, first: {first}): keeping the kernel as it is"),
        diagnostics: diags
            .errors()
            .take(STATUS_DIAGNOSTICS)
            .map(ToString::to_string)
            .collect(),
        refused: Vec::new(),
    }
}

/// The `plan_hash` of `clusterf_info`: the inputs and the drain records.
fn plan_hash(inputs: &str, drains: &Drains) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(inputs.as_bytes());
    h.update(drains.to_json().as_bytes());
    crate::tree::hex(&h.finalize()[..8])
}

/// What identifies the desired state a pass applied, for the fleet status:
/// SHA-256 over the inputs' content hashes (config and overlay), the
/// compile options, the drain records and what health did, which together
/// determine it (the render is deterministic); hashing the state itself
/// would cost a walk over every dest at every pass.
fn desired_hash(inputs: &str, compile: &str, drains: &Drains, health: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [inputs, compile, &drains.to_json(), health] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    format!("sha256:{}", crate::tree::hex(&h.finalize()))
}

/// What a pass saw and did, for its fleet status record.
fn status_facts(
    result: &Result<PassReport, PassFailure>,
    config: Option<&Tree>,
    now_ms: u64,
) -> PassFacts {
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    let (overlay_revision, outcome) = match result {
        Ok(r) => (
            r.etcd_revision.parse().ok(),
            PassOutcome::Applied {
                desired_hash: r.desired_hash.clone(),
                services: count(r.desired_size.0),
                dests: count(r.desired_size.1),
                drains: count(r.drains_active),
                drift_corrected: r.drift_corrected,
                unhealthy_dests: count(r.unhealthy_dests),
            },
        ),
        Err(f) => (None, PassOutcome::Failed(status_error(f))),
    };
    PassFacts {
        now_ms,
        commit: config.and_then(|t| t.source.revision.clone()),
        config_hash: config.map(Tree::content_hash),
        overlay_revision,
        outcome,
    }
}

/// A failed pass as the fleet status names it.
fn status_error(f: &PassFailure) -> FrontendError {
    let kind = match f.source {
        Source::Config if !f.diagnostics.is_empty() => ProblemKind::ValidationFailed,
        Source::Config | Source::Git | Source::Etcd | Source::State => ProblemKind::FailStatic,
        Source::Plan => ProblemKind::GuardRefused,
        // A panic may have stopped an apply half way.
        Source::Kernel | Source::Apply | Source::Pass => ProblemKind::ApplyFailed,
    };
    FrontendError {
        kind,
        message: f.error.clone(),
        diagnostics: f.diagnostics.clone(),
    }
}

fn completion_label(c: Completion) -> &'static str {
    match c {
        Completion::Idle => "idle",
        Completion::Timeout => "timeout",
        Completion::Returned => "returned",
        Completion::Vanished => "vanished",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_pass_is_named_by_where_it_failed() {
        let failure = |source, diagnostics: &[&str]| PassFailure {
            source,
            error: "e".into(),
            diagnostics: diagnostics.iter().map(|d| d.to_string()).collect(),
            refused: Vec::new(),
        };
        let kind = |f: PassFailure| status_error(&f).kind;
        let diag = "services/a/frontend: error: x";
        assert_eq!(
            kind(failure(Source::Config, &[diag])),
            ProblemKind::ValidationFailed
        );
        for source in [Source::Config, Source::Git, Source::Etcd] {
            assert_eq!(kind(failure(source, &[])), ProblemKind::FailStatic);
        }
        assert_eq!(kind(failure(Source::Plan, &[])), ProblemKind::GuardRefused);
        for source in [Source::Kernel, Source::Apply] {
            assert_eq!(kind(failure(source, &[])), ProblemKind::ApplyFailed);
        }
        let e = status_error(&failure(Source::Config, &[diag]));
        assert_eq!(
            (e.message.as_str(), e.diagnostics.as_slice()),
            ("e", &[diag.to_string()][..])
        );
    }
}
