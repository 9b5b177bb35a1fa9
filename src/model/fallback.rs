//! A service's fallback dest (keepalived's sorry server): in the service
//! with weight 0 while any other dest has weight above 0, and with its own
//! weight when none has (every backend drained, removed, weight 0, or none
//! at all). [`settle`] is the one rule; every step that changes weights
//! (compile, health) ends with it, so the planner always sees the final
//! weights. Drains only add weight-0 dests, which never change it.
//!
//! Invariant: pure; it changes the fallback dest's weight and nothing else.

use super::{Dest, IpvsState, Service};

/// The weight the fallback dest gets when it serves: its provenance's;
/// `None` for a dest that is no fallback.
pub fn weight(dest: &Dest) -> Option<u32> {
    dest.provenance
        .iter()
        .find(|p| p.fallback)
        .map(|p| p.weight)
}

/// Whether the dest is a service's fallback.
pub fn is_fallback(dest: &Dest) -> bool {
    dest.provenance.iter().any(|p| p.fallback)
}

/// Whether a dest other than the fallback takes new connections.
pub fn others_serve(service: &Service) -> bool {
    service
        .dests
        .values()
        .any(|d| d.attrs.weight > 0 && !is_fallback(d))
}

/// Gives the service's fallback dest its weight when no other dest has
/// weight, else weight 0. Whether it changed a weight.
pub fn settle(service: &mut Service) -> bool {
    let serve = !others_serve(service);
    let mut changed = false;
    for d in service.dests.values_mut() {
        if let Some(w) = weight(d) {
            let want = if serve { w } else { 0 };
            changed |= d.attrs.weight != want;
            d.attrs.weight = want;
        }
    }
    changed
}

/// [`settle`] for every service of a state.
pub fn settle_all(state: &mut IpvsState) {
    for service in state.services.values_mut() {
        settle(service);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DestAttrs, Method, Provenance, ServiceAttrs};

    fn dest(weight: u32, fallback: Option<u32>) -> Dest {
        Dest {
            attrs: DestAttrs::new(Method::Masq, weight),
            provenance: Box::new([Provenance {
                backend: if fallback.is_some() { "fallback" } else { "b" }.into(),
                source: "services/web.yaml".into(),
                weight: fallback.unwrap_or(weight),
                route: None,
                fallback: fallback.is_some(),
            }]),
        }
    }

    fn service(dests: &[(u8, Dest)]) -> Service {
        let mut s = Service::new(ServiceAttrs::with_scheduler("wlc"));
        for (i, d) in dests {
            s.dests
                .insert(format!("10.0.0.{i}:80").parse().unwrap(), d.clone());
        }
        s
    }

    fn weights(s: &Service) -> Vec<u32> {
        s.dests.values().map(|d| d.attrs.weight).collect()
    }

    #[test]
    fn the_fallback_has_weight_only_when_no_other_dest_has() {
        let mut s = service(&[
            (1, dest(10, None)),
            (2, dest(0, None)),
            (9, dest(0, Some(3))),
        ]);
        assert!(!settle(&mut s));
        assert_eq!(weights(&s), [10, 0, 0]);
        s.dests.values_mut().next().unwrap().attrs.weight = 0;
        assert!(settle(&mut s));
        assert_eq!(weights(&s), [0, 0, 3]);
        s.dests.values_mut().nth(1).unwrap().attrs.weight = 5;
        assert!(settle(&mut s));
        assert_eq!(weights(&s), [0, 5, 0]);
    }

    #[test]
    fn a_service_with_only_its_fallback_serves_from_it() {
        let mut s = service(&[(9, dest(0, Some(1)))]);
        settle(&mut s);
        assert_eq!(weights(&s), [1]);
    }

    #[test]
    fn a_service_without_a_fallback_is_left_alone() {
        let mut s = service(&[(1, dest(0, None)), (2, dest(0, None))]);
        assert!(!settle(&mut s));
        assert_eq!(weights(&s), [0, 0]);
    }
}
