//! `render`'s YAML of a desired state, written by hand: byte for byte what
//! serde-saphyr writes of the same [`IpvsState`], at a fraction of its
//! cost (its serializer was over half of a cold `render`).
//!
//! Only for states whose every string serde-saphyr writes plain, as is:
//! [`plain`] is a narrow, checked class (a letter first, then letters,
//! digits and `._/#=-`, not a YAML 1.1 word, short of the 80 columns where
//! serde-saphyr folds). Anything else (a name with a space, a quote, a
//! leading digit) fails [`all_plain`], and the caller renders with
//! serde-saphyr.
//!
//! Invariant: the same text as serde-saphyr (held by this module's tests
//! and the golden cases); pure text building.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::model::text::{push_socket_addr, push_u32};
use crate::model::tunnel::Tunnel;
use crate::model::{Dest, HealthNote, IpvsState, Service, ServiceKey};

/// Whether serde-saphyr writes `s` as a plain scalar (a map value or a
/// sequence item), unchanged: a conservative subset of its rules.
fn plain(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 64 || !b[0].is_ascii_alphabetic() {
        return false;
    }
    if !b.iter().all(|&c| PLAIN[usize::from(c)]) {
        return false;
    }
    // YAML 1.1 booleans and the words serde-saphyr quotes as ambiguous.
    const WORDS: [&str; 11] = [
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf",
    ];
    b.len() > 5 || !WORDS.iter().any(|w| s.eq_ignore_ascii_case(w))
}

/// The bytes of a [`plain`] scalar: letters, digits and `._/#=-`.
const PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b'#' | b'=' | b'-');
        c += 1;
    }
    t
};

/// Whether every string of the state is [`plain`]: whether [`write`]
/// may write it. A large state is checked in two halves at once.
pub fn all_plain(state: &IpvsState) -> bool {
    let services: Vec<&Service> = state.services.values().collect();
    if services.len() < 2 * GROUP {
        return services.iter().all(|s| plain_service(s));
    }
    let (first, second) = services.split_at(services.len() / 2);
    std::thread::scope(|scope| {
        let later = scope.spawn(|| second.iter().all(|s| plain_service(s)));
        // A panic of the check refuses the state (serde-saphyr writes it).
        first.iter().all(|s| plain_service(s)) && later.join().unwrap_or(false)
    })
}

fn plain_service(s: &Service) -> bool {
    plain(&s.attrs.scheduler)
        && s.attrs.flags.iter().all(|f| plain(f))
        && s.names.iter().all(|n| plain(n))
        && s.dests.values().all(|d| {
            d.provenance.iter().all(|p| {
                plain(&p.backend) && plain(&p.source()) && p.route.as_deref().is_none_or(plain)
            })
        })
        && s.health.values().all(|n| plain(n))
}

/// Services written as one piece of text (of 10 dests: ~60 KiB).
const GROUP: usize = 32;

/// Writes the YAML of `state`, which [`all_plain`] accepted, to `w` as it
/// is made.
pub fn write(w: &mut impl std::io::Write, state: &IpvsState) -> std::io::Result<()> {
    write_in_groups(w, state, GROUP)
}

/// [`write`], `group` services a piece: from two pieces on, a second
/// thread makes every other piece while this one makes and writes the
/// rest in turn; at most two made pieces wait, so the text is never held
/// whole.
fn write_in_groups(
    w: &mut impl std::io::Write,
    state: &IpvsState,
    group: usize,
) -> std::io::Result<()> {
    debug_assert!(all_plain(state));
    if state.services.is_empty() {
        return w.write_all(b"services: {}\n");
    }
    w.write_all(b"services:\n")?;
    let services: Vec<(&ServiceKey, &Service)> = state.services.iter().collect();
    let pieces = services.chunks(group);
    if pieces.len() == 1 {
        return w.write_all(piece(&services).as_bytes());
    }
    std::thread::scope(|scope| {
        let (made, ready) = std::sync::mpsc::sync_channel(2);
        let odd = pieces.clone().skip(1).step_by(2);
        scope.spawn(move || {
            for services in odd {
                // An error: the writer stopped (and dropped `ready`).
                if made.send(piece(services)).is_err() {
                    break;
                }
            }
        });
        for (i, services) in pieces.enumerate() {
            let text = if i % 2 == 0 {
                piece(services)
            } else {
                ready.recv().map_err(std::io::Error::other)?
            };
            w.write_all(text.as_bytes())?;
        }
        Ok(())
    })
}

/// The text of consecutive services.
fn piece(services: &[(&ServiceKey, &Service)]) -> String {
    let mut out = String::with_capacity(services.len() * 2048);
    for (key, service) in services {
        push_service(&mut out, key, service);
    }
    out
}

/// `  "tcp://10.0.0.1:80":` and the service's fields, at depth 2.
fn push_service(out: &mut String, key: &ServiceKey, service: &Service) {
    out.push_str("  \"");
    match key {
        ServiceKey::Addr { protocol, addr } => {
            out.push_str(protocol.as_str());
            out.push_str("://");
            push_socket_addr(out, addr);
        }
        ServiceKey::Fwmark { .. } => out.push_str(&key.to_string()),
    }
    out.push_str("\":\n    scheduler: ");
    let attrs = &service.attrs;
    out.push_str(&attrs.scheduler);
    if let Some(p) = attrs.persistence {
        out.push_str("\n    persistence: ");
        push_u32(out, p);
    }
    if let Some(n) = attrs.netmask {
        out.push_str("\n    netmask: ");
        push_u32(out, u32::from(n));
    }
    push_items(out, "\n    flags:", "\n    - ", &attrs.flags);
    push_items(out, "\n    names:", "\n    - ", &service.names);
    push_dests(out, &service.dests);
    push_health(out, &service.health);
    out.push('\n');
}

fn push_items(out: &mut String, key: &str, dash: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    out.push_str(key);
    for item in items {
        out.push_str(dash);
        out.push_str(item);
    }
}

/// `tunnel:` and its `type`, `port`, `checksum` (names, or numbers where
/// none exists), as serde-saphyr writes the [`Tunnel`].
fn push_tunnel(out: &mut String, t: &Tunnel) {
    out.push_str("\n        tunnel:\n          type: ");
    match t.type_name() {
        Some(name) => out.push_str(name),
        None => push_u32(out, u32::from(t.kind)),
    }
    if t.has_port() {
        out.push_str("\n          port: ");
        push_u32(out, u32::from(t.port));
    }
    if t.has_checksum() {
        out.push_str("\n          checksum: ");
        match t.checksum_name() {
            Some(name) => out.push_str(name),
            None => push_u32(out, u32::from(t.flags)),
        }
    }
}

fn push_dests(out: &mut String, dests: &BTreeMap<SocketAddr, Dest>) {
    if dests.is_empty() {
        out.push_str("\n    dests: {}");
        return;
    }
    out.push_str("\n    dests:");
    for (addr, d) in dests {
        out.push_str("\n      \"");
        push_socket_addr(out, addr);
        out.push_str("\":\n        method: ");
        out.push_str(d.attrs.method.as_str());
        out.push_str("\n        weight: ");
        push_u32(out, d.attrs.weight);
        if d.attrs.upper_threshold != 0 {
            out.push_str("\n        upper_threshold: ");
            push_u32(out, d.attrs.upper_threshold);
        }
        if d.attrs.lower_threshold != 0 {
            out.push_str("\n        lower_threshold: ");
            push_u32(out, d.attrs.lower_threshold);
        }
        if d.attrs.tunnel != Tunnel::IPIP {
            push_tunnel(out, &d.attrs.tunnel);
        }
        if !d.provenance.is_empty() {
            out.push_str("\n        origins:");
        }
        for p in &d.provenance {
            out.push_str("\n        - backend: ");
            out.push_str(&p.backend);
            out.push_str("\n          source: ");
            let (source, name) = p.source_parts();
            out.push_str(source);
            out.push_str(name);
            out.push_str("\n          weight: ");
            push_u32(out, p.weight);
            if let Some(route) = &p.route {
                out.push_str("\n          route: ");
                out.push_str(route);
            }
            if p.fallback {
                out.push_str("\n          fallback: true");
            }
        }
    }
}

/// `health:` and its notes by dest, when there are any.
fn push_health(out: &mut String, health: &BTreeMap<SocketAddr, HealthNote>) {
    if health.is_empty() {
        return;
    }
    out.push_str("\n    health:");
    for (addr, note) in health {
        out.push_str("\n      \"");
        push_socket_addr(out, addr);
        out.push_str("\": ");
        out.push_str(note);
    }
}

#[cfg(test)]
mod tests;
