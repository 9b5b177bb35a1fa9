//! clusterf's DNAT table over nf_tables (`NETLINK_NETFILTER`): the table
//! read (table, chains, rules) into a [`Current`], and a [`DnatPlan`]
//! executed as one nfnetlink batch, which the kernel applies whole or not
//! at all.
//!
//! The table is `inet clusterf`, marked as clusterf's by its comment (its
//! userdata, which `nft list` shows); a table of the name without it is
//! never changed. The replace deletes our table by its handle (the one
//! read and checked) and writes it anew in the same transaction, so no
//! packet sees a table half written, and a table replaced since it was
//! read fails the batch instead of being deleted. Nothing is flushed, and
//! no other table is named in any request. An owner table
//! (`NFT_TABLE_F_OWNER`) is not used: it goes away with the socket that
//! made it, a one-shot command's included.
//!
//! Invariant: executes what it is given; the rules and the plan are
//! `dnat`'s. Touches no table but its own.

use std::io;

use anyhow::{Context, Result, anyhow, bail};
use neli::consts::socket::{Msg, NlFamily};
use neli::socket::NlSocket;
use neli::utils::Groups;

use super::dump;
use super::error::{ENOENT, EPERM, KernelError, NO_PERMISSION, errno_text};
use super::message::*;
use crate::dnat::{
    Action, BASE_CHAINS, Current, DnatPlan, Hook, Layout, PRIORITY, Pick, RULE_CHAIN, Step, TABLE,
    TABLE_COMMENT,
};
use crate::model::Protocol;

const READ_BUF: usize = 64 << 10;
const EBUSY: i32 = 16;
/// A batch this large fits any default send buffer (`wmem_default` is
/// 208 KiB; a datagram may use it less some overhead).
const SNDBUF_DEFAULT_FITS: usize = 64 << 10;

/// One request of a batch: message type, flags, payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub kind: u16,
    pub flags: u16,
    pub payload: Vec<u8>,
}

fn nfproto(vip: &std::net::SocketAddr) -> u8 {
    if vip.is_ipv4() {
        NFPROTO_IPV4
    } else {
        NFPROTO_IPV6
    }
}

fn ip_bytes(a: std::net::IpAddr) -> Vec<u8> {
    match a {
        std::net::IpAddr::V4(a) => a.octets().to_vec(),
        std::net::IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn l4proto(p: Protocol) -> u8 {
    match p {
        Protocol::Tcp => 6,
        Protocol::Udp => 17,
        Protocol::Sctp => 132,
    }
}

fn cmp_eq(data: Vec<u8>) -> Expr {
    Expr::Cmp {
        sreg: NFT_REG_1,
        op: NFT_CMP_EQ,
        data,
    }
}

/// The expressions of one DNAT rule, as `nft` would write
/// `meta nfproto ipv4 meta l4proto tcp ip daddr 198.51.100.10 th dport 80
/// [numgen random mod 3 < 1] dnat ip to 172.17.0.2:8080` (the `<` on the
/// host-order `numgen` result after a `byteorder` to network order).
pub fn step_exprs(s: &Step) -> Vec<Expr> {
    let v4 = s.vip.is_ipv4();
    let mut e = vec![
        Expr::Meta {
            key: NFT_META_NFPROTO,
            dreg: NFT_REG_1,
        },
        cmp_eq(vec![nfproto(&s.vip)]),
        Expr::Meta {
            key: NFT_META_L4PROTO,
            dreg: NFT_REG_1,
        },
        cmp_eq(vec![l4proto(s.protocol)]),
        Expr::Payload {
            dreg: NFT_REG_1,
            base: NFT_PAYLOAD_NETWORK_HEADER,
            offset: if v4 { 16 } else { 24 },
            len: if v4 { 4 } else { 16 },
        },
        cmp_eq(ip_bytes(s.vip.ip())),
        Expr::Payload {
            dreg: NFT_REG_1,
            base: NFT_PAYLOAD_TRANSPORT_HEADER,
            offset: 2,
            len: 2,
        },
        cmp_eq(s.vip.port().to_be_bytes().to_vec()),
    ];
    if let Some(p) = s.pick {
        e.push(Expr::Numgen {
            dreg: NFT_REG_1,
            modulus: p.modulus,
            kind: NFT_NG_RANDOM,
            offset: 0,
        });
        e.push(Expr::Byteorder {
            sreg: NFT_REG_1,
            dreg: NFT_REG_1,
            op: NFT_BYTEORDER_HTON,
            len: 4,
            size: 4,
        });
        e.push(Expr::Cmp {
            sreg: NFT_REG_1,
            op: NFT_CMP_LT,
            data: p.below.to_be_bytes().to_vec(),
        });
    }
    e.push(Expr::Immediate {
        dreg: NFT_REG_1,
        data: Data::Value(ip_bytes(s.to.ip())),
    });
    e.push(Expr::Immediate {
        dreg: NFT_REG_2,
        data: Data::Value(s.to.port().to_be_bytes().to_vec()),
    });
    e.push(Expr::Nat {
        kind: NFT_NAT_DNAT,
        family: u32::from(nfproto(&s.vip)),
        reg_addr: Some(NFT_REG_1),
        reg_proto: Some(NFT_REG_2),
        other: Vec::new(),
    });
    e
}

/// The DNAT rule that `exprs` are, if they are exactly what
/// [`step_exprs`] writes for it (a `nat`'s extra attributes, which the
/// kernel adds to its dump, aside).
pub fn step_of(exprs: &[Expr]) -> Option<Step> {
    let value = |i: usize| match exprs.get(i) {
        Some(Expr::Cmp { data, .. }) => Some(data.as_slice()),
        _ => None,
    };
    let imm = |i: usize| match exprs.get(i) {
        Some(Expr::Immediate {
            data: Data::Value(v),
            ..
        }) => Some(v.as_slice()),
        _ => None,
    };
    let protocol = match value(3)? {
        [6] => Protocol::Tcp,
        [17] => Protocol::Udp,
        [132] => Protocol::Sctp,
        _ => return None,
    };
    let ip = |b: &[u8]| -> Option<std::net::IpAddr> {
        match b.len() {
            4 => Some(<[u8; 4]>::try_from(b).ok()?.into()),
            16 => Some(<[u8; 16]>::try_from(b).ok()?.into()),
            _ => None,
        }
    };
    let port = |b: &[u8]| Some(u16::from_be_bytes(b.try_into().ok()?));
    let n = exprs.len();
    let vip = std::net::SocketAddr::new(ip(value(5)?)?, port(value(7)?)?);
    let to = std::net::SocketAddr::new(ip(imm(n.checked_sub(3)?)?)?, port(imm(n - 2)?)?);
    let pick = match (n, exprs.get(8), value(10)) {
        (11, ..) => None,
        (14, Some(Expr::Numgen { modulus, .. }), Some(below)) => Some(Pick {
            below: u32::from_be_bytes(below.try_into().ok()?),
            modulus: *modulus,
        }),
        _ => return None,
    };
    let step = Step {
        protocol,
        vip,
        to,
        pick,
    };
    let mut read = exprs.to_vec();
    if let Some(Expr::Nat { other, .. }) = read.last_mut() {
        other.clear();
    }
    (read == step_exprs(&step)).then_some(step)
}

/// The one expression of a base chain's rule: `jump dnat`.
pub fn jump_exprs() -> Vec<Expr> {
    vec![Expr::Immediate {
        dreg: 0,
        data: Data::Verdict {
            code: NFT_JUMP,
            chain: Some(RULE_CHAIN.to_string()),
        },
    }]
}

fn hook_of(h: Hook) -> u32 {
    match h {
        Hook::Prerouting => NF_INET_PRE_ROUTING,
        Hook::Output => NF_INET_LOCAL_OUT,
    }
}

/// The table's chains as clusterf writes them: the rule chain first (the
/// base chains' rules jump to it), then the base chains.
pub fn chains() -> Vec<ChainMsg> {
    let mut out = vec![ChainMsg {
        family: NFPROTO_INET,
        table: Some(TABLE.into()),
        name: Some(RULE_CHAIN.into()),
        ..ChainMsg::default()
    }];
    for (name, hook) in BASE_CHAINS {
        out.push(ChainMsg {
            family: NFPROTO_INET,
            table: Some(TABLE.into()),
            name: Some(name.into()),
            hook: Some(super::message::Hook {
                hooknum: Some(hook_of(hook)),
                priority: Some(PRIORITY),
                other: Vec::new(),
            }),
            policy: Some(NF_ACCEPT as u32),
            kind: Some("nat".into()),
            ..ChainMsg::default()
        });
    }
    out
}

/// The table as clusterf creates it: named, marked by its comment.
pub fn table() -> TableMsg {
    TableMsg {
        family: NFPROTO_INET,
        name: Some(TABLE.into()),
        flags: Some(0),
        userdata: Some(comment_userdata(TABLE_COMMENT)),
        ..TableMsg::default()
    }
}

fn rule(chain: &str, exprs: Vec<Expr>) -> RuleMsg {
    RuleMsg {
        family: NFPROTO_INET,
        table: Some(TABLE.into()),
        chain: Some(chain.into()),
        exprs,
        ..RuleMsg::default()
    }
}

fn del_table(handle: u64) -> Request {
    let t = TableMsg {
        family: NFPROTO_INET,
        handle: Some(handle),
        ..TableMsg::default()
    };
    Request {
        kind: nft_type(NFT_MSG_DELTABLE),
        flags: NLM_F_REQUEST,
        payload: t.emit(),
    }
}

/// The batch's requests for `plan` (without begin and end): a removal
/// deletes the table by handle; a creation or replacement (after that
/// deletion) writes the table, its chains, the jumps and the DNAT rules.
pub fn requests(plan: &DnatPlan) -> Vec<Request> {
    let mut out = Vec::new();
    match plan.action {
        Action::Nothing => return out,
        Action::Remove(h) => return vec![del_table(h)],
        Action::Replace(h) => out.push(del_table(h)),
        Action::Create => {}
    }
    // No NLM_F_ACK: the kernel answers a batch's refusals only, so a
    // table of thousands of rules does not fill the receive buffer.
    let new = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL;
    out.push(Request {
        kind: nft_type(NFT_MSG_NEWTABLE),
        flags: new,
        payload: table().emit(),
    });
    for c in chains() {
        out.push(Request {
            kind: nft_type(NFT_MSG_NEWCHAIN),
            flags: new,
            payload: c.emit(),
        });
    }
    let append = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_APPEND;
    let jumps = BASE_CHAINS.iter().map(|(c, _)| rule(c, jump_exprs()));
    let dnats = plan.steps.iter().map(|s| rule(RULE_CHAIN, step_exprs(s)));
    for r in jumps.chain(dnats) {
        out.push(Request {
            kind: nft_type(NFT_MSG_NEWRULE),
            flags: append,
            payload: r.emit(),
        });
    }
    out
}

/// The datagram of a batch: begin, the requests (sequence numbers from
/// `seq` + 1), end.
pub fn batch(requests: &[Request], seq: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut marker = Vec::new();
    NfGenMsg {
        family: 0,
        res_id: NFNL_SUBSYS_NFTABLES,
    }
    .emit(&mut marker);
    emit_message(&mut out, NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, seq, &marker);
    let mut s = seq;
    for r in requests {
        s = s.wrapping_add(1);
        emit_message(&mut out, r.kind, r.flags, s, &r.payload);
    }
    emit_message(
        &mut out,
        NFNL_MSG_BATCH_END,
        NLM_F_REQUEST,
        s.wrapping_add(1),
        &marker,
    );
    out
}

/// What the kernel holds under our name (pure): the table, if any, and
/// the chains and rules of the family's dumps (other tables' skipped).
pub fn current(table: Option<&TableMsg>, read_chains: &[ChainMsg], rules: &[RuleMsg]) -> Current {
    let Some(t) = table else {
        return Current::Absent;
    };
    if t.comment().as_deref() != Some(TABLE_COMMENT) {
        let why = match t.comment() {
            Some(c) => format!("has the comment {}, not clusterf's", crate::text::quote(&c)),
            None => "has no comment marking it as clusterf's".to_string(),
        };
        return Current::NotOurs(why);
    }
    let Some(handle) = t.handle else {
        return Current::NotOurs("was read without a handle".into());
    };
    let ours = |n: &Option<String>| n.as_deref() == Some(TABLE);
    let mut layout = Layout::Clusterf;
    let mut read: Vec<ChainMsg> = read_chains
        .iter()
        .filter(|c| ours(&c.table))
        .cloned()
        .collect();
    for c in &mut read {
        c.handle = None;
        c.other.clear();
    }
    let mut want = chains();
    read.sort_by(|a, b| a.name.cmp(&b.name));
    want.sort_by(|a, b| a.name.cmp(&b.name));
    if read != want || t.flags.unwrap_or(0) != 0 {
        layout = Layout::Differs;
    }
    let mut steps = Vec::new();
    let mut jumps = Vec::new();
    for r in rules.iter().filter(|r| ours(&r.table)) {
        let chain = r.chain.as_deref().unwrap_or("");
        if chain == RULE_CHAIN {
            match step_of(&r.exprs) {
                Some(s) => steps.push(s),
                None => layout = Layout::Differs,
            }
        } else if r.exprs == jump_exprs() {
            jumps.push(chain.to_string());
        } else {
            layout = Layout::Differs;
        }
    }
    let mut want_jumps: Vec<String> = BASE_CHAINS.iter().map(|(c, _)| c.to_string()).collect();
    jumps.sort();
    want_jumps.sort();
    if jumps != want_jumps {
        layout = Layout::Differs;
    }
    Current::Ours {
        handle,
        layout,
        steps,
    }
}

/// The payload of `NFT_MSG_GETGEN`: a bare header.
pub fn generation_request() -> Vec<u8> {
    let mut p = Vec::new();
    NfGenMsg::default().emit(&mut p);
    p
}

/// A `NETLINK_NETFILTER` socket.
pub struct NftClient {
    sock: NlSocket,
    seq: u32,
    buf: Vec<u8>,
    trace: bool,
}

fn kernel_errno(e: &anyhow::Error) -> Option<i32> {
    e.downcast_ref::<KernelError>().map(|k| k.errno)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl NftClient {
    pub fn connect() -> Result<NftClient> {
        let sock = NlSocket::connect(NlFamily::Netfilter, None, Groups::empty())
            .context("opening a netfilter netlink socket")?;
        Ok(NftClient {
            sock,
            seq: std::process::id().wrapping_mul(0x9e37_79b9),
            buf: vec![0; READ_BUF],
            trace: std::env::var_os("CLUSTERF_NETLINK_TRACE").is_some_and(|v| v == "1"),
        })
    }

    fn send(&mut self, bytes: &[u8]) -> Result<()> {
        if self.trace {
            eprintln!("nfnetlink send: {}", hex(bytes));
        }
        let n = self.sock.send(bytes, Msg::empty())?;
        if n != bytes.len() {
            bail!("short netlink send: {n} of {} bytes", bytes.len());
        }
        Ok(())
    }

    /// One datagram.
    fn recv(&mut self) -> Result<usize> {
        let (n, _) = self.sock.recv(&mut self.buf[..], Msg::TRUNC)?;
        if n > self.buf.len() {
            return Err(io::Error::other("netlink datagram truncated").into());
        }
        if self.trace {
            eprintln!("nfnetlink recv: {}", hex(&self.buf[..n]));
        }
        Ok(n)
    }

    /// One request; the payloads of the replies, to the ack or the dump's
    /// end.
    fn transact(&mut self, cmd: u16, flags: u16, payload: &[u8]) -> Result<Vec<Vec<u8>>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut req = Vec::with_capacity(payload.len() + NLMSG_HDRLEN);
        emit_message(&mut req, nft_type(cmd), flags | NLM_F_REQUEST, seq, payload);
        self.send(&req)?;
        let mut replies = Vec::new();
        loop {
            let n = self.recv()?;
            let progress = dump::walk(&self.buf[..n], seq, false, |p| {
                replies.push(p.to_vec());
                Ok(())
            })?;
            if progress == dump::Progress::Done {
                return Ok(replies);
            }
        }
    }

    /// The ruleset's generation: it changes with every commit.
    fn generation(&mut self) -> Result<u32> {
        let replies = self.transact(NFT_MSG_GETGEN, NLM_F_ACK, &generation_request())?;
        let id = replies
            .first()
            .map(|r| parse_gen_id(r))
            .transpose()?
            .flatten();
        id.ok_or_else(|| anyhow!("no generation in the reply to NFT_MSG_GETGEN"))
    }

    fn read_once(&mut self) -> Result<Current> {
        let query = TableMsg {
            family: NFPROTO_INET,
            name: Some(TABLE.into()),
            ..TableMsg::default()
        };
        let table = match self.transact(NFT_MSG_GETTABLE, NLM_F_ACK, &query.emit()) {
            Ok(r) => match r.first() {
                Some(p) => TableMsg::parse(p)?,
                None => bail!("no reply to NFT_MSG_GETTABLE {TABLE}"),
            },
            Err(e) if kernel_errno(&e) == Some(ENOENT) => return Ok(Current::Absent),
            Err(e) => return Err(e),
        };
        let chain_q = ChainMsg {
            family: NFPROTO_INET,
            table: Some(TABLE.into()),
            ..ChainMsg::default()
        };
        let chains = self
            .transact(NFT_MSG_GETCHAIN, NLM_F_DUMP, &chain_q.emit())?
            .iter()
            .map(|p| ChainMsg::parse(p))
            .collect::<Result<Vec<_>, _>>()?;
        let rule_q = RuleMsg {
            family: NFPROTO_INET,
            table: Some(TABLE.into()),
            ..RuleMsg::default()
        };
        let rules = self
            .transact(NFT_MSG_GETRULE, NLM_F_DUMP, &rule_q.emit())?
            .iter()
            .map(|p| RuleMsg::parse(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(current(Some(&table), &chains, &rules))
    }

    /// What the kernel holds under our name, read at one generation (read
    /// again when a commit came between the reads).
    pub fn read(&mut self) -> Result<Current> {
        for _ in 0..5 {
            let before = self.generation()?;
            let cur = self.read_once()?;
            if self.generation()? == before {
                return Ok(cur);
            }
        }
        bail!("the nftables ruleset kept changing while table inet {TABLE} was read")
    }

    /// Executes `plan` as one batch: all of it or, on any refusal, none.
    pub fn apply(&mut self, plan: &DnatPlan) -> Result<()> {
        let reqs = requests(plan);
        if reqs.is_empty() {
            return Ok(());
        }
        let first = self.seq.wrapping_add(1);
        let bytes = batch(&reqs, first);
        self.seq = first.wrapping_add(reqs.len() as u32 + 1);
        self.fit_send_buffer(bytes.len());
        self.send(&bytes)?;
        // The kernel has processed the batch when the send returns; a
        // request after it is answered after the batch's refusals.
        let refusals = self.refusals_until_sync(first, self.seq)?;
        match refusals.first() {
            None => Ok(()),
            Some((seq, e)) => Err(refusal(plan, &reqs, seq.wrapping_sub(first), e)),
        }
    }

    /// A batch is one datagram: the send buffer must hold it (forced past
    /// `wmem_max` where allowed; best effort, the send reports the rest).
    fn fit_send_buffer(&self, len: usize) {
        use std::os::fd::AsRawFd as _;
        if len < SNDBUF_DEFAULT_FITS {
            return;
        }
        let fd = self.sock.as_raw_fd();
        let want = len.saturating_mul(2);
        if super::client::set_int(fd, libc::SO_SNDBUFFORCE, want).is_err() {
            let _ = super::client::set_int(fd, libc::SO_SNDBUF, want);
        }
    }

    /// Reads the refusals of the batch (sequence numbers `first..=last`) up to
    /// the answer to a generation request sent after it; the refusals.
    fn refusals_until_sync(&mut self, first: u32, last: u32) -> Result<Vec<(u32, KernelError)>> {
        self.seq = self.seq.wrapping_add(1);
        let sync = self.seq;
        let mut req = Vec::new();
        let flags = NLM_F_REQUEST | NLM_F_ACK;
        let p = generation_request();
        emit_message(&mut req, nft_type(NFT_MSG_GETGEN), flags, sync, &p);
        self.send(&req)?;
        let mut refusals = Vec::new();
        loop {
            let n = self.recv()?;
            for m in messages(&self.buf[..n]) {
                let m = m?;
                let seq = m.header.seq;
                if m.header.kind == NLMSG_ERROR {
                    let e = ErrorMsg::parse(m.header.flags, m.payload)?;
                    if seq == sync {
                        return Ok(refusals);
                    }
                    if e.errno != 0 && seq.wrapping_sub(first) <= last.wrapping_sub(first) {
                        refusals.push((
                            seq,
                            KernelError {
                                errno: e.errno,
                                ext_msg: e.ext_msg,
                            },
                        ));
                    }
                }
            }
        }
    }
}

/// The error of a refused batch, naming the request (`index` from the
/// batch's begin: 0 is the begin, which commit failures name).
fn refusal(plan: &DnatPlan, reqs: &[Request], index: u32, e: &KernelError) -> anyhow::Error {
    let cmd = index
        .checked_sub(1)
        .and_then(|i| reqs.get(i as usize))
        .and_then(|r| nft_cmd(r.kind));
    let what = match cmd {
        Some(NFT_MSG_DELTABLE) => "deleting the old table".to_string(),
        Some(NFT_MSG_NEWTABLE) => "creating the table".to_string(),
        Some(NFT_MSG_NEWCHAIN) => "creating a chain".to_string(),
        Some(NFT_MSG_NEWRULE) => "adding a rule".to_string(),
        _ => "committing".to_string(),
    };
    let why = match e.errno {
        EPERM => format!("operation not permitted: {NO_PERMISSION}"),
        ENOENT if matches!(plan.action, Action::Replace(_) | Action::Remove(_)) && index == 1 => {
            "the table changed since it was read; nothing changed, try again".to_string()
        }
        ENOENT if matches!(cmd, Some(NFT_MSG_NEWRULE | NFT_MSG_NEWCHAIN)) => {
            "not supported by this kernel (a missing module: nft_chain_nat, nft_nat, nft_numgen?)"
                .to_string()
        }
        EBUSY => "busy (a commit of another process?); nothing changed, try again".to_string(),
        n => errno_text(n),
    };
    let ext = e
        .ext_msg
        .as_deref()
        .map(|m| format!(" ({m})"))
        .unwrap_or_default();
    anyhow!("table inet {TABLE}: {what}: {why}{ext}; the batch was not applied")
}
