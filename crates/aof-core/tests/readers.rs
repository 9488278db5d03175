//! Readers, tails, the reader-aware cache, retention and truncation.

use aof_core::layout::segment_file_name;
use aof_core::testing::{CrashMode, FaultyFileSystem, FileIndex};
use aof_core::{Aof, AofError, FileSystem, entries_from_files};
use aof_core::{AofOptions, TimeSource};
use aof_record::index::MemorySegmentIndex;
use aof_record::{AofConfig, FlushStrategy, SegmentIndex};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

fn config(strategy: FlushStrategy, cache: usize) -> AofConfig {
    AofConfig::builder()
        .segment_size(4096)
        .segment_cache_size(cache)
        .flush_strategy(strategy)
        .pre_allocate_enabled(false)
        .build()
        .unwrap()
}

fn payload(i: u64) -> Vec<u8> {
    let len = (i * 37 % 300) as usize;
    (0..len).map(|j| (i as usize + j * 7) as u8).collect()
}

#[test]
fn readers_and_tails_see_every_record_once_in_order_beside_appenders() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(
        Aof::open(
            dir.path(),
            config(FlushStrategy::Sync, 2),
            Arc::new(MemorySegmentIndex::new()),
        )
        .unwrap(),
    );
    const N: u64 = 1500;
    std::thread::scope(|s| {
        // Two appenders, each appending its own half.
        for t in 0..2u64 {
            let log = &log;
            s.spawn(move || {
                for _ in 0..N / 2 {
                    let id = log.append(&[]).unwrap();
                    let _ = (t, id);
                }
            });
        }
        // Tails follow the live log.
        for _ in 0..3 {
            let log = &log;
            s.spawn(move || {
                let mut tail = log.tail(0).unwrap();
                for expected in 0..N {
                    let r = tail
                        .next_timeout(Duration::from_secs(30))
                        .unwrap()
                        .expect("tail stalled");
                    assert_eq!(r.id, expected, "out of order or duplicated");
                    assert!(r.payload.is_empty());
                }
            });
        }
    });
    // Readers after the fact, from various starts, across every segment.
    assert!(log.performance_metrics().segments_finalized() > 2);
    for from in [0, 1, 700, N - 1, N] {
        let ids: Vec<u64> = log.reader(from).unwrap().map(|r| r.unwrap().id).collect();
        assert_eq!(ids, (from..N).collect::<Vec<_>>());
    }
}

#[test]
fn payloads_read_in_order_are_exact_even_under_a_one_segment_cache() {
    let dir = tempfile::tempdir().unwrap();
    let log = Aof::open(
        dir.path(),
        config(FlushStrategy::Async, 1),
        Arc::new(MemorySegmentIndex::new()),
    )
    .unwrap();
    let n = 400;
    for i in 0..n {
        log.append(&payload(i)).unwrap();
    }
    log.flush_blocking().unwrap();
    let mut readers: Vec<_> = (0..4).map(|k| log.reader(k * 90).unwrap()).collect();
    // Interleave four readers in different segments, so each read evicts.
    let mut done = [false; 4];
    while !done.iter().all(|d| *d) {
        for (k, r) in readers.iter_mut().enumerate() {
            if done[k] {
                continue;
            }
            match r.next() {
                Some(rec) => {
                    let rec = rec.unwrap();
                    assert_eq!(&rec.payload[..], &payload(rec.id)[..], "record {}", rec.id);
                }
                None => done[k] = true,
            }
        }
    }
    for i in (0..n).rev().step_by(7) {
        assert_eq!(log.read(i).unwrap().as_deref(), Some(&payload(i)[..]));
    }
    let m = log.performance_metrics().snapshot();
    assert!(m.cache_evictions > 10, "{m:?}");
    assert!(m.cache_hits > 0 && m.cache_misses > 0);
}

#[test]
fn tails_see_records_once_durable_and_the_reader_limit_holds() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = AofOptions::new(config(FlushStrategy::Async, 4));
    options.max_readers = 2;
    let log = Aof::open_with(dir.path(), options, Arc::new(MemorySegmentIndex::new())).unwrap();
    let mut tail = log.tail(0).unwrap();
    log.append(b"not yet").unwrap();
    assert_eq!(
        log.read(0).unwrap().as_deref(),
        Some(&b"not yet"[..]),
        "read by id sees it"
    );
    assert_eq!(
        tail.next_timeout(Duration::from_millis(20)).unwrap(),
        None,
        "the tail does not, until flushed"
    );
    log.flush_blocking().unwrap();
    assert_eq!(
        &tail
            .next_timeout(Duration::from_secs(5))
            .unwrap()
            .unwrap()
            .payload[..],
        b"not yet"
    );
    let second = log.reader(0).unwrap();
    assert!(matches!(
        log.reader(0),
        Err(AofError::ReaderLimitExceeded { limit: 2 })
    ));
    drop(second);
    assert!(log.reader(0).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_tail_wakes_on_append() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(
        Aof::open(
            dir.path(),
            config(FlushStrategy::Sync, 4),
            Arc::new(MemorySegmentIndex::new()),
        )
        .unwrap(),
    );
    let mut tail = log.tail(0).unwrap();
    let writer = {
        let log = log.clone();
        tokio::task::spawn_blocking(move || {
            for i in 0..50u64 {
                std::thread::sleep(Duration::from_millis(1));
                log.append(&i.to_le_bytes()).unwrap();
            }
        })
    };
    for i in 0..50u64 {
        let r = tokio::time::timeout(Duration::from_secs(30), tail.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((r.id, &r.payload[..]), (i, &i.to_le_bytes()[..]));
    }
    writer.await.unwrap();
}

/// A wall clock the test moves by hand.
#[derive(Debug)]
struct HandClock(AtomicU64);

impl TimeSource for HandClock {
    fn now_us(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[test]
fn retention_removes_old_segments_but_never_a_pinned_one_under_a_reader() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(HandClock(AtomicU64::new(1_000_000_000)));
    let config = AofConfig::builder()
        .segment_size(4096)
        .ttl_seconds(Some(3600))
        .flush_strategy(FlushStrategy::Sync)
        .pre_allocate_enabled(false)
        .build()
        .unwrap();
    let mut options = AofOptions::new(config);
    options.time = clock.clone();
    let index = Arc::new(MemorySegmentIndex::new());
    let log = Aof::open_with(dir.path(), options, index.clone()).unwrap();
    for i in 0..100 {
        log.append(&payload(i)).unwrap();
    }
    let old_segments = index.len().unwrap() - 1;
    assert!(old_segments >= 3);
    // Time passes; newer records arrive.
    clock.0.fetch_add(7200 * 1_000_000, Ordering::Relaxed);
    for i in 100..200 {
        log.append(&payload(i)).unwrap();
    }
    // A reader positioned in the oldest segment pins it.
    let mut reader = log.reader(0).unwrap();
    assert_eq!(reader.next().unwrap().unwrap().id, 0);
    let first_file = dir.path().join(segment_file_name(0));
    let removed = log.run_retention().unwrap();
    assert!(removed >= old_segments, "removed {removed}");
    // The segment that was active when time jumped holds new records too: it stays.
    let first = log.first_id();
    assert!(first > 0 && first <= 100, "first id {first}");
    assert_eq!(log.read(first - 1).unwrap(), None, "expired ids read as None");
    assert_eq!(log.read(5).unwrap(), None);
    assert!(first_file.exists(), "a pinned segment's file was deleted");
    // The reader finishes its segment undisturbed, then skips to what is kept.
    let mut ids = vec![0];
    for r in reader.by_ref() {
        let r = r.unwrap();
        assert_eq!(&r.payload[..], &payload(r.id)[..]);
        ids.push(r.id);
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(*ids.last().unwrap(), 199);
    drop(reader);
    assert!(!first_file.exists(), "the file goes once the reader leaves");
    // Nothing newer than the TTL was touched.
    for i in 100..200 {
        assert_eq!(log.read(i).unwrap().as_deref(), Some(&payload(i)[..]));
    }
}

fn faulty_open(fs: &FaultyFileSystem) -> Result<Aof, AofError> {
    let dyn_fs: Arc<dyn FileSystem> = Arc::new(fs.clone());
    let index = FileIndex::open(dyn_fs.clone(), "/log/index.json")?;
    let mut options = AofOptions::new(config(FlushStrategy::Sync, 2));
    options.fs = dyn_fs;
    Aof::open_with("/log", options, Arc::new(index))
}

fn fill(fs: &FaultyFileSystem, n: u64) {
    let log = faulty_open(fs).unwrap();
    for i in 0..n {
        log.append(&payload(i)).unwrap();
    }
}

/// After recovery the log must be a gap-free run of the original records.
fn check_prefix(log: &Aof, fs: &FaultyFileSystem, what: &str) {
    let first = log.first_id();
    for id in first..log.next_id() {
        assert_eq!(
            log.read(id).unwrap().as_deref(),
            Some(&payload(id)[..]),
            "{what}: record {id}"
        );
    }
    let rebuilt = entries_from_files(fs, Path::new("/log")).unwrap();
    assert_eq!(
        log.index().get_all_segments().unwrap(),
        rebuilt,
        "{what}: index differs from the files"
    );
}

#[test]
fn truncate_after_in_the_active_and_in_a_finalized_segment() {
    let fs = FaultyFileSystem::new();
    fill(&fs, 120);
    let log = faulty_open(&fs).unwrap();
    // Inside the active segment.
    log.truncate_after(117).unwrap();
    assert_eq!(log.next_id(), 118);
    assert_eq!(log.read(118).unwrap(), None);
    assert_eq!(log.append(b"new 118").unwrap(), 118);
    // Deep into a finalized segment.
    log.truncate_after(20).unwrap();
    assert_eq!(log.next_id(), 21);
    assert_eq!(log.durable_id(), Some(20));
    assert_eq!(log.read(21).unwrap(), None);
    assert_eq!(log.read(20).unwrap().as_deref(), Some(&payload(20)[..]));
    for i in 21..60 {
        assert_eq!(log.append(&payload(i)).unwrap(), i);
    }
    drop(log);
    let log = faulty_open(&fs).unwrap();
    assert_eq!(log.next_id(), 60);
    check_prefix(&log, &fs, "after truncate_after");
    let ids: Vec<u64> = log.reader(0).unwrap().map(|r| r.unwrap().id).collect();
    assert_eq!(ids, (0..60).collect::<Vec<_>>());
}

#[test]
fn truncate_after_is_crash_safe_at_every_operation() {
    let clean = FaultyFileSystem::new();
    fill(&clean, 120);
    let ops = {
        let img = clean.deep_clone();
        let log = faulty_open(&img).unwrap();
        let before = img.ops();
        log.truncate_after(33).unwrap();
        img.ops() - before
    };
    assert!(ops > 8, "{ops}");
    for k in 0..ops {
        let img = clean.deep_clone();
        let log = faulty_open(&img).unwrap();
        img.crash_at(k);
        let _ = log.truncate_after(33);
        drop(log);
        for mode in [CrashMode::LoseUnsynced, CrashMode::TearLastWrite] {
            let after = img.crash_image(mode);
            let what = format!("crash at op {k} of truncate_after, {mode:?}");
            let log = faulty_open(&after).unwrap_or_else(|e| panic!("{what}: {e}"));
            let next = log.next_id();
            assert!((34..=120).contains(&next), "{what}: next id {next}");
            check_prefix(&log, &after, &what);
            // Finishing the job after recovery works.
            log.truncate_after(33).unwrap();
            assert_eq!(log.next_id(), 34, "{what}");
        }
    }
}

#[test]
fn truncate_before_drops_whole_segments_and_is_crash_safe() {
    let clean = FaultyFileSystem::new();
    fill(&clean, 150);
    {
        let img = clean.deep_clone();
        let log = faulty_open(&img).unwrap();
        let removed = log.truncate_before(70).unwrap();
        assert!(removed >= 2);
        assert!(log.first_id() <= 70 && log.first_id() > 0);
        assert_eq!(log.read(0).unwrap(), None);
        let ids: Vec<u64> = log.reader(0).unwrap().map(|r| r.unwrap().id).collect();
        assert_eq!(ids.first().copied(), Some(log.first_id()));
        assert_eq!(ids.len() as u64, 150 - log.first_id());
        let first = log.first_id();
        drop(log);
        let log = faulty_open(&img).unwrap();
        assert_eq!(log.first_id(), first);
        check_prefix(&log, &img, "after truncate_before");
    }
    let ops = {
        let img = clean.deep_clone();
        let log = faulty_open(&img).unwrap();
        let before = img.ops();
        log.truncate_before(70).unwrap();
        img.ops() - before
    };
    for k in 0..ops {
        let img = clean.deep_clone();
        let log = faulty_open(&img).unwrap();
        img.crash_at(k);
        let _ = log.truncate_before(70);
        drop(log);
        let after = img.crash_image(CrashMode::LoseUnsynced);
        let what = format!("crash at op {k} of truncate_before");
        let log = faulty_open(&after).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(log.next_id(), 150, "{what}");
        check_prefix(&log, &after, &what);
        let leftovers = after
            .list(Path::new("/log"))
            .unwrap()
            .into_iter()
            .filter(|n| n.ends_with(".seg"))
            .filter_map(|n| n.trim_end_matches(".seg").parse::<u64>().ok())
            .filter(|b| *b < log.first_id())
            .count();
        assert_eq!(leftovers, 0, "{what}: segment files below the first id remain");
    }
}
