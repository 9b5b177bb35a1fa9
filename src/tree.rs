//! A config or overlay tree held in memory: relative paths (or etcd keys
//! below the prefix) mapped to their bytes.
//!
//! Every source (a directory, a Git commit, etcd) is read into a [`Tree`] at
//! the edge; rendering then works on the tree without touching the outside.
//!
//! Invariant: paths use `/`, are relative, never start with `/` and never
//! contain dot-file components (sources drop those when they read).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

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

    pub fn insert(&mut self, path: impl AsRef<str>, contents: impl AsRef<[u8]>) {
        self.files.insert(path.as_ref(), contents.as_ref());
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

/// One file with its [`Fingerprint`], hashed and encoded as [`Files`]
/// holds it where it is made (a source's reader threads), so that
/// [`Files::from_entries`] neither hashes nor, for a file of its own chunk,
/// copies again.
pub struct Entry {
    /// The entry as a chunk holds it.
    encoded: Vec<u8>,
    print: Fingerprint,
}

impl Entry {
    pub fn new(path: String, data: Vec<u8>) -> Entry {
        Entry::from_parts(&path, &data)
    }

    /// The entry of `path` with a copy of `data`.
    pub fn from_parts(path: &str, data: &[u8]) -> Entry {
        let mut encoded = Vec::with_capacity(encoded_len(path, data));
        encode(&mut encoded, path, data);
        Entry {
            encoded,
            print: Fingerprint::of_entry(path, data),
        }
    }

    pub fn path(&self) -> &str {
        as_path(self.path_bytes())
    }

    fn path_bytes(&self) -> &[u8] {
        decode(&self.encoded, 0).0
    }

    pub fn data(&self) -> &[u8] {
        decode(&self.encoded, 0).1
    }
}

/// The bytes a chunk of [`Files`] holds at most, unless it holds one entry
/// only (a larger file).
const CHUNK_MAX: usize = 2048;
/// A chunk left smaller than this by a removal is merged with a neighbour.
const CHUNK_MIN: usize = CHUNK_MAX / 4;

/// A tree's files (path -> contents) in path order, and their
/// [`Fingerprint`], which every change keeps current: changed only through
/// [`Files::insert`] and [`Files::remove`].
///
/// Held compactly (issue 15: the etcd watch holds 100k keys): the entries
/// are packed in path order into chunks of about [`CHUNK_MAX`] bytes (an
/// entry is its path's and its contents' lengths as LEB128, then the path,
/// then the contents), found through a `BTreeMap` from each chunk's first
/// path. A key costs its bytes plus a few, not a B-tree slot and two
/// allocations. A change finds its chunk in O(log n) and rewrites that
/// chunk only. Chunks are shared between clones and copied on write, so
/// the etcd watch patching its tree while a pass holds the last snapshot
/// copies the chunks it changes, not the tree.
///
/// A `BTreeMap<Box<str>, Box<[u8]>>` would still cost a slot (32 bytes,
/// nodes partly full) and two allocations a key; no crate we know packs an
/// ordered string map with borrowed `&str` keys this way, hence by hand.
#[derive(Clone, Default)]
pub struct Files {
    /// The first path of each chunk -> the chunk; no chunk is empty.
    chunks: BTreeMap<Box<str>, Arc<Vec<u8>>>,
    len: usize,
    print: Fingerprint,
}

impl Files {
    /// The number of files.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The contents of `path`.
    pub fn get(&self, path: &str) -> Option<&[u8]> {
        let (_, chunk) = self
            .chunks
            .range::<str, _>((Bound::Unbounded, Bound::Included(path)))
            .next_back()?;
        let (at, _, found) = seek(chunk, path.as_bytes());
        found.then(|| decode(chunk, at).1)
    }

    pub fn contains_key(&self, path: &str) -> bool {
        self.get(path).is_some()
    }

    /// Every file, in path order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            chunks: self
                .chunks
                .range::<str, _>((Bound::Unbounded, Bound::Unbounded)),
            chunk: &[],
            at: 0,
        }
    }

    /// The files from `start` on (`start` included), in path order.
    pub fn iter_from(&self, start: &str) -> Iter<'_> {
        match self
            .chunks
            .range::<str, _>((Bound::Unbounded, Bound::Included(start)))
            .next_back()
        {
            Some((first, chunk)) => Iter {
                chunks: self
                    .chunks
                    .range::<str, _>((Bound::Excluded(&**first), Bound::Unbounded)),
                chunk,
                at: seek(chunk, start.as_bytes()).0,
            },
            None => self.iter(),
        }
    }

    /// The files whose path starts with `prefix`, in path order.
    pub fn prefixed<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a [u8])> {
        self.iter_from(prefix)
            .take_while(move |(path, _)| path.starts_with(prefix))
    }

    /// Every path, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.iter().map(|(path, _)| path)
    }

    /// Every file's contents, in path order.
    pub fn values(&self) -> impl Iterator<Item = &[u8]> {
        self.iter().map(|(_, data)| data)
    }

    /// Sets `path` to `data`.
    pub fn insert(&mut self, path: &str, data: &[u8]) {
        let Some(key) = self
            .chunks
            .range::<str, _>((Bound::Unbounded, Bound::Included(path)))
            .next_back()
            .or_else(|| self.chunks.first_key_value())
            .map(|(first, _)| first.clone())
        else {
            self.len = 1;
            self.print = Fingerprint::of_entry(path, data);
            let mut chunk = Vec::with_capacity(encoded_len(path, data));
            encode(&mut chunk, path, data);
            self.put_chunk(chunk, true, false);
            return;
        };
        let last = self.is_last(&key);
        let mut chunk = self.take_chunk(&key);
        let (at, end, found) = seek(&chunk, path.as_bytes());
        if found {
            self.print
                .sub(Fingerprint::of_entry(path, decode(&chunk, at).1));
        } else {
            self.len += 1;
        }
        self.print.add(Fingerprint::of_entry(path, data));
        let append = at == chunk.len();
        if append {
            encode(&mut chunk, path, data);
        } else {
            let mut entry = Vec::with_capacity(encoded_len(path, data));
            encode(&mut entry, path, data);
            if !last {
                chunk.reserve_exact(entry.len().saturating_sub(end - at));
            }
            chunk.splice(at..end, entry);
        }
        self.put_chunk(chunk, last, last && append);
    }

    /// Removes `path`; whether it was there.
    pub fn remove(&mut self, path: &str) -> bool {
        let Some((key, chunk)) = self
            .chunks
            .range::<str, _>((Bound::Unbounded, Bound::Included(path)))
            .next_back()
        else {
            return false;
        };
        let (at, end, found) = seek(chunk, path.as_bytes());
        if !found {
            return false;
        }
        let key = key.clone();
        let mut last = self.is_last(&key);
        let mut chunk = self.take_chunk(&key);
        self.print
            .sub(Fingerprint::of_entry(path, decode(&chunk, at).1));
        self.len -= 1;
        chunk.drain(at..end);
        if chunk.len() < CHUNK_MIN {
            let next = self
                .chunks
                .range::<str, _>((Bound::Excluded(&*key), Bound::Unbounded))
                .next()
                .map(|(first, _)| first.clone());
            let prev = self
                .chunks
                .range::<str, _>((Bound::Unbounded, Bound::Excluded(&*key)))
                .next_back()
                .map(|(first, _)| first.clone());
            if let Some(next) = next {
                last = self.is_last(&next);
                let next = self.take_chunk(&next);
                chunk.extend_from_slice(&next);
            } else if let Some(prev) = prev {
                let mut prev = self.take_chunk(&prev);
                prev.extend_from_slice(&chunk);
                chunk = prev;
            }
        }
        self.put_chunk(chunk, last, false);
        true
    }

    /// The files of `entries` (of one path, the last one counts, as with
    /// [`Files::insert`]): packed in one pass, no hashing.
    pub fn from_entries(mut entries: Vec<Entry>) -> Files {
        entries.sort_by(|a, b| a.path_bytes().cmp(b.path_bytes()));
        let mut print = Fingerprint::default();
        let mut packer = Packer::default();
        let mut entries = entries.into_iter().peekable();
        while let Some(e) = entries.next() {
            if entries
                .peek()
                .is_some_and(|next| next.path_bytes() == e.path_bytes())
            {
                continue;
            }
            print.add(e.print);
            packer.push_encoded(e.encoded);
        }
        let len = packer.len;
        Files {
            chunks: packer.finish(),
            len,
            print,
        }
    }

    /// Empties every file's contents, keeping the paths and the fingerprint
    /// of what they held: for a tree parsed and no longer read (the one-shot
    /// `plan` frees its memory this way; `render::render_releasing`).
    pub fn release_contents(&mut self) {
        self.take_contents_into(None);
    }

    /// Takes every file's contents out, in path order, leaving the paths
    /// and the fingerprint as [`Files::release_contents`] does: for a
    /// reader that drops each once read (`config::ServiceReader`).
    pub fn take_contents(&mut self) -> Vec<Vec<u8>> {
        let mut contents = Vec::with_capacity(self.len);
        self.take_contents_into(Some(&mut contents));
        contents
    }

    /// Repacks the paths without their contents, a chunk at a time (the
    /// old chunk is dropped once copied), copying the contents to `out`.
    fn take_contents_into(&mut self, mut out: Option<&mut Vec<Vec<u8>>>) {
        let mut packer = Packer::default();
        for (_, chunk) in std::mem::take(&mut self.chunks) {
            let mut at = 0;
            while at < chunk.len() {
                let (path, data, next) = decode(&chunk, at);
                packer.push(as_path(path), &[]);
                if let Some(out) = out.as_deref_mut() {
                    out.push(data.to_vec());
                }
                at = next;
            }
        }
        self.chunks = packer.finish();
    }

    /// The fingerprint of every entry.
    pub fn fingerprint(&self) -> Fingerprint {
        self.print
    }

    fn is_last(&self, key: &str) -> bool {
        self.chunks
            .last_key_value()
            .is_some_and(|(last, _)| **last == *key)
    }

    /// Takes a chunk out to change it (copied if a clone shares it).
    fn take_chunk(&mut self, key: &str) -> Vec<u8> {
        let chunk = self.chunks.remove(key).expect("a chunk that is there");
        Arc::unwrap_or_clone(chunk)
    }

    /// Puts a changed chunk back, split when too large. `last`: it is the
    /// last chunk, which keeps spare capacity for appends (every other is
    /// held at its length); `append`: it grew at its end, split off the
    /// entry appended (sorted loads fill chunks).
    fn put_chunk(&mut self, mut chunk: Vec<u8>, last: bool, append: bool) {
        if chunk.is_empty() {
            return;
        }
        if chunk.len() > CHUNK_MAX
            && let Some(at) = split_point(&chunk, append)
        {
            let right = chunk.split_off(at);
            self.put_chunk(chunk, false, false);
            self.put_chunk(right, last, false);
            return;
        }
        if !last {
            chunk.shrink_to_fit();
        }
        let first = as_path(decode(&chunk, 0).0).into();
        self.chunks.insert(first, Arc::new(chunk));
    }
}

/// Packs entries given in path order into full chunks.
#[derive(Default)]
struct Packer {
    chunks: BTreeMap<Box<str>, Arc<Vec<u8>>>,
    chunk: Vec<u8>,
    len: usize,
}

impl Packer {
    fn push(&mut self, path: &str, data: &[u8]) {
        let n = encoded_len(path, data);
        if !self.chunk.is_empty() && self.chunk.len() + n > CHUNK_MAX {
            self.seal();
        }
        if self.chunk.is_empty() {
            self.chunk.reserve_exact(n.max(CHUNK_MAX));
        }
        encode(&mut self.chunk, path, data);
        self.len += 1;
    }

    /// Pushes one encoded entry: a large one (a config file) becomes its
    /// own chunk as it is, without a copy.
    fn push_encoded(&mut self, entry: Vec<u8>) {
        if entry.len() <= CHUNK_MAX / 2 {
            let (path, data, _) = decode(&entry, 0);
            return self.push(as_path(path), data);
        }
        if !self.chunk.is_empty() {
            self.seal();
        }
        let first = as_path(decode(&entry, 0).0).into();
        self.chunks.insert(first, Arc::new(entry));
        self.len += 1;
    }

    fn seal(&mut self) {
        let mut chunk = std::mem::take(&mut self.chunk);
        chunk.shrink_to_fit();
        let first = as_path(decode(&chunk, 0).0).into();
        self.chunks.insert(first, Arc::new(chunk));
    }

    fn finish(mut self) -> BTreeMap<Box<str>, Arc<Vec<u8>>> {
        if !self.chunk.is_empty() {
            self.seal();
        }
        self.chunks
    }
}

fn encoded_len(path: &str, data: &[u8]) -> usize {
    let varint = |n: usize| (usize::BITS - n.leading_zeros()).div_ceil(7).max(1) as usize;
    varint(path.len()) + varint(data.len()) + path.len() + data.len()
}

fn encode(chunk: &mut Vec<u8>, path: &str, data: &[u8]) {
    put_len(chunk, path.len());
    put_len(chunk, data.len());
    chunk.extend_from_slice(path.as_bytes());
    chunk.extend_from_slice(data);
}

fn put_len(chunk: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        chunk.push(n as u8 | 0x80);
        n >>= 7;
    }
    chunk.push(n as u8);
}

fn take_len(chunk: &[u8], at: &mut usize) -> usize {
    let mut n = 0;
    let mut shift = 0;
    loop {
        let byte = chunk[*at];
        *at += 1;
        n |= usize::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return n;
        }
        shift += 7;
    }
}

/// The entry starting at `at`: its path, its contents, where the next
/// starts.
fn decode(chunk: &[u8], mut at: usize) -> (&[u8], &[u8], usize) {
    let path_len = take_len(chunk, &mut at);
    let data_len = take_len(chunk, &mut at);
    let data_at = at + path_len;
    let next = data_at + data_len;
    (&chunk[at..data_at], &chunk[data_at..next], next)
}

/// Where `path` is or would go in `chunk`: the start and end of its entry
/// (both the start of the next one when absent), and whether it is there.
fn seek(chunk: &[u8], path: &[u8]) -> (usize, usize, bool) {
    let mut at = 0;
    while at < chunk.len() {
        let (p, _, next) = decode(chunk, at);
        match p.cmp(path) {
            std::cmp::Ordering::Less => at = next,
            std::cmp::Ordering::Equal => return (at, next, true),
            std::cmp::Ordering::Greater => break,
        }
    }
    (at, at, false)
}

/// Where to split an overfull chunk: before the last entry after an append,
/// else at the entry boundary nearest its middle; `None` for one entry.
fn split_point(chunk: &[u8], append: bool) -> Option<usize> {
    let mut best: Option<usize> = None;
    let mut last_start = 0;
    let mut at = decode(chunk, 0).2;
    while at < chunk.len() {
        last_start = at;
        if best.is_none_or(|b| at.abs_diff(chunk.len() / 2) < b.abs_diff(chunk.len() / 2)) {
            best = Some(at);
        }
        at = decode(chunk, at).2;
    }
    if append && last_start > 0 {
        return Some(last_start);
    }
    best
}

/// A stored path: only ever written from a `&str`.
fn as_path(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).expect("a path is stored from a str")
}

/// The files of [`Files`] in path order: `(path, contents)`.
pub struct Iter<'a> {
    chunks: std::collections::btree_map::Range<'a, Box<str>, Arc<Vec<u8>>>,
    chunk: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        while self.at >= self.chunk.len() {
            self.chunk = self.chunks.next()?.1;
            self.at = 0;
        }
        let (path, data, next) = decode(self.chunk, self.at);
        self.at = next;
        Some((as_path(path), data))
    }
}

impl PartialEq for Files {
    fn eq(&self, other: &Files) -> bool {
        self.len == other.len && self.print == other.print && self.iter().eq(other.iter())
    }
}

impl Eq for Files {}

impl std::fmt::Debug for Files {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a Files {
    type Item = (&'a str, &'a [u8]);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
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
                        files.insert(&path, &vec![c; c as usize * 700]);
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
                let (path, data) = (format!("k{p:02}"), vec![c; c as usize * 700]);
                inserted.insert(&path, &data);
                entries.push(Entry::new(path, data));
            }
            let built = Files::from_entries(entries);
            prop_assert_eq!(built.fingerprint(), inserted.fingerprint());
            prop_assert!(built == inserted);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn files_read_as_the_sorted_map_of_their_changes(
            edits in prop::collection::vec(
                (0u16..300, prop::option::weighted(0.8, prop_oneof![4 => 0usize..90, 1 => 0usize..5000])),
                0..300,
            ),
            clone_at in 0usize..300,
        ) {
            let mut files = Files::default();
            let mut model: BTreeMap<String, Vec<u8>> = BTreeMap::new();
            let mut clone = None;
            for (i, (p, size)) in edits.into_iter().enumerate() {
                if i == clone_at {
                    clone = Some((files.clone(), model.clone()));
                }
                let path = format!("services/s{}/backends/b{p}", p % 7);
                match size {
                    Some(n) => {
                        let data: Vec<u8> = (0..n).map(|j| (j + usize::from(p)) as u8).collect();
                        files.insert(&path, &data);
                        model.insert(path, data);
                    }
                    None => prop_assert_eq!(files.remove(&path), model.remove(&path).is_some()),
                }
                check(&files, &model, false)?;
            }
            check(&files, &model, true)?;
            // A clone does not see the changes made after it.
            if let Some((files, model)) = clone {
                check(&files, &model, true)?;
            }
        }
    }

    /// `files` reads as `model`, and its chunks keep their invariants
    /// (`all`: and its fingerprint is right, and it reads so from anywhere).
    fn check(
        files: &Files,
        model: &BTreeMap<String, Vec<u8>>,
        all: bool,
    ) -> Result<(), TestCaseError> {
        fn as_model<'a>((p, d): (&'a String, &'a Vec<u8>)) -> (&'a str, &'a [u8]) {
            (p, d)
        }
        prop_assert_eq!(files.len(), model.len());
        prop_assert!(files.iter().eq(model.iter().map(as_model)));
        if all {
            let mut sum = Fingerprint::default();
            for (path, data) in model {
                prop_assert_eq!(files.get(path), Some(data.as_slice()));
                sum.add(Fingerprint::of_entry(path, data));
                prop_assert!(
                    files.iter_from(path).eq(model
                        .range::<str, _>((Bound::Included(path.as_str()), Bound::Unbounded))
                        .map(as_model))
                );
            }
            prop_assert_eq!(files.fingerprint(), sum);
        }
        for start in [
            "",
            "services/s3",
            "services/s3/backends/b10",
            "services/s6/backends/b99",
            "z",
        ] {
            prop_assert_eq!(files.get(start), model.get(start).map(Vec::as_slice));
            prop_assert!(
                files.iter_from(start).eq(model
                    .range::<str, _>((Bound::Included(start), Bound::Unbounded))
                    .map(as_model))
            );
            prop_assert_eq!(
                files.prefixed(start).count(),
                model.keys().filter(|k| k.starts_with(start)).count()
            );
        }
        let mut before: Option<&str> = None;
        for (first, chunk) in &files.chunks {
            let entries: Vec<(&[u8], &[u8], usize)> = {
                let (mut at, mut v) = (0, Vec::new());
                while at < chunk.len() {
                    let e = decode(chunk, at);
                    at = e.2;
                    v.push(e);
                }
                v
            };
            prop_assert!(!entries.is_empty());
            prop_assert_eq!(entries[0].0, first.as_bytes());
            prop_assert!(chunk.len() <= CHUNK_MAX || entries.len() == 1);
            prop_assert!(before.is_none_or(|b| b < &**first));
            before = Some(as_path(entries[entries.len() - 1].0));
        }
        Ok(())
    }

    #[test]
    fn paths_and_contents_can_be_released() {
        let mut files = Files::default();
        for i in 0..500 {
            files.insert(&format!("p{i:03}"), format!("contents {i}").as_bytes());
        }
        let (paths, print) = (
            files.keys().map(String::from).collect::<Vec<_>>(),
            files.fingerprint(),
        );
        let mut taken = files.clone();
        let contents = taken.take_contents();
        assert_eq!(contents.len(), 500);
        assert!(contents.iter().map(Vec::as_slice).eq(files.values()));
        files.release_contents();
        for f in [&files, &taken] {
            assert!(f.keys().eq(paths.iter().map(String::as_str)));
            assert!(f.values().all(<[u8]>::is_empty));
            assert_eq!(f.fingerprint(), print);
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
