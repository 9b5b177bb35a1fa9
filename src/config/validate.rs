//! Validation: the fields of a file, as either format's reader found them,
//! become validated values ([`Service`], [`Backend`], [`Route`]), and every
//! problem is reported with its file and position. Knows no file format and
//! no layout; whole-tree checks (conflicts) are `parse`'s.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::raw::{MAX_THRESHOLD, PERSISTENCE_ENGINES, SCHEDULER_FLAGS};
use super::types::{Backend, Endpoints, IpvsOptions, Route, Service, Thresholds};
use crate::diag::{Diagnostics, Pos};
use crate::model::addr::{dest_refusal, frontend_refusal, mapped_ipv4};
use crate::model::tunnel::{
    CHECKSUMS, TUN_FLAG_REMCSUM, TUN_TYPE_GRE, TUN_TYPE_GUE, TUN_TYPE_IPIP, TUNNEL_TYPES, Tunnel,
};
use crate::model::{Family, MAX_WEIGHT, Method, SCHEDULERS};
use crate::text;

/// Longest persistence timeout accepted, in seconds (31 days).
const MAX_PERSISTENCE: u32 = 31 * 24 * 3600;

/// Reports problems in one file.
pub(super) struct Reporter<'a> {
    pub(super) file: &'a str,
    pub(super) diags: &'a mut Diagnostics,
    pub(super) failed: bool,
}

impl Reporter<'_> {
    pub(super) fn error(&mut self, pos: Option<Pos>, message: impl Into<String>) {
        self.failed = true;
        self.diags.error(self.file, pos, message);
    }

    pub(super) fn warning(&mut self, pos: Option<Pos>, message: impl Into<String>) {
        self.diags.warning(self.file, pos, message);
    }
}

/// The text of a file, or an error when it is not UTF-8.
pub(super) fn utf8<'b>(r: &mut Reporter, bytes: &'b [u8]) -> Option<&'b str> {
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

/// A value with the position it was read from.
#[derive(Clone, Debug)]
pub(super) struct Located<T> {
    pub(super) value: T,
    pub(super) pos: Option<Pos>,
}

/// A value without a position (the fast readers keep none).
pub(super) fn unplaced<T>(value: T) -> Located<T> {
    Located { value, pos: None }
}

/// Fields of a frontend or backend, from either format, before validation.
#[derive(Default)]
pub(super) struct EndpointFields<'a> {
    pub(super) ipv4: Option<Located<&'a str>>,
    pub(super) ipv6: Option<Located<&'a str>>,
    // Wide enough for any integer either format yields (JSON: i64 and u64).
    pub(super) tcp: Option<Located<i128>>,
    pub(super) udp: Option<Located<i128>>,
    pub(super) weight: Option<Located<i128>>,
    /// A backend's `healthcheck` (absent: true).
    pub(super) healthcheck: Option<Located<bool>>,
    /// A frontend's fwmarks.
    pub(super) fwmark_ipv4: Option<Located<i128>>,
    pub(super) fwmark_ipv6: Option<Located<i128>>,
    /// A backend's connection thresholds.
    pub(super) upper_threshold: Option<Located<i128>>,
    pub(super) lower_threshold: Option<Located<i128>>,
    /// `upper_threshold` is present, even with a value of the wrong type
    /// (already reported).
    pub(super) upper_given: bool,
    /// An address key is present, even with a value of the wrong type
    /// (already reported): do not also report "no address".
    pub(super) addr_given: bool,
    /// The same for the port keys.
    pub(super) port_given: bool,
}

/// A JSON frontend or backend file as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct EndpointFile {
    pub(super) endpoints: Endpoints,
    pub(super) weight: u32,
    /// The file names a weight.
    pub(super) weight_given: bool,
    /// A backend's `healthcheck` (true unless it opts out).
    pub(super) healthcheck: bool,
    pub(super) thresholds: Thresholds,
    /// A frontend's service options (the JSON layout's frontend file is
    /// its service's).
    pub(super) service: FrontendOptions,
}

/// What a JSON frontend file says of its service beside the frontend.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct FrontendOptions {
    pub(super) scheduler: Option<String>,
    pub(super) persistence: Option<u32>,
    pub(super) default_weight: Option<u32>,
    pub(super) ipvs: IpvsOptions,
}

/// Fields of a route, from either format, before validation.
pub(super) struct RouteFields<'a> {
    pub(super) prefix: Option<Located<&'a str>>,
    pub(super) gateway: Option<Located<&'a str>>,
    /// `None` (absent) filters, like an explicit `none`.
    pub(super) method: Option<Located<&'a str>>,
    /// The `tunnel:` block (the JSON layout's `IPVSTunnel*` keys).
    pub(super) tunnel: Option<TunnelFields<'a>>,
}

/// Fields of a route's tunnel, before validation. `what` names the block
/// at `pos` (the JSON layout's: its first `IPVSTunnel*` key); `keys` name
/// its type, port and checksum in messages.
pub(super) struct TunnelFields<'a> {
    pub(super) what: &'static str,
    pub(super) keys: [&'static str; 3],
    pub(super) pos: Option<Pos>,
    pub(super) kind: Option<Located<&'a str>>,
    /// A type was given, even one already reported: no "type missing".
    pub(super) kind_given: bool,
    pub(super) port: Option<Located<i128>>,
    pub(super) checksum: Option<Located<&'a str>>,
}

/// The YAML `tunnel:` block's keys as messages name them.
pub(super) const YAML_TUNNEL_KEYS: [&str; 3] = ["tunnel: type", "tunnel: port", "tunnel: checksum"];

fn parse_ipv4(r: &mut Reporter, field: &str, v: &Option<Located<&str>>) -> Option<Ipv4Addr> {
    let v = v.as_ref()?;
    match v.value.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => Some(a),
        Ok(IpAddr::V6(_)) => {
            r.error(
                v.pos,
                format!(
                    "{field}: {} is an IPv6 address, expected IPv4",
                    text::quote(v.value)
                ),
            );
            None
        }
        Err(_) => {
            r.error(
                v.pos,
                format!("{field}: invalid IPv4 address {}", text::quote(v.value)),
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
                format!(
                    "{field}: {} is an IPv4 address, expected IPv6",
                    text::quote(v.value)
                ),
            );
            None
        }
        Err(_) => {
            r.error(
                v.pos,
                format!("{field}: invalid IPv6 address {}", text::quote(v.value)),
            );
            None
        }
    }
}

/// `tcp: port 99999 out of range 1..65535`: the one wording of a number
/// outside its field's range, shown as `shown` (the value, or the literal
/// as written when it is too large for any integer type).
pub(super) fn range_error(field: &str, shown: &dyn std::fmt::Display) -> String {
    match field {
        "weight" => format!("weight {shown} out of range 0..{MAX_WEIGHT}"),
        "default_weight" => format!("default_weight: {shown} out of range 0..{MAX_WEIGHT}"),
        "persistence" => {
            format!("persistence: {shown} out of range 1..{MAX_PERSISTENCE} seconds")
        }
        "healthcheck: port" | "tunnel: port" => {
            format!("{field} {shown} out of range 1..65535")
        }
        "healthcheck: rise" | "healthcheck: fall" => format!(
            "{field} {shown} is outside 1 to {}",
            crate::health::spec::MAX_RISE_FALL
        ),
        "fwmark_ipv4" | "fwmark_ipv6" => {
            format!("{field}: mark {shown} out of range 1..{}", u32::MAX)
        }
        "upper_threshold" | "lower_threshold" => {
            format!("{field}: {shown} out of range 0..{MAX_THRESHOLD}")
        }
        "persistence_netmask_ipv4" => format!("{field}: prefix length {shown} out of range 0..32"),
        "persistence_netmask_ipv6" => format!("{field}: prefix length {shown} out of range 1..128"),
        port => format!("{port}: port {shown} out of range 1..65535"),
    }
}

/// An integer too large for any field (beyond 128 bits).
pub(super) struct TooLarge;

/// The exact value of a decimal number literal (`18446744073709551696`,
/// `-7`, `80.0`, `1e20`) when it is an integer; `None` when it is not (a
/// fraction, hex, `.inf`).
pub(super) fn exact_integer(lit: &str) -> Option<Result<i128, TooLarge>> {
    let (negative, unsigned) = match lit.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, lit.strip_prefix('+').unwrap_or(lit)),
    };
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{whole}{fraction}");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // value = digits * 10^scale
    let mut scale = exponent.checked_sub(i64::try_from(fraction.len()).ok()?)?;
    let mut digits = digits.trim_start_matches('0');
    while scale < 0 && digits.ends_with('0') {
        digits = &digits[..digits.len() - 1];
        scale += 1;
    }
    if digits.is_empty() {
        return Some(Ok(0));
    }
    if scale < 0 {
        return None;
    }
    let too_large = Some(Err(TooLarge));
    let Ok(mut n) = digits.parse::<i128>() else {
        return too_large;
    };
    for _ in 0..scale {
        let Some(m) = n.checked_mul(10) else {
            return too_large;
        };
        n = m;
    }
    Some(Ok(if negative { -n } else { n }))
}

fn parse_port(r: &mut Reporter, field: &str, v: &Option<Located<i128>>) -> Option<u16> {
    let v = v.as_ref()?;
    match u16::try_from(v.value) {
        Ok(p) if p >= 1 => Some(p),
        _ => {
            r.error(v.pos, range_error(field, &v.value));
            None
        }
    }
}

/// An integer field within `range`, or its range error.
fn parse_ranged<T: TryFrom<i128> + PartialOrd>(
    r: &mut Reporter,
    field: &str,
    v: &Option<Located<i128>>,
    range: std::ops::RangeInclusive<T>,
) -> Option<T> {
    let v = v.as_ref()?;
    match T::try_from(v.value) {
        Ok(n) if range.contains(&n) => Some(n),
        _ => {
            r.error(v.pos, range_error(field, &v.value));
            None
        }
    }
}

/// A backend's connection thresholds; a lower one above the upper one
/// would never let an overloaded dest back in.
pub(super) fn validate_thresholds(r: &mut Reporter, f: &EndpointFields) -> Thresholds {
    let range = 0..=MAX_THRESHOLD;
    let upper = parse_ranged(r, "upper_threshold", &f.upper_threshold, range.clone());
    let lower = parse_ranged(r, "lower_threshold", &f.lower_threshold, range);
    let t = Thresholds {
        upper: upper.unwrap_or(0),
        lower: lower.unwrap_or(0),
    };
    let lower_pos = f.lower_threshold.as_ref().and_then(|l| l.pos);
    match (upper, lower) {
        (Some(u), Some(l)) if u > 0 && l > u => r.error(
            lower_pos,
            format!(
                "lower_threshold {l} is above upper_threshold {u}: an overload would end as soon as one connection closes"
            ),
        ),
        // An upper threshold given but invalid is reported already.
        (None | Some(0), Some(l))
            if l > 0 && (upper == Some(0) || (upper.is_none() && !f.upper_given)) =>
        {
            r.error(
                lower_pos,
                "lower_threshold without upper_threshold: it only ends an overload, which upper_threshold starts",
            )
        }
        _ => {}
    }
    t
}

fn parse_weight(r: &mut Reporter, v: &Option<Located<i128>>) -> u32 {
    let Some(v) = v else {
        return crate::model::DEFAULT_WEIGHT;
    };
    match u32::try_from(v.value) {
        Ok(w) if w <= MAX_WEIGHT => w,
        _ => {
            r.error(v.pos, range_error("weight", &v.value));
            crate::model::DEFAULT_WEIGHT
        }
    }
}

pub(super) fn parse_scheduler(r: &mut Reporter, v: &Option<Located<&str>>) -> Option<String> {
    let v = v.as_ref()?;
    if SCHEDULERS.contains(&v.value) {
        Some(v.value.to_string())
    } else {
        r.error(
            v.pos,
            format!(
                "scheduler: unknown scheduler {}, expected one of {}",
                text::quote(v.value),
                SCHEDULERS.join(", ")
            ),
        );
        None
    }
}

/// Validates the fields of a frontend (`frontend == true`) or a backend;
/// `what` names it in messages (`frontend`, `backend "a"`).
pub(super) fn validate_endpoints(
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
        fwmark_ipv4: parse_ranged(r, "fwmark_ipv4", &f.fwmark_ipv4, 1..=u32::MAX),
        fwmark_ipv6: parse_ranged(r, "fwmark_ipv6", &f.fwmark_ipv6, 1..=u32::MAX),
    };
    let marks = f.fwmark_ipv4.is_some() || f.fwmark_ipv6.is_some();
    if marks {
        for (given, field) in [
            (&f.ipv4.as_ref().map(|v| v.pos), "ipv4"),
            (&f.ipv6.as_ref().map(|v| v.pos), "ipv6"),
            (&f.tcp.as_ref().map(|v| v.pos), "tcp"),
            (&f.udp.as_ref().map(|v| v.pos), "udp"),
        ] {
            if let Some(pos) = given {
                r.error(
                    *pos,
                    format!("{field}: a frontend with fwmarks has no addresses or ports: the marks select its packets"),
                );
            }
        }
    }
    let addrs = [
        (e.ipv4.map(IpAddr::V4), &f.ipv4, "ipv4"),
        (e.ipv6.map(IpAddr::V6), &f.ipv6, "ipv6"),
    ];
    for (ip, v, field) in addrs {
        if let (Some(ip), Some(v)) = (ip, v) {
            if frontend {
                check_frontend_addr(r, field, &ip, v.pos);
            } else {
                check_dest_addr(r, field, &ip, v.pos);
            }
        }
    }
    let weight = parse_weight(r, &f.weight);
    if !marks && !f.addr_given && f.ipv4.is_none() && f.ipv6.is_none() {
        r.error(whole, format!("{what} has no address: set ipv4 or ipv6"));
    }
    if frontend && !marks && !f.port_given && f.tcp.is_none() && f.udp.is_none() {
        r.error(whole, format!("{what} has no port: set tcp or udp"));
    }
    (e, weight)
}

/// A backend address the kernel refuses as a dest (see
/// [`crate::model::addr`]).
fn check_dest_addr(r: &mut Reporter, field: &str, ip: &IpAddr, pos: Option<Pos>) {
    if let Some(class) = dest_refusal(ip) {
        let rule = match ip {
            IpAddr::V4(_) => "IPv4 dests must be unicast",
            IpAddr::V6(_) => "IPv6 dests must be unicast and not link-local",
        };
        r.error(
            pos,
            format!("{field}: {ip} is {class}: the kernel refuses it as a dest ({rule})"),
        );
    }
}

/// A frontend address no packet is ever delivered to (see
/// [`crate::model::addr`]).
fn check_frontend_addr(r: &mut Reporter, field: &str, ip: &IpAddr, pos: Option<Pos>) {
    let Some(class) = frontend_refusal(ip) else {
        return;
    };
    let why = match ip {
        IpAddr::V6(a) if let Some(v4) = mapped_ipv4(a) => {
            format!("IPv4 traffic never arrives on it; use ipv4: {v4}")
        }
        _ => "IPVS only sees packets addressed to this host, never one for it".to_string(),
    };
    r.error(pos, format!("{field}: {ip} is {class}: {why}"));
}

/// A route's gateway becomes the address of the dests it routes: the same
/// classes as a backend address are refused.
fn check_gateway_addr(r: &mut Reporter, gw: &IpAddr, pos: Option<Pos>) {
    if let Some(class) = dest_refusal(gw) {
        r.error(
            pos,
            format!(
                "gateway: {gw} is {class}: the kernel refuses it as a dest, which a gateway becomes"
            ),
        );
    }
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

pub(super) fn validate_route(r: &mut Reporter, name: &str, f: &RouteFields) -> Route {
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
                    "prefix: invalid prefix {}, expected CIDR like 10.0.0.0/24",
                    text::quote(p.value)
                ),
            );
            None
        }
    });
    let gateway = f
        .gateway
        .as_ref()
        .and_then(|g| match g.value.parse::<IpAddr>() {
            Ok(a) => {
                check_gateway_addr(r, &a, g.pos);
                Some((a, g.pos))
            }
            Err(_) => {
                r.error(
                    g.pos,
                    format!("gateway: invalid address {}", text::quote(g.value)),
                );
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
        Some(m) => match m.value.parse::<Method>() {
            Ok(method) => Some(method),
            Err(_) => {
                r.error(
                    m.pos,
                    format!(
                        "method: unknown method {}, expected one of masq, droute, tunnel, none",
                        text::quote(m.value)
                    ),
                );
                None
            }
        },
    };
    if method.is_none() && gateway.is_some() {
        r.warning(
            None,
            "route filters its backends (no method) so its gateway is unused",
        );
    }
    let tunnel = match &f.tunnel {
        Some(t) => validate_tunnel(r, t, method, f.method.as_ref()),
        None => Tunnel::IPIP,
    };
    Route {
        name: name.to_string(),
        source: r.file.to_string(),
        prefix,
        gateway: gateway.map(|(g, _)| g),
        method,
        tunnel,
    }
}

/// A route's tunnel: its type, gue's port (required, and only gue's), the
/// checksum option of gue and gre; only with method tunnel. Every problem
/// is reported.
fn validate_tunnel(
    r: &mut Reporter,
    t: &TunnelFields,
    method: Option<Method>,
    given: Option<&Located<&str>>,
) -> Tunnel {
    let [type_key, port_key, checksum_key] = t.keys;
    if method != Some(Method::Tunnel) {
        let m = given.map_or("none", |m| m.value);
        r.error(
            t.pos,
            format!(
                "{}: only for method tunnel (the route's method is {})",
                t.what,
                text::quote(m)
            ),
        );
    }
    let types = TUNNEL_TYPES.join(", ");
    let kind = match &t.kind {
        None if !t.kind_given => {
            r.error(
                t.pos,
                format!("{type_key} missing, expected one of {types}"),
            );
            None
        }
        None => None,
        Some(k) => match TUNNEL_TYPES.iter().position(|n| *n == k.value) {
            Some(i) => Some(i as u8),
            None => {
                let v = text::quote(k.value);
                r.error(
                    k.pos,
                    format!("{type_key}: unknown tunnel type {v}, expected one of {types}"),
                );
                None
            }
        },
    };
    let port = parse_port(r, port_key, &t.port);
    match (kind, &t.port) {
        (Some(TUN_TYPE_GUE), None) => r.error(
            t.pos,
            format!("{port_key} missing: gue needs the UDP port its real servers decapsulate on"),
        ),
        (Some(k), Some(p)) if k != TUN_TYPE_GUE => r.error(
            p.pos,
            format!(
                "{port_key}: only gue has a port, not {}",
                TUNNEL_TYPES[usize::from(k)]
            ),
        ),
        _ => {}
    }
    let flags = t.checksum.as_ref().and_then(|c| {
        let Some(i) = CHECKSUMS.iter().position(|n| *n == c.value) else {
            r.error(
                c.pos,
                format!(
                    "{checksum_key}: unknown checksum {}, expected one of {}",
                    text::quote(c.value),
                    CHECKSUMS.join(", ")
                ),
            );
            return None;
        };
        let flags = i as u16;
        if kind == Some(TUN_TYPE_IPIP) {
            r.error(
                c.pos,
                format!("{checksum_key}: only gue and gre have one, not ipip"),
            );
        } else if kind == Some(TUN_TYPE_GRE) && flags == TUN_FLAG_REMCSUM {
            // The kernel keeps it but its gre ignores it; keepalived refuses it.
            r.error(
                c.pos,
                format!("{checksum_key}: remcsum is gue's; gre has none or csum"),
            );
        }
        Some(flags)
    });
    Tunnel {
        kind: kind.unwrap_or(TUN_TYPE_IPIP),
        port: port.filter(|_| kind == Some(TUN_TYPE_GUE)).unwrap_or(0),
        flags: flags.unwrap_or(0),
    }
}

pub(super) fn check_name(r: &mut Reporter, what: &str, name: &str) {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | ':'));
    if !ok {
        r.error(
            None,
            format!(
                "invalid {what} name {}: use letters, digits and - _ . @ :",
                text::quote(name)
            ),
        );
    }
}

/// A service file's fields, from either YAML reader, before validation.
pub(super) struct ServiceFields<'a> {
    /// Where the frontend mapping is, for "has no address" and the like.
    pub(super) frontend_pos: Option<Pos>,
    pub(super) frontend: EndpointFields<'a>,
    pub(super) scheduler: Option<Located<&'a str>>,
    pub(super) persistence: Option<Located<i128>>,
    /// Name, position of the backend's mapping, fields; names are unique.
    pub(super) backends: Vec<(&'a str, Option<Pos>, EndpointFields<'a>)>,
    pub(super) default_weight: Option<Located<i128>>,
    pub(super) ipvs: IpvsFields<'a>,
}

/// A service's IPVS options as read, before validation.
#[derive(Default)]
pub(super) struct IpvsFields<'a> {
    pub(super) netmask_ipv4: Option<Located<i128>>,
    pub(super) netmask_ipv6: Option<Located<i128>>,
    pub(super) persistence_engine: Option<Located<&'a str>>,
    pub(super) ops: Option<Located<bool>>,
    pub(super) scheduler_flags: Option<Located<&'a str>>,
    /// `persistence` is present, even with a bad value (already reported).
    pub(super) persistence_given: bool,
}

/// A service's `default_weight`: 0..65535, as a backend's weight.
pub(super) fn parse_default_weight(r: &mut Reporter, v: &Option<Located<i128>>) -> Option<u32> {
    parse_ranged(r, "default_weight", v, 0..=MAX_WEIGHT)
}

/// A persistence timeout in seconds.
pub(super) fn parse_persistence(r: &mut Reporter, v: &Option<Located<i128>>) -> Option<u32> {
    parse_ranged(r, "persistence", v, 1..=MAX_PERSISTENCE)
}

/// `backend "name"` in messages, formatted only when one is reported.
struct BackendName<'a>(&'a str);

impl std::fmt::Display for BackendName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "backend {}", text::quote(self.0))
    }
}

pub(super) fn validate_service(r: &mut Reporter, name: &str, f: &ServiceFields) -> Service {
    let (frontend, _) = validate_endpoints(r, f.frontend_pos, &f.frontend, true, &"frontend");
    let scheduler = parse_scheduler(r, &f.scheduler);
    let persistence = parse_persistence(r, &f.persistence);
    // Built in bulk: the same map as inserting in turn (the last of equal
    // names wins).
    let mut backends = Vec::with_capacity(f.backends.len());
    for (bname, whole, fields) in &f.backends {
        check_name(r, "backend", bname);
        let (endpoints, weight) = validate_endpoints(r, *whole, fields, false, &BackendName(bname));
        let thresholds = validate_thresholds(r, fields);
        let mut source = String::with_capacity(r.file.len() + 10 + bname.len());
        source.push_str(r.file);
        source.push_str("#backends.");
        source.push_str(bname);
        backends.push((
            bname.to_string(),
            Backend {
                name: bname.to_string(),
                source,
                endpoints,
                weight,
                weight_given: fields.weight.is_some(),
                healthcheck: fields.healthcheck.as_ref().is_none_or(|h| h.value),
                thresholds,
            },
        ));
    }
    let backends: BTreeMap<String, Backend> = backends.into_iter().collect();
    let ipvs = validate_ipvs(
        r,
        &f.ipvs,
        &frontend,
        scheduler.as_deref(),
        persistence.is_some(),
    );
    Service {
        name: name.to_string(),
        source: r.file.to_string(),
        frontend,
        scheduler,
        persistence,
        // The reader validates the check (`check`) and sets it.
        healthcheck: None,
        backends,
        ipvs,
        // The reader validates the fallback (`fallback`) and sets it.
        fallback: None,
        default_weight: parse_default_weight(r, &f.default_weight),
    }
}

/// A service's IPVS options, against its frontend, scheduler and
/// persistence.
pub(super) fn validate_ipvs(
    r: &mut Reporter,
    i: &IpvsFields,
    frontend: &Endpoints,
    scheduler: Option<&str>,
    persistent: bool,
) -> IpvsOptions {
    let persistent = persistent || i.persistence_given;
    let has_v4 = frontend.ipv4.is_some() || frontend.fwmark_ipv4.is_some();
    let has_v6 = frontend.ipv6.is_some() || frontend.fwmark_ipv6.is_some();
    let v4 = ("persistence_netmask_ipv4", 0..=32, has_v4, "IPv4");
    let v6 = ("persistence_netmask_ipv6", 1..=128, has_v6, "IPv6");
    let netmask_ipv4 = parse_netmask(r, &i.netmask_ipv4, v4, persistent);
    let netmask_ipv6 = parse_netmask(r, &i.netmask_ipv6, v6, persistent);
    let persistence_engine = i
        .persistence_engine
        .as_ref()
        .and_then(|pe| parse_engine(r, pe, frontend, persistent));
    let ops = i.ops.as_ref().is_some_and(|o| {
        if o.value {
            udp_only(r, "ops", o.pos, frontend);
        }
        o.value
    });
    let scheduler_flags = i
        .scheduler_flags
        .as_ref()
        .map(|v| parse_scheduler_flags(r, v, scheduler))
        .unwrap_or_default();
    IpvsOptions {
        netmask_ipv4,
        netmask_ipv6,
        persistence_engine,
        ops,
        scheduler_flags,
    }
}

/// A persistence netmask: (field, range, whether the frontend has a
/// service of the family, the family's name).
fn parse_netmask(
    r: &mut Reporter,
    v: &Option<Located<i128>>,
    (field, range, has, family): (&str, std::ops::RangeInclusive<u8>, bool, &str),
    persistent: bool,
) -> Option<u8> {
    let n = parse_ranged(r, field, v, range)?;
    let pos = v.as_ref().and_then(|v| v.pos);
    if !persistent {
        r.error(
            pos,
            format!(
                "{field}: needs persistence: the netmask groups the clients that stick to one dest"
            ),
        );
    } else if !has {
        r.error(
            pos,
            format!("{field}: the frontend has no {family} service"),
        );
    }
    Some(n)
}

/// A persistence engine: known, with persistence, on UDP.
fn parse_engine(
    r: &mut Reporter,
    pe: &Located<&str>,
    frontend: &Endpoints,
    persistent: bool,
) -> Option<String> {
    if !PERSISTENCE_ENGINES.contains(&pe.value) {
        r.error(
            pe.pos,
            format!(
                "persistence_engine: unknown engine {}, expected one of {}",
                text::quote(pe.value),
                PERSISTENCE_ENGINES.join(", ")
            ),
        );
        return None;
    }
    if !persistent {
        r.error(
            pe.pos,
            "persistence_engine: needs persistence: the engine chooses which connections persist together",
        );
    }
    // The kernel's sip engine schedules no packet it cannot read a Call-ID
    // from, TCP included.
    udp_only(r, "persistence_engine", pe.pos, frontend);
    if frontend.fwmark_ipv4.is_some() || frontend.fwmark_ipv6.is_some() {
        r.warning(
            pe.pos,
            "persistence_engine: sip schedules only UDP packets with a SIP Call-ID: the fwmark must select SIP over UDP alone, other packets with it reach no dest",
        );
    }
    Some(pe.value.to_string())
}

/// An option the kernel applies to UDP packets only, on a frontend that
/// has TCP and no UDP port or fwmark.
fn udp_only(r: &mut Reporter, field: &str, pos: Option<Pos>, frontend: &Endpoints) {
    let marks = frontend.fwmark_ipv4.is_some() || frontend.fwmark_ipv6.is_some();
    if frontend.udp.is_none() && !marks && frontend.tcp.is_some() {
        r.error(
            pos,
            format!("{field}: UDP only, and the frontend has no udp port"),
        );
    }
}

/// `sh-fallback,sh-port`: each flag known, given once, and of the
/// service's own scheduler (a default scheduler could change under it).
fn parse_scheduler_flags(
    r: &mut Reporter,
    v: &Located<&str>,
    scheduler: Option<&str>,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for flag in v.value.split(',').map(str::trim) {
        if !SCHEDULER_FLAGS.contains(&flag) {
            r.error(
                v.pos,
                format!(
                    "scheduler_flags: unknown flag {}, expected one of {}",
                    text::quote(flag),
                    SCHEDULER_FLAGS.join(", ")
                ),
            );
            continue;
        }
        if out.iter().any(|f| f == flag) {
            r.error(v.pos, format!("scheduler_flags: {flag} given twice"));
            continue;
        }
        let needs = &flag[..2];
        if scheduler != Some(needs) {
            let has = match scheduler {
                Some(s) => format!("the service's scheduler is {s}"),
                None => "the service names no scheduler".to_string(),
            };
            r.error(
                v.pos,
                format!("scheduler_flags: {flag} needs scheduler: {needs}, but {has}"),
            );
        }
        out.push(flag.to_string());
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(lit: &str) -> Option<Option<i128>> {
        exact_integer(lit).map(Result::ok)
    }

    #[test]
    fn number_literals_are_read_exactly() {
        assert_eq!(
            exact("18446744073709551696"),
            Some(Some(18446744073709551696))
        );
        assert_eq!(
            exact("-18446744073709551696"),
            Some(Some(-18446744073709551696))
        );
        assert_eq!(exact("9007199254740993.0"), Some(Some(9007199254740993)));
        assert_eq!(exact("1e20"), Some(Some(100_000_000_000_000_000_000)));
        assert_eq!(exact("2.5e1"), Some(Some(25)));
        assert_eq!(exact("+80"), Some(Some(80)));
        assert_eq!(exact("0.0"), Some(Some(0)));
        assert_eq!(exact("1e-0"), Some(Some(1)));
        // Beyond 128 bits: an integer, but too large for any field.
        assert_eq!(exact(&"9".repeat(47)), Some(None));
        assert_eq!(exact("1e39"), Some(None));
        assert_eq!(exact("1e999999999999"), Some(None));
        // Not integers at all.
        for lit in ["1.5", "25e-1", "0x10", ".inf", "", "-", "1e", "1.2.3"] {
            assert_eq!(exact(lit), None, "{lit}");
        }
    }
}
