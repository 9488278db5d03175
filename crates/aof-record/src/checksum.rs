//! CRC-64/NVME checksums and the 32-bit fold stored in record headers.

use crc_fast::{CrcAlgorithm, Digest};

/// CRC-64/NVME of `bytes`, hardware-accelerated where the CPU allows.
///
/// This is the checksum used for segment contents, segment headers and
/// snapshot chunks. `crc64_nvme(b"123456789") == 0xae8b_1486_0a79_9888`.
#[inline]
#[must_use]
pub fn crc64_nvme(bytes: &[u8]) -> u64 {
    crc_fast::crc64_nvme(bytes)
}

/// Folds a 64-bit CRC into the 32 bits a record header stores:
/// `(c >> 32) ^ (c & 0xFFFF_FFFF)`.
#[inline]
#[must_use]
pub const fn fold(crc: u64) -> u32 {
    ((crc >> 32) ^ (crc & 0xFFFF_FFFF)) as u32
}

/// An incremental CRC-64/NVME computation over data that arrives in pieces.
///
/// Feeding the pieces of a byte string in order gives the same value as
/// [`crc64_nvme`] over the whole string.
#[derive(Clone)]
pub struct Crc64 {
    digest: Digest,
}

impl Crc64 {
    /// Starts an empty computation.
    #[must_use]
    pub fn new() -> Self {
        Self {
            digest: Digest::new(CrcAlgorithm::Crc64Nvme),
        }
    }

    /// Folds the next piece of data in.
    #[inline]
    pub fn update(&mut self, bytes: &[u8]) {
        self.digest.update(bytes);
    }

    /// The CRC-64/NVME of everything fed so far.
    #[must_use]
    pub fn finish(&self) -> u64 {
        self.digest.finalize()
    }
}

impl Default for Crc64 {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Crc64 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Crc64").field("value", &self.finish()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORACLE: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_NVME);

    #[test]
    fn check_value_matches_the_catalogue() {
        assert_eq!(crc64_nvme(b"123456789"), 0xae8b_1486_0a79_9888);
        assert_eq!(ORACLE.checksum(b"123456789"), 0xae8b_1486_0a79_9888);
    }

    #[test]
    fn fold_mixes_both_halves() {
        assert_eq!(fold(0xFFFF_FFFF_0000_0000), 0xFFFF_FFFF);
        assert_eq!(fold(0x0000_0000_FFFF_FFFF), 0xFFFF_FFFF);
        assert_eq!(fold(0xFFFF_FFFF_FFFF_FFFF), 0);
        assert_eq!(fold(0x1234_5678_0000_0001), 0x1234_5679);
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_the_crc_crate(data in proptest::collection::vec(proptest::num::u8::ANY, 0..4096), split in 0usize..4096) {
            let expected = ORACLE.checksum(&data);
            proptest::prop_assert_eq!(crc64_nvme(&data), expected);
            let split = split.min(data.len());
            let mut inc = Crc64::new();
            inc.update(&data[..split]);
            inc.update(&data[split..]);
            proptest::prop_assert_eq!(inc.finish(), expected);
        }
    }
}
