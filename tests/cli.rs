//! The real `clusterf` binary at its edges: exit codes when stdout's reader
//! goes away or stdout is closed, secrets that must not be echoed, warnings
//! about exposed secrets and listeners, what a failed fetch leaves behind,
//! and messages in our words with values cut to size.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn clusterf(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clusterf"));
    cmd.current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("CLUSTERF_ETCD_PASSWORD");
    cmd
}

fn run(dir: &Path, args: &[&str]) -> Output {
    clusterf(dir).args(args).output().expect("run clusterf")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write(root: &Path, rel: &str, contents: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
}

/// A config with one service (so that planning against an empty table has
/// changes) and an overlay with one backend.
fn case() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "config/services/web.yaml",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends:\n  a: {ipv4: 10.1.0.1, tcp: 80}\n",
    );
    write(
        dir.path(),
        "overlay/services/web/backends/b",
        r#"{"ipv4": "10.1.0.2", "tcp": 80}"#,
    );
    dir
}

/// Every command that prints data, runnable without a kernel or etcd.
const DATA_COMMANDS: &[&[&str]] = &[
    &[
        "plan",
        "--config-path",
        "config",
        "--live",
        "empty",
        "--detailed-exitcode",
    ],
    &["render", "--config-path", "config", "--output", "json"],
    &["schema"],
    &["etcd", "dump", "--overlay-path", "overlay"],
    &["completions", "bash"],
    &["man"],
];

/// Runs with stdout a pipe whose reader is gone before anything is
/// written: every write fails with EPIPE.
fn run_with_reader_gone(dir: &Path, args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    clusterf(dir)
        .args(args)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run clusterf")
}

/// Runs with descriptor 1 closed, as `>&-` in a shell.
fn run_with_stdout_closed(dir: &Path, args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg("exec \"$0\" \"$@\" >&-")
        .arg(env!("CARGO_BIN_EXE_clusterf"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run sh")
}

#[test]
fn plan_detailed_exitcode_still_says_changes_when_stdout_reader_is_gone() {
    let dir = case();
    let out = run_with_reader_gone(dir.path(), DATA_COMMANDS[0]);
    assert_eq!(out.status.code(), Some(2), "stderr:\n{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    // And a plan without changes still says 0.
    write(
        dir.path(),
        "config/services/web.yaml",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\n",
    );
    let none = run_with_reader_gone(
        dir.path(),
        &[
            "plan",
            "--config-path",
            "config",
            "--elide-empty",
            "--live",
            "empty",
            "--detailed-exitcode",
        ],
    );
    assert_eq!(none.status.code(), Some(0), "stderr:\n{}", stderr(&none));
}

#[test]
fn a_refused_plan_exits_1_with_its_reason_when_stdout_reader_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "config/services/other.yaml",
        "frontend: {ipv4: 10.0.0.2, tcp: 80}\n",
    );
    let live = "-A -t 10.0.0.9:80 -s wlc\n-a -t 10.0.0.9:80 -r 10.1.0.9:80 -m -w 1\n";
    write(dir.path(), "live.txt", live);
    let args = [
        "plan",
        "--config-path",
        "config",
        "--live",
        "live.txt",
        "--own",
        "10.0.0.0/8",
        "--detailed-exitcode",
    ];
    let out = run_with_reader_gone(dir.path(), &args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{err}");
    assert!(
        err.contains("error: refusing a plan that deletes every owned service"),
        "{err}"
    );
}

#[test]
fn data_commands_exit_0_quietly_when_stdout_reader_is_gone() {
    let dir = case();
    for args in &DATA_COMMANDS[1..] {
        let out = run_with_reader_gone(dir.path(), args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("error"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn data_commands_fail_when_stdout_is_closed() {
    let dir = case();
    for args in DATA_COMMANDS {
        let out = run_with_stdout_closed(dir.path(), args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("error: cannot write to stdout: it is closed"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn data_commands_fail_when_stdout_cannot_be_written() {
    let dir = case();
    let full = fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = clusterf(dir.path())
        .args(DATA_COMMANDS[0])
        .stdout(full)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot write to stdout: No space left on device"),
        "{err}"
    );
}

#[test]
fn stdout_redirected_to_dev_null_is_no_error() {
    let dir = case();
    let out = clusterf(dir.path())
        .args(DATA_COMMANDS[0])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn an_etcd_password_in_the_url_is_refused_and_never_echoed() {
    let dir = case();
    let url = "http://root:s3cretPW@127.0.0.1:1";
    for args in [
        vec!["validate", "--config-path", "config", "--etcd", url],
        vec!["render", "--config-path", "config", "--etcd", url],
        vec![
            "plan",
            "--config-path",
            "config",
            "--live",
            "empty",
            "--etcd",
            url,
        ],
        vec!["etcd", "dump", "--etcd", url],
        vec![
            "etcd",
            "del-backend",
            "--service",
            "web",
            "--name",
            "a",
            "--etcd",
            url,
        ],
        vec!["apply", "--watch", "--config-path", "config", "--etcd", url],
        vec!["etcd", "dump", "--etcd", "ftp://root:s3cretPW@127.0.0.1:1"],
        vec!["etcd", "dump", "--etcd", "root:s3cretPW@127.0.0.1:1"],
    ] {
        let out = run(dir.path(), &args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            !err.contains("s3cretPW"),
            "{args:?} echoed the password: {err}"
        );
        assert!(err.contains("***@127.0.0.1:1"), "{args:?}: {err}");
        assert!(err.contains("--etcd-user"), "{args:?}: {err}");
    }
}

#[test]
fn a_password_file_readable_by_others_gets_a_warning() {
    let dir = case();
    let pw = dir.path().join("pw");
    fs::write(&pw, "s3cret\n").unwrap();
    let args = [
        "etcd",
        "dump",
        "--etcd",
        "http://127.0.0.1:1",
        "--etcd-user",
        "root",
        "--etcd-password-file",
        "pw",
    ];
    for (mode, warned) in [(0o644, true), (0o640, true), (0o600, false), (0o400, false)] {
        fs::set_permissions(&pw, fs::Permissions::from_mode(mode)).unwrap();
        let err = stderr(&run(dir.path(), &args));
        assert_eq!(
            err.contains("warning: --etcd-password-file pw: readable by"),
            warned,
            "mode {mode:o}: {err}"
        );
        assert!(!err.contains("s3cret"), "{err}");
    }
}

/// Starts `apply --watch` and collects its stderr until it exits or logs
/// `until`; then ends it.
fn watch_stderr(dir: &Path, listen: &str, until: &[&str]) -> String {
    let mut child = clusterf(dir)
        .args([
            "apply",
            "--watch",
            "--config-path",
            "config",
            "--metrics-listen",
            listen,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    for line in lines.lines() {
        let line = line.unwrap_or_default();
        seen.push_str(&line);
        seen.push('\n');
        if until.iter().any(|u| line.contains(u)) || Instant::now() > deadline {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    seen
}

#[test]
fn metrics_listen_on_a_public_address_gets_a_warning() {
    let dir = case();
    // Whether or not this machine has ip_vs: the warning comes first, then
    // either the error (no ip_vs) or the daemon's start.
    let until = ["not a loopback address", "error", "starting"];
    let public = watch_stderr(dir.path(), "0.0.0.0:0", &until);
    assert!(
        public.contains("--metrics-listen 0.0.0.0:0 is not a loopback address"),
        "{public}"
    );
    let local = watch_stderr(dir.path(), "127.0.0.1:0", &until);
    assert!(!local.contains("not a loopback"), "{local}");
    let mapped = watch_stderr(dir.path(), "[::ffff:127.0.0.1]:0", &until);
    assert!(!mapped.contains("not a loopback"), "{mapped}");
}

/// Every directory below `root` holding a `HEAD` file: a Git repository.
fn repositories(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.join("HEAD").is_file() {
                    found.push(path.clone());
                }
                dirs.push(path);
            }
        }
    }
    found
}

#[test]
fn a_failed_first_fetch_leaves_no_repository_in_the_cache() {
    let dir = case();
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/config.git");
    let out = run(
        dir.path(),
        &["validate", "--config-repo", &url, "--cache-dir", "cache"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let left = repositories(&dir.path().join("cache"));
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// `validate` of one YAML service file; its stderr.
fn validate_yaml(service: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "config/services/web.yaml", service);
    let out = run(dir.path(), &["validate", "--config-path", "config"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    stderr(&out)
}

/// `validate` of one JSON backend file; its stderr.
fn validate_json_backend(backend: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "config/services/web/frontend",
        r#"{"ipv4": "10.0.0.1", "tcp": 80}"#,
    );
    write(dir.path(), "config/services/web/backends/a", backend);
    let out = run(dir.path(), &["validate", "--config-path", "config"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    stderr(&out)
}

const FRONTEND: &str = "frontend: {ipv4: 10.0.0.1, tcp: 80}\n";

#[test]
fn numbers_are_reported_as_written_whatever_their_size() {
    let port = "12345678901234567890123456789012345678901234567";
    let err = validate_yaml(&format!("frontend: {{ipv4: 10.0.0.1, tcp: {port}}}\n"));
    assert!(
        err.contains(&format!("tcp: port {port} out of range 1..65535")),
        "{err}"
    );
    assert!(!err.contains("fractional"), "{err}");

    let err = validate_yaml(&format!(
        "{FRONTEND}persistence: -18446744073709551696\nbackends:\n  \
         a: {{ipv4: 10.1.0.1, tcp: 18446744073709551696, weight: 9007199254740993.0}}\n"
    ));
    assert!(
        err.contains("tcp: port 18446744073709551696 out of range"),
        "{err}"
    );
    assert!(
        err.contains("persistence: -18446744073709551696 out of range"),
        "{err}"
    );
    assert!(
        err.contains("weight 9007199254740993 out of range"),
        "{err}"
    );
    assert!(!err.contains("18446744073709551616"), "rounded: {err}");

    let err = validate_json_backend(
        r#"{"ipv4": "10.1.0.1", "tcp": 18446744073709551696, "weight": 1.5}"#,
    );
    assert!(
        err.contains("tcp: port 18446744073709551696 out of range"),
        "{err}"
    );
    assert!(
        err.contains("weight: expected an integer, found 1.5"),
        "{err}"
    );
    let err = validate_json_backend(&format!(r#"{{"ipv4": "10.1.0.1", "tcp": {port}}}"#));
    assert!(
        err.contains(&format!("tcp: port {port} out of range")),
        "{err}"
    );
}

#[test]
fn yaml_errors_are_in_our_words_not_the_parsers() {
    let err = validate_yaml(&format!(
        "{FRONTEND}backends:\n  null: {{ipv4: 10.1.0.1}}\n"
    ));
    assert!(
        err.contains("services/web.yaml:3:3: expected a string, found null"),
        "{err}"
    );
    assert!(!err.contains("Option<"), "{err}");

    let err = validate_yaml(&format!("{FRONTEND}---\n{FRONTEND}"));
    assert!(err.contains("more than one YAML document"), "{err}");
    assert!(!err.contains("from_str"), "{err}");

    let err = validate_yaml(&format!("{FRONTEND}{FRONTEND}"));
    assert!(err.contains("duplicate key \"frontend\""), "{err}");
    assert!(!err.contains("DuplicateKeyPolicy"), "{err}");
}

#[test]
fn huge_values_are_cut_in_messages() {
    let huge = "s".repeat(5 << 20);
    let err = validate_yaml(&format!("{FRONTEND}scheduler: {huge}\n"));
    assert!(err.len() < 1000, "{} bytes of stderr", err.len());
    assert!(err.contains("unknown scheduler \"sss"), "{err}");
    assert!(err.contains("(5242880 bytes)"), "{err}");

    // An explicit key: YAML limits implicit ones to 1024 characters.
    let err = validate_yaml(&format!("{FRONTEND}? {huge}\n: 1\n"));
    assert!(err.len() < 1000, "{} bytes of stderr", err.len());
    assert!(err.contains("unknown field \"sss"), "{err}");

    let err = validate_json_backend(&format!(r#"{{"ipv4": "{huge}"}}"#));
    assert!(err.len() < 1000, "{} bytes of stderr", err.len());
    assert!(err.contains("invalid IPv4 address \"sss"), "{err}");

    // One argument holds at most 128 KiB.
    let long = "s".repeat(100_000);
    let dir = case();
    let out = run(
        dir.path(),
        &[
            "render",
            "--config-path",
            "config",
            "--default-scheduler",
            &long,
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).len() < 1000,
        "{} bytes of stderr",
        stderr(&out).len()
    );
}

#[test]
fn schema_write_onto_a_file_names_the_path() {
    let dir = case();
    write(dir.path(), "schemas", "a file, not a directory");
    let out = run(dir.path(), &["schema", "--write", "schemas"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--write schemas: cannot create"), "{err}");
}

/// The binary turns transparent huge pages off for itself (src/main.rs:
/// with THP a touched 2 MiB stretch of mimalloc's arena is resident whole).
/// Read from /proc while `import` waits for its standard input.
#[test]
fn the_binary_runs_without_transparent_huge_pages() {
    let dir = case();
    let mut child = clusterf(dir.path())
        .args(["import", "--from", "ipvsadm", "-", "--out", "out"])
        .env_remove("MIMALLOC_ALLOW_THP")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let thp_enabled = || {
        let text = fs::read_to_string(&status).expect("import exited before reading stdin");
        let line = text.lines().find(|l| l.starts_with("THP_enabled:"))?;
        Some(line["THP_enabled:".len()..].trim().to_string())
    };
    // The line is there from exec on; the binary's start-up code sets it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = thp_enabled();
    while seen.as_deref() != Some("0") && seen.is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        seen = thp_enabled();
    }
    drop(child.stdin.take());
    child.wait().unwrap();
    // None: a kernel before 5.0 does not say.
    assert!(
        matches!(seen.as_deref(), Some("0") | None),
        "THP_enabled: {seen:?}"
    );
}

/// mimalloc's options as the binary set them for `args`, from the list
/// mimalloc prints at start-up with `MIMALLOC_VERBOSE=1`: (name, value).
fn allocator_options(args: &[&str]) -> Vec<(String, String)> {
    let dir = case();
    let mut cmd = clusterf(dir.path());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("MIMALLOC_") {
            cmd.env_remove(name);
        }
    }
    let out = cmd
        .args(args)
        .env("MIMALLOC_VERBOSE", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let options: Vec<_> = err
        .lines()
        .filter_map(|l| l.trim().strip_prefix("option '"))
        .filter_map(|l| l.split_once("': "))
        .map(|(name, value)| (name.to_string(), value.trim().to_string()))
        .collect();
    assert!(!options.is_empty(), "no options in: {err}");
    options
}

/// src/main.rs: a process that runs until stopped returns freed memory to
/// the system at once and commits its arenas as it uses them; a command
/// that exits keeps mimalloc's defaults. Neither has huge pages.
#[test]
fn the_allocator_returns_memory_at_once_only_in_commands_that_run_until_stopped() {
    let option = |options: &[(String, String)], name: &str| {
        let found = options.iter().find(|(n, _)| n == name);
        found
            .unwrap_or_else(|| panic!("no {name} in {options:?}"))
            .1
            .clone()
    };
    // (command line, whether it runs until stopped)
    let lines: [(&[&str], bool); 7] = [
        (&["apply", "--watch", "--help"], true),
        (&["docker", "--help"], true),
        (&["realserver", "--watch", "--help"], true),
        (&["realserver", "--help"], false),
        (&["apply", "--help"], false),
        (&["plan", "--help"], false),
        (&["render", "--help"], false),
    ];
    for (args, until_stopped) in lines {
        let options = allocator_options(args);
        let zero = |name| option(&options, name) == "0";
        assert_eq!(zero("purge_delay"), until_stopped, "{args:?}");
        assert_eq!(zero("arena_eager_commit"), until_stopped, "{args:?}");
        assert!(zero("allow_thp"), "{args:?}");
    }
}
