//! The allocator the binary and the benches install: mimalloc, its options
//! by how long the command runs ([`Lifetime`]), and returning free memory
//! at once. The library never installs a global allocator itself.
//!
//! mimalloc: rendering a large repo allocates many small strings and maps;
//! it renders 10k services about 1.5x faster than the system allocator
//! (docs/benchmarks.md, "Render").

use std::ffi::CStr;

pub use mimalloc::MiMalloc;

unsafe extern "C" {
    /// mimalloc's own: frees what it can and, with `force`, returns free
    /// memory to the system at once (it otherwise waits a second).
    fn mi_collect(force: bool);
    /// mimalloc's own: sets an option (`mi_option_t`, mimalloc.h).
    fn mi_option_set(option: libc::c_int, value: libc::c_long);
}

/// One of mimalloc's options: its number (`mi_option_t` of the v3
/// mimalloc.h that libmimalloc-sys builds), the value set, and the
/// environment variable that overrides it.
pub type MiOption = (libc::c_int, libc::c_long, &'static CStr);

/// Whether a command exits when its work is done or runs until stopped
/// (`cli::Command::lifetime`): a process that runs until stopped returns
/// freed memory at once, one that exits keeps it for reuse (fewer page
/// faults) and returns it all at exit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    OneShot,
    UntilStopped,
}

/// `mi_option_allow_thp`.
const MI_OPTION_ALLOW_THP: libc::c_int = 43;

/// mimalloc's options by the command's [`Lifetime`].
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
pub fn options(lifetime: Lifetime) -> &'static [MiOption] {
    const THP_OFF: MiOption = (MI_OPTION_ALLOW_THP, 0, c"MIMALLOC_ALLOW_THP");
    match lifetime {
        Lifetime::OneShot => &[THP_OFF],
        Lifetime::UntilStopped => &[
            (4, 0, c"MIMALLOC_ARENA_EAGER_COMMIT"),
            (15, 0, c"MIMALLOC_PURGE_DELAY"),
            THP_OFF,
        ],
    }
}

/// Sets [`options`] for `lifetime`; `MIMALLOC_*` in the environment still
/// decides an option it names.
///
/// # Safety
///
/// Call it before any other thread runs and before the first allocation
/// (from an `.init_array` function): it reads the environment, and
/// mimalloc reads its options when it makes its first arena.
pub unsafe fn set_options(lifetime: Lifetime) {
    for &(option, value, env) in options(lifetime) {
        // SAFETY: getenv of a NUL-terminated name with no thread running
        // (the caller's promise); mi_option_set and PR_SET_THP_DISABLE
        // have no preconditions.
        unsafe {
            if libc::getenv(env.as_ptr()).is_null() {
                mi_option_set(option, value);
                // mimalloc turns THP off for the process (prctl) when its
                // memory set-up runs; its constructor (priority 101) may
                // run that before the caller, where the option would only
                // stop its `madvise`, so here too.
                if option == MI_OPTION_ALLOW_THP {
                    libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
                }
            }
        }
    }
}

/// Returns free memory to the system at once (mimalloc's `mi_collect`),
/// between the phases of a large one-shot command: what the last phase
/// freed does not stay resident under the next one's allocations. Nothing
/// to return where [`MiMalloc`] is not the global allocator.
pub fn release_memory() {
    // SAFETY: a mimalloc entry point without preconditions; this module
    // links mimalloc (`MiMalloc` above).
    unsafe { mi_collect(true) }
}
