//! What a snapshot is made of: [`SnapshotMetadata`], [`FileInfo`],
//! [`FileChunk`] and [`SnapshotChunk`], with the format's limits and the
//! rules for the file names a snapshot may carry.

use aof_core::layout::{MANIFEST_FILE, parse_segment_file_name, segment_file_name};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The wire format version this build writes and reads.
pub const WIRE_VERSION: u16 = 1;

/// Most bytes of file data one chunk may carry.
pub const MAX_CHUNK_SIZE: usize = 16 << 20;

/// The chunk size exports use unless told otherwise.
pub const DEFAULT_CHUNK_SIZE: usize = 1 << 20;

/// Most files one snapshot may hold.
pub const MAX_FILES: usize = 1 << 16;

/// Longest file name, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// Most bytes one file of a snapshot may hold (a segment is far smaller).
pub const MAX_FILE_SIZE: u64 = 1 << 40;

/// What one file of a snapshot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum FileKind {
    /// The log's manifest (identity and recovery point), written for the snapshot.
    Manifest,
    /// A finalized (sealed) segment, whole.
    Segment,
    /// The active segment up to the durable end of the snapshot.
    ActiveSegment,
}

/// One file of a snapshot, as the metadata lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// Its name inside the log directory (no directory part).
    pub name: String,
    /// What it is.
    pub kind: FileKind,
    /// Its size in bytes.
    pub size: u64,
}

/// What the first chunk of a snapshot says about all of it. The SHA-256
/// digests trail the data they cover (see [`FileChunk::sha256`] and
/// [`SnapshotChunk::checksum`]): an export reads each byte once, in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMetadata {
    /// The wire format version ([`WIRE_VERSION`]).
    pub version: u16,
    /// A random identifier of this snapshot.
    pub snapshot_id: u128,
    /// When the snapshot was taken, µs since the Unix epoch.
    pub created_at_us: u64,
    /// The identity of the log it was taken from.
    pub log_id: u128,
    /// The first id it holds (`last_id + 1`, or `first_id`, when it holds none).
    pub first_id: u64,
    /// The last id it holds: it holds every id from `first_id` through this
    /// one and none after. `None` when it holds no record.
    pub last_id: Option<u64>,
    /// The sum of the files' sizes.
    pub total_size: u64,
    /// Its files, in the order their chunks come.
    pub files: Vec<FileInfo>,
}

/// A piece of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChunk {
    /// The file it belongs to.
    pub file_name: String,
    /// Where `data` goes in the file.
    pub offset: u64,
    /// The bytes.
    pub data: Bytes,
    /// Whether this is the file's last chunk.
    pub is_last_chunk: bool,
    /// On the last chunk only: the SHA-256 of the whole file.
    pub sha256: Option<[u8; 32]>,
}

/// One unit of a snapshot stream. A stream is: a chunk with the
/// metadata (sequence 0), then the files' chunks, file by file in the
/// metadata's order, then the final chunk (with the overall checksum);
/// sequence numbers count up by one from 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotChunk {
    /// Position in the stream, from 0.
    pub sequence: u64,
    /// On the first chunk only.
    pub metadata: Option<SnapshotMetadata>,
    /// A piece of a file (absent on the first and final chunks).
    pub file_chunk: Option<FileChunk>,
    /// Whether this is the last chunk of the stream.
    pub is_final: bool,
    /// On the final chunk only: the snapshot's checksum (see
    /// [`crate::digest::snapshot_checksum`]).
    pub checksum: Option<[u8; 32]>,
}

/// Why a file name is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameProblem {
    /// Empty.
    Empty,
    /// Longer than [`MAX_NAME_LEN`].
    TooLong,
    /// An absolute path.
    Absolute,
    /// A path with directory parts (`/`, `\`, `..`, `.`) or a NUL byte.
    Traversal,
    /// Not a name a log directory holds, or not one for the file's kind.
    Unknown,
}

impl std::fmt::Display for NameProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Empty => "it is empty",
            Self::TooLong => "it is too long",
            Self::Absolute => "it is an absolute path",
            Self::Traversal => "it has directory parts",
            Self::Unknown => "it is not a file of a log of this kind",
        })
    }
}

/// Checks that `name` is a plain file name a snapshot may carry for `kind`:
/// `MANIFEST` for the manifest, the canonical segment file name (20 digits
/// and `.seg`) for segments. Everything else is refused.
pub fn check_file_name(name: &str, kind: FileKind) -> Result<(), NameProblem> {
    if name.is_empty() {
        return Err(NameProblem::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameProblem::TooLong);
    }
    if name.starts_with('/') || name.starts_with('\\') || name.as_bytes().get(1) == Some(&b':') {
        return Err(NameProblem::Absolute);
    }
    if name.contains(['/', '\\', '\0']) || name == ".." || name == "." {
        return Err(NameProblem::Traversal);
    }
    let ok = match kind {
        FileKind::Manifest => name == MANIFEST_FILE,
        FileKind::Segment | FileKind::ActiveSegment => {
            parse_segment_file_name(name).is_some_and(|base| segment_file_name(base) == name)
        }
    };
    if ok { Ok(()) } else { Err(NameProblem::Unknown) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_log_file_names_pass() {
        assert_eq!(check_file_name("MANIFEST", FileKind::Manifest), Ok(()));
        assert_eq!(
            check_file_name("00000000000000000042.seg", FileKind::Segment),
            Ok(())
        );
        for (name, kind, problem) in [
            ("", FileKind::Manifest, NameProblem::Empty),
            ("/etc/passwd", FileKind::Manifest, NameProblem::Absolute),
            ("C:x", FileKind::Manifest, NameProblem::Absolute),
            ("../MANIFEST", FileKind::Manifest, NameProblem::Traversal),
            ("..", FileKind::Segment, NameProblem::Traversal),
            ("a\0b", FileKind::Segment, NameProblem::Traversal),
            ("MANIFEST", FileKind::Segment, NameProblem::Unknown),
            (
                "00000000000000000042.seg",
                FileKind::Manifest,
                NameProblem::Unknown,
            ),
            ("index.sqlite", FileKind::Segment, NameProblem::Unknown),
            ("LOCK", FileKind::Manifest, NameProblem::Unknown),
        ] {
            assert_eq!(check_file_name(name, kind), Err(problem), "{name:?}");
        }
        let long = "x".repeat(MAX_NAME_LEN + 1);
        assert_eq!(
            check_file_name(&long, FileKind::Segment),
            Err(NameProblem::TooLong)
        );
    }
}
