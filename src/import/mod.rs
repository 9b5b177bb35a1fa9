//! `clusterf import`: an IPVS table from another tool's configuration,
//! written as a config repository in the YAML layout. `ipvsadm` reads an
//! `ipvsadm -S -n` dump, `keepalived` the `virtual_server` blocks of a
//! keepalived.conf; both give a [`Table`], and [`repo`] turns a table into
//! files (paths and YAML text) that render back to it.
//!
//! What the config cannot say is never dropped silently: every reader and
//! [`repo`] list it as [`Skipped`], and [`repo`] renders what it wrote and
//! lists any service that would not come back as it was.
//!
//! Must not: do I/O (the CLI reads the input, resolves keepalived's
//! includes and writes the files) or change the config's parsing.

use std::collections::BTreeMap;

use crate::model::{IpvsState, ServiceKey};

pub mod ipvsadm;
pub mod keepalived;
mod layout;

pub use layout::repo;

/// What an import reads: the IPVS table, the health checks of its
/// services, and what the reader could not import.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    pub state: IpvsState,
    pub checks: BTreeMap<ServiceKey, Check>,
    pub skipped: Vec<Skipped>,
}

/// Something of the input that is not in the written repository: where it
/// is (`keepalived.conf:12:5`, `line 3`, a service) and what and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub at: String,
    pub what: String,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: not imported: {}", self.at, self.what)
    }
}

/// A health check as the YAML layout's `healthcheck:` says it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// `tcp`, `http`, `https` or `dns`.
    pub kind: &'static str,
    pub port: Option<u16>,
    pub path: Option<String>,
    pub host: Option<String>,
    pub expect: Option<String>,
    pub query: Option<String>,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub rise: u32,
    pub fall: u32,
    /// `remove` (keepalived without `inhibit_on_failure`) or `drain`.
    pub on_failure: &'static str,
    /// Dests the check does not apply to (`healthcheck: false`).
    pub exempt: Vec<std::net::SocketAddr>,
}

/// The written repository: files (path, YAML text) and what is not in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repo {
    pub files: Vec<(String, String)>,
    pub skipped: Vec<Skipped>,
}
