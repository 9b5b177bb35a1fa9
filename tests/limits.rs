//! Size limits on what clusterf reads (README.md, "Input limits"): a file
//! over its limit fails fast with an error naming the file and the limit,
//! and nothing reads past it (`/dev/zero` once reached 18 GB); files within
//! the limits are read whole, however many values they hold.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A safety net, not a performance bound: a read that runs away never ends,
/// while the 100k-backend file takes ~19 s on a debug build and hit 30 s on
/// a host at load 10.
const PROMPTLY: Duration = Duration::from_secs(120);

/// Runs clusterf with `stdin`, failing the test when it has not finished
/// within [`PROMPTLY`] (it is killed): a read that runs away fails instead
/// of eating the machine.
fn clusterf(args: &[&str], dir: &Path, stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_clusterf"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run clusterf");
    let mut input = child.stdin.take().unwrap();
    // A reader that stops early closes the pipe: not an error here.
    let _ = input.write_all(stdin);
    drop(input);
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > PROMPTLY {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("clusterf {args:?} did not finish within {PROMPTLY:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn config(root: &Path) {
    let path = root.join("config/services/web.yaml");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        path,
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends:\n  a: {ipv4: 10.1.0.1, tcp: 80}\n",
    )
    .unwrap();
}

#[test]
fn a_live_dump_or_saved_plan_without_end_fails_fast_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path());
    let out = clusterf(
        &["plan", "--config-path", "config", "--live", "/dev/zero"],
        dir.path(),
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "error: reading the live state from /dev/zero: larger than the limit of 256 MiB\n"
    );
    let out = clusterf(&["apply", "/dev/zero"], dir.path(), b"");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "error: reading the plan /dev/zero: larger than the limit of 1 GiB\n"
    );
    // A regular file over the limit fails by its size, unread (sparse: it
    // costs no disk).
    let big = std::fs::File::create(dir.path().join("big.plan")).unwrap();
    big.set_len((1 << 30) + 1).unwrap();
    let out = clusterf(&["apply", "big.plan"], dir.path(), b"");
    assert_eq!(
        stderr(&out),
        "error: reading the plan big.plan: larger than the limit of 1 GiB\n"
    );
}

/// `--live <(ipvsadm -S -n)` is a pipe: pipes are read, within the limit.
#[test]
fn a_live_dump_from_a_pipe_is_read() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path());
    let dump = b"-A -t 10.0.0.1:80 -s wlc\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 10\n";
    let out = clusterf(
        &[
            "plan",
            "--config-path",
            "config",
            "--live",
            "/dev/stdin",
            "--detailed-exitcode",
        ],
        dir.path(),
        dump,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_password_file_without_end_fails_fast_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path());
    let out = clusterf(
        &[
            "validate",
            "--config-path",
            "config",
            "--etcd",
            "http://127.0.0.1:9",
            "--etcd-user",
            "u",
            "--etcd-password-file",
            "/dev/zero",
        ],
        dir.path(),
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    // (A warning about the file's mode may come first.)
    assert!(
        stderr(&out).ends_with(
            "error: --etcd-password-file /dev/zero: cannot read: larger than the limit of 4 MiB\n"
        ),
        "{}",
        stderr(&out)
    );
}

/// More than ~31,000 backends in one YAML file breached serde-saphyr's
/// default budget ("budget breached: Nodes { nodes: 250001 }") whenever the
/// full parser read the file (here: because one weight is out of range);
/// its budget now fits any file within the size limit.
#[test]
fn a_yaml_file_of_many_backends_within_the_size_limit_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut yaml = String::from("frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends:\n");
    for i in 0..100_000u32 {
        let weight = if i == 99_999 { 70_000 } else { 10 };
        yaml.push_str(&format!(
            "  b{i}: {{ipv4: 10.{}.{}.{}, tcp: 80, weight: {weight}}}\n",
            i >> 16,
            (i >> 8) & 255,
            i & 255
        ));
    }
    assert!(yaml.len() as u64 <= clusterf::tree::FILE_LIMIT);
    let path = dir.path().join("config/services/web.yaml");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, yaml).unwrap();
    let out = clusterf(&["validate", "--config-path", "config"], dir.path(), b"");
    assert_eq!(
        stderr(&out),
        "services/web.yaml:100002:49: weight 70000 out of range 0..65535\nerror: 1 problem found\n"
    );
}
