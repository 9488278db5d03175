//! Opening foreign, newer and damaged files; `copy_to` refusals; `verify`.

use aof_index_mdbx::{FORMAT_VERSION, MdbxSegmentIndex};
use aof_record::conformance::index::{active, finalized};
use aof_record::index::{IndexError, SegmentIndex};
use libmdbx::{Database, DatabaseOptions, NoWriteMap, WriteFlags};
use std::path::Path;

/// The environment at `path`, opened with plain libmdbx as the index opens it.
fn raw(path: &Path) -> Database<NoWriteMap> {
    Database::open_with_options(
        path,
        DatabaseOptions {
            no_sub_dir: true,
            max_tables: Some(8),
            ..DatabaseOptions::default()
        },
    )
    .unwrap()
}

fn raw_put(path: &Path, table: &str, key: &[u8], value: &[u8]) {
    let env = raw(path);
    let txn = env.begin_rw_txn().unwrap();
    let t = txn.open_table(Some(table)).unwrap();
    txn.put(&t, key, value, WriteFlags::empty()).unwrap();
    txn.commit().unwrap();
    env.sync(true).unwrap();
}

fn raw_get(path: &Path, table: &str, key: &[u8]) -> Option<Vec<u8>> {
    let env = raw(path);
    let txn = env.begin_ro_txn().unwrap();
    let t = txn.open_table(Some(table)).unwrap();
    txn.get(&t, key).unwrap()
}

fn index_with_entries(path: &Path) {
    let index = MdbxSegmentIndex::open(path).unwrap();
    index
        .add_entries(&[
            finalized(0, 9, 1, 2),
            finalized(10, 19, 3, 4),
            active(20, Some(24), 5),
        ])
        .unwrap();
    index.sync().unwrap();
}

#[test]
fn a_garbage_file_is_not_an_index_and_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        ("elf", b"\x7fELF\x02\x01\x01".repeat(1000)),
        ("zeros", vec![0u8; 64 * 1024]),
        ("short", b"hello".to_vec()),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, &bytes).unwrap();
        match MdbxSegmentIndex::open(&p) {
            Err(IndexError::NotAnIndex { path, .. }) => assert_eq!(path, p),
            r => panic!("{name}: opening garbage gave {r:?}"),
        }
        assert_eq!(std::fs::read(&p).unwrap(), bytes, "{name} was modified");
    }
}

#[test]
fn a_directory_is_not_an_index() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        MdbxSegmentIndex::open(dir.path()),
        Err(IndexError::NotAnIndex { .. })
    ));
}

#[test]
fn a_missing_parent_directory_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    assert!(MdbxSegmentIndex::open(dir.path().join("no/such/dir/index.mdbx")).is_err());
}

#[test]
fn a_foreign_mdbx_environment_is_not_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("other.mdbx");
    {
        let env = raw(&p);
        let txn = env.begin_rw_txn().unwrap();
        let t = txn.create_table(Some("users"), Default::default()).unwrap();
        txn.put(&t, b"alice", b"1", WriteFlags::empty()).unwrap();
        txn.commit().unwrap();
        env.sync(true).unwrap();
    }
    let before = std::fs::read(&p).unwrap();
    assert!(matches!(
        MdbxSegmentIndex::open(&p),
        Err(IndexError::NotAnIndex { .. })
    ));
    assert_eq!(std::fs::read(&p).unwrap(), before, "foreign environment modified");
    assert_eq!(raw_get(&p, "users", b"alice").as_deref(), Some(&b"1"[..]));
}

#[test]
fn a_newer_format_is_refused_without_modifying_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("index.mdbx");
    index_with_entries(&p);
    raw_put(&p, "aof.meta", b"version", &(FORMAT_VERSION + 1).to_be_bytes());
    let before = std::fs::read(&p).unwrap();
    match MdbxSegmentIndex::open(&p) {
        Err(IndexError::UnsupportedSchemaVersion { found, supported }) => {
            assert_eq!((found, supported), (FORMAT_VERSION + 1, FORMAT_VERSION));
        }
        r => panic!("newer format gave {r:?}"),
    }
    assert_eq!(std::fs::read(&p).unwrap(), before, "newer file modified");
    // Put back, it opens again with everything in it.
    raw_put(&p, "aof.meta", b"version", &FORMAT_VERSION.to_be_bytes());
    assert_eq!(MdbxSegmentIndex::open(&p).unwrap().len().unwrap(), 3);
}

#[test]
fn a_missing_or_garbled_marker_is_not_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("index.mdbx");
    index_with_entries(&p);
    raw_put(&p, "aof.meta", b"version", b"\x01");
    assert!(matches!(
        MdbxSegmentIndex::open(&p),
        Err(IndexError::NotAnIndex { .. })
    ));
    raw_put(&p, "aof.meta", b"version", &FORMAT_VERSION.to_be_bytes());
    raw_put(&p, "aof.meta", b"format", b"something-else");
    assert!(matches!(
        MdbxSegmentIndex::open(&p),
        Err(IndexError::NotAnIndex { .. })
    ));
}

#[test]
fn corrupt_values_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("index.mdbx");
    index_with_entries(&p);
    let good = raw_get(&p, "aof.entries", &10u64.to_be_bytes()).unwrap();
    for (what, bad) in [
        ("empty", Vec::new()),
        ("truncated", good[..good.len() - 3].to_vec()),
        ("header only", good[..20].to_vec()),
        ("unknown layout", [&[9u8][..], &good[1..]].concat()),
        ("unknown status", [&good[..1], &[77u8][..], &good[2..]].concat()),
        ("trailing bytes", [&good[..], b"xyz"].concat()),
    ] {
        raw_put(&p, "aof.entries", &10u64.to_be_bytes(), &bad);
        let index = MdbxSegmentIndex::open(&p).unwrap();
        let corrupt =
            |r: Result<_, IndexError>| matches!(r, Err(IndexError::CorruptEntry { base_id: 10, .. }));
        assert!(corrupt(index.get_entry(10).map(drop)), "{what}: get_entry");
        assert!(corrupt(index.find_segment_for_id(15).map(drop)), "{what}: find");
        assert!(corrupt(index.get_all_segments().map(drop)), "{what}: all");
        assert!(corrupt(index.verify().map(drop)), "{what}: verify");
        assert!(
            corrupt(index.update_segment_status(10, aof_record::entry::SegmentStatus::ArchivedRemote)),
            "{what}: update"
        );
        // The entries around it are still readable.
        assert_eq!(index.get_entry(0).unwrap(), Some(finalized(0, 9, 1, 2)));
        assert_eq!(
            index.find_segment_for_id(22).unwrap().map(|e| e.base_id),
            Some(20)
        );
        drop(index);
    }
    raw_put(&p, "aof.entries", &10u64.to_be_bytes(), &good);
    let index = MdbxSegmentIndex::open(&p).unwrap();
    assert_eq!(index.verify().unwrap(), 3);
}

/// The log identity is stored as documented (u128 big-endian under
/// `b"log_id"`); a value of another length is `CorruptMetadata` and is never
/// overwritten.
#[test]
fn the_log_identity_is_stored_as_documented_and_damage_is_typed() {
    use aof_record::conformance::index::LOG_ID_A;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("index.mdbx");
    index_with_entries(&p);
    let index = MdbxSegmentIndex::open(&p).unwrap();
    index.set_log_identity(LOG_ID_A).unwrap();
    index.sync().unwrap();
    drop(index);
    assert_eq!(
        raw_get(&p, "aof.meta", b"log_id"),
        Some(LOG_ID_A.0.to_be_bytes().to_vec())
    );
    for bad in [Vec::new(), vec![1u8; 15], vec![1u8; 17]] {
        raw_put(&p, "aof.meta", b"log_id", &bad);
        let index = MdbxSegmentIndex::open(&p).unwrap();
        for result in [index.log_identity().map(drop), index.set_log_identity(LOG_ID_A)] {
            assert!(
                matches!(result, Err(IndexError::CorruptMetadata { .. })),
                "{} bytes gave {result:?}",
                bad.len()
            );
        }
        assert_eq!(index.verify().unwrap(), 3);
        drop(index);
        assert_eq!(
            raw_get(&p, "aof.meta", b"log_id"),
            Some(bad),
            "damage was overwritten"
        );
    }
}

#[test]
fn verify_notices_secondary_tables_that_disagree() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("index.mdbx");
    index_with_entries(&p);
    assert_eq!(MdbxSegmentIndex::open(&p).unwrap().verify().unwrap(), 3);
    // A status row for an entry that is not there.
    let mut stray = vec![2u8];
    stray.extend_from_slice(&99u64.to_be_bytes());
    raw_put(&p, "aof.by_status", &stray, b"");
    match MdbxSegmentIndex::open(&p).unwrap().verify() {
        Err(IndexError::CorruptEntry { base_id: 99, .. }) => {}
        r => panic!("stray status row gave {r:?}"),
    }
    {
        let env = raw(&p);
        let txn = env.begin_rw_txn().unwrap();
        let t = txn.open_table(Some("aof.by_status")).unwrap();
        assert!(txn.del(&t, &stray, None).unwrap());
        // And a time row with a wrong created_at.
        let t = txn.open_table(Some("aof.by_time")).unwrap();
        let mut key = 4u64.to_be_bytes().to_vec();
        key.extend_from_slice(&10u64.to_be_bytes());
        assert_eq!(
            txn.get::<Vec<u8>>(&t, &key).unwrap(),
            Some(3u64.to_be_bytes().to_vec())
        );
        txn.put(&t, &key, 2u64.to_be_bytes(), WriteFlags::empty())
            .unwrap();
        txn.commit().unwrap();
    }
    match MdbxSegmentIndex::open(&p).unwrap().verify() {
        Err(IndexError::CorruptEntry { base_id: 10, .. }) => {}
        r => panic!("wrong time row gave {r:?}"),
    }
}

#[test]
fn failed_writes_leave_every_table_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("index.mdbx");
    index_with_entries(&p);
    let index = MdbxSegmentIndex::open(&p).unwrap();
    let before = index.get_all_segments().unwrap();
    let bad_batch = [finalized(100, 109, 0, 1), finalized(5, 6, 0, 1)];
    assert!(matches!(
        index.add_entries(&bad_batch),
        Err(IndexError::Overlap { .. })
    ));
    assert!(index.update_entry(&finalized(20, 29, 5, 9)).is_ok());
    assert!(matches!(
        index.update_entry(&active(20, Some(29), 5)),
        Err(IndexError::Transition(_))
    ));
    assert!(matches!(
        index.update_segment_tail(20, Some(30), 1),
        Err(IndexError::Transition(_))
    ));
    assert_ne!(index.get_all_segments().unwrap(), before);
    assert_eq!(index.verify().unwrap(), 3);
    assert_eq!(index.get_entry(100).unwrap(), None);
    assert_eq!(index.find_segments_for_timestamp(0, 0).unwrap(), vec![]);
    assert_eq!(
        index
            .get_segments_for_archiving(10)
            .unwrap()
            .iter()
            .map(|e| e.base_id)
            .collect::<Vec<_>>(),
        vec![0, 10, 20]
    );
}

#[test]
fn copy_to_refuses_existing_paths_and_copies_open_with_open() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("index.mdbx");
    index_with_entries(&p);
    let index = MdbxSegmentIndex::open(&p).unwrap();
    let existing = dir.path().join("existing");
    std::fs::write(&existing, b"keep me").unwrap();
    assert!(matches!(index.copy_to(&existing), Err(IndexError::Io { .. })));
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");
    assert!(index.copy_to(dir.path()).is_err(), "copied onto a directory");
    assert!(index.copy_to(&dir.path().join("no/such/dir/copy")).is_err());
    let copy = dir.path().join("copy.mdbx");
    index.copy_to(&copy).unwrap();
    let copied = MdbxSegmentIndex::open(&copy).unwrap();
    assert_eq!(
        copied.get_all_segments().unwrap(),
        index.get_all_segments().unwrap()
    );
    assert_eq!(copied.verify().unwrap(), 3);
}

#[test]
fn time_queries_see_long_segments_and_open_ended_ones() {
    let dir = tempfile::tempdir().unwrap();
    let index = MdbxSegmentIndex::open(dir.path().join("index.mdbx")).unwrap();
    // Short segments, one very long one, one finalized at u64::MAX, one open-ended.
    let mut entries: Vec<_> = (0..20)
        .map(|i| finalized(i * 10, i * 10 + 9, i * 100, i * 100 + 50))
        .collect();
    entries.push(finalized(200, 209, 10, 5000));
    entries.push(finalized(210, 219, 7000, u64::MAX));
    entries.push(active(220, Some(225), 8000));
    index.add_entries(&entries).unwrap();
    let reference = aof_record::index::MemorySegmentIndex::new();
    reference.add_entries(&entries).unwrap();
    for (start, end) in [
        (0, 0),
        (60, 70),
        (4999, 4999),
        (5000, 5000),
        (5001, 6999),
        (7000, 7000),
        (u64::MAX, u64::MAX),
        (1940, 1960),
        (0, u64::MAX),
        (3000, 100),
    ] {
        assert_eq!(
            index.find_segments_for_timestamp(start, end).unwrap(),
            reference.find_segments_for_timestamp(start, end).unwrap(),
            "find_segments_for_timestamp({start}, {end})"
        );
    }
    // Removing the long segment keeps max_span (an upper bound) and the answers.
    index.remove_entry(200).unwrap();
    reference.remove_entry(200).unwrap();
    assert_eq!(
        index.find_segments_for_timestamp(100, 150).unwrap(),
        reference.find_segments_for_timestamp(100, 150).unwrap()
    );
    assert_eq!(index.verify().unwrap(), 22);
}
