//! No input crashes the parsers: property tests over arbitrary bytes and
//! structured-random JSON and YAML, placed at every layout path (and random
//! ones) of a config tree and an overlay tree.
//!
//! Properties: parsing never panics; every diagnostic names a file of the
//! tree (`overlay:<key>` for overlay keys) and carries a lowercase message
//! without a trailing period; garbage at a config layout path is an error;
//! when a tree parses cleanly, compiling and formatting it does not panic
//! either, and is deterministic.

use clusterf::compile::Options;
use clusterf::config::{parse_config, parse_overlay};
use clusterf::diag::Diagnostics;
use clusterf::ipvsadm;
use clusterf::model::Method;
use clusterf::render::render;
use clusterf::tree::Tree;
use proptest::prelude::*;
use serde_json::{Map, Number, Value};

/// Every path the layouts give meaning to, and some near misses.
const LAYOUT_PATHS: &[&str] = &[
    "clusterf.yaml",
    "clusterf.yml",
    "services/web.yaml",
    "services/web.yml",
    "services/web/frontend",
    "services/web/backends/a",
    "services/web/backends/b",
    "services/api/frontend",
    "services/api/backends/a",
    "routes/r",
    "routes/r.yaml",
    "routes/r.yml",
    "routes/default",
    "services/web",
    "services/web/backends",
    "services/web/backends/a/b",
    "routes/r.txt",
    "README.md",
];

/// Paths where any content but a valid document is an error in a config tree.
fn strict_path(path: &str) -> bool {
    matches!(
        path,
        "clusterf.yaml"
            | "clusterf.yml"
            | "services/web.yaml"
            | "services/web.yml"
            | "services/web/frontend"
            | "services/api/frontend"
            | "routes/r"
            | "routes/r.yaml"
            | "routes/r.yml"
            | "routes/default"
    )
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(LAYOUT_PATHS).prop_map(str::to_string),
        1 => "(services|routes|[a-z]{1,3})(/[a-zA-Z0-9._@:-]{0,6}){0,3}",
    ]
}

const KEYS: &[&str] = &[
    "ipv4",
    "ipv6",
    "tcp",
    "udp",
    "weight",
    "IPv4",
    "TCP",
    "Weight",
    "Prefix",
    "Prefix4",
    "Prefix6",
    "Gateway",
    "Gateway4",
    "IPVSMethod",
    "IpvsMethod",
    "ipvsmethod",
    "IPVSTunnelType",
    "ipvstunnelport",
    "IPVSTunnelChecksum",
    "tunnel",
    "type",
    "checksum",
    "frontend",
    "backends",
    "scheduler",
    "persistence",
    "method",
    "prefix",
    "gateway",
    "a",
    "",
];

const STRINGS: &[&str] = &[
    "10.0.0.1",
    "10.0.0.256",
    "2001:db8::1",
    "::",
    "::ffff:1.2.3.4",
    "10.0.0.0/8",
    "10.0.0.1/8",
    "2001:db8::/32",
    "0.0.0.0/0",
    "::/0",
    "10.0.0.0/33",
    "masq",
    "droute",
    "tunnel",
    "none",
    "wlc",
    "rr",
    "",
    "\u{0}",
    "é",
    "\"",
    "*a",
    "&a",
    "!!str",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        prop::sample::select(
            &[
                0i64,
                1,
                10,
                53,
                80,
                65535,
                65536,
                -1,
                i64::MIN,
                i64::MAX,
                2678400,
                2678401
            ][..]
        )
        .prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(STRINGS).prop_map(|s| Value::String(s.to_string())),
        ".{0,12}".prop_map(Value::String),
    ]
}

/// Random JSON values whose keys are mostly the layouts' own.
fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        3 => prop::sample::select(KEYS).prop_map(str::to_string),
                        1 => "[a-zA-Z]{0,8}",
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|kvs| Value::Object(kvs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Document text: arbitrary bytes, random JSON, random YAML, and both with
/// a random cut and a random byte inserted.
fn json_doc() -> impl Strategy<Value = Vec<u8>> {
    value().prop_map(|v| serde_json::to_vec(&v).unwrap())
}

fn yaml_doc() -> impl Strategy<Value = Vec<u8>> {
    value().prop_map(|v| serde_saphyr::to_string(&v).unwrap_or_default().into_bytes())
}

fn document() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => prop::collection::vec(any::<u8>(), 0..200),
        3 => json_doc(),
        3 => yaml_doc(),
        2 => (prop_oneof![json_doc(), yaml_doc()], any::<prop::sample::Index>(), any::<u8>(), any::<bool>())
            .prop_map(|(mut doc, at, byte, cut)| {
                if doc.is_empty() {
                    return doc;
                }
                let i = at.index(doc.len());
                if cut {
                    doc.truncate(i);
                } else {
                    doc.insert(i, byte);
                }
                doc
            }),
        1 => prop::sample::select(YAML_SPECIALS).prop_map(|s| s.as_bytes().to_vec()),
    ]
}

/// YAML features the structured generator does not produce.
const YAML_SPECIALS: &[&str] = &[
    "frontend: &f {ipv4: 10.0.0.1, tcp: 80}\nbackends: {a: *f}",
    "frontend: *nothing",
    "frontend: !!str 80",
    "frontend: !custom {ipv4: 10.0.0.1, tcp: 80}",
    "frontend: {ipv4: 10.0.0.1, tcp: !!float 80}",
    "--- \nfrontend: {ipv4: 10.0.0.1, tcp: 80}\n...\n---\nmethod: masq",
    "%YAML 1.2\n---\nmethod: masq",
    "? [a, b]\n: c",
    "{[1]: 2}",
    "method: |\n  masq\n",
    "method: >-\n  masq",
    "prefix: 10.0.0.0/8\nmethod: masq\n# comment only",
    "\u{feff}method: masq",
    "method: masq\r\nprefix: 10.0.0.0/8\r\n",
    "\tmethod: masq",
    "a: &a [*a]",
    "<<: {method: masq}",
    "method: masq\n<<: {prefix: 10.0.0.0/8}",
];

fn tree(files: Vec<(String, Vec<u8>)>) -> Tree {
    let mut t = Tree::new("prop");
    for (p, d) in files {
        t.insert(p, d);
    }
    t
}

/// Every diagnostic names a file of the tree and reads as the project's
/// messages should.
fn check_diagnostics(diags: &Diagnostics, t: &Tree, prefix: &str) -> Result<(), TestCaseError> {
    for d in diags.iter() {
        let file = d.file.strip_prefix(prefix).unwrap_or("<none>");
        prop_assert!(
            t.files.contains_key(file) || t.unreadable.contains_key(file),
            "diagnostic names no file of the tree: {d}"
        );
        let first = d.message.chars().next();
        prop_assert!(first.is_some(), "empty message: {d}");
        prop_assert!(!first.unwrap().is_uppercase(), "message not lowercase: {d}");
        prop_assert!(!d.message.ends_with('.'), "trailing period: {d}");
    }
    Ok(())
}

fn options() -> impl Strategy<Value = Options> {
    (
        any::<bool>(),
        any::<bool>(),
        prop::option::of(prop::sample::select(&["rr", "wlc", "sh"][..])),
        prop::option::of(prop::sample::select(&Method::ALL[..])),
    )
        .prop_map(|(f, e, s, m)| Options {
            filter_overlay_routes: f,
            elide_empty: e,
            default_scheduler: s.map(str::to_string),
            default_method: m,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn config_parser_never_panics(files in prop::collection::vec((path(), document()), 0..6)) {
        let t = tree(files);
        let (_, diags) = parse_config(&t);
        check_diagnostics(&diags, &t, "")?;
    }

    #[test]
    fn overlay_parser_never_panics(files in prop::collection::vec((path(), document()), 0..6)) {
        let t = tree(files);
        let (overlay, diags) = parse_overlay(&t);
        check_diagnostics(&diags, &t, "overlay:")?;
        // Overlay problems are never errors: a bad key is skipped.
        prop_assert!(!diags.has_errors());
        prop_assert!(overlay.skipped <= t.files.len() + t.unreadable.len());
    }

    #[test]
    fn garbage_at_a_layout_path_is_an_error(
        p in prop::sample::select(LAYOUT_PATHS).prop_filter("strict", |p| strict_path(p)),
        junk in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        // Bytes that start with a NUL or a control character are never a
        // valid document in either format.
        let mut doc = vec![0u8];
        doc.extend(junk);
        let t = tree(vec![(p.to_string(), doc)]);
        let (_, diags) = parse_config(&t);
        prop_assert!(diags.errors().any(|d| d.file == p), "no error for {p}: {diags:?}");
    }

    #[test]
    fn render_never_panics_and_is_deterministic(
        config in prop::collection::vec((path(), document()), 1..6),
        overlay in prop::collection::vec((path(), document()), 0..6),
        opts in options(),
    ) {
        let (c, o) = (tree(config), tree(overlay));
        let a = render(&c, Some(&o), &opts);
        let b = render(&c, Some(&o), &opts);
        prop_assert_eq!(&a.state, &b.state);
        prop_assert_eq!(&a.diags, &b.diags);
        let _ = ipvsadm::format(&a.state);
    }
}

/// Valid documents with random values in every field: the parser and the
/// compiler take them without panicking, whatever the values.
fn field_value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(STRINGS).prop_map(|s| format!("{s:?}")),
        any::<i64>().prop_map(|n| n.to_string()),
        (0u32..70000).prop_map(|n| n.to_string()),
        Just("null".to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn every_field_of_every_file_type(
        v in prop::collection::vec(field_value(), 12),
        opts in options(),
    ) {
        let mut c = Tree::new("prop");
        c.insert("clusterf.yaml", format!("scheduler: {}\nmethod: {}", v[0], v[1]));
        c.insert(
            "services/web.yaml",
            format!(
                "frontend: {{ipv4: {}, ipv6: {}, tcp: {}, udp: {}}}\nscheduler: {}\npersistence: {}\nbackends:\n  a: {{ipv4: {}, ipv6: {}, tcp: {}, udp: {}, weight: {}}}",
                v[2], v[3], v[4], v[5], v[0], v[6], v[7], v[8], v[9], v[10], v[11]
            ),
        );
        c.insert("routes/r.yaml", format!("prefix: {}\ngateway: {}\nmethod: {}", v[2], v[7], v[1]));
        c.insert(
            "services/api/frontend",
            format!(r#"{{"ipv4": {}, "ipv6": {}, "tcp": {}, "udp": {}}}"#, v[3], v[2], v[5], v[4]),
        );
        let backend = format!(
            r#"{{"IPV4": {}, "Ipv6": {}, "tcp": {}, "udp": {}, "weight": {}}}"#,
            v[7], v[8], v[9], v[10], v[11]
        );
        c.insert("services/api/backends/a", backend.clone());
        let route = format!(r#"{{"Prefix4": {}, "Gateway": {}, "IpvsMethod": {}}}"#, v[7], v[2], v[1]);
        c.insert("routes/j", route.clone());
        let mut o = Tree::new("prop-overlay");
        o.insert("services/web/backends/b", backend);
        o.insert("routes/o", route);
        let r = render(&c, Some(&o), &opts);
        for d in r.diags.iter() {
            let (t, file) = match d.file.strip_prefix("overlay:") {
                Some(f) => (&o, f),
                None => (&c, d.file.as_str()),
            };
            // A YAML backend's diagnostic names its place in the file
            // (`services/web.yaml#backends.a`).
            let file = file.split('#').next().unwrap_or_default();
            prop_assert!(t.files.contains_key(file), "diagnostic names no file: {d}");
            prop_assert!(!d.message.starts_with(char::is_uppercase), "not lowercase: {d}");
        }
        let _ = ipvsadm::format(&r.state);
    }
}

#[test]
fn deeply_nested_documents_are_errors_not_crashes() {
    for depth in [64, 1_000, 100_000] {
        let yaml = "[".repeat(depth) + &"]".repeat(depth);
        let json = yaml.clone();
        let flow_map = "{a: ".repeat(depth) + &"}".repeat(depth);
        let block: String = (0..depth.min(5_000))
            .map(|i| format!("{}a:\n", " ".repeat(i)))
            .collect();
        let mut c = Tree::new("deep");
        c.insert("services/web.yaml", yaml);
        c.insert("services/api/frontend", json.clone());
        c.insert("routes/r.yaml", flow_map);
        c.insert("clusterf.yaml", block);
        let (_, diags) = parse_config(&c);
        // Every file is an error (a file may list more than one problem).
        let files: std::collections::BTreeSet<&str> =
            diags.errors().map(|d| d.file.as_str()).collect();
        assert_eq!(files.len(), 4, "depth {depth}: {diags:?}");
        let mut o = Tree::new("deep");
        o.insert("services/web/backends/a", json);
        let (_, diags) = parse_overlay(&o);
        assert_eq!(diags.len(), 2, "depth {depth}: {diags:?}");
    }
}

#[test]
fn alias_bombs_are_errors_not_hangs() {
    // "Billion laughs": nine levels of ten aliases each.
    let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let prev = format!("*a{}", i - 1);
        let list = [prev.as_str(); 10].join(", ");
        doc.push_str(&format!("a{i}: &a{i} [{list}]\n"));
    }
    let mut c = Tree::new("bomb");
    c.insert("services/web.yaml", doc.clone());
    c.insert("routes/r.yaml", doc.clone());
    c.insert("clusterf.yaml", doc);
    let (_, diags) = parse_config(&c);
    assert_eq!(diags.errors().count(), 3, "{diags:?}");

    // The same bomb where a field takes any value (integer fields read
    // whatever is there to report it by name): the anchors are defined and
    // used inside the port's own value.
    let mut list = String::from("&a0 [x, x, x, x, x, x, x, x, x, x]");
    for i in 1..10 {
        let prev = format!("*a{}", i - 1);
        list.push_str(&format!(", &a{i} [{}]", [prev.as_str(); 10].join(", ")));
    }
    let mut c = Tree::new("bomb");
    c.insert(
        "services/web.yaml",
        format!("frontend: {{ipv4: 10.0.0.1, tcp: [{list}]}}\npersistence: [{list}]"),
    );
    let (_, diags) = parse_config(&c);
    assert!(diags.has_errors(), "{diags:?}");
}
