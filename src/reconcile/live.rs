//! The daemon's copy of the kernel's IPVS table between passes: what the
//! last real read returned plus the ops applied since ([`Op::apply_to`], as
//! the kernel applies them). A pass may plan against it instead of dumping
//! the whole table from the kernel, so that one etcd event costs in
//! proportion to the change, not to the table.
//!
//! When the copy may be used is decided here, from plain data: the time
//! (passed in, on the daemon's monotonic clock), whether it was put back
//! after the last pass, and explicit invalidation. The pass never needs to
//! know why it woke:
//!
//! - empty (first pass, restart): read;
//! - the last pass failed in any way (invalid config, source error, apply
//!   failure, partial apply): the daemon takes the copy out at the start of
//!   a pass ([`LiveCache::take`]) and puts it back only when the pass
//!   succeeded, so any failure leaves it empty and the retry reads;
//! - older than `max_age` (the resync interval): read. The anti-entropy pass
//!   is exactly a pass whose copy has expired;
//! - invalidated (SIGHUP): read.
//!
//! Drains are the daemon's rule on top: they need fresh connection
//! counters, so a pass reads while drains are in progress or when the plan
//! against the copy would start one.
//!
//! Invariant: the copy is never newer than the kernel in anything but our
//! own acked ops, so the planner never deletes something that is not in
//! the table as last read plus our own ops. A change by hand between reads
//! is not seen until the next real read (at the latest `max_age` after the
//! last one); an op that fails because of it fails the pass, which empties
//! the copy, and the retry reads the kernel.
//!
//! Not here: no I/O, no clock, no kernel client; the daemon (`cli::watch`)
//! reads and applies.

use std::time::Duration;

use crate::model::{IpvsState, Op};
use crate::reconcile::drain::LiveStats;

/// The kernel's table as the daemon knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    pub state: IpvsState,
    /// Connection counters of the last real read (not updated by ops:
    /// stale as soon as they are read, which is why drains read again).
    pub stats: LiveStats,
    /// When the kernel was last read for real (monotonic, the caller's
    /// clock).
    pub read_at: Duration,
}

impl Table {
    /// Applies ops the kernel acked, in order. An op that does not apply to
    /// the copy means the copy was wrong: the caller drops it.
    pub fn apply(&mut self, ops: &[Op]) -> Result<(), String> {
        for op in ops {
            op.apply_to(&mut self.state)?;
            if let Op::DelDest { service, dest } = op
                && let Some(s) = self.stats.get_mut(service)
            {
                s.remove(dest);
            } else if let Op::DelService { service } = op {
                self.stats.remove(service);
            }
        }
        Ok(())
    }
}

/// The copy of the table kept between passes, and when it may be used.
#[derive(Clone, Debug)]
pub struct LiveCache {
    max_age: Duration,
    table: Option<Table>,
}

impl LiveCache {
    /// A copy is used for at most `max_age` after the real read it started
    /// from (the resync interval; zero: never used).
    pub fn new(max_age: Duration) -> LiveCache {
        LiveCache {
            max_age,
            table: None,
        }
    }

    /// Takes the copy out for a pass at `now`: `Some` if the pass may plan
    /// against it, `None` if it must read the kernel (empty, invalidated or
    /// expired). Either way the cache is empty afterwards until [`put`].
    ///
    /// [`put`]: LiveCache::put
    pub fn take(&mut self, now: Duration) -> Option<Table> {
        let table = self.table.take()?;
        (now.saturating_sub(table.read_at) < self.max_age).then_some(table)
    }

    /// Keeps the table after a successful pass (read, or taken, plus the
    /// ops the pass applied).
    pub fn put(&mut self, table: Table) {
        self.table = Some(table);
    }

    /// Forgets the copy: the next pass reads the kernel.
    pub fn invalidate(&mut self) {
        self.table = None;
    }

    /// When the kept copy expires (the next pass after this reads).
    pub fn expires_at(&self) -> Option<Duration> {
        self.table
            .as_ref()
            .map(|t| t.read_at.saturating_add(self.max_age))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Dest, DestAttrs, DestStats, Method, Service, ServiceAttrs};

    const S: Duration = Duration::from_secs(1);

    fn table(read_at: Duration) -> Table {
        let mut state = IpvsState::default();
        let key = "tcp://10.0.0.1:80".parse().unwrap();
        let mut svc = Service::new(ServiceAttrs::with_scheduler("wlc"));
        svc.dests.insert(
            "10.1.0.1:80".parse().unwrap(),
            Dest {
                attrs: DestAttrs::new(Method::Masq, 10),
                origins: Vec::new(),
            },
        );
        state.services.insert(key, svc);
        let mut stats = LiveStats::new();
        stats.entry(key).or_default().insert(
            "10.1.0.1:80".parse().unwrap(),
            DestStats {
                active_conns: 3,
                ..DestStats::default()
            },
        );
        Table {
            state,
            stats,
            read_at,
        }
    }

    #[test]
    fn a_copy_is_used_until_it_expires() {
        let mut c = LiveCache::new(30 * S);
        assert_eq!(c.take(Duration::ZERO), None, "empty at start");
        c.put(table(10 * S));
        assert_eq!(c.expires_at(), Some(40 * S));
        let t = c.take(39 * S).expect("fresh");
        assert_eq!(c.take(39 * S), None, "taken out for the pass");
        c.put(t);
        assert_eq!(c.take(40 * S), None, "expired: the resync reads");
        assert_eq!(c.take(41 * S), None, "and stays empty");
    }

    #[test]
    fn a_pass_that_does_not_put_it_back_leaves_it_empty() {
        let mut c = LiveCache::new(30 * S);
        c.put(table(Duration::ZERO));
        let _failed_pass = c.take(S);
        assert_eq!(c.take(2 * S), None);
        assert_eq!(c.expires_at(), None);
    }

    #[test]
    fn invalidation_and_a_zero_age_force_a_read() {
        let mut c = LiveCache::new(30 * S);
        c.put(table(Duration::ZERO));
        c.invalidate();
        assert_eq!(c.take(S), None);
        let mut c = LiveCache::new(Duration::ZERO);
        c.put(table(Duration::ZERO));
        assert_eq!(c.take(Duration::ZERO), None);
    }

    #[test]
    fn ops_apply_to_the_copy_and_a_wrong_copy_is_an_error() {
        let mut t = table(Duration::ZERO);
        let service = "tcp://10.0.0.1:80".parse().unwrap();
        let dest = "10.1.0.1:80".parse().unwrap();
        t.apply(&[Op::DelDest { service, dest }]).unwrap();
        assert!(t.state.services[&service].dests.is_empty());
        assert!(
            t.stats[&service].is_empty(),
            "counters of a deleted dest go"
        );
        // The copy no longer has it: deleting it again does not apply.
        assert!(t.apply(&[Op::DelDest { service, dest }]).is_err());
        t.apply(&[Op::DelService { service }]).unwrap();
        assert!(t.state.services.is_empty() && t.stats.is_empty());
    }
}
