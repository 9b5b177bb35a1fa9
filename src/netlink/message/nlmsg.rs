//! Netlink messages (`struct nlmsghdr`): the header, the messages of a
//! datagram walked in place, and `NLMSG_ERROR` (an ack or a refusal, with
//! the extended-ack attributes).
//!
//! Invariant: pure; knows nothing of generic netlink or IPVS.

use super::attr::*;

/// Netlink message header length (`struct nlmsghdr`).
pub const NLMSG_HDRLEN: usize = 16;

pub const NLMSG_NOOP: u16 = 1;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLMSG_OVERRUN: u16 = 4;

pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_MULTI: u16 = 0x2;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP_INTR: u16 = 0x10;
pub const NLM_F_DUMP: u16 = 0x300;
/// In an error message: the original request was not echoed in full.
pub const NLM_F_CAPPED: u16 = 0x100;
/// In an error message: extended-ack attributes follow.
pub const NLM_F_ACK_TLVS: u16 = 0x200;

/// `NLMSGERR_ATTR_MSG`: the extended-ack error string.
pub const NLMSGERR_ATTR_MSG: u16 = 1;

/// `struct nlmsghdr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub len: u32,
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    pub pid: u32,
}

impl Header {
    pub fn parse(b: &[u8]) -> Result<Header, DecodeError> {
        if b.len() < NLMSG_HDRLEN {
            return err(format!(
                "{} bytes, expected a {NLMSG_HDRLEN}-byte header",
                b.len()
            ));
        }
        Ok(Header {
            len: u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
            kind: u16::from_ne_bytes([b[4], b[5]]),
            flags: u16::from_ne_bytes([b[6], b[7]]),
            seq: u32::from_ne_bytes([b[8], b[9], b[10], b[11]]),
            pid: u32::from_ne_bytes([b[12], b[13], b[14], b[15]]),
        })
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.len.to_ne_bytes());
        out.extend_from_slice(&self.kind.to_ne_bytes());
        out.extend_from_slice(&self.flags.to_ne_bytes());
        out.extend_from_slice(&self.seq.to_ne_bytes());
        out.extend_from_slice(&self.pid.to_ne_bytes());
    }
}

/// One netlink message: header and payload (after the header, unpadded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    pub header: Header,
    pub payload: &'a [u8],
}

/// The messages of a received datagram, borrowed, one at a time (no
/// allocation); an error (and then nothing) for a malformed one.
pub struct MessageIter<'a> {
    buf: &'a [u8],
}

impl<'a> Iterator for MessageIter<'a> {
    type Item = Result<Message<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        let buf = self.buf;
        if buf.is_empty() {
            return None;
        }
        let header = match Header::parse(buf) {
            Ok(h) => h,
            Err(e) => {
                self.buf = &[];
                return Some(Err(e));
            }
        };
        let len = header.len as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            self.buf = &[];
            return Some(err(format!(
                "message length {len} with {} bytes left",
                buf.len()
            )));
        }
        self.buf = &buf[align(len).min(buf.len())..];
        Some(Ok(Message {
            header,
            payload: &buf[NLMSG_HDRLEN..len],
        }))
    }
}

/// Iterates over the messages of a received datagram.
pub fn messages(buf: &[u8]) -> MessageIter<'_> {
    MessageIter { buf }
}

/// Splits a received datagram into its messages.
pub fn split_messages(buf: &[u8]) -> Result<Vec<Message<'_>>, DecodeError> {
    messages(buf).collect()
}

/// Appends a whole message: header (with the right length), payload, padding.
pub fn emit_message(out: &mut Vec<u8>, kind: u16, flags: u16, seq: u32, payload: &[u8]) {
    let len = NLMSG_HDRLEN + payload.len();
    Header {
        len: len as u32,
        kind,
        flags,
        seq,
        pid: 0,
    }
    .emit(out);
    out.extend_from_slice(payload);
    out.resize(out.len() + (align(len) - len), 0);
}

/// An `NLMSG_ERROR` message: an ack (`errno == 0`) or a refusal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorMsg {
    /// Positive errno; 0 for an ack.
    pub errno: i32,
    /// The header of the request this answers.
    pub request: Header,
    /// The request's payload as echoed (empty when capped).
    pub echoed: Vec<u8>,
    /// The extended-ack message, if the kernel gave one.
    pub ext_msg: Option<String>,
    /// Other extended-ack attributes.
    pub other: Vec<RawAttr>,
}

impl ErrorMsg {
    /// Parses the payload of an `NLMSG_ERROR` message with header `flags`.
    pub fn parse(flags: u16, p: &[u8]) -> Result<ErrorMsg, DecodeError> {
        if p.len() < 4 + NLMSG_HDRLEN {
            return err(format!("error message of {} bytes", p.len()));
        }
        let error = i32::from_ne_bytes([p[0], p[1], p[2], p[3]]);
        let request = Header::parse(&p[4..])?;
        let rest = &p[4 + NLMSG_HDRLEN..];
        // Without NLM_F_CAPPED the whole request follows (its length as the
        // request header says); with it, only the header was echoed.
        let echoed_len = if flags & NLM_F_CAPPED != 0 {
            0
        } else {
            (request.len as usize)
                .checked_sub(NLMSG_HDRLEN)
                .ok_or_else(|| DecodeError("echoed request shorter than its header".into()))?
        };
        if echoed_len > rest.len() {
            return err(format!(
                "echoed request of {echoed_len} bytes, {} left",
                rest.len()
            ));
        }
        let echoed = rest[..echoed_len].to_vec();
        let tlvs = &rest[align(echoed_len).min(rest.len())..];
        let (ext_msg, other) = if flags & NLM_F_ACK_TLVS != 0 {
            Self::parse_ack_tlvs(tlvs)?
        } else if tlvs.iter().any(|&b| b != 0) {
            return err("bytes after the echoed request without NLM_F_ACK_TLVS");
        } else {
            (None, Vec::new())
        };
        Ok(ErrorMsg {
            errno: error.checked_neg().unwrap_or(i32::MAX),
            request,
            echoed,
            ext_msg,
            other,
        })
    }

    /// The extended-ack attributes: the message (its first copy) and the
    /// rest as they came.
    fn parse_ack_tlvs(tlvs: &[u8]) -> Result<(Option<String>, Vec<RawAttr>), DecodeError> {
        let mut ext_msg = None;
        let mut other = Vec::new();
        for a in attr_refs(tlvs) {
            let a = a?;
            if a.id() == NLMSGERR_ATTR_MSG && ext_msg.is_none() {
                ext_msg = Some(get_string(&a, "extended ack message")?);
            } else {
                other.push(a.owned());
            }
        }
        Ok((ext_msg, other))
    }

    /// The header flags this message needs (`NLM_F_CAPPED`, `NLM_F_ACK_TLVS`).
    pub fn flags(&self) -> u16 {
        let mut flags = 0;
        if self.echoed.is_empty() {
            flags |= NLM_F_CAPPED;
        }
        if self.ext_msg.is_some() || !self.other.is_empty() {
            flags |= NLM_F_ACK_TLVS;
        }
        flags
    }

    /// The payload, as the kernel writes it.
    pub fn emit(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.errno.wrapping_neg().to_ne_bytes());
        let mut request = self.request;
        if !self.echoed.is_empty() {
            request.len = (NLMSG_HDRLEN + self.echoed.len()) as u32;
        }
        request.emit(&mut out);
        out.extend_from_slice(&self.echoed);
        out.resize(align(out.len()), 0);
        if let Some(m) = &self.ext_msg {
            emit_string(&mut out, NLMSGERR_ATTR_MSG, m);
        }
        emit_others(&mut out, &self.other);
        out
    }
}
