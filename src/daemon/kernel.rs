//! The kernel as the daemon sees it: read the table with counters, apply
//! ops, and a reader of the traffic counters beside them; the VIP
//! interface (`--vip-interface`, and `--vip-mode arp`'s shared one) is
//! opened through it too.
//! [`netlink::Client`] in production; tests use
//! [`MemoryKernel`](super::MemoryKernel).
//!
//! Must not: decide anything. There is no flush: `--flush-on-exit` deletes
//! the owned services through `apply`, so services clusterf does not own
//! are never touched.

use std::time::Duration;

use anyhow::Result;

use super::vips::VipInterface;
use crate::model::traffic::TrafficTable;
use crate::model::{LiveTable, Op, ServiceKey};
use crate::netlink;
use crate::plan::Ownership;

/// Read and apply, nothing else.
pub trait Kernel: Send {
    fn read(&mut self) -> Result<LiveTable>;
    /// Applies `ops` in order. An op that is refused fails its service:
    /// the rest of that service's ops is skipped, the other services' ops
    /// are applied (see `netlink::pipeline`). On failure, which ops were
    /// applied and which services failed.
    fn apply(&mut self, ops: &[Op]) -> Result<(), ApplyFailure>;
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

/// Not every op was applied.
#[derive(Debug, Clone)]
pub struct ApplyFailure {
    /// One line: the services that failed and why, or what stopped the run.
    pub error: String,
    /// The report, one line per op that was not applied (may be empty).
    pub report: String,
    /// Per op: whether the kernel acked it.
    pub applied: Vec<bool>,
    /// The services an op of which was refused.
    pub failed: Vec<ServiceKey>,
}

impl Kernel for netlink::Client {
    fn read(&mut self) -> Result<LiveTable> {
        netlink::Client::read(self)
    }

    fn apply(&mut self, ops: &[Op]) -> Result<(), ApplyFailure> {
        netlink::Client::apply(self, ops)
            .map(|_| ())
            .map_err(|f| ApplyFailure {
                error: f.to_string(),
                report: f.describe(ops).trim_end().to_string(),
                applied: f
                    .outcomes
                    .iter()
                    .map(|o| matches!(o, netlink::Outcome::Applied))
                    .collect(),
                failed: f.failed.iter().map(|(s, _)| *s).collect(),
            })
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
