//! The command line: argument definitions and one module per subcommand.
//! Subcommands read sources, call the pure core, print data to stdout and
//! logs and diagnostics to stderr.
//!
//! Invariant: no semantics here beyond wiring; what a command means is
//! decided in the core modules.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::format_error;

pub mod apply;
pub mod docker;
pub mod etcd;
pub mod plan;
pub mod render;
pub mod show;
pub mod source;
pub mod watch;

/// Declarative GitOps reconciler for Linux IPVS.
#[derive(Debug, Parser)]
#[command(name = "clusterf", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a config repository; print every problem
    Validate(render::ValidateArgs),
    /// Print the desired IPVS state
    Render(render::RenderArgs),
    /// Print the JSON Schemas of the YAML config files
    Schema(render::SchemaArgs),
    /// Show what would change in IPVS: desired state against live state
    Plan(plan::PlanArgs),
    /// Plan and apply the changes to kernel IPVS
    Apply(apply::ApplyArgs),
    /// Show the live kernel IPVS table
    Show(show::ShowArgs),
    /// Read and write the clusterf tree in etcd
    Etcd(etcd::EtcdArgs),
    /// Publish labelled Docker containers as backends into etcd
    Docker(docker::DockerArgs),
}

/// An error whose message has already been printed: exit with `code`.
#[derive(Debug)]
pub struct Exit(pub u8);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}", self.0)
    }
}

impl std::error::Error for Exit {}

/// Writes data to stdout. `print!` panics when stdout is a closed pipe
/// (`clusterf plan -o json | head -1`); this returns the error instead, and
/// [`run`] ends a command whose reader went away quietly with exit 0, as
/// ripgrep does. Commands that change the kernel ignore a broken pipe and
/// go on (see `apply`).
pub fn emit(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Whether output to `stream` (stdout, stderr) gets colour: on a terminal
/// only, never with `NO_COLOR` set (to anything but the empty string).
pub fn use_color(stream: &impl std::io::IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Whether the error is stdout's reader having gone away.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Runs a parsed command line; the exit code of the process.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Validate(args) => render::validate(&args),
        Command::Render(args) => render::render(&args),
        Command::Schema(args) => render::schema(&args),
        Command::Plan(args) => plan::run(&args),
        Command::Apply(args) => apply::run(&args),
        Command::Show(args) => show::run(&args),
        Command::Etcd(args) => etcd::run(&args),
        Command::Docker(args) => docker::run(&args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if let Some(Exit(code)) = e.downcast_ref::<Exit>() {
                return ExitCode::from(*code);
            }
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {}", format_error(&e));
            ExitCode::from(1)
        }
    }
}
