//! The open environment: its table handles, opened once, and the cached
//! read snapshots every read reuses (see the crate docs, "Reads").

use crate::codec::TABLES;
use crate::error::{mdbx, open_error};
use aof_record::index::{IndexError, IndexResult};
use libmdbx::{Cursor, Database, DatabaseOptions, Mode, NoWriteMap, RO, RW, Table, Transaction};
use std::borrow::Cow;
use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};

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

/// Slots of cached read snapshots. A thread uses the slot its number picks
/// (threads are numbered in the order they first read), so threads seldom
/// share one; more slots than this machine has cores.
const SLOTS: usize = 16;
/// Slots a read tries, from its own on, before it reads on a snapshot of its own.
const PROBES: usize = 3;

/// The cursors of one read transaction, each opened on first use and kept
/// with the transaction: opening and closing a cursor was about a tenth of a
/// lookup.
#[derive(Default)]
pub(crate) struct Cursors<'txn> {
    entries: Option<Cursor<'txn, RO>>,
    by_status: Option<Cursor<'txn, RO>>,
    by_time: Option<Cursor<'txn, RO>>,
}

self_cell::self_cell!(
    /// A read transaction and its cursors.
    struct Snapshot<'env> {
        owner: RoTxn<'env>,
        #[covariant]
        dependent: Cursors,
    }
);

/// One slot: the write generation a snapshot was begun in, and the snapshot.
/// Aligned so that the slots of two threads never share a cache line.
#[repr(align(128))]
struct Slot<'env>(Mutex<Option<(u64, Snapshot<'env>)>>);

/// What a read sees: one snapshot, its cursors and the table handles.
pub(crate) struct Reader<'r, 'txn> {
    /// The read transaction.
    pub(crate) txn: &'txn RoTxn<'txn>,
    /// The table handles.
    pub(crate) tables: &'r Tables<'txn>,
    cursors: &'r mut Cursors<'txn>,
}

impl<'txn> Reader<'_, 'txn> {
    /// The cursor on `aof.entries`, wherever the last read left it.
    #[inline]
    pub(crate) fn entries(&mut self) -> IndexResult<&mut Cursor<'txn, RO>> {
        cursor(self.txn, &self.tables.entries, &mut self.cursors.entries)
    }

    /// The cursor on `aof.by_status`, wherever the last read left it.
    pub(crate) fn by_status(&mut self) -> IndexResult<&mut Cursor<'txn, RO>> {
        cursor(self.txn, &self.tables.by_status, &mut self.cursors.by_status)
    }

    /// The cursor on `aof.by_time`, wherever the last read left it.
    pub(crate) fn by_time(&mut self) -> IndexResult<&mut Cursor<'txn, RO>> {
        cursor(self.txn, &self.tables.by_time, &mut self.cursors.by_time)
    }
}

/// The cursor in `slot`, opened on `table` if there is none yet.
#[inline(always)]
fn cursor<'c, 'txn>(
    txn: &'txn RoTxn<'txn>,
    table: &Table<'txn>,
    slot: &'c mut Option<Cursor<'txn, RO>>,
) -> IndexResult<&'c mut Cursor<'txn, RO>> {
    match slot {
        Some(c) => Ok(c),
        None => Ok(slot.insert(txn.cursor(table).map_err(mdbx)?)),
    }
}

/// A held slot; on drop, it ends the snapshot if the read failed or a write
/// committed while it ran.
struct Lease<'a, 'env> {
    guard: MutexGuard<'a, Option<(u64, Snapshot<'env>)>>,
    /// The write generation the snapshot in the slot was begun in.
    tag: u64,
    generation: &'a AtomicU64,
    ok: bool,
}

impl Drop for Lease<'_, '_> {
    fn drop(&mut self) {
        if !self.ok || self.generation.load(Ordering::Acquire) != self.tag {
            *self.guard = None;
        }
    }
}

/// What lives next to the environment and borrows it.
///
/// Beginning a read transaction costs about as much as a lookup, and opening
/// a cursor about a tenth of one, so reads reuse both from a few slots. A cached
/// snapshot is tagged with the write `generation` it was begun in; every
/// write bumps the generation after its commit, and a read that finds an
/// older tag begins a new snapshot. So a read sees every write that returned
/// before it started. Old snapshots are also ended promptly, so that they do
/// not pin pages the writer could reuse: a write ends those in slots not in
/// use, and a read ends its own if a write committed while it ran. The
/// environment is opened `MDBX_EXCLUSIVE`, so no other process can write
/// behind this handle's back.
pub(crate) struct Handles<'env> {
    tables: Tables<'env>,
    slots: [Slot<'env>; SLOTS],
    generation: AtomicU64,
}

self_cell::self_cell!(
    pub(crate) struct EnvCell {
        owner: Env,
        #[not_covariant]
        dependent: Handles,
    }
);

/// Threads numbered so far, for [`home_slot`].
static THREADS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's number, taken on its first read.
    static THREAD: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The slot this thread tries first.
fn home_slot() -> usize {
    THREAD.with(|t| {
        let n = t.get().unwrap_or_else(|| {
            let n = THREADS.fetch_add(1, Ordering::Relaxed);
            t.set(Some(n));
            n
        });
        n % SLOTS
    })
}

impl EnvCell {
    /// Opens the tables of `env` once, for its lifetime, with empty slots.
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
                slots: std::array::from_fn(|_| Slot(Mutex::new(None))),
                generation: AtomicU64::new(0),
            })
        })
    }

    /// Runs `f` on a read snapshot that includes every write that returned
    /// before this call (see [`Handles`]).
    pub(crate) fn read<T>(&self, f: impl FnOnce(&mut Reader<'_, '_>) -> IndexResult<T>) -> IndexResult<T> {
        self.with_dependent(|env, h| {
            let generation = h.generation.load(Ordering::Acquire);
            let home = home_slot();
            let guard = (0..PROBES).find_map(|i| try_lock(&h.slots[(home + i) % SLOTS].0));
            let Some(guard) = guard else {
                // Every slot tried is in use: a snapshot of this read's own.
                let txn = env.begin_ro_txn().map_err(mdbx)?;
                return Snapshot::new(txn, |_| Cursors::default()).with_dependent_mut(|txn, cursors| {
                    f(&mut Reader {
                        txn,
                        tables: &h.tables,
                        cursors,
                    })
                });
            };
            let mut lease = Lease {
                guard,
                tag: generation,
                generation: &h.generation,
                ok: false,
            };
            let Lease { guard, ok, .. } = &mut lease;
            // The cached snapshot stays in its slot; a stale one is ended
            // before the next begins.
            let snapshot = match &mut **guard {
                Some((tag, snapshot)) if *tag == generation => snapshot,
                cached => {
                    *cached = None;
                    let txn = env.begin_ro_txn().map_err(mdbx)?;
                    &mut cached
                        .insert((generation, Snapshot::new(txn, |_| Cursors::default())))
                        .1
                }
            };
            // The answer is returned straight from `f`: the slot is settled
            // when the lease drops, so a large answer is not moved again.
            snapshot.with_dependent_mut(|txn, cursors| {
                let result = f(&mut Reader {
                    txn,
                    tables: &h.tables,
                    cursors,
                });
                *ok = result.is_ok();
                result
            })
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
            // Even after a failed commit: cached snapshots must not be trusted.
            let generation = h.generation.fetch_add(1, Ordering::AcqRel) + 1;
            // Ends the snapshots older than the commit, so that they do not
            // hold its predecessor's pages. A slot in use is skipped, not
            // waited for (readers taking their slot back at once would starve
            // the writer): that read ends its snapshot itself when it sees
            // the new generation, and any read drops a stale one it finds.
            for slot in &h.slots {
                if let Some(mut cached) = try_lock(&slot.0)
                    && cached.as_ref().is_some_and(|(tag, _)| *tag != generation)
                {
                    *cached = None;
                }
            }
            committed.map(|_| value)
        })
    }

    /// The environment itself.
    pub(crate) fn env(&self) -> &Env {
        self.borrow_owner()
    }
}

/// Locks a slot if nobody holds it, `None` if somebody does. A panic
/// elsewhere cannot leave a slot inconsistent (a snapshot is read-only, and
/// every read positions its cursors afresh), so poison is ignored.
fn try_lock<T>(m: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match m.try_lock() {
        Ok(guard) => Some(guard),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
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
