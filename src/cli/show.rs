//! `clusterf show`.

use anyhow::{Result, bail};
use clap::Args;

#[derive(Debug, Args)]
pub struct ShowArgs {}

pub fn run(_args: &ShowArgs) -> Result<u8> {
    bail!("clusterf show is not implemented yet")
}
