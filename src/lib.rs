//! clusterf: a declarative GitOps reconciler for Linux IPVS.
//!
//! See ARCHITECTURE.md for the data flow and the code map.

pub mod cli;
pub mod compile;
pub mod config;
pub mod daemon;
pub mod diag;
pub mod docker;
pub mod error;
pub mod etcd;
pub mod ipvsadm;
pub mod load;
pub mod metrics;
pub mod model;
pub mod netlink;
pub mod plan;
pub mod reconcile;
pub mod render;
pub mod source;
pub mod text;
pub mod tree;
