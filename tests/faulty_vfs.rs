//! A SQLite VFS whose files live on an aof-core [`FileSystem`], so that the
//! fault-injecting [`FaultyFileSystem`](aof_core::testing::FaultyFileSystem)
//! applies its crash model (reordered writeback, torn sectors, lost
//! unsynced data and directory operations) to the SQLite index, its WAL and
//! its directory entries exactly as to segment files.
//!
//! Every file operation SQLite makes goes to the file system: `xOpen`,
//! `xRead`, `xWrite`, `xTruncate`, `xSync`, `xFileSize`, `xDelete`,
//! `xAccess`. As the unix VFS does, the first sync of a newly created WAL
//! or journal also syncs its directory. What lives in one process only is
//! kept in memory, per mounted file system: file locks between the
//! connections (the writer and the readers' pool) and the WAL index
//! (shared memory), which a new process rebuilds from the WAL anyway.
//! Temporary files (`temp_store = MEMORY` makes them rare) are in memory.
//!
//! One VFS is registered, [`VFS_NAME`]; a file system is reached through
//! the path prefix of its [`Mount`]: `/@7/log/index.sqlite` is
//! `/log/index.sqlite` on mount 7.

use aof_core::{FileHandle, FileSystem, OpenMode};
use sqlite_plugin::flags::{AccessFlags, LockLevel, OpenKind, OpenOpts, ShmLockMode};
use sqlite_plugin::vars;
use sqlite_plugin::vfs::{RegisterOpts, Vfs, VfsHandle, VfsResult};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

/// The name the VFS is registered under.
pub const VFS_NAME: &str = "aof-faulty-fs";

/// The shared-memory lock slots SQLite uses (`SQLITE_SHM_NLOCK`).
const SHM_SLOTS: usize = 8;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Default)]
struct Registry {
    next: u64,
    mounts: HashMap<u64, Arc<Mounted>>,
}

fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        sqlite_plugin::vfs::register_static(
            CString::new(VFS_NAME).expect("no NUL in the name"),
            FaultyVfs,
            RegisterOpts { make_default: false },
        )
        .expect("the VFS registers");
        Mutex::default()
    })
}

/// A file system mounted in the VFS; unmounted when dropped (connections
/// still open keep working on it).
#[derive(Debug)]
pub struct Mount {
    id: u64,
}

impl Mount {
    /// Mounts `fs`, registering the VFS on first use.
    pub fn new(fs: Arc<dyn FileSystem>) -> Self {
        let mut reg = lock(registry());
        reg.next += 1;
        let id = reg.next;
        reg.mounts.insert(
            id,
            Arc::new(Mounted {
                fs,
                state: Mutex::default(),
            }),
        );
        Mount { id }
    }

    /// The path SQLite must be given for `path` on this mount.
    pub fn path(&self, path: &Path) -> PathBuf {
        PathBuf::from(format!("/@{}{}", self.id, path.display()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        lock(registry()).mounts.remove(&self.id);
    }
}

/// One mounted file system and what its process shares in memory.
struct Mounted {
    fs: Arc<dyn FileSystem>,
    state: Mutex<MountState>,
}

#[derive(Default)]
struct MountState {
    next_handle: u64,
    /// Per file, the lock level of each handle holding one.
    locks: HashMap<PathBuf, BTreeMap<u64, LockLevel>>,
    /// Per database file, its WAL index.
    shm: HashMap<PathBuf, Shm>,
}

#[derive(Default)]
struct Shm {
    /// Regions never move once made: SQLite keeps pointers into them.
    /// Atomics, so that writing through those pointers is allowed.
    regions: Vec<Box<[AtomicU64]>>,
    users: BTreeSet<u64>,
    shared: [BTreeSet<u64>; SHM_SLOTS],
    exclusive: [Option<u64>; SHM_SLOTS],
}

impl Shm {
    fn release(&mut self, handle: u64) {
        for slot in 0..SHM_SLOTS {
            self.shared[slot].remove(&handle);
            if self.exclusive[slot] == Some(handle) {
                self.exclusive[slot] = None;
            }
        }
    }
}

/// Splits `/@7/rest` into mount 7 and `/rest`.
fn resolve(path: &str) -> VfsResult<(Arc<Mounted>, PathBuf)> {
    let rest = path.strip_prefix("/@").ok_or(vars::SQLITE_CANTOPEN)?;
    let (id, real) = rest.split_at(rest.find('/').ok_or(vars::SQLITE_CANTOPEN)?);
    let id: u64 = id.parse().map_err(|_| vars::SQLITE_CANTOPEN)?;
    let mounted = lock(registry())
        .mounts
        .get(&id)
        .cloned()
        .ok_or(vars::SQLITE_CANTOPEN)?;
    Ok((mounted, PathBuf::from(real)))
}

enum Backing {
    File(Arc<dyn FileHandle>),
    /// A temporary file without a name.
    Memory(Vec<u8>),
}

/// An open file.
pub struct Handle {
    id: u64,
    mount: Option<Arc<Mounted>>,
    path: PathBuf,
    backing: Backing,
    readonly: bool,
    delete_on_close: bool,
    /// A new WAL or journal: its first sync syncs the directory too.
    sync_dir: bool,
}

impl VfsHandle for Handle {
    fn readonly(&self) -> bool {
        self.readonly
    }

    fn in_memory(&self) -> bool {
        matches!(self.backing, Backing::Memory(_))
    }
}

impl Handle {
    fn mounted(&self) -> VfsResult<&Arc<Mounted>> {
        self.mount.as_ref().ok_or(vars::SQLITE_IOERR)
    }
}

struct FaultyVfs;

impl Vfs for FaultyVfs {
    type Handle = Handle;

    fn open(&self, path: Option<&str>, opts: OpenOpts) -> VfsResult<Handle> {
        let mode = opts.mode();
        let Some(path) = path else {
            return Ok(Handle {
                id: 0,
                mount: None,
                path: PathBuf::new(),
                backing: Backing::Memory(Vec::new()),
                readonly: false,
                delete_on_close: true,
                sync_dir: false,
            });
        };
        let (mounted, real) = resolve(path)?;
        let fs = &mounted.fs;
        let exists = fs.exists(&real).map_err(|_| vars::SQLITE_CANTOPEN)?;
        let (file, created) = match (&mode, exists) {
            (sqlite_plugin::flags::OpenMode::ReadOnly, true) => (fs.open(&real, OpenMode::Read), false),
            (sqlite_plugin::flags::OpenMode::ReadOnly, false) => return Err(vars::SQLITE_CANTOPEN),
            (m, true) if m.must_create() => return Err(vars::SQLITE_CANTOPEN),
            (_, true) => (fs.open(&real, OpenMode::ReadWrite), false),
            (sqlite_plugin::flags::OpenMode::ReadWrite { create }, false) => {
                if *create == sqlite_plugin::flags::CreateMode::None {
                    return Err(vars::SQLITE_CANTOPEN);
                }
                (fs.open(&real, OpenMode::CreateNew), true)
            }
        };
        let file = file.map_err(|_| vars::SQLITE_CANTOPEN)?;
        let kind = opts.kind();
        let id = {
            let mut state = lock(&mounted.state);
            state.next_handle += 1;
            state.next_handle
        };
        Ok(Handle {
            id,
            readonly: mode.is_readonly(),
            delete_on_close: opts.delete_on_close(),
            sync_dir: created
                && matches!(
                    kind,
                    OpenKind::MainJournal | OpenKind::SuperJournal | OpenKind::Wal
                ),
            mount: Some(mounted),
            path: real,
            backing: Backing::File(file),
        })
    }

    fn delete(&self, path: &str) -> VfsResult<()> {
        let (mounted, real) = resolve(path).map_err(|_| vars::SQLITE_IOERR_DELETE)?;
        match mounted.fs.remove_file(&real) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(vars::SQLITE_IOERR_DELETE_NOENT),
            Err(_) => Err(vars::SQLITE_IOERR_DELETE),
        }
    }

    fn access(&self, path: &str, _flags: AccessFlags) -> VfsResult<bool> {
        let Ok((mounted, real)) = resolve(path) else {
            return Ok(false);
        };
        mounted.fs.exists(&real).map_err(|_| vars::SQLITE_IOERR_ACCESS)
    }

    fn file_size(&self, handle: &mut Handle) -> VfsResult<usize> {
        match &handle.backing {
            Backing::Memory(v) => Ok(v.len()),
            Backing::File(f) => f
                .len()
                .ok()
                .and_then(|n| usize::try_from(n).ok())
                .ok_or(vars::SQLITE_IOERR_FSTAT),
        }
    }

    fn truncate(&self, handle: &mut Handle, size: usize) -> VfsResult<()> {
        match &mut handle.backing {
            Backing::Memory(v) => {
                v.resize(size, 0);
                Ok(())
            }
            Backing::File(f) => f.set_len(size as u64).map_err(|_| vars::SQLITE_IOERR_TRUNCATE),
        }
    }

    fn write(&self, handle: &mut Handle, offset: usize, data: &[u8]) -> VfsResult<usize> {
        match &mut handle.backing {
            Backing::Memory(v) => {
                let end = offset + data.len();
                if v.len() < end {
                    v.resize(end, 0);
                }
                v[offset..end].copy_from_slice(data);
            }
            Backing::File(f) => f
                .write_all_at(data, offset as u64)
                .map_err(|_| vars::SQLITE_IOERR_WRITE)?,
        }
        Ok(data.len())
    }

    fn read(&self, handle: &mut Handle, offset: usize, data: &mut [u8]) -> VfsResult<usize> {
        match &handle.backing {
            Backing::Memory(v) => {
                let from = v.get(offset..).unwrap_or_default();
                let n = from.len().min(data.len());
                data[..n].copy_from_slice(&from[..n]);
                Ok(n)
            }
            Backing::File(f) => {
                let mut got = 0;
                while got < data.len() {
                    match f.read_at(&mut data[got..], (offset + got) as u64) {
                        Ok(0) => break,
                        Ok(n) => got += n,
                        Err(_) => return Err(vars::SQLITE_IOERR_READ),
                    }
                }
                Ok(got)
            }
        }
    }

    fn sync(&self, handle: &mut Handle) -> VfsResult<()> {
        let Backing::File(f) = &handle.backing else {
            return Ok(());
        };
        f.sync_data().map_err(|_| vars::SQLITE_IOERR_FSYNC)?;
        if handle.sync_dir {
            let dir = handle.path.parent().unwrap_or(Path::new("/")).to_owned();
            handle
                .mounted()?
                .fs
                .sync_dir(&dir)
                .map_err(|_| vars::SQLITE_IOERR_DIR_FSYNC)?;
            handle.sync_dir = false;
        }
        Ok(())
    }

    fn lock(&self, handle: &mut Handle, level: LockLevel) -> VfsResult<()> {
        let Some(mounted) = &handle.mount else {
            return Ok(());
        };
        let mut state = lock(&mounted.state);
        let holders = state.locks.entry(handle.path.clone()).or_default();
        let others = holders
            .iter()
            .filter(|(h, _)| **h != handle.id)
            .map(|(_, l)| *l)
            .max()
            .unwrap_or(LockLevel::Unlocked);
        let free = match level {
            LockLevel::Unlocked => true,
            LockLevel::Shared => others < LockLevel::Pending,
            LockLevel::Reserved => others < LockLevel::Reserved,
            LockLevel::Pending | LockLevel::Exclusive => others == LockLevel::Unlocked,
        };
        if !free {
            return Err(vars::SQLITE_BUSY);
        }
        let mine = holders.entry(handle.id).or_insert(LockLevel::Unlocked);
        *mine = (*mine).max(level);
        Ok(())
    }

    fn unlock(&self, handle: &mut Handle, level: LockLevel) -> VfsResult<()> {
        let Some(mounted) = &handle.mount else {
            return Ok(());
        };
        let mut state = lock(&mounted.state);
        let holders = state.locks.entry(handle.path.clone()).or_default();
        if level == LockLevel::Unlocked {
            holders.remove(&handle.id);
        } else if let Some(mine) = holders.get_mut(&handle.id) {
            *mine = (*mine).min(level);
        }
        Ok(())
    }

    fn check_reserved_lock(&self, handle: &mut Handle) -> VfsResult<bool> {
        let Some(mounted) = &handle.mount else {
            return Ok(false);
        };
        let state = lock(&mounted.state);
        Ok(state.locks.get(&handle.path).is_some_and(|holders| {
            holders
                .iter()
                .any(|(h, l)| *h != handle.id && *l >= LockLevel::Reserved)
        }))
    }

    fn close(&self, handle: Handle) -> VfsResult<()> {
        let Some(mounted) = &handle.mount else {
            return Ok(());
        };
        {
            let mut state = lock(&mounted.state);
            if let Some(holders) = state.locks.get_mut(&handle.path) {
                holders.remove(&handle.id);
            }
            if let Some(shm) = state.shm.get_mut(&handle.path) {
                shm.release(handle.id);
                shm.users.remove(&handle.id);
                if shm.users.is_empty() {
                    state.shm.remove(&handle.path);
                }
            }
        }
        if handle.delete_on_close {
            let _ = mounted.fs.remove_file(&handle.path);
        }
        Ok(())
    }

    fn device_characteristics(&self, _handle: &mut Handle) -> VfsResult<i32> {
        // What the unix VFS claims: writes do not disturb bytes they do not
        // cover. Not atomic, not sequential: the model tears and reorders.
        Ok(vars::SQLITE_IOCAP_POWERSAFE_OVERWRITE)
    }

    fn shm_map(
        &self,
        handle: &mut Handle,
        region_idx: usize,
        region_size: usize,
        extend: bool,
    ) -> VfsResult<Option<NonNull<u8>>> {
        let mounted = handle.mounted()?;
        let mut state = lock(&mounted.state);
        let shm = state.shm.entry(handle.path.clone()).or_default();
        shm.users.insert(handle.id);
        while shm.regions.len() <= region_idx {
            if !extend {
                return Ok(None);
            }
            let words = region_size.div_ceil(8);
            shm.regions.push((0..words).map(|_| AtomicU64::new(0)).collect());
        }
        Ok(NonNull::new(
            shm.regions[region_idx].as_ptr().cast::<u8>().cast_mut(),
        ))
    }

    fn shm_lock(&self, handle: &mut Handle, offset: u32, count: u32, mode: ShmLockMode) -> VfsResult<()> {
        let mounted = handle.mounted()?;
        let mut state = lock(&mounted.state);
        let shm = state.shm.entry(handle.path.clone()).or_default();
        let slots = (offset as usize)..(offset as usize + count as usize).min(SHM_SLOTS);
        let me = handle.id;
        match mode {
            ShmLockMode::LockShared => {
                if slots.clone().any(|s| shm.exclusive[s].is_some_and(|h| h != me)) {
                    return Err(vars::SQLITE_BUSY);
                }
                for s in slots {
                    shm.shared[s].insert(me);
                }
            }
            ShmLockMode::LockExclusive => {
                if slots.clone().any(|s| {
                    shm.exclusive[s].is_some_and(|h| h != me) || shm.shared[s].iter().any(|h| *h != me)
                }) {
                    return Err(vars::SQLITE_BUSY);
                }
                for s in slots {
                    shm.exclusive[s] = Some(me);
                }
            }
            ShmLockMode::UnlockShared => {
                for s in slots {
                    shm.shared[s].remove(&me);
                }
            }
            ShmLockMode::UnlockExclusive => {
                for s in slots {
                    if shm.exclusive[s] == Some(me) {
                        shm.exclusive[s] = None;
                    }
                }
            }
        }
        Ok(())
    }

    fn shm_barrier(&self, _handle: &mut Handle) {
        std::sync::atomic::fence(Ordering::SeqCst);
    }

    fn shm_unmap(&self, handle: &mut Handle, _delete: bool) -> VfsResult<()> {
        let mounted = handle.mounted()?;
        let mut state = lock(&mounted.state);
        if let Some(shm) = state.shm.get_mut(&handle.path) {
            shm.release(handle.id);
            shm.users.remove(&handle.id);
            // The last user gone, the index is rebuilt from the WAL by the
            // next connection, as after a restart.
            if shm.users.is_empty() {
                state.shm.remove(&handle.path);
            }
        }
        Ok(())
    }
}
