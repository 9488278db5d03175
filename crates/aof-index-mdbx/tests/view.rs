//! `read_entries`: the entries of an index for a read-only view, read from
//! a private copy beside a writer that holds the file.

use aof_index_mdbx::{IndexError, MdbxSegmentIndex, read_entries};
use aof_record::conformance::index::{active, finalized};
use aof_record::entry::SegmentEntry;
use aof_record::index::SegmentIndex;
use std::path::Path;

/// `n` entries of 100 ids each, all finalized but the last.
fn entries(n: u64) -> Vec<SegmentEntry> {
    (0..n)
        .map(|i| {
            if i + 1 < n {
                finalized(i * 100, i * 100 + 99, 1_000 + i, 2_000 + i)
            } else {
                active(i * 100, Some(i * 100 + 99), 1_000 + i)
            }
        })
        .collect()
}

fn bytes_of(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn entries_are_read_beside_the_writer_that_holds_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.mdbx");
    let index = MdbxSegmentIndex::open(&path).unwrap();
    let written = entries(50);
    index.add_entries(&written).unwrap();
    index.sync().unwrap();
    let before = bytes_of(&path);
    assert_eq!(read_entries(&path).unwrap(), written);
    assert_eq!(bytes_of(&path), before, "the file was not changed");
    // The writer goes on. A commit not yet synced is in the copy, unless
    // libmdbx, finding its meta page weak, settles the copy on the last
    // synced state: either is a state the writer committed.
    let extra = SegmentEntry::new_active(9_000, 5_000, "00000000000000009000.seg");
    index.add_entry(&extra).unwrap();
    let read = read_entries(&path).unwrap();
    let mut with_extra = written.clone();
    with_extra.push(extra);
    assert!(read == written || read == with_extra, "{} entries", read.len());
    // The writer still owns its file: nothing read kept it.
    index.sync().unwrap();
    drop(index);
    let reopened = MdbxSegmentIndex::open(&path).unwrap();
    assert_eq!(reopened.get_all_segments().unwrap(), with_extra);
}

#[test]
fn a_view_read_never_keeps_a_writer_from_opening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.mdbx");
    {
        let index = MdbxSegmentIndex::open(&path).unwrap();
        index.add_entries(&entries(20)).unwrap();
        index.sync().unwrap();
    }
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            for _ in 0..50 {
                assert_eq!(read_entries(&path).unwrap().len(), 20);
            }
        });
        for _ in 0..50 {
            drop(MdbxSegmentIndex::open(&path).unwrap());
        }
        reader.join().unwrap();
    });
}

#[test]
fn no_file_is_no_entries_and_a_foreign_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert!(read_entries(dir.path().join("none.mdbx")).unwrap().is_empty());
    let foreign = dir.path().join("foreign.mdbx");
    std::fs::write(&foreign, vec![0x5a; 64 * 1024]).unwrap();
    let err = read_entries(&foreign).unwrap_err();
    assert!(matches!(err, IndexError::NotAnIndex { .. }), "{err}");
    assert_eq!(bytes_of(&foreign), vec![0x5a; 64 * 1024]);
    let err = read_entries(dir.path()).unwrap_err();
    assert!(matches!(err, IndexError::NotAnIndex { .. }), "{err}");
}

/// The `i`-th entry of a log of finalized segments of 10 ids.
fn entry(i: u64) -> SegmentEntry {
    finalized(i * 10, i * 10 + 9, 1_000 + i, 2_000 + i)
}

/// Reads beside a writer that commits every millisecond (an engine commits
/// its index once per segment created or sealed): each one a state the
/// writer committed, never a torn copy. (They may go back: a copy whose
/// newest meta page is not synced settles on the last synced state.)
/// Beside a writer committing back to back every copy is torn, which the
/// last part shows as the typed error `aof` falls back on.
#[test]
fn reads_beside_a_committing_writer_see_committed_prefixes() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.mdbx");
    let index = MdbxSegmentIndex::open(&path).unwrap();
    let reads = AtomicU64::new(0);
    let wanted = 40;
    // Stops the writer when the reader is done, panics included.
    struct Done<'a>(&'a AtomicU64);
    impl Drop for Done<'_> {
        fn drop(&mut self) {
            self.0.store(u64::MAX, Ordering::Release);
        }
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 0;
            while reads.load(Ordering::Acquire) < wanted {
                if i % 7 == 0 {
                    let batch: Vec<_> = (i..i + 50).map(entry).collect();
                    i += batch.len() as u64;
                    index.add_entries(&batch).unwrap();
                } else {
                    index.add_entry(&entry(i)).unwrap();
                    i += 1;
                }
                if i % 3 == 0 {
                    index.sync().unwrap();
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        });
        let _done = Done(&reads);
        let (mut longest, mut busy) = (0, 0);
        while reads.load(Ordering::Acquire) < wanted {
            match read_entries(&path) {
                Ok(read) => {
                    let expected: Vec<_> = (0..read.len() as u64).map(entry).collect();
                    assert_eq!(read, expected, "not a committed prefix");
                    longest = longest.max(read.len());
                }
                // A loaded machine may stretch a copy over several commits.
                Err(IndexError::Io { source, .. }) if source.kind() == std::io::ErrorKind::ResourceBusy => {
                    busy += 1
                }
                Err(e) => panic!("{e}"),
            }
            reads.fetch_add(1, Ordering::AcqRel);
        }
        assert!(longest > 0);
        assert!(
            busy <= wanted / 4,
            "{busy} of {wanted} reads found every copy torn"
        );
    });
    // Back to back: a read is a committed prefix or the typed error.
    let stop = AtomicU64::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut i = 100_000;
            while stop.load(Ordering::Acquire) == 0 {
                index.add_entry(&entry(i)).unwrap();
                i += 1;
            }
        });
        let _done = Done(&stop);
        for _ in 0..5 {
            match read_entries(&path) {
                Ok(read) => assert!(!read.is_empty()),
                Err(IndexError::Io { source, .. }) => {
                    assert_eq!(source.kind(), std::io::ErrorKind::ResourceBusy, "{source}");
                }
                Err(e) => panic!("{e}"),
            }
        }
    });
}
