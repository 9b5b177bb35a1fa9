//! The daemon behind `clusterf apply --watch`, as a library: it keeps the
//! kernel's IPVS table equal to the config (directory or Git repository)
//! plus the overlay (etcd or a directory), continuously. The CLI only
//! resolves its flags into [`Options`] and drives [`Daemon`]; tests drive
//! it the same way with a [`MemoryKernel`].
//!
//! This is the I/O edge around the pure loop in [`crate::reconcile`]: the
//! event loop (`event_loop`) owns the clock, the timers, the inputs
//! (`inputs`: the config-directory watcher, Git polls, the etcd watch),
//! signals and the HTTP listener (`http`), and turns them into events for
//! the schedule; each pass (`pass`) reads the inputs, renders, chooses the
//! live table (the rule is `reconcile::live`), plans, applies through the
//! [`Kernel`] (the plan's text logged as it is written: `plan_log`) and
//! records drains in the state file (`state_file`); after
//! each pass, ok or failed, the fleet status record goes to the publisher
//! (`status`), which writes it into the overlay's etcd. With
//! `--vip-interface`, the pass keeps the VIPs on their interface around
//! the apply (`vips`; in ARP mode on a shared interface, announced by
//! `arp`) and the loop withdraws them when
//! `reconcile::withdraw` says so. Beside the passes,
//! the traffic reader (`traffic`) reads the kernel's traffic counters for
//! the metrics on a connection of its own.
//!
//! It holds to ARCHITECTURE.md's invariants on failing sources (fail
//! static), ownership, the live copy and level triggering.
//!
//! Must not: parse flags or print (the CLI does), decide anything the pure
//! core decides (what to change is the planner's), or flush the table on
//! start or stop.

mod arp;
mod clock;
mod diagnostics;
mod event_loop;
pub mod health;
mod health_view;
pub(crate) mod http;
pub(crate) mod inputs;
pub mod kernel;
pub mod memory;
pub mod options;
mod page_sources;
mod pass;
mod plan_log;
pub mod probe;
pub mod state_file;
pub mod status;
pub mod status_page;
mod sync;
mod traffic;
pub mod vips;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{info, warn};

use self::event_loop::{EtcdFeed, EventLoop, Msg, PassThread};
use self::health::HealthChecker;
use self::health_view::HealthStep;
use self::inputs::{ConfigInput, ConfigWatch, GitPoller, OverlayInput};
use self::page_sources::PageSources;
use self::pass::{FleetStatus, Pass, PassSetup};
use self::status::{StatusPublisher, StatusTuning};
use self::sync::lock;
use self::vips::VipStep;
use crate::error::format_error;
use crate::fleet::FrontendStatus;
use crate::metrics::Metrics;
use crate::reconcile::withdraw::Policy;
use crate::reconcile::{Drains, Settings, Source};
use crate::render::memo::Memo;
use crate::source::etcd::watch::OverlayWatch;
use crate::source::{ConfigSource, OverlaySource};

pub use self::event_loop::Status;
pub use self::kernel::{ApplyFailure, Kernel, TrafficReader};
pub use self::memory::{MemoryKernel, MemoryVips};
pub use self::options::{Options, VipMode};
pub use self::vips::VipInterface;

/// A running daemon.
pub struct Daemon {
    metrics_addr: Option<SocketAddr>,
    metrics: Arc<Metrics>,
    status: Arc<Mutex<Status>>,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<()>>,
}

/// What the daemon's parts share.
struct Shared {
    metrics: Arc<Metrics>,
    status: Arc<Mutex<Status>>,
    /// Set by the first successful pass (`/readyz`).
    ready: Arc<AtomicBool>,
    /// Set on SIGHUP: the next pass reads the kernel.
    sighup: Arc<AtomicBool>,
    /// The daemon's clock, shared by the schedule and the passes (the copy
    /// of the kernel's table expires on it).
    epoch: Instant,
}

/// The config source, started.
struct ConfigStarted {
    input: ConfigInput,
    git: Option<Arc<Mutex<GitPoller>>>,
    watcher: Option<ConfigWatch>,
}

impl Daemon {
    /// Starts the daemon inside the current tokio runtime.
    pub async fn start(opts: Options, kernel: Box<dyn Kernel>) -> Result<Daemon> {
        let (tx, rx) = mpsc::unbounded_channel::<Msg>();
        let config = start_config(&opts.config, &tx)?;
        let overlay = start_overlay(&opts).await;
        let drains = resume_drains(opts.state_file.as_deref())?;
        let shared = Shared {
            metrics: Arc::new(match opts.vips {
                Some(_) => Metrics::with_vips(),
                None => Metrics::new(),
            }),
            status: Arc::default(),
            ready: Arc::default(),
            sighup: Arc::default(),
            epoch: Instant::now(),
        };
        let etcd = etcd_feed(&overlay);
        let has_git = config.git.is_some();
        let checker = start_checker(&shared, &tx);
        let fleet = start_fleet_status(&opts)?;
        let traffic = start_traffic(&opts, kernel.as_ref(), &shared);
        let page_inputs = page_inputs(&opts, etcd.as_ref());
        let vips = start_vips(&opts, kernel.as_ref(), &shared)?;
        let pass = Pass::new(PassSetup {
            config: config.input,
            overlay,
            memo: Memo::new(opts.compile.clone()),
            health: HealthStep::new(checker.clone(), opts.health_panic_percent),
            kernel,
            resync: opts.resync,
            sighup: shared.sighup.clone(),
            ownership: opts.ownership.clone(),
            guards: opts.guards,
            drain_timeout: opts.drain_timeout,
            drains,
            state_file: opts.state_file.clone(),
            metrics: shared.metrics.clone(),
            epoch: shared.epoch,
            fleet,
            vips,
        });
        let pass = Arc::new(Mutex::new(pass));
        let page = PageSources {
            pass: pass.clone(),
            status: shared.status.clone(),
            metrics: shared.metrics.clone(),
            checker: checker.clone(),
            etcd: etcd.as_ref().map(|(w, _)| w.clone()),
            inputs: page_inputs,
        };
        let (http_stop, metrics_addr) =
            start_http(&opts, &shared, has_git, (&checker, page), &tx).await?;
        let event_loop = EventLoop {
            settings: settings(&opts, has_git),
            epoch: shared.epoch,
            sighup: shared.sighup.clone(),
            pass,
            git: config.git,
            etcd,
            metrics: shared.metrics.clone(),
            status: shared.status.clone(),
            ready: shared.ready.clone(),
            tx,
            rx,
            flush_on_exit: opts.flush_on_exit,
            // --flush-on-exit withdraws too: a VIP goes before its service.
            withdraw: opts.vips.as_ref().map(|v| Policy {
                on_exit: v.withdraw.on_exit || opts.flush_on_exit,
                ..v.withdraw
            }),
            fs_watcher: config.watcher,
            pass_thread: PassThread::start().context("starting the pass thread")?,
        };
        let (shutdown, task) = spawn(event_loop, http_stop, traffic);
        Ok(Daemon {
            metrics_addr,
            metrics: shared.metrics,
            status: shared.status,
            shutdown: Some(shutdown),
            task,
        })
    }

    /// Where the metrics listener is bound (the port of `:0` resolved).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn status(&self) -> Status {
        lock(&self.status).clone()
    }

    /// Stops the daemon, leaving the kernel as it is (unless
    /// `flush_on_exit`); returns within about a second.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match (&mut self.task).await {
            Ok(r) => r,
            Err(e) => Err(anyhow!("daemon task failed: {e}")),
        }
    }

    /// Waits until the daemon ends by itself (it does not, short of an
    /// internal error) .
    pub async fn join(self) -> Result<()> {
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(anyhow!("daemon task failed: {e}")),
        }
    }
}

/// Start step: the config input, and what keeps it current (the directory
/// watcher, or the Git poller).
fn start_config(config: &ConfigSource, tx: &mpsc::UnboundedSender<Msg>) -> Result<ConfigStarted> {
    Ok(match config {
        ConfigSource::Dir(path) => {
            let tx = tx.clone();
            let watcher = ConfigWatch::start(path, move || {
                let _ = tx.send(Msg::ConfigChanged);
            })?;
            ConfigStarted {
                input: ConfigInput::Dir(path.clone()),
                git: None,
                watcher: Some(watcher),
            }
        }
        ConfigSource::Git(opts) => {
            let (poller, input) = GitPoller::new(opts.clone())?;
            ConfigStarted {
                input,
                git: Some(Arc::new(Mutex::new(poller))),
                watcher: None,
            }
        }
    })
}

/// Start step: the overlay input. The etcd watcher gets a moment for its
/// first read, so that the startup pass does not fail (and back off) only
/// because it raced it.
async fn start_overlay(opts: &Options) -> OverlayInput {
    match &opts.overlay {
        None => OverlayInput::None,
        Some(OverlaySource::Dir(path)) => OverlayInput::Dir(path.clone()),
        Some(OverlaySource::Etcd(settings)) => {
            let watch = OverlayWatch::spawn(settings.clone(), opts.etcd_tuning.clone());
            let deadline = Instant::now() + opts.etcd_startup_wait;
            while watch.snapshot().is_none() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            OverlayInput::Etcd(Arc::new(watch))
        }
    }
}

/// Start step: the fleet status publisher, writing into the overlay's etcd
/// (its first record goes out after the startup pass).
fn start_fleet_status(opts: &Options) -> Result<Option<FleetStatus>> {
    let Some(fleet) = &opts.fleet else {
        return Ok(None);
    };
    let Some(OverlaySource::Etcd(settings)) = &opts.overlay else {
        return Err(anyhow!(
            "fleet status is published into the overlay's etcd, and there is no etcd overlay"
        ));
    };
    let tuning = StatusTuning {
        ttl: fleet.ttl,
        heartbeat: opts.resync,
        min_gap: fleet.min_gap,
    };
    let identity = status::identity(&fleet.frontend_id, &opts.config, &opts.ownership);
    info!(
        frontend = fleet.frontend_id,
        "publishing the fleet status under {}",
        settings.keys().key_display(&format!(
            "{}{}",
            crate::fleet::STATUS_DIR,
            fleet.frontend_id
        ))
    );
    Ok(Some(FleetStatus {
        last: FrontendStatus::initial(&identity),
        publisher: StatusPublisher::start(settings.clone(), tuning),
        compile: format!("{:?}", opts.compile),
    }))
}

fn etcd_feed(overlay: &OverlayInput) -> Option<EtcdFeed> {
    match overlay {
        OverlayInput::Etcd(w) => Some((w.clone(), w.subscribe())),
        _ => None,
    }
}

/// Start step: the health checker, checking nothing until a pass gives it
/// targets; a dest going down or up marks a pass dirty.
fn start_checker(shared: &Shared, tx: &mpsc::UnboundedSender<Msg>) -> Arc<HealthChecker> {
    let tx = tx.clone();
    Arc::new(HealthChecker::start_with(
        move || {
            let _ = tx.send(Msg::HealthChanged);
        },
        Some(shared.metrics.clone()),
    ))
}

/// Start step: the drains in progress from the state file, after checking
/// that it can be written (an unreadable file is no drains, with a
/// warning).
fn resume_drains(state_file: Option<&Path>) -> Result<Drains> {
    let Some(path) = state_file else {
        return Ok(Drains::default());
    };
    state_file::check_state_dir(path)?;
    Ok(match state_file::load_drains(path) {
        Ok(d) => {
            if !d.is_empty() {
                info!(drains = d.len(), "resuming drains from {}", path.display());
            }
            d
        }
        Err(e) => {
            warn!("{}: starting without drain records", format_error(&e));
            Drains::default()
        }
    })
}

/// Start step: the HTTP listener, if asked for; its stop switch and
/// address.
async fn start_http(
    opts: &Options,
    shared: &Shared,
    has_git: bool,
    (checker, page): (&Arc<HealthChecker>, PageSources),
    tx: &mpsc::UnboundedSender<Msg>,
) -> Result<(oneshot::Sender<()>, Option<SocketAddr>)> {
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let Some(addr) = opts.metrics_listen else {
        return Ok((stop_tx, None));
    };
    let hook = has_git.then(|| {
        let tx = tx.clone();
        Box::new(move || {
            let _ = tx.send(Msg::HookGit);
        }) as Box<dyn Fn() + Send + Sync>
    });
    let http = http::Http {
        metrics: shared.metrics.clone(),
        ready: shared.ready.clone(),
        hook,
        checks: Some(checker.clone()),
        page: Some(Arc::new(page)),
    };
    Ok((stop_tx, Some(http::serve(addr, http, stop_rx).await?)))
}

/// The inputs the status page lists: name, where their staleness is kept,
/// redacted description.
fn page_inputs(
    opts: &Options,
    etcd: Option<&EtcdFeed>,
) -> Vec<(&'static str, Option<Source>, String)> {
    let mut inputs = vec![match &opts.config {
        ConfigSource::Dir(_) => (
            "config",
            Some(Source::Config),
            status::config_label(&opts.config),
        ),
        ConfigSource::Git(_) => ("git", Some(Source::Git), status::config_label(&opts.config)),
    }];
    match (&opts.overlay, etcd) {
        (Some(OverlaySource::Etcd(settings)), Some(_)) => {
            inputs.push(("etcd", Some(Source::Etcd), settings.description()));
        }
        (Some(OverlaySource::Dir(path)), _) => {
            inputs.push(("overlay", None, path.display().to_string()));
        }
        _ => {}
    }
    inputs.push(("kernel", Some(Source::Kernel), "IPVS table".to_string()));
    inputs
}

/// The schedule's settings.
fn settings(opts: &Options, has_git: bool) -> Settings {
    Settings {
        debounce: opts.debounce,
        resync: opts.resync,
        poll: has_git.then_some(opts.poll),
        backoff_initial: opts.backoff_initial,
        backoff_max: Duration::from_secs(30).max(opts.backoff_initial),
    }
}

/// Start step: the VIP interface, opened (created when missing) before
/// the first pass, so that one that is not ours stops the start.
fn start_vips(opts: &Options, kernel: &dyn Kernel, shared: &Shared) -> Result<Option<VipStep>> {
    let Some(v) = &opts.vips else {
        return Ok(None);
    };
    let link = match v.mode {
        VipMode::Dummy => kernel.vip_interface(&v.interface)?,
        VipMode::Arp { refresh } => {
            kernel.arp_vip_interface(&v.interface, &opts.ownership, refresh)?
        }
    };
    info!(
        interface = v.interface,
        mode = ?v.mode,
        "keeping the VIPs of the owned services on {}", v.interface
    );
    Ok(Some(VipStep::new(
        link,
        opts.ownership.clone(),
        shared.metrics.clone(),
    )))
}

/// Start step: the traffic reader, when there is a metrics listener to
/// show what it reads and the kernel keeps counters.
fn start_traffic(
    opts: &Options,
    kernel: &dyn Kernel,
    shared: &Shared,
) -> Option<tokio::task::JoinHandle<()>> {
    if opts.metrics_listen.is_none() || opts.traffic.interval.is_zero() {
        return None;
    }
    let reader = kernel.traffic_reader()?;
    Some(traffic::spawn(reader, opts.traffic, shared.metrics.clone()))
}

/// Start step: the event loop on its task; the loop's shutdown switch and
/// the task. The HTTP listener and the traffic reader stop with the loop.
fn spawn(
    event_loop: EventLoop,
    http_stop: oneshot::Sender<()>,
    traffic: Option<tokio::task::JoinHandle<()>>,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<Result<()>>) {
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let r = event_loop.run(shutdown_rx).await;
        let _ = http_stop.send(());
        if let Some(t) = traffic {
            t.abort();
        }
        r
    });
    (shutdown_tx, task)
}
