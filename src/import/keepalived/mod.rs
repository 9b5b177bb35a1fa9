//! A keepalived.conf's LVS part as a [`Table`]: `virtual_server` blocks
//! (by address and port, `fwmark`, or `group` of a
//! `virtual_server_group`), their real servers, the options keepalived
//! gives IPVS, and the health-check blocks clusterf's checks can say
//! (`check`). Everything else of an LVS block is listed as not imported;
//! VRRP and the other top-level blocks are named once each.
//!
//! keepalived's defaults and corrections, as keepalived 2.x applies them
//! (`validate_check_config`, checked against Debian's keepalived in the VM
//! scenario `import-keepalived`): scheduler `wlc`, method NAT, weight 1,
//! no `protocol` UDP (the kernel's default for protocol 0; keepalived logs
//! it), `persistence_granularity` without `persistence_timeout` 360 s;
//! `ops` only on UDP (keepalived resets it elsewhere); a real server's
//! port is the virtual server's when it names none, and a DR or TUN real
//! server's is always the virtual server's (0 on fwmark); a virtual server
//! without real servers is left out; a real server named twice counts
//! once.
//!
//! Must not: do I/O (`syntax::Input` brings the includes).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use super::{Skipped, Table};
use crate::diag::Diagnostics;
use crate::model::flags::{FLAG_OPS, FLAG_PE_PREFIX, canonical_flags};
use crate::model::tunnel::{
    TUN_FLAG_CSUM, TUN_FLAG_REMCSUM, TUN_TYPE_GRE, TUN_TYPE_GUE, TUN_TYPE_IPIP, TUNNEL_TYPES,
    Tunnel,
};
use crate::model::{
    Dest, DestAttrs, Family, Method, Protocol, Provenance, Service, ServiceAttrs, ServiceKey,
    fallback,
};

mod check;
pub mod syntax;

use syntax::{Stmt, Word};

/// Most services one `virtual_server_group` range may expand to.
const MAX_RANGE: u32 = 256;

/// The table of the keepalived.conf `text`, named `name`.
pub fn table(name: &str, text: &str, input: &mut syntax::Input<'_>) -> Result<Table, Diagnostics> {
    let mut skipped = Vec::new();
    let (parsed, diags) = syntax::parse(name, text, input, &mut skipped);
    let mut cx = Cx {
        files: &parsed.files,
        diags,
        table: Table {
            skipped,
            ..Table::default()
        },
        groups: BTreeMap::new(),
    };
    for s in &parsed.stmts {
        if s.keyword() == "virtual_server_group" {
            cx.group(s);
        }
    }
    for s in &parsed.stmts {
        match s.keyword() {
            "virtual_server" => cx.virtual_server(s),
            "virtual_server_group" => {}
            "global_defs" => cx.global_defs(s),
            other => {
                let what = format!("{other}: not part of keepalived's virtual servers");
                cx.skip(&s.words[0], what);
            }
        }
    }
    if cx.diags.has_errors() {
        cx.diags.sort();
        return Err(cx.diags);
    }
    Ok(cx.table)
}

/// A member of a `virtual_server_group`.
#[derive(Clone, Debug)]
enum Member {
    Addr(SocketAddr),
    Fwmark(u32),
}

struct Cx<'f> {
    files: &'f [String],
    diags: Diagnostics,
    table: Table,
    groups: BTreeMap<String, Vec<Member>>,
}

/// A virtual server's body as read.
#[derive(Default)]
struct Vs {
    scheduler: Option<String>,
    /// The method, and a tunnel's encapsulation.
    method: Option<(Method, Tunnel)>,
    persistence: Option<u32>,
    granularity: Option<Word>,
    flags: Vec<String>,
    protocol: Option<Protocol>,
    family: Option<Family>,
    inhibit: bool,
    defaults: check::Defaults,
    real: Vec<Real>,
    /// A real server was refused (read, but with errors).
    refused_real: bool,
    /// `sorry_server IP [PORT]`: the service's fallback dest.
    sorry: Option<Sorry>,
}

/// A `sorry_server` as read, and its `sorry_server_lvs_method`.
struct Sorry {
    at: Word,
    ip: IpAddr,
    port: Option<u16>,
    /// Its method, and a tunnel's encapsulation.
    method: Option<(Method, Tunnel)>,
}

/// A real server as read.
struct Real {
    at: Word,
    ip: IpAddr,
    port: Option<u16>,
    method: Option<(Method, Tunnel)>,
    weight: u32,
    upper: u32,
    lower: u32,
    inhibit: Option<bool>,
    checks: Vec<check::Read>,
}

impl Cx<'_> {
    fn at(&self, w: &Word) -> String {
        format!("{}:{}:{}", self.files[w.file], w.pos.line, w.pos.column)
    }

    fn error(&mut self, w: &Word, message: impl Into<String>) {
        let file = self.files[w.file].clone();
        self.diags.error(file, Some(w.pos), message);
    }

    fn skip(&mut self, w: &Word, what: impl Into<String>) {
        let at = self.at(w);
        self.table.skipped.push(Skipped {
            at,
            what: what.into(),
        });
    }

    /// The statement's `n`th argument, or an error at its keyword.
    fn arg<'s>(&mut self, s: &'s Stmt, n: usize) -> Option<&'s Word> {
        let w = s.words.get(n);
        if w.is_none() {
            let kw = s.words[0].clone();
            self.error(
                &kw,
                format!(
                    "{} needs {} argument{}",
                    kw.text,
                    n,
                    if n == 1 { "" } else { "s" }
                ),
            );
        }
        w
    }

    fn num<T: std::str::FromStr>(&mut self, s: &Stmt, n: usize, what: &str) -> Option<T> {
        let w = self.arg(s, n)?;
        let v = w.text.parse().ok();
        if v.is_none() {
            let w = w.clone();
            self.error(
                &w,
                format!(
                    "{}: {} is not {what}",
                    s.keyword(),
                    crate::text::quote(&w.text)
                ),
            );
        }
        v
    }

    fn ip(&mut self, w: &Word) -> Option<IpAddr> {
        let v = w.text.parse().ok();
        if v.is_none() {
            self.error(
                w,
                format!("{} is not an IP address", crate::text::quote(&w.text)),
            );
        }
        v
    }

    fn global_defs(&mut self, s: &Stmt) {
        for inner in s.block.iter().flatten() {
            if inner.keyword().starts_with("lvs_") {
                let what = format!(
                    "{} (clusterf leaves IPVS's global settings as they are)",
                    inner.keyword()
                );
                self.skip(&inner.words[0], what);
            }
        }
    }

    fn group(&mut self, s: &Stmt) {
        let Some(name) = self.arg(s, 1).map(|w| w.text.clone()) else {
            return;
        };
        let mut members = Vec::new();
        for m in s.block.iter().flatten() {
            if m.keyword() == "fwmark" {
                members.extend(self.num::<u32>(m, 1, "a mark").map(Member::Fwmark));
                continue;
            }
            let Some(port) = self.num::<u16>(m, 1, "a port") else {
                continue;
            };
            for ip in self.range(&m.words[0]) {
                members.push(Member::Addr(SocketAddr::new(ip, port)));
            }
        }
        self.groups.insert(name, members);
    }

    /// `10.0.0.1`, or a range of the last part: `10.0.0.1-10`,
    /// `2001:db8::1-ff`.
    fn range(&mut self, w: &Word) -> Vec<IpAddr> {
        let Some((first, last)) = w.text.rsplit_once('-') else {
            return self.ip(w).into_iter().collect();
        };
        let Some(start) = self.ip(&Word {
            text: first.to_string(),
            ..w.clone()
        }) else {
            return Vec::new();
        };
        let (low, radix) = match start {
            IpAddr::V4(a) => (u32::from(a.octets()[3]), 10),
            IpAddr::V6(a) => (u32::from(a.segments()[7]), 16),
        };
        let high = u32::from_str_radix(last, radix).ok();
        let limit = if radix == 10 { 255 } else { 0xffff };
        let Some(high) = high.filter(|h| *h >= low && *h <= limit && h - low < MAX_RANGE) else {
            self.error(
                w,
                format!(
                    "{}: a range's end must follow its start, at most {MAX_RANGE} addresses",
                    crate::text::quote(&w.text)
                ),
            );
            return Vec::new();
        };
        (low..=high)
            .map(|n| match start {
                IpAddr::V4(a) => {
                    let o = a.octets();
                    IpAddr::from([o[0], o[1], o[2], n as u8])
                }
                IpAddr::V6(a) => {
                    let mut g = a.segments();
                    g[7] = n as u16;
                    IpAddr::from(g)
                }
            })
            .collect()
    }

    fn virtual_server(&mut self, s: &Stmt) {
        let mut vs = Vs::default();
        for inner in s.block.iter().flatten() {
            self.vs_keyword(&mut vs, inner);
        }
        let Some(keys) = self.vs_keys(s, &vs) else {
            return;
        };
        if vs.real.is_empty() && !vs.refused_real {
            self.skip(
                &s.words[0],
                "a virtual server without real servers (keepalived leaves it out too)",
            );
            return;
        }
        let check = check::service(self, &s.words[0], &vs, &keys);
        for key in keys {
            let grouped = s.words.get(1).is_some_and(|w| w.text == "group");
            let service = self.service(&key, &vs, grouped);
            if self.table.state.services.insert(key, service).is_some() {
                self.error(
                    &s.words[0],
                    format!("{key} is defined by two virtual servers"),
                );
            }
            if let Some(c) = &check {
                self.table.checks.insert(key, c.clone());
            }
        }
    }

    fn vs_keys(&mut self, s: &Stmt, vs: &Vs) -> Option<Vec<ServiceKey>> {
        let first = self.arg(s, 1)?.clone();
        let protocol = vs.protocol.unwrap_or(Protocol::Udp);
        let fw_family = vs
            .family
            .or_else(|| vs.real.first().map(|r| Family::of(&r.ip)))
            .unwrap_or(Family::Ipv4);
        match first.text.as_str() {
            "fwmark" => {
                let mark = self.num::<u32>(s, 2, "a mark")?;
                Some(vec![ServiceKey::Fwmark {
                    family: fw_family,
                    mark,
                }])
            }
            "group" => {
                let name = self.arg(s, 2)?.clone();
                let Some(members) = self.groups.get(&name.text).cloned() else {
                    self.error(
                        &name,
                        format!("no virtual_server_group {}", crate::text::quote(&name.text)),
                    );
                    return None;
                };
                Some(
                    members
                        .into_iter()
                        .map(|m| match m {
                            Member::Addr(a) => ServiceKey::Addr { protocol, addr: a },
                            Member::Fwmark(mark) => ServiceKey::Fwmark {
                                family: fw_family,
                                mark,
                            },
                        })
                        .collect(),
                )
            }
            _ => {
                let ip = self.ip(&first)?;
                let port = self.num::<u16>(s, 2, "a port")?;
                Some(vec![ServiceKey::addr(protocol, ip, port)])
            }
        }
    }

    /// One keyword of a virtual server's block.
    fn vs_keyword(&mut self, vs: &mut Vs, s: &Stmt) {
        let kw = s.keyword();
        match kw {
            "lb_algo" | "lvs_sched" => vs.scheduler = self.arg(s, 1).map(|w| w.text.clone()),
            "lb_kind" | "lvs_method" => vs.method = self.method(s),
            "persistence_timeout" => vs.persistence = self.num(s, 1, "a number of seconds"),
            "persistence_granularity" => vs.granularity = self.arg(s, 1).cloned(),
            "persistence_engine" => {
                if let Some(w) = self.arg(s, 1) {
                    vs.flags.push(format!("{FLAG_PE_PREFIX}{}", w.text));
                }
            }
            "protocol" => vs.protocol = self.protocol(s),
            "ip_family" => {
                vs.family = match s.words.get(1).map(|w| w.text.as_str()) {
                    Some("inet") => Some(Family::Ipv4),
                    Some("inet6") => Some(Family::Ipv6),
                    _ => {
                        self.error(&s.words[0], "ip_family is inet or inet6");
                        None
                    }
                }
            }
            "ops" | "sh-fallback" | "sh-port" | "mh-fallback" | "mh-port" | "flag-1" | "flag-2"
            | "flag-3" => vs.flags.push(kw.to_string()),
            "hashed" => {}
            "inhibit_on_failure" => vs.inhibit = true,
            "real_server" => match self.real_server(s, &vs.defaults) {
                Some(r) => vs.real.push(r),
                None => vs.refused_real = true,
            },
            "sorry_server" => vs.sorry = self.sorry_server(s, vs.sorry.take()),
            "sorry_server_lvs_method" => {
                let method = self.method(s);
                let sorry = vs.sorry.get_or_insert_with(|| Sorry {
                    at: s.words[0].clone(),
                    ip: IpAddr::from([0, 0, 0, 0]),
                    port: None,
                    method: None,
                });
                sorry.method = method;
            }
            // What a clusterf fallback always does: in the table at weight
            // 0 while unused.
            "sorry_server_inhibit" => {}
            _ => {
                if !check::default_keyword(self, &mut vs.defaults, s) {
                    self.not_imported(s, "virtual_server");
                }
            }
        }
    }

    /// `sorry_server IP [PORT]`; a `sorry_server_lvs_method` before it
    /// (`earlier`) keeps its method.
    fn sorry_server(&mut self, s: &Stmt, earlier: Option<Sorry>) -> Option<Sorry> {
        let w = self.arg(s, 1)?.clone();
        let ip = self.ip(&w)?;
        let port = match s.words.get(2) {
            Some(_) => Some(self.num::<u16>(s, 2, "a port")?),
            None => None,
        };
        Some(Sorry {
            at: s.words[0].clone(),
            ip,
            port,
            method: earlier.and_then(|e| e.method),
        })
    }

    fn not_imported(&mut self, s: &Stmt, block: &str) {
        let what = format!("{} in {block} (no clusterf equivalent)", s.keyword());
        self.skip(&s.words[0], what);
    }

    /// The method of an `lvs_method` line, with a tunnel's options as
    /// keepalived reads them (`TUN type gue port 6080 csum`); `None` when
    /// it is invalid (an error).
    fn method(&mut self, s: &Stmt) -> Option<(Method, Tunnel)> {
        let w = self.arg(s, 1).cloned()?;
        let m = match w.text.to_ascii_uppercase().as_str() {
            "NAT" => Method::Masq,
            "DR" => Method::Droute,
            "TUN" => Method::Tunnel,
            _ => {
                self.error(
                    &w,
                    format!(
                        "{}: {} is not NAT, DR or TUN",
                        s.keyword(),
                        crate::text::quote(&w.text)
                    ),
                );
                return None;
            }
        };
        let tunnel = match m {
            Method::Tunnel => self.tunnel_options(s)?,
            _ => Tunnel::IPIP,
        };
        Some((m, tunnel))
    }

    /// The words after `TUN` (keepalived's `set_forwarding_method`): `type
    /// ipip|gue|gre`, `port NUM` (gue's, required), `nocsum|csum|remcsum`
    /// (not on ipip; not remcsum on gre).
    fn tunnel_options(&mut self, s: &Stmt) -> Option<Tunnel> {
        let mut t = Tunnel::IPIP;
        let mut words = s.words.iter().skip(2);
        let kw = s.words[0].clone();
        while let Some(w) = words.next() {
            match w.text.as_str() {
                "type" | "port" => {
                    let Some(v) = words.next().cloned() else {
                        self.error(w, format!("{}: {} needs a value", kw.text, w.text));
                        return None;
                    };
                    if w.text == "type" {
                        let Some(k) = TUNNEL_TYPES.iter().position(|n| *n == v.text) else {
                            let what = format!(
                                "{}: unknown tunnel type {}, expected ipip, gue or gre",
                                kw.text,
                                crate::text::quote(&v.text)
                            );
                            self.error(&v, what);
                            return None;
                        };
                        t.kind = k as u8;
                    } else {
                        match v.text.parse::<u16>() {
                            Ok(p) if p > 0 => t.port = p,
                            _ => {
                                let what = format!(
                                    "{}: tunnel port {} is not 1..65535",
                                    kw.text,
                                    crate::text::quote(&v.text)
                                );
                                self.error(&v, what);
                                return None;
                            }
                        }
                    }
                }
                "nocsum" => t.flags = 0,
                "csum" => t.flags = TUN_FLAG_CSUM,
                "remcsum" => t.flags = TUN_FLAG_REMCSUM,
                _ => {
                    let what = format!(
                        "{}: unknown tunnel option {}",
                        kw.text,
                        crate::text::quote(&w.text)
                    );
                    self.error(w, what);
                    return None;
                }
            }
        }
        let problem = if (t.kind == TUN_TYPE_GUE) != (t.port != 0) {
            Some("gue tunnels need a port, which the others do not take")
        } else if t.kind == TUN_TYPE_IPIP && t.flags != 0 {
            Some("ipip tunnels take no checksum option")
        } else if t.kind == TUN_TYPE_GRE && t.flags == TUN_FLAG_REMCSUM {
            Some("gre tunnels take no remcsum")
        } else {
            None
        };
        if let Some(p) = problem {
            self.error(&kw, format!("{}: {p} (as keepalived)", kw.text));
            return None;
        }
        Some(t)
    }

    fn protocol(&mut self, s: &Stmt) -> Option<Protocol> {
        let w = self.arg(s, 1)?.clone();
        match w.text.to_ascii_uppercase().as_str() {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => {
                self.error(
                    &w,
                    format!(
                        "protocol: {} is not TCP, UDP or SCTP",
                        crate::text::quote(&w.text)
                    ),
                );
                None
            }
        }
    }

    fn real_server(&mut self, s: &Stmt, defaults: &check::Defaults) -> Option<Real> {
        let at = s.words[0].clone();
        let w = self.arg(s, 1)?.clone();
        let ip = self.ip(&w)?;
        let port = match s.words.get(2) {
            Some(_) => Some(self.num::<u16>(s, 2, "a port")?),
            None => None,
        };
        let mut r = Real {
            at,
            ip,
            port,
            method: None,
            weight: 1,
            upper: 0,
            lower: 0,
            inhibit: None,
            checks: Vec::new(),
        };
        let mut defaults = defaults.clone();
        for inner in s.block.iter().flatten() {
            match inner.keyword() {
                "weight" => r.weight = self.num(inner, 1, "a weight").unwrap_or(1),
                "lb_kind" | "lvs_method" => r.method = self.method(inner),
                "uthreshold" => {
                    r.upper = self.num(inner, 1, "a number of connections").unwrap_or(0)
                }
                "lthreshold" => {
                    r.lower = self.num(inner, 1, "a number of connections").unwrap_or(0)
                }
                "inhibit_on_failure" => r.inhibit = Some(true),
                kw if kw.ends_with("_CHECK") || kw == "HTTP_GET" || kw == "SSL_GET" => {
                    r.checks.push(check::read(self, inner, &defaults))
                }
                _ => {
                    if !check::default_keyword(self, &mut defaults, inner) {
                        self.not_imported(inner, "real_server");
                    }
                }
            }
        }
        Some(r)
    }

    /// The IPVS service `key` of `vs`, with its dests.
    fn service(&mut self, key: &ServiceKey, vs: &Vs, grouped: bool) -> Service {
        let scheduler = vs.scheduler.clone().unwrap_or_else(|| "wlc".to_string());
        let persistence = vs
            .persistence
            .filter(|p| *p > 0)
            .or(vs.granularity.as_ref().map(|_| 360));
        let netmask = match &vs.granularity {
            Some(g) => self.netmask(g, key.family()),
            None => None,
        };
        let mut flags: Vec<String> = vs.flags.clone();
        let udp = matches!(
            key,
            ServiceKey::Fwmark { .. }
                | ServiceKey::Addr {
                    protocol: Protocol::Udp,
                    ..
                }
        );
        if !udp && flags.iter().any(|f| f == FLAG_OPS) {
            // keepalived resets it: one-packet scheduling needs UDP.
            flags.retain(|f| f != FLAG_OPS);
        }
        let mut svc = Service::new(ServiceAttrs {
            flags: canonical_flags(&scheduler, &flags),
            scheduler,
            persistence,
            netmask,
        });
        for r in &vs.real {
            // A real server's own method (and tunnel) wins over its
            // virtual server's.
            let (method, tunnel) = r
                .method
                .or(vs.method)
                .unwrap_or((Method::Masq, Tunnel::IPIP));
            if Family::of(&r.ip) != key.family() {
                let what = format!("real server {} in {key}: another address family", r.ip);
                self.skip(&r.at, what);
                continue;
            }
            let port = real_port(method, key, r.port, grouped);
            let mut attrs = DestAttrs::new(method, r.weight);
            attrs.upper_threshold = r.upper;
            attrs.lower_threshold = r.lower;
            attrs.tunnel = tunnel;
            let dest = Dest {
                attrs,
                provenance: Box::default(),
            };
            if svc
                .dests
                .insert(SocketAddr::new(r.ip, port), dest)
                .is_some()
            {
                self.error(
                    &r.at,
                    format!("real server {} twice in {key}", SocketAddr::new(r.ip, port)),
                );
            }
        }
        if let Some(sorry) = &vs.sorry {
            self.sorry_dest(key, vs, sorry, grouped, &mut svc);
        }
        svc
    }

    /// The sorry server as the service's fallback dest (keepalived's
    /// weight 1, the virtual server's method unless
    /// `sorry_server_lvs_method` names one, a real server's port rules).
    fn sorry_dest(
        &mut self,
        key: &ServiceKey,
        vs: &Vs,
        sorry: &Sorry,
        grouped: bool,
        svc: &mut Service,
    ) {
        if sorry.ip.is_unspecified() {
            let what = "sorry_server_lvs_method without a sorry_server";
            self.skip(&sorry.at, what);
            return;
        }
        if Family::of(&sorry.ip) != key.family() {
            let what = format!("sorry_server {} in {key}: another address family", sorry.ip);
            self.skip(&sorry.at, what);
            return;
        }
        let (method, tunnel) = sorry
            .method
            .or(vs.method)
            .unwrap_or((Method::Masq, Tunnel::IPIP));
        let addr = SocketAddr::new(sorry.ip, real_port(method, key, sorry.port, grouped));
        if svc.dests.contains_key(&addr) {
            let what = format!(
                "sorry_server {addr} in {key}: a real server's dest (a clusterf fallback is a dest of its own)"
            );
            self.skip(&sorry.at, what);
            return;
        }
        let provenance = Box::new([Provenance {
            backend: "fallback".into(),
            source: "".into(),
            weight: 1,
            route: None,
            fallback: true,
        }]);
        let mut attrs = DestAttrs::new(method, 0);
        attrs.tunnel = tunnel;
        let dest = Dest { attrs, provenance };
        svc.dests.insert(addr, dest);
        fallback::settle(svc);
    }

    /// `255.255.255.0` or `24` as a prefix length; the host mask is none.
    fn netmask(&mut self, w: &Word, family: Family) -> Option<u8> {
        let len = match (w.text.parse::<std::net::Ipv4Addr>(), w.text.parse::<u8>()) {
            (Ok(m), _) => {
                let bits = u32::from(m);
                (bits.leading_ones() + bits.trailing_zeros() == 32)
                    .then(|| bits.leading_ones() as u8)
            }
            (_, Ok(n)) if n <= family.max_prefix_len() => Some(n),
            _ => None,
        };
        if len.is_none() {
            self.error(
                w,
                format!(
                    "persistence_granularity: {} is not a netmask",
                    crate::text::quote(&w.text)
                ),
            );
        }
        len.filter(|n| *n != family.max_prefix_len())
    }
}

/// A real (or sorry) server's port in `key`: its own or the virtual
/// server's under NAT; keepalived resets a DR or TUN one's port to the
/// virtual server's (0 on fwmark), except in a group.
fn real_port(method: Method, key: &ServiceKey, port: Option<u16>, grouped: bool) -> u16 {
    match (method, key) {
        (Method::Masq, _) => port.unwrap_or(key.port()),
        (_, ServiceKey::Fwmark { .. }) if !grouped => 0,
        (_, ServiceKey::Addr { .. }) if !grouped => key.port(),
        _ => port.unwrap_or(key.port()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn import(text: &str) -> Result<Table, Vec<String>> {
        let mut include =
            |_: &str, _: &str| -> Result<syntax::Included, String> { Err("no".into()) };
        let mut input = syntax::Input {
            config_id: None,
            include: &mut include,
        };
        table("k.conf", text, &mut input).map_err(|d| d.iter().map(ToString::to_string).collect())
    }

    /// keepalived's `lvs_method TUN type ... port ... csum`, on a virtual
    /// server (its real servers' default) and on a real server.
    #[test]
    fn tunnel_options_become_the_dests_encapsulation() {
        let t = import(
            "virtual_server 192.0.2.1 80 {\n  protocol TCP\n  lvs_method TUN type gue port 6080 csum\n\
             \x20 real_server 10.0.0.1 80 { weight 2 }\n\
             \x20 real_server 10.0.0.2 80 { lvs_method TUN type gre }\n\
             \x20 real_server 10.0.0.3 80 { lvs_method TUN }\n}\n",
        )
        .unwrap();
        let text = crate::ipvsadm::format(&t.state);
        assert_eq!(
            text,
            "-A -t 192.0.2.1:80 -s wlc\n\
             -a -t 192.0.2.1:80 -r 10.0.0.1:80 -i -w 2 --tun-type gue --tun-port 6080 --tun-csum\n\
             -a -t 192.0.2.1:80 -r 10.0.0.2:80 -i -w 1 --tun-type gre --tun-nocsum\n\
             -a -t 192.0.2.1:80 -r 10.0.0.3:80 -i -w 1 --tun-type ipip\n"
        );
    }

    /// What keepalived refuses of a tunnel, each an error at its line.
    #[test]
    fn bad_tunnel_options_are_errors() {
        for (method, want) in [
            ("TUN type gue", "gue tunnels need a port"),
            ("TUN type gre port 1", "gue tunnels need a port"),
            ("TUN csum", "ipip tunnels take no checksum option"),
            ("TUN type gre remcsum", "gre tunnels take no remcsum"),
            ("TUN type vxlan", "unknown tunnel type \"vxlan\""),
            ("TUN type gue port 0", "tunnel port \"0\" is not 1..65535"),
            ("TUN type", "type needs a value"),
            ("TUN sparkles", "unknown tunnel option \"sparkles\""),
        ] {
            let conf = format!(
                "virtual_server 192.0.2.1 80 {{\n  real_server 10.0.0.1 80 {{\n    lvs_method {method}\n  }}\n}}\n"
            );
            let e = import(&conf).unwrap_err();
            assert_eq!(e.len(), 1, "{method}: {e:?}");
            assert!(e[0].starts_with("k.conf:3:"), "{method}: {e:?}");
            assert!(e[0].contains(want), "{method}: {e:?}");
        }
    }
}
