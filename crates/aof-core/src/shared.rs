//! The state a log's handle, its readers and its background threads share:
//! [`Shared`], and the operations on it that several of them use (append
//! under the writer lock, group-commit rounds, rollover, poisoning).
//!
//! It sits below everything that holds an `Arc<Shared>` (readers,
//! truncation, verification, background tasks, the [`crate::Aof`] handle),
//! and above the parts it is made of (writer, commit, cache), so imports run
//! one way: `engine` → `reader`/`truncate`/`verify`/`background` →
//! `archiver`/`backpressure` → `shared` → `writer`/`commit`/`cache`/`recovery`
//! → `archive_cache` → `segment`/`layout`/`fs`.
//!
//! # Invariants
//!
//! * After a failed write or fsync the log is poisoned: what is on disk is
//!   unknown, so every later write fails with [`AofError::Poisoned`] until
//!   the log is reopened and recovered.
//! * A segment is finalized in this order: data synced → offset table and
//!   footer written and synced → index entry committed and synced →
//!   directory synced → next segment created. A crash between any two steps
//!   is repaired on open, since the file tells which steps completed.
//!
//! Lock order: `writer` before the group-commit lock; the segment map is
//! never held while taking another lock.

use crate::archive_cache::{ArchivedSegment, Remote};
use crate::cache::{SegmentCache, SegmentSlot};
use crate::codec::{Codec, Prepared};
use crate::commit::{Durable, GroupCommit};
use crate::fs::{FileSystem, LockGuard};
use crate::layout::prealloc_name;
use crate::locks::lock;
use crate::manifest::Manifest;
use crate::metrics::Counters;
use crate::options::TimeSource;
use crate::seal::SealJob;
use crate::writer::{NewFile, Prepare, WRITE_BUFFER, Writer, create_active_file};
use aof_flush::{FlushController, FlushKind};
use aof_record::{AofConfig, AofError, AofResult, RecordHeader, SegmentIndex};
use bytes::Bytes;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// State shared by the log's handle, its readers and its background threads.
pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) config: AofConfig,
    pub(crate) fs: std::sync::Arc<dyn FileSystem>,
    pub(crate) index: std::sync::Arc<dyn SegmentIndex>,
    pub(crate) time: std::sync::Arc<dyn TimeSource>,
    pub(crate) flush: FlushController,
    pub(crate) writer: Mutex<Writer>,
    pub(crate) commit: GroupCommit,
    /// The durable end of the log: what readers see.
    pub(crate) durable: Durable,
    /// Ids below this have been appended (published after the writer lock is released).
    pub(crate) appended_next: AtomicU64,
    /// The lowest id still kept (retention and `truncate_before` raise it).
    pub(crate) first_id: AtomicU64,
    pub(crate) poisoned: AtomicBool,
    pub(crate) closed: AtomicBool,
    /// Opened read-only: nothing is written, by this handle or its threads.
    pub(crate) read_only: bool,
    /// What recovery did at open (read-only: what it would have done).
    pub(crate) repairs: Vec<crate::recovery::Repair>,
    /// The log's identity and persisted recovery point.
    pub(crate) manifest: Manifest,
    /// How payloads are stored (compression, encryption).
    pub(crate) codec: Codec,
    /// See [`crate::AofOptions::checkpoint_interval`].
    pub(crate) checkpoint_interval: Option<std::time::Duration>,
    /// Finalized segments with a local file, and the open ones.
    pub(crate) cache: SegmentCache,
    pub(crate) readers: AtomicUsize,
    pub(crate) max_readers: usize,
    pub(crate) counters: Counters,
    /// Wakes the background flusher, pre-allocator and retention task.
    pub(crate) wake: Mutex<Wake>,
    pub(crate) wake_cv: Condvar,
    /// Set with [`Wake::flush_requested`] and cleared with it by the
    /// flusher: an appender that finds it set skips the `wake` mutex, which
    /// every append past a Batched threshold took while the flusher was in
    /// its fdatasync (about a tenth of a 64-byte append's time).
    pub(crate) flush_asked: AtomicBool,
    /// Wakes the syncer (async durable appends), under [`Shared::wake`].
    pub(crate) sync_cv: Condvar,
    /// The archive, when the log was opened with one.
    pub(crate) remote: Option<std::sync::Arc<Remote>>,
    /// Whether finalized segments are archived (enabled, with a remote, writable).
    pub(crate) archiving: bool,
    /// Held while a segment's archival is committed and while segments are
    /// removed, so neither acts on a segment the other just changed.
    pub(crate) archive_lock: Mutex<()>,
    /// Counts segments archived; appends under backpressure wait on it.
    pub(crate) archived_gen: Mutex<u64>,
    pub(crate) archived_cv: Condvar,
    /// How long an append waits under backpressure.
    pub(crate) backpressure_wait: Duration,
    /// First retry delay of a failed archive operation.
    pub(crate) archive_backoff: Duration,
    /// Held by each removal of old segments (retention, `truncate_before`)
    /// from taking the first one out of the log to committing the last, so
    /// that removals commit in log order.
    pub(crate) removing: Mutex<()>,
    /// The seal job of the last rollover, if not done (see `seal.rs`).
    pub(crate) sealing: Mutex<crate::seal::Sealing>,
    pub(crate) sealing_cv: Condvar,
    /// Ids below this are in segments whose seal is committed.
    pub(crate) sealed_next: AtomicU64,
    pub(crate) _lock: Box<dyn LockGuard>,
}

/// A finalized segment to read from: a mapped local file, or an archived one.
#[derive(Debug, Clone)]
pub(crate) enum SegmentView {
    Local(std::sync::Arc<crate::segment::FinalizedSegment>),
    Archived(std::sync::Arc<ArchivedSegment>),
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// What the background tasks are asked to do.
#[derive(Debug, Default)]
pub(crate) struct Wake {
    pub(crate) flush_requested: bool,
    /// An async durable append waits for a sync round (see `background.rs`).
    pub(crate) sync_requested: bool,
    pub(crate) prealloc_requested: bool,
    pub(crate) stop: bool,
    /// A pre-allocated, zero-filled, synced temp file ready for the next segment.
    pub(crate) prepared: Option<PathBuf>,
    pub(crate) prealloc_seq: u64,
    /// A segment was finalized: the archiver may have work.
    pub(crate) archive_requested: bool,
}

impl Wake {
    /// The path of the next file to pre-allocate in `dir`.
    pub(crate) fn next_prealloc_path(&mut self, dir: &std::path::Path) -> PathBuf {
        self.prealloc_seq += 1;
        dir.join(prealloc_name(self.prealloc_seq))
    }
}

impl Shared {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    /// Fails once the log is closed or poisoned.
    pub(crate) fn check_writable(&self) -> AofResult<()> {
        if self.read_only {
            return Err(AofError::ReadOnly);
        }
        if self.is_poisoned() {
            return Err(AofError::Poisoned);
        }
        if self.is_closed() {
            return Err(AofError::Closed);
        }
        Ok(())
    }

    /// Poisons the log (once, logged) and returns `err`.
    pub(crate) fn poison(&self, err: AofError) -> AofError {
        if !self.poisoned.swap(true, Ordering::AcqRel) {
            log::error!("log in {} poisoned: {err}", self.dir.display());
        }
        err
    }

    /// Appends one record under the writer lock, rolling to a new segment
    /// first if it would not fit.
    pub(crate) fn append_locked(&self, w: &mut Writer, payload: &Prepared<'_>) -> AofResult<()> {
        if w.must_roll(payload.stored_len, self.config.segment_size()) {
            self.roll(w)?;
        }
        w.push(payload, self.time.now_us(), &self.codec)?;
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

    /// Writes the buffered records to the segment file; a failure poisons the log.
    pub(crate) fn write_out(&self, w: &mut Writer) -> AofResult<()> {
        w.write_out().map_err(|e| self.poison(e))
    }

    /// Makes ids `..=id` durable, sharing an in-flight fsync with other
    /// callers. The flush latency is recorded from `since` (default: now),
    /// waiting for another caller's round included.
    pub(crate) fn sync_through(&self, id: u64, kind: FlushKind, since: Option<Duration>) -> AofResult<()> {
        let since = since.unwrap_or_else(|| self.flush.clock().now());
        self.commit.sync_until(
            &self.durable,
            id + 1,
            || self.is_poisoned(),
            || {
                self.flush
                    .flush_since(kind, Some(since), || self.sync_round())
                    .map(drop)
            },
        )
    }

    /// One group-commit round: write out the buffer, fdatasync the active
    /// file, publish what it covered.
    fn sync_round(&self) -> AofResult<u64> {
        // The buffered records are written without the writer lock, so that
        // appends go on meanwhile (see the invariants in `writer.rs`).
        let mut w = lock(&self.writer);
        let io = w.seg.io.clone();
        let io_guard = lock(&io);
        let taken = w.take_out();
        let (file, path, next, epoch) = (w.seg.file.clone(), w.seg.path.clone(), w.next_id, w.truncations);
        drop(w);
        if let Some(t) = &taken {
            t.write().map_err(|e| self.poison(e))?;
        }
        drop(io_guard);
        if let Err(e) = file.sync_data() {
            return Err(self.poison(AofError::io(path, e)));
        }
        // Records of a segment whose creation a seal job has not committed
        // yet are not durable until it has (see `seal.rs`).
        self.finish_sealing()?;
        if self.is_poisoned() {
            return Err(AofError::Poisoned);
        }
        {
            // Finding 4: a truncate_after between the capture and here lowered
            // the watermark; publishing the stale `next` would raise it over
            // ids never synced. Published under the writer lock, only if no
            // truncation happened since.
            let mut w = lock(&self.writer);
            if let Some(t) = taken {
                w.recycle(t.bytes);
            }
            if w.truncations != epoch {
                return Ok(self.durable.next());
            }
            self.durable.publish(next);
        }
        // The recovery point lags by at most the checkpoint interval. A
        // failure leaves it lower, which is safe: it is not durability of
        // these records that depends on it.
        if let Some(interval) = self.checkpoint_interval
            && let Err(e) = self.manifest.checkpoint_if_due(next, interval)
        {
            log::warn!("recording the recovery point in {}: {e}", self.dir.display());
        }
        Ok(next)
    }

    /// Makes every record appended so far durable; returns the highest durable id.
    pub(crate) fn flush_all(&self, kind: FlushKind, since: Option<Duration>) -> AofResult<Option<u64>> {
        let next = lock(&self.writer).next_id;
        if let Some(last) = next.checked_sub(1) {
            self.sync_through(last, kind, since)?;
        }
        Ok(self.durable.next().checked_sub(1))
    }

    /// Asks the syncer for a sync round covering everything appended.
    pub(crate) fn request_sync(&self) {
        let mut wake = lock(&self.wake);
        if !wake.sync_requested {
            wake.sync_requested = true;
            self.sync_cv.notify_one();
        }
    }

    /// Asks the background flusher for a flush now.
    pub(crate) fn request_flush(&self) {
        // Already asked since the flusher last looked: it has yet to poll
        // the policy, which counts this caller's records.
        if self.flush_asked.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut wake = lock(&self.wake);
        if !wake.flush_requested {
            wake.flush_requested = true;
            self.wake_cv.notify_all();
        }
    }

    /// Finalizes the active segment and starts the next one. Any failure
    /// poisons the log.
    fn roll(&self, w: &mut Writer) -> AofResult<()> {
        self.roll_inner(w).map_err(|e| self.poison(e))
    }

    fn roll_inner(&self, w: &mut Writer) -> AofResult<()> {
        // One seal job at a time (see `seal.rs`).
        self.finish_sealing()?;
        if self.is_poisoned() {
            return Err(AofError::Poisoned);
        }
        let finalized = w.write_footer()?;
        self.cache.insert(SegmentSlot::for_entry(&self.dir, &finalized));
        let source = match lock(&self.wake).prepared.take() {
            Some(p) => NewFile::Prepared(p),
            None => NewFile::Create(Prepare::Grow),
        };
        let ts = self.time.now_us().max(w.last_ts);
        let (seg, created) = create_active_file(
            self.fs.as_ref(),
            &self.dir,
            w.next_id,
            ts,
            source,
            self.config.segment_size(),
        )?;
        let job = SealJob {
            file: w.seg.file.clone(),
            path: w.seg.path.clone(),
            next_id: w.next_id,
            finalized,
            created,
        };
        w.start(seg);
        Counters::add(&self.counters.segments_created, 1);
        self.submit_seal(job);
        Ok(())
    }

    /// The payload of record `id`, `None` if the log does not hold it.
    pub(crate) fn read(&self, id: u64) -> AofResult<Option<Bytes>> {
        if id < self.first_id.load(Ordering::Acquire) {
            return Ok(None);
        }
        for _ in 0..2 {
            if let Some(slot) = self.cache.find_pinned(id) {
                let _pin = TempPin {
                    shared: self,
                    slot: &slot,
                };
                let view = self.view(&slot)?;
                return self
                    .read_in(&view, id)?
                    .map(|(header, stored)| self.codec.decode(&header, stored))
                    .transpose();
            }
            let mut w = lock(&self.writer);
            if id >= w.next_id {
                return Ok(None);
            }
            if id >= w.seg.base_id {
                let (header, stored) = w.read(id)?;
                drop(w);
                return self.codec.decode(&header, stored).map(Some);
            }
            // Below the active segment and not (or no longer) among the
            // finalized ones: either a rollover raced with this read (look
            // again) or the id is gone.
        }
        Ok(None)
    }

    /// The open (mapped) segment of `slot`, through the cache. In a
    /// read-only view, a file that is gone was removed by the writer since
    /// the view was opened (retention, `truncate_before`, archiving): the
    /// view is outdated, and a new one sees what became of it.
    pub(crate) fn open_segment(
        &self,
        slot: &std::sync::Arc<SegmentSlot>,
    ) -> AofResult<std::sync::Arc<crate::segment::FinalizedSegment>> {
        match self.cache.open(slot, self.fs.as_ref(), &self.counters) {
            Err(AofError::MissingSegment { path, .. }) if self.read_only => Err(AofError::ViewOutdated {
                path,
                reason: "the writer removed this segment file (retention, truncate_before or archiving)",
            }),
            other => other,
        }
    }

    /// What to read `slot`'s records from: its mapped file, or the archive.
    pub(crate) fn view(&self, slot: &std::sync::Arc<SegmentSlot>) -> AofResult<SegmentView> {
        match &slot.archived {
            Some(a) => Ok(SegmentView::Archived(a.clone())),
            None => self.open_segment(slot).map(SegmentView::Local),
        }
    }

    /// Record `id` from `view`; `None` if it does not hold it. A failed
    /// read of an archived segment is the caller's error only.
    pub(crate) fn read_in(&self, view: &SegmentView, id: u64) -> AofResult<Option<(RecordHeader, Bytes)>> {
        match view {
            SegmentView::Local(seg) => seg.read(id),
            SegmentView::Archived(a) => {
                let remote = self.remote.as_ref().ok_or(AofError::ArchiveNotConfigured)?;
                let before = a.cached_bytes();
                let record = a.read(remote, id)?;
                self.after_archived_read(a, a.cached_bytes() != before);
                Ok(record)
            }
        }
    }

    /// Deletes the files of removed segments no reader is positioned in.
    pub(crate) fn reap_doomed(&self) {
        self.cache.reap(self.fs.as_ref(), &self.dir);
    }
}

/// A pin held for the length of one read by id.
struct TempPin<'a> {
    shared: &'a Shared,
    slot: &'a std::sync::Arc<SegmentSlot>,
}

impl Drop for TempPin<'_> {
    fn drop(&mut self) {
        if self.slot.unpin() {
            self.shared.reap_doomed();
        }
    }
}
