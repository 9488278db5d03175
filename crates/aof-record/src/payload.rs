//! The stored forms of a record's payload when its header flags say it is
//! compressed (bit 0) or encrypted (bit 1): their layouts and the
//! associated data that binds an encrypted payload to its header.
//!
//! Compression happens first, then encryption; reading undoes them in the
//! other order. The record checksum always covers the stored bytes, so a
//! damaged payload is caught before any decoder sees it.
//!
//! **Compressed** (flag bit 0 only):
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | original (decompressed) size: u32 LE, at most [`crate::FORMAT_MAX_RECORD_SIZE`] |
//! | 4.. | one zstd frame |
//!
//! **Encrypted** (flag bit 1; with bit 0 the plaintext is the compressed form above):
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | key id: u32 LE, names the key in the reader's key ring |
//! | 4..28 | nonce: 24 random bytes (XChaCha20-Poly1305) |
//! | 28..len-16 | ciphertext, as long as the plaintext |
//! | len-16..len | Poly1305 tag |
//!
//! The associated data is [`associated_data`] of the record header: version,
//! flags, stored size, id and timestamp, so a record cannot be moved to
//! another id or time, nor its flags changed, without failing
//! authentication.

use crate::record::RecordHeader;
use thiserror::Error;

/// Bytes before the zstd frame of a compressed payload.
pub const COMPRESSED_PREFIX: usize = 4;
/// Bytes of the key id of an encrypted payload.
pub const KEY_ID_SIZE: usize = 4;
/// Bytes of the nonce of an encrypted payload (XChaCha20's 192 bits).
pub const NONCE_SIZE: usize = 24;
/// Bytes of the authentication tag of an encrypted payload (Poly1305).
pub const TAG_SIZE: usize = 16;
/// Bytes an encrypted payload adds to its plaintext.
pub const ENCRYPTION_OVERHEAD: usize = KEY_ID_SIZE + NONCE_SIZE + TAG_SIZE;
/// Bytes of the associated data of an encrypted payload.
pub const ASSOCIATED_DATA_SIZE: usize = 22;

/// Why a stored payload could not be turned back into the original bytes.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PayloadError {
    /// The payload is shorter than its layout's fixed part.
    #[error("a {layout} payload of {len} bytes is shorter than its {needed}-byte fixed part")]
    Truncated {
        /// Which layout.
        layout: &'static str,
        /// Its length.
        len: u64,
        /// The least it could be.
        needed: u64,
    },
    /// A compressed payload declares more than the format allows.
    #[error("a compressed payload declares {declared} bytes, more than the limit of {limit}")]
    DecompressedTooLarge {
        /// The declared size.
        declared: u64,
        /// The limit.
        limit: u64,
    },
    /// Decompression gave another size than declared.
    #[error("a compressed payload declares {declared} bytes but decompresses to {actual}{}", if *.more { " or more" } else { "" })]
    DecompressedSizeMismatch {
        /// The declared size.
        declared: u64,
        /// What decompression gave (where it stopped, when `more`).
        actual: u64,
        /// Decompression had more to give than declared.
        more: bool,
    },
    /// The zstd frame is invalid.
    #[error("a compressed payload does not decompress: {reason}")]
    Decompress {
        /// What zstd said.
        reason: String,
    },
    /// The record is encrypted but no key ring was given at open.
    #[error("the record is encrypted with key {key_id} but the log was opened without keys")]
    NoKeys {
        /// The key id the record names.
        key_id: u32,
    },
    /// The key ring has no key with the record's key id.
    #[error("the record is encrypted with key {key_id}, which the key ring does not hold")]
    UnknownKey {
        /// The key id the record names.
        key_id: u32,
    },
    /// Authentication failed: the wrong key under this id, or the record
    /// (payload or header) was altered or moved.
    #[error(
        "the record does not authenticate under key {key_id}: a wrong key, or the record was altered or moved"
    )]
    Authentication {
        /// The key id the record names.
        key_id: u32,
    },
}

/// A compressed payload's parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressedParts<'a> {
    /// The declared original size.
    pub original_size: u32,
    /// The zstd frame.
    pub frame: &'a [u8],
}

/// Splits a compressed payload; checks the declared size against `limit`.
pub fn parse_compressed(stored: &[u8], limit: u32) -> Result<CompressedParts<'_>, PayloadError> {
    let Some((size, frame)) = stored.split_first_chunk::<COMPRESSED_PREFIX>() else {
        return Err(PayloadError::Truncated {
            layout: "compressed",
            len: stored.len() as u64,
            needed: COMPRESSED_PREFIX as u64,
        });
    };
    let original_size = u32::from_le_bytes(*size);
    if original_size > limit {
        return Err(PayloadError::DecompressedTooLarge {
            declared: u64::from(original_size),
            limit: u64::from(limit),
        });
    }
    Ok(CompressedParts { original_size, frame })
}

/// An encrypted payload's parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncryptedParts<'a> {
    /// The key id.
    pub key_id: u32,
    /// The nonce.
    pub nonce: &'a [u8; NONCE_SIZE],
    /// The ciphertext.
    pub ciphertext: &'a [u8],
    /// The tag.
    pub tag: &'a [u8; TAG_SIZE],
}

/// Splits an encrypted payload.
pub fn parse_encrypted(stored: &[u8]) -> Result<EncryptedParts<'_>, PayloadError> {
    let truncated = || PayloadError::Truncated {
        layout: "encrypted",
        len: stored.len() as u64,
        needed: ENCRYPTION_OVERHEAD as u64,
    };
    let (key_id, rest) = stored.split_first_chunk::<KEY_ID_SIZE>().ok_or_else(truncated)?;
    let (nonce, rest) = rest.split_first_chunk::<NONCE_SIZE>().ok_or_else(truncated)?;
    let (ciphertext, tag) = rest.split_last_chunk::<TAG_SIZE>().ok_or_else(truncated)?;
    Ok(EncryptedParts {
        key_id: u32::from_le_bytes(*key_id),
        nonce,
        ciphertext,
        tag,
    })
}

/// The associated data that binds an encrypted payload to its record:
/// version (1 byte), flags (1), stored size (u32 LE), id (u64 LE) and
/// timestamp (u64 LE) of `header`. The checksum is left out: it is computed
/// over the ciphertext afterwards.
#[must_use]
pub fn associated_data(header: &RecordHeader) -> [u8; ASSOCIATED_DATA_SIZE] {
    let mut out = [0u8; ASSOCIATED_DATA_SIZE];
    out[0] = header.version;
    out[1] = header.flags.bits();
    out[2..6].copy_from_slice(&header.size.to_le_bytes());
    out[6..14].copy_from_slice(&header.id.to_le_bytes());
    out[14..22].copy_from_slice(&header.timestamp_us.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{RECORD_FORMAT_VERSION, RecordFlags};

    #[test]
    fn short_payloads_are_typed_errors() {
        for len in 0..COMPRESSED_PREFIX {
            assert!(matches!(
                parse_compressed(&vec![0; len], 100),
                Err(PayloadError::Truncated { .. })
            ));
        }
        for len in 0..ENCRYPTION_OVERHEAD {
            assert!(matches!(
                parse_encrypted(&vec![0; len]),
                Err(PayloadError::Truncated { .. })
            ));
        }
        let p = parse_encrypted(&[7u8; ENCRYPTION_OVERHEAD]).unwrap();
        assert!(p.ciphertext.is_empty());
        assert_eq!(p.key_id, u32::from_le_bytes([7; 4]));
    }

    #[test]
    fn a_declared_size_over_the_limit_is_refused() {
        let mut v = 101u32.to_le_bytes().to_vec();
        v.push(0);
        assert_eq!(
            parse_compressed(&v, 100),
            Err(PayloadError::DecompressedTooLarge {
                declared: 101,
                limit: 100
            })
        );
        assert_eq!(parse_compressed(&v, 101).unwrap().original_size, 101);
    }

    #[test]
    fn associated_data_covers_every_header_field_but_the_checksum() {
        let h = RecordHeader {
            checksum: 1,
            size: 0x0102_0304,
            id: 0x1112_1314_1516_1718,
            timestamp_us: 0x2122_2324_2526_2728,
            version: RECORD_FORMAT_VERSION,
            flags: RecordFlags::ENCRYPTED,
        };
        let base = associated_data(&h);
        for changed in [
            RecordHeader { checksum: 2, ..h },
            RecordHeader { size: 5, ..h },
            RecordHeader { id: 5, ..h },
            RecordHeader { timestamp_us: 5, ..h },
            RecordHeader {
                flags: RecordFlags::KNOWN,
                ..h
            },
        ] {
            assert_eq!(associated_data(&changed) == base, changed.checksum != h.checksum);
        }
    }
}
