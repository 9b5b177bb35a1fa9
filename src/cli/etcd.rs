//! `clusterf etcd`.

use anyhow::{Result, bail};
use clap::Args;

#[derive(Debug, Args)]
pub struct EtcdArgs {}

pub fn run(_args: &EtcdArgs) -> Result<u8> {
    bail!("clusterf etcd is not implemented yet")
}
