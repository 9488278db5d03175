//! Reads reuse read transactions; they must still see every write that
//! returned before they started, on any thread.

use aof_index_mdbx::MdbxSegmentIndex;
use aof_record::conformance::index::active;
use aof_record::index::SegmentIndex;
use std::sync::atomic::{AtomicU64, Ordering};

#[test]
fn a_read_sees_every_write_that_returned_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let index = MdbxSegmentIndex::open(dir.path().join("index.mdbx")).unwrap();
    index.add_entry(&active(0, None, 0)).unwrap();
    let acknowledged = AtomicU64::new(0);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                let mut checks = 0u64;
                while !done.load(Ordering::Acquire) || checks == 0 {
                    let floor = acknowledged.load(Ordering::Acquire);
                    let seen = index.get_entry(0).unwrap().unwrap().record_count;
                    assert!(
                        seen >= floor,
                        "read saw {seen} records after {floor} were acknowledged"
                    );
                    let found = index.find_segment_for_id(floor.saturating_sub(1)).unwrap();
                    assert!(floor == 0 || found.is_some(), "id {} not found", floor - 1);
                    checks += 1;
                }
            });
        }
        for n in 1..=300u64 {
            index.update_segment_tail(0, Some(n - 1), n).unwrap();
            acknowledged.store(n, Ordering::Release);
        }
        done.store(true, Ordering::Release);
    });
}

#[test]
fn a_second_handle_on_the_same_file_is_refused_not_corrupting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.mdbx");
    let index = MdbxSegmentIndex::open(&path).unwrap();
    index.add_entry(&active(0, Some(9), 0)).unwrap();
    // The environment is opened exclusively: a second handle (which would
    // not see this one's writes through its pooled snapshots) is an error.
    assert!(MdbxSegmentIndex::open(&path).is_err());
    assert_eq!(index.get_entry(0).unwrap().map(|e| e.last_id), Some(9));
    drop(index);
    assert_eq!(MdbxSegmentIndex::open(&path).unwrap().len().unwrap(), 1);
}

/// Reads keep their read transaction and cursors between calls: after a
/// write, every kind of read (each with its own cached cursor) sees it.
#[test]
fn cached_cursors_see_the_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let index = MdbxSegmentIndex::open(dir.path().join("index.mdbx")).unwrap();
    index.add_entry(&active(0, None, 100)).unwrap();
    // Open every cursor of this thread's cached snapshot.
    assert_eq!(index.find_segment_for_id(5).unwrap(), None);
    assert_eq!(index.get_active_segment().unwrap().map(|e| e.base_id), Some(0));
    assert_eq!(index.get_segments_for_archiving(8).unwrap(), vec![]);
    assert_eq!(index.find_segments_for_timestamp(0, 50).unwrap(), vec![]);
    assert_eq!(index.get_max_last_id().unwrap(), None);

    index.update_segment_tail(0, Some(9), 4096).unwrap();
    assert_eq!(index.find_segment_for_id(5).unwrap().map(|e| e.last_id), Some(9));
    assert_eq!(index.get_max_last_id().unwrap(), Some(9));

    let finalized = index
        .get_entry(0)
        .unwrap()
        .unwrap()
        .finalize(Some(9), 4096, 7, 200)
        .unwrap();
    index.update_entry(&finalized).unwrap();
    assert_eq!(index.get_active_segment().unwrap(), None);
    let archivable: Vec<u64> = index
        .get_segments_for_archiving(8)
        .unwrap()
        .iter()
        .map(|e| e.base_id)
        .collect();
    assert_eq!(archivable, [0]);
    assert_eq!(
        index.find_segments_for_timestamp(150, 150).unwrap(),
        vec![finalized.clone()]
    );
    assert_eq!(index.find_segments_for_timestamp(201, 300).unwrap(), vec![]);

    index.remove_entry(0).unwrap();
    assert_eq!(index.find_segment_for_id(5).unwrap(), None);
    assert_eq!(index.get_segments_for_archiving(8).unwrap(), vec![]);
    assert_eq!(index.find_segments_for_timestamp(150, 150).unwrap(), vec![]);
}

/// More reader threads than cached snapshots (so threads share slots, and
/// some read on a transaction of their own) while a writer appends: every
/// read sees every append acknowledged before it, and answers correctly.
#[test]
fn many_threads_read_while_one_writes() {
    const READERS: usize = 40;
    const APPENDS: u64 = 200;
    let dir = tempfile::tempdir().unwrap();
    let index = MdbxSegmentIndex::open(dir.path().join("index.mdbx")).unwrap();
    let acknowledged = AtomicU64::new(0);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for r in 0..READERS as u64 {
            let (index, acknowledged, done) = (&index, &acknowledged, &done);
            s.spawn(move || {
                let mut reads = 0u64;
                while !done.load(Ordering::Acquire) || reads < 20 {
                    let appended = acknowledged.load(Ordering::Acquire);
                    // Segment k holds ids 10k..10k+9.
                    let id = (r * 7 + reads * 13) % (appended.max(1) * 10);
                    let found = index.find_segment_for_id(id).unwrap();
                    if id / 10 < appended {
                        let e = found.unwrap_or_else(|| panic!("id {id} missing after {appended} appends"));
                        assert_eq!(e.base_id, id / 10 * 10);
                    }
                    assert!(index.len().unwrap() as u64 >= appended);
                    reads += 1;
                }
            });
        }
        for k in 0..APPENDS {
            let base = k * 10;
            index
                .add_entry(&aof_record::conformance::index::finalized(base, base + 9, k, k))
                .unwrap();
            acknowledged.store(k + 1, Ordering::Release);
        }
        done.store(true, Ordering::Release);
    });
    assert_eq!(index.len().unwrap() as u64, APPENDS);
}

/// A thread that read once and then went idle must not keep its old
/// snapshot: libmdbx could not reuse any page freed after it, and the file
/// would grow with every write.
#[test]
fn an_idle_reader_does_not_pin_old_pages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.mdbx");
    let index = MdbxSegmentIndex::open(&path).unwrap();
    for k in 0..200u64 {
        index
            .add_entry(&aof_record::conformance::index::finalized(
                k * 10,
                k * 10 + 9,
                k,
                k,
            ))
            .unwrap();
    }
    index.add_entry(&active(2000, None, 300)).unwrap();
    let before = std::fs::metadata(&path).unwrap().len();
    let (read_once, writes_done) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
    std::thread::scope(|s| {
        s.spawn(|| {
            assert!(index.find_segment_for_id(15).unwrap().is_some());
            read_once.wait();
            writes_done.wait();
            assert_eq!(index.get_entry(2000).unwrap().unwrap().last_id, 2000 + 2999);
        });
        read_once.wait();
        for n in 1..=3000u64 {
            index.update_segment_tail(2000, Some(2000 + n - 1), n).unwrap();
        }
        writes_done.wait();
    });
    let after = std::fs::metadata(&path).unwrap().len();
    assert!(
        after <= before + (2 << 20),
        "the data file grew from {before} to {after} bytes over 3000 small writes"
    );
}
