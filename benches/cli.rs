//! The one-shot CLI end to end: the built `clusterf` binary run on a YAML
//! config repository of N services x 10 backends written into a temp dir
//! (`--config-path`), for `render` (YAML and `-o ipvsadm`), `plan --live
//! empty` (text, json, markdown) and `plan --out FILE` (the saved plan;
//! text to stdout).
//! Each case runs as a child process; its peak memory and CPU come from
//! `wait4`'s rusage.
//!
//! Run: `cargo bench --bench cli` (optionally `-- SERVICES...` to choose the
//! sizes, default 10000 and 100000; `--runs N`, default 5, 3 above 50k).
//! With `CLUSTERF_BASE_BIN=/path/to/clusterf` the runs alternate between
//! that binary (`base`) and this build (`new`), for a side-by-side baseline.
//! Prints one line per case and binary: medians of wall time, user+sys CPU
//! and peak RSS, and the CPU relative to the same binary's `render` and
//! `render -o ipvsadm` (the cheapest render: the strictest ratio).
//! Stdout goes to /dev/null; without --bench (`cargo test --all-targets`)
//! one tiny size runs once and its stdout is checked instead.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BACKENDS: u32 = 10;

fn ip4(n: u32) -> String {
    std::net::Ipv4Addr::from(n).to_string()
}

/// `services/s<i>.yaml`: frontend 10.0.0.0 + i, tcp 80; backends
/// 100.0.0.0 + 16 i + j, tcp 8080 (valid addresses up to 16M services).
fn write_repo(dir: &Path, services: u32) {
    let root = dir.join("services");
    fs::create_dir_all(&root).unwrap();
    for i in 0..services {
        let mut doc = format!(
            "frontend: {{ipv4: {}, tcp: 80}}\nbackends:\n",
            ip4(0x0a00_0000 + i)
        );
        for j in 0..BACKENDS {
            doc.push_str(&format!(
                "  d{j}: {{ipv4: {}, tcp: 8080, weight: 10}}\n",
                ip4(0x6400_0000 + i * 16 + j)
            ));
        }
        fs::write(root.join(format!("s{i}.yaml")), doc).unwrap();
    }
}

/// One run of a child: wall time, user+sys CPU, peak RSS, exit code.
struct Sample {
    wall: Duration,
    cpu: Duration,
    max_rss_kb: i64,
    code: i32,
}

fn tv(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

/// Runs `bin args` with stdout to `stdout` and waits for it with `wait4`,
/// whose rusage is this child's alone.
fn run(bin: &str, args: &[String], stdout: Stdio, stderr: Stdio) -> Sample {
    let start = Instant::now();
    // Waited for below with wait4, which std's Child cannot do.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(bin)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("{bin}: {e}"));
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; std's handle is not waited on again.
    let got = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert_eq!(got, pid, "wait4: {}", std::io::Error::last_os_error());
    Sample {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        max_rss_kb: usage.ru_maxrss,
        code: if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            -1
        },
    }
}

/// The cases: a name and the arguments after the binary (`OUT` stands for
/// the saved plan's path).
fn cases(dir: &Path) -> Vec<(&'static str, Vec<String>)> {
    let config = dir.join("config").display().to_string();
    let plan = |extra: &[&str]| {
        let mut a = vec!["plan", "--config-path", &config, "--live", "empty"];
        a.extend_from_slice(extra);
        a.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let out = dir.join("plan.json").display().to_string();
    vec![
        (
            "render -o ipvsadm",
            vec![
                "render".into(),
                "--config-path".into(),
                config.clone(),
                "--output".into(),
                "ipvsadm".into(),
            ],
        ),
        (
            "render",
            vec!["render".into(), "--config-path".into(), config.clone()],
        ),
        ("plan", plan(&[])),
        ("plan -o json", plan(&["--output", "json"])),
        ("plan -o markdown", plan(&["--output", "markdown"])),
        ("plan --out FILE", plan(&["--out", &out])),
    ]
}

fn median<T: Ord + Copy>(mut v: Vec<T>) -> T {
    v.sort();
    v[v.len() / 2]
}

/// Medians of one case for one binary.
struct Medians {
    wall: Duration,
    cpu: Duration,
    rss_kb: i64,
}

fn medians(samples: &[Sample]) -> Medians {
    Medians {
        wall: median(samples.iter().map(|s| s.wall).collect()),
        cpu: median(samples.iter().map(|s| s.cpu).collect()),
        rss_kb: median(samples.iter().map(|s| s.max_rss_kb).collect()),
    }
}

/// Runs every case `runs` times, alternating the binaries within each run,
/// and prints the medians.
fn bench(bins: &[(&str, String)], services: u32, runs: usize) {
    let dir = tempfile::tempdir().unwrap();
    write_repo(&dir.path().join("config"), services);
    let cases = cases(dir.path());
    // CPU of each binary's `render` and `render -o ipvsadm`.
    let mut render_cpu = vec![[Duration::ZERO; 2]; bins.len()];
    for (name, args) in &cases {
        let mut samples: Vec<Vec<Sample>> = bins.iter().map(|_| Vec::new()).collect();
        for _ in 0..runs {
            for (b, (label, bin)) in bins.iter().enumerate() {
                // Stderr too: `saved the plan to ...` on every run.
                let s = run(bin, args, Stdio::null(), Stdio::null());
                assert_eq!(s.code, 0, "{label} {name}: exit {}", s.code);
                samples[b].push(s);
                let _ = fs::remove_file(dir.path().join("plan.json"));
            }
        }
        for (b, (label, _)) in bins.iter().enumerate() {
            let m = medians(&samples[b]);
            match *name {
                "render" => render_cpu[b][0] = m.cpu,
                "render -o ipvsadm" => render_cpu[b][1] = m.cpu,
                _ => {}
            }
            let ratio = |r: Duration| m.cpu.as_secs_f64() / r.as_secs_f64();
            println!(
                "cli {services:>6} x {BACKENDS} {name:<17} {label:<4}: wall {:8.1} ms  cpu {:8.1} ms ({:.2}x render -o ipvsadm, {:.2}x render)  peak rss {:7.1} MB",
                m.wall.as_secs_f64() * 1e3,
                m.cpu.as_secs_f64() * 1e3,
                ratio(render_cpu[b][1]),
                ratio(render_cpu[b][0]),
                m.rss_kb as f64 / 1024.0,
            );
        }
    }
}

/// `cargo test --all-targets`: a tiny repo, each case once, with its
/// stdout checked (and the saved plan).
fn smoke(bin: &str) {
    let dir = tempfile::tempdir().unwrap();
    write_repo(&dir.path().join("config"), 3);
    for (name, args) in cases(dir.path()) {
        let path = dir.path().join("stdout");
        let stdout = Stdio::from(fs::File::create(&path).unwrap());
        let s = run(bin, &args, stdout, Stdio::inherit());
        assert_eq!(s.code, 0, "{name}: exit {}", s.code);
        let out = fs::read_to_string(&path).unwrap();
        let want = match name {
            "render" => "10.0.0.2:80",
            "plan -o json" => "\"format_version\": 1",
            "plan -o markdown" => "### clusterf plan: 33 to add",
            "render -o ipvsadm" => "-a -t 10.0.0.2:80 -r 100.0.0.41:8080 -m -w 10",
            _ => "+   dest 100.0.0.41:8080 masq weight 10 (d9 from services/s2.yaml#backends.d9)",
        };
        assert!(out.contains(want), "{name}: {want:?} not in\n{out}");
        println!("cli smoke {name}: ok, {} bytes", out.len());
    }
    let saved = fs::read_to_string(dir.path().join("plan.json")).unwrap();
    assert!(saved.contains("\"add_dest\""), "{saved}");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs: Option<usize> = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok());
    let sizes: Vec<u32> = args
        .iter()
        .enumerate()
        .filter(|(i, _)| *i == 0 || args[i - 1] != "--runs")
        .filter_map(|(_, a)| a.parse().ok())
        .collect();
    let new = env!("CARGO_BIN_EXE_clusterf").to_string();
    // `cargo bench` passes --bench; `cargo test --all-targets` runs a quick
    // smoke test instead.
    if !args.iter().any(|a| a == "--bench") {
        smoke(&new);
        return;
    }
    let mut bins = Vec::new();
    if let Some(base) = std::env::var_os("CLUSTERF_BASE_BIN") {
        bins.push(("base", base.to_string_lossy().into_owned()));
    }
    bins.push(("new", new));
    let sizes = if sizes.is_empty() {
        vec![10_000, 100_000]
    } else {
        sizes
    };
    for n in sizes {
        let runs = runs.unwrap_or(if n > 50_000 { 3 } else { 5 });
        bench(&bins, n, runs);
    }
}
