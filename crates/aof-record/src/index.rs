//! The segment index: which segment holds which ids, and in what state.
//!
//! [`SegmentIndex`] is the contract every backend implements (SQLite, MDBX and
//! the in-memory [`MemorySegmentIndex`] here); the conformance suite in
//! [`crate::conformance::index`] checks it. The engine holds an
//! `Arc<dyn SegmentIndex>`: the index is off the hot append path. The checks
//! every backend runs before a change are in [`contract`].

pub mod contract;

use crate::entry::{InvalidEntry, SegmentEntry, SegmentStatus, TransitionError};
use crate::manifest::LogId;
use serde::{Deserialize, Serialize};
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
    /// The index already belongs to another log; it was not modified.
    #[error("the index belongs to log {current}, not to log {requested}")]
    IdentityAlreadySet {
        /// The identity stored in the index.
        current: LogId,
        /// The identity that was to be set.
        requested: LogId,
    },
    /// A copy of an index does not carry the source's log identity.
    #[error("index copy has log identity {to:?}, the source has {from:?}")]
    IdentityMismatch {
        /// The source's identity.
        from: Option<LogId>,
        /// The copy's identity.
        to: Option<LogId>,
    },
    /// A stored value that is not an entry (the log identity, say) cannot be read back.
    #[error("stored index metadata `{field}` is corrupt")]
    CorruptMetadata {
        /// What could not be decoded.
        field: &'static str,
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

    /// The identity of the log this index belongs to; `None` if none was
    /// ever set (a new index, or one written before identities existed).
    fn log_identity(&self) -> IndexResult<Option<LogId>>;

    /// Records that this index belongs to the log `id` (atomic and durable
    /// like any change); setting the identity already set changes nothing,
    /// and any other identity is refused with `IdentityAlreadySet`.
    fn set_log_identity(&self, id: LogId) -> IndexResult<()>;

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

/// Copies the log identity and every entry of `from` into the empty index
/// `to`, then reads both back and compares them.
///
/// The identity goes first, so a `to` that belongs to another log fails with
/// `IdentityAlreadySet` (or, when `from` has no identity, `IdentityMismatch`)
/// before any entry is written. Fails with `IdentityMismatch` if the copy's
/// identity reads back different, and with `Mismatch` naming the smallest
/// base id whose entry differs or is in only one of the two (both lists are
/// sorted by base id, so they are compared by key, not by position: one
/// extra entry is named itself).
pub fn copy_index(from: &dyn SegmentIndex, to: &dyn SegmentIndex) -> IndexResult<usize> {
    let identity = from.log_identity()?;
    match identity {
        Some(id) => to.set_log_identity(id)?,
        None => {
            if let Some(other) = to.log_identity()? {
                return Err(IndexError::IdentityMismatch {
                    from: None,
                    to: Some(other),
                });
            }
        }
    }
    let entries = from.get_all_segments()?;
    to.add_entries(&entries)?;
    to.sync()?;
    let copied_identity = to.log_identity()?;
    if copied_identity != identity {
        return Err(IndexError::IdentityMismatch {
            from: identity,
            to: copied_identity,
        });
    }
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
/// [`SegmentIndex::copy_to`] writes the index as JSON
/// ([`MemorySegmentIndex::to_json`]), which [`MemorySegmentIndex::load`]
/// reads back.
#[derive(Debug, Default)]
pub struct MemorySegmentIndex {
    state: RwLock<State>,
}

/// Everything the index holds, under one lock so a snapshot is consistent.
#[derive(Debug, Default)]
struct State {
    entries: BTreeMap<u64, SegmentEntry>,
    log_id: Option<LogId>,
}

/// The JSON form of a whole index. Before log identities existed it was a
/// bare list of entries, which [`MemorySegmentIndex::from_json`] still reads.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Snapshot {
    /// The log identity as [`LogId`]'s `Display` writes it (a JSON number
    /// would lose precision in most readers).
    log_id: Option<String>,
    entries: Vec<SegmentEntry>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StoredJson {
    Snapshot(Snapshot),
    Entries(Vec<SegmentEntry>),
}

impl MemorySegmentIndex {
    /// An empty index.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An index holding what a [`SegmentIndex::copy_to`] wrote to `path`.
    pub fn load(path: &Path) -> IndexResult<Self> {
        let bytes = std::fs::read(path).map_err(|source| IndexError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_json(&bytes, path)
    }

    /// The whole index, identity and entries as of one moment, as JSON:
    /// `{"log_id": "<32 hex digits>" or null, "entries": [...]}`.
    pub fn to_json(&self) -> IndexResult<Vec<u8>> {
        let snapshot = {
            let state = self.read();
            Snapshot {
                log_id: state.log_id.map(|id| id.to_string()),
                entries: state.entries.values().cloned().collect(),
            }
        };
        serde_json::to_vec(&snapshot).map_err(|e| IndexError::Backend {
            backend: "memory",
            source: Box::new(e),
        })
    }

    /// An index holding what [`MemorySegmentIndex::to_json`] wrote, or a
    /// bare JSON list of entries (the form before log identities). `path`
    /// names where the bytes came from in a `NotAnIndex` error; a log
    /// identity that is not 32 hex digits is `CorruptMetadata`.
    pub fn from_json(bytes: &[u8], path: &Path) -> IndexResult<Self> {
        let stored: StoredJson = serde_json::from_slice(bytes).map_err(|_| IndexError::NotAnIndex {
            path: path.to_owned(),
            reason: "not a JSON segment index",
        })?;
        let (log_id, entries) = match stored {
            StoredJson::Snapshot(s) => (s.log_id, s.entries),
            StoredJson::Entries(entries) => (None, entries),
        };
        let index = Self::new();
        if let Some(text) = log_id {
            let id = text
                .parse()
                .map_err(|_| IndexError::CorruptMetadata { field: "log_id" })?;
            index.set_log_identity(id)?;
        }
        index.add_entries(&entries)?;
        Ok(index)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
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
        let mut state = self.write();
        let map = &mut state.entries;
        Self::check_insert(map, entry)?;
        map.insert(entry.base_id, entry.clone());
        Ok(())
    }

    fn add_entries(&self, entries: &[SegmentEntry]) -> IndexResult<()> {
        let mut state = self.write();
        let map = &mut state.entries;
        let mut staged = map.clone();
        for entry in entries {
            Self::check_insert(&staged, entry)?;
            staged.insert(entry.base_id, entry.clone());
        }
        *map = staged;
        Ok(())
    }

    fn update_entry(&self, entry: &SegmentEntry) -> IndexResult<()> {
        let mut state = self.write();
        let map = &mut state.entries;
        let (prev, next) = Self::neighbours(map, entry.base_id);
        contract::check_update(entry, map.get(&entry.base_id), prev, next)?;
        map.insert(entry.base_id, entry.clone());
        Ok(())
    }

    fn remove_entry(&self, base_id: u64) -> IndexResult<Option<SegmentEntry>> {
        Ok(self.write().entries.remove(&base_id))
    }

    fn get_entry(&self, base_id: u64) -> IndexResult<Option<SegmentEntry>> {
        Ok(self.read().entries.get(&base_id).cloned())
    }

    fn find_segment_for_id(&self, id: u64) -> IndexResult<Option<SegmentEntry>> {
        Ok(self
            .read()
            .entries
            .range(..=id)
            .next_back()
            .map(|(_, e)| e)
            .filter(|e| e.contains(id))
            .cloned())
    }

    fn find_segments_for_timestamp(&self, start_us: u64, end_us: u64) -> IndexResult<Vec<SegmentEntry>> {
        Ok(self
            .read()
            .entries
            .values()
            .filter(|e| e.overlaps_time(start_us, end_us))
            .cloned()
            .collect())
    }

    fn get_all_segments(&self) -> IndexResult<Vec<SegmentEntry>> {
        Ok(self.read().entries.values().cloned().collect())
    }

    fn get_segments_before(&self, id: u64) -> IndexResult<Vec<SegmentEntry>> {
        Ok(self
            .read()
            .entries
            .range(..id)
            .map(|(_, e)| e)
            .filter(|e| !e.is_empty() && e.last_id < id)
            .cloned()
            .collect())
    }

    fn get_max_last_id(&self) -> IndexResult<Option<u64>> {
        Ok(self
            .read()
            .entries
            .values()
            .filter(|e| !e.is_empty())
            .map(|e| e.last_id)
            .max())
    }

    fn get_active_segment(&self) -> IndexResult<Option<SegmentEntry>> {
        Ok(self
            .read()
            .entries
            .values()
            .rev()
            .find(|e| e.status == SegmentStatus::Active)
            .cloned())
    }

    fn get_latest_finalized_segment(&self) -> IndexResult<Option<SegmentEntry>> {
        Ok(self
            .read()
            .entries
            .values()
            .rev()
            .find(|e| e.status == SegmentStatus::Finalized)
            .cloned())
    }

    fn get_segments_for_archiving(&self, count: usize) -> IndexResult<Vec<SegmentEntry>> {
        Ok(self
            .read()
            .entries
            .values()
            .filter(|e| e.status == SegmentStatus::Finalized)
            .take(count)
            .cloned()
            .collect())
    }

    fn update_segment_status(&self, base_id: u64, status: SegmentStatus) -> IndexResult<()> {
        let mut state = self.write();
        let map = &mut state.entries;
        if let Some(updated) = contract::status_update(base_id, map.get(&base_id), status)? {
            map.insert(base_id, updated);
        }
        Ok(())
    }

    fn update_segment_tail(&self, base_id: u64, last_id: Option<u64>, size: u64) -> IndexResult<()> {
        let mut state = self.write();
        let map = &mut state.entries;
        let (_, next) = Self::neighbours(map, base_id);
        let updated = contract::tail_update(base_id, map.get(&base_id), last_id, size, next)?;
        map.insert(base_id, updated);
        Ok(())
    }

    fn log_identity(&self) -> IndexResult<Option<LogId>> {
        Ok(self.read().log_id)
    }

    fn set_log_identity(&self, id: LogId) -> IndexResult<()> {
        let mut state = self.write();
        if contract::identity_update(state.log_id, id)? {
            state.log_id = Some(id);
        }
        Ok(())
    }

    fn sync(&self) -> IndexResult<()> {
        Ok(())
    }

    fn len(&self) -> IndexResult<usize> {
        Ok(self.read().entries.len())
    }

    fn copy_to(&self, dest: &Path) -> IndexResult<()> {
        let json = self.to_json()?;
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
    fn json_from_before_identities_loads_without_one() {
        let dir = tempfile::tempdir().unwrap();
        let entries = vec![crate::conformance::index::finalized(0, 9, 1, 2)];
        let p = dir.path().join("old");
        std::fs::write(&p, serde_json::to_vec(&entries).unwrap()).unwrap();
        let index = MemorySegmentIndex::load(&p).unwrap();
        assert_eq!(index.get_all_segments().unwrap(), entries);
        assert_eq!(index.log_identity().unwrap(), None);
    }

    #[test]
    fn json_with_a_bad_identity_is_corrupt_metadata() {
        let path = Path::new("x");
        for bad in ["\"12\"", "\"+0000000000000000000000000000000\"", "12"] {
            let json = format!(r#"{{"log_id": {bad}, "entries": []}}"#);
            match MemorySegmentIndex::from_json(json.as_bytes(), path) {
                Err(IndexError::CorruptMetadata { field: "log_id" }) if bad.starts_with('"') => {}
                Err(IndexError::NotAnIndex { .. }) if !bad.starts_with('"') => {}
                r => panic!("{json} gave {r:?}"),
            }
        }
        let good = format!(r#"{{"log_id": "{}", "entries": []}}"#, LogId(u128::MAX - 1));
        let index = MemorySegmentIndex::from_json(good.as_bytes(), path).unwrap();
        assert_eq!(index.log_identity().unwrap(), Some(LogId(u128::MAX - 1)));
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
