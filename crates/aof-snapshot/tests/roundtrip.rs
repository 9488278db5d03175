//! Export while the log takes appends, import, compare record by record;
//! pinning against truncation during an export; the async stream.

mod common;

use aof_snapshot::wire::FrameWriter;
use aof_snapshot::{ExportOptions, ImportOptions, SnapshotError};
use common::{assert_same_records, chunks, encode, filled, open, payload};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[test]
fn export_during_appends_imports_exactly_the_prefix_through_last_id() {
    let dir = tempfile::tempdir().unwrap();
    let source = Arc::new(filled(&dir.path().join("src"), 2_000, 64 * 1024));
    let stop = Arc::new(AtomicBool::new(false));
    let appender = {
        let (log, stop) = (source.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 2_000;
            while !stop.load(Ordering::Acquire) {
                log.append(&payload(i)).unwrap();
                if i % 50 == 0 {
                    log.flush_blocking().unwrap();
                }
                i += 1;
            }
            i
        })
    };
    // Several snapshots while the appender runs, each checked exactly.
    for round in 0..3 {
        let mut out = FrameWriter::new(Vec::new());
        let exporter =
            aof_snapshot::export(&source, ExportOptions::new().chunk_size(7_000).unwrap()).unwrap();
        let last = exporter.metadata().last_id;
        for chunk in exporter {
            out.write_chunk(&chunk.unwrap()).unwrap();
            // Appends interleave with the export's reads.
            std::thread::yield_now();
        }
        let bytes = out.finish().unwrap();
        let target = dir.path().join(format!("copy{round}"));
        let imported =
            aof_snapshot::import_from(&bytes[..], &target, &ImportOptions::new(), &mut |_, _| {}).unwrap();
        assert_eq!(imported.metadata.last_id, last);
        assert!(last.unwrap() >= 1_999);
        let copy = open(&target, 64 * 1024, true);
        imported.check(&copy).unwrap();
        assert_same_records(&source, &copy, 0, last);
        // The copy is a log: it takes appends after the snapshot's end.
        let next = copy.append(b"after").unwrap();
        assert_eq!(Some(next - 1), last);
        copy.close_blocking().unwrap();
    }
    stop.store(true, Ordering::Release);
    let appended = appender.join().unwrap();
    assert!(appended > 2_000, "the appender ran");
}

#[test]
fn pinned_segments_survive_truncate_before_during_the_export() {
    let dir = tempfile::tempdir().unwrap();
    let source = filled(&dir.path().join("src"), 1_500, 32 * 1024);
    let mut exporter = aof_snapshot::export(&source, ExportOptions::new().chunk_size(4096).unwrap()).unwrap();
    let md = exporter.metadata().clone();
    assert!(md.files.len() > 5, "several segments: {}", md.files.len());
    let mut got = vec![exporter.next().unwrap().unwrap()];
    // Retention-like removal of every finalized segment but the last.
    let removed = source.truncate_before(1_200).unwrap();
    assert!(removed > 0);
    assert!(source.first_id() > 0);
    for c in exporter {
        got.push(c.unwrap());
    }
    let target = dir.path().join("copy");
    let imported =
        aof_snapshot::import_from(&encode(&got)[..], &target, &ImportOptions::new(), &mut |_, _| {}).unwrap();
    let copy = open(&target, 32 * 1024, true);
    imported.check(&copy).unwrap();
    assert_eq!(copy.first_id(), 0);
    assert_eq!(copy.durable_id(), Some(1_499));
    for id in 0..1_500 {
        assert_eq!(copy.read(id).unwrap().unwrap(), payload(id), "record {id}");
    }
    // After the view is gone, the removed segments' files are deleted.
    drop(got);
    let left = std::fs::read_dir(dir.path().join("src"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".seg")
        })
        .count();
    assert!(left < md.files.len() - 1, "{left} segment files left");
}

#[test]
fn truncate_after_during_the_export_invalidates_it() {
    let dir = tempfile::tempdir().unwrap();
    let source = filled(&dir.path().join("src"), 500, 32 * 1024);
    let mut exporter = aof_snapshot::export(&source, ExportOptions::new()).unwrap();
    exporter.next().unwrap().unwrap();
    source.truncate_after(100).unwrap();
    let results: Vec<_> = exporter.collect();
    assert!(
        matches!(results.last(), Some(Err(SnapshotError::Invalidated))),
        "{:?}",
        results.last()
    );
}

#[test]
fn empty_and_tiny_logs_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    for n in [0u64, 1, 3] {
        let src = dir.path().join(format!("src{n}"));
        let source = filled(&src, n, 64 * 1024);
        let target = dir.path().join(format!("copy{n}"));
        let bytes = encode(&chunks(&source, 1 << 20));
        let imported =
            aof_snapshot::import_from(&bytes[..], &target, &ImportOptions::new(), &mut |_, _| {}).unwrap();
        assert_eq!(imported.metadata.last_id, n.checked_sub(1));
        let copy = open(&target, 64 * 1024, true);
        imported.check(&copy).unwrap();
        assert_same_records(&source, &copy, 0, n.checked_sub(1));
        assert_eq!(copy.next_id(), n);
    }
}

#[test]
fn a_read_only_open_exports_what_it_sees() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let writer = filled(&src, 800, 32 * 1024);
    // Beside the live writer, as the CLI does from another process: the
    // index is a private in-memory copy.
    let entries = aof_index_sqlite::read_entries(src.join("index.sqlite")).unwrap();
    let index = aof_record::MemorySegmentIndex::new();
    aof_record::SegmentIndex::add_entries(&index, &entries).unwrap();
    let mut options = aof_core::AofOptions::new(common::config(32 * 1024));
    options.rebuild_index = true;
    let ro = aof_core::Aof::open_read_only(&src, options, Arc::new(index)).unwrap();
    writer.append(b"later").unwrap();
    writer.flush_blocking().unwrap();
    let bytes = encode(&chunks(&ro, 10_000));
    let target = dir.path().join("copy");
    let imported =
        aof_snapshot::import_from(&bytes[..], &target, &ImportOptions::new(), &mut |_, _| {}).unwrap();
    assert_eq!(imported.metadata.last_id, Some(799));
    let copy = open(&target, 32 * 1024, true);
    assert_same_records(&writer, &copy, 0, Some(799));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_async_stream_yields_the_same_chunks() {
    use futures_util::StreamExt;
    let dir = tempfile::tempdir().unwrap();
    let source = filled(&dir.path().join("src"), 300, 16 * 1024);
    let blocking: Vec<_> = chunks(&source, 3000);
    let stream = aof_snapshot::export(&source, ExportOptions::new().chunk_size(3000).unwrap())
        .unwrap()
        .into_stream();
    let streamed: Vec<_> = stream.map(|c| c.unwrap()).collect().await;
    assert_eq!(streamed.len(), blocking.len());
    for (a, b) in streamed.iter().zip(&blocking) {
        // Snapshot ids and times (in the MANIFEST) differ between two
        // exports; the segments do not.
        let segment =
            |c: &aof_snapshot::SnapshotChunk| c.file_chunk.clone().filter(|f| f.file_name != "MANIFEST");
        assert_eq!(segment(a), segment(b));
        assert_eq!(a.sequence, b.sequence);
    }
}
