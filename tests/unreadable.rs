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
    let out = clusterf(
        &[
            "render",
            "--config-path",
            "config",
            "--overlay-path",
            "overlay",
            "--output",
            "ipvsadm",
        ],
        dir.path(),
    );
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
