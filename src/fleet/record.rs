//! One frontend's status record: the JSON document its daemon writes to
//! `<prefix>/status/frontends/<frontend-id>`, versioned like the plan
//! format (docs/status-format.md).

use serde::{Deserialize, Serialize};

/// Version of the record format; a reader refuses records of a newer one.
pub const FORMAT_VERSION: u32 = 1;

/// The largest record a reader takes (a record is a few hundred bytes; the
/// first diagnostics of an error are cut to fit).
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// What a frontend says about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontendStatus {
    pub format: u32,
    pub frontend: String,
    /// The clusterf version of the daemon.
    pub version: String,
    /// The config source, as logs name it (credentials redacted).
    pub config_source: String,
    /// The commit the last pass rendered (Git sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// When this frontend first rendered `commit` (Unix ms): the newest
    /// commit of the fleet is the one first seen last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_seen_ms: Option<u64>,
    /// The content hash of the config the last pass rendered.
    pub config_hash: String,
    /// The etcd revision of the overlay the last pass rendered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlay_revision: Option<i64>,
    /// The commit (or, without one, the config hash) of the last pass that
    /// applied without error, and its desired state's hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_desired_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_apply_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_pass_ms: Option<u64>,
    /// What keeps the frontend from applying, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<FrontendError>,
    /// What this frontend owns (`--own`, `--own-fwmark`), as flags say it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub own: Vec<String>,
    pub services: u32,
    pub dests: u32,
    #[serde(default)]
    pub unhealthy_dests: u32,
    #[serde(default)]
    pub drains: u32,
    /// Passes that corrected a kernel table changed behind our back.
    #[serde(default)]
    pub drift_corrections: u64,
    /// When the record was written (Unix ms).
    pub written_ms: u64,
}

/// Why a frontend does not apply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrontendError {
    pub kind: ProblemKind,
    pub message: String,
    /// The first diagnostics, as `validate` prints them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The config did not validate: nothing of it was applied.
    ValidationFailed,
    /// A source could not be read: the last good state is kept.
    FailStatic,
    /// A guard refused the plan (mass delete, emptied services).
    GuardRefused,
    /// The kernel refused some ops (the failed services are named).
    ApplyFailed,
}

impl ProblemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::ValidationFailed => "validation failed",
            ProblemKind::FailStatic => "fail static",
            ProblemKind::GuardRefused => "guard refused",
            ProblemKind::ApplyFailed => "apply failed",
        }
    }
}

impl FrontendStatus {
    /// Reads a record, or says what is wrong with it in a few words.
    pub fn parse(bytes: &[u8]) -> Result<FrontendStatus, String> {
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(format!(
                "record of {} bytes, more than {MAX_RECORD_BYTES}",
                bytes.len()
            ));
        }
        #[derive(Deserialize)]
        struct Format {
            format: u32,
        }
        let format = serde_json::from_slice::<Format>(bytes)
            .map_err(|e| format!("not a status record: {e}"))?
            .format;
        if format != FORMAT_VERSION {
            return Err(format!(
                "record format {format}, this clusterf reads {FORMAT_VERSION}: upgrade it"
            ));
        }
        serde_json::from_slice(bytes).map_err(|e| format!("not a status record: {e}"))
    }

    /// The record as written: compact JSON, within [`MAX_RECORD_BYTES`]
    /// (diagnostics are dropped from the end until it fits).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut record = self.clone();
        loop {
            let bytes = serde_json::to_vec(&record).expect("a record serializes");
            let diagnostics = record.error.as_mut().map(|e| &mut e.diagnostics);
            match diagnostics {
                Some(d) if bytes.len() > MAX_RECORD_BYTES && !d.is_empty() => {
                    d.pop();
                }
                _ => return bytes,
            }
        }
    }

    /// Whether `other` says the same about where this frontend stands in a
    /// rollout: the same identity, commit, config, applied commit and
    /// error. What else changes from pass to pass (the times, counts, the
    /// overlay's revision and the desired state's hash, drains, drift) is
    /// brought up to date by the heartbeat, so that etcd changes do not
    /// make every frontend write its record.
    pub fn same_standing(&self, other: &FrontendStatus) -> bool {
        let (a, b) = (self, other);
        (a.format, &a.frontend, &a.version, &a.config_source, &a.own)
            == (b.format, &b.frontend, &b.version, &b.config_source, &b.own)
            && (&a.commit, &a.config_hash, &a.applied, &a.error)
                == (&b.commit, &b.config_hash, &b.applied, &b.error)
    }

    /// What this frontend has applied, to compare with an expected commit:
    /// the commit, or the config hash for a directory source.
    pub fn rendered(&self) -> &str {
        self.commit.as_deref().unwrap_or(&self.config_hash)
    }
}

/// Who a frontend is: the fields of its record that never change while
/// its daemon runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub frontend: String,
    pub version: String,
    pub config_source: String,
    pub own: Vec<String>,
}

/// What one pass of a frontend's daemon saw and did, as plain values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassFacts {
    /// When the pass ended (Unix ms).
    pub now_ms: u64,
    /// The commit of the config it read (Git sources; `None` for a
    /// directory, or when no config was read: then the last one stays).
    pub commit: Option<String>,
    /// The content hash of the config it read (`None`: none read).
    pub config_hash: Option<String>,
    /// The overlay's etcd revision it rendered (`None`: no etcd overlay,
    /// or the pass failed before reading it: the last one stays).
    pub overlay_revision: Option<i64>,
    pub outcome: PassOutcome,
}

/// How the pass ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PassOutcome {
    /// The kernel matches the desired state (whether or not ops were
    /// needed).
    Applied {
        /// Identifies the desired state applied (see the daemon's
        /// `desired_hash`).
        desired_hash: String,
        services: u32,
        dests: u32,
        drains: u32,
        /// The pass corrected a table changed behind our back.
        drift_corrected: bool,
        /// Dests health checks found down.
        unhealthy_dests: u32,
    },
    /// The pass failed: nothing (or, for an apply, not everything) changed.
    Failed(FrontendError),
}

impl FrontendStatus {
    /// The record of a frontend before its first pass (never written:
    /// [`after_pass`] makes the first one that is).
    pub fn initial(identity: &Identity) -> FrontendStatus {
        FrontendStatus {
            format: FORMAT_VERSION,
            frontend: identity.frontend.clone(),
            version: identity.version.clone(),
            config_source: identity.config_source.clone(),
            own: identity.own.clone(),
            ..FrontendStatus::default()
        }
    }
}

/// The record after a pass: `prev` with what the pass changed. A failed
/// pass keeps what was applied before (and the counts: the kernel kept
/// them) and sets the error; a successful one clears it.
pub fn after_pass(prev: &FrontendStatus, facts: PassFacts) -> FrontendStatus {
    let mut next = prev.clone();
    next.last_pass_ms = Some(facts.now_ms);
    if let Some(hash) = facts.config_hash {
        if facts.commit != prev.commit || prev.commit_seen_ms.is_none() {
            next.commit_seen_ms = facts.commit.as_ref().map(|_| facts.now_ms);
        }
        next.commit = facts.commit;
        next.config_hash = hash;
    }
    if facts.overlay_revision.is_some() {
        next.overlay_revision = facts.overlay_revision;
    }
    match facts.outcome {
        PassOutcome::Applied {
            desired_hash,
            services,
            dests,
            drains,
            drift_corrected,
            unhealthy_dests,
        } => {
            next.applied = Some(next.rendered().to_string());
            next.applied_desired_hash = Some(desired_hash);
            next.last_apply_ms = Some(facts.now_ms);
            next.error = None;
            next.services = services;
            next.dests = dests;
            next.drains = drains;
            next.drift_corrections += u64::from(drift_corrected);
            next.unhealthy_dests = unhealthy_dests;
        }
        PassOutcome::Failed(error) => next.error = Some(error),
    }
    next
}

/// Checks a frontend id (`--frontend-id`, or the host name): one etcd key
/// segment that every reader takes as it is: 1 to 253 of `A-Z a-z 0-9 . _
/// -`, not starting with `.` or `-`.
pub fn check_frontend_id(id: &str) -> Result<(), String> {
    let shown = crate::text::quote(id);
    if id.is_empty() || id.len() > 253 {
        return Err(format!("{shown}: must be 1 to 253 characters"));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "{shown}: {c:?} is not allowed (letters, digits, '.', '_' and '-' only)"
        ));
    }
    if id.starts_with(['.', '-']) {
        return Err(format!("{shown}: must not start with '.' or '-'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> FrontendStatus {
        FrontendStatus {
            format: FORMAT_VERSION,
            frontend: "lb1".into(),
            version: "0.1.0".into(),
            config_source: "https://git.example/config.git".into(),
            commit: Some("4f2a9c1e".into()),
            commit_seen_ms: Some(1_000),
            config_hash: "sha256:ab".into(),
            overlay_revision: Some(42),
            applied: Some("4f2a9c1e".into()),
            applied_desired_hash: Some("sha256:cd".into()),
            last_apply_ms: Some(2_000),
            last_pass_ms: Some(2_000),
            error: None,
            own: vec![],
            services: 3,
            dests: 12,
            unhealthy_dests: 0,
            drains: 0,
            drift_corrections: 0,
            written_ms: 2_000,
        }
    }

    #[test]
    fn a_record_reads_back_as_written() {
        let s = sample();
        assert_eq!(FrontendStatus::parse(&s.to_bytes()), Ok(s));
    }

    #[test]
    fn records_of_another_format_or_shape_are_refused_with_a_reason() {
        let newer = br#"{"format": 2, "anything": true}"#;
        assert!(
            FrontendStatus::parse(newer)
                .unwrap_err()
                .contains("upgrade")
        );
        assert!(
            FrontendStatus::parse(b"[]")
                .unwrap_err()
                .starts_with("not a status record")
        );
        let mut unknown: serde_json::Value = serde_json::from_slice(&sample().to_bytes()).unwrap();
        unknown["surprise"] = 1.into();
        assert!(FrontendStatus::parse(unknown.to_string().as_bytes()).is_err());
        let huge = vec![b' '; MAX_RECORD_BYTES + 1];
        assert!(FrontendStatus::parse(&huge).unwrap_err().contains("bytes"));
    }

    #[test]
    fn diagnostics_are_dropped_until_the_record_fits() {
        let mut s = sample();
        s.error = Some(FrontendError {
            kind: ProblemKind::ValidationFailed,
            message: "3 problems".into(),
            diagnostics: vec!["x".repeat(1_000); 200],
        });
        let bytes = s.to_bytes();
        assert!(bytes.len() <= MAX_RECORD_BYTES);
        let back = FrontendStatus::parse(&bytes).unwrap();
        let kept = back.error.unwrap().diagnostics.len();
        assert!((50..200).contains(&kept), "{kept}");
    }

    fn identity() -> Identity {
        Identity {
            frontend: "lb1".into(),
            version: "0.1.0".into(),
            config_source: "https://git.example/config.git".into(),
            own: vec!["10.1.0.0/16".into()],
        }
    }

    fn applied(services: u32, drift: bool) -> PassOutcome {
        PassOutcome::Applied {
            desired_hash: format!("sha256:{services}"),
            services,
            dests: services * 2,
            drains: 1,
            drift_corrected: drift,
            unhealthy_dests: services / 2,
        }
    }

    fn facts(now_ms: u64, commit: &str, outcome: PassOutcome) -> PassFacts {
        PassFacts {
            now_ms,
            commit: Some(commit.into()),
            config_hash: Some(format!("hash-{commit}")),
            overlay_revision: Some(7),
            outcome,
        }
    }

    #[test]
    fn a_pass_that_applies_records_the_commit_when_first_seen_and_counts_drift() {
        let first = after_pass(
            &FrontendStatus::initial(&identity()),
            facts(1_000, "aaa", applied(3, false)),
        );
        assert_eq!(first.commit.as_deref(), Some("aaa"));
        assert_eq!(first.commit_seen_ms, Some(1_000));
        assert_eq!(first.applied.as_deref(), Some("aaa"));
        assert_eq!(first.applied_desired_hash.as_deref(), Some("sha256:3"));
        assert_eq!((first.services, first.dests, first.drains), (3, 6, 1));
        assert_eq!(first.unhealthy_dests, 1);
        assert_eq!(first.own, ["10.1.0.0/16"]);
        assert_eq!(first.overlay_revision, Some(7));
        let again = after_pass(&first, facts(2_000, "aaa", applied(3, true)));
        assert_eq!(again.commit_seen_ms, Some(1_000), "seen first at 1000");
        assert_eq!(again.last_apply_ms, Some(2_000));
        assert_eq!(again.drift_corrections, 1);
        let newer = after_pass(&again, facts(3_000, "bbb", applied(4, false)));
        assert_eq!(newer.commit_seen_ms, Some(3_000));
        assert_eq!(newer.drift_corrections, 1);
    }

    #[test]
    fn a_failed_pass_keeps_what_was_applied_and_sets_the_error_until_one_succeeds() {
        let ok = after_pass(
            &FrontendStatus::initial(&identity()),
            facts(1_000, "aaa", applied(3, false)),
        );
        let error = FrontendError {
            kind: ProblemKind::ValidationFailed,
            message: "invalid config".into(),
            diagnostics: vec!["services/a.yaml:1:1: error: x".into()],
        };
        let broken = after_pass(&ok, facts(2_000, "bbb", PassOutcome::Failed(error.clone())));
        assert_eq!(
            broken.commit.as_deref(),
            Some("bbb"),
            "rendered, not applied"
        );
        assert_eq!(broken.applied.as_deref(), Some("aaa"));
        assert_eq!(broken.last_apply_ms, Some(1_000));
        assert_eq!(broken.last_pass_ms, Some(2_000));
        assert_eq!(broken.error, Some(error));
        assert_eq!(broken.services, 3);
        // A source that could not be read: the commit and hash stay.
        let dead = after_pass(
            &broken,
            PassFacts {
                now_ms: 3_000,
                commit: None,
                config_hash: None,
                overlay_revision: None,
                outcome: PassOutcome::Failed(FrontendError {
                    kind: ProblemKind::FailStatic,
                    message: "no answer".into(),
                    diagnostics: vec![],
                }),
            },
        );
        assert_eq!(dead.commit.as_deref(), Some("bbb"));
        assert_eq!(dead.config_hash, "hash-bbb");
        assert_eq!(dead.commit_seen_ms, Some(2_000));
        let fixed = after_pass(&dead, facts(4_000, "ccc", applied(2, false)));
        assert_eq!(fixed.error, None);
        assert_eq!(fixed.applied.as_deref(), Some("ccc"));
    }

    #[test]
    fn only_the_rollout_standing_makes_a_record_worth_writing_at_once() {
        let first = after_pass(
            &FrontendStatus::initial(&identity()),
            facts(1_000, "aaa", applied(3, false)),
        );
        let mut later = after_pass(&first, facts(2_000, "aaa", applied(4, true)));
        later.overlay_revision = Some(8);
        assert!(
            first.same_standing(&later),
            "times, counts, revision, drift"
        );
        let newer = after_pass(&later, facts(3_000, "bbb", applied(4, false)));
        assert!(!later.same_standing(&newer), "a new commit");
        let error = FrontendError {
            kind: ProblemKind::GuardRefused,
            message: "mass delete".into(),
            diagnostics: vec![],
        };
        let refused = after_pass(&newer, facts(4_000, "bbb", PassOutcome::Failed(error)));
        assert!(!newer.same_standing(&refused), "an error");
    }

    #[test]
    fn a_directory_source_is_applied_by_its_config_hash() {
        let mut f = facts(1_000, "x", applied(1, false));
        f.commit = None;
        let s = after_pass(&FrontendStatus::initial(&identity()), f);
        assert_eq!(s.commit_seen_ms, None);
        assert_eq!(s.applied.as_deref(), Some("hash-x"));
    }

    #[test]
    fn frontend_ids_are_one_safe_key_segment() {
        for ok in ["lb1", "lb-1.dc2.example.com", "LB_3", &"a".repeat(253)] {
            assert_eq!(check_frontend_id(ok), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("", "1 to 253"),
            (&"a".repeat(254) as &str, "1 to 253"),
            ("lb/1", "'/' is not allowed"),
            ("lb 1", "not allowed"),
            ("lb\u{e9}", "not allowed"),
            (".lb", "must not start"),
            ("..", "must not start"),
            ("-lb", "must not start"),
        ] {
            let e = check_frontend_id(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
