//! `clusterf realserver` (issue 20, item 4): keeps a backend host ready
//! for the services that have a droute or tunnel dest on it. The packet
//! reaches such a host still addressed to VIP:port, so the host must hold
//! the VIP without answering ARP for it, and decapsulate IPIP for tunnel
//! dests.
//!
//! - `plan` (pure): which services are served here ([`desired`]), and the
//!   steps from the host as read ([`Observed`]) to what they need: the
//!   VIPs on a dummy link of ours (droute) or on an IPIP link of ours in
//!   external mode with loose `rp_filter` (tunnel), `arp_ignore` and
//!   `arp_announce` on the named interfaces; the sysctls clusterf changed
//!   restored once unneeded.
//! - `host`, `sysctl` (I/O): reading the host and applying a plan; the
//!   state file recording each sysctl's earlier value.
//! - `watch` (I/O): `--watch`, the daemon's inputs and schedule around
//!   [`pass`].
//!
//! Must not: touch a link, address or sysctl that is not ours or named
//! (ARCHITECTURE.md's "never touch what is not ours"); change anything
//! when the config has errors or the plan has problems.

pub mod host;
mod plan;
pub mod sysctl;
pub mod watch;

use std::collections::BTreeSet;
use std::net::IpAddr;

use anyhow::{Result, anyhow};

use crate::render::Rendered;

pub use self::host::Host;
pub use self::plan::*;

/// The realserver's resolved flags.
#[derive(Clone, Debug)]
pub struct Options {
    pub settings: Settings,
    /// This host's addresses (`--host-address`); `None`: its global
    /// addresses as read.
    pub host_addresses: Option<BTreeSet<IpAddr>>,
    /// `--docker`: DNAT of VIP:port to this host's containers (`dnat`).
    pub docker: bool,
}

/// What a pass found and did.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub desired: Desired,
    pub plan: Plan,
}

/// One pass: reads the host, plans it for `rendered` (`None`: for
/// nothing, the cleanup, which removes what clusterf added), and applies
/// the plan unless `dry_run`.
pub fn pass(
    host: &mut Host,
    rendered: Option<&Rendered>,
    opts: &Options,
    dry_run: bool,
) -> Result<Outcome> {
    let net = host.read_net(&opts.settings)?;
    let addresses = opts.host_addresses.as_ref().unwrap_or(&net.addresses);
    let desired = match rendered {
        Some(r) => {
            let mut d = plan::desired(&r.state, addresses, &opts.settings);
            if opts.docker {
                d.dnat = crate::dnat::desired(&r.state, &r.config, &r.overlay, addresses);
            }
            d
        }
        None => Desired::default(),
    };
    let observed = host.observe(net, &desired, opts.docker)?;
    let plan = plan::plan(&desired, &observed, &opts.settings)
        .map_err(|problems| anyhow!("nothing changed: {}", problems.join("; ")))?;
    if !dry_run && !plan.is_empty() {
        host.apply(&plan, observed.record)?;
    }
    Ok(Outcome { desired, plan })
}
