//! The mass-delete guards: a plan that deletes every owned service, more
//! than `max_delete_percent` of the owned dests when that is more than
//! `max_delete_min` of them, or that empties more than `max_empty_percent`
//! of the owned services that have dests (leaves them without a dest of
//! weight above 0: an empty overlay does that without deleting much), is
//! refused unless `allow_mass_delete`.
//!
//! Dests count as deleted when the plan deletes them or their service; a
//! dest whose key changes (delete plus add) counts as deleted. Small tables
//! do not trip the percentage guard: it needs more than `max_delete_min`
//! deletions.
//!
//! Invariant: pure; looks only at the plan's counts.

use super::{Guards, Plan};
use crate::text::plural;

/// Why the plan is refused, or `None` when it passes.
pub(super) fn check(plan: &Plan, guards: &Guards) -> Option<String> {
    if guards.allow_mass_delete {
        return None;
    }
    if plan.owned_services > 0 && plan.services_removed == plan.owned_services {
        return Some(format!(
            "refusing a plan that deletes every owned service ({} of {}): pass --allow-mass-delete if that is intended",
            plan.services_removed, plan.owned_services
        ));
    }
    let removed = plan.dests_removed as u128;
    let total = plan.owned_dests as u128;
    if plan.dests_removed > guards.max_delete_min
        && removed * 100 > total * u128::from(guards.max_delete_percent)
    {
        let percent = removed * 100 / total.max(1);
        return Some(format!(
            "refusing a plan that deletes {} of {} ({percent}%, more than --max-delete-percent {} and more than --max-delete-min {}): pass --allow-mass-delete if that is intended",
            plan.dests_removed,
            plural(plan.owned_dests, "owned dest"),
            guards.max_delete_percent,
            guards.max_delete_min
        ));
    }
    check_emptied(plan, guards)
}

/// The emptied-services guard (see [`super::Emptied`]).
fn check_emptied(plan: &Plan, guards: &Guards) -> Option<String> {
    let emptied = plan.emptied.len() as u128;
    let serving = plan.serving_services as u128;
    if emptied == 0 || emptied * 100 <= serving * u128::from(guards.max_empty_percent) {
        return None;
    }
    let percent = emptied * 100 / serving.max(1);
    Some(format!(
        "refusing a plan that empties {} of {} with dests ({percent}%, more than --max-empty-percent {}): no dest would be left to take their connections; pass --allow-mass-delete if that is intended",
        plan.emptied.len(),
        plural(plan.serving_services, "owned service"),
        guards.max_empty_percent
    ))
}
