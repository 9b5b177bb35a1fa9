//! Property: for any health state, health alone never leaves a service that
//! has dests with zero dests, or with every weight 0 when it had a weight;
//! a service with a fallback dest serves from it when every other weighted
//! dest is down (no fail-open), and from it only then.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use clusterf::health::{
    self, CheckSpec, HealthConfig, HealthTable, OnFailure, Outcome, Probe, ServiceHealth,
};
use clusterf::model::{
    Dest, DestAttrs, IpvsState, Method, Protocol, Provenance, Service, ServiceAttrs, ServiceKey,
    fallback,
};
use proptest::prelude::*;

fn key(i: u8) -> ServiceKey {
    ServiceKey::addr(Protocol::Tcp, [10, 0, 0, i].into(), 80)
}

fn dest(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 1, 0, i], 8080))
}

/// Services of up to 6 dests (weights 0 to 3), each dest's check history
/// (true = passed), the failure action and the panic threshold.
/// A dest: its weight, its check history, whether its backend opted out.
type DestCase = (u32, Vec<bool>, bool);

/// A service: its dests, and the weight of its fallback dest, if any.
type ServiceCase = (Vec<DestCase>, Option<u32>);

fn case() -> impl Strategy<Value = (Vec<ServiceCase>, bool, u8)> {
    let dest = (
        0u32..4,
        prop::collection::vec(any::<bool>(), 0..8),
        any::<bool>(),
    );
    let service = (prop::collection::vec(dest, 0..6), prop::option::of(1u32..4));
    (
        prop::collection::vec(service, 1..4),
        any::<bool>(),
        prop_oneof![Just(0u8), 0u8..=100],
    )
}

/// The fallback dest of a service (never checked, as compile makes it).
fn fallback_addr() -> SocketAddr {
    SocketAddr::from(([10, 9, 0, 1], 8080))
}

fn fallback_dest(weight: u32) -> Dest {
    let provenance = Box::new([Provenance {
        backend: "fallback".into(),
        source: "services/web.yaml#fallback".into(),
        weight,
        route: None,
        fallback: true,
    }]);
    Dest {
        attrs: DestAttrs::new(Method::Masq, 0),
        provenance,
    }
}

proptest! {
    #[test]
    fn health_alone_never_empties_a_service_or_zeroes_all_its_weights(
        (services, remove, panic) in case()
    ) {
        let on_failure = if remove { OnFailure::Remove } else { OnFailure::Drain };
        let mut check = CheckSpec::new(Probe::Tcp);
        (check.rise, check.fall) = (2, 2);
        let mut desired = IpvsState::default();
        let mut config = HealthConfig { panic_below_percent: panic, ..Default::default() };
        let mut table = HealthTable::default();
        for (s, (dests, fallback)) in services.iter().enumerate() {
            let mut service = Service::new(ServiceAttrs::with_scheduler("rr"));
            let mut exempt = BTreeSet::new();
            if let Some(w) = fallback {
                service.dests.insert(fallback_addr(), fallback_dest(*w));
                exempt.insert(fallback_addr());
            }
            for (d, (weight, history, opted_out)) in dests.iter().enumerate() {
                let addr = dest(d as u8);
                service.dests.insert(addr, Dest { attrs: DestAttrs::new(Method::Masq, *weight), provenance: Box::default() });
                if *opted_out { exempt.insert(addr); }
                let target = clusterf::health::Target { addr, check: check.clone() };
                for (t, ok) in history.iter().enumerate() {
                    table.record(&target, Outcome { ok: *ok, detail: "x".into(), at_ms: t as u64 });
                }
            }
            fallback::settle(&mut service);
            desired.services.insert(key(s as u8), service);
            config.services.insert(key(s as u8), ServiceHealth { check: check.clone(), on_failure, exempt });
        }
        let (after, verdicts) = health::apply(desired.clone(), &config, &table);
        for (k, before) in &desired.services {
            let now = &after.services[k];
            let weighted = |s: &Service| s.dests.values().filter(|d| d.attrs.weight > 0).count();
            prop_assert!(before.dests.is_empty() || !now.dests.is_empty(), "{k:?} emptied");
            // A health note is of a dest of its service.
            prop_assert!(now.health.keys().all(|a| now.dests.contains_key(a)), "{k:?} note of no dest");
            prop_assert!(weighted(before) == 0 || weighted(now) > 0, "{k:?} zeroed");
            let fb = now.dests.get(&fallback_addr());
            let took_over = fb.is_some_and(|d| d.attrs.weight > 0) && before.dests[&fallback_addr()].attrs.weight == 0;
            prop_assert!(took_over || weighted(now) * 100 >= usize::from(panic) * weighted(before) || weighted(now) == weighted(before),
                "{k:?} below the panic threshold");
            if let Some(fb) = fb {
                // The fallback has its weight exactly when nothing else has.
                let others = now.dests.values().any(|d| d.attrs.weight > 0 && !fallback::is_fallback(d));
                prop_assert_eq!(fb.attrs.weight > 0, !others, "{:?}: fallback weight {}", k, fb.attrs.weight);
                // Every weighted backend down: the fallback serves, no fail-open.
                let health = &config.services[k];
                let weighted_backends: Vec<_> = before.dests.iter()
                    .filter(|(_, d)| d.attrs.weight > 0 && !fallback::is_fallback(d)).collect();
                let all_down = !weighted_backends.is_empty() && weighted_backends.iter()
                    .all(|(a, _)| health.target(a).is_some_and(|t| table.is_down(&t)));
                if all_down {
                    prop_assert!(fb.attrs.weight > 0, "{:?}: every backend down, the fallback does not serve", k);
                }
            }
        }
        // Every verdict names a down dest; nothing else changed.
        for v in &verdicts {
            let target = config.services[&v.service].target(&v.dest).unwrap();
            prop_assert!(table.is_down(&target));
        }
        prop_assert_eq!(after.services.len(), desired.services.len());
    }
}

/// One step of a daemon's life, for the incremental view: a service's
/// dests re-rendered (weights of dests 0..4, `None`: the service gone), its
/// check's action changed, or a dest checked a few times (true = passed).
#[derive(Clone, Debug)]
enum Step {
    Render(u8, Option<Vec<u32>>),
    Action(u8, bool),
    Checks(u8, Vec<bool>),
    Full,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (
            0u8..4,
            prop::option::of(prop::collection::vec(0u32..3, 0..5))
        )
            .prop_map(|(s, w)| Step::Render(s, w)),
        (0u8..4, any::<bool>()).prop_map(|(s, r)| Step::Action(s, r)),
        (0u8..5, prop::collection::vec(any::<bool>(), 1..4)).prop_map(|(d, h)| Step::Checks(d, h)),
        Just(Step::Full),
    ]
}

fn service_of(weights: &[u32]) -> Service {
    let mut service = Service::new(ServiceAttrs::with_scheduler("rr"));
    for (d, w) in weights.iter().enumerate() {
        let attrs = DestAttrs::new(Method::Masq, *w);
        service.dests.insert(
            dest(d as u8),
            Dest {
                attrs,
                provenance: Box::default(),
            },
        );
    }
    service
}

proptest! {
    #[test]
    fn the_incremental_health_view_equals_health_applied_to_the_whole_desired_state(
        steps in prop::collection::vec(step(), 1..40)
    ) {
        let mut check = CheckSpec::new(Probe::Tcp);
        (check.rise, check.fall) = (2, 2);
        let mut desired = IpvsState::default();
        let mut config = HealthConfig::default();
        for s in 0..3u8 {
            desired.services.insert(key(s), service_of(&[1, 1, 1]));
            let exempt = if s == 0 { [fallback_addr()].into() } else { BTreeSet::new() };
            let health = ServiceHealth { check: check.clone(), on_failure: OnFailure::Drain, exempt };
            config.services.insert(key(s), health);
        }
        let mut table = HealthTable::default();
        let mut view = health::Effective::default();
        let mut clock = 0u64;
        let mut last_version = None;
        for step in steps {
            let mut touched = BTreeSet::new();
            let mut full = false;
            match step {
                Step::Render(s, Some(weights)) => {
                    let mut service = service_of(&weights);
                    if s == 0 {
                        service.dests.insert(fallback_addr(), fallback_dest(2));
                        fallback::settle(&mut service);
                    }
                    desired.services.insert(key(s), service);
                    touched.insert(key(s));
                }
                Step::Render(s, None) => {
                    desired.services.remove(&key(s));
                    touched.insert(key(s));
                }
                Step::Action(s, remove) => {
                    if let Some(h) = config.services.get_mut(&key(s)) {
                        h.on_failure = if remove { OnFailure::Remove } else { OnFailure::Drain };
                        touched.insert(key(s));
                    }
                }
                Step::Checks(d, history) => {
                    let target = health::Target { addr: dest(d), check: check.clone() };
                    for ok in history {
                        clock += 1000;
                        table.record(&target, Outcome { ok, detail: "refused".into(), at_ms: clock });
                    }
                }
                Step::Full => full = true,
            }
            let update = health::Update {
                desired: &desired,
                config: &config,
                touched: (!full).then_some(&touched),
                table: &table,
                panic_below_percent: config.panic_below_percent,
            };
            let changed = view.update(&update);
            let (whole, verdicts) = health::apply(desired.clone(), &config, &table);
            prop_assert_eq!(view.state(), &whole);
            prop_assert_eq!(view.verdicts().cloned().collect::<Vec<_>>(), verdicts);
            // Nothing changed: the version stays, so the daemon plans nothing.
            if changed.as_ref().is_some_and(BTreeSet::is_empty) {
                prop_assert_eq!(Some(view.version()), last_version);
            }
            last_version = Some(view.version());
        }
    }
}
