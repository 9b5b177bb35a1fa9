//! Netlink attributes (`struct nlattr`, type-length-value): split borrowed
//! from a buffer, read as typed values, appended with their padding; and
//! the [`DecodeError`] every layer above reports malformed bytes with.
//!
//! Invariant: pure; knows no attribute set (the layers above name theirs).

use std::fmt;

/// Attribute header length (`struct nlattr`).
pub const NLA_HDRLEN: usize = 4;
/// Attribute type bits without `NLA_F_NESTED` and `NLA_F_NET_BYTEORDER`.
pub const NLA_TYPE_MASK: u16 = 0x3fff;

/// Malformed bytes: what was being read and what was wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed netlink message: {0}")]
pub struct DecodeError(pub String);

pub(super) fn err<T>(msg: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError(msg.into()))
}

/// Rounds up to the 4-byte netlink alignment.
pub fn align(len: usize) -> usize {
    len.saturating_add(3) & !3
}

/// An attribute as it came: its full type (flag bits included) and payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawAttr {
    pub kind: u16,
    pub payload: Vec<u8>,
}

impl RawAttr {
    /// The type without flag bits.
    pub fn id(&self) -> u16 {
        self.kind & NLA_TYPE_MASK
    }
}

/// An attribute borrowed from the buffer being parsed (typed parsers copy
/// only what they keep).
#[derive(Clone, Copy, Debug)]
pub(super) struct AttrRef<'a> {
    pub(super) kind: u16,
    pub(super) payload: &'a [u8],
}

impl AttrRef<'_> {
    pub(super) fn id(&self) -> u16 {
        self.kind & NLA_TYPE_MASK
    }

    pub(super) fn owned(&self) -> RawAttr {
        RawAttr {
            kind: self.kind,
            payload: self.payload.to_vec(),
        }
    }
}

/// The attributes of a stream, borrowed, one at a time (no allocation).
/// Yields an error (and then nothing) for a malformed attribute or
/// non-zero bytes after the last one.
pub(super) struct AttrIter<'a> {
    buf: &'a [u8],
    failed: bool,
}

impl<'a> Iterator for AttrIter<'a> {
    type Item = Result<AttrRef<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let buf = self.buf;
        if buf.len() < NLA_HDRLEN {
            if buf.iter().any(|&b| b != 0) {
                self.failed = true;
                return Some(err(format!(
                    "{} trailing bytes after attributes",
                    buf.len()
                )));
            }
            return None;
        }
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let kind = u16::from_ne_bytes([buf[2], buf[3]]);
        if len < NLA_HDRLEN || len > buf.len() {
            self.failed = true;
            return Some(err(format!(
                "attribute {} has length {len}, {} bytes left",
                kind & NLA_TYPE_MASK,
                buf.len()
            )));
        }
        self.buf = &buf[align(len).min(buf.len())..];
        Some(Ok(AttrRef {
            kind,
            payload: &buf[NLA_HDRLEN..len],
        }))
    }
}

/// Splits an attribute stream without copying.
pub(super) fn attr_refs(buf: &[u8]) -> AttrIter<'_> {
    AttrIter { buf, failed: false }
}

/// Splits an attribute stream. Padding after the last attribute is allowed.
pub fn parse_attrs(buf: &[u8]) -> Result<Vec<RawAttr>, DecodeError> {
    attr_refs(buf).map(|a| a.map(|a| a.owned())).collect()
}

/// Appends one attribute with its padding.
#[inline]
pub fn emit_attr(out: &mut Vec<u8>, kind: u16, payload: &[u8]) {
    let len = NLA_HDRLEN + payload.len();
    let pad = align(len) - len;
    out.reserve(len + pad);
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&[0u8; 3][..pad]);
}

/// [`emit_attr`] of a fixed-size payload (2, 4 or 16 bytes and the like),
/// written with one copy.
#[inline]
pub fn emit_attr_fixed<const N: usize>(out: &mut Vec<u8>, kind: u16, payload: [u8; N]) {
    let len = NLA_HDRLEN + N;
    let mut attr = [0u8; 20];
    if len > attr.len() {
        emit_attr(out, kind, &payload);
        return;
    }
    attr[..2].copy_from_slice(&(len as u16).to_ne_bytes());
    attr[2..4].copy_from_slice(&kind.to_ne_bytes());
    attr[4..len].copy_from_slice(&payload);
    out.extend_from_slice(&attr[..align(len)]);
}

/// Appends a nested attribute whose payload `fill` writes.
#[inline]
pub fn emit_nested(out: &mut Vec<u8>, kind: u16, fill: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&kind.to_ne_bytes());
    fill(out);
    let len = (out.len() - start) as u16;
    out[start..start + 2].copy_from_slice(&len.to_ne_bytes());
}

pub(super) fn get_u8(a: &AttrRef, what: &str) -> Result<u8, DecodeError> {
    match a.payload {
        [b] => Ok(*b),
        p => err(format!("{what}: {} bytes, expected 1", p.len())),
    }
}

pub(super) fn get_u16(a: &AttrRef, what: &str) -> Result<u16, DecodeError> {
    match a.payload {
        [a, b] => Ok(u16::from_ne_bytes([*a, *b])),
        p => err(format!("{what}: {} bytes, expected 2", p.len())),
    }
}

pub(super) fn get_be16(a: &AttrRef, what: &str) -> Result<u16, DecodeError> {
    match a.payload {
        [a, b] => Ok(u16::from_be_bytes([*a, *b])),
        p => err(format!("{what}: {} bytes, expected 2", p.len())),
    }
}

pub(super) fn get_u32(a: &AttrRef, what: &str) -> Result<u32, DecodeError> {
    match a.payload {
        [a, b, c, d] => Ok(u32::from_ne_bytes([*a, *b, *c, *d])),
        p => err(format!("{what}: {} bytes, expected 4", p.len())),
    }
}

pub(super) fn get_raw4(a: &AttrRef, what: &str) -> Result<[u8; 4], DecodeError> {
    match a.payload {
        [a, b, c, d] => Ok([*a, *b, *c, *d]),
        p => err(format!("{what}: {} bytes, expected 4", p.len())),
    }
}

/// A counter: 4 or 8 bytes.
pub(super) fn get_counter(a: &AttrRef, what: &str) -> Result<u64, DecodeError> {
    let p = a.payload;
    match p.len() {
        4 => Ok(u64::from(u32::from_ne_bytes([p[0], p[1], p[2], p[3]]))),
        8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(p);
            Ok(u64::from_ne_bytes(b))
        }
        n => err(format!("{what}: {n} bytes, expected 4 or 8")),
    }
}

/// `union nf_inet_addr`: up to 16 bytes, zero-padded.
pub(super) fn get_addr(a: &AttrRef, what: &str) -> Result<[u8; 16], DecodeError> {
    let p = a.payload;
    if p.len() > 16 {
        return err(format!("{what}: {} bytes, expected at most 16", p.len()));
    }
    let mut addr = [0u8; 16];
    addr[..p.len()].copy_from_slice(p);
    Ok(addr)
}

/// A NUL-terminated string (the terminator and anything after it dropped).
pub(super) fn get_string(a: &AttrRef, what: &str) -> Result<String, DecodeError> {
    let p = a.payload;
    let end = p.iter().position(|&b| b == 0).unwrap_or(p.len());
    String::from_utf8(p[..end].to_vec()).map_err(|_| DecodeError(format!("{what}: not UTF-8")))
}

pub(super) fn emit_string(out: &mut Vec<u8>, kind: u16, s: &str) {
    let mut p = s.as_bytes().to_vec();
    p.push(0);
    emit_attr(out, kind, &p);
}

pub(super) fn emit_others(out: &mut Vec<u8>, other: &[RawAttr]) {
    for a in other {
        emit_attr(out, a.kind, &a.payload);
    }
}

/// Sets a field, refusing a second copy of the same attribute.
pub(super) fn once<T>(slot: &mut Option<T>, value: T, what: &str) -> Result<(), DecodeError> {
    if slot.is_some() {
        return err(format!("{what}: repeated"));
    }
    *slot = Some(value);
    Ok(())
}

/// Reads `a` with `get` into `slot`, once; `what` names the attribute in
/// either error (bad width or repeated).
pub(super) fn set<T>(
    slot: &mut Option<T>,
    a: &AttrRef,
    what: &str,
    get: impl FnOnce(&AttrRef, &str) -> Result<T, DecodeError>,
) -> Result<(), DecodeError> {
    let value = get(a, what)?;
    once(slot, value, what)
}

impl fmt::Display for RawAttr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "attribute {} ({} bytes)", self.id(), self.payload.len())
    }
}
