//! A config or overlay tree from a local directory (`--config-path`,
//! `--overlay-path`).
//!
//! Dot-files and dot-directories are skipped, as in the original. Entries
//! that cannot be read are recorded in the tree, named, with the reason
//! (validation reports them); a missing or unreadable root is an error.
//! An entry that is gone by the time it is opened (listed, then renamed or
//! deleted: an editor's or a deploy's save by rename racing the read) is
//! left out, as if the listing had come after: the change that removed it
//! wakes the daemon again. Unreadable are: what the file system refuses, files over
//! [`FILE_LIMIT`](crate::tree::FILE_LIMIT), named pipes, sockets and
//! devices (never opened, so none can block the read), and names that are
//! not UTF-8.
//!
//! Symlinks are followed only while they stay inside the root (the root
//! itself may be a symlink, as in `current -> release-N`): one that leads
//! outside is recorded as unreadable, naming the file, so that a directory
//! never reads what a Git checkout of the same repository would refuse.
//! Each directory (device and inode) is read once: the real directories
//! first, then those reached through symlinks; a symlink to a directory
//! already read is unreadable, naming both paths (a cycle when it leads
//! back to a directory that contains it). So the work is bounded by what
//! the directory holds, whatever its symlinks.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{self, File, Metadata};
use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::tree::{FILE_LIMIT, FilesBuilder, Tree, is_hidden};

/// Reads every regular file below `root` into a tree.
pub fn read(root: &Path) -> Result<Tree> {
    let meta = fs::metadata(root).with_context(|| format!("{}: cannot read", root.display()))?;
    if !meta.is_dir() {
        bail!("{}: not a directory", root.display());
    }
    let real_root =
        fs::canonicalize(root).with_context(|| format!("{}: cannot read", root.display()))?;
    let mut walk = Walk::new(root, real_root, &meta);
    walk.dir(root, "")?;
    // Directories reached through symlinks, after every real one: a real
    // directory is read under its own name, the link is the duplicate.
    let mut next = 0;
    while let Some((path, rel, meta)) = walk.linked.get(next).cloned() {
        next += 1;
        if walk.first_visit(&rel, &meta) {
            walk.dir(&path, &format!("{rel}/"))?;
        }
    }
    walk.tree.files = walk.files.finish();
    Ok(walk.tree)
}

struct Walk {
    real_root: PathBuf,
    tree: Tree,
    /// Directories read, by device and inode, with their path in the tree
    /// (`""`: the root).
    seen: HashMap<(u64, u64), String>,
    /// Directories reached through symlinks, read after the real ones.
    linked: Vec<(PathBuf, String, Metadata)>,
    /// The files read, packed as read: in path order unless symlinked
    /// directories were read.
    files: FilesBuilder,
}

impl Walk {
    fn new(root: &Path, real_root: PathBuf, meta: &Metadata) -> Walk {
        Walk {
            real_root,
            tree: Tree::new(root.display().to_string()),
            seen: HashMap::from([((meta.dev(), meta.ino()), String::new())]),
            linked: Vec::new(),
            files: FilesBuilder::default(),
        }
    }

    fn dir(&mut self, dir: &Path, prefix: &str) -> Result<()> {
        let entries = match fs::read_dir(dir) {
            // A directory below the root, gone since it was listed.
            Err(e) if e.kind() == ErrorKind::NotFound && !prefix.is_empty() => return Ok(()),
            r => r.with_context(|| format!("{}: cannot read", dir.display()))?,
        };
        // Each name taken once (`file_name` copies it), then sorted as the
        // paths below it sort: a directory's name as if it ended in `/`
        // (`a-b` before `a/`), so the files come in path order.
        let mut entries = entries
            .map(|e| e.map(|e| (e.file_name(), e.file_type().is_ok_and(|t| t.is_dir()), e)))
            .collect::<std::io::Result<Vec<_>>>()
            .with_context(|| format!("{}: cannot read", dir.display()))?;
        entries.sort_unstable_by(|(a, a_dir, _), (b, b_dir, _)| {
            sort_key(a, *a_dir).cmp(sort_key(b, *b_dir))
        });
        for (name, _, entry) in entries {
            let Some(name) = name.to_str() else {
                let rel = format!("{prefix}{}", name.to_string_lossy());
                self.unreadable(rel, "file name is not valid UTF-8");
                continue;
            };
            if is_hidden(name) {
                continue;
            }
            let rel = format!("{prefix}{name}");
            self.entry(entry.path(), rel, entry.file_type().ok())?;
        }
        Ok(())
    }

    /// One entry of a directory: read, walked, deferred or named unreadable.
    /// `kind` is the entry's own type (a symlink is not followed).
    fn entry(&mut self, path: PathBuf, rel: String, kind: Option<fs::FileType>) -> Result<()> {
        match kind {
            // A regular file: opened once, with no lookup of its path before.
            Some(k) if k.is_file() => {
                self.file(&path, rel);
                return Ok(());
            }
            Some(k) if !k.is_dir() && !k.is_symlink() => {
                self.unreadable(rel, format!("{}: not read", special(&k)));
                return Ok(());
            }
            _ => {}
        }
        let is_link = kind.is_some_and(|t| t.is_symlink());
        if is_link
            && let Ok(target) = fs::canonicalize(&path)
            && !target.starts_with(&self.real_root)
        {
            let why = format!(
                "symlink to {}, outside the directory read: refused",
                target.display()
            );
            self.unreadable(rel, why);
            return Ok(());
        }
        // Follow symlinks inside the root (a dangling one fails here).
        let meta = match fs::metadata(&path) {
            Ok(m) => m,
            // Gone since it was listed (a dangling symlink is unreadable).
            Err(e) if e.kind() == ErrorKind::NotFound && !is_link => return Ok(()),
            Err(e) => {
                self.unreadable(rel, e.to_string());
                return Ok(());
            }
        };
        let kind = meta.file_type();
        if kind.is_dir() && is_link {
            self.linked.push((path, rel, meta));
        } else if kind.is_dir() {
            if self.first_visit(&rel, &meta) {
                self.dir(&path, &format!("{rel}/"))?;
            }
        } else if kind.is_file() {
            self.file(&path, rel);
        } else {
            self.unreadable(rel, format!("{}: not read", special(&kind)));
        }
        Ok(())
    }

    /// A regular file, read into the tree or named unreadable.
    /// A regular file gone since it was listed is left out.
    fn file(&mut self, path: &Path, rel: String) {
        match read_file(path) {
            Ok(Some(data)) => self.files.push(&rel, &data),
            Ok(None) => {}
            Err(why) => self.unreadable(rel, why),
        }
    }

    /// Records the directory at `rel` as read; when it was read before,
    /// names it unreadable instead, with the path it was read at.
    fn first_visit(&mut self, rel: &str, meta: &Metadata) -> bool {
        let first = match self.seen.get(&(meta.dev(), meta.ino())) {
            None => {
                self.seen.insert((meta.dev(), meta.ino()), rel.to_string());
                return true;
            }
            Some(first) => first.clone(),
        };
        let why = if first.is_empty() {
            "symlink cycle: leads back to the root of the directory read".to_string()
        } else if rel.starts_with(&format!("{first}/")) {
            format!("symlink cycle: leads back to {first}, which contains it")
        } else {
            format!("symlink to {first}, a directory already read: not read twice")
        };
        self.unreadable(rel.to_string(), why);
        false
    }

    fn unreadable(&mut self, rel: String, why: impl Into<String>) {
        self.tree.unreadable.insert(rel, why.into());
    }
}

/// A regular file's contents, up to the limit; opened without blocking and
/// checked once open (its type and size from the open file), in case it
/// was replaced by a pipe meanwhile.
/// A file's contents; `None` when it is not there (any more).
fn read_file(path: &Path) -> std::result::Result<Option<Vec<u8>>, String> {
    let file = match File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let now = file.metadata().map_err(|e| e.to_string())?;
    if !now.is_file() {
        return Err(format!("{}: not read", special(&now.file_type())));
    }
    if now.len() > FILE_LIMIT {
        return Err(too_large());
    }
    super::file::read_from(file, FILE_LIMIT, now.len())
        .map(Some)
        .map_err(|e| e.to_string())
}

fn too_large() -> String {
    format!("larger than the limit of {}", super::file::size(FILE_LIMIT))
}

/// A directory entry's name as its paths sort: a directory's with a `/`.
fn sort_key(name: &OsStr, is_dir: bool) -> impl Iterator<Item = &u8> {
    let slash: &[u8] = if is_dir { b"/" } else { b"" };
    name.as_encoded_bytes().iter().chain(slash)
}

/// What a file that is neither a regular file nor a directory is.
fn special(kind: &fs::FileType) -> &'static str {
    if kind.is_fifo() {
        "a named pipe (FIFO)"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A walk of `root`, as `read` starts it.
    fn walk_of(root: &Path) -> Walk {
        let meta = fs::metadata(root).unwrap();
        Walk::new(root, fs::canonicalize(root).unwrap(), &meta)
    }

    /// Neither a file nor an unreadable entry.
    fn assert_nothing_read(walk: &Walk) {
        assert!(walk.files.is_empty());
        let unreadable = &walk.tree.unreadable;
        assert!(unreadable.is_empty(), "{unreadable:?}");
    }

    #[test]
    fn a_directory_is_walked_in_path_order_so_each_file_is_packed_as_read() {
        let dir = tempfile::tempdir().unwrap();
        // In a listing `a` comes before `a-b` and `a.c`; below it, `a/x`
        // comes after both.
        let files = [
            "a-b", "a.c", "a/x", "a/y", "b/c-d/e", "b/c.g", "b/c/f", "b0",
        ];
        for f in files {
            let path = dir.path().join(f);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, f).unwrap();
        }
        let mut walk = walk_of(dir.path());
        walk.dir(dir.path(), "").unwrap();
        assert!(walk.files.in_order());
        let read = walk.files.finish();
        let read: Vec<_> = read.iter_plain().collect();
        let want: Vec<_> = files.iter().map(|f| (*f, f.as_bytes())).collect();
        assert_eq!(read, want);
    }

    #[test]
    fn a_file_gone_between_the_listing_and_the_read_is_left_out_not_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("frontend.tmp");
        fs::write(&path, "{}").unwrap();
        // Listed as a regular file, then renamed away before it is opened.
        let kind = fs::symlink_metadata(&path).unwrap().file_type();
        fs::rename(&path, dir.path().join("frontend")).unwrap();
        let mut walk = walk_of(dir.path());
        walk.entry(path, "frontend.tmp".into(), Some(kind)).unwrap();
        assert_nothing_read(&walk);
    }

    #[test]
    fn a_directory_gone_between_the_listing_and_the_read_is_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("services/s1");
        fs::create_dir_all(&sub).unwrap();
        let mut walk = walk_of(dir.path());
        fs::remove_dir_all(dir.path().join("services")).unwrap();
        // Listed with no type (as some file systems list), then gone.
        walk.entry(dir.path().join("services"), "services".into(), None)
            .unwrap();
        walk.dir(&sub, "services/s1/").unwrap();
        assert_nothing_read(&walk);
    }

    #[test]
    fn a_dangling_symlink_is_still_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("frontend");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &link).unwrap();
        let kind = fs::symlink_metadata(&link).unwrap().file_type();
        let mut walk = walk_of(dir.path());
        walk.entry(link, "frontend".into(), Some(kind)).unwrap();
        assert_eq!(
            walk.tree.unreadable.keys().collect::<Vec<_>>(),
            ["frontend"]
        );
    }

    #[test]
    fn a_missing_root_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(&dir.path().join("gone")).is_err());
    }
}
