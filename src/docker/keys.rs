//! The publisher's key set: which tree paths (below the etcd prefix) with
//! which values one publisher wants, and the plan that turns what it has
//! published into that.
//!
//! Paths: `services/<svc>/backends/<container-id>` (backends),
//! `routes/<name>` (the advertised route) and `.publishers/<publisher-id>`
//! (the marker naming the publisher's lease; a dot-file, so overlay readers
//! skip it).
//!
//! Invariant: pure. Maps in, maps and plans out; no etcd client, no clock.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::labels::{BackendValue, Backends};
use crate::model::{Family, Method};

/// Where publisher markers live below the prefix.
pub const MARKER_DIR: &str = ".publishers";

/// Tree path -> value.
pub type KeySet = BTreeMap<String, String>;

/// The tree path of a backend.
pub fn backend_path(service: &str, backend: &str) -> String {
    format!("services/{service}/backends/{backend}")
}

/// The (service, backend) of a backend path; `None` for other paths.
pub fn parse_backend_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("services/")?;
    let (svc, rest) = rest.split_once('/')?;
    let name = rest.strip_prefix("backends/")?;
    (!svc.is_empty() && !name.is_empty() && !name.contains('/')).then_some((svc, name))
}

/// The tree path of a publisher's marker.
pub fn marker_path(publisher: &str) -> String {
    format!("{MARKER_DIR}/{publisher}")
}

/// The marker's value: which lease holds the publisher's keys.
pub fn marker_value(lease: i64, ttl: i64) -> String {
    serde_json::json!({ "lease": lease, "ttl": ttl }).to_string()
}

/// The lease id a marker names, if the value is a marker.
pub fn parse_marker(value: &[u8]) -> Option<i64> {
    let v: serde_json::Value = serde_json::from_slice(value).ok()?;
    v.get("lease")?.as_i64()
}

/// A route advertised for the local Docker network (two-tier routed
/// backends), validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteAd {
    pub name: String,
    pub prefix: IpNet,
    pub gateway: Option<IpAddr>,
    pub method: Option<Method>,
}

impl RouteAd {
    /// Checks the parts: the name is a valid key component, the gateway is
    /// of the prefix's family.
    pub fn new(
        name: &str,
        prefix: IpNet,
        gateway: Option<IpAddr>,
        method: Option<Method>,
    ) -> Result<RouteAd, String> {
        if !super::labels::valid_service_name(name) {
            return Err(format!(
                "invalid route name {name:?}: use letters, digits and - _ . @ :"
            ));
        }
        if let Some(gw) = gateway
            && Family::of(&gw) != Family::of(&prefix.addr())
        {
            return Err(format!(
                "gateway {gw} is {} but prefix {prefix} is {}",
                Family::of(&gw),
                Family::of(&prefix.addr())
            ));
        }
        Ok(RouteAd {
            name: name.to_string(),
            prefix: prefix.trunc(),
            gateway,
            method,
        })
    }

    pub fn path(&self) -> String {
        format!("routes/{}", self.name)
    }

    /// `{"Prefix": "10.6.107.0/24", "Gateway": "10.107.107.6", "IPVSMethod": "droute"}`
    pub fn to_json(&self) -> String {
        let mut obj = serde_json::Map::new();
        obj.insert("Prefix".into(), self.prefix.to_string().into());
        if let Some(gw) = self.gateway {
            obj.insert("Gateway".into(), gw.to_string().into());
        }
        if let Some(m) = self.method {
            obj.insert("IPVSMethod".into(), m.as_str().into());
        }
        serde_json::Value::Object(obj).to_string()
    }
}

/// The key set a publisher wants: its backends, its route, its marker.
pub fn desired(
    backends: &Backends,
    route: Option<&RouteAd>,
    marker: Option<(&str, String)>,
) -> KeySet {
    let mut keys = KeySet::new();
    for ((svc, name), value) in backends {
        keys.insert(backend_path(svc, name), value.to_json());
    }
    if let Some(r) = route {
        keys.insert(r.path(), r.to_json());
    }
    if let Some((publisher, value)) = marker {
        keys.insert(marker_path(publisher), value);
    }
    keys
}

/// The backends among a published key set (to carry drained backends of
/// stopped containers over, see [`super::labels::translate`]).
pub fn backends_of(keys: &KeySet) -> Backends {
    let mut out = Backends::new();
    for (path, value) in keys {
        if let Some((svc, name)) = parse_backend_path(path)
            && let Some(v) = BackendValue::from_json(value)
        {
            out.insert((svc.to_string(), name.to_string()), v);
        }
    }
    out
}

/// One change to the published key set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Put(String, String),
    Delete(String),
}

impl Change {
    pub fn path(&self) -> &str {
        match self {
            Change::Put(p, _) | Change::Delete(p) => p,
        }
    }
}

/// The changes from `current` to `desired`: puts of new and changed keys,
/// deletes of keys no longer wanted. Unchanged keys are not touched (no
/// flapping, no needless revisions).
pub fn plan(current: &KeySet, desired: &KeySet) -> Vec<Change> {
    let mut changes = Vec::new();
    for (path, value) in desired {
        if current.get(path) != Some(value) {
            changes.push(Change::Put(path.clone(), value.clone()));
        }
    }
    for path in current.keys() {
        if !desired.contains_key(path) {
            changes.push(Change::Delete(path.clone()));
        }
    }
    changes
}

/// Splits changes into transactions of at most `max_ops` operations,
/// keeping all changes of one backend name (one container) in the same
/// transaction, so a container's backends are never half written. A group
/// larger than `max_ops` gets a transaction of its own.
pub fn batches(changes: Vec<Change>, max_ops: usize) -> Vec<Vec<Change>> {
    let max_ops = max_ops.max(1);
    let mut groups: BTreeMap<String, Vec<Change>> = BTreeMap::new();
    for c in changes {
        let group = match parse_backend_path(c.path()) {
            Some((_, name)) => format!("b:{name}"),
            None => format!("k:{}", c.path()),
        };
        groups.entry(group).or_default().push(c);
    }
    let mut out: Vec<Vec<Change>> = Vec::new();
    let mut cur: Vec<Change> = Vec::new();
    for (_, group) in groups {
        if !cur.is_empty() && cur.len() + group.len() > max_ops {
            out.push(std::mem::take(&mut cur));
        }
        cur.extend(group);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ks(pairs: &[(&str, &str)]) -> KeySet {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn plan_puts_changed_and_deletes_gone_only() {
        let current = ks(&[("a", "1"), ("b", "2"), ("c", "3")]);
        let desired = ks(&[("a", "1"), ("b", "20"), ("d", "4")]);
        assert_eq!(
            plan(&current, &desired),
            vec![
                Change::Put("b".into(), "20".into()),
                Change::Put("d".into(), "4".into()),
                Change::Delete("c".into()),
            ]
        );
        assert!(plan(&desired, &desired).is_empty());
    }

    #[test]
    fn batches_keep_a_container_together() {
        let changes = vec![
            Change::Put(backend_path("a", "c1"), "x".into()),
            Change::Put(backend_path("b", "c2"), "x".into()),
            Change::Put(backend_path("b", "c1"), "x".into()),
            Change::Delete(backend_path("c", "c1")),
            Change::Put("routes/r".into(), "x".into()),
        ];
        let b = batches(changes, 3);
        // c1's three changes fill one batch; c2 and the route share the next.
        assert_eq!(b.len(), 2);
        assert!(b[0].iter().all(|c| c.path().ends_with("/c1")));
        assert_eq!(b[0].len(), 3);
        assert_eq!(
            b[1],
            vec![
                Change::Put(backend_path("b", "c2"), "x".into()),
                Change::Put("routes/r".into(), "x".into())
            ]
        );
        // An oversized group still goes out, alone.
        assert_eq!(batches(b.concat(), 1).len(), 3);
    }

    #[test]
    fn backend_paths_round_trip() {
        assert_eq!(
            parse_backend_path(&backend_path("web", "abc")),
            Some(("web", "abc"))
        );
        assert_eq!(parse_backend_path("routes/x"), None);
        assert_eq!(parse_backend_path("services/web/frontend"), None);
        assert_eq!(parse_backend_path("services/web/backends/"), None);
        assert_eq!(parse_backend_path("services//backends/x"), None);
    }

    #[test]
    fn marker_round_trips() {
        assert_eq!(parse_marker(marker_value(42, 10).as_bytes()), Some(42));
        assert_eq!(parse_marker(b"{}"), None);
        assert_eq!(parse_marker(b"not json"), None);
    }

    #[test]
    fn route_json_is_what_the_overlay_reads() {
        let r = RouteAd::new(
            "docker1",
            "10.6.107.9/24".parse().unwrap(),
            Some("10.107.107.6".parse().unwrap()),
            Some(Method::Droute),
        )
        .unwrap();
        assert_eq!(
            r.to_json(),
            r#"{"Prefix":"10.6.107.0/24","Gateway":"10.107.107.6","IPVSMethod":"droute"}"#
        );
        let mut tree = crate::tree::Tree::new("test");
        tree.insert(r.path(), r.to_json());
        let (overlay, diags) = crate::config::parse_overlay(&tree);
        assert!(diags.iter().next().is_none(), "{diags:?}");
        let route = &overlay.routes["docker1"];
        assert_eq!(route.prefix, Some("10.6.107.0/24".parse().unwrap()));
        assert_eq!(route.gateway, Some("10.107.107.6".parse().unwrap()));
        assert_eq!(route.method, Some(Method::Droute));

        let err = RouteAd::new(
            "x",
            "10.0.0.0/8".parse().unwrap(),
            Some("2001:db8::1".parse().unwrap()),
            None,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "gateway 2001:db8::1 is ipv6 but prefix 10.0.0.0/8 is ipv4"
        );
        assert!(RouteAd::new("a/b", "10.0.0.0/8".parse().unwrap(), None, None).is_err());
    }
}
