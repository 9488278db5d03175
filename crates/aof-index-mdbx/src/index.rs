//! [`MdbxSegmentIndex`]: the [`SegmentIndex`] on an open environment.

use crate::codec::{
    decode_entry_with, decode_id_key, decode_status_key, decode_time_row, id_key, status_key, time_key_parts,
};
use crate::env::{Bytes, EnvCell, copy_env, open_env};
use crate::error::{mdbx, open_error};
use crate::options::MdbxIndexOptions;
use crate::rows::{self, decode_row, indexed_entry, load, read_log_id, read_max_span};
use crate::schema;
use crate::writer::Writer;
use aof_record::LogId;
use aof_record::entry::{SegmentEntry, SegmentStatus};
use aof_record::index::{IndexError, IndexResult, SegmentIndex, contract};
use std::path::{Path, PathBuf};

/// A [`SegmentIndex`] in an MDBX environment; see the [crate docs](crate) for
/// its tables, encoding and durability.
///
/// Readers never wait for the writer: every read runs on an MVCC snapshot
/// that includes every write this handle has returned from. Writes are
/// serialized by libmdbx.
pub struct MdbxSegmentIndex {
    cell: EnvCell,
    path: PathBuf,
}

impl std::fmt::Debug for MdbxSegmentIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MdbxSegmentIndex")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl MdbxSegmentIndex {
    /// Opens the index in the MDBX data file at `path`, creating it if it
    /// does not exist, with default [`MdbxIndexOptions`]. The file is held
    /// exclusively until the index is dropped.
    ///
    /// Fails with [`IndexError::NotAnIndex`] if `path` is not an MDBX data
    /// file holding an aof index, and with
    /// [`IndexError::UnsupportedSchemaVersion`] if it was written by a newer
    /// format; in both cases the file is not modified.
    pub fn open(path: impl AsRef<Path>) -> IndexResult<Self> {
        Self::open_with(path, &MdbxIndexOptions::default())
    }

    /// [`MdbxSegmentIndex::open`] with explicit options.
    pub fn open_with(path: impl AsRef<Path>, options: &MdbxIndexOptions) -> IndexResult<Self> {
        let path = path.as_ref();
        schema::check_existing(path)?;
        let env = open_env(path, options.mode()).map_err(|e| open_error(path, e))?;
        schema::init(&env, path)?;
        Ok(Self {
            cell: EnvCell::with_tables(env, path)?,
            path: path.to_owned(),
        })
    }

    /// The data file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads every table in one snapshot and checks that they agree: every
    /// entry decodes and has exactly one status row and one time row, no row
    /// points at a missing entry, and `max_span` bounds every closed entry.
    ///
    /// Returns the number of entries; fails with [`IndexError::CorruptEntry`]
    /// naming the first entry and table that disagree.
    pub fn verify(&self) -> IndexResult<usize> {
        self.cell.read(|r| rows::verify(r.txn, r.tables))
    }

    /// Runs `f` in one write transaction through a [`Writer`], committed if
    /// `f` succeeds and aborted (changing nothing) if it fails.
    fn write<T>(&self, f: impl FnOnce(&mut Writer<'_, '_>) -> IndexResult<T>) -> IndexResult<T> {
        self.cell.write(|txn, t| f(&mut Writer::new(txn, t)?))
    }

    /// The newest entry with `status`, through the status table.
    fn latest_with_status(&self, status: SegmentStatus) -> IndexResult<Option<SegmentEntry>> {
        self.cell.read(|r| {
            let Some((key, ())) = r
                .by_status()?
                .set_upperbound::<Bytes<'_>, ()>(&status_key(status, u64::MAX)?)
                .map_err(mdbx)?
            else {
                return Ok(None);
            };
            let Some(base_id) = decode_status_key(&key, status)? else {
                return Ok(None);
            };
            indexed_entry(r.txn, &r.tables.entries, base_id, status).map(Some)
        })
    }
}

impl SegmentIndex for MdbxSegmentIndex {
    fn add_entry(&self, entry: &SegmentEntry) -> IndexResult<()> {
        self.write(|w| w.insert(entry))
    }

    fn add_entries(&self, entries: &[SegmentEntry]) -> IndexResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.write(|w| entries.iter().try_for_each(|e| w.insert(e)))
    }

    fn update_entry(&self, entry: &SegmentEntry) -> IndexResult<()> {
        self.write(|w| {
            let current = w.get(entry.base_id)?;
            let prev = w.prev(entry.base_id)?;
            let next = w.next(entry.base_id)?;
            contract::check_update(entry, current.as_ref(), prev.as_ref(), next.as_ref())?;
            w.store(entry, current.as_ref())
        })
    }

    fn remove_entry(&self, base_id: u64) -> IndexResult<Option<SegmentEntry>> {
        self.write(|w| w.remove(base_id))
    }

    fn get_entry(&self, base_id: u64) -> IndexResult<Option<SegmentEntry>> {
        self.cell.read(|r| load(r.txn, &r.tables.entries, base_id))
    }

    fn find_segment_for_id(&self, id: u64) -> IndexResult<Option<SegmentEntry>> {
        self.cell.read(|r| {
            let Some((k, v)) = r
                .entries()?
                .set_upperbound::<Bytes<'_>, Bytes<'_>>(&id_key(id))
                .map_err(mdbx)?
            else {
                return Ok(None);
            };
            decode_entry_with(decode_id_key(&k)?, &v, |entry| {
                entry.contains(id).then_some(entry)
            })
        })
    }

    fn find_segments_for_timestamp(&self, start_us: u64, end_us: u64) -> IndexResult<Vec<SegmentEntry>> {
        self.cell.read(|r| {
            let (txn, t) = (r.txn, r.tables);
            // A closed entry that overlaps ends at or after start_us, and at
            // most max_span after its start, which is at most end_us.
            let last_end = end_us.saturating_add(read_max_span(txn, &t.meta)?);
            let cursor = r.by_time()?;
            let mut ids = Vec::new();
            let mut row = cursor
                .set_range::<Bytes<'_>, Bytes<'_>>(&time_key_parts(start_us, 0))
                .map_err(mdbx)?;
            while let Some((k, v)) = row {
                let (end, base_id, created) = decode_time_row(&k, &v)?;
                if end > last_end && end != u64::MAX {
                    // Nothing closed from here on can overlap: go to the open-ended rows.
                    row = cursor.set_range(&time_key_parts(u64::MAX, 0)).map_err(mdbx)?;
                    continue;
                }
                if created <= end_us && start_us <= end {
                    ids.push(base_id);
                }
                row = cursor.next().map_err(mdbx)?;
            }
            ids.sort_unstable();
            ids.into_iter()
                .map(|base_id| {
                    load(txn, &t.entries, base_id)?
                        .filter(|e| e.overlaps_time(start_us, end_us))
                        .ok_or(IndexError::CorruptEntry {
                            base_id,
                            field: "time table row",
                        })
                })
                .collect()
        })
    }

    fn get_all_segments(&self) -> IndexResult<Vec<SegmentEntry>> {
        self.cell.read(|r| {
            r.entries()?
                .iter_start::<Bytes<'_>, Bytes<'_>>()
                .map(|row| {
                    let (k, v) = row.map_err(mdbx)?;
                    decode_row(&k, &v)
                })
                .collect()
        })
    }

    fn get_segments_before(&self, id: u64) -> IndexResult<Vec<SegmentEntry>> {
        self.cell.read(|r| {
            let mut out = Vec::new();
            for row in r.entries()?.iter_start::<Bytes<'_>, Bytes<'_>>() {
                let (k, v) = row.map_err(mdbx)?;
                if decode_id_key(&k)? >= id {
                    break;
                }
                let e = decode_row(&k, &v)?;
                if !e.is_empty() && e.last_id < id {
                    out.push(e);
                }
            }
            Ok(out)
        })
    }

    fn get_max_last_id(&self) -> IndexResult<Option<u64>> {
        // Entries do not overlap, so the non-empty entry with the greatest
        // base id has the greatest last id.
        self.cell.read(|r| {
            let cursor = r.entries()?;
            let mut row = cursor.last::<Bytes<'_>, Bytes<'_>>().map_err(mdbx)?;
            while let Some((k, v)) = row {
                let e = decode_row(&k, &v)?;
                if !e.is_empty() {
                    return Ok(Some(e.last_id));
                }
                row = cursor.prev().map_err(mdbx)?;
            }
            Ok(None)
        })
    }

    fn get_active_segment(&self) -> IndexResult<Option<SegmentEntry>> {
        self.latest_with_status(SegmentStatus::Active)
    }

    fn get_latest_finalized_segment(&self) -> IndexResult<Option<SegmentEntry>> {
        self.latest_with_status(SegmentStatus::Finalized)
    }

    fn get_segments_for_archiving(&self, count: usize) -> IndexResult<Vec<SegmentEntry>> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let status = SegmentStatus::Finalized;
        self.cell.read(|r| {
            let (txn, entries) = (r.txn, &r.tables.entries);
            let cursor = r.by_status()?;
            let mut out = Vec::new();
            let mut row = cursor
                .set_range::<Bytes<'_>, ()>(&status_key(status, 0)?)
                .map_err(mdbx)?;
            while let Some((k, ())) = row {
                let Some(base_id) = decode_status_key(&k, status)? else {
                    break;
                };
                out.push(indexed_entry(txn, entries, base_id, status)?);
                if out.len() == count {
                    break;
                }
                row = cursor.next().map_err(mdbx)?;
            }
            Ok(out)
        })
    }

    fn update_segment_status(&self, base_id: u64, status: SegmentStatus) -> IndexResult<()> {
        self.write(|w| {
            let current = w.get(base_id)?;
            match contract::status_update(base_id, current.as_ref(), status)? {
                Some(updated) => w.store(&updated, current.as_ref()),
                None => Ok(()),
            }
        })
    }

    fn update_segment_tail(&self, base_id: u64, last_id: Option<u64>, size: u64) -> IndexResult<()> {
        self.write(|w| {
            let current = w.get(base_id)?;
            let next = w.next(base_id)?;
            let updated = contract::tail_update(base_id, current.as_ref(), last_id, size, next.as_ref())?;
            w.store(&updated, current.as_ref())
        })
    }

    fn log_identity(&self) -> IndexResult<Option<LogId>> {
        self.cell.read(|r| read_log_id(r.txn, &r.tables.meta))
    }

    fn set_log_identity(&self, id: LogId) -> IndexResult<()> {
        self.write(|w| w.set_log_id(id))
    }

    fn sync(&self) -> IndexResult<()> {
        self.cell.env().sync(true).map(drop).map_err(mdbx)
    }

    fn len(&self) -> IndexResult<usize> {
        self.cell
            .read(|r| Ok(r.txn.table_stat(&r.tables.entries).map_err(mdbx)?.entries()))
    }

    fn copy_to(&self, dest: &Path) -> IndexResult<()> {
        copy_env(self.cell.env(), dest)
    }
}
