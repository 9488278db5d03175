//! What openraft's suite does not check: the store's state after a restart
//! (reopening the same directory), purges that drop whole aof segments, and
//! damaged files.

use aof_raft::openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use aof_raft::openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, LogState, RaftLogReader, Vote};
use aof_raft::{AofLogStore, KvConfig, KvRequest, META_FILE, RaftStoreError};
use aof_record::AofConfig;
use std::path::Path;

type Store = AofLogStore<KvConfig>;

fn log_id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn entry(term: u64, index: u64) -> Entry<KvConfig> {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(KvRequest::Set {
            key: format!("k{index}"),
            value: format!("value {index} {}", "x".repeat(200)),
        }),
    }
}

fn small_segments() -> AofConfig {
    AofConfig::builder().segment_size(4096).build().unwrap()
}

fn open(dir: &Path) -> Store {
    AofLogStore::open_with_config(dir, small_segments()).unwrap()
}

async fn indexes(store: &mut Store) -> Vec<u64> {
    let entries = store.try_get_log_entries(0..u64::MAX).await.unwrap();
    for e in &entries {
        match &e.payload {
            EntryPayload::Normal(KvRequest::Set { key, .. }) => {
                assert_eq!(key, &format!("k{}", e.log_id.index))
            }
            other => panic!("unexpected payload {other:?}"),
        }
    }
    entries.iter().map(|e| e.log_id.index).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vote_committed_purge_and_truncate_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open(dir.path());
        store
            .blocking_append((0..=40).map(|i| entry(1, i)))
            .await
            .unwrap();
        store.save_vote(&Vote::new_committed(3, 2)).await.unwrap();
        store.save_committed(Some(log_id(1, 30))).await.unwrap();
        store.purge(log_id(1, 25)).await.unwrap();
        store.truncate(log_id(1, 36)).await.unwrap();
        // The purge dropped whole segments of the aof log underneath.
        assert!(store.aof().first_id() > 1, "first id {}", store.aof().first_id());
    }
    let mut store = open(dir.path());
    assert_eq!(
        store.get_log_state().await.unwrap(),
        LogState {
            last_purged_log_id: Some(log_id(1, 25)),
            last_log_id: Some(log_id(1, 35)),
        }
    );
    assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new_committed(3, 2)));
    assert_eq!(store.read_committed().await.unwrap(), Some(log_id(1, 30)));
    assert_eq!(indexes(&mut store).await, (26..=35).collect::<Vec<_>>());

    // The log goes on where it ended, in a new term.
    store
        .blocking_append((36..=38).map(|i| entry(2, i)))
        .await
        .unwrap();
    drop(store);
    let mut store = open(dir.path());
    assert_eq!(
        store.get_log_state().await.unwrap().last_log_id,
        Some(log_id(2, 38))
    );
    assert_eq!(indexes(&mut store).await, (26..=38).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_past_the_end_rebases_the_log_durably() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = open(dir.path());
        store.blocking_append((0..=4).map(|i| entry(1, i))).await.unwrap();
        // As after installing a snapshot that covers more than the log.
        store.purge(log_id(2, 100)).await.unwrap();
    }
    let mut store = open(dir.path());
    assert_eq!(
        store.get_log_state().await.unwrap(),
        LogState {
            last_purged_log_id: Some(log_id(2, 100)),
            last_log_id: Some(log_id(2, 100)),
        }
    );
    assert!(indexes(&mut store).await.is_empty());
    store
        .blocking_append((101..=110).map(|i| entry(2, i)))
        .await
        .unwrap();
    drop(store);
    let mut store = open(dir.path());
    assert_eq!(
        store.get_log_state().await.unwrap().last_log_id,
        Some(log_id(2, 110))
    );
    assert_eq!(indexes(&mut store).await, (101..=110).collect::<Vec<_>>());
    // Truncating every entry leaves the purge marker as the last log id.
    store.truncate(log_id(2, 101)).await.unwrap();
    drop(store);
    let mut store = open(dir.path());
    assert_eq!(
        store.get_log_state().await.unwrap().last_log_id,
        Some(log_id(2, 100))
    );
    assert!(indexes(&mut store).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_that_does_not_follow_on_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(dir.path());
    store.blocking_append((0..=3).map(|i| entry(1, i))).await.unwrap();
    assert!(store.blocking_append([entry(1, 5)]).await.is_err());
    assert!(store.blocking_append([entry(1, 4), entry(1, 6)]).await.is_err());
    assert_eq!(
        store.get_log_state().await.unwrap().last_log_id,
        Some(log_id(1, 3))
    );
    assert_eq!(indexes(&mut store).await, (0..=3).collect::<Vec<_>>());
}

#[test]
fn damaged_metadata_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path()));
    let path = dir.path().join(META_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[12] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let err = AofLogStore::<KvConfig>::open(dir.path()).unwrap_err();
    assert!(matches!(err, RaftStoreError::BadMeta { .. }), "{err}");
}

/// By default every committed log id is durable when `save_committed`
/// returns; with an interval, a commit alone rewrites `raft-meta` at most
/// that often, and the latest committed log id still reaches the file when
/// the store is dropped, and with the next vote change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_is_written_at_most_once_an_interval_and_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let meta = || std::fs::read(dir.path().join(META_FILE)).unwrap();
    {
        let mut store = open(dir.path());
        store.save_committed(Some(log_id(1, 1))).await.unwrap();
        let before = meta();
        store.save_committed(Some(log_id(1, 2))).await.unwrap();
        assert_ne!(meta(), before, "by default each committed log id is written");
        store.set_committed_interval(std::time::Duration::from_secs(60));
        store.save_committed(Some(log_id(1, 3))).await.unwrap();
        let after_first = meta();
        for i in 4..50 {
            store.save_committed(Some(log_id(1, i))).await.unwrap();
        }
        assert_eq!(
            meta(),
            after_first,
            "a commit within the interval rewrote raft-meta"
        );
        assert_eq!(store.read_committed().await.unwrap(), Some(log_id(1, 49)));
        store.save_vote(&Vote::new_committed(2, 1)).await.unwrap();
        assert_ne!(
            meta(),
            after_first,
            "a vote change writes the committed log id too"
        );
        store.save_committed(Some(log_id(2, 50))).await.unwrap();
    }
    let mut store = open(dir.path());
    assert_eq!(store.read_committed().await.unwrap(), Some(log_id(2, 50)));
    assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new_committed(2, 1)));
}
