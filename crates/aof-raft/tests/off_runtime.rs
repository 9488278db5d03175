//! The store's operations that fsync (the metadata file, a truncation or a
//! purge of the log) run on tokio's blocking pool: a runtime worker that
//! ran them itself would stall every task scheduled on it meanwhile.

use aof_raft::openraft::storage::RaftLogStorage;
use aof_raft::openraft::{CommittedLeaderId, LogId, Vote};
use aof_raft::{AofLogStore, KvConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Polls of a task that yields in a loop, on the same single-threaded
/// runtime, during `op`: zero if `op` blocked the runtime throughout.
async fn polls_during<F: std::future::Future>(op: F) -> (u64, F::Output) {
    let polls = Arc::new(AtomicU64::new(0));
    let ticker = {
        let polls = polls.clone();
        tokio::spawn(async move {
            loop {
                polls.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        })
    };
    // Let the ticker start.
    tokio::task::yield_now().await;
    let before = polls.load(Ordering::Relaxed);
    let out = op.await;
    let during = polls.load(Ordering::Relaxed) - before;
    ticker.abort();
    (during, out)
}

#[tokio::test(flavor = "current_thread")]
async fn fsyncing_operations_leave_the_runtime_free() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = AofLogStore::<KvConfig>::open(dir.path()).unwrap();
    let (polls, result) = polls_during(store.save_vote(&Vote::new(3, 1))).await;
    result.unwrap();
    assert!(polls > 0, "save_vote blocked the runtime");
    let committed = Some(LogId::new(CommittedLeaderId::new(3, 1), 0));
    let (polls, result) = polls_during(store.save_committed(committed)).await;
    result.unwrap();
    assert!(polls > 0, "save_committed blocked the runtime");
    let (polls, result) = polls_during(store.purge(LogId::new(CommittedLeaderId::new(3, 1), 0))).await;
    result.unwrap();
    assert!(polls > 0, "purge blocked the runtime");
}
