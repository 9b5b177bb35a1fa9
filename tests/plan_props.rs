//! Property tests of the planner and the `ipvsadm -S -n` dump parser, and an
//! end-to-end check of saved plans (`clusterf plan --out`).
//!
//! Planner: for random desired and live states and ownership, applying the
//! plan's ops in order to the live state on the in-memory model (which
//! behaves like the kernel: no op may fail) yields exactly the desired state
//! for everything owned, leaves everything unowned untouched, and never
//! empties a service that has desired dests.
//!
//! Parser: no input makes it panic, and `format(state)` parses back to the
//! same state.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use proptest::prelude::*;

use clusterf::ipvsadm;
use clusterf::model::tunnel::Tunnel;
use clusterf::model::{
    Dest, DestAttrs, Family, IpvsState, Method, Op, Service, ServiceAttrs, ServiceKey,
};
use clusterf::plan::saved::{Inputs, LiveFingerprint, SavedPlan, check_fresh, live_hash};
use clusterf::plan::{self, Guards, Ownership, PlanError, canonical_state, output};

const KEYS: &[&str] = &[
    "tcp://10.0.0.1:80",
    "tcp://10.0.0.2:80",
    "udp://10.0.0.1:53",
    "tcp://[2001:db8::1]:443",
    "tcp://192.168.0.1:80",
    "udp://[2001:db8:ff::1]:53",
    "fwmark://1",
    "fwmark6://2",
    "fwmark://100",
];

const DESTS: &[&str] = &[
    "10.1.0.1:80",
    "10.1.0.2:80",
    "10.1.0.1:81",
    "10.1.0.3:0",
    "[2001:db8:1::1]:443",
    "[2001:db8:1::2]:443",
];

fn key() -> impl Strategy<Value = ServiceKey> {
    prop::sample::select(KEYS).prop_map(|s| s.parse().unwrap())
}

fn dest_addr() -> impl Strategy<Value = SocketAddr> {
    prop::sample::select(DESTS).prop_map(|s| s.parse().unwrap())
}

fn service_attrs() -> impl Strategy<Value = ServiceAttrs> {
    (
        prop::sample::select(vec!["wlc", "rr", "sh", "mh"]),
        prop::option::of(prop::sample::select(vec![60u32, 300])),
        prop::option::of(prop::sample::select(vec![24u8, 32, 64, 128])),
        prop::collection::vec(
            prop::sample::select(vec!["ops", "flag-1", "flag-2", "sh-port", "pe=sip"]),
            0..3,
        ),
    )
        .prop_map(|(scheduler, persistence, netmask, flags)| ServiceAttrs {
            scheduler: scheduler.to_string(),
            persistence,
            netmask,
            flags: flags.into_iter().map(String::from).collect(),
        })
}

fn dest_attrs() -> impl Strategy<Value = DestAttrs> {
    (
        prop::sample::select(Method::ALL.to_vec()),
        0u32..4,
        prop::sample::select(vec![0u32, 5]),
        prop::sample::select(vec![0u32, 2]),
        // ipip, gue and gre as the config and ipvsadm write them.
        prop::sample::select(vec![
            (0u8, 0u16, 0u16),
            (1, 6080, 0),
            (1, 6081, 2),
            (2, 0, 1),
        ]),
    )
        .prop_map(
            |(method, weight, upper, lower, (kind, port, flags))| DestAttrs {
                method,
                weight,
                upper_threshold: upper,
                lower_threshold: lower,
                tunnel: match method {
                    Method::Tunnel => Tunnel { kind, port, flags },
                    _ => Tunnel::IPIP,
                },
            },
        )
}

fn service() -> impl Strategy<Value = Service> {
    (
        service_attrs(),
        prop::collection::btree_map(dest_addr(), dest_attrs(), 0..5),
    )
        .prop_map(|(attrs, dests)| {
            let mut s = Service::new(attrs);
            s.dests = dests
                .into_iter()
                .map(|(a, attrs)| {
                    (
                        a,
                        Dest {
                            attrs,
                            provenance: Box::default(),
                        },
                    )
                })
                .collect();
            s
        })
}

/// Whether a dest of the service takes new connections.
fn serves(s: &Service) -> bool {
    s.dests.values().any(|d| d.attrs.weight > 0)
}

fn state() -> impl Strategy<Value = IpvsState> {
    prop::collection::btree_map(key(), service(), 0..7).prop_map(|services| IpvsState { services })
}

fn ownership() -> impl Strategy<Value = Ownership> {
    prop_oneof![
        Just(Ownership::all()),
        (
            prop::sample::subsequence(vec!["10.0.0.0/24", "2001:db8::/64", "10.0.0.2/32"], 0..=3),
            prop::sample::subsequence(vec!["1-2", "100"], 0..=2),
        )
            .prop_map(|(cidrs, marks)| {
                let cidrs: Vec<String> = cidrs.into_iter().map(String::from).collect();
                let marks: Vec<String> = marks.into_iter().map(String::from).collect();
                if cidrs.is_empty() && marks.is_empty() {
                    // Restricted to nothing but one host.
                    Ownership::parse(&["10.0.0.1/32".into()], &[]).unwrap()
                } else {
                    Ownership::parse(&cidrs, &marks).unwrap()
                }
            }),
    ]
}

/// Connection counters of random dests of random services (some not
/// live, as a stale read could have).
fn counters() -> impl Strategy<Value = clusterf::model::LiveStats> {
    let stats = (0u32..3, 0u32..3).prop_map(|(active, inactive)| clusterf::model::DestStats {
        active_conns: active,
        inactive_conns: inactive,
        persist_conns: active,
    });
    let dests = prop::collection::btree_map(dest_addr(), stats, 0..5);
    prop::collection::btree_map(key(), dests, 0..7)
}

fn drain_record() -> impl Strategy<Value = clusterf::reconcile::drain::DrainRecord> {
    (
        key(),
        dest_addr(),
        0u64..150_000,
        dest_attrs(),
        service_attrs(),
    )
        .prop_map(|(service, dest, since_ms, attrs, service_attrs)| {
            clusterf::reconcile::drain::DrainRecord {
                service,
                dest,
                since_ms,
                attrs: DestAttrs { weight: 0, ..attrs },
                service_attrs,
            }
        })
}

fn split(state: &IpvsState, own: &Ownership) -> (IpvsState, IpvsState) {
    let (mut owned, mut unowned) = (IpvsState::default(), IpvsState::default());
    for (k, s) in &state.services {
        let side = if own.owns(k) {
            &mut owned
        } else {
            &mut unowned
        };
        side.services.insert(*k, s.clone());
    }
    (owned, unowned)
}

fn allow() -> Guards {
    Guards {
        allow_mass_delete: true,
        ..Guards::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn applying_the_plan_reaches_desired(
        desired in state(),
        live in state(),
        own in ownership(),
    ) {
        let (desired, _) = split(&desired, &own);
        let plan = plan::plan(&desired, &live, &own, &allow()).expect("plan");

        let mut now = live.clone();
        let mut deleted_services = BTreeSet::new();
        let mut deleted_dests = BTreeSet::new();
        for op in plan.ops() {
            let before: BTreeMap<ServiceKey, usize> =
                now.services.iter().map(|(k, s)| (*k, s.dests.len())).collect();
            let serving: BTreeSet<ServiceKey> =
                now.services.iter().filter(|(_, s)| serves(s)).map(|(k, _)| *k).collect();
            op.apply_to(&mut now).map_err(|e| TestCaseError::fail(format!("{op:?}: {e}")))?;
            // Weight moving between dests (a fallback taking over or
            // handing back) never passes through all weights 0.
            for k in &serving {
                if desired.services.get(k).is_some_and(serves) {
                    prop_assert!(now.services.get(k).is_some_and(serves), "{op:?} left {k} without weight, which has weight in desired");
                }
            }
            prop_assert!(own.owns(op.service()), "touched unowned {}", op.service());
            for (k, want) in &desired.services {
                if want.dests.is_empty() {
                    continue;
                }
                let had = before.get(k).copied().unwrap_or(0);
                let has = now.services.get(k).map_or(0, |s| s.dests.len());
                prop_assert!(!(had > 0 && has == 0), "{op:?} emptied {k}, which has desired dests");
            }
            match op {
                Op::DelService { service } => { deleted_services.insert(*service); }
                Op::AddService { service, .. } => {
                    prop_assert!(!deleted_services.contains(service), "{service} deleted then added");
                }
                Op::DelDest { service, dest } => { deleted_dests.insert((*service, *dest)); }
                Op::AddDest { service, dest, .. } => {
                    prop_assert!(!deleted_dests.contains(&(*service, *dest)), "{dest} of {service} deleted then added");
                }
                _ => {}
            }
        }

        let (now_owned, now_unowned) = split(&now, &own);
        let (_, live_unowned) = split(&live, &own);
        prop_assert_eq!(canonical_state(&now_owned), canonical_state(&desired));
        prop_assert_eq!(now_unowned, live_unowned);

        // Counts add up, and planning again finds nothing to do.
        let s = plan.summary;
        prop_assert_eq!(s.total(), plan.changes.len());
        let again = plan::plan(&desired, &now, &own, &allow()).expect("plan again");
        prop_assert!(again.is_empty(), "not idempotent: {:?}", again.changes);
    }

    /// Weights re-drawn over the same dests (every change an edit): a
    /// service with weight before and after has weight after every op.
    #[test]
    fn weight_moving_between_dests_never_passes_through_zero(
        live in state(),
        weights in prop::collection::vec(0u32..3, 40),
    ) {
        let mut desired = live.clone();
        let all = desired.services.values_mut().flat_map(|s| s.dests.values_mut());
        for (d, w) in all.zip(weights.iter().cycle()) {
            d.attrs.weight = *w;
        }
        let own = Ownership::all();
        let plan = plan::plan(&desired, &live, &own, &allow()).expect("plan");
        let mut now = live.clone();
        for op in plan.ops() {
            op.apply_to(&mut now).map_err(|e| TestCaseError::fail(format!("{op:?}: {e}")))?;
            for (k, want) in &desired.services {
                if serves(want) && serves(&live.services[k]) {
                    prop_assert!(serves(&now.services[k]), "{op:?} left {k} without weight");
                }
            }
        }
    }

    #[test]
    fn guards_trip_exactly_by_their_rules(
        desired in state(),
        live in state(),
        own in ownership(),
        percent in 0u32..=100,
        min in 0usize..6,
        empty_percent in 0u32..=100,
    ) {
        let (desired, _) = split(&desired, &own);
        let (live_owned, _) = split(&live, &own);
        let owned_services = live_owned.services.len();
        let owned_dests = live_owned.dest_count();
        let mut removed_services = 0;
        let mut removed_dests = 0;
        for (k, s) in &live_owned.services {
            match desired.services.get(k) {
                None => { removed_services += 1; removed_dests += s.dests.len(); }
                Some(w) => removed_dests += s.dests.keys().filter(|d| !w.dests.contains_key(d)).count(),
            }
        }
        // Emptied: a service with a dest of weight above 0 that stays
        // without one.
        let serves = |s: &Service| s.dests.values().any(|d| d.attrs.weight > 0);
        let serving = live_owned.services.values().filter(|s| serves(s)).count();
        let emptied: Vec<ServiceKey> = live_owned
            .services
            .iter()
            .filter(|(k, s)| serves(s) && desired.services.get(*k).is_some_and(|w| !serves(w)))
            .map(|(k, _)| *k)
            .collect();
        let every = owned_services > 0 && removed_services == owned_services;
        let many = removed_dests > min && removed_dests * 100 > owned_dests * percent as usize;
        let empties = !emptied.is_empty() && emptied.len() * 100 > serving * empty_percent as usize;
        let guards = Guards {
            max_delete_percent: percent,
            max_delete_min: min,
            max_empty_percent: empty_percent,
            allow_mass_delete: false,
        };
        let listed = match plan::plan(&desired, &live, &own, &guards) {
            Ok(p) => {
                prop_assert!(!every && !many && !empties);
                p
            }
            Err(PlanError::MassDelete { plan, .. }) => {
                prop_assert!(every || many || empties);
                *plan
            }
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        };
        // Every format lists the same: the plan's list.
        let keys: Vec<ServiceKey> = listed.emptied.iter().map(|e| e.service).collect();
        prop_assert_eq!(keys, emptied);
        prop_assert_eq!(listed.serving_services, serving);
    }

    /// `plan::outline` (the plan `clusterf plan` writes: adds not held,
    /// made again from the desired state) is the same plan: the same
    /// changes in the same order, counts, refusal and JSON document.
    #[test]
    fn an_outline_is_the_plan_with_its_adds_made_again(
        desired in state(),
        live in state(),
        own in ownership(),
        percent in 0u32..=100,
        min in 0usize..6,
    ) {
        let guards = Guards {
            max_delete_percent: percent,
            max_delete_min: min,
            ..Guards::default()
        };
        let want = match plan::plan(&desired, &live, &own, &guards) {
            Ok(p) => Ok((p, None)),
            Err(PlanError::MassDelete { reason, plan }) => Ok((*plan, Some(reason))),
            Err(e) => Err(e),
        };
        let got = plan::outline(&desired, &live, &own, &guards);
        if let (Ok((whole, refused)), Ok((outline, _))) = (&want, &got) {
            let inputs = Inputs {
                config_hash: "0".repeat(64),
                config_revision: None,
                overlay_hash: None,
                overlay_revision: None,
            };
            let fingerprint = LiveFingerprint::unhashed("empty".to_string(), true);
            let refused = refused.as_deref();
            let mut doc = Vec::new();
            let document = output::Document {
                desired: &desired,
                inputs: &inputs,
                live: &fingerprint,
                ownership: &own,
                refused,
            };
            output::write_outline_json(&mut doc, outline, &document).expect("written to memory");
            let want_doc = output::json(whole, &desired, &inputs, &fingerprint, &own, refused);
            prop_assert_eq!(String::from_utf8(doc).expect("UTF-8"), want_doc);
        }
        prop_assert_eq!(got.map(|(o, refused)| (o.into_plan(&desired), refused)), want);
    }

    /// The daemon's outline (`plan::outline`, its adds made again from the
    /// desired state): the same ops in the same order as `plan::plan`'s,
    /// and the same text, with or without colour and a refusal.
    #[test]
    fn an_outline_gives_the_plans_ops_and_text(
        desired in state(),
        live in state(),
        own in ownership(),
        color in any::<bool>(),
        refused in prop::option::of(Just("refused")),
    ) {
        let Ok(whole) = plan::plan(&desired, &live, &own, &allow()) else {
            return Ok(());
        };
        let (outline, _) = plan::outline(&desired, &live, &own, &allow()).expect("planned above");
        let ops: Vec<Op> = outline.ops(&desired).collect();
        let want: Vec<Op> = whole.ops().cloned().collect();
        prop_assert_eq!(ops, want);
        let mut text = Vec::new();
        output::write_outline_text(&mut text, &outline, &desired, color, refused)
            .expect("written to memory");
        let want = output::text_refused(&whole, &desired, color, refused);
        prop_assert_eq!(String::from_utf8(text).expect("UTF-8"), want);
    }

    /// The daemon's apply a chunk at a time (`daemon::kernel::apply_chunked`)
    /// gives the kernel the plan's ops in order and does what one call
    /// with the whole plan does, whatever the chunk size, also when a
    /// service's ops are refused (one refused throughout, or one whose
    /// dest is already in the kernel): the same table after, the same
    /// line and report, the same ops acked; and the daemon's compact copy
    /// of the table, given the acked ops, equals the kernel's table.
    #[test]
    fn ops_applied_a_chunk_at_a_time_are_the_plans_applied_whole(
        desired in state(),
        live in state(),
        chunk in 1usize..6,
        refuse in prop::option::of(key()),
        conflict in prop::option::of((key(), dest_addr())),
    ) {
        use clusterf::daemon::kernel::{Kernel, apply_chunked};
        use clusterf::reconcile::live::LiveCopy;
        use std::time::Duration;
        use clusterf::daemon::MemoryKernel;
        let Ok(plan) = plan::plan(&desired, &live, &Ownership::all(), &allow()) else {
            return Ok(());
        };
        let ops: Vec<Op> = plan.ops().cloned().collect();
        let kernel = |live: &IpvsState| {
            let k = MemoryKernel::default();
            let mut state = live.clone();
            // A dest in the kernel that the plan adds: its add fails.
            if let Some((key, dest)) = conflict
                && let Some(s) = state.services.get_mut(&key)
                && let Some(d) = desired.services.get(&key).and_then(|s| s.dests.get(&dest))
            {
                s.dests.entry(dest).or_insert_with(|| d.clone());
            }
            k.live.lock().unwrap().state = state;
            k.refuse.lock().unwrap().extend(refuse);
            k
        };
        let mut whole = kernel(&live);
        let want = whole.apply(&ops);
        let mut chunked = kernel(&live);
        let read = chunked.live.lock().unwrap().clone();
        let mut copy = LiveCopy::of(read, Duration::ZERO);
        let mut acked = Vec::new();
        let mut copied = Ok(());
        let got = apply_chunked(&mut chunked, ops.iter().cloned(), chunk, |ops| {
            acked.extend_from_slice(ops);
            copied = copied.clone().and(copy.apply(ops));
        });
        prop_assert_eq!(chunked.table(), whole.table());
        prop_assert_eq!(copied, Ok(()));
        prop_assert_eq!(copy.table.to_state(), chunked.table());
        match (want, got) {
            (Ok(()), Ok(())) => prop_assert_eq!(acked, ops),
            (Err(w), Err(g)) => {
                prop_assert_eq!(g.error, w.to_string());
                let report = w.describe(&ops);
                prop_assert_eq!(g.report.as_str(), report.trim_end());
                let failed: Vec<ServiceKey> = w.failed.iter().map(|(s, _)| *s).collect();
                prop_assert_eq!(g.failed, failed);
                let applied: Vec<Op> = ops
                    .iter()
                    .zip(&w.outcomes)
                    .filter(|(_, o)| **o == clusterf::netlink::Outcome::Applied)
                    .map(|(op, _)| op.clone())
                    .collect();
                prop_assert_eq!(acked, applied);
            }
            (w, g) => prop_assert!(false, "whole {:?}, chunked {:?}", w.is_ok(), g.is_ok()),
        }
    }

    /// The daemon plans against its compact table (`reconcile::live::Table`,
    /// read from the kernel straight into it) as the CLI plans against an
    /// `IpvsState`: the same plan (ops, befores, counts, refusal), the
    /// same outline and text, the same plan within a scope; and the table
    /// holds what it was made from.
    #[test]
    fn planning_against_the_compact_table_is_planning_against_the_state(
        desired in state(),
        live in state(),
        stats in counters(),
        own in ownership(),
        percent in 0u32..=100,
        min in 0usize..6,
        scope in prop::collection::btree_set(key(), 0..4),
    ) {
        use clusterf::model::LiveTable;
        use clusterf::reconcile::live::Table;
        let guards = Guards {
            max_delete_percent: percent,
            max_delete_min: min,
            ..Guards::default()
        };
        let read = LiveTable { state: live.clone(), stats: stats.clone() };
        let table = Table::from(&read);
        prop_assert_eq!(&table, &Table::from(read));
        prop_assert_eq!(table.to_state(), live.clone());
        let counted: clusterf::model::LiveStats = live
            .services
            .iter()
            .filter_map(|(k, s)| {
                let m: BTreeMap<_, _> = stats
                    .get(k)?
                    .iter()
                    .filter(|(a, _)| s.dests.contains_key(*a))
                    .map(|(a, c)| (*a, *c))
                    .collect();
                (!m.is_empty()).then_some((*k, m))
            })
            .collect();
        prop_assert_eq!(table.to_stats(), counted);

        prop_assert_eq!(
            plan::plan(&desired, &table, &own, &guards),
            plan::plan(&desired, &live, &own, &guards)
        );
        let got = plan::outline(&desired, &table, &own, &guards);
        let want = plan::outline(&desired, &live, &own, &guards);
        if let (Ok((a, ra)), Ok((b, rb))) = (&got, &want) {
            let text = |o: &plan::Outline, r: &Option<String>| {
                let mut t = Vec::new();
                output::write_outline_text(&mut t, o, &desired, false, r.as_deref())
                    .expect("written to memory");
                String::from_utf8(t).expect("UTF-8")
            };
            prop_assert_eq!(text(a, ra), text(b, rb));
        }
        prop_assert_eq!(got, want);

        let counts = plan::LiveCounts::of(&live, &own);
        prop_assert_eq!(&table.counts(&own), &counts);
        prop_assert_eq!(
            plan::plan_within(&desired, &table, &scope, &own, &guards, &counts),
            plan::plan_within(&desired, &live, &scope, &own, &guards, &counts)
        );
    }

    /// The drains read the compact table (with its counters) as they read
    /// an `IpvsState` and its counters: the same outcome, the same answer
    /// to whether a plan's deletes could start one.
    #[test]
    fn drains_read_the_compact_table_as_the_state(
        desired in state(),
        live in state(),
        stats in counters(),
        records in prop::collection::vec(drain_record(), 0..5),
        now_ms in 0u64..200_000,
        timeout_s in prop::sample::select(vec![0u64, 1, 60, 1000]),
        own in ownership(),
    ) {
        use clusterf::model::LiveTable;
        use clusterf::reconcile::drain::{self, Drains};
        use clusterf::reconcile::live::Table;
        use std::time::Duration;
        let table = Table::from(&LiveTable { state: live.clone(), stats: stats.clone() });
        let mut drains = Drains::default();
        for r in records {
            drains.insert(r);
        }
        let owns = |k: &ServiceKey| own.owns(k);
        let timeout = Duration::from_secs(timeout_s);
        let want = drain::apply(&desired, &live, &stats, &drains, now_ms, timeout, &owns);
        let got = drain::apply(&desired, &table, &table, &drains, now_ms, timeout, &owns);
        prop_assert_eq!(got, want);
        if let Ok(p) = plan::plan(&desired, &live, &Ownership::all(), &allow()) {
            prop_assert_eq!(
                drain::deletes_drainable(p.ops(), &table),
                drain::deletes_drainable(p.ops(), &live)
            );
        }
    }

    #[test]
    fn desired_outside_ownership_is_an_error(desired in state(), live in state(), own in ownership()) {
        let outside: Vec<ServiceKey> =
            desired.services.keys().filter(|k| !own.owns(k)).copied().collect();
        match plan::plan(&desired, &live, &own, &allow()) {
            Ok(_) => prop_assert!(outside.is_empty()),
            Err(PlanError::NotOwned { services }) => prop_assert_eq!(services, outside),
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        }
    }

    #[test]
    fn dump_round_trips(state in state()) {
        // Canonical: no "-M" without "-p", flags named as ipvsadm names them.
        let mut state = canonical_state(&state);
        // As the kernel holds them: a dest of the other family than its
        // service only as a tunnel dest (the parser refuses anything else).
        for (key, svc) in &mut state.services {
            for (addr, d) in &mut svc.dests {
                if Family::of(&addr.ip()) != key.family() {
                    d.attrs.method = Method::Tunnel;
                }
            }
        }
        let text = ipvsadm::format(&state);
        let parsed = ipvsadm::parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(parsed, state);
    }

    /// A dest of the other family than its service parses only as a tunnel
    /// dest, the kernel's rule; one of the same family with any method.
    #[test]
    fn mixed_family_dests_parse_only_as_tunnels(
        key in key(),
        dest in dest_addr(),
        method in prop::sample::select(Method::ALL.to_vec()),
    ) {
        let svc = ipvsadm::service_arg(&key);
        let text = format!(
            "-A {svc} -s wlc\n-a {svc} -r {dest} {} -w 1\n",
            ipvsadm::method_flag(method)
        );
        let kernel_takes = Family::of(&dest.ip()) == key.family() || method == Method::Tunnel;
        match ipvsadm::parse(&text) {
            Ok(state) => {
                prop_assert!(kernel_takes, "accepted: {text}");
                prop_assert_eq!(state.services[&key].dests[&dest].attrs.method, method);
            }
            Err(e) => {
                prop_assert!(!kernel_takes, "{e}: {text}");
                prop_assert_eq!((e.line, e.column), (2, 5 + svc.chars().count()));
            }
        }
    }

    #[test]
    fn parser_never_panics_on_text(text in "\\PC{0,200}") {
        let _ = ipvsadm::parse(&text);
    }

    #[test]
    fn parser_never_panics_on_option_soup(lines in prop::collection::vec(
        prop::collection::vec(prop::sample::select(vec![
            "-A", "-a", "-t", "-u", "-f", "-6", "-s", "wlc", "sh", "-p", "-M", "-b", "-o", "--pe",
            "sip", "-r", "-g", "-i", "-m", "-w", "-x", "-y", "--tun-type", "ipip", "gue",
            "10.0.0.1:80", "[2001:db8::1]:53", "10.0.0.2", "[::1]", "2001:db8::1", "255.255.255.0",
            "255.0.255.0", "64", "129", "0", "1", "4294967295", "4294967296", "-1", "sh-fallback,flag-3",
            "flag-9", ",", "", "#", "\u{feff}", "é",
        ]), 0..10),
        0..8,
    )) {
        let text: String = lines.iter().map(|l| l.join(" ") + "\n").collect();
        // What it accepts, the kernel could hold: a dest of the other family
        // than its service only as a tunnel dest, an IPv6 netmask 1..128.
        if let Ok(state) = ipvsadm::parse(&text) {
            for (key, svc) in &state.services {
                prop_assert!(svc.attrs.netmask != Some(0), "{key}: {text}");
                for (addr, d) in &svc.dests {
                    prop_assert!(
                        Family::of(&addr.ip()) == key.family() || d.attrs.method == Method::Tunnel,
                        "{key} {addr}: {text}"
                    );
                }
            }
        }
    }
}

/// `clusterf plan --out` writes a saved plan that reads back with the same
/// ops, is fresh against the same live state and stale against another.
#[test]
fn saved_plan_round_trip_and_staleness() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config/services");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("web.yaml"),
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends:\n  a: {ipv4: 10.1.0.1, tcp: 80}\n",
    )
    .unwrap();
    let live_text = "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.2:80 -m -w 1\n";
    std::fs::write(dir.path().join("live.txt"), live_text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clusterf"))
        .args([
            "plan",
            "--config-path",
            "config",
            "--live",
            "live.txt",
            "--out",
            "plan.json",
        ])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let saved =
        SavedPlan::from_json(&std::fs::read_to_string(dir.path().join("plan.json")).unwrap())
            .unwrap();
    let ops: Vec<String> = saved.ops().map(|o| format!("{o:?}")).collect();
    assert_eq!(ops.len(), 3, "{ops:?}");
    assert!(matches!(saved.changes[0].op, Op::AddDest { .. }));
    assert!(matches!(saved.changes[1].op, Op::EditService { .. }));
    assert!(matches!(saved.changes[2].op, Op::DelDest { .. }));
    assert_eq!(saved.live.source, "file live.txt");

    let own = saved.ownership().unwrap();
    let live = ipvsadm::parse(live_text).unwrap();
    let hash = live_hash(&live, &own);
    assert_eq!(check_fresh(&saved, &hash, Some(&saved.inputs)), Ok(()));

    // Applying the saved ops to the live state it was made against works.
    let mut now = live.clone();
    for op in saved.ops() {
        op.apply_to(&mut now).unwrap();
    }
    // Against the state after applying, the plan is stale.
    let stale = check_fresh(&saved, &live_hash(&now, &own), Some(&saved.inputs)).unwrap_err();
    assert_eq!(stale.moved[0].what, "live ipvs state");
    // A config edit makes it stale too.
    let mut inputs = saved.inputs.clone();
    inputs.config_hash = "0".repeat(64);
    let stale = check_fresh(&saved, &hash, Some(&inputs)).unwrap_err();
    assert_eq!(stale.moved[0].what, "config");
}

/// A config with one service and a live dump of `n` other services (one
/// dest each), in a temporary directory: a plan that deletes `n` services.
fn mass_delete_case(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config/services");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("web.yaml"),
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends:\n  a: {ipv4: 10.1.0.1, tcp: 80}\n",
    )
    .unwrap();
    let mut live = String::new();
    for i in 0..n {
        let (a, b) = (i / 250, i % 250 + 1);
        live.push_str(&format!("-A -t 10.2.{a}.{b}:80 -s wlc\n"));
        live.push_str(&format!(
            "-a -t 10.2.{a}.{b}:80 -r 10.3.{a}.{b}:80 -m -w 1\n"
        ));
    }
    std::fs::write(dir.path().join("live.txt"), live).unwrap();
    dir
}

/// `clusterf plan ... | head -1`: stdout's reader goes away before the plan
/// is written. The output (hundreds of KiB) is larger than a pipe buffer, so
/// the write fails whether it starts before or after the reader closes.
/// A plan ends quietly with exit 0; a refused plan still exits 1 with its
/// reason on stderr. Neither panics.
#[test]
fn plan_into_a_closed_pipe_does_not_panic() {
    let dir = mass_delete_case(2000);
    for (extra, code, needle) in [
        (Some("--allow-mass-delete"), 0, ""),
        (None, 1, "error: refusing a plan that deletes"),
    ] {
        for format in ["text", "json", "markdown"] {
            let mut args = vec![
                "plan",
                "--config-path",
                "config",
                "--live",
                "live.txt",
                "-o",
                format,
            ];
            args.extend(extra);
            let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_clusterf"))
                .args(&args)
                .current_dir(dir.path())
                .env("NO_COLOR", "1")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            drop(child.stdout.take());
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
            assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
            assert!(stderr.contains(needle), "{args:?}: {stderr}");
        }
    }
}
