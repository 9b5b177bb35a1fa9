//! `clusterf apply`: plan against the live kernel table and apply the plan,
//! without a prompt (it runs from CI, scripts and systemd); or apply a plan
//! saved by `clusterf plan --out FILE` after its staleness check.
//!
//! Output: the plan on stdout (the same text as `clusterf plan`), then one
//! summary line; on a partial failure, the per-change report on stderr and
//! exit 1. `--dry-run` prints the plan and applies nothing.
//!
//! Invariant: wiring only. Planning is `crate::plan`, execution is
//! `crate::netlink`; nothing is applied when the config has errors, a guard
//! trips, or a saved plan is stale. Never flushes or zero-weights anything
//! on start: what changes is exactly the plan.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, Result};
use clap::Args;

use super::Exit;
use super::source::{CompileArgs, ConfigArgs, OverlayArgs, SafetyArgs, render_trees};
use crate::model::Op;
use crate::netlink::{Client, pipeline};
use crate::plan::saved::{Inputs, SavedPlan, check_fresh, live_hash};
use crate::plan::{self, PlanError, Summary, output};

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub overlay: OverlayArgs,
    #[command(flatten)]
    pub compile: CompileArgs,

    #[command(flatten)]
    pub safety: SafetyArgs,

    /// Print the plan, apply nothing
    #[arg(long)]
    pub dry_run: bool,

    #[command(flatten)]
    pub watch: super::watch::WatchArgs,

    /// A plan saved by `clusterf plan --out FILE`: apply it if the live
    /// table (and, with sources given, the inputs) did not move since
    #[arg(value_name = "PLAN.json")]
    pub plan: Option<PathBuf>,
}

/// Colour on a terminal only, never with `NO_COLOR` set.
fn use_color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn has_config(args: &ApplyArgs) -> bool {
    args.config.config_path.is_some() || args.config.config_repo.is_some()
}

pub fn run(args: &ApplyArgs) -> Result<u8> {
    if args.watch.watch {
        return super::watch::run_from_apply(args);
    }
    match &args.plan {
        Some(path) => run_saved(args, path),
        None => run_sources(args),
    }
}

/// Plans from the sources against the kernel, prints, applies.
fn run_sources(args: &ApplyArgs) -> Result<u8> {
    let ownership = args.safety.ownership()?;
    let guards = args.safety.guards();
    let opts = args.compile.options()?;
    let config_tree = args.config.read()?;
    let overlay_tree = args.overlay.read()?;
    let rendered = render_trees(&args.config, &config_tree, overlay_tree.as_ref(), &opts);
    if !rendered.is_ok() {
        let n = rendered.diags.errors().count();
        eprintln!(
            "error: {n} problem{} found, nothing applied",
            if n == 1 { "" } else { "s" }
        );
        return Err(Exit(1).into());
    }
    let mut client = Client::connect()?;
    let live = client
        .read_state()
        .context("reading the kernel ipvs table")?;
    let desired = &rendered.state;
    let plan = match plan::plan(desired, &live, &ownership, &guards) {
        Ok(plan) => plan,
        Err(PlanError::MassDelete { reason, plan }) => {
            print!("{}", output::text(&plan, desired, use_color()));
            eprintln!("error: {reason}; nothing applied");
            return Err(Exit(1).into());
        }
        Err(e @ PlanError::NotOwned { .. }) => {
            return Err(anyhow::Error::from(e).context("nothing applied"));
        }
    };
    print!("{}", output::text(&plan, desired, use_color()));
    if args.dry_run || plan.is_empty() {
        if args.dry_run {
            eprintln!("dry run: nothing applied");
        }
        return Ok(0);
    }
    let ops: Vec<Op> = plan.ops().cloned().collect();
    execute(&mut client, &ops, &plan.summary)
}

/// Applies a saved plan after the staleness check.
fn run_saved(args: &ApplyArgs, path: &PathBuf) -> Result<u8> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the plan {}", path.display()))?;
    let saved =
        SavedPlan::from_json(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let ownership = saved
        .ownership()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    // With sources given, the inputs must not have moved either.
    let inputs = if has_config(args) {
        let opts = args.compile.options()?;
        let config_tree = args.config.read()?;
        let overlay_tree = args.overlay.read()?;
        let rendered = render_trees(&args.config, &config_tree, overlay_tree.as_ref(), &opts);
        if !rendered.is_ok() {
            eprintln!("error: the config has problems, nothing applied");
            return Err(Exit(1).into());
        }
        Some(Inputs {
            config_hash: rendered.config_hash.clone(),
            config_revision: config_tree.origin.revision.clone(),
            overlay_hash: rendered.overlay_hash.clone(),
            overlay_revision: overlay_tree
                .as_ref()
                .and_then(|t| t.origin.revision.clone()),
        })
    } else {
        None
    };
    let mut client = Client::connect()?;
    let live = client
        .read_state()
        .context("reading the kernel ipvs table")?;
    check_fresh(&saved, &live_hash(&live, &ownership), inputs.as_ref())?;
    let ops: Vec<Op> = saved.ops().cloned().collect();
    for op in &ops {
        println!("{}", pipeline::describe_op(op));
    }
    if ops.is_empty() {
        println!("No changes: the saved plan is empty.");
        return Ok(0);
    }
    println!("{}", saved.summary);
    if args.dry_run {
        eprintln!("dry run: nothing applied");
        return Ok(0);
    }
    execute(&mut client, &ops, &saved.summary)
}

/// Executes the ops; the summary line or the partial-failure report.
fn execute(client: &mut Client, ops: &[Op], summary: &Summary) -> Result<u8> {
    let started = Instant::now();
    match client.apply(ops) {
        Ok(report) => {
            println!(
                "Applied: {} added, {} changed, {} deleted.",
                summary.add, summary.change, summary.delete
            );
            eprintln!(
                "applied {} changes in {} batch{}, {:.1} ms",
                report.applied,
                report.batches,
                if report.batches == 1 { "" } else { "es" },
                started.elapsed().as_secs_f64() * 1e3
            );
            Ok(0)
        }
        Err(failure) => {
            eprint!("{}", failure.describe(ops));
            eprintln!("error: {failure}");
            eprintln!("the next run re-plans from the kernel's actual state");
            Err(Exit(1).into())
        }
    }
}
