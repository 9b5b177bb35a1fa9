//! Load: the step validate, render, plan and apply begin with. Reads the
//! config and overlay sources once, renders them, and names every
//! diagnostic from the root of its source (`--subdir`); `load_beside` does
//! that while another read (the kernel's table) runs on a thread.
//!
//! Not here: flags (the CLI resolves them into [`Sources`]), printing and
//! exit codes (the CLI's), and keeping sources open between reads (the
//! daemon keeps a Git source and an etcd watch, and shares the source
//! settings and [`crate::diag::Diagnostics::from_root`]).

use std::borrow::Cow;

use anyhow::Result;

use crate::compile;
use crate::plan::saved::Inputs;
use crate::render::{self, Rendered};
use crate::source::{ConfigSource, OverlaySource};
use crate::tree::Tree;

/// What to load: resolved source settings and compile options.
#[derive(Clone, Debug)]
pub struct Sources {
    pub config: ConfigSource,
    pub overlay: Option<OverlaySource>,
    pub compile: compile::Options,
}

/// The trees read and their render.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub config: Tree,
    pub overlay: Option<Tree>,
    /// Its diagnostics name config files from the root of their source.
    pub rendered: Rendered,
}

/// Reads the config, then the overlay, and renders them.
pub fn load(sources: &Sources) -> Result<Loaded> {
    load_with(sources, |config, overlay| {
        render::render(config, overlay.as_deref(), &sources.compile)
    })
}

/// [`load`] for a command that needs only the desired state (`plan`,
/// `render`, `apply`): each tree's file contents are let go once parsed
/// and each service once compiled ([`render::render_releasing`]), so the
/// result's `config` has no services. `keep_overlay` keeps the overlay's
/// contents, for a caller that renders it again (`plan --base-ref`).
pub fn load_releasing(sources: &Sources, keep_overlay: bool) -> Result<Loaded> {
    load_with(sources, |config, overlay| {
        render::render_releasing(config, overlay, keep_overlay, &sources.compile)
    })
}

/// Reads the config, then the overlay, renders them with `render`, and
/// names the diagnostics from the root of their source.
fn load_with(
    sources: &Sources,
    render: impl FnOnce(&mut Tree, Option<&mut Tree>) -> Rendered,
) -> Result<Loaded> {
    let mut config = sources.config.read()?;
    let mut overlay = sources
        .overlay
        .as_ref()
        .map(OverlaySource::read)
        .transpose()?;
    let mut rendered = render(&mut config, overlay.as_mut());
    if let Cow::Owned(named) = rendered.diags.from_root(&config, overlay.as_ref()) {
        rendered.diags = named;
    }
    Ok(Loaded {
        config,
        overlay,
        rendered,
    })
}

/// [`load_releasing`] while `beside` runs on another thread (one-shot
/// `apply` dumps the kernel's table meanwhile); both results, once both
/// are done.
pub fn load_beside<T: Send>(
    sources: &Sources,
    beside: impl FnOnce() -> T + Send,
) -> (Result<Loaded>, T) {
    std::thread::scope(|scope| {
        let other = scope.spawn(beside);
        let loaded = load_releasing(sources, false);
        let other = other
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (loaded, other)
    })
}

impl Loaded {
    /// The number of errors: a config with any is never planned or applied.
    pub fn errors(&self) -> usize {
        self.rendered.diags.errors().count()
    }

    /// The fingerprints of the inputs, as a saved plan records them and
    /// `apply PLAN.json` checks them.
    pub fn inputs(&self) -> Inputs {
        Inputs {
            config_hash: self.rendered.config_hash.clone(),
            config_revision: self.config.source.revision.clone(),
            overlay_hash: self.rendered.overlay_hash.clone(),
            overlay_revision: self
                .overlay
                .as_ref()
                .and_then(|t| t.source.revision.clone()),
        }
    }
}
