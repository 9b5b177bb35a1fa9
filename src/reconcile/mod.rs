//! Continuous reconcile: the pure parts of `clusterf apply --watch`.
//!
//! - [`schedule`]: when passes run (debounce, backoff, resync, Git polls), a
//!   sans-IO state machine fed with events and the current time.
//! - [`drain`]: graceful drain of dests that leave the desired state, as a
//!   pure transformation of the desired state before planning.
//! - [`live`]: the copy of the kernel's table kept between passes (last
//!   read plus our own ops) and when a pass may plan against it.
//! - [`withdraw`]: when the VIPs leave the VIP interface (fail static too
//!   long, exit).
//!
//! Invariant: no I/O here: no clock, no sockets, no files, no tokio. The
//! daemon (`crate::daemon`) owns timers, sources, the kernel and the state
//! file, and calls into these modules with plain data.

pub mod drain;
pub mod live;
pub mod schedule;
pub mod withdraw;

pub use drain::{DrainRecord, DrainStatus, Drains};
pub use schedule::{Action, Event, Schedule, Settings, Source, Trigger};
