use std::ffi::CStr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Parser;
use clusterf::cli::Lifetime;

// mimalloc: rendering a large repo allocates many small strings and maps;
// it renders 10k services about 1.5x faster than the system allocator
// (docs/benchmarks.md, "Render").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

unsafe extern "C" {
    /// mimalloc's own: frees what it can and, with `force`, returns free
    /// memory to the system at once (it otherwise waits a second).
    fn mi_collect(force: bool);
    /// mimalloc's own: sets an option (`mi_option_t`, mimalloc.h).
    fn mi_option_set(option: libc::c_int, value: libc::c_long);
}

/// mimalloc's options (`mi_option_t` of the v3 mimalloc.h that
/// libmimalloc-sys builds), by the command's [`Lifetime`].
///
/// A process that runs until stopped (the daemon, `docker`, `realserver
/// --watch`) commits arenas as it uses them, not at once, and returns free
/// pages at once instead of a second later: freed memory does not stay
/// resident beside what grows (the daemon in the VM, 10k services;
/// docs/benchmarks.md, sessions 8 and 11). A command that exits keeps
/// mimalloc's defaults there: returning pages it would soon touch again
/// cost a cold `render --config-repo` of 10k services 10k more page faults
/// and ~20% of its wall time, and it returns everything at exit (session
/// 14).
///
/// Neither has transparent huge pages (mimalloc also asks for them where
/// the kernel's THP is `madvise`): where it is `always` (Debian, RHEL), a
/// touched 2 MiB stretch of an arena is resident whole, however few of
/// its 64 KiB pages are in use (the daemon in the VM: peak 115.4 -> 103.9
/// MB at the first pass; session 11), and a peak that depends on the
/// host's THP setting cannot be held to a bound.
///
/// `MIMALLOC_*` in the environment still decides an option it names.
fn mi_options(lifetime: Lifetime) -> &'static [(libc::c_int, libc::c_long, &'static CStr)] {
    const THP_OFF: (libc::c_int, libc::c_long, &CStr) =
        (MI_OPTION_ALLOW_THP, 0, c"MIMALLOC_ALLOW_THP");
    match lifetime {
        Lifetime::OneShot => &[THP_OFF],
        Lifetime::UntilStopped => &[
            (4, 0, c"MIMALLOC_ARENA_EAGER_COMMIT"),
            (15, 0, c"MIMALLOC_PURGE_DELAY"),
            THP_OFF,
        ],
    }
}

/// `mi_option_allow_thp`.
const MI_OPTION_ALLOW_THP: libc::c_int = 43;

/// Sets mimalloc's options for the command on the command line. glibc
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
    for &(option, value, env) in mi_options(lifetime) {
        // SAFETY: getenv of a NUL-terminated name, before any thread runs;
        // mi_option_set and PR_SET_THP_DISABLE have no preconditions.
        unsafe {
            if libc::getenv(env.as_ptr()).is_null() {
                mi_option_set(option, value);
                // mimalloc turns THP off for the process (prctl) when
                // its memory set-up runs; its constructor (priority 101)
                // may run that before this one, where the option would
                // only stop its `madvise`, so here too.
                if option == MI_OPTION_ALLOW_THP {
                    libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
                }
            }
        }
    }
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

fn release_memory() {
    // SAFETY: a mimalloc entry point without preconditions; the allocator
    // above is mimalloc, so its library is linked.
    unsafe { mi_collect(true) }
}

fn main() -> ExitCode {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        clusterf::cli::stdout_closed_at_start();
    }
    clusterf::cli::on_release_memory(release_memory);
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
