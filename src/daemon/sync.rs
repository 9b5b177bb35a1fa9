//! Locking shared state across the daemon's tasks.
//!
//! Must not: hold anything itself.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, also after a holder panicked: the state is plain data that a
/// panic leaves consistent enough to go on (the next pass re-reads).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
