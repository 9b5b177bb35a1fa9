//! Pipelined execution bookkeeping: which ops go out together, the request
//! bytes of a batch, matching acks to ops by sequence number, and the report
//! of what was and was not applied.
//!
//! How a batch behaves in the kernel, and why batches are cut where they are:
//! the kernel runs every message of one `sendmsg` in order, inside that
//! call, and acks each one (`netlink_rcv_skb`); a refused message does NOT
//! stop the messages after it in the same datagram. So the ops after a
//! failed one may still have been applied if they were in flight. clusterf
//! reports the truth from the acks (each op is `applied`, `failed`, or `not
//! sent`; `unknown` only if acks were lost), stops sending after the batch
//! with the first failure, and keeps the damage harmless: an op that takes
//! capacity away (delete a service or dest, edit a dest) is never in flight
//! together with an earlier op that adds or edits a service or adds a dest.
//! The plan orders make before break, so when an add fails, no break after
//! it has been sent.
//!
//! Acks: only the last request of a batch carries `NLM_F_ACK`. The kernel
//! answers a request without it only when it fails (`netlink_rcv_skb` acks
//! on `NLM_F_ACK` or an error), and it runs a batch in order, so the last
//! request's ack (or error) comes after every error of the batch: when it
//! arrives, every request of the batch that got no error was applied. That
//! is one datagram to receive per batch instead of one per request (each
//! ack is its own datagram, one `recvmsg` each), and a receive buffer that
//! holds errors only. A lost message (receive buffer overrun, `ENOBUFS`)
//! leaves the batch's outcome unknown, as before.
//!
//! Invariant: pure; the socket loop lives in `client`.

use std::fmt;

use crate::model::Op;

use super::error;
use super::mapping;
use super::message::{ErrorMsg, NLM_F_ACK, NLM_F_REQUEST, emit_message};

/// What happened to one op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The kernel acked it.
    Applied,
    /// The kernel (or encoding) refused it; the message names the object.
    Failed(String),
    /// Never sent.
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

/// Not every op was applied: the outcome of each, in plan order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartialFailure {
    /// The first failure, or the transport error that stopped the run.
    pub error: String,
    pub outcomes: Vec<Outcome>,
}

impl PartialFailure {
    pub fn count(&self, want: fn(&Outcome) -> bool) -> usize {
        self.outcomes.iter().filter(|o| want(o)).count()
    }

    pub fn applied(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Applied))
    }

    /// The report, one line per op that was not applied, after a summary.
    pub fn describe(&self, ops: &[Op]) -> String {
        let failed = self.count(|o| matches!(o, Outcome::Failed(_)));
        let not_sent = self.count(|o| matches!(o, Outcome::NotSent));
        let unknown = self.count(|o| matches!(o, Outcome::Unknown | Outcome::Pending));
        let mut out = format!(
            "applied {} of {} changes; not applied: {} ({failed} failed, {not_sent} never sent)",
            self.applied(),
            self.outcomes.len(),
            failed + not_sent,
        );
        if unknown > 0 {
            out.push_str(&format!("; {unknown} unknown (acks lost)"));
        }
        out.push('\n');
        for (i, (op, outcome)) in ops.iter().zip(&self.outcomes).enumerate() {
            let what = match outcome {
                Outcome::Applied => "applied",
                Outcome::Failed(_) => "failed",
                Outcome::NotSent => "not applied",
                Outcome::Unknown | Outcome::Pending => "unknown",
            };
            out.push_str(&format!("  {:>4} {what:<11} {}", i + 1, op));
            if let Outcome::Failed(m) = outcome {
                // The message names the object, which the line already did.
                let object = format!("{}: ", op.object());
                out.push_str(&format!(": {}", m.strip_prefix(&object).unwrap_or(m)));
            }
            out.push('\n');
        }
        out
    }
}

impl fmt::Display for PartialFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (applied {} of {} changes)",
            self.error,
            self.applied(),
            self.outcomes.len()
        )
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

/// The end (exclusive) of the batch that starts at `start`: at most `max`
/// ops, and no break op after a make op.
pub fn batch_end(ops: &[Op], start: usize, max: usize) -> usize {
    let mut end = start;
    let mut has_make = false;
    while end < ops.len() && end - start < max.max(1) {
        let brk = is_break(&ops[end]);
        if brk && has_make {
            break;
        }
        has_make |= !brk;
        end += 1;
    }
    end
}

/// The request payloads of a run's ops, back to back in one buffer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Payloads {
    bytes: Vec<u8>,
    /// End of op `i`'s payload in `bytes`.
    ends: Vec<usize>,
}

impl Payloads {
    /// The payload of op `i`.
    pub fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// Encodes every op up front, so that an op that cannot be encoded stops the
/// run before anything is sent.
pub fn encode_all(ops: &[Op]) -> Result<Payloads, PartialFailure> {
    // An IPv4 dest request is 124 bytes.
    let mut out = Payloads {
        bytes: Vec::with_capacity(ops.len() * 128),
        ends: Vec::with_capacity(ops.len()),
    };
    for (i, op) in ops.iter().enumerate() {
        match mapping::encode_op(op, &mut out.bytes) {
            Ok(()) => out.ends.push(out.bytes.len()),
            Err(e) => {
                let mut outcomes = vec![Outcome::NotSent; ops.len()];
                outcomes[i] = Outcome::Failed(e.clone());
                return Err(PartialFailure { error: e, outcomes });
            }
        }
    }
    Ok(out)
}

/// The datagram of the batch of ops `range`: each request with its own
/// sequence number (`seq0` for `range.start`, then counting up), the last
/// one with `NLM_F_ACK` (see the module documentation).
pub fn batch_bytes(
    family: u16,
    payloads: &Payloads,
    range: std::ops::Range<usize>,
    seq0: u32,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(range.clone().map(|i| payloads.get(i).len() + 20).sum());
    let last = range.end.saturating_sub(1);
    for i in range.clone() {
        let flags = if i == last {
            NLM_F_REQUEST | NLM_F_ACK
        } else {
            NLM_F_REQUEST
        };
        let seq = seq0.wrapping_add((i - range.start) as u32);
        emit_message(&mut out, family, flags, seq, payloads.get(i));
    }
    out
}

/// Outcomes of a run, updated by acks.
#[derive(Clone, Debug)]
pub struct Tracker<'a> {
    ops: &'a [Op],
    pub outcomes: Vec<Outcome>,
    /// Sequence number of op 0.
    seq0: u32,
    pending: usize,
    /// The op whose ack ends the batch in flight.
    barrier: Option<usize>,
    first_error: Option<String>,
}

impl<'a> Tracker<'a> {
    pub fn new(ops: &'a [Op], seq0: u32) -> Self {
        Tracker {
            ops,
            outcomes: vec![Outcome::NotSent; ops.len()],
            seq0,
            pending: 0,
            barrier: None,
            first_error: None,
        }
    }

    pub fn seq_of(&self, index: usize) -> u32 {
        self.seq0.wrapping_add(index as u32)
    }

    /// Marks ops `range` as sent, in one batch whose last op was sent with
    /// `NLM_F_ACK` (see [`batch_bytes`]).
    pub fn sent(&mut self, range: std::ops::Range<usize>) {
        self.barrier = range.end.checked_sub(1).filter(|&b| b >= range.start);
        for o in &mut self.outcomes[range] {
            *o = Outcome::Pending;
            self.pending += 1;
        }
    }

    pub fn pending(&self) -> usize {
        self.pending
    }

    pub fn failed(&self) -> bool {
        self.first_error.is_some()
    }

    /// Applies one ack or error. Acks for sequence numbers this run does not
    /// own, or for ops not pending, are ignored (returns false).
    pub fn ack(&mut self, e: &ErrorMsg) -> bool {
        let index = e.request.seq.wrapping_sub(self.seq0) as usize;
        if index >= self.ops.len() || self.outcomes[index] != Outcome::Pending {
            return false;
        }
        self.pending -= 1;
        self.outcomes[index] = if e.errno == 0 {
            Outcome::Applied
        } else {
            let m = error::describe_failure(&self.ops[index], e.errno, e.ext_msg.as_deref());
            self.first_error.get_or_insert_with(|| m.clone());
            Outcome::Failed(m)
        };
        if self.barrier == Some(index) {
            // The batch is over: whatever got no error was applied.
            self.barrier = None;
            for o in &mut self.outcomes[..index] {
                if *o == Outcome::Pending {
                    *o = Outcome::Applied;
                }
            }
            self.pending = 0;
        }
        true
    }

    /// Gives up on the pending ops (their acks were lost).
    pub fn lose_pending(&mut self, error: String) {
        for o in &mut self.outcomes {
            if *o == Outcome::Pending {
                *o = Outcome::Unknown;
            }
        }
        self.pending = 0;
        self.barrier = None;
        self.first_error.get_or_insert(error);
    }

    pub fn finish(self, batches: usize) -> Result<Report, PartialFailure> {
        match self.first_error {
            None => Ok(Report {
                applied: self.outcomes.len(),
                batches,
            }),
            Some(error) => Err(PartialFailure {
                error,
                outcomes: self.outcomes,
            }),
        }
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
        assert_eq!(batch_end(&ops, 0, 64), 3);
        // Breaks first, then makes may follow in the same batch.
        assert_eq!(batch_end(&ops, 3, 64), 6);
        assert_eq!(batch_end(&ops, 6, 64), 7);
        assert_eq!(batch_end(&ops, 0, 2), 2);
        assert_eq!(batch_end(&ops, 7, 64), 7);
    }

    #[test]
    fn batch_bytes_number_each_request() {
        let ops = vec![add_dest(1), add_dest(2)];
        let payloads = encode_all(&ops).unwrap();
        let bytes = batch_bytes(0x20, &payloads, 0..2, 41);
        let msgs = crate::netlink::message::split_messages(&bytes).unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!((msgs[0].header.seq, msgs[1].header.seq), (41, 42));
        // Only the last asks for an ack.
        assert_eq!(msgs[0].header.flags, NLM_F_REQUEST);
        assert_eq!(msgs[1].header.flags, NLM_F_REQUEST | NLM_F_ACK);
        assert!(msgs.iter().all(|m| m.header.kind == 0x20));
        assert_eq!(msgs[1].payload, payloads.get(1));
        assert_eq!(payloads.len(), 2);
        // A batch of the second op alone.
        let one = batch_bytes(0x20, &payloads, 1..2, 9);
        let msgs = crate::netlink::message::split_messages(&one).unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!(
            (msgs[0].header.seq, msgs[0].header.flags),
            (9, NLM_F_REQUEST | NLM_F_ACK)
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
        let mut t = Tracker::new(&ops, 100);
        t.sent(0..4);
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
        // The barrier's own error ends the batch too.
        let mut t = Tracker::new(&ops, 0);
        t.sent(0..2);
        assert!(t.ack(&ack(1, 22)));
        assert_eq!(t.pending(), 0);
        assert_eq!(t.outcomes[0], Outcome::Applied);
        assert!(matches!(t.outcomes[1], Outcome::Failed(_)));
    }

    #[test]
    fn acks_report_the_truth_including_ops_after_a_failure() {
        let ops = vec![add_dest(1), add_dest(2), add_dest(3), add_dest(4)];
        let mut t = Tracker::new(&ops, 100);
        t.sent(0..3);
        // Out of order and with a stranger's ack in between.
        assert!(t.ack(&ack(101, 17)));
        assert!(!t.ack(&ack(7, 0)));
        assert!(t.ack(&ack(100, 0)));
        assert!(t.ack(&ack(102, 0)));
        assert!(!t.ack(&ack(102, 0)), "a second ack for one op is ignored");
        assert_eq!(t.pending(), 0);
        assert!(t.failed());
        let f = t.finish(1).unwrap_err();
        assert_eq!(
            f.outcomes,
            vec![
                Outcome::Applied,
                Outcome::Failed(
                    "dest 10.3.107.2:1337 of tcp://10.107.107.107:1337: already exists".into()
                ),
                Outcome::Applied,
                Outcome::NotSent,
            ]
        );
        assert_eq!(
            f.to_string(),
            "dest 10.3.107.2:1337 of tcp://10.107.107.107:1337: already exists (applied 2 of 4 changes)"
        );
        let d = f.describe(&ops);
        assert!(
            d.starts_with("applied 2 of 4 changes; not applied: 2 (1 failed, 1 never sent)\n"),
            "{d}"
        );
        assert!(
            d.contains("   4 not applied add dest 10.3.107.4:1337"),
            "{d}"
        );
    }

    #[test]
    fn lost_acks_are_unknown_not_applied() {
        let ops = vec![add_dest(1), add_dest(2)];
        let mut t = Tracker::new(&ops, u32::MAX);
        t.sent(0..2);
        assert!(t.ack(&ack(u32::MAX, 0)));
        t.lose_pending("netlink: no buffer space".into());
        let f = t.finish(1).unwrap_err();
        assert_eq!(f.outcomes, vec![Outcome::Applied, Outcome::Unknown]);
    }

    #[test]
    fn an_op_that_cannot_be_encoded_stops_everything() {
        let bad = Op::AddService {
            service: svc(),
            attrs: ServiceAttrs {
                flags: vec!["nope".into()],
                ..ServiceAttrs::with_scheduler("rr")
            },
        };
        let f = encode_all(&[add_dest(1), bad]).unwrap_err();
        assert_eq!(f.outcomes[0], Outcome::NotSent);
        assert!(matches!(f.outcomes[1], Outcome::Failed(_)));
        assert_eq!(f.applied(), 0);
    }

    #[test]
    fn a_clean_run_reports_everything_applied() {
        let ops = vec![add_dest(1)];
        let mut t = Tracker::new(&ops, 5);
        t.sent(0..1);
        t.ack(&ack(5, 0));
        assert_eq!(
            t.finish(1).unwrap(),
            Report {
                applied: 1,
                batches: 1
            }
        );
    }
}
