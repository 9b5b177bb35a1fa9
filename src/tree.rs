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
use std::rc::Rc;
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
/// A tree made by [`Files::compressed`] (the etcd overlay) holds its chunks
/// LZ4-compressed (about 5x smaller for etcd keys), but the last one (where
/// sorted loads append): a read decompresses the chunk it reads, a change
/// decompresses, changes and compresses again the chunk it changes. Reads
/// therefore hand out [`File`] handles, which hold the decompressed chunk
/// (or borrow a plain one), not borrowed `&str` and `&[u8]`. Config trees
/// (Git, a directory) stay plain: reading them costs nothing more.
///
/// A `BTreeMap<Box<str>, Box<[u8]>>` would still cost a slot (32 bytes,
/// nodes partly full) and two allocations a key; no crate we know packs an
/// ordered string map with borrowed `&str` keys this way, hence by hand.
#[derive(Clone, Default)]
pub struct Files {
    /// The first path of each chunk -> the chunk; no chunk is empty.
    chunks: BTreeMap<Box<str>, Arc<Chunk>>,
    len: usize,
    print: Fingerprint,
    /// Chunks are stored LZ4-compressed.
    compress: bool,
}

/// A chunk of [`Files`] as stored: its bytes, or those LZ4-compressed
/// (block format) with their length.
#[derive(Clone)]
enum Chunk {
    Plain(Vec<u8>),
    Lz4 { bytes: Box<[u8]>, len: usize },
}

impl Chunk {
    /// The chunk as it is stored: compressed (when asked and when smaller),
    /// or plain, held at its length unless `spare`.
    fn store(mut bytes: Vec<u8>, compress: bool, spare: bool) -> Chunk {
        if compress && !spare {
            let packed = lz4_flex::block::compress(&bytes);
            if packed.len() < bytes.len() {
                return Chunk::Lz4 {
                    bytes: packed.into_boxed_slice(),
                    len: bytes.len(),
                };
            }
        }
        if !spare {
            bytes.shrink_to_fit();
        }
        Chunk::Plain(bytes)
    }

    /// The chunk's bytes, to read: borrowed when plain; decompressed, or
    /// as this thread last decompressed it ([`LAST_OPENED`]).
    fn open(self: &Arc<Chunk>) -> Buf<'_> {
        match &**self {
            Chunk::Plain(bytes) => Buf::Borrowed(bytes),
            Chunk::Lz4 { bytes, len } => Buf::Shared(LAST_OPENED.with_borrow_mut(|last| {
                if let Some((chunk, buf)) = last.as_ref()
                    && Arc::ptr_eq(chunk, self)
                {
                    return buf.clone();
                }
                let buf = Rc::new(unpack(bytes, *len));
                *last = Some((self.clone(), buf.clone()));
                buf
            })),
        }
    }

    /// The chunk's bytes, to change.
    fn into_vec(self: Arc<Chunk>) -> Vec<u8> {
        match Arc::try_unwrap(self) {
            Ok(Chunk::Plain(bytes)) => bytes,
            Ok(Chunk::Lz4 { bytes, len }) => unpack(&bytes, len),
            Err(shared) => match &*shared {
                Chunk::Plain(bytes) => bytes.clone(),
                Chunk::Lz4 { bytes, len } => unpack(bytes, *len),
            },
        }
    }

    /// The bytes it takes (its heap buffer's length).
    #[cfg(test)]
    fn stored_len(&self) -> usize {
        match self {
            Chunk::Plain(bytes) => bytes.len(),
            Chunk::Lz4 { bytes, .. } => bytes.len(),
        }
    }
}

thread_local! {
    /// The compressed chunk this thread opened last, and its bytes: a
    /// render reads one service's keys after another, several to a chunk,
    /// and opens each chunk once, not once a service. (Chunks never change:
    /// a change makes a new one, so the same `Arc` is the same bytes; the
    /// clone held here keeps it so.)
    static LAST_OPENED: std::cell::RefCell<Option<Opened>> =
        const { std::cell::RefCell::new(None) };
}

/// A compressed chunk and its bytes, decompressed.
type Opened = (Arc<Chunk>, Rc<Vec<u8>>);

/// Decompresses a chunk this module compressed.
fn unpack(bytes: &[u8], len: usize) -> Vec<u8> {
    lz4_flex::block::decompress(bytes, len).expect("a chunk compressed by Files")
}

/// A chunk's bytes being read: borrowed from a plain chunk, or decompressed
/// and shared by the [`File`]s read from it.
#[derive(Clone)]
enum Buf<'a> {
    Borrowed(&'a [u8]),
    Shared(Rc<Vec<u8>>),
}

impl Buf<'_> {
    fn as_slice(&self) -> &[u8] {
        match self {
            Buf::Borrowed(bytes) => bytes,
            Buf::Shared(bytes) => bytes,
        }
    }
}

/// One file of [`Files`], as read: its path and contents, borrowed from the
/// chunk it was read from (which it holds, decompressed, for a compressed
/// tree).
#[derive(Clone)]
pub struct File<'a> {
    buf: Buf<'a>,
    /// Where the path starts, where the contents start and end.
    at: [usize; 3],
}

impl<'a> File<'a> {
    /// The entry of `buf` starting at `at`, and where the next starts.
    fn read(buf: Buf<'a>, at: usize) -> (File<'a>, usize) {
        let bytes = buf.as_slice();
        let mut data_at = at;
        let path_len = take_len(bytes, &mut data_at);
        let data_len = take_len(bytes, &mut data_at);
        let path_at = data_at;
        data_at += path_len;
        let end = data_at + data_len;
        (
            File {
                buf,
                at: [path_at, data_at, end],
            },
            end,
        )
    }

    pub fn path(&self) -> &str {
        as_path(&self.buf.as_slice()[self.at[0]..self.at[1]])
    }

    pub fn data(&self) -> &[u8] {
        &self.buf.as_slice()[self.at[1]..self.at[2]]
    }
}

impl PartialEq for File<'_> {
    fn eq(&self, other: &File<'_>) -> bool {
        self.path() == other.path() && self.data() == other.data()
    }
}

impl std::fmt::Debug for File<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("File")
            .field(&self.path())
            .field(&self.data())
            .finish()
    }
}

impl Files {
    /// An empty tree whose chunks are held LZ4-compressed (the etcd
    /// overlay: many small, alike keys read a few at a time).
    pub fn compressed() -> Files {
        Files {
            compress: true,
            ..Files::default()
        }
    }

    /// The number of files.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The file at `path`.
    pub fn get(&self, path: &str) -> Option<File<'_>> {
        let (_, chunk) = self
            .chunks
            .range::<str, _>((Bound::Unbounded, Bound::Included(path)))
            .next_back()?;
        let buf = chunk.open();
        let (at, _, found) = seek(buf.as_slice(), path.as_bytes());
        found.then(|| File::read(buf, at).0)
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
            buf: Buf::Borrowed(&[]),
            at: 0,
        }
    }

    /// Every file, in path order, borrowed from a tree that is not
    /// compressed (a config tree, read from Git or a directory), for a
    /// reader that holds them all at once (`config::parse_config`).
    ///
    /// # Panics
    /// On a chunk of a [`Files::compressed`] tree.
    pub fn iter_plain(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.chunks.values().flat_map(|chunk| {
            let Chunk::Plain(bytes) = &**chunk else {
                panic!("iter_plain on a compressed tree");
            };
            let mut at = 0;
            std::iter::from_fn(move || {
                (at < bytes.len()).then(|| {
                    let (path, data, next) = decode(bytes, at);
                    at = next;
                    (as_path(path), data)
                })
            })
        })
    }

    /// Every path, in order, copied: for a cold reader (tests); a pass
    /// reads paths through [`Files::iter`] without copying.
    pub fn keys(&self) -> impl Iterator<Item = String> + '_ {
        self.iter().map(|f| f.path().to_string())
    }

    /// Whether the tree's chunks are held compressed.
    pub fn is_compressed(&self) -> bool {
        self.compress
    }

    /// The files from `start` on (`start` included), in path order.
    pub fn iter_from(&self, start: &str) -> Iter<'_> {
        match self
            .chunks
            .range::<str, _>((Bound::Unbounded, Bound::Included(start)))
            .next_back()
        {
            Some((first, chunk)) => {
                let buf = chunk.open();
                let at = seek(buf.as_slice(), start.as_bytes()).0;
                Iter {
                    chunks: self
                        .chunks
                        .range::<str, _>((Bound::Excluded(&**first), Bound::Unbounded)),
                    buf,
                    at,
                }
            }
            None => self.iter(),
        }
    }

    /// The files whose path starts with `prefix`, in path order.
    pub fn prefixed<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = File<'a>> {
        self.iter_from(prefix)
            .take_while(move |f| f.path().starts_with(prefix))
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
        if !seek(chunk.open().as_slice(), path.as_bytes()).2 {
            return false;
        }
        let key = key.clone();
        let mut last = self.is_last(&key);
        let mut chunk = self.take_chunk(&key);
        let (at, end, _) = seek(&chunk, path.as_bytes());
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
    /// [`Files::insert`]): packed in one pass, no hashing; plain.
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
            compress: false,
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
        let mut packer = Packer {
            compress: self.compress,
            ..Packer::default()
        };
        for (_, chunk) in std::mem::take(&mut self.chunks) {
            let chunk = chunk.into_vec();
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
        self.chunks
            .remove(key)
            .expect("a chunk that is there")
            .into_vec()
    }

    /// Puts a changed chunk back, split when too large. `last`: it is the
    /// last chunk, which stays plain with spare capacity for appends (every
    /// other is held at its length, compressed in a compressed tree);
    /// `append`: it grew at its end, split off the entry appended (sorted
    /// loads fill chunks).
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
        let first = as_path(decode(&chunk, 0).0).into();
        self.chunks
            .insert(first, Arc::new(Chunk::store(chunk, self.compress, last)));
    }
}

/// [`Files`] from files pushed one at a time (a directory's walk): packed
/// as they come while their paths ascend, as a walk in sorted order gives
/// them, so no copy of each file waits for a sort beside the packed ones.
/// From the first path out of order on, the rest are collected and the
/// whole is sorted at the end, as [`Files::from_entries`] does (of one
/// path, the last pushed counts).
#[derive(Default)]
pub struct FilesBuilder {
    packer: Packer,
    print: Fingerprint,
    /// The last path packed.
    last: String,
    /// The files pushed since the first one out of order.
    unsorted: Vec<Entry>,
}

impl FilesBuilder {
    pub fn push(&mut self, path: &str, data: &[u8]) {
        if self.in_order() && (self.packer.len == 0 || path > self.last.as_str()) {
            self.print.add(Fingerprint::of_entry(path, data));
            self.packer.push(path, data);
            self.last.clear();
            self.last.push_str(path);
        } else {
            self.unsorted.push(Entry::from_parts(path, data));
        }
    }

    /// No file pushed yet.
    pub fn is_empty(&self) -> bool {
        self.packer.len == 0 && self.unsorted.is_empty()
    }

    /// Every file so far came in path order (each packed as it came).
    pub fn in_order(&self) -> bool {
        self.unsorted.is_empty()
    }

    pub fn finish(self) -> Files {
        let len = self.packer.len;
        let files = Files {
            chunks: self.packer.finish(),
            len,
            print: self.print,
            compress: false,
        };
        if self.unsorted.is_empty() {
            return files;
        }
        let mut entries: Vec<Entry> = files
            .iter_plain()
            .map(|(path, data)| Entry::from_parts(path, data))
            .collect();
        entries.extend(self.unsorted);
        Files::from_entries(entries)
    }
}

/// Packs entries given in path order into full chunks.
#[derive(Default)]
struct Packer {
    chunks: BTreeMap<Box<str>, Arc<Chunk>>,
    chunk: Vec<u8>,
    len: usize,
    compress: bool,
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
        self.chunk = entry;
        self.seal();
        self.len += 1;
    }

    fn seal(&mut self) {
        let chunk = std::mem::take(&mut self.chunk);
        let first = as_path(decode(&chunk, 0).0).into();
        self.chunks
            .insert(first, Arc::new(Chunk::store(chunk, self.compress, false)));
    }

    fn finish(mut self) -> BTreeMap<Box<str>, Arc<Chunk>> {
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

/// The files of [`Files`] in path order.
pub struct Iter<'a> {
    chunks: std::collections::btree_map::Range<'a, Box<str>, Arc<Chunk>>,
    /// The chunk being read.
    buf: Buf<'a>,
    at: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = File<'a>;

    fn next(&mut self) -> Option<File<'a>> {
        while self.at >= self.buf.as_slice().len() {
            self.buf = self.chunks.next()?.1.open();
            self.at = 0;
        }
        let (file, next) = File::read(self.buf.clone(), self.at);
        self.at = next;
        Some(file)
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
        let mut map = f.debug_map();
        for file in self {
            map.entry(&file.path(), &file.data());
        }
        map.finish()
    }
}

impl<'a> IntoIterator for &'a Files {
    type Item = File<'a>;
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
            for f in files.iter() {
                sum.add(Fingerprint::of_entry(f.path(), f.data()));
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

        #[test]
        fn files_pushed_one_by_one_in_any_order_equal_files_inserted_one_by_one(
            mut puts in prop::collection::vec((0u8..20, 0u8..4), 0..60),
            ascending in 0usize..60,
        ) {
            // The first `ascending` puts in path order (packed as they
            // come), the rest in any order (collected, then sorted).
            let ascending = ascending.min(puts.len());
            puts[..ascending].sort();
            let mut inserted = Files::default();
            let mut builder = FilesBuilder::default();
            let mut last: Option<String> = None;
            let mut in_order = true;
            for (p, c) in puts {
                let (path, data) = (format!("k{p:02}"), vec![c; c as usize * 700]);
                inserted.insert(&path, &data);
                builder.push(&path, &data);
                in_order &= last.as_ref().is_none_or(|l| *l < path);
                prop_assert_eq!(builder.in_order(), in_order);
                last = Some(path);
            }
            let built = builder.finish();
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
            for files in [Files::default(), Files::compressed()] {
                reads_as_the_sorted_map(files, &edits, clone_at)?;
            }
        }
    }

    /// Makes the `edits` to `files` and to a `BTreeMap` and checks after
    /// each that they read alike; a clone taken at `clone_at` reads as the
    /// map did then.
    fn reads_as_the_sorted_map(
        mut files: Files,
        edits: &[(u16, Option<usize>)],
        clone_at: usize,
    ) -> Result<(), TestCaseError> {
        let mut model: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut clone = None;
        for (i, &(p, size)) in edits.iter().enumerate() {
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
        Ok(())
    }

    /// `files` reads as `model`, and its chunks keep their invariants
    /// (`all`: and its fingerprint is right, and it reads so from anywhere).
    fn check(
        files: &Files,
        model: &BTreeMap<String, Vec<u8>>,
        all: bool,
    ) -> Result<(), TestCaseError> {
        prop_assert_eq!(files.len(), model.len());
        prop_assert!(reads_as(files.iter(), model));
        if all {
            let mut sum = Fingerprint::default();
            for (path, data) in model {
                prop_assert_eq!(
                    files.get(path).map(|f| f.data().to_vec()),
                    Some(data.clone())
                );
                sum.add(Fingerprint::of_entry(path, data));
                prop_assert!(reads_as(
                    files.iter_from(path),
                    model.range::<str, _>((Bound::Included(path.as_str()), Bound::Unbounded))
                ));
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
            prop_assert_eq!(
                files.get(start).map(|f| f.data().to_vec()),
                model.get(start).cloned()
            );
            prop_assert!(reads_as(
                files.iter_from(start),
                model.range::<str, _>((Bound::Included(start), Bound::Unbounded))
            ));
            prop_assert_eq!(
                files.prefixed(start).count(),
                model.keys().filter(|k| k.starts_with(start)).count()
            );
        }
        let mut before: Option<String> = None;
        for (i, (first, chunk)) in files.chunks.iter().enumerate() {
            // Compressed in a compressed tree but the last chunk (or when
            // it does not shrink), else plain.
            let compressed = matches!(**chunk, Chunk::Lz4 { .. });
            prop_assert!(!compressed || files.compress);
            prop_assert!(!compressed || i + 1 < files.chunks.len());
            let buf = chunk.open();
            let chunk = buf.as_slice();
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
            prop_assert!(before.is_none_or(|b| *b < **first));
            before = Some(as_path(entries[entries.len() - 1].0).to_string());
        }
        Ok(())
    }

    /// Whether `files` yields the entries of `model`, in order.
    fn reads_as<'a, 'm>(
        mut files: impl Iterator<Item = File<'a>>,
        model: impl IntoIterator<Item = (&'m String, &'m Vec<u8>)>,
    ) -> bool {
        for (path, data) in model {
            match files.next() {
                Some(f) if f.path() == path && f.data() == data.as_slice() => {}
                _ => return false,
            }
        }
        files.next().is_none()
    }

    #[test]
    fn paths_and_contents_can_be_released() {
        for mut files in [Files::default(), Files::compressed()] {
            for i in 0..500 {
                files.insert(&format!("p{i:03}"), format!("contents {i}").as_bytes());
            }
            let (paths, print) = (
                files
                    .iter()
                    .map(|f| f.path().to_string())
                    .collect::<Vec<_>>(),
                files.fingerprint(),
            );
            let mut taken = files.clone();
            let contents = taken.take_contents();
            assert_eq!(contents.len(), 500);
            assert!(
                contents
                    .iter()
                    .map(Vec::as_slice)
                    .eq(files.iter().map(|f| f.data().to_vec()))
            );
            files.release_contents();
            for f in [&files, &taken] {
                assert!(
                    f.iter()
                        .map(|f| f.path().to_string())
                        .eq(paths.iter().cloned())
                );
                assert!(f.iter().all(|f| f.data().is_empty()));
                assert_eq!(f.fingerprint(), print);
            }
        }
    }

    /// `n` etcd overlay keys as the watch holds them, inserted in order.
    fn etcd_keys(mut files: Files, n: usize) -> Files {
        for i in 0..n {
            let value = format!(
                r#"{{"ipv4": "100.0.{}.{}", "tcp": 8080, "weight": 10}}"#,
                i / 10 / 256,
                i / 10 % 256
            );
            files.insert(
                &format!("services/s{}/backends/b{}", i / 10, i % 10),
                value.as_bytes(),
            );
        }
        files
    }

    fn stored(files: &Files) -> usize {
        files.chunks.values().map(|c| c.stored_len()).sum()
    }

    #[test]
    fn a_compressed_tree_holds_etcd_keys_in_a_third_of_the_bytes() {
        let plain = etcd_keys(Files::default(), 10_000);
        let compressed = etcd_keys(Files::compressed(), 10_000);
        assert!(compressed == plain);
        assert_eq!(compressed.fingerprint(), plain.fingerprint());
        assert!(compressed.is_compressed() && !plain.is_compressed());
        let (plain, compressed) = (stored(&plain), stored(&compressed));
        assert!(compressed * 3 < plain, "{compressed} of {plain} bytes");
    }

    #[test]
    fn a_change_copies_only_its_chunk_from_a_clone() {
        for files in [Files::default(), Files::compressed()] {
            let mut files = etcd_keys(files, 2_000);
            let snapshot = files.clone();
            files.insert("services/s100/backends/b3", b"{}");
            assert!(files.remove("services/s150/backends/b4"));
            let shared = |a: &Files, b: &Files| {
                a.chunks
                    .iter()
                    .filter(|(k, c)| b.chunks.get(*k).is_some_and(|d| Arc::ptr_eq(c, d)))
                    .count()
            };
            assert!(shared(&files, &snapshot) + 3 >= snapshot.chunks.len());
            assert!(snapshot.get("services/s150/backends/b4").is_some());
            assert_ne!(
                snapshot.get("services/s100/backends/b3").unwrap().data(),
                b"{}"
            );
            assert_eq!(
                files.get("services/s100/backends/b3").unwrap().data(),
                b"{}"
            );
        }
    }

    #[test]
    fn empty_and_huge_files_read_back_in_either_form() {
        for mut files in [Files::default(), Files::compressed()] {
            assert!(files.is_empty() && files.iter().next().is_none());
            assert!(files.get("").is_none() && files.iter_from("a").next().is_none());
            assert_eq!(files.prefixed("").count(), 0);
            assert!(!files.remove("a"));
            assert!(files.take_contents().is_empty());
            // One entry over the chunk limit, compressible and not, among
            // small ones; an empty path and empty contents.
            let repeated = vec![b'x'; 1 << 20];
            let noise: Vec<u8> = (0u32..10_000)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect();
            let mut model = BTreeMap::new();
            for (path, data) in [
                ("", &b""[..]),
                ("a", b"1"),
                ("b/huge", &repeated),
                ("b/noise", &noise),
                ("c", b""),
                ("d", &repeated[..CHUNK_MAX + 1]),
            ] {
                files.insert(path, data);
                model.insert(path.to_string(), data.to_vec());
            }
            check(&files, &model, true).unwrap();
            assert_eq!(files.get("b/huge").unwrap().data(), &repeated[..]);
            if files.is_compressed() {
                assert!(stored(&files) < noise.len() + (CHUNK_MAX + 1) + 4 * 1024);
            }
            assert!(files.remove("b/huge"));
            model.remove("b/huge");
            check(&files, &model, true).unwrap();
            let contents = files.clone().take_contents();
            assert!(contents.iter().eq(model.values()));
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
