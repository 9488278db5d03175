//! Reading entries out of the tables, in any transaction: point reads,
//! rows under a cursor, the `max_span` bound, and the check that the tables
//! agree.

use crate::codec::{
    META_LOG_ID, META_MAX_SPAN, decode_entry, decode_id_key, decode_meta_u64, id_key, status_key, time_key,
};
use crate::env::{Bytes, Tables, Txn};
use crate::error::mdbx;
use aof_record::LogId;
use aof_record::entry::{SegmentEntry, SegmentStatus};
use aof_record::index::{IndexError, IndexResult};
use libmdbx::{Table, TransactionKind};
use std::collections::{BTreeMap, BTreeSet};

/// The entry stored under `base_id`, if any.
pub(crate) fn load<'t, K: TransactionKind>(
    txn: &'t Txn<'_, K>,
    entries: &Table<'t>,
    base_id: u64,
) -> IndexResult<Option<SegmentEntry>> {
    let value: Option<Bytes<'t>> = txn.get(entries, id_key(base_id)).map_err(mdbx)?;
    value.map(|v| decode_entry(base_id, &v)).transpose()
}

/// The entry a secondary-table row points at; its absence, or another status
/// than the row says, means the tables disagree.
pub(crate) fn indexed_entry<'t, K: TransactionKind>(
    txn: &'t Txn<'_, K>,
    entries: &Table<'t>,
    base_id: u64,
    status: SegmentStatus,
) -> IndexResult<SegmentEntry> {
    match load(txn, entries, base_id)? {
        Some(e) if e.status == status => Ok(e),
        _ => Err(IndexError::CorruptEntry {
            base_id,
            field: "status table row",
        }),
    }
}

/// Decodes a row of the main table.
#[inline]
pub(crate) fn decode_row(key: &[u8], value: &[u8]) -> IndexResult<SegmentEntry> {
    decode_entry(decode_id_key(key)?, value)
}

/// A row as a cursor returns it.
pub(crate) type Row<'t> = Option<(Bytes<'t>, Bytes<'t>)>;

/// The entry in a cursor row, if there is a row.
pub(crate) fn decode_opt(row: Row<'_>) -> IndexResult<Option<SegmentEntry>> {
    row.map(|(k, v)| decode_row(&k, &v)).transpose()
}

/// The `max_span` of the metadata table (see the crate docs).
pub(crate) fn read_max_span<'t, K: TransactionKind>(
    txn: &'t Txn<'_, K>,
    meta: &Table<'t>,
) -> IndexResult<u64> {
    let v: Option<Bytes<'t>> = txn.get(meta, META_MAX_SPAN).map_err(mdbx)?;
    v.as_deref()
        .and_then(decode_meta_u64)
        .ok_or(IndexError::CorruptEntry {
            base_id: 0,
            field: "aof.meta max_span",
        })
}

/// The log identity in the metadata table, if one was set; a value that is
/// not 16 bytes is `CorruptMetadata`.
pub(crate) fn read_log_id<'t, K: TransactionKind>(
    txn: &'t Txn<'_, K>,
    meta: &Table<'t>,
) -> IndexResult<Option<LogId>> {
    let v: Option<Bytes<'t>> = txn.get(meta, META_LOG_ID).map_err(mdbx)?;
    v.map(|v| {
        <[u8; 16]>::try_from(&*v)
            .map(|b| LogId(u128::from_be_bytes(b)))
            .map_err(|_| IndexError::CorruptMetadata {
                field: "aof.meta log_id",
            })
    })
    .transpose()
}

/// Reads every table in one snapshot and checks that they agree: every
/// entry decodes and has exactly one status row and one time row, no row
/// points at a missing entry, and `max_span` bounds every closed entry.
///
/// Returns the number of entries; fails with `CorruptEntry` naming the
/// first entry and table that disagree.
pub(crate) fn verify<K: TransactionKind>(txn: &Txn<'_, K>, t: &Tables<'_>) -> IndexResult<usize> {
    let Tables {
        entries,
        by_status,
        by_time,
        meta,
    } = t;
    let max_span = read_max_span(txn, meta)?;
    let mut want_status = BTreeSet::new();
    let mut want_time = BTreeMap::new();
    let mut cursor = txn.cursor(entries).map_err(mdbx)?;
    for row in cursor.iter_start::<Bytes<'_>, Bytes<'_>>() {
        let (k, v) = row.map_err(mdbx)?;
        let e = decode_row(&k, &v)?;
        if let Some(end) = e.finalized_at.filter(|&f| f != u64::MAX)
            && end.saturating_sub(e.created_at) > max_span
        {
            return Err(IndexError::CorruptEntry {
                base_id: e.base_id,
                field: "aof.meta max_span",
            });
        }
        want_status.insert(status_key(e.status, e.base_id)?.to_vec());
        want_time.insert(time_key(&e).to_vec(), e.created_at.to_be_bytes().to_vec());
    }
    let mut status_rows = BTreeSet::new();
    let mut cursor = txn.cursor(by_status).map_err(mdbx)?;
    for row in cursor.iter_start::<Vec<u8>, Vec<u8>>() {
        let (k, v) = row.map_err(mdbx)?;
        // A status row has an empty value; a non-empty one cannot match.
        status_rows.insert(if v.is_empty() { k } else { Vec::new() });
    }
    if let Some(k) = want_status.symmetric_difference(&status_rows).next() {
        return Err(IndexError::CorruptEntry {
            base_id: k.get(1..).and_then(decode_meta_u64).unwrap_or(0),
            field: "status table row",
        });
    }
    let mut cursor = txn.cursor(by_time).map_err(mdbx)?;
    let time_rows = cursor
        .iter_start::<Vec<u8>, Vec<u8>>()
        .collect::<Result<BTreeMap<_, _>, _>>()
        .map_err(mdbx)?;
    if let Some(key) = want_time
        .keys()
        .chain(time_rows.keys())
        .find(|k| want_time.get(*k) != time_rows.get(*k))
    {
        return Err(IndexError::CorruptEntry {
            base_id: key.get(8..).and_then(decode_meta_u64).unwrap_or(0),
            field: "time table row",
        });
    }
    Ok(want_time.len())
}
