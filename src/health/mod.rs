//! Backend health: what a check is ([`spec`]), what one dest's results
//! add up to ([`state`]), what that does to the desired state
//! ([`verdict`]), that kept up to date pass by pass ([`effective`]) and
//! when each check runs ([`schedule`]).
//!
//! Pure (ARCHITECTURE.md): the daemon probes (`daemon::probe`), passes the
//! outcomes and the time in, and feeds [`verdict::apply`]'s result to the
//! planner like any other desired state.

pub mod dns;
pub mod effective;
pub mod schedule;
pub mod spec;
pub mod state;
pub mod verdict;

pub use effective::{Effective, Update};
pub use spec::{CheckSpec, Expect, HttpProbe, OnFailure, Probe};
pub use state::{DestHealth, HealthTable, Outcome, Status, Target};
pub use verdict::{HealthConfig, ServiceHealth, Verdict, VerdictKind, apply};
