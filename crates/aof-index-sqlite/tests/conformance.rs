//! The shared `SegmentIndex` conformance suite, run unchanged on SQLite files.

use aof_index_sqlite::{SegmentIndex, SqliteIndexOptions, SqliteSegmentIndex};
use aof_record::conformance::index;

#[test]
fn passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    index::run_all(&mut || {
        n += 1;
        Box::new(SqliteSegmentIndex::open(dir.path().join(format!("index-{n}.db"))).unwrap())
    });
}

#[test]
fn passes_the_conformance_suite_with_durable_commits_and_one_reader() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteIndexOptions::default()
        .durable_commits(true)
        .readers(1)
        .max_batch(1);
    let mut n = 0;
    index::run_all(&mut || {
        n += 1;
        Box::new(SqliteSegmentIndex::open_with(dir.path().join(format!("index-{n}.db")), &options).unwrap())
    });
}

#[test]
fn reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    index::reopen_keeps_everything(&mut || Box::new(SqliteSegmentIndex::open(&path).unwrap()));
}

#[test]
fn copy_to_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let source = SqliteSegmentIndex::open(dir.path().join("index.db")).unwrap();
    index::copy_to_round_trips(&source, dir.path(), &|p| {
        Box::new(SqliteSegmentIndex::open(p).unwrap()) as Box<dyn SegmentIndex>
    });
}

#[test]
fn copy_index_between_memory_and_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let memory = aof_record::MemorySegmentIndex::new();
    let entries: Vec<_> = (0..20)
        .map(|i| index::finalized(i * 10, i * 10 + 9, i, i + 1))
        .collect();
    memory.add_entries(&entries).unwrap();
    let sqlite = SqliteSegmentIndex::open(dir.path().join("index.db")).unwrap();
    assert_eq!(aof_record::index::copy_index(&memory, &sqlite).unwrap(), 20);
    let back = aof_record::MemorySegmentIndex::new();
    assert_eq!(aof_record::index::copy_index(&sqlite, &back).unwrap(), 20);
    assert_eq!(back.get_all_segments().unwrap(), entries);
}

/// Batches go in as multi-row INSERTs of 32 rows plus single rows for the
/// rest: every field of every row must land in its own place, for batch
/// sizes around the chunk size.
#[test]
fn batched_inserts_keep_every_field() {
    let dir = tempfile::tempdir().unwrap();
    for n in [1u64, 31, 32, 33, 64, 65, 100] {
        let index = SqliteSegmentIndex::open(dir.path().join(format!("batch-{n}.db"))).unwrap();
        let entries: Vec<_> = (0..n)
            .map(|i| {
                let (base, last) = (i * 1000 + (i % 7), i * 1000 + 500 + (i % 5));
                let mut e = match i % 4 {
                    0 => index::archived(base, last),
                    1 => index::archived(base, last)
                        .cache_locally(format!("cache/{i}"))
                        .unwrap(),
                    2 => index::active(base, if i % 8 == 2 { None } else { Some(last) }, i),
                    _ => index::finalized(base, last, i, u64::MAX - i),
                };
                e.original_size = u64::MAX - i * 3;
                if i % 3 == 0 {
                    e.uncompressed_checksum = Some(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
                }
                e
            })
            .collect();
        index.add_entries(&entries).unwrap();
        assert_eq!(index.get_all_segments().unwrap(), entries, "batch of {n}");
    }
}
