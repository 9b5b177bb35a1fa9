//! Address classes IPVS cannot use: the dest addresses the kernel refuses
//! (`ip_vs_new_dest` in net/netfilter/ipvs/ip_vs_ctl.c) and the frontend
//! addresses no packet is ever delivered to.
//!
//! The kernel's dest rule: an IPv4 dest must be of type `RTN_LOCAL` or
//! `RTN_UNICAST` (`inet_addr_type`, which calls 0.0.0.0/8 and
//! 255.255.255.255 broadcast and 224.0.0.0/4 multicast before it looks at
//! the routing table); an IPv6 dest must be unicast and not link-local
//! (`ipv6_addr_type`: `::` is "any", `ff00::/8` multicast, `::ffff:0:0/96`
//! "mapped", none of them unicast) unless it is an address of the host
//! itself. The checks here are the part of that rule that does not depend
//! on the host: a subnet's broadcast address (a route of type broadcast
//! in the local table) is refused by the kernel too and cannot be seen
//! from the config.
//!
//! Frontends: the kernel takes any service address, but IPVS only looks
//! at packets addressed to this host (`PACKET_HOST`), so a multicast or
//! broadcast frontend never matches; nothing is addressed to 0.0.0.0/8 or
//! `::` (the kernel drops such destinations as martians), and IPv4 traffic
//! arrives as IPv4, never on an IPv4-mapped IPv6 address.
//!
//! Invariant: pure; the address alone decides.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why the kernel refuses `ip` as a dest address, or `None` when it may
/// take it.
pub fn dest_refusal(ip: &IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => v4_class(a),
        IpAddr::V6(a) => v6_class(a).or_else(|| is_link_local(a).then_some("link-local")),
    }
}

/// Why no packet for frontend address `ip` ever reaches IPVS, or `None`.
pub fn frontend_refusal(ip: &IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => v4_class(a),
        IpAddr::V6(a) => v6_class(a),
    }
}

/// The IPv4 address the IPv4-mapped IPv6 address `ip` stands for.
pub fn mapped_ipv4(ip: &Ipv6Addr) -> Option<Ipv4Addr> {
    ip.to_ipv4_mapped()
}

fn v4_class(a: &Ipv4Addr) -> Option<&'static str> {
    if a.octets()[0] == 0 {
        Some(if a.is_unspecified() {
            "the unspecified address"
        } else {
            "in 0.0.0.0/8 (\"this network\")"
        })
    } else if a.is_broadcast() {
        Some("the broadcast address")
    } else if a.is_multicast() {
        Some("a multicast address")
    } else {
        None
    }
}

fn v6_class(a: &Ipv6Addr) -> Option<&'static str> {
    if a.is_unspecified() {
        Some("the unspecified address")
    } else if a.is_multicast() {
        Some("a multicast address")
    } else if a.to_ipv4_mapped().is_some() {
        Some("an IPv4-mapped IPv6 address")
    } else {
        None
    }
}

/// fe80::/10, as the kernel tests it.
fn is_link_local(a: &Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn dests_the_kernel_refuses_are_named() {
        for (addr, why) in [
            ("0.0.0.0", "the unspecified address"),
            ("0.1.2.3", "in 0.0.0.0/8 (\"this network\")"),
            ("255.255.255.255", "the broadcast address"),
            ("224.0.0.1", "a multicast address"),
            ("239.255.255.255", "a multicast address"),
            ("::", "the unspecified address"),
            ("ff02::1", "a multicast address"),
            ("fe80::1", "link-local"),
            ("febf:ffff::1", "link-local"),
            ("::ffff:10.0.0.1", "an IPv4-mapped IPv6 address"),
        ] {
            assert_eq!(dest_refusal(&ip(addr)), Some(why), "{addr}");
        }
        for addr in [
            "10.0.0.1",
            "1.0.0.0",
            "127.0.0.1",
            "223.255.255.255",
            "240.0.0.1",
            "10.0.0.255",
            "::1",
            "2001:db8::1",
            "fc00::1",
            "fec0::1",
            "fe7f::1",
            "fec0::1",
            "::10.0.0.1",
        ] {
            assert_eq!(dest_refusal(&ip(addr)), None, "{addr}");
        }
    }

    #[test]
    fn link_local_frontends_are_allowed_but_mapped_ones_are_not() {
        assert_eq!(frontend_refusal(&ip("fe80::1")), None);
        assert_eq!(
            frontend_refusal(&ip("::ffff:10.0.0.1")),
            Some("an IPv4-mapped IPv6 address")
        );
        assert_eq!(
            mapped_ipv4(&"::ffff:10.0.0.1".parse().unwrap()),
            Some(Ipv4Addr::new(10, 0, 0, 1))
        );
        assert_eq!(frontend_refusal(&ip("10.0.0.1")), None);
        assert_eq!(
            frontend_refusal(&ip("224.0.0.5")),
            Some("a multicast address")
        );
    }
}
