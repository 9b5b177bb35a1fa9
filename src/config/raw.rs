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
pub(super) const FRONTEND_FIELDS: &[&str; 6] =
    &["ipv4", "ipv6", "tcp", "udp", "fwmark_ipv4", "fwmark_ipv6"];
pub(super) const BACKEND_FIELDS: &[&str; 8] = &[
    "ipv4",
    "ipv6",
    "tcp",
    "udp",
    "weight",
    "healthcheck",
    "upper_threshold",
    "lower_threshold",
];
pub(super) const SERVICE_FIELDS: &[&str; 12] = &[
    "frontend",
    "scheduler",
    "persistence",
    "persistence_netmask_ipv4",
    "persistence_netmask_ipv6",
    "persistence_engine",
    "ops",
    "scheduler_flags",
    "backends",
    "healthcheck",
    "fallback",
    "default_weight",
];
pub(super) const FALLBACK_FIELDS: &[&str; 6] = &["ipv4", "ipv6", "tcp", "udp", "weight", "method"];
/// The persistence engines (`--pe`) the kernel has.
pub(super) const PERSISTENCE_ENGINES: &[&str; 1] = &["sip"];
/// The scheduler flags, each named after its scheduler.
pub(super) const SCHEDULER_FLAGS: &[&str; 4] =
    &["sh-fallback", "sh-port", "mh-fallback", "mh-port"];
/// The highest connection threshold (`ipvsadm -x`/`-y` take up to
/// `INT_MAX`).
pub(super) const MAX_THRESHOLD: u32 = i32::MAX as u32;
pub(super) const HEALTHCHECK_FIELDS: &[&str; 11] = &[
    "type",
    "port",
    "path",
    "host",
    "expect",
    "query",
    "interval",
    "timeout",
    "rise",
    "fall",
    "on_failure",
];
/// The values of a health check's `type` and `on_failure`.
pub(super) const CHECK_TYPES: &[&str; 5] = &["tcp", "http", "https", "dns", "none"];
pub(super) const ON_FAILURE: &[&str; 2] = &["drain", "remove"];
pub(super) const ROUTE_FIELDS: &[&str; 4] = &["prefix", "gateway", "method", "tunnel"];
/// The keys of a route's `tunnel:` block.
pub(super) const TUNNEL_FIELDS: &[&str; 3] = &["type", "port", "checksum"];
pub(super) const DEFAULTS_FIELDS: &[&str; 2] = &["scheduler", "method"];
/// [`RawRouteMethod`]'s values.
pub(super) const ROUTE_METHODS: &[&str; 4] = &["masq", "droute", "tunnel", "none"];

/// Addresses and ports of a service frontend, or its fwmarks.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
// At least one address and one port, and a null one does not count; or at
// least one fwmark and no address or port.
#[schemars(transform = frontend_schema)]
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
    /// Firewall mark of an IPv4 fwmark service (ipvsadm -f), instead of addresses and ports.
    #[schemars(with = "Option<u32>", range(min = 1, max = 4294967295u32))]
    pub(super) fwmark_ipv4: Option<Spanned<RawInt>>,
    /// Firewall mark of an IPv6 fwmark service (ipvsadm -f -6), instead of addresses and ports.
    #[schemars(with = "Option<u32>", range(min = 1, max = 4294967295u32))]
    pub(super) fwmark_ipv6: Option<Spanned<RawInt>>,
}

/// A static backend of a service (also the JSON layout's backend file,
/// `services/<svc>/backends/<name>`, whose keys match without case).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "clusterf backend")]
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
    /// Relative weight, 0..65535 (default: the service's default_weight, else 10); 0 drains: no new connections.
    #[schemars(with = "Option<u16>", range(min = 0, max = 65535))]
    pub(super) weight: Option<Spanned<RawInt>>,
    /// false: never health-checked, never drained for health (default true).
    #[schemars(with = "Option<bool>")]
    pub(super) healthcheck: Option<Spanned<RawBool>>,
    /// Connections (active and inactive) above which the dest gets no new ones (ipvsadm -x; default 0, none).
    #[schemars(with = "Option<u32>", range(min = 0, max = 2147483647))]
    pub(super) upper_threshold: Option<Spanned<RawInt>>,
    /// Connections below which an overloaded dest gets new ones again (ipvsadm -y; default 0: 3/4 of the upper threshold).
    #[schemars(with = "Option<u32>", range(min = 0, max = 2147483647))]
    pub(super) lower_threshold: Option<Spanned<RawInt>>,
}

/// A service's health check (`healthcheck:` in a service file, the
/// `services/<svc>/healthcheck` file of the JSON layout, whose keys match
/// without case).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "clusterf health check")]
#[schemars(extend("required" = ["type"]))]
// Keys that do not apply to the type are refused (null is no value, as
// everywhere).
#[schemars(extend("allOf" = [
    {
        "if": {"properties": {"type": {"enum": ["tcp", "dns", "none"]}}},
        "then": {"properties": {
            "path": {"type": "null"}, "host": {"type": "null"}, "expect": {"type": "null"}
        }}
    },
    {
        "if": {"properties": {"type": {"enum": ["tcp", "http", "https", "none"]}}},
        "then": {"properties": {"query": {"type": "null"}}}
    },
    {
        "if": {"properties": {"type": {"const": "none"}}},
        "then": {"properties": {
            "port": {"type": "null"}, "interval": {"type": "null"}, "timeout": {"type": "null"},
            "rise": {"type": "null"}, "fall": {"type": "null"}, "on_failure": {"type": "null"}
        }}
    },
    {
        "if": {"properties": {"type": {"const": "dns"}}},
        "then": {"required": ["query"], "properties": {"query": {"type": "string"}}}
    },
]))]
pub(super) struct RawHealthcheck {
    /// What is checked: a TCP connect, an HTTP(S) GET, a DNS query over UDP, or none (no check).
    #[serde(rename = "type")]
    #[schemars(with = "CheckType")]
    pub(super) kind: Option<Spanned<RawStr>>,
    /// Port checked (default: the dest's port).
    #[schemars(with = "Option<u16>", range(min = 1, max = 65535))]
    pub(super) port: Option<Spanned<RawInt>>,
    /// http, https: the path requested (default /).
    #[schemars(
        with = "Option<String>",
        regex(pattern = r"^/[!-~]*$"),
        length(max = 2048)
    )]
    pub(super) path: Option<Spanned<RawStr>>,
    /// http, https: the Host header (default: the dest's address).
    #[schemars(with = "Option<String>", regex(pattern = r"^[!-~]+$"))]
    pub(super) host: Option<Spanned<RawStr>>,
    /// http, https: the status codes that pass, e.g. 200, 200-399 or 200,204,300-399 (default 200-399).
    #[schemars(with = "Option<ExpectCodes>")]
    pub(super) expect: Option<Spanned<RawScalar>>,
    /// dns (required): the name queried; any answer without a server failure passes.
    #[schemars(with = "Option<String>", length(min = 1, max = 254))]
    pub(super) query: Option<Spanned<RawStr>>,
    /// Time between checks of a dest, 100ms to 1h (default 5s).
    #[schemars(with = "Option<DurationText>")]
    pub(super) interval: Option<Spanned<RawStr>>,
    /// Time a check may take, less than the interval (default 2s).
    #[schemars(with = "Option<DurationText>")]
    pub(super) timeout: Option<Spanned<RawStr>>,
    /// Successes in a row that make a failed dest healthy again, 1..100 (default 2).
    #[schemars(with = "Option<u32>", range(min = 1, max = 100))]
    pub(super) rise: Option<Spanned<RawInt>>,
    /// Failures in a row that make a dest unhealthy, 1..100 (default 3).
    #[schemars(with = "Option<u32>", range(min = 1, max = 100))]
    pub(super) fall: Option<Spanned<RawInt>>,
    /// What an unhealthy dest gets: drain (weight 0, connections keep flowing) or remove (default drain).
    #[schemars(with = "Option<OnFailureName>")]
    pub(super) on_failure: Option<Spanned<RawStr>>,
}

/// A health check's type.
#[derive(JsonSchema)]
#[schemars(extend("enum" = CHECK_TYPES))]
#[allow(dead_code)]
struct CheckType(String);

/// What an unhealthy dest gets.
#[derive(JsonSchema)]
#[schemars(extend("enum" = ON_FAILURE))]
#[allow(dead_code)]
struct OnFailureName(String);

/// A duration: a whole number and a unit, ms, s, m or h (schema only).
#[allow(dead_code)]
struct DurationText;

impl JsonSchema for DurationText {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A whole number and a unit: ms, s, m or h (500ms, 5s, 1m).",
            "pattern": DURATION_PATTERN,
        })
    }
}

/// The durations `validate` reads (`check::parse_duration`).
pub(super) const DURATION_PATTERN: &str = "^(0|[1-9][0-9]{0,8})(ms|s|m|h)$";

/// HTTP status codes (schema only).
#[allow(dead_code)]
struct ExpectCodes;

impl JsonSchema for ExpectCodes {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ExpectCodes".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let code = "[1-5][0-9][0-9]";
        let item = format!("{code}(?: *- *{code})?");
        schemars::json_schema!({
            "description": "A status code (100..599), a range (200-399), or a comma-separated list of both.",
            "anyOf": [
                {"type": "integer", "minimum": 100, "maximum": 599},
                {"type": "string", "pattern": format!("^ *{item} *(?:, *{item} *)*$")},
            ],
        })
    }
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

/// A boolean field as written in YAML, before validation: a boolean, or
/// what else was there (see [`RawInt`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum RawBool {
    Bool(bool),
    Other(&'static str),
}

impl<'de> Deserialize<'de> for RawBool {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(BoolVisitor)
    }
}

/// How a [`RawBool`] takes any value (see [`IntVisitor`]).
pub(super) struct BoolVisitor;

impl<'de> serde::de::Visitor<'de> for BoolVisitor {
    type Value = RawBool;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a boolean")
    }
    fn visit_bool<E>(self, v: bool) -> Result<RawBool, E> {
        Ok(RawBool::Bool(v))
    }
    fn visit_i64<E>(self, _: i64) -> Result<RawBool, E> {
        Ok(RawBool::Other("an integer"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<RawBool, E> {
        Ok(RawBool::Other("an integer"))
    }
    fn visit_i128<E>(self, _: i128) -> Result<RawBool, E> {
        Ok(RawBool::Other("an integer"))
    }
    fn visit_u128<E>(self, _: u128) -> Result<RawBool, E> {
        Ok(RawBool::Other("an integer"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<RawBool, E> {
        Ok(RawBool::Other("a number"))
    }
    fn visit_str<E>(self, _: &str) -> Result<RawBool, E> {
        Ok(RawBool::Other("a string"))
    }
    fn visit_unit<E>(self) -> Result<RawBool, E> {
        Ok(RawBool::Other("null"))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<RawBool, A::Error> {
        while a.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(RawBool::Other("a sequence"))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<RawBool, A::Error> {
        while a
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(RawBool::Other("a mapping"))
    }
}

/// A field that takes a string or an integer (`expect: 200`, `expect:
/// 200-399`), as each of the string, integer and boolean fields would read
/// it; `lenient`'s scalars are the same triple.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct RawScalar(pub(super) RawStr, pub(super) RawInt, pub(super) RawBool);

impl<'de> Deserialize<'de> for RawScalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

/// Reads any value as a [`RawScalar`].
pub(super) struct ScalarVisitor;

impl ScalarVisitor {
    fn of<E>(
        s: impl FnOnce(StrVisitor) -> Result<RawStr, E>,
        i: impl FnOnce(IntVisitor) -> Result<RawInt, E>,
        b: impl FnOnce(BoolVisitor) -> Result<RawBool, E>,
    ) -> Result<RawScalar, E> {
        Ok(RawScalar(s(StrVisitor)?, i(IntVisitor)?, b(BoolVisitor)?))
    }

    pub(super) fn other(what: &'static str) -> RawScalar {
        RawScalar(
            RawStr::Other(what),
            RawInt::Other(what),
            RawBool::Other(what),
        )
    }
}

impl<'de> serde::de::Visitor<'de> for ScalarVisitor {
    type Value = RawScalar;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a single value")
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<RawScalar, E> {
        Self::of(
            |s| s.visit_bool(v),
            |i| i.visit_bool(v),
            |b| b.visit_bool(v),
        )
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawScalar, E> {
        Self::of(|s| s.visit_i64(v), |i| i.visit_i64(v), |b| b.visit_i64(v))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawScalar, E> {
        Self::of(|s| s.visit_u64(v), |i| i.visit_u64(v), |b| b.visit_u64(v))
    }
    fn visit_i128<E: serde::de::Error>(self, v: i128) -> Result<RawScalar, E> {
        Self::of(
            |s| s.visit_i128(v),
            |i| i.visit_i128(v),
            |b| b.visit_i128(v),
        )
    }
    fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<RawScalar, E> {
        Self::of(
            |s| s.visit_u128(v),
            |i| i.visit_u128(v),
            |b| b.visit_u128(v),
        )
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<RawScalar, E> {
        Self::of(|s| s.visit_f64(v), |i| i.visit_f64(v), |b| b.visit_f64(v))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawScalar, E> {
        Self::of(|s| s.visit_str(v), |i| i.visit_str(v), |b| b.visit_str(v))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<RawScalar, E> {
        Ok(Self::other("null"))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<RawScalar, A::Error> {
        while a.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Self::other("a sequence"))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut a: A) -> Result<RawScalar, A::Error> {
        while a
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(Self::other("a mapping"))
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

/// A persistence engine.
#[derive(JsonSchema)]
#[schemars(extend("enum" = PERSISTENCE_ENGINES))]
#[allow(dead_code)]
struct PersistenceEngine(String);

/// Scheduler flags, comma-separated (schema only).
#[allow(dead_code)]
struct SchedulerFlagList;

impl JsonSchema for SchedulerFlagList {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SchedulerFlags".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let flag = format!("(?:{})", SCHEDULER_FLAGS.join("|"));
        schemars::json_schema!({
            "type": "string",
            "description": "Scheduler flags separated by commas, as ipvsadm -b takes them (sh-fallback,sh-port).",
            "pattern": format!("^ *{flag} *(?:, *{flag} *)*$"),
        })
    }
}

/// IPVS scheduler name.
#[derive(JsonSchema)]
#[schemars(extend("enum" = SCHEDULERS))]
#[allow(dead_code)]
struct SchedulerName(String);

/// The two shapes of a frontend, for its schema: at least one address and
/// one port (a null one does not count), or at least one fwmark and no
/// address or port.
fn frontend_shapes() -> serde_json::Value {
    serde_json::json!([
        {
            "anyOf": [
                {"required": ["ipv4"], "properties": {"ipv4": {"type": "string"}}},
                {"required": ["ipv6"], "properties": {"ipv6": {"type": "string"}}},
            ],
            "allOf": [{"anyOf": [
                {"required": ["tcp"], "properties": {"tcp": {"type": "integer"}}},
                {"required": ["udp"], "properties": {"udp": {"type": "integer"}}},
            ]}],
            "properties": {"fwmark_ipv4": {"type": "null"}, "fwmark_ipv6": {"type": "null"}},
        },
        {
            "anyOf": [
                {"required": ["fwmark_ipv4"], "properties": {"fwmark_ipv4": {"type": "integer"}}},
                {"required": ["fwmark_ipv6"], "properties": {"fwmark_ipv6": {"type": "integer"}}},
            ],
            "properties": {
                "ipv4": {"type": "null"}, "ipv6": {"type": "null"},
                "tcp": {"type": "null"}, "udp": {"type": "null"},
            },
        },
    ])
}

/// The service options' rules, for a schema: persistence options need
/// persistence; one-packet scheduling and the persistence engine need a
/// UDP or fwmark service (`ports` says where the frontend's keys are);
/// scheduler flags name their scheduler (null is no value, as everywhere).
fn option_rules(ports: impl FnOnce(serde_json::Value) -> serde_json::Value) -> serde_json::Value {
    let udp_or_fwmark = serde_json::json!({"anyOf": [
        {"required": ["udp"], "properties": {"udp": {"type": "integer"}}},
        {"required": ["fwmark_ipv4"], "properties": {"fwmark_ipv4": {"type": "integer"}}},
        {"required": ["fwmark_ipv6"], "properties": {"fwmark_ipv6": {"type": "integer"}}},
    ]});
    let flags_need = |prefix: &str, scheduler: &str| {
        serde_json::json!({
            "if": {"required": ["scheduler_flags"], "properties": {"scheduler_flags": {"type": "string", "pattern": prefix}}},
            "then": {"required": ["scheduler"], "properties": {"scheduler": {"const": scheduler}}}
        })
    };
    serde_json::json!([
        {
            "if": {"anyOf": [
                {"required": ["persistence_netmask_ipv4"], "properties": {"persistence_netmask_ipv4": {"type": "integer"}}},
                {"required": ["persistence_netmask_ipv6"], "properties": {"persistence_netmask_ipv6": {"type": "integer"}}},
                {"required": ["persistence_engine"], "properties": {"persistence_engine": {"type": "string"}}},
            ]},
            "then": {"required": ["persistence"], "properties": {"persistence": {"type": "integer"}}}
        },
        {
            "if": {"anyOf": [
                {"required": ["ops"], "properties": {"ops": {"const": true}}},
                {"required": ["persistence_engine"], "properties": {"persistence_engine": {"type": "string"}}},
            ]},
            "then": ports(udp_or_fwmark)
        },
        flags_need("sh-", "sh"),
        flags_need("mh-", "mh"),
    ])
}

fn frontend_schema(schema: &mut schemars::Schema) {
    schema.insert("anyOf".into(), frontend_shapes());
}

/// The YAML service: its frontend's keys are under `frontend`.
fn service_schema(schema: &mut schemars::Schema) {
    let rules = option_rules(|p| serde_json::json!({"properties": {"frontend": p}}));
    schema.insert("allOf".into(), rules);
}

/// The JSON layout's frontend file holds the frontend's keys and the
/// service's options side by side.
fn json_frontend_schema(schema: &mut schemars::Schema) {
    schema.insert("anyOf".into(), frontend_shapes());
    schema.insert("allOf".into(), option_rules(|p| p));
}

/// A service: `services/<name>.yaml`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "clusterf service")]
// Persistence options need persistence; one-packet scheduling and the
// persistence engine need a UDP or fwmark service; scheduler flags name
// their scheduler (null is no value, as everywhere).
#[schemars(transform = service_schema)]
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
    /// Persistence granularity of the IPv4 services as a prefix length, 0..32 (ipvsadm -M; default 32); needs persistence.
    #[schemars(with = "Option<u8>", range(min = 0, max = 32))]
    pub(super) persistence_netmask_ipv4: Option<Spanned<RawInt>>,
    /// Persistence granularity of the IPv6 services as a prefix length, 1..128 (ipvsadm -M; default 128); needs persistence.
    #[schemars(with = "Option<u8>", range(min = 1, max = 128))]
    pub(super) persistence_netmask_ipv6: Option<Spanned<RawInt>>,
    /// Persistence engine (ipvsadm --pe): sip, for the UDP and fwmark services; needs persistence.
    #[schemars(with = "Option<PersistenceEngine>")]
    pub(super) persistence_engine: Option<Spanned<RawStr>>,
    /// One-packet scheduling (ipvsadm -o): every UDP datagram is scheduled on its own; for the UDP and fwmark services.
    #[schemars(with = "Option<bool>")]
    pub(super) ops: Option<Spanned<RawBool>>,
    /// Scheduler flags, comma-separated as ipvsadm -b takes them: sh-fallback, sh-port (scheduler sh), mh-fallback, mh-port (scheduler mh).
    #[schemars(with = "Option<SchedulerFlagList>")]
    pub(super) scheduler_flags: Option<Spanned<RawStr>>,
    /// Static backends by name (letters, digits and - _ . @ :).
    #[serde(default)]
    #[schemars(
        with = "BTreeMap<String, RawBackend>",
        extend("propertyNames" = {"pattern": "^[A-Za-z0-9_.@:-]+$"})
    )]
    pub(super) backends: BTreeMap<String, Spanned<RawBackend>>,
    /// Health check of the dests (default: none).
    #[schemars(with = "Option<RawHealthcheck>")]
    pub(super) healthcheck: Option<Spanned<RawHealthcheck>>,
    /// The dest that serves when no other dest has weight (keepalived's sorry server; default: none).
    #[schemars(with = "Option<RawFallback>")]
    pub(super) fallback: Option<Spanned<RawFallback>>,
    /// Weight of the backends that name none, also the overlay's, 0..65535 (default 10).
    #[schemars(with = "Option<u16>", range(min = 0, max = 65535))]
    pub(super) default_weight: Option<Spanned<RawInt>>,
}

/// A service's fallback dest (`fallback:` in a service file, the
/// `services/<svc>/fallback` file of the JSON layout, whose keys match
/// without case): weight 0 while any other dest has weight, its own weight
/// when none has.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "clusterf fallback")]
#[schemars(extend("anyOf" = [
    {"required": ["ipv4"], "properties": {"ipv4": {"type": "string"}}},
    {"required": ["ipv6"], "properties": {"ipv6": {"type": "string"}}},
]))]
pub(super) struct RawFallback {
    /// IPv4 address of the fallback (a family the frontend has).
    #[schemars(with = "Option<Ipv4Addr>")]
    pub(super) ipv4: Option<Spanned<RawStr>>,
    /// IPv6 address of the fallback (a family the frontend has).
    #[schemars(with = "Option<Ipv6Addr>")]
    pub(super) ipv6: Option<Spanned<RawStr>>,
    /// TCP port of the fallback (masq only; droute and tunnel use the service port).
    #[schemars(with = "Option<u16>", range(min = 1, max = 65535))]
    pub(super) tcp: Option<Spanned<RawInt>>,
    /// UDP port of the fallback (masq only; droute and tunnel use the service port).
    #[schemars(with = "Option<u16>", range(min = 1, max = 65535))]
    pub(super) udp: Option<Spanned<RawInt>>,
    /// Weight while it serves, 1..65535 (default 1).
    #[schemars(with = "Option<u16>", range(min = 1, max = 65535))]
    pub(super) weight: Option<Spanned<RawInt>>,
    /// Forwarding method (default: as a backend's, from the routes and the default method).
    #[schemars(with = "Option<Method>")]
    pub(super) method: Option<Spanned<RawStr>>,
}

/// The JSON layout's frontend file, `services/<svc>/frontend` (schema
/// only; read by `json` with Go's key matching, case-insensitively): the
/// YAML frontend's keys and the YAML service's scalar ones.
#[derive(JsonSchema)]
#[schemars(title = "clusterf frontend")]
#[schemars(deny_unknown_fields)]
// As a YAML frontend and service: addresses and ports, or fwmarks; the
// persistence options need persistence; ops and the engine a UDP port or
// an fwmark; scheduler flags their scheduler.
#[schemars(transform = json_frontend_schema)]
#[allow(dead_code)]
struct RawJsonFrontendFile {
    /// IPv4 virtual address.
    ipv4: Option<Ipv4Addr>,
    /// IPv6 virtual address.
    ipv6: Option<Ipv6Addr>,
    /// TCP port.
    #[schemars(range(min = 1, max = 65535))]
    tcp: Option<u16>,
    /// UDP port.
    #[schemars(range(min = 1, max = 65535))]
    udp: Option<u16>,
    /// Firewall mark of an IPv4 fwmark service (ipvsadm -f), instead of addresses and ports.
    #[schemars(range(min = 1, max = 4294967295u32))]
    fwmark_ipv4: Option<u32>,
    /// Firewall mark of an IPv6 fwmark service (ipvsadm -f -6), instead of addresses and ports.
    #[schemars(range(min = 1, max = 4294967295u32))]
    fwmark_ipv6: Option<u32>,
    /// IPVS scheduler (default from clusterf.yaml, else wlc).
    scheduler: Option<SchedulerName>,
    /// Persistence timeout in seconds (1..2678400).
    #[schemars(range(min = 1, max = 2678400))]
    persistence: Option<u32>,
    /// Persistence granularity of the IPv4 services as a prefix length, 0..32 (ipvsadm -M; default 32); needs persistence.
    #[schemars(range(min = 0, max = 32))]
    persistence_netmask_ipv4: Option<u8>,
    /// Persistence granularity of the IPv6 services as a prefix length, 1..128 (ipvsadm -M; default 128); needs persistence.
    #[schemars(range(min = 1, max = 128))]
    persistence_netmask_ipv6: Option<u8>,
    /// Persistence engine (ipvsadm --pe): sip, for the UDP and fwmark services; needs persistence.
    persistence_engine: Option<PersistenceEngine>,
    /// One-packet scheduling (ipvsadm -o): every UDP datagram is scheduled on its own; for the UDP and fwmark services.
    ops: Option<bool>,
    /// Scheduler flags, comma-separated as ipvsadm -b takes them: sh-fallback, sh-port (scheduler sh), mh-fallback, mh-port (scheduler mh).
    scheduler_flags: Option<SchedulerFlagList>,
    /// Weight of the backends that name none, also the overlay's, 0..65535 (default 10).
    #[schemars(range(min = 0, max = 65535))]
    default_weight: Option<u16>,
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
    // A tunnel block is method tunnel's.
    {
        "if": {"required": ["tunnel"], "properties": {"tunnel": {"type": "object"}}},
        "then": {"properties": {"method": {"const": "tunnel"}}}
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
    /// The encapsulation of method tunnel (default ipip).
    #[schemars(with = "Option<RawTunnel>")]
    pub(super) tunnel: Option<Spanned<RawTunnel>>,
}

/// A tunnel route's encapsulation (ipvsadm --tun-type, --tun-port,
/// --tun-nocsum/--tun-csum/--tun-remcsum; keepalived tunnel_type...).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
// gue needs its port, which the others do not take; ipip takes no
// checksum option, gre no remcsum.
#[schemars(extend("allOf" = [
    {
        "if": {"properties": {"type": {"const": "gue"}}},
        "then": {"required": ["port"], "properties": {"port": {"type": "integer"}}},
        "else": {"properties": {"port": {"type": "null"}}}
    },
    {
        "if": {"properties": {"type": {"const": "ipip"}}},
        "then": {"properties": {"checksum": {"type": "null"}}}
    },
    {
        "if": {"properties": {"type": {"const": "gre"}}},
        "then": {"properties": {"checksum": {"not": {"const": "remcsum"}}}}
    },
]))]
pub(super) struct RawTunnel {
    /// ipip (IP in IP), gue (Generic UDP Encapsulation, needs port) or gre.
    #[serde(rename = "type")]
    #[schemars(with = "TunnelType")]
    pub(super) kind: Option<Spanned<RawStr>>,
    /// gue only (required): the UDP port the real servers decapsulate on.
    #[schemars(with = "Option<u16>", range(min = 1, max = 65535))]
    pub(super) port: Option<Spanned<RawInt>>,
    /// gue and gre: none (the default), csum (checksums) or, gue only, remcsum (remote checksum offload).
    #[schemars(with = "Option<TunnelChecksum>")]
    pub(super) checksum: Option<Spanned<RawStr>>,
}

/// A tunnel's type.
#[derive(JsonSchema)]
#[schemars(extend("enum" = crate::model::tunnel::TUNNEL_TYPES))]
#[allow(dead_code)]
struct TunnelType(String);

/// A tunnel's checksum option.
#[derive(JsonSchema)]
#[schemars(extend("enum" = crate::model::tunnel::CHECKSUMS))]
#[allow(dead_code)]
struct TunnelChecksum(String);

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
        // The JSON layout's files that YAML writes inside a service file.
        (
            "healthcheck.schema.json",
            schemars::schema_for!(RawHealthcheck).to_value(),
        ),
        (
            "backend.schema.json",
            schemars::schema_for!(RawBackend).to_value(),
        ),
        // The JSON layout's frontend file, its service's.
        (
            "frontend.schema.json",
            schemars::schema_for!(RawJsonFrontendFile).to_value(),
        ),
        // The JSON layout's fallback file, also YAML's `fallback:`.
        (
            "fallback.schema.json",
            schemars::schema_for!(RawFallback).to_value(),
        ),
    ]
}
