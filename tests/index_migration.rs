//! Migrating a segment index between backends with `copy_index`, verified
//! entry by entry and with the log identity: MDBX→SQLite (the design's
//! migration), SQLite→MDBX, and the in-memory reference into both; plus the
//! mismatches `copy_index` must report.

use aof_index_mdbx::MdbxSegmentIndex;
use aof_index_sqlite::SqliteSegmentIndex;
use aof_record::LogId;
use aof_record::conformance::index::{LOG_ID_A, active, archived, finalized};
use aof_record::entry::{SegmentEntry, SegmentStatus};
use aof_record::index::{IndexError, IndexResult, MemorySegmentIndex, SegmentIndex, copy_index};
use std::path::Path;

/// Entries exercising every status, every optional field, empty segments and
/// the id boundaries.
fn sample() -> Vec<SegmentEntry> {
    let mut entries: Vec<SegmentEntry> = (0..200u64)
        .map(|i| finalized(i * 100 + 10, i * 100 + 99, i * 1000, i * 1000 + 999))
        .collect();
    entries[3] = archived(310, 399);
    entries[4] = archived(410, 499).cache_locally("cache/410.seg").unwrap();
    entries[5].local_path = Some("ünïcödé/päth.seg".into());
    entries[6].compressed_size = Some(u64::MAX);
    entries.push(finalized(0, 0, 0, 0));
    entries.push(SegmentEntry::new_active(1, 5, ""));
    entries.push(finalized(u64::MAX - 9, u64::MAX, u64::MAX - 1, u64::MAX));
    entries.push(active(50_000, Some(50_049), 300_000));
    entries.sort_by_key(|e| e.base_id);
    entries
}

/// Answers of every query that are cheap to ask, for comparing two indexes.
fn answers(index: &dyn SegmentIndex) -> Vec<String> {
    let mut out = vec![
        format!("{:?}", index.len().unwrap()),
        format!("{:?}", index.get_max_last_id().unwrap()),
        format!("{:?}", index.get_active_segment().unwrap()),
        format!("{:?}", index.get_latest_finalized_segment().unwrap()),
        format!("{:?}", index.get_segments_for_archiving(7).unwrap()),
    ];
    for id in [
        0,
        1,
        9,
        10,
        55,
        99,
        100,
        5_010,
        50_049,
        50_050,
        u64::MAX - 10,
        u64::MAX,
    ] {
        out.push(format!("{:?}", index.find_segment_for_id(id).unwrap()));
        out.push(format!("{:?}", index.get_segments_before(id).unwrap().len()));
    }
    for (a, b) in [(0, 0), (500, 1500), (150_000, 150_000), (299_999, u64::MAX)] {
        out.push(format!("{:?}", index.find_segments_for_timestamp(a, b).unwrap()));
    }
    out
}

fn mdbx(p: &Path) -> MdbxSegmentIndex {
    MdbxSegmentIndex::open(p).unwrap()
}

fn sqlite(p: &Path) -> SqliteSegmentIndex {
    SqliteSegmentIndex::open(p).unwrap()
}

#[test]
fn mdbx_to_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let (from_path, to_path) = (dir.path().join("index.mdbx"), dir.path().join("index.sqlite"));
    let entries = sample();
    {
        let from = mdbx(&from_path);
        from.add_entries(&entries).unwrap();
        from.set_log_identity(LOG_ID_A).unwrap();
        from.sync().unwrap();
    }
    // As the migration runs: the old index opened from its file, the new one created.
    let from = mdbx(&from_path);
    let to = sqlite(&to_path);
    assert_eq!(copy_index(&from, &to).unwrap(), entries.len());
    assert_eq!(answers(&to), answers(&from));
    drop(to);
    let to = sqlite(&to_path);
    assert_eq!(to.get_all_segments().unwrap(), entries, "lost across reopen");
    assert_eq!(to.log_identity().unwrap(), Some(LOG_ID_A), "identity lost");
    assert_eq!(answers(&to), answers(&from));
}

#[test]
fn sqlite_to_mdbx() {
    let dir = tempfile::tempdir().unwrap();
    let (from_path, to_path) = (dir.path().join("index.sqlite"), dir.path().join("index.mdbx"));
    let entries = sample();
    {
        let from = sqlite(&from_path);
        from.add_entries(&entries).unwrap();
        from.set_log_identity(LOG_ID_A).unwrap();
        from.sync().unwrap();
    }
    let from = sqlite(&from_path);
    let to = mdbx(&to_path);
    assert_eq!(copy_index(&from, &to).unwrap(), entries.len());
    assert_eq!(answers(&to), answers(&from));
    assert_eq!(to.verify().unwrap(), entries.len());
    drop(to);
    let to = mdbx(&to_path);
    assert_eq!(to.get_all_segments().unwrap(), entries, "lost across reopen");
    assert_eq!(to.log_identity().unwrap(), Some(LOG_ID_A), "identity lost");
    assert_eq!(answers(&to), answers(&from));
}

#[test]
fn memory_to_both_and_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let memory = MemorySegmentIndex::new();
    memory.add_entries(&sample()).unwrap();
    let m = mdbx(&dir.path().join("a.mdbx"));
    let s = sqlite(&dir.path().join("a.sqlite"));
    assert_eq!(copy_index(&memory, &m).unwrap(), sample().len());
    assert_eq!(copy_index(&memory, &s).unwrap(), sample().len());
    let want = answers(&memory);
    assert_eq!(answers(&m), want);
    assert_eq!(answers(&s), want);
    // And back: MDBX -> SQLite -> MDBX -> memory changes nothing.
    let s2 = sqlite(&dir.path().join("b.sqlite"));
    let m2 = mdbx(&dir.path().join("b.mdbx"));
    let back = MemorySegmentIndex::new();
    copy_index(&m, &s2).unwrap();
    copy_index(&s2, &m2).unwrap();
    copy_index(&m2, &back).unwrap();
    assert_eq!(back.get_all_segments().unwrap(), sample());
}

#[test]
fn an_empty_index_migrates_to_an_empty_index() {
    let dir = tempfile::tempdir().unwrap();
    let m = mdbx(&dir.path().join("a.mdbx"));
    let s = sqlite(&dir.path().join("a.sqlite"));
    assert_eq!(copy_index(&m, &s).unwrap(), 0);
    assert_eq!(copy_index(&s, &m).unwrap(), 0);
    assert_eq!(s.len().unwrap(), 0);
}

#[test]
fn an_extra_entry_in_the_destination_is_a_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let from = mdbx(&dir.path().join("a.mdbx"));
    from.add_entries(&sample()).unwrap();
    for to in [
        Box::new(sqlite(&dir.path().join("b.sqlite"))) as Box<dyn SegmentIndex>,
        Box::new(mdbx(&dir.path().join("b.mdbx"))),
    ] {
        // In a gap of the source, so the copy itself succeeds.
        to.add_entry(&finalized(5, 9, 0, 1)).unwrap();
        match copy_index(&from, &*to) {
            Err(IndexError::Mismatch { base_id: 5 }) => {}
            r => panic!("extra entry gave {r:?}"),
        }
    }
}

#[test]
fn a_clashing_destination_is_refused_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let from = sqlite(&dir.path().join("a.sqlite"));
    from.add_entries(&sample()).unwrap();
    let to = mdbx(&dir.path().join("b.mdbx"));
    let clash = finalized(2010, 2099, 7, 8);
    to.add_entry(&clash).unwrap();
    assert!(matches!(
        copy_index(&from, &to),
        Err(IndexError::AlreadyExists { base_id: 2010 })
    ));
    assert_eq!(to.get_all_segments().unwrap(), vec![clash]);
}

/// A destination that reads one field back wrong, and the log identity not
/// at all: what a lossy backend or a broken encoding would do.
#[derive(Debug)]
struct Lossy<I>(I);

impl<I: SegmentIndex> SegmentIndex for Lossy<I> {
    fn add_entry(&self, entry: &SegmentEntry) -> IndexResult<()> {
        self.0.add_entry(entry)
    }
    fn add_entries(&self, entries: &[SegmentEntry]) -> IndexResult<()> {
        self.0.add_entries(entries)
    }
    fn update_entry(&self, entry: &SegmentEntry) -> IndexResult<()> {
        self.0.update_entry(entry)
    }
    fn remove_entry(&self, base_id: u64) -> IndexResult<Option<SegmentEntry>> {
        self.0.remove_entry(base_id)
    }
    fn get_entry(&self, base_id: u64) -> IndexResult<Option<SegmentEntry>> {
        self.0.get_entry(base_id)
    }
    fn find_segment_for_id(&self, id: u64) -> IndexResult<Option<SegmentEntry>> {
        self.0.find_segment_for_id(id)
    }
    fn find_segments_for_timestamp(&self, start_us: u64, end_us: u64) -> IndexResult<Vec<SegmentEntry>> {
        self.0.find_segments_for_timestamp(start_us, end_us)
    }
    fn get_all_segments(&self) -> IndexResult<Vec<SegmentEntry>> {
        let mut all = self.0.get_all_segments()?;
        // Drops the archive key of the first archived entry.
        if let Some(e) = all.iter_mut().find(|e| e.status == SegmentStatus::ArchivedRemote) {
            e.archive_key = None;
        }
        Ok(all)
    }
    fn get_segments_before(&self, id: u64) -> IndexResult<Vec<SegmentEntry>> {
        self.0.get_segments_before(id)
    }
    fn get_max_last_id(&self) -> IndexResult<Option<u64>> {
        self.0.get_max_last_id()
    }
    fn get_active_segment(&self) -> IndexResult<Option<SegmentEntry>> {
        self.0.get_active_segment()
    }
    fn get_latest_finalized_segment(&self) -> IndexResult<Option<SegmentEntry>> {
        self.0.get_latest_finalized_segment()
    }
    fn get_segments_for_archiving(&self, count: usize) -> IndexResult<Vec<SegmentEntry>> {
        self.0.get_segments_for_archiving(count)
    }
    fn update_segment_status(&self, base_id: u64, status: SegmentStatus) -> IndexResult<()> {
        self.0.update_segment_status(base_id, status)
    }
    fn update_segment_tail(&self, base_id: u64, last_id: Option<u64>, size: u64) -> IndexResult<()> {
        self.0.update_segment_tail(base_id, last_id, size)
    }
    fn log_identity(&self) -> IndexResult<Option<LogId>> {
        Ok(None)
    }
    fn set_log_identity(&self, id: LogId) -> IndexResult<()> {
        self.0.set_log_identity(id)
    }
    fn sync(&self) -> IndexResult<()> {
        self.0.sync()
    }
    fn len(&self) -> IndexResult<usize> {
        self.0.len()
    }
    fn copy_to(&self, dest: &Path) -> IndexResult<()> {
        self.0.copy_to(dest)
    }
}

#[test]
fn a_field_read_back_wrong_is_a_mismatch_naming_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let from = mdbx(&dir.path().join("a.mdbx"));
    from.add_entries(&sample()).unwrap();
    let to = Lossy(sqlite(&dir.path().join("b.sqlite")));
    match copy_index(&from, &to) {
        Err(e @ IndexError::Mismatch { base_id: 310 }) => {
            assert_eq!(e.to_string(), "index copy differs at segment 310");
        }
        r => panic!("lossy destination gave {r:?}"),
    }
    let to = Lossy(mdbx(&dir.path().join("b.mdbx")));
    let from = sqlite(&dir.path().join("c.sqlite"));
    from.add_entries(&sample()).unwrap();
    assert!(matches!(
        copy_index(&from, &to),
        Err(IndexError::Mismatch { base_id: 310 })
    ));
}

#[test]
fn an_identity_that_does_not_read_back_is_an_identity_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let from = mdbx(&dir.path().join("a.mdbx"));
    from.add_entries(&sample()).unwrap();
    from.set_log_identity(LOG_ID_A).unwrap();
    let to = Lossy(sqlite(&dir.path().join("b.sqlite")));
    match copy_index(&from, &to) {
        Err(IndexError::IdentityMismatch {
            from: Some(LOG_ID_A),
            to: None,
        }) => {}
        r => panic!("a destination dropping the identity gave {r:?}"),
    }
}
