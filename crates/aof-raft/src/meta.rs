//! The store's durable metadata: vote, committed log id, the purge marker,
//! and where Raft indexes sit among the aof record ids. One small file,
//! replaced atomically (temp file, fsync, rename, fsync of the directory)
//! and checksummed, so a crash leaves either the old or the new version.
//! Every file operation goes through an aof-core [`FileSystem`], so crash
//! tests can run it on the fault-injecting one.

use crate::codec;
use crate::error::RaftStoreError;
use aof_core::fs::FileHandleExt;
use aof_core::{FileSystem, OpenMode};
use crc::{CRC_64_NVME, Crc};
use openraft::{LogId, NodeId, Vote};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The metadata file's name inside the store directory.
pub const META_FILE: &str = "raft-meta";
const MAGIC: &[u8; 8] = b"AOFRAFT1";
const HEADER: usize = 16;
/// A metadata file is a few hundred bytes; anything far larger is not ours.
const MAX_META_BYTES: u64 = 1 << 20;
const CRC: Crc<u64> = Crc::<u64>::new(&CRC_64_NVME);

/// What the metadata file holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound = "")]
pub(crate) struct Meta<NID: NodeId> {
    /// The last vote saved.
    pub vote: Option<Vote<NID>>,
    /// The last committed log id saved.
    pub committed: Option<LogId<NID>>,
    /// The greatest purged log id: entries up to it are never read again.
    pub purged: Option<LogId<NID>>,
    /// The aof record id holding Raft index `base_index`; records from it
    /// on hold consecutive indexes.
    pub base_record: u64,
    /// The Raft index at `base_record`.
    pub base_index: u64,
}

impl<NID: NodeId> Meta<NID> {
    /// The metadata of a new store whose first entry will be record `base_record`.
    pub(crate) fn new(base_record: u64) -> Self {
        Self {
            vote: None,
            committed: None,
            purged: None,
            base_record,
            base_index: 0,
        }
    }

    /// Reads the metadata in `dir` on `fs`, `None` if there is none yet.
    pub(crate) fn load(fs: &dyn FileSystem, dir: &Path) -> Result<Option<Self>, RaftStoreError> {
        let path = dir.join(META_FILE);
        let Some(body) = load_framed(fs, &path, MAGIC, MAX_META_BYTES)? else {
            return Ok(None);
        };
        codec::decode(&body)
            .map(Some)
            .map_err(|_| RaftStoreError::BadMeta {
                path,
                reason: "body does not decode",
            })
    }

    /// Replaces the metadata in `dir` on `fs` durably and atomically.
    pub(crate) fn store(&self, fs: &dyn FileSystem, dir: &Path) -> Result<(), RaftStoreError> {
        store_framed(fs, dir, META_FILE, MAGIC, &codec::encode(self)?)
    }
}

/// Reads the file `path` on `fs` written by [`store_framed`] with `magic`
/// and returns its checked body, `None` if there is no such file.
pub(crate) fn load_framed(
    fs: &dyn FileSystem,
    path: &Path,
    magic: &[u8; 8],
    max: u64,
) -> Result<Option<Vec<u8>>, RaftStoreError> {
    let file = match fs.open(path, OpenMode::Read) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(RaftStoreError::io(path, e)),
    };
    let len = file.len().map_err(|e| RaftStoreError::io(path, e))?;
    let bad = |reason| RaftStoreError::BadMeta {
        path: path.to_owned(),
        reason,
    };
    if len > max {
        return Err(bad("larger than any file of this kind"));
    }
    // `len <= max`, a small bound: safe to allocate.
    let bytes = file
        .read_vec_at(len as usize, 0)
        .map_err(|e| RaftStoreError::io(path, e))?;
    if bytes.len() < HEADER || &bytes[..8] != magic {
        return Err(bad("no aof-raft header"));
    }
    let crc = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    if CRC.checksum(&bytes[HEADER..]) != crc {
        return Err(bad("checksum mismatch"));
    }
    Ok(Some(bytes[HEADER..].to_vec()))
}

/// Replaces file `name` in `dir` on `fs` with `magic`, a checksum and
/// `body`, durably and atomically (temp file, fsync, rename, fsync of `dir`).
pub(crate) fn store_framed(
    fs: &dyn FileSystem,
    dir: &Path,
    name: &str,
    magic: &[u8; 8],
    body: &[u8],
) -> Result<(), RaftStoreError> {
    let mut bytes = Vec::with_capacity(HEADER + body.len());
    bytes.extend_from_slice(magic);
    bytes.extend_from_slice(&CRC.checksum(body).to_le_bytes());
    bytes.extend_from_slice(body);
    let temp: PathBuf = dir.join(format!("{name}.tmp"));
    // A temp file left by a crash is garbage: never renamed, so never read.
    match fs.remove_file(&temp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(RaftStoreError::io(&temp, e)),
    }
    let file = fs
        .open(&temp, OpenMode::CreateNew)
        .map_err(|e| RaftStoreError::io(&temp, e))?;
    file.write_all_at(&bytes, 0)
        .map_err(|e| RaftStoreError::io(&temp, e))?;
    file.sync_all().map_err(|e| RaftStoreError::io(&temp, e))?;
    drop(file);
    let path = dir.join(name);
    fs.rename(&temp, &path)
        .map_err(|e| RaftStoreError::io(&path, e))?;
    sync_dir(fs, dir)
}

/// Fsyncs directory `dir` on `fs`, so a rename or a new file in it is durable.
pub(crate) fn sync_dir(fs: &dyn FileSystem, dir: &Path) -> Result<(), RaftStoreError> {
    fs.sync_dir(dir).map_err(|e| RaftStoreError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::CommittedLeaderId;

    #[test]
    fn round_trips_and_refuses_damage() {
        let dir = tempfile::tempdir().unwrap();
        let fs = aof_core::LocalFileSystem::shared();
        let fs = fs.as_ref();
        assert_eq!(Meta::<u64>::load(fs, dir.path()).unwrap(), None);
        let mut meta = Meta::<u64>::new(1);
        meta.vote = Some(Vote::new(3, 7));
        meta.purged = Some(LogId::new(CommittedLeaderId::new(2, 7), 40));
        meta.store(fs, dir.path()).unwrap();
        assert_eq!(Meta::load(fs, dir.path()).unwrap(), Some(meta));

        let path = dir.path().join(META_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            Meta::<u64>::load(fs, dir.path()),
            Err(RaftStoreError::BadMeta {
                reason: "checksum mismatch",
                ..
            })
        ));
    }
}
