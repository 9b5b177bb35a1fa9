//! The command line: argument definitions and one module per subcommand.
//! Subcommands read sources, call the pure core, print data to stdout and
//! logs and diagnostics to stderr.
//!
//! Invariant: no semantics here beyond wiring; what a command means is
//! decided in the core modules.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::format_error;
use crate::text;

pub mod apply;
pub mod check;
pub mod docker;
pub mod etcd;
pub mod import;
pub mod nft_dnat;
pub mod packaging;
pub mod plan;
pub mod realserver;
pub mod render;
pub mod show;
pub mod source;
pub mod status;
pub mod watch;

/// Declarative GitOps reconciler for Linux IPVS.
#[derive(Debug, Parser)]
#[command(
    name = "clusterf",
    version = env!("CLUSTERF_VERSION"),
    about,
    propagate_version = true
)]
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
    /// Run every backend health check once from this host and print the results
    Check(check::CheckArgs),
    /// Read and write the clusterf tree in etcd
    Etcd(etcd::EtcdArgs),
    /// Publish labelled Docker containers as backends into etcd
    Docker(docker::DockerArgs),
    /// Keep this backend host ready for its droute and tunnel dests: VIPs,
    /// ARP sysctls, IPIP link
    Realserver(realserver::RealserverArgs),
    /// Show each frontend's status from etcd; --wait blocks until a commit is live
    Status(status::StatusArgs),
    /// Write a config repository from an ipvsadm dump or a keepalived.conf
    Import(import::ImportArgs),
    /// Print a shell completion script (bash, zsh, fish)
    Completions(packaging::CompletionsArgs),
    /// Print the man page, clusterf(1), in roff; --dir writes every page
    Man(packaging::ManArgs),
    /// DNAT of VIP:port to this host's containers, once (until realserver --docker)
    #[command(hide = true)]
    NftDnat(nft_dnat::NftDnatArgs),
}

pub use crate::allocator::Lifetime;

impl Command {
    pub fn lifetime(&self) -> Lifetime {
        match self {
            Command::Apply(args) if args.watch.watch => Lifetime::UntilStopped,
            Command::Realserver(args) if args.watch => Lifetime::UntilStopped,
            Command::Docker(_) => Lifetime::UntilStopped,
            _ => Lifetime::OneShot,
        }
    }
}

/// [`Command::lifetime`] from the raw arguments (after the program name),
/// for the allocator's set-up before `main`, where nothing may allocate
/// and clap cannot run yet. The subcommand is the first argument (the
/// command line has no global options); `docker` runs until stopped, and
/// `apply` and `realserver` do with `--watch` before any `--`. A test holds
/// this to the parsed answer.
pub fn lifetime_of_args<'a>(args: impl IntoIterator<Item = &'a [u8]>) -> Lifetime {
    let mut args = args.into_iter();
    match args.next() {
        Some(b"docker") => Lifetime::UntilStopped,
        Some(b"apply" | b"realserver") => {
            if args.take_while(|a| *a != b"--").any(|a| a == b"--watch") {
                Lifetime::UntilStopped
            } else {
                Lifetime::OneShot
            }
        }
        _ => Lifetime::OneShot,
    }
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

/// The one place the one-shot CLI skips a destructor: `value` (a render's
/// trees, parsed config and state: ~10% of a 10k `render` to free) is not
/// needed again and the process is about to exit, which returns its memory
/// at once (as rustc and ripgrep do). Never in the daemon: it would leak.
pub fn leave_to_exit<T>(value: T) {
    std::mem::forget(value);
}

/// Writes data to stdout. A reader that went away (`clusterf plan -o json |
/// head -1`) is no error: the command finishes and exits with the code it
/// would have had (`plan --detailed-exitcode` still exits 2), as `print!`
/// would not (it panics). Any other failure (a full disk, a stdout closed
/// with `>&-`) is an error naming stdout: data that reached nobody is
/// never reported as success. Commands that change the kernel go on
/// whatever happens here (see `apply`).
pub fn emit(text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    emit_with(|out| out.write_all(text.as_bytes()))
}

/// [`emit`] of what `write` writes, as it writes it, through one buffer:
/// a large plan goes out as it is made instead of being held whole. When
/// the reader goes away, writing stops there.
pub fn emit_with(
    write: impl FnOnce(&mut std::io::BufWriter<std::io::StdoutLock<'static>>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::io::{Error, ErrorKind, Write as _};
    if stdout_was_closed() {
        return Err(Error::other("cannot write to stdout: it is closed"));
    }
    let mut out = std::io::BufWriter::with_capacity(64 << 10, std::io::stdout().lock());
    match write(&mut out).and_then(|()| out.flush()) {
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::new(e.kind(), format!("cannot write to stdout: {e}"))),
        Ok(()) => Ok(()),
    }
}

/// Whether file descriptor 1 was closed when the process started (`>&-`).
/// Rust's runtime opens /dev/null on a closed standard descriptor before
/// `main`, so writes would vanish without an error; the binary looks before
/// it does (`main.rs`) and says so here with [`stdout_closed_at_start`].
fn stdout_was_closed() -> bool {
    STDOUT_CLOSED.load(std::sync::atomic::Ordering::Relaxed)
}

static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Records that descriptor 1 was closed when the process started: every
/// later [`emit`] fails instead of writing to the /dev/null put there.
pub fn stdout_closed_at_start() {
    STDOUT_CLOSED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Whether output to `stream` (stdout, stderr) gets colour: on a terminal
/// only, never with `NO_COLOR` set (to anything but the empty string).
pub fn use_color(stream: &impl std::io::IsTerminal) -> bool {
    stream.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
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
        Command::Realserver(args) => realserver::run(&args),
        Command::Status(args) => status::run(&args),
        Command::Check(args) => check::run(&args),
        Command::Import(args) => import::run(&args),
        Command::Completions(args) => packaging::completions(&args),
        Command::Man(args) => packaging::man(&args),
        Command::NftDnat(args) => nft_dnat::run(&args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if let Some(Exit(code)) = e.downcast_ref::<Exit>() {
                return ExitCode::from(*code);
            }
            eprintln!("error: {}", text::cut_message(&format_error(&e)));
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lifetime_read_from_raw_arguments_is_the_parsed_commands() {
        let lines: &[&[&str]] = &[
            &["apply", "--config-path", "c", "--watch"],
            &["apply", "--watch", "--config-path", "c"],
            &["apply", "--config-path", "c"],
            &["apply", "--config-path", "c", "--dry-run"],
            &["docker"],
            &["docker", "--ttl", "5"],
            &["realserver", "--config-path", "c", "--watch"],
            &[
                "realserver",
                "--config-path",
                "c",
                "--host-address",
                "10.0.0.1",
            ],
            &["plan", "--config-path", "c"],
            &["render", "--config-path", "c"],
            &["validate", "--config-path", "c"],
            &["show"],
            &["status", "--wait", "--expect-commit", "abc"],
        ];
        for line in lines {
            let argv = std::iter::once("clusterf").chain(line.iter().copied());
            let parsed = Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{line:?}: {e}"));
            let raw = lifetime_of_args(line.iter().map(|a| a.as_bytes()));
            assert_eq!(raw, parsed.command.lifetime(), "{line:?}");
        }
        let until_stopped = lines
            .iter()
            .filter(|l| lifetime_of_args(l.iter().map(|a| a.as_bytes())) == Lifetime::UntilStopped);
        assert_eq!(until_stopped.count(), 5);
    }
}
