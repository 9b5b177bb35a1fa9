//! `clusterf status` against a real etcd holding frontends' status records
//! (written here as the daemon will write them: a kept record and a
//! lease-bound alive key per frontend).
//!
//! Without the etcd binary these tests fail when `CI` is set and print a
//! loud SKIP otherwise.

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

fn in_sync(etcd: &Etcd) -> bool {
    let (_, stdout, _) = run(status(etcd, &[]));
    stdout
        .lines()
        .any(|l| l.starts_with("lb1 ") && l.contains("alive") && l.contains("in sync"))
}
