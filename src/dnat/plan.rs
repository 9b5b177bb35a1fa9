//! The DNAT plan: the rules wanted against what clusterf's table holds.
//! The table is written whole or not at all: any difference (a rule, a
//! weight, a chain changed by hand) replaces it in one transaction; no
//! rule wanted removes it; a table of the name without clusterf's mark is
//! refused, never touched.
//!
//! Invariant: pure; decides, never executes.

use std::fmt;

use super::{Dnat, Rules, Step, TABLE, lines, rules_of, steps};

/// What the kernel holds under clusterf's table name, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Current {
    Absent,
    /// A table of the name without clusterf's mark: why it is not ours.
    NotOurs(String),
    Ours {
        /// The table's handle: the replace deletes this table and no other.
        handle: u64,
        layout: Layout,
        /// The DNAT chain's rules that read as clusterf's, in order.
        steps: Vec<Step>,
    },
}

/// Whether the table's chains and the rules outside the DNAT ones are
/// exactly as clusterf writes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Clusterf,
    /// A chain or rule differs (changed by hand, or by another version).
    Differs,
}

/// What to do to the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Nothing,
    Create,
    /// Delete the table with this handle and write it anew, atomically.
    Replace(u64),
    Remove(u64),
}

/// The action and its lines (`+ table inet clusterf`, `- dnat ...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnatPlan {
    pub action: Action,
    /// The chain's rules after the action (empty for a removal).
    pub steps: Vec<Step>,
    pub lines: Vec<String>,
}

impl DnatPlan {
    pub fn is_empty(&self) -> bool {
        self.action == Action::Nothing
    }
}

impl fmt::Display for DnatPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in &self.lines {
            writeln!(f, "{l}")?;
        }
        Ok(())
    }
}

/// The plan from `current` to `desired`; an error when the table of our
/// name is not ours.
pub fn plan(desired: &Rules, current: &Current) -> Result<DnatPlan, String> {
    let want = steps(desired);
    let table = format!("table inet {TABLE}");
    let action = match current {
        Current::NotOurs(why) => return Err(format!("{table} {why}: not touching it")),
        Current::Absent if want.is_empty() => Action::Nothing,
        Current::Absent => Action::Create,
        Current::Ours { handle, .. } if want.is_empty() => Action::Remove(*handle),
        Current::Ours {
            handle,
            layout,
            steps,
        } => {
            if *layout == Layout::Clusterf && *steps == want {
                Action::Nothing
            } else {
                Action::Replace(*handle)
            }
        }
    };
    let have_lines = match current {
        Current::Ours { steps, .. } => lines(&rules_of(steps)),
        _ => Vec::new(),
    };
    let want_lines = lines(desired);
    let mut out = Vec::new();
    if action == Action::Create {
        out.push(format!("+ {table}"));
    }
    let gone = have_lines.iter().filter(|l| !want_lines.contains(l));
    out.extend(gone.map(|l: &Dnat| format!("- {l}")));
    let new = want_lines.iter().filter(|l| !have_lines.contains(l));
    out.extend(new.map(|l| format!("+ {l}")));
    match action {
        Action::Remove(_) => out.push(format!("- {table}")),
        Action::Replace(_) if out.is_empty() => out.push(format!(
            "~ {table}: its chains or rules differ from clusterf's: rewritten"
        )),
        _ => {}
    }
    Ok(DnatPlan {
        action,
        steps: if matches!(action, Action::Remove(_)) {
            Vec::new()
        } else {
            want
        },
        lines: out,
    })
}
