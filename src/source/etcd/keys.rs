//! The mapping between etcd keys and tree paths: which keys below the prefix
//! become which path of a [`Tree`], and applying put and delete events to a
//! tree.
//!
//! Invariant: pure. Bytes in, paths out; no client, no network, no clock.
//! This module never interprets values (that is `config`'s job), and the
//! paths it makes keep the [`Tree`] invariant: relative, `/`-separated,
//! no empty, `.`, `..` or other dot-file components, no NUL bytes.
//! `<prefix>/status/` holds the frontends' fleet status records
//! (docs/status-format.md), not overlay keys: it is never part of a tree.

use crate::tree::{Tree, is_hidden};

/// The keys of one clusterf tree in etcd: everything below `<prefix>/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keyspace {
    /// The prefix as given, without trailing slashes (for messages).
    prefix: String,
    /// `<prefix>/`: what every key of the tree starts with.
    scan: Vec<u8>,
}

/// What an etcd key is to the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// A path of the tree.
    Path(String),
    /// Below the prefix, but a dot-file component: skipped like a dot-file.
    Hidden,
    /// Below `<prefix>/status/`: the fleet status records, written by the
    /// daemons themselves; skipped.
    Status,
    /// Below the prefix, but no valid path: recorded as unreadable under
    /// `key` (the relative key, lossily decoded) with `reason`.
    Invalid { key: String, reason: &'static str },
    /// Not below the prefix at all.
    Outside,
}

impl Keyspace {
    /// The keyspace of `prefix` (`/clusterf`, `/clusterf/` and `/clusterf//`
    /// are the same keyspace; `/` and the empty prefix both mean `/`).
    pub fn new(prefix: &str) -> Keyspace {
        let trimmed = prefix.trim_end_matches('/');
        let mut scan = trimmed.as_bytes().to_vec();
        scan.push(b'/');
        Keyspace {
            prefix: trimmed.to_string(),
            scan,
        }
    }

    /// The prefix without trailing slash, as shown in messages.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>/`: the range start of the tree.
    pub fn scan_prefix(&self) -> &[u8] {
        &self.scan
    }

    /// The exclusive end of the range of keys starting with `<prefix>/`.
    pub fn range_end(&self) -> Vec<u8> {
        crate::etcd::prefix_end(&self.scan)
    }

    /// The etcd key of a tree path.
    pub fn key(&self, path: &str) -> Vec<u8> {
        let mut key = self.scan.clone();
        key.extend_from_slice(path.as_bytes());
        key
    }

    /// The etcd key of a tree path, as text for messages.
    pub fn key_display(&self, path: &str) -> String {
        String::from_utf8_lossy(&self.key(path)).into_owned()
    }

    /// What `key` is to the tree.
    pub fn classify(&self, key: &[u8]) -> KeyKind {
        let Some(rel) = key.strip_prefix(self.scan.as_slice()) else {
            return KeyKind::Outside;
        };
        let Ok(text) = std::str::from_utf8(rel) else {
            return invalid(rel, "key is not valid UTF-8");
        };
        if text.contains('\0') {
            return invalid(rel, "key contains a NUL byte");
        }
        if text.starts_with(STATUS_SUBTREE) {
            return KeyKind::Status;
        }
        let mut empty = false;
        for component in text.split('/') {
            if is_hidden(component) {
                return KeyKind::Hidden;
            }
            empty |= component.is_empty();
        }
        if empty {
            return invalid(rel, "key has an empty path component");
        }
        KeyKind::Path(text.to_string())
    }
}

/// The fleet status subtree below the prefix (`crate::fleet::STATUS_DIR`
/// and `ALIVE_DIR` are below it).
pub const STATUS_SUBTREE: &str = "status/";

fn invalid(rel: &[u8], reason: &'static str) -> KeyKind {
    let mut key = String::from_utf8_lossy(rel).replace('\0', "\\0");
    if key.is_empty() {
        key.push_str("(empty key)");
    }
    KeyKind::Invalid { key, reason }
}

/// Applies a put of `key` = `value`; whether the tree changed.
pub fn apply_put(tree: &mut Tree, keys: &Keyspace, key: &[u8], value: &[u8]) -> bool {
    match keys.classify(key) {
        KeyKind::Path(path) => {
            if tree.files.get(&path).is_some_and(|f| f.data() == value) {
                return false;
            }
            tree.files.insert(&path, value);
            true
        }
        KeyKind::Invalid { key, reason } => {
            tree.unreadable.insert(key, reason.to_string()) != Some(reason.to_string())
        }
        KeyKind::Hidden | KeyKind::Status | KeyKind::Outside => false,
    }
}

/// Applies a delete of `key`; whether the tree changed.
pub fn apply_delete(tree: &mut Tree, keys: &Keyspace, key: &[u8]) -> bool {
    match keys.classify(key) {
        KeyKind::Path(path) => tree.files.remove(&path),
        KeyKind::Invalid { key, .. } => tree.unreadable.remove(&key).is_some(),
        KeyKind::Hidden | KeyKind::Status | KeyKind::Outside => false,
    }
}

/// Number of keys in the backend layout (`services/<svc>/backends/<name>`),
/// whether or not their values parse: what a mass-disappearance guard
/// compares between two reads.
pub fn backend_key_count(tree: &Tree) -> usize {
    tree.files
        .iter()
        .filter(|f| {
            let path = f.path();
            let parts: Vec<&str> = path.split('/').collect();
            matches!(parts.as_slice(), ["services", _, "backends", _])
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn prefix_normalization() {
        assert_eq!(Keyspace::new("/clusterf").scan_prefix(), b"/clusterf/");
        assert_eq!(Keyspace::new("/clusterf/").scan_prefix(), b"/clusterf/");
        assert_eq!(Keyspace::new("/clusterf//").prefix(), "/clusterf");
        assert_eq!(Keyspace::new("/").scan_prefix(), b"/");
        assert_eq!(Keyspace::new("").scan_prefix(), b"/");
        assert_eq!(Keyspace::new("/clusterf").range_end(), b"/clusterf0");
    }

    #[test]
    fn classify_keys() {
        let ks = Keyspace::new("/clusterf");
        assert_eq!(
            ks.classify(b"/clusterf/services/test/backends/test3-1"),
            KeyKind::Path("services/test/backends/test3-1".into())
        );
        assert_eq!(
            ks.classify(b"/clusterf/routes/test6"),
            KeyKind::Path("routes/test6".into())
        );
        // A sibling prefix is not the tree.
        assert_eq!(ks.classify(b"/clusterfoo/routes/x"), KeyKind::Outside);
        assert_eq!(ks.classify(b"/clusterf"), KeyKind::Outside);
        assert_eq!(ks.classify(b"/other"), KeyKind::Outside);
        assert_eq!(
            ks.classify(b"/clusterf/services/.test/frontend"),
            KeyKind::Hidden
        );
        assert_eq!(ks.classify(b"/clusterf/../etc/passwd"), KeyKind::Hidden);
        assert_eq!(ks.classify(b"/clusterf/routes/.x"), KeyKind::Hidden);
        assert_eq!(
            ks.classify(b"/clusterf/status/frontends/lb1"),
            KeyKind::Status
        );
        assert_eq!(ks.classify(b"/clusterf/status/alive/lb1"), KeyKind::Status);
        // Only the subtree: a file named `status` or `statuses/` is a path.
        assert_eq!(
            ks.classify(b"/clusterf/status"),
            KeyKind::Path("status".into())
        );
        assert_eq!(
            ks.classify(b"/clusterf/statuses/x"),
            KeyKind::Path("statuses/x".into())
        );
        assert!(matches!(
            ks.classify(b"/clusterf/services//backends/a"),
            KeyKind::Invalid {
                reason: "key has an empty path component",
                ..
            }
        ));
        assert!(matches!(
            ks.classify(b"/clusterf/"),
            KeyKind::Invalid { key, .. } if key == "(empty key)"
        ));
        assert!(matches!(
            ks.classify(b"/clusterf//abs"),
            KeyKind::Invalid { .. }
        ));
        assert!(matches!(
            ks.classify(b"/clusterf/routes/x/"),
            KeyKind::Invalid { .. }
        ));
        assert!(matches!(
            ks.classify(b"/clusterf/routes/\xff"),
            KeyKind::Invalid {
                reason: "key is not valid UTF-8",
                ..
            }
        ));
        assert!(matches!(
            ks.classify(b"/clusterf/routes/a\0b"),
            KeyKind::Invalid { key, .. } if key == "routes/a\\0b"
        ));
    }

    #[test]
    fn put_and_delete() {
        let ks = Keyspace::new("/clusterf");
        let mut tree = Tree::new("t");
        assert!(apply_put(&mut tree, &ks, b"/clusterf/routes/a", b"1"));
        assert!(!apply_put(&mut tree, &ks, b"/clusterf/routes/a", b"1"));
        assert!(apply_put(&mut tree, &ks, b"/clusterf/routes/a", b"2"));
        assert!(!apply_put(&mut tree, &ks, b"/clusterf/.hidden", b"2"));
        assert!(!apply_put(&mut tree, &ks, b"/elsewhere", b"2"));
        assert!(!apply_put(
            &mut tree,
            &ks,
            b"/clusterf/status/frontends/a",
            b"{}"
        ));
        assert!(!apply_delete(
            &mut tree,
            &ks,
            b"/clusterf/status/frontends/a"
        ));
        assert!(apply_put(&mut tree, &ks, b"/clusterf/routes/\xff", b"2"));
        assert!(!apply_put(&mut tree, &ks, b"/clusterf/routes/\xff", b"3"));
        assert_eq!(tree.files.len(), 1);
        assert_eq!(tree.unreadable.len(), 1);
        assert!(apply_delete(&mut tree, &ks, b"/clusterf/routes/\xff"));
        assert!(apply_delete(&mut tree, &ks, b"/clusterf/routes/a"));
        assert!(!apply_delete(&mut tree, &ks, b"/clusterf/routes/a"));
        assert!(tree.is_empty());
    }

    #[test]
    fn counts_backend_keys() {
        let mut tree = Tree::new("t");
        tree.insert("services/a/backends/1", "x");
        tree.insert("services/a/backends/2", "x");
        tree.insert("services/b/backends/1", "x");
        tree.insert("services/b/frontend", "x");
        tree.insert("services/b/backends/1/extra", "x");
        tree.insert("routes/r", "x");
        assert_eq!(backend_key_count(&tree), 3);
    }

    proptest! {
        #[test]
        fn classify_never_panics_and_keeps_the_tree_invariant(
            prefix in "[/a-z.]{0,6}",
            rel in proptest::collection::vec(any::<u8>(), 0..24),
        ) {
            let ks = Keyspace::new(&prefix);
            let key = ks.key_display("");
            let mut full = key.into_bytes();
            full.extend_from_slice(&rel);
            match ks.classify(&full) {
                KeyKind::Path(p) => {
                    prop_assert!(!p.is_empty());
                    prop_assert!(!p.starts_with('/'));
                    prop_assert!(!p.contains('\0'));
                    for c in p.split('/') {
                        prop_assert!(!c.is_empty());
                        prop_assert!(!c.starts_with('.'));
                    }
                    prop_assert_eq!(ks.key(&p), full);
                }
                KeyKind::Invalid { key, .. } => prop_assert!(!key.is_empty()),
                KeyKind::Hidden | KeyKind::Status => {}
                KeyKind::Outside => prop_assert!(false, "a key below the prefix is outside"),
            }
        }

        #[test]
        fn put_then_delete_restores(
            path in "[a-z]{1,4}(/[a-z0-9-]{1,4}){0,3}",
            value in proptest::collection::vec(any::<u8>(), 0..16),
        ) {
            let ks = Keyspace::new("/clusterf");
            let mut tree = Tree::new("t");
            tree.insert("routes/keep", "k");
            let before = tree.clone();
            let key = ks.key(&path);
            let existed = tree.files.contains_key(&path);
            apply_put(&mut tree, &ks, &key, &value);
            prop_assert_eq!(tree.files.get(&path).map(|f| f.data().to_vec()), Some(value));
            if !existed {
                apply_delete(&mut tree, &ks, &key);
                prop_assert_eq!(tree, before);
            }
        }
    }
}
