//! Route netlink byte fixtures (tests/fixtures/netlink/rtnl-*.hex, captured
//! from the real kernel in the VM): the requests the VIP client sends emit
//! to exactly these bytes and parse back; the kernel's replies parse to the
//! expected values, unknown attributes kept.

use super::*;
use crate::netlink::rtnl::{VIP_ALIAS, addr_request, create_request, vip_of};

fn message(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    emit_message(&mut out, kind, flags, seq, payload);
    out
}

const NEW: u16 = NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE;

#[test]
fn the_dummy_link_request_is_byte_exact_and_parses_back() {
    let bytes = fixture!("rtnl-newlink-dummy-request");
    let req = create_request("clusterf0");
    assert_eq!(message(RTM_NEWLINK, NEW, 0x501b11ce, &req.emit()), bytes);
    let m = split_messages(&bytes).unwrap();
    assert_eq!(LinkMsg::parse(m[0].payload).unwrap(), req);
}

#[test]
fn the_alias_request_is_byte_exact_and_parses_back() {
    let bytes = fixture!("rtnl-setalias-request");
    let req = LinkMsg {
        index: 3,
        alias: Some(VIP_ALIAS.into()),
        ..LinkMsg::default()
    };
    let flags = NLM_F_REQUEST | NLM_F_ACK;
    assert_eq!(message(RTM_NEWLINK, flags, 0x501b11d0, &req.emit()), bytes);
    let m = split_messages(&bytes).unwrap();
    assert_eq!(LinkMsg::parse(m[0].payload).unwrap(), req);
}

#[test]
fn the_link_request_by_name_is_byte_exact_and_an_absent_link_is_enodev() {
    let bytes = fixture!("rtnl-getlink-request");
    let req = LinkMsg {
        name: Some("clusterf0".into()),
        ..LinkMsg::default()
    };
    let flags = NLM_F_REQUEST | NLM_F_ACK;
    assert_eq!(message(RTM_GETLINK, flags, 0x501b11cd, &req.emit()), bytes);
    let reply = fixture!("rtnl-getlink-enodev");
    let m = split_messages(&reply).unwrap();
    assert_eq!(m[0].header.kind, NLMSG_ERROR);
    let e = ErrorMsg::parse(m[0].header.flags, m[0].payload).unwrap();
    assert_eq!(e.errno, 19, "ENODEV");
    assert_eq!(e.echoed, req.emit());
}

#[test]
fn a_link_reply_gives_name_kind_and_alias_and_keeps_the_rest() {
    let bytes = fixture!("rtnl-getlink-reply");
    let m = split_messages(&bytes).unwrap();
    assert_eq!(m.len(), 2);
    assert_eq!(m[1].header.kind, NLMSG_ERROR, "the ack");
    let link = LinkMsg::parse(m[0].payload).unwrap();
    assert_eq!(link.index, 3);
    assert_eq!(link.flags & IFF_UP, IFF_UP);
    assert_eq!(link.name.as_deref(), Some("clusterf0"));
    assert_eq!(link.kind(), Some("dummy"));
    assert_eq!(link.alias.as_deref(), Some(VIP_ALIAS));
    // IFLA_MTU among the attributes kept as they came.
    let mtu = link.other.iter().find(|a| a.id() == 4).unwrap();
    assert_eq!(mtu.payload, 1500u32.to_ne_bytes());
    assert!(link.other.len() > 20, "{}", link.other.len());
    // Emitted in our order (name, alias, info, the rest), it parses to
    // the same value and has the same length.
    assert_eq!(link.emit().len(), m[0].payload.len());
    assert_eq!(LinkMsg::parse(&link.emit()).unwrap(), link);
}

#[test]
fn address_requests_are_byte_exact_and_parse_back() {
    let v4 = "198.51.100.10".parse().unwrap();
    let v6 = "2001:db8::10".parse().unwrap();
    let cases = [
        (
            fixture!("rtnl-newaddr-v4-request"),
            RTM_NEWADDR,
            NEW,
            0x501b11d4,
            v4,
        ),
        (
            fixture!("rtnl-newaddr-v6-request"),
            RTM_NEWADDR,
            NEW,
            0x501b11d5,
            v6,
        ),
        (
            fixture!("rtnl-deladdr-v4-request"),
            RTM_DELADDR,
            NLM_F_REQUEST | NLM_F_ACK,
            0x501b11d6,
            v4,
        ),
    ];
    for (bytes, kind, flags, seq, vip) in cases {
        let req = addr_request(3, vip);
        assert_eq!(message(kind, flags, seq, &req.emit()), bytes, "{vip}");
        let m = split_messages(&bytes).unwrap();
        let back = AddrMsg::parse(m[0].payload).unwrap();
        assert_eq!(back, req);
        assert_eq!(vip_of(&back, 3), Some(vip));
    }
}

#[test]
fn the_address_dump_request_is_byte_exact() {
    let bytes = fixture!("rtnl-getaddr-dump-request");
    let flags = NLM_F_REQUEST | NLM_F_DUMP;
    assert_eq!(
        message(RTM_GETADDR, flags, 0x501b11d3, &AddrMsg::default().emit()),
        bytes
    );
}

#[test]
fn an_address_dump_yields_the_vips_of_the_link_and_nothing_else() {
    let bytes = fixture!("rtnl-getaddr-dump-reply");
    let m = split_messages(&bytes).unwrap();
    assert_eq!(m.len(), 6);
    assert_eq!(m[5].header.kind, NLMSG_DONE);
    let addrs: Vec<AddrMsg> = m[..5]
        .iter()
        .map(|m| AddrMsg::parse(m.payload).unwrap())
        .collect();
    let v4 = &addrs[1];
    assert_eq!(v4.label.as_deref(), Some("clusterf0"));
    assert_eq!(v4.all_flags, Some(IFA_F_PERMANENT));
    assert_eq!(v4.other.len(), 1, "IFA_CACHEINFO kept");
    // The kernel's order is ours for IPv4: byte-exact both ways.
    assert_eq!(v4.emit(), m[1].payload);
    let v6 = &addrs[3];
    assert_eq!(v6.all_flags, Some(IFA_F_PERMANENT | IFA_F_NODAD));
    for a in &addrs {
        assert_eq!(&AddrMsg::parse(&a.emit()).unwrap(), a);
    }
    // lo's addresses are another link's; the link-local one has scope
    // link.
    assert_eq!(addrs[4].scope, RT_SCOPE_LINK);
    let vips: Vec<std::net::IpAddr> = addrs.iter().filter_map(|a| vip_of(a, 3)).collect();
    let want: Vec<std::net::IpAddr> = vec![
        "198.51.100.10".parse().unwrap(),
        "2001:db8::10".parse().unwrap(),
    ];
    assert_eq!(vips, want);
}

#[test]
fn malformed_link_and_address_messages_are_errors_not_panics() {
    assert!(LinkMsg::parse(&[0; 15]).is_err());
    assert!(AddrMsg::parse(&[0; 7]).is_err());
    // IFA_ADDRESS of 5 bytes.
    let mut p = vec![2, 32, 0, 0, 7, 0, 0, 0];
    emit_attr(&mut p, IFA_ADDRESS, &[1, 2, 3, 4, 5]);
    let e = AddrMsg::parse(&p).unwrap_err();
    assert!(e.0.contains("IFA_ADDRESS: 5 bytes"), "{e}");
    // A repeated IFLA_IFNAME.
    let mut p = vec![0; 16];
    emit_string(&mut p, IFLA_IFNAME, "a");
    emit_string(&mut p, IFLA_IFNAME, "b");
    assert!(LinkMsg::parse(&p).unwrap_err().0.contains("repeated"));
}
