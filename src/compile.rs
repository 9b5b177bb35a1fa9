//! Compiles a validated [`Config`] plus an [`Overlay`] into the desired
//! [`IpvsState`], with the provenance of every dest.
//!
//! The rules (the original clusterf's, made precise):
//! - every frontend expands to {IPv4, IPv6} x {TCP, UDP} services (an
//!   fwmark frontend: one per family it has a mark for), each with the
//!   service's IPVS options that apply to it (`ops` and the persistence
//!   engine on UDP and fwmark services only, the netmask of its family);
//! - a backend becomes a dest of each service for which it has an address
//!   of the family and a port of the protocol (of an fwmark service: any
//!   address of the family, with its port or port 0);
//! - the longest-prefix route matching the backend's address picks the
//!   method (no method: the backend is dropped) and may rewrite the dest to
//!   `gateway:<service port>`; no route: the default method;
//! - droute and tunnel keep the service's port;
//! - a tunnel dest's encapsulation is its route's (ipip by default);
//! - dests landing on one address:port merge, summing weights; their
//!   methods, tunnels and connection thresholds must agree (they bound
//!   one server);
//! - a service's health check applies to each of its IPVS services; a dest
//!   is exempt from it when any backend that lands on it opted out;
//! - a backend that names no weight has its service's `default_weight`,
//!   else 10;
//! - a service's fallback dest (`fallback`) is placed like a backend but
//!   never merged, is never checked, and has weight only when no other
//!   dest has (`model::fallback`).
//!
//! Authority: the repo defines services and routes; the overlay adds
//! backends to repo services and routes. On a name collision the repo wins.
//!
//! Invariant: pure and deterministic. No I/O, no clock; output is sorted.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

use crate::config::{Backend, Config, Overlay, Route};
use crate::diag::Diagnostics;
use crate::health::{HealthConfig, ServiceHealth};
use crate::model::flags::{FLAG_OPS, FLAG_PE_PREFIX, canonical_flags};
use crate::model::tunnel::Tunnel;
use crate::model::{
    DEFAULT_SCHEDULER, Dest, DestAttrs, Family, IpvsState, MAX_WEIGHT, Method, Protocol,
    Provenance, RouteName, Service, ServiceAttrs, ServiceKey, SourcePath,
};

mod fallback;
mod weight;
use fallback::place_fallback;
use weight::with_default_weight;

/// Options that are not part of the config repo.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Ignore overlay routes (`--filter-etcd-routes`).
    pub filter_overlay_routes: bool,
    /// Leave out services without dests (`--elide-empty`).
    pub elide_empty: bool,
    /// Scheduler for services that name none; overrides `clusterf.yaml`.
    pub default_scheduler: Option<String>,
    /// Method for backends no route matches; overrides `clusterf.yaml`.
    pub default_method: Option<Method>,
}

/// Compiles the desired state and the health checks of its services
/// (keyed like it). Errors in the diagnostics (conflicting methods on a
/// merged dest) mean the state must not be applied.
///
/// `held` names the services whose config files have errors (so the config
/// lacks them): their overlay backends are held back without a warning,
/// since the config error is the one problem.
pub fn compile(
    config: &Config,
    overlay: &Overlay,
    opts: &Options,
    held: &BTreeSet<&str>,
) -> (IpvsState, HealthConfig, Diagnostics) {
    let mut compiler = Compiler::new(config, overlay, opts);
    for svc in config.services.values() {
        compiler.service(svc);
    }
    compiler.finish(held)
}

/// One compile in progress, a service at a time ([`compile`] in steps): the
/// routes and defaults in force (`config`'s, whose services are not read),
/// and the state, health checks and diagnostics so far. Each service is
/// compiled as it comes and may be dropped then: a large config is never
/// held whole beside the state it becomes. The services must come in name
/// order, each once, as `config.services` holds them.
pub struct Compiler<'a> {
    overlay: &'a Overlay,
    opts: &'a Options,
    routes: RouteTable<'a>,
    defaults: ResolvedDefaults,
    out: (IpvsState, HealthConfig),
    diags: Diagnostics,
    /// The overlay's services that the config has (compiled).
    present: BTreeSet<&'a str>,
}

impl<'a> Compiler<'a> {
    pub fn new(config: &'a Config, overlay: &'a Overlay, opts: &'a Options) -> Self {
        let mut diags = Diagnostics::default();
        let routes = effective_routes(config, overlay, opts, &mut diags);
        let routes = RouteTable::new(&routes);
        let defaults = ResolvedDefaults::resolve(config, opts);
        Compiler {
            overlay,
            opts,
            routes,
            defaults,
            out: (IpvsState::default(), HealthConfig::default()),
            diags,
            present: BTreeSet::new(),
        }
    }

    /// Compiles one service of the config.
    pub fn service(&mut self, svc: &crate::config::Service) {
        if let Some((name, _)) = self.overlay.backends.get_key_value(svc.name.as_str()) {
            self.present.insert(name.as_str());
        }
        let (routes, defaults) = (&self.routes, &self.defaults);
        let (out, diags) = (&mut self.out, &mut self.diags);
        compile_service(svc, self.overlay, routes, defaults, self.opts, out, diags);
    }

    /// The state, its health checks and the diagnostics; `held` as for
    /// [`compile`].
    pub fn finish(self, held: &BTreeSet<&str>) -> (IpvsState, HealthConfig, Diagnostics) {
        let Compiler {
            overlay,
            out: (state, health),
            mut diags,
            present,
            ..
        } = self;
        warn_overlay_backends_without_service(&present, overlay, held, &mut diags);
        diags.sort();
        (state, health, diags)
    }
}

/// What a service or backend that names none gets: the options first,
/// then `clusterf.yaml`, then the built-in defaults.
struct ResolvedDefaults {
    method: Method,
    scheduler: String,
}

impl ResolvedDefaults {
    fn resolve(config: &Config, opts: &Options) -> ResolvedDefaults {
        ResolvedDefaults {
            method: opts
                .default_method
                .or(config.defaults.method)
                .unwrap_or(Method::Masq),
            scheduler: opts
                .default_scheduler
                .clone()
                .or_else(|| config.defaults.scheduler.clone())
                .unwrap_or_else(|| DEFAULT_SCHEDULER.to_string()),
        }
    }
}

/// Overlay backends of services the repo does not define (not `present`)
/// are ignored, each with a warning; those of a `held` service silently.
fn warn_overlay_backends_without_service(
    present: &BTreeSet<&str>,
    overlay: &Overlay,
    held: &BTreeSet<&str>,
    diags: &mut Diagnostics,
) {
    for (svc, backends) in &overlay.backends {
        if !present.contains(svc.as_str()) && !held.contains(svc.as_str()) {
            for b in backends.values() {
                diags.warning(
                    b.source.as_str(),
                    None,
                    format!("overlay backend for service {svc:?}, which the config repo does not define: ignored"),
                );
            }
        }
    }
}

/// Puts the IPVS services of one config service into `state`: one per
/// frontend key not claimed before, with its backends placed and merged.
fn compile_service(
    svc: &crate::config::Service,
    overlay: &Overlay,
    routes: &RouteTable<'_>,
    defaults: &ResolvedDefaults,
    opts: &Options,
    (state, health): &mut (IpvsState, HealthConfig),
    diags: &mut Diagnostics,
) {
    let backends = service_backends(svc, overlay, diags);
    let reweighted;
    let backends = match svc.default_weight {
        Some(w) => {
            reweighted = with_default_weight(&backends, w);
            reweighted.iter().collect()
        }
        None => backends,
    };
    let scheduler = svc
        .scheduler
        .clone()
        .unwrap_or_else(|| defaults.scheduler.clone());
    for key in svc.frontend.service_keys() {
        let attrs = service_attrs(svc, &key, &scheduler);
        let slot = match state.services.entry(key) {
            // Claimed twice: reported by config validation.
            std::collections::btree_map::Entry::Occupied(_) => continue,
            std::collections::btree_map::Entry::Vacant(slot) => slot,
        };
        let mut service = Service::new(attrs);
        service.names = vec![svc.name.clone()];
        let placed = place_backends(
            &key,
            &backends,
            routes,
            defaults.method,
            &mut service,
            diags,
        );
        check_dests(svc, &key, &placed, &backends, &mut service, diags);
        let mut placed = placed;
        if let Some(fb) = &svc.fallback {
            let (method, exempt) = (defaults.method, &mut placed.exempt);
            place_fallback(svc, fb, &key, routes, method, &mut service, exempt, diags);
        }
        if opts.elide_empty && service.dests.is_empty() {
            continue;
        }
        slot.insert(service);
        if let Some(check) = &svc.healthcheck {
            let service_health = ServiceHealth {
                check: check.check.clone(),
                on_failure: check.on_failure,
                exempt: placed.exempt,
            };
            health.services.insert(key, service_health);
        }
    }
}

/// The attributes of one IPVS service of `svc`: the persistence netmask
/// of its family (the host mask is none, as the kernel reports it), the
/// scheduler flags, and one-packet scheduling and the persistence engine
/// on UDP and fwmark services only (the kernel applies both to UDP
/// packets only; the sip engine drops the others).
fn service_attrs(svc: &crate::config::Service, key: &ServiceKey, scheduler: &str) -> ServiceAttrs {
    let ipvs = &svc.ipvs;
    let family = key.family();
    let netmask = match family {
        Family::Ipv4 => ipvs.netmask_ipv4,
        Family::Ipv6 => ipvs.netmask_ipv6,
    }
    .filter(|&n| svc.persistence.is_some() && n != family.max_prefix_len());
    let udp = matches!(
        key,
        ServiceKey::Addr {
            protocol: Protocol::Udp,
            ..
        } | ServiceKey::Fwmark { .. }
    );
    let mut flags = ipvs.scheduler_flags.clone();
    if udp && ipvs.ops {
        flags.push(FLAG_OPS.to_string());
    }
    if let Some(pe) = ipvs.persistence_engine.as_ref().filter(|_| udp) {
        flags.push(format!("{FLAG_PE_PREFIX}{pe}"));
    }
    ServiceAttrs {
        scheduler: scheduler.to_string(),
        persistence: svc.persistence,
        netmask,
        flags: canonical_flags(scheduler, &flags),
    }
}

/// Where the backends of one IPVS service landed, in the order placed (for
/// the message on a conflict), the dests whose backends disagree on the
/// method, and the dests a backend opted out of health checks on.
struct Placed {
    placed: Vec<(SocketAddr, Method, Tunnel)>,
    conflicts: Vec<SocketAddr>,
    /// Dests whose backends disagree on the connection thresholds.
    threshold_conflicts: Vec<SocketAddr>,
    exempt: BTreeSet<SocketAddr>,
}

/// Places every backend in `service`: backends landing on one dest merge,
/// summing weights. Thresholds do not sum: they bound one real server,
/// whose capacity is the same however many backends name it, so merged
/// backends must agree on them.
fn place_backends(
    key: &ServiceKey,
    backends: &[&Backend],
    routes: &RouteTable<'_>,
    default_method: Method,
    service: &mut Service,
    diags: &mut Diagnostics,
) -> Placed {
    let mut conflicts: Vec<SocketAddr> = Vec::new();
    let mut threshold_conflicts: Vec<SocketAddr> = Vec::new();
    let mut placed: Vec<(SocketAddr, Method, Tunnel)> = Vec::with_capacity(backends.len());
    let mut exempt = BTreeSet::new();
    let mut shared = Shared::default();
    for b in backends {
        let Some((dest, method, route)) = place(key, b, routes, default_method, diags) else {
            continue;
        };
        if !b.healthcheck {
            exempt.insert(dest);
        }
        let provenance = Provenance {
            backend: b.name.as_str().into(),
            source: shared.source(&b.source, &b.name),
            weight: b.weight,
            route: route.map(|r| shared.route(&r.name)),
            fallback: false,
        };
        let thresholds = b.thresholds;
        let tunnel = tunnel_of(method, route);
        let entry = service.dests.entry(dest).or_insert_with(|| Dest {
            attrs: DestAttrs {
                upper_threshold: thresholds.upper,
                lower_threshold: thresholds.lower,
                tunnel,
                ..DestAttrs::new(method, 0)
            },
            provenance: Box::default(),
        });
        if (entry.attrs.method != method || entry.attrs.tunnel != tunnel)
            && !conflicts.contains(&dest)
        {
            conflicts.push(dest);
        }
        let (upper, lower) = (entry.attrs.upper_threshold, entry.attrs.lower_threshold);
        if (upper, lower) != (thresholds.upper, thresholds.lower)
            && !threshold_conflicts.contains(&dest)
        {
            threshold_conflicts.push(dest);
        }
        // Saturating: the cap below reports it; no overflow however
        // many backends merge.
        entry.attrs.weight = entry.attrs.weight.saturating_add(b.weight);
        // Most dests come from one backend: a slice of one, allocated once.
        entry.provenance = match std::mem::take(&mut entry.provenance).into_vec() {
            v if v.is_empty() => Box::new([provenance]),
            mut v => {
                v.push(provenance);
                v.into_boxed_slice()
            }
        };
        placed.push((dest, method, tunnel));
    }
    Placed {
        placed,
        conflicts,
        threshold_conflicts,
        exempt,
    }
}

/// The provenance strings the dests of a service share: the last source
/// and route made (a service's backends come in file order, so its dests
/// from one file, or one overlay prefix, or one route, are consecutive).
#[derive(Default)]
struct Shared {
    source: Option<Arc<str>>,
    route: Option<RouteName>,
}

impl Shared {
    /// A backend's source: the prefix when it is a prefix and the
    /// backend's name (`overlay:services/s1/backends/` + `b4`,
    /// `services/s1.yaml#backends.` + `b4`: exact, as it is what is
    /// left), else the whole.
    fn source(&mut self, source: &str, backend: &str) -> SourcePath {
        match source.strip_suffix(backend) {
            Some(prefix) if !backend.is_empty() => {
                SourcePath::Keyed(reuse(&mut self.source, prefix))
            }
            _ => SourcePath::Whole(reuse(&mut self.source, source)),
        }
    }

    fn route(&mut self, name: &str) -> RouteName {
        match &self.route {
            Some(r) if **r == *name => r.clone(),
            _ => self.route.insert(name.into()).clone(),
        }
    }
}

/// `last` if it is `s`, else a new string kept as `last`.
fn reuse(last: &mut Option<Arc<str>>, s: &str) -> Arc<str> {
    match last {
        Some(l) if **l == *s => l.clone(),
        _ => last.insert(s.into()).clone(),
    }
}

/// Reports merged dests with conflicting methods (an error) and caps
/// merged weights (a warning); sorts each dest's provenance.
fn check_dests(
    svc: &crate::config::Service,
    key: &ServiceKey,
    placed: &Placed,
    backends: &[&Backend],
    service: &mut Service,
    diags: &mut Diagnostics,
) {
    let Placed {
        placed,
        conflicts,
        threshold_conflicts,
        ..
    } = placed;
    for (dest, d) in service.dests.iter_mut() {
        if threshold_conflicts.contains(dest) {
            report_threshold_conflict(svc, key, dest, d, backends, diags);
        }
        if !conflicts.is_empty() && conflicts.contains(dest) {
            report_method_conflict(svc, key, dest, d, placed, diags);
        }
        if d.attrs.weight > MAX_WEIGHT {
            diags.warning(
                svc.source.as_str(),
                None,
                format!(
                    "dest {dest} of {key}: merged weight {} capped at {MAX_WEIGHT}",
                    d.attrs.weight
                ),
            );
            d.attrs.weight = MAX_WEIGHT;
        }
        d.provenance.sort();
    }
}

/// A merged dest whose backends give different forwarding methods, or
/// tunnels of different encapsulations: an error naming each backend's.
fn report_method_conflict(
    svc: &crate::config::Service,
    key: &ServiceKey,
    dest: &SocketAddr,
    d: &Dest,
    placed: &[(SocketAddr, Method, Tunnel)],
    diags: &mut Diagnostics,
) {
    let methods: Vec<DestAttrs> = placed
        .iter()
        .filter(|(p, ..)| p == dest)
        .map(|&(_, method, tunnel)| DestAttrs {
            tunnel,
            ..DestAttrs::new(method, 0)
        })
        .collect();
    let what = if methods.iter().all(|m| m.method == Method::Tunnel) {
        "tunnels"
    } else {
        "forwarding methods"
    };
    let who: Vec<String> = d
        .provenance
        .iter()
        .zip(&methods)
        .map(|(o, m)| format!("{} ({}, {})", o.backend, m.method_text(), o.source()))
        .collect();
    diags.error(
        svc.source.as_str(),
        None,
        format!(
            "dest {dest} of {key} merges backends with different {what}: {}",
            who.join(", ")
        ),
    );
}

/// A merged dest whose backends give different thresholds: an error
/// naming each backend's.
fn report_threshold_conflict(
    svc: &crate::config::Service,
    key: &ServiceKey,
    dest: &SocketAddr,
    d: &Dest,
    backends: &[&Backend],
    diags: &mut Diagnostics,
) {
    let who: Vec<String> = d
        .provenance
        .iter()
        .filter_map(|o| {
            let b = backends
                .iter()
                .find(|b| *b.name == *o.backend && *b.source == *o.source())?;
            let t = b.thresholds;
            Some(format!(
                "{} (upper {}, lower {}, {})",
                o.backend,
                t.upper,
                t.lower,
                o.source()
            ))
        })
        .collect();
    diags.error(
        svc.source.as_str(),
        None,
        format!(
            "dest {dest} of {key} merges backends with different connection thresholds: {}",
            who.join(", ")
        ),
    );
}

/// The routes in force: the repo's, plus the overlay's unless filtered; a
/// repo route overrides an overlay route of the same name. Sorted from the
/// longest prefix to the shortest, then by name, so the first match wins.
fn effective_routes<'a>(
    config: &'a Config,
    overlay: &'a Overlay,
    opts: &Options,
    diags: &mut Diagnostics,
) -> Vec<&'a Route> {
    let mut routes: BTreeMap<&str, &Route> =
        config.routes.iter().map(|(n, r)| (n.as_str(), r)).collect();
    if !opts.filter_overlay_routes {
        for (name, route) in &overlay.routes {
            if let Some(repo) = routes.get(name.as_str()) {
                diags.warning(
                    route.source.as_str(),
                    None,
                    format!("overlay route {name:?} overridden by {}", repo.source),
                );
                continue;
            }
            routes.insert(name, route);
        }
    }
    let mut routes: Vec<&Route> = routes.into_values().collect();
    // Repo routes before overlay routes at equal prefix length, then by name.
    let is_overlay = |r: &Route| !config.routes.contains_key(&r.name);
    routes.sort_by(|a, b| {
        let len = |r: &Route| r.prefix.map_or(0, |p| p.prefix_len());
        len(b)
            .cmp(&len(a))
            .then(is_overlay(a).cmp(&is_overlay(b)))
            .then(a.name.cmp(&b.name))
    });
    warn_shadowed_overlay_routes(&routes, is_overlay, diags);
    routes
}

/// An overlay route that claims what a route before it in lookup order
/// claims (`sorted`: [`effective_routes`]'s order) never matches there: a
/// warning naming both. Two repo routes with one claim are the config's
/// error already.
fn warn_shadowed_overlay_routes(
    sorted: &[&Route],
    is_overlay: impl Fn(&Route) -> bool,
    diags: &mut Diagnostics,
) {
    let mut claimed: BTreeMap<crate::config::RouteClaim, &Route> = BTreeMap::new();
    for &route in sorted {
        for claim in route.claims() {
            match claimed.get(&claim) {
                Some(first) if is_overlay(route) => diags.warning(
                    route.source.as_str(),
                    None,
                    format!(
                        "overlay route {:?} never matches {claim}: route {:?} ({}) claims it first",
                        route.name, first.name, first.source
                    ),
                ),
                Some(_) => {}
                None => {
                    claimed.insert(claim, route);
                }
            }
        }
    }
}

/// The repo's static backends of a service, plus the overlay's; the repo
/// wins a name collision.
fn service_backends<'a>(
    svc: &'a crate::config::Service,
    overlay: &'a Overlay,
    diags: &mut Diagnostics,
) -> Vec<&'a Backend> {
    let mut out: Vec<&Backend> = svc.backends.values().collect();
    if let Some(extra) = overlay.backends.get(&svc.name) {
        for (name, b) in extra {
            if let Some(repo) = svc.backends.get(name) {
                diags.warning(
                    b.source.as_str(),
                    None,
                    format!(
                        "overlay backend {name:?} ignored: {} defines a backend of that name",
                        repo.source
                    ),
                );
                continue;
            }
            out.push(b);
        }
    }
    out
}

/// Where a backend lands in a service: its dest address, method and route;
/// `None` when it has no address/port for the service or a route filters it.
fn place<'r>(
    key: &ServiceKey,
    b: &Backend,
    routes: &RouteTable<'r>,
    default_method: Method,
    diags: &mut Diagnostics,
) -> Option<(SocketAddr, Method, Option<&'r Route>)> {
    let ServiceKey::Addr {
        protocol,
        addr: vip,
    } = key
    else {
        return place_fwmark(key, b, routes, default_method, diags);
    };
    let ip: IpAddr = b.endpoints.addr(key.family())?;
    let port = b.endpoints.port(*protocol)?;
    let route = routes.lookup(&ip);
    let method = match route {
        Some(r) => r.method?,
        None => default_method,
    };
    if let Some(gw) = route.and_then(|r| r.gateway) {
        return Some((SocketAddr::new(gw, vip.port()), method, route));
    }
    if !method.rewrites_port() && port != vip.port() {
        diags.warning(
            b.source.as_str(),
            None,
            port_ignored(&b.name, *protocol, port, method, vip),
        );
        return Some((SocketAddr::new(ip, vip.port()), method, route));
    }
    Some((SocketAddr::new(ip, port), method, route))
}

/// A tunnel dest's encapsulation: its route's (the default method's:
/// ipip).
fn tunnel_of(method: Method, route: Option<&Route>) -> Tunnel {
    match (method, route) {
        (Method::Tunnel, Some(r)) => r.tunnel,
        _ => Tunnel::IPIP,
    }
}

/// Where a backend lands in an fwmark service. The service has no port:
/// the dest takes the backend's port (tcp, else udp; the two differing,
/// udp's is ignored with a warning), and none is port 0, with which the
/// kernel keeps each packet's destination port, as `ipvsadm -f` and
/// keepalived do. droute and tunnel keep the packet's port: port 0.
fn place_fwmark<'r>(
    key: &ServiceKey,
    b: &Backend,
    routes: &RouteTable<'r>,
    default_method: Method,
    diags: &mut Diagnostics,
) -> Option<(SocketAddr, Method, Option<&'r Route>)> {
    let ip: IpAddr = b.endpoints.addr(key.family())?;
    let route = routes.lookup(&ip);
    let method = match route {
        Some(r) => r.method?,
        None => default_method,
    };
    if let Some(gw) = route.and_then(|r| r.gateway) {
        return Some((SocketAddr::new(gw, 0), method, route));
    }
    let port = match (b.endpoints.tcp, b.endpoints.udp) {
        (Some(tcp), Some(udp)) if tcp != udp => {
            diags.warning(
                b.source.as_str(),
                None,
                format!(
                    "backend {}: udp port {udp} ignored for {key}: an fwmark dest has one port, the tcp port {tcp}",
                    crate::text::quote(&b.name)
                ),
            );
            tcp
        }
        (tcp, udp) => tcp.or(udp).unwrap_or(0),
    };
    if !method.rewrites_port() && port != 0 {
        diags.warning(
            b.source.as_str(),
            None,
            format!(
                "backend {}: port {port} ignored for {method} to {key}: {method} keeps each packet's port",
                crate::text::quote(&b.name)
            ),
        );
        return Some((SocketAddr::new(ip, 0), method, route));
    }
    Some((SocketAddr::new(ip, port), method, route))
}

/// `backend "a": tcp port 8080 ignored for droute to tcp://10.0.0.1:80:
/// droute keeps the service port 80`, written without the formatting
/// machinery: a repo with many such backends has one message per backend
/// and service.
fn port_ignored(
    name: &str,
    protocol: Protocol,
    port: u16,
    method: Method,
    vip: &SocketAddr,
) -> String {
    let mut m = String::with_capacity(112 + 2 * name.len());
    m.push_str("backend ");
    if name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || b"-_.@:".contains(&c))
    {
        m.push('"');
        m.push_str(name);
        m.push('"');
    } else {
        m.push_str(&format!("{name:?}"));
    }
    m.push_str(": ");
    m.push_str(protocol.as_str());
    m.push_str(" port ");
    push_decimal(&mut m, port.into());
    m.push_str(" ignored for ");
    m.push_str(method.as_str());
    m.push_str(" to ");
    m.push_str(protocol.as_str());
    m.push_str("://");
    match vip {
        SocketAddr::V4(a) => {
            for (i, octet) in a.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    m.push('.');
                }
                push_decimal(&mut m, octet.into());
            }
            m.push(':');
            push_decimal(&mut m, a.port().into());
        }
        SocketAddr::V6(_) => m.push_str(&vip.to_string()),
    }
    m.push_str(": ");
    m.push_str(method.as_str());
    m.push_str(" keeps the service port ");
    push_decimal(&mut m, vip.port().into());
    m
}

fn push_decimal(m: &mut String, n: u32) {
    let mut buf = [0u8; 10];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    m.push_str(std::str::from_utf8(&buf[i..]).unwrap_or_default());
}

/// The routes in force, indexed for longest-prefix lookup: finds the route
/// that the first match in the sorted list of [`effective_routes`] is,
/// without trying every route.
struct RouteTable<'r> {
    /// IPv4 routes longer than /0, grouped by prefix length from the longest
    /// down; each group sorted by network, the first route in list order
    /// kept for a network.
    v4: Vec<(u8, Vec<(u32, &'r Route)>)>,
    /// The same for IPv6.
    v6: Vec<(u8, Vec<(u128, &'r Route)>)>,
    /// The /0 and default routes, in list order: tried one by one.
    rest: Vec<&'r Route>,
}

fn mask4(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn mask6(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

impl<'r> RouteTable<'r> {
    /// `sorted`: from the longest prefix to the shortest, first match wins.
    fn new(sorted: &[&'r Route]) -> Self {
        let mut t = RouteTable {
            v4: Vec::new(),
            v6: Vec::new(),
            rest: Vec::new(),
        };
        for &route in sorted {
            match route.prefix {
                Some(IpNet::V4(net)) if net.prefix_len() > 0 => {
                    let len = net.prefix_len();
                    let bits = u32::from(net.addr()) & mask4(len);
                    match t.v4.last_mut() {
                        Some((l, group)) if *l == len => group.push((bits, route)),
                        _ => t.v4.push((len, vec![(bits, route)])),
                    }
                }
                Some(IpNet::V6(net)) if net.prefix_len() > 0 => {
                    let len = net.prefix_len();
                    let bits = u128::from(net.addr()) & mask6(len);
                    match t.v6.last_mut() {
                        Some((l, group)) if *l == len => group.push((bits, route)),
                        _ => t.v6.push((len, vec![(bits, route)])),
                    }
                }
                _ => t.rest.push(route),
            }
        }
        // Stable sorts keep list order among routes of one network; the
        // first of them is the one a scan would find.
        for (_, group) in &mut t.v4 {
            group.sort_by_key(|e| e.0);
            group.dedup_by_key(|e| e.0);
        }
        for (_, group) in &mut t.v6 {
            group.sort_by_key(|e| e.0);
            group.dedup_by_key(|e| e.0);
        }
        t
    }

    fn lookup(&self, ip: &IpAddr) -> Option<&'r Route> {
        let found = match ip {
            IpAddr::V4(a) => {
                let a = u32::from(*a);
                self.v4.iter().find_map(|(len, group)| {
                    let k = a & mask4(*len);
                    group
                        .binary_search_by_key(&k, |e| e.0)
                        .ok()
                        .map(|i| group[i].1)
                })
            }
            IpAddr::V6(a) => {
                let a = u128::from(*a);
                self.v6.iter().find_map(|(len, group)| {
                    let k = a & mask6(*len);
                    group
                        .binary_search_by_key(&k, |e| e.0)
                        .ok()
                        .map(|i| group[i].1)
                })
            }
        };
        found.or_else(|| self.rest.iter().copied().find(|r| r.matches(ip).is_some()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn route(i: usize, prefix: Option<IpNet>, gateway: Option<IpAddr>) -> Route {
        Route {
            name: format!("r{i}"),
            source: format!("routes/r{i}"),
            prefix,
            gateway,
            method: Some(Method::Masq),
            tunnel: crate::model::tunnel::Tunnel::IPIP,
        }
    }

    fn net() -> impl Strategy<Value = Option<IpNet>> {
        prop_oneof![
            1 => Just(None),
            4 => (0u32..8, 0u8..=32).prop_map(|(a, len)| Some(IpNet::V4(
                ipnet::Ipv4Net::new((a << 29).into(), len).unwrap().trunc()
            ))),
            4 => (0u128..8, 0u8..=128).prop_map(|(a, len)| Some(IpNet::V6(
                ipnet::Ipv6Net::new((a << 125).into(), len).unwrap().trunc()
            ))),
        ]
    }

    fn addr() -> impl Strategy<Value = IpAddr> {
        // Near the networks above, so that prefixes of every length match.
        prop_oneof![
            (0u32..8, any::<u32>(), 0u32..32)
                .prop_map(|(hi, lo, keep)| IpAddr::V4(((hi << 29) | (lo >> keep.max(3))).into())),
            (0u128..8, any::<u128>(), 0u32..128)
                .prop_map(|(hi, lo, keep)| IpAddr::V6(((hi << 125) | (lo >> keep.max(3))).into())),
        ]
    }

    proptest! {
        /// The hand-written message is the one `format!` writes.
        #[test]
        fn port_ignored_is_the_formatted_message(
            name in prop_oneof!["[a-z0-9._@:-]{1,12}", ".{0,8}"],
            tcp in any::<bool>(),
            port in any::<u16>(),
            method in prop::sample::select(Method::ALL.to_vec()),
            vip in prop_oneof![
                any::<(u32, u16)>().prop_map(|(a, p)| SocketAddr::new(IpAddr::V4(a.into()), p)),
                any::<(u128, u16)>().prop_map(|(a, p)| SocketAddr::new(IpAddr::V6(a.into()), p)),
            ],
        ) {
            let protocol = if tcp { Protocol::Tcp } else { Protocol::Udp };
            let key = ServiceKey::Addr { protocol, addr: vip };
            let want = format!(
                "backend {:?}: {protocol} port {port} ignored for {method} to {key}: {method} keeps the service port {}",
                name,
                vip.port()
            );
            prop_assert_eq!(port_ignored(&name, protocol, port, method, &vip), want);
        }

        /// The table finds what the first match of the sorted list is.
        #[test]
        fn route_table_finds_the_first_match(
            nets in prop::collection::vec((net(), prop::option::of(addr())), 0..40),
            addrs in prop::collection::vec(addr(), 1..40),
        ) {
            let routes: Vec<Route> = nets
                .into_iter()
                .enumerate()
                .map(|(i, (p, gw))| route(i, p, gw))
                .collect();
            let mut sorted: Vec<&Route> = routes.iter().collect();
            sorted.sort_by_key(|r| std::cmp::Reverse(r.prefix.map_or(0, |p| p.prefix_len())));
            let table = RouteTable::new(&sorted);
            for a in &addrs {
                let scan = sorted.iter().copied().find(|r| r.matches(a).is_some());
                prop_assert_eq!(table.lookup(a).map(|r| &r.name), scan.map(|r| &r.name));
            }
        }
    }

    /// The backends of one file share its path (`file#backends.`), the
    /// overlay backends of a service their keys' prefix, the dests of a
    /// route its name; each reads as its whole text.
    #[test]
    fn provenance_strings_are_shared() {
        let mut config = crate::tree::Tree::new("c");
        config.insert(
            "services/web.yaml",
            "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends:\n  a: {ipv4: 10.1.0.1, tcp: 80}\n  b: {ipv4: 10.1.0.2, tcp: 80}\n",
        );
        config.insert("routes/r.yaml", "prefix: 10.1.0.0/16\nmethod: droute\n");
        let mut overlay = crate::tree::Tree::new("o");
        for (b, ip) in [("x", "10.2.0.1"), ("y", "10.2.0.2")] {
            overlay.insert(
                format!("services/web/backends/{b}"),
                format!(r#"{{"ipv4": "{ip}", "tcp": 80}}"#),
            );
        }
        let r = crate::render::render(&config, Some(&overlay), &Options::default());
        assert!(r.is_ok(), "{:?}", r.diags.errors().next());
        let svc = &r.state.services[&"tcp://10.0.0.1:80".parse().unwrap()];
        assert_eq!(svc.dests.len(), 4, "{svc:?}");
        let origin = |ip: &str| &svc.dests[&format!("{ip}:80").parse().unwrap()].provenance[0];
        let [a, b, x, y] = ["10.1.0.1", "10.1.0.2", "10.2.0.1", "10.2.0.2"].map(origin);
        let text = |p: &Provenance| (p.backend.to_string(), p.source().into_owned());
        assert_eq!(text(a), ("a".into(), "services/web.yaml#backends.a".into()));
        assert_eq!(
            text(y),
            ("y".into(), "overlay:services/web/backends/y".into())
        );
        let (SourcePath::Keyed(sa), SourcePath::Keyed(sb)) = (&a.source, &b.source) else {
            panic!("file sources held as their prefix: {a:?} {b:?}");
        };
        assert!(Arc::ptr_eq(sa, sb));
        assert_eq!(&**sa, "services/web.yaml#backends.");
        let (SourcePath::Keyed(sx), SourcePath::Keyed(sy)) = (&x.source, &y.source) else {
            panic!("overlay keys held as their prefix: {x:?} {y:?}");
        };
        assert!(Arc::ptr_eq(sx, sy));
        assert_eq!(&**sx, "overlay:services/web/backends/");
        let (Some(ra), Some(rb)) = (&a.route, &b.route) else {
            panic!("routed: {a:?} {b:?}");
        };
        assert!(RouteName::ptr_eq(ra, rb));
    }
}
