//! `clusterf status` against a real etcd holding frontends' status records:
//! first records written by the test itself (a kept record and a
//! lease-bound alive key per frontend), then daemons on the host
//! (`Daemon::start` with in-memory kernels, distinct frontend ids, Git
//! repositories made here) publishing their own.
//!
//! Without the etcd binary these tests fail when `CI` is set and print a
//! loud SKIP otherwise.

#[path = "support/daemon.rs"]
mod support_daemon;
use support_daemon::Sources;
#[path = "support/etcd.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clusterf::etcd::proto::PutRequest;
use clusterf::fleet::{FORMAT_VERSION, FrontendError, FrontendStatus, ProblemKind};
use support::{Etcd, TestClient};

const NEW: &str = "4f2a9c1e0b7d4f2a9c1e0b7d4f2a9c1e0b7d4f2a";
const OLD: &str = "9d0c3b2a119d0c3b2a119d0c3b2a119d0c3b2a11";

fn record(id: &str, commit: &str, applied: &str) -> FrontendStatus {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    FrontendStatus {
        format: FORMAT_VERSION,
        frontend: id.into(),
        version: "0.1.0".into(),
        config_source: "https://git.example/config.git".into(),
        commit: Some(commit.into()),
        commit_seen_ms: Some(if commit == NEW {
            now - 1_000
        } else {
            now - 90_000
        }),
        config_hash: "sha256:00".into(),
        applied: Some(applied.into()),
        last_apply_ms: Some(now - 1_000),
        last_pass_ms: Some(now - 1_000),
        services: 3,
        dests: 12,
        written_ms: now,
        ..Default::default()
    }
}

async fn publish(client: &mut TestClient, status: &FrontendStatus) {
    let key = format!("/clusterf/status/frontends/{}", status.frontend);
    client.put(key, status.to_bytes()).await.unwrap();
}

/// The alive key under a lease of its own; the lease id.
async fn alive(client: &mut TestClient, id: &str) -> i64 {
    let lease = client.0.lease_grant(60).await.unwrap().id;
    let req = PutRequest {
        key: format!("/clusterf/status/alive/{id}").into_bytes(),
        value: b"1".to_vec(),
        lease,
        ..Default::default()
    };
    client.0.put(req).await.unwrap();
    lease
}

fn status(etcd: &Etcd, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clusterf"));
    cmd.args(["status", "--etcd", &etcd.url()])
        .args(extra)
        .env("NO_COLOR", "1");
    cmd
}

fn run(mut cmd: Command) -> (i32, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn line<'a>(stdout: &'a str, id: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(&format!("{id} ")))
        .unwrap_or_else(|| panic!("no line for {id} in:\n{stdout}"))
}

#[tokio::test]
async fn status_shows_each_frontend_alive_or_dead_and_in_sync_or_behind() {
    let Some(etcd) = Etcd::start() else { return };
    let mut client = etcd.client().await;
    publish(&mut client, &record("lb1", NEW, NEW)).await;
    publish(&mut client, &record("lb2", OLD, OLD)).await;
    publish(&mut client, &record("lb3", NEW, NEW)).await;
    alive(&mut client, "lb1").await;
    alive(&mut client, "lb2").await;
    let (code, stdout, stderr) = run(status(&etcd, &[]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with("target commit 4f2a9c1e0b7d\n"),
        "{stdout}"
    );
    assert!(line(&stdout, "lb1").contains("in sync"), "{stdout}");
    assert!(line(&stdout, "lb2").contains("BEHIND"), "{stdout}");
    assert!(line(&stdout, "lb3").contains("DEAD"), "{stdout}");

    let (code, json, _) = run(status(&etcd, &["--output", "json"]));
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["version"], 1);
    let rows = v["frontends"].as_array().unwrap();
    let summary: Vec<(String, bool, String)> = rows
        .iter()
        .map(|r| {
            let id = r["frontend"].as_str().unwrap().to_string();
            (
                id,
                r["alive"].as_bool().unwrap(),
                r["sync"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("lb1".into(), true, "in_sync".into()),
            ("lb2".into(), true, "behind".into()),
            ("lb3".into(), false, "in_sync".into()),
        ]
    );
}

#[tokio::test]
async fn the_gate_names_the_laggard_on_timeout_and_opens_once_it_applies() {
    let Some(etcd) = Etcd::start() else { return };
    let mut client = etcd.client().await;
    publish(&mut client, &record("lb1", NEW, NEW)).await;
    publish(&mut client, &record("lb2", OLD, OLD)).await;
    alive(&mut client, "lb1").await;
    alive(&mut client, "lb2").await;
    let wait = ["--wait", "--expect-commit", &NEW[..7], "--every", "100ms"];

    let mut timed_out = status(&etcd, &wait);
    timed_out.args(["--timeout", "1s"]);
    let (code, _, stderr) = run(timed_out);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("timed out after 1s waiting for lb2: applied 9d0c3b2a119d"),
        "{stderr}"
    );

    let mut waiting = status(&etcd, &wait);
    waiting
        .args(["--timeout", "60s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = waiting.spawn().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    publish(&mut client, &record("lb2", NEW, NEW)).await;
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(stderr.contains("status: waiting: lb2: applied"), "{stderr}");
    assert!(
        stderr.contains("every alive frontend applied the commit"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_gate_fails_at_once_when_a_frontend_reports_an_error_for_the_commit() {
    let Some(etcd) = Etcd::start() else { return };
    let mut client = etcd.client().await;
    let mut broken = record("lb2", NEW, OLD);
    broken.error = Some(FrontendError {
        kind: ProblemKind::ValidationFailed,
        message: "services/web.yaml:3:5: unknown key \"prot\"".into(),
        diagnostics: vec![],
    });
    publish(&mut client, &record("lb1", NEW, NEW)).await;
    publish(&mut client, &broken).await;
    alive(&mut client, "lb1").await;
    alive(&mut client, "lb2").await;
    let started = Instant::now();
    let (code, stdout, stderr) = run(status(
        &etcd,
        &["--wait", "--expect-commit", NEW, "--timeout", "60s"],
    ));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "it did not wait for the timeout"
    );
    assert!(
        stderr.contains("failed: lb2: validation failed: services/web.yaml:3:5"),
        "{stderr}"
    );
    assert!(
        line(&stdout, "lb2").contains("validation failed"),
        "{stdout}"
    );
}

#[tokio::test]
async fn a_frontend_whose_lease_ends_shows_dead_and_keeps_its_record() {
    let Some(etcd) = Etcd::start() else { return };
    let mut client = etcd.client().await;
    publish(&mut client, &record("lb1", NEW, NEW)).await;
    let lease = alive(&mut client, "lb1").await;
    assert!(line(&run(status(&etcd, &[])).1, "lb1").contains("alive"));
    // What a dead host's lease does when its TTL runs out, without waiting.
    client.lease_revoke(lease).await.unwrap();
    let (_, stdout, _) = run(status(&etcd, &[]));
    assert!(line(&stdout, "lb1").contains("DEAD"), "{stdout}");
    assert!(line(&stdout, "lb1").contains("4f2a9c1e0b7d"), "{stdout}");
    // With nobody alive the gate waits: a dead fleet is not a rollout.
    let (code, _, stderr) = run(status(
        &etcd,
        &["--wait", "--expect-commit", NEW, "--timeout", "300ms"],
    ));
    assert_eq!(code, 1);
    assert!(
        stderr.contains("0 of at least 1 frontends alive"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_publisher_writes_the_record_and_survives_an_etcd_restart() {
    use clusterf::daemon::status::{StatusPublisher, StatusTuning};
    let Some(mut etcd) = Etcd::start() else {
        return;
    };
    let settings = clusterf::source::etcd::Settings::new(vec![etcd.url()], "/clusterf").unwrap();
    let tuning = StatusTuning {
        ttl: std::time::Duration::from_secs(5),
        heartbeat: Duration::from_millis(500),
        min_gap: Duration::from_millis(200),
    };
    let publisher = StatusPublisher::start(settings, tuning);
    // A burst of updates: the last one is what etcd ends up holding.
    for applied in [OLD, OLD, NEW] {
        publisher.update(record("lb1", NEW, applied));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !in_sync(&etcd) {
        assert!(Instant::now() < deadline, "the record never arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // etcd goes away: updates return at once; it comes back: the record is
    // written again (the restart wiped nothing, so look at the timestamp).
    etcd.stop();
    let started = Instant::now();
    publisher.update(record("lb1", NEW, NEW));
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "update blocked"
    );
    etcd.restart();
    let mut client = etcd.client().await;
    let key = "/clusterf/status/frontends/lb1";
    let before = client.get(key).await.unwrap().kvs[0].mod_revision;
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let now = client.get(key).await.unwrap().kvs[0].mod_revision;
        if now > before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not written again after the restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(in_sync(&etcd));
}

#[tokio::test]
async fn the_publisher_writes_a_new_standing_at_once_and_the_rest_with_the_heartbeat() {
    use clusterf::daemon::status::{StatusPublisher, StatusTuning};
    let Some(etcd) = Etcd::start() else { return };
    let settings = clusterf::source::etcd::Settings::new(vec![etcd.url()], "/clusterf").unwrap();
    let heartbeat = Duration::from_secs(3);
    let tuning = StatusTuning {
        ttl: Duration::from_secs(5),
        heartbeat,
        min_gap: Duration::from_millis(50),
    };
    let publisher = StatusPublisher::start(settings, tuning);
    let mut client = etcd.client().await;
    let key = "/clusterf/status/frontends/lb1";
    let mut stored = async || {
        let kvs = client.get(key).await.unwrap().kvs;
        kvs.first()
            .map(|kv| FrontendStatus::parse(&kv.value).unwrap())
    };
    let first = record("lb1", NEW, OLD);
    publisher.update(first.clone());
    let deadline = Instant::now() + Duration::from_secs(5);
    while stored().await.is_none_or(|s| s.applied != first.applied) {
        assert!(Instant::now() < deadline, "the first record never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let written = Instant::now();
    // Only counts and times change: the heartbeat writes it.
    let mut busier = first.clone();
    busier.dests = 99;
    busier.last_pass_ms = busier.last_pass_ms.map(|t| t + 500);
    publisher.update(busier);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        stored().await.unwrap().dests,
        first.dests,
        "written before the heartbeat"
    );
    let deadline = written + heartbeat + Duration::from_secs(3);
    while stored().await.unwrap().dests != 99 {
        assert!(
            Instant::now() < deadline,
            "the heartbeat did not write the newest record"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // What was applied changes: written at once.
    let changed = Instant::now();
    publisher.update(record("lb1", NEW, NEW));
    while stored().await.unwrap().applied.as_deref() != Some(NEW) {
        assert!(
            changed.elapsed() < Duration::from_secs(2),
            "a new standing waited for the heartbeat"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn in_sync(etcd: &Etcd) -> bool {
    let (_, stdout, _) = run(status(etcd, &[]));
    stdout
        .lines()
        .any(|l| l.starts_with("lb1 ") && l.contains("alive") && l.contains("in sync"))
}

// --- daemons publishing their own records ---------------------------------------

use clap::Parser;
use clusterf::cli::watch::{WatchArgs, resolve};
use clusterf::daemon::options::FleetOptions;
use clusterf::daemon::{Daemon, MemoryKernel, Options};
use clusterf::plan::Ownership;
use clusterf::source::etcd::watch::Tuning;
use std::path::Path;

/// A daemon's options: `source` args (config and overlay flags), quick
/// timings, the frontend id, `own` as `--own`, a status TTL of `ttl`.
fn daemon_options(etcd: &Etcd, source: &[&str], id: &str, own: &[&str], ttl: Duration) -> Options {
    let mut argv = vec!["t", "--etcd"];
    let url = etcd.url();
    argv.push(&url);
    argv.extend(source);
    let s = Sources::try_parse_from(argv).expect("source args");
    let watch = WatchArgs {
        poll: Duration::from_millis(100),
        resync: Duration::from_millis(500),
        frontend_id: Some(id.into()),
        status_ttl: ttl,
        ..WatchArgs::default()
    };
    let mut opts = resolve(&s.config, &s.overlay, Default::default(), &watch).expect("options");
    let own: Vec<String> = own.iter().map(|s| s.to_string()).collect();
    opts.ownership = Ownership::parse(&own, &[]).unwrap();
    let fleet: &mut FleetOptions = opts.fleet.as_mut().expect("published with an etcd overlay");
    assert_eq!(fleet.frontend_id, id);
    fleet.min_gap = Duration::from_millis(50);
    opts.etcd_tuning = Tuning {
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        progress_interval: Duration::from_secs(1),
        stall_timeout: Duration::from_secs(3),
        before_watch: None,
    };
    opts.backoff_initial = Duration::from_millis(100);
    opts
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.net"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Writes `files` (path, content; empty content: delete) into the
/// repository and commits them; the commit id.
fn commit(repo: &Path, files: &[(&str, &str)], message: &str) -> String {
    for (path, content) in files {
        let p = repo.join(path);
        if content.is_empty() {
            std::fs::remove_file(&p).unwrap();
        } else {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, content).unwrap();
        }
    }
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", message]);
    git(repo, &["rev-parse", "HEAD"])
}

fn frontend(ip: &str) -> String {
    format!(r#"{{"ipv4": "{ip}", "tcp": 80}}"#)
}

fn backend(ip: &str) -> String {
    format!(r#"{{"ipv4": "{ip}", "tcp": 8080}}"#)
}

/// The `clusterf status` command run off the runtime's threads (the
/// daemons need them).
async fn run_async(cmd: Command) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || run(cmd)).await.unwrap()
}

/// `clusterf status --output json`, the frontends by id.
async fn fleet_json(etcd: &Etcd) -> serde_json::Map<String, serde_json::Value> {
    let (code, out, err) = run_async(status(etcd, &["--output", "json"])).await;
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["frontends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["frontend"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

async fn eventually<F, Fut>(limit: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !cond().await {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn have_git() -> bool {
    if support::which("git").is_none() {
        support::missing("git (to make a test repository)");
        return false;
    }
    true
}

/// Site a (two frontends, owning 10.1.0.0/16) and site b (one, owning
/// 10.2.0.0/16) read one repository, each its own subdirectory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemons_publish_their_status_the_gate_opens_names_a_broken_one_and_a_stopped_one_dies() {
    let Some(etcd) = Etcd::start() else { return };
    if !have_git() {
        return;
    }
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path();
    git(r, &["init", "-q", "-b", "main"]);
    let c1 = commit(
        r,
        &[
            ("site-a/services/web/frontend", &frontend("10.1.0.1")),
            ("site-a/services/web/backends/a", &backend("10.1.1.1")),
            ("site-a/services/web/backends/b", &backend("10.1.1.2")),
            ("site-b/services/api/frontend", &frontend("10.2.0.1")),
            ("site-b/services/api/backends/a", &backend("10.2.1.1")),
        ],
        "two sites",
    );
    let repo_arg = r.display().to_string();
    let site = |sub: &'static str| {
        ["--config-repo", &repo_arg, "--ref", "main", "--subdir", sub].map(String::from)
    };
    let ttl = Duration::from_secs(3);
    let mut daemons = Vec::new();
    for (id, sub, own) in [
        ("lb-a1", "site-a", "10.1.0.0/16"),
        ("lb-a2", "site-a", "10.1.0.0/16"),
        ("lb-b", "site-b", "10.2.0.0/16"),
    ] {
        let args = site(sub);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let kernel = MemoryKernel::default();
        let opts = daemon_options(&etcd, &args, id, &[own], ttl);
        let daemon = Daemon::start(opts, Box::new(kernel.clone())).await.unwrap();
        daemons.push((id, daemon, kernel));
    }

    // All converge: the gate opens.
    let gate = |commit: &str, timeout: &str| {
        status(
            &etcd,
            &[
                "--wait",
                "--expect-commit",
                commit,
                "--timeout",
                timeout,
                "--every",
                "100ms",
                "--min-frontends",
                "3",
            ],
        )
    };
    let (code, stdout, stderr) = run_async(gate(&c1, "30s")).await;
    assert_eq!(code, 0, "{stderr}\n{stdout}");
    for (id, own) in [
        ("lb-a1", "10.1.0.0/16"),
        ("lb-a2", "10.1.0.0/16"),
        ("lb-b", "10.2.0.0/16"),
    ] {
        assert!(line(&stdout, id).contains("in sync"), "{stdout}");
        assert!(line(&stdout, id).contains(own), "{stdout}");
    }
    let fleet = fleet_json(&etcd).await;
    let record = |id: &str| fleet[id]["status"].clone();
    assert_eq!(record("lb-a1")["own"], serde_json::json!(["10.1.0.0/16"]));
    assert_eq!(record("lb-b")["own"], serde_json::json!(["10.2.0.0/16"]));
    assert_eq!(
        (
            record("lb-a2")["services"].as_u64(),
            record("lb-a2")["dests"].as_u64()
        ),
        (Some(1), Some(2))
    );
    assert_eq!(
        (
            record("lb-b")["services"].as_u64(),
            record("lb-b")["dests"].as_u64()
        ),
        (Some(1), Some(1))
    );
    for id in ["lb-a1", "lb-a2", "lb-b"] {
        let rec = record(id);
        assert_eq!(rec["commit"], c1.as_str(), "{rec}");
        assert_eq!(rec["applied"], c1.as_str(), "{rec}");
        assert_eq!(
            rec["version"],
            env!("CLUSTERF_VERSION"),
            "the version as --version says it"
        );
        assert!(rec["overlay_revision"].as_i64().is_some(), "{rec}");
        assert!(
            rec["applied_desired_hash"]
                .as_str()
                .unwrap()
                .starts_with("sha256:"),
            "{rec}"
        );
        assert!(
            rec["config_source"]
                .as_str()
                .unwrap()
                .ends_with(if id == "lb-b" {
                    "@main:site-b"
                } else {
                    "@main:site-a"
                }),
            "{rec}"
        );
    }
    // Same site, same inputs: the same desired state.
    assert_eq!(
        record("lb-a1")["applied_desired_hash"],
        record("lb-a2")["applied_desired_hash"]
    );
    assert_ne!(
        record("lb-a1")["applied_desired_hash"],
        record("lb-b")["applied_desired_hash"]
    );

    // A commit that breaks site b: site a applies it, lb-b keeps its
    // kernel (fail static) and the gate names it at once.
    let before_b = daemons[2].2.table();
    let c2 = commit(
        r,
        &[
            ("site-a/services/web/backends/c", &backend("10.1.1.3")),
            (
                "site-b/services/api/frontend",
                r#"{"ipv4": "10.2.0.1", "tcp": 99999}"#,
            ),
        ],
        "break site b",
    );
    let started = Instant::now();
    let (code, stdout, stderr) = run_async(gate(&c2, "60s")).await;
    assert_eq!(code, 1, "{stderr}\n{stdout}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "it waited for the timeout"
    );
    assert!(
        stderr.contains("failed: lb-b: validation failed: invalid config at commit"),
        "{stderr}"
    );
    assert!(
        line(&stdout, "lb-b").contains("validation failed"),
        "{stdout}"
    );
    assert_eq!(
        daemons[2].2.table(),
        before_b,
        "the broken config changed the kernel"
    );
    eventually(
        Duration::from_secs(20),
        "site a on the new commit",
        || async {
            let fleet = fleet_json(&etcd).await;
            ["lb-a1", "lb-a2"]
                .iter()
                .all(|id| fleet[*id]["status"]["applied"] == c2.as_str())
        },
    )
    .await;
    let fleet = fleet_json(&etcd).await;
    let b = &fleet["lb-b"]["status"];
    assert_eq!(b["commit"], c2.as_str(), "{b}");
    assert_eq!(b["applied"], c1.as_str(), "{b}");
    assert_eq!(b["error"]["kind"], "validation_failed", "{b}");
    let diag = b["error"]["diagnostics"][0].as_str().unwrap();
    assert!(diag.starts_with("site-b/services/api/frontend"), "{diag}");
    assert_eq!(fleet["lb-a1"]["status"]["dests"], 3);

    // lb-a2 stops: dead once its lease runs out, its last record kept.
    let (_, a2, _) = daemons.remove(1);
    a2.stop().await.unwrap();
    let stopped = Instant::now();
    eventually(ttl + Duration::from_secs(10), "lb-a2 dead", || async {
        let (_, stdout, _) = run_async(status(&etcd, &[])).await;
        line(&stdout, "lb-a2").contains("DEAD")
    })
    .await;
    let dead_after = stopped.elapsed();
    let (_, stdout, _) = run_async(status(&etcd, &[])).await;
    assert!(line(&stdout, "lb-a2").contains(&c2[..12]), "{stdout}");
    assert!(line(&stdout, "lb-a1").contains("alive"), "{stdout}");
    eprintln!("lb-a2 showed dead {dead_after:?} after it stopped (TTL {ttl:?})");
    for (_, d, _) in daemons {
        d.stop().await.unwrap();
    }
}

/// etcd restarts under two publishing daemons: no pass fails because of
/// the status, and the records are written again once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_restart_fails_no_pass_and_the_status_recovers() {
    let Some(mut etcd) = Etcd::start() else {
        return;
    };
    if !have_git() {
        return;
    }
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path();
    git(r, &["init", "-q", "-b", "main"]);
    let c1 = commit(
        r,
        &[
            ("services/web/frontend", &frontend("10.1.0.1")),
            ("services/web/backends/a", &backend("10.1.1.1")),
        ],
        "web",
    );
    let repo_arg = r.display().to_string();
    let (mut daemons, mut kernels) = (Vec::new(), Vec::new());
    for id in ["lb1", "lb2"] {
        let opts = daemon_options(
            &etcd,
            &["--config-repo", &repo_arg],
            id,
            &[],
            Duration::from_secs(5),
        );
        let kernel = MemoryKernel::default();
        daemons.push(Daemon::start(opts, Box::new(kernel.clone())).await.unwrap());
        kernels.push(kernel);
    }
    let gate = status(
        &etcd,
        &[
            "--wait",
            "--expect-commit",
            &c1,
            "--timeout",
            "30s",
            "--min-frontends",
            "2",
            "--every",
            "100ms",
        ],
    );
    let (code, _, stderr) = run_async(gate).await;
    assert_eq!(code, 0, "{stderr}");

    // Someone changes lb2's table by hand: its resync corrects it, and its
    // record counts the correction.
    {
        let mut live = kernels[1].live.lock().unwrap();
        let svc = live.state.services.values_mut().next().unwrap();
        svc.dests.values_mut().next().unwrap().attrs.weight = 99;
    }
    eventually(
        Duration::from_secs(10),
        "lb2's drift correction",
        || async { fleet_json(&etcd).await["lb2"]["status"]["drift_corrections"] == 1 },
    )
    .await;
    let fleet = fleet_json(&etcd).await;
    let lb1 = &fleet["lb1"]["status"];
    assert_eq!(lb1["drift_corrections"], 0, "{lb1}");
    assert_eq!(lb1["drains"], 0, "{lb1}");
    assert!(
        lb1["last_pass_ms"].as_u64() >= lb1["last_apply_ms"].as_u64(),
        "{lb1}"
    );
    assert_eq!(lb1["config_source"], repo_arg.as_str(), "{lb1}");
    assert!(lb1.get("own").is_none(), "the whole table: {lb1}");

    etcd.stop();
    let passes: Vec<u64> = daemons.iter().map(|d| d.status().passes_ok).collect();
    // Resyncs every 500 ms: a few passes while etcd is away.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (d, before) in daemons.iter().zip(&passes) {
        let s = d.status();
        assert!(s.passes_ok >= before + 2, "{s:?}");
        assert_eq!(s.passes_failed, 0, "{s:?}");
    }
    etcd.restart();
    let back = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    eventually(
        Duration::from_secs(40),
        "both records written again and alive",
        || async {
            let fleet = fleet_json(&etcd).await;
            ["lb1", "lb2"].iter().all(|id| {
                let row = &fleet[*id];
                row["alive"] == true
                    && row["status"]["written_ms"]
                        .as_u64()
                        .is_some_and(|w| w > back)
            })
        },
    )
    .await;
    let (code, _, stderr) = run_async(status(
        &etcd,
        &[
            "--wait",
            "--expect-commit",
            &c1,
            "--timeout",
            "10s",
            "--min-frontends",
            "2",
        ],
    ))
    .await;
    assert_eq!(code, 0, "{stderr}");
    for d in daemons {
        assert_eq!(d.status().passes_failed, 0);
        d.stop().await.unwrap();
    }
}

/// The overlay reader skips `<prefix>/status/`: neither this daemon's own
/// record nor another frontend's is an overlay warning or part of the
/// render.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_records_are_no_part_of_the_overlay() {
    let Some(etcd) = Etcd::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("services/web");
    std::fs::create_dir_all(&web).unwrap();
    std::fs::write(web.join("frontend"), frontend("10.1.0.1")).unwrap();
    let mut client = etcd.client().await;
    client
        .put("/clusterf/services/web/backends/a", backend("10.1.1.1"))
        .await
        .unwrap();
    publish(&mut client, &record("lb9", NEW, NEW)).await;
    client
        .put("/clusterf/status/junk", "not a record")
        .await
        .unwrap();

    let path = dir.path().display().to_string();
    let opts = daemon_options(
        &etcd,
        &["--config-path", &path],
        "lb1",
        &[],
        Duration::from_secs(5),
    );
    let kernel = MemoryKernel::default();
    let daemon = Daemon::start(opts, Box::new(kernel.clone())).await.unwrap();
    eventually(Duration::from_secs(20), "lb1's own record", || async {
        fleet_json(&etcd)
            .await
            .get("lb1")
            .is_some_and(|r| r["status"]["applied"].is_string())
    })
    .await;
    // Another frontend writes while this one runs (a watch event).
    publish(&mut client, &record("lb9", NEW, NEW)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let text = daemon.metrics().render(0.0);
    for severity in ["warning", "error"] {
        let series = format!("clusterf_diagnostics{{source=\"etcd\",severity=\"{severity}\"}}");
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix(series.as_str())?.trim().parse::<f64>().ok());
        assert_eq!(value, Some(0.0), "{series} in\n{text}");
    }
    assert_eq!(kernel.table().services.len(), 1);
    assert_eq!(kernel.table().dest_count(), 1);
    assert_eq!(daemon.status().passes_failed, 0);
    daemon.stop().await.unwrap();

    // The one-shot read says the same: no warning, the same render.
    let out = Command::new(env!("CARGO_BIN_EXE_clusterf"))
        .args([
            "render",
            "--config-path",
            &path,
            "--etcd",
            &etcd.url(),
            "--output",
            "ipvsadm",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("status"), "{stderr}");
    let rules = String::from_utf8_lossy(&out.stdout);
    assert_eq!(rules.lines().count(), 2, "{rules}");
}

// --- the VM scenario ------------------------------------------------------------

/// A real-kernel daemon publishes its status and `clusterf status` agrees
/// with `ipvsadm -S -n` on the counts, with etcd running inside the qemu
/// guest: tests/vm/scenarios/fleet-status.sh (its header says what it
/// checks). Fails in CI without qemu, the guest or etcd.
#[test]
fn fleet_status_scenario_in_the_vm() {
    support::vm_scenario_with_etcd("fleet-status", env!("CARGO_BIN_EXE_clusterf"));
}
