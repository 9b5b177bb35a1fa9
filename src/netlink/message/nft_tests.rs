//! nf_tables byte fixtures (tests/fixtures/netlink/nft-*.hex, captured from
//! the real kernel in the VM): the requests the DNAT client sends emit to
//! exactly these bytes and parse back; the kernel's replies and dumps
//! parse to the values clusterf wrote, unknown attributes kept, and read
//! as clusterf's table with its rules.

use std::net::SocketAddr;

use super::*;
use crate::dnat::{self, Action, Current, Layout, Rules, Step, steps};
use crate::model::Protocol;
use crate::netlink::nft::{batch, current, generation_request, requests, step_exprs, step_of};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The scenario's rules: each VIP:80 to two containers, 3:1.
fn scenario_rules() -> Rules {
    let mut r = Rules::new();
    for (vip, a, b) in [
        ("198.51.100.10:80", "172.17.0.2:8080", "172.17.0.3:8080"),
        (
            "[2001:db8::10]:80",
            "[fd00:17::2]:8080",
            "[fd00:17::3]:8080",
        ),
    ] {
        let to = r.entry((Protocol::Tcp, sa(vip))).or_default();
        to.insert(sa(a), 3);
        to.insert(sa(b), 1);
    }
    r
}

fn message(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    emit_message(&mut out, kind, flags, seq, payload);
    out
}

#[test]
fn the_create_batch_is_byte_exact_and_its_rules_read_back() {
    let bytes = fixture!("nft-batch-create");
    let msgs = split_messages(&bytes).unwrap();
    let plan = dnat::plan(&scenario_rules(), &Current::Absent).unwrap();
    assert_eq!(plan.action, Action::Create);
    assert_eq!(batch(&requests(&plan), msgs[0].header.seq), bytes);
    let kinds: Vec<u16> = msgs.iter().map(|m| m.header.kind).collect();
    let rule = nft_type(NFT_MSG_NEWRULE);
    let mut want = vec![NFNL_MSG_BATCH_BEGIN, nft_type(NFT_MSG_NEWTABLE)];
    want.extend([nft_type(NFT_MSG_NEWCHAIN); 3]);
    want.extend([rule; 6]);
    want.push(NFNL_MSG_BATCH_END);
    assert_eq!(kinds, want);
    let table = TableMsg::parse(msgs[1].payload).unwrap();
    assert_eq!(table.comment().as_deref(), Some(dnat::TABLE_COMMENT));
    let read: Vec<Step> = msgs[7..11]
        .iter()
        .map(|m| step_of(&RuleMsg::parse(m.payload).unwrap().exprs).unwrap())
        .collect();
    assert_eq!(read, plan.steps);
    for m in &msgs[1..11] {
        let (r, t, c) = (
            RuleMsg::parse(m.payload),
            TableMsg::parse(m.payload),
            ChainMsg::parse(m.payload),
        );
        match nft_cmd(m.header.kind) {
            Some(NFT_MSG_NEWRULE) => assert_eq!(r.unwrap().emit(), m.payload),
            Some(NFT_MSG_NEWTABLE) => assert_eq!(t.unwrap().emit(), m.payload),
            _ => assert_eq!(c.unwrap().emit(), m.payload),
        }
    }
    assert!(
        msgs.iter().all(|m| m.header.flags & NLM_F_ACK == 0),
        "no acks asked: only refusals come back"
    );
}

#[test]
fn the_table_query_is_byte_exact_and_an_absent_table_is_enoent() {
    let bytes = fixture!("nft-gettable-request");
    let q = TableMsg {
        family: NFPROTO_INET,
        name: Some(dnat::TABLE.into()),
        ..TableMsg::default()
    };
    let seq = Header::parse(&bytes).unwrap().seq;
    let kind = nft_type(NFT_MSG_GETTABLE);
    assert_eq!(
        message(kind, NLM_F_REQUEST | NLM_F_ACK, seq, &q.emit()),
        bytes
    );
    let reply = fixture!("nft-gettable-enoent");
    let m = &split_messages(&reply).unwrap()[0];
    let e = ErrorMsg::parse(m.header.flags, m.payload).unwrap();
    assert_eq!(e.errno, 2, "ENOENT");
    assert_eq!(e.echoed, q.emit());
}

#[test]
fn the_generation_request_is_byte_exact_and_its_reply_gives_the_id() {
    let bytes = fixture!("nft-getgen-request");
    let seq = Header::parse(&bytes).unwrap().seq;
    let kind = nft_type(NFT_MSG_GETGEN);
    let flags = NLM_F_REQUEST | NLM_F_ACK;
    assert_eq!(message(kind, flags, seq, &generation_request()), bytes);
    let reply = fixture!("nft-newgen-reply");
    let m = split_messages(&reply).unwrap();
    assert_eq!(m[0].header.kind, nft_type(NFT_MSG_NEWGEN));
    assert_eq!(parse_gen_id(m[0].payload).unwrap(), Some(2));
    assert_eq!(m[1].header.kind, NLMSG_ERROR, "the ack");
}

/// The kernel's table, chains (all of the family's: the other tables'
/// too) and rules, parsed.
fn dumps() -> (TableMsg, Vec<ChainMsg>, Vec<RuleMsg>) {
    let t = fixture!("nft-gettable-reply");
    let table = TableMsg::parse(split_messages(&t).unwrap()[0].payload).unwrap();
    let c = fixture!("nft-getchain-dump-reply");
    let chains = split_messages(&c).unwrap();
    assert_eq!(chains.last().unwrap().header.kind, NLMSG_DONE);
    let chains: Vec<ChainMsg> = chains[..chains.len() - 1]
        .iter()
        .map(|m| ChainMsg::parse(m.payload).unwrap())
        .collect();
    let r = fixture!("nft-getrule-dump-reply");
    let rules = split_messages(&r).unwrap();
    assert_eq!(rules.last().unwrap().header.kind, NLMSG_DONE);
    let rules: Vec<RuleMsg> = rules[..rules.len() - 1]
        .iter()
        .map(|m| RuleMsg::parse(m.payload).unwrap())
        .collect();
    (table, chains, rules)
}

#[test]
fn the_kernels_dumps_read_as_our_table_with_our_rules() {
    let (table, chains, rules) = dumps();
    assert_eq!(table.name.as_deref(), Some(dnat::TABLE));
    assert_eq!(table.comment().as_deref(), Some(dnat::TABLE_COMMENT));
    let handle = table.handle.unwrap();
    assert!(
        chains.iter().any(|c| c.table.as_deref() == Some("filter")),
        "the dump has the other tables' chains"
    );
    let want = Current::Ours {
        handle,
        layout: Layout::Clusterf,
        steps: steps(&scenario_rules()),
    };
    assert_eq!(current(Some(&table), &chains, &rules), want);
    // The kernel's extra attributes (a chain's use count and flags, a
    // nat's max registers and flags) are kept, and the values round-trip.
    let nat = rules.iter().flat_map(|r| &r.exprs).find_map(|e| match e {
        Expr::Nat { other, .. } => Some(other.len()),
        _ => None,
    });
    assert!(nat.unwrap() >= 2);
    assert_eq!(TableMsg::parse(&table.emit()).unwrap(), table);
    for c in &chains {
        assert_eq!(&ChainMsg::parse(&c.emit()).unwrap(), c);
    }
    for r in &rules {
        assert_eq!(&RuleMsg::parse(&r.emit()).unwrap(), r);
    }
}

fn layout(c: Current) -> Layout {
    match c {
        Current::Ours { layout, .. } => layout,
        other => panic!("not ours: {other:?}"),
    }
}

#[test]
fn a_chain_or_rule_changed_by_hand_reads_as_differing() {
    let (table, chains, rules) = dumps();
    let mut c = chains.clone();
    let pre = c
        .iter_mut()
        .find(|c| c.name.as_deref() == Some("prerouting") && c.table.as_deref() == Some("clusterf"))
        .unwrap();
    pre.hook.as_mut().unwrap().priority = Some(0);
    assert_eq!(layout(current(Some(&table), &c, &rules)), Layout::Differs);
    let mut r = rules.clone();
    r.retain(|r| r.chain.as_deref() != Some("output"));
    assert_eq!(layout(current(Some(&table), &chains, &r)), Layout::Differs);
    let mut r = rules.clone();
    let last = r
        .iter_mut()
        .rfind(|r| r.chain.as_deref() == Some("containers"));
    last.unwrap().exprs.insert(
        0,
        Expr::Other {
            name: "counter".into(),
            data: Vec::new(),
        },
    );
    let cur = current(Some(&table), &chains, &r);
    assert_eq!(layout(cur.clone()), Layout::Differs);
    let Current::Ours { steps, .. } = cur else {
        unreachable!()
    };
    assert_eq!(steps.len(), 3, "the changed rule is not one of ours");
}

#[test]
fn a_table_of_our_name_without_our_comment_is_not_ours() {
    let (mut table, chains, rules) = dumps();
    table.userdata = Some(comment_userdata("someone else"));
    assert_eq!(
        current(Some(&table), &chains, &rules),
        Current::NotOurs("has the comment \"someone else\", not clusterf's".into())
    );
    table.userdata = None;
    assert!(matches!(
        current(Some(&table), &chains, &rules),
        Current::NotOurs(_)
    ));
    assert_eq!(current(None, &chains, &rules), Current::Absent);
}

#[test]
fn a_replace_deletes_our_table_by_handle_first_and_a_removal_only_that() {
    let rules = scenario_rules();
    let cur = Current::Ours {
        handle: 42,
        layout: Layout::Differs,
        steps: steps(&rules),
    };
    let p = dnat::plan(&rules, &cur).unwrap();
    let reqs = requests(&p);
    assert_eq!(reqs[0].kind, nft_type(NFT_MSG_DELTABLE));
    let del = TableMsg::parse(&reqs[0].payload).unwrap();
    assert_eq!((del.handle, del.name), (Some(42), None), "by handle only");
    assert_eq!(reqs[1].kind, nft_type(NFT_MSG_NEWTABLE));
    assert_eq!(reqs.len(), 11);
    let gone = dnat::plan(&Rules::new(), &cur).unwrap();
    let reqs = requests(&gone);
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].kind, nft_type(NFT_MSG_DELTABLE));
    assert!(requests(&dnat::plan(&rules, &Current::Absent).unwrap())[0].kind != reqs[0].kind);
}

#[test]
fn every_rule_shape_reads_back_and_nothing_else_does() {
    let shapes = [
        ("198.51.100.10:80", "172.17.0.2:8080", Protocol::Tcp, None),
        (
            "[2001:db8::10]:53",
            "[fd00::2]:5353",
            Protocol::Udp,
            Some((1, 2)),
        ),
        (
            "198.51.100.10:9",
            "172.17.0.2:9",
            Protocol::Sctp,
            Some((5, 65535)),
        ),
    ];
    for (vip, to, protocol, pick) in shapes {
        let s = Step {
            protocol,
            vip: sa(vip),
            to: sa(to),
            pick: pick.map(|(below, modulus)| dnat::Pick { below, modulus }),
        };
        let exprs = step_exprs(&s);
        assert_eq!(step_of(&exprs), Some(s));
        for i in 0..exprs.len() {
            let mut e = exprs.clone();
            e.remove(i);
            assert_eq!(step_of(&e), None, "{s:?} without expression {i}");
        }
        let mut e = exprs.clone();
        if let Expr::Cmp { op, .. } = &mut e[1] {
            *op = 1;
        }
        assert_eq!(step_of(&e), None, "a != is not ours");
    }
}

/// Table, chain and rule messages that parse emit to bytes that parse to
/// the same value.
fn round_trips(p: &[u8]) {
    if let Ok(t) = TableMsg::parse(p) {
        assert_eq!(TableMsg::parse(&t.emit()).ok(), Some(t));
    }
    if let Ok(c) = ChainMsg::parse(p) {
        assert_eq!(ChainMsg::parse(&c.emit()).ok(), Some(c));
    }
    if let Ok(r) = RuleMsg::parse(p) {
        assert_eq!(RuleMsg::parse(&r.emit()).ok(), Some(r));
    }
}

#[test]
fn every_one_byte_change_of_the_captures_parses_or_fails_and_round_trips() {
    let captures = [
        fixture!("nft-batch-create"),
        fixture!("nft-gettable-reply"),
        fixture!("nft-getchain-dump-reply"),
    ];
    let rules = fixture!("nft-getrule-dump-reply");
    let rules = split_messages(&rules).unwrap();
    let mut payloads: Vec<Vec<u8>> = captures
        .iter()
        .flat_map(|c| split_messages(c).unwrap())
        .map(|m| m.payload.to_vec())
        .collect();
    // A DNAT rule (with `nat`) and the base chain's jump.
    payloads.push(rules[0].payload.to_vec());
    payloads.push(rules[5].payload.to_vec());
    for p in payloads {
        round_trips(&p);
        for i in 0..p.len() {
            for b in [0x00, 0xff, p[i].wrapping_add(1), p[i] ^ 0x80] {
                let mut q = p.clone();
                q[i] = b;
                round_trips(&q);
            }
            // An attribute type no kernel writes (0x2906, found by the
            // fuzzer inside `nat`): kept, and in the same place again.
            if i + 2 <= p.len() {
                let mut q = p.clone();
                q[i..i + 2].copy_from_slice(&0x2906u16.to_ne_bytes());
                round_trips(&q);
            }
        }
    }
}
