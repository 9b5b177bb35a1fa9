//! The desired state with health applied, kept from pass to pass for the
//! daemon: each update redoes only the services whose render changed (the
//! memo's touched set) or whose dests went down or came up, so a pass
//! costs in proportion to the change with checks as without. It also keeps
//! the targets to check, each once, for the checker.
//!
//! Holds to "an incremental view is a full view": after any sequence of
//! updates, [`Effective::state`] equals [`super::verdict::apply`] over the
//! last desired state and health table (property-tested in
//! `tests/health_props.rs`). Pure: no I/O, no clock.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::state::{HealthTable, Target};
use super::verdict::{HealthConfig, Verdict, apply_service};
use crate::model::{IpvsState, ServiceKey};

/// See the module doc.
#[derive(Debug, Default)]
pub struct Effective {
    state: IpvsState,
    /// Each checked service's targets.
    targets: HashMap<ServiceKey, Vec<Target>>,
    /// The services each target is checked for (a merged dest, or a dest
    /// shared by services with equal checks, is one target).
    users: HashMap<Target, BTreeSet<ServiceKey>>,
    /// The wanted targets that were down at the last update, with the
    /// reason shown (a reason that changes redoes its services too).
    down: BTreeMap<Target, String>,
    verdicts: BTreeMap<ServiceKey, Vec<Verdict>>,
    /// Increases whenever `state` may have changed.
    version: u64,
    /// The set of targets changed since the last [`Effective::take_targets`].
    targets_changed: bool,
    primed: bool,
}

/// What one update takes: the render's result and the health table.
pub struct Update<'a> {
    pub desired: &'a IpvsState,
    pub config: &'a HealthConfig,
    /// The services the render may have changed since the last update
    /// (`None`: any).
    pub touched: Option<&'a BTreeSet<ServiceKey>>,
    /// The health table; only its down entries matter (the daemon passes
    /// a table of those only).
    pub table: &'a HealthTable,
    /// Fail open below this percentage of weighted dests up (see
    /// [`HealthConfig::panic_below_percent`], which this overrides).
    pub panic_below_percent: u8,
}

impl Effective {
    /// Brings the view up to date; the services that may have changed
    /// (`None`: any).
    pub fn update(&mut self, u: &Update<'_>) -> Option<BTreeSet<ServiceKey>> {
        let Some(touched) = u.touched.filter(|_| self.primed) else {
            self.rebuild(u);
            return None;
        };
        for key in touched {
            self.retarget(*key, u);
        }
        let mut changed = touched.clone();
        changed.extend(self.health_changed(u.table));
        for key in &changed {
            self.redo(*key, u);
        }
        if !changed.is_empty() {
            self.version += 1;
        }
        Some(changed)
    }

    /// The desired state with health applied.
    pub fn state(&self) -> &IpvsState {
        &self.state
    }

    /// What health did, by service.
    pub fn verdicts(&self) -> impl Iterator<Item = &Verdict> {
        self.verdicts.values().flatten()
    }

    /// Increases whenever [`Effective::state`] may have changed.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The targets to check, if they changed since the last call.
    pub fn take_targets(&mut self) -> Option<BTreeSet<Target>> {
        if !std::mem::take(&mut self.targets_changed) {
            return None;
        }
        Some(self.users.keys().cloned().collect())
    }

    /// Every service from scratch (the first update, or a full render).
    fn rebuild(&mut self, u: &Update<'_>) {
        self.state = u.desired.clone();
        self.targets.clear();
        self.users.clear();
        self.verdicts.clear();
        for key in u.config.services.keys() {
            self.retarget(*key, u);
        }
        self.down = self.down_targets(u.table);
        for key in u.config.services.keys() {
            self.redo(*key, u);
        }
        self.targets_changed = true;
        self.primed = true;
        self.version += 1;
    }

    /// A service's targets as its render now asks.
    fn retarget(&mut self, key: ServiceKey, u: &Update<'_>) {
        for target in self.targets.remove(&key).unwrap_or_default() {
            let users = self.users.get_mut(&target).expect("indexed both ways");
            users.remove(&key);
            if users.is_empty() {
                self.users.remove(&target);
                self.targets_changed = true;
            }
        }
        let (Some(health), Some(service)) =
            (u.config.services.get(&key), u.desired.services.get(&key))
        else {
            return;
        };
        let targets: Vec<Target> = service
            .dests
            .keys()
            .filter_map(|d| health.target(d))
            .collect();
        for target in &targets {
            let users = self.users.entry(target.clone()).or_default();
            self.targets_changed |= users.is_empty();
            users.insert(key);
        }
        self.targets.insert(key, targets);
    }

    /// The services checking a target that went down, came up or shows
    /// another reason since the last update.
    fn health_changed(&mut self, table: &HealthTable) -> BTreeSet<ServiceKey> {
        let down = self.down_targets(table);
        let mut flipped = BTreeSet::new();
        for (target, reason) in &down {
            if self.down.get(target) != Some(reason) {
                flipped.extend(self.users.get(target).into_iter().flatten());
            }
        }
        for target in self.down.keys().filter(|t| !down.contains_key(*t)) {
            flipped.extend(self.users.get(target).into_iter().flatten());
        }
        self.down = down;
        flipped
    }

    fn down_targets(&self, table: &HealthTable) -> BTreeMap<Target, String> {
        table
            .iter()
            .filter(|(t, _)| self.users.contains_key(*t))
            .filter_map(|(t, h)| Some((t.clone(), h.reason(t.check.rise, t.check.fall)?)))
            .collect()
    }

    /// A service again from its render, with health applied.
    fn redo(&mut self, key: ServiceKey, u: &Update<'_>) {
        self.verdicts.remove(&key);
        let Some(service) = u.desired.services.get(&key) else {
            self.state.services.remove(&key);
            return;
        };
        let mut service = service.clone();
        if let Some(health) = u.config.services.get(&key) {
            let verdicts = apply_service(key, &mut service, health, u.table, u.panic_below_percent);
            if !verdicts.is_empty() {
                self.verdicts.insert(key, verdicts);
            }
        }
        self.state.services.insert(key, service);
    }
}
