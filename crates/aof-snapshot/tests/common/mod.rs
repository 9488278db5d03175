//! Helpers shared by the snapshot tests: logs on real files with the SQLite
//! index, exports into bytes, record-by-record comparison.

#![allow(dead_code, reason = "each test file uses a subset")]

use aof_core::{Aof, AofOptions};
use aof_index_sqlite::SqliteSegmentIndex;
use aof_record::{AofConfig, FlushStrategy};
use aof_snapshot::wire::FrameWriter;
use aof_snapshot::{ExportOptions, SnapshotChunk};
use std::path::Path;
use std::sync::Arc;

pub fn config(segment_size: u64) -> AofConfig {
    AofConfig::builder()
        .segment_size(segment_size)
        .flush_strategy(FlushStrategy::Batched(64))
        .build()
        .unwrap()
}

/// Opens (creating) the log in `dir` with its SQLite index inside.
pub fn open(dir: &Path, segment_size: u64, rebuild: bool) -> Aof {
    std::fs::create_dir_all(dir).unwrap();
    let index = SqliteSegmentIndex::open(dir.join("index.sqlite")).unwrap();
    let mut options = AofOptions::new(config(segment_size));
    options.rebuild_index = rebuild;
    Aof::open_with(dir, options, Arc::new(index)).unwrap()
}

pub fn payload(i: u64) -> Vec<u8> {
    let len = ((i * 7919) % 900) as usize;
    (0..len).map(|j| (i as usize * 31 + j) as u8).collect()
}

/// A log of `n` records in `dir`, flushed.
pub fn filled(dir: &Path, n: u64, segment_size: u64) -> Aof {
    let log = open(dir, segment_size, false);
    for i in 0..n {
        log.append(&payload(i)).unwrap();
    }
    log.flush_blocking().unwrap();
    log
}

pub fn chunks(log: &Aof, chunk_size: usize) -> Vec<SnapshotChunk> {
    aof_snapshot::export(log, ExportOptions::new().chunk_size(chunk_size).unwrap())
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

pub fn encode(chunks: &[SnapshotChunk]) -> Vec<u8> {
    let mut w = FrameWriter::new(Vec::new());
    for c in chunks {
        w.write_chunk(c).unwrap();
    }
    w.finish().unwrap()
}

/// Every record of `copy` equals the source's, ids `first..=last`, and
/// `copy` holds nothing else.
pub fn assert_same_records(source: &Aof, copy: &Aof, first: u64, last: Option<u64>) {
    let Some(last) = last else {
        assert_eq!(copy.durable_id().filter(|l| *l >= copy.first_id()), None);
        return;
    };
    assert_eq!(copy.first_id(), first);
    assert_eq!(copy.durable_id(), Some(last));
    let mut reader = copy.reader(first).unwrap();
    for id in first..=last {
        let r = reader.next().expect("record").unwrap();
        assert_eq!(r.id, id);
        let want = source.read(id).unwrap().expect("source record");
        assert_eq!(r.payload, want, "record {id}");
    }
    assert!(reader.next().is_none());
    assert_eq!(copy.read(last + 1).unwrap(), None);
}
