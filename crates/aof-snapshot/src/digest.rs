//! The snapshot's SHA-256 digests: one per file, and the overall checksum
//! that binds the metadata to every file's digest.

use crate::chunk::SnapshotMetadata;
use crate::error::{SnapshotError, SnapshotResult};
use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::sync::mpsc;
use std::thread::JoinHandle;

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

/// What the hashing thread is asked.
enum Msg {
    Data(Bytes),
    Finish(mpsc::SyncSender<[u8; 32]>),
}

/// Chunks queued for the hashing thread: memory stays a few chunks.
const QUEUED: usize = 4;

/// The SHA-256 of one file after another, computed on a helper thread
/// while the caller reads, frames or writes the next chunk: an export or
/// import then runs at the pace of the slower of hashing and I/O rather than
/// their sum. Chunks are `Bytes`, handed over without a copy.
#[derive(Debug)]
pub(crate) struct FileHasher {
    tx: Option<mpsc::SyncSender<Msg>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Data(_) => "Data",
            Self::Finish(_) => "Finish",
        })
    }
}

impl FileHasher {
    /// Starts the hashing thread.
    pub(crate) fn start() -> SnapshotResult<Self> {
        let (tx, rx) = mpsc::sync_channel::<Msg>(QUEUED);
        let thread = std::thread::Builder::new()
            .name("aof-snapshot-sha256".into())
            .spawn(move || {
                let mut h = Sha256::new();
                while let Ok(msg) = rx.recv() {
                    match msg {
                        Msg::Data(b) => h.update(&b),
                        Msg::Finish(reply) => {
                            let _ = reply.send(std::mem::take(&mut h).finalize().into());
                        }
                    }
                }
            })
            .map_err(|source| SnapshotError::Thread { source })?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    fn stopped() -> SnapshotError {
        SnapshotError::Thread {
            source: std::io::Error::other("the hashing thread stopped"),
        }
    }

    /// Adds `bytes` to the current file's digest.
    pub(crate) fn update(&self, bytes: Bytes) -> SnapshotResult<()> {
        let tx = self.tx.as_ref().ok_or_else(Self::stopped)?;
        tx.send(Msg::Data(bytes)).map_err(|_| Self::stopped())
    }

    /// The current file's digest; the next update starts the next file.
    pub(crate) fn finish(&self) -> SnapshotResult<[u8; 32]> {
        let tx = self.tx.as_ref().ok_or_else(Self::stopped)?;
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        tx.send(Msg::Finish(reply_tx)).map_err(|_| Self::stopped())?;
        reply_rx.recv().map_err(|_| Self::stopped())
    }
}

impl Drop for FileHasher {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
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
