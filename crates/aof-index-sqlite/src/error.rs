//! [`SqliteIndexError`]: what can go wrong inside the SQLite backend.
//!
//! Failures with a meaning the engine acts on (`NotFound`, `Overlap`,
//! `UnsupportedSchemaVersion`, …) are reported as the shared
//! [`IndexError`] variants. Everything specific to SQLite is a
//! [`SqliteIndexError`], reported as
//! `IndexError::Backend { backend: "sqlite", source }`; callers that care can
//! `source.downcast_ref::<SqliteIndexError>()`.

use aof_record::IndexError;
use std::path::PathBuf;
use std::sync::Arc;
use thiserror::Error;

/// The name this backend reports in [`IndexError::Backend`].
pub const BACKEND: &str = "sqlite";

/// A failure of the SQLite engine, its connection pool or its files.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SqliteIndexError {
    /// SQLite refused an operation.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// The write transaction that carried this change (and any others
    /// grouped with it) could not be started or committed; none of them
    /// was applied.
    #[error("write transaction failed: {source}")]
    Transaction {
        /// SQLite's error, shared by every change in the group.
        #[source]
        source: Arc<rusqlite::Error>,
    },
    /// No read-only connection became free in time.
    #[error("no reader connection available: {0}")]
    Pool(#[from] r2d2::Error),
    /// The database file is damaged: SQLite found pages it cannot read.
    #[error("{path}: SQLite database is corrupt: {source}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// SQLite's report.
        #[source]
        source: rusqlite::Error,
    },
    /// The database file is shorter than its own header says it is.
    #[error("{path}: SQLite database is truncated: {actual_len} bytes, its header needs {expected_len}")]
    Truncated {
        /// The database file.
        path: PathBuf,
        /// Bytes the header accounts for.
        expected_len: u64,
        /// Bytes the file has.
        actual_len: u64,
    },
    /// SQLite did not switch the database to WAL mode (for example on a
    /// file system without shared memory support).
    #[error("{path}: journal mode is {mode:?}, WAL is required")]
    NoWal {
        /// The database file.
        path: PathBuf,
        /// The mode SQLite reported.
        mode: String,
    },
    /// An earlier commit or checkpoint failed with an I/O error, so what is
    /// on disk is unknown: the index refuses writes and `sync` until it is
    /// reopened (which recovers from what is on disk). Queries still work.
    #[error("index writer is poisoned by an earlier I/O error ({source}); reopen the index to recover")]
    Poisoned {
        /// The I/O error that poisoned the writer.
        #[source]
        source: Arc<rusqlite::Error>,
    },
    /// The writer thread stopped (it panicked, or the index is being dropped).
    #[error("the index writer thread has stopped")]
    WriterStopped,
    /// The writer thread could not be started.
    #[error("cannot start the index writer thread: {0}")]
    Spawn(#[source] std::io::Error),
}

impl From<SqliteIndexError> for IndexError {
    fn from(e: SqliteIndexError) -> Self {
        IndexError::Backend {
            backend: BACKEND,
            source: Box::new(e),
        }
    }
}

/// Internal error: either a meaningful index error or a backend failure, so
/// that `?` works on both inside the crate.
#[derive(Debug)]
pub(crate) enum Failure {
    Index(IndexError),
    Backend(SqliteIndexError),
}

pub(crate) type Res<T> = Result<T, Failure>;

impl From<IndexError> for Failure {
    fn from(e: IndexError) -> Self {
        Self::Index(e)
    }
}

impl From<SqliteIndexError> for Failure {
    fn from(e: SqliteIndexError) -> Self {
        Self::Backend(e)
    }
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Self::Backend(SqliteIndexError::Sqlite(e))
    }
}

impl From<r2d2::Error> for Failure {
    fn from(e: r2d2::Error) -> Self {
        Self::Backend(SqliteIndexError::Pool(e))
    }
}

impl From<Failure> for IndexError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Index(e) => e,
            Failure::Backend(e) => e.into(),
        }
    }
}
