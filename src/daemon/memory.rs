//! An in-memory kernel table, for tests and for running the daemon where
//! there is no IPVS: ops are applied as the kernel would, with
//! [`Op::apply_to`].
//!
//! Must not: differ from the kernel in what an op does.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Result;

use super::kernel::{Kernel, TrafficReader};
use super::sync::lock;
use super::vips::VipInterface;
use crate::model::traffic::TrafficTable;
use crate::model::{IpvsState, LiveTable, Op, ServiceKey};
use crate::netlink::{Outcome, PartialFailure};
use crate::reconcile::live::Table;

/// The table, shared with the test that watches it.
#[derive(Clone, Debug, Default)]
pub struct MemoryKernel {
    pub live: Arc<Mutex<LiveTable>>,
    /// How many times the table was read (dumped), as a netlink client
    /// would dump it.
    pub reads: Arc<AtomicU64>,
    /// Traffic counters a test sets; a service or dest of the table that
    /// has none here reads as zeros, as a new one in the kernel does.
    pub traffic: Arc<Mutex<TrafficTable>>,
    /// The VIP interface, one per kernel.
    pub vips: Arc<Mutex<MemoryVips>>,
    /// Services whose every op this kernel refuses (as the kernel refuses
    /// an address it cannot use), for tests of partial applies.
    pub refuse: Arc<Mutex<BTreeSet<ServiceKey>>>,
}

/// The memory kernel's VIP interface.
#[derive(Clone, Debug, Default)]
pub struct MemoryVips {
    /// Its name once opened (or made by a test).
    pub name: Option<String>,
    /// A test's stand-in for a link of that name that is not ours: opening
    /// it fails and changes nothing.
    pub foreign: bool,
    pub addrs: BTreeSet<IpAddr>,
    /// Once the interface is open: every applied op and VIP change, in
    /// order (`+ vip ADDR`, `- vip ADDR`, the op's text).
    pub journal: Vec<String>,
}

struct MemoryVipInterface {
    state: Arc<Mutex<MemoryVips>>,
    name: String,
}

impl VipInterface for MemoryVipInterface {
    fn name(&self) -> &str {
        &self.name
    }

    fn read(&mut self) -> Result<BTreeSet<IpAddr>> {
        Ok(lock(&self.state).addrs.clone())
    }

    fn add(&mut self, vip: IpAddr) -> Result<()> {
        let mut s = lock(&self.state);
        s.addrs.insert(vip);
        s.journal.push(format!("+ vip {vip}"));
        Ok(())
    }

    fn remove(&mut self, vip: IpAddr) -> Result<()> {
        let mut s = lock(&self.state);
        s.addrs.remove(&vip);
        s.journal.push(format!("- vip {vip}"));
        Ok(())
    }
}

impl MemoryKernel {
    pub fn table(&self) -> IpvsState {
        lock(&self.live).state.clone()
    }

    /// How many times the daemon read the whole table.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
}

impl Kernel for MemoryKernel {
    /// Into the compact table, as the netlink client reads (no copy of
    /// the whole table as a state on the way).
    fn read(&mut self) -> Result<Table> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        Ok(Table::from(&*lock(&self.live)))
    }

    fn traffic_reader(&self) -> Option<Box<dyn TrafficReader>> {
        Some(Box::new(self.clone()))
    }

    fn vip_interface(&self, name: &str) -> Result<Box<dyn VipInterface>> {
        let mut s = lock(&self.vips);
        if s.foreign && s.name.as_deref() == Some(name) {
            anyhow::bail!("--vip-interface {name}: link {name} is not ours: not touching it");
        }
        s.name = Some(name.to_string());
        Ok(Box::new(MemoryVipInterface {
            state: self.vips.clone(),
            name: name.to_string(),
        }))
    }

    /// As the kernel client does: a refused op fails its service, whose
    /// later ops are skipped; the other services' ops are applied.
    fn apply(&mut self, ops: &[Op]) -> Result<(), PartialFailure> {
        let mut live = lock(&self.live);
        let mut outcomes = vec![Outcome::NotSent; ops.len()];
        let mut failed: Vec<(ServiceKey, String)> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            if failed.iter().any(|(s, _)| s == op.service()) {
                outcomes[i] = Outcome::Skipped;
                continue;
            }
            let refused = lock(&self.refuse).contains(op.service());
            let outcome = if refused {
                Err(format!("{}: refused (MemoryKernel::refuse)", op.service()))
            } else {
                op.apply_to(&mut live.state)
            };
            match outcome {
                Ok(()) => {
                    outcomes[i] = Outcome::Applied;
                    let mut vips = lock(&self.vips);
                    if vips.name.is_some() {
                        vips.journal.push(op.to_string());
                    }
                }
                // The message names the op's object.
                Err(e) => {
                    outcomes[i] = Outcome::Failed(e.clone());
                    failed.push((*op.service(), e));
                }
            }
        }
        if failed.is_empty() {
            return Ok(());
        }
        Err(PartialFailure {
            failed,
            stopped: None,
            outcomes,
        })
    }
}

/// The counters of the services (and dests) in the table: only those, as
/// the kernel has counters only for what it holds.
impl TrafficReader for MemoryKernel {
    fn read_traffic(&mut self, per_dest: bool) -> Result<TrafficTable> {
        let live = lock(&self.live);
        let set = lock(&self.traffic);
        let mut out = TrafficTable::default();
        for (key, service) in &live.state.services {
            let t = set.services.get(key).copied().unwrap_or_default();
            out.services.insert(*key, t);
            if per_dest {
                let given = set.dests.get(key);
                let dests = service.dests.keys().map(|addr| {
                    let t = given.and_then(|d| d.get(addr)).copied();
                    (*addr, t.unwrap_or_default())
                });
                out.dests.insert(*key, dests.collect());
            }
        }
        Ok(out)
    }
}
