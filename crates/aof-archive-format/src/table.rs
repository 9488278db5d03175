//! The seek table: where each frame starts, in the object and in the segment.
//!
//! Encoded as the zstd seekable format's skippable frame (see
//! `docs/format.md`): little-endian throughout,
//!
//! ```text
//! 0x184D2A5E | frame_size u32 | entries: (compressed u32, decompressed u32, [xxh64_low32 u32])* |
//! frames u32 | descriptor u8 (bit 7: checksums) | 0x8F92EAB1
//! ```

use crate::FormatError;
use std::ops::Range;

/// Magic number of the skippable frame that holds the seek table.
pub const SKIPPABLE_MAGIC: u32 = 0x184D_2A5E;
/// Magic number that ends every seekable object.
pub const SEEKABLE_MAGIC: u32 = 0x8F92_EAB1;
/// Bytes of the footer: frame count, descriptor, seekable magic.
pub const FOOTER_LEN: usize = 9;
/// Bytes of the skippable frame's header: magic and size.
pub const HEADER_LEN: usize = 8;
/// Most frames an object may have: 2^20 frames of 1 MiB is a 1 TiB segment,
/// and the largest table is then 12 MiB.
pub const MAX_FRAMES: u32 = 1 << 20;
/// Most decompressed bytes a frame may claim; a reader allocates this much
/// at most for one frame.
pub const MAX_FRAME_SIZE: u32 = 64 << 20;

const CHECKSUM_FLAG: u8 = 0x80;
const RESERVED_BITS: u8 = 0x7C;

/// One frame's entry in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameEntry {
    /// Bytes of the zstd frame in the object.
    pub compressed_size: u32,
    /// Bytes of segment it holds.
    pub decompressed_size: u32,
    /// Low 32 bits of the XXH64 of those bytes (the frame's own content
    /// checksum), when the table carries checksums.
    pub checksum: Option<u32>,
}

/// Where one frame lies: in the object and in the segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FrameLocation {
    /// The frame's index.
    pub index: u32,
    /// Its bytes in the object: one ranged read.
    pub compressed: Range<u64>,
    /// The segment bytes it holds.
    pub decompressed: Range<u64>,
    /// Its table checksum, if any.
    pub checksum: Option<u32>,
}

/// What the last [`FOOTER_LEN`] bytes of an object say about its seek table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    /// Frames in the object.
    pub frames: u32,
    /// Whether entries carry checksums.
    pub checksums: bool,
}

impl Footer {
    /// Parses the last [`FOOTER_LEN`] bytes of an object.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        let Some(at) = bytes.len().checked_sub(FOOTER_LEN) else {
            return Err(FormatError::TooShort {
                len: bytes.len() as u64,
            });
        };
        let b = &bytes[at..];
        let magic = u32_at(b, 5);
        if magic != SEEKABLE_MAGIC {
            return Err(FormatError::BadSeekableMagic { found: magic });
        }
        let descriptor = b[4];
        if descriptor & RESERVED_BITS != 0 {
            return Err(FormatError::ReservedBits { descriptor });
        }
        let frames = u32_at(b, 0);
        if frames > MAX_FRAMES {
            return Err(FormatError::TooManyFrames {
                frames,
                max: MAX_FRAMES,
            });
        }
        Ok(Self {
            frames,
            checksums: descriptor & CHECKSUM_FLAG != 0,
        })
    }

    /// Bytes of one entry.
    #[must_use]
    pub const fn entry_len(self) -> usize {
        if self.checksums { 12 } else { 8 }
    }

    /// Bytes of the whole skippable frame: header, entries, footer. At most
    /// 12 MiB, since `frames <= MAX_FRAMES`.
    #[must_use]
    pub const fn table_len(self) -> usize {
        HEADER_LEN + self.frames as usize * self.entry_len() + FOOTER_LEN
    }
}

/// The decoded seek table of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeekTable {
    entries: Vec<FrameEntry>,
    /// Start of each frame in the object and in the segment; one extra at the end.
    compressed_starts: Vec<u64>,
    decompressed_starts: Vec<u64>,
    checksums: bool,
}

impl SeekTable {
    /// A table of `entries`; `checksums` says whether every entry has one.
    ///
    /// # Panics
    /// If `checksums` disagrees with an entry (a writer bug, not input).
    #[must_use]
    pub fn new(entries: Vec<FrameEntry>, checksums: bool) -> Self {
        assert!(entries.iter().all(|e| e.checksum.is_some() == checksums));
        let mut compressed_starts = Vec::with_capacity(entries.len() + 1);
        let mut decompressed_starts = Vec::with_capacity(entries.len() + 1);
        let (mut c, mut d) = (0u64, 0u64);
        for e in &entries {
            compressed_starts.push(c);
            decompressed_starts.push(d);
            c += u64::from(e.compressed_size);
            d += u64::from(e.decompressed_size);
        }
        compressed_starts.push(c);
        decompressed_starts.push(d);
        Self {
            entries,
            compressed_starts,
            decompressed_starts,
            checksums,
        }
    }

    /// Decodes the whole skippable frame (the last [`Footer::table_len`]
    /// bytes of an object). `object_size`, when known, must equal the frames
    /// plus the table.
    pub fn decode(bytes: &[u8], object_size: Option<u64>) -> Result<Self, FormatError> {
        let footer = Footer::decode(bytes)?;
        let table_len = footer.table_len();
        if bytes.len() != table_len {
            return Err(FormatError::TableLength {
                expected: table_len as u64,
                actual: bytes.len() as u64,
            });
        }
        let magic = u32_at(bytes, 0);
        if magic != SKIPPABLE_MAGIC {
            return Err(FormatError::BadSkippableMagic { found: magic });
        }
        let size_field = u32_at(bytes, 4);
        let expected = (table_len - HEADER_LEN) as u64;
        if u64::from(size_field) != expected {
            return Err(FormatError::FrameSizeField {
                found: size_field,
                expected,
            });
        }
        let body = &bytes[HEADER_LEN..table_len - FOOTER_LEN];
        let mut entries = Vec::with_capacity(footer.frames as usize);
        for (index, e) in (0u32..).zip(body.chunks_exact(footer.entry_len())) {
            let entry = FrameEntry {
                compressed_size: u32_at(e, 0),
                decompressed_size: u32_at(e, 4),
                checksum: footer.checksums.then(|| u32_at(e, 8)),
            };
            if entry.compressed_size == 0 {
                return Err(FormatError::EmptyFrame { index });
            }
            if entry.decompressed_size > MAX_FRAME_SIZE {
                return Err(FormatError::FrameTooLarge {
                    index,
                    size: entry.decompressed_size,
                    max: MAX_FRAME_SIZE,
                });
            }
            entries.push(entry);
        }
        let table = Self::new(entries, footer.checksums);
        if let Some(object) = object_size {
            // At most 2^20 frames of u32 each, plus 12 MiB: no overflow.
            let spanned = table.compressed_size() + table_len as u64;
            if spanned != object {
                return Err(FormatError::SizeMismatch {
                    table: spanned,
                    object,
                });
            }
        }
        Ok(table)
    }

    /// Appends the encoded skippable frame to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let footer = Footer {
            frames: self.entries.len() as u32,
            checksums: self.checksums,
        };
        out.reserve(footer.table_len());
        out.extend_from_slice(&SKIPPABLE_MAGIC.to_le_bytes());
        out.extend_from_slice(&((footer.table_len() - HEADER_LEN) as u32).to_le_bytes());
        for e in &self.entries {
            out.extend_from_slice(&e.compressed_size.to_le_bytes());
            out.extend_from_slice(&e.decompressed_size.to_le_bytes());
            if let Some(c) = e.checksum {
                out.extend_from_slice(&c.to_le_bytes());
            }
        }
        out.extend_from_slice(&footer.frames.to_le_bytes());
        out.push(if self.checksums { CHECKSUM_FLAG } else { 0 });
        out.extend_from_slice(&SEEKABLE_MAGIC.to_le_bytes());
    }

    /// The encoded skippable frame.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Frames in the object.
    #[must_use]
    pub fn frames(&self) -> u32 {
        self.entries.len() as u32
    }

    /// Every entry, in order.
    #[must_use]
    pub fn entries(&self) -> &[FrameEntry] {
        &self.entries
    }

    /// Whether entries carry checksums.
    #[must_use]
    pub fn has_checksums(&self) -> bool {
        self.checksums
    }

    /// Bytes of all frames (the object less its seek table).
    #[must_use]
    pub fn compressed_size(&self) -> u64 {
        *self.compressed_starts.last().unwrap_or(&0)
    }

    /// Bytes of segment the object holds.
    #[must_use]
    pub fn decompressed_size(&self) -> u64 {
        *self.decompressed_starts.last().unwrap_or(&0)
    }

    /// Where frame `index` lies.
    pub fn frame(&self, index: u32) -> Result<FrameLocation, FormatError> {
        let i = index as usize;
        let Some(e) = self.entries.get(i) else {
            return Err(FormatError::NoSuchFrame {
                index,
                frames: self.frames(),
            });
        };
        Ok(FrameLocation {
            index,
            compressed: self.compressed_starts[i]..self.compressed_starts[i + 1],
            decompressed: self.decompressed_starts[i]..self.decompressed_starts[i + 1],
            checksum: e.checksum,
        })
    }

    /// The frame that holds segment byte `offset`.
    pub fn frame_at(&self, offset: u64) -> Result<FrameLocation, FormatError> {
        if offset >= self.decompressed_size() {
            return Err(FormatError::OffsetOutOfRange {
                offset,
                size: self.decompressed_size(),
            });
        }
        // The last start <= offset; empty frames (0 decompressed bytes) are skipped.
        let i = self.decompressed_starts.partition_point(|&s| s <= offset) - 1;
        self.frame(i as u32)
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn table(sizes: &[(u32, u32)], checksums: bool) -> SeekTable {
        SeekTable::new(
            sizes
                .iter()
                .enumerate()
                .map(|(i, &(c, d))| FrameEntry {
                    compressed_size: c,
                    decompressed_size: d,
                    checksum: checksums.then_some(i as u32 * 7),
                })
                .collect(),
            checksums,
        )
    }

    #[test]
    fn offsets_map_to_frames() {
        let t = table(&[(10, 100), (20, 100), (5, 50)], true);
        assert_eq!(t.decompressed_size(), 250);
        assert_eq!(t.compressed_size(), 35);
        assert_eq!(t.frame_at(0).unwrap().index, 0);
        assert_eq!(t.frame_at(99).unwrap().index, 0);
        let f = t.frame_at(100).unwrap();
        assert_eq!((f.index, f.compressed, f.decompressed), (1, 10..30, 100..200));
        assert_eq!(t.frame_at(249).unwrap().index, 2);
        assert!(matches!(
            t.frame_at(250),
            Err(FormatError::OffsetOutOfRange { .. })
        ));
        assert!(matches!(
            t.frame(3),
            Err(FormatError::NoSuchFrame { index: 3, frames: 3 })
        ));
    }

    #[test]
    fn the_encoding_is_the_zstd_seekable_layout() {
        let t = table(&[(10, 100)], false);
        let b = t.encode();
        assert_eq!(
            b,
            [
                0x5E, 0x2A, 0x4D, 0x18, 17, 0, 0, 0, 10, 0, 0, 0, 100, 0, 0, 0, 1, 0, 0, 0, 0, 0xB1, 0xEA,
                0x92, 0x8F
            ]
        );
        assert_eq!(SeekTable::decode(&b, Some(10 + 25)).unwrap(), t);
        assert!(matches!(
            SeekTable::decode(&b, Some(36)),
            Err(FormatError::SizeMismatch {
                table: 35,
                object: 36
            })
        ));
    }

    #[test]
    fn damaged_tables_are_refused() {
        let good = table(&[(10, 100), (3, 4)], true).encode();
        let mut b = good.clone();
        *b.last_mut().unwrap() ^= 1;
        assert!(matches!(
            SeekTable::decode(&b, None),
            Err(FormatError::BadSeekableMagic { .. })
        ));
        let mut b = good.clone();
        b[0] ^= 1;
        assert!(matches!(
            SeekTable::decode(&b, None),
            Err(FormatError::BadSkippableMagic { .. })
        ));
        let mut b = good.clone();
        b[4] += 1;
        assert!(matches!(
            SeekTable::decode(&b, None),
            Err(FormatError::FrameSizeField { .. })
        ));
        let mut b = good.clone();
        let d = b.len() - 5;
        b[d] |= 0x04;
        assert!(matches!(
            SeekTable::decode(&b, None),
            Err(FormatError::ReservedBits { .. })
        ));
        let mut b = good.clone();
        let n = b.len() - 9;
        b[n..n + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            SeekTable::decode(&b, None),
            Err(FormatError::TooManyFrames { .. })
        ));
        let mut b = good.clone();
        b[n] = 3;
        assert!(matches!(
            SeekTable::decode(&b, None),
            Err(FormatError::TableLength { .. })
        ));
        assert!(matches!(
            SeekTable::decode(&good[1..], None),
            Err(FormatError::TableLength { .. })
        ));
        assert!(matches!(
            SeekTable::decode(&good[..5], None),
            Err(FormatError::TooShort { len: 5 })
        ));
        let zero = table(&[(0, 1)], false).encode();
        assert!(matches!(
            SeekTable::decode(&zero, None),
            Err(FormatError::EmptyFrame { index: 0 })
        ));
        let huge = table(&[(1, MAX_FRAME_SIZE + 1)], false).encode();
        assert!(matches!(
            SeekTable::decode(&huge, None),
            Err(FormatError::FrameTooLarge { .. })
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256), size in any::<Option<u64>>()) {
            if let Ok(t) = SeekTable::decode(&bytes, size) {
                prop_assert_eq!(&t.encode(), &bytes);
            }
            let _ = Footer::decode(&bytes);
        }

        #[test]
        fn arbitrary_footers_never_panic(frames in any::<u32>(), descriptor in any::<u8>(), body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut bytes = body;
            bytes.extend_from_slice(&frames.to_le_bytes());
            bytes.push(descriptor);
            bytes.extend_from_slice(&SEEKABLE_MAGIC.to_le_bytes());
            let _ = SeekTable::decode(&bytes, None);
        }

        #[test]
        fn tables_round_trip(sizes in proptest::collection::vec((1u32.., 0..=MAX_FRAME_SIZE), 0..50), checksums in any::<bool>()) {
            let t = table(&sizes, checksums);
            let b = t.encode();
            prop_assert_eq!(Footer::decode(&b).unwrap().table_len(), b.len());
            let size = t.compressed_size() + b.len() as u64;
            prop_assert_eq!(SeekTable::decode(&b, Some(size)).unwrap(), t);
        }
    }
}
