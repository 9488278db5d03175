//! Durability, part 2: each finding of the write-path review as a test that
//! failed on the code before its fix.

use aof_core::testing::FileIndex;
use aof_core::{Aof, AofOptions, FileSystem, LocalFileSystem};
use aof_record::{AofConfig, FlushStrategy};
use std::path::Path;
use std::sync::Arc;

fn open(dir: &Path, config: AofConfig) -> Aof {
    let fs: Arc<dyn FileSystem> = LocalFileSystem::shared();
    let index = FileIndex::open(fs.clone(), dir.join("index.json")).unwrap();
    let mut options = AofOptions::new(config);
    options.fs = fs;
    Aof::open_with(dir, options, Arc::new(index)).unwrap()
}

fn big(i: u64) -> Vec<u8> {
    let mut v = format!("big{i:03}-").into_bytes();
    v.resize(100_000, b'x');
    v
}

/// The reproduction: 50 fsync-acknowledged records of 100 kB, then
/// an open with a segment size (and so a record limit) below their size.
/// Recovery used the opener's `max_record_size`, cut all 50 as a torn tail
/// and reused their ids.
#[test]
fn a_smaller_record_limit_at_open_never_cuts_records_already_written() {
    let dir = tempfile::tempdir().unwrap();
    let sync = AofConfig::builder()
        .flush_strategy(FlushStrategy::Sync)
        .build()
        .unwrap();
    {
        let log = open(dir.path(), sync);
        for i in 0..50 {
            assert_eq!(log.append(&big(i)).unwrap(), i);
        }
        assert_eq!(log.durable_id(), Some(49));
        log.close_blocking().unwrap();
    }
    let small = AofConfig::builder().segment_size(65536).build().unwrap();
    assert!(small.max_record_size() < 100_000);
    let log = open(dir.path(), small);
    assert_eq!(log.performance_metrics().torn_tails_cut(), 0);
    assert_eq!(log.next_id(), 50, "ids of durable records must not be reused");
    for i in 0..50 {
        assert_eq!(log.read(i).unwrap().as_deref(), Some(&big(i)[..]), "record {i}");
    }
    assert_eq!(log.append(b"small").unwrap(), 50);
    let seen: Vec<u64> = log.reader(0).unwrap().map(|r| r.unwrap().id).collect();
    assert_eq!(seen, (0..=50).collect::<Vec<_>>());
}
