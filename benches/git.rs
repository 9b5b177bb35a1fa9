//! Reading a config tree of 10k service files from Git.
//!
//! Builds a real repository with the git CLI (10 000 `services/*.yaml`),
//! then times with clusterf's gix reader:
//! - cold: a new `GitSource` (open the repository, resolve HEAD, read every
//!   blob), for loose objects and after `git gc` (packed, like a fetched
//!   cache);
//! - warm re-read after a one-file commit on a kept `GitSource` (what the
//!   watch loop does);
//! - a `file://` remote: first fetch + read into an empty cache, and fetch +
//!   read after a one-file commit was pushed.
//!
//! Run: `cargo bench --bench git` (optionally `-- N` for the file count).
//! Prints one line per measurement: min / median / max over the runs.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use clusterf::source::git::{GitSource, Options};

fn git(cwd: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(cwd)
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
            "-c",
            "gc.auto=0",
        ])
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
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn service(i: usize, rev: usize) -> String {
    format!(
        "frontend: {{ipv4: 10.{}.{}.{}, tcp: 80}}\nbackends:\n  a: {{ipv4: 10.200.{}.{}, tcp: 8080, weight: {}}}\n  b: {{ipv4: 10.201.{}.{}, tcp: 8080}}\n",
        i / 65536,
        (i / 256) % 256,
        i % 256,
        (i / 256) % 256,
        i % 256,
        10 + rev,
        (i / 256) % 256,
        i % 256,
    )
}

fn stats(name: &str, mut times: Vec<Duration>) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<52} min {:>8.2} ms  median {:>8.2} ms  max {:>8.2} ms  ({} runs)",
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1]),
        times.len()
    );
}

fn opts(repo: &str) -> Options {
    Options {
        repo: repo.to_string(),
        ..Options::default()
    }
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(work.join("services")).unwrap();
    git(&work, &["init", "-q"]);
    for i in 0..n {
        std::fs::write(work.join(format!("services/svc{i:05}.yaml")), service(i, 0)).unwrap();
    }
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "many services"]);
    let path = work.display().to_string();
    println!("git config source, {n} service files");

    // Cold, loose objects (a local working repo right after commits).
    let cold = |label: &str| {
        let mut times = Vec::new();
        for _ in 0..10 {
            let t = Instant::now();
            let tree = GitSource::new(opts(&path)).unwrap().read().unwrap();
            times.push(t.elapsed());
            assert_eq!(tree.files.len(), n);
        }
        stats(label, times);
    };
    cold("cold read, loose objects");
    git(&work, &["gc", "-q", "--aggressive"]);
    cold("cold read, packed (after git gc)");

    // Warm re-read after a one-file commit, on a kept source.
    let mut source = GitSource::new(opts(&path)).unwrap();
    source.read().unwrap();
    let mut times = Vec::new();
    let mut unchanged = Vec::new();
    for rev in 1..=10 {
        let i = (rev * 7919) % n;
        std::fs::write(
            work.join(format!("services/svc{i:05}.yaml")),
            service(i, rev),
        )
        .unwrap();
        git(&work, &["commit", "-q", "-a", "-m", "one file"]);
        let t = Instant::now();
        let tree = source.read().unwrap();
        times.push(t.elapsed());
        assert_eq!(tree.files.len(), n);
        let t = Instant::now();
        source.read().unwrap();
        unchanged.push(t.elapsed());
    }
    stats("warm re-read after a one-file commit", times);
    stats("warm re-read, nothing changed", unchanged);

    // A file:// remote fetched into a cache.
    let remote = dir.path().join("remote.git");
    git(
        dir.path(),
        &["clone", "-q", "--bare", &path, remote.to_str().unwrap()],
    );
    git(
        &work,
        &["remote", "add", "origin", remote.to_str().unwrap()],
    );
    let url = format!("file://{}", remote.display());
    let mut first = Vec::new();
    for run in 0..5 {
        let mut o = opts(&url);
        o.cache_dir = Some(dir.path().join(format!("cache{run}")));
        let t = Instant::now();
        let tree = GitSource::new(o).unwrap().read().unwrap();
        first.push(t.elapsed());
        assert_eq!(tree.files.len(), n);
    }
    stats("file:// remote, first fetch + read (empty cache)", first);
    let mut o = opts(&url);
    o.cache_dir = Some(dir.path().join("cache0"));
    let mut kept = GitSource::new(o.clone()).unwrap();
    kept.read().unwrap();
    let mut new_run = Vec::new();
    let mut warm = Vec::new();
    for rev in 11..=20 {
        let push_one = |rev: usize| {
            let i = (rev * 104_729) % n;
            std::fs::write(
                work.join(format!("services/svc{i:05}.yaml")),
                service(i, rev),
            )
            .unwrap();
            git(&work, &["commit", "-q", "-a", "-m", "one file"]);
            git(&work, &["push", "-q", "origin", "main"]);
        };
        push_one(rev);
        // A new process: open the cache, fetch what is new, read all.
        let t = Instant::now();
        let mut s = GitSource::new(o.clone()).unwrap();
        s.read().unwrap();
        new_run.push(t.elapsed());
        assert!(s.last_fetch().unwrap().objects < 10);
        push_one(rev + 100);
        // The watch loop: a kept source fetches and re-reads.
        let t = Instant::now();
        kept.read().unwrap();
        warm.push(t.elapsed());
    }
    stats("file:// remote, new run after a one-file push", new_run);
    stats("file:// remote, kept source after a one-file push", warm);
}
