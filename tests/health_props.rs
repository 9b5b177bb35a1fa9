//! Property: for any health state, health alone never leaves a service that
//! has dests with zero dests, or with every weight 0 when it had a weight.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use clusterf::health::{
    self, CheckSpec, HealthConfig, HealthTable, OnFailure, Outcome, Probe, ServiceHealth,
};
use clusterf::model::{
    Dest, DestAttrs, IpvsState, Method, Protocol, Service, ServiceAttrs, ServiceKey,
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

fn case() -> impl Strategy<Value = (Vec<Vec<DestCase>>, bool, u8)> {
    let dest = (
        0u32..4,
        prop::collection::vec(any::<bool>(), 0..8),
        any::<bool>(),
    );
    (
        prop::collection::vec(prop::collection::vec(dest, 0..6), 1..4),
        any::<bool>(),
        prop_oneof![Just(0u8), 0u8..=100],
    )
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
        for (s, dests) in services.iter().enumerate() {
            let mut service = Service::new(ServiceAttrs::with_scheduler("rr"));
            let mut exempt = BTreeSet::new();
            for (d, (weight, history, opted_out)) in dests.iter().enumerate() {
                let addr = dest(d as u8);
                service.dests.insert(addr, Dest { attrs: DestAttrs::new(Method::Masq, *weight), provenance: vec![] });
                if *opted_out { exempt.insert(addr); }
                let target = clusterf::health::Target { addr, check: check.clone() };
                for (t, ok) in history.iter().enumerate() {
                    table.record(&target, Outcome { ok: *ok, detail: "x".into(), at_ms: t as u64 });
                }
            }
            desired.services.insert(key(s as u8), service);
            config.services.insert(key(s as u8), ServiceHealth { check: check.clone(), on_failure, exempt });
        }
        let (after, verdicts) = health::apply(desired.clone(), &config, &table);
        for (k, before) in &desired.services {
            let now = &after.services[k];
            let weighted = |s: &Service| s.dests.values().filter(|d| d.attrs.weight > 0).count();
            prop_assert!(before.dests.is_empty() || !now.dests.is_empty(), "{k:?} emptied");
            prop_assert!(weighted(before) == 0 || weighted(now) > 0, "{k:?} zeroed");
            prop_assert!(weighted(now) * 100 >= usize::from(panic) * weighted(before) || weighted(now) == weighted(before),
                "{k:?} below the panic threshold");
        }
        // Every verdict names a down dest; nothing else changed.
        for v in &verdicts {
            let target = config.services[&v.service].target(&v.dest).unwrap();
            prop_assert!(table.is_down(&target));
        }
        prop_assert_eq!(after.services.len(), desired.services.len());
    }
}
