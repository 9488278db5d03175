//! Crash-test tools (feature `fault-injection`): a file system that keeps
//! the durable image apart from the live one and "crashes" at a chosen
//! operation, and a segment index persisted through any [`FileSystem`].

use crate::fs::{FileHandle, FileSystem, LockGuard, OpenMode};
use aof_record::index::{IndexResult, MemorySegmentIndex};
use aof_record::{IndexError, SegmentEntry, SegmentIndex, SegmentStatus};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// How [`FaultyFileSystem::crash_image`] builds the disk as it is after a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CrashMode {
    /// Only what was synced survives: unsynced writes and directory changes are lost.
    LoseUnsynced,
    /// Everything before the crash survives, and the interrupted write
    /// persisted only its first bytes, cut at a 512-byte boundary.
    TearLastWrite,
    /// Everything before the crash survives, and the interrupted write's
    /// range holds garbage.
    GarbageLastWrite,
}

#[derive(Debug, Clone, Default)]
struct FileData {
    live: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug, Default)]
struct State {
    files: BTreeMap<u64, FileData>,
    live_dir: BTreeMap<PathBuf, u64>,
    durable_dir: BTreeMap<PathBuf, u64>,
    next_inode: u64,
    ops: u64,
    crash_at: Option<u64>,
    crashed: bool,
    /// The write the crash interrupted: (inode, offset, bytes).
    interrupted: Option<(u64, u64, Vec<u8>)>,
    /// Fail (once) the sync with this operation index, without crashing.
    fail_sync_at: Option<u64>,
    /// Total live bytes beyond which writes fail with `StorageFull`.
    capacity: Option<u64>,
    locks: BTreeSet<PathBuf>,
}

impl State {
    /// Counts a mutating operation; fails it if the crash point is reached.
    fn op(&mut self) -> io::Result<u64> {
        if self.crashed {
            return Err(io::Error::other("crashed"));
        }
        let n = self.ops;
        self.ops += 1;
        if self.crash_at == Some(n) {
            self.crashed = true;
            return Err(io::Error::other("crashed"));
        }
        Ok(n)
    }

    fn live_bytes(&self) -> u64 {
        self.files.values().map(|f| f.live.len() as u64).sum()
    }
}

/// An in-memory [`FileSystem`] for crash tests.
///
/// Every mutating operation (create, write, set_len, sync, rename, remove,
/// directory sync) has an index; with [`FaultyFileSystem::crash_at`] the
/// operation with that index fails and so does everything after it. File
/// contents become durable on `sync_data`/`sync_all`, directory entries on
/// `sync_dir`. [`FaultyFileSystem::crash_image`] then gives the disk as a
/// crash would leave it, as a new file system to reopen the log on.
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

    /// Crash at the mutating operation with index `n` (counted from now on).
    pub fn crash_at(&self, n: u64) {
        let mut s = self.lock();
        s.crash_at = Some(s.ops + n);
    }

    /// Fail the first sync at or after operation index `n` (counted from
    /// now on) with an I/O error, once, without crashing.
    pub fn fail_sync_at(&self, n: u64) {
        let mut s = self.lock();
        s.fail_sync_at = Some(s.ops + n);
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

    /// Mutating operations so far.
    #[must_use]
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// Whether the crash point was reached.
    #[must_use]
    pub fn crashed(&self) -> bool {
        self.lock().crashed
    }

    /// The disk as a crash now would leave it, as a fresh file system.
    #[must_use]
    pub fn crash_image(&self, mode: CrashMode) -> Self {
        let s = self.lock();
        let mut img = State {
            next_inode: s.next_inode,
            ..State::default()
        };
        match mode {
            CrashMode::LoseUnsynced => {
                for (path, inode) in &s.durable_dir {
                    let data = s.files.get(inode).map(|f| f.durable.clone()).unwrap_or_default();
                    img.files.insert(
                        *inode,
                        FileData {
                            live: data.clone(),
                            durable: data,
                        },
                    );
                    img.live_dir.insert(path.clone(), *inode);
                }
            }
            CrashMode::TearLastWrite | CrashMode::GarbageLastWrite => {
                for (path, inode) in &s.live_dir {
                    let mut data = s.files.get(inode).map(|f| f.live.clone()).unwrap_or_default();
                    if let Some((i, offset, bytes)) = &s.interrupted
                        && i == inode
                    {
                        let kept = if mode == CrashMode::TearLastWrite {
                            bytes[..(bytes.len() / 2) / 512 * 512].to_vec()
                        } else {
                            let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ *offset;
                            bytes
                                .iter()
                                .map(|_| {
                                    x ^= x << 13;
                                    x ^= x >> 7;
                                    x ^= x << 17;
                                    x as u8
                                })
                                .collect()
                        };
                        let at = *offset as usize;
                        if data.len() < at + kept.len() {
                            data.resize(at + kept.len(), 0);
                        }
                        data[at..at + kept.len()].copy_from_slice(&kept);
                    }
                    img.files.insert(
                        *inode,
                        FileData {
                            live: data.clone(),
                            durable: data,
                        },
                    );
                    img.live_dir.insert(path.clone(), *inode);
                }
            }
        }
        img.durable_dir = img.live_dir.clone();
        Self {
            state: Arc::new(Mutex::new(img)),
        }
    }

    /// The live bytes of the file at `path`.
    #[must_use]
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.lock();
        s.live_dir
            .get(path)
            .and_then(|i| s.files.get(i))
            .map(|f| f.live.clone())
    }

    /// Replaces the bytes of the file at `path` (live and durable), outside
    /// the operation count: for corrupting a file on purpose.
    pub fn write_file(&self, path: &Path, data: Vec<u8>) {
        let mut s = self.lock();
        if let Some(i) = s.live_dir.get(path).copied()
            && let Some(f) = s.files.get_mut(&i)
        {
            f.live = data.clone();
            f.durable = data;
        }
    }

    /// A deep copy, independent of `self`.
    #[must_use]
    pub fn deep_clone(&self) -> Self {
        let s = self.lock();
        Self {
            state: Arc::new(Mutex::new(State {
                files: s.files.clone(),
                live_dir: s.live_dir.clone(),
                durable_dir: s.durable_dir.clone(),
                next_inode: s.next_inode,
                ..State::default()
            })),
        }
    }
}

#[derive(Debug)]
struct FaultyFile {
    fs: FaultyFileSystem,
    inode: u64,
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
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let s = self.lock();
        Ok(s.live_dir
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect())
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn FileHandle>> {
        let mut s = self.lock();
        let inode = match mode {
            OpenMode::CreateNew => {
                s.op()?;
                if s.live_dir.contains_key(path) {
                    return Err(io::ErrorKind::AlreadyExists.into());
                }
                let i = s.next_inode;
                s.next_inode += 1;
                s.files.insert(i, FileData::default());
                s.live_dir.insert(path.to_owned(), i);
                i
            }
            _ => *s.live_dir.get(path).ok_or_else(not_found)?,
        };
        Ok(Arc::new(FaultyFile {
            fs: self.clone(),
            inode,
        }))
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        Ok(self.lock().live_dir.contains_key(path))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.op()?;
        let i = s.live_dir.remove(from).ok_or_else(not_found)?;
        s.live_dir.insert(to.to_owned(), i);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.op()?;
        s.live_dir.remove(path).map(|_| ()).ok_or_else(not_found)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.lock();
        s.op()?;
        let live: Vec<(PathBuf, u64)> = s
            .live_dir
            .iter()
            .filter(|(p, _)| p.parent() == Some(dir))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        s.durable_dir.retain(|p, _| p.parent() != Some(dir));
        s.durable_dir.extend(live);
        Ok(())
    }

    fn lock_exclusive(&self, path: &Path) -> io::Result<Box<dyn LockGuard>> {
        let mut s = self.lock();
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
        let n = s.op()?;
        if s.fail_sync_at.is_some_and(|at| n >= at) {
            s.fail_sync_at = None;
            return Err(io::Error::other("injected fsync failure"));
        }
        let f = s.files.get_mut(&self.inode).ok_or_else(not_found)?;
        f.durable = f.live.clone();
        Ok(())
    }
}

impl FileHandle for FaultyFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let s = self.fs.lock();
        let f = s.files.get(&self.inode).ok_or_else(not_found)?;
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
        let n = s.ops;
        if let Err(e) = s.op() {
            if s.crash_at == Some(n) {
                s.interrupted = Some((self.inode, offset, buf.to_vec()));
            }
            return Err(e);
        }
        let at = offset as usize;
        let current = s.files.get(&self.inode).map_or(0, |f| f.live.len());
        let grows = (at + buf.len()).saturating_sub(current) as u64;
        if let Some(cap) = s.capacity
            && s.live_bytes() + grows > cap
        {
            return Err(io::Error::from(io::ErrorKind::StorageFull));
        }
        let f = s.files.get_mut(&self.inode).ok_or_else(not_found)?;
        if f.live.len() < at + buf.len() {
            f.live.resize(at + buf.len(), 0);
        }
        f.live[at..at + buf.len()].copy_from_slice(buf);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync()
    }

    fn len(&self) -> io::Result<u64> {
        let s = self.fs.lock();
        Ok(s.files.get(&self.inode).ok_or_else(not_found)?.live.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut s = self.fs.lock();
        s.op()?;
        let f = s.files.get_mut(&self.inode).ok_or_else(not_found)?;
        f.live.resize(len as usize, 0);
        Ok(())
    }

    fn map(&self) -> io::Result<Bytes> {
        let s = self.fs.lock();
        Ok(Bytes::copy_from_slice(
            &s.files.get(&self.inode).ok_or_else(not_found)?.live,
        ))
    }
}

/// A [`SegmentIndex`] kept in memory and persisted, on [`SegmentIndex::sync`],
/// as a JSON file written through a [`FileSystem`] (temp file → sync →
/// rename → sync directory). Changes not yet synced are lost in a crash, as
/// with any index backend.
#[derive(Debug)]
pub struct FileIndex {
    fs: Arc<dyn FileSystem>,
    path: PathBuf,
    mem: MemorySegmentIndex,
}

impl FileIndex {
    /// Opens the index at `path`, empty if the file does not exist.
    pub fn open(fs: Arc<dyn FileSystem>, path: impl Into<PathBuf>) -> IndexResult<Self> {
        let path = path.into();
        let mem = MemorySegmentIndex::new();
        if fs.exists(&path).map_err(|source| IndexError::Io {
            path: path.clone(),
            source,
        })? {
            let file = fs.open(&path, OpenMode::Read).map_err(|source| IndexError::Io {
                path: path.clone(),
                source,
            })?;
            let data = file.map().map_err(|source| IndexError::Io {
                path: path.clone(),
                source,
            })?;
            let entries: Vec<SegmentEntry> =
                serde_json::from_slice(&data).map_err(|_| IndexError::NotAnIndex {
                    path: path.clone(),
                    reason: "not a JSON list of segment entries",
                })?;
            mem.add_entries(&entries)?;
        }
        Ok(Self { fs, path, mem })
    }

    fn tmp(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".new");
        PathBuf::from(p)
    }
}

impl Drop for FileIndex {
    /// A clean close keeps every change, as the persistent backends do.
    fn drop(&mut self) {
        let _ = self.sync();
    }
}

impl SegmentIndex for FileIndex {
    fn add_entry(&self, entry: &SegmentEntry) -> IndexResult<()> {
        self.mem.add_entry(entry)
    }
    fn add_entries(&self, entries: &[SegmentEntry]) -> IndexResult<()> {
        self.mem.add_entries(entries)
    }
    fn update_entry(&self, entry: &SegmentEntry) -> IndexResult<()> {
        self.mem.update_entry(entry)
    }
    fn remove_entry(&self, base_id: u64) -> IndexResult<Option<SegmentEntry>> {
        self.mem.remove_entry(base_id)
    }
    fn get_entry(&self, base_id: u64) -> IndexResult<Option<SegmentEntry>> {
        self.mem.get_entry(base_id)
    }
    fn find_segment_for_id(&self, id: u64) -> IndexResult<Option<SegmentEntry>> {
        self.mem.find_segment_for_id(id)
    }
    fn find_segments_for_timestamp(&self, start_us: u64, end_us: u64) -> IndexResult<Vec<SegmentEntry>> {
        self.mem.find_segments_for_timestamp(start_us, end_us)
    }
    fn get_all_segments(&self) -> IndexResult<Vec<SegmentEntry>> {
        self.mem.get_all_segments()
    }
    fn get_segments_before(&self, id: u64) -> IndexResult<Vec<SegmentEntry>> {
        self.mem.get_segments_before(id)
    }
    fn get_max_last_id(&self) -> IndexResult<Option<u64>> {
        self.mem.get_max_last_id()
    }
    fn get_active_segment(&self) -> IndexResult<Option<SegmentEntry>> {
        self.mem.get_active_segment()
    }
    fn get_latest_finalized_segment(&self) -> IndexResult<Option<SegmentEntry>> {
        self.mem.get_latest_finalized_segment()
    }
    fn get_segments_for_archiving(&self, count: usize) -> IndexResult<Vec<SegmentEntry>> {
        self.mem.get_segments_for_archiving(count)
    }
    fn update_segment_status(&self, base_id: u64, status: SegmentStatus) -> IndexResult<()> {
        self.mem.update_segment_status(base_id, status)
    }
    fn update_segment_tail(&self, base_id: u64, last_id: Option<u64>, size: u64) -> IndexResult<()> {
        self.mem.update_segment_tail(base_id, last_id, size)
    }
    fn sync(&self) -> IndexResult<()> {
        let io = |source| IndexError::Io {
            path: self.path.clone(),
            source,
        };
        let json = serde_json::to_vec(&self.mem.get_all_segments()?).map_err(|e| IndexError::Backend {
            backend: "file",
            source: Box::new(e),
        })?;
        let tmp = self.tmp();
        if self.fs.exists(&tmp).map_err(io)? {
            self.fs.remove_file(&tmp).map_err(io)?;
        }
        let file = self.fs.open(&tmp, OpenMode::CreateNew).map_err(io)?;
        file.write_all_at(&json, 0).map_err(io)?;
        file.sync_all().map_err(io)?;
        self.fs.rename(&tmp, &self.path).map_err(io)?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        self.fs.sync_dir(dir).map_err(io)
    }
    fn len(&self) -> IndexResult<usize> {
        self.mem.len()
    }
    fn copy_to(&self, dest: &Path) -> IndexResult<()> {
        self.mem.copy_to(dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_index_passes_the_conformance_suite() {
        aof_record::conformance::index::run_all(&mut || {
            Box::new(FileIndex::open(Arc::new(FaultyFileSystem::new()), "/idx/index.json").unwrap())
        });
        let fs: Arc<dyn FileSystem> = Arc::new(FaultyFileSystem::new());
        aof_record::conformance::index::reopen_keeps_everything(&mut || {
            Box::new(FileIndex::open(fs.clone(), "/idx/index.json").unwrap())
        });
    }

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
        let torn = fs
            .crash_image(CrashMode::TearLastWrite)
            .read_file(&dir.join("a"))
            .unwrap();
        assert_eq!(torn.len(), 11 + 512);
        assert!(f.sync_data().is_err(), "operations after the crash fail");
    }
}
