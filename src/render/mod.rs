//! Render: config tree + overlay tree -> validated config -> desired IPVS
//! state, with every diagnostic along the way.
//!
//! `memo` keeps the last render for the watch loop and re-renders only the
//! services whose inputs changed; its result equals [`render`]'s.
//!
//! Invariant: pure. Takes trees already read by a source; no I/O.

mod digest;
pub mod memo;
mod part;

use crate::compile::{self, Options};
use crate::config::{self, Config, Overlay};
use crate::diag::Diagnostics;
use crate::model::IpvsState;
use crate::tree::Tree;

/// The result of rendering: usable only when `diags` has no errors.
#[derive(Clone, Debug)]
pub struct Rendered {
    pub config: Config,
    pub overlay: Overlay,
    pub state: IpvsState,
    pub diags: Diagnostics,
    /// Content hash of the config tree.
    pub config_hash: String,
    /// Content hash of the overlay tree, when there is one.
    pub overlay_hash: Option<String>,
}

impl Rendered {
    pub fn is_ok(&self) -> bool {
        !self.diags.has_errors()
    }
}

/// Parses, validates and compiles. Overlay problems are warnings (a bad key
/// is skipped); config problems are errors.
pub fn render(config_tree: &Tree, overlay_tree: Option<&Tree>, opts: &Options) -> Rendered {
    let (config, mut diags) = config::parse_config(config_tree);
    if !config::holds_config_files(config_tree) {
        diags.error(
            config_tree.source.description.as_str(),
            None,
            "no config files found (clusterf.yaml, services/, routes/): refusing to treat that as an empty config",
        );
    }
    let (overlay, overlay_diags) = match overlay_tree {
        Some(t) => config::parse_overlay(t),
        None => (Overlay::default(), Diagnostics::default()),
    };
    diags.extend(overlay_diags);
    let (state, compile_diags) = compile::compile(&config, &overlay, opts);
    diags.extend(compile_diags);
    diags.sort();
    Rendered {
        config,
        overlay,
        state,
        diags,
        config_hash: config_tree.content_hash(),
        overlay_hash: overlay_tree.map(Tree::content_hash),
    }
}
