//! The checks of a staged snapshot before it is installed: every file
//! mapped (not read again: it is in the page cache the import just filled)
//! and checked with the log format's own decoders.
//!
//! * `MANIFEST`: a valid slot, the snapshot's identity, and a recovery
//!   point equal to the end of the segments.
//! * A finalized segment: its header (base id = its name's), its footer
//!   and offset table (checksums, offsets rising inside the data), the
//!   CRC-64/NVME of its data, at least one record.
//! * The active segment: its header, then records only — each valid, with
//!   the next id — up to the file's end.
//! * Segments contiguous (each starts where the previous one ends), the
//!   first and last id those of the metadata.
//!
//! This is what recovery would check when the log is opened with its index
//! rebuilt (which the caller does next), without reading every byte again.

use crate::chunk::{FileKind, SnapshotMetadata};
use crate::error::{SnapshotError, SnapshotResult};
use aof_core::layout::parse_segment_file_name;
use aof_core::{FileSystem, OpenMode};
use aof_record::record::decode_record;
use aof_record::segment::{SEGMENT_HEADER_SIZE, SegmentFooter, SegmentHeader};
use aof_record::{FORMAT_MAX_RECORD_SIZE, ManifestSlot, RECORD_HEADER_SIZE};
use std::path::Path;

fn bad(name: &str, what: &'static str) -> SnapshotError {
    SnapshotError::StagedLog {
        name: name.to_owned(),
        what,
    }
}

/// Checks the files of `md` in `dir` (see the module documentation).
pub(crate) fn check_staged(fs: &dyn FileSystem, dir: &Path, md: &SnapshotMetadata) -> SnapshotResult<()> {
    let mut next: Option<u64> = None;
    let mut first: Option<u64> = None;
    let mut last: Option<u64> = None;
    let mut recovery_next = None;
    for f in &md.files {
        let name = f.name.as_str();
        let path = dir.join(name);
        let file = fs
            .open(&path, OpenMode::Read)
            .map_err(|e| SnapshotError::io(&path, e))?;
        let data = file.map().map_err(|e| SnapshotError::io(&path, e))?;
        if data.len() as u64 != f.size {
            return Err(SnapshotError::Size {
                name: name.to_owned(),
                expected: f.size,
                actual: data.len() as u64,
            });
        }
        if f.kind == FileKind::Manifest {
            let slot = ManifestSlot::current(&data).map_err(|_| bad(name, "the manifest does not decode"))?;
            if slot.log_id.0 != md.log_id {
                return Err(bad(name, "the manifest names another log"));
            }
            recovery_next = Some(slot.recovery_next);
            continue;
        }
        let base = parse_segment_file_name(name).ok_or_else(|| bad(name, "not a segment name"))?;
        let header =
            SegmentHeader::decode(&data).map_err(|_| bad(name, "the segment header does not decode"))?;
        if header.base_id != base {
            return Err(bad(name, "the header's base id is not the name's"));
        }
        if next.is_some_and(|n| n != base) {
            return Err(bad(
                name,
                "the segment does not start where the previous one ends",
            ));
        }
        let count = if f.kind == FileKind::ActiveSegment {
            active_records(name, base, &data)?
        } else {
            sealed_records(name, base, &data)?
        };
        if count > 0 {
            first.get_or_insert(base);
            last = Some(base + count - 1);
        }
        next = Some(
            base.checked_add(count)
                .ok_or_else(|| bad(name, "ids past the largest"))?,
        );
    }
    let mismatch = |what, expected, actual| SnapshotError::LogMismatch {
        what,
        expected,
        actual,
    };
    if last != md.last_id {
        return Err(mismatch("last id", md.last_id, last));
    }
    if last.is_some() && first != Some(md.first_id) {
        return Err(mismatch("first id", Some(md.first_id), first));
    }
    let end = next.unwrap_or(0);
    if recovery_next != Some(end) {
        return Err(mismatch(
            "the manifest's recovery point",
            Some(end),
            recovery_next,
        ));
    }
    Ok(())
}

/// The record count of a finalized segment, after its checks.
fn sealed_records(name: &str, base: u64, data: &[u8]) -> SnapshotResult<u64> {
    let footer = SegmentFooter::decode(data).map_err(|_| bad(name, "the segment footer does not decode"))?;
    if footer.base_id != base {
        return Err(bad(name, "the footer's base id is not the name's"));
    }
    if footer.record_count == 0 {
        return Err(bad(name, "a finalized segment holds no record"));
    }
    footer
        .verify_data(data)
        .map_err(|_| bad(name, "the segment's data checksum does not match"))?;
    let mut min = SEGMENT_HEADER_SIZE as u64;
    for i in 0..footer.record_count {
        let at = footer.offset_of(data, i).unwrap_or(u64::MAX);
        if (i == 0 && at != min) || at < min || at.saturating_add(RECORD_HEADER_SIZE as u64) > footer.data_end
        {
            return Err(bad(name, "the offset table is out of order"));
        }
        min = at + RECORD_HEADER_SIZE as u64;
    }
    Ok(footer.record_count)
}

/// The record count of the active segment: records only, each the next id,
/// up to the end of the file.
fn active_records(name: &str, base: u64, data: &[u8]) -> SnapshotResult<u64> {
    let mut at = SEGMENT_HEADER_SIZE;
    let mut id = base;
    while at < data.len() {
        let rec = decode_record(&data[at..], FORMAT_MAX_RECORD_SIZE)
            .map_err(|_| bad(name, "a record of the active segment does not decode"))?;
        if rec.header.id != id {
            return Err(bad(name, "a record of the active segment has the wrong id"));
        }
        at += rec.encoded_len();
        id = id
            .checked_add(1)
            .ok_or_else(|| bad(name, "ids past the largest"))?;
    }
    Ok(id - base)
}
