//! The kernel IPVS client: one generic netlink socket, the `IPVS` family
//! resolved on it, GET_INFO, dumps of services and dests, and pipelined
//! execution of ops.
//!
//! neli provides the socket only (`neli::socket::NlSocket`: socket, bind,
//! send, recv). Its typed-attribute and router layers are not used: the
//! router owns sequence numbers and waits for each ack before the next
//! request, which rules out pipelining, and clusterf needs byte-exact,
//! fixture-tested messages that keep unknown attributes, which `message`
//! provides.
//!
//! Set `CLUSTERF_NETLINK_TRACE=1` to hex-dump every datagram to stderr (that
//! is how the byte fixtures in `tests/fixtures/netlink/` were captured).
//!
//! Invariant: executes what it is given, in order; decides nothing. Never
//! flushes unless [`Client::flush`] is called.

use std::collections::BTreeMap;
use std::io;

use anyhow::{Context, Result, anyhow, bail};
use neli::consts::socket::{Msg, NlFamily};
use neli::socket::NlSocket;
use neli::utils::Groups;

use crate::model::traffic::TrafficTable;
use crate::model::{Dest, IpvsState, LiveTable, Op, Service, ServiceAttrs, ServiceKey};

use super::dump::{self, DestTable, Progress};
use super::error::{ENOENT, KernelError};
use super::mapping;
use super::message::*;
use super::pipeline::{self, PartialFailure, Report, Tracker};

/// Hint when the kernel has no IPVS family.
pub const NO_IPVS: &str = "ipvs is not available in this kernel: modprobe ip_vs";
/// Request bytes per `sendmsg` at most (a dest request is about 144):
/// fewer, larger batches save the fixed cost of a `sendmsg` and its ack.
/// The kernel runs the whole batch inside `sendmsg` and refuses a datagram
/// larger than the send buffer (`EMSGSIZE`), so the budget is also kept
/// under what the socket's send buffer allows.
pub const BATCH_BYTES: usize = 128 << 10;
/// Receive buffer each request of a batch may need. What comes back from a
/// batch is one message per failed request plus the ack of the last one
/// (see `pipeline`), all queued before the first is read; a refusal costs
/// well under 2 KiB (its skb truesize with the echoed request). A batch
/// holds at most the receive buffer over this, so even a batch that fails
/// entirely loses no message.
const ERROR_TRUESIZE: usize = 2 << 10;
/// Receive buffer asked for, forced past `rmem_max` where the process may
/// (`CAP_NET_ADMIN`, which changing IPVS needs anyway).
const RCVBUF: usize = 4 << 20;
/// Read buffer: dump datagrams are at most 32 KiB.
const READ_BUF: usize = 256 << 10;

/// The kernel's IPVS version and connection table size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Info {
    pub version: u32,
    pub conn_tab_size: u32,
}

impl Info {
    /// `1.2.1`
    pub fn version_string(&self) -> String {
        let v = self.version;
        format!("{}.{}.{}", (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff)
    }
}

/// An open socket with the IPVS family resolved.
pub struct Client {
    sock: NlSocket,
    family: u16,
    seq: u32,
    buf: Vec<u8>,
    /// Scratch space for the request being built and sent.
    req: Vec<u8>,
    payload: Vec<u8>,
    /// Requests and bytes per `sendmsg` at most, from the socket's buffers.
    budget: pipeline::Budget,
    trace: bool,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Client {
    /// Opens the socket and resolves the `IPVS` family.
    pub fn connect() -> Result<Client> {
        let sock = NlSocket::connect(NlFamily::Generic, None, Groups::empty())
            .context("opening a generic netlink socket")?;
        let budget = size_buffers(&sock);
        let seed = std::process::id().wrapping_mul(0x9e37_79b9);
        let mut client = Client {
            sock,
            family: 0,
            seq: seed,
            buf: vec![0; READ_BUF],
            req: Vec::new(),
            payload: Vec::new(),
            budget,
            trace: std::env::var_os("CLUSTERF_NETLINK_TRACE").is_some_and(|v| v == "1"),
        };
        client.family = client.resolve_family()?;
        Ok(client)
    }

    fn next_seq(&mut self, n: u32) -> u32 {
        let s = self.seq;
        self.seq = self.seq.wrapping_add(n);
        s
    }

    fn send(&self, bytes: &[u8]) -> io::Result<()> {
        if self.trace {
            eprintln!("netlink send: {}", hex(bytes));
        }
        let n = self.sock.send(bytes, Msg::empty())?;
        if n != bytes.len() {
            return Err(io::Error::other(format!(
                "short netlink send: {n} of {} bytes",
                bytes.len()
            )));
        }
        Ok(())
    }

    /// Receives up to two datagrams with one `recvmmsg` (waiting for the
    /// first only) into the two halves of `self.buf`; the (start, length)
    /// of each. A dest dump is usually two datagrams: the dests, and the
    /// `NLMSG_DONE` that the kernel queues while the first is read; this
    /// saves a system call per service.
    fn recv_two(&mut self) -> io::Result<([(usize, usize); 2], usize)> {
        use std::os::fd::AsRawFd as _;
        let half = self.buf.len() / 2;
        let (a, b) = self.buf.split_at_mut(half);
        let mut iov = [
            libc::iovec {
                iov_base: a.as_mut_ptr().cast(),
                iov_len: a.len(),
            },
            libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            },
        ];
        // SAFETY: mmsghdr is plain data; all-zero is a valid empty header.
        let mut msgs: [libc::mmsghdr; 2] = unsafe { std::mem::zeroed() };
        for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: two headers, each pointing at its own iovec over its own
        // half of `self.buf`, all alive for the duration of the call.
        let n = unsafe {
            libc::recvmmsg(
                self.sock.as_raw_fd(),
                msgs.as_mut_ptr(),
                2,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = (n as usize).min(2);
        let mut out = [(0, 0); 2];
        for i in 0..n {
            if msgs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                return Err(io::Error::other("netlink datagram truncated"));
            }
            let len = (msgs[i].msg_len as usize).min(half);
            out[i] = (i * half, len);
            if self.trace {
                eprintln!("netlink recv: {}", hex(&self.buf[i * half..i * half + len]));
            }
        }
        Ok((out, n))
    }

    /// Receives one datagram into `self.buf`; its length.
    fn recv(&mut self) -> io::Result<usize> {
        let (n, _) = self.sock.recv(&mut self.buf[..], Msg::TRUNC)?;
        if n > self.buf.len() {
            return Err(io::Error::other(format!(
                "netlink datagram of {n} bytes truncated"
            )));
        }
        if self.trace {
            eprintln!("netlink recv: {}", hex(&self.buf[..n]));
        }
        Ok(n)
    }

    /// Sends one request; its sequence number.
    fn request(&mut self, kind: u16, flags: u16, payload: &[u8]) -> Result<u32> {
        let seq = self.next_seq(1);
        self.req.clear();
        emit_message(&mut self.req, kind, flags | NLM_F_REQUEST, seq, payload);
        let req = std::mem::take(&mut self.req);
        let sent = self.send(&req);
        self.req = req;
        sent.context("netlink send")?;
        Ok(seq)
    }

    /// Receives the replies to request `seq` (sent with `flags`) until they
    /// end, passing each payload to `each` straight from the read buffer.
    /// See [`dump::walk`] for where replies end.
    fn replies(
        &mut self,
        seq: u32,
        flags: u16,
        mut each: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let single = flags & NLM_F_ACK == 0 && flags & NLM_F_DUMP == 0;
        loop {
            let n = self.recv().context("netlink receive")?;
            if dump::walk(&self.buf[..n], seq, single, &mut each)? == Progress::Done {
                return Ok(());
            }
        }
    }

    /// One request; the payloads of the replies to it, in order. Ends at
    /// the ack (`NLM_F_ACK`), at `NLMSG_DONE` (dumps), or at the single
    /// reply of a plain request.
    fn transact(&mut self, kind: u16, flags: u16, payload: &[u8]) -> Result<Vec<Vec<u8>>> {
        let seq = self.request(kind, flags, payload)?;
        let mut replies = Vec::new();
        self.replies(seq, flags, |p| {
            replies.push(p.to_vec());
            Ok(())
        })?;
        Ok(replies)
    }

    fn resolve_family(&mut self) -> Result<u16> {
        let replies = match self.transact(GENL_ID_CTRL, 0, &FamilyMsg::get(IPVS_GENL_NAME).emit()) {
            Err(e)
                if e.downcast_ref::<KernelError>()
                    .is_some_and(|k| k.errno == ENOENT) =>
            {
                bail!(NO_IPVS)
            }
            r => r.context("resolving the IPVS generic netlink family")?,
        };
        let reply = replies
            .first()
            .ok_or_else(|| anyhow!("no reply resolving IPVS"))?;
        FamilyMsg::parse(reply)?
            .id
            .ok_or_else(|| anyhow!("the kernel's IPVS family reply has no id"))
    }

    fn ipvs_request(&mut self, flags: u16, msg: &IpvsMsg) -> Result<Vec<IpvsMsg>> {
        let family = self.family;
        self.transact(family, flags, &msg.emit())?
            .iter()
            .map(|p| IpvsMsg::parse(p).map_err(anyhow::Error::from))
            .collect()
    }

    /// IPVS_CMD_GET_INFO.
    pub fn info(&mut self) -> Result<Info> {
        let replies = self
            .ipvs_request(0, &IpvsMsg::request(IPVS_CMD_GET_INFO, None, None))
            .context("reading ipvs info")?;
        for r in replies {
            if let Body::Info(i) = r.body {
                return Ok(Info {
                    version: i.version.unwrap_or(0),
                    conn_tab_size: i.conn_tab_size.unwrap_or(0),
                });
            }
        }
        bail!("reading ipvs info: no reply")
    }

    /// Dumps every service.
    pub fn services(&mut self) -> Result<Vec<ServiceMsg>> {
        let mut out = Vec::new();
        self.each_service(|s| {
            out.push(s);
            Ok(())
        })?;
        Ok(out)
    }

    /// Dumps every service, handing each to `each` as its reply is read
    /// (no reply held past it).
    fn each_service(&mut self, mut each: impl FnMut(ServiceMsg) -> Result<()>) -> Result<()> {
        let family = self.family;
        let get = IpvsMsg::request(IPVS_CMD_GET_SERVICE, None, None).emit();
        let seq = self.request(family, NLM_F_DUMP, &get);
        let result = seq.and_then(|seq| {
            self.replies(seq, NLM_F_DUMP, |p| match IpvsMsg::parse(p)?.body {
                Body::Objects {
                    service: Some(s), ..
                } => each(s),
                _ => Ok(()),
            })
        });
        result.context("dumping ipvs services")
    }

    /// Dumps the dests of one service (with their counters unless
    /// `without_stats`), sorted by address.
    pub fn dests(&mut self, key: &ServiceKey, without_stats: bool) -> Result<DestTable> {
        let mut table = DestTable {
            without_stats,
            ..DestTable::default()
        };
        self.dests_into(key, &mut table)?;
        Ok(table)
    }

    /// [`Client::dests`] into `table`, emptied first (its room kept).
    fn dests_into(&mut self, key: &ServiceKey, table: &mut DestTable) -> Result<()> {
        table.dests.clear();
        self.dump_dests(key, |p| table.add(key, p))?;
        table.sort();
        Ok(())
    }

    /// The traffic counters of every service, and of every dest when
    /// `per_dest` (one more dump per service).
    pub fn traffic(&mut self, per_dest: bool) -> Result<TrafficTable> {
        let mut table = TrafficTable::default();
        for s in self.services()? {
            let key = mapping::service_key(&s).map_err(|e| anyhow!(e))?;
            table
                .services
                .insert(key, mapping::traffic(&s.stats, &s.stats64));
            if per_dest {
                let mut dests = BTreeMap::new();
                self.dump_dests(&key, |p| {
                    if let Some((addr, t)) = mapping::dest_traffic(&key, p)? {
                        dests.insert(addr, t);
                    }
                    Ok(())
                })?;
                table.dests.insert(key, dests);
            }
        }
        Ok(table)
    }

    /// Dumps the dests of one service, handing each reply payload to
    /// `each`.
    fn dump_dests(
        &mut self,
        key: &ServiceKey,
        mut each: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let family = self.family;
        let get = IpvsMsg::request(IPVS_CMD_GET_DEST, Some(mapping::service_id(key)), None);
        get.emit_into(&mut self.payload);
        let payload = std::mem::take(&mut self.payload);
        let sent = self.request(family, NLM_F_DUMP, &payload);
        self.payload = payload;
        let seq = sent.with_context(|| format!("dumping the dests of {key}"))?;
        let result = (|| -> Result<()> {
            loop {
                let (got, n) = self.recv_two().context("netlink receive")?;
                for &(start, len) in &got[..n] {
                    let datagram = &self.buf[start..start + len];
                    if dump::walk(datagram, seq, false, &mut each)? == Progress::Done {
                        return Ok(());
                    }
                }
            }
        })();
        result.with_context(|| format!("dumping the dests of {key}"))
    }

    /// The whole live table with counters.
    pub fn read(&mut self) -> Result<LiveTable> {
        self.read_with(false)
    }

    /// The whole live table without counters (`LiveTable::stats` empty):
    /// what a plan needs, with less to build.
    pub fn read_state(&mut self) -> Result<IpvsState> {
        Ok(self.read_plain()?.state)
    }

    /// The whole live table without counters: [`Client::read_state`]'s
    /// table.
    pub fn read_plain(&mut self) -> Result<LiveTable> {
        self.read_with(true)
    }

    fn read_with(&mut self, without_stats: bool) -> Result<LiveTable> {
        let mut live = LiveTable::default();
        self.read_each(without_stats, |key, attrs, table| {
            let mut service = Service::new(attrs);
            let mut stats = BTreeMap::new();
            for &(addr, attrs, counted) in &table.dests {
                let dest = Dest {
                    attrs,
                    provenance: Box::default(),
                };
                service.dests.insert(addr, dest);
                stats.extend(counted.map(|c| (addr, c)));
            }
            live.state.services.insert(key, service);
            if !without_stats {
                live.stats.insert(key, stats);
            }
        })?;
        Ok(live)
    }

    /// Reads the whole table a service at a time: `each` gets every
    /// service (in the kernel's order) with its dests sorted by address
    /// (with their counters unless `without_stats`), in a table that is
    /// reused for the next service. Only the services' keys and attributes
    /// are held whole meanwhile: the caller keeps the table in the form
    /// it likes.
    pub fn read_each(
        &mut self,
        without_stats: bool,
        mut each: impl FnMut(ServiceKey, ServiceAttrs, &DestTable),
    ) -> Result<()> {
        let mut services = Vec::new();
        self.each_service(|s| {
            services.push(mapping::service_from(&s).map_err(|e| anyhow!(e))?);
            Ok(())
        })?;
        let mut table = DestTable {
            without_stats,
            ..DestTable::default()
        };
        for (key, attrs) in services {
            self.dests_into(&key, &mut table)?;
            each(key, attrs, &table);
        }
        Ok(())
    }

    /// IPVS_CMD_FLUSH: deletes every service. Only on explicit request.
    pub fn flush(&mut self) -> Result<()> {
        self.ipvs_request(NLM_F_ACK, &IpvsMsg::request(IPVS_CMD_FLUSH, None, None))
            .context("flushing ipvs")?;
        Ok(())
    }

    /// Executes `ops` in order, pipelined: as many requests per `sendmsg`
    /// as the socket's buffers allow (see [`BATCH_BYTES`]), acks matched by
    /// sequence number. An op the kernel refuses fails its service: the
    /// rest of that service's ops is skipped, every other service goes on;
    /// a transport failure stops the run. See `pipeline` for exactly what
    /// is reported. `CLUSTERF_NETLINK_BATCH=N` (1..=4096) sends N requests
    /// per `sendmsg` instead, within the send buffer, for benchmarks (1 is
    /// one round trip per request).
    pub fn apply(&mut self, ops: &[Op]) -> Result<Report, PartialFailure> {
        let fixed = std::env::var("CLUSTERF_NETLINK_BATCH")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| (1..=4096).contains(n));
        let budget = match fixed {
            Some(ops) => pipeline::Budget {
                ops,
                bytes: self.budget.send_limit,
                ..self.budget
            },
            None => self.budget,
        };
        self.apply_within(ops, budget)
    }

    /// [`Client::apply`] with at most `batch` requests per `sendmsg`
    /// (benchmarks, tests).
    pub fn apply_batched(&mut self, ops: &[Op], batch: usize) -> Result<Report, PartialFailure> {
        let budget = pipeline::Budget {
            ops: batch,
            ..self.budget
        };
        self.apply_within(ops, budget)
    }

    fn apply_within(
        &mut self,
        ops: &[Op],
        budget: pipeline::Budget,
    ) -> Result<Report, PartialFailure> {
        let payloads = pipeline::encode_all(ops);
        let seq0 = self.next_seq(ops.len() as u32);
        let mut tracker = Tracker::new(ops, seq0);
        let mut batches = 0;
        let mut bytes = Vec::new();
        loop {
            let next = tracker.next_batch(&payloads, &budget);
            if next.is_empty() {
                break;
            }
            pipeline::batch_bytes_into(&mut bytes, self.family, &payloads, &next, seq0);
            if let Err(e) = self.send(&bytes) {
                // Nothing of this datagram was processed.
                tracker.lose_pending(format!("netlink send: {e}"));
                break;
            }
            batches += 1;
            tracker.sent(next);
            self.await_acks(&mut tracker);
            if tracker.stopped() {
                break;
            }
        }
        tracker.finish(batches)
    }

    /// Receives until the batch in flight is settled (or its acks are
    /// lost).
    fn await_acks(&mut self, tracker: &mut Tracker<'_>) {
        while tracker.pending() > 0 {
            let n = match self.recv() {
                Ok(n) => n,
                Err(e) => {
                    tracker.lose_pending(format!("netlink receive: {e}"));
                    return;
                }
            };
            for m in messages(&self.buf[..n]) {
                let m = match m {
                    Ok(m) => m,
                    Err(e) => {
                        tracker.lose_pending(e.to_string());
                        return;
                    }
                };
                if m.header.kind != NLMSG_ERROR {
                    continue;
                }
                match ErrorMsg::parse(m.header.flags, m.payload) {
                    Ok(e) => {
                        tracker.ack(&e);
                    }
                    Err(e) => {
                        tracker.lose_pending(e.to_string());
                        return;
                    }
                }
            }
        }
    }
}

/// Sizes the socket's receive buffer (forced past `rmem_max` where allowed,
/// else as large as it lets) and derives the batch budget from the buffers
/// the kernel granted.
fn size_buffers(sock: &NlSocket) -> pipeline::Budget {
    use std::os::fd::AsRawFd as _;
    let fd = sock.as_raw_fd();
    // Best effort: a larger buffer only allows larger batches.
    if set_int(fd, libc::SO_RCVBUFFORCE, RCVBUF).is_err() {
        let _ = set_int(fd, libc::SO_RCVBUF, RCVBUF);
    }
    // The kernel reports the doubled values it accounts against.
    let rcvbuf = get_int(fd, libc::SO_RCVBUF).unwrap_or(0);
    let sndbuf = get_int(fd, libc::SO_SNDBUF).unwrap_or(0);
    pipeline::Budget::from_buffers(rcvbuf, sndbuf, ERROR_TRUESIZE, BATCH_BYTES)
}

pub(super) fn set_int(fd: libc::c_int, opt: libc::c_int, value: usize) -> io::Result<()> {
    let v = libc::c_int::try_from(value).unwrap_or(libc::c_int::MAX);
    // SAFETY: a valid fd and a pointer to a c_int of the given size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            (&raw const v).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn get_int(fd: libc::c_int, opt: libc::c_int) -> io::Result<usize> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: a valid fd, a c_int to write into and its length.
    let rc = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, opt, (&raw mut v).cast(), &mut len) };
    if rc == 0 {
        Ok(usize::try_from(v).unwrap_or(0))
    } else {
        Err(io::Error::last_os_error())
    }
}
