//! Unreadable files in a config or overlay directory: `validate` names each
//! one and fails; in the overlay they are warned about and skipped.
//!
//! A golden case cannot commit an unreadable file, and root reads mode-000
//! files anyway, so these trees are built in a temporary directory with what
//! nobody can read: a dangling symlink, a symlink loop and a file name that
//! is not UTF-8.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Output};

/// `render` of `config` with `overlay`, both relative to the test's directory.
const RENDER_WITH_OVERLAY: &[&str] = &[
    "render",
    "--config-path",
    "config",
    "--overlay-path",
    "overlay",
    "--output",
    "ipvsadm",
];
fn clusterf(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clusterf"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run clusterf")
}

fn write(root: &Path, rel: &str, contents: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, contents).unwrap();
}

/// A config tree with one good service and three unreadable entries.
fn unreadable_tree(root: &Path) {
    write(
        root,
        "services/web/frontend",
        r#"{"ipv4": "10.0.0.1", "tcp": 80}"#,
    );
    write(
        root,
        "services/web/backends/a",
        r#"{"ipv4": "10.1.0.1", "tcp": 80}"#,
    );
    // Points nowhere.
    symlink("does-not-exist", root.join("services/web/backends/gone")).unwrap();
    // Two symlinks pointing at each other.
    fs::create_dir_all(root.join("routes")).unwrap();
    symlink("loop-b", root.join("routes/loop-a")).unwrap();
    symlink("loop-a", root.join("routes/loop-b")).unwrap();
    // A name that is not UTF-8.
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9");
    fs::write(root.join("services/web/backends").join(name), "{}").unwrap();
}

#[test]
fn validate_names_every_unreadable_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    unreadable_tree(&config);
    let out = clusterf(&["validate", "--config-path", "config"], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    for needle in [
        "services/web/backends/gone: cannot read: ",
        "routes/loop-a: cannot read: ",
        "routes/loop-b: cannot read: ",
        "services/web/backends/caf\u{fffd}: cannot read: file name is not valid UTF-8",
        "error: 4 problems found",
    ] {
        assert!(
            stderr.contains(needle),
            "missing {needle:?} in stderr:\n{stderr}"
        );
    }
    // render refuses too, and prints nothing on stdout.
    let out = clusterf(
        &["render", "--config-path", "config", "--output", "ipvsadm"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
}

#[test]
fn unreadable_overlay_keys_are_skipped_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "config/services/web/frontend",
        r#"{"ipv4": "10.0.0.1", "tcp": 80}"#,
    );
    let overlay = dir.path().join("overlay");
    unreadable_tree(&overlay);
    let out = clusterf(RENDER_WITH_OVERLAY, dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "-A -t 10.0.0.1:80 -s wlc\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 10\n"
    );
    for needle in [
        "warning: overlay:services/web/backends/gone: cannot read: ",
        "warning: overlay:routes/loop-a: cannot read: ",
    ] {
        assert!(
            stderr.contains(needle),
            "missing {needle:?} in stderr:\n{stderr}"
        );
    }
}

#[test]
fn missing_config_directory_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = clusterf(&["validate", "--config-path", "nope"], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr.contains("nope"), "stderr:\n{stderr}");
}

/// `--config-path` reads what a Git checkout of the same repository would:
/// a symlink that leads outside the directory is refused, naming the file
/// (it read `/etc/hostname` before); symlinks inside it are followed, and
/// the root itself may be a symlink (`current -> release-1`).
#[test]
fn symlinks_leading_outside_the_config_directory_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    write(base, "outside/b", r#"{"ipv4": "10.9.9.9", "tcp": 80}"#);
    write(base, "outside/routes/r", r#"{"Prefix": "10.9.0.0/16"}"#);
    let release = base.join("release-1");
    write(
        &release,
        "services/web/frontend",
        r#"{"ipv4": "10.0.0.1", "tcp": 80}"#,
    );
    write(&release, "shared/c", r#"{"ipv4": "10.1.0.3", "tcp": 80}"#);
    let backends = release.join("services/web/backends");
    fs::create_dir_all(&backends).unwrap();
    // Relative and absolute, out of the tree.
    symlink("../../../../outside/b", backends.join("rel")).unwrap();
    symlink(base.join("outside/b"), backends.join("abs")).unwrap();
    // A directory out of the tree.
    symlink(base.join("outside/routes"), release.join("routes")).unwrap();
    // Inside the tree: followed.
    symlink("../../../shared/c", backends.join("c")).unwrap();
    symlink("release-1", base.join("current")).unwrap();

    let out = clusterf(&["validate", "--config-path", "current"], base);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    for needle in [
        "services/web/backends/rel: cannot read: symlink to ",
        "services/web/backends/abs: cannot read: symlink to ",
        "routes: cannot read: symlink to ",
        "outside the directory read: refused",
        "error: 3 problems found",
    ] {
        assert!(
            stderr.contains(needle),
            "missing {needle:?} in stderr:\n{stderr}"
        );
    }

    // Without the outside links the tree renders through the root symlink,
    // with the backend reached by the inside link.
    fs::remove_file(backends.join("rel")).unwrap();
    fs::remove_file(backends.join("abs")).unwrap();
    fs::remove_file(release.join("routes")).unwrap();
    let out = clusterf(
        &["render", "--config-path", "current", "--output", "ipvsadm"],
        base,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "-A -t 10.0.0.1:80 -s wlc\n-a -t 10.0.0.1:80 -r 10.1.0.3:80 -m -w 10\n"
    );
}

/// Runs clusterf, failing the test when it has not finished within `limit`
/// (it is killed): a read that hangs fails instead of hanging the suite.
fn clusterf_within(limit: std::time::Duration, args: &[&str], dir: &Path) -> Output {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_clusterf"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run clusterf");
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("clusterf {args:?} did not finish within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

const PROMPTLY: std::time::Duration = std::time::Duration::from_secs(20);

/// Symlinks back to an ancestor made the walk read 2^n paths, forever;
/// now every directory is read once, and a symlink to one already read is
/// named with the path it was read at.
#[test]
fn symlink_cycles_are_named_and_every_directory_is_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    write(
        &config,
        "services/web/frontend",
        r#"{"ipv4": "10.0.0.1", "tcp": 80}"#,
    );
    write(&config, "shared/b", r#"{"ipv4": "10.1.0.1", "tcp": 80}"#);
    // Two links to the root: 2^40 paths for a walk that follows them.
    symlink("..", config.join("services/l1")).unwrap();
    symlink("..", config.join("services/l2")).unwrap();
    // A link to its own parent, below the root.
    symlink("..", config.join("services/web/up")).unwrap();
    // An alias of a directory read under its own name (a diamond).
    symlink("../../shared", config.join("services/web/backends")).unwrap();
    let out = clusterf_within(
        PROMPTLY,
        &["validate", "--config-path", "config"],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    for needle in [
        "services/l1: cannot read: symlink cycle: leads back to the root of the directory read\n",
        "services/l2: cannot read: symlink cycle: leads back to the root of the directory read\n",
        "services/web/up: cannot read: symlink cycle: leads back to services, which contains it\n",
        "services/web/backends: cannot read: symlink to shared, a directory already read: not read twice\n",
        "error: 4 problems found",
    ] {
        assert!(
            stderr.contains(needle),
            "missing {needle:?} in stderr:\n{stderr}"
        );
    }

    // In the overlay: warnings, and the rest is read.
    let overlay = dir.path().join("overlay");
    write(
        &overlay,
        "services/web/backends/a",
        r#"{"ipv4": "10.1.0.2", "tcp": 80}"#,
    );
    symlink("..", overlay.join("services/l1")).unwrap();
    symlink("../..", overlay.join("services/web/l2")).unwrap();
    fs::remove_file(config.join("services/l1")).unwrap();
    fs::remove_file(config.join("services/l2")).unwrap();
    fs::remove_file(config.join("services/web/up")).unwrap();
    fs::remove_file(config.join("services/web/backends")).unwrap();
    let out = clusterf_within(PROMPTLY, RENDER_WITH_OVERLAY, dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "-A -t 10.0.0.1:80 -s wlc\n-a -t 10.0.0.1:80 -r 10.1.0.2:80 -m -w 10\n"
    );
    for needle in [
        "warning: overlay:services/l1: cannot read: symlink cycle: leads back to the root",
        "warning: overlay:services/web/l2: cannot read: symlink cycle: leads back to the root",
    ] {
        assert!(
            stderr.contains(needle),
            "missing {needle:?} in stderr:\n{stderr}"
        );
    }
}

/// A named pipe blocked the read forever (nobody writes to it); pipes,
/// sockets and devices are named as unreadable, never opened.
#[test]
fn pipes_and_sockets_in_the_tree_are_named_never_opened() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    write(
        &config,
        "services/web/frontend",
        r#"{"ipv4": "10.0.0.1", "tcp": 80}"#,
    );
    let backends = config.join("services/web/backends");
    fs::create_dir_all(&backends).unwrap();
    let fifo = std::ffi::CString::new(backends.join("pipe").as_os_str().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0, "mkfifo");
    let _socket = std::os::unix::net::UnixListener::bind(backends.join("sock")).unwrap();
    let out = clusterf_within(
        PROMPTLY,
        &["validate", "--config-path", "config"],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    for needle in [
        "services/web/backends/pipe: cannot read: a named pipe (FIFO): not read\n",
        "services/web/backends/sock: cannot read: a socket: not read\n",
        "error: 2 problems found",
    ] {
        assert!(
            stderr.contains(needle),
            "missing {needle:?} in stderr:\n{stderr}"
        );
    }
}

/// A file over the size limit is named unreadable without being read (a
/// sparse file: its size costs no disk).
#[test]
fn a_file_over_the_size_limit_is_named_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    write(
        &config,
        "services/web/frontend",
        r#"{"ipv4": "10.0.0.1", "tcp": 80}"#,
    );
    write(&config, "services/web/backends/big", "");
    let big = fs::File::options()
        .write(true)
        .open(config.join("services/web/backends/big"))
        .unwrap();
    big.set_len(clusterf::tree::FILE_LIMIT + 1).unwrap();
    let out = clusterf_within(
        PROMPTLY,
        &["validate", "--config-path", "config"],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(
        stderr.contains("services/web/backends/big: cannot read: larger than the limit of 8 MiB\n"),
        "stderr:\n{stderr}"
    );
    // At the limit it is read (and fails as JSON, being all zero bytes).
    big.set_len(clusterf::tree::FILE_LIMIT).unwrap();
    let out = clusterf_within(
        PROMPTLY,
        &["validate", "--config-path", "config"],
        dir.path(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("limit"), "stderr:\n{stderr}");
}
