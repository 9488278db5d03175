//! Behaviour of the engine on real files.

use aof_core::layout::segment_file_name;
use aof_core::{Aof, AofError, LocalFileSystem};
use aof_core::{AofOptions, TimeSource};
use aof_record::index::MemorySegmentIndex;
use aof_record::{AofConfig, FlushStrategy, SegmentIndex, SegmentIndexExt, SegmentStatus};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

fn config(strategy: FlushStrategy) -> AofConfig {
    AofConfig::builder()
        .segment_size(8192)
        .flush_strategy(strategy)
        .build()
        .unwrap()
}

fn open(dir: &Path, strategy: FlushStrategy, index: &Arc<MemorySegmentIndex>) -> Result<Aof, AofError> {
    Aof::open(dir, config(strategy), index.clone())
}

#[test]
fn ids_are_contiguous_across_rollovers_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let index = Arc::new(MemorySegmentIndex::new());
    let payloads: Vec<Vec<u8>> = (0..300).map(|i| vec![i as u8; i % 200]).collect();
    {
        let log = open(dir.path(), FlushStrategy::Async, &index).unwrap();
        for (i, p) in payloads.iter().enumerate() {
            assert_eq!(log.append(p).unwrap(), i as u64);
        }
        assert!(log.performance_metrics().segments_finalized() >= 3);
        log.close_blocking().unwrap();
    }
    let log = open(dir.path(), FlushStrategy::Async, &index).unwrap();
    assert_eq!(log.next_id(), 300);
    for (i, p) in payloads.iter().enumerate() {
        assert_eq!(log.read(i as u64).unwrap().as_deref(), Some(&p[..]));
    }
    // The index describes every segment, the last active.
    let all = index.get_all_segments().unwrap();
    assert_eq!(all.last().unwrap().status, SegmentStatus::Active);
    assert!(
        all[..all.len() - 1]
            .iter()
            .all(|e| e.status == SegmentStatus::Finalized)
    );
    for pair in all.windows(2) {
        assert_eq!(pair[0].next_id(), pair[1].base_id, "segments must be contiguous");
    }
}

/// A wall clock the test moves by hand, backwards too.
#[derive(Debug)]
struct HandClock(AtomicU64);

impl TimeSource for HandClock {
    fn now_us(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[test]
fn timestamps_never_decrease_when_the_clock_steps_back() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(HandClock(AtomicU64::new(5_000_000)));
    let mut options = AofOptions::new(config(FlushStrategy::Sync));
    options.time = clock.clone();
    let log = Aof::open_with(dir.path(), options, Arc::new(MemorySegmentIndex::new())).unwrap();
    for step in [10i64, -3_000_000, 1, -1, 500] {
        clock.0.store(
            (clock.0.load(Ordering::Relaxed) as i64 + step) as u64,
            Ordering::Relaxed,
        );
        log.append(b"t").unwrap();
    }
    log.close_blocking().unwrap();
    let seg = std::fs::read(dir.path().join(segment_file_name(0))).unwrap();
    let mut at = aof_record::SEGMENT_HEADER_SIZE;
    let mut last = 0;
    let mut seen = Vec::new();
    while let Ok(rec) = aof_record::record::decode_record(&seg[at..], 1 << 20) {
        assert!(rec.header.timestamp_us >= last, "timestamp went back");
        last = rec.header.timestamp_us;
        seen.push(last);
        at += rec.encoded_len();
    }
    assert_eq!(seen, [5_000_010, 5_000_010, 5_000_010, 5_000_010, 5_000_010]);
}

#[test]
fn oversized_records_are_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let index = Arc::new(MemorySegmentIndex::new());
    let log = open(dir.path(), FlushStrategy::Sync, &index).unwrap();
    let max = log.config().max_record_size();
    assert!(matches!(
        log.append(&vec![0u8; max as usize + 1]),
        Err(AofError::RecordTooLarge { size, max: m }) if size == u64::from(max) + 1 && m == max
    ));
    assert!(
        log.append_batch(&[b"ok".to_vec(), vec![0u8; max as usize + 1]])
            .is_err()
    );
    assert_eq!(log.next_id(), 0, "a refused batch appends nothing");
    assert_eq!(
        log.append(&vec![1u8; max as usize]).unwrap(),
        0,
        "the maximum itself fits"
    );
}

#[test]
fn strategies_reach_durability_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let index = Arc::new(MemorySegmentIndex::new());
    let log = open(dir.path(), FlushStrategy::Async, &index).unwrap();
    log.append(b"a").unwrap();
    assert_eq!(log.durable_id(), None, "Async: not durable before a flush");
    assert_eq!(log.flush_blocking().unwrap(), Some(0));
    assert_eq!(log.durable_id(), Some(0));
    drop(log);

    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        FlushStrategy::Batched(10),
        &MemorySegmentIndex::new().into(),
    )
    .unwrap();
    for _ in 0..9 {
        log.append(b"b").unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(
        log.durable_id(),
        None,
        "Batched(10): 9 records do not trigger a flush"
    );
    log.append(b"b").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while log.durable_id() != Some(9) {
        assert!(
            std::time::Instant::now() < deadline,
            "the 10th record did not trigger a flush"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(log.flush_metrics().snapshot().batched_flushes, 1);
    drop(log);

    let dir = tempfile::tempdir().unwrap();
    let log = open(
        dir.path(),
        FlushStrategy::Periodic(20),
        &MemorySegmentIndex::new().into(),
    )
    .unwrap();
    log.append(b"c").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while log.durable_id() != Some(0) {
        assert!(
            std::time::Instant::now() < deadline,
            "the periodic flush never came"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert!(log.flush_metrics().snapshot().periodic_flushes >= 1);
}

#[test]
fn concurrent_sync_appenders_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let index = Arc::new(MemorySegmentIndex::new());
    let log = Arc::new(open(dir.path(), FlushStrategy::Sync, &index).unwrap());
    let ids = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..8u8 {
            let log = &log;
            let ids = &ids;
            s.spawn(move || {
                for i in 0..100u8 {
                    let id = log.append(&[t, i]).unwrap();
                    assert!(
                        log.durable_id().unwrap() >= id,
                        "Sync append returned before durable"
                    );
                    ids.lock().unwrap().push((id, [t, i]));
                }
            });
        }
    });
    let mut ids = ids.into_inner().unwrap();
    ids.sort();
    assert_eq!(ids.len(), 800);
    for (n, (id, p)) in ids.iter().enumerate() {
        assert_eq!(*id, n as u64, "ids must be contiguous");
        assert_eq!(log.read(*id).unwrap().as_deref(), Some(&p[..]));
    }
    let m = log.flush_metrics().snapshot();
    assert_eq!(m.records_flushed, 800);
    assert!(
        m.successful_flushes < 800,
        "no group commit: {} fsyncs for 800 records",
        m.successful_flushes
    );
}

#[test]
fn torn_tail_on_disk_is_cut_and_kept_beside_the_segment() {
    let dir = tempfile::tempdir().unwrap();
    let index = Arc::new(MemorySegmentIndex::new());
    {
        let log = open(dir.path(), FlushStrategy::Sync, &index).unwrap();
        log.append(b"one").unwrap();
        log.append(b"two").unwrap();
    }
    let seg = dir.path().join(segment_file_name(0));
    let clean = std::fs::read(&seg).unwrap();
    let data_end = index.get_entry(0).unwrap().unwrap().original_size as usize;
    // A half-written third record.
    let mut torn = clean.clone();
    torn.resize(torn.len().max(data_end + 20), 0);
    torn[data_end..data_end + 20].copy_from_slice(&[0xAB; 20]);
    std::fs::write(&seg, &torn).unwrap();
    let log = open(dir.path(), FlushStrategy::Sync, &index).unwrap();
    assert_eq!(log.next_id(), 2);
    assert_eq!(log.performance_metrics().torn_tails_cut(), 1);
    let kept = dir
        .path()
        .join(format!("{}.torn-{data_end}", segment_file_name(0)));
    assert_eq!(std::fs::read(kept).unwrap(), vec![0xAB; 20]);
    assert_eq!(log.append(b"three").unwrap(), 2);
    assert_eq!(log.read(2).unwrap().as_deref(), Some(&b"three"[..]));
}

#[test]
fn corruption_before_valid_records_is_refused_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let index = Arc::new(MemorySegmentIndex::new());
    {
        let log = open(dir.path(), FlushStrategy::Sync, &index).unwrap();
        for p in [&b"first"[..], b"second", b"third"] {
            log.append(p).unwrap();
        }
    }
    let seg = dir.path().join(segment_file_name(0));
    let mut bytes = std::fs::read(&seg).unwrap();
    let second = 64 + 32 + 5;
    bytes[second + 34] ^= 0x40;
    std::fs::write(&seg, &bytes).unwrap();
    match open(dir.path(), FlushStrategy::Sync, &index) {
        Err(AofError::Corruption {
            segment: 0, offset, ..
        }) => assert_eq!(offset, second as u64),
        other => panic!("expected corruption at {second}, got {other:?}"),
    }
    assert_eq!(
        std::fs::read(&seg).unwrap(),
        bytes,
        "a refused open must not modify the segment"
    );
}

#[test]
fn corrupt_finalized_segment_reads_give_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let index = Arc::new(MemorySegmentIndex::new());
    let log = open(dir.path(), FlushStrategy::Async, &index).unwrap();
    for i in 0..200u32 {
        log.append(&i.to_le_bytes().repeat(20)).unwrap();
    }
    log.close_blocking().unwrap();
    let seg = dir.path().join(segment_file_name(0));
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[64 + 32 + 3] ^= 1; // inside record 0's payload
    std::fs::write(&seg, &bytes).unwrap();
    let log = open(dir.path(), FlushStrategy::Async, &index).unwrap();
    assert!(matches!(
        log.read(0),
        Err(AofError::Corruption {
            segment: 0,
            offset: 64,
            ..
        })
    ));
    assert_eq!(
        log.read(1).unwrap().as_deref(),
        Some(&1u32.to_le_bytes().repeat(20)[..])
    );
}

#[test]
fn a_lost_index_is_reported_then_rebuilt_on_request() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(
            dir.path(),
            FlushStrategy::Async,
            &MemorySegmentIndex::new().into(),
        )
        .unwrap();
        for i in 0..100u8 {
            log.append(&[i; 100]).unwrap();
        }
    }
    let fresh: Arc<MemorySegmentIndex> = MemorySegmentIndex::new().into();
    assert!(matches!(
        open(dir.path(), FlushStrategy::Async, &fresh),
        Err(AofError::UnindexedSegments { first: 0, .. })
    ));
    assert!(
        fresh.is_empty().unwrap(),
        "a refused open must not write the index"
    );
    let mut options = AofOptions::new(config(FlushStrategy::Async));
    options.rebuild_index = true;
    let log = Aof::open_with(dir.path(), options, fresh.clone()).unwrap();
    assert_eq!(log.next_id(), 100);
    assert_eq!(log.read(42).unwrap().as_deref(), Some(&[42u8; 100][..]));
    assert!(fresh.len().unwrap() > 1);
}

#[test]
fn temp_files_are_removed_and_unknown_files_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let index = Arc::new(MemorySegmentIndex::new());
    drop(open(dir.path(), FlushStrategy::Sync, &index).unwrap());
    std::fs::write(dir.path().join("prealloc-9.tmp"), b"x").unwrap();
    std::fs::write(dir.path().join("00000000000000000005.seg.tmp"), b"x").unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"mine").unwrap();
    drop(open(dir.path(), FlushStrategy::Sync, &index).unwrap());
    assert!(!dir.path().join("prealloc-9.tmp").exists());
    assert!(!dir.path().join("00000000000000000005.seg.tmp").exists());
    assert_eq!(std::fs::read(dir.path().join("notes.txt")).unwrap(), b"mine");
}

#[test]
fn a_second_open_in_the_same_process_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let index = Arc::new(MemorySegmentIndex::new());
    let log = open(dir.path(), FlushStrategy::Sync, &index).unwrap();
    assert!(matches!(
        open(dir.path(), FlushStrategy::Sync, &MemorySegmentIndex::new().into()),
        Err(AofError::Locked { .. })
    ));
    drop(log);
    open(dir.path(), FlushStrategy::Sync, &index).unwrap();
}

#[test]
fn pre_allocated_segments_roll_over_and_recover() {
    let dir = tempfile::tempdir().unwrap();
    let index = Arc::new(MemorySegmentIndex::new());
    let config = AofConfig::builder()
        .segment_size(64 * 1024)
        .pre_allocate_threshold(0.25)
        .flush_strategy(FlushStrategy::Batched(16))
        .build()
        .unwrap();
    {
        let log = Aof::open(dir.path(), config.clone(), index.clone()).unwrap();
        for i in 0..3000u32 {
            log.append(&i.to_le_bytes().repeat(16)).unwrap();
        }
        assert!(log.performance_metrics().segments_finalized() >= 2);
        log.flush_blocking().unwrap();
        // No close: the active segment is pre-allocated and zero-filled past its data.
    }
    let log = Aof::open(dir.path(), config, index).unwrap();
    assert_eq!(log.next_id(), 3000);
    for i in (0..3000u32).step_by(97) {
        assert_eq!(
            log.read(u64::from(i)).unwrap().as_deref(),
            Some(&i.to_le_bytes().repeat(16)[..])
        );
    }
    assert_eq!(log.performance_metrics().torn_tails_cut(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_flush_and_close() {
    let dir = tempfile::tempdir().unwrap();
    let log = Aof::open(
        dir.path(),
        config(FlushStrategy::Async),
        Arc::new(MemorySegmentIndex::new()),
    )
    .unwrap();
    log.append(b"x").unwrap();
    assert_eq!(log.flush().await.unwrap(), Some(0));
    log.close().await.unwrap();
    let _ = LocalFileSystem;
}
