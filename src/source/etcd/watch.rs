//! Watching the etcd overlay for the reconcile loop: a background task keeps
//! an in-memory [`Tree`] equal to the etcd prefix and marks it dirty when it
//! changes.
//!
//! Protocol: list every key at revision R, then watch from R+1, so no event
//! is lost or applied twice between the two. When the watch hits a
//! compacted revision, the stream breaks, the server cancels the watch or
//! stops answering progress requests, the task lists again and watches from
//! the new revision, with exponential backoff between failed attempts.
//!
//! Fail static: while etcd is unreachable the last good tree stays (it is
//! never replaced by an empty one); [`Snapshot::age`] reports how old it is.
//! Progress requests refresh that timestamp while nothing changes. They are
//! used only as a liveness signal, never to advance the resume revision
//! (etcd before 3.4.25/3.5.8 could send a progress revision ahead of events
//! still queued for the watcher).
//!
//! With each snapshot a consumer can take the paths that events changed
//! since it last took them ([`OverlayWatch::snapshot_with_changes`]): a
//! hint for an incremental render, which checks it (`render::memo`); after
//! a list, or past [`CHANGES_KEPT`] paths, it is unknown.
//!
//! Invariant: the task owns the etcd client; consumers only read snapshots.
//! This module does not parse the tree and does not decide whether a change
//! is suspicious (mass disappearance is the plan's guard; it gets the
//! numbers from [`Snapshot::backend_keys`]).

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, bail};
use tokio::sync::{Semaphore, watch as notify};

use super::{Settings, connect, keys, read, timed};
use crate::etcd::proto::{EventType, WatchCreateRequest, WatchResponse};
use crate::tree::Tree;

/// The most changed paths kept between two takes; past it the changes are
/// unknown (the consumer then compares the whole tree).
pub const CHANGES_KEPT: usize = 4096;

/// Timing of the watcher.
#[derive(Clone, Debug)]
pub struct Tuning {
    /// First wait after a failure; doubled on each failure in a row.
    pub backoff_min: Duration,
    /// Longest wait between attempts.
    pub backoff_max: Duration,
    /// How often an idle watch asks the server for progress (liveness).
    pub progress_interval: Duration,
    /// A watch that has not answered for this long is broken: list again.
    pub stall_timeout: Duration,
    /// Test hook: when set, one permit is taken after each list and before
    /// the watch is created (lets a test compact in between).
    pub before_watch: Option<Arc<Semaphore>>,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
            progress_interval: Duration::from_secs(5),
            stall_timeout: Duration::from_secs(20),
            before_watch: None,
        }
    }
}

/// The last good overlay tree.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Keys below the prefix; `source.revision` is [`Snapshot::revision`].
    pub tree: Arc<Tree>,
    /// The etcd revision the tree is at.
    pub revision: i64,
    /// When the tree was last known to equal etcd (a list, an event or a
    /// progress answer).
    pub last_good: Instant,
    /// Increases each time the content of the tree changes.
    pub generation: u64,
}

impl Snapshot {
    /// Staleness: time since the tree was last known to be current.
    pub fn age(&self) -> Duration {
        self.last_good.elapsed()
    }

    /// Number of backend keys in the tree (for mass-disappearance guards).
    pub fn backend_keys(&self) -> usize {
        keys::backend_key_count(&self.tree)
    }
}

/// Counters and health of the watcher.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// A watch is established and answering.
    pub in_sync: bool,
    /// Complete reads of the prefix.
    pub lists: u64,
    /// Watches that started at an already compacted revision.
    pub compactions: u64,
    /// Events applied to the tree.
    pub events: u64,
    /// Attempts that ended in an error (compactions included).
    pub failures: u64,
    /// The error that ended the last failed attempt.
    pub last_error: Option<String>,
}

#[derive(Default)]
struct Shared {
    snapshot: Option<Snapshot>,
    status: Status,
    /// The paths events changed since the last take; `None`: unknown.
    changes: Option<BTreeSet<String>>,
}

impl Shared {
    fn note_change(&mut self, path: String) {
        if let Some(changes) = &mut self.changes {
            changes.insert(path);
            if changes.len() > CHANGES_KEPT {
                self.changes = None;
            }
        }
    }
}

/// A running watcher. Dropping it stops the task.
pub struct OverlayWatch {
    shared: Arc<Mutex<Shared>>,
    dirty: notify::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OverlayWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl OverlayWatch {
    /// Starts watching; must be called inside a tokio runtime.
    pub fn spawn(settings: Settings, tuning: Tuning) -> OverlayWatch {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (tx, dirty) = notify::channel(0);
        let task = tokio::spawn(run(settings, tuning, shared.clone(), tx));
        OverlayWatch {
            shared,
            dirty,
            task,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        lock(&self.shared)
    }

    /// The last good tree; `None` until the first complete read.
    pub fn snapshot(&self) -> Option<Snapshot> {
        self.lock().snapshot.clone()
    }

    /// The last good tree and the paths changed since the last call
    /// (`None`: unknown, as on the first call); `None` until the first
    /// complete read.
    pub fn snapshot_with_changes(&self) -> Option<(Snapshot, Option<BTreeSet<String>>)> {
        let mut s = self.lock();
        let snapshot = s.snapshot.clone()?;
        let changes = s.changes.replace(BTreeSet::new());
        Some((snapshot, changes))
    }

    pub fn status(&self) -> Status {
        self.lock().status.clone()
    }

    /// Age of the last good tree; `None` until the first complete read.
    pub fn staleness(&self) -> Option<Duration> {
        self.lock().snapshot.as_ref().map(Snapshot::age)
    }

    /// The dirty flag: its value is the generation of the newest tree. A
    /// receiver's `changed()` returns when the content changed since it last
    /// looked; the reader then takes a fresh [`OverlayWatch::snapshot`].
    pub fn subscribe(&self) -> notify::Receiver<u64> {
        self.dirty.clone()
    }

    /// Waits until the tree changed since the last call (or since spawn).
    pub async fn changed(&mut self) -> Result<Snapshot> {
        self.dirty
            .changed()
            .await
            .map_err(|_| anyhow!("etcd watcher stopped"))?;
        self.snapshot()
            .ok_or_else(|| anyhow!("etcd watcher marked dirty without a tree"))
    }

    /// Waits for the first complete read, at most `limit`.
    pub async fn ready(&mut self, limit: Duration) -> Result<Snapshot> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(s) = self.snapshot() {
                return Ok(s);
            }
            match tokio::time::timeout_at(deadline, self.dirty.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => bail!("etcd watcher stopped"),
                Err(_) => {
                    let why = self
                        .status()
                        .last_error
                        .unwrap_or_else(|| "no answer".to_string());
                    bail!("etcd overlay not read within {limit:?}: {why}")
                }
            }
        }
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // A panic while holding the lock cannot leave the plain data inside
    // half-updated in a way that matters more than losing the watcher.
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// The watch started at a revision etcd has compacted away.
#[derive(Debug, thiserror::Error)]
#[error("watch from revision {start}: compacted up to revision {compacted}, listing again")]
struct Compacted {
    start: i64,
    compacted: i64,
}

async fn run(
    settings: Settings,
    tuning: Tuning,
    shared: Arc<Mutex<Shared>>,
    tx: notify::Sender<u64>,
) {
    let mut backoff = tuning.backoff_min;
    loop {
        let err = match session(&settings, &tuning, &shared, &tx, &mut backoff).await {
            Ok(never) => match never {},
            Err(e) => e,
        };
        let compacted = err.downcast_ref::<Compacted>().is_some();
        let message = format!("{err:#}");
        {
            let mut s = lock(&shared);
            s.status.in_sync = false;
            s.status.failures += 1;
            s.status.compactions += u64::from(compacted);
            s.status.last_error = Some(message.clone());
        }
        if compacted {
            tracing::info!("etcd overlay: {message}");
        } else {
            tracing::warn!(
                "etcd overlay: {message}; retrying in {backoff:?}, keeping the last good tree"
            );
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(tuning.backoff_max);
    }
}

/// One attempt: connect, list, watch until something breaks.
async fn session(
    settings: &Settings,
    tuning: &Tuning,
    shared: &Mutex<Shared>,
    tx: &notify::Sender<u64>,
    backoff: &mut Duration,
) -> Result<Infallible> {
    let keys = settings.keys();
    let client = connect(settings).await?;
    let tree = read(&client, settings).await?;
    let revision: i64 = tree
        .source
        .revision
        .as_deref()
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| anyhow!("etcd read without a revision"))?;
    if let Some(warning) = super::empty_prefix(settings, &tree) {
        tracing::warn!("etcd overlay: {warning}");
    }
    tracing::info!(
        "etcd overlay: read {} keys at revision {revision}",
        tree.files.len() + tree.unreadable.len()
    );
    install(shared, tx, tree, revision);

    if let Some(gate) = &tuning.before_watch {
        gate.acquire().await?.forget();
    }
    let start = revision + 1;
    let create = WatchCreateRequest {
        key: keys.scan_prefix().to_vec(),
        range_end: keys.range_end(),
        start_revision: start,
        ..Default::default()
    };
    let stream = timed(settings, "watch", client.watch(create)).await?;
    let (requests, mut responses) = stream.split();
    let mut progress = tokio::time::interval(tuning.progress_interval);
    progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    progress.tick().await;
    let mut last_answer = Instant::now();
    loop {
        tokio::select! {
            msg = responses.message() => {
                let resp = match msg {
                    Ok(Some(resp)) => resp,
                    Ok(None) => bail!("{}: watch stream closed", settings.description()),
                    Err(e) => bail!("{}: watch: {e}", settings.description()),
                };
                last_answer = Instant::now();
                if resp.compact_revision > 0 {
                    return Err(Compacted { start, compacted: resp.compact_revision }.into());
                }
                if resp.canceled {
                    bail!("{}: watch canceled by the server: {}", settings.description(),
                        if resp.cancel_reason.is_empty() { "no reason given" } else { &resp.cancel_reason });
                }
                if resp.created {
                    *backoff = tuning.backoff_min;
                }
                apply(shared, tx, settings, &resp);
            }
            _ = progress.tick() => {
                if last_answer.elapsed() > tuning.stall_timeout {
                    bail!("{}: watch stalled: no answer for {:?}", settings.description(), last_answer.elapsed());
                }
                requests
                    .request_progress()
                    .await
                    .map_err(|e| anyhow!("{}: watch progress: {e}", settings.description()))?;
            }
        }
    }
}

/// Replaces the tree with a complete read at `revision`.
fn install(shared: &Mutex<Shared>, tx: &notify::Sender<u64>, tree: Tree, revision: i64) {
    let mut s = lock(shared);
    s.status.lists += 1;
    let (changed, generation) = match &s.snapshot {
        Some(old) if old.tree.files == tree.files && old.tree.unreadable == tree.unreadable => {
            (false, old.generation)
        }
        Some(old) => (true, old.generation + 1),
        None => (true, 1),
    };
    if changed {
        s.changes = None;
    }
    s.snapshot = Some(Snapshot {
        tree: Arc::new(tree),
        revision,
        last_good: Instant::now(),
        generation,
    });
    drop(s);
    if changed {
        tx.send_replace(generation);
    }
}

/// Applies the events of one watch response (none: a progress answer or
/// the creation of the watch, which only refresh `last_good`).
fn apply(
    shared: &Mutex<Shared>,
    tx: &notify::Sender<u64>,
    settings: &Settings,
    resp: &WatchResponse,
) {
    let mut s = lock(shared);
    s.status.in_sync = true;
    let mut changed_paths = Vec::new();
    let Shared {
        snapshot, status, ..
    } = &mut *s;
    let Some(snap) = snapshot.as_mut() else {
        return;
    };
    snap.last_good = Instant::now();
    // The fleet status records below the prefix are no part of the
    // overlay: their writes neither copy the tree nor move its revision.
    let events: Vec<_> = resp
        .events
        .iter()
        .filter_map(|e| Some((e, e.kv.as_ref()?)))
        .filter(|(_, kv)| settings.keys().classify(&kv.key) != keys::KeyKind::Status)
        .collect();
    if events.is_empty() {
        return;
    }
    // While a pass holds the last snapshot this clones the tree, whose
    // chunks stay shared: only the chunks the events change are copied.
    let tree = Arc::make_mut(&mut snap.tree);
    let mut changed = false;
    for (event, kv) in events {
        let applied = match EventType::try_from(event.r#type) {
            Ok(EventType::Put) => keys::apply_put(tree, settings.keys(), &kv.key, &kv.value),
            Ok(EventType::Delete) => keys::apply_delete(tree, settings.keys(), &kv.key),
            // A kind of event this client does not know: the next relist
            // (compaction, resync) reads the key as it is.
            Err(_) => false,
        };
        if applied && let keys::KeyKind::Path(path) = settings.keys().classify(&kv.key) {
            changed_paths.push(path);
        }
        changed |= applied;
        snap.revision = snap.revision.max(kv.mod_revision);
        status.events += 1;
    }
    tree.source.revision = Some(snap.revision.to_string());
    let generation = changed.then(|| {
        snap.generation += 1;
        snap.generation
    });
    for path in changed_paths {
        s.note_change(path);
    }
    drop(s);
    if let Some(generation) = generation {
        tx.send_replace(generation);
    }
}
