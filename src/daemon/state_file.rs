//! The drain state file (`--state-file`): drains in progress, kept across
//! restarts. Written atomically (a temporary file next to it, synced, then
//! renamed over it); a missing file is no drains.
//!
//! Must not: decide anything about drains (that is `reconcile::drain`); the
//! format is [`Drains::to_json`].

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};

use crate::reconcile::drain::Drains;

/// The directory of the state file and the temporary file written next to
/// it before the rename.
fn state_temp(path: &Path) -> Result<(&Path, PathBuf)> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("--state-file {}: not a file name", path.display()))?;
    Ok((dir, dir.join(format!(".{}.tmp", name.to_string_lossy()))))
}

/// Writes the drain records atomically: a temporary file in the same
/// directory, synced, then renamed over the old one.
pub fn save_drains(path: &Path, drains: &Drains) -> Result<()> {
    use std::io::Write;
    let (_, tmp) = state_temp(path)?;
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(drains.to_json().as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().with_context(|| format!("writing the drain state {}", path.display()))
}

/// Checks at start that the drain state can be written where `path` says:
/// the directory exists and a file can be created in it (the temporary file
/// [`save_drains`] writes, removed again).
pub fn check_state_dir(path: &Path) -> Result<()> {
    let (dir, tmp) = state_temp(path)?;
    std::fs::File::create(&tmp)
        .and_then(|_| std::fs::remove_file(&tmp))
        .map_err(|e| {
            anyhow!(
                "--state-file {}: cannot write in {}: {e}",
                path.display(),
                dir.display()
            )
        })
}

/// The largest drain state file read: far more than the records of every
/// dest of 100k services x 10 (each record is about 200 bytes).
pub const STATE_LIMIT: u64 = 256 << 20;

/// Reads the drain records; a missing file is no drains.
pub fn load_drains(path: &Path) -> Result<Drains> {
    match crate::source::file::read_text(path, STATE_LIMIT) {
        Ok(text) => Drains::from_json(&text).map_err(|e| anyhow!("{}:{e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Drains::default()),
        Err(e) => Err(e).with_context(|| format!("reading the drain state {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::format_error;
    use crate::reconcile::drain;

    #[test]
    fn a_drain_state_file_over_its_limit_is_an_error_not_a_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("drains.json");
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(STATE_LIMIT + 1).unwrap();
        let e = format_error(&load_drains(&path).unwrap_err());
        assert!(e.contains("256 MiB"), "{e}");
    }

    #[test]
    fn drain_state_file_is_written_atomically_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("drains.json");
        assert!(load_drains(&path).unwrap().is_empty());
        let mut drains = Drains::default();
        drains.insert(drain::DrainRecord {
            service: "tcp://10.0.0.1:80".parse().unwrap(),
            dest: "10.1.0.1:80".parse().unwrap(),
            since_ms: 5,
            attrs: crate::model::DestAttrs::new(crate::model::Method::Masq, 10),
            service_attrs: crate::model::ServiceAttrs::with_scheduler("wlc"),
        });
        save_drains(&path, &drains).unwrap();
        assert_eq!(load_drains(&path).unwrap(), drains);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("drains.json")]);
        std::fs::write(&path, "{not json").unwrap();
        let e = format_error(&load_drains(&path).unwrap_err());
        assert!(e.starts_with(&format!("{}:1:", path.display())), "{e}");
    }
}
