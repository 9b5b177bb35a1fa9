//! Byte fixtures captured from the real kernel (tests/fixtures/netlink/),
//! checked in both directions: parse to the expected values, and emit
//! back to the same bytes.

use super::*;
use crate::model::{DestAttrs, Method, Op, ServiceAttrs, ServiceKey};
use crate::netlink::{error, mapping};

/// Hex bytes with `#` comments.
pub(crate) fn hex(text: &str) -> Vec<u8> {
    let digits: String = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| l.chars().filter(|c| !c.is_whitespace()))
        .collect();
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

/// Re-emits every message of a datagram from its parsed form.
fn reemit(bytes: &[u8], payload: impl Fn(&Header, &[u8]) -> Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    for m in split_messages(bytes).unwrap() {
        let p = payload(&m.header, m.payload);
        let start = out.len();
        emit_message(&mut out, m.header.kind, m.header.flags, m.header.seq, &p);
        out[start + 12..start + 16].copy_from_slice(&m.header.pid.to_ne_bytes());
    }
    out
}

fn ipvs_reemit(bytes: &[u8]) -> Vec<u8> {
    reemit(bytes, |h, p| match h.kind {
        NLMSG_DONE => p.to_vec(),
        _ => IpvsMsg::parse(p).unwrap().emit(),
    })
}

fn objects(bytes: &[u8]) -> Vec<(Option<ServiceMsg>, Option<DestMsg>)> {
    split_messages(bytes)
        .unwrap()
        .iter()
        .map(|m| match IpvsMsg::parse(m.payload).unwrap().body {
            Body::Objects { service, dest, .. } => (service, dest),
            Body::Info(_) => panic!("info in a dump"),
        })
        .collect()
}

#[test]
fn family_resolution_both_ways() {
    let req = fixture!("ctrl-getfamily-request");
    let mut ours = Vec::new();
    emit_message(
        &mut ours,
        GENL_ID_CTRL,
        NLM_F_REQUEST,
        0xd67cbaa9,
        &FamilyMsg::get(IPVS_GENL_NAME).emit(),
    );
    assert_eq!(ours, req);

    let reply = fixture!("ctrl-newfamily-reply");
    let msgs = split_messages(&reply).unwrap();
    assert_eq!(msgs.len(), 1);
    let fam = FamilyMsg::parse(msgs[0].payload).unwrap();
    assert_eq!(fam.cmd, CTRL_CMD_NEWFAMILY);
    assert_eq!(fam.id, Some(0x20));
    assert_eq!(fam.name.as_deref(), Some("IPVS"));
    assert_eq!(fam.version, Some(1));
    // HDRSIZE, MAXATTR, OPS: unknown to clusterf, kept.
    assert_eq!(fam.other.len(), 3);
    let back = reemit(&reply, |_, p| FamilyMsg::parse(p).unwrap().emit());
    assert_eq!(back, reply);
}

#[test]
fn info_both_ways() {
    let req = fixture!("get-info-request");
    let mut ours = Vec::new();
    let get = IpvsMsg::request(IPVS_CMD_GET_INFO, None, None);
    emit_message(&mut ours, 0x20, NLM_F_REQUEST, 0xd67cbaaa, &get.emit());
    assert_eq!(ours, req);

    let reply = fixture!("set-info-reply");
    let m = IpvsMsg::parse(split_messages(&reply).unwrap()[0].payload).unwrap();
    assert_eq!(m.cmd, IPVS_CMD_SET_INFO);
    assert_eq!(
        m.body,
        Body::Info(InfoMsg {
            version: Some(0x010201),
            conn_tab_size: Some(4096),
            other: vec![],
        })
    );
    assert_eq!(ipvs_reemit(&reply), reply);
}

#[test]
fn service_dump_both_ways() {
    let req = fixture!("get-service-dump-request");
    let mut ours = Vec::new();
    let get = IpvsMsg::request(IPVS_CMD_GET_SERVICE, None, None);
    emit_message(
        &mut ours,
        0x20,
        NLM_F_REQUEST | NLM_F_DUMP,
        0xd67cbaab,
        &get.emit(),
    );
    assert_eq!(ours, req);

    let reply = fixture!("service-dump-reply");
    assert_eq!(ipvs_reemit(&reply), reply);
    let services: Vec<(ServiceKey, ServiceAttrs)> = objects(&reply)
        .into_iter()
        .map(|(s, d)| {
            assert!(d.is_none());
            mapping::service_from(&s.unwrap()).unwrap()
        })
        .collect();
    let attrs = |sched: &str, p: Option<u32>, mask: Option<u8>, flags: &[&str]| ServiceAttrs {
        scheduler: sched.into(),
        persistence: p,
        netmask: mask,
        flags: flags.iter().map(|f| f.to_string()).collect(),
    };
    let want = vec![
        ("tcp://10.107.107.107:1337", attrs("wlc", None, None, &[])),
        ("udp://10.0.0.2:53", attrs("rr", None, None, &[])),
        (
            "udp://[2001:db8::1]:443",
            attrs("sh", Some(300), Some(64), &["ops", "sh-port"]),
        ),
        ("fwmark://7", attrs("wrr", Some(60), Some(24), &[])),
        ("fwmark6://9", attrs("mh", None, None, &["mh-fallback"])),
    ];
    let want: Vec<(ServiceKey, ServiceAttrs)> = want
        .into_iter()
        .map(|(k, a)| (k.parse().unwrap(), a))
        .collect();
    assert_eq!(services, want);

    // The raw fields the mapping relies on.
    let (s, _) = &objects(&reply)[2];
    let s = s.as_ref().unwrap();
    assert_eq!(s.port, Some(443));
    assert_eq!(s.netmask, Some(64u32.to_ne_bytes()));
    assert_eq!(
        s.flags,
        Some(SvcFlags {
            flags: IP_VS_SVC_F_PERSISTENT
                | IP_VS_SVC_F_HASHED
                | IP_VS_SVC_F_ONEPACKET
                | IP_VS_SVC_F_SCHED2,
            mask: !0
        })
    );
    assert_eq!(s.stats.as_ref().map(|s| s.conns()), Some(0));
    assert!(s.stats64.is_some());

    let done = fixture!("done");
    let m = split_messages(&done).unwrap();
    assert_eq!((m.len(), m[0].header.kind), (1, NLMSG_DONE));
}

#[test]
fn dest_dump_both_ways() {
    let key: ServiceKey = "tcp://10.107.107.107:1337".parse().unwrap();
    let req = fixture!("get-dest-dump-request");
    let mut ours = Vec::new();
    let get = IpvsMsg::request(IPVS_CMD_GET_DEST, Some(mapping::service_id(&key)), None);
    emit_message(
        &mut ours,
        0x20,
        NLM_F_REQUEST | NLM_F_DUMP,
        0xd67cbaac,
        &get.emit(),
    );
    assert_eq!(ours, req);

    let reply = fixture!("dest-dump-reply");
    assert_eq!(ipvs_reemit(&reply), reply);
    // The lean parse is the full one without the counters.
    for m in split_messages(&reply).unwrap() {
        let Body::Objects {
            dest: Some(mut full),
            ..
        } = IpvsMsg::parse(m.payload).unwrap().body
        else {
            panic!("no dest")
        };
        assert!(full.stats.is_some() && full.stats64.is_some());
        (full.stats, full.stats64) = (None, None);
        assert_eq!(IpvsMsg::parse_dest_lean(m.payload).unwrap(), Some(full));
    }
    let dests: Vec<_> = objects(&reply)
        .into_iter()
        .map(|(_, d)| {
            let (a, attrs, _) = mapping::dest_from(&key, &d.unwrap()).unwrap();
            (a.to_string(), attrs)
        })
        .collect();
    assert_eq!(
        dests,
        vec![
            (
                "10.3.107.2:1338".to_string(),
                DestAttrs::new(Method::Masq, 20)
            ),
            (
                "10.3.107.1:1337".to_string(),
                DestAttrs::new(Method::Masq, 10)
            ),
        ]
    );

    let v6: ServiceKey = "udp://[2001:db8::1]:443".parse().unwrap();
    let reply = fixture!("dest-dump-reply-ipv6-tunnel");
    assert_eq!(ipvs_reemit(&reply), reply);
    let (_, d) = objects(&reply).remove(0);
    let d = d.unwrap();
    assert_eq!((d.addr_family, d.tun_type), (Some(AF_INET6), Some(0)));
    let (a, attrs, _) = mapping::dest_from(&v6, &d).unwrap();
    assert_eq!(a.to_string(), "[2001:db8::2]:443");
    assert_eq!(attrs, DestAttrs::new(Method::Tunnel, 3));
}

/// A GUE dest as the kernel reports it: its type, port (network order)
/// and flags read into the dest's tunnel, and the attributes clusterf sends
/// for it are the kernel's own, in its order.
#[test]
fn a_gue_dest_reads_with_its_encapsulation_and_is_sent_the_same() {
    use crate::model::tunnel::{TUN_FLAG_REMCSUM, TUN_TYPE_GUE, Tunnel};
    let key: ServiceKey = "udp://192.0.2.53:53".parse().unwrap();
    let reply = fixture!("dest-dump-reply-gue");
    assert_eq!(ipvs_reemit(&reply), reply);
    let (_, d) = objects(&reply).remove(0);
    let d = d.unwrap();
    assert_eq!(
        (d.tun_type, d.tun_port, d.tun_flags),
        (Some(1), Some(6080), Some(2))
    );
    let (a, attrs, _) = mapping::dest_from(&key, &d).unwrap();
    assert_eq!(a.to_string(), "10.8.0.1:53");
    let gue = Tunnel {
        kind: TUN_TYPE_GUE,
        port: 6080,
        flags: TUN_FLAG_REMCSUM,
    };
    assert_eq!(
        attrs,
        DestAttrs {
            tunnel: gue,
            ..DestAttrs::new(Method::Tunnel, 3)
        }
    );
    // Sent back (SET_DEST), the dest's attributes are the reply's, less
    // the counters the kernel adds.
    let sent = mapping::dest_full(&a, &attrs);
    let mut echo = d.clone();
    echo.active_conns = None;
    echo.inact_conns = None;
    echo.persist_conns = None;
    (echo.stats, echo.stats64) = (None, None);
    assert_eq!(sent, echo);
    let op = Op::EditDest {
        service: key,
        dest: a,
        attrs,
    };
    let mut direct = Vec::new();
    mapping::encode_op(&op, &mut direct).unwrap();
    assert_eq!(direct, mapping::op_request(&op).unwrap().emit());
}

#[test]
fn apply_requests_match_the_kernel_capture() {
    use crate::netlink::pipeline;
    let service: ServiceKey = "tcp://198.51.100.10:80".parse().unwrap();
    let add_service = Op::AddService {
        service,
        attrs: ServiceAttrs::with_scheduler("wrr"),
    };
    let add_dest = Op::AddDest {
        service,
        dest: "10.107.107.6:80".parse().unwrap(),
        attrs: DestAttrs::new(Method::Droute, 20),
    };
    let payloads = pipeline::encode_all(&[add_service, add_dest]);
    assert_eq!(
        pipeline::batch_bytes(0x20, &payloads, &[0], 0x913c98d4),
        fixture!("new-service-request")
    );
    let want = fixture!("new-dest-request");
    let seq = Header::parse(&want).unwrap().seq;
    assert_eq!(
        pipeline::batch_bytes(0x20, &payloads, &[1], seq.wrapping_sub(1)),
        want
    );
    // And back: the request parses to what was meant.
    let m = IpvsMsg::parse(split_messages(&want).unwrap()[0].payload).unwrap();
    let Body::Objects {
        service: Some(s),
        dest: Some(d),
        ..
    } = m.body
    else {
        panic!("no service and dest")
    };
    assert_eq!(mapping::service_key(&s).unwrap(), service);
    let (addr, attrs, _) = mapping::dest_from(&service, &d).unwrap();
    assert_eq!(
        (addr.to_string(), attrs),
        ("10.107.107.6:80".into(), DestAttrs::new(Method::Droute, 20))
    );
}

fn error_of(bytes: &[u8]) -> ErrorMsg {
    let m = split_messages(bytes).unwrap()[0];
    assert_eq!(m.header.kind, NLMSG_ERROR);
    let e = ErrorMsg::parse(m.header.flags, m.payload).unwrap();
    assert_eq!(e.flags(), m.header.flags, "flags derive from the content");
    assert_eq!(e.emit(), m.payload, "emits back to the same bytes");
    e
}

#[test]
fn acks_and_errors_match_the_kernel_capture() {
    let ack = error_of(&fixture!("ack"));
    assert_eq!((ack.errno, ack.request.seq), (0, 0x913c98d4));
    assert_eq!(ack.request.len, 0x68);
    assert!(ack.echoed.is_empty());

    let e = error_of(&fixture!("error-enoent-new-service"));
    assert_eq!(e.errno, error::ENOENT);
    // The whole request is echoed; it is the NEW_SERVICE with "nope".
    let req = IpvsMsg::parse(&e.echoed).unwrap();
    assert_eq!(req.cmd, IPVS_CMD_NEW_SERVICE);
    let Body::Objects {
        service: Some(s), ..
    } = req.body
    else {
        panic!("no service echoed")
    };
    let (key, attrs) = mapping::service_from(&s).unwrap();
    let op = Op::AddService {
        service: key,
        attrs,
    };
    assert_eq!(
        error::describe_failure(&op, e.errno, e.ext_msg.as_deref()),
        "service tcp://198.51.100.1:80: scheduler \"nope\" is not available in this kernel (no module ip_vs_nope)"
    );

    let e = error_of(&fixture!("error-esrch-new-dest"));
    assert_eq!(e.errno, error::ESRCH);
    assert_eq!(IpvsMsg::parse(&e.echoed).unwrap().cmd, IPVS_CMD_NEW_DEST);
}

#[test]
fn malformed_input_is_an_error() {
    // Attribute longer than its buffer.
    assert!(parse_attrs(&[8, 0, 1, 0, 0]).is_err());
    // Attribute shorter than its header.
    assert!(parse_attrs(&[2, 0, 1, 0]).is_err());
    // Wrong widths.
    let mut b = Vec::new();
    emit_attr(&mut b, IPVS_SVC_ATTR_PORT, &[1, 2, 3]);
    assert!(ServiceMsg::parse(&b).is_err());
    // Repeated attribute.
    let mut b = Vec::new();
    emit_attr(&mut b, IPVS_SVC_ATTR_AF, &2u16.to_ne_bytes());
    emit_attr(&mut b, IPVS_SVC_ATTR_AF, &2u16.to_ne_bytes());
    assert!(ServiceMsg::parse(&b).is_err());
    // Message length beyond the datagram.
    let mut m = fixture!("done");
    m[0] = 0xff;
    assert!(split_messages(&m).is_err());
    assert!(split_messages(&m[..10]).is_err());
    assert!(ErrorMsg::parse(0, &[0; 8]).is_err());
}

#[test]
fn unknown_attributes_are_kept_and_emitted() {
    let svc = ServiceMsg {
        af: Some(AF_INET),
        other: vec![RawAttr {
            kind: 99,
            payload: vec![1, 2, 3],
        }],
        ..ServiceMsg::default()
    };
    let msg = IpvsMsg {
        cmd: IPVS_CMD_NEW_SERVICE,
        version: 1,
        body: Body::Objects {
            service: Some(svc),
            dest: None,
            other: vec![RawAttr {
                kind: 77,
                payload: vec![],
            }],
        },
    };
    let bytes = msg.emit();
    assert_eq!(IpvsMsg::parse(&bytes).unwrap(), msg);
}

#[test]
fn errors_and_acks_both_ways() {
    let request = Header {
        len: 68,
        kind: 0x20,
        flags: NLM_F_REQUEST | NLM_F_ACK,
        seq: 9,
        pid: 0,
    };
    for e in [
        ErrorMsg {
            errno: 0,
            request,
            echoed: vec![],
            ext_msg: None,
            other: vec![],
        },
        ErrorMsg {
            errno: 17,
            request,
            echoed: vec![5, 1, 0, 0],
            ext_msg: Some("nope".into()),
            other: vec![],
        },
    ] {
        let p = e.emit();
        let mut back = ErrorMsg::parse(e.flags(), &p).unwrap();
        if back.echoed.is_empty() {
            back.request.len = request.len;
        }
        assert_eq!(back.errno, e.errno);
        assert_eq!(back.ext_msg, e.ext_msg);
        assert_eq!(back.echoed, e.echoed);
        assert_eq!(back.request.seq, 9);
    }
}
