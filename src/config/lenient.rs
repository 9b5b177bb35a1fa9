//! A YAML file that serde-saphyr refused, read again so that every problem
//! of the file is reported, not only the first: the text becomes a tree of
//! nodes with their positions (read by serde-saphyr, each scalar through
//! the same visitors as the `Raw*` fields, so both readings agree), walked
//! against the rules of the `Raw*` types: mappings where they belong, known
//! keys, no repeats, required keys, route methods. What can be read becomes
//! the `Raw*` values the typed reading yields, which `yaml` validates as
//! it validates those. Only the first four levels are kept (the file,
//! `backends`, a backend, a field's value), so the stack stays flat.
//!
//! A second reading, not a lenient first one: valid files stay on
//! serde-saphyr's typed path (or the fast readers), unchanged and as fast;
//! this runs only for a file that already failed. A syntax error still
//! stops its file (what follows it cannot be read reliably), also one
//! further on than where the typed reading stopped: no tree is built, and
//! serde-saphyr's error is the file's one problem.
//!
//! Must not: word a problem differently from serde-saphyr's message for it
//! (as `yaml` words those): the first problem of a file reads as before.

use std::marker::PhantomData;

use serde::de::{self, Deserialize, Visitor};
use serde_saphyr::{Location, Spanned};

use super::raw::{
    BACKEND_FIELDS, DEFAULTS_FIELDS, FALLBACK_FIELDS, FRONTEND_FIELDS, HEALTHCHECK_FIELDS,
    ROUTE_FIELDS, ROUTE_METHODS, RawBackend, RawBool, RawDefaultsFile, RawFallback, RawFrontend,
    RawHealthcheck, RawInt, RawRouteMethod, RawScalar, RawServiceFile, RawStr, RawTunnel,
    SERVICE_FIELDS, ScalarVisitor, TUNNEL_FIELDS,
};
use super::validate::Reporter;
use crate::diag::Pos;
use crate::text;

/// A YAML node as serde-saphyr reads it untyped.
pub(super) enum Node {
    /// Pairs in the order written, repeated keys kept.
    Map(Vec<(Spanned<Node>, Spanned<Node>)>),
    Seq,
    /// A scalar as a string, an integer and a boolean field read it.
    Scalar(RawScalar),
}

type Pairs = [(Spanned<Node>, Spanned<Node>)];

/// A service file read leniently: what could be read, and whether the
/// frontend was reported as missing or malformed (so that validation does
/// not also call it empty).
pub(super) struct LenientService {
    pub(super) raw: RawServiceFile,
    pub(super) frontend_reported: bool,
}

/// A route file read leniently; `method` is `None` when it was reported.
pub(super) struct LenientRoute {
    pub(super) prefix: Option<Spanned<RawStr>>,
    pub(super) gateway: Option<Spanned<RawStr>>,
    pub(super) method: Option<Spanned<RawRouteMethod>>,
    pub(super) tunnel: Option<Spanned<RawTunnel>>,
}

/// What a lenient reading found (`None`: nothing to validate), or
/// serde-saphyr's error when it cannot read the file untyped either (a
/// syntax error or a budget breach past where the typed reading stopped).
pub(super) type Reading<T> = Result<Option<T>, serde_saphyr::Error>;

/// The tree of `text`.
fn tree(text: &str, options: serde_saphyr::Options) -> Result<Spanned<Node>, serde_saphyr::Error> {
    let mut options = options;
    // Repeats are reported here, with every other problem.
    options.duplicate_keys = serde_saphyr::options::DuplicateKeyPolicy::PassThrough;
    let mut tree =
        serde_saphyr::from_str_with_options::<Spanned<At<D0>>>(text, options).map(unwrap)?;
    place_merged(text, &mut tree);
    Ok(tree)
}

/// Places every node that a merge key (`<<: {...}`) replays where it is
/// written, as serde-saphyr does; it comes with the merge's position as
/// `referenced`. A node an alias replays stays at the alias (`*name`),
/// also as serde-saphyr places it (both found by fuzzing).
fn place_merged(text: &str, node: &mut Spanned<Node>) {
    let at_alias = node
        .referenced
        .span()
        .byte_offset()
        .and_then(|i| usize::try_from(i).ok())
        .is_some_and(|i| text.as_bytes().get(i) == Some(&b'*'));
    if !at_alias {
        node.referenced = node.defined;
    }
    if let Node::Map(pairs) = &mut node.value {
        for (key, value) in pairs {
            place_merged(text, key);
            place_merged(text, value);
        }
    }
}

/// A service file's problems, and its values as far as they can be read.
pub(super) fn service(
    r: &mut Reporter,
    text: &str,
    options: serde_saphyr::Options,
) -> Reading<LenientService> {
    read(r, text, options, walk_service)
}

/// A route file's problems, and its values as far as they can be read.
pub(super) fn route(
    r: &mut Reporter,
    text: &str,
    options: serde_saphyr::Options,
) -> Reading<LenientRoute> {
    read(r, text, options, walk_route)
}

/// `clusterf.yaml`'s problems and values (`None` for an empty file too).
pub(super) fn defaults(
    r: &mut Reporter,
    text: &str,
    options: serde_saphyr::Options,
) -> Reading<RawDefaultsFile> {
    read(r, text, options, walk_defaults)
}

type Walk<T> = fn(&mut Reporter, &str, serde_saphyr::Options) -> Reading<T>;

/// `walk`'s reading, and the file's first repeated key if the walk did not
/// report it.
fn read<T>(
    r: &mut Reporter,
    text: &str,
    options: serde_saphyr::Options,
    walk: Walk<T>,
) -> Reading<T> {
    let reading = walk(r, text, options.clone())?;
    hidden_duplicate(r, text, options);
    Ok(reading)
}

/// The file's first repeated key, wherever it is, as serde-saphyr finds it
/// (with its own key comparison), unless the walk reported it: the walk
/// finds repeats only where it keeps the tree, not inside a value it takes
/// whole (a mapping where a string belongs, anything below a backend's
/// fields), which the typed reading reads through (found by fuzzing).
fn hidden_duplicate(r: &mut Reporter, text: &str, options: serde_saphyr::Options) {
    use serde_saphyr::Error as E;
    let Err(e) = serde_saphyr::from_str_with_options::<de::IgnoredAny>(text, options) else {
        return;
    };
    let mut e = &e;
    while let E::WithSnippet { error, .. } | E::AliasError { error, .. } = e {
        e = error;
    }
    let E::DuplicateMappingKey { key, location } = e else {
        return;
    };
    let message = match key {
        Some(k) => format!("duplicate key {}", text::quote(k)),
        None => "duplicate key".to_string(),
    };
    let at = pos(location);
    let file = r.file;
    let reported = r
        .diags
        .iter()
        .any(|d| d.file == file && d.pos == at && d.message == message);
    if !reported {
        r.error(at, message);
    }
}

fn walk_service(
    r: &mut Reporter,
    text: &str,
    options: serde_saphyr::Options,
) -> Reading<LenientService> {
    let top = tree(text, options)?;
    let Some(pairs) = mapping(r, &top) else {
        return Ok(None);
    };
    let [
        frontend,
        scheduler,
        persistence,
        netmask_ipv4,
        netmask_ipv6,
        persistence_engine,
        ops,
        scheduler_flags,
        backends,
        healthcheck,
        fallback,
        default_weight,
    ] = fields(r, text, pairs, SERVICE_FIELDS);
    let mut frontend_reported = true;
    let frontend = match frontend {
        None => {
            missing(r, &top, pairs, "frontend");
            spanned_as(&top, empty_frontend())
        }
        Some(f) => match mapping(r, f) {
            None => spanned_as(f, empty_frontend()),
            Some(pairs) => {
                frontend_reported = false;
                let [ipv4, ipv6, tcp, udp, fwmark_ipv4, fwmark_ipv6] =
                    fields(r, text, pairs, FRONTEND_FIELDS);
                spanned_as(
                    f,
                    RawFrontend {
                        ipv4: string(ipv4),
                        ipv6: string(ipv6),
                        tcp: integer(tcp),
                        udp: integer(udp),
                        fwmark_ipv4: integer(fwmark_ipv4),
                        fwmark_ipv6: integer(fwmark_ipv6),
                    },
                )
            }
        },
    };
    let raw = RawServiceFile {
        frontend,
        scheduler: string(scheduler),
        persistence: integer(persistence),
        persistence_netmask_ipv4: integer(netmask_ipv4),
        persistence_netmask_ipv6: integer(netmask_ipv6),
        persistence_engine: string(persistence_engine),
        ops: boolean(ops),
        scheduler_flags: string(scheduler_flags),
        backends: backends
            .map(|b| service_backends(r, text, b))
            .unwrap_or_default(),
        healthcheck: healthcheck
            .filter(|n| !is_null(&n.value))
            .and_then(|h| service_healthcheck(r, text, h)),
        fallback: fallback
            .filter(|n| !is_null(&n.value))
            .and_then(|f| service_fallback(r, text, f)),
        default_weight: integer(default_weight),
    };
    Ok(Some(LenientService {
        raw,
        frontend_reported,
    }))
}

fn empty_frontend() -> RawFrontend {
    RawFrontend {
        ipv4: None,
        ipv6: None,
        tcp: None,
        udp: None,
        fwmark_ipv4: None,
        fwmark_ipv6: None,
    }
}

/// `value` at the position of `node`.
fn spanned_as<T>(node: &Spanned<Node>, value: T) -> Spanned<T> {
    Spanned::new(value, node.referenced, node.defined)
}

/// The backends that can be read; the rest are reported.
fn service_backends(
    r: &mut Reporter,
    text: &str,
    node: &Spanned<Node>,
) -> std::collections::BTreeMap<String, Spanned<RawBackend>> {
    let mut out = std::collections::BTreeMap::new();
    let Some(pairs) = mapping(r, node) else {
        return out;
    };
    for (key, value) in pairs {
        let Some(name) = key_text(text, key) else {
            r.error(pos(&key.defined), not_a_string(&key.value));
            continue;
        };
        if out.contains_key(&name) {
            r.error(
                pos(&key.defined),
                format!("duplicate key {}", text::quote(&name)),
            );
            continue;
        }
        let Some(pairs) = mapping(r, value) else {
            continue;
        };
        let [
            ipv4,
            ipv6,
            tcp,
            udp,
            weight,
            healthcheck,
            upper_threshold,
            lower_threshold,
        ] = fields(r, text, pairs, BACKEND_FIELDS);
        let backend = RawBackend {
            ipv4: string(ipv4),
            ipv6: string(ipv6),
            tcp: integer(tcp),
            udp: integer(udp),
            weight: integer(weight),
            healthcheck: boolean(healthcheck),
            upper_threshold: integer(upper_threshold),
            lower_threshold: integer(lower_threshold),
        };
        out.insert(name, spanned_as(value, backend));
    }
    out
}

/// A service's health check, when it is a mapping (else reported).
fn service_healthcheck(
    r: &mut Reporter,
    text: &str,
    node: &Spanned<Node>,
) -> Option<Spanned<RawHealthcheck>> {
    let pairs = mapping(r, node)?;
    let [
        kind,
        port,
        path,
        host,
        expect,
        query,
        interval,
        timeout,
        rise,
        fall,
        on_failure,
    ] = fields(r, text, pairs, HEALTHCHECK_FIELDS);
    let check = RawHealthcheck {
        kind: string(kind),
        port: integer(port),
        path: string(path),
        host: string(host),
        expect: scalar_field(expect),
        query: string(query),
        interval: string(interval),
        timeout: string(timeout),
        rise: integer(rise),
        fall: integer(fall),
        on_failure: string(on_failure),
    };
    Some(spanned_as(node, check))
}

/// A service's fallback, when it is a mapping (else reported).
fn service_fallback(
    r: &mut Reporter,
    text: &str,
    node: &Spanned<Node>,
) -> Option<Spanned<RawFallback>> {
    let pairs = mapping(r, node)?;
    let [ipv4, ipv6, tcp, udp, weight, method] = fields(r, text, pairs, FALLBACK_FIELDS);
    let fallback = RawFallback {
        ipv4: string(ipv4),
        ipv6: string(ipv6),
        tcp: integer(tcp),
        udp: integer(udp),
        weight: integer(weight),
        method: string(method),
    };
    Some(spanned_as(node, fallback))
}

fn walk_route(
    r: &mut Reporter,
    text: &str,
    options: serde_saphyr::Options,
) -> Reading<LenientRoute> {
    let top = tree(text, options)?;
    let Some(pairs) = mapping(r, &top) else {
        return Ok(None);
    };
    let [prefix, gateway, method, tunnel] = fields(r, text, pairs, ROUTE_FIELDS);
    let method = match method {
        None => {
            missing(r, &top, pairs, "method");
            None
        }
        Some(m) => route_method(r, text, m).map(|v| spanned_as(m, v)),
    };
    // `tunnel: null` is no tunnel, as for serde.
    let tunnel = tunnel.filter(|n| !is_null(&n.value)).and_then(|t| {
        let pairs = mapping(r, t)?;
        let [kind, port, checksum] = fields(r, text, pairs, TUNNEL_FIELDS);
        let raw = RawTunnel {
            kind: string(kind),
            port: integer(port),
            checksum: string(checksum),
        };
        Some(spanned_as(t, raw))
    });
    Ok(Some(LenientRoute {
        prefix: string(prefix),
        gateway: string(gateway),
        method,
        tunnel,
    }))
}

/// A route's method, as serde-saphyr reads a unit enum: a scalar names a
/// variant (as written: `~` is no null here); a mapping names it by its
/// first key, whose value must be no value, and must hold nothing else.
fn route_method(r: &mut Reporter, text: &str, node: &Spanned<Node>) -> Option<RawRouteMethod> {
    let (word, value, rest) = match &node.value {
        Node::Scalar(_) => (node, None, None),
        Node::Map(pairs) if !pairs.is_empty() => (&pairs[0].0, Some(&pairs[0].1), pairs.get(1)),
        _ => {
            r.error(pos(&node.referenced), "expected a single word");
            return None;
        }
    };
    let name = match &word.value {
        Node::Scalar(RawScalar(RawStr::Str(s), ..)) => s.as_str(),
        // An empty value is null, which serde-saphyr names `~` (found by
        // fuzzing: `method: #comment`), unless a tag makes it the empty
        // string (`method: !t`, also found by fuzzing).
        Node::Scalar(_) => match literal(text, word)? {
            // A key's properties stand on its line: one on the line above
            // is its mapping's (`method: !t` then ` : x`; found by fuzzing).
            "" if tagged(text, word) && (value.is_none() || !tag_above(text, word)) => "",
            "" => "~",
            lit => lit,
        },
        _ => {
            r.error(pos(&word.referenced), "expected a single word");
            return None;
        }
    };
    let method = match name {
        "masq" => RawRouteMethod::Masq,
        "droute" => RawRouteMethod::Droute,
        "tunnel" => RawRouteMethod::Tunnel,
        "none" => RawRouteMethod::None,
        _ => {
            r.error(
                pos(&word.referenced),
                format!(
                    "unknown value {}, expected one of {}",
                    text::quote(name),
                    ROUTE_METHODS.join(", ")
                ),
            );
            return None;
        }
    };
    // serde-saphyr stops at the first of these, so one is reported.
    if let Some(value) = value.filter(|v| !unit_value_is_null(text, v)) {
        r.error(pos(&value.referenced), "expected a single word");
        return None;
    }
    if let Some((key, _)) = rest {
        r.error(pos(&key.referenced), "expected a single word");
        return None;
    }
    Some(method)
}

/// Whether serde-saphyr reads a unit variant's value (`{masq: value}`)
/// as no value: anything tagged null, or a plain `""`, `~`, `null`, `Null`
/// or `NULL` that no tag gives another type. (The fuzzer found a method
/// map of two pairs, `{type: gre, checksum: c0}`, read differently.)
fn unit_value_is_null(text: &str, node: &Spanned<Node>) -> bool {
    match tag(text, node).map(|t| tag_type(text, t)) {
        Some(TagType::Null) => true,
        Some(TagType::Typed | TagType::Binary) => false,
        Some(TagType::Other) | None => {
            matches!(node.value, Node::Scalar(_))
                && matches!(
                    literal(text, node),
                    Some("" | "~" | "null" | "Null" | "NULL")
                )
        }
    }
}

/// What a tag makes of a plain scalar for serde-saphyr.
#[derive(Debug, PartialEq, Eq)]
enum TagType {
    Null,
    Binary,
    /// A type that reads no null: a core type, a string (`!` too), a
    /// timestamp, a time or an angle.
    Typed,
    /// A tag serde-saphyr reads as it would the untagged scalar.
    Other,
}

/// A tag as written (`!int`, `!!int`, `!e!int` under `%TAG`,
/// `!<tag:yaml.org,2002:int>`), resolved and typed by serde-saphyr's rules
/// (its `SfTag`, which it keeps private: mirrored here, and tested against
/// its readings).
fn tag_type(text: &str, tag: &str) -> TagType {
    // The non-specific tag is no shorthand: no `%TAG` resolves it.
    if tag == "!" {
        return TagType::Typed;
    }
    let full = resolve_tag(text, tag);
    let name = if let Some(name) = full.strip_prefix("tag:yaml.org,2002:") {
        name.strip_prefix('!').unwrap_or(name)
    } else if let Some(local) = full.strip_prefix('!') {
        match local {
            "" | "!" | "!timestamp" => return TagType::Typed,
            "!binary" => return TagType::Binary,
            _ => match local.strip_prefix('!') {
                Some("null") => "null",
                Some(core @ ("bool" | "int" | "float" | "map" | "seq" | "str")) => core,
                Some(_) => return TagType::Other,
                None => local,
            },
        }
    } else {
        return TagType::Other;
    };
    match name {
        "null" => TagType::Null,
        "binary" => TagType::Binary,
        "int" | "float" | "bool" | "seq" | "map" | "str" | "timestamp" | "time" | "degrees"
        | "radians" => TagType::Typed,
        _ => TagType::Other,
    }
}

/// A tag's full name: a verbatim tag as written, a shorthand's handle
/// (`!`, `!!`, `!name!`) replaced by its prefix, from the file's `%TAG`
/// directives or YAML's defaults.
fn resolve_tag(text: &str, tag: &str) -> String {
    if let Some(verbatim) = tag.strip_prefix("!<").and_then(|t| t.strip_suffix('>')) {
        return verbatim.to_string();
    }
    let handle_end = tag.get(1..).and_then(|t| t.find('!')).map_or(1, |i| i + 2);
    let (handle, suffix) = tag.split_at(handle_end.min(tag.len()));
    // Directives open the file, before its `---`: only those lines (and
    // comments between them) are read, so a file of many tags costs its
    // directives once a tag, not its length.
    let declared = text
        .trim_start_matches('\u{feff}')
        .lines()
        .take_while(|line| line.starts_with(['%', '#']) || line.trim().is_empty())
        .filter_map(|line| {
            let mut words = line.strip_prefix("%TAG")?.split_whitespace();
            Some((words.next()?, words.next()?))
        })
        .find(|(h, _)| *h == handle)
        .map(|(_, prefix)| prefix);
    let prefix = declared.unwrap_or(match handle {
        "!!" => "tag:yaml.org,2002:",
        "!" => "!",
        // An undeclared named handle is an error serde-saphyr reports first.
        other => other,
    });
    format!("{prefix}{suffix}")
}

fn walk_defaults(
    r: &mut Reporter,
    text: &str,
    options: serde_saphyr::Options,
) -> Reading<RawDefaultsFile> {
    let top = tree(text, options)?;
    if is_null(&top.value) {
        return Ok(None);
    }
    let Some(pairs) = mapping(r, &top) else {
        return Ok(None);
    };
    let [scheduler, method] = fields(r, text, pairs, DEFAULTS_FIELDS);
    Ok(Some(RawDefaultsFile {
        scheduler: string(scheduler),
        method: string(method),
    }))
}

/// The pairs of a mapping, or an error when `node` is something else.
fn mapping<'n>(r: &mut Reporter, node: &'n Spanned<Node>) -> Option<&'n Pairs> {
    match &node.value {
        Node::Map(pairs) => Some(pairs),
        _ => {
            r.error(pos(&node.referenced), NOT_A_MAPPING);
            None
        }
    }
}

/// Serde-saphyr's words (as `yaml` words them) for a struct or map that
/// is something else, null included.
const NOT_A_MAPPING: &str = "expected a mapping (key: value lines or {key: value})";

/// Serde-saphyr's words for a key that is no string.
fn not_a_string(node: &Node) -> String {
    match node {
        Node::Scalar(_) => {
            "expected a string, found null (write \"null\" in quotes for the word)".to_string()
        }
        _ => "expected a single value".to_string(),
    }
}

/// The values of `known` keys in `pairs`, in `known`'s order; unknown and
/// repeated keys are reported, a repeat's value is not read.
fn fields<'n, const N: usize>(
    r: &mut Reporter,
    text: &str,
    pairs: &'n Pairs,
    known: &[&str; N],
) -> [Option<&'n Spanned<Node>>; N] {
    let mut out = [None; N];
    let mut seen: Vec<String> = Vec::new();
    for (key, value) in pairs {
        let Some(name) = key_text(text, key) else {
            r.error(pos(&key.defined), not_a_string(&key.value));
            continue;
        };
        if seen.contains(&name) {
            r.error(
                pos(&key.defined),
                format!("duplicate key {}", text::quote(&name)),
            );
            continue;
        }
        match known.iter().position(|k| *k == name) {
            Some(i) => out[i] = Some(value),
            None => r.error(
                pos(&key.defined),
                format!(
                    "unknown field {}, expected one of {}",
                    text::quote(&name),
                    known.join(", ")
                ),
            ),
        }
        seen.push(name);
    }
    out
}

/// A required key missing from a mapping: reported where serde-saphyr
/// places it, at the last key (found by fuzzing), or at an empty mapping.
fn missing(r: &mut Reporter, map: &Spanned<Node>, pairs: &Pairs, field: &str) {
    let at = pairs
        .last()
        .map_or(&map.referenced, |(key, _)| &key.referenced);
    r.error(pos(at), format!("missing field {}", text::quote(field)));
}

/// A key as a string, as serde reads a plain scalar into one: the text as
/// written (`1`, `true`); `None` for null and for a mapping or list.
fn key_text(text: &str, key: &Spanned<Node>) -> Option<String> {
    match &key.value {
        // A key of nothing but a binary tag (`? !binary`, whose untyped
        // reading is an empty string) is null to serde-saphyr's key reading;
        // `? !` and `? ""` are the empty string (both found by fuzzing).
        Node::Scalar(RawScalar(RawStr::Str(s), ..)) => {
            let unwritten = s.is_empty() && literal(text, key).is_none_or(str::is_empty);
            let binary = || tag(text, key).is_some_and(|t| tag_type(text, t) == TagType::Binary);
            (!(unwritten && binary())).then(|| s.clone())
        }
        Node::Scalar(_) if !is_null(&key.value) => literal(text, key).map(str::to_string),
        _ => None,
    }
}

/// An optional string field: null is absent, as for serde's `Option`.
fn string(node: Option<&Spanned<Node>>) -> Option<Spanned<RawStr>> {
    let node = node.filter(|n| !is_null(&n.value))?;
    let value = match &node.value {
        Node::Scalar(RawScalar(s, ..)) => s.clone(),
        Node::Map(_) => RawStr::Other("a mapping"),
        Node::Seq => RawStr::Other("a sequence"),
    };
    Some(spanned_as(node, value))
}

/// An optional integer field: null is absent, as for serde's `Option`.
fn integer(node: Option<&Spanned<Node>>) -> Option<Spanned<RawInt>> {
    let node = node.filter(|n| !is_null(&n.value))?;
    let value = match &node.value {
        Node::Scalar(RawScalar(_, i, _)) => *i,
        Node::Map(_) => RawInt::Other("a mapping"),
        Node::Seq => RawInt::Other("a sequence"),
    };
    Some(spanned_as(node, value))
}

/// An optional boolean field: null is absent, as for serde's `Option`.
fn boolean(node: Option<&Spanned<Node>>) -> Option<Spanned<RawBool>> {
    scalar_field(node).map(|s| spanned_as_value(&s, s.value.2))
}

/// An optional field of any scalar: null is absent, as for serde's `Option`.
fn scalar_field(node: Option<&Spanned<Node>>) -> Option<Spanned<RawScalar>> {
    let node = node.filter(|n| !is_null(&n.value))?;
    let value = match &node.value {
        Node::Scalar(s) => s.clone(),
        Node::Map(_) => ScalarVisitor::other("a mapping"),
        Node::Seq => ScalarVisitor::other("a sequence"),
    };
    Some(spanned_as(node, value))
}

fn spanned_as_value<T, U>(s: &Spanned<T>, value: U) -> Spanned<U> {
    Spanned::new(value, s.referenced, s.defined)
}

fn is_null(node: &Node) -> bool {
    matches!(node, Node::Scalar(RawScalar(RawStr::Other("null"), ..)))
}

/// The tag (`!name`) right before the node, alone or beside an anchor
/// (the untyped reading does not see tags).
fn tag<'t, T>(text: &'t str, s: &Spanned<T>) -> Option<&'t str> {
    let start = usize::try_from(s.defined.span().byte_offset()?).ok()?;
    for word in text.get(..start)?.split_whitespace().rev() {
        // A property written right after a flow indicator (`{!t a: 1}`,
        // `[&a x]`) is the node's, and the last (found by a test).
        let (property, first) = match word.find("!<") {
            Some(i) => (&word[i..], i > 0),
            None => match word.rfind(['{', '[', ',']) {
                Some(i) => (&word[i + 1..], true),
                None => (word, false),
            },
        };
        if property.starts_with('!') {
            return Some(property);
        }
        if first || !property.starts_with('&') {
            return None;
        }
    }
    None
}

/// Whether a tag (`!name`) other than a null tag stands right before the
/// node, alone or beside an anchor (the untyped reading does not see tags).
fn tagged<T>(text: &str, s: &Spanned<T>) -> bool {
    tag(text, s).is_some_and(|t| tag_type(text, t) != TagType::Null)
}

/// Whether the tag right before the node stands on a line above it.
fn tag_above<T>(text: &str, s: &Spanned<T>) -> bool {
    let Some(start) = s
        .defined
        .span()
        .byte_offset()
        .and_then(|o| usize::try_from(o).ok())
    else {
        return false;
    };
    let line = text
        .get(..start)
        .map_or("", |t| t.rsplit('\n').next().unwrap_or(t));
    !line.split_whitespace().any(|w| w.contains('!'))
}

/// The source text of a scalar, as written.
fn literal<'t, T>(text: &'t str, s: &Spanned<T>) -> Option<&'t str> {
    let span = s.defined.span();
    let start = usize::try_from(span.byte_offset()?).ok()?;
    let len = usize::try_from(span.byte_len()?).ok()?;
    text.get(start..start.checked_add(len)?).map(str::trim)
}

fn pos(l: &Location) -> Option<Pos> {
    Some(Pos {
        line: l.line(),
        column: l.column(),
    })
}

/// How deep the tree is kept. The walk looks no deeper than a backend's
/// field values (the file, `backends`, a backend, a field); below that a
/// node is only a mapping or a list to it, and its contents are skipped
/// as the typed reading skips them, so the stack stays as flat as there.
trait Depth {
    type Next: Depth;
    const LAST: bool;
}

struct D0;
struct D1;
struct D2;
struct D3;

impl Depth for D0 {
    type Next = D1;
    const LAST: bool = false;
}

impl Depth for D1 {
    type Next = D2;
    const LAST: bool = false;
}

impl Depth for D2 {
    type Next = D3;
    const LAST: bool = false;
}

impl Depth for D3 {
    type Next = D3;
    const LAST: bool = true;
}

/// A node at depth `D`.
struct At<D>(Node, PhantomData<D>);

impl<'de, D: Depth> Deserialize<'de> for At<D> {
    fn deserialize<De: de::Deserializer<'de>>(d: De) -> Result<Self, De::Error> {
        d.deserialize_any(NodeVisitor::<D>(PhantomData))
            .map(|n| At(n, PhantomData))
    }
}

/// A spanned node at depth `D`, as a plain spanned node.
fn unwrap<D>(s: Spanned<At<D>>) -> Spanned<Node> {
    Spanned::new(s.value.0, s.referenced, s.defined)
}

struct NodeVisitor<D>(PhantomData<D>);

/// A scalar through the field visitors.
fn scalar<E: de::Error>(v: impl FnOnce(ScalarVisitor) -> Result<RawScalar, E>) -> Result<Node, E> {
    v(ScalarVisitor).map(Node::Scalar)
}

impl<'de, D: Depth> Visitor<'de> for NodeVisitor<D> {
    type Value = Node;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        scalar(|s| s.visit_bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        scalar(|s| s.visit_i64(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        scalar(|s| s.visit_u64(v))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Node, E> {
        scalar(|s| s.visit_i128(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Node, E> {
        scalar(|s| s.visit_u128(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        scalar(|s| s.visit_f64(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        scalar(|s| s.visit_str(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        scalar(ScalarVisitor::visit_unit)
    }
    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        self.visit_unit()
    }
    fn visit_some<De: de::Deserializer<'de>>(self, d: De) -> Result<Node, De::Error> {
        At::<D>::deserialize(d).map(|a| a.0)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
        while a.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(Node::Seq)
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
        let mut pairs = Vec::new();
        if D::LAST {
            while a.next_entry::<de::IgnoredAny, de::IgnoredAny>()?.is_some() {}
            return Ok(Node::Map(pairs));
        }
        while let Some(key) = a.next_key::<Spanned<At<D::Next>>>()? {
            let value = a.next_value::<Spanned<At<D::Next>>>()?;
            pairs.push((unwrap(key), unwrap(value)));
        }
        Ok(Node::Map(pairs))
    }
}

#[cfg(test)]
mod tests {
    use super::super::raw::{RawDefaultsFile, RawRouteFile, RawServiceFile};
    use super::*;

    /// serde's "expected one of" list for a file of type `T`.
    fn serde_list<T: serde::de::DeserializeOwned + std::fmt::Debug>(text: &str) -> Vec<String> {
        use serde_saphyr::Error as E;
        let mut e = serde_saphyr::from_str::<T>(text).unwrap_err();
        while let E::WithSnippet { error, .. } = e {
            e = *error;
        }
        match e {
            E::SerdeUnknownField { expected, .. } | E::SerdeUnknownVariant { expected, .. } => {
                expected.iter().map(|s| s.to_string()).collect()
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_key_lists_walked_are_serdes() {
        let frontend = "frontend: {bogus: 1}\n";
        let backend = "frontend: {tcp: 1}\nbackends: {a: {bogus: 1}}\n";
        assert_eq!(serde_list::<RawServiceFile>(frontend), FRONTEND_FIELDS);
        assert_eq!(serde_list::<RawServiceFile>(backend), BACKEND_FIELDS);
        assert_eq!(serde_list::<RawServiceFile>("bogus: 1\n"), SERVICE_FIELDS);
        assert_eq!(
            serde_list::<RawServiceFile>("frontend: {tcp: 1}\nhealthcheck: {bogus: 1}\n"),
            HEALTHCHECK_FIELDS
        );
        assert_eq!(serde_list::<RawRouteFile>("bogus: 1\n"), ROUTE_FIELDS);
        assert_eq!(serde_list::<RawRouteFile>("method: x\n"), ROUTE_METHODS);
        assert_eq!(
            serde_list::<Option<RawDefaultsFile>>("bogus: 1\n"),
            DEFAULTS_FIELDS
        );
    }

    #[test]
    fn a_method_of_one_variant_and_no_value_is_read_as_serde_saphyr_reads_it() {
        for value in [
            "{masq: }",
            "{masq: ~}",
            "{masq: NULL}",
            "{masq: !t }",
            "{masq: !t null}",
            "{masq: &a }",
            "{masq: !!null }",
            "{masq: !!null x}",
            "{masq: !null x}",
            "{masq: !<tag:yaml.org,2002:null> x}",
            "{masq}",
        ] {
            let text = format!("prefix: 10.0.0.0/8\nmethod: {value}\n");
            let options = crate::config::yaml::options();
            let serde = serde_saphyr::from_str_with_options::<RawRouteFile>(&text, options);
            assert!(serde.is_ok(), "serde-saphyr: {serde:?} on {text:?}");
            let mut diags = crate::diag::Diagnostics::default();
            let mut r = Reporter {
                file: "f",
                diags: &mut diags,
                failed: false,
            };
            let read = route(&mut r, &text, crate::config::yaml::options())
                .ok()
                .flatten();
            assert!(diags.is_empty(), "{diags:?} on {text:?}");
            let method = read.and_then(|route| route.method).map(|m| m.value);
            assert_eq!(method, Some(RawRouteMethod::Masq), "on {text:?}");
        }
    }

    #[test]
    fn a_method_value_is_null_where_serde_saphyr_reads_null_whatever_its_tag() {
        let tags = [
            "",
            "!t ",
            "! ",
            "!! ",
            "!!null ",
            "!null ",
            "!!str ",
            "!str ",
            "!!int ",
            "!!binary ",
            "!binary ",
            "!!timestamp ",
            "!time ",
            "!!time ",
            "!!degrees ",
            "!!include ",
            "!!merge ",
            "!<tag:yaml.org,2002:null> ",
            "!<tag:yaml.org,2002:str> ",
            "!<!str> ",
            "!<!!str> ",
            "!<!!null> ",
            "!<!> ",
            "!<tag:x,2002:str> ",
            "!e!str ",
            "!e!null ",
            "!y!str ",
            "!y!null ",
            "!y!x ",
            "&a !!str ",
            "!!null &a ",
        ];
        let directives = [
            "",
            "\u{feff}# c\n%TAG !e! tag:yaml.org,2002:\n\n---\n",
            "%TAG ! tag:yaml.org,2002:\n---\n",
            "%TAG !! tag:x,2002:\n---\n",
            "%TAG !y! !\n---\n",
        ];
        let values = ["", "~", "null", "x", "''", "1"];
        let mut compared = 0;
        for directive in directives {
            for tag in tags {
                for value in values {
                    let text =
                        format!("{directive}prefix: 10.0.0.0/8\nmethod: {{masq: {tag}{value}}}\n");
                    let options = crate::config::yaml::options();
                    let serde = serde_saphyr::from_str_with_options::<RawRouteFile>(&text, options);
                    let Some(Node::Map(top)) = tree(&text, crate::config::yaml::options())
                        .ok()
                        .map(|t| t.value)
                    else {
                        continue;
                    };
                    // The method is the second pair.
                    let Some(Node::Map(pairs)) = top.get(1).map(|(_, m)| &m.value) else {
                        continue;
                    };
                    let null = unit_value_is_null(&text, &pairs[0].1);
                    assert_eq!(null, serde.is_ok(), "on {text:?}: serde-saphyr {serde:?}");
                    compared += 1;
                }
            }
        }
        assert!(compared > 500, "{compared} compared");
    }

    #[test]
    fn a_tagged_method_is_refused_as_serde_saphyr_refuses_it() {
        let tags = [
            "",
            "!t ",
            "! ",
            "!!null ",
            "!null ",
            "!!str ",
            "!str ",
            "!!binary ",
            "!binary ",
            "!<tag:yaml.org,2002:null> ",
            "!e!null ",
            "!e!str ",
            "!<!str> ",
            "&a ",
            "&a !t ",
            "!t &a ",
            "&a !!null ",
        ];
        let directives = [
            "",
            "\u{feff}# c\n%TAG !e! tag:yaml.org,2002:\n\n---\n",
            "%TAG !! tag:x,2002:\n---\n",
        ];
        for directive in directives {
            for tag in tags {
                for value in ["", "~", "x", "masq"] {
                    for method in [format!("{tag}{value}"), format!("{{{tag}{value}: 1}}")] {
                        let text = format!("{directive}prefix: 10.0.0.0/8\nmethod: {method}\n");
                        crate::config::agree::yaml_shape(text.as_bytes());
                    }
                }
            }
        }
    }

    /// The wrong shapes serde-saphyr reports, each found by the walk too,
    /// worded and placed alike.
    #[test]
    fn each_wrong_shape_is_reported_as_serde_saphyr_reports_it() {
        for text in [
            "frontend: 5\n",
            "frontend: ~\n",
            "frontend: [1]\n",
            "- a\n",
            "x\n",
            "\n\n{backends: {}}\n",
            "\n\n{ backends: {}}\n",
            "{}\n",
            "\n  {  }\n",
            "prefix: 1\n",
            "? prefix\n: 1\n",
            "?  !binary\t\n",
            "? #\r !\t",
            "? !\n: 1\n",
            "? !binary\n: 1\n",
            "frontend: {tcp: 80, ? !binary : 2}\n",
            "scheduler: sh\nbackends\t:\n  ns1: {ipv4: 10.1.0.53, udp: 53}\n",
            "prefix: 10.0.0.0/8\ngateway: 10.0.0.1\n",
            "\n\n  backends: {}\n",
            "frontend: {tcp: 80}\nbackends: 5\n",
            "frontend: {tcp: 80}\nbackends: ~\n",
            "frontend: {tcp: 80}\nbackends: {a: ~}\n",
            "frontend: {tcp: 80}\nbackends: {~: {ipv4: 10.0.0.1}}\n",
            "frontend: {tcp: 80}\nbackends: {[1]: {ipv4: 10.0.0.1}}\n",
            "frontend: {tcp: 80, 1: 2}\n",
            "frontend: {tcp: 80, {a: 1}: 2}\n",
            "frontend: {tcp: 80, tcp: 81}\n",
            "frontend: {tcp: 80, 'tcp': 81}\n",
            "frontend: {tcp: 80}\nfrontend: {}\n",
            "method: 5\n",
            "method: ~\n",
            "method: #tunnel\n",
            "method:\n",
            "method: [a]\n",
            "method: {masq: 1}\n",
            "method: {nat: 1}\n",
            "method: MASQ\n",
            "method: \"\"\n",
            "prefix: 1\n",
            "scheduler: rr\nx: 1\n",
            "frontend: {tcp: 80}\nscheduler: {a: 1, b: 2, a: 3}\n",
            "frontend: {tcp: 80}\nscheduler: [{a: 1}, {b: 2, b: 3}]\n",
            "frontend: {tcp: 80}\nbackends: {a: {ipv4: {x: {y: 1, y: 2}}}}\n",
            "frontend: {tcp: 80}\nbackends: {a: {tcp: {x: 1, 'x': 2}}}\n",
            "prefix: {a: 1, a: 2}\nmethod: masq\n",
            "scheduler: {0x10: 1, 16: 2}\n",
            "<<: { scheipd#8:6::2&b: }",
            "<<: {frontend: {tcp: 80}}\nbogus: 1\n",
            "method: !0f#: ",
            "method: !2rep: &e\n",
            "method: &e !t\n",
            "method: &e\n",
            "method: !t\n",
            "method: !!str\n",
            "method: !!null\n",
            "method: #x\n",
            "<<: {frontend: {tcp: 80}, 1: x}\n",
            "<<: {frontend: {tcp: 80}}\nbackends: {<<: {a: {bogus: 1}}}\n",
            "base: &b {bogus: 1}\n<<: *b\n",
            "frontend: {tcp: 80}\nbackends: {a: {<<: {ipv4: 10.0.0.1, weight: 1, x: 2}}}\n",
            "frontend: {tcp: 80}\nhealthcheck: 5\n",
            "frontend: {tcp: 80}\nhealthcheck: [tcp]\n",
            "frontend: {tcp: 80}\nhealthcheck: {type: tcp, bogus: 1}\n",
            "frontend: {tcp: 80}\nhealthcheck: {type: tcp, type: http}\n",
            "frontend: {tcp: 80}\nhealthcheck: {expect: {a: 1}, x: [1]}\n",
            "frontend: {tcp: 80}\nhealthcheck: {1: tcp}\n",
            "frontend: {tcp: 80}\nhealthcheck: {type: tcp}\nhealthcheck: ~\n",
            "frontend: {tcp: 80}\nbackends: {a: {healthcheck: false, healthcheck: true}}\n",
            "frontend: {tcp: 80}\nbackends: {a: {healthcheck: no, health: 1}}\n",
            "frontend: {tcp: 80}\nbackends:\n  <<: {fjf65536}\n",
            "frontend: {tcp: 80}\nbackends:\n  <<: {b: [1]}\n",
            "frontend: {tcp: 80}\nbackends:\n  <<: {b: {ipv4: [1]}}\n",
            "frontend: {tcp: 80}\nbackends:\n  a: {ipv4: 10.0.0.1}\n  <<: {b: 5}\n",
            "frontend: {tcp: 80}\nbackends:\n  <<: [{b: 5}, {c: [1]}]\n",
            "m: &m {b: [1]}\nfrontend: {tcp: 80}\nbackends:\n  <<: *m\n",
            "m: &m {b: [1]}\nfrontend: {tcp: 80}\nbackends: *m\n",
            "n: &n [1]\nfrontend: {tcp: 80}\nbackends:\n  a: *n\n",
            "n: &n [1]\nfrontend: {tcp: 80}\nbackends:\n  <<: {a: *n}\n",
            "<<: {frontend: [1]}\n",
            "<<: {frontend: {tcp: 80}, backends: {a: 1}}\n",
            "prefix: 10.7.6.00/1\nmethod: {type: gre, checksum: c0}\n",
            "prefix: 10.0.0.0/8\nmethod: {masq: 1, b: 1}\n",
            "prefix: 10.0.0.0/8\nmethod: {masq: [1], b: 1}\n",
            "prefix: 10.0.0.0/8\nmethod: {!t masq: 1, b: 1}\n",
            "prefix: 10.0.0.0/8\nmethod: {: 1, b: 1}\n",
            "prefix: 10.0.0.0/8\nmethod: {masq: ''}\n",
            "prefix: 10.0.0.0/8\nmethod: {masq: '~'}\n",
            "prefix: 10.0.0.0/8\nmethod: {masq: !t ''}\n",
            "prefix: 10.0.0.0/8\nmethod: {masq: ! }\n",
            "prefix: 10.0.0.0/8\nmethod: {masq: !!str }\n",
            "prefix: 10.0.0.0/8\nmethod: {masq: !!str ~}\n",
            "prefix: 10.0.0.0/8\nmethod: {masq: &a !!str }\n",
            "prefix: 10.0.0.0/8\nmethod: {masq: !!binary }\n",
            "prefix: 10.0.0.0/8\nmethod: {masq: !<tag:yaml.org,2002:str> }\n",
            "prefix: 10.0.0.0/8\nmethod: {masq: !str }\n",
            "prefix: 10.0.0.0/8\nmethod: [masq]\n",
            "method: !tunnl-\n : !t1",
        ] {
            assert!(
                crate::config::agree::yaml_shape(text.as_bytes()),
                "not refused for its shape: {text:?}"
            );
        }
    }
}
