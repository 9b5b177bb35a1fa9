//! The validated config values: [`Config`] (the repo), [`Overlay`] and
//! their parts. Plain data with a few lookups; nothing here parses, validates
//! or reports.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use crate::health::{CheckSpec, OnFailure};
use crate::model::tunnel::Tunnel;
use crate::model::{Family, Method, Protocol, ServiceKey};

/// Addresses and ports of a frontend or a backend.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoints {
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    pub tcp: Option<u16>,
    pub udp: Option<u16>,
    /// A frontend's fwmark services (`ipvsadm -f`), by family: a frontend
    /// has marks or addresses and ports, never both.
    pub fwmark_ipv4: Option<u32>,
    pub fwmark_ipv6: Option<u32>,
}

impl Endpoints {
    pub fn addr(&self, family: Family) -> Option<IpAddr> {
        match family {
            Family::Ipv4 => self.ipv4.map(IpAddr::V4),
            Family::Ipv6 => self.ipv6.map(IpAddr::V6),
        }
    }

    pub fn port(&self, protocol: Protocol) -> Option<u16> {
        match protocol {
            Protocol::Tcp => self.tcp,
            Protocol::Udp => self.udp,
            Protocol::Sctp => None,
        }
    }

    /// The IPVS services a frontend expands to: {IPv4, IPv6} x {TCP, UDP},
    /// then its fwmark services.
    pub fn service_keys(&self) -> Vec<ServiceKey> {
        let mut keys = Vec::new();
        for protocol in [Protocol::Tcp, Protocol::Udp] {
            for family in [Family::Ipv4, Family::Ipv6] {
                if let (Some(ip), Some(port)) = (self.addr(family), self.port(protocol)) {
                    keys.push(ServiceKey::addr(protocol, ip, port));
                }
            }
        }
        for (family, mark) in [
            (Family::Ipv4, self.fwmark_ipv4),
            (Family::Ipv6, self.fwmark_ipv6),
        ] {
            if let Some(mark) = mark {
                keys.push(ServiceKey::Fwmark { family, mark });
            }
        }
        // Kept per config service by the render memo: no spare capacity.
        keys.shrink_to_fit();
        keys
    }
}

/// A backend of a service, from the repo or the overlay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    pub name: String,
    /// File path or overlay key that defined it.
    pub source: String,
    pub endpoints: Endpoints,
    pub weight: u32,
    /// `false`: the backend named no weight, so `weight` is the default,
    /// which its service's `default_weight` replaces (`compile`).
    pub weight_given: bool,
    /// `false`: opted out of its service's health check (`healthcheck:
    /// false`): its dests are never checked or drained for health.
    pub healthcheck: bool,
    /// Connection thresholds of its dests (`ipvsadm -x`, `-y`).
    pub thresholds: Thresholds,
}

/// A dest's connection thresholds: above `upper` active plus inactive
/// connections the kernel sends it no new ones until they fall below
/// `lower` (0: none; a `lower` of 0 is 3/4 of `upper` in the kernel).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Thresholds {
    pub upper: u32,
    pub lower: u32,
}

/// A service's health check as configured (`healthcheck:` in YAML, the
/// `healthcheck` file in the JSON layout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    pub check: CheckSpec,
    pub on_failure: OnFailure,
}

/// A service defined by the config repo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    /// File that defined the frontend.
    pub source: String,
    pub frontend: Endpoints,
    pub scheduler: Option<String>,
    pub persistence: Option<u32>,
    /// `None`: no check (none configured, or `type: none`).
    pub healthcheck: Option<HealthCheck>,
    pub backends: BTreeMap<String, Backend>,
    /// The IPVS options beyond scheduler and timeout.
    pub ipvs: IpvsOptions,
    /// The dest that serves when no other dest has weight (`fallback:`).
    pub fallback: Option<Fallback>,
    /// The weight of its backends that name none, repo and overlay
    /// (`default_weight`; none: `model::DEFAULT_WEIGHT`).
    pub default_weight: Option<u32>,
}

/// A service's fallback dest (keepalived's sorry server): in each of the
/// service's IPVS services it has an address and port for, with weight 0
/// while another dest has weight, and `weight` when none has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fallback {
    /// `services/web.yaml#fallback`, or the JSON layout's fallback file.
    pub source: String,
    pub endpoints: Endpoints,
    /// `None`: placed like a backend (routes, then the default method).
    pub method: Option<Method>,
    pub weight: u32,
}

/// A service's IPVS options beyond its scheduler and persistence timeout
/// (YAML layout only).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpvsOptions {
    /// Persistence granularity (`ipvsadm -M`) as a prefix length, per
    /// family; only with persistence.
    pub netmask_ipv4: Option<u8>,
    pub netmask_ipv6: Option<u8>,
    /// Persistence engine (`--pe`): `sip`; only with persistence, and only
    /// on the UDP (and fwmark) services of the frontend.
    pub persistence_engine: Option<String>,
    /// One-packet scheduling (`-o`), on the UDP (and fwmark) services of
    /// the frontend.
    pub ops: bool,
    /// Scheduler flags (`-b`): `sh-fallback`, `sh-port`, `mh-fallback`,
    /// `mh-port`, each valid with its scheduler only; sorted.
    pub scheduler_flags: Vec<String>,
}

/// A route: backends whose address falls in `prefix` are forwarded with
/// `method` (none: filtered out), via `gateway` when set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub name: String,
    pub source: String,
    /// `None`: a default route.
    pub prefix: Option<IpNet>,
    pub gateway: Option<IpAddr>,
    /// `None`: the route filters out the backends it matches.
    pub method: Option<Method>,
    /// The encapsulation of a tunnel route; ipip for the other methods.
    pub tunnel: Tunnel,
}

impl Route {
    /// Whether the route applies to `addr`, and with which prefix length.
    pub fn matches(&self, addr: &IpAddr) -> Option<u8> {
        match &self.prefix {
            Some(net) => net.contains(addr).then(|| net.prefix_len()),
            // A default route with a gateway only applies to addresses of the
            // gateway's family: it cannot rewrite across families.
            None => match &self.gateway {
                Some(gw) if Family::of(gw) != Family::of(addr) => None,
                _ => Some(0),
            },
        }
    }

    /// What the route claims in the routing table: its prefix, or for a
    /// default route the default of each family it covers (one with a
    /// gateway covers the gateway's family only). Two routes with one claim
    /// are one too many: the first in lookup order wins it.
    pub fn claims(&self) -> Vec<RouteClaim> {
        match (self.prefix, self.gateway) {
            (Some(p), _) => vec![RouteClaim::Prefix(p)],
            (None, Some(gw)) => vec![RouteClaim::Default(Family::of(&gw))],
            (None, None) => vec![
                RouteClaim::Default(Family::Ipv4),
                RouteClaim::Default(Family::Ipv6),
            ],
        }
    }
}

/// A part of the routing table one route claims ([`Route::claims`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteClaim {
    Prefix(IpNet),
    /// The default route of a family.
    Default(Family),
}

/// `prefix 10.0.0.0/8`, `the IPv4 default route`.
impl std::fmt::Display for RouteClaim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteClaim::Prefix(p) => write!(f, "prefix {p}"),
            RouteClaim::Default(family) => write!(f, "the {family} default route"),
        }
    }
}

/// Repo-wide defaults from `clusterf.yaml`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Defaults {
    pub scheduler: Option<String>,
    pub method: Option<Method>,
}

/// The validated config repo.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub services: BTreeMap<String, Service>,
    pub routes: BTreeMap<String, Route>,
    pub defaults: Defaults,
}

/// The validated overlay (etcd, or its offline stand-in `--overlay-path`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overlay {
    /// Service name -> backend name -> backend.
    pub backends: BTreeMap<String, BTreeMap<String, Backend>>,
    pub routes: BTreeMap<String, Route>,
    /// Number of keys skipped because they were malformed.
    pub skipped: usize,
}
