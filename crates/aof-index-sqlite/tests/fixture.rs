//! The checked-in index files of every schema version,
//! `tests/fixtures/index-v<N>.sqlite`, must open, migrate and read back
//! forever.
//!
//! Each was written by `write_the_fixture` below with the code of its
//! version (run it with `--ignored` and `AOF_WRITE_FIXTURES=1` only when
//! adding a new schema version's fixture, never to "fix" an old one).

use aof_index_sqlite::{SCHEMA_VERSION, SqliteSegmentIndex};
use aof_record::conformance::index::{active, archived, finalized};
use aof_record::entry::SegmentEntry;
use aof_record::index::SegmentIndex;
use std::path::PathBuf;

fn fixture(version: u64) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/index-v{version}.sqlite"))
}

/// What every fixture holds: every status, every optional field present and
/// absent, an empty segment, non-ASCII text, the id boundaries, and time
/// spans that run backwards, overlap, and reach `u64::MAX`.
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
        finalized(500, 599, 5000, 5999),
        finalized(600, 699, 5500, 7000),
        active(u64::MAX - 9, Some(u64::MAX), u64::MAX),
    ]
}

#[test]
#[ignore = "writes the checked-in fixture of the current schema version"]
fn write_the_fixture() {
    if std::env::var_os("AOF_WRITE_FIXTURES").is_none() {
        return;
    }
    let path = fixture(SCHEMA_VERSION);
    assert!(!path.exists(), "a fixture is never rewritten: {}", path.display());
    let dir = tempfile::tempdir().unwrap();
    let index = SqliteSegmentIndex::open(dir.path().join("index.sqlite")).unwrap();
    index.add_entries(&entries()).unwrap();
    index.sync().unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    index.copy_to(&path).unwrap();
}
