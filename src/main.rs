use std::ffi::CStr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use clusterf::cli::Lifetime;

// The allocator and its options: `clusterf::allocator`.
#[global_allocator]
static GLOBAL: clusterf::allocator::MiMalloc = clusterf::allocator::MiMalloc;

/// Whether descriptor 1 was closed at exec (`>&-`), as seen before Rust's
/// runtime puts /dev/null there (it does so before `main`).
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

extern "C" fn probe_stdout() {
    // SAFETY: F_GETFD on a descriptor number only reads its flags.
    let closed = unsafe { libc::fcntl(1, libc::F_GETFD) } == -1;
    STDOUT_CLOSED.store(closed, Ordering::Relaxed);
}

/// Runs from `.init_array`, before the runtime's own start-up code.
#[used]
#[unsafe(link_section = ".init_array")]
static STDOUT_PROBE: extern "C" fn() = probe_stdout;

/// Sets the allocator's options for the command on the command line. glibc
/// passes `.init_array` functions the program's arguments (std reads them
/// the same way); elsewhere the command is taken to run until stopped, the
/// bounding choice.
extern "C" fn tune_allocator(
    argc: libc::c_int,
    argv: *const *const libc::c_char,
    _envp: *const *const libc::c_char,
) {
    let lifetime = if cfg!(all(target_os = "linux", target_env = "gnu")) && !argv.is_null() {
        // SAFETY: glibc's argv holds argc NUL-terminated strings, which
        // live as long as the process; reading them allocates nothing.
        let args = (1..argc.max(1) as usize).map(|i| unsafe { CStr::from_ptr(*argv.add(i)) });
        clusterf::cli::lifetime_of_args(args.map(CStr::to_bytes))
    } else {
        Lifetime::UntilStopped
    };
    // SAFETY: `.init_array` runs before any thread and before the
    // runtime's first allocation.
    unsafe { clusterf::allocator::set_options(lifetime) }
}

/// Runs from `.init_array`, before the runtime's first allocation makes
/// mimalloc's first arena.
#[used]
#[unsafe(link_section = ".init_array")]
static ALLOCATOR_OPTIONS: extern "C" fn(
    libc::c_int,
    *const *const libc::c_char,
    *const *const libc::c_char,
) = tune_allocator;

fn main() -> ExitCode {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        clusterf::cli::stdout_closed_at_start();
    }
    let cli = match clusterf::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Usage errors exit 1 like every other error, so that exit 2
            // stays free for `plan --detailed-exitcode` ("changes present").
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    clusterf::cli::run(cli)
}
