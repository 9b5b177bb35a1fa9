//! Sources: where config and overlay trees come from. Each reads its input
//! completely into a [`crate::tree::Tree`] at the edge of the program.
//! [`ConfigSource`] and [`OverlaySource`] name a source once its flags are
//! resolved; the CLI's one-shot reads and the daemon share them.
//!
//! Every file is read through `file`, under its size limit.
//!
//! Invariant: sources only read; they never interpret the layout (that is
//! `config`'s job) and a failing source is an error, never an empty tree.

use std::path::PathBuf;

use anyhow::Result;

use crate::tree::Tree;

pub mod dir;
pub mod etcd;
pub mod file;
pub mod git;

/// Where the config tree comes from.
#[derive(Clone, Debug)]
pub enum ConfigSource {
    /// A local directory (`--config-path`).
    Dir(PathBuf),
    /// A commit of a Git repository (`--config-repo`).
    Git(git::Options),
}

/// Where the overlay tree comes from.
#[derive(Clone, Debug)]
pub enum OverlaySource {
    /// A local directory in the etcd layout (`--overlay-path`).
    Dir(PathBuf),
    /// A prefix in etcd (`--etcd`).
    Etcd(etcd::Settings),
}

impl ConfigSource {
    /// Reads the tree once (a remote repository is fetched first).
    pub fn read(&self) -> Result<Tree> {
        match self {
            ConfigSource::Dir(path) => dir::read(path),
            ConfigSource::Git(opts) => git::read(opts),
        }
    }
}

impl OverlaySource {
    /// Reads the tree once (etcd: one consistent read).
    pub fn read(&self) -> Result<Tree> {
        match self {
            OverlaySource::Dir(path) => dir::read(path),
            OverlaySource::Etcd(settings) => etcd::read_blocking(settings),
        }
    }
}
