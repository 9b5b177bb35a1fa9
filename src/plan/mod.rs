//! The plan: the ordered changes that take the live IPVS state to the
//! desired one, within what clusterf owns, checked against the mass-delete
//! guards.
//!
//! Contract with the kernel client: execute `plan.changes.iter().map(|c|
//! &c.op)` in order and decide nothing, with one rule: an op the kernel
//! refuses fails its service, the ops of that service after it are
//! skipped, and every other service's ops are still executed (one bad
//! dest never stops the other services). The order is make-before-break:
//! service adds, dest adds, edits (services, then their dests), dest
//! deletes, service deletes; within a service every make comes before
//! every break, so a failed service stops before it loses anything.
//! Deleting a service is one change; its dests go with it in the kernel.
//!
//! Invariant: pure and deterministic. No I/O, no clock; the same inputs give
//! the same plan. This module does not read the kernel, files or etcd, and
//! it does not print (see [`output`] for the renderings).

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::ops::RangeInclusive;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::model::{DestAttrs, IpvsState, Op, ServiceAttrs, ServiceKey};
use crate::text::plural;

mod diff;
mod guard;
pub mod outline;
pub mod output;
pub mod saved;
pub mod view;

use outline::Added;
pub use outline::{Outline, outline};

pub use diff::{canonical_service_attrs, canonical_state, same_service_attrs};
pub use view::{LiveView, ServiceView};

/// What a change does to its object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Add,
    Edit,
    Delete,
}

/// The live attributes a change replaces or deletes.
///
/// The service variant is boxed: a plan from empty holds one [`Change`] per
/// dest, and keeping `Change` small is most of what planning costs there
/// (128 bytes: a byte more and every push is a `memcpy` call, issue 15).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Before {
    Service(Box<ServiceBefore>),
    Dest(DestAttrs),
}

/// A live service as an edit or a delete finds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceBefore {
    pub attrs: ServiceAttrs,
    /// For a delete: how many live dests go with the service (0 for an
    /// edit).
    pub dests_removed: usize,
}

/// One step of a plan.
///
/// `repr(C)` keeps `op` first and `before` last, so their tags sit in the
/// two halves of a 128-byte change: dropping a plan reads both, and a walk
/// over every line of the vector streams faster than one over every other
/// line (a plan of 1.1M changes drops in 4.5 ms rather than 6.6;
/// docs/benchmarks.md, session 17).
#[derive(Clone, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Change {
    /// What the kernel client executes.
    pub op: Op,
    /// For edits and deletes: the live attributes before the change.
    pub before: Option<Before>,
}

impl Change {
    /// For a service delete: how many live dests go with the service.
    pub fn dests_removed(&self) -> usize {
        match &self.before {
            Some(Before::Service(b)) => b.dests_removed,
            _ => 0,
        }
    }

    pub fn action(&self) -> Action {
        match self.op {
            Op::AddService { .. } | Op::AddDest { .. } => Action::Add,
            Op::EditService { .. } | Op::EditDest { .. } => Action::Edit,
            Op::DelService { .. } | Op::DelDest { .. } => Action::Delete,
        }
    }

    pub fn service(&self) -> &ServiceKey {
        self.op.service()
    }

    /// The dest, for a dest-level change.
    pub fn dest(&self) -> Option<SocketAddr> {
        match self.op {
            Op::AddDest { dest, .. } | Op::EditDest { dest, .. } | Op::DelDest { dest, .. } => {
                Some(dest)
            }
            _ => None,
        }
    }
}

/// A live service outside the owned ranges: reported, never touched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unmanaged {
    pub service: ServiceKey,
    pub dests: usize,
}

/// An owned service that had dests taking connections (weight above 0)
/// and is left with none: no dest at all, or only weight-0 (draining)
/// ones. New connections to it fail. Deleted services are not listed here
/// (they are changes of their own).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Emptied {
    pub service: ServiceKey,
    /// Its live dests of weight above 0.
    pub dests_before: usize,
    /// Its dests in the desired state, all of weight 0 (usually none).
    pub dests_after: usize,
}

/// Change counts: each change counts once (a service delete is one delete).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub delete: usize,
}

impl Summary {
    pub fn total(&self) -> usize {
        self.add + self.change + self.delete
    }
}

/// `Plan: 2 to add, 1 to change, 2 to delete.`
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Plan: {} to add, {} to change, {} to delete.",
            self.add, self.change, self.delete
        )
    }
}

/// The ordered changes from live to desired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// In execution order.
    pub changes: Vec<Change>,
    /// Live services outside the owned ranges, sorted.
    pub unmanaged: Vec<Unmanaged>,
    pub summary: Summary,
    /// Owned services in the live state.
    pub owned_services: usize,
    /// Dests of owned services in the live state.
    pub owned_dests: usize,
    /// Owned live dests this plan removes (dest deletes plus the dests of
    /// deleted services).
    pub dests_removed: usize,
    /// Owned live services this plan deletes.
    pub services_removed: usize,
    /// Owned live services with a dest of weight above 0.
    pub serving_services: usize,
    /// Owned services the plan leaves without a dest of weight above 0,
    /// sorted.
    pub emptied: Vec<Emptied>,
}

impl Plan {
    /// The ops to execute, in order.
    pub fn ops(&self) -> impl Iterator<Item = &Op> {
        self.changes.iter().map(|c| &c.op)
    }

    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// What clusterf may change: everything (the default, like the original),
/// or only address services whose VIP is in one of the CIDRs and fwmark
/// services (IPv4 and IPv6) whose mark is in one of the ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ownership {
    restricted: bool,
    nets: Vec<IpNet>,
    fwmarks: Vec<RangeInclusive<u32>>,
}

/// Ownership as written in a saved plan.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnershipDoc {
    /// `true`: the whole table.
    pub all: bool,
    pub cidrs: Vec<String>,
    /// `42` or `100-200`.
    pub fwmarks: Vec<String>,
}

impl Ownership {
    /// The whole IPVS table.
    pub fn all() -> Self {
        Ownership::default()
    }

    /// Only what the CIDRs and fwmark ranges cover.
    pub fn restricted(nets: Vec<IpNet>, fwmarks: Vec<RangeInclusive<u32>>) -> Self {
        Ownership {
            restricted: true,
            nets,
            fwmarks,
        }
    }

    /// From `--own CIDR` and `--own-fwmark RANGE` values; none of either
    /// means the whole table. A bare address is a host prefix.
    pub fn parse(cidrs: &[String], fwmarks: &[String]) -> Result<Self, String> {
        if cidrs.is_empty() && fwmarks.is_empty() {
            return Ok(Ownership::all());
        }
        let mut nets = Vec::new();
        for c in cidrs {
            let net = match c.parse::<IpNet>() {
                Ok(n) => n,
                Err(_) => match c.parse::<std::net::IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => return Err(format!("--own {c}: expected a CIDR like 10.0.0.0/24")),
                },
            };
            if net.trunc() != net {
                return Err(format!(
                    "--own {c}: host bits set, did you mean {}",
                    net.trunc()
                ));
            }
            nets.push(net);
        }
        let mut ranges = Vec::new();
        for r in fwmarks {
            ranges.push(parse_fwmark_range(r)?);
        }
        Ok(Ownership::restricted(nets, ranges))
    }

    pub fn is_all(&self) -> bool {
        !self.restricted
    }

    pub fn owns(&self, key: &ServiceKey) -> bool {
        if !self.restricted {
            return true;
        }
        match key {
            ServiceKey::Addr { addr, .. } => self.owns_addr(addr.ip()),
            ServiceKey::Fwmark { mark, .. } => self.fwmarks.iter().any(|r| r.contains(mark)),
        }
    }

    /// Whether an address service on `ip` would be owned (a VIP on a
    /// shared interface, `--vip-mode arp`).
    pub fn owns_addr(&self, ip: std::net::IpAddr) -> bool {
        !self.restricted || self.nets.iter().any(|n| n.contains(&ip))
    }

    pub fn doc(&self) -> OwnershipDoc {
        OwnershipDoc {
            all: !self.restricted,
            cidrs: self.nets.iter().map(ToString::to_string).collect(),
            fwmarks: self
                .fwmarks
                .iter()
                .map(|r| {
                    if r.start() == r.end() {
                        r.start().to_string()
                    } else {
                        format!("{}-{}", r.start(), r.end())
                    }
                })
                .collect(),
        }
    }

    pub fn from_doc(doc: &OwnershipDoc) -> Result<Self, String> {
        if doc.all {
            return Ok(Ownership::all());
        }
        let mut o = Ownership::parse(&doc.cidrs, &doc.fwmarks)?;
        o.restricted = true;
        Ok(o)
    }
}

fn parse_fwmark_range(s: &str) -> Result<RangeInclusive<u32>, String> {
    let bad = || format!("--own-fwmark {s}: expected a mark like 42 or a range like 100-200");
    let num = |t: &str| t.trim().parse::<u32>().map_err(|_| bad());
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => {
            let n = num(s)?;
            (n, n)
        }
    };
    if lo > hi {
        return Err(format!("--own-fwmark {s}: range start above its end"));
    }
    // No service has mark 0: the kernel takes fwmark 0 for "no fwmark" (an
    // address service), and ipvsadm refuses `-f 0`.
    if lo == 0 {
        let hint = if hi == 0 {
            String::new()
        } else {
            format!(", did you mean 1-{hi}")
        };
        return Err(format!(
            "--own-fwmark {s}: fwmark 0 does not exist, marks are 1..{}{hint}",
            u32::MAX
        ));
    }
    Ok(lo..=hi)
}

/// The mass-delete guards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Guards {
    /// Refuse deleting more than this percentage of the owned dests...
    pub max_delete_percent: u32,
    /// ...when that is more than this many dests.
    pub max_delete_min: usize,
    /// Refuse emptying more than this percentage of the owned services
    /// that have dests (see [`Emptied`]).
    pub max_empty_percent: u32,
    /// Turn every guard off.
    pub allow_mass_delete: bool,
}

impl Default for Guards {
    fn default() -> Self {
        Guards {
            max_delete_percent: 50,
            max_delete_min: 10,
            max_empty_percent: 50,
            allow_mass_delete: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The desired state has services clusterf may not manage.
    #[error(
        "the desired state has {} outside the owned ranges (--own, --own-fwmark): {}",
        plural(services.len(), "service"),
        list(services)
    )]
    NotOwned { services: Vec<ServiceKey> },
    /// A guard tripped; the plan is kept so it can be shown, never applied.
    #[error("{reason}")]
    MassDelete { reason: String, plan: Box<Plan> },
}

fn list(keys: &[ServiceKey]) -> String {
    const SHOWN: usize = 5;
    let mut s: Vec<String> = keys.iter().take(SHOWN).map(ToString::to_string).collect();
    if keys.len() > SHOWN {
        s.push(format!("and {} more", keys.len() - SHOWN));
    }
    s.join(", ")
}

/// Plans the changes from `live` to `desired`.
///
/// A desired service outside `ownership` is an error (the config asks for
/// something clusterf may not manage); a live one is reported as unmanaged
/// and left alone. A plan that trips a guard is returned inside
/// [`PlanError::MassDelete`] so it can be shown.
pub fn plan(
    desired: &IpvsState,
    live: &impl LiveView,
    ownership: &Ownership,
    guards: &Guards,
) -> Result<Plan, PlanError> {
    let plan = diff::diff(desired, live, ownership)?;
    if let Some(reason) = guard::check(&plan, guards) {
        return Err(PlanError::MassDelete {
            reason,
            plan: Box::new(plan),
        });
    }
    Ok(plan)
}

/// [`plan`] when `live` can differ from `desired` only in the services in
/// `scope`: the daemon's copy of the kernel's table after a pass that
/// applied everything, and the services its next render changed. The same
/// plan (`tests/plan_props.rs` checks it), at the cost of the scope plus
/// one walk over the live services for the guards' counts.
/// `counts`: the counts of `live` ([`LiveCounts::of`], kept current by the
/// caller as ops apply), so that the guards see the whole table without a
/// walk over it.
pub fn plan_within(
    desired: &IpvsState,
    live: &impl LiveView,
    scope: &BTreeSet<ServiceKey>,
    ownership: &Ownership,
    guards: &Guards,
    counts: &LiveCounts,
) -> Result<Plan, PlanError> {
    let desired = IpvsState {
        services: scope
            .iter()
            .filter_map(|k| desired.services.get(k).map(|s| (*k, s.clone())))
            .collect(),
    };
    let live = view::Within { live, scope };
    let mut plan = diff::diff(&desired, &live, ownership)?;
    counts.set(&mut plan);
    if let Some(reason) = guard::check(&plan, guards) {
        return Err(PlanError::MassDelete {
            reason,
            plan: Box::new(plan),
        });
    }
    Ok(plan)
}

/// The live table's counts the guards read (owned services and dests,
/// those serving, the unmanaged ones), kept beside a copy of the table so
/// that a plan within a few services does not walk every live service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiveCounts {
    owned_services: usize,
    owned_dests: usize,
    serving_services: usize,
    unmanaged: Vec<Unmanaged>,
}

impl LiveCounts {
    /// The counts of `live`, walking it once.
    pub fn of(live: &impl LiveView, ownership: &Ownership) -> LiveCounts {
        let each = live.services().map(|(key, s)| (key, counted(s)));
        LiveCounts::of_each(each, ownership)
    }

    /// [`LiveCounts::of`] a table given as each service's key, its
    /// dests and whether one of weight above 0 serves, in key order (the
    /// daemon's compact copy of the table).
    pub fn of_each<'k>(
        services: impl IntoIterator<Item = (&'k ServiceKey, (usize, bool))>,
        ownership: &Ownership,
    ) -> LiveCounts {
        let mut counts = LiveCounts::default();
        for (key, (dests, serves)) in services {
            if ownership.owns(key) {
                counts.replace_counted(None, Some((dests, serves)));
            } else {
                counts.unmanaged.push(Unmanaged {
                    service: *key,
                    dests,
                });
            }
        }
        counts
    }

    /// Moves the counts of one owned service from `before` to `after`
    /// (`None`: absent). Ops only ever touch owned services.
    pub fn replace<'a>(
        &mut self,
        before: Option<impl ServiceView<'a>>,
        after: Option<impl ServiceView<'a>>,
    ) {
        self.replace_counted(before.map(counted), after.map(counted));
    }

    /// [`LiveCounts::replace`] from each side's dests and whether one of
    /// weight above 0 serves.
    pub fn replace_counted(&mut self, before: Option<(usize, bool)>, after: Option<(usize, bool)>) {
        if let Some((dests, serves)) = before {
            self.owned_services -= 1;
            self.owned_dests -= dests;
            self.serving_services -= usize::from(serves);
        }
        if let Some((dests, serves)) = after {
            self.owned_services += 1;
            self.owned_dests += dests;
            self.serving_services += usize::from(serves);
        }
    }

    fn set(&self, plan: &mut Plan) {
        plan.owned_services = self.owned_services;
        plan.owned_dests = self.owned_dests;
        plan.serving_services = self.serving_services;
        plan.unmanaged.clone_from(&self.unmanaged);
    }
}

/// A service's dests, and whether one of weight above 0 serves.
pub fn counted<'a>(s: impl ServiceView<'a>) -> (usize, bool) {
    (s.dest_count(), s.serves())
}

#[cfg(test)]
mod tests;
