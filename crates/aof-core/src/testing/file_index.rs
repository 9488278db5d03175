//! A segment index persisted as one JSON file through any [`FileSystem`],
//! so crash tests exercise index durability through the faulty file system.

use crate::fs::{FileSystem, OpenMode};
use aof_record::index::{IndexResult, MemorySegmentIndex};
use aof_record::{IndexError, SegmentEntry, SegmentIndex, SegmentStatus};
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    use crate::testing::FaultyFileSystem;

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
}
