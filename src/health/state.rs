//! What one dest's check results add up to: a small state machine with
//! rise and fall counts (flap damping), and the table of every target's
//! state. Pure: outcomes and their times are passed in.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::spec::CheckSpec;

/// What is checked: an address and port, and the check. Merged dests and
/// dests shared by services with equal checks are one target, checked once.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    pub addr: SocketAddr,
    pub check: CheckSpec,
}

/// The result of one check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub ok: bool,
    /// What was seen, in a few words: `http 503`, `connect: refused`,
    /// `timeout after 2s`, `ok`.
    pub detail: String,
    /// When the check finished, Unix milliseconds.
    pub at_ms: u64,
}

/// Where a dest stands. Only [`Status::Unhealthy`] and
/// [`Status::Recovering`] count as down: unknown counts as healthy, so a
/// restart never drains anything by itself, and a dest failing fewer than
/// `fall` checks in a row keeps its weight.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Status {
    #[default]
    Unknown,
    Healthy,
    /// Failed `failures` checks in a row, fewer than `fall`.
    Failing {
        failures: u32,
    },
    /// Failed `fall` or more in a row (`failures` of them so far).
    Unhealthy {
        failures: u32,
    },
    /// Unhealthy, then passed `successes` checks in a row, fewer than `rise`.
    Recovering {
        successes: u32,
    },
}

/// One target's state and the evidence for it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DestHealth {
    pub status: Status,
    /// When the failure streak that made the dest unhealthy began (its
    /// first failed check); kept while it recovers.
    pub down_since_ms: Option<u64>,
    /// The last failed check, for the reason shown while down.
    pub last_failure: Option<Outcome>,
    /// The last check of any result.
    pub last: Option<Outcome>,
    /// When the current failure streak began.
    streak_since_ms: Option<u64>,
}

impl DestHealth {
    pub fn is_down(&self) -> bool {
        matches!(
            self.status,
            Status::Unhealthy { .. } | Status::Recovering { .. }
        )
    }

    /// Records one outcome under the target's rise and fall. Returns true
    /// when the dest went down or came back up (what a pass must see).
    pub fn observe(&mut self, outcome: Outcome, rise: u32, fall: u32) -> bool {
        let was_down = self.is_down();
        let (rise, fall) = (rise.max(1), fall.max(1));
        if outcome.ok {
            self.status = match self.status {
                Status::Unhealthy { .. } if rise > 1 => Status::Recovering { successes: 1 },
                Status::Recovering { successes } if successes + 1 < rise => Status::Recovering {
                    successes: successes + 1,
                },
                _ => Status::Healthy,
            };
            self.streak_since_ms = None;
            if !self.is_down() {
                self.down_since_ms = None;
            }
        } else {
            let since = *self.streak_since_ms.get_or_insert(outcome.at_ms);
            self.status = match self.status {
                Status::Unknown | Status::Healthy => failing(1, fall),
                Status::Failing { failures } => failing(failures + 1, fall),
                Status::Unhealthy { failures } => Status::Unhealthy {
                    failures: failures.saturating_add(1),
                },
                // A failure while recovering: down again, the outage goes on.
                Status::Recovering { .. } => Status::Unhealthy { failures: 1 },
            };
            if self.is_down() && self.down_since_ms.is_none() {
                self.down_since_ms = Some(since);
            }
            self.last_failure = Some(outcome.clone());
        }
        self.last = Some(outcome);
        was_down != self.is_down()
    }

    /// Why the dest is down, as the plan shows it (`http 503, 3 of 3
    /// failed since 12:00:01`); `None` while it counts as up.
    pub fn reason(&self, rise: u32, fall: u32) -> Option<String> {
        let since = clock_utc(self.down_since_ms?);
        let detail = self.last_failure.as_ref().map_or("failed", |o| &o.detail);
        match self.status {
            Status::Unhealthy { failures } if failures == fall => {
                Some(format!("{detail}, {fall} of {fall} failed since {since}"))
            }
            Status::Unhealthy { failures } if failures > fall => Some(format!(
                "{detail}, {failures} failed in a row since {since}"
            )),
            Status::Unhealthy { .. } => Some(format!(
                "{detail} again while recovering; down since {since}"
            )),
            Status::Recovering { successes } => Some(format!(
                "recovering, {successes} of {rise} passed; down since {since} ({detail})"
            )),
            _ => None,
        }
    }
}

fn failing(failures: u32, fall: u32) -> Status {
    if failures >= fall {
        Status::Unhealthy { failures }
    } else {
        Status::Failing { failures }
    }
}

/// `HH:MM:SS` UTC of a Unix millisecond time.
fn clock_utc(ms: u64) -> String {
    let s = (ms / 1000) % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Every target's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthTable {
    entries: BTreeMap<Target, DestHealth>,
}

impl HealthTable {
    /// A target never checked is unknown (counts as healthy).
    pub fn get(&self, target: &Target) -> Option<&DestHealth> {
        self.entries.get(target)
    }

    pub fn is_down(&self, target: &Target) -> bool {
        self.get(target).is_some_and(DestHealth::is_down)
    }

    /// Records an outcome; true when the target went down or came up.
    pub fn record(&mut self, target: &Target, outcome: Outcome) -> bool {
        let (rise, fall) = (target.check.rise, target.check.fall);
        match self.entries.get_mut(target) {
            Some(h) => h.observe(outcome, rise, fall),
            None => {
                let mut h = DestHealth::default();
                let changed = h.observe(outcome, rise, fall);
                self.entries.insert(target.clone(), h);
                changed
            }
        }
    }

    /// Sets a target's state, or forgets it (`None`): for a table that
    /// mirrors part of another (the daemon's table of down targets).
    pub fn set(&mut self, target: &Target, health: Option<DestHealth>) {
        match health {
            Some(h) => {
                self.entries.insert(target.clone(), h);
            }
            None => {
                self.entries.remove(target);
            }
        }
    }

    /// Forgets the targets no longer wanted (a dest that left the config
    /// starts unknown if it comes back).
    pub fn retain(&mut self, wanted: impl Fn(&Target) -> bool) {
        self.entries.retain(|t, _| wanted(t));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Target, &DestHealth)> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ok: bool, at_ms: u64) -> Outcome {
        let detail = if ok { "ok" } else { "http 503" };
        Outcome {
            ok,
            detail: detail.to_string(),
            at_ms,
        }
    }

    /// Feeds a pattern (`+` pass, `-` fail) one second apart; returns the
    /// down flag after each.
    fn run(pattern: &str, rise: u32, fall: u32) -> (DestHealth, String) {
        let mut h = DestHealth::default();
        let mut downs = String::new();
        for (i, c) in pattern.chars().enumerate() {
            h.observe(at(c == '+', 43_200_000 + i as u64 * 1000), rise, fall);
            downs.push(if h.is_down() { 'D' } else { 'u' });
        }
        (h, downs)
    }

    #[test]
    fn a_dest_goes_down_after_fall_failures_in_a_row_and_up_after_rise_passes() {
        let (h, downs) = run("+---++", 2, 3);
        assert_eq!(downs, "uuuDDu");
        assert_eq!(h.status, Status::Healthy);
        assert_eq!(h.down_since_ms, None);
    }

    #[test]
    fn flapping_within_the_thresholds_never_changes_the_state() {
        let (_, downs) = run("+--+--+--+-+-+", 2, 3);
        assert_eq!(downs, "u".repeat(14));
        // Down, then flapping while recovering never comes back up.
        let (_, downs) = run("---+-+-+-", 2, 3);
        assert_eq!(downs, "uuDDDDDDD");
    }

    #[test]
    fn unknown_counts_as_up_and_failures_below_fall_do_too() {
        let h = DestHealth::default();
        assert!(!h.is_down());
        assert_eq!(h.reason(2, 3), None);
        let (h, _) = run("--", 2, 3);
        assert_eq!(h.status, Status::Failing { failures: 2 });
        assert!(!h.is_down());
    }

    #[test]
    fn the_reason_says_what_failed_how_often_and_since_when() {
        let (h, _) = run("+---", 2, 3);
        assert_eq!(
            h.reason(2, 3).unwrap(),
            "http 503, 3 of 3 failed since 12:00:01"
        );
        let (h, _) = run("+-----", 2, 3);
        assert_eq!(
            h.reason(2, 3).unwrap(),
            "http 503, 5 failed in a row since 12:00:01"
        );
        let (h, _) = run("+---+", 3, 3);
        assert_eq!(
            h.reason(3, 3).unwrap(),
            "recovering, 1 of 3 passed; down since 12:00:01 (http 503)"
        );
    }

    #[test]
    fn rise_and_fall_of_one_act_on_the_first_result() {
        assert_eq!(run("-+", 1, 1).1, "Du");
    }

    #[test]
    fn observe_reports_only_the_transitions_that_a_pass_must_see() {
        let mut h = DestHealth::default();
        let changes: Vec<bool> = "+--+--+"
            .chars()
            .enumerate()
            .map(|(i, c)| h.observe(at(c == '+', i as u64), 1, 2))
            .collect();
        assert_eq!(
            changes,
            [false, false, true, true, false, true, true],
            "{h:?}"
        );
    }

    #[test]
    fn the_table_forgets_targets_no_longer_wanted() {
        let t = |port| Target {
            addr: SocketAddr::from(([10, 0, 0, 1], port)),
            check: crate::health::CheckSpec::new(crate::health::Probe::Tcp),
        };
        let mut table = HealthTable::default();
        for i in 0..3 {
            table.record(&t(80), at(false, i));
            table.record(&t(81), at(false, i));
        }
        assert!(table.is_down(&t(80)) && table.is_down(&t(81)));
        table.retain(|x| x.addr.port() == 81);
        assert!(!table.is_down(&t(80)));
        assert_eq!(table.len(), 1);
    }
}
