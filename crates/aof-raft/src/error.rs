//! The errors of this crate's own steps (the Raft traits wrap them in
//! openraft's `StorageError`).

use std::path::PathBuf;

/// What went wrong opening or writing a Raft store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RaftStoreError {
    /// The aof log underneath failed.
    #[error("aof log: {0}")]
    Log(#[from] aof_record::AofError),
    /// The aof configuration given is not valid.
    #[error("aof configuration: {0}")]
    Config(#[from] aof_record::ConfigError),
    /// A file of the store could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file of the store (metadata, snapshot) is not one this crate wrote, or is damaged.
    #[error("{path}: damaged aof-raft file: {reason}")]
    BadMeta {
        /// The metadata file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A record of the log does not decode as a Raft entry.
    #[error("record {record} (raft index {index}) does not decode as a Raft entry: {source}")]
    BadEntry {
        /// The aof record id.
        record: u64,
        /// The Raft log index it holds.
        index: u64,
        /// The decoding error.
        #[source]
        source: bincode::error::DecodeError,
    },
    /// A value could not be encoded.
    #[error("encoding: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    /// An entry was appended out of order: not right after the last one.
    #[error("append of raft index {index} does not follow the last index {last:?}")]
    OutOfOrder {
        /// The index appended.
        index: u64,
        /// The last index in the log.
        last: Option<u64>,
    },
    /// A snapshot's chunks fail their checks, or its log does not import.
    #[error("snapshot transfer: {0}")]
    Snapshot(#[from] aof_snapshot::SnapshotError),
    /// The tokio runtime shut down before a store operation that blocks on
    /// file I/O could run on its blocking pool; nothing of it was done.
    #[error("the tokio runtime shut down before the store operation ran")]
    RuntimeShutdown,
    /// A snapshot does not decode.
    #[error("snapshot does not decode: {0}")]
    BadSnapshot(#[source] bincode::error::DecodeError),
}

impl RaftStoreError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
