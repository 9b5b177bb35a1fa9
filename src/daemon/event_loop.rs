//! The daemon's event loop: turns the clock, the etcd watch, Git polls,
//! config-directory changes, SIGHUP and finished passes into [`Event`]s for
//! the pure [`Schedule`], and carries out its actions (start a pass, poll
//! Git, sleep until a time). Passes run on one thread of their own
//! ([`PassThread`]), polls on blocking threads; the loop only waits.
//!
//! Must not: decide when to pass or poll (the schedule does) or what a
//! pass does (the pass does).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use super::clock::unix_now;
use super::inputs::{ConfigWatch, GitPoller};
use super::pass::{Pass, PassFailure, PassReport};
use super::status_page::snapshot::LastPass;
use super::sync::lock;
use crate::error::format_error;
use crate::metrics::Metrics;
use crate::reconcile::withdraw;
use crate::reconcile::{Action, Event, Schedule, Settings, Source, Trigger};
use crate::source::etcd::watch::OverlayWatch;

/// What the loop's helpers (passes, polls, the config watcher, the HTTP
/// hook) tell it.
pub enum Msg {
    PassDone {
        result: Result<PassReport, PassFailure>,
        took: Duration,
        changed_at: Option<Duration>,
        /// The commit and etcd revision it read.
        input: (Option<String>, Option<String>),
    },
    GitPolled(Result<bool, String>),
    HookGit,
    ConfigChanged,
    /// A checked dest went down or came up.
    HealthChanged,
}

/// What the daemon reports about itself (for tests and health checks).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    pub passes_ok: u64,
    pub passes_failed: u64,
    /// Ops applied by the last successful pass.
    pub last_ops: usize,
    /// The error of the last failed pass, until a pass succeeds.
    pub last_error: Option<String>,
    pub drains_active: usize,
    /// The last pass, ok or failed (the status page).
    pub last_pass: Option<LastPass>,
}

/// The etcd watch and its change notifications.
pub type EtcdFeed = (Arc<OverlayWatch>, tokio::sync::watch::Receiver<u64>);

/// The loop and what it drives.
pub struct EventLoop {
    pub settings: Settings,
    /// The daemon's clock, shared with the passes.
    pub epoch: Instant,
    /// Set on SIGHUP: the next pass reads the kernel.
    pub sighup: Arc<AtomicBool>,
    pub pass: Arc<Mutex<Pass>>,
    pub git: Option<Arc<Mutex<GitPoller>>>,
    pub etcd: Option<EtcdFeed>,
    pub metrics: Arc<Metrics>,
    pub status: Arc<Mutex<Status>>,
    /// Set by the first successful pass (`/readyz`).
    pub ready: Arc<AtomicBool>,
    pub tx: mpsc::UnboundedSender<Msg>,
    pub rx: mpsc::UnboundedReceiver<Msg>,
    pub flush_on_exit: bool,
    /// The VIP withdrawal policy (`None`: no VIP interface).
    pub withdraw: Option<withdraw::Policy>,
    pub fs_watcher: Option<ConfigWatch>,
    /// Where the passes run ([`PassThread`]).
    pub pass_thread: PassThread,
}

/// One long-lived thread that runs every pass, one at a time. Not tokio's
/// blocking pool: a pass there lands on whichever pool thread is idle, and
/// the allocator reuses memory freed by another thread than the one that
/// allocated it late, so what one pass built and a later one replaced
/// stayed resident beside its replacement (docs/benchmarks.md, session 13).
pub struct PassThread {
    jobs: std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>,
}

impl PassThread {
    /// Starts the thread; it ends when the `PassThread` is dropped and its
    /// last job is done.
    pub fn start() -> Result<PassThread> {
        let (jobs, rx) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        std::thread::Builder::new()
            .name("clusterf-pass".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            })?;
        Ok(PassThread { jobs })
    }

    fn run(&self, job: impl FnOnce() + Send + 'static) {
        // The thread outlives every sender: it only ends when they are gone.
        let _ = self.jobs.send(Box::new(job));
    }
}

/// What woke the loop.
enum Wake {
    Shutdown,
    Event(Event),
    /// Nothing for the schedule (a source that ended).
    Nothing,
}

/// The loop's own state while it runs.
struct Running {
    sched: Schedule,
    hup: Option<Signal>,
    pass_running: bool,
    /// etcd watcher failures counted as errors so far.
    etcd_failures: u64,
    /// What the VIP withdrawal rule needs.
    vips: withdraw::State,
}

impl EventLoop {
    /// Runs until `shutdown`, then lets a running pass finish (briefly) and
    /// flushes if asked.
    pub async fn run(mut self, mut shutdown: oneshot::Receiver<()>) -> Result<()> {
        let mut running = Running {
            sched: Schedule::new(self.settings.clone(), self.now()),
            hup: signal(SignalKind::hangup())
                .map_err(|e| warn!("cannot handle SIGHUP: {e}"))
                .ok(),
            pass_running: false,
            etcd_failures: 0,
            vips: withdraw::State::default(),
        };
        let mut events: Vec<Event> = Vec::new();
        loop {
            let actions = running.sched.step(self.now(), events.drain(..));
            let wake = self.act(actions, &mut running);
            let wake = self
                .withdraw_if_due(&mut running)
                .await
                .map_or(wake, |at| at.min(wake));
            match self.wait(wake, &mut shutdown, &mut running).await {
                Wake::Shutdown => break,
                Wake::Event(e) => events.push(e),
                Wake::Nothing => {}
            }
            self.count_etcd_failures(&mut running.etcd_failures);
        }
        if running.pass_running {
            running.pass_running = !self.finish_pass().await;
        }
        running.vips.exiting = true;
        self.withdraw_if_due(&mut running).await;
        if self.flush_on_exit {
            self.flush(running.pass_running).await;
        } else {
            info!("stopping; the IPVS rules stay in place");
        }
        Ok(())
    }

    /// The schedule's now: time since the epoch.
    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Carries out the schedule's actions; when to wake at the latest.
    fn act(&self, actions: impl IntoIterator<Item = Action>, running: &mut Running) -> Duration {
        let mut wake = Duration::from_secs(86_400 * 365);
        for action in actions {
            match action {
                Action::StartPass {
                    triggers,
                    changed_at,
                } => {
                    running.pass_running = true;
                    self.start_pass(triggers, changed_at);
                }
                Action::PollGit => self.start_poll(),
                Action::WakeAt(t) => wake = t,
            }
        }
        wake
    }

    /// Waits for the next thing that happens: shutdown, the wake time, an
    /// etcd change, a message, SIGHUP.
    async fn wait(
        &mut self,
        wake: Duration,
        shutdown: &mut oneshot::Receiver<()>,
        running: &mut Running,
    ) -> Wake {
        let sleep = tokio::time::sleep_until(self.epoch + wake);
        let etcd_changed = async {
            match &mut self.etcd {
                Some((_, rx)) => rx.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        let hup = async {
            match &mut running.hup {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown => Wake::Shutdown,
            _ = sleep => Wake::Event(Event::Tick),
            ok = etcd_changed => self.etcd_changed(ok),
            Some(msg) = self.rx.recv() => self.received(msg, running),
            got = hup => self.sighup(got.is_some(), running),
        }
    }

    fn etcd_changed(&mut self, ok: bool) -> Wake {
        if ok {
            return Wake::Event(Event::EtcdChanged);
        }
        warn!(
            source = "etcd",
            "etcd watcher stopped; keeping the last overlay"
        );
        self.etcd = None;
        Wake::Nothing
    }

    fn received(&mut self, msg: Msg, running: &mut Running) -> Wake {
        Wake::Event(match msg {
            Msg::PassDone {
                result,
                took,
                changed_at,
                input,
            } => {
                running.pass_running = false;
                // Only fail static counts toward a withdrawal: not a pass
                // whose plan was applied but for the services the kernel
                // refused (one bad backend must not withdraw every VIP).
                let applied = result.as_ref().map_or_else(|f| !f.is_static(), |_| true);
                running.vips.pass_done(applied, self.now());
                self.pass_done(result, took, changed_at, input)
            }
            Msg::GitPolled(Ok(new_commit)) => {
                self.metrics
                    .source_ok(Source::Git, unix_now().as_secs_f64());
                Event::GitPolled { new_commit }
            }
            Msg::GitPolled(Err(e)) => {
                warn!(
                    source = "git",
                    "poll failed (a commit read before stays in use): {e}"
                );
                self.metrics.error(Source::Git);
                Event::GitPollFailed
            }
            Msg::HookGit => Event::HookGit,
            Msg::HealthChanged => Event::HealthChanged,
            Msg::ConfigChanged => {
                if let Some(w) = &mut self.fs_watcher {
                    w.refresh();
                }
                Event::ConfigChanged
            }
        })
    }

    fn sighup(&self, got: bool, running: &mut Running) -> Wake {
        if !got {
            running.hup = None;
            return Wake::Nothing;
        }
        info!("SIGHUP: reloading");
        self.sighup.store(true, Ordering::Relaxed);
        Wake::Event(Event::Sighup)
    }

    /// The etcd watcher's own failures count as etcd errors.
    fn count_etcd_failures(&self, counted: &mut u64) {
        if let Some((w, _)) = &self.etcd {
            let failures = w.status().failures;
            for _ in *counted..failures {
                self.metrics.error(Source::Etcd);
            }
            *counted = failures;
        }
    }

    /// At shutdown: waits briefly for the running pass; whether it ended.
    async fn finish_pass(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_millis(800);
        while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            if let Msg::PassDone {
                result,
                took,
                changed_at,
                input,
            } = msg
            {
                self.pass_done(result, took, changed_at, input);
                return true;
            }
        }
        false
    }

    /// Withdraws the VIPs when `reconcile::withdraw` says so (not while a
    /// pass runs: the rule is asked again when it ends); when to ask
    /// again.
    async fn withdraw_if_due(&self, running: &mut Running) -> Option<Duration> {
        let policy = self.withdraw?;
        match withdraw::decide(&policy, &running.vips, self.now()) {
            withdraw::Verdict::Keep { recheck_at } => recheck_at,
            withdraw::Verdict::Withdraw if running.pass_running => {
                if running.vips.exiting {
                    warn!("--withdraw-on-exit: a pass is still running; not withdrawing");
                }
                None
            }
            withdraw::Verdict::Withdraw => {
                let why = if running.vips.exiting {
                    "stopping with --withdraw-on-exit"
                } else {
                    "fail static for longer than --withdraw-after"
                };
                let pass = self.pass.clone();
                let r = tokio::task::spawn_blocking(move || lock(&pass).withdraw_vips()).await;
                match r {
                    Ok(Ok(n)) => {
                        warn!(vips = n.unwrap_or(0), "withdrew the VIPs: {why}");
                        running.vips.withdrawn = true;
                    }
                    Ok(Err(e)) => error!("withdrawing the VIPs: {}", format_error(&e)),
                    Err(e) => error!("withdrawing the VIPs: {e}"),
                }
                // A failed withdrawal is tried again within seconds.
                (!running.vips.withdrawn).then(|| self.now() + Duration::from_secs(5))
            }
        }
    }

    /// `--flush-on-exit`: deletes the owned services, unless a pass is
    /// still running.
    async fn flush(&self, pass_running: bool) {
        if pass_running {
            warn!("--flush-on-exit: a pass is still running; not flushing");
            return;
        }
        let pass = self.pass.clone();
        let r = tokio::task::spawn_blocking(move || lock(&pass).delete_owned()).await;
        match r {
            Ok(Ok(n)) => info!(
                services = n,
                "deleted the owned IPVS services (--flush-on-exit); others stay"
            ),
            Ok(Err(e)) => error!("--flush-on-exit: {}", format_error(&e)),
            Err(e) => error!("--flush-on-exit: {e}"),
        }
    }

    fn start_pass(&self, triggers: BTreeSet<Trigger>, changed_at: Option<Duration>) {
        let pass = self.pass.clone();
        let tx = self.tx.clone();
        let names: Vec<&str> = triggers.iter().map(|t| t.as_str()).collect();
        debug!(triggers = names.join(","), "pass");
        self.pass_thread.run(move || {
            let started = std::time::Instant::now();
            // A panicking pass is a failed pass: the loop goes on (a pass
            // that never reported would stop every later one).
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut pass = lock(&pass);
                let result = pass.run(&triggers);
                pass.publish_status(&result);
                (result, pass.last_input())
            }));
            let (result, input) = ran.unwrap_or_else(|payload| {
                let failed = Err(PassFailure::panicked(&*payload));
                let mut pass = lock(&pass);
                pass.publish_status(&failed);
                (failed, pass.last_input())
            });
            let _ = tx.send(Msg::PassDone {
                result,
                took: started.elapsed(),
                changed_at,
                input,
            });
        });
    }

    fn start_poll(&self) {
        let Some(git) = self.git.clone() else { return };
        let tx = self.tx.clone();
        tokio::task::spawn_blocking(move || {
            let r = lock(&git).poll().map_err(|e| format_error(&e));
            let _ = tx.send(Msg::GitPolled(r));
        });
    }

    /// Records a finished pass (status, metrics, logs); the schedule's
    /// event.
    fn pass_done(
        &self,
        result: Result<PassReport, PassFailure>,
        took: Duration,
        changed_at: Option<Duration>,
        input: (Option<String>, Option<String>),
    ) -> Event {
        let now = self.now();
        self.metrics.pass_finished(result.is_ok(), took);
        let mut status = lock(&self.status);
        status.last_pass = Some(last_pass(&result, took, input, &status));
        match result {
            Ok(report) => {
                if let Some(at) = changed_at {
                    self.metrics.change_applied(now.saturating_sub(at));
                }
                if status.last_error.take().is_some() {
                    info!("recovered: the kernel matches the desired state again");
                }
                if report.ops > 0 {
                    info!(
                        changes = report.ops,
                        ms = took.as_millis() as u64,
                        "applied"
                    );
                }
                status.passes_ok += 1;
                status.last_ops = report.ops;
                status.drains_active = report.drains_active;
                self.ready.store(true, Ordering::Relaxed);
                Event::PassOk {
                    recheck_at: recheck_at(&report, now),
                }
            }
            Err(f) => {
                error!(source = f.source.as_str(), "pass failed: {}", f.error);
                self.metrics.error(f.source);
                status.passes_failed += 1;
                status.last_error = Some(f.error);
                Event::PassFailed { source: f.source }
            }
        }
    }
}

/// The status page's account of a pass that just ended (`status`: the
/// counts before it).
fn last_pass(
    result: &Result<PassReport, PassFailure>,
    took: Duration,
    (commit, etcd_revision): (Option<String>, Option<String>),
    status: &Status,
) -> LastPass {
    let ok = result.is_ok();
    LastPass {
        ok,
        at_ms: u64::try_from(unix_now().as_millis()).unwrap_or(u64::MAX),
        duration_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
        changes: result.as_ref().map_or(0, |r| r.ops),
        commit,
        etcd_revision,
        error: result.as_ref().err().map(|f| f.error.clone()),
        diagnostics: result
            .as_ref()
            .err()
            .map(|f| f.diagnostics.clone())
            .unwrap_or_default(),
        passes_ok: status.passes_ok + u64::from(ok),
        passes_failed: status.passes_failed + u64::from(!ok),
    }
}

/// When to look again after a successful pass: at the next drain deadline,
/// and every second while drains wait for connections to close (a change
/// by hand is seen by the resync, which re-reads the kernel every --resync
/// whatever other passes run); an unsaved drain state within seconds.
fn recheck_at(report: &PassReport, now: Duration) -> Option<Duration> {
    let mut at = report.next_drain_deadline_ms.map(|deadline| {
        let left = Duration::from_millis(deadline)
            .saturating_sub(unix_now())
            .min(Duration::from_secs(1));
        now + left
    });
    if report.state_unsaved {
        let retry = now + Duration::from_secs(5);
        at = Some(at.map_or(retry, |at| at.min(retry)));
    }
    at
}
