//! The on-disk schema, the u64 encoding, row decoding, and the checks and
//! migrations that run when a file is opened.

use crate::error::{Failure, Res, SqliteIndexError};
use aof_record::{IndexError, SegmentEntry};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, Row, TransactionBehavior};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The schema version this code writes, and the newest it opens.
pub const SCHEMA_VERSION: u64 = 1;

/// `metadata` key holding the schema version (a decimal number).
pub(crate) const VERSION_KEY: &str = "schema_version";

/// `metadata` key counting the syncs that had to fsync the WAL with a
/// `synchronous = FULL` commit because readers kept the checkpoint from
/// finishing.
pub(crate) const FULL_SYNC_KEY: &str = "full_sync_commits";

/// Version 0 -> 1: the designed schema.
const CREATE_V1: &str = "
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

/// `MIGRATIONS[v]` takes a database from version `v` to `v + 1`. Each runs
/// inside the transaction that also records the new version.
const MIGRATIONS: &[&str] = &[CREATE_V1];

const _: () = assert!(MIGRATIONS.len() as u64 == SCHEMA_VERSION);

/// The columns of `segments`, in table order.
pub const SEGMENT_COLUMNS: [&str; 14] = [
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

/// The columns every entry query selects, in the order [`decode`] reads
/// them (all but `compression_ratio`, which is derived), as a literal for `concat!`.
macro_rules! cols {
    () => {
        "base_id, last_id, record_count, created_at, finalized_at, archived_at, status, \
         uncompressed_checksum, compressed_checksum, original_size, compressed_size, local_path, archive_key"
    };
}
pub(crate) use cols;

/// Writes every column of one entry; `?1` is `base_id`.
pub(crate) const INSERT: &str = "INSERT INTO segments (base_id, last_id, record_count, created_at, \
     finalized_at, archived_at, status, uncompressed_checksum, compressed_checksum, original_size, \
     compressed_size, compression_ratio, local_path, archive_key) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)";

/// Rewrites every column of one entry, with the parameters of [`INSERT`].
pub(crate) const UPDATE: &str = "UPDATE segments SET last_id = ?2, record_count = ?3, created_at = ?4, \
     finalized_at = ?5, archived_at = ?6, status = ?7, uncompressed_checksum = ?8, \
     compressed_checksum = ?9, original_size = ?10, compressed_size = ?11, compression_ratio = ?12, \
     local_path = ?13, archive_key = ?14 WHERE base_id = ?1";

const SIGN: u64 = 1 << 63;

/// Encodes a u64 that SQL compares (ids, timestamps) so that the order of
/// the stored i64 is the order of the u64: the sign bit is flipped.
#[must_use]
pub const fn ord(v: u64) -> i64 {
    (v ^ SIGN) as i64
}

/// Inverse of [`ord`].
#[must_use]
pub const fn unord(v: i64) -> u64 {
    (v as u64) ^ SIGN
}

/// Encodes a u64 that SQL never orders (counts, sizes, checksums): a plain
/// two's-complement bit cast, so values below 2^63 read as themselves.
#[must_use]
pub const fn bits(v: u64) -> i64 {
    v as i64
}

/// Inverse of [`bits`].
#[must_use]
pub const fn unbits(v: i64) -> u64 {
    v as u64
}

/// Rows one [`insert_many`] statement writes.
pub(crate) const ROWS_PER_INSERT: usize = 32;

/// An INSERT of [`ROWS_PER_INSERT`] rows, with the parameters of [`INSERT`]
/// for each row in turn (`?1..?14` for the first, `?15..?28` for the next, …).
pub(crate) static INSERT_MANY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let row = format!("({})", vec!["?"; SEGMENT_COLUMNS.len()].join(", "));
    format!(
        "INSERT INTO segments ({}) VALUES {}",
        SEGMENT_COLUMNS.join(", "),
        vec![row; ROWS_PER_INSERT].join(", ")
    )
});

/// Binds `e` as row `row` (0-based) of a statement whose rows each take the
/// parameters of [`INSERT`].
fn bind_entry(
    stmt: &mut rusqlite::CachedStatement<'_>,
    row: usize,
    e: &SegmentEntry,
) -> rusqlite::Result<()> {
    let at = row * SEGMENT_COLUMNS.len();
    stmt.raw_bind_parameter(at + 1, ord(e.base_id))?;
    stmt.raw_bind_parameter(at + 2, ord(e.last_id))?;
    stmt.raw_bind_parameter(at + 3, bits(e.record_count))?;
    stmt.raw_bind_parameter(at + 4, ord(e.created_at))?;
    stmt.raw_bind_parameter(at + 5, e.finalized_at.map(ord))?;
    stmt.raw_bind_parameter(at + 6, e.archived_at.map(ord))?;
    stmt.raw_bind_parameter(at + 7, e.status.as_str())?;
    stmt.raw_bind_parameter(at + 8, e.uncompressed_checksum.map(bits))?;
    stmt.raw_bind_parameter(at + 9, e.compressed_checksum.map(bits))?;
    stmt.raw_bind_parameter(at + 10, bits(e.original_size))?;
    stmt.raw_bind_parameter(at + 11, e.compressed_size.map(bits))?;
    stmt.raw_bind_parameter(at + 12, e.compression_ratio())?;
    stmt.raw_bind_parameter(at + 13, e.local_path.as_deref())?;
    stmt.raw_bind_parameter(at + 14, e.archive_key.as_deref())
}

/// Runs an [`INSERT_MANY`] statement for exactly [`ROWS_PER_INSERT`] entries.
pub(crate) fn insert_many(
    stmt: &mut rusqlite::CachedStatement<'_>,
    rows: &[&SegmentEntry],
) -> rusqlite::Result<usize> {
    for (row, e) in rows.iter().enumerate() {
        bind_entry(stmt, row, e)?;
    }
    stmt.raw_execute()
}

/// Runs `stmt` (an [`INSERT`] or [`UPDATE`]) for `e`.
pub(crate) fn write_entry(
    stmt: &mut rusqlite::CachedStatement<'_>,
    e: &SegmentEntry,
) -> rusqlite::Result<usize> {
    stmt.execute(rusqlite::params![
        ord(e.base_id),
        ord(e.last_id),
        bits(e.record_count),
        ord(e.created_at),
        e.finalized_at.map(ord),
        e.archived_at.map(ord),
        e.status.as_str(),
        e.uncompressed_checksum.map(bits),
        e.compressed_checksum.map(bits),
        bits(e.original_size),
        e.compressed_size.map(bits),
        e.compression_ratio(),
        e.local_path.as_deref(),
        e.archive_key.as_deref(),
    ])
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

/// Reads one entry selected with `cols!()`. Anything that is not what this
/// code writes is a `CorruptEntry`, never a panic.
pub(crate) fn decode(row: &Row<'_>) -> Res<SegmentEntry> {
    let base_id = unord(int(row, 0, 0, "base_id")?);
    let status = match row.get_ref(6)? {
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
        uncompressed_checksum: opt_int(row, 7, base_id, "uncompressed_checksum")?.map(unbits),
        compressed_checksum: opt_int(row, 8, base_id, "compressed_checksum")?.map(unbits),
        original_size: unbits(int(row, 9, base_id, "original_size")?),
        compressed_size: opt_int(row, 10, base_id, "compressed_size")?.map(unbits),
        local_path: opt_text(row, 11, base_id, "local_path")?,
        archive_key: opt_text(row, 12, base_id, "archive_key")?,
    };
    entry.validate().map_err(|_| corrupt(base_id, "record_count"))?;
    Ok(entry)
}

/// What an existing file holds, as far as opening it is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// No file, an empty file, or a SQLite database with no schema at all.
    Empty,
    /// An index of this schema version.
    Version(u64),
}

fn not_an_index(path: &Path, reason: &'static str) -> Failure {
    IndexError::NotAnIndex {
        path: path.to_owned(),
        reason,
    }
    .into()
}

/// Maps a SQLite error met while reading `path` for the first time.
fn open_error(path: &Path, e: rusqlite::Error) -> Failure {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => not_an_index(path, "not a SQLite database"),
        Some(ErrorCode::DatabaseCorrupt) => SqliteIndexError::Corrupt {
            path: path.to_owned(),
            source: e,
        }
        .into(),
        _ => e.into(),
    }
}

fn io_error(path: &Path, source: std::io::Error) -> Failure {
    IndexError::Io {
        path: path.to_owned(),
        source,
    }
    .into()
}

/// Checks the file's first bytes without SQLite: the magic string, and that
/// the file is as long as its header says (when no WAL could hold the rest).
/// Returns whether the file exists with content.
fn check_header(path: &Path) -> Res<bool> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io_error(path, e)),
    };
    if !meta.is_file() {
        return Err(not_an_index(path, "not a regular file"));
    }
    let len = meta.len();
    if len == 0 {
        return Ok(false);
    }
    let mut header = [0u8; 100];
    let mut file = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
    let mut got = 0;
    while got < header.len() {
        match file.read(&mut header[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error(path, e)),
        }
    }
    if got < 16 || &header[..16] != b"SQLite format 3\0" {
        return Err(not_an_index(path, "not a SQLite database"));
    }
    if got < header.len() {
        return Err(SqliteIndexError::Truncated {
            path: path.to_owned(),
            expected_len: header.len() as u64,
            actual_len: len,
        }
        .into());
    }
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65536,
        n if n >= 512 && n.is_power_of_two() => u64::from(n),
        _ => return Err(not_an_index(path, "SQLite header has an invalid page size")),
    };
    let pages = u64::from(u32::from_be_bytes([
        header[28], header[29], header[30], header[31],
    ]));
    // The in-header size is valid only if the change counter matches the
    // "version valid for" field; a WAL may legitimately hold pages beyond it.
    let size_valid = header[24..28] == header[92..96] && pages > 0;
    let wal_has_frames = std::fs::metadata(wal_path(path)).is_ok_and(|m| m.len() > 0);
    let expected_len = pages * page_size;
    if size_valid && !wal_has_frames && len < expected_len {
        return Err(SqliteIndexError::Truncated {
            path: path.to_owned(),
            expected_len,
            actual_len: len,
        }
        .into());
    }
    Ok(true)
}

/// The path of the WAL file next to `db`.
pub(crate) fn wal_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push("-wal");
    PathBuf::from(s)
}

/// Reads what the database holds. Works on any connection (the read-only
/// inspector or the writer inside its migration transaction).
fn inspect(conn: &Connection, path: &Path) -> Res<Found> {
    let objects: Vec<(String, String)> = {
        let mut stmt = conn
            .prepare("SELECT type, name FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'")
            .map_err(|e| open_error(path, e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| open_error(path, e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| open_error(path, e))?
    };
    if objects.is_empty() {
        return Ok(Found::Empty);
    }
    let has_table = |name: &str| objects.iter().any(|(t, n)| t == "table" && n == name);
    if !has_table("metadata") {
        return Err(not_an_index(
            path,
            "a SQLite database of another schema (no metadata table)",
        ));
    }
    let metadata_columns = table_columns(conn, path, "metadata")?;
    if !["key", "value"]
        .iter()
        .all(|c| metadata_columns.iter().any(|m| m == c))
    {
        return Err(not_an_index(
            path,
            "a SQLite database of another schema (foreign metadata table)",
        ));
    }
    let version: Option<rusqlite::types::Value> = conn
        .query_row("SELECT value FROM metadata WHERE key = ?1", [VERSION_KEY], |r| {
            r.get(0)
        })
        .optional()
        .map_err(|e| open_error(path, e))?;
    let version = match version {
        None => {
            return Err(not_an_index(
                path,
                "a SQLite database of another schema (no schema_version)",
            ));
        }
        Some(rusqlite::types::Value::Text(t)) => t.trim().parse::<u64>().ok(),
        Some(rusqlite::types::Value::Integer(i)) => u64::try_from(i).ok(),
        Some(_) => None,
    }
    .ok_or_else(|| not_an_index(path, "schema_version in metadata is not a number"))?;
    if version > SCHEMA_VERSION {
        return Err(IndexError::UnsupportedSchemaVersion {
            found: version,
            supported: SCHEMA_VERSION,
        }
        .into());
    }
    if version == SCHEMA_VERSION && table_columns(conn, path, "segments")? != SEGMENT_COLUMNS {
        return Err(not_an_index(
            path,
            "a SQLite database of another schema (segments columns differ)",
        ));
    }
    Ok(Found::Version(version))
}

/// The column names of `table`, in table order (none if there is no such table).
fn table_columns(conn: &Connection, path: &Path, table: &str) -> Res<Vec<String>> {
    let mut stmt = conn
        .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
        .map_err(|e| open_error(path, e))?;
    let names = stmt
        .query_map([table], |r| r.get::<_, String>(0))
        .map_err(|e| open_error(path, e))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(|e| open_error(path, e))?;
    Ok(names)
}

/// Looks at an existing file without changing it, so that a file this code
/// refuses is left exactly as it was.
///
/// With a WAL next to it, the file is read through a read-only connection.
/// Without one, a read-only connection to a WAL-mode database would create
/// `-wal` and `-shm` files and leave them behind; a read-write connection
/// (without CREATE, with `query_only`) removes them again when it closes as
/// the last connection, and reading writes nothing to the database file.
pub(crate) fn check_existing(path: &Path) -> Res<()> {
    if !check_header(path)? {
        return Ok(());
    }
    let read_only = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = if wal_path(path).exists() {
        Connection::open_with_flags(path, read_only)
    } else {
        Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .or_else(|_| Connection::open_with_flags(path, read_only))
    }
    .map_err(|e| open_error(path, e))?;
    conn.execute_batch("PRAGMA query_only = 1")
        .map_err(|e| open_error(path, e))?;
    let found = inspect(&conn, path);
    conn.close().map_err(|(_, e)| open_error(path, e))?;
    found.map(|_| ())
}

/// Brings the schema to [`SCHEMA_VERSION`] in one transaction; checks again
/// inside it, so a concurrent opener cannot slip in between.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Res<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| open_error(path, e))?;
    let from = match inspect(&tx, path)? {
        Found::Empty => 0,
        Found::Version(v) => v,
    };
    if from == SCHEMA_VERSION {
        return Ok(());
    }
    for step in &MIGRATIONS[usize::try_from(from).unwrap_or(usize::MAX).min(MIGRATIONS.len())..] {
        tx.execute_batch(step)?;
    }
    tx.execute(
        "INSERT INTO metadata (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        rusqlite::params![VERSION_KEY, SCHEMA_VERSION.to_string()],
    )?;
    tx.execute(
        "INSERT OR IGNORE INTO metadata (key, value) VALUES ('created_by', ?1)",
        [concat!("aof-index-sqlite ", env!("CARGO_PKG_VERSION"))],
    )?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ord_keeps_u64_order() {
        let values = [
            0,
            1,
            2,
            1 << 62,
            (1 << 63) - 1,
            1 << 63,
            (1 << 63) + 1,
            u64::MAX - 1,
            u64::MAX,
        ];
        for w in values.windows(2) {
            assert!(ord(w[0]) < ord(w[1]), "{} vs {}", w[0], w[1]);
        }
        for v in values {
            assert_eq!(unord(ord(v)), v);
            assert_eq!(unbits(bits(v)), v);
        }
        assert_eq!(ord(0), i64::MIN);
        assert_eq!(ord(u64::MAX), i64::MAX);
        assert_eq!(bits(42), 42);
    }
}
