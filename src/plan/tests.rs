//! Unit tests of the planner: order, edits in place, ownership, guards.

use std::net::SocketAddr;

use super::*;
use crate::model::{Dest, DestAttrs, Method, Service, ServiceAttrs};

fn key(s: &str) -> ServiceKey {
    s.parse().unwrap()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

type Spec<'a> = (&'a str, &'a str, &'a [(&'a str, Method, u32)]);

fn state(services: &[Spec<'_>]) -> IpvsState {
    let mut st = IpvsState::default();
    for (k, sched, dests) in services {
        let mut svc = Service::new(ServiceAttrs::with_scheduler(*sched));
        for (d, m, w) in *dests {
            svc.dests.insert(
                addr(d),
                Dest {
                    attrs: DestAttrs::new(*m, *w),
                    provenance: Box::default(),
                },
            );
        }
        st.services.insert(key(k), svc);
    }
    st
}

/// The inputs and live fingerprint a JSON plan document names.
fn json_inputs() -> (saved::Inputs, saved::LiveFingerprint) {
    let inputs = saved::Inputs {
        config_hash: "0".repeat(64),
        config_revision: None,
        overlay_hash: None,
        overlay_revision: None,
    };
    let fingerprint = saved::LiveFingerprint {
        source: "empty".into(),
        hash: "1".repeat(64),
        thresholds: true,
    };
    (inputs, fingerprint)
}

fn ops(p: &Plan) -> Vec<String> {
    p.ops()
        .map(|op| match op {
            Op::AddService { service, .. } => format!("+S {service}"),
            Op::EditService { service, .. } => format!("~S {service}"),
            Op::DelService { service } => format!("-S {service}"),
            Op::AddDest { service, dest, .. } => format!("+D {service} {dest}"),
            Op::EditDest { service, dest, .. } => format!("~D {service} {dest}"),
            Op::DelDest { service, dest } => format!("-D {service} {dest}"),
        })
        .collect()
}

const M: Method = Method::Masq;

#[test]
fn make_before_break_order() {
    let live = state(&[
        (
            "tcp://10.0.0.1:80",
            "wlc",
            &[("10.1.0.1:80", M, 10), ("10.1.0.2:80", M, 10)],
        ),
        ("tcp://10.0.0.9:80", "wlc", &[("10.1.0.1:80", M, 10)]),
    ]);
    let desired = state(&[
        (
            "tcp://10.0.0.1:80",
            "rr",
            &[("10.1.0.1:80", M, 20), ("10.1.0.3:80", M, 10)],
        ),
        ("tcp://10.0.0.2:80", "wlc", &[("10.1.0.1:80", M, 10)]),
    ]);
    let p = plan(&desired, &live, &Ownership::all(), &Guards::default()).unwrap();
    assert_eq!(
        ops(&p),
        vec![
            "+S tcp://10.0.0.2:80",
            "+D tcp://10.0.0.1:80 10.1.0.3:80",
            "+D tcp://10.0.0.2:80 10.1.0.1:80",
            "~S tcp://10.0.0.1:80",
            "~D tcp://10.0.0.1:80 10.1.0.1:80",
            "-D tcp://10.0.0.1:80 10.1.0.2:80",
            "-S tcp://10.0.0.9:80",
        ]
    );
    assert_eq!(
        p.summary,
        Summary {
            add: 3,
            change: 2,
            delete: 2
        }
    );
    assert_eq!((p.owned_services, p.owned_dests), (2, 3));
    assert_eq!((p.services_removed, p.dests_removed), (1, 2));
}

#[test]
fn method_change_is_an_edit_and_port_change_is_add_plus_delete() {
    let live = state(&[("tcp://10.0.0.1:80", "wlc", &[("10.1.0.1:80", M, 10)])]);
    let desired = state(&[(
        "tcp://10.0.0.1:80",
        "wlc",
        &[("10.1.0.1:80", Method::Droute, 10)],
    )]);
    let p = plan(&desired, &live, &Ownership::all(), &Guards::default()).unwrap();
    assert_eq!(ops(&p), vec!["~D tcp://10.0.0.1:80 10.1.0.1:80"]);
    let desired = state(&[("tcp://10.0.0.1:80", "wlc", &[("10.1.0.1:81", M, 10)])]);
    let p = plan(&desired, &live, &Ownership::all(), &Guards::default()).unwrap();
    assert_eq!(
        ops(&p),
        vec![
            "+D tcp://10.0.0.1:80 10.1.0.1:81",
            "-D tcp://10.0.0.1:80 10.1.0.1:80"
        ]
    );
}

#[test]
fn attributes_compare_by_meaning() {
    let live = state(&[("tcp://10.0.0.1:80", "sh", &[])]);
    let mut desired = live.clone();
    let attrs = &mut desired
        .services
        .get_mut(&key("tcp://10.0.0.1:80"))
        .unwrap()
        .attrs;
    attrs.netmask = Some(32); // no persistence: ignored
    attrs.flags = vec![];
    let p = plan(&desired, &live, &Ownership::all(), &Guards::default()).unwrap();
    assert!(p.is_empty());
    let mut live2 = live.clone();
    live2
        .services
        .get_mut(&key("tcp://10.0.0.1:80"))
        .unwrap()
        .attrs
        .flags = vec!["flag-1".into()];
    let mut desired2 = live.clone();
    desired2
        .services
        .get_mut(&key("tcp://10.0.0.1:80"))
        .unwrap()
        .attrs
        .flags = vec!["sh-fallback".into()];
    let p = plan(&desired2, &live2, &Ownership::all(), &Guards::default()).unwrap();
    assert!(p.is_empty(), "flag-1 of sh is sh-fallback");
}

#[test]
fn unowned_live_is_untouched_and_unowned_desired_is_an_error() {
    let own = Ownership::parse(&["10.0.0.0/24".into()], &["100-200".into()]).unwrap();
    let live = state(&[
        ("tcp://10.0.0.1:80", "wlc", &[("10.1.0.1:80", M, 10)]),
        ("tcp://192.168.0.1:80", "wlc", &[("10.1.0.1:80", M, 10)]),
        ("fwmark://150", "wlc", &[]),
        ("fwmark://7", "wlc", &[("10.1.0.1:0", M, 1)]),
    ]);
    let desired = state(&[("tcp://10.0.0.1:80", "wlc", &[("10.1.0.1:80", M, 10)])]);
    let p = plan(&desired, &live, &own, &Guards::default()).unwrap();
    assert_eq!(ops(&p), vec!["-S fwmark://150"]);
    assert_eq!(
        p.unmanaged,
        vec![
            Unmanaged {
                service: key("tcp://192.168.0.1:80"),
                dests: 1
            },
            Unmanaged {
                service: key("fwmark://7"),
                dests: 1
            },
        ]
    );
    let desired = state(&[
        ("tcp://10.0.0.1:80", "wlc", &[]),
        ("tcp://192.168.0.1:80", "wlc", &[]),
        ("udp://[2001:db8::1]:53", "wlc", &[]),
    ]);
    let e = plan(&desired, &live, &own, &Guards::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the desired state has 2 services outside the owned ranges (--own, --own-fwmark): tcp://192.168.0.1:80, udp://[2001:db8::1]:53"
    );
}

#[test]
fn ownership_arguments() {
    assert!(Ownership::parse(&[], &[]).unwrap().is_all());
    let o = Ownership::parse(&["2001:db8::/64".into(), "10.0.0.5".into()], &["42".into()]).unwrap();
    assert!(o.owns(&key("udp://[2001:db8::1]:53")));
    assert!(o.owns(&key("tcp://10.0.0.5:1")));
    assert!(!o.owns(&key("tcp://10.0.0.6:1")));
    assert!(o.owns(&key("fwmark6://42")));
    assert!(!o.owns(&key("fwmark://43")));
    assert_eq!(Ownership::from_doc(&o.doc()).unwrap(), o);
    assert_eq!(
        Ownership::parse(&["10.0.0.1/8".into()], &[]).unwrap_err(),
        "--own 10.0.0.1/8: host bits set, did you mean 10.0.0.0/8"
    );
    assert!(
        Ownership::parse(&[], &["9-3".into()])
            .unwrap_err()
            .contains("start above")
    );
    assert!(Ownership::parse(&[], &["x".into()]).is_err());
    assert_eq!(
        Ownership::parse(&[], &["0".into()]).unwrap_err(),
        "--own-fwmark 0: fwmark 0 does not exist, marks are 1..4294967295"
    );
    assert_eq!(
        Ownership::parse(&[], &["0-10".into()]).unwrap_err(),
        "--own-fwmark 0-10: fwmark 0 does not exist, marks are 1..4294967295, did you mean 1-10"
    );
    assert!(Ownership::parse(&[], &["1-4294967295".into()]).is_ok());
    assert!(Ownership::parse(&["nope".into()], &[]).is_err());
}

fn many(prefix: &str, n: usize) -> Vec<(String, Method, u32)> {
    (1..=n)
        .map(|i| (format!("{prefix}.{i}:80"), M, 10))
        .collect()
}

fn with_dests(k: &str, dests: &[(String, Method, u32)]) -> IpvsState {
    let d: Vec<(&str, Method, u32)> = dests.iter().map(|(a, m, w)| (a.as_str(), *m, *w)).collect();
    state(&[(k, "wlc", &d), ("tcp://10.0.0.99:80", "wlc", &[])])
}

#[test]
fn guards() {
    let g = Guards::default();
    // Deleting every owned service trips, even in a tiny table.
    let live = state(&[("tcp://10.0.0.1:80", "wlc", &[("10.1.0.1:80", M, 10)])]);
    let e = plan(&IpvsState::default(), &live, &Ownership::all(), &g).unwrap_err();
    assert!(matches!(e, PlanError::MassDelete { .. }));
    assert!(
        e.to_string().contains("every owned service (1 of 1)"),
        "{e}"
    );
    let allow = Guards {
        allow_mass_delete: true,
        ..g
    };
    assert!(plan(&IpvsState::default(), &live, &Ownership::all(), &allow).is_ok());
    // Nothing live: nothing to guard.
    assert!(
        plan(
            &IpvsState::default(),
            &IpvsState::default(),
            &Ownership::all(),
            &g
        )
        .is_ok()
    );

    // 12 of 20 dests (60%, more than 10): trips.
    let live = with_dests("tcp://10.0.0.1:80", &many("10.1.0", 20));
    let desired = with_dests("tcp://10.0.0.1:80", &many("10.1.0", 8));
    let e = plan(&desired, &live, &Ownership::all(), &g).unwrap_err();
    assert!(
        e.to_string().contains("deletes 12 of 20 owned dests (60%"),
        "{e}"
    );
    // Adjustable.
    let lax = Guards {
        max_delete_percent: 60,
        ..g
    };
    assert!(plan(&desired, &live, &Ownership::all(), &lax).is_ok());
    let high_min = Guards {
        max_delete_min: 12,
        ..g
    };
    assert!(plan(&desired, &live, &Ownership::all(), &high_min).is_ok());

    // Small table, ordinary change: 3 of 4 dests go, fewer than 10: passes.
    let live = with_dests("tcp://10.0.0.1:80", &many("10.1.0", 4));
    let desired = with_dests("tcp://10.0.0.1:80", &many("10.1.0", 1));
    assert!(plan(&desired, &live, &Ownership::all(), &g).is_ok());
    // One owned dest: "of 1 owned dest" (with --max-delete-min 0).
    let live = state(&[
        ("tcp://10.0.0.1:80", "wlc", &[("10.1.0.1:80", M, 10)]),
        ("tcp://10.0.0.2:80", "wlc", &[]),
    ]);
    let desired = state(&[
        ("tcp://10.0.0.1:80", "wlc", &[]),
        ("tcp://10.0.0.2:80", "wlc", &[]),
    ]);
    let zero_min = Guards {
        max_delete_min: 0,
        ..g
    };
    let e = plan(&desired, &live, &Ownership::all(), &zero_min).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("refusing a plan that deletes 1 of 1 owned dest (100%,"),
        "{e}"
    );
    // 10 of 20 is exactly half: passes.
    let live = with_dests("tcp://10.0.0.1:80", &many("10.1.0", 20));
    let desired = with_dests("tcp://10.0.0.1:80", &many("10.1.0", 10));
    assert!(plan(&desired, &live, &Ownership::all(), &g).is_ok());
}

#[test]
fn coloured_text_is_the_plain_text_with_ansi_codes_on_change_lines() {
    let live = state(&[(
        "tcp://10.0.0.1:80",
        "wlc",
        &[("10.1.0.1:80", M, 10), ("10.1.0.2:80", M, 10)],
    )]);
    let mut desired = state(&[
        (
            "tcp://10.0.0.1:80",
            "wlc",
            &[("10.1.0.1:80", M, 20), ("10.1.0.3:80", M, 10)],
        ),
        (
            "udp://[2001:db8::1]:53",
            "rr",
            &[("[2001:db8::2]:53", M, 5)],
        ),
    ]);
    let d = desired
        .services
        .get_mut(&key("tcp://10.0.0.1:80"))
        .unwrap()
        .dests
        .get_mut(&addr("10.1.0.3:80"))
        .unwrap();
    d.attrs.upper_threshold = 100;
    d.provenance = Box::new([crate::model::Provenance {
        backend: "b3".into(),
        source: "services/web.yaml".into(),
        weight: 10,
        route: Some("lan".into()),
        fallback: false,
    }]);
    let p = plan(&desired, &live, &Ownership::all(), &Guards::default()).unwrap();
    let plain = output::text(&p, &desired, false);
    let coloured = output::text(&p, &desired, true);
    let expect = "  service tcp://10.0.0.1:80\n\
        +   dest 10.1.0.3:80 masq weight 10 upper threshold 100 (b3 from services/web.yaml via route lan)\n\
        ~   dest 10.1.0.1:80 masq weight 10 -> 20\n\
        -   dest 10.1.0.2:80\n\
        + service udp://[2001:db8::1]:53 rr\n\
        +   dest [2001:db8::2]:53 masq weight 5\n\
        \n\
        Plan: 3 to add, 1 to change, 1 to delete.\n";
    assert_eq!(plain, expect);
    assert!(!plain.contains('\x1b'));
    assert!(coloured.contains("\x1b[32m+   dest 10.1.0.3:80 "));
    assert!(coloured.contains("\x1b[31m-   dest 10.1.0.2:80\x1b[0m\n"));
    assert!(
        coloured.contains("\n  service tcp://10.0.0.1:80\n") || coloured.starts_with("  service")
    );
    let mut stripped = String::new();
    let mut rest = coloured.as_str();
    while let Some(i) = rest.find('\x1b') {
        stripped.push_str(&rest[..i]);
        let end = rest[i..].find('m').expect("an ANSI code ends with m");
        rest = &rest[i + end + 1..];
    }
    stripped.push_str(rest);
    assert_eq!(stripped, plain);
}

#[test]
fn a_refused_plan_says_so_in_every_format() {
    let live = state(&[("tcp://10.0.0.1:80", "wlc", &[("10.1.0.1:80", M, 10)])]);
    let desired = IpvsState::default();
    let Err(PlanError::MassDelete { reason, plan: p }) =
        plan(&desired, &live, &Ownership::all(), &Guards::default())
    else {
        panic!("deleting every owned service is refused");
    };
    let (inputs, fingerprint) = json_inputs();
    let own = Ownership::all();
    let doc = |refused| {
        let text = output::json(&p, &desired, &inputs, &fingerprint, &own, refused);
        serde_json::from_str::<serde_json::Value>(&text).unwrap()
    };
    assert_eq!(doc(Some(&reason))["refused"], serde_json::json!(reason));
    assert_eq!(doc(None)["refused"], serde_json::Value::Null);

    let md = output::markdown(&p, &desired, Some(&reason));
    assert!(
        md.starts_with("### clusterf plan (refused): 0 to add"),
        "{md}"
    );
    assert!(
        md.contains(&format!(
            "**Refused, nothing will be applied:** {reason}.\n"
        )),
        "{md}"
    );
    let md = output::markdown(&p, &desired, None);
    assert!(md.starts_with("### clusterf plan: 0 to add") && !md.contains("Refused"));

    let text = output::text_refused(&p, &desired, false, Some(&reason));
    assert!(
        text.ends_with(
            "Plan: 0 to add, 0 to change, 1 to delete.\n\
             Refused by a guard: nothing is applied without --allow-mass-delete.\n"
        ),
        "{text}"
    );
    assert_eq!(
        output::text_refused(&p, &desired, false, None),
        output::text(&p, &desired, false)
    );
}

/// Within a service, text and markdown list the service change, then the
/// dest changes as they run: adds, edits, deletes, whatever the addresses
/// (a delete of :80 above the add of :81 read as break-before-make).
#[test]
fn text_and_markdown_list_a_service_in_execution_order() {
    let live = state(&[(
        "tcp://10.0.0.1:80",
        "wlc",
        &[
            ("10.1.0.1:80", M, 10),
            ("10.1.0.2:80", M, 10),
            ("10.1.0.3:80", M, 10),
        ],
    )]);
    let desired = state(&[(
        "tcp://10.0.0.1:80",
        "rr",
        &[
            ("10.1.0.1:81", M, 10),
            ("10.1.0.2:80", M, 10),
            ("10.1.0.3:80", M, 20),
            ("10.1.0.0:80", M, 10),
        ],
    )]);
    let lax = Guards {
        allow_mass_delete: true,
        ..Guards::default()
    };
    let p = plan(&desired, &live, &Ownership::all(), &lax).unwrap();
    let lines = "~ service tcp://10.0.0.1:80 scheduler wlc -> rr\n\
                 +   dest 10.1.0.0:80 masq weight 10\n\
                 +   dest 10.1.0.1:81 masq weight 10\n\
                 ~   dest 10.1.0.3:80 masq weight 10 -> 20\n\
                 -   dest 10.1.0.1:80\n";
    let text = output::text(&p, &desired, false);
    assert_eq!(
        text,
        format!("{lines}\nPlan: 2 to add, 2 to change, 1 to delete.\n")
    );
    let md = output::markdown(&p, &desired, None);
    assert!(md.contains(&format!("```diff\n{lines}```\n")), "{md}");
}

/// Services left without a dest that takes connections are listed in every
/// format and counted by their own guard, which the dest guards miss when
/// the services are few (an empty overlay).
#[test]
fn emptied_services_are_named_in_every_format_and_guarded() {
    let two = [("10.1.0.1:80", M, 10), ("10.1.0.2:80", M, 10)];
    let live = state(&[
        ("tcp://10.0.0.1:80", "wlc", &two),
        ("tcp://10.0.0.2:80", "wlc", &two),
        ("tcp://10.0.0.3:80", "wlc", &two),
        ("tcp://10.0.0.4:80", "wlc", &two),
        // Never served: not counted.
        ("tcp://10.0.0.5:80", "wlc", &[]),
        ("tcp://10.0.0.6:80", "wlc", &[("10.1.0.1:80", M, 0)]),
    ]);
    let emptied3 = state(&[
        ("tcp://10.0.0.1:80", "wlc", &[]),
        ("tcp://10.0.0.2:80", "wlc", &[]),
        // Draining: both dests at weight 0.
        (
            "tcp://10.0.0.3:80",
            "wlc",
            &[("10.1.0.1:80", M, 0), ("10.1.0.2:80", M, 0)],
        ),
        ("tcp://10.0.0.4:80", "wlc", &two),
        ("tcp://10.0.0.5:80", "wlc", &[]),
        ("tcp://10.0.0.6:80", "wlc", &[]),
    ]);
    let g = Guards::default();
    // 4 of 8 dests go (fewer than 10): the dest guard lets it pass; 3 of
    // the 4 serving services end empty (75%): refused.
    let e = plan(&emptied3, &live, &Ownership::all(), &g).unwrap_err();
    assert_eq!(
        e.to_string(),
        "refusing a plan that empties 3 of 4 owned services with dests (75%, more than --max-empty-percent 50): no dest would be left to take their connections; pass --allow-mass-delete if that is intended"
    );
    let lax = Guards {
        max_empty_percent: 75,
        ..g
    };
    let p = plan(&emptied3, &live, &Ownership::all(), &lax).unwrap();
    assert_eq!(p.serving_services, 4);
    assert_eq!(
        p.emptied,
        vec![
            Emptied {
                service: key("tcp://10.0.0.1:80"),
                dests_before: 2,
                dests_after: 0
            },
            Emptied {
                service: key("tcp://10.0.0.2:80"),
                dests_before: 2,
                dests_after: 0
            },
            Emptied {
                service: key("tcp://10.0.0.3:80"),
                dests_before: 2,
                dests_after: 2
            },
        ]
    );
    let allow = Guards {
        allow_mass_delete: true,
        ..g
    };
    assert!(plan(&emptied3, &live, &Ownership::all(), &allow).is_ok());
    // 2 of 4 is half: passes; a deleted service is not emptied.
    let mut half = emptied3.clone();
    half.services
        .get_mut(&key("tcp://10.0.0.3:80"))
        .unwrap()
        .dests
        .values_mut()
        .for_each(|d| d.attrs.weight = 5);
    half.services.remove(&key("tcp://10.0.0.4:80"));
    let p = plan(&half, &live, &Ownership::all(), &g).unwrap();
    assert_eq!(p.emptied.len(), 2);

    let text = output::text(&p, &half, false);
    assert!(
        text.contains(
            "\nEmptied: 2 services, left without a dest that takes connections (new connections fail):\n  tcp://10.0.0.1:80 (had 2 dests, keeps none)\n  tcp://10.0.0.2:80 (had 2 dests, keeps none)\n\nPlan: "
        ),
        "{text}"
    );
    let p3 = plan(&emptied3, &live, &Ownership::all(), &lax).unwrap();
    let text = output::text(&p3, &emptied3, false);
    assert!(
        text.contains(
            "  tcp://10.0.0.3:80 (had 2 dests taking connections, keeps 2 at weight 0)\n"
        ),
        "{text}"
    );
    let md = output::markdown(&p, &half, None);
    assert!(
        md.contains(
            "\n**Emptied**: 2 services, left without a dest that takes connections (new connections fail):\n\n- `tcp://10.0.0.1:80` (had 2 dests, keeps none)\n- `tcp://10.0.0.2:80` (had 2 dests, keeps none)\n"
        ),
        "{md}"
    );
    let (inputs, fingerprint) = json_inputs();
    let doc = output::json(&p, &half, &inputs, &fingerprint, &Ownership::all(), None);
    let doc: serde_json::Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(
        doc["emptied"],
        serde_json::json!([
            {"service": "tcp://10.0.0.1:80", "dests_before": 2, "dests_after": 0},
            {"service": "tcp://10.0.0.2:80", "dests_before": 2, "dests_after": 0},
        ])
    );
    // No emptied service: no section, an empty list.
    let p = plan(&live, &live, &Ownership::all(), &g).unwrap();
    assert!(p.emptied.is_empty());
    assert!(!output::text(&p, &live, false).contains("Emptied"));
    assert!(!output::markdown(&p, &live, None).contains("Emptied"));
}

/// Services by key, each with its dests.
type Table = Vec<(String, Vec<(String, Method, u32)>)>;

#[test]
fn a_plan_within_the_changed_services_is_the_whole_plan() {
    let live_spec: Table = (0..40)
        .map(|i| {
            let dests = (0..4)
                .map(|j| (format!("10.1.{i}.{j}:80"), Method::Masq, 1 + j))
                .collect();
            (format!("tcp://10.0.0.{i}:80"), dests)
        })
        .collect();
    let build = |spec: &Table| {
        let mut st = IpvsState::default();
        for (k, d) in spec {
            st.services.extend(with_dests(k, d).services);
        }
        st
    };
    let live = build(&live_spec);
    // An edit, a dest gone, a service emptied, one gone, one new; one
    // unowned live service stays out of it.
    let mut want = live_spec.clone();
    want[3].1[0].2 = 9;
    want[5].1.pop();
    for d in &mut want[7].1 {
        d.2 = 0;
    }
    want.remove(9);
    want.push((
        "tcp://10.0.0.200:80".into(),
        vec![("10.2.0.1:80".into(), Method::Masq, 1)],
    ));
    let desired = build(&want);
    let mut live_more = live.clone();
    live_more.services.insert(
        key("tcp://192.168.0.1:80"),
        Service::new(ServiceAttrs::with_scheduler("wrr")),
    );
    let own = Ownership::parse(&["10.0.0.0/8".into()], &[]).unwrap();
    let scope: BTreeSet<ServiceKey> = ["3", "5", "7", "9", "200"]
        .iter()
        .map(|i| key(&format!("tcp://10.0.0.{i}:80")))
        .collect();
    let loose = Guards {
        allow_mass_delete: true,
        ..Guards::default()
    };
    for guards in [Guards::default(), loose] {
        let whole = plan(&desired, &live_more, &own, &guards);
        let counts = LiveCounts::of(&live_more, &own);
        let within = plan_within(&desired, &live_more, &scope, &own, &guards, &counts);
        match (whole, within) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
            (a, b) => panic!("whole {a:?}, within {b:?}"),
        }
    }
    // Guards count the whole table: 1 service emptied of 40 serving passes
    // by default, as in the whole plan.
    let counts = LiveCounts::of(&live_more, &own);
    assert!(
        plan_within(
            &desired,
            &live_more,
            &scope,
            &own,
            &Guards::default(),
            &counts
        )
        .is_ok()
    );
}

/// A dest health drained shows why, in every format, instead of the
/// backend it came from; a saved plan keeps the reason.
#[test]
fn a_dest_drained_for_health_shows_the_reason() {
    let live = state(&[(
        "tcp://10.0.0.1:80",
        "wlc",
        &[("10.3.107.21:8443", M, 30), ("10.3.107.22:8443", M, 30)],
    )]);
    let mut desired = live.clone();
    let reason = "http 503, 3 of 3 failed since 12:00:01";
    for (a, d) in &mut desired
        .services
        .get_mut(&key("tcp://10.0.0.1:80"))
        .unwrap()
        .dests
    {
        d.provenance = Box::new([crate::model::Provenance {
            backend: format!("web-{}", a.ip()).into(),
            source: "services/web.yaml".into(),
            weight: 30,
            route: None,
            fallback: false,
        }]);
    }
    let d = desired.services.get_mut(&key("tcp://10.0.0.1:80")).unwrap();
    let drained = d.dests.get_mut(&addr("10.3.107.21:8443")).unwrap();
    drained.attrs.weight = 0;
    d.health.insert(addr("10.3.107.21:8443"), reason.into());
    let p = plan(&desired, &live, &Ownership::all(), &Guards::default()).unwrap();
    let text = output::text(&p, &desired, false);
    assert!(
        text.contains(&format!(
            "~   dest 10.3.107.21:8443 masq weight 30 -> 0 (unhealthy: {reason})\n"
        )),
        "{text}"
    );
    let md = output::markdown(&p, &desired, None);
    assert!(md.contains(&format!("(unhealthy: {reason})")), "{md}");
    let (inputs, fingerprint) = json_inputs();
    let json = output::json(&p, &desired, &inputs, &fingerprint, &Ownership::all(), None);
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["changes"][0]["health"], serde_json::json!(reason));
    assert_eq!(
        doc["changes"][0]["provenance"][0]["backend"],
        "web-10.3.107.21"
    );
    let saved = saved::SavedPlan::from_json(&json).unwrap();
    assert_eq!(saved.changes[0].health.as_deref(), Some(reason));
    // Read back into the desired service's notes, as the plan had it.
    let after = saved::desired_after(&saved, &saved.ownership().unwrap(), &live).unwrap();
    assert_eq!(
        after.services[&key("tcp://10.0.0.1:80")].health,
        desired.services[&key("tcp://10.0.0.1:80")].health
    );
}

/// A fallback taking over gets its weight before the last real dest loses
/// its own, and hands back after: the service never has all weights 0.
/// The fallback's line says what it is.
#[test]
fn weight_moves_to_the_fallback_and_back_without_passing_through_zero() {
    let real = ("10.1.0.9:80", M, 10);
    let fb = ("10.1.0.1:80", M, 1);
    let serving = state(&[("tcp://10.0.0.1:80", "wlc", &[real, (fb.0, M, 0)])]);
    let mut fallback = state(&[("tcp://10.0.0.1:80", "wlc", &[(real.0, M, 0), fb])]);
    let d = fallback
        .services
        .get_mut(&key("tcp://10.0.0.1:80"))
        .unwrap();
    d.dests.get_mut(&addr(fb.0)).unwrap().provenance = Box::new([crate::model::Provenance {
        backend: "fallback".into(),
        source: "services/web.yaml#fallback".into(),
        weight: 1,
        route: None,
        fallback: true,
    }]);
    let over = plan(&fallback, &serving, &Ownership::all(), &Guards::default()).unwrap();
    assert_eq!(
        ops(&over),
        [
            "~D tcp://10.0.0.1:80 10.1.0.1:80",
            "~D tcp://10.0.0.1:80 10.1.0.9:80"
        ]
    );
    let text = output::text(&over, &fallback, false);
    assert!(
        text.contains(
            "~   dest 10.1.0.1:80 masq weight 0 -> 1 (fallback from services/web.yaml#fallback)\n"
        ),
        "{text}"
    );
    let back = plan(&serving, &fallback, &Ownership::all(), &Guards::default()).unwrap();
    assert_eq!(
        ops(&back),
        [
            "~D tcp://10.0.0.1:80 10.1.0.9:80",
            "~D tcp://10.0.0.1:80 10.1.0.1:80"
        ]
    );
    assert!(over.emptied.is_empty() && back.emptied.is_empty());
}

#[test]
fn a_change_fits_in_128_bytes() {
    // A plan from empty holds one `Change` a dest; past 128 bytes each
    // push copies it with a `memcpy` call (+32% instructions, issue 15).
    assert!(
        std::mem::size_of::<Change>() <= 128,
        "{}",
        std::mem::size_of::<Change>()
    );
}

#[test]
fn a_change_keeps_its_before_in_its_second_cache_line() {
    // Dropping a plan reads the op's tag and the before's: one in each
    // 64-byte half of a change, so the drop walks every line (issue 15).
    let before = std::mem::offset_of!(Change, before);
    assert_eq!(before, std::mem::size_of::<Op>());
    assert!(before >= 64, "{before}");
}

#[test]
fn a_desired_dest_fits_in_40_bytes() {
    // The planner's walk over the dest B-tree leaves is memory-bound (issue 15).
    assert!(
        std::mem::size_of::<Dest>() <= 40,
        "{}",
        std::mem::size_of::<Dest>()
    );
}
