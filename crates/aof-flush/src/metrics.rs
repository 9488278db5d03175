//! What flushing costs: [`FlushControllerMetrics`] records every flush, and
//! [`FlushMetricsSnapshot`] carries a consistent copy out for export.
//!
//! # Cost and concurrency
//!
//! [`FlushControllerMetrics::record_flush`] reads the clock once and takes one
//! of a few striped mutexes: a thread starts at its own stripe and moves on
//! to the next if that one is busy, so concurrent recorders rarely wait. All
//! counters, timings, histograms and the throughput window of a stripe are
//! plain integers behind its lock, which costs less than a dozen separate
//! atomic read-modify-writes would. Readers lock every stripe in turn and
//! merge; they are for reporting, not for the hot path.
//!
//! The pending-work gauges are the exception: appended work is counted in
//! atomics, because the append path
//! ([`crate::FlushController::record_append`]) updates them and must never
//! take a lock. Pending is "appended minus made durable", where durable work
//! is what the controller's flushes covered (an atomic high-water mark the
//! append path reads) plus what [`FlushControllerMetrics::record_flush`]
//! reported (kept in the stripes, so recording shares no cache line between
//! threads).
//!
//! # What counts
//!
//! * Every recorded flush counts in `total_flushes`, in exactly one of
//!   `successful_flushes` / `failed_flushes`, and in the counter of its kind.
//! * Records, bytes, timings, histograms and throughput count successful
//!   flushes only: they describe work that was made durable.

use crate::clock::{Clock, SystemClock, duration_to_nanos};
use crate::policy::FlushKind;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;

/// Length of the recent window over which throughput is computed.
pub const THROUGHPUT_WINDOW: Duration = Duration::from_secs(10);

/// Throughput is kept in this many slots of equal length.
const WINDOW_SLOTS: usize = 10;
const SLOT_NANOS: u64 = THROUGHPUT_WINDOW.as_nanos() as u64 / WINDOW_SLOTS as u64;

/// Largest latency the histogram resolves: one hour, in microseconds.
/// Longer flushes are recorded as one hour.
pub const MAX_TRACKED_LATENCY_US: u64 = 3_600 * 1_000_000;
/// Largest records- or bytes-per-flush value the histograms resolve (2^40);
/// larger flushes are recorded as this value.
pub const MAX_TRACKED_PER_FLUSH: u64 = 1 << 40;
/// Significant decimal digits the latency histogram keeps: values are exact
/// up to 2048 µs and within 0.1 % above.
const LATENCY_DIGITS: u8 = 3;
/// Significant decimal digits the records- and bytes-per-flush histograms
/// keep: exact up to 256, within 1 % above. A tenth of the memory of three
/// digits (about 35 KiB instead of 250 KiB each), which keeps a stripe's
/// histograms small enough to stay in cache.
const PER_FLUSH_DIGITS: u8 = 2;

/// Most stripes a metrics value uses: one per available core up to this.
/// Flushes are rare next to appends (at most thousands a second), so a few
/// stripes remove nearly all waiting; each costs about 260 KiB of histograms.
const MAX_STRIPES: usize = 4;

fn histogram(max: u64, digits: u8) -> Histogram<u64> {
    // The bounds are constants that `hdrhistogram` accepts (a unit test
    // builds them), so this cannot fail at run time.
    Histogram::new_with_bounds(1, max, digits)
        .unwrap_or_else(|e| unreachable!("constant histogram bounds rejected: {e}"))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Keeps a value on its own cache line(s), so that appenders bumping one
/// counter do not slow down flushers touching another.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    epoch: u64,
    records: u64,
    bytes: u64,
}

/// One stripe: everything `record_flush` touches, behind one lock.
#[derive(Debug, Clone)]
struct Stripe {
    total: u64,
    successful: u64,
    failed: u64,
    by_kind: [u64; 3],
    records: u64,
    bytes: u64,
    flush_time_ns: u64,
    longest_ns: u64,
    shortest_ns: Option<u64>,
    /// Records and bytes that successful `record_flush` calls took off pending.
    released_records: u64,
    released_bytes: u64,
    latency_us: Histogram<u64>,
    records_per_flush: Histogram<u64>,
    bytes_per_flush: Histogram<u64>,
    window: [Slot; WINDOW_SLOTS],
}

impl Stripe {
    fn new() -> Self {
        Self {
            total: 0,
            successful: 0,
            failed: 0,
            by_kind: [0; 3],
            records: 0,
            bytes: 0,
            flush_time_ns: 0,
            longest_ns: 0,
            shortest_ns: None,
            released_records: 0,
            released_bytes: 0,
            latency_us: histogram(MAX_TRACKED_LATENCY_US, LATENCY_DIGITS),
            records_per_flush: histogram(MAX_TRACKED_PER_FLUSH, PER_FLUSH_DIGITS),
            bytes_per_flush: histogram(MAX_TRACKED_PER_FLUSH, PER_FLUSH_DIGITS),
            window: [Slot::default(); WINDOW_SLOTS],
        }
    }

    fn record(&mut self, f: &Flush) {
        self.total += 1;
        self.by_kind[f.kind.index()] += 1;
        if !f.success {
            self.failed += 1;
            return;
        }
        self.successful += 1;
        if f.releases_pending {
            self.released_records = self.released_records.saturating_add(f.records);
            self.released_bytes = self.released_bytes.saturating_add(f.bytes);
        }
        self.records = self.records.saturating_add(f.records);
        self.bytes = self.bytes.saturating_add(f.bytes);
        let ns = duration_to_nanos(f.latency);
        self.flush_time_ns = self.flush_time_ns.saturating_add(ns);
        self.longest_ns = self.longest_ns.max(ns);
        self.shortest_ns = Some(self.shortest_ns.map_or(ns, |s| s.min(ns)));
        self.latency_us.saturating_record(ns / 1_000);
        self.records_per_flush.saturating_record(f.records);
        self.bytes_per_flush.saturating_record(f.bytes);

        let epoch = f.now_ns / SLOT_NANOS;
        let slot = &mut self.window[(epoch % WINDOW_SLOTS as u64) as usize];
        if slot.epoch < epoch {
            *slot = Slot {
                epoch,
                records: 0,
                bytes: 0,
            };
        }
        // A recorder that read the clock before another one rolled this slot
        // over to a newer epoch is too old for the window; it is dropped
        // from throughput (and only from throughput).
        if slot.epoch == epoch {
            slot.records = slot.records.saturating_add(f.records);
            slot.bytes = slot.bytes.saturating_add(f.bytes);
        }
    }

    /// Records and bytes of slots whose epoch lies in `(current - WINDOW_SLOTS, current]`.
    fn window_sum(&self, current: u64) -> (u64, u64) {
        self.window
            .iter()
            .filter(|s| s.epoch <= current && current - s.epoch < WINDOW_SLOTS as u64)
            .fold((0, 0), |(r, b), s| {
                (r.saturating_add(s.records), b.saturating_add(s.bytes))
            })
    }
}

struct Flush {
    kind: FlushKind,
    records: u64,
    bytes: u64,
    latency: Duration,
    success: bool,
    /// Whether a success takes `records` and `bytes` off the pending gauges.
    releases_pending: bool,
    now_ns: u64,
}

/// Counters of a flush controller: what flushing does and what it costs.
///
/// Safe to share between threads (`Arc<FlushControllerMetrics>`); every
/// method takes `&self`. Holds about 260 KiB of histograms per stripe, with
/// one stripe per core up to four. Used by [`crate::FlushController`], and usable
/// alone by anything that flushes:
///
/// ```
/// use aof_flush::{FlushControllerMetrics, FlushKind};
/// use std::time::Duration;
///
/// let m = FlushControllerMetrics::new();
/// m.add_pending(10, 1_000);
/// m.record_flush(FlushKind::Batched, 10, 1_000, Duration::from_micros(250), true);
/// m.record_flush(FlushKind::Forced, 0, 0, Duration::from_micros(900), false);
/// assert_eq!(m.successful_flushes(), 1);
/// assert_eq!(m.failed_flushes(), 1);
/// assert_eq!(m.pending_records(), 0);
/// assert_eq!(m.average_flush_latency_us(), 250.0);
/// assert_eq!(m.flush_success_rate(), 0.5);
/// assert_eq!(m.get_flush_latency_percentile(99.0), 250);
/// let snapshot = m.snapshot();
/// assert_eq!(snapshot.records_flushed, 10);
/// ```
pub struct FlushControllerMetrics {
    clock: Arc<dyn Clock>,
    created_ns: u64,
    appended_records: Padded<AtomicU64>,
    appended_bytes: Padded<AtomicU64>,
    flushed_through_records: Padded<AtomicU64>,
    flushed_through_bytes: Padded<AtomicU64>,
    stripes: Box<[Padded<Mutex<Stripe>>]>,
}

impl fmt::Debug for FlushControllerMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlushControllerMetrics")
            .field("clock", &self.clock)
            .field("stripes", &self.stripes.len())
            .field("pending_records", &self.pending_records())
            .field("pending_bytes", &self.pending_bytes())
            .finish_non_exhaustive()
    }
}

impl Default for FlushControllerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Which stripe the current thread tries first: threads are spread over
/// the stripes round-robin the first time each records.
fn home_stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static HOME: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    HOME.with(|h| {
        let mut home = h.get();
        if home == usize::MAX {
            // Reduced modulo the stripe count at use; `usize::MAX` stays the
            // "unassigned" mark because the counter never gets that far.
            home = NEXT.fetch_add(1, Ordering::Relaxed) % (usize::MAX / 2);
            h.set(home);
        }
        home
    })
}

impl FlushControllerMetrics {
    /// Empty metrics timed by the [`SystemClock`].
    #[must_use]
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// Empty metrics timed by `clock` (which places flushes in the
    /// throughput window).
    #[must_use]
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        let stripes = std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .clamp(1, MAX_STRIPES);
        let created_ns = duration_to_nanos(clock.now());
        Self {
            clock,
            created_ns,
            appended_records: Padded::default(),
            appended_bytes: Padded::default(),
            flushed_through_records: Padded::default(),
            flushed_through_bytes: Padded::default(),
            stripes: (0..stripes).map(|_| Padded(Mutex::new(Stripe::new()))).collect(),
        }
    }

    /// The clock these metrics read.
    #[must_use]
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    // ---- recording ----------------------------------------------------

    /// Counts `records` and `bytes` as appended and not yet durable.
    ///
    /// Lock-free: two atomic additions. [`crate::FlushController`] calls
    /// this on every append.
    #[inline]
    pub fn add_pending(&self, records: u64, bytes: u64) {
        self.appended_records.0.fetch_add(records, Ordering::AcqRel);
        self.appended_bytes.0.fetch_add(bytes, Ordering::AcqRel);
    }

    /// Records one flush of `kind` that took `latency`.
    ///
    /// A successful flush counts `records` and `bytes` as flushed and takes
    /// them off the pending gauges; a failed one counts as failed only, and
    /// leaves everything else (including pending work) untouched.
    ///
    /// This is for flushes run outside a [`crate::FlushController`]: a
    /// controller records its own through
    /// [`flush_with`](crate::FlushController::flush_with), and a flush
    /// recorded here does not change what the controller considers pending.
    ///
    /// Cost: one clock read and one (almost always uncontended) lock.
    pub fn record_flush(&self, kind: FlushKind, records: u64, bytes: u64, latency: Duration, success: bool) {
        self.record(&Flush {
            kind,
            records,
            bytes,
            latency,
            success,
            releases_pending: true,
            now_ns: duration_to_nanos(self.clock.now()),
        });
    }

    /// Records a flush the controller ran: it has already moved its
    /// high-water mark, so the flush releases no pending work here. `now`
    /// places it in the throughput window.
    pub(crate) fn record_controlled(
        &self,
        kind: FlushKind,
        records: u64,
        bytes: u64,
        latency: Duration,
        success: bool,
        now: Duration,
    ) {
        self.record(&Flush {
            kind,
            records,
            bytes,
            latency,
            success,
            releases_pending: false,
            now_ns: duration_to_nanos(now),
        });
    }

    /// Records into the first free stripe, starting at this thread's own.
    fn record(&self, flush: &Flush) {
        let n = self.stripes.len();
        let home = home_stripe() % n;
        for i in 0..n {
            let stripe = &self.stripes[(home + i) % n].0;
            match stripe.try_lock() {
                Ok(mut g) => return g.record(flush),
                Err(TryLockError::Poisoned(p)) => return p.into_inner().record(flush),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        lock(&self.stripes[home].0).record(flush);
    }

    /// Records and bytes ever appended (monotonic).
    pub(crate) fn appended(&self) -> (&AtomicU64, &AtomicU64) {
        (&self.appended_records.0, &self.appended_bytes.0)
    }

    /// The controller's high-water mark: appended records and bytes that
    /// its successful flushes covered (monotonic, raised with `fetch_max`).
    pub(crate) fn flushed_through(&self) -> (&AtomicU64, &AtomicU64) {
        (&self.flushed_through_records.0, &self.flushed_through_bytes.0)
    }

    // ---- reading ------------------------------------------------------

    /// Sums the scalar fields of every stripe.
    fn totals(&self) -> Stripe {
        let mut iter = self.stripes.iter();
        let Some(first) = iter.next() else {
            return Stripe::new();
        };
        // Clone only the first stripe (histograms included, for the caller
        // that merges them); later ones fold into it.
        let mut acc = lock(&first.0).clone();
        for s in iter {
            let g = lock(&s.0);
            acc.total += g.total;
            acc.successful += g.successful;
            acc.failed += g.failed;
            for (a, b) in acc.by_kind.iter_mut().zip(g.by_kind) {
                *a += b;
            }
            acc.records = acc.records.saturating_add(g.records);
            acc.bytes = acc.bytes.saturating_add(g.bytes);
            acc.flush_time_ns = acc.flush_time_ns.saturating_add(g.flush_time_ns);
            acc.longest_ns = acc.longest_ns.max(g.longest_ns);
            acc.shortest_ns = match (acc.shortest_ns, g.shortest_ns) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            // Same bounds everywhere, so adding cannot fail.
            let _ = acc.latency_us.add(&g.latency_us);
            let _ = acc.records_per_flush.add(&g.records_per_flush);
            let _ = acc.bytes_per_flush.add(&g.bytes_per_flush);
        }
        // `acc.window` still holds the first stripe's slots only: throughput
        // is summed across stripes by `rates`, never from here.
        acc
    }

    /// Applies `f` to one scalar of every stripe and sums, without cloning histograms.
    fn sum(&self, f: impl Fn(&Stripe) -> u64) -> u64 {
        self.stripes
            .iter()
            .map(|s| f(&lock(&s.0)))
            .fold(0u64, u64::saturating_add)
    }

    /// Flushes recorded, successful or not.
    #[must_use]
    pub fn total_flushes(&self) -> u64 {
        self.sum(|s| s.total)
    }

    /// Flushes that made their data durable.
    #[must_use]
    pub fn successful_flushes(&self) -> u64 {
        self.sum(|s| s.successful)
    }

    /// Flushes that failed.
    #[must_use]
    pub fn failed_flushes(&self) -> u64 {
        self.sum(|s| s.failed)
    }

    /// Flushes of `kind`, successful or not.
    #[must_use]
    pub fn flushes_of_kind(&self, kind: FlushKind) -> u64 {
        self.sum(|s| s.by_kind[kind.index()])
    }

    /// Records made durable by successful flushes.
    #[must_use]
    pub fn records_flushed(&self) -> u64 {
        self.sum(|s| s.records)
    }

    /// Bytes made durable by successful flushes.
    #[must_use]
    pub fn bytes_flushed(&self) -> u64 {
        self.sum(|s| s.bytes)
    }

    /// (records, bytes) appended and not yet made durable.
    fn pending(&self) -> (u64, u64) {
        let (released_records, released_bytes) = self
            .stripes
            .iter()
            .map(|s| {
                let g = lock(&s.0);
                (g.released_records, g.released_bytes)
            })
            .fold((0u64, 0u64), |(a, b), (c, d)| {
                (a.saturating_add(c), b.saturating_add(d))
            });
        let (through_records, through_bytes) = self.flushed_through();
        // Durable first: a later reading of appended is never smaller.
        let durable_records = through_records
            .load(Ordering::Acquire)
            .saturating_add(released_records);
        let durable_bytes = through_bytes
            .load(Ordering::Acquire)
            .saturating_add(released_bytes);
        let (appended_records, appended_bytes) = self.appended();
        (
            appended_records
                .load(Ordering::Acquire)
                .saturating_sub(durable_records),
            appended_bytes
                .load(Ordering::Acquire)
                .saturating_sub(durable_bytes),
        )
    }

    /// Records appended and not yet made durable.
    #[must_use]
    pub fn pending_records(&self) -> u64 {
        self.pending().0
    }

    /// Bytes appended and not yet made durable.
    #[must_use]
    pub fn pending_bytes(&self) -> u64 {
        self.pending().1
    }

    /// Time spent in successful flushes, added up.
    #[must_use]
    pub fn total_flush_time(&self) -> Duration {
        Duration::from_nanos(self.sum(|s| s.flush_time_ns))
    }

    /// The longest successful flush; `None` before the first.
    #[must_use]
    pub fn longest_flush(&self) -> Option<Duration> {
        let (longest, successful) = self
            .stripes
            .iter()
            .map(|s| {
                let g = lock(&s.0);
                (g.longest_ns, g.successful)
            })
            .fold((0u64, 0u64), |(a, b), (c, d)| (a.max(c), b + d));
        (successful > 0).then(|| Duration::from_nanos(longest))
    }

    /// The shortest successful flush; `None` before the first.
    #[must_use]
    pub fn shortest_flush(&self) -> Option<Duration> {
        self.stripes
            .iter()
            .filter_map(|s| lock(&s.0).shortest_ns)
            .min()
            .map(Duration::from_nanos)
    }

    /// Mean latency of successful flushes in microseconds; 0 before the first.
    #[must_use]
    pub fn average_flush_latency_us(&self) -> f64 {
        let (ns, n) = self
            .stripes
            .iter()
            .map(|s| {
                let g = lock(&s.0);
                (g.flush_time_ns, g.successful)
            })
            .fold((0u64, 0u64), |(a, b), (c, d)| (a.saturating_add(c), b + d));
        average_us(ns, n)
    }

    /// Successful flushes as a fraction of all flushes, in `[0, 1]`; 1 when
    /// none has been recorded (none has failed).
    #[must_use]
    pub fn flush_success_rate(&self) -> f64 {
        let (ok, total) = self
            .stripes
            .iter()
            .map(|s| {
                let g = lock(&s.0);
                (g.successful, g.total)
            })
            .fold((0u64, 0u64), |(a, b), (c, d)| (a + c, b + d));
        success_rate(ok, total)
    }

    /// Mean payload-and-header bytes per flushed record; 0 before the first.
    #[must_use]
    pub fn average_record_size(&self) -> f64 {
        let (records, bytes) = (self.records_flushed(), self.bytes_flushed());
        ratio(bytes, records)
    }

    fn merged(&self, pick: fn(&Stripe) -> &Histogram<u64>) -> Histogram<u64> {
        let mut iter = self.stripes.iter();
        let Some(first) = iter.next() else {
            return histogram(MAX_TRACKED_PER_FLUSH, PER_FLUSH_DIGITS);
        };
        let mut acc = pick(&lock(&first.0)).clone();
        for s in iter {
            let _ = acc.add(pick(&lock(&s.0)));
        }
        acc
    }

    /// Flush latency in microseconds at percentile `p` (`50.0` for P50,
    /// `99.9` for P99.9) over all successful flushes. `p` is clamped to
    /// `0..=100` (NaN counts as 0); 0 before the first flush. Exact up to
    /// 2048 µs, within 0.1 % above; never smaller than the true value.
    #[must_use]
    pub fn get_flush_latency_percentile(&self, p: f64) -> u64 {
        percentile(&self.merged(|s| &s.latency_us), p)
    }

    /// Records per successful flush at percentile `p`, as
    /// [`get_flush_latency_percentile`](Self::get_flush_latency_percentile)
    /// but exact only up to 256 and within 1 % above.
    #[must_use]
    pub fn get_records_per_flush_percentile(&self, p: f64) -> u64 {
        percentile(&self.merged(|s| &s.records_per_flush), p)
    }

    /// Bytes per successful flush at percentile `p`, as
    /// [`get_flush_latency_percentile`](Self::get_flush_latency_percentile)
    /// but exact only up to 256 and within 1 % above.
    #[must_use]
    pub fn get_bytes_per_flush_percentile(&self, p: f64) -> u64 {
        percentile(&self.merged(|s| &s.bytes_per_flush), p)
    }

    /// (records/s, bytes/s) made durable over the last [`THROUGHPUT_WINDOW`]
    /// (less right after creation).
    fn rates(&self) -> (f64, f64) {
        let now = duration_to_nanos(self.clock.now());
        let current = now / SLOT_NANOS;
        let (records, bytes) = self
            .stripes
            .iter()
            .map(|s| lock(&s.0).window_sum(current))
            .fold((0u64, 0u64), |(a, b), (c, d)| {
                (a.saturating_add(c), b.saturating_add(d))
            });
        let window_start = current.saturating_sub(WINDOW_SLOTS as u64 - 1) * SLOT_NANOS;
        let span = now.saturating_sub(window_start.max(self.created_ns));
        if span == 0 {
            return (0.0, 0.0);
        }
        let secs = span as f64 / 1e9;
        (records as f64 / secs, bytes as f64 / secs)
    }

    /// Records made durable per second over the recent window
    /// ([`THROUGHPUT_WINDOW`], in slots of a tenth of it: the current
    /// partial slot and the nine before it). Flushes older than that no
    /// longer count, so the rate falls to 0 when flushing stops.
    #[must_use]
    pub fn current_records_per_second(&self) -> f64 {
        self.rates().0
    }

    /// Bytes made durable per second over the recent window, as
    /// [`current_records_per_second`](Self::current_records_per_second).
    #[must_use]
    pub fn current_bytes_per_second(&self) -> f64 {
        self.rates().1
    }

    /// A consistent-per-stripe copy of every metric, for export.
    #[must_use]
    pub fn snapshot(&self) -> FlushMetricsSnapshot {
        let t = self.totals();
        let (records_per_second, bytes_per_second) = self.rates();
        let (pending_records, pending_bytes) = self.pending();
        FlushMetricsSnapshot {
            total_flushes: t.total,
            successful_flushes: t.successful,
            failed_flushes: t.failed,
            forced_flushes: t.by_kind[FlushKind::Forced.index()],
            periodic_flushes: t.by_kind[FlushKind::Periodic.index()],
            batched_flushes: t.by_kind[FlushKind::Batched.index()],
            records_flushed: t.records,
            bytes_flushed: t.bytes,
            pending_records,
            pending_bytes,
            total_flush_time_ns: t.flush_time_ns,
            longest_flush_ns: (t.successful > 0).then_some(t.longest_ns),
            shortest_flush_ns: t.shortest_ns,
            average_flush_latency_us: average_us(t.flush_time_ns, t.successful),
            flush_success_rate: success_rate(t.successful, t.total),
            flush_latency_us: Percentiles::of(&t.latency_us),
            records_per_flush: Percentiles::of(&t.records_per_flush),
            bytes_per_flush: Percentiles::of(&t.bytes_per_flush),
            records_per_second,
            bytes_per_second,
            average_record_size: ratio(t.bytes, t.records),
        }
    }
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 { 0.0 } else { num as f64 / den as f64 }
}

fn average_us(total_ns: u64, n: u64) -> f64 {
    ratio(total_ns, n) / 1_000.0
}

fn success_rate(ok: u64, total: u64) -> f64 {
    if total == 0 { 1.0 } else { ok as f64 / total as f64 }
}

fn percentile(h: &Histogram<u64>, p: f64) -> u64 {
    let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 100.0) };
    if h.is_empty() {
        return 0;
    }
    h.value_at_quantile(p / 100.0)
}

/// Selected percentiles of one histogram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 95th percentile.
    pub p95: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest recorded value.
    pub max: u64,
}

impl Percentiles {
    /// The percentiles reported, as (label for a Prometheus `quantile`, percentile).
    pub const QUANTILES: [(&'static str, f64); 5] = [
        ("0.5", 50.0),
        ("0.9", 90.0),
        ("0.95", 95.0),
        ("0.99", 99.0),
        ("0.999", 99.9),
    ];

    fn of(h: &Histogram<u64>) -> Self {
        Self {
            p50: percentile(h, 50.0),
            p90: percentile(h, 90.0),
            p95: percentile(h, 95.0),
            p99: percentile(h, 99.0),
            p999: percentile(h, 99.9),
            max: if h.is_empty() { 0 } else { h.max() },
        }
    }

    /// The values in the order of [`Percentiles::QUANTILES`].
    #[must_use]
    pub fn values(&self) -> [u64; 5] {
        [self.p50, self.p90, self.p95, self.p99, self.p999]
    }
}

/// Every flush metric at one moment, for export (JSON through serde, or
/// Prometheus text through [`crate::render_prometheus`]).
///
/// Counters and timings are as described on [`FlushControllerMetrics`];
/// each stripe is read under its lock, so per-stripe counters agree with
/// each other (e.g. `total = successful + failed` always holds).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FlushMetricsSnapshot {
    /// Flushes recorded, successful or not.
    pub total_flushes: u64,
    /// Flushes that made their data durable.
    pub successful_flushes: u64,
    /// Flushes that failed.
    pub failed_flushes: u64,
    /// Flushes of kind [`FlushKind::Forced`], successful or not.
    pub forced_flushes: u64,
    /// Flushes of kind [`FlushKind::Periodic`], successful or not.
    pub periodic_flushes: u64,
    /// Flushes of kind [`FlushKind::Batched`], successful or not.
    pub batched_flushes: u64,
    /// Records made durable.
    pub records_flushed: u64,
    /// Bytes made durable.
    pub bytes_flushed: u64,
    /// Records appended and not yet durable.
    pub pending_records: u64,
    /// Bytes appended and not yet durable.
    pub pending_bytes: u64,
    /// Time spent in successful flushes, in nanoseconds.
    pub total_flush_time_ns: u64,
    /// Longest successful flush in nanoseconds; `None` before the first.
    pub longest_flush_ns: Option<u64>,
    /// Shortest successful flush in nanoseconds; `None` before the first.
    pub shortest_flush_ns: Option<u64>,
    /// Mean successful flush latency in microseconds.
    pub average_flush_latency_us: f64,
    /// Successful flushes as a fraction of all; 1 when there were none.
    pub flush_success_rate: f64,
    /// Percentiles of successful flush latency, in microseconds.
    pub flush_latency_us: Percentiles,
    /// Percentiles of records per successful flush.
    pub records_per_flush: Percentiles,
    /// Percentiles of bytes per successful flush.
    pub bytes_per_flush: Percentiles,
    /// Records made durable per second over the last [`THROUGHPUT_WINDOW`].
    pub records_per_second: f64,
    /// Bytes made durable per second over the last [`THROUGHPUT_WINDOW`].
    pub bytes_per_second: f64,
    /// Mean bytes per flushed record.
    pub average_record_size: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_bounds_are_accepted() {
        for (max, digits) in [
            (MAX_TRACKED_LATENCY_US, LATENCY_DIGITS),
            (MAX_TRACKED_PER_FLUSH, PER_FLUSH_DIGITS),
        ] {
            assert!(Histogram::<u64>::new_with_bounds(1, max, digits).is_ok());
        }
    }

    #[test]
    fn out_of_range_values_saturate_instead_of_failing() {
        let m = FlushControllerMetrics::new();
        m.record_flush(FlushKind::Forced, u64::MAX, u64::MAX, Duration::MAX, true);
        assert_eq!(m.successful_flushes(), 1);
        assert!(m.get_flush_latency_percentile(100.0) >= MAX_TRACKED_LATENCY_US);
        assert!(m.get_records_per_flush_percentile(50.0) >= MAX_TRACKED_PER_FLUSH);
    }

    #[test]
    fn percentile_argument_is_clamped() {
        let m = FlushControllerMetrics::new();
        assert_eq!(m.get_flush_latency_percentile(50.0), 0, "empty");
        for us in [10, 20, 30] {
            m.record_flush(FlushKind::Forced, 1, 1, Duration::from_micros(us), true);
        }
        assert_eq!(m.get_flush_latency_percentile(f64::NAN), 10);
        assert_eq!(m.get_flush_latency_percentile(-5.0), 10);
        assert_eq!(m.get_flush_latency_percentile(500.0), 30);
        assert_eq!(m.get_flush_latency_percentile(f64::INFINITY), 30);
    }
}
