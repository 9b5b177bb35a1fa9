//! `clusterf nft-dnat` (hidden): one pass of the DNAT of VIP:port to this
//! Docker host's containers (`dnat`, `netlink::nft`), for tests and
//! debugging until `realserver --docker` runs it in its loop.

use std::collections::BTreeSet;
use std::net::IpAddr;

use anyhow::Result;
use clap::Args;

use super::source::{CompileArgs, ConfigArgs, OverlayArgs, load, print_diagnostics, refuse_errors};
use crate::dnat;
use crate::netlink::nft::NftClient;

#[derive(Debug, Args)]
pub struct NftDnatArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub overlay: OverlayArgs,
    #[command(flatten)]
    pub compile: CompileArgs,
    /// This host's address: droute and tunnel dests on it are its containers (repeatable)
    #[arg(long = "host-address", value_name = "ADDR", required = true)]
    pub host: Vec<IpAddr>,
    /// Print the plan; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: &NftDnatArgs) -> Result<u8> {
    let loaded = load(&args.config, &args.overlay, &args.compile)?;
    print_diagnostics(&loaded.rendered.diags);
    refuse_errors(&loaded, ", nothing changed")?;
    let r = &loaded.rendered;
    let host: BTreeSet<IpAddr> = args.host.iter().copied().collect();
    let desired = dnat::desired(&r.state, &r.config, &r.overlay, &host);
    let mut client = NftClient::connect()?;
    let plan = dnat::plan(&desired, &client.read()?).map_err(anyhow::Error::msg)?;
    super::emit(&plan.to_string())?;
    if plan.is_empty() {
        eprintln!("no changes: table inet {} is up to date", dnat::TABLE);
    } else if !args.dry_run {
        client.apply(&plan)?;
    }
    Ok(0)
}
