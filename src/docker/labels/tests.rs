//! Table-driven tests of the label translation: each case is a container
//! (built from a compact description), options, and the expected backends
//! as `service/backend-id JSON` lines plus the expected warnings.

use super::*;
use proptest::prelude::*;

const ID: &str = "c0ffee0000000000000000000000000000000000000000000000000000000001";

/// A running container `web` on the bridge with 172.17.0.2 and the given
/// labels and exposed ports.
fn container(labels: &[(&str, &str)], exposed: &[Port]) -> Container {
    let mut c = Container::new(ID, "web");
    c.labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    c.exposed = exposed.iter().copied().collect();
    c.networks.insert(
        "bridge".into(),
        NetworkAddrs {
            ipv4: Some("172.17.0.2".parse().unwrap()),
            ipv6: None,
        },
    );
    c
}

/// The one check: translating `c` with `opts` and `previous` gives exactly
/// `backends` (`service JSON`, backend id is always [`ID`]) and warnings
/// containing each of `warnings` in order.
fn check_with(
    c: &Container,
    opts: &Options,
    previous: &Backends,
    backends: &[&str],
    warnings: &[&str],
) {
    let t = translate(std::slice::from_ref(c), opts, previous);
    let got: Vec<String> = t
        .backends
        .iter()
        .map(|((svc, id), v)| {
            assert_eq!(id, &c.id);
            format!("{svc} {}", v.to_json())
        })
        .collect();
    let got_w: Vec<String> = t.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(got, backends, "backends; warnings: {got_w:#?}");
    assert_eq!(
        got_w.len(),
        warnings.len(),
        "warnings: {got_w:#?}, expected {warnings:#?}"
    );
    for (g, want) in got_w.iter().zip(warnings) {
        assert!(g.contains(want), "warning {g:?} does not contain {want:?}");
    }
    // Whatever is published reads back as a valid overlay backend with the
    // same fields.
    let mut tree = crate::tree::Tree::new("test");
    for ((svc, id), v) in &t.backends {
        tree.insert(format!("services/{svc}/backends/{id}"), v.to_json());
    }
    let (overlay, diags) = crate::config::parse_overlay(&tree);
    assert!(diags.iter().next().is_none(), "{diags:?}");
    for ((svc, id), v) in &t.backends {
        let b = &overlay.backends[svc][id];
        assert_eq!(
            (
                b.endpoints.ipv4,
                b.endpoints.ipv6,
                b.endpoints.tcp,
                b.endpoints.udp,
                b.weight
            ),
            (v.ipv4, v.ipv6, v.tcp, v.udp, v.weight)
        );
        assert_eq!(BackendValue::from_json(&v.to_json()).as_ref(), Some(v));
    }
}

fn check(c: &Container, backends: &[&str], warnings: &[&str]) {
    check_with(c, &Options::default(), &Backends::new(), backends, warnings);
}

const SVC: &str = SERVICE_LABEL;
const TCP: &str = "net.qmsk.clusterf.backend.tcp";
const UDP: &str = "net.qmsk.clusterf.backend.udp";
const WEIGHT: &str = "net.qmsk.clusterf.backend.weight";

#[test]
fn labels_to_backends() {
    let t80 = Port::tcp(8080);
    let u53 = Port::udp(53);
    #[allow(clippy::type_complexity)]
    let cases: &[(&[(&str, &str)], &[Port], &[&str], &[&str])] = &[
        // The README example.
        (
            &[(SVC, "test"), (TCP, "8080")],
            &[t80],
            &[r#"test {"ipv4":"172.17.0.2","tcp":8080,"weight":10}"#],
            &[],
        ),
        // tcp and udp in one backend.
        (
            &[(SVC, "dns"), (TCP, "8080"), (UDP, "53")],
            &[t80, u53],
            &[r#"dns {"ipv4":"172.17.0.2","tcp":8080,"udp":53,"weight":10}"#],
            &[],
        ),
        // Several services share the generic port.
        (
            &[(SVC, "a  b\tc"), (TCP, "8080")],
            &[t80],
            &[
                r#"a {"ipv4":"172.17.0.2","tcp":8080,"weight":10}"#,
                r#"b {"ipv4":"172.17.0.2","tcp":8080,"weight":10}"#,
                r#"c {"ipv4":"172.17.0.2","tcp":8080,"weight":10}"#,
            ],
            &[],
        ),
        // Per-service ports override the generic one.
        (
            &[
                (SVC, "web dns"),
                (TCP, "8080"),
                ("net.qmsk.clusterf.backend:dns.udp", "53"),
                ("net.qmsk.clusterf.backend:dns.tcp", "53"),
            ],
            &[t80, u53, Port::tcp(53)],
            &[
                r#"dns {"ipv4":"172.17.0.2","tcp":53,"udp":53,"weight":10}"#,
                r#"web {"ipv4":"172.17.0.2","tcp":8080,"weight":10}"#,
            ],
            &[],
        ),
        // Weights: generic and per service.
        (
            &[
                (SVC, "a b"),
                (TCP, "8080"),
                (WEIGHT, "100"),
                ("net.qmsk.clusterf.backend:b.weight", "0"),
            ],
            &[t80],
            &[
                r#"a {"ipv4":"172.17.0.2","tcp":8080,"weight":100}"#,
                r#"b {"ipv4":"172.17.0.2","tcp":8080,"weight":0}"#,
            ],
            &[],
        ),
        // Duplicated service names publish once.
        (
            &[(SVC, "a a"), (TCP, "8080")],
            &[t80],
            &[r#"a {"ipv4":"172.17.0.2","tcp":8080,"weight":10}"#],
            &[],
        ),
        // Not exposed: that port is skipped, the rest stays.
        (
            &[(SVC, "dns"), (TCP, "8080"), (UDP, "53")],
            &[u53],
            &[r#"dns {"ipv4":"172.17.0.2","udp":53,"weight":10}"#],
            &[
                "label net.qmsk.clusterf.backend.tcp=8080: service dns: port 8080/tcp is not exposed",
            ],
        ),
        // Exposed as udp only: the tcp label does not match.
        (
            &[(SVC, "web"), (TCP, "53")],
            &[u53],
            &[],
            &["port 53/tcp is not exposed"],
        ),
        // A service without any port label.
        (
            &[(SVC, "web")],
            &[t80],
            &[],
            &["service web: no port: set net.qmsk.clusterf.backend.tcp"],
        ),
        // No clusterf labels: silently nothing.
        (&[("com.example", "x")], &[t80], &[], &[]),
        // Clusterf labels without a service label.
        (
            &[(TCP, "8080")],
            &[t80],
            &[],
            &["has clusterf labels but no net.qmsk.clusterf.service label"],
        ),
        // Unknown clusterf labels are ignored with a warning.
        (
            &[
                (SVC, "web"),
                (TCP, "8080"),
                ("net.qmsk.clusterf.backend.tpc", "1"),
            ],
            &[t80],
            &[r#"web {"ipv4":"172.17.0.2","tcp":8080,"weight":10}"#],
            &["label net.qmsk.clusterf.backend.tpc=1: unknown clusterf label: ignored"],
        ),
        (
            &[
                (SVC, "web"),
                (TCP, "8080"),
                ("net.qmsk.clusterf.backend:web", "1"),
            ],
            &[t80],
            &[r#"web {"ipv4":"172.17.0.2","tcp":8080,"weight":10}"#],
            &["unknown clusterf label"],
        ),
        (
            &[
                (SVC, "web"),
                (TCP, "8080"),
                ("net.qmsk.clusterf.frontend", "1"),
            ],
            &[t80],
            &[r#"web {"ipv4":"172.17.0.2","tcp":8080,"weight":10}"#],
            &["unknown clusterf label"],
        ),
        // All or nothing: one bad label skips every backend of the container.
        (
            &[
                (SVC, "a b"),
                (TCP, "8080"),
                ("net.qmsk.clusterf.backend:b.udp", "70000"),
            ],
            &[t80],
            &[],
            &[
                "label net.qmsk.clusterf.backend:b.udp=70000: port 70000 out of range 1..65535",
                "skipped: none of its backends are published",
            ],
        ),
        (
            &[(SVC, "web"), (TCP, "0")],
            &[t80],
            &[],
            &["port 0 out of range", "skipped"],
        ),
        (
            &[(SVC, "web"), (TCP, "http")],
            &[t80],
            &[],
            &["invalid port \"http\"", "skipped"],
        ),
        (
            &[(SVC, "web"), (TCP, "-1")],
            &[t80],
            &[],
            &["invalid port \"-1\"", "skipped"],
        ),
        (
            &[(SVC, "web"), (TCP, "8080"), (WEIGHT, "65536")],
            &[t80],
            &[],
            &["weight 65536 out of range 0..65535", "skipped"],
        ),
        (
            &[(SVC, "web"), (TCP, "8080"), (WEIGHT, "heavy")],
            &[t80],
            &[],
            &["invalid weight \"heavy\"", "skipped"],
        ),
        (
            &[(SVC, "web ../etc"), (TCP, "8080")],
            &[t80],
            &[],
            &["invalid service name \"../etc\"", "skipped"],
        ),
        (
            &[(SVC, "a/b"), (TCP, "8080")],
            &[t80],
            &[],
            &["invalid service name \"a/b\"", "skipped"],
        ),
        (
            &[(SVC, "  "), (TCP, "8080")],
            &[t80],
            &[],
            &["names no service", "skipped"],
        ),
        // A per-service label for a service the container does not list.
        (
            &[
                (SVC, "web"),
                (TCP, "8080"),
                ("net.qmsk.clusterf.backend:wbe.tcp", "8080"),
            ],
            &[t80],
            &[],
            &[
                "label net.qmsk.clusterf.backend:wbe.tcp=8080: service \"wbe\" is not in the net.qmsk.clusterf.service label",
                "skipped",
            ],
        ),
    ];
    for (i, (labels, exposed, backends, warnings)) in cases.iter().enumerate() {
        eprintln!("case {i}: {labels:?}");
        check(&container(labels, exposed), backends, warnings);
    }
}

#[test]
fn state_and_health_give_the_weight() {
    let labels = [(SVC, "web"), (TCP, "8080"), (WEIGHT, "7")];
    let up = r#"web {"ipv4":"172.17.0.2","tcp":8080,"weight":7}"#;
    let drained = r#"web {"ipv4":"172.17.0.2","tcp":8080,"weight":0}"#;
    let base = container(&labels, &[Port::tcp(8080)]);

    check(&base, &[up], &[]);
    let mut c = base.clone();
    c.health = Health::Healthy;
    check(&c, &[up], &[]);
    c.health = Health::Unhealthy;
    check(&c, &[drained], &[]);
    c.health = Health::Starting;
    check(&c, &[drained], &[]);
    let mut c = base.clone();
    c.stopping = true;
    check(&c, &[drained], &[]);

    // Not running: the address is gone; what was published stays, drained.
    let mut previous = Backends::new();
    previous.insert(
        ("web".into(), ID.into()),
        BackendValue::from_json(r#"{"ipv4":"172.17.0.2","tcp":8080,"weight":7}"#).unwrap(),
    );
    for state in [
        State::Exited,
        State::Paused,
        State::Restarting,
        State::Dead,
        State::Created,
    ] {
        let mut c = base.clone();
        c.state = state.clone();
        c.networks.insert("bridge".into(), NetworkAddrs::default());
        check_with(&c, &Options::default(), &previous, &[drained], &[]);
        // Never published before: nothing to drain.
        check(&c, &[], &[]);
    }
}

#[test]
fn addresses_and_networks() {
    let labels = [(SVC, "web"), (TCP, "8080")];
    let mut c = container(&labels, &[Port::tcp(8080)]);
    // Dual stack.
    c.networks.get_mut("bridge").unwrap().ipv6 = Some("2001:db8::2".parse().unwrap());
    check(
        &c,
        &[r#"web {"ipv4":"172.17.0.2","ipv6":"2001:db8::2","tcp":8080,"weight":10}"#],
        &[],
    );
    // IPv6 only.
    c.networks.get_mut("bridge").unwrap().ipv4 = None;
    check(
        &c,
        &[r#"web {"ipv6":"2001:db8::2","tcp":8080,"weight":10}"#],
        &[],
    );
    // No address (network mode host or none).
    c.networks.get_mut("bridge").unwrap().ipv6 = None;
    check(&c, &[], &["has no address on network bridge", "skipped"]);
    c.networks.clear();
    check(&c, &[], &["attached to no network", "skipped"]);

    // Several networks: --network picks one.
    let mut c = container(&labels, &[Port::tcp(8080)]);
    c.networks.insert(
        "backend".into(),
        NetworkAddrs {
            ipv4: Some("10.6.107.3".parse().unwrap()),
            ipv6: None,
        },
    );
    check(
        &c,
        &[],
        &[
            "attached to several networks (backend, bridge): choose one with --network",
            "skipped",
        ],
    );
    let opts = Options {
        network: Some("backend".into()),
        ..Options::default()
    };
    check_with(
        &c,
        &opts,
        &Backends::new(),
        &[r#"web {"ipv4":"10.6.107.3","tcp":8080,"weight":10}"#],
        &[],
    );
    let opts = Options {
        network: Some("frontend".into()),
        ..Options::default()
    };
    check_with(
        &c,
        &opts,
        &Backends::new(),
        &[],
        &[
            "not attached to network frontend (attached: backend, bridge)",
            "skipped",
        ],
    );
}

#[test]
fn published_mode_uses_host_address_and_port() {
    let labels = [(SVC, "web"), (TCP, "8080"), (UDP, "53")];
    let mut c = container(&labels, &[Port::tcp(8080), Port::udp(53)]);
    c.published.insert(
        Port::tcp(8080),
        vec![
            Binding {
                host_ip: Some("0.0.0.0".parse().unwrap()),
                host_port: 32768,
            },
            Binding {
                host_ip: Some("::".parse().unwrap()),
                host_port: 32768,
            },
        ],
    );
    let opts = Options {
        network: None,
        mode: Mode::Published {
            ipv4: Some("192.0.2.10".parse().unwrap()),
            ipv6: Some("2001:db8::10".parse().unwrap()),
        },
    };
    check_with(
        &c,
        &opts,
        &Backends::new(),
        &[r#"web {"ipv4":"192.0.2.10","ipv6":"2001:db8::10","tcp":32768,"weight":10}"#],
        &[
            "label net.qmsk.clusterf.backend.udp=53: service web: port 53/udp is not published on the host address",
        ],
    );
    // Bound to another host address only: not reachable on ours.
    c.published.insert(
        Port::udp(53),
        vec![Binding {
            host_ip: Some("127.0.0.1".parse().unwrap()),
            host_port: 5353,
        }],
    );
    check_with(
        &c,
        &opts,
        &Backends::new(),
        &[r#"web {"ipv4":"192.0.2.10","ipv6":"2001:db8::10","tcp":32768,"weight":10}"#],
        &["port 53/udp is not published"],
    );
    c.published.insert(
        Port::udp(53),
        vec![Binding {
            host_ip: Some("192.0.2.10".parse().unwrap()),
            host_port: 5353,
        }],
    );
    check_with(
        &c,
        &opts,
        &Backends::new(),
        &[r#"web {"ipv4":"192.0.2.10","ipv6":"2001:db8::10","tcp":32768,"udp":5353,"weight":10}"#],
        &[],
    );
    // Several networks do not matter in published mode.
    c.networks.insert("other".into(), NetworkAddrs::default());
    check_with(
        &c,
        &opts,
        &Backends::new(),
        &[r#"web {"ipv4":"192.0.2.10","ipv6":"2001:db8::10","tcp":32768,"udp":5353,"weight":10}"#],
        &[],
    );
}

#[test]
fn containers_are_independent() {
    let good = container(&[(SVC, "web"), (TCP, "8080")], &[Port::tcp(8080)]);
    let mut bad = container(&[(SVC, "web"), (TCP, "99999")], &[Port::tcp(8080)]);
    bad.id = "bad".into();
    bad.name = "broken".into();
    let t = translate(&[good, bad], &Options::default(), &Backends::new());
    assert_eq!(
        t.backends.keys().collect::<Vec<_>>(),
        vec![&("web".to_string(), ID.to_string())]
    );
    assert!(t.warnings.iter().all(|w| w.container == "broken (bad)"));
    assert_eq!(t.warnings.len(), 2);
}

#[test]
fn warnings_name_container_and_label() {
    let c = container(&[(SVC, "web"), (TCP, "x\ny")], &[]);
    let t = translate(&[c], &Options::default(), &Backends::new());
    assert_eq!(
        t.warnings[0].to_string(),
        "container web (c0ffee000000): label net.qmsk.clusterf.backend.tcp=x\\ny: invalid port \"x\\ny\": expected a number 1..65535"
    );
}

#[test]
fn docker_port_syntax() {
    assert_eq!(Port::parse_docker("8080/tcp"), Some(Port::tcp(8080)));
    assert_eq!(Port::parse_docker("53/udp"), Some(Port::udp(53)));
    assert_eq!(Port::parse_docker("80"), Some(Port::tcp(80)));
    assert_eq!(Port::parse_docker("99/sctp"), None);
    assert_eq!(Port::parse_docker("0/tcp"), None);
    assert_eq!(Port::parse_docker("70000/tcp"), None);
    assert_eq!(Port::parse_docker("/tcp"), None);
}

fn label_key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(SVC.to_string()),
        Just(TCP.to_string()),
        Just(UDP.to_string()),
        Just(WEIGHT.to_string()),
        "net\\.qmsk\\.clusterf\\.backend:[a-z.:/ ]{0,6}\\.(tcp|udp|weight|x)",
        "net\\.qmsk\\.clusterf\\.[a-z.:]{0,12}",
        "\\PC{0,16}",
    ]
}

fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,6}",
        "-?[0-9]{1,25}",
        "[a-z]{1,3}( [a-z.:/]{1,3}){0,3}",
        "\\PC{0,12}",
        ".{0,8}",
    ]
}

fn arb_container() -> impl Strategy<Value = Container> {
    (
        proptest::collection::btree_map(label_key(), label_value(), 0..8),
        proptest::collection::btree_set((any::<bool>(), 1u16..200), 0..4),
        any::<bool>(),
        0usize..3,
    )
        .prop_map(|(labels, exposed, running, nets)| {
            let mut c = Container::new(ID, "p");
            c.labels = labels;
            c.exposed = exposed
                .into_iter()
                .map(|(tcp, port)| {
                    if tcp {
                        Port::tcp(port)
                    } else {
                        Port::udp(port)
                    }
                })
                .collect();
            if !running {
                c.state = State::Exited;
            }
            for i in 0..nets {
                c.networks.insert(
                    format!("n{i}"),
                    NetworkAddrs {
                        ipv4: Some(std::net::Ipv4Addr::new(10, 0, 0, i as u8 + 1)),
                        ipv6: None,
                    },
                );
            }
            c
        })
}

proptest! {
    /// Any labels: no panic, and whatever comes out is a valid overlay
    /// backend under a valid path, all-or-nothing per container.
    #[test]
    fn arbitrary_labels_never_panic(c in arb_container()) {
        let t = translate(std::slice::from_ref(&c), &Options::default(), &Backends::new());
        let mut tree = crate::tree::Tree::new("prop");
        for ((svc, id), v) in &t.backends {
            prop_assert!(valid_service_name(svc));
            prop_assert_eq!(id, &c.id);
            tree.insert(format!("services/{svc}/backends/{id}"), v.to_json());
        }
        let (overlay, diags) = crate::config::parse_overlay(&tree);
        prop_assert!(diags.iter().next().is_none(), "{:?}", diags);
        prop_assert_eq!(overlay.backends.values().map(|b| b.len()).sum::<usize>(), t.backends.len());
        // A container whose translation was skipped publishes nothing.
        if t.warnings.iter().any(|w| w.message.starts_with("skipped")) {
            prop_assert!(t.backends.is_empty());
        }
    }
}
