//! keepalived's health-check blocks as clusterf checks: `TCP_CHECK` (tcp),
//! `HTTP_GET` (http), `SSL_GET` (https), `DNS_CHECK` (dns). clusterf has
//! one check per service: the first real server's is the service's, a real
//! server without one opts out (`healthcheck: false`), one with another is
//! listed. Timing: `delay_loop` is the interval (default 60 s),
//! `connect_timeout` the timeout (default 5 s), `retry` (default 1) + 1
//! failures fail a dest, one success brings it back; `inhibit_on_failure`
//! drains (weight 0) where keepalived without it removes.
//!
//! Must not: do I/O.

use std::net::SocketAddr;

use super::syntax::{Stmt, Word};
use super::{Cx, Vs};
use crate::import::Check;
use crate::model::{Protocol, ServiceKey};

/// Check settings a virtual server or real server gives the checks in it.
#[derive(Clone, Debug, Default)]
pub struct Defaults {
    delay_ms: Option<u64>,
    timeout_ms: Option<u64>,
    retry: Option<u32>,
    host: Option<String>,
}

/// One check block as read: the check, or `None` when clusterf cannot say
/// it (listed where it was read).
pub struct Read {
    check: Option<Check>,
}

/// Reads `s` into `d` when it is a check setting; whether it was one.
pub fn default_keyword(cx: &mut Cx<'_>, d: &mut Defaults, s: &Stmt) -> bool {
    match s.keyword() {
        "delay_loop" => d.delay_ms = seconds(cx, s),
        "connect_timeout" => d.timeout_ms = seconds(cx, s),
        "retry" | "nb_get_retry" => d.retry = cx.num(s, 1, "a number"),
        "virtualhost" => d.host = cx.arg(s, 1).map(|w| w.text.clone()),
        "delay_before_retry" | "warmup" => {
            let what = format!("{} (clusterf checks again at the interval)", s.keyword());
            cx.skip(&s.words[0], what);
        }
        _ => return false,
    }
    true
}

/// `6`, `2.5`: seconds as milliseconds.
fn seconds(cx: &mut Cx<'_>, s: &Stmt) -> Option<u64> {
    let v: f64 = cx.num(s, 1, "a number of seconds")?;
    if !(0.0..=86400.0).contains(&v) {
        let w = s.words[1].clone();
        cx.error(
            &w,
            format!("{}: {v} seconds is out of range (0..86400)", s.keyword()),
        );
        return None;
    }
    Some((v * 1000.0).round() as u64)
}

/// One check block of a real server.
pub fn read(cx: &mut Cx<'_>, s: &Stmt, defaults: &Defaults) -> Read {
    let kind = match s.keyword() {
        "TCP_CHECK" => "tcp",
        "HTTP_GET" => "http",
        "SSL_GET" => "https",
        "DNS_CHECK" => "dns",
        other => {
            let what = format!("{other}: clusterf checks are tcp, http, https and dns");
            cx.skip(&s.words[0], what);
            return Read { check: None };
        }
    };
    let mut d = defaults.clone();
    let mut c = Check {
        kind,
        port: None,
        path: None,
        host: None,
        expect: None,
        query: None,
        interval_ms: 0,
        timeout_ms: 0,
        rise: 1,
        fall: 2,
        on_failure: "remove",
        exempt: Vec::new(),
    };
    let mut urls = 0;
    for inner in s.block.iter().flatten() {
        match (kind, inner.keyword()) {
            (_, "connect_port") => c.port = cx.num(inner, 1, "a port"),
            ("http" | "https", "url") => {
                urls += 1;
                if urls == 1 {
                    url(cx, inner, &mut c);
                } else {
                    cx.skip(&inner.words[0], "a second url (clusterf checks one path)");
                }
            }
            ("dns", "name") => c.query = cx.arg(inner, 1).map(|w| w.text.clone()),
            ("dns", "type")
                if inner
                    .words
                    .get(1)
                    .is_some_and(|w| w.text.eq_ignore_ascii_case("A")) => {}
            _ => {
                if !default_keyword(cx, &mut d, inner) {
                    let what = format!(
                        "{} in {} (no clusterf equivalent)",
                        inner.keyword(),
                        s.keyword()
                    );
                    cx.skip(&inner.words[0], what);
                }
            }
        }
    }
    if matches!(kind, "http" | "https") {
        c.path = c.path.or(Some("/".to_string()));
        c.host = c.host.or(d.host.clone());
        c.expect = c.expect.or(Some("200-299".to_string()));
    }
    if kind == "dns" && c.query.is_none() {
        // keepalived's default name is the root.
        c.query = Some(".".to_string());
    }
    c.interval_ms = d.delay_ms.unwrap_or(60_000);
    c.timeout_ms = d.timeout_ms.unwrap_or(5_000);
    c.fall = d.retry.unwrap_or(1).saturating_add(1);
    let fits = (100..=3_600_000).contains(&c.interval_ms)
        && c.timeout_ms > 0
        && c.timeout_ms < c.interval_ms
        && c.fall <= 100;
    if !fits {
        let what = format!(
            "{}: interval {} ms, timeout {} ms, {} failures (clusterf: interval 100ms..1h, timeout under it, fall 1..100)",
            s.keyword(),
            c.interval_ms,
            c.timeout_ms,
            c.fall
        );
        cx.skip(&s.words[0], what);
        return Read { check: None };
    }
    Read { check: Some(c) }
}

fn url(cx: &mut Cx<'_>, s: &Stmt, c: &mut Check) {
    let mut codes: Vec<String> = Vec::new();
    for inner in s.block.iter().flatten() {
        match inner.keyword() {
            "path" => c.path = cx.arg(inner, 1).map(|w| w.text.clone()),
            "virtualhost" => c.host = cx.arg(inner, 1).map(|w| w.text.clone()),
            "status_code" => codes.extend(inner.words[1..].iter().map(|w| w.text.clone())),
            other => {
                let what = format!("{other} in url (clusterf checks the status code only)");
                cx.skip(&inner.words[0], what);
            }
        }
    }
    if !codes.is_empty() {
        c.expect = Some(codes.join(","));
    }
}

/// The check of the services `keys` of `vs`, from its real servers'.
pub fn service(cx: &mut Cx<'_>, at: &Word, vs: &Vs, keys: &[ServiceKey]) -> Option<Check> {
    let mut first: Option<Check> = None;
    let mut exempt: Vec<SocketAddr> = Vec::new();
    let mut inhibit = (0, 0);
    for r in &vs.real {
        let mut own = r.checks.iter().filter_map(|c| c.check.as_ref());
        let Some(c) = own.next() else {
            for k in keys {
                exempt.push(SocketAddr::new(r.ip, r.port.unwrap_or(k.port())));
            }
            continue;
        };
        if own.next().is_some() {
            cx.skip(
                &r.at,
                "a second check of one real server (clusterf runs one per service)",
            );
        }
        let mut c = c.clone();
        if c.port.is_some() && c.port == r.port {
            c.port = None;
        }
        if r.inhibit.unwrap_or(vs.inhibit) {
            inhibit.0 += 1;
        } else {
            inhibit.1 += 1;
        }
        match &first {
            None => first = Some(c),
            Some(f) if *f == c => {}
            Some(_) => {
                let what = format!(
                    "real_server {}: its check differs from the first real server's (clusterf has one check per service; it gets that one)",
                    r.ip
                );
                cx.skip(&r.at, what)
            }
        }
    }
    let mut check = first?;
    if inhibit.0 > 0 && inhibit.1 > 0 {
        cx.skip(
            at,
            "inhibit_on_failure on some real servers only (all drain: on_failure drain)",
        );
    }
    check.on_failure = if inhibit.0 > 0 { "drain" } else { "remove" };
    let tcp_only = keys.iter().all(|k| {
        matches!(
            k,
            ServiceKey::Addr {
                protocol: Protocol::Tcp,
                ..
            }
        )
    });
    if check.kind == "dns" && tcp_only {
        cx.skip(
            at,
            "DNS_CHECK on a TCP virtual server (clusterf's dns check needs a udp port)",
        );
        return None;
    }
    check.exempt = exempt;
    Some(check)
}
