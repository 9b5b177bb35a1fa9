//! The sysctls the realserver reads and writes (`net.ipv4.conf.IF.*`
//! under `/proc/sys`, one file each), and the state file that records
//! what each was before clusterf set it.
//!
//! Must not: decide what to set (`realserver::plan` does); write any
//! file under `/proc/sys` but the ones a plan names.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};

use super::plan::{Record, Sysctl};

/// The sysctl tree: `/proc/sys`, or a directory standing in for it.
#[derive(Clone, Debug)]
pub struct Sysctls {
    pub root: PathBuf,
}

impl Default for Sysctls {
    fn default() -> Self {
        Sysctls {
            root: PathBuf::from("/proc/sys"),
        }
    }
}

impl Sysctls {
    /// The value of `s`; `None` when there is no such file (no such
    /// interface).
    pub fn read(&self, s: &Sysctl) -> Result<Option<i64>> {
        let path = self.root.join(s.path());
        match std::fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| anyhow!("{}: not a number: {:?}", path.display(), text.trim())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub fn write(&self, s: &Sysctl, value: i64) -> Result<()> {
        let path = self.root.join(s.path());
        std::fs::write(&path, format!("{value}\n"))
            .with_context(|| format!("setting {s} to {value} ({})", path.display()))
    }
}

/// The record in `path`; none when there is no file.
pub fn load_record(path: &Path) -> Result<Record> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: not a realserver state file", path.display())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Record::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes `record` to `path` (whole, by rename; its directory created),
/// or removes the file when the record is empty.
pub fn save_record(path: &Path, record: &Record) -> Result<()> {
    if record.sysctls.is_empty() {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                Err(e).with_context(|| format!("removing {}", path.display()))
            }
            _ => Ok(()),
        };
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    let mut text = serde_json::to_string_pretty(record)?;
    text.push('\n');
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}
