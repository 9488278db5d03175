//! The shared `SegmentIndex` conformance suite, on real MDBX files.

use aof_index_mdbx::{MdbxIndexOptions, MdbxSegmentIndex};
use aof_record::conformance::index;
use aof_record::index::SegmentIndex;

#[test]
fn passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    index::run_all(&mut || {
        n += 1;
        Box::new(MdbxSegmentIndex::open(dir.path().join(format!("index-{n}.mdbx"))).unwrap())
    });
}

#[test]
fn passes_the_conformance_suite_with_durable_commits() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    let options = MdbxIndexOptions::default().durable_commits(true);
    index::run_all(&mut || {
        n += 1;
        let path = dir.path().join(format!("index-{n}.mdbx"));
        Box::new(MdbxSegmentIndex::open_with(path, &options).unwrap())
    });
}

#[test]
fn reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.mdbx");
    index::reopen_keeps_everything(&mut || Box::new(MdbxSegmentIndex::open(&path).unwrap()));
}

#[test]
fn copy_to_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let source = MdbxSegmentIndex::open(dir.path().join("index.mdbx")).unwrap();
    index::copy_to_round_trips(&source, dir.path(), &|p| {
        Box::new(MdbxSegmentIndex::open(p).unwrap()) as Box<dyn SegmentIndex>
    });
}
