//! Sealing a full segment off the append path.
//!
//! A rollover, under the writer lock, only completes the full segment in the
//! page cache (records, offset table, footer: `Writer::write_footer`), makes
//! it readable (its slot joins the segment cache), and starts the next
//! segment's file (header synced, renamed into place). What costs fsyncs is
//! a [`SealJob`], run by the sealer thread while appends go on:
//!
//! 1. `sync_all` of the full segment (data, footer, length; the data was
//!    mostly written back already, see `FileHandle::start_writeback`), then
//!    its records are published durable and the recovery point moves to its
//!    end;
//! 2. the directory synced (the new segment's name);
//! 3. the index: the full segment finalized, the new one added, synced.
//!
//! # Invariants
//!
//! * At most one job is pending: a rollover first finishes the previous
//!   one. So the index never holds two active segments, and recovery meets
//!   at most one unsealed segment followed by one unindexed file.
//! * No record of the new segment is reported durable before its job is
//!   done: a sync round waits for the job ([`Shared::finish_sealing`])
//!   before it publishes. A crash before that loses only records nobody was
//!   told are durable; recovery cuts them (an unsynced footer or data page
//!   of the full segment is a torn tail past the recovery point) and sets
//!   the unindexed next file aside.
//! * The job takes no lock the writer lock is held around (only the index's,
//!   the manifest's and the durable watermark's), so the writer may wait for
//!   it; and any thread waiting for it runs it itself if the sealer thread
//!   has not taken it yet, so a stopped sealer never leaves a job behind.
//! * Operations that read or change index entries of finalized segments
//!   (`truncate_after`, removals, verification, close) finish the job first;
//!   removals also never take a segment at or past [`Shared::sealed_next`].

use crate::fs::FileHandle;
use crate::locks::lock;
use crate::shared::Shared;
use aof_record::{AofError, AofResult, SegmentEntry};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

/// The durable half of a rollover (see the module docs).
pub(crate) struct SealJob {
    /// The full segment's file, footer written, not synced.
    pub(crate) file: Arc<dyn FileHandle>,
    pub(crate) path: PathBuf,
    /// The id after the full segment's last record.
    pub(crate) next_id: u64,
    /// The full segment's finalized index entry.
    pub(crate) finalized: SegmentEntry,
    /// The new active segment's index entry.
    pub(crate) created: SegmentEntry,
}

/// The pending seal job, and whether one is running.
#[derive(Default)]
pub(crate) struct Sealing {
    job: Option<SealJob>,
    running: bool,
    stop: bool,
}

impl Shared {
    /// Hands `job` to the sealer. The caller holds the writer lock and has
    /// finished the previous job.
    pub(crate) fn submit_seal(&self, job: SealJob) {
        let mut s = lock(&self.sealing);
        debug_assert!(s.job.is_none() && !s.running, "one seal job at a time");
        s.job = Some(job);
        self.sealing_cv.notify_all();
    }

    /// Returns once no seal job is pending or running, running the pending
    /// one itself if the sealer has not taken it. A failed job poisons the
    /// log: the caller checks [`Shared::is_poisoned`] (the thread that ran
    /// it also gets its error).
    pub(crate) fn finish_sealing(&self) -> AofResult<()> {
        let mut s = lock(&self.sealing);
        loop {
            if let Some(job) = s.job.take() {
                s.running = true;
                drop(s);
                let result = self.run_seal(job);
                s = lock(&self.sealing);
                s.running = false;
                self.sealing_cv.notify_all();
                result?;
                continue;
            }
            if !s.running {
                return Ok(());
            }
            s = self.sealing_cv.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// The sealer thread: runs each job as it comes, until stopped.
    pub(crate) fn sealer_loop(&self) {
        let mut s = lock(&self.sealing);
        loop {
            if s.job.is_some() {
                drop(s);
                if let Err(e) = self.finish_sealing() {
                    log::error!("sealing a segment of {}: {e}", self.dir.display());
                }
                s = lock(&self.sealing);
                continue;
            }
            if s.stop {
                return;
            }
            s = self.sealing_cv.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Tells the sealer thread to stop once no job is pending.
    pub(crate) fn stop_sealer(&self) {
        lock(&self.sealing).stop = true;
        self.sealing_cv.notify_all();
    }

    fn run_seal(&self, job: SealJob) -> AofResult<()> {
        self.seal_steps(&job).map_err(|e| self.poison(e))
    }

    fn seal_steps(&self, job: &SealJob) -> AofResult<()> {
        if self.is_poisoned() {
            return Err(AofError::Poisoned);
        }
        job.file.sync_all().map_err(|e| AofError::io(&job.path, e))?;
        self.durable.publish(job.next_id);
        self.manifest.set_recovery_point(job.next_id)?;
        self.fs
            .sync_dir(&self.dir)
            .map_err(|e| AofError::io(&self.dir, e))?;
        self.index.update_entry(&job.finalized)?;
        self.index.add_entry(&job.created)?;
        self.index.sync()?;
        self.sealed_next.fetch_max(job.next_id, Ordering::AcqRel);
        crate::metrics::Counters::add(&self.counters.segments_finalized, 1);
        self.durable.wake();
        if self.archiving {
            lock(&self.wake).archive_requested = true;
            self.wake_cv.notify_all();
        }
        Ok(())
    }
}
