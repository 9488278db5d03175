//! Opening files that are not (current) indexes: each is a typed error, no
//! panic, and the file is left byte for byte as it was.

use aof_index_sqlite::{IndexError, SegmentIndex, SqliteIndexError, SqliteSegmentIndex};
use aof_record::conformance::index::{active, archived, finalized};
use rusqlite::Connection;
use std::path::{Path, PathBuf};

fn wal(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push("-wal");
    PathBuf::from(s)
}

/// An index with a few hundred entries, closed cleanly.
fn make_index(path: &Path) {
    let index = SqliteSegmentIndex::open(path).unwrap();
    let entries: Vec<_> = (0..400u64)
        .map(|i| finalized(i * 100, i * 100 + 99, i, i + 1))
        .collect();
    index.add_entries(&entries).unwrap();
    index.sync().unwrap();
    drop(index);
    assert!(!wal(path).exists(), "closing left a WAL behind");
}

/// Opens `path`, expecting a refusal, and checks the file did not change.
fn refused(path: &Path) -> IndexError {
    let before = std::fs::read(path).unwrap();
    let err = SqliteSegmentIndex::open(path).expect_err("a bad file was opened");
    assert_eq!(
        std::fs::read(path).unwrap(),
        before,
        "a refused file was modified ({err})"
    );
    assert!(!wal(path).exists(), "a refused file got a WAL ({err})");
    err
}

fn backend(err: &IndexError) -> &SqliteIndexError {
    match err {
        IndexError::Backend {
            backend: "sqlite",
            source,
        } => source
            .downcast_ref::<SqliteIndexError>()
            .unwrap_or_else(|| panic!("not a SqliteIndexError: {source:?}")),
        other => panic!("expected a sqlite backend error, got {other:?}"),
    }
}

#[test]
fn a_newer_schema_version_is_refused_and_not_modified() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    make_index(&path);
    let conn = Connection::open(&path).unwrap();
    conn.execute("UPDATE metadata SET value = '3' WHERE key = 'schema_version'", [])
        .unwrap();
    // Version 3 might have changed the table too: it must not matter.
    conn.execute_batch("ALTER TABLE segments ADD COLUMN future TEXT")
        .unwrap();
    conn.close().unwrap();
    match refused(&path) {
        IndexError::UnsupportedSchemaVersion {
            found: 3,
            supported: 2,
        } => {}
        e => panic!("newer schema gave {e:?}"),
    }
    assert!(!wal(&path).exists());
}

#[test]
fn a_file_that_is_not_sqlite_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in [
        (
            "text",
            b"hello, this is a text file and not a database at all\n".repeat(200),
        ),
        ("elf", b"\x7fELF\x02\x01\x01".to_vec()),
        ("short", b"SQLite".to_vec()),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        match refused(&path) {
            IndexError::NotAnIndex { path: p, reason } => {
                assert_eq!(p, path);
                assert_eq!(reason, "not a SQLite database");
            }
            e => panic!("{name} gave {e:?}"),
        }
        assert!(!wal(&path).exists());
    }
}

#[test]
fn a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        SqliteSegmentIndex::open(dir.path()),
        Err(IndexError::NotAnIndex { .. })
    ));
}

#[test]
fn a_truncated_index_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    make_index(&path);
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len > 8192, "index too small to truncate meaningfully: {len}");
    for keep in [len / 2, 4096, 50] {
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(keep).unwrap();
        drop(file);
        let err = refused(&path);
        match backend(&err) {
            SqliteIndexError::Truncated {
                actual_len,
                expected_len,
                ..
            } => {
                assert_eq!(*actual_len, keep);
                assert!(*expected_len > keep);
            }
            e => panic!("truncated to {keep} gave {e:?}"),
        }
    }
}

#[test]
fn a_corrupted_index_is_a_typed_error_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    make_index(&path);
    // Garbage over the schema page (after the 100-byte file header).
    let mut bytes = std::fs::read(&path).unwrap();
    for (i, b) in bytes[100..4096].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(151).wrapping_add(7);
    }
    std::fs::write(&path, &bytes).unwrap();
    let err = refused(&path);
    match backend(&err) {
        SqliteIndexError::Corrupt { path: p, source } => {
            assert_eq!(p, &path);
            assert_eq!(
                source.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseCorrupt)
            );
        }
        e => panic!("corrupt schema page gave {e:?}"),
    }
}

#[test]
fn a_corrupted_table_page_fails_queries_with_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    make_index(&path);
    let root: i64 = Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT rootpage FROM sqlite_schema WHERE name = 'segments'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let page_size = 4096;
    let mut bytes = std::fs::read(&path).unwrap();
    let at = usize::try_from(root - 1).unwrap() * page_size;
    bytes[at..at + page_size].fill(0xa5);
    std::fs::write(&path, &bytes).unwrap();
    // The schema itself is intact, so the file opens; what reads the broken
    // page fails with SQLite's corruption error, and the health check says so.
    let index = SqliteSegmentIndex::open(&path).unwrap();
    let err = index.get_all_segments().expect_err("read a corrupt table");
    match backend(&err) {
        SqliteIndexError::Sqlite(e) => {
            assert_eq!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseCorrupt),
                "{e}"
            );
        }
        e => panic!("corrupt page gave {e:?}"),
    }
    match index.health_check() {
        Ok(report) => assert!(!report.integrity.is_ok(), "{report:?}"),
        Err(e) => assert!(matches!(e, IndexError::Backend { .. }), "{e:?}"),
    }
}

#[test]
fn a_database_of_another_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "app",
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users VALUES (1, 'a');",
        ),
        (
            "no-version",
            "CREATE TABLE metadata (key TEXT PRIMARY KEY, value TEXT NOT NULL); \
             INSERT INTO metadata VALUES ('owner', 'someone else');",
        ),
        ("other-metadata", "CREATE TABLE metadata (k INTEGER, v BLOB);"),
        (
            "bad-version",
            "CREATE TABLE metadata (key TEXT PRIMARY KEY, value TEXT NOT NULL); \
             INSERT INTO metadata VALUES ('schema_version', 'one');",
        ),
        (
            "other-segments",
            "CREATE TABLE metadata (key TEXT PRIMARY KEY, value TEXT NOT NULL); \
             INSERT INTO metadata VALUES ('schema_version', '1'); \
             CREATE TABLE segments (id INTEGER PRIMARY KEY, path TEXT);",
        ),
        (
            "other-segments-v2",
            "CREATE TABLE metadata (key TEXT PRIMARY KEY, value TEXT NOT NULL); \
             INSERT INTO metadata VALUES ('schema_version', '2'); \
             CREATE TABLE segments (id INTEGER PRIMARY KEY, path TEXT);",
        ),
        (
            // Version 2's columns, without the index the time query names.
            "v2-without-its-indexes",
            "CREATE TABLE metadata (key TEXT PRIMARY KEY, value TEXT NOT NULL); \
             INSERT INTO metadata VALUES ('schema_version', '2'); \
             CREATE TABLE segments (base_id INTEGER PRIMARY KEY, last_id INTEGER NOT NULL, \
             record_count INTEGER NOT NULL, created_at INTEGER NOT NULL, finalized_at INTEGER, \
             archived_at INTEGER, uncompressed_checksum INTEGER, compressed_checksum INTEGER, \
             original_size INTEGER NOT NULL, compressed_size INTEGER, compression_ratio REAL, \
             status TEXT NOT NULL, local_path TEXT, archive_key TEXT);",
        ),
    ];
    for (name, sql) in cases {
        let path = dir.path().join(format!("{name}.db"));
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(sql).unwrap();
        conn.close().unwrap();
        match refused(&path) {
            IndexError::NotAnIndex { reason, .. } => {
                assert!(
                    reason.contains("another schema") || reason.contains("not a number"),
                    "{name}: {reason}"
                );
            }
            e => panic!("{name} gave {e:?}"),
        }
    }
}

#[test]
fn an_empty_file_or_an_empty_database_becomes_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let index = SqliteSegmentIndex::open(&empty).unwrap();
    index.add_entry(&active(0, None, 0)).unwrap();
    assert_eq!(index.len().unwrap(), 1);
    let blank = dir.path().join("blank.db");
    Connection::open(&blank)
        .unwrap()
        .execute_batch("PRAGMA user_version = 0; VACUUM;")
        .unwrap();
    assert_eq!(SqliteSegmentIndex::open(&blank).unwrap().len().unwrap(), 0);
}

#[test]
fn stored_values_that_do_not_decode_are_corrupt_entries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    {
        let index = SqliteSegmentIndex::open(&path).unwrap();
        index
            .add_entries(&[finalized(0, 9, 0, 1), archived(10, 19), finalized(20, 29, 0, 1)])
            .unwrap();
    }
    let enc = |v: u64| (v ^ (1 << 63)) as i64;
    let cases: [(&str, u64, &str); 5] = [
        (
            "UPDATE segments SET status = 'Bogus' WHERE base_id = ?1",
            0,
            "status",
        ),
        (
            "UPDATE segments SET original_size = 1.5 WHERE base_id = ?1",
            0,
            "original_size",
        ),
        (
            "UPDATE segments SET local_path = x'ff00' WHERE base_id = ?1",
            0,
            "local_path",
        ),
        (
            "UPDATE segments SET record_count = 3 WHERE base_id = ?1",
            10,
            "record_count",
        ),
        (
            "UPDATE segments SET finalized_at = 'soon' WHERE base_id = ?1",
            20,
            "finalized_at",
        ),
    ];
    for (sql, base, field) in cases {
        let backup = std::fs::read(&path).unwrap();
        let conn = Connection::open(&path).unwrap();
        assert_eq!(conn.execute(sql, [enc(base)]).unwrap(), 1, "{sql}");
        conn.close().unwrap();
        let index = SqliteSegmentIndex::open(&path).unwrap();
        match index.get_entry(base) {
            Err(IndexError::CorruptEntry { base_id, field: f }) => assert_eq!((base_id, f), (base, field)),
            r => panic!("{sql} gave {r:?}"),
        }
        assert!(matches!(
            index.get_all_segments(),
            Err(IndexError::CorruptEntry { .. })
        ));
        drop(index);
        std::fs::write(&path, backup).unwrap();
    }
}

/// A version-1 file as the code before log identities wrote it (the same
/// schema, no `log_id` row) opens (migrated to the current version), has
/// no identity, and takes one that survives a reopen.
#[test]
fn an_index_from_before_log_identities_opens_without_one_and_takes_one() {
    use aof_index_sqlite::sql;
    use aof_record::conformance::index::{LOG_ID_A, LOG_ID_B};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    let entry = finalized(0, 99, 1, 2);
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL").unwrap();
        conn.execute_batch(sql::SCHEMA_V1).unwrap();
        conn.execute_batch(
            "INSERT INTO metadata VALUES ('schema_version', '1'), ('created_by', 'aof-index-sqlite 0.1.0')",
        )
        .unwrap();
        sql::execute_entry(&mut conn.prepare(sql::INSERT).unwrap(), &entry).unwrap();
        conn.close().unwrap();
    }
    let index = SqliteSegmentIndex::open(&path).unwrap();
    assert_eq!(index.log_identity().unwrap(), None);
    assert_eq!(index.get_all_segments().unwrap(), vec![entry.clone()]);
    index.set_log_identity(LOG_ID_A).unwrap();
    index.sync().unwrap();
    drop(index);
    let index = SqliteSegmentIndex::open(&path).unwrap();
    assert_eq!(index.log_identity().unwrap(), Some(LOG_ID_A));
    assert!(matches!(
        index.set_log_identity(LOG_ID_B),
        Err(IndexError::IdentityAlreadySet { .. })
    ));
    assert_eq!(index.get_all_segments().unwrap(), vec![entry]);
    drop(index);
    let conn = Connection::open(&path).unwrap();
    let version: String = conn
        .query_row(
            "SELECT value FROM metadata WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        version,
        aof_index_sqlite::SCHEMA_VERSION.to_string(),
        "taking an identity changed the schema version"
    );
}

/// A stored identity that is not what this code writes is a typed error on
/// reading and is never overwritten.
#[test]
fn a_damaged_log_identity_is_corrupt_metadata_and_stays() {
    use aof_record::conformance::index::LOG_ID_A;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    make_index(&path);
    let bad_values: [&dyn rusqlite::ToSql; 4] = [&"not hex", &"0123", &42i64, &vec![0u8; 16]];
    for bad in bad_values {
        let conn = Connection::open(&path).unwrap();
        conn.execute(
            "INSERT INTO metadata (key, value) VALUES ('log_id', ?1) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [bad],
        )
        .unwrap();
        let stored: rusqlite::types::Value = conn
            .query_row("SELECT value FROM metadata WHERE key = 'log_id'", [], |r| {
                r.get(0)
            })
            .unwrap();
        conn.close().unwrap();
        let index = SqliteSegmentIndex::open(&path).unwrap();
        for result in [index.log_identity().map(drop), index.set_log_identity(LOG_ID_A)] {
            match result {
                Err(IndexError::CorruptMetadata { field: "log_id" }) => {}
                r => panic!("log_id {stored:?} gave {r:?}"),
            }
        }
        drop(index);
        let conn = Connection::open(&path).unwrap();
        let after: rusqlite::types::Value = conn
            .query_row("SELECT value FROM metadata WHERE key = 'log_id'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(after, stored, "a damaged identity was overwritten");
    }
}

#[test]
fn an_index_opens_on_a_named_vfs_and_an_unknown_vfs_is_an_error() {
    use aof_index_sqlite::SqliteIndexOptions;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.sqlite");
    let err = SqliteSegmentIndex::open_with(&path, &SqliteIndexOptions::default().vfs("no-such-vfs"))
        .expect_err("an unknown VFS was used");
    assert!(err.to_string().contains("no-such-vfs"), "{err}");
    assert!(!path.exists());
    // SQLite's own Unix VFSes: "unix-dotfile" has no shared memory, so WAL
    // mode is refused (the open really went through it); "unix-excl" keeps
    // it in heap memory for the connections of one process.
    let dotfile = dir.path().join("dotfile.sqlite");
    let err = SqliteSegmentIndex::open_with(&dotfile, &SqliteIndexOptions::default().vfs("unix-dotfile"))
        .expect_err("WAL mode without shared memory");
    assert!(matches!(backend(&err), SqliteIndexError::NoWal { .. }), "{err:?}");
    let options = SqliteIndexOptions::default().vfs("unix-excl");
    let index = SqliteSegmentIndex::open_with(&path, &options).unwrap();
    index.add_entry(&finalized(0, 99, 0, 1)).unwrap();
    index.sync().unwrap();
    assert_eq!(index.len().unwrap(), 1);
    drop(index);
    let index = SqliteSegmentIndex::open_with(&path, &options).unwrap();
    assert_eq!(index.get_all_segments().unwrap(), vec![finalized(0, 99, 0, 1)]);
}
