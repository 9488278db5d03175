//! `read_entries` beside a writer that keeps committing (and checkpointing
//! its WAL): every read is a state the writer committed, never a torn copy.

use aof_index_sqlite::{SqliteSegmentIndex, read_entries};
use aof_record::conformance::index::finalized;
use aof_record::entry::SegmentEntry;
use aof_record::index::SegmentIndex;
use std::sync::atomic::{AtomicBool, Ordering};

/// The `i`-th entry of a log of finalized segments of 10 ids.
fn entry(i: u64) -> SegmentEntry {
    finalized(i * 10, i * 10 + 9, 1_000 + i, 2_000 + i)
}

#[test]
fn reads_beside_a_committing_writer_see_committed_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.sqlite");
    let index = SqliteSegmentIndex::open(&path).unwrap();
    let done = AtomicBool::new(false);
    let total = 3_000u64;
    std::thread::scope(|s| {
        s.spawn(|| {
            // Single entries and batches, so that the WAL passes its
            // checkpoint size many times.
            let mut i = 0;
            while i < total {
                if i % 7 == 0 {
                    let batch: Vec<_> = (i..(i + 50).min(total)).map(entry).collect();
                    i += batch.len() as u64;
                    index.add_entries(&batch).unwrap();
                } else {
                    index.add_entry(&entry(i)).unwrap();
                    i += 1;
                }
                index.sync().unwrap();
            }
            done.store(true, Ordering::Release);
        });
        let mut reads = 0;
        let mut last = 0;
        while !done.load(Ordering::Acquire) || reads < 3 {
            let read = read_entries(&path).unwrap();
            let expected: Vec<_> = (0..read.len() as u64).map(entry).collect();
            assert_eq!(read, expected, "read {reads}: not a committed prefix");
            assert!(
                read.len() >= last,
                "read {reads} went back: {} < {last}",
                read.len()
            );
            last = read.len();
            reads += 1;
        }
        assert!(reads > 3);
    });
    assert_eq!(read_entries(&path).unwrap().len() as u64, total);
}
