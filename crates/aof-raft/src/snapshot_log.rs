//! Key-value snapshots carried as aof-snapshot chunks: the pairs are written
//! to a fresh aof log, one record each, which is exported as framed,
//! checksummed chunks (CRC per frame, SHA-256 per file and overall); the
//! receiver imports the chunks (verified, staged, installed by one rename),
//! checks the imported log against the snapshot's metadata and reads the
//! pairs back.

use crate::codec;
use crate::error::RaftStoreError;
use aof_core::{Aof, AofOptions};
use aof_record::{AofConfig, FlushStrategy, MemorySegmentIndex};
use aof_snapshot::wire::FrameWriter;
use aof_snapshot::{ExportOptions, ImportOptions};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// Pairs per append batch while building.
const BATCH: usize = 1024;

fn config() -> Result<AofConfig, RaftStoreError> {
    Ok(AofConfig::builder()
        .flush_strategy(FlushStrategy::Async)
        .build()?)
}

fn remove_dir(dir: &Path) -> Result<(), RaftStoreError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RaftStoreError::io(dir, e)),
    }
}

/// Encodes `data` as the framed chunks of an aof snapshot, using `work`
/// (created, then removed) for the log it exports.
pub(crate) fn encode(data: &BTreeMap<String, String>, work: &Path) -> Result<Vec<u8>, RaftStoreError> {
    remove_dir(work)?;
    let result = (|| {
        let log = Aof::open(work, config()?, Arc::new(MemorySegmentIndex::new()))?;
        let pairs: Vec<Vec<u8>> = data
            .iter()
            .map(|pair| codec::encode(&pair))
            .collect::<Result<_, _>>()?;
        for batch in pairs.chunks(BATCH) {
            log.append_batch(batch)?;
        }
        log.flush_blocking()?;
        let mut out = FrameWriter::new(Vec::new());
        for chunk in aof_snapshot::export(&log, ExportOptions::new())? {
            out.write_chunk(&chunk?)?;
        }
        let bytes = out.finish()?;
        log.close_blocking()?;
        Ok(bytes)
    })();
    remove_dir(work)?;
    result
}

/// Decodes the framed chunks `bytes` (from [`encode`]), verifying each
/// chunk and the imported log, using `work` (removed afterwards) as the
/// import target.
pub(crate) fn decode(bytes: &[u8], work: &Path) -> Result<BTreeMap<String, String>, RaftStoreError> {
    remove_dir(work)?;
    let result = (|| {
        let imported = aof_snapshot::import_from(bytes, work, &ImportOptions::new(), &mut |_, _| {})?;
        let mut options = AofOptions::new(config()?);
        options.rebuild_index = true;
        let log = Aof::open_with(work, options, Arc::new(MemorySegmentIndex::new()))?;
        imported.check(&log)?;
        let mut data = BTreeMap::new();
        let mut reader = log.reader(log.first_id())?;
        while let Some(record) = reader.try_next()? {
            let (key, value): (String, String) =
                codec::decode(&record.payload).map_err(RaftStoreError::BadSnapshot)?;
            data.insert(key, value);
        }
        drop(reader);
        log.close_blocking()?;
        Ok(data)
    })();
    remove_dir(work)?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_a_damaged_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let data: BTreeMap<String, String> = (0..3000).map(|i| (format!("k{i}"), format!("v{i}"))).collect();
        let bytes = encode(&data, &dir.path().join("build")).unwrap();
        assert!(!dir.path().join("build").exists());
        assert_eq!(decode(&bytes, &dir.path().join("install")).unwrap(), data);
        assert!(!dir.path().join("install").exists());

        let empty = encode(&BTreeMap::new(), &dir.path().join("build")).unwrap();
        assert!(decode(&empty, &dir.path().join("install")).unwrap().is_empty());

        let mut damaged = bytes.clone();
        let middle = damaged.len() / 2;
        damaged[middle] ^= 0x10;
        assert!(matches!(
            decode(&damaged, &dir.path().join("install")),
            Err(RaftStoreError::Snapshot(_))
        ));
    }
}
