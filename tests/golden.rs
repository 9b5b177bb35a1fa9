//! Golden tests: whole `clusterf` runs against the cases in `tests/golden/`.
//!
//! Each case is a directory with input trees and a `cmd` file. Every
//! non-empty line of `cmd` not starting with `#` is `NAME: ARGS...`: the
//! arguments (split on whitespace) of one `clusterf` run, made with the case
//! directory as working directory and `NO_COLOR=1`. Its exit code, stdout and
//! stderr are compared with `expected/NAME.out`.
//!
//! Re-bless every expected file with `CLUSTERF_BLESS=1 cargo test --test
//! golden` and review the change with `git diff`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const BLESS_VAR: &str = "CLUSTERF_BLESS";

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut cases: Vec<PathBuf> = fs::read_dir(&root)
        .expect("tests/golden")
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("cmd").is_file())
        .collect();
    cases.sort();
    cases
}

/// Runs one command line and renders its transcript.
fn transcript(case: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_clusterf"))
        .args(args)
        .current_dir(case)
        .env("NO_COLOR", "1")
        .env_remove("CLUSTERF_ETCD_PASSWORD")
        .output()
        .expect("run clusterf");
    let code = out
        .status
        .code()
        .map_or_else(|| format!("signal ({})", out.status), |c| c.to_string());
    format!(
        "exit: {code}\n--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn golden() {
    let bless = std::env::var_os(BLESS_VAR).is_some();
    let mut failures = Vec::new();
    let mut ran = 0;
    for case in cases() {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let cmd = fs::read_to_string(case.join("cmd")).unwrap();
        for line in cmd
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (run, args) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("{name}/cmd: line {line:?} is not NAME: ARGS"));
            let args: Vec<&str> = args.split_whitespace().collect();
            let actual = transcript(&case, &args);
            let expected_path = case.join("expected").join(format!("{}.out", run.trim()));
            ran += 1;
            if bless {
                fs::create_dir_all(expected_path.parent().unwrap()).unwrap();
                fs::write(&expected_path, &actual).unwrap();
                continue;
            }
            let expected = fs::read_to_string(&expected_path).unwrap_or_default();
            if expected != actual {
                let diff = similar::TextDiff::from_lines(&expected, &actual)
                    .unified_diff()
                    .header("expected", "actual")
                    .to_string();
                failures.push(format!("{name}/{}:\n{diff}", run.trim()));
            }
        }
    }
    assert!(ran > 0, "no golden cases found");
    assert!(
        failures.is_empty(),
        "{} golden mismatches (re-bless with {BLESS_VAR}=1 and review git diff):\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}
