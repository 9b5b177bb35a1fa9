//! The diff: walks desired and live side by side (both sorted) and sorts
//! every difference into the make-before-break buckets.
//!
//! Attributes compare by meaning, not spelling: a netmask equal to the host
//! mask is no netmask, a netmask without persistence is ignored, and
//! scheduler flags compare by the bit they set.
//!
//! Invariant: pure, linear in the size of both states. This module does not
//! decide about guards or output.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::view::{LiveView, ServiceView};
use super::{
    Added, Before, Change, Emptied, Ownership, Plan, PlanError, ServiceBefore, Summary, Unmanaged,
};
use crate::model::flags::canonical_flags;
use crate::model::{Dest, DestAttrs, IpvsState, Op, Service, ServiceAttrs, ServiceKey};

/// Where the diff puts the adds: a plan's vector (each add a [`Change`]),
/// or [`Added`] (one flag per desired service and dest, read back from the
/// desired state when the plan is written). Every desired service the
/// first walk meets and every desired dest the second walk meets is
/// either added or kept, in the desired state's order.
pub(super) trait Adds {
    fn add_service(&mut self, key: &ServiceKey, want: &Service);
    fn keep_service(&mut self);
    fn add_dest(&mut self, key: &ServiceKey, dest: &SocketAddr, d: &Dest);
    fn keep_dest(&mut self);
    /// Room for `n` more adds.
    fn reserve(&mut self, n: usize);
    /// How many adds so far.
    fn count(&self) -> usize;
}

/// The change that adds desired service `key`.
#[inline]
pub(super) fn service_add(key: &ServiceKey, want: &Service) -> Change {
    change(
        Op::AddService {
            service: *key,
            attrs: want.attrs.clone(),
        },
        None,
    )
}

/// The change that adds desired dest `dest` of service `key`.
#[inline]
pub(super) fn dest_add(key: &ServiceKey, dest: &SocketAddr, d: &Dest) -> Change {
    change(
        Op::AddDest {
            service: *key,
            dest: *dest,
            attrs: d.attrs,
        },
        None,
    )
}

// Inlined: a call a dest, and the `Change` copied out of it into the
// vector, were a fifth of a plan from empty (issue 15).
impl Adds for Vec<Change> {
    #[inline]
    fn add_service(&mut self, key: &ServiceKey, want: &Service) {
        self.push(service_add(key, want));
    }

    fn keep_service(&mut self) {}

    #[inline]
    fn add_dest(&mut self, key: &ServiceKey, dest: &SocketAddr, d: &Dest) {
        self.push(dest_add(key, dest, d));
    }

    fn keep_dest(&mut self) {}

    fn reserve(&mut self, n: usize) {
        self.reserve_exact(n);
    }

    fn count(&self) -> usize {
        self.len()
    }
}

impl Adds for Added {
    fn add_service(&mut self, _: &ServiceKey, _: &Service) {
        self.services.push(true);
    }

    fn keep_service(&mut self) {
        self.services.push(false);
    }

    fn add_dest(&mut self, _: &ServiceKey, _: &SocketAddr, _: &Dest) {
        self.dests.push(true);
    }

    fn keep_dest(&mut self) {
        self.dests.push(false);
    }

    fn reserve(&mut self, _: usize) {}

    fn count(&self) -> usize {
        let added = |flags: &[bool]| flags.iter().filter(|&&added| added).count();
        added(&self.services) + added(&self.dests)
    }
}

/// The attributes in their one canonical spelling.
pub fn canonical_service_attrs(key: &ServiceKey, attrs: &ServiceAttrs) -> ServiceAttrs {
    ServiceAttrs {
        scheduler: attrs.scheduler.clone(),
        persistence: attrs.persistence,
        netmask: canonical_netmask(key, attrs),
        flags: canonical_flags(&attrs.scheduler, &attrs.flags),
    }
}

fn canonical_netmask(key: &ServiceKey, attrs: &ServiceAttrs) -> Option<u8> {
    attrs.persistence?;
    attrs.netmask.filter(|m| *m < key.family().max_prefix_len())
}

/// Whether two attribute sets mean the same to the kernel.
pub fn same_service_attrs(key: &ServiceKey, a: &ServiceAttrs, b: &ServiceAttrs) -> bool {
    a.scheduler == b.scheduler
        && a.persistence == b.persistence
        && canonical_netmask(key, a) == canonical_netmask(key, b)
        && (a.flags == b.flags
            || canonical_flags(&a.scheduler, &a.flags) == canonical_flags(&b.scheduler, &b.flags))
}

/// The state as the kernel sees it: canonical attributes, no provenance.
pub fn canonical_state(state: &IpvsState) -> IpvsState {
    IpvsState {
        services: state
            .services
            .iter()
            .map(|(key, svc)| {
                let mut s = Service::new(canonical_service_attrs(key, &svc.attrs));
                s.dests = svc
                    .dests
                    .iter()
                    .map(|(addr, d)| {
                        (
                            *addr,
                            Dest {
                                attrs: d.attrs,
                                provenance: Box::default(),
                            },
                        )
                    })
                    .collect();
                (*key, s)
            })
            .collect(),
    }
}

/// The groups of a plan that follow the adds, each filled in sorted order,
/// and the counts of the second walk. Adds go straight into the plan's
/// vector: from empty they are nearly all of it, and copying a million
/// changes between vectors costs more than computing them.
#[derive(Default)]
struct Rest {
    edits: Vec<Change>,
    dest_deletes: Vec<Change>,
    service_deletes: Vec<Change>,
    unmanaged: Vec<Unmanaged>,
    owned_services: usize,
    owned_dests: usize,
    dests_removed: usize,
    services_removed: usize,
    serving_services: usize,
    emptied: Vec<Emptied>,
}

#[inline]
fn change(op: Op, before: Option<Before>) -> Change {
    Change { op, before }
}

/// One pair of sorted sequences walked together.
enum Side<'a, K, A, B> {
    Left(&'a K, A),
    Right(&'a K, B),
    Both(&'a K, A, B),
}

/// `a.cmp(b)`, equality tested first: most keys of a plan against a live
/// table are on both sides, and `==` on a socket address is two integer
/// compares where `cmp` walks its octets (-12% instructions in a plan of
/// a 1% change, issue 15).
#[inline]
fn order<K: Ord>(a: &K, b: &K) -> Ordering {
    if a == b { Ordering::Equal } else { a.cmp(b) }
}

/// Walks two sequences of (key, value), each sorted by key with each key
/// once, side by side.
fn merge<'a, K: Ord + 'a, A, B>(
    left: impl Iterator<Item = (&'a K, A)>,
    right: impl Iterator<Item = (&'a K, B)>,
    mut f: impl FnMut(Side<'a, K, A, B>),
) {
    let mut l = left.peekable();
    let mut r = right.peekable();
    loop {
        match (l.peek(), r.peek()) {
            (None, None) => return,
            (Some(_), None) => {
                let (k, v) = l.next().expect("peeked");
                f(Side::Left(k, v));
            }
            (None, Some(_)) => {
                let (k, v) = r.next().expect("peeked");
                f(Side::Right(k, v));
            }
            (Some((lk, _)), Some((rk, _))) => match order(lk, rk) {
                Ordering::Less => {
                    let (k, v) = l.next().expect("peeked");
                    f(Side::Left(k, v));
                }
                Ordering::Greater => {
                    let (k, v) = r.next().expect("peeked");
                    f(Side::Right(k, v));
                }
                Ordering::Equal => {
                    let (k, a) = l.next().expect("peeked");
                    let (_, b) = r.next().expect("peeked");
                    f(Side::Both(k, a, b));
                }
            },
        }
    }
}

/// Diffs desired (left) against live (right).
///
/// Two walks: the first, over services only, finds what is not owned and
/// which services are added; the dests of added services are all adds,
/// which sizes the vector before the service adds go in first. The second
/// walk emits everything else.
pub(super) fn diff(
    desired: &IpvsState,
    live: &impl LiveView,
    ownership: &Ownership,
) -> Result<Plan, PlanError> {
    let mut changes: Vec<Change> = Vec::new();
    let rest = diff_into(desired, live, ownership, &mut changes)?;
    Ok(rest.into_plan(changes))
}

/// [`diff`] with the adds marked in `added` instead of made: the plan
/// holds the other changes, and its summary counts the adds.
pub(super) fn diff_marking(
    desired: &IpvsState,
    live: &impl LiveView,
    ownership: &Ownership,
    added: &mut Added,
) -> Result<Plan, PlanError> {
    let rest = diff_into(desired, live, ownership, added)?;
    let adds = added.count();
    let mut plan = rest.into_plan(Vec::new());
    plan.summary.add = adds;
    Ok(plan)
}

/// Both walks, the adds into `adds`, sized once before the first add.
fn diff_into(
    desired: &IpvsState,
    live: &impl LiveView,
    ownership: &Ownership,
    adds: &mut impl Adds,
) -> Result<Rest, PlanError> {
    let first = add_services(desired, live, ownership)?;
    // Sized before the first push: growing the plan's vector as it fills
    // copied every change made so far (a fifth of a plan from empty, issue
    // 15).
    adds.reserve(first.services + first.dests);
    for (key, add) in first.each {
        match add {
            Some(want) => adds.add_service(key, want),
            None => adds.keep_service(),
        }
    }
    let rest = diff_the_rest(desired, live, ownership, adds);
    debug_assert!(first.services + first.dests <= adds.count());
    Ok(rest)
}

/// What the first walk found: each desired service in order, with the
/// service when it is to be added, and how many services and dests the
/// adds hold.
struct FirstWalk<'a> {
    each: Vec<(&'a ServiceKey, Option<&'a Service>)>,
    services: usize,
    dests: usize,
}

/// The first walk: the desired services that are not live, and how many
/// dests they hold; an error naming every desired service outside the
/// owned ranges.
fn add_services<'a>(
    desired: &'a IpvsState,
    live: &'a impl LiveView,
    ownership: &Ownership,
) -> Result<FirstWalk<'a>, PlanError> {
    let mut not_owned: Vec<ServiceKey> = Vec::new();
    let mut first = FirstWalk {
        each: Vec::with_capacity(desired.services.len()),
        services: 0,
        dests: 0,
    };
    merge(
        desired.services.iter(),
        live.services(),
        |side| match side {
            Side::Left(key, want) => {
                if !ownership.owns(key) {
                    not_owned.push(*key);
                    first.each.push((key, None));
                } else {
                    first.services += 1;
                    first.dests += want.dests.len();
                    first.each.push((key, Some(want)));
                }
            }
            Side::Both(key, _, _) => {
                if !ownership.owns(key) {
                    not_owned.push(*key);
                }
                first.each.push((key, None));
            }
            Side::Right(..) => {}
        },
    );
    if !not_owned.is_empty() {
        return Err(PlanError::NotOwned {
            services: not_owned,
        });
    }
    Ok(first)
}

/// The second walk: the dest adds go on `changes`, everything else into
/// the returned groups.
fn diff_the_rest(
    desired: &IpvsState,
    live: &impl LiveView,
    ownership: &Ownership,
    adds: &mut impl Adds,
) -> Rest {
    let mut rest = Rest::default();
    merge(
        desired.services.iter(),
        live.services(),
        |side| match side {
            Side::Left(key, want) => add_dests(key, want, adds),
            Side::Right(key, have) => rest.delete_service(key, have, ownership),
            Side::Both(key, want, have) => rest.update_service(key, want, have, adds),
        },
    );
    rest
}

/// The dests of a service being added.
fn add_dests(key: &ServiceKey, want: &Service, adds: &mut impl Adds) {
    for (dest, d) in &want.dests {
        adds.add_dest(key, dest, d);
    }
}

impl Rest {
    /// A live service that is not desired: deleted if owned, else listed as
    /// unmanaged.
    fn delete_service<'a>(
        &mut self,
        key: &ServiceKey,
        have: impl ServiceView<'a>,
        ownership: &Ownership,
    ) {
        let dests = have.dest_count();
        if !ownership.owns(key) {
            self.unmanaged.push(Unmanaged {
                service: *key,
                dests,
            });
            return;
        }
        self.owned_services += 1;
        self.owned_dests += dests;
        self.serving_services += usize::from(have.serves());
        self.services_removed += 1;
        self.dests_removed += dests;
        self.service_deletes.push(change(
            Op::DelService { service: *key },
            Some(Before::Service(Box::new(ServiceBefore {
                attrs: have.attrs().clone(),
                dests_removed: dests,
            }))),
        ));
    }

    /// A service both desired and live: its attributes, then its dests.
    fn update_service<'a>(
        &mut self,
        key: &ServiceKey,
        want: &'a Service,
        have: impl ServiceView<'a>,
        adds: &mut impl Adds,
    ) {
        self.owned_services += 1;
        self.owned_dests += have.dest_count();
        if !same_service_attrs(key, &want.attrs, have.attrs()) {
            self.edits.push(change(
                Op::EditService {
                    service: *key,
                    attrs: want.attrs.clone(),
                },
                Some(Before::Service(Box::new(ServiceBefore {
                    attrs: have.attrs().clone(),
                    dests_removed: 0,
                }))),
            ));
        }
        let serving = diff_dests(key, &want.dests, have.dests(), adds, self);
        if serving.live > 0 {
            self.serving_services += 1;
            if !serving.desired {
                self.emptied.push(Emptied {
                    service: *key,
                    dests_before: serving.live,
                    dests_after: want.dests.len(),
                });
            }
        }
    }

    /// The plan: the adds, then edits, dest deletes, service deletes.
    fn into_plan(self, mut changes: Vec<Change>) -> Plan {
        let summary = Summary {
            add: changes.len(),
            change: self.edits.len(),
            delete: self.dest_deletes.len() + self.service_deletes.len(),
        };
        changes.reserve_exact(summary.change + summary.delete);
        changes.extend(self.edits);
        changes.extend(self.dest_deletes);
        changes.extend(self.service_deletes);
        Plan {
            changes,
            unmanaged: self.unmanaged,
            summary,
            owned_services: self.owned_services,
            owned_dests: self.owned_dests,
            dests_removed: self.dests_removed,
            services_removed: self.services_removed,
            serving_services: self.serving_services,
            emptied: self.emptied,
        }
    }
}

/// The dests of a service both desired and live: adds on `adds`, the rest
/// into their groups; returns how they serve. The service's dest edits
/// that lower a weight follow those that raise one, so that a service
/// whose weight moves from one dest to another (its fallback taking over,
/// or handing back) never passes through all weights 0.
fn diff_dests<'a>(
    key: &ServiceKey,
    want: &'a BTreeMap<SocketAddr, Dest>,
    have: impl Iterator<Item = (&'a SocketAddr, &'a DestAttrs)>,
    adds: &mut impl Adds,
    rest: &mut Rest,
) -> Serving {
    let first_edit = rest.edits.len();
    let mut lowered = false;
    let mut serving = Serving::default();
    merge(want.iter(), have, |side| match side {
        Side::Left(dest, d) => {
            serving.desired |= d.attrs.weight > 0;
            adds.add_dest(key, dest, d);
        }
        Side::Right(dest, d) => {
            serving.live += usize::from(d.weight > 0);
            rest.dests_removed += 1;
            rest.dest_deletes.push(change(
                Op::DelDest {
                    service: *key,
                    dest: *dest,
                },
                Some(Before::Dest(*d)),
            ));
        }
        Side::Both(dest, w, h) => {
            serving.desired |= w.attrs.weight > 0;
            serving.live += usize::from(h.weight > 0);
            adds.keep_dest();
            if w.attrs != *h {
                lowered |= w.attrs.weight < h.weight;
                rest.edits.push(change(
                    Op::EditDest {
                        service: *key,
                        dest: *dest,
                        attrs: w.attrs,
                    },
                    Some(Before::Dest(*h)),
                ));
            }
        }
    });
    if lowered {
        raises_first(&mut rest.edits[first_edit..]);
    }
    serving
}

/// Of one service's dests: how many live ones serve (weight above 0), and
/// whether a desired one will. Counted by the dest walk, which reads every
/// weight anyway: walks of their own went through each service's dest
/// maps once more (a plan with no change, 100k x 10: 5% of its time,
/// issue 15).
#[derive(Default)]
struct Serving {
    live: usize,
    desired: bool,
}

/// Orders one service's dest edits: those that lower a weight last, each
/// group in address order (a stable sort).
fn raises_first(edits: &mut [Change]) {
    edits.sort_by_key(|c| match (&c.op, &c.before) {
        (Op::EditDest { attrs, .. }, Some(Before::Dest(old))) => attrs.weight < old.weight,
        _ => false,
    });
}
