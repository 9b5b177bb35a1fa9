//! `clusterf apply --watch`: the daemon's flags, resolved once into
//! [`daemon::Options`], and the driver that runs [`Daemon`] against the
//! kernel until SIGTERM or SIGINT.
//!
//! Must not: hold any of the daemon's logic; everything it does is
//! `crate::daemon`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, ValueEnum};
use tracing::{info, warn};

use crate::cli::source::{ConfigArgs, OverlayArgs};
use crate::compile;
use crate::daemon::options::{
    BACKOFF_INITIAL, ETCD_STARTUP_WAIT, FleetOptions, STATUS_MIN_GAP, STATUS_TTL, TrafficOptions,
    VipMode, VipOptions,
};
use crate::daemon::{self, Daemon};
use crate::netlink;
use crate::plan::{Guards, Ownership};
use crate::reconcile::withdraw::Policy;
use crate::source::OverlaySource;
use crate::source::etcd::watch::Tuning;

/// The daemon's flags (flattened into `clusterf apply`).
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Keep running: reconcile continuously on every change, resync
    /// periodically, never flush
    #[arg(long)]
    pub watch: bool,

    /// Git poll interval for --config-repo (e.g. 15s, 1m; not 0: use
    /// POST /hooks/git to poll on demand)
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_interval, requires = "watch")]
    pub poll: Duration,

    /// Period of the anti-entropy pass that re-reads every source and the
    /// kernel and corrects drift, whatever other passes run (not 0)
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_interval, requires = "watch")]
    pub resync: Duration,

    /// Window that spaces the passes of a stream of changes, after the
    /// first few back to back (a change on an idle loop does not wait for
    /// it; 0: none, changes during a pass still coalesce into the next)
    #[arg(long, value_name = "DURATION", default_value = "20ms", value_parser = parse_duration, requires = "watch")]
    pub debounce: Duration,

    /// Drain dests that leave the desired state with active connections:
    /// weight 0 until those reach 0 or this much time passed. An idle dest
    /// (no active connection) and a UDP dest are deleted at once (0: every
    /// dest is deleted at once)
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration, requires = "watch")]
    pub drain_timeout: Duration,

    /// File that keeps drains in progress across restarts
    #[arg(long, value_name = "FILE", requires = "watch")]
    pub state_file: Option<PathBuf>,

    /// Health checks fail open (drain nothing of a service for health)
    /// when fewer than this percentage of its weighted dests would stay
    /// up; 0: only when none would
    #[arg(long, value_name = "PERCENT", default_value = "0", value_parser = clap::value_parser!(u8).range(0..=100), requires = "watch")]
    pub health_panic_percent: u8,

    /// Serve /metrics, /healthz, /readyz, the status page (/, /status.json)
    /// and POST /hooks/git on this address (e.g. 127.0.0.1:9469); off by
    /// default
    #[arg(long, value_name = "ADDR", requires = "watch")]
    pub metrics_listen: Option<SocketAddr>,

    /// How often the kernel's traffic counters are read for /metrics
    /// (clusterf_ipvs_service_*; 0: not read). Only with --metrics-listen
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration, requires = "watch")]
    pub traffic_interval: Duration,

    /// Also export the traffic counters of every dest
    /// (clusterf_ipvs_dest_*: ten series per dest; see docs/metrics.md for
    /// the cost at 100k dests)
    #[arg(long, requires = "metrics_listen")]
    pub metrics_per_dest: bool,

    /// On exit, delete the IPVS services clusterf owns (--own; every
    /// service without --own), never others (default: leave the rules in
    /// place)
    #[arg(long, requires = "watch")]
    pub flush_on_exit: bool,

    /// Log format on stderr
    #[arg(long, value_enum, default_value = "text", requires = "watch")]
    pub log_format: LogFormat,

    /// This frontend's name in the fleet status, published below
    /// --etcd-prefix in status/ (default: the host name; letters, digits,
    /// '.', '_' and '-')
    #[arg(long, value_name = "ID", requires = "watch")]
    pub frontend_id: Option<String>,

    /// How long after its last heartbeat the frontend shows as dead in
    /// `clusterf status` (the lease of its alive key; at least 2s)
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_status_ttl, requires = "watch")]
    pub status_ttl: Duration,

    /// Do not publish the fleet status (published by default when the
    /// overlay is etcd)
    #[arg(long, requires = "watch", conflicts_with = "frontend_id")]
    pub no_fleet_status: bool,

    /// Keep the frontend addresses of the owned services (--own) on this
    /// dummy interface, which clusterf creates and marks as its own (an
    /// interface of the name that clusterf did not create is an error);
    /// with --vip-mode arp, on this existing interface instead. Off by
    /// default
    #[arg(long, value_name = "NAME", value_parser = parse_interface, requires = "watch")]
    pub vip_interface: Option<String>,

    /// dummy: --vip-interface is a dummy of clusterf's own (for a routing
    /// daemon to announce); arp: an existing interface (eth0) on one
    /// segment, where clusterf adds and removes only its own addresses and
    /// announces each added VIP by gratuitous ARP or unsolicited neighbour
    /// advertisement. Single-active: one frontend per VIP at a time
    #[arg(
        long,
        value_name = "MODE",
        default_value = "dummy",
        requires = "vip_interface"
    )]
    pub vip_mode: VipModeArg,

    /// With --vip-mode arp, announce every VIP again this often (as
    /// keepalived's garp_master_refresh); off by default: a VIP is
    /// announced when it is added, 3 times a second apart
    #[arg(long, value_name = "DURATION", value_parser = parse_interval, requires = "vip_mode")]
    pub arp_refresh: Option<Duration>,

    /// Withdraw the VIPs when every pass has failed for this long (fail
    /// static); the next successful pass puts them back. Off by default
    #[arg(long, value_name = "DURATION", value_parser = parse_interval, requires = "vip_interface")]
    pub withdraw_after: Option<Duration>,

    /// On exit, withdraw the VIPs (default: leave them, so that a restart
    /// does not flap; --flush-on-exit withdraws them too)
    #[arg(long, requires = "vip_interface")]
    pub withdraw_on_exit: bool,
}

impl Default for WatchArgs {
    fn default() -> Self {
        WatchArgs {
            watch: true,
            poll: Duration::from_secs(15),
            resync: Duration::from_secs(30),
            debounce: Duration::from_millis(20),
            drain_timeout: Duration::ZERO,
            state_file: None,
            health_panic_percent: 0,
            metrics_listen: None,
            traffic_interval: Duration::from_secs(10),
            metrics_per_dest: false,
            flush_on_exit: false,
            log_format: LogFormat::Text,
            frontend_id: None,
            status_ttl: STATUS_TTL,
            no_fleet_status: false,
            vip_interface: None,
            vip_mode: VipModeArg::Dummy,
            arp_refresh: None,
            withdraw_after: None,
            withdraw_on_exit: false,
        }
    }
}

/// `--vip-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VipModeArg {
    Dummy,
    Arp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `250ms`, `15s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 250ms, 15s, 2m, 1h"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration {s:?}: unknown unit {unit:?}, expected ms, s, m or h"
            ));
        }
    };
    if !secs.is_finite() || secs > 1e9 {
        return Err(format!("invalid duration {s:?}: too long"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A period: a duration as [`parse_duration`], but not zero (a zero period
/// would run its pass or poll in a busy loop).
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err("must be longer than 0 (a zero period would run in a busy loop)".to_string());
    }
    Ok(d)
}

/// `--status-ttl`: a duration of at least 2 s (etcd's leases count whole
/// seconds, and a renewal every third of it must have time to arrive).
fn parse_status_ttl(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(2) {
        return Err("must be at least 2s".to_string());
    }
    Ok(d)
}

/// The fleet status settings: published when the overlay is etcd (into the
/// same etcd, with the same settings) unless `--no-fleet-status`; the id
/// from `--frontend-id` or the host name, checked.
fn fleet(overlay: &Option<OverlaySource>, watch: &WatchArgs) -> Result<Option<FleetOptions>> {
    if watch.no_fleet_status {
        return Ok(None);
    }
    if !matches!(overlay, Some(OverlaySource::Etcd(_))) {
        if watch.frontend_id.is_some() {
            bail!(
                "--frontend-id: the fleet status is published into the overlay's etcd: give --etcd"
            );
        }
        return Ok(None);
    }
    let (id, from) = match &watch.frontend_id {
        Some(id) => (id.clone(), "--frontend-id"),
        None => (host_name()?, "the host name"),
    };
    crate::fleet::check_frontend_id(&id).map_err(|e| {
        let hint = if watch.frontend_id.is_none() {
            ": give --frontend-id ID"
        } else {
            ""
        };
        anyhow!("{from} {e}{hint}")
    })?;
    Ok(Some(FleetOptions {
        frontend_id: id,
        ttl: watch.status_ttl,
        min_gap: STATUS_MIN_GAP,
    }))
}

/// The kernel's host name (the default frontend id).
fn host_name() -> Result<String> {
    let path = "/proc/sys/kernel/hostname";
    let name = std::fs::read_to_string(path)
        .with_context(|| format!("reading the host name from {path}: give --frontend-id ID"))?;
    Ok(name.trim().to_string())
}

/// The daemon's options from its flags and the sources: the etcd settings
/// validated (their files read), the durations as given; ownership and
/// guards at their defaults (all, and the default guards), the daemon's
/// internal timings at theirs.
pub fn resolve(
    config: &ConfigArgs,
    overlay: &OverlayArgs,
    compile: compile::Options,
    watch: &WatchArgs,
) -> Result<daemon::Options> {
    let overlay = overlay.source()?;
    Ok(daemon::Options {
        fleet: fleet(&overlay, watch)?,
        config: config.source()?,
        overlay,
        compile,
        ownership: Ownership::all(),
        guards: Guards::default(),
        poll: watch.poll,
        resync: watch.resync,
        debounce: watch.debounce,
        drain_timeout: watch.drain_timeout,
        state_file: watch.state_file.clone(),
        health_panic_percent: watch.health_panic_percent,
        metrics_listen: watch.metrics_listen,
        traffic: TrafficOptions {
            interval: watch.traffic_interval,
            per_dest: watch.metrics_per_dest,
        },
        flush_on_exit: watch.flush_on_exit,
        etcd_tuning: Tuning::default(),
        backoff_initial: BACKOFF_INITIAL,
        etcd_startup_wait: ETCD_STARTUP_WAIT,
        vips: match &watch.vip_interface {
            Some(interface) => Some(VipOptions {
                interface: interface.clone(),
                withdraw: Policy {
                    after: watch.withdraw_after,
                    on_exit: watch.withdraw_on_exit,
                },
                mode: vip_mode(watch)?,
            }),
            None => None,
        },
    })
}

/// `--vip-mode` and `--arp-refresh`, which only ARP mode takes.
fn vip_mode(watch: &WatchArgs) -> Result<VipMode> {
    match (watch.vip_mode, watch.arp_refresh) {
        (VipModeArg::Dummy, Some(_)) => {
            bail!(
                "--arp-refresh is for --vip-mode arp (a dummy interface is announced by a routing daemon)"
            )
        }
        (VipModeArg::Dummy, None) => Ok(VipMode::Dummy),
        (VipModeArg::Arp, refresh) => Ok(VipMode::Arp { refresh }),
    }
}

/// An interface name as the kernel takes it: 1 to 15 bytes, no '/', ':'
/// or white space, not "." or "..".
pub(crate) fn parse_interface(s: &str) -> Result<String, String> {
    let bad = s.is_empty()
        || s.len() > 15
        || s == "."
        || s == ".."
        || s.chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if bad {
        return Err(format!(
            "invalid interface name {}: 1 to 15 bytes, without '/', ':' or spaces",
            crate::text::quote(s)
        ));
    }
    Ok(s.to_string())
}

/// Runs the daemon against the kernel until SIGTERM or SIGINT; the exit
/// code.
pub fn run(opts: daemon::Options, log_format: LogFormat) -> Result<u8> {
    init_logging(log_format);
    if let Some(addr) = opts.metrics_listen {
        warn_if_exposed(addr);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let result = rt.block_on(async {
        let kernel = netlink::Client::connect()?;
        info!("clusterf apply --watch starting; the IPVS table is never flushed on start");
        let daemon = Daemon::start(opts, Box::new(kernel)).await?;
        wait_for_termination().await?;
        info!("shutting down");
        daemon.stop().await
    });
    rt.shutdown_timeout(Duration::from_millis(100));
    result.map(|()| 0)
}

/// Warns when `--metrics-listen` is reachable from other hosts: the
/// listener has no authentication, and `POST /hooks/git` makes clusterf
/// fetch (rate-limited, but still).
fn warn_if_exposed(addr: SocketAddr) {
    if !addr.ip().to_canonical().is_loopback() {
        warn!(
            "--metrics-listen {addr} is not a loopback address: /metrics, /healthz, /readyz, \
             the status page and POST /hooks/git are served without authentication to every host that can \
             reach it; listen on 127.0.0.1 or firewall the port"
        );
    }
}

pub(crate) async fn wait_for_termination() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    Ok(())
}

/// Sets up logging on stderr: text (coloured only on a terminal without
/// NO_COLOR) or JSON lines; `CLUSTERF_LOG` filters (default `info`).
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("CLUSTERF_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => {
            let color = super::use_color(&std::io::stderr());
            builder.with_ansi(color).try_init()
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("20ms"), Ok(Duration::from_millis(20)));
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("15"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert!(
            parse_duration("5 parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("1e400").is_err());
    }

    #[test]
    fn zero_periods_are_refused_at_parsing() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            watch: WatchArgs,
        }
        for flag in ["--resync", "--poll"] {
            let e = Cli::try_parse_from(["t", "--watch", flag, "0"])
                .err()
                .unwrap_or_else(|| panic!("{flag} 0 accepted"))
                .to_string();
            assert!(
                e.contains(flag) && e.contains("must be longer than 0"),
                "{e}"
            );
            assert!(Cli::try_parse_from(["t", "--watch", flag, "0ms"]).is_err());
        }
        let ok =
            Cli::try_parse_from(["t", "--watch", "--debounce", "0", "--resync", "1s"]).unwrap();
        assert_eq!(ok.watch.debounce, Duration::ZERO);
        assert_eq!(ok.watch.resync, Duration::from_secs(1));
    }

    /// `apply --watch --config-path DIR EXTRA...` resolved, or the error's
    /// text (clap's or the resolution's).
    fn resolved(extra: &[&str]) -> Result<daemon::Options, String> {
        use crate::cli::source::{ConfigArgs, OverlayArgs};
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            config: ConfigArgs,
            #[command(flatten)]
            overlay: OverlayArgs,
            #[command(flatten)]
            watch: WatchArgs,
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().display().to_string();
        let mut argv = vec!["t", "--watch", "--config-path", &path];
        argv.extend(extra);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        resolve(&cli.config, &cli.overlay, Default::default(), &cli.watch)
            .map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn the_fleet_status_is_published_into_an_etcd_overlay_under_a_checked_id() {
        let opts = resolved;
        let etcd = ["--etcd", "http://127.0.0.1:2379"];
        let fleet = opts(
            &[
                &etcd[..],
                &["--frontend-id", "lb-1.dc2", "--status-ttl", "5s"],
            ]
            .concat(),
        )
        .unwrap()
        .fleet
        .unwrap();
        assert_eq!(fleet.frontend_id, "lb-1.dc2");
        assert_eq!(fleet.ttl, Duration::from_secs(5));
        // The host name by default; nothing without etcd or when asked.
        assert!(opts(&etcd).unwrap().fleet.is_some());
        assert!(opts(&[]).unwrap().fleet.is_none());
        assert!(
            opts(&[&etcd[..], &["--no-fleet-status"]].concat())
                .unwrap()
                .fleet
                .is_none()
        );
        let e = opts(&[&etcd[..], &["--frontend-id", "lb/1"]].concat()).unwrap_err();
        assert!(
            e.contains("--frontend-id \"lb/1\": '/' is not allowed"),
            "{e}"
        );
        let e = opts(&["--frontend-id", "lb1"]).unwrap_err();
        assert!(e.contains("give --etcd"), "{e}");
        let e = opts(&[&etcd[..], &["--status-ttl", "1s"]].concat()).unwrap_err();
        assert!(e.contains("at least 2s"), "{e}");
    }

    #[test]
    fn the_vip_mode_is_dummy_unless_arp_is_asked_and_arp_refresh_needs_arp() {
        let mode = |extra: &[&str]| resolved(extra).map(|o| o.vips.map(|v| v.mode));
        assert_eq!(mode(&[]), Ok(None));
        let vif = ["--vip-interface", "eth0"];
        assert_eq!(mode(&vif), Ok(Some(VipMode::Dummy)));
        assert_eq!(
            mode(&[&vif[..], &["--vip-mode", "arp"]].concat()),
            Ok(Some(VipMode::Arp { refresh: None }))
        );
        assert_eq!(
            mode(&[&vif[..], &["--vip-mode", "arp", "--arp-refresh", "30s"]].concat()),
            Ok(Some(VipMode::Arp {
                refresh: Some(Duration::from_secs(30))
            }))
        );
        let e = mode(&[&vif[..], &["--vip-mode", "dummy", "--arp-refresh", "30s"]].concat())
            .unwrap_err();
        assert!(e.contains("--arp-refresh is for --vip-mode arp"), "{e}");
        let e = mode(&[&vif[..], &["--arp-refresh", "30s"]].concat()).unwrap_err();
        assert!(e.contains("--vip-mode"), "{e}");
        let e = mode(&["--vip-mode", "arp"]).unwrap_err();
        assert!(e.contains("--vip-interface"), "{e}");
        let e =
            mode(&[&vif[..], &["--vip-mode", "arp", "--arp-refresh", "0"]].concat()).unwrap_err();
        assert!(e.contains("must be longer than 0"), "{e}");
    }
}
