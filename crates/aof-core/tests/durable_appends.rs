//! `Aof::append_durable`: tasks wait for durability without a thread each,
//! and one fsync serves many of them.

use aof_core::testing::{FaultyFileSystem, FileIndex};
use aof_core::{Aof, AofOptions, FileSystem, LocalFileSystem};
use aof_record::{AofConfig, AofError, FlushStrategy};
use std::sync::Arc;

fn config(strategy: FlushStrategy) -> AofConfig {
    AofConfig::builder()
        .flush_strategy(strategy)
        .segment_size(256 * 1024)
        .pre_allocate_enabled(false)
        .build()
        .unwrap()
}

fn open_on(fs: Arc<dyn FileSystem>, dir: &std::path::Path, config: AofConfig) -> Aof {
    let index = FileIndex::open(fs.clone(), dir.join("index.json")).unwrap();
    let mut options = AofOptions::new(config);
    options.fs = fs;
    Aof::open_with(dir, options, Arc::new(index)).unwrap()
}

/// 64 tasks on two worker threads append 2,000 records durably: every id
/// is returned once, each is durable when its append returns, fewer
/// fsyncs than records ran (one fsync covered several tasks), and after a
/// power loss every one of them is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_share_fsyncs_and_every_acknowledged_record_survives_power_loss() {
    for strategy in [
        FlushStrategy::Sync,
        FlushStrategy::Async,
        FlushStrategy::Batched(1000),
    ] {
        let fs = FaultyFileSystem::new();
        let dyn_fs: Arc<dyn FileSystem> = Arc::new(fs.clone());
        let dir = std::path::Path::new("/log");
        let log = Arc::new(open_on(dyn_fs, dir, config(strategy)));
        let mut tasks = Vec::new();
        for t in 0..64u64 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..32u64 {
                    let payload = format!("task {t} record {i}");
                    let id = log.append_durable(payload.as_bytes()).await.unwrap();
                    assert!(
                        log.durable_id().is_some_and(|d| d >= id),
                        "{id} returned before durable"
                    );
                    ids.push((id, payload));
                }
                ids
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all.sort();
        assert_eq!(all.len(), 2048);
        assert!(
            all.iter().enumerate().all(|(i, (id, _))| *id == i as u64),
            "ids 0..2048 once each"
        );
        let fsyncs = log.flush_metrics().total_flushes();
        assert!(
            fsyncs < 2048,
            "{strategy:?}: {fsyncs} fsyncs for 2,048 records: no grouping"
        );
        // A power loss now: every acknowledged record is there.
        let image = fs.crash_image(aof_core::testing::CrashMode::LoseUnsynced);
        let reopened = open_on(Arc::new(image), dir, config(strategy));
        for (id, payload) in &all {
            assert_eq!(
                reopened.read(*id).unwrap().as_deref(),
                Some(payload.as_bytes()),
                "{strategy:?}: record {id}"
            );
        }
    }
}

/// A failed fsync is every waiting task's error (the log is poisoned), not a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_sync_fails_the_waiting_tasks() {
    let fs = FaultyFileSystem::new();
    let dir = std::path::Path::new("/log");
    let log = Arc::new(open_on(Arc::new(fs.clone()), dir, config(FlushStrategy::Async)));
    log.append_durable(b"before").await.unwrap();
    fs.fail_sync_at(0);
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move { log.append_durable(&[i]).await }));
    }
    for t in tasks {
        match tokio::time::timeout(std::time::Duration::from_secs(10), t).await {
            Ok(Ok(Err(AofError::Poisoned | AofError::Io { .. }))) => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(log.is_poisoned());
}

/// On the local file system too (real fdatasync), with a plain thread
/// appending beside the tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_appends_beside_plain_appends_on_real_files() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open_on(
        LocalFileSystem::shared(),
        dir.path(),
        config(FlushStrategy::Sync),
    ));
    let plain = {
        let log = log.clone();
        std::thread::spawn(move || {
            for _ in 0..200 {
                log.append(b"plain").unwrap();
            }
            200
        })
    };
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                log.append_durable(b"task").await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(plain.join().unwrap(), 200);
    assert_eq!(log.durable_id(), Some(999));
}

/// `Aof::wait_durable`: append now, wait elsewhere. Waits for ids appended
/// one after another, handed to spawned tasks, resolve only once the
/// record is durable, and a power loss after they resolve keeps each one;
/// a wait for an id never appended fails at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_handed_to_other_tasks_resolve_once_durable() {
    let fs = FaultyFileSystem::new();
    let dyn_fs: Arc<dyn FileSystem> = Arc::new(fs.clone());
    let dir = std::path::Path::new("/log");
    let log = Arc::new(open_on(dyn_fs, dir, config(FlushStrategy::Async)));
    let mut waits = Vec::new();
    for i in 0..200u64 {
        let id = log.append(format!("record {i}").as_bytes()).unwrap();
        let wait = log.wait_durable(id);
        let log = log.clone();
        waits.push(tokio::spawn(async move {
            wait.await.unwrap();
            assert!(
                log.durable_id().is_some_and(|d| d >= id),
                "{id} resolved before durable"
            );
            id
        }));
    }
    let mut resolved = Vec::new();
    for w in waits {
        resolved.push(w.await.unwrap());
    }
    assert_eq!(resolved, (0..200).collect::<Vec<_>>());
    let fsyncs = log.flush_metrics().successful_flushes();
    assert!(fsyncs < 200, "{fsyncs} fsyncs for 200 waits: none was shared");

    let beyond = log.next_id() + 5;
    match log.wait_durable(beyond).await {
        Err(AofError::OutOfRange { id, .. }) => assert_eq!(id, beyond),
        other => panic!("a wait for an id never appended gave {other:?}"),
    }

    for seed in 0..4 {
        let image = fs.crash_image(aof_core::testing::CrashMode::Writeback { seed });
        let dyn_image: Arc<dyn FileSystem> = Arc::new(image);
        let reopened = open_on(dyn_image, dir, config(FlushStrategy::Async));
        assert!(
            reopened.next_id() >= 200,
            "a power loss lost records whose wait had resolved"
        );
        for i in 0..200u64 {
            assert_eq!(
                reopened.read(i).unwrap().unwrap().as_ref(),
                format!("record {i}").as_bytes()
            );
        }
    }
}
