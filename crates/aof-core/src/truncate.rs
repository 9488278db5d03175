//! Removing records: retention (TTL), `truncate_before` and `truncate_after`.
//!
//! # Crash safety
//!
//! The index is the commit point. Removing old segments (retention,
//! `truncate_before`): the segment leaves the in-memory map (new readers no
//! longer find it), its index entry is removed and the index synced, then
//! its file is deleted — at once, or when the last reader positioned in it
//! moves on. A crash after the index commit leaves a file below the first
//! indexed segment, which recovery deletes.
//!
//! `truncate_after(id)` keeps a valid prefix of the log at every step:
//! 1. the kept part of the segment holding `id + 1` is copied to a temp file
//!    and synced (when that segment is finalized);
//! 2. every later segment is removed, newest first (index entry, then file);
//! 3. the segment's own entry is removed, the copy renamed over its file, the
//!    directory synced, and it re-enters the index as the active segment.
//!
//! A crash between steps leaves a shorter log whose recovery completes
//! or adopts what it finds; it never leaves a hole.

use crate::engine::{Aof, Inner, SegmentSlot, lock};
use crate::fs::{FileHandleExt, OpenMode};
use crate::segment::{FinalizedSegment, digest_of, path_in};
use aof_record::record::decode_record;
use aof_record::segment::segment_file_name;
use aof_record::{AofError, AofResult, SegmentEntry, SegmentHeader};
use std::sync::Arc;
use std::sync::PoisonError;
use std::sync::atomic::Ordering;

impl Inner {
    /// Removes finalized segments from the start of the log while `doomed(slot)`
    /// says so. Returns how many were removed.
    pub(crate) fn remove_prefix(&self, doomed: &dyn Fn(&SegmentSlot) -> bool) -> AofResult<usize> {
        let mut removed = 0;
        loop {
            let slot = {
                let mut segs = self.segments.write().unwrap_or_else(PoisonError::into_inner);
                let Some((&base, slot)) = segs.iter().next() else {
                    break;
                };
                if !doomed(slot) {
                    break;
                }
                let slot = slot.clone();
                segs.remove(&base);
                slot.doomed.store(true, Ordering::Release);
                // Segments are contiguous: the next one starts right after.
                self.first_id.fetch_max(slot.last_id + 1, Ordering::AcqRel);
                slot
            };
            self.index.remove_entry(slot.base_id)?;
            self.index.sync()?;
            self.uncache(&slot);
            lock(&self.doomed).push(slot);
            removed += 1;
        }
        self.reap_doomed();
        Ok(removed)
    }

    /// Deletes the files of removed segments that no reader is positioned in.
    pub(crate) fn reap_doomed(&self) {
        let ready: Vec<Arc<SegmentSlot>> = {
            let mut d = lock(&self.doomed);
            let (ready, waiting): (Vec<_>, Vec<_>) =
                d.drain(..).partition(|s| s.pins.load(Ordering::Acquire) == 0);
            *d = waiting;
            ready
        };
        if ready.is_empty() {
            return;
        }
        for slot in &ready {
            if slot.replaced.load(Ordering::Acquire) {
                continue; // its path now holds the rewritten segment
            }
            if let Err(e) = self.fs.remove_file(&slot.path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                log::warn!("removing {}: {e} (recovery will retry)", slot.path.display());
            }
        }
        if let Err(e) = self.fs.sync_dir(&self.dir) {
            log::warn!("syncing {}: {e}", self.dir.display());
        }
    }

    /// Removes finalized segments whose newest record is older than `ttl_seconds`.
    pub(crate) fn expire(&self, ttl_seconds: u64) -> AofResult<usize> {
        let now = self.time.now_us();
        let cutoff = now.saturating_sub(ttl_seconds.saturating_mul(1_000_000));
        let expired: Vec<u64> = self
            .index
            .get_all_segments()?
            .into_iter()
            .filter(|e| e.finalized_at.is_some_and(|f| f < cutoff))
            .map(|e| e.base_id)
            .collect();
        self.remove_prefix(&|slot| expired.binary_search(&slot.base_id).is_ok())
    }
}

impl Aof {
    /// Runs retention once now: removes finalized segments whose newest record
    /// is older than `ttl_seconds` (never the active segment; files of
    /// segments a reader is positioned in are deleted when it leaves).
    /// Returns how many segments were removed. The background task calls
    /// this periodically when a TTL is configured. Reads of removed ids
    /// return `None`.
    pub fn run_retention(&self) -> AofResult<usize> {
        match self.inner.config.ttl_seconds() {
            Some(ttl) => self.inner.expire(ttl),
            None => Ok(0),
        }
    }

    /// Drops every whole segment whose records are all below `id` (log
    /// compaction, a Raft purge). The active segment is never dropped, so
    /// records below `id` may remain. Returns how many segments went.
    pub fn truncate_before(&self, id: u64) -> AofResult<usize> {
        self.inner.check_open()?;
        self.inner.remove_prefix(&|slot| slot.last_id < id)
    }

    /// Drops every record after `id`, so the next append gets `id + 1`
    /// (Raft conflict resolution). Durable before it returns. `id` must be
    /// at least `first_id() - 1`.
    pub fn truncate_after(&self, id: u64) -> AofResult<()> {
        let inner = &self.inner;
        inner.check_open()?;
        let first = inner.first_id.load(Ordering::Acquire);
        let mut w = lock(&inner.writer);
        if id.checked_add(1).is_none_or(|n| n >= w.next_id) {
            return Ok(());
        }
        if id + 1 < first {
            return Err(AofError::OutOfRange {
                id,
                first,
                next: w.next_id,
            });
        }
        inner.write_out(&mut w)?;
        let result = if id + 1 >= w.seg.base_id {
            inner.rewind_active(&mut w, id + 1)
        } else {
            inner.rewind_into_finalized(&mut w, id + 1)
        };
        let result = result.map_err(|e| inner.poison(e));
        // What readers may see ends at the new end.
        let next = w.next_id;
        inner.durable_next.fetch_min(next, Ordering::AcqRel);
        inner.appended_next.fetch_min(next, Ordering::AcqRel);
        drop(w);
        inner.wake_tails();
        result
    }
}

impl Inner {
    /// Cuts the active segment so that `keep_next` is its next id.
    fn rewind_active(&self, w: &mut crate::engine::Writer, keep_next: u64) -> AofResult<()> {
        let keep = (keep_next - w.seg.base_id) as usize;
        let new_end = u64::from(w.seg.offsets[keep]);
        // The file is about to become shorter than the map: stop using it first.
        w.seg.map = None;
        // Never mapped, so it can be shortened in place; set_len is one
        // metadata change, so a crash leaves either length.
        w.seg
            .file
            .set_len(new_end)
            .and_then(|()| w.seg.file.sync_all())
            .map_err(|e| AofError::io(&w.seg.path, e))?;
        let data = w
            .seg
            .file
            .read_vec_at(new_end as usize, 0)
            .map_err(|e| AofError::io(&w.seg.path, e))?;
        w.seg.offsets.truncate(keep);
        w.unsealed_from = keep;
        w.seg.written = new_end;
        w.seg.crc = digest_of(&data);
        w.next_id = keep_next;
        if let Some(&last) = w.seg.offsets.last()
            && let Ok(rec) = decode_record(&data[last as usize..], self.config.max_record_size())
        {
            w.last_ts = w.last_ts.max(rec.header.timestamp_us);
        }
        let last = keep_next.checked_sub(1).filter(|l| *l >= w.seg.base_id);
        self.index.update_segment_tail(w.seg.base_id, last, new_end)?;
        self.index.sync()?;
        Ok(())
    }

    /// `keep_next` lies in a finalized segment: rewrite that segment's kept
    /// prefix as the new active segment and drop everything after it.
    fn rewind_into_finalized(&self, w: &mut crate::engine::Writer, keep_next: u64) -> AofResult<()> {
        let Some(slot) = self.finalized_slot(keep_next) else {
            return Err(AofError::OutOfRange {
                id: keep_next - 1,
                first: self.first_id.load(Ordering::Acquire),
                next: w.next_id,
            });
        };
        let seg = FinalizedSegment::open(
            self.fs.as_ref(),
            &slot.path,
            slot.base_id,
            self.config.max_record_size(),
        )?;
        let keep = keep_next - slot.base_id;
        let cut = seg
            .footer()
            .offset_of(seg.bytes(), keep)
            .ok_or(AofError::SegmentMismatch {
                segment: slot.base_id,
                what: "offset table entry",
                expected: keep,
                actual: seg.record_count(),
            })?;
        let prefix = seg.bytes().slice(..cut as usize);
        let header = SegmentHeader::decode(&prefix).map_err(|source| AofError::InvalidSegmentFile {
            path: slot.path.clone(),
            source,
        })?;
        // 1. The kept prefix, as a temp file.
        let name = segment_file_name(slot.base_id);
        let tmp = path_in(&self.dir, &format!("{name}.tmp"));
        if self.fs.exists(&tmp).map_err(|e| AofError::io(&tmp, e))? {
            self.fs.remove_file(&tmp).map_err(|e| AofError::io(&tmp, e))?;
        }
        let file = self
            .fs
            .open(&tmp, OpenMode::CreateNew)
            .map_err(|e| AofError::io(&tmp, e))?;
        file.write_all_at(&prefix, 0)
            .and_then(|()| file.sync_all())
            .map_err(|e| AofError::io(&tmp, e))?;
        // 2. Every later segment, newest first: the active one, then finalized ones.
        let later: Vec<Arc<SegmentSlot>> = {
            let mut segs = self.segments.write().unwrap_or_else(PoisonError::into_inner);
            let doomed: Vec<u64> = segs.range(slot.base_id..).map(|(b, _)| *b).collect();
            doomed.iter().filter_map(|b| segs.remove(b)).collect()
        };
        self.index.remove_entry(w.seg.base_id)?;
        self.index.sync()?;
        self.fs
            .remove_file(&w.seg.path)
            .map_err(|e| AofError::io(&w.seg.path, e))?;
        for s in later.iter().rev() {
            s.doomed.store(true, Ordering::Release);
            if s.base_id == slot.base_id {
                s.replaced.store(true, Ordering::Release);
            }
            self.index.remove_entry(s.base_id)?;
            self.index.sync()?;
            self.uncache(s);
            lock(&self.doomed).push(s.clone());
        }
        self.reap_doomed();
        // 3. The prefix replaces the segment's file and becomes the active segment.
        let path = path_in(&self.dir, &name);
        self.fs.rename(&tmp, &path).map_err(|e| AofError::io(&path, e))?;
        self.fs
            .sync_dir(&self.dir)
            .map_err(|e| AofError::io(&self.dir, e))?;
        let mut entry = SegmentEntry::new_active(slot.base_id, header.created_at_us, name);
        let last = keep_next.checked_sub(1).filter(|l| *l >= slot.base_id);
        entry.set_tail(last, cut)?;
        self.index.add_entry(&entry)?;
        self.index.sync()?;
        let offsets: Vec<u32> = (0..keep)
            .map(|i| seg.footer().offset_of(seg.bytes(), i).unwrap_or(0) as u32)
            .collect();
        let file = self
            .fs
            .open(&path, OpenMode::ReadWrite)
            .map_err(|e| AofError::io(&path, e))?;
        w.seg = crate::engine::ActiveSegment {
            base_id: slot.base_id,
            path,
            file,
            written: cut,
            offsets,
            crc: digest_of(&prefix),
            created_at: header.created_at_us,
            prealloc_asked: false,
            map: None,
        };
        w.next_id = keep_next;
        w.buf.clear();
        w.unsealed_from = keep as usize;
        Ok(())
    }
}
