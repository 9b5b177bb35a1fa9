//! The input side of the one-shot CLI, end to end: the built binary run as
//! a new process on a config of SERVICES service files with 10 backends
//! each (10k x 10 by default), read
//! - as a directory (`render --config-path`, YAML and `--output ipvsadm`);
//! - as a packed Git repository (`render --config-repo`, after `git gc`);
//! - with the live state from an `ipvsadm -S -n` dump equal to its render
//!   (`plan --live DUMP`: nothing to do).
//!
//! Prints, per case, the median wall time and the median user+sys CPU of
//! the process, and the ratio of `plan --live` to `render --output ipvsadm`
//! (the render that wrote the dump `plan` reads back). With `CLUSTERF_BASE_BIN` set to another
//! binary (e.g. /work/bench/base/clusterf), runs it too, alternating with
//! this one run by run, and prints both side by side.
//!
//! Run: `cargo bench --bench input` (optionally `-- SERVICES` and
//! `--runs N`). Without `--bench` (`cargo test --all-targets`) it runs a
//! tiny config once, as a smoke test. The config, repository and dump are
//! kept in a temporary directory whose path it prints when
//! `CLUSTERF_INPUT_KEEP=1`, for callgrind runs of single commands.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BACKENDS: u32 = 10;

fn ip4(n: u32) -> String {
    std::net::Ipv4Addr::from(n).to_string()
}

/// One service file: a TCP frontend and `BACKENDS` backends.
fn service(i: u32) -> String {
    let mut doc = format!(
        "frontend: {{ipv4: {}, tcp: 80}}\nbackends:\n",
        ip4(0x0a00_0000 + i)
    );
    for j in 0..BACKENDS {
        doc.push_str(&format!(
            "  b{j}: {{ipv4: {}, tcp: 8080, weight: {}}}\n",
            ip4(0x6400_0000 + i * 16 + j),
            j + 1
        ));
    }
    doc
}

fn write_config(dir: &Path, services: u32) {
    std::fs::create_dir_all(dir.join("services")).unwrap();
    std::fs::write(dir.join("clusterf.yaml"), "scheduler: wlc\nmethod: masq\n").unwrap();
    for i in 0..services {
        std::fs::write(dir.join(format!("services/svc-{i:05}.yaml")), service(i)).unwrap();
    }
}

fn git(cwd: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(cwd)
        .args(["-c", "init.defaultBranch=main", "-c", "gc.auto=0"])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "Bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A packed repository holding a copy of `config` at its root.
fn write_repo(config: &Path, repo: &Path, services: u32) {
    write_config(repo, services);
    assert_eq!(
        std::fs::read(config.join("services/svc-00000.yaml")).unwrap(),
        std::fs::read(repo.join("services/svc-00000.yaml")).unwrap()
    );
    git(repo, &["init", "-q"]);
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", "services"]);
    git(repo, &["gc", "-q"]);
}

/// User plus system CPU of the children waited for so far.
fn children_cpu() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Runs `bin args` once with stdout to /dev/null; its wall time and CPU.
fn run(bin: &Path, args: &[String]) -> (Duration, Duration) {
    let cpu = children_cpu();
    let t = Instant::now();
    let out = Command::new(bin)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("clusterf runs");
    let wall = t.elapsed();
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    (wall, children_cpu() - cpu)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

struct Case {
    name: &'static str,
    args: Vec<String>,
}

fn cases(dir: &Path, repo: &Path, dump: &Path) -> Vec<Case> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let dir = dir.display().to_string();
    let repo = repo.display().to_string();
    let dump = dump.display().to_string();
    vec![
        Case {
            name: "render --config-path",
            args: s(&["render", "--config-path", &dir]),
        },
        Case {
            name: "render --config-path -o ipvsadm",
            args: s(&["render", "--config-path", &dir, "--output", "ipvsadm"]),
        },
        Case {
            name: "render --config-repo (packed)",
            args: s(&["render", "--config-repo", &repo]),
        },
        Case {
            name: "plan --config-path --live DUMP",
            args: s(&["plan", "--config-path", &dir, "--live", &dump]),
        },
    ]
}

/// Median wall and CPU per case and binary, the binaries alternating.
fn measure(bins: &[PathBuf], cases: &[Case], runs: usize) -> Vec<Vec<(Duration, Duration)>> {
    let mut samples = vec![vec![(Vec::new(), Vec::new()); bins.len()]; cases.len()];
    for _ in 0..runs {
        for (c, case) in cases.iter().enumerate() {
            for (b, bin) in bins.iter().enumerate() {
                let (wall, cpu) = run(bin, &case.args);
                samples[c][b].0.push(wall);
                samples[c][b].1.push(cpu);
            }
        }
    }
    samples
        .into_iter()
        .map(|per_bin| {
            per_bin
                .into_iter()
                .map(|(w, c)| (median(w), median(c)))
                .collect()
        })
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this as a
    // smoke test of a tiny config.
    let full = args.iter().any(|a| a == "--bench");
    let runs_at = args.iter().position(|a| a == "--runs");
    let runs: usize = runs_at
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(if full { 11 } else { 1 });
    let services: u32 = args
        .iter()
        .enumerate()
        .filter(|(i, _)| runs_at.is_none_or(|r| *i != r + 1))
        .find_map(|(_, a)| a.parse().ok())
        .unwrap_or(if full { 10_000 } else { 20 });
    let mut bins = vec![PathBuf::from(env!("CARGO_BIN_EXE_clusterf"))];
    let base = std::env::var_os("CLUSTERF_BASE_BIN").map(PathBuf::from);
    bins.extend(base);

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("config");
    let repo = tmp.path().join("repo");
    let dump = tmp.path().join("live.ipvsadm");
    write_config(&dir, services);
    write_repo(&dir, &repo, services);
    let rendered = Command::new(&bins[0])
        .args(["render", "--output", "ipvsadm", "--config-path"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(rendered.status.success());
    std::fs::write(&dump, &rendered.stdout).unwrap();
    let lines = rendered.stdout.iter().filter(|b| **b == b'\n').count();
    assert_eq!(lines as u32, services * (1 + BACKENDS), "the dump");

    let cases = cases(&dir, &repo, &dump);
    println!(
        "one-shot CLI input, {services} services x {BACKENDS} dests, median of {runs} runs (wall / user+sys)"
    );
    let results = measure(&bins, &cases, runs);
    for (case, per_bin) in cases.iter().zip(&results) {
        let cols: Vec<String> = per_bin
            .iter()
            .map(|(w, c)| format!("{:>8.1} ms / {:>8.1} ms", ms(*w), ms(*c)))
            .collect();
        println!("{:<34} {}", case.name, cols.join("   base "));
    }
    for (b, bin) in bins.iter().enumerate() {
        let (render, plan) = (results[1][b], results[3][b]);
        println!(
            "plan --live / render -o ipvsadm ({}): wall {:.2}x, cpu {:.2}x",
            bin.display(),
            ms(plan.0) / ms(render.0),
            ms(plan.1) / ms(render.1)
        );
    }
    if std::env::var_os("CLUSTERF_INPUT_KEEP").is_some() {
        let kept = tmp.keep();
        println!("inputs kept in {}", kept.display());
    }
}
