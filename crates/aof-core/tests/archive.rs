//! The archival lifecycle on real files with an in-memory archive: the
//! archiver, transparent reads across archived segments, repairs on open,
//! outages, backpressure, and removal of archived segments.

use aof_core::layout::{ARCHIVE_CACHE_DIR, archive_key, segment_file_name};
use aof_core::{Aof, AofError, AofOptions, Repair};
use aof_record::archive::{
    ArchiveError, ArchiveKey, ArchiveResult, ArchiveStorage, ArchiveStorageExt, ListedObject, MemoryArchive,
    ObjectMeta, ObjectSource, ObjectStream,
};
use aof_record::index::MemorySegmentIndex;
use aof_record::{AofConfig, FlushStrategy, LogId, SegmentIndex, SegmentStatus};
use bytes::Bytes;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A [`MemoryArchive`] that fails uploads or reads while told to, and counts ranged reads.
#[derive(Debug, Default)]
struct Flaky {
    inner: MemoryArchive,
    fail_store: AtomicBool,
    fail_read: AtomicBool,
    ranged_reads: AtomicU64,
}

fn down(key: &ArchiveKey) -> ArchiveError {
    ArchiveError::Unavailable {
        key: key.clone(),
        source: "injected outage".into(),
    }
}

#[async_trait::async_trait]
impl ArchiveStorage for Flaky {
    async fn store(&self, key: &ArchiveKey, source: ObjectSource) -> ArchiveResult<ObjectMeta> {
        if self.fail_store.load(Ordering::SeqCst) {
            return Err(down(key));
        }
        self.inner.store(key, source).await
    }
    async fn read_range(&self, key: &ArchiveKey, range: Range<u64>) -> ArchiveResult<Bytes> {
        if self.fail_read.load(Ordering::SeqCst) {
            return Err(down(key));
        }
        self.ranged_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read_range(key, range).await
    }
    async fn read(&self, key: &ArchiveKey) -> ArchiveResult<ObjectStream> {
        self.inner.read(key).await
    }
    async fn head(&self, key: &ArchiveKey) -> ArchiveResult<ObjectMeta> {
        if self.fail_store.load(Ordering::SeqCst) || self.fail_read.load(Ordering::SeqCst) {
            return Err(down(key));
        }
        self.inner.head(key).await
    }
    async fn delete(&self, key: &ArchiveKey) -> ArchiveResult<()> {
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: Option<&ArchiveKey>) -> ArchiveResult<Vec<ListedObject>> {
        self.inner.list(prefix).await
    }
}

fn config(threshold: u64) -> AofConfig {
    AofConfig::builder()
        .segment_size(16 * 1024)
        .flush_strategy(FlushStrategy::Async)
        .archive_enabled(true)
        .archive_threshold(threshold)
        .archive_backpressure_segments(threshold + 4)
        .build()
        .unwrap()
}

fn options(config: AofConfig, archive: Arc<dyn ArchiveStorage>) -> AofOptions {
    let mut o = AofOptions::new(config);
    o.archive = Some(archive);
    o.archive_retry_backoff = Duration::from_millis(5);
    // Appends outrunning the archiver wait for it (the backpressure test
    // sets its own wait).
    o.backpressure_wait = Duration::from_secs(30);
    o
}

fn payload(i: u64) -> Vec<u8> {
    format!("record {i} ").repeat(1 + (i % 7) as usize).into_bytes()
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn object_keys(archive: &dyn ArchiveStorage) -> Vec<String> {
    block_on(archive.list(None))
        .unwrap()
        .into_iter()
        .map(|o| o.key.as_str().to_owned())
        .collect()
}

fn archived(index: &MemorySegmentIndex) -> Vec<aof_record::SegmentEntry> {
    index
        .get_all_segments()
        .unwrap()
        .into_iter()
        .filter(|e| e.status.is_archived())
        .collect()
}

/// Appends `n` records, flushing at the end.
fn fill(log: &Aof, from: u64, n: u64) {
    for i in from..from + n {
        assert_eq!(log.append(&payload(i)).unwrap(), i);
    }
    log.flush_blocking().unwrap();
}

#[test]
fn archival_enabled_without_storage_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let err = Aof::open(dir.path(), config(2), Arc::new(MemorySegmentIndex::new())).unwrap_err();
    assert!(matches!(err, AofError::ArchiveNotConfigured), "{err}");
    assert!(!dir.path().join("MANIFEST").exists(), "nothing was created");
}

#[test]
fn old_segments_move_to_the_archive_and_stay_readable_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let index = Arc::new(MemorySegmentIndex::new());
    let archive = Arc::new(Flaky::default());
    let n = 3000;
    let mut opts = options(config(2), archive.clone());
    opts.archive_cache_bytes = 40 * 1024; // a few segments: far less than the log
    let log = Aof::open_with(dir.path(), opts.clone(), index.clone()).unwrap();
    fill(&log, 0, n);
    let finalized = log.performance_metrics().segments_finalized();
    assert!(finalized >= 8, "{finalized} segments");
    wait_until("archival", || log.archive_pending().0 <= 2);
    let entries = archived(&index);
    let statuses: Vec<_> = index
        .get_all_segments()
        .unwrap()
        .iter()
        .map(|e| (e.base_id, e.status))
        .collect();
    assert_eq!(
        entries.len() as u64,
        finalized - 2,
        "{statuses:?} pending {:?}",
        log.archive_pending()
    );
    let m = log.performance_metrics().archive();
    assert_eq!(m.segments_archived(), entries.len() as u64);
    assert!(
        m.compression_ratio() > 0.0 && m.compression_ratio() < 1.0,
        "{}",
        m.compression_ratio()
    );
    for e in &entries {
        // Committed with every field; the local file is gone; the key names the log.
        assert_eq!(e.status, SegmentStatus::ArchivedRemote);
        assert_eq!(
            e.archive_key.as_deref(),
            Some(&*archive_key(log.log_id(), e.base_id))
        );
        assert!(e.archived_at.is_some() && e.compressed_size.is_some() && e.compressed_checksum.is_some());
        wait_until("the local file's removal", || {
            !dir.path().join(segment_file_name(e.base_id)).exists()
        });
        let meta = block_on(archive.head(&ArchiveKey::new(e.archive_key.clone().unwrap()).unwrap())).unwrap();
        assert_eq!(
            (Some(meta.size), Some(meta.checksum)),
            (e.compressed_size, e.compressed_checksum)
        );
    }
    // Reads by id, cold and warm.
    for i in (0..n).step_by(97) {
        assert_eq!(log.read(i).unwrap().as_deref(), Some(&payload(i)[..]), "id {i}");
    }
    // A reader over the whole log: every record once, in order, across
    // archived, cached and local segments, with the cache smaller than the log.
    let mut next = 0;
    for r in log.reader(0).unwrap() {
        let r = r.unwrap();
        assert_eq!((r.id, &r.payload[..]), (next, &payload(next)[..]));
        next += 1;
    }
    assert_eq!(next, n);
    let cache_bytes: u64 = std::fs::read_dir(dir.path().join(ARCHIVE_CACHE_DIR))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let log_bytes: u64 = index
        .get_all_segments()
        .unwrap()
        .iter()
        .map(|e| e.original_size)
        .sum();
    assert!(
        cache_bytes < log_bytes / 2,
        "cache {cache_bytes} of a {log_bytes}-byte log"
    );
    assert!(m.cache_evictions() > 0 && m.cache_misses() > 0 && m.cache_hits() > 0);
    assert!(log.verify(&mut |_, _| {}).is_ok());
    log.close_blocking().unwrap();

    // Reopened: still every record; the cache was dropped, nothing repaired but that.
    let log = Aof::open_with(dir.path(), opts, index.clone()).unwrap();
    assert!(
        log.repairs()
            .iter()
            .all(|r| matches!(r, Repair::DropArchiveCache { .. })),
        "{:?}",
        log.repairs()
    );
    assert!(
        archived(&index)
            .iter()
            .all(|e| e.status == SegmentStatus::ArchivedRemote)
    );
    assert_eq!(log.reader(0).unwrap().count() as u64, n);
}

#[test]
fn a_cold_read_fetches_few_frames_and_concurrent_readers_share_them() {
    let dir = tempfile::tempdir().unwrap();
    let index = Arc::new(MemorySegmentIndex::new());
    let archive = Arc::new(Flaky::default());
    let log =
        Arc::new(Aof::open_with(dir.path(), options(config(1), archive.clone()), index.clone()).unwrap());
    fill(&log, 0, 1000);
    wait_until("archival", || log.archive_pending().0 <= 1);
    let first = archived(&index)[0].clone();
    let before = archive.ranged_reads.load(Ordering::SeqCst);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let log = log.clone();
            let id = first.base_id + 1;
            std::thread::spawn(move || log.read(id).unwrap().unwrap())
        })
        .collect();
    for t in threads {
        assert_eq!(&t.join().unwrap()[..], &payload(first.base_id + 1)[..]);
    }
    // One ranged read of the object's tail, which holds the seek table and
    // the segment's only frame (16 KiB): fetched once for four readers.
    let fetched = archive.ranged_reads.load(Ordering::SeqCst) - before;
    assert_eq!(fetched, 1, "ranged reads for four concurrent cold reads");
    // Read whole, the segment is recorded as cached locally.
    for r in log
        .reader(first.base_id)
        .unwrap()
        .take(first.record_count as usize)
    {
        r.unwrap();
    }
    let e = index.get_entry(first.base_id).unwrap().unwrap();
    assert_eq!(e.status, SegmentStatus::ArchivedCached);
    assert_eq!(
        e.local_path.as_deref(),
        Some(&*aof_core::layout::archive_cache_name(first.base_id))
    );
}

#[test]
fn an_outage_delays_archival_without_blocking_appends_then_backpressure_then_resume() {
    let dir = tempfile::tempdir().unwrap();
    let index = Arc::new(MemorySegmentIndex::new());
    let archive = Arc::new(Flaky::default());
    archive.fail_store.store(true, Ordering::SeqCst);
    let mut opts = options(config(1), archive.clone());
    opts.backpressure_wait = Duration::from_millis(20);
    let log = Aof::open_with(dir.path(), opts, index.clone()).unwrap();
    // Appends go on while the archive is down, up to the backpressure limit (5 segments).
    let mut next = 0;
    let err = loop {
        match log.append(&payload(next)) {
            Ok(id) => next = id + 1,
            Err(e) => break e,
        }
        assert!(next < 100_000, "no backpressure");
    };
    match err {
        AofError::Backpressure {
            pending_segments,
            pending_bytes,
        } => assert!(pending_segments >= 5 && pending_bytes > 0),
        other => panic!("{other}"),
    }
    assert!(matches!(log.try_append(b"x"), Err(AofError::WouldBlock { .. })));
    let m = log.performance_metrics().archive();
    assert!(m.failures() > 0 && m.backpressure_events() >= 2);
    assert!(archived(&index).is_empty() && !log.is_poisoned());
    // Every record appended is there, locally.
    log.flush_blocking().unwrap();
    for i in (0..next).step_by(13) {
        assert_eq!(log.read(i).unwrap().as_deref(), Some(&payload(i)[..]));
    }
    // The archive comes back: archival catches up and appends resume by themselves.
    archive.fail_store.store(false, Ordering::SeqCst);
    wait_until("appends to resume", || log.append(&payload(next)).is_ok());
    next += 1;
    fill(&log, next, 10);
    wait_until("archival", || log.archive_pending().0 <= 1);
    assert!(!archived(&index).is_empty());
}

#[test]
fn a_failed_remote_read_is_that_readers_error_only() {
    let dir = tempfile::tempdir().unwrap();
    let index = Arc::new(MemorySegmentIndex::new());
    let archive = Arc::new(Flaky::default());
    let log = Aof::open_with(dir.path(), options(config(1), archive.clone()), index.clone()).unwrap();
    fill(&log, 0, 1000);
    wait_until("archival", || log.archive_pending().0 <= 1);
    archive.fail_read.store(true, Ordering::SeqCst);
    let err = log.read(1).unwrap_err();
    assert!(
        matches!(err, AofError::Archive(ArchiveError::Unavailable { .. })),
        "{err}"
    );
    let mut reader = log.reader(0).unwrap();
    assert!(reader.try_next().is_err());
    // The log goes on: appends, local reads; then the same reader recovers.
    assert!(!log.is_poisoned());
    assert_eq!(log.append(b"more").unwrap(), 1000);
    assert_eq!(log.read(999).unwrap().as_deref(), Some(&payload(999)[..]));
    archive.fail_read.store(false, Ordering::SeqCst);
    assert_eq!(reader.try_next().unwrap().unwrap().id, 0);
}

#[test]
fn open_repairs_interrupted_archival_and_removes_only_this_logs_orphans() {
    let dir = tempfile::tempdir().unwrap();
    let index = Arc::new(MemorySegmentIndex::new());
    let archive = Arc::new(MemoryArchive::new());
    // Archival off at first: segments stay local.
    let plain = AofConfig::builder()
        .segment_size(16 * 1024)
        .flush_strategy(FlushStrategy::Async)
        .build()
        .unwrap();
    let log = Aof::open_with(dir.path(), options(plain, archive.clone()), index.clone()).unwrap();
    fill(&log, 0, 1500);
    let id = log.log_id();
    let first = index.get_all_segments().unwrap()[0].clone();
    log.close_blocking().unwrap();

    // An upload of segment `first` that crashed before its commit, but under
    // another compression: a different object under its key.
    let key = |base| ArchiveKey::new(archive_key(id, base)).unwrap();
    block_on(archive.store_bytes(&key(first.base_id), Bytes::from_static(b"stale upload"))).unwrap();
    // An orphan of this log (no such segment), and another log's object.
    block_on(archive.store_bytes(&key(999_999), Bytes::from_static(b"orphan"))).unwrap();
    let other = ArchiveKey::new(archive_key(LogId(id.0 ^ 1), first.base_id)).unwrap();
    block_on(archive.store_bytes(&other, Bytes::from_static(b"not ours"))).unwrap();

    let log = Aof::open_with(dir.path(), options(config(1), archive.clone()), index.clone()).unwrap();
    wait_until("archival", || log.archive_pending().0 <= 1);
    let keys = object_keys(archive.as_ref());
    assert!(
        !keys.contains(&key(999_999).as_str().to_owned()),
        "the orphan went"
    );
    assert!(
        keys.contains(&other.as_str().to_owned()),
        "another log's object is never touched"
    );
    assert_eq!(
        log.read(first.base_id).unwrap().as_deref(),
        Some(&payload(first.base_id)[..])
    );
    let archived_first = index.get_entry(first.base_id).unwrap().unwrap();
    let meta = block_on(archive.head(&key(first.base_id))).unwrap();
    assert_eq!(
        Some(meta.size),
        archived_first.compressed_size,
        "the stale upload was replaced"
    );
    log.close_blocking().unwrap();

    // A crash after the commit, before the local file's removal: the file is back.
    let name = segment_file_name(first.base_id);
    std::fs::write(dir.path().join(&name), b"leftover").unwrap();
    let log = Aof::open_with(dir.path(), options(config(1), archive.clone()), index.clone()).unwrap();
    assert!(log.repairs().contains(&Repair::RemoveArchivedLocalFile {
        segment: first.base_id
    }));
    assert!(!dir.path().join(&name).exists());
    assert_eq!(
        log.read(first.base_id).unwrap().as_deref(),
        Some(&payload(first.base_id)[..])
    );
}

#[test]
fn removing_archived_segments_deletes_their_objects() {
    let dir = tempfile::tempdir().unwrap();
    let index = Arc::new(MemorySegmentIndex::new());
    let archive = Arc::new(MemoryArchive::new());
    let log = Aof::open_with(dir.path(), options(config(1), archive.clone()), index.clone()).unwrap();
    fill(&log, 0, 2000);
    wait_until("archival", || log.archive_pending().0 <= 1);
    let entries = archived(&index);
    assert!(entries.len() >= 4);
    let cut = entries[2].next_id();
    assert_eq!(log.truncate_before(cut).unwrap(), 3);
    assert_eq!(log.first_id(), cut);
    assert_eq!(log.read(0).unwrap(), None);
    wait_until("the objects' deletion", || {
        object_keys(archive.as_ref()).len() == entries.len() - 3
    });

    // truncate_after into an archived segment: its kept prefix becomes the active segment.
    let e = &entries[3];
    let keep = e.base_id + e.record_count / 2;
    log.truncate_after(keep).unwrap();
    assert_eq!(log.next_id(), keep + 1);
    assert_eq!(log.read(keep).unwrap().as_deref(), Some(&payload(keep)[..]));
    assert_eq!(log.read(keep + 1).unwrap(), None);
    wait_until("the objects' deletion", || {
        object_keys(archive.as_ref()).is_empty()
    });
    assert_eq!(log.append(b"after").unwrap(), keep + 1);
    drop(log);
    let log = Aof::open_with(dir.path(), options(config(1), archive.clone()), index).unwrap();
    assert_eq!(log.next_id(), keep + 2);
    assert_eq!(log.read(keep).unwrap().as_deref(), Some(&payload(keep)[..]));
}

#[test]
fn archive_now_archives_every_finalized_segment() {
    let dir = tempfile::tempdir().unwrap();
    let index = Arc::new(MemorySegmentIndex::new());
    let archive = Arc::new(MemoryArchive::new());
    let plain = AofConfig::builder().segment_size(16 * 1024).build().unwrap();
    let log = Aof::open_with(dir.path(), options(plain, archive.clone()), index.clone()).unwrap();
    fill(&log, 0, 1000);
    let finalized = log.archive_pending().0;
    assert!(finalized >= 3);
    let mut seen = Vec::new();
    assert_eq!(
        log.archive_now(&mut |d, t| seen.push((d, t))).unwrap() as u64,
        finalized
    );
    assert_eq!(seen.last(), Some(&(finalized, finalized)));
    assert_eq!(log.archive_pending(), (0, 0));
    assert_eq!(object_keys(archive.as_ref()).len() as u64, finalized);
    let text = log
        .performance_metrics()
        .archive()
        .render_prometheus("aof_archive");
    assert!(
        text.contains(&format!("aof_archive_segments_archived_total {finalized}\n")),
        "{text}"
    );
    assert!(text.contains("aof_archive_upload_duration_seconds_count"));
    let _ = Path::new("");
}

#[test]
fn a_sequential_reader_fetches_the_next_archived_segment_ahead() {
    let dir = tempfile::tempdir().unwrap();
    let index = Arc::new(MemorySegmentIndex::new());
    let archive = Arc::new(Flaky::default());
    let log = Aof::open_with(dir.path(), options(config(1), archive.clone()), index.clone()).unwrap();
    fill(&log, 0, 1000);
    wait_until("archival", || log.archive_pending().0 <= 1);
    let segs = archived(&index);
    let (a, b) = (&segs[0], &segs[1]);
    let mut reader = log.reader(a.base_id).unwrap();
    for _ in 0..a.record_count {
        reader.try_next().unwrap().unwrap();
    }
    // Near A's end the reader asked for B's head: one ranged read of B's
    // tail (seek table and B's one frame), after A's own.
    wait_until("the prefetch of the next segment", || {
        archive.ranged_reads.load(Ordering::SeqCst) >= 2
    });
    let fetched = archive.ranged_reads.load(Ordering::SeqCst);
    let r = reader.try_next().unwrap().unwrap();
    assert_eq!((r.id, &r.payload[..]), (b.base_id, &payload(b.base_id)[..]));
    assert_eq!(
        archive.ranged_reads.load(Ordering::SeqCst),
        fetched,
        "B's first record was fetched ahead"
    );
}
