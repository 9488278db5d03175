//! Following a log another process writes: [`Shared::refresh`] brings a
//! read-only view up to date with the files on disk.
//!
//! A read-only view (see [`crate::Aof::open_read_only`]) is fixed at open.
//! A refresh looks at the files again, from where the view ended:
//!
//! * new records at the end of the active segment are taken once they are
//!   complete and pass their checksum; a record still being written (cut
//!   short, or failing its checksum), zeros (pre-allocated space) or the
//!   offset table of a segment being sealed mean "nothing more yet";
//! * a segment whose footer is in place and says its data ends exactly where
//!   the view ends is sealed: it joins the finalized segments, and the next
//!   segment file (named by the next id) becomes the active one as soon as
//!   it exists (segment files appear by rename, header and all);
//! * a writer that cut records the view has already seen (`truncate_after`)
//!   or removed the segment it follows is reported as
//!   [`AofError::ViewOutdated`]: the caller opens a new view. So is a read
//!   of a finalized segment whose file the writer has removed since the
//!   view opened (retention, `truncate_before`, archiving).
//!
//! Nothing is written, and no lock is taken but the view's own writer mutex.

use crate::cache::SegmentSlot;
use crate::fs::{FileHandle, FileHandleExt, OpenMode};
use crate::layout::{path_in, segment_file_name};
use crate::locks::lock;
use crate::segment::FinalizedSegment;
use crate::shared::Shared;
use crate::writer::{ActiveSegment, Writer};
use aof_record::record::{RecordHeader, decode_record, is_zeroed_header};
use aof_record::segment::{SEGMENT_FOOTER_MAGIC, SEGMENT_FOOTER_SIZE, SEGMENT_HEADER_SIZE, SegmentHeader};
use aof_record::{AofError, AofResult, FORMAT_MAX_RECORD_SIZE, RECORD_HEADER_SIZE};
use std::sync::atomic::Ordering;

/// Bytes read at once while looking for new records.
const READ_AHEAD: u64 = 1 << 20;

impl Shared {
    /// Brings a read-only view up to date with the files; returns how many
    /// new records it sees. A writable log sees everything already: 0.
    pub(crate) fn refresh(&self) -> AofResult<u64> {
        if !self.read_only {
            return Ok(0);
        }
        let mut w = lock(&self.writer);
        let before = w.next_id;
        loop {
            if w.seg.absent && !self.adopt_next_file(&mut w)? {
                break;
            }
            let found = scan_new_records(&mut w)?;
            if self.seal_if_footer(&mut w)? {
                continue;
            }
            if found == 0 {
                check_still_current(&w.seg)?;
            }
            break;
        }
        let next = w.next_id;
        drop(w);
        if next > before {
            self.appended_next.fetch_max(next, Ordering::AcqRel);
            self.durable.publish(next);
        }
        Ok(next - before)
    }

    /// Opens the active segment file of a view that had none yet; false if
    /// it does not exist yet.
    fn adopt_next_file(&self, w: &mut Writer) -> AofResult<bool> {
        let path = w.seg.path.clone();
        let file = match self.fs.open(&path, OpenMode::Read) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(AofError::io(&path, e)),
        };
        let mut raw = [0u8; SEGMENT_HEADER_SIZE];
        file.read_exact_at(&mut raw, 0)
            .map_err(|e| AofError::io(&path, e))?;
        let header = SegmentHeader::decode(&raw).map_err(|source| AofError::InvalidSegmentFile {
            path: path.clone(),
            source,
        })?;
        if header.base_id != w.seg.base_id {
            return Err(AofError::SegmentMismatch {
                segment: w.seg.base_id,
                what: "base id in the segment header",
                expected: w.seg.base_id,
                actual: header.base_id,
            });
        }
        let mut seg = ActiveSegment::placeholder(header.base_id, path, header.created_at_us);
        seg.file = file;
        seg.absent = false;
        w.start(seg);
        Ok(true)
    }

    /// Moves the active segment to the finalized ones if its footer is in
    /// place and matches what the view read; then the next segment is active
    /// (absent until its file appears).
    fn seal_if_footer(&self, w: &mut Writer) -> AofResult<bool> {
        let seg = &w.seg;
        let len = seg.file.len().map_err(|e| AofError::io(&seg.path, e))?;
        let table = seg.offsets.len() as u64 * 4;
        if len != seg.written + table + SEGMENT_FOOTER_SIZE as u64 {
            return Ok(false);
        }
        let mut magic = [0u8; 8];
        seg.file
            .read_exact_at(&mut magic, len - SEGMENT_FOOTER_SIZE as u64)
            .map_err(|e| AofError::io(&seg.path, e))?;
        if magic != SEGMENT_FOOTER_MAGIC {
            return Ok(false);
        }
        // The whole file must check out as a finalized segment (footer and
        // offset table) that ends where the view does; until it does, the
        // writer is still writing it.
        let Ok(sealed) = FinalizedSegment::open(self.fs.as_ref(), &seg.path, seg.base_id) else {
            return Ok(false);
        };
        let footer = sealed.footer();
        if footer.data_end != seg.written || footer.record_count != seg.offsets.len() as u64 {
            return Ok(false);
        }
        let next = w.next_id;
        if let Some(last) = seg.last_id(next) {
            self.cache.insert(SegmentSlot::new(
                seg.base_id,
                last,
                next - seg.base_id,
                seg.path.clone(),
                len,
            ));
        }
        let path = path_in(&self.dir, &segment_file_name(next));
        w.start(ActiveSegment::placeholder(next, path, w.last_ts));
        Ok(true)
    }
}

/// Takes the complete, valid records after the view's end of the active
/// segment; returns how many.
fn scan_new_records(w: &mut Writer) -> AofResult<u64> {
    let path = w.seg.path.clone();
    let file = w.seg.file.clone();
    let len = file.len().map_err(|e| AofError::io(&path, e))?;
    if len < w.seg.written {
        return Err(AofError::ViewOutdated {
            path,
            reason: "the segment file is shorter than the records already read",
        });
    }
    let mut found = 0;
    let mut window: Vec<u8> = Vec::new();
    let mut window_at = w.seg.written;
    loop {
        let at = w.seg.written;
        if at + RECORD_HEADER_SIZE as u64 > len {
            break;
        }
        if at < window_at || at + RECORD_HEADER_SIZE as u64 > window_at + window.len() as u64 {
            window = read_window(file.as_ref(), at, len).map_err(|e| AofError::io(&path, e))?;
            window_at = at;
        }
        let rel = (at - window_at) as usize;
        if is_zeroed_header(&window[rel..]) {
            break;
        }
        let Ok(header) = RecordHeader::parse(&window[rel..], FORMAT_MAX_RECORD_SIZE) else {
            break;
        };
        let rec_len = header.record_len();
        if at + rec_len > len {
            break;
        }
        if rel as u64 + rec_len > window.len() as u64 {
            // Larger than what is read ahead: read this record alone (its
            // size passed the format's limit and lies within the file).
            window = file
                .read_vec_at(rec_len as usize, at)
                .map_err(|e| AofError::io(&path, e))?;
            window_at = at;
        }
        let rel = (at - window_at) as usize;
        let Ok(rec) = decode_record(&window[rel..], FORMAT_MAX_RECORD_SIZE) else {
            break;
        };
        if rec.header.id != w.next_id {
            return Err(AofError::SegmentMismatch {
                segment: w.seg.base_id,
                what: "record id",
                expected: w.next_id,
                actual: rec.header.id,
            });
        }
        let offset = u32::try_from(at).map_err(|_| AofError::SegmentMismatch {
            segment: w.seg.base_id,
            what: "record offset",
            expected: u64::from(u32::MAX),
            actual: at,
        })?;
        let bytes = &window[rel..rel + rec.encoded_len()];
        w.seg.offsets.push(offset);
        w.seg.crc.update(bytes);
        w.seg.written += bytes.len() as u64;
        w.last_ts = w.last_ts.max(rec.header.timestamp_us);
        w.next_id = w.next_id.checked_add(1).ok_or(AofError::SegmentMismatch {
            segment: w.seg.base_id,
            what: "record id (past the largest id)",
            expected: u64::MAX,
            actual: u64::MAX,
        })?;
        found += 1;
    }
    // Every record in the file is sealed (the view never writes).
    w.unsealed_from = w.seg.offsets.len();
    Ok(found)
}

/// Reads up to [`READ_AHEAD`] bytes of `file` from `at`, never past `len`.
fn read_window(file: &dyn FileHandle, at: u64, len: u64) -> std::io::Result<Vec<u8>> {
    let n = (len - at).min(READ_AHEAD) as usize;
    file.read_vec_at(n, at)
}

/// Fails if the file the view follows is no longer the log's: removed, or
/// replaced by a rewritten one (`truncate_after` renames over it).
fn check_still_current(seg: &ActiveSegment) -> AofResult<()> {
    if seg.absent {
        return Ok(());
    }
    let removed = seg.file.is_unlinked().map_err(|e| AofError::io(&seg.path, e))?;
    if removed {
        return Err(AofError::ViewOutdated {
            path: seg.path.clone(),
            reason: "the writer removed or replaced the segment file",
        });
    }
    Ok(())
}
