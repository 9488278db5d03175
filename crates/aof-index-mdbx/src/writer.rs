//! [`Writer`]: the changes one write transaction makes, each keeping the
//! entry and its two secondary rows in step (see the crate docs, "Tables").

use crate::codec::{META_LOG_ID, META_MAX_SPAN, encode_entry, id_key, status_key, time_key};
use crate::env::{Tables, Txn};
use crate::error::mdbx;
use crate::rows::{decode_opt, load, read_log_id, read_max_span};
use aof_record::LogId;
use aof_record::entry::SegmentEntry;
use aof_record::index::{IndexResult, contract};
use libmdbx::{RW, WriteFlags};

/// One write transaction's view of the tables.
pub(crate) struct Writer<'t, 'db> {
    txn: &'t Txn<'db, RW>,
    t: &'t Tables<'db>,
    /// On `aof.entries`, for the neighbour checks; repositioned before each use.
    cursor: libmdbx::Cursor<'t, RW>,
    buf: Vec<u8>,
    max_span: Option<u64>,
}

impl<'t, 'db> Writer<'t, 'db> {
    pub(crate) fn new(txn: &'t Txn<'db, RW>, t: &'t Tables<'db>) -> IndexResult<Self> {
        Ok(Self {
            txn,
            t,
            cursor: txn.cursor(&t.entries).map_err(mdbx)?,
            buf: Vec::with_capacity(256),
            max_span: None,
        })
    }

    pub(crate) fn get(&self, base_id: u64) -> IndexResult<Option<SegmentEntry>> {
        load(self.txn, &self.t.entries, base_id)
    }

    /// The entry with the greatest base id below `base_id`.
    pub(crate) fn prev(&mut self, base_id: u64) -> IndexResult<Option<SegmentEntry>> {
        let Some(below) = base_id.checked_sub(1) else {
            return Ok(None);
        };
        decode_opt(self.cursor.set_upperbound(&id_key(below)).map_err(mdbx)?)
    }

    /// The entry with the smallest base id above `base_id`.
    pub(crate) fn next(&mut self, base_id: u64) -> IndexResult<Option<SegmentEntry>> {
        let Some(above) = base_id.checked_add(1) else {
            return Ok(None);
        };
        decode_opt(self.cursor.set_range(&id_key(above)).map_err(mdbx)?)
    }

    /// Checks and inserts a new entry, as [`SegmentIndex::add_entry`]: one
    /// seek finds the entry at or below `base_id` and a step its successor.
    pub(crate) fn insert(&mut self, entry: &SegmentEntry) -> IndexResult<()> {
        let floor = decode_opt(self.cursor.set_upperbound(&id_key(entry.base_id)).map_err(mdbx)?)?;
        let next = if floor.is_some() {
            self.cursor.next().map_err(mdbx)?
        } else {
            self.cursor.first().map_err(mdbx)?
        };
        let exists = floor.as_ref().is_some_and(|f| f.base_id == entry.base_id);
        contract::check_add(entry, exists, floor.as_ref(), decode_opt(next)?.as_ref())?;
        self.store(entry, None)
    }

    /// Writes `entry` and its secondary rows, replacing those of `old`.
    pub(crate) fn store(&mut self, entry: &SegmentEntry, old: Option<&SegmentEntry>) -> IndexResult<()> {
        let txn = self.txn;
        encode_entry(entry, &mut self.buf)?;
        txn.put(
            &self.t.entries,
            id_key(entry.base_id),
            &self.buf,
            WriteFlags::empty(),
        )
        .map_err(mdbx)?;
        if old.is_none_or(|o| o.status != entry.status) {
            if let Some(o) = old {
                txn.del(&self.t.by_status, status_key(o.status, o.base_id)?, None)
                    .map_err(mdbx)?;
            }
            txn.put(
                &self.t.by_status,
                status_key(entry.status, entry.base_id)?,
                [],
                WriteFlags::empty(),
            )
            .map_err(mdbx)?;
        }
        if old.is_none_or(|o| o.finalized_at != entry.finalized_at || o.created_at != entry.created_at) {
            if let Some(o) = old {
                txn.del(&self.t.by_time, time_key(o), None).map_err(mdbx)?;
            }
            txn.put(
                &self.t.by_time,
                time_key(entry),
                entry.created_at.to_be_bytes(),
                WriteFlags::empty(),
            )
            .map_err(mdbx)?;
            if let Some(end) = entry.finalized_at.filter(|&f| f != u64::MAX) {
                self.raise_max_span(end.saturating_sub(entry.created_at))?;
            }
        }
        Ok(())
    }

    fn raise_max_span(&mut self, span: u64) -> IndexResult<()> {
        let current = match self.max_span {
            Some(s) => s,
            None => read_max_span(self.txn, &self.t.meta)?,
        };
        if span > current {
            self.txn
                .put(
                    &self.t.meta,
                    META_MAX_SPAN,
                    span.to_be_bytes(),
                    WriteFlags::empty(),
                )
                .map_err(mdbx)?;
        }
        self.max_span = Some(current.max(span));
        Ok(())
    }

    /// Stores the log identity, as [`SegmentIndex::set_log_identity`].
    pub(crate) fn set_log_id(&mut self, id: LogId) -> IndexResult<()> {
        if contract::identity_update(read_log_id(self.txn, &self.t.meta)?, id)? {
            self.txn
                .put(&self.t.meta, META_LOG_ID, id.0.to_be_bytes(), WriteFlags::empty())
                .map_err(mdbx)?;
        }
        Ok(())
    }

    pub(crate) fn remove(&mut self, base_id: u64) -> IndexResult<Option<SegmentEntry>> {
        let Some(old) = self.get(base_id)? else {
            return Ok(None);
        };
        let txn = self.txn;
        txn.del(&self.t.entries, id_key(base_id), None).map_err(mdbx)?;
        txn.del(&self.t.by_status, status_key(old.status, base_id)?, None)
            .map_err(mdbx)?;
        txn.del(&self.t.by_time, time_key(&old), None).map_err(mdbx)?;
        Ok(Some(old))
    }
}
