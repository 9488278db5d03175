//! [`FaultyFileSystem`]: an in-memory [`FileSystem`] that counts operations,
//! fails or crashes at a chosen one, and builds the disk a crash leaves.

use super::model::{Chooser, DirOp, Disk, FileData, Interrupted, Seeded, write_into};
use super::ops::{Crashed, InjectedFault, OpCounting, OpCounts, OpKind, OpRecord};
use crate::fs::{FileHandle, FileSystem, LockGuard, OpenMode};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// How [`FaultyFileSystem::crash_image`] builds the disk as it is after a crash.
///
/// Tearing is by file offset: a disk writes whole 512-byte sectors, so an
/// interrupted write keeps its bytes up to one of its *cuts*: its start
/// (nothing kept), any multiple of 512 strictly inside it, or its end (all
/// kept). A 100-byte write inside one sector is kept whole or lost; one at
/// offset 450 may also keep its first 62 bytes (up to offset 512).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CrashMode {
    /// Only what was synced survives: file contents as of their last sync,
    /// names as of their directory's last `sync_dir`. Directories made with
    /// `create_dir_all` are kept (this mode predates their modelling; see
    /// [`CrashMode::Writeback`]).
    LoseUnsynced,
    /// Everything before the crash survives, and the interrupted write keeps
    /// its bytes up to the last cut at or before its middle (for most writes
    /// under 1 KiB: nothing).
    TearLastWrite,
    /// Everything before the crash survives, and the interrupted write's
    /// range holds garbage.
    GarbageLastWrite,
    /// A killed process (`kill -9`): the page cache survives, so every
    /// completed operation does, synced or not, and the interrupted one did
    /// not happen. A missing fsync is invisible here.
    ProcessKill,
    /// Everything before the crash survives, and the interrupted write keeps
    /// its bytes up to a cut chosen by `seed`.
    TornWrite {
        /// Chooses the cut.
        seed: u64,
    },
    /// A power loss with reordered writeback, every choice made by `seed`
    /// (see [`CrashImage`] for the rules and for making choices by hand):
    /// synced data and names survive; of each file's unsynced data, any
    /// subset of its 4 KiB pages; any length between the durable and the
    /// live one; each unsynced directory operation independently; the
    /// interrupted write torn at any cut.
    Writeback {
        /// Chooses everything not synced.
        seed: u64,
    },
}

impl CrashMode {
    /// The modes with no seed, which crash sweeps run at every point beside
    /// seeded [`CrashMode::Writeback`]: a process kill, a power loss keeping
    /// only what was synced, and the interrupted write torn or garbled.
    pub const UNSEEDED: [CrashMode; 4] = [
        CrashMode::ProcessKill,
        CrashMode::LoseUnsynced,
        CrashMode::TearLastWrite,
        CrashMode::GarbageLastWrite,
    ];
}

#[derive(Debug, Default)]
struct State {
    disk: Disk,
    counting: OpCounting,
    /// Counted operations so far: the next counted operation's index.
    ops: u64,
    counts: OpCounts,
    trace: Option<Vec<OpRecord>>,
    crash_at: Option<u64>,
    crashed: Option<Crashed>,
    interrupted: Option<Interrupted>,
    /// Fail (once) the first operation of the kind at or after the index.
    fail_at: Vec<(OpKind, u64)>,
    /// Total live bytes beyond which writes fail with `StorageFull`.
    capacity: Option<u64>,
    locks: BTreeSet<PathBuf>,
}

impl State {
    /// Counts an operation, and fails it at the crash point, after the
    /// crash, or at a fail point of its kind.
    fn op(&mut self, kind: OpKind, path: &Path) -> io::Result<()> {
        if let Some(c) = self.crashed {
            return Err(io::Error::other(c));
        }
        let index = self.ops;
        let counted = self.counting.counts(kind);
        if counted {
            self.ops += 1;
        }
        self.counts.add(kind);
        if let Some(trace) = &mut self.trace {
            trace.push(OpRecord {
                index: counted.then_some(index),
                kind,
                path: path.to_owned(),
            });
        }
        if counted && self.crash_at == Some(index) {
            let c = Crashed { index, kind };
            self.crashed = Some(c);
            return Err(io::Error::other(c));
        }
        if let Some(at) = self.fail_at.iter().position(|(k, at)| *k == kind && index >= *at) {
            self.fail_at.remove(at);
            return Err(io::Error::other(InjectedFault { kind, index }));
        }
        Ok(())
    }

    fn live_bytes(&self) -> u64 {
        self.disk.files.values().map(|f| f.live.len() as u64).sum()
    }

    fn file(&self, inode: u64) -> io::Result<&FileData> {
        self.disk.files.get(&inode).ok_or_else(not_found)
    }

    fn file_mut(&mut self, inode: u64) -> io::Result<&mut FileData> {
        self.disk.files.get_mut(&inode).ok_or_else(not_found)
    }
}

/// An in-memory [`FileSystem`] for crash tests.
///
/// Every operation has a kind ([`OpKind`]); those that
/// [`OpCounting`] counts (by default the mutations: create, write,
/// `set_len`, sync, rename, remove, `sync_dir`, `create_dir_all`) get an
/// index, from 0. With [`FaultyFileSystem::crash_at`] the operation with an
/// index fails and so does every operation after it, of any kind;
/// [`FaultyFileSystem::fail_at`] fails one operation of a kind and goes on.
/// File contents become durable on `sync_data`/`sync_all`, directory entries
/// on `sync_dir` of their directory. [`FaultyFileSystem::crash_image`] then
/// gives the disk as a crash would leave it, as a new file system to reopen
/// the log on.
#[derive(Debug, Clone, Default)]
pub struct FaultyFileSystem {
    state: Arc<Mutex<State>>,
}

impl FaultyFileSystem {
    /// An empty file system.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn from_disk(disk: Disk) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                disk,
                ..State::default()
            })),
        }
    }

    /// Which operations get an index from now on (the count so far stays).
    pub fn set_counting(&self, counting: OpCounting) {
        self.lock().counting = counting;
    }

    /// Crash at the `n`-th counted operation from now on (index
    /// [`ops`](Self::ops)` + n`).
    pub fn crash_at(&self, n: u64) {
        let mut s = self.lock();
        s.crash_at = Some(s.ops + n);
    }

    /// Fail, once and without crashing, the first operation of `kind` at or
    /// after counted index `n` (counted from now on), with an
    /// [`InjectedFault`]; the operation has no effect. An operation that is
    /// not counted is "at" the index the next counted one will get, so
    /// `fail_at(kind, 0)` fails the next operation of `kind`.
    pub fn fail_at(&self, kind: OpKind, n: u64) {
        let mut s = self.lock();
        let at = s.ops + n;
        s.fail_at.push((kind, at));
    }

    /// Fail the first sync at or after operation index `n` (counted from
    /// now on) with an I/O error, once, without crashing:
    /// `fail_at(OpKind::Sync, n)`.
    pub fn fail_sync_at(&self, n: u64) {
        self.fail_at(OpKind::Sync, n);
    }

    /// Writes that would take the total size of all files beyond `bytes` fail
    /// with `StorageFull` (a full disk); `None` lifts the limit.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.lock().capacity = bytes;
    }

    /// Total bytes of all live files.
    #[must_use]
    pub fn live_bytes(&self) -> u64 {
        self.lock().live_bytes()
    }

    /// Counted operations so far (the index the next one gets).
    #[must_use]
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// Operations so far by kind, counted or not; `later.since(&earlier)`
    /// tells what a workload did.
    #[must_use]
    pub fn op_counts(&self) -> OpCounts {
        self.lock().counts.clone()
    }

    /// Starts (clearing it) or stops recording every operation.
    pub fn set_tracing(&self, on: bool) {
        self.lock().trace = on.then(Vec::new);
    }

    /// The operations recorded since tracing started.
    #[must_use]
    pub fn trace(&self) -> Vec<OpRecord> {
        self.lock().trace.clone().unwrap_or_default()
    }

    /// Whether the crash point was reached.
    #[must_use]
    pub fn crashed(&self) -> bool {
        self.lock().crashed.is_some()
    }

    /// The crash, once reached: its index and the kind of operation it hit.
    #[must_use]
    pub fn crash_point(&self) -> Option<Crashed> {
        self.lock().crashed
    }

    /// The 4 KiB pages of the file at `path` (its current name, else its
    /// last durable one) whose unsynced content differs from the durable.
    #[must_use]
    pub fn dirty_pages(&self, path: &Path) -> Vec<u64> {
        let s = self.lock();
        s.disk
            .inode_of(path)
            .map_or_else(Vec::new, |i| s.disk.dirty_pages(i))
    }

    /// Directory operations not yet known durable, oldest first; the
    /// position in this list is what [`CrashImage::dir_op`] takes.
    #[must_use]
    pub fn pending_dir_ops(&self) -> Vec<DirOp> {
        self.lock().disk.pending_ops()
    }

    /// The disk as a crash now would leave it, as a fresh file system whose
    /// every byte and name is durable.
    #[must_use]
    pub fn crash_image(&self, mode: CrashMode) -> Self {
        match mode {
            CrashMode::Writeback { seed } => self.crash_builder().seed(seed).build(),
            _ => {
                let s = self.lock();
                let disk = &s.disk;
                let live = |inode: u64| disk.files.get(&inode).map(|f| f.live.clone()).unwrap_or_default();
                let img = match (mode, &s.interrupted) {
                    (CrashMode::LoseUnsynced, _) => disk.image(disk.durable_names(), |inode| {
                        disk.files
                            .get(&inode)
                            .map(|f| f.durable.clone())
                            .unwrap_or_default()
                    }),
                    (CrashMode::TearLastWrite, Some(w)) => {
                        let middle = w.offset + w.bytes.len() as u64 / 2;
                        let cut = w.cuts().into_iter().filter(|c| *c <= middle).max();
                        disk.image(disk.live_names(), |inode| {
                            let mut data = live(inode);
                            if inode == w.inode {
                                w.apply(&mut data, cut.unwrap_or(w.offset));
                            }
                            data
                        })
                    }
                    (CrashMode::TornWrite { seed }, Some(w)) => {
                        let cut = Seeded::new(seed).tear(&w.cuts());
                        disk.image(disk.live_names(), |inode| {
                            let mut data = live(inode);
                            if inode == w.inode {
                                w.apply(&mut data, cut);
                            }
                            data
                        })
                    }
                    (CrashMode::GarbageLastWrite, Some(w)) => disk.image(disk.live_names(), |inode| {
                        let mut data = live(inode);
                        if inode == w.inode {
                            write_into(&mut data, w.offset, &garbage(w.offset, w.bytes.len()));
                        }
                        data
                    }),
                    _ => disk.image(disk.live_names(), live),
                };
                Self::from_disk(img)
            }
        }
    }

    /// A builder for a power-loss image whose choices can be made one by
    /// one; [`CrashMode::Writeback`] is `crash_builder().seed(seed).build()`.
    #[must_use]
    pub fn crash_builder(&self) -> CrashImage<'_> {
        CrashImage {
            fs: self,
            seed: 0,
            pages: BTreeMap::new(),
            lengths: BTreeMap::new(),
            dir_ops: BTreeMap::new(),
            cut: None,
        }
    }

    /// The live bytes of the file at `path`.
    #[must_use]
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.lock();
        s.disk
            .live
            .files
            .get(path)
            .and_then(|i| s.disk.files.get(i))
            .map(|f| f.live.clone())
    }

    /// Replaces the bytes of the file at `path` (live and durable), outside
    /// the operation count: for corrupting a file on purpose.
    pub fn write_file(&self, path: &Path, data: Vec<u8>) {
        let mut s = self.lock();
        if let Some(i) = s.disk.live.files.get(path).copied()
            && let Some(f) = s.disk.files.get_mut(&i)
        {
            f.live = data.clone();
            f.durable = data;
        }
    }

    /// A deep copy of the disk (live, durable and pending state), independent
    /// of `self`, with fresh counters and no crash or fail point.
    #[must_use]
    pub fn deep_clone(&self) -> Self {
        Self::from_disk(self.lock().disk.clone())
    }
}

/// Deterministic garbage for [`CrashMode::GarbageLastWrite`].
fn garbage(offset: u64, len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ offset;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A power-loss image, built choice by choice (from
/// [`FaultyFileSystem::crash_builder`]).
///
/// The rules (POSIX, and a disk that writes 512-byte sectors atomically):
/// - Synced data and names survive: a file's content as of its last sync, a
///   name whose directory (both directories, for a rename) was synced since.
/// - Each unsynced directory operation persists or not, independently; a
///   rename is atomic (the file has its old name or its new one, never both),
///   a file whose creation is lost has no name (unless a later persisted
///   rename gave it one), a removed file whose removal is lost is back, and a
///   directory made by `create_dir_all` whose entry in its parent was not
///   synced may be lost with everything under it.
/// - A file's length is any of: its durable length, its live length, or a
///   multiple of 4 KiB between them.
/// - Each 4 KiB page whose live content differs from the durable one
///   holds one or the other, independently (reordered writeback); a page past
///   the durable end holds the new data or zeros.
/// - The interrupted write (when the crash hit a write) is first applied to
///   the live image up to one of its cuts (see [`CrashMode`]).
///
/// Choices not made here come from the seed.
#[derive(Debug)]
pub struct CrashImage<'a> {
    fs: &'a FaultyFileSystem,
    seed: u64,
    pages: BTreeMap<(PathBuf, u64), bool>,
    lengths: BTreeMap<PathBuf, u64>,
    dir_ops: BTreeMap<usize, bool>,
    cut: Option<u64>,
}

impl CrashImage<'_> {
    /// The seed for every choice not made by hand (default 0).
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Page `page` (of 4 KiB) of the file at `path` (its current name, else
    /// its last durable one) was written back (`true`) or not.
    #[must_use]
    pub fn page(mut self, path: impl Into<PathBuf>, page: u64, written: bool) -> Self {
        self.pages.insert((path.into(), page), written);
        self
    }

    /// The file at `path` has length `len` after the crash, held to the
    /// range between its durable and its live length.
    #[must_use]
    pub fn length(mut self, path: impl Into<PathBuf>, len: u64) -> Self {
        self.lengths.insert(path.into(), len);
        self
    }

    /// The pending directory operation at `index` in
    /// [`FaultyFileSystem::pending_dir_ops`] persisted (`true`) or not.
    #[must_use]
    pub fn dir_op(mut self, index: usize, persisted: bool) -> Self {
        self.dir_ops.insert(index, persisted);
        self
    }

    /// The interrupted write persisted its first `bytes` bytes, rounded down
    /// to one of its cuts.
    #[must_use]
    pub fn torn_prefix(mut self, bytes: u64) -> Self {
        self.cut = Some(bytes);
        self
    }

    /// The image.
    #[must_use]
    pub fn build(self) -> FaultyFileSystem {
        let s = self.fs.lock();
        let disk = &s.disk;
        let by_inode = |m: &BTreeMap<PathBuf, u64>| -> BTreeMap<u64, u64> {
            m.iter()
                .filter_map(|(p, v)| disk.inode_of(p).map(|i| (i, *v)))
                .collect()
        };
        let mut plan = Plan {
            seeded: Seeded::new(self.seed),
            pages: self
                .pages
                .iter()
                .filter_map(|((p, n), v)| disk.inode_of(p).map(|i| ((i, *n), *v)))
                .collect(),
            lengths: by_inode(&self.lengths),
            dir_ops: self.dir_ops,
        };
        let names = disk.writeback_names(&mut plan);
        let torn = s.interrupted.as_ref().map(|w| {
            let cuts = w.cuts();
            let cut = match self.cut {
                Some(bytes) => {
                    let want = w.offset + bytes;
                    cuts.iter()
                        .copied()
                        .filter(|c| *c <= want)
                        .max()
                        .unwrap_or(w.offset)
                }
                None => plan.tear(&cuts),
            };
            (w, cut)
        });
        let img = disk.image(names, |inode| {
            let mut live = disk.files.get(&inode).map(|f| f.live.clone()).unwrap_or_default();
            if let Some((w, cut)) = torn
                && w.inode == inode
            {
                w.apply(&mut live, cut);
            }
            disk.writeback_data(inode, &live, &mut plan)
        });
        FaultyFileSystem::from_disk(img)
    }
}

/// Choices made by hand, the seed's for the rest.
struct Plan {
    seeded: Seeded,
    pages: BTreeMap<(u64, u64), bool>,
    lengths: BTreeMap<u64, u64>,
    dir_ops: BTreeMap<usize, bool>,
}

impl Chooser for Plan {
    fn dir_op(&mut self, index: usize) -> bool {
        let seeded = self.seeded.dir_op(index);
        self.dir_ops.get(&index).copied().unwrap_or(seeded)
    }

    fn length(&mut self, inode: u64, candidates: &[u64]) -> u64 {
        let seeded = self.seeded.length(inode, candidates);
        self.lengths.get(&inode).copied().unwrap_or(seeded)
    }

    fn page(&mut self, inode: u64, page: u64) -> bool {
        let seeded = self.seeded.page(inode, page);
        self.pages.get(&(inode, page)).copied().unwrap_or(seeded)
    }

    fn tear(&mut self, cuts: &[u64]) -> u64 {
        self.seeded.tear(cuts)
    }
}

#[derive(Debug)]
struct FaultyFile {
    fs: FaultyFileSystem,
    inode: u64,
    path: PathBuf,
}

#[derive(Debug)]
struct FaultyLock {
    fs: FaultyFileSystem,
    path: PathBuf,
}

impl LockGuard for FaultyLock {}

impl Drop for FaultyLock {
    fn drop(&mut self) {
        self.fs.lock().locks.remove(&self.path);
    }
}

fn not_found() -> io::Error {
    io::ErrorKind::NotFound.into()
}

impl FileSystem for FaultyFileSystem {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.op(OpKind::CreateDir, dir)?;
        let mut missing: Vec<&Path> = dir
            .ancestors()
            .filter(|a| a.parent().is_some() && !a.as_os_str().is_empty())
            .filter(|a| !s.disk.live.dirs.contains(*a))
            .collect();
        missing.reverse();
        for d in missing {
            let holds_files = s.disk.live.files.keys().any(|p| p.starts_with(d))
                || s.disk.base.files.keys().any(|p| p.starts_with(d));
            if holds_files {
                // Files were made there without creating it: it always existed.
                s.disk.live.dirs.insert(d.to_owned());
                s.disk.base.dirs.insert(d.to_owned());
            } else {
                s.disk.log(DirOp::CreateDir { path: d.to_owned() }, 0);
            }
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut s = self.lock();
        s.op(OpKind::List, dir)?;
        Ok(s.disk
            .live
            .files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect())
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn FileHandle>> {
        let mut s = self.lock();
        let inode = match mode {
            OpenMode::CreateNew => {
                s.op(OpKind::Create, path)?;
                if s.disk.live.files.contains_key(path) {
                    return Err(io::ErrorKind::AlreadyExists.into());
                }
                let i = s.disk.next_inode;
                s.disk.next_inode += 1;
                s.disk.files.insert(i, FileData::default());
                s.disk.log(
                    DirOp::Create {
                        path: path.to_owned(),
                    },
                    i,
                );
                i
            }
            _ => {
                s.op(OpKind::Open, path)?;
                *s.disk.live.files.get(path).ok_or_else(not_found)?
            }
        };
        Ok(Arc::new(FaultyFile {
            fs: self.clone(),
            inode,
            path: path.to_owned(),
        }))
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let mut s = self.lock();
        s.op(OpKind::Exists, path)?;
        Ok(s.disk.live.files.contains_key(path) || s.disk.live.dirs.contains(path))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.op(OpKind::Rename, from)?;
        if s.disk.live.dirs.contains(from) {
            let to_holds = s.disk.live.files.keys().any(|p| p.starts_with(to))
                || s.disk.live.dirs.iter().any(|d| d != to && d.starts_with(to));
            if to_holds {
                return Err(io::ErrorKind::DirectoryNotEmpty.into());
            }
            s.disk.log(
                DirOp::RenameDir {
                    from: from.to_owned(),
                    to: to.to_owned(),
                },
                0,
            );
            return Ok(());
        }
        let i = *s.disk.live.files.get(from).ok_or_else(not_found)?;
        s.disk.log(
            DirOp::Rename {
                from: from.to_owned(),
                to: to.to_owned(),
            },
            i,
        );
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.op(OpKind::Remove, path)?;
        let i = *s.disk.live.files.get(path).ok_or_else(not_found)?;
        s.disk.log(
            DirOp::Remove {
                path: path.to_owned(),
            },
            i,
        );
        Ok(())
    }

    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.op(OpKind::Remove, dir)?;
        if !s.disk.live.dirs.contains(dir) {
            return Err(not_found());
        }
        let holds = s.disk.live.files.keys().any(|p| p.starts_with(dir))
            || s.disk.live.dirs.iter().any(|d| d != dir && d.starts_with(dir));
        if holds {
            return Err(io::ErrorKind::DirectoryNotEmpty.into());
        }
        s.disk.log(DirOp::RemoveDir { path: dir.to_owned() }, 0);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.op(OpKind::SyncDir, dir)?;
        s.disk.sync_dir(dir);
        Ok(())
    }

    fn lock_exclusive(&self, path: &Path) -> io::Result<Box<dyn LockGuard>> {
        let mut s = self.lock();
        s.op(OpKind::Lock, path)?;
        if !s.locks.insert(path.to_owned()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(Box::new(FaultyLock {
            fs: self.clone(),
            path: path.to_owned(),
        }))
    }
}

impl FaultyFile {
    fn sync(&self) -> io::Result<()> {
        let mut s = self.fs.lock();
        s.op(OpKind::Sync, &self.path)?;
        let f = s.file_mut(self.inode)?;
        f.durable = f.live.clone();
        Ok(())
    }
}

impl FileHandle for FaultyFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut s = self.fs.lock();
        s.op(OpKind::Read, &self.path)?;
        let f = s.file(self.inode)?;
        let at = usize::try_from(offset).unwrap_or(usize::MAX);
        if at >= f.live.len() {
            return Ok(0);
        }
        let n = buf.len().min(f.live.len() - at);
        buf[..n].copy_from_slice(&f.live[at..at + n]);
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut s = self.fs.lock();
        let was_crashed = s.crashed.is_some();
        if let Err(e) = s.op(OpKind::Write, &self.path) {
            if !was_crashed && s.crashed.is_some() {
                s.interrupted = Some(Interrupted {
                    inode: self.inode,
                    offset,
                    bytes: buf.to_vec(),
                });
            }
            return Err(e);
        }
        let at = offset as usize;
        let current = s.file(self.inode).map_or(0, |f| f.live.len());
        let grows = (at + buf.len()).saturating_sub(current) as u64;
        if let Some(cap) = s.capacity
            && s.live_bytes() + grows > cap
        {
            return Err(io::Error::from(io::ErrorKind::StorageFull));
        }
        write_into(&mut s.file_mut(self.inode)?.live, offset, buf);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync()
    }

    fn len(&self) -> io::Result<u64> {
        let mut s = self.fs.lock();
        s.op(OpKind::Len, &self.path)?;
        Ok(s.file(self.inode)?.live.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.fs.lock();
        s.op(OpKind::SetLen, &self.path)?;
        let len = usize::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        s.file_mut(self.inode)?.live.resize(len, 0);
        Ok(())
    }

    fn map(&self) -> io::Result<Bytes> {
        let mut s = self.fs.lock();
        s.op(OpKind::Read, &self.path)?;
        Ok(Bytes::copy_from_slice(&s.file(self.inode)?.live))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsynced_data_is_lost_and_synced_data_kept() {
        let fs = FaultyFileSystem::new();
        let dir = Path::new("/d");
        let f = fs.open(&dir.join("a"), OpenMode::CreateNew).unwrap();
        f.write_all_at(b"hello", 0).unwrap();
        f.sync_data().unwrap();
        // Created and synced, but the directory entry was never synced.
        assert!(
            fs.crash_image(CrashMode::LoseUnsynced)
                .read_file(&dir.join("a"))
                .is_none()
        );
        fs.sync_dir(dir).unwrap();
        f.write_all_at(b" world", 5).unwrap();
        let img = fs.crash_image(CrashMode::LoseUnsynced);
        assert_eq!(img.read_file(&dir.join("a")).unwrap(), b"hello");
        fs.crash_at(0);
        assert!(f.write_all_at(&[7u8; 2000], 11).is_err());
        // Cut at the last sector boundary at or before the write's middle
        // (file offset 11 + 1000): 512, so the first 501 bytes.
        let torn = fs
            .crash_image(CrashMode::TearLastWrite)
            .read_file(&dir.join("a"))
            .unwrap();
        assert_eq!(torn.len(), 512);
        assert_eq!(&torn[11..], &[7u8; 501][..]);
        assert!(f.sync_data().is_err(), "operations after the crash fail");
        assert!(f.len().is_err(), "reads after the crash fail too");
    }
}
