//! The log: [`Aof`], its public operations, opening and closing.
//!
//! # Invariants
//!
//! * Ids are contiguous: the log holds `first_id..next_id` with no gaps, and a
//!   segment holds a contiguous sub-range. Timestamps never decrease.
//! * An id is reported durable (by [`Aof::durable_id`], or by `append`
//!   returning under [`FlushStrategy::Sync`]) only after its bytes were
//!   fdatasync'd *and* the directory entry of its segment file was synced
//!   (see [`crate::writer`] for how segment files are created).
//! * Finalization order, poisoning and lock order: [`crate::shared`].
//!
//! The work itself is done below this file: appends and rollover in
//! `shared` and `writer`, group commit in `commit`, reads in `shared` and
//! `reader`, removal in `truncate`, checks in `verify`, background work in
//! `background`, opening in `recovery`.

use crate::archive_cache::Remote;
use crate::background;
use crate::cache::{SegmentCache, SegmentSlot};
use crate::codec::{Codec, Prepared};
use crate::commit::{Durable, GroupCommit};
use crate::fs::FileSystem;
use crate::layout::{ARCHIVE_CACHE_DIR, LOCK_FILE};
use crate::locks::lock;
use crate::metrics::{Counters, EngineMetrics};
use crate::options::AofOptions;
use crate::reader::{Reader, Tail};
use crate::recovery::{Repair, recover};
use crate::shared::{Shared, Wake};
use crate::snapshot_view::SnapshotView;
use crate::verify::{VerifyReport, verify};
use aof_flush::{FlushController, FlushControllerMetrics, FlushKind};
use aof_record::record::encoded_len;
use aof_record::{AofConfig, AofError, AofResult, FlushStrategy, LogId, SegmentIndex};
use bytes::Bytes;
use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

/// A segmented, append-only log.
///
/// `Send + Sync`: share it (in an `Arc`) between threads that append and
/// read concurrently.
///
/// * Ids are contiguous: the log holds `first_id()..next_id()` with no gaps.
///   Timestamps never decrease.
/// * An id is reported durable (by [`Aof::durable_id`], or by `append`
///   returning under [`FlushStrategy::Sync`]) only after its bytes were
///   fdatasync'd *and* the directory entry of its segment file was synced.
/// * After a failed write or fsync the log is poisoned: every later write
///   fails with [`AofError::Poisoned`] until it is reopened.
pub struct Aof {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl fmt::Debug for Aof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aof")
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

/// Takes the writer lock of the existing log directory `dir`, as an open
/// for writing does: for tools that change a closed log's files (an index
/// migration, a repair) and must keep writers out meanwhile. Fails with
/// [`AofError::Locked`] while a writer has the log open. The lock is
/// released when the guard drops.
pub fn lock_log(fs: &dyn FileSystem, dir: &Path) -> AofResult<Box<dyn crate::fs::LockGuard>> {
    let lock_path = dir.join(LOCK_FILE);
    fs.lock_exclusive(&lock_path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::WouldBlock {
            AofError::Locked { path: dir.to_owned() }
        } else {
            AofError::io(&lock_path, e)
        }
    })
}

impl Aof {
    /// Opens (creating if needed) the log in `dir` with `config`, on the local
    /// file system, with `index` as its segment index.
    pub fn open(dir: impl AsRef<Path>, config: AofConfig, index: Arc<dyn SegmentIndex>) -> AofResult<Self> {
        Self::open_with(dir, AofOptions::new(config), index)
    }

    /// Opens (creating if needed) the log in `dir`, recovering from a crash if
    /// one happened: see [`crate::recovery`] for what recovery does.
    pub fn open_with(
        dir: impl AsRef<Path>,
        options: AofOptions,
        index: Arc<dyn SegmentIndex>,
    ) -> AofResult<Self> {
        Self::open_inner(dir.as_ref(), options, index, false)
    }

    /// Opens the log in `dir` read-only: takes no lock (so it works beside
    /// a writer in another process), never writes a byte, and sees the log
    /// as it is on disk, validated as recovery would. A torn tail is not
    /// cut, only left unread, and [`Aof::repairs`] lists what a writable
    /// open would change. `index` must be the caller's private copy of the
    /// log's index (recovery may complete it in memory); every write fails
    /// with [`AofError::ReadOnly`]. What it sees is fixed at open until
    /// [`Aof::refresh`]; a [`Tail`] refreshes by itself, polling.
    pub fn open_read_only(
        dir: impl AsRef<Path>,
        options: AofOptions,
        index: Arc<dyn SegmentIndex>,
    ) -> AofResult<Self> {
        Self::open_inner(dir.as_ref(), options, index, true)
    }

    fn open_inner(
        dir: &Path,
        options: AofOptions,
        index: Arc<dyn SegmentIndex>,
        read_only: bool,
    ) -> AofResult<Self> {
        let dir = dir.to_owned();
        options.config.validate()?;
        if options.config.archive_enabled() && options.archive.is_none() {
            return Err(AofError::ArchiveNotConfigured);
        }
        let codec = Codec::new(&options.config, options.keys.clone())?;
        let fs = options.fs.clone();
        if read_only {
            if !fs
                .exists(&dir.join(crate::layout::MANIFEST_FILE))
                .unwrap_or(false)
                && fs.list(&dir).map_err(|e| AofError::io(&dir, e))?.is_empty()
            {
                return Err(AofError::NotALog {
                    path: dir,
                    reason: "it holds no log files",
                });
            }
            let mut recovered = recover(&dir, &options, index.as_ref(), true)?;
            // Reads of the active segment go through the file, never a map:
            // the writer (another process) may shrink it (truncate_after),
            // and a map read past a file's end is a SIGBUS.
            recovered.writer.seg.map = None;
            return Self::assemble(dir, options, index, recovered, Box::new(NoLock), true, codec);
        }
        fs.create_dir_all(&dir).map_err(|e| AofError::io(&dir, e))?;
        sync_ancestors(fs.as_ref(), &dir)?;
        let lock = lock_log(fs.as_ref(), &dir)?;
        let recovered = recover(&dir, &options, index.as_ref(), false)?;
        let mut aof = Self::assemble(dir, options, index, recovered, lock, false, codec)?;
        aof.threads = background::start(&aof.shared)?;
        Ok(aof)
    }

    fn assemble(
        dir: std::path::PathBuf,
        options: AofOptions,
        index: Arc<dyn SegmentIndex>,
        recovered: crate::recovery::Recovered,
        lock: Box<dyn crate::fs::LockGuard>,
        read_only: bool,
        codec: Codec,
    ) -> AofResult<Self> {
        let fs = options.fs.clone();
        let flush = FlushController::with_clock(options.config.flush_strategy(), options.clock.clone());
        let next_id = recovered.writer.next_id;
        let counters = Counters::default();
        let remote = match &options.archive {
            Some(storage) => Some(Arc::new(Remote::new(
                storage.clone(),
                fs.clone(),
                (!read_only).then(|| dir.join(ARCHIVE_CACHE_DIR)),
                options.archive_cache_bytes,
                counters.archive.clone(),
            )?)),
            None => None,
        };
        let mut slots = recovered.finalized;
        for e in &recovered.archived {
            slots.push(SegmentSlot::for_archived(&dir, e)?);
        }
        let cache = SegmentCache::new(slots, options.config.segment_cache_size());
        let first_id = cache.first_base().unwrap_or(recovered.writer.seg.base_id);
        let sealed_next = recovered.writer.seg.base_id;
        let shared = Arc::new(Shared {
            dir,
            config: options.config.clone(),
            fs,
            index,
            time: options.time.clone(),
            flush,
            writer: Mutex::new(recovered.writer),
            commit: GroupCommit::default(),
            durable: Durable::new(next_id),
            appended_next: AtomicU64::new(next_id),
            first_id: AtomicU64::new(first_id),
            poisoned: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            read_only,
            repairs: recovered.repairs,
            manifest: recovered.manifest,
            codec,
            checkpoint_interval: options.checkpoint_interval,
            cache,
            readers: AtomicUsize::new(0),
            max_readers: options.max_readers,
            counters,
            wake: Mutex::new(Wake::default()),
            wake_cv: Condvar::new(),
            flush_asked: AtomicBool::new(false),
            sync_cv: Condvar::new(),
            archiving: options.config.archive_enabled() && remote.is_some() && !read_only,
            remote,
            archive_lock: Mutex::new(()),
            archived_gen: Mutex::new(0),
            archived_cv: Condvar::new(),
            backpressure_wait: options.backpressure_wait,
            archive_backoff: options
                .archive_retry_backoff
                .max(std::time::Duration::from_millis(1)),
            removing: Mutex::new(()),
            sealing: Mutex::default(),
            sealing_cv: Condvar::new(),
            sealed_next: AtomicU64::new(sealed_next),
            _lock: lock,
        });
        Counters::add(&shared.counters.torn_tails_cut, recovered.torn_tails_cut);
        Counters::add(&shared.counters.segments_created, recovered.segments_created);
        Ok(Self {
            shared,
            threads: Vec::new(),
        })
    }

    /// What recovery changed when the log was opened; opened read-only,
    /// what it would change.
    #[must_use]
    pub fn repairs(&self) -> &[Repair] {
        &self.shared.repairs
    }

    /// Brings a read-only view up to date with the log's files, which
    /// another process may be appending to: new records, segments sealed
    /// and created since. Returns how many new records it sees (0 on a
    /// writable log, which always sees everything). Fails with
    /// [`AofError::ViewOutdated`] when the writer removed or rewrote what the
    /// view had read (`truncate_after`): open a new view. A read of a segment
    /// whose file the writer removed since (retention, `truncate_before`,
    /// archiving) fails the same way.
    pub fn refresh(&self) -> AofResult<u64> {
        self.shared.refresh()
    }

    /// Whether the log was opened read-only.
    #[must_use]
    pub fn is_read_only(&self) -> bool {
        self.shared.read_only
    }

    /// Appends one record and returns its id.
    ///
    /// Under [`FlushStrategy::Sync`] it returns once the record is durable;
    /// concurrent appenders share one fsync. Under the other strategies the
    /// record is durable once [`Aof::durable_id`] reaches its id.
    ///
    /// With archival enabled, while more finalized segments wait for the
    /// archiver than `archive_backpressure_segments` / `_bytes` allow, it
    /// waits up to [`AofOptions::backpressure_wait`] and then fails with
    /// [`AofError::Backpressure`] (nothing appended; retry later).
    pub fn append(&self, payload: &[u8]) -> AofResult<u64> {
        self.append_batch(&[payload]).map(|r| r.start)
    }

    /// [`Aof::append`] that never waits for the archiver: under
    /// backpressure it fails at once with [`AofError::WouldBlock`].
    pub fn try_append(&self, payload: &[u8]) -> AofResult<u64> {
        self.append_records(&[payload], true, false).map(|r| r.start)
    }

    /// Appends many records in one step and returns their ids, in order.
    /// Backpressure as for [`Aof::append`].
    pub fn append_batch<P: AsRef<[u8]>>(&self, payloads: &[P]) -> AofResult<Range<u64>> {
        self.append_records(payloads, true, true)
    }

    /// Appends one record and returns its id once it is durable, whatever
    /// the flush strategy, without blocking a thread: thousands of tasks can
    /// wait at once, and one fdatasync (run by the log's syncer thread)
    /// covers every record appended before it starts.
    ///
    /// Fails with [`AofError::Poisoned`] if the sync fails, [`AofError::Closed`]
    /// if the log closes first, and [`AofError::OutOfRange`] if
    /// `truncate_after` removes the record before it is durable. It never
    /// blocks the thread, so under archive backpressure it fails at once
    /// with [`AofError::WouldBlock`] (as [`Aof::try_append`]).
    pub async fn append_durable(&self, payload: &[u8]) -> AofResult<u64> {
        self.append_batch_durable(&[payload]).await.map(|r| r.start)
    }

    /// [`Aof::append_durable`] for many records in one step.
    pub async fn append_batch_durable<P: AsRef<[u8]>>(&self, payloads: &[P]) -> AofResult<Range<u64>> {
        let range = self.append_records(payloads, false, false)?;
        if let Some(last) = range.end.checked_sub(1).filter(|_| !range.is_empty()) {
            wait_durable(self.shared.clone(), last).await?;
        }
        Ok(range)
    }

    /// A future that resolves once record `id` is durable, asking the log's
    /// syncer thread for an fdatasync if none is under way. It borrows
    /// nothing, so it can be moved to another task: append with
    /// [`Aof::append_batch`] (which fixes the records' order at once) and
    /// hand the wait to whoever must learn of durability, as a Raft log store
    /// does with its flush callback. One fdatasync serves every waiter whose
    /// record was appended before it starts.
    ///
    /// Fails as [`Aof::append_durable`] does: [`AofError::Poisoned`],
    /// [`AofError::Closed`], or [`AofError::OutOfRange`] if the record was
    /// never appended or `truncate_after` removed it first.
    pub fn wait_durable(&self, id: u64) -> impl Future<Output = AofResult<()>> + Send + 'static {
        wait_durable(self.shared.clone(), id)
    }

    /// Appends `payloads`; with `sync`, makes them durable as the flush
    /// strategy says (Sync: before returning). Under archive backpressure it
    /// waits up to the configured time when `wait`, else fails at once.
    fn append_records<P: AsRef<[u8]>>(
        &self,
        payloads: &[P],
        sync: bool,
        wait: bool,
    ) -> AofResult<Range<u64>> {
        let shared = &self.shared;
        shared.check_writable()?;
        shared.admit(wait)?;
        let max = shared.config.max_record_size();
        for p in payloads {
            let len = p.as_ref().len();
            if len > max as usize {
                return Err(AofError::RecordTooLarge {
                    size: len as u64,
                    max,
                });
            }
        }
        if payloads.is_empty() {
            let next = lock(&shared.writer).next_id;
            return Ok(next..next);
        }
        // Compression runs before the writer lock is taken; a plain log
        // stores payloads as they are, without a step or an allocation.
        let prepared: Option<Vec<Prepared<'_>>> = (!shared.codec.is_plain()).then(|| {
            payloads
                .iter()
                .map(|p| shared.codec.prepare(p.as_ref()))
                .collect()
        });
        let stored = |i: usize| match &prepared {
            Some(v) => v[i].view(),
            None => Prepared::plain(payloads[i].as_ref()),
        };
        let bytes: u64 = (0..payloads.len())
            .map(|i| encoded_len(stored(i).stored_len) as u64)
            .sum();
        let range = {
            let mut w = lock(&shared.writer);
            shared.check_writable()?;
            let start = w.next_id;
            for i in 0..payloads.len() {
                shared.append_locked(&mut w, &stored(i))?;
            }
            let range = start..w.next_id;
            shared.appended_next.fetch_max(range.end, Ordering::AcqRel);
            range
        };
        Counters::add(&shared.counters.appends, payloads.len() as u64);
        Counters::add(
            &shared.counters.bytes_appended,
            payloads.iter().map(|p| p.as_ref().len() as u64).sum(),
        );
        let decision = shared.flush.record_append(payloads.len() as u64, bytes);
        match shared.config.flush_strategy() {
            FlushStrategy::Sync if !sync => {}
            FlushStrategy::Sync => shared.sync_through(range.end - 1, FlushKind::Forced, None)?,
            FlushStrategy::Async => {}
            _ => {
                if decision.is_now() {
                    shared.request_flush();
                }
            }
        }
        Ok(range)
    }

    /// Makes every record appended so far durable; returns the highest durable id.
    ///
    /// Blocks the calling thread: from async code use [`Aof::flush`].
    pub fn flush_blocking(&self) -> AofResult<Option<u64>> {
        self.shared.flush_all(FlushKind::Forced, None)
    }

    /// Makes every record appended so far durable; returns the highest durable id.
    ///
    /// Call it inside a tokio runtime. On a multi-threaded runtime the fsync
    /// runs on the calling worker (`block_in_place`, which moves the
    /// worker's other tasks elsewhere), so no hand-off to another thread and
    /// back adds to the wait; on a current-thread runtime it runs on the
    /// blocking pool. The flush latency recorded in [`Aof::flush_metrics`]
    /// starts when this is called, so it is what the caller waits.
    pub async fn flush(&self) -> AofResult<Option<u64>> {
        let since = self.shared.flush.clock().now();
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi_thread {
            return tokio::task::block_in_place(|| self.shared.flush_all(FlushKind::Forced, Some(since)));
        }
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || shared.flush_all(FlushKind::Forced, Some(since)))
            .await
            .map_err(|_| AofError::Closed)?
    }

    /// The highest id guaranteed durable, `None` before the first.
    #[must_use]
    pub fn durable_id(&self) -> Option<u64> {
        self.shared.durable.next().checked_sub(1)
    }

    /// The id the next append will get.
    #[must_use]
    pub fn next_id(&self) -> u64 {
        lock(&self.shared.writer).next_id
    }

    /// The lowest id still kept (raised by retention and `truncate_before`).
    #[must_use]
    pub fn first_id(&self) -> u64 {
        self.shared.first_id.load(Ordering::Acquire)
    }

    /// The payload of record `id`, checksum-verified; `None` for an id that
    /// was never written (or is no longer kept). Zero-copy for finalized
    /// segments (a slice of their memory map).
    pub fn read(&self, id: u64) -> AofResult<Option<Bytes>> {
        Counters::add(&self.shared.counters.reads, 1);
        self.shared.read(id)
    }

    /// A reader of the records from `from_id` (or the first kept id, if
    /// later) to the durable end. Fails with [`AofError::ReaderLimitExceeded`]
    /// beyond [`AofOptions::max_readers`].
    pub fn reader(&self, from_id: u64) -> AofResult<Reader> {
        Reader::new(self.shared.clone(), from_id)
    }

    /// A tail from `from_id`: a reader that, at the end, waits for new
    /// durable records.
    pub fn tail(&self, from_id: u64) -> AofResult<Tail> {
        Ok(Reader::new(self.shared.clone(), from_id)?.into_tail())
    }

    /// Verifies every segment: each finalized one fully (data checksum, every
    /// record, the offset table, and its index entry's count, last id, size
    /// and checksum), then the active one's records. Returns the first
    /// problem as a typed error naming segment and offset. `progress` gets
    /// (segments done, segments total).
    pub fn verify(&self, progress: &mut dyn FnMut(u64, u64)) -> AofResult<VerifyReport> {
        verify(&self.shared, progress)
    }

    /// Runs retention once now: removes finalized segments whose newest record
    /// is older than `ttl_seconds` (never the active segment; files of
    /// segments a reader is positioned in are deleted when it leaves).
    /// Returns how many segments were removed. The background task calls
    /// this periodically when a TTL is configured. Reads of removed ids
    /// return `None`.
    pub fn run_retention(&self) -> AofResult<usize> {
        match self.shared.config.ttl_seconds() {
            Some(ttl) => self.shared.expire(ttl),
            None => Ok(0),
        }
    }

    /// Drops every whole segment whose records are all below `id` (log
    /// compaction, a Raft purge). The active segment is never dropped, so
    /// records below `id` may remain. Returns how many segments went.
    pub fn truncate_before(&self, id: u64) -> AofResult<usize> {
        self.shared.check_writable()?;
        self.shared.remove_prefix(&|slot| slot.last_id < id)
    }

    /// Archives every finalized segment now, oldest first, whatever
    /// `archive_threshold` says (`aof archive`). `progress` gets (done,
    /// total) after each. Returns how many were archived. Needs an archive
    /// (else [`AofError::ArchiveNotConfigured`]); works whether or not the
    /// configuration enables background archival.
    pub fn archive_now(&self, progress: &mut dyn FnMut(u64, u64)) -> AofResult<usize> {
        self.shared.check_writable()?;
        let count = self.shared.cache.local().0 as usize;
        crate::archiver::archive_oldest(&self.shared, count, progress)
    }

    /// Deletes this log's archive objects that no segment uses (uploads
    /// whose segment was removed, deletes that did not happen) and returns
    /// how many went. The archiver does this by itself when it starts;
    /// other logs' objects are never touched.
    pub fn sweep_archive(&self) -> AofResult<u64> {
        self.shared.check_writable()?;
        crate::archiver::sweep(&self.shared)
    }

    /// Finalized segments waiting for archival (local), and their bytes.
    #[must_use]
    pub fn archive_pending(&self) -> (u64, u64) {
        self.shared.cache.local()
    }

    /// Drops every record after `id`, so the next append gets `id + 1`
    /// (Raft conflict resolution). Durable before it returns. `id` must be
    /// at least `first_id() - 1`.
    pub fn truncate_after(&self, id: u64) -> AofResult<()> {
        self.shared.truncate_after(id)
    }

    /// A consistent view of the log for a snapshot: every durable record
    /// now, the segment files holding them (finalized ones pinned against
    /// retention until the view drops), the active segment up to its
    /// durable end. Works on a read-only handle too. See [`SnapshotView`].
    pub fn snapshot_view(&self) -> AofResult<SnapshotView> {
        SnapshotView::take(&self.shared)
    }

    /// The log's identity, made when it was created and kept in its manifest.
    #[must_use]
    pub fn log_id(&self) -> LogId {
        self.shared.manifest.log_id()
    }

    /// The log's directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The configuration it was opened with.
    #[must_use]
    pub fn config(&self) -> &AofConfig {
        &self.shared.config
    }

    /// The segment index.
    #[must_use]
    pub fn index(&self) -> &Arc<dyn SegmentIndex> {
        &self.shared.index
    }

    /// Engine counters since open: appends, reads, cache, segments.
    #[must_use]
    pub fn performance_metrics(&self) -> &EngineMetrics {
        &self.shared.counters
    }

    /// Flush counters, timings, HDR histograms and rates since open; any
    /// latency percentile, success rate and throughput, or a
    /// [`snapshot`](FlushControllerMetrics::snapshot) for export.
    #[must_use]
    pub fn flush_metrics(&self) -> &FlushControllerMetrics {
        self.shared.flush.metrics()
    }

    /// Whether an earlier failed write or fsync poisoned the log.
    #[must_use]
    pub fn is_poisoned(&self) -> bool {
        self.shared.is_poisoned()
    }

    /// Flushes, records the active segment's tail in the index, syncs the
    /// index, and closes the log. Dropping the log does the same, ignoring errors.
    pub fn close_blocking(mut self) -> AofResult<()> {
        self.shutdown()
    }

    /// [`Aof::close_blocking`] on tokio's blocking pool.
    pub async fn close(self) -> AofResult<()> {
        tokio::task::spawn_blocking(move || self.close_blocking())
            .await
            .map_err(|_| AofError::Closed)?
    }

    fn shutdown(&mut self) -> AofResult<()> {
        let shared = &self.shared;
        if shared.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        background::stop(shared, &mut self.threads);
        if shared.read_only {
            return Ok(());
        }
        let result = (|| {
            shared.finish_sealing()?;
            if shared.is_poisoned() {
                return Err(AofError::Poisoned);
            }
            shared.flush_all(FlushKind::Forced, None)?;
            let w = lock(&shared.writer);
            shared
                .index
                .update_segment_tail(w.seg.base_id, w.seg.last_id(w.next_id), w.seg.written)?;
            shared.index.sync()?;
            drop(w);
            shared.manifest.set_recovery_point(shared.durable.next())?;
            Ok(())
        })();
        // A prepared file nobody will use: remove it (recovery would too).
        if let Some(p) = lock(&shared.wake).prepared.take() {
            let _ = shared.fs.remove_file(&p);
        }
        result
    }
}

/// Waits, without blocking the thread, until record `id` is durable.
async fn wait_durable(shared: Arc<Shared>, id: u64) -> AofResult<()> {
    loop {
        let notified = shared.durable.notify().notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if shared.durable.next() > id {
            return Ok(());
        }
        if shared.is_poisoned() {
            return Err(AofError::Poisoned);
        }
        if shared.is_closed() {
            return Err(AofError::Closed);
        }
        let next = shared.appended_next.load(Ordering::Acquire);
        if next <= id {
            return Err(AofError::OutOfRange {
                id,
                first: shared.first_id.load(Ordering::Acquire),
                next,
            });
        }
        shared.request_sync();
        notified.await;
    }
}

/// Makes the directory entry of `dir` durable in its parent (finding 7: a
/// new log's directory could vanish in a power loss with every acknowledged
/// record in it), and, best effort, the entries of the ancestors above.
fn sync_ancestors(fs: &dyn FileSystem, dir: &Path) -> AofResult<()> {
    let mut ancestors = dir.ancestors().skip(1).filter(|a| !a.as_os_str().is_empty());
    let parent = ancestors.next().unwrap_or(Path::new("."));
    fs.sync_dir(parent).map_err(|e| AofError::io(parent, e))?;
    for a in ancestors {
        if let Err(e) = fs.sync_dir(a) {
            log::debug!("syncing {}: {e}", a.display());
        }
    }
    Ok(())
}

/// The lock a read-only handle does not take.
#[derive(Debug)]
struct NoLock;

impl crate::fs::LockGuard for NoLock {}

impl Drop for Aof {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            log::warn!("closing the log in {} on drop: {e}", self.shared.dir.display());
        }
    }
}
