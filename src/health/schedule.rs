//! When each check runs. Every key gets a fixed phase within its interval,
//! from a hash of the key, so checks spread evenly over time (no burst at
//! interval boundaries, none after a restart) and a late run does not drift
//! the next. Pure: the time is passed in.

use std::cmp::Reverse;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{Hash, Hasher};
use std::time::Duration;

/// The checks to run, by key (a [`super::Target`] in the daemon).
#[derive(Clone, Debug)]
pub struct Schedule<K> {
    /// Each key's interval and its next due time (Unix ms).
    entries: HashMap<K, (u64, u64)>,
    /// Due times, earliest first; stale entries (a key removed or moved)
    /// are skipped when popped.
    heap: BinaryHeap<Reverse<(u64, K)>>,
}

impl<K> Default for Schedule<K> {
    fn default() -> Self {
        Schedule {
            entries: HashMap::new(),
            heap: BinaryHeap::new(),
        }
    }
}

impl<K: Clone + Eq + Hash + Ord> Schedule<K> {
    /// Makes the wanted keys the scheduled ones: new keys are due at their
    /// next phase point, keys whose interval changed are re-phased, and
    /// keys not wanted any more are dropped.
    pub fn set(&mut self, wanted: impl IntoIterator<Item = (K, Duration)>, now_ms: u64) {
        let mut next = HashMap::new();
        for (key, interval) in wanted {
            let interval_ms = (interval.as_millis() as u64).max(1);
            let due = match self.entries.get(&key) {
                Some(&(ms, due)) if ms == interval_ms => due,
                _ => {
                    let due = next_phase_point(&key, interval_ms, now_ms);
                    self.heap.push(Reverse((due, key.clone())));
                    due
                }
            };
            next.insert(key, (interval_ms, due));
        }
        self.entries = next;
        if self.heap.len() > 2 * self.entries.len() + 64 {
            self.compact();
        }
    }

    /// The keys due at `now_ms` with their due times, earliest first; each
    /// is re-armed for its next phase point after now (missed points are
    /// skipped, not run in a burst).
    pub fn pop_due(&mut self, now_ms: u64) -> Vec<(u64, K)> {
        let mut out = Vec::new();
        while let Some(Reverse((due, _))) = self.heap.peek() {
            if *due > now_ms {
                break;
            }
            let Reverse((due, key)) = self.heap.pop().expect("peeked");
            let Some(entry) = self.entries.get_mut(&key) else {
                continue;
            };
            if entry.1 != due {
                continue;
            }
            let interval = entry.0;
            let late = now_ms - due;
            entry.1 = due + interval * (late / interval + 1);
            self.heap.push(Reverse((entry.1, key.clone())));
            out.push((due, key));
        }
        out
    }

    /// When the next check is due, if any.
    pub fn next_due(&mut self) -> Option<u64> {
        while let Some(Reverse((due, key))) = self.heap.peek() {
            if self.entries.get(key).is_some_and(|e| e.1 == *due) {
                return Some(*due);
            }
            self.heap.pop();
        }
        None
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn compact(&mut self) {
        self.heap = self
            .entries
            .iter()
            .map(|(k, &(_, due))| Reverse((due, k.clone())))
            .collect();
    }
}

/// The first time after `now_ms` (inclusive) that is the key's phase
/// within its interval.
fn next_phase_point<K: Hash>(key: &K, interval_ms: u64, now_ms: u64) -> u64 {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    let phase = h.finish() % interval_ms;
    let base = now_ms - now_ms % interval_ms + phase;
    if base >= now_ms {
        base
    } else {
        base + interval_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIVE_S: Duration = Duration::from_secs(5);

    #[test]
    fn every_key_runs_once_per_interval_at_a_fixed_phase() {
        let mut s = Schedule::default();
        s.set((0..100u32).map(|k| (k, FIVE_S)), 1_000_000);
        let mut runs: HashMap<u32, Vec<u64>> = HashMap::new();
        for now in (1_000_000..1_020_000).step_by(10) {
            for (due, k) in s.pop_due(now) {
                assert!(due <= now && now - due < 10);
                runs.entry(k).or_default().push(now);
            }
        }
        assert_eq!(runs.len(), 100);
        for (k, times) in runs {
            assert_eq!(times.len(), 4, "key {k}: {times:?}");
            assert!(times.windows(2).all(|w| w[1] - w[0] == 5000), "{times:?}");
        }
    }

    #[test]
    fn checks_spread_over_the_interval_without_a_burst() {
        let mut s = Schedule::default();
        let n = 100_000u32;
        s.set((0..n).map(|k| (k, FIVE_S)), 0);
        // 50 buckets of 100 ms: 2,000 checks each on average.
        let (mut most, mut total) = (0, 0);
        for bucket in 1..=50u64 {
            let due = s.pop_due(bucket * 100 - 1).len();
            (most, total) = (most.max(due), total + due);
        }
        assert_eq!(
            total, n as usize,
            "every key runs once in the first interval"
        );
        assert!(most < 2_400, "a 100 ms bucket held {most} checks");
    }

    #[test]
    fn a_late_run_skips_missed_points_and_keeps_its_phase() {
        let mut s = Schedule::default();
        s.set([("a", FIVE_S)], 0);
        let first = s.next_due().unwrap();
        assert_eq!(s.pop_due(first), vec![(first, "a")]);
        // Stalled for three intervals: one run, not three.
        assert_eq!(s.pop_due(first + 15_500), vec![(first + 5_000, "a")]);
        assert_eq!(s.pop_due(first + 15_500), vec![]);
        assert_eq!(s.next_due(), Some(first + 20_000));
    }

    #[test]
    fn keys_not_wanted_any_more_never_run_again() {
        let mut s = Schedule::default();
        s.set([("a", FIVE_S), ("b", FIVE_S)], 0);
        s.set([("b", FIVE_S)], 0);
        let mut seen = Vec::new();
        for now in (0..20_000).step_by(100) {
            seen.extend(s.pop_due(now).into_iter().map(|(_, k)| k));
        }
        assert!(
            seen.iter().all(|k| *k == "b") && seen.len() == 4,
            "{seen:?}"
        );
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn a_changed_interval_takes_effect_at_once() {
        let mut s = Schedule::default();
        s.set([("a", Duration::from_secs(60))], 0);
        s.set([("a", Duration::from_secs(1))], 0);
        assert!(s.next_due().unwrap() < 1_000);
        assert_eq!(s.pop_due(1_000).len(), 1);
    }
}
