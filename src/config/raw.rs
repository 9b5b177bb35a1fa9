//! The YAML input types before validation (`Raw*`), and the JSON Schemas
//! they generate for `schema/`. Field doc comments are schema descriptions:
//! a change here changes the published schemas. No validation here.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::model::{Method, SCHEDULERS};

/// The keys of each input type, in serde's order (its "expected one of"
/// lists): `lenient` walks a refused file against them.
pub(super) const FRONTEND_FIELDS: &[&str; 4] = &["ipv4", "ipv6", "tcp", "udp"];
pub(super) const BACKEND_FIELDS: &[&str; 5] = &["ipv4", "ipv6", "tcp", "udp", "weight"];
pub(super) const SERVICE_FIELDS: &[&str; 4] = &["frontend", "scheduler", "persistence", "backends"];
pub(super) const ROUTE_FIELDS: &[&str; 3] = &["prefix", "gateway", "method"];
pub(super) const DEFAULTS_FIELDS: &[&str; 2] = &["scheduler", "method"];
/// [`RawRouteMethod`]'s values.
pub(super) const ROUTE_METHODS: &[&str; 4] = &["masq", "droute", "tunnel", "none"];

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
pub(super) struct RawFrontend {
    /// IPv4 virtual address.
    #[schemars(with = "Option<Ipv4Addr>")]
    pub(super) ipv4: Option<Spanned<RawStr>>,
    /// IPv6 virtual address.
    #[schemars(with = "Option<Ipv6Addr>")]
    pub(super) ipv6: Option<Spanned<RawStr>>,
    /// TCP port.
    #[schemars(with = "Option<u16>", range(min = 1, max = 65535))]
    pub(super) tcp: Option<Spanned<RawInt>>,
    /// UDP port.
    #[schemars(with = "Option<u16>", range(min = 1, max = 65535))]
    pub(super) udp: Option<Spanned<RawInt>>,
}

/// A static backend of a service.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("anyOf" = [
    {"required": ["ipv4"], "properties": {"ipv4": {"type": "string"}}},
    {"required": ["ipv6"], "properties": {"ipv6": {"type": "string"}}},
]))]
pub(super) struct RawBackend {
    /// IPv4 address of the backend.
    #[schemars(with = "Option<Ipv4Addr>")]
    pub(super) ipv4: Option<Spanned<RawStr>>,
    /// IPv6 address of the backend.
    #[schemars(with = "Option<Ipv6Addr>")]
    pub(super) ipv6: Option<Spanned<RawStr>>,
    /// TCP port of the backend (masq only; droute and tunnel use the service port).
    #[schemars(with = "Option<u16>", range(min = 1, max = 65535))]
    pub(super) tcp: Option<Spanned<RawInt>>,
    /// UDP port of the backend (masq only; droute and tunnel use the service port).
    #[schemars(with = "Option<u16>", range(min = 1, max = 65535))]
    pub(super) udp: Option<Spanned<RawInt>>,
    /// Relative weight, 0..65535 (default 10); 0 drains: no new connections.
    #[schemars(with = "Option<u16>", range(min = 0, max = 65535))]
    pub(super) weight: Option<Spanned<RawInt>>,
}

/// An integer field as written in YAML, before validation: a number (an
/// integral float such as `80.0` counts, as in JSON Schema), or what else
/// was there, so that validation can name the field. Quoted numbers are
/// strings, not numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum RawInt {
    Int(i128),
    /// Not an integer: what it was (`a string`, `1.5`, ...).
    Other(&'static str),
}

impl<'de> Deserialize<'de> for RawInt {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(IntVisitor)
    }
}

/// How a [`RawInt`] takes any value; `lenient`'s node tree reads its
/// scalars through it too, so both read alike.
pub(super) struct IntVisitor;

impl<'de> serde::de::Visitor<'de> for IntVisitor {
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

/// A string field as written in YAML, before validation: a string, or what
/// else was there, so that validation can name the field. Plain scalars
/// that YAML reads as numbers or booleans (`ipv4: 10`) are not strings.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum RawStr {
    Str(String),
    /// Not a string: what it was (`an integer`, `a sequence`, ...).
    Other(&'static str),
}

impl<'de> Deserialize<'de> for RawStr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrVisitor)
    }
}

/// How a [`RawStr`] takes any value (see [`IntVisitor`]).
pub(super) struct StrVisitor;

impl<'de> serde::de::Visitor<'de> for StrVisitor {
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
pub(super) struct RawServiceFile {
    /// Virtual addresses and ports; every address x port becomes an IPVS service.
    #[schemars(with = "RawFrontend")]
    pub(super) frontend: Spanned<RawFrontend>,
    /// IPVS scheduler (default from clusterf.yaml, else wlc).
    #[schemars(with = "Option<SchedulerName>")]
    pub(super) scheduler: Option<Spanned<RawStr>>,
    /// Persistence timeout in seconds (1..2678400).
    #[schemars(with = "Option<u32>", range(min = 1, max = 2678400))]
    pub(super) persistence: Option<Spanned<RawInt>>,
    /// Static backends by name (letters, digits and - _ . @ :).
    #[serde(default)]
    #[schemars(
        with = "BTreeMap<String, RawBackend>",
        extend("propertyNames" = {"pattern": "^[A-Za-z0-9_.@:-]+$"})
    )]
    pub(super) backends: BTreeMap<String, Spanned<RawBackend>>,
}

/// Forwarding method of a route; `none` filters the matched backends out.
#[derive(Debug, Deserialize, JsonSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawRouteMethod {
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
pub(super) struct RawRouteFile {
    /// Backend address prefix (CIDR); absent for a default route.
    #[schemars(with = "Option<CidrPrefix>")]
    pub(super) prefix: Option<Spanned<RawStr>>,
    /// Gateway that matched backends are reached through (same family as the prefix).
    #[schemars(with = "Option<IpAddress>")]
    pub(super) gateway: Option<Spanned<RawStr>>,
    /// Forwarding method for matched backends; none filters them out.
    #[schemars(with = "RawRouteMethod")]
    pub(super) method: Spanned<RawRouteMethod>,
}

/// Repo-wide defaults: `clusterf.yaml`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "clusterf defaults")]
// An empty file (null) sets no defaults.
#[schemars(extend("type" = ["object", "null"]))]
pub(super) struct RawDefaultsFile {
    /// Scheduler of services that name none (default wlc).
    #[schemars(with = "Option<SchedulerName>")]
    pub(super) scheduler: Option<Spanned<RawStr>>,
    /// Forwarding method for backends no route matches (default masq).
    #[schemars(with = "Option<Method>")]
    pub(super) method: Option<Spanned<RawStr>>,
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
