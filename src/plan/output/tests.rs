//! The hand-written JSON document against the serde rendering it
//! replaced (kept here as the oracle: the derived and custom `Serialize`
//! views of session 5, unchanged).

use serde::{Serialize, Serializer};

use super::*;
use crate::model::{Family, Protocol, Service};
use std::net::SocketAddr;

use crate::plan::{Guards, Unmanaged, plan};

#[derive(Serialize)]
struct Document<'a> {
    format_version: u32,
    inputs: &'a Inputs,
    live: &'a LiveFingerprint,
    ownership: OwnershipDoc,
    summary: Summary,
    /// `null`, or why a guard refused the plan (it is shown, never applied).
    refused: Option<&'a str>,
    /// Owned services left without a dest that takes connections.
    emptied: &'a [Emptied],
    changes: Changes<'a>,
    unmanaged: &'a [Unmanaged],
}

/// The changes of a plan as the document lists them, each made as it is
/// serialized.
struct Changes<'a> {
    plan: &'a Plan,
    desired: &'a IpvsState,
}

impl Serialize for Changes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            self.plan
                .changes
                .iter()
                .map(|c| ChangeView::of(c, self.desired)),
        )
    }
}

#[derive(Serialize)]
struct ChangeView<'a> {
    action: Action,
    #[serde(serialize_with = "key_as_text")]
    service: ServiceKey,
    #[serde(serialize_with = "addr_as_text")]
    dest: Option<SocketAddr>,
    before: Option<Fields>,
    after: Option<Fields>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    names: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    dests_removed: Option<usize>,
    provenance: &'a [Provenance],
    #[serde(skip_serializing_if = "Option::is_none")]
    health: Option<&'a str>,
    op: OpView<'a>,
}

/// A service key's `Display` text, without `core::fmt` for addresses (four
/// addresses per dest change were a tenth of a JSON plan's time).
fn key_text(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Addr { protocol, addr } => {
            let mut s = String::with_capacity(56);
            s.push_str(protocol.as_str());
            s.push_str("://");
            push_socket_addr(&mut s, addr);
            s
        }
        ServiceKey::Fwmark { .. } => key.to_string(),
    }
}

fn key_as_text<S: Serializer>(key: &ServiceKey, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&key_text(key))
}

fn addr_as_text<S: Serializer>(addr: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
    match addr {
        Some(a) => {
            let mut text = String::with_capacity(48);
            push_socket_addr(&mut text, a);
            s.serialize_str(&text)
        }
        None => s.serialize_none(),
    }
}

/// An [`Op`] as its own `Serialize` writes it (`{"op": "add_dest",
/// "service", "dest", "attrs"}`), with the addresses as [`key_text`] makes
/// them.
struct OpView<'a>(&'a Op);

impl Serialize for OpView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let (tag, service, dest, service_attrs, dest_attrs) = match self.0 {
            Op::AddService { service, attrs } => ("add_service", service, None, Some(attrs), None),
            Op::EditService { service, attrs } => {
                ("edit_service", service, None, Some(attrs), None)
            }
            Op::DelService { service } => ("del_service", service, None, None, None),
            Op::AddDest {
                service,
                dest,
                attrs,
            } => ("add_dest", service, Some(*dest), None, Some(attrs)),
            Op::EditDest {
                service,
                dest,
                attrs,
            } => ("edit_dest", service, Some(*dest), None, Some(attrs)),
            Op::DelDest { service, dest } => ("del_dest", service, Some(*dest), None, None),
        };
        let fields = 2
            + usize::from(dest.is_some())
            + usize::from(service_attrs.is_some() || dest_attrs.is_some());
        let mut m = s.serialize_struct("Op", fields)?;
        m.serialize_field("op", tag)?;
        m.serialize_field("service", &key_text(service))?;
        if let Some(d) = dest {
            let mut text = String::with_capacity(48);
            push_socket_addr(&mut text, &d);
            m.serialize_field("dest", &text)?;
        }
        if let Some(a) = service_attrs {
            m.serialize_field("attrs", a)?;
        }
        if let Some(a) = dest_attrs {
            m.serialize_field("attrs", a)?;
        }
        m.end()
    }
}

impl<'a> ChangeView<'a> {
    fn of(c: &'a Change, desired: &'a IpvsState) -> Self {
        let (before, after) = before_after(c);
        ChangeView {
            action: c.action(),
            service: *c.service(),
            dest: c.dest(),
            before,
            after,
            names: names(desired, c),
            dests_removed: matches!(c.op, Op::DelService { .. }).then_some(c.dests_removed()),
            provenance: provenance_of(desired, c),
            health: health_of(desired, c),
            op: OpView(&c.op),
        }
    }
}

fn names<'a>(desired: &'a IpvsState, change: &Change) -> &'a [String] {
    match (change.action(), change.dest()) {
        (Action::Add | Action::Edit, None) => desired
            .services
            .get(change.service())
            .map_or(&[], |s| s.names.as_slice()),
        _ => &[],
    }
}

/// The document as serde_json's pretty printer writes it.
fn oracle(
    plan: &Plan,
    desired: &IpvsState,
    inputs: &Inputs,
    live: &LiveFingerprint,
    ownership: &Ownership,
    refused: Option<&str>,
) -> String {
    let doc = Document {
        format_version: FORMAT_VERSION,
        inputs,
        live,
        ownership: ownership.doc(),
        summary: plan.summary,
        refused,
        emptied: &plan.emptied,
        changes: Changes { plan, desired },
        unmanaged: &plan.unmanaged,
    };
    serde_json::to_string_pretty(&doc).unwrap() + "\n"
}

fn dest(method: Method, weight: u32) -> Dest {
    Dest {
        attrs: DestAttrs::new(method, weight),
        provenance: Box::default(),
    }
}

fn key(s: &str) -> ServiceKey {
    s.parse().unwrap()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Live: two services with dests (one persistent with flags), one to go.
fn live_state() -> IpvsState {
    let mut live = IpvsState::default();
    let mut one = Service::new(ServiceAttrs::with_scheduler("wlc"));
    one.dests
        .insert(addr("10.1.0.1:80"), dest(Method::Masq, 10));
    let mut thresholds = dest(Method::Masq, 5);
    thresholds.attrs.upper_threshold = 100;
    thresholds.attrs.lower_threshold = 10;
    one.dests.insert(addr("10.1.0.2:80"), thresholds);
    let mut gue = dest(Method::Tunnel, 1);
    gue.attrs.tunnel = Tunnel {
        kind: 1,
        port: 6080,
        flags: 0,
    };
    one.dests.insert(addr("10.1.0.4:80"), gue);
    live.services.insert(key("tcp://10.0.0.1:80"), one);
    let mut persistent = ServiceAttrs::with_scheduler("sh");
    persistent.persistence = Some(300);
    persistent.netmask = Some(24);
    persistent.flags = vec!["sh-port".into()];
    live.services
        .insert(key("tcp://10.0.0.2:80"), Service::new(persistent));
    let mut gone = Service::new(ServiceAttrs::with_scheduler("rr"));
    let mut gre = dest(Method::Tunnel, 1);
    gre.attrs.tunnel.kind = 2;
    gone.dests.insert(addr("[2001:db8::2]:53"), gre);
    gone.dests
        .insert(addr("[2001:db8::3]:53"), dest(Method::Droute, 1));
    live.services.insert(key("udp://[2001:db8::1]:53"), gone);
    live
}

/// Desired: every kind of change, with names, provenance (routes),
/// health, and strings that need escaping.
fn desired_state() -> IpvsState {
    let mut desired = IpvsState::default();
    let mut attrs = ServiceAttrs::with_scheduler("rr");
    attrs.persistence = Some(60);
    attrs.flags = vec!["ops".into(), "sh-fallback".into()];
    let mut one = Service::new(attrs);
    one.names = vec!["web".into(), "we\"ird\n".into()];
    let mut edited = dest(Method::Masq, 20);
    edited.provenance = Box::new([
        Provenance {
            backend: "b\t1".into(),
            source: "services/web.yaml#backends.b1".into(),
            weight: 10,
            route: Some("r\"1".into()),
            fallback: false,
        },
        Provenance {
            backend: "b2".into(),
            source: "backends/web/b2".into(),
            weight: 10,
            route: None,
            fallback: true,
        },
    ]);
    one.dests.insert(addr("10.1.0.1:80"), edited);
    one.health
        .insert(addr("10.1.0.1:80"), "http 503, \"x\"\u{1}".into());
    let mut added = dest(Method::Tunnel, 7);
    added.attrs.upper_threshold = 9;
    added.attrs.tunnel = Tunnel {
        kind: 2,
        port: 0,
        flags: 1,
    };
    one.dests.insert(addr("10.1.0.3:80"), added);
    // gue becomes ipip: both sides of the edit say so.
    one.dests
        .insert(addr("10.1.0.4:80"), dest(Method::Tunnel, 1));
    // What no name covers, as numbers.
    let mut odd = dest(Method::Tunnel, 1);
    odd.attrs.tunnel = Tunnel {
        kind: 7,
        port: 1,
        flags: 3,
    };
    one.dests.insert(addr("10.1.0.5:80"), odd);
    desired.services.insert(key("tcp://10.0.0.1:80"), one);
    desired.services.insert(
        key("tcp://10.0.0.2:80"),
        Service::new(ServiceAttrs::with_scheduler("sh")),
    );
    let mut mark = Service::new(ServiceAttrs::with_scheduler("wlc"));
    mark.dests
        .insert(addr("[2001:db8::9]:0"), dest(Method::Droute, 3));
    desired.services.insert(
        ServiceKey::Fwmark {
            family: Family::Ipv6,
            mark: 42,
        },
        mark,
    );
    desired
}

#[test]
fn the_hand_written_json_document_is_byte_for_byte_what_serde_wrote() {
    let (desired, live) = (desired_state(), live_state());
    let lax = Guards {
        allow_mass_delete: true,
        ..Guards::default()
    };
    let mut p = plan(&desired, &live, &Ownership::all(), &lax).unwrap();
    assert!(p.changes.len() >= 8, "{}", text(&p, &desired, false));
    let inputs = Inputs {
        config_hash: "0".repeat(64),
        config_revision: Some("abc".into()),
        overlay_hash: None,
        overlay_revision: None,
    };
    let fingerprint = LiveFingerprint {
        source: "file \"live\".txt".into(),
        hash: "1".repeat(64),
        thresholds: false,
    };
    let own = Ownership::all();
    let empty = Plan {
        changes: Vec::new(),
        unmanaged: Vec::new(),
        emptied: Vec::new(),
        ..p.clone()
    };
    for refused in [None, Some("refusing \"this\"\r\n")] {
        for (p, desired) in [(&p, &desired), (&empty, &desired)] {
            assert_eq!(
                json(p, desired, &inputs, &fingerprint, &own, refused),
                oracle(p, desired, &inputs, &fingerprint, &own, refused)
            );
        }
    }
    p.emptied = vec![Emptied {
        service: key("tcp://10.0.0.2:80"),
        dests_before: 3,
        dests_after: 1,
    }];
    p.unmanaged = vec![
        Unmanaged {
            service: key("sctp://192.0.2.1:9"),
            dests: 2,
        },
        Unmanaged {
            service: ServiceKey::Fwmark {
                family: Family::Ipv4,
                mark: 7,
            },
            dests: 0,
        },
    ];
    let _ = Protocol::Tcp;
    let doc = json(&p, &desired, &inputs, &fingerprint, &own, None);
    assert_eq!(doc, oracle(&p, &desired, &inputs, &fingerprint, &own, None));
    // A saved plan reads back the same ops, tunnels included.
    let saved = crate::plan::saved::SavedPlan::from_json(&doc).unwrap();
    let ops: Vec<&Op> = saved.ops().collect();
    assert_eq!(ops, p.ops().collect::<Vec<_>>());
    assert!(
        ops.iter()
            .any(|o| matches!(o, Op::AddDest { attrs, .. } if attrs.tunnel.kind == 7)),
        "{ops:?}"
    );
}
