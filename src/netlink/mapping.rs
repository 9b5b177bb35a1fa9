//! Between the model and IPVS messages: an [`Op`] becomes a request, and a
//! dumped service or dest becomes model values. (A kernel errno becomes a
//! message naming the object in `error`.)
//!
//! Kernel conventions followed here (`ip_vs_ctl.c`, `ipvsadm`):
//! - a full service always carries scheduler, flags (mask `~0`), timeout and
//!   netmask; the netmask is `255.255.255.255` / `128` unless persistent with
//!   a shorter prefix; `IP_VS_SVC_F_HASHED` is never sent.
//! - service flags read back by name as `ipvsadm` prints them: `ops`, and
//!   `sh-fallback`/`sh-port` (sh), `mh-fallback`/`mh-port` (mh) or
//!   `flag-1`..`flag-3` (names from `model::flags`); unknown bits as
//!   `0x..`; the persistence engine as `pe=NAME`.
//! - the kernel's `Local` forwarding method reads as `droute` (`ipvsadm -S`
//!   prints `-g` for it).
//! - a tunnel dest's `IPVS_DEST_ATTR_TUN_TYPE`, `_TUN_PORT` and
//!   `_TUN_FLAGS` are sent only when it is not ipip (absent, the kernel
//!   makes it ipip, and a kernel before 5.2 knows no more); read, they are
//!   the dest's tunnel as they come (absent: ipip). Other methods' dests
//!   are ipip.
//!
//! Invariant: pure; no sockets. Decides nothing about what to change.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::model::flags::{FLAG_OPS, FLAG_PE_PREFIX, sched_flag_bit, sched_flag_name};
use crate::model::traffic::Traffic;
use crate::model::tunnel::Tunnel;
use crate::model::{DestAttrs, DestStats, Family, Method, Op, Protocol, ServiceAttrs, ServiceKey};

use super::message::*;

fn af_of(family: Family) -> u16 {
    match family {
        Family::Ipv4 => AF_INET,
        Family::Ipv6 => AF_INET6,
    }
}

fn addr_bytes(ip: &IpAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => out[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => out.copy_from_slice(&v6.octets()),
    }
    out
}

fn ip_from(af: u16, b: &[u8; 16]) -> Result<IpAddr, String> {
    match af {
        AF_INET => Ok(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
        AF_INET6 => Ok(IpAddr::V6(Ipv6Addr::from(*b))),
        other => Err(format!("unknown address family {other}")),
    }
}

fn protocol_number(p: Protocol) -> u16 {
    match p {
        Protocol::Tcp => IPPROTO_TCP,
        Protocol::Udp => IPPROTO_UDP,
        Protocol::Sctp => IPPROTO_SCTP,
    }
}

/// The identifying attributes of a service (enough for DEL and for dest ops).
pub fn service_id(key: &ServiceKey) -> ServiceMsg {
    match key {
        ServiceKey::Addr { protocol, addr } => ServiceMsg {
            af: Some(af_of(Family::of(&addr.ip()))),
            protocol: Some(protocol_number(*protocol)),
            addr: Some(addr_bytes(&addr.ip())),
            port: Some(addr.port()),
            ..ServiceMsg::default()
        },
        ServiceKey::Fwmark { family, mark } => ServiceMsg {
            af: Some(af_of(*family)),
            fwmark: Some(*mark),
            ..ServiceMsg::default()
        },
    }
}

/// Service flag bits of a flag name (`ops`, the scheduler flags as
/// `model::flags` names them, or `0x..`). `pe=NAME` is not a bit.
fn flag_bits(name: &str) -> Option<u32> {
    if name == FLAG_OPS {
        return Some(IP_VS_SVC_F_ONEPACKET);
    }
    if let Some(bit) = sched_flag_bit(name) {
        return Some(IP_VS_SVC_F_SCHED1 << (bit - 1));
    }
    let bits = u32::from_str_radix(name.strip_prefix("0x")?, 16).ok()?;
    if bits == 0 || bits & (IP_VS_SVC_F_PERSISTENT | IP_VS_SVC_F_HASHED) != 0 {
        return None;
    }
    Some(bits)
}

/// Flag names of service flag bits (without persistent and hashed) and the
/// persistence engine, sorted.
fn flag_names(scheduler: &str, bits: u32, pe_name: Option<&str>) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = bits & !(IP_VS_SVC_F_PERSISTENT | IP_VS_SVC_F_HASHED);
    if rest & IP_VS_SVC_F_ONEPACKET != 0 {
        names.push(FLAG_OPS.to_string());
        rest &= !IP_VS_SVC_F_ONEPACKET;
    }
    for bit in 1..=3u8 {
        let mask = IP_VS_SVC_F_SCHED1 << (bit - 1);
        if rest & mask != 0 {
            names.push(sched_flag_name(scheduler, bit).to_string());
            rest &= !mask;
        }
    }
    if rest != 0 {
        names.push(format!("0x{rest:x}"));
    }
    if let Some(pe) = pe_name.filter(|pe| !pe.is_empty()) {
        names.push(format!("{}{pe}", FLAG_PE_PREFIX));
    }
    names.sort();
    names
}

/// The full service, as NEW_SERVICE and SET_SERVICE need it.
pub fn service_full(key: &ServiceKey, attrs: &ServiceAttrs) -> Result<ServiceMsg, String> {
    let mut m = service_id(key);
    let mut flags = 0u32;
    for name in &attrs.flags {
        if let Some(pe) = name.strip_prefix(FLAG_PE_PREFIX) {
            m.pe_name = Some(pe.to_string());
            continue;
        }
        flags |= flag_bits(name).ok_or_else(|| format!("service {key}: unknown flag {name:?}"))?;
    }
    if attrs.persistence.is_some() {
        flags |= IP_VS_SVC_F_PERSISTENT;
    }
    let family = key.family();
    let prefix = match attrs.persistence {
        Some(_) => attrs.netmask.unwrap_or(family.max_prefix_len()),
        None => family.max_prefix_len(),
    };
    if prefix > family.max_prefix_len() || (family == Family::Ipv6 && prefix == 0) {
        return Err(format!("service {key}: netmask /{prefix} out of range"));
    }
    let netmask = match family {
        Family::Ipv4 => {
            let bits = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            bits.to_be_bytes()
        }
        Family::Ipv6 => u32::from(prefix).to_ne_bytes(),
    };
    m.sched_name = Some(attrs.scheduler.clone());
    m.flags = Some(SvcFlags { flags, mask: !0 });
    m.timeout = Some(attrs.persistence.unwrap_or(0));
    m.netmask = Some(netmask);
    Ok(m)
}

/// The identifying attributes of a dest.
pub fn dest_id(dest: &SocketAddr) -> DestMsg {
    DestMsg {
        addr: Some(addr_bytes(&dest.ip())),
        port: Some(dest.port()),
        addr_family: Some(af_of(Family::of(&dest.ip()))),
        ..DestMsg::default()
    }
}

fn method_bits(m: Method) -> u32 {
    match m {
        Method::Masq => IP_VS_CONN_F_MASQ,
        Method::Droute => IP_VS_CONN_F_DROUTE,
        Method::Tunnel => IP_VS_CONN_F_TUNNEL,
    }
}

/// The encapsulation attributes a dest is sent with: none for ipip (the
/// kernel's default when they are absent, and all a kernel before 5.2
/// knows), all three otherwise.
fn tunnel_attrs(attrs: &DestAttrs) -> Option<Tunnel> {
    (attrs.method == Method::Tunnel && attrs.tunnel != Tunnel::IPIP).then_some(attrs.tunnel)
}

/// The full dest, as NEW_DEST and SET_DEST need it.
pub fn dest_full(dest: &SocketAddr, attrs: &DestAttrs) -> DestMsg {
    let tunnel = tunnel_attrs(attrs);
    DestMsg {
        fwd_method: Some(method_bits(attrs.method)),
        weight: Some(attrs.weight),
        tun_type: tunnel.map(|t| t.kind),
        tun_port: tunnel.map(|t| t.port),
        tun_flags: tunnel.map(|t| t.flags),
        u_thresh: Some(attrs.upper_threshold),
        l_thresh: Some(attrs.lower_threshold),
        ..dest_id(dest)
    }
}

/// The request that performs `op`.
pub fn op_request(op: &Op) -> Result<IpvsMsg, String> {
    Ok(match op {
        Op::AddService { service, attrs } => IpvsMsg::request(
            IPVS_CMD_NEW_SERVICE,
            Some(service_full(service, attrs)?),
            None,
        ),
        Op::EditService { service, attrs } => IpvsMsg::request(
            IPVS_CMD_SET_SERVICE,
            Some(service_full(service, attrs)?),
            None,
        ),
        Op::DelService { service } => {
            IpvsMsg::request(IPVS_CMD_DEL_SERVICE, Some(service_id(service)), None)
        }
        Op::AddDest {
            service,
            dest,
            attrs,
        } => IpvsMsg::request(
            IPVS_CMD_NEW_DEST,
            Some(service_id(service)),
            Some(dest_full(dest, attrs)),
        ),
        Op::EditDest {
            service,
            dest,
            attrs,
        } => IpvsMsg::request(
            IPVS_CMD_SET_DEST,
            Some(service_id(service)),
            Some(dest_full(dest, attrs)),
        ),
        Op::DelDest { service, dest } => IpvsMsg::request(
            IPVS_CMD_DEL_DEST,
            Some(service_id(service)),
            Some(dest_id(dest)),
        ),
    })
}

/// Appends the request payload of `op` to `out`: exactly the bytes of
/// `op_request(op)?.emit()`. Dest ops, the bulk of a large apply, are
/// written directly, without building and dropping messages.
pub fn encode_op(op: &Op, out: &mut Vec<u8>) -> Result<(), String> {
    match op {
        Op::AddDest {
            service,
            dest,
            attrs,
        } => encode_dest(out, IPVS_CMD_NEW_DEST, service, dest, Some(attrs)),
        Op::EditDest {
            service,
            dest,
            attrs,
        } => encode_dest(out, IPVS_CMD_SET_DEST, service, dest, Some(attrs)),
        Op::DelDest { service, dest } => encode_dest(out, IPVS_CMD_DEL_DEST, service, dest, None),
        _ => out.extend_from_slice(&op_request(op)?.emit()),
    }
    Ok(())
}

/// A dest request, in the order of `ServiceMsg::emit` (`service_id`) and
/// `DestMsg::emit` (`dest_full` or `dest_id`).
fn encode_dest(
    out: &mut Vec<u8>,
    cmd: u8,
    service: &ServiceKey,
    dest: &SocketAddr,
    attrs: Option<&DestAttrs>,
) {
    out.extend_from_slice(&[cmd, IPVS_GENL_VERSION, 0, 0]);
    emit_nested(out, IPVS_CMD_ATTR_SERVICE, |out| match service {
        ServiceKey::Addr { protocol, addr } => {
            emit_attr_fixed(
                out,
                IPVS_SVC_ATTR_AF,
                af_of(Family::of(&addr.ip())).to_ne_bytes(),
            );
            emit_attr_fixed(
                out,
                IPVS_SVC_ATTR_PROTOCOL,
                protocol_number(*protocol).to_ne_bytes(),
            );
            emit_attr_fixed(out, IPVS_SVC_ATTR_ADDR, addr_bytes(&addr.ip()));
            emit_attr_fixed(out, IPVS_SVC_ATTR_PORT, addr.port().to_be_bytes());
        }
        ServiceKey::Fwmark { family, mark } => {
            emit_attr_fixed(out, IPVS_SVC_ATTR_AF, af_of(*family).to_ne_bytes());
            emit_attr_fixed(out, IPVS_SVC_ATTR_FWMARK, mark.to_ne_bytes());
        }
    });
    emit_nested(out, IPVS_CMD_ATTR_DEST, |out| {
        emit_attr_fixed(out, IPVS_DEST_ATTR_ADDR, addr_bytes(&dest.ip()));
        emit_attr_fixed(out, IPVS_DEST_ATTR_PORT, dest.port().to_be_bytes());
        if let Some(a) = attrs {
            emit_attr_fixed(
                out,
                IPVS_DEST_ATTR_FWD_METHOD,
                method_bits(a.method).to_ne_bytes(),
            );
            emit_attr_fixed(out, IPVS_DEST_ATTR_WEIGHT, a.weight.to_ne_bytes());
            if let Some(t) = tunnel_attrs(a) {
                emit_attr_fixed(out, IPVS_DEST_ATTR_TUN_TYPE, [t.kind]);
                emit_attr_fixed(out, IPVS_DEST_ATTR_TUN_PORT, t.port.to_be_bytes());
                emit_attr_fixed(out, IPVS_DEST_ATTR_TUN_FLAGS, t.flags.to_ne_bytes());
            }
            emit_attr_fixed(
                out,
                IPVS_DEST_ATTR_U_THRESH,
                a.upper_threshold.to_ne_bytes(),
            );
            emit_attr_fixed(
                out,
                IPVS_DEST_ATTR_L_THRESH,
                a.lower_threshold.to_ne_bytes(),
            );
        }
        emit_attr_fixed(
            out,
            IPVS_DEST_ATTR_ADDR_FAMILY,
            af_of(Family::of(&dest.ip())).to_ne_bytes(),
        );
    });
}

/// The service key of a dumped service.
pub fn service_key(m: &ServiceMsg) -> Result<ServiceKey, String> {
    let af = m.af.ok_or("service without address family")?;
    let family = match af {
        AF_INET => Family::Ipv4,
        AF_INET6 => Family::Ipv6,
        other => return Err(format!("service with unknown address family {other}")),
    };
    if let Some(mark) = m.fwmark.filter(|&mark| mark != 0) {
        return Ok(ServiceKey::Fwmark { family, mark });
    }
    let (Some(proto), Some(addr), Some(port)) = (m.protocol, m.addr.as_ref(), m.port) else {
        return Err("service without fwmark or protocol, address and port".into());
    };
    let ip = ip_from(af, addr)?;
    let protocol = match proto {
        IPPROTO_TCP => Protocol::Tcp,
        IPPROTO_UDP => Protocol::Udp,
        IPPROTO_SCTP => Protocol::Sctp,
        other => {
            return Err(format!(
                "service {ip} port {port}: unsupported protocol {other}"
            ));
        }
    };
    Ok(ServiceKey::addr(protocol, ip, port))
}

/// Key and attributes of a dumped service.
pub fn service_from(m: &ServiceMsg) -> Result<(ServiceKey, ServiceAttrs), String> {
    let key = service_key(m)?;
    let scheduler = m
        .sched_name
        .clone()
        .ok_or_else(|| format!("service {key}: no scheduler"))?;
    let flags = m.flags.map(|f| f.flags).unwrap_or(0);
    let persistent = flags & IP_VS_SVC_F_PERSISTENT != 0;
    let family = key.family();
    let netmask = match (persistent, m.netmask) {
        (true, Some(raw)) => {
            let prefix = match family {
                Family::Ipv4 => {
                    let mask = u32::from_be_bytes(raw);
                    let prefix = mask.leading_ones();
                    if mask.checked_shl(prefix).unwrap_or(0) != 0 {
                        return Err(format!(
                            "service {key}: non-contiguous netmask {}",
                            Ipv4Addr::from(mask)
                        ));
                    }
                    prefix as u8
                }
                Family::Ipv6 => {
                    let plen = u32::from_ne_bytes(raw);
                    if plen > 128 {
                        return Err(format!("service {key}: netmask /{plen} out of range"));
                    }
                    plen as u8
                }
            };
            (prefix != family.max_prefix_len()).then_some(prefix)
        }
        _ => None,
    };
    let attrs = ServiceAttrs {
        flags: flag_names(&scheduler, flags, m.pe_name.as_deref()),
        scheduler,
        persistence: persistent.then(|| m.timeout.unwrap_or(0)),
        netmask,
    };
    Ok((key, attrs))
}

/// Address, attributes and counters of a dumped dest of `service`.
pub fn dest_from(
    service: &ServiceKey,
    m: &DestMsg,
) -> Result<(SocketAddr, DestAttrs, DestStats), String> {
    let af = m.addr_family.unwrap_or(af_of(service.family()));
    let (Some(addr), Some(port)) = (m.addr.as_ref(), m.port) else {
        return Err(format!("dest of {service} without address or port"));
    };
    let ip = ip_from(af, addr).map_err(|e| format!("dest of {service}: {e}"))?;
    let dest = SocketAddr::new(ip, port);
    let method = match m.fwd_method.unwrap_or(0) & IP_VS_CONN_F_FWD_MASK {
        IP_VS_CONN_F_MASQ => Method::Masq,
        IP_VS_CONN_F_LOCALNODE | IP_VS_CONN_F_DROUTE => Method::Droute,
        IP_VS_CONN_F_TUNNEL => Method::Tunnel,
        other => {
            return Err(format!(
                "dest {dest} of {service}: unknown forwarding method {other}"
            ));
        }
    };
    let weight = m.weight.unwrap_or(0);
    if weight > i32::MAX as u32 {
        return Err(format!("dest {dest} of {service}: negative weight"));
    }
    // A kernel before 5.2 sends no encapsulation: ipip. Other methods'
    // dests are ipip whatever the kernel holds (ipvsadm never sets it).
    let tunnel = match method {
        Method::Tunnel => Tunnel {
            kind: m.tun_type.unwrap_or(0),
            port: m.tun_port.unwrap_or(0),
            flags: m.tun_flags.unwrap_or(0),
        },
        _ => Tunnel::IPIP,
    };
    let attrs = DestAttrs {
        method,
        weight,
        upper_threshold: m.u_thresh.unwrap_or(0),
        lower_threshold: m.l_thresh.unwrap_or(0),
        tunnel,
    };
    let stats = DestStats {
        active_conns: m.active_conns.unwrap_or(0),
        inactive_conns: m.inact_conns.unwrap_or(0),
        persist_conns: m.persist_conns.unwrap_or(0),
    };
    Ok((dest, attrs, stats))
}

/// A service's or dest's traffic counters: the 64-bit set where the kernel
/// sends it (since 4.1), else the older one.
pub fn traffic(stats: &Option<Box<Stats>>, stats64: &Option<Box<Stats>>) -> Traffic {
    stats64
        .as_ref()
        .or(stats.as_ref())
        .map_or_else(Traffic::default, |s| Traffic::from_values(&s.values))
}

/// The address and traffic counters of the dest in one `GET_DEST` dump
/// reply payload of `service` (`None`: the reply holds no dest).
pub fn dest_traffic(
    service: &ServiceKey,
    payload: &[u8],
) -> anyhow::Result<Option<(SocketAddr, Traffic)>> {
    let Some(d) = IpvsMsg::parse_dest(payload)? else {
        return Ok(None);
    };
    let (addr, _, _) = dest_from(service, &d).map_err(|e| anyhow::anyhow!(e))?;
    Ok(Some((addr, traffic(&d.stats, &d.stats64))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> ServiceKey {
        s.parse().unwrap()
    }

    fn stats(base: u64) -> Option<Box<Stats>> {
        let mut s = Stats::default();
        for (i, v) in s.values.iter_mut().enumerate() {
            *v = Some(base + i as u64);
        }
        Some(Box::new(s))
    }

    /// A `GET_DEST` reply payload of `dest` with these counter sets.
    fn dest_reply(dest: &str, old: Option<Box<Stats>>, wide: Option<Box<Stats>>) -> Vec<u8> {
        let mut d = dest_full(&dest.parse().unwrap(), &DestAttrs::new(Method::Masq, 1));
        (d.stats, d.stats64) = (old, wide);
        IpvsMsg {
            cmd: IPVS_CMD_NEW_DEST,
            version: 1,
            body: Body::Objects {
                service: None,
                dest: Some(d),
                other: Vec::new(),
            },
        }
        .emit()
    }

    #[test]
    fn traffic_comes_from_the_64_bit_counters_where_the_kernel_sends_both() {
        let svc = key("tcp://10.0.0.1:80");
        let both = dest_reply("10.1.0.1:8080", stats(100), stats(5_000_000_000));
        let (addr, t) = dest_traffic(&svc, &both).unwrap().unwrap();
        assert_eq!(addr.to_string(), "10.1.0.1:8080");
        assert_eq!((t.connections, t.bytes_out), (5_000_000_000, 5_000_000_004));
        assert_eq!(t.byte_rate_out, 5_000_000_009);
        // A kernel before 4.1 sends the old set only.
        let old = dest_reply("10.1.0.1:8080", stats(100), None);
        let (_, t) = dest_traffic(&svc, &old).unwrap().unwrap();
        assert_eq!(
            (t.connections, t.packets_in, t.byte_rate_out),
            (100, 101, 109)
        );
        let none = dest_reply("10.1.0.1:8080", None, None);
        let (_, t) = dest_traffic(&svc, &none).unwrap().unwrap();
        assert_eq!(t, Traffic::default());
    }

    #[test]
    fn services_round_trip_through_messages() {
        let cases = [
            (
                "tcp://10.107.107.107:1337",
                ServiceAttrs::with_scheduler("wlc"),
            ),
            (
                "udp://[2001:db8::53]:53",
                ServiceAttrs {
                    scheduler: "sh".into(),
                    persistence: Some(300),
                    netmask: Some(64),
                    flags: vec!["sh-fallback".into(), "sh-port".into()],
                },
            ),
            (
                "fwmark://7",
                ServiceAttrs {
                    scheduler: "rr".into(),
                    persistence: Some(60),
                    netmask: Some(24),
                    flags: vec!["ops".into(), "pe=sip".into()],
                },
            ),
            (
                "fwmark6://9",
                ServiceAttrs {
                    flags: vec!["flag-3".into(), "mh-port".into()],
                    ..ServiceAttrs::with_scheduler("mh")
                },
            ),
            (
                "sctp://10.0.0.1:9",
                ServiceAttrs {
                    persistence: Some(10),
                    ..ServiceAttrs::with_scheduler("wrr")
                },
            ),
        ];
        for (k, attrs) in cases {
            let k = key(k);
            let msg = service_full(&k, &attrs).unwrap();
            // Through bytes too, as the kernel would echo it.
            let bytes = IpvsMsg::request(IPVS_CMD_NEW_SERVICE, Some(msg), None).emit();
            let Body::Objects {
                service: Some(back),
                ..
            } = IpvsMsg::parse(&bytes).unwrap().body
            else {
                panic!("no service in {bytes:?}")
            };
            assert_eq!(service_from(&back).unwrap(), (k, attrs), "{k}");
        }
    }

    #[test]
    fn netmask_bytes_follow_the_kernel() {
        let v4 = service_full(
            &key("tcp://10.0.0.1:80"),
            &ServiceAttrs {
                persistence: Some(1),
                netmask: Some(24),
                ..ServiceAttrs::with_scheduler("wlc")
            },
        )
        .unwrap();
        // 255.255.255.0, network order.
        assert_eq!(v4.netmask, Some([0xff, 0xff, 0xff, 0x00]));
        assert_eq!(v4.flags.unwrap().flags, IP_VS_SVC_F_PERSISTENT);
        let v6 =
            service_full(&key("tcp://[::1]:80"), &ServiceAttrs::with_scheduler("wlc")).unwrap();
        // A host-order prefix length: 128.
        assert_eq!(v6.netmask, Some(128u32.to_ne_bytes()));
        assert_eq!(v6.timeout, Some(0));
    }

    #[test]
    fn non_persistent_services_ignore_the_netmask() {
        let mut m = service_full(
            &key("tcp://10.0.0.1:80"),
            &ServiceAttrs::with_scheduler("rr"),
        )
        .unwrap();
        m.netmask = Some([255, 255, 0, 0]);
        assert_eq!(service_from(&m).unwrap().1.netmask, None);
        m.flags = Some(SvcFlags {
            flags: IP_VS_SVC_F_PERSISTENT | IP_VS_SVC_F_HASHED,
            mask: !0,
        });
        m.timeout = Some(30);
        let attrs = service_from(&m).unwrap().1;
        assert_eq!((attrs.persistence, attrs.netmask), (Some(30), Some(16)));
        assert!(attrs.flags.is_empty());
        m.netmask = Some([255, 0, 255, 0]);
        assert!(service_from(&m).unwrap_err().contains("non-contiguous"));
    }

    #[test]
    fn dests_round_trip_and_local_reads_as_droute() {
        let svc = key("tcp://10.107.107.107:1337");
        let dest: SocketAddr = "10.3.107.1:1337".parse().unwrap();
        let attrs = DestAttrs {
            method: Method::Tunnel,
            weight: 65535,
            upper_threshold: 100,
            lower_threshold: 10,
            tunnel: Tunnel {
                kind: 1,
                port: 6080,
                flags: 2,
            },
        };
        let mut m = dest_full(&dest, &attrs);
        assert_eq!(
            (m.tun_type, m.tun_port, m.tun_flags),
            (Some(1), Some(6080), Some(2))
        );
        m.active_conns = Some(3);
        m.inact_conns = Some(4);
        let (d, a, s) = dest_from(&svc, &m).unwrap();
        assert_eq!((d, a), (dest, attrs));
        assert_eq!((s.active_conns, s.inactive_conns), (3, 4));
        m.fwd_method = Some(IP_VS_CONN_F_LOCALNODE);
        // Only a tunnel dest has an encapsulation.
        let local = dest_from(&svc, &m).unwrap().1;
        assert_eq!((local.method, local.tunnel), (Method::Droute, Tunnel::IPIP));
        // An ipip tunnel is sent without the attributes, as before 5.2.
        let ipip = dest_full(&dest, &DestAttrs::new(Method::Tunnel, 1));
        assert_eq!(
            (ipip.tun_type, ipip.tun_port, ipip.tun_flags),
            (None, None, None)
        );
        m.fwd_method = Some(4);
        assert!(dest_from(&svc, &m).is_err());
        // Without ADDR_FAMILY (older kernels) the service's family is used.
        let v6svc = key("tcp://[2001:db8::1]:80");
        let v6: SocketAddr = "[2001:db8::2]:80".parse().unwrap();
        let mut m = dest_full(&v6, &DestAttrs::new(Method::Masq, 1));
        m.addr_family = None;
        assert_eq!(dest_from(&v6svc, &m).unwrap().0, v6);
    }

    #[test]
    fn direct_encoding_is_byte_for_byte_the_message_encoding() {
        let services = [
            "tcp://10.107.107.107:1337",
            "udp://[2001:db8::1]:53",
            "sctp://10.0.0.1:9",
            "fwmark://7",
            "fwmark6://9",
        ];
        let dests = ["10.3.107.1:1337", "[2001:db8::2]:0", "10.0.0.5:0"];
        let mut ops = Vec::new();
        for s in services {
            let service = key(s);
            ops.push(Op::AddService {
                service,
                attrs: ServiceAttrs::with_scheduler("wlc"),
            });
            ops.push(Op::DelService { service });
            for d in dests {
                let dest: SocketAddr = d.parse().unwrap();
                for (method, kind) in Method::ALL.into_iter().zip([0, 0, 0]).chain([
                    (Method::Tunnel, 1),
                    (Method::Tunnel, 2),
                    (Method::Masq, 1),
                ]) {
                    let attrs = DestAttrs {
                        method,
                        weight: 65535,
                        upper_threshold: 100,
                        lower_threshold: 7,
                        tunnel: Tunnel {
                            kind,
                            port: 6080 * u16::from(kind == 1),
                            flags: 1,
                        },
                    };
                    ops.push(Op::AddDest {
                        service,
                        dest,
                        attrs,
                    });
                    ops.push(Op::EditDest {
                        service,
                        dest,
                        attrs: DestAttrs::new(method, 0),
                    });
                }
                ops.push(Op::DelDest { service, dest });
            }
        }
        for op in &ops {
            let mut direct = vec![0xaa];
            encode_op(op, &mut direct).unwrap();
            assert_eq!(direct[1..], op_request(op).unwrap().emit()[..], "{op:?}");
        }
        let bad = Op::AddService {
            service: key("tcp://10.0.0.1:80"),
            attrs: ServiceAttrs {
                flags: vec!["nope".into()],
                ..ServiceAttrs::with_scheduler("rr")
            },
        };
        assert!(encode_op(&bad, &mut Vec::new()).is_err());
    }

    #[test]
    fn unknown_flags_are_refused_on_the_way_out() {
        let attrs = ServiceAttrs {
            flags: vec!["sparkles".into()],
            ..ServiceAttrs::with_scheduler("rr")
        };
        let e = service_full(&key("tcp://10.0.0.1:80"), &attrs).unwrap_err();
        assert_eq!(e, "service tcp://10.0.0.1:80: unknown flag \"sparkles\"");
    }
}
