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
//! table, no provenance or health, which the kernel has none of, and the
//! connection counters of the read); a read of the kernel is made into one
//! directly (`daemon::kernel`), and the planner (`plan::LiveView`) and the
//! drains (`drain::Counters`) read it as it is.
//!
//! Why the copy is safe to plan against: ARCHITECTURE.md, "the live copy is
//! the last read plus our own ops".
//!
//! Not here: no I/O, no clock, no kernel client; the daemon (`crate::daemon`)
//! reads and applies.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::model::{
    Dest, DestAttrs, DestStats, IpvsState, LiveStats, LiveTable, Op, Service, ServiceAttrs,
    ServiceKey,
};
use crate::plan::{LiveCounts, LiveView, ServiceView};
use crate::reconcile::drain::{self, Counters};

/// A live table as the daemon reads and keeps it: each service's
/// attributes and its dests as a sorted slice of (address, attributes),
/// with their connection counters where the read asked for them. About 70
/// bytes a dest with counters, against about 144 in an [`IpvsState`] (a
/// B-tree slot of a [`Dest`] with its empty provenance and health) plus
/// the B-trees of a [`LiveStats`]. The planner and the drains read it as
/// it is ([`LiveView`], [`Counters`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    services: BTreeMap<ServiceKey, Entry>,
}

/// One service of a [`Table`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    attrs: ServiceAttrs,
    /// Sorted by address, each address once.
    dests: Box<[(SocketAddr, DestAttrs)]>,
    /// The counters of `dests`, index for index, as last read (`None`: a
    /// dest added since); empty when there are none at all.
    stats: Box<[Option<DestStats>]>,
}

impl Entry {
    /// A service of a state: provenance and health dropped, no counters
    /// except those `stats` gives.
    fn of(service: Service, stats: Option<&BTreeMap<SocketAddr, DestStats>>) -> Entry {
        let stats = match stats {
            Some(m) => service.dests.keys().map(|a| m.get(a).copied()).collect(),
            None => Box::default(),
        };
        Entry {
            attrs: service.attrs,
            dests: service
                .dests
                .into_iter()
                .map(|(a, d)| (a, d.attrs))
                .collect(),
            stats,
        }
        .trimmed()
    }

    /// No counters at all held as none.
    fn trimmed(mut self) -> Entry {
        if self.stats.iter().all(Option::is_none) {
            self.stats = Box::default();
        }
        self
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
                };
                (*addr, dest)
            })
            .collect();
        s
    }

    fn stats_at(&self, i: usize) -> Option<DestStats> {
        self.stats.get(i).copied().flatten()
    }

    fn position(&self, addr: &SocketAddr) -> Option<usize> {
        self.dests.binary_search_by(|(a, _)| a.cmp(addr)).ok()
    }
}

impl<'a> ServiceView<'a> for &'a Entry {
    fn attrs(self) -> &'a ServiceAttrs {
        &self.attrs
    }

    fn dests(self) -> impl Iterator<Item = (&'a SocketAddr, &'a DestAttrs)> {
        self.dests.iter().map(|(addr, d)| (addr, d))
    }

    fn dest_count(self) -> usize {
        self.dests.len()
    }

    fn dest(self, addr: &SocketAddr) -> Option<&'a DestAttrs> {
        self.position(addr).map(|i| &self.dests[i].1)
    }
}

impl LiveView for Table {
    type Service<'a> = &'a Entry;

    fn services(&self) -> impl Iterator<Item = (&ServiceKey, &Entry)> {
        self.services.iter()
    }

    fn service(&self, key: &ServiceKey) -> Option<&Entry> {
        self.services.get(key)
    }
}

impl Counters for Table {
    fn services(
        &self,
    ) -> impl Iterator<
        Item = (
            &ServiceKey,
            impl Iterator<Item = (&SocketAddr, DestStats)> + Clone,
        ),
    > {
        self.services
            .iter()
            .filter(|(_, e)| !e.stats.is_empty())
            .map(|(key, e)| {
                let each = e.dests.iter().zip(e.stats.iter());
                (key, each.filter_map(|((addr, _), s)| s.map(|s| (addr, s))))
            })
    }

    fn get(&self, key: &ServiceKey, addr: &SocketAddr) -> Option<DestStats> {
        self.dest_stats(key, addr)
    }
}

impl From<IpvsState> for Table {
    /// Provenance and health dropped (the kernel has neither), the
    /// state's own memory freed as it is read; no counters.
    fn from(state: IpvsState) -> Table {
        Table {
            services: state
                .services
                .into_iter()
                .map(|(key, s)| (key, Entry::of(s, None)))
                .collect(),
        }
    }
}

impl From<LiveTable> for Table {
    /// The state with its counters (a counter of a dest the state does
    /// not have is dropped).
    fn from(read: LiveTable) -> Table {
        let LiveTable { state, stats } = read;
        Table {
            services: state
                .services
                .into_iter()
                .map(|(key, s)| (key, Entry::of(s, stats.get(&key))))
                .collect(),
        }
    }
}

impl From<&LiveTable> for Table {
    /// [`From<LiveTable>`] without a copy of the whole state on the way.
    fn from(read: &LiveTable) -> Table {
        let mut table = Table::default();
        for (key, s) in &read.state.services {
            let stats = read.stats.get(key);
            let dests = s.dests.iter().map(|(addr, d)| {
                let counted = stats.and_then(|m| m.get(addr)).copied();
                (*addr, d.attrs, counted)
            });
            table.insert_read(*key, s.attrs.clone(), dests);
        }
        table
    }
}

impl Table {
    /// Adds (or replaces) a service as read: its dests sorted by address,
    /// each once (the kernel lists each once), with their counters where
    /// the read asked for them.
    pub fn insert_read(
        &mut self,
        key: ServiceKey,
        attrs: ServiceAttrs,
        dests: impl ExactSizeIterator<Item = (SocketAddr, DestAttrs, Option<DestStats>)>,
    ) {
        let n = dests.len();
        let mut addrs = Vec::with_capacity(n);
        let mut stats = Vec::with_capacity(n);
        for (addr, attrs, counted) in dests {
            debug_assert!(addrs.last().is_none_or(|(a, _)| *a < addr), "sorted");
            addrs.push((addr, attrs));
            stats.push(counted);
        }
        let entry = Entry {
            attrs,
            dests: addrs.into_boxed_slice(),
            stats: stats.into_boxed_slice(),
        };
        self.services.insert(key, entry.trimmed());
    }

    /// The whole table as an [`IpvsState`].
    pub fn to_state(&self) -> IpvsState {
        self.part(self.services.keys())
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

    /// The counters as a [`LiveStats`] (services without any left out).
    pub fn to_stats(&self) -> LiveStats {
        Counters::services(self)
            .map(|(key, each)| (*key, each.map(|(a, s)| (*a, s)).collect()))
            .collect()
    }

    /// The service keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &ServiceKey> {
        self.services.keys()
    }

    pub fn services(&self) -> usize {
        self.services.len()
    }

    /// Rebuilds the service map with full B-tree nodes: inserts in key
    /// order (a first pass's adds) leave every node about half full. Cut in
    /// two and appended: `append` of two non-empty maps builds one map of
    /// full nodes from both, freeing their nodes as it goes, so the rebuild
    /// holds no more than the map did (`collect` would hold every entry in
    /// a `Vec` besides).
    pub fn compact(&mut self) {
        let Some(middle) = self.services.keys().nth(self.services.len() / 2).copied() else {
            return;
        };
        let mut right = self.services.split_off(&middle);
        self.services.append(&mut right);
    }

    pub fn dest_count(&self) -> usize {
        self.services.values().map(|e| e.dests.len()).sum()
    }

    /// The counters of one dest as last read.
    pub fn dest_stats(&self, key: &ServiceKey, addr: &SocketAddr) -> Option<DestStats> {
        let e = self.services.get(key)?;
        e.stats_at(e.position(addr)?)
    }

    /// The guards' counts of the table (see [`LiveCounts::of`]).
    pub fn counts(&self, ownership: &crate::plan::Ownership) -> LiveCounts {
        LiveCounts::of(self, ownership)
    }

    /// Applies one service's ops (all on `key`, in order) as
    /// [`Op::apply_to`] does; the service's counts before and after
    /// (`None`: absent), or the first op that does not apply. A dest's
    /// counters stay with it until it is deleted.
    fn apply_run(&mut self, key: ServiceKey, ops: &[Op]) -> Result<Counted, String> {
        let before = self.services.remove(&key);
        let counted_before = before.as_ref().map(crate::plan::counted);
        let mut one = IpvsState::default();
        // The counters of the dests the ops leave.
        let mut stats: BTreeMap<SocketAddr, DestStats> = BTreeMap::new();
        if let Some(e) = before {
            one.services.insert(key, e.to_service());
            let each = e.dests.iter().zip(e.stats.iter());
            stats = each.filter_map(|((a, _), s)| s.map(|s| (*a, s))).collect();
        }
        let applied = ops.iter().try_for_each(|op| {
            op.apply_to(&mut one)?;
            match op {
                Op::DelDest { dest, .. } => {
                    stats.remove(dest);
                }
                Op::DelService { .. } => stats.clear(),
                _ => {}
            }
            Ok::<(), String>(())
        });
        let after = one
            .services
            .remove(&key)
            .map(|s| Entry::of(s, Some(&stats)));
        let counted_after = after.as_ref().map(crate::plan::counted);
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

/// The daemon's copy of the kernel's table: the table as last read plus
/// the ops applied since, and when it was read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiveCopy {
    /// With the connection counters of the last real read (not updated
    /// by ops, but a deleted dest's go with it: stale as soon as they are
    /// read, which is why drains read again).
    pub table: Table,
    /// When the kernel was last read for real (monotonic, the caller's
    /// clock).
    pub read_at: Duration,
    /// The guards' counts of `table`, once a plan asked for them; kept
    /// current by [`LiveCopy::apply`].
    pub counts: Option<LiveCounts>,
}

impl LiveCopy {
    /// A copy of the table just read at `read_at`.
    pub fn of(read: impl Into<Table>, read_at: Duration) -> LiveCopy {
        LiveCopy {
            table: read.into(),
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
    drain::deletes_drainable(plan, &copy.table)
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
        LiveCopy::of(LiveTable { state, stats }, read_at)
    }

    /// A pass with nothing that asks for a read but the copy's age.
    const QUIET: Situation = Situation {
        resync: false,
        sighup: false,
        draining: false,
    };

    #[test]
    fn compacting_a_table_keeps_every_service_and_dest() {
        let mut copy = LiveCopy::default();
        let ops: Vec<Op> = (0..300u32)
            .flat_map(|i| {
                let service: ServiceKey = format!("tcp://10.0.{}.{}:80", i / 256, i % 256)
                    .parse()
                    .unwrap();
                let add = Op::AddService {
                    service,
                    attrs: ServiceAttrs::with_scheduler("wlc"),
                };
                let dest = Op::AddDest {
                    service,
                    dest: format!("10.1.{}.{}:80", i / 256, i % 256).parse().unwrap(),
                    attrs: DestAttrs::new(Method::Masq, i),
                };
                [add, dest]
            })
            .collect();
        copy.apply(&ops).unwrap();
        let before = copy.table.to_state();
        copy.table.compact();
        assert_eq!(copy.table.services(), 300);
        assert_eq!(copy.table.to_state(), before);
    }

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
        assert_eq!(
            t.table.dest_stats(&service, &dest),
            None,
            "counters of a deleted dest go"
        );
        assert!(t.table.to_stats().is_empty());
        // The copy no longer has it: deleting it again does not apply.
        assert!(t.apply(&[Op::DelDest { service, dest }]).is_err());
        t.apply(&[Op::DelService { service }]).unwrap();
        assert!(t.table.to_state().services.is_empty() && t.table.to_stats().is_empty());
    }

    #[test]
    fn a_dests_counters_stay_with_it_until_it_is_deleted() {
        let service: ServiceKey = "tcp://10.0.0.1:80".parse().unwrap();
        let dest = "10.1.0.1:80".parse().unwrap();
        let other = "10.1.0.2:80".parse().unwrap();
        let three = Some(DestStats {
            active_conns: 3,
            ..DestStats::default()
        });
        let mut t = table(Duration::ZERO);
        assert_eq!(t.table.dest_stats(&service, &dest), three);
        let attrs = DestAttrs::new(Method::Masq, 7);
        t.apply(&[
            Op::EditDest {
                service,
                dest,
                attrs,
            },
            Op::AddDest {
                service,
                dest: other,
                attrs,
            },
        ])
        .unwrap();
        assert_eq!(
            t.table.dest_stats(&service, &dest),
            three,
            "kept by an edit"
        );
        assert_eq!(t.table.dest_stats(&service, &other), None, "added: none");
        // Deleted and added again in one run: the old counters are gone.
        t.apply(&[
            Op::DelDest { service, dest },
            Op::AddDest {
                service,
                dest,
                attrs,
            },
        ])
        .unwrap();
        assert_eq!(t.table.dest_stats(&service, &dest), None);
        assert_eq!(t.table, Table::from(t.table.to_state()), "none left at all");
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
