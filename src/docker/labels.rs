//! The translation of container facts into service backends: the labels of
//! the original `clusterf-docker`, the container's state and addresses, and
//! the publisher's options decide which backends a container is.
//!
//! Labels:
//! - `net.qmsk.clusterf.service=$service` (or several, space-separated)
//! - `net.qmsk.clusterf.backend.tcp=$port`, `net.qmsk.clusterf.backend.udp=$port`
//! - `net.qmsk.clusterf.backend:$service.tcp=$port` / `.udp`: per service
//! - `net.qmsk.clusterf.backend.weight=$n` and `backend:$service.weight=$n`
//!   (new; default 10)
//!
//! A container is all or nothing: a malformed label (bad service name, port
//! or weight, a per-service label for a service it does not list) or no
//! usable address skips every backend of the container, with warnings. A
//! port the container does not EXPOSE (or, with `--published`, does not
//! publish) is skipped with a warning, as in the original.
//!
//! Invariant: pure. Facts in, backends and warnings out; no Docker client,
//! no etcd, no clock, never a panic on any label.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::model::{DEFAULT_WEIGHT, MAX_WEIGHT};

/// Every clusterf label starts with this.
pub const LABEL_PREFIX: &str = "net.qmsk.clusterf.";
/// The services a container is a backend of.
pub const SERVICE_LABEL: &str = "net.qmsk.clusterf.service";
/// Generic backend labels: `backend.tcp`, `backend.udp`, `backend.weight`.
pub const BACKEND_LABEL: &str = "net.qmsk.clusterf.backend.";
/// Per-service backend labels: `backend:$service.tcp` and so on.
pub const BACKEND_SERVICE_LABEL: &str = "net.qmsk.clusterf.backend:";

/// Transport protocol of a container port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A container port: `8080/tcp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port {
    pub proto: Proto,
    pub port: u16,
}

impl Port {
    pub fn tcp(port: u16) -> Port {
        Port {
            proto: Proto::Tcp,
            port,
        }
    }

    pub fn udp(port: u16) -> Port {
        Port {
            proto: Proto::Udp,
            port,
        }
    }

    /// Parses Docker's `8080/tcp` (a bare `8080` is tcp); `None` for other
    /// protocols (sctp) and malformed text.
    pub fn parse_docker(s: &str) -> Option<Port> {
        let (port, proto) = s.split_once('/').unwrap_or((s, "tcp"));
        let proto = match proto {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            _ => return None,
        };
        let port = port.parse::<u16>().ok().filter(|p| *p != 0)?;
        Some(Port { proto, port })
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.port, self.proto)
    }
}

/// The addresses of a container on one network.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkAddrs {
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
}

/// A published port: where on the host a container port is reachable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The host address it is bound to; `None` or unspecified: all.
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
}

/// The container's lifecycle state, as the Engine reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
    Other(String),
}

impl State {
    pub fn parse(s: &str) -> State {
        match s {
            "created" => State::Created,
            "running" => State::Running,
            "paused" => State::Paused,
            "restarting" => State::Restarting,
            "removing" => State::Removing,
            "exited" => State::Exited,
            "dead" => State::Dead,
            other => State::Other(other.to_string()),
        }
    }
}

/// The container's health check status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    /// No health check.
    None,
    Starting,
    Healthy,
    Unhealthy,
}

impl Health {
    pub fn parse(s: &str) -> Health {
        match s {
            "starting" => Health::Starting,
            "healthy" => Health::Healthy,
            "unhealthy" => Health::Unhealthy,
            _ => Health::None,
        }
    }
}

/// What the publisher knows about one container (unvalidated: labels are
/// whatever the container's creator wrote).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Container {
    /// The full container id: the backend name, as in the original.
    pub id: String,
    /// The container name, without Docker's leading `/`.
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Ports in the image's EXPOSE or `--expose`.
    pub exposed: BTreeSet<Port>,
    /// Network name -> the container's addresses on it.
    pub networks: BTreeMap<String, NetworkAddrs>,
    /// Published ports (`-p`) -> their host bindings.
    pub published: BTreeMap<Port, Vec<Binding>>,
    pub state: State,
    pub health: Health,
    /// A stop is under way (the Engine sent the stop signal; the container
    /// still runs): drain.
    pub stopping: bool,
    /// The signal `docker stop` sends (`StopSignal`), if configured.
    pub stop_signal: Option<String>,
    /// How long `docker stop` waits before it kills (`StopTimeout`, in
    /// seconds), if configured.
    pub stop_timeout: Option<u64>,
}

impl Container {
    /// A running container without labels, ports or networks (for tests and
    /// as a starting point).
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> Container {
        Container {
            id: id.into(),
            name: name.into(),
            labels: BTreeMap::new(),
            exposed: BTreeSet::new(),
            networks: BTreeMap::new(),
            published: BTreeMap::new(),
            state: State::Running,
            health: Health::None,
            stopping: false,
            stop_signal: None,
            stop_timeout: None,
        }
    }

    /// Whether any label is a clusterf label (only those containers are
    /// inspected and translated).
    pub fn has_clusterf_labels(&self) -> bool {
        has_clusterf_labels(&self.labels)
    }

    /// `name (0123456789ab)`: how messages name the container.
    pub fn display_name(&self) -> String {
        let short: String = self.id.chars().take(12).collect();
        if self.name.is_empty() {
            short
        } else {
            format!("{} ({short})", self.name)
        }
    }

    fn serving(&self) -> bool {
        self.state == State::Running
            && !self.stopping
            && matches!(self.health, Health::None | Health::Healthy)
    }
}

/// Whether any of `labels` is a clusterf label.
pub fn has_clusterf_labels(labels: &BTreeMap<String, String>) -> bool {
    labels.keys().any(|k| k.starts_with(LABEL_PREFIX))
}

/// Where backend addresses and ports come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The container's own address (on `--network`) and its container port.
    Container,
    /// The host's address (`--host-address`) and the published host port.
    Published {
        ipv4: Option<Ipv4Addr>,
        ipv6: Option<Ipv6Addr>,
    },
}

/// The publisher's translation options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The network whose address is used when a container has several.
    pub network: Option<String>,
    pub mode: Mode,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            network: None,
            mode: Mode::Container,
        }
    }
}

/// A backend value in the original JSON format:
/// `{"ipv4": "10.0.0.1", "ipv6": "2001:db8::1", "tcp": 80, "udp": 53, "weight": 10}`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BackendValue {
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    pub tcp: Option<u16>,
    pub udp: Option<u16>,
    pub weight: u32,
}

impl BackendValue {
    /// The JSON text written to etcd: keys in a fixed order, absent fields
    /// left out, the weight always given.
    pub fn to_json(&self) -> String {
        let mut obj = serde_json::Map::new();
        if let Some(a) = self.ipv4 {
            obj.insert("ipv4".into(), a.to_string().into());
        }
        if let Some(a) = self.ipv6 {
            obj.insert("ipv6".into(), a.to_string().into());
        }
        if let Some(p) = self.tcp {
            obj.insert("tcp".into(), p.into());
        }
        if let Some(p) = self.udp {
            obj.insert("udp".into(), p.into());
        }
        obj.insert("weight".into(), self.weight.into());
        serde_json::Value::Object(obj).to_string()
    }

    /// Reads a value written by [`BackendValue::to_json`] (or by hand in the
    /// same format); `None` if it is not one.
    pub fn from_json(text: &str) -> Option<BackendValue> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        let obj = v.as_object()?;
        let port = |k: &str| -> Option<Option<u16>> {
            match obj.get(k) {
                None => Some(None),
                Some(v) => v.as_u64().and_then(|p| u16::try_from(p).ok()).map(Some),
            }
        };
        let addr = |k: &str| -> Option<Option<&str>> {
            match obj.get(k) {
                None => Some(None),
                Some(v) => v.as_str().map(Some),
            }
        };
        Some(BackendValue {
            ipv4: match addr("ipv4")? {
                None => None,
                Some(s) => Some(s.parse().ok()?),
            },
            ipv6: match addr("ipv6")? {
                None => None,
                Some(s) => Some(s.parse().ok()?),
            },
            tcp: port("tcp")?,
            udp: port("udp")?,
            weight: match obj.get("weight") {
                None => DEFAULT_WEIGHT,
                Some(w) => u32::try_from(w.as_u64()?).ok()?,
            },
        })
    }
}

/// A problem with a container's labels or facts.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Warning {
    /// How the container is named: `name (0123456789ab)`.
    pub container: String,
    /// The label (`key=value`) the warning is about, if one.
    pub label: Option<String>,
    pub message: String,
}

/// `container web (0123456789ab): label net.qmsk.clusterf.backend.tcp=http: ...`
impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "container {}: ", self.container)?;
        if let Some(label) = &self.label {
            write!(f, "label {label}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// The backends of a set of containers: (service, backend name) -> value.
pub type Backends = BTreeMap<(String, String), BackendValue>;

/// What [`translate`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Translation {
    pub backends: Backends,
    pub warnings: Vec<Warning>,
}

/// Translates every container. `previous` holds the backends published
/// before (by this publisher, possibly in an earlier run): a container that
/// no longer runs has lost its address, so its earlier backends are kept
/// with weight 0 (drain) until it is removed.
pub fn translate(containers: &[Container], opts: &Options, previous: &Backends) -> Translation {
    let mut out = Translation::default();
    for c in containers {
        let one = translate_one(c, opts, previous);
        out.warnings.extend(one.warnings);
        out.backends.extend(one.backends);
    }
    out
}

/// Translates one container: all of its backends or none.
pub fn translate_one(c: &Container, opts: &Options, previous: &Backends) -> Translation {
    let mut w = Warner {
        container: c.display_name(),
        warnings: Vec::new(),
        fatal: false,
    };
    let backends = backends_of(c, opts, previous, &mut w);
    Translation {
        backends,
        warnings: w.warnings,
    }
}

/// The container's backends: none when its labels are not usable, the
/// drained previous ones when it no longer runs, else one per service it
/// has a port for.
fn backends_of(c: &Container, opts: &Options, previous: &Backends, w: &mut Warner) -> Backends {
    let Some(labels) = usable_labels(c, w) else {
        return Backends::new();
    };
    if c.state != State::Running {
        return drained_previous(c, &labels, previous);
    }
    let Some(addrs) = backend_addrs(c, opts, w) else {
        w.skip();
        return Backends::new();
    };
    let mut out = Backends::new();
    for svc in &labels.services {
        if let Some(value) = service_backend(c, opts, &labels, svc, &addrs, w) {
            out.insert((svc.clone(), c.id.clone()), value);
        }
    }
    out
}

/// The labels, if they make the container a backend and none of them (nor
/// its id) is malformed.
fn usable_labels(c: &Container, w: &mut Warner) -> Option<Labels> {
    let labels = parse_labels(c, w)?;
    if !valid_backend_name(&c.id) {
        w.fatal(
            None,
            format!("container id {:?} is not a valid backend name", c.id),
        );
    }
    if w.fatal {
        w.skip();
        return None;
    }
    Some(labels)
}

/// A container that no longer runs has no address any more: what was
/// published for it is kept, drained.
fn drained_previous(c: &Container, labels: &Labels, previous: &Backends) -> Backends {
    let mut out = Backends::new();
    for svc in &labels.services {
        let key = (svc.clone(), c.id.clone());
        if let Some(prev) = previous.get(&key) {
            let mut v = prev.clone();
            v.weight = 0;
            out.insert(key, v);
        }
    }
    out
}

/// The addresses backends get: the container's, or the host's.
fn backend_addrs(c: &Container, opts: &Options, w: &mut Warner) -> Option<NetworkAddrs> {
    match &opts.mode {
        Mode::Container => container_addrs(c, opts, w),
        Mode::Published { ipv4, ipv6 } => Some(NetworkAddrs {
            ipv4: *ipv4,
            ipv6: *ipv6,
        }),
    }
}

/// The backend of one service: its ports, from the per-service labels or
/// the generic ones, and its weight; `None` without a usable port.
fn service_backend(
    c: &Container,
    opts: &Options,
    labels: &Labels,
    svc: &str,
    addrs: &NetworkAddrs,
    w: &mut Warner,
) -> Option<BackendValue> {
    let mut value = BackendValue {
        ipv4: addrs.ipv4,
        ipv6: addrs.ipv6,
        tcp: None,
        udp: None,
        weight: 0,
    };
    let per = labels.per_service.get(svc);
    for proto in [Proto::Tcp, Proto::Udp] {
        let chosen = per
            .and_then(|p| p.port(proto))
            .or_else(|| labels.generic.port(proto));
        let Some((label, port)) = chosen else {
            continue;
        };
        let port_number = backend_port(c, opts, svc, label, Port { proto, port }, w);
        match proto {
            Proto::Tcp => value.tcp = port_number,
            Proto::Udp => value.udp = port_number,
        }
    }
    if value.tcp.is_none() && value.udp.is_none() {
        if labels.generic.is_empty() && per.is_none_or(|p| p.is_empty()) {
            w.warn(
                None,
                format!("service {svc}: no port: set {BACKEND_LABEL}tcp or {BACKEND_LABEL}udp"),
            );
        }
        return None;
    }
    let weight = per
        .and_then(|p| p.weight)
        .or(labels.generic.weight)
        .unwrap_or(DEFAULT_WEIGHT);
    value.weight = if c.serving() { weight } else { 0 };
    Some(value)
}

/// The port number a labelled container port is reached at: itself, or
/// the host port it is published on; `None` (with a warning) when it is
/// not exposed or not published.
fn backend_port(
    c: &Container,
    opts: &Options,
    svc: &str,
    label: String,
    port: Port,
    w: &mut Warner,
) -> Option<u16> {
    if !c.exposed.contains(&port) {
        w.warn(
            Some(label),
            format!("service {svc}: port {port} is not exposed by the container: skipped"),
        );
        return None;
    }
    match &opts.mode {
        Mode::Container => Some(port.port),
        Mode::Published { ipv4, ipv6 } => {
            let host = host_port(c, port, *ipv4, *ipv6);
            if host.is_none() {
                w.warn(
                    Some(label),
                    format!(
                        "service {svc}: port {port} is not published on the host address: skipped"
                    ),
                );
            }
            host
        }
    }
}

/// The container's addresses on the network `--network` names, or on its
/// only network.
fn container_addrs(c: &Container, opts: &Options, w: &mut Warner) -> Option<NetworkAddrs> {
    let attached = || c.networks.keys().cloned().collect::<Vec<_>>().join(", ");
    let (name, addrs) = match &opts.network {
        Some(net) => match c.networks.get(net) {
            Some(a) => (net.as_str(), a),
            None => {
                w.fatal(
                    None,
                    format!("not attached to network {net} (attached: {})", attached()),
                );
                return None;
            }
        },
        None => {
            let mut it = c.networks.iter();
            match (it.next(), it.next()) {
                (None, _) => {
                    w.fatal(None, "attached to no network");
                    return None;
                }
                (Some((n, a)), None) => (n.as_str(), a),
                (Some(_), Some(_)) => {
                    w.fatal(
                        None,
                        format!(
                            "attached to several networks ({}): choose one with --network",
                            attached()
                        ),
                    );
                    return None;
                }
            }
        }
    };
    if addrs.ipv4.is_none() && addrs.ipv6.is_none() {
        w.fatal(None, format!("has no address on network {name}"));
        return None;
    }
    Some(addrs.clone())
}

/// The host port `port` is published on, for the given host addresses.
fn host_port(
    c: &Container,
    port: Port,
    ipv4: Option<Ipv4Addr>,
    ipv6: Option<Ipv6Addr>,
) -> Option<u16> {
    let bindings = c.published.get(&port)?;
    let wanted = |b: &Binding| match b.host_ip {
        None => true,
        Some(ip) if ip.is_unspecified() => true,
        Some(IpAddr::V4(a)) => Some(a) == ipv4,
        Some(IpAddr::V6(a)) => Some(a) == ipv6,
    };
    bindings
        .iter()
        .find(|b| wanted(b) && b.host_port != 0)
        .map(|b| b.host_port)
}

/// Ports and weight from one set of backend labels (generic or per service).
#[derive(Clone, Debug, Default)]
struct PortLabels {
    tcp: Option<(String, u16)>,
    udp: Option<(String, u16)>,
    weight: Option<u32>,
}

impl PortLabels {
    fn port(&self, proto: Proto) -> Option<(String, u16)> {
        match proto {
            Proto::Tcp => self.tcp.clone(),
            Proto::Udp => self.udp.clone(),
        }
    }

    fn is_empty(&self) -> bool {
        self.tcp.is_none() && self.udp.is_none()
    }
}

/// The validated labels of a container.
#[derive(Debug, Default)]
struct Labels {
    /// In the order of the service label, without duplicates.
    services: Vec<String>,
    generic: PortLabels,
    per_service: BTreeMap<String, PortLabels>,
}

/// Reads the clusterf labels; `None`: the container is no backend at all
/// (no service label), with a warning if it has other clusterf labels.
/// Malformed labels mark the container fatal.
fn parse_labels(c: &Container, w: &mut Warner) -> Option<Labels> {
    let mut labels = Labels::default();
    let Some(service_value) = c.labels.get(SERVICE_LABEL) else {
        if c.has_clusterf_labels() {
            w.warn(
                None,
                format!("has clusterf labels but no {SERVICE_LABEL} label: not a backend"),
            );
        }
        return None;
    };
    let service_label = label_text(SERVICE_LABEL, service_value);
    for name in service_value.split_whitespace() {
        if !valid_service_name(name) {
            w.fatal(
                Some(service_label.clone()),
                format!("invalid service name {name:?}: use letters, digits and - _ . @ :"),
            );
        } else if !labels.services.iter().any(|s| s == name) {
            labels.services.push(name.to_string());
        }
    }
    if service_value.split_whitespace().next().is_none() {
        w.fatal(Some(service_label), "names no service");
    }

    for (key, value) in &c.labels {
        if key == SERVICE_LABEL || !key.starts_with(LABEL_PREFIX) {
            continue;
        }
        let text = label_text(key, value);
        let (target, field) = if let Some(field) = key.strip_prefix(BACKEND_LABEL) {
            (&mut labels.generic, field)
        } else if let Some(rest) = key.strip_prefix(BACKEND_SERVICE_LABEL) {
            let Some((svc, field)) = rest.rsplit_once('.') else {
                w.warn(Some(text), "unknown clusterf label: ignored");
                continue;
            };
            if !matches!(field, "tcp" | "udp" | "weight") {
                w.warn(Some(text), "unknown clusterf label: ignored");
                continue;
            }
            if !labels.services.iter().any(|s| s == svc) {
                w.fatal(
                    Some(text),
                    format!("service {svc:?} is not in the {SERVICE_LABEL} label"),
                );
                continue;
            }
            (
                labels.per_service.entry(svc.to_string()).or_default(),
                field,
            )
        } else {
            w.warn(Some(text), "unknown clusterf label: ignored");
            continue;
        };
        match field {
            "tcp" | "udp" => match parse_port(value) {
                Ok(port) => {
                    let slot = if field == "tcp" {
                        &mut target.tcp
                    } else {
                        &mut target.udp
                    };
                    *slot = Some((text, port));
                }
                Err(msg) => w.fatal(Some(text), msg),
            },
            "weight" => match parse_weight(value) {
                Ok(weight) => target.weight = Some(weight),
                Err(msg) => w.fatal(Some(text), msg),
            },
            _ => w.warn(Some(text), "unknown clusterf label: ignored"),
        }
    }
    Some(labels)
}

fn parse_port(value: &str) -> Result<u16, String> {
    match value.parse::<u64>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
        Ok(p) => Err(format!("port {p} out of range 1..65535")),
        Err(_) => Err(format!(
            "invalid port {value:?}: expected a number 1..65535"
        )),
    }
}

fn parse_weight(value: &str) -> Result<u32, String> {
    match value.parse::<u64>() {
        Ok(n) if n <= u64::from(MAX_WEIGHT) => Ok(n as u32),
        Ok(n) => Err(format!("weight {n} out of range 0..{MAX_WEIGHT}")),
        Err(_) => Err(format!(
            "invalid weight {value:?}: expected a number 0..{MAX_WEIGHT}"
        )),
    }
}

/// `key=value`, with a long or multi-line value cut short.
fn label_text(key: &str, value: &str) -> String {
    let mut v: String = value.chars().take(64).collect();
    if v.len() < value.len() {
        v.push_str("...");
    }
    format!("{key}={}", v.escape_debug())
}

/// Service names as the config accepts them (they become etcd key
/// components).
pub fn valid_service_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | ':'))
}

fn valid_backend_name(name: &str) -> bool {
    valid_service_name(name)
}

/// Collects a container's warnings; `fatal` ones skip the whole container.
struct Warner {
    container: String,
    warnings: Vec<Warning>,
    fatal: bool,
}

impl Warner {
    fn warn(&mut self, label: Option<String>, message: impl Into<String>) {
        self.warnings.push(Warning {
            container: self.container.clone(),
            label,
            message: message.into(),
        });
    }

    fn fatal(&mut self, label: Option<String>, message: impl Into<String>) {
        self.fatal = true;
        self.warn(label, message);
    }

    fn skip(&mut self) {
        self.warn(None, "skipped: none of its backends are published");
    }
}

#[cfg(test)]
mod tests;
