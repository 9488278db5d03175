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
