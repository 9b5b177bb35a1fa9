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

    /// What this frontend has applied, to compare with an expected commit:
    /// the commit, or the config hash for a directory source.
    pub fn rendered(&self) -> &str {
        self.commit.as_deref().unwrap_or(&self.config_hash)
    }
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
}
