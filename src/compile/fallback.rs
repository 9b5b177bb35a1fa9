//! A service's fallback dest in each of its IPVS services: placed like a
//! backend (routes and the default method, or its own method and no
//! route), never merged with a backend's dest (an error), and exempt from
//! health checks. Its weight is `model::fallback`'s rule, settled once
//! the backends are placed.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use super::{RouteTable, place, tunnel_of};
use crate::config::{Backend, Fallback, Thresholds};
use crate::diag::Diagnostics;
use crate::model::{Dest, DestAttrs, Method, Provenance, Service, ServiceKey, fallback};

/// Places the fallback of `svc` in `service` (no address of the family,
/// no port of the protocol, or a route that filters it: none there), then
/// settles the fallback's weight. The dest joins `exempt`: it is never
/// checked.
#[allow(clippy::too_many_arguments)]
pub(super) fn place_fallback(
    svc: &crate::config::Service,
    fb: &Fallback,
    key: &ServiceKey,
    routes: &RouteTable<'_>,
    default_method: Method,
    service: &mut Service,
    exempt: &mut BTreeSet<SocketAddr>,
    diags: &mut Diagnostics,
) {
    let b = Backend {
        name: "fallback".to_string(),
        source: fb.source.clone(),
        endpoints: fb.endpoints.clone(),
        weight: fb.weight,
        weight_given: true,
        healthcheck: false,
        thresholds: Thresholds::default(),
    };
    let no_routes = RouteTable::new(&[]);
    // Its warnings (a port droute ignores) name it as the fallback.
    let mut said = Diagnostics::default();
    let placed = match fb.method {
        Some(method) => place(key, &b, &no_routes, method, &mut said),
        None => place(key, &b, routes, default_method, &mut said),
    };
    for mut d in said.0 {
        d.message = d.message.replacen("backend \"fallback\"", "fallback", 1);
        diags.0.push(d);
    }
    let Some((dest, method, route)) = placed else {
        return;
    };
    if let Some(d) = service.dests.get(&dest) {
        let who: Vec<String> = d
            .provenance
            .iter()
            .map(|o| format!("{} ({})", o.backend, o.source()))
            .collect();
        diags.error(
            svc.source.as_str(),
            None,
            format!(
                "fallback dest {dest} of {key} is also the dest of backend {}: a fallback serves when the backends do not, so it must be a dest of its own",
                who.join(", ")
            ),
        );
        return;
    }
    exempt.insert(dest);
    service.dests.insert(
        dest,
        Dest {
            attrs: DestAttrs {
                tunnel: tunnel_of(method, route),
                ..DestAttrs::new(method, 0)
            },
            provenance: Box::new([Provenance {
                backend: b.name.into(),
                source: b.source.into(),
                weight: b.weight,
                route: route.map(|r| r.name.as_str().into()),
                fallback: true,
            }]),
        },
    );
    fallback::settle(service);
}
