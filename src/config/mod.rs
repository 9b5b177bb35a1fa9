//! The config model: services (frontends and static backends), routes and
//! defaults, parsed from a [`Tree`](crate::tree::Tree) in either layout and
//! validated.
//!
//! Two layouts, also mixed in one tree:
//! - the original clusterf JSON tree (`services/<svc>/frontend`,
//!   `services/<svc>/backends/<name>`, `routes/<name>`), which is also the
//!   etcd layout, parsed with Go's case-insensitive key matching;
//! - YAML, one file per object (`services/<svc>.yaml`, `routes/<name>.yaml`,
//!   `clusterf.yaml`).
//!
//! Unvalidated input lives in the `Raw*` types (which also generate the
//! published JSON Schemas); validated values in [`Config`], [`Overlay`] and
//! their parts. Every problem is reported, each naming its file and, where
//! the format has one, line and column.
//!
//! Speed: plain files (nearly all of a real repo) are read by small fast
//! readers (`fast`); anything they do not take, and any file whose
//! validation reports a problem, is read again by serde-saphyr or
//! serde_json, so every message comes from the full parsers. The fast
//! readers must never take a file that the full parsers read differently
//! (property-tested against them).
//!
//! Files, each importing only those above it:
//! - `types`: the validated values;
//! - `raw`: the YAML input types and the schemas they generate;
//! - `layout`: which path is what, and the JSON layout's keys;
//! - `validate`: fields of either format -> validated values;
//! - `check`: a health check's fields -> a [`HealthCheck`];
//! - `fallback`: a fallback's fields -> a [`Fallback`];
//! - `fast`: the fast readers (a flat JSON reader, a YAML subset reader);
//! - `lenient`: a YAML file serde-saphyr refused, read again for every
//!   problem, not only serde-saphyr's first;
//! - `json`, `yaml`: one file of each format, fast reader first;
//! - `ahead`: YAML service files read ahead on a helper thread;
//! - `parse`: whole trees, [`parse_config`] and [`parse_overlay`];
//!   [`ServiceReader`], a config's services one at a time.
//!
//! Invariant: pure. No file system, no network: input is a tree.
//! This module does not know how services become IPVS state (`compile`).

#[cfg(any(test, feature = "fuzzing"))]
pub mod agree;
mod ahead;
mod check;
mod fallback;
mod fast;
mod json;
mod layout;
mod lenient;
mod parse;
mod raw;
mod types;
mod validate;
mod yaml;

pub use parse::{ServiceReader, holds_config_files, parse_config, parse_overlay};
pub use raw::schemas;
pub use types::{
    Backend, Config, Defaults, Endpoints, Fallback, HealthCheck, IpvsOptions, Overlay, Route,
    RouteClaim, Service, Thresholds,
};
