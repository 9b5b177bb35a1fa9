//! Replies to a request, one received datagram at a time: the messages
//! are walked in place (no copy of the datagram or of any payload), and the
//! dests of a service's dump go straight into model values.
//!
//! Invariant: pure (bytes in, values out); never touches a socket (that is
//! `client`'s loop) and decides nothing about what to change.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use anyhow::{Result, anyhow, bail};

use crate::model::{Dest, DestStats, ServiceKey};

use super::error::KernelError;
use super::mapping;
use super::message::*;

/// Whether the replies to a request have ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    More,
    Done,
}

/// Walks the messages of `datagram` that answer the request with sequence
/// number `seq` (others are skipped), passing each reply's payload to
/// `each`. The replies end at the ack or `NLMSG_DONE`, or, when `single`
/// (a plain request without `NLM_F_ACK`), at the first reply that is not
/// part of a multipart answer. A refusal is a [`KernelError`].
pub fn walk(
    datagram: &[u8],
    seq: u32,
    single: bool,
    mut each: impl FnMut(&[u8]) -> Result<()>,
) -> Result<Progress> {
    for m in messages(datagram) {
        let m = m?;
        if m.header.seq != seq {
            continue;
        }
        if m.header.flags & NLM_F_DUMP_INTR != 0 {
            bail!("the kernel table changed during the dump; try again");
        }
        match m.header.kind {
            NLMSG_ERROR => {
                let e = ErrorMsg::parse(m.header.flags, m.payload)?;
                if e.errno != 0 {
                    return Err(KernelError {
                        errno: e.errno,
                        ext_msg: e.ext_msg,
                    }
                    .into());
                }
                return Ok(Progress::Done);
            }
            NLMSG_DONE => {
                if let [a, b, c, d, ..] = *m.payload {
                    let e = i32::from_ne_bytes([a, b, c, d]);
                    if e < 0 {
                        return Err(KernelError {
                            errno: e.checked_neg().unwrap_or(i32::MAX),
                            ext_msg: None,
                        }
                        .into());
                    }
                }
                return Ok(Progress::Done);
            }
            NLMSG_NOOP => {}
            NLMSG_OVERRUN => bail!("netlink overrun"),
            _ => {
                each(m.payload)?;
                if single && m.header.flags & NLM_F_MULTI == 0 {
                    return Ok(Progress::Done);
                }
            }
        }
    }
    Ok(Progress::More)
}

/// The dests of one service as its `IPVS_CMD_GET_DEST` dump reports them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DestTable {
    pub dests: BTreeMap<SocketAddr, Dest>,
    /// Connection counters, unless [`DestTable::without_stats`].
    pub stats: BTreeMap<SocketAddr, DestStats>,
    /// Leave `stats` empty (a plan needs no counters).
    pub without_stats: bool,
}

impl DestTable {
    /// Adds the dest of one reply payload (a generic netlink IPVS message).
    pub fn add(&mut self, service: &ServiceKey, payload: &[u8]) -> Result<()> {
        let Some(d) = IpvsMsg::parse_dest_lean(payload)? else {
            return Ok(());
        };
        let (addr, attrs, stats) = mapping::dest_from(service, &d).map_err(|e| anyhow!(e))?;
        self.dests.insert(
            addr,
            Dest {
                attrs,
                provenance: Box::default(),
                health: None,
            },
        );
        if !self.without_stats {
            self.stats.insert(addr, stats);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tunnel::Tunnel;
    use crate::model::{DestAttrs, Method};
    use crate::netlink::mapping::dest_full;

    fn dest_reply(seq: u32, flags: u16, dest: &str, attrs: &DestAttrs, tun: Option<u8>) -> Vec<u8> {
        let mut d = dest_full(&dest.parse().unwrap(), attrs);
        d.tun_type = tun;
        let msg = IpvsMsg {
            cmd: IPVS_CMD_NEW_DEST,
            version: 1,
            body: Body::Objects {
                service: None,
                dest: Some(d),
                other: Vec::new(),
            },
        };
        let mut out = Vec::new();
        emit_message(&mut out, 0x20, flags, seq, &msg.emit());
        out
    }

    #[test]
    fn a_dump_datagram_fills_the_table_and_done_ends_it() {
        let key: ServiceKey = "tcp://10.0.0.1:80".parse().unwrap();
        let masq = DestAttrs::new(Method::Masq, 10);
        let tun = DestAttrs::new(Method::Tunnel, 3);
        let mut datagram = dest_reply(7, NLM_F_MULTI, "10.1.0.1:8080", &masq, None);
        datagram.extend(dest_reply(7, NLM_F_MULTI, "10.1.0.2:80", &tun, Some(0)));
        datagram.extend(dest_reply(7, NLM_F_MULTI, "10.1.0.3:80", &tun, Some(1)));
        // A stranger's message is skipped.
        datagram.extend(dest_reply(8, NLM_F_MULTI, "10.1.0.9:80", &masq, None));
        let mut lean = DestTable {
            without_stats: true,
            ..DestTable::default()
        };
        walk(&datagram, 7, false, |p| lean.add(&key, p)).unwrap();
        assert_eq!((lean.dests.len(), lean.stats.len()), (3, 0));
        let mut table = DestTable::default();
        let p = walk(&datagram, 7, false, |p| table.add(&key, p)).unwrap();
        assert_eq!(p, Progress::More);
        assert_eq!(table.dests.len(), 3);
        assert_eq!(table.stats.len(), 3);
        assert_eq!(lean.dests, table.dests);
        let a3: SocketAddr = "10.1.0.3:80".parse().unwrap();
        // The kernel's encapsulation is the dest's.
        let gue = Tunnel {
            kind: 1,
            port: 0,
            flags: 0,
        };
        assert_eq!(table.dests[&a3].attrs, DestAttrs { tunnel: gue, ..tun });
        let mut done = Vec::new();
        emit_message(&mut done, NLMSG_DONE, NLM_F_MULTI, 7, &0i32.to_ne_bytes());
        assert_eq!(
            walk(&done, 7, false, |_| panic!("no payload")).unwrap(),
            Progress::Done
        );
        // A negative NLMSG_DONE status and an error are kernel errors.
        let mut bad = Vec::new();
        emit_message(&mut bad, NLMSG_DONE, NLM_F_MULTI, 7, &(-3i32).to_ne_bytes());
        let e = walk(&bad, 7, false, |_| Ok(())).unwrap_err();
        assert_eq!(e.downcast_ref::<KernelError>().unwrap().errno, 3);
        let mut intr = dest_reply(7, NLM_F_MULTI | NLM_F_DUMP_INTR, "10.1.0.1:80", &masq, None);
        intr.truncate(intr.len());
        assert!(walk(&intr, 7, false, |_| Ok(())).is_err());
        assert!(walk(&datagram[..30], 7, false, |_| Ok(())).is_err());
    }

    #[test]
    fn a_plain_request_ends_at_its_single_reply() {
        let key: ServiceKey = "tcp://10.0.0.1:80".parse().unwrap();
        let r = dest_reply(5, 0, "10.1.0.1:80", &DestAttrs::new(Method::Masq, 1), None);
        let mut n = 0;
        assert_eq!(
            walk(&r, 5, true, |_| {
                n += 1;
                Ok(())
            })
            .unwrap(),
            Progress::Done
        );
        assert_eq!(n, 1);
        let mut t = DestTable::default();
        assert_eq!(
            walk(&r, 5, false, |p| t.add(&key, p)).unwrap(),
            Progress::More
        );
    }
}
