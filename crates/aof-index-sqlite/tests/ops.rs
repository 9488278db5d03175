//! Concurrency, online backup, health check, maintenance and durability.

use aof_index_sqlite::{
    BackupOptions, BackupProgress, Integrity, Maintenance, SegmentIndex, SqliteIndexOptions,
    SqliteSegmentIndex,
};
use aof_record::conformance::index::{active, finalized};
use aof_record::{SegmentEntry, SegmentStatus};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

fn wal(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push("-wal");
    PathBuf::from(s)
}

fn seg(i: u64) -> SegmentEntry {
    finalized(i * 10, i * 10 + 9, i, i + 1)
}

/// Readers on several threads always see a committed prefix of what one
/// writer adds in order, never a torn or reordered state, while it writes.
#[test]
fn readers_see_committed_prefixes_while_the_writer_writes() {
    let dir = tempfile::tempdir().unwrap();
    let index = SqliteSegmentIndex::open_with(
        dir.path().join("index.db"),
        &SqliteIndexOptions::default().readers(3),
    )
    .unwrap();
    const N: u64 = 600;
    let done = AtomicBool::new(false);
    index.add_entry(&active(1 << 40, Some(1 << 40), 0)).unwrap();
    index.update_segment_tail(1 << 40, Some(1 << 40), 0).unwrap();
    std::thread::scope(|s| {
        let readers: Vec<_> = (0..3)
            .map(|r| {
                let (index, done) = (&index, &done);
                s.spawn(move || {
                    let mut seen = 0usize;
                    let mut rounds = 0u64;
                    while !done.load(Ordering::Acquire) || rounds == 0 {
                        let (all, tail): (Vec<_>, Vec<_>) = index
                            .get_all_segments()
                            .unwrap()
                            .into_iter()
                            .partition(|e| e.base_id < 1 << 40);
                        for t in tail {
                            assert!(t.validate().is_ok(), "reader {r}: torn {t:?}");
                            assert_eq!(t.original_size + 1, t.record_count, "reader {r}: torn tail {t:?}");
                        }
                        assert!(
                            all.len() >= seen,
                            "reader {r}: went back from {seen} to {}",
                            all.len()
                        );
                        for (i, e) in all.iter().enumerate() {
                            assert_eq!(e, &seg(i as u64), "reader {r}: not a prefix");
                        }
                        seen = all.len();
                        if let Some(last) = all.last() {
                            let found = index.find_segment_for_id(last.last_id).unwrap();
                            assert_eq!(found.as_ref(), Some(last));
                            assert!(index.get_max_last_id().unwrap() >= Some(last.last_id));
                        }
                        rounds += 1;
                    }
                    rounds
                })
            })
            .collect();
        // One writer adds in order; a second one keeps rewriting an active
        // segment far above, so the two interleave in group commits.
        let tail = s.spawn(|| {
            let mut n = 0u64;
            while !done.load(Ordering::Acquire) {
                index
                    .update_segment_tail(1 << 40, Some((1 << 40) + n), n)
                    .unwrap();
                n += 1;
            }
            n
        });
        for i in 0..N {
            index.add_entry(&seg(i)).unwrap();
        }
        done.store(true, Ordering::Release);
        for r in readers {
            assert!(r.join().unwrap() > 0);
        }
        assert!(tail.join().unwrap() > 0);
    });
    assert_eq!(index.len().unwrap(), N as usize + 1);
    let stats = index.writer_stats();
    assert!(stats.commands >= N + 2, "{stats:?}");
    assert!(stats.transactions <= stats.commands);
    assert_eq!(stats.failed_transactions, 0);
}

/// A backup taken while another thread writes: progress is reported step by
/// step, the copy is one consistent moment (a prefix of what was written),
/// and it opens as an index.
#[test]
fn online_backup_while_writing_reports_progress_and_is_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let index = SqliteSegmentIndex::open(dir.path().join("index.db")).unwrap();
    const BEFORE: u64 = 5_000;
    index
        .add_entries(&(0..BEFORE).map(seg).collect::<Vec<_>>())
        .unwrap();
    let dest = dir.path().join("backup.db");
    let stop = AtomicBool::new(false);
    let mut reports: Vec<BackupProgress> = Vec::new();
    let (last, written) = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut i = BEFORE;
            while !stop.load(Ordering::Acquire) {
                index.add_entry(&seg(i)).unwrap();
                i += 1;
            }
            i
        });
        let last = index
            .backup_to(&dest, &BackupOptions::default().pages_per_step(8), |p| {
                reports.push(p)
            })
            .unwrap();
        stop.store(true, Ordering::Release);
        (last, writer.join().unwrap())
    });
    assert!(reports.len() > 2, "progress was reported {} times", reports.len());
    assert_eq!(reports.last(), Some(&last));
    assert_eq!(last.remaining_pages, 0);
    assert!(last.total_pages > 16, "{last:?}");
    assert!(reports.iter().all(|p| p.remaining_pages <= p.total_pages));
    let copy = SqliteSegmentIndex::open(&dest).unwrap();
    let entries = copy.get_all_segments().unwrap();
    let n = entries.len() as u64;
    assert!(
        (BEFORE..=written).contains(&n),
        "{n} entries, {BEFORE}..={written} written"
    );
    assert_eq!(
        entries,
        (0..n).map(seg).collect::<Vec<_>>(),
        "the copy is not one moment"
    );
    assert!(copy.health_check().unwrap().integrity.is_ok());
    // The destination exists now: a second backup must not overwrite it.
    let before = std::fs::read(&dest).unwrap();
    drop(copy);
    let before_len = before.len();
    match index.backup_to(&dest, &BackupOptions::default(), |_| {}) {
        Err(aof_index_sqlite::IndexError::Io { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::AlreadyExists);
        }
        r => panic!("backup over an existing file gave {r:?}"),
    }
    assert_eq!(std::fs::read(&dest).unwrap().len(), before_len);
}

#[test]
fn health_check_reports_counts_sizes_and_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    let index = SqliteSegmentIndex::open(&path).unwrap();
    let empty = index.health_check().unwrap();
    assert_eq!((empty.segments, empty.unknown_status), (0, 0));
    assert!(empty.segments_by_status.is_empty());
    index.add_entries(&(0..100).map(seg).collect::<Vec<_>>()).unwrap();
    index.add_entry(&active(1000, Some(1004), 5)).unwrap();
    for b in [0, 10, 20] {
        index
            .update_segment_status(b, SegmentStatus::ArchivedRemote)
            .unwrap();
    }
    index
        .update_segment_status(0, SegmentStatus::ArchivedCached)
        .unwrap();
    let h = index.health_check().unwrap();
    assert_eq!(h.integrity, Integrity::Ok);
    assert_eq!(h.schema_version, aof_index_sqlite::SCHEMA_VERSION);
    assert_eq!(h.segments, 101);
    let by = |s| h.segments_by_status.get(&s).copied().unwrap_or(0);
    assert_eq!(
        [
            by(SegmentStatus::Active),
            by(SegmentStatus::Finalized),
            by(SegmentStatus::ArchivedRemote),
            by(SegmentStatus::ArchivedCached)
        ],
        [1, 97, 2, 1]
    );
    assert_eq!(h.page_size, 4096);
    assert!(h.page_count > 0 && h.freelist_pages < h.page_count);
    assert!(
        h.wal_bytes > 0 && h.wal_pages > 0,
        "writes went to the WAL: {h:?}"
    );
    assert_eq!(h.file_bytes, std::fs::metadata(&path).unwrap().len());
}

#[test]
fn maintenance_vacuums_analyzes_checkpoints_and_checks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    let index = SqliteSegmentIndex::open(&path).unwrap();
    index
        .add_entries(&(0..20_000).map(seg).collect::<Vec<_>>())
        .unwrap();
    for b in (0..20_000).step_by(2).map(|i| i * 10) {
        index.remove_entry(b).unwrap();
    }
    index
        .add_entries(&(20_000..20_100).map(seg).collect::<Vec<_>>())
        .unwrap();
    for i in 10_000..20_000 {
        index.remove_entry(i * 10).unwrap();
    }
    index.sync().unwrap();
    let before = index.health_check().unwrap();
    assert!(before.freelist_pages > 0, "{before:?}");
    let report = index.maintain(&Maintenance::default()).unwrap();
    assert!(report.pages_freed > 0, "{report:?}");
    assert!(report.analyzed);
    let checkpoint = report.checkpoint.unwrap();
    assert!(!checkpoint.busy, "{checkpoint:?}");
    assert_eq!(report.integrity, Some(Integrity::Ok));
    let after = index.health_check().unwrap();
    assert_eq!(after.freelist_pages, 0, "{after:?}");
    assert_eq!(after.wal_bytes, 0, "TRUNCATE checkpoint left a WAL: {after:?}");
    assert!(
        after.file_bytes < before.file_bytes,
        "{} -> {}",
        before.file_bytes,
        after.file_bytes
    );
    // Everything still there, and the planner's statistics exist.
    assert_eq!(index.len().unwrap(), 5_000 + 100);
    assert_eq!(index.find_segment_for_id(20_055).unwrap(), Some(seg(2005)));
    let nothing = index
        .maintain(
            &Maintenance::default()
                .incremental_vacuum(false)
                .analyze(false)
                .checkpoint(false)
                .integrity_check(false),
        )
        .unwrap();
    assert_eq!(nothing, aof_index_sqlite::MaintenanceReport::default());
}

/// After `sync` the database file alone — without its WAL — holds every
/// change: what a power loss would leave of a file never fsynced since.
#[test]
fn after_sync_the_database_file_alone_holds_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    let index = SqliteSegmentIndex::open(&path).unwrap();
    let entries: Vec<_> = (0..300).map(seg).collect();
    index.add_entries(&entries).unwrap();
    index
        .update_segment_status(0, SegmentStatus::ArchivedRemote)
        .unwrap();
    index.sync().unwrap();
    let alone = dir.path().join("alone.db");
    std::fs::copy(&path, &alone).unwrap();
    let copy = SqliteSegmentIndex::open(&alone).unwrap();
    let mut want = entries;
    want[0].status = SegmentStatus::ArchivedRemote;
    assert_eq!(copy.get_all_segments().unwrap(), want);
}

#[test]
fn closing_removes_the_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    let index = SqliteSegmentIndex::open(&path).unwrap();
    index.add_entries(&(0..50).map(seg).collect::<Vec<_>>()).unwrap();
    assert_eq!(index.len().unwrap(), 50);
    assert!(wal(&path).exists());
    drop(index);
    assert!(!wal(&path).exists(), "the last connection did not clean up");
    assert_eq!(SqliteSegmentIndex::open(&path).unwrap().len().unwrap(), 50);
}

/// A reader connection still open elsewhere when the index closes keeps
/// SQLite from removing the WAL; the writer empties it anyway, so the
/// database file alone is complete.
#[test]
fn closing_empties_the_wal_while_another_connection_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    let index = SqliteSegmentIndex::open(&path).unwrap();
    index.add_entries(&(0..50).map(seg).collect::<Vec<_>>()).unwrap();
    let other =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let n: i64 = other
        .query_row("SELECT count(*) FROM segments", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 50);
    drop(index);
    assert_eq!(std::fs::metadata(wal(&path)).map_or(0, |m| m.len()), 0);
    let alone = dir.path().join("alone.db");
    std::fs::copy(&path, &alone).unwrap();
    drop(other);
    assert_eq!(SqliteSegmentIndex::open(&alone).unwrap().len().unwrap(), 50);
}

/// What a crash leaves — the database file and a WAL holding committed but
/// never checkpointed transactions, no `-shm` — opens with every committed
/// change (SQLite replays the WAL).
#[test]
fn a_crash_image_with_only_db_and_wal_recovers_committed_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    let index = SqliteSegmentIndex::open(&path).unwrap();
    index.add_entries(&(0..100).map(seg).collect::<Vec<_>>()).unwrap();
    index.sync().unwrap();
    // Committed after the last checkpoint: only in the WAL.
    index
        .add_entries(&(100..150).map(seg).collect::<Vec<_>>())
        .unwrap();
    index
        .update_segment_status(0, SegmentStatus::ArchivedRemote)
        .unwrap();
    let crash = dir.path().join("crash.db");
    std::fs::copy(&path, &crash).unwrap();
    std::fs::copy(wal(&path), wal(&crash)).unwrap();
    assert!(std::fs::metadata(wal(&crash)).unwrap().len() > 0);
    drop(index);
    let recovered = SqliteSegmentIndex::open(&crash).unwrap();
    let mut want: Vec<_> = (0..150).map(seg).collect();
    want[0].status = SegmentStatus::ArchivedRemote;
    assert_eq!(recovered.get_all_segments().unwrap(), want);
}

/// Two index handles on one file (as two processes would have) write at
/// the same time: SQLite's lock and the busy timeout serialise them, no
/// caller sees SQLITE_BUSY, and the checks still hold across both.
#[test]
fn two_handles_on_one_file_serialise_without_busy_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    let a = SqliteSegmentIndex::open(&path).unwrap();
    let b = SqliteSegmentIndex::open(&path).unwrap();
    let both_done = std::sync::Barrier::new(2);
    std::thread::scope(|s| {
        for (h, index) in [&a, &b].into_iter().enumerate() {
            let both_done = &both_done;
            s.spawn(move || {
                for i in 0..200u64 {
                    index.add_entry(&seg(i * 2 + h as u64)).unwrap();
                }
                both_done.wait();
                // Each handle sees what the other one wrote and refuses it again.
                for i in 0..20u64 {
                    let other = i * 2 + 1 - h as u64;
                    assert!(matches!(
                        index.add_entry(&seg(other)),
                        Err(aof_index_sqlite::IndexError::AlreadyExists { base_id }) if base_id == other * 10
                    ));
                }
            });
        }
    });
    let all = a.get_all_segments().unwrap();
    assert_eq!(all, (0..400).map(seg).collect::<Vec<_>>());
    assert_eq!(b.get_all_segments().unwrap(), all);
}

/// A file created without auto_vacuum keeps its free pages on the freelist
/// (for reuse); maintenance's incremental vacuum then frees nothing, and
/// the option does not change an existing file.
#[test]
fn without_auto_vacuum_free_pages_stay_for_reuse() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    let options = SqliteIndexOptions::default().auto_vacuum(false);
    let index = SqliteSegmentIndex::open_with(&path, &options).unwrap();
    index
        .add_entries(&(0..5_000).map(seg).collect::<Vec<_>>())
        .unwrap();
    for i in 0..5_000 {
        index.remove_entry(i * 10).unwrap();
    }
    let report = index.maintain(&Maintenance::default()).unwrap();
    assert_eq!(report.pages_freed, 0);
    assert_eq!(report.integrity, Some(Integrity::Ok));
    assert!(index.health_check().unwrap().freelist_pages > 0);
    drop(index);
    // Reopening with the default (auto_vacuum on) leaves the mode as created.
    let index = SqliteSegmentIndex::open(&path).unwrap();
    assert_eq!(index.maintain(&Maintenance::default()).unwrap().pages_freed, 0);
}

fn data_version(conn: &rusqlite::Connection) -> i64 {
    conn.query_row("PRAGMA data_version", [], |r| r.get(0)).unwrap()
}

/// A reader holding an old snapshot keeps the FULL checkpoint from
/// finishing; `sync` then makes the WAL durable with a no-op FULL commit
/// instead of failing, and checkpoints again once the reader is gone.
#[test]
fn sync_succeeds_while_a_reader_holds_an_old_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.db");
    let options = SqliteIndexOptions::default().busy_timeout(std::time::Duration::from_millis(50));
    let index = SqliteSegmentIndex::open_with(&path, &options).unwrap();
    index.add_entries(&(0..100).map(seg).collect::<Vec<_>>()).unwrap();
    index.sync().unwrap();
    let ro = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let reader = rusqlite::Connection::open_with_flags(&path, ro).unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let count = |c: &rusqlite::Connection| -> i64 {
        c.query_row("SELECT count(*) FROM segments", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(count(&reader), 100);
    index
        .add_entries(&(100..200).map(seg).collect::<Vec<_>>())
        .unwrap();
    let watcher = rusqlite::Connection::open_with_flags(&path, ro).unwrap();
    let v0 = data_version(&watcher);
    index.sync().unwrap();
    assert_ne!(
        data_version(&watcher),
        v0,
        "sync did not fall back to a FULL commit"
    );
    assert_eq!(count(&reader), 100, "the reader lost its snapshot");
    reader.execute_batch("COMMIT").unwrap();
    let v1 = data_version(&watcher);
    index.sync().unwrap();
    assert_eq!(
        data_version(&watcher),
        v1,
        "with no old snapshot, sync only checkpoints"
    );
    let alone = dir.path().join("alone.db");
    std::fs::copy(&path, &alone).unwrap();
    assert_eq!(SqliteSegmentIndex::open(&alone).unwrap().len().unwrap(), 200);
    let syncs: String = watcher
        .query_row(
            "SELECT value FROM metadata WHERE key = 'full_sync_commits'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(syncs, "1");
}
