//! Archival: moving the oldest finalized segments to the archive, the
//! repairs it makes when the log opens, and the bookkeeping of archived
//! reads (a segment fetched whole, the cache's bounds).
//!
//! # Order of a segment's archival
//!
//! 1. the local file is compressed into an archive object (a temporary
//!    file, checked against the index's size and checksum of the segment);
//! 2. the object is stored under `<log id>/<segment>.zst`, unless the same
//!    object is there already (an upload before a crash: reused; a
//!    different one of this log's: replaced);
//! 3. a `head` checks its size and CRC-64/NVME;
//! 4. the index commits Finalized → ArchivedRemote (key, archived_at,
//!    compressed size and checksum) and is synced;
//! 5. the local file is removed (once no reader is positioned in it) and the
//!    directory synced.
//!
//! A crash at any step leaves the local file in place until step 4 has
//! committed: local durability never depends on the archive. On open,
//! recovery removes the local file of a committed segment, and the archiver
//! sweeps this log's objects (keys carrying its identity; other logs'
//! objects are never touched): an object of a still-finalized segment is
//! reused or replaced when that segment is archived, and any other object of
//! this log (an upload whose segment was removed, a removal's object whose
//! delete did not happen) is deleted.
//!
//! Failures (an outage, a refused upload) are typed, counted in
//! [`crate::ArchiveMetrics::failures`], logged, and retried with a backoff
//! that doubles up to 64 times [`crate::AofOptions::archive_retry_backoff`].

use crate::archive_cache::Remote;
use crate::cache::SegmentSlot;
use crate::fs::{FileHandle, FileSystem, OpenMode};
use crate::layout::{archive_key, archive_prefix, parse_archive_key};
use crate::locks::lock;
use crate::shared::Shared;
use aof_archive_format::{ObjectSummary, SeekableWriter, WriterOptions};
use aof_record::archive::{ArchiveError, ArchiveKey, ObjectSource};
use aof_record::{AofError, AofResult, SegmentStatus};
use std::io::{BufWriter, Read, Seek};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

/// The archiver thread: sweeps this log's objects once, then archives
/// whenever more finalized segments are local than `archive_threshold`.
pub(crate) fn archiver_loop(shared: &Shared) {
    let mut swept = false;
    let mut backoff = shared.archive_backoff;
    loop {
        if lock(&shared.wake).stop {
            return;
        }
        let result = (|| {
            if !swept {
                sweep(shared)?;
                swept = true;
            }
            let excess = shared
                .cache
                .local()
                .0
                .saturating_sub(shared.config.archive_threshold());
            archive_oldest(shared, excess as usize, &mut |_, _| {})
        })();
        let (wait, failed) = match result {
            Ok(_) => {
                backoff = shared.archive_backoff;
                (Duration::from_secs(1), false)
            }
            Err(e) => {
                shared.counters.archive.failures.fetch_add(1, Ordering::Relaxed);
                log::warn!(
                    "archiving {}: {e}; retrying in {} ms",
                    shared.dir.display(),
                    backoff.as_millis()
                );
                let wait = backoff;
                backoff = (backoff * 2).min(shared.archive_backoff * 64);
                (wait, true)
            }
        };
        // A newly finalized segment cuts an idle wait short, never a
        // failure's backoff; stopping cuts either.
        let deadline = Instant::now() + wait;
        let mut wake = lock(&shared.wake);
        while !wake.stop && (failed || !wake.archive_requested) {
            let Some(left) = deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
            else {
                break;
            };
            wake = shared
                .wake_cv
                .wait_timeout(wake, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        wake.archive_requested = false;
    }
}

/// Archives up to `count` of the oldest finalized segments; `progress` gets
/// (done, count) after each. Returns how many were archived.
pub(crate) fn archive_oldest(
    shared: &Shared,
    count: usize,
    progress: &mut dyn FnMut(u64, u64),
) -> AofResult<usize> {
    if count == 0 {
        return Ok(0);
    }
    let remote = shared.remote.as_ref().ok_or(AofError::ArchiveNotConfigured)?;
    let entries = shared.index.get_segments_for_archiving(count)?;
    let total = entries.len() as u64;
    let mut done = 0;
    for e in entries {
        if lock(&shared.wake).stop {
            break;
        }
        archive_one(shared, remote, e.base_id)?;
        done += 1;
        progress(done as u64, total);
    }
    Ok(done)
}

/// Archives finalized segment `base_id`, in the order the module describes.
fn archive_one(shared: &Shared, remote: &Remote, base_id: u64) -> AofResult<()> {
    let _uploading = lock(&remote.upload_lock);
    let started = Instant::now();
    let Some(entry) = shared.index.get_entry(base_id)? else {
        return Ok(());
    };
    let Some(slot) = shared.cache.find(entry.base_id).filter(|s| s.archived.is_none()) else {
        return Ok(());
    };
    if entry.status != SegmentStatus::Finalized {
        return Ok(());
    }
    let key = ArchiveKey::new(archive_key(shared.manifest.log_id(), base_id))?;
    // 1. Compress, checking what is read against the index.
    let options = WriterOptions {
        level: shared.config.archive_compression_level(),
        ..WriterOptions::default()
    };
    let (object, summary) = compress(shared.fs.as_ref(), &slot.path, options)?;
    let expected = entry
        .uncompressed_checksum
        .unwrap_or(summary.uncompressed_checksum);
    if summary.uncompressed_size != entry.original_size || summary.uncompressed_checksum != expected {
        return Err(AofError::SegmentMismatch {
            segment: base_id,
            what: "checksum of the segment file read for archival",
            expected,
            actual: summary.uncompressed_checksum,
        });
    }
    // 2. Store (or reuse an identical upload), 3. verify by head.
    let storage = remote.storage.clone();
    let (k, size, crc) = (key.clone(), summary.compressed_size, summary.compressed_checksum);
    remote.run(async move {
        let source = ObjectSource::from_file(object)
            .map_err(|e| ArchiveError::Io {
                key: k.clone(),
                source: e,
            })?
            .with_checksum(crc);
        match storage.head(&k).await {
            Ok(meta) if meta.size == size && meta.checksum == crc => {
                log::info!("reusing archive object {k}, uploaded before a crash");
            }
            Ok(_) => {
                log::warn!("replacing archive object {k}: it is not this segment's");
                storage.delete(&k).await?;
                storage.store(&k, source).await?;
            }
            Err(ArchiveError::NotFound { .. }) => {
                storage.store(&k, source).await?;
            }
            Err(e) => return Err(e),
        }
        let meta = storage.head(&k).await?;
        if meta.size != size || meta.checksum != crc {
            return Err(ArchiveError::ChecksumMismatch {
                key: k,
                expected: crc,
                actual: meta.checksum,
            });
        }
        Ok(())
    })??;
    // 4. Commit, unless the segment changed meanwhile (removed, truncated).
    let commit = {
        let _g = lock(&shared.archive_lock);
        match shared.index.get_entry(base_id)? {
            Some(now)
                if now == entry && shared.cache.find(base_id).is_some_and(|s| Arc::ptr_eq(&s, &slot)) =>
            {
                let archived = now.archive(
                    key.as_str(),
                    summary.compressed_size,
                    summary.compressed_checksum,
                    shared.time.now_us(),
                )?;
                shared.index.update_entry(&archived)?;
                shared.index.sync()?;
                remote.metrics.record_upload(
                    started.elapsed(),
                    summary.compressed_size,
                    summary.uncompressed_size,
                );
                // 5. The archived slot replaces the local one; the file goes
                // once no reader is positioned in it.
                let new = SegmentSlot::for_archived(&shared.dir, &archived)?;
                if let Some(old) = shared.cache.replace(new) {
                    shared.cache.doom(old);
                }
                true
            }
            _ => false,
        }
    };
    if !commit {
        let named = shared
            .index
            .get_entry(base_id)?
            .is_some_and(|e| e.archive_key.as_deref() == Some(key.as_str()));
        if !named {
            log::info!("segment {base_id} changed while it was archived; deleting its object {key}");
            delete_objects(shared, vec![key]);
        }
        return Ok(());
    }
    shared.reap_doomed();
    *lock(&shared.archived_gen) += 1;
    shared.archived_cv.notify_all();
    Ok(())
}

/// Compresses the segment file at `path` (read through `fs`) into an
/// anonymous temporary file, with bounded memory.
fn compress(
    fs: &dyn FileSystem,
    path: &Path,
    options: WriterOptions,
) -> AofResult<(std::fs::File, ObjectSummary)> {
    let file = fs.open(path, OpenMode::Read).map_err(|e| AofError::io(path, e))?;
    let len = file.len().map_err(|e| AofError::io(path, e))?;
    let tmp = tempfile::tempfile().map_err(|e| AofError::io(std::env::temp_dir(), e))?;
    let mut w = SeekableWriter::new(BufWriter::with_capacity(1 << 20, tmp), options).map_err(|e| {
        AofError::ArchivedSegment {
            segment: 0,
            source: Box::new(e),
        }
    })?;
    let mut reader = HandleReader { file, at: 0, len };
    std::io::copy(&mut reader, &mut w).map_err(|e| AofError::io(path, e))?;
    let (buf, summary) = w.finish().map_err(|e| AofError::io(path, e))?;
    let mut out = buf
        .into_inner()
        .map_err(|e| AofError::io(std::env::temp_dir(), e.into_error()))?;
    out.rewind().map_err(|e| AofError::io(std::env::temp_dir(), e))?;
    Ok((out, summary))
}

/// A [`FileHandle`] read from start to end.
struct HandleReader {
    file: Arc<dyn FileHandle>,
    at: u64,
    len: u64,
}

impl Read for HandleReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.len - self.at).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// Deletes this log's objects no index entry will use: every object under
/// the log's prefix except those of archived entries and of finalized
/// segments (an upload before a crash, reused or replaced when archived).
pub(crate) fn sweep(shared: &Shared) -> AofResult<u64> {
    let remote = shared.remote.as_ref().ok_or(AofError::ArchiveNotConfigured)?;
    // No upload in flight meanwhile: its object is not yet in the index.
    let _uploading = lock(&remote.upload_lock);
    let log = shared.manifest.log_id();
    // `list` takes the prefix without its trailing `/`.
    let prefix = ArchiveKey::new(archive_prefix(log).trim_end_matches('/'))?;
    let storage = remote.storage.clone();
    let listed = remote.run(async move { storage.list(Some(&prefix)).await })??;
    let entries = shared.index.get_all_segments()?;
    let mut orphans = Vec::new();
    for object in listed {
        let Some(base) = parse_archive_key(log, object.key.as_str()) else {
            continue; // not one of this log's objects
        };
        let used = entries.iter().any(|e| {
            e.base_id == base
                && match e.status {
                    SegmentStatus::Finalized => true,
                    s if s.is_archived() => e.archive_key.as_deref() == Some(object.key.as_str()),
                    _ => false,
                }
        });
        if !used {
            log::info!(
                "removing archive object {}: no segment of this log uses it",
                object.key
            );
            orphans.push(object.key);
        }
    }
    let storage = remote.storage.clone();
    let n = orphans.len() as u64;
    remote.run(async move {
        for k in orphans {
            storage.delete(&k).await?;
        }
        Ok::<_, ArchiveError>(())
    })??;
    remote.metrics.objects_deleted.fetch_add(n, Ordering::Relaxed);
    Ok(n)
}

/// Deletes `keys` from the archive in the background, after their index
/// entries' removal was committed: retried a few times; what still fails
/// is an orphan the next open's sweep removes.
pub(crate) fn delete_objects(shared: &Shared, keys: Vec<ArchiveKey>) {
    let Some(remote) = &shared.remote else { return };
    if keys.is_empty() {
        return;
    }
    let storage = remote.storage.clone();
    let metrics = remote.metrics.clone();
    let backoff = shared.archive_backoff;
    remote.spawn(async move {
        for k in keys {
            let mut wait = backoff;
            for attempt in 0..4 {
                match storage.delete(&k).await {
                    Ok(()) => {
                        metrics.objects_deleted.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    Err(e) => {
                        metrics.failures.fetch_add(1, Ordering::Relaxed);
                        log::warn!("deleting archive object {k} (attempt {}): {e}", attempt + 1);
                        tokio::time::sleep(wait).await;
                        wait *= 2;
                    }
                }
            }
        }
    });
}

impl Shared {
    /// After a read of an archived segment: records a segment fetched whole
    /// as ArchivedCached, and keeps the cache within its bounds (least
    /// recently used segments first, never a pinned one), moving evicted
    /// whole segments back to ArchivedRemote.
    /// `fetched`: whether the read fetched anything (else the bounds cannot
    /// have been crossed by it, and the walk over the segments is skipped).
    pub(crate) fn after_archived_read(
        &self,
        seg: &Arc<crate::archive_cache::ArchivedSegment>,
        fetched: bool,
    ) {
        let Some(remote) = &self.remote else { return };
        match seg.became_whole() {
            Ok(true) if !self.read_only => self.set_cached(seg.base_id, true),
            Ok(_) => {}
            Err(e) => log::warn!("archived segment {}: {e}", seg.base_id),
        }
        if !fetched {
            return;
        }
        let archived: Vec<_> = self
            .cache
            .all()
            .into_iter()
            .filter_map(|s| s.archived.clone())
            .collect();
        let mut used: u64 = archived.iter().map(|a| a.cached_bytes()).sum();
        if used <= remote.budget {
            return;
        }
        let mut candidates: Vec<_> = archived.into_iter().filter(|a| a.cached_bytes() > 0).collect();
        candidates.sort_by_key(|a| a.last_used());
        for a in candidates {
            if used <= remote.budget {
                break;
            }
            if let Some((bytes, whole)) = a.drop_local() {
                used = used.saturating_sub(bytes);
                remote.metrics.cache_evictions.fetch_add(1, Ordering::Relaxed);
                if whole && !self.read_only {
                    self.set_cached(a.base_id, false);
                }
            }
        }
    }

    /// Moves the index entry of `base_id` to ArchivedCached (`cached`) or
    /// back to ArchivedRemote. The index is not synced: recovery drops
    /// the cache either way.
    fn set_cached(&self, base_id: u64, cached: bool) {
        let _g = lock(&self.archive_lock);
        let result = (|| {
            let Some(e) = self.index.get_entry(base_id)? else {
                return Ok(());
            };
            let next = match (cached, e.status) {
                (true, SegmentStatus::ArchivedRemote) => {
                    e.cache_locally(crate::layout::archive_cache_name(base_id))?
                }
                (false, SegmentStatus::ArchivedCached) => e.evict_local()?,
                _ => return Ok(()),
            };
            self.index.update_entry(&next).map_err(AofError::from)
        })();
        if let Err(e) = result {
            log::warn!("recording the cache state of archived segment {base_id}: {e}");
        }
    }

    /// Restores archived segment `slot` whole into the cache and returns
    /// its path (for `truncate_after` into an archived segment).
    pub(crate) fn fetch_whole(&self, slot: &SegmentSlot) -> AofResult<std::path::PathBuf> {
        let (Some(a), Some(remote)) = (&slot.archived, &self.remote) else {
            return Err(AofError::ArchiveNotConfigured);
        };
        a.fetch_whole(remote)
    }
}
