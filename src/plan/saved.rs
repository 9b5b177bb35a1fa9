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

use super::{Guards, Ownership, OwnershipDoc, Plan, PlanError, Summary, canonical_state};
use crate::model::{IpvsState, Op, Provenance};

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
    /// Whether the source could see dest thresholds. `ipvsadm -S` never
    /// saves `-x`/`-y`, so a plan made against a dump file hashes the live
    /// state without them, and `apply` checks the kernel the same way
    /// ([`LiveFingerprint::hash_of`]); otherwise such a plan would always
    /// be stale on a frontend that has thresholds.
    #[serde(default = "thresholds_seen", skip_serializing_if = "Clone::clone")]
    pub thresholds: bool,
}

fn thresholds_seen() -> bool {
    true
}

impl LiveFingerprint {
    /// The fingerprint of `live` read from `source`; `thresholds`: whether
    /// that source shows dest thresholds.
    pub fn new(source: String, live: &IpvsState, ownership: &Ownership, thresholds: bool) -> Self {
        let mut fp = LiveFingerprint {
            source,
            hash: String::new(),
            thresholds,
        };
        fp.hash = fp.hash_of(live, ownership);
        fp
    }

    /// The fingerprint of a live state read from `source` for an output
    /// that does not show the hash (text, markdown): its hash is empty, and
    /// the state is not hashed. A plan saved or printed as JSON needs
    /// [`LiveFingerprint::new`].
    pub fn unhashed(source: String, thresholds: bool) -> Self {
        LiveFingerprint {
            source,
            hash: String::new(),
            thresholds,
        }
    }

    /// The hash of `live` as this fingerprint's source saw it: without
    /// thresholds when it could not see them.
    pub fn hash_of(&self, live: &IpvsState, ownership: &Ownership) -> String {
        if self.thresholds {
            return live_hash(live, ownership);
        }
        let mut blind = live.clone();
        for svc in blind.services.values_mut() {
            for d in svc.dests.values_mut() {
                d.attrs.upper_threshold = 0;
                d.attrs.lower_threshold = 0;
            }
        }
        live_hash(&blind, ownership)
    }
}

/// A saved plan as read back: what applying needs.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct SavedPlan {
    pub format_version: u32,
    pub inputs: Inputs,
    pub live: LiveFingerprint,
    pub ownership: OwnershipDoc,
    pub summary: Summary,
    /// Why a guard refused the plan when it was made; such a plan is never
    /// applied (see [`SavedPlan::from_json`]).
    #[serde(default)]
    pub refused: Option<String>,
    pub changes: Vec<SavedChange>,
}

/// One change of a saved plan: the op, and the names and provenance that
/// the plan text shows again when the plan is applied. The other fields of
/// the document are for people and are not read back.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct SavedChange {
    pub op: Op,
    #[serde(default)]
    pub names: Vec<String>,
    #[serde(default)]
    pub provenance: Vec<Provenance>,
    /// Why health checks changed the dest (plans made by the daemon).
    #[serde(default)]
    pub health: Option<String>,
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
        let plan: SavedPlan =
            serde_json::from_str(text).map_err(|e| format!("invalid plan file: {e}"))?;
        if let Some(reason) = &plan.refused {
            return Err(format!(
                "the plan was refused when it was made ({reason}); make a new plan"
            ));
        }
        Ok(plan)
    }

    /// The ops to execute, in order.
    pub fn ops(&self) -> impl Iterator<Item = &Op> {
        self.changes.iter().map(|c| &c.op)
    }

    pub fn ownership(&self) -> Result<Ownership, String> {
        Ownership::from_doc(&self.ownership)
    }
}

/// Why a saved plan's changes may not be applied, found by [`replay`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// A change touches a service outside the plan's own ownership.
    #[error(
        "change {index} ({op}) touches {service}, outside the plan's ownership; the plan file was edited or is corrupt, nothing applied"
    )]
    NotOwned {
        index: usize,
        op: String,
        service: String,
    },
    /// A change does not apply to the live state in order.
    #[error("change {index} ({op}) does not apply to the live state: {reason}; nothing applied")]
    DoesNotApply {
        index: usize,
        op: String,
        reason: String,
    },
    /// The changes are not the plan clusterf makes from the live state to
    /// the state they lead to: wrong order, a blackhole, extra or missing
    /// changes.
    #[error(
        "the plan file's changes are not the plan clusterf makes for them ({detail}); the plan file was edited or is corrupt, nothing applied"
    )]
    NotThePlan { detail: String },
    /// The replanned changes trip a guard, or leave the ownership.
    #[error(transparent)]
    Plan(#[from] PlanError),
}

/// The desired state a saved plan leads to: the owned part of `live` with
/// the plan's changes applied in order, with the names and provenance the
/// document carries. A change outside the plan's ownership, or one that
/// does not apply (adding what exists, editing what does not), is an error.
/// `ownership` is the plan's own ([`SavedPlan::ownership`]).
pub fn desired_after(
    saved: &SavedPlan,
    ownership: &Ownership,
    live: &IpvsState,
) -> Result<IpvsState, ReplayError> {
    let mut desired = IpvsState::default();
    for (key, svc) in &live.services {
        if ownership.owns(key) {
            desired.services.insert(*key, svc.clone());
        }
    }
    for (i, change) in saved.changes.iter().enumerate() {
        let op = &change.op;
        if !ownership.owns(op.service()) {
            return Err(ReplayError::NotOwned {
                index: i + 1,
                op: op.to_string(),
                service: op.service().to_string(),
            });
        }
        op.apply_to(&mut desired)
            .map_err(|reason| ReplayError::DoesNotApply {
                index: i + 1,
                op: op.to_string(),
                reason,
            })?;
        let Some(svc) = desired.services.get_mut(op.service()) else {
            continue;
        };
        match op {
            Op::AddService { .. } | Op::EditService { .. } => svc.names = change.names.clone(),
            Op::AddDest { dest, .. } | Op::EditDest { dest, .. } => {
                if let Some(d) = svc.dests.get_mut(dest) {
                    d.provenance = change.provenance.as_slice().into();
                    match change.health.as_deref() {
                        Some(note) => svc.health.insert(*dest, note.into()),
                        None => svc.health.remove(dest),
                    };
                }
            }
            Op::DelService { .. } | Op::DelDest { .. } => {}
        }
    }
    Ok(desired)
}

/// Checks a saved plan's changes before they are applied: planning from
/// `live` to [`desired_after`] with `guards` must give exactly the saved
/// changes. So a saved plan is held to every rule a fresh plan is: only
/// owned services, make-before-break order, no service emptied on the way,
/// the mass-delete guards of the command that applies it. A plan written by
/// `clusterf plan --out` and found fresh by [`check_fresh`] passes; one
/// edited by hand or corrupted does not. Returns the plan, for showing it.
pub fn replay(
    saved: &SavedPlan,
    ownership: &Ownership,
    desired: &IpvsState,
    live: &IpvsState,
    guards: &Guards,
) -> Result<Plan, ReplayError> {
    let plan = super::plan(desired, live, ownership, guards)?;
    if let Some((i, (ours, theirs))) = plan
        .ops()
        .zip(saved.ops())
        .enumerate()
        .find(|(_, (a, b))| a != b)
    {
        return Err(ReplayError::NotThePlan {
            detail: format!(
                "change {} is to {theirs}, clusterf plans to {ours} there",
                i + 1
            ),
        });
    }
    if plan.changes.len() != saved.changes.len() {
        return Err(ReplayError::NotThePlan {
            detail: format!(
                "{} changes where clusterf plans {}",
                saved.changes.len(),
                plan.changes.len()
            ),
        });
    }
    Ok(plan)
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
    // The content hashes decide. A revision moves without the content:
    // etcd's is store-wide (any write anywhere bumps it), a commit may
    // touch nothing the config reads. It is reported next to a content
    // change, never staleness on its own.
    if let Some(now) = current_inputs {
        let was = &saved.inputs;
        let mut check = |what,
                         revision,
                         a: (&Option<String>, &Option<String>),
                         b: (&Option<String>, &Option<String>)| {
            if a.0 != b.0 {
                moved.push(Moved {
                    what,
                    saved: a.0.clone(),
                    current: b.0.clone(),
                });
                if a.1 != b.1 {
                    moved.push(Moved {
                        what: revision,
                        saved: a.1.clone(),
                        current: b.1.clone(),
                    });
                }
            }
        };
        check(
            "config",
            "config revision",
            (&Some(was.config_hash.clone()), &was.config_revision),
            (&Some(now.config_hash.clone()), &now.config_revision),
        );
        check(
            "overlay",
            "overlay revision",
            (&was.overlay_hash, &was.overlay_revision),
            (&now.overlay_hash, &now.overlay_revision),
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
                thresholds: true,
            },
            ownership: Ownership::all().doc(),
            summary: Summary::default(),
            refused: None,
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
        // A revision alone moving is no staleness (etcd's revision is
        // store-wide); with the content it is reported next to it.
        let mut now = inputs("c1", Some("o1"));
        now.config_revision = Some("deadbeef".into());
        now.overlay_revision = Some("77".into());
        assert_eq!(check_fresh(&s, "aaa", Some(&now)), Ok(()));
        now.config_hash = "c2".into();
        let e = check_fresh(&s, "aaa", Some(&now)).unwrap_err();
        let what: Vec<&str> = e.moved.iter().map(|m| m.what).collect();
        assert_eq!(what, vec!["config", "config revision"]);
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
                provenance: Box::default(),
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

    /// A state of `(service, [(dest, weight)])`, masq dests; each dest
    /// with one provenance entry naming it, so provenance round trips are visible.
    fn state(services: &[(&str, &[(&str, u32)])]) -> IpvsState {
        let mut st = IpvsState::default();
        for (k, dests) in services {
            let mut svc = Service::new(ServiceAttrs::with_scheduler("wlc"));
            svc.names = vec![format!("name-of-{k}")];
            for (d, w) in *dests {
                svc.dests.insert(
                    d.parse().unwrap(),
                    crate::model::Dest {
                        attrs: DestAttrs::new(Method::Masq, *w),
                        provenance: Box::new([Provenance {
                            backend: format!("b-{d}").into(),
                            source: "services/x.yaml".into(),
                            weight: *w,
                            route: None,
                            fallback: false,
                        }]),
                    },
                );
            }
            st.services.insert(k.parse::<ServiceKey>().unwrap(), svc);
        }
        st
    }

    /// Live without names and provenance, as the kernel reports it.
    fn as_live(st: &IpvsState) -> IpvsState {
        let mut live = st.clone();
        for svc in live.services.values_mut() {
            svc.names.clear();
            for d in svc.dests.values_mut() {
                d.provenance = Box::default();
            }
        }
        live
    }

    /// What `clusterf plan --out` saves for `plan`: ops, names, provenance.
    fn saved_from(plan: &Plan, desired: &IpvsState, ownership: &Ownership) -> SavedPlan {
        let mut s = saved("h", inputs("c", None));
        s.ownership = ownership.doc();
        s.changes = plan
            .changes
            .iter()
            .map(|c| {
                let svc = desired.services.get(c.op.service());
                let names = svc.map(|s| s.names.clone()).unwrap_or_default();
                let provenance = match (&c.op, svc) {
                    (Op::AddDest { dest, .. } | Op::EditDest { dest, .. }, Some(s)) => {
                        s.dests[dest].provenance.to_vec()
                    }
                    _ => Vec::new(),
                };
                SavedChange {
                    op: c.op.clone(),
                    names: match c.op {
                        Op::AddService { .. } | Op::EditService { .. } => names,
                        _ => Vec::new(),
                    },
                    provenance,
                    health: None,
                }
            })
            .collect();
        s
    }

    fn check_replay(saved: &SavedPlan, live: &IpvsState) -> Result<Plan, ReplayError> {
        let own = saved.ownership().unwrap();
        let desired = desired_after(saved, &own, live)?;
        replay(saved, &own, &desired, live, &Guards::default())
    }

    #[test]
    fn a_saved_plan_replays_to_itself_with_its_provenance() {
        let live = as_live(&state(&[
            (
                "tcp://10.0.0.1:80",
                &[("10.1.0.1:80", 10), ("10.1.0.2:80", 10)],
            ),
            ("tcp://10.0.0.2:80", &[("10.1.0.3:80", 10)]),
        ]));
        let desired = state(&[
            (
                "tcp://10.0.0.1:80",
                &[("10.1.0.1:80", 20), ("10.1.0.4:80", 10)],
            ),
            ("tcp://10.0.0.2:80", &[("10.1.0.3:80", 10)]),
            ("tcp://10.0.0.3:80", &[("10.1.0.5:80", 10)]),
        ]);
        let own = Ownership::all();
        let plan = super::super::plan(&desired, &live, &own, &Guards::default()).unwrap();
        let s = saved_from(&plan, &desired, &own);
        let again = desired_after(&s, &own, &live).unwrap();
        // Names and provenance of what changed come back; unchanged parts
        // are the live state's (no names, no provenance).
        let added = &again.services[&"tcp://10.0.0.3:80".parse().unwrap()];
        assert_eq!(added.names, vec!["name-of-tcp://10.0.0.3:80".to_string()]);
        let edited = &again.services[&"tcp://10.0.0.1:80".parse().unwrap()];
        let d = &edited.dests[&"10.1.0.1:80".parse().unwrap()];
        assert_eq!(
            (d.attrs.weight, &*d.provenance[0].backend),
            (20, "b-10.1.0.1:80")
        );
        let replanned = replay(&s, &own, &again, &live, &Guards::default()).unwrap();
        // The same plan, down to the counts the guards use.
        assert_eq!(replanned, plan);
    }

    #[test]
    fn an_edited_saved_plan_is_refused() {
        let live = as_live(&state(&[(
            "tcp://10.0.0.1:80",
            &[("10.1.0.1:80", 10), ("10.1.0.2:80", 10)],
        )]));
        let desired = state(&[(
            "tcp://10.0.0.1:80",
            &[("10.1.0.2:80", 10), ("10.1.0.3:80", 10)],
        )]);
        let own = Ownership::restricted(vec!["10.0.0.0/24".parse().unwrap()], Vec::new());
        let plan = super::super::plan(&desired, &live, &own, &Guards::default()).unwrap();
        let good = saved_from(&plan, &desired, &own);
        assert!(check_replay(&good, &live).is_ok());

        // Break before make: the delete moved ahead of the add.
        let mut s = good.clone();
        s.changes.reverse();
        let e = check_replay(&s, &live).unwrap_err();
        assert!(matches!(e, ReplayError::NotThePlan { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("change 1 is to delete dest 10.1.0.1:80"),
            "{e}"
        );

        // A change outside the plan's own ownership.
        let mut s = good.clone();
        s.changes.push(SavedChange {
            op: Op::DelService {
                service: "tcp://172.16.0.1:80".parse().unwrap(),
            },
            names: Vec::new(),
            provenance: Vec::new(),
            health: None,
        });
        let mut live2 = live.clone();
        live2.services.insert(
            "tcp://172.16.0.1:80".parse().unwrap(),
            Service::new(ServiceAttrs::with_scheduler("rr")),
        );
        let e = check_replay(&s, &live2).unwrap_err();
        assert_eq!(
            e.to_string(),
            "change 3 (delete service tcp://172.16.0.1:80) touches tcp://172.16.0.1:80, outside the plan's ownership; the plan file was edited or is corrupt, nothing applied"
        );

        // A change that does not apply: adding a dest that exists.
        let mut s = good.clone();
        s.changes[0].op = Op::AddDest {
            service: "tcp://10.0.0.1:80".parse().unwrap(),
            dest: "10.1.0.2:80".parse().unwrap(),
            attrs: DestAttrs::new(Method::Masq, 10),
        };
        let e = check_replay(&s, &live).unwrap_err();
        assert!(
            matches!(e, ReplayError::DoesNotApply { index: 1, .. }),
            "{e}"
        );

        // A dest the kernel refuses (an address validation would refuse):
        // held to the kernel's rule, as the live table is.
        let mut s = good.clone();
        s.changes[0].op = Op::AddDest {
            service: "tcp://10.0.0.1:80".parse().unwrap(),
            dest: "0.0.0.0:80".parse().unwrap(),
            attrs: DestAttrs::new(Method::Masq, 10),
        };
        let e = check_replay(&s, &live).unwrap_err();
        assert_eq!(
            e.to_string(),
            "change 1 (add dest 0.0.0.0:80 of tcp://10.0.0.1:80) does not apply to the live state: dest 0.0.0.0:80 of tcp://10.0.0.1:80: invalid argument (0.0.0.0 is the unspecified address); nothing applied"
        );

        // A change dropped leaves the plan for another desired state; it
        // is still held to every rule, and here it keeps them all.
        let mut s = good.clone();
        s.changes.remove(0);
        assert!(
            check_replay(&s, &live).is_ok(),
            "a shorter valid plan is a plan"
        );
        // An extra no-op edit (same attrs) is not what clusterf plans.
        let mut s = good;
        s.changes.insert(
            0,
            SavedChange {
                op: Op::EditDest {
                    service: "tcp://10.0.0.1:80".parse().unwrap(),
                    dest: "10.1.0.2:80".parse().unwrap(),
                    attrs: DestAttrs::new(Method::Masq, 10),
                },
                names: Vec::new(),
                provenance: Vec::new(),
                health: None,
            },
        );
        let e = check_replay(&s, &live).unwrap_err();
        assert!(matches!(e, ReplayError::NotThePlan { .. }), "{e}");
    }

    #[test]
    fn a_saved_plan_meets_the_guards_of_the_apply() {
        let dests: Vec<(String, u32)> = (1..=20).map(|i| (format!("10.1.0.{i}:80"), 10)).collect();
        let dests: Vec<(&str, u32)> = dests.iter().map(|(d, w)| (d.as_str(), *w)).collect();
        let live = as_live(&state(&[
            ("tcp://10.0.0.1:80", &dests),
            ("tcp://10.0.0.2:80", &[("10.2.0.1:80", 10)]),
        ]));
        let desired = state(&[("tcp://10.0.0.2:80", &[("10.2.0.1:80", 10)])]);
        let own = Ownership::all();
        let allow = Guards {
            allow_mass_delete: true,
            ..Guards::default()
        };
        let plan = super::super::plan(&desired, &live, &own, &allow).unwrap();
        let s = saved_from(&plan, &desired, &own);
        let again = desired_after(&s, &own, &live).unwrap();
        let e = replay(&s, &own, &again, &live, &Guards::default()).unwrap_err();
        assert!(
            matches!(e, ReplayError::Plan(PlanError::MassDelete { .. })),
            "made with --allow-mass-delete, applied without: {e}"
        );
        assert!(replay(&s, &own, &again, &live, &allow).is_ok());
    }

    /// The saved plan the VM applies (tests/vm/scenarios/netlink-client.sh)
    /// is one clusterf itself would make against the VM's empty table.
    #[test]
    fn the_vm_fixture_plan_replays_against_an_empty_table() {
        let s = SavedPlan::from_json(include_str!(
            "../../tests/fixtures/netlink/vm/all-features.plan.json"
        ))
        .unwrap();
        let empty = IpvsState::default();
        assert_eq!(s.live.hash, live_hash(&empty, &s.ownership().unwrap()));
        let r = check_replay(&s, &empty);
        assert!(r.is_ok(), "{}", r.unwrap_err());
    }

    /// The first dest of the first service.
    fn only_dest(st: &mut IpvsState) -> &mut crate::model::Dest {
        let svc = st.services.values_mut().next().unwrap();
        svc.dests.values_mut().next().unwrap()
    }

    /// A plan made against an `ipvsadm -S -n` dump (no thresholds) is not
    /// stale on a kernel whose only difference is thresholds; a weight
    /// moving still is.
    #[test]
    fn a_dump_without_thresholds_fingerprints_without_them() {
        let own = Ownership::all();
        let dump = as_live(&state(&[("tcp://10.0.0.1:80", &[("10.1.0.1:80", 10)])]));
        let fp = LiveFingerprint::new("file live.txt".into(), &dump, &own, false);
        let mut kernel = dump.clone();
        let d = only_dest(&mut kernel);
        d.attrs.upper_threshold = 100;
        d.attrs.lower_threshold = 10;
        assert_eq!(fp.hash_of(&kernel, &own), fp.hash);
        let seeing = LiveFingerprint::new("kernel".into(), &dump, &own, true);
        assert_ne!(seeing.hash_of(&kernel, &own), seeing.hash);
        only_dest(&mut kernel).attrs.weight = 11;
        assert_ne!(fp.hash_of(&kernel, &own), fp.hash);
        // The field is written only when false; a plan without it sees them.
        let json = serde_json::to_value(&seeing).unwrap();
        assert!(json.get("thresholds").is_none(), "{json}");
        let back: LiveFingerprint = serde_json::from_value(json).unwrap();
        assert!(back.thresholds);
        let json = serde_json::to_value(&fp).unwrap();
        assert_eq!(json["thresholds"], false);
    }

    #[test]
    fn a_refused_plan_is_never_read_for_applying() {
        let text = include_str!("../../tests/fixtures/netlink/vm/all-features.plan.json");
        let mut doc: serde_json::Value = serde_json::from_str(text).unwrap();
        doc["refused"] = serde_json::Value::Null;
        assert!(SavedPlan::from_json(&doc.to_string()).is_ok());
        doc["refused"] = "refusing a plan that deletes every owned service (1 of 1)".into();
        let e = SavedPlan::from_json(&doc.to_string()).unwrap_err();
        assert!(
            e.starts_with("the plan was refused when it was made (refusing"),
            "{e}"
        );
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
