//! IPVS over generic netlink (`include/uapi/linux/ip_vs.h`, the kernel's
//! `net/netfilter/ipvs/ip_vs_ctl.c`): the commands and the attribute sets
//! of services, dests, their counters and the info reply, each a type that
//! parses and emits in the kernel's order, widths and byte order. The
//! sync-daemon set is not modelled; its attributes stay in `other`.
//!
//! Wire facts worth knowing:
//! - most attributes are host byte order; ports (`IPVS_SVC_ATTR_PORT`,
//!   `IPVS_DEST_ATTR_PORT`, `IPVS_DEST_ATTR_TUN_PORT`) are big-endian.
//!   Typed values hold ports as plain numbers.
//! - addresses are a 16-byte `union nf_inet_addr` (IPv4 in the first 4).
//! - `IPVS_SVC_ATTR_NETMASK` is a big-endian mask for IPv4 but a host-order
//!   prefix length for IPv6 (the kernel checks `plen` 1..128 after reading it
//!   with `nla_get_u32`), so it is kept here as its 4 raw bytes and
//!   interpreted with the address family in `mapping`.
//! - the IPVS family nests without `NLA_F_NESTED`; parsing ignores the flag
//!   bits, emitting never sets them.
//!
//! Invariant: pure; no model types: what a message means is `mapping`'s.

use super::attr::*;
use super::genl::{emit_genl, parse_genl};

/// `IPVS_GENL_NAME` and `IPVS_GENL_VERSION`.
pub const IPVS_GENL_NAME: &str = "IPVS";
pub const IPVS_GENL_VERSION: u8 = 1;

pub const IPVS_CMD_NEW_SERVICE: u8 = 1;
pub const IPVS_CMD_SET_SERVICE: u8 = 2;
pub const IPVS_CMD_DEL_SERVICE: u8 = 3;
pub const IPVS_CMD_GET_SERVICE: u8 = 4;
pub const IPVS_CMD_NEW_DEST: u8 = 5;
pub const IPVS_CMD_SET_DEST: u8 = 6;
pub const IPVS_CMD_DEL_DEST: u8 = 7;
pub const IPVS_CMD_GET_DEST: u8 = 8;
pub const IPVS_CMD_SET_INFO: u8 = 14;
pub const IPVS_CMD_GET_INFO: u8 = 15;
pub const IPVS_CMD_ZERO: u8 = 16;
pub const IPVS_CMD_FLUSH: u8 = 17;

pub const IPVS_CMD_ATTR_SERVICE: u16 = 1;
pub const IPVS_CMD_ATTR_DEST: u16 = 2;

pub const IPVS_SVC_ATTR_AF: u16 = 1;
pub const IPVS_SVC_ATTR_PROTOCOL: u16 = 2;
pub const IPVS_SVC_ATTR_ADDR: u16 = 3;
pub const IPVS_SVC_ATTR_PORT: u16 = 4;
pub const IPVS_SVC_ATTR_FWMARK: u16 = 5;
pub const IPVS_SVC_ATTR_SCHED_NAME: u16 = 6;
pub const IPVS_SVC_ATTR_FLAGS: u16 = 7;
pub const IPVS_SVC_ATTR_TIMEOUT: u16 = 8;
pub const IPVS_SVC_ATTR_NETMASK: u16 = 9;
pub const IPVS_SVC_ATTR_STATS: u16 = 10;
pub const IPVS_SVC_ATTR_PE_NAME: u16 = 11;
pub const IPVS_SVC_ATTR_STATS64: u16 = 12;

pub const IPVS_DEST_ATTR_ADDR: u16 = 1;
pub const IPVS_DEST_ATTR_PORT: u16 = 2;
pub const IPVS_DEST_ATTR_FWD_METHOD: u16 = 3;
pub const IPVS_DEST_ATTR_WEIGHT: u16 = 4;
pub const IPVS_DEST_ATTR_U_THRESH: u16 = 5;
pub const IPVS_DEST_ATTR_L_THRESH: u16 = 6;
pub const IPVS_DEST_ATTR_ACTIVE_CONNS: u16 = 7;
pub const IPVS_DEST_ATTR_INACT_CONNS: u16 = 8;
pub const IPVS_DEST_ATTR_PERSIST_CONNS: u16 = 9;
pub const IPVS_DEST_ATTR_STATS: u16 = 10;
pub const IPVS_DEST_ATTR_ADDR_FAMILY: u16 = 11;
pub const IPVS_DEST_ATTR_STATS64: u16 = 12;
pub const IPVS_DEST_ATTR_TUN_TYPE: u16 = 13;
pub const IPVS_DEST_ATTR_TUN_PORT: u16 = 14;
pub const IPVS_DEST_ATTR_TUN_FLAGS: u16 = 15;

/// `IPVS_STATS_ATTR_CONNS` .. `IPVS_STATS_ATTR_OUTBPS` are 1..=10.
pub const IPVS_STATS_ATTR_COUNT: usize = 10;
pub const IPVS_STATS_ATTR_INBYTES: u16 = 4;
pub const IPVS_STATS_ATTR_OUTBYTES: u16 = 5;

pub const IPVS_INFO_ATTR_VERSION: u16 = 1;
pub const IPVS_INFO_ATTR_CONN_TAB_SIZE: u16 = 2;

pub const IP_VS_SVC_F_PERSISTENT: u32 = 0x0001;
pub const IP_VS_SVC_F_HASHED: u32 = 0x0002;
pub const IP_VS_SVC_F_ONEPACKET: u32 = 0x0004;
pub const IP_VS_SVC_F_SCHED1: u32 = 0x0008;
pub const IP_VS_SVC_F_SCHED2: u32 = 0x0010;
pub const IP_VS_SVC_F_SCHED3: u32 = 0x0020;

pub const IP_VS_CONN_F_FWD_MASK: u32 = 0x0007;
pub const IP_VS_CONN_F_MASQ: u32 = 0x0000;
pub const IP_VS_CONN_F_LOCALNODE: u32 = 0x0001;
pub const IP_VS_CONN_F_TUNNEL: u32 = 0x0002;
pub const IP_VS_CONN_F_DROUTE: u32 = 0x0003;

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

pub const IPPROTO_TCP: u16 = 6;
pub const IPPROTO_UDP: u16 = 17;
pub const IPPROTO_SCTP: u16 = 132;

/// `struct ip_vs_flags`: the flags and which of them to change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SvcFlags {
    pub flags: u32,
    pub mask: u32,
}

/// Service or dest counters (`IPVS_STATS_ATTR_*`), by attribute id - 1.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub values: [Option<u64>; IPVS_STATS_ATTR_COUNT],
    /// Padding and newer counters, as they came.
    pub other: Vec<RawAttr>,
}

impl Stats {
    pub fn conns(&self) -> u64 {
        self.values[0].unwrap_or(0)
    }

    fn parse(p: &[u8], what: &str) -> Result<Stats, DecodeError> {
        let mut s = Stats::default();
        for a in attr_refs(p) {
            let a = a?;
            let id = a.id() as usize;
            if (1..=IPVS_STATS_ATTR_COUNT).contains(&id) {
                set(&mut s.values[id - 1], &a, what, get_counter)?;
            } else {
                s.other.push(a.owned());
            }
        }
        Ok(s)
    }

    /// `wide`: `*_STATS64` (every counter 64-bit); otherwise the byte
    /// counters are 64-bit and the rest 32-bit, as the kernel writes them
    /// (a value too large for 32 bits is written as 64).
    fn emit(&self, out: &mut Vec<u8>, kind: u16, wide: bool) {
        emit_nested(out, kind, |out| {
            for (i, v) in self.values.iter().enumerate() {
                let Some(v) = v else { continue };
                let id = i as u16 + 1;
                let long = wide || id == IPVS_STATS_ATTR_INBYTES || id == IPVS_STATS_ATTR_OUTBYTES;
                if long || *v > u64::from(u32::MAX) {
                    emit_attr(out, id, &v.to_ne_bytes());
                } else {
                    emit_attr(out, id, &(*v as u32).to_ne_bytes());
                }
            }
            emit_others(out, &self.other);
        });
    }
}

/// The attributes of `IPVS_CMD_ATTR_SERVICE`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceMsg {
    pub af: Option<u16>,
    pub protocol: Option<u16>,
    pub addr: Option<[u8; 16]>,
    pub port: Option<u16>,
    pub fwmark: Option<u32>,
    pub sched_name: Option<String>,
    pub pe_name: Option<String>,
    pub flags: Option<SvcFlags>,
    pub timeout: Option<u32>,
    /// Raw bytes: see the module documentation.
    pub netmask: Option<[u8; 4]>,
    /// Boxed: the counters are large and often not read (lean parses).
    pub stats: Option<Box<Stats>>,
    pub stats64: Option<Box<Stats>>,
    pub other: Vec<RawAttr>,
}

impl ServiceMsg {
    pub fn parse(p: &[u8]) -> Result<ServiceMsg, DecodeError> {
        let mut m = ServiceMsg::default();
        for a in attr_refs(p) {
            let a = a?;
            let what = service_label(a.id());
            match a.id() {
                IPVS_SVC_ATTR_AF => set(&mut m.af, &a, what, get_u16)?,
                IPVS_SVC_ATTR_PROTOCOL => set(&mut m.protocol, &a, what, get_u16)?,
                IPVS_SVC_ATTR_ADDR => set(&mut m.addr, &a, what, get_addr)?,
                IPVS_SVC_ATTR_PORT => set(&mut m.port, &a, what, get_be16)?,
                IPVS_SVC_ATTR_FWMARK => set(&mut m.fwmark, &a, what, get_u32)?,
                IPVS_SVC_ATTR_SCHED_NAME => set(&mut m.sched_name, &a, what, get_string)?,
                IPVS_SVC_ATTR_PE_NAME => set(&mut m.pe_name, &a, what, get_string)?,
                IPVS_SVC_ATTR_FLAGS => set(&mut m.flags, &a, what, get_svc_flags)?,
                IPVS_SVC_ATTR_TIMEOUT => set(&mut m.timeout, &a, what, get_u32)?,
                IPVS_SVC_ATTR_NETMASK => set(&mut m.netmask, &a, what, get_raw4)?,
                IPVS_SVC_ATTR_STATS => set(&mut m.stats, &a, what, get_stats)?,
                IPVS_SVC_ATTR_STATS64 => set(&mut m.stats64, &a, what, get_stats)?,
                _ => m.other.push(a.owned()),
            }
        }
        Ok(m)
    }

    /// Appends the nested attribute, in the kernel's order
    /// (`ip_vs_genl_fill_service`).
    pub fn emit(&self, out: &mut Vec<u8>) {
        emit_nested(out, IPVS_CMD_ATTR_SERVICE, |out| {
            if let Some(af) = self.af {
                emit_attr(out, IPVS_SVC_ATTR_AF, &af.to_ne_bytes());
            }
            if let Some(mark) = self.fwmark {
                emit_attr(out, IPVS_SVC_ATTR_FWMARK, &mark.to_ne_bytes());
            }
            if let Some(p) = self.protocol {
                emit_attr(out, IPVS_SVC_ATTR_PROTOCOL, &p.to_ne_bytes());
            }
            if let Some(addr) = &self.addr {
                emit_attr(out, IPVS_SVC_ATTR_ADDR, addr);
            }
            if let Some(port) = self.port {
                emit_attr(out, IPVS_SVC_ATTR_PORT, &port.to_be_bytes());
            }
            if let Some(s) = &self.sched_name {
                emit_string(out, IPVS_SVC_ATTR_SCHED_NAME, s);
            }
            if let Some(s) = &self.pe_name {
                emit_string(out, IPVS_SVC_ATTR_PE_NAME, s);
            }
            if let Some(f) = self.flags {
                let mut p = f.flags.to_ne_bytes().to_vec();
                p.extend_from_slice(&f.mask.to_ne_bytes());
                emit_attr(out, IPVS_SVC_ATTR_FLAGS, &p);
            }
            if let Some(t) = self.timeout {
                emit_attr(out, IPVS_SVC_ATTR_TIMEOUT, &t.to_ne_bytes());
            }
            if let Some(m) = &self.netmask {
                emit_attr(out, IPVS_SVC_ATTR_NETMASK, m);
            }
            if let Some(s) = &self.stats {
                s.emit(out, IPVS_SVC_ATTR_STATS, false);
            }
            if let Some(s) = &self.stats64 {
                s.emit(out, IPVS_SVC_ATTR_STATS64, true);
            }
            emit_others(out, &self.other);
        });
    }
}

/// The attributes of `IPVS_CMD_ATTR_DEST`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DestMsg {
    pub addr: Option<[u8; 16]>,
    pub port: Option<u16>,
    pub fwd_method: Option<u32>,
    pub weight: Option<u32>,
    pub tun_type: Option<u8>,
    pub tun_port: Option<u16>,
    pub tun_flags: Option<u16>,
    pub u_thresh: Option<u32>,
    pub l_thresh: Option<u32>,
    pub active_conns: Option<u32>,
    pub inact_conns: Option<u32>,
    pub persist_conns: Option<u32>,
    pub addr_family: Option<u16>,
    /// Boxed: the counters are large and often not read (lean parses).
    pub stats: Option<Box<Stats>>,
    pub stats64: Option<Box<Stats>>,
    pub other: Vec<RawAttr>,
}

impl DestMsg {
    pub fn parse(p: &[u8]) -> Result<DestMsg, DecodeError> {
        Self::parse_with(p, true)
    }

    /// [`DestMsg::parse`] without the counters: `IPVS_DEST_ATTR_STATS` and
    /// `_STATS64` are skipped unread (left `None`), everything else is
    /// checked as `parse` does. For reading large dumps.
    pub fn parse_lean(p: &[u8]) -> Result<DestMsg, DecodeError> {
        Self::parse_with(p, false)
    }

    fn parse_with(p: &[u8], with_stats: bool) -> Result<DestMsg, DecodeError> {
        let mut m = DestMsg::default();
        for a in attr_refs(p) {
            let a = a?;
            if !with_stats && matches!(a.id(), IPVS_DEST_ATTR_STATS | IPVS_DEST_ATTR_STATS64) {
                continue;
            }
            let what = dest_label(a.id());
            match a.id() {
                IPVS_DEST_ATTR_ADDR => set(&mut m.addr, &a, what, get_addr)?,
                IPVS_DEST_ATTR_PORT => set(&mut m.port, &a, what, get_be16)?,
                IPVS_DEST_ATTR_FWD_METHOD => set(&mut m.fwd_method, &a, what, get_u32)?,
                IPVS_DEST_ATTR_WEIGHT => set(&mut m.weight, &a, what, get_u32)?,
                IPVS_DEST_ATTR_TUN_TYPE => set(&mut m.tun_type, &a, what, get_u8)?,
                IPVS_DEST_ATTR_TUN_PORT => set(&mut m.tun_port, &a, what, get_be16)?,
                IPVS_DEST_ATTR_TUN_FLAGS => set(&mut m.tun_flags, &a, what, get_u16)?,
                IPVS_DEST_ATTR_U_THRESH => set(&mut m.u_thresh, &a, what, get_u32)?,
                IPVS_DEST_ATTR_L_THRESH => set(&mut m.l_thresh, &a, what, get_u32)?,
                IPVS_DEST_ATTR_ACTIVE_CONNS => set(&mut m.active_conns, &a, what, get_u32)?,
                IPVS_DEST_ATTR_INACT_CONNS => set(&mut m.inact_conns, &a, what, get_u32)?,
                IPVS_DEST_ATTR_PERSIST_CONNS => set(&mut m.persist_conns, &a, what, get_u32)?,
                IPVS_DEST_ATTR_ADDR_FAMILY => set(&mut m.addr_family, &a, what, get_u16)?,
                IPVS_DEST_ATTR_STATS => set(&mut m.stats, &a, what, get_stats)?,
                IPVS_DEST_ATTR_STATS64 => set(&mut m.stats64, &a, what, get_stats)?,
                _ => m.other.push(a.owned()),
            }
        }
        Ok(m)
    }

    /// Appends the nested attribute, in the kernel's order
    /// (`ip_vs_genl_fill_dest`).
    pub fn emit(&self, out: &mut Vec<u8>) {
        emit_nested(out, IPVS_CMD_ATTR_DEST, |out| {
            if let Some(addr) = &self.addr {
                emit_attr(out, IPVS_DEST_ATTR_ADDR, addr);
            }
            if let Some(port) = self.port {
                emit_attr(out, IPVS_DEST_ATTR_PORT, &port.to_be_bytes());
            }
            let u32s = |out: &mut Vec<u8>, kind, v: Option<u32>| {
                if let Some(v) = v {
                    emit_attr(out, kind, &v.to_ne_bytes());
                }
            };
            u32s(out, IPVS_DEST_ATTR_FWD_METHOD, self.fwd_method);
            u32s(out, IPVS_DEST_ATTR_WEIGHT, self.weight);
            if let Some(t) = self.tun_type {
                emit_attr(out, IPVS_DEST_ATTR_TUN_TYPE, &[t]);
            }
            if let Some(p) = self.tun_port {
                emit_attr(out, IPVS_DEST_ATTR_TUN_PORT, &p.to_be_bytes());
            }
            if let Some(f) = self.tun_flags {
                emit_attr(out, IPVS_DEST_ATTR_TUN_FLAGS, &f.to_ne_bytes());
            }
            u32s(out, IPVS_DEST_ATTR_U_THRESH, self.u_thresh);
            u32s(out, IPVS_DEST_ATTR_L_THRESH, self.l_thresh);
            u32s(out, IPVS_DEST_ATTR_ACTIVE_CONNS, self.active_conns);
            u32s(out, IPVS_DEST_ATTR_INACT_CONNS, self.inact_conns);
            u32s(out, IPVS_DEST_ATTR_PERSIST_CONNS, self.persist_conns);
            if let Some(af) = self.addr_family {
                emit_attr(out, IPVS_DEST_ATTR_ADDR_FAMILY, &af.to_ne_bytes());
            }
            if let Some(s) = &self.stats {
                s.emit(out, IPVS_DEST_ATTR_STATS, false);
            }
            if let Some(s) = &self.stats64 {
                s.emit(out, IPVS_DEST_ATTR_STATS64, true);
            }
            emit_others(out, &self.other);
        });
    }
}

/// The `IPVS_CMD_GET_INFO` reply (`IPVS_CMD_SET_INFO`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InfoMsg {
    pub version: Option<u32>,
    pub conn_tab_size: Option<u32>,
    pub other: Vec<RawAttr>,
}

impl InfoMsg {
    fn parse(attrs: &[u8]) -> Result<InfoMsg, DecodeError> {
        let mut info = InfoMsg::default();
        for a in attr_refs(attrs) {
            let a = a?;
            let what = info_label(a.id());
            match a.id() {
                IPVS_INFO_ATTR_VERSION => set(&mut info.version, &a, what, get_u32)?,
                IPVS_INFO_ATTR_CONN_TAB_SIZE => set(&mut info.conn_tab_size, &a, what, get_u32)?,
                _ => info.other.push(a.owned()),
            }
        }
        Ok(info)
    }

    fn emit(&self, out: &mut Vec<u8>) {
        if let Some(v) = self.version {
            emit_attr(out, IPVS_INFO_ATTR_VERSION, &v.to_ne_bytes());
        }
        if let Some(v) = self.conn_tab_size {
            emit_attr(out, IPVS_INFO_ATTR_CONN_TAB_SIZE, &v.to_ne_bytes());
        }
        emit_others(out, &self.other);
    }
}

/// What an IPVS message carries. Top-level attribute numbers mean different
/// things for `GET_INFO`/`SET_INFO` than for every other command.
// Messages live briefly, one at a time; boxing would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    Info(InfoMsg),
    Objects {
        service: Option<ServiceMsg>,
        dest: Option<DestMsg>,
        other: Vec<RawAttr>,
    },
}

impl Body {
    /// The top-level attributes of command `cmd`.
    fn parse(cmd: u8, attrs: &[u8]) -> Result<Body, DecodeError> {
        if cmd == IPVS_CMD_SET_INFO || cmd == IPVS_CMD_GET_INFO {
            return Ok(Body::Info(InfoMsg::parse(attrs)?));
        }
        let mut service = None;
        let mut dest = None;
        let mut other = Vec::new();
        for a in attr_refs(attrs) {
            let a = a?;
            let what = command_label(a.id());
            match a.id() {
                IPVS_CMD_ATTR_SERVICE => {
                    set(&mut service, &a, what, |a, _| ServiceMsg::parse(a.payload))?
                }
                IPVS_CMD_ATTR_DEST => set(&mut dest, &a, what, |a, _| DestMsg::parse(a.payload))?,
                _ => other.push(a.owned()),
            }
        }
        Ok(Body::Objects {
            service,
            dest,
            other,
        })
    }

    fn emit(&self, out: &mut Vec<u8>) {
        match self {
            Body::Info(info) => info.emit(out),
            Body::Objects {
                service,
                dest,
                other,
            } => {
                if let Some(s) = service {
                    s.emit(out);
                }
                if let Some(d) = dest {
                    d.emit(out);
                }
                emit_others(out, other);
            }
        }
    }
}

/// A whole IPVS generic netlink payload (genl header and attributes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpvsMsg {
    pub cmd: u8,
    pub version: u8,
    pub body: Body,
}

impl IpvsMsg {
    /// A request for `cmd` with these objects.
    pub fn request(cmd: u8, service: Option<ServiceMsg>, dest: Option<DestMsg>) -> IpvsMsg {
        IpvsMsg {
            cmd,
            version: IPVS_GENL_VERSION,
            body: if cmd == IPVS_CMD_GET_INFO || cmd == IPVS_CMD_SET_INFO {
                Body::Info(InfoMsg::default())
            } else {
                Body::Objects {
                    service,
                    dest,
                    other: Vec::new(),
                }
            },
        }
    }

    /// The dest of a `GET_DEST` dump reply, without its counters (see
    /// [`DestMsg::parse_lean`]); other top-level attributes are skipped.
    pub fn parse_dest_lean(p: &[u8]) -> Result<Option<DestMsg>, DecodeError> {
        Self::parse_dest_with(p, false)
    }

    /// The dest of a `GET_DEST` dump reply with its counters; other
    /// top-level attributes are skipped.
    pub fn parse_dest(p: &[u8]) -> Result<Option<DestMsg>, DecodeError> {
        Self::parse_dest_with(p, true)
    }

    fn parse_dest_with(p: &[u8], with_stats: bool) -> Result<Option<DestMsg>, DecodeError> {
        let (_, attrs) = parse_genl(p)?;
        let mut dest = None;
        for a in attr_refs(attrs) {
            let a = a?;
            if a.id() == IPVS_CMD_ATTR_DEST {
                let what = command_label(a.id());
                set(&mut dest, &a, what, |a, _| {
                    DestMsg::parse_with(a.payload, with_stats)
                })?;
            }
        }
        Ok(dest)
    }

    pub fn parse(p: &[u8]) -> Result<IpvsMsg, DecodeError> {
        let (h, attrs) = parse_genl(p)?;
        Ok(IpvsMsg {
            cmd: h.cmd,
            version: h.version,
            body: Body::parse(h.cmd, attrs)?,
        })
    }

    pub fn emit(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.emit_into(&mut out);
        out
    }

    /// [`IpvsMsg::emit`] into `out`, replacing what it held.
    pub fn emit_into(&self, out: &mut Vec<u8>) {
        out.clear();
        emit_genl(out, self.cmd, self.version);
        self.body.emit(out);
    }
}

/// `struct ip_vs_flags`: flags, then mask.
fn get_svc_flags(a: &AttrRef, what: &str) -> Result<SvcFlags, DecodeError> {
    let p = a.payload;
    if p.len() != 8 {
        return err(format!("{what}: {} bytes, expected 8", p.len()));
    }
    Ok(SvcFlags {
        flags: u32::from_ne_bytes([p[0], p[1], p[2], p[3]]),
        mask: u32::from_ne_bytes([p[4], p[5], p[6], p[7]]),
    })
}

/// A nested counter set; boxed, as the messages hold it.
fn get_stats(a: &AttrRef, what: &str) -> Result<Box<Stats>, DecodeError> {
    Ok(Box::new(Stats::parse(a.payload, what)?))
}

// The name of each attribute, per attribute set, as parse errors say it.

/// `IPVS_CMD_ATTR_*`: the objects of a command.
fn command_label(id: u16) -> &'static str {
    match id {
        IPVS_CMD_ATTR_SERVICE => "service",
        IPVS_CMD_ATTR_DEST => "dest",
        _ => "command attribute",
    }
}

/// `IPVS_SVC_ATTR_*`.
fn service_label(id: u16) -> &'static str {
    match id {
        IPVS_SVC_ATTR_AF => "service af",
        IPVS_SVC_ATTR_PROTOCOL => "service protocol",
        IPVS_SVC_ATTR_ADDR => "service address",
        IPVS_SVC_ATTR_PORT => "service port",
        IPVS_SVC_ATTR_FWMARK => "service fwmark",
        IPVS_SVC_ATTR_SCHED_NAME => "service scheduler",
        IPVS_SVC_ATTR_FLAGS => "service flags",
        IPVS_SVC_ATTR_TIMEOUT => "service timeout",
        IPVS_SVC_ATTR_NETMASK => "service netmask",
        IPVS_SVC_ATTR_STATS => "service stats",
        IPVS_SVC_ATTR_PE_NAME => "service pe name",
        IPVS_SVC_ATTR_STATS64 => "service stats64",
        _ => "service attribute",
    }
}

/// `IPVS_DEST_ATTR_*`.
fn dest_label(id: u16) -> &'static str {
    match id {
        IPVS_DEST_ATTR_ADDR => "dest address",
        IPVS_DEST_ATTR_PORT => "dest port",
        IPVS_DEST_ATTR_FWD_METHOD => "dest forwarding method",
        IPVS_DEST_ATTR_WEIGHT => "dest weight",
        IPVS_DEST_ATTR_U_THRESH => "dest upper threshold",
        IPVS_DEST_ATTR_L_THRESH => "dest lower threshold",
        IPVS_DEST_ATTR_ACTIVE_CONNS => "dest active connections",
        IPVS_DEST_ATTR_INACT_CONNS => "dest inactive connections",
        IPVS_DEST_ATTR_PERSIST_CONNS => "dest persistent connections",
        IPVS_DEST_ATTR_STATS => "dest stats",
        IPVS_DEST_ATTR_ADDR_FAMILY => "dest address family",
        IPVS_DEST_ATTR_STATS64 => "dest stats64",
        IPVS_DEST_ATTR_TUN_TYPE => "dest tunnel type",
        IPVS_DEST_ATTR_TUN_PORT => "dest tunnel port",
        IPVS_DEST_ATTR_TUN_FLAGS => "dest tunnel flags",
        _ => "dest attribute",
    }
}

/// `IPVS_INFO_ATTR_*`.
fn info_label(id: u16) -> &'static str {
    match id {
        IPVS_INFO_ATTR_VERSION => "version",
        IPVS_INFO_ATTR_CONN_TAB_SIZE => "connection table size",
        _ => "info attribute",
    }
}
