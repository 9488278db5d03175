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

use crate::background;
use crate::cache::SegmentCache;
use crate::commit::{Durable, GroupCommit};
use crate::fs::FileSystem;
use crate::layout::LOCK_FILE;
use crate::locks::lock;
use crate::metrics::{Counters, EngineMetrics};
use crate::options::AofOptions;
use crate::reader::{Reader, Tail};
use crate::recovery::{Repair, recover};
use crate::shared::{Shared, Wake};
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
    /// with [`AofError::ReadOnly`]. What it sees is fixed at open.
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
            let recovered = recover(&dir, &options, index.as_ref(), true)?;
            return Ok(Self::assemble(
                dir,
                options,
                index,
                recovered,
                Box::new(NoLock),
                true,
            ));
        }
        fs.create_dir_all(&dir).map_err(|e| AofError::io(&dir, e))?;
        sync_ancestors(fs.as_ref(), &dir)?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = fs.lock_exclusive(&lock_path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                AofError::Locked { path: dir.clone() }
            } else {
                AofError::io(&lock_path, e)
            }
        })?;
        let recovered = recover(&dir, &options, index.as_ref(), false)?;
        let mut aof = Self::assemble(dir, options, index, recovered, lock, false);
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
    ) -> Self {
        let fs = options.fs.clone();
        let flush = FlushController::with_clock(options.config.flush_strategy(), options.clock.clone());
        let next_id = recovered.writer.next_id;
        let cache = SegmentCache::new(recovered.finalized, options.config.segment_cache_size());
        let first_id = cache.first_base().unwrap_or(recovered.writer.seg.base_id);
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
            cache,
            readers: AtomicUsize::new(0),
            max_readers: options.max_readers,
            counters: Counters::default(),
            wake: Mutex::new(Wake::default()),
            wake_cv: Condvar::new(),
            removing: Mutex::new(()),
            _lock: lock,
        });
        Counters::add(&shared.counters.torn_tails_cut, recovered.torn_tails_cut);
        Counters::add(&shared.counters.segments_created, recovered.segments_created);
        Self {
            shared,
            threads: Vec::new(),
        }
    }

    /// What recovery changed when the log was opened; opened read-only,
    /// what it would change.
    #[must_use]
    pub fn repairs(&self) -> &[Repair] {
        &self.shared.repairs
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
    pub fn append(&self, payload: &[u8]) -> AofResult<u64> {
        self.append_batch(&[payload]).map(|r| r.start)
    }

    /// Appends many records in one step and returns their ids, in order.
    pub fn append_batch<P: AsRef<[u8]>>(&self, payloads: &[P]) -> AofResult<Range<u64>> {
        let shared = &self.shared;
        shared.check_writable()?;
        let max = shared.config.max_record_size();
        let mut bytes = 0u64;
        for p in payloads {
            let len = p.as_ref().len();
            if len > max as usize {
                return Err(AofError::RecordTooLarge {
                    size: len as u64,
                    max,
                });
            }
            bytes += encoded_len(len) as u64;
        }
        if payloads.is_empty() {
            let next = lock(&shared.writer).next_id;
            return Ok(next..next);
        }
        let range = {
            let mut w = lock(&shared.writer);
            shared.check_writable()?;
            let start = w.next_id;
            for p in payloads {
                shared.append_locked(&mut w, p.as_ref())?;
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

    /// Drops every record after `id`, so the next append gets `id + 1`
    /// (Raft conflict resolution). Durable before it returns. `id` must be
    /// at least `first_id() - 1`.
    pub fn truncate_after(&self, id: u64) -> AofResult<()> {
        self.shared.truncate_after(id)
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
