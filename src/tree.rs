//! A config or overlay tree held in memory: relative paths (or etcd keys
//! below the prefix) mapped to their bytes.
//!
//! Every source (a directory, a Git commit, etcd) is read into a [`Tree`] at
//! the edge; rendering then works on the tree without touching the outside.
//!
//! Invariant: paths use `/`, are relative, never start with `/` and never
//! contain dot-file components (sources drop those when they read).

use std::collections::BTreeMap;

/// The largest file a tree holds, in bytes: sources refuse a larger file
/// (naming it unreadable) without reading it, and `config` sizes its YAML
/// parser's budget to it. A service file with 100,000 backends is about
/// 5 MB; the YAML reader takes up to about 100 times a file's size in
/// memory for the worst file (2 bytes a value).
pub const FILE_LIMIT: u64 = 8 << 20;

/// Which source a tree was read from, and at which revision and subdir: for
/// messages and plan fingerprints.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SourceRef {
    /// Human description: a directory path, `repo@commit`, `etcd http://...`.
    pub description: String,
    /// A revision, when the source has one: a Git commit id, an etcd revision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The directory of the source the tree was read from, when not its
    /// root (`--subdir`, as `a/b`): diagnostics name the tree's files from
    /// the source's root (`a/b/services/web.yaml`), see
    /// [`crate::diag::Diagnostics::from_root`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subdir: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    pub source: SourceRef,
    /// Path -> contents.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Paths that exist but could not be read, with the reason.
    pub unreadable: BTreeMap<String, String>,
}

impl Tree {
    pub fn new(description: impl Into<String>) -> Self {
        Tree {
            source: SourceRef {
                description: description.into(),
                ..SourceRef::default()
            },
            ..Tree::default()
        }
    }

    pub fn insert(&mut self, path: impl Into<String>, contents: impl Into<Vec<u8>>) {
        self.files.insert(path.into(), contents.into());
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.unreadable.is_empty()
    }

    /// SHA-256 over paths and contents: identifies the content of the tree
    /// independently of where it came from.
    pub fn content_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for (path, data) in &self.files {
            h.update((path.len() as u64).to_le_bytes());
            h.update(path.as_bytes());
            h.update((data.len() as u64).to_le_bytes());
            h.update(data);
        }
        for (path, why) in &self.unreadable {
            h.update(b"!");
            h.update(path.as_bytes());
            h.update(why.as_bytes());
        }
        hex(&h.finalize())
    }
}

/// Whether a path component is hidden (a dot-file), which every source skips.
pub fn is_hidden(component: &str) -> bool {
    component.starts_with('.')
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
