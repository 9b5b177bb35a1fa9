//! VIPs on the frontend (issue 20, item 1): which addresses the VIP
//! interface must hold, and the changes that take it there.
//!
//! - [`desired`]: the addresses of the owned services of a desired state
//!   (an fwmark service has none).
//! - [`plan`]: desired against the addresses read from the interface, a
//!   [`VipPlan`] of removals and additions, complete before anything runs.
//! - [`Present`], [`split`], [`plan_present`]: the same on an interface
//!   shared with the host (`--vip-mode arp`), where only the addresses
//!   clusterf marked are its own: an address it did not add is never
//!   removed, and one equal to a desired VIP is kept as it is and named in
//!   the plan (`= vip ... not clusterf's`), never added over.
//! - [`announce`]: the gratuitous ARP and neighbour advertisement frames of
//!   ARP mode, and when they are sent.
//!
//! The daemon runs a VIP plan around the IPVS plan, make before break:
//! removals first (a VIP goes before its service is deleted), then the
//! IPVS ops, then additions (a service exists before its VIP is added).
//!
//! Invariant: pure; no sockets, no clock. What the interface is and how it
//! is owned is `netlink::rtnl`'s; when to withdraw is
//! `reconcile::withdraw`'s.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use crate::model::{IpvsState, ServiceKey};
use crate::plan::Ownership;

pub mod announce;

/// The addresses of the owned services of `state`.
pub fn desired(state: &IpvsState, ownership: &Ownership) -> BTreeSet<IpAddr> {
    state
        .services
        .keys()
        .filter(|k| ownership.owns(k))
        .filter_map(|k| match k {
            ServiceKey::Addr { addr, .. } => Some(addr.ip()),
            ServiceKey::Fwmark { .. } => None,
        })
        .collect()
}

/// The changes to the VIP interface: removals (run before the IPVS ops)
/// and additions (run after), each sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VipPlan {
    pub interface: String,
    pub remove: Vec<IpAddr>,
    pub add: Vec<IpAddr>,
    /// Desired VIPs already on the interface as addresses that are not
    /// clusterf's (`--vip-mode arp`): left alone, neither added nor removed.
    pub kept: Vec<IpAddr>,
}

/// The plan that takes `present` to `desired` on `interface`.
pub fn plan(interface: &str, desired: &BTreeSet<IpAddr>, present: &BTreeSet<IpAddr>) -> VipPlan {
    VipPlan {
        interface: interface.to_string(),
        remove: present.difference(desired).copied().collect(),
        add: desired.difference(present).copied().collect(),
        kept: Vec::new(),
    }
}

/// The addresses of a VIP interface, by owner. On clusterf's own dummy
/// every VIP is clusterf's; on a shared interface (`--vip-mode arp`) only
/// those it marked when it added them (and within `--own`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Present {
    /// clusterf's VIPs: what it may remove.
    pub ours: BTreeSet<IpAddr>,
    /// Every other address of the interface: never touched.
    pub others: BTreeSet<IpAddr>,
}

/// A shared interface's addresses as [`Present`]: `marked` (host addresses
/// carrying clusterf's mark) are ours when `ownership` covers them (another
/// clusterf may own another range on the same interface); the rest, and
/// `unmarked`, are not.
pub fn split(
    marked: &BTreeSet<IpAddr>,
    unmarked: &BTreeSet<IpAddr>,
    ownership: &Ownership,
) -> Present {
    let (ours, foreign): (BTreeSet<IpAddr>, BTreeSet<IpAddr>) =
        marked.iter().partition(|a| ownership.owns_addr(**a));
    Present {
        ours,
        others: unmarked.union(&foreign).copied().collect(),
    }
}

/// The plan that takes the interface's VIPs (`present.ours`) to `desired`,
/// around the addresses that are not clusterf's: a desired VIP among them
/// is kept as it is, never added; none of them is ever removed.
pub fn plan_present(interface: &str, desired: &BTreeSet<IpAddr>, present: &Present) -> VipPlan {
    let mut p = plan(interface, desired, &present.ours);
    let (kept, add) = p.add.into_iter().partition(|a| present.others.contains(a));
    p.add = add;
    p.kept = kept;
    p
}

/// The plan that removes every VIP in `present` (a withdrawal).
pub fn withdraw(interface: &str, present: &BTreeSet<IpAddr>) -> VipPlan {
    plan(interface, &BTreeSet::new(), present)
}

impl VipPlan {
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.add.is_empty()
    }

    /// One line per change, in the order they run: `- vip ADDR/LEN on IF`,
    /// then `+ vip ADDR/LEN on IF`. For the daemon's log and, later, the
    /// text plan.
    pub fn lines(&self) -> Vec<String> {
        let line =
            |sign: char, a: &IpAddr| format!("{sign} vip {} on {}", cidr(*a), self.interface);
        let removes = self.remove.iter().map(|a| line('-', a));
        removes
            .chain(self.add.iter().map(|a| line('+', a)))
            .collect()
    }

    /// One line per kept VIP (`= vip ADDR/LEN on IF: ...`), after the
    /// changes: not a change.
    pub fn kept_lines(&self) -> Vec<String> {
        self.kept
            .iter()
            .map(|a| {
                format!(
                    "= vip {} on {}: present, not clusterf's (left alone)",
                    cidr(*a),
                    self.interface
                )
            })
            .collect()
    }
}

/// The desired services of each of `vips` (the services with that address).
pub fn owners(desired: &IpvsState, vips: &[IpAddr]) -> BTreeMap<IpAddr, Vec<ServiceKey>> {
    let mut out: BTreeMap<IpAddr, Vec<ServiceKey>> =
        vips.iter().map(|a| (*a, Vec::new())).collect();
    for key in desired.services.keys() {
        let ServiceKey::Addr { addr, .. } = key else {
            continue;
        };
        if let Some(list) = out.get_mut(&addr.ip()) {
            list.push(*key);
        }
    }
    out
}

impl VipPlan {
    /// The additions still due after an apply in which the kernel refused
    /// the ops of `refused` (the rest was applied): a VIP is added when a
    /// service of its address (`owners`) was applied, not when every one
    /// of them was refused. Removals are done before the apply.
    pub fn after_refusals(
        self,
        owners: &BTreeMap<IpAddr, Vec<ServiceKey>>,
        refused: &[ServiceKey],
    ) -> VipPlan {
        let applied = |a: &IpAddr| {
            owners
                .get(a)
                .is_some_and(|keys| keys.iter().any(|k| !refused.contains(k)))
        };
        VipPlan {
            remove: Vec::new(),
            add: self.add.into_iter().filter(applied).collect(),
            ..self
        }
    }

    /// The whole applied plan in the order it is applied: the VIP
    /// removals, the IPVS plan's text (`ipvs`, if any), the VIP additions.
    /// `None` when there is nothing in either.
    pub fn around(&self, ipvs: Option<&str>) -> Option<String> {
        if self.is_empty() {
            return ipvs.map(str::to_string);
        }
        let mut out = String::new();
        let lines = self.lines();
        let (removes, adds) = lines.split_at(self.remove.len());
        for l in removes {
            out.push_str(l);
            out.push('\n');
        }
        if let Some(text) = ipvs {
            out.push_str(text);
            if !text.ends_with('\n') {
                out.push('\n');
            }
        }
        for l in adds.iter().chain(&self.kept_lines()) {
            out.push_str(l);
            out.push('\n');
        }
        Some(out)
    }
}

impl fmt::Display for VipPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in self.lines().into_iter().chain(self.kept_lines()) {
            writeln!(f, "{l}")?;
        }
        Ok(())
    }
}

/// `198.51.100.10/32`, `2001:db8::10/128`: a VIP is a host address.
pub fn cidr(a: IpAddr) -> String {
    match a {
        IpAddr::V4(a) => format!("{a}/32"),
        IpAddr::V6(a) => format!("{a}/128"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Service, ServiceAttrs};

    fn state(keys: &[&str]) -> IpvsState {
        let mut s = IpvsState::default();
        for k in keys {
            let key: ServiceKey = k.parse().unwrap();
            s.services
                .insert(key, Service::new(ServiceAttrs::with_scheduler("wrr")));
        }
        s
    }

    fn ips(a: &[&str]) -> BTreeSet<IpAddr> {
        a.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn the_desired_vips_are_the_addresses_of_owned_services_once_each() {
        let s = state(&[
            "tcp://198.51.100.10:80",
            "udp://198.51.100.10:53",
            "tcp://[2001:db8::10]:443",
            "tcp://10.9.9.9:80",
            "fwmark://7",
        ]);
        let own =
            Ownership::parse(&["198.51.100.0/24".into(), "2001:db8::/64".into()], &[]).unwrap();
        assert_eq!(desired(&s, &own), ips(&["198.51.100.10", "2001:db8::10"]));
        assert_eq!(
            desired(&s, &Ownership::all()),
            ips(&["10.9.9.9", "198.51.100.10", "2001:db8::10"])
        );
    }

    #[test]
    fn a_vip_plan_removes_first_then_adds_and_prints_one_line_each() {
        let p = plan(
            "clusterf0",
            &ips(&["198.51.100.10", "2001:db8::10"]),
            &ips(&["198.51.100.10", "198.51.100.11"]),
        );
        assert_eq!(p.remove, vec!["198.51.100.11".parse::<IpAddr>().unwrap()]);
        assert_eq!(p.add, vec!["2001:db8::10".parse::<IpAddr>().unwrap()]);
        assert_eq!(
            p.to_string(),
            "- vip 198.51.100.11/32 on clusterf0\n+ vip 2001:db8::10/128 on clusterf0\n"
        );
    }

    #[test]
    fn after_refusals_a_vip_is_added_when_one_of_its_services_was_applied() {
        let desired = state(&[
            "tcp://10.0.0.1:80",
            "tcp://10.0.0.1:443",
            "tcp://10.0.0.2:80",
        ]);
        let p = VipPlan {
            interface: "clusterf0".into(),
            remove: vec!["10.0.0.9".parse().unwrap()],
            add: ips(&["10.0.0.1", "10.0.0.2"]).into_iter().collect(),
            kept: Vec::new(),
        };
        let owners = owners(&desired, &p.add);
        assert_eq!(owners[&"10.0.0.1".parse().unwrap()].len(), 2);
        let refused: Vec<ServiceKey> = vec![
            "tcp://10.0.0.1:80".parse().unwrap(),
            "tcp://10.0.0.2:80".parse().unwrap(),
        ];
        let after = p.clone().after_refusals(&owners, &refused);
        assert_eq!(after.add, vec!["10.0.0.1".parse::<IpAddr>().unwrap()]);
        assert!(after.remove.is_empty(), "removals ran before the apply");
        let after = p.after_refusals(&owners, &refused[..1]);
        assert_eq!(after.add.len(), 2);
    }

    #[test]
    fn the_applied_plan_reads_in_apply_order_removals_ipvs_additions() {
        let p = VipPlan {
            interface: "clusterf0".into(),
            remove: vec!["10.0.0.9".parse().unwrap()],
            add: vec!["2001:db8::1".parse().unwrap()],
            kept: Vec::new(),
        };
        let ipvs = "+ service tcp://[2001:db8::1]:80\n- service tcp://10.0.0.9:80\n";
        assert_eq!(
            p.around(Some(ipvs)).unwrap(),
            format!("- vip 10.0.0.9/32 on clusterf0\n{ipvs}+ vip 2001:db8::1/128 on clusterf0\n")
        );
        assert_eq!(
            p.around(None).unwrap(),
            "- vip 10.0.0.9/32 on clusterf0\n+ vip 2001:db8::1/128 on clusterf0\n"
        );
        let none = VipPlan {
            interface: "clusterf0".into(),
            remove: Vec::new(),
            add: Vec::new(),
            kept: Vec::new(),
        };
        assert_eq!(none.around(Some("x\n")).as_deref(), Some("x\n"));
        assert_eq!(none.around(None), None);
    }

    #[test]
    fn a_vip_plan_is_empty_when_the_interface_already_holds_the_vips() {
        let v = ips(&["198.51.100.10", "2001:db8::10"]);
        assert!(plan("clusterf0", &v, &v).is_empty());
        let w = withdraw("clusterf0", &v);
        assert_eq!(w.remove.len(), 2);
        assert!(w.add.is_empty());
    }

    #[test]
    fn a_service_sharing_its_address_with_a_remaining_one_keeps_the_vip() {
        let own = Ownership::all();
        let before = desired(
            &state(&["tcp://198.51.100.10:80", "udp://198.51.100.10:53"]),
            &own,
        );
        let after = desired(&state(&["udp://198.51.100.10:53"]), &own);
        assert!(plan("clusterf0", &after, &before).is_empty());
    }

    #[test]
    fn on_a_shared_interface_only_marked_addresses_within_own_are_ours() {
        let own = Ownership::parse(&["10.0.0.96/28".into(), "fd00::100/120".into()], &[]).unwrap();
        let marked = ips(&["10.0.0.100", "fd00::100", "10.0.0.200"]);
        let unmarked = ips(&["10.0.0.1", "10.0.0.101"]);
        let p = split(&marked, &unmarked, &own);
        assert_eq!(p.ours, ips(&["10.0.0.100", "fd00::100"]));
        // 10.0.0.200 is marked but outside --own: another clusterf's.
        assert_eq!(p.others, ips(&["10.0.0.1", "10.0.0.101", "10.0.0.200"]));
        let all = split(&marked, &unmarked, &Ownership::all());
        assert_eq!(all.ours, marked);
    }

    #[test]
    fn a_desired_vip_already_there_but_not_ours_is_kept_never_added_or_removed() {
        let present = Present {
            ours: ips(&["10.0.0.100", "10.0.0.102"]),
            others: ips(&["10.0.0.1", "10.0.0.101", "10.0.0.103"]),
        };
        let desired = ips(&["10.0.0.100", "10.0.0.101", "fd00::100"]);
        let p = plan_present("eth0", &desired, &present);
        assert_eq!(p.remove, vec!["10.0.0.102".parse::<IpAddr>().unwrap()]);
        assert_eq!(p.add, vec!["fd00::100".parse::<IpAddr>().unwrap()]);
        assert_eq!(p.kept, vec!["10.0.0.101".parse::<IpAddr>().unwrap()]);
        assert_eq!(
            p.to_string(),
            "- vip 10.0.0.102/32 on eth0\n+ vip fd00::100/128 on eth0\n\
             = vip 10.0.0.101/32 on eth0: present, not clusterf's (left alone)\n"
        );
        assert_eq!(p.lines().len(), 2, "a kept VIP is not a change");
        // Nothing desired: only ours go; the others stay.
        let w = plan_present("eth0", &BTreeSet::new(), &present);
        assert_eq!(
            w.remove,
            ips(&["10.0.0.100", "10.0.0.102"])
                .into_iter()
                .collect::<Vec<_>>()
        );
        assert!(w.add.is_empty() && w.kept.is_empty());
        // Only kept VIPs: no change, nothing to run.
        let k = plan_present("eth0", &ips(&["10.0.0.101"]), &Present::default());
        assert_eq!(k.add.len(), 1);
        let k = plan_present("eth0", &ips(&["10.0.0.101"]), &present);
        assert!(k.remove.len() == 2 && k.add.is_empty() && k.kept.len() == 1);
    }

    #[test]
    fn on_its_own_dummy_every_vip_is_ours_as_before() {
        let desired = ips(&["198.51.100.10", "2001:db8::10"]);
        let present = ips(&["198.51.100.10", "198.51.100.11"]);
        let own = Present {
            ours: present.clone(),
            others: BTreeSet::new(),
        };
        assert_eq!(
            plan_present("clusterf0", &desired, &own),
            plan("clusterf0", &desired, &present)
        );
    }

    #[test]
    fn the_applied_plan_names_kept_vips_after_the_additions() {
        let p = VipPlan {
            interface: "eth0".into(),
            remove: Vec::new(),
            add: vec!["10.0.0.100".parse().unwrap()],
            kept: vec!["10.0.0.101".parse().unwrap()],
        };
        assert_eq!(
            p.around(Some("+ service tcp://10.0.0.100:80\n")).unwrap(),
            "+ service tcp://10.0.0.100:80\n+ vip 10.0.0.100/32 on eth0\n\
             = vip 10.0.0.101/32 on eth0: present, not clusterf's (left alone)\n"
        );
        let only_kept = VipPlan {
            add: Vec::new(),
            ..p
        };
        assert!(only_kept.is_empty());
        assert_eq!(only_kept.around(None), None);
    }
}
