//! `find_segments_for_timestamp` reads two index ranges (see
//! `aof_index_sqlite::sql::BY_TIME`); it must answer exactly what a full
//! scan answers, for any spans: overlapping, running backwards
//! (`finalized_at < created_at`), open-ended, huge enough to overflow an
//! i64, and as entries are added, finalized and removed.

use aof_index_sqlite::encoding::ord;
use aof_index_sqlite::{SqliteSegmentIndex, sql};
use aof_record::entry::SegmentEntry;
use aof_record::index::{MemorySegmentIndex, SegmentIndex};
use proptest::prelude::*;
use std::path::Path;

/// The overlap test as a plain scan of the table, the query of schema v1.
const SCAN: &str = "SELECT base_id FROM segments \
     WHERE created_at <= ?2 AND (finalized_at IS NULL OR finalized_at >= ?1) ORDER BY base_id";

fn scan(path: &Path, start: u64, end: u64) -> Vec<u64> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let mut stmt = conn.prepare(SCAN).unwrap();
    stmt.query_map([ord(start), ord(end)], |r| r.get::<_, i64>(0))
        .unwrap()
        .map(|b| aof_index_sqlite::encoding::unord(b.unwrap()))
        .collect()
}

/// Timestamps that meet often (a small range) and the edges of the
/// encoding (0, 2^63 ± 1, `u64::MAX`).
fn timestamp() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => 0..64u64,
        1 => Just(0u64),
        1 => Just(u64::MAX),
        1 => Just(u64::MAX - 1),
        1 => Just(1u64 << 63),
        1 => Just((1u64 << 63) - 1),
        1 => any::<u64>(),
    ]
}

/// One segment's times: created, and finalized (`None`: still active).
fn times() -> impl Strategy<Value = (u64, Option<u64>)> {
    (timestamp(), prop::option::weighted(0.8, timestamp()))
}

fn entry(i: u64, (created, finalized): (u64, Option<u64>)) -> SegmentEntry {
    let base = i * 10;
    let active = SegmentEntry::new_active(base, created, format!("{base:020}.seg"));
    match finalized {
        Some(at) => active.finalize(Some(base + 9), 1000, base, at).unwrap(),
        None => active,
    }
}

fn windows() -> impl Strategy<Value = Vec<(u64, u64)>> {
    prop::collection::vec(
        (timestamp(), timestamp()).prop_map(|(a, b)| (a.min(b), a.max(b))),
        1..24,
    )
}

fn check(index: &SqliteSegmentIndex, reference: &MemorySegmentIndex, path: &Path, windows: &[(u64, u64)]) {
    for &(start, end) in windows
        .iter()
        .chain(&[(0, u64::MAX), (0, 0), (u64::MAX, u64::MAX)])
    {
        let got = index.find_segments_for_timestamp(start, end).unwrap();
        assert_eq!(
            got,
            reference.find_segments_for_timestamp(start, end).unwrap(),
            "window {start}..={end}"
        );
        let bases: Vec<u64> = got.iter().map(|e| e.base_id).collect();
        assert_eq!(bases, scan(path, start, end), "scan, window {start}..={end}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_indexed_query_answers_what_a_scan_answers(
        spans in prop::collection::vec(times(), 0..40),
        removed in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        finalize in prop::collection::vec((any::<prop::sample::Index>(), timestamp()), 0..6),
        windows in windows(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.db");
        let index = SqliteSegmentIndex::open(&path).unwrap();
        let reference = MemorySegmentIndex::new();
        let entries: Vec<SegmentEntry> = spans.iter().enumerate().map(|(i, t)| entry(i as u64, *t)).collect();
        // Half in one batch (the bulk path), half one by one.
        let (bulk, single) = entries.split_at(entries.len() / 2);
        for target in [&index as &dyn SegmentIndex, &reference] {
            target.add_entries(bulk).unwrap();
            for e in single {
                target.add_entry(e).unwrap();
            }
        }
        index.sync().unwrap();
        check(&index, &reference, &path, &windows);
        if entries.is_empty() {
            return Ok(());
        }
        // Finalizing active entries and removing some (the longest span may go) changes the bounds.
        for (at, when) in &finalize {
            let e = &entries[at.index(entries.len())];
            if let Some(current) = reference.get_entry(e.base_id).unwrap()
                && current.finalized_at.is_none()
            {
                let done = current.finalize(Some(e.base_id + 9), 1000, 1, *when).unwrap();
                index.update_entry(&done).unwrap();
                reference.update_entry(&done).unwrap();
            }
        }
        for at in &removed {
            let base = entries[at.index(entries.len())].base_id;
            prop_assert_eq!(index.remove_entry(base).unwrap(), reference.remove_entry(base).unwrap());
        }
        index.sync().unwrap();
        check(&index, &reference, &path, &windows);
    }
}

/// Spans of 2^63 µs or more overflow SQLite's integer subtraction into a
/// REAL in `idx_segments_span`; the bound must then cover everything.
#[test]
fn overflowing_spans_are_still_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    let index = SqliteSegmentIndex::open(&path).unwrap();
    let reference = MemorySegmentIndex::new();
    let entries = [
        entry(0, (0, Some(u64::MAX))),
        entry(1, (5, Some((1 << 63) + 7))),
        entry(2, (u64::MAX, Some(0))),
        entry(3, (100, Some(200))),
    ];
    index.add_entries(&entries).unwrap();
    reference.add_entries(&entries).unwrap();
    let edges = [
        0,
        4,
        5,
        6,
        100,
        150,
        200,
        201,
        1 << 63,
        (1 << 63) + 7,
        (1 << 63) + 8,
        u64::MAX,
    ];
    let windows: Vec<(u64, u64)> = edges
        .iter()
        .flat_map(|&a| edges.iter().filter(move |&&b| b >= a).map(move |&b| (a, b)))
        .collect();
    check(&index, &reference, &path, &windows);
    // Without the huge spans, the bound is tight again, and still exact.
    for base in [0, 10, 20] {
        index.remove_entry(base).unwrap();
        reference.remove_entry(base).unwrap();
    }
    check(&index, &reference, &path, &windows);
}

/// The query reads index ranges, never the whole table.
#[test]
fn the_time_query_does_not_scan_the_table() {
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    for step in sql::MIGRATIONS {
        conn.execute_batch(step).unwrap();
    }
    let mut stmt = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {}", sql::BY_TIME))
        .unwrap();
    let plan: Vec<String> = stmt
        .query_map([0i64, 0], |r| r.get(3))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let plan = plan.join("\n");
    assert!(
        plan.contains("USING INDEX idx_segments_finalized_at (finalized_at>? AND finalized_at<?)"),
        "{plan}"
    );
    assert!(
        plan.contains("USING INDEX idx_segments_open (created_at<?)"),
        "{plan}"
    );
    assert!(plan.contains("USING INDEX idx_segments_span"), "{plan}");
    assert!(
        !plan
            .lines()
            .any(|l| l.trim_start_matches(['|', '`', '-', ' ']) == "SCAN segments"),
        "{plan}"
    );
}
