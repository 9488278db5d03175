//! [`MemLogStore`]: a Raft log held in memory, the baseline for `--only raft`.
//!
//! The pattern of openraft's in-memory example store (`examples/memstore`
//! in openraft's repository): a `BTreeMap` of entries, the vote and the
//! committed log id in memory, and every append reported flushed at once.
//! (`openraft-memstore` 0.9.25 on crates.io implements the v1
//! `RaftStorage`, which openraft hides once `storage-v2` is on, as aof-raft
//! needs; so it cannot run beside aof-raft in one build.)

use aof_raft::openraft::storage::{LogFlushed, RaftLogStorage};
use aof_raft::openraft::{
    LogId, LogState, OptionalSend, RaftLogId, RaftLogReader, RaftTypeConfig, StorageError, Vote,
};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex, MutexGuard};

/// A Raft log in memory; clones share it.
pub struct MemLogStore<C: RaftTypeConfig> {
    inner: Arc<Mutex<Inner<C>>>,
}

struct Inner<C: RaftTypeConfig> {
    log: BTreeMap<u64, C::Entry>,
    purged: Option<LogId<C::NodeId>>,
    committed: Option<LogId<C::NodeId>>,
    vote: Option<Vote<C::NodeId>>,
}

impl<C: RaftTypeConfig> Default for MemLogStore<C> {
    fn default() -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                log: BTreeMap::new(),
                purged: None,
                committed: None,
                vote: None,
            })),
        }
    }
}

impl<C: RaftTypeConfig> Clone for MemLogStore<C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<C: RaftTypeConfig> MemLogStore<C> {
    fn lock(&self) -> MutexGuard<'_, Inner<C>> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<C: RaftTypeConfig> RaftLogReader<C> for MemLogStore<C>
where
    C::Entry: Clone,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        Ok(self.lock().log.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl<C: RaftTypeConfig> RaftLogStorage<C> for MemLogStore<C>
where
    C::Entry: Clone,
{
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<C::NodeId>> {
        let inner = self.lock();
        let last = inner.log.values().next_back().map(|e| e.get_log_id().clone());
        Ok(LogState {
            last_purged_log_id: inner.purged.clone(),
            last_log_id: last.or_else(|| inner.purged.clone()),
        })
    }

    async fn get_log_reader(&mut self) -> Self {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        self.lock().vote = Some(vote.clone());
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<C::NodeId>>, StorageError<C::NodeId>> {
        Ok(self.lock().vote.clone())
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<C::NodeId>>,
    ) -> Result<(), StorageError<C::NodeId>> {
        self.lock().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<C::NodeId>>, StorageError<C::NodeId>> {
        Ok(self.lock().committed.clone())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<C>) -> Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = self.lock();
        for e in entries {
            inner.log.insert(e.get_log_id().index, e);
        }
        drop(inner);
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        self.lock().log.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let mut inner = self.lock();
        inner.log = inner.log.split_off(&(log_id.index + 1));
        inner.purged = Some(log_id);
        Ok(())
    }
}
