//! A plan whose adds are not held: one flag per desired service and dest
//! says which the plan adds, and the add changes are made again from the
//! desired state as the plan is written. A plan from empty is nearly all
//! adds (one [`Change`] of 128 bytes per dest); `clusterf plan` writes it
//! beside the desired state it came from, which holds the same.
//!
//! Invariant: read back only against the desired state it was planned
//! from; the changes come out as [`super::plan`]'s, in the same order.

use std::borrow::Cow;

use super::{Change, Guards, LiveView, Ownership, Plan, PlanError, diff, guard};
use crate::model::{IpvsState, Op, ServiceKey};

/// Which desired services and dests a plan adds: a flag per service (in
/// the desired state's order), a flag per dest (every service's dests, in
/// order). A byte a flag: 1.1 MB at a million dests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Added {
    pub(super) services: Vec<bool>,
    pub(super) dests: Vec<bool>,
}

/// A plan with its adds as [`Added`]: `rest` is the plan without its adds
/// (edits and deletes, in order), with every count and the summary of the
/// whole plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outline {
    pub rest: Plan,
    added: Added,
}

impl Outline {
    /// Every change of the plan, in execution order: the adds, made from
    /// `desired` (the state the outline was planned from), then the rest.
    pub fn changes<'a>(&'a self, desired: &'a IpvsState) -> impl Iterator<Item = Cow<'a, Change>> {
        let services = desired
            .services
            .iter()
            .zip(self.added.services.iter().copied())
            .filter(|(_, added)| *added)
            .map(|((key, want), _)| diff::service_add(key, want));
        let dests = desired
            .services
            .iter()
            .flat_map(|(key, want)| want.dests.iter().map(move |(dest, d)| (key, dest, d)))
            .zip(self.added.dests.iter().copied())
            .filter(|(_, added)| *added)
            .map(|((key, dest, d), _)| diff::dest_add(key, dest, d));
        let adds = services.chain(dests).map(Cow::Owned);
        adds.chain(self.rest.changes.iter().map(Cow::Borrowed))
    }

    /// The ops of [`Outline::changes`], in execution order: what the
    /// kernel client executes, made one at a time.
    pub fn ops<'a>(&'a self, desired: &'a IpvsState) -> impl Iterator<Item = Op> + 'a {
        self.changes(desired).map(|c| match c {
            Cow::Owned(c) => c.op,
            Cow::Borrowed(c) => c.op.clone(),
        })
    }

    /// The add changes of each desired service that has any (its own add,
    /// then its dests'), in the desired state's order: the adds of
    /// [`Outline::changes`] grouped by service, for the plan's text.
    pub fn adds_by_service<'a>(
        &'a self,
        desired: &'a IpvsState,
    ) -> impl Iterator<Item = (ServiceKey, Vec<Change>)> + 'a {
        let mut dest_flags = self.added.dests.iter().copied();
        let mut service_flags = self.added.services.iter().copied();
        // No flags at all (`From<Plan>`): no walk over the desired state.
        let flagged = self.added.services.len();
        let services = desired.services.iter().take(flagged);
        services.filter_map(move |(key, want)| {
            let mut group = Vec::new();
            if service_flags.next() == Some(true) {
                group.push(diff::service_add(key, want));
            }
            for (dest, d) in &want.dests {
                if dest_flags.next() == Some(true) {
                    group.push(diff::dest_add(key, dest, d));
                }
            }
            (!group.is_empty()).then_some((*key, group))
        })
    }

    /// The whole plan, every change held.
    pub fn into_plan(self, desired: &IpvsState) -> Plan {
        let mut changes = Vec::with_capacity(self.rest.summary.total());
        changes.extend(self.changes(desired).map(Cow::into_owned));
        Plan {
            changes,
            ..self.rest
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.summary.total() == 0
    }
}

/// A plan as an outline whose adds are held in it like its other
/// changes (`plan::plan_within`'s, which are few).
impl From<Plan> for Outline {
    fn from(rest: Plan) -> Outline {
        Outline {
            rest,
            added: Added::default(),
        }
    }
}

/// [`super::plan`] as an [`Outline`], and the reason a guard refuses it
/// (`None`: it passes). The one error: desired services outside
/// `ownership` ([`PlanError::NotOwned`]).
pub fn outline(
    desired: &IpvsState,
    live: &impl LiveView,
    ownership: &Ownership,
    guards: &Guards,
) -> Result<(Outline, Option<String>), PlanError> {
    let mut added = Added::default();
    let rest = diff::diff_marking(desired, live, ownership, &mut added)?;
    let refused = guard::check(&rest, guards);
    Ok((Outline { rest, added }, refused))
}
