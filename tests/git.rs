//! Git config repositories: real repositories built with the `git` CLI in
//! temporary directories (commits, branches, tags, a bare clone, a `file://`
//! remote that receives pushes between runs, signed commits), read through
//! the library (`source::git`) and through the `clusterf` binary.
//!
//! The git CLI only builds fixtures; clusterf reads them with gix.

#[path = "support/http.rs"]
mod support_http;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use clusterf::cli::source::{ConfigArgs, OverlayArgs};
use clusterf::cli::watch::{WatchArgs, resolve};
use clusterf::daemon::{Daemon, MemoryKernel};
use clusterf::source::git::{self, GitSource, Options};
use support_http::http;
use tempfile::TempDir;

const WEB_V1: &str =
    "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends:\n  a: {ipv4: 10.1.0.1, tcp: 80}\n";
const WEB_V2: &str = "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends:\n  a: {ipv4: 10.1.0.1, tcp: 80}\n  b: {ipv4: 10.1.0.2, tcp: 80}\n";
const WEB_V3: &str =
    "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends:\n  b: {ipv4: 10.1.0.2, tcp: 80, weight: 5}\n";
const DNS: &str =
    "frontend: {ipv4: 10.0.0.53, udp: 53}\nbackends:\n  a: {ipv4: 10.1.0.53, udp: 53}\n";

/// Whether a tool the tests need is installed. Missing: a failure under CI,
/// a loud message and a skip elsewhere.
fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .map(|_| true)
        .unwrap_or(false);
    if !ok {
        if std::env::var_os("CI").is_some() {
            panic!("{tool} is not installed, and CI is set: these tests need it");
        }
        eprintln!("\n*** SKIPPING: {tool} is not installed; these tests need it ***\n");
    }
    ok
}

/// A scratch area: HOME for git (no user config leaks in), and room for repos.
struct Scratch {
    dir: TempDir,
}

impl Scratch {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        Scratch { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Runs git in `cwd`; panics with its output when it fails.
    fn git(&self, cwd: &Path, args: &[&str]) -> String {
        let out = self.git_output(cwd, args);
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    fn git_output(&self, cwd: &Path, args: &[&str]) -> Output {
        Command::new("git")
            .current_dir(cwd)
            .args([
                "-c",
                "init.defaultBranch=main",
                "-c",
                "commit.gpgsign=false",
            ])
            .args(args)
            .env("HOME", self.path("home"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Test")
            .env("GIT_AUTHOR_EMAIL", "test@example.com")
            .env("GIT_COMMITTER_NAME", "Test")
            .env("GIT_COMMITTER_EMAIL", "test@example.com")
            .output()
            .unwrap()
    }

    /// A new working repository at `rel`.
    fn init(&self, rel: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(&p).unwrap();
        self.git(&p, &["init", "-q"]);
        p
    }

    /// Writes `files` (path, contents; `None` removes) into `repo` and
    /// commits them; the new commit id.
    fn commit(&self, repo: &Path, files: &[(&str, Option<&str>)], message: &str) -> String {
        for (path, contents) in files {
            let full = repo.join(path);
            match contents {
                Some(c) => {
                    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
                    std::fs::write(&full, c).unwrap();
                }
                None => std::fs::remove_file(&full).unwrap(),
            }
        }
        self.git(repo, &["add", "-A"]);
        self.git(repo, &["commit", "-q", "--allow-empty", "-m", message]);
        self.git(repo, &["rev-parse", "HEAD"])
    }
}

fn opts(repo: &str) -> Options {
    Options {
        repo: repo.to_string(),
        ..Options::default()
    }
}

fn file_url(p: &Path) -> String {
    format!("file://{}", p.display())
}

fn contents(tree: &clusterf::tree::Tree, path: &str) -> String {
    String::from_utf8(
        tree.files
            .get(path)
            .unwrap_or_else(|| panic!("{path} not in tree: {:?}", tree.files))
            .data()
            .to_vec(),
    )
    .unwrap()
}

/// main: v1 (tag v1) -> v3; feature (from v1): v2 plus dns.
fn history(s: &Scratch) -> (PathBuf, String, String, String) {
    let repo = s.init("work");
    let c1 = s.commit(
        &repo,
        &[
            ("services/web.yaml", Some(WEB_V1)),
            (".hidden/x", Some("x")),
        ],
        "v1",
    );
    s.git(&repo, &["tag", "v1"]);
    s.git(&repo, &["checkout", "-q", "-b", "feature"]);
    let c2 = s.commit(
        &repo,
        &[
            ("services/web.yaml", Some(WEB_V2)),
            ("services/dns.yaml", Some(DNS)),
        ],
        "v2",
    );
    s.git(&repo, &["checkout", "-q", "main"]);
    let c3 = s.commit(&repo, &[("services/web.yaml", Some(WEB_V3))], "v3");
    (repo, c1, c2, c3)
}

#[test]
fn local_repo_reads_head_branch_tag_and_commit() {
    if !have("git") {
        return;
    }
    let s = Scratch::new();
    let (repo, c1, c2, c3) = history(&s);
    let path = repo.display().to_string();

    let head = git::read(&opts(&path)).unwrap();
    assert_eq!(contents(&head, "services/web.yaml"), WEB_V3);
    assert_eq!(head.source.revision.as_deref(), Some(c3.as_str()));
    assert!(
        head.source.description.contains(&c3[..12]),
        "{}",
        head.source.description
    );
    assert!(
        !head.files.keys().any(|k| k.contains(".hidden")),
        "dot-files are skipped"
    );

    for (r, want, commit) in [
        ("v1", WEB_V1, &c1),
        ("feature", WEB_V2, &c2),
        ("main", WEB_V3, &c3),
        (c1.as_str(), WEB_V1, &c1),
        (&c2[..8], WEB_V2, &c2),
        ("feature~1", WEB_V1, &c1),
        ("refs/tags/v1", WEB_V1, &c1),
    ] {
        let mut o = opts(&path);
        o.git_ref = Some(r.to_string());
        let t = git::read(&o).unwrap();
        assert_eq!(contents(&t, "services/web.yaml"), want, "ref {r}");
        assert_eq!(
            t.source.revision.as_deref(),
            Some(commit.as_str()),
            "ref {r}"
        );
    }
    let mut o = opts(&path);
    o.git_ref = Some("feature".into());
    let t = git::read(&o).unwrap();
    assert_eq!(contents(&t, "services/dns.yaml"), DNS);
    assert_eq!(t.files.len(), 2, "{:?}", t.files);

    // Uncommitted changes in the work tree are not part of any commit.
    std::fs::write(repo.join("services/web.yaml"), "garbage").unwrap();
    let t = git::read(&opts(&path)).unwrap();
    assert_eq!(contents(&t, "services/web.yaml"), WEB_V3);
}

#[test]
fn bare_clone_reads_like_its_origin() {
    if !have("git") {
        return;
    }
    let s = Scratch::new();
    let (repo, _, c2, c3) = history(&s);
    s.git(
        s.dir.path(),
        &["clone", "-q", "--bare", repo.to_str().unwrap(), "bare.git"],
    );
    let bare = s.path("bare.git").display().to_string();
    let t = git::read(&opts(&bare)).unwrap();
    assert_eq!(t.source.revision.as_deref(), Some(c3.as_str()));
    assert_eq!(contents(&t, "services/web.yaml"), WEB_V3);
    let mut o = opts(&bare);
    o.git_ref = Some("feature".into());
    let t = git::read(&o).unwrap();
    assert_eq!(t.source.revision.as_deref(), Some(c2.as_str()));
    let mut o = opts(&bare);
    o.git_ref = Some("v1".into());
    assert_eq!(
        contents(&git::read(&o).unwrap(), "services/web.yaml"),
        WEB_V1
    );
}

#[test]
fn file_remote_fetches_incrementally_between_runs() {
    if !have("git") {
        return;
    }
    let s = Scratch::new();
    let remote = s.path("remote.git");
    s.git(s.dir.path(), &["init", "-q", "--bare", "remote.git"]);
    let work = s.init("work");
    s.git(
        &work,
        &["remote", "add", "origin", remote.to_str().unwrap()],
    );
    // Enough files that a full fetch and an incremental one differ clearly.
    let many: Vec<(String, String)> = (0..50)
        .map(|i| {
            (
                format!("services/svc{i:03}.yaml"),
                format!(
                    "frontend: {{ipv4: 10.0.{}.{}, tcp: 80}}\n",
                    i / 250,
                    i % 250 + 1
                ),
            )
        })
        .collect();
    let files: Vec<(&str, Option<&str>)> = many
        .iter()
        .map(|(p, c)| (p.as_str(), Some(c.as_str())))
        .collect();
    let c1 = s.commit(&work, &files, "many");
    s.git(&work, &["push", "-q", "origin", "main"]);

    let cache = s.path("cache");
    let url = file_url(&remote);
    let mut o = opts(&url);
    o.cache_dir = Some(cache.clone());

    // First run: everything is fetched.
    let mut first = GitSource::new(o.clone()).unwrap();
    let t = first.read().unwrap();
    assert_eq!(t.source.revision.as_deref(), Some(c1.as_str()));
    assert_eq!(t.files.len(), 50);
    assert!(
        t.source.description.starts_with(&url),
        "{}",
        t.source.description
    );
    let full = first.last_fetch().unwrap().clone();
    assert!(full.received_pack);
    assert!(full.objects >= 53, "commit + 2 trees + 50 blobs: {full:?}");
    assert!(first.cache_path().unwrap().starts_with(&cache));
    drop(first);

    // New commits pushed between runs: one file changes, one is added, a tag.
    let c2 = s.commit(
        &work,
        &[
            (
                "services/svc007.yaml",
                Some("frontend: {ipv4: 10.9.9.9, tcp: 80}\n"),
            ),
            ("services/new.yaml", Some(DNS)),
        ],
        "change two",
    );
    s.git(&work, &["tag", "release-2"]);
    s.git(&work, &["push", "-q", "origin", "main", "--tags"]);

    // Second run (a new process would start the same way): only what is new.
    let mut second = GitSource::new(o.clone()).unwrap();
    let t = second.read().unwrap();
    assert_eq!(t.source.revision.as_deref(), Some(c2.as_str()));
    assert_eq!(t.files.len(), 51);
    assert_eq!(contents(&t, "services/new.yaml"), DNS);
    let inc = second.last_fetch().unwrap().clone();
    assert!(inc.received_pack, "{inc:?}");
    // Commit, 2 trees, 2 blobs, plus the odd delta base gix appends when it
    // completes a thin pack: far from the 53 of the full fetch.
    assert!(
        inc.objects <= 8,
        "an incremental fetch, not a full one: {inc:?} after {full:?}"
    );

    // Nothing new: no pack at all; refs by branch, tag and commit all resolve.
    let t = second.read().unwrap();
    assert_eq!(t.source.revision.as_deref(), Some(c2.as_str()));
    assert!(!second.last_fetch().unwrap().received_pack);
    assert_eq!(
        second
            .read_at("release-2")
            .unwrap()
            .source
            .revision
            .as_deref(),
        Some(c2.as_str())
    );
    assert_eq!(
        second.read_at("main").unwrap().source.revision.as_deref(),
        Some(c2.as_str())
    );
    assert_eq!(
        second
            .read_at("origin/main~1")
            .unwrap()
            .source
            .revision
            .as_deref(),
        Some(c1.as_str())
    );
    assert_eq!(
        second.read_at(&c1).unwrap().source.revision.as_deref(),
        Some(c1.as_str())
    );

    // A kept source (the watch loop) while another run fetched into the
    // same cache: it sees the other run's objects and the new commit.
    let mut kept = GitSource::new(o.clone()).unwrap();
    kept.read().unwrap();
    let c3 = s.commit(&work, &[("services/svc001.yaml", Some(DNS))], "three");
    s.git(&work, &["push", "-q", "origin", "main"]);
    GitSource::new(o.clone()).unwrap().read().unwrap();
    let t = kept.read().unwrap();
    assert_eq!(t.source.revision.as_deref(), Some(c3.as_str()));
    assert_eq!(contents(&t, "services/svc001.yaml"), DNS);
    assert_eq!(
        contents(&t, "services/svc007.yaml"),
        "frontend: {ipv4: 10.9.9.9, tcp: 80}\n"
    );
    assert_eq!(t.files.len(), 51);
}

/// The error of `git::read(o)` as the binary prints it (`{:#}`), checked
/// to be one clean line: no newline, no Rust debug text.
fn read_error(o: &Options) -> String {
    let e = format!("{:#}", git::read(o).unwrap_err());
    assert_clean(&e);
    e
}

fn assert_clean(e: &str) {
    for junk in ["\n", " { ", "Caused by", "Message", "class:"] {
        assert!(!e.contains(junk), "{junk:?} in {e}");
    }
}

#[test]
fn unknown_ref_is_a_one_line_error_naming_repo_and_ref() {
    if !have("git") {
        return;
    }
    let s = Scratch::new();
    let (repo, ..) = history(&s);
    let path = repo.display().to_string();
    let mut o = opts(&path);
    o.git_ref = Some("no-such-branch".into());
    assert_eq!(
        read_error(&o),
        format!("config repo {path} ref no-such-branch: no such branch, tag or commit")
    );
    o.git_ref = Some("refs/heads/nope".into());
    assert_eq!(
        read_error(&o),
        format!("config repo {path} ref refs/heads/nope: no such branch, tag or commit")
    );

    // The same through a remote.
    let url = file_url(&repo);
    let mut o = opts(&url);
    o.cache_dir = Some(s.path("cache"));
    o.git_ref = Some("nope".into());
    assert_eq!(
        read_error(&o),
        format!("config repo {url} ref nope: no such branch, tag or commit")
    );
}

#[test]
fn ref_errors_say_what_is_wrong() {
    if !have("git") {
        return;
    }
    let s = Scratch::new();
    let (repo, _, _, c3) = history(&s);
    let path = repo.display().to_string();
    s.git(
        &repo,
        &["tag", "-a", "-m", "a tree", "tree-tag", "HEAD^{tree}"],
    );
    let short = &c3[..7];
    for (r, want) in [
        ("HEAD^{tree}", "a tree, not a commit".to_string()),
        ("HEAD:services/web.yaml", "a blob, not a commit".into()),
        ("tree-tag", "a tag of no commit".into()),
        (
            "HEAD~99",
            format!(
                "commit {short} has 1 ancestors along the first parent and ancestor number 99 is out of range"
            ),
        ),
        (
            "HEAD:nope",
            format!(
                "could not find path \"nope\" in tree {} of parent object {short}",
                &s.git(&repo, &["rev-parse", "HEAD^{tree}"])[..7]
            ),
        ),
    ] {
        let mut o = opts(&path);
        o.git_ref = Some(r.into());
        assert_eq!(
            read_error(&o),
            format!("config repo {path} ref {r}: {want}")
        );
    }

    // A repository without commits, local and as a remote.
    let empty = s.init("empty");
    let e = empty.display().to_string();
    assert_eq!(
        read_error(&opts(&e)),
        format!("config repo {e} ref HEAD: no commit yet (HEAD names an unborn branch)")
    );
    let url = file_url(&empty);
    let mut o = opts(&url);
    o.cache_dir = Some(s.path("cache"));
    assert_eq!(
        read_error(&o),
        format!("config repo {url} ref HEAD: no commit yet (HEAD names an unborn branch)")
    );
}

#[test]
fn unreachable_remote_and_missing_repo_are_errors() {
    if !have("git") {
        return;
    }
    let s = Scratch::new();
    let missing = s.path("does-not-exist.git");
    let url = file_url(&missing);
    let mut o = opts(&url);
    o.cache_dir = Some(s.path("cache"));
    assert_eq!(
        read_error(&o),
        format!(
            "config repo {url}: cannot fetch: {}: no such file or directory",
            missing.display()
        )
    );

    let not_repo = s.path("plain");
    std::fs::create_dir_all(&not_repo).unwrap();
    let p = not_repo.display().to_string();
    assert_eq!(
        read_error(&opts(&p)),
        format!("config repo {p}: not a git repository")
    );
    let url = file_url(&not_repo);
    let mut o = opts(&url);
    o.cache_dir = Some(s.path("cache"));
    assert_eq!(
        read_error(&o),
        format!("config repo {url}: cannot fetch: {p}: not a git repository")
    );
    let p = missing.display().to_string();
    assert_eq!(
        read_error(&opts(&p)),
        format!("config repo {p}: no such file or directory")
    );

    // Credentials in the URL never reach the message.
    let mut o = opts("https://user:hunter2secret@127.0.0.1:1/config.git");
    o.cache_dir = Some(s.path("cache"));
    assert_eq!(
        read_error(&o),
        "config repo https://127.0.0.1:1/config.git: cannot fetch: transport handshake failed: connection refused"
    );

    // A cache directory that cannot be made.
    let file = s.path("a-file");
    std::fs::write(&file, "x").unwrap();
    let mut o = opts(&file_url(&missing));
    o.cache_dir = Some(file.clone());
    let e = read_error(&o);
    assert!(
        e.starts_with(&format!(
            "config repo {}: cannot create cache {}/git/does-not-exist-",
            file_url(&missing),
            file.display()
        )) && e.ends_with(": not a directory"),
        "{e}"
    );
}

#[test]
fn cli_git_errors_are_one_clean_line() {
    if !have("git") {
        return;
    }
    let s = Scratch::new();
    let home = s.path("home");
    let (repo, ..) = history(&s);
    let repo_s = repo.to_str().unwrap();
    let plain = s.path("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let plain_s = plain.to_str().unwrap();
    for (args, want) in [
        (
            vec!["validate", "--config-repo", plain_s],
            format!("error: config repo {plain_s}: not a git repository\n"),
        ),
        (
            vec![
                "plan",
                "--config-repo",
                repo_s,
                "--ref",
                "HEAD",
                "--base-ref",
                "nosuch",
            ],
            format!(
                "error: reading the config at --base-ref nosuch: config repo {repo_s} ref nosuch: no such branch, tag or commit\n"
            ),
        ),
        (
            vec!["render", "--config-repo", repo_s, "--ref", "nosuch"],
            format!("error: config repo {repo_s} ref nosuch: no such branch, tag or commit\n"),
        ),
    ] {
        let out = clusterf(&args, &home);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), want, "{args:?}");
    }
}

#[test]
fn corrupt_repo_is_an_error() {
    if !have("git") {
        return;
    }
    let s = Scratch::new();
    let repo = s.init("work");
    let c1 = s.commit(&repo, &[("services/web.yaml", Some(WEB_V1))], "v1");
    let blob = s.git(&repo, &["rev-parse", "HEAD:services/web.yaml"]);
    let loose = repo.join(".git/objects").join(&blob[..2]).join(&blob[2..]);
    let mut perms = std::fs::metadata(&loose).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&loose, perms).unwrap();
    std::fs::write(&loose, b"this is not zlib data").unwrap();
    let path = repo.display().to_string();
    assert_eq!(
        read_error(&opts(&path)),
        format!(
            "config repo {path} ref HEAD: commit {}: services/web.yaml: cannot read blob {blob}: could not read loose object header, path=\"{}\": invalid input data",
            &c1[..12],
            loose.display()
        )
    );

    // A ref pointing at a missing commit.
    let repo2 = s.init("work2");
    s.commit(&repo2, &[("services/web.yaml", Some(WEB_V1))], "v1");
    std::fs::write(
        repo2.join(".git/refs/heads/broken"),
        "1111111111111111111111111111111111111111\n",
    )
    .unwrap();
    let mut o = opts(repo2.to_str().unwrap());
    o.git_ref = Some("broken".into());
    assert_eq!(
        read_error(&o),
        format!(
            "config repo {} ref broken: an object with id 1111111111111111111111111111111111111111 could not be found",
            repo2.display()
        )
    );
}

#[test]
fn subdir_reads_the_tree_below_it() {
    if !have("git") {
        return;
    }
    let s = Scratch::new();
    let repo = s.init("work");
    s.commit(
        &repo,
        &[
            ("README.md", Some("docs\n")),
            ("deploy/clusterf/services/web.yaml", Some(WEB_V1)),
            ("deploy/clusterf/.github/x", Some("hidden")),
            ("deploy/other/services/dns.yaml", Some(DNS)),
        ],
        "v1",
    );
    let path = repo.display().to_string();
    for sub in ["deploy/clusterf", "./deploy/clusterf/", "deploy//clusterf"] {
        let mut o = opts(&path);
        o.subdir = Some(sub.into());
        let t = git::read(&o).unwrap();
        assert_eq!(t.files.keys().collect::<Vec<_>>(), ["services/web.yaml"]);
        assert!(
            t.source.description.ends_with(":deploy/clusterf"),
            "{}",
            t.source.description
        );
    }
    // A kept source re-reads: a change below the subdir shows, a commit
    // elsewhere in the repository gives the same files at the new commit.
    let mut o = opts(&path);
    o.subdir = Some("deploy/clusterf".into());
    let mut kept = GitSource::new(o).unwrap();
    kept.read().unwrap();
    let c2 = s.commit(
        &repo,
        &[
            ("deploy/clusterf/services/web.yaml", Some(WEB_V2)),
            ("deploy/clusterf/services/dns.yaml", Some(DNS)),
        ],
        "v2",
    );
    let t = kept.read().unwrap();
    assert_eq!(t.source.revision.as_deref(), Some(c2.as_str()));
    assert_eq!(contents(&t, "services/web.yaml"), WEB_V2);
    assert_eq!(contents(&t, "services/dns.yaml"), DNS);
    let c3 = s.commit(&repo, &[("README.md", Some("more docs\n"))], "docs");
    let t2 = kept.read().unwrap();
    assert_eq!(t2.source.revision.as_deref(), Some(c3.as_str()));
    assert!(t2.source.description.contains(&c3[..12]));
    assert_eq!(t2.files, t.files);
    let t3 = kept.read_at(&c2).unwrap();
    assert_eq!(t3.files, t.files);
    assert_eq!(t3.source.revision.as_deref(), Some(c2.as_str()));

    for (sub, why) in [
        ("deploy/nope", "no such directory"),
        ("README.md", "not a directory"),
        ("../x", "must not contain .."),
    ] {
        let mut o = opts(&path);
        o.subdir = Some(sub.into());
        let e = git::read(&o).map(|_| ()).unwrap_err();
        let e = format!("{e:#}");
        assert!(e.contains(why) && !e.contains('\n'), "{sub}: {e}");
    }
}

#[test]
fn odd_entries_are_reported_not_dropped() {
    if !have("git") {
        return;
    }
    use std::os::unix::ffi::OsStrExt;
    let s = Scratch::new();
    let repo = s.init("work");
    s.commit(&repo, &[("services/web.yaml", Some(WEB_V1))], "v1");
    let name = std::ffi::OsStr::from_bytes(b"services/bad-\xff.yaml");
    std::fs::write(repo.join(name), WEB_V1).unwrap();
    std::os::unix::fs::symlink("web.yaml", repo.join("services/link.yaml")).unwrap();
    s.commit(&repo, &[], "odd");
    let t = git::read(&opts(repo.to_str().unwrap())).unwrap();
    assert_eq!(t.files.keys().collect::<Vec<_>>(), ["services/web.yaml"]);
    let unreadable: Vec<_> = t.unreadable.iter().collect();
    assert_eq!(unreadable.len(), 2, "{unreadable:?}");
    assert!(
        t.unreadable["services/bad-\u{fffd}.yaml"].contains("not valid UTF-8"),
        "{unreadable:?}"
    );
    assert!(t.unreadable["services/link.yaml"].contains("symbolic link"));
}

/// Writes a tree object of `entries` (mode, name, object id) as given, with
/// `git hash-object --literally`, which checks nothing: a tree a broken or
/// hostile tool could push. Its id.
fn raw_tree(s: &Scratch, repo: &Path, entries: &[(&str, &str, &str)]) -> String {
    let mut bytes = Vec::new();
    for (mode, name, id) in entries {
        bytes.extend_from_slice(format!("{mode} {name}\0").as_bytes());
        let raw: Vec<u8> = (0..id.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&id[i..i + 2], 16).unwrap())
            .collect();
        bytes.extend_from_slice(&raw);
    }
    let mut child = Command::new("git")
        .current_dir(repo)
        .args(["hash-object", "--literally", "-t", "tree", "-w", "--stdin"])
        .env("HOME", s.path("home"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "git hash-object failed");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Two entries of one name in a tree (git fsck's duplicateEntries): one
/// silently won before; now the read fails, naming the path and commit.
#[test]
fn two_entries_of_one_name_in_a_git_tree_are_an_error_naming_path_and_commit() {
    if !have("git") {
        return;
    }
    let s = Scratch::new();
    let repo = s.init("work");
    s.commit(
        &repo,
        &[
            ("services/web.yaml", Some(WEB_V1)),
            ("services/dns.yaml", Some(DNS)),
        ],
        "v1",
    );
    let web = s.git(&repo, &["rev-parse", "HEAD:services/web.yaml"]);
    let dns = s.git(&repo, &["rev-parse", "HEAD:services/dns.yaml"]);
    let good = s.git(&repo, &["rev-parse", "HEAD:services"]);
    let path = repo.display().to_string();
    let broken = |root: &str, name: &str| {
        let commit = s.git(&repo, &["commit-tree", root, "-m", "broken"]);
        s.git(
            &repo,
            &["update-ref", &format!("refs/heads/{name}"), &commit],
        );
        let mut o = opts(&path);
        o.git_ref = Some(name.into());
        (read_error(&o), commit[..12].to_string())
    };

    // Two files named web.yaml, with other contents.
    let services = raw_tree(
        &s,
        &repo,
        &[("100644", "web.yaml", &web), ("100644", "web.yaml", &dns)],
    );
    let root = raw_tree(&s, &repo, &[("40000", "services", &services)]);
    let (e, commit) = broken(&root, "twice");
    assert_eq!(
        e,
        format!(
            "config repo {path} ref twice: commit {commit}: services/web.yaml: two entries of this name in one tree (git fsck: duplicateEntries): the commit is broken"
        )
    );

    // A file and a directory named services: not neighbours in Git's
    // order (services, services.txt, services/).
    let root = raw_tree(
        &s,
        &repo,
        &[
            ("100644", "services", &web),
            ("100644", "services.txt", &dns),
            ("40000", "services", &good),
        ],
    );
    let (e, commit) = broken(&root, "file-and-dir");
    assert_eq!(
        e,
        format!(
            "config repo {path} ref file-and-dir: commit {commit}: services: two entries of this name in one tree (git fsck: duplicateEntries): the commit is broken"
        )
    );
}

/// A blob over the size limit is named unreadable from its header, never
/// read: the config fails, naming the file.
#[test]
fn a_git_blob_over_the_size_limit_is_named_not_read() {
    if !have("git") {
        return;
    }
    let s = Scratch::new();
    let repo = s.init("work");
    let big = "#".repeat(usize::try_from(clusterf::tree::FILE_LIMIT).unwrap() + 1);
    s.commit(
        &repo,
        &[
            ("services/web.yaml", Some(WEB_V1)),
            ("services/big.yaml", Some(&big)),
        ],
        "big",
    );
    let t = git::read(&opts(repo.to_str().unwrap())).unwrap();
    assert_eq!(t.files.keys().collect::<Vec<_>>(), ["services/web.yaml"]);
    assert_eq!(
        t.unreadable["services/big.yaml"],
        "larger than the limit of 8 MiB"
    );
    let out = clusterf(
        &["validate", "--config-repo", repo.to_str().unwrap()],
        &s.path("home"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("services/big.yaml: cannot read: larger than the limit of 8 MiB"),
        "{err}"
    );
}

#[test]
fn read_at_reads_the_base_of_a_change() {
    if !have("git") {
        return;
    }
    let s = Scratch::new();
    let (repo, c1, _, c3) = history(&s);
    let args = ConfigArgs {
        config_path: None,
        config_repo: Some(repo.display().to_string()),
        git_ref: Some("HEAD".into()),
        subdir: None,
        cache_dir: None,
        verify_signatures: false,
        allowed_signers: None,
    };
    let head = args.source().unwrap().read().unwrap();
    let base = args.read_at("v1").unwrap();
    assert_eq!(head.source.revision.as_deref(), Some(c3.as_str()));
    assert_eq!(base.source.revision.as_deref(), Some(c1.as_str()));
    assert_eq!(contents(&base, "services/web.yaml"), WEB_V1);
    let dir_args = ConfigArgs {
        config_path: Some(repo.clone()),
        config_repo: None,
        ..args.clone()
    };
    assert!(dir_args.read_at("v1").is_err(), "needs --config-repo");
}

/// Runs the clusterf binary.
fn clusterf(args: &[&str], home: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clusterf"))
        .args(args)
        .env("HOME", home)
        .env_remove("XDG_CACHE_HOME")
        .output()
        .unwrap()
}

#[test]
fn cli_config_repo_matches_config_path() {
    if !have("git") {
        return;
    }
    let s = Scratch::new();
    let repo = s.init("work");
    let c1 = s.commit(
        &repo,
        &[
            ("cfg/services/web.yaml", Some(WEB_V2)),
            (
                "cfg/services/dns/frontend",
                Some(r#"{"ipv4": "10.0.0.53", "udp": 53}"#),
            ),
            (
                "cfg/services/dns/backends/a",
                Some(r#"{"ipv4": "10.1.0.53", "udp": 53}"#),
            ),
            (
                "cfg/routes/lan.yaml",
                Some("prefix: 10.1.0.0/16\nmethod: droute\n"),
            ),
        ],
        "config",
    );
    let home = s.path("home");
    let cfg = repo.join("cfg");
    let repo_s = repo.to_str().unwrap();
    let url = file_url(&repo);
    for cmd in [
        vec!["validate"],
        vec!["render", "--output", "yaml"],
        vec!["render", "--output", "json"],
        vec!["render", "--output", "ipvsadm"],
    ] {
        let mut by_path = cmd.clone();
        by_path.extend(["--config-path", cfg.to_str().unwrap()]);
        let want = clusterf(&by_path, &home);
        assert!(want.status.success(), "{by_path:?}: {want:?}");
        for repo_arg in [repo_s, url.as_str()] {
            let mut by_repo = cmd.clone();
            by_repo.extend(["--config-repo", repo_arg, "--subdir", "cfg"]);
            let got = clusterf(&by_repo, &home);
            assert_eq!(got.status.code(), want.status.code(), "{by_repo:?}");
            assert_eq!(
                String::from_utf8_lossy(&got.stdout),
                String::from_utf8_lossy(&want.stdout),
                "{by_repo:?}"
            );
            assert_eq!(
                String::from_utf8_lossy(&got.stderr),
                String::from_utf8_lossy(&want.stderr),
                "{by_repo:?}"
            );
        }
    }
    // The default cache directory is below HOME when no --cache-dir is given.
    assert!(home.join(".cache/clusterf/git").is_dir());

    // A broken commit: diagnostics name the repo-root path and the commit.
    let c2 = s.commit(
        &repo,
        &[(
            "cfg/services/web.yaml",
            Some("frontend: {ipv4: 10.0.0.1, tcp: 80}\nbogus: 1\n"),
        )],
        "broken",
    );
    let out = clusterf(
        &["validate", "--config-repo", repo_s, "--subdir", "cfg"],
        &home,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cfg/services/web.yaml:2:"), "{err}");
    assert!(err.contains(&c2[..12]), "names the commit: {err}");
    // The good commit still validates by ref.
    let out = clusterf(
        &[
            "validate",
            "--config-repo",
            repo_s,
            "--subdir",
            "cfg",
            "--ref",
            &c1,
        ],
        &home,
    );
    assert!(out.status.success(), "{out:?}");

    // An unknown ref: one line, exit 1, nothing on stdout.
    let out = clusterf(&["render", "--config-repo", repo_s, "--ref", "nope"], &home);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(repo_s) && err.contains("nope"), "{err}");
}

/// An SSH key pair in `dir`; returns (private key path, public key line).
fn ssh_key(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    (key, public.trim().to_string())
}

#[test]
fn verify_signatures_accepts_only_allowed_signers() {
    if !have("git") || !have("ssh-keygen") {
        return;
    }
    let s = Scratch::new();
    let keys = s.path("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let (good_key, good_pub) = ssh_key(&keys, "good");
    let (evil_key, _) = ssh_key(&keys, "evil");
    let signers = keys.join("allowed_signers");
    std::fs::write(&signers, format!("test@example.com {good_pub}\n")).unwrap();

    let repo = s.init("work");
    s.git(&repo, &["config", "gpg.format", "ssh"]);
    let sign = |key: &Path, msg: &str| {
        std::fs::write(repo.join("services/web.yaml"), format!("{WEB_V1}# {msg}\n")).unwrap();
        s.git(&repo, &["add", "-A"]);
        s.git(
            &repo,
            &[
                "-c",
                &format!("user.signingkey={}", key.display()),
                "commit",
                "-q",
                "-S",
                "-m",
                msg,
            ],
        );
        s.git(&repo, &["rev-parse", "HEAD"])
    };
    std::fs::create_dir_all(repo.join("services")).unwrap();
    let good = sign(&good_key, "good");
    s.git(&repo, &["tag", "good"]);
    let evil = sign(&evil_key, "evil");
    s.git(&repo, &["tag", "evil"]);
    let unsigned = s.commit(&repo, &[("services/web.yaml", Some(WEB_V1))], "unsigned");

    let path = repo.display().to_string();
    let read = |r: &str| {
        let mut o = opts(&path);
        o.git_ref = Some(r.into());
        o.allowed_signers = Some(signers.clone());
        git::read(&o).map_err(|e| format!("{e:#}"))
    };
    let t = read("good").unwrap();
    assert_eq!(t.source.revision.as_deref(), Some(good.as_str()));
    assert_eq!(
        read("evil").unwrap_err(),
        format!(
            "config repo {path} ref evil: commit {}: signature does not verify against {}: the key is not an allowed signer",
            &evil[..12],
            signers.display()
        )
    );
    assert_eq!(
        read("HEAD").unwrap_err(),
        format!(
            "config repo {path} ref HEAD: commit {}: not signed, and --verify-signatures is set",
            &unsigned[..12]
        )
    );
    // Without verification, the unsigned head reads fine.
    assert!(git::read(&opts(&path)).is_ok());
    // An allowed-signers file that is a pipe would stall ssh-keygen: refused.
    let fifo = keys.join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let mut o = opts(&path);
    o.git_ref = Some("good".into());
    o.allowed_signers = Some(fifo.clone());
    assert_eq!(
        format!("{:#}", git::read(&o).unwrap_err()),
        format!(
            "config repo {path} ref good: commit {}: allowed signers file {}: not a regular file",
            &good[..12],
            fifo.display()
        )
    );

    // Through the binary: --verify-signatures needs --allowed-signers.
    let home = s.path("home");
    let out = clusterf(
        &["validate", "--config-repo", &path, "--verify-signatures"],
        &home,
    );
    assert!(!out.status.success());
    let out = clusterf(
        &[
            "validate",
            "--config-repo",
            &path,
            "--ref",
            "good",
            "--verify-signatures",
            "--allowed-signers",
            signers.to_str().unwrap(),
        ],
        &home,
    );
    assert!(out.status.success(), "{out:?}");
    let out = clusterf(
        &[
            "validate",
            "--config-repo",
            &path,
            "--verify-signatures",
            "--allowed-signers",
            signers.to_str().unwrap(),
        ],
        &home,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("not signed"), "{err}");
}

/// Commits `files` (path, contents), all written.
fn commit_all(s: &Scratch, repo: &Path, files: &[(String, String)], message: &str) {
    let refs: Vec<(&str, Option<&str>)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), Some(c.as_str())))
        .collect();
    s.commit(repo, &refs, message);
}

/// The Git read of `repo`'s head holds `n` files, as the directory does.
fn reads_as_the_directory(repo: &Path, n: usize) -> clusterf::tree::Tree {
    let from_git = git::read(&opts(repo.to_str().unwrap())).unwrap();
    let from_dir = clusterf::source::dir::read(repo).unwrap();
    assert_eq!(from_git.files.len(), n);
    assert_eq!(from_git.files, from_dir.files);
    assert!(from_git.unreadable.is_empty());
    from_git
}

#[test]
fn many_files_read_the_same_as_the_directory() {
    if !have("git") {
        return;
    }
    // Enough files for the parallel blob readers, and some shared contents.
    let s = Scratch::new();
    let repo = s.init("work");
    let files: Vec<(String, String)> = (0..600)
        .map(|i| {
            (
                format!("services/s{}/svc{i:04}.yaml", i % 7),
                format!("frontend: {{ipv4: 10.0.{}.{}, tcp: 80}}\n", i / 200, i % 3),
            )
        })
        .collect();
    commit_all(&s, &repo, &files, "many");
    reads_as_the_directory(&repo, 600);
}

#[test]
fn a_packed_repository_of_delta_chains_and_loose_objects_reads_the_same_as_the_directory() {
    if !have("git") {
        return;
    }
    // Similar files packed by `git gc` are stored as delta chains of each
    // other, read in storage order by several readers; a later commit adds
    // loose objects beside the pack.
    let s = Scratch::new();
    let repo = s.init("work");
    let service = |i: usize, weight: usize| {
        let mut doc = format!(
            "frontend: {{ipv4: 10.1.{}.{}, tcp: 80}}\nbackends:\n",
            i / 250,
            i % 250
        );
        for j in 0..6 {
            doc.push_str(&format!(
                "  b{j}: {{ipv4: 10.2.{}.{}, tcp: 8080, weight: {}}}\n",
                i / 40,
                (i % 40) * 6 + j,
                j + weight
            ));
        }
        doc
    };
    let files: Vec<(String, String)> = (0..700)
        .map(|i| (format!("services/svc{i:04}.yaml"), service(i, 1)))
        .collect();
    commit_all(&s, &repo, &files, "many");
    s.git(&repo, &["gc", "-q"]);
    let changed: Vec<(String, String)> = [3, 350, 699, 700, 701]
        .iter()
        .map(|&i| (format!("services/svc{i:04}.yaml"), service(i, 7)))
        .collect();
    commit_all(&s, &repo, &changed, "some changed, some new");
    let from_git = reads_as_the_directory(&repo, 702);
    let from_dir = clusterf::source::dir::read(&repo).unwrap();
    assert_eq!(from_git.files.fingerprint(), from_dir.files.fingerprint());
}

#[test]
fn pull_request_mode_plans_base_against_head() {
    if !have("git") {
        return;
    }
    let s = Scratch::new();
    let home = s.path("home");
    let origin = s.init("origin");
    let base = s.commit(&origin, &[("services/web.yaml", Some(WEB_V1))], "base");
    s.git(&origin, &["checkout", "-q", "-b", "change"]);
    let head = s.commit(&origin, &[("services/web.yaml", Some(WEB_V2))], "add b");
    // What actions/checkout with fetch-depth 0 leaves: the change checked
    // out, the base branch as origin/main.
    s.git(
        s.dir.path(),
        &[
            "clone",
            "-q",
            "-b",
            "change",
            origin.to_str().unwrap(),
            "ci",
        ],
    );
    let ci = s.path("ci");
    let ci_s = ci.to_str().unwrap();
    let plan = |extra: &[&str]| {
        let mut args = vec![
            "plan",
            "--config-repo",
            ci_s,
            "--ref",
            "HEAD",
            "--base-ref",
            "origin/main",
            "--detailed-exitcode",
        ];
        args.extend(extra);
        clusterf(&args, &home)
    };

    let out = clusterf(&["validate", "--config-repo", ci_s, "--ref", "HEAD"], &home);
    assert!(out.status.success(), "{out:?}");
    let out = plan(&["--output", "markdown"]);
    let md = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "changes present: {out:?}");
    assert!(md.contains("+   dest 10.1.0.2:80"), "{md}");
    assert!(!md.contains("10.1.0.1:80"), "only the change: {md}");

    let out = plan(&["--output", "json"]);
    assert_eq!(out.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["inputs"]["config_revision"], head.as_str());
    assert!(
        doc["live"]["source"].as_str().unwrap().contains(&base),
        "{doc}"
    );
    assert_eq!(doc["summary"]["add"], 1);
    assert_eq!(doc["summary"]["delete"], 0);

    // The same plan from the file:// remote, by branch names.
    let url = file_url(&origin);
    let out = clusterf(
        &[
            "plan",
            "--config-repo",
            &url,
            "--ref",
            "change",
            "--base-ref",
            "main",
            "--output",
            "markdown",
            "--cache-dir",
            s.path("cache").to_str().unwrap(),
        ],
        &home,
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), md);

    // Nothing changed: exit 0.
    let out = clusterf(
        &[
            "plan",
            "--config-repo",
            ci_s,
            "--ref",
            "origin/main",
            "--base-ref",
            "origin/main",
            "--detailed-exitcode",
        ],
        &home,
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    // Invalid config at the head: validate and plan fail, naming the file.
    s.commit(
        &ci,
        &[(
            "services/web.yaml",
            Some("frontend: {ipv4: 10.0.0.1, tcp: 99999}\n"),
        )],
        "broken",
    );
    for out in [
        clusterf(&["validate", "--config-repo", ci_s], &home),
        plan(&["--output", "markdown"]),
    ] {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("services/web.yaml:1:"), "{err}");
        assert!(out.stdout.is_empty());
    }
}

/// A bare `remote.git` that `work` pushes to, holding one commit (WEB_V1);
/// (remote, work, commit).
fn pushed_remote(s: &Scratch) -> (PathBuf, PathBuf, String) {
    let remote = s.path("remote.git");
    s.git(s.dir.path(), &["init", "-q", "--bare", "remote.git"]);
    let work = s.init("work");
    s.git(
        &work,
        &["remote", "add", "origin", remote.to_str().unwrap()],
    );
    let c1 = s.commit(&work, &[("services/web.yaml", Some(WEB_V1))], "v1");
    s.git(&work, &["push", "-q", "origin", "main"]);
    (remote, work, c1)
}

/// Runs `f` with a tracing subscriber that writes into a string; the text.
fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    (out, text)
}

#[test]
fn a_poller_started_while_the_remote_is_down_serves_the_cached_commit() {
    if !have("git") {
        return;
    }
    let s = Scratch::new();
    let (remote, work, c1) = pushed_remote(&s);
    let away = s.path("away.git");
    let url = file_url(&remote);
    let mut o = opts(&url);
    o.cache_dir = Some(s.path("cache"));

    // An earlier run fetched c1; the remote then goes away.
    let mut first = GitSource::new(o.clone()).unwrap();
    first.read().unwrap();
    assert!(first.cached().is_none());
    let cache = first.cache_path().unwrap().to_path_buf();
    drop(first);
    // Pretend that fetch was two hours ago.
    let then = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 7300;
    std::fs::write(cache.join("clusterf-fetched-at"), format!("{then}\n")).unwrap();
    std::fs::rename(&remote, &away).unwrap();

    // A one-shot read answers about the remote as it is now: an error.
    let down = format!(
        "config repo {url}: cannot fetch: {}: no such file or directory",
        remote.display()
    );
    assert_eq!(read_error(&o), down);

    // A poller (the daemon after a restart): the fetch fails, the cached
    // commit is served, with a warning naming it and its age.
    let mut poller = GitSource::new(o.clone()).unwrap();
    let (r, log) = logged(|| poller.fetch());
    r.unwrap();
    let cached = poller.cached().expect("served from the cache").clone();
    assert_eq!(cached.commit, c1);
    assert_eq!(
        cached.fetched_at,
        Some(UNIX_EPOCH + Duration::from_secs(then))
    );
    let committed = cached.committed_at.unwrap();
    assert!(committed.elapsed().unwrap() < Duration::from_secs(600));
    assert_eq!(
        cached.fetch_error,
        format!(
            "cannot fetch: {}: no such file or directory",
            remote.display()
        )
    );
    assert_eq!(log.lines().count(), 1, "{log}");
    let want = format!(
        "WARN config repo {url}: {}; serving commit {} of ref HEAD from the cache (committed ",
        cached.fetch_error,
        &c1[..12]
    );
    assert!(log.trim_start().starts_with(&want), "{log}\nwant: {want}");
    assert!(
        log.contains(" ago, fetched 2h ago) until a fetch succeeds"),
        "{log}"
    );
    assert!(log.contains(&format!("commit=\"{c1}\"")), "{log}");
    let t = poller.read_commit(None).unwrap();
    assert_eq!(t.source.revision.as_deref(), Some(c1.as_str()));
    assert_eq!(contents(&t, "services/web.yaml"), WEB_V1);

    // Still down: the next poll tries again and fails (the caller keeps the
    // commit it has), without another warning from here.
    let (r, log) = logged(|| poller.fetch());
    assert_eq!(format!("{:#}", r.unwrap_err()), down);
    assert_eq!(log, "");

    // The remote is back with a new commit: the next poll fetches it.
    std::fs::rename(&away, &remote).unwrap();
    let c2 = s.commit(&work, &[("services/web.yaml", Some(WEB_V2))], "v2");
    s.git(&work, &["push", "-q", "origin", "main"]);
    poller.fetch().unwrap();
    assert!(poller.cached().is_none());
    let t = poller.read_commit(None).unwrap();
    assert_eq!(t.source.revision.as_deref(), Some(c2.as_str()));
    assert_eq!(contents(&t, "services/web.yaml"), WEB_V2);
    let fetched: u64 = std::fs::read_to_string(cache.join("clusterf-fetched-at"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(fetched > then + 7000, "the successful fetch is recorded");

    // Down again: a ref the cache does not hold is no fallback, nor is a
    // cache that was never filled.
    std::fs::rename(&remote, &away).unwrap();
    let mut o2 = o.clone();
    o2.git_ref = Some("no-such-branch".into());
    let mut p2 = GitSource::new(o2).unwrap();
    assert!(p2.fetch().is_err());
    assert!(p2.cached().is_none());
    let mut o3 = o.clone();
    o3.cache_dir = Some(s.path("empty-cache"));
    let mut p3 = GitSource::new(o3).unwrap();
    assert!(p3.fetch().is_err());
    assert!(p3.cached().is_none());
    // The one the cache holds is served by ref name too.
    let mut o4 = o.clone();
    o4.git_ref = Some("main".into());
    let mut p4 = GitSource::new(o4).unwrap();
    p4.fetch().unwrap();
    assert_eq!(p4.cached().unwrap().commit, c2);
    assert_eq!(
        p4.read_commit(None).unwrap().source.revision.as_deref(),
        Some(c2.as_str())
    );
}

async fn eventually(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The repro of the audit: run once, stop, the remote goes away, start
/// again: the daemon applies the cached commit and becomes ready, and
/// picks up the remote when it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_restarted_while_the_remote_is_down_applies_the_cached_commit() {
    if !have("git") {
        return;
    }
    let s = Scratch::new();
    let (remote, work, _) = pushed_remote(&s);
    let away = s.path("away.git");
    let url = file_url(&remote);
    let cache = s.path("cache");

    #[derive(Parser)]
    struct Sources {
        #[command(flatten)]
        config: ConfigArgs,
        #[command(flatten)]
        overlay: OverlayArgs,
    }
    let start = || async {
        let src = Sources::try_parse_from([
            "t",
            "--config-repo",
            &url,
            "--cache-dir",
            cache.to_str().unwrap(),
        ])
        .unwrap();
        let args = WatchArgs {
            metrics_listen: Some("127.0.0.1:0".parse().unwrap()),
            poll: Duration::from_secs(3600),
            resync: Duration::from_secs(3600),
            ..WatchArgs::default()
        };
        let kernel = MemoryKernel::default();
        let daemon = Daemon::start(
            resolve(&src.config, &src.overlay, Default::default(), &args).unwrap(),
            Box::new(kernel.clone()),
        )
        .await
        .unwrap();
        (daemon, kernel)
    };

    // The first run fetches and applies the commit.
    let (daemon, kernel) = start().await;
    eventually(Duration::from_secs(20), "the first run's commit", || {
        kernel.table().dest_count() == 1
    })
    .await;
    daemon.stop().await.unwrap();

    // Restart while the remote is away: the cached commit is applied.
    std::fs::rename(&remote, &away).unwrap();
    let (daemon, kernel) = start().await;
    let addr = daemon.metrics_addr().unwrap();
    eventually(Duration::from_secs(20), "the cached commit applied", || {
        kernel.table().dest_count() == 1
    })
    .await;
    assert_eq!(http(addr, "GET", "/readyz").0, 200);

    // The remote is back with a new commit: a poll (the hook) applies it.
    std::fs::rename(&away, &remote).unwrap();
    s.commit(&work, &[("services/web.yaml", Some(WEB_V2))], "v2");
    s.git(&work, &["push", "-q", "origin", "main"]);
    assert_eq!(http(addr, "POST", "/hooks/git").0, 202);
    eventually(Duration::from_secs(20), "the new commit applied", || {
        kernel.table().dest_count() == 2
    })
    .await;
    daemon.stop().await.unwrap();
}
