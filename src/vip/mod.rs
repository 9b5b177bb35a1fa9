//! VIPs on the frontend (issue 20, item 1): which addresses the VIP
//! interface must hold, and the changes that take it there.
//!
//! - [`desired`]: the addresses of the owned services of a desired state
//!   (an fwmark service has none).
//! - [`plan`]: desired against the addresses read from the interface, a
//!   [`VipPlan`] of removals and additions, complete before anything runs.
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
}

/// The plan that takes `present` to `desired` on `interface`.
pub fn plan(interface: &str, desired: &BTreeSet<IpAddr>, present: &BTreeSet<IpAddr>) -> VipPlan {
    VipPlan {
        interface: interface.to_string(),
        remove: present.difference(desired).copied().collect(),
        add: desired.difference(present).copied().collect(),
    }
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
        for l in adds {
            out.push_str(l);
            out.push('\n');
        }
        Some(out)
    }
}

impl fmt::Display for VipPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in self.lines() {
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
}
