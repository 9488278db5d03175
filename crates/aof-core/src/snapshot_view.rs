//! A consistent, pinned view of the log for snapshots: [`SnapshotView`].
//!
//! A view names a point of the log: every record with an id below
//! [`SnapshotView::next_id`] (all durable when the view was taken), and the
//! segment files holding them. It pins the finalized segments, as a reader
//! positioned in them does, so retention and `truncate_before` cannot delete
//! their files while the view lives; the active segment is named up to the
//! byte where its durable records end, and those bytes never change while
//! appends continue (appends only write after them; sealing adds the offset
//! table and footer after them).
//!
//! The one operation that may change bytes the view names is
//! `truncate_after` below its end: [`SnapshotView::is_intact`] tells whether
//! any truncation happened since the view was taken, so an exporter checks it
//! after reading everything and discards the result otherwise.

use crate::cache::SegmentSlot;
use crate::fs::{FileHandle, FileHandleExt, OpenMode};
use crate::layout::segment_file_name;
use crate::locks::lock;
use crate::shared::Shared;
use aof_record::{AofError, AofResult, LogId};
use bytes::Bytes;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// A point of the log and the segment files holding it, pinned until drop.
/// Created by [`crate::Aof::snapshot_view`].
pub struct SnapshotView {
    shared: Arc<Shared>,
    first_id: u64,
    next_id: u64,
    truncations: u64,
    segments: Vec<SnapshotSegment>,
}

impl fmt::Debug for SnapshotView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotView")
            .field("first_id", &self.first_id)
            .field("next_id", &self.next_id)
            .field("segments", &self.segments)
            .finish_non_exhaustive()
    }
}

/// One segment file of a [`SnapshotView`]: its bytes `0..len()` are part of
/// the snapshot.
#[derive(Debug)]
pub struct SnapshotSegment {
    base_id: u64,
    last_id: Option<u64>,
    len: u64,
    sealed: bool,
    path: PathBuf,
    source: Source,
}

#[derive(Debug)]
enum Source {
    /// A finalized segment, pinned (the pin is released when the view drops).
    Pinned(Arc<SegmentSlot>),
    /// The active segment's file, read up to `len`.
    Active(Arc<dyn FileHandle>),
}

impl SnapshotSegment {
    /// The id of its first record.
    #[must_use]
    pub fn base_id(&self) -> u64 {
        self.base_id
    }

    /// The id of its last record in the view; `None` for an active
    /// segment holding no durable record yet.
    #[must_use]
    pub fn last_id(&self) -> Option<u64> {
        self.last_id
    }

    /// Bytes of the file that belong to the view: the whole file for a
    /// finalized segment, the header and durable records for the active one.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no byte belongs to the view (never: a segment file holds at least its header).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the segment is finalized (sealed with its footer); the
    /// active segment is not.
    #[must_use]
    pub fn is_sealed(&self) -> bool {
        self.sealed
    }

    /// The segment's file name in a log directory.
    #[must_use]
    pub fn file_name(&self) -> String {
        segment_file_name(self.base_id)
    }

    /// Opens the segment's bytes for reading: a memory map of a finalized
    /// segment (zero-copy slices), a file handle on the active one.
    pub fn open(&self, view: &SnapshotView) -> AofResult<SegmentBytes> {
        match &self.source {
            Source::Pinned(_) => {
                let file = view
                    .shared
                    .fs
                    .open(&self.path, OpenMode::Read)
                    .map_err(|e| missing_or_io(self, e))?;
                let map = file.map().map_err(|e| AofError::io(&self.path, e))?;
                if (map.len() as u64) < self.len {
                    return Err(AofError::SegmentMismatch {
                        segment: self.base_id,
                        what: "segment file length while a snapshot reads it",
                        expected: self.len,
                        actual: map.len() as u64,
                    });
                }
                Ok(SegmentBytes {
                    path: self.path.clone(),
                    inner: Inner::Mapped(map.slice(..self.len as usize)),
                })
            }
            Source::Active(file) => Ok(SegmentBytes {
                path: self.path.clone(),
                inner: Inner::File(file.clone(), self.len),
            }),
        }
    }
}

fn missing_or_io(seg: &SnapshotSegment, e: std::io::Error) -> AofError {
    if e.kind() == std::io::ErrorKind::NotFound {
        AofError::MissingSegment {
            segment: seg.base_id,
            path: seg.path.clone(),
        }
    } else {
        AofError::io(&seg.path, e)
    }
}

/// The bytes of one [`SnapshotSegment`], opened for reading.
#[derive(Debug)]
pub struct SegmentBytes {
    path: PathBuf,
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Mapped(Bytes),
    File(Arc<dyn FileHandle>, u64),
}

impl SegmentBytes {
    /// `len` bytes from `offset` (both within the segment's length in the
    /// view): a slice of the map, or one read of the file.
    pub fn read(&self, offset: u64, len: usize) -> AofResult<Bytes> {
        let total = match &self.inner {
            Inner::Mapped(b) => b.len() as u64,
            Inner::File(_, len) => *len,
        };
        let end = offset.checked_add(len as u64).filter(|e| *e <= total);
        let Some(end) = end else {
            return Err(AofError::io(
                &self.path,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "read past the bytes a snapshot view holds",
                ),
            ));
        };
        match &self.inner {
            Inner::Mapped(b) => Ok(b.slice(offset as usize..end as usize)),
            Inner::File(file, _) => {
                let mut buf = vec![0u8; len];
                file.read_exact_at(&mut buf, offset)
                    .map_err(|e| AofError::io(&self.path, e))?;
                Ok(Bytes::from(buf))
            }
        }
    }
}

impl SnapshotView {
    /// Takes the view of the log in `shared`: under the writer lock, the
    /// durable end, the active segment's durable bytes, and a pin on every
    /// finalized segment.
    pub(crate) fn take(shared: &Arc<Shared>) -> AofResult<Self> {
        let w = lock(&shared.writer);
        // A segment still being sealed is among the finalized ones before
        // its records are published durable; the view copies finalized
        // segments whole, so it waits for the seal (see `seal.rs`).
        if !shared.read_only {
            shared.finish_sealing()?;
        }
        let next_id = shared.durable.next();
        let truncations = w.truncations;
        let mut segments = Vec::new();
        // Pinned under the segment map's lock one by one: retention may take
        // the first segments meanwhile (they are then not in the view, and
        // the view starts later); nothing else removes a finalized segment
        // without the writer lock, which is held.
        for slot in shared.cache.all() {
            let Some(pinned) = shared.cache.find_pinned(slot.base_id) else {
                continue;
            };
            if pinned.record_count == 0 || pinned.base_id >= next_id {
                release(shared, &pinned);
                continue;
            }
            segments.push(SnapshotSegment {
                base_id: pinned.base_id,
                last_id: Some(pinned.last_id),
                len: 0,
                sealed: true,
                path: pinned.path.clone(),
                source: Source::Pinned(pinned),
            });
        }
        let seg = &w.seg;
        let held = next_id.saturating_sub(seg.base_id);
        let len = usize::try_from(held)
            .ok()
            .and_then(|h| seg.offsets.get(h))
            .map_or(seg.written, |o| u64::from(*o));
        // The active segment, even with no durable record (its header says
        // where the log goes on); not when it has no file yet (a read-only
        // open of a log whose next segment was never created).
        let has_file = seg.file.len().map_err(|e| AofError::io(&seg.path, e))? >= len;
        if has_file {
            segments.push(SnapshotSegment {
                base_id: seg.base_id,
                last_id: (held > 0).then(|| next_id - 1),
                len,
                sealed: false,
                path: seg.path.clone(),
                source: Source::Active(seg.file.clone()),
            });
        }
        let active_base = seg.base_id;
        drop(w);
        let first_id = segments.first().map_or(active_base.min(next_id), |s| s.base_id);
        let mut view = Self {
            shared: shared.clone(),
            first_id,
            next_id,
            truncations,
            segments,
        };
        // The finalized segments' lengths: their files, pinned, stay put.
        for seg in &mut view.segments {
            if seg.sealed {
                let file = shared
                    .fs
                    .open(&seg.path, OpenMode::Read)
                    .map_err(|e| missing_or_io(seg, e))?;
                seg.len = file.len().map_err(|e| AofError::io(&seg.path, e))?;
            }
        }
        Ok(view)
    }

    /// The log's identity.
    #[must_use]
    pub fn log_id(&self) -> LogId {
        self.shared.manifest.log_id()
    }

    /// The first id the view holds (equal to [`SnapshotView::next_id`] when
    /// it holds none).
    #[must_use]
    pub fn first_id(&self) -> u64 {
        self.first_id
    }

    /// The view holds every id below this one (and from
    /// [`SnapshotView::first_id`] on): the durable end when it was taken.
    #[must_use]
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// The segment files, in id order; the last may be the active segment.
    #[must_use]
    pub fn segments(&self) -> &[SnapshotSegment] {
        &self.segments
    }

    /// Whether no `truncate_after` ran since the view was taken: only then
    /// are the bytes read through it guaranteed to be the view's.
    #[must_use]
    pub fn is_intact(&self) -> bool {
        lock(&self.shared.writer).truncations == self.truncations
    }
}

fn release(shared: &Shared, slot: &SegmentSlot) {
    if slot.unpin() {
        shared.reap_doomed();
    }
}

impl Drop for SnapshotView {
    fn drop(&mut self) {
        for seg in &self.segments {
            if let Source::Pinned(slot) = &seg.source {
                release(&self.shared, slot);
            }
        }
    }
}
