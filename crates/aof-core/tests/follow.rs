//! A read-only view following a log that a writer keeps appending to:
//! `Aof::refresh` and a tail on a read-only view.

use aof_core::testing::FileIndex;
use aof_core::{Aof, AofOptions, FileSystem, LocalFileSystem};
use aof_record::{AofConfig, AofError, FlushStrategy, MemorySegmentIndex};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn config(pre_allocate: bool) -> AofConfig {
    AofConfig::builder()
        .flush_strategy(FlushStrategy::Sync)
        .segment_size(64 * 1024)
        .pre_allocate_enabled(pre_allocate)
        .build()
        .unwrap()
}

fn open(dir: &Path, config: AofConfig) -> Aof {
    let fs: Arc<dyn FileSystem> = LocalFileSystem::shared();
    let index = FileIndex::open(fs.clone(), dir.join("index.json")).unwrap();
    let mut options = AofOptions::new(config);
    options.fs = fs;
    Aof::open_with(dir, options, Arc::new(index)).unwrap()
}

fn view(dir: &Path, config: AofConfig) -> Aof {
    let index = Arc::new(MemorySegmentIndex::load(&dir.join("index.json")).unwrap());
    Aof::open_read_only(dir, AofOptions::new(config), index).unwrap()
}

fn payload(i: u64) -> Vec<u8> {
    let mut v = format!("record {i} ").into_bytes();
    v.resize(700 + (i as usize * 37) % 900, b'a' + (i % 26) as u8);
    v
}

fn ids_and_payloads(log: &Aof, from: u64) -> Vec<(u64, Vec<u8>)> {
    log.reader(from)
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            (r.id, r.payload.to_vec())
        })
        .collect()
}

fn follows_appends_across_segments(pre_allocate: bool) {
    let dir = tempfile::tempdir().unwrap();
    let writer = open(dir.path(), config(pre_allocate));
    for i in 0..10 {
        writer.append(&payload(i)).unwrap();
    }
    let ro = view(dir.path(), config(pre_allocate));
    assert_eq!(ro.next_id(), 10);
    assert_eq!(ro.refresh().unwrap(), 0, "nothing new yet");
    // Enough for several rollovers (64 KiB segments, ~1 KiB records).
    for i in 10..400 {
        writer.append(&payload(i)).unwrap();
    }
    assert!(writer.performance_metrics().segments_finalized() >= 4);
    assert_eq!(ro.refresh().unwrap(), 390);
    assert_eq!(ro.next_id(), 400);
    assert_eq!(ro.durable_id(), Some(399));
    let seen = ids_and_payloads(&ro, 0);
    assert_eq!(seen.len(), 400);
    for (i, (id, p)) in seen.iter().enumerate() {
        assert_eq!(*id, i as u64);
        assert_eq!(p, &payload(i as u64), "record {i}");
    }
    // By id too, in sealed and active segments alike.
    assert_eq!(ro.read(17).unwrap().as_deref(), Some(&payload(17)[..]));
    assert_eq!(ro.read(399).unwrap().as_deref(), Some(&payload(399)[..]));
    // After the writer closes (which seals nothing: the active segment
    // stays active), the view still sees exactly the same.
    writer.close_blocking().unwrap();
    assert_eq!(ro.refresh().unwrap(), 0);
    assert_eq!(ro.next_id(), 400);
}

#[test]
fn a_view_follows_appends_across_segments() {
    follows_appends_across_segments(false);
}

#[test]
fn a_view_follows_appends_across_pre_allocated_segments() {
    follows_appends_across_segments(true);
}

#[test]
fn a_tail_on_a_view_waits_for_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let writer = open(dir.path(), config(true));
    writer.append(b"first").unwrap();
    let ro = view(dir.path(), config(true));
    let mut tail = ro.tail(0).unwrap();
    assert_eq!(
        &tail.next_timeout(Duration::ZERO).unwrap().unwrap().payload[..],
        b"first"
    );
    assert!(tail.next_timeout(Duration::from_millis(50)).unwrap().is_none());
    let appender = std::thread::spawn(move || {
        for i in 1..300 {
            writer.append(&payload(i)).unwrap();
            if i % 50 == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        writer
    });
    for i in 1..300 {
        let r = tail
            .next_timeout(Duration::from_secs(10))
            .unwrap()
            .unwrap_or_else(|| panic!("record {i} never came"));
        assert_eq!(r.id, i);
        assert_eq!(r.payload, payload(i));
    }
    appender.join().unwrap().close_blocking().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_tail_on_a_view_waits_for_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let writer = open(dir.path(), config(false));
    let ro = view(dir.path(), config(false));
    let mut tail = ro.tail(0).unwrap();
    let appender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        for i in 0..200 {
            writer.append(&payload(i)).unwrap();
        }
        writer
    });
    for i in 0..200 {
        let r = tokio::time::timeout(Duration::from_secs(10), tail.next())
            .await
            .expect("a record within 10 s")
            .unwrap();
        assert_eq!((r.id, r.payload.to_vec()), (i, payload(i)));
    }
    appender.join().unwrap().close_blocking().unwrap();
}

/// A record being written (here: its first half on disk) is not shown and
/// is no error; once complete it is.
#[test]
fn a_record_half_written_is_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let writer = open(dir.path(), config(false));
    writer.append(b"zero").unwrap();
    writer.close_blocking().unwrap();
    let ro = view(dir.path(), config(false));
    assert_eq!(ro.next_id(), 1);
    // Append record 1 by hand, in two steps, as a writer's write would land.
    let seg = dir.path().join(aof_core::layout::segment_file_name(0));
    let mut rec = Vec::new();
    aof_record::record::append_record(
        &mut rec,
        1,
        1,
        aof_record::RecordFlags::NONE,
        b"one, in two parts",
    )
    .unwrap();
    let len = std::fs::metadata(&seg).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    use std::os::unix::fs::FileExt;
    file.write_all_at(&rec[..20], len).unwrap();
    assert_eq!(ro.refresh().unwrap(), 0);
    file.write_all_at(&rec[20..], len + 20).unwrap();
    assert_eq!(ro.refresh().unwrap(), 1);
    assert_eq!(ro.read(1).unwrap().as_deref(), Some(&b"one, in two parts"[..]));
}

/// A segment file the writer removed after the view opened (here by
/// `truncate_before`; retention and archiving remove files the same way) is
/// reported as an outdated view, which a new view resolves.
#[test]
fn a_segment_removed_under_a_view_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let writer = open(dir.path(), config(false));
    for i in 0..300 {
        writer.append(&payload(i)).unwrap();
    }
    let ro = view(dir.path(), config(false));
    assert_eq!(ro.first_id(), 0);
    writer.truncate_before(200).unwrap();
    let first = writer.first_id();
    assert!(first > 0, "no segment was removed");
    let err = ro.read(0).unwrap_err();
    assert!(matches!(err, AofError::ViewOutdated { .. }), "{err}");
    let again = view(dir.path(), config(false));
    assert_eq!(again.first_id(), first);
    assert_eq!(again.read(first).unwrap(), Some(payload(first).into()));
    writer.close_blocking().unwrap();
}

/// A writer's truncate_after below what the view read is reported, never
/// shown as if the old records were still there.
#[test]
fn a_truncation_under_a_view_is_reported() {
    for into_sealed in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let writer = open(dir.path(), config(false));
        for i in 0..200 {
            writer.append(&payload(i)).unwrap();
        }
        let ro = view(dir.path(), config(false));
        assert_eq!(ro.next_id(), 200);
        let keep = if into_sealed { 5 } else { 198 };
        writer.truncate_after(keep).unwrap();
        writer.append(b"after the truncation").unwrap();
        let err = ro.refresh().unwrap_err();
        assert!(
            matches!(err, AofError::ViewOutdated { .. }),
            "{into_sealed}: {err}"
        );
        // A new view sees the log as it is now.
        let again = view(dir.path(), config(false));
        assert_eq!(again.next_id(), keep + 2);
        assert_eq!(
            again.read(keep + 1).unwrap().as_deref(),
            Some(&b"after the truncation"[..])
        );
        writer.close_blocking().unwrap();
    }
}
