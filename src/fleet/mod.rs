//! Fleet status (issue 17): what each frontend's daemon publishes about
//! itself into etcd ([`record`]), and what a reader makes of all of them
//! ([`view`]: alive or dead, in sync or not, and the rollout gate).
//!
//! Pure (ARCHITECTURE.md): records in as bytes with their keys, the time
//! passed in; reading and writing etcd is the daemon's and the CLI's.

pub mod record;
pub mod view;

pub use record::{
    FORMAT_VERSION, FrontendError, FrontendStatus, Identity, PassFacts, PassOutcome, ProblemKind,
    after_pass, check_frontend_id,
};
pub use view::{Fleet, FrontendRow, Gate, Sync, gate, view};

/// Where the records live under the etcd prefix: the last record of each
/// frontend (kept when it dies) ...
pub const STATUS_DIR: &str = "status/frontends/";
/// ... and a lease-bound key per frontend that exists while it is alive.
pub const ALIVE_DIR: &str = "status/alive/";
