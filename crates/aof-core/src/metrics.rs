//! Engine counters: [`PerformanceMetrics`].

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters of the engine's work since open (private; read through a snapshot).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub appends: AtomicU64,
    pub bytes_appended: AtomicU64,
    pub reads: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub cache_evictions: AtomicU64,
    pub segments_created: AtomicU64,
    pub segments_finalized: AtomicU64,
    pub segments_archived: AtomicU64,
    pub torn_tails_cut: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> PerformanceMetrics {
        PerformanceMetrics {
            appends: self.appends.load(Relaxed),
            bytes_appended: self.bytes_appended.load(Relaxed),
            reads: self.reads.load(Relaxed),
            cache_hits: self.cache_hits.load(Relaxed),
            cache_misses: self.cache_misses.load(Relaxed),
            cache_evictions: self.cache_evictions.load(Relaxed),
            segments_created: self.segments_created.load(Relaxed),
            segments_finalized: self.segments_finalized.load(Relaxed),
            segments_archived: self.segments_archived.load(Relaxed),
            torn_tails_cut: self.torn_tails_cut.load(Relaxed),
        }
    }
}

/// A snapshot of the engine's counters since it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct PerformanceMetrics {
    /// Records appended.
    pub appends: u64,
    /// Payload bytes appended.
    pub bytes_appended: u64,
    /// Reads by id.
    pub reads: u64,
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
