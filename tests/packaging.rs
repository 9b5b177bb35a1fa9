//! What a package installs beside the binary, from the real `clusterf`
//! binary: shell completions that complete every subcommand (run in a real
//! bash), man pages that render (`man -l` where man is installed) and name
//! every subcommand, and a `--version` that names the commit it was built
//! from (build.rs, which still builds with no Git checkout and no git).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use clap::CommandFactory;
use clusterf::cli::Cli;

fn clusterf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clusterf"))
        .args(args)
        .output()
        .expect("run clusterf")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("UTF-8 output")
}

/// A program on PATH.
fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// Fails the test in CI, prints a loud SKIP otherwise.
fn missing(what: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} is missing, and CI is set: tests must not skip"
    );
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "\n!!!!!!!! SKIP: {what} is missing: part of this test did not run !!!!!!!!\n"
    );
}

/// Every subcommand's name, from the command line's definition (`help`,
/// which clap adds, included: it completes too).
fn subcommands() -> Vec<String> {
    let mut cmd = Cli::command();
    cmd.build();
    // Hidden commands (debug entries) get no page and no completion.
    let names: Vec<String> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| s.get_name().to_string())
        .collect();
    for expected in ["plan", "apply", "completions", "man", "help"] {
        assert!(names.iter().any(|n| n == expected), "{names:?}");
    }
    names
}

/// The words bash completes for the command line `line` (the last word
/// being completed), from the script `clusterf completions bash` printed.
fn bash_completes(script: &Path, line: &[&str]) -> Vec<String> {
    let words: Vec<String> = line.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source '{}'\nCOMP_WORDS=({})\nCOMP_CWORD={}\n_clusterf clusterf '{}' '{}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        script.display(),
        words.join(" "),
        line.len() - 1,
        line[line.len() - 1],
        line[line.len() - 2],
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .output()
        .expect("run bash");
    stdout(&out).lines().map(str::to_string).collect()
}

#[test]
fn the_bash_completion_completes_every_subcommand_and_their_flags() {
    let script = stdout(&clusterf(&["completions", "bash"]));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clusterf.bash");
    std::fs::write(&path, &script).unwrap();

    let words = bash_completes(&path, &["clusterf", ""]);
    for sub in subcommands() {
        assert!(words.contains(&sub), "{sub} not completed: {words:?}");
    }
    assert_eq!(
        bash_completes(&path, &["clusterf", "compl"]),
        ["completions"]
    );
    let flags = bash_completes(&path, &["clusterf", "plan", "--conf"]);
    assert!(flags.contains(&"--config-path".to_string()), "{flags:?}");
    let words = bash_completes(&path, &["clusterf", "completions", ""]);
    let shells: Vec<&String> = words.iter().filter(|w| !w.starts_with('-')).collect();
    assert_eq!(shells, ["bash", "zsh", "fish"]);
}

#[test]
fn the_zsh_and_fish_completions_name_every_subcommand() {
    for shell in ["zsh", "fish"] {
        let script = stdout(&clusterf(&["completions", shell]));
        for sub in subcommands() {
            assert!(
                script.contains(&format!("\"{sub}\"")) || script.contains(&format!("'{sub}:")),
                "{shell} completion lacks {sub}:\n{script}"
            );
        }
    }
    let out = clusterf(&["completions", "powershell"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values: bash, zsh, fish"));
}

/// `page` as `man -l` renders it (plain text, wide); `None` without man.
fn render_man(page: &Path) -> Option<String> {
    which("man")?;
    let out = Command::new("man")
        .arg("-l")
        .arg(page)
        .env("MANWIDTH", "200")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .env("MAN_KEEP_FORMATTING", "")
        .stdin(Stdio::null())
        .output()
        .expect("run man");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "man -l {}: {err}",
        page.display()
    );
    Some(String::from_utf8(out.stdout).expect("UTF-8 man output"))
}

#[test]
fn the_man_page_renders_and_names_every_subcommand() {
    let roff = stdout(&clusterf(&["man"]));
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("clusterf.1");
    std::fs::write(&page, &roff).unwrap();
    for sub in subcommands().iter().filter(|s| *s != "help") {
        assert!(
            roff.contains(&format!("clusterf\\-{}(1)", sub.replace('-', "\\-"))),
            "the roff lacks {sub}"
        );
    }
    let Some(text) = render_man(&page) else {
        return missing("man (man-db)");
    };
    assert!(
        text.contains("clusterf - Declarative GitOps reconciler"),
        "{text}"
    );
    for sub in subcommands().iter().filter(|s| *s != "help") {
        assert!(
            text.contains(&format!("clusterf-{sub}(1)")),
            "{sub}:\n{text}"
        );
    }
}

#[test]
fn man_dir_writes_a_page_per_subcommand_that_renders_with_its_flags() {
    let dir = tempfile::tempdir().unwrap();
    let out = clusterf(&["man", "--dir", &dir.path().display().to_string()]);
    stdout(&out);
    for sub in subcommands().iter().filter(|s| *s != "help") {
        assert!(
            dir.path().join(format!("clusterf-{sub}.1")).is_file(),
            "{sub}"
        );
    }
    let nested = dir.path().join("clusterf-etcd-put-backend.1");
    let Some(text) = render_man(&nested) else {
        return missing("man (man-db)");
    };
    assert!(text.contains("--service"), "{text}");

    let gone = dir.path().join("missing");
    let out = clusterf(&["man", "--dir", &gone.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&gone.display().to_string()), "{err}");
}

/// `git` in the package's directory: its output, or `None` without git or
/// outside a checkout.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn the_version_names_the_commit_of_head_when_built_in_a_checkout() {
    let version = stdout(&clusterf(&["--version"]));
    let plain = format!("clusterf {}", env!("CARGO_PKG_VERSION"));
    let Some(top) = git(&["rev-parse", "--show-toplevel"]) else {
        assert_eq!(version.trim(), plain);
        return missing("a Git checkout with git");
    };
    assert_eq!(
        Path::new(&top).canonicalize().unwrap(),
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .canonicalize()
            .unwrap()
    );
    let head = git(&["rev-parse", "--short", "HEAD"]).expect("HEAD");
    assert_eq!(version.trim(), format!("{plain} (commit {head})"));
    // Subcommands say the same.
    assert_eq!(stdout(&clusterf(&["plan", "--version"])).trim(), {
        format!(
            "clusterf-plan {} (commit {head})",
            env!("CARGO_PKG_VERSION")
        )
    });
}

/// build.rs compiled on its own and run as cargo runs it, in `package`
/// with `PATH` set to `path`; the `cargo:` lines it printed.
fn run_build_script(package: &Path, path: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("build-script");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(rustc)
        .args(["--edition", "2024", "-o"])
        .arg(&exe)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("build.rs"))
        .output()
        .expect("run rustc");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&exe)
        .current_dir(package)
        .env_clear()
        .env("PATH", path)
        .env("CARGO_PKG_VERSION", "9.8.7")
        .env("CARGO_MANIFEST_DIR", package)
        .output()
        .expect("run the build script");
    stdout(&out)
}

#[test]
fn outside_a_checkout_or_without_git_the_version_is_the_package_version_alone() {
    // A crate tarball unpacked, no git on PATH at all.
    let tarball = tempfile::tempdir().unwrap();
    let printed = run_build_script(tarball.path(), "/nonexistent");
    assert!(
        printed.contains("cargo:rustc-env=CLUSTERF_VERSION=9.8.7\n"),
        "{printed}"
    );
    assert!(
        printed.contains("cargo:rerun-if-changed=build.rs\n"),
        "{printed}"
    );

    let Some(git_path) = which("git") else {
        return missing("git");
    };
    let path = git_path.parent().unwrap().display().to_string();
    // Unpacked inside some other repository: not our commit.
    let outer = tempfile::tempdir().unwrap();
    for args in [
        &["init", "-q"][..],
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "outer",
        ],
    ] {
        let ok = Command::new("git")
            .args(args)
            .current_dir(outer.path())
            .status()
            .unwrap();
        assert!(ok.success(), "git {args:?}");
    }
    let inner = outer.path().join("clusterf-9.8.7");
    std::fs::create_dir(&inner).unwrap();
    let printed = run_build_script(&inner, &path);
    assert!(
        printed.contains("cargo:rustc-env=CLUSTERF_VERSION=9.8.7\n"),
        "{printed}"
    );
    // This checkout, with git: the commit, and HEAD watched.
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    if let Some(head) = git(&["rev-parse", "--short", "HEAD"]) {
        let printed = run_build_script(here, &path);
        assert!(
            printed.contains(&format!("CLUSTERF_VERSION=9.8.7 (commit {head})\n")),
            "{printed}"
        );
        assert!(printed.contains("HEAD\n"), "{printed}");
    }
}
