//! The open environment: its table handles, opened once, and the pool of
//! read transactions every read reuses (see the crate docs, "Reads").

use crate::codec::TABLES;
use crate::error::{mdbx, open_error};
use aof_record::index::{IndexError, IndexResult};
use libmdbx::{Database, DatabaseOptions, Mode, NoWriteMap, RO, RW, Table, Transaction};
use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// The environment.
pub(crate) type Env = Database<NoWriteMap>;
/// A transaction on it, read-only (`RO`) or read-write (`RW`).
pub(crate) type Txn<'db, K> = Transaction<'db, K, NoWriteMap>;
/// A read-only transaction.
pub(crate) type RoTxn<'env> = Txn<'env, RO>;
/// Bytes read from a table: borrowed from the map where libmdbx allows.
pub(crate) type Bytes<'t> = Cow<'t, [u8]>;

/// Table handles opened once for the environment's lifetime.
pub(crate) struct Tables<'env> {
    pub(crate) entries: Table<'env>,
    pub(crate) by_status: Table<'env>,
    pub(crate) by_time: Table<'env>,
    pub(crate) meta: Table<'env>,
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
pub(crate) struct Handles<'env> {
    tables: Tables<'env>,
    pool: Mutex<Vec<(u64, RoTxn<'env>)>>,
    generation: AtomicU64,
}

self_cell::self_cell!(
    pub(crate) struct EnvCell {
        owner: Env,
        #[not_covariant]
        dependent: Handles,
    }
);

impl EnvCell {
    /// Opens the tables of `env` once, for its lifetime, with an empty pool.
    pub(crate) fn with_tables(env: Env, path: &Path) -> IndexResult<Self> {
        Self::try_new(env, |env| {
            let txn = env.begin_ro_txn().map_err(mdbx)?;
            for name in TABLES {
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
        })
    }

    /// Runs `f` on a read snapshot that includes every write that returned
    /// before this call (see [`Handles`]).
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&RoTxn<'_>, &Tables<'_>) -> IndexResult<T>,
    ) -> IndexResult<T> {
        self.with_dependent(|env, h| {
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
    pub(crate) fn write<T>(
        &self,
        f: impl for<'env> FnOnce(&Txn<'env, RW>, &Tables<'env>) -> IndexResult<T>,
    ) -> IndexResult<T> {
        self.with_dependent(|env, h| {
            let txn = env.begin_rw_txn().map_err(mdbx)?;
            let value = f(&txn, &h.tables)?;
            let committed = txn.commit().map_err(mdbx);
            // Even after a failed commit: pooled snapshots must not be trusted.
            h.generation.fetch_add(1, Ordering::AcqRel);
            lock(&h.pool).clear();
            committed.map(|_| value)
        })
    }

    /// The environment itself.
    pub(crate) fn env(&self) -> &Env {
        self.borrow_owner()
    }
}

/// Locks the read-transaction pool; a panic elsewhere cannot leave it inconsistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Opens the environment at `path` with the flags every open uses.
pub(crate) fn open_env(path: &Path, mode: Mode) -> libmdbx::Result<Env> {
    let options = DatabaseOptions {
        no_sub_dir: true,
        exclusive: true,
        max_tables: Some(8),
        mode,
        ..DatabaseOptions::default()
    };
    Env::open_with_options(path, options)
}

/// Writes a compacted copy of the environment, as of one read snapshot, to
/// the new file `dest` (`mdbx_env_copy` with `MDBX_CP_COMPACT`).
///
/// The libmdbx crate has no safe wrapper for it, hence the one FFI call of
/// this crate.
#[expect(unsafe_code, reason = "libmdbx 0.9 does not wrap mdbx_env_copy")]
pub(crate) fn copy_env(env: &Env, dest: &Path) -> IndexResult<()> {
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
