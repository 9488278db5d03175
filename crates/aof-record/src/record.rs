//! The record format: a 32-byte little-endian header followed by the payload.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | checksum: `fold(CRC-64/NVME(header[4..32] ++ payload))` |
//! | 4 | 4 | size: payload length in bytes |
//! | 8 | 8 | id: monotonic record id |
//! | 16 | 8 | timestamp: microseconds since the Unix epoch |
//! | 24 | 1 | version: [`RECORD_FORMAT_VERSION`] |
//! | 25 | 1 | flags: bit 0 compressed, bit 1 encrypted, others zero |
//! | 26 | 6 | reserved: zero |
//!
//! The checksum covers every other header byte and the payload, so a flipped
//! bit anywhere in a record is detected. Because the checksummed bytes are
//! contiguous in an encoded record, encoding and decoding each make a single
//! pass of the CRC over `record[4..]`.

use crate::checksum::{crc64_nvme, fold};
use thiserror::Error;

/// Size in bytes of a record header.
pub const RECORD_HEADER_SIZE: usize = 32;

/// The record format version this code writes and reads.
pub const RECORD_FORMAT_VERSION: u8 = 1;

/// Bit flags stored in byte 25 of a record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RecordFlags(u8);

impl RecordFlags {
    /// No flag set: a plain payload.
    pub const NONE: Self = Self(0);
    /// The payload is compressed.
    pub const COMPRESSED: Self = Self(0b01);
    /// The payload is encrypted.
    pub const ENCRYPTED: Self = Self(0b10);
    /// Every bit this format version defines.
    pub const KNOWN: Self = Self(0b11);

    /// Flags from their stored byte, refusing bits this version does not define.
    pub const fn from_bits(bits: u8) -> Option<Self> {
        if bits & !Self::KNOWN.0 == 0 {
            Some(Self(bits))
        } else {
            None
        }
    }

    /// The stored byte.
    #[must_use]
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether every flag of `other` is set in `self`.
    #[must_use]
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of both sets of flags.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

/// A decoded record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordHeader {
    /// Folded CRC-64/NVME over header bytes 4..32 and the payload.
    pub checksum: u32,
    /// Payload length in bytes.
    pub size: u32,
    /// Monotonic record id.
    pub id: u64,
    /// Microseconds since the Unix epoch.
    pub timestamp_us: u64,
    /// Format version of the record.
    pub version: u8,
    /// Flags of the record.
    pub flags: RecordFlags,
}

impl RecordHeader {
    /// Bytes the whole record (header and payload) occupies.
    #[must_use]
    pub const fn record_len(&self) -> u64 {
        RECORD_HEADER_SIZE as u64 + self.size as u64
    }

    /// Writes the header bytes 4..32 (everything except the checksum).
    fn write_tail(&self, out: &mut [u8; RECORD_HEADER_SIZE]) {
        out[4..8].copy_from_slice(&self.size.to_le_bytes());
        out[8..16].copy_from_slice(&self.id.to_le_bytes());
        out[16..24].copy_from_slice(&self.timestamp_us.to_le_bytes());
        out[24] = self.version;
        out[25] = self.flags.bits();
        out[26..32].fill(0);
    }

    /// The 32 header bytes as stored.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; RECORD_HEADER_SIZE] {
        let mut out = [0u8; RECORD_HEADER_SIZE];
        out[0..4].copy_from_slice(&self.checksum.to_le_bytes());
        self.write_tail(&mut out);
        out
    }

    /// Parses and validates a header without checking the payload checksum.
    ///
    /// Checks, in order: 32 bytes present, known version, known flags, zero
    /// reserved bytes, and `size <= max_record_size`. Use it to learn how many
    /// payload bytes to read before calling [`RecordHeader::verify`].
    pub fn parse(bytes: &[u8], max_record_size: u32) -> Result<Self, RecordError> {
        let Some(raw) = bytes.first_chunk::<RECORD_HEADER_SIZE>() else {
            return Err(RecordError::Truncated {
                needed: RECORD_HEADER_SIZE as u64,
                available: bytes.len() as u64,
            });
        };
        let id = u64::from_le_bytes(sub::<8>(raw, 8));
        let version = raw[24];
        if version != RECORD_FORMAT_VERSION {
            return Err(RecordError::UnsupportedVersion { id, version });
        }
        let Some(flags) = RecordFlags::from_bits(raw[25]) else {
            return Err(RecordError::UnknownFlags { id, flags: raw[25] });
        };
        if raw[26..32].iter().any(|b| *b != 0) {
            return Err(RecordError::ReservedNotZero { id });
        }
        let size = u32::from_le_bytes(sub::<4>(raw, 4));
        if size > max_record_size {
            return Err(RecordError::TooLarge {
                id,
                size,
                max: max_record_size,
            });
        }
        Ok(Self {
            checksum: u32::from_le_bytes(sub::<4>(raw, 0)),
            size,
            id,
            timestamp_us: u64::from_le_bytes(sub::<8>(raw, 16)),
            version,
            flags,
        })
    }

    /// Checks the stored checksum against this header and `payload`.
    pub fn verify(&self, payload: &[u8]) -> Result<(), RecordError> {
        let mut tail = [0u8; RECORD_HEADER_SIZE];
        self.write_tail(&mut tail);
        let mut crc = crate::checksum::Crc64::new();
        crc.update(&tail[4..]);
        crc.update(payload);
        let actual = fold(crc.finish());
        if actual == self.checksum {
            Ok(())
        } else {
            Err(RecordError::ChecksumMismatch {
                id: self.id,
                expected: self.checksum,
                actual,
            })
        }
    }
}

/// Copies `N` bytes of `raw` starting at `at`; `at + N <= 32` at every call site.
#[inline(always)]
fn sub<const N: usize>(raw: &[u8; RECORD_HEADER_SIZE], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&raw[at..at + N]);
    out
}

/// A record decoded from a byte slice, borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodedRecord<'a> {
    /// The validated header.
    pub header: RecordHeader,
    /// The payload, checksum-verified.
    pub payload: &'a [u8],
}

impl DecodedRecord<'_> {
    /// Bytes the record occupies (header and payload): where the next record starts.
    #[must_use]
    pub const fn encoded_len(&self) -> usize {
        RECORD_HEADER_SIZE + self.payload.len()
    }
}

/// Why a record could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Fewer bytes are present than the header or its `size` field need.
    #[error("record truncated: {needed} bytes needed, {available} available")]
    Truncated {
        /// Bytes the record needs.
        needed: u64,
        /// Bytes present.
        available: u64,
    },
    /// The header names a format version this code does not read.
    #[error("record {id}: unsupported format version {version}")]
    UnsupportedVersion {
        /// Id as stored in the header (untrusted).
        id: u64,
        /// Version byte found.
        version: u8,
    },
    /// Flag bits that this format version does not define are set.
    #[error("record {id}: unknown flag bits {flags:#04x}")]
    UnknownFlags {
        /// Id as stored in the header (untrusted).
        id: u64,
        /// The flags byte found.
        flags: u8,
    },
    /// The reserved header bytes 26..32 are not zero.
    #[error("record {id}: reserved header bytes are not zero")]
    ReservedNotZero {
        /// Id as stored in the header (untrusted).
        id: u64,
    },
    /// The payload is larger than the configured maximum.
    #[error("record {id}: payload of {size} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// Id as stored in the header, or the id being encoded.
        id: u64,
        /// Payload size in bytes.
        size: u32,
        /// Maximum payload size in bytes.
        max: u32,
    },
    /// The payload cannot be described by the 32-bit size field.
    #[error("payload of {size} bytes exceeds the format limit of {} bytes", u32::MAX)]
    PayloadTooLarge {
        /// Payload size in bytes.
        size: u64,
    },
    /// The stored checksum does not match the record's bytes.
    #[error("record {id}: checksum mismatch (stored {expected:#010x}, computed {actual:#010x})")]
    ChecksumMismatch {
        /// Id as stored in the header (untrusted).
        id: u64,
        /// Checksum stored in the header.
        expected: u32,
        /// Checksum computed over the bytes read.
        actual: u32,
    },
    /// The output buffer cannot hold the encoded record.
    #[error("output buffer too small: {needed} bytes needed, {available} available")]
    BufferTooSmall {
        /// Bytes the encoded record needs.
        needed: u64,
        /// Bytes the buffer has.
        available: u64,
    },
}

/// Bytes a record with a payload of `payload_len` bytes occupies.
#[must_use]
pub const fn encoded_len(payload_len: usize) -> usize {
    RECORD_HEADER_SIZE + payload_len
}

/// Encodes one record into the start of `out`, returning the bytes written.
///
/// Allocates nothing; `out` must hold [`encoded_len`]`(payload.len())` bytes.
///
/// ```
/// use aof_record::record::{decode_record, encode_record, encoded_len, RecordFlags};
///
/// let mut buf = [0u8; 64];
/// let n = encode_record(&mut buf, 7, 1_700_000_000_000_000, RecordFlags::NONE, b"hello").unwrap();
/// assert_eq!(n, encoded_len(5));
/// let rec = decode_record(&buf[..n], 1024).unwrap();
/// assert_eq!((rec.header.id, rec.payload), (7, &b"hello"[..]));
/// ```
pub fn encode_record(
    out: &mut [u8],
    id: u64,
    timestamp_us: u64,
    flags: RecordFlags,
    payload: &[u8],
) -> Result<usize, RecordError> {
    let size = u32::try_from(payload.len()).map_err(|_| RecordError::PayloadTooLarge {
        size: payload.len() as u64,
    })?;
    let needed = encoded_len(payload.len());
    let available = out.len();
    let Some(out) = out.get_mut(..needed) else {
        return Err(RecordError::BufferTooSmall {
            needed: needed as u64,
            available: available as u64,
        });
    };
    let header = RecordHeader {
        checksum: 0,
        size,
        id,
        timestamp_us,
        version: RECORD_FORMAT_VERSION,
        flags,
    };
    let (head, body) = out.split_at_mut(RECORD_HEADER_SIZE);
    let mut raw = [0u8; RECORD_HEADER_SIZE];
    header.write_tail(&mut raw);
    head.copy_from_slice(&raw);
    body.copy_from_slice(payload);
    let checksum = fold(crc64_nvme(&out[4..]));
    out[0..4].copy_from_slice(&checksum.to_le_bytes());
    Ok(needed)
}

/// Appends one encoded record to `out`, returning the bytes appended.
///
/// Allocates only when `out` lacks the capacity; reuse the vector across
/// records to keep the hot path allocation-free.
pub fn append_record(
    out: &mut Vec<u8>,
    id: u64,
    timestamp_us: u64,
    flags: RecordFlags,
    payload: &[u8],
) -> Result<usize, RecordError> {
    if u32::try_from(payload.len()).is_err() {
        return Err(RecordError::PayloadTooLarge {
            size: payload.len() as u64,
        });
    }
    let start = out.len();
    out.resize(start + encoded_len(payload.len()), 0);
    encode_record(&mut out[start..], id, timestamp_us, flags, payload)
}

/// Appends one record to `out` with its checksum left to
/// [`seal_record`]: the two-phase form for batch writers.
///
/// Computing a CRC over bytes that were stored a moment ago stalls the CPU
/// (the vector loads wait for the stores to retire); encoding many records
/// first and sealing them afterwards in one pass avoids that. A record that
/// is not sealed fails to decode.
pub fn append_record_unsealed(
    out: &mut Vec<u8>,
    id: u64,
    timestamp_us: u64,
    flags: RecordFlags,
    payload: &[u8],
) -> Result<usize, RecordError> {
    let size = u32::try_from(payload.len()).map_err(|_| RecordError::PayloadTooLarge {
        size: payload.len() as u64,
    })?;
    let header = RecordHeader {
        checksum: 0,
        size,
        id,
        timestamp_us,
        version: RECORD_FORMAT_VERSION,
        flags,
    };
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(payload);
    Ok(encoded_len(payload.len()))
}

/// Computes and stores the checksum of the encoded record that is exactly
/// `record` (header and payload); see [`append_record_unsealed`].
pub fn seal_record(record: &mut [u8]) {
    if record.len() >= RECORD_HEADER_SIZE {
        let checksum = fold(crc64_nvme(&record[4..]));
        record[0..4].copy_from_slice(&checksum.to_le_bytes());
    }
}

/// Decodes and fully validates the record at the start of `bytes`.
///
/// Checks the header (see [`RecordHeader::parse`]), that the payload is
/// present, and the checksum. Bytes after the record are ignored. Never
/// panics and never allocates, whatever `bytes` holds.
pub fn decode_record(bytes: &[u8], max_record_size: u32) -> Result<DecodedRecord<'_>, RecordError> {
    let header = RecordHeader::parse(bytes, max_record_size)?;
    let len = encoded_len(header.size as usize);
    let Some(record) = bytes.get(..len) else {
        return Err(RecordError::Truncated {
            needed: len as u64,
            available: bytes.len() as u64,
        });
    };
    let actual = fold(crc64_nvme(&record[4..]));
    if actual != header.checksum {
        return Err(RecordError::ChecksumMismatch {
            id: header.id,
            expected: header.checksum,
            actual,
        });
    }
    Ok(DecodedRecord {
        header,
        payload: &record[RECORD_HEADER_SIZE..],
    })
}

/// Whether `bytes` starts with a header-sized run of zero bytes: the mark of
/// pre-allocated, never-written space at the end of a segment.
#[must_use]
pub fn is_zeroed_header(bytes: &[u8]) -> bool {
    bytes
        .get(..RECORD_HEADER_SIZE)
        .is_some_and(|h| h.iter().all(|b| *b == 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ORACLE: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_NVME);

    fn encode(id: u64, ts: u64, flags: RecordFlags, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        append_record(&mut v, id, ts, flags, payload).unwrap();
        v
    }

    #[test]
    fn layout_is_the_documented_one() {
        let bytes = encode(
            0x0102_0304_0506_0708,
            0x1112_1314_1516_1718,
            RecordFlags::COMPRESSED,
            b"abc",
        );
        assert_eq!(bytes.len(), 35);
        assert_eq!(&bytes[4..8], &3u32.to_le_bytes());
        assert_eq!(&bytes[8..16], &0x0102_0304_0506_0708u64.to_le_bytes());
        assert_eq!(&bytes[16..24], &0x1112_1314_1516_1718u64.to_le_bytes());
        assert_eq!(bytes[24], 1);
        assert_eq!(bytes[25], 1);
        assert_eq!(&bytes[26..32], &[0; 6]);
        assert_eq!(&bytes[32..], b"abc");
        // The checksum, computed independently with the `crc` crate.
        let c = ORACLE.checksum(&bytes[4..]);
        let folded = ((c >> 32) ^ (c & 0xFFFF_FFFF)) as u32;
        assert_eq!(&bytes[0..4], &folded.to_le_bytes());
    }

    #[test]
    fn empty_payload_round_trips() {
        let bytes = encode(0, 0, RecordFlags::NONE, b"");
        let rec = decode_record(&bytes, 0).unwrap();
        assert_eq!(rec.payload, b"");
        assert_eq!(rec.encoded_len(), RECORD_HEADER_SIZE);
    }

    #[test]
    fn each_validation_has_its_error() {
        let good = encode(9, 5, RecordFlags::NONE, b"payload");
        assert!(matches!(
            decode_record(&good[..31], 100),
            Err(RecordError::Truncated {
                needed: 32,
                available: 31
            })
        ));
        assert!(matches!(
            decode_record(&good[..38], 100),
            Err(RecordError::Truncated {
                needed: 39,
                available: 38
            })
        ));
        assert!(matches!(
            decode_record(&good, 6),
            Err(RecordError::TooLarge {
                id: 9,
                size: 7,
                max: 6
            })
        ));
        let mut bad = good.clone();
        bad[24] = 2;
        assert!(matches!(
            decode_record(&bad, 100),
            Err(RecordError::UnsupportedVersion { id: 9, version: 2 })
        ));
        let mut bad = good.clone();
        bad[25] = 0x04;
        assert!(matches!(
            decode_record(&bad, 100),
            Err(RecordError::UnknownFlags { id: 9, flags: 4 })
        ));
        let mut bad = good.clone();
        bad[31] = 1;
        assert!(matches!(
            decode_record(&bad, 100),
            Err(RecordError::ReservedNotZero { id: 9 })
        ));
        let mut bad = good.clone();
        bad[34] ^= 0x10;
        assert!(matches!(
            decode_record(&bad, 100),
            Err(RecordError::ChecksumMismatch { id: 9, .. })
        ));
        let mut small = [0u8; 10];
        assert!(matches!(
            encode_record(&mut small, 1, 1, RecordFlags::NONE, b"x"),
            Err(RecordError::BufferTooSmall {
                needed: 33,
                available: 10
            })
        ));
    }

    #[test]
    fn two_phase_encoding_gives_the_same_bytes() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        for (id, p) in [(1u64, &b"one"[..]), (2, b""), (3, &[7u8; 300][..])] {
            append_record(&mut a, id, 9, RecordFlags::NONE, p).unwrap();
            let at = b.len();
            let n = append_record_unsealed(&mut b, id, 9, RecordFlags::NONE, p).unwrap();
            assert!(
                decode_record(&b[at..], 1000).is_err(),
                "unsealed records must not decode"
            );
            seal_record(&mut b[at..at + n]);
        }
        assert_eq!(a, b);
    }

    #[test]
    fn zeroed_space_is_recognised_and_refused() {
        let zeros = [0u8; 64];
        assert!(is_zeroed_header(&zeros));
        assert!(!is_zeroed_header(&zeros[..31]));
        assert!(matches!(
            decode_record(&zeros, 100),
            Err(RecordError::UnsupportedVersion { version: 0, .. })
        ));
    }

    #[test]
    fn parse_then_verify_matches_decode() {
        let bytes = encode(3, 4, RecordFlags::ENCRYPTED, b"split read");
        let header = RecordHeader::parse(&bytes, 1 << 20).unwrap();
        header.verify(&bytes[RECORD_HEADER_SIZE..]).unwrap();
        assert_eq!(header.to_bytes(), bytes[..32]);
        assert!(matches!(
            header.verify(b"split reaD"),
            Err(RecordError::ChecksumMismatch { id: 3, .. })
        ));
    }

    proptest! {
        #[test]
        fn round_trip(id in any::<u64>(), ts in any::<u64>(), flags in 0u8..4, payload in proptest::collection::vec(any::<u8>(), 0..2048), trailing in proptest::collection::vec(any::<u8>(), 0..64)) {
            let flags = RecordFlags::from_bits(flags).unwrap();
            let mut bytes = encode(id, ts, flags, &payload);
            let len = bytes.len();
            bytes.extend_from_slice(&trailing);
            let rec = decode_record(&bytes, u32::MAX).unwrap();
            prop_assert_eq!(rec.header.id, id);
            prop_assert_eq!(rec.header.timestamp_us, ts);
            prop_assert_eq!(rec.header.flags, flags);
            prop_assert_eq!(rec.payload, &payload[..]);
            prop_assert_eq!(rec.encoded_len(), len);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256), max in any::<u32>()) {
            let _ = decode_record(&bytes, max);
            let _ = RecordHeader::parse(&bytes, max);
        }

        #[test]
        fn any_single_bit_flip_is_detected(payload in proptest::collection::vec(any::<u8>(), 0..300), bit in any::<proptest::sample::Index>()) {
            let mut bytes = encode(42, 99, RecordFlags::NONE, &payload);
            let bit = bit.index(bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
            match decode_record(&bytes, u32::MAX) {
                Err(_) => {}
                Ok(rec) => prop_assert!(false, "flip of bit {bit} decoded as {rec:?}"),
            }
        }
    }
}
