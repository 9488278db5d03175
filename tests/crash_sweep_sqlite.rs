//! The crash matrix with the real SQLite index (issue 10, F iv): the
//! workloads of `aof-core`'s `tests/crash_sweep.rs`, but the segment index is
//! a [`SqliteSegmentIndex`] whose database, WAL and directory entries live
//! on the fault-injecting file system through a SQLite VFS
//! ([`faulty_vfs`]), so reordered writeback, torn sectors and lost unsynced
//! data hit the index exactly as they hit the segments. Swept at every I/O
//! operation under Sync, at seeded ones under Batched/Periodic/Async, and
//! during recovery; with `synchronous = NORMAL` (durable at the index's
//! `sync`, the default) and with `durable_commits` (`synchronous = FULL`).
//!
//! Each image must open without help, keep every record with an id below
//! the durable watermark seen at the crash, hold nothing but attempted
//! records with their own ids, and keep its index equal to a rebuild from
//! the files. `AOF_CRASH_SEEDS=N` sets the writeback seeds per crash point
//! (default 2 here); `cargo xtask crash --seeds N` runs it with a larger N.

mod faulty_vfs;

use aof_core::testing::{CrashMode, CrashPoints, FaultyFileSystem, OpCounting, Sweep, SweepReport};
use aof_core::{Aof, AofError, AofOptions, FileSystem, TimeSource, entries_from_files};
use aof_index_sqlite::{SegmentIndex, SqliteIndexOptions, SqliteSegmentIndex};
use aof_record::{AofConfig, FlushStrategy};
use faulty_vfs::{Mount, VFS_NAME};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const DIR: &str = "/log";
const INDEX: &str = "/log/index.sqlite";

#[derive(Debug, Default)]
struct StepClock(AtomicU64);

impl TimeSource for StepClock {
    fn now_us(&self) -> u64 {
        1_700_000_000_000_000 + self.0.fetch_add(7, Ordering::Relaxed)
    }
}

/// Which SQLite commit mode the index runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Commits {
    /// `synchronous = NORMAL`: durable at the index's `sync`.
    Normal,
    /// `durable_commits`: `synchronous = FULL`, every commit fsyncs the WAL.
    Full,
}

/// The index options; `crashing` for a run that may crash.
fn index_options(commits: Commits, crashing: bool) -> SqliteIndexOptions {
    let options = SqliteIndexOptions::default()
        .vfs(VFS_NAME)
        .readers(2)
        .durable_commits(commits == Commits::Full);
    if !crashing {
        return options;
    }
    // A crashed run goes on until its workload returns: no reader
    // connection can open any more (the pool retries until its timeout),
    // and a connection whose I/O failed mid-way may still hold its lock.
    // Give up at once instead of after 30 s and 5 s.
    options
        .pool_timeout(Duration::from_millis(20))
        .busy_timeout(Duration::from_millis(10))
}

/// A log on `fs` with its SQLite index on the same file system.
fn open(
    fs: Arc<dyn FileSystem>,
    mount: &Mount,
    strategy: FlushStrategy,
    commits: Commits,
    crashing: bool,
) -> Result<Aof, AofError> {
    // The engine makes the log directory; the index file lives inside it.
    fs.create_dir_all(Path::new(DIR))
        .map_err(|e| AofError::io(DIR, e))?;
    let index =
        SqliteSegmentIndex::open_with(mount.path(Path::new(INDEX)), &index_options(commits, crashing))?;
    let config = AofConfig::builder()
        .segment_size(4096)
        .flush_strategy(strategy)
        .pre_allocate_enabled(false)
        .build()?;
    let mut options = AofOptions::new(config);
    options.fs = fs;
    options.time = Arc::new(StepClock::default());
    Aof::open_with(DIR, options, Arc::new(index))
}

/// Sizes 0..=700: records straddle 512-byte sectors and 4 KiB pages.
fn payload(i: u64) -> Vec<u8> {
    let len = ((i * 7919) % 701) as usize;
    (0..len).map(|j| (i as usize * 31 + j) as u8).collect()
}

/// What a workload got done before its crash.
#[derive(Debug, Default, Clone)]
struct Outcome {
    attempted: u64,
    /// Every id below this was reported durable.
    durable: u64,
}

/// Appends `records` records to a new log, flushing every 16 records when
/// the strategy does not sync by itself.
fn workload(fs: Arc<dyn FileSystem>, strategy: FlushStrategy, commits: Commits, records: u64) -> Outcome {
    let mut out = Outcome::default();
    let mount = Mount::new(fs.clone());
    let Ok(log) = open(fs, &mount, strategy, commits, true) else {
        return out;
    };
    let durable_now = |log: &Aof| log.durable_id().map_or(0, |d| d + 1);
    let mut i = 0;
    while i < records {
        let n = if i % 5 == 4 { 3 } else { 1 };
        let batch: Vec<Vec<u8>> = (i..i + n).map(payload).collect();
        out.attempted = i + n;
        let ok = log.append_batch(&batch).is_ok();
        if ok && strategy == FlushStrategy::Sync {
            out.durable = i + n;
        }
        out.durable = out.durable.max(durable_now(&log));
        if !ok {
            return out;
        }
        i += n;
        if i % 16 == 0 && strategy != FlushStrategy::Sync && log.flush_blocking().is_ok() {
            out.durable = out.durable.max(durable_now(&log));
        }
    }
    if log.flush_blocking().is_ok() {
        out.durable = out.durable.max(durable_now(&log));
    }
    let _ = log.close_blocking();
    out
}

/// Reopens `img` and checks it (see the module docs).
fn check(img: &FaultyFileSystem, out: &Outcome, commits: Commits) -> Result<(), String> {
    let fs: Arc<dyn FileSystem> = Arc::new(img.clone());
    let mount = Mount::new(fs.clone());
    let log = open(fs, &mount, FlushStrategy::Sync, commits, false)
        .map_err(|e| format!("reopen needs a human: {e}"))?;
    let next = log.next_id();
    if next < out.durable {
        return Err(format!(
            "lost durable records: next {next} < durable {}",
            out.durable
        ));
    }
    if next > out.attempted {
        return Err(format!(
            "phantom records: next {next} > attempted {}",
            out.attempted
        ));
    }
    for id in log.first_id()..next {
        let got = log.read(id).map_err(|e| format!("read {id}: {e}"))?;
        if got.as_deref() != Some(&payload(id)[..]) {
            return Err(format!("record {id} differs"));
        }
    }
    let rebuilt = entries_from_files(img, Path::new(DIR)).map_err(|e| format!("rebuild: {e}"))?;
    let indexed = log.index().get_all_segments().map_err(|e| e.to_string())?;
    if indexed != rebuilt {
        return Err(format!(
            "index differs from the files: {indexed:?} vs {rebuilt:?}"
        ));
    }
    log.close_blocking().map_err(|e| format!("close: {e}"))
}

fn seeds() -> u64 {
    std::env::var("AOF_CRASH_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(2, |n: u64| n.div_ceil(2))
}

fn sweep(strategy: FlushStrategy, commits: Commits, points: CrashPoints, records: u64) -> SweepReport {
    Sweep::new(&FaultyFileSystem::new())
        .counting(OpCounting::Mutations)
        .points(points)
        .modes(CrashMode::UNSEEDED)
        .writeback_seeds(0..seeds())
        .run(
            move |fs| workload(fs, strategy, commits, records),
            move |img, out, _case| check(img, out, commits),
        )
}

/// The VFS itself: a SQLite index on the faulty file system keeps what its
/// `sync` made durable through a power loss, and nothing needs SQLite's
/// own files on the OS.
#[test]
fn sqlite_index_on_the_faulty_file_system_is_durable_at_sync() {
    use aof_record::conformance::index::finalized;
    let fs = FaultyFileSystem::new();
    let dyn_fs: Arc<dyn FileSystem> = Arc::new(fs.clone());
    dyn_fs.create_dir_all(Path::new(DIR)).unwrap();
    dyn_fs.sync_dir(Path::new("/")).unwrap(); // as the engine's open does
    let mount = Mount::new(dyn_fs);
    let index = SqliteSegmentIndex::open_with(
        mount.path(Path::new(INDEX)),
        &index_options(Commits::Normal, false),
    )
    .unwrap();
    index.add_entry(&finalized(0, 9, 0, 1)).unwrap();
    index.sync().unwrap();
    index.add_entry(&finalized(10, 19, 1, 2)).unwrap();
    assert!(fs.exists(Path::new(INDEX)).unwrap());
    let reopen = |img: FaultyFileSystem| {
        let img: Arc<dyn FileSystem> = Arc::new(img);
        let mount = Mount::new(img);
        let index = SqliteSegmentIndex::open_with(
            mount.path(Path::new(INDEX)),
            &index_options(Commits::Normal, false),
        )
        .unwrap();
        index.len().unwrap()
    };
    // A power loss keeps the synced entry; the unsynced one may or may not
    // survive (NORMAL: the WAL was written, not fsynced), never half of it.
    assert_eq!(reopen(fs.crash_image(CrashMode::LoseUnsynced)), 1);
    assert_eq!(reopen(fs.crash_image(CrashMode::ProcessKill)), 2);
    for seed in 0..8 {
        let n = reopen(fs.crash_image(CrashMode::Writeback { seed }));
        assert!(n == 1 || n == 2, "{n} entries");
    }
    index.sync().unwrap();
    assert_eq!(reopen(fs.crash_image(CrashMode::LoseUnsynced)), 2);
}

/// Sync: a crash at every mutating operation (segments, index database,
/// WAL, directories), from the first open of a new log on.
#[test]
fn sqlite_sync_crash_at_every_operation() {
    for commits in [Commits::Normal, Commits::Full] {
        let report = sweep(FlushStrategy::Sync, commits, CrashPoints::Every, 24);
        report.print_summary(&format!("SQLite index ({commits:?}), Sync, every op"));
        assert!(report.points > 60, "{} points", report.points);
        report.assert_clean();
    }
}

/// Batched, Periodic and Async: seeded crash points.
#[test]
fn sqlite_other_strategies_at_seeded_crash_points() {
    for (strategy, commits) in [
        (FlushStrategy::Batched(4), Commits::Normal),
        (FlushStrategy::Periodic(1), Commits::Normal),
        (FlushStrategy::Async, Commits::Normal),
        (FlushStrategy::Batched(4), Commits::Full),
        (FlushStrategy::Async, Commits::Full),
    ] {
        let report = sweep(strategy, commits, CrashPoints::Sample { seed: 7, count: 30 }, 40);
        report.print_summary(&format!(
            "SQLite index ({commits:?}), {strategy:?}, 30 seeded ops"
        ));
        report.assert_clean();
    }
}

/// A crash during recovery, then recovery again: images of a crashed Sync
/// workload are reopened under a second sweep that crashes the reopening
/// (SQLite's WAL recovery and checkpoint included) at every operation,
/// reads included. What the reopening published as durable must survive.
#[test]
fn sqlite_crash_during_recovery_then_recover_again() {
    let base = FaultyFileSystem::new();
    let mut total = SweepReport::default();
    for commits in [Commits::Normal, Commits::Full] {
        for k in [30u64, 75] {
            let fs = base.deep_clone();
            fs.crash_at(k);
            let out = workload(Arc::new(fs.clone()), FlushStrategy::Sync, commits, 24);
            let img = fs.crash_image(CrashMode::Writeback { seed: k });
            let report = Sweep::new(&img)
                .counting(OpCounting::All)
                .modes(CrashMode::UNSEEDED)
                .writeback_seeds(0..seeds())
                .run(
                    |fs| {
                        let mut seen = out.clone();
                        let mount = Mount::new(fs.clone());
                        if let Ok(log) = open(fs, &mount, FlushStrategy::Sync, commits, true) {
                            seen.durable = seen.durable.max(log.durable_id().map_or(0, |d| d + 1));
                            let _ = log.close_blocking();
                        }
                        seen
                    },
                    |img2, seen, _case| check(img2, seen, commits),
                );
            total.points += report.points;
            total.images += report.images;
            total.failures.extend(report.failures);
            total.workload_panics.extend(report.workload_panics);
            total.not_reached.extend(report.not_reached);
        }
    }
    total.print_summary("SQLite index, recovery of crash images, every op");
    total.assert_clean();
}
