//! `clusterf plan`.

use anyhow::{Result, bail};
use clap::Args;

#[derive(Debug, Args)]
pub struct PlanArgs {}

pub fn run(_args: &PlanArgs) -> Result<u8> {
    bail!("clusterf plan is not implemented yet")
}
