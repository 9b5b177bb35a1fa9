//! Graceful drain: a dest that leaves the desired state first goes to weight
//! 0 and is deleted only once its active connections reach 0 or the drain
//! timeout passes (UDP dests are deleted at once: UDP has no connections to
//! wait for).
//!
//! [`apply`] is a pure transformation of (desired state, live state with
//! connection counters, drain records, now) into (adjusted desired state,
//! updated drain records): while a dest drains, the planner sees a weight-0
//! dest (an in-place edit) instead of a delete. Drain records serialize to a
//! small JSON document so drains survive a restart.
//!
//! Invariant: pure. No clock (now is passed in, as Unix milliseconds, because
//! records outlive the process), no file I/O (the daemon writes the state
//! file), and nothing outside the caller's ownership predicate is touched.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::model::{
    Dest, DestAttrs, DestStats, IpvsState, LiveStats, Op, Protocol, Provenance, Service,
    ServiceAttrs, ServiceKey,
};
use crate::plan::{LiveView, ServiceView};

/// The connection counters of a live table as [`apply`] reads them: a
/// [`LiveStats`] (beside an [`IpvsState`]), or the daemon's compact table,
/// which holds its own.
pub trait Counters {
    /// The services with counters, in key order, each with its dests'
    /// counters in address order.
    fn services(
        &self,
    ) -> impl Iterator<
        Item = (
            &ServiceKey,
            impl Iterator<Item = (&SocketAddr, DestStats)> + Clone,
        ),
    >;

    /// The counters of one dest.
    fn get(&self, key: &ServiceKey, addr: &SocketAddr) -> Option<DestStats>;
}

impl Counters for LiveStats {
    fn services(
        &self,
    ) -> impl Iterator<
        Item = (
            &ServiceKey,
            impl Iterator<Item = (&SocketAddr, DestStats)> + Clone,
        ),
    > {
        self.iter()
            .map(|(key, dests)| (key, dests.iter().map(|(a, s)| (a, *s))))
    }

    fn get(&self, key: &ServiceKey, addr: &SocketAddr) -> Option<DestStats> {
        self.get(key).and_then(|m| m.get(addr)).copied()
    }
}

/// Version of the state-file format.
pub const FORMAT_VERSION: u32 = 1;

/// Backend name shown in the provenance of a draining dest (and the name of
/// a service kept only for its draining dests). The plan text shows it
/// as `(draining from drain state: 3 active connections, 20s left)`.
pub const DRAIN_BACKEND: &str = "draining";

/// One dest being drained.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainRecord {
    pub service: ServiceKey,
    pub dest: SocketAddr,
    /// When the drain started, Unix milliseconds.
    pub since_ms: u64,
    /// The dest's attributes when the drain started (the weight is forced to
    /// 0 while draining; the method and thresholds are kept).
    pub attrs: DestAttrs,
    /// The service's attributes, to keep the service while its last dests
    /// drain after it left the desired state.
    pub service_attrs: ServiceAttrs,
}

/// The drains in progress: what the state file holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Drains {
    records: BTreeMap<(ServiceKey, SocketAddr), DrainRecord>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DrainsFile {
    version: u32,
    drains: Vec<DrainRecord>,
}

impl Drains {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn records(&self) -> impl Iterator<Item = &DrainRecord> {
        self.records.values()
    }

    pub fn get(&self, service: &ServiceKey, dest: &SocketAddr) -> Option<&DrainRecord> {
        self.records.get(&(*service, *dest))
    }

    pub fn remove(&mut self, service: &ServiceKey, dest: &SocketAddr) -> Option<DrainRecord> {
        self.records.remove(&(*service, *dest))
    }

    pub fn insert(&mut self, record: DrainRecord) {
        self.records.insert((record.service, record.dest), record);
    }

    /// The state-file document: `{"version": 1, "drains": [...]}`.
    pub fn to_json(&self) -> String {
        let file = DrainsFile {
            version: FORMAT_VERSION,
            drains: self.records.values().cloned().collect(),
        };
        let mut s = serde_json::to_string_pretty(&file).expect("drain records serialize");
        s.push('\n');
        s
    }

    /// Parses a state-file document; the error says what is wrong (the
    /// caller adds the file name).
    pub fn from_json(text: &str) -> Result<Drains, String> {
        let file: DrainsFile = serde_json::from_str(text).map_err(|e| {
            format!(
                "{}:{}: {}",
                e.line(),
                e.column(),
                lowercase_first(&e.to_string())
            )
        })?;
        if file.version != FORMAT_VERSION {
            return Err(format!(
                "unsupported drain state version {}, expected {FORMAT_VERSION}",
                file.version
            ));
        }
        let mut drains = Drains::default();
        for r in file.drains {
            drains.insert(r);
        }
        Ok(drains)
    }
}

fn lowercase_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Why a drain ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Completion {
    /// No active connections left: the dest is deleted.
    Idle,
    /// The drain timeout passed: the dest is deleted with connections left.
    Timeout,
    /// The dest came back into the desired state: the drain is cancelled.
    Returned,
    /// The dest is gone from the kernel (deleted by hand).
    Vanished,
}

/// A drain in progress, for logs, the plan and metrics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DrainStatus {
    pub service: ServiceKey,
    pub dest: SocketAddr,
    pub since_ms: u64,
    pub active_conns: u32,
    /// Time left until the timeout deletes the dest anyway.
    pub remaining_ms: u64,
}

/// What [`apply`] decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome<'a> {
    /// The desired state with draining dests kept at weight 0 (borrowed
    /// as given when nothing drains: no copy of a large table).
    pub desired: Cow<'a, IpvsState>,
    /// The records to persist.
    pub drains: Drains,
    /// Drains still in progress.
    pub active: Vec<DrainStatus>,
    /// Drains that ended in this call.
    pub completed: Vec<(ServiceKey, SocketAddr, Completion)>,
    /// Earliest drain timeout (Unix ms), when a drain is in progress.
    pub next_deadline_ms: Option<u64>,
}

impl<'a> Outcome<'a> {
    /// No drains: `desired` borrowed as it is, no records. What [`apply`]
    /// decides when there are no records and no live dest with active
    /// connections leaves the desired state; the daemon uses it for a pass
    /// that plans against its cached table with no drain in progress (a dest
    /// that leaves then makes it read the kernel and call [`apply`]).
    pub fn unchanged(desired: &'a IpvsState) -> Outcome<'a> {
        Outcome {
            desired: Cow::Borrowed(desired),
            drains: Drains::default(),
            active: Vec::new(),
            completed: Vec::new(),
            next_deadline_ms: None,
        }
    }
}

/// Adjusts `desired` so that owned live dests leaving it drain first.
///
/// `timeout` zero disables draining: `desired` is returned as is and every
/// record is dropped. `owns` says which services clusterf may change; the
/// others are left alone as the planner leaves them.
///
/// Cost: in proportion to the drain records and the live dests with active
/// connections (the only dests that can start a drain), not to the table:
/// a live dest without connections and without a record is left to the
/// planner, so it is never looked at. `desired` is copied only when a dest
/// drains.
pub fn apply<'a, L: LiveView, C: Counters>(
    desired: &'a IpvsState,
    live: &L,
    stats: &C,
    drains: &Drains,
    now_ms: u64,
    timeout: Duration,
    owns: &dyn Fn(&ServiceKey) -> bool,
) -> Outcome<'a> {
    let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    let mut out = Outcome::unchanged(desired);
    if timeout_ms == 0 {
        return out;
    }
    let tables = Tables {
        desired,
        live,
        stats,
        owns,
    };
    out.completed = ended_records(&tables, drains);
    let step = Step {
        drains,
        now_ms,
        timeout_ms,
    };
    drain_busy_leavers(&tables, &step, &mut out);
    drain_recorded_idle(&tables, &step, &mut out);
    // In table order, as the dests are listed everywhere else.
    out.active.sort_by_key(|d| (d.service, d.dest));
    out.completed.sort();
    out
}

/// What [`apply`] reads.
struct Tables<'t, L, C> {
    desired: &'t IpvsState,
    live: &'t L,
    stats: &'t C,
    owns: &'t dyn Fn(&ServiceKey) -> bool,
}

impl<L, C> Tables<'_, L, C> {
    /// Whether the service's dests may drain: owned, and not UDP.
    fn drainable(&self, key: &ServiceKey) -> bool {
        (self.owns)(key) && !is_udp(key)
    }
}

/// Records whose dest came back into the desired state or is no longer
/// live.
fn ended_records<L: LiveView, C>(
    t: &Tables<'_, L, C>,
    drains: &Drains,
) -> Vec<(ServiceKey, SocketAddr, Completion)> {
    let mut ended = Vec::new();
    for (service, dest) in drains.records.keys() {
        let in_desired = t
            .desired
            .services
            .get(service)
            .is_some_and(|s| s.dests.contains_key(dest));
        let in_live = t
            .live
            .service(service)
            .is_some_and(|s| s.dest(dest).is_some());
        if in_desired {
            ended.push((*service, *dest, Completion::Returned));
        } else if !in_live {
            ended.push((*service, *dest, Completion::Vanished));
        }
    }
    ended
}

/// Owned live dests leaving the desired state with active connections. The
/// counters, the live and the desired services and their dests are all
/// sorted the same way: merge walks, no lookups.
fn drain_busy_leavers<L: LiveView, C: Counters>(
    t: &Tables<'_, L, C>,
    step: &Step<'_>,
    out: &mut Outcome<'_>,
) {
    let mut live_services = t.live.services().peekable();
    let mut desired_services = t.desired.services.iter().peekable();
    for (key, counters) in t.stats.services() {
        if !counters.clone().any(|(_, s)| s.active_conns > 0) || !t.drainable(key) {
            continue;
        }
        while live_services.next_if(|(k, _)| *k < key).is_some() {}
        let Some(&(_, live_svc)) = live_services.peek().filter(|(k, _)| *k == key) else {
            continue;
        };
        while desired_services.next_if(|(k, _)| *k < key).is_some() {}
        let mut wanted = desired_services
            .peek()
            .filter(|(k, _)| *k == key)
            .into_iter()
            .flat_map(|(_, d)| d.dests.keys())
            .peekable();
        for (addr, s) in counters {
            while wanted.next_if(|w| *w < addr).is_some() {}
            if s.active_conns == 0 || wanted.peek() == Some(&addr) {
                continue;
            }
            if let Some(live_dest) = live_svc.dest(addr) {
                step.decide(out, key, addr, live_svc.attrs(), live_dest, s.active_conns);
            }
        }
    }
}

/// Owned live dests leaving the desired state with a record and no active
/// connection (a dest without either is left to the planner to delete).
fn drain_recorded_idle<L: LiveView, C: Counters>(
    t: &Tables<'_, L, C>,
    step: &Step<'_>,
    out: &mut Outcome<'_>,
) {
    for record in step.drains.records.values() {
        let (key, addr) = (&record.service, &record.dest);
        let active_conns = t.stats.get(key, addr).map_or(0, |s| s.active_conns);
        if active_conns > 0 || !t.drainable(key) {
            continue;
        }
        let Some(live_svc) = t.live.service(key) else {
            continue;
        };
        let Some(live_dest) = live_svc.dest(addr) else {
            continue;
        };
        if t.desired
            .services
            .get(key)
            .is_some_and(|s| s.dests.contains_key(addr))
        {
            continue;
        }
        step.decide(out, key, addr, live_svc.attrs(), live_dest, 0);
    }
}

/// Whether ops of a plan delete a dest that could drain: a dest of a
/// service other than UDP, deleted on its own or with its service. Such a
/// plan needs fresh connection counters before it is applied.
pub fn deletes_drainable<'o>(ops: impl IntoIterator<Item = &'o Op>, live: &impl LiveView) -> bool {
    ops.into_iter().any(|op| match op {
        Op::DelDest { service, .. } => !is_udp(service),
        Op::DelService { service } => {
            !is_udp(service) && live.service(service).is_some_and(|s| s.dest_count() > 0)
        }
        _ => false,
    })
}

/// What [`apply`] does with one owned live dest that left the desired
/// state and has a record or active connections.
struct Step<'r> {
    drains: &'r Drains,
    now_ms: u64,
    timeout_ms: u64,
}

impl Step<'_> {
    fn decide(
        &self,
        out: &mut Outcome<'_>,
        key: &ServiceKey,
        addr: &SocketAddr,
        live_svc: &ServiceAttrs,
        live_dest: &DestAttrs,
        active_conns: u32,
    ) {
        let now_ms = self.now_ms;
        let record = match self.drains.get(key, addr) {
            Some(r) => r.clone(),
            None => {
                if active_conns == 0 {
                    // Nothing to wait for: let the planner delete it.
                    return;
                }
                DrainRecord {
                    service: *key,
                    dest: *addr,
                    since_ms: now_ms,
                    attrs: *live_dest,
                    service_attrs: live_svc.clone(),
                }
            }
        };
        let deadline = record.since_ms.saturating_add(self.timeout_ms);
        if active_conns == 0 || now_ms >= deadline {
            let why = if active_conns == 0 {
                Completion::Idle
            } else {
                Completion::Timeout
            };
            out.completed.push((*key, *addr, why));
            // Kept until the dest is gone from the kernel, so that a
            // failed apply does not restart the drain on the next pass.
            out.drains.insert(record);
            return;
        }
        let svc = out
            .desired
            .to_mut()
            .services
            .entry(*key)
            .or_insert_with(|| Service {
                names: vec![DRAIN_BACKEND.to_string()],
                ..Service::new(live_svc.clone())
            });
        svc.dests.insert(
            *addr,
            Dest {
                attrs: DestAttrs {
                    weight: 0,
                    ..record.attrs
                },
                provenance: Box::new([Provenance {
                    backend: DRAIN_BACKEND.into(),
                    source: format!(
                        "drain state: {active_conns} active connections, {}s left",
                        (deadline - now_ms).div_ceil(1000)
                    )
                    .into(),
                    weight: 0,
                    route: None,
                    fallback: false,
                }]),
            },
        );
        out.active.push(DrainStatus {
            service: *key,
            dest: *addr,
            since_ms: record.since_ms,
            active_conns,
            remaining_ms: deadline - now_ms,
        });
        out.next_deadline_ms = Some(out.next_deadline_ms.map_or(deadline, |d| d.min(deadline)));
        out.drains.insert(record);
    }
}

fn is_udp(key: &ServiceKey) -> bool {
    matches!(
        key,
        ServiceKey::Addr {
            protocol: Protocol::Udp,
            ..
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DestStats, Method};
    use proptest::prelude::*;

    const D: Duration = Duration::from_secs(60);

    fn svc(s: &str) -> ServiceKey {
        s.parse().unwrap()
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn state(entries: &[(&str, &[(&str, u32)])]) -> IpvsState {
        let mut st = IpvsState::default();
        for (key, dests) in entries {
            let mut s = Service::new(ServiceAttrs::with_scheduler("wlc"));
            for (a, w) in *dests {
                s.dests.insert(
                    addr(a),
                    Dest {
                        attrs: DestAttrs::new(Method::Masq, *w),
                        provenance: Box::default(),
                    },
                );
            }
            st.services.insert(svc(key), s);
        }
        st
    }

    fn conns(entries: &[(&str, &str, u32)]) -> LiveStats {
        let mut stats = LiveStats::new();
        for (s, d, n) in entries {
            stats.entry(svc(s)).or_default().insert(
                addr(d),
                DestStats {
                    active_conns: *n,
                    ..DestStats::default()
                },
            );
        }
        stats
    }

    fn weights(st: &IpvsState) -> Vec<(String, String, u32)> {
        st.services
            .iter()
            .flat_map(|(k, s)| {
                s.dests
                    .iter()
                    .map(move |(a, d)| (k.to_string(), a.to_string(), d.attrs.weight))
            })
            .collect()
    }

    fn all(_: &ServiceKey) -> bool {
        true
    }

    const T: &str = "tcp://10.0.0.1:80";

    #[test]
    fn a_removed_dest_with_connections_drains_at_weight_zero() {
        let desired = state(&[(T, &[("10.1.0.1:80", 10)])]);
        let live = state(&[(T, &[("10.1.0.1:80", 10), ("10.1.0.2:80", 10)])]);
        let stats = conns(&[(T, "10.1.0.2:80", 3)]);
        let out = apply(&desired, &live, &stats, &Drains::default(), 1_000, D, &all);
        assert_eq!(
            weights(&out.desired),
            vec![
                (T.into(), "10.1.0.1:80".into(), 10),
                (T.into(), "10.1.0.2:80".into(), 0)
            ]
        );
        let d = &out.desired.services[&svc(T)].dests[&addr("10.1.0.2:80")];
        assert_eq!(&*d.provenance[0].backend, DRAIN_BACKEND);
        assert_eq!(out.drains.len(), 1);
        assert_eq!(out.active[0].remaining_ms, 60_000);
        // As the daemon logs it: one pair of parentheses.
        let plan = crate::plan::plan(
            &out.desired,
            &live,
            &crate::plan::Ownership::all(),
            &crate::plan::Guards::default(),
        )
        .unwrap();
        let text = crate::plan::output::text(&plan, &out.desired, false);
        assert!(
            text.contains("(draining from drain state: 3 active connections, 60s left)"),
            "{text}"
        );
        assert!(!text.contains("(("), "{text}");
        assert_eq!(out.next_deadline_ms, Some(61_000));
    }

    #[test]
    fn drain_completes_when_connections_reach_zero() {
        let desired = state(&[(T, &[("10.1.0.1:80", 10)])]);
        let live = state(&[(T, &[("10.1.0.1:80", 10), ("10.1.0.2:80", 0)])]);
        let first = apply(
            &desired,
            &live,
            &conns(&[(T, "10.1.0.2:80", 2)]),
            &Drains::default(),
            0,
            D,
            &all,
        );
        assert_eq!(first.drains.len(), 1);
        let second = apply(
            &desired,
            &live,
            &conns(&[(T, "10.1.0.2:80", 0)]),
            &first.drains,
            5_000,
            D,
            &all,
        );
        assert_eq!(*second.desired, desired);
        assert!(second.active.is_empty());
        // Once the planner deleted it, the record goes.
        let third = apply(
            &desired,
            &desired,
            &LiveStats::new(),
            &second.drains,
            6_000,
            D,
            &all,
        );
        assert!(third.drains.is_empty());
        assert_eq!(
            second.completed,
            vec![(svc(T), addr("10.1.0.2:80"), Completion::Idle)]
        );
    }

    #[test]
    fn drain_completes_at_the_timeout_with_connections_left() {
        let desired = state(&[(T, &[("10.1.0.1:80", 10)])]);
        let live = state(&[(T, &[("10.1.0.1:80", 10), ("10.1.0.2:80", 0)])]);
        let stats = conns(&[(T, "10.1.0.2:80", 9)]);
        let first = apply(&desired, &live, &stats, &Drains::default(), 0, D, &all);
        let before = apply(&desired, &live, &stats, &first.drains, 59_999, D, &all);
        assert_eq!(before.drains.len(), 1);
        assert_eq!(before.active[0].remaining_ms, 1);
        let after = apply(&desired, &live, &stats, &before.drains, 60_000, D, &all);
        assert_eq!(*after.desired, desired);
        assert_eq!(
            after.completed,
            vec![(svc(T), addr("10.1.0.2:80"), Completion::Timeout)]
        );
    }

    #[test]
    fn an_idle_dest_is_deleted_at_once() {
        let desired = state(&[(T, &[("10.1.0.1:80", 10)])]);
        let live = state(&[(T, &[("10.1.0.1:80", 10), ("10.1.0.2:80", 10)])]);
        let out = apply(
            &desired,
            &live,
            &LiveStats::new(),
            &Drains::default(),
            0,
            D,
            &all,
        );
        assert_eq!(*out.desired, desired);
        assert!(out.drains.is_empty());
    }

    #[test]
    fn udp_dests_are_deleted_at_once() {
        let u = "udp://10.0.0.1:53";
        let desired = state(&[(u, &[])]);
        let live = state(&[(u, &[("10.1.0.2:53", 10)])]);
        let out = apply(
            &desired,
            &live,
            &conns(&[(u, "10.1.0.2:53", 5)]),
            &Drains::default(),
            0,
            D,
            &all,
        );
        assert_eq!(*out.desired, desired);
        assert!(out.drains.is_empty());
    }

    #[test]
    fn a_removed_service_is_kept_while_its_dests_drain() {
        let desired = IpvsState::default();
        let live = state(&[(T, &[("10.1.0.1:80", 10), ("10.1.0.2:80", 10)])]);
        let out = apply(
            &desired,
            &live,
            &conns(&[(T, "10.1.0.1:80", 1)]),
            &Drains::default(),
            0,
            D,
            &all,
        );
        assert_eq!(
            weights(&out.desired),
            vec![(T.into(), "10.1.0.1:80".into(), 0)]
        );
        assert_eq!(out.desired.services[&svc(T)].names, vec![DRAIN_BACKEND]);
    }

    #[test]
    fn a_returning_dest_cancels_its_drain() {
        let desired = state(&[(T, &[("10.1.0.1:80", 10)])]);
        let live = state(&[(T, &[("10.1.0.1:80", 0)])]);
        let mut drains = Drains::default();
        drains.insert(DrainRecord {
            service: svc(T),
            dest: addr("10.1.0.1:80"),
            since_ms: 0,
            attrs: DestAttrs::new(Method::Masq, 10),
            service_attrs: ServiceAttrs::with_scheduler("wlc"),
        });
        let out = apply(
            &desired,
            &live,
            &conns(&[(T, "10.1.0.1:80", 4)]),
            &drains,
            10,
            D,
            &all,
        );
        assert_eq!(*out.desired, desired);
        assert!(out.drains.is_empty());
        assert_eq!(
            out.completed,
            vec![(svc(T), addr("10.1.0.1:80"), Completion::Returned)]
        );
    }

    #[test]
    fn unowned_services_and_zero_timeout_are_left_alone() {
        let desired = IpvsState::default();
        let live = state(&[(T, &[("10.1.0.1:80", 10)])]);
        let stats = conns(&[(T, "10.1.0.1:80", 1)]);
        let out = apply(&desired, &live, &stats, &Drains::default(), 0, D, &|_| {
            false
        });
        assert_eq!(*out.desired, desired);
        let out = apply(
            &desired,
            &live,
            &stats,
            &Drains::default(),
            0,
            Duration::ZERO,
            &all,
        );
        assert_eq!(*out.desired, desired);
    }

    #[test]
    fn records_round_trip_through_json() {
        let mut drains = Drains::default();
        drains.insert(DrainRecord {
            service: svc("tcp://[2001:db8::1]:443"),
            dest: addr("[2001:db8::2]:8443"),
            since_ms: 1_700_000_000_000,
            attrs: DestAttrs::new(Method::Droute, 20),
            service_attrs: ServiceAttrs::with_scheduler("rr"),
        });
        let text = drains.to_json();
        assert_eq!(Drains::from_json(&text).unwrap(), drains);
        assert!(Drains::from_json("{").unwrap_err().starts_with("1:1: "));
        assert!(
            Drains::from_json(r#"{"version": 9, "drains": []}"#)
                .unwrap_err()
                .contains("version 9")
        );
    }

    /// The straightforward walk (every live dest looked up in the desired
    /// state) that [`apply`] must decide exactly as: it visits every dest
    /// and shares only the per-dest decision (`Step::decide`), so the
    /// proptest checks which dests `apply` looks at.
    fn reference_apply<'a>(
        desired: &'a IpvsState,
        live: &IpvsState,
        stats: &LiveStats,
        drains: &Drains,
        now_ms: u64,
        timeout: Duration,
        owns: &dyn Fn(&ServiceKey) -> bool,
    ) -> Outcome<'a> {
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let mut out = Outcome {
            desired: Cow::Borrowed(desired),
            drains: Drains::default(),
            active: Vec::new(),
            completed: Vec::new(),
            next_deadline_ms: None,
        };
        if timeout_ms == 0 {
            return out;
        }
        let step = Step {
            drains,
            now_ms,
            timeout_ms,
        };

        // Records whose dest is no longer live or came back.
        for (service, dest) in drains.records.keys() {
            let in_desired = desired
                .services
                .get(service)
                .is_some_and(|s| s.dests.contains_key(dest));
            let in_live = live
                .services
                .get(service)
                .is_some_and(|s| s.dests.contains_key(dest));
            if in_desired {
                out.completed.push((*service, *dest, Completion::Returned));
            } else if !in_live {
                out.completed.push((*service, *dest, Completion::Vanished));
            }
        }

        for (key, live_svc) in &live.services {
            if !owns(key) || is_udp(key) {
                continue;
            }
            for (addr, live_dest) in &live_svc.dests {
                let wanted = desired
                    .services
                    .get(key)
                    .is_some_and(|s| s.dests.contains_key(addr));
                if wanted {
                    continue;
                }
                let active_conns = stats
                    .get(key)
                    .and_then(|m| m.get(addr))
                    .map_or(0, |s| s.active_conns);
                step.decide(
                    &mut out,
                    key,
                    addr,
                    &live_svc.attrs,
                    &live_dest.attrs,
                    active_conns,
                );
            }
        }
        out.completed.sort();
        out
    }

    proptest! {
        #[test]
        fn state_file_parser_never_panics(s in ".{0,200}") {
            let _ = Drains::from_json(&s);
        }

        #[test]
        fn apply_decides_as_the_straightforward_walk(
            services in proptest::collection::btree_map(
                0u8..5,
                (
                    proptest::collection::btree_set(0u8..6, 0..6),
                    proptest::collection::btree_map(0u8..6, (0u32..3, 0u32..3), 0..6),
                    any::<bool>(),
                    any::<bool>(),
                ),
                0..5,
            ),
            stray_stats in proptest::collection::btree_map((0u8..7, 0u8..7), 0u32..3, 0..4),
            recorded in proptest::collection::btree_map((0u8..7, 0u8..7), 0u64..100_000, 0..6),
            now in 0u64..200_000,
            timeout_s in 0u64..120,
        ) {
            // Services 0..5 (even: TCP, odd: UDP), one not owned; counters
            // and records also for dests and services that are not live.
            let key = |i: u8| if i.is_multiple_of(2) {
                svc(&format!("tcp://10.0.0.{i}:80"))
            } else {
                svc(&format!("udp://10.0.0.{i}:53"))
            };
            let a = |i: u8| SocketAddr::from(([10, 1, 0, i], 80));
            let (mut desired, mut live, mut stats) =
                (IpvsState::default(), IpvsState::default(), LiveStats::new());
            let mut unowned = None;
            for (i, (want, have, in_desired, owned)) in &services {
                let mut d = Service::new(ServiceAttrs::with_scheduler("wlc"));
                let mut l = Service::new(ServiceAttrs::with_scheduler("rr"));
                for j in want {
                    d.dests.insert(a(*j), Dest { attrs: DestAttrs::new(Method::Masq, 10), provenance: Box::default() });
                }
                for (j, (w, c)) in have {
                    l.dests.insert(a(*j), Dest { attrs: DestAttrs::new(Method::Droute, *w), provenance: Box::default() });
                    stats.entry(key(*i)).or_default().insert(a(*j), DestStats { active_conns: *c, ..DestStats::default() });
                }
                if *in_desired {
                    desired.services.insert(key(*i), d);
                }
                live.services.insert(key(*i), l);
                if !owned {
                    unowned = Some(key(*i));
                }
            }
            for ((i, j), c) in &stray_stats {
                stats.entry(key(*i)).or_default().entry(a(*j)).or_insert(DestStats { active_conns: *c, ..DestStats::default() });
            }
            let mut drains = Drains::default();
            for ((i, j), since) in &recorded {
                drains.insert(DrainRecord { service: key(*i), dest: a(*j), since_ms: *since, attrs: DestAttrs::new(Method::Masq, 7), service_attrs: ServiceAttrs::with_scheduler("sh") });
            }
            let owns = |k: &ServiceKey| Some(*k) != unowned;
            let timeout = Duration::from_secs(timeout_s);
            let fast = apply(&desired, &live, &stats, &drains, now, timeout, &owns);
            let slow = reference_apply(&desired, &live, &stats, &drains, now, timeout, &owns);
            prop_assert_eq!(fast, slow);
        }

        #[test]
        fn drain_invariants(
            desired_dests in proptest::collection::btree_set(0u8..8, 0..8),
            live_dests in proptest::collection::btree_map(0u8..8, (0u32..3, 0u32..3), 0..8),
            recorded in proptest::collection::btree_map(0u8..8, 0u64..100_000, 0..4),
            udp in any::<bool>(),
            now in 0u64..200_000,
        ) {
            let key = if udp { svc("udp://10.0.0.1:53") } else { svc(T) };
            let a = |i: u8| SocketAddr::from(([10, 1, 0, i], 80));
            let mk = |dests: Vec<(u8, u32)>| {
                let mut st = IpvsState::default();
                let mut s = Service::new(ServiceAttrs::with_scheduler("wlc"));
                for (i, w) in dests {
                    s.dests.insert(a(i), Dest { attrs: DestAttrs::new(Method::Masq, w), provenance: Box::default() });
                }
                st.services.insert(key, s);
                st
            };
            let desired = mk(desired_dests.iter().map(|i| (*i, 10)).collect());
            let live = mk(live_dests.iter().map(|(i, (w, _))| (*i, *w)).collect());
            let mut stats = LiveStats::new();
            for (i, (_, c)) in &live_dests {
                stats.entry(key).or_default().insert(a(*i), DestStats { active_conns: *c, ..DestStats::default() });
            }
            let mut drains = Drains::default();
            for (i, since) in &recorded {
                drains.insert(DrainRecord { service: key, dest: a(*i), since_ms: *since, attrs: DestAttrs::new(Method::Masq, 10), service_attrs: ServiceAttrs::with_scheduler("wlc") });
            }
            let out = apply(&desired, &live, &stats, &drains, now, D, &all);
            // Desired dests pass through untouched.
            for (k, s) in &desired.services {
                for (d, dest) in &s.dests {
                    prop_assert_eq!(&out.desired.services[k].dests[d], dest);
                }
            }
            // Everything added is a live, recorded, weight-0 dest with connections.
            for (k, s) in &out.desired.services {
                for (d, dest) in &s.dests {
                    if desired.services.get(k).is_some_and(|s| s.dests.contains_key(d)) { continue; }
                    prop_assert!(!udp);
                    prop_assert_eq!(dest.attrs.weight, 0);
                    prop_assert!(live.services[k].dests.contains_key(d));
                    prop_assert!(out.drains.get(k, d).is_some());
                    prop_assert!(stats[k][d].active_conns > 0);
                }
            }
            prop_assert!(out.active.len() <= out.drains.len());
            // Idempotent: the same inputs with the updated records decide the same.
            let again = apply(&desired, &live, &stats, &out.drains, now, D, &all);
            prop_assert_eq!(&again.desired, &out.desired);
            prop_assert_eq!(again.drains, out.drains);
        }
    }
}
