//! [`AofLogStore`]: openraft's `RaftLogStorage` on an aof log.
//!
//! Raft entries are aof records, one each, encoded with bincode. Record
//! `base_record` holds Raft index `base_index` and the records after it the
//! indexes after that, so an index maps to a record id by one subtraction.
//! The mapping is re-based (durably, in the metadata file) only when the log
//! holds no entry and the next append does not follow on, which is what an
//! installed snapshot does: its purge can run past the last entry. Record 0
//! of every store is a header record, never an entry, so "truncate every
//! entry" is always a `truncate_after` of a valid id.

use crate::codec;
use crate::error::RaftStoreError;
use crate::meta::{Meta, sync_dir};
use aof_core::{Aof, AofOptions, FileSystem, LocalFileSystem};
use aof_record::{AofConfig, AofError, FlushStrategy, SegmentIndex};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AnyError, ErrorSubject, ErrorVerb, LogId, LogState, OptionalSend, RaftLogId, RaftLogReader,
    RaftTypeConfig, StorageError, StorageIOError, Vote,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::future::Future;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The name of the aof log's directory inside the store directory.
pub const LOG_DIR: &str = "log";
/// The payload of record 0, the header record of every store's log.
const HEADER_RECORD: &[u8] = b"aof-raft log v1";

/// A Raft log on an aof log, with the vote, the committed log id and the
/// purge marker in a metadata file beside it. Cheap to clone (one shared
/// store); openraft needs one handle as the storage and others as readers
/// ([`AofLogReader`]).
pub struct AofLogStore<C: RaftTypeConfig> {
    inner: Arc<Inner<C>>,
}

/// A reader of an [`AofLogStore`]'s entries, for openraft's replication tasks.
pub struct AofLogReader<C: RaftTypeConfig> {
    inner: Arc<Inner<C>>,
}

struct Inner<C: RaftTypeConfig> {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    aof: Arc<Aof>,
    state: Mutex<State<C::NodeId>>,
}

struct State<NID: openraft::NodeId> {
    meta: Meta<NID>,
    /// The log id of the last entry present, `None` when there is none.
    last: Option<LogId<NID>>,
    /// When `meta` was last written, and whether its committed log id has
    /// changed since (see [`AofLogStore::set_committed_interval`]).
    saved_at: Option<Instant>,
    committed_unsaved: bool,
    /// See [`AofLogStore::set_committed_interval`].
    committed_interval: Duration,
}

impl<C: RaftTypeConfig> Drop for Inner<C> {
    fn drop(&mut self) {
        let state = lock(&self.state);
        if state.committed_unsaved
            && let Err(e) = state.meta.store(self.fs.as_ref(), &self.dir)
        {
            log::warn!("saving the committed log id in {}: {e}", self.dir.display());
        }
    }
}

impl<C: RaftTypeConfig> Clone for AofLogStore<C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<C: RaftTypeConfig> Debug for AofLogStore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AofLogStore")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

impl<NID: openraft::NodeId> State<NID> {
    /// The Raft index one past the last entry the records hold.
    fn end_index(&self, next_record: u64) -> u64 {
        self.meta.base_index + next_record.saturating_sub(self.meta.base_record)
    }

    /// The first Raft index that may be read.
    fn first_index(&self) -> u64 {
        let after_purge = self.meta.purged.as_ref().map_or(0, |p| p.index + 1);
        self.meta.base_index.max(after_purge)
    }

    fn record_of(&self, index: u64) -> u64 {
        self.meta.base_record + (index - self.meta.base_index)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn io_err<NID: openraft::NodeId>(
    subject: ErrorSubject<NID>,
    verb: ErrorVerb,
    e: &RaftStoreError,
) -> StorageError<NID> {
    StorageIOError::new(subject, verb, AnyError::new(e)).into()
}

impl<C> AofLogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
{
    /// Opens (creating if needed) the store in `dir`: the aof log in
    /// `dir/log` (SQLite segment index) and the metadata file beside it.
    /// After a crash, the entries are those the log kept durable.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, RaftStoreError> {
        Self::open_with_config(dir, AofConfig::default())
    }

    /// [`AofLogStore::open`] with the aof configuration `config` (segment
    /// size, compression, ...). Its flush strategy is replaced by
    /// [`FlushStrategy::Async`]: the store makes every append durable
    /// itself, one fsync shared by all appends in flight.
    pub fn open_with_config(dir: impl AsRef<Path>, config: AofConfig) -> Result<Self, RaftStoreError> {
        Self::open_with_fs(LocalFileSystem::shared(), dir, config, |log_dir| {
            let path = log_dir.join(aof_core::layout::SQLITE_INDEX_FILE);
            let index = aof_index_sqlite::SqliteSegmentIndex::open(&path)?;
            Ok(Arc::new(index))
        })
    }

    /// [`AofLogStore::open_with_config`] with every file operation (the aof
    /// log's and the metadata file's) on `fs`, and the log's segment index
    /// made by `open_index`, which is given the log's directory once it
    /// exists (and is locked against other writers). Crash tests run the
    /// store on aof-core's fault-injecting file system this way.
    pub fn open_with_fs(
        fs: Arc<dyn FileSystem>,
        dir: impl AsRef<Path>,
        config: AofConfig,
        open_index: impl FnOnce(&Path) -> Result<Arc<dyn SegmentIndex>, AofError>,
    ) -> Result<Self, RaftStoreError> {
        let dir = dir.as_ref().to_owned();
        let log_dir = dir.join(LOG_DIR);
        fs.create_dir_all(&log_dir)
            .map_err(|e| RaftStoreError::io(&log_dir, e))?;
        sync_dir(fs.as_ref(), &dir)?;
        let config = config.to_builder().flush_strategy(FlushStrategy::Async).build()?;
        drop(aof_core::lock_log(fs.as_ref(), &log_dir)?);
        let index = open_index(&log_dir)?;
        let mut options = AofOptions::new(config);
        options.fs = fs.clone();
        let aof = Aof::open_with(&log_dir, options, index)?;
        if aof.next_id() == 0 {
            aof.append(HEADER_RECORD)?;
            aof.flush_blocking()?;
        }
        let next = aof.next_id();
        let mut meta = match Meta::load(fs.as_ref(), &dir)? {
            Some(meta) => meta,
            None => {
                let meta = Meta::new(next);
                meta.store(fs.as_ref(), &dir)?;
                meta
            }
        };
        if next < meta.base_record {
            // Only if the disk lost durable records: no entry is left after
            // the base, so re-base on the log's end.
            meta.base_record = next;
            meta.store(fs.as_ref(), &dir)?;
        }
        let mut state = State {
            meta,
            last: None,
            saved_at: None,
            committed_unsaved: false,
            committed_interval: Duration::ZERO,
        };
        let inner = Inner {
            fs,
            dir,
            aof: Arc::new(aof),
            state: Mutex::new(State {
                meta: state.meta.clone(),
                last: None,
                saved_at: None,
                committed_unsaved: false,
                committed_interval: Duration::ZERO,
            }),
        };
        let end = state.end_index(next);
        if end > state.first_index() {
            let entry: C::Entry = inner.read_entry(&state, end - 1)?.ok_or(RaftStoreError::Log(
                aof_record::AofError::OutOfRange {
                    id: state.record_of(end - 1),
                    first: inner.aof.first_id(),
                    next,
                },
            ))?;
            state.last = Some(entry.get_log_id().clone());
        }
        *lock(&inner.state) = state;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// The aof log underneath (metrics, verification); writing to it
    /// directly would corrupt the Raft log.
    #[must_use]
    pub fn aof(&self) -> &Aof {
        &self.inner.aof
    }

    /// The store's directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Runs `f`, which blocks on file I/O (fsyncs of the metadata file or
    /// the log), on tokio's blocking pool: a runtime worker would otherwise
    /// stall for each fsync, and with it every task scheduled on it.
    async fn off_runtime<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Self) -> Result<T, RaftStoreError> + Send + 'static,
    ) -> Result<T, RaftStoreError> {
        let mut this = self.clone();
        match tokio::task::spawn_blocking(move || f(&mut this)).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(RaftStoreError::RuntimeShutdown),
        }
    }

    fn save_meta(&self, change: impl FnOnce(&mut Meta<C::NodeId>)) -> Result<(), RaftStoreError> {
        let mut state = lock(&self.inner.state);
        let mut meta = state.meta.clone();
        change(&mut meta);
        meta.store(self.inner.fs.as_ref(), &self.inner.dir)?;
        state.meta = meta;
        state.saved_at = Some(Instant::now());
        state.committed_unsaved = false;
        Ok(())
    }

    /// How often a change of the committed log id alone rewrites
    /// `raft-meta`. By default (`Duration::ZERO`) every `save_committed` is
    /// durable before it returns: two fsyncs per commit, which bound a
    /// cluster's commit rate (see `docs/raft.md`).
    ///
    /// openraft treats the committed log id as optional (its default
    /// `save_committed` does nothing): it only spares a restarted node
    /// re-learning its commit index from the leader. With an interval, a
    /// commit writes the file at most that often; a vote or purge change,
    /// and dropping the store, write the latest committed log id with it.
    /// After a crash the node may restart with an older committed log id,
    /// and openraft applies the rest once the leader tells it again.
    pub fn set_committed_interval(&self, interval: Duration) {
        lock(&self.inner.state).committed_interval = interval;
    }

    /// Records the committed log id: durably now, or in memory until the
    /// interval of [`AofLogStore::set_committed_interval`] has passed.
    fn note_committed(&self, committed: Option<LogId<C::NodeId>>) -> Result<(), RaftStoreError> {
        {
            let mut state = lock(&self.inner.state);
            let interval = state.committed_interval;
            let due = interval.is_zero() || state.saved_at.is_none_or(|t| t.elapsed() >= interval);
            if !due {
                state.meta.committed = committed;
                state.committed_unsaved = true;
                return Ok(());
            }
        }
        self.save_meta(|m| m.committed = committed)
    }

    async fn append_entries(&mut self, entries: Vec<C::Entry>) -> Result<AppendOutcome, RaftStoreError> {
        let Some(first) = entries.first().map(|e| e.get_log_id().index) else {
            return Ok(AppendOutcome::Done);
        };
        for (i, e) in entries.iter().enumerate() {
            let index = e.get_log_id().index;
            if index != first + i as u64 {
                return Err(RaftStoreError::OutOfOrder {
                    index,
                    last: Some(first + i as u64 - 1),
                });
            }
        }
        let rebase = {
            let state = lock(&self.inner.state);
            // Entries at or below the purge marker (openraft may append
            // them, then purge again) do not count as a log to follow.
            let purged = state.meta.purged.as_ref().map(|p| p.index);
            let live_last = state.last.as_ref().filter(|l| purged.is_none_or(|p| l.index > p));
            match live_last {
                Some(last) if last.index + 1 == first => false,
                Some(last) => {
                    return Err(RaftStoreError::OutOfOrder {
                        index: first,
                        last: Some(last.index),
                    });
                }
                None => state.end_index(self.inner.aof.next_id()) != first,
            }
        };
        if rebase {
            // Every record before the new base must be durable, or a crash
            // could shorten the log below it.
            self.inner.aof.flush().await?;
            let next = self.inner.aof.next_id();
            self.off_runtime(move |s| {
                s.save_meta(|m| {
                    m.base_record = next;
                    m.base_index = first;
                })
            })
            .await?;
        }
        let payloads = entries.iter().map(codec::encode).collect::<Result<Vec<_>, _>>()?;
        let last = entries.last().expect("not empty").get_log_id().clone();
        // The records take their place in the log now, before any later
        // append or truncate of this store; only the wait for their fsync
        // is left to the caller. Appends in flight share the syncer's
        // fdatasyncs (group commit).
        let next_before = self.inner.aof.next_id();
        let appended = self.inner.aof.append_batch(&payloads);
        if self.inner.aof.next_id() >= next_before + payloads.len() as u64 {
            // Written, even if the call then failed: the log's end moved.
            lock(&self.inner.state).last = Some(last);
        }
        let ids = appended?;
        let durable = self.inner.aof.wait_durable(ids.end - 1);
        Ok(AppendOutcome::Pending(Box::pin(durable)))
    }

    async fn truncate_since(&mut self, index: u64) -> Result<(), RaftStoreError> {
        // Appends still waiting for their fsync finish first: truncating
        // under them would fail their callbacks.
        self.inner.aof.flush().await?;
        self.off_runtime(move |s| s.truncate_flushed(index)).await
    }

    /// [`Self::truncate_since`] once the appends in flight are durable.
    fn truncate_flushed(&mut self, index: u64) -> Result<(), RaftStoreError> {
        let mut state = lock(&self.inner.state);
        let end = state.end_index(self.inner.aof.next_id());
        if index >= end {
            return Ok(());
        }
        let keep_below = index.max(state.meta.base_index);
        let record = state.record_of(keep_below);
        self.inner.aof.truncate_after(record - 1)?;
        state.last = if keep_below > state.first_index() {
            let entry: Option<C::Entry> = self.inner.read_entry(&state, keep_below - 1)?;
            entry.map(|e| e.get_log_id().clone())
        } else {
            None
        };
        Ok(())
    }

    fn purge_upto(&mut self, log_id: LogId<C::NodeId>) -> Result<(), RaftStoreError> {
        {
            let mut state = lock(&self.inner.state);
            if state.last.as_ref().is_some_and(|l| l.index <= log_id.index) {
                state.last = None;
            }
            if state
                .meta
                .purged
                .as_ref()
                .is_some_and(|p| p.index >= log_id.index)
            {
                return Ok(());
            }
        }
        self.save_meta(|m| m.purged = Some(log_id.clone()))?;
        let keep_from = {
            let mut state = lock(&self.inner.state);
            if state.last.as_ref().is_some_and(|l| l.index <= log_id.index) {
                state.last = None;
            }
            let first = state.first_index();
            state.record_of(first).min(self.inner.aof.next_id())
        };
        self.inner.aof.truncate_before(keep_from)?;
        Ok(())
    }
}

/// What an append left to do.
enum AppendOutcome {
    /// Nothing to append.
    Done,
    /// The entries are written; this resolves once they are durable.
    Pending(std::pin::Pin<Box<dyn Future<Output = aof_record::AofResult<()>> + Send>>),
}

impl<C> Inner<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
{
    /// The entry at `index` (which must be at or above the base), `None` if
    /// the log no longer holds it.
    fn read_entry(&self, state: &State<C::NodeId>, index: u64) -> Result<Option<C::Entry>, RaftStoreError> {
        let record = state.record_of(index);
        let Some(bytes) = self.aof.read(record)? else {
            return Ok(None);
        };
        let entry: C::Entry = codec::decode(&bytes).map_err(|source| RaftStoreError::BadEntry {
            record,
            index,
            source,
        })?;
        if entry.get_log_id().index != index {
            return Err(RaftStoreError::BadEntry {
                record,
                index,
                source: bincode::error::DecodeError::OtherString(format!(
                    "the entry says index {}",
                    entry.get_log_id().index
                )),
            });
        }
        Ok(Some(entry))
    }

    fn entries<RB: RangeBounds<u64>>(&self, range: RB) -> Result<Vec<C::Entry>, RaftStoreError> {
        let state = lock(&self.state);
        let (first, end) = (state.first_index(), state.end_index(self.aof.next_id()));
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        }
        .max(first);
        let stop = match range.end_bound() {
            Bound::Included(&s) => s.saturating_add(1),
            Bound::Excluded(&s) => s,
            Bound::Unbounded => u64::MAX,
        }
        .min(end);
        let mut out = Vec::with_capacity(stop.saturating_sub(start).min(4096) as usize);
        for index in start..stop {
            match self.read_entry(&state, index)? {
                Some(e) => out.push(e),
                None => break,
            }
        }
        Ok(out)
    }
}

impl<C> RaftLogReader<C> for AofLogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        self.inner
            .entries(range)
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, &e))
    }
}

impl<C> RaftLogReader<C> for AofLogReader<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        self.inner
            .entries(range)
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, &e))
    }
}

impl<C> RaftLogStorage<C> for AofLogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
{
    type LogReader = AofLogReader<C>;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<C::NodeId>> {
        let state = lock(&self.inner.state);
        let purged = state.meta.purged.clone();
        Ok(LogState {
            last_purged_log_id: purged.clone(),
            last_log_id: state.last.clone().or(purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        AofLogReader {
            inner: self.inner.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let vote = vote.clone();
        self.off_runtime(move |s| s.save_meta(|m| m.vote = Some(vote)))
            .await
            .map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Write, &e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<C::NodeId>>, StorageError<C::NodeId>> {
        Ok(lock(&self.inner.state).meta.vote.clone())
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<C::NodeId>>,
    ) -> Result<(), StorageError<C::NodeId>> {
        self.off_runtime(move |s| s.note_committed(committed))
            .await
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, &e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<C::NodeId>>, StorageError<C::NodeId>> {
        Ok(lock(&self.inner.state).meta.committed.clone())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<C>) -> Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<C::Entry> = entries.into_iter().collect();
        match self.append_entries(entries).await {
            Ok(AppendOutcome::Done) => callback.log_io_completed(Ok(())),
            Ok(AppendOutcome::Pending(durable)) => {
                tokio::spawn(async move {
                    callback.log_io_completed(durable.await.map_err(std::io::Error::other));
                });
            }
            Err(e) => return Err(io_err(ErrorSubject::Logs, ErrorVerb::Write, &e)),
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        self.truncate_since(log_id.index)
            .await
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, &e))
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        self.off_runtime(move |s| s.purge_upto(log_id))
            .await
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, &e))
    }
}
