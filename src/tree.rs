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
    /// Path -> contents, with their fingerprint.
    pub files: Files,
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

    /// Identifies the content of the tree (paths, contents, unreadable
    /// entries) independently of where it came from: SHA-256 over the
    /// files' [`Fingerprint`] and the unreadable entries, so it costs no
    /// walk over the files.
    pub fn content_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"clusterf tree v2\0");
        h.update(self.files.fingerprint().to_bytes());
        for (path, why) in &self.unreadable {
            h.update(b"!");
            h.update((path.len() as u64).to_le_bytes());
            h.update(path.as_bytes());
            h.update((why.len() as u64).to_le_bytes());
            h.update(why.as_bytes());
        }
        hex(&h.finalize())
    }
}

/// A set of file entries summed up: the sum modulo 2^256 of each entry's
/// SHA-256 (over its path and contents, lengths first) and the number of
/// entries. Entries are added and taken out in O(entry), in any order, so a
/// tree keeps the fingerprint of its files current on every change, and the
/// fingerprint of a part of a tree is the sum of its entries'.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    sum: [u64; 4],
    count: u64,
}

impl Fingerprint {
    /// The fingerprint of one entry.
    pub fn of_entry(path: &str, data: &[u8]) -> Fingerprint {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update((path.len() as u64).to_le_bytes());
        h.update(path.as_bytes());
        h.update((data.len() as u64).to_le_bytes());
        h.update(data);
        let digest = h.finalize();
        let mut sum = [0u64; 4];
        for (limb, bytes) in sum.iter_mut().zip(digest.chunks_exact(8)) {
            *limb = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
        }
        Fingerprint { sum, count: 1 }
    }

    /// Adds the entries of `other`.
    pub fn add(&mut self, other: Fingerprint) {
        let mut carry = false;
        for (a, b) in self.sum.iter_mut().zip(other.sum) {
            let (s, c1) = a.overflowing_add(b);
            let (s, c2) = s.overflowing_add(u64::from(carry));
            *a = s;
            carry = c1 || c2;
        }
        self.count = self.count.wrapping_add(other.count);
    }

    /// Takes the entries of `other` out (they must have been added).
    pub fn sub(&mut self, other: Fingerprint) {
        let mut borrow = false;
        for (a, b) in self.sum.iter_mut().zip(other.sum) {
            let (s, b1) = a.overflowing_sub(b);
            let (s, b2) = s.overflowing_sub(u64::from(borrow));
            *a = s;
            borrow = b1 || b2;
        }
        self.count = self.count.wrapping_sub(other.count);
    }

    /// The number of entries summed up.
    pub fn len(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        *self == Fingerprint::default()
    }

    pub fn to_bytes(&self) -> [u8; 40] {
        let mut out = [0u8; 40];
        for (chunk, limb) in out
            .chunks_exact_mut(8)
            .zip(self.sum.iter().chain([&self.count]))
        {
            chunk.copy_from_slice(&limb.to_le_bytes());
        }
        out
    }
}

/// One file with its [`Fingerprint`], hashed where it is made (a source's
/// reader threads) so that [`Files::from_entries`] does not hash again.
pub struct Entry {
    path: String,
    data: Vec<u8>,
    print: Fingerprint,
}

impl Entry {
    pub fn new(path: String, data: Vec<u8>) -> Entry {
        let print = Fingerprint::of_entry(&path, &data);
        Entry { path, data, print }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn data(&self) -> &[u8] {
        &self.data
    }
}

/// A tree's files (path -> contents) and their [`Fingerprint`], which every
/// change keeps current: read through `Deref` (a `BTreeMap`), changed only
/// through [`Files::insert`] and [`Files::remove`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Files {
    map: BTreeMap<String, Vec<u8>>,
    print: Fingerprint,
}

impl Files {
    /// Sets `path` to `data`; the contents it had.
    pub fn insert(&mut self, path: String, data: Vec<u8>) -> Option<Vec<u8>> {
        if let Some(old) = self.map.get(&path) {
            self.print.sub(Fingerprint::of_entry(&path, old));
        }
        self.print.add(Fingerprint::of_entry(&path, &data));
        self.map.insert(path, data)
    }

    /// The files of `entries` (of one path, the last one counts, as with
    /// [`Files::insert`]): one bulk build of the map, no hashing.
    pub fn from_entries(mut entries: Vec<Entry>) -> Files {
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let mut print = Fingerprint::default();
        let mut entries = entries.into_iter().peekable();
        let mut kept = Vec::with_capacity(entries.len());
        while let Some(e) = entries.next() {
            if entries.peek().is_some_and(|next| next.path == e.path) {
                continue;
            }
            print.add(e.print);
            kept.push((e.path, e.data));
        }
        Files {
            map: kept.into_iter().collect(),
            print,
        }
    }

    /// Removes `path`; the contents it had.
    pub fn remove<Q>(&mut self, path: &Q) -> Option<Vec<u8>>
    where
        String: std::borrow::Borrow<Q>,
        Q: Ord + ?Sized,
    {
        let (path, data) = self.map.remove_entry(path)?;
        self.print.sub(Fingerprint::of_entry(&path, &data));
        Some(data)
    }

    /// Empties every file's contents, keeping the paths and the fingerprint
    /// of what they held: for a tree parsed and no longer read (the one-shot
    /// `plan` frees its memory this way; `render::render_releasing`).
    pub fn release_contents(&mut self) {
        for contents in self.map.values_mut() {
            *contents = Vec::new();
        }
    }

    /// Takes every file's contents out, in path order, leaving the paths
    /// and the fingerprint as [`Files::release_contents`] does: for a
    /// reader that drops each once read (`config::ServiceReader`).
    pub fn take_contents(&mut self) -> Vec<Vec<u8>> {
        self.map.values_mut().map(std::mem::take).collect()
    }

    /// The fingerprint of every entry.
    pub fn fingerprint(&self) -> Fingerprint {
        self.print
    }
}

impl std::ops::Deref for Files {
    type Target = BTreeMap<String, Vec<u8>>;

    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl std::fmt::Debug for Files {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.map.fmt(f)
    }
}

impl<'a> IntoIterator for &'a Files {
    type Item = (&'a String, &'a Vec<u8>);
    type IntoIter = std::collections::btree_map::Iter<'a, String, Vec<u8>>;

    fn into_iter(self) -> Self::IntoIter {
        self.map.iter()
    }
}

impl Extend<(String, Vec<u8>)> for Files {
    fn extend<I: IntoIterator<Item = (String, Vec<u8>)>>(&mut self, iter: I) {
        for (path, data) in iter {
            self.insert(path, data);
        }
    }
}

impl FromIterator<(String, Vec<u8>)> for Files {
    fn from_iter<I: IntoIterator<Item = (String, Vec<u8>)>>(iter: I) -> Self {
        let mut files = Files::default();
        files.extend(iter);
        files
    }
}

/// Whether a path component is hidden (a dot-file), which every source skips.
pub fn is_hidden(component: &str) -> bool {
    component.starts_with('.')
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_kept_fingerprint_is_the_sum_over_the_entries(
            edits in prop::collection::vec((0u8..20, prop::option::of(0u8..4)), 0..60),
        ) {
            let mut files = Files::default();
            for (p, c) in edits {
                let path = format!("k{p:02}");
                match c {
                    Some(c) => {
                        files.insert(path, vec![c; c as usize]);
                    }
                    None => {
                        files.remove(&path);
                    }
                }
            }
            let mut sum = Fingerprint::default();
            for (path, data) in files.iter() {
                sum.add(Fingerprint::of_entry(path, data));
            }
            prop_assert_eq!(files.fingerprint(), sum);
            prop_assert_eq!(sum.len(), files.len() as u64);
        }

        #[test]
        fn files_built_from_entries_equal_files_inserted_one_by_one(
            puts in prop::collection::vec((0u8..20, 0u8..4), 0..60),
        ) {
            let mut inserted = Files::default();
            let mut entries = Vec::new();
            for (p, c) in puts {
                let (path, data) = (format!("k{p:02}"), vec![c; c as usize]);
                inserted.insert(path.clone(), data.clone());
                entries.push(Entry::new(path, data));
            }
            let built = Files::from_entries(entries);
            prop_assert_eq!(built.fingerprint(), inserted.fingerprint());
            prop_assert!(built == inserted);
        }
    }

    #[test]
    fn equal_contents_hash_alike_and_any_difference_shows() {
        let mut a = Tree::new("a");
        a.insert("x", "1");
        a.insert("y", "2");
        let mut b = Tree::new("b");
        b.insert("y", "2");
        b.insert("x", "0");
        assert_ne!(a.content_hash(), b.content_hash());
        b.insert("x", "1");
        assert_eq!(a.content_hash(), b.content_hash());
        // The boundary between path and contents is part of the entry.
        b.files.remove("x");
        b.insert("x1", "");
        assert_ne!(a.content_hash(), b.content_hash());
        b.files.remove("x1");
        b.insert("x", "1");
        b.unreadable.insert("z".into(), "denied".into());
        assert_ne!(a.content_hash(), b.content_hash());
        assert!(Tree::new("e").files.fingerprint().is_empty());
    }
}
