//! What the segment index knows about one segment: [`SegmentEntry`] and its
//! lifecycle, [`SegmentStatus`].
//!
//! ```text
//! Active ──finalize──▶ Finalized ──archive──▶ ArchivedRemote ◀──evict/cache──▶ ArchivedCached
//! ```
//!
//! Every other move is refused with [`TransitionError`]. A status may also be
//! "moved" to itself, so that replaying a step after a crash is harmless.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// Where a segment is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SegmentStatus {
    /// Being appended to. A log has at most one.
    Active,
    /// Sealed: complete, immutable and local.
    Finalized,
    /// In the archive, with a local copy kept for reads.
    ArchivedCached,
    /// In the archive only.
    ArchivedRemote,
}

impl SegmentStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [Self; 4] = [
        Self::Active,
        Self::Finalized,
        Self::ArchivedCached,
        Self::ArchivedRemote,
    ];

    /// The status's name as stored by the index backends.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Active => "Active",
            Self::Finalized => "Finalized",
            Self::ArchivedCached => "ArchivedCached",
            Self::ArchivedRemote => "ArchivedRemote",
        }
    }

    /// Whether a segment may move from `self` to `next`.
    #[must_use]
    pub const fn can_become(self, next: Self) -> bool {
        use SegmentStatus::*;
        matches!(
            (self, next),
            (Active, Active)
                | (Finalized, Finalized)
                | (ArchivedCached, ArchivedCached)
                | (ArchivedRemote, ArchivedRemote)
                | (Active, Finalized)
                | (Finalized, ArchivedRemote)
                | (ArchivedRemote, ArchivedCached)
                | (ArchivedCached, ArchivedRemote)
        )
    }

    /// Whether the segment's data is in the archive.
    #[must_use]
    pub const fn is_archived(self) -> bool {
        matches!(self, Self::ArchivedCached | Self::ArchivedRemote)
    }
}

impl fmt::Display for SegmentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored status name that is not one of [`SegmentStatus::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown segment status {name:?}")]
pub struct UnknownStatus {
    /// The name found.
    pub name: String,
}

impl FromStr for SegmentStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus { name: s.to_owned() })
    }
}

/// A refused lifecycle move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("segment {base_id}: cannot move from {from} to {to}")]
pub struct TransitionError {
    /// The segment.
    pub base_id: u64,
    /// Its current status.
    pub from: SegmentStatus,
    /// The status asked for.
    pub to: SegmentStatus,
}

/// An entry that breaks an invariant of [`SegmentEntry`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum InvalidEntry {
    /// `record_count` does not equal `last_id - base_id + 1` (or 0 with `last_id == base_id`).
    #[error("segment {base_id}: {record_count} records do not span ids {base_id}..={last_id}")]
    CountMismatch {
        /// The segment.
        base_id: u64,
        /// Its last id.
        last_id: u64,
        /// Its record count.
        record_count: u64,
    },
}

/// What the index stores about one segment; the fields of the SQLite schema.
///
/// Ids in a segment are contiguous: a non-empty segment holds exactly the ids
/// `base_id..=last_id`, and `record_count == last_id - base_id + 1`. An empty
/// segment has `record_count == 0` and `last_id == base_id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SegmentEntry {
    /// Id of the first record; the entry's key.
    pub base_id: u64,
    /// Id of the last record (equal to `base_id` while empty).
    pub last_id: u64,
    /// Records in the segment.
    pub record_count: u64,
    /// Lifecycle status.
    pub status: SegmentStatus,
    /// When the segment became active, µs since the Unix epoch. No record in
    /// it is older.
    pub created_at: u64,
    /// When it was finalized, µs since the Unix epoch. No record in it is newer.
    pub finalized_at: Option<u64>,
    /// When it was archived, µs since the Unix epoch.
    pub archived_at: Option<u64>,
    /// CRC-64/NVME of the segment file as finalized.
    pub uncompressed_checksum: Option<u64>,
    /// CRC-64/NVME of the archived (compressed) object.
    pub compressed_checksum: Option<u64>,
    /// Bytes of the segment file (for the active segment: as of the last tail update).
    pub original_size: u64,
    /// Bytes of the archived object.
    pub compressed_size: Option<u64>,
    /// Path of the local file, relative to the log directory.
    pub local_path: Option<String>,
    /// Key of the archived object.
    pub archive_key: Option<String>,
}

impl SegmentEntry {
    /// A new, empty active segment.
    #[must_use]
    pub fn new_active(base_id: u64, created_at: u64, local_path: impl Into<String>) -> Self {
        Self {
            base_id,
            last_id: base_id,
            record_count: 0,
            status: SegmentStatus::Active,
            created_at,
            finalized_at: None,
            archived_at: None,
            uncompressed_checksum: None,
            compressed_checksum: None,
            original_size: 0,
            compressed_size: None,
            local_path: Some(local_path.into()),
            archive_key: None,
        }
    }

    /// Whether the segment holds no record.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.record_count == 0
    }

    /// Whether `id` is one of the segment's records.
    #[must_use]
    pub const fn contains(&self, id: u64) -> bool {
        self.record_count > 0 && self.base_id <= id && id <= self.last_id
    }

    /// The id after the last record: where the next segment starts.
    #[must_use]
    pub const fn next_id(&self) -> u64 {
        self.base_id.saturating_add(self.record_count)
    }

    /// `compressed_size / original_size`, once archived.
    #[must_use]
    pub fn compression_ratio(&self) -> Option<f64> {
        let c = self.compressed_size?;
        (self.original_size > 0).then(|| c as f64 / self.original_size as f64)
    }

    /// Sets the tail of an active segment: its last id and file size.
    /// `last_id < base_id` means "empty".
    pub fn set_tail(&mut self, last_id: Option<u64>, size: u64) -> Result<(), TransitionError> {
        self.require(SegmentStatus::Active, SegmentStatus::Active)?;
        match last_id {
            Some(last) if last >= self.base_id => {
                self.last_id = last;
                self.record_count = last - self.base_id + 1;
            }
            _ => {
                self.last_id = self.base_id;
                self.record_count = 0;
            }
        }
        self.original_size = size;
        Ok(())
    }

    /// Seals an active segment.
    pub fn finalize(
        mut self,
        last_id: Option<u64>,
        size: u64,
        checksum: u64,
        finalized_at: u64,
    ) -> Result<Self, TransitionError> {
        self.set_tail(last_id, size)?;
        self.status = SegmentStatus::Finalized;
        self.finalized_at = Some(finalized_at.max(self.created_at));
        self.uncompressed_checksum = Some(checksum);
        Ok(self)
    }

    /// Records that a finalized segment is in the archive under `key`, and
    /// that its local file is gone.
    pub fn archive(
        mut self,
        key: impl Into<String>,
        compressed_size: u64,
        compressed_checksum: u64,
        archived_at: u64,
    ) -> Result<Self, TransitionError> {
        self.require(SegmentStatus::Finalized, SegmentStatus::ArchivedRemote)?;
        self.status = SegmentStatus::ArchivedRemote;
        self.archive_key = Some(key.into());
        self.compressed_size = Some(compressed_size);
        self.compressed_checksum = Some(compressed_checksum);
        self.archived_at = Some(archived_at);
        self.local_path = None;
        Ok(self)
    }

    /// Records that an archived segment has a local copy again at `local_path`.
    pub fn cache_locally(mut self, local_path: impl Into<String>) -> Result<Self, TransitionError> {
        self.require(SegmentStatus::ArchivedRemote, SegmentStatus::ArchivedCached)?;
        self.status = SegmentStatus::ArchivedCached;
        self.local_path = Some(local_path.into());
        Ok(self)
    }

    /// Records that the local copy of an archived segment was evicted.
    pub fn evict_local(mut self) -> Result<Self, TransitionError> {
        self.require(SegmentStatus::ArchivedCached, SegmentStatus::ArchivedRemote)?;
        self.status = SegmentStatus::ArchivedRemote;
        self.local_path = None;
        Ok(self)
    }

    fn require(&self, from: SegmentStatus, to: SegmentStatus) -> Result<(), TransitionError> {
        if self.status == from {
            Ok(())
        } else {
            Err(TransitionError {
                base_id: self.base_id,
                from: self.status,
                to,
            })
        }
    }

    /// Checks the entry's structural invariant: ids and record count agree.
    ///
    /// Fields that a status implies (`finalized_at`, `archive_key`, …) are set
    /// by the transition methods; an index stores what it is given and checks
    /// only this invariant and the legality of status moves.
    pub fn validate(&self) -> Result<(), InvalidEntry> {
        let count_ok = if self.record_count == 0 {
            self.last_id == self.base_id
        } else {
            self.last_id >= self.base_id && self.last_id - self.base_id == self.record_count - 1
        };
        if !count_ok {
            return Err(InvalidEntry::CountMismatch {
                base_id: self.base_id,
                last_id: self.last_id,
                record_count: self.record_count,
            });
        }
        Ok(())
    }

    /// Whether the segment's records may have timestamps in `start..=end`:
    /// its span `created_at..=finalized_at` (open-ended while active) overlaps.
    #[must_use]
    pub fn overlaps_time(&self, start: u64, end: u64) -> bool {
        let last = self.finalized_at.unwrap_or(u64::MAX);
        self.created_at <= end && start <= last
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn finalized() -> SegmentEntry {
        SegmentEntry::new_active(10, 100, "a.seg")
            .finalize(Some(19), 4096, 0xabc, 200)
            .unwrap()
    }

    #[test]
    fn the_lifecycle_round_trip() {
        let e = finalized();
        assert_eq!(
            (e.record_count, e.last_id, e.status),
            (10, 19, SegmentStatus::Finalized)
        );
        e.validate().unwrap();
        let a = e.archive("k", 1000, 7, 300).unwrap();
        assert_eq!(a.status, SegmentStatus::ArchivedRemote);
        assert_eq!(a.local_path, None);
        assert_eq!(a.compression_ratio(), Some(1000.0 / 4096.0));
        a.validate().unwrap();
        let c = a.clone().cache_locally("a.seg").unwrap();
        c.validate().unwrap();
        assert_eq!(c.evict_local().unwrap(), a);
    }

    #[test]
    fn illegal_moves_are_refused() {
        let active = SegmentEntry::new_active(0, 0, "x");
        assert!(active.clone().archive("k", 1, 1, 1).is_err());
        assert!(active.clone().cache_locally("x").is_err());
        assert!(active.clone().evict_local().is_err());
        let f = finalized();
        assert_eq!(
            f.clone().finalize(Some(20), 1, 1, 1).unwrap_err(),
            TransitionError {
                base_id: 10,
                from: SegmentStatus::Finalized,
                to: SegmentStatus::Active
            }
        );
        assert!(f.clone().evict_local().is_err());
        assert!(f.cache_locally("x").is_err());
        for from in SegmentStatus::ALL {
            for to in SegmentStatus::ALL {
                let expected = from == to
                    || matches!(
                        (from, to),
                        (SegmentStatus::Active, SegmentStatus::Finalized)
                            | (SegmentStatus::Finalized, SegmentStatus::ArchivedRemote)
                            | (SegmentStatus::ArchivedRemote, SegmentStatus::ArchivedCached)
                            | (SegmentStatus::ArchivedCached, SegmentStatus::ArchivedRemote)
                    );
                assert_eq!(from.can_become(to), expected, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn status_names_round_trip() {
        for s in SegmentStatus::ALL {
            assert_eq!(s.as_str().parse::<SegmentStatus>(), Ok(s));
        }
        assert!("active".parse::<SegmentStatus>().is_err());
    }

    #[test]
    fn id_boundaries() {
        let mut e = SegmentEntry::new_active(u64::MAX - 1, 0, "x");
        e.set_tail(Some(u64::MAX), 10).unwrap();
        assert_eq!(e.record_count, 2);
        assert!(e.contains(u64::MAX));
        assert_eq!(e.next_id(), u64::MAX);
        e.validate().unwrap();
        let mut z = SegmentEntry::new_active(0, 0, "x");
        assert!(!z.contains(0));
        z.set_tail(Some(0), 1).unwrap();
        assert!(z.contains(0));
        z.set_tail(None, 0).unwrap();
        assert!(z.is_empty());
        z.validate().unwrap();
    }

    proptest! {
        #[test]
        fn transitions_follow_the_lifecycle(ops in proptest::collection::vec(0u8..5, 0..20), base in any::<u64>(), len in 0u64..1000) {
            let mut e = SegmentEntry::new_active(base, 5, "p");
            for op in ops {
                let before = e.status;
                let last = base.checked_add(len).filter(|_| len > 0).map(|l| l - 1);
                let result = match op {
                    0 => e.clone().finalize(last, len, 1, 9),
                    1 => e.clone().archive("k", 1, 1, 10),
                    2 => e.clone().cache_locally("p"),
                    3 => e.clone().evict_local(),
                    _ => { let mut c = e.clone(); c.set_tail(last, len).map(|()| c) }
                };
                match result {
                    Ok(next) => {
                        prop_assert!(before.can_become(next.status), "{before} -> {}", next.status);
                        prop_assert!(next.validate().is_ok(), "{:?}", next.validate());
                        e = next;
                    }
                    Err(err) => prop_assert_eq!(err.from, before),
                }
            }
        }
    }
}
