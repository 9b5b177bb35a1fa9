//! The fleet as a reader sees it: each frontend alive or dead, in sync
//! with the target commit or not, and the rollout gate's decision.

use std::collections::BTreeSet;
use std::fmt::Write;

use serde::Serialize;

use super::record::FrontendStatus;

/// Version of `clusterf status --output json` (docs/status-format.md).
pub const VIEW_VERSION: u32 = 1;

/// Where a frontend stands against the target commit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sync {
    /// Applied the target without error.
    InSync,
    /// Has not (yet) applied it.
    Behind,
    /// No target to compare with, or no readable record.
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FrontendRow {
    pub frontend: String,
    /// Its lease-bound key exists.
    pub alive: bool,
    /// Milliseconds since its record was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_ms: Option<u64>,
    pub sync: Sync,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<FrontendStatus>,
    /// Why the record could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Fleet {
    pub version: u32,
    /// The commit compared with: `--expect-commit`, or the newest commit
    /// any frontend rendered (the one first seen last).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub frontends: Vec<FrontendRow>,
}

/// Builds the view from the records (frontend id, value) and the ids whose
/// alive key exists, at `now_ms`.
pub fn view(
    records: &[(String, Vec<u8>)],
    alive: &BTreeSet<String>,
    expect: Option<&str>,
    now_ms: u64,
) -> Fleet {
    let parsed: Vec<(&String, Result<FrontendStatus, String>)> = records
        .iter()
        .map(|(id, bytes)| (id, FrontendStatus::parse(bytes)))
        .collect();
    let target = expect
        .map(str::to_string)
        .or_else(|| newest_commit(&parsed));
    let mut rows: Vec<FrontendRow> = parsed
        .into_iter()
        .map(|(id, record)| row(id, record, alive, target.as_deref(), now_ms))
        .collect();
    for id in alive {
        if !records.iter().any(|(r, _)| r == id) {
            rows.push(FrontendRow {
                frontend: id.clone(),
                alive: true,
                age_ms: None,
                sync: Sync::Unknown,
                status: None,
                unreadable: Some("alive, no record yet".to_string()),
            });
        }
    }
    rows.sort_by(|a, b| a.frontend.cmp(&b.frontend));
    Fleet {
        version: VIEW_VERSION,
        target,
        frontends: rows,
    }
}

fn newest_commit(parsed: &[(&String, Result<FrontendStatus, String>)]) -> Option<String> {
    parsed
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .filter_map(|s| Some((s.commit_seen_ms?, s.commit.clone()?)))
        .max()
        .map(|(_, commit)| commit)
}

fn row(
    id: &str,
    record: Result<FrontendStatus, String>,
    alive: &BTreeSet<String>,
    target: Option<&str>,
    now_ms: u64,
) -> FrontendRow {
    let (status, unreadable) = match record {
        Ok(s) => (Some(s), None),
        Err(e) => (None, Some(e)),
    };
    let sync = match (&status, target) {
        (Some(s), Some(t)) => {
            let applied = s.applied.as_deref().is_some_and(|a| same_commit(a, t));
            if applied && s.error.is_none() && s.commit.as_deref().is_none_or(|c| same_commit(c, t))
            {
                Sync::InSync
            } else {
                Sync::Behind
            }
        }
        _ => Sync::Unknown,
    };
    FrontendRow {
        frontend: id.to_string(),
        alive: alive.contains(id),
        age_ms: status.as_ref().map(|s| now_ms.saturating_sub(s.written_ms)),
        sync,
        status,
        unreadable,
    }
}

/// Two commit names for the same commit: equal, or one an abbreviation
/// (at least 7 hex digits) of the other.
pub fn same_commit(a: &str, b: &str) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    short == long || (short.len() >= 7 && long.starts_with(short))
}

/// The rollout gate's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gate {
    /// Every alive frontend applied the target without error.
    Done,
    /// Not yet: one line per frontend still behind (or why the gate cannot
    /// decide).
    Waiting(Vec<String>),
    /// A frontend reports an error for the target: it will not converge by
    /// waiting.
    Failed(Vec<String>),
}

/// Decides the rollout gate over the alive frontends.
pub fn gate(fleet: &Fleet, min_frontends: usize) -> Gate {
    let Some(target) = fleet.target.as_deref() else {
        return Gate::Waiting(vec!["no frontend has rendered a commit yet".into()]);
    };
    let alive: Vec<&FrontendRow> = fleet.frontends.iter().filter(|r| r.alive).collect();
    let failed: Vec<String> = alive
        .iter()
        .filter_map(|r| {
            let s = r.status.as_ref()?;
            let e = s.error.as_ref()?;
            same_commit(s.commit.as_deref()?, target)
                .then(|| format!("{}: {}: {}", r.frontend, e.kind.as_str(), e.message))
        })
        .collect();
    if !failed.is_empty() {
        return Gate::Failed(failed);
    }
    let mut waiting: Vec<String> = alive
        .iter()
        .filter(|r| r.sync != Sync::InSync)
        .map(|r| format!("{}: {}", r.frontend, behind_reason(r)))
        .collect();
    if alive.len() < min_frontends {
        waiting.insert(
            0,
            format!(
                "{} of at least {min_frontends} frontends alive",
                alive.len()
            ),
        );
    }
    if waiting.is_empty() {
        Gate::Done
    } else {
        Gate::Waiting(waiting)
    }
}

fn behind_reason(r: &FrontendRow) -> String {
    match (&r.status, &r.unreadable) {
        (_, Some(why)) => why.clone(),
        (Some(s), None) => match (&s.error, s.applied.as_deref()) {
            (Some(e), _) => format!("{}: {}", e.kind.as_str(), e.message),
            (None, Some(a)) => format!("applied {}", short(a)),
            (None, None) => "nothing applied yet".to_string(),
        },
        (None, None) => "no record".to_string(),
    }
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// `3s`, `4m`, `2h`, `5d`.
pub fn age(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

impl Fleet {
    /// One aligned line per frontend, under a header; `color`: dead,
    /// behind and problems in red or yellow, alive and in sync in green
    /// (ANSI codes around the padded cells, so columns stay aligned).
    pub fn text(&self, now_ms: u64, color: bool) -> String {
        let mut lines = vec![
            [
                "FRONTEND", "STATE", "COMMIT", "SYNC", "APPLIED", "SERVICES", "OWNS", "PROBLEM",
            ]
            .map(String::from),
        ];
        for r in &self.frontends {
            lines.push(text_row(r, now_ms));
        }
        let widths: Vec<usize> = (0..8)
            .map(|i| {
                lines
                    .iter()
                    .map(|l| l[i].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        if let Some(t) = &self.target {
            let _ = writeln!(out, "target commit {}", short(t));
        }
        for (n, l) in lines.iter().enumerate() {
            let mut line = String::new();
            for (i, cell) in l.iter().enumerate() {
                let padded = format!("{cell:<w$}", w = widths[i]);
                match paint(i, cell).filter(|_| color && n > 0) {
                    Some(code) => {
                        let _ = write!(line, "\x1b[{code}m{padded}\x1b[0m  ");
                    }
                    None => {
                        let _ = write!(line, "{padded}  ");
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// The ANSI colour of a cell of column `col`, if any.
fn paint(col: usize, cell: &str) -> Option<&'static str> {
    match (col, cell) {
        (1, c) if c.starts_with("DEAD") => Some("31"),
        (1, c) if c.starts_with("alive") => Some("32"),
        (3, "in sync") => Some("32"),
        (3, "BEHIND") => Some("33"),
        (7, c) if !c.is_empty() => Some("31"),
        _ => None,
    }
}

fn text_row(r: &FrontendRow, now_ms: u64) -> [String; 8] {
    let seen = r
        .age_ms
        .map_or("-".to_string(), |a| format!("{} ago", age(a)));
    let state = if r.alive {
        format!("alive {seen}")
    } else {
        format!("DEAD {seen}")
    };
    let Some(s) = &r.status else {
        let problem = r.unreadable.clone().unwrap_or_default();
        return [
            r.frontend.clone(),
            state,
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            problem,
        ];
    };
    let sync = match r.sync {
        Sync::InSync => "in sync",
        Sync::Behind => "BEHIND",
        Sync::Unknown => "-",
    };
    let applied = s.last_apply_ms.map_or("never".to_string(), |t| {
        format!("{} ago", age(now_ms.saturating_sub(t)))
    });
    let problem = s.error.as_ref().map_or(String::new(), |e| {
        crate::text::cut_message(&format!("{}: {}", e.kind.as_str(), e.message))
    });
    [
        r.frontend.clone(),
        state,
        short(s.rendered()).to_string(),
        sync.to_string(),
        applied,
        format!("{}/{}", s.services, s.dests),
        owns(&s.own),
        problem,
    ]
}

/// What a frontend owns, for the text: `all` (the whole table) or the
/// ranges, comma-separated.
fn owns(own: &[String]) -> String {
    if own.is_empty() {
        return "all".to_string();
    }
    own.join(",").replace("fwmark ", "fwmark:")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::record::{FORMAT_VERSION, FrontendError, ProblemKind};

    const NEW: &str = "4f2a9c1e0b7d1111";
    const OLD: &str = "9d0c3b2a11112222";

    fn status(id: &str, commit: &str, applied: Option<&str>, seen: u64) -> FrontendStatus {
        FrontendStatus {
            format: FORMAT_VERSION,
            frontend: id.into(),
            version: "0.1.0".into(),
            config_source: "git".into(),
            commit: Some(commit.into()),
            commit_seen_ms: Some(seen),
            config_hash: "sha256:00".into(),
            applied: applied.map(str::to_string),
            last_apply_ms: applied.map(|_| 50_000),
            last_pass_ms: Some(55_000),
            services: 2,
            dests: 8,
            written_ms: 58_000,
            ..Default::default()
        }
    }

    fn records(list: &[FrontendStatus]) -> Vec<(String, Vec<u8>)> {
        list.iter()
            .map(|s| (s.frontend.clone(), s.to_bytes()))
            .collect()
    }

    fn alive(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_gate_waits_for_the_frontend_behind_and_opens_when_it_applies() {
        let mut fleet = vec![
            status("lb1", NEW, Some(NEW), 10_000),
            status("lb2", NEW, Some(NEW), 11_000),
            status("lb3", OLD, Some(OLD), 1_000),
        ];
        let all = alive(&["lb1", "lb2", "lb3"]);
        let v = view(&records(&fleet), &all, None, 60_000);
        assert_eq!(v.target.as_deref(), Some(NEW), "the commit first seen last");
        assert_eq!(
            gate(&v, 0),
            Gate::Waiting(vec!["lb3: applied 9d0c3b2a1111".into()])
        );
        fleet[2] = status("lb3", NEW, Some(NEW), 12_000);
        assert_eq!(
            gate(&view(&records(&fleet), &all, Some("4f2a9c1"), 60_000), 0),
            Gate::Done
        );
    }

    #[test]
    fn a_frontend_failing_on_the_target_fails_the_gate_by_name() {
        let mut broken = status("lb2", NEW, Some(OLD), 11_000);
        broken.error = Some(FrontendError {
            kind: ProblemKind::ValidationFailed,
            message: "services/web.yaml:3:5: unknown key".into(),
            diagnostics: vec![],
        });
        let fleet = [status("lb1", NEW, Some(NEW), 10_000), broken];
        let v = view(&records(&fleet), &alive(&["lb1", "lb2"]), Some(NEW), 60_000);
        assert_eq!(
            gate(&v, 0),
            Gate::Failed(vec![
                "lb2: validation failed: services/web.yaml:3:5: unknown key".into()
            ])
        );
    }

    #[test]
    fn dead_frontends_are_shown_but_do_not_hold_the_gate_unless_too_few_are_alive() {
        let fleet = [
            status("lb1", NEW, Some(NEW), 10_000),
            status("lb2", OLD, Some(OLD), 1_000),
        ];
        let v = view(&records(&fleet), &alive(&["lb1"]), Some(NEW), 60_000);
        assert_eq!(gate(&v, 1), Gate::Done);
        assert_eq!(
            gate(&v, 2),
            Gate::Waiting(vec!["1 of at least 2 frontends alive".into()])
        );
        assert!(
            v.text(60_000, false).contains("DEAD 2s ago"),
            "{}",
            v.text(60_000, false)
        );
    }

    #[test]
    fn unreadable_records_and_alive_frontends_without_one_are_named() {
        let mut recs = records(&[status("lb1", NEW, Some(NEW), 10_000)]);
        recs.push(("lb2".into(), br#"{"format": 9}"#.to_vec()));
        let v = view(&recs, &alive(&["lb1", "lb2", "lb3"]), None, 60_000);
        let Gate::Waiting(lines) = gate(&v, 0) else {
            panic!()
        };
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("lb2: record format 9"), "{lines:?}");
        assert_eq!(lines[1], "lb3: alive, no record yet");
    }

    #[test]
    fn abbreviations_match_only_from_seven_digits() {
        assert!(same_commit("4f2a9c1", NEW) && same_commit(NEW, NEW));
        assert!(!same_commit("4f2a9c", NEW) && !same_commit(OLD, NEW));
    }

    #[test]
    fn the_text_is_aligned_one_line_per_frontend() {
        let mut lb1 = status("lb1", NEW, Some(NEW), 10_000);
        lb1.own = vec!["10.1.0.0/16".into()];
        let fleet = [lb1, status("frontend-22", OLD, None, 1_000)];
        let v = view(
            &records(&fleet),
            &alive(&["lb1", "frontend-22"]),
            None,
            60_000,
        );
        assert_eq!(
            v.text(60_000, false),
            "target commit 4f2a9c1e0b7d\n\
             FRONTEND     STATE         COMMIT        SYNC     APPLIED  SERVICES  OWNS         PROBLEM\n\
             frontend-22  alive 2s ago  9d0c3b2a1111  BEHIND   never    2/8       all\n\
             lb1          alive 2s ago  4f2a9c1e0b7d  in sync  10s ago  2/8       10.1.0.0/16\n"
        );
        // In colour: the same columns, codes around the padded cells only.
        let colored = v.text(60_000, true);
        assert!(colored.contains("\x1b[33mBEHIND \x1b[0m"), "{colored:?}");
        assert!(
            colored.contains("\x1b[32malive 2s ago\x1b[0m"),
            "{colored:?}"
        );
        let plain: String = colored
            .replace("\x1b[0m", "")
            .replace("\x1b[31m", "")
            .replace("\x1b[32m", "")
            .replace("\x1b[33m", "");
        assert_eq!(plain, v.text(60_000, false));
    }
}
