//! The Docker side: connecting to the Engine API (bollard, with API version
//! negotiation, so a 20.10 Engine speaking only 1.41 works as well as a new
//! one), listing and inspecting containers, following the event stream, and
//! turning the Engine's answers into [`Container`] facts.
//!
//! Invariant: this module reports what the Engine says; it never decides
//! which backends a container is (`labels` does) and never touches etcd.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use bollard::Docker;
use bollard::models::{ContainerInspectResponse, EventMessage, EventMessageTypeEnum};
use bollard::query_parameters::{EventsOptionsBuilder, ListContainersOptionsBuilder};

use super::labels::{Binding, Container, Health, NetworkAddrs, Port, State, has_clusterf_labels};

/// The socket the Engine listens on by default.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// Connects to `host` (`unix:///path`, `tcp://host:port` or
/// `http://host:port`) and negotiates the API version with the Engine.
pub async fn connect(host: &str) -> Result<Docker> {
    let url = if host.starts_with('/') {
        format!("unix://{host}")
    } else {
        host.to_string()
    };
    let unreachable = |e: bollard::errors::Error| {
        anyhow!(
            "docker {host}: cannot reach the engine: {}",
            lowercase_first(&e.to_string())
        )
    };
    let docker = Docker::connect_with_host(&url).map_err(unreachable)?;
    docker.negotiate_version().await.map_err(unreachable)
}

/// Error messages are lowercase; bollard's start with a capital.
fn lowercase_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// One event that may change what a container publishes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The container the event is about.
    pub container: String,
    /// `start`, `die`, `health_status: healthy`, `connect`, ...
    pub action: String,
    /// The signal of a `kill` event.
    pub signal: Option<String>,
}

impl Event {
    /// Reads an Engine event; `None` for events that change no container's
    /// backends (execs, image and volume events, ...).
    pub fn from_message(msg: &EventMessage) -> Option<Event> {
        let action = msg.action.clone()?;
        let actor = msg.actor.as_ref()?;
        let attrs = actor.attributes.as_ref();
        let container = match msg.typ? {
            EventMessageTypeEnum::CONTAINER => {
                if action.starts_with("exec_")
                    || matches!(
                        action.as_str(),
                        "attach"
                            | "detach"
                            | "top"
                            | "resize"
                            | "copy"
                            | "export"
                            | "commit"
                            | "archive-path"
                            | "extract-to-dir"
                    )
                {
                    return None;
                }
                actor.id.clone()?
            }
            EventMessageTypeEnum::NETWORK => {
                if !matches!(action.as_str(), "connect" | "disconnect") {
                    return None;
                }
                attrs?.get("container")?.clone()
            }
            _ => return None,
        };
        Some(Event {
            container,
            signal: attrs.and_then(|a| a.get("signal")).cloned(),
            action,
        })
    }

    /// Whether this event may start a stop: the Engine sent the container
    /// its stop signal (`StopSignal`, else TERM: what `docker stop` sends
    /// first) or KILL. Other signals (QUIT for a JVM's thread dump, HUP to
    /// reload) are no stop. Even a stop signal is no proof: a container may
    /// survive it, which only an inspect can tell (see `publisher`).
    pub fn starts_stop(&self, stop_signal: Option<&str>) -> bool {
        if self.action != "kill" {
            return false;
        }
        let Some(sig) = self.signal.as_deref() else {
            return false;
        };
        let sig = signal_name(sig);
        sig == "KILL" || sig == signal_name(stop_signal.unwrap_or("SIGTERM"))
    }

    /// Whether this event ends a stop (the container runs again, or is no
    /// more).
    pub fn ends_stop(&self) -> bool {
        matches!(
            self.action.as_str(),
            "start" | "restart" | "unpause" | "die" | "destroy"
        )
    }
}

/// `SIGTERM`, `TERM`, `15` -> `TERM`: a signal as Docker events and
/// `StopSignal` write it, by name (numbers only where every Linux
/// architecture agrees).
fn signal_name(s: &str) -> String {
    let s = s.trim().to_ascii_uppercase();
    match s.as_str() {
        "1" => "HUP".into(),
        "2" => "INT".into(),
        "3" => "QUIT".into(),
        "9" => "KILL".into(),
        "15" => "TERM".into(),
        _ => s.strip_prefix("SIG").unwrap_or(&s).to_string(),
    }
}

/// How long `docker stop` waits for a container before it kills it, when
/// the container does not say (`StopTimeout`): the Engine's default.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `docker stop` gives this container before it kills it.
pub fn stop_timeout(c: &Container) -> Duration {
    c.stop_timeout
        .map_or(DEFAULT_STOP_TIMEOUT, Duration::from_secs)
}

/// The facts of an inspected container.
pub fn facts(resp: &ContainerInspectResponse) -> Option<Container> {
    let id = resp.id.clone()?;
    let name = resp
        .name
        .as_deref()
        .unwrap_or("")
        .trim_start_matches('/')
        .to_string();
    let mut c = Container::new(id, name);
    let config = resp.config.as_ref();
    c.labels = config
        .and_then(|cfg| cfg.labels.as_ref())
        .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    c.exposed = config
        .and_then(|cfg| cfg.exposed_ports.as_ref())
        .map(|ports| ports.iter().filter_map(|p| Port::parse_docker(p)).collect())
        .unwrap_or_default();
    c.stop_signal = config.and_then(|cfg| cfg.stop_signal.clone());
    // Negative: wait for ever, which a drain cannot: the default bounds it.
    c.stop_timeout = config
        .and_then(|cfg| cfg.stop_timeout)
        .and_then(|t| u64::try_from(t).ok());
    let state = resp.state.as_ref();
    c.state = state
        .and_then(|s| s.status)
        .map(|s| State::parse(s.as_ref()))
        .unwrap_or(State::Other(String::new()));
    c.health = state
        .and_then(|s| s.health.as_ref())
        .and_then(|h| h.status)
        .map(|h| Health::parse(h.as_ref()))
        .unwrap_or(Health::None);
    let net = resp.network_settings.as_ref();
    c.networks = net
        .and_then(|n| n.networks.as_ref())
        .map(|nets| {
            nets.iter()
                .map(|(name, ep)| {
                    let ipv4 = ep.ip_address.as_deref().and_then(|a| a.parse().ok());
                    let ipv6 = ep
                        .global_ipv6_address
                        .as_deref()
                        .and_then(|a| a.parse().ok());
                    (name.clone(), NetworkAddrs { ipv4, ipv6 })
                })
                .collect()
        })
        .unwrap_or_default();
    c.published = net
        .and_then(|n| n.ports.as_ref())
        .map(published)
        .unwrap_or_default();
    Some(c)
}

fn published(
    ports: &HashMap<String, Option<Vec<bollard::models::PortBinding>>>,
) -> BTreeMap<Port, Vec<Binding>> {
    let mut out = BTreeMap::new();
    for (port, bindings) in ports {
        let (Some(port), Some(bindings)) = (Port::parse_docker(port), bindings.as_ref()) else {
            continue;
        };
        let list: Vec<Binding> = bindings
            .iter()
            .filter_map(|b| {
                let host_port = b.host_port.as_deref()?.parse::<u16>().ok()?;
                let host_ip = b
                    .host_ip
                    .as_deref()
                    .filter(|s| !s.is_empty())
                    .and_then(|s| s.parse::<IpAddr>().ok());
                Some(Binding { host_ip, host_port })
            })
            .collect();
        if !list.is_empty() {
            out.insert(port, list);
        }
    }
    out
}

/// Inspects one container; `None` if it no longer exists.
pub async fn inspect(docker: &Docker, id: &str) -> Result<Option<Container>> {
    match docker.inspect_container(id, None).await {
        Ok(resp) => Ok(facts(&resp)),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(e) => Err(anyhow!("docker: inspect container {id}: {e}")),
    }
}

/// Lists every container (running or not) with clusterf labels, inspected.
pub async fn list(docker: &Docker) -> Result<Vec<Container>> {
    let opts = ListContainersOptionsBuilder::default().all(true).build();
    let summaries = docker
        .list_containers(Some(opts))
        .await
        .map_err(|e| anyhow!("docker: list containers: {e}"))?;
    let mut out = Vec::new();
    for s in summaries {
        let labelled = s.labels.as_ref().is_some_and(|l| {
            has_clusterf_labels(&l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        });
        let Some(id) = s.id.as_deref().filter(|_| labelled) else {
            continue;
        };
        if let Some(c) = inspect(docker, id).await? {
            out.push(c);
        }
    }
    Ok(out)
}

/// The stream of container and network events.
pub fn events(
    docker: &Docker,
) -> impl futures_util::Stream<Item = Result<EventMessage, bollard::errors::Error>> + use<> {
    let mut filters: HashMap<&str, Vec<&str>> = HashMap::new();
    filters.insert("type", vec!["container", "network"]);
    docker.events(Some(EventsOptionsBuilder::new().filters(&filters).build()))
}

/// Waits for the next event of interest; `Err` when the stream broke (the
/// caller re-lists and subscribes again).
pub async fn next_event<S>(stream: &mut S) -> Result<Event>
where
    S: futures_util::Stream<Item = Result<EventMessage, bollard::errors::Error>> + Unpin,
{
    use futures_util::StreamExt;
    loop {
        match stream.next().await {
            None => return Err(anyhow!("docker: event stream ended")),
            Some(Err(e)) => return Err(anyhow!("docker: event stream: {e}")).context("events"),
            Some(Ok(msg)) => {
                if let Some(ev) = Event::from_message(&msg) {
                    return Ok(ev);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `docker inspect` of a labelled container on Docker 20.10 (API 1.41),
    /// trimmed to what matters.
    const INSPECT_20_10: &str = r#"{
        "Id": "4f1d2c3b4a5968778695a4b3c2d1e0f9a8b7c6d5e4f30211f0e1d2c3b4a59687",
        "Created": "2026-11-22T01:00:00.000000000Z",
        "Name": "/web-1",
        "State": {"Status": "running", "Running": true, "Paused": false,
                  "Restarting": false, "OOMKilled": false, "Dead": false,
                  "Pid": 1234, "ExitCode": 0, "Error": "",
                  "StartedAt": "2026-11-22T01:00:01Z", "FinishedAt": "0001-01-01T00:00:00Z",
                  "Health": {"Status": "healthy", "FailingStreak": 0, "Log": []}},
        "Config": {"Hostname": "4f1d2c3b4a59", "ExposedPorts": {"8080/tcp": {}, "53/udp": {}, "99/sctp": {}},
                   "Labels": {"net.qmsk.clusterf.service": "web", "net.qmsk.clusterf.backend.tcp": "8080"},
                   "StopSignal": "SIGQUIT"},
        "NetworkSettings": {
            "Ports": {"8080/tcp": [{"HostIp": "0.0.0.0", "HostPort": "32768"}, {"HostIp": "::", "HostPort": "32768"}],
                      "53/udp": null},
            "Networks": {"bridge": {"IPAMConfig": null, "Links": null, "Aliases": null,
                "NetworkID": "n1", "EndpointID": "e1", "Gateway": "172.17.0.1",
                "IPAddress": "172.17.0.2", "IPPrefixLen": 16, "IPv6Gateway": "",
                "GlobalIPv6Address": "2001:db8:1::2", "GlobalIPv6PrefixLen": 64,
                "MacAddress": "02:42:ac:11:00:02", "DriverOpts": null}}
        }
    }"#;

    #[test]
    fn facts_from_a_20_10_inspect() {
        let resp: ContainerInspectResponse = serde_json::from_str(INSPECT_20_10).unwrap();
        let c = facts(&resp).unwrap();
        assert_eq!(c.name, "web-1");
        assert_eq!(c.state, State::Running);
        assert_eq!(c.health, Health::Healthy);
        assert_eq!(
            c.exposed.iter().copied().collect::<Vec<_>>(),
            vec![Port::tcp(8080), Port::udp(53)]
        );
        assert_eq!(c.labels["net.qmsk.clusterf.backend.tcp"], "8080");
        let bridge = &c.networks["bridge"];
        assert_eq!(bridge.ipv4, Some("172.17.0.2".parse().unwrap()));
        assert_eq!(bridge.ipv6, Some("2001:db8:1::2".parse().unwrap()));
        assert_eq!(
            c.published[&Port::tcp(8080)],
            vec![
                Binding {
                    host_ip: Some("0.0.0.0".parse().unwrap()),
                    host_port: 32768
                },
                Binding {
                    host_ip: Some("::".parse().unwrap()),
                    host_port: 32768
                }
            ]
        );
        assert!(!c.published.contains_key(&Port::udp(53)));
    }

    #[test]
    fn stopped_container_has_no_address() {
        let text = INSPECT_20_10
            .replace(
                r#""Status": "running", "Running": true"#,
                r#""Status": "exited", "Running": false"#,
            )
            .replace(r#""IPAddress": "172.17.0.2""#, r#""IPAddress": """#)
            .replace(
                r#""GlobalIPv6Address": "2001:db8:1::2""#,
                r#""GlobalIPv6Address": """#,
            );
        let resp: ContainerInspectResponse = serde_json::from_str(&text).unwrap();
        let c = facts(&resp).unwrap();
        assert_eq!(c.state, State::Exited);
        assert_eq!(c.networks["bridge"], NetworkAddrs::default());
    }

    fn ev(
        typ: EventMessageTypeEnum,
        action: &str,
        id: &str,
        attrs: &[(&str, &str)],
    ) -> EventMessage {
        EventMessage {
            typ: Some(typ),
            action: Some(action.into()),
            actor: Some(bollard::models::EventActor {
                id: Some(id.into()),
                attributes: Some(
                    attrs
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn events_of_interest() {
        use EventMessageTypeEnum::*;
        let e = Event::from_message(&ev(CONTAINER, "start", "c1", &[])).unwrap();
        assert_eq!((e.container.as_str(), e.action.as_str()), ("c1", "start"));
        assert!(Event::from_message(&ev(CONTAINER, "exec_start: sh -c true", "c1", &[])).is_none());
        let e =
            Event::from_message(&ev(NETWORK, "connect", "net1", &[("container", "c2")])).unwrap();
        assert_eq!(e.container, "c2");
        assert!(Event::from_message(&ev(NETWORK, "create", "net1", &[])).is_none());
        assert!(Event::from_message(&ev(IMAGE, "pull", "busybox", &[])).is_none());
        let e = Event::from_message(&ev(CONTAINER, "health_status: unhealthy", "c3", &[])).unwrap();
        assert_eq!(e.action, "health_status: unhealthy");
    }

    #[test]
    fn only_the_stop_signal_and_kill_may_start_a_stop() {
        let kill = |sig: &str| Event {
            container: "c".into(),
            action: "kill".into(),
            signal: Some(sig.into()),
        };
        // Without StopSignal, docker stop sends TERM.
        assert!(kill("15").starts_stop(None));
        assert!(kill("SIGTERM").starts_stop(None));
        assert!(kill("9").starts_stop(None));
        assert!(kill("9").starts_stop(Some("SIGQUIT")));
        // A thread dump, a reload, an interrupt: no stop.
        assert!(!kill("3").starts_stop(None));
        assert!(!kill("SIGQUIT").starts_stop(None));
        assert!(!kill("1").starts_stop(None));
        assert!(!kill("SIGHUP").starts_stop(None));
        assert!(!kill("2").starts_stop(None));
        // nginx stops on QUIT: then TERM is no stop.
        assert!(kill("3").starts_stop(Some("SIGQUIT")));
        assert!(!kill("15").starts_stop(Some("SIGQUIT")));
        assert!(kill("SIGUSR1").starts_stop(Some("SIGUSR1")));
        assert!(kill("10").starts_stop(Some("10")));
        assert!(
            !kill("12").starts_stop(Some("SIGUSR2")),
            "12 is not USR2 by name"
        );
        let start = Event {
            container: "c".into(),
            action: "start".into(),
            signal: None,
        };
        assert!(!start.starts_stop(None));
        assert!(start.ends_stop());
    }

    #[test]
    fn the_stop_timeout_is_the_containers_or_the_engines_default() {
        let resp: ContainerInspectResponse = serde_json::from_str(INSPECT_20_10).unwrap();
        let c = facts(&resp).unwrap();
        assert_eq!(c.stop_timeout, None);
        assert_eq!(stop_timeout(&c), Duration::from_secs(10));
        for (json, want) in [("30", Some(30)), ("-1", None)] {
            let text = INSPECT_20_10.replace(
                r#""StopSignal": "SIGQUIT""#,
                &format!(r#""StopSignal": "SIGQUIT", "StopTimeout": {json}"#),
            );
            let resp: ContainerInspectResponse = serde_json::from_str(&text).unwrap();
            assert_eq!(facts(&resp).unwrap().stop_timeout, want, "{json}");
        }
    }
}
