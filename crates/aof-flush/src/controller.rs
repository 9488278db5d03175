//! [`FlushController`]: tracks pending work, asks the [`FlushPolicy`] when to
//! flush, runs the engine's flush and records what it cost.

use crate::clock::{Clock, SystemClock, duration_to_nanos};
use crate::metrics::FlushControllerMetrics;
use crate::policy::{FlushDecision, FlushKind, FlushPolicy, PendingState};
use aof_record::config::FlushStrategy;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Tracks appended-but-not-durable work for one log and decides, through
/// its [`FlushPolicy`], when it must be flushed.
///
/// `Send + Sync`: appenders call [`record_append`](Self::record_append) from
/// many threads while a background flusher calls [`poll`](Self::poll) and
/// [`flush_with`](Self::flush_with).
///
/// # Invariants
///
/// * Call `record_append` only once a flush started afterwards would cover
///   the appended bytes: they are in the file (page cache or mapped region),
///   or in a buffer that the flush writes out before it syncs. `flush_with` then counts as
///   durable exactly the work whose `record_append` happened before it
///   started; work appended while it runs stays pending.
/// * Pending work is kept as two monotonic counters, appended and durable;
///   a successful flush moves "durable" up to what was appended when it
///   started, never down. Concurrent flushes therefore never count the same
///   record twice: the later one to finish counts only what the earlier did
///   not cover.
/// * A failed flush leaves pending work and the last-flush time as they
///   were, so the policy keeps asking for a flush. After an fsync failure
///   the engine should poison the log rather than retry: the kernel may have
///   dropped the dirty pages it failed to write.
///
/// While a threshold is exceeded, every `record_append` and `poll` returns
/// [`FlushDecision::Now`] until a flush completes; an engine with many
/// appenders should hand the flush to one flusher rather than have each
/// appender run it.
#[derive(Debug)]
pub struct FlushController {
    policy: FlushPolicy,
    clock: Arc<dyn Clock>,
    metrics: Arc<FlushControllerMetrics>,
    /// Clock reading, in nanoseconds, at which the last successful flush
    /// started (at creation before the first).
    last_flush_ns: AtomicU64,
}

impl FlushController {
    /// A controller for `strategy`, timed by the [`SystemClock`].
    #[must_use]
    pub fn new(strategy: FlushStrategy) -> Self {
        Self::with_clock(strategy, Arc::new(SystemClock))
    }

    /// A controller for `strategy`, timed by `clock` (policy deadlines, flush
    /// latency and the throughput window all read it).
    #[must_use]
    pub fn with_clock(strategy: FlushStrategy, clock: Arc<dyn Clock>) -> Self {
        let now = duration_to_nanos(clock.now());
        Self {
            policy: FlushPolicy::new(strategy),
            metrics: Arc::new(FlushControllerMetrics::with_clock(Arc::clone(&clock))),
            clock,
            last_flush_ns: AtomicU64::new(now),
        }
    }

    /// Counts `records` records of `bytes` bytes as appended and pending, and
    /// says whether a flush is now due.
    ///
    /// The hot path: a few atomic operations, a clock read only if the
    /// strategy has an interval, no lock and no allocation.
    #[inline]
    pub fn record_append(&self, records: u64, bytes: u64) -> FlushDecision {
        self.metrics.add_pending(records, bytes);
        self.decide()
    }

    /// Whether a flush is due now, and if not, how long until one is: what a
    /// background flusher calls when it wakes.
    pub fn poll(&self) -> FlushDecision {
        self.decide()
    }

    #[inline]
    fn decide(&self) -> FlushDecision {
        let since_last_flush = if self.policy.uses_time() {
            self.since_last_flush()
        } else {
            Duration::ZERO
        };
        let (records, bytes) = self.pending_counts();
        self.policy.decide(&PendingState {
            records,
            bytes,
            since_last_flush,
        })
    }

    #[inline]
    fn pending_counts(&self) -> (u64, u64) {
        let (ar, ab) = self.metrics.appended();
        let (dr, db) = self.metrics.flushed_through();
        // Durable first: it never exceeds a later reading of appended.
        let (dr, db) = (dr.load(Ordering::Acquire), db.load(Ordering::Acquire));
        let (ar, ab) = (ar.load(Ordering::Acquire), ab.load(Ordering::Acquire));
        (ar.saturating_sub(dr), ab.saturating_sub(db))
    }

    #[inline]
    fn since_last_flush(&self) -> Duration {
        let now = duration_to_nanos(self.clock.now());
        Duration::from_nanos(now.saturating_sub(self.last_flush_ns.load(Ordering::Acquire)))
    }

    /// Runs `f`, the engine's flush (an fsync, say), as a flush of `kind`,
    /// and records its outcome and latency.
    ///
    /// Pending records and bytes are captured on entry. If `f` returns `Ok`,
    /// they are recorded as one successful flush with the latency measured
    /// by the controller's clock, they stop being pending (work appended
    /// while `f` ran stays pending), and the last-flush time becomes the
    /// time `f` started. If `f` returns `Err`, a failed flush is recorded and
    /// nothing else changes. `f`'s result is returned as is. If `f` panics,
    /// nothing is recorded.
    pub fn flush_with<T, E>(&self, kind: FlushKind, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        self.flush_since(kind, None, f)
    }

    /// [`flush_with`](Self::flush_with), with the latency measured from
    /// `since` (a time of this controller's clock) instead of from the call:
    /// so a caller that waited for another flush before its own records the
    /// whole wait, which is what it experienced. `None` starts at the call.
    pub fn flush_since<T, E>(
        &self,
        kind: FlushKind,
        since: Option<Duration>,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let (appended_records, appended_bytes) = self.metrics.appended();
        let target_records = appended_records.load(Ordering::Acquire);
        let target_bytes = appended_bytes.load(Ordering::Acquire);
        let now = self.clock.now();
        let start = since.map_or(now, |s| s.min(now));
        let result = f();
        let end = self.clock.now();
        let latency = end.saturating_sub(start);
        let (durable_records, durable_bytes) = self.metrics.flushed_through();
        let (records, bytes, success) = if result.is_ok() {
            let before_records = durable_records.fetch_max(target_records, Ordering::AcqRel);
            let before_bytes = durable_bytes.fetch_max(target_bytes, Ordering::AcqRel);
            self.last_flush_ns
                .fetch_max(duration_to_nanos(now), Ordering::AcqRel);
            (
                target_records.saturating_sub(before_records),
                target_bytes.saturating_sub(before_bytes),
                true,
            )
        } else {
            (
                target_records.saturating_sub(durable_records.load(Ordering::Acquire)),
                target_bytes.saturating_sub(durable_bytes.load(Ordering::Acquire)),
                false,
            )
        };
        self.metrics
            .record_controlled(kind, records, bytes, latency, success, end);
        result
    }

    /// What has been appended so far (records, bytes): take it before
    /// checking that everything appended is durable, then hand it to
    /// [`discard_pending_through`](Self::discard_pending_through).
    #[must_use]
    pub fn appended_mark(&self) -> (u64, u64) {
        let (ar, ab) = self.metrics.appended();
        (ar.load(Ordering::Acquire), ab.load(Ordering::Acquire))
    }

    /// Stops counting as pending what was appended up to `mark`, without
    /// recording a flush: for records the caller found durable or removed
    /// (a truncation) before they were flushed, so the policy does not keep
    /// asking for a flush that has nothing to do. Appends after `mark` stay
    /// pending.
    pub fn discard_pending_through(&self, mark: (u64, u64)) {
        let (dr, db) = self.metrics.flushed_through();
        dr.fetch_max(mark.0, Ordering::AcqRel);
        db.fetch_max(mark.1, Ordering::AcqRel);
    }

    /// Pending records and bytes, and the time since the last successful
    /// flush started.
    #[must_use]
    pub fn pending(&self) -> PendingState {
        let since_last_flush = self.since_last_flush();
        let (records, bytes) = self.pending_counts();
        PendingState {
            records,
            bytes,
            since_last_flush,
        }
    }

    /// The metrics this controller records into.
    #[must_use]
    pub fn metrics(&self) -> &Arc<FlushControllerMetrics> {
        &self.metrics
    }

    /// The policy this controller applies.
    #[must_use]
    pub fn policy(&self) -> &FlushPolicy {
        &self.policy
    }

    /// The clock this controller reads.
    #[must_use]
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn controller_and_metrics_are_send_and_sync() {
        assert_send_sync::<FlushController>();
        assert_send_sync::<FlushControllerMetrics>();
    }

    #[test]
    fn flush_counts_only_what_was_pending_on_entry() {
        let clock = Arc::new(ManualClock::new());
        let c = FlushController::with_clock(FlushStrategy::Async, clock.clone());
        c.record_append(3, 30);
        let r: Result<(), ()> = c.flush_with(FlushKind::Forced, || {
            // Arrives while the flush runs: not covered by it.
            c.record_append(2, 20);
            clock.advance(Duration::from_millis(7));
            Ok(())
        });
        assert_eq!(r, Ok(()));
        let s = c.metrics().snapshot();
        assert_eq!((s.records_flushed, s.bytes_flushed), (3, 30));
        assert_eq!((s.pending_records, s.pending_bytes), (2, 20));
        assert_eq!(s.total_flush_time_ns, 7_000_000);
        let p = c.pending();
        assert_eq!((p.records, p.bytes), (2, 20));
        // Last-flush time is the flush's start.
        assert_eq!(p.since_last_flush, Duration::from_millis(7));
    }

    #[test]
    fn overlapping_flushes_never_count_a_record_twice() {
        let c = FlushController::with_clock(FlushStrategy::Async, Arc::new(ManualClock::new()));
        c.record_append(4, 40);
        let r: Result<(), ()> = c.flush_with(FlushKind::Forced, || {
            c.record_append(1, 10);
            // A second flusher starts inside the first and covers all 5.
            c.flush_with(FlushKind::Batched, || Ok::<(), ()>(()))?;
            Ok(())
        });
        assert!(r.is_ok());
        let s = c.metrics().snapshot();
        assert_eq!(s.successful_flushes, 2);
        assert_eq!((s.records_flushed, s.bytes_flushed), (5, 50));
        assert_eq!(s.pending_records, 0);
    }

    #[test]
    fn failed_flush_leaves_pending_and_deadline_alone() {
        let clock = Arc::new(ManualClock::new());
        let c = FlushController::with_clock(FlushStrategy::Periodic(10), clock.clone());
        assert_eq!(
            c.record_append(1, 8).next_deadline(),
            Some(Duration::from_millis(10))
        );
        clock.advance(Duration::from_millis(10));
        assert_eq!(c.poll(), FlushDecision::Now(FlushKind::Periodic));
        let r: Result<(), &str> = c.flush_with(FlushKind::Periodic, || Err("EIO"));
        assert_eq!(r, Err("EIO"));
        assert_eq!(c.poll(), FlushDecision::Now(FlushKind::Periodic));
        assert_eq!((c.pending().records, c.pending().bytes), (1, 8));
        let m = c.metrics();
        assert_eq!(
            (m.failed_flushes(), m.successful_flushes(), m.records_flushed()),
            (1, 0, 0)
        );
    }

    #[test]
    fn flushes_recorded_directly_move_the_gauges_but_not_the_controller() {
        let c = FlushController::with_clock(FlushStrategy::Batched(5), Arc::new(ManualClock::new()));
        assert!(!c.record_append(4, 40).is_now());
        c.metrics()
            .record_flush(FlushKind::Forced, 3, 30, Duration::from_micros(1), true);
        assert_eq!(
            (c.metrics().pending_records(), c.metrics().pending_bytes()),
            (1, 10)
        );
        assert_eq!(c.pending().records, 4);
        assert_eq!(c.record_append(1, 10), FlushDecision::Now(FlushKind::Batched));
    }
}
