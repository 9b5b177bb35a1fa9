//! `clusterf show`: the live kernel IPVS table, as `ipvsadm -Ln` shows it
//! (with connection counters), as `ipvsadm -Sn` rules, or as JSON; with
//! `--vip-interface`, the VIPs on that interface too.
//!
//! Invariant: reads only; never changes the kernel table.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::Result;
use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use crate::ipvsadm;
use crate::model::{
    DestStats, Family, LiveTable, Method, Protocol, ServiceAttrs, ServiceKey, flags, text,
};
use crate::netlink::{Client, Info, arp_link};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ShowOutput {
    /// Like `ipvsadm -L -n`, with ActiveConn and InActConn
    Text,
    /// Like `ipvsadm -S -n` (loads with `ipvsadm -R`)
    Ipvsadm,
    /// The table with counters as JSON
    Json,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: ShowOutput,

    /// Also list the VIPs on this interface (apply --watch
    /// --vip-interface; on an interface shared in ARP mode, only those
    /// clusterf added): a section after the table, or "vips" in JSON
    #[arg(long, value_name = "NAME")]
    pub vip_interface: Option<String>,
}

pub fn run(args: &ShowArgs) -> Result<u8> {
    if args.vip_interface.is_some() && args.output == ShowOutput::Ipvsadm {
        anyhow::bail!("--vip-interface: not with --output ipvsadm (its rules have no addresses)");
    }
    let mut client = Client::connect()?;
    let info = client.info()?;
    let live = client.read()?;
    let vips = match &args.vip_interface {
        Some(name) => Some((name.as_str(), arp_link::read_vips(name)?)),
        None => None,
    };
    let out = match args.output {
        ShowOutput::Text => {
            let mut out = format_text(&info, &live);
            if let Some((name, vips)) = &vips {
                out.push_str(&format_vips(name, vips.as_ref()));
            }
            out
        }
        ShowOutput::Ipvsadm => format_rules(&live),
        ShowOutput::Json => {
            let mut v = format_json(&info, &live);
            if let Some((name, vips)) = &vips {
                v["vips"] = json!({
                    "interface": name,
                    "exists": vips.is_some(),
                    "addresses": vips.iter().flatten().map(|a| crate::vip::cidr(*a)).collect::<Vec<_>>(),
                });
            }
            let mut s = serde_json::to_string_pretty(&v)?;
            s.push('\n');
            s
        }
    };
    super::emit(&out)?;
    Ok(0)
}

/// The VIP section of the text output: a blank line, a heading, one VIP
/// per line.
pub fn format_vips(name: &str, vips: Option<&BTreeSet<IpAddr>>) -> String {
    let Some(vips) = vips else {
        return format!("\nVIPs on {name}: no such interface\n");
    };
    let mut out = format!("\nVIPs on {name}: {}\n", vips.len());
    for a in vips {
        let _ = writeln!(out, "  {}", crate::vip::cidr(*a));
    }
    out
}

fn forward_name(m: Method) -> &'static str {
    match m {
        Method::Masq => "Masq",
        Method::Droute => "Route",
        Method::Tunnel => "Tunnel",
    }
}

/// The service column of `ipvsadm -Ln`: `TCP  10.0.0.1:80`, `FWM  7 IPv6`.
fn service_name(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Addr { protocol, addr } => {
            let mut s = format!("{:<4} {addr}", protocol.as_str().to_uppercase());
            if addr.is_ipv4() {
                s.truncate(33);
            }
            s
        }
        ServiceKey::Fwmark {
            family: Family::Ipv4,
            mark,
        } => format!("FWM  {mark}"),
        ServiceKey::Fwmark {
            family: Family::Ipv6,
            mark,
        } => format!("FWM  {mark} IPv6"),
    }
}

fn service_line(key: &ServiceKey, attrs: &ServiceAttrs) -> String {
    let mut line = format!("{} {}", service_name(key), attrs.scheduler);
    let sched: Vec<&str> = attrs
        .flags
        .iter()
        .map(String::as_str)
        .filter(|f| *f != flags::FLAG_OPS && !f.starts_with(flags::FLAG_PE_PREFIX))
        .collect();
    if !sched.is_empty() {
        let _ = write!(line, " ({})", sched.join(","));
    }
    if let Some(timeout) = attrs.persistence {
        let _ = write!(line, " persistent {timeout}");
        match (key.family(), attrs.netmask) {
            (Family::Ipv4, Some(p)) if p < 32 => {
                let bits = if p == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(p))
                };
                let _ = write!(line, " mask {}", Ipv4Addr::from(bits));
            }
            (Family::Ipv6, Some(p)) if p < 128 => {
                let _ = write!(line, " mask {p}");
            }
            _ => {}
        }
        for f in &attrs.flags {
            if let Some(pe) = f.strip_prefix(flags::FLAG_PE_PREFIX) {
                let _ = write!(line, " pe {pe}");
            }
        }
    }
    if attrs.flags.iter().any(|f| f == flags::FLAG_OPS) {
        line.push_str(" ops");
    }
    line
}

/// ipvsadm's listing order (`ipvs_cmp_services`): fwmark (0 for address
/// services), address family, protocol number, address, port. Dests are
/// already in its order (family, address, port).
fn ipvsadm_order(key: &ServiceKey) -> (u32, Family, u16, Option<SocketAddr>) {
    match key {
        ServiceKey::Addr { protocol, addr } => {
            let number = match protocol {
                Protocol::Tcp => 6,
                Protocol::Udp => 17,
                Protocol::Sctp => 132,
            };
            (0, key.family(), number, Some(*addr))
        }
        ServiceKey::Fwmark { family, mark } => (*mark, *family, 0, None),
    }
}

/// `ipvsadm -S -n`: the rules, tunnel dests with the encapsulation the
/// kernel reports.
pub fn format_rules(live: &LiveTable) -> String {
    ipvsadm::format(&live.state)
}

/// Pads what was appended to `out` since `start` with spaces to `width`,
/// then one space (a `%-Ns ` column).
fn pad(out: &mut String, start: usize, width: usize) {
    for _ in out.len() - start..width {
        out.push(' ');
    }
    out.push(' ');
}

/// `ipvsadm -L -n`.
pub fn format_text(info: &Info, live: &LiveTable) -> String {
    let mut out = format!(
        "IP Virtual Server version {} (size={})\n\
         Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
        info.version_string(),
        info.conn_tab_size
    );
    let mut services: Vec<_> = live.state.services.iter().collect();
    services.sort_by_key(|(key, _)| ipvsadm_order(key));
    for (key, svc) in services {
        out.push_str(&service_line(key, &svc.attrs));
        out.push('\n');
        let stats = live.stats.get(key);
        for (addr, dest) in &svc.dests {
            let st = stats.and_then(|s| s.get(addr)).copied().unwrap_or_default();
            // "  -> %-28s %-7s %-6d %-10u %-10u\n", without core::fmt (100k
            // lines add up); an IPv4 name is cut at 28 as ipvsadm does.
            out.push_str("  -> ");
            let start = out.len();
            text::push_socket_addr(&mut out, addr);
            if addr.is_ipv4() {
                out.truncate(out.len().min(start + 28));
            }
            pad(&mut out, start, 28);
            let start = out.len();
            out.push_str(forward_name(dest.attrs.method));
            pad(&mut out, start, 7);
            for (n, width) in [
                (dest.attrs.weight, 6),
                (st.active_conns, 10),
                (st.inactive_conns, 10),
            ] {
                let start = out.len();
                text::push_u32(&mut out, n);
                pad(&mut out, start, width);
            }
            // The last column has no space after it.
            out.pop();
            out.push('\n');
        }
    }
    out
}

fn dest_json(addr: &SocketAddr, d: &crate::model::Dest, st: DestStats) -> Value {
    let mut v = serde_json::to_value(d.attrs).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("dest".into(), json!(addr.to_string()));
        m.insert("active_conns".into(), json!(st.active_conns));
        m.insert("inactive_conns".into(), json!(st.inactive_conns));
        m.insert("persist_conns".into(), json!(st.persist_conns));
    }
    v
}

/// The table as JSON: `{"version", "conn_tab_size", "services": [...]}`.
pub fn format_json(info: &Info, live: &LiveTable) -> Value {
    let services: Vec<Value> = live
        .state
        .services
        .iter()
        .map(|(key, svc)| {
            let stats = live.stats.get(key);
            let dests: Vec<Value> = svc
                .dests
                .iter()
                .map(|(addr, d)| {
                    let st = stats.and_then(|s| s.get(addr)).copied().unwrap_or_default();
                    dest_json(addr, d, st)
                })
                .collect();
            let mut v = serde_json::to_value(&svc.attrs).unwrap_or(Value::Null);
            if let Value::Object(m) = &mut v {
                m.insert("service".into(), json!(key.to_string()));
                m.insert("dests".into(), Value::Array(dests));
            }
            v
        })
        .collect();
    json!({
        "version": info.version_string(),
        "conn_tab_size": info.conn_tab_size,
        "services": services,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tunnel::{TUN_FLAG_CSUM, TUN_TYPE_GUE, Tunnel};
    use crate::model::{Dest, DestAttrs, Service};

    #[test]
    fn the_vip_section_lists_each_vip_with_its_prefix() {
        let vips: BTreeSet<IpAddr> = ["198.51.100.10", "2001:db8::10"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(
            format_vips("clusterf0", Some(&vips)),
            "\nVIPs on clusterf0: 2\n  198.51.100.10/32\n  2001:db8::10/128\n"
        );
        assert_eq!(
            format_vips("clusterf0", None),
            "\nVIPs on clusterf0: no such interface\n"
        );
    }

    fn live() -> LiveTable {
        let mut live = LiveTable::default();
        let key: ServiceKey = "tcp://10.107.107.107:1337".parse().unwrap();
        let mut svc = Service::new(ServiceAttrs::with_scheduler("wlc"));
        for (a, w) in [("10.3.107.1:1337", 10), ("10.3.107.2:1338", 20)] {
            svc.dests.insert(
                a.parse().unwrap(),
                Dest {
                    attrs: DestAttrs::new(Method::Masq, w),
                    provenance: Box::default(),
                },
            );
        }
        live.state.services.insert(key, svc);
        live.stats.insert(
            key,
            [(
                "10.3.107.2:1338".parse().unwrap(),
                DestStats {
                    active_conns: 3,
                    inactive_conns: 12,
                    persist_conns: 0,
                },
            )]
            .into_iter()
            .collect(),
        );
        let v6: ServiceKey = "udp://[2001:db8::1]:53".parse().unwrap();
        live.state.services.insert(
            v6,
            Service::new(ServiceAttrs {
                persistence: Some(300),
                netmask: Some(64),
                flags: vec!["ops".into(), "sh-port".into()],
                ..ServiceAttrs::with_scheduler("sh")
            }),
        );
        let sctp: ServiceKey = "sctp://10.0.0.5:9".parse().unwrap();
        live.state
            .services
            .insert(sctp, Service::new(ServiceAttrs::with_scheduler("rr")));
        let fw: ServiceKey = "fwmark://7".parse().unwrap();
        live.state.services.insert(
            fw,
            Service::new(ServiceAttrs {
                persistence: Some(60),
                netmask: Some(24),
                ..ServiceAttrs::with_scheduler("rr")
            }),
        );
        live
    }

    const INFO: Info = Info {
        version: 0x010201,
        conn_tab_size: 4096,
    };

    #[test]
    fn text_matches_ipvsadm_list() {
        // Columns and order as ipvsadm 1.31 prints them (trailing spaces
        // included; IPv4 SCTP before IPv6 UDP, fwmarks last).
        let want = "\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.107.107.107:1337 wlc
  -> 10.3.107.1:1337              Masq    10     0          0         
  -> 10.3.107.2:1338              Masq    20     3          12        
SCTP 10.0.0.5:9 rr
UDP  [2001:db8::1]:53 sh (sh-port) persistent 300 mask 64 ops
FWM  7 rr persistent 60 mask 255.255.255.0
";
        assert_eq!(format_text(&INFO, &live()), want);
    }

    #[test]
    fn rules_carry_the_kernel_tunnel_type_as_ipvsadm_prints_it() {
        let mut live = LiveTable::default();
        let key: ServiceKey = "tcp://10.0.0.1:80".parse().unwrap();
        let mut svc = Service::new(ServiceAttrs::with_scheduler("wlc"));
        let gue = Tunnel {
            kind: TUN_TYPE_GUE,
            port: 6080,
            flags: TUN_FLAG_CSUM,
        };
        for (a, tunnel) in [("10.1.0.1:80", Tunnel::IPIP), ("10.1.0.2:80", gue)] {
            svc.dests.insert(
                a.parse().unwrap(),
                Dest {
                    attrs: DestAttrs {
                        tunnel,
                        ..DestAttrs::new(Method::Tunnel, 3)
                    },
                    provenance: Box::default(),
                },
            );
        }
        live.state.services.insert(key, svc);
        // As `ipvsadm -S -n` printed it for these dests (tests/vm, 6.1).
        assert_eq!(
            format_rules(&live),
            "-A -t 10.0.0.1:80 -s wlc\n\
             -a -t 10.0.0.1:80 -r 10.1.0.1:80 -i -w 3 --tun-type ipip\n\
             -a -t 10.0.0.1:80 -r 10.1.0.2:80 -i -w 3 --tun-type gue --tun-port 6080 --tun-csum\n"
        );
        // JSON names it as the config does.
        let v = format_json(&INFO, &live);
        let d = &v["services"][0]["dests"];
        assert!(d[0].get("tunnel").is_none(), "{d}");
        assert_eq!(
            d[1]["tunnel"],
            json!({"type": "gue", "port": 6080, "checksum": "csum"})
        );
    }

    #[test]
    fn json_carries_counters() {
        let v = format_json(&INFO, &live());
        assert_eq!(v["version"], "1.2.1");
        let s = &v["services"][0];
        assert_eq!(s["service"], "tcp://10.107.107.107:1337");
        assert_eq!(s["dests"][1]["dest"], "10.3.107.2:1338");
        assert_eq!(s["dests"][1]["active_conns"], 3);
        assert_eq!(s["dests"][1]["inactive_conns"], 12);
        assert_eq!(s["dests"][1]["method"], "masq");
    }
}
