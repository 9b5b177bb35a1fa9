//! ARP mode's VIP interface (`--vip-mode arp --vip-interface eth0`): an
//! existing interface that clusterf shares with the host and never owns,
//! over the route netlink socket of [`super::rtnl`]. It is never created,
//! renamed, set up or down; only the addresses clusterf added are changed.
//!
//! Ownership is per address: clusterf adds each VIP with its mark,
//! `IFA_PROTO` = [`VIP_PROTO`] (the address's origin, which the kernel
//! keeps and reports since Linux 5.18; Debian 12's 6.1 does, checked in
//! the VM), and an address is clusterf's only when it carries that mark
//! (host prefix, scope global). Why this mark and no state file: it is set
//! by the same `RTM_NEWADDR` that adds the address and goes with it, so
//! no crash can leave an address of ours unmarked or a mark without its
//! address, and there is no second record to disagree with the kernel. An
//! IPv4 label (`eth0:cf`) would cover IPv4 only, in 15 bytes; a route
//! metric on the address (`IFA_RT_PRIORITY`) would change the IPv6 prefix
//! route. A kernel that drops the mark (before 5.18) is caught at the
//! first add: the address just added is deleted again and the pass fails.
//!
//! Invariant: executes what it is given; decides nothing (what is ours
//! within `--own` and what to change is `vip`'s). Deletes only addresses
//! that carry the mark; touches no other link.

use std::collections::BTreeSet;
use std::net::IpAddr;

use anyhow::{Context, Result, anyhow, bail};

use super::message::*;
use super::rtnl::{EADDRNOTAVAIL, EEXIST, RtnlClient, addr_request, errno, vip_text};

/// The `IFA_PROTO` value that marks an address as clusterf's (0-3 are
/// the kernel's: unspecified, loopback, router advertisement, link-local).
pub const VIP_PROTO: u8 = 0xcf;
/// `ARPHRD_ETHER`.
pub const ARPHRD_ETHER: u16 = 1;
/// `IFF_NOARP`.
pub const IFF_NOARP: u32 = 0x80;

/// Why link `link` cannot carry ARP mode's VIPs (pure): `None` when it can
/// (an Ethernet link with a hardware address that does ARP).
pub fn unsuitable(link: &LinkMsg) -> Option<String> {
    if link.link_type != ARPHRD_ETHER {
        return Some(format!(
            "is not an Ethernet link (type {}): no ARP on it",
            link.link_type
        ));
    }
    if link.flags & IFF_NOARP != 0 {
        return Some("does not do ARP (NOARP): no neighbour would learn the VIPs".into());
    }
    if mac_of(link).is_none() {
        return Some("has no 6-byte hardware address".into());
    }
    None
}

/// The link's hardware address (`IFLA_ADDRESS`), if it is 6 bytes.
pub fn mac_of(link: &LinkMsg) -> Option<[u8; 6]> {
    link.other
        .iter()
        .find(|a| a.id() == IFLA_ADDRESS)
        .and_then(|a| <[u8; 6]>::try_from(a.payload.as_slice()).ok())
}

/// An address of link `index` (pure): the address and whether it is one
/// of clusterf's (marked, a host prefix, scope global); `None` for other
/// links' addresses.
pub fn classify(m: &AddrMsg, index: u32) -> Option<(IpAddr, bool)> {
    if m.index != index {
        return None;
    }
    let addr = match (m.family, m.addr_bytes()?) {
        (IFA_FAMILY_INET, &[a, b, c, d]) => IpAddr::from([a, b, c, d]),
        (IFA_FAMILY_INET6, b) => IpAddr::from(<[u8; 16]>::try_from(b).ok()?),
        _ => return None,
    };
    let host = matches!(
        (m.family, m.prefix_len),
        (IFA_FAMILY_INET, 32) | (IFA_FAMILY_INET6, 128)
    );
    let ours = host && m.scope == RT_SCOPE_UNIVERSE && m.proto == Some(VIP_PROTO);
    Some((addr, ours))
}

/// The request that adds `vip` to link `index` with the mark (pure): the
/// dummy link's request ([`addr_request`]: a /32, or a /128 without DAD)
/// and `IFA_PROTO`.
pub fn marked_request(index: u32, vip: IpAddr) -> AddrMsg {
    AddrMsg {
        proto: Some(VIP_PROTO),
        ..addr_request(index, vip)
    }
}

/// The addresses of the link as read: clusterf's (marked) and the rest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkAddrs {
    pub marked: BTreeSet<IpAddr>,
    pub unmarked: BTreeSet<IpAddr>,
}

/// Sorts the address messages of link `index` (pure).
pub fn link_addrs(msgs: &[AddrMsg], index: u32) -> LinkAddrs {
    let mut out = LinkAddrs::default();
    for (addr, ours) in msgs.iter().filter_map(|m| classify(m, index)) {
        if ours {
            out.marked.insert(addr);
        } else {
            out.unmarked.insert(addr);
        }
    }
    // An address both ways (a marked /32 and an unmarked /24 of it) is
    // not only ours.
    out.marked.retain(|a| !out.unmarked.contains(a));
    out
}

/// What an add did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Added {
    /// The VIP is on the link, marked, and was not before.
    Added,
    /// The address was there already (added by someone else since the
    /// read): not ours, left alone.
    Existed,
}

/// The shared link: checked to exist and to suit ARP, never created.
pub struct ArpLink {
    client: RtnlClient,
    name: String,
    index: u32,
    mac: [u8; 6],
}

impl ArpLink {
    /// Opens the existing link `name`; a missing or unsuitable link is an
    /// error, and nothing is changed.
    pub fn open(name: &str) -> Result<ArpLink> {
        let client = RtnlClient::connect()?;
        let mut link = ArpLink {
            client,
            name: name.to_string(),
            index: 0,
            mac: [0; 6],
        };
        link.check()
            .with_context(|| format!("--vip-mode arp --vip-interface {name}"))?;
        Ok(link)
    }

    /// Reads the link again (its index or address may have changed).
    fn check(&mut self) -> Result<()> {
        let name = &self.name;
        let Some(l) = self.client.link(name)? else {
            bail!(
                "no link {name}: ARP mode puts the VIPs on an existing interface and never creates one"
            );
        };
        if let Some(why) = unsuitable(&l) {
            bail!("link {name} {why}: not touching it");
        }
        self.index = u32::try_from(l.index).map_err(|_| anyhow!("link {name}: bad index"))?;
        self.mac = mac_of(&l).unwrap_or_default();
        Ok(())
    }

    /// The link's addresses now.
    pub fn read(&mut self) -> Result<LinkAddrs> {
        self.check()?;
        Ok(link_addrs(&self.client.addrs()?, self.index))
    }

    /// Adds `vip` with the mark; checks that the kernel kept the mark.
    pub fn add(&mut self, vip: IpAddr) -> Result<Added> {
        let req = marked_request(self.index, vip).emit();
        let flags = NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
        match self.client.transact(RTM_NEWADDR, flags, &req) {
            Ok(_) => {}
            Err(e) if errno(&e) == Some(EEXIST) => return Ok(Added::Existed),
            Err(e) => return Err(e.context(format!("adding {}", vip_text(vip)))),
        }
        let index = self.index;
        let msgs = self.client.addrs()?;
        if msgs.iter().any(|m| classify(m, index) == Some((vip, true))) {
            return Ok(Added::Added);
        }
        // The add succeeded (EXCL): the address is ours, but unmarked.
        self.delete(vip)?;
        bail!(
            "the kernel did not keep the mark (IFA_PROTO) on {} on {}: --vip-mode arp needs Linux 5.18 or later; removed it again",
            vip_text(vip),
            self.name
        )
    }

    /// Deletes `vip`, which must be one of ours (read as marked).
    pub fn remove(&mut self, vip: IpAddr) -> Result<()> {
        self.delete(vip)
    }

    fn delete(&mut self, vip: IpAddr) -> Result<()> {
        let req = marked_request(self.index, vip).emit();
        match self.client.transact(RTM_DELADDR, NLM_F_ACK, &req) {
            Err(e) if errno(&e) == Some(EADDRNOTAVAIL) => Ok(()),
            r => r
                .map(|_| ())
                .with_context(|| format!("deleting {}", vip_text(vip))),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn index(&self) -> u32 {
        self.index
    }

    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }
}

/// clusterf's VIPs on link `name` without changing anything (`show`):
/// on clusterf's own dummy every VIP ([`super::rtnl::read_vips`]), on any
/// other link only the addresses carrying the mark; `None` when there is
/// no such link.
pub fn read_vips(name: &str) -> Result<Option<BTreeSet<IpAddr>>> {
    let mut client = RtnlClient::connect()?;
    let Some(link) = client.link(name)? else {
        return Ok(None);
    };
    if super::rtnl::not_ours(&link).is_none() {
        return super::rtnl::read_vips(name);
    }
    let index = u32::try_from(link.index).map_err(|_| anyhow!("link {name}: bad index"))?;
    Ok(Some(link_addrs(&client.addrs()?, index).marked))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn eth(flags: u32, mac: &[u8]) -> LinkMsg {
        LinkMsg {
            link_type: ARPHRD_ETHER,
            index: 2,
            flags,
            name: Some("eth0".into()),
            other: vec![RawAttr {
                kind: IFLA_ADDRESS,
                payload: mac.to_vec(),
            }],
            ..LinkMsg::default()
        }
    }

    #[test]
    fn an_ethernet_link_that_does_arp_suits_and_its_mac_is_read() {
        let l = eth(IFF_UP, &[2, 0, 0, 0, 0, 1]);
        assert_eq!(unsuitable(&l), None);
        assert_eq!(mac_of(&l), Some([2, 0, 0, 0, 0, 1]));
        let noarp = eth(IFF_UP | IFF_NOARP, &[2, 0, 0, 0, 0, 1]);
        assert!(unsuitable(&noarp).unwrap().contains("NOARP"));
        let lo = LinkMsg {
            link_type: 772,
            ..eth(IFF_UP, &[0; 6])
        };
        assert!(unsuitable(&lo).unwrap().contains("type 772"));
        assert!(unsuitable(&eth(0, &[1, 2, 3])).unwrap().contains("6-byte"));
    }

    #[test]
    fn only_marked_global_host_addresses_of_the_link_are_ours() {
        let ours4 = marked_request(2, ip("10.0.0.100"));
        let ours6 = marked_request(2, ip("fd00::100"));
        let theirs = addr_request(2, ip("10.0.0.101"));
        let mut net = addr_request(2, ip("10.0.0.1"));
        net.prefix_len = 24;
        let mut marked_net = marked_request(2, ip("10.0.0.102"));
        marked_net.prefix_len = 24;
        let mut ll = marked_request(2, ip("fe80::1"));
        ll.scope = RT_SCOPE_LINK;
        let other_link = marked_request(3, ip("10.0.0.103"));
        // An address both ways: a marked /32 and an unmarked /24 of it.
        let mut shadow = addr_request(2, ip("10.0.0.104"));
        shadow.prefix_len = 24;
        let msgs = [
            ours4,
            ours6,
            theirs,
            net,
            marked_net,
            ll,
            other_link,
            marked_request(2, ip("10.0.0.104")),
            shadow,
        ];
        let got = link_addrs(&msgs, 2);
        let set = |a: &[&str]| a.iter().map(|a| ip(a)).collect::<BTreeSet<_>>();
        assert_eq!(got.marked, set(&["10.0.0.100", "fd00::100"]));
        assert_eq!(
            got.unmarked,
            set(&[
                "10.0.0.1",
                "10.0.0.101",
                "10.0.0.102",
                "10.0.0.104",
                "fe80::1"
            ])
        );
    }

    #[test]
    fn the_marked_request_is_the_dummy_request_with_ifa_proto() {
        let v4 = marked_request(2, ip("10.0.0.100"));
        assert_eq!(v4.proto, Some(VIP_PROTO));
        let mut bytes = addr_request(2, ip("10.0.0.100")).emit();
        // IFA_PROTO: length 5, type 11, the value, 3 bytes of padding.
        bytes.extend_from_slice(&[5, 0, 11, 0, VIP_PROTO, 0, 0, 0]);
        assert_eq!(v4.emit(), bytes);
        assert_eq!(AddrMsg::parse(&bytes).unwrap(), v4);
        let v6 = marked_request(2, ip("fd00::100"));
        assert_eq!(v6.all_flags, Some(IFA_F_NODAD));
        assert_eq!(classify(&v6, 2), Some((ip("fd00::100"), true)));
    }

    const NEW: u16 = NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE;

    #[test]
    fn the_marked_requests_are_the_bytes_the_kernel_took() {
        let cases = [
            (
                include_str!("../../tests/fixtures/netlink/rtnl-newaddr-v4-arp-request.hex"),
                0xd33c_dc2d,
                ip("10.0.0.100"),
            ),
            (
                include_str!("../../tests/fixtures/netlink/rtnl-newaddr-v6-arp-request.hex"),
                0x5928_a69e,
                ip("fd00::100"),
            ),
        ];
        for (text, seq, vip) in cases {
            let bytes = crate::netlink::message::tests::hex(text);
            let req = marked_request(2, vip);
            let mut out = Vec::new();
            emit_message(&mut out, RTM_NEWADDR, NEW, seq, &req.emit());
            assert_eq!(out, bytes, "{vip}");
            let m = split_messages(&bytes).unwrap();
            assert_eq!(AddrMsg::parse(m[0].payload).unwrap(), req);
        }
    }

    #[test]
    fn a_dump_of_the_shared_link_yields_clusterfs_marked_vips_and_the_rest() {
        let bytes = crate::netlink::message::fixture!("rtnl-getaddr-dump-reply-arp");
        let m = split_messages(&bytes).unwrap();
        assert_eq!(m.len(), 11);
        assert_eq!(m[10].header.kind, NLMSG_DONE);
        let msgs: Vec<AddrMsg> = m[..10]
            .iter()
            .map(|m| AddrMsg::parse(m.payload).unwrap())
            .collect();
        // The kernel's order is ours for IPv4, IFA_PROTO included.
        for (i, a) in msgs.iter().enumerate().take(5) {
            assert_eq!(a.emit(), m[i].payload, "message {i}");
        }
        assert_eq!(msgs[4].proto, Some(VIP_PROTO));
        assert_eq!(msgs[5].proto, Some(1), "::1: the kernel's loopback");
        let got = link_addrs(&msgs, 2);
        let set = |a: &[&str]| a.iter().map(|a| ip(a)).collect::<BTreeSet<_>>();
        assert_eq!(got.marked, set(&["10.0.0.100", "fd00::100"]));
        assert_eq!(
            got.unmarked,
            set(&[
                "10.0.0.1",
                "10.0.0.101",
                "10.0.0.102",
                "fd00::1",
                "fd00::101",
                "fe80::54d1:3dff:fe86:5d25"
            ])
        );
    }
}
