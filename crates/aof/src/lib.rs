//! A segmented, append-only log: the durable write path for storage and
//! streaming systems.
//!
//! This facade wires the embedded defaults — local files, a SQLite segment
//! index inside the log directory — and re-exports the crates it is made of,
//! so most users need only this one. Each part is also usable alone:
//!
//! | re-export | crate | what it is |
//! |---|---|---|
//! | [`record`] | `aof-record` | formats, configuration, shared types, backend traits |
//! | [`flush`] | `aof-flush` | flush policy and metrics |
//! | [`engine`] | `aof-core` | the engine |
//! | `index_sqlite` | `aof-index-sqlite` | the SQLite index (feature `sqlite`, on by default) |
//! | `index_mdbx` | `aof-index-mdbx` | the libmdbx index (feature `mdbx`) |
//!
//! # Example
//!
//! ```
//! use aof::{Aof, AofConfig, FlushStrategy};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let config = AofConfig::builder().flush_strategy(FlushStrategy::Sync).build().unwrap();
//! let log = Aof::open(dir.path(), config.clone()).unwrap();
//! let first = log.append(b"first").unwrap();
//! log.append_batch(&[b"second".as_slice(), b"third"]).unwrap();
//! log.close_blocking().unwrap();
//!
//! // Reopening reads the index and scans only the active segment.
//! let log = Aof::open(dir.path(), config).unwrap();
//! assert_eq!(log.read(first).unwrap().as_deref(), Some(&b"first"[..]));
//! assert_eq!(log.next_id(), 3);
//! ```

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use aof_core as engine;
pub use aof_flush as flush;
#[cfg(feature = "mdbx")]
pub use aof_index_mdbx as index_mdbx;
#[cfg(feature = "sqlite")]
pub use aof_index_sqlite as index_sqlite;
pub use aof_record as record;

pub use aof_core::{AofOptions, PerformanceMetrics};
pub use aof_flush::FlushMetricsSnapshot;
pub use aof_record::{AofConfig, AofError, AofResult, FlushStrategy, IndexBackend, SegmentIndex};

/// File name of the SQLite index inside a log directory.
pub const SQLITE_INDEX_FILE: &str = "index.sqlite";

/// File name of the MDBX index inside a log directory.
pub const MDBX_INDEX_FILE: &str = "index.mdbx";

/// A log opened on the embedded defaults. Derefs to [`aof_core::Aof`], where
/// every operation is documented.
#[derive(Debug)]
pub struct Aof {
    inner: aof_core::Aof,
}

impl Aof {
    /// Opens (creating if needed) the log in `dir` on local files, with the
    /// index backend `config` names at `config.index_path()` (default: inside `dir`).
    pub fn open(dir: impl AsRef<Path>, config: AofConfig) -> AofResult<Self> {
        Self::open_with(dir, AofOptions::new(config))
    }

    /// [`Aof::open`] with engine options (file system, clocks, index rebuild).
    pub fn open_with(dir: impl AsRef<Path>, options: AofOptions) -> AofResult<Self> {
        let dir = dir.as_ref();
        options.config.validate()?;
        std::fs::create_dir_all(dir).map_err(|e| AofError::io(dir, e))?;
        let index = open_index(dir, &options.config)?;
        Ok(Self {
            inner: aof_core::Aof::open_with(dir, options, index)?,
        })
    }

    /// The underlying engine handle.
    #[must_use]
    pub fn into_inner(self) -> aof_core::Aof {
        self.inner
    }
}

impl Deref for Aof {
    type Target = aof_core::Aof;
    fn deref(&self) -> &aof_core::Aof {
        &self.inner
    }
}

impl DerefMut for Aof {
    fn deref_mut(&mut self) -> &mut aof_core::Aof {
        &mut self.inner
    }
}

impl Aof {
    /// Flushes and closes the log (see [`aof_core::Aof::close_blocking`]).
    pub fn close_blocking(self) -> AofResult<()> {
        self.inner.close_blocking()
    }

    /// Flushes and closes the log on tokio's blocking pool.
    pub async fn close(self) -> AofResult<()> {
        self.inner.close().await
    }
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
        IndexBackend::Sqlite => Ok(Arc::new(index_sqlite::SqliteSegmentIndex::open(&path)?)),
        #[cfg(feature = "mdbx")]
        IndexBackend::Mdbx => Ok(Arc::new(index_mdbx::MdbxSegmentIndex::open(&path)?)),
        other => Err(AofError::BackendNotBuilt { backend: other }),
    }
}
