//! [`AofError`]: every way an operation on the log can fail, by meaning.

use crate::archive::ArchiveError;
use crate::config::ConfigError;
use crate::entry::TransitionError;
use crate::index::IndexError;
use crate::record::RecordError;
use crate::segment::{FooterError, SegmentHeaderError};
use std::path::PathBuf;
use thiserror::Error;

/// Why an operation on the log failed.
///
/// Errors caused by stored bytes name the segment and byte offset, so an
/// operator can find them with `aof verify` and a hex dump.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AofError {
    /// A file operation failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A stored record failed validation.
    #[error("corrupt record in segment {segment} at offset {offset}: {source}")]
    Corruption {
        /// Base id of the segment.
        segment: u64,
        /// Byte offset of the record in the segment file.
        offset: u64,
        /// What is wrong with it.
        #[source]
        source: RecordError,
    },
    /// A segment file's header is invalid: the file is foreign, empty,
    /// truncated or damaged.
    #[error("invalid segment file {path}: {source}")]
    InvalidSegmentFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with its header.
        #[source]
        source: SegmentHeaderError,
    },
    /// A finalized segment's footer or offset table is invalid.
    #[error("invalid footer in segment {segment}: {source}")]
    InvalidFooter {
        /// Base id of the segment.
        segment: u64,
        /// What is wrong with it.
        #[source]
        source: FooterError,
    },
    /// A segment the index lists has no file where it should be.
    #[error("segment {segment} is in the index but its file {path} is missing")]
    MissingSegment {
        /// Base id of the segment.
        segment: u64,
        /// Where the file should be.
        path: PathBuf,
    },
    /// A segment's contents do not match what the index recorded for it.
    #[error("segment {segment}: {what} is {actual}, the index says {expected}")]
    SegmentMismatch {
        /// Base id of the segment.
        segment: u64,
        /// The property that differs.
        what: &'static str,
        /// Value recorded in the index.
        expected: u64,
        /// Value found in the file.
        actual: u64,
    },
    /// A payload is larger than the configuration allows.
    #[error("record of {size} bytes exceeds max_record_size = {max}")]
    RecordTooLarge {
        /// Payload size in bytes.
        size: u64,
        /// The configured maximum.
        max: u32,
    },
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The segment index failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The archive failed.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// An illegal segment lifecycle move was attempted.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// An earlier fsync failed, so what is on disk is unknown; the log refuses
    /// further writes until it is reopened (and recovered).
    #[error("log is poisoned by an earlier failed sync; reopen it to recover")]
    Poisoned,
    /// The log was closed.
    #[error("log is closed")]
    Closed,
    /// The log was opened read-only: it takes no writes.
    #[error("log is open read-only")]
    ReadOnly,
    /// This index backend cannot be opened read-only.
    #[error("a log whose index is {backend:?} cannot be opened read-only")]
    ReadOnlyUnsupported {
        /// The backend.
        backend: crate::config::IndexBackend,
    },
    /// A record's stored payload could not be turned back into its bytes
    /// (decompressed or decrypted): see [`crate::payload::PayloadError`].
    #[error("record {id}: {source}")]
    Payload {
        /// The record's id.
        id: u64,
        /// What failed.
        #[source]
        source: crate::payload::PayloadError,
    },
    /// Encryption is enabled but no key ring was given at open.
    #[error("enable_encryption is set but the log was opened without a key ring")]
    EncryptionWithoutKeys,
    /// A read-only view can no longer follow the log: its writer removed or
    /// rewrote what the view had read (`truncate_after`, retention). Open a
    /// new view.
    #[error("the read-only view of {path} is outdated: {reason}; open it again")]
    ViewOutdated {
        /// The file that changed.
        path: PathBuf,
        /// What changed.
        reason: &'static str,
    },
    /// Another writer holds the log directory.
    #[error("log directory {path} is locked by another writer")]
    Locked {
        /// The directory.
        path: PathBuf,
    },
    /// The directory is not an aof log.
    #[error("{path} is not an aof log: {reason}")]
    NotALog {
        /// The directory.
        path: PathBuf,
        /// What gave it away.
        reason: &'static str,
    },
    /// Segment files exist that the (empty) index does not know: the index
    /// was lost or replaced. Open with `rebuild_index` to rebuild it by scanning.
    #[error(
        "{count} segment files from id {first} on are not in the index; open with rebuild_index to adopt them"
    )]
    UnindexedSegments {
        /// Base id of the first such file.
        first: u64,
        /// How many there are.
        count: u64,
    },
    /// The configuration names an index backend this build leaves out
    /// (enable the facade's feature of the same name).
    #[error("index backend {backend:?} is not built in; enable its feature")]
    BackendNotBuilt {
        /// The backend asked for.
        backend: crate::config::IndexBackend,
    },
    /// The configuration names one index backend, the log directory holds
    /// the other's index.
    #[error(
        "the log's index is {found:?}, the configuration asks for {configured:?}; set index_backend to match"
    )]
    WrongIndexBackend {
        /// The backend the configuration names.
        configured: crate::config::IndexBackend,
        /// The backend whose index the directory holds.
        found: crate::config::IndexBackend,
    },
    /// An id outside the range the operation accepts.
    #[error("id {id} is outside the log's range (first kept id {first}, next id {next})")]
    OutOfRange {
        /// The id given.
        id: u64,
        /// The lowest id kept.
        first: u64,
        /// The id the next append gets.
        next: u64,
    },
    /// Too many readers are open at once.
    #[error("reader limit of {limit} exceeded")]
    ReaderLimitExceeded {
        /// The configured maximum.
        limit: usize,
    },
    /// The log's manifest cannot be read.
    #[error("invalid manifest {path}: {source}")]
    InvalidManifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong with it.
        source: crate::manifest::ManifestError,
    },
    /// Recovery found fewer records than the manifest's recovery point says
    /// were durable: segment files are missing, or the index is older than
    /// the log. Nothing was changed.
    #[error(
        "the log holds ids up to {found_next} (exclusive) but ids below {recovery_next} were durable; \
         segment files are missing or the index is older than the log"
    )]
    DurableRecordsMissing {
        /// Every id below this was durable.
        recovery_next: u64,
        /// The next id of the log as found.
        found_next: u64,
    },
    /// An archive storage is needed but none was given: the configuration
    /// enables archival (refused at open rather than silently not
    /// archiving), or a record lies in an archived segment.
    #[error(
        "no archive storage was given, but archival is enabled or the record is archived; pass one (AofOptions::archive, --archive)"
    )]
    ArchiveNotConfigured,
    /// Appends are held back: more finalized segments wait for archival than
    /// `archive_backpressure_segments` / `archive_backpressure_bytes` allow,
    /// and the archiver did not catch up within the configured wait. Retry
    /// later; appends resume by themselves once it catches up.
    #[error(
        "backpressure: {pending_segments} segments ({pending_bytes} bytes) wait for archival; retry later"
    )]
    Backpressure {
        /// Finalized segments not yet archived.
        pending_segments: u64,
        /// Their bytes.
        pending_bytes: u64,
    },
    /// A non-blocking append would have to wait for the archiver (see
    /// [`AofError::Backpressure`]); nothing was appended.
    #[error("append would block: {pending_segments} segments ({pending_bytes} bytes) wait for archival")]
    WouldBlock {
        /// Finalized segments not yet archived.
        pending_segments: u64,
        /// Their bytes.
        pending_bytes: u64,
    },
    /// An archived segment's object could not be read or is not what the
    /// index says (a damaged frame, a seek table that does not match).
    #[error("archived segment {segment}: {source}")]
    ArchivedSegment {
        /// The segment.
        segment: u64,
        /// What failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The index and the segment files belong to different logs.
    #[error("the index belongs to log {index}, the directory to log {log}; check index_path")]
    LogIdentityMismatch {
        /// The identity in the log directory's manifest.
        log: crate::manifest::LogId,
        /// The identity stored in the index.
        index: crate::manifest::LogId,
    },
}

/// Shorthand for results of log operations.
pub type AofResult<T> = Result<T, AofError>;

impl AofError {
    /// An [`AofError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
