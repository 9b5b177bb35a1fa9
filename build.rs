//! Names the commit clusterf is built from, for `clusterf --version`: sets
//! `CLUSTERF_VERSION` to the package version plus, in a Git checkout of
//! this package, ` (commit abc1234)`.
//!
//! Must not: fail the build. Outside a checkout (a crate tarball), with no
//! `git` installed, or with the package inside some other repository, the
//! version is the package version alone.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let version = match commit(&dir) {
        Some(commit) => format!("{version} (commit {commit})"),
        None => version,
    };
    println!("cargo:rustc-env=CLUSTERF_VERSION={version}");
}

/// The short id of HEAD when `dir` is the top of a Git checkout; asks cargo
/// to run this again when HEAD or the branch it points to moves.
fn commit(dir: &Path) -> Option<String> {
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    let same = |a: &Path, b: &Path| a.canonicalize().ok() == b.canonicalize().ok();
    if !same(Path::new(&top), dir) {
        return None;
    }
    // HEAD, the ref it names (a worktree keeps it in the common directory)
    // and packed-refs, which holds refs that are no loose file; only files
    // that exist (cargo reruns every time for a missing one).
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(name) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watched.push(name);
    }
    for name in watched {
        if let Some(path) = git(dir, &["rev-parse", "--git-path", &name]) {
            let path = dir.join(path);
            if path.is_file() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    git(dir, &["rev-parse", "--short", "HEAD"])
}

/// One line of a git command's output, or `None` when it cannot run or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let line = text.trim();
    (out.status.success() && !line.is_empty()).then(|| line.to_string())
}
