//! The realserver's pure core: which services have a droute or tunnel
//! dest on this host ([`desired`]), and the steps that take the host from
//! what was read ([`Observed`]) to what they need ([`plan`]). A VIP with a
//! tunnel dest here is held by the IPIP link, which needs an address of
//! its own for the kernel to accept anything on it under `rp_filter`;
//! the other VIPs by the dummy link.
//!
//! Order of a plan (each step a line): VIP removals, sysctls restored,
//! links deleted; then links created and set up, sysctls set, VIPs added.
//! A VIP is added only after the ARP sysctls that keep it from being
//! answered for, and removed before they are restored.
//!
//! Invariant: pure; no sockets, no files. Reading and applying are
//! `realserver::host`'s and `realserver::sysctl`'s.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::model::{IpvsState, Method, ServiceKey};
use crate::text::quote;
use crate::vip::cidr;

/// The alias that marks a link as the realserver's (its dummy and its
/// IPIP link; the kind tells them apart).
pub const ALIAS: &str = "clusterf: realserver";
pub const DUMMY: &str = "dummy";
pub const IPIP: &str = "ipip";

/// What the realserver is asked to keep (its flags, resolved).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The dummy link that holds the VIPs.
    pub vip_link: String,
    /// The IPIP link that receives tunnel dests' packets.
    pub ipip_link: String,
    /// Interfaces whose ARP sysctls are set (`--arp-interface`).
    pub arp_interfaces: Vec<String>,
}

/// One sysctl under `net.ipv4.conf.IF.`: `(IF, name)`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Sysctl {
    pub interface: String,
    pub name: String,
}

impl Sysctl {
    pub fn new(interface: &str, name: &str) -> Sysctl {
        Sysctl {
            interface: interface.to_string(),
            name: name.to_string(),
        }
    }

    /// Whether it is one the realserver may write: an interface name (no
    /// '/', not `.` or `..`) and one of the three sysctls it sets; a
    /// state file naming another is refused.
    pub fn is_ours(&self) -> bool {
        let i = &self.interface;
        !i.is_empty()
            && i.len() <= 15
            && i != "."
            && i != ".."
            && !i.contains('/')
            && ["arp_ignore", "arp_announce", "rp_filter"].contains(&self.name.as_str())
    }

    /// Its file under `/proc/sys`.
    pub fn path(&self) -> String {
        format!("net/ipv4/conf/{}/{}", self.interface, self.name)
    }
}

impl fmt::Display for Sysctl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "net.ipv4.conf.{}.{}", self.interface, self.name)
    }
}

/// What a sysctl must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Want {
    /// At least this (the ARP sysctls: a stricter value set by the
    /// operator is kept).
    AtLeast(i64),
    Exactly(i64),
}

impl Want {
    fn met_by(self, value: i64) -> bool {
        match self {
            Want::AtLeast(n) => value >= n,
            Want::Exactly(n) => value == n,
        }
    }

    fn value(self) -> i64 {
        match self {
            Want::AtLeast(n) | Want::Exactly(n) => n,
        }
    }
}

/// A service this host serves as a droute or tunnel dest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Served {
    pub service: String,
    pub dest: String,
    pub method: &'static str,
}

/// What the host must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    pub served: Vec<Served>,
    /// On the dummy link (VIPs of droute dests only); none: no dummy link.
    pub vips: BTreeSet<IpAddr>,
    /// On the IPIP link (VIPs with a tunnel dest here); none: no IPIP
    /// link. The link needs an IPv4 address of its own: the kernel's
    /// reverse-path check, strict or loose, drops every packet that
    /// arrives on a link without one (`__fib_validate_source`).
    pub tunnel_vips: BTreeSet<IpAddr>,
    pub sysctls: BTreeMap<Sysctl, Want>,
    /// What was found and cannot be served (an IPv6 tunnel dest, an
    /// fwmark service), for the log.
    pub warnings: Vec<String>,
    /// The DNAT of VIP:port to this Docker host's containers
    /// (`--docker`; `dnat::desired`): none without it, so a table left by
    /// an earlier `--docker` run is removed.
    pub dnat: crate::dnat::Rules,
}

/// The services of `state` with a droute or tunnel dest on one of
/// `host` (this host's addresses), and what they need: their VIPs on the
/// dummy link (droute) or the IPIP link with loose `rp_filter` (tunnel),
/// and the ARP sysctls of `settings.arp_interfaces`.
pub fn desired(state: &IpvsState, host: &BTreeSet<IpAddr>, settings: &Settings) -> Desired {
    let mut d = Desired::default();
    for (key, service) in &state.services {
        for (addr, dest) in &service.dests {
            let method = dest.attrs.method;
            if !host.contains(&addr.ip()) || method == Method::Masq {
                continue;
            }
            let ServiceKey::Addr { addr: vip, .. } = key else {
                d.warnings.push(format!(
                    "{key}: a dest on this host ({addr}), but an fwmark service has no address to hold: add its addresses by hand"
                ));
                continue;
            };
            if method == Method::Tunnel {
                if vip.is_ipv6() {
                    d.warnings.push(format!(
                        "{key}: an IPv6 tunnel dest on this host ({addr}) needs an ip6tnl link, which clusterf realserver does not keep"
                    ));
                    continue;
                }
                d.tunnel_vips.insert(vip.ip());
            } else {
                d.vips.insert(vip.ip());
            }
            d.served.push(Served {
                service: key.to_string(),
                dest: addr.to_string(),
                method: method.as_str(),
            });
        }
    }
    // A VIP with a tunnel dest here is held by the IPIP link alone.
    d.vips = d.vips.difference(&d.tunnel_vips).copied().collect();
    if !d.vips.is_empty() || !d.tunnel_vips.is_empty() {
        for ifname in &settings.arp_interfaces {
            d.sysctls
                .insert(Sysctl::new(ifname, "arp_ignore"), Want::AtLeast(1));
            d.sysctls
                .insert(Sysctl::new(ifname, "arp_announce"), Want::AtLeast(2));
        }
    }
    if !d.tunnel_vips.is_empty() {
        // Loose: the effective value is the larger of `all` and the link's,
        // so a strict `all` becomes loose on this link only.
        d.sysctls.insert(
            Sysctl::new(&settings.ipip_link, "rp_filter"),
            Want::Exactly(2),
        );
    }
    d
}

/// A link as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub index: i32,
    pub kind: String,
    pub up: bool,
    /// Why it is not ours (`netlink::rtnl::not_ours_as`); `None`: ours.
    pub foreign: Option<String>,
}

/// A sysctl clusterf set: what it was before, and what clusterf set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    #[serde(flatten)]
    pub sysctl: Sysctl,
    pub was: i64,
    pub set: i64,
}

/// The sysctls clusterf changed, with their earlier values (the state
/// file): what `--cleanup` restores.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub sysctls: Vec<Recorded>,
}

impl Record {
    pub fn get(&self, s: &Sysctl) -> Option<&Recorded> {
        self.sysctls.iter().find(|r| r.sysctl == *s)
    }

    /// Records `was` for `s` (a first record only) and what clusterf set.
    pub fn set(&mut self, s: &Sysctl, was: Option<i64>, set: i64) {
        match self.sysctls.iter_mut().find(|r| r.sysctl == *s) {
            Some(r) => r.set = set,
            None => self.sysctls.push(Recorded {
                sysctl: s.clone(),
                was: was.unwrap_or(0),
                set,
            }),
        }
    }

    pub fn forget(&mut self, s: &Sysctl) {
        self.sysctls.retain(|r| r.sysctl != *s);
    }
}

/// The host as read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// Our links (by alias), and links with one of our names that are
    /// not ours.
    pub links: Vec<Link>,
    /// The VIPs on each link of ours, by name.
    pub vips: BTreeMap<String, BTreeSet<IpAddr>>,
    /// The values of the desired and recorded sysctls (`None`: no such
    /// file, the interface does not exist).
    pub sysctls: BTreeMap<Sysctl, Option<i64>>,
    pub record: Record,
    /// clusterf's DNAT table as read; `None`: not read (no nf_tables
    /// here, and no `--docker`: then it is left alone).
    pub dnat: Option<crate::dnat::Current>,
}

/// One change to the host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Step {
    RemoveVip {
        link: String,
        vip: IpAddr,
    },
    /// Sets the sysctl back to what it was before clusterf set it.
    RestoreSysctl {
        sysctl: Sysctl,
        from: i64,
        to: i64,
    },
    /// A recorded sysctl changed since clusterf set it: left as it is,
    /// and forgotten.
    ForgetSysctl {
        sysctl: Sysctl,
        now: Option<i64>,
        set: i64,
    },
    DeleteLink {
        name: String,
        kind: String,
    },
    AddLink {
        name: String,
        kind: String,
    },
    SetUp {
        name: String,
    },
    /// `record`: kept in the state file (a sysctl not of our own links;
    /// its first earlier value is what a cleanup restores).
    SetSysctl {
        sysctl: Sysctl,
        from: Option<i64>,
        to: i64,
        record: bool,
    },
    /// clusterf's DNAT table created, replaced whole or removed: the
    /// plan's lines, and the plan `host` applies.
    Dnat {
        lines: Vec<String>,
        #[serde(skip)]
        plan: crate::dnat::DnatPlan,
    },
    AddVip {
        link: String,
        vip: IpAddr,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::RemoveVip { link, vip } => write!(f, "- vip {} on {link}", cidr(*vip)),
            Step::RestoreSysctl { sysctl, from, to } => {
                write!(f, "~ sysctl {sysctl} {from} -> {to} (restored)")
            }
            Step::ForgetSysctl { sysctl, now, set } => {
                let now = now.map_or("gone".to_string(), |n| n.to_string());
                write!(
                    f,
                    "= sysctl {sysctl} {now}: changed since clusterf set {set}, left as it is"
                )
            }
            Step::DeleteLink { name, kind } => write!(f, "- link {name} ({kind})"),
            Step::AddLink { name, kind } => write!(f, "+ link {name} ({kind})"),
            Step::SetUp { name } => write!(f, "~ link {name} up"),
            Step::SetSysctl {
                sysctl, from, to, ..
            } => match from {
                Some(from) => write!(f, "~ sysctl {sysctl} {from} -> {to}"),
                None => write!(f, "~ sysctl {sysctl} -> {to}"),
            },
            Step::Dnat { lines, .. } => write!(f, "{}", lines.join("\n")),
            Step::AddVip { link, vip } => write!(f, "+ vip {} on {link}", cidr(*vip)),
        }
    }
}

/// The steps, in the order they run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub steps: Vec<Step>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.steps {
            writeln!(f, "{s}")?;
        }
        Ok(())
    }
}

/// The plan that takes `observed` to `desired`; every problem at once
/// when there is none (a link of our name that is not ours, an interface
/// whose sysctl is missing): then nothing may change.
pub fn plan(
    desired: &Desired,
    observed: &Observed,
    settings: &Settings,
) -> Result<Plan, Vec<String>> {
    let mut problems = Vec::new();
    let wanted = wanted_links(desired, settings);
    for l in &observed.links {
        if let Some(why) = &l.foreign
            && wanted.iter().any(|(name, _)| *name == l.name)
        {
            problems.push(format!("link {} {why}", l.name));
        }
    }
    let mut breaks = Vec::new();
    let mut makes = Vec::new();
    links(&wanted, observed, &mut breaks, &mut makes);
    sysctls(
        desired,
        observed,
        &wanted,
        &mut problems,
        (&mut breaks, &mut makes),
    );
    vips(desired, observed, settings, &mut breaks, &mut makes);
    dnat(desired, observed, &mut problems, &mut makes);
    if !problems.is_empty() {
        return Err(problems);
    }
    breaks.sort_by_key(order);
    makes.sort_by_key(order);
    breaks.extend(makes);
    Ok(Plan { steps: breaks })
}

/// Where a step runs: removals, restores, deletes; creates, ups, sets,
/// the DNAT table, adds (stable within each). The table changes whole in
/// one step: after every VIP removal (a VIP leaves before its rule) and
/// before every VIP addition (a rule is there before its VIP).
fn order(s: &Step) -> u8 {
    match s {
        Step::RemoveVip { .. } => 0,
        Step::RestoreSysctl { .. } | Step::ForgetSysctl { .. } => 1,
        Step::DeleteLink { .. } => 2,
        Step::AddLink { .. } => 3,
        Step::SetUp { .. } => 4,
        Step::SetSysctl { .. } => 5,
        Step::Dnat { .. } => 6,
        Step::AddVip { .. } => 7,
    }
}

/// The links the host needs: name and kind.
fn wanted_links<'a>(desired: &Desired, settings: &'a Settings) -> Vec<(&'a str, &'static str)> {
    let mut out = Vec::new();
    if !desired.vips.is_empty() {
        out.push((settings.vip_link.as_str(), DUMMY));
    }
    if !desired.tunnel_vips.is_empty() {
        out.push((settings.ipip_link.as_str(), IPIP));
    }
    out
}

fn links(
    wanted: &[(&str, &str)],
    observed: &Observed,
    breaks: &mut Vec<Step>,
    makes: &mut Vec<Step>,
) {
    let ours = |l: &&Link| l.foreign.is_none();
    for l in observed.links.iter().filter(ours) {
        if !wanted.contains(&(l.name.as_str(), l.kind.as_str())) {
            breaks.push(Step::DeleteLink {
                name: l.name.clone(),
                kind: l.kind.clone(),
            });
        }
    }
    for (name, kind) in wanted {
        match observed.links.iter().find(|l| l.name == *name) {
            None => makes.push(Step::AddLink {
                name: name.to_string(),
                kind: kind.to_string(),
            }),
            Some(l) if l.foreign.is_none() && l.kind == *kind && !l.up => makes.push(Step::SetUp {
                name: name.to_string(),
            }),
            // Ours of another kind: deleted above, then created again.
            Some(l) if l.foreign.is_none() && l.kind != *kind => makes.push(Step::AddLink {
                name: name.to_string(),
                kind: kind.to_string(),
            }),
            Some(_) => {}
        }
    }
}

/// The desired sysctls set when they differ (recording the earlier value
/// unless on a link of ours), and the recorded ones no longer desired
/// restored (or forgotten when changed by someone else since).
fn sysctls(
    desired: &Desired,
    observed: &Observed,
    wanted: &[(&str, &str)],
    problems: &mut Vec<String>,
    (breaks, makes): (&mut Vec<Step>, &mut Vec<Step>),
) {
    let own_link = |s: &Sysctl| wanted.iter().any(|(n, _)| *n == s.interface);
    for (s, want) in &desired.sysctls {
        let now = observed.sysctls.get(s).copied().flatten();
        match now {
            Some(v) if want.met_by(v) => {}
            None if !own_link(s) => problems.push(format!(
                "--arp-interface {}: no such interface (no /proc/sys/{})",
                quote(&s.interface),
                s.path()
            )),
            _ => makes.push(Step::SetSysctl {
                sysctl: s.clone(),
                from: now,
                to: want.value(),
                record: !own_link(s),
            }),
        }
    }
    for rec in &observed.record.sysctls {
        let s = &rec.sysctl;
        if desired.sysctls.contains_key(s) {
            continue;
        }
        match observed.sysctls.get(s).copied().flatten() {
            Some(now) if now == rec.set => breaks.push(Step::RestoreSysctl {
                sysctl: s.clone(),
                from: now,
                to: rec.was,
            }),
            now => breaks.push(Step::ForgetSysctl {
                sysctl: s.clone(),
                now,
                set: rec.set,
            }),
        }
    }
}

/// The DNAT table's step, when it was read and differs; a table of our
/// name that is not ours is a problem.
fn dnat(desired: &Desired, observed: &Observed, problems: &mut Vec<String>, makes: &mut Vec<Step>) {
    let Some(current) = &observed.dnat else {
        return;
    };
    match crate::dnat::plan(&desired.dnat, current) {
        Ok(plan) if plan.is_empty() => {}
        Ok(plan) => makes.push(Step::Dnat {
            lines: plan.lines.clone(),
            plan,
        }),
        Err(why) => problems.push(why),
    }
}

fn vips(
    desired: &Desired,
    observed: &Observed,
    settings: &Settings,
    breaks: &mut Vec<Step>,
    makes: &mut Vec<Step>,
) {
    let links = [
        (&settings.vip_link, DUMMY, &desired.vips),
        (&settings.ipip_link, IPIP, &desired.tunnel_vips),
    ];
    for (link, kind, want) in links {
        let ours = observed
            .links
            .iter()
            .any(|l| l.name == *link && l.kind == kind && l.foreign.is_none());
        let none = BTreeSet::new();
        let present = match observed.vips.get(link) {
            Some(v) if ours => v,
            _ => &none,
        };
        for vip in present.difference(want) {
            breaks.push(Step::RemoveVip {
                link: link.clone(),
                vip: *vip,
            });
        }
        for vip in want.difference(present) {
            makes.push(Step::AddVip {
                link: link.clone(),
                vip: *vip,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Dest, DestAttrs, Service, ServiceAttrs};

    fn settings() -> Settings {
        Settings {
            vip_link: "clusterf-rs0".into(),
            ipip_link: "clusterf-ipip0".into(),
            arp_interfaces: vec!["eth0".into()],
        }
    }

    /// A state of `(service, dest, method)`.
    fn state(rows: &[(&str, &str, Method)]) -> IpvsState {
        let mut s = IpvsState::default();
        for (key, dest, method) in rows {
            let svc = s
                .services
                .entry(key.parse().unwrap())
                .or_insert_with(|| Service::new(ServiceAttrs::with_scheduler("wrr")));
            svc.dests.insert(
                dest.parse().unwrap(),
                Dest {
                    attrs: DestAttrs::new(*method, 1),
                    provenance: Box::default(),
                },
            );
        }
        s
    }

    fn host() -> BTreeSet<IpAddr> {
        ["10.0.0.10".parse().unwrap(), "fd00::10".parse().unwrap()].into()
    }

    fn ours(name: &str, kind: &str) -> Link {
        Link {
            name: name.into(),
            index: 7,
            kind: kind.into(),
            up: true,
            foreign: None,
        }
    }

    fn lines(p: &Plan) -> Vec<String> {
        p.steps.iter().map(Step::to_string).collect()
    }

    /// [`fresh`], with our dummy link holding 198.51.100.1.
    fn holding_198_51_100_1() -> Observed {
        let mut o = fresh();
        o.links.push(ours("clusterf-rs0", DUMMY));
        o.vips
            .entry("clusterf-rs0".into())
            .or_default()
            .insert("198.51.100.1".parse().unwrap());
        o
    }

    /// The host of a fresh machine: eth0's ARP sysctls at the kernel's
    /// defaults, no links of ours.
    fn fresh() -> Observed {
        let mut o = Observed::default();
        o.sysctls.insert(Sysctl::new("eth0", "arp_ignore"), Some(0));
        o.sysctls
            .insert(Sysctl::new("eth0", "arp_announce"), Some(0));
        o
    }

    #[test]
    fn only_droute_and_tunnel_dests_on_this_host_make_a_service_served_here() {
        let s = state(&[
            ("tcp://198.51.100.1:80", "10.0.0.10:80", Method::Droute),
            ("tcp://198.51.100.2:80", "10.0.0.10:80", Method::Tunnel),
            ("tcp://198.51.100.3:80", "10.0.0.10:8080", Method::Masq),
            ("tcp://198.51.100.4:80", "10.0.0.11:80", Method::Droute),
            ("tcp://[2001:db8::1]:80", "[fd00::10]:80", Method::Droute),
            ("tcp://[2001:db8::2]:80", "[fd00::10]:80", Method::Tunnel),
        ]);
        let d = desired(&s, &host(), &settings());
        let text = |v: &BTreeSet<IpAddr>| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert_eq!(text(&d.vips), ["198.51.100.1", "2001:db8::1"]);
        assert_eq!(text(&d.tunnel_vips), ["198.51.100.2"]);
        assert_eq!(d.served.len(), 3);
        assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
        assert!(d.warnings[0].contains("ip6tnl"));
        assert_eq!(
            d.sysctls.get(&Sysctl::new("clusterf-ipip0", "rp_filter")),
            Some(&Want::Exactly(2))
        );
    }

    #[test]
    fn a_fresh_host_gets_its_sysctls_before_its_links_vips() {
        let s = state(&[
            ("tcp://198.51.100.1:80", "10.0.0.10:80", Method::Droute),
            ("tcp://198.51.100.2:80", "10.0.0.10:80", Method::Tunnel),
        ]);
        let d = desired(&s, &host(), &settings());
        let p = plan(&d, &fresh(), &settings()).unwrap();
        assert_eq!(
            lines(&p),
            [
                "+ link clusterf-rs0 (dummy)",
                "+ link clusterf-ipip0 (ipip)",
                "~ sysctl net.ipv4.conf.clusterf-ipip0.rp_filter -> 2",
                "~ sysctl net.ipv4.conf.eth0.arp_announce 0 -> 2",
                "~ sysctl net.ipv4.conf.eth0.arp_ignore 0 -> 1",
                "+ vip 198.51.100.1/32 on clusterf-rs0",
                "+ vip 198.51.100.2/32 on clusterf-ipip0",
            ]
        );
        let recorded: Vec<bool> = p
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::SetSysctl { record, .. } => Some(*record),
                _ => None,
            })
            .collect();
        assert_eq!(
            recorded,
            [false, true, true],
            "our own link's sysctl is not recorded"
        );
    }

    #[test]
    fn a_host_that_is_ready_needs_no_change_and_a_stricter_arp_ignore_is_kept() {
        let s = state(&[("tcp://198.51.100.1:80", "10.0.0.10:80", Method::Droute)]);
        let d = desired(&s, &host(), &settings());
        let mut o = holding_198_51_100_1();
        o.sysctls.insert(Sysctl::new("eth0", "arp_ignore"), Some(2));
        o.sysctls
            .insert(Sysctl::new("eth0", "arp_announce"), Some(2));
        assert_eq!(plan(&d, &o, &settings()).unwrap(), Plan::default());
    }

    #[test]
    fn the_cleanup_removes_our_links_and_restores_only_what_is_still_as_clusterf_set_it() {
        let mut o = fresh();
        o.links.push(ours("clusterf-rs0", DUMMY));
        o.links.push(ours("clusterf-ipip0", IPIP));
        o.vips
            .entry("clusterf-rs0".into())
            .or_default()
            .insert("198.51.100.1".parse().unwrap());
        o.record.set(&Sysctl::new("eth0", "arp_ignore"), Some(0), 1);
        o.record
            .set(&Sysctl::new("eth0", "arp_announce"), Some(0), 2);
        o.sysctls.insert(Sysctl::new("eth0", "arp_ignore"), Some(1));
        // Someone set arp_announce to 1 by hand since: left as it is.
        o.sysctls
            .insert(Sysctl::new("eth0", "arp_announce"), Some(1));
        let p = plan(&Desired::default(), &o, &settings()).unwrap();
        assert_eq!(
            lines(&p),
            [
                "- vip 198.51.100.1/32 on clusterf-rs0",
                "~ sysctl net.ipv4.conf.eth0.arp_ignore 1 -> 0 (restored)",
                "= sysctl net.ipv4.conf.eth0.arp_announce 1: changed since clusterf set 2, left as it is",
                "- link clusterf-rs0 (dummy)",
                "- link clusterf-ipip0 (ipip)",
            ]
        );
    }

    #[test]
    fn a_link_of_our_name_that_is_not_ours_and_a_missing_interface_stop_the_plan() {
        let s = state(&[("tcp://198.51.100.1:80", "10.0.0.10:80", Method::Droute)]);
        let d = desired(&s, &host(), &settings());
        let mut o = Observed::default();
        o.links.push(Link {
            foreign: Some("is a veth link, not a dummy that clusterf created".into()),
            ..ours("clusterf-rs0", "veth")
        });
        let problems = plan(&d, &o, &settings()).unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("link clusterf-rs0 is a veth link"));
        assert!(problems[1].contains("--arp-interface \"eth0\": no such interface"));
    }

    #[test]
    fn only_the_three_sysctls_of_a_plain_interface_name_are_ours() {
        assert!(Sysctl::new("eth0", "arp_ignore").is_ours());
        assert!(Sysctl::new("all", "rp_filter").is_ours());
        assert!(!Sysctl::new("eth0", "forwarding").is_ours());
        assert!(!Sysctl::new("../../kernel", "arp_ignore").is_ours());
        assert!(!Sysctl::new("..", "arp_ignore").is_ours());
        assert!(!Sysctl::new("", "arp_ignore").is_ours());
    }

    #[test]
    fn a_recorded_sysctl_set_again_keeps_its_first_earlier_value() {
        let mut r = Record::default();
        let s = Sysctl::new("eth0", "arp_ignore");
        r.set(&s, Some(0), 1);
        r.set(&s, Some(1), 2);
        assert_eq!(r.get(&s).map(|r| (r.was, r.set)), Some((0, 2)));
        r.forget(&s);
        assert_eq!(r, Record::default());
    }

    fn dnat_rules(vip: &str, to: &str) -> crate::dnat::Rules {
        let mut r = crate::dnat::Rules::new();
        let to: BTreeMap<std::net::SocketAddr, u32> = [(to.parse().unwrap(), 1)].into();
        r.insert((crate::model::Protocol::Tcp, vip.parse().unwrap()), to);
        r
    }

    #[test]
    fn the_dnat_table_changes_after_vip_removals_and_before_vip_additions() {
        let s = state(&[("tcp://198.51.100.1:80", "10.0.0.10:80", Method::Droute)]);
        let mut d = desired(&s, &host(), &settings());
        d.dnat = dnat_rules("198.51.100.1:80", "172.17.0.2:8080");
        let mut o = fresh();
        o.dnat = Some(crate::dnat::Current::Absent);
        let p = plan(&d, &o, &settings()).unwrap();
        assert_eq!(
            lines(&p),
            [
                "+ link clusterf-rs0 (dummy)",
                "~ sysctl net.ipv4.conf.eth0.arp_announce 0 -> 2",
                "~ sysctl net.ipv4.conf.eth0.arp_ignore 0 -> 1",
                "+ table inet clusterf\n+ dnat tcp 198.51.100.1:80 -> 172.17.0.2:8080",
                "+ vip 198.51.100.1/32 on clusterf-rs0",
            ]
        );
        // The service gone: its VIP leaves, then its rule (the table).
        let mut o = holding_198_51_100_1();
        o.dnat = Some(crate::dnat::Current::Ours {
            handle: 9,
            layout: crate::dnat::Layout::Clusterf,
            steps: crate::dnat::plan(&d.dnat, &crate::dnat::Current::Absent)
                .unwrap()
                .steps,
        });
        let p = plan(&Desired::default(), &o, &settings()).unwrap();
        let first = |want: &str| lines(&p).iter().position(|l| l.starts_with(want)).unwrap();
        assert!(first("- vip 198.51.100.1/32") < first("- dnat tcp 198.51.100.1:80"));
    }

    #[test]
    fn a_dnat_table_not_read_is_left_alone_and_one_not_ours_is_a_problem() {
        let d = Desired {
            dnat: dnat_rules("198.51.100.1:80", "172.17.0.2:8080"),
            ..Desired::default()
        };
        assert_eq!(plan(&d, &fresh(), &settings()).unwrap(), Plan::default());
        let mut o = fresh();
        o.dnat = Some(crate::dnat::Current::NotOurs("has no comment".into()));
        let problems = plan(&d, &o, &settings()).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("table inet clusterf has no comment"),
            "{problems:?}"
        );
    }
}
