//! The finalized segments the engine knows, and the reader-aware cache of
//! open (mapped) ones: [`SegmentCache`] and [`SegmentSlot`].
//!
//! # Invariants
//!
//! * The map holds every finalized segment with a local file, by base id;
//!   segments are contiguous, so the first one's base id is the log's first id.
//! * At most `segment_cache_size` segments are open, except while readers pin
//!   more: a segment a reader is positioned in (`pins > 0`) is never closed
//!   and its file never deleted. Eviction closes the least recently used
//!   unpinned segment.
//! * A segment removed from the log is *doomed*: it leaves the map at once,
//!   and its file is deleted when its last pin drops ([`SegmentCache::reap`]).
//!   An archived segment replaces its local slot the same way: the local
//!   file goes once no reader is positioned in it.
//! * The map also holds archived segments (slots with `archived` set), read
//!   through [`crate::archive_cache`]; the local finalized segments in it
//!   (those waiting for archival) are counted for backpressure.

use crate::archive_cache::ArchivedSegment;
use crate::fs::FileSystem;
use crate::layout::{path_in, segment_file_name};
use crate::locks::{lock, read, write};
use crate::metrics::Counters;
use crate::segment::FinalizedSegment;
use aof_record::{AofResult, SegmentEntry};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// A finalized (or archived-with-local-copy) segment known to the engine.
#[derive(Debug)]
pub(crate) struct SegmentSlot {
    pub(crate) base_id: u64,
    pub(crate) last_id: u64,
    pub(crate) record_count: u64,
    pub(crate) path: PathBuf,
    /// Bytes of the segment file.
    pub(crate) size: u64,
    /// Set for an archived segment: no local file at `path`, read from the archive.
    pub(crate) archived: Option<Arc<ArchivedSegment>>,
    open: Mutex<Option<Arc<FinalizedSegment>>>,
    /// Readers positioned in this segment; a pinned segment is never evicted or deleted.
    pub(crate) pins: Arc<AtomicUsize>,
    last_used: AtomicU64,
    /// Removed from the log; its file goes once no reader is positioned in it.
    pub(crate) doomed: AtomicBool,
    /// Replaced by a rewritten file at the same path (`truncate_after`): readers must look again.
    pub(crate) replaced: AtomicBool,
}

impl SegmentSlot {
    /// The slot of the finalized segment `entry` of the log in `dir`.
    pub(crate) fn for_entry(dir: &Path, entry: &SegmentEntry) -> Self {
        let name = entry
            .local_path
            .clone()
            .unwrap_or_else(|| segment_file_name(entry.base_id));
        Self::new(
            entry.base_id,
            entry.last_id,
            entry.record_count,
            path_in(dir, &name),
            entry.original_size,
        )
    }

    /// The slot of the finalized segment at `path` (`size` bytes) holding
    /// `record_count` records from `base_id` through `last_id`.
    pub(crate) fn new(base_id: u64, last_id: u64, record_count: u64, path: PathBuf, size: u64) -> Self {
        Self {
            base_id,
            last_id,
            record_count,
            path,
            size,
            archived: None,
            open: Mutex::new(None),
            pins: Arc::new(AtomicUsize::new(0)),
            last_used: AtomicU64::new(0),
            doomed: AtomicBool::new(false),
            replaced: AtomicBool::new(false),
        }
    }

    /// The slot of the archived segment `entry` (`ArchivedRemote`): no local
    /// file, read from the archive.
    pub(crate) fn for_archived(dir: &Path, entry: &SegmentEntry) -> AofResult<Self> {
        let pins = Arc::new(AtomicUsize::new(0));
        let archived = ArchivedSegment::for_entry(entry, pins.clone())?;
        Ok(Self {
            base_id: entry.base_id,
            last_id: entry.last_id,
            record_count: entry.record_count,
            path: path_in(dir, &crate::layout::archive_cache_name(entry.base_id)),
            size: entry.original_size,
            archived: Some(Arc::new(archived)),
            open: Mutex::new(None),
            pins,
            last_used: AtomicU64::new(0),
            doomed: AtomicBool::new(false),
            replaced: AtomicBool::new(false),
        })
    }

    /// Whether the segment waits for archival: finalized with a local file.
    fn is_local(&self) -> bool {
        self.archived.is_none()
    }

    /// Whether the slot holds record `id`.
    pub(crate) fn holds(&self, id: u64) -> bool {
        self.record_count > 0 && self.base_id <= id && id <= self.last_id
    }

    /// Drops one pin; true if it was the last on a doomed segment (whose
    /// file can now go).
    pub(crate) fn unpin(&self) -> bool {
        self.pins.fetch_sub(1, Ordering::AcqRel) == 1 && self.doomed.load(Ordering::Acquire)
    }
}

/// Finalized segments by base id, the open ones, and the doomed ones.
#[derive(Debug)]
pub(crate) struct SegmentCache {
    segments: RwLock<BTreeMap<u64, Arc<SegmentSlot>>>,
    /// Slots whose segment is open (mapped), bounded by `capacity`.
    open_set: Mutex<Vec<Arc<SegmentSlot>>>,
    capacity: usize,
    tick: AtomicU64,
    /// Removed segments whose files wait for their last reader to leave.
    doomed: Mutex<Vec<Arc<SegmentSlot>>>,
    /// Local (not archived) segments in the map, and their bytes.
    local: Mutex<(u64, u64)>,
}

impl SegmentCache {
    /// A cache of `slots`, keeping at most `capacity` segments open.
    pub(crate) fn new(slots: Vec<SegmentSlot>, capacity: usize) -> Self {
        let local = slots
            .iter()
            .filter(|s| s.is_local())
            .fold((0, 0), |(n, b), s| (n + 1, b + s.size));
        Self {
            segments: RwLock::new(slots.into_iter().map(|s| (s.base_id, Arc::new(s))).collect()),
            open_set: Mutex::new(Vec::new()),
            capacity,
            tick: AtomicU64::new(0),
            doomed: Mutex::new(Vec::new()),
            local: Mutex::new(local),
        }
    }

    /// Local finalized segments (waiting for archival) and their bytes.
    pub(crate) fn local(&self) -> (u64, u64) {
        *lock(&self.local)
    }

    fn count(&self, slot: &SegmentSlot, added: bool) {
        if slot.is_local() {
            let mut l = lock(&self.local);
            if added {
                *l = (l.0 + 1, l.1 + slot.size);
            } else {
                *l = (l.0.saturating_sub(1), l.1.saturating_sub(slot.size));
            }
        }
    }

    /// Puts `slot` in place of the slot with its base id (an archived
    /// segment replacing its local one); returns the slot replaced.
    pub(crate) fn replace(&self, slot: SegmentSlot) -> Option<Arc<SegmentSlot>> {
        self.count(&slot, true);
        let old = write(&self.segments).insert(slot.base_id, Arc::new(slot));
        if let Some(o) = &old {
            self.count(o, false);
        }
        old
    }

    /// Base id of the first finalized segment.
    pub(crate) fn first_base(&self) -> Option<u64> {
        read(&self.segments).keys().next().copied()
    }

    /// Every slot, in id order.
    pub(crate) fn all(&self) -> Vec<Arc<SegmentSlot>> {
        read(&self.segments).values().cloned().collect()
    }

    /// The finalized segment holding `id`.
    pub(crate) fn find(&self, id: u64) -> Option<Arc<SegmentSlot>> {
        let segs = read(&self.segments);
        segs.range(..=id)
            .next_back()
            .map(|(_, s)| s)
            .filter(|s| s.holds(id))
            .cloned()
    }

    /// The finalized segment holding `id`, pinned under the map's read lock,
    /// so that a removal (which takes the write lock) cannot slip in between.
    pub(crate) fn find_pinned(&self, id: u64) -> Option<Arc<SegmentSlot>> {
        let segs = read(&self.segments);
        let found = segs
            .range(..=id)
            .next_back()
            .map(|(_, s)| s)
            .filter(|s| s.holds(id))
            .cloned();
        if let Some(s) = &found {
            s.pins.fetch_add(1, Ordering::AcqRel);
        }
        found
    }

    /// Adds a newly finalized segment.
    pub(crate) fn insert(&self, slot: SegmentSlot) {
        if let Some(old) = self.replace(slot) {
            // Never happens (a new segment's base id is new); keep the count right.
            log::warn!("segment {} was already in the cache", old.base_id);
        }
    }

    /// Takes the first segment out of the map if `pred` says so, marking it
    /// doomed and raising `first_id` past it under the map's lock.
    pub(crate) fn pop_first_if(
        &self,
        pred: &dyn Fn(&SegmentSlot) -> bool,
        first_id: &AtomicU64,
    ) -> Option<Arc<SegmentSlot>> {
        let mut segs = write(&self.segments);
        let (&base, slot) = segs.iter().next()?;
        if !pred(slot) {
            return None;
        }
        let slot = slot.clone();
        segs.remove(&base);
        self.count(&slot, false);
        slot.doomed.store(true, Ordering::Release);
        // Segments are contiguous: the next one starts right after.
        first_id.fetch_max(slot.last_id + 1, Ordering::AcqRel);
        Some(slot)
    }

    /// Takes every segment from `base` on out of the map, in id order.
    pub(crate) fn split_off(&self, base: u64) -> Vec<Arc<SegmentSlot>> {
        let gone: Vec<_> = write(&self.segments).split_off(&base).into_values().collect();
        for s in &gone {
            self.count(s, false);
        }
        gone
    }

    /// The open (mapped) segment of `slot`. Opening one more than the
    /// capacity closes the least recently used segment that no reader is
    /// positioned in (readers holding its `Arc` finish undisturbed).
    pub(crate) fn open(
        &self,
        slot: &Arc<SegmentSlot>,
        fs: &dyn FileSystem,
        counters: &Counters,
    ) -> AofResult<Arc<FinalizedSegment>> {
        slot.last_used
            .store(self.tick.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        let mut open = lock(&slot.open);
        if let Some(seg) = open.as_ref() {
            Counters::add(&counters.cache_hits, 1);
            return Ok(seg.clone());
        }
        Counters::add(&counters.cache_misses, 1);
        let seg = Arc::new(FinalizedSegment::open(fs, &slot.path, slot.base_id)?);
        *open = Some(seg.clone());
        drop(open);
        let mut set = lock(&self.open_set);
        set.push(slot.clone());
        while set.len() > self.capacity {
            let victim = set
                .iter()
                .enumerate()
                .filter(|(_, s)| !Arc::ptr_eq(s, slot) && s.pins.load(Ordering::Acquire) == 0)
                .min_by_key(|(_, s)| s.last_used.load(Ordering::Relaxed))
                .map(|(i, _)| i);
            let Some(i) = victim else { break };
            let v = set.swap_remove(i);
            *lock(&v.open) = None;
            Counters::add(&counters.cache_evictions, 1);
        }
        Ok(seg)
    }

    /// Marks `slot` removed from the log: closed now, its file deleted by
    /// [`SegmentCache::reap`] once no reader is positioned in it.
    pub(crate) fn doom(&self, slot: Arc<SegmentSlot>) {
        slot.doomed.store(true, Ordering::Release);
        lock(&self.open_set).retain(|s| !Arc::ptr_eq(s, &slot));
        *lock(&slot.open) = None;
        lock(&self.doomed).push(slot);
    }

    /// Deletes the files of doomed segments that no reader is positioned in,
    /// then syncs `dir`. Failures are logged: recovery retries them.
    pub(crate) fn reap(&self, fs: &dyn FileSystem, dir: &Path) {
        let ready: Vec<Arc<SegmentSlot>> = {
            let mut d = lock(&self.doomed);
            let (ready, waiting): (Vec<_>, Vec<_>) =
                d.drain(..).partition(|s| s.pins.load(Ordering::Acquire) == 0);
            *d = waiting;
            ready
        };
        if ready.is_empty() {
            return;
        }
        for slot in &ready {
            if slot.replaced.load(Ordering::Acquire) {
                continue; // its path now holds the rewritten segment
            }
            if let Some(a) = &slot.archived {
                // An archived segment's local data is only its cache file.
                a.drop_local();
                continue;
            }
            if let Err(e) = fs.remove_file(&slot.path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                log::warn!("removing {}: {e} (recovery will retry)", slot.path.display());
            }
        }
        if let Err(e) = fs.sync_dir(dir) {
            log::warn!("syncing {}: {e}", dir.display());
        }
    }
}
