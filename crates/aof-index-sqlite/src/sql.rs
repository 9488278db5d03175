//! The SQL this index runs on the `segments` table, and how an entry is bound
//! to it and read back.
//!
//! Public so that tools and baselines (the raw-SQLite benchmark, a migration
//! script) run exactly the statements the index runs, on exactly its schema.
//! Parameters and columns hold ids and timestamps encoded with
//! [`encoding::ord`](crate::encoding::ord) and counts, sizes and checksums
//! with [`encoding::bits`](crate::encoding::bits); statuses are the names of
//! [`SegmentStatus`](aof_record::SegmentStatus).
//!
//! ```
//! use aof_index_sqlite::encoding::ord;
//! use aof_index_sqlite::sql;
//! use aof_record::SegmentEntry;
//!
//! let conn = rusqlite::Connection::open_in_memory()?;
//! for step in sql::MIGRATIONS {
//!     conn.execute_batch(step)?;
//! }
//! let entry = SegmentEntry::new_active(100, 1_000, "00000000000000000100.seg");
//! sql::execute_entry(&mut conn.prepare(sql::INSERT)?, &entry)?;
//! let status: String = conn.query_row(sql::FIND_ID, [ord(150)], |r| r.get(10))?;
//! assert_eq!(status, "Active");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::encoding::{bits, ord, unbits, unord};
use crate::error::{Failure, Res};
use aof_record::{IndexError, SegmentEntry};
use rusqlite::types::ValueRef;
use rusqlite::{Row, Statement};

/// Schema version 1, created by migrating from an empty file. Kept as it
/// was: it is the first step of every migration (see [`MIGRATIONS`]).
pub const SCHEMA_V1: &str = "
CREATE TABLE metadata (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE segments (
  base_id INTEGER PRIMARY KEY, last_id INTEGER NOT NULL, record_count INTEGER NOT NULL,
  created_at INTEGER NOT NULL, finalized_at INTEGER, archived_at INTEGER,
  status TEXT NOT NULL, uncompressed_checksum INTEGER, compressed_checksum INTEGER,
  original_size INTEGER NOT NULL, compressed_size INTEGER, compression_ratio REAL,
  local_path TEXT, archive_key TEXT);
CREATE INDEX idx_segments_last_id ON segments(last_id);
CREATE INDEX idx_segments_status ON segments(status, base_id);
CREATE INDEX idx_segments_finalized_at ON segments(finalized_at) WHERE finalized_at IS NOT NULL;
";

/// The migration from schema version 1 to 2.
///
/// It rebuilds `segments` in the design's column order (`status` after
/// `compression_ratio`; SQLite cannot move a column): the old table is
/// renamed, the new one created and filled from it, the old one (and its
/// indexes) dropped, and the indexes created again. It runs inside the
/// transaction that records the new version, so a crash leaves version 1
/// or version 2, never a mix (SQLite's atomic commit).
///
/// It adds the two indexes [`BY_TIME`] needs to answer without scanning
/// the table: `idx_segments_span`, on each closed entry's span
/// `finalized_at - created_at` (the longest span bounds how far past the
/// window a closed entry can end), and `idx_segments_open`, on the
/// `created_at` of the entries without `finalized_at`.
pub const SCHEMA_V2: &str = "
ALTER TABLE segments RENAME TO segments_v1;
CREATE TABLE segments (
  base_id INTEGER PRIMARY KEY, last_id INTEGER NOT NULL, record_count INTEGER NOT NULL,
  created_at INTEGER NOT NULL, finalized_at INTEGER, archived_at INTEGER,
  uncompressed_checksum INTEGER, compressed_checksum INTEGER, original_size INTEGER NOT NULL,
  compressed_size INTEGER, compression_ratio REAL, status TEXT NOT NULL,
  local_path TEXT, archive_key TEXT);
INSERT INTO segments (base_id, last_id, record_count, created_at, finalized_at, archived_at,
  uncompressed_checksum, compressed_checksum, original_size, compressed_size, compression_ratio,
  status, local_path, archive_key)
SELECT base_id, last_id, record_count, created_at, finalized_at, archived_at,
  uncompressed_checksum, compressed_checksum, original_size, compressed_size, compression_ratio,
  status, local_path, archive_key
FROM segments_v1 ORDER BY base_id;
DROP TABLE segments_v1;
CREATE INDEX idx_segments_last_id ON segments(last_id);
CREATE INDEX idx_segments_status ON segments(status, base_id);
CREATE INDEX idx_segments_finalized_at ON segments(finalized_at) WHERE finalized_at IS NOT NULL;
CREATE INDEX idx_segments_span ON segments(finalized_at - created_at) WHERE finalized_at IS NOT NULL;
CREATE INDEX idx_segments_open ON segments(created_at) WHERE finalized_at IS NULL;
";

/// The migrations in order: `MIGRATIONS[v]` takes a database from schema
/// version `v` to `v + 1` (version 0 is an empty file). Running them all
/// on an empty database creates the current schema, as opening a new
/// index does.
pub const MIGRATIONS: [&str; 2] = [SCHEMA_V1, SCHEMA_V2];

/// The columns of `segments`, in table order.
pub const SEGMENT_COLUMNS: [&str; 14] = [
    "base_id",
    "last_id",
    "record_count",
    "created_at",
    "finalized_at",
    "archived_at",
    "uncompressed_checksum",
    "compressed_checksum",
    "original_size",
    "compressed_size",
    "compression_ratio",
    "status",
    "local_path",
    "archive_key",
];

/// The columns of `segments` in schema version 1, in table order.
pub(crate) const SEGMENT_COLUMNS_V1: [&str; 14] = [
    "base_id",
    "last_id",
    "record_count",
    "created_at",
    "finalized_at",
    "archived_at",
    "status",
    "uncompressed_checksum",
    "compressed_checksum",
    "original_size",
    "compressed_size",
    "compression_ratio",
    "local_path",
    "archive_key",
];

/// [`ENTRY_COLUMNS`] as a literal, for `concat!`.
macro_rules! cols {
    () => {
        "base_id, last_id, record_count, created_at, finalized_at, archived_at, \
         uncompressed_checksum, compressed_checksum, original_size, compressed_size, status, local_path, archive_key"
    };
}

/// The 13 columns every entry query selects, in this order: all of
/// [`SEGMENT_COLUMNS`] but `compression_ratio`, which is derived.
pub const ENTRY_COLUMNS: &str = cols!();

/// Writes every column of one entry (`?1..?14`, the columns in table order);
/// run it with [`execute_entry`].
pub const INSERT: &str = "INSERT INTO segments (base_id, last_id, record_count, created_at, \
     finalized_at, archived_at, uncompressed_checksum, compressed_checksum, original_size, \
     compressed_size, compression_ratio, status, local_path, archive_key) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";

/// Rewrites every column of the entry whose `base_id` is `?1`, with the
/// parameters of [`INSERT`]; run it with [`execute_entry`].
pub const UPDATE: &str = "UPDATE segments SET last_id = ?2, record_count = ?3, created_at = ?4, \
     finalized_at = ?5, archived_at = ?6, uncompressed_checksum = ?7, compressed_checksum = ?8, \
     original_size = ?9, compressed_size = ?10, compression_ratio = ?11, status = ?12, \
     local_path = ?13, archive_key = ?14 WHERE base_id = ?1";

/// The entry whose `base_id` is `?1` (`get_entry`).
pub const GET: &str = concat!("SELECT ", cols!(), " FROM segments WHERE base_id = ?1");

/// The entry with the greatest `base_id` below `?1`.
pub const PREV: &str = concat!(
    "SELECT ",
    cols!(),
    " FROM segments WHERE base_id < ?1 ORDER BY base_id DESC LIMIT 1"
);

/// The entry with the smallest `base_id` above `?1`.
pub const NEXT: &str = concat!(
    "SELECT ",
    cols!(),
    " FROM segments WHERE base_id > ?1 ORDER BY base_id ASC LIMIT 1"
);

/// The entry with the greatest `base_id` at or below the id `?1`; it holds
/// the id if its `last_id` reaches it and it is not empty (`find_segment_for_id`).
pub const FIND_ID: &str = concat!(
    "SELECT ",
    cols!(),
    " FROM segments WHERE base_id <= ?1 ORDER BY base_id DESC LIMIT 1"
);

/// The greatest span `finalized_at - created_at` of a closed entry, `s`,
/// read from the end of `idx_segments_span`; it is a REAL when the span
/// overflowed an i64 (a span of 2^63 µs or more).
macro_rules! max_span {
    () => {
        "SELECT finalized_at - created_at AS s FROM segments WHERE finalized_at IS NOT NULL \
         ORDER BY finalized_at - created_at DESC LIMIT 1"
    };
}

/// The greatest `finalized_at` a closed entry overlapping the window
/// `?1..=?2` can have: `?2` plus the greatest span, saturating at the
/// greatest stored value (NULL when there is no closed entry).
macro_rules! last_end {
    () => {
        concat!(
            "SELECT CASE WHEN typeof(s) != 'integer' THEN 9223372036854775807 \
             WHEN s <= 0 THEN ?2 WHEN ?2 <= 9223372036854775807 - s THEN ?2 + s \
             ELSE 9223372036854775807 END FROM (",
            max_span!(),
            ")"
        )
    };
}

/// Entries whose time span overlaps `?1..=?2` (`find_segments_for_timestamp`),
/// in `base_id` order.
///
/// A closed entry overlaps when `created_at <= ?2 AND finalized_at >= ?1`;
/// as `finalized_at = created_at + span`, it then ends at most the greatest
/// span after `?2`. So the closed entries are a range of
/// `idx_segments_finalized_at`, from `?1` to `?2` plus the greatest span
/// (one step down `idx_segments_span`); the open-ended ones (no
/// `finalized_at`) a range of `idx_segments_open`. The answer is exact for
/// any spans (overlapping, backwards, or up to `u64::MAX`); the range is
/// about the window's width when the spans are alike, and no longer than
/// the table when one span is huge. `INDEXED BY` keeps the planner from
/// trading either range for a scan in `base_id` order.
pub const BY_TIME: &str = concat!(
    "SELECT ",
    cols!(),
    " FROM segments INDEXED BY idx_segments_finalized_at WHERE finalized_at BETWEEN ?1 AND (",
    last_end!(),
    ") AND created_at <= ?2 UNION ALL SELECT ",
    cols!(),
    " FROM segments INDEXED BY idx_segments_open WHERE finalized_at IS NULL AND created_at <= ?2 \
     ORDER BY base_id"
);

/// Every entry (`get_all_segments`).
pub const ALL: &str = concat!("SELECT ", cols!(), " FROM segments ORDER BY base_id");

/// Non-empty entries wholly below the id `?1` (`get_segments_before`).
pub const BEFORE: &str = concat!(
    "SELECT ",
    cols!(),
    " FROM segments WHERE base_id < ?1 AND record_count != 0 AND last_id < ?1 ORDER BY base_id"
);

/// The entry with the status named `?1` and the greatest `base_id`
/// (`get_active_segment`, `get_latest_finalized_segment`).
pub const LATEST_WITH_STATUS: &str = concat!(
    "SELECT ",
    cols!(),
    " FROM segments WHERE status = ?1 ORDER BY base_id DESC LIMIT 1"
);

/// Up to `?1` finalized entries, smallest `base_id` first (`get_segments_for_archiving`).
pub const FOR_ARCHIVING: &str = concat!(
    "SELECT ",
    cols!(),
    " FROM segments WHERE status = 'Finalized' ORDER BY base_id LIMIT ?1"
);

/// The greatest `last_id` of a non-empty entry (`get_max_last_id`).
pub const MAX_LAST_ID: &str =
    "SELECT last_id FROM segments WHERE record_count != 0 ORDER BY last_id DESC LIMIT 1";

/// Whether an entry has the `base_id` `?1`.
pub const EXISTS: &str = "SELECT 1 FROM segments WHERE base_id = ?1";

/// Whether an entry has a `base_id` in `?1..=?2`.
pub const ANY_BETWEEN: &str = "SELECT 1 FROM segments WHERE base_id BETWEEN ?1 AND ?2";

/// The `last_id` of the entry with the greatest `base_id` below `?1`.
pub const LAST_ID_BELOW: &str =
    "SELECT last_id FROM segments WHERE base_id < ?1 ORDER BY base_id DESC LIMIT 1";

/// Sets the status of the entry whose `base_id` is `?1` to the name `?2`.
pub const SET_STATUS: &str = "UPDATE segments SET status = ?2 WHERE base_id = ?1";

/// Removes the entry whose `base_id` is `?1`.
pub const DELETE: &str = "DELETE FROM segments WHERE base_id = ?1";

/// Counts the entries (`len`).
pub const COUNT: &str = "SELECT count(*) FROM segments";

/// Runs `stmt`, an [`INSERT`] or [`UPDATE`], for `entry`; returns the rows
/// changed. Fails with `InvalidParameterCount` on a statement that does not
/// take exactly the 14 parameters of these two.
pub fn execute_entry(stmt: &mut Statement<'_>, entry: &SegmentEntry) -> rusqlite::Result<usize> {
    let n = stmt.parameter_count();
    if n != SEGMENT_COLUMNS.len() {
        return Err(rusqlite::Error::InvalidParameterCount(SEGMENT_COLUMNS.len(), n));
    }
    bind_entry(stmt, 0, entry)?;
    stmt.raw_execute()
}

/// Rows one [`insert_many`] statement writes.
pub(crate) const ROWS_PER_INSERT: usize = 32;

/// An INSERT of [`ROWS_PER_INSERT`] rows, with the parameters of [`INSERT`]
/// for each row in turn (`?1..?14` for the first, `?15..?28` for the next, …).
///
/// `OR FAIL`: a failing row stops the statement but keeps the rows before
/// it, so SQLite keeps no statement journal (a copy of every page the
/// statement touches, about a tenth of a bulk load's CPU time). Nothing
/// partial survives anyway: a failed insert fails its whole mutation, which
/// the writer rolls back (its savepoint, or the transaction).
pub(crate) static INSERT_MANY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let row = format!("({})", vec!["?"; SEGMENT_COLUMNS.len()].join(", "));
    format!(
        "INSERT OR FAIL INTO segments ({}) VALUES {}",
        SEGMENT_COLUMNS.join(", "),
        vec![row; ROWS_PER_INSERT].join(", ")
    )
});

/// Runs an [`INSERT_MANY`] statement for exactly [`ROWS_PER_INSERT`] entries.
pub(crate) fn insert_many(stmt: &mut Statement<'_>, rows: &[&SegmentEntry]) -> rusqlite::Result<usize> {
    for (row, e) in rows.iter().enumerate() {
        bind_entry(stmt, row, e)?;
    }
    stmt.raw_execute()
}

/// Binds `e` as row `row` (0-based) of a statement whose rows each take the
/// parameters of [`INSERT`].
fn bind_entry(stmt: &mut Statement<'_>, row: usize, e: &SegmentEntry) -> rusqlite::Result<()> {
    let at = row * SEGMENT_COLUMNS.len();
    stmt.raw_bind_parameter(at + 1, ord(e.base_id))?;
    stmt.raw_bind_parameter(at + 2, ord(e.last_id))?;
    stmt.raw_bind_parameter(at + 3, bits(e.record_count))?;
    stmt.raw_bind_parameter(at + 4, ord(e.created_at))?;
    stmt.raw_bind_parameter(at + 5, e.finalized_at.map(ord))?;
    stmt.raw_bind_parameter(at + 6, e.archived_at.map(ord))?;
    stmt.raw_bind_parameter(at + 7, e.uncompressed_checksum.map(bits))?;
    stmt.raw_bind_parameter(at + 8, e.compressed_checksum.map(bits))?;
    stmt.raw_bind_parameter(at + 9, bits(e.original_size))?;
    stmt.raw_bind_parameter(at + 10, e.compressed_size.map(bits))?;
    stmt.raw_bind_parameter(at + 11, e.compression_ratio())?;
    stmt.raw_bind_parameter(at + 12, e.status.as_str())?;
    stmt.raw_bind_parameter(at + 13, e.local_path.as_deref())?;
    stmt.raw_bind_parameter(at + 14, e.archive_key.as_deref())
}

fn corrupt(base_id: u64, field: &'static str) -> Failure {
    IndexError::CorruptEntry { base_id, field }.into()
}

fn int(row: &Row<'_>, i: usize, base_id: u64, field: &'static str) -> Res<i64> {
    match row.get_ref(i)? {
        ValueRef::Integer(v) => Ok(v),
        _ => Err(corrupt(base_id, field)),
    }
}

fn opt_int(row: &Row<'_>, i: usize, base_id: u64, field: &'static str) -> Res<Option<i64>> {
    match row.get_ref(i)? {
        ValueRef::Integer(v) => Ok(Some(v)),
        ValueRef::Null => Ok(None),
        _ => Err(corrupt(base_id, field)),
    }
}

fn opt_text(row: &Row<'_>, i: usize, base_id: u64, field: &'static str) -> Res<Option<String>> {
    match row.get_ref(i)? {
        ValueRef::Text(t) => std::str::from_utf8(t)
            .map(|s| Some(s.to_owned()))
            .map_err(|_| corrupt(base_id, field)),
        ValueRef::Null => Ok(None),
        _ => Err(corrupt(base_id, field)),
    }
}

/// Reads one entry selected as [`ENTRY_COLUMNS`]. Anything that is not what
/// this code writes is a `CorruptEntry`, never a panic.
pub(crate) fn decode(row: &Row<'_>) -> Res<SegmentEntry> {
    let base_id = unord(int(row, 0, 0, "base_id")?);
    let status = match row.get_ref(10)? {
        ValueRef::Text(t) => std::str::from_utf8(t).ok().and_then(|s| s.parse().ok()),
        _ => None,
    }
    .ok_or_else(|| corrupt(base_id, "status"))?;
    let entry = SegmentEntry {
        base_id,
        last_id: unord(int(row, 1, base_id, "last_id")?),
        record_count: unbits(int(row, 2, base_id, "record_count")?),
        created_at: unord(int(row, 3, base_id, "created_at")?),
        finalized_at: opt_int(row, 4, base_id, "finalized_at")?.map(unord),
        archived_at: opt_int(row, 5, base_id, "archived_at")?.map(unord),
        status,
        uncompressed_checksum: opt_int(row, 6, base_id, "uncompressed_checksum")?.map(unbits),
        compressed_checksum: opt_int(row, 7, base_id, "compressed_checksum")?.map(unbits),
        original_size: unbits(int(row, 8, base_id, "original_size")?),
        compressed_size: opt_int(row, 9, base_id, "compressed_size")?.map(unbits),
        local_path: opt_text(row, 11, base_id, "local_path")?,
        archive_key: opt_text(row, 12, base_id, "archive_key")?,
    };
    entry.validate().map_err(|_| corrupt(base_id, "record_count"))?;
    Ok(entry)
}
