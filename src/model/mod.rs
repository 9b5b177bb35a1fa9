//! The IPVS state model: services keyed by (protocol, address, port) or
//! fwmark, each with its dests keyed by (address, port).
//!
//! This is the common language of every stage after rendering: the compiler
//! produces an [`IpvsState`] (the desired state, with provenance), the kernel
//! and `ipvsadm -S` dumps produce one (the live state, without provenance),
//! and the planner diffs two of them. A read of the kernel gives a
//! [`LiveTable`]: the live state with its connection counters.
//!
//! The IPVS vocabulary beside it: `flags` (service flag names), `tunnel`
//! (a tunnel dest's encapsulation), `traffic` (the kernel's traffic
//! counters), `text` (fast text of numbers and addresses), `addr` (the
//! address classes IPVS cannot use), `fallback` (when a service's fallback
//! dest has weight).
//!
//! Invariant: plain data only. This module knows nothing about config files,
//! etcd or netlink; it does no I/O.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub mod addr;
pub mod fallback;
pub mod flags;
pub mod text;
pub mod traffic;
pub mod tunnel;

/// Highest weight clusterf accepts for a backend and for a merged dest.
///
/// The kernel stores weights as `i32`, but `ipvsadm` rejects anything above
/// 65535, and clusterf's `--output ipvsadm` must load with `ipvsadm -R`.
pub const MAX_WEIGHT: u32 = 65535;

/// Default weight of a backend that names none, as in the original clusterf.
pub const DEFAULT_WEIGHT: u32 = 10;

/// Default scheduler of a service that names none.
pub const DEFAULT_SCHEDULER: &str = "wlc";

/// IP address family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }

    /// Host prefix length: 32 or 128.
    pub fn max_prefix_len(self) -> u8 {
        match self {
            Family::Ipv4 => 32,
            Family::Ipv6 => 128,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        })
    }
}

/// Transport protocol of an address-based virtual service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// IPVS forwarding method of a dest.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// NAT (`ipvsadm -m`).
    Masq,
    /// Direct routing (`ipvsadm -g`).
    Droute,
    /// Tunnelling (`ipvsadm -i`): IP-in-IP, GUE or GRE.
    Tunnel,
}

impl Method {
    pub const ALL: [Method; 3] = [Method::Masq, Method::Droute, Method::Tunnel];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Masq => "masq",
            Method::Droute => "droute",
            Method::Tunnel => "tunnel",
        }
    }

    /// Whether the dest port is free to differ from the service port. Direct
    /// routing and tunnelling keep the packet's destination port.
    pub fn rewrites_port(self) -> bool {
        matches!(self, Method::Masq)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "masq" => Ok(Method::Masq),
            "droute" => Ok(Method::Droute),
            "tunnel" => Ok(Method::Tunnel),
            _ => Err(format!(
                "unknown forwarding method {s:?}, expected one of masq, droute, tunnel"
            )),
        }
    }
}

/// The kernel's schedulers (`net/netfilter/ipvs/ip_vs_*.c`), for validation.
pub const SCHEDULERS: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos",
];

/// Identity of a virtual service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceKey {
    Addr {
        protocol: Protocol,
        addr: SocketAddr,
    },
    Fwmark {
        family: Family,
        mark: u32,
    },
}

impl ServiceKey {
    pub fn addr(protocol: Protocol, ip: IpAddr, port: u16) -> ServiceKey {
        ServiceKey::Addr {
            protocol,
            addr: SocketAddr::new(ip, port),
        }
    }

    pub fn family(&self) -> Family {
        match self {
            ServiceKey::Addr { addr, .. } => Family::of(&addr.ip()),
            ServiceKey::Fwmark { family, .. } => *family,
        }
    }

    /// The service's own port, 0 for fwmark services.
    pub fn port(&self) -> u16 {
        match self {
            ServiceKey::Addr { addr, .. } => addr.port(),
            ServiceKey::Fwmark { .. } => 0,
        }
    }
}

/// `tcp://10.0.0.1:80`, `udp://[2001:db8::1]:53`, `fwmark://42`
/// (`fwmark6://42` for an IPv6 fwmark service).
impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Addr { protocol, addr } => write!(f, "{protocol}://{addr}"),
            ServiceKey::Fwmark {
                family: Family::Ipv4,
                mark,
            } => write!(f, "fwmark://{mark}"),
            ServiceKey::Fwmark {
                family: Family::Ipv6,
                mark,
            } => write!(f, "fwmark6://{mark}"),
        }
    }
}

impl FromStr for ServiceKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| format!("invalid service {s:?}: expected PROTO://ADDR:PORT"))?;
        let fwmark = |family| {
            rest.parse::<u32>()
                .map(|mark| ServiceKey::Fwmark { family, mark })
                .map_err(|_| format!("invalid fwmark in {s:?}"))
        };
        let protocol = match scheme {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "sctp" => Protocol::Sctp,
            "fwmark" => return fwmark(Family::Ipv4),
            "fwmark6" => return fwmark(Family::Ipv6),
            _ => return Err(format!("invalid service {s:?}: unknown scheme {scheme:?}")),
        };
        let addr = rest
            .parse::<SocketAddr>()
            .map_err(|_| format!("invalid service {s:?}: bad address"))?;
        Ok(ServiceKey::Addr { protocol, addr })
    }
}

impl Serialize for ServiceKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ServiceKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Attributes of a virtual service other than its key and dests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAttrs {
    pub scheduler: String,
    /// Persistence timeout in seconds; `None` when not persistent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<u32>,
    /// Persistence netmask as a prefix length; `None` means the host mask
    /// (/32 or /128).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netmask: Option<u8>,
    /// Flags other than persistence (`ops`, scheduler flags), by name, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
}

impl ServiceAttrs {
    pub fn with_scheduler(scheduler: impl Into<String>) -> Self {
        ServiceAttrs {
            scheduler: scheduler.into(),
            persistence: None,
            netmask: None,
            flags: Vec::new(),
        }
    }
}

/// Attributes of a dest other than its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestAttrs {
    pub method: Method,
    pub weight: u32,
    /// Upper connection threshold; 0 means none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub upper_threshold: u32,
    /// Lower connection threshold; 0 means none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lower_threshold: u32,
    /// A tunnel dest's encapsulation; ipip (not serialized) for the other
    /// methods.
    #[serde(default, skip_serializing_if = "is_ipip")]
    pub tunnel: tunnel::Tunnel,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_ipip(t: &tunnel::Tunnel) -> bool {
    *t == tunnel::Tunnel::IPIP
}

impl DestAttrs {
    pub fn new(method: Method, weight: u32) -> Self {
        DestAttrs {
            method,
            weight,
            upper_threshold: 0,
            lower_threshold: 0,
            tunnel: tunnel::Tunnel::IPIP,
        }
    }

    /// The method with a tunnel's encapsulation unless it is ipip:
    /// `masq`, `tunnel`, `tunnel gue port 6080`.
    pub fn method_text(&self) -> String {
        if self.tunnel == tunnel::Tunnel::IPIP {
            self.method.as_str().to_string()
        } else {
            format!("{} {}", self.method, self.tunnel)
        }
    }
}

/// Why a dest exists: one backend's contribution to it (the backend, the
/// file or etcd key that defined it, its weight, the route that placed it).
/// Compared, ordered and serialized by its text, as if its fields were
/// strings: the source's sharing is not part of its value.
#[derive(Clone)]
pub struct Provenance {
    /// Backend name, e.g. `test3-1`. (Boxed, not a `String`: 8 bytes less;
    /// the compiled state keeps one per dest.)
    pub backend: Box<str>,
    /// File path relative to the config root, or overlay key: read it
    /// with [`Provenance::source`].
    pub source: SourcePath,
    /// The backend's own weight before merging.
    pub weight: u32,
    /// The route that decided the method or gateway, if any (shared by
    /// the dests it placed).
    pub route: Option<RouteName>,
    /// The service's fallback dest (`fallback:`), not a backend: `weight`
    /// is what it gets when no other dest has weight ([`fallback`]).
    pub fallback: bool,
}

/// A route's name, shared by the provenances of the dests it placed.
/// Behind a thin pointer: 8 bytes in every provenance where an `Arc<str>`
/// takes 16, and a provenance 56 bytes instead of 64 (issue 15).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[expect(clippy::rc_buffer, reason = "a thin pointer on purpose")]
pub struct RouteName(Arc<String>);

impl RouteName {
    /// Whether both are the one shared name.
    pub fn ptr_eq(a: &RouteName, b: &RouteName) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl std::ops::Deref for RouteName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RouteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

impl fmt::Debug for RouteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl From<String> for RouteName {
    fn from(s: String) -> RouteName {
        RouteName(Arc::new(s))
    }
}

impl From<&str> for RouteName {
    fn from(s: &str) -> RouteName {
        RouteName(Arc::new(s.to_string()))
    }
}

/// A provenance's file or key, shared: a source ending in the backend's
/// name (`services/s1.yaml#backends.b4`, an etcd config or overlay key
/// `overlay:services/s1/backends/b4`) is held as the prefix, which the
/// backends of a file or service share. (One string a dest was a fifth of
/// the compiled state's size, issue 15.)
#[derive(Clone)]
pub enum SourcePath {
    /// The whole path or key.
    Whole(Arc<str>),
    /// A prefix, to which the backend's name is appended.
    Keyed(Arc<str>),
}

impl From<&str> for SourcePath {
    fn from(s: &str) -> Self {
        SourcePath::Whole(s.into())
    }
}

impl From<String> for SourcePath {
    fn from(s: String) -> Self {
        SourcePath::Whole(s.into())
    }
}

impl Provenance {
    /// The file path or key, in two parts to be read one after the other
    /// (the second is empty unless the key is held as a prefix).
    pub fn source_parts(&self) -> (&str, &str) {
        match &self.source {
            SourcePath::Whole(s) => (s, ""),
            SourcePath::Keyed(prefix) => (prefix, &self.backend),
        }
    }

    /// The file path relative to the config root, or the overlay key.
    pub fn source(&self) -> std::borrow::Cow<'_, str> {
        match self.source_parts() {
            (s, "") => s.into(),
            (a, b) => [a, b].concat().into(),
        }
    }

    /// The fields compared and ordered, in declaration order.
    fn key(&self) -> (&str, impl Iterator<Item = u8> + '_, u32, Option<&str>, bool) {
        let (a, b) = self.source_parts();
        (
            &self.backend,
            a.bytes().chain(b.bytes()),
            self.weight,
            self.route.as_deref(),
            self.fallback,
        )
    }
}

impl PartialEq for Provenance {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}

impl Eq for Provenance {}

impl PartialOrd for Provenance {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Provenance {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let (b1, s1, w1, r1, f1) = self.key();
        let (b2, s2, w2, r2, f2) = other.key();
        b1.cmp(b2)
            .then_with(|| s1.cmp(s2))
            .then_with(|| (w1, r1, f1).cmp(&(w2, r2, f2)))
    }
}

impl fmt::Debug for Provenance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provenance")
            .field("backend", &self.backend)
            .field("source", &self.source())
            .field("weight", &self.weight)
            .field("route", &self.route)
            .field("fallback", &self.fallback)
            .finish()
    }
}

/// As if derived from the fields as strings: `route` and `fallback` left
/// out when unset.
impl Serialize for Provenance {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let len = 3 + usize::from(self.route.is_some()) + usize::from(self.fallback);
        let mut st = s.serialize_struct("Provenance", len)?;
        st.serialize_field("backend", &self.backend)?;
        st.serialize_field("source", &self.source())?;
        st.serialize_field("weight", &self.weight)?;
        if let Some(route) = &self.route {
            st.serialize_field("route", &**route)?;
        } else {
            st.skip_field("route")?;
        }
        if self.fallback {
            st.serialize_field("fallback", &true)?;
        } else {
            st.skip_field("fallback")?;
        }
        st.end()
    }
}

/// [`Provenance`] as serialized.
#[derive(Deserialize)]
#[serde(rename = "Provenance")]
struct ProvenanceText {
    backend: Box<str>,
    source: String,
    weight: u32,
    #[serde(default)]
    route: Option<Box<str>>,
    #[serde(default)]
    fallback: bool,
}

impl<'de> Deserialize<'de> for Provenance {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let p = ProvenanceText::deserialize(d)?;
        Ok(Provenance {
            backend: p.backend,
            source: p.source.into(),
            weight: p.weight,
            route: p.route.map(|r| RouteName::from(String::from(r))),
            fallback: p.fallback,
        })
    }
}

/// A dest, with the backends that produced it (empty for live state).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dest {
    #[serde(flatten)]
    pub attrs: DestAttrs,
    /// Serialized as `origins`, its name in the JSON output. A boxed slice,
    /// not a `Vec`: 8 bytes less a dest, and no spare capacity.
    #[serde(rename = "origins", default, skip_serializing_if = "no_origins")]
    pub provenance: Box<[Provenance]>,
}

/// Why health checks changed a dest (`http 503, 3 of 3 failed since
/// 12:00:01`), in [`Service::health`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HealthNote(Box<str>);

impl std::ops::Deref for HealthNote {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<String> for HealthNote {
    fn from(s: String) -> HealthNote {
        HealthNote(s.into())
    }
}

impl From<&str> for HealthNote {
    fn from(s: &str) -> HealthNote {
        HealthNote(s.into())
    }
}

fn no_origins(p: &[Provenance]) -> bool {
    p.is_empty()
}

/// Connection counters reported by the kernel for a dest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestStats {
    pub active_conns: u32,
    pub inactive_conns: u32,
    pub persist_conns: u32,
}

/// A virtual service and its dests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    #[serde(flatten)]
    pub attrs: ServiceAttrs,
    /// The config service name(s) that defined it (empty for live state).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    pub dests: BTreeMap<SocketAddr, Dest>,
    /// Why health checks changed a dest, by the dest's address; desired
    /// state only. Invariant: every key is one of `dests`. Out of [`Dest`],
    /// as it is rare: the planner's walk over the dests is memory-bound.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub health: BTreeMap<SocketAddr, HealthNote>,
}

impl Service {
    pub fn new(attrs: ServiceAttrs) -> Self {
        Service {
            attrs,
            names: Vec::new(),
            dests: BTreeMap::new(),
            health: BTreeMap::new(),
        }
    }
}

/// A whole IPVS table: desired (with provenance) or live (without).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpvsState {
    pub services: BTreeMap<ServiceKey, Service>,
}

impl IpvsState {
    pub fn dest_count(&self) -> usize {
        self.services.values().map(|s| s.dests.len()).sum()
    }
}

/// Connection counters by service and dest, as the kernel reports them.
pub type LiveStats = BTreeMap<ServiceKey, BTreeMap<SocketAddr, DestStats>>;

/// The kernel's IPVS table as read: the state and the connection counters
/// (`clusterf show`, the one-shot `apply`, the in-memory kernel's table).
/// The daemon reads the kernel into `reconcile::live::Table` instead,
/// about half the size, and plans against that.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiveTable {
    pub state: IpvsState,
    /// Empty when the table was read without counters.
    pub stats: LiveStats,
}

/// `add service tcp://10.0.0.1:80`, `delete dest 10.1.0.1:8080 of ...`.
impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = match self {
            Op::AddService { .. } | Op::AddDest { .. } => "add",
            Op::EditService { .. } | Op::EditDest { .. } => "edit",
            Op::DelService { .. } | Op::DelDest { .. } => "delete",
        };
        write!(f, "{verb} {}", self.object())
    }
}

/// One change to the kernel table: what a plan is made of and what the
/// kernel client executes. Carries everything needed; execution decides
/// nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    AddService {
        service: ServiceKey,
        attrs: ServiceAttrs,
    },
    EditService {
        service: ServiceKey,
        attrs: ServiceAttrs,
    },
    /// Deletes the service and, in the kernel, all its dests.
    DelService { service: ServiceKey },
    AddDest {
        service: ServiceKey,
        dest: SocketAddr,
        attrs: DestAttrs,
    },
    EditDest {
        service: ServiceKey,
        dest: SocketAddr,
        attrs: DestAttrs,
    },
    DelDest {
        service: ServiceKey,
        dest: SocketAddr,
    },
}

impl Op {
    pub fn service(&self) -> &ServiceKey {
        match self {
            Op::AddService { service, .. }
            | Op::EditService { service, .. }
            | Op::DelService { service }
            | Op::AddDest { service, .. }
            | Op::EditDest { service, .. }
            | Op::DelDest { service, .. } => service,
        }
    }

    /// The object the op acts on: `service tcp://10.0.0.1:80` or
    /// `dest 10.1.0.1:8080 of tcp://10.0.0.1:80`.
    pub fn object(&self) -> String {
        match self {
            Op::AddService { service, .. }
            | Op::EditService { service, .. }
            | Op::DelService { service } => format!("service {service}"),
            Op::AddDest { service, dest, .. }
            | Op::EditDest { service, dest, .. }
            | Op::DelDest { service, dest } => format!("dest {dest} of {service}"),
        }
    }

    /// Applies the op to an in-memory table, as the kernel would; an op the
    /// kernel would refuse (adding what exists, editing or deleting what does
    /// not, a dest of an address class the kernel refuses: `addr`) is an
    /// error.
    pub fn apply_to(&self, state: &mut IpvsState) -> Result<(), String> {
        let missing_service = |s: &ServiceKey| format!("service {s}: no such service");
        match self {
            Op::AddService { service, attrs } => {
                if state.services.contains_key(service) {
                    return Err(format!("service {service}: already exists"));
                }
                state.services.insert(*service, Service::new(attrs.clone()));
            }
            Op::EditService { service, attrs } => {
                let svc = state
                    .services
                    .get_mut(service)
                    .ok_or_else(|| missing_service(service))?;
                svc.attrs = attrs.clone();
            }
            Op::DelService { service } => {
                state
                    .services
                    .remove(service)
                    .ok_or_else(|| missing_service(service))?;
            }
            Op::AddDest {
                service,
                dest,
                attrs,
            } => {
                let svc = state
                    .services
                    .get_mut(service)
                    .ok_or_else(|| missing_service(service))?;
                if svc.dests.contains_key(dest) {
                    return Err(format!("dest {dest} of {service}: already exists"));
                }
                if let Some(class) = addr::dest_refusal(&dest.ip()) {
                    return Err(format!(
                        "dest {dest} of {service}: invalid argument ({} is {class})",
                        dest.ip()
                    ));
                }
                svc.dests.insert(
                    *dest,
                    Dest {
                        attrs: *attrs,
                        provenance: Box::default(),
                    },
                );
            }
            Op::EditDest {
                service,
                dest,
                attrs,
            } => {
                let svc = state
                    .services
                    .get_mut(service)
                    .ok_or_else(|| missing_service(service))?;
                let d = svc
                    .dests
                    .get_mut(dest)
                    .ok_or_else(|| format!("dest {dest} of {service}: no such dest"))?;
                d.attrs = *attrs;
            }
            Op::DelDest { service, dest } => {
                let svc = state
                    .services
                    .get_mut(service)
                    .ok_or_else(|| missing_service(service))?;
                svc.dests
                    .remove(dest)
                    .ok_or_else(|| format!("dest {dest} of {service}: no such dest"))?;
                svc.health.remove(dest);
            }
        }
        Ok(())
    }
}

/// Formats a dest address as `10.0.0.1:80` or `[2001:db8::1]:80`.
pub fn fmt_dest(addr: &SocketAddr) -> String {
    addr.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provenance_fits_in_56_bytes() {
        // The compiled state holds one a dest, each in its own allocation:
        // past 56 bytes it takes mimalloc's next size, 64 (issue 15).
        assert!(
            std::mem::size_of::<Provenance>() <= 56,
            "{}",
            std::mem::size_of::<Provenance>()
        );
    }

    /// A key held as its prefix is the same provenance as the whole key:
    /// equal, ordered as the text, serialized and read back the same.
    #[test]
    fn a_keyed_source_is_its_whole_text() {
        let p = |backend: &str, source: SourcePath| Provenance {
            backend: backend.into(),
            source,
            weight: 3,
            route: Some("r".into()),
            fallback: false,
        };
        let whole = p("b4", "overlay:services/s1/backends/b4".into());
        let keyed = p(
            "b4",
            SourcePath::Keyed("overlay:services/s1/backends/".into()),
        );
        assert_eq!(keyed.source(), "overlay:services/s1/backends/b4");
        assert_eq!(
            keyed.source_parts(),
            ("overlay:services/s1/backends/", "b4")
        );
        assert_eq!(
            whole.source_parts(),
            ("overlay:services/s1/backends/b4", "")
        );
        assert_eq!(keyed, whole);
        assert_eq!(format!("{keyed:?}"), format!("{whole:?}"));
        let json = serde_json::to_string(&keyed).unwrap();
        assert_eq!(json, serde_json::to_string(&whole).unwrap());
        assert_eq!(
            json,
            r#"{"backend":"b4","source":"overlay:services/s1/backends/b4","weight":3,"route":"r"}"#
        );
        assert_eq!(serde_json::from_str::<Provenance>(&json).unwrap(), keyed);
        // Ordered by the text: `.../b4` after `.../b3` (whole) and before
        // `.../b40`, whichever way each is held.
        let b3 = p("b4", "overlay:services/s1/backends/b3".into());
        let b40 = p("b4", "overlay:services/s1/backends/b40".into());
        assert!(b3 < keyed && keyed < b40);
        assert!(p("b3", SourcePath::Keyed("z/".into())) < whole);
        let mut fb = whole.clone();
        fb.fallback = true;
        assert_eq!(
            serde_json::to_string(&fb).unwrap(),
            r#"{"backend":"b4","source":"overlay:services/s1/backends/b4","weight":3,"route":"r","fallback":true}"#
        );
    }

    #[test]
    fn service_key_round_trips_through_display() {
        for s in [
            "tcp://10.0.0.1:80",
            "udp://[2001:db8::1]:53",
            "fwmark://42",
            "fwmark6://7",
            "sctp://10.0.0.2:9",
        ] {
            let key: ServiceKey = s.parse().unwrap();
            assert_eq!(key.to_string(), s);
        }
        assert!("tcp://10.0.0.1".parse::<ServiceKey>().is_err());
        assert!("icmp://10.0.0.1:1".parse::<ServiceKey>().is_err());
        assert!("fwmark://x".parse::<ServiceKey>().is_err());
    }

    #[test]
    fn service_keys_sort_by_protocol_then_address() {
        let a: ServiceKey = "tcp://10.0.0.2:80".parse().unwrap();
        let b: ServiceKey = "tcp://10.0.0.10:80".parse().unwrap();
        let c: ServiceKey = "udp://10.0.0.1:53".parse().unwrap();
        let mut v = vec![c, b, a];
        v.sort();
        assert_eq!(v, vec![a, b, c]);
    }
}
