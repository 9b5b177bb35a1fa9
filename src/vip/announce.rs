//! Announcing a VIP on its segment (`--vip-mode arp`): the frames and when
//! to send them.
//!
//! - [`frames`]: for an IPv4 VIP, a gratuitous ARP request and a gratuitous
//!   ARP reply; for IPv6, an unsolicited neighbour advertisement. Whole
//!   Ethernet frames, for a packet socket.
//! - [`Schedule`]: when each VIP is announced: [`ROUNDS`] rounds [`GAP`]
//!   apart after it is added, and every VIP again every refresh interval
//!   (`--arp-refresh`, off by default).
//!
//! The frames, and why both ARP kinds:
//! - ARP request, sender = target = the VIP, target hardware address zero,
//!   to broadcast: RFC 5227's ARP announcement, what Linux itself sends
//!   (`arp_send` with no target hardware address), keepalived sends
//!   (`garp_master_repeat`) and `arping -U` sends.
//! - ARP reply, sender = target = the VIP, target hardware address = ours,
//!   to broadcast: what `arping -A` sends, for the neighbours that honour
//!   only replies. Linux takes a reply as gratuitous only when the two
//!   hardware addresses are equal (`arp_is_garp`).
//! - Neighbour advertisement (RFC 4861 7.2.6): from the VIP to ff02::1,
//!   hop limit 255, override set, solicited and router clear, with the
//!   target link-layer address option; what Linux's `ndisc_send_unsol_na`
//!   and keepalived's `vrrp_ndisc` send.
//!
//! A neighbour updates an entry it has (and makes none unless told to:
//! `arp_accept`, `accept_untracked_na`); that is all ARP mode needs, since
//! the VIP moved from another host is the entry to fix.
//!
//! Invariant: pure; no sockets, no clock (times are the caller's).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// A hardware address.
pub type Mac = [u8; 6];

/// Announcements per added VIP (`arping -c 3`; keepalived sends 5 at once,
/// then 5 more after 5 s).
pub const ROUNDS: u32 = 3;
/// Between two rounds.
pub const GAP: Duration = Duration::from_secs(1);

pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_IPV6: u16 = 0x86dd;
const BROADCAST: Mac = [0xff; 6];
/// ff02::1's multicast MAC (RFC 2464: 33:33 and the low 32 bits).
const ALL_NODES_MAC: Mac = [0x33, 0x33, 0, 0, 0, 1];
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ARPOP_REQUEST: u16 = 1;
const ARPOP_REPLY: u16 = 2;
const ICMPV6: u8 = 58;
const NEIGHBOR_ADVERTISEMENT: u8 = 136;
const NA_OVERRIDE: u8 = 0x20;
const OPT_TARGET_LLADDR: u8 = 2;

/// One frame to send: its ethertype (the packet socket's protocol) and
/// bytes, Ethernet header included.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub ethertype: u16,
    pub bytes: Vec<u8>,
}

/// The frames that announce `vip` at `mac`.
pub fn frames(mac: Mac, vip: IpAddr) -> Vec<Frame> {
    match vip {
        IpAddr::V4(v4) => vec![
            Frame {
                ethertype: ETH_P_ARP,
                bytes: garp(mac, v4, ARPOP_REQUEST),
            },
            Frame {
                ethertype: ETH_P_ARP,
                bytes: garp(mac, v4, ARPOP_REPLY),
            },
        ],
        IpAddr::V6(v6) => vec![Frame {
            ethertype: ETH_P_IPV6,
            bytes: unsolicited_na(mac, v6),
        }],
    }
}

fn ethernet(out: &mut Vec<u8>, dst: Mac, src: Mac, ethertype: u16) {
    out.extend_from_slice(&dst);
    out.extend_from_slice(&src);
    out.extend_from_slice(&ethertype.to_be_bytes());
}

/// A gratuitous ARP request or reply (42 bytes; the driver pads).
pub fn garp(mac: Mac, vip: Ipv4Addr, op: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(42);
    ethernet(&mut out, BROADCAST, mac, ETH_P_ARP);
    // Ethernet (1), IPv4, address lengths 6 and 4, the op.
    out.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
    out.extend_from_slice(&op.to_be_bytes());
    out.extend_from_slice(&mac);
    out.extend_from_slice(&vip.octets());
    let target_mac = if op == ARPOP_REPLY { mac } else { [0; 6] };
    out.extend_from_slice(&target_mac);
    out.extend_from_slice(&vip.octets());
    out
}

/// An unsolicited neighbour advertisement for `vip` (86 bytes).
pub fn unsolicited_na(mac: Mac, vip: Ipv6Addr) -> Vec<u8> {
    let mut icmp = Vec::with_capacity(32);
    icmp.extend_from_slice(&[NEIGHBOR_ADVERTISEMENT, 0, 0, 0]);
    icmp.extend_from_slice(&[NA_OVERRIDE, 0, 0, 0]);
    icmp.extend_from_slice(&vip.octets());
    icmp.extend_from_slice(&[OPT_TARGET_LLADDR, 1]);
    icmp.extend_from_slice(&mac);
    let sum = icmpv6_checksum(vip, ALL_NODES, &icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut out = Vec::with_capacity(86);
    ethernet(&mut out, ALL_NODES_MAC, mac, ETH_P_IPV6);
    // Version 6, no traffic class or flow label.
    out.extend_from_slice(&[0x60, 0, 0, 0]);
    out.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    out.extend_from_slice(&[ICMPV6, 255]);
    out.extend_from_slice(&vip.octets());
    out.extend_from_slice(&ALL_NODES.octets());
    out.extend_from_slice(&icmp);
    out
}

/// The ICMPv6 checksum (RFC 4443 2.3) of `msg` (its checksum field zero)
/// from `src` to `dst`: the one's complement of the one's complement sum
/// over the pseudo-header (RFC 8200 8.1) and the message.
pub fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> u16 {
    let mut pseudo = Vec::with_capacity(40);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, ICMPV6]);
    !fold(sum16(&pseudo) + sum16(msg))
}

fn sum16(b: &[u8]) -> u32 {
    b.chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// When each VIP is announced. Times are the caller's clock (a
/// `Duration` since some start).
#[derive(Clone, Debug, Default)]
pub struct Schedule {
    refresh: Option<Duration>,
    /// The VIPs on the interface that are ours: what a refresh announces,
    /// and the only ones a pending round still goes out for.
    current: BTreeSet<IpAddr>,
    /// Pending rounds: when, and the VIPs due then.
    pending: BTreeMap<Duration, BTreeSet<IpAddr>>,
    next_refresh: Option<Duration>,
}

impl Schedule {
    /// Every VIP again every `refresh` (`None`: only when added).
    pub fn new(refresh: Option<Duration>) -> Schedule {
        Schedule {
            refresh: refresh.filter(|r| !r.is_zero()),
            ..Schedule::default()
        }
    }

    /// `vip` was just added at `now`: [`ROUNDS`] rounds, the first now.
    pub fn added(&mut self, vip: IpAddr, now: Duration) {
        self.current.insert(vip);
        for i in 0..ROUNDS {
            let at = now + GAP * i;
            self.pending.entry(at).or_default().insert(vip);
        }
        if self.next_refresh.is_none() {
            self.next_refresh = self.refresh.map(|r| now + r);
        }
    }

    /// The VIPs that are ours now (read, added, removed, withdrawn): a VIP
    /// no longer among them is not announced again.
    pub fn current(&mut self, vips: BTreeSet<IpAddr>, now: Duration) {
        self.pending.retain(|_, due| {
            due.retain(|v| vips.contains(v));
            !due.is_empty()
        });
        self.current = vips;
        if self.current.is_empty() {
            self.next_refresh = None;
        } else if self.next_refresh.is_none() {
            self.next_refresh = self.refresh.map(|r| now + r);
        }
    }

    /// `vip` was just removed: not announced again.
    pub fn removed(&mut self, vip: IpAddr) {
        self.current.remove(&vip);
        self.pending.retain(|_, due| {
            due.remove(&vip);
            !due.is_empty()
        });
        if self.current.is_empty() {
            self.next_refresh = None;
        }
    }

    /// The VIPs to announce at `now`, once each; the rounds due are done.
    pub fn due(&mut self, now: Duration) -> BTreeSet<IpAddr> {
        let later = self.pending.split_off(&(now + Duration::from_nanos(1)));
        let mut out: BTreeSet<IpAddr> = std::mem::replace(&mut self.pending, later)
            .into_values()
            .flatten()
            .collect();
        if let (Some(at), Some(every)) = (self.next_refresh, self.refresh)
            && now >= at
        {
            out.extend(self.current.iter().copied());
            self.next_refresh = Some(now + every);
        }
        out
    }

    /// When the next announcement is due, if any.
    pub fn next_at(&self) -> Option<Duration> {
        let round = self.pending.keys().next().copied();
        match (round, self.next_refresh) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: Mac = [0x02, 0x00, 0x5e, 0x10, 0x20, 0x30];
    const S: fn(u64) -> Duration = Duration::from_secs;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_gratuitous_arp_request_is_an_rfc_5227_announcement_byte_for_byte() {
        let f = garp(MAC, "10.0.0.100".parse().unwrap(), ARPOP_REQUEST);
        let want = hex("ffffffffffff 02005e102030 0806 \
             0001 0800 06 04 0001 02005e102030 0a000064 000000000000 0a000064");
        assert_eq!(f, want);
    }

    #[test]
    fn a_gratuitous_arp_reply_names_our_mac_as_the_target_too() {
        let f = garp(MAC, "10.0.0.100".parse().unwrap(), ARPOP_REPLY);
        let want = hex("ffffffffffff 02005e102030 0806 \
             0001 0800 06 04 0002 02005e102030 0a000064 02005e102030 0a000064");
        assert_eq!(f, want);
    }

    #[test]
    fn an_unsolicited_neighbour_advertisement_is_byte_exact_with_its_checksum() {
        let vip: Ipv6Addr = "fd00::100".parse().unwrap();
        let f = unsolicited_na(MAC, vip);
        // The checksum, 0xda5d, computed apart (Python's struct over the
        // pseudo-header and the message).
        let want = hex("333300000001 02005e102030 86dd \
             60000000 0020 3a ff fd000000000000000000000000000100 ff020000000000000000000000000001 \
             88 00 da5d 20000000 fd000000000000000000000000000100 02 01 02005e102030");
        assert_eq!(f, want);
        // A receiver's check: the sum over pseudo-header and message,
        // checksum included, folds to 0xffff.
        let icmp = &f[54..];
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&f[22..54]);
        pseudo.extend_from_slice(&(icmp.len() as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 58]);
        assert_eq!(fold(sum16(&pseudo) + sum16(icmp)), 0xffff);
    }

    #[test]
    fn an_odd_length_is_summed_as_if_padded_with_a_zero_byte() {
        assert_eq!(sum16(&[1, 2, 3]), sum16(&[1, 2, 3, 0]));
        assert_eq!(sum16(&[1, 2, 3]), 0x0102 + 0x0300);
        assert_eq!(fold(0x1_fffe), 0xffff);
    }

    #[test]
    fn ipv4_gets_a_request_and_a_reply_ipv6_one_advertisement() {
        let v4 = frames(MAC, ip("10.0.0.100"));
        assert_eq!(v4.len(), 2);
        assert!(v4.iter().all(|f| f.ethertype == ETH_P_ARP));
        assert_eq!(v4[0].bytes[21], 1);
        assert_eq!(v4[1].bytes[21], 2);
        let v6 = frames(MAC, ip("fd00::100"));
        assert_eq!(v6.len(), 1);
        assert_eq!(v6[0].ethertype, ETH_P_IPV6);
        assert_eq!(v6[0].bytes.len(), 86);
    }

    #[test]
    fn an_added_vip_is_announced_three_times_a_second_apart() {
        let mut s = Schedule::new(None);
        assert_eq!(s.next_at(), None);
        let v = ip("10.0.0.100");
        s.added(v, S(10));
        let mut sent = Vec::new();
        let mut now = S(10);
        while let Some(at) = s.next_at() {
            now = now.max(at);
            if !s.due(now).is_empty() {
                sent.push(now);
            }
        }
        assert_eq!(sent, vec![S(10), S(11), S(12)]);
    }

    #[test]
    fn a_vip_removed_before_its_rounds_are_done_is_not_announced_again() {
        let mut s = Schedule::new(None);
        let (a, b) = (ip("10.0.0.100"), ip("fd00::100"));
        s.added(a, S(0));
        s.added(b, S(0));
        assert_eq!(s.due(S(0)), [a, b].into());
        s.removed(a);
        assert_eq!(s.due(S(1)), [b].into());
        s.current(BTreeSet::new(), S(1));
        assert_eq!(s.next_at(), None);
        assert!(s.due(S(5)).is_empty());
    }

    #[test]
    fn with_a_refresh_every_vip_of_ours_is_announced_again_each_interval() {
        let mut s = Schedule::new(Some(S(30)));
        let (a, b) = (ip("10.0.0.100"), ip("10.0.0.101"));
        // A start that finds both in place: no round, but refreshes.
        s.current([a, b].into(), S(0));
        assert_eq!(s.next_at(), Some(S(30)));
        assert!(s.due(S(29)).is_empty());
        assert_eq!(s.due(S(30)), [a, b].into());
        assert_eq!(s.next_at(), Some(S(60)));
        s.current([a].into(), S(40));
        assert_eq!(s.due(S(60)), [a].into());
        // Withdrawn: nothing more.
        s.current(BTreeSet::new(), S(70));
        assert_eq!(s.next_at(), None);
    }

    #[test]
    fn without_a_refresh_a_vip_found_in_place_is_not_announced() {
        let mut s = Schedule::new(Some(Duration::ZERO));
        s.current([ip("10.0.0.100")].into(), S(0));
        assert_eq!(s.next_at(), None);
        assert!(s.due(S(1000)).is_empty());
    }
}
