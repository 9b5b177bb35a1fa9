//! `clusterf apply`.

use anyhow::{Result, bail};
use clap::Args;

#[derive(Debug, Args)]
pub struct ApplyArgs {}

pub fn run(_args: &ApplyArgs) -> Result<u8> {
    bail!("clusterf apply is not implemented yet")
}
