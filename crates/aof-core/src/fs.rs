//! The storage abstraction the engine writes through: [`FileSystem`] and
//! [`FileHandle`], with [`LocalFileSystem`] for real files.
//!
//! Every byte the engine persists goes through these traits, which makes them
//! the seam for fault injection: the `fault-injection` feature's
//! `testing::FaultyFileSystem` keeps a durable image apart from the
//! live one and "crashes" at a chosen operation.

use bytes::Bytes;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// How [`FileSystem::open`] opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenMode {
    /// An existing file, read-only.
    Read,
    /// An existing file, for reading and writing.
    ReadWrite,
    /// A new file for reading and writing; fails if it exists.
    CreateNew,
}

/// A directory tree of files, as the engine sees it.
///
/// Durability follows POSIX: file contents are durable after
/// [`FileHandle::sync_data`]; creations, renames and removals are durable
/// after [`FileSystem::sync_dir`] on the parent directory.
pub trait FileSystem: Send + Sync + Debug + 'static {
    /// Creates `dir` and its missing parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;

    /// Names of the regular files directly inside `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;

    /// Opens the file at `path`.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn FileHandle>>;

    /// Whether a file (or directory) exists at `path`.
    fn exists(&self, path: &Path) -> io::Result<bool>;

    /// Atomically renames `from` to `to`, replacing `to`: a file, or a
    /// directory with all it holds (replacing an empty directory `to`).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Removes the file at `path`.
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Removes the empty directory `dir`.
    fn remove_dir(&self, dir: &Path) -> io::Result<()>;

    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;

    /// Takes an exclusive lock on the file at `path` (creating it), held until
    /// the returned guard is dropped; fails with `WouldBlock` if another
    /// holder has it.
    fn lock_exclusive(&self, path: &Path) -> io::Result<Box<dyn LockGuard>>;
}

/// A held lock; dropping it releases the lock.
pub trait LockGuard: Send + Sync + Debug {}

/// An open file.
#[expect(
    clippy::len_without_is_empty,
    reason = "a file's emptiness is never asked; len is its size"
)]
pub trait FileHandle: Send + Sync + Debug {
    /// Reads up to `buf.len()` bytes at `offset`; returns the count read (0 at the end).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;

    /// Writes all of `buf` at `offset`, extending the file if needed.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;

    /// Makes the file's contents durable (not necessarily its metadata other than size).
    fn sync_data(&self) -> io::Result<()>;

    /// Makes the file's contents and metadata durable.
    fn sync_all(&self) -> io::Result<()>;

    /// The file's length in bytes.
    fn len(&self) -> io::Result<u64>;

    /// Truncates or extends (with zeros) the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;

    /// Extends the file to at least `len` bytes that read as zeros, with
    /// their space reserved on the device but not written (Linux
    /// `fallocate`), so that running out of space shows here rather than
    /// in a later write. The default extends the file with
    /// [`set_len`](Self::set_len), which reserves nothing.
    fn allocate(&self, len: u64) -> io::Result<()> {
        if self.len()? < len {
            self.set_len(len)?;
        }
        Ok(())
    }

    /// The whole file as shared bytes: a read-only memory map where the
    /// implementation can, a copy otherwise. Only for files that no longer change.
    fn map(&self) -> io::Result<Bytes>;

    /// A live, read-only shared map of the file's first `len` bytes, which
    /// shows later writes; `None` where the implementation has none. The
    /// caller must never read past the file's current end through it.
    fn map_live(&self, len: u64) -> io::Result<Option<Bytes>> {
        let _ = len;
        Ok(None)
    }

    /// Starts writing bytes `offset..offset + len` back to the device
    /// without waiting (Linux `sync_file_range(SYNC_FILE_RANGE_WRITE)`), so
    /// that a later sync finds them already written, as RocksDB's
    /// `bytes_per_sync` does. A hint: it promises no durability, and the
    /// default does nothing.
    fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        let _ = (offset, len);
        Ok(())
    }

    /// Whether the file has no name left in its directory (removed, or
    /// replaced by a rename over its path): a read-only view following it
    /// must look again. `false` where the implementation cannot tell.
    fn is_unlinked(&self) -> io::Result<bool> {
        Ok(false)
    }
}

/// Conveniences over [`FileHandle`].
pub trait FileHandleExt: FileHandle {
    /// Reads exactly `buf.len()` bytes at `offset`, or fails with `UnexpectedEof`.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads `len` bytes at `offset` into a new vector; fewer at the end of the file.
    fn read_vec_at(&self, len: usize, offset: u64) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        let mut filled = 0;
        while filled < len {
            match self.read_at(&mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(filled);
        Ok(buf)
    }
}

impl<T: FileHandle + ?Sized> FileHandleExt for T {}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalFileSystem;

impl LocalFileSystem {
    /// The local file system, shared.
    #[must_use]
    pub fn shared() -> Arc<dyn FileSystem> {
        Arc::new(Self)
    }
}

/// A file of the local file system.
#[derive(Debug)]
pub struct LocalFile {
    file: File,
}

#[derive(Debug)]
struct LocalLock {
    _file: File,
}

impl LockGuard for LocalLock {}

impl FileSystem for LocalFileSystem {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file()
                && let Ok(name) = entry.file_name().into_string()
            {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn FileHandle>> {
        let mut opts = OpenOptions::new();
        match mode {
            OpenMode::Read => opts.read(true),
            OpenMode::ReadWrite => opts.read(true).write(true),
            OpenMode::CreateNew => opts.read(true).write(true).create_new(true),
        };
        Ok(Arc::new(LocalFile {
            file: opts.open(path)?,
        }))
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn remove_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::remove_dir(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn lock_exclusive(&self, path: &Path) -> io::Result<Box<dyn LockGuard>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Box::new(LocalLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Err(io::ErrorKind::WouldBlock.into()),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

impl FileHandle for LocalFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(&self.file, buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(&self.file, buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.file.sync_all()
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    #[cfg(target_os = "linux")]
    #[expect(unsafe_code, reason = "fallocate has no safe wrapper in std")]
    fn allocate(&self, len: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let Ok(signed) = i64::try_from(len) else {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        };
        // SAFETY: the descriptor is open for as long as `self.file` lives,
        // and fallocate reads no memory of ours.
        let rc = unsafe { libc::fallocate(self.file.as_raw_fd(), 0, 0, signed) };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EOPNOTSUPP) {
            // A file system without fallocate: extend without reserving.
            if self.file.metadata()?.len() < len {
                self.file.set_len(len)?;
            }
            return Ok(());
        }
        Err(e)
    }

    #[cfg(target_os = "linux")]
    #[expect(unsafe_code, reason = "sync_file_range has no safe wrapper in std")]
    fn start_writeback(&self, offset: u64, len: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        };
        // SAFETY: the descriptor is open for as long as `self.file` lives,
        // and sync_file_range reads no memory of ours.
        let rc =
            unsafe { libc::sync_file_range(self.file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn is_unlinked(&self) -> io::Result<bool> {
        use std::os::unix::fs::MetadataExt;
        Ok(self.file.metadata()?.nlink() == 0)
    }

    #[expect(unsafe_code, reason = "memory-mapping a file is unsafe by nature")]
    fn map(&self) -> io::Result<Bytes> {
        if self.len()? == 0 {
            return Ok(Bytes::new());
        }
        // SAFETY: the engine maps only finalized segments, which are never
        // written or truncated again while mapped: retention and truncation
        // remove whole files (unlinking leaves existing maps valid), and the
        // writer never reopens a finalized file for writing. Another process
        // modifying the file would break this; the directory lock keeps other
        // aof writers out.
        let map = unsafe { memmap2::Mmap::map(&self.file)? };
        Ok(Bytes::from_owner(map))
    }

    #[expect(unsafe_code, reason = "memory-mapping a file is unsafe by nature")]
    fn map_live(&self, len: u64) -> io::Result<Option<Bytes>> {
        if len == 0 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: used only for the active segment of a pre-allocated file,
        // and only for bytes below the data already written (so below the
        // file's end: the file never shrinks beneath written data while it
        // is active). The writer keeps writing other parts of the file; a
        // shared map shows those writes, and no reader looks at them before
        // they are complete (offsets are published under the writer lock).
        let map = unsafe { memmap2::MmapOptions::new().len(len).map(&self.file)? };
        Ok(Some(Bytes::from_owner(map)))
    }
}

/// A file that is not there: empty, and every write fails. Stands in for
/// the next segment of a log opened read-only.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NoFile;

impl FileHandle for NoFile {
    fn read_at(&self, _buf: &mut [u8], _offset: u64) -> io::Result<usize> {
        Ok(0)
    }

    fn write_all_at(&self, _buf: &[u8], _offset: u64) -> io::Result<()> {
        Err(io::ErrorKind::ReadOnlyFilesystem.into())
    }

    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }

    fn sync_all(&self) -> io::Result<()> {
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(0)
    }

    fn set_len(&self, _len: u64) -> io::Result<()> {
        Err(io::ErrorKind::ReadOnlyFilesystem.into())
    }

    fn map(&self) -> io::Result<Bytes> {
        Ok(Bytes::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The writeback hint works on real files, including a range reaching
    /// past the end, and leaves the contents alone.
    #[test]
    fn start_writeback_on_a_real_file() {
        let dir = tempfile::tempdir().unwrap();
        let fs = LocalFileSystem::shared();
        let path = dir.path().join("f");
        let file = fs.open(&path, OpenMode::CreateNew).unwrap();
        let data = vec![7u8; 3 << 20];
        file.write_all_at(&data, 0).unwrap();
        file.start_writeback(0, 2 << 20).unwrap();
        file.start_writeback(2 << 20, 8 << 20).unwrap();
        #[cfg(target_os = "linux")]
        assert!(
            file.start_writeback(u64::MAX, 1).is_err(),
            "offsets past i64 are refused"
        );
        assert_eq!(file.read_vec_at(data.len(), 0).unwrap(), data);
    }
}
