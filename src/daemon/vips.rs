//! The pass's VIP step (`--vip-interface`): the VIP interface as the
//! daemon sees it ([`VipInterface`], rtnetlink in production, the memory
//! kernel's in tests), and [`VipStep`], which reads it, plans with
//! [`crate::vip::plan`] and runs the plan's two halves around the IPVS
//! apply: removals before, additions after (ARCHITECTURE.md, make before
//! break). Withdrawals (`reconcile::withdraw` decides when) remove every
//! VIP. In ARP mode (`--vip-mode arp`, `super::arp`) the interface is
//! shared with the host: only clusterf's addresses are read as ours, and a
//! desired VIP that is there but not ours is left alone (logged once).
//!
//! Must not: decide what to change (the VIP plan does) or touch anything
//! but the addresses of its interface.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use anyhow::Result;
use tracing::{info, warn};

use super::status_page::snapshot::{VipRow, VipSection};
use crate::metrics::Metrics;
use crate::model::IpvsState;
use crate::netlink::rtnl::VipLink;
use crate::plan::Ownership;
use crate::vip::{self, Present, VipPlan};

/// The VIP interface: read its VIPs, add one, remove one. Opened (created
/// when missing, refused when not ours) by [`super::Kernel::vip_interface`].
pub trait VipInterface: Send {
    fn name(&self) -> &str;
    fn read(&mut self) -> Result<BTreeSet<IpAddr>>;
    /// The interface's addresses by owner; on clusterf's own interface
    /// (the default) every VIP read is ours.
    fn read_present(&mut self) -> Result<Present> {
        Ok(Present {
            ours: self.read()?,
            others: BTreeSet::new(),
        })
    }
    fn add(&mut self, vip: IpAddr) -> Result<()>;
    fn remove(&mut self, vip: IpAddr) -> Result<()>;
}

impl VipInterface for VipLink {
    fn name(&self) -> &str {
        VipLink::name(self)
    }

    fn read(&mut self) -> Result<BTreeSet<IpAddr>> {
        VipLink::read(self)
    }

    fn add(&mut self, vip: IpAddr) -> Result<()> {
        VipLink::add(self, vip)
    }

    fn remove(&mut self, vip: IpAddr) -> Result<()> {
        VipLink::remove(self, vip)
    }
}

/// The VIP step's state: the interface and what it may hold.
pub struct VipStep {
    link: Box<dyn VipInterface>,
    ownership: Ownership,
    metrics: Arc<Metrics>,
    /// The VIPs the last plan wanted.
    want: BTreeSet<IpAddr>,
    /// The VIPs on the interface as last read or changed: ours, and the
    /// desired ones there that are not ours.
    present: BTreeSet<IpAddr>,
    /// The desired VIPs there that are not ours, as last logged.
    kept: Vec<IpAddr>,
}

impl VipStep {
    pub fn new(link: Box<dyn VipInterface>, ownership: Ownership, metrics: Arc<Metrics>) -> Self {
        VipStep {
            link,
            ownership,
            metrics,
            want: BTreeSet::new(),
            present: BTreeSet::new(),
            kept: Vec::new(),
        }
    }

    /// The interface as the step last knew it, for the status page.
    pub fn section(&self) -> VipSection {
        let all = self.want.union(&self.present);
        VipSection {
            interface: self.link.name().to_string(),
            vips: all
                .map(|a| VipRow {
                    vip: vip::cidr(*a),
                    desired: self.want.contains(a),
                    present: self.present.contains(a),
                })
                .collect(),
        }
    }

    /// Reads the interface and plans it toward the addresses of the owned
    /// services of `desired` (the state the IPVS apply leaves).
    pub fn plan(&mut self, desired: &IpvsState) -> Result<VipPlan> {
        let read = self.link.read_present()?;
        let want = vip::desired(desired, &self.ownership);
        let plan = vip::plan_present(self.link.name(), &want, &read);
        if !plan.is_empty() {
            info!(
                changes = plan.lines().len(),
                "vips\n{}",
                plan.to_string().trim_end()
            );
        }
        if plan.kept != self.kept && !plan.kept.is_empty() {
            warn!(
                vips = plan.kept.len(),
                "desired VIPs already on {} that clusterf did not add: left alone, never removed\n{}",
                self.link.name(),
                plan.kept_lines().join("\n")
            );
        }
        self.kept.clone_from(&plan.kept);
        let present: BTreeSet<IpAddr> = read.ours.iter().chain(&plan.kept).copied().collect();
        self.metrics.vips(want.len(), present.len());
        self.want = want;
        self.present = present;
        Ok(plan)
    }

    /// The first half, before the IPVS ops: removals.
    pub fn remove(&mut self, plan: &VipPlan) -> Result<()> {
        for a in &plan.remove {
            self.link.remove(*a)?;
            self.present.remove(a);
        }
        Ok(())
    }

    /// The second half, after the IPVS ops: additions.
    pub fn add(&mut self, plan: &VipPlan) -> Result<()> {
        for a in &plan.add {
            self.link.add(*a)?;
            self.present.insert(*a);
        }
        // Every desired VIP was there or has just been added.
        self.metrics.vips(self.want.len(), self.want.len());
        Ok(())
    }

    /// Removes every VIP of ours (a withdrawal); how many. Addresses that
    /// are not ours stay (and a desired one among them still counts as
    /// present).
    pub fn withdraw(&mut self) -> Result<usize> {
        let present = self.link.read_present()?.ours;
        let plan = vip::withdraw(self.link.name(), &present);
        if !plan.is_empty() {
            info!("withdrawing the VIPs\n{}", plan.to_string().trim_end());
        }
        let r = self.remove(&plan);
        let mut left = self.link.read_present().map_or(present, |p| p.ours);
        left.extend(self.kept.iter().copied());
        self.metrics.vips_withdrawn(left.len());
        self.present = left;
        r.map(|()| plan.remove.len())
    }
}
