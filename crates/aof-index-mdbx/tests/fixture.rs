//! The checked-in format-version-1 index, `tests/fixtures/index-v1.mdbx`,
//! must open and read back forever.
//!
//! It was written by `write_the_v1_fixture` below (run it with `--ignored`
//! and `AOF_WRITE_FIXTURES=1` only when adding a new format version's
//! fixture, never to "fix" this one).

use aof_index_mdbx::{FORMAT_VERSION, MdbxSegmentIndex};
use aof_record::conformance::index::{LOG_ID_A, active, archived, finalized};
use aof_record::entry::{SegmentEntry, SegmentStatus};
use aof_record::index::SegmentIndex;
use std::path::PathBuf;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/index-v1.mdbx")
}

/// What the fixture holds: every status, every optional field present and
/// absent, an empty segment, non-ASCII text and the id boundaries.
fn entries() -> Vec<SegmentEntry> {
    let mut cached = archived(100, 199).cache_locally("cache/100.seg").unwrap();
    cached.archive_key = Some("segments/ünïcödé/100.seg.zst".into());
    let mut odd = finalized(200, 299, 2000, 1000);
    odd.uncompressed_checksum = None;
    odd.compressed_size = Some(0);
    vec![
        finalized(0, 0, 0, 0),
        finalized(1, 99, 1, u64::MAX),
        cached,
        odd,
        archived(300, 399),
        SegmentEntry::new_active(400, 4000, ""),
        active(u64::MAX - 9, Some(u64::MAX), u64::MAX),
    ]
}

#[test]
#[ignore = "writes the checked-in fixture"]
fn write_the_v1_fixture() {
    if std::env::var_os("AOF_WRITE_FIXTURES").is_none() {
        return;
    }
    assert_eq!(FORMAT_VERSION, 1, "write a new fixture file for a new version");
    let dir = tempfile::tempdir().unwrap();
    let index = MdbxSegmentIndex::open(dir.path().join("index.mdbx")).unwrap();
    index.add_entries(&entries()).unwrap();
    std::fs::create_dir_all(fixture().parent().unwrap()).unwrap();
    index.copy_to(&fixture()).unwrap();
}

#[test]
fn the_v1_fixture_reads_back() {
    // Opening writes a lock file and may touch the geometry: use a copy.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index-v1.mdbx");
    std::fs::copy(fixture(), &path).unwrap();
    let index = MdbxSegmentIndex::open(&path).unwrap();
    assert_eq!(index.get_all_segments().unwrap(), entries());
    assert_eq!(index.verify().unwrap(), entries().len());
    assert_eq!(
        index.find_segment_for_id(u64::MAX).unwrap().map(|e| e.base_id),
        Some(u64::MAX - 9)
    );
    assert_eq!(index.find_segment_for_id(400).unwrap(), None);
    assert_eq!(
        index.get_active_segment().unwrap().map(|e| e.base_id),
        Some(u64::MAX - 9)
    );
    assert_eq!(
        index.get_latest_finalized_segment().unwrap().map(|e| e.base_id),
        Some(200)
    );
    let times: Vec<u64> = index
        .find_segments_for_timestamp(1000, 2000)
        .unwrap()
        .iter()
        .map(|e| e.base_id)
        .collect();
    assert_eq!(times, vec![1, 200]);
    // And it still takes writes.
    index
        .update_segment_status(300, SegmentStatus::ArchivedCached)
        .unwrap();
    index.add_entry(&finalized(500, 599, 5, 6)).unwrap();
    assert_eq!(index.verify().unwrap(), entries().len() + 1);
    // It was written before log identities: it has none, and takes one.
    assert_eq!(index.log_identity().unwrap(), None);
    index.set_log_identity(LOG_ID_A).unwrap();
    index.sync().unwrap();
    drop(index);
    let index = MdbxSegmentIndex::open(&path).unwrap();
    assert_eq!(index.log_identity().unwrap(), Some(LOG_ID_A));
    assert_eq!(index.verify().unwrap(), entries().len() + 1);
}
