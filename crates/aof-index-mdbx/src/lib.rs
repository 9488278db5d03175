//! The aof segment index on [libmdbx](https://libmdbx.dqdkfa.ru/):
//! [`MdbxSegmentIndex`], an [`aof_record::index::SegmentIndex`] backend.
//!
//! It exists for lookup speed: a point lookup
//! ([`SegmentIndex::find_segment_for_id`]) is one read transaction and one
//! B-tree cursor seek over a memory map, several times faster than SQLite. It
//! behaves exactly like the in-memory reference and the SQLite backend: all
//! three pass the same conformance suite, and migrating between them is
//! [`aof_record::index::copy_index`].
//!
//! ```
//! use aof_index_mdbx::MdbxSegmentIndex;
//! use aof_record::entry::SegmentEntry;
//! use aof_record::index::SegmentIndex;
//!
//! let dir = tempfile::tempdir()?;
//! let index = MdbxSegmentIndex::open(dir.path().join("segments.mdbx"))?;
//! let mut active = SegmentEntry::new_active(1000, 1_700_000_000_000_000, "00000000000000001000.seg");
//! active.set_tail(Some(1099), 4096)?;
//! index.add_entry(&active)?;
//! index.sync()?; // durable from here on
//! assert_eq!(index.find_segment_for_id(1050)?.map(|e| e.base_id), Some(1000));
//! assert_eq!(index.find_segment_for_id(1100)?, None);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Files
//!
//! The path given to [`MdbxSegmentIndex::open`] is the MDBX data file itself
//! (`MDBX_NOSUBDIR`); libmdbx keeps its lock file next to it, at the same path
//! with `-lck` appended. [`SegmentIndex::copy_to`] writes a compacted data
//! file that `open` takes as it is. The file is opened `MDBX_EXCLUSIVE`: one
//! handle in one process at a time, so no other writer can change it behind
//! the read-transaction pool (a second `open` fails with
//! [`IndexError::Backend`]).
//!
//! # Reads
//!
//! Beginning an MDBX read transaction costs as much as the lookup itself, so
//! reads reuse them from a small pool. Each pooled transaction is tagged with
//! the number of writes committed when it began; a write bumps that number
//! after its commit and empties the pool, and a transaction with an old tag is
//! dropped, never used. So every read sees every write that returned before it
//! started (the trait's contract), and no old snapshot is kept past the next
//! write. Table handles are opened once, for the environment's lifetime.
//!
//! # Tables
//!
//! | table | key | value |
//! |---|---|---|
//! | `aof.entries` | `base_id`, u64 big-endian (key order is id order) | the entry, layout below |
//! | `aof.by_status` | status byte (1 Active, 2 Finalized, 3 ArchivedCached, 4 ArchivedRemote) ++ `base_id` BE | empty |
//! | `aof.by_time` | end time BE (`finalized_at`, or `u64::MAX` while open-ended) ++ `base_id` BE | `created_at`, u64 BE |
//! | `aof.meta` | `b"format"`, `b"version"`, `b"max_span"` | `b"aof-segment-index"`, u64 BE, u64 BE |
//!
//! Every mutation rewrites the entry and its two secondary rows in **one**
//! write transaction, after checking it there (duplicates, overlaps with the
//! neighbours found by cursor seeks, record counts, lifecycle moves), so the
//! tables never disagree and a refused call changes nothing.
//! [`SegmentIndex::add_entries`] is one write transaction for the whole batch:
//! a libmdbx write transaction costs 60–90 µs here, a put well under 1 µs.
//!
//! A time query (`created_at <= end && start <= end_time`) scans `aof.by_time`
//! from `start` up to `end + max_span`, then jumps to the open-ended rows.
//! `max_span` is the longest `finalized_at - created_at` ever written: an upper
//! bound that only grows, so the scan never misses an entry and, with segments
//! of similar lengths, reads little more than the answer.
//!
//! # Entry layout, version 1
//!
//! Integers little-endian; an absent optional number is stored as 0 with its
//! presence bit clear.
//!
//! | offset | bytes | field |
//! |---|---|---|
//! | 0 | 1 | layout version, 1 |
//! | 1 | 1 | status byte, as in `aof.by_status` |
//! | 2 | 1 | presence bits: 0 `finalized_at`, 1 `archived_at`, 2 `uncompressed_checksum`, 3 `compressed_checksum`, 4 `compressed_size`, 5 `local_path`, 6 `archive_key` |
//! | 3 | 1 | reserved, 0 |
//! | 4 | 8 | `base_id` (must equal the key) |
//! | 12 | 8 | `last_id` |
//! | 20 | 8 | `record_count` |
//! | 28 | 8 | `created_at` |
//! | 36 | 8 | `original_size` |
//! | 44 | 8 | `finalized_at` |
//! | 52 | 8 | `archived_at` |
//! | 60 | 8 | `uncompressed_checksum` |
//! | 68 | 8 | `compressed_checksum` |
//! | 76 | 8 | `compressed_size` |
//! | 84 | 4 | length of `local_path` in bytes (u32) |
//! | 88 | 4 | length of `archive_key` in bytes (u32) |
//! | 92 | … | `local_path` then `archive_key`, UTF-8; nothing after them |
//!
//! Decoding is defensive: a value that is short, long, of another layout, with
//! unknown bits, a `base_id` other than its key, invalid UTF-8 or a record
//! count that does not span its ids is [`IndexError::CorruptEntry`] naming the
//! field, never a panic.
//!
//! # Format versions
//!
//! `aof.meta` holds [`FORMAT_VERSION`]. A file with a newer version is
//! refused with [`IndexError::UnsupportedSchemaVersion`] after a read-only
//! look, so it is not modified (one exception: a file whose writer died with
//! unsynced commits can only be opened read-write, and libmdbx recovers it
//! before the version is read). A file that is not an MDBX environment, or an
//! MDBX environment without the `aof.meta` marker, is
//! [`IndexError::NotAnIndex`].
//!
//! # Durability
//!
//! Commits use `MDBX_SAFE_NOSYNC`: a commit writes its pages but does not
//! fsync, and [`SegmentIndex::sync`] forces an environment sync
//! (`mdbx_env_sync_ex(force)`), after which every committed change is durable.
//! That is exactly the trait's contract ("durable once `sync` returns") at the
//! cost of a write transaction rather than a write transaction plus two fsyncs
//! on every tail update. A crash cannot corrupt the file: libmdbx keeps the
//! last synced ("steady") state intact and rolls back to it, losing only the
//! commits since the last `sync`, which nobody was promised. A process crash
//! without an OS crash loses nothing (the pages are in the page cache;
//! `tests/crash.rs` aborts a writer and reopens).
//! [`MdbxOptions::durable_commits`] switches to `MDBX_SYNC_DURABLE`, where
//! every commit is durable on its own.

mod codec;

use aof_record::entry::{SegmentEntry, SegmentStatus};
use aof_record::index::{IndexError, IndexResult, SegmentIndex, contract};
use codec::{
    decode_entry, decode_id_key, decode_meta_u64, decode_status_key, decode_time_row, encode_entry, id_key,
    status_key, time_key, time_key_parts,
};
use libmdbx::{
    Database, DatabaseOptions, Mode, NoWriteMap, RO, RW, ReadWriteOptions, SyncMode, Table, TableFlags,
    Transaction, TransactionKind, WriteFlags,
};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Version of the environment's layout (tables, keys and entry encoding)
/// written by this code, and the newest it opens.
pub const FORMAT_VERSION: u64 = 1;

const BACKEND: &str = "mdbx";
const ENTRIES: &str = "aof.entries";
const BY_STATUS: &str = "aof.by_status";
const BY_TIME: &str = "aof.by_time";
const META: &str = "aof.meta";
const META_FORMAT: &[u8] = b"format";
const META_VERSION: &[u8] = b"version";
const META_MAX_SPAN: &[u8] = b"max_span";
const FORMAT_MAGIC: &[u8] = b"aof-segment-index";

type Env = Database<NoWriteMap>;
type Txn<'db, K> = Transaction<'db, K, NoWriteMap>;
type Bytes<'t> = Cow<'t, [u8]>;

/// How [`MdbxSegmentIndex::open_with_options`] opens the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MdbxOptions {
    /// Fsync on every commit (`MDBX_SYNC_DURABLE`) instead of only in
    /// [`SegmentIndex::sync`] (`MDBX_SAFE_NOSYNC`, the default).
    pub durable_commits: bool,
    /// Largest size the data file may grow to, in bytes (default 64 GiB;
    /// only address space is reserved up front).
    pub max_size: usize,
}

impl Default for MdbxOptions {
    fn default() -> Self {
        Self {
            durable_commits: false,
            max_size: 64 << 30,
        }
    }
}

impl MdbxOptions {
    /// Sets [`MdbxOptions::durable_commits`].
    #[must_use]
    pub const fn durable_commits(mut self, yes: bool) -> Self {
        self.durable_commits = yes;
        self
    }

    /// Sets [`MdbxOptions::max_size`].
    #[must_use]
    pub const fn max_size(mut self, bytes: usize) -> Self {
        self.max_size = bytes;
        self
    }
}

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

type RoTxn<'env> = Txn<'env, RO>;

/// Table handles opened once for the environment's lifetime.
struct Tables<'env> {
    entries: Table<'env>,
    by_status: Table<'env>,
    by_time: Table<'env>,
    meta: Table<'env>,
}

/// Most read transactions kept for reuse.
const POOL_MAX: usize = 32;

/// What lives next to the environment and borrows it.
///
/// Beginning a read transaction costs about as much as the lookup itself, so
/// reads reuse them. A pooled transaction is tagged with the write
/// `generation` it was begun in; every write bumps the generation after its
/// commit (and empties the pool), and a transaction whose tag is not the
/// current generation is dropped instead of used. So a read sees every write
/// that returned before it started, and no stale snapshot outlives the next
/// write. The environment is opened `MDBX_EXCLUSIVE`, so no other process can
/// write behind this handle's back.
struct Handles<'env> {
    tables: Tables<'env>,
    pool: Mutex<Vec<(u64, RoTxn<'env>)>>,
    generation: AtomicU64,
}

self_cell::self_cell!(
    struct EnvCell {
        owner: Env,
        #[not_covariant]
        dependent: Handles,
    }
);

fn mdbx(e: libmdbx::Error) -> IndexError {
    IndexError::Backend {
        backend: BACKEND,
        source: Box::new(e),
    }
}

/// Maps an error from opening an environment: what says "this is not an MDBX
/// file" becomes [`IndexError::NotAnIndex`].
fn open_error(path: &Path, e: libmdbx::Error) -> IndexError {
    match e {
        libmdbx::Error::Invalid
        | libmdbx::Error::NoData
        | libmdbx::Error::VersionMismatch
        | libmdbx::Error::Corrupted => IndexError::NotAnIndex {
            path: path.to_owned(),
            reason: "not an MDBX environment",
        },
        libmdbx::Error::Incompatible => IndexError::NotAnIndex {
            path: path.to_owned(),
            reason: "an MDBX environment with tables of another layout",
        },
        e => mdbx(e),
    }
}

impl MdbxSegmentIndex {
    /// Opens the index in the MDBX data file at `path`, creating it if it
    /// does not exist, with default [`MdbxOptions`]. The file is held
    /// exclusively until the index is dropped.
    ///
    /// Fails with [`IndexError::NotAnIndex`] if `path` is not an MDBX data
    /// file holding an aof index, and with
    /// [`IndexError::UnsupportedSchemaVersion`] if it was written by a newer
    /// format; in both cases the file is not modified.
    pub fn open(path: impl AsRef<Path>) -> IndexResult<Self> {
        Self::open_with_options(path, &MdbxOptions::default())
    }

    /// [`MdbxSegmentIndex::open`] with explicit options.
    pub fn open_with_options(path: impl AsRef<Path>, options: &MdbxOptions) -> IndexResult<Self> {
        let path = path.as_ref();
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {
                return Err(IndexError::NotAnIndex {
                    path: path.to_owned(),
                    reason: "a directory, not an MDBX data file",
                });
            }
            Ok(_) => {
                // Look first without the right to write: a foreign or newer
                // file must come out of this untouched.
                match open_env(path, Mode::ReadOnly) {
                    Ok(env) => {
                        let txn = env.begin_ro_txn().map_err(mdbx)?;
                        read_format(&txn, path)?;
                    }
                    // A process died with commits not yet synced (the file's
                    // newest meta page is "weak"): only a read-write open
                    // recovers it. The format is checked right after that.
                    Err(libmdbx::Error::WannaRecovery) => {}
                    Err(e) => return Err(open_error(path, e)),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(IndexError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        }
        let sync_mode = if options.durable_commits {
            SyncMode::Durable
        } else {
            SyncMode::SafeNoSync
        };
        let mode = Mode::ReadWrite(ReadWriteOptions {
            sync_mode,
            max_size: Some(isize::try_from(options.max_size).unwrap_or(isize::MAX)),
            // Start small and grow by 1 MiB: an index is a few MiB at most.
            min_size: Some(0),
            growth_step: Some(1 << 20),
            shrink_threshold: Some(4 << 20),
        });
        let env = open_env(path, mode).map_err(|e| open_error(path, e))?;
        let txn = env.begin_rw_txn().map_err(mdbx)?;
        if read_format(&txn, path)?.is_none() {
            for name in [ENTRIES, BY_STATUS, BY_TIME, META] {
                txn.create_table(Some(name), TableFlags::empty()).map_err(mdbx)?;
            }
            let meta = txn.open_table(Some(META)).map_err(mdbx)?;
            let put = |k: &[u8], v: &[u8]| txn.put(&meta, k, v, WriteFlags::empty()).map_err(mdbx);
            put(META_FORMAT, FORMAT_MAGIC)?;
            put(META_VERSION, &FORMAT_VERSION.to_be_bytes())?;
            put(META_MAX_SPAN, &0u64.to_be_bytes())?;
            txn.commit().map_err(mdbx)?;
            env.sync(true).map_err(mdbx)?;
        } else {
            drop(txn);
        }
        let cell = EnvCell::try_new(env, |env| {
            let txn = env.begin_ro_txn().map_err(mdbx)?;
            for name in [ENTRIES, BY_STATUS, BY_TIME, META] {
                txn.prime_for_permaopen(txn.open_table(Some(name)).map_err(|e| open_error(path, e))?);
            }
            let (_, tables) = txn.commit_and_rebind_open_dbs().map_err(mdbx)?;
            let Ok([entries, by_status, by_time, meta]) = <[Table<'_>; 4]>::try_from(tables) else {
                return Err(open_error(path, libmdbx::Error::Incompatible));
            };
            Ok::<_, IndexError>(Handles {
                tables: Tables {
                    entries,
                    by_status,
                    by_time,
                    meta,
                },
                pool: Mutex::new(Vec::new()),
                generation: AtomicU64::new(0),
            })
        })?;
        Ok(Self {
            cell,
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
        self.read(|txn, t| {
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
        })
    }

    /// Runs `f` on a read snapshot that includes every write that returned
    /// before this call (see [`Handles`]).
    fn read<T>(&self, f: impl FnOnce(&RoTxn<'_>, &Tables<'_>) -> IndexResult<T>) -> IndexResult<T> {
        self.cell.with_dependent(|env, h| {
            let generation = h.generation.load(Ordering::Acquire);
            let pooled = lock(&h.pool).pop();
            let (tag, txn) = match pooled {
                Some((tag, txn)) if tag == generation => (tag, txn),
                _ => (generation, env.begin_ro_txn().map_err(mdbx)?),
            };
            let result = f(&txn, &h.tables);
            if result.is_ok() && h.generation.load(Ordering::Acquire) == tag {
                let mut pool = lock(&h.pool);
                if pool.len() < POOL_MAX {
                    pool.push((tag, txn));
                }
            }
            result
        })
    }

    /// Runs `f` in one write transaction, committed if `f` succeeds and
    /// aborted (changing nothing) if it fails.
    fn write<T>(&self, f: impl FnOnce(&mut Writer<'_, '_>) -> IndexResult<T>) -> IndexResult<T> {
        self.cell.with_dependent(|env, h| {
            let txn = env.begin_rw_txn().map_err(mdbx)?;
            let value = {
                let mut w = Writer::new(&txn, &h.tables)?;
                f(&mut w)?
            };
            let committed = txn.commit().map_err(mdbx);
            // Even after a failed commit: pooled snapshots must not be trusted.
            h.generation.fetch_add(1, Ordering::AcqRel);
            lock(&h.pool).clear();
            committed.map(|_| value)
        })
    }

    fn env(&self) -> &Env {
        self.cell.borrow_owner()
    }

    /// The newest entry with `status`, through the status table.
    fn latest_with_status(&self, status: SegmentStatus) -> IndexResult<Option<SegmentEntry>> {
        self.read(|txn, t| {
            let mut cursor = txn.cursor(&t.by_status).map_err(mdbx)?;
            let Some((key, ())) = cursor
                .set_upperbound::<Bytes<'_>, ()>(&status_key(status, u64::MAX)?)
                .map_err(mdbx)?
            else {
                return Ok(None);
            };
            let Some(base_id) = decode_status_key(&key, status)? else {
                return Ok(None);
            };
            indexed_entry(txn, &t.entries, base_id, status).map(Some)
        })
    }
}

/// Locks the read-transaction pool; a panic elsewhere cannot leave it inconsistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Opens the environment at `path` with the flags every open uses.
fn open_env(path: &Path, mode: Mode) -> libmdbx::Result<Env> {
    let options = DatabaseOptions {
        no_sub_dir: true,
        exclusive: true,
        max_tables: Some(8),
        mode,
        ..DatabaseOptions::default()
    };
    Env::open_with_options(path, options)
}

/// Reads the format marker: `None` for an environment with no table at all
/// (new), the version if it is an index this code can open.
fn read_format<K: TransactionKind>(txn: &Txn<'_, K>, path: &Path) -> IndexResult<Option<u64>> {
    let not_index = |reason| IndexError::NotAnIndex {
        path: path.to_owned(),
        reason,
    };
    let meta = match txn.open_table(Some(META)) {
        Ok(meta) => meta,
        Err(libmdbx::Error::NotFound) => {
            let main = txn.open_table(None).map_err(mdbx)?;
            let stat = txn.table_stat(&main).map_err(mdbx)?;
            return if stat.entries() == 0 {
                Ok(None)
            } else {
                Err(not_index("an MDBX environment without the aof index tables"))
            };
        }
        Err(e) => return Err(open_error(path, e)),
    };
    let magic: Option<Bytes<'_>> = txn.get(&meta, META_FORMAT).map_err(mdbx)?;
    if magic.as_deref() != Some(FORMAT_MAGIC) {
        return Err(not_index("the aof.meta table lacks the aof index marker"));
    }
    let version: Option<Bytes<'_>> = txn.get(&meta, META_VERSION).map_err(mdbx)?;
    let version = version
        .as_deref()
        .and_then(decode_meta_u64)
        .ok_or_else(|| not_index("the format version is missing or unreadable"))?;
    if version > FORMAT_VERSION {
        return Err(IndexError::UnsupportedSchemaVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if version == 0 {
        return Err(not_index("format version 0"));
    }
    Ok(Some(version))
}

/// The entry stored under `base_id`, if any.
fn load<'t, K: TransactionKind>(
    txn: &'t Txn<'_, K>,
    entries: &Table<'t>,
    base_id: u64,
) -> IndexResult<Option<SegmentEntry>> {
    let value: Option<Bytes<'t>> = txn.get(entries, id_key(base_id)).map_err(mdbx)?;
    value.map(|v| decode_entry(base_id, &v)).transpose()
}

/// The entry a secondary-table row points at; its absence, or another status
/// than the row says, means the tables disagree.
fn indexed_entry<'t, K: TransactionKind>(
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
fn decode_row(key: &[u8], value: &[u8]) -> IndexResult<SegmentEntry> {
    decode_entry(decode_id_key(key)?, value)
}

/// One write transaction's view of the tables.
struct Writer<'t, 'db> {
    txn: &'t Txn<'db, RW>,
    t: &'t Tables<'db>,
    /// On `aof.entries`, for the neighbour checks; repositioned before each use.
    cursor: libmdbx::Cursor<'t, RW>,
    buf: Vec<u8>,
    max_span: Option<u64>,
}

type Row<'t> = Option<(Bytes<'t>, Bytes<'t>)>;

fn decode_opt(row: Row<'_>) -> IndexResult<Option<SegmentEntry>> {
    row.map(|(k, v)| decode_row(&k, &v)).transpose()
}

impl<'t, 'db> Writer<'t, 'db> {
    fn new(txn: &'t Txn<'db, RW>, t: &'t Tables<'db>) -> IndexResult<Self> {
        Ok(Self {
            txn,
            t,
            cursor: txn.cursor(&t.entries).map_err(mdbx)?,
            buf: Vec::with_capacity(256),
            max_span: None,
        })
    }

    fn get(&self, base_id: u64) -> IndexResult<Option<SegmentEntry>> {
        load(self.txn, &self.t.entries, base_id)
    }

    /// The entry with the greatest base id below `base_id`.
    fn prev(&mut self, base_id: u64) -> IndexResult<Option<SegmentEntry>> {
        let Some(below) = base_id.checked_sub(1) else {
            return Ok(None);
        };
        decode_opt(self.cursor.set_upperbound(&id_key(below)).map_err(mdbx)?)
    }

    /// The entry with the smallest base id above `base_id`.
    fn next(&mut self, base_id: u64) -> IndexResult<Option<SegmentEntry>> {
        let Some(above) = base_id.checked_add(1) else {
            return Ok(None);
        };
        decode_opt(self.cursor.set_range(&id_key(above)).map_err(mdbx)?)
    }

    /// Checks and inserts a new entry, as [`SegmentIndex::add_entry`]: one
    /// seek finds the entry at or below `base_id` and a step its successor.
    fn insert(&mut self, entry: &SegmentEntry) -> IndexResult<()> {
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
    fn store(&mut self, entry: &SegmentEntry, old: Option<&SegmentEntry>) -> IndexResult<()> {
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

    fn remove(&mut self, base_id: u64) -> IndexResult<Option<SegmentEntry>> {
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

/// The `max_span` of the metadata table (see the crate docs).
fn read_max_span<'t, K: TransactionKind>(txn: &'t Txn<'_, K>, meta: &Table<'t>) -> IndexResult<u64> {
    let v: Option<Bytes<'t>> = txn.get(meta, META_MAX_SPAN).map_err(mdbx)?;
    v.as_deref()
        .and_then(decode_meta_u64)
        .ok_or(IndexError::CorruptEntry {
            base_id: 0,
            field: "aof.meta max_span",
        })
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
        self.read(|txn, t| load(txn, &t.entries, base_id))
    }

    fn find_segment_for_id(&self, id: u64) -> IndexResult<Option<SegmentEntry>> {
        self.read(|txn, t| {
            let mut cursor = txn.cursor(&t.entries).map_err(mdbx)?;
            let Some((k, v)) = cursor
                .set_upperbound::<Bytes<'_>, Bytes<'_>>(&id_key(id))
                .map_err(mdbx)?
            else {
                return Ok(None);
            };
            Ok(Some(decode_row(&k, &v)?).filter(|e| e.contains(id)))
        })
    }

    fn find_segments_for_timestamp(&self, start_us: u64, end_us: u64) -> IndexResult<Vec<SegmentEntry>> {
        self.read(|txn, t| {
            // A closed entry that overlaps ends at or after start_us, and at
            // most max_span after its start, which is at most end_us.
            let last_end = end_us.saturating_add(read_max_span(txn, &t.meta)?);
            let mut cursor = txn.cursor(&t.by_time).map_err(mdbx)?;
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
        self.read(|txn, t| {
            let mut cursor = txn.cursor(&t.entries).map_err(mdbx)?;
            cursor
                .iter_start::<Bytes<'_>, Bytes<'_>>()
                .map(|row| {
                    let (k, v) = row.map_err(mdbx)?;
                    decode_row(&k, &v)
                })
                .collect()
        })
    }

    fn get_segments_before(&self, id: u64) -> IndexResult<Vec<SegmentEntry>> {
        self.read(|txn, t| {
            let mut cursor = txn.cursor(&t.entries).map_err(mdbx)?;
            let mut out = Vec::new();
            for row in cursor.iter_start::<Bytes<'_>, Bytes<'_>>() {
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
        self.read(|txn, t| {
            let mut cursor = txn.cursor(&t.entries).map_err(mdbx)?;
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
        self.read(|txn, t| {
            let mut cursor = txn.cursor(&t.by_status).map_err(mdbx)?;
            let mut out = Vec::new();
            let mut row = cursor
                .set_range::<Bytes<'_>, ()>(&status_key(status, 0)?)
                .map_err(mdbx)?;
            while let Some((k, ())) = row {
                let Some(base_id) = decode_status_key(&k, status)? else {
                    break;
                };
                out.push(indexed_entry(txn, &t.entries, base_id, status)?);
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

    fn sync(&self) -> IndexResult<()> {
        self.env().sync(true).map(drop).map_err(mdbx)
    }

    fn len(&self) -> IndexResult<usize> {
        self.read(|txn, t| Ok(txn.table_stat(&t.entries).map_err(mdbx)?.entries()))
    }

    fn copy_to(&self, dest: &Path) -> IndexResult<()> {
        copy_env(self.env(), dest)
    }
}

/// Writes a compacted copy of the environment, as of one read snapshot, to
/// the new file `dest` (`mdbx_env_copy` with `MDBX_CP_COMPACT`).
///
/// The libmdbx crate has no safe wrapper for it, hence the one FFI call of
/// this crate.
#[expect(unsafe_code, reason = "libmdbx 0.9 does not wrap mdbx_env_copy")]
fn copy_env(env: &Env, dest: &Path) -> IndexResult<()> {
    let io = |source| IndexError::Io {
        path: dest.to_owned(),
        source,
    };
    if std::fs::symlink_metadata(dest).is_ok() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "copy_to refuses to overwrite an existing file",
        )));
    }
    let c_dest = c_path(dest).ok_or_else(|| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "path contains a NUL byte or is not valid UTF-8",
        ))
    })?;
    let flags = ffi::MDBX_CP_COMPACT | ffi::MDBX_CP_FORCE_DYNAMIC_SIZE;
    // SAFETY: `env.ptr()` is the handle of an open environment, valid for the
    // whole call because `env` is borrowed for it; `c_dest` is a
    // NUL-terminated string that outlives the call; libmdbx does not keep
    // either pointer. Without MDBX_CP_OVERWRITE it refuses an existing `dest`.
    let rc = unsafe { ffi::mdbx_env_copy(env.ptr().0, c_dest.as_ptr(), flags) };
    if rc == ffi::MDBX_SUCCESS {
        Ok(())
    } else {
        Err(mdbx(libmdbx::Error::from_err_code(rc)))
    }
}

#[cfg(unix)]
fn c_path(path: &Path) -> Option<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes()).ok()
}

#[cfg(not(unix))]
fn c_path(path: &Path) -> Option<std::ffi::CString> {
    std::ffi::CString::new(path.to_str()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_builders() {
        let o = MdbxOptions::default().durable_commits(true).max_size(1 << 20);
        assert!(o.durable_commits);
        assert_eq!(o.max_size, 1 << 20);
    }
}
