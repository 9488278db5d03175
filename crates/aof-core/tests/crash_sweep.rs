//! The crash matrix (issue 10, F and G): workloads crashed at every I/O
//! operation (Sync) or at seeded ones (Batched, Periodic, Async), first open
//! included, every image rebuilt under each crash mode of the adversarial
//! model (reordered 4 KiB writeback, torn 512-byte sectors, lost directory
//! operations, process kill), then reopened — and reopened again after a
//! crash *during* that recovery. Each image must open without help, keep
//! every record with an id below the durable watermark seen at the crash,
//! hold nothing but attempted records with their own ids, and keep its
//! index equal to a rebuild from the files.
//!
//! `AOF_CRASH_SEEDS=N` sets the number of writeback seeds per crash point
//! (default 4); `cargo xtask crash --seeds N` runs it with a larger N and
//! prints the matrix.

use aof_core::testing::{
    CrashMode, CrashPoints, FaultyFileSystem, FileIndex, OpCounting, OpKind, Sweep, SweepReport,
};
use aof_core::{
    Aof, AofError, AofOptions, EncryptionKey, FileSystem, KeyRing, TimeSource, entries_from_files,
};
use aof_record::{AofConfig, FlushStrategy};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

const DIR: &str = "/log";

#[derive(Debug, Default)]
struct StepClock(AtomicU64);

impl TimeSource for StepClock {
    fn now_us(&self) -> u64 {
        1_700_000_000_000_000 + self.0.fetch_add(7, Ordering::Relaxed)
    }
}

/// Small segments roll often; large ones let the write buffer (256 KiB) go
/// out unsynced, leaving unsynced data in the page cache.
const SMALL: u64 = 4096;
const LARGE: u64 = 1 << 20;

fn config(strategy: FlushStrategy, segment_size: u64) -> AofConfig {
    AofConfig::builder()
        .segment_size(segment_size)
        .flush_strategy(strategy)
        .pre_allocate_enabled(false)
        .build()
        .unwrap()
}

fn open(fs: Arc<dyn FileSystem>, strategy: FlushStrategy, segment_size: u64) -> Result<Aof, AofError> {
    open_variant(fs, strategy, segment_size, Variant::Plain)
}

/// What the log is opened with, besides its flush strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// Payloads stored as given.
    Plain,
    /// Payloads compressed (when it saves bytes) and encrypted.
    Codec,
}

fn open_variant(
    fs: Arc<dyn FileSystem>,
    strategy: FlushStrategy,
    segment_size: u64,
    variant: Variant,
) -> Result<Aof, AofError> {
    let index = FileIndex::open(fs.clone(), Path::new(DIR).join("index.json"))?;
    let mut config = config(strategy, segment_size);
    if variant == Variant::Codec {
        config = config
            .to_builder()
            .enable_compression(true)
            .compression_min_size(32)
            .enable_encryption(true)
            .build()?;
    }
    let mut options = AofOptions::new(config);
    options.fs = fs;
    options.time = Arc::new(StepClock::default());
    if variant == Variant::Codec {
        options.keys = Some(Arc::new(KeyRing::new(EncryptionKey::new(3, [0x5c; 32]))));
    }
    Aof::open_with(DIR, options, Arc::new(index))
}

/// Sizes 0..=700: records straddle 512-byte sectors and 4 KiB pages.
fn payload(i: u64) -> Vec<u8> {
    let len = ((i * 7919) % 701) as usize;
    (0..len).map(|j| (i as usize * 31 + j) as u8).collect()
}

/// What a workload got done before its crash.
#[derive(Debug, Default)]
struct Outcome {
    /// Ids below this may have been removed (`truncate_before`).
    first: u64,
    attempted: u64,
    /// Every id below this was reported durable.
    durable: u64,
}

fn workload(fs: Arc<dyn FileSystem>, strategy: FlushStrategy, records: u64) -> Outcome {
    workload_with(fs, strategy, SMALL, records, Some(16))
}

/// Async durable appends on an Async log: records made durable by
/// `append_durable`, and by `append` followed by `wait_durable`, each counted
/// durable only once its future resolved. The syncer thread's fsyncs race
/// the appender, as in use.
fn durable_appends_workload(fs: Arc<dyn FileSystem>, records: u64) -> Outcome {
    let mut out = Outcome::default();
    let Ok(log) = open(fs, FlushStrategy::Async, SMALL) else {
        return out;
    };
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
        return out;
    };
    rt.block_on(async {
        for i in 0..records {
            out.attempted = i + 1;
            let done = if i % 3 == 2 {
                match log.append(&payload(i)) {
                    Ok(id) => log.wait_durable(id).await.map(|()| id),
                    Err(e) => Err(e),
                }
            } else {
                log.append_durable(&payload(i)).await
            };
            match done {
                Ok(id) if id == i => out.durable = i + 1,
                _ => return,
            }
        }
    });
    out
}

/// Sync appends of compressed, encrypted records.
fn codec_workload(fs: Arc<dyn FileSystem>, records: u64) -> Outcome {
    let mut out = Outcome::default();
    let Ok(log) = open_variant(fs, FlushStrategy::Sync, SMALL, Variant::Codec) else {
        return out;
    };
    for i in 0..records {
        out.attempted = i + 1;
        if log.append(&payload(i)).is_err() {
            return out;
        }
        out.durable = i + 1;
    }
    out
}

/// Appends `records` records to a new log, flushing every `flush_every`
/// records when the strategy does not sync by itself.
fn workload_with(
    fs: Arc<dyn FileSystem>,
    strategy: FlushStrategy,
    segment_size: u64,
    records: u64,
    flush_every: Option<u64>,
) -> Outcome {
    let mut out = Outcome::default();
    let Ok(log) = open(fs, strategy, segment_size) else {
        return out;
    };
    let mut i = 0;
    while i < records {
        let n = if i % 5 == 4 { 3 } else { 1 };
        let batch: Vec<Vec<u8>> = (i..i + n).map(payload).collect();
        out.attempted = i + n;
        let ok = log.append_batch(&batch).is_ok();
        if ok && strategy == FlushStrategy::Sync {
            out.durable = i + n;
        }
        out.durable = out.durable.max(log.durable_id().map_or(0, |d| d + 1));
        if !ok {
            return out;
        }
        i += n;
        if flush_every.is_some_and(|n| i % n == 0)
            && strategy != FlushStrategy::Sync
            && log.flush_blocking().is_ok()
        {
            out.durable = out.durable.max(log.durable_id().map_or(0, |d| d + 1));
        }
    }
    if log.flush_blocking().is_ok() {
        out.durable = out.durable.max(log.durable_id().map_or(0, |d| d + 1));
    }
    out
}

/// Reopens `img` and checks it (see the module docs).
fn check(img: &FaultyFileSystem, out: &Outcome) -> Result<(), String> {
    check_variant(img, out, Variant::Plain)
}

fn check_variant(img: &FaultyFileSystem, out: &Outcome, variant: Variant) -> Result<(), String> {
    let fs: Arc<dyn FileSystem> = Arc::new(img.clone());
    let log = open_variant(fs, FlushStrategy::Sync, SMALL, variant)
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
    for id in log.first_id().max(out.first)..next {
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

/// [`check`], then the same crash image with its index lost, opened with
/// `rebuild_index` (the index rebuilt by scanning the segment files): it
/// must keep every durable record too. A crash during a seal job leaves an
/// unsealed segment followed by the next one's file, which the rebuild
/// refused ("invalid footer") before it learnt background sealing.
fn check_with_rebuild(img: &FaultyFileSystem, out: &Outcome) -> Result<(), String> {
    let copy = img.deep_clone();
    check(img, out)?;
    let index_path = Path::new(DIR).join("index.json");
    if copy.exists(&index_path).map_err(|e| e.to_string())? {
        copy.remove_file(&index_path).map_err(|e| e.to_string())?;
    }
    let fs: Arc<dyn FileSystem> = Arc::new(copy);
    let index = FileIndex::open(fs.clone(), index_path).map_err(|e| e.to_string())?;
    let mut options = AofOptions::new(config(FlushStrategy::Sync, SMALL));
    options.fs = fs;
    options.time = Arc::new(StepClock::default());
    options.rebuild_index = true;
    let log =
        Aof::open_with(DIR, options, Arc::new(index)).map_err(|e| format!("rebuild needs a human: {e}"))?;
    let next = log.next_id();
    if next < out.durable || next > out.attempted {
        return Err(format!(
            "rebuilt log ends at {next}: durable {}, attempted {}",
            out.durable, out.attempted
        ));
    }
    for id in log.first_id().max(out.first)..next {
        let got = log.read(id).map_err(|e| format!("rebuilt, read {id}: {e}"))?;
        if got.as_deref() != Some(&payload(id)[..]) {
            return Err(format!("rebuilt, record {id} differs"));
        }
    }
    log.close_blocking().map_err(|e| format!("close: {e}"))
}

fn seeds() -> u64 {
    std::env::var("AOF_CRASH_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4)
}

fn sweep(strategy: FlushStrategy, points: CrashPoints, counting: OpCounting, records: u64) -> SweepReport {
    let base = FaultyFileSystem::new();
    Sweep::new(&base)
        .counting(counting)
        .points(points)
        .modes(CrashMode::UNSEEDED)
        .writeback_seeds(0..seeds())
        .run(
            move |fs| workload(fs, strategy, records),
            |img, out, _case| check(img, out),
        )
}

/// Sync: a crash at every operation, reads and opens included, from the
/// first open of a new log on.
#[test]
fn sync_crash_at_every_operation() {
    let report = sweep(FlushStrategy::Sync, CrashPoints::Every, OpCounting::All, 40);
    report.print_summary("Sync, every op");
    assert!(report.points > 150, "{} points", report.points);
    report.assert_clean();
}

/// Batched, Periodic and Async: seeded crash points.
#[test]
fn other_strategies_at_seeded_crash_points() {
    for strategy in [
        FlushStrategy::Batched(4),
        FlushStrategy::Periodic(1),
        FlushStrategy::Async,
    ] {
        let report = sweep(
            strategy,
            CrashPoints::Sample { seed: 7, count: 60 },
            OpCounting::All,
            60,
        );
        report.print_summary(&format!("{strategy:?}, 60 seeded ops"));
        report.assert_clean();
    }
}

/// Background sealing (`seal.rs`) with segments of several pages: a crash
/// while a full segment's seal job runs may leave its footer on disk ahead
/// of unsynced data pages, and the next segment's file unindexed.
#[test]
fn multi_page_segments_sealed_in_the_background() {
    for strategy in [FlushStrategy::Async, FlushStrategy::Batched(8)] {
        let report = Sweep::new(&FaultyFileSystem::new())
            .counting(OpCounting::All)
            .points(CrashPoints::Sample { seed: 5, count: 80 })
            .modes(CrashMode::UNSEEDED)
            .writeback_seeds(0..seeds() * 2)
            .run(
                move |fs| workload_with(fs, strategy, 12 * 1024, 160, Some(40)),
                |img, out, _case| check_with_rebuild(img, out),
            );
        report.print_summary(&format!("{strategy:?}, 12 KiB segments, 80 seeded ops"));
        report.assert_clean();
    }
}

/// Async durable appends (`append_durable`, `append` + `wait_durable`), the
/// syncer thread doing the fsyncs: seeded crash points.
#[test]
fn durable_appends_at_seeded_crash_points() {
    let report = Sweep::new(&FaultyFileSystem::new())
        .counting(OpCounting::All)
        .points(CrashPoints::Sample { seed: 11, count: 80 })
        .modes(CrashMode::UNSEEDED)
        .writeback_seeds(0..seeds())
        .run(
            |fs| durable_appends_workload(fs, 40),
            |img, out, _case| check(img, out),
        );
    report.print_summary("append_durable / wait_durable (Async), 80 seeded ops");
    assert!(report.points > 40, "{} points", report.points);
    report.assert_clean();
}

/// Compressed and encrypted records, Sync: a crash at every operation.
#[test]
fn codec_crash_at_every_operation() {
    let report = Sweep::new(&FaultyFileSystem::new())
        .counting(OpCounting::All)
        .points(CrashPoints::Every)
        .modes(CrashMode::UNSEEDED)
        .writeback_seeds(0..seeds())
        .run(
            |fs| codec_workload(fs, 30),
            |img, out, _case| check_variant(img, out, Variant::Codec),
        );
    report.print_summary("compressed + encrypted (Sync), every op");
    assert!(report.points > 100, "{} points", report.points);
    report.assert_clean();
}

/// A crash during recovery, then recovery again: crash images are reopened
/// under a second sweep that crashes the reopening itself at every
/// operation. The images come from a Sync workload after a power loss (torn,
/// reordered tails to cut) and from an Async workload after a process kill
/// (unsynced data still in the page cache, which recovery must sync before
/// it publishes it as durable: finding 2). What the reopening published as
/// durable must survive the second crash too.
#[test]
fn crash_during_recovery_then_recover_again() {
    let base = FaultyFileSystem::new();
    let mut images = Vec::new();
    for k in [25u64, 60, 97, 130] {
        let fs = base.deep_clone();
        fs.crash_at(k);
        let out = workload(Arc::new(fs.clone()), FlushStrategy::Sync, 40);
        images.push((fs.crash_image(CrashMode::Writeback { seed: k }), out));
    }
    // 900 records (~315 kB) in a 1 MiB segment, flushed only at the end: the
    // 256 KiB write buffer goes out unsynced. Killed (the disk copied with
    // its unsynced data still unsynced, as in a page cache) at the final
    // flush's fdatasync, the page cache holds data no fsync covered.
    let probe = base.deep_clone();
    probe.set_tracing(true);
    workload_with(Arc::new(probe.clone()), FlushStrategy::Async, LARGE, 900, None);
    let final_sync = probe
        .trace()
        .iter()
        .rev()
        .find(|op| op.kind == OpKind::Sync && op.path.to_string_lossy().contains(".seg"))
        .and_then(|op| op.index)
        .expect("the workload syncs its segment");
    let fs = base.deep_clone();
    fs.crash_at(final_sync - base.ops());
    let out = workload_with(Arc::new(fs.clone()), FlushStrategy::Async, LARGE, 900, None);
    images.push((fs.deep_clone(), out));
    let mut total = SweepReport::default();
    for (img, out) in &images {
        let report = Sweep::new(img)
            .counting(OpCounting::All)
            .modes(CrashMode::UNSEEDED)
            .writeback_seeds(0..seeds())
            .run(
                |fs| {
                    // Recovery alone: open, note what it published, close.
                    let mut seen = Outcome {
                        first: out.first,
                        attempted: out.attempted,
                        durable: out.durable,
                    };
                    if let Ok(log) = open(fs, FlushStrategy::Sync, SMALL) {
                        seen.durable = seen.durable.max(log.durable_id().map_or(0, |d| d + 1));
                        let _ = log.close_blocking();
                    }
                    seen
                },
                |img2, seen, _case| check(img2, seen),
            );
        total.points += report.points;
        total.images += report.images;
        total.failures.extend(report.failures);
        total.workload_panics.extend(report.workload_panics);
    }
    total.print_summary("recovery of crash images, every op");
    total.assert_clean();
}

/// Truncation and removal under Sync: appends across segments, a
/// `truncate_after` into a finalized segment (then appending the same ids
/// again), a `truncate_before`, more appends; crashed at every operation.
fn truncating_workload(fs: Arc<dyn FileSystem>) -> Outcome {
    let mut out = Outcome::default();
    let Ok(log) = open(fs, FlushStrategy::Sync, SMALL) else {
        return out;
    };
    let append_to = |log: &Aof, out: &mut Outcome, end: u64| -> bool {
        while log.next_id() < end {
            let id = log.next_id();
            out.attempted = out.attempted.max(id + 1);
            if log.append(&payload(id)).is_err() {
                return false;
            }
            out.durable = out.durable.max(id + 1);
        }
        true
    };
    if !append_to(&log, &mut out, 40) {
        return out;
    }
    // Records after 25 go; until it returns, some may survive a crash, and
    // ids from 26 on are not durable any more.
    out.durable = out.durable.min(26);
    if log.truncate_after(25).is_err() {
        return out;
    }
    if !append_to(&log, &mut out, 45) {
        return out;
    }
    out.first = 15;
    if log.truncate_before(15).is_err() {
        return out;
    }
    append_to(&log, &mut out, 50);
    out
}

/// `truncate_after`, `truncate_before` and appends around them, crashed at
/// every operation (reads included).
#[test]
fn truncation_crash_at_every_operation() {
    let base = FaultyFileSystem::new();
    let report = Sweep::new(&base)
        .counting(OpCounting::All)
        .modes(CrashMode::UNSEEDED)
        .writeback_seeds(0..seeds())
        .run(truncating_workload, |img, out, _case| check(img, out));
    report.print_summary("Sync with truncate_after and truncate_before, every op");
    report.assert_clean();
}

/// A wall clock that advances 7 µs a reading and jumps when told: TTL
/// retention expires what was finalized before a jump.
#[derive(Debug, Default)]
struct JumpClock(AtomicU64);

impl JumpClock {
    fn jump_s(&self, seconds: u64) {
        self.0.fetch_add(seconds * 1_000_000, Ordering::Relaxed);
    }
}

impl TimeSource for JumpClock {
    fn now_us(&self) -> u64 {
        1_700_000_000_000_000 + self.0.fetch_add(7, Ordering::Relaxed)
    }
}

/// What a retention workload got done before its crash.
#[derive(Debug, Default)]
struct RetentionOutcome {
    log: Outcome,
    /// The first id after the last retention that returned having removed
    /// segments itself: ids below it were removed and committed (removals
    /// commit in order), and must never come back.
    gone_below: u64,
    /// The first id appended after the clock jump: its segment and every
    /// later one is younger than the TTL, and must all be kept.
    keep_from: u64,
}

const TTL_S: u64 = 5;

/// Segments of 4 KiB with a TTL of 5 s: 30 records, a jump of 10 s,
/// 12 records more (their segments finalized after the jump), retention
/// (the segments finalized before the jump go: index entry, sync, file),
/// 8 records more and retention again (nothing more to expire). Under a
/// strategy other than Sync each record is flushed before the next.
fn retention_workload(
    fs: Arc<dyn FileSystem>,
    strategy: FlushStrategy,
    pre_allocate: bool,
) -> RetentionOutcome {
    let mut out = RetentionOutcome {
        keep_from: u64::MAX,
        ..RetentionOutcome::default()
    };
    let clock = Arc::new(JumpClock::default());
    let config = AofConfig::builder()
        .segment_size(SMALL)
        .flush_strategy(strategy)
        .ttl_seconds(Some(TTL_S))
        .pre_allocate_enabled(pre_allocate)
        .build()
        .unwrap();
    let Ok(index) = FileIndex::open(fs.clone(), Path::new(DIR).join("index.json")) else {
        return out;
    };
    let mut options = AofOptions::new(config);
    options.fs = fs;
    options.time = clock.clone();
    let Ok(log) = Aof::open_with(DIR, options, Arc::new(index)) else {
        return out;
    };
    let append_to = |out: &mut RetentionOutcome, end: u64| -> bool {
        while log.next_id() < end {
            let id = log.next_id();
            out.log.attempted = out.log.attempted.max(id + 1);
            if log.append(&payload(id)).is_err() {
                return false;
            }
            if strategy != FlushStrategy::Sync && log.flush_blocking().is_err() {
                return false;
            }
            out.log.durable = out.log.durable.max(id + 1);
        }
        true
    };
    if !append_to(&mut out, 30) {
        return out;
    }
    clock.jump_s(2 * TTL_S);
    out.keep_from = log.next_id();
    if !append_to(&mut out, 42) {
        return out;
    }
    // Only a call that removed something itself vouches for what went
    // before it: one that found nothing may have found a segment the
    // background thread took out and then failed to commit (the crash).
    match log.run_retention() {
        Ok(n) if n > 0 => out.gone_below = log.first_id(),
        Ok(_) => {}
        Err(_) => return out,
    }
    if !append_to(&mut out, 50) {
        return out;
    }
    if log.run_retention().is_ok_and(|n| n > 0) {
        out.gone_below = log.first_id();
    }
    let _ = log.close_blocking();
    out
}

/// The common checks, and: what retention committed never comes back,
/// what it had to keep is all there.
fn check_retention(img: &FaultyFileSystem, out: &RetentionOutcome) -> Result<(), String> {
    check(img, &out.log)?;
    let fs: Arc<dyn FileSystem> = Arc::new(img.clone());
    let log = open(fs, FlushStrategy::Sync, SMALL).map_err(|e| format!("reopen needs a human: {e}"))?;
    let first = log.first_id();
    if first < out.gone_below {
        return Err(format!(
            "removed records came back: first id {first} < {}",
            out.gone_below
        ));
    }
    if first > out.keep_from.min(log.next_id()) {
        return Err(format!(
            "retention removed records younger than the TTL: first id {first} > {}",
            out.keep_from
        ));
    }
    log.close_blocking().map_err(|e| format!("close: {e}"))
}

fn retention_sweep(strategy: FlushStrategy, pre_allocate: bool) -> SweepReport {
    Sweep::new(&FaultyFileSystem::new())
        .counting(OpCounting::All)
        .modes(CrashMode::UNSEEDED)
        .writeback_seeds(0..seeds())
        .run(
            move |fs| retention_workload(fs, strategy, pre_allocate),
            |img, out, _case| check_retention(img, out),
        )
}

/// TTL retention under Sync, crashed at every operation (reads included):
/// the expired segments' index entries, the index sync and the deletions.
#[test]
fn retention_crash_at_every_operation() {
    let report = retention_sweep(FlushStrategy::Sync, false);
    report.print_summary("Sync with TTL retention, every op");
    assert!(report.points > 250, "{} points", report.points);
    report.assert_clean();
}

/// Pre-allocated segments (a background thread prepares the next file,
/// zero-filled and synced, and the writer renames it in) under Sync with
/// retention, crashed at every operation. The preparing thread runs beside
/// the writer, so some crash points of the run without a crash are not
/// reached in a crashed run (reported, not failures).
#[test]
fn pre_allocation_and_retention_crash_at_every_operation() {
    pre_allocation_sweep(
        FlushStrategy::Sync,
        "Sync, pre-allocated (zero-filled) segments, TTL retention, every op",
    );
}

/// The same under Batched, whose preparer reserves the file's space
/// (`allocate`, in the fault model a `set_len`) instead of writing zeros
/// (which strategy prepares how: `writer::tests`).
#[test]
fn reserved_segments_and_retention_crash_at_every_operation() {
    pre_allocation_sweep(
        FlushStrategy::Batched(4),
        "Batched(4), pre-allocated (reserved) segments, TTL retention, every op",
    );
}

fn pre_allocation_sweep(strategy: FlushStrategy, what: &str) {
    let report = retention_sweep(strategy, true);
    report.print_summary(what);
    assert!(report.points > 250, "{} points", report.points);
    assert!(
        report.ops.get(OpKind::Create) > 8,
        "no pre-allocated files: {}",
        report.ops
    );
    report.assert_clean();
}
