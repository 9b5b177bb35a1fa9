//! The kernel as the daemon sees it: read the table with counters, apply
//! ops. [`netlink::Client`] in production; tests use
//! [`MemoryKernel`](super::MemoryKernel).
//!
//! Must not: decide anything. There is no flush: `--flush-on-exit` deletes
//! the owned services through `apply`, so services clusterf does not own
//! are never touched.

use anyhow::Result;

use crate::model::{LiveTable, Op};
use crate::netlink;

/// Read and apply, nothing else.
pub trait Kernel: Send {
    fn read(&mut self) -> Result<LiveTable>;
    /// Applies `ops` in order; on failure, which ops were applied.
    fn apply(&mut self, ops: &[Op]) -> Result<(), ApplyFailure>;
}

/// Not every op was applied.
#[derive(Debug, Clone)]
pub struct ApplyFailure {
    pub error: String,
    /// Per op: whether the kernel acked it.
    pub applied: Vec<bool>,
}

impl Kernel for netlink::Client {
    fn read(&mut self) -> Result<LiveTable> {
        netlink::Client::read(self)
    }

    fn apply(&mut self, ops: &[Op]) -> Result<(), ApplyFailure> {
        netlink::Client::apply(self, ops)
            .map(|_| ())
            .map_err(|f| ApplyFailure {
                error: f.describe(ops).trim_end().to_string(),
                applied: f
                    .outcomes
                    .iter()
                    .map(|o| matches!(o, netlink::Outcome::Applied))
                    .collect(),
            })
    }
}
