//! The YAML layout's files (services, routes, `clusterf.yaml`): the fast
//! reader first, serde-saphyr into the `Raw*` types when it declines
//! (`lenient` for the other problems of a file serde-saphyr refuses), and
//! validation either way; at most [`MAX_PROBLEMS`] listed per file. One
//! file at a time: which file is what, and how files combine, is
//! `layout`'s and `parse`'s.

use serde_saphyr::Spanned;

use super::check::{CheckFields, duration_type_error, validate_check};
use super::fallback::{FallbackFields, validate_fallback};
use super::fast::{fast_yaml_route, fast_yaml_service};
use super::lenient;
use super::raw::{
    RawBool, RawDefaultsFile, RawHealthcheck, RawInt, RawRouteFile, RawRouteMethod, RawScalar,
    RawServiceFile, RawStr, RawTunnel,
};
use super::types::{Defaults, Route, Service};
use super::validate::{
    EndpointFields, IpvsFields, Located, Reporter, RouteFields, ServiceFields, TooLarge,
    TunnelFields, YAML_TUNNEL_KEYS, exact_integer, parse_scheduler, range_error, utf8,
    validate_route, validate_service,
};
use crate::diag::{Diagnostics, Pos};
use crate::model::Method;
use crate::text;

/// The most problems listed for one file; the rest are counted in one more
/// line. Bounds the output of a hostile file (every line of a 4 MiB file
/// can be a problem).
pub(super) const MAX_PROBLEMS: usize = 100;

/// A service file: the fast reader when it takes the file, else
/// serde-saphyr.
pub(super) fn yaml_service(r: &mut Reporter, name: &str, bytes: &[u8]) -> Option<Service> {
    fast_yaml_service(r.file, name, bytes).or_else(|| full_yaml_service(r, name, bytes))
}

/// A service file read by the full YAML parser: serde-saphyr into the
/// `Raw*` types, and when it refuses the file, `lenient` for every other
/// problem.
pub(super) fn full_yaml_service(r: &mut Reporter, name: &str, bytes: &[u8]) -> Option<Service> {
    capped(r, |r| {
        let text = utf8(r, bytes)?;
        match serde_saphyr::from_str_with_options::<RawServiceFile>(text, options()) {
            Ok(raw) => Some(service_from_raw(r, name, text, &raw, false)),
            Err(e) => {
                refused(r, &e, |r| {
                    let l = lenient::service(r, text, options())?;
                    if let Some(l) = l {
                        service_from_raw(r, name, text, &l.raw, l.frontend_reported);
                    }
                    Ok(())
                });
                None
            }
        }
    })
}

/// Validates a service read by either YAML reading; `frontend_reported`:
/// the frontend was missing or malformed, which is not reported again as
/// one without address or port.
fn service_from_raw(
    r: &mut Reporter,
    name: &str,
    text: &str,
    raw: &RawServiceFile,
    frontend_reported: bool,
) -> Service {
    let f = &raw.frontend.value;
    let frontend_pos = spanned(&Spanned {
        value: (),
        referenced: raw.frontend.referenced,
        defined: raw.frontend.defined,
    })
    .pos;
    let mut frontend = yaml_endpoints_fields(r, text, &f.ipv4, &f.ipv6, &f.tcp, &f.udp, &None);
    frontend.fwmark_ipv4 = yaml_int(r, "fwmark_ipv4", &f.fwmark_ipv4, text);
    frontend.fwmark_ipv6 = yaml_int(r, "fwmark_ipv6", &f.fwmark_ipv6, text);
    // A mark of the wrong type is reported as such, not as no address.
    let marked = f.fwmark_ipv4.is_some() || f.fwmark_ipv6.is_some();
    frontend.addr_given |= frontend_reported || marked;
    frontend.port_given |= frontend_reported || marked;
    let scheduler = yaml_str(r, "scheduler", &raw.scheduler);
    let persistence = yaml_int(r, "persistence", &raw.persistence, text);
    let ipvs = IpvsFields {
        netmask_ipv4: yaml_int(
            r,
            "persistence_netmask_ipv4",
            &raw.persistence_netmask_ipv4,
            text,
        ),
        netmask_ipv6: yaml_int(
            r,
            "persistence_netmask_ipv6",
            &raw.persistence_netmask_ipv6,
            text,
        ),
        persistence_engine: yaml_str(r, "persistence_engine", &raw.persistence_engine),
        ops: yaml_bool(r, "ops", &raw.ops),
        scheduler_flags: yaml_str(r, "scheduler_flags", &raw.scheduler_flags),
        persistence_given: raw.persistence.is_some(),
    };
    let mut backends = Vec::with_capacity(raw.backends.len());
    for (bname, b) in &raw.backends {
        let whole = spanned(&Spanned {
            value: (),
            referenced: b.referenced,
            defined: b.defined,
        })
        .pos;
        let b = &b.value;
        let mut fields =
            yaml_endpoints_fields(r, text, &b.ipv4, &b.ipv6, &b.tcp, &b.udp, &b.weight);
        fields.healthcheck = yaml_bool(r, "healthcheck", &b.healthcheck);
        fields.upper_threshold = yaml_int(r, "upper_threshold", &b.upper_threshold, text);
        fields.lower_threshold = yaml_int(r, "lower_threshold", &b.lower_threshold, text);
        fields.upper_given = b.upper_threshold.is_some();
        backends.push((bname.as_str(), whole, fields));
    }
    let fields = ServiceFields {
        frontend_pos,
        frontend,
        scheduler,
        persistence,
        backends,
        ipvs,
        default_weight: yaml_int(r, "default_weight", &raw.default_weight, text),
    };
    let mut service = validate_service(r, name, &fields);
    if let Some(h) = &raw.healthcheck {
        let fields = yaml_check_fields(r, text, h);
        service.healthcheck = validate_check(r, &fields, Some(&service.frontend));
    }
    if let Some(fb) = &raw.fallback {
        let v = &fb.value;
        let fields = FallbackFields {
            pos: Some(at(fb)),
            endpoints: yaml_endpoints_fields(r, text, &v.ipv4, &v.ipv6, &v.tcp, &v.udp, &v.weight),
            method: yaml_str(r, "method", &v.method),
        };
        let source = format!("{}#fallback", r.file);
        service.fallback = validate_fallback(r, &fields, &service, source);
    }
    service
}

/// A health check's fields as the YAML readings found them.
fn yaml_check_fields<'v>(
    r: &mut Reporter,
    text: &str,
    h: &'v Spanned<RawHealthcheck>,
) -> CheckFields<'v> {
    let c = &h.value;
    let given = [
        ("type", opt_at(&c.kind)),
        ("port", opt_at(&c.port)),
        ("path", opt_at(&c.path)),
        ("host", opt_at(&c.host)),
        ("expect", opt_at(&c.expect)),
        ("query", opt_at(&c.query)),
        ("interval", opt_at(&c.interval)),
        ("timeout", opt_at(&c.timeout)),
        ("rise", opt_at(&c.rise)),
        ("fall", opt_at(&c.fall)),
        ("on_failure", opt_at(&c.on_failure)),
    ];
    let expect = c.expect.as_ref().and_then(|e| {
        let RawScalar(s, i, _) = &e.value;
        let value = match (s, i) {
            (RawStr::Str(s), _) => s.clone(),
            (_, RawInt::Int(n)) => n.to_string(),
            (RawStr::Other(what), _) => {
                r.error(
                    Some(at(e)),
                    format!(
                        "healthcheck: expect: expected status codes (200, 200-399), found {what}"
                    ),
                );
                return None;
            }
        };
        Some(Located {
            value,
            pos: Some(at(e)),
        })
    });
    CheckFields {
        pos: Some(at(h)),
        kind: yaml_str(r, "healthcheck: type", &c.kind),
        port: yaml_int(r, "healthcheck: port", &c.port, text),
        path: yaml_str(r, "healthcheck: path", &c.path),
        host: yaml_str(r, "healthcheck: host", &c.host),
        expect,
        query: yaml_str(r, "healthcheck: query", &c.query),
        interval: yaml_duration(r, "interval", &c.interval),
        timeout: yaml_duration(r, "timeout", &c.timeout),
        rise: yaml_int(r, "healthcheck: rise", &c.rise, text),
        fall: yaml_int(r, "healthcheck: fall", &c.fall, text),
        on_failure: yaml_str(r, "healthcheck: on_failure", &c.on_failure),
        given: given
            .into_iter()
            .filter_map(|(k, p)| p.map(|p| (k, Some(p))))
            .collect(),
    }
}

/// A duration field: a string, read by `check`.
fn yaml_duration<'v>(
    r: &mut Reporter,
    field: &str,
    v: &'v Option<Spanned<RawStr>>,
) -> Option<Located<&'v str>> {
    let s = v.as_ref()?;
    match &s.value {
        RawStr::Str(text) => Some(Located {
            value: text.as_str(),
            pos: Some(at(s)),
        }),
        RawStr::Other(what) => {
            r.error(Some(at(s)), duration_type_error(field, what));
            None
        }
    }
}

fn opt_at<T>(s: &Option<Spanned<T>>) -> Option<Pos> {
    s.as_ref().map(at)
}

/// Where serde-saphyr found a value.
fn at<T>(s: &Spanned<T>) -> Pos {
    Pos {
        line: s.referenced.line(),
        column: s.referenced.column(),
    }
}

/// A boolean field, or an error naming it when something else is there.
fn yaml_bool(r: &mut Reporter, field: &str, v: &Option<Spanned<RawBool>>) -> Option<Located<bool>> {
    let s = v.as_ref()?;
    match s.value {
        RawBool::Bool(b) => Some(Located {
            value: b,
            pos: Some(at(s)),
        }),
        RawBool::Other(what) => {
            r.error(
                Some(at(s)),
                format!("{field}: expected true or false, found {what}"),
            );
            None
        }
    }
}

/// A route file, left out when it has errors: the fast reader when it
/// takes the file, else serde-saphyr.
pub(super) fn yaml_route(r: &mut Reporter, name: &str, bytes: &[u8]) -> Option<Route> {
    match fast_yaml_route(r.file, name, bytes) {
        // A route with errors (here: in its name) is left out.
        Some(route) => (!r.failed).then_some(route),
        None => full_yaml_route(r, name, bytes),
    }
}

/// A route file read by the full YAML parser (and `lenient` when it
/// refuses the file).
pub(super) fn full_yaml_route(r: &mut Reporter, name: &str, bytes: &[u8]) -> Option<Route> {
    let route = capped(r, |r| {
        let text = utf8(r, bytes)?;
        match serde_saphyr::from_str_with_options::<RawRouteFile>(text, options()) {
            Ok(raw) => Some(route_from_raw(
                r,
                name,
                (&raw.prefix, &raw.gateway),
                Some(&raw.method),
                raw.tunnel.as_ref(),
                text,
            )),
            Err(e) => {
                refused(r, &e, |r| {
                    if let Some(l) = lenient::route(r, text, options())? {
                        let (prefix, gateway) = (&l.prefix, &l.gateway);
                        let tunnel = l.tunnel.as_ref();
                        route_from_raw(r, name, (prefix, gateway), l.method.as_ref(), tunnel, text);
                    }
                    Ok(())
                });
                None
            }
        }
    })?;
    // A route with errors is left out, like a JSON one: with its prefix
    // unparsed it would pass for a default route.
    (!r.failed).then_some(route)
}

/// Validates a route read by either YAML reading; `method` is `None` when
/// it was already reported.
fn route_from_raw(
    r: &mut Reporter,
    name: &str,
    (prefix, gateway): (&Option<Spanned<RawStr>>, &Option<Spanned<RawStr>>),
    method: Option<&Spanned<RawRouteMethod>>,
    tunnel: Option<&Spanned<RawTunnel>>,
    text: &str,
) -> Route {
    let method = method.map(|m| Located {
        value: match m.value {
            RawRouteMethod::Masq => "masq",
            RawRouteMethod::Droute => "droute",
            RawRouteMethod::Tunnel => "tunnel",
            RawRouteMethod::None => "none",
        },
        pos: spanned(m).pos,
    });
    let fields = RouteFields {
        prefix: yaml_str(r, "prefix", prefix),
        gateway: yaml_str(r, "gateway", gateway),
        // A method already reported stands in as any valid one, so that its
        // absence does not also warn of an unused gateway.
        method: method.or(Some(Located {
            value: "masq",
            pos: None,
        })),
        tunnel: tunnel.map(|t| TunnelFields {
            what: "tunnel",
            keys: YAML_TUNNEL_KEYS,
            pos: spanned(&Spanned::new((), t.referenced, t.defined)).pos,
            kind: yaml_str(r, YAML_TUNNEL_KEYS[0], &t.value.kind),
            kind_given: t.value.kind.is_some(),
            port: yaml_int(r, YAML_TUNNEL_KEYS[1], &t.value.port, text),
            checksum: yaml_str(r, YAML_TUNNEL_KEYS[2], &t.value.checksum),
        }),
    };
    validate_route(r, name, &fields)
}

/// `clusterf.yaml`.
pub(super) fn yaml_defaults(r: &mut Reporter, bytes: &[u8]) -> Option<Defaults> {
    capped(r, |r| {
        let text = utf8(r, bytes)?;
        // An empty file (or a bare null) sets no defaults.
        match serde_saphyr::from_str_with_options::<Option<RawDefaultsFile>>(text, options()) {
            Ok(None) => Some(Defaults::default()),
            Ok(Some(raw)) => Some(defaults_from_raw(r, &raw)),
            Err(e) => {
                refused(r, &e, |r| {
                    if let Some(raw) = lenient::defaults(r, text, options())? {
                        defaults_from_raw(r, &raw);
                    }
                    Ok(())
                });
                None
            }
        }
    })
}

fn defaults_from_raw(r: &mut Reporter, raw: &RawDefaultsFile) -> Defaults {
    let scheduler = yaml_str(r, "scheduler", &raw.scheduler);
    let scheduler = parse_scheduler(r, &scheduler);
    let method = yaml_str(r, "method", &raw.method).and_then(|m| match m.value.parse::<Method>() {
        Ok(method) => Some(method),
        Err(e) => {
            r.error(m.pos, format!("method: {e}"));
            None
        }
    });
    Defaults { scheduler, method }
}

/// Runs `read` on one file with its problems gathered apart, then reports
/// them in order, at most [`MAX_PROBLEMS`] and a count of the rest.
fn capped<T>(r: &mut Reporter, read: impl FnOnce(&mut Reporter) -> T) -> T {
    let mut local = Diagnostics::default();
    let mut lr = Reporter {
        file: r.file,
        diags: &mut local,
        failed: false,
    };
    let out = read(&mut lr);
    r.failed |= lr.failed;
    if local.len() > MAX_PROBLEMS {
        local.sort();
        let rest = local.0.split_off(MAX_PROBLEMS);
        let noun = if rest.len() == 1 {
            "problem"
        } else {
            "problems"
        };
        let more = format!(
            "and {} more {noun}: only the first {MAX_PROBLEMS} of a file are listed",
            rest.len()
        );
        let mut local = local;
        local.error(r.file, rest[0].pos, more);
        r.diags.extend(local);
    } else {
        r.diags.extend(local);
    }
    out
}

/// A file serde-saphyr refused: its error, and when the error is one of
/// those `lenient` finds too (the file's shape, not its syntax), every
/// other problem `walk` finds. The error is kept as serde-saphyr worded
/// it; the same problem found by `walk` is the same diagnostic, which
/// sorting removes. When the untyped reading fails too (a syntax error or
/// a budget breach further on, which the typed reading did not reach),
/// the file keeps its one problem, as a syntax error alone does.
fn refused(
    r: &mut Reporter,
    e: &serde_saphyr::Error,
    walk: impl FnOnce(&mut Reporter) -> Result<(), serde_saphyr::Error>,
) {
    report(r, e);
    if is_shape(e) {
        let mut found = Diagnostics::default();
        let mut fr = Reporter {
            file: r.file,
            diags: &mut found,
            failed: false,
        };
        if walk(&mut fr).is_ok() {
            r.diags.extend(found);
        }
    }
}

fn report(r: &mut Reporter, e: &serde_saphyr::Error) {
    let pos = e.location().map(|l| Pos {
        line: l.line(),
        column: l.column(),
    });
    r.error(pos, yaml_message(e));
}

/// Whether serde-saphyr refused a file for its shape (what `lenient` finds
/// too), not for its syntax or size.
fn is_shape(e: &serde_saphyr::Error) -> bool {
    use serde_saphyr::Error as E;
    matches!(
        innermost(e),
        E::SerdeUnknownField { .. }
            | E::SerdeMissingField { .. }
            | E::SerdeUnknownVariant { .. }
            | E::SerdeInvalidType { .. }
            | E::SerdeInvalidValue { .. }
            | E::Unexpected { .. }
            | E::DuplicateMappingKey { .. }
            | E::NullIntoString { .. }
            | E::ExternallyTaggedEnumExpectedScalarOrMapping { .. }
            | E::UnexpectedValueForUnitEnumVariant { .. }
    )
}

/// For `agree`: serde-saphyr's diagnostic when it refuses `text` as a `T`
/// for its shape, and the problems `walk` (a `lenient` reading, which
/// says whether it read a tree) finds.
#[cfg(any(test, feature = "fuzzing"))]
pub(super) fn shape_readings<T: serde::de::DeserializeOwned>(
    text: &str,
    walk: impl FnOnce(&mut Reporter, &str, serde_saphyr::Options) -> bool,
) -> Option<(crate::diag::Diagnostic, Diagnostics)> {
    let e = serde_saphyr::from_str_with_options::<T>(text, options()).err()?;
    if !is_shape(&e) {
        return None;
    }
    let mut serde = Diagnostics::default();
    refused(
        &mut Reporter {
            file: "f",
            diags: &mut serde,
            failed: false,
        },
        &e,
        |_| Ok(()),
    );
    let mut lenient = Diagnostics::default();
    let read = walk(
        &mut Reporter {
            file: "f",
            diags: &mut lenient,
            failed: false,
        },
        text,
        options(),
    );
    // A syntax error after the typed reading stopped leaves no tree.
    read.then_some(())?;
    Some((serde.0.pop()?, lenient))
}

/// serde-saphyr's error without the wrappers that add a snippet or an
/// alias's location.
fn innermost(e: &serde_saphyr::Error) -> &serde_saphyr::Error {
    let mut e = e;
    while let serde_saphyr::Error::AliasError { error, .. }
    | serde_saphyr::Error::WithSnippet { error, .. } = e
    {
        e = error;
    }
    e
}

/// The error message in our words, without serde-saphyr's location suffix
/// or snippet (the diagnostic carries the position itself).
fn yaml_message(e: &serde_saphyr::Error) -> String {
    use serde_saphyr::MessageFormatter as _;
    Words.format_message(innermost(e)).into_owned()
}

/// serde-saphyr's messages, reworded where they speak to a Rust programmer
/// (`use Option<String>`, `use from_str_multiple`) or echo input whole.
struct Words;

impl serde_saphyr::MessageFormatter for Words {
    fn format_message<'a>(&self, err: &'a serde_saphyr::Error) -> std::borrow::Cow<'a, str> {
        use serde_saphyr::Error as E;
        let list = |e: &[&str]| e.join(", ");
        match err {
            E::NullIntoString { .. } | E::InvalidCharNull { .. } => {
                "expected a string, found null (write \"null\" in quotes for the word)".into()
            }
            E::MultipleDocuments { .. } => {
                "more than one YAML document (a \"---\" line): a file holds one".into()
            }
            E::DuplicateMappingKey { key: Some(k), .. } => {
                format!("duplicate key {}", text::quote(k)).into()
            }
            E::DuplicateMappingKey { key: None, .. } => "duplicate key".into(),
            E::SerdeUnknownField {
                field, expected, ..
            } => format!(
                "unknown field {}, expected one of {}",
                text::quote(field),
                list(expected)
            )
            .into(),
            E::SerdeUnknownVariant {
                variant, expected, ..
            } => format!(
                "unknown value {}, expected one of {}",
                text::quote(variant),
                list(expected)
            )
            .into(),
            E::SerdeMissingField { field, .. } => {
                format!("missing field {}", text::quote(field)).into()
            }
            E::SerdeInvalidType {
                unexpected,
                expected,
                ..
            }
            | E::SerdeInvalidValue {
                unexpected,
                expected,
                ..
            } => format!("expected {expected}, found {}", text::cut(unexpected)).into(),
            E::Unexpected { expected, .. } => match *expected {
                "mapping start" => "expected a mapping (key: value lines or {key: value})".into(),
                "sequence start" => "expected a list".into(),
                "scalar" | "string scalar" => "expected a single value".into(),
                other => format!("expected {other}").into(),
            },
            E::ExternallyTaggedEnumExpectedScalarOrMapping { .. }
            | E::UnexpectedValueForUnitEnumVariant { .. } => "expected a single word".into(),
            E::Budget { breach, .. } => {
                format!("too large or too complex to read: {}", budget_words(breach)).into()
            }
            E::NonFiniteFloat { value, .. } => {
                format!("{} is not a finite number", text::cut(value)).into()
            }
            _ => text::cut_message(&serde_saphyr::UserMessageFormatter.format_message(err)).into(),
        }
    }
}

/// Which of serde-saphyr's limits a file breached, in words. The counts
/// are those at the breach: one over the limit.
fn budget_words(breach: &serde_saphyr::budget::BudgetBreach) -> String {
    use serde_saphyr::budget::BudgetBreach as B;
    let over = |n: usize| n.saturating_sub(1);
    match breach {
        B::Nodes { nodes } => format!("more than {} YAML nodes", over(*nodes)),
        B::Events { events } => format!("more than {} YAML events", over(*events)),
        B::Depth { depth } => format!("nested deeper than {} levels", over(*depth)),
        B::Aliases { aliases } => format!("more than {} aliases", over(*aliases)),
        B::Anchors { anchors } => format!("more than {} anchors", over(*anchors)),
        B::ScalarBytes { total_scalar_bytes } => {
            format!("{total_scalar_bytes} bytes of values, more than the limit")
        }
        other => format!("{other:?}"),
    }
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
/// serde-saphyr reads integers of 2^64 and more through a float, which
/// rounds them (2^64+80 became 18446744073709551616) or takes them for
/// fractions: those are read again from `text`, exactly.
fn yaml_int(
    r: &mut Reporter,
    field: &str,
    v: &Option<Spanned<RawInt>>,
    text: &str,
) -> Option<Located<i128>> {
    let l = spanned_opt(v)?;
    let inexact = match l.value {
        RawInt::Int(n) => n.unsigned_abs() >= 1 << 53,
        RawInt::Other(what) => what == "a fractional number",
    };
    let literal = v
        .as_ref()
        .and_then(|s| literal(text, s))
        .filter(|_| inexact);
    let value = match (l.value, literal.map(|lit| (lit, exact_integer(lit)))) {
        (_, Some((_, Some(Ok(n))))) => n,
        (_, Some((lit, Some(Err(TooLarge))))) => {
            r.error(l.pos, range_error(field, &text::cut(lit)));
            return None;
        }
        (RawInt::Int(n), _) => n,
        (RawInt::Other(_), Some((lit, None))) => {
            r.error(
                l.pos,
                format!("{field}: expected an integer, found {}", text::cut(lit)),
            );
            return None;
        }
        (RawInt::Other(what), None) => {
            r.error(l.pos, format!("{field}: expected an integer, found {what}"));
            return None;
        }
    };
    Some(Located { value, pos: l.pos })
}

/// The source text of a scalar, as written.
fn literal<'t, T>(text: &'t str, s: &Spanned<T>) -> Option<&'t str> {
    let span = s.referenced.span();
    let start = usize::try_from(span.byte_offset()?).ok()?;
    let len = usize::try_from(span.byte_len()?).ok()?;
    text.get(start..start.checked_add(len)?).map(str::trim)
}

fn yaml_endpoints_fields<'v>(
    r: &mut Reporter,
    text: &str,
    ipv4: &'v Option<Spanned<RawStr>>,
    ipv6: &'v Option<Spanned<RawStr>>,
    tcp: &Option<Spanned<RawInt>>,
    udp: &Option<Spanned<RawInt>>,
    weight: &Option<Spanned<RawInt>>,
) -> EndpointFields<'v> {
    EndpointFields {
        ipv4: yaml_str(r, "ipv4", ipv4),
        ipv6: yaml_str(r, "ipv6", ipv6),
        tcp: yaml_int(r, "tcp", tcp, text),
        udp: yaml_int(r, "udp", udp, text),
        weight: yaml_int(r, "weight", weight, text),
        healthcheck: None,
        fwmark_ipv4: None,
        fwmark_ipv6: None,
        upper_threshold: None,
        lower_threshold: None,
        upper_given: false,
        // An address or port of the wrong type is reported as such, not as
        // missing.
        addr_given: ipv4.is_some() || ipv6.is_some(),
        port_given: tcp.is_some() || udp.is_some(),
    }
}

/// A value with the position serde-saphyr recorded for it.
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

/// serde-saphyr's options: its budget sized so that any file within
/// [`FILE_LIMIT`](crate::tree::FILE_LIMIT) fits (a node takes at least two
/// bytes, `[a,b]`; an event at least one), the rest of it as it comes.
pub(super) fn options() -> serde_saphyr::Options {
    let bytes = usize::try_from(crate::tree::FILE_LIMIT).unwrap_or(usize::MAX);
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = bytes / 2 + 1;
    budget.max_events = bytes + 1;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    // Comments mean nothing to clusterf. Emitted, they are buffered while
    // the parser looks ahead, and past 32 of them it refuses a valid file
    // ("too many buffered comments"), which the fast reader takes: found by
    // the fast_readers fuzz target.
    options.emit_comments = false;
    options
}

#[cfg(test)]
mod tests {
    fn assert_fast_service_agrees(text: &str) -> bool {
        crate::config::agree::yaml_service(text.as_bytes())
    }

    fn assert_fast_route_agrees(text: &str) -> bool {
        crate::config::agree::yaml_route(text.as_bytes())
    }

    /// Found by the fast_readers fuzz target: serde-saphyr refused a valid
    /// file with many comments where it looks ahead; the fast reader took it.
    #[test]
    fn comments_anywhere_and_many_are_read_alike_by_both_readers() {
        let mut text = String::from("frontend:\n");
        for i in 0..40 {
            text.push_str(&format!(" # comment {i}\n\n"));
        }
        text.push_str("  ipv6: 2001:db8::10\n  tcp: 80\n");
        assert!(assert_fast_service_agrees(&text));
    }

    #[test]
    fn fast_yaml_takes_the_usual_layouts() {
        for text in [
            // The README's and the benchmark's shape.
            "frontend:\n  ipv4: 10.0.0.1\n  ipv6: \"2001:db8::1\"\n  tcp: 80\n  udp: 53\nbackends:\n  b0: {ipv4: 100.0.0.1, ipv6: \"2001:db8:1::1\", tcp: 8080, udp: 5353, weight: 1}\n",
            // Block backends, comments, blank lines, 4-space indent, quotes.
            "# web\nfrontend:   # the VIP\n    ipv4: '10.0.0.1'\n    tcp: 80\n\nscheduler: wrr\npersistence: 300\nbackends:\n    web-1:\n        ipv4: 10.1.0.1 # one\n        weight: 0\n    web.2@x:\n        ipv6: 2001:db8::2\n        tcp: 8080\n",
            "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends: {}\n",
            "frontend: { ipv6: \"fe80::1\" , udp: 53 }\nbackends:\n  a: { ipv6: fd00::2 }\n",
            // Health checks: every key, plain durations, paths and ranges.
            "frontend: {ipv4: 10.0.0.1, tcp: 443}\nhealthcheck:\n  type: https\n  port: 8443\n  path: /healthz\n  host: web.example.com\n  expect: 200-399\n  interval: 10s\n  timeout: 500ms\n  rise: 1\n  fall: 5\n  on_failure: remove\nbackends:\n  a: {ipv4: 10.1.0.1, healthcheck: false}\n  b: {ipv4: 10.1.0.2, healthcheck: true}\n",
            "frontend: {ipv4: 10.0.0.1, udp: 53}\nhealthcheck: {type: dns, query: health.example.com., interval: '1m', timeout: \"2s\"}\n",
            "frontend: {ipv4: 10.0.0.1, tcp: 80}\nhealthcheck: {type: http, expect: 204}\n",
            "frontend: {ipv4: 10.0.0.1, tcp: 80}\nhealthcheck: {type: http, expect: '200,204'}\n",
            "frontend: {ipv4: 10.0.0.1, tcp: 80}\nhealthcheck:\n  type: none\n",
            // The IPVS options.
            "frontend:\n  fwmark_ipv4: 42\n  fwmark_ipv6: 43\nscheduler: sh\nscheduler_flags: sh-port\npersistence: 60\npersistence_netmask_ipv4: 24\npersistence_netmask_ipv6: 64\nhealthcheck: {type: tcp, port: 80}\nbackends:\n  a: {ipv4: 10.1.0.1, upper_threshold: 100, lower_threshold: 50}\n",
            "frontend: {ipv4: 10.0.0.1, udp: 5060}\npersistence: 60\npersistence_engine: sip\nops: true\nscheduler: mh\nscheduler_flags: \"mh-fallback,mh-port\"\n",
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
                "5s",
                "500ms",
                "1m",
                "05s",
                "5sec",
                "1.5s",
                "/x",
                "/",
                "//a",
                "/a:b",
                "200-399",
                "200-3999",
                "2000-399",
                "false",
                "FALSE",
                "False",
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
                "fwmark_ipv4" | "fwmark_ipv6" => vec!["1", "42", "4294967295"],
                "upper_threshold" | "lower_threshold" => vec!["0", "10", "2147483647"],
                "persistence_netmask_ipv4" => vec!["0", "24", "32"],
                "persistence_netmask_ipv6" => vec!["1", "64", "128"],
                "persistence_engine" => vec!["sip", "\"sip\""],
                "ops" => vec!["true", "false"],
                "scheduler_flags" => vec!["sh-port", "mh-fallback", "\"sh-fallback, sh-port\""],
                "healthcheck" => vec![
                    "false",
                    "true",
                    "{type: tcp}",
                    "{type: http, path: /x, expect: 200-399, interval: 1s}",
                    "{type: https, host: a.example, expect: 200, timeout: 500ms}",
                    "{type: tcp, port: 8080, rise: 1, fall: 5, on_failure: remove}",
                    "{type: tcp, interval: 1s, timeout: 1s}",
                    "{type: none, rise: 1}",
                    "{type: dns, query: a.example, bogus: 1}",
                    "{type: dns, query: a.example}",
                    "{type: http, expect: 200-399, path: healthz}",
                ],
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
            let keys: Vec<&str> = if frontend {
                crate::config::raw::FRONTEND_FIELDS.to_vec()
            } else {
                crate::config::raw::BACKEND_FIELDS.to_vec()
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
                    vec!["healthcheck"], vec!["healthcheck", "persistence"],
                    vec!["persistence", "persistence_netmask_ipv4", "persistence_netmask_ipv6"],
                    vec!["persistence", "persistence_engine", "ops"], vec!["ops"],
                    vec!["scheduler", "scheduler_flags"], vec!["persistence_netmask_ipv4"],
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
            fn lenient_reports_what_serde_saphyr_reports_after_any_edit(
                doc in service_doc(),
                at in prop::collection::vec(any::<prop::sample::Index>(), 1..4),
                edit in prop::collection::vec(prop::sample::select(vec![
                    " ", ":", "-", "{", "}", ",", "\"", "\n", "[", "]", "~", "x", "0",
                    "\n  ", "\nbogus: 1\n", "method: x\n", "\n  a: 5\n", ": ", "null",
                ]), 1..4),
            ) {
                let mut doc = doc;
                for (at, edit) in at.iter().zip(&edit) {
                    let i = at.index(doc.len() + 1);
                    if doc.is_char_boundary(i) {
                        doc.insert_str(i, edit);
                    }
                }
                crate::config::agree::yaml_shape(doc.as_bytes());
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
}
