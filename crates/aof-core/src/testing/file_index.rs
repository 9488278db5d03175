//! A segment index persisted as one JSON file through any [`FileSystem`],
//! so crash tests exercise index durability through the faulty file system.

use crate::fs::{FileSystem, OpenMode};
use aof_record::index::{IndexResult, MemorySegmentIndex};
use aof_record::{IndexError, LogId, SegmentEntry, SegmentIndex, SegmentStatus};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A [`SegmentIndex`] kept in memory and persisted, on [`SegmentIndex::sync`],
/// as a JSON file ([`MemorySegmentIndex::to_json`]: log identity and entries)
/// written through a [`FileSystem`] (temp file → sync → rename → sync
/// directory). Changes not yet synced are lost in a crash, as with any index
/// backend.
#[derive(Debug)]
pub struct FileIndex {
    fs: Arc<dyn FileSystem>,
    path: PathBuf,
    mem: MemorySegmentIndex,
    /// Held across a whole `sync`, snapshot included: two syncs at once
    /// (retention in the background beside a caller's) would otherwise
    /// share the temp file, and the one with the older snapshot could
    /// rename last, bringing back an entry whose file the other's caller
    /// had already deleted.
    syncing: std::sync::Mutex<()>,
}

impl FileIndex {
    /// Opens the index at `path`, empty if the file does not exist.
    pub fn open(fs: Arc<dyn FileSystem>, path: impl Into<PathBuf>) -> IndexResult<Self> {
        let path = path.into();
        let mut mem = MemorySegmentIndex::new();
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
            mem = MemorySegmentIndex::from_json(&data, &path)?;
        }
        Ok(Self {
            fs,
            path,
            mem,
            syncing: std::sync::Mutex::new(()),
        })
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
    fn log_identity(&self) -> IndexResult<Option<LogId>> {
        self.mem.log_identity()
    }
    fn set_log_identity(&self, id: LogId) -> IndexResult<()> {
        self.mem.set_log_identity(id)
    }
    fn sync(&self) -> IndexResult<()> {
        let io = |source| IndexError::Io {
            path: self.path.clone(),
            source,
        };
        let _one_at_a_time = self
            .syncing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let json = self.mem.to_json()?;
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
    use crate::testing::{CrashMode, FaultyFileSystem};

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
    fn log_identity_is_durable_at_sync_and_not_before() {
        use aof_record::conformance::index::{LOG_ID_A, finalized};
        let fs = FaultyFileSystem::new();
        let fs_dyn: Arc<dyn FileSystem> = Arc::new(fs.clone());
        let index = FileIndex::open(fs_dyn, "/idx/index.json").unwrap();
        index.add_entry(&finalized(0, 9, 0, 1)).unwrap();
        index.sync().unwrap();
        index.set_log_identity(LOG_ID_A).unwrap();
        let reopen = |img: FaultyFileSystem| FileIndex::open(Arc::new(img), "/idx/index.json").unwrap();
        let before = reopen(fs.crash_image(CrashMode::LoseUnsynced));
        assert_eq!(before.log_identity().unwrap(), None);
        assert_eq!(before.len().unwrap(), 1);
        index.sync().unwrap();
        let after = reopen(fs.crash_image(CrashMode::LoseUnsynced));
        assert_eq!(after.log_identity().unwrap(), Some(LOG_ID_A));
        assert_eq!(after.len().unwrap(), 1);
    }

    #[test]
    fn an_index_file_from_before_identities_opens_without_one() {
        use aof_record::conformance::index::finalized;
        let fs = FaultyFileSystem::new();
        let entries = vec![finalized(0, 9, 0, 1), finalized(10, 19, 1, 2)];
        let path = Path::new("/idx/index.json");
        FileIndex::open(Arc::new(fs.clone()), path)
            .unwrap()
            .sync()
            .unwrap();
        fs.write_file(path, serde_json::to_vec(&entries).unwrap());
        let index = FileIndex::open(Arc::new(fs), path).unwrap();
        assert_eq!(index.get_all_segments().unwrap(), entries);
        assert_eq!(index.log_identity().unwrap(), None);
    }
}
