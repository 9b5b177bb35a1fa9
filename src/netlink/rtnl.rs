//! The VIP interface over route netlink: one `NETLINK_ROUTE` socket, the
//! link looked up by name, created as a dummy marked as clusterf's, and its
//! addresses dumped, added and deleted one request at a time (a handful of
//! VIPs per pass: no pipelining).
//!
//! Ownership is the link's alias (`IFLA_IFALIAS`, [`VIP_ALIAS`]): set when
//! clusterf creates the link, checked (with the kind `dummy`) before any
//! change; a link of that name that is not both is refused, never
//! modified. Every address of our link with scope global is a VIP of ours;
//! the link-local ones the kernel adds are never touched.
//!
//! Invariant: executes what it is given; decides nothing (the VIP plan is
//! `vip`'s). Touches no other link and no address outside its link.

use std::collections::BTreeSet;
use std::io;
use std::net::IpAddr;

use anyhow::{Context, Result, anyhow, bail};
use neli::consts::socket::{Msg, NlFamily};
use neli::socket::NlSocket;
use neli::utils::Groups;

use super::dump;
use super::error::KernelError;
use super::message::*;

/// The alias that marks the link as clusterf's.
pub const VIP_ALIAS: &str = "clusterf: VIPs of apply --watch --vip-interface";
/// The link's kind.
pub const VIP_KIND: &str = "dummy";

const ENODEV: i32 = 19;
pub(super) const EEXIST: i32 = 17;
pub(super) const EADDRNOTAVAIL: i32 = 99;
const READ_BUF: usize = 64 << 10;

/// Why a link of the name is not ours (pure): `None` when it is.
pub fn not_ours(link: &LinkMsg) -> Option<String> {
    not_ours_as(link, VIP_KIND, VIP_ALIAS, "--vip-interface")
}

/// Why a link is not the `kind` link that clusterf marked with `alias`
/// (pure): `None` when it is; `flag` is what the user changes instead.
pub fn not_ours_as(link: &LinkMsg, kind: &str, alias: &str, flag: &str) -> Option<String> {
    let actual = link.kind().unwrap_or("unknown");
    if actual != kind {
        return Some(format!(
            "is a {actual} link, not a {kind} that clusterf created: not touching it"
        ));
    }
    if link.alias.as_deref() != Some(alias) {
        return Some(format!(
            "is a {kind} without clusterf's alias ({alias:?}): not touching it; delete it or choose another {flag}"
        ));
    }
    None
}

/// The request that creates an IPIP link `name` in external
/// (collect-metadata) mode, up (pure): it receives and decapsulates every
/// IPIP packet that no other tunnel matches, without touching `tunl0`.
pub fn ipip_external_request(name: &str) -> LinkMsg {
    let mut data = Vec::new();
    emit_attr(&mut data, IFLA_IPTUN_COLLECT_METADATA, &[]);
    let mut req = create_request(name);
    req.info = Some(LinkInfo {
        kind: Some("ipip".to_string()),
        other: vec![RawAttr {
            kind: IFLA_INFO_DATA,
            payload: data,
        }],
    });
    req
}

/// A VIP of an address message (pure): a global-scope /32 or /128 of
/// link `index`; `None` for anything else (link-local, other prefixes,
/// other links).
pub fn vip_of(m: &AddrMsg, index: u32) -> Option<IpAddr> {
    if m.index != index || m.scope != RT_SCOPE_UNIVERSE {
        return None;
    }
    match (m.family, m.prefix_len, m.addr_bytes()?) {
        (IFA_FAMILY_INET, 32, &[a, b, c, d]) => Some(IpAddr::from([a, b, c, d])),
        (IFA_FAMILY_INET6, 128, b) if b.len() == 16 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(b);
            Some(IpAddr::from(o))
        }
        _ => None,
    }
}

/// The request that adds or deletes `vip` on link `index` (pure): a /32
/// with `IFA_LOCAL` and `IFA_ADDRESS`, or a /128 with `IFA_F_NODAD`.
pub fn addr_request(index: u32, vip: IpAddr) -> AddrMsg {
    match vip {
        IpAddr::V4(v4) => AddrMsg {
            family: IFA_FAMILY_INET,
            prefix_len: 32,
            scope: RT_SCOPE_UNIVERSE,
            index,
            address: Some(v4.octets().to_vec()),
            local: Some(v4.octets().to_vec()),
            ..AddrMsg::default()
        },
        IpAddr::V6(v6) => AddrMsg {
            family: IFA_FAMILY_INET6,
            prefix_len: 128,
            flags: IFA_F_NODAD as u8,
            scope: RT_SCOPE_UNIVERSE,
            index,
            address: Some(v6.octets().to_vec()),
            all_flags: Some(IFA_F_NODAD),
            ..AddrMsg::default()
        },
    }
}

/// The request that creates the link (pure): a dummy, up, named `name`.
pub fn create_request(name: &str) -> LinkMsg {
    LinkMsg {
        flags: IFF_UP,
        change: IFF_UP,
        name: Some(name.to_string()),
        info: Some(LinkInfo {
            kind: Some(VIP_KIND.to_string()),
            other: Vec::new(),
        }),
        ..LinkMsg::default()
    }
}

/// A route netlink socket.
pub struct RtnlClient {
    sock: NlSocket,
    seq: u32,
    buf: Vec<u8>,
    trace: bool,
}

impl RtnlClient {
    pub fn connect() -> Result<RtnlClient> {
        let sock = NlSocket::connect(NlFamily::Route, None, Groups::empty())
            .context("opening a route netlink socket")?;
        Ok(RtnlClient {
            sock,
            seq: std::process::id().wrapping_mul(0x85eb_ca6b),
            buf: vec![0; READ_BUF],
            trace: std::env::var_os("CLUSTERF_NETLINK_TRACE").is_some_and(|v| v == "1"),
        })
    }

    /// One request; the payloads of the replies, to the ack or the dump's
    /// end.
    pub(super) fn transact(
        &mut self,
        kind: u16,
        flags: u16,
        payload: &[u8],
    ) -> Result<Vec<Vec<u8>>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut req = Vec::with_capacity(payload.len() + NLMSG_HDRLEN);
        emit_message(&mut req, kind, flags | NLM_F_REQUEST, seq, payload);
        if self.trace {
            eprintln!("rtnetlink send: {}", hex(&req));
        }
        let n = self.sock.send(&req, Msg::empty())?;
        if n != req.len() {
            bail!("short netlink send: {n} of {} bytes", req.len());
        }
        let mut replies = Vec::new();
        loop {
            let (n, _) = self.sock.recv(&mut self.buf[..], Msg::TRUNC)?;
            if n > self.buf.len() {
                return Err(io::Error::other("netlink datagram truncated").into());
            }
            if self.trace {
                eprintln!("rtnetlink recv: {}", hex(&self.buf[..n]));
            }
            let progress = dump::walk(&self.buf[..n], seq, false, |p| {
                replies.push(p.to_vec());
                Ok(())
            })?;
            if progress == dump::Progress::Done {
                return Ok(replies);
            }
        }
    }

    /// The link named `name`, if there is one.
    pub fn link(&mut self, name: &str) -> Result<Option<LinkMsg>> {
        let req = LinkMsg {
            name: Some(name.to_string()),
            ..LinkMsg::default()
        };
        match self.transact(RTM_GETLINK, NLM_F_ACK, &req.emit()) {
            Ok(replies) => match replies.first() {
                Some(p) => Ok(Some(LinkMsg::parse(p)?)),
                None => bail!("no reply to RTM_GETLINK {name}"),
            },
            Err(e) if errno(&e) == Some(ENODEV) => Ok(None),
            Err(e) => Err(e.context(format!("reading link {name}"))),
        }
    }

    /// Creates the dummy link `name`, up, and marks it with [`VIP_ALIAS`]
    /// (the kernel sets an alias only on an existing link).
    pub fn create_link(&mut self, name: &str) -> Result<LinkMsg> {
        let req = create_request(name).emit();
        self.transact(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, &req)
            .with_context(|| format!("creating dummy link {name}"))?;
        let link = self
            .link(name)?
            .ok_or_else(|| anyhow!("link {name} vanished after its creation"))?;
        let mark = LinkMsg {
            index: link.index,
            alias: Some(VIP_ALIAS.to_string()),
            ..LinkMsg::default()
        };
        self.transact(RTM_NEWLINK, NLM_F_ACK, &mark.emit())
            .with_context(|| format!("setting the alias of link {name}"))?;
        self.link(name)?
            .ok_or_else(|| anyhow!("link {name} vanished after its creation"))
    }

    /// Creates the link of `req` (a create request: name, kind, up) and
    /// marks it with `alias`; the link as the kernel then reports it.
    pub fn create_owned(&mut self, req: &LinkMsg, alias: &str) -> Result<LinkMsg> {
        let name = req.name.clone().unwrap_or_default();
        self.transact(
            RTM_NEWLINK,
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            &req.emit(),
        )
        .with_context(|| format!("creating {} link {name}", req.kind().unwrap_or("a")))?;
        let link = self
            .link(&name)?
            .ok_or_else(|| anyhow!("link {name} vanished after its creation"))?;
        let mark = LinkMsg {
            index: link.index,
            alias: Some(alias.to_string()),
            ..LinkMsg::default()
        };
        self.transact(RTM_NEWLINK, NLM_F_ACK, &mark.emit())
            .with_context(|| format!("setting the alias of link {name}"))?;
        self.link(&name)?
            .ok_or_else(|| anyhow!("link {name} vanished after its creation"))
    }

    /// Every link.
    pub fn links(&mut self) -> Result<Vec<LinkMsg>> {
        let req = LinkMsg::default().emit();
        self.transact(RTM_GETLINK, NLM_F_DUMP, &req)
            .context("dumping links")?
            .iter()
            .map(|p| LinkMsg::parse(p).map_err(anyhow::Error::from))
            .collect()
    }

    /// Sets link `index` up.
    pub fn set_up(&mut self, index: i32) -> Result<()> {
        let req = LinkMsg {
            index,
            flags: IFF_UP,
            change: IFF_UP,
            ..LinkMsg::default()
        };
        self.transact(RTM_NEWLINK, NLM_F_ACK, &req.emit())
            .map(|_| ())
            .context("setting a link up")
    }

    /// Deletes link `index` (one already gone is no error).
    pub fn delete_link(&mut self, index: i32) -> Result<()> {
        let req = LinkMsg {
            index,
            ..LinkMsg::default()
        };
        match self.transact(RTM_DELLINK, NLM_F_ACK, &req.emit()) {
            Err(e) if errno(&e) == Some(ENODEV) => Ok(()),
            r => r.map(|_| ()).context("deleting a link"),
        }
    }

    /// Every address of every link.
    pub fn addrs(&mut self) -> Result<Vec<AddrMsg>> {
        let req = AddrMsg::default().emit();
        self.transact(RTM_GETADDR, NLM_F_DUMP, &req)
            .context("dumping addresses")?
            .iter()
            .map(|p| AddrMsg::parse(p).map_err(anyhow::Error::from))
            .collect()
    }

    /// Adds `vip` to link `index` (one already there is no error).
    pub fn add_vip(&mut self, index: u32, vip: IpAddr) -> Result<()> {
        let req = addr_request(index, vip).emit();
        match self.transact(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, &req) {
            Err(e) if errno(&e) == Some(EEXIST) => Ok(()),
            r => r
                .map(|_| ())
                .with_context(|| format!("adding {}", vip_text(vip))),
        }
    }

    /// Deletes `vip` from link `index` (one already gone is no error).
    pub fn del_vip(&mut self, index: u32, vip: IpAddr) -> Result<()> {
        let req = addr_request(index, vip).emit();
        match self.transact(RTM_DELADDR, NLM_F_ACK, &req) {
            Err(e) if errno(&e) == Some(EADDRNOTAVAIL) => Ok(()),
            r => r
                .map(|_| ())
                .with_context(|| format!("deleting {}", vip_text(vip))),
        }
    }
}

/// `198.51.100.10/32`, `2001:db8::10/128`.
pub fn vip_text(vip: IpAddr) -> String {
    match vip {
        IpAddr::V4(a) => format!("{a}/32"),
        IpAddr::V6(a) => format!("{a}/128"),
    }
}

pub(super) fn errno(e: &anyhow::Error) -> Option<i32> {
    e.downcast_ref::<KernelError>().map(|k| k.errno)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The VIP link, checked to be ours: its index and the socket.
pub struct VipLink {
    client: RtnlClient,
    name: String,
    index: u32,
}

impl VipLink {
    /// Opens the link `name`, creating it when there is none; an existing
    /// link that is not ours ([`not_ours`]) is an error, untouched.
    pub fn open(name: &str) -> Result<VipLink> {
        let mut client = RtnlClient::connect()?;
        let link = match client.link(name)? {
            Some(l) => l,
            None => client.create_link(name)?,
        };
        if let Some(why) = not_ours(&link) {
            bail!("--vip-interface {name}: link {name} {why}");
        }
        Ok(VipLink {
            client,
            name: name.to_string(),
            index: u32::try_from(link.index).map_err(|_| anyhow!("link {name}: bad index"))?,
        })
    }

    /// Checks the link again (it may have been deleted or replaced by
    /// hand) and reopens it when it is gone.
    fn check(&mut self) -> Result<()> {
        match self.client.link(&self.name)? {
            Some(l) => {
                if let Some(why) = not_ours(&l) {
                    bail!("link {} {why}", self.name);
                }
                self.index = l.index as u32;
                Ok(())
            }
            None => {
                *self = VipLink::open(&self.name)?;
                Ok(())
            }
        }
    }

    /// The VIPs on the link now.
    pub fn read(&mut self) -> Result<BTreeSet<IpAddr>> {
        self.check()?;
        let index = self.index;
        Ok(self
            .client
            .addrs()?
            .iter()
            .filter_map(|m| vip_of(m, index))
            .collect())
    }

    pub fn add(&mut self, vip: IpAddr) -> Result<()> {
        self.client.add_vip(self.index, vip)
    }

    pub fn remove(&mut self, vip: IpAddr) -> Result<()> {
        self.client.del_vip(self.index, vip)
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The VIPs on link `name` without creating or changing anything (`show`):
/// `None` when there is no such link.
pub fn read_vips(name: &str) -> Result<Option<BTreeSet<IpAddr>>> {
    let mut client = RtnlClient::connect()?;
    let Some(link) = client.link(name)? else {
        return Ok(None);
    };
    let index = link.index as u32;
    Ok(Some(
        client
            .addrs()?
            .iter()
            .filter_map(|m| vip_of(m, index))
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_is_ours_only_as_a_dummy_with_our_alias() {
        let mut l = create_request("clusterf0");
        assert!(not_ours(&l).unwrap().contains("without clusterf's alias"));
        l.alias = Some(VIP_ALIAS.into());
        assert_eq!(not_ours(&l), None);
        l.info.as_mut().unwrap().kind = Some("veth".into());
        assert!(not_ours(&l).unwrap().starts_with("is a veth link"));
        l.info = None;
        assert!(not_ours(&l).unwrap().starts_with("is a unknown link"));
    }

    #[test]
    fn only_global_host_addresses_of_the_link_are_vips() {
        let v4: IpAddr = "198.51.100.10".parse().unwrap();
        let v6: IpAddr = "2001:db8::10".parse().unwrap();
        assert_eq!(vip_of(&addr_request(7, v4), 7), Some(v4));
        assert_eq!(vip_of(&addr_request(7, v6), 7), Some(v6));
        assert_eq!(vip_of(&addr_request(7, v4), 8), None);
        let mut ll = addr_request(7, "fe80::1".parse().unwrap());
        ll.scope = RT_SCOPE_LINK;
        ll.prefix_len = 64;
        assert_eq!(vip_of(&ll, 7), None);
        let mut net = addr_request(7, v4);
        net.prefix_len = 24;
        assert_eq!(vip_of(&net, 7), None);
    }

    #[test]
    fn the_ipip_link_request_is_external_mode_and_parses_back() {
        let req = ipip_external_request("clusterf-ipip0");
        let bytes = req.emit();
        assert_eq!(LinkMsg::parse(&bytes).unwrap(), req);
        assert_eq!(req.kind(), Some("ipip"));
        let data = &req.info.as_ref().unwrap().other[0];
        assert_eq!(data.kind, IFLA_INFO_DATA);
        // One attribute, IFLA_IPTUN_COLLECT_METADATA, a flag: no payload.
        assert_eq!(data.payload, [4, 0, IFLA_IPTUN_COLLECT_METADATA as u8, 0]);
        assert_eq!(req.flags & IFF_UP, IFF_UP);
        let mut ours = req.clone();
        ours.alias = Some("clusterf: realserver".into());
        assert_eq!(
            not_ours_as(&ours, "ipip", "clusterf: realserver", "x"),
            None
        );
        assert!(not_ours_as(&ours, "dummy", "clusterf: realserver", "x").is_some());
    }
}
