//! A segmented, append-only log: the durable write path for storage and
//! streaming systems.
//!
//! This facade wires the embedded defaults — local files, a SQLite segment
//! index inside the log directory — and re-exports the crates it is made of,
//! so most users need only this one. Each part is also usable alone:
//!
//! | re-export | crate | what it is |
//! |---|---|---|
//! | [`format`](mod@format) | `aof-record` | record and segment formats, configuration, shared types, backend traits |
//! | [`flush`] | `aof-flush` | flush policy and metrics |
//! | [`engine`] | `aof-core` | the engine: file system seam, on-disk names, recovery, crash-test tools |
//! | `index_sqlite` | `aof-index-sqlite` | the SQLite index (feature `sqlite`, on by default) |
//! | `index_mdbx` | `aof-index-mdbx` | the libmdbx index (feature `mdbx`) |
//! | `archive_fs` | `aof-archive-fs` | archive storage in a directory (feature `archive-fs`) |
//! | `archive_s3` | `aof-archive-s3` | archive storage on S3-compatible object storage (feature `archive-s3`) |
//! | `snapshot` | `aof-snapshot` | consistent snapshots as checksummed chunks, and their import (feature `snapshot`, on by default) |
//! | `raft` | `aof-raft` | aof as openraft's log storage, and a key-value state machine (feature `raft`) |
//!
//! # Example
//!
//! ```
//! use aof::{AofConfig, FlushStrategy};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let config = AofConfig::builder().flush_strategy(FlushStrategy::Sync).build().unwrap();
//! let log = aof::open(dir.path(), config.clone()).unwrap();
//! let first = log.append(b"first").unwrap();
//! log.append_batch(&[b"second".as_slice(), b"third"]).unwrap();
//! log.close_blocking().unwrap();
//!
//! // Reopening reads the index and scans only the active segment.
//! let log = aof::open(dir.path(), config).unwrap();
//! assert_eq!(log.read(first).unwrap().as_deref(), Some(&b"first"[..]));
//! assert_eq!(log.next_id(), 3);
//! ```
//!
//! Everything a user of the log touches is at this crate's root: [`Aof`]
//! (one type: the engine's), [`open`] and [`Builder`], [`Reader`], [`Tail`],
//! [`Record`], the metrics ([`EngineMetrics`], [`FlushControllerMetrics`] and
//! their snapshots) and the errors.

mod archive_url;
mod open;

#[cfg(feature = "archive-fs")]
pub use aof_archive_fs as archive_fs;
#[cfg(feature = "archive-s3")]
pub use aof_archive_s3 as archive_s3;
pub use aof_core as engine;
pub use aof_flush as flush;
#[cfg(feature = "mdbx")]
pub use aof_index_mdbx as index_mdbx;
#[cfg(feature = "sqlite")]
pub use aof_index_sqlite as index_sqlite;
#[cfg(feature = "raft")]
pub use aof_raft as raft;
pub use aof_record as format;
#[cfg(feature = "snapshot")]
pub use aof_snapshot as snapshot;

pub use aof_core::layout::{MDBX_INDEX_FILE, SQLITE_INDEX_FILE};
pub use aof_core::{
    Aof, AofOptions, ArchiveMetrics, EncryptionKey, EngineMetrics, FileSystem, KeyRing, PerformanceMetrics,
    Reader, Record, Tail, TimeSource, VerifyReport,
};
pub use aof_flush::{FlushControllerMetrics, FlushKind, FlushMetricsSnapshot};
pub use aof_record::archive::{ArchiveStorage, MemoryArchive};
pub use aof_record::{
    AofConfig, AofConfigBuilder, AofError, AofResult, ConfigError, FlushStrategy, IndexBackend, IndexError,
    SegmentEntry, SegmentIndex, SegmentStatus,
};
pub use archive_url::{ArchiveUrlError, archive_from_url};
pub use open::{
    Builder, detect_index_backend, index_path, open, open_index, open_read_only, open_read_only_with_archive,
    open_with, open_with_fs_and_config,
};
