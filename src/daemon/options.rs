//! What the daemon is told at start, as resolved values: sources, durations,
//! paths, ownership and guards. The CLI turns its flags into these once
//! (`cli::watch::resolve`); tests build them the same way.
//!
//! Must not: hold flag types or parse anything; no I/O.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::compile;
use crate::plan::{Guards, Ownership};
use crate::reconcile::withdraw::Policy;
use crate::source::etcd::watch::Tuning;
use crate::source::{ConfigSource, OverlaySource};

/// Everything the daemon needs, already validated.
#[derive(Debug, Clone)]
pub struct Options {
    /// A directory is watched with notify, a Git repository polled.
    pub config: ConfigSource,
    /// A directory is read at every pass, etcd kept current by a watch.
    pub overlay: Option<OverlaySource>,
    pub compile: compile::Options,
    pub ownership: Ownership,
    pub guards: Guards,
    /// Git poll interval (not zero).
    pub poll: Duration,
    /// Anti-entropy period, and the longest the copy of the kernel's table
    /// is used (not zero).
    pub resync: Duration,
    /// Window that coalesces a stream of changes (see `reconcile::schedule`).
    pub debounce: Duration,
    /// How long a removed dest drains at weight 0 (zero: no draining).
    pub drain_timeout: Duration,
    /// Where drains in progress are kept across restarts.
    pub state_file: Option<PathBuf>,
    /// Health checks fail open below this percentage of a service's
    /// weighted dests up (0: only when none would be).
    pub health_panic_percent: u8,
    /// Where /metrics, /healthz, /readyz, the status page and POST
    /// /hooks/git are served.
    pub metrics_listen: Option<SocketAddr>,
    /// Reading the kernel's traffic counters for /metrics.
    pub traffic: TrafficOptions,
    /// On exit, delete the owned services.
    pub flush_on_exit: bool,
    /// Timing of the etcd watcher.
    pub etcd_tuning: Tuning,
    /// First retry delay after a failed pass (doubles up to 30 s).
    pub backoff_initial: Duration,
    /// How long the startup pass waits for the first etcd read.
    pub etcd_startup_wait: Duration,
    /// Publishing this frontend's fleet status into the overlay's etcd
    /// (`None`: not published; so without an etcd overlay).
    pub fleet: Option<FleetOptions>,
    /// The VIP interface (`None`: VIPs are not managed).
    pub vips: Option<VipOptions>,
}

/// `--vip-interface` and the withdrawal policy.
#[derive(Debug, Clone)]
pub struct VipOptions {
    /// The dummy link clusterf creates and owns, or in ARP mode the
    /// existing interface it shares.
    pub interface: String,
    pub withdraw: Policy,
    pub mode: VipMode,
}

/// `--vip-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VipMode {
    /// A dummy link of clusterf's own, whole (routing daemons announce it).
    #[default]
    Dummy,
    /// An existing interface shared with the host: per-address ownership,
    /// gratuitous ARP and unsolicited neighbour advertisements.
    Arp {
        /// Announce every VIP again this often (`--arp-refresh`).
        refresh: Option<Duration>,
    },
}

/// How the traffic counters are read (only with a metrics listener).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrafficOptions {
    /// Between two reads (zero: not read).
    pub interval: Duration,
    /// Also the counters of every dest.
    pub per_dest: bool,
}

/// The fleet status publisher's settings (docs/status-format.md); it writes
/// at least every [`Options::resync`] (the heartbeat).
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// The record's key segment (checked: `fleet::check_frontend_id`).
    pub frontend_id: String,
    /// The alive key's lease TTL: how long after its last renewal the
    /// frontend shows as dead (at least 2 s).
    pub ttl: Duration,
    /// The shortest time between two writes of the record.
    pub min_gap: Duration,
}

/// [`FleetOptions::ttl`] unless `--status-ttl` says otherwise.
pub const STATUS_TTL: Duration = Duration::from_secs(30);

/// [`FleetOptions::min_gap`] unless a test shortens it.
pub const STATUS_MIN_GAP: Duration = Duration::from_secs(1);

/// [`Options::backoff_initial`] unless a test shortens it.
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(500);

/// [`Options::etcd_startup_wait`] unless a test shortens it.
pub const ETCD_STARTUP_WAIT: Duration = Duration::from_secs(5);
