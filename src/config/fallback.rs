//! A service's fallback dest (`fallback:`, the JSON layout's `fallback`
//! file), as either format's reader found its fields, becomes a
//! [`Fallback`]: an address and ports like a backend's, a method, a
//! weight (default 1). Every problem is reported at its position. Knows no
//! file format; how the fallback becomes dests is `compile`'s.

use std::net::IpAddr;

use super::types::{Endpoints, Fallback, Service};
use super::validate::{EndpointFields, Located, Reporter, validate_endpoints};
use crate::diag::Pos;
use crate::model::Method;
use crate::text;

/// The weight of a fallback that names none.
pub(super) const DEFAULT_FALLBACK_WEIGHT: u32 = 1;

/// A fallback's fields, before validation.
pub(super) struct FallbackFields<'a> {
    /// Where the fallback is (its mapping, or the file).
    pub(super) pos: Option<Pos>,
    pub(super) endpoints: EndpointFields<'a>,
    pub(super) method: Option<Located<&'a str>>,
}

/// Validates a fallback against its service (already validated): its
/// fields ([`fallback_value`]) and its fit ([`fits_service`]); `None` when
/// it is on a backend's dest. `source` names it in plans.
pub(super) fn validate_fallback(
    r: &mut Reporter,
    f: &FallbackFields,
    service: &Service,
    source: String,
) -> Option<Fallback> {
    let fallback = fallback_value(r, f, source);
    let ports_given = f.endpoints.tcp.is_some() || f.endpoints.udp.is_some();
    fits_service(r, f.pos, ports_given, &fallback, service).then_some(fallback)
}

/// A fallback's own fields: an address and ports as a backend's, a
/// method, a weight above 0 (default 1).
pub(super) fn fallback_value(r: &mut Reporter, f: &FallbackFields, source: String) -> Fallback {
    let (endpoints, weight) = validate_endpoints(r, f.pos, &f.endpoints, false, &"fallback");
    let weight = match &f.endpoints.weight {
        None => DEFAULT_FALLBACK_WEIGHT,
        Some(w) if w.value == 0 => {
            r.error(
                w.pos,
                "weight: a fallback of weight 0 never serves: 1..65535",
            );
            DEFAULT_FALLBACK_WEIGHT
        }
        Some(_) => weight,
    };
    let method = f
        .method
        .as_ref()
        .and_then(|m| match m.value.parse::<Method>() {
            Ok(method) => Some(method),
            Err(_) => {
                r.error(
                m.pos,
                format!(
                    "method: unknown forwarding method {}, expected one of masq, droute, tunnel",
                    text::quote(m.value)
                ),
            );
                None
            }
        });
    Fallback {
        source,
        endpoints,
        method,
        weight,
    }
}

/// A fallback against its service: an address of a family the frontend
/// has, a port of a protocol it has (a frontend of addresses and ports;
/// `ports_given`: a port was written, maybe invalid and reported), no
/// backend's own address and port. Whether it is a dest of its own (else
/// the render would report the merge again).
pub(super) fn fits_service(
    r: &mut Reporter,
    pos: Option<Pos>,
    ports_given: bool,
    fallback: &Fallback,
    service: &Service,
) -> bool {
    check_fit(r, pos, ports_given, &fallback.endpoints, &service.frontend);
    check_not_a_backend(r, pos, &fallback.endpoints, service)
}

/// A fallback the frontend can never use: no address of its families, or
/// (a frontend of addresses and ports) no port of its protocols.
fn check_fit(
    r: &mut Reporter,
    pos: Option<Pos>,
    ports_given: bool,
    e: &Endpoints,
    frontend: &Endpoints,
) {
    let v4 = frontend.ipv4.is_some() || frontend.fwmark_ipv4.is_some();
    let v6 = frontend.ipv6.is_some() || frontend.fwmark_ipv6.is_some();
    let has_addr = e.ipv4.is_some() || e.ipv6.is_some();
    if has_addr && !(v4 && e.ipv4.is_some()) && !(v6 && e.ipv6.is_some()) {
        let families = [(v4, "ipv4"), (v6, "ipv6")]
            .iter()
            .filter(|(has, _)| *has)
            .map(|(_, f)| *f)
            .collect::<Vec<_>>()
            .join(" or ");
        r.error(
            pos,
            format!("fallback has no address of the frontend's family: set {families}"),
        );
    }
    let marked = frontend.fwmark_ipv4.is_some() || frontend.fwmark_ipv6.is_some();
    let fits_port =
        (frontend.tcp.is_some() && e.tcp.is_some()) || (frontend.udp.is_some() && e.udp.is_some());
    // A port given but invalid is reported already.
    let bad_port = ports_given && e.tcp.is_none() && e.udp.is_none();
    if !(marked || fits_port || bad_port) {
        let ports = [
            (frontend.tcp.is_some(), "tcp"),
            (frontend.udp.is_some(), "udp"),
        ]
        .iter()
        .filter(|(has, _)| *has)
        .map(|(_, p)| *p)
        .collect::<Vec<_>>()
        .join(" or ");
        r.error(
            pos,
            format!("fallback has no port of the frontend's protocols: set {ports}"),
        );
    }
}

/// A fallback on a backend's own address and port would merge with it:
/// an error naming the backend (routes and overlay backends are
/// `compile`'s to check). Whether it is a dest of its own.
fn check_not_a_backend(
    r: &mut Reporter,
    pos: Option<Pos>,
    e: &Endpoints,
    service: &Service,
) -> bool {
    let mut own = true;
    let addrs = |e: &Endpoints| -> Vec<IpAddr> {
        [e.ipv4.map(IpAddr::V4), e.ipv6.map(IpAddr::V6)]
            .into_iter()
            .flatten()
            .collect()
    };
    let no_port = |e: &Endpoints| e.tcp.is_none() && e.udp.is_none();
    for b in service.backends.values() {
        let shared = addrs(e)
            .into_iter()
            .find(|a| addrs(&b.endpoints).contains(a));
        let same_port = (e.tcp.is_some() && e.tcp == b.endpoints.tcp)
            || (e.udp.is_some() && e.udp == b.endpoints.udp)
            || (no_port(e) && no_port(&b.endpoints));
        if let Some(addr) = shared.filter(|_| same_port) {
            r.error(
                pos,
                format!(
                    "fallback is backend {}'s dest ({addr}, same port): a fallback serves when the backends do not, so it must be a dest of its own",
                    text::quote(&b.name)
                ),
            );
            own = false;
        }
    }
    own
}
