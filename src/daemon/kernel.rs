//! The kernel as the daemon sees it: read the table with counters (straight
//! into the compact [`Table`] a pass plans against and keeps, never the
//! whole table as an `IpvsState`), apply ops, and a reader of the traffic
//! counters beside them; the VIP
//! interface (`--vip-interface`, and `--vip-mode arp`'s shared one) is
//! opened through it too.
//! [`netlink::Client`] in production; tests use
//! [`MemoryKernel`](super::MemoryKernel).
//!
//! [`apply_chunked`] gives a plan's ops to the kernel a chunk at a time,
//! so that a first pass's plan (an op per dest) is never held whole, with
//! the apply's one rule kept across chunks.
//!
//! Must not: decide anything. There is no flush: `--flush-on-exit` deletes
//! the owned services through `apply`, so services clusterf does not own
//! are never touched.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::Result;

use super::vips::VipInterface;
use crate::model::traffic::TrafficTable;
use crate::model::{Op, ServiceKey};
use crate::netlink::{self, Outcome, PartialFailure, pipeline::Tally};
use crate::plan::Ownership;
use crate::reconcile::live::Table;

/// Read and apply, nothing else.
pub trait Kernel: Send {
    /// The whole table with its connection counters.
    fn read(&mut self) -> Result<Table>;
    /// Applies `ops` in order. An op that is refused fails its service:
    /// the rest of that service's ops is skipped, the other services' ops
    /// are applied (see `netlink::pipeline`). On failure, what happened to
    /// each op and which services failed.
    fn apply(&mut self, ops: &[Op]) -> Result<(), PartialFailure>;
    /// A reader of the traffic counters with a connection of its own, so
    /// that a read never waits for a pass nor a pass for a read (`None`:
    /// this kernel keeps no counters).
    fn traffic_reader(&self) -> Option<Box<dyn TrafficReader>> {
        None
    }
    /// The VIP interface `name`, created when missing; an interface of
    /// that name that is not ours is an error (`--vip-interface`).
    fn vip_interface(&self, name: &str) -> Result<Box<dyn VipInterface>> {
        anyhow::bail!("--vip-interface {name}: this kernel has no interfaces")
    }
    /// The existing interface `name`, shared with the host, for ARP mode
    /// (`--vip-mode arp`): only `ownership`'s VIPs that clusterf added are
    /// its own; each added VIP is announced, and all again every `refresh`.
    fn arp_vip_interface(
        &self,
        name: &str,
        ownership: &Ownership,
        refresh: Option<Duration>,
    ) -> Result<Box<dyn VipInterface>> {
        let _ = (ownership, refresh);
        anyhow::bail!("--vip-mode arp --vip-interface {name}: this kernel has no interfaces")
    }
}

/// Reads the traffic counters of every service (and of every dest when
/// `per_dest`).
pub trait TrafficReader: Send {
    fn read_traffic(&mut self, per_dest: bool) -> Result<TrafficTable>;
}

/// Not every op of a plan was applied.
#[derive(Debug, Clone)]
pub struct ApplyFailure {
    /// One line: the services that failed and why, or what stopped the run.
    pub error: String,
    /// The report, one line per op that was not applied (at most 100).
    pub report: String,
    /// The services an op of which was refused.
    pub failed: Vec<ServiceKey>,
}

/// Ops given to the kernel at a time by the daemon: about four netlink
/// batches at the default budget (128 KiB of requests of about 140
/// bytes), so the batch a chunk's end cuts short costs little, and about
/// 1 MB held for a chunk (its ops, 104 bytes each, and their encoded
/// requests beside them), at the first pass's peak.
pub const CHUNK: usize = 4096;

/// Applies a plan's `ops`, in order, `chunk` at a time through `kernel`,
/// as [`Kernel::apply`] applies them given whole: a service an op of
/// which is refused has the rest of its ops skipped, in later chunks
/// too; a run the transport stopped sends nothing more. `applied` gets
/// the ops the kernel acked, in order. On failure, the line and report
/// of the whole run, as the kernel client words them.
pub fn apply_chunked(
    kernel: &mut dyn Kernel,
    ops: impl IntoIterator<Item = Op>,
    chunk: usize,
    mut applied: impl FnMut(&[Op]),
) -> Result<(), ApplyFailure> {
    let mut ops = ops.into_iter();
    let mut run = Run::default();
    // Grown to a chunk only by a plan that large.
    let mut buf = Vec::new();
    loop {
        buf.clear();
        buf.extend(ops.by_ref().take(chunk.max(1)));
        if buf.is_empty() {
            break;
        }
        run.chunk(kernel, &buf, &mut applied);
    }
    if run.tally.all_applied() {
        return Ok(());
    }
    Err(ApplyFailure {
        error: run.tally.line(),
        report: run.tally.describe().trim_end().to_string(),
        failed: run.tally.failed().copied().collect(),
    })
}

/// What [`apply_chunked`] carries from one chunk to the next.
#[derive(Default)]
struct Run {
    tally: Tally,
    /// The services that failed: their later ops are skipped.
    failed: HashSet<ServiceKey>,
    /// The transport stopped the run: nothing more is sent.
    stopped: bool,
}

impl Run {
    fn chunk(&mut self, kernel: &mut dyn Kernel, ops: &[Op], applied: &mut impl FnMut(&[Op])) {
        if self.stopped {
            for op in ops {
                self.tally.record(op, &Outcome::NotSent);
            }
            return;
        }
        let skip: Vec<bool> = if self.failed.is_empty() {
            Vec::new()
        } else {
            ops.iter()
                .map(|op| self.failed.contains(op.service()))
                .collect()
        };
        let skipping = skip.contains(&true);
        let sent: Vec<Op>;
        let send = if skipping {
            sent = ops
                .iter()
                .zip(&skip)
                .filter(|(_, s)| !**s)
                .map(|(op, _)| op.clone())
                .collect();
            &sent[..]
        } else {
            ops
        };
        // Every op of the chunk skipped: nothing to send.
        let result = if send.is_empty() {
            Ok(())
        } else {
            kernel.apply(send)
        };
        let outcomes = match result {
            Ok(()) if !skipping => {
                self.tally.record_applied(ops.len());
                applied(ops);
                return;
            }
            Ok(()) => vec![Outcome::Applied; send.len()],
            Err(f) => self.failure(f),
        };
        // The chunk's outcomes in order, the skipped ops among them (after
        // the transport stopped the run, an op is never sent).
        let mut sent = outcomes.into_iter();
        let mut not_sent = false;
        for (i, op) in ops.iter().enumerate() {
            let outcome = match skip.get(i) {
                Some(true) if not_sent => Outcome::NotSent,
                Some(true) => Outcome::Skipped,
                _ => sent.next().unwrap_or(Outcome::NotSent),
            };
            not_sent |= outcome == Outcome::NotSent;
            if outcome == Outcome::Applied {
                applied(std::slice::from_ref(op));
            }
            self.tally.record(op, &outcome);
        }
    }

    /// Keeps the failed services and what stopped the run; the outcomes.
    fn failure(&mut self, f: PartialFailure) -> Vec<Outcome> {
        for (service, why) in f.failed {
            if self.failed.insert(service) {
                self.tally.fail_service(service, why);
            }
        }
        if let Some(e) = f.stopped {
            self.stopped = true;
            self.tally.stop(e);
        }
        f.outcomes
    }
}

impl Kernel for netlink::Client {
    fn read(&mut self) -> Result<Table> {
        let mut table = Table::default();
        self.read_each(false, |key, attrs, dests| {
            table.insert_read(key, attrs, dests.dests.iter().copied());
        })?;
        Ok(table)
    }

    fn apply(&mut self, ops: &[Op]) -> Result<(), PartialFailure> {
        netlink::Client::apply(self, ops).map(|_| ())
    }

    fn traffic_reader(&self) -> Option<Box<dyn TrafficReader>> {
        Some(Box::new(NetlinkTraffic { client: None }))
    }

    fn vip_interface(&self, name: &str) -> Result<Box<dyn VipInterface>> {
        Ok(Box::new(netlink::rtnl::VipLink::open(name)?))
    }

    fn arp_vip_interface(
        &self,
        name: &str,
        ownership: &Ownership,
        refresh: Option<Duration>,
    ) -> Result<Box<dyn VipInterface>> {
        let vips = super::arp::ArpVips::open(name, ownership.clone(), refresh)?;
        Ok(Box::new(vips))
    }
}

/// A netlink connection of its own, opened at the first read and again
/// after a failed one.
struct NetlinkTraffic {
    client: Option<netlink::Client>,
}

impl TrafficReader for NetlinkTraffic {
    fn read_traffic(&mut self, per_dest: bool) -> Result<TrafficTable> {
        let client = match &mut self.client {
            Some(c) => c,
            None => self.client.insert(netlink::Client::connect()?),
        };
        let read = client.traffic(per_dest);
        if read.is_err() {
            self.client = None;
        }
        read
    }
}
