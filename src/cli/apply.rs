//! `clusterf apply`: plan against the live kernel table and apply the plan,
//! without a prompt (it runs from CI, scripts and systemd); or apply a plan
//! saved by `clusterf plan --out FILE` after its staleness and replay checks.
//!
//! Output: the plan on stdout (the same text as `clusterf plan`, for a
//! saved plan too), then one summary line. A change the kernel refuses
//! fails its service (the rest of that service's changes is skipped, every
//! other service is applied): the failed services with why and the changes
//! not applied go to stderr, exit 1. `--dry-run` prints the plan and
//! applies nothing.
//!
//! Invariant: wiring only. Planning is `crate::plan`, execution is
//! `crate::netlink`; nothing is applied when the config has errors, a guard
//! trips, or a saved plan is stale. Never flushes or zero-weights anything
//! on start: what changes is exactly the plan.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use clap::Args;

use super::source::{CompileArgs, ConfigArgs, OverlayArgs, SafetyArgs, load_beside, refuse_errors};
use super::{Exit, use_color, watch};
use crate::model::{IpvsState, LiveTable, Op};
use crate::netlink::Client;
use crate::plan::saved::{ReplayError, SavedPlan, check_fresh, desired_after, replay};
use crate::plan::{self, PlanError, Summary, output};
use crate::text::plural;

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
    pub watch: watch::WatchArgs,

    /// A plan saved by `clusterf plan --out FILE`: apply it if the live
    /// table (and, with sources given, the inputs) did not move since
    #[arg(value_name = "PLAN.json")]
    pub plan: Option<PathBuf>,
}

/// Prints to stdout. Apply goes on when stdout's reader went away
/// (`clusterf apply | head`): what it applies must not depend on who reads
/// the report, and stderr still says what happened.
fn show(text: &str) {
    let _ = super::emit(text);
}

fn has_config(args: &ApplyArgs) -> bool {
    args.config.config_path.is_some() || args.config.config_repo.is_some()
}

pub fn run(args: &ApplyArgs) -> Result<u8> {
    if args.watch.watch {
        return run_watch(args);
    }
    match &args.plan {
        Some(path) => run_saved(args, path),
        None => run_sources(args),
    }
}

/// `clusterf apply --watch ...`: the daemon with apply's sources,
/// ownership and guards.
fn run_watch(args: &ApplyArgs) -> Result<u8> {
    if args.plan.is_some() {
        bail!("--watch applies from the sources, not a saved plan");
    }
    if args.dry_run {
        bail!("--watch and --dry-run exclude each other: use clusterf plan");
    }
    let compile = args.compile.options()?;
    let ownership = args.safety.ownership()?;
    let mut opts = watch::resolve(&args.config, &args.overlay, compile, &args.watch)?;
    opts.ownership = ownership;
    opts.guards = args.safety.guards();
    watch::run(opts, args.watch.log_format)
}

/// Plans from the sources against the kernel, prints, applies.
fn run_sources(args: &ApplyArgs) -> Result<u8> {
    let ownership = args.safety.ownership()?;
    let guards = args.safety.guards();
    // The kernel's table is read while the sources load and render.
    let (loaded, kernel) = load_beside(&args.config, &args.overlay, &args.compile, read_kernel)?;
    refuse_errors(&loaded, ", nothing applied")?;
    let (mut client, live) = use_kernel(kernel)?;
    let desired = &loaded.rendered.state;
    let plan = match plan::plan(desired, &live, &ownership, &guards) {
        Ok(plan) => plan,
        Err(PlanError::MassDelete { reason, plan }) => {
            show(&output::text_refused(
                &plan,
                desired,
                use_color(&std::io::stdout()),
                Some(&reason),
            ));
            eprintln!("error: {reason}; nothing applied");
            return Err(Exit(1).into());
        }
        Err(e @ PlanError::NotOwned { .. }) => {
            return Err(anyhow::Error::from(e).context("nothing applied"));
        }
    };
    show(&output::text(&plan, desired, use_color(&std::io::stdout())));
    if args.dry_run || plan.is_empty() {
        if args.dry_run {
            eprintln!("dry run: nothing applied");
        }
        return Ok(0);
    }
    let ops: Vec<Op> = plan.ops().cloned().collect();
    execute(&mut client, &ops, &plan.summary)
}

/// Applies a saved plan after the staleness check and the replay check
/// (`crate::plan::saved::replay`): a saved plan is held to the rules a
/// fresh one is, with the guards of this command line.
fn run_saved(args: &ApplyArgs, path: &std::path::Path) -> Result<u8> {
    let text = crate::source::file::read_text(path, crate::source::file::PLAN_LIMIT)
        .with_context(|| format!("reading the plan {}", path.display()))?;
    let saved =
        SavedPlan::from_json(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let ownership = saved
        .ownership()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    // The plan's ownership is what it was made with; another one given
    // here would be silently ignored, so it must be the same or absent.
    if !args.safety.own.is_empty() || !args.safety.own_fwmark.is_empty() {
        let given = args.safety.ownership()?;
        if given.doc() != saved.ownership {
            anyhow::bail!(
                "{}: the plan was made with other ownership than --own/--own-fwmark given here; make a new plan with these, or drop them (the plan's own apply)",
                path.display()
            );
        }
    }
    // With sources given, the inputs must not have moved either; the
    // kernel's table is read while they load.
    let (inputs, kernel) = if has_config(args) {
        let (loaded, kernel) =
            load_beside(&args.config, &args.overlay, &args.compile, read_kernel)?;
        if loaded.errors() > 0 {
            eprintln!("error: the config has problems, nothing applied");
            return Err(Exit(1).into());
        }
        (Some(loaded.inputs()), kernel)
    } else {
        eprintln!(
            "warning: the plan's inputs are not checked: give the sources it was made from (--config-path or --config-repo, and --overlay-path or --etcd) to refuse it when they moved; the live table is checked"
        );
        (None, read_kernel())
    };
    let (mut client, live) = use_kernel(kernel)?;
    check_fresh(
        &saved,
        &saved.live.hash_of(&live, &ownership),
        inputs.as_ref(),
    )?;
    let in_file = |e: ReplayError| anyhow::anyhow!("{}: {e}", path.display());
    let desired = desired_after(&saved, &ownership, &live).map_err(in_file)?;
    let plan = match replay(&saved, &ownership, &desired, &live, &args.safety.guards()) {
        Ok(plan) => plan,
        Err(ReplayError::Plan(PlanError::MassDelete { reason, plan })) => {
            show(&output::text_refused(
                &plan,
                &desired,
                use_color(&std::io::stdout()),
                Some(&reason),
            ));
            eprintln!("error: {reason}; nothing applied");
            return Err(Exit(1).into());
        }
        Err(e) => return Err(in_file(e)),
    };
    show(&output::text(
        &plan,
        &desired,
        use_color(&std::io::stdout()),
    ));
    if plan.is_empty() {
        return Ok(0);
    }
    if args.dry_run {
        eprintln!("dry run: nothing applied");
        return Ok(0);
    }
    let ops: Vec<Op> = plan.ops().cloned().collect();
    execute(&mut client, &ops, &plan.summary)
}

/// Connects and reads the kernel's table for a plan (runs beside the
/// load).
fn read_kernel() -> Result<(Client, LiveTable)> {
    let mut client = Client::connect()?;
    let live = client
        .read_plain()
        .context("reading the kernel ipvs table")?;
    Ok((client, live))
}

/// The kernel read of [`read_kernel`] put to use: the state to plan
/// against.
fn use_kernel(kernel: Result<(Client, LiveTable)>) -> Result<(Client, IpvsState)> {
    let (client, live) = kernel?;
    Ok((client, live.state))
}

/// Executes the ops; the summary line or the partial-failure report.
fn execute(client: &mut Client, ops: &[Op], summary: &Summary) -> Result<u8> {
    let started = Instant::now();
    match client.apply(ops) {
        Ok(report) => {
            show(&format!(
                "Applied: {} added, {} changed, {} deleted.\n",
                summary.add, summary.change, summary.delete
            ));
            eprintln!(
                "applied {} in {}, {:.1} ms",
                plural(report.applied, "change"),
                plural(report.batches, "batch"),
                started.elapsed().as_secs_f64() * 1e3
            );
            Ok(0)
        }
        Err(failure) => {
            // Each failed service is named with why; every other service
            // was applied in full unless the run stopped.
            eprint!("{}", failure.describe(ops));
            eprintln!("error: {failure}");
            eprintln!(
                "the next run re-plans from the kernel's actual state and retries what is still needed"
            );
            Err(Exit(1).into())
        }
    }
}
