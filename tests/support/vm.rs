//! Shared by the tests that boot the qemu guest of `tests/vm/`: whether the
//! guest can run (qemu present, `tests/vm/build.sh` succeeded, built once per
//! test process) and whether we are in CI, where a missing guest fails.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Builds the guest once per test process: `Err` says why there is none.
pub fn guest() -> &'static Result<(), String> {
    static GUEST: OnceLock<Result<(), String>> = OnceLock::new();
    GUEST.get_or_init(|| {
        match Command::new("qemu-system-x86_64").arg("--version").output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                return Err(format!(
                    "qemu-system-x86_64 --version exited {}",
                    out.status
                ));
            }
            Err(e) => return Err(format!("qemu-system-x86_64 not runnable: {e}")),
        }
        let out = Command::new(root().join("tests/vm/build.sh"))
            .output()
            .map_err(|e| format!("cannot run tests/vm/build.sh: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "tests/vm/build.sh failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    })
}
