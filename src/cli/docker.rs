//! `clusterf docker`: the publisher daemon of a Docker host. Lists labelled
//! containers, follows the Engine's events and keeps etcd equal to the
//! backends they are, under one lease (see `docker::store`).
//!
//! Level-triggered: an event only marks its container dirty; the dirty
//! containers are inspected again, the full desired key set is computed
//! from every known container, and etcd is reconciled to it.
//!
//! Invariant: wiring and timing only; what a container means is decided in
//! `docker::labels`, which keys are written in `docker::keys`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::pin::Pin;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use ipnet::IpNet;
use tokio::time::{Instant, sleep_until};

use super::source::OverlayArgs;
use crate::docker::engine::{self, Event};
use crate::docker::keys::{self, RouteAd};
use crate::docker::labels::{self, Backends, Container, Mode, Options, State};
use crate::docker::store::{Start, Store};
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

/// Validated settings of a publisher run.
struct Plan {
    publisher: String,
    options: Options,
    route: Option<RouteAd>,
}

fn validate(args: &DockerArgs) -> Result<Plan> {
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
    Ok(Plan {
        publisher,
        options: Options {
            network: args.network.clone(),
            mode,
        },
        route,
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
    let plan = validate(args)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    if args.dry_run {
        return rt.block_on(dry_run(args, &plan));
    }
    rt.block_on(publish(args, plan))
}

fn log(msg: impl std::fmt::Display) {
    eprintln!("clusterf docker: {msg}");
}

async fn dry_run(args: &DockerArgs, plan: &Plan) -> Result<u8> {
    let docker = engine::connect(&args.docker_host).await?;
    let containers = engine::list(&docker).await?;
    let t = labels::translate(&containers, &plan.options, &Backends::new());
    for w in &t.warnings {
        eprintln!("warning: {w}");
    }
    let keys = keys::desired(&t.backends, plan.route.as_ref(), None);
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

/// The publisher's view of the Docker host.
struct Host {
    containers: BTreeMap<String, Container>,
    /// Containers whose stop began (kill with a stop signal seen).
    stopping: BTreeSet<String>,
    /// Containers to inspect again.
    dirty: BTreeSet<String>,
    /// Warnings already printed (each is printed once while it lasts).
    warned: BTreeSet<String>,
}

impl Host {
    fn event(&mut self, ev: &Event) {
        let stop_signal = self
            .containers
            .get(&ev.container)
            .and_then(|c| c.stop_signal.clone());
        if ev.starts_stop(stop_signal.as_deref()) {
            self.stopping.insert(ev.container.clone());
        } else if ev.ends_stop() || ev.action == "destroy" {
            self.stopping.remove(&ev.container);
        }
        self.dirty.insert(ev.container.clone());
    }

    fn facts(&self) -> Vec<Container> {
        self.containers
            .values()
            .map(|c| {
                let mut c = c.clone();
                c.stopping = c.state == State::Running && self.stopping.contains(&c.id);
                c
            })
            .collect()
    }

    fn warn(&mut self, warnings: &[labels::Warning]) {
        let now: BTreeSet<String> = warnings.iter().map(|w| w.to_string()).collect();
        for w in now.difference(&self.warned) {
            eprintln!("warning: {w}");
        }
        self.warned = now;
    }
}

type EventStream = Pin<
    Box<
        dyn futures_util::Stream<
                Item = Result<bollard::models::EventMessage, bollard::errors::Error>,
            >,
    >,
>;

async fn publish(args: &DockerArgs, plan: Plan) -> Result<u8> {
    let settings = super::etcd::settings(&args.etcd)?;
    let ttl = Duration::from_secs(args.ttl);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot handle SIGTERM")?;
    // A daemon outlives its peers' restarts: wait for the Engine and etcd.
    let Some(docker) = retry("docker", &mut term, || engine::connect(&args.docker_host)).await
    else {
        return Ok(0);
    };
    log(format!(
        "docker {} (api {})",
        args.docker_host,
        docker.client_version()
    ));
    let Some((mut store, start)) = retry("etcd", &mut term, || {
        Store::open(settings.clone(), &plan.publisher, ttl)
    })
    .await
    else {
        return Ok(0);
    };
    log(format!(
        "publisher {} on lease {:x} (ttl {} s): {}",
        plan.publisher,
        store.lease(),
        store.ttl(),
        match start {
            Start::Fresh => "new lease".to_string(),
            Start::Adopted => format!(
                "adopted the previous run's lease with {} keys",
                store.current().len()
            ),
            Start::Replaced => "replacing the previous run's lease (other ttl)".to_string(),
        }
    ));

    let mut host = Host {
        containers: BTreeMap::new(),
        stopping: BTreeSet::new(),
        dirty: BTreeSet::new(),
        warned: BTreeSet::new(),
    };
    let mut stream: Option<EventStream> = None;
    let mut relist_at: Option<Instant> = Some(Instant::now());
    let mut docker_backoff = Duration::from_millis(200);
    let mut reconcile_at: Option<Instant> = None;
    let mut etcd_backoff = Duration::from_millis(200);
    let keep_every = Duration::from_millis((args.ttl * 1000 / 3).max(300));
    let mut keep_tick = tokio::time::interval(keep_every);
    keep_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut resync = tokio::time::interval(Duration::from_secs(args.resync));
    resync.tick().await;
    const DEBOUNCE: Duration = Duration::from_millis(100);

    loop {
        tokio::select! {
            ev = next(stream.as_mut()) => match ev {
                Ok(ev) => {
                    host.event(&ev);
                    reconcile_at.get_or_insert(Instant::now() + DEBOUNCE);
                }
                Err(e) => {
                    log(format!("warning: {e:#}; listing again in {docker_backoff:?}"));
                    stream = None;
                    relist_at = Some(Instant::now() + docker_backoff);
                    docker_backoff = (docker_backoff * 2).min(Duration::from_secs(10));
                }
            },
            _ = wait(relist_at) => {
                relist_at = None;
                // Subscribe first, then list: an event in between is
                // applied after the list, never lost.
                let s: EventStream = Box::pin(engine::events(&docker));
                match engine::list(&docker).await {
                    Ok(list) => {
                        stream = Some(s);
                        docker_backoff = Duration::from_millis(200);
                        host.containers = list.into_iter().map(|c| (c.id.clone(), c)).collect();
                        host.stopping.retain(|id| host.containers.contains_key(id));
                        host.dirty.clear();
                        reconcile_at = Some(Instant::now());
                    }
                    Err(e) => {
                        log(format!("warning: {e:#}; listing again in {docker_backoff:?}"));
                        relist_at = Some(Instant::now() + docker_backoff);
                        docker_backoff = (docker_backoff * 2).min(Duration::from_secs(10));
                    }
                }
            }
            _ = wait(reconcile_at) => {
                reconcile_at = None;
                let mut failed = false;
                for id in std::mem::take(&mut host.dirty) {
                    match engine::inspect(&docker, &id).await {
                        Ok(Some(c)) if c.has_clusterf_labels() => { host.containers.insert(id, c); }
                        Ok(_) => { host.containers.remove(&id); host.stopping.remove(&id); }
                        Err(e) => {
                            log(format!("warning: {e:#}"));
                            host.dirty.insert(id);
                            failed = true;
                        }
                    }
                }
                let t = labels::translate(&host.facts(), &plan.options, &store.published_backends());
                host.warn(&t.warnings);
                let desired = keys::desired(&t.backends, plan.route.as_ref(), Some(store.marker()));
                match store.reconcile(&desired).await {
                    Ok(applied) => {
                        etcd_backoff = Duration::from_millis(200);
                        if applied.puts + applied.deletes > 0 {
                            log(format!(
                                "published {} backends: {} put, {} deleted",
                                t.backends.len(), applied.puts, applied.deletes
                            ));
                        }
                    }
                    Err(e) => {
                        log(format!("warning: {e:#}; trying again in {etcd_backoff:?}"));
                        failed = true;
                    }
                }
                if failed {
                    reconcile_at = Some(Instant::now() + etcd_backoff);
                    etcd_backoff = (etcd_backoff * 2).min(Duration::from_secs(10));
                }
            }
            _ = keep_tick.tick() => {
                match store.keep_alive().await {
                    Ok(true) => {}
                    Ok(false) => {
                        log(format!("warning: the lease had expired; publishing everything again on lease {:x}", store.lease()));
                        reconcile_at = Some(Instant::now());
                    }
                    Err(e) => log(format!("warning: {e:#}")),
                }
            }
            _ = resync.tick() => {
                relist_at.get_or_insert(Instant::now());
                store.mark_stale();
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    if args.flush_on_exit {
        store.flush().await?;
        log("exit: lease revoked, every published key removed");
    } else {
        log(format!(
            "exit: published keys stay until the lease expires ({} s) or the next run adopts them",
            args.ttl
        ));
    }
    Ok(0)
}

/// Runs `f` until it succeeds, with backoff (200 ms doubling to 10 s);
/// `None` when SIGINT or SIGTERM came first.
async fn retry<T, F, Fut>(what: &str, term: &mut tokio::signal::unix::Signal, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut backoff = Duration::from_millis(200);
    loop {
        match f().await {
            Ok(v) => return Some(v),
            Err(e) => log(format!(
                "warning: {e:#}; trying {what} again in {backoff:?}"
            )),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = tokio::signal::ctrl_c() => return None,
            _ = term.recv() => return None,
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// The next event of the stream; never, while there is no stream.
async fn next(stream: Option<&mut EventStream>) -> Result<Event> {
    match stream {
        Some(s) => engine::next_event(s).await,
        None => std::future::pending().await,
    }
}

async fn wait(at: Option<Instant>) {
    match at {
        Some(t) => sleep_until(t).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_with(c: Container) -> Host {
        Host {
            containers: [(c.id.clone(), c)].into_iter().collect(),
            stopping: BTreeSet::new(),
            dirty: BTreeSet::new(),
            warned: BTreeSet::new(),
        }
    }

    fn ev(action: &str, signal: Option<&str>) -> Event {
        Event {
            container: "c1".into(),
            action: action.into(),
            signal: signal.map(String::from),
        }
    }

    #[test]
    fn a_stop_signal_drains_until_the_container_starts_again() {
        let mut c = Container::new("c1", "web");
        c.stop_signal = Some("SIGUSR2".into());
        let mut host = host_with(c);
        host.event(&ev("kill", Some("1")));
        assert!(!host.facts()[0].stopping, "SIGHUP is no stop");
        assert!(host.dirty.contains("c1"));
        host.event(&ev("kill", Some("12")));
        assert!(!host.facts()[0].stopping, "12 is not SIGUSR2 by name");
        host.event(&ev("kill", Some("SIGUSR2")));
        assert!(host.facts()[0].stopping, "the configured stop signal");
        host.event(&ev("start", None));
        assert!(!host.facts()[0].stopping);
        host.event(&ev("kill", Some("15")));
        assert!(host.facts()[0].stopping);
        // Once it no longer runs, its state says so; the flag is moot.
        host.containers.get_mut("c1").unwrap().state = State::Exited;
        assert!(!host.facts()[0].stopping);
        host.event(&ev("destroy", None));
        assert!(host.stopping.is_empty());
    }

    #[test]
    fn warnings_are_printed_once_while_they_last() {
        let mut host = host_with(Container::new("c1", "web"));
        let w = labels::Warning {
            container: "web".into(),
            label: None,
            message: "m".into(),
        };
        host.warn(std::slice::from_ref(&w));
        assert_eq!(host.warned.len(), 1);
        host.warn(&[]);
        assert!(host.warned.is_empty());
    }
}
