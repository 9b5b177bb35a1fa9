//! The daemon's two clocks: the wall clock (drain deadlines, metrics
//! timestamps) and the monotonic clock the schedule and the copy of the
//! kernel's table run on (time since the daemon's epoch).
//!
//! Must not: sleep or schedule anything.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Time since the Unix epoch.
pub fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Both clocks, read once at the start of a pass.
#[derive(Clone, Copy, Debug)]
pub struct Now {
    /// Wall clock: time since the Unix epoch.
    pub unix: Duration,
    /// Monotonic: time since the daemon's epoch.
    pub clock: Duration,
}

impl Now {
    pub fn read(epoch: Instant) -> Now {
        Now {
            unix: unix_now(),
            clock: epoch.elapsed(),
        }
    }

    /// The wall clock in Unix milliseconds (drain records).
    pub fn unix_ms(self) -> u64 {
        u64::try_from(self.unix.as_millis()).unwrap_or(u64::MAX)
    }
}
