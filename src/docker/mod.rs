//! `clusterf docker`: publishes labelled Docker containers as service
//! backends into etcd, all under one lease per publisher.
//!
//! The parts, from the pure core to the edges:
//! - [`labels`]: container facts and options -> backends and warnings
//!   (pure: no Docker, no etcd, no clock);
//! - [`keys`]: backends and an advertised route -> the desired etcd key set,
//!   and the plan that turns the published key set into it (pure);
//! - [`store`]: the etcd side: the lease, finding what this publisher
//!   published before, applying plans in transactions;
//! - [`engine`]: the Docker side (bollard): listing, inspecting and
//!   following events, turning the Engine's answers into facts;
//! - [`publisher`]: the loop that drives them: events and lists in,
//!   reconciles to etcd out, the lease kept alive (`cli::docker` resolves
//!   its flags and stops it on SIGINT/SIGTERM).
//!
//! Invariant: the translation and the key-set planning never do I/O; the
//! etcd and Docker modules never decide what a container means.

pub mod engine;
pub mod keys;
pub mod labels;
pub mod publisher;
pub mod store;
