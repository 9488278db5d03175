//! The segment file header, and how segment files are named.
//!
//! Every segment file starts with a 64-byte header; records follow from
//! [`SEGMENT_HEADER_SIZE`] on. The header lets a reader refuse a foreign,
//! empty or truncated file before it looks at a single record.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic: [`SEGMENT_MAGIC`] (`\x89AOFSEG\n`) |
//! | 8 | 2 | format version: u16 = [`SEGMENT_FORMAT_VERSION`] |
//! | 10 | 2 | header length: u16 = 64 |
//! | 12 | 4 | flags: u32, zero in this version |
//! | 16 | 8 | base id: u64, id of the segment's first record |
//! | 24 | 8 | created at: u64, microseconds since the Unix epoch |
//! | 32 | 24 | reserved: zero |
//! | 56 | 8 | checksum: u64, CRC-64/NVME of bytes 0..56 |
//!
//! All integers are little-endian.

use crate::checksum::crc64_nvme;
use thiserror::Error;

/// Size in bytes of the segment file header; the first record starts here.
pub const SEGMENT_HEADER_SIZE: usize = 64;

/// The segment format version this code writes and reads.
pub const SEGMENT_FORMAT_VERSION: u16 = 1;

/// The first eight bytes of every segment file.
///
/// The high first byte catches 7-bit transfers and the trailing newline
/// catches line-ending conversion, as in PNG's signature.
pub const SEGMENT_MAGIC: [u8; 8] = *b"\x89AOFSEG\n";

/// The fixed header at the start of a segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SegmentHeader {
    /// Id of the first record the segment holds (or will hold).
    pub base_id: u64,
    /// When the segment was created, in microseconds since the Unix epoch.
    pub created_at_us: u64,
}

impl SegmentHeader {
    /// The 64 header bytes as stored.
    #[must_use]
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_SIZE] {
        let mut out = [0u8; SEGMENT_HEADER_SIZE];
        out[0..8].copy_from_slice(&SEGMENT_MAGIC);
        out[8..10].copy_from_slice(&SEGMENT_FORMAT_VERSION.to_le_bytes());
        out[10..12].copy_from_slice(&(SEGMENT_HEADER_SIZE as u16).to_le_bytes());
        out[16..24].copy_from_slice(&self.base_id.to_le_bytes());
        out[24..32].copy_from_slice(&self.created_at_us.to_le_bytes());
        let crc = crc64_nvme(&out[..56]);
        out[56..64].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses and validates the header at the start of `bytes`.
    ///
    /// Checks, in order: not empty, 64 bytes present, magic, version, header
    /// length, checksum, zero flags and reserved bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, SegmentHeaderError> {
        if bytes.is_empty() {
            return Err(SegmentHeaderError::Empty);
        }
        let Some(raw) = bytes.first_chunk::<SEGMENT_HEADER_SIZE>() else {
            return Err(SegmentHeaderError::Truncated {
                needed: SEGMENT_HEADER_SIZE as u64,
                available: bytes.len() as u64,
            });
        };
        let mut magic = [0u8; 8];
        magic.copy_from_slice(&raw[0..8]);
        if magic != SEGMENT_MAGIC {
            return Err(SegmentHeaderError::BadMagic { found: magic });
        }
        let version = u16::from_le_bytes([raw[8], raw[9]]);
        if version != SEGMENT_FORMAT_VERSION {
            return Err(SegmentHeaderError::UnsupportedVersion { version });
        }
        let header_len = u16::from_le_bytes([raw[10], raw[11]]);
        if usize::from(header_len) != SEGMENT_HEADER_SIZE {
            return Err(SegmentHeaderError::BadHeaderLength { found: header_len });
        }
        let mut stored = [0u8; 8];
        stored.copy_from_slice(&raw[56..64]);
        let expected = u64::from_le_bytes(stored);
        let actual = crc64_nvme(&raw[..56]);
        if expected != actual {
            return Err(SegmentHeaderError::ChecksumMismatch { expected, actual });
        }
        if raw[12..16].iter().chain(&raw[32..56]).any(|b| *b != 0) {
            return Err(SegmentHeaderError::ReservedNotZero);
        }
        let mut base = [0u8; 8];
        base.copy_from_slice(&raw[16..24]);
        let mut created = [0u8; 8];
        created.copy_from_slice(&raw[24..32]);
        Ok(Self {
            base_id: u64::from_le_bytes(base),
            created_at_us: u64::from_le_bytes(created),
        })
    }
}

/// Why bytes are not a valid segment file header.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SegmentHeaderError {
    /// The file is empty.
    #[error("empty file: not a segment")]
    Empty,
    /// The file is shorter than a segment header.
    #[error("truncated segment header: {needed} bytes needed, {available} present")]
    Truncated {
        /// Bytes a header needs.
        needed: u64,
        /// Bytes present.
        available: u64,
    },
    /// The file does not start with the segment magic: it is not a segment.
    #[error("not a segment file (magic {found:02x?})")]
    BadMagic {
        /// The first eight bytes found.
        found: [u8; 8],
    },
    /// The segment was written by a format version this code does not read.
    #[error("unsupported segment format version {version}")]
    UnsupportedVersion {
        /// Version found.
        version: u16,
    },
    /// The header length field is not the one this version defines.
    #[error("segment header length {found} is not {SEGMENT_HEADER_SIZE}")]
    BadHeaderLength {
        /// Length found.
        found: u16,
    },
    /// The header's own checksum does not match its bytes.
    #[error("segment header checksum mismatch (stored {expected:#018x}, computed {actual:#018x})")]
    ChecksumMismatch {
        /// Checksum stored in the header.
        expected: u64,
        /// Checksum computed over the header bytes.
        actual: u64,
    },
    /// Flag or reserved bytes are not zero.
    #[error("segment header flags or reserved bytes are not zero")]
    ReservedNotZero,
}

/// Size in bytes of the footer that ends a finalized segment file.
pub const SEGMENT_FOOTER_SIZE: usize = 64;

/// The first eight bytes of a segment footer.
pub const SEGMENT_FOOTER_MAGIC: [u8; 8] = *b"\x89AOFEND\n";

/// The footer that ends a finalized segment.
///
/// A finalized segment file is `[header][records][offset table][footer]`:
/// the offset table holds one little-endian u32 per record, the byte offset
/// of record `base_id + i` in the file, so a read by id costs one lookup.
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 8 | magic: [`SEGMENT_FOOTER_MAGIC`] (`\x89AOFEND\n`) |
/// | 8 | 2 | format version: u16 = 1 |
/// | 10 | 2 | footer length: u16 = 64 |
/// | 12 | 4 | reserved: zero |
/// | 16 | 8 | base id |
/// | 24 | 8 | record count |
/// | 32 | 8 | data end: offset of the offset table (end of the last record) |
/// | 40 | 8 | data checksum: CRC-64/NVME of bytes `0..data_end` |
/// | 48 | 8 | table checksum: CRC-64/NVME of the offset table |
/// | 56 | 8 | checksum: CRC-64/NVME of footer bytes 0..56 |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SegmentFooter {
    /// Id of the segment's first record.
    pub base_id: u64,
    /// Records in the segment.
    pub record_count: u64,
    /// Offset of the offset table: the end of the record data.
    pub data_end: u64,
    /// CRC-64/NVME of bytes `0..data_end` (header and records).
    pub data_crc: u64,
    /// CRC-64/NVME of the offset table.
    pub table_crc: u64,
}

impl SegmentFooter {
    /// Length of a finalized file with this footer.
    #[must_use]
    pub const fn file_len(&self) -> u64 {
        self.data_end + self.record_count * 4 + SEGMENT_FOOTER_SIZE as u64
    }

    /// The 64 footer bytes as stored.
    #[must_use]
    pub fn encode(&self) -> [u8; SEGMENT_FOOTER_SIZE] {
        let mut out = [0u8; SEGMENT_FOOTER_SIZE];
        out[0..8].copy_from_slice(&SEGMENT_FOOTER_MAGIC);
        out[8..10].copy_from_slice(&SEGMENT_FORMAT_VERSION.to_le_bytes());
        out[10..12].copy_from_slice(&(SEGMENT_FOOTER_SIZE as u16).to_le_bytes());
        out[16..24].copy_from_slice(&self.base_id.to_le_bytes());
        out[24..32].copy_from_slice(&self.record_count.to_le_bytes());
        out[32..40].copy_from_slice(&self.data_end.to_le_bytes());
        out[40..48].copy_from_slice(&self.data_crc.to_le_bytes());
        out[48..56].copy_from_slice(&self.table_crc.to_le_bytes());
        let crc = crc64_nvme(&out[..56]);
        out[56..64].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes the 64 footer bytes alone (magic, checksum, version), without
    /// the file they end: for a reader that holds only part of a segment
    /// (an archived one, fetched frame by frame). The caller checks the
    /// lengths against the file's size, as [`SegmentFooter::decode`] does.
    pub fn decode_fields(raw: &[u8]) -> Result<Self, FooterError> {
        if raw.len() != SEGMENT_FOOTER_SIZE {
            return Err(FooterError::Missing);
        }
        if raw[0..8] != SEGMENT_FOOTER_MAGIC {
            return Err(FooterError::Missing);
        }
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&raw[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let expected = u64_at(56);
        let actual = crc64_nvme(&raw[..56]);
        if expected != actual {
            return Err(FooterError::ChecksumMismatch { expected, actual });
        }
        let version = u16::from_le_bytes([raw[8], raw[9]]);
        if version != SEGMENT_FORMAT_VERSION
            || usize::from(u16::from_le_bytes([raw[10], raw[11]])) != SEGMENT_FOOTER_SIZE
        {
            return Err(FooterError::UnsupportedVersion { version });
        }
        let footer = Self {
            base_id: u64_at(16),
            record_count: u64_at(24),
            data_end: u64_at(32),
            data_crc: u64_at(40),
            table_crc: u64_at(48),
        };
        Ok(footer)
    }

    /// Finds and validates the footer at the end of `file` (a whole segment
    /// file), checking that the lengths it claims add up to the file's length.
    /// The table checksum is checked too; the data checksum is not (that
    /// costs a pass over the data; see [`SegmentFooter::verify_data`]).
    pub fn decode(file: &[u8]) -> Result<Self, FooterError> {
        let len = file.len();
        let Some(raw) = len.checked_sub(SEGMENT_FOOTER_SIZE).and_then(|at| file.get(at..)) else {
            return Err(FooterError::Missing);
        };
        let footer = Self::decode_fields(raw)?;
        let claimed = footer
            .record_count
            .checked_mul(4)
            .and_then(|t| t.checked_add(footer.data_end))
            .and_then(|t| t.checked_add(SEGMENT_FOOTER_SIZE as u64));
        if claimed != Some(len as u64) || footer.data_end < SEGMENT_HEADER_SIZE as u64 {
            return Err(FooterError::LengthMismatch {
                file_len: len as u64,
                data_end: footer.data_end,
                record_count: footer.record_count,
            });
        }
        let table = footer.table(file);
        let actual = crc64_nvme(table);
        if actual != footer.table_crc {
            return Err(FooterError::TableChecksumMismatch {
                expected: footer.table_crc,
                actual,
            });
        }
        Ok(footer)
    }

    /// The offset table inside `file`; call only with the file this footer was decoded from.
    #[must_use]
    pub fn table<'a>(&self, file: &'a [u8]) -> &'a [u8] {
        let start = usize::try_from(self.data_end).unwrap_or(usize::MAX);
        let end = start.saturating_add(usize::try_from(self.record_count * 4).unwrap_or(usize::MAX));
        file.get(start..end).unwrap_or(&[])
    }

    /// Offset of record `base_id + index`, read from the offset table in `file`.
    #[must_use]
    pub fn offset_of(&self, file: &[u8], index: u64) -> Option<u64> {
        if index >= self.record_count {
            return None;
        }
        let at = usize::try_from(self.data_end + index * 4).ok()?;
        let b = file.get(at..at + 4)?;
        Some(u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
    }

    /// Checks the data checksum against bytes `0..data_end` of `file`.
    pub fn verify_data(&self, file: &[u8]) -> Result<(), FooterError> {
        let data = usize::try_from(self.data_end)
            .ok()
            .and_then(|e| file.get(..e))
            .unwrap_or(&[]);
        let actual = crc64_nvme(data);
        if actual == self.data_crc {
            Ok(())
        } else {
            Err(FooterError::DataChecksumMismatch {
                expected: self.data_crc,
                actual,
            })
        }
    }
}

/// Why a finalized segment's footer is invalid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FooterError {
    /// The file does not end with a footer: it was never finalized, or its end is lost.
    #[error("no segment footer at the end of the file")]
    Missing,
    /// The footer's own checksum does not match.
    #[error("segment footer checksum mismatch (stored {expected:#018x}, computed {actual:#018x})")]
    ChecksumMismatch {
        /// Stored checksum.
        expected: u64,
        /// Computed checksum.
        actual: u64,
    },
    /// The footer was written by a format version this code does not read.
    #[error("unsupported segment footer version {version}")]
    UnsupportedVersion {
        /// Version found.
        version: u16,
    },
    /// The lengths the footer claims do not add up to the file's length.
    #[error(
        "segment footer claims {record_count} records with data ending at {data_end}, file is {file_len} bytes"
    )]
    LengthMismatch {
        /// Length of the file.
        file_len: u64,
        /// Data end claimed.
        data_end: u64,
        /// Record count claimed.
        record_count: u64,
    },
    /// The offset table's checksum does not match.
    #[error("segment offset table checksum mismatch (stored {expected:#018x}, computed {actual:#018x})")]
    TableChecksumMismatch {
        /// Stored checksum.
        expected: u64,
        /// Computed checksum.
        actual: u64,
    },
    /// The record data's checksum does not match.
    #[error("segment data checksum mismatch (stored {expected:#018x}, computed {actual:#018x})")]
    DataChecksumMismatch {
        /// Stored checksum.
        expected: u64,
        /// Computed checksum.
        actual: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_round_trips_and_has_the_documented_layout() {
        let h = SegmentHeader {
            base_id: 1000,
            created_at_us: 1_700_000_000_000_000,
        };
        let bytes = h.encode();
        assert_eq!(&bytes[0..8], b"\x89AOFSEG\n");
        assert_eq!(&bytes[8..10], &1u16.to_le_bytes());
        assert_eq!(&bytes[10..12], &64u16.to_le_bytes());
        assert_eq!(&bytes[16..24], &1000u64.to_le_bytes());
        assert_eq!(SegmentHeader::decode(&bytes), Ok(h));
    }

    #[test]
    fn foreign_empty_and_truncated_files_are_refused() {
        assert_eq!(SegmentHeader::decode(b""), Err(SegmentHeaderError::Empty));
        let bytes = SegmentHeader {
            base_id: 1,
            created_at_us: 2,
        }
        .encode();
        assert!(matches!(
            SegmentHeader::decode(&bytes[..63]),
            Err(SegmentHeaderError::Truncated {
                needed: 64,
                available: 63
            })
        ));
        let mut elf = [0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        assert!(matches!(
            SegmentHeader::decode(&elf),
            Err(SegmentHeaderError::BadMagic { .. })
        ));
        let mut v2 = bytes;
        v2[8] = 2;
        assert_eq!(
            SegmentHeader::decode(&v2),
            Err(SegmentHeaderError::UnsupportedVersion { version: 2 })
        );
        let mut flipped = bytes;
        flipped[20] ^= 1;
        assert!(matches!(
            SegmentHeader::decode(&flipped),
            Err(SegmentHeaderError::ChecksumMismatch { .. })
        ));
    }

    fn finalized_file(records: u64) -> Vec<u8> {
        let mut file = SegmentHeader {
            base_id: 5,
            created_at_us: 1,
        }
        .encode()
        .to_vec();
        let mut table = Vec::new();
        for i in 0..records {
            table.extend_from_slice(&(file.len() as u32).to_le_bytes());
            crate::record::append_record(&mut file, 5 + i, 1, crate::record::RecordFlags::NONE, b"xyz")
                .unwrap();
        }
        let footer = SegmentFooter {
            base_id: 5,
            record_count: records,
            data_end: file.len() as u64,
            data_crc: crc64_nvme(&file),
            table_crc: crc64_nvme(&table),
        };
        file.extend_from_slice(&table);
        file.extend_from_slice(&footer.encode());
        file
    }

    #[test]
    fn footer_round_trips_and_indexes_records() {
        let file = finalized_file(3);
        let f = SegmentFooter::decode(&file).unwrap();
        assert_eq!(
            (f.base_id, f.record_count, f.file_len()),
            (5, 3, file.len() as u64)
        );
        f.verify_data(&file).unwrap();
        assert_eq!(f.offset_of(&file, 0), Some(64));
        assert_eq!(f.offset_of(&file, 1), Some(64 + 35));
        assert_eq!(f.offset_of(&file, 3), None);
        let empty = finalized_file(0);
        assert_eq!(SegmentFooter::decode(&empty).unwrap().record_count, 0);
    }

    #[test]
    fn damaged_footers_are_refused() {
        let file = finalized_file(3);
        assert_eq!(
            SegmentFooter::decode(&file[..file.len() - 1]),
            Err(FooterError::Missing)
        );
        assert_eq!(SegmentFooter::decode(b"short"), Err(FooterError::Missing));
        let mut t = file.clone();
        let table_at = t.len() - 64 - 1;
        t[table_at] ^= 1;
        assert!(matches!(
            SegmentFooter::decode(&t),
            Err(FooterError::TableChecksumMismatch { .. })
        ));
        let mut d = file.clone();
        d[70] ^= 1;
        let f = SegmentFooter::decode(&d).unwrap();
        assert!(matches!(
            f.verify_data(&d),
            Err(FooterError::DataChecksumMismatch { .. })
        ));
        let mut extra = file[..file.len() - 64].to_vec();
        extra.push(0);
        extra.extend_from_slice(&file[file.len() - 64..]);
        assert!(matches!(
            SegmentFooter::decode(&extra),
            Err(FooterError::LengthMismatch { .. })
        ));
    }

    proptest! {
        #[test]
        fn footer_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = SegmentFooter::decode(&bytes);
        }

        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = SegmentHeader::decode(&bytes);
        }

        #[test]
        fn every_bit_flip_is_refused(base in any::<u64>(), at in any::<u64>(), bit in 0usize..512) {
            let mut bytes = SegmentHeader { base_id: base, created_at_us: at }.encode();
            bytes[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(SegmentHeader::decode(&bytes).is_err());
        }
    }
}
