//! Opening a log after a clean close or a crash.
//!
//! Recovery reads the index, not the log: finalized segments are only
//! checked to exist. The one segment that is read is the active one, scanned
//! to rebuild its in-memory offset table and to find where its data ends.
//!
//! | found on open | what recovery does |
//! |---|---|
//! | no `MANIFEST` | created, with a new log identity |
//! | leftover `*.seg.tmp`, `prealloc-*.tmp` | removed (a crash before their rename; they never held a durable record) |
//! | torn or zeroed tail in the active segment | cut: bytes saved beside it as `<name>.torn-<offset>`, the range zeroed, logged |
//! | invalid record followed by a valid one, at or after the recovery point | cut like a torn tail: unsynced pages written back out of order |
//! | invalid record followed by a valid one, before the recovery point (or none known) | [`AofError::Corruption`] naming segment and offset; nothing changed |
//! | fewer records than the recovery point says were durable | [`AofError::DurableRecordsMissing`]; nothing changed |
//! | segment files below the first indexed segment | deleted: the index committed their removal |
//! | segment files after an unsealed active segment | moved to `lost+found/`, each named in a warning |
//! | active segment (per index) that has a footer | finalize completed in the index (crash after sealing, before the index commit) |
//! | active segment (per index) whose footer does not match its data | read as the active segment: a seal interrupted before its sync; the footer and anything unsynced are a torn tail |
//! | segment file continuing the sequence, not in the index | adopted (crash before the index commit of a new segment) |
//! | finalized segment whose file is missing | [`AofError::MissingSegment`] |
//! | archived segment whose local file remains (a crash after the index commit) | the file deleted |
//! | `ArchivedCached` segment, `archive-cache/` contents | the cache dropped: entry back to `ArchivedRemote`, files deleted (a cache is never trusted across a restart) |
//! | empty index, one segment file holding no record, nothing durable yet | adopted (a crash in a new log's first open) |
//! | empty index, other segment files present | [`AofError::UnindexedSegments`] unless `rebuild_index` is set, then rebuilt by scanning: sealed files as finalized up to the first one that is not (no footer, or one that does not match its data), which is the active segment; the files after it are then quarantined as above |
//! | other files | left alone |
//!
//! What recovery keeps is synced before the log opens: the active segment's
//! data, a footer whose index commit it completes, and the recovery point.

use crate::cache::SegmentSlot;
use crate::fs::{FileHandle, FileSystem, OpenMode};
use crate::layout::{
    ARCHIVE_CACHE_DIR, LOST_FOUND_DIR, is_temp_name, parse_segment_file_name, path_in, segment_file_name,
    torn_tail_name,
};
use crate::manifest::Manifest;
use crate::options::AofOptions;
use crate::segment::{FinalizedSegment, read_whole, scan_records};
use crate::writer::{ActiveSegment, NewFile, Prepare, Writer, create_active, recovered_segment};
use aof_record::segment::{SegmentFooter, SegmentHeader};
use aof_record::{AofError, AofResult, SegmentEntry, SegmentIndex, SegmentStatus};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::path::Path;

/// What recovery hands to the engine: the writer positioned at the end of
/// the log, and the finalized segments with a local file.
pub(crate) struct Recovered {
    pub(crate) manifest: Manifest,
    /// What recovery did (or, read-only, would do) to the log.
    pub(crate) repairs: Vec<Repair>,
    pub(crate) writer: Writer,
    pub(crate) finalized: Vec<SegmentSlot>,
    /// Archived segments (all `ArchivedRemote` after recovery).
    pub(crate) archived: Vec<SegmentEntry>,
    pub(crate) torn_tails_cut: u64,
    pub(crate) segments_created: u64,
}

/// A change recovery makes to a log (or, opened read-only, would make).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Repair {
    /// Create the manifest (a new log, or one written before manifests).
    CreateManifest,
    /// Remove a temp file left by a crash before its rename.
    RemoveTempFile {
        /// Its name.
        name: String,
    },
    /// Rebuild an empty index by scanning the segment files.
    RebuildIndex {
        /// Segment files scanned.
        files: u64,
    },
    /// Delete a segment file whose removal the index committed.
    RemoveUnindexedSegment {
        /// Its name.
        name: String,
    },
    /// Record in the index a segment sealed before a crash.
    CompleteFinalization {
        /// Its base id.
        segment: u64,
    },
    /// Add to the index a segment file created before a crash.
    AdoptSegment {
        /// Its base id.
        segment: u64,
    },
    /// Move a segment file recovery will not use into `lost+found/`.
    QuarantineSegment {
        /// Its name.
        name: String,
    },
    /// Cut a torn tail from the active segment (saved beside it).
    CutTornTail {
        /// The segment.
        segment: u64,
        /// Where the valid records end.
        offset: u64,
        /// Bytes cut.
        bytes: u64,
    },
    /// Sync the active segment's data before publishing it as durable.
    SyncActiveSegment {
        /// Its base id.
        segment: u64,
    },
    /// Create the active segment (none exists yet).
    CreateSegment {
        /// Its base id.
        segment: u64,
    },
    /// Delete the local file of a segment whose archival the index
    /// committed (a crash before the file's removal).
    RemoveArchivedLocalFile {
        /// Its base id.
        segment: u64,
    },
    /// Drop the local cached copy of an archived segment (`ArchivedCached`
    /// back to `ArchivedRemote`): a cache is not trusted across a restart.
    DropArchiveCache {
        /// Its base id.
        segment: u64,
    },
}

impl Repair {
    /// Whether the change repairs damage (a torn tail, a file that does not
    /// belong), as opposed to completing an interrupted step or starting a log.
    #[must_use]
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            Self::CutTornTail { .. } | Self::QuarantineSegment { .. } | Self::RebuildIndex { .. }
        )
    }
}

impl std::fmt::Display for Repair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::CreateManifest => write!(f, "create the manifest"),
            Self::RemoveTempFile { name } => write!(f, "remove the temp file {name}"),
            Self::RebuildIndex { files } => write!(f, "rebuild the empty index from {files} segment files"),
            Self::RemoveUnindexedSegment { name } => {
                write!(f, "delete {name}: the index committed its removal")
            }
            Self::CompleteFinalization { segment } => {
                write!(f, "record segment {segment}, sealed before a crash, as finalized")
            }
            Self::AdoptSegment { segment } => write!(f, "add segment {segment} to the index"),
            Self::QuarantineSegment { name } => {
                write!(
                    f,
                    "move {name}, which follows the unsealed active segment, to lost+found/"
                )
            }
            Self::CutTornTail {
                segment,
                offset,
                bytes,
            } => write!(
                f,
                "cut a torn tail of {bytes} bytes at offset {offset} of segment {segment} (saved beside it)"
            ),
            Self::SyncActiveSegment { segment } => write!(f, "sync segment {segment}"),
            Self::CreateSegment { segment } => write!(f, "create segment {segment}"),
            Self::RemoveArchivedLocalFile { segment } => {
                write!(
                    f,
                    "delete the local file of segment {segment}: the index committed its archival"
                )
            }
            Self::DropArchiveCache { segment } => {
                write!(f, "drop the cached copy of archived segment {segment}")
            }
        }
    }
}

/// Recovers the log in `dir`. Read-only, it changes nothing on disk (the
/// index it is given must be a private copy) and lists what it would do.
pub(crate) fn recover(
    dir: &Path,
    options: &AofOptions,
    index: &dyn SegmentIndex,
    read_only: bool,
) -> AofResult<Recovered> {
    let fs = options.fs.as_ref();
    let mut repairs = Vec::new();
    let opened = if read_only {
        let opened = Manifest::inspect(fs, dir)?;
        if opened.recovery_next.is_none() {
            repairs.push(Repair::CreateManifest);
        }
        opened
    } else {
        // The index and the directory must belong to the same log: a wrong
        // index_path (another log's index) would otherwise make recovery
        // delete every segment below that index's first entry.
        let indexed = index.log_identity()?;
        let opened = Manifest::open_or_create(fs, dir, options.time.now_us(), indexed)?;
        let log = opened.manifest.log_id();
        match indexed {
            Some(id) if id != log => return Err(AofError::LogIdentityMismatch { log, index: id }),
            Some(_) => {}
            None => {
                index.set_log_identity(log)?;
                index.sync()?;
            }
        }
        opened
    };
    let recovery_next = opened.recovery_next;
    let names = fs.list(dir).map_err(|e| AofError::io(dir, e))?;
    let mut removed = false;
    for name in names.iter().filter(|n| is_temp_name(n)) {
        // A temp file never held a durable record: records go into a
        // segment file only after its rename.
        repairs.push(Repair::RemoveTempFile { name: name.clone() });
        if read_only {
            continue;
        }
        let path = path_in(dir, name);
        log::info!("removing leftover temp file {}", path.display());
        fs.remove_file(&path).map_err(|e| AofError::io(&path, e))?;
        removed = true;
    }
    if removed {
        fs.sync_dir(dir).map_err(|e| AofError::io(dir, e))?;
    }
    if !read_only {
        clear_archive_cache(fs, dir)?;
    }
    let files: BTreeMap<u64, String> = names
        .iter()
        .filter_map(|n| parse_segment_file_name(n).map(|b| (b, n.clone())))
        .collect();

    let mut entries = index.get_all_segments()?;
    if entries.is_empty()
        && let Some((&first, _)) = files.iter().next()
    {
        // A crash in a new log's first open, after its first segment file
        // was renamed into place but before the index committed it, leaves
        // one segment holding no record: nothing to lose, so adopt it.
        let first_open = files.len() == 1 && recovery_next.unwrap_or(0) == 0 && {
            let (_, data) = read_whole(fs, &path_in(dir, &files[&first]), read_only)?;
            SegmentHeader::decode(&data).is_ok_and(|h| h.base_id == first)
                && scan_records(first, &data, Some(0)).is_ok_and(|s| s.offsets.is_empty())
        };
        // Read-only, the index is a private copy: rebuilding it in memory
        // changes nothing on disk.
        if !options.rebuild_index && !first_open && !read_only {
            return Err(AofError::UnindexedSegments {
                first,
                count: files.len() as u64,
            });
        }
        log::warn!(
            "index of {} is empty; rebuilding it from {} segment files",
            dir.display(),
            files.len()
        );
        if !first_open {
            repairs.push(Repair::RebuildIndex {
                files: files.len() as u64,
            });
        }
        rebuild_from(fs, dir, index, recovery_next)?;
        entries = index.get_all_segments()?;
    }

    // Files below the first indexed segment are what retention or
    // truncate_before removed from the index before a crash.
    if let Some(first) = entries.first().map(|e| e.base_id) {
        for (orphan, name) in files.range(..first) {
            repairs.push(Repair::RemoveUnindexedSegment { name: name.clone() });
            if !read_only {
                remove_orphan(fs, dir, *orphan, name)?;
            }
        }
    }
    let mut finalized: Vec<SegmentEntry> = Vec::new();
    let mut archived: Vec<SegmentEntry> = Vec::new();
    let mut archived_files_removed = false;
    let mut active: Option<SegmentEntry> = None;
    let mut next_id = 0u64;
    for e in entries {
        if let Some(a) = &active {
            // Only the last entry may be active.
            return Err(AofError::SegmentMismatch {
                segment: e.base_id,
                what: "segment after the active segment",
                expected: a.base_id,
                actual: e.base_id,
            });
        }
        next_id = next_id.max(e.next_id());
        match e.status {
            SegmentStatus::Active => active = Some(e),
            SegmentStatus::Finalized => {
                if e.record_count == 0 {
                    // The engine never seals an empty segment; its successor
                    // would share its base id and file name.
                    return Err(AofError::SegmentMismatch {
                        segment: e.base_id,
                        what: "record count of a finalized segment",
                        expected: 1,
                        actual: 0,
                    });
                }
                if !files.contains_key(&e.base_id) {
                    return Err(AofError::MissingSegment {
                        segment: e.base_id,
                        path: path_in(dir, &local_name(&e)),
                    });
                }
                finalized.push(e);
            }
            // Archived segments have no local file; a cached copy is only a cache.
            _ => {
                let mut e = e;
                if let Some(name) = files.get(&e.base_id) {
                    repairs.push(Repair::RemoveArchivedLocalFile { segment: e.base_id });
                    if !read_only {
                        let path = path_in(dir, name);
                        log::info!("removing {}: segment {} is archived", path.display(), e.base_id);
                        fs.remove_file(&path).map_err(|err| AofError::io(&path, err))?;
                        archived_files_removed = true;
                    }
                }
                if e.status == SegmentStatus::ArchivedCached {
                    repairs.push(Repair::DropArchiveCache { segment: e.base_id });
                    // Read-only, the index is a private copy.
                    e = e.evict_local()?;
                    index.update_entry(&e)?;
                }
                archived.push(e);
            }
        }
    }
    if archived_files_removed {
        fs.sync_dir(dir).map_err(|e| AofError::io(dir, e))?;
    }
    if let Some(a) = &active {
        next_id = a.base_id;
    }

    let mut torn_cut = 0;
    let mut current = match &active {
        Some(a) => Some((a.base_id, local_name(a))),
        None => files.get(&next_id).map(|n| (next_id, n.clone())),
    };
    while let Some((base, name)) = current.take() {
        let path = path_in(dir, &name);
        if !files.contains_key(&base) {
            return Err(AofError::MissingSegment { segment: base, path });
        }
        let (file, data) = read_whole(fs, &path, read_only)?;
        let header = SegmentHeader::decode(&data).map_err(|source| AofError::InvalidSegmentFile {
            path: path.clone(),
            source,
        })?;
        if header.base_id != base {
            return Err(AofError::SegmentMismatch {
                segment: base,
                what: "base id in the segment header",
                expected: base,
                actual: header.base_id,
            });
        }
        let sealed = if has_footer(&data) {
            // A seal job the crash interrupted may have left a footer whose
            // page reached the disk before some data page did: then the
            // segment is read as the active one below, and what its footer
            // claimed past the recovery point is a torn tail (no record
            // after the recovery point was reported durable before its
            // seal was synced; see `seal.rs`).
            entry_from_finalized(&data, &path, &name, base)
                .inspect_err(|e| {
                    log::warn!(
                        "segment {base}: its footer does not match its data ({e}): an interrupted seal; \
                         reading it as the active segment"
                    );
                })
                .ok()
        } else {
            None
        };
        if let Some(entry) = sealed {
            // Sealed before the crash; the index commit did not happen. The
            // footer may not be synced yet: sync it before the index says so.
            if entry.record_count == 0 {
                // The engine never seals an empty segment; following it
                // would find the same file again, forever (a fuzzer's
                // finding: `empty-finalized-loop`).
                return Err(AofError::SegmentMismatch {
                    segment: base,
                    what: "record count of a sealed segment after the index's last",
                    expected: 1,
                    actual: 0,
                });
            }
            repairs.push(Repair::CompleteFinalization { segment: base });
            if !read_only {
                file.sync_all().map_err(|e| AofError::io(&path, e))?;
                log::info!("completing the finalization of segment {base}");
            }
            put(index, &entry)?;
            index.sync()?;
            next_id = entry.next_id();
            finalized.push(entry);
            current = files.get(&next_id).map(|n| (next_id, n.clone()));
            continue;
        }
        let scan = scan_records(base, &data, recovery_next)?;
        let found_next = base + scan.offsets.len() as u64;
        if let Some(durable) = recovery_next
            && found_next < durable
        {
            return Err(AofError::DurableRecordsMissing {
                recovery_next: durable,
                found_next,
            });
        }
        // Segment files after an unsealed active segment hold no durable
        // record (a segment is only created after its predecessor is
        // sealed): an interrupted truncate_after was removing them, or the
        // index is older than the log. Nothing proves which, so they are
        // kept aside, not deleted.
        // (Excluded bound: `base + 1` overflows at u64::MAX, and wrapped to
        // 0 in release builds it named the active segment itself an orphan:
        // a fuzzer's finding, `ids-near-max`.)
        let after = (std::ops::Bound::Excluded(base), std::ops::Bound::Unbounded);
        for (_, orphan_name) in files.range(after) {
            repairs.push(Repair::QuarantineSegment {
                name: orphan_name.clone(),
            });
            if !read_only {
                quarantine(fs, dir, orphan_name, "it follows the unsealed active segment")?;
            }
        }
        if let Some((start, end)) = scan.torn {
            repairs.push(Repair::CutTornTail {
                segment: base,
                offset: start,
                bytes: end - start,
            });
            if !read_only {
                cut_torn_tail(
                    fs,
                    dir,
                    &name,
                    file.as_ref(),
                    &data[start as usize..end as usize],
                    start,
                )?;
            }
            torn_cut += 1;
        }
        if index.get_entry(base)?.is_none() {
            repairs.push(Repair::AdoptSegment { segment: base });
            log::info!("adopting segment {base}, which is not in the index");
            index.add_entry(&SegmentEntry::new_active(
                base,
                header.created_at_us,
                name.clone(),
            ))?;
        }
        // What recovery keeps is durable before anyone is told so.
        if recovery_next.is_none_or(|r| r < found_next) {
            repairs.push(Repair::SyncActiveSegment { segment: base });
        }
        let last = (!scan.offsets.is_empty()).then(|| found_next - 1);
        // The tail is a hint (recovery always scans the active segment), so
        // it is recorded without paying for an index sync here.
        index.update_segment_tail(base, last, scan.data_end)?;
        if !read_only {
            file.sync_data().map_err(|e| AofError::io(&path, e))?;
            opened.manifest.set_recovery_point(found_next)?;
        }
        return Ok(Recovered {
            repairs,
            manifest: opened.manifest,
            writer: recovered_segment(
                base,
                path,
                file,
                &data,
                scan,
                header.created_at_us,
                options.config.segment_size(),
            ),
            finalized: slots(dir, &finalized),
            archived,
            torn_tails_cut: torn_cut,
            segments_created: 0,
        });
    }
    if let Some(durable) = recovery_next
        && next_id < durable
    {
        return Err(AofError::DurableRecordsMissing {
            recovery_next: durable,
            found_next: next_id,
        });
    }
    let created = options
        .time
        .now_us()
        .max(finalized.last().and_then(|e| e.finalized_at).unwrap_or(0));
    // The first segment of a new log is prepared here, where nobody waits yet.
    let config = &options.config;
    repairs.push(Repair::CreateSegment { segment: next_id });
    let seg = if read_only {
        // Nothing to write to: an empty active segment without a file.
        ActiveSegment::placeholder(next_id, path_in(dir, &segment_file_name(next_id)), created)
    } else {
        let seg = create_active(
            fs,
            dir,
            index,
            next_id,
            created,
            NewFile::Create(Prepare::for_config(config)),
            config.segment_size(),
        )?;
        opened.manifest.set_recovery_point(next_id)?;
        seg
    };
    Ok(Recovered {
        repairs,
        manifest: opened.manifest,
        writer: Writer::new(seg, next_id, created, 0),
        finalized: slots(dir, &finalized),
        archived,
        torn_tails_cut: torn_cut,
        segments_created: 1,
    })
}

fn slots(dir: &Path, entries: &[SegmentEntry]) -> Vec<SegmentSlot> {
    entries.iter().map(|e| SegmentSlot::for_entry(dir, e)).collect()
}

/// Deletes a segment file whose removal the index has committed (it lies
/// below the first indexed segment: retention or `truncate_before` removed
/// its entry, then crashed before deleting the file).
fn remove_orphan(fs: &dyn FileSystem, dir: &Path, base: u64, name: &str) -> AofResult<()> {
    let path = path_in(dir, name);
    log::warn!(
        "removing segment {base} ({}): the index no longer lists it (an interrupted removal)",
        path.display()
    );
    fs.remove_file(&path).map_err(|e| AofError::io(&path, e))?;
    fs.sync_dir(dir).map_err(|e| AofError::io(dir, e))
}

/// Deletes whatever `archive-cache/` holds: fetched archived data is not
/// trusted across a restart (the index's `ArchivedCached` entries were
/// moved back to `ArchivedRemote` above or below).
fn clear_archive_cache(fs: &dyn FileSystem, dir: &Path) -> AofResult<()> {
    let cache = path_in(dir, ARCHIVE_CACHE_DIR);
    if !fs.exists(&cache).map_err(|e| AofError::io(&cache, e))? {
        return Ok(());
    }
    for name in fs.list(&cache).map_err(|e| AofError::io(&cache, e))? {
        let path = cache.join(&name);
        fs.remove_file(&path).map_err(|e| AofError::io(&path, e))?;
    }
    Ok(())
}

fn local_name(e: &SegmentEntry) -> String {
    e.local_path
        .clone()
        .unwrap_or_else(|| segment_file_name(e.base_id))
}

fn put(index: &dyn SegmentIndex, entry: &SegmentEntry) -> AofResult<()> {
    if index.get_entry(entry.base_id)?.is_some() {
        index.update_entry(entry)?;
    } else {
        index.add_entry(entry)?;
    }
    Ok(())
}

/// Saves the torn bytes beside the segment for inspection, then zeroes them
/// in the segment, so the next append continues after the last valid record.
fn cut_torn_tail(
    fs: &dyn FileSystem,
    dir: &Path,
    name: &str,
    file: &dyn FileHandle,
    torn: &[u8],
    offset: u64,
) -> AofResult<()> {
    let mut n = 0;
    let mut keep = path_in(dir, &torn_tail_name(name, offset, n));
    while fs.exists(&keep).map_err(|e| AofError::io(&keep, e))? {
        n += 1;
        keep = path_in(dir, &torn_tail_name(name, offset, n));
    }
    let saved = fs
        .open(&keep, OpenMode::CreateNew)
        .map_err(|e| AofError::io(&keep, e))?;
    saved
        .write_all_at(torn, 0)
        .and_then(|()| saved.sync_all())
        .map_err(|e| AofError::io(&keep, e))?;
    fs.sync_dir(dir).map_err(|e| AofError::io(dir, e))?;
    let seg_path = path_in(dir, name);
    file.write_all_at(&vec![0u8; torn.len()], offset)
        .and_then(|()| file.sync_data())
        .map_err(|e| AofError::io(&seg_path, e))?;
    log::warn!(
        "segment {}: cut a torn tail of {} bytes at offset {offset}; saved as {}",
        seg_path.display(),
        torn.len(),
        keep.display()
    );
    Ok(())
}

/// Scans every segment file in `dir` and adds the entries they describe to
/// the (empty) `index`: sealed files as finalized, the last unsealed one as
/// active. Reads every byte of every segment; returns the number of entries.
pub fn rebuild_index(fs: &dyn FileSystem, dir: &Path, index: &dyn SegmentIndex) -> AofResult<usize> {
    rebuild_from(fs, dir, index, None)
}

/// The entries a rebuild from the files in `dir` gives, without touching any index.
pub fn entries_from_files(fs: &dyn FileSystem, dir: &Path) -> AofResult<Vec<SegmentEntry>> {
    entries_with_recovery_point(fs, dir, None)
}

/// The entries of a read-only view of the log in `dir` whose index cannot
/// be read beside its writer (MDBX opens its file exclusively): rebuilt from
/// the segment files, an unsynced tail past the manifest's recovery point
/// left out as recovery would cut it. Reads every byte of every segment and
/// writes nothing.
pub fn entries_for_view(fs: &dyn FileSystem, dir: &Path) -> AofResult<Vec<SegmentEntry>> {
    let recovery_next = Manifest::inspect(fs, dir)?.recovery_next;
    entries_with_recovery_point(fs, dir, recovery_next)
}

/// [`entries_from_files`], cutting damage after `recovery_next` (when known)
/// instead of reporting it.
fn entries_with_recovery_point(
    fs: &dyn FileSystem,
    dir: &Path,
    recovery_next: Option<u64>,
) -> AofResult<Vec<SegmentEntry>> {
    let names = fs.list(dir).map_err(|e| AofError::io(dir, e))?;
    let mut out = Vec::new();
    let mut files: Vec<(u64, String)> = names
        .iter()
        .filter_map(|n| parse_segment_file_name(n).map(|b| (b, n.clone())))
        .collect();
    files.sort_unstable();
    let count = files.len();
    for (i, (base, name)) in files.iter().enumerate() {
        let path = path_in(dir, name);
        let (_, data) = read_whole(fs, &path, true)?;
        if has_footer(&data) {
            match entry_from_finalized(&data, &path, name, *base) {
                Ok(entry) => {
                    out.push(entry);
                    continue;
                }
                // The footer page of a seal a crash interrupted reached the
                // disk before a data page did: read as the active segment,
                // as recovery does with an index.
                Err(e) => log::warn!(
                    "segment {base}: its footer does not match its data ({e}): an interrupted seal"
                ),
            }
        }
        // Not sealed: the active segment. The files after it were created
        // after its seal started, which did not finish, so none of their
        // records was reported durable (`seal.rs`): they are left out, and
        // recovery moves them to lost+found/ (and reports durable records
        // missing if the recovery point says otherwise).
        if i + 1 != count {
            log::warn!(
                "segment {base} is not sealed; leaving the {} segment file(s) after it out of the rebuilt index",
                count - i - 1
            );
        }
        let header = SegmentHeader::decode(&data).map_err(|source| AofError::InvalidSegmentFile {
            path: path.clone(),
            source,
        })?;
        let scan = scan_records(*base, &data, recovery_next)?;
        let mut e = SegmentEntry::new_active(*base, header.created_at_us, name.clone());
        let last = (!scan.offsets.is_empty()).then(|| base + scan.offsets.len() as u64 - 1);
        e.set_tail(last, scan.data_end)?;
        out.push(e);
        break;
    }
    Ok(out)
}

fn rebuild_from(
    fs: &dyn FileSystem,
    dir: &Path,
    index: &dyn SegmentIndex,
    recovery_next: Option<u64>,
) -> AofResult<usize> {
    let entries = entries_with_recovery_point(fs, dir, recovery_next)?;
    index.add_entries(&entries)?;
    index.sync()?;
    Ok(entries.len())
}

/// The index entry of the finalized segment `data`.
fn entry_from_finalized(data: &Bytes, path: &Path, name: &str, base_id: u64) -> AofResult<SegmentEntry> {
    let seg = FinalizedSegment::from_bytes(data.clone(), path, base_id)?;
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
fn has_footer(data: &[u8]) -> bool {
    SegmentFooter::decode(data).is_ok()
}

/// Moves `name` out of the log into `lost+found/`, logged at warning level:
/// for files recovery will not use but cannot prove to be garbage.
fn quarantine(fs: &dyn FileSystem, dir: &Path, name: &str, why: &str) -> AofResult<()> {
    let from = path_in(dir, name);
    let lost = path_in(dir, LOST_FOUND_DIR);
    fs.create_dir_all(&lost).map_err(|e| AofError::io(&lost, e))?;
    let mut n = 0u32;
    let mut to = lost.join(name);
    while fs.exists(&to).map_err(|e| AofError::io(&to, e))? {
        n += 1;
        to = lost.join(format!("{name}.{n}"));
    }
    log::warn!("moving {} to {}: {why}", from.display(), to.display());
    fs.rename(&from, &to).map_err(|e| AofError::io(&to, e))?;
    fs.sync_dir(&lost).map_err(|e| AofError::io(&lost, e))?;
    fs.sync_dir(dir).map_err(|e| AofError::io(dir, e))
}
