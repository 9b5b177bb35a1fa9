//! A config or overlay tree from a local directory (`--config-path`,
//! `--overlay-path`).
//!
//! Dot-files and dot-directories are skipped, as in the original. Files that
//! cannot be read are recorded in the tree (validation reports them); a
//! missing or unreadable root is an error.
//!
//! Symlinks are followed only while they stay inside the root (the root
//! itself may be a symlink, as in `current -> release-N`): one that leads
//! outside is recorded as unreadable, naming the file, so that a directory
//! never reads what a Git checkout of the same repository would refuse.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::tree::{Tree, is_hidden};

/// Reads every regular file below `root` into a tree.
pub fn read(root: &Path) -> Result<Tree> {
    let meta = fs::metadata(root).with_context(|| format!("{}: cannot read", root.display()))?;
    if !meta.is_dir() {
        bail!("{}: not a directory", root.display());
    }
    let mut tree = Tree::new(root.display().to_string());
    let real_root =
        fs::canonicalize(root).with_context(|| format!("{}: cannot read", root.display()))?;
    walk(root, &real_root, "", &mut tree)?;
    Ok(tree)
}

fn walk(dir: &Path, real_root: &Path, prefix: &str, tree: &mut Tree) -> Result<()> {
    let entries = fs::read_dir(dir).with_context(|| format!("{}: cannot read", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("{}: cannot read", dir.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            let rel = format!("{prefix}{}", name.to_string_lossy());
            tree.unreadable
                .insert(rel, "file name is not valid UTF-8".into());
            continue;
        };
        if is_hidden(name) {
            continue;
        }
        let rel = format!("{prefix}{name}");
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_symlink()) {
            match fs::canonicalize(&path) {
                Ok(target) if !target.starts_with(real_root) => {
                    tree.unreadable.insert(
                        rel,
                        format!(
                            "symlink to {}, outside the directory read: refused",
                            target.display()
                        ),
                    );
                    continue;
                }
                // Inside: read below. Dangling: reported below.
                _ => {}
            }
        }
        // Follow symlinks inside the root, as reading the file would.
        match fs::metadata(&path) {
            Ok(m) if m.is_dir() => walk(&path, real_root, &format!("{rel}/"), tree)?,
            Ok(m) if m.is_file() => match fs::read(&path) {
                Ok(data) => tree.insert(rel, data),
                Err(e) => {
                    tree.unreadable.insert(rel, e.to_string());
                }
            },
            Ok(_) => {}
            Err(e) => {
                tree.unreadable.insert(rel, e.to_string());
            }
        }
    }
    Ok(())
}
