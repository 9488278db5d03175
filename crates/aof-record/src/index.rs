//! The segment index: which segment holds which ids, and in what state.
//!
//! [`SegmentIndex`] is the contract every backend implements (SQLite, MDBX and
//! the in-memory [`MemorySegmentIndex`] here); the conformance suite in
//! [`crate::conformance::index`] checks it. The engine holds an
//! `Arc<dyn SegmentIndex>`: the index is off the hot append path. The checks
//! every backend runs before a change are in [`contract`].

pub mod contract;

use crate::entry::{InvalidEntry, SegmentEntry, SegmentStatus, TransitionError};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::Bound::{Excluded, Unbounded};
use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock};
use thiserror::Error;

/// Why an index operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum IndexError {
    /// An entry with this base id exists already.
    #[error("segment {base_id} is already in the index")]
    AlreadyExists {
        /// The segment.
        base_id: u64,
    },
    /// No entry has this base id.
    #[error("segment {base_id} is not in the index")]
    NotFound {
        /// The segment.
        base_id: u64,
    },
    /// The entry's ids overlap those of another entry.
    #[error("segment {base_id} overlaps segment {other_base_id}")]
    Overlap {
        /// The segment being written.
        base_id: u64,
        /// The segment it overlaps.
        other_base_id: u64,
    },
    /// The entry breaks an invariant of [`SegmentEntry`].
    #[error(transparent)]
    InvalidEntry(#[from] InvalidEntry),
    /// The status change is not a legal lifecycle move.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// The file at `path` is not an index of this kind.
    #[error("{path}: not a segment index ({reason})")]
    NotAnIndex {
        /// The file.
        path: PathBuf,
        /// What gave it away.
        reason: &'static str,
    },
    /// The index was written by a newer version of this code; it was not modified.
    #[error("index schema version {found} is newer than the supported {supported}; refusing to open")]
    UnsupportedSchemaVersion {
        /// Version found in the file.
        found: u64,
        /// Newest version this code knows.
        supported: u64,
    },
    /// A stored entry cannot be read back.
    #[error("segment {base_id}: stored field `{field}` is corrupt")]
    CorruptEntry {
        /// The segment, as far as it could be read.
        base_id: u64,
        /// The field that could not be decoded.
        field: &'static str,
    },
    /// Two indexes that should hold the same entries do not.
    #[error("index copy differs at segment {base_id}")]
    Mismatch {
        /// The first segment that differs.
        base_id: u64,
    },
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The storage engine behind the index failed.
    #[error("{backend} index: {source}")]
    Backend {
        /// Which backend: "sqlite", "mdbx", ….
        backend: &'static str,
        /// The engine's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

/// Shorthand for results of index operations.
pub type IndexResult<T> = Result<T, IndexError>;

/// Maps id ranges and timestamps to segments, persistently.
///
/// Every mutating method is atomic: it applies entirely or not at all. Its
/// effect is visible to every later call at once, and durable once
/// [`SegmentIndex::sync`] returns (a backend may make it durable sooner).
/// Lists come back ordered by `base_id`.
#[expect(
    clippy::len_without_is_empty,
    reason = "is_empty lives in SegmentIndexExt, so no implementor can get it wrong"
)]
pub trait SegmentIndex: Send + Sync + Debug + 'static {
    /// Adds a new entry; fails with `AlreadyExists`, `Overlap` or `InvalidEntry`
    /// and changes nothing if it cannot.
    fn add_entry(&self, entry: &SegmentEntry) -> IndexResult<()>;

    /// Adds many entries in one atomic step, with the checks of `add_entry`
    /// (entries in the batch are checked against each other too).
    fn add_entries(&self, entries: &[SegmentEntry]) -> IndexResult<()>;

    /// Replaces the entry with the same `base_id`; fails with `NotFound`,
    /// `Overlap`, `InvalidEntry` or, for an illegal status move, `Transition`.
    fn update_entry(&self, entry: &SegmentEntry) -> IndexResult<()>;

    /// Removes the entry with this base id, returning it (`None` if absent).
    fn remove_entry(&self, base_id: u64) -> IndexResult<Option<SegmentEntry>>;

    /// The entry with this base id, if any.
    fn get_entry(&self, base_id: u64) -> IndexResult<Option<SegmentEntry>>;

    /// The entry whose records include `id` (`base_id <= id <= last_id`, not
    /// empty), if any.
    fn find_segment_for_id(&self, id: u64) -> IndexResult<Option<SegmentEntry>>;

    /// Entries whose time span `created_at..=finalized_at` (open-ended while
    /// active) overlaps `start_us..=end_us`.
    fn find_segments_for_timestamp(&self, start_us: u64, end_us: u64) -> IndexResult<Vec<SegmentEntry>>;

    /// Every entry.
    fn get_all_segments(&self) -> IndexResult<Vec<SegmentEntry>>;

    /// Non-empty entries whose every record is below `id` (`last_id < id`).
    fn get_segments_before(&self, id: u64) -> IndexResult<Vec<SegmentEntry>>;

    /// The greatest `last_id` over non-empty entries; `None` if there is none.
    fn get_max_last_id(&self) -> IndexResult<Option<u64>>;

    /// The `Active` entry with the greatest base id, if any.
    fn get_active_segment(&self) -> IndexResult<Option<SegmentEntry>>;

    /// The `Finalized` entry with the greatest base id, if any.
    fn get_latest_finalized_segment(&self) -> IndexResult<Option<SegmentEntry>>;

    /// Up to `count` `Finalized` entries with the smallest base ids: the next to archive.
    fn get_segments_for_archiving(&self, count: usize) -> IndexResult<Vec<SegmentEntry>>;

    /// Sets an entry's status; fails with `NotFound`, or `Transition` for a
    /// move [`SegmentStatus::can_become`] refuses.
    fn update_segment_status(&self, base_id: u64, status: SegmentStatus) -> IndexResult<()>;

    /// Sets the last id (`None`: empty) and file size of an `Active` entry;
    /// fails with `NotFound`, or `Transition` if the entry is not active.
    fn update_segment_tail(&self, base_id: u64, last_id: Option<u64>, size: u64) -> IndexResult<()>;

    /// Makes every change made so far durable.
    fn sync(&self) -> IndexResult<()>;

    /// Number of entries.
    fn len(&self) -> IndexResult<usize>;

    /// Writes a consistent copy of the whole index, as of one moment, to a new
    /// file at `dest` that this backend can open; fails if `dest` exists.
    fn copy_to(&self, dest: &Path) -> IndexResult<()>;
}

/// Conveniences over [`SegmentIndex`], for every implementation.
pub trait SegmentIndexExt: SegmentIndex {
    /// Whether the index has no entry.
    fn is_empty(&self) -> IndexResult<bool> {
        Ok(self.len()? == 0)
    }
}

impl<T: SegmentIndex + ?Sized> SegmentIndexExt for T {}

/// Copies every entry of `from` into the empty index `to`, then reads both
/// back and compares them entry by entry.
///
/// Fails with `Mismatch` naming the smallest base id whose entry differs or
/// is in only one of the two (both lists are sorted by base id, so they are
/// compared by key, not by position: one extra entry is named itself).
pub fn copy_index(from: &dyn SegmentIndex, to: &dyn SegmentIndex) -> IndexResult<usize> {
    let entries = from.get_all_segments()?;
    to.add_entries(&entries)?;
    to.sync()?;
    let copied = to.get_all_segments()?;
    let (mut a, mut b) = (entries.iter().peekable(), copied.iter().peekable());
    loop {
        let base_id = match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some(x), Some(y)) if x.base_id == y.base_id => {
                if x != y {
                    x.base_id
                } else {
                    a.next();
                    b.next();
                    continue;
                }
            }
            (Some(x), Some(y)) => x.base_id.min(y.base_id),
            (Some(e), None) | (None, Some(e)) => e.base_id,
        };
        return Err(IndexError::Mismatch { base_id });
    }
    Ok(entries.len())
}

/// An in-memory [`SegmentIndex`] over a `BTreeMap`: the reference model the
/// persistent backends are checked against, and a test double.
///
/// [`SegmentIndex::copy_to`] writes the entries as JSON, which
/// [`MemorySegmentIndex::load`] reads back.
#[derive(Debug, Default)]
pub struct MemorySegmentIndex {
    entries: RwLock<BTreeMap<u64, SegmentEntry>>,
}

impl MemorySegmentIndex {
    /// An empty index.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An index holding the entries a [`SegmentIndex::copy_to`] wrote to `path`.
    pub fn load(path: &Path) -> IndexResult<Self> {
        let bytes = std::fs::read(path).map_err(|source| IndexError::Io {
            path: path.to_owned(),
            source,
        })?;
        let entries: Vec<SegmentEntry> =
            serde_json::from_slice(&bytes).map_err(|_| IndexError::NotAnIndex {
                path: path.to_owned(),
                reason: "not a JSON list of segment entries",
            })?;
        let index = Self::new();
        index.add_entries(&entries)?;
        Ok(index)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<u64, SegmentEntry>> {
        self.entries.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<u64, SegmentEntry>> {
        self.entries.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn check_insert(map: &BTreeMap<u64, SegmentEntry>, entry: &SegmentEntry) -> IndexResult<()> {
        let (prev, next) = Self::neighbours(map, entry.base_id);
        contract::check_add(entry, map.contains_key(&entry.base_id), prev, next)
    }

    /// The entries with the next smaller and the next greater base id.
    fn neighbours(
        map: &BTreeMap<u64, SegmentEntry>,
        base_id: u64,
    ) -> (Option<&SegmentEntry>, Option<&SegmentEntry>) {
        let prev = map.range(..base_id).next_back().map(|(_, e)| e);
        let next = map.range((Excluded(base_id), Unbounded)).next().map(|(_, e)| e);
        (prev, next)
    }
}

impl SegmentIndex for MemorySegmentIndex {
    fn add_entry(&self, entry: &SegmentEntry) -> IndexResult<()> {
        let mut map = self.write();
        Self::check_insert(&map, entry)?;
        map.insert(entry.base_id, entry.clone());
        Ok(())
    }

    fn add_entries(&self, entries: &[SegmentEntry]) -> IndexResult<()> {
        let mut map = self.write();
        let mut staged = map.clone();
        for entry in entries {
            Self::check_insert(&staged, entry)?;
            staged.insert(entry.base_id, entry.clone());
        }
        *map = staged;
        Ok(())
    }

    fn update_entry(&self, entry: &SegmentEntry) -> IndexResult<()> {
        let mut map = self.write();
        let (prev, next) = Self::neighbours(&map, entry.base_id);
        contract::check_update(entry, map.get(&entry.base_id), prev, next)?;
        map.insert(entry.base_id, entry.clone());
        Ok(())
    }

    fn remove_entry(&self, base_id: u64) -> IndexResult<Option<SegmentEntry>> {
        Ok(self.write().remove(&base_id))
    }

    fn get_entry(&self, base_id: u64) -> IndexResult<Option<SegmentEntry>> {
        Ok(self.read().get(&base_id).cloned())
    }

    fn find_segment_for_id(&self, id: u64) -> IndexResult<Option<SegmentEntry>> {
        Ok(self
            .read()
            .range(..=id)
            .next_back()
            .map(|(_, e)| e)
            .filter(|e| e.contains(id))
            .cloned())
    }

    fn find_segments_for_timestamp(&self, start_us: u64, end_us: u64) -> IndexResult<Vec<SegmentEntry>> {
        Ok(self
            .read()
            .values()
            .filter(|e| e.overlaps_time(start_us, end_us))
            .cloned()
            .collect())
    }

    fn get_all_segments(&self) -> IndexResult<Vec<SegmentEntry>> {
        Ok(self.read().values().cloned().collect())
    }

    fn get_segments_before(&self, id: u64) -> IndexResult<Vec<SegmentEntry>> {
        Ok(self
            .read()
            .range(..id)
            .map(|(_, e)| e)
            .filter(|e| !e.is_empty() && e.last_id < id)
            .cloned()
            .collect())
    }

    fn get_max_last_id(&self) -> IndexResult<Option<u64>> {
        Ok(self
            .read()
            .values()
            .filter(|e| !e.is_empty())
            .map(|e| e.last_id)
            .max())
    }

    fn get_active_segment(&self) -> IndexResult<Option<SegmentEntry>> {
        Ok(self
            .read()
            .values()
            .rev()
            .find(|e| e.status == SegmentStatus::Active)
            .cloned())
    }

    fn get_latest_finalized_segment(&self) -> IndexResult<Option<SegmentEntry>> {
        Ok(self
            .read()
            .values()
            .rev()
            .find(|e| e.status == SegmentStatus::Finalized)
            .cloned())
    }

    fn get_segments_for_archiving(&self, count: usize) -> IndexResult<Vec<SegmentEntry>> {
        Ok(self
            .read()
            .values()
            .filter(|e| e.status == SegmentStatus::Finalized)
            .take(count)
            .cloned()
            .collect())
    }

    fn update_segment_status(&self, base_id: u64, status: SegmentStatus) -> IndexResult<()> {
        let mut map = self.write();
        if let Some(updated) = contract::status_update(base_id, map.get(&base_id), status)? {
            map.insert(base_id, updated);
        }
        Ok(())
    }

    fn update_segment_tail(&self, base_id: u64, last_id: Option<u64>, size: u64) -> IndexResult<()> {
        let mut map = self.write();
        let (_, next) = Self::neighbours(&map, base_id);
        let updated = contract::tail_update(base_id, map.get(&base_id), last_id, size, next)?;
        map.insert(base_id, updated);
        Ok(())
    }

    fn sync(&self) -> IndexResult<()> {
        Ok(())
    }

    fn len(&self) -> IndexResult<usize> {
        Ok(self.read().len())
    }

    fn copy_to(&self, dest: &Path) -> IndexResult<()> {
        let entries = self.get_all_segments()?;
        let json = serde_json::to_vec(&entries).map_err(|e| IndexError::Backend {
            backend: "memory",
            source: Box::new(e),
        })?;
        let io = |source| IndexError::Io {
            path: dest.to_owned(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dest)
            .map_err(io)?;
        std::io::Write::write_all(&mut file, &json).map_err(io)?;
        file.sync_all().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_the_conformance_suite() {
        crate::conformance::index::run_all(&mut || Box::new(MemorySegmentIndex::new()));
    }

    #[test]
    fn copy_to_and_load() {
        let dir = tempfile::tempdir().unwrap();
        crate::conformance::index::copy_to_round_trips(&MemorySegmentIndex::new(), dir.path(), &|p| {
            Box::new(MemorySegmentIndex::load(p).unwrap())
        });
    }

    #[test]
    fn load_refuses_a_foreign_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, b"\x7fELF").unwrap();
        assert!(matches!(
            MemorySegmentIndex::load(&p),
            Err(IndexError::NotAnIndex { .. })
        ));
    }
}
