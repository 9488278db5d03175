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

/// The columns of `segments` through `PRAGMA table_info`, in table order.
fn columns(path: &std::path::Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT name FROM pragma_table_info('segments') ORDER BY cid")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// `metadata`'s `schema_version`, and the schema's SQL in a stable order.
fn version_and_schema(path: &std::path::Path) -> (String, Vec<String>) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let version = conn
        .query_row(
            "SELECT value FROM metadata WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let mut stmt = conn
        .prepare("SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY name")
        .unwrap();
    let schema = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    (version, schema)
}

/// Opens a copy of the fixture of `version` (opening migrates and writes);
/// checks it holds [`entries`] and answers like the in-memory reference.
fn open_copy(version: u64, dir: &std::path::Path) -> (SqliteSegmentIndex, PathBuf) {
    let path = dir.join(format!("index-v{version}.sqlite"));
    std::fs::copy(fixture(version), &path).unwrap();
    let index = SqliteSegmentIndex::open(&path).unwrap();
    assert_eq!(index.get_all_segments().unwrap(), entries(), "v{version}");
    let reference = aof_record::index::MemorySegmentIndex::new();
    reference.add_entries(&entries()).unwrap();
    let edges = [
        0,
        1,
        999,
        1000,
        1001,
        2000,
        4000,
        5000,
        5999,
        6000,
        7000,
        7001,
        u64::MAX,
    ];
    for &start in &edges {
        for &end in edges.iter().filter(|&&e| e >= start) {
            assert_eq!(
                index.find_segments_for_timestamp(start, end).unwrap(),
                reference.find_segments_for_timestamp(start, end).unwrap(),
                "v{version}: find_segments_for_timestamp({start}, {end})"
            );
        }
    }
    (index, path)
}

#[test]
fn the_v1_fixture_migrates_to_the_current_schema() {
    let dir = tempfile::tempdir().unwrap();
    // The file as checked in is version 1, in version 1's column order.
    let original = dir.path().join("original.sqlite");
    std::fs::copy(fixture(1), &original).unwrap();
    assert_eq!(version_and_schema(&original).0, "1");
    assert_eq!(columns(&original)[6], "status");

    let (index, path) = open_copy(1, dir.path());
    assert_eq!(index.health_check().unwrap().schema_version, SCHEMA_VERSION);
    // It still takes writes, and keeps them across a reopen.
    index.add_entry(&finalized(700, 799, 8000, 8999)).unwrap();
    index.sync().unwrap();
    drop(index);
    assert_eq!(
        columns(&path),
        aof_index_sqlite::SEGMENT_COLUMNS.map(String::from).to_vec(),
        "the migration did not restore the design's column order"
    );
    // The migrated file has exactly the schema a new file gets.
    let fresh = dir.path().join("fresh.sqlite");
    drop(SqliteSegmentIndex::open(&fresh).unwrap());
    assert_eq!(version_and_schema(&path), version_and_schema(&fresh));
    assert_eq!(version_and_schema(&path).0, SCHEMA_VERSION.to_string());
    let index = SqliteSegmentIndex::open(&path).unwrap();
    assert_eq!(index.len().unwrap(), entries().len() + 1);
    assert!(index.health_check().unwrap().integrity.is_ok());
}

#[test]
fn the_v2_fixture_reads_back_unchanged_in_version() {
    let dir = tempfile::tempdir().unwrap();
    let (index, path) = open_copy(2, dir.path());
    index.add_entry(&finalized(700, 799, 8000, 8999)).unwrap();
    index.sync().unwrap();
    drop(index);
    assert_eq!(version_and_schema(&path).0, "2");
    assert_eq!(
        columns(&path),
        aof_index_sqlite::SEGMENT_COLUMNS.map(String::from).to_vec()
    );
}

/// A read-only reader (`read_entries`, as `aof` opens a log read-only)
/// reads every fixture as it is, migrating nothing and changing no byte.
#[test]
fn read_entries_reads_every_fixture_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    for version in 1..=SCHEMA_VERSION {
        let path = dir.path().join(format!("ro-v{version}.sqlite"));
        std::fs::copy(fixture(version), &path).unwrap();
        let before = std::fs::read(&path).unwrap();
        assert_eq!(
            aof_index_sqlite::read_entries(&path).unwrap(),
            entries(),
            "v{version}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), before, "v{version} was changed");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            usize::try_from(version).unwrap(),
            "v{version}: files were left beside the index"
        );
    }
}
