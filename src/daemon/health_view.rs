//! The pass's health step: the checker's down targets applied to the
//! render through the incremental view ([`crate::health::Effective`]), and
//! the checker told which targets the render asks for.
//!
//! Must not: probe (the checker does) or decide what health does to a dest
//! (`health::verdict` does). Without any check in the config it costs
//! nothing and hands the render through.

use std::collections::BTreeSet;
use std::sync::Arc;

use tracing::{info, warn};

use super::health::HealthChecker;
use crate::health::{Effective, HealthConfig, Update, Verdict, VerdictKind};
use crate::metrics::Metrics;
use crate::model::{IpvsState, ServiceKey};

/// What the planner is given: a desired state, its generation (equal: an
/// equal state), and the services that may differ from the last one
/// (`None`: any).
pub struct Desired<'a> {
    pub state: &'a IpvsState,
    pub generation: Generation,
    pub touched: Option<&'a BTreeSet<ServiceKey>>,
}

/// The render's generation and the health view's version.
pub type Generation = (u64, u64);

/// See the module doc.
pub struct HealthStep {
    checker: Arc<HealthChecker>,
    view: Effective,
    panic_below_percent: u8,
    /// The view is in use (some service has a check). Off, the view is not
    /// updated, so turning on rebuilds it.
    active: bool,
    /// The services the last update may have changed.
    changed: Option<BTreeSet<ServiceKey>>,
    /// The render generation the view was last updated with: the render's
    /// touched set is relative to the render before it, so it is used only
    /// when the view saw that one (a failed pass may have rendered in
    /// between).
    seen: Option<u64>,
    /// Verdicts already logged, to log each change once.
    logged: BTreeSet<(ServiceKey, std::net::SocketAddr, bool)>,
}

impl HealthStep {
    pub fn new(checker: Arc<HealthChecker>, panic_below_percent: u8) -> HealthStep {
        HealthStep {
            checker,
            view: Effective::default(),
            panic_below_percent,
            active: false,
            changed: None,
            seen: None,
            logged: BTreeSet::new(),
        }
    }

    /// The generation a pass starts from.
    pub fn version(&self) -> u64 {
        self.view.version()
    }

    /// Step: health applied to the render (the render as it is when no
    /// service has a check). `render_before`: the render generation before
    /// this pass rendered.
    pub fn apply<'a>(
        &'a mut self,
        render: Desired<'a>,
        render_before: u64,
        config: &HealthConfig,
        metrics: &Metrics,
    ) -> Desired<'a> {
        if config.services.is_empty() && !self.active {
            return render;
        }
        let table = self.checker.down();
        let touched = render
            .touched
            .filter(|_| self.active && self.seen == Some(render_before));
        self.active = !config.services.is_empty();
        self.seen = Some(render.generation.0);
        self.changed = self.view.update(&Update {
            desired: render.state,
            config,
            touched,
            table: &table,
            panic_below_percent: self.panic_below_percent,
        });
        if let Some(targets) = self.view.take_targets() {
            self.checker.set_targets(targets);
        }
        self.report(metrics);
        Desired {
            state: self.view.state(),
            generation: (render.generation.0, self.view.version()),
            touched: self.changed.as_ref(),
        }
    }

    /// What health does to the desired state now, as text for a hash:
    /// `service dest kind` per down dest (empty when all are up).
    pub fn fingerprint(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        for v in self.view.verdicts() {
            let _ = writeln!(out, "{} {} {:?}", v.service, v.dest, v.kind);
        }
        out
    }

    /// The desired state with health applied, while any service has a
    /// check (the status page).
    pub fn state(&self) -> Option<&IpvsState> {
        self.active.then(|| self.view.state())
    }

    /// What health does to each down dest, and why.
    pub fn verdicts(&self) -> impl Iterator<Item = &Verdict> {
        self.view.verdicts()
    }

    /// Dests found down (drained, removed or kept by fail-open).
    pub fn down_count(&self) -> usize {
        self.view.verdicts().count()
    }

    /// Logs verdicts that are new (drains, removals, fail-open) and ended,
    /// and sets the gauges.
    fn report(&mut self, metrics: &Metrics) {
        let mut now = BTreeSet::new();
        let (mut drained, mut fail_open) = (0, 0);
        for v in self.view.verdicts() {
            let open = v.kind == VerdictKind::FailOpen;
            if open {
                fail_open += 1;
            } else {
                drained += 1;
            }
            let key = (v.service, v.dest, open);
            if !self.logged.contains(&key) {
                match v.kind {
                    VerdictKind::FailOpen => warn!(service = %v.service, dest = %v.dest,
                        reason = %v.reason, "health: down, but kept (fail-open: too few dests would stay up)"),
                    VerdictKind::Drained => info!(service = %v.service, dest = %v.dest,
                        reason = %v.reason, "health: unhealthy, weight 0"),
                    VerdictKind::Removed => info!(service = %v.service, dest = %v.dest,
                        reason = %v.reason, "health: unhealthy, removed"),
                }
            }
            now.insert(key);
        }
        for (service, dest, _) in self.logged.difference(&now) {
            info!(%service, %dest, "health: no longer held back for health");
        }
        self.logged = now;
        metrics.health_verdicts(drained, fail_open);
    }
}
