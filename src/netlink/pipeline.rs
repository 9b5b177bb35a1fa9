//! Pipelined execution bookkeeping: which ops go out together, the request
//! bytes of a batch, matching acks to ops by sequence number, failure
//! isolation by service, and the report of what was and was not applied.
//!
//! How a batch behaves in the kernel, and why batches are cut where they are:
//! the kernel runs every message of one `sendmsg` in order, inside that
//! call, and acks each one (`netlink_rcv_skb`); a refused message does NOT
//! stop the messages after it in the same datagram. clusterf reports the
//! truth from the acks (each op is `applied`, `failed`, `skipped`, or `not
//! sent`; `unknown` only if acks were lost).
//!
//! Failure isolation: an op that is refused (by the kernel, or because it
//! cannot be encoded) fails its own service. The ops of that service not
//! yet sent are skipped, so the service stays where make-before-break left
//! it; every other service's ops are still sent. This is the one decision
//! apply makes, and the plan's contract states it (`crate::plan`). Ops of
//! the failed service already in flight in the same datagram still run;
//! that is harmless because an op that takes capacity away (delete a
//! service or dest, edit a dest) is never in flight together with an
//! earlier op that adds or edits a service or adds a dest: when an add
//! fails, no break after it has been sent. Only a transport failure (a
//! send or receive error, lost acks) stops the whole run.
//!
//! Acks: only the last request of a batch carries `NLM_F_ACK`. The kernel
//! answers a request without it only when it fails (`netlink_rcv_skb` acks
//! on `NLM_F_ACK` or an error), and it runs a batch in order, so the last
//! request's ack (or error) comes after every error of the batch: when it
//! arrives, every request of the batch that got no error was applied. That
//! is one datagram to receive per batch instead of one per request (each
//! ack is its own datagram, one `recvmsg` each), and a receive buffer that
//! holds errors only. A lost message (receive buffer overrun, `ENOBUFS`)
//! leaves the batch's outcome unknown and stops the run.
//!
//! Invariant: pure; the socket loop lives in `client`.

use std::collections::HashSet;
use std::fmt;
use std::fmt::Write as _;

use crate::model::{Op, ServiceKey};
use crate::text::plural;

use super::error;
use super::mapping;
use super::message::{ErrorMsg, NLM_F_ACK, NLM_F_REQUEST, NLMSG_HDRLEN, emit_message};

/// What happened to one op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The kernel acked it.
    Applied,
    /// The kernel (or encoding) refused it; the message names the object.
    Failed(String),
    /// Not sent: an earlier op of its service failed.
    Skipped,
    /// Never sent: the run stopped before it.
    NotSent,
    /// Sent, but its ack was lost (receive buffer overrun): unknown.
    Unknown,
    /// In flight (only while a batch is outstanding).
    Pending,
}

/// Every op was applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub applied: usize,
    /// `sendmsg` calls (datagrams of pipelined requests) it took.
    pub batches: usize,
}

/// Not every op was applied: which services failed, what stopped the run,
/// and the outcome of each op, in plan order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartialFailure {
    /// The services whose ops were refused, each with its first refusal,
    /// in the order they failed. The other services' ops were all sent.
    pub failed: Vec<(ServiceKey, String)>,
    /// What stopped the run before every op was sent or skipped (a
    /// transport error); `None` when only services failed.
    pub stopped: Option<String>,
    pub outcomes: Vec<Outcome>,
}

/// Failed services named in one line at most; the report lists them all.
const NAMED: usize = 5;
/// Op lines of the report at most.
const LISTED: usize = 100;

impl PartialFailure {
    /// Nothing was sent: `error` stopped the run before it began.
    pub fn before_start(error: String, ops: usize) -> Self {
        PartialFailure {
            failed: Vec::new(),
            stopped: Some(error),
            outcomes: vec![Outcome::NotSent; ops],
        }
    }

    pub fn count(&self, want: fn(&Outcome) -> bool) -> usize {
        self.outcomes.iter().filter(|o| want(o)).count()
    }

    pub fn applied(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Applied))
    }

    /// The report: a summary, each failed service with its refusal, then
    /// one line per op that was not applied (at most [`LISTED`]).
    pub fn describe(&self, ops: &[Op]) -> String {
        let mut tally = Tally::default();
        tally.services.clone_from(&self.failed);
        tally.stopped.clone_from(&self.stopped);
        for (op, outcome) in ops.iter().zip(&self.outcomes) {
            tally.record(op, outcome);
        }
        tally.describe()
    }
}

/// `2 services failed: dest ... of tcp://...: invalid argument; ...; the
/// other services were applied (applied 3996 of 4000 changes)`.
impl fmt::Display for PartialFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = summary_line(
            &self.failed,
            self.stopped.as_deref(),
            self.applied(),
            self.outcomes.len(),
        );
        f.write_str(&line)
    }
}

/// The one-line summary of a run (see [`PartialFailure`]'s `Display`).
fn summary_line(
    failed: &[(ServiceKey, String)],
    stopped: Option<&str>,
    applied: usize,
    ops: usize,
) -> String {
    let mut parts = Vec::new();
    if !failed.is_empty() {
        let mut named: Vec<&str> = failed
            .iter()
            .take(NAMED)
            .map(|(_, why)| why.as_str())
            .collect();
        let more = failed.len().saturating_sub(NAMED);
        let more = (more > 0).then(|| format!("and {more} more"));
        named.extend(more.as_deref());
        parts.push(format!(
            "{} failed: {}",
            plural(failed.len(), "service"),
            named.join("; ")
        ));
    }
    match stopped {
        Some(e) => parts.push(format!("stopped: {e}")),
        None => parts.push("the other services were applied".to_string()),
    }
    format!("{} (applied {applied} of {ops} changes)", parts.join("; "))
}

/// What a run did, kept op by op in bounded memory: the counts of each
/// outcome, the failed services, what stopped it and the first
/// [`LISTED`] ops not applied. A run given to the kernel a chunk at a
/// time (the daemon's apply) says with it what [`PartialFailure`] says of
/// a run given whole: the same line and report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    ops: usize,
    applied: usize,
    failed_ops: usize,
    skipped: usize,
    not_sent: usize,
    unknown: usize,
    /// The services whose ops were refused, each with its first refusal.
    services: Vec<(ServiceKey, String)>,
    stopped: Option<String>,
    /// The report's lines of the ops not applied, and how many there were.
    lines: String,
    listed: usize,
}

impl Tally {
    /// The next op of the run and what happened to it.
    pub fn record(&mut self, op: &Op, outcome: &Outcome) {
        let i = self.ops;
        self.ops += 1;
        let what = match outcome {
            Outcome::Applied => {
                self.applied += 1;
                return;
            }
            Outcome::Failed(_) => {
                self.failed_ops += 1;
                "failed"
            }
            Outcome::Skipped => {
                self.skipped += 1;
                "skipped"
            }
            Outcome::NotSent => {
                self.not_sent += 1;
                "not sent"
            }
            Outcome::Unknown | Outcome::Pending => {
                self.unknown += 1;
                "unknown"
            }
        };
        self.listed += 1;
        if self.listed > LISTED {
            return;
        }
        let out = &mut self.lines;
        let _ = write!(out, "  {:>4} {what:<8} {op}", i + 1);
        if let Outcome::Failed(m) = outcome {
            // The message names the object, which the line already did.
            let object = format!("{}: ", op.object());
            let _ = write!(out, ": {}", m.strip_prefix(&object).unwrap_or(m));
        }
        out.push('\n');
    }

    /// `applied` ops of the run, all applied.
    pub fn record_applied(&mut self, applied: usize) {
        self.ops += applied;
        self.applied += applied;
    }

    /// A service an op of which was refused, with why.
    pub fn fail_service(&mut self, service: ServiceKey, why: String) {
        self.services.push((service, why));
    }

    /// What stopped the run (the first reason is kept).
    pub fn stop(&mut self, why: String) {
        self.stopped.get_or_insert(why);
    }

    /// Whether every op recorded was applied.
    pub fn all_applied(&self) -> bool {
        self.applied == self.ops
    }

    /// The services that failed, in the order they failed.
    pub fn failed(&self) -> impl Iterator<Item = &ServiceKey> {
        self.services.iter().map(|(s, _)| s)
    }

    /// The one-line summary, as [`PartialFailure`]'s `Display`.
    pub fn line(&self) -> String {
        summary_line(
            &self.services,
            self.stopped.as_deref(),
            self.applied,
            self.ops,
        )
    }

    /// The report, as [`PartialFailure::describe`].
    pub fn describe(&self) -> String {
        let (failed, skipped, not_sent) = (self.failed_ops, self.skipped, self.not_sent);
        let mut out = format!(
            "applied {} of {} changes; not applied: {} ({failed} failed, {skipped} skipped after a failure in their service, {not_sent} never sent)",
            self.applied,
            self.ops,
            failed + skipped + not_sent,
        );
        if self.unknown > 0 {
            let _ = write!(out, "; {} unknown (acks lost)", self.unknown);
        }
        out.push('\n');
        if !self.services.is_empty() {
            let _ = writeln!(out, "{} failed:", plural(self.services.len(), "service"));
            for (service, why) in &self.services {
                let _ = writeln!(out, "  {service}: {why}");
            }
        }
        if let Some(e) = &self.stopped {
            let _ = writeln!(out, "stopped: {e}");
        }
        out.push_str(&self.lines);
        if self.listed > LISTED {
            let _ = writeln!(out, "  ... and {} more not applied", self.listed - LISTED);
        }
        out
    }
}

impl std::error::Error for PartialFailure {}

/// Whether the op can take capacity away.
pub fn is_break(op: &Op) -> bool {
    matches!(
        op,
        Op::DelService { .. } | Op::DelDest { .. } | Op::EditDest { .. }
    )
}

/// The request payloads of a run's ops, back to back in one buffer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Payloads {
    bytes: Vec<u8>,
    /// End of op `i`'s payload in `bytes`.
    ends: Vec<usize>,
    /// The ops that cannot be encoded (empty payloads), with why.
    refused: Vec<(usize, String)>,
}

impl Payloads {
    /// The payload of op `i`.
    pub fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }

    /// Why op `i` cannot be encoded, if it cannot.
    pub fn refused(&self, i: usize) -> Option<&str> {
        self.refused
            .iter()
            .find(|(j, _)| *j == i)
            .map(|(_, e)| e.as_str())
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// Encodes every op up front. An op that cannot be encoded gets an empty
/// payload and fails its service when its turn comes, like a refusal by
/// the kernel.
pub fn encode_all(ops: &[Op]) -> Payloads {
    // An IPv4 dest request is 124 bytes.
    let mut out = Payloads {
        bytes: Vec::with_capacity(ops.len() * 128),
        ends: Vec::with_capacity(ops.len()),
        refused: Vec::new(),
    };
    for (i, op) in ops.iter().enumerate() {
        let start = out.bytes.len();
        if let Err(e) = mapping::encode_op(op, &mut out.bytes) {
            out.bytes.truncate(start);
            out.refused.push((i, e));
        }
        out.ends.push(out.bytes.len());
    }
    out
}

/// How much one `sendmsg` may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Requests at most: a batch whose every request fails must fit the
    /// receive buffer (see the module documentation).
    pub ops: usize,
    /// Request bytes at most, headers included.
    pub bytes: usize,
    /// The largest datagram the socket's send buffer takes.
    pub send_limit: usize,
}

impl Budget {
    /// From the socket's buffers as the kernel reports them (0: unknown,
    /// then the kernel's defaults): requests so that `per_error` bytes of
    /// receive buffer for each still fit, bytes within the send buffer and
    /// `max_bytes`.
    pub fn from_buffers(
        rcvbuf: usize,
        sndbuf: usize,
        per_error: usize,
        max_bytes: usize,
    ) -> Budget {
        // The defaults of `rmem_default` and `wmem_default`.
        let rcvbuf = if rcvbuf == 0 { 212_992 } else { rcvbuf };
        let sndbuf = if sndbuf == 0 { 212_992 } else { sndbuf };
        // The kernel refuses a datagram over `sk_sndbuf - 32`; one request
        // is always let through.
        let send_limit = sndbuf.saturating_sub(64).max(1);
        Budget {
            ops: (rcvbuf / per_error.max(1)).max(1),
            bytes: max_bytes.min(send_limit),
            send_limit,
        }
    }
}

/// The bytes of op `i`'s request on the wire: header, payload, padding.
fn wire_len(payloads: &Payloads, i: usize) -> usize {
    (NLMSG_HDRLEN + payloads.get(i).len() + 3) & !3
}

/// The datagram of the batch of ops `batch` (indices, ascending): each
/// request with its own sequence number (`seq0` plus its index), the last
/// one with `NLM_F_ACK` (see the module documentation).
pub fn batch_bytes(family: u16, payloads: &Payloads, batch: &[usize], seq0: u32) -> Vec<u8> {
    let mut out = Vec::new();
    batch_bytes_into(&mut out, family, payloads, batch, seq0);
    out
}

/// [`batch_bytes`] into `out` (cleared first), reusing its allocation.
pub fn batch_bytes_into(
    out: &mut Vec<u8>,
    family: u16,
    payloads: &Payloads,
    batch: &[usize],
    seq0: u32,
) {
    out.clear();
    out.reserve(batch.iter().map(|&i| wire_len(payloads, i)).sum());
    let last = batch.last().copied();
    for &i in batch {
        let flags = if Some(i) == last {
            NLM_F_REQUEST | NLM_F_ACK
        } else {
            NLM_F_REQUEST
        };
        let seq = seq0.wrapping_add(i as u32);
        emit_message(out, family, flags, seq, payloads.get(i));
    }
}

/// Outcomes of a run, updated by acks; which ops go next.
#[derive(Clone, Debug)]
pub struct Tracker<'a> {
    ops: &'a [Op],
    pub outcomes: Vec<Outcome>,
    /// Sequence number of op 0.
    seq0: u32,
    /// The first op not yet sent, skipped or failed.
    next: usize,
    /// The batch in flight (indices, ascending); its last op's ack ends it.
    batch: Vec<usize>,
    pending: usize,
    /// Services with a refused op: the rest of their ops is skipped.
    failed_set: HashSet<ServiceKey>,
    failed: Vec<(ServiceKey, String)>,
    stopped: Option<String>,
}

impl<'a> Tracker<'a> {
    pub fn new(ops: &'a [Op], seq0: u32) -> Self {
        Tracker {
            ops,
            outcomes: vec![Outcome::NotSent; ops.len()],
            seq0,
            next: 0,
            batch: Vec::new(),
            pending: 0,
            failed_set: HashSet::new(),
            failed: Vec::new(),
            stopped: None,
        }
    }

    pub fn seq0(&self) -> u32 {
        self.seq0
    }

    pub fn seq_of(&self, index: usize) -> u32 {
        self.seq0.wrapping_add(index as u32)
    }

    /// The ops to send next (indices, ascending; empty when none are
    /// left): within `budget` (at least one op), no break op after a make
    /// op, the ops of failed services skipped and ops that cannot be
    /// encoded failed on the way.
    pub fn next_batch(&mut self, payloads: &Payloads, budget: &Budget) -> Vec<usize> {
        let mut batch = Vec::new();
        let mut has_make = false;
        let mut bytes = 0;
        while self.next < self.ops.len()
            && batch.len() < budget.ops.max(1)
            && self.stopped.is_none()
        {
            let i = self.next;
            let op = &self.ops[i];
            if !self.failed_set.is_empty() && self.failed_set.contains(op.service()) {
                self.outcomes[i] = Outcome::Skipped;
            } else if let Some(why) = payloads.refused(i) {
                let why = why.to_string();
                self.fail(i, why);
            } else {
                let brk = is_break(op);
                let len = wire_len(payloads, i);
                if (brk && has_make) || (!batch.is_empty() && bytes + len > budget.bytes) {
                    break;
                }
                has_make |= !brk;
                bytes += len;
                batch.push(i);
            }
            self.next += 1;
        }
        batch
    }

    /// Marks the ops of `batch` (from [`Tracker::next_batch`]) as sent in
    /// one datagram whose last request asks for the ack.
    pub fn sent(&mut self, batch: Vec<usize>) {
        for &i in &batch {
            self.outcomes[i] = Outcome::Pending;
        }
        self.pending = batch.len();
        self.batch = batch;
    }

    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Whether a transport failure stopped the run.
    pub fn stopped(&self) -> bool {
        self.stopped.is_some()
    }

    /// Op `i` was refused: it fails, and so does its service.
    fn fail(&mut self, i: usize, why: String) {
        let service = *self.ops[i].service();
        if self.failed_set.insert(service) {
            self.failed.push((service, why.clone()));
        }
        self.outcomes[i] = Outcome::Failed(why);
    }

    /// Applies one ack or error. Acks for sequence numbers this run does not
    /// own, or for ops not pending, are ignored (returns false).
    pub fn ack(&mut self, e: &ErrorMsg) -> bool {
        let index = e.request.seq.wrapping_sub(self.seq0) as usize;
        if index >= self.ops.len() || self.outcomes[index] != Outcome::Pending {
            return false;
        }
        self.pending -= 1;
        if e.errno == 0 {
            self.outcomes[index] = Outcome::Applied;
        } else {
            let m = error::describe_failure(&self.ops[index], e.errno, e.ext_msg.as_deref());
            self.fail(index, m);
        }
        if self.batch.last() == Some(&index) {
            // The batch is over: whatever got no error was applied.
            for &i in &self.batch {
                if self.outcomes[i] == Outcome::Pending {
                    self.outcomes[i] = Outcome::Applied;
                }
            }
            self.batch.clear();
            self.pending = 0;
        }
        true
    }

    /// Stops the run: the pending ops' acks were lost, or the batch could
    /// not be sent (`error` says which).
    pub fn lose_pending(&mut self, error: String) {
        for &i in &self.batch {
            if self.outcomes[i] == Outcome::Pending {
                self.outcomes[i] = Outcome::Unknown;
            }
        }
        self.batch.clear();
        self.pending = 0;
        self.stopped.get_or_insert(error);
    }

    pub fn finish(self, batches: usize) -> Result<Report, PartialFailure> {
        if self.failed.is_empty() && self.stopped.is_none() {
            return Ok(Report {
                applied: self.outcomes.len(),
                batches,
            });
        }
        Err(PartialFailure {
            failed: self.failed,
            stopped: self.stopped,
            outcomes: self.outcomes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DestAttrs, Method, ServiceAttrs, ServiceKey};
    use crate::netlink::message::{Header, NLMSG_ERROR};

    fn svc() -> ServiceKey {
        "tcp://10.107.107.107:1337".parse().unwrap()
    }

    fn add_dest(n: u8) -> Op {
        Op::AddDest {
            service: svc(),
            dest: format!("10.3.107.{n}:1337").parse().unwrap(),
            attrs: DestAttrs::new(Method::Masq, 10),
        }
    }

    fn del_dest(n: u8) -> Op {
        Op::DelDest {
            service: svc(),
            dest: format!("10.3.107.{n}:1337").parse().unwrap(),
        }
    }

    fn ack(seq: u32, errno: i32) -> ErrorMsg {
        ErrorMsg {
            errno,
            request: Header {
                len: 16,
                kind: 0x20,
                flags: NLM_F_REQUEST | NLM_F_ACK,
                seq,
                pid: 0,
            },
            echoed: Vec::new(),
            ext_msg: None,
            other: Vec::new(),
        }
    }

    /// A budget of `n` requests, bytes unbounded.
    fn by_ops(n: usize) -> Budget {
        Budget {
            ops: n,
            bytes: usize::MAX,
            send_limit: usize::MAX,
        }
    }

    fn other_svc() -> ServiceKey {
        "tcp://10.107.107.108:1337".parse().unwrap()
    }

    fn on(service: ServiceKey, op: Op) -> Op {
        match op {
            Op::AddDest { dest, attrs, .. } => Op::AddDest {
                service,
                dest,
                attrs,
            },
            Op::DelDest { dest, .. } => Op::DelDest { service, dest },
            other => other,
        }
    }

    /// Runs `ops` as the client does, against a kernel that answers each
    /// request with `errno(index)` (0: applied), acks only on errors and on
    /// the last request of a batch.
    fn run(
        ops: &[Op],
        max: usize,
        errno: impl Fn(usize) -> i32,
    ) -> (Result<Report, PartialFailure>, Vec<Vec<usize>>) {
        let payloads = encode_all(ops);
        let mut t = Tracker::new(ops, 1000);
        let mut sent = Vec::new();
        loop {
            let batch = t.next_batch(&payloads, &by_ops(max));
            if batch.is_empty() {
                break;
            }
            sent.push(batch.clone());
            t.sent(batch.clone());
            let last = *batch.last().unwrap();
            for &i in &batch {
                let e = errno(i);
                if e != 0 || i == last {
                    t.ack(&ack(t.seq_of(i), e));
                }
            }
            assert_eq!(t.pending(), 0);
        }
        (t.finish(sent.len()), sent)
    }

    #[test]
    fn batches_never_mix_a_break_after_a_make() {
        let add_svc = Op::AddService {
            service: svc(),
            attrs: ServiceAttrs::with_scheduler("wlc"),
        };
        let ops = vec![
            add_svc,
            add_dest(1),
            add_dest(2),
            del_dest(3),
            del_dest(4),
            add_dest(5),
            del_dest(6),
        ];
        let (_, sent) = run(&ops, 64, |_| 0);
        // Breaks first, then makes may follow in the same batch.
        assert_eq!(sent, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
        let (_, sent) = run(&ops, 2, |_| 0);
        assert_eq!(
            sent,
            vec![vec![0, 1], vec![2], vec![3, 4], vec![5], vec![6]]
        );
    }

    #[test]
    fn a_batch_stops_before_its_bytes_exceed_the_budget() {
        let ops: Vec<Op> = (1..=10).map(add_dest).collect();
        let payloads = encode_all(&ops);
        let one = wire_len(&payloads, 0);
        let mut t = Tracker::new(&ops, 0);
        let budget = Budget {
            ops: 64,
            bytes: 3 * one + one / 2,
            send_limit: usize::MAX,
        };
        assert_eq!(t.next_batch(&payloads, &budget), vec![0, 1, 2]);
        assert_eq!(
            batch_bytes(0x20, &payloads, &[0, 1, 2], 0).len(),
            3 * one,
            "the wire length counts header and padding"
        );
        // A budget smaller than one request still sends one at a time.
        let tiny = Budget { bytes: 1, ..budget };
        assert_eq!(t.next_batch(&payloads, &tiny), vec![3]);
    }

    #[test]
    fn the_budget_fits_a_batch_that_fails_entirely_into_the_receive_buffer() {
        // SO_RCVBUF forced to 4 MiB reads back doubled.
        let b = Budget::from_buffers(8 << 20, 212_992, 2048, 128 << 10);
        assert_eq!((b.ops, b.bytes, b.send_limit), (4096, 128 << 10, 212_928));
        // Capped by rmem_max (208 KiB, doubled) and a small send buffer.
        let b = Budget::from_buffers(425_984, 65_536, 2048, 128 << 10);
        assert_eq!((b.ops, b.bytes), (208, 65_472));
        // Unknown buffers: the kernel's defaults.
        assert_eq!(
            Budget::from_buffers(0, 0, 2048, 128 << 10),
            Budget::from_buffers(212_992, 212_992, 2048, 128 << 10)
        );
    }

    #[test]
    fn batch_bytes_number_each_request_by_its_index() {
        let ops = vec![add_dest(1), add_dest(2), add_dest(3)];
        let payloads = encode_all(&ops);
        let bytes = batch_bytes(0x20, &payloads, &[0, 2], 41);
        let msgs = crate::netlink::message::split_messages(&bytes).unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!((msgs[0].header.seq, msgs[1].header.seq), (41, 43));
        // Only the last asks for an ack.
        assert_eq!(msgs[0].header.flags, NLM_F_REQUEST);
        assert_eq!(msgs[1].header.flags, NLM_F_REQUEST | NLM_F_ACK);
        assert!(msgs.iter().all(|m| m.header.kind == 0x20));
        assert_eq!(msgs[1].payload, payloads.get(2));
        assert_eq!(payloads.len(), 3);
        // A batch of the second op alone.
        let one = batch_bytes(0x20, &payloads, &[1], 9);
        let msgs = crate::netlink::message::split_messages(&one).unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!(
            (msgs[0].header.seq, msgs[0].header.flags),
            (10, NLM_F_REQUEST | NLM_F_ACK)
        );
        let _ = NLMSG_ERROR;
    }

    #[test]
    fn the_last_ack_of_a_batch_settles_every_op_without_an_error() {
        let ops = vec![
            add_dest(1),
            add_dest(2),
            add_dest(3),
            add_dest(4),
            add_dest(5),
        ];
        let payloads = encode_all(&ops);
        let mut t = Tracker::new(&ops, 100);
        let batch = t.next_batch(&payloads, &by_ops(4));
        assert_eq!(batch, vec![0, 1, 2, 3]);
        t.sent(batch);
        assert_eq!(t.pending(), 4);
        // Only errors come back for ops 0..3, then the ack of op 3.
        assert!(t.ack(&ack(101, 17)));
        assert_eq!(t.pending(), 3);
        assert!(t.ack(&ack(103, 0)));
        assert_eq!(t.pending(), 0);
        assert_eq!(
            t.outcomes[..4]
                .iter()
                .map(|o| matches!(o, Outcome::Applied))
                .collect::<Vec<_>>(),
            vec![true, false, true, true]
        );
        assert_eq!(t.outcomes[4], Outcome::NotSent);
        // A late duplicate changes nothing.
        assert!(!t.ack(&ack(102, 0)));
        // The rest of the failed op's service is skipped.
        assert!(t.next_batch(&payloads, &by_ops(4)).is_empty());
        assert_eq!(t.outcomes[4], Outcome::Skipped);
        // The barrier's own error ends the batch too.
        let mut t = Tracker::new(&ops, 0);
        let batch = t.next_batch(&payloads, &by_ops(2));
        t.sent(batch);
        assert!(t.ack(&ack(1, 22)));
        assert_eq!(t.pending(), 0);
        assert_eq!(t.outcomes[0], Outcome::Applied);
        assert!(matches!(t.outcomes[1], Outcome::Failed(_)));
    }

    #[test]
    fn acks_report_the_truth_including_ops_in_flight_after_a_failure() {
        let ops = vec![add_dest(1), add_dest(2), add_dest(3), add_dest(4)];
        let payloads = encode_all(&ops);
        let mut t = Tracker::new(&ops, 100);
        let batch = t.next_batch(&payloads, &by_ops(3));
        t.sent(batch);
        // Out of order and with a stranger's ack in between.
        assert!(t.ack(&ack(101, 17)));
        assert!(!t.ack(&ack(7, 0)));
        assert!(t.ack(&ack(100, 0)));
        assert!(t.ack(&ack(102, 0)));
        assert!(!t.ack(&ack(102, 0)), "a second ack for one op is ignored");
        assert_eq!(t.pending(), 0);
        assert!(t.next_batch(&payloads, &by_ops(3)).is_empty());
        let f = t.finish(1).unwrap_err();
        let refusal = "dest 10.3.107.2:1337 of tcp://10.107.107.107:1337: already exists";
        assert_eq!(
            f.outcomes,
            vec![
                Outcome::Applied,
                Outcome::Failed(refusal.into()),
                // In flight in the same datagram: the kernel ran it.
                Outcome::Applied,
                Outcome::Skipped,
            ]
        );
        assert_eq!(f.failed, vec![(svc(), refusal.to_string())]);
        assert_eq!(
            f.to_string(),
            format!(
                "1 service failed: {refusal}; the other services were applied (applied 2 of 4 changes)"
            )
        );
        let d = f.describe(&ops);
        assert!(
            d.starts_with("applied 2 of 4 changes; not applied: 2 (1 failed, 1 skipped after a failure in their service, 0 never sent)\n1 service failed:\n  tcp://10.107.107.107:1337: dest 10.3.107.2:1337"),
            "{d}"
        );
        assert!(
            d.contains("     2 failed   add dest 10.3.107.2:1337 of tcp://10.107.107.107:1337: already exists\n"),
            "{d}"
        );
        assert!(d.contains("   4 skipped  add dest 10.3.107.4:1337"), "{d}");
        assert!(!d.contains("   1 "), "applied ops are not listed: {d}");
    }

    #[test]
    fn a_refused_op_skips_the_rest_of_its_service_and_nothing_else() {
        let (a, b) = (svc(), other_svc());
        let ops = vec![
            on(a, add_dest(1)),
            on(b, add_dest(1)),
            on(a, add_dest(2)),
            on(b, add_dest(2)),
            on(a, del_dest(3)),
            on(b, del_dest(3)),
            on(a, del_dest(4)),
        ];
        // The kernel refuses a's first dest add (EINVAL).
        let (result, sent) = run(&ops, 64, |i| if i == 0 { 22 } else { 0 });
        let f = result.unwrap_err();
        assert_eq!(
            f.outcomes,
            vec![
                Outcome::Failed(
                    "dest 10.3.107.1:1337 of tcp://10.107.107.107:1337: invalid argument".into()
                ),
                Outcome::Applied,
                // In flight with the refused add: applied, and a make.
                Outcome::Applied,
                Outcome::Applied,
                // a's deletes never go: a keeps its old dests.
                Outcome::Skipped,
                Outcome::Applied,
                Outcome::Skipped,
            ]
        );
        assert_eq!(sent, vec![vec![0, 1, 2, 3], vec![5]]);
        assert_eq!(f.failed.len(), 1);
        assert_eq!(f.failed[0].0, a);
        assert_eq!(f.stopped, None);
        // Every op of b went, whatever the batch size.
        for max in 1..=8 {
            let (result, _) = run(&ops, max, |i| if i == 0 { 22 } else { 0 });
            let f = result.unwrap_err();
            for (op, o) in ops.iter().zip(&f.outcomes) {
                if *op.service() == b {
                    assert_eq!(*o, Outcome::Applied, "batch {max}: {op}");
                } else if is_break(op) {
                    assert_eq!(*o, Outcome::Skipped, "batch {max}: {op}");
                }
            }
        }
    }

    #[test]
    fn lost_acks_are_unknown_and_stop_the_run() {
        let ops = vec![add_dest(1), add_dest(2), on(other_svc(), add_dest(3))];
        let payloads = encode_all(&ops);
        let mut t = Tracker::new(&ops, u32::MAX);
        let batch = t.next_batch(&payloads, &by_ops(2));
        t.sent(batch);
        assert!(t.ack(&ack(u32::MAX, 0)));
        t.lose_pending("netlink: no buffer space".into());
        assert!(t.stopped());
        assert!(t.next_batch(&payloads, &by_ops(2)).is_empty());
        let f = t.finish(1).unwrap_err();
        assert_eq!(
            f.outcomes,
            vec![Outcome::Applied, Outcome::Unknown, Outcome::NotSent]
        );
        assert_eq!(f.stopped.as_deref(), Some("netlink: no buffer space"));
        assert!(f.failed.is_empty());
        assert!(
            f.to_string()
                .starts_with("stopped: netlink: no buffer space")
        );
    }

    #[test]
    fn an_op_that_cannot_be_encoded_fails_its_service_only() {
        let bad = Op::AddService {
            service: svc(),
            attrs: ServiceAttrs {
                flags: vec!["nope".into()],
                ..ServiceAttrs::with_scheduler("rr")
            },
        };
        let ops = vec![bad, on(other_svc(), add_dest(1)), add_dest(1)];
        let (result, sent) = run(&ops, 64, |_| 0);
        let f = result.unwrap_err();
        assert!(matches!(f.outcomes[0], Outcome::Failed(_)));
        assert_eq!(f.outcomes[1], Outcome::Applied);
        assert_eq!(f.outcomes[2], Outcome::Skipped);
        assert_eq!(sent, vec![vec![1]]);
        assert_eq!(f.applied(), 1);
    }

    #[test]
    fn a_long_report_lists_the_first_hundred_ops() {
        let ops: Vec<Op> = (0..150u32)
            .map(|i| Op::AddDest {
                service: svc(),
                dest: format!("10.3.{}.{}:1337", i / 200, i % 200 + 1)
                    .parse()
                    .unwrap(),
                attrs: DestAttrs::new(Method::Masq, 10),
            })
            .collect();
        let (result, _) = run(&ops, 1, |i| if i == 0 { 22 } else { 0 });
        let d = result.unwrap_err().describe(&ops);
        assert!(d.contains("  ... and 50 more not applied\n"), "{d}");
    }

    #[test]
    fn a_clean_run_reports_everything_applied() {
        let ops = vec![add_dest(1)];
        let (result, _) = run(&ops, 64, |_| 0);
        assert_eq!(
            result.unwrap(),
            Report {
                applied: 1,
                batches: 1
            }
        );
    }
}
