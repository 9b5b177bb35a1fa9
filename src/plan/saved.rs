//! Saved plans: the fingerprints a plan was made from, reading a saved plan
//! back, and the staleness check `clusterf apply plan.json` runs before it
//! executes anything.
//!
//! The file is the `--output json` document (docs/plan-format.md); reading
//! it back keeps what applying needs: fingerprints and ops.
//!
//! Invariant: pure. The caller reads the file and the live state; this
//! module only compares.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Ownership, OwnershipDoc, Summary, canonical_state};
use crate::model::{IpvsState, Op};

/// Version of the JSON plan document; bumped on any incompatible change.
pub const FORMAT_VERSION: u32 = 1;

/// Fingerprints of the desired-state inputs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inputs {
    /// Content hash of the config tree (SHA-256 over paths and contents).
    pub config_hash: String,
    /// Git commit of the config, when it came from Git.
    pub config_revision: Option<String>,
    /// Content hash of the overlay tree, when there is one.
    pub overlay_hash: Option<String>,
    /// Revision of the overlay (etcd revision), when it has one.
    pub overlay_revision: Option<String>,
}

/// The live state a plan was computed against.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveFingerprint {
    /// `kernel`, `empty`, `file live.txt`, `base-ref main`.
    pub source: String,
    /// [`live_hash`] of the owned part of the live state.
    pub hash: String,
}

/// A saved plan as read back: what applying needs.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct SavedPlan {
    pub format_version: u32,
    pub inputs: Inputs,
    pub live: LiveFingerprint,
    pub ownership: OwnershipDoc,
    pub summary: Summary,
    pub changes: Vec<SavedChange>,
}

/// One change of a saved plan; the other fields of the document are for
/// people and are not read back.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct SavedChange {
    pub op: Op,
}

impl SavedPlan {
    /// Reads a saved plan, refusing other format versions.
    ///
    /// The version is read first by a pass that skips everything else, so
    /// that a plan of another version gets the version message rather than
    /// whatever field it changed; then the document is read once, straight
    /// into [`SavedPlan`] (going through `serde_json::Value` cost three times
    /// as long on a 110,000-change plan).
    pub fn from_json(text: &str) -> Result<SavedPlan, String> {
        /// Only the version; serde skips every other field.
        #[derive(Deserialize)]
        struct Version {
            format_version: Option<serde_json::Value>,
        }
        // A derived struct would also accept an array; a plan is an object.
        if !text.trim_start().starts_with('{') {
            return Err("not a plan file: no \"format_version\"".to_string());
        }
        let version: Version =
            serde_json::from_str(text).map_err(|e| format!("not a plan file: {e}"))?;
        match version.format_version.as_ref().and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(FORMAT_VERSION) => {}
            Some(v) => {
                return Err(format!(
                    "plan format version {v} is not supported (this clusterf reads version {FORMAT_VERSION})"
                ));
            }
            None => return Err("not a plan file: no \"format_version\"".to_string()),
        }
        serde_json::from_str(text).map_err(|e| format!("invalid plan file: {e}"))
    }

    /// The ops to execute, in order.
    pub fn ops(&self) -> impl Iterator<Item = &Op> {
        self.changes.iter().map(|c| &c.op)
    }

    pub fn ownership(&self) -> Result<Ownership, String> {
        Ownership::from_doc(&self.ownership)
    }
}

/// SHA-256 of the owned part of a live state, in canonical form (hex).
/// Unowned services do not count: other tools may change them freely.
pub fn live_hash(live: &IpvsState, ownership: &Ownership) -> String {
    let mut owned = IpvsState::default();
    for (key, svc) in &live.services {
        if ownership.owns(key) {
            owned.services.insert(*key, svc.clone());
        }
    }
    let canonical = canonical_state(&owned);
    let mut h = Sha256::new();
    h.update(crate::ipvsadm::format(&canonical).as_bytes());
    crate::tree::hex(&h.finalize())
}

/// One input that moved since the plan was made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Moved {
    /// `live ipvs state`, `config`, `config revision`, `overlay`,
    /// `overlay revision`.
    pub what: &'static str,
    pub saved: Option<String>,
    pub current: Option<String>,
}

/// Why a saved plan may not be applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Staleness {
    pub moved: Vec<Moved>,
}

fn short(v: &Option<String>) -> String {
    match v {
        Some(s) => s.chars().take(12).collect(),
        None => "none".to_string(),
    }
}

/// `stale plan, nothing applied: live ipvs state changed (0a1b.. -> 9f8e..)`.
impl fmt::Display for Staleness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .moved
            .iter()
            .map(|m| {
                format!(
                    "{} changed ({} -> {})",
                    m.what,
                    short(&m.saved),
                    short(&m.current)
                )
            })
            .collect();
        write!(
            f,
            "stale plan, nothing applied: {}; make a new plan",
            parts.join(", ")
        )
    }
}

/// Checks a saved plan against the live state and inputs of now.
/// `current_inputs` is `None` when the caller did not read the inputs again;
/// then only the live state is checked.
pub fn check_fresh(
    saved: &SavedPlan,
    current_live_hash: &str,
    current_inputs: Option<&Inputs>,
) -> Result<(), Staleness> {
    let mut moved = Vec::new();
    if saved.live.hash != current_live_hash {
        moved.push(Moved {
            what: "live ipvs state",
            saved: Some(saved.live.hash.clone()),
            current: Some(current_live_hash.to_string()),
        });
    }
    if let Some(now) = current_inputs {
        let was = &saved.inputs;
        let mut check = |what, a: &Option<String>, b: &Option<String>| {
            if a != b {
                moved.push(Moved {
                    what,
                    saved: a.clone(),
                    current: b.clone(),
                });
            }
        };
        check(
            "config",
            &Some(was.config_hash.clone()),
            &Some(now.config_hash.clone()),
        );
        check(
            "config revision",
            &was.config_revision,
            &now.config_revision,
        );
        check("overlay", &was.overlay_hash, &now.overlay_hash);
        check(
            "overlay revision",
            &was.overlay_revision,
            &now.overlay_revision,
        );
    }
    if moved.is_empty() {
        Ok(())
    } else {
        Err(Staleness { moved })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DestAttrs, Method, Service, ServiceAttrs, ServiceKey};

    fn saved(live_hash: &str, inputs: Inputs) -> SavedPlan {
        SavedPlan {
            format_version: FORMAT_VERSION,
            inputs,
            live: LiveFingerprint {
                source: "kernel".into(),
                hash: live_hash.into(),
            },
            ownership: Ownership::all().doc(),
            summary: Summary::default(),
            changes: Vec::new(),
        }
    }

    fn inputs(config: &str, overlay: Option<&str>) -> Inputs {
        Inputs {
            config_hash: config.into(),
            config_revision: None,
            overlay_hash: overlay.map(Into::into),
            overlay_revision: None,
        }
    }

    #[test]
    fn fresh_when_nothing_moved() {
        let s = saved("aaa", inputs("c1", Some("o1")));
        assert_eq!(
            check_fresh(&s, "aaa", Some(&inputs("c1", Some("o1")))),
            Ok(())
        );
        assert_eq!(check_fresh(&s, "aaa", None), Ok(()));
    }

    #[test]
    fn names_everything_that_moved() {
        let s = saved("aaa", inputs("c1", Some("o1")));
        let e = check_fresh(&s, "bbb", Some(&inputs("c2", None))).unwrap_err();
        let what: Vec<&str> = e.moved.iter().map(|m| m.what).collect();
        assert_eq!(what, vec!["live ipvs state", "config", "overlay"]);
        let msg = e.to_string();
        assert!(
            msg.starts_with("stale plan, nothing applied: live ipvs state changed (aaa -> bbb)")
        );
        assert!(msg.contains("overlay changed (o1 -> none)"), "{msg}");
        // Only the live state moved.
        let e = check_fresh(&s, "ccc", Some(&inputs("c1", Some("o1")))).unwrap_err();
        assert_eq!(e.moved.len(), 1);
        // A revision alone moving is staleness too.
        let mut now = inputs("c1", Some("o1"));
        now.config_revision = Some("deadbeef".into());
        let e = check_fresh(&s, "aaa", Some(&now)).unwrap_err();
        assert_eq!(e.moved[0].what, "config revision");
        // Hashes are shortened by characters: no panic on odd input.
        let e = check_fresh(&s, &"é".repeat(20), None).unwrap_err();
        assert!(e.to_string().contains(&"é".repeat(12)));
    }

    #[test]
    fn live_hash_ignores_unowned_and_spelling() {
        let key: ServiceKey = "tcp://10.0.0.1:80".parse().unwrap();
        let other: ServiceKey = "tcp://192.168.0.1:80".parse().unwrap();
        let mut a = IpvsState::default();
        let mut svc = Service::new(ServiceAttrs::with_scheduler("wlc"));
        svc.dests.insert(
            "10.1.0.1:80".parse().unwrap(),
            crate::model::Dest {
                attrs: DestAttrs::new(Method::Masq, 10),
                origins: Vec::new(),
            },
        );
        a.services.insert(key, svc.clone());
        let own = Ownership::parse(&["10.0.0.0/8".into()], &[]).unwrap();
        let h = live_hash(&a, &own);
        let mut b = a.clone();
        b.services
            .insert(other, Service::new(ServiceAttrs::with_scheduler("rr")));
        assert_eq!(live_hash(&b, &own), h, "unowned services do not count");
        assert_ne!(live_hash(&b, &Ownership::all()), h);
        let mut c = a.clone();
        c.services.get_mut(&key).unwrap().attrs.netmask = Some(32);
        assert_eq!(live_hash(&c, &own), h, "netmask without persistence");
        let mut d = a.clone();
        d.services
            .get_mut(&key)
            .unwrap()
            .dests
            .values_mut()
            .next()
            .unwrap()
            .attrs
            .weight = 11;
        assert_ne!(live_hash(&d, &own), h);
    }

    #[test]
    fn reads_only_its_own_version() {
        let e = SavedPlan::from_json(r#"{"format_version": 2}"#).unwrap_err();
        assert!(e.contains("version 2 is not supported"), "{e}");
        assert!(
            SavedPlan::from_json("[]")
                .unwrap_err()
                .contains("format_version")
        );
        assert!(
            SavedPlan::from_json("{")
                .unwrap_err()
                .starts_with("not a plan file")
        );
    }
}
