//! Writing: an [`IpvsState`] as `ipvsadm -S -n` rules, `-A` and `-a` lines in
//! ipvsadm's order of options.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};

use crate::model::flags::{FLAG_OPS, FLAG_PE_PREFIX, sched_flag_bit, sched_flag_name};
use crate::model::text::{push_socket_addr, push_u32};
use crate::model::tunnel::Tunnel;
use crate::model::{DestAttrs, Family, IpvsState, Method, Protocol, ServiceAttrs, ServiceKey};

/// `-t 10.0.0.1:80`, `-u [2001:db8::1]:53`, `-f 42` (`-f 42 -6` for IPv6).
pub fn service_arg(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Addr { protocol, addr } => {
            let flag = match protocol {
                Protocol::Tcp => "-t",
                Protocol::Udp => "-u",
                Protocol::Sctp => "--sctp-service",
            };
            format!("{flag} {addr}")
        }
        ServiceKey::Fwmark {
            family: Family::Ipv4,
            mark,
        } => format!("-f {mark}"),
        ServiceKey::Fwmark {
            family: Family::Ipv6,
            mark,
        } => format!("-f {mark} -6"),
    }
}

/// `-m`, `-g`, `-i`.
pub fn method_flag(method: Method) -> &'static str {
    match method {
        Method::Masq => "-m",
        Method::Droute => "-g",
        Method::Tunnel => "-i",
    }
}

/// `255.255.255.0` for 24.
fn ipv4_netmask(prefix: u8) -> Ipv4Addr {
    let bits = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    };
    Ipv4Addr::from(bits)
}

/// One `-A` line (without newline), in ipvsadm's order of options.
pub fn service_line(key: &ServiceKey, attrs: &ServiceAttrs) -> String {
    let mut line = format!("-A {} -s {}", service_arg(key), attrs.scheduler);
    if let Some(timeout) = attrs.persistence {
        let _ = write!(line, " -p {timeout}");
        if let Some(mask) = attrs.netmask {
            match key.family() {
                Family::Ipv4 if mask < 32 => {
                    let _ = write!(line, " -M {}", ipv4_netmask(mask));
                }
                Family::Ipv6 if mask < 128 => {
                    let _ = write!(line, " -M {mask}");
                }
                _ => {}
            }
        }
    }
    for flag in &attrs.flags {
        if let Some(pe) = flag.strip_prefix(FLAG_PE_PREFIX) {
            let _ = write!(line, " --pe {pe}");
        }
    }
    if attrs.flags.iter().any(|f| f == FLAG_OPS) {
        line.push_str(" -o");
    }
    let mut sched: Vec<(u8, String)> = attrs
        .flags
        .iter()
        .filter(|f| f.as_str() != FLAG_OPS && !f.starts_with(FLAG_PE_PREFIX))
        .map(|f| match sched_flag_bit(f) {
            Some(bit) => (bit, sched_flag_name(&attrs.scheduler, bit).to_string()),
            None => (u8::MAX, f.clone()),
        })
        .collect();
    sched.sort();
    sched.dedup();
    if !sched.is_empty() {
        let names: Vec<&str> = sched.iter().map(|(_, n)| n.as_str()).collect();
        let _ = write!(line, " -b {}", names.join(","));
    }
    line
}

/// One `-a` line (without newline).
pub fn dest_line(key: &ServiceKey, dest: &SocketAddr, attrs: &DestAttrs) -> String {
    let mut line = String::new();
    push_dest_line(&mut line, &service_arg(key), dest, attrs);
    line
}

/// Appends one `-a` line (without newline) of the service `-t ...` `svc`.
fn push_dest_line(out: &mut String, svc: &str, dest: &SocketAddr, attrs: &DestAttrs) {
    out.push_str("-a ");
    out.push_str(svc);
    out.push_str(" -r ");
    push_socket_addr(out, dest);
    out.push(' ');
    out.push_str(method_flag(attrs.method));
    out.push_str(" -w ");
    push_u32(out, attrs.weight);
    if attrs.method == Method::Tunnel {
        if attrs.tunnel == Tunnel::IPIP {
            out.push_str(" --tun-type ipip");
        } else {
            out.push_str(&attrs.tunnel.options());
        }
    }
    if attrs.upper_threshold != 0 {
        let _ = write!(out, " -x {}", attrs.upper_threshold);
    }
    if attrs.lower_threshold != 0 {
        let _ = write!(out, " -y {}", attrs.lower_threshold);
    }
}

/// The whole table in `ipvsadm -S -n` format, sorted.
pub fn format(state: &IpvsState) -> String {
    // About 60 bytes a line.
    let mut out = String::with_capacity(64 * (state.services.len() + state.dest_count()));
    for (key, svc) in &state.services {
        out.push_str(&service_line(key, &svc.attrs));
        out.push('\n');
        let arg = service_arg(key);
        for (dest, d) in &svc.dests {
            push_dest_line(&mut out, &arg, dest, &d.attrs);
            out.push('\n');
        }
    }
    out
}
