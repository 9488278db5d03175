//! The [`SegmentIndex`] conformance suite.
//!
//! ```
//! use aof_record::conformance::index;
//! use aof_record::index::MemorySegmentIndex;
//!
//! index::run_all(&mut || Box::new(MemorySegmentIndex::new()));
//! ```
//!
//! Persistent backends also call [`reopen_keeps_everything`] and
//! [`copy_to_round_trips`] with closures that open their files.

use crate::entry::{SegmentEntry, SegmentStatus};
use crate::index::{IndexError, SegmentIndex, SegmentIndexExt, copy_index};
use crate::manifest::LogId;
use std::path::Path;

/// Makes a fresh, empty index for one test.
pub type NewIndex<'a> = dyn FnMut() -> Box<dyn SegmentIndex> + 'a;

/// Runs every test that needs only fresh, empty indexes.
pub fn run_all(new_index: &mut NewIndex<'_>) {
    empty_index(&*new_index());
    add_and_get(&*new_index());
    duplicate_add_is_refused(&*new_index());
    batch_add_is_atomic(&*new_index());
    overlaps_are_refused(&*new_index());
    invalid_entries_are_refused(&*new_index());
    find_by_id_with_gaps(&*new_index());
    id_boundaries(&*new_index());
    empty_segments_hold_no_id(&*new_index());
    timestamp_queries(&*new_index());
    segments_before(&*new_index());
    status_queries(&*new_index());
    status_transitions(&*new_index());
    tail_updates(&*new_index());
    update_and_remove(&*new_index());
    missing_entries(&*new_index());
    lists_are_sorted(&*new_index());
    concurrent_readers_and_writer(&*new_index());
    log_identity(&*new_index());
    copy_index_carries_the_identity(new_index);
}

/// A log identity with every byte distinct, so a backend that drops,
/// truncates or reorders bytes cannot read it back unchanged.
pub const LOG_ID_A: LogId = LogId(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210);
/// Another log identity, differing from [`LOG_ID_A`] in its top bit only.
pub const LOG_ID_B: LogId = LogId(LOG_ID_A.0 ^ (1 << 127));

/// A finalized entry for `base..=last` spanning `created..=finalized` µs.
#[must_use]
pub fn finalized(base: u64, last: u64, created: u64, finalized: u64) -> SegmentEntry {
    SegmentEntry::new_active(base, created, format!("{base:020}.seg"))
        .finalize(Some(last), (last - base + 1) * 100, base ^ last, finalized)
        .expect("an active entry finalizes")
}

/// An active entry for `base..=last` (or empty with `last = None`) created at `created` µs.
#[must_use]
pub fn active(base: u64, last: Option<u64>, created: u64) -> SegmentEntry {
    let mut e = SegmentEntry::new_active(base, created, format!("{base:020}.seg"));
    e.set_tail(last, 64).expect("an active entry takes a tail");
    e
}

/// An archived (remote) entry for `base..=last`.
#[must_use]
pub fn archived(base: u64, last: u64) -> SegmentEntry {
    finalized(base, last, base, last)
        .archive(format!("segments/{base:020}.seg.zst"), 10, 11, last + 1)
        .expect("a finalized entry archives")
}

fn bases(entries: &[SegmentEntry]) -> Vec<u64> {
    entries.iter().map(|e| e.base_id).collect()
}

/// An empty index answers every query with nothing.
pub fn empty_index(index: &dyn SegmentIndex) {
    assert_eq!(index.len().unwrap(), 0, "new index has entries");
    assert!(index.is_empty().unwrap());
    assert!(index.get_all_segments().unwrap().is_empty());
    for id in [0, 1, u64::MAX] {
        assert_eq!(index.find_segment_for_id(id).unwrap(), None);
        assert!(index.get_segments_before(id).unwrap().is_empty());
    }
    assert!(index.find_segments_for_timestamp(0, u64::MAX).unwrap().is_empty());
    assert_eq!(index.get_max_last_id().unwrap(), None);
    assert_eq!(index.get_active_segment().unwrap(), None);
    assert_eq!(index.get_latest_finalized_segment().unwrap(), None);
    assert!(index.get_segments_for_archiving(10).unwrap().is_empty());
    assert_eq!(index.get_entry(0).unwrap(), None);
    index.sync().unwrap();
}

/// Every field written comes back unchanged.
pub fn add_and_get(index: &dyn SegmentIndex) {
    let mut e = archived(100, 199);
    e = e.cache_locally("cache/x.seg").unwrap();
    e.created_at = u64::MAX - 5;
    e.finalized_at = Some(u64::MAX);
    e.archived_at = Some(u64::MAX);
    e.uncompressed_checksum = Some(u64::MAX);
    e.compressed_checksum = Some(0);
    e.original_size = u64::MAX;
    e.compressed_size = Some(u64::MAX - 1);
    index.add_entry(&e).unwrap();
    let f = active(200, None, 0);
    index.add_entry(&f).unwrap();
    assert_eq!(
        index.get_entry(100).unwrap().as_ref(),
        Some(&e),
        "fields changed on the way through"
    );
    assert_eq!(index.get_entry(200).unwrap().as_ref(), Some(&f));
    assert_eq!(index.len().unwrap(), 2);
    assert!(!index.is_empty().unwrap());
}

/// A second entry with the same base id is refused and the first is kept.
pub fn duplicate_add_is_refused(index: &dyn SegmentIndex) {
    let e = finalized(0, 9, 1, 2);
    index.add_entry(&e).unwrap();
    let mut other = finalized(0, 4, 7, 8);
    other.original_size = 1;
    match index.add_entry(&other) {
        Err(IndexError::AlreadyExists { base_id: 0 }) => {}
        r => panic!("duplicate add gave {r:?}"),
    }
    assert_eq!(index.get_entry(0).unwrap(), Some(e));
    assert_eq!(index.len().unwrap(), 1);
}

/// A batch applies entirely or not at all.
pub fn batch_add_is_atomic(index: &dyn SegmentIndex) {
    index.add_entries(&[]).unwrap();
    let batch: Vec<_> = (0..100)
        .map(|i| finalized(i * 10, i * 10 + 9, i, i + 1))
        .collect();
    index.add_entries(&batch).unwrap();
    assert_eq!(index.get_all_segments().unwrap(), batch);
    // A batch whose last entry clashes with a stored one leaves nothing behind.
    let bad = vec![
        finalized(1000, 1009, 0, 1),
        finalized(1010, 1019, 0, 1),
        finalized(990, 999, 0, 1),
    ];
    assert!(matches!(
        index.add_entries(&bad),
        Err(IndexError::AlreadyExists { base_id: 990 })
    ));
    // A batch that clashes with itself too.
    let bad = vec![finalized(2000, 2009, 0, 1), finalized(2000, 2009, 0, 1)];
    assert!(index.add_entries(&bad).is_err());
    let bad = vec![finalized(3000, 3009, 0, 1), finalized(3005, 3019, 0, 1)];
    assert!(matches!(index.add_entries(&bad), Err(IndexError::Overlap { .. })));
    assert_eq!(index.len().unwrap(), 100, "a failed batch left entries behind");
    assert_eq!(index.get_entry(1000).unwrap(), None);
}

/// No two entries may share an id.
pub fn overlaps_are_refused(index: &dyn SegmentIndex) {
    index.add_entry(&finalized(100, 199, 0, 1)).unwrap();
    for (base, last, other) in [(50, 100, 100), (150, 160, 100), (199, 250, 100), (0, 500, 100)] {
        match index.add_entry(&finalized(base, last, 0, 1)) {
            Err(IndexError::Overlap {
                base_id,
                other_base_id,
            }) => {
                assert_eq!((base_id, other_base_id), (base, other), "{base}..={last}");
            }
            r => panic!("{base}..={last} over 100..=199 gave {r:?}"),
        }
    }
    index.add_entry(&finalized(200, 299, 0, 1)).unwrap();
    index.add_entry(&finalized(0, 99, 0, 1)).unwrap();
    // Growing an entry into its successor is an overlap too.
    let grown = finalized(0, 100, 0, 1);
    assert!(matches!(
        index.update_entry(&grown),
        Err(IndexError::Overlap {
            base_id: 0,
            other_base_id: 100
        })
    ));
    let mut act = active(300, None, 0);
    index.add_entry(&act).unwrap();
    index.add_entry(&finalized(400, 499, 0, 1)).unwrap();
    assert!(matches!(
        index.update_segment_tail(300, Some(400), 1),
        Err(IndexError::Overlap {
            base_id: 300,
            other_base_id: 400
        })
    ));
    act.set_tail(Some(399), 1).unwrap();
    index.update_segment_tail(300, Some(399), 1).unwrap();
    assert_eq!(index.get_entry(300).unwrap(), Some(act));
    assert_eq!(index.len().unwrap(), 5);
}

/// Entries that break [`SegmentEntry::validate`] are refused.
pub fn invalid_entries_are_refused(index: &dyn SegmentIndex) {
    let mut e = finalized(0, 9, 0, 1);
    e.record_count = 11;
    assert!(matches!(index.add_entry(&e), Err(IndexError::InvalidEntry(_))));
    let mut e = active(0, None, 0);
    e.last_id = 5;
    assert!(matches!(index.add_entry(&e), Err(IndexError::InvalidEntry(_))));
    assert!(matches!(
        index.add_entries(&[finalized(50, 59, 0, 1), e.clone()]),
        Err(IndexError::InvalidEntry(_))
    ));
    index.add_entry(&finalized(0, 9, 0, 1)).unwrap();
    assert!(matches!(index.update_entry(&e), Err(IndexError::InvalidEntry(_))));
    assert_eq!(index.len().unwrap(), 1);
}

/// Lookups inside, between and past segments.
pub fn find_by_id_with_gaps(index: &dyn SegmentIndex) {
    index
        .add_entries(&[
            finalized(0, 99, 0, 1),
            finalized(200, 299, 2, 3),
            active(300, Some(349), 4),
        ])
        .unwrap();
    let cases = [
        (0, Some(0)),
        (50, Some(0)),
        (99, Some(0)),
        (100, None),
        (150, None),
        (199, None),
        (200, Some(200)),
        (299, Some(200)),
        (300, Some(300)),
        (349, Some(300)),
        (350, None),
        (u64::MAX, None),
    ];
    for (id, want) in cases {
        let got = index.find_segment_for_id(id).unwrap().map(|e| e.base_id);
        assert_eq!(got, want, "find_segment_for_id({id})");
    }
}

/// Ids 0 and `u64::MAX` are ordinary ids.
pub fn id_boundaries(index: &dyn SegmentIndex) {
    let top = finalized(u64::MAX - 9, u64::MAX, 5, 6);
    index.add_entries(&[finalized(0, 0, 0, 1), top.clone()]).unwrap();
    assert_eq!(index.find_segment_for_id(0).unwrap().map(|e| e.base_id), Some(0));
    assert_eq!(index.find_segment_for_id(1).unwrap(), None);
    assert_eq!(index.find_segment_for_id(u64::MAX).unwrap(), Some(top.clone()));
    assert_eq!(
        index.find_segment_for_id(u64::MAX - 9).unwrap(),
        Some(top.clone())
    );
    assert_eq!(index.find_segment_for_id(u64::MAX - 10).unwrap(), None);
    assert_eq!(index.get_max_last_id().unwrap(), Some(u64::MAX));
    assert_eq!(bases(&index.get_segments_before(u64::MAX).unwrap()), vec![0]);
    assert_eq!(index.get_entry(u64::MAX - 9).unwrap(), Some(top));
    assert_eq!(
        index.remove_entry(u64::MAX - 9).unwrap().map(|e| e.last_id),
        Some(u64::MAX)
    );
    assert_eq!(index.get_max_last_id().unwrap(), Some(0));
}

/// An empty segment holds no id and does not count for `get_max_last_id`.
pub fn empty_segments_hold_no_id(index: &dyn SegmentIndex) {
    index
        .add_entries(&[finalized(0, 9, 0, 1), active(10, None, 2)])
        .unwrap();
    assert_eq!(index.find_segment_for_id(10).unwrap(), None);
    assert_eq!(index.get_max_last_id().unwrap(), Some(9));
    assert_eq!(index.get_active_segment().unwrap().map(|e| e.base_id), Some(10));
    assert_eq!(bases(&index.get_segments_before(u64::MAX).unwrap()), vec![0]);
    index.update_segment_tail(10, Some(10), 100).unwrap();
    assert_eq!(
        index.find_segment_for_id(10).unwrap().map(|e| e.base_id),
        Some(10)
    );
    assert_eq!(index.get_max_last_id().unwrap(), Some(10));
}

/// Time spans overlap inclusively; the active segment is open-ended.
pub fn timestamp_queries(index: &dyn SegmentIndex) {
    index
        .add_entries(&[
            finalized(0, 9, 100, 200),
            finalized(10, 19, 200, 300),
            finalized(20, 29, 400, 500),
            active(30, Some(35), 600),
        ])
        .unwrap();
    let cases: [((u64, u64), Vec<u64>); 9] = [
        ((0, 99), vec![]),
        ((0, 100), vec![0]),
        ((150, 150), vec![0]),
        ((200, 200), vec![0, 10]),
        ((301, 399), vec![]),
        ((250, 450), vec![10, 20]),
        ((600, 600), vec![30]),
        ((u64::MAX, u64::MAX), vec![30]),
        ((0, u64::MAX), vec![0, 10, 20, 30]),
    ];
    for ((start, end), want) in cases {
        let got = bases(&index.find_segments_for_timestamp(start, end).unwrap());
        assert_eq!(got, want, "find_segments_for_timestamp({start}, {end})");
    }
}

/// `get_segments_before` lists the entries wholly below an id.
pub fn segments_before(index: &dyn SegmentIndex) {
    index
        .add_entries(&[
            finalized(0, 9, 0, 1),
            finalized(10, 19, 0, 1),
            finalized(30, 39, 0, 1),
            active(40, None, 2),
        ])
        .unwrap();
    let cases: [(u64, Vec<u64>); 7] = [
        (0, vec![]),
        (9, vec![]),
        (10, vec![0]),
        (19, vec![0]),
        (20, vec![0, 10]),
        (40, vec![0, 10, 30]),
        (u64::MAX, vec![0, 10, 30]),
    ];
    for (id, want) in cases {
        assert_eq!(
            bases(&index.get_segments_before(id).unwrap()),
            want,
            "get_segments_before({id})"
        );
    }
}

/// Queries by status.
pub fn status_queries(index: &dyn SegmentIndex) {
    index
        .add_entries(&[
            archived(0, 9),
            finalized(10, 19, 0, 1),
            finalized(20, 29, 0, 1),
            finalized(30, 39, 0, 1),
            active(40, Some(45), 2),
        ])
        .unwrap();
    assert_eq!(index.get_active_segment().unwrap().map(|e| e.base_id), Some(40));
    assert_eq!(
        index.get_latest_finalized_segment().unwrap().map(|e| e.base_id),
        Some(30)
    );
    assert_eq!(bases(&index.get_segments_for_archiving(2).unwrap()), vec![10, 20]);
    assert_eq!(
        bases(&index.get_segments_for_archiving(100).unwrap()),
        vec![10, 20, 30]
    );
    assert!(index.get_segments_for_archiving(0).unwrap().is_empty());
    index
        .update_segment_status(10, SegmentStatus::ArchivedRemote)
        .unwrap();
    assert_eq!(bases(&index.get_segments_for_archiving(2).unwrap()), vec![20, 30]);
    index.update_segment_status(40, SegmentStatus::Finalized).unwrap();
    assert_eq!(index.get_active_segment().unwrap(), None);
    assert_eq!(
        index.get_latest_finalized_segment().unwrap().map(|e| e.base_id),
        Some(40)
    );
    assert_eq!(
        index.get_entry(40).unwrap().map(|e| e.status),
        Some(SegmentStatus::Finalized)
    );
}

/// Illegal lifecycle moves are refused and change nothing.
pub fn status_transitions(index: &dyn SegmentIndex) {
    index
        .add_entries(&[finalized(0, 9, 0, 1), active(10, None, 2)])
        .unwrap();
    for status in [SegmentStatus::Active, SegmentStatus::ArchivedCached] {
        match index.update_segment_status(0, status) {
            Err(IndexError::Transition(t)) => {
                assert_eq!((t.base_id, t.from, t.to), (0, SegmentStatus::Finalized, status));
            }
            r => panic!("Finalized -> {status} gave {r:?}"),
        }
    }
    assert!(matches!(
        index.update_segment_status(10, SegmentStatus::ArchivedRemote),
        Err(IndexError::Transition(_))
    ));
    index.update_segment_status(0, SegmentStatus::Finalized).unwrap();
    assert_eq!(
        index.get_entry(0).unwrap().map(|e| e.status),
        Some(SegmentStatus::Finalized)
    );
    let archived = index
        .get_entry(0)
        .unwrap()
        .unwrap()
        .archive("k/0", 1, 2, 3)
        .unwrap();
    index.update_entry(&archived).unwrap();
    index
        .update_segment_status(0, SegmentStatus::ArchivedCached)
        .unwrap();
    index
        .update_segment_status(0, SegmentStatus::ArchivedRemote)
        .unwrap();
    let back = finalized(0, 9, 0, 1);
    assert!(matches!(
        index.update_entry(&back),
        Err(IndexError::Transition(_))
    ));
    assert_eq!(
        index.get_entry(0).unwrap().map(|e| e.status),
        Some(SegmentStatus::ArchivedRemote)
    );
}

/// Tail updates move the last id and size of the active entry only.
pub fn tail_updates(index: &dyn SegmentIndex) {
    index
        .add_entries(&[finalized(0, 9, 0, 1), active(10, None, 2)])
        .unwrap();
    index.update_segment_tail(10, Some(14), 500).unwrap();
    let e = index.get_entry(10).unwrap().unwrap();
    assert_eq!((e.last_id, e.record_count, e.original_size), (14, 5, 500));
    index.update_segment_tail(10, None, 64).unwrap();
    let e = index.get_entry(10).unwrap().unwrap();
    assert_eq!((e.last_id, e.record_count, e.original_size), (10, 0, 64));
    assert!(matches!(
        index.update_segment_tail(0, Some(12), 1),
        Err(IndexError::Transition(_))
    ));
    assert!(matches!(
        index.update_segment_tail(99, Some(100), 1),
        Err(IndexError::NotFound { base_id: 99 })
    ));
    assert_eq!(index.get_entry(0).unwrap(), Some(finalized(0, 9, 0, 1)));
}

/// Updates replace every field; removal returns the entry.
pub fn update_and_remove(index: &dyn SegmentIndex) {
    let a = active(0, Some(4), 10);
    index.add_entry(&a).unwrap();
    let f = a.clone().finalize(Some(9), 999, 77, 20).unwrap();
    index.update_entry(&f).unwrap();
    assert_eq!(index.get_entry(0).unwrap(), Some(f.clone()));
    assert_eq!(index.find_segment_for_id(9).unwrap(), Some(f.clone()));
    assert_eq!(index.remove_entry(0).unwrap(), Some(f));
    assert_eq!(index.remove_entry(0).unwrap(), None);
    assert_eq!(index.find_segment_for_id(9).unwrap(), None);
    assert!(index.is_empty().unwrap());
}

/// Operations on absent entries fail with `NotFound` and change nothing.
pub fn missing_entries(index: &dyn SegmentIndex) {
    index.add_entry(&finalized(0, 9, 0, 1)).unwrap();
    assert!(matches!(
        index.update_entry(&finalized(10, 19, 0, 1)),
        Err(IndexError::NotFound { base_id: 10 })
    ));
    assert!(matches!(
        index.update_segment_status(10, SegmentStatus::Finalized),
        Err(IndexError::NotFound { base_id: 10 })
    ));
    assert_eq!(index.remove_entry(10).unwrap(), None);
    assert_eq!(index.get_entry(10).unwrap(), None);
    assert_eq!(index.len().unwrap(), 1);
}

/// Lists come back in base-id order whatever the insertion order.
pub fn lists_are_sorted(index: &dyn SegmentIndex) {
    // A fixed permutation of 0..64, so the order does not depend on a RNG.
    let order: Vec<u64> = (0..64u64).map(|i| (i * 37) % 64).collect();
    for i in &order {
        index
            .add_entry(&finalized(i * 1000, i * 1000 + 999, *i, i + 1))
            .unwrap();
    }
    let all = bases(&index.get_all_segments().unwrap());
    assert_eq!(all, (0..64).map(|i| i * 1000).collect::<Vec<_>>());
    let ts = bases(&index.find_segments_for_timestamp(0, u64::MAX).unwrap());
    assert_eq!(ts, all);
    let before = bases(&index.get_segments_before(u64::MAX).unwrap());
    assert_eq!(before, all);
    assert_eq!(bases(&index.get_segments_for_archiving(64).unwrap()), all);
}

/// Readers on several threads see whole entries while one thread writes.
pub fn concurrent_readers_and_writer(index: &dyn SegmentIndex) {
    index.add_entry(&active(0, None, 0)).unwrap();
    index.update_segment_tail(0, None, 0).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                let mut reads = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || reads == 0 {
                    let e = index
                        .get_active_segment()
                        .unwrap()
                        .expect("active entry vanished");
                    assert!(e.validate().is_ok(), "torn entry {e:?}");
                    assert_eq!(e.original_size, e.record_count * 10, "torn tail update {e:?}");
                    reads += 1;
                }
            });
        }
        for last in 0..200 {
            index.update_segment_tail(0, Some(last), (last + 1) * 10).unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    assert_eq!(index.get_entry(0).unwrap().map(|e| e.last_id), Some(199));
}

/// The log identity: unset until set, then fixed; entries do not touch it.
pub fn log_identity(index: &dyn SegmentIndex) {
    assert_eq!(
        index.log_identity().unwrap(),
        None,
        "new index has a log identity"
    );
    index.add_entry(&finalized(0, 9, 0, 1)).unwrap();
    assert_eq!(
        index.log_identity().unwrap(),
        None,
        "an entry set the log identity"
    );
    index.set_log_identity(LOG_ID_A).unwrap();
    assert_eq!(index.log_identity().unwrap(), Some(LOG_ID_A));
    index.set_log_identity(LOG_ID_A).unwrap();
    assert_eq!(
        index.log_identity().unwrap(),
        Some(LOG_ID_A),
        "setting it again changed it"
    );
    for other in [LOG_ID_B, LogId(0), LogId(u128::MAX)] {
        match index.set_log_identity(other) {
            Err(IndexError::IdentityAlreadySet { current, requested }) => {
                assert_eq!((current, requested), (LOG_ID_A, other));
            }
            r => panic!("setting {other} over {LOG_ID_A} gave {r:?}"),
        }
    }
    assert_eq!(
        index.log_identity().unwrap(),
        Some(LOG_ID_A),
        "a refused set changed it"
    );
    index.add_entry(&active(10, Some(12), 2)).unwrap();
    index.remove_entry(0).unwrap();
    index.sync().unwrap();
    assert_eq!(index.log_identity().unwrap(), Some(LOG_ID_A));
    assert_eq!(bases(&index.get_all_segments().unwrap()), vec![10]);
}

/// [`copy_index`] carries the log identity, refuses a target that belongs
/// to another log before writing any entry, and copies an index without an
/// identity as one without.
pub fn copy_index_carries_the_identity(new_index: &mut NewIndex<'_>) {
    let entries = vec![archived(0, 9), finalized(10, 19, 1, 2), active(20, Some(24), 3)];
    let from = new_index();
    from.add_entries(&entries).unwrap();
    // No identity: the copy has none either.
    let to = new_index();
    assert_eq!(copy_index(&*from, &*to).unwrap(), 3);
    assert_eq!(to.log_identity().unwrap(), None, "copy gained an identity");
    // A target of another log is refused before any entry is written.
    let foreign = new_index();
    foreign.set_log_identity(LOG_ID_B).unwrap();
    match copy_index(&*from, &*foreign) {
        Err(IndexError::IdentityMismatch { from: None, to }) => assert_eq!(to, Some(LOG_ID_B)),
        r => panic!("copying an index without identity onto one of log B gave {r:?}"),
    }
    assert!(foreign.is_empty().unwrap(), "a refused copy wrote entries");
    from.set_log_identity(LOG_ID_A).unwrap();
    match copy_index(&*from, &*foreign) {
        Err(IndexError::IdentityAlreadySet { current, requested }) => {
            assert_eq!((current, requested), (LOG_ID_B, LOG_ID_A));
        }
        r => panic!("copying log A onto an index of log B gave {r:?}"),
    }
    assert!(foreign.is_empty().unwrap(), "a refused copy wrote entries");
    assert_eq!(foreign.log_identity().unwrap(), Some(LOG_ID_B));
    // With an identity: carried over, also onto a target that has it already.
    let to = new_index();
    assert_eq!(copy_index(&*from, &*to).unwrap(), 3);
    assert_eq!(
        to.log_identity().unwrap(),
        Some(LOG_ID_A),
        "copy lost the identity"
    );
    assert_eq!(to.get_all_segments().unwrap(), entries);
    let same = new_index();
    same.set_log_identity(LOG_ID_A).unwrap();
    assert_eq!(copy_index(&*from, &*same).unwrap(), 3);
    assert_eq!(same.log_identity().unwrap(), Some(LOG_ID_A));
}

/// What a persistent backend wrote is there after closing and reopening.
///
/// `open` opens (creating if needed) the same index every time it is called;
/// the index it returns is dropped before the next call.
pub fn reopen_keeps_everything(open: &mut NewIndex<'_>) {
    let entries = vec![archived(0, 9), finalized(10, 19, 1, 2), active(20, Some(24), 3)];
    {
        let index = open();
        assert_eq!(
            index.log_identity().unwrap(),
            None,
            "new index has a log identity"
        );
        index.add_entries(&entries).unwrap();
        index.update_segment_tail(20, Some(29), 1234).unwrap();
        index.sync().unwrap();
    }
    {
        let index = open();
        assert_eq!(
            index.log_identity().unwrap(),
            None,
            "an index never given an identity has one after reopen"
        );
        index.set_log_identity(LOG_ID_A).unwrap();
        index.sync().unwrap();
    }
    let index = open();
    assert_eq!(
        index.log_identity().unwrap(),
        Some(LOG_ID_A),
        "log identity lost across reopen"
    );
    index.set_log_identity(LOG_ID_A).unwrap();
    assert!(
        matches!(
            index.set_log_identity(LOG_ID_B),
            Err(IndexError::IdentityAlreadySet { .. })
        ),
        "a reopened index took another log identity"
    );
    let mut want = entries;
    want[2].set_tail(Some(29), 1234).unwrap();
    assert_eq!(
        index.get_all_segments().unwrap(),
        want,
        "entries changed across reopen"
    );
    assert_eq!(
        index.find_segment_for_id(25).unwrap().map(|e| e.base_id),
        Some(20)
    );
    assert_eq!(index.get_active_segment().unwrap().map(|e| e.base_id), Some(20));
    assert_eq!(index.get_max_last_id().unwrap(), Some(29));
    drop(index);
    let index = open();
    index.remove_entry(0).unwrap();
    drop(index);
    let index = open();
    assert_eq!(index.len().unwrap(), 2, "removal lost across reopen");
    assert_eq!(index.log_identity().unwrap(), Some(LOG_ID_A));
}

/// `copy_to` writes a consistent copy that `open_copy` opens with the same
/// entries and log identity, and refuses to overwrite an existing file.
pub fn copy_to_round_trips(
    index: &dyn SegmentIndex,
    dir: &Path,
    open_copy: &dyn Fn(&Path) -> Box<dyn SegmentIndex>,
) {
    let entries: Vec<_> = (0..50).map(|i| finalized(i * 10, i * 10 + 9, i, i + 1)).collect();
    index.add_entries(&entries).unwrap();
    index.add_entry(&active(500, Some(505), 60)).unwrap();
    index.set_log_identity(LOG_ID_A).unwrap();
    let dest = dir.join("index-copy");
    index.copy_to(&dest).unwrap();
    // Changes after the copy do not reach it.
    index.update_segment_tail(500, Some(509), 99).unwrap();
    let copy = open_copy(&dest);
    let mut want = entries;
    want.push(active(500, Some(505), 60));
    assert_eq!(
        copy.get_all_segments().unwrap(),
        want,
        "copy differs from the source"
    );
    assert_eq!(
        copy.log_identity().unwrap(),
        Some(LOG_ID_A),
        "copy lost the log identity"
    );
    drop(copy);
    assert!(
        index.copy_to(&dest).is_err(),
        "copy_to overwrote an existing file"
    );
}
