//! Route netlink (`include/uapi/linux/rtnetlink.h`, `if_link.h`,
//! `if_addr.h`): the link and address messages the VIP interface needs,
//! each a fixed header plus one attribute set that parses and emits.
//!
//! - [`LinkMsg`]: `struct ifinfomsg` and the `IFLA_*` set (`RTM_NEWLINK`,
//!   `RTM_GETLINK`), with [`LinkInfo`] (`IFLA_LINKINFO`, the kind).
//! - [`AddrMsg`]: `struct ifaddrmsg` and the `IFA_*` set (`RTM_NEWADDR`,
//!   `RTM_DELADDR`, `RTM_GETADDR` dumps).
//!
//! Wire facts worth knowing: all integers are host byte order; addresses
//! are 4 or 16 raw bytes (network order, as the address is written);
//! `IFLA_LINKINFO` nests without `NLA_F_NESTED` from the kernel, which also
//! accepts it either way; the header's `ifa_flags` is 8 bits, the full
//! flags word is `IFA_FLAGS`.
//!
//! Invariant: pure; no model types: what a message means is the client's.

use super::attr::*;

pub const RTM_NEWLINK: u16 = 16;
pub const RTM_DELLINK: u16 = 17;
pub const RTM_GETLINK: u16 = 18;
pub const RTM_NEWADDR: u16 = 20;
pub const RTM_DELADDR: u16 = 21;
pub const RTM_GETADDR: u16 = 22;

/// Request flags of new objects.
pub const NLM_F_REPLACE: u16 = 0x100;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;

/// Address families as `ifa_family` holds them (one byte).
pub const IFA_FAMILY_INET: u8 = 2;
pub const IFA_FAMILY_INET6: u8 = 10;

/// `IFF_UP`.
pub const IFF_UP: u32 = 0x1;

pub const IFLA_ADDRESS: u16 = 1;
pub const IFLA_IFNAME: u16 = 3;
pub const IFLA_LINKINFO: u16 = 18;
pub const IFLA_IFALIAS: u16 = 20;
pub const IFLA_INFO_KIND: u16 = 1;
/// `IFLA_INFO_DATA`: the kind's own attributes (kept in `LinkInfo::other`).
pub const IFLA_INFO_DATA: u16 = 2;
/// `IFLA_IPTUN_COLLECT_METADATA` (`if_tunnel.h`): a flag; an IPIP link in
/// external mode receives every IPIP packet no other tunnel matches.
pub const IFLA_IPTUN_COLLECT_METADATA: u16 = 19;

pub const IFA_ADDRESS: u16 = 1;
pub const IFA_LOCAL: u16 = 2;
pub const IFA_LABEL: u16 = 3;
pub const IFA_FLAGS: u16 = 8;
/// `IFA_PROTO` (u8, Linux 5.18+): who added the address.
pub const IFA_PROTO: u16 = 11;

/// `IFA_F_NODAD`: no duplicate address detection (an IPv6 address is
/// usable at once).
pub const IFA_F_NODAD: u32 = 0x02;
pub const IFA_F_PERMANENT: u32 = 0x80;

pub const RT_SCOPE_UNIVERSE: u8 = 0;
pub const RT_SCOPE_LINK: u8 = 253;
pub const RT_SCOPE_HOST: u8 = 254;

/// `struct ifinfomsg` length.
pub const IFINFOMSG_LEN: usize = 16;
/// `struct ifaddrmsg` length.
pub const IFADDRMSG_LEN: usize = 8;

/// `IFLA_LINKINFO`'s attributes: the kind (`dummy`), the rest kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkInfo {
    pub kind: Option<String>,
    pub other: Vec<RawAttr>,
}

impl LinkInfo {
    fn parse(p: &[u8]) -> Result<LinkInfo, DecodeError> {
        let mut m = LinkInfo::default();
        for a in attr_refs(p) {
            let a = a?;
            match a.id() {
                IFLA_INFO_KIND => set(&mut m.kind, &a, "IFLA_INFO_KIND", get_string)?,
                _ => m.other.push(a.owned()),
            }
        }
        Ok(m)
    }

    fn emit(&self, out: &mut Vec<u8>) {
        emit_nested(out, IFLA_LINKINFO, |out| {
            if let Some(k) = &self.kind {
                // With its terminator, as `nla_put_string` writes it.
                emit_string(out, IFLA_INFO_KIND, k);
            }
            emit_others(out, &self.other);
        });
    }
}

/// A link message: `struct ifinfomsg` and the `IFLA_*` attributes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkMsg {
    pub family: u8,
    /// `ifi_type` (`ARPHRD_*`).
    pub link_type: u16,
    pub index: i32,
    pub flags: u32,
    pub change: u32,
    pub name: Option<String>,
    pub alias: Option<String>,
    pub info: Option<LinkInfo>,
    pub other: Vec<RawAttr>,
}

impl LinkMsg {
    pub fn parse(p: &[u8]) -> Result<LinkMsg, DecodeError> {
        if p.len() < IFINFOMSG_LEN {
            return err(format!(
                "link message of {} bytes, expected at least {IFINFOMSG_LEN}",
                p.len()
            ));
        }
        let mut m = LinkMsg {
            family: p[0],
            link_type: u16::from_ne_bytes([p[2], p[3]]),
            index: i32::from_ne_bytes([p[4], p[5], p[6], p[7]]),
            flags: u32::from_ne_bytes([p[8], p[9], p[10], p[11]]),
            change: u32::from_ne_bytes([p[12], p[13], p[14], p[15]]),
            ..LinkMsg::default()
        };
        for a in attr_refs(&p[IFINFOMSG_LEN..]) {
            let a = a?;
            match a.id() {
                IFLA_IFNAME => set(&mut m.name, &a, "IFLA_IFNAME", get_string)?,
                IFLA_IFALIAS => set(&mut m.alias, &a, "IFLA_IFALIAS", get_string)?,
                IFLA_LINKINFO => {
                    let info = LinkInfo::parse(a.payload)?;
                    once(&mut m.info, info, "IFLA_LINKINFO")?
                }
                _ => m.other.push(a.owned()),
            }
        }
        Ok(m)
    }

    /// The payload: header, then name, alias, link info, the rest.
    pub fn emit(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.push(self.family);
        out.push(0);
        out.extend_from_slice(&self.link_type.to_ne_bytes());
        out.extend_from_slice(&self.index.to_ne_bytes());
        out.extend_from_slice(&self.flags.to_ne_bytes());
        out.extend_from_slice(&self.change.to_ne_bytes());
        if let Some(n) = &self.name {
            emit_string(&mut out, IFLA_IFNAME, n);
        }
        if let Some(a) = &self.alias {
            emit_string(&mut out, IFLA_IFALIAS, a);
        }
        if let Some(i) = &self.info {
            i.emit(&mut out);
        }
        emit_others(&mut out, &self.other);
        out
    }

    /// The link's kind (`dummy`), if the kernel said.
    pub fn kind(&self) -> Option<&str> {
        self.info.as_ref()?.kind.as_deref()
    }
}

/// An address message: `struct ifaddrmsg` and the `IFA_*` attributes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddrMsg {
    pub family: u8,
    pub prefix_len: u8,
    /// `ifa_flags`: the low 8 bits of the flags.
    pub flags: u8,
    pub scope: u8,
    pub index: u32,
    pub address: Option<Vec<u8>>,
    pub local: Option<Vec<u8>>,
    pub label: Option<String>,
    /// `IFA_FLAGS`: all the flags.
    pub all_flags: Option<u32>,
    /// `IFA_PROTO`: the address's origin (`--vip-mode arp`'s mark).
    pub proto: Option<u8>,
    pub other: Vec<RawAttr>,
}

impl AddrMsg {
    pub fn parse(p: &[u8]) -> Result<AddrMsg, DecodeError> {
        if p.len() < IFADDRMSG_LEN {
            return err(format!(
                "address message of {} bytes, expected at least {IFADDRMSG_LEN}",
                p.len()
            ));
        }
        let mut m = AddrMsg {
            family: p[0],
            prefix_len: p[1],
            flags: p[2],
            scope: p[3],
            index: u32::from_ne_bytes([p[4], p[5], p[6], p[7]]),
            ..AddrMsg::default()
        };
        for a in attr_refs(&p[IFADDRMSG_LEN..]) {
            let a = a?;
            match a.id() {
                IFA_ADDRESS => set(&mut m.address, &a, "IFA_ADDRESS", get_ip)?,
                IFA_LOCAL => set(&mut m.local, &a, "IFA_LOCAL", get_ip)?,
                IFA_LABEL => set(&mut m.label, &a, "IFA_LABEL", get_string)?,
                IFA_FLAGS => set(&mut m.all_flags, &a, "IFA_FLAGS", get_u32)?,
                IFA_PROTO => set(&mut m.proto, &a, "IFA_PROTO", get_u8)?,
                _ => m.other.push(a.owned()),
            }
        }
        Ok(m)
    }

    /// The payload: header, then the attributes in the kernel's order
    /// (`inet_fill_ifaddr`: address, local, label, proto, flags), the rest.
    pub fn emit(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&[self.family, self.prefix_len, self.flags, self.scope]);
        out.extend_from_slice(&self.index.to_ne_bytes());
        if let Some(a) = &self.address {
            emit_attr(&mut out, IFA_ADDRESS, a);
        }
        if let Some(a) = &self.local {
            emit_attr(&mut out, IFA_LOCAL, a);
        }
        if let Some(l) = &self.label {
            emit_string(&mut out, IFA_LABEL, l);
        }
        if let Some(p) = self.proto {
            emit_attr(&mut out, IFA_PROTO, &[p]);
        }
        if let Some(f) = self.all_flags {
            emit_attr(&mut out, IFA_FLAGS, &f.to_ne_bytes());
        }
        emit_others(&mut out, &self.other);
        out
    }

    /// The address the message is about: `IFA_LOCAL` where there is one
    /// (IPv4), else `IFA_ADDRESS`.
    pub fn addr_bytes(&self) -> Option<&[u8]> {
        self.local.as_deref().or(self.address.as_deref())
    }
}

/// An address: 4 or 16 bytes.
fn get_ip(a: &AttrRef, what: &str) -> Result<Vec<u8>, DecodeError> {
    match a.payload.len() {
        4 | 16 => Ok(a.payload.to_vec()),
        n => err(format!("{what}: {n} bytes, expected 4 or 16")),
    }
}
