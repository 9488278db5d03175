//! [`FormatError`]: why bytes are not a valid archive object.

use thiserror::Error;

/// Why bytes are not a valid archive object, or a frame of one.
///
/// Every check on untrusted bytes ends in one of these; none panics, and no
/// allocation is sized by a field before that field has been bounded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FormatError {
    /// Fewer bytes than the 9-byte seek table footer.
    #[error("{len} bytes cannot hold a seek table footer")]
    TooShort {
        /// Bytes given.
        len: u64,
    },
    /// The footer does not end in the seekable magic number `0x8F92EAB1`.
    #[error("seek table magic {found:#010x}, expected 0x8f92eab1")]
    BadSeekableMagic {
        /// The number found.
        found: u32,
    },
    /// The seek table frame does not start with the skippable magic `0x184D2A5E`.
    #[error("seek table frame magic {found:#010x}, expected 0x184d2a5e")]
    BadSkippableMagic {
        /// The number found.
        found: u32,
    },
    /// Reserved bits 2–6 of the seek table descriptor are set.
    #[error("seek table descriptor {descriptor:#04x} sets reserved bits")]
    ReservedBits {
        /// The descriptor byte.
        descriptor: u8,
    },
    /// More frames than [`crate::MAX_FRAMES`].
    #[error("seek table claims {frames} frames; at most {max} are accepted")]
    TooManyFrames {
        /// Frames claimed.
        frames: u32,
        /// The limit.
        max: u32,
    },
    /// The skippable frame's size field disagrees with the entry count.
    #[error("seek table frame size field is {found}, {expected} expected for its entries")]
    FrameSizeField {
        /// The field.
        found: u32,
        /// What the entry count implies.
        expected: u64,
    },
    /// The table's bytes were not all given, or more were given.
    #[error("seek table needs {expected} bytes, {actual} given")]
    TableLength {
        /// Bytes the footer implies.
        expected: u64,
        /// Bytes given.
        actual: u64,
    },
    /// The frames and the table do not add up to the object's size.
    #[error("frames and seek table span {table} bytes, the object has {object}")]
    SizeMismatch {
        /// Bytes the table accounts for.
        table: u64,
        /// Bytes in the object.
        object: u64,
    },
    /// A frame entry with zero compressed bytes.
    #[error("frame {index} has no compressed bytes")]
    EmptyFrame {
        /// The frame.
        index: u32,
    },
    /// A frame claims more decompressed bytes than [`crate::MAX_FRAME_SIZE`].
    #[error("frame {index} claims {size} decompressed bytes; at most {max} are accepted")]
    FrameTooLarge {
        /// The frame.
        index: u32,
        /// Bytes claimed.
        size: u32,
        /// The limit.
        max: u32,
    },
    /// No frame with this index.
    #[error("frame {index} does not exist; the object has {frames}")]
    NoSuchFrame {
        /// The index asked for.
        index: u32,
        /// Frames in the object.
        frames: u32,
    },
    /// An offset past the end of the segment.
    #[error("offset {offset} is past the segment's {size} bytes")]
    OffsetOutOfRange {
        /// The offset asked for.
        offset: u64,
        /// The segment's size.
        size: u64,
    },
    /// The compressed bytes given for a frame are not as long as its entry says.
    #[error("frame {index}: {actual} compressed bytes given, the table says {expected}")]
    FrameBytes {
        /// The frame.
        index: u32,
        /// Bytes the table gives.
        expected: u32,
        /// Bytes given.
        actual: u64,
    },
    /// zstd refused the frame (damaged data, or a failed content checksum).
    #[error("frame {index} does not decompress: {source}")]
    Decompress {
        /// The frame.
        index: u32,
        /// zstd's error.
        #[source]
        source: std::io::Error,
    },
    /// A frame decompressed to another length than its entry says.
    #[error("frame {index} decompressed to {actual} bytes, the table says {expected}")]
    FrameLength {
        /// The frame.
        index: u32,
        /// Bytes the table gives.
        expected: u32,
        /// Bytes produced.
        actual: u64,
    },
    /// A frame's content checksum differs from its seek table entry.
    #[error("frame {index}: content checksum {actual:#010x}, the table says {expected:#010x}")]
    FrameChecksum {
        /// The frame.
        index: u32,
        /// The table's checksum.
        expected: u32,
        /// The frame's own checksum field.
        actual: u32,
    },
    /// A restored segment's CRC-64/NVME differs from the one recorded at finalize.
    #[error("restored segment has CRC-64/NVME {actual:#018x}, expected {expected:#018x}")]
    SegmentChecksum {
        /// The checksum recorded.
        expected: u64,
        /// The checksum of the bytes restored.
        actual: u64,
    },
    /// Compression failed, or an invalid option was given.
    #[error("zstd: {source}")]
    Compress {
        /// zstd's error.
        #[source]
        source: std::io::Error,
    },
}
