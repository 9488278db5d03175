//! Removing records: retention (TTL), `truncate_before` and `truncate_after`.
//!
//! # Crash safety
//!
//! The index is the commit point. Removing old segments (retention,
//! `truncate_before`): the segment leaves the in-memory map (new readers no
//! longer find it), its index entry is removed and the index synced, then
//! its file is deleted — at once, or when the last reader positioned in it
//! moves on. A crash after the index commit leaves a file below the first
//! indexed segment, which recovery deletes. Removals run one at a time (the
//! background retention beside `run_retention` or `truncate_before`), so
//! they commit in log order and a returned one has every removal before it
//! committed.
//!
//! `truncate_after(id)` keeps a valid prefix of the log at every step:
//! 1. the kept part of the segment holding `id + 1` is copied to a temp file
//!    and synced (when that segment is finalized);
//! 2. every later segment is removed, newest first (index entry, then file,
//!    at once even when a reader is positioned in it: its ids and file name
//!    are about to be reused; the reader's memory map outlives the name, and
//!    the reader looks again);
//! 3. the segment's own entry is removed, the copy renamed over its file, the
//!    directory synced, and it re-enters the index as the active segment.
//!
//! A crash between steps leaves a shorter log whose recovery completes
//! or adopts what it finds; it never leaves a hole.
//!
//! Archived segments are removed the same way; their archive objects are
//! deleted after the index commit. A crash (or an archive outage) before
//! the delete leaves an object no entry names, which the archiver's sweep
//! on the next open deletes. `truncate_after` into an archived segment
//! first fetches it whole.

use crate::cache::SegmentSlot;
use crate::fs::{FileHandleExt, OpenMode};
use crate::layout::{path_in, segment_file_name, segment_temp_name};
use crate::locks::lock;
use crate::segment::{FinalizedSegment, digest_of};
use crate::shared::Shared;
use crate::writer::{ActiveSegment, Writer};
use aof_record::record::decode_record;
use aof_record::{AofError, AofResult, FORMAT_MAX_RECORD_SIZE, SegmentEntry, SegmentHeader};
use std::sync::atomic::Ordering;

impl Shared {
    /// Removes finalized segments from the start of the log while `doomed(slot)`
    /// says so. Returns how many were removed.
    pub(crate) fn remove_prefix(&self, doomed: &dyn Fn(&SegmentSlot) -> bool) -> AofResult<usize> {
        // One removal at a time: another one's segment taken out before
        // ours must have its removal committed before ours deletes a file,
        // or a crash leaves it indexed in front of a hole.
        let _in_order = lock(&self.removing);
        // A segment still being sealed has no finalized index entry yet.
        self.finish_sealing()?;
        let sealed = |slot: &SegmentSlot| slot.last_id < self.sealed_next.load(Ordering::Acquire);
        let doomed = &|slot: &SegmentSlot| sealed(slot) && doomed(slot);
        let mut removed = 0;
        let mut objects = Vec::new();
        let result = (|| {
            let _g = lock(&self.archive_lock);
            while let Some(slot) = self.cache.pop_first_if(doomed, &self.first_id) {
                self.index.remove_entry(slot.base_id)?;
                self.index.sync()?;
                if let Some(a) = &slot.archived {
                    objects.push(a.key.clone());
                }
                self.cache.doom(slot);
                removed += 1;
            }
            Ok(())
        })();
        // Committed removals' objects go even if a later removal failed.
        crate::archiver::delete_objects(self, objects);
        self.reap_doomed();
        result.map(|()| removed)
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

impl Shared {
    /// Drops every record after `id`, so the next append gets `id + 1`.
    /// Durable before it returns. `id` must be at least `first_id - 1`.
    pub(crate) fn truncate_after(&self, id: u64) -> AofResult<()> {
        self.check_writable()?;
        let first = self.first_id.load(Ordering::Acquire);
        let mut w = lock(&self.writer);
        // The index entries it rewrites must be those of a finished seal.
        self.finish_sealing()?;
        self.check_writable()?;
        let _archive = lock(&self.archive_lock);
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
        self.write_out(&mut w)?;
        w.truncations += 1;
        // The recovery point must never name ids the log no longer holds:
        // lower it before anything is removed.
        let keep_next = id + 1;
        if self.manifest.recovery_next() > keep_next {
            self.manifest
                .set_recovery_point(keep_next)
                .map_err(|e| self.poison(e))?;
        }
        let result = if id + 1 >= w.seg.base_id {
            self.rewind_active(&mut w, id + 1)
        } else {
            self.rewind_into_finalized(&mut w, id + 1)
        };
        let result = result.map_err(|e| self.poison(e));
        // What readers may see ends at the new end.
        let next = w.next_id;
        self.durable.lower(next);
        self.appended_next.fetch_min(next, Ordering::AcqRel);
        drop(w);
        self.durable.wake();
        result
    }

    /// Cuts the active segment so that `keep_next` is its next id.
    fn rewind_active(&self, w: &mut Writer, keep_next: u64) -> AofResult<()> {
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
            && let Ok(rec) = decode_record(&data[last as usize..], FORMAT_MAX_RECORD_SIZE)
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
    fn rewind_into_finalized(&self, w: &mut Writer, keep_next: u64) -> AofResult<()> {
        let Some(slot) = self.cache.find(keep_next) else {
            return Err(AofError::OutOfRange {
                id: keep_next - 1,
                first: self.first_id.load(Ordering::Acquire),
                next: w.next_id,
            });
        };
        // Pinned while its bytes are fetched and mapped: an archived
        // segment's cache file is never dropped under a pin.
        slot.pins.fetch_add(1, Ordering::AcqRel);
        let seg = match &slot.archived {
            Some(_) => self
                .fetch_whole(&slot)
                .and_then(|path| FinalizedSegment::open(self.fs.as_ref(), &path, slot.base_id)),
            None => FinalizedSegment::open(self.fs.as_ref(), &slot.path, slot.base_id),
        };
        slot.pins.fetch_sub(1, Ordering::AcqRel);
        let seg = seg?;
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
        let tmp = path_in(&self.dir, &segment_temp_name(slot.base_id));
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
        let later = self.cache.split_off(slot.base_id);
        let objects: Vec<_> = later
            .iter()
            .filter_map(|s| s.archived.as_ref().map(|a| a.key.clone()))
            .collect();
        self.index.remove_entry(w.seg.base_id)?;
        self.index.sync()?;
        self.fs
            .remove_file(&w.seg.path)
            .map_err(|e| AofError::io(&w.seg.path, e))?;
        for s in later.into_iter().rev() {
            // Its records are gone: a reader pinned in it must look again
            // (finding 1: it kept returning truncated payloads). The file
            // goes now, not when the last pin drops: new records will reuse
            // these ids and a new segment this base id and file name, which
            // a deferred removal would delete. A reader's open segment is a
            // memory map, which outlives the file's name.
            s.replaced.store(true, Ordering::Release);
            self.index.remove_entry(s.base_id)?;
            self.index.sync()?;
            if s.base_id != slot.base_id {
                // (The segment cut at `keep_next` is renamed over below.)
                match self.fs.remove_file(&s.path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(AofError::io(&s.path, e)),
                }
            }
            self.cache.doom(s);
        }
        self.fs
            .sync_dir(&self.dir)
            .map_err(|e| AofError::io(&self.dir, e))?;
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
        crate::archiver::delete_objects(self, objects);
        let offsets: Vec<u32> = (0..keep)
            .map(|i| seg.footer().offset_of(seg.bytes(), i).unwrap_or(0) as u32)
            .collect();
        let file = self
            .fs
            .open(&path, OpenMode::ReadWrite)
            .map_err(|e| AofError::io(&path, e))?;
        w.seg = ActiveSegment {
            base_id: slot.base_id,
            path,
            file,
            written: cut,
            offsets,
            crc: digest_of(&prefix),
            created_at: header.created_at_us,
            prealloc_asked: false,
            map: None,
            absent: false,
            io: std::sync::Arc::default(),
        };
        w.next_id = keep_next;
        w.buf.clear();
        w.unsealed_from = keep as usize;
        Ok(())
    }
}
