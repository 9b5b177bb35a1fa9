//! What health does to the desired state: a down dest is drained (weight
//! 0) or left out, unless that would leave its service nothing to send to;
//! then none of the service's dests is touched for health (fail-open):
//! ARCHITECTURE.md's "health never blackholes". A service with a fallback
//! dest has something to send to when every other dest is down: its
//! down dests are drained or removed and the fallback takes their place
//! (`model::fallback`), instead of fail-open.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use super::spec::{CheckSpec, OnFailure};
use super::state::{HealthTable, Target};
use crate::model::{IpvsState, Service, ServiceKey, fallback};

/// One service's health check, as rendered from the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceHealth {
    pub check: CheckSpec,
    pub on_failure: OnFailure,
    /// Dests a backend opted out of (`healthcheck: false`): never checked,
    /// never drained for health. A merged dest is exempt when any of its
    /// backends opted out.
    pub exempt: BTreeSet<SocketAddr>,
}

impl ServiceHealth {
    /// The target checked for a dest of this service: `None` when the dest
    /// is exempt or there is no port to probe (a port-0 dest of a fwmark
    /// service without a check port).
    pub fn target(&self, dest: &SocketAddr) -> Option<Target> {
        if self.exempt.contains(dest) {
            return None;
        }
        let port = self.check.port.unwrap_or(dest.port());
        (port != 0).then(|| Target {
            addr: SocketAddr::new(dest.ip(), port),
            check: self.check.clone(),
        })
    }
}

/// Every service's check and the fail-open threshold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthConfig {
    pub services: BTreeMap<ServiceKey, ServiceHealth>,
    /// Fail open also when fewer than this percentage of a service's
    /// weighted dests would stay up (a panic threshold, as Envoy's); 0:
    /// only when none would.
    pub panic_below_percent: u8,
}

impl HealthConfig {
    /// Every target the desired state asks to check, each once.
    pub fn targets(&self, desired: &IpvsState) -> BTreeSet<Target> {
        let mut out = BTreeSet::new();
        for (key, health) in &self.services {
            if let Some(service) = desired.services.get(key) {
                out.extend(service.dests.keys().filter_map(|d| health.target(d)));
            }
        }
        out
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerdictKind {
    /// Weight 0 for health.
    Drained,
    /// Left out of the desired state for health.
    Removed,
    /// Down, but kept: acting would leave the service nothing to send to.
    FailOpen,
}

/// What health did to one dest, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub service: ServiceKey,
    pub dest: SocketAddr,
    pub kind: VerdictKind,
    /// `http 503, 3 of 3 failed since 12:00:01`.
    pub reason: String,
}

/// Applies the health table to the desired state. Services without a check
/// and dests up or unknown are returned as they came.
pub fn apply(
    mut desired: IpvsState,
    config: &HealthConfig,
    table: &HealthTable,
) -> (IpvsState, Vec<Verdict>) {
    let mut verdicts = Vec::new();
    for (key, health) in &config.services {
        if let Some(service) = desired.services.get_mut(key) {
            verdicts.extend(apply_service(
                *key,
                service,
                health,
                table,
                config.panic_below_percent,
            ));
        }
    }
    (desired, verdicts)
}

/// [`apply`] for one service, in place: what the incremental daemon view
/// (`health::effective`) runs for each service whose render or health
/// changed.
pub fn apply_service(
    key: ServiceKey,
    service: &mut Service,
    health: &ServiceHealth,
    table: &HealthTable,
    panic_below_percent: u8,
) -> Vec<Verdict> {
    let down = down_dests(service, health, table);
    if down.is_empty() {
        return Vec::new();
    }
    let kind = decide(service, &down, health, panic_below_percent);
    act(service, &down, kind);
    if fallback::settle(service) {
        // The fallback took over: the plan says why the others went.
        for (dest, reason) in &down {
            if service.dests.contains_key(dest) {
                let note = format!("{reason}; the fallback serves, no fail-open");
                service.health.insert(*dest, note.into());
            }
        }
    }
    down.into_iter()
        .map(|(dest, reason)| Verdict {
            service: key,
            dest,
            kind,
            reason,
        })
        .collect()
}

/// The service's dests that are down, with the reason of each.
fn down_dests(
    service: &Service,
    health: &ServiceHealth,
    table: &HealthTable,
) -> Vec<(SocketAddr, String)> {
    let (rise, fall) = (health.check.rise, health.check.fall);
    service
        .dests
        .keys()
        .filter_map(|dest| {
            let state = table.get(&health.target(dest)?)?;
            Some((*dest, state.reason(rise, fall)?))
        })
        .collect()
}

/// Drain or remove, unless what stays up is too little: fail-open.
fn decide(
    service: &Service,
    down: &[(SocketAddr, String)],
    health: &ServiceHealth,
    panic_below_percent: u8,
) -> VerdictKind {
    let weighted = service
        .dests
        .values()
        .filter(|d| d.attrs.weight > 0)
        .count();
    let weighted_down = down
        .iter()
        .filter(|(d, _)| service.dests[d].attrs.weight > 0)
        .count();
    let up = weighted - weighted_down;
    let kind = match health.on_failure {
        OnFailure::Drain => VerdictKind::Drained,
        OnFailure::Remove => VerdictKind::Removed,
    };
    // With every weighted dest down, a fallback serves in their place.
    let fallback = up == 0 && service.dests.values().any(fallback::is_fallback);
    let no_weight_left = weighted > 0 && up == 0;
    let no_dest_left = kind == VerdictKind::Removed && down.len() == service.dests.len();
    let panic = weighted > 0 && up * 100 < usize::from(panic_below_percent) * weighted;
    if !fallback && (no_weight_left || no_dest_left || panic) {
        VerdictKind::FailOpen
    } else {
        kind
    }
}

fn act(service: &mut Service, down: &[(SocketAddr, String)], kind: VerdictKind) {
    for (dest, reason) in down {
        match kind {
            VerdictKind::FailOpen => {
                // Weight kept; a plan that changes the dest says why.
                if service.dests.contains_key(dest) {
                    let note = format!("kept by fail-open, {reason}");
                    service.health.insert(*dest, note.into());
                }
            }
            VerdictKind::Removed => {
                service.dests.remove(dest);
                service.health.remove(dest);
            }
            VerdictKind::Drained => {
                let d = service
                    .dests
                    .get_mut(dest)
                    .expect("down dests are the service's");
                d.attrs.weight = 0;
                service.health.insert(*dest, reason.as_str().into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{Outcome, Probe};
    use crate::model::{Dest, DestAttrs, Method, Protocol, Provenance, ServiceAttrs};

    fn key() -> ServiceKey {
        ServiceKey::addr(Protocol::Tcp, [10, 0, 0, 1].into(), 80)
    }

    fn dest(i: u8) -> SocketAddr {
        SocketAddr::from(([10, 1, 0, i], 8080))
    }

    fn desired(weights: &[u32]) -> IpvsState {
        let mut service = Service::new(ServiceAttrs::with_scheduler("wlc"));
        for (i, w) in weights.iter().enumerate() {
            let attrs = DestAttrs::new(Method::Masq, *w);
            let provenance = Box::new([Provenance {
                backend: format!("b{i}").into(),
                source: "services/web.yaml".into(),
                weight: *w,
                route: None,
                fallback: false,
            }]);
            service
                .dests
                .insert(dest(i as u8), Dest { attrs, provenance });
        }
        let mut st = IpvsState::default();
        st.services.insert(key(), service);
        st
    }

    fn config(on_failure: OnFailure, panic: u8) -> HealthConfig {
        let health = ServiceHealth {
            check: CheckSpec::new(Probe::Tcp),
            on_failure,
            exempt: BTreeSet::new(),
        };
        HealthConfig {
            services: [(key(), health)].into(),
            panic_below_percent: panic,
        }
    }

    /// A table where the listed dests failed `fall` checks in a row.
    fn down(config: &HealthConfig, dests: &[u8]) -> HealthTable {
        let mut table = HealthTable::default();
        let health = &config.services[&key()];
        for &i in dests {
            for t in 0..health.check.fall {
                let outcome = Outcome {
                    ok: false,
                    detail: "connect: refused".into(),
                    at_ms: u64::from(t) * 5000,
                };
                table.record(&health.target(&dest(i)).unwrap(), outcome);
            }
        }
        table
    }

    fn weights(st: &IpvsState) -> Vec<u32> {
        st.services[&key()]
            .dests
            .values()
            .map(|d| d.attrs.weight)
            .collect()
    }

    #[test]
    fn a_down_dest_is_drained_with_its_reason_and_the_others_are_untouched() {
        let cfg = config(OnFailure::Drain, 0);
        let (st, verdicts) = apply(desired(&[10, 20, 30]), &cfg, &down(&cfg, &[1]));
        assert_eq!(weights(&st), [10, 0, 30]);
        let d = &st.services[&key()].dests[&dest(1)];
        assert_eq!(
            &*d.provenance[0].backend, "b1",
            "the backend is still named"
        );
        assert_eq!(
            &*st.services[&key()].health[&dest(1)],
            "connect: refused, 3 of 3 failed since 00:00:00"
        );
        assert_eq!(verdicts.len(), 1);
        assert_eq!(verdicts[0].kind, VerdictKind::Drained);
    }

    #[test]
    fn remove_leaves_the_down_dest_out() {
        let cfg = config(OnFailure::Remove, 0);
        let (st, _) = apply(desired(&[10, 20, 30]), &cfg, &down(&cfg, &[0, 2]));
        assert_eq!(weights(&st), [20]);
    }

    #[test]
    fn when_every_dest_is_down_none_is_drained() {
        for on_failure in [OnFailure::Drain, OnFailure::Remove] {
            let cfg = config(on_failure, 0);
            let before = desired(&[10, 20]);
            let (st, verdicts) = apply(before.clone(), &cfg, &down(&cfg, &[0, 1]));
            assert_eq!(weights(&st), weights(&before));
            assert_eq!(
                st.services[&key()].health.get(&dest(0)).map(|n| &**n),
                Some("kept by fail-open, connect: refused, 3 of 3 failed since 00:00:00")
            );
            assert!(verdicts.iter().all(|v| v.kind == VerdictKind::FailOpen));
            assert_eq!(verdicts.len(), 2);
        }
    }

    /// `desired(weights)` with a fallback dest (10.9.0.1:8080, weight 5
    /// when it serves) that the config exempts, as compile makes it.
    fn with_fallback(weights: &[u32], cfg: &mut HealthConfig) -> IpvsState {
        let mut st = desired(weights);
        let addr = SocketAddr::from(([10, 9, 0, 1], 8080));
        let provenance = Box::new([Provenance {
            backend: "fallback".into(),
            source: "services/web.yaml#fallback".into(),
            weight: 5,
            route: None,
            fallback: true,
        }]);
        let dest = Dest {
            attrs: DestAttrs::new(Method::Masq, 0),
            provenance,
        };
        let service = st.services.get_mut(&key()).unwrap();
        service.dests.insert(addr, dest);
        fallback::settle(service);
        for h in cfg.services.values_mut() {
            h.exempt.insert(addr);
        }
        st
    }

    #[test]
    fn with_a_fallback_every_dest_down_is_drained_and_the_fallback_serves() {
        for on_failure in [OnFailure::Drain, OnFailure::Remove] {
            let mut cfg = config(on_failure, 50);
            let table = down(&cfg, &[0, 1]);
            let (st, verdicts) = apply(with_fallback(&[10, 20], &mut cfg), &cfg, &table);
            let expect: &[u32] = match on_failure {
                OnFailure::Drain => &[0, 0, 5],
                OnFailure::Remove => &[5],
            };
            assert_eq!(weights(&st), expect);
            assert!(verdicts.iter().all(|v| v.kind != VerdictKind::FailOpen));
            if on_failure == OnFailure::Drain {
                assert_eq!(
                    st.services[&key()].health.get(&dest(0)).map(|n| &**n),
                    Some(
                        "connect: refused, 3 of 3 failed since 00:00:00; the fallback serves, no fail-open"
                    )
                );
            }
        }
    }

    #[test]
    fn with_a_fallback_one_dest_up_keeps_the_fallback_at_weight_0() {
        let mut cfg = config(OnFailure::Drain, 0);
        let table = down(&cfg, &[0]);
        let (st, _) = apply(with_fallback(&[10, 20], &mut cfg), &cfg, &table);
        assert_eq!(weights(&st), [0, 20, 0]);
    }

    #[test]
    fn below_the_panic_threshold_the_service_fails_open() {
        let cfg = config(OnFailure::Drain, 50);
        let (_, verdicts) = apply(desired(&[1, 1, 1, 1]), &cfg, &down(&cfg, &[0, 1, 2]));
        assert!(verdicts.iter().all(|v| v.kind == VerdictKind::FailOpen));
        let (st, _) = apply(desired(&[1, 1, 1, 1]), &cfg, &down(&cfg, &[0, 1]));
        assert_eq!(weights(&st), [0, 0, 1, 1]);
    }

    #[test]
    fn exempt_dests_and_services_without_a_check_are_never_touched() {
        let mut cfg = config(OnFailure::Drain, 0);
        let table = down(&cfg, &[0, 1]);
        cfg.services.get_mut(&key()).unwrap().exempt.insert(dest(0));
        let (st, _) = apply(desired(&[10, 10, 10]), &cfg, &table);
        assert_eq!(weights(&st), [10, 0, 10]);
        let none = HealthConfig::default();
        let before = desired(&[10, 10, 10]);
        assert_eq!(apply(before.clone(), &none, &table).0, before);
    }

    #[test]
    fn merged_and_shared_dests_are_one_target() {
        let cfg = config(OnFailure::Drain, 0);
        let mut st = desired(&[10, 10]);
        let other = ServiceKey::addr(Protocol::Tcp, [10, 0, 0, 2].into(), 80);
        let copy = st.services[&key()].clone();
        st.services.insert(other, copy);
        let mut both = cfg.clone();
        both.services.insert(other, cfg.services[&key()].clone());
        assert_eq!(both.targets(&st).len(), 2);
    }
}
