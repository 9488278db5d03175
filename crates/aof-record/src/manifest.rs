//! The log manifest: what a log directory knows about itself that its
//! segments cannot say — its identity and its recovery point.
//!
//! The manifest file holds two 64-byte slots, at offsets 0 and
//! [`MANIFEST_SLOT_STRIDE`] (so a torn page write damages at most one). An
//! update writes the slot the current one is not in, with the next sequence
//! number, and syncs it; a reader takes the valid slot with the higher
//! sequence number. A crash during an update therefore leaves the previous
//! state readable (the double-buffered superblock of LMDB's meta pages and
//! TigerBeetle's superblock copies).
//!
//! Slot layout (little-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 0..8 | magic `\x89AOFMAN\n` |
//! | 8..10 | manifest format version (1) |
//! | 10..12 | segment format version of the log |
//! | 12..16 | zero |
//! | 16..32 | log identity (random, made when the log was created) |
//! | 32..40 | created at, µs since the Unix epoch |
//! | 40..48 | sequence number of this slot (higher is newer) |
//! | 48..56 | recovery point: every id below it was durable when it was written |
//! | 56..64 | CRC-64/NVME of bytes 0..56 |

use crate::checksum::crc64_nvme;
use crate::segment::SEGMENT_FORMAT_VERSION;
use std::fmt;

/// The first eight bytes of a manifest slot.
pub const MANIFEST_MAGIC: [u8; 8] = *b"\x89AOFMAN\n";
/// The manifest format version this code writes and reads.
pub const MANIFEST_VERSION: u16 = 1;
/// Bytes of one slot.
pub const MANIFEST_SLOT_SIZE: usize = 64;
/// Offset of the second slot (a page apart from the first).
pub const MANIFEST_SLOT_STRIDE: u64 = 4096;

/// A log's identity: random, made when the log is created, stored in the
/// manifest and in the segment index, so that an index and a directory of
/// segments that do not belong together are told apart.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LogId(pub u128);

impl fmt::Display for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LogId({self})")
    }
}

/// A string that is not a [`LogId`] as its `Display` writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a log identity is 32 hexadecimal digits")]
pub struct InvalidLogId;

impl std::str::FromStr for LogId {
    type Err = InvalidLogId;

    /// Reads exactly what `Display` writes: 32 hexadecimal digits (either case).
    fn from_str(s: &str) -> Result<Self, InvalidLogId> {
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(InvalidLogId);
        }
        u128::from_str_radix(s, 16).map(LogId).map_err(|_| InvalidLogId)
    }
}

/// One state of the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManifestSlot {
    /// The log's identity.
    pub log_id: LogId,
    /// The segment format version the log is written in.
    pub segment_format_version: u16,
    /// When the log was created, µs since the Unix epoch.
    pub created_at_us: u64,
    /// Sequence number: the valid slot with the higher one is current.
    pub seq: u64,
    /// Every id below this was durable when the slot was written.
    pub recovery_next: u64,
}

/// Why a manifest slot was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// Fewer bytes than a slot.
    #[error("manifest slot truncated: {available} of {MANIFEST_SLOT_SIZE} bytes")]
    Truncated {
        /// Bytes available.
        available: usize,
    },
    /// Not a manifest slot (or a slot never written).
    #[error("bad manifest magic")]
    BadMagic,
    /// The slot's checksum does not match its bytes.
    #[error("manifest slot checksum mismatch (stored {expected:#018x}, computed {actual:#018x})")]
    ChecksumMismatch {
        /// Stored checksum.
        expected: u64,
        /// Computed checksum.
        actual: u64,
    },
    /// A manifest version this code does not read.
    #[error("manifest version {version} is not supported (this build reads {MANIFEST_VERSION})")]
    UnsupportedVersion {
        /// The version found.
        version: u16,
    },
    /// A segment format this code does not read.
    #[error("segment format version {version} is not supported (this build reads {SEGMENT_FORMAT_VERSION})")]
    UnsupportedSegmentFormat {
        /// The version found.
        version: u16,
    },
}

impl ManifestSlot {
    /// A new log's first state.
    #[must_use]
    pub fn new(log_id: LogId, created_at_us: u64) -> Self {
        Self {
            log_id,
            segment_format_version: SEGMENT_FORMAT_VERSION,
            created_at_us,
            seq: 1,
            recovery_next: 0,
        }
    }

    /// The next state: sequence number + 1, recovery point `recovery_next`.
    #[must_use]
    pub fn next(&self, recovery_next: u64) -> Self {
        Self {
            seq: self.seq + 1,
            recovery_next,
            ..*self
        }
    }

    /// Where this slot goes in the file: slots alternate by sequence number.
    #[must_use]
    pub fn offset(&self) -> u64 {
        (self.seq % 2) * MANIFEST_SLOT_STRIDE
    }

    /// The slot's bytes.
    #[must_use]
    pub fn encode(&self) -> [u8; MANIFEST_SLOT_SIZE] {
        let mut b = [0u8; MANIFEST_SLOT_SIZE];
        b[0..8].copy_from_slice(&MANIFEST_MAGIC);
        b[8..10].copy_from_slice(&MANIFEST_VERSION.to_le_bytes());
        b[10..12].copy_from_slice(&self.segment_format_version.to_le_bytes());
        b[16..32].copy_from_slice(&self.log_id.0.to_le_bytes());
        b[32..40].copy_from_slice(&self.created_at_us.to_le_bytes());
        b[40..48].copy_from_slice(&self.seq.to_le_bytes());
        b[48..56].copy_from_slice(&self.recovery_next.to_le_bytes());
        let crc = crc64_nvme(&b[..56]);
        b[56..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and checks a slot.
    pub fn decode(bytes: &[u8]) -> Result<Self, ManifestError> {
        let Some(b) = bytes.get(..MANIFEST_SLOT_SIZE) else {
            return Err(ManifestError::Truncated {
                available: bytes.len(),
            });
        };
        if b[0..8] != MANIFEST_MAGIC {
            return Err(ManifestError::BadMagic);
        }
        let u64_at = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[at..at + 8]);
            u64::from_le_bytes(w)
        };
        let expected = u64_at(56);
        let actual = crc64_nvme(&b[..56]);
        if expected != actual {
            return Err(ManifestError::ChecksumMismatch { expected, actual });
        }
        let version = u16::from_le_bytes([b[8], b[9]]);
        if version != MANIFEST_VERSION {
            return Err(ManifestError::UnsupportedVersion { version });
        }
        let segment_format_version = u16::from_le_bytes([b[10], b[11]]);
        if segment_format_version != SEGMENT_FORMAT_VERSION {
            return Err(ManifestError::UnsupportedSegmentFormat {
                version: segment_format_version,
            });
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&b[16..32]);
        Ok(Self {
            log_id: LogId(u128::from_le_bytes(id)),
            segment_format_version,
            created_at_us: u64_at(32),
            seq: u64_at(40),
            recovery_next: u64_at(48),
        })
    }

    /// The current state of a whole manifest file: the valid slot with the
    /// higher sequence number. When neither slot is valid, the error of the
    /// first slot. A slot of an unsupported version is an error even if the
    /// other is valid: the log was written by a newer build.
    pub fn current(file: &[u8]) -> Result<Self, ManifestError> {
        let first = Self::decode(file);
        let second = file
            .get(MANIFEST_SLOT_STRIDE as usize..)
            .map_or(Err(ManifestError::Truncated { available: 0 }), Self::decode);
        for r in [&first, &second] {
            if let Err(
                e @ (ManifestError::UnsupportedVersion { .. }
                | ManifestError::UnsupportedSegmentFormat { .. }),
            ) = r
            {
                return Err(e.clone());
            }
        }
        match (first, second) {
            (Ok(a), Ok(b)) => Ok(if b.seq > a.seq { b } else { a }),
            (Ok(a), Err(_)) => Ok(a),
            (Err(_), Ok(b)) => Ok(b),
            (Err(e), Err(_)) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn file_with(slots: &[ManifestSlot]) -> Vec<u8> {
        let mut f = vec![0u8; MANIFEST_SLOT_STRIDE as usize + MANIFEST_SLOT_SIZE];
        for s in slots {
            let at = s.offset() as usize;
            f[at..at + MANIFEST_SLOT_SIZE].copy_from_slice(&s.encode());
        }
        f
    }

    #[test]
    fn the_newer_valid_slot_wins_and_a_torn_one_falls_back() {
        let a = ManifestSlot::new(LogId(7), 100);
        let b = a.next(42);
        let c = b.next(99);
        assert_eq!(ManifestSlot::current(&file_with(&[a])), Ok(a));
        assert_eq!(ManifestSlot::current(&file_with(&[a, b])), Ok(b));
        assert_eq!(ManifestSlot::current(&file_with(&[a, b, c])), Ok(c));
        // c overwrote a's place; tear it: b is current again.
        let mut torn = file_with(&[a, b, c]);
        torn[c.offset() as usize + 50] ^= 0xff;
        assert_eq!(ManifestSlot::current(&torn), Ok(b));
        assert!(matches!(
            ManifestSlot::current(&[0u8; 100]),
            Err(ManifestError::BadMagic)
        ));
        assert!(matches!(
            ManifestSlot::current(&[]),
            Err(ManifestError::Truncated { .. })
        ));
    }

    #[test]
    fn a_newer_version_is_refused() {
        let a = ManifestSlot::new(LogId(1), 0);
        let mut f = file_with(&[a]);
        let at = a.offset() as usize;
        f[at + 8] = 2;
        let crc = crc64_nvme(&f[at..at + 56]);
        f[at + 56..at + 64].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            ManifestSlot::current(&f),
            Err(ManifestError::UnsupportedVersion { version: 2 })
        );
    }

    #[test]
    fn log_id_text_is_exactly_32_hex_digits() {
        assert_eq!(format!("{}", LogId(0xab)), format!("{:0>32}", "ab"));
        assert_eq!("0".repeat(31).parse::<LogId>(), Err(InvalidLogId));
        assert_eq!("0".repeat(33).parse::<LogId>(), Err(InvalidLogId));
        assert_eq!(format!("+{}", "0".repeat(31)).parse::<LogId>(), Err(InvalidLogId));
        assert_eq!(format!("{}g", "0".repeat(31)).parse::<LogId>(), Err(InvalidLogId));
        assert_eq!("F".repeat(32).parse::<LogId>(), Ok(LogId(u128::MAX)));
    }

    proptest! {
        #[test]
        fn round_trip(id: u128, created: u64, seq: u64, next: u64) {
            let s = ManifestSlot { log_id: LogId(id), segment_format_version: SEGMENT_FORMAT_VERSION, created_at_us: created, seq, recovery_next: next };
            prop_assert_eq!(ManifestSlot::decode(&s.encode()), Ok(s));
        }

        #[test]
        fn log_id_text_round_trips(id: u128) {
            prop_assert_eq!(LogId(id).to_string().parse::<LogId>(), Ok(LogId(id)));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4200)) {
            let _ = ManifestSlot::current(&bytes);
        }
    }
}
