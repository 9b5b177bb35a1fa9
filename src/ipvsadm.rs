//! The `ipvsadm -S -n` rule format: [`format`] writes an [`IpvsState`] so that
//! `ipvsadm -R` loads it.
//!
//! Invariant: pure text in, text out; this module never runs ipvsadm.

use std::fmt::Write as _;
use std::net::SocketAddr;

use crate::model::{DestAttrs, Family, IpvsState, Method, ServiceAttrs, ServiceKey};

/// `-t 10.0.0.1:80`, `-u [2001:db8::1]:53`, `-f 42` (`-f 42 -6` for IPv6).
pub fn service_arg(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Addr { protocol, addr } => {
            let flag = match protocol {
                crate::model::Protocol::Tcp => "-t",
                crate::model::Protocol::Udp => "-u",
                crate::model::Protocol::Sctp => "--sctp-service",
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

/// One `-A` line (without newline).
pub fn service_line(key: &ServiceKey, attrs: &ServiceAttrs) -> String {
    let mut line = format!("-A {} -s {}", service_arg(key), attrs.scheduler);
    if let Some(timeout) = attrs.persistence {
        let _ = write!(line, " -p {timeout}");
        if let Some(mask) = attrs.netmask {
            match key.family() {
                Family::Ipv4 if mask != 32 => {
                    let bits = if mask == 0 {
                        0
                    } else {
                        u32::MAX << (32 - u32::from(mask))
                    };
                    let _ = write!(line, " -M {}", std::net::Ipv4Addr::from(bits));
                }
                Family::Ipv6 if mask != 128 => {
                    let _ = write!(line, " -M {mask}");
                }
                _ => {}
            }
        }
    }
    for flag in &attrs.flags {
        match flag.as_str() {
            "ops" => line.push_str(" -o"),
            other => {
                let _ = write!(line, " -b {other}");
            }
        }
    }
    line
}

/// One `-a` line (without newline).
pub fn dest_line(key: &ServiceKey, dest: &SocketAddr, attrs: &DestAttrs) -> String {
    let mut line = format!(
        "-a {} -r {} {} -w {}",
        service_arg(key),
        dest,
        method_flag(attrs.method),
        attrs.weight
    );
    if attrs.upper_threshold != 0 {
        let _ = write!(line, " -x {}", attrs.upper_threshold);
    }
    if attrs.lower_threshold != 0 {
        let _ = write!(line, " -y {}", attrs.lower_threshold);
    }
    line
}

/// The whole table in `ipvsadm -S -n` format, sorted.
pub fn format(state: &IpvsState) -> String {
    let mut out = String::new();
    for (key, svc) in &state.services {
        out.push_str(&service_line(key, &svc.attrs));
        out.push('\n');
        for (dest, d) in &svc.dests {
            out.push_str(&dest_line(key, dest, &d.attrs));
            out.push('\n');
        }
    }
    out
}
