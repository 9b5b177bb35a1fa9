//! The daemon's inputs as the pass reads them (a config directory or the
//! tree of the last Git poll; no overlay, an overlay directory or the etcd
//! watch's tree), and what keeps them current between passes: the Git
//! poller and the config-directory watcher.
//!
//! Must not: parse or render (the pass does), or decide when to poll or
//! pass (`reconcile::schedule` does). A change seen here only calls the
//! loop's callback: it marks the config dirty, nothing more.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use tracing::{info, warn};

use super::sync::lock;
use crate::error::format_error;
use crate::source;
use crate::source::etcd::watch::OverlayWatch;
use crate::tree::Tree;

/// Where the pass gets the config tree.
pub enum ConfigInput {
    /// Read at the pass.
    Dir(PathBuf),
    /// The tree of the last Git poll.
    Git(Arc<Mutex<Option<Arc<Tree>>>>),
}

/// Where the pass gets the overlay tree.
pub enum OverlayInput {
    None,
    /// Read at the pass.
    Dir(PathBuf),
    /// The watch's current tree.
    Etcd(Arc<OverlayWatch>),
}

impl OverlayInput {
    /// What a diagnostic about the overlay is logged as.
    pub fn label(&self) -> &'static str {
        match self {
            OverlayInput::Etcd(_) => "etcd",
            _ => "overlay",
        }
    }
}

// --- Git polls ------------------------------------------------------------

/// Fetches the config repository and keeps the tree of its ref for the
/// pass.
pub struct GitPoller {
    source: source::git::GitSource,
    slot: Arc<Mutex<Option<Arc<Tree>>>>,
}

impl GitPoller {
    /// A poller, and the input it fills (empty until the first poll).
    pub fn new(opts: source::git::Options) -> Result<(GitPoller, ConfigInput)> {
        let slot = Arc::new(Mutex::new(None));
        let poller = GitPoller {
            source: source::git::GitSource::new(opts)?,
            slot: slot.clone(),
        };
        Ok((poller, ConfigInput::Git(slot)))
    }

    /// Fetches and reads the ref; whether the tree changed.
    pub fn poll(&mut self) -> Result<bool> {
        self.source.fetch()?;
        let tree = self.source.read_commit(None)?;
        let mut slot = lock(&self.slot);
        let changed = slot.as_ref().is_none_or(|old| {
            old.source.revision != tree.source.revision || old.content_hash() != tree.content_hash()
        });
        if changed {
            info!(
                source = "git",
                commit = tree.source.revision.as_deref().unwrap_or(""),
                "new commit"
            );
            *slot = Some(Arc::new(tree));
        }
        Ok(changed)
    }
}

// --- the config directory -------------------------------------------------

/// Watches the config directory: the directory itself recursively (any
/// change below it except to hidden files marks the config dirty: creates,
/// writes, renames, editors that save by rename included), and its parent
/// for the entry of the path, so that a replacement of the whole directory
/// (`rm -rf` and a fresh copy) or a swap of a symlink to it (`ln -sfn r2
/// tmp && mv -T tmp current`) is seen too: [`ConfigWatch::refresh`] then
/// moves the recursive watch to what the path names now.
pub struct ConfigWatch {
    /// The path as given (absolute).
    path: PathBuf,
    watcher: notify::RecommendedWatcher,
    /// What the recursive watch is on: the resolved directory and its
    /// (device, inode); `None` while the path names nothing watchable.
    watched: Option<(PathBuf, (u64, u64))>,
    /// The watched directory, for the event handler.
    root: Arc<Mutex<Option<PathBuf>>>,
    /// Set by the event handler when the watched directory itself went
    /// away (deleted or moved): its watch is gone even if a new directory
    /// at the same path got the same inode number.
    lost: Arc<AtomicBool>,
}

/// The path's parent directory and its entry in it: which events in the
/// parent concern the config directory.
struct Entry {
    parent: Option<PathBuf>,
    name: Option<OsString>,
}

impl Entry {
    /// Whether an event on `paths` changes the config: an empty list (the
    /// backend lost track), the path's own entry in the parent, or a file
    /// below that is not hidden.
    fn concerns(&self, paths: &[PathBuf]) -> bool {
        paths.is_empty()
            || paths.iter().any(|p| {
                if p.parent() == self.parent.as_deref() {
                    return p.file_name() == self.name.as_deref();
                }
                p.file_name()
                    .is_none_or(|n| !crate::tree::is_hidden(&n.to_string_lossy()))
            })
    }
}

impl ConfigWatch {
    /// Starts watching `path`; `on_change` is called from the watcher's
    /// thread for every relevant change.
    pub fn start(path: &Path, on_change: impl Fn() + Send + 'static) -> Result<ConfigWatch> {
        use notify::{RecursiveMode, Watcher};
        let path = std::path::absolute(path)
            .with_context(|| format!("--config-path {}", path.display()))?;
        let entry = Entry {
            parent: path.parent().map(Path::to_path_buf),
            name: path.file_name().map(|n| n.to_os_string()),
        };
        let parent = entry.parent.clone();
        let root: Arc<Mutex<Option<PathBuf>>> = Arc::default();
        let lost = Arc::new(AtomicBool::new(false));
        let handler = event_handler(entry, root.clone(), lost.clone(), on_change);
        let mut watcher = notify::recommended_watcher(handler)
            .context("starting the config directory watcher")?;
        // Without the parent's watch a replaced directory or a swapped
        // symlink is seen at the next resync only: not fatal.
        if let Some(parent) = &parent
            && let Err(e) = watcher.watch(parent, RecursiveMode::NonRecursive)
        {
            warn!(
                source = "config",
                "watching {}: {e}; a replaced config directory is seen at the next resync",
                parent.display()
            );
        }
        let mut w = ConfigWatch {
            path,
            watcher,
            watched: None,
            root,
            lost,
        };
        w.rewatch()
            .with_context(|| format!("watching {}", w.path.display()))?;
        Ok(w)
    }

    /// What the path names now: the resolved directory and its identity.
    fn resolve(&self) -> std::io::Result<(PathBuf, (u64, u64))> {
        use std::os::unix::fs::MetadataExt;
        let target = std::fs::canonicalize(&self.path)?;
        let meta = std::fs::metadata(&target)?;
        Ok((target, (meta.dev(), meta.ino())))
    }

    fn rewatch(&mut self) -> Result<()> {
        use notify::{RecursiveMode, Watcher};
        let now = self.resolve()?;
        if let Some((old, _)) = self.watched.take() {
            // Gone already when the directory was deleted: nothing to undo.
            let _ = self.watcher.unwatch(&old);
        }
        *lock(&self.root) = Some(now.0.clone());
        self.lost.store(false, Ordering::Relaxed);
        self.watcher.watch(&now.0, RecursiveMode::Recursive)?;
        self.watched = Some(now);
        Ok(())
    }

    /// Moves the recursive watch if the path names another directory than
    /// the watched one (replaced, or a symlink swapped); whether it moved.
    pub fn refresh(&mut self) -> bool {
        let current = self.resolve().ok();
        if current.is_none() || (current == self.watched && !self.lost.load(Ordering::Relaxed)) {
            return false;
        }
        match self.rewatch() {
            Ok(()) => {
                info!(
                    source = "config",
                    path = %self.path.display(),
                    target = %self.watched.as_ref().map(|w| w.0.display().to_string()).unwrap_or_default(),
                    "the config directory was replaced: watching the new one"
                );
                true
            }
            Err(e) => {
                // Retried at the next event in the parent directory; the
                // resync reads the directory meanwhile.
                warn!(
                    source = "config",
                    "watching {}: {}",
                    self.path.display(),
                    format_error(&e)
                );
                false
            }
        }
    }
}

/// The watcher's event handler: notes a lost root, calls `on_change` for
/// what concerns the config (and on errors: the pass reads anyway).
fn event_handler(
    entry: Entry,
    root: Arc<Mutex<Option<PathBuf>>>,
    lost: Arc<AtomicBool>,
    on_change: impl Fn() + Send + 'static,
) -> impl FnMut(notify::Result<notify::Event>) + Send + 'static {
    use notify::EventKind;
    use notify::event::ModifyKind;
    move |res| match res {
        Ok(ev) => {
            if matches!(ev.kind, EventKind::Access(_)) {
                return;
            }
            if matches!(
                ev.kind,
                EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_))
            ) && lock(&root).as_ref().is_some_and(|r| ev.paths.contains(r))
            {
                lost.store(true, Ordering::Relaxed);
            }
            if entry.concerns(&ev.paths) {
                on_change();
            }
        }
        Err(e) => {
            warn!(source = "config", "watching the config directory: {e}");
            on_change();
        }
    }
}
