//! [`SnapshotError`]: everything an export or import can fail with.

use crate::chunk::NameProblem;
use crate::digest::Digest;
use aof_record::AofError;
use std::path::PathBuf;

/// A `Result` with [`SnapshotError`].
pub type SnapshotResult<T> = Result<T, SnapshotError>;

/// Why an export or import failed. An import that fails leaves its target
/// as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The log refused (reading it for an export, opening it after an import).
    #[error(transparent)]
    Log(#[from] AofError),
    /// Reading or writing a file or directory failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Reading or writing the snapshot stream failed.
    #[error("snapshot stream: {source}")]
    Stream {
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A frame does not start with the format's magic bytes: not a snapshot.
    #[error("not a snapshot frame at byte {offset} (magic {found:02x?})")]
    BadMagic {
        /// Stream offset of the frame.
        offset: u64,
        /// The bytes found.
        found: [u8; 4],
    },
    /// A frame or metadata of a format version this build does not read.
    #[error("snapshot format version {version} is not supported (this build reads {supported})")]
    UnsupportedVersion {
        /// The version found.
        version: u16,
        /// The version this build reads.
        supported: u16,
    },
    /// A frame sets flags this version does not define.
    #[error("snapshot frame at byte {offset} sets unknown flags {flags:#06x}")]
    UnknownFlags {
        /// Stream offset of the frame.
        offset: u64,
        /// The flags.
        flags: u16,
    },
    /// A frame larger than the limit.
    #[error("snapshot frame at byte {offset} is {len} bytes, above the limit of {max}")]
    FrameTooLarge {
        /// Stream offset of the frame.
        offset: u64,
        /// Its declared length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A frame's CRC does not match its bytes.
    #[error(
        "snapshot frame at byte {offset}: CRC-64/NVME mismatch (stored {expected:#018x}, computed {actual:#018x})"
    )]
    FrameChecksum {
        /// Stream offset of the frame.
        offset: u64,
        /// Stored CRC.
        expected: u64,
        /// Computed CRC.
        actual: u64,
    },
    /// The stream ends inside a frame.
    #[error("snapshot stream ends inside the frame at byte {offset}")]
    Truncated {
        /// Stream offset of the frame.
        offset: u64,
    },
    /// A frame's payload is not a chunk.
    #[error("snapshot frame at byte {offset} does not decode: {source}")]
    Decode {
        /// Stream offset of the frame.
        offset: u64,
        /// The decoder's error.
        #[source]
        source: bincode::error::DecodeError,
    },
    /// A chunk could not be encoded (a name or list beyond the limits).
    #[error("encoding a snapshot chunk: {source}")]
    Encode {
        /// The encoder's error.
        #[source]
        source: bincode::error::EncodeError,
    },
    /// A chunk's sequence number is not the next one (a gap, repeat or reordering).
    #[error("snapshot chunk out of sequence: expected {expected}, got {found}")]
    Sequence {
        /// The expected number.
        expected: u64,
        /// The number found.
        found: u64,
    },
    /// The first chunk does not carry the metadata.
    #[error("the first snapshot chunk carries no metadata")]
    MissingMetadata,
    /// A chunk after the first carries metadata.
    #[error("snapshot chunk {sequence} carries metadata (only the first may)")]
    UnexpectedMetadata {
        /// Its sequence number.
        sequence: u64,
    },
    /// A chunk that is neither a file chunk nor the final one, or that
    /// carries something its position does not allow.
    #[error("snapshot chunk {sequence} is malformed: {what}")]
    MalformedChunk {
        /// Its sequence number.
        sequence: u64,
        /// What is wrong.
        what: &'static str,
    },
    /// A file name the snapshot may not carry.
    #[error("snapshot file name {name:?} is refused: {problem}")]
    InvalidFileName {
        /// The name (possibly cut to the limit).
        name: String,
        /// Why.
        problem: NameProblem,
    },
    /// A file listed twice.
    #[error("snapshot lists the file {name} twice")]
    DuplicateFile {
        /// The name.
        name: String,
    },
    /// More files than the limit, or a file larger than the limit.
    #[error("snapshot metadata beyond the limits: {what} is {value}, above {max}")]
    LimitExceeded {
        /// Which limit.
        what: &'static str,
        /// The value found.
        value: u64,
        /// The limit.
        max: u64,
    },
    /// The metadata does not describe a log (no manifest, sizes that do
    /// not add up, segments out of order, an active segment not last).
    #[error("snapshot metadata is inconsistent: {what}")]
    InvalidMetadata {
        /// What is wrong.
        what: &'static str,
    },
    /// A chunk names a file other than the one whose data comes next.
    #[error("snapshot chunk for {found:?} where data of {expected:?} was due")]
    UnexpectedFile {
        /// The file expected (empty when none was).
        expected: String,
        /// The file named.
        found: String,
    },
    /// A chunk's offset is not where the file's data so far ends.
    #[error("snapshot chunk of {name} at offset {found}, expected {expected}")]
    Offset {
        /// The file.
        name: String,
        /// The offset expected.
        expected: u64,
        /// The offset found.
        found: u64,
    },
    /// A chunk carries more data than the limit.
    #[error("snapshot chunk of {name} carries {len} bytes, above the limit of {max}")]
    ChunkTooLarge {
        /// The file.
        name: String,
        /// Its data length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A file's data is longer or shorter than the metadata says.
    #[error("snapshot file {name}: {actual} bytes where the metadata says {expected}")]
    Size {
        /// The file.
        name: String,
        /// The size in the metadata.
        expected: u64,
        /// The size the chunks give (so far, when beyond).
        actual: u64,
    },
    /// A file's SHA-256 does not match its data (or is missing).
    #[error("snapshot file {name}: SHA-256 mismatch (stated {expected}, computed {actual})")]
    FileChecksum {
        /// The file.
        name: String,
        /// The digest the stream states (all zeros when absent).
        expected: Digest,
        /// The digest of the data received.
        actual: Digest,
    },
    /// The snapshot's overall checksum does not match.
    #[error("snapshot checksum mismatch (stated {expected}, computed {actual})")]
    Checksum {
        /// The checksum the final chunk states.
        expected: Digest,
        /// The checksum computed.
        actual: Digest,
    },
    /// The stream ended before the final chunk.
    #[error("snapshot stream ended before its final chunk ({chunks} chunks read)")]
    MissingFinalChunk {
        /// Chunks read.
        chunks: u64,
    },
    /// Data follows the final chunk.
    #[error("data follows the final snapshot chunk")]
    DataAfterFinal,
    /// The import target exists and is not an empty directory.
    #[error("{path} exists and is not empty: a snapshot is imported only into a new or empty directory")]
    TargetNotEmpty {
        /// The target.
        path: PathBuf,
    },
    /// The imported log does not hold what the metadata says.
    #[error("imported log: {what} is {actual:?}, the snapshot says {expected:?}")]
    LogMismatch {
        /// Which property.
        what: &'static str,
        /// What the metadata says.
        expected: Option<u64>,
        /// What the opened log says.
        actual: Option<u64>,
    },
    /// A staged file is not what a log holds (checked before installing).
    #[error("the staged snapshot is not a valid log: {name}: {what}")]
    StagedLog {
        /// The file.
        name: String,
        /// What is wrong.
        what: &'static str,
    },
    /// A `truncate_after` ran on the source log during the export: the bytes
    /// read may not be the snapshot point's, so the export is abandoned.
    #[error("the log was truncated during the export; take the snapshot again")]
    Invalidated,
    /// The log holds a segment only in the archive; exporting archived
    /// segments (by reference or content) is not supported yet.
    #[error(
        "segment {segment} is archived without a local copy; snapshots of archived segments are not supported yet"
    )]
    ArchivedSegment {
        /// Its base id.
        segment: u64,
    },
    /// The helper thread that computes the SHA-256 digests could not be
    /// started, or stopped.
    #[error("snapshot hashing thread: {source}")]
    Thread {
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// A chunk size of zero or above [`crate::MAX_CHUNK_SIZE`].
    #[error("chunk size {size} is not in 1..={max}")]
    InvalidChunkSize {
        /// The size asked for.
        size: usize,
        /// The limit.
        max: usize,
    },
}

impl SnapshotError {
    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
