//! `clusterf completions SHELL` and `clusterf man [--dir DIR]`: what a package installs
//! beside the binary, generated from the command line's own definition
//! (clap_complete, clap_mangen), so they never go stale.
//!
//! Must not: read any source or the kernel; print data only.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Args, CommandFactory, ValueEnum};

use super::Cli;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write every page (clusterf.1 and one per subcommand, such as
    /// clusterf-plan.1) into this directory instead of printing clusterf.1
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Prints the completion script for `args.shell`.
pub fn completions(args: &CompletionsArgs) -> Result<u8> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    // Made whole first: the generators panic on a write error, and emit
    // treats a reader that went away as no error.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "clusterf", &mut script);
    super::emit_with(|out| std::io::Write::write_all(out, &script))?;
    Ok(0)
}

/// Prints the man page, clusterf(1), in roff; with `--dir`, writes it and
/// every subcommand's page there.
pub fn man(args: &ManArgs) -> Result<u8> {
    if let Some(dir) = &args.dir {
        clap_mangen::generate_to(Cli::command(), dir)
            .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
        return Ok(0);
    }
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut page)?;
    super::emit_with(|out| std::io::Write::write_all(out, &page))?;
    Ok(0)
}
