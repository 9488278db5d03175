//! Opening a log on the embedded defaults: [`open`], [`Builder`], and where
//! a log's index lives.

use aof_core::layout::{MDBX_INDEX_FILE, SQLITE_INDEX_FILE};
use aof_core::{Aof, AofOptions, FileSystem, TimeSource};
use aof_record::archive::ArchiveStorage;
use aof_record::{AofConfig, AofError, AofResult, IndexBackend, SegmentIndex};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Opens (creating if needed) the log in `dir` on local files, with the
/// index backend `config` names at `config.index_path()` (default: inside
/// `dir`). The same as `Builder::new(dir).config(config).open()`.
pub fn open(dir: impl AsRef<Path>, config: AofConfig) -> AofResult<Aof> {
    Builder::new(dir).config(config).open()
}

/// [`open`] with engine options (file system, clocks, index rebuild, reader limit).
pub fn open_with(dir: impl AsRef<Path>, options: AofOptions) -> AofResult<Aof> {
    Builder::new(dir).options(options).open()
}

/// Opens (creating if needed) the log in `dir` through the file system
/// `fs`, archiving to `archive_storage` (when `config` enables archival, or
/// just reading what was archived before), with the index backend `config`
/// names. The design's `open_with_fs_and_config`, with the directory first.
pub fn open_with_fs_and_config(
    dir: impl AsRef<Path>,
    fs: Arc<dyn FileSystem>,
    archive_storage: Option<Arc<dyn ArchiveStorage>>,
    config: AofConfig,
) -> AofResult<Aof> {
    let mut b = Builder::new(dir).config(config).file_system(fs);
    if let Some(a) = archive_storage {
        b = b.archive(a);
    }
    b.open()
}

/// How to open a log: the directory, its configuration, and (all optional)
/// the engine's options and an index of the caller's own.
///
/// ```
/// use aof::{AofConfig, Builder, FlushStrategy};
///
/// let dir = tempfile::tempdir().unwrap();
/// let log = Builder::new(dir.path())
///     .config(AofConfig::builder().flush_strategy(FlushStrategy::Async).build().unwrap())
///     .max_readers(8)
///     .open()
///     .unwrap();
/// log.append(b"x").unwrap();
/// log.flush_blocking().unwrap();
/// ```
#[derive(Debug)]
#[must_use = "a builder does nothing until `open` is called"]
pub struct Builder {
    dir: PathBuf,
    options: AofOptions,
    index: Option<Arc<dyn SegmentIndex>>,
}

impl Builder {
    /// A log in `dir` with the default configuration.
    pub fn new(dir: impl AsRef<Path>) -> Self {
        Self {
            dir: dir.as_ref().to_owned(),
            options: AofOptions::new(AofConfig::default()),
            index: None,
        }
    }

    /// The configuration (replaces the one in any options given before).
    pub fn config(mut self, config: AofConfig) -> Self {
        self.options.config = config;
        self
    }

    /// Every engine option at once, configuration included.
    pub fn options(mut self, options: AofOptions) -> Self {
        self.options = options;
        self
    }

    /// The file system to write through (default: local files).
    pub fn file_system(mut self, fs: Arc<dyn FileSystem>) -> Self {
        self.options.fs = fs;
        self
    }

    /// The wall clock of record timestamps (default: the system's).
    pub fn time_source(mut self, time: Arc<dyn TimeSource>) -> Self {
        self.options.time = time;
        self
    }

    /// Most readers and tails open at once (default 1024).
    pub fn max_readers(mut self, max: usize) -> Self {
        self.options.max_readers = max;
        self
    }

    /// The keys of record encryption ([`AofOptions::keys`]): required with
    /// `enable_encryption`, and to read encrypted records.
    pub fn keys(mut self, keys: Arc<aof_core::KeyRing>) -> Self {
        self.options.keys = Some(keys);
        self
    }

    /// Rebuild the index from the segment files when it is empty but files exist.
    pub fn rebuild_index(mut self, rebuild: bool) -> Self {
        self.options.rebuild_index = rebuild;
        self
    }

    /// The archive finalized segments move to when the configuration
    /// enables archival (`archive_enabled`), and archived records are read
    /// from. Archival enabled without one is refused at open.
    pub fn archive(mut self, storage: Arc<dyn ArchiveStorage>) -> Self {
        self.options.archive = Some(storage);
        self
    }

    /// Most bytes of fetched archived data kept in the log's cache directory (default 256 MiB).
    pub fn archive_cache_bytes(mut self, bytes: u64) -> Self {
        self.options.archive_cache_bytes = bytes;
        self
    }

    /// How long an append waits for the archiver under backpressure before
    /// failing with [`AofError::Backpressure`] (default 0).
    pub fn backpressure_wait(mut self, wait: Duration) -> Self {
        self.options.backpressure_wait = wait;
        self
    }

    /// Use `index` instead of opening the configured backend's index.
    pub fn index(mut self, index: Arc<dyn SegmentIndex>) -> Self {
        self.index = Some(index);
        self
    }

    /// Opens (creating if needed) the log, recovering from a crash if one happened.
    pub fn open(self) -> AofResult<Aof> {
        let dir = self.dir;
        self.options.config.validate()?;
        if self.options.config.archive_enabled() && self.options.archive.is_none() {
            // Before anything is created.
            return Err(AofError::ArchiveNotConfigured);
        }
        let index = match self.index {
            Some(index) => index,
            None => {
                std::fs::create_dir_all(&dir).map_err(|e| AofError::io(&dir, e))?;
                // A log another writer has open is refused as such before
                // its index is touched (MDBX would only say "busy").
                drop(aof_core::lock_log(self.options.fs.as_ref(), &dir)?);
                open_index(&dir, &self.options.config)?
            }
        };
        Aof::open_with(&dir, self.options, index)
    }
}

/// Opens the existing log in `dir` read-only: no lock is taken (it works
/// beside a writer in another process) and no byte in the directory
/// changes. See [`Aof::open_read_only`] for what the handle sees, and
/// [`Aof::refresh`] (or a [`crate::Tail`]) to follow a writer.
///
/// The index is read once into memory: a SQLite index through a read-only
/// connection (of a private copy when a write-ahead log is present), an
/// MDBX index from a private copy of its file (a writer holds the file
/// exclusively, and a view must never keep one from opening it). Built
/// without the `mdbx` feature, the entries of an MDBX log are rebuilt from
/// its segment files, which reads every segment and sees none archived.
pub fn open_read_only(dir: impl AsRef<Path>, config: AofConfig) -> AofResult<Aof> {
    open_read_only_with_archive(dir, config, None)
}

/// [`open_read_only`], reading archived segments from `archive` (fetched
/// data goes to a private temporary directory: the log's stays untouched).
pub fn open_read_only_with_archive(
    dir: impl AsRef<Path>,
    config: AofConfig,
    archive: Option<Arc<dyn ArchiveStorage>>,
) -> AofResult<Aof> {
    let dir = dir.as_ref();
    config.validate()?;
    if !dir.is_dir() {
        return Err(AofError::NotALog {
            path: dir.to_owned(),
            reason: "it is not a directory",
        });
    }
    let backend = match config.index_path() {
        Some(_) => config.index_backend(),
        None => detect_index_backend(dir).unwrap_or(config.index_backend()),
    };
    let entries = match backend {
        #[cfg(feature = "sqlite")]
        IndexBackend::Sqlite => {
            let path = config
                .index_path()
                .map_or_else(|| dir.join(SQLITE_INDEX_FILE), Path::to_owned);
            aof_index_sqlite::read_entries(path)?
        }
        #[cfg(feature = "mdbx")]
        IndexBackend::Mdbx => {
            let path = config
                .index_path()
                .map_or_else(|| dir.join(MDBX_INDEX_FILE), Path::to_owned);
            match aof_index_mdbx::read_entries(&path) {
                Ok(entries) => entries,
                // A writer committing back to back tore every copy: the
                // segment files still tell (archived segments aside).
                Err(aof_index_mdbx::IndexError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::ResourceBusy =>
                {
                    log::warn!(
                        "{}: {source}; reading the segment files instead (archived segments are not seen)",
                        path.display()
                    );
                    aof_core::entries_for_view(aof_core::LocalFileSystem::shared().as_ref(), dir)?
                }
                Err(e) => return Err(e.into()),
            }
        }
        // Without the backend built, the entries come from the segment
        // files, which reads every one and knows nothing archived.
        #[cfg(not(feature = "mdbx"))]
        IndexBackend::Mdbx => aof_core::entries_for_view(aof_core::LocalFileSystem::shared().as_ref(), dir)?,
        other => return Err(AofError::BackendNotBuilt { backend: other }),
    };
    let index = aof_record::MemorySegmentIndex::new();
    index.add_entries(&entries)?;
    let mut options = AofOptions::new(config);
    options.rebuild_index = true;
    options.archive = archive;
    Aof::open_read_only(dir, options, Arc::new(index))
}

/// Where the index of the log in `dir` lives under `config`.
#[must_use]
pub fn index_path(dir: &Path, config: &AofConfig) -> PathBuf {
    match config.index_path() {
        Some(p) => p.to_owned(),
        None => dir.join(match config.index_backend() {
            IndexBackend::Mdbx => MDBX_INDEX_FILE,
            _ => SQLITE_INDEX_FILE,
        }),
    }
}

/// Which index backend the log in `dir` uses, judged by the index file
/// present at its default place; `None` when there is none (a new log, or an
/// index kept elsewhere through `index_path`).
#[must_use]
pub fn detect_index_backend(dir: &Path) -> Option<IndexBackend> {
    if dir.join(SQLITE_INDEX_FILE).exists() {
        Some(IndexBackend::Sqlite)
    } else if dir.join(MDBX_INDEX_FILE).exists() {
        Some(IndexBackend::Mdbx)
    } else {
        None
    }
}

/// Opens the index backend `config` names, for the log in `dir`.
///
/// Refuses with [`AofError::WrongIndexBackend`] when the configuration names
/// one backend and the directory holds the other's index (after an
/// `aof index migrate`, say), rather than starting an empty index beside it.
pub fn open_index(dir: &Path, config: &AofConfig) -> AofResult<Arc<dyn SegmentIndex>> {
    let path = index_path(dir, config);
    if config.index_path().is_none()
        && !path.exists()
        && let Some(found) = detect_index_backend(dir)
        && found != config.index_backend()
    {
        return Err(AofError::WrongIndexBackend {
            configured: config.index_backend(),
            found,
        });
    }
    match config.index_backend() {
        #[cfg(feature = "sqlite")]
        IndexBackend::Sqlite => Ok(Arc::new(aof_index_sqlite::SqliteSegmentIndex::open(&path)?)),
        #[cfg(feature = "mdbx")]
        IndexBackend::Mdbx => Ok(Arc::new(aof_index_mdbx::MdbxSegmentIndex::open(&path)?)),
        other => Err(AofError::BackendNotBuilt { backend: other }),
    }
}
