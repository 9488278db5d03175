//! The schema's version, and the checks and migrations that run when a file
//! is opened.

use crate::error::{Failure, Res, SqliteIndexError};
use crate::sql::{MIGRATIONS, SEGMENT_COLUMNS, SEGMENT_COLUMNS_V1};
use aof_record::IndexError;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The schema version this code writes, and the newest it opens.
pub const SCHEMA_VERSION: u64 = 2;

/// `metadata` key holding the schema version (a decimal number).
pub(crate) const VERSION_KEY: &str = "schema_version";

/// `metadata` key counting the syncs that had to fsync the WAL with a
/// `synchronous = FULL` commit because readers kept the checkpoint from
/// finishing.
pub(crate) const FULL_SYNC_KEY: &str = "full_sync_commits";

const _: () = assert!(MIGRATIONS.len() as u64 == SCHEMA_VERSION);

/// The indexes a query names with `INDEXED BY`: without them it would fail.
const REQUIRED_INDEXES: [&str; 2] = ["idx_segments_finalized_at", "idx_segments_open"];

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
    let columns: &[&str] = match version {
        1 => &SEGMENT_COLUMNS_V1,
        SCHEMA_VERSION => &SEGMENT_COLUMNS,
        _ => &[],
    };
    if !columns.is_empty() && table_columns(conn, path, "segments")? != columns {
        return Err(not_an_index(
            path,
            "a SQLite database of another schema (segments columns differ)",
        ));
    }
    let has_index = |name: &str| objects.iter().any(|(t, n)| t == "index" && n == name);
    if version == SCHEMA_VERSION && !REQUIRED_INDEXES.iter().all(|i| has_index(i)) {
        return Err(not_an_index(
            path,
            "a SQLite database of another schema (an index the queries use is missing)",
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
pub(crate) fn check_existing(path: &Path, vfs: Option<&str>) -> Res<()> {
    read_existing(path, vfs, |_, _| Ok(()))?;
    Ok(())
}

/// Runs `read` on an existing index file, opened as [`check_existing`]
/// does (so nothing is left changed), after checking its schema; `None`
/// when there is no index there (no file, or an empty one). On a named
/// VFS, the byte-level header check is skipped (it reads OS files) and the
/// files' existence is asked from the VFS.
pub(crate) fn read_existing<T>(
    path: &Path,
    vfs: Option<&str>,
    read: impl FnOnce(&Connection, u64) -> Res<T>,
) -> Res<Option<T>> {
    let wal_exists = match vfs {
        None => {
            if !check_header(path)? {
                return Ok(None);
            }
            wal_path(path).exists()
        }
        Some(name) => {
            if !vfs_exists(name, path)? {
                return Ok(None);
            }
            vfs_exists(name, &wal_path(path))?
        }
    };
    let read_only = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = if wal_exists {
        crate::open_on(path, read_only, vfs)
    } else {
        crate::open_on(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            vfs,
        )
        .or_else(|_| crate::open_on(path, read_only, vfs))
    }
    .map_err(|e| open_error(path, e))?;
    conn.execute_batch("PRAGMA query_only = 1")
        .map_err(|e| open_error(path, e))?;
    let found = inspect(&conn, path).and_then(|found| match found {
        Found::Empty => Ok(None),
        Found::Version(v) => read(&conn, v).map(Some),
    });
    conn.close().map_err(|(_, e)| open_error(path, e))?;
    found
}

/// Whether `path` exists on the registered VFS `name` (its `xAccess`).
#[allow(unsafe_code)]
fn vfs_exists(name: &str, path: &Path) -> Res<bool> {
    use rusqlite::ffi;
    let unknown = || -> Failure {
        rusqlite::Error::SqliteFailure(
            ffi::Error::new(ffi::SQLITE_ERROR),
            Some(format!("no SQLite VFS is registered as {name:?}")),
        )
        .into()
    };
    let bad_name = |_| not_an_index(path, "a path or VFS name holds a NUL byte");
    let c_name = std::ffi::CString::new(name).map_err(bad_name)?;
    let c_path = std::ffi::CString::new(path.to_string_lossy().as_bytes()).map_err(bad_name)?;
    // SAFETY: `c_name` is a NUL-terminated string that outlives the call;
    // sqlite3_vfs_find only reads it and returns a registered VFS or null.
    let vfs = unsafe { ffi::sqlite3_vfs_find(c_name.as_ptr()) };
    if vfs.is_null() {
        return Err(unknown());
    }
    // SAFETY: `vfs` is non-null and points at a registered sqlite3_vfs,
    // which SQLite keeps alive until it is unregistered.
    let access = unsafe { (*vfs).xAccess }.ok_or_else(unknown)?;
    let mut found: std::os::raw::c_int = 0;
    // SAFETY: xAccess takes its own VFS, a NUL-terminated path that lives
    // across the call, a flag, and a pointer to an int it writes.
    let rc = unsafe { access(vfs, c_path.as_ptr(), ffi::SQLITE_ACCESS_EXISTS, &raw mut found) };
    if rc != ffi::SQLITE_OK {
        return Err(rusqlite::Error::SqliteFailure(ffi::Error::new(rc), None).into());
    }
    Ok(found != 0)
}

/// Brings the schema to [`SCHEMA_VERSION`] in one transaction, running the
/// steps of [`MIGRATIONS`] from the file's version on (an empty file from
/// version 0); checks again inside it, so a concurrent opener cannot slip
/// in between. A crash or an error leaves the file as it was (SQLite's
/// atomic commit).
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
