//! A filesystem [`ArchiveStorage`]: each archived object is a file under a
//! root directory, its key's `/`-separated parts as directories.
//!
//! Invariants, kept by the code below:
//! - **A stored object is complete and durable.** Bytes go to a temporary
//!   file in `<root>/#staging` (`#` never occurs in a key), which is synced;
//!   it is then hard-linked to its key's path — an atomic create that fails
//!   if the path exists — and the directory holding it is synced before
//!   `store` returns. A crash leaves either no object or the whole one;
//!   leftover temporary files are removed by [`FilesystemArchiveStorage::new`].
//! - **Objects are never replaced.** A key that holds the same bytes (size
//!   and CRC-64/NVME) makes `store` a no-op; other bytes give
//!   `AlreadyExists` and the old file stays.
//! - **Keys never escape the root:** [`ArchiveKey`] admits only
//!   `[A-Za-z0-9._-]` parts, none empty, `.` or `..`, at most 512 bytes.
//!
//! On a filesystem, a key cannot be both an object and a prefix of another
//! (`a` and `a/b`); such a store fails with an I/O error.
//!
//! `head` reads the object to compute its checksum (the filesystem keeps no
//! checksum beside the bytes), so it costs one sequential read.
//!
//! # Example
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use aof_archive_fs::FilesystemArchiveStorage;
//! use aof_record::archive::{ArchiveKey, ArchiveStorage, ArchiveStorageExt};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let archive = FilesystemArchiveStorage::new(dir.path()).unwrap();
//! let key = ArchiveKey::new("segments/00000000000000000000.seg.zst").unwrap();
//! archive.store_bytes(&key, bytes::Bytes::from_static(b"hello")).await.unwrap();
//! assert_eq!(&archive.read_range(&key, 1..4).await.unwrap()[..], b"ell");
//! assert!(dir.path().join("segments/00000000000000000000.seg.zst").is_file());
//! # });
//! ```

use aof_record::archive::{
    ArchiveError, ArchiveKey, ArchiveResult, ArchiveStorage, ListedObject, ObjectMeta, ObjectSource,
    ObjectStream, check_range,
};
use aof_record::checksum::Crc64;
use async_trait::async_trait;
use bytes::Bytes;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Directory under the root for files being written; `#` is never in a key.
const STAGING: &str = "#staging";
/// Bytes read or written per step.
const CHUNK: usize = 1 << 20;

/// An archive in a local directory. Cheap to clone.
#[derive(Debug, Clone)]
pub struct FilesystemArchiveStorage {
    root: Arc<PathBuf>,
}

impl FilesystemArchiveStorage {
    /// An archive rooted at `root`, created if missing. Removes temporary
    /// files a crash may have left in `<root>/#staging`.
    pub fn new(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        let staging = root.join(STAGING);
        fs::create_dir_all(&staging)?;
        for entry in fs::read_dir(&staging)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                fs::remove_file(entry.path())?;
            }
        }
        sync_dir(&root)?;
        Ok(Self { root: Arc::new(root) })
    }

    /// The root directory.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file that holds `key`.
    #[must_use]
    pub fn path_of(&self, key: &ArchiveKey) -> PathBuf {
        let mut p = (*self.root).clone();
        p.extend(key.parts());
        p
    }

    /// Runs blocking file work off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        key: &ArchiveKey,
        f: impl FnOnce(&Self, &ArchiveKey) -> ArchiveResult<T> + Send + 'static,
    ) -> ArchiveResult<T> {
        let (this, k) = (self.clone(), key.clone());
        tokio::task::spawn_blocking(move || f(&this, &k))
            .await
            .map_err(|e| ArchiveError::Io {
                key: key.clone(),
                source: io::Error::other(e),
            })?
    }

    fn store_blocking(&self, key: &ArchiveKey, source: ObjectSource) -> ArchiveResult<ObjectMeta> {
        let io_err = |source| ArchiveError::Io {
            key: key.clone(),
            source,
        };
        let mut reader = source.into_checked(key);
        let mut tmp = tempfile::Builder::new()
            .prefix("store-")
            .tempfile_in(self.root.join(STAGING))
            .map_err(io_err)?;
        while let Some(chunk) = reader.next_chunk(CHUNK)? {
            tmp.write_all(&chunk).map_err(io_err)?;
        }
        let meta = reader.meta().expect("the source was read to its end");
        tmp.as_file().sync_all().map_err(io_err)?;
        let path = self.path_of(key);
        let parent = path.parent().expect("a key's path is below the root");
        create_dirs(&self.root, parent).map_err(io_err)?;
        match fs::hard_link(tmp.path(), &path) {
            Ok(()) => {
                sync_dir(parent).map_err(io_err)?;
                Ok(meta)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let existing = meta_of(&path).map_err(io_err)?;
                if existing == meta {
                    Ok(meta)
                } else {
                    Err(ArchiveError::AlreadyExists { key: key.clone() })
                }
            }
            Err(e) => Err(io_err(e)),
        }
        // `tmp` is removed when dropped; its name in #staging needs no sync.
    }

    fn open(&self, key: &ArchiveKey) -> ArchiveResult<File> {
        let path = self.path_of(key);
        match File::open(&path) {
            Ok(f) if f.metadata().is_ok_and(|m| m.is_file()) => Ok(f),
            Ok(_) => Err(ArchiveError::NotFound { key: key.clone() }),
            Err(e) if is_missing(&e) => Err(ArchiveError::NotFound { key: key.clone() }),
            Err(source) => Err(ArchiveError::Io {
                key: key.clone(),
                source,
            }),
        }
    }

    fn list_blocking(&self, prefix: Option<&ArchiveKey>) -> io::Result<Vec<ListedObject>> {
        let start = prefix.map_or_else(|| (*self.root).clone(), |p| self.path_of(p));
        let mut out = Vec::new();
        let mut dirs = vec![start];
        while let Some(dir) = dirs.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if is_missing(&e) => continue,
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                let path = entry.path();
                let ft = entry.file_type()?;
                if ft.is_dir() {
                    if path != self.root.join(STAGING) {
                        dirs.push(path);
                    }
                } else if ft.is_file() {
                    let rel = path.strip_prefix(&*self.root).map_err(io::Error::other)?;
                    // Files whose path is not a key (put there by hand) are not objects.
                    if let Some(key) = rel.to_str().and_then(|s| ArchiveKey::new(s).ok()) {
                        out.push(ListedObject {
                            key,
                            size: entry.metadata()?.len(),
                        });
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

fn is_missing(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
}

/// Creates `dir` and its missing parents below `root`, syncing each parent
/// whose entries changed, so a synced object's path survives a crash.
fn create_dirs(root: &Path, dir: &Path) -> io::Result<()> {
    if dir == root || dir.is_dir() {
        return Ok(());
    }
    let parent = dir.parent().unwrap_or(root);
    create_dirs(root, parent)?;
    match fs::create_dir(dir) {
        Ok(()) => sync_dir(parent),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Size and CRC-64/NVME of a file, read sequentially.
fn meta_of(path: &Path) -> io::Result<ObjectMeta> {
    meta_of_file(&mut File::open(path)?)
}

fn meta_of_file(f: &mut File) -> io::Result<ObjectMeta> {
    let mut crc = Crc64::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        crc.update(&buf[..n]);
        size += n as u64;
    }
    Ok(ObjectMeta {
        size,
        checksum: crc.finish(),
    })
}

#[async_trait]
impl ArchiveStorage for FilesystemArchiveStorage {
    async fn store(&self, key: &ArchiveKey, source: ObjectSource) -> ArchiveResult<ObjectMeta> {
        self.blocking(key, move |this, key| this.store_blocking(key, source))
            .await
    }

    async fn read_range(&self, key: &ArchiveKey, range: Range<u64>) -> ArchiveResult<Bytes> {
        self.blocking(key, move |this, key| {
            let io_err = |source| ArchiveError::Io {
                key: key.clone(),
                source,
            };
            let mut f = this.open(key)?;
            let size = f.metadata().map_err(io_err)?.len();
            check_range(key, &range, size)?;
            let len = usize::try_from(range.end - range.start).map_err(|e| io_err(io::Error::other(e)))?;
            let mut buf = vec![0u8; len];
            f.seek(SeekFrom::Start(range.start)).map_err(io_err)?;
            f.read_exact(&mut buf).map_err(io_err)?;
            Ok(Bytes::from(buf))
        })
        .await
    }

    async fn read(&self, key: &ArchiveKey) -> ArchiveResult<ObjectStream> {
        let file = self.blocking(key, |this, key| this.open(key)).await?;
        let key = key.clone();
        let stream = futures_util::stream::try_unfold(Some(file), move |file| {
            let key = key.clone();
            async move {
                let Some(mut file) = file else { return Ok(None) };
                let io_key = key.clone();
                let (file, chunk) = tokio::task::spawn_blocking(move || {
                    let mut buf = vec![0u8; CHUNK];
                    let mut n = 0;
                    while n < CHUNK {
                        match file.read(&mut buf[n..]) {
                            Ok(0) => break,
                            Ok(k) => n += k,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(e),
                        }
                    }
                    buf.truncate(n);
                    Ok((file, buf))
                })
                .await
                .map_err(io::Error::other)
                .and_then(|r| r)
                .map_err(|source| ArchiveError::Io { key: io_key, source })?;
                if chunk.is_empty() {
                    Ok(None)
                } else {
                    Ok(Some((Bytes::from(chunk), Some(file))))
                }
            }
        });
        Ok(Box::pin(stream))
    }

    async fn head(&self, key: &ArchiveKey) -> ArchiveResult<ObjectMeta> {
        self.blocking(key, |this, key| {
            let mut f = this.open(key)?;
            meta_of_file(&mut f).map_err(|source| ArchiveError::Io {
                key: key.clone(),
                source,
            })
        })
        .await
    }

    async fn delete(&self, key: &ArchiveKey) -> ArchiveResult<()> {
        self.blocking(key, |this, key| {
            let io_err = |source| ArchiveError::Io {
                key: key.clone(),
                source,
            };
            let path = this.path_of(key);
            match fs::remove_file(&path) {
                Ok(()) => sync_dir(path.parent().expect("below the root")).map_err(io_err),
                Err(e) if is_missing(&e) => Ok(()),
                Err(e) => Err(io_err(e)),
            }
        })
        .await
    }

    async fn list(&self, prefix: Option<&ArchiveKey>) -> ArchiveResult<Vec<ListedObject>> {
        let prefix = prefix.cloned();
        let key = prefix
            .clone()
            .unwrap_or_else(|| ArchiveKey::new("-").expect("a valid key"));
        self.blocking(&key, move |this, key| {
            this.list_blocking(prefix.as_ref())
                .map_err(|source| ArchiveError::Io {
                    key: key.clone(),
                    source,
                })
        })
        .await
    }
}
