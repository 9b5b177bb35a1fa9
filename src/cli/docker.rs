//! `clusterf docker`: the publisher daemon of a Docker host. The flags, and
//! their resolution into `docker::publisher::Settings`; the publisher loop
//! is `docker::publisher`.
//!
//! Invariant: flags, signals and printing only; what the publisher does is
//! decided in `docker`.

use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use ipnet::IpNet;
use tokio::signal::unix::{SignalKind, signal};

use super::source::OverlayArgs;
use crate::docker::engine;
use crate::docker::keys::RouteAd;
use crate::docker::labels::{self, Mode, Options};
use crate::docker::publisher::{self, Settings};
use crate::model::Method;

#[derive(Debug, Args)]
#[command(mut_arg("overlay_path", |a| a.hide(true)))]
pub struct DockerArgs {
    /// Docker Engine API: unix:///PATH, tcp://HOST:PORT or http://HOST:PORT
    #[arg(long, value_name = "URL", env = "DOCKER_HOST", default_value = engine::DEFAULT_HOST)]
    pub docker_host: String,

    #[command(flatten)]
    pub etcd: OverlayArgs,

    /// Lease time to live: the publisher's keys expire this long after it
    /// (or its host) dies
    #[arg(long, value_name = "SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub ttl: u64,

    /// Identity of this publisher, to find its keys again after a restart
    /// (default: the host name); one per Docker host
    #[arg(long, value_name = "ID")]
    pub publisher_id: Option<String>,

    /// Revoke the lease on SIGINT/SIGTERM: every published key goes at once
    #[arg(long)]
    pub flush_on_exit: bool,

    /// Network whose container address is published (for containers on
    /// several networks)
    #[arg(long, value_name = "NAME")]
    pub network: Option<String>,

    /// Publish the host address (--host-address) and the published host
    /// port instead of the container's address and port
    #[arg(long, requires = "host_address")]
    pub published: bool,

    /// Host address for --published (IPv4 and/or IPv6: give it twice)
    #[arg(long, value_name = "ADDR", requires = "published")]
    pub host_address: Vec<IpAddr>,

    /// Advertise a route for the local Docker network into routes/NAME:
    /// its prefix
    #[arg(long, value_name = "CIDR")]
    pub advertise_route_prefix: Option<IpNet>,

    /// Gateway of the advertised route (routed backends)
    #[arg(long, value_name = "ADDR", requires = "advertise_route_prefix")]
    pub advertise_route_gateway: Option<IpAddr>,

    /// Forwarding method of the advertised route: masq, droute, tunnel
    /// (none: the route filters its backends out)
    #[arg(long, value_name = "METHOD", requires = "advertise_route_prefix",
          value_parser = parse_method)]
    pub advertise_route_method: Option<Method>,

    /// Name of the advertised route (default: the publisher id)
    #[arg(long, value_name = "NAME", requires = "advertise_route_prefix")]
    pub advertise_route_name: Option<String>,

    /// List containers and re-read etcd this often, events or not
    #[arg(long, value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub resync: u64,

    /// Print the key set that would be published (JSON, path -> value) and
    /// exit; needs no etcd
    #[arg(long)]
    pub dry_run: bool,
}

fn parse_method(s: &str) -> Result<Method, String> {
    s.parse()
}

/// The publisher settings of these flags (etcd's are resolved apart:
/// `--dry-run` needs none).
fn settings(args: &DockerArgs) -> Result<Settings> {
    let publisher = match &args.publisher_id {
        Some(id) => id.clone(),
        None => host_name()?,
    };
    if !labels::valid_service_name(&publisher) {
        bail!("--publisher-id {publisher:?}: use letters, digits and - _ . @ :");
    }
    let mode = if args.published {
        let mut ipv4 = None;
        let mut ipv6 = None;
        for a in &args.host_address {
            match a {
                IpAddr::V4(v4) if ipv4.is_none() => ipv4 = Some(*v4),
                IpAddr::V6(v6) if ipv6.is_none() => ipv6 = Some(*v6),
                _ => bail!("--host-address: give at most one IPv4 and one IPv6 address"),
            }
        }
        Mode::Published { ipv4, ipv6 }
    } else {
        Mode::Container
    };
    let route = match &args.advertise_route_prefix {
        None => None,
        Some(prefix) => {
            let name = args.advertise_route_name.as_deref().unwrap_or(&publisher);
            Some(
                RouteAd::new(
                    name,
                    *prefix,
                    args.advertise_route_gateway,
                    args.advertise_route_method,
                )
                .map_err(|e| anyhow::anyhow!("--advertise-route-*: {e}"))?,
            )
        }
    };
    if args.etcd.overlay_path.is_some() {
        bail!("--overlay-path: clusterf docker publishes into etcd; give --etcd URL");
    }
    if args.etcd.etcd.is_empty() && !args.dry_run {
        bail!("no etcd given: --etcd URL[,URL...] is required (or --dry-run)");
    }
    Ok(Settings {
        docker_host: args.docker_host.clone(),
        publisher,
        options: Options {
            network: args.network.clone(),
            mode,
        },
        route,
        ttl: Duration::from_secs(args.ttl),
        resync: Duration::from_secs(args.resync),
        flush_on_exit: args.flush_on_exit,
    })
}

/// The host name (the default publisher id).
fn host_name() -> Result<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .context("cannot determine the host name: give --publisher-id")?;
    let name = name.trim().to_string();
    if name.is_empty() {
        bail!("the host name is empty: give --publisher-id");
    }
    Ok(name)
}

pub fn run(args: &DockerArgs) -> Result<u8> {
    let settings = settings(args)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    if args.dry_run {
        return rt.block_on(dry_run(&settings));
    }
    rt.block_on(async {
        let etcd = args.etcd.etcd_settings()?;
        let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let stop = async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        publisher::run(settings, etcd, stop).await
    })?;
    Ok(0)
}

/// Prints the key set that would be published (JSON, path -> value).
async fn dry_run(settings: &Settings) -> Result<u8> {
    let (keys, warnings) = publisher::preview(settings).await?;
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let json: serde_json::Map<String, serde_json::Value> = keys
        .into_iter()
        .map(|(k, v)| {
            let value = serde_json::from_str(&v).unwrap_or(serde_json::Value::String(v));
            (k, value)
        })
        .collect();
    super::emit(&(serde_json::to_string_pretty(&serde_json::Value::Object(json))? + "\n"))?;
    Ok(0)
}
