//! Where the flush machinery gets its time from: [`Clock`], [`SystemClock`]
//! and the test-controlled [`ManualClock`].
//!
//! Every time value is a [`Duration`] since an arbitrary origin fixed per
//! clock, so a policy never sees wall-clock jumps and a test can step time
//! by exact amounts.

use std::fmt::Debug;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A monotonic source of time.
///
/// Object-safe so that a controller holds an `Arc<dyn Clock>` and tests swap
/// in a [`ManualClock`].
pub trait Clock: Send + Sync + Debug + 'static {
    /// Time elapsed since this clock's origin; never smaller than a value an
    /// earlier call returned.
    fn now(&self) -> Duration;
}

/// The process's monotonic clock ([`Instant`]), measured from the first time
/// any `SystemClock` is read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SystemClock;

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> Duration {
        origin().elapsed()
    }
}

/// A clock that moves only when told to: for deterministic tests of
/// policies, controllers and engines.
///
/// Starts at zero. Shared between threads through an `Arc`; reads and
/// updates are single atomic operations on a nanosecond count.
///
/// ```
/// use aof_flush::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// clock.advance(Duration::from_millis(5));
/// assert_eq!(clock.now(), Duration::from_millis(5));
/// ```
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicU64,
}

/// Nanoseconds of a duration, saturating at `u64::MAX` (about 584 years).
pub(crate) fn duration_to_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl ManualClock {
    /// A clock reading zero.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            nanos: AtomicU64::new(0),
        }
    }

    /// A clock reading `start`.
    #[must_use]
    pub fn starting_at(start: Duration) -> Self {
        Self {
            nanos: AtomicU64::new(duration_to_nanos(start)),
        }
    }

    /// Moves the clock forward by `by` (saturating at about 584 years).
    pub fn advance(&self, by: Duration) {
        let by = duration_to_nanos(by);
        // `fetch_update` with a closure that always returns `Some` cannot fail.
        let _ = self.nanos.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            Some(n.saturating_add(by))
        });
    }

    /// Sets the clock to `to`.
    ///
    /// Setting it backwards breaks the [`Clock`] contract; the flush
    /// machinery tolerates it (elapsed times saturate at zero), but a test
    /// that does so tests something the system clock never does.
    pub fn set(&self, to: Duration) {
        self.nanos.store(duration_to_nanos(to), Ordering::Release);
    }
}

impl Clock for ManualClock {
    #[inline]
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::starting_at(Duration::from_secs(3));
        assert_eq!(c.now(), Duration::from_secs(3));
        assert_eq!(c.now(), Duration::from_secs(3));
        c.advance(Duration::from_nanos(7));
        assert_eq!(c.now(), Duration::from_secs(3) + Duration::from_nanos(7));
        c.set(Duration::from_millis(1));
        assert_eq!(c.now(), Duration::from_millis(1));
        c.advance(Duration::MAX);
        assert_eq!(c.now(), Duration::from_nanos(u64::MAX));
    }

    #[test]
    fn system_clock_is_monotonic_and_moves() {
        let c = SystemClock;
        let a = c.now();
        std::thread::sleep(Duration::from_millis(2));
        let b = c.now();
        assert!(b >= a + Duration::from_millis(2), "{a:?} then {b:?}");
    }
}
