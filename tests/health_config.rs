//! Health checks in the config repository (issue 16, the config part): the
//! `healthcheck` keys of both layouts, read and validated with every
//! problem at its file:line:column, and compiled into `Rendered.health`
//! for each IPVS service, with the dests exempt as the kernel sees them
//! (after routes, gateways and merging).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use clusterf::compile::Options;
use clusterf::health::{CheckSpec, Expect, HttpProbe, OnFailure, Probe, ServiceHealth};
use clusterf::model::{Protocol, ServiceKey};
use clusterf::render::{Rendered, render};
use clusterf::tree::Tree;

fn tree(name: &str, files: &[(&str, &str)]) -> Tree {
    let mut t = Tree::new(name);
    for (path, text) in files {
        t.insert(*path, *text);
    }
    t
}

fn rendered(config: &[(&str, &str)], overlay: Option<&[(&str, &str)]>) -> Rendered {
    let overlay = overlay.map(|o| tree("etcd", o));
    render(&tree("cfg", config), overlay.as_ref(), &Options::default())
}

fn problems(r: &Rendered) -> Vec<String> {
    r.diags.iter().map(ToString::to_string).collect()
}

fn key(protocol: Protocol, addr: &str) -> ServiceKey {
    let a: SocketAddr = addr.parse().unwrap();
    ServiceKey::addr(protocol, a.ip(), a.port())
}

fn addrs(list: &[&str]) -> BTreeSet<SocketAddr> {
    list.iter().map(|a| a.parse().unwrap()).collect()
}

#[test]
fn every_key_of_a_yaml_check_reaches_each_ipvs_service_of_the_frontend() {
    let web = "\
frontend: {ipv4: 10.0.0.1, ipv6: \"2001:db8::1\", tcp: 443}
healthcheck:
  type: https
  port: 8443
  path: /healthz
  host: web.example.com
  expect: 200,204,300-399
  interval: 10s
  timeout: 500ms
  rise: 1
  fall: 5
  on_failure: remove
backends:
  a: {ipv4: 10.1.0.1, ipv6: \"2001:db8:1::1\", tcp: 443}
";
    let r = rendered(&[("services/web.yaml", web)], None);
    assert_eq!(problems(&r), Vec::<String>::new());
    let want = ServiceHealth {
        check: CheckSpec {
            probe: Probe::Https(HttpProbe {
                path: "/healthz".into(),
                host: Some("web.example.com".into()),
                expect: Expect::parse("200,204,300-399").unwrap(),
            }),
            port: Some(8443),
            interval: Duration::from_secs(10),
            timeout: Duration::from_millis(500),
            rise: 1,
            fall: 5,
        },
        on_failure: OnFailure::Remove,
        exempt: BTreeSet::new(),
    };
    let keys: Vec<ServiceKey> = r.health.services.keys().copied().collect();
    assert_eq!(
        keys,
        [
            key(Protocol::Tcp, "10.0.0.1:443"),
            key(Protocol::Tcp, "[2001:db8::1]:443")
        ]
    );
    assert!(r.health.services.values().all(|h| *h == want));
    assert_eq!(r.health.panic_below_percent, 0);
}

#[test]
fn a_check_with_only_its_type_has_the_defaults_and_type_none_has_no_check() {
    let r = rendered(
        &[
            (
                "services/web.yaml",
                "frontend: {ipv4: 10.0.0.1, tcp: 80}\nhealthcheck: {type: http}\n",
            ),
            (
                "services/off.yaml",
                "frontend: {ipv4: 10.0.0.2, tcp: 80}\nhealthcheck:\n  type: none\n",
            ),
            (
                "services/bare.yaml",
                "frontend: {ipv4: 10.0.0.3, tcp: 80}\n",
            ),
        ],
        None,
    );
    assert_eq!(problems(&r), Vec::<String>::new());
    assert_eq!(r.health.services.len(), 1);
    let h = &r.health.services[&key(Protocol::Tcp, "10.0.0.1:80")];
    let defaults = CheckSpec::new(Probe::Http(HttpProbe::default()));
    assert_eq!(defaults.interval, Duration::from_secs(5));
    assert_eq!(defaults.timeout, Duration::from_secs(2));
    assert_eq!((defaults.rise, defaults.fall, defaults.port), (2, 3, None));
    assert_eq!(h.check, defaults);
    assert_eq!(h.on_failure, OnFailure::Drain);
}

/// The exempt set names dests as the kernel sees them: a backend behind a
/// gateway is exempt at the gateway's address, and a merged dest is exempt
/// when any of its backends opted out, from the repo or the overlay.
#[test]
fn opted_out_backends_exempt_their_dests_after_routes_gateways_and_merging() {
    let web = "\
frontend: {ipv4: 10.0.0.1, tcp: 80}
healthcheck: {type: tcp}
backends:
  plain: {ipv4: 10.1.0.1, tcp: 8080}
  out: {ipv4: 10.1.0.2, tcp: 8080, healthcheck: false}
  in: {ipv4: 10.1.0.2, tcp: 8080, healthcheck: true}
  behind-gw: {ipv4: 10.6.0.5, tcp: 80, healthcheck: false}
  also-gw: {ipv4: 10.6.0.6, tcp: 80}
";
    let route = "prefix: 10.6.0.0/16\ngateway: 10.9.9.9\nmethod: droute\n";
    let overlay: &[(&str, &str)] = &[
        (
            "services/web/backends/docker-1",
            r#"{"ipv4": "10.2.0.1", "tcp": 8080, "healthcheck": false}"#,
        ),
        (
            "services/web/backends/docker-2",
            r#"{"ipv4": "10.1.0.1", "tcp": 8080, "HealthCheck": false}"#,
        ),
    ];
    let r = rendered(
        &[("services/web.yaml", web), ("routes/gw.yaml", route)],
        Some(overlay),
    );
    assert_eq!(problems(&r), Vec::<String>::new());
    let k = key(Protocol::Tcp, "10.0.0.1:80");
    let dests: Vec<SocketAddr> = r.state.services[&k].dests.keys().copied().collect();
    assert_eq!(dests.len(), 4, "{dests:?}");
    assert_eq!(
        r.health.services[&k].exempt,
        addrs(&[
            "10.1.0.1:8080",
            "10.1.0.2:8080",
            "10.2.0.1:8080",
            "10.9.9.9:80"
        ])
    );
}

#[test]
fn the_json_layout_reads_the_healthcheck_file_and_backend_opt_outs() {
    let r = rendered(
        &[
            (
                "services/dns/frontend",
                r#"{"ipv4": "10.0.0.53", "tcp": 53, "udp": 53}"#,
            ),
            (
                "services/dns/healthcheck",
                r#"{"Type": "dns", "Query": "health.example.", "interval": "1s", "timeout": "300ms", "rise": 3, "fall": 2, "on_failure": "drain"}"#,
            ),
            (
                "services/dns/backends/ns1",
                r#"{"ipv4": "10.1.0.53", "tcp": 53, "udp": 53}"#,
            ),
            (
                "services/dns/backends/ns2",
                r#"{"ipv4": "10.1.0.54", "tcp": 53, "udp": 53, "healthcheck": false}"#,
            ),
        ],
        None,
    );
    assert_eq!(problems(&r), Vec::<String>::new());
    let mut spec = CheckSpec::new(Probe::Dns {
        query: "health.example.".into(),
    });
    spec.interval = Duration::from_secs(1);
    spec.timeout = Duration::from_millis(300);
    spec.rise = 3;
    spec.fall = 2;
    for k in [
        key(Protocol::Tcp, "10.0.0.53:53"),
        key(Protocol::Udp, "10.0.0.53:53"),
    ] {
        let h = &r.health.services[&k];
        assert_eq!(h.check, spec);
        assert_eq!(h.exempt, addrs(&["10.1.0.54:53"]));
    }
}

#[test]
fn every_problem_of_a_json_healthcheck_file_names_the_file_line_and_column() {
    let check = r#"{
  "type": "http",
  "query": "x.example",
  "port": 0,
  "expect": "99",
  "interval": 5,
  "timeout": "1 s",
  "rise": 101,
  "bogus": 1
}"#;
    let r = rendered(
        &[
            (
                "services/web/frontend",
                r#"{"ipv4": "10.0.0.1", "tcp": 80}"#,
            ),
            ("services/web/healthcheck", check),
            (
                "services/web/backends/a",
                r#"{"ipv4": "10.1.0.1", "healthcheck": "false"}"#,
            ),
        ],
        None,
    );
    assert_eq!(
        problems(&r),
        [
            "services/web/backends/a:1:22: healthcheck: expected true or false, found a string",
            "services/web/healthcheck:3:3: healthcheck: query does not apply to an http check",
            "services/web/healthcheck:4:3: healthcheck: port 0 out of range 1..65535",
            "services/web/healthcheck:5:3: healthcheck: expect: \"99\" is not an HTTP status code (100 to 599)",
            "services/web/healthcheck:6:3: healthcheck: interval: expected a duration such as 500ms, 5s or 1m, found a number",
            "services/web/healthcheck:7:3: healthcheck: timeout: \"1 s\" is not a duration: write a whole number and a unit (ms, s, m or h), such as 500ms, 5s or 1m",
            "services/web/healthcheck:8:3: healthcheck: rise 101 is outside 1 to 100",
            "services/web/healthcheck:9:3: unknown field \"bogus\", expected one of type, port, path, host, expect, query, interval, timeout, rise, fall, on_failure",
        ]
    );
    assert!(r.health.services.is_empty());
}

#[test]
fn a_dns_check_on_a_tcp_only_service_is_an_error_in_both_layouts() {
    let r = rendered(
        &[
            (
                "services/web.yaml",
                "frontend: {ipv4: 10.0.0.1, tcp: 53}\nhealthcheck:\n  type: dns\n  query: example.com\n",
            ),
            (
                "services/api/frontend",
                r#"{"ipv4": "10.0.0.2", "tcp": 53}"#,
            ),
            (
                "services/api/healthcheck",
                r#"{"type": "dns", "query": "example.com"}"#,
            ),
        ],
        None,
    );
    assert_eq!(
        problems(&r),
        [
            "services/api/healthcheck:1:2: healthcheck: a dns check queries over UDP, but the service has no udp port",
            "services/web.yaml:3:9: healthcheck: a dns check queries over UDP, but the service has no udp port",
        ]
    );
}

#[test]
fn a_healthcheck_file_beside_a_yaml_service_or_without_a_frontend_is_reported() {
    let r = rendered(
        &[
            ("services/web.yaml", "frontend: {ipv4: 10.0.0.1, tcp: 80}\n"),
            ("services/web/healthcheck", r#"{"type": "tcp"}"#),
            ("services/ghost/healthcheck", r#"{"type": "tcp"}"#),
            ("services/api/healthchecks", r#"{"type": "tcp"}"#),
        ],
        Some(&[("services/web/healthcheck", r#"{"type": "tcp"}"#)]),
    );
    assert_eq!(
        problems(&r),
        [
            "warning: overlay:services/web/healthcheck: overlay health check for service \"web\" ignored: the config repo defines health checks",
            "services/api/healthchecks: not part of the config layout, so it is not read: did you mean services/api/healthcheck?",
            "warning: services/ghost/healthcheck: health check of service \"ghost\", which has no frontend: ignored",
            "services/web.yaml: service \"web\" is defined in both layouts: services/web.yaml and services/web/healthcheck",
        ]
    );
}

#[test]
fn a_service_left_out_for_having_no_dests_has_no_check_either() {
    let opts = Options {
        elide_empty: true,
        ..Options::default()
    };
    let config = tree(
        "cfg",
        &[(
            "services/web.yaml",
            "frontend: {ipv4: 10.0.0.1, tcp: 80, udp: 80}\nhealthcheck: {type: tcp}\nbackends:\n  a: {ipv4: 10.1.0.1, tcp: 80}\n",
        )],
    );
    let r = render(&config, None, &opts);
    let keys: Vec<ServiceKey> = r.health.services.keys().copied().collect();
    assert_eq!(keys, [key(Protocol::Tcp, "10.0.0.1:80")]);
    assert_eq!(r.state.services.keys().copied().collect::<Vec<_>>(), keys);
}
