//! The log: [`Aof`].
//!
//! # Invariants
//!
//! * Ids are contiguous: the log holds `first_id..next_id` with no gaps, and a
//!   segment holds a contiguous sub-range. Timestamps never decrease.
//! * An id is reported durable (by [`Aof::durable_id`], or by `append`
//!   returning under [`FlushStrategy::Sync`]) only after its bytes were
//!   fdatasync'd *and* the directory entry of its segment file was synced
//!   (segment files are created as temp file → fsync → rename → fsync dir,
//!   before any record is written to them).
//! * A segment is finalized in this order: data synced → offset table and
//!   footer written and synced → index entry committed and synced. A crash
//!   between any two steps is repaired on open, since the file tells which
//!   steps completed.
//! * After a failed write or fsync the log is poisoned: what is on disk is
//!   unknown, so every later write fails with [`AofError::Poisoned`] until
//!   the log is reopened and recovered.
//!
//! Lock order: `writer` before `sync`; `segments` is never held while
//! taking another lock.

use crate::fs::{FileHandle, FileHandleExt, FileSystem, LocalFileSystem, LockGuard, OpenMode};
use crate::metrics::{Counters, PerformanceMetrics};
use crate::segment::{FinalizedSegment, Scan, checked_record, digest_of, footer_bytes, path_in};
use aof_flush::{Clock, FlushController, FlushDecision, FlushKind, FlushMetricsSnapshot, SystemClock};
use aof_record::checksum::Crc64;
use aof_record::record::{RecordFlags, append_record_unsealed, encoded_len, seal_record};
use aof_record::segment::{
    SEGMENT_FILE_EXTENSION, SEGMENT_HEADER_SIZE, SegmentFooter, SegmentHeader, parse_segment_file_name,
    segment_file_name,
};
use aof_record::{AofConfig, AofError, AofResult, FlushStrategy, SegmentEntry, SegmentIndex};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

/// Name of the lock file that keeps a second writer out of a log directory.
pub const LOCK_FILE: &str = "LOCK";

/// Bytes buffered in memory before they are written to the segment file.
const WRITE_BUFFER: usize = 256 * 1024;

/// Chunk size used to fill pre-allocated segment files with zeros.
const ZERO_CHUNK: usize = 1 << 20;

/// Wall-clock time for record timestamps, in microseconds since the Unix epoch.
///
/// The engine never lets timestamps decrease, whatever this returns.
pub trait TimeSource: Send + Sync + fmt::Debug + 'static {
    /// Now, in µs since the Unix epoch.
    fn now_us(&self) -> u64;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemTime;

impl TimeSource for SystemTime {
    fn now_us(&self) -> u64 {
        // On every append: plain u64 arithmetic rather than u128 `as_micros`.
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| {
                d.as_secs()
                    .saturating_mul(1_000_000)
                    .saturating_add(u64::from(d.subsec_micros()))
            })
    }
}

/// How to open a log, beyond its [`AofConfig`].
#[derive(Debug, Clone)]
pub struct AofOptions {
    /// The configuration.
    pub config: AofConfig,
    /// The file system to write through.
    pub fs: Arc<dyn FileSystem>,
    /// The monotonic clock of the flush policy and metrics.
    pub clock: Arc<dyn Clock>,
    /// The wall clock of record timestamps.
    pub time: Arc<dyn TimeSource>,
    /// Rebuild the index from the segment files when it is empty but files
    /// exist, or when it disagrees with them.
    pub rebuild_index: bool,
    /// Most readers and tails open at once; one more is refused with
    /// [`AofError::ReaderLimitExceeded`]. Default 1024.
    pub max_readers: usize,
}

impl AofOptions {
    /// Options for `config` on the local file system and the system clocks.
    #[must_use]
    pub fn new(config: AofConfig) -> Self {
        Self {
            config,
            fs: LocalFileSystem::shared(),
            clock: Arc::new(SystemClock),
            time: Arc::new(SystemTime),
            rebuild_index: false,
            max_readers: 1024,
        }
    }
}

/// A segmented, append-only log.
///
/// `Send + Sync`: share it (in an `Arc`) between threads that append and
/// read concurrently. See the [module docs](self) for the invariants.
pub struct Aof {
    pub(crate) inner: Arc<Inner>,
    threads: Vec<JoinHandle<()>>,
}

impl fmt::Debug for Aof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aof")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inner")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// State shared by the log's handle, its readers and its background threads.
pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    pub(crate) config: AofConfig,
    pub(crate) fs: Arc<dyn FileSystem>,
    pub(crate) index: Arc<dyn SegmentIndex>,
    pub(crate) time: Arc<dyn TimeSource>,
    pub(crate) flush: FlushController,
    pub(crate) writer: Mutex<Writer>,
    /// Group commit: at most one fsync in flight; others wait for its result.
    sync: Mutex<SyncState>,
    sync_done: Condvar,
    /// Ids below this are durable: the end of what readers see.
    pub(crate) durable_next: AtomicU64,
    /// Ids below this have been appended (published after the writer lock is released).
    pub(crate) appended_next: AtomicU64,
    /// The lowest id still kept (retention and `truncate_before` raise it).
    pub(crate) first_id: AtomicU64,
    pub(crate) poisoned: AtomicBool,
    closed: AtomicBool,
    /// Finalized segments with a local file, by base id.
    pub(crate) segments: RwLock<BTreeMap<u64, Arc<SegmentSlot>>>,
    /// Slots whose segment is open (mapped): the cache, bounded by `segment_cache_size`.
    open_set: Mutex<Vec<Arc<SegmentSlot>>>,
    tick: AtomicU64,
    /// Removed segments whose files wait for their last reader to leave.
    pub(crate) doomed: Mutex<Vec<Arc<SegmentSlot>>>,
    /// Signalled whenever `durable_next` moves: blocking tails wait here, async ones on `notify`.
    pub(crate) durable_mx: Mutex<()>,
    pub(crate) durable_cv: Condvar,
    pub(crate) notify: tokio::sync::Notify,
    pub(crate) readers: AtomicUsize,
    pub(crate) max_readers: usize,
    pub(crate) counters: Counters,
    /// Wakes the background flusher, pre-allocator and retention task.
    wake: Mutex<Wake>,
    wake_cv: Condvar,
    _lock: Box<dyn LockGuard>,
}

#[derive(Debug, Default)]
struct Wake {
    flush_requested: bool,
    prealloc_requested: bool,
    stop: bool,
    /// A pre-allocated, zero-filled, synced temp file ready for the next segment.
    prepared: Option<PathBuf>,
    prealloc_seq: u64,
}

#[derive(Debug, Default)]
struct SyncState {
    in_progress: bool,
}

/// A finalized (or archived-with-local-copy) segment known to the engine.
#[derive(Debug)]
pub(crate) struct SegmentSlot {
    pub(crate) base_id: u64,
    pub(crate) last_id: u64,
    pub(crate) record_count: u64,
    pub(crate) path: PathBuf,
    pub(crate) open: Mutex<Option<Arc<FinalizedSegment>>>,
    /// Readers positioned in this segment; a pinned segment is never evicted or deleted.
    pub(crate) pins: AtomicUsize,
    pub(crate) last_used: AtomicU64,
    /// Removed from the log; its file goes once no reader is positioned in it.
    pub(crate) doomed: AtomicBool,
    /// Replaced by a rewritten file at the same path (`truncate_after`): readers must look again.
    pub(crate) replaced: AtomicBool,
}

/// The active segment and everything appends touch, behind one mutex.
pub(crate) struct Writer {
    pub(crate) seg: ActiveSegment,
    /// Encoded records not yet written to the file; they belong at `seg.written`.
    pub(crate) buf: Vec<u8>,
    pub(crate) next_id: u64,
    pub(crate) last_ts: u64,
    /// Index (in `seg.offsets`) of the first buffered record whose checksum is
    /// not computed yet: records are sealed in one pass before the buffer is
    /// written or read (see `aof_record::record::append_record_unsealed`).
    pub(crate) unsealed_from: usize,
}

impl Writer {
    /// Computes the checksums of every buffered record not yet sealed.
    pub(crate) fn seal_buffered(&mut self) {
        let n = self.seg.offsets.len();
        let buf_end = self.seg.written + self.buf.len() as u64;
        for i in self.unsealed_from..n {
            let start = (u64::from(self.seg.offsets[i]) - self.seg.written) as usize;
            let end =
                (self.seg.offsets.get(i + 1).map_or(buf_end, |o| u64::from(*o)) - self.seg.written) as usize;
            seal_record(&mut self.buf[start..end]);
        }
        self.unsealed_from = n;
    }
}

pub(crate) struct ActiveSegment {
    pub(crate) base_id: u64,
    pub(crate) path: PathBuf,
    pub(crate) file: Arc<dyn FileHandle>,
    /// Bytes of header and records written to the file.
    pub(crate) written: u64,
    /// Offset of each record, in id order.
    pub(crate) offsets: Vec<u32>,
    /// CRC-64/NVME of the file's bytes `0..written`.
    pub(crate) crc: Crc64,
    pub(crate) created_at: u64,
    pub(crate) prealloc_asked: bool,
    /// A live map of the pre-allocated file, for reads without a syscall.
    pub(crate) map: Option<Bytes>,
}

impl ActiveSegment {
    pub(crate) fn data_len(&self, buffered: usize) -> u64 {
        self.written + buffered as u64
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Aof {
    /// Opens (creating if needed) the log in `dir` with `config`, on the local
    /// file system, with `index` as its segment index.
    pub fn open(dir: impl AsRef<Path>, config: AofConfig, index: Arc<dyn SegmentIndex>) -> AofResult<Self> {
        Self::open_with(dir, AofOptions::new(config), index)
    }

    /// Opens (creating if needed) the log in `dir`, recovering from a crash if
    /// one happened: see [`crate`] for what recovery does.
    pub fn open_with(
        dir: impl AsRef<Path>,
        options: AofOptions,
        index: Arc<dyn SegmentIndex>,
    ) -> AofResult<Self> {
        let dir = dir.as_ref().to_owned();
        options.config.validate()?;
        let fs = options.fs.clone();
        fs.create_dir_all(&dir).map_err(|e| AofError::io(&dir, e))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = fs.lock_exclusive(&lock_path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                AofError::Locked { path: dir.clone() }
            } else {
                AofError::io(&lock_path, e)
            }
        })?;
        let recovered = crate::recovery::recover(&dir, &options, index.as_ref())?;
        let flush = FlushController::with_clock(options.config.flush_strategy(), options.clock.clone());
        let next_id = recovered.writer.next_id;
        let first_id = recovered
            .finalized
            .first()
            .map_or(recovered.writer.seg.base_id, |s| s.base_id);
        let torn = recovered.torn_tails_cut;
        let inner = Arc::new(Inner {
            dir,
            config: options.config.clone(),
            fs,
            index,
            time: options.time.clone(),
            flush,
            writer: Mutex::new(recovered.writer),
            sync: Mutex::new(SyncState::default()),
            sync_done: Condvar::new(),
            durable_next: AtomicU64::new(next_id),
            appended_next: AtomicU64::new(next_id),
            first_id: AtomicU64::new(first_id),
            poisoned: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            segments: RwLock::new(
                recovered
                    .finalized
                    .into_iter()
                    .map(|s| (s.base_id, Arc::new(s)))
                    .collect(),
            ),
            open_set: Mutex::new(Vec::new()),
            tick: AtomicU64::new(0),
            doomed: Mutex::new(Vec::new()),
            durable_mx: Mutex::new(()),
            durable_cv: Condvar::new(),
            notify: tokio::sync::Notify::new(),
            readers: AtomicUsize::new(0),
            max_readers: options.max_readers,
            counters: Counters::default(),
            wake: Mutex::new(Wake::default()),
            wake_cv: Condvar::new(),
            _lock: lock,
        });
        Counters::add(&inner.counters.torn_tails_cut, torn);
        Counters::add(&inner.counters.segments_created, recovered.segments_created);
        let mut threads = Vec::new();
        let strategy = inner.config.flush_strategy();
        if matches!(
            strategy,
            FlushStrategy::Batched(_) | FlushStrategy::Periodic(_) | FlushStrategy::BatchedOrPeriodic { .. }
        ) {
            let i = inner.clone();
            threads.push(spawn("aof-flusher", move || i.flusher_loop())?);
        }
        if inner.config.pre_allocate_enabled() {
            let i = inner.clone();
            threads.push(spawn("aof-preallocator", move || i.preallocator_loop())?);
        }
        if let Some(ttl) = inner.config.ttl_seconds() {
            let i = inner.clone();
            threads.push(spawn("aof-retention", move || i.retention_loop(ttl))?);
        }
        Ok(Self { inner, threads })
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
        let inner = &self.inner;
        inner.check_writable()?;
        let max = inner.config.max_record_size();
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
            let next = lock(&inner.writer).next_id;
            return Ok(next..next);
        }
        let range = {
            let mut w = lock(&inner.writer);
            inner.check_writable()?;
            let start = w.next_id;
            for p in payloads {
                inner.append_locked(&mut w, p.as_ref())?;
            }
            let range = start..w.next_id;
            inner.appended_next.fetch_max(range.end, Ordering::AcqRel);
            range
        };
        Counters::add(&inner.counters.appends, payloads.len() as u64);
        Counters::add(
            &inner.counters.bytes_appended,
            payloads.iter().map(|p| p.as_ref().len() as u64).sum(),
        );
        let decision = inner.flush.record_append(payloads.len() as u64, bytes);
        match inner.config.flush_strategy() {
            FlushStrategy::Sync => inner.sync_through(range.end - 1, FlushKind::Forced)?,
            FlushStrategy::Async => {}
            _ => {
                if decision.is_now() {
                    inner.request_flush();
                }
            }
        }
        Ok(range)
    }

    /// Makes every record appended so far durable; returns the highest durable id.
    ///
    /// Blocks the calling thread: from async code use [`Aof::flush`].
    pub fn flush_blocking(&self) -> AofResult<Option<u64>> {
        self.inner.flush_all(FlushKind::Forced)
    }

    /// Makes every record appended so far durable; returns the highest durable id.
    ///
    /// Runs the fsync on tokio's blocking pool; call it inside a tokio runtime.
    pub async fn flush(&self) -> AofResult<Option<u64>> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.flush_all(FlushKind::Forced))
            .await
            .map_err(|_| AofError::Closed)?
    }

    /// The highest id guaranteed durable, `None` before the first.
    #[must_use]
    pub fn durable_id(&self) -> Option<u64> {
        self.inner.durable_next.load(Ordering::Acquire).checked_sub(1)
    }

    /// The id the next append will get.
    #[must_use]
    pub fn next_id(&self) -> u64 {
        lock(&self.inner.writer).next_id
    }

    /// The payload of record `id`, checksum-verified; `None` for an id that
    /// was never written (or is no longer kept). Zero-copy for finalized
    /// segments (a slice of their memory map).
    pub fn read(&self, id: u64) -> AofResult<Option<Bytes>> {
        Counters::add(&self.inner.counters.reads, 1);
        self.inner.read(id)
    }

    /// The log's directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The configuration it was opened with.
    #[must_use]
    pub fn config(&self) -> &AofConfig {
        &self.inner.config
    }

    /// The segment index.
    #[must_use]
    pub fn index(&self) -> &Arc<dyn SegmentIndex> {
        &self.inner.index
    }

    /// Engine counters since open.
    #[must_use]
    pub fn performance_metrics(&self) -> PerformanceMetrics {
        self.inner.counters.snapshot()
    }

    /// Flush counters, timings and histograms since open.
    #[must_use]
    pub fn flush_metrics(&self) -> FlushMetricsSnapshot {
        self.inner.flush.metrics().snapshot()
    }

    /// Whether an earlier failed write or fsync poisoned the log.
    #[must_use]
    pub fn is_poisoned(&self) -> bool {
        self.inner.poisoned.load(Ordering::Acquire)
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
        let inner = &self.inner;
        if inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        {
            let mut w = lock(&inner.wake);
            w.stop = true;
            inner.wake_cv.notify_all();
        }
        inner.wake_tails();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let result = (|| {
            if inner.poisoned.load(Ordering::Acquire) {
                return Err(AofError::Poisoned);
            }
            inner.flush_all(FlushKind::Forced)?;
            let w = lock(&inner.writer);
            let last = w.next_id.checked_sub(1).filter(|l| *l >= w.seg.base_id);
            inner
                .index
                .update_segment_tail(w.seg.base_id, last, w.seg.written)?;
            inner.index.sync()?;
            Ok(())
        })();
        // A prepared file nobody will use: remove it (recovery would too).
        if let Some(p) = lock(&inner.wake).prepared.take() {
            let _ = inner.fs.remove_file(&p);
        }
        result
    }
}

impl Drop for Aof {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            log::warn!("closing the log in {} on drop: {e}", self.inner.dir.display());
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> AofResult<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(f)
        .map_err(|e| AofError::io(name, e))
}

impl Inner {
    /// Fails once the log is closed or poisoned.
    pub(crate) fn check_open(&self) -> AofResult<()> {
        self.check_writable()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn check_writable(&self) -> AofResult<()> {
        if self.poisoned.load(Ordering::Acquire) {
            return Err(AofError::Poisoned);
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(AofError::Closed);
        }
        Ok(())
    }

    pub(crate) fn poison(&self, err: AofError) -> AofError {
        if !self.poisoned.swap(true, Ordering::AcqRel) {
            log::error!("log in {} poisoned: {err}", self.dir.display());
        }
        err
    }

    /// Appends one record under the writer lock, rolling to a new segment first if it would not fit.
    fn append_locked(&self, w: &mut Writer, payload: &[u8]) -> AofResult<()> {
        let len = encoded_len(payload.len()) as u64;
        if w.seg.data_len(w.buf.len()) + len > self.config.segment_size() && !w.seg.offsets.is_empty() {
            self.roll(w)?;
        }
        let ts = self.time.now_us().max(w.last_ts);
        let offset = w.seg.data_len(w.buf.len());
        let id = w.next_id;
        append_record_unsealed(&mut w.buf, id, ts, RecordFlags::NONE, payload).map_err(|source| {
            AofError::Corruption {
                segment: w.seg.base_id,
                offset,
                source,
            }
        })?;
        // offset < segment_size <= u32::MAX, checked by the configuration.
        w.seg.offsets.push(offset as u32);
        w.next_id = id + 1;
        w.last_ts = ts;
        if w.buf.len() >= WRITE_BUFFER {
            self.write_out(w)?;
        }
        if self.config.pre_allocate_enabled()
            && !w.seg.prealloc_asked
            && w.seg.data_len(w.buf.len()) as f64
                >= self.config.pre_allocate_threshold() * self.config.segment_size() as f64
        {
            w.seg.prealloc_asked = true;
            let mut wake = lock(&self.wake);
            if wake.prepared.is_none() {
                wake.prealloc_requested = true;
                self.wake_cv.notify_all();
            }
        }
        Ok(())
    }

    /// Writes the buffered records to the segment file.
    pub(crate) fn write_out(&self, w: &mut Writer) -> AofResult<()> {
        if w.buf.is_empty() {
            return Ok(());
        }
        w.seal_buffered();
        if let Err(e) = w.seg.file.write_all_at(&w.buf, w.seg.written) {
            return Err(self.poison(AofError::io(&w.seg.path, e)));
        }
        w.seg.crc.update(&w.buf);
        w.seg.written += w.buf.len() as u64;
        w.buf.clear();
        Ok(())
    }

    /// Makes ids `..=id` durable, sharing an in-flight fsync with other callers.
    fn sync_through(&self, id: u64, kind: FlushKind) -> AofResult<()> {
        let target = id + 1;
        let mut st = lock(&self.sync);
        loop {
            if self.durable_next.load(Ordering::Acquire) >= target {
                return Ok(());
            }
            if self.poisoned.load(Ordering::Acquire) {
                return Err(AofError::Poisoned);
            }
            if st.in_progress {
                st = self.sync_done.wait(st).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            st.in_progress = true;
            drop(st);
            let result = self.flush.flush_with(kind, || self.sync_now());
            st = lock(&self.sync);
            st.in_progress = false;
            self.sync_done.notify_all();
            result?;
        }
    }

    /// One group-commit round: write out the buffer, fdatasync the active file.
    fn sync_now(&self) -> AofResult<u64> {
        let (file, path, next) = {
            let mut w = lock(&self.writer);
            self.write_out(&mut w)?;
            (w.seg.file.clone(), w.seg.path.clone(), w.next_id)
        };
        if let Err(e) = file.sync_data() {
            return Err(self.poison(AofError::io(path, e)));
        }
        self.publish_durable(next);
        Ok(next)
    }

    /// Raises the durable watermark to `next` and wakes every tail.
    pub(crate) fn publish_durable(&self, next: u64) {
        let before = self.durable_next.fetch_max(next, Ordering::AcqRel);
        if before < next {
            self.wake_tails();
        }
    }

    pub(crate) fn wake_tails(&self) {
        drop(lock(&self.durable_mx));
        self.durable_cv.notify_all();
        self.notify.notify_waiters();
    }

    fn flush_all(&self, kind: FlushKind) -> AofResult<Option<u64>> {
        let next = lock(&self.writer).next_id;
        if let Some(last) = next.checked_sub(1) {
            self.sync_through(last, kind)?;
        }
        Ok(self.durable_next.load(Ordering::Acquire).checked_sub(1))
    }

    fn request_flush(&self) {
        let mut wake = lock(&self.wake);
        if !wake.flush_requested {
            wake.flush_requested = true;
            self.wake_cv.notify_all();
        }
    }

    fn flusher_loop(&self) {
        let mut wake = lock(&self.wake);
        loop {
            if wake.stop {
                return;
            }
            wake.flush_requested = false;
            drop(wake);
            let timeout = match self.flush.poll() {
                FlushDecision::Now(kind) => {
                    let next = self.appended_next.load(Ordering::Acquire);
                    if let Some(last) = next.checked_sub(1)
                        && let Err(e) = self.sync_through(last, kind)
                    {
                        log::error!("background flush failed: {e}");
                    }
                    Duration::ZERO
                }
                // Nothing pending: the next periodic deadline is at most one interval away.
                FlushDecision::Wait { next_deadline } => next_deadline
                    .or(self.flush.policy().interval())
                    .unwrap_or(Duration::from_millis(100)),
                _ => Duration::from_millis(1),
            };
            wake = lock(&self.wake);
            if !timeout.is_zero() && !wake.flush_requested && !wake.stop {
                wake = self
                    .wake_cv
                    .wait_timeout(wake, timeout)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
    }

    /// Wakes every `ttl / 4` (between 50 ms and 60 s) and removes expired segments.
    fn retention_loop(&self, ttl_seconds: u64) {
        let period = Duration::from_millis((ttl_seconds * 250).clamp(50, 60_000));
        let mut wake = lock(&self.wake);
        loop {
            if wake.stop {
                return;
            }
            drop(wake);
            if let Err(e) = self.expire(ttl_seconds) {
                log::warn!("retention in {}: {e}", self.dir.display());
            }
            wake = lock(&self.wake);
            if !wake.stop {
                wake = self
                    .wake_cv
                    .wait_timeout(wake, period)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
    }

    fn preallocator_loop(&self) {
        let mut wake = lock(&self.wake);
        loop {
            if wake.stop {
                return;
            }
            if wake.prealloc_requested && wake.prepared.is_none() {
                wake.prealloc_requested = false;
                wake.prealloc_seq += 1;
                let path = self.dir.join(format!("prealloc-{}.tmp", wake.prealloc_seq));
                drop(wake);
                let ready = match self.prepare_file(&path) {
                    Ok(()) => Some(path),
                    Err(e) => {
                        log::warn!("pre-allocating {}: {e}", path.display());
                        let _ = self.fs.remove_file(&path);
                        None
                    }
                };
                wake = lock(&self.wake);
                wake.prepared = ready;
                continue;
            }
            wake = self.wake_cv.wait(wake).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Creates `path` filled with zeros to the segment size, synced: on this
    /// kind of disk fdatasync of a written file is about twice as fast as of
    /// a growing or fallocated one.
    fn prepare_file(&self, path: &Path) -> AofResult<()> {
        let file = self
            .fs
            .open(path, OpenMode::CreateNew)
            .map_err(|e| AofError::io(path, e))?;
        let zeros = vec![0u8; ZERO_CHUNK];
        let size = self.config.segment_size();
        let mut at = 0u64;
        while at < size {
            let n = (size - at).min(ZERO_CHUNK as u64) as usize;
            file.write_all_at(&zeros[..n], at)
                .map_err(|e| AofError::io(path, e))?;
            at += n as u64;
        }
        file.sync_all().map_err(|e| AofError::io(path, e))
    }

    /// Finalizes the active segment and starts the next one. Any failure poisons the log.
    fn roll(&self, w: &mut Writer) -> AofResult<()> {
        self.roll_inner(w).map_err(|e| self.poison(e))
    }

    fn roll_inner(&self, w: &mut Writer) -> AofResult<()> {
        self.write_out(w)?;
        let seg = &w.seg;
        seg.file.sync_data().map_err(|e| AofError::io(&seg.path, e))?;
        self.publish_durable(w.next_id);
        let sealed = footer_bytes(seg.base_id, &seg.offsets, seg.written, seg.crc.finish());
        seg.file
            .write_all_at(&sealed, seg.written)
            .and_then(|()| seg.file.set_len(seg.written + sealed.len() as u64))
            .and_then(|()| seg.file.sync_all())
            .map_err(|e| AofError::io(&seg.path, e))?;
        let mut whole = seg.crc.clone();
        whole.update(&sealed);
        let last_id = w.next_id.checked_sub(1).filter(|l| *l >= seg.base_id);
        let finalized_at = if last_id.is_some() {
            w.last_ts
        } else {
            seg.created_at
        };
        let entry = SegmentEntry::new_active(seg.base_id, seg.created_at, file_name(&seg.path)).finalize(
            last_id,
            seg.written + sealed.len() as u64,
            whole.finish(),
            finalized_at,
        )?;
        self.index.update_entry(&entry)?;
        self.index.sync()?;
        self.fs
            .sync_dir(&self.dir)
            .map_err(|e| AofError::io(&self.dir, e))?;
        Counters::add(&self.counters.segments_finalized, 1);
        self.segments
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(seg.base_id, Arc::new(slot_for(&self.dir, &entry)));
        self.wake_tails();
        let prepared = lock(&self.wake).prepared.take();
        let ts = self.time.now_us().max(w.last_ts);
        w.last_ts = ts;
        w.unsealed_from = 0;
        w.seg = create_active(
            self.fs.as_ref(),
            &self.dir,
            self.index.as_ref(),
            w.next_id,
            ts,
            prepared,
            self.config.segment_size(),
            false,
        )?;
        Counters::add(&self.counters.segments_created, 1);
        Ok(())
    }

    fn read(&self, id: u64) -> AofResult<Option<Bytes>> {
        if id < self.first_id.load(Ordering::Acquire) {
            return Ok(None);
        }
        for _ in 0..2 {
            if let Some(slot) = self.finalized_slot(id) {
                let seg = self.open_segment(&slot)?;
                return Ok(seg.read(id)?.map(|(_, payload)| payload));
            }
            let mut w = lock(&self.writer);
            if id >= w.next_id {
                return Ok(None);
            }
            if id >= w.seg.base_id {
                return read_active(&mut w, id, self.config.max_record_size()).map(|(_, p)| Some(p));
            }
            // Below the active segment and not (or no longer) among the
            // finalized ones: either a rollover raced with this read (look
            // again) or the id is gone.
        }
        Ok(None)
    }

    pub(crate) fn finalized_slot(&self, id: u64) -> Option<Arc<SegmentSlot>> {
        let segs = self.segments.read().unwrap_or_else(PoisonError::into_inner);
        segs.range(..=id)
            .next_back()
            .map(|(_, s)| s)
            .filter(|s| s.record_count > 0 && id <= s.last_id)
            .cloned()
    }

    /// The open (mapped) segment of `slot`. Opening one more than
    /// `segment_cache_size` closes the least recently used segment that no
    /// reader is positioned in (readers holding its `Arc` finish undisturbed).
    pub(crate) fn open_segment(&self, slot: &Arc<SegmentSlot>) -> AofResult<Arc<FinalizedSegment>> {
        slot.last_used
            .store(self.tick.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        let mut open = lock(&slot.open);
        if let Some(seg) = open.as_ref() {
            Counters::add(&self.counters.cache_hits, 1);
            return Ok(seg.clone());
        }
        Counters::add(&self.counters.cache_misses, 1);
        let seg = Arc::new(FinalizedSegment::open(
            self.fs.as_ref(),
            &slot.path,
            slot.base_id,
            self.config.max_record_size(),
        )?);
        *open = Some(seg.clone());
        drop(open);
        let mut set = lock(&self.open_set);
        set.push(slot.clone());
        while set.len() > self.config.segment_cache_size() {
            let victim = set
                .iter()
                .enumerate()
                .filter(|(_, s)| !Arc::ptr_eq(s, slot) && s.pins.load(Ordering::Acquire) == 0)
                .min_by_key(|(_, s)| s.last_used.load(Ordering::Relaxed))
                .map(|(i, _)| i);
            let Some(i) = victim else { break };
            let v = set.swap_remove(i);
            *lock(&v.open) = None;
            Counters::add(&self.counters.cache_evictions, 1);
        }
        Ok(seg)
    }

    /// Forgets `slot` in the cache (it was removed from the log).
    pub(crate) fn uncache(&self, slot: &Arc<SegmentSlot>) {
        lock(&self.open_set).retain(|s| !Arc::ptr_eq(s, slot));
        *lock(&slot.open) = None;
    }
}

/// Reads record `id` of the active segment (under the writer lock): its
/// timestamp and payload.
pub(crate) fn read_active(w: &mut Writer, id: u64, max_record_size: u32) -> AofResult<(u64, Bytes)> {
    w.seal_buffered();
    let index = (id - w.seg.base_id) as usize;
    let offset = u64::from(w.seg.offsets[index]);
    let end = w
        .seg
        .offsets
        .get(index + 1)
        .map_or(w.seg.data_len(w.buf.len()), |o| u64::from(*o));
    let len = (end - offset) as usize;
    let from_file;
    let region: &[u8] = match &w.seg.map {
        Some(map) if end <= w.seg.written && end <= map.len() as u64 => &map[offset as usize..end as usize],
        _ if offset >= w.seg.written => {
            let at = (offset - w.seg.written) as usize;
            &w.buf[at..at + len]
        }
        _ => {
            let mut v = vec![0u8; len];
            w.seg
                .file
                .read_exact_at(&mut v, offset)
                .map_err(|e| AofError::io(&w.seg.path, e))?;
            from_file = v;
            &from_file
        }
    };
    let rec = checked_record(region, id, w.seg.base_id, offset, max_record_size)?;
    // Copied out, never sliced: the active file can still shrink
    // (truncate_after), and a slice of its map must not outlive that.
    Ok((rec.header.timestamp_us, Bytes::copy_from_slice(rec.payload)))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub(crate) fn slot_for(dir: &Path, entry: &SegmentEntry) -> SegmentSlot {
    let name = entry
        .local_path
        .clone()
        .unwrap_or_else(|| segment_file_name(entry.base_id));
    SegmentSlot {
        base_id: entry.base_id,
        last_id: entry.last_id,
        record_count: entry.record_count,
        path: path_in(dir, &name),
        open: Mutex::new(None),
        pins: AtomicUsize::new(0),
        last_used: AtomicU64::new(0),
        doomed: AtomicBool::new(false),
        replaced: AtomicBool::new(false),
    }
}

/// Creates the active segment `base_id`: from the pre-allocated file
/// `prepared` if given, else a new file (zero-filled to the segment size
/// when `zero_fill`). Header written and synced, file renamed into place,
/// directory synced, then the index entry added and synced.
#[allow(
    clippy::too_many_arguments,
    reason = "each is a distinct input of segment creation; called from two places"
)]
fn create_active(
    fs: &dyn FileSystem,
    dir: &Path,
    index: &dyn SegmentIndex,
    base_id: u64,
    created_at: u64,
    prepared: Option<PathBuf>,
    segment_size: u64,
    zero_fill: bool,
) -> AofResult<ActiveSegment> {
    let name = segment_file_name(base_id);
    let path = path_in(dir, &name);
    let (tmp, file) = match prepared {
        Some(p) => {
            let f = fs
                .open(&p, OpenMode::ReadWrite)
                .map_err(|e| AofError::io(&p, e))?;
            (p, f)
        }
        None => {
            let p = path_in(dir, &format!("{name}.tmp"));
            let f = fs
                .open(&p, OpenMode::CreateNew)
                .map_err(|e| AofError::io(&p, e))?;
            if zero_fill {
                fill_zeros(f.as_ref(), segment_size).map_err(|e| AofError::io(&p, e))?;
            }
            (p, f)
        }
    };
    let header = SegmentHeader {
        base_id,
        created_at_us: created_at,
    }
    .encode();
    file.write_all_at(&header, 0)
        .and_then(|()| file.sync_all())
        .map_err(|e| AofError::io(&tmp, e))?;
    fs.rename(&tmp, &path).map_err(|e| AofError::io(&path, e))?;
    fs.sync_dir(dir).map_err(|e| AofError::io(dir, e))?;
    let mut entry = SegmentEntry::new_active(base_id, created_at, name.clone());
    entry.set_tail(None, SEGMENT_HEADER_SIZE as u64)?;
    index.add_entry(&entry)?;
    index.sync()?;
    let map = live_map(file.as_ref(), segment_size);
    Ok(ActiveSegment {
        base_id,
        path,
        file,
        written: SEGMENT_HEADER_SIZE as u64,
        offsets: Vec::new(),
        crc: digest_of(&header),
        created_at,
        prealloc_asked: false,
        map,
    })
}

/// Writes `size` zero bytes from the start of `file`.
fn fill_zeros(file: &dyn FileHandle, size: u64) -> std::io::Result<()> {
    let zeros = vec![0u8; ZERO_CHUNK.min(usize::try_from(size).unwrap_or(ZERO_CHUNK))];
    let mut at = 0u64;
    while at < size {
        let n = (size - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// A live map of an active segment file that is pre-allocated to the full
/// segment size (so every offset a record can have is inside the file).
fn live_map(file: &dyn FileHandle, segment_size: u64) -> Option<Bytes> {
    let len = file.len().ok()?;
    if len < segment_size {
        return None;
    }
    file.map_live(segment_size).ok().flatten()
}

/// What recovery hands to the engine.
pub(crate) struct Recovered {
    writer: Writer,
    finalized: Vec<SegmentSlot>,
    torn_tails_cut: u64,
    segments_created: u64,
}

pub(crate) mod recovery_support {
    //! Constructors recovery uses to build the engine's private state.
    use super::*;

    /// The engine state for an active segment recovered by a scan.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn recovered(
        base_id: u64,
        path: PathBuf,
        file: Arc<dyn FileHandle>,
        data: &[u8],
        scan: Scan,
        created_at: u64,
        finalized: Vec<SegmentEntry>,
        dir: &Path,
        torn_tails_cut: u64,
        segments_created: u64,
        segment_size: u64,
    ) -> Recovered {
        let next_id = base_id + scan.offsets.len() as u64;
        // Every scanned record is already in the file, checksum and all.
        let sealed = scan.offsets.len();
        let end = usize::try_from(scan.data_end)
            .unwrap_or(usize::MAX)
            .min(data.len());
        let last_ts = scan.last_timestamp.unwrap_or(created_at).max(created_at);
        Recovered {
            writer: Writer {
                seg: ActiveSegment {
                    base_id,
                    path,
                    written: scan.data_end,
                    offsets: scan.offsets,
                    crc: digest_of(&data[..end]),
                    created_at,
                    prealloc_asked: false,
                    map: live_map(file.as_ref(), segment_size),
                    file,
                },
                buf: Vec::with_capacity(WRITE_BUFFER + 4096),
                next_id,
                last_ts,
                unsealed_from: sealed,
            },
            finalized: finalized.iter().map(|e| slot_for(dir, e)).collect(),
            torn_tails_cut,
            segments_created,
        }
    }

    /// A brand-new active segment at `base_id`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn fresh(
        fs: &dyn FileSystem,
        dir: &Path,
        index: &dyn SegmentIndex,
        base_id: u64,
        created_at: u64,
        finalized: Vec<SegmentEntry>,
        torn_tails_cut: u64,
        segment_size: u64,
        zero_fill: bool,
    ) -> AofResult<Recovered> {
        let seg = create_active(fs, dir, index, base_id, created_at, None, segment_size, zero_fill)?;
        Ok(Recovered {
            writer: Writer {
                seg,
                buf: Vec::with_capacity(WRITE_BUFFER + 4096),
                next_id: base_id,
                last_ts: created_at,
                unsealed_from: 0,
            },
            finalized: finalized.iter().map(|e| slot_for(dir, e)).collect(),
            torn_tails_cut,
            segments_created: 1,
        })
    }

    /// Whether a file name is a segment file, and its base id.
    pub(crate) fn segment_base(name: &str) -> Option<u64> {
        parse_segment_file_name(name)
    }

    /// Whether a file name is one of the engine's temp files.
    pub(crate) fn is_temp(name: &str) -> bool {
        name.ends_with(".tmp")
            && (name.starts_with("prealloc-")
                || name
                    .strip_suffix(".tmp")
                    .and_then(|n| n.strip_suffix(&format!(".{SEGMENT_FILE_EXTENSION}")))
                    .is_some())
    }

    /// The index entry of the finalized segment `data`.
    pub(crate) fn entry_from_finalized(
        data: &Bytes,
        path: &Path,
        name: &str,
        base_id: u64,
        max_record_size: u32,
    ) -> AofResult<SegmentEntry> {
        let seg = FinalizedSegment::from_bytes(data.clone(), path, base_id, max_record_size)?;
        seg.footer()
            .verify_data(data)
            .map_err(|source| AofError::InvalidFooter {
                segment: base_id,
                source,
            })?;
        let header = SegmentHeader::decode(data).map_err(|source| AofError::InvalidSegmentFile {
            path: path.to_owned(),
            source,
        })?;
        let count = seg.record_count();
        let last_ts = seg.last_timestamp()?;
        let entry = SegmentEntry::new_active(base_id, header.created_at_us, name).finalize(
            (count > 0).then(|| base_id + count - 1),
            data.len() as u64,
            aof_record::checksum::crc64_nvme(data),
            last_ts.unwrap_or(header.created_at_us),
        )?;
        Ok(entry)
    }

    /// Does the footer at the end of `data` say the segment was finalized?
    pub(crate) fn has_footer(data: &[u8]) -> bool {
        SegmentFooter::decode(data).is_ok()
    }
}
