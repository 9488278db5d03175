//! Checking a whole log: [`VerifyReport`] and the check behind
//! [`crate::Aof::verify`].

use crate::archive_cache::ArchivedSegment;
use crate::locks::lock;
use crate::segment::FinalizedSegment;
use crate::shared::Shared;
use aof_record::{AofError, AofResult};

/// What [`crate::Aof::verify`] checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Segments checked.
    pub segments: u64,
    /// Records checked.
    pub records: u64,
    /// Bytes of segment files checked.
    pub bytes: u64,
}

/// Checks an archived segment's object without fetching it: its size and
/// CRC-64/NVME, as the archive reports them, against the index's.
fn verify_archived(inner: &Shared, a: &ArchivedSegment) -> AofResult<()> {
    let remote = inner.remote.as_ref().ok_or(AofError::ArchiveNotConfigured)?;
    let storage = remote.storage.clone();
    let key = a.key.clone();
    let meta = remote.run(async move { storage.head(&key).await })??;
    for (what, expected, actual) in [
        ("archive object size", a.compressed_size, meta.size),
        ("archive object checksum", a.compressed_checksum, meta.checksum),
    ] {
        if expected != actual {
            return Err(AofError::SegmentMismatch {
                segment: a.base_id,
                what,
                expected,
                actual,
            });
        }
    }
    Ok(())
}

/// Verifies every segment: each local finalized one fully (data checksum,
/// every record, the offset table, and its index entry's count, last id,
/// size and checksum), each archived one's object by size and checksum,
/// then the active one's records. Returns the first
/// problem as a typed error naming segment and offset. `progress` gets
/// (segments done, segments total).
pub(crate) fn verify(inner: &Shared, progress: &mut dyn FnMut(u64, u64)) -> AofResult<VerifyReport> {
    // A segment being sealed has no finalized index entry to check yet.
    if !inner.read_only {
        inner.finish_sealing()?;
    }
    let slots = inner.cache.all();
    let total = slots.len() as u64 + 1;
    let mut report = VerifyReport::default();
    for (i, slot) in slots.iter().enumerate() {
        if let Some(a) = &slot.archived {
            verify_archived(inner, a)?;
            report.segments += 1;
            report.records += slot.record_count;
            progress(i as u64 + 1, total);
            continue;
        }
        let seg = FinalizedSegment::open(inner.fs.as_ref(), &slot.path, slot.base_id)?;
        let count = seg.verify()?;
        let Some(entry) = inner.index.get_entry(slot.base_id)? else {
            return Err(AofError::Index(aof_record::IndexError::NotFound {
                base_id: slot.base_id,
            }));
        };
        {
            let checks = [
                ("record count", entry.record_count, count),
                ("file size", entry.original_size, seg.bytes().len() as u64),
                (
                    "file checksum",
                    entry.uncompressed_checksum.unwrap_or(0),
                    aof_record::checksum::crc64_nvme(seg.bytes()),
                ),
            ];
            for (what, expected, actual) in checks {
                if expected != actual {
                    return Err(AofError::SegmentMismatch {
                        segment: slot.base_id,
                        what,
                        expected,
                        actual,
                    });
                }
            }
        }
        report.segments += 1;
        report.records += count;
        report.bytes += seg.bytes().len() as u64;
        progress(i as u64 + 1, total);
    }
    // The active segment: every record written so far, re-read and checked.
    let mut w = lock(&inner.writer);
    for id in w.seg.base_id..w.next_id {
        w.read(id)?;
    }
    report.segments += 1;
    report.records += w.next_id - w.seg.base_id;
    report.bytes += w.seg.data_len(w.buf.len());
    progress(total, total);
    Ok(report)
}
