//! The config model: services (frontends and static backends), routes and
//! defaults, parsed from a [`Tree`] in either layout and validated.
//!
//! Two layouts, also mixed in one tree:
//! - the original clusterf JSON tree (`services/<svc>/frontend`,
//!   `services/<svc>/backends/<name>`, `routes/<name>`), which is also the
//!   etcd layout, parsed with Go's case-insensitive key matching;
//! - YAML, one file per object (`services/<svc>.yaml`, `routes/<name>.yaml`,
//!   `clusterf.yaml`).
//!
//! Unvalidated input lives in the `Raw*` types (which also generate the
//! published JSON Schemas); validated values in [`Config`], [`Overlay`] and
//! their parts. Every problem is reported, each naming its file and, where
//! the format has one, line and column.
//!
//! Speed: plain files (nearly all of a real repo) are read by small fast
//! readers (`fast_yaml`, `fast_json`); anything they do not take, and any
//! file whose validation reports a problem, is read again by serde-saphyr or
//! serde_json, so every message comes from the full parsers. The fast
//! readers must never take a file that the full parsers read differently
//! (property-tested against them).
//!
//! Invariant: pure. No file system, no network: input is a [`Tree`].
//! This module does not know how services become IPVS state (`compile`).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::diag::{Diagnostics, Pos};
use crate::model::{Family, MAX_WEIGHT, Method, Protocol, SCHEDULERS, ServiceKey};
use crate::tree::Tree;

/// Longest persistence timeout accepted, in seconds (31 days).
pub const MAX_PERSISTENCE: u32 = 31 * 24 * 3600;

// ---------------------------------------------------------------------------
// Validated model

/// Addresses and ports of a frontend or a backend.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoints {
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    pub tcp: Option<u16>,
    pub udp: Option<u16>,
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

    /// The IPVS services a frontend expands to: {IPv4, IPv6} x {TCP, UDP}.
    pub fn service_keys(&self) -> Vec<ServiceKey> {
        let mut keys = Vec::new();
        for protocol in [Protocol::Tcp, Protocol::Udp] {
            for family in [Family::Ipv4, Family::Ipv6] {
                if let (Some(ip), Some(port)) = (self.addr(family), self.port(protocol)) {
                    keys.push(ServiceKey::addr(protocol, ip, port));
                }
            }
        }
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
    pub backends: BTreeMap<String, Backend>,
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

// ---------------------------------------------------------------------------
// Raw YAML types: these generate the published schemas.

/// Addresses and ports of a service frontend.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
// At least one address and one port, and a null one does not count.
#[schemars(extend("anyOf" = [
    {"required": ["ipv4"], "properties": {"ipv4": {"type": "string"}}},
    {"required": ["ipv6"], "properties": {"ipv6": {"type": "string"}}},
]))]
#[schemars(extend("allOf" = [{"anyOf": [
    {"required": ["tcp"], "properties": {"tcp": {"type": "integer"}}},
    {"required": ["udp"], "properties": {"udp": {"type": "integer"}}},
]}]))]
pub struct RawFrontend {
    /// IPv4 virtual address.
    #[schemars(with = "Option<Ipv4Addr>")]
    pub ipv4: Option<Spanned<RawStr>>,
    /// IPv6 virtual address.
    #[schemars(with = "Option<Ipv6Addr>")]
    pub ipv6: Option<Spanned<RawStr>>,
    /// TCP port.
    #[schemars(with = "Option<u16>", range(min = 1, max = 65535))]
    pub tcp: Option<Spanned<RawInt>>,
    /// UDP port.
    #[schemars(with = "Option<u16>", range(min = 1, max = 65535))]
    pub udp: Option<Spanned<RawInt>>,
}

/// A static backend of a service.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("anyOf" = [
    {"required": ["ipv4"], "properties": {"ipv4": {"type": "string"}}},
    {"required": ["ipv6"], "properties": {"ipv6": {"type": "string"}}},
]))]
pub struct RawBackend {
    /// IPv4 address of the backend.
    #[schemars(with = "Option<Ipv4Addr>")]
    pub ipv4: Option<Spanned<RawStr>>,
    /// IPv6 address of the backend.
    #[schemars(with = "Option<Ipv6Addr>")]
    pub ipv6: Option<Spanned<RawStr>>,
    /// TCP port of the backend (masq only; droute and tunnel use the service port).
    #[schemars(with = "Option<u16>", range(min = 1, max = 65535))]
    pub tcp: Option<Spanned<RawInt>>,
    /// UDP port of the backend (masq only; droute and tunnel use the service port).
    #[schemars(with = "Option<u16>", range(min = 1, max = 65535))]
    pub udp: Option<Spanned<RawInt>>,
    /// Relative weight, 0..65535 (default 10); 0 drains: no new connections.
    #[schemars(with = "Option<u16>", range(min = 0, max = 65535))]
    pub weight: Option<Spanned<RawInt>>,
}

/// An integer field as written in YAML, before validation: a number (an
/// integral float such as `80.0` counts, as in JSON Schema), or what else
/// was there, so that validation can name the field. Quoted numbers are
/// strings, not numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RawInt {
    Int(i128),
    /// Not an integer: what it was (`a string`, `1.5`, ...).
    Other(&'static str),
}

impl<'de> Deserialize<'de> for RawInt {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawInt;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E>(self, v: i64) -> Result<RawInt, E> {
                Ok(RawInt::Int(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<RawInt, E> {
                Ok(RawInt::Int(v.into()))
            }
            fn visit_i128<E>(self, v: i128) -> Result<RawInt, E> {
                Ok(RawInt::Int(v))
            }
            fn visit_u128<E>(self, v: u128) -> Result<RawInt, E> {
                Ok(i128::try_from(v).map_or(RawInt::Other("a number out of range"), RawInt::Int))
            }
            fn visit_f64<E>(self, v: f64) -> Result<RawInt, E> {
                // i128 holds every integral f64 below 2^127; larger ones
                // are out of range anyway.
                if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e38 {
                    Ok(RawInt::Int(v as i128))
                } else {
                    Ok(RawInt::Other("a fractional number"))
                }
            }
            fn visit_bool<E>(self, _: bool) -> Result<RawInt, E> {
                Ok(RawInt::Other("a boolean"))
            }
            fn visit_str<E>(self, _: &str) -> Result<RawInt, E> {
                Ok(RawInt::Other("a string"))
            }
            fn visit_unit<E>(self) -> Result<RawInt, E> {
                Ok(RawInt::Other("null"))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<RawInt, A::Error> {
                while a.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(RawInt::Other("a sequence"))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<RawInt, A::Error> {
                while a
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(RawInt::Other("a mapping"))
            }
        }
        d.deserialize_any(V)
    }
}

/// A string field as written in YAML, before validation: a string, or what
/// else was there, so that validation can name the field. Plain scalars
/// that YAML reads as numbers or booleans (`ipv4: 10`) are not strings.
#[derive(Clone, Debug, PartialEq)]
pub enum RawStr {
    Str(String),
    /// Not a string: what it was (`an integer`, `a sequence`, ...).
    Other(&'static str),
}

impl<'de> Deserialize<'de> for RawStr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawStr;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E>(self, v: &str) -> Result<RawStr, E> {
                Ok(RawStr::Str(v.to_string()))
            }
            fn visit_i64<E>(self, _: i64) -> Result<RawStr, E> {
                Ok(RawStr::Other("an integer"))
            }
            fn visit_u64<E>(self, _: u64) -> Result<RawStr, E> {
                Ok(RawStr::Other("an integer"))
            }
            fn visit_i128<E>(self, _: i128) -> Result<RawStr, E> {
                Ok(RawStr::Other("an integer"))
            }
            fn visit_u128<E>(self, _: u128) -> Result<RawStr, E> {
                Ok(RawStr::Other("an integer"))
            }
            fn visit_f64<E>(self, _: f64) -> Result<RawStr, E> {
                Ok(RawStr::Other("a number"))
            }
            fn visit_bool<E>(self, _: bool) -> Result<RawStr, E> {
                Ok(RawStr::Other("a boolean"))
            }
            fn visit_unit<E>(self) -> Result<RawStr, E> {
                Ok(RawStr::Other("null"))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<RawStr, A::Error> {
                while a.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(RawStr::Other("a sequence"))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<RawStr, A::Error> {
                while a
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(RawStr::Other("a mapping"))
            }
        }
        d.deserialize_any(V)
    }
}

/// A CIDR prefix, as `ipnet` parses it (schema only).
#[allow(dead_code)]
struct CidrPrefix;

impl JsonSchema for CidrPrefix {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "CidrPrefix".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "An IPv4 or IPv6 prefix in CIDR notation, e.g. 10.0.0.0/24 or 2001:db8::/48.",
            "pattern": cidr_pattern(),
        })
    }
}

/// An IPv4 or IPv6 address (schema only).
#[allow(dead_code)]
struct IpAddress;

impl JsonSchema for IpAddress {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "IpAddress".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "An IPv4 or IPv6 address.",
            "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}],
        })
    }
}

/// A regular expression for exactly the CIDR prefixes `ipnet` parses: an
/// IPv4 address (no leading zeros) and a length 0..32, or an IPv6 address
/// (RFC 3986 `IPv6address`, with an embedded IPv4 tail) and a length 0..128.
fn cidr_pattern() -> String {
    let octet = "(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
    let v4 = format!("{octet}(?:\\.{octet}){{3}}");
    let h = "[0-9A-Fa-f]{1,4}";
    let ls32 = format!("(?:{h}:{h}|{v4})");
    let v6 = [
        format!("(?:{h}:){{6}}{ls32}"),
        format!("::(?:{h}:){{5}}{ls32}"),
        format!("(?:{h})?::(?:{h}:){{4}}{ls32}"),
        format!("(?:(?:{h}:){{0,1}}{h})?::(?:{h}:){{3}}{ls32}"),
        format!("(?:(?:{h}:){{0,2}}{h})?::(?:{h}:){{2}}{ls32}"),
        format!("(?:(?:{h}:){{0,3}}{h})?::{h}:{ls32}"),
        format!("(?:(?:{h}:){{0,4}}{h})?::{ls32}"),
        format!("(?:(?:{h}:){{0,5}}{h})?::{h}"),
        format!("(?:(?:{h}:){{0,6}}{h})?::"),
    ]
    .join("|");
    let len4 = "(?:3[0-2]|[12]?[0-9])";
    let len6 = "(?:12[0-8]|1[01][0-9]|[1-9]?[0-9])";
    format!("^(?:{v4}/{len4}|(?:{v6})/{len6})$")
}

/// IPVS scheduler name.
#[derive(JsonSchema)]
#[schemars(extend("enum" = SCHEDULERS))]
#[allow(dead_code)]
struct SchedulerName(String);

/// A service: `services/<name>.yaml`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "clusterf service")]
pub struct RawServiceFile {
    /// Virtual addresses and ports; every address x port becomes an IPVS service.
    #[schemars(with = "RawFrontend")]
    pub frontend: Spanned<RawFrontend>,
    /// IPVS scheduler (default from clusterf.yaml, else wlc).
    #[schemars(with = "Option<SchedulerName>")]
    pub scheduler: Option<Spanned<RawStr>>,
    /// Persistence timeout in seconds (1..2678400).
    #[schemars(with = "Option<u32>", range(min = 1, max = 2678400))]
    pub persistence: Option<Spanned<RawInt>>,
    /// Static backends by name (letters, digits and - _ . @ :).
    #[serde(default)]
    #[schemars(
        with = "BTreeMap<String, RawBackend>",
        extend("propertyNames" = {"pattern": "^[A-Za-z0-9_.@:-]+$"})
    )]
    pub backends: BTreeMap<String, Spanned<RawBackend>>,
}

/// Forwarding method of a route; `none` filters the matched backends out.
#[derive(Debug, Deserialize, JsonSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RawRouteMethod {
    Masq,
    Droute,
    Tunnel,
    None,
}

/// A route: `routes/<name>.yaml`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "clusterf route")]
// The gateway is of the prefix's family (an IPv6 prefix has a colon).
#[schemars(extend("allOf" = [
    {
        "if": {
            "required": ["prefix", "gateway"],
            "properties": {"prefix": {"type": "string", "pattern": ":"}}
        },
        "then": {"properties": {"gateway": {"format": "ipv6"}}}
    },
    {
        "if": {
            "required": ["prefix", "gateway"],
            "properties": {"prefix": {"type": "string", "pattern": "^[^:]*$"}}
        },
        "then": {"properties": {"gateway": {"format": "ipv4"}}}
    },
]))]
pub struct RawRouteFile {
    /// Backend address prefix (CIDR); absent for a default route.
    #[schemars(with = "Option<CidrPrefix>")]
    pub prefix: Option<Spanned<RawStr>>,
    /// Gateway that matched backends are reached through (same family as the prefix).
    #[schemars(with = "Option<IpAddress>")]
    pub gateway: Option<Spanned<RawStr>>,
    /// Forwarding method for matched backends; none filters them out.
    #[schemars(with = "RawRouteMethod")]
    pub method: Spanned<RawRouteMethod>,
}

/// Repo-wide defaults: `clusterf.yaml`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "clusterf defaults")]
// An empty file (null) sets no defaults.
#[schemars(extend("type" = ["object", "null"]))]
pub struct RawDefaultsFile {
    /// Scheduler of services that name none (default wlc).
    #[schemars(with = "Option<SchedulerName>")]
    pub scheduler: Option<Spanned<RawStr>>,
    /// Forwarding method for backends no route matches (default masq).
    #[schemars(with = "Option<Method>")]
    pub method: Option<Spanned<RawStr>>,
}

/// The JSON Schemas published in `schema/`, by file name.
pub fn schemas() -> Vec<(&'static str, serde_json::Value)> {
    vec![
        (
            "service.schema.json",
            schemars::schema_for!(RawServiceFile).to_value(),
        ),
        (
            "route.schema.json",
            schemars::schema_for!(RawRouteFile).to_value(),
        ),
        (
            "clusterf.schema.json",
            schemars::schema_for!(RawDefaultsFile).to_value(),
        ),
    ]
}

// ---------------------------------------------------------------------------
// Parsing

/// What a path in a tree is, by layout.
#[derive(Debug, PartialEq, Eq)]
enum Entry<'a> {
    Defaults,
    ServiceYaml(&'a str),
    Frontend(&'a str),
    Backend(&'a str, &'a str),
    RouteYaml(&'a str),
    RouteJson(&'a str),
    /// An editor's backup, lock, swap or probe file: skipped silently, so
    /// an open editor never breaks the config.
    EditorFile,
    Other,
}

/// Whether a file name is an editor's leftover: an emacs backup (`api-1~`)
/// or lock (`.#api-1`), a vim swap file (`.swp`, `.swx`) or vim's
/// write-probe `4913`.
fn is_editor_file(name: &str) -> bool {
    name.ends_with('~')
        || name.starts_with(".#")
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name == "4913"
}

fn classify(path: &str) -> Entry<'_> {
    if is_editor_file(path.rsplit('/').next().unwrap_or(path)) {
        return Entry::EditorFile;
    }
    // Up to four components; more is nothing of the layout.
    let mut parts = [None; 4];
    let mut n = 0;
    let mut start = 0;
    for (i, b) in path.bytes().enumerate() {
        if b == b'/' {
            if n == 3 {
                return Entry::Other;
            }
            parts[n] = Some(&path[start..i]);
            n += 1;
            start = i + 1;
        }
    }
    parts[n] = Some(&path[start..]);
    match parts {
        [Some("clusterf.yaml" | "clusterf.yml"), None, ..] => Entry::Defaults,
        [Some("services"), Some(file), None, _] => strip_yaml(file)
            .map(Entry::ServiceYaml)
            .unwrap_or(Entry::Other),
        [Some("services"), Some(svc), Some("frontend"), None] => Entry::Frontend(svc),
        [Some("services"), Some(svc), Some("backends"), Some(name)] => Entry::Backend(svc, name),
        [Some("routes"), Some(file), None, _] => match strip_yaml(file) {
            Some(name) => Entry::RouteYaml(name),
            None if !file.contains('.') => Entry::RouteJson(file),
            None => Entry::Other,
        },
        _ => Entry::Other,
    }
}

fn strip_yaml(file: &str) -> Option<&str> {
    file.strip_suffix(".yaml")
        .or_else(|| file.strip_suffix(".yml"))
        .filter(|name| !name.is_empty())
}

/// A value with the position it was read from.
#[derive(Clone, Debug)]
struct Located<T> {
    value: T,
    pos: Option<Pos>,
}

fn spanned<T: Clone>(s: &Spanned<T>) -> Located<T> {
    Located {
        value: s.value.clone(),
        pos: Some(Pos {
            line: s.referenced.line(),
            column: s.referenced.column(),
        }),
    }
}

fn spanned_opt<T: Clone>(s: &Option<Spanned<T>>) -> Option<Located<T>> {
    s.as_ref().map(spanned)
}

/// Fields of a frontend or backend, from either format, before validation.
#[derive(Default)]
struct EndpointFields<'a> {
    ipv4: Option<Located<&'a str>>,
    ipv6: Option<Located<&'a str>>,
    // Wide enough for any integer either format yields (JSON: i64 and u64).
    tcp: Option<Located<i128>>,
    udp: Option<Located<i128>>,
    weight: Option<Located<i128>>,
    /// An address key is present, even with a value of the wrong type
    /// (already reported): do not also report "no address".
    addr_given: bool,
    /// The same for the port keys.
    port_given: bool,
}

/// Fields of a route, from either format, before validation.
struct RouteFields<'a> {
    prefix: Option<Located<&'a str>>,
    gateway: Option<Located<&'a str>>,
    /// `None` (absent) filters, like an explicit `none`.
    method: Option<Located<&'a str>>,
}

/// Reports problems in one file.
struct Reporter<'a> {
    file: &'a str,
    diags: &'a mut Diagnostics,
    failed: bool,
}

impl Reporter<'_> {
    fn error(&mut self, pos: Option<Pos>, message: impl Into<String>) {
        self.failed = true;
        self.diags.error(self.file, pos, message);
    }

    fn warning(&mut self, pos: Option<Pos>, message: impl Into<String>) {
        self.diags.warning(self.file, pos, message);
    }
}

fn parse_ipv4(r: &mut Reporter, field: &str, v: &Option<Located<&str>>) -> Option<Ipv4Addr> {
    let v = v.as_ref()?;
    match v.value.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => Some(a),
        Ok(IpAddr::V6(_)) => {
            r.error(
                v.pos,
                format!("{field}: {:?} is an IPv6 address, expected IPv4", v.value),
            );
            None
        }
        Err(_) => {
            r.error(
                v.pos,
                format!("{field}: invalid IPv4 address {:?}", v.value),
            );
            None
        }
    }
}

fn parse_ipv6(r: &mut Reporter, field: &str, v: &Option<Located<&str>>) -> Option<Ipv6Addr> {
    let v = v.as_ref()?;
    match v.value.parse::<IpAddr>() {
        Ok(IpAddr::V6(a)) => Some(a),
        Ok(IpAddr::V4(_)) => {
            r.error(
                v.pos,
                format!("{field}: {:?} is an IPv4 address, expected IPv6", v.value),
            );
            None
        }
        Err(_) => {
            r.error(
                v.pos,
                format!("{field}: invalid IPv6 address {:?}", v.value),
            );
            None
        }
    }
}

fn parse_port(r: &mut Reporter, field: &str, v: &Option<Located<i128>>) -> Option<u16> {
    let v = v.as_ref()?;
    match u16::try_from(v.value) {
        Ok(p) if p >= 1 => Some(p),
        _ => {
            r.error(
                v.pos,
                format!("{field}: port {} out of range 1..65535", v.value),
            );
            None
        }
    }
}

fn parse_weight(r: &mut Reporter, v: &Option<Located<i128>>) -> u32 {
    let Some(v) = v else {
        return crate::model::DEFAULT_WEIGHT;
    };
    match u32::try_from(v.value) {
        Ok(w) if w <= MAX_WEIGHT => w,
        _ => {
            r.error(
                v.pos,
                format!("weight {} out of range 0..{MAX_WEIGHT}", v.value),
            );
            crate::model::DEFAULT_WEIGHT
        }
    }
}

fn parse_scheduler(r: &mut Reporter, v: &Option<Located<&str>>) -> Option<String> {
    let v = v.as_ref()?;
    if SCHEDULERS.contains(&v.value) {
        Some(v.value.to_string())
    } else {
        r.error(
            v.pos,
            format!(
                "scheduler: unknown scheduler {:?}, expected one of {}",
                v.value,
                SCHEDULERS.join(", ")
            ),
        );
        None
    }
}

/// Validates the fields of a frontend (`frontend == true`) or a backend;
/// `what` names it in messages (`frontend`, `backend "a"`).
fn validate_endpoints(
    r: &mut Reporter,
    whole: Option<Pos>,
    f: &EndpointFields,
    frontend: bool,
    what: &dyn std::fmt::Display,
) -> (Endpoints, u32) {
    let e = Endpoints {
        ipv4: parse_ipv4(r, "ipv4", &f.ipv4),
        ipv6: parse_ipv6(r, "ipv6", &f.ipv6),
        tcp: parse_port(r, "tcp", &f.tcp),
        udp: parse_port(r, "udp", &f.udp),
    };
    let weight = parse_weight(r, &f.weight);
    if !f.addr_given && f.ipv4.is_none() && f.ipv6.is_none() {
        r.error(whole, format!("{what} has no address: set ipv4 or ipv6"));
    }
    if frontend && !f.port_given && f.tcp.is_none() && f.udp.is_none() {
        r.error(whole, format!("{what} has no port: set tcp or udp"));
    }
    (e, weight)
}

/// A CIDR prefix whose address parses as the address fields do (std: no
/// leading zeros, which some tools read as octal) and whose length is
/// plain decimal; `ipnet` alone also takes `010.0.0.0/08`.
fn parse_cidr(s: &str) -> Option<IpNet> {
    let (addr, len) = s.split_once('/')?;
    let plain = !len.is_empty()
        && len.bytes().all(|b| b.is_ascii_digit())
        && (len == "0" || !len.starts_with('0'));
    if !plain || addr.parse::<IpAddr>().is_err() {
        return None;
    }
    s.parse::<IpNet>().ok()
}

fn validate_route(r: &mut Reporter, name: &str, f: &RouteFields) -> Route {
    let prefix = f.prefix.as_ref().and_then(|p| match parse_cidr(p.value) {
        Some(net) => {
            if net.trunc() != net {
                r.warning(
                    p.pos,
                    format!("prefix {} has host bits set; using {}", net, net.trunc()),
                );
            }
            Some(net.trunc())
        }
        None => {
            r.error(
                p.pos,
                format!(
                    "prefix: invalid prefix {:?}, expected CIDR like 10.0.0.0/24",
                    p.value
                ),
            );
            None
        }
    });
    let gateway = f
        .gateway
        .as_ref()
        .and_then(|g| match g.value.parse::<IpAddr>() {
            Ok(a) => Some((a, g.pos)),
            Err(_) => {
                r.error(g.pos, format!("gateway: invalid address {:?}", g.value));
                None
            }
        });
    if let (Some(net), Some((gw, pos))) = (&prefix, &gateway)
        && Family::of(&net.addr()) != Family::of(gw)
    {
        r.error(
            *pos,
            format!(
                "gateway {gw} is {} but prefix {net} is {}",
                Family::of(gw),
                Family::of(&net.addr())
            ),
        );
    }
    let method = match &f.method {
        None => None,
        Some(m) if m.value.eq_ignore_ascii_case("none") || m.value.is_empty() => None,
        Some(m) => {
            match m.value.parse::<Method>() {
                Ok(method) => Some(method),
                Err(_) => {
                    r.error(
                    m.pos,
                    format!("method: unknown method {:?}, expected one of masq, droute, tunnel, none", m.value),
                );
                    None
                }
            }
        }
    };
    if method.is_none() && gateway.is_some() {
        r.warning(
            None,
            "route filters its backends (no method) so its gateway is unused",
        );
    }
    Route {
        name: name.to_string(),
        source: r.file.to_string(),
        prefix,
        gateway: gateway.map(|(g, _)| g),
        method,
    }
}

fn check_name(r: &mut Reporter, what: &str, name: &str) {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | ':'));
    if !ok {
        r.error(
            None,
            format!("invalid {what} name {name:?}: use letters, digits and - _ . @ :"),
        );
    }
}

// --- JSON (the original tree) ---

/// Parses a JSON object with Go's case-insensitive key matching: returns the
/// value and key position of each key in `known`, reporting unknown keys
/// (errors when `strict`, else warnings).
fn json_object<'k>(
    r: &mut Reporter,
    bytes: &[u8],
    known: &[&'k str],
    strict: bool,
) -> Option<BTreeMap<&'k str, (serde_json::Value, Option<Pos>)>> {
    let text = utf8(r, bytes)?;
    let value: JsonTop = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            // serde_json counts columns from 0 at the start of a line
            // (before its first character, e.g. at an end of file after a
            // newline); positions here are 1-based.
            let pos = (e.line() > 0).then(|| Pos {
                line: e.line() as u64,
                column: (e.column() as u64).max(1),
            });
            r.error(
                pos,
                format!("invalid JSON: {}", strip_serde_json_pos(&e.to_string())),
            );
            return None;
        }
    };
    let JsonTop::Object(pairs) = value else {
        r.error(None, "expected a JSON object");
        return None;
    };
    let mut out = BTreeMap::new();
    // Exact repeats: serde_json would keep the last silently.
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (key, value) in &pairs {
        let nth = seen.entry(key.as_str()).or_insert(0);
        let pos = json_key_pos_nth(text, key, *nth);
        *nth += 1;
        if *nth > 1 {
            r.error(pos, format!("duplicate field {key:?}"));
            continue;
        }
        let Some(canon) = known.iter().find(|k| k.eq_ignore_ascii_case(key)) else {
            let msg = format!(
                "unknown field {key:?}, expected one of {}",
                known.join(", ")
            );
            if strict {
                r.error(pos, msg);
            } else {
                r.warning(pos, msg);
            }
            continue;
        };
        if value.is_null() {
            continue;
        }
        if out.insert(*canon, (value.clone(), pos)).is_some() {
            r.error(
                pos,
                format!("duplicate field {key:?} (keys are case-insensitive)"),
            );
        }
    }
    Some(out)
}

/// A JSON document's top level: an object's members in the order written
/// (repeats kept, so that they can be reported), or anything else.
enum JsonTop {
    Object(Vec<(String, serde_json::Value)>),
    Other,
}

impl<'de> Deserialize<'de> for JsonTop {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = JsonTop;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<JsonTop, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = a.next_entry::<String, serde_json::Value>()? {
                    pairs.push(pair);
                }
                Ok(JsonTop::Object(pairs))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<JsonTop, A::Error> {
                while a.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(JsonTop::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<JsonTop, E> {
                Ok(JsonTop::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<JsonTop, E> {
                Ok(JsonTop::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<JsonTop, E> {
                Ok(JsonTop::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<JsonTop, E> {
                Ok(JsonTop::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<JsonTop, E> {
                Ok(JsonTop::Other)
            }
            fn visit_unit<E>(self) -> Result<JsonTop, E> {
                Ok(JsonTop::Other)
            }
        }
        d.deserialize_any(V)
    }
}

fn strip_serde_json_pos(msg: &str) -> &str {
    match msg.rfind(" at line ") {
        Some(i) => &msg[..i],
        None => msg,
    }
}

fn utf8<'b>(r: &mut Reporter, bytes: &'b [u8]) -> Option<&'b str> {
    match std::str::from_utf8(bytes) {
        Ok(t) => Some(t),
        Err(e) => {
            r.error(
                None,
                format!("not valid UTF-8 (at byte {})", e.valid_up_to()),
            );
            None
        }
    }
}

#[cfg(test)]
fn json_key_pos(text: &str, key: &str) -> Option<Pos> {
    json_key_pos_nth(text, key, 0)
}

/// Finds where the `nth` (from 0) object key `"key"` appears in JSON text
/// (1-based), by a small scan that skips string contents. serde_json keeps
/// no spans, and the original tree's files are one-liners, so this is enough
/// to point at it.
fn json_key_pos_nth(text: &str, key: &str, mut nth: usize) -> Option<Pos> {
    let (mut line, mut col) = (1u64, 1u64);
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '"' {
            let (start_line, start_col) = (line, col);
            let start = i + 1;
            let mut end = start;
            col += 1;
            let mut escaped = false;
            for (j, c) in chars.by_ref() {
                col += 1;
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    end = j;
                    break;
                }
            }
            let rest = text[end.min(text.len())..]
                .trim_start_matches('"')
                .trim_start();
            if rest.starts_with(':') && text.get(start..end) == Some(key) {
                if nth == 0 {
                    return Some(Pos {
                        line: start_line,
                        column: start_col,
                    });
                }
                nth -= 1;
            }
            continue;
        }
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    None
}

fn json_string<'v>(
    r: &mut Reporter,
    field: &str,
    v: Option<&'v (serde_json::Value, Option<Pos>)>,
) -> Option<Located<&'v str>> {
    let (value, pos) = v?;
    match value {
        serde_json::Value::String(s) => Some(Located {
            value: s.as_str(),
            pos: *pos,
        }),
        other => {
            r.error(
                *pos,
                format!("{field}: expected a string, found {}", json_kind(other)),
            );
            None
        }
    }
}

fn json_int(
    r: &mut Reporter,
    field: &str,
    v: Option<&(serde_json::Value, Option<Pos>)>,
) -> Option<Located<i128>> {
    let (value, pos) = v?;
    let n = value
        .as_i64()
        .map(i128::from)
        .or_else(|| value.as_u64().map(i128::from));
    match n {
        Some(n) => Some(Located {
            value: n,
            pos: *pos,
        }),
        None => {
            r.error(
                *pos,
                format!("{field}: expected an integer, found {}", json_kind(value)),
            );
            None
        }
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

const FRONTEND_KEYS: &[&str] = &["ipv4", "ipv6", "tcp", "udp"];
const BACKEND_KEYS: &[&str] = &["ipv4", "ipv6", "tcp", "udp", "weight"];
const ROUTE_KEYS: &[&str] = &[
    "Prefix",
    "Prefix4",
    "Prefix6",
    "Gateway",
    "Gateway4",
    "Gateway6",
    "IPVSMethod",
];

fn json_endpoints(
    r: &mut Reporter,
    bytes: &[u8],
    frontend: bool,
    strict: bool,
) -> Option<(Endpoints, u32)> {
    if let Some(out) = fast_json_endpoints(r.file, bytes, frontend) {
        return (!r.failed).then_some(out);
    }
    full_json_endpoints(r, bytes, frontend, strict)
}

/// A frontend or backend read by serde_json, with Go's key matching.
fn full_json_endpoints(
    r: &mut Reporter,
    bytes: &[u8],
    frontend: bool,
    strict: bool,
) -> Option<(Endpoints, u32)> {
    let keys = if frontend {
        FRONTEND_KEYS
    } else {
        BACKEND_KEYS
    };
    let obj = json_object(r, bytes, keys, strict)?;
    let fields = EndpointFields {
        ipv4: json_string(r, "ipv4", obj.get("ipv4")),
        ipv6: json_string(r, "ipv6", obj.get("ipv6")),
        tcp: json_int(r, "tcp", obj.get("tcp")),
        udp: json_int(r, "udp", obj.get("udp")),
        weight: json_int(r, "weight", obj.get("weight")),
        addr_given: obj.contains_key("ipv4") || obj.contains_key("ipv6"),
        port_given: obj.contains_key("tcp") || obj.contains_key("udp"),
    };
    let what = if frontend { "frontend" } else { "backend" };
    let out = validate_endpoints(r, None, &fields, frontend, &what);
    (!r.failed).then_some(out)
}

/// A frontend or backend read by the fast reader, when it takes the file and
/// it validates without a single diagnostic; else the full path reads it
/// (see [`fast_yaml_service`]).
fn fast_json_endpoints(file: &str, bytes: &[u8], frontend: bool) -> Option<(Endpoints, u32)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let obj = fast_json::object(text)?;
    let keys = if frontend {
        FRONTEND_KEYS
    } else {
        BACKEND_KEYS
    };
    let mut f = EndpointFields::default();
    for (key, value) in &obj {
        let canon = keys.iter().find(|k| k.eq_ignore_ascii_case(key))?;
        use fast_json::Value::{Int, Str};
        match (*canon, *value) {
            ("ipv4", Str(s)) if f.ipv4.is_none() => f.ipv4 = Some(unplaced(s)),
            ("ipv6", Str(s)) if f.ipv6.is_none() => f.ipv6 = Some(unplaced(s)),
            ("tcp", Int(n)) if f.tcp.is_none() => f.tcp = Some(unplaced(n)),
            ("udp", Int(n)) if f.udp.is_none() => f.udp = Some(unplaced(n)),
            ("weight", Int(n)) if f.weight.is_none() => f.weight = Some(unplaced(n)),
            _ => return None,
        }
    }
    f.addr_given = f.ipv4.is_some() || f.ipv6.is_some();
    f.port_given = f.tcp.is_some() || f.udp.is_some();
    let mut diags = Diagnostics::default();
    let mut r = Reporter {
        file,
        diags: &mut diags,
        failed: false,
    };
    let what = if frontend { "frontend" } else { "backend" };
    let out = validate_endpoints(&mut r, None, &f, frontend, &what);
    diags.is_empty().then_some(out)
}

/// A reader for flat JSON objects of strings and small integers, the shape
/// of the original tree's files. It answers `None` for anything else
/// (escapes, other value types, signs, fractions, exponents, leading zeros,
/// more than 9 digits, malformed text); it never guesses.
mod fast_json {
    #[derive(Clone, Copy)]
    pub(super) enum Value<'a> {
        Str(&'a str),
        Int(i128),
    }

    pub(super) fn object(text: &str) -> Option<Vec<(&str, Value<'_>)>> {
        let b = text.as_bytes();
        let mut i = 0;
        let ws = |i: &mut usize| {
            while b
                .get(*i)
                .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
            {
                *i += 1;
            }
        };
        let string = |i: &mut usize| -> Option<&str> {
            if b.get(*i) != Some(&b'"') {
                return None;
            }
            let start = *i + 1;
            let mut j = start;
            loop {
                match *b.get(j)? {
                    b'"' => break,
                    b'\\' => return None,
                    c if c < 0x20 => return None,
                    _ => j += 1,
                }
            }
            *i = j + 1;
            Some(&text[start..j])
        };
        let mut out = Vec::with_capacity(8);
        ws(&mut i);
        if b.get(i) != Some(&b'{') {
            return None;
        }
        i += 1;
        ws(&mut i);
        if b.get(i) == Some(&b'}') {
            i += 1;
        } else {
            loop {
                let key = string(&mut i)?;
                ws(&mut i);
                if b.get(i) != Some(&b':') {
                    return None;
                }
                i += 1;
                ws(&mut i);
                let value = match *b.get(i)? {
                    b'"' => Value::Str(string(&mut i)?),
                    b'0'..=b'9' => {
                        let start = i;
                        while b.get(i).is_some_and(u8::is_ascii_digit) {
                            i += 1;
                        }
                        let digits = &text[start..i];
                        if digits.len() > 9 || (digits.len() > 1 && digits.starts_with('0')) {
                            return None;
                        }
                        // A fraction or exponent makes a float.
                        if matches!(b.get(i), Some(b'.' | b'e' | b'E')) {
                            return None;
                        }
                        Value::Int(super::small_decimal(digits))
                    }
                    _ => return None,
                };
                out.push((key, value));
                ws(&mut i);
                match *b.get(i)? {
                    b',' => {
                        i += 1;
                        ws(&mut i);
                    }
                    b'}' => {
                        i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        ws(&mut i);
        (i == b.len()).then_some(out)
    }
}

fn json_route(r: &mut Reporter, name: &str, bytes: &[u8], strict: bool) -> Option<Route> {
    let obj = json_object(r, bytes, ROUTE_KEYS, strict)?;
    // The original's older spellings Prefix4/Gateway4 (and Prefix6/Gateway6)
    // mean the same as Prefix/Gateway; more than one of them is ambiguous.
    type Obj<'k> = BTreeMap<&'k str, (serde_json::Value, Option<Pos>)>;
    fn pick<'o>(
        r: &mut Reporter,
        obj: &'o Obj<'_>,
        field: &str,
        names: &[&str],
    ) -> Option<Located<&'o str>> {
        let present: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| obj.contains_key(n))
            .collect();
        if present.len() > 1 {
            let pos = obj.get(present[1]).and_then(|v| v.1);
            r.error(
                pos,
                format!("{field} given more than once: {}", present.join(", ")),
            );
        }
        let first = present.first()?;
        json_string(r, field, obj.get(*first))
    }
    let fields = RouteFields {
        prefix: pick(r, &obj, "prefix", &["Prefix", "Prefix4", "Prefix6"]),
        gateway: pick(r, &obj, "gateway", &["Gateway", "Gateway4", "Gateway6"]),
        method: json_string(r, "method", obj.get("IPVSMethod")),
    };
    let route = validate_route(r, name, &fields);
    (!r.failed).then_some(route)
}

// --- YAML ---

fn yaml<T: serde::de::DeserializeOwned>(r: &mut Reporter, bytes: &[u8]) -> Option<T> {
    let text = utf8(r, bytes)?;
    match serde_saphyr::from_str::<T>(text) {
        Ok(v) => Some(v),
        Err(e) => {
            let pos = e.location().map(|l| Pos {
                line: l.line(),
                column: l.column(),
            });
            r.error(pos, yaml_message(&e));
            None
        }
    }
}

/// The error message without serde-saphyr's own location suffix or snippet
/// (the diagnostic carries the position itself).
fn yaml_message(e: &serde_saphyr::Error) -> String {
    let full = e.without_snippet().to_string();
    let first = full.lines().next().unwrap_or("").trim();
    let msg = match first.find(" at line ") {
        Some(i) => &first[..i],
        None => first,
    };
    // serde-saphyr suggests its own API in some messages; users cannot act
    // on that.
    let msg = msg.split(", set DuplicateKeyPolicy").next().unwrap_or(msg);
    msg.replace('`', "\"")
}

/// A string field, or an error naming it when something else is there.
fn yaml_str<'v>(
    r: &mut Reporter,
    field: &str,
    v: &'v Option<Spanned<RawStr>>,
) -> Option<Located<&'v str>> {
    let s = v.as_ref()?;
    let pos = spanned(&Spanned {
        value: (),
        referenced: s.referenced,
        defined: s.defined,
    })
    .pos;
    match &s.value {
        RawStr::Str(text) => Some(Located {
            value: text.as_str(),
            pos,
        }),
        RawStr::Other(what) => {
            r.error(pos, format!("{field}: expected a string, found {what}"));
            None
        }
    }
}

/// An integer field, or an error naming it when something else is there.
fn yaml_int(r: &mut Reporter, field: &str, v: &Option<Spanned<RawInt>>) -> Option<Located<i128>> {
    let l = spanned_opt(v)?;
    match l.value {
        RawInt::Int(n) => Some(Located {
            value: n,
            pos: l.pos,
        }),
        RawInt::Other(what) => {
            r.error(l.pos, format!("{field}: expected an integer, found {what}"));
            None
        }
    }
}

fn yaml_endpoints_fields<'v>(
    r: &mut Reporter,
    ipv4: &'v Option<Spanned<RawStr>>,
    ipv6: &'v Option<Spanned<RawStr>>,
    tcp: &Option<Spanned<RawInt>>,
    udp: &Option<Spanned<RawInt>>,
    weight: &Option<Spanned<RawInt>>,
) -> EndpointFields<'v> {
    EndpointFields {
        ipv4: yaml_str(r, "ipv4", ipv4),
        ipv6: yaml_str(r, "ipv6", ipv6),
        tcp: yaml_int(r, "tcp", tcp),
        udp: yaml_int(r, "udp", udp),
        weight: yaml_int(r, "weight", weight),
        // An address or port of the wrong type is reported as such, not as
        // missing.
        addr_given: ipv4.is_some() || ipv6.is_some(),
        port_given: tcp.is_some() || udp.is_some(),
    }
}

/// A service file's fields, from either YAML reader, before validation.
struct ServiceFields<'a> {
    /// Where the frontend mapping is, for "has no address" and the like.
    frontend_pos: Option<Pos>,
    frontend: EndpointFields<'a>,
    scheduler: Option<Located<&'a str>>,
    persistence: Option<Located<i128>>,
    /// Name, position of the backend's mapping, fields; names are unique.
    backends: Vec<(&'a str, Option<Pos>, EndpointFields<'a>)>,
}

/// `backend "name"` in messages, formatted only when one is reported.
struct BackendName<'a>(&'a str);

impl std::fmt::Display for BackendName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "backend {:?}", self.0)
    }
}

fn validate_service(r: &mut Reporter, name: &str, f: &ServiceFields) -> Service {
    let (frontend, _) = validate_endpoints(r, f.frontend_pos, &f.frontend, true, &"frontend");
    let scheduler = parse_scheduler(r, &f.scheduler);
    let persistence = f
        .persistence
        .as_ref()
        .and_then(|p| match u32::try_from(p.value) {
            Ok(s) if (1..=MAX_PERSISTENCE).contains(&s) => Some(s),
            _ => {
                r.error(
                    p.pos,
                    format!(
                        "persistence: {} out of range 1..{MAX_PERSISTENCE} seconds",
                        p.value
                    ),
                );
                None
            }
        });
    let mut backends = BTreeMap::new();
    for (bname, whole, fields) in &f.backends {
        check_name(r, "backend", bname);
        let (endpoints, weight) = validate_endpoints(r, *whole, fields, false, &BackendName(bname));
        let mut source = String::with_capacity(r.file.len() + 10 + bname.len());
        source.push_str(r.file);
        source.push_str("#backends.");
        source.push_str(bname);
        backends.insert(
            bname.to_string(),
            Backend {
                name: bname.to_string(),
                source,
                endpoints,
                weight,
            },
        );
    }
    Service {
        name: name.to_string(),
        source: r.file.to_string(),
        frontend,
        scheduler,
        persistence,
        backends,
    }
}

fn yaml_service(r: &mut Reporter, name: &str, bytes: &[u8]) -> Option<Service> {
    fast_yaml_service(r.file, name, bytes).or_else(|| full_yaml_service(r, name, bytes))
}

/// A service file read by the full YAML parser.
fn full_yaml_service(r: &mut Reporter, name: &str, bytes: &[u8]) -> Option<Service> {
    let raw: RawServiceFile = yaml(r, bytes)?;
    let f = &raw.frontend.value;
    let frontend_pos = spanned(&Spanned {
        value: (),
        referenced: raw.frontend.referenced,
        defined: raw.frontend.defined,
    })
    .pos;
    let frontend = yaml_endpoints_fields(r, &f.ipv4, &f.ipv6, &f.tcp, &f.udp, &None);
    let scheduler = yaml_str(r, "scheduler", &raw.scheduler);
    let persistence = yaml_int(r, "persistence", &raw.persistence);
    let mut backends = Vec::with_capacity(raw.backends.len());
    for (bname, b) in &raw.backends {
        let whole = spanned(&Spanned {
            value: (),
            referenced: b.referenced,
            defined: b.defined,
        })
        .pos;
        let b = &b.value;
        let fields = yaml_endpoints_fields(r, &b.ipv4, &b.ipv6, &b.tcp, &b.udp, &b.weight);
        backends.push((bname.as_str(), whole, fields));
    }
    let fields = ServiceFields {
        frontend_pos,
        frontend,
        scheduler,
        persistence,
        backends,
    };
    Some(validate_service(r, name, &fields))
}

// --- The fast path ---
//
// Nearly every file of a real repo is plain: block and flow mappings, plain
// addresses and numbers, no anchors, tags or escapes. Such files are read by
// a small reader here, many times faster than the full YAML parser; the
// result goes through the same validation. A file the fast reader does not
// take (anything outside its subset), or whose validation reports anything
// at all, is read again by the full path, so every message, position and
// edge case stays the full path's. The reader only takes files whose meaning
// it knows exactly; `fast_yaml_agrees_with_serde_saphyr` checks that.

/// The service file read by the fast reader, when it takes it and it
/// validates without a single diagnostic.
fn fast_yaml_service(file: &str, name: &str, bytes: &[u8]) -> Option<Service> {
    let text = std::str::from_utf8(bytes).ok()?;
    let doc = fast_yaml::parse(text)?;
    let mut frontend = None;
    let mut scheduler = None;
    let mut persistence = None;
    let mut backends = Vec::new();
    for (key, node) in &doc {
        match *key {
            "frontend" => frontend = Some(fast_endpoint_fields(node.map()?, false)?),
            "scheduler" => scheduler = Some(unplaced(node.str()?)),
            "persistence" => persistence = Some(unplaced(node.int()?)),
            "backends" => {
                let map = node.map()?;
                backends.reserve(map.len());
                for (bname, b) in map {
                    backends.push((*bname, None, fast_endpoint_fields(b.map()?, true)?));
                }
            }
            _ => return None,
        }
    }
    let fields = ServiceFields {
        frontend_pos: None,
        frontend: frontend?,
        scheduler,
        persistence,
        backends,
    };
    let mut diags = Diagnostics::default();
    let mut r = Reporter {
        file,
        diags: &mut diags,
        failed: false,
    };
    let svc = validate_service(&mut r, name, &fields);
    diags.is_empty().then_some(svc)
}

/// The route file read by the fast reader (see [`fast_yaml_service`]).
fn fast_yaml_route(file: &str, name: &str, bytes: &[u8]) -> Option<Route> {
    let text = std::str::from_utf8(bytes).ok()?;
    let doc = fast_yaml::parse(text)?;
    let mut fields = RouteFields {
        prefix: None,
        gateway: None,
        method: None,
    };
    for (key, node) in &doc {
        match *key {
            "prefix" => fields.prefix = Some(unplaced(node.str()?)),
            "gateway" => fields.gateway = Some(unplaced(node.str()?)),
            "method" => {
                let m = node.str()?;
                if !["masq", "droute", "tunnel", "none"].contains(&m) {
                    return None;
                }
                fields.method = Some(unplaced(m));
            }
            _ => return None,
        }
    }
    // The method is required in YAML.
    fields.method.as_ref()?;
    let mut diags = Diagnostics::default();
    let mut r = Reporter {
        file,
        diags: &mut diags,
        failed: false,
    };
    let route = validate_route(&mut r, name, &fields);
    diags.is_empty().then_some(route)
}

/// The value of at most 9 ASCII digits (the callers checked them).
fn small_decimal(digits: &str) -> i128 {
    let n = digits
        .bytes()
        .fold(0u32, |n, d| n * 10 + u32::from(d.wrapping_sub(b'0')));
    n.into()
}

fn unplaced<T>(value: T) -> Located<T> {
    Located { value, pos: None }
}

/// The fields of a frontend (`weight == false`) or backend mapping.
fn fast_endpoint_fields<'a>(
    map: &[(&'a str, fast_yaml::Node<'a>)],
    weight: bool,
) -> Option<EndpointFields<'a>> {
    let mut f = EndpointFields::default();
    for (key, node) in map {
        match *key {
            "ipv4" => f.ipv4 = Some(unplaced(node.str()?)),
            "ipv6" => f.ipv6 = Some(unplaced(node.str()?)),
            "tcp" => f.tcp = Some(unplaced(node.int()?)),
            "udp" => f.udp = Some(unplaced(node.int()?)),
            "weight" if weight => f.weight = Some(unplaced(node.int()?)),
            _ => return None,
        }
    }
    f.addr_given = f.ipv4.is_some() || f.ipv6.is_some();
    f.port_given = f.tcp.is_some() || f.udp.is_some();
    Some(f)
}

/// A reader for the plain subset of YAML that config files are written in.
/// It answers `None` for anything outside that subset; it never guesses.
///
/// The subset: ASCII text without tabs or carriage returns; block mappings
/// (each level at one indentation) and one-line flow mappings; keys that
/// start with a letter and hold only letters, digits and `- _ . @` (no YAML
/// boolean or null spelling); plain scalars of letters, digits and
/// `. : / - _`, double-quoted scalars without escapes, single-quoted scalars
/// without quotes; comments; no duplicate keys.
mod fast_yaml {
    pub(super) enum Node<'a> {
        /// A scalar as written (without its quotes).
        Scalar {
            text: &'a str,
            quoted: bool,
        },
        Map(Vec<(&'a str, Node<'a>)>),
    }

    impl<'a> Node<'a> {
        pub(super) fn map(&self) -> Option<&[(&'a str, Node<'a>)]> {
            match self {
                Node::Map(m) => Some(m),
                Node::Scalar { .. } => None,
            }
        }

        /// The scalar, when YAML reads it as a string.
        pub(super) fn str(&self) -> Option<&'a str> {
            match *self {
                Node::Scalar { text, quoted: true } => Some(text),
                Node::Scalar {
                    text,
                    quoted: false,
                } => plain_is_string(text).then_some(text),
                Node::Map(_) => None,
            }
        }

        /// The scalar, when it is a plain decimal integer (no sign, no
        /// leading zero, at most 9 digits).
        pub(super) fn int(&self) -> Option<i128> {
            let Node::Scalar {
                text,
                quoted: false,
            } = *self
            else {
                return None;
            };
            let b = text.as_bytes();
            let ok = !b.is_empty()
                && b.len() <= 9
                && b.iter().all(u8::is_ascii_digit)
                && (b[0] != b'0' || b.len() == 1);
            ok.then(|| super::small_decimal(text))
        }
    }

    /// Spellings YAML reads as a boolean, null or special float (any case).
    pub(super) const SPECIAL: &[&str] = &[
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf", "infinity",
    ];

    pub(super) fn special(word: &str) -> bool {
        // Only the spellings of the word's length need comparing.
        let same_length: &[&str] = match word.len() {
            1 => &SPECIAL[..2],
            2 => &SPECIAL[3..5],
            3 => &["yes", "off", "nan", "inf"],
            4 => &["true", "null"],
            5 => &["false"],
            8 => &["infinity"],
            _ => &[],
        };
        same_length.iter().any(|s| s.eq_ignore_ascii_case(word))
    }

    /// Whether a plain scalar (of the fast reader's characters) is a string
    /// to YAML: one that starts with a letter and is no special spelling,
    /// or one that starts with a digit and holds a `:` or `/` or two dots,
    /// which no number does (an address or prefix).
    fn plain_is_string(text: &str) -> bool {
        let b = text.as_bytes();
        match b.first() {
            Some(c) if c.is_ascii_alphabetic() => !special(text),
            Some(c) if c.is_ascii_digit() => {
                b.contains(&b':')
                    || b.contains(&b'/')
                    || b.iter().filter(|&&c| c == b'.').count() >= 2
            }
            _ => false,
        }
    }

    /// More than this many nodes is left to the full parser and its limits.
    const MAX_NODES: usize = 50_000;
    /// Deeper nesting than the config files have is left to the full parser.
    const MAX_DEPTH: usize = 4;
    /// Longer keys are left to the full parser (YAML limits implicit keys).
    const MAX_KEY: usize = 128;
    /// Larger files are left to the full parser and its limits.
    const MAX_BYTES: usize = 4 << 20;

    pub(super) type Map<'a> = Vec<(&'a str, Node<'a>)>;

    /// Reads a document whose top level is a block mapping.
    pub(super) fn parse(text: &str) -> Option<Map<'_>> {
        if text.len() > MAX_BYTES {
            return None;
        }
        // One pass: check the characters, split lines, measure indentation.
        let mut lines = Vec::with_capacity(text.len() / 16 + 1);
        let b = text.as_bytes();
        let mut start = 0;
        let mut indent = None;
        for (i, &c) in b.iter().enumerate() {
            match c {
                b'\n' => {
                    // Blank and comment lines are no content.
                    if let Some(ind) = indent.take()
                        && b[ind] != b'#'
                    {
                        lines.push((ind - start, &text[ind..i]));
                    }
                    start = i + 1;
                }
                b' ' => {}
                0x21..0x7f => {
                    if indent.is_none() {
                        indent = Some(i);
                    }
                }
                _ => return None,
            }
        }
        if let Some(ind) = indent
            && b[ind] != b'#'
        {
            lines.push((ind - start, &text[ind..]));
        }
        let mut p = Reader {
            lines,
            at: 0,
            nodes: 0,
        };
        let map = p.block(0, 0)?;
        (p.at == p.lines.len() && !map.is_empty()).then_some(map)
    }

    struct Reader<'a> {
        /// Indentation and content of each line that is not blank or a comment.
        lines: Vec<(usize, &'a str)>,
        at: usize,
        nodes: usize,
    }

    impl<'a> Reader<'a> {
        /// The block mapping whose keys are at `indent`.
        fn block(&mut self, indent: usize, depth: usize) -> Option<Map<'a>> {
            if depth > MAX_DEPTH {
                return None;
            }
            let mut out = Vec::with_capacity(8);
            while let Some(&(ind, content)) = self.lines.get(self.at) {
                if ind < indent {
                    break;
                }
                if ind > indent {
                    return None;
                }
                self.at += 1;
                let mut c = Cursor {
                    s: content.as_bytes(),
                    text: content,
                    i: 0,
                };
                let key = c.key()?;
                let node = if c.line_ends() {
                    // The value is a block mapping on the following lines.
                    let &(child, _) = self.lines.get(self.at)?;
                    if child <= indent {
                        return None;
                    }
                    Node::Map(self.block(child, depth + 1)?)
                } else {
                    let node = c.value(depth + 1, &mut self.nodes)?;
                    if !c.line_ends() {
                        return None;
                    }
                    // A more indented line would continue the value.
                    if self.lines.get(self.at).is_some_and(|&(i, _)| i > indent) {
                        return None;
                    }
                    node
                };
                self.nodes += 2;
                if self.nodes > MAX_NODES {
                    return None;
                }
                out.push((key, node));
            }
            unique(&out).then_some(out)
        }
    }

    fn unique(map: &[(&str, Node)]) -> bool {
        if map.len() <= 8 {
            return map
                .iter()
                .enumerate()
                .all(|(i, (k, _))| map[..i].iter().all(|(o, _)| o != k));
        }
        let mut keys: Vec<&str> = map.iter().map(|(k, _)| *k).collect();
        keys.sort_unstable();
        keys.windows(2).all(|w| w[0] != w[1])
    }

    /// A position in one line.
    struct Cursor<'a> {
        s: &'a [u8],
        text: &'a str,
        i: usize,
    }

    impl<'a> Cursor<'a> {
        fn peek(&self) -> Option<u8> {
            self.s.get(self.i).copied()
        }

        fn skip_spaces(&mut self) {
            while self.peek() == Some(b' ') {
                self.i += 1;
            }
        }

        /// After spaces, the end of the line or a comment.
        fn line_ends(&mut self) -> bool {
            self.skip_spaces();
            match self.peek() {
                None => true,
                Some(b'#') => self.i > 0 && self.s[self.i - 1] == b' ',
                Some(_) => false,
            }
        }

        fn take_while(&mut self, ok: impl Fn(u8) -> bool) -> &'a str {
            let start = self.i;
            while self.peek().is_some_and(&ok) {
                self.i += 1;
            }
            &self.text[start..self.i]
        }

        /// `key:` followed by a space or the end of the line.
        fn key(&mut self) -> Option<&'a str> {
            let key = self.take_while(|c| {
                matches!(c, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'@')
            });
            let first = key.as_bytes().first()?;
            if !first.is_ascii_alphabetic() || key.len() > MAX_KEY || special(key) {
                return None;
            }
            if self.peek() != Some(b':') {
                return None;
            }
            self.i += 1;
            matches!(self.peek(), None | Some(b' ')).then_some(key)
        }

        /// A flow mapping or a scalar.
        fn value(&mut self, depth: usize, nodes: &mut usize) -> Option<Node<'a>> {
            match self.peek()? {
                b'{' => self.flow_map(depth, nodes).map(Node::Map),
                q @ (b'"' | b'\'') => {
                    self.i += 1;
                    let text = self.take_while(|c| c != q && c != b'\\');
                    if self.peek() != Some(q) {
                        return None;
                    }
                    self.i += 1;
                    // '' in a single-quoted scalar is an escaped quote.
                    if self.peek() == Some(q) {
                        return None;
                    }
                    Some(Node::Scalar { text, quoted: true })
                }
                c if c.is_ascii_alphanumeric() => {
                    let text = self.take_while(|c| {
                        matches!(c, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b':' | b'/' | b'-' | b'_')
                    });
                    // A trailing `:` would be a mapping indicator.
                    if text.ends_with(':') {
                        return None;
                    }
                    Some(Node::Scalar {
                        text,
                        quoted: false,
                    })
                }
                _ => None,
            }
        }

        /// `{key: value, ...}` on one line.
        fn flow_map(&mut self, depth: usize, nodes: &mut usize) -> Option<Map<'a>> {
            if depth > MAX_DEPTH {
                return None;
            }
            self.i += 1;
            self.skip_spaces();
            if self.peek() == Some(b'}') {
                self.i += 1;
                return Some(Vec::new());
            }
            let mut out = Vec::with_capacity(8);
            loop {
                let key = self.key()?;
                self.skip_spaces();
                let value = self.value(depth + 1, nodes)?;
                *nodes += 2;
                if *nodes > MAX_NODES {
                    return None;
                }
                out.push((key, value));
                self.skip_spaces();
                match self.peek()? {
                    b',' => {
                        self.i += 1;
                        self.skip_spaces();
                        // No trailing comma.
                        if self.peek() == Some(b'}') {
                            return None;
                        }
                    }
                    b'}' => {
                        self.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
            unique(&out).then_some(out)
        }
    }
}

fn yaml_route(r: &mut Reporter, name: &str, bytes: &[u8]) -> Option<Route> {
    match fast_yaml_route(r.file, name, bytes) {
        // A route with errors (here: in its name) is left out.
        Some(route) => (!r.failed).then_some(route),
        None => full_yaml_route(r, name, bytes),
    }
}

/// A route file read by the full YAML parser.
fn full_yaml_route(r: &mut Reporter, name: &str, bytes: &[u8]) -> Option<Route> {
    let raw: RawRouteFile = yaml(r, bytes)?;
    let method = Located {
        value: match raw.method.value {
            RawRouteMethod::Masq => "masq",
            RawRouteMethod::Droute => "droute",
            RawRouteMethod::Tunnel => "tunnel",
            RawRouteMethod::None => "none",
        },
        pos: spanned(&raw.method).pos,
    };
    let fields = RouteFields {
        prefix: yaml_str(r, "prefix", &raw.prefix),
        gateway: yaml_str(r, "gateway", &raw.gateway),
        method: Some(method),
    };
    // A route with errors is left out, like a JSON one: with its prefix
    // unparsed it would pass for a default route.
    let route = validate_route(r, name, &fields);
    (!r.failed).then_some(route)
}

fn yaml_defaults(r: &mut Reporter, bytes: &[u8]) -> Option<Defaults> {
    // An empty file (or a bare null) sets no defaults.
    let Some(raw) = yaml::<Option<RawDefaultsFile>>(r, bytes)? else {
        return Some(Defaults::default());
    };
    let scheduler = yaml_str(r, "scheduler", &raw.scheduler);
    let scheduler = parse_scheduler(r, &scheduler);
    let method = yaml_str(r, "method", &raw.method).and_then(|m| match m.value.parse::<Method>() {
        Ok(method) => Some(method),
        Err(e) => {
            r.error(m.pos, format!("method: {e}"));
            None
        }
    });
    Some(Defaults { scheduler, method })
}

// ---------------------------------------------------------------------------
// Whole trees

/// Whether a config tree holds any file of the config layout (read or not):
/// `clusterf.yaml`, something under `services/` or `routes/` that the layout
/// reads. A tree without one (empty, only a README) is no config at all,
/// never an empty config that deletes every service.
pub fn holds_config_files(tree: &Tree) -> bool {
    tree.files
        .keys()
        .chain(tree.unreadable.keys())
        .any(|path| !matches!(classify(path), Entry::Other | Entry::EditorFile))
}

/// Parses and validates a config repo tree. The config is usable only when
/// the diagnostics hold no errors.
pub fn parse_config(tree: &Tree) -> (Config, Diagnostics) {
    let mut diags = Diagnostics::default();
    for (path, why) in &tree.unreadable {
        diags.error(path.as_str(), None, format!("cannot read: {why}"));
    }
    let mut config = Config::default();
    // JSON-layout pieces, assembled once every file is read.
    let mut frontends: BTreeMap<&str, (String, Endpoints)> = BTreeMap::new();
    let mut json_backends: BTreeMap<&str, BTreeMap<String, Backend>> = BTreeMap::new();
    let mut yaml_services: BTreeMap<&str, Service> = BTreeMap::new();
    // The backend files of one service are consecutive in path order: they
    // are gathered here and added to `json_backends` together.
    let mut group: Option<(&str, BTreeMap<String, Backend>)> = None;

    for (path, bytes) in &tree.files {
        let mut r = Reporter {
            file: path,
            diags: &mut diags,
            failed: false,
        };
        match classify(path) {
            Entry::Defaults => {
                if let Some(d) = yaml_defaults(&mut r, bytes) {
                    config.defaults = d;
                }
            }
            Entry::ServiceYaml(name) => {
                check_name(&mut r, "service", name);
                if let Some(svc) = yaml_service(&mut r, name, bytes)
                    && let Some(prev) = yaml_services.insert(name, svc)
                {
                    r.error(
                        None,
                        format!("service {name:?} is also defined by {}", prev.source),
                    );
                }
            }
            Entry::Frontend(svc) => {
                check_name(&mut r, "service", svc);
                if let Some((e, _)) = json_endpoints(&mut r, bytes, true, true) {
                    frontends.insert(svc, (path.clone(), e));
                }
            }
            Entry::Backend(svc, name) => {
                check_name(&mut r, "backend", name);
                // A service is known even when its backend fails, so it is
                // not reported as missing.
                if group.as_ref().is_none_or(|(g, _)| *g != svc) {
                    if let Some((g, mut backends)) = group.take() {
                        json_backends.entry(g).or_default().append(&mut backends);
                    }
                    group = Some((svc, BTreeMap::new()));
                }
                if let Some((endpoints, weight)) = json_endpoints(&mut r, bytes, false, true)
                    && let Some((_, backends)) = &mut group
                {
                    backends.insert(
                        name.to_string(),
                        Backend {
                            name: name.to_string(),
                            source: path.clone(),
                            endpoints,
                            weight,
                        },
                    );
                }
            }
            Entry::RouteYaml(name) | Entry::RouteJson(name) => {
                check_name(&mut r, "route", name);
                let route = if matches!(classify(path), Entry::RouteYaml(_)) {
                    yaml_route(&mut r, name, bytes)
                } else {
                    json_route(&mut r, name, bytes, true)
                };
                if let Some(route) = route {
                    if let Some(prev) = config.routes.get(name) {
                        r.error(
                            None,
                            format!("route {name:?} is also defined by {}", prev.source),
                        );
                    } else {
                        config.routes.insert(name.to_string(), route);
                    }
                }
            }
            Entry::EditorFile => {}
            Entry::Other => {
                if path.starts_with("services/") || path.starts_with("routes/") {
                    r.warning(None, "ignored: not part of the config layout");
                }
            }
        }
    }

    if let Some((g, mut backends)) = group.take() {
        json_backends.entry(g).or_default().append(&mut backends);
    }

    // A service lives in exactly one layout.
    for (name, svc) in &yaml_services {
        let json_files: Vec<String> = frontends
            .get(name)
            .map(|(f, _)| f.clone())
            .into_iter()
            .chain(
                json_backends
                    .get(name)
                    .into_iter()
                    .flat_map(|b| b.values().map(|b| b.source.clone())),
            )
            .collect();
        if !json_files.is_empty() {
            diags.error(
                svc.source.as_str(),
                None,
                format!(
                    "service {name:?} is defined in both layouts: {} and {}",
                    svc.source,
                    json_files.join(", ")
                ),
            );
        }
    }
    for (name, svc) in yaml_services {
        config.services.insert(name.to_string(), svc);
    }
    for (name, (source, frontend)) in frontends {
        let std::collections::btree_map::Entry::Vacant(slot) =
            config.services.entry(name.to_string())
        else {
            continue;
        };
        slot.insert(Service {
            name: name.to_string(),
            source,
            frontend,
            scheduler: None,
            persistence: None,
            backends: json_backends.remove(name).unwrap_or_default(),
        });
    }
    for (name, backends) in json_backends {
        if config.services.contains_key(name) {
            continue;
        }
        for b in backends.values() {
            diags.warning(
                b.source.as_str(),
                None,
                format!("backend of service {name:?}, which has no frontend: ignored"),
            );
        }
    }

    check_conflicts(&config, &mut diags);
    diags.sort();
    (config, diags)
}

/// Two services claiming one IPVS service, two routes with one prefix.
fn check_conflicts(config: &Config, diags: &mut Diagnostics) {
    // Hashed with fixed keys: deterministic, and no ordered map is needed to
    // find who claimed a key before.
    type Fixed = std::hash::BuildHasherDefault<std::hash::DefaultHasher>;
    let mut claimed: std::collections::HashMap<ServiceKey, &Service, Fixed> =
        std::collections::HashMap::with_capacity_and_hasher(
            4 * config.services.len(),
            Fixed::default(),
        );
    for svc in config.services.values() {
        for key in svc.frontend.service_keys() {
            if let Some(other) = claimed.insert(key, svc) {
                diags.error(
                    svc.source.as_str(),
                    None,
                    format!(
                        "{key} is claimed by both service {:?} ({}) and service {:?} ({})",
                        other.name, other.source, svc.name, svc.source
                    ),
                );
            }
        }
    }
    let mut prefixes: BTreeMap<(Option<IpNet>, Option<Family>), &Route> = BTreeMap::new();
    for route in config.routes.values() {
        let mut reported = Vec::new();
        for key in route_claims(route) {
            if let Some(other) = prefixes.insert(key, route) {
                if reported.contains(&other.name) {
                    continue;
                }
                reported.push(other.name.clone());
                let what = match key {
                    (Some(p), _) => format!("prefix {p}"),
                    (None, _) if other.gateway.is_none() && route.gateway.is_none() => {
                        "the default route".to_string()
                    }
                    (None, Some(family)) => format!("the {family} default route"),
                    (None, None) => "the default route".to_string(),
                };
                diags.error(
                    route.source.as_str(),
                    None,
                    format!(
                        "routes {:?} ({}) and {:?} ({}) both claim {what}",
                        other.name, other.source, route.name, route.source
                    ),
                );
            }
        }
    }
}

/// What a route claims: its prefix, or for a default route the default of
/// each family it covers (a default route with a gateway only covers the
/// gateway's family; one without covers both, so it collides with either).
fn route_claims(route: &Route) -> Vec<(Option<IpNet>, Option<Family>)> {
    match (route.prefix, route.gateway) {
        (Some(p), _) => vec![(Some(p), None)],
        (None, Some(gw)) => vec![(None, Some(Family::of(&gw)))],
        (None, None) => vec![(None, Some(Family::Ipv4)), (None, Some(Family::Ipv6))],
    }
}

/// Parses an overlay tree (the etcd layout). Overlay input is lenient: a
/// malformed key is skipped with a warning naming it, and counted, so one bad
/// publisher cannot take down every service. Frontends in the overlay are
/// ignored (the repo defines services).
pub fn parse_overlay(tree: &Tree) -> (Overlay, Diagnostics) {
    let mut diags = Diagnostics::default();
    let mut overlay = Overlay::default();
    for (path, why) in &tree.unreadable {
        diags.warning(overlay_name(path), None, format!("cannot read: {why}"));
        overlay.skipped += 1;
    }
    // The backends of one service are consecutive in path order: they are
    // gathered here and added to `overlay.backends` together.
    let mut group: Option<(&str, BTreeMap<String, Backend>)> = None;
    let flush = |overlay: &mut Overlay, group: Option<(&str, BTreeMap<String, Backend>)>| {
        if let Some((svc, mut backends)) = group {
            match overlay.backends.get_mut(svc) {
                Some(all) => all.append(&mut backends),
                None => {
                    overlay.backends.insert(svc.to_string(), backends);
                }
            }
        }
    };
    for (path, bytes) in &tree.files {
        // Overlay keys are named `overlay:<key>` in diagnostics and
        // provenance, so they never read as a config repo file.
        let file = overlay_name(path);
        let mut local = Diagnostics::default();
        let mut r = Reporter {
            file: &file,
            diags: &mut local,
            failed: false,
        };
        let mut backend = None;
        match classify(path) {
            Entry::Backend(svc, name) => {
                check_name(&mut r, "backend", name);
                if let Some((endpoints, weight)) = json_endpoints(&mut r, bytes, false, false)
                    && !r.failed
                {
                    backend = Some((svc, name, endpoints, weight));
                }
            }
            Entry::RouteJson(name) => {
                check_name(&mut r, "route", name);
                if let Some(route) = json_route(&mut r, name, bytes, false)
                    && !r.failed
                {
                    overlay.routes.insert(name.to_string(), route);
                }
            }
            Entry::Frontend(svc) => {
                r.warning(None, format!("overlay frontend for service {svc:?} ignored: the config repo defines services"));
            }
            Entry::EditorFile => {}
            _ => {
                if path.starts_with("services/") || path.starts_with("routes/") {
                    r.warning(None, "ignored: not part of the overlay layout");
                }
            }
        }
        let failed = r.failed;
        if failed {
            overlay.skipped += 1;
            local.warning(file.as_str(), None, "skipped");
        }
        diags.extend(local.into_warnings());
        if let Some((svc, name, endpoints, weight)) = backend {
            if group.as_ref().is_none_or(|(g, _)| *g != svc) {
                flush(&mut overlay, group.take());
                group = Some((svc, BTreeMap::new()));
            }
            if let Some((_, backends)) = &mut group {
                backends.insert(
                    name.to_string(),
                    Backend {
                        name: name.to_string(),
                        source: file,
                        endpoints,
                        weight,
                    },
                );
            }
        }
    }
    flush(&mut overlay, group);
    diags.sort();
    (overlay, diags)
}

/// How an overlay key is named in diagnostics and provenance.
fn overlay_name(key: &str) -> String {
    let mut name = String::with_capacity(8 + key.len());
    name.push_str("overlay:");
    name.push_str(key);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_key_pos_finds_keys_not_values() {
        let text = "{\"a\": \"tcp\",\n  \"tcp\": 80}";
        assert_eq!(json_key_pos(text, "tcp"), Some(Pos { line: 2, column: 3 }));
        assert_eq!(json_key_pos(text, "a"), Some(Pos { line: 1, column: 2 }));
        assert_eq!(json_key_pos(text, "b"), None);
        let dup = "{\"tcp\": 80,\n \"tcp\": 81}";
        assert_eq!(
            json_key_pos_nth(dup, "tcp", 1),
            Some(Pos { line: 2, column: 2 })
        );
        assert_eq!(json_key_pos_nth(dup, "tcp", 2), None);
        assert_eq!(
            json_key_pos("{\"x\\\"y\": 1}", "x\\\"y"),
            Some(Pos { line: 1, column: 2 })
        );
    }

    #[test]
    fn classify_paths() {
        assert_eq!(classify("services/web.yaml"), Entry::ServiceYaml("web"));
        assert_eq!(classify("services/web.yml"), Entry::ServiceYaml("web"));
        assert_eq!(classify("services/web/frontend"), Entry::Frontend("web"));
        assert_eq!(
            classify("services/web/backends/a"),
            Entry::Backend("web", "a")
        );
        assert_eq!(classify("routes/r1"), Entry::RouteJson("r1"));
        assert_eq!(classify("routes/r1.yaml"), Entry::RouteYaml("r1"));
        assert_eq!(classify("routes/r1.txt"), Entry::Other);
        for leftover in [
            "services/web/backends/api-1~",
            "services/web/backends/.#api-1",
            "services/web/backends/api-1.swp",
            "services/web/backends/api-1.swx",
            "services/web/backends/4913",
            "services/web.yaml~",
            "routes/r1~",
            "routes/4913",
            "clusterf.yaml~",
        ] {
            assert_eq!(classify(leftover), Entry::EditorFile, "{leftover}");
        }
        assert_eq!(
            classify("services/web/backends/4914"),
            Entry::Backend("web", "4914")
        );
        assert_eq!(classify("clusterf.yaml"), Entry::Defaults);
        assert_eq!(classify("README.md"), Entry::Other);
    }

    /// The full YAML path alone, with its diagnostics.
    fn full_service(text: &str) -> (Option<Service>, Diagnostics) {
        let mut diags = Diagnostics::default();
        let mut r = Reporter {
            file: "services/s.yaml",
            diags: &mut diags,
            failed: false,
        };
        let svc = full_yaml_service(&mut r, "s", text.as_bytes());
        (svc, diags)
    }

    fn full_route(text: &str) -> (Option<Route>, Diagnostics) {
        let mut diags = Diagnostics::default();
        let mut r = Reporter {
            file: "routes/r.yaml",
            diags: &mut diags,
            failed: false,
        };
        let route = full_yaml_route(&mut r, "r", text.as_bytes());
        (route, diags)
    }

    /// Whatever the fast reader takes, the full parser reads the same way,
    /// without a diagnostic.
    fn assert_fast_service_agrees(text: &str) -> bool {
        let Some(fast) = fast_yaml_service("services/s.yaml", "s", text.as_bytes()) else {
            return false;
        };
        let (full, diags) = full_service(text);
        assert!(
            diags.is_empty(),
            "fast path took {text:?}; full path: {diags:?}"
        );
        assert_eq!(Some(fast), full, "fast and full differ on {text:?}");
        true
    }

    fn assert_fast_route_agrees(text: &str) -> bool {
        let Some(fast) = fast_yaml_route("routes/r.yaml", "r", text.as_bytes()) else {
            return false;
        };
        let (full, diags) = full_route(text);
        assert!(
            diags.is_empty(),
            "fast path took {text:?}; full path: {diags:?}"
        );
        assert_eq!(Some(fast), full, "fast and full differ on {text:?}");
        true
    }

    #[test]
    fn fast_yaml_special_spellings_are_special_in_any_case() {
        for word in fast_yaml::SPECIAL {
            assert!(fast_yaml::special(word), "{word}");
            assert!(fast_yaml::special(&word.to_uppercase()), "{word}");
        }
        assert!(!fast_yaml::special("ipv4"));
        assert!(!fast_yaml::special("b0"));
    }

    #[test]
    fn fast_yaml_takes_the_usual_layouts() {
        for text in [
            // The README's and the benchmark's shape.
            "frontend:\n  ipv4: 10.0.0.1\n  ipv6: \"2001:db8::1\"\n  tcp: 80\n  udp: 53\nbackends:\n  b0: {ipv4: 100.0.0.1, ipv6: \"2001:db8:1::1\", tcp: 8080, udp: 5353, weight: 1}\n",
            // Block backends, comments, blank lines, 4-space indent, quotes.
            "# web\nfrontend:   # the VIP\n    ipv4: '10.0.0.1'\n    tcp: 80\n\nscheduler: wrr\npersistence: 300\nbackends:\n    web-1:\n        ipv4: 10.1.0.1 # one\n        weight: 0\n    web.2@x:\n        ipv6: 2001:db8::2\n        tcp: 8080\n",
            "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends: {}\n",
            "frontend: { ipv6: \"fe80::1\" , udp: 53 }\nbackends:\n  a: { ipv6: fe80::2 }\n",
        ] {
            assert!(
                assert_fast_service_agrees(text),
                "fast path refused {text:?}"
            );
        }
        for text in [
            "prefix: 10.0.0.0/8\nmethod: droute\n",
            "prefix: \"2001:db8::/32\"\ngateway: 2001:db8::1\nmethod: tunnel # via\n",
            "method: masq\n",
            "prefix: 192.168.0.0/16\nmethod: none\n",
        ] {
            assert!(assert_fast_route_agrees(text), "fast path refused {text:?}");
        }
    }

    #[test]
    fn fast_yaml_agrees_on_large_files_and_long_lines() {
        let frontend = "frontend: {ipv4: 10.0.0.1, tcp: 80}\n";
        let block: String = (0..500)
            .map(|i| {
                format!(
                    "  b{i}: {{ipv4: 10.1.{}.{}, tcp: 8080}}\n",
                    i / 256,
                    i % 256
                )
            })
            .collect();
        let text = format!("{frontend}backends:\n{block}");
        assert!(assert_fast_service_agrees(&text));
        // One flow mapping far longer than YAML's 1024-character limit on
        // implicit keys.
        let flow: Vec<String> = (0..200)
            .map(|i| format!("b{i}: {{ipv4: 10.1.0.{}, weight: {i}}}", i % 256))
            .collect();
        let text = format!("{frontend}backends: {{{}}}\n", flow.join(", "));
        assert!(text.len() > 5000);
        assert!(assert_fast_service_agrees(&text));
    }

    #[test]
    fn fast_yaml_leaves_the_rest_to_the_full_parser() {
        for text in [
            "",
            "---\nfrontend: {ipv4: 10.0.0.1, tcp: 80}\n",
            "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends:\n  a: {ipv4: 10.0.0.2, ipv4: 10.0.0.3}\n",
            "frontend: {ipv4: 10.0.0.1, tcp: 80}\nfrontend: {ipv4: 10.0.0.1, tcp: 80}\n",
            "frontend: {ipv4: 10.0.0.1, tcp: 080}\n",
            "frontend: {ipv4: 10.0.0.1, tcp: 0x50}\n",
            "frontend: {ipv4: 10.0.0.1, tcp: \"80\"}\n",
            "frontend: {ipv4: 10.0.0.1, tcp: 80,}\n",
            "frontend: {ipv4: 10.0.0.1, tcp: 80}\nscheduler: yes\n",
            "frontend: {ipv4: 10.0.0.1, tcp: 80}\nscheduler: nope\n",
            "frontend: {ipv4: 10.0.0.1, tcp: 80}\nscheduler:\n",
            "frontend: {ipv4: 10.0.0.1, tcp: 80}\nscheduler: wlc\n  rr\n",
            "frontend: {ipv4: \"10.0.0.1\\n\", tcp: 80}\n",
            "frontend:\n\tipv4: 10.0.0.1\n\ttcp: 80\n",
            "frontend: &f {ipv4: 10.0.0.1, tcp: 80}\n",
            "frontend: {ipv4: 10.0.0.1, tcp: 80}\r\n",
            "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends:\n  on: {ipv4: 10.0.0.2}\n",
            "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends:\n  10.0.0.2: {ipv4: 10.0.0.2}\n",
            "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends:\n  a: {ipv4: 10.0.0.2, tcp: 70000}\n",
            "frontend: {ipv4: 10.0.0.1, ipv6: 2001:db8::, tcp: 80}\n",
            "frontend: {ipv4: 10.0.0.1, tcp: 80}#c\n",
            "  frontend: {ipv4: 10.0.0.1, tcp: 80}\n",
        ] {
            assert!(
                fast_yaml_service("services/s.yaml", "s", text.as_bytes()).is_none(),
                "fast path took {text:?}"
            );
        }
    }

    mod fast_yaml_props {
        use super::*;
        use proptest::prelude::*;

        fn scalar() -> impl Strategy<Value = String> {
            prop::sample::select(vec![
                "10.0.0.1",
                "\"10.0.0.1\"",
                "'10.0.0.1'",
                "2001:db8::1",
                "\"2001:db8::1\"",
                "fe80::1",
                "::1",
                "1.2.3",
                "1.2",
                "yes",
                "Yes",
                "no",
                "on",
                "null",
                "~",
                "\"\"",
                "80",
                "0",
                "080",
                "0x50",
                "1e2",
                "80.0",
                "-1",
                "+80",
                "65536",
                "1:30",
                "10.0.0.0/8",
                "2001:db8::/32",
                "a b",
                "wlc",
                "rr",
                "masq",
                "droute",
                "none",
                "tunnel",
                "NaN",
                ".inf",
                "1_000",
                "0o17",
                "'it''s'",
                "\"a\\tb\"",
                "[1]",
                "{}",
                "{a: 1}",
                "!!str 80",
                "&a 80",
                "*a",
                "|",
                "10.0.0.1 # c",
                "10.0.0.1#c",
                "1.2.3.4:80",
                "y",
                "n",
                "true",
                "2001-01-01",
                "10.0.0.256",
                "010.0.0.1",
            ])
            .prop_map(str::to_string)
        }

        /// Mostly a good value for the key, sometimes any scalar.
        fn value_for(key: &'static str) -> BoxedStrategy<String> {
            let good: Vec<&'static str> = match key {
                "ipv4" => vec!["10.0.0.1", "\"10.0.0.2\"", "'10.0.0.3'", "192.168.1.1"],
                "ipv6" => vec!["2001:db8::1", "\"2001:db8::2\"", "fe80::1", "'::1'"],
                "tcp" | "udp" => vec!["80", "53", "8080", "65535", "1"],
                "weight" => vec!["0", "1", "10", "65535"],
                "prefix" => vec![
                    "10.0.0.0/8",
                    "\"2001:db8::/32\"",
                    "192.168.0.0/16",
                    "fe80::/10",
                ],
                "gateway" => vec!["10.0.0.1", "2001:db8::1", "'10.9.9.9'"],
                "method" => vec!["masq", "droute", "tunnel", "none", "\"masq\""],
                "scheduler" => vec!["wlc", "rr", "\"sh\"", "'mh'"],
                "persistence" => vec!["1", "300", "2678400"],
                _ => vec!["x"],
            };
            prop_oneof![
                12 => prop::sample::select(good).prop_map(str::to_string),
                1 => scalar(),
            ]
            .boxed()
        }

        /// Fields of a frontend or backend: mostly distinct known keys.
        fn fields(frontend: bool) -> impl Strategy<Value = Vec<(String, String)>> {
            let keys = if frontend {
                vec!["ipv4", "ipv6", "tcp", "udp"]
            } else {
                vec!["ipv4", "ipv6", "tcp", "udp", "weight"]
            };
            let n = keys.len();
            (
                prop::sample::subsequence(keys, 1..=n).prop_shuffle(),
                prop::sample::select(vec![
                    "", "", "", "", "", "", "", "", "", "", "", "", "", "", "", "", "", "", "",
                    "ipv4", "Ipv4", "bogus", "weight",
                ]),
            )
                .prop_flat_map(|(keys, odd)| {
                    let mut keys = keys;
                    if !odd.is_empty() {
                        keys.push(odd);
                    }
                    keys.into_iter()
                        .map(|k| value_for(k).prop_map(move |v| (k.to_string(), v)))
                        .collect::<Vec<_>>()
                })
        }

        fn name() -> impl Strategy<Value = String> {
            prop::sample::select(vec![
                "b0", "b1", "b2", "b3", "web-1", "a.b", "x@y", "a_b", "B0", "b0", "b1", "1", "yes",
                "null", "a:b", "on", "\"q\"", "a b",
            ])
            .prop_map(str::to_string)
        }

        /// A mapping of `pairs`, in flow or block style at `indent`.
        fn mapping(pairs: &[(String, String)], flow: bool, indent: usize, pad: &str) -> String {
            if flow {
                let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                format!(" {{{pad}{}{pad}}}\n", inner.join(&format!(",{pad}")))
            } else {
                let mut out = String::from("\n");
                for (k, v) in pairs {
                    out.push_str(&format!("{}{k}: {v}{pad}\n", " ".repeat(indent)));
                }
                out
            }
        }

        prop_compose! {
            fn service_doc()(
                frontend in fields(true),
                frontend_flow in any::<bool>(),
                backends in prop::collection::vec(
                    (name(), fields(false), any::<bool>()),
                    0..4,
                ),
                backends_key in any::<bool>(),
                extra in prop::sample::select(vec![
                    vec![], vec!["scheduler"], vec!["persistence"], vec!["scheduler", "persistence"],
                    vec![], vec![], vec!["bogus"], vec!["frontend"], vec!["scheduler", "scheduler"],
                ]).prop_flat_map(|keys| keys.into_iter()
                    .map(|k| value_for(k).prop_map(move |v| (k, v)))
                    .collect::<Vec<_>>()),
                indent in 1usize..5,
                pad in prop::sample::select(vec!["", " ", "  # c", " #c"]),
                first in prop::sample::select(vec!["", "", "# head\n", "\n", "---\n"]),
            ) -> String {
                let mut doc = first.to_string();
                doc.push_str("frontend:");
                let flow_pad = if pad.contains('#') { " " } else { pad };
                doc.push_str(&mapping(&frontend, frontend_flow, indent, if frontend_flow { flow_pad } else { pad }));
                for (k, v) in &extra {
                    doc.push_str(&format!("{k}: {v}{pad}\n"));
                }
                if backends_key {
                    doc.push_str("backends:");
                    if backends.is_empty() {
                        doc.push_str(" {}\n");
                    } else {
                        doc.push('\n');
                        for (n, fields, flow) in &backends {
                            doc.push_str(&format!("{}{n}:", " ".repeat(indent)));
                            let body = mapping(fields, *flow, indent * 2, if *flow { flow_pad } else { pad });
                            doc.push_str(&body);
                        }
                    }
                }
                doc
            }
        }

        proptest! {
            #[test]
            fn fast_yaml_agrees_with_serde_saphyr(doc in service_doc()) {
                assert_fast_service_agrees(&doc);
            }

            #[test]
            fn fast_yaml_agrees_after_any_edit(
                doc in service_doc(),
                at in any::<prop::sample::Index>(),
                edit in prop::sample::select(vec![
                    " ", "\t", ":", "#", "-", "{", "}", ",", "\"", "'", "\n", "&", "*", "!", "|",
                    ">", "?", "[", "\n  ", "\\", "%", "@", "`", "0", "a", ".",
                ]),
                delete in any::<bool>(),
            ) {
                let mut doc = doc;
                let i = at.index(doc.len() + 1);
                if delete && i < doc.len() {
                    doc.remove(i);
                } else {
                    doc.insert_str(i, edit);
                }
                assert_fast_service_agrees(&doc);
            }

            #[test]
            fn fast_yaml_route_agrees_with_serde_saphyr(
                pairs in (
                    prop::sample::subsequence(vec!["prefix", "gateway", "method"], 0..=3)
                        .prop_shuffle(),
                    prop::sample::select(vec!["", "", "bogus", "method"]),
                ).prop_flat_map(|(keys, odd)| {
                    let mut keys = keys;
                    if !odd.is_empty() {
                        keys.push(odd);
                    }
                    keys.into_iter()
                        .map(|k| value_for(k).prop_map(move |v| (k, v)))
                        .collect::<Vec<_>>()
                }),
                pad in prop::sample::select(vec!["", " ", "  # c"]),
            ) {
                let doc: String = pairs.iter().map(|(k, v)| format!("{k}: {v}{pad}\n")).collect();
                assert_fast_route_agrees(&doc);
            }
        }
    }

    #[test]
    fn fast_yaml_route_with_a_bad_name_is_left_out() {
        let mut t = Tree::new("t");
        t.insert("routes/bad name.yaml", "prefix: 10.0.0.0/8\nmethod: masq\n");
        t.insert(
            "routes/bad name2",
            r#"{"Prefix": "10.0.0.0/8", "IPVSMethod": "masq"}"#,
        );
        let (config, diags) = parse_config(&t);
        assert!(config.routes.is_empty(), "{:?}", config.routes);
        assert_eq!(diags.errors().count(), 2, "{diags:?}");
    }

    #[test]
    fn fast_json_takes_the_usual_files_and_leaves_the_rest() {
        for (text, frontend) in [
            (r#"{"ipv4": "10.0.0.1", "tcp": 80}"#, true),
            ("{\n  \"IPv4\": \"10.0.0.1\",\n  \"UDP\": 53\n}\n", true),
            (r#"{"ipv6":"2001:db8::1","tcp":8080,"weight":0}"#, false),
        ] {
            assert!(
                fast_json_agrees(text, frontend),
                "fast path refused {text:?}"
            );
        }
        for text in [
            "",
            "{}",
            r#"{"ipv4": "10.0.0.1", "tcp": 80,}"#,
            r#"{"ipv4": "10.0.0.1", "tcp": 080}"#,
            r#"{"ipv4": "10.0.0.1", "tcp": 80.0}"#,
            r#"{"ipv4": "10.0.0.1", "tcp": 8e1}"#,
            r#"{"ipv4": "10.0.0.1", "tcp": -80}"#,
            r#"{"ipv4": "10.0.0.1", "tcp": null}"#,
            r#"{"ipv4": "10.0.0.1", "tcp": "80"}"#,
            r#"{"ipv4": "10.0.0.1", "Tcp": 80, "tcp": 80}"#,
            r#"{"ipv4": "10.0.0.1", "tcp": 80, "tcp": 81}"#,
            r#"{"ipv4": "10.0.0.\u0031", "tcp": 80}"#,
            r#"{"ipv4": "10.0.0.1", "tcp": 80} x"#,
            r#"{"ipv4": "10.0.0.1", "tcp": 80, "weight": 1}"#,
            r#"{"ipv4": "10.0.0.1", "bogus": 1, "tcp": 80}"#,
            r#"[{"ipv4": "10.0.0.1", "tcp": 80}]"#,
        ] {
            assert!(
                fast_json_endpoints("f", text.as_bytes(), true).is_none(),
                "fast path took {text:?}"
            );
        }
    }

    /// Whatever the fast JSON reader takes, serde_json reads the same way,
    /// without a diagnostic.
    fn fast_json_agrees(text: &str, frontend: bool) -> bool {
        let Some(fast) = fast_json_endpoints("f", text.as_bytes(), frontend) else {
            return false;
        };
        for strict in [true, false] {
            let mut diags = Diagnostics::default();
            let mut r = Reporter {
                file: "f",
                diags: &mut diags,
                failed: false,
            };
            let full = full_json_endpoints(&mut r, text.as_bytes(), frontend, strict);
            assert!(
                diags.is_empty(),
                "fast path took {text:?}; full path: {diags:?}"
            );
            assert_eq!(Some(fast.clone()), full, "fast and full differ on {text:?}");
        }
        true
    }

    mod fast_json_props {
        use super::*;
        use proptest::prelude::*;

        fn value_for(key: &'static str) -> BoxedStrategy<String> {
            let good: Vec<&'static str> = match key.to_ascii_lowercase().as_str() {
                "ipv4" => vec!["\"10.0.0.1\"", "\"192.168.1.1\""],
                "ipv6" => vec!["\"2001:db8::1\"", "\"::1\""],
                "tcp" | "udp" => vec!["80", "53", "65535", "1"],
                "weight" => vec!["0", "1", "10", "65535"],
                _ => vec!["1"],
            };
            let any = prop::sample::select(vec![
                "\"\"",
                "\"x\"",
                "0",
                "080",
                "-1",
                "1.5",
                "1e2",
                "null",
                "true",
                "[]",
                "{}",
                "\"10.0.0.1\\n\"",
                "\"a\\\"b\"",
                "65536",
                "99999999999",
                "\"80\"",
                "1 2",
            ]);
            prop_oneof![
                8 => prop::sample::select(good).prop_map(str::to_string),
                1 => any.prop_map(str::to_string),
            ]
            .boxed()
        }

        prop_compose! {
            fn json_doc()(
                pairs in (
                    prop::sample::subsequence(vec!["ipv4", "ipv6", "tcp", "udp", "weight"], 1..=5)
                        .prop_shuffle(),
                    prop::sample::select(vec!["", "", "", "", "", "IPv4", "TCP", "Weight", "bogus", "ipv4"]),
                ).prop_flat_map(|(keys, odd)| {
                    let mut keys = keys;
                    if !odd.is_empty() {
                        keys.push(odd);
                    }
                    keys.into_iter()
                        .map(|k| value_for(k).prop_map(move |v| (k, v)))
                        .collect::<Vec<_>>()
                }),
                sep in prop::sample::select(vec![",", ", ", ",\n  ", " ,", ",\t", ",,"]),
                open in prop::sample::select(vec!["{", "{ ", "{\n  ", " {", "\n{"]),
                close in prop::sample::select(vec!["}", " }", "\n}", "}\n", "} ", "},", "}}"]),
                colon in prop::sample::select(vec![": ", ":", " : ", ":\n"]),
            ) -> String {
                let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("\"{k}\"{colon}{v}")).collect();
                format!("{open}{}{close}", inner.join(sep))
            }
        }

        proptest! {
            #[test]
            fn fast_json_agrees_with_serde_json(
                doc in json_doc(),
                frontend in any::<bool>(),
                at in any::<prop::sample::Index>(),
                edit in prop::sample::select(vec![
                    "", "", "", " ", "\t", "\r", "\"", "\\", ",", ":", "}", "{", "0", "-", ".", "\u{1}", "é",
                ]),
            ) {
                let mut doc = doc;
                let i = at.index(doc.len() + 1);
                if doc.is_char_boundary(i) {
                    doc.insert_str(i, edit);
                }
                fast_json_agrees(&doc, frontend);
            }
        }
    }
}
