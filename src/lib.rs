//! clusterf: a declarative GitOps reconciler for Linux IPVS.
//!
//! ARCHITECTURE.md has the data flow, the code map, where to start reading
//! for each command, and the invariants.
//!
//! Public API, for the binary, tests, benches and embedders:
//! - the pure core: [`model`], [`tree`], [`diag`], [`config`], [`compile`],
//!   [`render`], [`plan`], [`reconcile`], [`health`], [`fleet`], [`ipvsadm`],
//!   [`vip`], [`import`];
//! - the edges: [`source`] and [`load`] (reading config and overlay),
//!   [`netlink`] (the kernel), [`etcd`] (the etcd client), [`daemon`] (the
//!   `apply --watch` loop), [`docker`] (the publisher), [`metrics`],
//!   [`realserver`] (a backend host kept ready; its `plan` is pure);
//! - [`cli`]: the command line, on top of the rest; public so that the
//!   binary and the CLI tests reach it, not meant for embedding.
//!
//! [`allocator`]: the allocator and its options, which the binary and the
//! benches install.
//!
//! Internal helpers, public only because several modules share them:
//! [`text`] (wording) and [`error`] (error chains as one line). With the
//! `fuzzing` feature, `fuzzing` holds the checks behind the fuzz targets.
//!
//! No stability promise yet: the version is 0.x.

pub mod allocator;
pub mod cli;
pub mod compile;
pub mod config;
pub mod daemon;
pub mod diag;
pub mod dnat;
pub mod docker;
pub mod error;
pub mod etcd;
pub mod fleet;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod health;
pub mod import;
pub mod ipvsadm;
pub mod load;
pub mod metrics;
pub mod model;
pub mod netlink;
pub mod plan;
pub mod realserver;
pub mod reconcile;
pub mod render;
pub mod source;
pub mod text;
pub mod tree;
pub mod vip;
