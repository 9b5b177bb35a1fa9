//! The reconcile loop's scheduling as a sans-IO state machine: it decides
//! when a pass runs and when Git is polled, from trigger events and the
//! current time handed in by the caller.
//!
//! Triggers only mark the state dirty; they never carry the change. A pass
//! recomputes everything from the full desired and live state
//! (level-triggered), so coalescing any number of triggers into one pass is
//! always correct. An etcd event, a Git commit or SIGHUP that finds the loop
//! idle starts a pass at once (the leading edge of a burst). What arrives
//! while a pass runs or waits is coalesced into one pass, which starts as
//! soon as the pass ends while the loop has run fewer than
//! [`BURST_PASSES`] passes back to back, and one debounce window after the
//! last pass started from then on, until the loop is idle again. So a burst
//! costs a few passes, a stream faster than the passes one pass a window,
//! never starving the loop, and a change that lands while a pass is
//! finishing waits for that pass, not for a window (changes that each find
//! the loop idle are lone changes, a pass each). Config directory events wait one window from the
//! first (files are written in several steps: the window lets a save
//! finish). A failed pass is retried with exponential
//! backoff, capped, and reset by the next success; a periodic resync pass
//! re-reads every source and the kernel to correct drift. It fires every
//! resync interval whatever other passes ran meanwhile (a pass waits for
//! nothing in particular, so only a fixed period bounds how long a change
//! no trigger reported can stay unapplied).
//!
//! Invariant: no clock, no I/O, no tokio. Time is a [`Duration`] since an
//! arbitrary epoch chosen by the caller (the daemon uses its start); the
//! machine only compares and adds times it was given.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

/// Passes the loop runs back to back (each coalescing what arrived during
/// the one before) before the debounce window spaces them.
pub const BURST_PASSES: u32 = 4;

/// Timing knobs of the loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Window that coalesces a burst of triggers into one pass (after the
    /// burst's leading pass; see the module doc).
    pub debounce: Duration,
    /// Period of the anti-entropy pass that re-reads every source and the
    /// kernel; other passes do not postpone it. Must not be zero.
    pub resync: Duration,
    /// Git poll interval; `None` when the config is not a Git repository.
    pub poll: Option<Duration>,
    /// First retry delay after a failed pass.
    pub backoff_initial: Duration,
    /// Cap of the retry delay.
    pub backoff_max: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            debounce: Duration::from_millis(20),
            resync: Duration::from_secs(30),
            poll: None,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
        }
    }
}

/// Why a pass runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Trigger {
    /// The first pass after start.
    Startup,
    /// The config directory changed.
    Config,
    /// The watched Git ref moved.
    Git,
    /// etcd reported a change under the prefix.
    Etcd,
    /// SIGHUP.
    Signal,
    /// The periodic anti-entropy pass.
    Resync,
    /// A retry after a failed pass.
    Retry,
    /// A drain in progress needs another look (connections, timeout).
    Drain,
    /// A checked dest went down or came up.
    Health,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Startup => "startup",
            Trigger::Config => "config",
            Trigger::Git => "git",
            Trigger::Etcd => "etcd",
            Trigger::Signal => "signal",
            Trigger::Resync => "resync",
            Trigger::Retry => "retry",
            Trigger::Drain => "drain",
            Trigger::Health => "health",
        }
    }

    /// Whether the trigger reports a change of the inputs (and so starts the
    /// change-to-apply latency clock), as opposed to a timer.
    pub fn is_change(self) -> bool {
        matches!(
            self,
            Trigger::Config | Trigger::Git | Trigger::Etcd | Trigger::Signal | Trigger::Health
        )
    }

    /// Whether the change is whole when reported (an etcd event, a Git
    /// commit, SIGHUP), so an idle loop passes at once; a config directory
    /// event may be one step of a save still under way.
    pub fn is_whole(self) -> bool {
        matches!(
            self,
            Trigger::Git | Trigger::Etcd | Trigger::Signal | Trigger::Health
        )
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a pass or a poll failed: the label of the error counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// Reading or validating the config (directory or Git tree).
    Config,
    /// Fetching or resolving the Git ref.
    Git,
    /// Reading the etcd overlay.
    Etcd,
    /// Reading the live table from the kernel.
    Kernel,
    /// The planner refused (a guard tripped).
    Plan,
    /// Applying ops to the kernel.
    Apply,
    /// Writing the drain state file.
    State,
    /// The pass itself: it panicked (a bug; the message is logged). The
    /// next pass reads the kernel.
    Pass,
}

impl Source {
    pub const ALL: [Source; 8] = [
        Source::Config,
        Source::Git,
        Source::Etcd,
        Source::Kernel,
        Source::Plan,
        Source::Apply,
        Source::State,
        Source::Pass,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Config => "config",
            Source::Git => "git",
            Source::Etcd => "etcd",
            Source::Kernel => "kernel",
            Source::Plan => "plan",
            Source::Apply => "apply",
            Source::State => "state",
            Source::Pass => "pass",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something that happened, reported to the loop by the edge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The config directory changed (any file event below it).
    ConfigChanged,
    /// etcd reported a change (or a re-list after a broken watch).
    EtcdChanged,
    /// A checked dest went down or came up.
    HealthChanged,
    /// SIGHUP: re-read everything.
    Sighup,
    /// `POST /hooks/git`: poll Git now.
    HookGit,
    /// A Git poll finished; `new_commit` when the watched ref moved.
    GitPolled { new_commit: bool },
    /// A Git poll failed (remote unreachable, ref missing, ...).
    GitPollFailed,
    /// The pass finished and the kernel equals the desired state.
    /// `recheck_at`: when to look again although nothing changed (a drain in
    /// progress), if ever.
    PassOk { recheck_at: Option<Duration> },
    /// The pass failed at `source`; the kernel was left as it was (or, for
    /// `Source::Apply`, as far as the apply got).
    PassFailed { source: Source },
    /// A wake-up the loop asked for; carries nothing.
    Tick,
}

/// What the edge must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Run one pass now and report `PassOk` or `PassFailed` when done.
    /// `changed_at`: the earliest input change this pass is the first to
    /// apply (for the change-to-apply latency), if any.
    StartPass {
        triggers: BTreeSet<Trigger>,
        changed_at: Option<Duration>,
    },
    /// Fetch the Git remote and resolve the ref; report `GitPolled` or
    /// `GitPollFailed`.
    PollGit,
    /// Call [`Schedule::step`] again at this time (with `Event::Tick` or
    /// whatever arrived before).
    WakeAt(Duration),
}

#[derive(Clone, Debug)]
struct Dirty {
    triggers: BTreeSet<Trigger>,
    changed_at: Option<Duration>,
    /// When the pass is due; `None` while the first Git poll is awaited.
    due: Option<Duration>,
    /// A change was marked while a pass ran, or a pass failed: this pass
    /// follows another without the loop going idle.
    follow_up: bool,
}

/// The last pass started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Started {
    at: Duration,
    /// Passes before it back to back (0: it started on an idle loop).
    behind: u32,
}

#[derive(Clone, Debug)]
struct Running {
    changed_at: Option<Duration>,
}

/// Counters the loop keeps about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub passes_ok: u64,
    pub passes_failed: u64,
    /// Failed passes and polls by where they failed.
    pub errors: BTreeMap<Source, u64>,
    /// Failures since the last success.
    pub consecutive_failures: u32,
}

/// The loop's state. Create with [`Schedule::new`], then feed it with
/// [`Schedule::step`].
#[derive(Clone, Debug)]
pub struct Schedule {
    settings: Settings,
    dirty: Option<Dirty>,
    running: Option<Running>,
    backoff: Option<Duration>,
    next_resync: Duration,
    next_poll: Option<Duration>,
    poll_running: bool,
    poll_requested: bool,
    first_poll_pending: bool,
    recheck_at: Option<Duration>,
    /// The last pass started: changes coalesced behind a follow-up wait one
    /// debounce window from its start.
    last_start: Option<Started>,
    stats: Stats,
}

impl Schedule {
    /// A loop started at `now`: the startup pass is due at once (after the
    /// first Git poll when there is a Git source).
    pub fn new(settings: Settings, now: Duration) -> Schedule {
        let git = settings.poll.is_some();
        Schedule {
            dirty: Some(Dirty {
                triggers: BTreeSet::from([Trigger::Startup]),
                changed_at: None,
                due: if git { None } else { Some(now) },
                follow_up: false,
            }),
            running: None,
            backoff: None,
            next_resync: now + settings.resync,
            next_poll: settings.poll.map(|_| now),
            poll_running: false,
            poll_requested: false,
            first_poll_pending: git,
            recheck_at: None,
            last_start: None,
            stats: Stats::default(),
            settings,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Whether a pass is in flight.
    pub fn pass_running(&self) -> bool {
        self.running.is_some()
    }

    /// The current retry delay, while failing.
    pub fn backoff(&self) -> Option<Duration> {
        self.backoff
    }

    /// Feeds events that happened up to `now`; returns what to do, ending
    /// with at most one `WakeAt` (the next time the loop needs to run).
    pub fn step(&mut self, now: Duration, events: impl IntoIterator<Item = Event>) -> Vec<Action> {
        for event in events {
            self.handle(now, event);
        }
        let mut actions = Vec::new();

        // Timers.
        if self.running.is_none() && now >= self.next_resync {
            self.next_resync = now + self.settings.resync;
            self.mark_at(now, Trigger::Resync, now);
        }
        if self.recheck_at.is_some_and(|at| now >= at) {
            self.recheck_at = None;
            self.mark_at(now, Trigger::Drain, now);
        }
        if !self.poll_running && self.next_poll.is_some_and(|at| now >= at) {
            self.poll_requested = true;
        }

        if self.poll_requested && !self.poll_running && self.settings.poll.is_some() {
            self.poll_requested = false;
            self.poll_running = true;
            self.next_poll = None;
            actions.push(Action::PollGit);
        }

        let due = self
            .dirty
            .as_ref()
            .and_then(|d| d.due)
            .is_some_and(|due| now >= due);
        if self.running.is_none() && due {
            let dirty = self.dirty.take().expect("due implies dirty");
            self.running = Some(Running {
                changed_at: dirty.changed_at,
            });
            let behind = match (dirty.follow_up, self.last_start) {
                (true, Some(last)) => last.behind.saturating_add(1),
                _ => 0,
            };
            self.last_start = Some(Started { at: now, behind });
            actions.push(Action::StartPass {
                triggers: dirty.triggers,
                changed_at: dirty.changed_at,
            });
        }

        if let Some(at) = self.next_wake() {
            actions.push(Action::WakeAt(at.max(now)));
        }
        actions
    }

    fn next_wake(&self) -> Option<Duration> {
        let mut times = Vec::new();
        if self.running.is_none() {
            times.push(self.next_resync);
            if let Some(due) = self.dirty.as_ref().and_then(|d| d.due) {
                times.push(due);
            }
        }
        if !self.poll_running {
            times.extend(self.next_poll);
        }
        times.extend(self.recheck_at);
        times.into_iter().min()
    }

    fn handle(&mut self, now: Duration, event: Event) {
        match event {
            Event::ConfigChanged => self.mark(now, Trigger::Config),
            Event::EtcdChanged => self.mark(now, Trigger::Etcd),
            Event::HealthChanged => self.mark(now, Trigger::Health),
            Event::Sighup => self.mark(now, Trigger::Signal),
            Event::HookGit => self.poll_requested = true,
            Event::GitPolled { new_commit } => {
                self.poll_done(now);
                if new_commit {
                    self.mark(now, Trigger::Git);
                }
            }
            Event::GitPollFailed => {
                *self.stats.errors.entry(Source::Git).or_default() += 1;
                self.poll_done(now);
            }
            Event::PassOk { recheck_at } => {
                self.running = None;
                self.stats.passes_ok += 1;
                self.stats.consecutive_failures = 0;
                self.backoff = None;
                // The resync keeps its own period: a steady stream of
                // passes must not push it back (it is the pass that
                // re-reads every source and the kernel).
                self.recheck_at = recheck_at;
            }
            Event::PassFailed { source } => {
                let failed = self.running.take();
                self.stats.passes_failed += 1;
                self.stats.consecutive_failures += 1;
                *self.stats.errors.entry(source).or_default() += 1;
                let delay = match self.backoff {
                    None => self.settings.backoff_initial,
                    Some(d) => d.saturating_mul(2),
                }
                .min(self.settings.backoff_max);
                self.backoff = Some(delay);
                // Keep what the failed pass was to apply, and retry it.
                let changed_at = failed.and_then(|r| r.changed_at);
                let retry_at = now + delay;
                match &mut self.dirty {
                    Some(dirty) => {
                        dirty.triggers.insert(Trigger::Retry);
                        dirty.changed_at = min_opt(dirty.changed_at, changed_at);
                        dirty.due = Some(dirty.due.map_or(retry_at, |d| d.min(retry_at)));
                    }
                    None => {
                        self.dirty = Some(Dirty {
                            triggers: BTreeSet::from([Trigger::Retry]),
                            changed_at,
                            due: Some(retry_at),
                            follow_up: true,
                        });
                    }
                }
            }
            Event::Tick => {}
        }
    }

    fn poll_done(&mut self, now: Duration) {
        self.poll_running = false;
        self.next_poll = self.settings.poll.map(|p| now + p);
        if self.first_poll_pending {
            self.first_poll_pending = false;
            if let Some(dirty) = self.dirty.as_mut().filter(|d| d.due.is_none()) {
                dirty.due = Some(now);
            }
        }
    }

    /// Marks the state dirty with a change; when the pass is due is
    /// [`due_for_change`]'s. Timer triggers (resync, drain recheck) use
    /// `mark_at` and are due at once.
    fn mark(&mut self, now: Duration, trigger: Trigger) {
        let loop_state = if self.running.is_none() && self.dirty.is_none() {
            LoopState::Idle
        } else {
            LoopState::Busy(self.last_start)
        };
        let due = due_for_change(now, trigger, loop_state, self.settings.debounce);
        self.mark_at(now, trigger, due);
        if let Some(dirty) = self.dirty.as_mut().filter(|_| self.running.is_some()) {
            dirty.follow_up = true;
        }
    }

    /// Marks the state dirty with a pass due at `window` at the latest.
    fn mark_at(&mut self, now: Duration, trigger: Trigger, window: Duration) {
        let changed_at = trigger.is_change().then_some(now);
        match &mut self.dirty {
            Some(dirty) => {
                dirty.triggers.insert(trigger);
                dirty.changed_at = min_opt(dirty.changed_at, changed_at);
                if !self.first_poll_pending || dirty.due.is_some() {
                    dirty.due = Some(dirty.due.map_or(window, |d| d.min(window)));
                }
            }
            None => {
                self.dirty = Some(Dirty {
                    triggers: BTreeSet::from([trigger]),
                    changed_at,
                    due: Some(window),
                    follow_up: false,
                });
            }
        }
    }
}

/// Where a change finds the loop, for [`due_for_change`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LoopState {
    /// No pass running, none waiting.
    Idle,
    /// A pass running or waiting; the last pass started, if any.
    Busy(Option<Started>),
}

/// When a pass for a change reported at `now` is due at the latest. A
/// config directory event: one debounce window after it. A whole change:
/// at once on an idle loop (the leading edge), and behind a pass as soon as
/// that pass ends while fewer than [`BURST_PASSES`] ran back to back; from
/// then on one window after the last pass started (a stream, one pass a
/// window).
fn due_for_change(
    now: Duration,
    trigger: Trigger,
    state: LoopState,
    debounce: Duration,
) -> Duration {
    if !trigger.is_whole() {
        return now + debounce;
    }
    match state {
        LoopState::Busy(Some(last)) if last.behind + 1 >= BURST_PASSES => {
            (last.at + debounce).max(now)
        }
        LoopState::Idle | LoopState::Busy(_) => now,
    }
}

fn min_opt(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn settings() -> Settings {
        Settings {
            debounce: ms(20),
            resync: ms(30_000),
            poll: None,
            backoff_initial: ms(500),
            backoff_max: ms(4_000),
        }
    }

    fn pass(triggers: &[Trigger], changed_at: Option<u64>) -> Action {
        Action::StartPass {
            triggers: triggers.iter().copied().collect(),
            changed_at: changed_at.map(ms),
        }
    }

    fn wake(t: u64) -> Action {
        Action::WakeAt(ms(t))
    }

    /// Runs a script against a loop created at t=0 with `settings`: each
    /// step is (time in ms, events), and the actions of every step must
    /// equal `expected` for that step (the loop's own initial step at t=0 is
    /// the first entry of both).
    fn check(settings: Settings, script: &[(u64, Vec<Event>)], expected: &[(u64, Vec<Action>)]) {
        let mut sched = Schedule::new(settings, ms(0));
        let mut got = Vec::new();
        for (t, events) in script {
            got.push((*t, sched.step(ms(*t), events.clone())));
        }
        assert_eq!(got.len(), expected.len(), "script and expectation lengths");
        for (g, e) in got.iter().zip(expected) {
            assert_eq!(g, e, "at t={}ms", g.0);
        }
    }

    #[test]
    fn startup_pass_runs_at_once() {
        check(
            settings(),
            &[(0, vec![]), (7, vec![Event::PassOk { recheck_at: None }])],
            &[
                (0, vec![pass(&[Trigger::Startup], None)]),
                (7, vec![wake(30_000)]),
            ],
        );
    }

    #[test]
    fn a_lone_etcd_event_starts_a_pass_at_once() {
        check(
            settings(),
            &[
                (0, vec![]),
                (5, vec![Event::PassOk { recheck_at: None }]),
                (100, vec![Event::EtcdChanged]),
                (101, vec![Event::PassOk { recheck_at: None }]),
            ],
            &[
                (0, vec![pass(&[Trigger::Startup], None)]),
                (5, vec![wake(30_000)]),
                (100, vec![pass(&[Trigger::Etcd], Some(100))]),
                (101, vec![wake(30_000)]),
            ],
        );
    }

    /// Runs the schedule from 100 ms to 200 ms after an idle start, with
    /// `events(t)` reported at each millisecond `t` and each pass ending
    /// (with `end`) `took` ms after it started; the times passes started.
    fn simulate(events: impl Fn(u64) -> Vec<Event>, took: u64, end: Event) -> Vec<u64> {
        let mut sched = Schedule::new(settings(), ms(0));
        sched.step(ms(0), []);
        sched.step(ms(1), [Event::PassOk { recheck_at: None }]);
        let (mut starts, mut done_at) = (Vec::new(), None);
        for t in 100..200 {
            let mut now = events(t);
            if done_at == Some(t) {
                now.insert(0, end.clone());
            }
            for action in sched.step(ms(t), now) {
                if let Action::StartPass { .. } = action {
                    starts.push(t);
                    done_at = Some(t + took);
                }
            }
        }
        starts
    }

    #[test]
    fn a_burst_passes_at_its_leading_edge_and_a_few_times_after_it_not_once_per_event() {
        // 100 events a millisecond for 10 ms, passes of 2 ms: the leading
        // pass, three passes back to back, then one a window later.
        let burst = |t| match t {
            100..110 => vec![Event::EtcdChanged; 100],
            _ => vec![],
        };
        let starts = simulate(burst, 2, Event::PassOk { recheck_at: None });
        assert_eq!(starts, vec![100, 102, 104, 106, 126]);
    }

    #[test]
    fn a_stream_faster_than_the_passes_passes_once_a_window() {
        // An event every 2 ms for 100 ms, each pass taking 3 ms: the
        // leading pass and three back to back, then the events wait for one
        // window after the last pass: a pass every 20 ms, not one per
        // event, and none starved.
        let stream = |t: u64| match t % 2 {
            0 => vec![Event::EtcdChanged],
            _ => vec![],
        };
        let starts = simulate(stream, 3, Event::PassOk { recheck_at: None });
        assert_eq!(starts, vec![100, 103, 106, 109, 129, 149, 169, 189]);
    }

    #[test]
    fn a_change_landing_while_a_lone_changes_pass_finishes_runs_when_it_ends() {
        // One change at a time, each put as soon as the previous one shows
        // in the table, which can be before its pass has finished (status,
        // logs): the next change waits for that pass, not for a window.
        check(
            settings(),
            &[
                (0, vec![]),
                (1, vec![Event::PassOk { recheck_at: None }]),
                (100, vec![Event::EtcdChanged]),
                (101, vec![Event::EtcdChanged]),
                (102, vec![Event::PassOk { recheck_at: None }]),
                (103, vec![Event::PassOk { recheck_at: None }]),
                (104, vec![Event::EtcdChanged]),
            ],
            &[
                (0, vec![pass(&[Trigger::Startup], None)]),
                (1, vec![wake(30_000)]),
                (100, vec![pass(&[Trigger::Etcd], Some(100))]),
                (101, vec![]),
                (102, vec![pass(&[Trigger::Etcd], Some(101))]),
                (103, vec![wake(30_000)]),
                (104, vec![pass(&[Trigger::Etcd], Some(104))]),
            ],
        );
    }

    #[test]
    fn a_stream_of_changes_into_failing_passes_still_passes_once_a_window() {
        // Every pass fails after 1 ms and a change comes every 2 ms: the
        // changes run passes past the backoff, back to back at first, then
        // one a window, not one pass per change.
        let stream = |t: u64| match t % 2 {
            0 => vec![Event::EtcdChanged],
            _ => vec![],
        };
        let failed = Event::PassFailed {
            source: Source::Etcd,
        };
        let starts = simulate(stream, 1, failed);
        assert_eq!(starts, vec![100, 102, 104, 106, 126, 146, 166, 186]);
    }

    #[test]
    fn a_whole_change_waits_for_a_window_only_behind_a_burst_of_passes() {
        let window = ms(20);
        let behind = |behind| LoopState::Busy(Some(Started { at: ms(95), behind }));
        let quick = [
            LoopState::Idle,
            LoopState::Busy(None),
            behind(0),
            behind(BURST_PASSES - 2),
        ];
        let spaced = behind(BURST_PASSES - 1);
        for whole in [
            Trigger::Etcd,
            Trigger::Git,
            Trigger::Signal,
            Trigger::Health,
        ] {
            for state in quick {
                assert_eq!(due_for_change(ms(100), whole, state, window), ms(100));
            }
            assert_eq!(due_for_change(ms(100), whole, spaced, window), ms(115));
            assert_eq!(due_for_change(ms(130), whole, spaced, window), ms(130));
        }
        for state in quick.into_iter().chain([spaced]) {
            assert_eq!(
                due_for_change(ms(100), Trigger::Config, state, window),
                ms(120)
            );
        }
    }

    #[test]
    fn steady_stream_does_not_starve_the_loop() {
        // Events every 5 ms: the window opens at the first one and is not
        // pushed back by the later ones.
        let mut script = vec![(0, vec![]), (1, vec![Event::PassOk { recheck_at: None }])];
        let mut expected = vec![
            (0, vec![pass(&[Trigger::Startup], None)]),
            (1, vec![wake(30_000)]),
        ];
        for t in [10, 15, 20, 25] {
            script.push((t, vec![Event::ConfigChanged]));
            expected.push((t, vec![wake(30)]));
        }
        script.push((30, vec![Event::ConfigChanged]));
        expected.push((30, vec![pass(&[Trigger::Config], Some(10))]));
        check(settings(), &script, &expected);
    }

    #[test]
    fn events_during_a_pass_start_another_pass_after_it() {
        check(
            settings(),
            &[
                (0, vec![]),
                (3, vec![Event::EtcdChanged]),
                (4, vec![Event::Sighup]),
                (50, vec![Event::PassOk { recheck_at: None }]),
            ],
            &[
                (0, vec![pass(&[Trigger::Startup], None)]),
                (3, vec![]),
                (4, vec![]),
                (50, vec![pass(&[Trigger::Etcd, Trigger::Signal], Some(3))]),
            ],
        );
    }

    #[test]
    fn backoff_grows_to_the_cap_and_resets_on_success() {
        let fail = || {
            vec![Event::PassFailed {
                source: Source::Etcd,
            }]
        };
        let retry = || vec![pass(&[Trigger::Retry], None)];
        check(
            settings(),
            &[
                (0, vec![]),
                (10, fail()),
                (510, vec![Event::Tick]),
                (520, fail()),
                (1520, vec![Event::Tick]),
                (1530, fail()),
                (3530, vec![Event::Tick]),
                (3540, fail()),
                (7540, vec![Event::Tick]),
                (7550, fail()),
                (11550, vec![Event::Tick]),
                (11560, vec![Event::PassOk { recheck_at: None }]),
                (11600, vec![Event::EtcdChanged]),
                (11620, vec![Event::Tick]),
                (11630, fail()),
            ],
            &[
                (0, vec![pass(&[Trigger::Startup], None)]),
                (10, vec![wake(510)]),
                (510, retry()),
                (520, vec![wake(1520)]),
                (1520, retry()),
                (1530, vec![wake(3530)]),
                (3530, retry()),
                (3540, vec![wake(7540)]),
                (7540, retry()),
                // 8 s, capped at 4 s
                (7550, vec![wake(11550)]),
                (11550, retry()),
                (11560, vec![wake(30_000)]),
                (11600, vec![pass(&[Trigger::Etcd], Some(11600))]),
                (11620, vec![]),
                // reset by the success: back to 500 ms
                (11630, vec![wake(12_130)]),
            ],
        );
    }

    #[test]
    fn failed_change_keeps_its_change_time_until_applied() {
        check(
            settings(),
            &[
                (0, vec![]),
                (10, vec![Event::PassOk { recheck_at: None }]),
                (100, vec![Event::ConfigChanged]),
                (120, vec![]),
                (
                    130,
                    vec![Event::PassFailed {
                        source: Source::Config,
                    }],
                ),
                (630, vec![]),
            ],
            &[
                (0, vec![pass(&[Trigger::Startup], None)]),
                (10, vec![wake(30_000)]),
                (100, vec![wake(120)]),
                (120, vec![pass(&[Trigger::Config], Some(100))]),
                (130, vec![wake(630)]),
                (630, vec![pass(&[Trigger::Retry], Some(100))]),
            ],
        );
    }

    #[test]
    fn a_new_change_during_backoff_does_not_wait_for_the_backoff() {
        let mut s = settings();
        s.backoff_initial = ms(2_000);
        check(
            s,
            &[
                (0, vec![]),
                (
                    10,
                    vec![Event::PassFailed {
                        source: Source::Config,
                    }],
                ),
                (100, vec![Event::ConfigChanged]),
                (120, vec![]),
            ],
            &[
                (0, vec![pass(&[Trigger::Startup], None)]),
                (10, vec![wake(2_010)]),
                (100, vec![wake(120)]),
                (
                    120,
                    vec![pass(&[Trigger::Config, Trigger::Retry], Some(100))],
                ),
            ],
        );
    }

    #[test]
    fn resync_fires_after_the_interval_without_triggers() {
        check(
            settings(),
            &[
                (0, vec![]),
                (10, vec![Event::PassOk { recheck_at: None }]),
                (30_010, vec![Event::Tick]),
                (30_040, vec![Event::PassOk { recheck_at: None }]),
            ],
            &[
                (0, vec![pass(&[Trigger::Startup], None)]),
                (10, vec![wake(30_000)]),
                (30_010, vec![pass(&[Trigger::Resync], None)]),
                (30_040, vec![wake(60_010)]),
            ],
        );
    }

    #[test]
    fn resync_keeps_its_period_while_other_passes_keep_coming() {
        // An etcd change every 2 s, each pass succeeding: the resync (the
        // pass that re-reads every source and the kernel) still fires every
        // 10 s, not never.
        let mut s = settings();
        s.resync = ms(10_000);
        let mut sched = Schedule::new(s, ms(0));
        let mut resyncs = Vec::new();
        let mut t = 0;
        let mut events = vec![];
        while t <= 41_000 {
            for action in sched.step(ms(t), std::mem::take(&mut events)) {
                if let Action::StartPass { triggers, .. } = action {
                    if triggers.contains(&Trigger::Resync) {
                        resyncs.push(t);
                    }
                    // Every pass takes 5 ms and succeeds.
                    sched.step(ms(t + 5), [Event::PassOk { recheck_at: None }]);
                }
            }
            t += 5;
            if t % 2_000 == 0 {
                events.push(Event::EtcdChanged);
            }
        }
        assert_eq!(resyncs, vec![10_000, 20_000, 30_000, 40_000]);
    }

    #[test]
    fn zero_debounce_starts_at_once_and_does_not_spin() {
        let mut s = settings();
        s.debounce = Duration::ZERO;
        check(
            s,
            &[
                (0, vec![]),
                (1, vec![Event::PassOk { recheck_at: None }]),
                (100, vec![Event::EtcdChanged]),
                (101, vec![Event::EtcdChanged]),
                (102, vec![Event::PassOk { recheck_at: None }]),
                (103, vec![Event::PassOk { recheck_at: None }]),
            ],
            &[
                (0, vec![pass(&[Trigger::Startup], None)]),
                (1, vec![wake(30_000)]),
                (100, vec![pass(&[Trigger::Etcd], Some(100))]),
                // During the pass: coalesced into the next one.
                (101, vec![]),
                (102, vec![pass(&[Trigger::Etcd], Some(101))]),
                // Then idle until the resync: no busy loop.
                (103, vec![wake(30_000)]),
            ],
        );
    }

    #[test]
    fn errors_are_counted_by_source() {
        let mut sched = Schedule::new(settings(), ms(0));
        sched.step(ms(0), []);
        sched.step(
            ms(1),
            [Event::PassFailed {
                source: Source::Etcd,
            }],
        );
        sched.step(ms(501), []);
        sched.step(
            ms(502),
            [Event::PassFailed {
                source: Source::Config,
            }],
        );
        sched.step(ms(1502), []);
        sched.step(
            ms(1503),
            [Event::PassFailed {
                source: Source::Etcd,
            }],
        );
        let stats = sched.stats();
        assert_eq!(stats.errors.get(&Source::Etcd), Some(&2));
        assert_eq!(stats.errors.get(&Source::Config), Some(&1));
        assert_eq!(stats.passes_failed, 3);
        assert_eq!(stats.consecutive_failures, 3);
        assert_eq!(sched.backoff(), Some(ms(2_000)));
        sched.step(ms(3503), []);
        sched.step(ms(3504), [Event::PassOk { recheck_at: None }]);
        assert_eq!(sched.stats().consecutive_failures, 0);
        assert_eq!(sched.backoff(), None);
    }

    #[test]
    fn drains_complete_through_rechecks() {
        // A pass leaves a drain in progress and asks to look again at 1 s;
        // the recheck pass finds it done and asks for nothing more.
        check(
            settings(),
            &[
                (0, vec![]),
                (
                    10,
                    vec![Event::PassOk {
                        recheck_at: Some(ms(1_000)),
                    }],
                ),
                (1_000, vec![Event::Tick]),
                (1_010, vec![Event::PassOk { recheck_at: None }]),
            ],
            &[
                (0, vec![pass(&[Trigger::Startup], None)]),
                (10, vec![wake(1_000)]),
                (1_000, vec![pass(&[Trigger::Drain], None)]),
                (1_010, vec![wake(30_000)]),
            ],
        );
    }

    #[test]
    fn git_is_polled_first_and_on_its_interval_and_on_the_hook() {
        let mut s = settings();
        s.poll = Some(ms(15_000));
        check(
            s,
            &[
                (0, vec![]),
                (200, vec![Event::GitPolled { new_commit: true }]),
                (210, vec![Event::PassOk { recheck_at: None }]),
                (15_200, vec![Event::Tick]),
                (15_400, vec![Event::GitPolled { new_commit: false }]),
                (16_000, vec![Event::HookGit]),
                (16_100, vec![Event::GitPolled { new_commit: true }]),
                (16_120, vec![]),
            ],
            &[
                // The startup pass waits for the first poll.
                (0, vec![Action::PollGit, wake(30_000)]),
                (
                    200,
                    vec![
                        pass(&[Trigger::Git, Trigger::Startup], Some(200)),
                        wake(15_200),
                    ],
                ),
                (210, vec![wake(15_200)]),
                (15_200, vec![Action::PollGit, wake(30_000)]),
                (15_400, vec![wake(30_000)]),
                (16_000, vec![Action::PollGit, wake(30_000)]),
                // A new commit on an idle loop: a pass at once.
                (
                    16_100,
                    vec![pass(&[Trigger::Git], Some(16_100)), wake(31_100)],
                ),
                (16_120, vec![wake(31_100)]),
            ],
        );
    }

    #[test]
    fn a_failed_first_poll_still_runs_the_startup_pass() {
        let mut s = settings();
        s.poll = Some(ms(15_000));
        check(
            s,
            &[(0, vec![]), (50, vec![Event::GitPollFailed])],
            &[
                (0, vec![Action::PollGit, wake(30_000)]),
                (50, vec![pass(&[Trigger::Startup], None), wake(15_050)]),
            ],
        );
    }

    #[test]
    fn hook_without_git_is_ignored() {
        check(
            settings(),
            &[
                (0, vec![]),
                (1, vec![Event::PassOk { recheck_at: None }]),
                (5, vec![Event::HookGit]),
            ],
            &[
                (0, vec![pass(&[Trigger::Startup], None)]),
                (1, vec![wake(30_000)]),
                (5, vec![wake(30_000)]),
            ],
        );
    }
}
