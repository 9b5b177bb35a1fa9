//! The realserver's I/O edge on the host: reads its links, addresses and
//! sysctls into an [`Observed`], and applies a [`Plan`] step by step over
//! route netlink and `/proc/sys`, keeping the state file's record of
//! every sysctl it changes (written before the change).
//!
//! A link is ours when it carries [`ALIAS`] and is a dummy or an IPIP
//! link; a link with one of our names that is not is reported, never
//! touched (checked again before each change).
//!
//! Must not: decide anything (the plan does); touch a link that is not
//! ours or an address outside our dummy link.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{Result, anyhow, bail};

use super::plan::{
    ALIAS, DUMMY, Desired, IPIP, Link, Observed, Plan, Record, Settings, Step, Sysctl,
};
use super::sysctl::{self, Sysctls};
use crate::netlink::message::{
    AddrMsg, IFA_FAMILY_INET, IFA_FAMILY_INET6, IFF_UP, LinkMsg, RT_SCOPE_UNIVERSE,
};
use crate::netlink::nft::NftClient;
use crate::netlink::rtnl::{self, RtnlClient};

/// The host: a route netlink socket, the sysctl tree and the state file.
pub struct Host {
    rtnl: RtnlClient,
    /// nf_tables, opened at the first read of the DNAT table.
    nft: Option<NftClient>,
    pub sysctls: Sysctls,
    pub state_file: PathBuf,
}

/// The links and addresses as read.
pub struct Net {
    pub links: Vec<Link>,
    /// The host's global addresses, but for those on links of ours.
    pub addresses: BTreeSet<IpAddr>,
    /// The VIPs on each link of ours, by name.
    pub vips: BTreeMap<String, BTreeSet<IpAddr>>,
}

impl Host {
    pub fn open(sysctls: Sysctls, state_file: PathBuf) -> Result<Host> {
        Ok(Host {
            rtnl: RtnlClient::connect()?,
            nft: None,
            sysctls,
            state_file,
        })
    }

    /// Our links (and links of our names that are not ours), the host's
    /// addresses and our VIPs.
    pub fn read_net(&mut self, settings: &Settings) -> Result<Net> {
        let mut links = Vec::new();
        for l in self.rtnl.links()? {
            if let Some(link) = classify(&l, settings) {
                links.push(link);
            }
        }
        let ours: BTreeMap<i32, &str> = links
            .iter()
            .filter(|l| l.foreign.is_none())
            .map(|l| (l.index, l.name.as_str()))
            .collect();
        let mut addresses = BTreeSet::new();
        let mut vips: BTreeMap<String, BTreeSet<IpAddr>> = BTreeMap::new();
        for m in self.rtnl.addrs()? {
            let Some(a) = global_addr(&m) else { continue };
            match ours.get(&(m.index as i32)) {
                Some(name) => {
                    if let Some(v) = rtnl::vip_of(&m, m.index) {
                        vips.entry(name.to_string()).or_default().insert(v);
                    }
                }
                None => {
                    addresses.insert(a);
                }
            }
        }
        Ok(Net {
            links,
            addresses,
            vips,
        })
    }

    /// Everything the plan needs: `net`, the record, the values of the
    /// desired and recorded sysctls, and the DNAT table (a failed read is
    /// an error with `docker`; without, the table is left alone unread).
    pub fn observe(&mut self, net: Net, desired: &Desired, docker: bool) -> Result<Observed> {
        let dnat = match self.read_dnat() {
            Ok(current) => Some(current),
            Err(e) if docker => return Err(e.context("reading the DNAT table (--docker)")),
            Err(e) => {
                tracing::debug!("DNAT table not read (no --docker): {e:#}");
                None
            }
        };
        let record = sysctl::load_record(&self.state_file)?;
        let keys: BTreeSet<&Sysctl> = desired
            .sysctls
            .keys()
            .chain(record.sysctls.iter().map(|r| &r.sysctl))
            .collect();
        let mut sysctls = BTreeMap::new();
        for k in keys {
            sysctls.insert(k.clone(), self.sysctls.read(k)?);
        }
        Ok(Observed {
            links: net.links,
            vips: net.vips,
            sysctls,
            record,
            dnat,
        })
    }

    fn read_dnat(&mut self) -> Result<crate::dnat::Current> {
        if self.nft.is_none() {
            self.nft = Some(NftClient::connect()?);
        }
        self.nft.as_mut().expect("connected above").read()
    }

    /// Runs the plan's steps in order; stops at the first that fails.
    pub fn apply(&mut self, plan: &Plan, mut record: Record) -> Result<()> {
        for step in &plan.steps {
            self.step(step, &mut record)
                .map_err(|e| e.context(format!("{step}")))?;
        }
        Ok(())
    }

    fn step(&mut self, step: &Step, record: &mut Record) -> Result<()> {
        match step {
            Step::RemoveVip { link, vip } => {
                let index = self.any_our_link(link)?.index as u32;
                self.rtnl.del_vip(index, *vip)
            }
            Step::RestoreSysctl { sysctl, to, .. } => {
                self.sysctls.write(sysctl, *to)?;
                record.forget(sysctl);
                sysctl::save_record(&self.state_file, record)
            }
            Step::ForgetSysctl { sysctl, .. } => {
                record.forget(sysctl);
                sysctl::save_record(&self.state_file, record)
            }
            Step::DeleteLink { name, kind } => {
                let l = self.our_link(name, kind)?;
                self.rtnl.delete_link(l.index)
            }
            Step::AddLink { name, kind } => {
                let req = match kind.as_str() {
                    IPIP => rtnl::ipip_external_request(name),
                    _ => rtnl::create_request(name),
                };
                self.rtnl.create_owned(&req, ALIAS).map(|_| ())
            }
            Step::SetUp { name } => {
                let l = self.any_our_link(name)?;
                self.rtnl.set_up(l.index)
            }
            Step::SetSysctl {
                sysctl,
                from,
                to,
                record: keep,
            } => {
                if *keep {
                    record.set(sysctl, *from, *to);
                    sysctl::save_record(&self.state_file, record)?;
                }
                self.sysctls.write(sysctl, *to)
            }
            Step::Dnat { plan, .. } => match self.nft.as_mut() {
                Some(nft) => nft.apply(plan),
                None => bail!("the DNAT table was not read: not changing it"),
            },
            Step::AddVip { link, vip } => {
                let index = self.any_our_link(link)?.index as u32;
                self.rtnl.add_vip(index, *vip)
            }
        }
    }

    /// The link `name`, checked to be ours (of either kind).
    fn any_our_link(&mut self, name: &str) -> Result<LinkMsg> {
        let l = self
            .rtnl
            .link(name)?
            .ok_or_else(|| anyhow!("no link {name}"))?;
        let kind = l.kind().unwrap_or("").to_string();
        self.check(name, l, &kind)
    }

    /// The link `name`, checked to be ours and of `kind`.
    fn our_link(&mut self, name: &str, kind: &str) -> Result<LinkMsg> {
        let l = self
            .rtnl
            .link(name)?
            .ok_or_else(|| anyhow!("no link {name}"))?;
        self.check(name, l, kind)
    }

    fn check(&self, name: &str, l: LinkMsg, kind: &str) -> Result<LinkMsg> {
        if let Some(why) = rtnl::not_ours_as(&l, kind, ALIAS, "name") {
            bail!("link {name} {why}");
        }
        Ok(l)
    }
}

/// A link as the plan sees it: ours (by alias, a dummy or IPIP link), or
/// one with one of our names that is not ours; `None` for any other.
fn classify(l: &LinkMsg, settings: &Settings) -> Option<Link> {
    let name = l.name.clone().unwrap_or_default();
    let kind = l.kind().unwrap_or("unknown").to_string();
    let ours = l.alias.as_deref() == Some(ALIAS) && (kind == DUMMY || kind == IPIP);
    let foreign = if ours {
        None
    } else if name == settings.vip_link {
        rtnl::not_ours_as(l, DUMMY, ALIAS, "--vip-link")
    } else if name == settings.ipip_link {
        rtnl::not_ours_as(l, IPIP, ALIAS, "--ipip-link")
    } else {
        return None;
    };
    Some(Link {
        name,
        index: l.index,
        kind,
        up: l.flags & IFF_UP != 0,
        foreign,
    })
}

/// A global-scope address of any prefix.
fn global_addr(m: &AddrMsg) -> Option<IpAddr> {
    if m.scope != RT_SCOPE_UNIVERSE {
        return None;
    }
    match (m.family, m.addr_bytes()?) {
        (IFA_FAMILY_INET, &[a, b, c, d]) => Some(IpAddr::from([a, b, c, d])),
        (IFA_FAMILY_INET6, b) if b.len() == 16 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(b);
            Some(IpAddr::from(o))
        }
        _ => None,
    }
}
