//! Sources: where config and overlay trees come from. Each reads its input
//! completely into a [`crate::tree::Tree`] at the edge of the program.
//!
//! Invariant: sources only read; they never interpret the layout (that is
//! `config`'s job) and a failing source is an error, never an empty tree.

pub mod dir;
pub mod etcd;
pub mod git;
