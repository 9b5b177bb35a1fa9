//! `clusterf realserver --watch`: the daemon's inputs (the config
//! directory watcher or the Git poller, the etcd watch) and its pure
//! schedule (`reconcile::Schedule`: debounce, resync, backoff, Git polls)
//! around the realserver's [`pass`](super::pass); `/metrics` through the
//! daemon's listener. Level-triggered: every pass reads the whole inputs
//! and the host.
//!
//! Must not: decide when to pass (the schedule does) or what to change
//! (the plan does); on stop, change nothing (`--cleanup` removes).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{info, warn};

use super::{Host, Options};
use crate::compile;
use crate::daemon::http::{self, Http};
use crate::daemon::inputs::{ConfigWatch, GitPoller};
use crate::daemon::options::ETCD_STARTUP_WAIT;
use crate::error::format_error;
use crate::metrics::Metrics;
use crate::reconcile::{Action, Event, Schedule, Settings, Source};
use crate::source::etcd::watch::{OverlayWatch, Tuning};
use crate::source::{ConfigSource, OverlaySource};
use crate::tree::Tree;

/// The loop's flags, resolved.
pub struct WatchOptions {
    pub config: ConfigSource,
    pub overlay: Option<OverlaySource>,
    pub compile: compile::Options,
    pub poll: Duration,
    pub resync: Duration,
    pub metrics_listen: Option<SocketAddr>,
}

enum Msg {
    PassDone(Result<(), Source>),
    GitPolled(Result<bool, String>),
    ConfigChanged,
}

/// Where a pass reads its trees.
enum Config {
    Dir(PathBuf),
    Git(Arc<Mutex<Option<Arc<Tree>>>>),
}

/// What a pass needs, behind one lock.
struct Passer {
    host: Host,
    opts: Options,
    config: Config,
    overlay: Option<OverlaySource>,
    etcd: Option<Arc<OverlayWatch>>,
    compile: compile::Options,
    metrics: Arc<Metrics>,
}

/// Runs until `shutdown`; the host is left as it is.
pub async fn run(
    w: WatchOptions,
    opts: Options,
    host: Host,
    shutdown: oneshot::Receiver<()>,
) -> Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let metrics = Arc::new(Metrics::with_vips());
    let ready = Arc::new(AtomicBool::new(false));
    let (config, git, mut fs) = start_config(&w.config, &tx)?;
    let etcd = start_etcd(&w.overlay).await;
    let mut etcd_rx = etcd.as_ref().map(|e| e.subscribe());
    let http_stop = start_http(w.metrics_listen, &metrics, &ready).await?;
    let passer = Arc::new(Mutex::new(Passer {
        host,
        opts,
        config,
        overlay: w.overlay.clone(),
        etcd,
        compile: w.compile.clone(),
        metrics: metrics.clone(),
    }));
    let epoch = Instant::now();
    let settings = Settings {
        resync: w.resync,
        poll: git.is_some().then_some(w.poll),
        ..Settings::default()
    };
    let mut sched = Schedule::new(settings, epoch.elapsed());
    let mut events = Vec::new();
    let mut shutdown = shutdown;
    loop {
        let mut wake = Duration::from_secs(86_400);
        for action in sched.step(epoch.elapsed(), events.drain(..)) {
            match action {
                Action::StartPass { .. } => start_pass(&passer, &tx, &ready),
                Action::PollGit => start_poll(git.clone(), &tx),
                Action::WakeAt(t) => wake = t,
            }
        }
        let etcd_changed = async {
            match &mut etcd_rx {
                Some(rx) => rx.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep_until(epoch + wake) => events.push(Event::Tick),
            ok = etcd_changed => if ok { events.push(Event::EtcdChanged) } else { etcd_rx = None },
            Some(msg) = rx.recv() => events.push(event_of(msg, fs.as_mut())),
        }
    }
    let _ = http_stop.send(());
    info!("stopping; the host stays as it is (--cleanup removes what clusterf added)");
    Ok(())
}

/// The schedule's event for a message.
fn event_of(msg: Msg, fs: Option<&mut ConfigWatch>) -> Event {
    match msg {
        Msg::PassDone(Ok(())) => Event::PassOk { recheck_at: None },
        Msg::PassDone(Err(source)) => Event::PassFailed { source },
        Msg::GitPolled(Ok(new_commit)) => Event::GitPolled { new_commit },
        Msg::GitPolled(Err(e)) => {
            warn!(
                source = "git",
                "poll failed (a commit read before stays in use): {e}"
            );
            Event::GitPollFailed
        }
        Msg::ConfigChanged => {
            // A replaced directory or a swapped symlink: watch the new one.
            if let Some(w) = fs {
                w.refresh();
            }
            Event::ConfigChanged
        }
    }
}

/// The etcd watch, given a moment for its first read (as the daemon's),
/// so that the first pass does not fail only because it raced it.
async fn start_etcd(overlay: &Option<OverlaySource>) -> Option<Arc<OverlayWatch>> {
    let Some(OverlaySource::Etcd(s)) = overlay else {
        return None;
    };
    let watch = OverlayWatch::spawn(s.clone(), Tuning::default());
    let deadline = Instant::now() + ETCD_STARTUP_WAIT;
    while watch.snapshot().is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Some(Arc::new(watch))
}

/// The daemon's listener with /metrics, /healthz and /readyz (no status
/// page, no Git hook); its stop switch.
async fn start_http(
    addr: Option<SocketAddr>,
    metrics: &Arc<Metrics>,
    ready: &Arc<AtomicBool>,
) -> Result<oneshot::Sender<()>> {
    let (stop, stopped) = oneshot::channel();
    if let Some(addr) = addr {
        let h = Http {
            metrics: metrics.clone(),
            ready: ready.clone(),
            hook: None,
            checks: None,
            page: None,
        };
        let bound = http::serve(addr, h, stopped).await?;
        info!("metrics on http://{bound}/metrics");
    }
    Ok(stop)
}

type Started = (Config, Option<Arc<Mutex<GitPoller>>>, Option<ConfigWatch>);

fn start_config(config: &ConfigSource, tx: &mpsc::UnboundedSender<Msg>) -> Result<Started> {
    Ok(match config {
        ConfigSource::Dir(path) => {
            let tx = tx.clone();
            let watch = ConfigWatch::start(path, move || {
                let _ = tx.send(Msg::ConfigChanged);
            })?;
            (Config::Dir(path.clone()), None, Some(watch))
        }
        ConfigSource::Git(opts) => {
            let (poller, input) = GitPoller::new(opts.clone())?;
            let crate::daemon::inputs::ConfigInput::Git(slot) = input else {
                unreachable!("a Git poller fills a Git input")
            };
            (Config::Git(slot), Some(Arc::new(Mutex::new(poller))), None)
        }
    })
}

fn start_poll(git: Option<Arc<Mutex<GitPoller>>>, tx: &mpsc::UnboundedSender<Msg>) {
    let Some(git) = git else { return };
    let tx = tx.clone();
    tokio::task::spawn_blocking(move || {
        let r = lock(&git).poll().map_err(|e| format_error(&e));
        let _ = tx.send(Msg::GitPolled(r));
    });
}

fn start_pass(
    passer: &Arc<Mutex<Passer>>,
    tx: &mpsc::UnboundedSender<Msg>,
    ready: &Arc<AtomicBool>,
) {
    let (passer, tx, ready) = (passer.clone(), tx.clone(), ready.clone());
    tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let mut p = lock(&passer);
        let r = p.run();
        p.metrics.pass_finished(r.is_ok(), started.elapsed());
        if let Err(source) = r {
            p.metrics.error(source);
        } else {
            ready.store(true, Ordering::Relaxed);
        }
        let _ = tx.send(Msg::PassDone(r));
    });
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Passer {
    /// One pass: the trees, the render (a config with errors changes
    /// nothing), the host's pass; the plan's lines logged.
    fn run(&mut self) -> Result<(), Source> {
        let config = self.read_config()?;
        let overlay = self.read_overlay()?;
        let rendered = crate::render::render(&config, overlay.as_deref(), &self.compile);
        for d in rendered.diags.iter() {
            warn!(source = "config", "{d}");
        }
        if rendered.diags.errors().next().is_some() {
            warn!(
                source = "config",
                "the config has errors: the host is left as it is"
            );
            return Err(Source::Config);
        }
        match super::pass(&mut self.host, Some(&rendered), &self.opts, false) {
            Ok(out) => {
                for w in &out.desired.warnings {
                    warn!("{w}");
                }
                for step in &out.plan.steps {
                    info!("{step}");
                }
                let n = out.desired.vips.len() + out.desired.tunnel_vips.len();
                self.metrics.vips(n, n);
                Ok(())
            }
            Err(e) => {
                warn!(source = "apply", "{}", format_error(&e));
                Err(Source::Apply)
            }
        }
    }

    fn read_config(&self) -> Result<Arc<Tree>, Source> {
        match &self.config {
            Config::Dir(path) => crate::source::dir::read(path).map(Arc::new).map_err(|e| {
                warn!(source = "config", "{}", format_error(&e));
                Source::Config
            }),
            Config::Git(slot) => lock(slot).clone().ok_or_else(|| {
                warn!(
                    source = "git",
                    "no commit of the config repository read yet"
                );
                Source::Git
            }),
        }
    }

    fn read_overlay(&self) -> Result<Option<Arc<Tree>>, Source> {
        match (&self.overlay, &self.etcd) {
            (_, Some(watch)) => match watch.snapshot() {
                Some(s) => Ok(Some(s.tree)),
                None => {
                    let why = watch
                        .status()
                        .last_error
                        .unwrap_or_else(|| "no answer".into());
                    warn!(source = "etcd", "etcd overlay not read yet: {why}");
                    Err(Source::Etcd)
                }
            },
            (Some(OverlaySource::Dir(path)), None) => crate::source::dir::read(path)
                .map(|t| Some(Arc::new(t)))
                .map_err(|e| {
                    warn!(source = "overlay", "{}", format_error(&e));
                    Source::Config
                }),
            _ => Ok(None),
        }
    }
}
