//! nf_tables over nfnetlink (`include/uapi/linux/netfilter/nf_tables.h`,
//! `nfnetlink.h`): the table, chain and rule messages clusterf's DNAT table
//! needs, and the expressions of its rules, each a `struct nfgenmsg` plus
//! one attribute set that parses and emits.
//!
//! - [`NfGenMsg`]: the 4-byte header of every nfnetlink message.
//! - [`TableMsg`], [`ChainMsg`] (with [`Hook`]), [`RuleMsg`]: the objects.
//! - [`Expr`]: one expression of a rule: `meta`, `cmp`, `payload`,
//!   `immediate`, `nat`, `numgen`, `byteorder`; any other kept by name.
//!
//! Wire facts worth knowing: unlike route netlink, nf_tables integers are
//! big-endian (`nla_put_be32`); the message type is the subsystem (10) in
//! the high byte and the command in the low byte; a change is a batch
//! (`NFNL_MSG_BATCH_BEGIN` .. `NFNL_MSG_BATCH_END`, `res_id` 10) applied as
//! one transaction; registers hold data in the byte order it came in
//! (addresses and ports in network order, `numgen`'s result in host order).
//!
//! Invariant: pure; no model types: what a rule means is `netlink::nft`'s.

use super::attr::*;

/// `NFNL_SUBSYS_NFTABLES`.
pub const NFNL_SUBSYS_NFTABLES: u16 = 10;
pub const NFNL_MSG_BATCH_BEGIN: u16 = 16;
pub const NFNL_MSG_BATCH_END: u16 = 17;

pub const NFT_MSG_NEWTABLE: u16 = 0;
pub const NFT_MSG_GETTABLE: u16 = 1;
pub const NFT_MSG_DELTABLE: u16 = 2;
pub const NFT_MSG_NEWCHAIN: u16 = 3;
pub const NFT_MSG_GETCHAIN: u16 = 4;
pub const NFT_MSG_NEWRULE: u16 = 6;
pub const NFT_MSG_GETRULE: u16 = 7;
pub const NFT_MSG_NEWGEN: u16 = 15;
pub const NFT_MSG_GETGEN: u16 = 16;

/// `NLM_F_APPEND` (a rule at the end of its chain).
pub const NLM_F_APPEND: u16 = 0x800;

/// The netlink message type of nf_tables command `cmd`.
pub const fn nft_type(cmd: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | cmd
}

/// The nf_tables command of a message type; `None` for other subsystems.
pub fn nft_cmd(kind: u16) -> Option<u16> {
    (kind >> 8 == NFNL_SUBSYS_NFTABLES).then_some(kind & 0xff)
}

/// `NFPROTO_*`: table families and the `meta nfproto` values.
pub const NFPROTO_INET: u8 = 1;
pub const NFPROTO_IPV4: u8 = 2;
pub const NFPROTO_IPV6: u8 = 10;

pub const NFTA_TABLE_NAME: u16 = 1;
pub const NFTA_TABLE_FLAGS: u16 = 2;
pub const NFTA_TABLE_USE: u16 = 3;
pub const NFTA_TABLE_HANDLE: u16 = 4;
pub const NFTA_TABLE_USERDATA: u16 = 6;

pub const NFTA_CHAIN_TABLE: u16 = 1;
pub const NFTA_CHAIN_HANDLE: u16 = 2;
pub const NFTA_CHAIN_NAME: u16 = 3;
pub const NFTA_CHAIN_HOOK: u16 = 4;
pub const NFTA_CHAIN_POLICY: u16 = 5;
pub const NFTA_CHAIN_TYPE: u16 = 7;
pub const NFTA_HOOK_HOOKNUM: u16 = 1;
pub const NFTA_HOOK_PRIORITY: u16 = 2;

pub const NFTA_RULE_TABLE: u16 = 1;
pub const NFTA_RULE_CHAIN: u16 = 2;
pub const NFTA_RULE_HANDLE: u16 = 3;
pub const NFTA_RULE_EXPRESSIONS: u16 = 4;
pub const NFTA_LIST_ELEM: u16 = 1;
pub const NFTA_EXPR_NAME: u16 = 1;
pub const NFTA_EXPR_DATA: u16 = 2;
pub const NFTA_DATA_VALUE: u16 = 1;
pub const NFTA_DATA_VERDICT: u16 = 2;
pub const NFTA_VERDICT_CODE: u16 = 1;
pub const NFTA_VERDICT_CHAIN: u16 = 2;

/// Hooks (`NF_INET_*`).
pub const NF_INET_PRE_ROUTING: u32 = 0;
pub const NF_INET_LOCAL_OUT: u32 = 3;
/// Verdicts.
pub const NF_ACCEPT: i32 = 1;
pub const NFT_JUMP: i32 = -3;

/// Registers: the 16-byte ones (`NFT_REG_1`..).
pub const NFT_REG_1: u32 = 1;
pub const NFT_REG_2: u32 = 2;

/// `meta` keys.
pub const NFT_META_NFPROTO: u32 = 15;
pub const NFT_META_L4PROTO: u32 = 16;
/// `payload` bases.
pub const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
pub const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
/// `cmp` operators.
pub const NFT_CMP_EQ: u32 = 0;
pub const NFT_CMP_LT: u32 = 2;
/// `nat` types.
pub const NFT_NAT_DNAT: u32 = 1;
/// `numgen` types.
pub const NFT_NG_RANDOM: u32 = 1;
/// `byteorder` operators.
pub const NFT_BYTEORDER_HTON: u32 = 1;

/// `struct nfgenmsg`: family, version 0, resource id (big-endian).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NfGenMsg {
    pub family: u8,
    pub res_id: u16,
}

impl NfGenMsg {
    pub const LEN: usize = 4;

    /// The header and the rest of the payload.
    pub fn parse(p: &[u8]) -> Result<(NfGenMsg, &[u8]), DecodeError> {
        if p.len() < Self::LEN {
            return err(format!("nfnetlink message of {} bytes", p.len()));
        }
        let h = NfGenMsg {
            family: p[0],
            res_id: u16::from_be_bytes([p[2], p[3]]),
        };
        Ok((h, &p[Self::LEN..]))
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.family, 0]);
        out.extend_from_slice(&self.res_id.to_be_bytes());
    }
}

fn get_be32(a: &AttrRef, what: &str) -> Result<u32, DecodeError> {
    match a.payload {
        [a, b, c, d] => Ok(u32::from_be_bytes([*a, *b, *c, *d])),
        p => err(format!("{what}: {} bytes, expected 4", p.len())),
    }
}

fn get_be64(a: &AttrRef, what: &str) -> Result<u64, DecodeError> {
    match <[u8; 8]>::try_from(a.payload) {
        Ok(b) => Ok(u64::from_be_bytes(b)),
        Err(_) => err(format!("{what}: {} bytes, expected 8", a.payload.len())),
    }
}

fn get_bytes(a: &AttrRef, _what: &str) -> Result<Vec<u8>, DecodeError> {
    Ok(a.payload.to_vec())
}

fn emit_be32(out: &mut Vec<u8>, kind: u16, v: u32) {
    emit_attr_fixed(out, kind, v.to_be_bytes());
}

fn emit_be64(out: &mut Vec<u8>, kind: u16, v: u64) {
    emit_attr_fixed(out, kind, v.to_be_bytes());
}

/// Nested attributes are flagged `NLA_F_NESTED`, as libnftnl sends them.
const NLA_F_NESTED: u16 = 0x8000;

/// A table: `NFTA_TABLE_*`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableMsg {
    pub family: u8,
    pub name: Option<String>,
    pub flags: Option<u32>,
    pub uses: Option<u32>,
    pub handle: Option<u64>,
    /// libnftnl's TLVs; the comment is type 0 ([`table_comment`]).
    pub userdata: Option<Vec<u8>>,
    pub other: Vec<RawAttr>,
}

impl TableMsg {
    pub fn parse(p: &[u8]) -> Result<TableMsg, DecodeError> {
        let (h, rest) = NfGenMsg::parse(p)?;
        let mut m = TableMsg {
            family: h.family,
            ..TableMsg::default()
        };
        for a in attr_refs(rest) {
            let a = a?;
            match a.id() {
                NFTA_TABLE_NAME => set(&mut m.name, &a, "NFTA_TABLE_NAME", get_string)?,
                NFTA_TABLE_FLAGS => set(&mut m.flags, &a, "NFTA_TABLE_FLAGS", get_be32)?,
                NFTA_TABLE_USE => set(&mut m.uses, &a, "NFTA_TABLE_USE", get_be32)?,
                NFTA_TABLE_HANDLE => set(&mut m.handle, &a, "NFTA_TABLE_HANDLE", get_be64)?,
                NFTA_TABLE_USERDATA => set(&mut m.userdata, &a, "NFTA_TABLE_USERDATA", get_bytes)?,
                _ => m.other.push(a.owned()),
            }
        }
        Ok(m)
    }

    /// The payload: header, then name, flags, use, handle, userdata (the
    /// kernel's order), the rest.
    pub fn emit(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        NfGenMsg {
            family: self.family,
            res_id: 0,
        }
        .emit(&mut out);
        if let Some(n) = &self.name {
            emit_string(&mut out, NFTA_TABLE_NAME, n);
        }
        if let Some(f) = self.flags {
            emit_be32(&mut out, NFTA_TABLE_FLAGS, f);
        }
        if let Some(u) = self.uses {
            emit_be32(&mut out, NFTA_TABLE_USE, u);
        }
        if let Some(h) = self.handle {
            emit_be64(&mut out, NFTA_TABLE_HANDLE, h);
        }
        if let Some(u) = &self.userdata {
            emit_attr(&mut out, NFTA_TABLE_USERDATA, u);
        }
        emit_others(&mut out, &self.other);
        out
    }

    /// The comment in the userdata, if any.
    pub fn comment(&self) -> Option<String> {
        table_comment(self.userdata.as_deref()?)
    }
}

/// libnftnl's userdata TLVs (type, length: one byte each) holding a
/// comment (type 0, NUL-terminated), as `nft add table ... { comment "" }`
/// writes it.
pub fn comment_userdata(comment: &str) -> Vec<u8> {
    let mut v = vec![0, (comment.len() + 1) as u8];
    v.extend_from_slice(comment.as_bytes());
    v.push(0);
    v
}

/// The comment of libnftnl userdata TLVs, if there is one.
pub fn table_comment(mut ud: &[u8]) -> Option<String> {
    while let [kind, len, rest @ ..] = ud {
        let len = usize::from(*len);
        let value = rest.get(..len)?;
        if *kind == 0 {
            let end = value.iter().position(|&b| b == 0).unwrap_or(len);
            return String::from_utf8(value[..end].to_vec()).ok();
        }
        ud = &rest[len..];
    }
    None
}

/// A base chain's hook: `NFTA_HOOK_*`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hook {
    pub hooknum: Option<u32>,
    pub priority: Option<i32>,
    pub other: Vec<RawAttr>,
}

impl Hook {
    fn parse(p: &[u8]) -> Result<Hook, DecodeError> {
        let mut h = Hook::default();
        for a in attr_refs(p) {
            let a = a?;
            match a.id() {
                NFTA_HOOK_HOOKNUM => set(&mut h.hooknum, &a, "NFTA_HOOK_HOOKNUM", get_be32)?,
                NFTA_HOOK_PRIORITY => {
                    let p = get_be32(&a, "NFTA_HOOK_PRIORITY")? as i32;
                    once(&mut h.priority, p, "NFTA_HOOK_PRIORITY")?
                }
                _ => h.other.push(a.owned()),
            }
        }
        Ok(h)
    }

    fn emit(&self, out: &mut Vec<u8>) {
        emit_nested(out, NFTA_CHAIN_HOOK | NLA_F_NESTED, |out| {
            if let Some(n) = self.hooknum {
                emit_be32(out, NFTA_HOOK_HOOKNUM, n);
            }
            if let Some(p) = self.priority {
                emit_be32(out, NFTA_HOOK_PRIORITY, p as u32);
            }
            emit_others(out, &self.other);
        });
    }
}

/// A chain: `NFTA_CHAIN_*`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainMsg {
    pub family: u8,
    pub table: Option<String>,
    pub handle: Option<u64>,
    pub name: Option<String>,
    pub hook: Option<Hook>,
    pub policy: Option<u32>,
    /// `nat`, `filter`, `route` (base chains only).
    pub kind: Option<String>,
    pub other: Vec<RawAttr>,
}

impl ChainMsg {
    pub fn parse(p: &[u8]) -> Result<ChainMsg, DecodeError> {
        let (h, rest) = NfGenMsg::parse(p)?;
        let mut m = ChainMsg {
            family: h.family,
            ..ChainMsg::default()
        };
        for a in attr_refs(rest) {
            let a = a?;
            match a.id() {
                NFTA_CHAIN_TABLE => set(&mut m.table, &a, "NFTA_CHAIN_TABLE", get_string)?,
                NFTA_CHAIN_HANDLE => set(&mut m.handle, &a, "NFTA_CHAIN_HANDLE", get_be64)?,
                NFTA_CHAIN_NAME => set(&mut m.name, &a, "NFTA_CHAIN_NAME", get_string)?,
                NFTA_CHAIN_HOOK => once(&mut m.hook, Hook::parse(a.payload)?, "NFTA_CHAIN_HOOK")?,
                NFTA_CHAIN_POLICY => set(&mut m.policy, &a, "NFTA_CHAIN_POLICY", get_be32)?,
                NFTA_CHAIN_TYPE => set(&mut m.kind, &a, "NFTA_CHAIN_TYPE", get_string)?,
                _ => m.other.push(a.owned()),
            }
        }
        Ok(m)
    }

    /// The payload: header, then table, handle, name, hook, policy, type,
    /// the rest.
    pub fn emit(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(96);
        NfGenMsg {
            family: self.family,
            res_id: 0,
        }
        .emit(&mut out);
        if let Some(t) = &self.table {
            emit_string(&mut out, NFTA_CHAIN_TABLE, t);
        }
        if let Some(h) = self.handle {
            emit_be64(&mut out, NFTA_CHAIN_HANDLE, h);
        }
        if let Some(n) = &self.name {
            emit_string(&mut out, NFTA_CHAIN_NAME, n);
        }
        if let Some(h) = &self.hook {
            h.emit(&mut out);
        }
        if let Some(p) = self.policy {
            emit_be32(&mut out, NFTA_CHAIN_POLICY, p);
        }
        if let Some(k) = &self.kind {
            emit_string(&mut out, NFTA_CHAIN_TYPE, k);
        }
        emit_others(&mut out, &self.other);
        out
    }
}

/// A rule: `NFTA_RULE_*`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleMsg {
    pub family: u8,
    pub table: Option<String>,
    pub chain: Option<String>,
    pub handle: Option<u64>,
    pub exprs: Vec<Expr>,
    pub other: Vec<RawAttr>,
}

impl RuleMsg {
    pub fn parse(p: &[u8]) -> Result<RuleMsg, DecodeError> {
        let (h, rest) = NfGenMsg::parse(p)?;
        let mut m = RuleMsg {
            family: h.family,
            ..RuleMsg::default()
        };
        let mut seen_exprs = false;
        for a in attr_refs(rest) {
            let a = a?;
            match a.id() {
                NFTA_RULE_TABLE => set(&mut m.table, &a, "NFTA_RULE_TABLE", get_string)?,
                NFTA_RULE_CHAIN => set(&mut m.chain, &a, "NFTA_RULE_CHAIN", get_string)?,
                NFTA_RULE_HANDLE => set(&mut m.handle, &a, "NFTA_RULE_HANDLE", get_be64)?,
                NFTA_RULE_EXPRESSIONS => {
                    if std::mem::replace(&mut seen_exprs, true) {
                        return err("NFTA_RULE_EXPRESSIONS: repeated");
                    }
                    for e in attr_refs(a.payload) {
                        let e = e?;
                        if e.id() != NFTA_LIST_ELEM {
                            return err(format!("expression list: attribute {}", e.id()));
                        }
                        m.exprs.push(Expr::parse(e.payload)?);
                    }
                }
                _ => m.other.push(a.owned()),
            }
        }
        Ok(m)
    }

    /// The payload: header, then table, chain, handle, expressions, the
    /// rest.
    pub fn emit(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        NfGenMsg {
            family: self.family,
            res_id: 0,
        }
        .emit(&mut out);
        if let Some(t) = &self.table {
            emit_string(&mut out, NFTA_RULE_TABLE, t);
        }
        if let Some(c) = &self.chain {
            emit_string(&mut out, NFTA_RULE_CHAIN, c);
        }
        if let Some(h) = self.handle {
            emit_be64(&mut out, NFTA_RULE_HANDLE, h);
        }
        if !self.exprs.is_empty() {
            emit_nested(&mut out, NFTA_RULE_EXPRESSIONS | NLA_F_NESTED, |out| {
                for e in &self.exprs {
                    emit_nested(out, NFTA_LIST_ELEM | NLA_F_NESTED, |out| e.emit(out));
                }
            });
        }
        emit_others(&mut out, &self.other);
        out
    }
}

/// Register data: a value (`NFTA_DATA_VALUE`) or a verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Data {
    Value(Vec<u8>),
    Verdict { code: i32, chain: Option<String> },
}

impl Data {
    fn parse(p: &[u8]) -> Result<Data, DecodeError> {
        let mut out = None;
        for a in attr_refs(p) {
            let a = a?;
            let d = match a.id() {
                NFTA_DATA_VALUE => Data::Value(a.payload.to_vec()),
                NFTA_DATA_VERDICT => {
                    let (mut code, mut chain) = (None, None);
                    for v in attr_refs(a.payload) {
                        let v = v?;
                        match v.id() {
                            NFTA_VERDICT_CODE => set(&mut code, &v, "NFTA_VERDICT_CODE", get_be32)?,
                            NFTA_VERDICT_CHAIN => {
                                set(&mut chain, &v, "NFTA_VERDICT_CHAIN", get_string)?
                            }
                            n => return err(format!("verdict: attribute {n}")),
                        }
                    }
                    let code = code.ok_or_else(|| DecodeError("verdict without a code".into()))?;
                    Data::Verdict {
                        code: code as i32,
                        chain,
                    }
                }
                n => return err(format!("data: attribute {n}")),
            };
            once(&mut out, d, "data")?;
        }
        out.ok_or_else(|| DecodeError("empty data".into()))
    }

    fn emit(&self, out: &mut Vec<u8>, kind: u16) {
        emit_nested(out, kind | NLA_F_NESTED, |out| match self {
            Data::Value(v) => emit_attr(out, NFTA_DATA_VALUE, v),
            Data::Verdict { code, chain } => {
                emit_nested(out, NFTA_DATA_VERDICT | NLA_F_NESTED, |out| {
                    emit_be32(out, NFTA_VERDICT_CODE, *code as u32);
                    if let Some(c) = chain {
                        emit_string(out, NFTA_VERDICT_CHAIN, c);
                    }
                })
            }
        });
    }
}

/// One expression of a rule. The kernel dumps attributes it was not sent
/// (a `nat`'s max registers and flags): those are kept in `other`, so a
/// read expression is compared by its meaning, not its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// `meta load <key> => reg <dreg>`.
    Meta { key: u32, dreg: u32 },
    /// `cmp <op> reg <sreg> <data>`.
    Cmp { sreg: u32, op: u32, data: Vec<u8> },
    /// `payload load <len>b @ <base> + <offset> => reg <dreg>`.
    Payload {
        dreg: u32,
        base: u32,
        offset: u32,
        len: u32,
    },
    /// `immediate reg <dreg> <data>`.
    Immediate { dreg: u32, data: Data },
    /// `nat <type> <family> addr_min reg proto_min reg`.
    Nat {
        kind: u32,
        family: u32,
        reg_addr: Option<u32>,
        reg_proto: Option<u32>,
        other: Vec<RawAttr>,
    },
    /// `numgen reg <dreg> = <type> mod <modulus> offset <offset>`.
    Numgen {
        dreg: u32,
        modulus: u32,
        kind: u32,
        offset: u32,
    },
    /// `byteorder reg <dreg> = <op>(reg <sreg>, <size>, <len>)`.
    Byteorder {
        sreg: u32,
        dreg: u32,
        op: u32,
        len: u32,
        size: u32,
    },
    /// Anything else: its name and attributes as they came.
    Other { name: String, data: Vec<RawAttr> },
}

/// An expression's attributes by id. An expression with attributes this
/// file does not know is kept whole as [`Expr::Other`] (a newer kernel's).
struct Fields<'a> {
    name: &'a str,
    attrs: Vec<AttrRef<'a>>,
}

impl<'a> Fields<'a> {
    fn new(name: &'a str, p: &'a [u8]) -> Result<Fields<'a>, DecodeError> {
        let attrs = attr_refs(p).collect::<Result<Vec<_>, _>>()?;
        Ok(Fields { name, attrs })
    }

    fn find(&self, id: u16) -> Option<&AttrRef<'a>> {
        self.attrs.iter().find(|a| a.id() == id)
    }

    fn be32(&self, id: u16) -> Result<Option<u32>, DecodeError> {
        self.find(id)
            .map(|a| get_be32(a, &format!("{} attribute {id}", self.name)))
            .transpose()
    }

    fn need(&self, id: u16) -> Result<u32, DecodeError> {
        self.be32(id)?
            .ok_or_else(|| DecodeError(format!("{} expression without attribute {id}", self.name)))
    }

    /// Whether every attribute is in `known`.
    fn only(&self, known: &[u16]) -> bool {
        self.attrs.iter().all(|a| known.contains(&a.id()))
    }

    /// The expression as it came ([`Expr::Other`]).
    fn other(&self) -> Expr {
        Expr::Other {
            name: self.name.to_string(),
            data: self.attrs.iter().map(AttrRef::owned).collect(),
        }
    }
}

impl Expr {
    fn parse(p: &[u8]) -> Result<Expr, DecodeError> {
        let (mut name, mut data) = (None, None);
        for a in attr_refs(p) {
            let a = a?;
            match a.id() {
                NFTA_EXPR_NAME => set(&mut name, &a, "NFTA_EXPR_NAME", get_string)?,
                NFTA_EXPR_DATA => once(&mut data, a.payload, "NFTA_EXPR_DATA")?,
                n => return err(format!("expression: attribute {n}")),
            }
        }
        let name = name.ok_or_else(|| DecodeError("expression without a name".into()))?;
        Self::parse_data(&name, data.unwrap_or(&[]))
    }

    fn parse_data(name: &str, p: &[u8]) -> Result<Expr, DecodeError> {
        let f = Fields::new(name, p)?;
        Ok(match name {
            "meta" => {
                if !f.only(&[1, 2]) {
                    return Ok(f.other());
                }
                Expr::Meta {
                    dreg: f.need(1)?,
                    key: f.need(2)?,
                }
            }
            "cmp" => {
                if !f.only(&[1, 2, 3]) {
                    return Ok(f.other());
                }
                let data = match f.find(3).map(|a| Data::parse(a.payload)).transpose()? {
                    Some(Data::Value(v)) => v,
                    _ => return err("cmp expression without a value"),
                };
                Expr::Cmp {
                    sreg: f.need(1)?,
                    op: f.need(2)?,
                    data,
                }
            }
            "payload" => {
                if !f.only(&[1, 2, 3, 4]) {
                    return Ok(f.other());
                }
                Expr::Payload {
                    dreg: f.need(1)?,
                    base: f.need(2)?,
                    offset: f.need(3)?,
                    len: f.need(4)?,
                }
            }
            "immediate" => {
                if !f.only(&[1, 2]) {
                    return Ok(f.other());
                }
                let data = f.find(2).map(|a| Data::parse(a.payload)).transpose()?;
                Expr::Immediate {
                    dreg: f.need(1)?,
                    data: data.ok_or_else(|| DecodeError("immediate without data".into()))?,
                }
            }
            "nat" => {
                // Kept by id, the order they are written in (and the
                // kernel dumps them in): a parse of what was emitted is
                // the same message.
                let mut other: Vec<RawAttr> = f
                    .attrs
                    .iter()
                    .filter(|a| ![1, 2, 3, 5].contains(&a.id()))
                    .map(AttrRef::owned)
                    .collect();
                other.sort_by_key(RawAttr::id);
                Expr::Nat {
                    kind: f.need(1)?,
                    family: f.need(2)?,
                    reg_addr: f.be32(3)?,
                    reg_proto: f.be32(5)?,
                    other,
                }
            }
            "numgen" => {
                if !f.only(&[1, 2, 3, 4]) {
                    return Ok(f.other());
                }
                Expr::Numgen {
                    dreg: f.need(1)?,
                    modulus: f.need(2)?,
                    kind: f.need(3)?,
                    offset: f.be32(4)?.unwrap_or(0),
                }
            }
            "byteorder" => {
                if !f.only(&[1, 2, 3, 4, 5]) {
                    return Ok(f.other());
                }
                Expr::Byteorder {
                    sreg: f.need(1)?,
                    dreg: f.need(2)?,
                    op: f.need(3)?,
                    len: f.need(4)?,
                    size: f.need(5)?,
                }
            }
            _ => f.other(),
        })
    }

    /// The expression's name.
    pub fn name(&self) -> &str {
        match self {
            Expr::Meta { .. } => "meta",
            Expr::Cmp { .. } => "cmp",
            Expr::Payload { .. } => "payload",
            Expr::Immediate { .. } => "immediate",
            Expr::Nat { .. } => "nat",
            Expr::Numgen { .. } => "numgen",
            Expr::Byteorder { .. } => "byteorder",
            Expr::Other { name, .. } => name,
        }
    }

    /// Name and data, attributes in the kernel's dump order (`meta`: key
    /// first).
    fn emit(&self, out: &mut Vec<u8>) {
        emit_string(out, NFTA_EXPR_NAME, self.name());
        emit_nested(out, NFTA_EXPR_DATA | NLA_F_NESTED, |out| match self {
            Expr::Meta { key, dreg } => {
                emit_be32(out, 2, *key);
                emit_be32(out, 1, *dreg);
            }
            Expr::Cmp { sreg, op, data } => {
                emit_be32(out, 1, *sreg);
                emit_be32(out, 2, *op);
                Data::Value(data.clone()).emit(out, 3);
            }
            Expr::Payload {
                dreg,
                base,
                offset,
                len,
            } => {
                for (id, v) in [(1, dreg), (2, base), (3, offset), (4, len)] {
                    emit_be32(out, id, *v);
                }
            }
            Expr::Immediate { dreg, data } => {
                emit_be32(out, 1, *dreg);
                data.emit(out, 2);
            }
            Expr::Nat {
                kind,
                family,
                reg_addr,
                reg_proto,
                other,
            } => {
                let mut attrs = other.clone();
                let known = [(1, Some(kind)), (2, Some(family)), (3, reg_addr.as_ref())];
                for (id, v) in known.into_iter().chain([(5, reg_proto.as_ref())]) {
                    if let Some(v) = v {
                        attrs.push(RawAttr {
                            kind: id,
                            payload: v.to_be_bytes().to_vec(),
                        });
                    }
                }
                // By id, as the kernel dumps them (its max registers and
                // flags between ours).
                attrs.sort_by_key(RawAttr::id);
                emit_others(out, &attrs);
            }
            Expr::Numgen {
                dreg,
                modulus,
                kind,
                offset,
            } => {
                for (id, v) in [(1, dreg), (2, modulus), (3, kind), (4, offset)] {
                    emit_be32(out, id, *v);
                }
            }
            Expr::Byteorder {
                sreg,
                dreg,
                op,
                len,
                size,
            } => {
                for (id, v) in [(1, sreg), (2, dreg), (3, op), (4, len), (5, size)] {
                    emit_be32(out, id, *v);
                }
            }
            Expr::Other { data, .. } => emit_others(out, data),
        });
    }
}

/// A `NFT_MSG_NEWGEN` reply: the ruleset's generation (`NFTA_GEN_ID`).
pub fn parse_gen_id(p: &[u8]) -> Result<Option<u32>, DecodeError> {
    let (_, rest) = NfGenMsg::parse(p)?;
    for a in attr_refs(rest) {
        let a = a?;
        if a.id() == 1 {
            return get_be32(&a, "NFTA_GEN_ID").map(Some);
        }
    }
    Ok(None)
}
