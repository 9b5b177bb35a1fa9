//! `clusterf realserver`: its flags, resolved once into
//! [`realserver::Options`], and the one-shot, `--dry-run`, `--cleanup` and
//! `--watch` drivers.
//!
//! Must not: hold any of the realserver's logic (`crate::realserver`).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use tracing::info;

use crate::cli::source::{CompileArgs, ConfigArgs, OverlayArgs};
use crate::cli::watch::{LogFormat, init_logging, parse_interface, parse_interval};
use crate::cli::{Exit, emit};
use crate::realserver::sysctl::Sysctls;
use crate::realserver::watch::WatchOptions;
use crate::realserver::{self, Host, Options, Outcome, Settings};

#[derive(Debug, Clone, Args)]
pub struct RealserverArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(flatten)]
    pub overlay: OverlayArgs,
    #[command(flatten)]
    pub compile: CompileArgs,

    /// This host's address, whose dests are served here (repeatable);
    /// default: every global address of the host's interfaces
    #[arg(long, value_name = "ADDR")]
    pub host_address: Vec<IpAddr>,

    /// Interface whose arp_ignore (1) and arp_announce (2) are set, so it
    /// answers no ARP for the VIPs (repeatable; `all` for every interface)
    #[arg(long, value_name = "IF", value_parser = parse_interface)]
    pub arp_interface: Vec<String>,

    /// The dummy link clusterf creates and owns for the VIPs
    #[arg(long, value_name = "NAME", default_value = "clusterf-rs0", value_parser = parse_interface)]
    pub vip_link: String,

    /// The IPIP link (external mode) clusterf creates and owns for tunnel
    /// dests
    #[arg(long, value_name = "NAME", default_value = "clusterf-ipip0", value_parser = parse_interface)]
    pub ipip_link: String,

    /// Where the sysctls clusterf changed are recorded with their earlier
    /// values, for --cleanup (/run: both are gone after a reboot)
    #[arg(
        long,
        value_name = "FILE",
        default_value = "/run/clusterf/realserver.json"
    )]
    pub state_file: PathBuf,

    /// DNAT VIP:port to the containers behind this Docker host's droute
    /// and tunnel dests, in an nf_tables table clusterf owns (`inet
    /// clusterf`; docs/dnat.md). Without it, a table left by an earlier
    /// --docker run is removed
    #[arg(long)]
    pub docker: bool,

    /// Print the plan and change nothing
    #[arg(long)]
    pub dry_run: bool,

    /// Remove what clusterf added (its links, with their VIPs) and restore
    /// the sysctls it changed; reads no config
    #[arg(long, conflicts_with = "watch")]
    pub cleanup: bool,

    /// Plan output format
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: Output,

    /// Keep running: keep the host ready on every change, resync
    /// periodically; on stop, leave the host as it is
    #[arg(long)]
    pub watch: bool,

    /// Git poll interval for --config-repo
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_interval, requires = "watch")]
    pub poll: Duration,

    /// Period of the pass that re-reads everything and corrects drift
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_interval, requires = "watch")]
    pub resync: Duration,

    /// Serve /metrics, /healthz and /readyz on this address
    #[arg(long, value_name = "ADDR", requires = "watch")]
    pub metrics_listen: Option<SocketAddr>,

    /// Log format
    #[arg(long, value_enum, default_value = "text", requires = "watch")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

pub fn run(args: &RealserverArgs) -> Result<u8> {
    let opts = Options {
        settings: Settings {
            vip_link: args.vip_link.clone(),
            ipip_link: args.ipip_link.clone(),
            arp_interfaces: args.arp_interface.clone(),
        },
        host_addresses: (!args.host_address.is_empty())
            .then(|| args.host_address.iter().copied().collect::<BTreeSet<_>>()),
        docker: args.docker,
    };
    let host = Host::open(Sysctls::default(), args.state_file.clone())?;
    if args.watch {
        return watch(args, opts, host);
    }
    once(args, &opts, host)
}

/// One pass (or the cleanup), its plan printed.
fn once(args: &RealserverArgs, opts: &Options, mut host: Host) -> Result<u8> {
    let loaded;
    let state = if args.cleanup {
        None
    } else {
        loaded = crate::cli::source::load(&args.config, &args.overlay, &args.compile)?;
        crate::cli::source::refuse_errors(&loaded, ", nothing changed")?;
        Some(&loaded.rendered)
    };
    let out = match realserver::pass(&mut host, state, opts, args.dry_run) {
        Ok(out) => out,
        Err(e) => {
            eprintln!("error: {}", crate::error::format_error(&e));
            return Err(Exit(1).into());
        }
    };
    for w in &out.desired.warnings {
        eprintln!("warning: {w}");
    }
    print(args.output, &out)?;
    Ok(0)
}

/// The plan: one line per step (or `no changes`), or a JSON document.
fn print(output: Output, out: &Outcome) -> Result<()> {
    let text = match output {
        Output::Text if out.plan.is_empty() => "no changes\n".to_string(),
        Output::Text => out.plan.to_string(),
        Output::Json => {
            let doc = serde_json::json!({
                "served": out.desired.served,
                "steps": out.plan.steps,
            });
            let mut s = serde_json::to_string_pretty(&doc)?;
            s.push('\n');
            s
        }
    };
    Ok(emit(&text)?)
}

fn watch(args: &RealserverArgs, opts: Options, host: Host) -> Result<u8> {
    init_logging(args.log_format);
    let w = WatchOptions {
        config: args.config.source()?,
        overlay: args.overlay.source()?,
        compile: args.compile.options()?,
        poll: args.poll,
        resync: args.resync,
        metrics_listen: args.metrics_listen,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let result = rt.block_on(async {
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(realserver::watch::run(w, opts, host, stopped));
        info!("clusterf realserver --watch starting");
        crate::cli::watch::wait_for_termination().await?;
        let _ = stop.send(());
        task.await?
    });
    rt.shutdown_timeout(Duration::from_millis(100));
    result.map(|()| 0)
}
