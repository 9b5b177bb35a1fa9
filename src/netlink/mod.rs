//! Kernel IPVS over generic netlink: read the live table, apply ops.
//!
//! - `message`: typed netlink / generic netlink / IPVS messages that parse
//!   and emit bytes, one file per protocol layer (pure).
//! - `error`: kernel refusals: [`KernelError`], errno text, the message
//!   naming a refused op's object (pure).
//! - `mapping`: model values <-> IPVS messages (pure).
//! - `dump`: replies walked in place, dumped dests into model values (pure).
//! - `pipeline`: batching, ack matching and the apply report (pure).
//! - `client`: the socket (I/O).
//! - `rtnl`: the VIP interface over route netlink: its link and addresses,
//!   and nothing else (I/O, with its pure request builders).
//! - `nft`: clusterf's DNAT table over nf_tables, and nothing else (I/O,
//!   with its pure request builders).
//! - `arp_link`: ARP mode's shared interface: only the addresses clusterf
//!   marked (`IFA_PROTO`) are its own (I/O, with its pure parts).
//!
//! Invariant: this module executes; it never plans. It never flushes or
//! zero-weights anything on its own, and reads the kernel only through the
//! IPVS generic netlink family, route netlink for the VIP link only, and
//! nf_tables for clusterf's DNAT table only.

pub mod arp_link;
pub mod client;
pub mod dump;
pub mod error;
pub mod mapping;
pub mod message;
pub mod nft;
pub mod pipeline;
pub mod rtnl;

pub use client::{Client, Info};
pub use error::KernelError;
pub use pipeline::{Outcome, PartialFailure, Report};

use crate::model::{IpvsState, Op};

/// The live kernel table (the plan's `--live kernel`).
pub fn read_live() -> anyhow::Result<IpvsState> {
    Client::connect()?.read_state()
}

/// Opens a client and executes `ops` pipelined; see [`Client::apply`].
pub fn apply_ops(ops: &[Op]) -> Result<Report, PartialFailure> {
    let mut client = Client::connect()
        .map_err(|e| PartialFailure::before_start(crate::error::format_error(&e), ops.len()))?;
    client.apply(ops)
}
