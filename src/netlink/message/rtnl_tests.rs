//! Route netlink byte fixtures (tests/fixtures/netlink/rtnl-*.hex): the
//! requests the VIP client sends emit to exactly these bytes and parse
//! back; the kernel's replies parse to the expected values, unknown
//! attributes kept.

use super::tests::hex;
use super::*;
use crate::netlink::rtnl::{VIP_ALIAS, addr_request, create_request, vip_of};

macro_rules! fixture {
    ($name:literal) => {
        hex(include_str!(concat!(
            "../../../tests/fixtures/netlink/",
            $name,
            ".hex"
        )))
    };
}

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
    assert_eq!(message(RTM_NEWLINK, NEW, 1, &req.emit()), bytes);
    let m = split_messages(&bytes).unwrap();
    assert_eq!(LinkMsg::parse(m[0].payload).unwrap(), req);
}

#[test]
fn the_alias_request_is_byte_exact_and_parses_back() {
    let bytes = fixture!("rtnl-setalias-request");
    let req = LinkMsg {
        index: 7,
        alias: Some(VIP_ALIAS.into()),
        ..LinkMsg::default()
    };
    let flags = NLM_F_REQUEST | NLM_F_ACK;
    assert_eq!(message(RTM_NEWLINK, flags, 2, &req.emit()), bytes);
    let m = split_messages(&bytes).unwrap();
    assert_eq!(LinkMsg::parse(m[0].payload).unwrap(), req);
}

#[test]
fn a_link_reply_gives_name_kind_and_alias_and_keeps_the_rest() {
    let bytes = fixture!("rtnl-getlink-reply");
    let m = split_messages(&bytes).unwrap();
    assert_eq!(m.len(), 1);
    let link = LinkMsg::parse(m[0].payload).unwrap();
    assert_eq!(link.index, 7);
    assert_eq!(link.name.as_deref(), Some("clusterf0"));
    assert_eq!(link.kind(), Some("dummy"));
    assert_eq!(link.alias.as_deref(), Some(VIP_ALIAS));
    assert_eq!(link.other.len(), 1);
    assert_eq!(link.other[0].id(), 4);
    assert_eq!(link.other[0].payload, 1500u32.to_ne_bytes());
    // Emitted in our order (name, alias, info, the rest), it parses to
    // the same value.
    assert_eq!(LinkMsg::parse(&link.emit()).unwrap(), link);
}

#[test]
fn address_requests_are_byte_exact_and_parse_back() {
    let v4 = "198.51.100.10".parse().unwrap();
    let v6 = "2001:db8::10".parse().unwrap();
    let cases = [
        (fixture!("rtnl-newaddr-v4-request"), RTM_NEWADDR, NEW, 4, v4),
        (fixture!("rtnl-newaddr-v6-request"), RTM_NEWADDR, NEW, 5, v6),
        (
            fixture!("rtnl-deladdr-v4-request"),
            RTM_DELADDR,
            NLM_F_REQUEST | NLM_F_ACK,
            6,
            v4,
        ),
    ];
    for (bytes, kind, flags, seq, vip) in cases {
        let req = addr_request(7, vip);
        assert_eq!(message(kind, flags, seq, &req.emit()), bytes, "{vip}");
        let m = split_messages(&bytes).unwrap();
        let back = AddrMsg::parse(m[0].payload).unwrap();
        assert_eq!(back, req);
        assert_eq!(vip_of(&back, 7), Some(vip));
    }
}

#[test]
fn the_address_dump_request_is_byte_exact() {
    let bytes = fixture!("rtnl-getaddr-dump-request");
    let flags = NLM_F_REQUEST | NLM_F_DUMP;
    assert_eq!(
        message(RTM_GETADDR, flags, 7, &AddrMsg::default().emit()),
        bytes
    );
}

#[test]
fn an_address_dump_yields_the_vip_and_not_the_link_local_address() {
    let bytes = fixture!("rtnl-getaddr-dump-reply");
    let m = split_messages(&bytes).unwrap();
    assert_eq!(m.len(), 3);
    assert_eq!(m[2].header.kind, NLMSG_DONE);
    let v4 = AddrMsg::parse(m[0].payload).unwrap();
    assert_eq!(v4.label.as_deref(), Some("clusterf0"));
    assert_eq!(v4.all_flags, Some(IFA_F_PERMANENT));
    assert_eq!(v4.other.len(), 1, "IFA_CACHEINFO kept");
    // The kernel's order is ours for IPv4: byte-exact both ways.
    assert_eq!(v4.emit(), m[0].payload);
    let ll = AddrMsg::parse(m[1].payload).unwrap();
    assert_eq!(ll.scope, RT_SCOPE_LINK);
    assert_eq!(AddrMsg::parse(&ll.emit()).unwrap(), ll);
    let vips: Vec<_> = [&v4, &ll].iter().filter_map(|a| vip_of(a, 7)).collect();
    assert_eq!(
        vips,
        vec!["198.51.100.10".parse::<std::net::IpAddr>().unwrap()]
    );
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
