use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use super::*;
use crate::render::{Rendered, render};
use crate::tree::Tree;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A Docker host 10.9.0.1 (also 10.9.1.1 and fd00:9::1) with containers
/// in 172.17.0.0/16 (droute) and 172.19.0.0/16 (masq, through 10.9.1.1),
/// another host's in 172.18.0.0/16, and a backend that is the host itself.
fn rendered() -> Rendered {
    let mut config = Tree::new("cfg");
    config.insert(
        "services/web.yaml",
        "frontend: {ipv4: 198.51.100.10, ipv6: '2001:db8::10', tcp: 80, udp: 53}\n\
         backends:\n  self: {ipv4: 10.9.0.1, tcp: 80}\n",
    );
    config.insert("services/mark.yaml", "frontend: {fwmark_ipv4: 7}\n");
    for (name, prefix, gw, method) in [
        ("docker", "172.17.0.0/16", "10.9.0.1", "droute"),
        ("docker6", "fd00:17::/64", "fd00:9::1", "tunnel"),
        ("other", "172.18.0.0/16", "10.9.0.5", "droute"),
        ("masq", "172.19.0.0/16", "10.9.1.1", "masq"),
    ] {
        config.insert(
            format!("routes/{name}.yaml"),
            format!("prefix: {prefix}\ngateway: {gw}\nmethod: {method}\n"),
        );
    }
    config.insert("routes/self.yaml", "prefix: 10.9.0.1/32\nmethod: droute\n");
    let mut overlay = Tree::new("etcd");
    for (svc, name, v4, v6, ports, weight) in [
        (
            "web",
            "ctr1",
            "172.17.0.2",
            Some("fd00:17::2"),
            r#""tcp": 8080"#,
            3,
        ),
        (
            "web",
            "ctr2",
            "172.17.0.3",
            None,
            r#""tcp": 8080, "udp": 5353"#,
            1,
        ),
        ("web", "ctr2b", "172.17.0.3", None, r#""tcp": 8080"#, 2),
        ("web", "far", "172.18.0.2", None, r#""tcp": 8080"#, 1),
        ("web", "masq", "172.19.0.2", None, r#""tcp": 8080"#, 1),
        ("mark", "m", "172.17.0.9", None, r#""tcp": 8080"#, 1),
    ] {
        let v6 = v6
            .map(|a| format!(r#", "ipv6": "{a}""#))
            .unwrap_or_default();
        overlay.insert(
            format!("services/{svc}/backends/{name}"),
            format!(r#"{{"ipv4": "{v4}"{v6}, {ports}, "weight": {weight}}}"#),
        );
    }
    let r = render(&config, Some(&overlay), &Default::default());
    assert!(r.is_ok(), "{:?}", r.diags);
    r
}

fn host() -> BTreeSet<IpAddr> {
    ["10.9.0.1", "10.9.1.1", "fd00:9::1"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect()
}

/// A VIP:port of a protocol and its containers with their weights.
type RuleText<'a> = (Protocol, &'a str, &'a [(&'a str, u32)]);

fn rules(list: &[RuleText]) -> Rules {
    list.iter()
        .map(|(p, vip, to)| {
            let to: BTreeMap<SocketAddr, u32> = to.iter().map(|(a, w)| (sa(a), *w)).collect();
            ((*p, sa(vip)), to)
        })
        .collect()
}

#[test]
fn the_droute_and_tunnel_dests_on_this_host_dnat_to_the_backends_behind_them() {
    let r = rendered();
    let got = desired(&r.state, &r.config, &r.overlay, &host());
    let want = rules(&[
        (
            Protocol::Tcp,
            "198.51.100.10:80",
            &[("172.17.0.2:8080", 3), ("172.17.0.3:8080", 3)],
        ),
        (
            Protocol::Tcp,
            "[2001:db8::10]:80",
            &[("[fd00:17::2]:8080", 3)],
        ),
        (Protocol::Udp, "198.51.100.10:53", &[("172.17.0.3:5353", 1)]),
    ]);
    // Not: the host itself (no DNAT to itself), another host's
    // containers, masq dests (they arrive at host:port), fwmark services.
    assert_eq!(got, want);
    let other_host: BTreeSet<IpAddr> = ["10.9.0.5".parse().unwrap()].into();
    let far = desired(&r.state, &r.config, &r.overlay, &other_host);
    assert_eq!(
        far,
        rules(&[(Protocol::Tcp, "198.51.100.10:80", &[("172.18.0.2:8080", 1)])])
    );
}

/// Each container's share of new connections, exactly, as a fraction
/// numerator over the product of the moduli.
fn shares(steps: &[Step]) -> Vec<f64> {
    let mut left = 1.0;
    steps
        .iter()
        .map(|s| {
            let p = s
                .pick
                .map_or(1.0, |p| f64::from(p.below) / f64::from(p.modulus));
            let share = left * p;
            left -= share;
            share
        })
        .collect()
}

#[test]
fn several_containers_share_a_vip_in_their_weights_proportions() {
    for weights in [vec![3, 1], vec![2, 1, 1], vec![1, 5, 0, 2], vec![7]] {
        let targets: Vec<(String, u32)> = weights
            .iter()
            .enumerate()
            .map(|(i, w)| (format!("172.17.0.{}:8080", i + 2), *w))
            .collect();
        let t: Vec<(&str, u32)> = targets.iter().map(|(a, w)| (a.as_str(), *w)).collect();
        let r = rules(&[(Protocol::Tcp, "198.51.100.10:80", &t)]);
        let s = steps(&r);
        assert_eq!(s.last().unwrap().pick, None, "the last one takes the rest");
        let total: u32 = weights.iter().sum();
        let live: Vec<u32> = weights.iter().copied().filter(|w| *w > 0).collect();
        assert_eq!(s.len(), live.len(), "weight 0 takes nothing: {weights:?}");
        for (share, w) in shares(&s).iter().zip(&live) {
            let want = f64::from(*w) / f64::from(total);
            assert!(
                (share - want).abs() < 1e-9,
                "{weights:?}: {share} != {want}"
            );
        }
        let back: Vec<u32> = rules_of(&s)[&(Protocol::Tcp, sa("198.51.100.10:80"))]
            .values()
            .copied()
            .collect();
        if live.len() > 1 {
            assert_eq!(back, live, "read back: the weights");
        } else {
            assert_eq!(back, [1], "a sole container's weight is not written");
        }
    }
}

#[test]
fn containers_all_of_weight_0_share_equally() {
    let r = rules(&[(
        Protocol::Tcp,
        "198.51.100.10:80",
        &[("172.17.0.2:8080", 0), ("172.17.0.3:8080", 0)],
    )]);
    let s = steps(&r);
    assert_eq!(
        s[0].pick,
        Some(Pick {
            below: 1,
            modulus: 2
        })
    );
    assert_eq!(s[1].pick, None);
}

fn ours(steps: Vec<Step>, layout: Layout) -> Current {
    Current::Ours {
        handle: 7,
        layout,
        steps,
    }
}

#[test]
fn the_plan_creates_keeps_replaces_and_removes_the_table() {
    let want = rules(&[(
        Protocol::Tcp,
        "198.51.100.10:80",
        &[("172.17.0.2:8080", 3), ("172.17.0.3:8080", 1)],
    )]);
    let p = plan(&want, &Current::Absent).unwrap();
    assert_eq!(p.action, Action::Create);
    assert_eq!(
        p.to_string(),
        "+ table inet clusterf\n\
         + dnat tcp 198.51.100.10:80 -> 172.17.0.2:8080 weight 3\n\
         + dnat tcp 198.51.100.10:80 -> 172.17.0.3:8080 weight 1\n"
    );
    let same = plan(&want, &ours(steps(&want), Layout::Clusterf)).unwrap();
    assert!(same.is_empty() && same.lines.is_empty());

    let mut changed = want.clone();
    changed
        .values_mut()
        .next()
        .unwrap()
        .insert(sa("172.17.0.3:8080"), 2);
    let p = plan(&changed, &ours(steps(&want), Layout::Clusterf)).unwrap();
    assert_eq!(p.action, Action::Replace(7));
    assert_eq!(
        p.to_string(),
        "- dnat tcp 198.51.100.10:80 -> 172.17.0.3:8080 weight 1\n\
         + dnat tcp 198.51.100.10:80 -> 172.17.0.3:8080 weight 2\n"
    );
    assert_eq!(p.steps, steps(&changed));

    let p = plan(&want, &ours(steps(&want), Layout::Differs)).unwrap();
    assert_eq!(p.action, Action::Replace(7));
    assert!(p.lines[0].starts_with("~ table inet clusterf: "), "{p}");

    let p = plan(&Rules::new(), &ours(steps(&want), Layout::Clusterf)).unwrap();
    assert_eq!(p.action, Action::Remove(7));
    assert_eq!(p.lines.last().unwrap(), "- table inet clusterf");
    assert!(p.steps.is_empty());
    assert!(plan(&Rules::new(), &Current::Absent).unwrap().is_empty());
}

#[test]
fn a_table_of_our_name_that_is_not_ours_is_refused() {
    let e = plan(&Rules::new(), &Current::NotOurs("has no comment".into())).unwrap_err();
    assert_eq!(e, "table inet clusterf has no comment: not touching it");
}

#[test]
fn ipv6_rules_read_with_brackets() {
    let d = Dnat(
        Protocol::Udp,
        sa("[2001:db8::10]:53"),
        sa("[fd00:17::2]:5353"),
        None,
    );
    assert_eq!(
        d.to_string(),
        "dnat udp [2001:db8::10]:53 -> [fd00:17::2]:5353"
    );
}
