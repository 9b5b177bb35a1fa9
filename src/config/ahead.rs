//! YAML service files read ahead: a helper thread reads them in name
//! order, at most a window ahead of the one that takes them (the calling
//! thread, which assembles and compiles what it takes), and the taker
//! reads a file itself when the helper has not claimed it, or reads
//! another while the helper finishes it. The two share the reading
//! whatever the rest costs; each file is read once, alone, and the taker
//! gets the same results in the same order as reading each in turn.
//!
//! Not here: what a service is (`yaml`), or how services are assembled
//! from files (`parse`).

use std::borrow::Cow;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use super::types::Service;
use super::validate::Reporter;
use super::yaml::yaml_service;
use crate::diag::Diagnostics;

/// A YAML service file read on its own: the service, and the file's
/// diagnostics.
pub(super) type ReadService = (Option<Service>, Diagnostics);

/// A YAML layout service file not read yet.
pub(super) struct YamlFile<'t> {
    pub name: &'t str,
    pub path: &'t str,
    /// The tree's, or taken from it (dropped once read).
    pub bytes: Cow<'t, [u8]>,
}

/// The YAML service files of a config, in name order, each taken once
/// and in that order ([`Ahead::take`], by one thread).
pub(super) struct Ahead<'t> {
    /// Name and path of each file.
    names: Vec<(&'t str, &'t str)>,
    slots: Vec<Mutex<Slot<'t>>>,
    /// The first file no thread claimed yet.
    next: AtomicUsize,
    /// How many files were taken: claims stay within `window` of it.
    taken: AtomicUsize,
    window: usize,
    /// The helper stops (it is no longer wanted, or a read panicked).
    stop: AtomicBool,
}

/// Where one file is: its bytes, read by a thread now, or read (boxed:
/// a slot stays small however large a service is).
enum Slot<'t> {
    Unread(Cow<'t, [u8]>),
    Reading,
    Read(Box<ReadService>),
    Taken,
}

impl<'t> Ahead<'t> {
    /// `files` in name order; a helper reads at most `window` files past
    /// the last taken.
    pub fn new(files: Vec<YamlFile<'t>>, window: usize) -> Ahead<'t> {
        let names = files.iter().map(|f| (f.name, f.path)).collect();
        let slots = files
            .into_iter()
            .map(|f| Mutex::new(Slot::Unread(f.bytes)))
            .collect();
        Ahead {
            names,
            slots,
            next: AtomicUsize::new(0),
            taken: AtomicUsize::new(0),
            window: window.max(1),
            stop: AtomicBool::new(false),
        }
    }

    fn len(&self) -> usize {
        self.names.len()
    }

    /// Name and path of the next file to take.
    pub fn peek(&self) -> Option<(&'t str, &'t str)> {
        self.names.get(self.taken.load(Ordering::Relaxed)).copied()
    }

    /// The next file, read, with its path; `None` when all were taken.
    /// Only one thread takes.
    pub fn take(&self) -> Option<(&'t str, ReadService)> {
        let i = self.taken.load(Ordering::Relaxed);
        let (_, path) = *self.names.get(i)?;
        Some((path, self.take_at(i)))
    }

    /// File `i`, the next to take, read.
    fn take_at(&self, i: usize) -> ReadService {
        let mut spins = 0u32;
        loop {
            let mut slot = lock(&self.slots[i]);
            if !matches!(*slot, Slot::Reading) {
                let was = std::mem::replace(&mut *slot, Slot::Taken);
                drop(slot);
                self.taken.store(i + 1, Ordering::Release);
                return match was {
                    Slot::Read(read) => *read,
                    Slot::Unread(bytes) => self.read(i, &bytes),
                    Slot::Reading | Slot::Taken => unreachable!("file {i} taken twice"),
                };
            }
            drop(slot);
            // The helper is reading it: read another meanwhile, or wait.
            if !self.read_next() {
                spins += 1;
                match spins {
                    0..64 => std::hint::spin_loop(),
                    _ => std::thread::yield_now(),
                }
            }
        }
    }

    /// The helper's work: reads files in order, each claimed first, until
    /// every file is claimed or it is stopped.
    pub fn help(&self) {
        while !self.stop.load(Ordering::Relaxed) && self.next.load(Ordering::Relaxed) < self.len() {
            if !self.read_next() {
                // A window ahead: the taker is busy with what it took.
                std::thread::park_timeout(Duration::from_micros(200));
            }
        }
    }

    /// Stops the helper at its next file.
    fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Stops the helper when dropped: also when the taker unwinds, so that
    /// its thread scope, which waits for the helper, ends.
    pub fn stop_on_drop(&self) -> StopOnDrop<'_, 't> {
        StopOnDrop(self)
    }

    /// Claims and reads the next file, when there is one within the
    /// window: whether one was claimed.
    fn read_next(&self) -> bool {
        let end = self
            .len()
            .min(self.taken.load(Ordering::Acquire) + self.window);
        let mut i = self.next.load(Ordering::Relaxed);
        loop {
            if i >= end {
                return false;
            }
            match self
                .next
                .compare_exchange_weak(i, i + 1, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => i = now,
            }
        }
        let bytes = {
            let mut slot = lock(&self.slots[i]);
            match std::mem::replace(&mut *slot, Slot::Reading) {
                Slot::Unread(bytes) => bytes,
                // The taker got there first.
                other => {
                    *slot = other;
                    return true;
                }
            }
        };
        let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.read(i, &bytes)));
        let mut slot = lock(&self.slots[i]);
        match read {
            Ok(read) => *slot = Slot::Read(Box::new(read)),
            // A panic is the reader's, not the thread's: left for the
            // taker to read again (and panic there), and the helper stops.
            Err(_) => {
                *slot = Slot::Unread(bytes);
                self.stop();
            }
        }
        true
    }

    /// Reads file `i` alone, its diagnostics kept apart.
    fn read(&self, i: usize, bytes: &[u8]) -> ReadService {
        let (name, path) = self.names[i];
        let mut diags = Diagnostics::default();
        let mut r = Reporter {
            file: path,
            diags: &mut diags,
            failed: false,
        };
        (yaml_service(&mut r, name, bytes), diags)
    }
}

/// [`Ahead::stop_on_drop`]'s guard.
pub(super) struct StopOnDrop<'a, 't>(&'a Ahead<'t>);

impl Drop for StopOnDrop<'_, '_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// A slot's lock; a panic never happens while one is held, so a poisoned
/// lock still holds a consistent slot.
fn lock<'a, 't>(slot: &'a Mutex<Slot<'t>>) -> std::sync::MutexGuard<'a, Slot<'t>> {
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
