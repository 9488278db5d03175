//! A process that dies without closing the index or calling `sync` loses no
//! committed write (with `MDBX_SAFE_NOSYNC` the pages are in the page cache),
//! and the file opens cleanly afterwards.

use aof_index_mdbx::MdbxSegmentIndex;
use aof_record::conformance::index::{active, finalized};
use aof_record::index::SegmentIndex;
use std::process::Command;

const PATH_VAR: &str = "AOF_MDBX_CRASH_TEST_PATH";

/// Run only as the child of `committed_writes_survive_a_process_abort`.
#[test]
#[ignore = "the child half of committed_writes_survive_a_process_abort"]
fn child_writes_then_aborts() {
    let Some(path) = std::env::var_os(PATH_VAR) else {
        return;
    };
    let index = MdbxSegmentIndex::open(path).unwrap();
    for i in 0..50 {
        index.add_entry(&finalized(i * 10, i * 10 + 9, i, i + 1)).unwrap();
    }
    index.add_entry(&active(500, None, 60)).unwrap();
    index.update_segment_tail(500, Some(504), 77).unwrap();
    // No sync, no drop: the process dies here.
    std::process::abort();
}

#[test]
fn committed_writes_survive_a_process_abort() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.mdbx");
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writes_then_aborts", "--ignored", "--nocapture"])
        .env(PATH_VAR, &path)
        .status()
        .unwrap();
    assert!(!status.success(), "the child was meant to abort");
    let index = MdbxSegmentIndex::open(&path).unwrap();
    assert_eq!(index.len().unwrap(), 51);
    assert_eq!(index.verify().unwrap(), 51);
    let tail = index.get_entry(500).unwrap().unwrap();
    assert_eq!((tail.last_id, tail.original_size), (504, 77));
    assert_eq!(
        index.find_segment_for_id(249).unwrap().map(|e| e.base_id),
        Some(240)
    );
    index.add_entry(&finalized(600, 609, 0, 1)).unwrap();
}
