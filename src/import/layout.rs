//! A [`Table`] as a config repository in the YAML layout: one service file
//! per frontend, backends named after their addresses, the forwarding
//! methods as the default method (`clusterf.yaml`) and one host route per
//! address that differs from it (a tunnel's encapsulation is its route's
//! `tunnel:` block). Then a render of the files, compared with
//! the table: a service that would not come back as it was is listed.
//!
//! Must not: do I/O.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use super::{Check, Repo, Skipped, Table};
use crate::model::flags::{FLAG_OPS, FLAG_PE_PREFIX, sched_flag_bit};
use crate::model::tunnel::{TUN_FLAG_REMCSUM, TUN_TYPE_GRE, TUN_TYPE_GUE, TUN_TYPE_IPIP, Tunnel};
use crate::model::{
    Dest, DestAttrs, Family, IpvsState, Method, Protocol, Service, ServiceKey, fallback,
};

/// How a dest is forwarded: its method and, for a tunnel, encapsulation.
type Way = (Method, Tunnel);

/// The repository that renders to `table` (less what it lists as skipped).
pub fn repo(table: &Table) -> Repo {
    let mut skipped = table.skipped.clone();
    let mut state = table.state.clone();
    drop_unsayable(&mut state, &mut skipped);
    let methods = choose_methods(&mut state, &mut skipped);
    resettle_fallbacks(&mut state, &mut skipped);
    let mut checks = table.checks.clone();
    loop {
        let (files, keys) = files(&state, &checks, &methods);
        let (errors, differ) = verify(&files, &state);
        // A check the config refuses (a path with a space) is left out, and
        // then a service it refuses (a weight above 65535, a scheduler it
        // does not know), each listed; the files are written again.
        let refused: Vec<(&String, &String, &Vec<ServiceKey>)> = errors
            .iter()
            .filter_map(|(f, m)| keys.get(f).map(|k| (f, m, k)))
            .collect();
        let with_check: Vec<_> = refused
            .iter()
            .filter(|(_, _, k)| k.iter().any(|k| checks.contains_key(k)))
            .collect();
        if !with_check.is_empty() {
            for (file, message, ks) in with_check {
                let message = message.strip_prefix("healthcheck: ").unwrap_or(message);
                skip(&mut skipped, *file, format!("its healthcheck: {message}"));
                for k in ks.iter() {
                    checks.remove(k);
                }
            }
            continue;
        }
        if !refused.is_empty() {
            for (_, message, ks) in refused {
                let at: Vec<String> = ks.iter().map(ToString::to_string).collect();
                let what = format!("the service, which the config refuses: {message}");
                skip(&mut skipped, at.join(", "), what);
                for k in ks {
                    state.services.remove(k);
                }
            }
            continue;
        }
        for (file, message) in errors {
            skip(
                &mut skipped,
                file,
                format!("the written file does not validate: {message}"),
            );
        }
        for key in differ {
            skip(
                &mut skipped,
                key,
                "the written repository renders this service differently",
            );
        }
        return Repo { files, skipped };
    }
}

/// The files of `state`, and the service keys of each service file.
#[allow(clippy::type_complexity)]
fn files(
    state: &IpvsState,
    checks: &BTreeMap<ServiceKey, Check>,
    methods: &BTreeMap<IpAddr, Way>,
) -> (Vec<(String, String)>, BTreeMap<String, Vec<ServiceKey>>) {
    let default = default_method(methods);
    let mut files = Vec::new();
    let mut keys_of = BTreeMap::new();
    files.push((
        "clusterf.yaml".to_string(),
        format!("# Written by clusterf import.\nmethod: {default}   # for every backend no route names\n"),
    ));
    for (name, keys) in frontends(state, checks) {
        let text = service_file(state, &keys, checks.get(&keys[0]));
        let path = format!("services/{name}.yaml");
        files.push((path.clone(), text));
        keys_of.insert(path, keys);
    }
    for (ip, (method, tunnel)) in methods {
        if (*method, *tunnel) != (default, Tunnel::IPIP) {
            let len = Family::of(ip).max_prefix_len();
            let mut text = format!("prefix: {ip}/{len}\nmethod: {method}\n");
            if *tunnel != Tunnel::IPIP {
                text.push_str(&tunnel_block(tunnel));
            }
            files.push((format!("routes/{}.yaml", ip_name(ip)), text));
        }
    }
    (files, keys_of)
}

fn skip(skipped: &mut Vec<Skipped>, at: impl ToString, what: impl Into<String>) {
    skipped.push(Skipped {
        at: at.to_string(),
        what: what.into(),
    });
}

/// Takes out of `state` what no config can say: SCTP services, flags a
/// service of its protocol cannot have, scheduler flags of other
/// schedulers, and dests whose port or family the layout cannot give.
fn drop_unsayable(state: &mut IpvsState, skipped: &mut Vec<Skipped>) {
    state.services.retain(|key, _| {
        let sctp = matches!(
            key,
            ServiceKey::Addr {
                protocol: Protocol::Sctp,
                ..
            }
        );
        if sctp {
            skip(
                skipped,
                key,
                "SCTP services: the config has tcp and udp only",
            );
        }
        !sctp
    });
    for (key, svc) in state.services.iter_mut() {
        let udp_only = !matches!(
            key,
            ServiceKey::Addr {
                protocol: Protocol::Tcp,
                ..
            }
        );
        let scheduler = svc.attrs.scheduler.clone();
        svc.attrs.flags.retain(|f| {
            let ok = if f == FLAG_OPS || f.starts_with(FLAG_PE_PREFIX) {
                udp_only
            } else {
                sched_flag_bit(f).is_some() && f.starts_with(&format!("{scheduler}-"))
            };
            if !ok {
                skip(
                    skipped,
                    key,
                    format!("service flag {f} (the config cannot give it to this service)"),
                );
            }
            ok
        });
        svc.dests.retain(|addr, d| {
            let why = dest_unsayable(key, addr, d);
            if let Some(why) = &why {
                skip(skipped, key, format!("dest {addr}: {why}"));
            }
            why.is_none()
        });
    }
}

/// A route's `tunnel:` line of an encapsulation [`tunnel_unsayable`]
/// accepted: `tunnel: {type: gue, port: 6080, checksum: csum}`.
fn tunnel_block(t: &Tunnel) -> String {
    let mut s = format!("tunnel: {{type: {}", t.type_name().unwrap_or("ipip"));
    if t.kind == TUN_TYPE_GUE {
        let _ = write!(s, ", port: {}", t.port);
    }
    match t.checksum_name() {
        Some("none") | None => {}
        Some(c) => {
            let _ = write!(s, ", checksum: {c}");
        }
    }
    s.push_str("}\n");
    s
}

/// Why a tunnel's encapsulation is not one a route can give: a type or
/// checksum flags no name covers, a port or checksum where its type has
/// none (all only ever set by hand, through netlink).
fn tunnel_unsayable(t: &Tunnel) -> Option<String> {
    let named = t.type_name().is_some() && t.checksum_name().is_some();
    let stray = (t.kind != TUN_TYPE_GUE && t.port != 0)
        || (t.kind == TUN_TYPE_IPIP && t.flags != 0)
        || (t.kind == TUN_TYPE_GRE && t.flags == TUN_FLAG_REMCSUM);
    (!named || stray).then(|| {
        format!("a tunnel of {t} (the config has ipip, gue with a port, gre without remcsum)")
    })
}

fn dest_unsayable(key: &ServiceKey, addr: &SocketAddr, d: &Dest) -> Option<String> {
    if let Some(why) = tunnel_unsayable(&d.attrs.tunnel) {
        return Some(why);
    }
    if Family::of(&addr.ip()) != key.family() {
        return Some(
            "a dest of the other address family (a backend's address has the service's family)"
                .into(),
        );
    }
    let port = addr.port();
    let rewrites = d.attrs.method.rewrites_port();
    match key {
        ServiceKey::Addr { addr: vip, .. } if !rewrites && port != vip.port() => Some(format!(
            "{} to port {port}: {} keeps the service port {}",
            d.attrs.method,
            d.attrs.method,
            vip.port()
        )),
        ServiceKey::Addr { .. } if port == 0 => Some("port 0 on a service with a port".into()),
        ServiceKey::Fwmark { .. } if !rewrites && port != 0 => Some(format!(
            "{} to port {port}: an fwmark {} dest is port 0",
            d.attrs.method, d.attrs.method
        )),
        _ => None,
    }
}

/// One forwarding method (and tunnel) per dest address (routes choose
/// methods by address): the one most of its dests have. Dests with another
/// are taken out of `state` and listed.
/// A service whose weighted dests were all left out above serves from its
/// fallback now, as the config would render it (found by fuzzing): said.
fn resettle_fallbacks(state: &mut IpvsState, skipped: &mut Vec<Skipped>) {
    for (key, svc) in state.services.iter_mut() {
        if fallback::settle(svc) {
            let what =
                "its fallback (sorry server) serves: the dests that had weight are not imported";
            skip(skipped, key, what);
        }
    }
}

fn choose_methods(state: &mut IpvsState, skipped: &mut Vec<Skipped>) -> BTreeMap<IpAddr, Way> {
    let mut counts: BTreeMap<IpAddr, BTreeMap<Way, usize>> = BTreeMap::new();
    for svc in state.services.values() {
        for (addr, d) in &svc.dests {
            *counts
                .entry(addr.ip())
                .or_default()
                .entry((d.attrs.method, d.attrs.tunnel))
                .or_default() += 1;
        }
    }
    let chosen: BTreeMap<IpAddr, Way> = counts
        .into_iter()
        .filter_map(|(ip, by)| {
            let best = by
                .iter()
                .max_by_key(|(m, n)| (**n, std::cmp::Reverse(**m)))?;
            Some((ip, *best.0))
        })
        .collect();
    for (key, svc) in state.services.iter_mut() {
        svc.dests.retain(|addr, d| {
            let want = chosen[&addr.ip()];
            let same = (d.attrs.method, d.attrs.tunnel) == want;
            if !same {
                let text = |(method, tunnel): Way| {
                    DestAttrs {
                        tunnel,
                        ..DestAttrs::new(method, 0)
                    }
                    .method_text()
                };
                skip(
                    skipped,
                    key,
                    format!(
                        "dest {addr}: {} where {} is {} elsewhere (the config gives one method per address)",
                        d.attrs.method_text(),
                        addr.ip(),
                        text(want)
                    ),
                );
            }
            same
        });
    }
    chosen
}

/// The method most addresses have (masq when there are none); a tunnel
/// with an encapsulation counts for none (`clusterf.yaml` cannot say it).
fn default_method(methods: &BTreeMap<IpAddr, Way>) -> Method {
    let mut counts: BTreeMap<Method, usize> = BTreeMap::new();
    for (m, t) in methods.values() {
        if *t == Tunnel::IPIP {
            *counts.entry(*m).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .max_by_key(|(m, n)| (*n, std::cmp::Reverse(*m)))
        .map_or(Method::Masq, |(m, _)| m)
}

/// `10.0.0.1`, `2001:db8::1`: a name the config accepts.
fn ip_name(ip: &IpAddr) -> String {
    ip.to_string()
}

/// The frontends: (name, service keys), tcp and udp of one address and
/// port as one frontend when they can be.
fn frontends(
    state: &IpvsState,
    checks: &BTreeMap<ServiceKey, Check>,
) -> Vec<(String, Vec<ServiceKey>)> {
    let mut out = Vec::new();
    let mut done: BTreeSet<ServiceKey> = BTreeSet::new();
    for key in state.services.keys() {
        if done.contains(key) {
            continue;
        }
        match *key {
            ServiceKey::Fwmark { family, mark } => {
                let scheme = if family == Family::Ipv4 {
                    "fwmark"
                } else {
                    "fwmark6"
                };
                out.push((format!("{scheme}-{mark}"), vec![*key]));
            }
            ServiceKey::Addr { protocol, addr } => {
                let base = format!("{}-{}", ip_name(&addr.ip()), addr.port());
                let udp = ServiceKey::Addr {
                    protocol: Protocol::Udp,
                    addr,
                };
                let pair = protocol == Protocol::Tcp
                    && state.services.contains_key(&udp)
                    && mergeable(state, key, &udp, checks);
                if pair {
                    done.insert(udp);
                    out.push((base, vec![*key, udp]));
                } else {
                    let other = match protocol {
                        Protocol::Tcp => Protocol::Udp,
                        _ => Protocol::Tcp,
                    };
                    let twin = ServiceKey::Addr {
                        protocol: other,
                        addr,
                    };
                    let name = if state.services.contains_key(&twin) {
                        format!("{base}-{protocol}")
                    } else {
                        base
                    };
                    out.push((name, vec![*key]));
                }
            }
        }
    }
    out
}

/// Whether a tcp and a udp service can be one frontend: the same options
/// (ops and the persistence engine go on udp only anyway), the same check,
/// and one dest per address in each, with equal weights and thresholds.
fn mergeable(
    state: &IpvsState,
    tcp: &ServiceKey,
    udp: &ServiceKey,
    checks: &BTreeMap<ServiceKey, Check>,
) -> bool {
    let (t, u) = (&state.services[tcp], &state.services[udp]);
    let udp_flags: Vec<&String> = u
        .attrs
        .flags
        .iter()
        .filter(|f| *f != FLAG_OPS && !f.starts_with(FLAG_PE_PREFIX))
        .collect();
    let same_attrs = t.attrs.scheduler == u.attrs.scheduler
        && t.attrs.persistence == u.attrs.persistence
        && t.attrs.netmask == u.attrs.netmask
        && t.attrs.flags.iter().collect::<Vec<_>>() == udp_flags;
    let by_ip = |s: &Service| -> Option<BTreeMap<IpAddr, (u32, u32, u32)>> {
        let mut m = BTreeMap::new();
        for (a, d) in &s.dests {
            let v = (
                d.attrs.weight,
                d.attrs.upper_threshold,
                d.attrs.lower_threshold,
            );
            if m.insert(a.ip(), v).is_some() {
                return None;
            }
        }
        Some(m)
    };
    let exempt_ips = |k: &ServiceKey| {
        checks
            .get(k)
            .map(|c| c.exempt.iter().map(|a| a.ip()).collect::<BTreeSet<_>>())
    };
    let (tc, uc) = (checks.get(tcp), checks.get(udp));
    let same_check = match (tc, uc) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            Check {
                exempt: vec![],
                ..a.clone()
            } == Check {
                exempt: vec![],
                ..b.clone()
            } && exempt_ips(tcp) == exempt_ips(udp)
        }
        _ => false,
    };
    same_attrs && same_check && by_ip(t).is_some() && by_ip(t) == by_ip(u)
}

/// The text of one service file.
fn service_file(state: &IpvsState, keys: &[ServiceKey], check: Option<&Check>) -> String {
    let mut t = String::from("# Written by clusterf import.\nfrontend:\n");
    let first = &state.services[&keys[0]];
    for key in keys {
        match key {
            ServiceKey::Fwmark { family, mark } => {
                let _ = writeln!(t, "  fwmark_{family}: {mark}");
            }
            ServiceKey::Addr { protocol, addr } => {
                if key == &keys[0] {
                    let _ = writeln!(t, "  {}: {}", Family::of(&addr.ip()), yaml_ip(&addr.ip()));
                }
                let _ = writeln!(t, "  {protocol}: {}", addr.port());
            }
        }
    }
    // Options from the udp service of a pair (ops and the engine are udp's).
    let last = &state.services[&keys[keys.len() - 1]];
    write_options(&mut t, &keys[0], first, last);
    if let Some(check) = check {
        write_check(&mut t, check);
    }
    write_backends(&mut t, state, keys, check);
    write_fallback(&mut t, state, keys);
    t
}

/// The services' fallback dest (keepalived's sorry server): one address,
/// its port in each service, its method and weight.
fn write_fallback(t: &mut String, state: &IpvsState, keys: &[ServiceKey]) {
    let mut found = None;
    let mut ports = Vec::new();
    for key in keys {
        let svc = &state.services[key];
        let Some((a, d)) = svc.dests.iter().find(|(_, d)| fallback::is_fallback(d)) else {
            continue;
        };
        let protocol = match key {
            ServiceKey::Addr { protocol, .. } => *protocol,
            ServiceKey::Fwmark { .. } => Protocol::Tcp,
        };
        if a.port() != 0 && !ports.contains(&(protocol, a.port())) {
            ports.push((protocol, a.port()));
        }
        found = Some((a.ip(), d));
    }
    let Some((ip, d)) = found else {
        return;
    };
    let weight = fallback::weight(d).unwrap_or(1);
    let _ = write!(t, "fallback: {{{}: {}", Family::of(&ip), yaml_ip(&ip));
    for (p, port) in &ports {
        let _ = write!(t, ", {p}: {port}");
    }
    let _ = writeln!(t, ", weight: {weight}, method: {}}}", d.attrs.method);
}

fn write_options(t: &mut String, key: &ServiceKey, first: &Service, last: &Service) {
    let a = &first.attrs;
    let _ = writeln!(t, "scheduler: {}", a.scheduler);
    if let Some(p) = a.persistence {
        let _ = writeln!(t, "persistence: {p}");
    }
    if let Some(n) = a.netmask {
        let _ = writeln!(t, "persistence_netmask_{}: {n}", key.family());
    }
    let sched: Vec<&str> = a
        .flags
        .iter()
        .filter(|f| sched_flag_bit(f).is_some())
        .map(String::as_str)
        .collect();
    if !sched.is_empty() {
        let _ = writeln!(t, "scheduler_flags: {}", sched.join(","));
    }
    for f in &last.attrs.flags {
        if let Some(pe) = f.strip_prefix(FLAG_PE_PREFIX) {
            let _ = writeln!(t, "persistence_engine: {pe}");
        }
    }
    if last.attrs.flags.iter().any(|f| f == FLAG_OPS) {
        t.push_str("ops: true\n");
    }
}

fn write_check(t: &mut String, c: &Check) {
    let _ = writeln!(t, "healthcheck:\n  type: {}", c.kind);
    if let Some(p) = c.port {
        let _ = writeln!(t, "  port: {p}");
    }
    for (k, v) in [
        ("path", &c.path),
        ("host", &c.host),
        ("expect", &c.expect),
        ("query", &c.query),
    ] {
        if let Some(v) = v {
            let _ = writeln!(t, "  {k}: {}", quote(v));
        }
    }
    let _ = writeln!(
        t,
        "  interval: {}\n  timeout: {}\n  rise: {}\n  fall: {}\n  on_failure: {}",
        duration(c.interval_ms),
        duration(c.timeout_ms),
        c.rise,
        c.fall,
        c.on_failure
    );
}

/// `5s`, `1500ms`: the config's duration syntax.
fn duration(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// A YAML double-quoted string (JSON's escapes are YAML's).
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_string())
}

fn yaml_ip(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(_) => ip.to_string(),
        IpAddr::V6(_) => quote(&ip.to_string()),
    }
}

/// One backend per dest address (`10.1.0.1`), or per address and port
/// (`10.1.0.1-8080`) when a service has the address more than once.
fn write_backends(t: &mut String, state: &IpvsState, keys: &[ServiceKey], check: Option<&Check>) {
    #[derive(Default)]
    struct Backend {
        ip: Option<IpAddr>,
        ports: Vec<(Protocol, u16)>,
        weight: u32,
        upper: u32,
        lower: u32,
        exempt: bool,
    }
    let mut backends: BTreeMap<String, Backend> = BTreeMap::new();
    for key in keys {
        let svc = &state.services[key];
        let mut seen: BTreeMap<IpAddr, usize> = BTreeMap::new();
        for (a, _) in svc.dests.iter().filter(|(_, d)| !fallback::is_fallback(d)) {
            *seen.entry(a.ip()).or_default() += 1;
        }
        for (a, d) in svc.dests.iter().filter(|(_, d)| !fallback::is_fallback(d)) {
            let name = if seen[&a.ip()] > 1 {
                format!("{}-{}", ip_name(&a.ip()), a.port())
            } else {
                ip_name(&a.ip())
            };
            let b = backends.entry(name).or_default();
            b.ip = Some(a.ip());
            let protocol = match key {
                ServiceKey::Addr { protocol, .. } => *protocol,
                ServiceKey::Fwmark { .. } => Protocol::Tcp,
            };
            if a.port() != 0 {
                b.ports.push((protocol, a.port()));
            }
            b.weight = d.attrs.weight;
            b.upper = d.attrs.upper_threshold;
            b.lower = d.attrs.lower_threshold;
            b.exempt = check.is_some_and(|c| c.exempt.contains(a));
        }
    }
    if backends.is_empty() {
        return;
    }
    t.push_str("backends:\n");
    for (name, b) in &backends {
        let Some(ip) = b.ip else { continue };
        let _ = write!(
            t,
            "  {}: {{{}: {}",
            quote(name),
            Family::of(&ip),
            yaml_ip(&ip)
        );
        for (p, port) in &b.ports {
            let _ = write!(t, ", {p}: {port}");
        }
        let _ = write!(t, ", weight: {}", b.weight);
        if b.upper != 0 || b.lower != 0 {
            let _ = write!(
                t,
                ", upper_threshold: {}, lower_threshold: {}",
                b.upper, b.lower
            );
        }
        if b.exempt {
            t.push_str(", healthcheck: false");
        }
        t.push_str("}\n");
    }
}

/// Renders the files: the errors (file, message) and the services that do
/// not come back as `state` has them (a bug of the import, never expected).
fn verify(
    files: &[(String, String)],
    state: &IpvsState,
) -> (Vec<(String, String)>, Vec<ServiceKey>) {
    let mut tree = crate::tree::Tree::new("import");
    for (path, text) in files {
        tree.insert(path.clone(), text.clone().into_bytes());
    }
    let rendered = crate::render::render(&tree, None, &crate::compile::Options::default());
    let errors = rendered
        .diags
        .errors()
        .map(|d| (d.file.clone(), d.message.clone()))
        .collect();
    let keys: BTreeSet<&ServiceKey> = state
        .services
        .keys()
        .chain(rendered.state.services.keys())
        .collect();
    let differ = keys
        .into_iter()
        .filter(|k| !same(state.services.get(k), rendered.state.services.get(k)))
        .copied()
        .collect();
    (errors, differ)
}

fn same(a: Option<&Service>, b: Option<&Service>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => {
            a.attrs == b.attrs
                && a.dests.len() == b.dests.len()
                && a.dests
                    .iter()
                    .all(|(k, d)| b.dests.get(k).is_some_and(|e| e.attrs == d.attrs))
        }
        (None, None) => true,
        _ => false,
    }
}
