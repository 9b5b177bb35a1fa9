//! When the VIPs are withdrawn from the VIP interface (`--withdraw-after`,
//! `--withdraw-on-exit`): a pure function of the daemon's state and the
//! time, beside the schedule that runs the passes.
//!
//! The rule: the VIPs go when the daemon has been fail static (every pass
//! failing since the last good one) for longer than `--withdraw-after`
//! (off by default), and on exit only with `--withdraw-on-exit`. Nothing
//! else withdraws: a restart with nothing changed finds the VIPs in place
//! and keeps them. A successful pass puts them back (its VIP plan adds
//! what is missing).
//!
//! Invariant: pure; the daemon keeps the state and carries the verdict out.

use std::time::Duration;

/// The flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Withdraw after this long fail static (`None`: never for failures).
    pub after: Option<Duration>,
    /// Withdraw when the daemon stops.
    pub on_exit: bool,
}

/// What the daemon knows that the rule needs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct State {
    /// Since when (the schedule's clock) every pass has failed; `None`
    /// while the last pass succeeded (or none ran yet).
    pub failing_since: Option<Duration>,
    /// The VIPs were withdrawn and no pass has succeeded since.
    pub withdrawn: bool,
    /// The daemon is stopping.
    pub exiting: bool,
}

/// What to do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Keep the VIPs; look again at this time, if any.
    Keep { recheck_at: Option<Duration> },
    /// Remove every VIP.
    Withdraw,
}

/// The rule (see the module doc) at `now`.
pub fn decide(policy: &Policy, state: &State, now: Duration) -> Verdict {
    let keep = Verdict::Keep { recheck_at: None };
    if state.exiting {
        return if policy.on_exit && !state.withdrawn {
            Verdict::Withdraw
        } else {
            keep
        };
    }
    let (Some(after), Some(since), false) = (policy.after, state.failing_since, state.withdrawn)
    else {
        return keep;
    };
    let at = since.saturating_add(after);
    if now >= at {
        Verdict::Withdraw
    } else {
        Verdict::Keep {
            recheck_at: Some(at),
        }
    }
}

impl State {
    /// After a pass at `now`.
    pub fn pass_done(&mut self, ok: bool, now: Duration) {
        if ok {
            self.failing_since = None;
            self.withdrawn = false;
        } else if self.failing_since.is_none() {
            self.failing_since = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn policy(after: Option<u64>, on_exit: bool) -> Policy {
        Policy {
            after: after.map(S),
            on_exit,
        }
    }

    #[test]
    fn failing_longer_than_withdraw_after_withdraws_and_not_before() {
        let p = policy(Some(60), false);
        let mut s = State::default();
        s.pass_done(false, S(100));
        s.pass_done(false, S(130));
        assert_eq!(
            decide(&p, &s, S(130)),
            Verdict::Keep {
                recheck_at: Some(S(160))
            }
        );
        assert_eq!(decide(&p, &s, S(160)), Verdict::Withdraw);
        s.withdrawn = true;
        assert_eq!(decide(&p, &s, S(500)), Verdict::Keep { recheck_at: None });
    }

    #[test]
    fn a_successful_pass_resets_the_clock_and_the_withdrawal() {
        let p = policy(Some(60), false);
        let mut s = State {
            failing_since: Some(S(0)),
            withdrawn: true,
            exiting: false,
        };
        s.pass_done(true, S(200));
        assert_eq!(s, State::default());
        s.pass_done(false, S(300));
        assert_eq!(
            decide(&p, &s, S(330)),
            Verdict::Keep {
                recheck_at: Some(S(360))
            }
        );
    }

    #[test]
    fn without_withdraw_after_failures_never_withdraw() {
        let mut s = State::default();
        s.pass_done(false, S(0));
        let keep = Verdict::Keep { recheck_at: None };
        assert_eq!(decide(&policy(None, true), &s, S(1_000_000)), keep);
    }

    #[test]
    fn exit_withdraws_only_with_withdraw_on_exit() {
        let s = State {
            exiting: true,
            ..State::default()
        };
        let keep = Verdict::Keep { recheck_at: None };
        assert_eq!(decide(&policy(Some(1), false), &s, S(0)), keep);
        assert_eq!(decide(&policy(None, true), &s, S(0)), Verdict::Withdraw);
    }

    #[test]
    fn a_restart_with_nothing_failing_keeps_the_vips() {
        let s = State::default();
        let keep = Verdict::Keep { recheck_at: None };
        assert_eq!(decide(&policy(Some(1), true), &s, S(10_000)), keep);
    }
}
