//! Group commit and the durable watermark: [`Durable`] and [`GroupCommit`].
//!
//! # Invariants
//!
//! * The watermark (`Durable::next`) only counts ids whose bytes were
//!   fdatasync'd: it is raised by the round that synced them, and lowered
//!   only by `truncate_after`, which removes ids.
//! * At most one sync round runs at a time; a caller whose ids a running
//!   round may not cover waits for it, then runs its own if still needed. So
//!   one fdatasync serves every appender that arrived before it started.
//! * Every move of the watermark wakes blocking tails (condvar) and async
//!   tails (`Notify`).

use crate::locks::lock;
use aof_record::{AofError, AofResult};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The durable end of the log, and the waiters on it.
#[derive(Debug)]
pub(crate) struct Durable {
    /// Ids below this are durable: the end of what readers see.
    next: AtomicU64,
    mx: Mutex<()>,
    cv: Condvar,
    notify: tokio::sync::Notify,
}

impl Durable {
    /// A watermark at `next`.
    pub(crate) fn new(next: u64) -> Self {
        Self {
            next: AtomicU64::new(next),
            mx: Mutex::new(()),
            cv: Condvar::new(),
            notify: tokio::sync::Notify::new(),
        }
    }

    /// Ids below this are durable.
    pub(crate) fn next(&self) -> u64 {
        self.next.load(Ordering::Acquire)
    }

    /// Raises the watermark to `next` (never lowers it) and wakes waiters.
    pub(crate) fn publish(&self, next: u64) {
        let before = self.next.fetch_max(next, Ordering::AcqRel);
        if before < next {
            self.wake();
        }
    }

    /// Lowers the watermark to `next` (ids at and after it were removed).
    pub(crate) fn lower(&self, next: u64) {
        self.next.fetch_min(next, Ordering::AcqRel);
    }

    /// Wakes every waiter, blocking and async.
    pub(crate) fn wake(&self) {
        drop(lock(&self.mx));
        self.cv.notify_all();
        self.notify.notify_waiters();
    }

    /// Blocks until the watermark passes `id`, `stop()` holds, or `deadline`;
    /// returns whether it passed `id`.
    pub(crate) fn wait_past(&self, id: u64, deadline: Instant, stop: impl Fn() -> bool) -> bool {
        let mut guard = lock(&self.mx);
        loop {
            if self.next() > id {
                return true;
            }
            let now = Instant::now();
            if now >= deadline || stop() {
                return false;
            }
            guard = self
                .cv
                .wait_timeout(guard, (deadline - now).min(Duration::from_secs(3600)))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// The async waiters' notifier.
    pub(crate) fn notify(&self) -> &tokio::sync::Notify {
        &self.notify
    }
}

/// At most one sync round in flight; others wait for its result.
#[derive(Debug, Default)]
pub(crate) struct GroupCommit {
    in_progress: Mutex<bool>,
    done: Condvar,
}

impl GroupCommit {
    /// Makes ids `..target` durable: returns once `durable.next() >= target`.
    /// Runs `round` (one write-out + fdatasync that publishes what it synced)
    /// when no round is in flight, else waits for the one that is.
    pub(crate) fn sync_until(
        &self,
        durable: &Durable,
        target: u64,
        poisoned: impl Fn() -> bool,
        mut round: impl FnMut() -> AofResult<()>,
    ) -> AofResult<()> {
        let mut busy = lock(&self.in_progress);
        loop {
            if durable.next() >= target {
                return Ok(());
            }
            if poisoned() {
                return Err(AofError::Poisoned);
            }
            if *busy {
                busy = self.done.wait(busy).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            *busy = true;
            drop(busy);
            let result = round();
            busy = lock(&self.in_progress);
            *busy = false;
            self.done.notify_all();
            result?;
        }
    }
}
