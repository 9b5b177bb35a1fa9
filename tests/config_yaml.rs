//! Every problem of a YAML file is reported, each with its line and
//! column, in the order they appear; not only the first one serde-saphyr
//! stops at (issue 14, item 7). At most 100 are listed per file.

use clusterf::config::parse_config;
use clusterf::tree::Tree;

/// `file:line:col: message` of every diagnostic of a tree of `files`.
fn problems(files: &[(&str, &str)]) -> Vec<String> {
    let mut tree = Tree::new("t");
    for (path, text) in files {
        tree.insert(*path, *text);
    }
    let (_, diags) = parse_config(&tree);
    diags.iter().map(ToString::to_string).collect()
}

#[test]
fn three_independent_problems_in_one_service_file_are_all_reported() {
    let web = "\
frontend: {ipv4: 10.0.0.1, tcp: 80}
scheduler: fastest
backends:
  a:
    ipv4: 10.1.0.1
    wieght: 5
  b:
    ipv4: 10.1.0.2
    tcp: [8080]
";
    assert_eq!(
        problems(&[("services/web.yaml", web)]),
        [
            "services/web.yaml:2:12: scheduler: unknown scheduler \"fastest\", expected one of rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos",
            "services/web.yaml:6:5: unknown field \"wieght\", expected one of ipv4, ipv6, tcp, udp, weight, healthcheck, upper_threshold, lower_threshold",
            "services/web.yaml:9:10: tcp: expected an integer, found a sequence",
        ]
    );
}

#[test]
fn every_structural_problem_of_a_service_file_is_reported_in_order() {
    let web = "\
frontend:
  ipv4: 10.0.0.1
  tpc: 80
backends:
  a: 10.1.0.1
  b: {ipv4: 10.1.0.2, weight: 70000}
  b: {ipv4: 10.1.0.3}
  ~: {ipv4: 10.1.0.4}
persistance: 300
";
    assert_eq!(
        problems(&[("services/web.yaml", web)]),
        [
            "services/web.yaml:2:3: frontend has no port: set tcp or udp",
            "services/web.yaml:3:3: unknown field \"tpc\", expected one of ipv4, ipv6, tcp, udp, fwmark_ipv4, fwmark_ipv6",
            "services/web.yaml:5:6: expected a mapping (key: value lines or {key: value})",
            "services/web.yaml:6:31: weight 70000 out of range 0..65535",
            "services/web.yaml:7:3: duplicate key \"b\"",
            "services/web.yaml:8:3: expected a string, found null (write \"null\" in quotes for the word)",
            "services/web.yaml:9:1: unknown field \"persistance\", expected one of frontend, scheduler, persistence, persistence_netmask_ipv4, persistence_netmask_ipv6, persistence_engine, ops, scheduler_flags, backends, healthcheck, fallback, default_weight",
        ]
    );
}

#[test]
fn a_service_without_a_frontend_still_has_its_backends_checked() {
    let web = "backends:\n  a: {ipv4: 10.1.0.300}\n";
    assert_eq!(
        problems(&[("services/web.yaml", web)]),
        [
            "services/web.yaml:1:1: missing field \"frontend\"",
            "services/web.yaml:2:13: ipv4: invalid IPv4 address \"10.1.0.300\"",
        ]
    );
}

#[test]
fn every_problem_of_a_route_file_is_reported() {
    let route = "prefix: 10.0.0.0/33\ngatway: 10.0.0.1\nmethd: masq\n";
    assert_eq!(
        problems(&[("routes/r.yaml", route)]),
        [
            "routes/r.yaml:1:9: prefix: invalid prefix \"10.0.0.0/33\", expected CIDR like 10.0.0.0/24",
            "routes/r.yaml:2:1: unknown field \"gatway\", expected one of prefix, gateway, method, tunnel",
            "routes/r.yaml:3:1: missing field \"method\"",
            "routes/r.yaml:3:1: unknown field \"methd\", expected one of prefix, gateway, method, tunnel",
        ]
    );
    let route = "prefix: 10.0.0.0/8\nmethod: nat\ngateway: 10.0.0.300\n";
    assert_eq!(
        problems(&[("routes/r.yaml", route)]),
        [
            "routes/r.yaml:2:9: unknown value \"nat\", expected one of masq, droute, tunnel, none",
            "routes/r.yaml:3:10: gateway: invalid address \"10.0.0.300\"",
        ]
    );
}

#[test]
fn every_problem_of_clusterf_yaml_is_reported() {
    let defaults = "scheduler: fastest\nlog-level: debug\nmethod: nat\n";
    assert_eq!(
        problems(&[
            ("clusterf.yaml", defaults),
            ("services/web.yaml", "frontend: {ipv4: 10.0.0.1, tcp: 80}\n"),
        ]),
        [
            "clusterf.yaml:1:12: scheduler: unknown scheduler \"fastest\", expected one of rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos",
            "clusterf.yaml:2:1: unknown field \"log-level\", expected one of scheduler, method",
            "clusterf.yaml:3:9: method: unknown forwarding method \"nat\", expected one of masq, droute, tunnel",
        ]
    );
}

#[test]
fn a_syntax_error_further_on_leaves_the_first_problem_alone() {
    // serde-saphyr stops at `a` (unknown) before it reaches the indentation
    // error; the untyped reading stops at that error and finds nothing.
    let web = "\n  a: 5\nfrontend:\n   tcp: 80\n";
    assert_eq!(
        problems(&[("services/web.yaml", web)]),
        [
            "services/web.yaml:2:3: unknown field \"a\", expected one of frontend, scheduler, persistence, persistence_netmask_ipv4, persistence_netmask_ipv6, persistence_engine, ops, scheduler_flags, backends, healthcheck, fallback, default_weight"
        ]
    );
}

#[test]
fn a_syntax_error_alone_is_the_files_one_problem() {
    let web = "frontend: {ipv4: 10.0.0.1, tcp: 80\nbogus: 1\n";
    let got = problems(&[("services/web.yaml", web)]);
    assert_eq!(got.len(), 1, "{got:#?}");
}

#[test]
fn a_hostile_file_lists_at_most_100_problems_and_counts_the_rest() {
    let mut web = String::from("frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends:\n");
    for i in 0..250 {
        web.push_str(&format!("  b{i}: {{ipv4: 10.1.0.1, bogus: 1}}\n"));
    }
    let got = problems(&[("services/web.yaml", &web)]);
    assert_eq!(got.len(), 101, "{got:#?}");
    assert!(got[0].starts_with("services/web.yaml:3:"), "{}", got[0]);
    assert!(got[99].starts_with("services/web.yaml:102:"), "{}", got[99]);
    assert_eq!(
        got[100],
        "services/web.yaml:103:26: and 150 more problems: only the first 100 of a file are listed"
    );
    // Valid values count too: 150 bad addresses.
    let mut web = String::from("frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends:\n");
    for i in 0..150 {
        web.push_str(&format!("  b{i}: {{ipv4: 10.1.0.300}}\n"));
    }
    let got = problems(&[("services/web.yaml", &web)]);
    assert_eq!(got.len(), 101, "{got:#?}");
    assert!(got[100].ends_with("and 50 more problems: only the first 100 of a file are listed"));
}

#[test]
fn problems_in_other_files_are_not_counted_against_a_files_limit() {
    let mut files = Vec::new();
    let texts: Vec<(String, String)> = (0..3)
        .map(|s| {
            let mut web = String::from("frontend: {ipv4: 10.0.0.1, tcp: 80}\nbackends:\n");
            for i in 0..60 {
                web.push_str(&format!("  b{i}: {{ipv4: 10.1.0.1, bogus: 1}}\n"));
            }
            (format!("services/s{s}.yaml"), web)
        })
        .collect();
    for (path, text) in &texts {
        files.push((path.as_str(), text.as_str()));
    }
    assert_eq!(problems(&files).len(), 180);
}
