//! The published JSON Schemas (`schema/*.json`): they are up to date with the
//! Rust types, and they accept and reject exactly what the parser does.
//!
//! The second check runs a corpus of YAML documents (valid ones, and each
//! field's bad values, missing required fields, unknown fields and wrong
//! types) through both the parser (`config::parse_config` on a tree holding
//! the document at its layout path) and the jsonschema crate with format
//! validation on (the document converted to JSON with serde-saphyr). Where
//! the two cannot agree, the case is listed in `KNOWN_GAPS` with the reason;
//! the test fails if a listed gap closes, so the list stays true. A property
//! test does the same for random IPv4/IPv6 prefixes, where the schema's CIDR
//! pattern must match exactly what the parser takes.
//!
//! What a schema of one file cannot see, and only `clusterf validate`
//! checks: names taken from file names (`services/<name>.yaml`), two services
//! claiming one address:port:protocol, a service in both layouts, two routes
//! for one prefix, addresses of a class IPVS cannot use (0.0.0.0,
//! multicast, broadcast, IPv4-mapped IPv6, link-local dests), and YAML-level problems (syntax, duplicate keys, several
//! documents in one file), which never reach a schema as JSON.

use std::fs;
use std::path::Path;

use clusterf::config;
use clusterf::tree::Tree;
use serde_json::Value;

const REGENERATE: &str = "cargo run -- schema --write schema";

#[test]
fn committed_schemas_are_up_to_date() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema");
    let mut stale = Vec::new();
    for (name, schema) in config::schemas() {
        let want = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        match fs::read_to_string(dir.join(name)) {
            Ok(have) if have == want => {}
            Ok(_) => stale.push(format!("schema/{name} is stale")),
            Err(e) => stale.push(format!("schema/{name}: {e}")),
        }
    }
    assert!(
        stale.is_empty(),
        "{}\nregenerate with `{REGENERATE}` and commit schema/",
        stale.join("\n")
    );
}

#[test]
fn schema_file_names_match_the_editor_headers() {
    // `# yaml-language-server: $schema=.../schema/<name>` headers in config
    // repos depend on these names.
    let names: Vec<&str> = config::schemas().iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "service.schema.json",
            "route.schema.json",
            "clusterf.schema.json",
            "healthcheck.schema.json",
            "backend.schema.json",
            "frontend.schema.json",
            "fallback.schema.json",
        ]
    );
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Service,
    Route,
    Defaults,
    /// The JSON layout's `healthcheck` file (JSON is YAML).
    Healthcheck,
    /// The JSON layout's `frontend` file.
    Frontend,
    /// The JSON layout's `fallback` file.
    Fallback,
}

impl Kind {
    fn path(self) -> &'static str {
        match self {
            Kind::Service => "services/web.yaml",
            Kind::Route => "routes/r.yaml",
            Kind::Defaults => "clusterf.yaml",
            Kind::Healthcheck => "services/web/healthcheck",
            Kind::Frontend => "services/web/frontend",
            Kind::Fallback => "services/web/fallback",
        }
    }

    fn schema_name(self) -> &'static str {
        match self {
            Kind::Service => "service.schema.json",
            Kind::Route => "route.schema.json",
            Kind::Defaults => "clusterf.schema.json",
            Kind::Healthcheck => "healthcheck.schema.json",
            Kind::Frontend => "frontend.schema.json",
            Kind::Fallback => "fallback.schema.json",
        }
    }
}

/// Documents where schema and parser disagree by design: (kind, document,
/// reason). Only the address classes IPVS cannot use (`model::addr`): the
/// schema checks that an address is one, the parser also which kind.
const KNOWN_GAPS: &[(Kind, &str, &str)] = &[
    (Kind::Service, "frontend: {ipv4: 0.0.0.0, tcp: 80}", CLASS),
    (
        Kind::Service,
        "frontend: {ipv4: 255.255.255.255, tcp: 80}",
        CLASS,
    ),
    (Kind::Service, "frontend: {ipv6: \"::\", udp: 53}", CLASS),
    (
        Kind::Service,
        "frontend: {ipv6: \"::ffff:10.0.0.1\", udp: 53}",
        CLASS,
    ),
    (
        Kind::Service,
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends:\n  a: {ipv4: 0.0.0.0}",
        CLASS,
    ),
    (
        Kind::Service,
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends:\n  a: {ipv4: 255.255.255.255}",
        CLASS,
    ),
    (
        Kind::Service,
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends:\n  a: {ipv6: \"::\", tcp: 80}",
        CLASS,
    ),
    (
        Kind::Service,
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends:\n  a: {ipv6: \"::ffff:10.0.0.1\", tcp: 80}",
        CLASS,
    ),
    (
        Kind::Service,
        "frontend: {ipv4: 10.0.0.1, tcp: 80, udp: 80}\nhealthcheck: {type: tcp, interval: 1s}",
        CHECK_BOUNDS,
    ),
    (
        Kind::Service,
        "frontend: {ipv4: 10.0.0.1, tcp: 80, udp: 80}\nhealthcheck: {type: tcp, interval: 50ms, timeout: 10ms}",
        CHECK_BOUNDS,
    ),
    (
        Kind::Service,
        "frontend: {ipv4: 10.0.0.1, tcp: 80, udp: 80}\nhealthcheck: {type: dns, query: \"a b\"}",
        DNS_NAME,
    ),
    (Kind::Healthcheck, "{type: tcp, interval: 1s}", CHECK_BOUNDS),
    (
        Kind::Healthcheck,
        "{type: tcp, interval: 50ms, timeout: 10ms}",
        CHECK_BOUNDS,
    ),
    (Kind::Healthcheck, "{type: dns, query: \"a b\"}", DNS_NAME),
    (
        Kind::Frontend,
        "{IPv4: 10.0.0.1, TCP: 80, Scheduler: rr}",
        ANY_CASE,
    ),
    (
        Kind::Service,
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nfallback: {ipv6: \"2001:db8::9\", tcp: 80}",
        FALLBACK_FIT,
    ),
    (
        Kind::Service,
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nfallback: {ipv4: 10.9.0.1, udp: 80}",
        FALLBACK_FIT,
    ),
    (
        Kind::Service,
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nfallback: {ipv4: 10.9.0.1}",
        FALLBACK_FIT,
    ),
    (
        Kind::Service,
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends: {a: {ipv4: 10.1.0.1, tcp: 80}}\nfallback: {ipv4: 10.1.0.1, tcp: 80}",
        FALLBACK_FIT,
    ),
    (
        Kind::Service,
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nfallback: {ipv4: 0.0.0.0, tcp: 80}",
        CLASS,
    ),
];

const FALLBACK_FIT: &str =
    "a fallback against its frontend and backends: the schema checks the fallback alone";

const CLASS: &str = "an address IPVS cannot use there: the schema checks the format only";

const CHECK_BOUNDS: &str =
    "a duration's bounds, and the timeout against the interval: the schema checks the format only";
const DNS_NAME: &str = "a DNS name's labels: the schema checks the length only";
const ANY_CASE: &str =
    "the JSON layout matches keys without case, as Go did; the schema names them in lower case";

/// Health checks, as the `healthcheck:` of a service (`$V`) and as the
/// JSON layout's file.
const CHECKS: &[&str] = &[
    "{type: tcp}",
    "{type: http, path: /x, host: a.example, expect: 200}",
    "{type: http, expect: 200-399}",
    "{type: https, expect: \"200, 204,300-399\"}",
    "{type: https, expect: 99}",
    "{type: https, expect: \"2xx\"}",
    "{type: http, path: x}",
    "{type: http, path: \"/a b\"}",
    "{type: http, host: \"\"}",
    "{type: tcp, path: /x}",
    "{type: tcp, expect: 200}",
    "{type: dns, query: example.com}",
    "{type: dns, query: \"a b\"}",
    "{type: dns}",
    "{type: dns, host: a}",
    "{type: http, query: example.com}",
    "{type: none}",
    "{type: none, interval: 5s}",
    "{type: none, port: 80}",
    "{interval: 5s}",
    "{type: ping}",
    "{type: TCP}",
    "{type: 1}",
    "{type: tcp, interval: 5}",
    "{type: tcp, interval: 1s, timeout: 500ms}",
    "{type: tcp, interval: 1m, timeout: 10s}",
    "{type: tcp, interval: 5sec}",
    "{type: tcp, interval: 05s}",
    "{type: tcp, interval: 1s}",
    "{type: tcp, interval: 50ms, timeout: 10ms}",
    "{type: tcp, rise: 0}",
    "{type: tcp, rise: 100, fall: 1}",
    "{type: tcp, fall: 101}",
    "{type: tcp, port: 0}",
    "{type: tcp, port: 8080}",
    "{type: tcp, port: \"80\"}",
    "{type: tcp, on_failure: remove}",
    "{type: tcp, on_failure: drain}",
    "{type: tcp, on_failure: kill}",
    "{type: tcp, bogus: 1}",
    "{type: tcp, path: null, query: ~}",
    "{type: none, interval: ~}",
    "{type: dns, query: null}",
    "{}",
    "5",
    "[]",
];

/// Fallbacks, as the `fallback:` of a service (`$V`, whose frontend is
/// 10.0.0.1 tcp 80) and as the JSON layout's file.
const FALLBACKS: &[&str] = &[
    "{ipv4: 10.9.0.1, tcp: 80}",
    "{ipv4: 10.9.0.1, tcp: 8080, weight: 1, method: masq}",
    "{ipv4: 10.9.0.1, tcp: 80, weight: 65535, method: droute}",
    "{ipv4: 10.9.0.1, ipv6: \"2001:db8::9\", tcp: 80, method: tunnel}",
    "{ipv4: 10.9.0.1, tcp: 80, weight: 0}",
    "{ipv4: 10.9.0.1, tcp: 80, weight: 65536}",
    "{ipv4: 10.9.0.1, tcp: 80, weight: \"1\"}",
    "{ipv4: 10.9.0.1, tcp: 80, method: nat}",
    "{ipv4: 10.9.0.1, tcp: 80, method: none}",
    "{ipv4: 10.9.0.1, tcp: 0}",
    "{ipv4: 10.9.0.300, tcp: 80}",
    "{ipv4: \"2001:db8::9\", tcp: 80}",
    "{tcp: 80}",
    "{ipv4: 10.9.0.1, tcp: 80, bogus: 1}",
    "{ipv4: 10.9.0.1, tcp: 80, healthcheck: false}",
    "{}",
    "[10.9.0.1]",
    "5",
];

/// Whether the parser accepts the document (no errors; warnings are fine),
/// and its errors.
fn parser_verdict(kind: Kind, doc: &str) -> (bool, Vec<String>) {
    let mut tree = Tree::new("corpus");
    // The JSON layout's file: the document as JSON, as it converts.
    let json = matches!(kind, Kind::Healthcheck | Kind::Frontend | Kind::Fallback)
        .then(|| serde_saphyr::from_str::<Value>(doc).ok())
        .flatten()
        .map(|v| v.to_string());
    tree.insert(kind.path(), json.as_deref().unwrap_or(doc).as_bytes());
    let (_, diags) = config::parse_config(&tree);
    let errors: Vec<String> = diags.errors().map(|d| d.to_string()).collect();
    (errors.is_empty(), errors)
}

/// Whether the schema accepts the document; `None` when it is not YAML that
/// converts to JSON (then only the parser can judge it).
fn schema_verdict(
    validators: &[(Kind, jsonschema::Validator)],
    kind: Kind,
    doc: &str,
) -> Option<(bool, Vec<String>)> {
    let value: Value = serde_saphyr::from_str(doc).ok()?;
    let v = &validators.iter().find(|(k, _)| *k == kind).unwrap().1;
    let errors: Vec<String> = v.iter_errors(&value).map(|e| e.to_string()).collect();
    Some((errors.is_empty(), errors))
}

fn validators() -> Vec<(Kind, jsonschema::Validator)> {
    let schemas = config::schemas();
    [
        Kind::Service,
        Kind::Route,
        Kind::Defaults,
        Kind::Healthcheck,
        Kind::Frontend,
        Kind::Fallback,
    ]
    .into_iter()
    .map(|kind| {
        let schema = &schemas
            .iter()
            .find(|(n, _)| *n == kind.schema_name())
            .unwrap()
            .1;
        let v = jsonschema::options()
            .should_validate_formats(true)
            .build(schema)
            .unwrap_or_else(|e| panic!("{}: invalid schema: {e}", kind.schema_name()));
        (kind, v)
    })
    .collect()
}

/// Replaces `$V` in each template with each value.
fn vary(kind: Kind, templates: &[&str], values: &[&str], out: &mut Vec<(Kind, String)>) {
    for t in templates {
        for v in values {
            out.push((kind, t.replace("$V", v)));
        }
    }
}

const ADDRESSES: &[&str] = &[
    "10.0.0.1",
    "\"10.0.0.1\"",
    "0.0.0.0",
    "255.255.255.255",
    "10.0.0.256",
    "010.0.0.1",
    "1.2.3",
    "\"10.0.0.1 \"",
    "\"2001:db8::1\"",
    "\"::\"",
    "\"::1.2.3.4\"",
    "\"::ffff:10.0.0.1\"",
    "\"1:2:3:4:5:6:1.2.3.4\"",
    "\"fe80::1%eth0\"",
    "\"2001:db8::g\"",
    "\"1::2::3\"",
    "\"2001:db8:0:0:0:0:0:0:1\"",
    "\"[2001:db8::1]\"",
    "\"\"",
    "null",
    "~",
    "1",
    "167772161",
    "true",
    "[10.0.0.1]",
    "{a: b}",
];

const PORTS: &[&str] = &[
    "0",
    "1",
    "80",
    "65535",
    "65536",
    "-1",
    "0x50",
    "0o120",
    "+80",
    "80.0",
    "80.5",
    "1e2",
    "\"80\"",
    "eighty",
    "null",
    "true",
    "[80]",
    "{a: 1}",
    "99999999999999999999",
];

const WEIGHTS: &[&str] = &[
    "0", "1", "10", "65535", "65536", "-1", "null", "\"10\"", "1.5", "[1]", "1e3",
];

const SCHEDULERS: &[&str] = &[
    "wlc", "rr", "twos", "mh", "WLC", "fastest", "\"\"", "null", "1", "[wlc]",
];

const PERSISTENCE: &[&str] = &[
    "0", "1", "300", "2678400", "2678401", "-1", "null", "\"300\"", "1.5",
];

const PREFIXES: &[&str] = &[
    "10.0.0.0/8",
    "10.0.0.1/8",
    "0.0.0.0/0",
    "10.0.0.0/32",
    "10.0.0.0/33",
    "10.0.0.0/08",
    "10.0.0.0/",
    "/8",
    "10.0.0.0",
    "10.0.0.256/8",
    "010.0.0.0/8",
    "\"2001:db8::/32\"",
    "\"2001:db8::/128\"",
    "\"2001:db8::/129\"",
    "\"::/0\"",
    "\"::ffff:10.0.0.0/104\"",
    "\"2001:db8::g/32\"",
    "\"2001:db8::/-1\"",
    "\"\"",
    "null",
    "1",
    "[10.0.0.0/8]",
];

const GATEWAYS: &[&str] = &[
    "10.0.0.1",
    "\"2001:db8::1\"",
    "gw.example.com",
    "10.0.0.256",
    "\"\"",
    "null",
    "1",
];

const ROUTE_METHODS: &[&str] = &[
    "masq", "droute", "tunnel", "none", "nat", "Masq", "\"\"", "null", "1",
];

const TUNNELS: &[&str] = &[
    "{type: ipip}",
    "{type: gue, port: 6080}",
    "{type: gue, port: 6080, checksum: csum}",
    "{type: gue, port: 6080, checksum: remcsum}",
    "{type: gue, checksum: none}",
    "{type: gue, port: 0}",
    "{type: gue, port: 65536}",
    "{type: gue, port: \"6080\"}",
    "{type: gre}",
    "{type: gre, checksum: csum}",
    "{type: gre, checksum: remcsum}",
    "{type: gre, port: 6080}",
    "{type: ipip, checksum: none}",
    "{type: ipip, port: 1}",
    "{type: vxlan}",
    "{type: gue, port: null}",
    "{type: gre, port: null, checksum: null}",
    "{type: gre, checksum: crc}",
    "{port: 6080}",
    "{type: gre, prot: 1}",
    "{}",
    "null",
    "gue",
    "[gue]",
];

const DEFAULT_METHODS: &[&str] = &["masq", "droute", "tunnel", "none", "nat", "null", "1"];

fn corpus() -> Vec<(Kind, String)> {
    let mut c = Vec::new();
    // Service files: each frontend and backend field.
    vary(
        Kind::Service,
        &[
            "frontend: {ipv4: $V, tcp: 80}",
            "frontend: {ipv6: $V, udp: 53}",
            "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends:\n  a: {ipv4: $V}",
            "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends:\n  a: {ipv6: $V, tcp: 80}",
        ],
        ADDRESSES,
        &mut c,
    );
    vary(
        Kind::Service,
        &[
            "frontend: {ipv4: 10.0.0.1, tcp: $V}",
            "frontend: {ipv4: 10.0.0.1, udp: $V}",
            "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends:\n  a: {ipv4: 10.1.0.1, tcp: $V}",
            "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends:\n  a: {ipv4: 10.1.0.1, udp: $V}",
        ],
        PORTS,
        &mut c,
    );
    vary(
        Kind::Service,
        &[
            "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends:\n  a: {ipv4: 10.1.0.1, tcp: 80, weight: $V}",
        ],
        WEIGHTS,
        &mut c,
    );
    vary(
        Kind::Service,
        &["frontend: {ipv4: 10.0.0.1, tcp: 80}\nscheduler: $V"],
        SCHEDULERS,
        &mut c,
    );
    vary(
        Kind::Service,
        &["frontend: {ipv4: 10.0.0.1, tcp: 80}\npersistence: $V"],
        PERSISTENCE,
        &mut c,
    );
    // Service structure: required, unknown and wrongly typed fields.
    for doc in [
        "frontend: {ipv4: 10.0.0.1, ipv6: \"2001:db8::1\", tcp: 80, udp: 53}",
        "frontend:\n  ipv4: 10.0.0.1\n  tcp: 80\nscheduler: wrr\npersistence: 60\nbackends:\n  a:\n    ipv4: 10.1.0.1\n    ipv6: \"2001:db8:1::1\"\n    tcp: 8080\n    udp: 5353\n    weight: 3",
        "frontend: {ipv4: 10.0.0.1}",
        "frontend: {tcp: 80}",
        "frontend: {}",
        "frontend: {ipv4: null, tcp: 80}",
        "frontend: {ipv4: 10.0.0.1, tcp: null}",
        "frontend: {ipv4: 10.0.0.1, ipv6: null, tcp: 80, udp: null}",
        "frontend: null",
        "frontend: [10.0.0.1, 80]",
        "frontend: 10.0.0.1:80",
        "backends: {}",
        "{}",
        "",
        "null",
        "[]",
        "- frontend: {ipv4: 10.0.0.1, tcp: 80}",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nfrontends: {}",
        "frontend: {ipv4: 10.0.0.1, tcp: 80, port: 80}",
        "frontend: {ipv4: 10.0.0.1, tcp: 80, weight: 10}",
        "frontend: {ipv4: 10.0.0.1, tcp: 80, IPv4: 10.0.0.2}",
        "Frontend: {ipv4: 10.0.0.1, tcp: 80}",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends: {a: {ipv4: 10.1.0.1, wieght: 5}}",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends: {a: {tcp: 80}}",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends: {a: {}}",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends: {a: null}",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends: null",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends: []",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends: [{ipv4: 10.1.0.1}]",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends: {a: {ipv4: 10.1.0.1, ipv6: \"2001:db8::2\"}}",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends: {\"bad name\": {ipv4: 10.1.0.1}}",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends: {1: {ipv4: 10.1.0.1}}",
        "frontend: &f {ipv4: 10.0.0.1, tcp: 80}\nbackends: {a: *f}",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\n---\nfrontend: {ipv4: 10.0.0.2, tcp: 80}",
        "frontend: {ipv4: 10.0.0.1, tcp: 80, tcp: 81}",
        "frontend: {ipv4: 10.0.0.1, tcp: 80",
    ] {
        c.push((Kind::Service, doc.to_string()));
    }
    // The JSON layout's frontend file: a frontend and the service options.
    for doc in [
        "{ipv4: 10.0.0.1, tcp: 80}",
        "{ipv6: \"2001:db8::1\", udp: 53, tcp: 53}",
        "{ipv4: 10.0.0.1}",
        "{tcp: 80}",
        "{}",
        "{ipv4: 10.0.0.1, tcp: 80, weight: 1}",
        "{ipv4: 10.0.0.1, tcp: 70000}",
        "{ipv4: 10.0.0.1, tcp: 80, scheduler: wrr, persistence: 60}",
        "{ipv4: 10.0.0.1, tcp: 80, scheduler: fastest}",
        "{ipv4: 10.0.0.1, tcp: 80, persistence: 0}",
        "{fwmark_ipv4: 7}",
        "{fwmark_ipv4: 7, fwmark_ipv6: 8, scheduler: sh, scheduler_flags: \"sh-port,sh-fallback\"}",
        "{fwmark_ipv4: 0}",
        "{fwmark_ipv4: 7, tcp: 80}",
        "{fwmark_ipv4: 7, ipv4: 10.0.0.1, tcp: 80}",
        "{fwmark_ipv4: 7, persistence: 60, persistence_netmask_ipv4: 24}",
        "{fwmark_ipv6: 7, persistence: 60, persistence_netmask_ipv6: 0}",
        "{fwmark_ipv4: 7, persistence_netmask_ipv4: 24}",
        "{ipv4: 10.0.0.1, udp: 5060, persistence: 60, persistence_engine: sip, ops: true}",
        "{ipv4: 10.0.0.1, tcp: 5060, persistence: 60, persistence_engine: sip}",
        "{ipv4: 10.0.0.1, tcp: 53, ops: true}",
        "{ipv4: 10.0.0.1, tcp: 53, ops: false}",
        "{ipv4: 10.0.0.1, udp: 53, ops: 1}",
        "{ipv4: 10.0.0.1, tcp: 80, scheduler: mh, scheduler_flags: mh-port}",
        "{ipv4: 10.0.0.1, tcp: 80, scheduler: mh, scheduler_flags: sh-port}",
        "{ipv4: 10.0.0.1, tcp: 80, scheduler_flags: mh-port}",
        "{IPv4: 10.0.0.1, TCP: 80, Scheduler: rr}",
        "{ipv4: 10.0.0.1, tcp: 80, default_weight: 0}",
        "{ipv4: 10.0.0.1, tcp: 80, default_weight: 65536}",
        "{ipv4: 10.0.0.1, tcp: 80, default_weight: \"5\"}",
    ] {
        c.push((Kind::Frontend, doc.to_string()));
    }
    // The IPVS options (issue 19): fwmark frontends, persistence netmask
    // and engine, one-packet scheduling, scheduler flags, thresholds.
    for doc in [
        "frontend: {fwmark_ipv4: 1}",
        "frontend: {fwmark_ipv6: 4294967295}",
        "frontend: {fwmark_ipv4: 7, fwmark_ipv6: 7}\nbackends: {a: {ipv4: 10.1.0.1}, b: {ipv6: \"2001:db8::2\", tcp: 80}}",
        "frontend: {fwmark_ipv4: 0}",
        "frontend: {fwmark_ipv4: 4294967296}",
        "frontend: {fwmark_ipv4: \"7\"}",
        "frontend: {fwmark_ipv4: null}",
        "frontend: {fwmark_ipv4: 7, ipv4: 10.0.0.1}",
        "frontend: {fwmark_ipv4: 7, tcp: 80}",
        "frontend: {fwmark_ipv4: 7, ipv4: 10.0.0.1, tcp: 80}",
        "frontend: {fwmark_ipv4: 7, ipv4: null, tcp: null}",
        "frontend: {ipv4: 10.0.0.1, tcp: 80, fwmark_ipv6: null}",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\npersistence: 60\npersistence_netmask_ipv4: 24",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\npersistence: 60\npersistence_netmask_ipv4: 0",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\npersistence: 60\npersistence_netmask_ipv4: 33",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\npersistence_netmask_ipv4: 24",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\npersistence: null\npersistence_netmask_ipv4: 24",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\npersistence_netmask_ipv4: null",
        "frontend: {ipv6: \"2001:db8::1\", tcp: 80}\npersistence: 60\npersistence_netmask_ipv6: 64",
        "frontend: {ipv6: \"2001:db8::1\", tcp: 80}\npersistence: 60\npersistence_netmask_ipv6: 0",
        "frontend: {ipv6: \"2001:db8::1\", tcp: 80}\npersistence: 60\npersistence_netmask_ipv6: 129",
        "frontend: {ipv6: \"2001:db8::1\", tcp: 80}\npersistence: 60\npersistence_netmask_ipv6: \"64\"",
        "frontend: {ipv4: 10.0.0.1, udp: 5060}\npersistence: 60\npersistence_engine: sip",
        "frontend: {ipv4: 10.0.0.1, udp: 5060}\npersistence_engine: sip",
        "frontend: {ipv4: 10.0.0.1, udp: 5060}\npersistence: 60\npersistence_engine: ftp",
        "frontend: {ipv4: 10.0.0.1, udp: 53}\nops: true",
        "frontend: {ipv4: 10.0.0.1, udp: 53}\nops: false",
        "frontend: {ipv4: 10.0.0.1, udp: 53}\nops: 1",
        "frontend: {ipv4: 10.0.0.1, udp: 53, tcp: 53}\nops: true",
        "frontend: {fwmark_ipv4: 1}\nops: true",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nops: true",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nops: false",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\npersistence: 60\npersistence_engine: sip",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nscheduler: sh\nscheduler_flags: sh-port",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nscheduler: sh\nscheduler_flags: sh-fallback, sh-port",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nscheduler: mh\nscheduler_flags: mh-port,mh-fallback",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nscheduler: mh\nscheduler_flags: sh-port",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nscheduler_flags: sh-port",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nscheduler: sh\nscheduler_flags: sh-port;sh-fallback",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nscheduler: sh\nscheduler_flags: \"\"",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nscheduler: sh\nscheduler_flags: [sh-port]",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends: {a: {ipv4: 10.1.0.1, tcp: 80, upper_threshold: 10, lower_threshold: 5}}",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends: {a: {ipv4: 10.1.0.1, upper_threshold: 2147483647}}",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends: {a: {ipv4: 10.1.0.1, upper_threshold: 2147483648}}",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends: {a: {ipv4: 10.1.0.1, upper_threshold: -1}}",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends: {a: {ipv4: 10.1.0.1, upper_threshold: 0, lower_threshold: 0}}",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends: {a: {ipv4: 10.1.0.1, lower_threshold: \"5\"}}",
    ] {
        c.push((Kind::Service, doc.to_string()));
    }
    // Health checks and backends opting out of them.
    vary(
        Kind::Service,
        &["frontend: {ipv4: 10.0.0.1, tcp: 80, udp: 80}\nhealthcheck: $V"],
        CHECKS,
        &mut c,
    );
    vary(Kind::Healthcheck, &["$V"], CHECKS, &mut c);
    vary(
        Kind::Service,
        &["frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends:\n  a: {ipv4: 10.1.0.1, healthcheck: $V}"],
        &["false", "true", "null", "0", "\"false\"", "[false]"],
        &mut c,
    );
    c.push((
        Kind::Service,
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nhealthcheck: null".to_string(),
    ));
    // Fallbacks, as the `fallback:` of a service and as the JSON layout's
    // file.
    vary(
        Kind::Service,
        &["frontend: {ipv4: 10.0.0.1, tcp: 80}\nfallback: $V"],
        FALLBACKS,
        &mut c,
    );
    vary(Kind::Fallback, &["$V"], FALLBACKS, &mut c);
    for doc in [
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nfallback: {ipv6: \"2001:db8::9\", tcp: 80}",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nfallback: {ipv4: 10.9.0.1, udp: 80}",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nfallback: {ipv4: 10.9.0.1}",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends: {a: {ipv4: 10.1.0.1, tcp: 80}}\nfallback: {ipv4: 10.1.0.1, tcp: 80}",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nfallback: {ipv4: 0.0.0.0, tcp: 80}",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\nfallback: null",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\ndefault_weight: 0",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\ndefault_weight: 65535\nbackends: {a: {ipv4: 10.1.0.1}}",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\ndefault_weight: 65536",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\ndefault_weight: -1",
        "frontend: {ipv4: 10.0.0.1, tcp: 80}\ndefault_weight: \"5\"",
    ] {
        c.push((Kind::Service, doc.to_string()));
    }
    // Route files.
    vary(Kind::Route, &["prefix: $V\nmethod: masq"], PREFIXES, &mut c);
    vary(
        Kind::Route,
        &[
            "prefix: 10.0.0.0/8\ngateway: $V\nmethod: droute",
            "prefix: \"2001:db8::/32\"\ngateway: $V\nmethod: droute",
            "gateway: $V\nmethod: droute",
        ],
        GATEWAYS,
        &mut c,
    );
    vary(
        Kind::Route,
        &["prefix: 10.0.0.0/8\nmethod: $V", "method: $V"],
        ROUTE_METHODS,
        &mut c,
    );
    for doc in [
        "prefix: 10.0.0.0/8",
        "gateway: 10.0.0.1",
        "{}",
        "",
        "null",
        "[]",
        "method: masq\nmetod: masq",
        "prefix: 10.0.0.0/8\nmethod: masq\nPrefix: 10.0.0.0/8",
        "Prefix: 10.0.0.0/8\nIPVSMethod: masq",
        "prefix: 10.0.0.0/8\ngateway: 10.0.0.1\nmethod: none",
        "prefix: 10.0.0.0/8\ngateway: \"2001:db8::1\"\nmethod: none",
        "prefix: [10.0.0.0/8]\nmethod: masq",
        "prefix: 10.0.0.0/8\nmethod: [masq]",
    ] {
        c.push((Kind::Route, doc.to_string()));
    }
    // Tunnel blocks: each type with and without a port and checksum.
    vary(
        Kind::Route,
        &[
            "prefix: 10.0.0.0/8\nmethod: tunnel\ntunnel: $V",
            "prefix: 10.0.0.0/8\nmethod: droute\ntunnel: $V",
        ],
        TUNNELS,
        &mut c,
    );
    // clusterf.yaml.
    vary(Kind::Defaults, &["scheduler: $V"], SCHEDULERS, &mut c);
    vary(Kind::Defaults, &["method: $V"], DEFAULT_METHODS, &mut c);
    for doc in [
        "{}",
        "",
        "null",
        "scheduler: rr\nmethod: droute",
        "scheduler: rr\nmetod: droute",
        "default-scheduler: rr",
        "[]",
    ] {
        c.push((Kind::Defaults, doc.to_string()));
    }
    c
}

#[test]
fn schemas_accept_exactly_what_the_parser_accepts() {
    let validators = validators();
    let mut disagreements = Vec::new();
    let mut gaps_seen = Vec::new();
    let (mut compared, mut accepted) = (0, 0);
    for (kind, doc) in corpus() {
        let (parsed, parse_errors) = parser_verdict(kind, &doc);
        let Some((valid, schema_errors)) = schema_verdict(&validators, kind, &doc) else {
            // Not convertible to JSON (a YAML syntax error, duplicate keys,
            // several documents): no editor schema can judge it, and the
            // parser must reject it.
            assert!(
                !parsed,
                "{kind:?} {doc:?}: not convertible YAML, yet the parser accepts it"
            );
            continue;
        };
        compared += 1;
        accepted += usize::from(parsed);
        let gap = KNOWN_GAPS.iter().find(|(k, d, _)| *k == kind && *d == doc);
        match (parsed == valid, gap) {
            (true, None) => {}
            (false, Some(_)) => gaps_seen.push((kind, doc.clone())),
            (true, Some((_, _, why))) => disagreements.push(format!(
                "{kind:?} {doc:?}: listed in KNOWN_GAPS ({why}) but schema and parser now agree: remove it"
            )),
            (false, None) => disagreements.push(format!(
                "{kind:?} {doc:?}: parser {} ({}), schema {} ({})",
                if parsed { "accepts" } else { "rejects" },
                parse_errors.join("; "),
                if valid { "accepts" } else { "rejects" },
                schema_errors.join("; "),
            )),
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} disagreements between schema/ and the parser:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    assert_eq!(
        gaps_seen.len(),
        KNOWN_GAPS.len(),
        "a KNOWN_GAPS entry is not in the corpus"
    );
    // The corpus is not degenerate: it holds both verdicts in numbers.
    assert!(compared > 300, "only {compared} documents compared");
    assert!(
        accepted > 50 && compared - accepted > 100,
        "{accepted} of {compared} accepted"
    );
}

/// Prefix-like strings: formatted addresses in their usual, expanded and
/// IPv4-mapped forms, with any length, then perhaps one character changed.
fn prefix_text() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let addr = prop_oneof![
        any::<u32>().prop_map(|a| std::net::Ipv4Addr::from(a).to_string()),
        any::<u128>().prop_map(|a| std::net::Ipv6Addr::from(a).to_string()),
        // Mostly-zero addresses, which compress with `::`.
        (any::<u16>(), 0usize..8, any::<u16>(), 0usize..8).prop_map(|(a, i, b, j)| {
            let mut g = [0u16; 8];
            g[i] = a;
            g[j] = b;
            std::net::Ipv6Addr::from(g).to_string()
        }),
        any::<[u16; 8]>().prop_map(|g| {
            g.iter()
                .map(|x| format!("{x:x}"))
                .collect::<Vec<_>>()
                .join(":")
        }),
        any::<u32>().prop_map(|a| format!("::ffff:{}", std::net::Ipv4Addr::from(a))),
        any::<(u16, u32)>().prop_map(|(h, a)| format!("{h:x}::{}", std::net::Ipv4Addr::from(a))),
    ];
    let len = prop_oneof![0u16..140, Just(0), Just(32), Just(128)].prop_map(|l| l.to_string());
    let edit = (
        any::<proptest::sample::Index>(),
        proptest::sample::select(&['0', '9', 'f', 'F', 'g', ':', '.', '/', ' ', '%'][..]),
    );
    (addr, len, proptest::option::of(edit)).prop_map(|(a, l, edit)| {
        let mut s = format!("{a}/{l}");
        if let Some((at, c)) = edit {
            let i = at.index(s.len());
            if s.is_char_boundary(i) {
                s.replace_range(i..=i.min(s.len() - 1), &c.to_string());
            }
        }
        s
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, ..Default::default() })]

    #[test]
    fn cidr_pattern_matches_exactly_the_prefixes_the_parser_takes(p in prefix_text()) {
        static VALIDATORS: std::sync::OnceLock<Vec<(Kind, jsonschema::Validator)>> =
            std::sync::OnceLock::new();
        let validators = VALIDATORS.get_or_init(validators);
        let doc = format!("prefix: {}\nmethod: masq", serde_json::to_string(&p).unwrap());
        let (parsed, errors) = parser_verdict(Kind::Route, &doc);
        let (valid, schema_errors) = schema_verdict(validators, Kind::Route, &doc)
            .unwrap_or_else(|| panic!("{doc:?} does not convert to JSON"));
        proptest::prop_assert_eq!(
            parsed, valid,
            "{:?}: parser {:?}, schema {:?}", p, errors, schema_errors
        );
    }
}

/// Every `# yaml-language-server: $schema=...` header in the examples and the
/// golden cases points, relative to its file, at the committed schema for
/// that file's kind, and the editor's verdict with it (the schema) is the
/// parser's.
#[test]
fn yaml_language_server_headers_point_at_the_right_schema() {
    const HEADER: &str = "# yaml-language-server: $schema=";
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let schema_dir = root.join("schema").canonicalize().unwrap();
    let validators = validators();
    let mut files = Vec::new();
    for top in ["examples", "tests/golden"] {
        walk(&root.join(top), &mut files);
    }
    let mut checked = 0;
    for file in files {
        let Ok(text) = fs::read_to_string(&file) else {
            continue;
        };
        let Some(target) = text.lines().next().and_then(|l| l.strip_prefix(HEADER)) else {
            continue;
        };
        let shown = file.strip_prefix(root).unwrap().display().to_string();
        let resolved = file
            .parent()
            .unwrap()
            .join(target.trim())
            .canonicalize()
            .unwrap_or_else(|e| panic!("{shown}: $schema={target}: {e}"));
        assert_eq!(
            resolved.parent(),
            Some(schema_dir.as_path()),
            "{shown}: $schema={target} is not in schema/"
        );
        let name = resolved.file_name().unwrap().to_str().unwrap();
        let parent = file.parent().unwrap().file_name().unwrap();
        let kind = if file.file_name().unwrap() == "clusterf.yaml" {
            Kind::Defaults
        } else if parent == "services" {
            Kind::Service
        } else if parent == "routes" {
            Kind::Route
        } else {
            panic!("{shown}: a schema header on a file of no known kind")
        };
        assert_eq!(name, kind.schema_name(), "{shown}: wrong schema");
        let (parsed, errors) = parser_verdict(kind, &text);
        let (valid, schema_errors) = schema_verdict(&validators, kind, &text)
            .unwrap_or_else(|| panic!("{shown}: not convertible to JSON"));
        assert_eq!(
            parsed, valid,
            "{shown}: parser {errors:?}, schema {schema_errors:?}"
        );
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} files with a schema header");
}

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            out.push(p);
        }
    }
}
