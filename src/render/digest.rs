//! A tree's content hash kept up to date across versions of the tree: the
//! SHA-256 state is saved every few entries (checkpoints), and the walk that
//! diffs the last version against the new one hashes the new one as it
//! goes, starting at the last checkpoint before the first change. A change
//! costs the diff walk plus hashing from that checkpoint on, not a second
//! walk over the whole tree.
//!
//! Invariant: the hash equals [`Tree::content_hash`] of the new tree, byte
//! for byte the same input to SHA-256 (the memo's tests compare them after
//! every edit). This module compares and hashes; it does not parse.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::ops::Bound;

use sha2::{Digest, Sha256};

use crate::tree::{self, Tree};

/// Entries between checkpoints.
const INTERVAL: usize = 256;

/// The checkpoints of the last version of a tree.
#[derive(Clone)]
pub struct Digest256 {
    interval: usize,
    /// (path, hasher state before that path's entry), in path order; the
    /// first is ("", the empty state), before every path.
    checkpoints: Vec<(String, Sha256)>,
    /// The state after every file entry (before the unreadable ones).
    files_end: Sha256,
}

/// What changed from the last version of a tree to the new one.
pub struct Changes {
    /// Paths whose contents differ (in one version only, or other bytes).
    pub paths: Vec<String>,
    /// The new tree's content hash, when anything changed.
    pub hash: Option<String>,
}

impl Digest256 {
    /// Hashes `tree` whole, keeping checkpoints: its digest and hash.
    pub fn new(tree: &Tree) -> (Digest256, String) {
        Digest256::with_interval(tree, INTERVAL)
    }

    fn with_interval(tree: &Tree, interval: usize) -> (Digest256, String) {
        let mut d = Digest256 {
            interval: interval.max(1),
            checkpoints: vec![(String::new(), Sha256::new())],
            files_end: Sha256::new(),
        };
        let mut h = Hashing {
            state: Sha256::new(),
            since: 0,
        };
        for (path, data) in &tree.files {
            d.hash_entry(&mut h, path, data);
        }
        d.files_end = h.state.clone();
        let hash = finish(h.state, tree);
        (d, hash)
    }

    /// Diffs the last version's files `old` against `new` (whose unreadable
    /// entries may differ from `old_unreadable`), hashing `new` from the
    /// last checkpoint before the first change. Keeps the new checkpoints.
    pub fn diff(
        &mut self,
        old: &BTreeMap<String, Vec<u8>>,
        old_unreadable: &BTreeMap<String, String>,
        new: &Tree,
    ) -> Changes {
        let mut paths = Vec::new();
        let mut hashing: Option<Hashing> = None;
        let mut a = old.iter().peekable();
        let mut b = new.files.iter().peekable();
        loop {
            let (ea, eb) = (a.peek().copied(), b.peek().copied());
            let order = match (ea, eb) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some((ka, _)), Some((kb, _))) => ka.cmp(kb),
            };
            let (first, differs) = match (order, ea, eb) {
                (Ordering::Less, Some((ka, _)), _) => (ka, true),
                (Ordering::Greater, _, Some((kb, _))) => (kb, true),
                (Ordering::Equal, Some((ka, va)), Some((_, vb))) => (ka, va != vb),
                _ => unreachable!("an order implies its entries"),
            };
            if differs {
                if hashing.is_none() {
                    hashing = Some(self.catch_up(new, first));
                }
                paths.push(first.clone());
            }
            if order != Ordering::Greater {
                a.next();
            }
            if order != Ordering::Less {
                let (path, data) = b.next().expect("peeked");
                if let Some(h) = &mut hashing {
                    self.hash_entry(h, path, data);
                }
            }
        }
        let state = match hashing {
            Some(h) => {
                self.files_end = h.state.clone();
                Some(h.state)
            }
            None if *old_unreadable != new.unreadable => Some(self.files_end.clone()),
            None => None,
        };
        Changes {
            paths,
            hash: state.map(|s| finish(s, new)),
        }
    }

    /// The hashing state just before `first`: the last checkpoint at or
    /// before it, then the (unchanged) entries from there to `first`.
    /// Checkpoints after it are dropped: they are hashed again.
    fn catch_up(&mut self, new: &Tree, first: &str) -> Hashing {
        let i = self
            .checkpoints
            .partition_point(|(p, _)| p.as_str() <= first)
            .saturating_sub(1);
        self.checkpoints.truncate(i + 1);
        let (from, state) = self.checkpoints[i].clone();
        let mut h = Hashing { state, since: 0 };
        for (path, data) in new
            .files
            .range::<str, _>((Bound::Included(from.as_str()), Bound::Excluded(first)))
        {
            self.hash_entry(&mut h, path, data);
        }
        h
    }

    /// Hashes one file entry as `Tree::content_hash` does, saving a
    /// checkpoint before it every `interval` entries.
    fn hash_entry(&mut self, h: &mut Hashing, path: &str, data: &[u8]) {
        if h.since == self.interval {
            self.checkpoints.push((path.to_string(), h.state.clone()));
            h.since = 0;
        }
        h.state.update((path.len() as u64).to_le_bytes());
        h.state.update(path.as_bytes());
        h.state.update((data.len() as u64).to_le_bytes());
        h.state.update(data);
        h.since += 1;
    }
}

struct Hashing {
    state: Sha256,
    /// Entries hashed since the last checkpoint.
    since: usize,
}

/// Hashes the unreadable entries and finishes, as `Tree::content_hash`.
fn finish(mut state: Sha256, tree: &Tree) -> String {
    for (path, why) in &tree.unreadable {
        state.update(b"!");
        state.update(path.as_bytes());
        state.update(why.as_bytes());
    }
    tree::hex(&state.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn edits() -> impl Strategy<Value = Vec<(u8, Option<u8>, bool)>> {
        // (path, new contents or removal, mark unreadable)
        prop::collection::vec(
            (
                0u8..40,
                prop::option::of(0u8..4),
                prop::bool::weighted(0.05),
            ),
            1..30,
        )
    }

    proptest! {
        #[test]
        fn the_kept_hash_is_the_content_hash(
            initial in prop::collection::vec((0u8..40, 0u8..4), 0..40),
            steps in prop::collection::vec(edits(), 1..6),
            interval in 1usize..6,
        ) {
            let mut tree = Tree::new("t");
            for (p, c) in initial {
                tree.insert(format!("k{p:02}"), vec![c; c as usize]);
            }
            let (mut d, hash) = Digest256::with_interval(&tree, interval);
            prop_assert_eq!(hash, tree.content_hash());
            for step in steps {
                let old = tree.clone();
                for (p, c, unreadable) in step {
                    let path = format!("k{p:02}");
                    match c {
                        Some(c) => tree.insert(path.clone(), vec![c; c as usize]),
                        None => {
                            tree.files.remove(&path);
                        }
                    }
                    if unreadable {
                        tree.unreadable.insert(path, "denied".into());
                    }
                }
                let changes = d.diff(&old.files, &old.unreadable, &tree);
                let changed = old != tree;
                prop_assert_eq!(changes.hash.is_some(), changed);
                if let Some(h) = changes.hash {
                    prop_assert_eq!(h, tree.content_hash());
                }
                let expected: Vec<String> = old
                    .files
                    .keys()
                    .chain(tree.files.keys())
                    .filter(|k| old.files.get(*k) != tree.files.get(*k))
                    .cloned()
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                prop_assert_eq!(changes.paths, expected);
            }
        }
    }
}
