//! Durability, part 2: each finding of the write-path review as a test that
//! failed on the code before its fix.

use aof_core::testing::FileIndex;
use aof_core::{Aof, AofOptions, FileSystem, LocalFileSystem};
use aof_record::{AofConfig, FlushStrategy};
use std::path::Path;
use std::sync::Arc;

fn open(dir: &Path, config: AofConfig) -> Aof {
    let fs: Arc<dyn FileSystem> = LocalFileSystem::shared();
    let index = FileIndex::open(fs.clone(), dir.join("index.json")).unwrap();
    let mut options = AofOptions::new(config);
    options.fs = fs;
    Aof::open_with(dir, options, Arc::new(index)).unwrap()
}

fn big(i: u64) -> Vec<u8> {
    let mut v = format!("big{i:03}-").into_bytes();
    v.resize(100_000, b'x');
    v
}

/// The reproduction: 50 fsync-acknowledged records of 100 kB, then
/// an open with a segment size (and so a record limit) below their size.
/// Recovery used the opener's `max_record_size`, cut all 50 as a torn tail
/// and reused their ids.
#[test]
fn a_smaller_record_limit_at_open_never_cuts_records_already_written() {
    let dir = tempfile::tempdir().unwrap();
    let sync = AofConfig::builder()
        .flush_strategy(FlushStrategy::Sync)
        .build()
        .unwrap();
    {
        let log = open(dir.path(), sync);
        for i in 0..50 {
            assert_eq!(log.append(&big(i)).unwrap(), i);
        }
        assert_eq!(log.durable_id(), Some(49));
        log.close_blocking().unwrap();
    }
    let small = AofConfig::builder().segment_size(65536).build().unwrap();
    assert!(small.max_record_size() < 100_000);
    let log = open(dir.path(), small);
    assert_eq!(log.performance_metrics().torn_tails_cut(), 0);
    assert_eq!(log.next_id(), 50, "ids of durable records must not be reused");
    for i in 0..50 {
        assert_eq!(log.read(i).unwrap().as_deref(), Some(&big(i)[..]), "record {i}");
    }
    assert_eq!(log.append(b"small").unwrap(), 50);
    let seen: Vec<u64> = log.reader(0).unwrap().map(|r| r.unwrap().id).collect();
    assert_eq!(seen, (0..=50).collect::<Vec<_>>());
}

fn plain(strategy: FlushStrategy) -> AofConfig {
    AofConfig::builder()
        .flush_strategy(strategy)
        .pre_allocate_enabled(false)
        .build()
        .unwrap()
}

fn active_segment(dir: &Path) -> std::path::PathBuf {
    let mut segs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    segs.pop().unwrap()
}

/// Appends to the active segment what a power loss can leave after the
/// synced data: a page of the unsynced tail lost (garbage where record
/// `hole_id` was), and the next page written back (a valid record after it).
fn write_hole_then_valid(dir: &Path, hole_id: u64) {
    use aof_record::record::{RecordFlags, append_record};
    let path = active_segment(dir);
    let mut tail = vec![0xA5u8; 40];
    append_record(&mut tail, hole_id + 1, 1, RecordFlags::NONE, b"written back").unwrap();
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    std::io::Write::write_all(&mut f, &tail).unwrap();
}

/// Finding 3: a hole in the unsynced tail followed by valid records made
/// open fail with `Corruption` although none of them was acknowledged; the
/// log needed a human. Beyond the persisted recovery point it is now cut.
#[test]
fn a_hole_beyond_the_recovery_point_is_cut_not_reported() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path(), plain(FlushStrategy::Sync));
        for i in 0..10u64 {
            log.append(&i.to_le_bytes()).unwrap();
        }
        log.close_blocking().unwrap();
    }
    write_hole_then_valid(dir.path(), 10);
    let log = open(dir.path(), plain(FlushStrategy::Sync));
    assert_eq!(log.next_id(), 10);
    assert_eq!(log.performance_metrics().torn_tails_cut(), 1);
    for i in 0..10u64 {
        assert_eq!(log.read(i).unwrap().as_deref(), Some(&i.to_le_bytes()[..]));
    }
    assert_eq!(log.append(b"next").unwrap(), 10);
}

/// The converse: damage inside the durable prefix is still corruption, and
/// open changes nothing.
#[test]
fn damage_before_the_recovery_point_is_still_corruption() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path(), plain(FlushStrategy::Sync));
        for i in 0..10u64 {
            log.append(&i.to_le_bytes()).unwrap();
        }
        log.close_blocking().unwrap();
    }
    let path = active_segment(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    // Record 3's payload: header 64 + 3 records of 40 bytes + 32 header bytes.
    bytes[64 + 3 * 40 + 33] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let fs: Arc<dyn FileSystem> = LocalFileSystem::shared();
    let index = FileIndex::open(fs.clone(), dir.path().join("index.json")).unwrap();
    let mut options = AofOptions::new(plain(FlushStrategy::Sync));
    options.fs = fs;
    match Aof::open_with(dir.path(), options, Arc::new(index)) {
        Err(aof_core::AofError::Corruption { offset, .. }) => assert_eq!(offset, 64 + 3 * 40),
        other => panic!("expected Corruption, got {other:?}"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "open must change nothing");
}

fn open_faulty(fs: &aof_core::testing::FaultyFileSystem, config: AofConfig) -> Aof {
    let fs_dyn: Arc<dyn FileSystem> = Arc::new(fs.clone());
    let index = FileIndex::open(fs_dyn.clone(), Path::new("/log/index.json")).unwrap();
    let mut options = AofOptions::new(config);
    options.fs = fs_dyn;
    Aof::open_with("/log", options, Arc::new(index)).unwrap()
}

/// Finding 2: after a process crash, recovery published every record it
/// found as durable without fsyncing the active segment; readers then saw
/// records that a power loss right after could still remove.
#[test]
fn recovery_syncs_what_it_publishes_as_durable() {
    use aof_core::testing::{CrashMode, FaultyFileSystem};
    let config = AofConfig::builder()
        .segment_size(1 << 20)
        .flush_strategy(FlushStrategy::Async)
        .pre_allocate_enabled(false)
        .build()
        .unwrap();
    let fs = FaultyFileSystem::new();
    let log = open_faulty(&fs, config.clone());
    for i in 0..400u64 {
        log.append(&vec![i as u8; 1000]).unwrap();
    }
    assert_eq!(log.durable_id(), None, "nothing flushed yet");
    // kill -9: the page cache keeps what was written, nothing more is synced.
    let killed = fs.deep_clone();
    drop(log);
    let log = open_faulty(&killed, config.clone());
    let durable = log
        .durable_id()
        .expect("records written before the kill are recovered");
    let seen = log.reader(0).unwrap().count() as u64;
    assert_eq!(seen, durable + 1, "readers see what recovery published");
    // A power loss right after: only what was synced survives.
    let after_power_loss = killed.crash_image(CrashMode::LoseUnsynced);
    drop(log);
    let log = open_faulty(&after_power_loss, config);
    for id in 0..=durable {
        assert_eq!(
            log.read(id).unwrap().as_deref(),
            Some(&vec![id as u8; 1000][..]),
            "record {id} was published as durable"
        );
    }
}

/// An index older than the log (restored from a backup) is brought up to
/// date by walking forward through the sealed segments after it; a log that
/// has lost segments the recovery point says were durable is refused, and
/// open changes nothing.
#[test]
fn an_old_index_is_walked_forward_and_missing_durable_segments_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = AofConfig::builder()
        .segment_size(4096)
        .flush_strategy(FlushStrategy::Sync)
        .pre_allocate_enabled(false)
        .build()
        .unwrap();
    let old_index;
    {
        let log = open(dir.path(), config.clone());
        for i in 0..20u64 {
            log.append(&[i as u8; 100]).unwrap();
        }
        log.close_blocking().unwrap();
        old_index = std::fs::read(dir.path().join("index.json")).unwrap();
        let log = open(dir.path(), config.clone());
        for i in 20..200u64 {
            log.append(&[i as u8; 100]).unwrap();
        }
        log.close_blocking().unwrap();
    }
    let copy = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), copy.path().join(e.file_name())).unwrap();
    }
    std::fs::write(dir.path().join("index.json"), &old_index).unwrap();
    let log = open(dir.path(), config.clone());
    assert_eq!(log.next_id(), 200);
    for i in 0..200u64 {
        assert_eq!(log.read(i).unwrap().as_deref(), Some(&[i as u8; 100][..]));
    }
    drop(log);

    // The same old index, and the newest segments gone.
    let dir = copy;
    std::fs::write(dir.path().join("index.json"), &old_index).unwrap();
    let mut segs = listing(dir.path());
    segs.retain(|n| n.ends_with(".seg"));
    for name in &segs[segs.len() - 3..] {
        std::fs::remove_file(dir.path().join(name)).unwrap();
    }
    let before = listing(dir.path());
    // Segment files and the manifest; the index may record the sealed
    // segments recovery walked through before it found the gap.
    let data_files: Vec<&String> = before.iter().filter(|n| *n != "index.json").collect();
    let bytes_before: Vec<Vec<u8>> = data_files
        .iter()
        .map(|n| std::fs::read(dir.path().join(n)).unwrap())
        .collect();
    let fs: Arc<dyn FileSystem> = LocalFileSystem::shared();
    let index = FileIndex::open(fs.clone(), dir.path().join("index.json")).unwrap();
    let mut options = AofOptions::new(config);
    options.fs = fs;
    match Aof::open_with(dir.path(), options, Arc::new(index)) {
        Err(aof_core::AofError::DurableRecordsMissing {
            recovery_next,
            found_next,
        }) => assert!(recovery_next == 200 && found_next < 200, "{found_next}"),
        other => panic!("expected DurableRecordsMissing, got {other:?}"),
    }
    assert_eq!(listing(dir.path()), before, "no file deleted or moved");
    let bytes_after: Vec<Vec<u8>> = data_files
        .iter()
        .map(|n| std::fs::read(dir.path().join(n)).unwrap())
        .collect();
    assert!(bytes_after == bytes_before, "no segment file or manifest changed");
}

fn listing(d: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Finding 1: `truncate_after` while a reader is pinned in a later segment.
/// The reader kept returning the truncated payloads, and when its pin
/// dropped, the deferred removal deleted the *new* segment file that reused
/// the same base id and held acknowledged records.
#[test]
fn truncate_after_under_a_pinned_reader_loses_nothing_new() {
    let dir = tempfile::tempdir().unwrap();
    let config = AofConfig::builder()
        .segment_size(4096)
        .flush_strategy(FlushStrategy::Sync)
        .pre_allocate_enabled(false)
        .build()
        .unwrap();
    let log = open(dir.path(), config);
    let old = |i: u64| format!("old-{i:04}-{}", "o".repeat(80)).into_bytes();
    let new = |i: u64| format!("new-{i:04}-{}", "n".repeat(80)).into_bytes();
    for i in 0..200 {
        log.append(&old(i)).unwrap();
    }
    let seg_b = log.index().find_segment_for_id(100).unwrap().unwrap();
    assert!(seg_b.base_id > 10 && seg_b.status != aof_record::SegmentStatus::Active);
    // A reader positioned in segment B (pinned there).
    let mut reader = log.reader(seg_b.base_id).unwrap();
    assert_eq!(reader.next().unwrap().unwrap().payload, old(seg_b.base_id));
    // Cut back into the first segment, then write new records past B's ids,
    // so a new segment file with B's base id is created and sealed.
    log.truncate_after(5).unwrap();
    for i in 6..200 {
        assert_eq!(log.append(&new(i)).unwrap(), i);
    }
    // The reader never returns a truncated payload.
    let mut seen = 0;
    for r in reader.by_ref().take(20) {
        let r = r.unwrap();
        assert_eq!(r.payload, new(r.id), "record {} after the truncation", r.id);
        seen += 1;
    }
    assert_eq!(seen, 20, "the reader goes on with the new records");
    drop(reader);
    log.run_retention().unwrap();
    for i in 6..200 {
        assert_eq!(
            log.read(i).unwrap().as_deref(),
            Some(&new(i)[..]),
            "acknowledged record {i}"
        );
    }
    drop(log);
    let log = open(
        dir.path(),
        AofConfig::builder().segment_size(4096).build().unwrap(),
    );
    for i in 6..200 {
        assert_eq!(
            log.read(i).unwrap().as_deref(),
            Some(&new(i)[..]),
            "record {i} after reopen"
        );
    }
}

/// Finding 9: a crafted finalized segment whose offset table (with a valid
/// checksum) lists offsets out of order panicked reads and truncation by
/// slicing out of range. It is now a typed error naming the entry.
#[test]
fn an_offset_table_out_of_order_is_a_typed_error() {
    use aof_core::testing::FaultyFileSystem;
    use aof_record::checksum::crc64_nvme;
    use aof_record::segment::{SEGMENT_FOOTER_SIZE, SegmentFooter};
    let fs = FaultyFileSystem::new();
    let config = AofConfig::builder()
        .segment_size(4096)
        .flush_strategy(FlushStrategy::Sync)
        .pre_allocate_enabled(false)
        .build()
        .unwrap();
    {
        let log = open_faulty(&fs, config.clone());
        for i in 0..100u64 {
            log.append(&[i as u8; 60]).unwrap();
        }
        log.close_blocking().unwrap();
    }
    let path = Path::new("/log/00000000000000000000.seg");
    let mut bytes = fs.read_file(path).unwrap();
    let footer = SegmentFooter::decode(&bytes).unwrap();
    let table = footer.data_end as usize;
    // Swap the second and third offsets, and re-seal the table's checksum.
    let (a, b) = (table + 4, table + 8);
    for k in 0..4 {
        bytes.swap(a + k, b + k);
    }
    let table_end = bytes.len() - SEGMENT_FOOTER_SIZE;
    let crc = crc64_nvme(&bytes[table..table_end]);
    let forged = SegmentFooter {
        table_crc: crc,
        ..footer
    };
    bytes[table_end..].copy_from_slice(&forged.encode());
    assert!(
        SegmentFooter::decode(&bytes).is_ok(),
        "the forgery passes the footer's own checks"
    );
    fs.write_file(path, bytes);
    let log = open_faulty(&fs, config);
    for id in 0..3 {
        match log.read(id) {
            Err(aof_core::AofError::SegmentMismatch { what, .. }) => assert_eq!(what, "offset table entry"),
            other => panic!("read {id}: expected a typed error, got {other:?}"),
        }
    }
    assert!(log.truncate_after(1).is_err());
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Part E: a read-only open takes no lock, works beside a writer, never
/// writes a byte, and reports (without making) the repairs a writable open
/// would make.
#[test]
fn a_read_only_open_changes_nothing_and_works_beside_a_writer() {
    use aof_record::MemorySegmentIndex;
    let dir = tempfile::tempdir().unwrap();
    let config = plain(FlushStrategy::Sync);
    {
        let log = open(dir.path(), config.clone());
        for i in 0..10u64 {
            log.append(&i.to_le_bytes()).unwrap();
        }
        log.close_blocking().unwrap();
    }
    write_hole_then_valid(dir.path(), 10);
    let read_only = || {
        let index = Arc::new(MemorySegmentIndex::load(&dir.path().join("index.json")).unwrap());
        Aof::open_read_only(dir.path(), AofOptions::new(config.clone()), index).unwrap()
    };
    let before = snapshot(dir.path());
    let log = read_only();
    assert!(log.is_read_only());
    assert_eq!(log.next_id(), 10);
    assert_eq!(log.reader(0).unwrap().count(), 10);
    assert!(
        log.repairs()
            .iter()
            .any(|r| matches!(r, aof_core::Repair::CutTornTail { .. }) && r.is_damage()),
        "{:?}",
        log.repairs()
    );
    assert!(matches!(log.append(b"x"), Err(aof_core::AofError::ReadOnly)));
    assert!(matches!(log.truncate_after(3), Err(aof_core::AofError::ReadOnly)));
    drop(log);
    assert_eq!(
        snapshot(dir.path()),
        before,
        "a read-only open wrote to the directory"
    );

    // Beside a live writer: no lock taken, and the writer's records are seen.
    let writer = open(dir.path(), config.clone());
    assert_eq!(writer.next_id(), 10, "the writable open cut the tail");
    writer.append(b"live").unwrap();
    let log = read_only();
    assert_eq!(log.read(10).unwrap().as_deref(), Some(&b"live"[..]));
    assert!(
        log.repairs().iter().all(|r| !r.is_damage()),
        "{:?}",
        log.repairs()
    );
}

/// Finding 5, part C: nothing tied an index to its log, so a wrong
/// `index_path` (another log's index) made recovery delete every segment
/// file below that index's first entry. Each log's identity is now kept in
/// its manifest and in its index; a mismatch is a typed error and nothing
/// is touched.
#[test]
fn another_logs_index_is_refused_and_nothing_is_deleted() {
    let config = AofConfig::builder()
        .segment_size(4096)
        .flush_strategy(FlushStrategy::Sync)
        .pre_allocate_enabled(false)
        .build()
        .unwrap();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for (dir, n) in [(a.path(), 100u64), (b.path(), 300)] {
        let log = open(dir, config.clone());
        for i in 0..n {
            log.append(&[i as u8; 100]).unwrap();
        }
        if n == 300 {
            // B's index starts well after A's segments.
            log.truncate_before(200).unwrap();
        }
        log.close_blocking().unwrap();
    }
    let before = snapshot(a.path());
    let fs: Arc<dyn FileSystem> = LocalFileSystem::shared();
    let wrong = FileIndex::open(fs.clone(), b.path().join("index.json")).unwrap();
    let mut options = AofOptions::new(config.clone());
    options.fs = fs;
    match Aof::open_with(a.path(), options, Arc::new(wrong)) {
        Err(aof_core::AofError::LogIdentityMismatch { log, index }) => assert_ne!(log, index),
        other => panic!("expected LogIdentityMismatch, got {other:?}"),
    }
    assert_eq!(snapshot(a.path()), before, "nothing in A's directory changed");
    let log = open(a.path(), config);
    assert_eq!(log.next_id(), 100);
    assert_eq!(log.index().log_identity().unwrap(), Some(log.log_id()));
}

/// An index that holds the removal of segment 0 back until told, or for a
/// second at most: one `remove_prefix` stays between taking segment 0 out of
/// the log and committing its removal while another runs.
#[derive(Debug)]
struct HoldingIndex {
    inner: FileIndex,
    /// (held, released)
    gate: std::sync::Mutex<(bool, bool)>,
    cv: std::sync::Condvar,
}

impl HoldingIndex {
    fn wait_held(&self) {
        let g = self.gate.lock().unwrap();
        drop(self.cv.wait_while(g, |(held, _)| !*held).unwrap());
    }

    fn release(&self) {
        self.gate.lock().unwrap().1 = true;
        self.cv.notify_all();
    }
}

impl aof_record::SegmentIndex for HoldingIndex {
    fn remove_entry(&self, base_id: u64) -> aof_record::index::IndexResult<Option<aof_record::SegmentEntry>> {
        if base_id == 0 {
            let mut g = self.gate.lock().unwrap();
            g.0 = true;
            self.cv.notify_all();
            let timeout = std::time::Duration::from_secs(1);
            drop(
                self.cv
                    .wait_timeout_while(g, timeout, |(_, released)| !*released)
                    .unwrap(),
            );
        }
        self.inner.remove_entry(base_id)
    }
    fn add_entry(&self, e: &aof_record::SegmentEntry) -> aof_record::index::IndexResult<()> {
        self.inner.add_entry(e)
    }
    fn add_entries(&self, e: &[aof_record::SegmentEntry]) -> aof_record::index::IndexResult<()> {
        self.inner.add_entries(e)
    }
    fn update_entry(&self, e: &aof_record::SegmentEntry) -> aof_record::index::IndexResult<()> {
        self.inner.update_entry(e)
    }
    fn get_entry(&self, b: u64) -> aof_record::index::IndexResult<Option<aof_record::SegmentEntry>> {
        self.inner.get_entry(b)
    }
    fn find_segment_for_id(
        &self,
        id: u64,
    ) -> aof_record::index::IndexResult<Option<aof_record::SegmentEntry>> {
        self.inner.find_segment_for_id(id)
    }
    fn find_segments_for_timestamp(
        &self,
        s: u64,
        e: u64,
    ) -> aof_record::index::IndexResult<Vec<aof_record::SegmentEntry>> {
        self.inner.find_segments_for_timestamp(s, e)
    }
    fn get_all_segments(&self) -> aof_record::index::IndexResult<Vec<aof_record::SegmentEntry>> {
        self.inner.get_all_segments()
    }
    fn get_segments_before(&self, id: u64) -> aof_record::index::IndexResult<Vec<aof_record::SegmentEntry>> {
        self.inner.get_segments_before(id)
    }
    fn get_max_last_id(&self) -> aof_record::index::IndexResult<Option<u64>> {
        self.inner.get_max_last_id()
    }
    fn get_active_segment(&self) -> aof_record::index::IndexResult<Option<aof_record::SegmentEntry>> {
        self.inner.get_active_segment()
    }
    fn get_latest_finalized_segment(
        &self,
    ) -> aof_record::index::IndexResult<Option<aof_record::SegmentEntry>> {
        self.inner.get_latest_finalized_segment()
    }
    fn get_segments_for_archiving(
        &self,
        n: usize,
    ) -> aof_record::index::IndexResult<Vec<aof_record::SegmentEntry>> {
        self.inner.get_segments_for_archiving(n)
    }
    fn update_segment_status(
        &self,
        b: u64,
        s: aof_record::SegmentStatus,
    ) -> aof_record::index::IndexResult<()> {
        self.inner.update_segment_status(b, s)
    }
    fn update_segment_tail(&self, b: u64, l: Option<u64>, s: u64) -> aof_record::index::IndexResult<()> {
        self.inner.update_segment_tail(b, l, s)
    }
    fn log_identity(&self) -> aof_record::index::IndexResult<Option<aof_record::LogId>> {
        self.inner.log_identity()
    }
    fn set_log_identity(&self, id: aof_record::LogId) -> aof_record::index::IndexResult<()> {
        self.inner.set_log_identity(id)
    }
    fn sync(&self) -> aof_record::index::IndexResult<()> {
        self.inner.sync()
    }
    fn len(&self) -> aof_record::index::IndexResult<usize> {
        self.inner.len()
    }
    fn copy_to(&self, dest: &Path) -> aof_record::index::IndexResult<()> {
        self.inner.copy_to(dest)
    }
}

/// Found by the retention crash sweep: two removals of old segments at once
/// (the background TTL thread beside `run_retention` or `truncate_before`)
/// committed out of order. One took segment 0 out of the log; the other then
/// took segment 10, committed its index removal and deleted its file, and
/// returned. A power loss before the first committed left segment 0 indexed
/// and on disk, segment 10 gone: a hole, ids 10..=19 missing between kept
/// records, although the call that removed them had returned.
#[test]
fn concurrent_removals_of_old_segments_commit_in_order() {
    use aof_core::testing::{CrashMode, FaultyFileSystem};
    let fs = FaultyFileSystem::new();
    let fs_dyn: Arc<dyn FileSystem> = Arc::new(fs.clone());
    let index = Arc::new(HoldingIndex {
        inner: FileIndex::open(fs_dyn.clone(), Path::new("/log/index.json")).unwrap(),
        gate: std::sync::Mutex::new((false, false)),
        cv: std::sync::Condvar::new(),
    });
    let config = AofConfig::builder()
        .segment_size(4096)
        .flush_strategy(FlushStrategy::Sync)
        .pre_allocate_enabled(false)
        .build()
        .unwrap();
    let mut options = AofOptions::new(config.clone());
    options.fs = fs_dyn;
    let log = Arc::new(Aof::open_with("/log", options, index.clone()).unwrap());
    while log.next_id() < 40 {
        log.append(&[7u8; 380]).unwrap();
    }
    let bases: Vec<u64> = log
        .index()
        .get_all_segments()
        .unwrap()
        .iter()
        .map(|e| e.base_id)
        .collect();
    assert!(bases.len() >= 4 && bases[0] == 0, "{bases:?}");
    let (second, third) = (bases[1], bases[2]);
    // The first removal takes segment 0 out and is held before its commit.
    let first = std::thread::spawn({
        let log = log.clone();
        move || log.truncate_before(second).unwrap()
    });
    index.wait_held();
    // The second removes the next segment and returns.
    let removed = log.truncate_before(third).unwrap();
    // A power loss now: what the returned call removed must be gone, and
    // what is left must have no hole.
    let img = fs.crash_image(CrashMode::LoseUnsynced);
    index.release();
    first.join().unwrap();
    assert!(removed <= 1);
    let reopened = open_faulty(&img, config);
    let (start, next) = (reopened.first_id(), reopened.next_id());
    assert!(start >= third, "ids below {third} came back: first id {start}");
    for id in start..next {
        assert!(
            reopened.read(id).unwrap().is_some(),
            "a hole at id {id} (first {start}, next {next})"
        );
    }
}

/// Real files, but every write the background flusher makes (a sync round
/// writing what it took out of the buffer, outside the writer lock) takes
/// 3 ms: rollovers, appends and reads of the active segment run while it is
/// in flight.
#[derive(Debug)]
struct SlowFlusherWrites(Arc<dyn FileSystem>);

#[derive(Debug)]
struct SlowHandle(Arc<dyn aof_core::FileHandle>);

impl FileSystem for SlowFlusherWrites {
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        self.0.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        self.0.list(dir)
    }
    fn open(&self, path: &Path, mode: aof_core::OpenMode) -> std::io::Result<Arc<dyn aof_core::FileHandle>> {
        Ok(Arc::new(SlowHandle(self.0.open(path, mode)?)))
    }
    fn exists(&self, path: &Path) -> std::io::Result<bool> {
        self.0.exists(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.0.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        self.0.remove_file(path)
    }
    fn remove_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.0.remove_dir(dir)
    }
    fn sync_dir(&self, dir: &Path) -> std::io::Result<()> {
        self.0.sync_dir(dir)
    }
    fn lock_exclusive(&self, path: &Path) -> std::io::Result<Box<dyn aof_core::LockGuard>> {
        self.0.lock_exclusive(path)
    }
}

impl aof_core::FileHandle for SlowHandle {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        self.0.read_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        if std::thread::current().name() == Some("aof-flusher") {
            std::thread::sleep(std::time::Duration::from_millis(3));
        }
        self.0.write_all_at(buf, offset)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.0.sync_data()
    }
    fn sync_all(&self) -> std::io::Result<()> {
        self.0.sync_all()
    }
    fn len(&self) -> std::io::Result<u64> {
        self.0.len()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.0.set_len(len)
    }
    fn map(&self) -> std::io::Result<bytes::Bytes> {
        self.0.map()
    }
}

/// A sync round writes the records it took out of the buffer after letting
/// the writer lock go (issue 15: appends no longer wait for that write).
/// With those writes slowed down, every record must still read back right
/// after its append (from the buffer, from bytes still being written, or
/// from a segment sealed meanwhile), and after a reopen. Without the
/// rollover waiting for the write in flight, the sealed segment is read
/// before its bytes are there; without reads waiting for it, the active
/// segment is.
#[test]
fn records_read_back_while_a_sync_round_writes_outside_the_writer_lock() {
    let dir = tempfile::tempdir().unwrap();
    let slow: Arc<dyn FileSystem> = Arc::new(SlowFlusherWrites(LocalFileSystem::shared()));
    let config = AofConfig::builder()
        .segment_size(16 * 1024)
        .flush_strategy(FlushStrategy::Batched(4))
        .pre_allocate_enabled(false)
        .build()
        .unwrap();
    let payload = |i: u64| format!("{i:05}-").repeat(50).into_bytes();
    let n = 2000;
    {
        let index = FileIndex::open(slow.clone(), dir.path().join("index.json")).unwrap();
        let mut options = AofOptions::new(config.clone());
        options.fs = slow.clone();
        let log = Aof::open_with(dir.path(), options, Arc::new(index)).unwrap();
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            // Reads the last records appended, over and over, while the
            // appender goes on: some are in bytes a round is writing.
            let reader = s.spawn(|| {
                let mut checked = 0u64;
                while !done.load(std::sync::atomic::Ordering::Acquire) {
                    let next = log.next_id();
                    for id in next.saturating_sub(60)..next {
                        let got = log.read(id).unwrap_or_else(|e| panic!("record {id}: {e}"));
                        assert_eq!(got, Some(payload(id).into()), "record {id}");
                        checked += 1;
                    }
                }
                checked
            });
            for i in 0..n {
                assert_eq!(log.append(&payload(i)).unwrap(), i);
                std::thread::sleep(std::time::Duration::from_micros(20));
            }
            done.store(true, std::sync::atomic::Ordering::Release);
            assert!(reader.join().unwrap() > 0);
        });
        assert!(log.performance_metrics().segments_finalized() >= 10);
        log.close_blocking().unwrap();
    }
    let log = open(dir.path(), config);
    assert_eq!(log.next_id(), n);
    for id in 0..n {
        assert_eq!(
            log.read(id).unwrap(),
            Some(payload(id).into()),
            "record {id} after reopen"
        );
    }
}
