//! The status page's pure half: `snapshot` holds the plain data (the JSON
//! at `/status.json`) and the builder of a page of services, `html` the
//! renderer; docs/status-page.md says what is shown. The daemon's state is
//! gathered into a snapshot by `daemon::page_sources`, served by
//! `daemon::http`.
//!
//! Must not: lock, read a clock, do I/O, or import the rest of the daemon.

pub mod html;
pub mod snapshot;

pub use snapshot::{Query, Snapshot};
