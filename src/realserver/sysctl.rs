//! The sysctls the realserver reads and writes (`net.ipv4.conf.IF.*`
//! under `/proc/sys`, one file each), and the state file that records
//! what each was before clusterf set it.
//!
//! Must not: decide what to set (`realserver::plan` does); write any
//! file under `/proc/sys` but the ones a plan names.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

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

/// The record in `path`; none when there is no file. A record of a
/// sysctl the realserver does not set is an error (nothing is written).
pub fn load_record(path: &Path) -> Result<Record> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Record::default()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let record: Record = serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: not a realserver state file", path.display()))?;
    if let Some(r) = record.sysctls.iter().find(|r| !r.sysctl.is_ours()) {
        bail!(
            "{}: records {}, not a sysctl clusterf realserver sets: not touching it",
            path.display(),
            r.sysctl
        );
    }
    Ok(record)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("clusterf-sysctl-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_sysctl_reads_and_writes_its_file_and_a_missing_one_is_none() {
        let root = tmp("rw");
        std::fs::create_dir_all(root.join("net/ipv4/conf/eth0")).unwrap();
        std::fs::write(root.join("net/ipv4/conf/eth0/arp_ignore"), "0\n").unwrap();
        let s = Sysctls { root: root.clone() };
        let k = Sysctl::new("eth0", "arp_ignore");
        assert_eq!(s.read(&k).unwrap(), Some(0));
        s.write(&k, 1).unwrap();
        assert_eq!(s.read(&k).unwrap(), Some(1));
        assert_eq!(s.read(&Sysctl::new("eth9", "arp_ignore")).unwrap(), None);
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn the_record_round_trips_and_an_empty_one_removes_the_file() {
        let dir = tmp("record");
        let path = dir.join("sub/realserver.json");
        assert_eq!(load_record(&path).unwrap(), Record::default());
        let mut r = Record::default();
        r.set(&Sysctl::new("eth0", "arp_announce"), Some(0), 2);
        save_record(&path, &r).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"interface\": \"eth0\""), "{text}");
        assert_eq!(load_record(&path).unwrap(), r);
        save_record(&path, &Record::default()).unwrap();
        assert!(!path.exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_record_of_a_sysctl_that_is_not_ours_is_refused() {
        let dir = tmp("foreign");
        let path = dir.join("realserver.json");
        std::fs::write(
            &path,
            r#"{"sysctls": [{"interface": "../../kernel", "name": "arp_ignore", "was": 0, "set": 1}]}"#,
        )
        .unwrap();
        let e = load_record(&path).unwrap_err().to_string();
        assert!(e.contains("not a sysctl clusterf realserver sets"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
