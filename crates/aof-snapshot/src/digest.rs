//! The snapshot's SHA-256 digests: one per file, and the overall checksum
//! that binds the metadata to every file's digest.

use crate::chunk::SnapshotMetadata;
use crate::error::SnapshotResult;
use sha2::{Digest as _, Sha256};
use std::fmt;

/// Domain separation of the overall checksum.
const CHECKSUM_DOMAIN: &[u8] = b"aof-snapshot checksum v1\0";

/// A SHA-256 digest, shown in hexadecimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digest(pub [u8; 32]);

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// The incremental SHA-256 of one file.
#[derive(Debug, Clone, Default)]
pub(crate) struct FileHasher(Sha256);

impl FileHasher {
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub(crate) fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

/// The checksum of a whole snapshot: SHA-256 over a domain string, the
/// metadata's canonical encoding (bincode 2, the wire's configuration),
/// and each file's SHA-256 in the metadata's order. Every byte of the
/// snapshot is covered (through its file's digest) without hashing the data
/// twice.
/// Fails only if the metadata cannot be encoded.
pub fn snapshot_checksum(metadata: &SnapshotMetadata, file_digests: &[[u8; 32]]) -> SnapshotResult<[u8; 32]> {
    let mut h = Sha256::new();
    h.update(CHECKSUM_DOMAIN);
    let encoded = crate::wire::encode_metadata(metadata)?;
    h.update((encoded.len() as u64).to_le_bytes());
    h.update(&encoded);
    for d in file_digests {
        h.update(d);
    }
    Ok(h.finalize().into())
}
