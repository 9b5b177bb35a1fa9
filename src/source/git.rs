//! A config tree from a Git commit, read with gix without a checkout.
//!
//! The repository is a local working or bare repository, or a remote URL
//! (`file://`, `https://`, ssh) fetched into a bare cache repository below
//! the cache directory, keyed by a hash of the URL, and updated
//! incrementally. The ref (branch, tag, commit, any rev-spec; default HEAD)
//! is resolved to a commit; optionally its signature is verified against an
//! SSH allowed-signers file; its tree (below `subdir`) is read into a
//! [`Tree`] with paths relative to the subdir, dot-files skipped, and the
//! subdir recorded in the tree's `source` (diagnostics name files from the
//! repository root by it). A blob over [`FILE_LIMIT`] is named unreadable
//! from its header, never read; a tree with two entries of one name (git
//! fsck's duplicateEntries) is an error naming the path.
//!
//! Many blobs are read by several threads, each in pack order along its
//! share of the delta chains, so each delta is inflated once.
//!
//! [`GitSource`] keeps the repository open and the contents of the blobs of
//! the last read, so that re-reading after a small commit costs in
//! proportion to the change (the watch loop keeps one).
//!
//! A poller that starts while the remote is down is served the commit the
//! cache holds from an earlier run ([`GitSource::fetch`], with a warning
//! naming the commit and when it was fetched); one-shot reads
//! ([`read`], [`GitSource::read`]) never are: they answer about the remote
//! as it is now, or fail.
//!
//! Invariant: this module only reads Git objects through gix; it never runs
//! `git`, never touches a work tree, and never interprets the config layout.
//! Errors are one clean lowercase line naming the URL (credentials
//! scrubbed) and, for errors about a ref, the ref: `config repo /tmp: not a
//! git repository`, `config repo . ref nosuch: no such branch, tag or
//! commit`; never gix's debug tree.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow};
use gix::ObjectId;
use gix::bstr::ByteSlice;
use gix::objs::tree::EntryKind;
use gix::prelude::FindExt;
use tracing::warn;

use crate::tree::{Entry, FILE_LIMIT, Files, Tree, is_hidden};

/// The largest tree object read: a directory of about a million entries.
const TREE_LIMIT: u64 = 64 << 20;

/// What to read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// A local repository path, or a URL (`file://`, `https://`, `ssh://`,
    /// `user@host:path`).
    pub repo: String,
    /// Branch, tag, commit or rev-spec; `None`: HEAD (the remote's HEAD for
    /// a URL).
    pub git_ref: Option<String>,
    /// The config tree inside the repository, relative to its root.
    pub subdir: Option<String>,
    /// Where remote repositories are fetched to; `None`: the user's cache
    /// directory (`$XDG_CACHE_HOME/clusterf`, `~/.cache/clusterf`).
    pub cache_dir: Option<PathBuf>,
    /// When set, only commits whose SSH signature verifies against this
    /// allowed-signers file are read.
    pub allowed_signers: Option<PathBuf>,
}

/// What the last fetch of a remote did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FetchStats {
    /// Whether a pack was received (false: nothing new on the remote).
    pub received_pack: bool,
    /// Objects in the received pack.
    pub objects: u32,
}

/// The commit a poller was served from the cache because the fetch failed
/// (see [`GitSource::fetch`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedCommit {
    /// The full id of the commit the ref resolves to in the cache.
    pub commit: String,
    /// The commit's committer time.
    pub committed_at: Option<SystemTime>,
    /// When the cache was last fetched successfully; `None` when unknown (a
    /// cache written before this was recorded).
    pub fetched_at: Option<SystemTime>,
    /// Why the fetch failed (one line).
    pub fetch_error: String,
}

/// The file in a cache repository that holds the time of its last
/// successful fetch (unix seconds); Git ignores it.
const FETCHED_AT_FILE: &str = "clusterf-fetched-at";

/// Where the repository lives.
#[derive(Clone, Debug)]
enum Location {
    Local(PathBuf),
    Remote { url: String, cache: PathBuf },
}

/// A Git config source that can be read repeatedly, keeping the
/// repository open and a cache of blob contents between reads.
pub struct GitSource {
    opts: Options,
    /// The URL or path with credentials scrubbed, for messages.
    display: String,
    location: Location,
    repo: Option<gix::Repository>,
    /// Contents of the blobs of the last read.
    blobs: HashMap<ObjectId, Vec<u8>>,
    /// The tree id (of the subdir) and the result of the last read.
    last: Option<(ObjectId, Tree)>,
    /// Whether a read keeps the blobs and the tree for the next (false
    /// for a one-shot read: nothing is read again).
    remember: bool,
    last_fetch: Option<FetchStats>,
    /// Set while the last fetch failed and the cached commit was served.
    cached: Option<CachedCommit>,
}

/// Reads the config tree once (fetching a remote first); keeps no copy of
/// what it read.
pub fn read(opts: &Options) -> Result<Tree> {
    let mut source = GitSource::new(opts.clone())?;
    source.remember = false;
    source.read()
}

impl GitSource {
    /// Checks the options; touches nothing yet.
    pub fn new(opts: Options) -> Result<Self> {
        let display = scrub_url(&opts.repo);
        if let Some(sub) = &opts.subdir {
            normalize_subdir(sub).map_err(|e| anyhow!("config repo {display}: --subdir {e}"))?;
        }
        let location = if is_remote(&opts.repo) {
            let root = match &opts.cache_dir {
                Some(d) => d.clone(),
                None => default_cache_dir().ok_or_else(|| {
                    anyhow!(
                        "config repo {display}: no cache directory: set --cache-dir, XDG_CACHE_HOME or HOME"
                    )
                })?,
            };
            Location::Remote {
                url: opts.repo.clone(),
                cache: root.join("git").join(cache_key(&display)),
            }
        } else {
            Location::Local(PathBuf::from(&opts.repo))
        };
        Ok(GitSource {
            opts,
            display,
            location,
            repo: None,
            blobs: HashMap::new(),
            last: None,
            remember: true,
            last_fetch: None,
            cached: None,
        })
    }

    /// The cache repository of a remote, `None` for a local repository.
    pub fn cache_path(&self) -> Option<&Path> {
        match &self.location {
            Location::Local(_) => None,
            Location::Remote { cache, .. } => Some(cache),
        }
    }

    /// What the last [`fetch`](Self::fetch) did; `None` before any or for a
    /// local repository.
    pub fn last_fetch(&self) -> Option<&FetchStats> {
        self.last_fetch.as_ref()
    }

    /// The commit served from the cache because the last [`fetch`]
    /// (Self::fetch) failed; `None` when it succeeded.
    pub fn cached(&self) -> Option<&CachedCommit> {
        self.cached.as_ref()
    }

    /// Fetches a remote into the cache (a no-op for local repositories),
    /// for a poller that calls [`read_commit`](Self::read_commit) next.
    ///
    /// When the fetch fails before this source has read any commit (the
    /// daemon restarted while the remote is down) and the cache holds the
    /// ref from an earlier fetch, it logs a warning naming the cached commit
    /// and when it was fetched, remembers it in [`cached`](Self::cached), and
    /// returns `Ok`: the following read serves that commit. Every call tries
    /// the remote again; once a commit has been read, a failed fetch is an
    /// error (the caller keeps the commit it has).
    pub fn fetch(&mut self) -> Result<()> {
        let error = match self.fetch_remote() {
            Ok(()) => {
                self.cached = None;
                return Ok(());
            }
            Err(e) => e,
        };
        if self.last.is_none()
            && let Some(cached) = self.cached_commit(&error)
        {
            let now = SystemTime::now();
            let since = |t: Option<SystemTime>| match t {
                Some(t) => format!("{} ago", age(now.duration_since(t).unwrap_or_default())),
                None => "at an unknown time".to_string(),
            };
            warn!(
                source = "git",
                commit = cached.commit.as_str(),
                "config repo {}: {}; serving commit {} of ref {} from the cache (committed {}, fetched {}) until a fetch succeeds",
                self.display,
                cached.fetch_error,
                &cached.commit[..12.min(cached.commit.len())],
                self.ref_label(None),
                since(cached.committed_at),
                since(cached.fetched_at),
            );
            self.cached = Some(cached);
            return Ok(());
        }
        Err(error)
    }

    /// The commit the cache holds for the configured ref, when it holds
    /// one, with why the fetch failed.
    fn cached_commit(&self, error: &anyhow::Error) -> Option<CachedCommit> {
        let Location::Remote { cache, .. } = &self.location else {
            return None;
        };
        let repo = gix::open(cache).ok()?;
        let commit = resolve(&repo, &self.location, self.opts.git_ref.as_deref()).ok()?;
        let committed_at = commit
            .time()
            .ok()
            .and_then(|t| u64::try_from(t.seconds).ok())
            .map(|s| UNIX_EPOCH + Duration::from_secs(s));
        let fetched_at = super::file::read(&cache.join(FETCHED_AT_FILE), 64)
            .ok()
            .and_then(|s| String::from_utf8(s).ok()?.trim().parse::<u64>().ok())
            .map(|s| UNIX_EPOCH + Duration::from_secs(s));
        // The error names the repository; the warning does too.
        let full = format!("{error:#}");
        let prefix = format!("config repo {}: ", self.display);
        let fetch_error = full.strip_prefix(&prefix).unwrap_or(&full).to_string();
        Some(CachedCommit {
            commit: commit.id.to_string(),
            committed_at,
            fetched_at,
            fetch_error,
        })
    }

    /// Fetches a remote into the cache; errors are errors. A cache this
    /// call created is removed again when the fetch fails and left it
    /// without refs: a failed first fetch leaves nothing behind.
    fn fetch_remote(&mut self) -> Result<()> {
        let Location::Remote { url, cache } = &self.location else {
            return Ok(());
        };
        let (raw, display) = (self.opts.repo.clone(), self.display.clone());
        let ctx = |what: &str, e: &gix::Error| {
            repo_error(&raw, &display, None, &format!("{what}: {}", describe(e)))
        };
        // Whether this call creates the cache repository (and its directory).
        let (created, dir_existed) = (!cache.join("HEAD").is_file(), cache.exists());
        {
            // Opened afresh on every fetch: another process may have fetched
            // into the same cache, and a kept handle would miss its packs.
            let repo = if !created {
                gix::open(cache).map_err(|e| {
                    let why = open_error(cache, &e);
                    repo_error(
                        &raw,
                        &display,
                        None,
                        &format!("cache {}: {why}", cache.display()),
                    )
                })?
            } else {
                std::fs::create_dir_all(cache).map_err(|e| {
                    let why = io_text(&e);
                    repo_error(
                        &raw,
                        &display,
                        None,
                        &format!("cannot create cache {}: {why}", cache.display()),
                    )
                })?;
                gix::init_bare(cache)
                    .map_err(|e| ctx(&format!("cannot create cache {}", cache.display()), &e))?
            };
            self.repo = Some(repo);
        }
        let Some(repo) = self.repo.as_ref() else {
            unreachable!("opened above")
        };
        let outcome = match receive(repo, url, &raw, &display) {
            Ok(outcome) => outcome,
            Err(e) => {
                if created && remove_failed_cache(repo, cache, dir_existed) {
                    self.repo = None;
                }
                return Err(e);
            }
        };
        self.last_fetch = Some(match outcome.status {
            gix::remote::fetch::Status::NoPackReceived { .. } => FetchStats::default(),
            gix::remote::fetch::Status::Change {
                write_pack_bundle, ..
            } => FetchStats {
                received_pack: true,
                objects: write_pack_bundle.index.num_objects,
            },
        });
        // When the cache was last fetched, for the warning of a later run
        // that cannot fetch; not worth failing the fetch over.
        if let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) {
            let _ = std::fs::write(cache.join(FETCHED_AT_FILE), format!("{}\n", now.as_secs()));
        }
        Ok(())
    }

    /// Fetches (remotes) and reads the tree at the configured ref; a failed
    /// fetch is an error even when the cache holds the ref.
    pub fn read(&mut self) -> Result<Tree> {
        self.fetch_remote()?;
        let r = self.opts.git_ref.clone();
        self.read_commit(r.as_deref())
    }

    /// Fetches (remotes) and reads the tree at another ref of the same
    /// repository (the base of a pull request).
    pub fn read_at(&mut self, git_ref: &str) -> Result<Tree> {
        self.fetch_remote()?;
        self.read_commit(Some(git_ref))
    }

    /// Reads the tree at `git_ref` (`None`: the configured default) without
    /// fetching.
    pub fn read_commit(&mut self, git_ref: Option<&str>) -> Result<Tree> {
        let label = self.ref_label(git_ref);
        self.open()?;
        let repo = self.repo.as_ref().expect("opened above");
        let commit =
            resolve(repo, &self.location, git_ref).map_err(|e| self.ref_error(&label, &e))?;
        let commit_id = commit.id;
        let short = commit_id.to_hex_with_len(12).to_string();
        if let Some(signers) = &self.opts.allowed_signers {
            verify(&commit, signers)
                .map_err(|e| self.ref_error(&label, &format!("commit {short}: {e}")))?;
        }
        let root = commit
            .tree_id()
            .map_err(|e| self.ref_error(&label, &format!("commit {short}: {}", describe(&e))))?
            .detach();
        let subdir = self
            .opts
            .subdir
            .as_deref()
            .map(normalize_subdir)
            .transpose()
            .map_err(|e| self.ref_error(&label, &e))?
            .filter(|s| !s.is_empty());
        let start = match &subdir {
            None => root,
            Some(sub) => find_subtree(repo, root, sub)
                .map_err(|e| self.ref_error(&label, &format!("commit {short}: {e}")))?,
        };
        let mut description = format!("{}@{short}", self.display);
        if let Some(sub) = &subdir {
            description.push(':');
            description.push_str(sub);
        }
        let source = crate::tree::SourceRef {
            description,
            revision: Some(commit_id.to_string()),
            subdir,
        };
        // The same tree as last time (another commit may change other parts
        // of the repository): nothing to read.
        if let Some((id, last)) = &self.last
            && *id == start
        {
            let mut tree = last.clone();
            tree.source = source;
            return Ok(tree);
        }
        let mut tree = Tree {
            source,
            ..Tree::default()
        };
        let mut blobs = Vec::new();
        let mut buf = Vec::new();
        walk(repo, start, "", &mut tree, &mut blobs, &mut buf)
            .map_err(|e| self.ref_error(&label, &format!("commit {short}: {e}")))?;
        let entries = read_blobs(repo, &blobs, &self.blobs)
            .map_err(|e| self.ref_error(&label, &format!("commit {short}: {e}")))?;
        let mut files = Vec::with_capacity(entries.len());
        // Keep only the blobs of this read: the cache stays the size of one tree.
        let mut seen = HashMap::new();
        for ((path, oid), entry) in blobs.into_iter().zip(entries) {
            match entry {
                Ok(entry) => {
                    if self.remember {
                        seen.entry(oid).or_insert_with(|| entry.data().to_vec());
                    }
                    files.push(entry);
                }
                Err(why) => {
                    tree.unreadable.insert(path, why);
                }
            }
        }
        tree.files = Files::from_entries(files);
        if self.remember {
            self.blobs = seen;
            self.last = Some((start, tree.clone()));
        }
        Ok(tree)
    }

    /// Opens the repository afresh (cheap): objects and refs written since
    /// the last read, by us or another process, are seen.
    fn open(&mut self) -> Result<()> {
        let (path, what) = match &self.location {
            Location::Local(p) => (p.clone(), String::new()),
            Location::Remote { cache, .. } => {
                (cache.clone(), format!("cache {}: ", cache.display()))
            }
        };
        let mut repo = gix::open(&path).map_err(|e| {
            let why = open_error(&path, &e);
            repo_error(
                &self.opts.repo,
                &self.display,
                None,
                &format!("{what}{why}"),
            )
        })?;
        repo.object_cache_size_if_unset(4 << 20);
        self.repo = Some(repo);
        Ok(())
    }

    fn ref_label(&self, git_ref: Option<&str>) -> String {
        git_ref
            .or(self.opts.git_ref.as_deref())
            .unwrap_or("HEAD")
            .to_string()
    }

    fn ref_error(&self, git_ref: &str, message: &str) -> anyhow::Error {
        repo_error(&self.opts.repo, &self.display, Some(git_ref), message)
    }
}

/// Fetches `url` into `repo`: connects, negotiates, receives the pack.
fn receive(
    repo: &gix::Repository,
    url: &str,
    raw: &str,
    display: &str,
) -> Result<gix::remote::fetch::Outcome> {
    let ctx = |what: &str, e: &gix::Error| {
        repo_error(raw, display, None, &format!("{what}: {}", describe(e)))
    };
    let interrupt = AtomicBool::new(false);
    repo.remote_at(url)
        .and_then(|r| {
            r.with_refspecs(
                [
                    "+refs/heads/*:refs/remotes/origin/*",
                    "+refs/tags/*:refs/tags/*",
                    "+HEAD:refs/remotes/origin/HEAD",
                ],
                gix::remote::Direction::Fetch,
            )
        })
        .map_err(|e| ctx("invalid url", &e))?
        .with_fetch_tags(gix::remote::fetch::Tags::None)
        .connect(gix::remote::Direction::Fetch)
        .map_err(|e| repo_error(raw, display, None, &connect_error(url, &e)))?
        .prepare_fetch(gix::progress::Discard, Default::default())
        .map_err(|e| ctx("cannot fetch", &e))?
        .receive(gix::progress::Discard, &interrupt)
        .map_err(|e| ctx("cannot fetch", &e))
}

/// Removes the cache repository a failed first fetch created, unless it
/// holds refs (another process fetched into it meanwhile); whether it did.
/// A directory that existed before is left, empty.
fn remove_failed_cache(repo: &gix::Repository, cache: &Path, dir_existed: bool) -> bool {
    let has_refs = repo
        .references()
        .ok()
        .and_then(|p| p.all().ok().map(|mut all| all.next().is_some()))
        .unwrap_or(true);
    if has_refs {
        return false;
    }
    let _ = std::fs::remove_dir_all(cache);
    if dir_existed {
        let _ = std::fs::create_dir(cache);
    }
    true
}

/// The one-line error of a config repository: names the URL (scrubbed) and,
/// for an error about a ref, the ref.
fn repo_error(raw: &str, display: &str, git_ref: Option<&str>, message: &str) -> anyhow::Error {
    let message = scrub_secrets(message, raw, display);
    match git_ref {
        Some(r) => anyhow!("config repo {display} ref {r}: {message}"),
        None => anyhow!("config repo {display}: {message}"),
    }
}

/// Resolves `git_ref` to a commit. For a remote cache, branch names are
/// looked up among the fetched remote branches first.
fn resolve<'r>(
    repo: &'r gix::Repository,
    location: &Location,
    git_ref: Option<&str>,
) -> std::result::Result<gix::Commit<'r>, String> {
    let spec = git_ref.unwrap_or("HEAD");
    let mut candidates: Vec<String> = Vec::new();
    if matches!(location, Location::Remote { .. }) {
        if spec == "HEAD" {
            candidates.push("refs/remotes/origin/HEAD".into());
        } else if !spec.starts_with("refs/") {
            candidates.push(format!("refs/remotes/origin/{spec}"));
        }
    }
    candidates.push(spec.to_string());
    let mut last = None;
    for c in &candidates {
        match repo.rev_parse_single(c.as_bytes().as_bstr()) {
            Ok(id) => {
                let object = id.object().map_err(|e| describe(&e))?;
                let kind = object.kind;
                return object.peel_to_commit().map_err(|_| match kind {
                    gix::object::Kind::Tag => "a tag of no commit".to_string(),
                    other => format!("a {other}, not a commit"),
                });
            }
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => rev_parse_error(spec, &e),
        None => "no such branch, tag or commit".into(),
    })
}

/// Why `spec` did not resolve, from the error of its rev-parse.
fn rev_parse_error(spec: &str, e: &gix::Error) -> String {
    use gix::revision::spec::parse::Error as Parse;
    for cause in e.iter_errors() {
        match cause.downcast_ref::<Parse>() {
            Some(Parse::MissingReference { .. }) if spec == "HEAD" => {
                return "no commit yet (HEAD names an unborn branch)".into();
            }
            Some(Parse::MissingReference { name }) if name.as_slice() == spec.as_bytes() => {
                return "no such branch, tag or commit".into();
            }
            Some(Parse::MissingReference { name }) => {
                return format!("{}: no such branch, tag or commit", name.to_str_lossy());
            }
            Some(Parse::AmbiguousPrefix { prefix, candidates }) => {
                return format!(
                    "short id {prefix} is ambiguous: {} objects start with it",
                    candidates.len()
                );
            }
            Some(Parse::AmbiguousRefAndObject {
                prefix, reference, ..
            }) => {
                return format!(
                    "{prefix} is ambiguous: both {} and an object id",
                    reference.as_bstr().to_str_lossy()
                );
            }
            _ => {}
        }
    }
    // The most specific message: gix's outer ones name its parser's steps
    // ("couldn't parse revision", "delegate.traverse(...) failed").
    e.iter_errors()
        .map(|c| clean(&c.to_string()))
        .find(|m| !m.starts_with("couldn't parse revision") && !m.starts_with("delegate."))
        .unwrap_or_else(|| format!("cannot resolve: {}", describe(e)))
}

/// Verifies the SSH signature of `commit` against `allowed_signers`.
fn verify(commit: &gix::Commit<'_>, allowed_signers: &Path) -> std::result::Result<(), String> {
    use gix::objs::signature::Format;
    use gix::objs::signature::verify::{Options, TrustLevel};
    let signed = commit
        .signature()
        .map_err(|e| format!("cannot read signature: {}", describe(&e)))?;
    let Some((signature, data)) = signed else {
        return Err("not signed, and --verify-signatures is set".into());
    };
    match Format::from_signature(&signature) {
        Some(Format::Ssh) => {}
        Some(Format::OpenPgp) => {
            return Err("signed with openpgp: only ssh signatures can be verified".into());
        }
        Some(Format::X509) => {
            return Err("signed with x509: only ssh signatures can be verified".into());
        }
        None => return Err("unsupported signature format".into()),
    }
    check_signers_file(allowed_signers)?;
    let time = commit
        .time()
        .map_err(|e| format!("cannot read commit time: {}", describe(&e)))?;
    let outcome = data
        .verify(
            &signature,
            Options::Ssh {
                program: "ssh-keygen".into(),
                program_arguments: Vec::new(),
                environment: Vec::new(),
                allowed_signers: allowed_signers.to_path_buf(),
                revocation_file: None,
                verify_time: time,
                minimum_trust: TrustLevel::Fully,
            },
        )
        .map_err(|e| format!("cannot verify signature: {}", describe(&e)))?;
    if outcome.is_valid() {
        return Ok(());
    }
    use gix::objs::signature::verify::Status;
    let why = match outcome.status {
        Status::Good => "the key is not an allowed signer",
        Status::Bad => "bad signature",
        Status::Error => "ssh-keygen could not check it",
        Status::Expired => "the signature has expired",
        Status::ExpiredKey => "the key has expired",
        Status::RevokedKey => "the key was revoked",
        Status::Unknown => "ssh-keygen gave no recognized answer",
    };
    Err(format!(
        "signature does not verify against {}: {why}",
        allowed_signers.display()
    ))
}

/// The allowed-signers file is a regular file within its limit (ssh-keygen
/// reads it; a pipe or a huge file would stall it).
fn check_signers_file(path: &Path) -> std::result::Result<(), String> {
    let name = path.display();
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("allowed signers file {name}: not found"))
        }
        Err(e) => Err(format!("allowed signers file {name}: {}", io_text(&e))),
        Ok(m) if !m.is_file() => Err(format!("allowed signers file {name}: not a regular file")),
        Ok(m) if m.len() > super::file::KEY_FILE_LIMIT => Err(format!(
            "allowed signers file {name}: larger than the limit of {}",
            super::file::size(super::file::KEY_FILE_LIMIT)
        )),
        Ok(_) => Ok(()),
    }
}

/// The tree at `sub` (a `/`-separated path) below `root`.
fn find_subtree(
    repo: &gix::Repository,
    root: ObjectId,
    sub: &str,
) -> std::result::Result<ObjectId, String> {
    let mut current = root;
    for component in sub.split('/') {
        let tree = repo
            .find_tree(current)
            .map_err(|e| format!("cannot read tree {current}: {}", describe(&e)))?;
        let decoded = tree
            .decode()
            .map_err(|e| format!("cannot read tree {current}: {}", describe(&e)))?;
        let mut matching = decoded
            .entries
            .iter()
            .filter(|e| e.filename == component.as_bytes());
        let entry = matching
            .next()
            .ok_or_else(|| format!("--subdir {sub}: no such directory"))?;
        if matching.next().is_some() {
            return Err(format!(
                "--subdir {sub}: two entries named {component} in one tree (git fsck: duplicateEntries): the commit is broken"
            ));
        }
        if !entry.mode.is_tree() {
            return Err(format!("--subdir {sub}: not a directory"));
        }
        current = entry.oid.to_owned();
    }
    Ok(current)
}

/// Lists every blob below the tree `id` as (path, blob id) into `blobs`, in
/// path order; entries that are no files go to `tree.unreadable`.
fn walk(
    repo: &gix::Repository,
    id: ObjectId,
    prefix: &str,
    tree: &mut Tree,
    blobs: &mut Vec<(String, ObjectId)>,
    buf: &mut Vec<u8>,
) -> std::result::Result<(), String> {
    let mut subtrees = Vec::new();
    {
        check_size(repo, id, TREE_LIMIT).map_err(|e| match prefix {
            "" => format!("root tree: {e}"),
            p => format!("tree {}: {e}", p.trim_end_matches('/')),
        })?;
        let data = repo
            .objects
            .find_tree(&id, buf)
            .map_err(|e| format!("cannot read tree {id}: {}", describe(&e)))?;
        if let Some(name) = duplicate_name(&data.entries) {
            return Err(format!(
                "{prefix}{}: two entries of this name in one tree (git fsck: duplicateEntries): the commit is broken",
                name.to_str_lossy()
            ));
        }
        for e in &data.entries {
            let Ok(name) = e.filename.to_str() else {
                tree.unreadable.insert(
                    format!("{prefix}{}", e.filename.to_str_lossy()),
                    "file name is not valid UTF-8".into(),
                );
                continue;
            };
            if is_hidden(name) {
                continue;
            }
            let rel = format!("{prefix}{name}");
            match e.mode.kind() {
                EntryKind::Tree => subtrees.push((rel, e.oid.to_owned())),
                EntryKind::Blob | EntryKind::BlobExecutable => {
                    blobs.push((rel, e.oid.to_owned()));
                }
                EntryKind::Link => {
                    tree.unreadable
                        .insert(rel, "symbolic link: not followed in a git tree".into());
                }
                EntryKind::Commit => {
                    tree.unreadable
                        .insert(rel, "submodule: not read in a git tree".into());
                }
            }
        }
    }
    for (rel, oid) in subtrees {
        walk(repo, oid, &format!("{rel}/"), tree, blobs, buf)?;
    }
    Ok(())
}

/// The first name that two entries of a tree share (git fsck's
/// duplicateEntries): a blob and a tree of one name are not adjacent in
/// Git's order (`a` < `a.b` < `a/`), so every name is checked.
fn duplicate_name<'a>(entries: &[gix::objs::tree::EntryRef<'a>]) -> Option<&'a gix::bstr::BStr> {
    let mut names: Vec<&gix::bstr::BStr> = entries.iter().map(|e| e.filename).collect();
    names.sort_unstable();
    names.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
}

/// Fails when the object `id` is larger than `limit`, from its header
/// alone: nothing of it is read.
fn check_size(repo: &gix::Repository, id: ObjectId, limit: u64) -> std::result::Result<(), String> {
    let size = repo
        .find_header(id)
        .map_err(|e| format!("cannot read object {id}: {}", describe(&e)))?
        .size();
    if size > limit {
        return Err(format!(
            "larger than the limit of {}",
            super::file::size(limit)
        ));
    }
    Ok(())
}

/// A blob read as a tree entry, or why it is not read (too large: the tree
/// names it unreadable).
type Blob = std::result::Result<Entry, String>;

/// The delta bases a blob reader thread keeps (decoded, by pack offset).
const DELTA_BASE_CACHE: usize = 32 << 20;

/// Fewer blobs to read than this are read on the calling thread.
const THREADED_READ: usize = 256;

/// The entries of `blobs`, in order: from `cache` where it has them, the
/// rest read from the object database in pack order (a delta's base comes
/// before it in its pack, and each reader keeps what it decoded, so a
/// delta chain is inflated once, not once per blob on it), and hashed
/// (the entry's fingerprint) by the thread that read it; in parallel when
/// there are many.
fn read_blobs(
    repo: &gix::Repository,
    blobs: &[(String, ObjectId)],
    cache: &HashMap<ObjectId, Vec<u8>>,
) -> std::result::Result<Vec<Blob>, String> {
    let mut out: Vec<Option<Blob>> = blobs
        .iter()
        .map(|(path, oid)| {
            let data = cache.get(oid)?;
            Some(Ok(Entry::from_parts(path, data)))
        })
        .collect();
    let missing = (0..blobs.len()).filter(|&i| out[i].is_none());
    let missing: Vec<usize> = missing.collect();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8);
    let parts: Vec<Part> = if missing.len() < THREADED_READ {
        // A few changed blobs (the watch loop): not worth listing a pack.
        vec![read_part(repo, blobs, &missing, false)]
    } else if threads < 2 {
        let plan = read_plan(repo, blobs, missing.iter().copied(), 1);
        plan.iter()
            .map(|part| read_part(repo, blobs, part, true))
            .collect()
    } else {
        let plan = read_plan(repo, blobs, missing.iter().copied(), threads);
        let shared = repo.clone().into_sync();
        std::thread::scope(|scope| {
            let handles: Vec<_> = plan
                .iter()
                .map(|part| {
                    let shared = &shared;
                    scope.spawn(move || read_part(&shared.to_thread_local(), blobs, part, true))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("a blob reader thread panicked".into()))
                })
                .collect()
        })
    };
    for part in parts {
        for (i, d) in part? {
            out[i] = Some(d);
        }
    }
    Ok(out
        .into_iter()
        .map(|b| b.expect("every blob cached or read"))
        .collect())
}

/// The blobs `which` (indices into `blobs`) split into at most `parts`
/// parts for one reader each, every part in the order the objects are
/// stored (by pack and offset; loose objects last). A delta's base is
/// stored before it, and a reader keeps each object it decoded (not the
/// steps of a chain), so a delta whose base was read by the same reader
/// costs one inflate: the parts are cut from the trees of deltas over
/// their bases, each tree kept whole where the balance allows.
fn read_plan(
    repo: &gix::Repository,
    blobs: &[(String, ObjectId)],
    which: impl Iterator<Item = usize>,
    parts: usize,
) -> Vec<Vec<usize>> {
    // (pack, offset) of each packed blob, with its base where that is read
    // too (an index into `packed`), in storage order.
    let (packed, loose) = locate(repo, blobs, which);
    let n = packed.len() + loose.len();
    let most = n.div_ceil(parts.max(1)).max(1);
    // Cut the trees into pieces of at most `most`, leaves first.
    let mut size = vec![1usize; packed.len()];
    let mut piece_roots = Vec::new();
    for x in (0..packed.len()).rev() {
        match packed[x].1 {
            Some(base) if size[base] + size[x] <= most => size[base] += size[x],
            _ => piece_roots.push(x),
        }
    }
    let mut piece_of = vec![usize::MAX; packed.len()];
    for (p, &root) in piece_roots.iter().enumerate() {
        piece_of[root] = p;
    }
    for x in 0..packed.len() {
        if piece_of[x] == usize::MAX {
            piece_of[x] = piece_of[packed[x].1.expect("a piece's root or below one")];
        }
    }
    // Largest pieces first, each to the part with the fewest blobs.
    let mut order: Vec<usize> = (0..piece_roots.len()).collect();
    order.sort_by_key(|&p| std::cmp::Reverse(size[piece_roots[p]]));
    let mut load = vec![0usize; parts.max(1)];
    let mut part_of_piece = vec![0usize; piece_roots.len()];
    for p in order {
        let part = (0..load.len()).min_by_key(|&k| load[k]).unwrap_or(0);
        load[part] += size[piece_roots[p]];
        part_of_piece[p] = part;
    }
    let mut out = vec![Vec::new(); load.len()];
    for (x, &(_, _, i)) in packed.iter().enumerate() {
        out[part_of_piece[piece_of[x]]].push(i);
    }
    for i in loose {
        let part = (0..load.len()).min_by_key(|&k| load[k]).unwrap_or(0);
        load[part] += 1;
        out[part].push(i);
    }
    out.retain(|p| !p.is_empty());
    out
}

/// A packed blob: its place (pack, offset), its base (an index into the
/// packed blobs), its index into the blobs.
type Packed = ((u32, u64), Option<usize>, usize);

/// A packed blob as found: its base by its offset.
type Located = ((u32, u64), Option<u64>, usize);

/// The blobs `which` found in packs, in storage order and with their bases,
/// and the others (loose objects). Each pack's index is read whole once
/// (its offsets give each entry's extent, so only entry headers are read,
/// never inflated).
fn locate(
    repo: &gix::Repository,
    blobs: &[(String, ObjectId)],
    which: impl Iterator<Item = usize>,
) -> (Vec<Packed>, Vec<usize>) {
    use gix::odb::pack::Find;
    // Locations and entries are read only while the packs stay mapped.
    let mut objects = repo.objects.clone();
    objects.prevent_pack_unload();
    let mut todo: Vec<usize> = which.collect();
    todo.sort_unstable_by_key(|&i| blobs[i].1);
    let (mut packed, mut loose): (Vec<Located>, _) = (Vec::new(), Vec::new());
    let mut buf = Vec::new();
    while let Some(&first) = todo.first() {
        let pack = match objects.location_by_oid(&blobs[first].1, &mut buf) {
            Ok(Some(at)) => at.pack_id,
            _ => {
                loose.push(todo.remove(0));
                continue;
            }
        };
        let Ok(Some(mut list)) = objects.pack_offsets_and_oid(pack) else {
            loose.append(&mut todo);
            break;
        };
        let before = todo.len();
        todo = in_pack(
            &objects,
            repo.object_hash(),
            pack,
            &mut list,
            blobs,
            todo,
            &mut packed,
        );
        // The first blob was found by the lookup, so the index holds it;
        // should it not, it is read as a loose object.
        if todo.len() == before {
            loose.push(todo.remove(0));
        }
    }
    packed.sort_unstable_by_key(|&(at, _, i)| (at, i));
    let index: HashMap<(u32, u64), usize> = packed
        .iter()
        .enumerate()
        .map(|(x, &(at, _, _))| (at, x))
        .collect();
    let packed = packed
        .into_iter()
        .map(|((pack, offset), base, i)| {
            let base = base.and_then(|b| index.get(&(pack, b)).copied());
            ((pack, offset), base, i)
        })
        .collect();
    (packed, loose)
}

/// Finds the blobs `todo` (sorted by id) in the index `list` of `pack`,
/// adding them to `packed` with their base's offset (as an index to be
/// resolved by the caller); the ones not in this pack.
fn in_pack(
    objects: &gix::OdbHandle,
    hash: gix::hash::Kind,
    pack: u32,
    list: &mut [(u64, ObjectId)],
    blobs: &[(String, ObjectId)],
    todo: Vec<usize>,
    packed: &mut Vec<Located>,
) -> Vec<usize> {
    use gix::odb::pack::Find;
    use gix::odb::pack::data::{Entry, entry::Header, entry::Location};
    let mut offsets: Vec<u64> = list.iter().map(|e| e.0).collect();
    offsets.sort_unstable();
    list.sort_unstable_by_key(|e| e.1);
    let mut rest = Vec::new();
    let mut at = 0;
    for i in todo {
        let oid = blobs[i].1;
        while at < list.len() && list[at].1 < oid {
            at += 1;
        }
        if at == list.len() || list[at].1 != oid {
            rest.push(i);
            continue;
        }
        let offset = list[at].0;
        // The entry ends where the next begins; the last one's header fits
        // in 32 bytes (else its base is not known, which costs time only).
        let next = offsets.partition_point(|&o| o <= offset);
        let entry_size = offsets.get(next).map_or(32, |&n| (n - offset) as usize);
        let location = Location {
            pack_id: pack,
            pack_offset: offset,
            entry_size,
        };
        let base = objects
            .entry_by_location(&location)
            .and_then(|e| Entry::from_bytes(&e.data, offset, hash).ok())
            .and_then(|e| match e.header {
                Header::OfsDelta { base_distance } => e.checked_base_pack_offset(base_distance),
                _ => None,
            });
        packed.push(((pack, offset), base, i));
    }
    rest
}

type Part = std::result::Result<Vec<(usize, Blob)>, String>;

/// Reads the blobs `part` (indices into `blobs`, in pack order) with one
/// handle; `own_cache`: give the handle a delta-base cache large enough to
/// keep what it decodes (gix's default keeps 64 objects).
fn read_part(
    repo: &gix::Repository,
    blobs: &[(String, ObjectId)],
    part: &[usize],
    own_cache: bool,
) -> Part {
    let mut owned;
    let repo = if own_cache {
        owned = repo.clone();
        owned.objects.set_pack_cache(|| {
            Box::new(gix::odb::pack::cache::lru::MemoryCappedHashmap::new(
                DELTA_BASE_CACHE,
            ))
        });
        &owned
    } else {
        repo
    };
    let mut buf = Vec::new();
    part.iter()
        .map(|&i| read_one(repo, &mut buf, &blobs[i]).map(|d| (i, d)))
        .collect()
}

/// One blob as an entry, or too large to read; an error when it cannot be
/// read.
fn read_one(
    repo: &gix::Repository,
    buf: &mut Vec<u8>,
    (path, oid): &(String, ObjectId),
) -> std::result::Result<Blob, String> {
    let size = repo
        .find_header(*oid)
        .map_err(|e| format!("{path}: cannot read blob {oid}: {}", describe(&e)))?
        .size();
    if size > FILE_LIMIT {
        return Ok(Err(format!(
            "larger than the limit of {}",
            super::file::size(FILE_LIMIT)
        )));
    }
    let blob = repo
        .objects
        .find_blob(oid, buf)
        .map_err(|e| format!("{path}: cannot read blob {oid}: {}", describe(&e)))?;
    Ok(Ok(Entry::from_parts(path, blob.data)))
}

/// Whether `repo` names a remote (a URL or `user@host:path`) rather than a
/// local path.
pub fn is_remote(repo: &str) -> bool {
    if repo.contains("://") {
        return true;
    }
    if Path::new(repo).exists() {
        return false;
    }
    // scp-like syntax: host:path with no slash before the colon.
    match repo.find(':') {
        Some(i) => !repo[..i].contains('/') && i > 1,
        None => false,
    }
}

/// `repo` with any password (and, for http, the user name, which often is a
/// token) removed, for messages.
pub fn scrub_url(repo: &str) -> String {
    let Some(scheme_end) = repo.find("://") else {
        return repo.to_string();
    };
    let scheme = &repo[..scheme_end];
    let rest = &repo[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return repo.to_string();
    };
    let userinfo = &authority[..at];
    let host = &authority[at + 1..];
    let kept = if scheme.starts_with("http") {
        String::new()
    } else {
        match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}@"),
            None => format!("{userinfo}@"),
        }
    };
    format!("{scheme}://{kept}{host}{}", &rest[authority_end..])
}

/// Replaces the raw URL and its userinfo in `message` by the scrubbed form.
fn scrub_secrets(message: &str, raw: &str, display: &str) -> String {
    let mut out = message.replace(raw, display);
    if let Some(scheme_end) = raw.find("://") {
        let rest = &raw[scheme_end + 3..];
        let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
        if let Some(at) = authority.rfind('@') {
            let userinfo = &authority[..at];
            for secret in userinfo.split(':') {
                if secret.len() >= 4 {
                    out = out.replace(secret, "***");
                }
            }
        }
    }
    out
}

/// `config/services` from `./config/services/`; rejects `..` and absolute
/// paths.
fn normalize_subdir(sub: &str) -> std::result::Result<String, String> {
    let mut parts = Vec::new();
    for c in sub.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(format!("{sub}: must not contain ..")),
            c => parts.push(c),
        }
    }
    if sub.starts_with('/') {
        return Err(format!("{sub}: must be relative to the repository root"));
    }
    Ok(parts.join("/"))
}

/// The user's cache directory for clusterf.
fn default_cache_dir() -> Option<PathBuf> {
    let from = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    from("XDG_CACHE_HOME")
        .map(|d| d.join("clusterf"))
        .or_else(|| from("HOME").map(|h| h.join(".cache").join("clusterf")))
}

/// A directory name for the cache of `url`: readable prefix plus hash.
fn cache_key(url: &str) -> String {
    use sha2::{Digest, Sha256};
    let hash = crate::tree::hex(&Sha256::digest(url.as_bytes()));
    let name: String = url
        .rsplit(['/', ':'])
        .find(|s| !s.is_empty())
        .unwrap_or("repo")
        .trim_end_matches(".git")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    format!("{name}-{}", &hash[..16])
}

/// A duration, roughly, for humans: `45s`, `12m`, `5h`, `3d`.
fn age(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// Why connecting to `url` failed. For a `file://` URL gix only says that
/// it "could not verify that file:///x is a valid git directory": say which
/// way it is not.
fn connect_error(url: &str, e: &gix::Error) -> String {
    match url.strip_prefix("file://").filter(|p| p.starts_with('/')) {
        Some(path) => match std::fs::metadata(path) {
            Err(io) => format!("cannot fetch: {path}: {}", io_text(&io)),
            Ok(_) => format!("cannot fetch: {path}: not a git repository"),
        },
        None => format!("cannot connect: {}", describe(e)),
    }
}

/// Why `gix::open(path)` failed, in words.
fn open_error(path: &Path, e: &gix::Error) -> String {
    match std::fs::metadata(path) {
        Err(io) => io_text(&io),
        Ok(_) if e.is_permission_denied() => "permission denied".into(),
        Ok(_) if e.is_not_found() => "not a git repository".into(),
        Ok(_) => describe(e),
    }
}

/// A gix (or other) error on one clean line: its own message, not the
/// debug tree of its causes that gix prints in the alternate form, plus its
/// root cause when that says more (`transport handshake failed: connection
/// refused`).
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = clean(&e.to_string());
    let root = match e.downcast_ref::<gix::Error>() {
        Some(g) => g.iter_errors().last(),
        None => std::iter::successors(e.source(), |c| c.source()).last(),
    };
    if let Some(root) = root {
        let root = clean(&root.to_string());
        if !root.is_empty() && !text.contains(&root) {
            text.push_str(": ");
            text.push_str(&root);
        }
    }
    text
}

/// An I/O error as words: `no such file or directory`, not `No such file
/// or directory (os error 2)`.
fn io_text(e: &std::io::Error) -> String {
    clean(&e.to_string())
}

/// The first line of a message, trimmed, with no trailing period and a
/// lowercase first word (unless it is an acronym or a name: `HEAD`).
fn clean(message: &str) -> String {
    let line = message
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let line = line.trim_end_matches('.');
    // `Connection refused (os error 111)`: the number says nothing more.
    let line = match line.rfind(" (os error ") {
        Some(i) if line.ends_with(')') => &line[..i],
        _ => line,
    };
    let mut chars = line.chars();
    match (chars.next(), chars.next()) {
        (Some(c), Some(d)) if c.is_uppercase() && !d.is_uppercase() => {
            format!("{}{}", c.to_lowercase(), &line[c.len_utf8()..])
        }
        _ => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_credentials() {
        assert_eq!(
            scrub_url("https://user:tok3n@example.com/x.git"),
            "https://example.com/x.git"
        );
        assert_eq!(
            scrub_url("https://ghp_token@example.com/x.git"),
            "https://example.com/x.git"
        );
        assert_eq!(
            scrub_url("ssh://git:pw@example.com/x.git"),
            "ssh://git@example.com/x.git"
        );
        assert_eq!(scrub_url("git@example.com:x.git"), "git@example.com:x.git");
        assert_eq!(scrub_url("/srv/repo"), "/srv/repo");
        let raw = "https://user:s3cret@example.com/x.git";
        let msg = scrub_secrets(
            &format!("cannot connect to {raw}: s3cret rejected"),
            raw,
            &scrub_url(raw),
        );
        assert!(!msg.contains("s3cret"), "{msg}");
    }

    #[test]
    fn remote_detection() {
        assert!(is_remote("file:///tmp/x"));
        assert!(is_remote("https://example.com/x.git"));
        assert!(is_remote("git@example.com:x.git"));
        assert!(!is_remote("./relative/path"));
        assert!(!is_remote("/abs/path"));
        assert!(!is_remote("C:"));
    }

    #[test]
    fn subdir_normalization() {
        assert_eq!(normalize_subdir("./config/").unwrap(), "config");
        assert_eq!(normalize_subdir("a//b").unwrap(), "a/b");
        assert!(normalize_subdir("../x").is_err());
        assert!(normalize_subdir("/x").is_err());
    }

    #[test]
    fn cache_keys_differ_per_url() {
        let a = cache_key("https://example.com/a/config.git");
        let b = cache_key("https://example.com/b/config.git");
        assert_ne!(a, b);
        assert!(a.starts_with("config-"), "{a}");
    }

    #[test]
    fn ages_are_rough() {
        let a = |s| age(Duration::from_secs(s));
        assert_eq!(
            [
                a(0),
                a(119),
                a(120),
                a(7199),
                a(7200),
                a(172_799),
                a(172_800)
            ],
            ["0s", "119s", "2m", "119m", "2h", "47h", "2d"]
        );
    }

    #[test]
    fn errors_are_one_clean_line() {
        assert_eq!(
            clean("Could not open it.\n\nCaused by: x"),
            "could not open it"
        );
        assert_eq!(clean("HEAD is gone"), "HEAD is gone");
        assert_eq!(clean("\"/tmp\" is odd"), "\"/tmp\" is odd");
        let e = gix::open("/nonexistent/clusterf").unwrap_err();
        assert_eq!(
            describe(&e),
            "\"/nonexistent/clusterf\" does not appear to be a git repository: no such file or directory"
        );
        assert_eq!(
            open_error(Path::new("/nonexistent/clusterf"), &e),
            "no such file or directory"
        );
        let io = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(io_text(&io), "permission denied");
        let io = std::io::Error::from_raw_os_error(2);
        assert_eq!(io_text(&io), "no such file or directory");
    }
}
