//! Property tests of the netlink message parser and emitter: arbitrary bytes
//! never panic; whatever parses re-emits to a canonical form that parses to
//! the same value; typed messages and model values survive the round trip
//! through bytes; the lean dump parse and the direct request encoding agree
//! with the typed messages.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use clusterf::model::tunnel::Tunnel;
use clusterf::model::{DestAttrs, Family, Method, Op, Protocol, ServiceAttrs, ServiceKey};
use clusterf::netlink::message::*;
use clusterf::netlink::{dump, mapping};
use proptest::prelude::*;

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

/// Bytes that look like attributes: mostly well-formed headers with known
/// ids, so that the typed parsers get exercised, not just the framing.
fn attr_soup() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec((0u16..20, bytes(24), any::<bool>()), 0..12).prop_map(|attrs| {
        let mut out = Vec::new();
        for (kind, payload, nest) in attrs {
            if nest {
                // A nested service or dest holding the same soup of bytes.
                let mut inner = Vec::new();
                emit_attr(&mut inner, kind % 16, &payload);
                emit_attr(&mut out, 1 + (kind % 2), &inner);
            } else {
                emit_attr(&mut out, kind, &payload);
            }
        }
        out
    })
}

fn genl(cmd: u8, attrs: Vec<u8>) -> Vec<u8> {
    let mut p = vec![cmd, 1, 0, 0];
    p.extend(attrs);
    p
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(b in bytes(512)) {
        let _ = split_messages(&b);
        let _ = parse_attrs(&b);
        let _ = IpvsMsg::parse(&b);
        let _ = FamilyMsg::parse(&b);
        let _ = ErrorMsg::parse(0, &b);
        let _ = ErrorMsg::parse(NLM_F_CAPPED | NLM_F_ACK_TLVS, &b);
        let _ = ServiceMsg::parse(&b);
        let _ = DestMsg::parse(&b);
        let _ = DestMsg::parse_lean(&b);
        let _ = IpvsMsg::parse_dest_lean(&b);
        let _ = dump::walk(&b, 0, false, |_| Ok(()));
        let _ = dump::walk(&b, 0, true, |_| Ok(()));
    }

    #[test]
    fn dump_datagrams_never_panic(soups in prop::collection::vec((attr_soup(), 0u16..5, any::<bool>()), 0..6)) {
        // Messages of every kind and flag, as a dump reply might hold.
        let key: ServiceKey = "tcp://10.0.0.1:80".parse().unwrap();
        let mut d = Vec::new();
        for (soup, kind, multi) in soups {
            let flags = if multi { NLM_F_MULTI } else { 0 };
            emit_message(&mut d, if kind == 0 { 0x20 } else { kind }, flags, 7, &genl(IPVS_CMD_NEW_DEST, soup));
        }
        let mut table = dump::DestTable::default();
        let _ = dump::walk(&d, 7, false, |p| table.add(&key, p));
    }

    #[test]
    fn the_lean_dest_parse_is_the_full_one_without_counters(cmd in 0u8..20, soup in attr_soup()) {
        let p = genl(cmd, soup);
        if let Ok(full) = IpvsMsg::parse(&p)
            && let Body::Objects { dest, .. } = full.body
            && cmd != IPVS_CMD_GET_INFO && cmd != IPVS_CMD_SET_INFO
        {
            let lean = IpvsMsg::parse_dest_lean(&p).unwrap();
            let dest = dest.map(|mut d| {
                (d.stats, d.stats64) = (None, None);
                d
            });
            prop_assert_eq!(lean, dest);
        }
    }

    #[test]
    fn direct_encoding_matches_the_messages(key in service_key(), dest in socket_addr(), attrs in dest_attrs(), which in 0u8..3) {
        let op = match which {
            0 => Op::AddDest { service: key, dest, attrs },
            1 => Op::EditDest { service: key, dest, attrs },
            _ => Op::DelDest { service: key, dest },
        };
        let mut direct = Vec::new();
        mapping::encode_op(&op, &mut direct).unwrap();
        prop_assert_eq!(direct, mapping::op_request(&op).unwrap().emit());
    }

    #[test]
    fn whatever_parses_reemits_canonically(cmd in 0u8..20, soup in attr_soup()) {
        let p = genl(cmd, soup);
        if let Ok(m) = IpvsMsg::parse(&p) {
            let again = m.emit();
            prop_assert_eq!(IpvsMsg::parse(&again).unwrap(), m.clone());
            // Canonical bytes are a fixed point.
            prop_assert_eq!(IpvsMsg::parse(&again).unwrap().emit(), again);
            // Every service and dest that parses maps to the model or to an
            // error, never a panic.
            if let Body::Objects { service: Some(s), dest, .. } = &m.body
                && let Ok((key, _)) = mapping::service_from(s)
                && let Some(d) = dest
            {
                let _ = mapping::dest_from(&key, d);
            }
        }
    }

    #[test]
    fn datagrams_split_into_what_was_joined(payloads in prop::collection::vec(bytes(64), 0..8)) {
        let mut d = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            emit_message(&mut d, 0x20, NLM_F_REQUEST, i as u32, p);
        }
        let msgs = split_messages(&d).unwrap();
        prop_assert_eq!(msgs.len(), payloads.len());
        for (m, p) in msgs.iter().zip(&payloads) {
            prop_assert_eq!(m.payload, p.as_slice());
        }
    }

    #[test]
    fn services_survive_bytes(key in service_key(), attrs in service_attrs()) {
        let attrs = canonical(&key, attrs);
        let msg = mapping::service_full(&key, &attrs).unwrap();
        let req = IpvsMsg::request(IPVS_CMD_NEW_SERVICE, Some(msg), None);
        let back = IpvsMsg::parse(&req.emit()).unwrap();
        prop_assert_eq!(&back, &req);
        let Body::Objects { service: Some(s), .. } = back.body else { panic!("no service") };
        prop_assert_eq!(mapping::service_from(&s).unwrap(), (key, attrs));
    }

    #[test]
    fn dests_survive_bytes(key in service_key(), dest in socket_addr(), attrs in dest_attrs()) {
        let req = IpvsMsg::request(
            IPVS_CMD_NEW_DEST,
            Some(mapping::service_id(&key)),
            Some(mapping::dest_full(&dest, &attrs)),
        );
        let back = IpvsMsg::parse(&req.emit()).unwrap();
        prop_assert_eq!(&back, &req);
        let Body::Objects { dest: Some(d), .. } = back.body else { panic!("no dest") };
        let (a, at, _) = mapping::dest_from(&key, &d).unwrap();
        prop_assert_eq!((a, at), (dest, attrs));
    }
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|v| IpAddr::V4(Ipv4Addr::from(v))),
        any::<u128>().prop_map(|v| IpAddr::V6(Ipv6Addr::from(v))),
    ]
}

fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    (ip(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(ip, port))
}

fn service_key() -> impl Strategy<Value = ServiceKey> {
    prop_oneof![
        (
            prop_oneof![
                Just(Protocol::Tcp),
                Just(Protocol::Udp),
                Just(Protocol::Sctp)
            ],
            socket_addr()
        )
            .prop_map(|(protocol, addr)| ServiceKey::Addr { protocol, addr }),
        (prop_oneof![Just(Family::Ipv4), Just(Family::Ipv6)], 1u32..)
            .prop_map(|(family, mark)| ServiceKey::Fwmark { family, mark }),
    ]
}

fn service_attrs() -> impl Strategy<Value = ServiceAttrs> {
    (
        prop_oneof![Just("wlc"), Just("rr"), Just("sh"), Just("mh"), Just("wrr")],
        prop::option::of(1u32..=2_678_400),
        0u8..=128,
        prop::collection::vec(
            prop_oneof![
                Just("ops"),
                Just("flag-1"),
                Just("flag-2"),
                Just("flag-3"),
                Just("pe=sip")
            ],
            0..4,
        ),
    )
        .prop_map(|(s, p, mask, flags)| ServiceAttrs {
            scheduler: s.to_string(),
            persistence: p,
            netmask: Some(mask),
            flags: flags.into_iter().map(String::from).collect(),
        })
}

/// The form the kernel reads back: netmask only when persistent and not
/// the host mask, flags named for the scheduler, sorted, once each.
fn canonical(key: &ServiceKey, mut a: ServiceAttrs) -> ServiceAttrs {
    let max = key.family().max_prefix_len();
    a.netmask = match (a.persistence, a.netmask) {
        (Some(_), Some(m)) if m < max && !(key.family() == Family::Ipv6 && m == 0) => Some(m),
        _ => None,
    };
    a.flags = clusterf::model::flags::canonical_flags(&a.scheduler, &a.flags);
    a
}

fn dest_attrs() -> impl Strategy<Value = DestAttrs> {
    (
        prop_oneof![
            Just(Method::Masq),
            Just(Method::Droute),
            Just(Method::Tunnel)
        ],
        0u32..=i32::MAX as u32,
        any::<u32>(),
        any::<u32>(),
        // The kernel holds any encapsulation it is given (it checks only
        // gue's port), so any reads back; other methods' is ipip.
        (any::<u8>(), any::<u16>(), any::<u16>()),
    )
        .prop_map(
            |(method, weight, upper_threshold, lower_threshold, (kind, port, flags))| DestAttrs {
                method,
                weight,
                upper_threshold,
                lower_threshold,
                tunnel: match method {
                    Method::Tunnel => Tunnel { kind, port, flags },
                    _ => Tunnel::IPIP,
                },
            },
        )
}
