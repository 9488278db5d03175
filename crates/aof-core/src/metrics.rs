//! Engine counters: [`EngineMetrics`] (live, read through accessors) and
//! [`PerformanceMetrics`] (a snapshot for export).
//!
//! Flush counts, latencies and their percentiles are the flush controller's
//! ([`aof_flush::FlushControllerMetrics`], through [`crate::Aof::flush_metrics`]).

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
    pub(crate) segments_archived: AtomicU64,
    pub(crate) torn_tails_cut: AtomicU64,
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
        self.segments_archived.load(Relaxed)
    }

    /// Torn tails cut from the active segment during recovery.
    #[must_use]
    pub fn torn_tails_cut(&self) -> u64 {
        self.torn_tails_cut.load(Relaxed)
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
