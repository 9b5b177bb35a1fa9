//! `clusterf plan`: render the desired state, read the live state (kernel,
//! an `ipvsadm -S -n` dump, nothing, or the desired state at a base Git ref
//! for a pull request), plan, print, and optionally save the plan.
//!
//! Exit codes: 0 ok (or no changes), 1 error (including a tripped guard),
//! 2 changes present with `--detailed-exitcode`.
//!
//! Invariant: wiring only; what the plan is, is decided in `crate::plan`.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::{Args, ValueEnum};

use super::source::{
    CompileArgs, ConfigArgs, OverlayArgs, SafetyArgs, load_releasing, print_diagnostics,
    refuse_errors,
};
use super::{Exit, use_color};
use crate::load::Loaded;
use crate::model::IpvsState;
use crate::plan::output::{self, Document};
use crate::plan::saved::LiveFingerprint;
use crate::plan::{self, Outline};
use crate::render;
use crate::text::plural;
use crate::tree::Tree;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PlanFormat {
    /// A terraform-like plan for a person
    Text,
    /// The versioned JSON document (docs/plan-format.md)
    Json,
    /// A pull-request comment
    Markdown,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub overlay: OverlayArgs,
    #[command(flatten)]
    pub compile: CompileArgs,

    /// Live state: kernel, empty, or an `ipvsadm -S -n` dump FILE
    #[arg(long, value_name = "kernel|empty|FILE", default_value = "kernel")]
    pub live: String,

    /// Plan the desired state at this Git ref against the head (pull-request
    /// mode: no kernel); needs --config-repo
    #[arg(long, value_name = "REF", conflicts_with = "live")]
    pub base_ref: Option<String>,

    #[command(flatten)]
    pub safety: SafetyArgs,

    /// Output format
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: PlanFormat,

    /// Exit 2 when there are changes (0: none, 1: error)
    #[arg(long)]
    pub detailed_exitcode: bool,

    /// Save the plan (the JSON document, with input fingerprints) to FILE for
    /// `clusterf apply FILE`
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// The live side of the plan and its description.
fn read_live(args: &PlanArgs, overlay_tree: Option<&Tree>) -> Result<(IpvsState, String)> {
    if let Some(base) = &args.base_ref {
        let tree = args
            .config
            .read_at(base)
            .with_context(|| format!("reading the config at --base-ref {base}"))?;
        let rendered = render::render(&tree, overlay_tree, &args.compile.options()?);
        if !rendered.is_ok() {
            print_diagnostics(&rendered.diags);
            let n = rendered.diags.errors().count();
            anyhow::bail!(
                "the config at --base-ref {base} has {}: nothing planned",
                plural(n, "problem")
            );
        }
        let source = match &tree.source.revision {
            Some(rev) => format!("base-ref {base} (commit {rev})"),
            None => format!("base-ref {base}"),
        };
        return Ok((rendered.state, source));
    }
    match args.live.as_str() {
        "empty" => Ok((IpvsState::default(), "empty".to_string())),
        "kernel" => Ok((
            crate::netlink::read_live().context("reading the kernel ipvs table")?,
            "kernel".to_string(),
        )),
        path => {
            let text = crate::source::file::read_text(
                std::path::Path::new(path),
                crate::source::file::DUMP_LIMIT,
            )
            .with_context(|| format!("reading the live state from {path}"))?;
            let state = crate::ipvsadm::parse(&text)
                .map_err(|e| anyhow::anyhow!("{path}:{e}").context("invalid ipvsadm -S -n dump"))?;
            Ok((state, format!("file {path}")))
        }
    }
}

/// Writes the plan to stdout in `format`, as it is rendered: JSON from the
/// outline (its adds made one at a time), text and markdown from the whole
/// plan, which they group by service.
fn emit_plan(format: PlanFormat, outline: Outline, doc: &Document<'_>) -> std::io::Result<()> {
    let (desired, refused) = (doc.desired, doc.refused);
    match format {
        PlanFormat::Json => super::emit_with(|w| output::write_outline_json(w, &outline, doc)),
        PlanFormat::Text => {
            let plan = outline.into_plan(desired);
            let color = use_color(&std::io::stdout());
            super::emit_with(|w| output::write_text(w, &plan, desired, color, refused))
        }
        PlanFormat::Markdown => {
            let plan = outline.into_plan(desired);
            super::emit_with(|w| output::write_markdown(w, &plan, desired, refused))
        }
    }
}

/// Saves the plan document to `path`, written as it is serialized.
fn save(path: &Path, outline: &Outline, doc: &Document<'_>) -> Result<()> {
    let write = || -> std::io::Result<()> {
        let mut file = BufWriter::with_capacity(64 << 10, File::create(path)?);
        output::write_outline_json(&mut file, outline, doc)?;
        file.flush()
    };
    write().with_context(|| format!("writing the plan to {}", path.display()))
}

/// The desired state alone: planning needs neither the trees read nor the
/// parsed config, which in a large repository take as much memory as the
/// state does. What they held goes back to the system before the plan is
/// made.
fn desired_state(mut loaded: Loaded) -> IpvsState {
    let state = std::mem::take(&mut loaded.rendered.state);
    drop(loaded);
    crate::allocator::release_memory();
    state
}

pub fn run(args: &PlanArgs) -> Result<u8> {
    let ownership = args.safety.ownership()?;
    let guards = args.safety.guards();
    let keep_overlay = args.base_ref.is_some();
    let loaded = load_releasing(&args.config, &args.overlay, &args.compile, keep_overlay)?;
    refuse_errors(&loaded, ", nothing planned")?;
    let inputs = loaded.inputs();
    let (live_state, source) = read_live(args, loaded.overlay.as_ref())?;
    let desired_owned = desired_state(loaded);
    let desired = &desired_owned;
    // An ipvsadm -S -n dump never holds thresholds (-x/-y).
    let thresholds = !source.starts_with("file ");
    // The live hash is written only in JSON (printed, or saved by --out).
    let live = if args.out.is_some() || matches!(args.output, PlanFormat::Json) {
        LiveFingerprint::new(source, &live_state, &ownership, thresholds)
    } else {
        LiveFingerprint::unhashed(source, thresholds)
    };
    // The plan's adds stay in the desired state, read as they are written.
    let (outline, refused) = plan::outline(desired, &live_state, &ownership, &guards)?;
    drop(live_state);
    let doc = Document {
        desired,
        inputs: &inputs,
        live: &live,
        ownership: &ownership,
        refused: None,
    };
    if let Some(reason) = refused {
        let refused = Document {
            refused: Some(&reason),
            ..doc
        };
        let written = emit_plan(args.output, outline, &refused);
        // The refusal is said whatever became of stdout.
        eprintln!("error: {reason}");
        written?;
        return Err(Exit(1).into());
    }
    if let Some(path) = &args.out {
        save(path, &outline, &doc)?;
    }
    let changed = !outline.is_empty();
    emit_plan(args.output, outline, &doc)?;
    if let Some(path) = &args.out {
        eprintln!("saved the plan to {}", path.display());
    }
    super::leave_to_exit(desired_owned);
    Ok(if args.detailed_exitcode && changed {
        2
    } else {
        0
    })
}
