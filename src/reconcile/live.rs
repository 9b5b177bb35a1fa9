//! The daemon's copy of the kernel's IPVS table between passes: what the
//! last real read returned plus the ops applied since ([`Op::apply_to`], as
//! the kernel applies them). A pass may plan against it instead of dumping
//! the whole table from the kernel, so that one etcd event costs in
//! proportion to the change, not to the table.
//!
//! The whole rule for when the copy may be used is here, from plain data
//! (the time on the daemon's monotonic clock, passed in, and a
//! [`Situation`]). The kernel is read for real:
//!
//! - on the first pass (restart): the copy is empty;
//! - after a failed pass of any kind (invalid config, source error, apply
//!   failure, partial apply): the daemon takes the copy out at the start of
//!   a pass ([`LiveCache::take`]) and puts it back only when the pass
//!   succeeded, so any failure leaves it empty and the retry reads;
//! - once the copy is `max_age` (the resync interval) old, and on a resync
//!   pass: the anti-entropy pass is a pass whose copy expired;
//! - after SIGHUP;
//! - while drains are in progress, and when the plan against the copy would
//!   start one ([`may_start_drain`]): drains need fresh connection
//!   counters.
//!
//! The copy is kept compact ([`Table`]: what the planner reads of a live
//! table, no provenance or health, which the kernel has none of); the
//! planner gets the services it plans within as an [`IpvsState`]
//! ([`Table::part`]).
//!
//! Why the copy is safe to plan against: ARCHITECTURE.md, "the live copy is
//! the last read plus our own ops".
//!
//! Not here: no I/O, no clock, no kernel client; the daemon (`crate::daemon`)
//! reads and applies.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use crate::model::{
    Dest, DestAttrs, IpvsState, LiveStats, LiveTable, Op, Service, ServiceAttrs, ServiceKey,
};
use crate::plan::LiveCounts;
use crate::reconcile::drain;

/// A live table as the copy keeps it: each service's attributes and its
/// dests as a sorted slice of (address, attributes). 52 bytes a dest,
/// against about 144 in an [`IpvsState`] (a B-tree slot of a [`Dest`]
/// with its empty provenance and health).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    services: BTreeMap<ServiceKey, Entry>,
}

/// One service of a [`Table`].
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    attrs: ServiceAttrs,
    /// Sorted by address, each address once.
    dests: Box<[(SocketAddr, DestAttrs)]>,
}

impl Entry {
    fn of(service: Service) -> Entry {
        Entry {
            attrs: service.attrs,
            dests: service
                .dests
                .into_iter()
                .map(|(a, d)| (a, d.attrs))
                .collect(),
        }
    }

    /// Its dests, and whether one of weight above 0 serves.
    fn counted(&self) -> (usize, bool) {
        let serves = self.dests.iter().any(|(_, d)| d.weight > 0);
        (self.dests.len(), serves)
    }

    fn to_service(&self) -> Service {
        let mut s = Service::new(self.attrs.clone());
        s.dests = self
            .dests
            .iter()
            .map(|(addr, attrs)| {
                let dest = Dest {
                    attrs: *attrs,
                    provenance: Box::default(),
                    health: None,
                };
                (*addr, dest)
            })
            .collect();
        s
    }
}

impl From<IpvsState> for Table {
    /// Provenance and health dropped (the kernel has neither), the
    /// state's own memory freed as it is read.
    fn from(state: IpvsState) -> Table {
        Table {
            services: state
                .services
                .into_iter()
                .map(|(key, s)| (key, Entry::of(s)))
                .collect(),
        }
    }
}

impl Table {
    /// The whole table as an [`IpvsState`].
    pub fn to_state(&self) -> IpvsState {
        self.part(self.services.keys())
    }

    /// The whole table as an [`IpvsState`], its own memory freed as that
    /// is made.
    pub fn into_state(self) -> IpvsState {
        IpvsState {
            services: self
                .services
                .into_iter()
                .map(|(key, e)| (key, e.to_service()))
                .collect(),
        }
    }

    /// The services of `scope` that the table has, as an [`IpvsState`].
    pub fn part<'k>(&self, scope: impl IntoIterator<Item = &'k ServiceKey>) -> IpvsState {
        IpvsState {
            services: scope
                .into_iter()
                .filter_map(|k| self.services.get(k).map(|e| (*k, e.to_service())))
                .collect(),
        }
    }

    pub fn services(&self) -> usize {
        self.services.len()
    }

    pub fn dest_count(&self) -> usize {
        self.services.values().map(|e| e.dests.len()).sum()
    }

    /// The guards' counts of the table (see [`LiveCounts::of`]).
    pub fn counts(&self, ownership: &crate::plan::Ownership) -> LiveCounts {
        LiveCounts::of_each(
            self.services.iter().map(|(key, e)| (key, e.counted())),
            ownership,
        )
    }

    /// Applies one service's ops (all on `key`, in order) as
    /// [`Op::apply_to`] does; the service's counts before and after
    /// (`None`: absent), or the first op that does not apply.
    fn apply_run(&mut self, key: ServiceKey, ops: &[Op]) -> Result<Counted, String> {
        let before = self.services.remove(&key);
        let counted_before = before.as_ref().map(Entry::counted);
        let mut one = IpvsState::default();
        if let Some(e) = before {
            one.services.insert(key, e.to_service());
        }
        let applied = ops.iter().try_for_each(|op| op.apply_to(&mut one));
        let after = one.services.remove(&key).map(Entry::of);
        let counted_after = after.as_ref().map(Entry::counted);
        // Kept as far as it applied (the caller drops a copy that failed).
        if let Some(e) = after {
            self.services.insert(key, e);
        }
        applied.map(|()| (counted_before, counted_after))
    }
}

/// A service's counts before and after a run of its ops (see
/// [`LiveCounts::replace_counted`]).
type Counted = (Option<(usize, bool)>, Option<(usize, bool)>);

/// The daemon's copy of a [`LiveTable`]: the table as last read plus the
/// ops applied since, and when it was read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiveCopy {
    pub table: Table,
    /// Connection counters of the last real read (not updated by ops:
    /// stale as soon as they are read, which is why drains read again).
    pub stats: LiveStats,
    /// When the kernel was last read for real (monotonic, the caller's
    /// clock).
    pub read_at: Duration,
    /// The guards' counts of `table`, once a plan asked for them; kept
    /// current by [`LiveCopy::apply`].
    pub counts: Option<LiveCounts>,
}

impl LiveCopy {
    /// A copy of the table just read at `read_at`.
    pub fn of(read: LiveTable, read_at: Duration) -> LiveCopy {
        LiveCopy {
            table: Table::from(read.state),
            stats: read.stats,
            read_at,
            counts: None,
        }
    }

    /// Applies ops the kernel acked, in order. An op that does not apply to
    /// the copy means the copy was wrong: the caller drops it.
    pub fn apply(&mut self, ops: &[Op]) -> Result<(), String> {
        // A service's consecutive ops together: its dests are made a map
        // once for them.
        for run in ops.chunk_by(|a, b| a.service() == b.service()) {
            let key = *run[0].service();
            let (before, after) = self.table.apply_run(key, run)?;
            if let Some(counts) = &mut self.counts {
                counts.replace_counted(before, after);
            }
            for op in run {
                if let Op::DelDest { service, dest } = op
                    && let Some(s) = self.stats.get_mut(service)
                {
                    s.remove(dest);
                } else if let Op::DelService { service } = op {
                    self.stats.remove(service);
                }
            }
        }
        Ok(())
    }
}

/// What a pass knows when it starts that makes it read the kernel whatever
/// the copy's age.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Situation {
    /// A resync pass (the anti-entropy pass reads).
    pub resync: bool,
    /// SIGHUP since the last pass.
    pub sighup: bool,
    /// Drains in progress: they need fresh connection counters.
    pub draining: bool,
}

impl Situation {
    fn needs_read(self) -> bool {
        self.resync || self.sighup || self.draining
    }
}

/// Whether a plan made against the copy needs a fresh read after all: with
/// draining on (`drain_timeout` not zero), a delete of a dest that may have
/// connections would start a drain, and only the kernel's counters can
/// tell.
pub fn may_start_drain<'o>(
    plan: impl IntoIterator<Item = &'o Op>,
    copy: &LiveCopy,
    drain_timeout: Duration,
) -> bool {
    if drain_timeout.is_zero() {
        return false;
    }
    let deletes: Vec<&Op> = plan
        .into_iter()
        .filter(|op| matches!(op, Op::DelDest { .. } | Op::DelService { .. }))
        .collect();
    // The deleted services, whose dests go with them.
    let services: BTreeSet<&ServiceKey> = deletes
        .iter()
        .filter(|op| matches!(op, Op::DelService { .. }))
        .map(|op| op.service())
        .collect();
    drain::deletes_drainable(deletes, &copy.table.part(services))
}

/// Where the daemon keeps its [`LiveCopy`] between passes, and when it may
/// be used.
#[derive(Clone, Debug)]
pub struct LiveCache {
    max_age: Duration,
    copy: Option<LiveCopy>,
}

impl LiveCache {
    /// A copy is used for at most `max_age` after the real read it started
    /// from (the resync interval; zero: never used).
    pub fn new(max_age: Duration) -> LiveCache {
        LiveCache {
            max_age,
            copy: None,
        }
    }

    /// Takes the copy out for a pass at `now`: `Some` if the pass may plan
    /// against it, `None` if it must read the kernel (empty, expired, or the
    /// [`Situation`] asks for a read). Either way the cache is empty
    /// afterwards until [`put`].
    ///
    /// [`put`]: LiveCache::put
    pub fn take(&mut self, now: Duration, situation: Situation) -> Option<LiveCopy> {
        self.take_either(now, situation).ok()
    }

    /// [`LiveCache::take`], also handing out a copy the pass must not plan
    /// against (`Err`), for display only (the daemon's status page).
    pub fn take_either(
        &mut self,
        now: Duration,
        situation: Situation,
    ) -> Result<LiveCopy, Option<LiveCopy>> {
        let copy = self.copy.take().ok_or(None)?;
        let fresh = now.saturating_sub(copy.read_at) < self.max_age;
        if fresh && !situation.needs_read() {
            Ok(copy)
        } else {
            Err(Some(copy))
        }
    }

    /// Keeps the copy after a successful pass (read, or taken, plus the
    /// ops the pass applied).
    pub fn put(&mut self, copy: LiveCopy) {
        self.copy = Some(copy);
    }

    /// The kept copy, to look at (the daemon's status page).
    pub fn peek(&self) -> Option<&LiveCopy> {
        self.copy.as_ref()
    }

    /// When the kept copy expires (the next pass after this reads).
    pub fn expires_at(&self) -> Option<Duration> {
        self.copy
            .as_ref()
            .map(|t| t.read_at.saturating_add(self.max_age))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Dest, DestAttrs, DestStats, Method, Service, ServiceAttrs, ServiceKey};

    const S: Duration = Duration::from_secs(1);

    fn table(read_at: Duration) -> LiveCopy {
        let mut state = IpvsState::default();
        let key = "tcp://10.0.0.1:80".parse().unwrap();
        let mut svc = Service::new(ServiceAttrs::with_scheduler("wlc"));
        svc.dests.insert(
            "10.1.0.1:80".parse().unwrap(),
            Dest {
                attrs: DestAttrs::new(Method::Masq, 10),
                provenance: Box::default(),
                health: None,
            },
        );
        state.services.insert(key, svc);
        let mut stats = LiveStats::new();
        stats.entry(key).or_default().insert(
            "10.1.0.1:80".parse().unwrap(),
            DestStats {
                active_conns: 3,
                ..DestStats::default()
            },
        );
        LiveCopy {
            table: state.into(),
            stats,
            read_at,
            counts: None,
        }
    }

    /// A pass with nothing that asks for a read but the copy's age.
    const QUIET: Situation = Situation {
        resync: false,
        sighup: false,
        draining: false,
    };

    #[test]
    fn a_copy_is_used_until_it_expires() {
        let mut c = LiveCache::new(30 * S);
        assert_eq!(c.take(Duration::ZERO, QUIET), None, "empty at start");
        c.put(table(10 * S));
        assert_eq!(c.expires_at(), Some(40 * S));
        let t = c.take(39 * S, QUIET).expect("fresh");
        assert_eq!(c.take(39 * S, QUIET), None, "taken out for the pass");
        c.put(t);
        assert_eq!(c.take(40 * S, QUIET), None, "expired: the resync reads");
        assert_eq!(c.take(41 * S, QUIET), None, "and stays empty");
    }

    #[test]
    fn a_pass_that_does_not_put_it_back_leaves_it_empty() {
        let mut c = LiveCache::new(30 * S);
        c.put(table(Duration::ZERO));
        let _failed_pass = c.take(S, QUIET);
        assert_eq!(c.take(2 * S, QUIET), None);
        assert_eq!(c.expires_at(), None);
    }

    #[test]
    fn a_sighup_and_a_zero_age_force_a_read() {
        let mut c = LiveCache::new(30 * S);
        c.put(table(Duration::ZERO));
        let sighup = Situation {
            sighup: true,
            ..QUIET
        };
        assert_eq!(c.take(S, sighup), None);
        let mut c = LiveCache::new(Duration::ZERO);
        c.put(table(Duration::ZERO));
        assert_eq!(c.take(Duration::ZERO, QUIET), None);
    }

    #[test]
    fn a_resync_pass_reads_and_empties_the_copy() {
        let mut c = LiveCache::new(30 * S);
        c.put(table(Duration::ZERO));
        let resync = Situation {
            resync: true,
            ..QUIET
        };
        assert_eq!(c.take(S, resync), None, "fresh, but a resync reads");
        assert_eq!(c.take(S, QUIET), None, "and the copy is gone");
    }

    #[test]
    fn drains_in_progress_read() {
        let mut c = LiveCache::new(30 * S);
        c.put(table(Duration::ZERO));
        let draining = Situation {
            draining: true,
            ..QUIET
        };
        assert_eq!(c.take(S, draining), None);
        assert_eq!(c.take(S, QUIET), None, "and the copy is gone");
    }

    #[test]
    fn a_plan_that_would_start_a_drain_reads() {
        let copy = table(Duration::ZERO);
        let service: ServiceKey = "tcp://10.0.0.1:80".parse().unwrap();
        let dest = "10.1.0.1:80".parse().unwrap();
        let del_dest = [Op::DelDest { service, dest }];
        let del_service = [Op::DelService { service }];
        let add_dest = [Op::AddDest {
            service,
            dest: "10.1.0.2:80".parse().unwrap(),
            attrs: DestAttrs::new(Method::Masq, 10),
        }];
        assert!(may_start_drain(&del_dest, &copy, S));
        assert!(may_start_drain(&del_service, &copy, S), "its dests drain");
        assert!(!may_start_drain(&add_dest, &copy, S));
        assert!(
            !may_start_drain(&del_dest, &copy, Duration::ZERO),
            "draining off: the copy serves"
        );
        // UDP has no connections to drain; a service without dests has
        // nothing to drain.
        let udp: ServiceKey = "udp://10.0.0.1:53".parse().unwrap();
        assert!(!may_start_drain(
            &[Op::DelDest { service: udp, dest }],
            &copy,
            S
        ));
        let mut empty = copy.clone();
        let mut state = empty.table.to_state();
        state.services.get_mut(&service).unwrap().dests.clear();
        empty.table = state.into();
        assert!(!may_start_drain(&del_service, &empty, S));
    }

    #[test]
    fn ops_apply_to_the_copy_and_a_wrong_copy_is_an_error() {
        let mut t = table(Duration::ZERO);
        let service = "tcp://10.0.0.1:80".parse().unwrap();
        let dest = "10.1.0.1:80".parse().unwrap();
        t.apply(&[Op::DelDest { service, dest }]).unwrap();
        assert!(t.table.to_state().services[&service].dests.is_empty());
        assert!(
            t.stats[&service].is_empty(),
            "counters of a deleted dest go"
        );
        // The copy no longer has it: deleting it again does not apply.
        assert!(t.apply(&[Op::DelDest { service, dest }]).is_err());
        t.apply(&[Op::DelService { service }]).unwrap();
        assert!(t.table.to_state().services.is_empty() && t.stats.is_empty());
    }

    #[test]
    fn the_counts_kept_by_the_copy_equal_a_fresh_count_after_every_op() {
        use crate::plan::{Guards, LiveCounts, Ownership};
        let svc = |weights: &[u32]| {
            let mut s = Service::new(ServiceAttrs::with_scheduler("wlc"));
            for (i, w) in weights.iter().enumerate() {
                let dest = format!("10.1.0.{i}:80").parse().unwrap();
                let attrs = DestAttrs::new(Method::Masq, *w);
                s.dests.insert(
                    dest,
                    Dest {
                        attrs,
                        provenance: Box::default(),
                        health: None,
                    },
                );
            }
            s
        };
        let key = |i: u8| -> ServiceKey { format!("tcp://10.0.0.{i}:80").parse().unwrap() };
        let mut live = IpvsState::default();
        live.services.insert(key(1), svc(&[1, 1]));
        live.services.insert(key(2), svc(&[0]));
        live.services.insert(key(3), svc(&[5, 5, 5]));
        live.services
            .insert("tcp://192.168.0.1:80".parse().unwrap(), svc(&[1]));
        let mut desired = live.clone();
        desired
            .services
            .remove(&"tcp://192.168.0.1:80".parse().unwrap());
        desired.services.insert(key(1), svc(&[0, 0]));
        desired.services.insert(key(2), svc(&[3, 3, 3, 3]));
        desired.services.remove(&key(3));
        desired.services.insert(key(4), svc(&[7]));
        let own = Ownership::parse(&["10.0.0.0/8".into()], &[]).unwrap();
        let loose = Guards {
            allow_mass_delete: true,
            ..Guards::default()
        };
        let plan = crate::plan::plan(&desired, &live, &own, &loose).unwrap();
        let mut copy = LiveCopy::of(
            LiveTable {
                state: live,
                ..LiveTable::default()
            },
            S,
        );
        copy.counts = Some(LiveCounts::of(&copy.table.to_state(), &own));
        for op in plan.ops() {
            copy.apply(std::slice::from_ref(op)).unwrap();
            assert_eq!(
                copy.counts,
                Some(LiveCounts::of(&copy.table.to_state(), &own)),
                "after {op:?}"
            );
        }
        assert!(plan.ops().count() > 5);
    }

    #[test]
    fn the_compact_copy_applies_ops_as_the_state_does() {
        use crate::plan::{Guards, Ownership};
        let dest = |w| Dest {
            attrs: DestAttrs::new(Method::Masq, w),
            provenance: Box::default(),
            health: None,
        };
        let key = |i: u8| -> ServiceKey { format!("tcp://10.0.0.{i}:80").parse().unwrap() };
        let addr =
            |i: u16| -> std::net::SocketAddr { format!("10.1.0.{}:80", i % 250).parse().unwrap() };
        let mut live = IpvsState::default();
        let mut desired = IpvsState::default();
        for i in 1..6u8 {
            let mut have = Service::new(ServiceAttrs::with_scheduler("wlc"));
            let mut want = Service::new(ServiceAttrs::with_scheduler(if i == 2 {
                "rr"
            } else {
                "wlc"
            }));
            for j in 0..u16::from(i) * 3 {
                have.dests.insert(addr(j * 2), dest(u32::from(i)));
                want.dests
                    .insert(addr(j * 3), dest(u32::from(i) + u32::from(j % 2)));
            }
            if i != 4 {
                live.services.insert(key(i), have);
            }
            if i != 5 {
                desired.services.insert(key(i), want);
            }
        }
        let loose = Guards {
            allow_mass_delete: true,
            ..Guards::default()
        };
        let plan = crate::plan::plan(&desired, &live, &Ownership::all(), &loose).unwrap();
        let ops: Vec<Op> = plan.ops().cloned().collect();
        let mut want = live.clone();
        for op in &ops {
            op.apply_to(&mut want).unwrap();
        }
        assert_eq!(want, desired, "the plan reaches the desired state");
        let read = LiveTable {
            state: live,
            ..LiveTable::default()
        };
        // All at once (a run per service) and in uneven chunks.
        for size in [ops.len(), 1, 4, 7] {
            let mut copy = LiveCopy::of(read.clone(), S);
            for chunk in ops.chunks(size) {
                copy.apply(chunk).unwrap();
            }
            assert_eq!(copy.table.to_state(), want, "chunks of {size}");
            assert_eq!(copy.table, Table::from(want.clone()));
        }
        let mut copy = LiveCopy::of(read, S);
        let wrong = [Op::DelService { service: key(4) }];
        assert!(copy.apply(&wrong).is_err(), "not in the copy");
    }
}
