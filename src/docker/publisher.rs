//! The publisher loop of `clusterf docker`: lists labelled containers,
//! follows the Engine's events and keeps etcd equal to the backends they
//! are, under one lease ([`super::store`]).
//!
//! Level-triggered: an event only marks its container dirty; the dirty
//! containers are inspected again, the full desired key set is computed
//! from every known container, and etcd is reconciled to it. A lost Engine
//! stream is listed again; a failed reconcile is retried, both with
//! backoff; a resync lists and re-reads etcd, events or not. The one thing
//! an inspect cannot show, a stop under way, comes from the stop signal's
//! event and lasts at most the container's stop timeout: a container that
//! survives the signal serves again, as a restarted publisher would say.
//!
//! Invariant: wiring and timing only; what a container means is decided in
//! `labels`, which keys are written in `keys`, the lease in `store`. It
//! reports on stderr (`clusterf docker: ...` lines) and stops when the
//! caller's `stop` completes: it installs no signal handler.

use std::collections::{BTreeMap, BTreeSet};
use std::pin::Pin;
use std::time::Duration;

use anyhow::Result;
use bollard::Docker;
use tokio::time::{Instant, sleep_until};

use super::engine::{self, Event};
use super::keys::{self, KeySet, RouteAd};
use super::labels::{self, Backends, Container, Options, State};
use super::store::{Start, Store};
use crate::source::etcd;

/// What a publisher publishes, and how: resolved flags, no connections.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The Engine API address (`unix://`, `tcp://`, `http://`).
    pub docker_host: String,
    /// The publisher id that finds its lease again after a restart.
    pub publisher: String,
    pub options: Options,
    /// A route advertised for the local Docker network.
    pub route: Option<RouteAd>,
    /// The lease's time to live.
    pub ttl: Duration,
    /// How often to list containers and re-read etcd, events or not.
    pub resync: Duration,
    /// Revoke the lease on stop: every published key goes at once.
    pub flush_on_exit: bool,
}

/// The first retry delay after a failure (doubling up to [`MAX_BACKOFF`]).
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long events gather before a reconcile.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// The key set the publisher would publish now, with the containers'
/// warnings (`--dry-run`: needs the Engine, no etcd).
pub async fn preview(settings: &Settings) -> Result<(KeySet, Vec<labels::Warning>)> {
    let docker = engine::connect(&settings.docker_host).await?;
    let containers = engine::list(&docker).await?;
    let t = labels::translate(&containers, &settings.options, &Backends::new());
    let keys = keys::desired(&t.backends, settings.route.as_ref(), None);
    Ok((keys, t.warnings))
}

/// Publishes until `stop` completes: waits for the Engine and etcd (a
/// daemon outlives its peers' restarts), then follows the Engine.
pub async fn run(
    settings: Settings,
    etcd: etcd::Settings,
    stop: impl Future<Output = ()>,
) -> Result<()> {
    let mut stop = std::pin::pin!(stop);
    let connect = || engine::connect(&settings.docker_host);
    let Some(docker) = retry("docker", stop.as_mut(), connect).await else {
        return Ok(());
    };
    log(format!(
        "docker {} (api {})",
        settings.docker_host,
        docker.client_version()
    ));
    let open = || Store::open(etcd.clone(), &settings.publisher, settings.ttl);
    let Some((store, start)) = retry("etcd", stop.as_mut(), open).await else {
        return Ok(());
    };
    log(opened(&settings.publisher, &store, start));
    let mut publisher = Publisher::new(settings, docker, store);
    publisher.follow(stop).await;
    publisher.exit().await
}

/// The line saying which lease the publisher runs on.
fn opened(publisher: &str, store: &Store, start: Start) -> String {
    format!(
        "publisher {publisher} on lease {:x} (ttl {} s): {}",
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
    )
}

fn log(msg: impl std::fmt::Display) {
    eprintln!("clusterf docker: {msg}");
}

/// How long a stop's drain lasts beyond the container's stop timeout: the
/// Engine's KILL and the container's `die` event are on their way.
const STOP_SLACK: Duration = Duration::from_secs(2);

/// The publisher's view of the Docker host: the containers as last
/// inspected, and the one thing inspects cannot show, a stop under way.
struct Host {
    containers: BTreeMap<String, Container>,
    /// Containers the Engine sent their stop signal, drained until the
    /// instant given: by then a stop would have ended (their stop timeout,
    /// then KILL), so a container still running survived the signal and
    /// serves again. Known only from events: a restarted publisher starts
    /// without it, and after the instant it reaches the same answer.
    stopping: BTreeMap<String, Instant>,
    /// Containers whose drain for a stop ended, until an inspect says
    /// whether they survived.
    ended: BTreeSet<String>,
    /// Containers to inspect again.
    dirty: BTreeSet<String>,
    /// Warnings already printed (each is printed once while it lasts).
    warned: BTreeSet<String>,
}

impl Host {
    fn new() -> Host {
        Host {
            containers: BTreeMap::new(),
            stopping: BTreeMap::new(),
            ended: BTreeSet::new(),
            dirty: BTreeSet::new(),
            warned: BTreeSet::new(),
        }
    }

    fn event(&mut self, ev: &Event, now: Instant) {
        let known = self.containers.get(&ev.container);
        if ev.starts_stop(known.and_then(|c| c.stop_signal.as_deref())) {
            let timeout = known.map_or(engine::DEFAULT_STOP_TIMEOUT, engine::stop_timeout);
            let until = now + timeout + STOP_SLACK;
            self.stopping.insert(ev.container.clone(), until);
        } else if ev.ends_stop() {
            self.stopping.remove(&ev.container);
        }
        self.dirty.insert(ev.container.clone());
    }

    /// A fresh list replaces what events told; a stop ends with the
    /// container's run. What to say about containers that survived a stop
    /// signal.
    fn listed(&mut self, list: Vec<Container>) -> Vec<String> {
        self.containers = list.into_iter().map(|c| (c.id.clone(), c)).collect();
        let containers = &self.containers;
        self.stopping.retain(|id, _| {
            containers
                .get(id)
                .is_some_and(|c| c.state == State::Running)
        });
        self.dirty.clear();
        std::mem::take(&mut self.ended)
            .iter()
            .filter_map(|id| self.containers.get(id).and_then(survived))
            .collect()
    }

    /// An inspect's answer: the container now (`None`: gone, or no longer
    /// labelled). What to say if it survived a stop signal.
    fn inspected(&mut self, id: String, c: Option<Container>) -> Option<String> {
        let ended = self.ended.remove(&id);
        let Some(c) = c else {
            self.containers.remove(&id);
            self.stopping.remove(&id);
            return None;
        };
        if c.state != State::Running {
            self.stopping.remove(&id);
        }
        let line = survived(&c).filter(|_| ended);
        self.containers.insert(id, c);
        line
    }

    /// Ends the drains whose stop should be over by `now` and marks their
    /// containers for an inspect.
    fn expire(&mut self, now: Instant) {
        let over: Vec<String> = self
            .stopping
            .iter()
            .filter(|(_, until)| **until <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in over {
            self.stopping.remove(&id);
            self.dirty.insert(id.clone());
            self.ended.insert(id);
        }
    }

    /// When the next drain of a stop ends.
    fn next_expiry(&self) -> Option<Instant> {
        self.stopping.values().min().copied()
    }

    fn facts(&self, now: Instant) -> Vec<Container> {
        self.containers
            .values()
            .map(|c| {
                let mut c = c.clone();
                c.stopping = c.state == State::Running
                    && self.stopping.get(&c.id).is_some_and(|until| now < *until);
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

/// The line saying that `c`, whose drain for a stop ended, survived the
/// signal; `None` if it no longer runs.
fn survived(c: &Container) -> Option<String> {
    (c.state == State::Running).then(|| {
        format!(
            "container {} still runs {:?} after its stop signal: not stopping, serving again",
            c.display_name(),
            engine::stop_timeout(c) + STOP_SLACK
        )
    })
}

type EventStream = Pin<
    Box<
        dyn futures_util::Stream<
                Item = Result<bollard::models::EventMessage, bollard::errors::Error>,
            >,
    >,
>;

/// The loop's state between its steps.
struct Publisher {
    settings: Settings,
    docker: Docker,
    store: Store,
    host: Host,
    /// The Engine's events; `None` until listed (again).
    stream: Option<EventStream>,
    relist_at: Option<Instant>,
    docker_backoff: Duration,
    reconcile_at: Option<Instant>,
    etcd_backoff: Duration,
}

impl Publisher {
    fn new(settings: Settings, docker: Docker, store: Store) -> Publisher {
        Publisher {
            settings,
            docker,
            store,
            host: Host::new(),
            stream: None,
            relist_at: Some(Instant::now()),
            docker_backoff: FIRST_BACKOFF,
            reconcile_at: None,
            etcd_backoff: FIRST_BACKOFF,
        }
    }

    /// Runs the steps as their triggers come, until `stop` completes.
    async fn follow(&mut self, mut stop: Pin<&mut impl Future<Output = ()>>) {
        let third = u64::try_from(self.settings.ttl.as_millis() / 3).unwrap_or(u64::MAX);
        let mut keep_tick = tokio::time::interval(Duration::from_millis(third.max(300)));
        keep_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut resync = tokio::time::interval(self.settings.resync);
        resync.tick().await;
        loop {
            tokio::select! {
                ev = next(self.stream.as_mut()) => self.event(ev),
                _ = wait(self.relist_at) => self.relist().await,
                _ = wait(self.reconcile_at) => self.reconcile().await,
                _ = wait(self.host.next_expiry()) => self.stops_over(),
                _ = keep_tick.tick() => self.keep_alive().await,
                _ = resync.tick() => self.resync(),
                _ = stop.as_mut() => break,
            }
        }
    }

    /// An Engine event marks its container dirty; a broken stream lists
    /// again.
    fn event(&mut self, ev: Result<Event>) {
        match ev {
            Ok(ev) => {
                self.host.event(&ev, Instant::now());
                self.reconcile_at.get_or_insert(Instant::now() + DEBOUNCE);
            }
            Err(e) => {
                self.stream = None;
                self.relist_later(&e);
            }
        }
    }

    fn relist_later(&mut self, e: &anyhow::Error) {
        let backoff = self.docker_backoff;
        log(format!("warning: {e:#}; listing again in {backoff:?}"));
        self.relist_at = Some(Instant::now() + backoff);
        self.docker_backoff = (backoff * 2).min(MAX_BACKOFF);
    }

    /// Subscribes to events, lists the containers, and reconciles.
    async fn relist(&mut self) {
        self.relist_at = None;
        // Subscribe first, then list: an event in between is applied
        // after the list, never lost.
        let s: EventStream = Box::pin(engine::events(&self.docker));
        match engine::list(&self.docker).await {
            Ok(list) => {
                self.stream = Some(s);
                self.docker_backoff = FIRST_BACKOFF;
                for line in self.host.listed(list) {
                    log(line);
                }
                self.reconcile_at = Some(Instant::now());
            }
            Err(e) => self.relist_later(&e),
        }
    }

    /// Drains for stops that should be over by now end: their containers
    /// are inspected again, as after an event.
    fn stops_over(&mut self) {
        self.host.expire(Instant::now());
        self.reconcile_at.get_or_insert(Instant::now());
    }

    /// Inspects the dirty containers and publishes the key set of every
    /// container; retried with backoff when either failed.
    async fn reconcile(&mut self) {
        self.reconcile_at = None;
        let inspected = self.inspect_dirty().await;
        let published = self.publish().await;
        if !(inspected && published) {
            self.reconcile_at = Some(Instant::now() + self.etcd_backoff);
            self.etcd_backoff = (self.etcd_backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Whether every dirty container was inspected (the others stay dirty).
    async fn inspect_dirty(&mut self) -> bool {
        let mut ok = true;
        for id in std::mem::take(&mut self.host.dirty) {
            match engine::inspect(&self.docker, &id).await {
                Ok(c) => {
                    let labelled = c.filter(Container::has_clusterf_labels);
                    if let Some(line) = self.host.inspected(id, labelled) {
                        log(line);
                    }
                }
                Err(e) => {
                    log(format!("warning: {e:#}"));
                    self.host.dirty.insert(id);
                    ok = false;
                }
            }
        }
        ok
    }

    /// Reconciles etcd to the containers' key set; whether that succeeded.
    async fn publish(&mut self) -> bool {
        let t = labels::translate(
            &self.host.facts(Instant::now()),
            &self.settings.options,
            &self.store.published_backends(),
        );
        self.host.warn(&t.warnings);
        let desired = keys::desired(
            &t.backends,
            self.settings.route.as_ref(),
            Some(self.store.marker()),
        );
        match self.store.reconcile(&desired).await {
            Ok(applied) => {
                self.etcd_backoff = FIRST_BACKOFF;
                if applied.puts + applied.deletes > 0 {
                    log(format!(
                        "published {} backends: {} put, {} deleted",
                        t.backends.len(),
                        applied.puts,
                        applied.deletes
                    ));
                }
                true
            }
            Err(e) => {
                log(format!(
                    "warning: {e:#}; trying again in {:?}",
                    self.etcd_backoff
                ));
                false
            }
        }
    }

    /// Keeps the lease alive; an expired one is published again in full.
    async fn keep_alive(&mut self) {
        match self.store.keep_alive().await {
            Ok(true) => {}
            Ok(false) => {
                log(format!(
                    "warning: the lease had expired; publishing everything again on lease {:x}",
                    self.store.lease()
                ));
                self.reconcile_at = Some(Instant::now());
            }
            Err(e) => log(format!("warning: {e:#}")),
        }
    }

    /// Lists again and re-reads etcd before the next reconcile.
    fn resync(&mut self) {
        self.relist_at.get_or_insert(Instant::now());
        self.store.mark_stale();
    }

    /// Revokes the lease (`flush_on_exit`) or leaves the keys to expire.
    async fn exit(self) -> Result<()> {
        if self.settings.flush_on_exit {
            self.store.flush().await?;
            log("exit: lease revoked, every published key removed");
        } else {
            log(format!(
                "exit: published keys stay until the lease expires ({} s) or the next run adopts them",
                self.settings.ttl.as_secs()
            ));
        }
        Ok(())
    }
}

/// Runs `f` until it succeeds, with backoff (200 ms doubling to 10 s);
/// `None` when `stop` completed first.
async fn retry<T, F, Fut>(
    what: &str,
    mut stop: Pin<&mut impl Future<Output = ()>>,
    mut f: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut backoff = FIRST_BACKOFF;
    loop {
        match f().await {
            Ok(v) => return Some(v),
            Err(e) => log(format!(
                "warning: {e:#}; trying {what} again in {backoff:?}"
            )),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.as_mut() => return None,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
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
        let mut host = Host::new();
        host.listed(vec![c]);
        host
    }

    fn ev(action: &str, signal: Option<&str>) -> Event {
        Event {
            container: "c1".into(),
            action: action.into(),
            signal: signal.map(String::from),
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn the_stop_signal_drains_until_the_container_starts_again_or_exits() {
        let t0 = Instant::now();
        let mut c = Container::new("c1", "web");
        c.stop_signal = Some("SIGUSR2".into());
        let mut host = host_with(c);
        host.event(&ev("kill", Some("1")), t0);
        assert!(!host.facts(t0)[0].stopping, "SIGHUP is no stop");
        assert!(host.dirty.contains("c1"));
        host.event(&ev("kill", Some("12")), t0);
        assert!(!host.facts(t0)[0].stopping, "12 is not SIGUSR2 by name");
        host.event(&ev("kill", Some("15")), t0);
        assert!(!host.facts(t0)[0].stopping, "TERM is not its stop signal");
        host.event(&ev("kill", Some("SIGUSR2")), t0);
        assert!(host.facts(t0)[0].stopping, "the configured stop signal");
        host.event(&ev("start", None), t0);
        assert!(!host.facts(t0)[0].stopping);
        host.event(&ev("kill", Some("9")), t0);
        assert!(host.facts(t0)[0].stopping);
        // Once it no longer runs, its state says so, and the stop is over.
        let mut exited = host.containers["c1"].clone();
        exited.state = State::Exited;
        host.inspected("c1".into(), Some(exited));
        assert!(!host.facts(t0)[0].stopping);
        assert!(host.stopping.is_empty());
    }

    #[test]
    fn a_container_that_survives_its_stop_signal_serves_again_after_its_stop_timeout() {
        let t0 = Instant::now();
        let mut c = Container::new("c1", "web");
        c.stop_timeout = Some(3);
        let mut host = host_with(c.clone());
        host.event(&ev("kill", Some("15")), t0);
        host.dirty.clear();
        // The inspect after the event: still running, so the drain holds.
        assert_eq!(host.inspected("c1".into(), Some(c.clone())), None);
        assert!(host.facts(t0 + secs(4))[0].stopping);
        // A resync lists it running: the drain still holds.
        assert!(host.listed(vec![c.clone()]).is_empty());
        assert!(host.facts(t0 + secs(4))[0].stopping);
        let end = t0 + secs(3) + STOP_SLACK;
        assert_eq!(host.next_expiry(), Some(end));
        host.expire(end - secs(1));
        assert!(host.dirty.is_empty());
        assert!(!host.facts(end)[0].stopping);
        host.expire(end);
        assert!(host.dirty.contains("c1"), "inspected again");
        assert_eq!(host.next_expiry(), None);
        assert_eq!(
            host.inspected("c1".into(), Some(c.clone())).as_deref(),
            Some(
                "container web (c1) still runs 5s after its stop signal: not stopping, serving again"
            )
        );
        assert_eq!(
            host.inspected("c1".into(), Some(c.clone())),
            None,
            "said once"
        );
        // A restarted publisher, from the same inspects, says the same.
        let restarted = host_with(c.clone());
        assert_eq!(restarted.facts(end), host.facts(end));
        // A list may be the inspect that finds a survivor.
        host.event(&ev("kill", Some("15")), end);
        host.expire(end + secs(5));
        assert_eq!(host.listed(vec![c]).len(), 1);
    }

    #[test]
    fn a_signal_that_is_no_stop_leaves_the_container_serving() {
        let t0 = Instant::now();
        let mut host = host_with(Container::new("c1", "web"));
        for sig in ["3", "SIGQUIT", "2", "SIGHUP", "10"] {
            host.event(&ev("kill", Some(sig)), t0);
            assert!(!host.facts(t0)[0].stopping, "{sig}");
        }
        assert_eq!(host.next_expiry(), None);
    }

    #[test]
    fn a_stop_of_an_unknown_container_uses_the_engines_default_timeout() {
        let t0 = Instant::now();
        let mut host = Host::new();
        host.event(&ev("kill", Some("15")), t0);
        assert_eq!(
            host.next_expiry(),
            Some(t0 + engine::DEFAULT_STOP_TIMEOUT + STOP_SLACK)
        );
        // Its inspect finds no labelled container: nothing is kept.
        host.inspected("c1".into(), None);
        assert_eq!(host.next_expiry(), None);
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
