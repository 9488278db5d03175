//! The engine archiving to a real S3-protocol server (s3s-fs, in process,
//! SigV4 checked): segments move to the bucket under the log's identity and
//! read back record by record; the server stopped while the archiver
//! uploads is an outage the log rides out (appends and local reads go on,
//! no partial object appears), and once a server is back, reopening
//! completes the archival with every record readable and nothing orphaned.

#[path = "../crates/aof-archive-s3/tests/common/mod.rs"]
mod common;

use aof_archive_s3::S3ArchiveStorage;
use aof_core::{Aof, AofOptions};
use aof_record::index::MemorySegmentIndex;
use aof_record::{AofConfig, FlushStrategy, SegmentIndex, SegmentStatus};
use common::{BUCKET, S3sServer};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Records that compress poorly (so objects are large), id-tagged.
fn payload(i: u64) -> Vec<u8> {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = i.to_le_bytes().to_vec();
    v.extend((0..2000).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    }));
    v
}

fn open(dir: &Path, index: &Arc<MemorySegmentIndex>, server: &S3sServer) -> Aof {
    let config = AofConfig::builder()
        .segment_size(8 << 20)
        .flush_strategy(FlushStrategy::Async)
        .archive_enabled(true)
        .archive_threshold(1)
        .archive_compression_level(1)
        .build()
        .unwrap();
    let mut options = AofOptions::new(config);
    options.archive = Some(Arc::new(S3ArchiveStorage::new(server.config()).unwrap()));
    options.archive_retry_backoff = Duration::from_millis(20);
    Aof::open_with(dir, options, index.clone()).unwrap()
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every file under `dir`, relative.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

fn copy_tree(from: &Path, to: &Path) {
    for f in files(from) {
        let dest = to.join(&f);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(from.join(&f), dest).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_archives_to_s3s_fs_and_rides_out_the_server_stopping_mid_upload() {
    let server = S3sServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let index = Arc::new(MemorySegmentIndex::new());
    let d = dir.path().to_owned();
    let (log, n) = {
        let log = open(&d, &index, &server);
        let log = tokio::task::spawn_blocking(move || {
            // ~4 segments of 8 MiB: archived while the log grows.
            for i in 0..16_000u64 {
                log.append(&payload(i)).unwrap();
            }
            log.flush_blocking().unwrap();
            wait_until("archival", || log.archive_pending().0 <= 1);
            log
        })
        .await
        .unwrap();
        (log, 16_000u64)
    };
    let archived: Vec<_> = index
        .get_all_segments()
        .unwrap()
        .into_iter()
        .filter(|e| e.status == SegmentStatus::ArchivedRemote)
        .collect();
    assert!(archived.len() >= 2, "{archived:?}");
    let objects = files(&server.root.path().join(BUCKET));
    for e in &archived {
        assert!(objects.contains(e.archive_key.as_ref().unwrap()), "{objects:?}");
    }
    // Read back across the archived segments, record by record.
    let log = tokio::task::spawn_blocking(move || {
        for i in (0..n).step_by(331) {
            assert_eq!(log.read(i).unwrap().unwrap(), payload(i), "id {i}");
        }
        let mut next = 0;
        for r in log.reader(0).unwrap() {
            assert_eq!(r.unwrap().id, next);
            next += 1;
        }
        assert_eq!(next, n);
        log
    })
    .await
    .unwrap();

    // The server stops while the archiver uploads the next segments.
    let before = log.performance_metrics().archive().segments_archived();
    let log = tokio::task::spawn_blocking(move || {
        for i in n..n + 4_000 {
            log.append(&payload(i)).unwrap();
        }
        log
    })
    .await
    .unwrap();
    server.stop().await;
    let log = tokio::task::spawn_blocking(move || {
        for i in n + 4_000..n + 12_000 {
            log.append(&payload(i)).unwrap();
        }
        log.flush_blocking().unwrap();
        wait_until("failed uploads", || {
            log.performance_metrics().archive().failures() > 0
        });
        assert!(!log.is_poisoned());
        // Local segments are untouched and readable.
        assert_eq!(log.read(n + 11_999).unwrap().unwrap(), payload(n + 11_999));
        log
    })
    .await
    .unwrap();
    let pending = log.archive_pending().0;
    assert!(pending >= 2, "segments wait for the archive: {pending}");
    let after = log.performance_metrics().archive().segments_archived();
    drop(log);
    // Only whole, verified uploads were committed meanwhile.
    let committed: Vec<String> = index
        .get_all_segments()
        .unwrap()
        .iter()
        .filter_map(|e| e.archive_key.clone())
        .collect();
    assert_eq!(committed.len() as u64 - archived.len() as u64, after - before);

    // A server holding the same bucket comes back: reopened, the log
    // finishes archiving; every record reads; objects = archived segments.
    let server2 = S3sServer::start().await;
    copy_tree(
        &server.root.path().join(BUCKET),
        &server2.root.path().join(BUCKET),
    );
    let index2 = index.clone();
    let total = n + 12_000;
    let log = tokio::task::spawn_blocking(move || {
        let log = open(&d, &index2, &server2);
        wait_until("archival after the outage", || log.archive_pending().0 <= 1);
        for i in (0..total).step_by(997) {
            assert_eq!(log.read(i).unwrap().unwrap(), payload(i), "id {i}");
        }
        (log, server2)
    })
    .await
    .unwrap();
    let (log, server2) = log;
    let mut keys: Vec<String> = index
        .get_all_segments()
        .unwrap()
        .iter()
        .filter_map(|e| e.archive_key.clone())
        .collect();
    keys.sort();
    let objects: Vec<String> = files(&server2.root.path().join(BUCKET))
        .into_iter()
        .filter(|f| !f.starts_with('.') && !f.contains(".tmp"))
        .collect();
    // No partial or orphan object survived the outage: the bucket holds
    // exactly the archived segments' objects.
    assert_eq!(
        objects, keys,
        "every object is an archived segment's, and no more"
    );
    tokio::task::spawn_blocking(move || log.close_blocking().unwrap())
        .await
        .unwrap();
}
