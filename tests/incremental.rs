//! The incremental renderer (`render::memo`) against the full render: after
//! every edit of random config and overlay trees (both layouts, routes,
//! defaults, invalid files, conflicts, near misses of the layout, overlay
//! keys outside its layout, unreadable entries, health checks and backends
//! opting out of them), the memo's render equals `render::render` of the
//! same trees, field by field: every field the memo keeps (a
//! `render::Compiled`: state, health checks, diagnostics, hashes; it keeps
//! no parsed config or overlay, so those two are not compared).

use std::sync::atomic::{AtomicUsize, Ordering};

use clusterf::compile::Options;
use clusterf::model::Method;
use clusterf::render::memo::{Memo, Work};
use clusterf::render::{self, Compiled, Rendered};
use clusterf::tree::Tree;
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};

// --- trees -------------------------------------------------------------------

fn svc() -> impl Strategy<Value = &'static str> {
    // Also a name that prefixes another, a dotted one and an invalid one.
    prop::sample::select(vec!["a", "b", "c", "web", "ab", "a.b", "bad name"])
}

fn backend_name() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["b1", "b2", "x"])
}

fn route_name() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["r1", "r2", "dflt"])
}

fn frontend_ip() -> impl Strategy<Value = &'static str> {
    // Few addresses: services often claim the same IPVS service.
    prop::sample::select(vec!["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"])
}

fn backend_ip() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["10.0.1.1", "10.0.1.2", "10.1.0.5", "192.168.1.1"])
}

fn port() -> impl Strategy<Value = u16> {
    prop::sample::select(vec![80u16, 443, 8080])
}

fn weight() -> impl Strategy<Value = u32> {
    prop::sample::select(vec![0u32, 10, 40000])
}

fn json_frontend() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (frontend_ip(), port()).prop_map(|(ip, p)| format!(r#"{{"ipv4": "{ip}", "tcp": {p}}}"#)),
        1 => (frontend_ip(), port()).prop_map(|(ip, p)| format!(r#"{{"ipv4": "{ip}", "tcp": {p}, "udp": {p}, "ipv6": "2001:db8::1"}}"#)),
        1 => Just("{".to_string()),
        1 => Just(r#"{"ipv4": 5, "tcp": 80}"#.to_string()),
        1 => prop::sample::select(vec![7u32, 8]).prop_map(|m| format!(r#"{{"fwmark_ipv4": {m}, "fwmark_ipv6": {m}, "scheduler": "sh", "scheduler_flags": "sh-port", "persistence": 60, "persistence_netmask_ipv4": 24}}"#)),
        1 => (frontend_ip(), port()).prop_map(|(ip, p)| format!(r#"{{"ipv4": "{ip}", "udp": {p}, "ops": true, "persistence": 30, "persistence_engine": "sip"}}"#)),
        1 => (frontend_ip(), port()).prop_map(|(ip, p)| format!(r#"{{"ipv4": "{ip}", "tcp": {p}, "Default_Weight": 3}}"#)),
    ]
}

fn json_backend() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => (backend_ip(), port(), weight()).prop_map(|(ip, p, w)| format!(r#"{{"ipv4": "{ip}", "tcp": {p}, "weight": {w}}}"#)),
        2 => (backend_ip(), port()).prop_map(|(ip, p)| format!(r#"{{"ipv4": "{ip}", "tcp": {p}, "healthcheck": false}}"#)),
        1 => Just(r#"{"ipv4": "10.0.1.1", "tcp": 80, "healthcheck": "no"}"#.to_string()),
        1 => Just("not json".to_string()),
        1 => Just(r#"{"ipv4": "10.0.1.9", "tcp": 80, "bogus": 1}"#.to_string()),
        1 => Just(r#"{"tcp": 80}"#.to_string()),
        1 => (backend_ip(), port(), prop::sample::select(vec![0u32, 10, 20])).prop_map(|(ip, p, t)| format!(r#"{{"ipv4": "{ip}", "tcp": {p}, "upper_threshold": {t}}}"#)),
    ]
}

/// A health check: valid ones, `type: none`, an invalid one.
fn healthcheck_body() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "type: tcp",
        "type: http\npath: /health\nexpect: 200-299\ninterval: 2s\ntimeout: 1s",
        "type: https\nport: 8443\nrise: 1\nfall: 5\non_failure: remove",
        "type: none",
        "type: tcp\npath: /nope\ninterval: 1s\ntimeout: 1s",
    ])
}

fn yaml_service() -> impl Strategy<Value = String> {
    let backend = (
        backend_name(),
        backend_ip(),
        port(),
        weight(),
        prop::sample::select(vec![
            "",
            "",
            "    healthcheck: false\n",
            "    upper_threshold: 10\n",
            "    upper_threshold: 20\n    lower_threshold: 5\n",
        ]),
    )
        .prop_map(|(n, ip, p, w, hc)| {
            format!("  {n}:\n    ipv4: {ip}\n    tcp: {p}\n    weight: {w}\n{hc}")
        });
    let check = prop_oneof![
        2 => Just(String::new()),
        1 => healthcheck_body().prop_map(|b| format!("healthcheck:\n  {}\n", b.replace('\n', "\n  "))),
    ];
    // A fallback: its own dest, one on a backend's address (an error, or a
    // merge a route makes), or a broken one.
    let fallback = prop::sample::select(vec![
        "",
        "",
        "fallback: {ipv4: 10.0.9.1, tcp: 80}\n",
        "fallback: {ipv4: 10.0.9.2, tcp: 80, weight: 3, method: droute}\n",
        "fallback: {ipv4: 10.0.1.1, tcp: 80}\n",
        "fallback: {tcp: 80, weight: 0}\n",
    ]);
    prop_oneof![
        8 => (
            frontend_ip(),
            port(),
            prop::sample::select(vec![
                "",
                "scheduler: rr\n",
                "scheduler: bogus\n",
                "scheduler: sh\nscheduler_flags: sh-fallback\npersistence: 60\npersistence_netmask_ipv4: 16\n",
                "ops: true\n",
                "default_weight: 3\n",
            ]),
            prop::collection::vec(backend, 0..3),
            check,
            fallback,
        )
            .prop_map(|(ip, p, sched, backends, check, fallback)| {
                let mut s = format!("frontend:\n  ipv4: {ip}\n  tcp: {p}\n{sched}{check}{fallback}");
                if !backends.is_empty() {
                    s.push_str("backends:\n");
                    for b in backends {
                        s.push_str(&b);
                    }
                }
                s
            }),
        1 => Just("frontend: [\n".to_string()),
        1 => Just("frontend:\n  ipv4: 10.0.0.1\n".to_string()),
        1 => prop::sample::select(vec![7u32, 9]).prop_map(|m| format!("frontend:\n  fwmark_ipv4: {m}\nbackends:\n  f: {{ipv4: 10.0.1.1}}\n")),
    ]
}

/// The JSON layout's `fallback` file.
fn json_fallback() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        r#"{"ipv4": "10.0.9.1", "tcp": 80}"#.to_string(),
        r#"{"IPv4": "10.0.9.3", "TCP": 8080, "Weight": 2, "Method": "masq"}"#.to_string(),
        r#"{"ipv4": "10.0.1.1", "tcp": 80}"#.to_string(),
        r#"{"ipv4": "10.0.9.1", "weight": 0}"#.to_string(),
        "{".to_string(),
    ])
}

/// The JSON layout's `healthcheck` file.
fn json_healthcheck() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        r#"{"type": "tcp"}"#.to_string(),
        r#"{"type": "http", "path": "/ready", "expect": 204, "interval": "1s", "timeout": "500ms"}"#.to_string(),
        r#"{"Type": "tcp", "On_Failure": "remove", "fall": 2}"#.to_string(),
        r#"{"type": "none"}"#.to_string(),
        r#"{"type": "dns", "query": "example.com"}"#.to_string(),
        r#"{"type": "tcp", "timeout": "9s"}"#.to_string(),
        "{".to_string(),
    ])
}

fn yaml_route() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "prefix: 10.0.1.0/24\nmethod: droute\n".to_string(),
        "prefix: 10.1.0.0/16\ngateway: 10.9.9.9\nmethod: tunnel\n".to_string(),
        "method: masq\n".to_string(),
        "prefix: 192.168.0.0/16\nmethod: none\n".to_string(),
        "prefix: bogus\nmethod: masq\n".to_string(),
        "prefix: 10.0.1.0/24\nmethod: tunnel\ntunnel: {type: gue, port: 6080, checksum: csum}\n"
            .to_string(),
        "prefix: 10.1.0.0/16\nmethod: tunnel\ntunnel: {type: gre}\n".to_string(),
        "method: droute\ntunnel: {type: gue}\n".to_string(),
    ])
}

fn json_route() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        r#"{"Prefix": "10.0.1.0/24", "IPVSMethod": "droute"}"#.to_string(),
        r#"{"Prefix": "10.1.0.0/16", "Gateway": "10.9.9.9", "IPVSMethod": "tunnel"}"#.to_string(),
        r#"{"IPVSMethod": "masq"}"#.to_string(),
        r#"{"Prefix": "10.0.1.0/24", "IPVSMethod": "tunnel", "IPVSTunnelType": "gue", "IPVSTunnelPort": 6080}"#.to_string(),
        r#"{"Prefix": "10.1.0.0/16", "IPVSMethod": "tunnel", "IPVSTunnelType": "gre", "IPVSTunnelChecksum": "csum"}"#.to_string(),
        r#"{"Prefix": "10.0.1.0/25", "IPVSMethod": "masq"}"#.to_string(),
        "{".to_string(),
    ])
}

fn defaults() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "".to_string(),
        "scheduler: rr\n".to_string(),
        "method: droute\n".to_string(),
        "method: bogus\n".to_string(),
        ": : :\n".to_string(),
    ])
}

/// A config tree entry: path and contents.
fn config_entry() -> impl Strategy<Value = (String, String)> {
    prop_oneof![
        3 => (svc(), prop::bool::ANY, yaml_service()).prop_map(|(s, yml, c)| {
            (format!("services/{s}.{}", if yml { "yml" } else { "yaml" }), c)
        }),
        3 => (svc(), json_frontend()).prop_map(|(s, c)| (format!("services/{s}/frontend"), c)),
        2 => (svc(), json_healthcheck()).prop_map(|(s, c)| (format!("services/{s}/healthcheck"), c)),
        2 => (svc(), json_fallback()).prop_map(|(s, c)| (format!("services/{s}/fallback"), c)),
        4 => (svc(), backend_name(), json_backend())
            .prop_map(|(s, b, c)| (format!("services/{s}/backends/{b}"), c)),
        1 => (route_name(), yaml_route()).prop_map(|(r, c)| (format!("routes/{r}.yaml"), c)),
        1 => (route_name(), json_route()).prop_map(|(r, c)| (format!("routes/{r}"), c)),
        1 => (prop::bool::ANY, defaults()).prop_map(|(yml, c)| {
            (format!("clusterf.{}", if yml { "yml" } else { "yaml" }), c)
        }),
        1 => (svc(), prop::sample::select(vec!["services/{}/junk", "README.md", "services/{}/backends/x/y"]))
            .prop_map(|(s, p)| (p.replace("{}", s), "junk".to_string())),
        // Near misses of the layout: errors.
        1 => (svc(), prop::sample::select(vec!["service/{}.yaml", "Routes/r1", "services/{}/backend/b1", "routes", "clusterf.json"]))
            .prop_map(|(s, p)| (p.replace("{}", s), "junk".to_string())),
    ]
}

/// An overlay tree entry: key and value.
fn overlay_entry() -> impl Strategy<Value = (String, String)> {
    prop_oneof![
        8 => (svc(), backend_name(), json_backend())
            .prop_map(|(s, b, c)| (format!("services/{s}/backends/{b}"), c)),
        1 => (route_name(), json_route()).prop_map(|(r, c)| (format!("routes/{r}"), c)),
        1 => (svc(), json_frontend()).prop_map(|(s, c)| (format!("services/{s}/frontend"), c)),
        1 => (svc(), json_healthcheck()).prop_map(|(s, c)| (format!("services/{s}/healthcheck"), c)),
        1 => (svc(), json_fallback()).prop_map(|(s, c)| (format!("services/{s}/fallback"), c)),
        // Outside the overlay layout: warnings.
        1 => prop::sample::select(vec!["clusterf.yaml", "other/key", "services/a.yaml"])
            .prop_map(|p| (p.to_string(), "junk".to_string())),
    ]
}

#[derive(Clone, Debug)]
enum Edit {
    SetConfig(String, String),
    SetOverlay(String, String),
    /// Removes the n-th path (modulo the count) of the tree.
    RemoveConfig(usize),
    RemoveOverlay(usize),
    /// Marks a path unreadable (in the config tree when true).
    Unreadable(bool, String),
    ClearUnreadable,
    ToggleOverlay,
    /// Another description of the config source (shows when it is empty).
    RenameConfig,
    /// Renders the same trees again.
    Nothing,
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => config_entry().prop_map(|(p, c)| Edit::SetConfig(p, c)),
        8 => overlay_entry().prop_map(|(p, c)| Edit::SetOverlay(p, c)),
        2 => any::<usize>().prop_map(Edit::RemoveConfig),
        3 => any::<usize>().prop_map(Edit::RemoveOverlay),
        1 => (prop::bool::ANY, config_entry()).prop_map(|(c, (p, _))| Edit::Unreadable(c, p)),
        1 => Just(Edit::ClearUnreadable),
        1 => Just(Edit::ToggleOverlay),
        1 => Just(Edit::RenameConfig),
        1 => Just(Edit::Nothing),
    ]
}

fn options() -> impl Strategy<Value = Options> {
    (
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.2),
        prop::sample::select(vec![None, Some("sh".to_string())]),
        prop::sample::select(vec![None, Some(Method::Tunnel)]),
    )
        .prop_map(|(filter, elide, sched, method)| Options {
            filter_overlay_routes: filter,
            elide_empty: elide,
            default_scheduler: sched,
            default_method: method,
        })
}

fn tree(description: &str, entries: &[(String, String)]) -> Tree {
    let mut t = Tree::new(description);
    for (p, c) in entries {
        t.insert(p.clone(), c.clone());
    }
    t
}

fn apply(edit: &Edit, config: &mut Tree, overlay: &mut Option<Tree>) {
    let nth = |t: &Tree, n: usize| t.files.keys().nth(n % t.files.len().max(1));
    match edit {
        Edit::SetConfig(p, c) => config.insert(p.clone(), c.clone()),
        Edit::SetOverlay(p, c) => {
            if let Some(o) = overlay {
                o.insert(p.clone(), c.clone())
            }
        }
        Edit::RemoveConfig(n) => {
            if let Some(p) = nth(config, *n) {
                config.files.remove(&p);
            }
        }
        Edit::RemoveOverlay(n) => {
            if let Some(o) = overlay
                && let Some(p) = nth(o, *n)
            {
                o.files.remove(&p);
            }
        }
        Edit::Unreadable(in_config, p) => {
            let t = if *in_config {
                Some(&mut *config)
            } else {
                overlay.as_mut()
            };
            if let Some(t) = t {
                t.files.remove(p);
                t.unreadable.insert(p.clone(), "permission denied".into());
            }
        }
        Edit::ClearUnreadable => {
            config.unreadable.clear();
            if let Some(o) = overlay {
                o.unreadable.clear();
            }
        }
        Edit::ToggleOverlay => {
            *overlay = match overlay.take() {
                Some(_) => None,
                None => Some(Tree::new("overlay")),
            }
        }
        Edit::RenameConfig => {
            config.source.description = match config.source.description.as_str() {
                "config" => "config elsewhere".into(),
                _ => "config".into(),
            }
        }
        Edit::Nothing => {}
    }
    // An etcd tree's revision changes with every event.
    if let Some(o) = overlay {
        let rev = o.source.revision.as_deref().map_or(0, |r| r.len());
        o.source.revision = Some("1".repeat(rev + 1));
    }
}

fn same(memo: &Compiled, full: &Rendered) -> Result<(), String> {
    let check = |what: &str, eq: bool| {
        if eq {
            Ok(())
        } else {
            Err(format!("{what} differs"))
        }
    };
    check("state", memo.state == full.state)?;
    check("health", memo.health == full.health)?;
    if memo.diags != full.diags {
        return Err(format!(
            "diags differ:\nmemo: {:#?}\nfull: {:#?}",
            memo.diags.0, full.diags.0
        ));
    }
    check("config hash", memo.config_hash == full.config_hash)?;
    check("overlay hash", memo.overlay_hash == full.overlay_hash)?;
    Ok(())
}

/// How often each kind of work was done, over all cases.
static WORK: [AtomicUsize; 5] = [const { AtomicUsize::new(0) }; 5];

fn count(w: Work) {
    let i = match w {
        Work::Unchanged => 0,
        Work::Services(_) => 1,
        Work::Global => 2,
        Work::Split => 3,
        Work::Full => 4,
    };
    WORK[i].fetch_add(1, Ordering::Relaxed);
}

type Case = (
    Options,
    Vec<(String, String)>,
    Vec<(String, String)>,
    // Each step's edits are rendered together (a coalesced pass).
    Vec<Vec<Edit>>,
);

fn check_case((opts, cfg, ovl, edits): Case) -> Result<(), TestCaseError> {
    let mut config = tree("config", &cfg);
    let mut overlay = Some(tree("overlay", &ovl));
    let mut memo = Memo::new(opts.clone());
    let mut generation = None;
    let mut last_state = None;
    let none = vec![Edit::Nothing];
    for (i, e) in std::iter::once(&none).chain(&edits).enumerate() {
        for edit in e {
            apply(edit, &mut config, &mut overlay);
        }
        let full = render::render(&config, overlay.as_ref(), &opts);
        let got = memo.render(&config, overlay.as_ref());
        if let Err(why) = same(got, &full) {
            return Err(TestCaseError::fail(format!(
                "after edit {i} ({e:?}), work {:?}: {why}\nconfig: {:#?}\noverlay: {:#?}",
                memo.work(),
                config.files,
                overlay.as_ref().map(|o| &o.files)
            )));
        }
        // Equal generations mean an equal state and health checks.
        if generation == Some(memo.generation()) {
            prop_assert_eq!(
                last_state.as_ref().map(|(s, h)| (s, h)),
                Some((&full.state, &full.health))
            );
        }
        // The services touched hold every one whose state or health
        // check changed.
        if let (Some(touched), Some((state, health))) = (memo.touched(), &last_state) {
            let keys = state.services.keys().chain(full.state.services.keys());
            for key in keys {
                let changed = state.services.get(key) != full.state.services.get(key)
                    || health.services.get(key) != full.health.services.get(key);
                prop_assert!(
                    !changed || touched.contains(key),
                    "after edit {i} ({e:?}): {key} changed but is not touched"
                );
            }
        }
        generation = Some(memo.generation());
        last_state = Some((full.state.clone(), full.health.clone()));
        count(memo.work());
    }
    Ok(())
}

#[test]
fn memo_render_equals_full_render_after_every_edit() {
    let strategy = (
        options(),
        prop::collection::vec(config_entry(), 0..10),
        prop::collection::vec(overlay_entry(), 0..12),
        prop::collection::vec(
            prop_oneof![
                3 => edit().prop_map(|e| vec![e]),
                1 => prop::collection::vec(edit(), 2..5),
            ],
            1..16,
        ),
    );
    // PROPTEST_CASES=N runs more (or fewer) cases.
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(512);
    let mut runner = TestRunner::new(RunnerConfig {
        cases,
        // Failures persist next to this file, as with `proptest!`.
        source_file: Some(file!()),
        ..RunnerConfig::default()
    });
    if let Err(e) = runner.run(&strategy, check_case) {
        panic!("{e}");
    }
    // The property is only worth something if the memo did its job: edits
    // local to a service must have been spliced in, not rendered in full.
    let n: Vec<usize> = WORK.iter().map(|w| w.load(Ordering::Relaxed)).collect();
    eprintln!(
        "work: unchanged {}, services {}, global {}, split {}, full {}",
        n[0], n[1], n[2], n[3], n[4]
    );
    assert!(
        n[1] > n.iter().sum::<usize>() / 5,
        "too few incremental renders: {n:?}"
    );
    assert!(
        n[0] > 0 && n[2] > 0 && n[3] > 0 && n[4] > 0,
        "every kind of work: {n:?}"
    );
}

// --- specific cases ------------------------------------------------------------

/// The memo's render of the trees, checked equal to the full render.
fn render_as_full(memo: &mut Memo, config: &Tree, overlay: &Tree) -> Compiled {
    let got = memo.render(config, Some(overlay)).clone();
    same(
        &got,
        &render::render(config, Some(overlay), &Options::default()),
    )
    .unwrap();
    got
}

fn bench_like(services: u32, weight_of_first: u32) -> (Tree, Tree) {
    let mut config = Tree::new("config");
    let mut overlay = Tree::new("overlay");
    for i in 0..services {
        config.insert(
            format!("services/s{i}/frontend"),
            format!(r#"{{"ipv4": "10.100.0.{i}", "tcp": 80}}"#),
        );
        for j in 0..3 {
            let w = if i == 0 && j == 0 {
                weight_of_first
            } else {
                10
            };
            overlay.insert(
                format!("services/s{i}/backends/b{j}"),
                format!(r#"{{"ipv4": "10.0.{i}.{j}", "tcp": 8080, "weight": {w}}}"#),
            );
        }
    }
    (config, overlay)
}

#[test]
fn one_backend_change_recompiles_one_service() {
    let (config, before) = bench_like(20, 10);
    let (_, after) = bench_like(20, 20);
    let mut memo = Memo::new(Options::default());
    memo.render(&config, Some(&before));
    assert_eq!(memo.work(), Work::Split);
    let g0 = memo.generation();

    memo.render(&config, Some(&before));
    assert_eq!(memo.work(), Work::Unchanged);
    assert_eq!(memo.generation(), g0);

    let got = memo.render(&config, Some(&after)).clone();
    assert_eq!(memo.work(), Work::Services(1));
    assert_ne!(memo.generation(), g0);
    let full = render::render(&config, Some(&after), &Options::default());
    same(&got, &full).unwrap();
}

#[test]
fn a_global_file_that_changes_no_value_recompiles_no_service() {
    let (mut config, overlay) = bench_like(5, 10);
    let mut memo = Memo::new(Options::default());
    memo.render(&config, Some(&overlay));
    let g0 = memo.generation();

    // Outside the layout (the global part), read by no parse.
    for (i, path) in ["README.md", "services/s1/frontend.tmp"].iter().enumerate() {
        config.insert(*path, format!("notes {i}\n"));
        render_as_full(&mut memo, &config, &overlay);
        assert_eq!(memo.work(), Work::Services(0), "{path}");
        assert_eq!(memo.touched(), Some(&Default::default()), "{path}");
        assert_eq!(memo.generation(), g0, "{path}");
    }
    // With a service's change in the same pass: that service alone.
    config.insert("README.md", "notes again\n");
    config.insert(
        "services/s2/frontend",
        r#"{"ipv4": "10.100.0.2", "tcp": 81}"#,
    );
    render_as_full(&mut memo, &config, &overlay);
    assert_eq!(memo.work(), Work::Services(1));
}

#[test]
fn a_route_change_recompiles_every_service_and_a_conflict_renders_in_full() {
    let (mut config, overlay) = bench_like(5, 10);
    let mut memo = Memo::new(Options::default());
    memo.render(&config, Some(&overlay));

    config.insert("routes/r1.yaml", "prefix: 10.0.0.0/8\nmethod: droute\n");
    render_as_full(&mut memo, &config, &overlay);
    assert_eq!(memo.work(), Work::Global);

    // s1 claims s0's address: the full render reports the conflict.
    config.insert(
        "services/s1/frontend",
        r#"{"ipv4": "10.100.0.0", "tcp": 80}"#,
    );
    let got = render_as_full(&mut memo, &config, &overlay);
    assert_eq!(memo.work(), Work::Full);
    assert!(!got.is_ok());

    // Resolved: split again, then incremental.
    config.insert(
        "services/s1/frontend",
        r#"{"ipv4": "10.100.0.1", "tcp": 80}"#,
    );
    memo.render(&config, Some(&overlay));
    assert_eq!(memo.work(), Work::Split);
    config.insert(
        "services/s2/frontend",
        r#"{"ipv4": "10.100.0.2", "tcp": 81}"#,
    );
    render_as_full(&mut memo, &config, &overlay);
    assert_eq!(memo.work(), Work::Services(1));
}
