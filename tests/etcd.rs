//! Integration tests of the etcd overlay against a real etcd server
//! (started per test on free loopback ports; see `support/etcd.rs`).
//!
//! Without the etcd binary these tests fail when `CI` is set and print a
//! loud SKIP otherwise.

#[path = "support/etcd.rs"]
mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clusterf::source::etcd::watch::{OverlayWatch, Tuning};
use clusterf::source::etcd::{self as etcd_source, Settings};
use support::Etcd;

const PREFIX: &str = "/clusterf";
const FRONTEND: &str = r#"{"ipv4": "10.107.107.107", "tcp": 1337}"#;

/// One `clusterf` run.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn clusterf(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clusterf"));
    cmd.args(args)
        .env("NO_COLOR", "1")
        .env_remove("CLUSTERF_ETCD_PASSWORD");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run clusterf");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A config repo (a plain directory) with the README's frontend.
fn config_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    fs::create_dir_all(repo.join("services/test")).unwrap();
    fs::write(repo.join("services/test/frontend"), FRONTEND).unwrap();
    repo
}

fn render_ipvsadm(repo: &Path, etcd: &Etcd, extra: &[&str]) -> Run {
    let url = etcd.url();
    let mut args = vec![
        "render",
        "--config-path",
        repo.to_str().unwrap(),
        "--etcd",
        &url,
        "--output",
        "ipvsadm",
    ];
    args.extend_from_slice(extra);
    clusterf(&args, &[])
}

#[track_caller]
fn ok(run: Run) -> Run {
    assert_eq!(run.code, 0, "clusterf failed: {run:#?}");
    run
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Polls `cond` until it holds, at most `limit`.
async fn eventually(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The README walk-through, with the frontend in the repo and the backends
/// published in etcd through `clusterf etcd put-backend`/`del-backend`.
#[test]
fn readme_walkthrough_through_etcd() {
    let Some(etcd) = Etcd::start() else { return };
    let repo = config_repo(&etcd.scratch());
    let url = etcd.url();
    let put = |name: &str, ip: &str, port: &str| {
        ok(clusterf(
            &[
                "etcd",
                "put-backend",
                "--etcd",
                &url,
                "--service",
                "test",
                "--name",
                name,
                "--ipv4",
                ip,
                "--tcp",
                port,
            ],
            &[],
        ))
    };
    let service = "-A -t 10.107.107.107:1337 -s wlc\n";

    let run = ok(render_ipvsadm(&repo, &etcd, &[]));
    assert_eq!(run.stdout, service);

    let run = put("test3-1", "10.3.107.1", "1337");
    assert!(
        run.stderr.contains(
            r#"put /clusterf/services/test/backends/test3-1 = {"ipv4":"10.3.107.1","tcp":1337}"#
        ),
        "{run:#?}"
    );
    let run = ok(render_ipvsadm(&repo, &etcd, &[]));
    assert_eq!(
        run.stdout,
        format!("{service}-a -t 10.107.107.107:1337 -r 10.3.107.1:1337 -m -w 10\n")
    );

    put("test3-2", "10.3.107.2", "1337");
    let run = ok(render_ipvsadm(&repo, &etcd, &[]));
    assert_eq!(
        run.stdout,
        format!(
            "{service}-a -t 10.107.107.107:1337 -r 10.3.107.1:1337 -m -w 10\n\
             -a -t 10.107.107.107:1337 -r 10.3.107.2:1337 -m -w 10\n"
        )
    );

    // Change a port.
    put("test3-2", "10.3.107.2", "1338");
    let run = ok(render_ipvsadm(&repo, &etcd, &[]));
    assert_eq!(
        run.stdout,
        format!(
            "{service}-a -t 10.107.107.107:1337 -r 10.3.107.1:1337 -m -w 10\n\
             -a -t 10.107.107.107:1337 -r 10.3.107.2:1338 -m -w 10\n"
        )
    );

    // Delete: the repo still defines the service, without dests.
    for name in ["test3-1", "test3-2"] {
        ok(clusterf(
            &[
                "etcd",
                "del-backend",
                "--etcd",
                &url,
                "--service",
                "test",
                "--name",
                name,
            ],
            &[],
        ));
    }
    let run = ok(render_ipvsadm(&repo, &etcd, &[]));
    assert_eq!(run.stdout, service);
    let run = ok(render_ipvsadm(&repo, &etcd, &["--elide-empty"]));
    assert_eq!(run.stdout, "");

    // Deleting what is not there is an error naming the key.
    let run = clusterf(
        &[
            "etcd",
            "del-backend",
            "--etcd",
            &url,
            "--service",
            "test",
            "--name",
            "test3-1",
        ],
        &[],
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("/clusterf/services/test/backends/test3-1: no such backend"),
        "{run:#?}"
    );
}

/// put-backend refuses values clusterf would skip, and writes weights.
#[test]
fn put_backend_validates_and_writes_weight() {
    let Some(etcd) = Etcd::start() else { return };
    let url = etcd.url();
    let run = clusterf(
        &[
            "etcd",
            "put-backend",
            "--etcd",
            &url,
            "--service",
            "test",
            "--name",
            "a",
            "--tcp",
            "80",
        ],
        &[],
    );
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("needs an address"), "{run:#?}");
    let run = clusterf(
        &[
            "etcd",
            "put-backend",
            "--etcd",
            &url,
            "--service",
            "te/st",
            "--name",
            "a",
            "--ipv4",
            "10.0.0.1",
        ],
        &[],
    );
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("--service \"te/st\""), "{run:#?}");
    let run = clusterf(
        &[
            "etcd",
            "put-backend",
            "--etcd",
            &url,
            "--service",
            "test",
            "--name",
            ".a",
            "--ipv4",
            "10.0.0.1",
        ],
        &[],
    );
    assert_eq!(run.code, 1, "{run:#?}");
    let run = clusterf(
        &[
            "etcd",
            "put-backend",
            "--etcd",
            &url,
            "--service",
            "test",
            "--name",
            "a",
            "--ipv4",
            "10.0.0.1",
            "--weight",
            "70000",
        ],
        &[],
    );
    assert_eq!(run.code, 1, "{run:#?}");
    ok(clusterf(
        &[
            "etcd",
            "put-backend",
            "--etcd",
            &url,
            "--service",
            "test",
            "--name",
            "a",
            "--ipv4",
            "10.0.0.1",
            "--ipv6",
            "2001:db8::1",
            "--tcp",
            "80",
            "--udp",
            "53",
            "--weight",
            "0",
        ],
        &[],
    ));
    let dump = ok(clusterf(&["etcd", "dump", "--etcd", &url], &[]));
    let v: serde_json::Value = serde_json::from_str(&dump.stdout).unwrap();
    assert_eq!(
        v["keys"]["services/test/backends/a"],
        r#"{"ipv4":"10.0.0.1","ipv6":"2001:db8::1","tcp":80,"udp":53,"weight":0}"#
    );
    assert!(
        dump.stderr
            .contains("1 backends in 1 services, 0 routes, 0 skipped"),
        "{dump:#?}"
    );
}

/// Routes published in etcd apply to backends; --filter-etcd-routes
/// ignores them.
#[test]
fn routes_from_etcd_and_filter_etcd_routes() {
    let Some(etcd) = Etcd::start() else { return };
    let repo = config_repo(&etcd.scratch());
    block_on(async {
        let mut c = etcd.client().await;
        c.put(
            "/clusterf/services/test/backends/test3-1",
            r#"{"ipv4": "10.3.107.1", "tcp": 1337}"#,
        )
        .await
        .unwrap();
        c.put(
            "/clusterf/services/test/backends/test6-1",
            r#"{"ipv4": "10.6.107.1", "tcp": 8080}"#,
        )
        .await
        .unwrap();
        c.put(
            "/clusterf/routes/test3",
            r#"{"Prefix4":"10.3.107.0/24","IpvsMethod":"droute"}"#,
        )
        .await
        .unwrap();
        c.put(
            "/clusterf/routes/test6",
            r#"{"Prefix4":"10.6.107.0/24","Gateway4":"10.107.107.6","IpvsMethod":"droute"}"#,
        )
        .await
        .unwrap();
    });
    let routed = ok(render_ipvsadm(&repo, &etcd, &[]));
    assert_eq!(
        routed.stdout,
        "-A -t 10.107.107.107:1337 -s wlc\n\
         -a -t 10.107.107.107:1337 -r 10.3.107.1:1337 -g -w 10\n\
         -a -t 10.107.107.107:1337 -r 10.107.107.6:1337 -g -w 10\n",
        "{routed:#?}"
    );
    let filtered = ok(render_ipvsadm(&repo, &etcd, &["--filter-etcd-routes"]));
    assert_eq!(
        filtered.stdout,
        "-A -t 10.107.107.107:1337 -s wlc\n\
         -a -t 10.107.107.107:1337 -r 10.3.107.1:1337 -m -w 10\n\
         -a -t 10.107.107.107:1337 -r 10.6.107.1:8080 -m -w 10\n",
        "{filtered:#?}"
    );
}

/// One bad publisher must not take down every service: malformed keys and
/// values are skipped with a warning naming the key, and counted.
#[test]
fn malformed_values_are_skipped_with_warnings() {
    let Some(etcd) = Etcd::start() else { return };
    let repo = config_repo(&etcd.scratch());
    block_on(async {
        let mut c = etcd.client().await;
        for (k, v) in [
            (
                "services/test/backends/good",
                r#"{"ipv4": "10.3.107.1", "tcp": 1337}"#,
            ),
            ("services/test/backends/not-json", "not json {"),
            (
                "services/test/backends/bad-ip",
                r#"{"ipv4": "10.3.107.300", "tcp": 1337}"#,
            ),
            (
                "services/test/backends/bad-port",
                r#"{"ipv4": "10.3.107.3", "tcp": 70000}"#,
            ),
            ("routes/bad", r#"{"Prefix4": "nope", "IpvsMethod": "masq"}"#),
            ("services/test/.hidden/x", "ignored silently"),
        ] {
            c.put(format!("{PREFIX}/{k}"), v).await.unwrap();
        }
        c.put(b"/clusterf/services/test/backends/\xff".to_vec(), "{}")
            .await
            .unwrap();
        c.put("/clusterf/services//backends/x", "{}").await.unwrap();
    });
    let run = ok(render_ipvsadm(&repo, &etcd, &[]));
    assert_eq!(
        run.stdout,
        "-A -t 10.107.107.107:1337 -s wlc\n-a -t 10.107.107.107:1337 -r 10.3.107.1:1337 -m -w 10\n"
    );
    for key in [
        "services/test/backends/not-json: skipped",
        "services/test/backends/bad-ip: skipped",
        "services/test/backends/bad-port: skipped",
        "routes/bad: skipped",
        "services/test/backends/\u{fffd}: cannot read: key is not valid UTF-8",
        "services//backends/x: cannot read: key has an empty path component",
    ] {
        assert!(
            run.stderr
                .lines()
                .any(|l| l.starts_with("warning: ") && l.ends_with(key)),
            "no warning {key:?} in {run:#?}"
        );
    }
    assert!(!run.stderr.contains("hidden"), "{run:#?}");
    let dump = ok(clusterf(&["etcd", "dump", "--etcd", &etcd.url()], &[]));
    assert!(
        dump.stderr
            .contains("1 backends in 1 services, 0 routes, 6 skipped"),
        "{dump:#?}"
    );
}

/// `--overlay-path DIR` and `--etcd` render identically for identical
/// content, and `etcd dump --output tree DIR` writes such a DIR.
#[test]
fn overlay_path_and_etcd_render_identically() {
    let Some(etcd) = Etcd::start() else { return };
    let scratch = etcd.scratch();
    let repo = config_repo(&scratch);
    fs::create_dir_all(repo.join("services/web")).unwrap();
    fs::write(
        repo.join("services/web/frontend"),
        r#"{"ipv4": "10.107.107.108", "ipv6": "2001:db8::108", "tcp": 80, "udp": 80}"#,
    )
    .unwrap();
    let content = [
        (
            "services/test/backends/test3-1",
            r#"{"ipv4": "10.3.107.1", "tcp": 1337}"#,
        ),
        (
            "services/test/backends/test3-2",
            r#"{"ipv4": "10.3.107.2", "tcp": 1338, "weight": 20}"#,
        ),
        (
            "services/test/backends/test6-1",
            r#"{"ipv4": "10.6.107.1", "tcp": 1337}"#,
        ),
        (
            "services/web/backends/w1",
            r#"{"ipv4": "10.3.107.5", "ipv6": "2001:db8::5", "tcp": 8080, "udp": 8053}"#,
        ),
        ("services/web/backends/broken", r#"{"ipv4": 5}"#),
        (
            "services/nofrontend/backends/x",
            r#"{"ipv4": "10.3.107.9", "tcp": 1}"#,
        ),
        ("services/test/frontend", FRONTEND),
        (
            "routes/test6",
            r#"{"Prefix4":"10.6.107.0/24","Gateway4":"10.107.107.6","IpvsMethod":"droute"}"#,
        ),
        ("routes/filtered", r#"{"Prefix4":"10.3.107.2/32"}"#),
        ("stray", "x"),
    ];
    let dir = scratch.join("overlay");
    for (k, v) in content {
        let p = dir.join(k);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, v).unwrap();
    }
    fs::create_dir_all(dir.join(".git")).unwrap();
    fs::write(dir.join(".git/HEAD"), "x").unwrap();
    block_on(async {
        let mut c = etcd.client().await;
        for (k, v) in content {
            c.put(format!("{PREFIX}/{k}"), v).await.unwrap();
        }
        c.put("/clusterf/.git/HEAD", "x").await.unwrap();
        // Outside the prefix: not part of the tree.
        c.put("/clusterfoo/services/test/backends/x", "x")
            .await
            .unwrap();
    });
    let url = etcd.url();
    let dumped = scratch.join("dumped");
    ok(clusterf(
        &[
            "etcd",
            "dump",
            "--etcd",
            &url,
            "--output",
            "tree",
            dumped.to_str().unwrap(),
        ],
        &[],
    ));
    for output in ["ipvsadm", "json", "yaml"] {
        for filter in [None, Some("--filter-etcd-routes")] {
            let mut base = vec![
                "render",
                "--config-path",
                repo.to_str().unwrap(),
                "--output",
                output,
            ];
            base.extend(filter);
            let with = |extra: &[&str]| {
                let mut a = base.clone();
                a.extend_from_slice(extra);
                clusterf(&a, &[])
            };
            let from_etcd = with(&["--etcd", &url]);
            let from_dir = with(&["--overlay-path", dir.to_str().unwrap()]);
            let from_dump = with(&["--overlay-path", dumped.to_str().unwrap()]);
            assert_eq!(from_etcd.code, 0, "{from_etcd:#?}");
            // The etcd route via a gateway applies unless filtered.
            assert_eq!(
                from_etcd.stdout.contains("-r 10.107.107.6:1337 -g"),
                filter.is_none() && output == "ipvsadm",
                "{from_etcd:#?}"
            );
            assert!(from_etcd.stderr.contains("services/web/backends/broken"));
            for other in [&from_dir, &from_dump] {
                assert_eq!(from_etcd.code, other.code);
                assert_eq!(from_etcd.stdout, other.stdout, "{output} {filter:?}");
                assert_eq!(from_etcd.stderr, other.stderr, "{output} {filter:?}");
            }
        }
    }
    // JSON dumps of both sources agree on the keys.
    let a: serde_json::Value =
        serde_json::from_str(&ok(clusterf(&["etcd", "dump", "--etcd", &url], &[])).stdout).unwrap();
    let b: serde_json::Value = serde_json::from_str(
        &ok(clusterf(
            &["etcd", "dump", "--overlay-path", dir.to_str().unwrap()],
            &[],
        ))
        .stdout,
    )
    .unwrap();
    assert_eq!(a["keys"], b["keys"]);
    assert_eq!(a["origin"], format!("etcd {url}/clusterf"));
    assert!(a["revision"].as_str().unwrap().parse::<i64>().unwrap() > 0);
}

/// An unreachable etcd is an error, never an empty overlay.
#[test]
fn unreachable_etcd_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let repo = config_repo(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let run = clusterf(
        &[
            "render",
            "--config-path",
            repo.to_str().unwrap(),
            "--etcd",
            &url,
            "--output",
            "ipvsadm",
        ],
        &[],
    );
    assert_eq!(run.code, 1, "{run:#?}");
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr
            .starts_with(&format!("error: etcd {url}/clusterf: ")),
        "{run:#?}"
    );
    let run = clusterf(&["etcd", "dump", "--etcd", "ftp://x"], &[]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("expected http://HOST:PORT"), "{run:#?}");
}

/// etcd's simple auth tokens expire after `--auth-token-ttl` seconds of
/// idleness; a long-lived client (the daemon, the publisher) authenticates
/// again and goes on.
#[test]
fn an_expired_auth_token_is_renewed() {
    let Some(etcd) = Etcd::start_flags(&["--auth-token-ttl=1"]) else {
        return;
    };
    for args in [
        &["role", "add", "root"][..],
        &["user", "add", "root", "--new-user-password=r00t-pw"],
        &["user", "grant-role", "root", "root"],
        &["auth", "enable"],
    ] {
        etcd.etcdctl(args);
    }
    block_on(async {
        let s = settings(&etcd).with_user("root".into(), "r00t-pw".into());
        let c = etcd_source::connect(&s).await.unwrap();
        etcd_source::put(&c, &s, "routes/a", b"1").await.unwrap();
        // Idle for longer than the token lives.
        tokio::time::sleep(Duration::from_millis(3000)).await;
        etcd_source::put(&c, &s, "routes/b", b"2").await.unwrap();
        tokio::time::sleep(Duration::from_millis(3000)).await;
        let tree = etcd_source::read(&c, &s).await.unwrap();
        assert_eq!(tree.files.len(), 2);
    });
}

fn settings(etcd: &Etcd) -> Settings {
    Settings::new(vec![etcd.url()], PREFIX).unwrap()
}

fn fast_tuning() -> Tuning {
    Tuning {
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        progress_interval: Duration::from_millis(200),
        stall_timeout: Duration::from_secs(3),
        before_watch: None,
    }
}

async fn fresh_read(etcd: &Etcd) -> clusterf::tree::Tree {
    let s = settings(etcd);
    let c = etcd_source::connect(&s).await.unwrap();
    etcd_source::read(&c, &s).await.unwrap()
}

/// Reads larger than one page are one consistent snapshot.
#[tokio::test(flavor = "multi_thread")]
async fn paginated_read_is_complete() {
    let Some(etcd) = Etcd::start() else { return };
    let mut c = etcd.client().await;
    let n = etcd_source::PAGE_SIZE as usize * 2 + 17;
    for i in 0..n {
        c.put(format!("/clusterf/services/s/backends/b{i:05}"), "{}")
            .await
            .unwrap();
    }
    let tree = fresh_read(&etcd).await;
    assert_eq!(tree.files.len(), n);
    assert_eq!(etcd_source::backend_key_count(&tree), n);
    assert_eq!(tree.source.revision, Some((n + 1).to_string()));
}

/// A page of large values that does not fit in one answer is read again in
/// smaller pages: one publisher with large values cannot stop overlay reads.
#[tokio::test(flavor = "multi_thread")]
async fn pages_too_large_for_one_answer_are_read_in_halves() {
    let Some(etcd) = Etcd::start() else { return };
    let mut c = etcd.client().await;
    let n = etcd_source::PAGE_SIZE as usize + 30;
    let value = "x".repeat(20 << 10);
    for i in 0..n {
        c.put(
            format!("/clusterf/services/s/backends/b{i:05}"),
            value.clone(),
        )
        .await
        .unwrap();
    }
    // More than one answer may hold: the first page alone is ~20 MB.
    assert!(etcd_source::PAGE_SIZE as usize * value.len() > clusterf::etcd::MAX_ANSWER);
    let tree = fresh_read(&etcd).await;
    assert_eq!(tree.files.len(), n);
    assert!(tree.files.iter().all(|f| f.data().len() == value.len()));
}

/// Events written while the watcher lists and watches are neither lost nor
/// applied twice: the watched tree ends equal to a fresh read.
#[tokio::test(flavor = "multi_thread")]
async fn watch_follows_concurrent_writes() {
    let Some(etcd) = Etcd::start() else { return };
    let mut c = etcd.client().await;
    for i in 0..50 {
        c.put(format!("/clusterf/routes/r{i}"), format!("v{i}"))
            .await
            .unwrap();
    }
    let writer = {
        let mut c = etcd.client().await;
        tokio::spawn(async move {
            for i in 0..400u32 {
                let key = format!("/clusterf/services/s/backends/b{}", i % 37);
                if i % 3 == 0 {
                    c.delete(key).await.unwrap();
                } else {
                    c.put(key, format!("{i}")).await.unwrap();
                }
                if i % 50 == 0 {
                    c.delete_prefix("/clusterf/routes/r").await.unwrap();
                }
            }
        })
    };
    let mut watch = OverlayWatch::spawn(settings(&etcd), fast_tuning());
    let mut dirty = watch.subscribe();
    watch.ready(Duration::from_secs(10)).await.unwrap();
    writer.await.unwrap();
    let expected = fresh_read(&etcd).await;
    let final_rev: i64 = expected
        .source
        .revision
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "the watcher to reach the final revision",
        || watch.snapshot().unwrap().revision >= final_rev,
    )
    .await;
    let snap = watch.snapshot().unwrap();
    assert_eq!(snap.tree.files, expected.files);
    assert_eq!(snap.revision, final_rev);
    assert_eq!(snap.tree.source.revision, Some(final_rev.to_string()));
    let status = watch.status();
    assert_eq!(status.lists, 1, "{status:?}");
    assert!(status.in_sync);
    assert!(status.events > 0);
    assert!(dirty.has_changed().unwrap());
    assert_eq!(*dirty.borrow_and_update(), snap.generation);
    // A no-op write (same value) does not mark the tree dirty.
    let first = snap.tree.files.iter().next().unwrap();
    let key = format!("{PREFIX}/{}", first.path());
    c.put(key, first.data().to_vec()).await.unwrap();
    let rev = c.revision().await;
    eventually(Duration::from_secs(5), "the no-op event", || {
        watch.snapshot().unwrap().revision >= rev
    })
    .await;
    assert!(!dirty.has_changed().unwrap());
    c.put("/clusterf/routes/new", "n").await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), dirty.changed())
        .await
        .expect("dirty notification")
        .unwrap();
    assert!(
        watch
            .snapshot()
            .unwrap()
            .tree
            .files
            .contains_key("routes/new")
    );
    // OverlayWatch::changed: at once for what it has not seen, then waits.
    let snap = watch.changed().await.unwrap();
    assert!(snap.tree.files.contains_key("routes/new"));
    let waiting = tokio::time::timeout(Duration::from_millis(300), watch.changed()).await;
    assert!(waiting.is_err(), "changed() returned without a change");
    c.delete("/clusterf/routes/new").await.unwrap();
    let snap = tokio::time::timeout(Duration::from_secs(5), watch.changed())
        .await
        .expect("dirty notification")
        .unwrap();
    assert!(!snap.tree.files.contains_key("routes/new"));
}

/// A watch that starts at a compacted revision lists again and resumes; a
/// compaction behind an in-sync watch changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn watch_relists_across_a_compaction() {
    let Some(etcd) = Etcd::start() else { return };
    let mut c = etcd.client().await;
    c.put("/clusterf/routes/a", "a1").await.unwrap();
    c.put("/clusterf/routes/b", "b1").await.unwrap();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let mut tuning = fast_tuning();
    tuning.before_watch = Some(gate.clone());
    let mut watch = OverlayWatch::spawn(settings(&etcd), tuning);
    let first = watch.ready(Duration::from_secs(10)).await.unwrap();
    assert_eq!(first.tree.files.len(), 2);
    // Between the list and the watch: changes, then a compaction past them.
    c.put("/clusterf/routes/c", "c1").await.unwrap();
    c.delete("/clusterf/routes/a").await.unwrap();
    let rev = c
        .put("/clusterf/routes/b", "b2")
        .await
        .unwrap()
        .header
        .unwrap()
        .revision;
    etcd.etcdctl(&["compaction", &rev.to_string()]);
    gate.add_permits(1000);
    eventually(
        Duration::from_secs(10),
        "a relist after the compaction",
        || watch.status().compactions >= 1 && watch.status().in_sync,
    )
    .await;
    let snap = watch.snapshot().unwrap();
    assert_eq!(snap.tree.files, fresh_read(&etcd).await.files);
    assert_eq!(snap.revision, rev);
    let status = watch.status();
    assert_eq!(status.lists, 2, "{status:?}");
    assert!(
        status.last_error.as_deref().unwrap().contains("compacted"),
        "{status:?}"
    );

    // Compacting behind an in-sync watch: events keep flowing, no relist.
    c.put("/clusterf/routes/d", "d1").await.unwrap();
    let rev = c
        .put("/clusterf/routes/e", "e1")
        .await
        .unwrap()
        .header
        .unwrap()
        .revision;
    etcd.etcdctl(&["compaction", &rev.to_string()]);
    c.delete("/clusterf/routes/c").await.unwrap();
    let rev = c
        .put("/clusterf/routes/f", "f1")
        .await
        .unwrap()
        .header
        .unwrap()
        .revision;
    eventually(
        Duration::from_secs(10),
        "events after the compaction",
        || watch.snapshot().unwrap().revision >= rev,
    )
    .await;
    assert_eq!(
        watch.snapshot().unwrap().tree.files,
        fresh_read(&etcd).await.files
    );
    assert_eq!(watch.status().lists, 2);
}

/// etcd restarts under the watcher: the last good tree stays (fail static)
/// and grows stale; after the restart the watcher catches up.
#[tokio::test(flavor = "multi_thread")]
async fn watch_survives_an_etcd_restart() {
    let Some(mut etcd) = Etcd::start() else {
        return;
    };
    {
        let mut c = etcd.client().await;
        c.put("/clusterf/services/s/backends/a", "a").await.unwrap();
        c.put("/clusterf/services/s/backends/b", "b").await.unwrap();
    }
    let mut watch = OverlayWatch::spawn(settings(&etcd), fast_tuning());
    let snap = watch.ready(Duration::from_secs(10)).await.unwrap();
    assert_eq!(snap.backend_keys(), 2);
    eventually(Duration::from_secs(5), "the watch to be in sync", || {
        watch.status().in_sync
    })
    .await;
    // Progress answers keep an idle tree fresh.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        watch.staleness().unwrap() < Duration::from_millis(1000),
        "{:?}",
        watch.staleness()
    );

    etcd.stop();
    eventually(Duration::from_secs(10), "the watcher to notice", || {
        !watch.status().in_sync
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let stale = watch.snapshot().unwrap();
    assert_eq!(
        stale.tree.files, snap.tree.files,
        "fail static: the last good tree stays"
    );
    assert!(stale.age() >= Duration::from_secs(1), "{:?}", stale.age());
    let status = watch.status();
    assert!(status.failures >= 1, "{status:?}");
    assert!(status.last_error.is_some());

    etcd.restart();
    {
        let mut c = etcd.client().await;
        c.delete("/clusterf/services/s/backends/a").await.unwrap();
        c.put("/clusterf/services/s/backends/c", "c").await.unwrap();
    }
    eventually(
        Duration::from_secs(15),
        "the watcher to catch up after the restart",
        || {
            let s = watch.snapshot().unwrap();
            s.tree.files.contains_key("services/s/backends/c")
                && !s.tree.files.contains_key("services/s/backends/a")
        },
    )
    .await;
    eventually(
        Duration::from_secs(5),
        "the watch to be in sync again",
        || watch.status().in_sync,
    )
    .await;
    assert!(watch.staleness().unwrap() < Duration::from_secs(1));
    assert_eq!(
        watch.snapshot().unwrap().tree.files,
        fresh_read(&etcd).await.files
    );
}

/// A watcher that never reached etcd has no tree (not an empty one).
#[tokio::test(flavor = "multi_thread")]
async fn watch_without_etcd_has_no_tree() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = Settings::new(vec![format!("http://127.0.0.1:{port}")], PREFIX).unwrap();
    let mut watch = OverlayWatch::spawn(s, fast_tuning());
    let err = watch.ready(Duration::from_millis(700)).await.unwrap_err();
    assert!(err.to_string().contains("not read within"), "{err}");
    assert!(watch.snapshot().is_none());
    assert!(watch.staleness().is_none());
    assert!(watch.status().failures >= 1);
}

/// User/password auth: the password comes from a file or the environment.
#[test]
fn auth_with_user_and_password() {
    let Some(etcd) = Etcd::start() else { return };
    let repo = config_repo(&etcd.scratch());
    block_on(async {
        let mut c = etcd.client().await;
        c.put(
            "/clusterf/services/test/backends/test3-1",
            r#"{"ipv4": "10.3.107.1", "tcp": 1337}"#,
        )
        .await
        .unwrap();
    });
    for args in [
        &["role", "add", "root"][..],
        &["user", "add", "root", "--new-user-password=r00t-pw"],
        &["user", "grant-role", "root", "root"],
        // A reader that may only read the clusterf prefix.
        &["role", "add", "clusterf-read"],
        &[
            "role",
            "grant-permission",
            "clusterf-read",
            "--prefix=true",
            "read",
            "/clusterf/",
        ],
        &["user", "add", "reader", "--new-user-password=read-pw"],
        &["user", "grant-role", "reader", "clusterf-read"],
        &["auth", "enable"],
    ] {
        etcd.etcdctl(args);
    }
    let url = etcd.url();
    let pwfile = etcd.scratch().join("password");
    fs::write(&pwfile, "read-pw\n").unwrap();
    let base = [
        "render",
        "--config-path",
        repo.to_str().unwrap(),
        "--etcd",
        &url,
        "--output",
        "ipvsadm",
    ];
    let expected =
        "-A -t 10.107.107.107:1337 -s wlc\n-a -t 10.107.107.107:1337 -r 10.3.107.1:1337 -m -w 10\n";

    let with = |extra: &[&str], env: &[(&str, &str)]| {
        let mut a = base.to_vec();
        a.extend_from_slice(extra);
        clusterf(&a, env)
    };
    let run = ok(with(
        &[
            "--etcd-user",
            "reader",
            "--etcd-password-file",
            pwfile.to_str().unwrap(),
        ],
        &[],
    ));
    assert_eq!(run.stdout, expected);
    let run = ok(with(
        &["--etcd-user", "root"],
        &[("CLUSTERF_ETCD_PASSWORD", "r00t-pw")],
    ));
    assert_eq!(run.stdout, expected);

    // No credentials, wrong password, missing password: errors, not empty.
    let run = with(&[], &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert_eq!(run.stdout, "");
    let run = with(
        &["--etcd-user", "reader"],
        &[("CLUSTERF_ETCD_PASSWORD", "wrong")],
    );
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stderr.contains("authentication failed"), "{run:#?}");
    let run = with(&["--etcd-user", "reader"], &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stderr.contains("no password"), "{run:#?}");
    // The password is no command-line argument.
    let run = clusterf(&["render", "--etcd-password", "x"], &[]);
    assert_eq!(run.code, 1);

    // The read-only user cannot publish; root can.
    let put = |env: &[(&str, &str)], user: &str| {
        clusterf(
            &[
                "etcd",
                "put-backend",
                "--etcd",
                &url,
                "--etcd-user",
                user,
                "--service",
                "test",
                "--name",
                "test3-2",
                "--ipv4",
                "10.3.107.2",
                "--tcp",
                "1337",
            ],
            env,
        )
    };
    let run = put(&[("CLUSTERF_ETCD_PASSWORD", "read-pw")], "reader");
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stderr.contains("permission denied"), "{run:#?}");
    ok(put(&[("CLUSTERF_ETCD_PASSWORD", "r00t-pw")], "root"));

    // The watcher authenticates too.
    block_on(async {
        let s = settings(&etcd).with_user("reader".into(), "read-pw".into());
        let mut watch = OverlayWatch::spawn(s, fast_tuning());
        let snap = watch.ready(Duration::from_secs(10)).await.unwrap();
        assert_eq!(snap.backend_keys(), 2);
        let s = settings(&etcd).with_user("root".into(), "r00t-pw".into());
        let c = etcd_source::connect(&s).await.unwrap();
        etcd_source::delete(&c, &s, "services/test/backends/test3-1", false)
            .await
            .unwrap();
        eventually(
            Duration::from_secs(10),
            "the delete to reach the watcher",
            || watch.snapshot().unwrap().backend_keys() == 1,
        )
        .await;
    });
}

/// TLS with a throwaway CA and client certificates.
#[test]
fn tls_with_client_certificates() {
    let certs = tempfile::tempdir().unwrap();
    let Some(tls) = support::make_tls(certs.path()) else {
        return;
    };
    let Some(etcd) = Etcd::start_tls(tls.clone()) else {
        return;
    };
    let url = etcd.url();
    assert!(url.starts_with("https://"));
    let repo = config_repo(&etcd.scratch());
    let p = |p: &Path| p.to_str().unwrap().to_string();
    let (ca, cert, key, other) = (
        p(&tls.ca),
        p(&tls.client_cert),
        p(&tls.client_key),
        p(&tls.other_ca),
    );
    let tls_args = |ca: &str| {
        vec![
            "--etcd".to_string(),
            url.clone(),
            "--etcd-ca".into(),
            ca.to_string(),
            "--etcd-cert".into(),
            cert.clone(),
            "--etcd-key".into(),
            key.clone(),
        ]
    };
    let run_with = |args: &[&str], extra: &[String]| {
        let mut a: Vec<&str> = args.to_vec();
        a.extend(extra.iter().map(String::as_str));
        clusterf(&a, &[])
    };
    ok(run_with(
        &[
            "etcd",
            "put-backend",
            "--service",
            "test",
            "--name",
            "test3-1",
            "--ipv4",
            "10.3.107.1",
            "--tcp",
            "1337",
        ],
        &tls_args(&ca),
    ));
    let render = [
        "render",
        "--config-path",
        repo.to_str().unwrap(),
        "--output",
        "ipvsadm",
    ];
    let run = ok(run_with(&render, &tls_args(&ca)));
    assert_eq!(
        run.stdout,
        "-A -t 10.107.107.107:1337 -s wlc\n-a -t 10.107.107.107:1337 -r 10.3.107.1:1337 -m -w 10\n"
    );
    // A CA that did not sign the server's certificate.
    let run = run_with(&render, &tls_args(&other));
    assert_eq!(run.code, 1, "{run:#?}");
    assert_eq!(run.stdout, "");
    // No client certificate: the server refuses.
    let run = run_with(
        &render,
        &["--etcd".into(), url.clone(), "--etcd-ca".into(), ca.clone()],
    );
    assert_eq!(run.code, 1, "{run:#?}");
    // TLS options with a plain-http endpoint: a clear error.
    let plain = url.replacen("https://", "http://", 1);
    let run = run_with(
        &render,
        &["--etcd".into(), plain, "--etcd-ca".into(), ca.clone()],
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("is plain http, but TLS options were given"),
        "{run:#?}"
    );
    // A missing file is named.
    let run = run_with(&render, &tls_args("/nonexistent/ca.pem"));
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("--etcd-ca /nonexistent/ca.pem: cannot read"),
        "{run:#?}"
    );
}

/// --etcd-prefix selects the tree; a trailing slash changes nothing; a
/// prefix with no keys is a warning.
#[test]
fn etcd_prefix_selects_the_tree_and_an_empty_prefix_is_a_warning() {
    let Some(etcd) = Etcd::start() else { return };
    let repo = config_repo(&etcd.scratch());
    block_on(async {
        let mut c = etcd.client().await;
        c.put(
            "/site-a/clusterf/services/test/backends/a1",
            r#"{"ipv4": "10.3.107.1", "tcp": 1337}"#,
        )
        .await
        .unwrap();
    });
    let service = "-A -t 10.107.107.107:1337 -s wlc\n";
    // The default prefix holds no keys: rendered without backends, with a
    // warning that the prefix may be wrong.
    let run = ok(render_ipvsadm(&repo, &etcd, &[]));
    assert_eq!(run.stdout, service);
    assert_eq!(
        run.stderr,
        format!(
            "warning: etcd {}/clusterf: no keys below /clusterf/: check --etcd-prefix; with an empty overlay, services fed by it have no backends\n",
            etcd.url()
        )
    );
    for prefix in ["/site-a/clusterf", "/site-a/clusterf/"] {
        let run = ok(render_ipvsadm(&repo, &etcd, &["--etcd-prefix", prefix]));
        assert_eq!(
            run.stdout,
            format!("{service}-a -t 10.107.107.107:1337 -r 10.3.107.1:1337 -m -w 10\n")
        );
        assert!(!run.stderr.contains("no keys"), "{}", run.stderr);
    }
    let dump = ok(clusterf(
        &[
            "etcd",
            "dump",
            "--etcd",
            &etcd.url(),
            "--etcd-prefix",
            "/site-a/clusterf/",
        ],
        &[],
    ));
    let v: serde_json::Value = serde_json::from_str(&dump.stdout).unwrap();
    assert_eq!(v["origin"], format!("etcd {}/site-a/clusterf", etcd.url()));
}
