//! The index file as the stock `sqlite3` tool sees it: the designed schema,
//! a clean integrity check, plain-SQL decoding as documented, and a `.dump`
//! that restores into a file `SqliteSegmentIndex` opens with the same entries.
//!
//! Needs `sqlite3` on the PATH (`cargo xtask prereqs` installs it); without
//! it these tests fail rather than pass silently.

use aof_index_sqlite::{SegmentIndex, SqliteSegmentIndex};
use aof_record::SegmentEntry;
use aof_record::conformance::index::{LOG_ID_A, active, archived, finalized};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// The current schema as designed: the `sql` block of the crate docs, apart
/// from the code that creates it (`aof_index_sqlite::sql::MIGRATIONS`), so
/// that neither the file nor the docs can drift from the design unnoticed.
fn designed_schema() -> String {
    let docs = include_str!("../src/lib.rs");
    let start = docs.find("//! ```sql\n").expect("the crate docs show the schema") + "//! ```sql\n".len();
    let len = docs[start..].find("//! ```").expect("the schema block ends");
    docs[start..start + len]
        .lines()
        .map(|l| l.strip_prefix("//!").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `sqlite3 db` with `input` on stdin; returns stdout, failing on a non-zero exit.
fn sqlite3(db: &Path, input: &str) -> String {
    let mut child = Command::new("sqlite3")
        .arg("-batch")
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sqlite3 is not installed: run `cargo xtask prereqs`");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "sqlite3 {input:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The schema's statements with whitespace normalised, in a stable order.
fn statements(sql: &str) -> Vec<String> {
    let mut v: Vec<String> = sql
        .split(';')
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .map(|s| s.replace("( ", "(").replace(" )", ")"))
        .filter(|s| !s.is_empty())
        .collect();
    v.sort();
    v
}

fn sample() -> Vec<SegmentEntry> {
    let mut top = finalized(u64::MAX - 9, u64::MAX, 5, u64::MAX);
    top.uncompressed_checksum = Some(u64::MAX);
    let mut cached = archived(100, 199).cache_locally("cache/100.seg").unwrap();
    cached.original_size = 1 << 63;
    vec![
        finalized(0, 99, 1_700_000_000_000_000, 1_700_000_000_500_000),
        cached,
        finalized(200, 299, 7, 8),
        active(300, Some(340), 9),
        active(1 << 63, None, 10),
        top,
    ]
}

/// An index holding `sample()`, closed.
fn make(path: &Path) -> Vec<SegmentEntry> {
    let entries = sample();
    let index = SqliteSegmentIndex::open(path).unwrap();
    index.add_entries(&entries).unwrap();
    index.sync().unwrap();
    entries
}

#[test]
fn the_schema_is_the_designed_one_and_integrity_is_ok() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    make(&path);
    let schema = sqlite3(&path, ".schema\n");
    assert_eq!(statements(&schema), statements(&designed_schema()), "{schema}");
    assert_eq!(sqlite3(&path, "PRAGMA integrity_check;\n").trim(), "ok");
    assert_eq!(sqlite3(&path, "PRAGMA journal_mode;\n").trim(), "wal");
    assert_eq!(
        sqlite3(
            &path,
            "SELECT value FROM metadata WHERE key = 'schema_version';\n"
        )
        .trim(),
        aof_index_sqlite::SCHEMA_VERSION.to_string()
    );
    let index = SqliteSegmentIndex::open(&path).unwrap();
    index.set_log_identity(LOG_ID_A).unwrap();
    index.sync().unwrap();
    drop(index);
    assert_eq!(
        sqlite3(&path, "SELECT value FROM metadata WHERE key = 'log_id';\n").trim(),
        LOG_ID_A.to_string(),
        "the log identity is not the documented 32 hex digits"
    );
}

#[test]
fn plain_sql_decodes_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    make(&path);
    // Ids below 2^63: stored + 9223372036854775807 + 1. Sizes: as themselves.
    let out = sqlite3(
        &path,
        "SELECT base_id + 9223372036854775807 + 1, last_id + 9223372036854775807 + 1, record_count, \
         status, original_size FROM segments WHERE base_id < 0 ORDER BY base_id;\n",
    );
    assert_eq!(
        out,
        "0|99|100|Finalized|10000\n100|199|100|ArchivedCached|-9223372036854775808\n\
         200|299|100|Finalized|10000\n300|340|41|Active|64\n"
    );
    // The documented way to look up an id, and the stored order is u64 order.
    assert_eq!(
        sqlite3(
            &path,
            "SELECT local_path FROM segments WHERE base_id = 200 - 9223372036854775807 - 1;\n"
        ),
        "00000000000000000200.seg\n"
    );
    assert_eq!(
        sqlite3(&path, "SELECT count(*) FROM segments WHERE base_id >= 0;\n"),
        "2\n",
        "the two ids at or above 2^63 sort after the others"
    );
    // compression_ratio = compressed_size / original_size, for SQL users.
    assert_eq!(
        sqlite3(
            &path,
            "SELECT compression_ratio = 10.0 / 9223372036854775808.0, typeof(compression_ratio) \
             FROM segments WHERE status = 'ArchivedCached';\n"
        ),
        "1|real\n"
    );
}

/// `SELECT *` and a positional `INSERT … VALUES` see the columns in the
/// design's order (`…, compressed_size, compression_ratio, status,
/// local_path, archive_key`), and a row inserted that way is an entry.
#[test]
fn positional_sql_follows_the_designed_column_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    make(&path);
    let header = sqlite3(&path, ".headers on\nSELECT * FROM segments LIMIT 1;\n");
    assert_eq!(
        header.lines().next().unwrap(),
        "base_id|last_id|record_count|created_at|finalized_at|archived_at|uncompressed_checksum|\
         compressed_checksum|original_size|compressed_size|compression_ratio|status|local_path|archive_key"
    );
    // Segment 400..=499, created at 20 µs, finalized at 30 µs.
    // The documented encoding: v - 9223372036854775807 - 1.
    let m = "9223372036854775807 - 1";
    sqlite3(
        &path,
        &format!(
            "INSERT INTO segments VALUES (400 - {m}, 499 - {m}, 100, 20 - {m}, 30 - {m}, NULL, \
             7, NULL, 10000, NULL, NULL, 'Finalized', 'x.seg', NULL);\n"
        ),
    );
    let index = SqliteSegmentIndex::open(&path).unwrap();
    let mut want = finalized(400, 499, 20, 30);
    want.uncompressed_checksum = Some(7);
    want.local_path = Some("x.seg".into());
    assert_eq!(index.get_entry(400).unwrap(), Some(want.clone()));
    assert!(index.find_segments_for_timestamp(25, 25).unwrap().contains(&want));
}

#[test]
fn a_dump_restored_with_sqlite3_opens_with_the_same_entries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    let entries = make(&path);
    let dump = sqlite3(&path, ".dump\n");
    assert!(dump.contains("CREATE TABLE segments"), "{dump}");
    let restored = dir.path().join("restored.db");
    sqlite3(&restored, &dump);
    let index = SqliteSegmentIndex::open(&restored).unwrap();
    assert_eq!(index.get_all_segments().unwrap(), entries);
    assert_eq!(
        index.find_segment_for_id(u64::MAX).unwrap().map(|e| e.base_id),
        Some(u64::MAX - 9)
    );
    assert_eq!(
        index.get_active_segment().unwrap().map(|e| e.base_id),
        Some(1 << 63)
    );
    // The restored file is a full index: it takes writes too.
    index.add_entry(&finalized(400, 499, 11, 12)).unwrap();
    assert_eq!(index.len().unwrap(), entries.len() + 1);
}
