//! The SQLite backend of the aof segment index: [`SqliteSegmentIndex`].
//!
//! The index maps id ranges and timestamps to segment files. This crate keeps
//! it in one SQLite file that the stock `sqlite3` tool and plain SQL can read,
//! back up and repair, and implements [`SegmentIndex`] on it, so the engine
//! can hold it as an `Arc<dyn SegmentIndex>`.
//!
//! # Example
//!
//! ```
//! use aof_index_sqlite::{SegmentIndex, SegmentIndexExt, SqliteSegmentIndex};
//! use aof_record::{SegmentEntry, SegmentStatus};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("index.db");
//! let index = SqliteSegmentIndex::open(&path)?;
//! assert!(index.is_empty()?);
//!
//! // Segment 0 holds ids 0..=99 and is sealed; segment 100 is being written.
//! let sealed = SegmentEntry::new_active(0, 1_000, "00000000000000000000.seg")
//!     .finalize(Some(99), 4096, 0xfeed, 2_000)?;
//! index.add_entry(&sealed)?;
//! index.add_entry(&SegmentEntry::new_active(100, 2_000, "00000000000000000100.seg"))?;
//! index.update_segment_tail(100, Some(149), 2048)?;
//! index.sync()?; // durable from here on
//!
//! assert_eq!(index.find_segment_for_id(42)?.map(|e| e.base_id), Some(0));
//! assert_eq!(index.get_active_segment()?.map(|e| e.last_id), Some(149));
//! assert_eq!(index.get_max_last_id()?, Some(149));
//! index.update_segment_status(100, SegmentStatus::Finalized)?;
//! assert_eq!(index.get_latest_finalized_segment()?.map(|e| e.base_id), Some(100));
//!
//! let health = index.health_check()?;
//! assert!(health.integrity.is_ok());
//! assert_eq!(health.segments, 2);
//!
//! // Reopening finds everything again.
//! drop(index);
//! let index = SqliteSegmentIndex::open(&path)?;
//! assert_eq!(index.len()?, 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Schema
//!
//! ```sql
//! CREATE TABLE metadata (key TEXT PRIMARY KEY, value TEXT NOT NULL);
//! CREATE TABLE segments (
//!   base_id INTEGER PRIMARY KEY, last_id INTEGER NOT NULL, record_count INTEGER NOT NULL,
//!   created_at INTEGER NOT NULL, finalized_at INTEGER, archived_at INTEGER,
//!   uncompressed_checksum INTEGER, compressed_checksum INTEGER, original_size INTEGER NOT NULL,
//!   compressed_size INTEGER, compression_ratio REAL, status TEXT NOT NULL,
//!   local_path TEXT, archive_key TEXT);
//! CREATE INDEX idx_segments_last_id ON segments(last_id);
//! CREATE INDEX idx_segments_status ON segments(status, base_id);
//! CREATE INDEX idx_segments_finalized_at ON segments(finalized_at) WHERE finalized_at IS NOT NULL;
//! CREATE INDEX idx_segments_span ON segments(finalized_at - created_at) WHERE finalized_at IS NOT NULL;
//! CREATE INDEX idx_segments_open ON segments(created_at) WHERE finalized_at IS NULL;
//! ```
//!
//! This is schema version 2, what [`sql::MIGRATIONS`] build from an empty
//! file: [`sql::SCHEMA_V1`], then [`sql::SCHEMA_V2`], which rebuilds
//! `segments` in this column order (version 1 had `status` after
//! `archived_at`) and adds `idx_segments_span` and `idx_segments_open`, so
//! that a time-range query ([`sql::BY_TIME`]) reads two index ranges
//! instead of the whole table. [`sql`] holds every statement the index runs
//! on `segments`, for tools that want to run the same ones.
//! `metadata` holds `schema_version` (now `2`, see [`SCHEMA_VERSION`]),
//! `created_by`, once set `log_id` (the identity of the log the index
//! belongs to, [`SegmentIndex::set_log_identity`], as 32 hexadecimal digits;
//! an index without it is still a valid index of its version) and, once needed,
//! `full_sync_commits` (see Durability).
//! `status` holds the names of [`SegmentStatus`] (`'Active'`, `'Finalized'`,
//! `'ArchivedCached'`, `'ArchivedRemote'`). `compression_ratio`
//! is written from [`SegmentEntry::compression_ratio`] for SQL users and never
//! read back. A new file is created with `auto_vacuum = INCREMENTAL` (see
//! [`SqliteIndexOptions::auto_vacuum`]), so that maintenance can return the
//! pages of removed entries to the file system.
//!
//! # How u64 values are stored
//!
//! SQLite integers are i64; the entry's fields are u64 over their full range.
//!
//! * Values that queries compare — `base_id`, `last_id`, `created_at`,
//!   `finalized_at`, `archived_at` — are stored with the sign bit flipped,
//!   `(v ^ (1 << 63)) as i64` ([`encoding::ord`]), so that SQL order is u64
//!   order: id 0 is stored as `-9223372036854775808`, `u64::MAX` as
//!   `9223372036854775807`. In SQL, a value below 2^63 decodes as
//!   `base_id + 9223372036854775807 + 1`; to select id 42 write
//!   `WHERE base_id = 42 - 9223372036854775807 - 1`.
//! * Values nobody orders — `record_count`, `original_size`,
//!   `compressed_size` and both checksums — are plain two's-complement bit
//!   casts ([`encoding::bits`]): values below 2^63 read as themselves,
//!   larger ones as negative numbers (`v + 18446744073709551616`).
//!
//! # Concurrency
//!
//! One thread owns the only read-write connection. Mutations are sent to it
//! over a channel; it drains whatever is queued and runs it as one
//! transaction (group commit), each mutation in its own SAVEPOINT so a
//! refused one does not disturb the others, and answers each caller after
//! the COMMIT. All the checks of the [`SegmentIndex`] contract run inside
//! that transaction. Queries run on an r2d2 pool of read-only connections;
//! the database is in WAL mode, so they run while the writer writes and each
//! sees a committed state. Every connection has a busy timeout, so a caller
//! does not see `SQLITE_BUSY` unless another process holds the database
//! for longer than that.
//!
//! # Durability
//!
//! Commits run with `synchronous = NORMAL`: a committed change survives a
//! crash of the process at once, and a power loss once it has been
//! checkpointed. [`SegmentIndex::sync`] runs `PRAGMA wal_checkpoint(FULL)`
//! on the writer after everything queued before it has committed: the WAL is
//! fsynced, copied into the database file, and the database file fsynced,
//! so the database file alone holds every change (and the WAL stays short).
//! A checkpoint needs the readers to move off older snapshots; when one
//! holds its snapshot past the busy timeout (a long backup step, say),
//! `sync` instead commits one small write with `synchronous = FULL` (it
//! counts these in `metadata` under `full_sync_commits`), which fsyncs the
//! WAL and with it every earlier commit. Either way nothing is
//! acknowledged as durable that is not. With
//! [`SqliteIndexOptions::durable_commits`] every commit fsyncs the WAL
//! (`synchronous = FULL`) and `sync` only waits for queued writes.
//!
//! After a commit or checkpoint fails with an I/O error (a failed fsync may
//! leave pages the kernel reports clean but never wrote), the writer is
//! poisoned: every later write and `sync` fails with
//! [`SqliteIndexError::Poisoned`] until the index is reopened, which
//! recovers from what is on disk; queries keep working. A poisoned writer
//! also skips SQLite's checkpoint on close.
//!
//! # Opening
//!
//! An existing file is first checked without SQLite (magic bytes, length
//! against its header) and then through a read-only connection; a file that
//! is refused — not a SQLite database ([`IndexError::NotAnIndex`]), corrupt
//! or truncated ([`SqliteIndexError::Corrupt`], [`SqliteIndexError::Truncated`]),
//! of another schema (`NotAnIndex`), or of a newer schema version
//! ([`IndexError::UnsupportedSchemaVersion`]) — is never opened for writing.
//! An empty or missing file gets the schema; an older version is migrated in
//! one transaction (a crash during it leaves the old version, whole).
//!
//! [`SqliteIndexOptions::vfs`] opens every connection on a SQLite VFS the
//! embedder registered (an encrypting or in-memory one; the workspace's
//! crash tests use one that routes SQLite's I/O through aof-core's
//! fault-injecting file system). The VFS needs shared memory (`xShmMap`)
//! for WAL mode; without it the open fails with [`SqliteIndexError::NoWal`].

pub mod encoding;
mod error;
mod identity;
mod ops;
mod schema;
pub mod sql;
mod writer;

pub use aof_record::index::{IndexError, IndexResult, SegmentIndex, SegmentIndexExt};
pub use error::{BACKEND, SqliteIndexError};
pub use ops::{
    BackupOptions, BackupProgress, Checkpoint, HealthReport, Integrity, Maintenance, MaintenanceReport,
};
pub use schema::SCHEMA_VERSION;

/// Every entry of the index at `path`, read without changing a byte of it
/// or of its `-wal`/`-shm` files (no writer thread, no migration; with a WAL
/// present, from a private copy), beside a live writer in another process
/// or none. Empty when there is no index there. An index of an older
/// schema version is read as it is, unmigrated (every version this code
/// knows has the columns [`sql::ALL`] names); a newer one is refused.
pub fn read_entries(path: impl AsRef<Path>) -> IndexResult<Vec<SegmentEntry>> {
    let path = path.as_ref();
    // Opening checked the version (1..=SCHEMA_VERSION) and its columns.
    let read = |conn: &rusqlite::Connection, _version: u64| -> error::Res<Vec<SegmentEntry>> {
        let mut stmt = conn.prepare(sql::ALL)?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(sql::decode(row)?);
        }
        Ok(out)
    };
    let wal = schema::wal_path(path);
    if !wal.exists() {
        // No WAL: opened as opening checks a file, which leaves no byte changed.
        return Ok(schema::read_existing(path, None, read)?.unwrap_or_default());
    }
    // A WAL beside it (a live writer, or one that crashed): any connection
    // to it, even read-only, writes the shared-memory file. Read a private
    // copy of the database and its WAL instead, taken while neither changed.
    let copy = private_copy(path, &wal)?;
    let result = schema::read_existing(&copy.join(INDEX_COPY), None, read);
    let _ = std::fs::remove_dir_all(&copy);
    Ok(result?.unwrap_or_default())
}

const INDEX_COPY: &str = "index.sqlite";

/// Copies the database at `db` and then its WAL into a new private
/// directory, again until the WAL's header (its salts and checkpoint
/// sequence) is the same after the WAL's copy as before the database's.
///
/// That is what keeps the copy consistent, however much the writer
/// commits meanwhile:
/// - frames appended to the WAL during its copy are checksummed in a chain:
///   the copy's readers stop at the last complete commit;
/// - a checkpoint during the database's copy writes into it only pages of
///   committed frames already in the WAL, which the WAL's copy, taken
///   after, still holds (a WAL only grows until it restarts), and readers
///   take a page from the WAL before the database;
/// - a WAL that restarted in between (new salts, frames overwritten from
///   the start) changes the header: the copy is taken again.
///
/// An earlier version waited for the files' lengths and modification times
/// to hold across the copy, which a writer committing continuously never
/// gave it.
fn private_copy(db: &Path, wal: &Path) -> IndexResult<PathBuf> {
    let io = |path: &Path, source: std::io::Error| IndexError::Io {
        path: path.to_owned(),
        source,
    };
    let header = |p: &Path| -> IndexResult<Vec<u8>> {
        use std::io::Read;
        let mut header = Vec::with_capacity(WAL_HEADER);
        std::fs::File::open(p)
            .and_then(|f| f.take(WAL_HEADER as u64).read_to_end(&mut header))
            .map_err(|e| io(p, e))?;
        Ok(header)
    };
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("aof-index-{}-{nonce}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let target = dir.join(INDEX_COPY);
    let target_wal = schema::wal_path(&target);
    for _ in 0..20 {
        let before = header(wal)?;
        std::fs::copy(db, &target).map_err(|e| io(db, e))?;
        std::fs::copy(wal, &target_wal).map_err(|e| io(wal, e))?;
        if header(wal)? == before && header(&target_wal)? == before {
            return Ok(dir);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = std::fs::remove_dir_all(&dir);
    Err(IndexError::Io {
        path: db.to_owned(),
        source: std::io::Error::other("the index's WAL kept restarting while it was copied for reading"),
    })
}

/// Bytes of a WAL's header.
const WAL_HEADER: usize = 32;

/// Opens `path` with `flags` on the VFS named `vfs` (the default one when `None`).
pub(crate) fn open_on(path: &Path, flags: OpenFlags, vfs: Option<&str>) -> rusqlite::Result<Connection> {
    match vfs {
        None => Connection::open_with_flags(path, flags),
        Some(vfs) => Connection::open_with_flags_and_vfs(path, flags, vfs),
    }
}

/// A `file:` URI naming `path` on the VFS `vfs`, with the characters a URI
/// gives a meaning to escaped.
fn vfs_uri(path: &Path, vfs: &str) -> String {
    fn escape(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            match b {
                b'%' | b'?' | b'#' | b'&' | b'=' | b' ' | 0x80.. => out.push_str(&format!("%{b:02X}")),
                _ => out.push(char::from(b)),
            }
        }
        out
    }
    format!("file:{}?vfs={}", escape(&path.to_string_lossy()), escape(vfs))
}
pub use sql::SEGMENT_COLUMNS;
pub use writer::WriterStats;

use aof_record::{LogId, SegmentEntry, SegmentStatus};
use encoding::{ord, unord};
use error::{Failure, Res};
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags};
use sql::decode;
use std::path::{Path, PathBuf};
use std::time::Duration;
use writer::{WriteOp, Writer};

/// Tuning for [`SqliteSegmentIndex::open_with`]; [`Default`] suits an index
/// of up to millions of segments.
#[derive(Debug, Clone)]
pub struct SqliteIndexOptions {
    readers: u32,
    busy_timeout: Duration,
    pool_timeout: Duration,
    cache_size_kib: u32,
    mmap_size: u64,
    durable_commits: bool,
    max_batch: usize,
    auto_vacuum: bool,
    vfs: Option<String>,
}

impl Default for SqliteIndexOptions {
    fn default() -> Self {
        Self {
            readers: 4,
            busy_timeout: Duration::from_secs(5),
            pool_timeout: Duration::from_secs(30),
            cache_size_kib: 8 * 1024,
            mmap_size: 256 << 20,
            durable_commits: false,
            max_batch: 1024,
            auto_vacuum: true,
            vfs: None,
        }
    }
}

impl SqliteIndexOptions {
    /// Read-only connections in the pool (at least 1; default 4). Queries
    /// beyond this many at once wait for a free connection.
    #[must_use]
    pub fn readers(mut self, n: u32) -> Self {
        self.readers = n.max(1);
        self
    }

    /// How long a connection waits for a lock another process holds before
    /// failing with `SQLITE_BUSY` (default 5 s).
    #[must_use]
    pub fn busy_timeout(mut self, t: Duration) -> Self {
        self.busy_timeout = t;
        self
    }

    /// How long a query waits for a free reader connection (default 30 s).
    #[must_use]
    pub fn pool_timeout(mut self, t: Duration) -> Self {
        self.pool_timeout = t;
        self
    }

    /// Page cache per connection, in KiB (default 8 MiB).
    #[must_use]
    pub fn cache_size_kib(mut self, kib: u32) -> Self {
        self.cache_size_kib = kib;
        self
    }

    /// Bytes of the file each connection maps into memory (default 256 MiB; 0 turns mmap off).
    #[must_use]
    pub fn mmap_size(mut self, bytes: u64) -> Self {
        self.mmap_size = bytes;
        self
    }

    /// Whether every commit fsyncs the WAL (`synchronous = FULL`), so a
    /// change is durable when its call returns; default `false`
    /// (`synchronous = NORMAL`, durable at [`SegmentIndex::sync`]).
    #[must_use]
    pub fn durable_commits(mut self, on: bool) -> Self {
        self.durable_commits = on;
        self
    }

    /// Most mutations grouped into one transaction (at least 1; default 1024).
    #[must_use]
    pub fn max_batch(mut self, n: usize) -> Self {
        self.max_batch = n.max(1);
        self
    }

    /// Whether a NEW file is created with `auto_vacuum = INCREMENTAL`, so
    /// that [`SqliteSegmentIndex::maintain`] can return the pages of removed
    /// entries to the file system (default `true`). It costs bulk inserts
    /// some speed (pointer-map pages; see the crate's bench). An existing
    /// file keeps the mode it was created with.
    #[must_use]
    pub fn auto_vacuum(mut self, on: bool) -> Self {
        self.auto_vacuum = on;
        self
    }

    /// Opens every connection on the SQLite VFS registered under `name`
    /// (see `sqlite3_vfs_register`) instead of the default one, so that the
    /// database, its WAL and its shared memory live wherever that VFS puts
    /// them: an encrypting or in-memory file system, or a fault-injecting
    /// one for crash tests. The VFS must be registered before the index is
    /// opened; an unknown name fails the open. Default: the OS file system.
    ///
    /// On a named VFS the open checks only what SQLite checks (a file that
    /// is not a database, a corrupt or a newer-schema one is still refused);
    /// the byte-level header check that reads the file directly (and
    /// reports [`SqliteIndexError::Truncated`]) runs on OS files only.
    /// [`SqliteSegmentIndex::backup_to`] still writes its copy to an OS path.
    #[must_use]
    pub fn vfs(mut self, name: impl Into<String>) -> Self {
        self.vfs = Some(name.into());
        self
    }

    /// Opens `path` with `flags` on the configured VFS.
    pub(crate) fn connect(&self, path: &Path, flags: OpenFlags) -> rusqlite::Result<Connection> {
        open_on(path, flags, self.vfs.as_deref())
    }

    /// Applies the per-connection pragmas every connection gets.
    fn tune(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.busy_timeout(self.busy_timeout)?;
        conn.execute_batch(&format!(
            "PRAGMA cache_size = -{}; PRAGMA temp_store = MEMORY; PRAGMA mmap_size = {};",
            self.cache_size_kib, self.mmap_size
        ))?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(())
    }
}

/// A [`SegmentIndex`] in a SQLite file: one writer thread, a pool of readers.
///
/// See the [crate docs](crate) for the schema, the encoding and the
/// durability rules.
pub struct SqliteSegmentIndex {
    // Field order is drop order: the readers close first, so that the
    // writer's connection is the last one and SQLite checkpoints and removes
    // the WAL when it closes.
    readers: r2d2::Pool<SqliteConnectionManager>,
    writer: Writer,
    path: PathBuf,
    options: SqliteIndexOptions,
}

impl std::fmt::Debug for SqliteSegmentIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.readers.state();
        f.debug_struct("SqliteSegmentIndex")
            .field("path", &self.path)
            .field("reader_connections", &state.connections)
            .field("idle_readers", &state.idle_connections)
            .field("writer", &self.writer)
            .finish_non_exhaustive()
    }
}

impl SqliteSegmentIndex {
    /// Opens the index at `path` with default options, creating it if the
    /// file is missing or empty. See the crate docs for what is refused.
    pub fn open(path: impl AsRef<Path>) -> IndexResult<Self> {
        Self::open_with(path, &SqliteIndexOptions::default())
    }

    /// Opens the index at `path` with `options`, creating it if the file is
    /// missing or empty.
    pub fn open_with(path: impl AsRef<Path>, options: &SqliteIndexOptions) -> IndexResult<Self> {
        Ok(Self::open_inner(path.as_ref(), options)?)
    }

    fn open_inner(path: &Path, options: &SqliteIndexOptions) -> Res<Self> {
        schema::check_existing(path, options.vfs.as_deref())?;
        let mut conn = options.connect(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        options.tune(&conn)?;
        if options.auto_vacuum {
            // Takes effect only while the file has no table yet, i.e. when it is new.
            conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL")?;
        }
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(SqliteIndexError::NoWal {
                path: path.to_owned(),
                mode,
            }
            .into());
        }
        let synchronous = if options.durable_commits { "FULL" } else { "NORMAL" };
        conn.execute_batch(&format!("PRAGMA synchronous = {synchronous}"))?;
        schema::migrate(&mut conn, path)?;

        let tuning = options.clone();
        let read_only = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let manager = match &options.vfs {
            None => SqliteConnectionManager::file(path).with_flags(read_only),
            // The pool opens by name only: a URI carries the VFS.
            Some(vfs) => SqliteConnectionManager::file(vfs_uri(path, vfs))
                .with_flags(read_only | OpenFlags::SQLITE_OPEN_URI),
        }
        .with_init(move |c| tuning.tune(c));
        // No minimum of idle connections: r2d2 would top it up from a
        // background thread, and a connection opened there after the index
        // is dropped would outlive the writer's and keep the WAL around.
        let readers = r2d2::Pool::builder()
            .max_size(options.readers)
            .min_idle(Some(0))
            .test_on_check_out(false)
            .idle_timeout(None)
            .max_lifetime(None)
            .connection_timeout(options.pool_timeout)
            .build(manager)?;
        // Opens the first reader now, so that a reader that cannot open fails here.
        drop(readers.get()?);
        let writer = Writer::spawn(conn, options.max_batch)?;
        Ok(Self {
            readers,
            writer,
            path: path.to_owned(),
            options: options.clone(),
        })
    }

    /// The database file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Counters of the writer thread: transactions, mutations, failures.
    #[must_use]
    pub fn writer_stats(&self) -> WriterStats {
        self.writer.stats()
    }

    /// Runs `f` on a pooled read-only connection.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Res<T>) -> IndexResult<T> {
        let conn = self.readers.get().map_err(Failure::from)?;
        Ok(f(&conn)?)
    }

    fn entries(&self, query: &str, params: impl rusqlite::Params) -> IndexResult<Vec<SegmentEntry>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(query)?;
            let mut rows = stmt.query(params)?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(decode(row)?);
            }
            Ok(out)
        })
    }

    fn entry(&self, query: &str, params: impl rusqlite::Params) -> IndexResult<Option<SegmentEntry>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(query)?;
            let mut rows = stmt.query(params)?;
            match rows.next()? {
                Some(row) => decode(row).map(Some),
                None => Ok(None),
            }
        })
    }

    fn write(&self, op: WriteOp) -> IndexResult<Option<SegmentEntry>> {
        Ok(self.writer.write(op)?)
    }
}

impl SegmentIndex for SqliteSegmentIndex {
    fn add_entry(&self, entry: &SegmentEntry) -> IndexResult<()> {
        self.write(WriteOp::Add(vec![entry.clone()])).map(drop)
    }

    fn add_entries(&self, entries: &[SegmentEntry]) -> IndexResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.write(WriteOp::Add(entries.to_vec())).map(drop)
    }

    fn update_entry(&self, entry: &SegmentEntry) -> IndexResult<()> {
        self.write(WriteOp::Update(entry.clone())).map(drop)
    }

    fn remove_entry(&self, base_id: u64) -> IndexResult<Option<SegmentEntry>> {
        self.write(WriteOp::Remove(base_id))
    }

    fn get_entry(&self, base_id: u64) -> IndexResult<Option<SegmentEntry>> {
        self.read(|conn| writer::get(conn, base_id))
    }

    fn find_segment_for_id(&self, id: u64) -> IndexResult<Option<SegmentEntry>> {
        Ok(self.entry(sql::FIND_ID, [ord(id)])?.filter(|e| e.contains(id)))
    }

    fn find_segments_for_timestamp(&self, start_us: u64, end_us: u64) -> IndexResult<Vec<SegmentEntry>> {
        self.entries(sql::BY_TIME, [ord(start_us), ord(end_us)])
    }

    fn get_all_segments(&self) -> IndexResult<Vec<SegmentEntry>> {
        self.entries(sql::ALL, [])
    }

    fn get_segments_before(&self, id: u64) -> IndexResult<Vec<SegmentEntry>> {
        self.entries(sql::BEFORE, [ord(id)])
    }

    fn get_max_last_id(&self) -> IndexResult<Option<u64>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(sql::MAX_LAST_ID)?;
            let mut rows = stmt.query([])?;
            match rows.next()? {
                None => Ok(None),
                Some(row) => match row.get_ref(0)? {
                    rusqlite::types::ValueRef::Integer(v) => Ok(Some(unord(v))),
                    _ => Err(IndexError::CorruptEntry {
                        base_id: 0,
                        field: "last_id",
                    }
                    .into()),
                },
            }
        })
    }

    fn get_active_segment(&self) -> IndexResult<Option<SegmentEntry>> {
        self.entry(sql::LATEST_WITH_STATUS, [SegmentStatus::Active.as_str()])
    }

    fn get_latest_finalized_segment(&self) -> IndexResult<Option<SegmentEntry>> {
        self.entry(sql::LATEST_WITH_STATUS, [SegmentStatus::Finalized.as_str()])
    }

    fn get_segments_for_archiving(&self, count: usize) -> IndexResult<Vec<SegmentEntry>> {
        if count == 0 {
            return Ok(Vec::new());
        }
        // A negative LIMIT means "no limit" to SQLite; clamp instead of wrapping.
        let limit = i64::try_from(count).unwrap_or(i64::MAX);
        self.entries(sql::FOR_ARCHIVING, [limit])
    }

    fn update_segment_status(&self, base_id: u64, status: SegmentStatus) -> IndexResult<()> {
        self.write(WriteOp::Status(base_id, status)).map(drop)
    }

    fn update_segment_tail(&self, base_id: u64, last_id: Option<u64>, size: u64) -> IndexResult<()> {
        self.write(WriteOp::Tail {
            base_id,
            last_id,
            size,
        })
        .map(drop)
    }

    fn log_identity(&self) -> IndexResult<Option<LogId>> {
        self.read(identity::read)
    }

    fn set_log_identity(&self, id: LogId) -> IndexResult<()> {
        self.write(WriteOp::SetLogId(id)).map(drop)
    }

    fn sync(&self) -> IndexResult<()> {
        if self.options.durable_commits {
            // Every commit already fsynced the WAL; wait for what is queued.
            return Ok(self.writer.exclusive(|_| Ok(()))?);
        }
        Ok(self.writer.exclusive(ops::make_durable)?)
    }

    fn len(&self) -> IndexResult<usize> {
        self.read(|conn| {
            let n: i64 = conn.prepare_cached(sql::COUNT)?.query_row([], |r| r.get(0))?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }

    fn copy_to(&self, dest: &Path) -> IndexResult<()> {
        self.backup_to(dest, &BackupOptions::default(), |_| {}).map(drop)
    }
}
