//! DNAT of VIP:port to the containers of a Docker host (`realserver
//! --docker`, issue 20): which rules this host needs, how several
//! containers behind one VIP:port share it, and the plan that takes the
//! table clusterf owns from what it holds to that.
//!
//! With droute or tunnel, a route's gateway sends the containers of a
//! Docker host to the host itself (`gateway:<service port>`), and the
//! packets arrive still addressed to VIP:port. [`desired`] finds, in the
//! compiled state, each such dest on one of this host's addresses and,
//! through each dest's provenance, the backends behind it: their own
//! address and port are the containers to DNAT to.
//!
//! Several containers behind one VIP:port: IPVS sees one dest (the host,
//! weights summed) and the host picks. [`steps`] writes one rule per
//! container, tried in order, each taking a new connection with the
//! probability of its weight among the containers not yet tried (`numgen
//! random mod <rest> < <weight>`), the last one unconditional: the weights
//! the backends were given hold on the host too, with plain expressions
//! (no sets or maps), and conntrack keeps a connection on the container
//! its first packet chose, also across a rewrite of the table.
//!
//! Invariant: pure (states in, rules and plans out). What the rules look
//! like in nf_tables, and the socket, are `netlink::nft`'s.

mod plan;

pub use plan::{Action, Current, DnatPlan, Layout, plan};

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::config::{Backend, Config, Overlay};
use crate::model::{IpvsState, Method, Protocol, ServiceKey};

/// clusterf's table: `inet clusterf`, marked with [`TABLE_COMMENT`].
pub const TABLE: &str = "clusterf";
/// The comment that marks the table as clusterf's (its userdata).
pub const TABLE_COMMENT: &str = "clusterf: DNAT of VIPs to local containers; replaced whole";
/// The regular chain holding the DNAT rules; the base chains jump to it.
pub const RULE_CHAIN: &str = "containers";
/// The base chains: name, hook (prerouting for packets that arrive,
/// output for the host's own), priority.
pub const BASE_CHAINS: [(&str, Hook); 2] =
    [("prerouting", Hook::Prerouting), ("output", Hook::Output)];
/// One below `dstnat` (-100), where Docker's `nat` chains sit: the first
/// nat chain that binds a connection wins, so VIP:port is ours, and every
/// other packet goes on to Docker's rules untouched.
pub const PRIORITY: i32 = -101;

/// A base chain's hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Hook {
    Prerouting,
    Output,
}

/// VIP:port of one protocol -> container address:port -> weight.
pub type Rules = BTreeMap<(Protocol, SocketAddr), BTreeMap<SocketAddr, u32>>;

/// One rule of the DNAT chain: VIP:port to `to`, for a new connection
/// that `pick` takes (all of them without one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Step {
    pub protocol: Protocol,
    pub vip: SocketAddr,
    pub to: SocketAddr,
    pub pick: Option<Pick>,
}

/// `numgen random mod <modulus> < <below>`: `below` in `modulus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pick {
    pub below: u32,
    pub modulus: u32,
}

/// The DNAT rules this host needs: for every service VIP:port (fwmark
/// services have no port to match) with a droute or tunnel dest on one of
/// `host`'s addresses, each backend behind that dest whose own address is
/// not the dest's, at its own address and port of the protocol, with its
/// own weight (several backends on one container add up).
pub fn desired(
    state: &IpvsState,
    config: &Config,
    overlay: &Overlay,
    host: &BTreeSet<IpAddr>,
) -> Rules {
    let mut rules = Rules::new();
    for (key, svc) in &state.services {
        let ServiceKey::Addr {
            protocol,
            addr: vip,
        } = *key
        else {
            continue;
        };
        for (dest, d) in &svc.dests {
            if !host.contains(&dest.ip()) || d.attrs.method == Method::Masq {
                continue;
            }
            for p in &d.provenance {
                let Some(b) = backend(config, overlay, &svc.names, &p.backend, &p.source()) else {
                    continue;
                };
                let (Some(ip), Some(port)) =
                    (b.endpoints.addr(key.family()), b.endpoints.port(protocol))
                else {
                    continue;
                };
                if ip == dest.ip() {
                    continue;
                }
                let w = rules
                    .entry((protocol, vip))
                    .or_default()
                    .entry(SocketAddr::new(ip, port))
                    .or_default();
                *w = w.saturating_add(p.weight);
            }
        }
    }
    rules
}

/// The backend a provenance names: in the repo or the overlay of one of
/// the service's names, defined where it says.
fn backend<'a>(
    config: &'a Config,
    overlay: &'a Overlay,
    names: &[String],
    backend: &str,
    source: &str,
) -> Option<&'a Backend> {
    names.iter().find_map(|n| {
        let repo = config.services.get(n).and_then(|s| s.backends.get(backend));
        let over = overlay.backends.get(n).and_then(|b| b.get(backend));
        [repo, over]
            .into_iter()
            .flatten()
            .find(|b| b.source == source)
    })
}

/// The chain's rules for `rules`, in order: per VIP:port, its containers
/// by address, each with the weight it has among those after it. A
/// container of weight 0 takes nothing while another has weight; when all
/// have 0 they share equally (a packet that reached the host is never
/// left without a container).
pub fn steps(rules: &Rules) -> Vec<Step> {
    let mut out = Vec::new();
    for (&(protocol, vip), targets) in rules {
        let mut live: Vec<(SocketAddr, u32)> = targets
            .iter()
            .filter(|(_, w)| **w > 0)
            .map(|(a, w)| (*a, *w))
            .collect();
        if live.is_empty() {
            live = targets.keys().map(|a| (*a, 1)).collect();
        }
        let mut rest: u32 = live.iter().fold(0u32, |s, (_, w)| s.saturating_add(*w));
        for (i, (to, w)) in live.iter().enumerate() {
            let last = i + 1 == live.len();
            out.push(Step {
                protocol,
                vip,
                to: *to,
                pick: (!last).then_some(Pick {
                    below: *w,
                    modulus: rest,
                }),
            });
            rest = rest.saturating_sub(*w);
        }
    }
    out
}

/// The rules `steps` make, read back: each container's weight is its
/// `below`, the last one's what the one before it left.
pub fn rules_of(steps: &[Step]) -> Rules {
    let mut rules = Rules::new();
    let mut left: BTreeMap<(Protocol, SocketAddr), u32> = BTreeMap::new();
    for s in steps {
        let key = (s.protocol, s.vip);
        let w = match s.pick {
            Some(p) => {
                left.insert(key, p.modulus.saturating_sub(p.below));
                p.below
            }
            None => left.remove(&key).unwrap_or(1),
        };
        rules.entry(key).or_default().insert(s.to, w);
    }
    rules
}

/// One line per container of `rules`, in order.
pub fn lines(rules: &Rules) -> Vec<Dnat> {
    let mut out = Vec::new();
    for (&(protocol, vip), targets) in rules {
        let several = targets.len() > 1;
        for (to, w) in targets {
            out.push(Dnat(protocol, vip, *to, several.then_some(*w)));
        }
    }
    out
}

/// One container of a VIP:port as the plan shows it: `dnat tcp
/// 198.51.100.10:80 -> 172.17.0.2:8080`, with ` weight N` when the VIP:port
/// has several.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dnat(
    pub Protocol,
    pub SocketAddr,
    pub SocketAddr,
    pub Option<u32>,
);

impl fmt::Display for Dnat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dnat {} {} -> {}", self.0, self.1, self.2)?;
        if let Some(w) = self.3 {
            write!(f, " weight {w}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
