//! Engine counters: [`EngineMetrics`] (live, read through accessors) and
//! [`PerformanceMetrics`] (a snapshot for export).
//!
//! Flush counts, latencies and their percentiles are the flush controller's
//! ([`aof_flush::FlushControllerMetrics`], through [`crate::Aof::flush_metrics`]).

use crate::locks::lock;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Counters of the engine's work since the log was opened.
///
/// Returned by [`crate::Aof::performance_metrics`]; every counter is read
/// with an accessor, and [`EngineMetrics::snapshot`] copies them all.
#[derive(Debug, Default)]
pub struct EngineMetrics {
    pub(crate) appends: AtomicU64,
    pub(crate) bytes_appended: AtomicU64,
    pub(crate) reads: AtomicU64,
    pub(crate) cache_hits: AtomicU64,
    pub(crate) cache_misses: AtomicU64,
    pub(crate) cache_evictions: AtomicU64,
    pub(crate) segments_created: AtomicU64,
    pub(crate) segments_finalized: AtomicU64,
    pub(crate) torn_tails_cut: AtomicU64,
    pub(crate) archive: std::sync::Arc<ArchiveMetrics>,
}

/// The engine's private name for its counters.
pub(crate) type Counters = EngineMetrics;

impl EngineMetrics {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// Records appended.
    #[must_use]
    pub fn total_appends(&self) -> u64 {
        self.appends.load(Relaxed)
    }

    /// Payload bytes appended.
    #[must_use]
    pub fn total_bytes_appended(&self) -> u64 {
        self.bytes_appended.load(Relaxed)
    }

    /// Records read (by id, and by readers and tails).
    #[must_use]
    pub fn total_reads(&self) -> u64 {
        self.reads.load(Relaxed)
    }

    /// Reads served by a finalized segment already open in the cache.
    #[must_use]
    pub fn cache_hits(&self) -> u64 {
        self.cache_hits.load(Relaxed)
    }

    /// Reads that had to open (map) a finalized segment.
    #[must_use]
    pub fn cache_misses(&self) -> u64 {
        self.cache_misses.load(Relaxed)
    }

    /// Finalized segments closed to keep the cache within its size.
    #[must_use]
    pub fn cache_evictions(&self) -> u64 {
        self.cache_evictions.load(Relaxed)
    }

    /// Hits over hits and misses; 0 before the first.
    #[must_use]
    pub fn cache_hit_rate(&self) -> f64 {
        let hits = self.cache_hits();
        let total = hits + self.cache_misses();
        if total == 0 {
            0.0
        } else {
            hits as f64 / total as f64
        }
    }

    /// Segment files created.
    #[must_use]
    pub fn segments_created(&self) -> u64 {
        self.segments_created.load(Relaxed)
    }

    /// Segments finalized.
    #[must_use]
    pub fn segments_finalized(&self) -> u64 {
        self.segments_finalized.load(Relaxed)
    }

    /// Segments archived.
    #[must_use]
    pub fn segments_archived(&self) -> u64 {
        self.archive.segments_archived()
    }

    /// Torn tails cut from the active segment during recovery.
    #[must_use]
    pub fn torn_tails_cut(&self) -> u64 {
        self.torn_tails_cut.load(Relaxed)
    }

    /// Archival and archived-read counters and latency histograms.
    #[must_use]
    pub fn archive(&self) -> &ArchiveMetrics {
        &self.archive
    }

    /// Every counter, copied.
    #[must_use]
    pub fn snapshot(&self) -> PerformanceMetrics {
        PerformanceMetrics {
            total_appends: self.total_appends(),
            total_bytes_appended: self.total_bytes_appended(),
            total_reads: self.total_reads(),
            cache_hits: self.cache_hits(),
            cache_misses: self.cache_misses(),
            cache_evictions: self.cache_evictions(),
            segments_created: self.segments_created(),
            segments_finalized: self.segments_finalized(),
            segments_archived: self.segments_archived(),
            torn_tails_cut: self.torn_tails_cut(),
        }
    }
}

/// A snapshot of the engine's counters since it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct PerformanceMetrics {
    /// Records appended.
    pub total_appends: u64,
    /// Payload bytes appended.
    pub total_bytes_appended: u64,
    /// Records read (by id, and by readers and tails).
    pub total_reads: u64,
    /// Reads served by a finalized segment already open in the cache.
    pub cache_hits: u64,
    /// Reads that had to open (map) a finalized segment.
    pub cache_misses: u64,
    /// Finalized segments closed to keep the cache within its size.
    pub cache_evictions: u64,
    /// Segment files created.
    pub segments_created: u64,
    /// Segments finalized.
    pub segments_finalized: u64,
    /// Segments archived.
    pub segments_archived: u64,
    /// Torn tails cut from the active segment during recovery.
    pub torn_tails_cut: u64,
}

/// Most latency an archive histogram tracks: 10 minutes, in µs.
const MAX_LATENCY_US: u64 = 600_000_000;

fn latency_histogram() -> Histogram<u64> {
    // Constant bounds `hdrhistogram` accepts (a unit test builds them).
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
        .unwrap_or_else(|e| unreachable!("constant histogram bounds rejected: {e}"))
}

/// Archival since the log was opened: segments archived, bytes uploaded
/// and fetched, the compression ratio, upload and fetch latencies (HDR
/// histograms), the archived-data cache, backpressure and failures.
///
/// Read with accessors, or as Prometheus text with
/// [`ArchiveMetrics::render_prometheus`].
#[derive(Debug)]
pub struct ArchiveMetrics {
    pub(crate) segments_archived: AtomicU64,
    pub(crate) bytes_uploaded: AtomicU64,
    pub(crate) bytes_archived_uncompressed: AtomicU64,
    pub(crate) bytes_fetched: AtomicU64,
    pub(crate) frames_fetched: AtomicU64,
    pub(crate) cache_hits: AtomicU64,
    pub(crate) cache_misses: AtomicU64,
    pub(crate) cache_evictions: AtomicU64,
    pub(crate) backpressure_events: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) objects_deleted: AtomicU64,
    upload_us: Mutex<Histogram<u64>>,
    fetch_us: Mutex<Histogram<u64>>,
}

impl Default for ArchiveMetrics {
    fn default() -> Self {
        Self {
            segments_archived: AtomicU64::new(0),
            bytes_uploaded: AtomicU64::new(0),
            bytes_archived_uncompressed: AtomicU64::new(0),
            bytes_fetched: AtomicU64::new(0),
            frames_fetched: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            cache_evictions: AtomicU64::new(0),
            backpressure_events: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            objects_deleted: AtomicU64::new(0),
            upload_us: Mutex::new(latency_histogram()),
            fetch_us: Mutex::new(latency_histogram()),
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_LATENCY_US)
}

/// Latency percentiles of one operation, in µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct LatencySummary {
    /// Operations recorded.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Largest.
    pub max_us: u64,
}

fn summary(h: &Histogram<u64>) -> LatencySummary {
    LatencySummary {
        count: h.len(),
        p50_us: h.value_at_quantile(0.5),
        p99_us: h.value_at_quantile(0.99),
        max_us: h.max(),
    }
}

impl ArchiveMetrics {
    pub(crate) fn record_upload(&self, took: Duration, compressed: u64, original: u64) {
        EngineMetrics::add(&self.segments_archived, 1);
        EngineMetrics::add(&self.bytes_uploaded, compressed);
        EngineMetrics::add(&self.bytes_archived_uncompressed, original);
        // A value within the bounds: recording cannot fail.
        let _ = lock(&self.upload_us).record(micros(took));
    }

    pub(crate) fn record_fetch(&self, took: Duration, bytes: u64) {
        EngineMetrics::add(&self.bytes_fetched, bytes);
        EngineMetrics::add(&self.frames_fetched, 1);
        let _ = lock(&self.fetch_us).record(micros(took));
    }

    /// Segments archived (uploaded, verified and committed).
    #[must_use]
    pub fn segments_archived(&self) -> u64 {
        self.segments_archived.load(Relaxed)
    }

    /// Object bytes uploaded.
    #[must_use]
    pub fn bytes_uploaded(&self) -> u64 {
        self.bytes_uploaded.load(Relaxed)
    }

    /// Compressed bytes fetched by reads of archived segments.
    #[must_use]
    pub fn bytes_fetched(&self) -> u64 {
        self.bytes_fetched.load(Relaxed)
    }

    /// Frames fetched by reads of archived segments (each one ranged read).
    #[must_use]
    pub fn frames_fetched(&self) -> u64 {
        self.frames_fetched.load(Relaxed)
    }

    /// Object bytes over segment bytes, over every segment archived; 0 before the first.
    #[must_use]
    pub fn compression_ratio(&self) -> f64 {
        let original = self.bytes_archived_uncompressed.load(Relaxed);
        if original == 0 {
            0.0
        } else {
            self.bytes_uploaded() as f64 / original as f64
        }
    }

    /// Reads of archived records served from fetched data.
    #[must_use]
    pub fn cache_hits(&self) -> u64 {
        self.cache_hits.load(Relaxed)
    }

    /// Reads of archived records that fetched a frame.
    #[must_use]
    pub fn cache_misses(&self) -> u64 {
        self.cache_misses.load(Relaxed)
    }

    /// Archived segments whose fetched data was dropped to keep the cache in its bounds.
    #[must_use]
    pub fn cache_evictions(&self) -> u64 {
        self.cache_evictions.load(Relaxed)
    }

    /// Appends refused or held back by backpressure.
    #[must_use]
    pub fn backpressure_events(&self) -> u64 {
        self.backpressure_events.load(Relaxed)
    }

    /// Archive operations that failed (each is retried).
    #[must_use]
    pub fn failures(&self) -> u64 {
        self.failures.load(Relaxed)
    }

    /// Archive objects deleted (retention, truncation, orphans).
    #[must_use]
    pub fn objects_deleted(&self) -> u64 {
        self.objects_deleted.load(Relaxed)
    }

    /// Upload latency (compress, store, verify, commit) percentiles.
    #[must_use]
    pub fn upload_latency(&self) -> LatencySummary {
        summary(&lock(&self.upload_us))
    }

    /// Frame fetch latency percentiles.
    #[must_use]
    pub fn fetch_latency(&self) -> LatencySummary {
        summary(&lock(&self.fetch_us))
    }

    /// Every metric as Prometheus text exposition format (0.0.4), names
    /// starting with `prefix` and `_` (e.g. `aof_archive`).
    ///
    /// ```
    /// let m = aof_core::EngineMetrics::default();
    /// let text = m.archive().render_prometheus("aof_archive");
    /// assert!(text.contains("aof_archive_segments_archived_total 0\n"));
    /// ```
    #[must_use]
    pub fn render_prometheus(&self, prefix: &str) -> String {
        let prefix: String = prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let mut out = String::with_capacity(2048);
        let mut counter = |name: &str, help: &str, kind: &str, v: String| {
            let _ = writeln!(out, "# HELP {prefix}_{name} {help}");
            let _ = writeln!(out, "# TYPE {prefix}_{name} {kind}");
            let _ = writeln!(out, "{prefix}_{name} {v}");
        };
        for (name, help, v) in [
            (
                "segments_archived_total",
                "Segments archived.",
                self.segments_archived(),
            ),
            (
                "bytes_uploaded_total",
                "Archive object bytes uploaded.",
                self.bytes_uploaded(),
            ),
            (
                "bytes_fetched_total",
                "Compressed bytes fetched by archived reads.",
                self.bytes_fetched(),
            ),
            (
                "frames_fetched_total",
                "Frames fetched by archived reads.",
                self.frames_fetched(),
            ),
            (
                "cache_hits_total",
                "Archived reads served from fetched data.",
                self.cache_hits(),
            ),
            (
                "cache_misses_total",
                "Archived reads that fetched a frame.",
                self.cache_misses(),
            ),
            (
                "cache_evictions_total",
                "Archived segments dropped from the cache.",
                self.cache_evictions(),
            ),
            (
                "backpressure_events_total",
                "Appends held back by backpressure.",
                self.backpressure_events(),
            ),
            (
                "failures_total",
                "Archive operations that failed.",
                self.failures(),
            ),
            (
                "objects_deleted_total",
                "Archive objects deleted.",
                self.objects_deleted(),
            ),
        ] {
            counter(name, help, "counter", v.to_string());
        }
        counter(
            "compression_ratio",
            "Object bytes over segment bytes archived.",
            "gauge",
            format!("{}", self.compression_ratio()),
        );
        for (name, help, h) in [
            (
                "upload_duration_seconds",
                "Time to archive one segment.",
                &self.upload_us,
            ),
            (
                "fetch_duration_seconds",
                "Time to fetch one frame.",
                &self.fetch_us,
            ),
        ] {
            let h = lock(h);
            let _ = writeln!(out, "# HELP {prefix}_{name} {help}");
            let _ = writeln!(out, "# TYPE {prefix}_{name} summary");
            for q in [0.5, 0.9, 0.99, 0.999] {
                let v = h.value_at_quantile(q) as f64 / 1e6;
                let _ = writeln!(out, "{prefix}_{name}{{quantile=\"{q}\"}} {v}");
            }
            let sum = h.mean() * h.len() as f64 / 1e6;
            let _ = writeln!(out, "{prefix}_{name}_sum {sum}");
            let _ = writeln!(out, "{prefix}_{name}_count {}", h.len());
        }
        out
    }
}
