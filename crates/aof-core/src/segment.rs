//! Segment files as the engine handles them: scanning an unfinished segment,
//! reading a finalized one by id, and sealing one with its footer.

use crate::fs::{FileHandle, FileHandleExt, FileSystem, OpenMode};
use aof_record::checksum::{Crc64, crc64_nvme};
use aof_record::record::{RecordHeader, decode_record, is_zeroed_header};
use aof_record::segment::{SEGMENT_HEADER_SIZE, SegmentFooter, SegmentHeader};
use aof_record::{AofError, AofResult, FORMAT_MAX_RECORD_SIZE, RECORD_HEADER_SIZE};
use bytes::Bytes;
use std::path::Path;
use std::sync::Arc;

/// What a scan of an unfinished segment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scan {
    /// Offset of each valid record, in id order.
    pub offsets: Vec<u32>,
    /// End of the last valid record.
    pub data_end: u64,
    /// Timestamp of the last valid record.
    pub last_timestamp: Option<u64>,
    /// Non-zero bytes after the last valid record that hold no valid record:
    /// a torn write, `start..end`.
    pub torn: Option<(u64, u64)>,
}

/// Scans the records of segment `base_id` in `file` (a whole segment file).
///
/// Stops at the end of the file or at the first zero header (pre-allocated
/// space). A record that fails validation ends the data if nothing valid
/// follows it (a torn tail, reported in [`Scan::torn`]). If a valid record
/// follows (a hole), it depends on the recovery point `recovery_next`: a
/// hole at or after it is an unsynced tail that a power loss wrote back out
/// of order, cut like a torn tail; a hole before it (or when no recovery
/// point is known) is corruption of durable data, and the error names the
/// offset.
pub(crate) fn scan_records(base_id: u64, file: &[u8], recovery_next: Option<u64>) -> AofResult<Scan> {
    let mut offsets = Vec::new();
    let mut at = SEGMENT_HEADER_SIZE;
    let mut expected = base_id;
    let mut last_timestamp = None;
    let mut failure = None;
    while at < file.len() {
        let rest = &file[at..];
        if is_zeroed_header(rest) {
            break;
        }
        match decode_record(rest, FORMAT_MAX_RECORD_SIZE) {
            Ok(rec) => {
                if rec.header.id != expected {
                    return Err(AofError::SegmentMismatch {
                        segment: base_id,
                        what: "record id",
                        expected,
                        actual: rec.header.id,
                    });
                }
                offsets.push(u32::try_from(at).map_err(|_| AofError::SegmentMismatch {
                    segment: base_id,
                    what: "record offset",
                    expected: u64::from(u32::MAX),
                    actual: at as u64,
                })?);
                last_timestamp = Some(rec.header.timestamp_us);
                at += rec.encoded_len();
                expected = expected.checked_add(1).ok_or(AofError::SegmentMismatch {
                    segment: base_id,
                    what: "record id (past the largest id)",
                    expected: u64::MAX,
                    actual: u64::MAX,
                })?;
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let data_end = at as u64;
    if recovery_next.is_some_and(|r| expected < r) {
        // The record at `expected` was durable: whatever is here now (bad
        // bytes or zeros), it is damage to acknowledged data, never a tail to cut.
        return Err(AofError::Corruption {
            segment: base_id,
            offset: data_end,
            source: failure.unwrap_or(aof_record::RecordError::Truncated {
                needed: RECORD_HEADER_SIZE as u64,
                available: file.len().saturating_sub(at) as u64,
            }),
        });
    }
    let rest = file.get(at..).unwrap_or(&[]);
    let last_nonzero = rest.iter().rposition(|b| *b != 0);
    let torn = match last_nonzero {
        None => None,
        Some(last) => {
            // A hole at or after the recovery point is an unsynced tail
            // written back out of order; with no recovery point known, a
            // valid record after it means corruption.
            if recovery_next.is_none()
                && let Some(pos) = first_valid_record_after(rest)
            {
                let source = failure.unwrap_or(aof_record::RecordError::Truncated {
                    needed: RECORD_HEADER_SIZE as u64,
                    available: 0,
                });
                log::error!(
                    "segment {base_id}: invalid record at offset {data_end} followed by a valid record at offset {}",
                    data_end + pos as u64
                );
                return Err(AofError::Corruption {
                    segment: base_id,
                    offset: data_end,
                    source,
                });
            }
            Some((data_end, data_end + last as u64 + 1))
        }
    };
    Ok(Scan {
        offsets,
        data_end,
        last_timestamp,
        torn,
    })
}

/// Position of the first valid record that starts after `bytes[0]`.
fn first_valid_record_after(bytes: &[u8]) -> Option<usize> {
    (1..bytes.len().saturating_sub(RECORD_HEADER_SIZE - 1)).find(|&pos| {
        let h = &bytes[pos..];
        // Cheap filters first: version 1, known flags, zero reserved bytes.
        h[24] == 1
            && h[25] < 4
            && h[26..32].iter().all(|b| *b == 0)
            && decode_record(h, FORMAT_MAX_RECORD_SIZE).is_ok()
    })
}

/// A finalized segment, mapped into memory, readable by id in O(1).
#[derive(Debug)]
pub struct FinalizedSegment {
    base_id: u64,
    data: Bytes,
    footer: SegmentFooter,
}

impl FinalizedSegment {
    /// Maps the finalized segment `base_id` at `path` and checks its header and footer.
    pub(crate) fn open(fs: &dyn FileSystem, path: &Path, base_id: u64) -> AofResult<Self> {
        let file = fs.open(path, OpenMode::Read).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                AofError::MissingSegment {
                    segment: base_id,
                    path: path.to_owned(),
                }
            } else {
                AofError::io(path, e)
            }
        })?;
        let data = file.map().map_err(|e| AofError::io(path, e))?;
        Self::from_bytes(data, path, base_id)
    }

    /// Checks `data` as the finalized segment `base_id`.
    pub(crate) fn from_bytes(data: Bytes, path: &Path, base_id: u64) -> AofResult<Self> {
        let header = SegmentHeader::decode(&data).map_err(|source| AofError::InvalidSegmentFile {
            path: path.to_owned(),
            source,
        })?;
        if header.base_id != base_id {
            return Err(AofError::SegmentMismatch {
                segment: base_id,
                what: "base id in the segment header",
                expected: base_id,
                actual: header.base_id,
            });
        }
        let footer = SegmentFooter::decode(&data).map_err(|source| AofError::InvalidFooter {
            segment: base_id,
            source,
        })?;
        if footer.base_id != base_id {
            return Err(AofError::SegmentMismatch {
                segment: base_id,
                what: "base id in the segment footer",
                expected: base_id,
                actual: footer.base_id,
            });
        }
        // The offset table passed its checksum, but a crafted file can still
        // list offsets out of order: every read and truncation slices by
        // them, so they must rise from the header to below the data end
        // (finding 9).
        if base_id.checked_add(footer.record_count).is_none() {
            return Err(AofError::SegmentMismatch {
                segment: base_id,
                what: "record count in the footer (past the largest id)",
                expected: u64::MAX - base_id,
                actual: footer.record_count,
            });
        }
        let mut expected_min = SEGMENT_HEADER_SIZE as u64;
        for i in 0..footer.record_count {
            let at = footer.offset_of(&data, i).unwrap_or(u64::MAX);
            let first_ok = i > 0 || at == SEGMENT_HEADER_SIZE as u64;
            if !first_ok || at < expected_min || at + RECORD_HEADER_SIZE as u64 > footer.data_end {
                return Err(AofError::SegmentMismatch {
                    segment: base_id,
                    what: "offset table entry",
                    expected: expected_min,
                    actual: at,
                });
            }
            expected_min = at + RECORD_HEADER_SIZE as u64;
        }
        Ok(Self {
            base_id,
            data,
            footer,
        })
    }

    /// Id of the first record.
    #[must_use]
    pub fn base_id(&self) -> u64 {
        self.base_id
    }

    /// Number of records.
    #[must_use]
    pub fn record_count(&self) -> u64 {
        self.footer.record_count
    }

    /// The footer.
    #[must_use]
    pub fn footer(&self) -> &SegmentFooter {
        &self.footer
    }

    /// The record `id` (checksum-verified, zero-copy), `None` if the segment
    /// does not hold it.
    pub fn read(&self, id: u64) -> AofResult<Option<(RecordHeader, Bytes)>> {
        let Some(index) = id.checked_sub(self.base_id) else {
            return Ok(None);
        };
        let Some(offset) = self.footer.offset_of(&self.data, index) else {
            return Ok(None);
        };
        self.read_at(id, offset).map(Some)
    }

    /// Decodes and checks the record at `offset`, which must be `id`.
    pub(crate) fn read_at(&self, id: u64, offset: u64) -> AofResult<(RecordHeader, Bytes)> {
        let end = usize::try_from(self.footer.data_end)
            .unwrap_or(usize::MAX)
            .min(self.data.len());
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let Some(region) = self.data.get(start..end) else {
            return Err(AofError::SegmentMismatch {
                segment: self.base_id,
                what: "record offset in the offset table",
                expected: self.footer.data_end,
                actual: offset,
            });
        };
        let rec = checked_record(region, id, self.base_id, offset)?;
        let payload = start + RECORD_HEADER_SIZE;
        Ok((rec.header, self.data.slice(payload..payload + rec.payload.len())))
    }

    /// Verifies everything: every record in order against the offset table
    /// (so damage is reported with its offset), the end of the data, then
    /// the data checksum over the whole. Returns the number of records.
    pub fn verify(&self) -> AofResult<u64> {
        let data_end = self.footer.data_end;
        let mut at = SEGMENT_HEADER_SIZE as u64;
        for i in 0..self.footer.record_count {
            let listed = self.footer.offset_of(&self.data, i).unwrap_or(u64::MAX);
            if listed != at {
                return Err(AofError::SegmentMismatch {
                    segment: self.base_id,
                    what: "offset table entry",
                    expected: at,
                    actual: listed,
                });
            }
            let (header, _) = self.read_at(self.base_id + i, at)?;
            at += header.record_len();
        }
        if at != data_end {
            return Err(AofError::SegmentMismatch {
                segment: self.base_id,
                what: "end of record data",
                expected: data_end,
                actual: at,
            });
        }
        // Catches damage in the header, which no record covers.
        self.footer
            .verify_data(&self.data)
            .map_err(|source| AofError::InvalidFooter {
                segment: self.base_id,
                source,
            })?;
        Ok(self.footer.record_count)
    }

    /// Timestamp of the last record, if any.
    pub(crate) fn last_timestamp(&self) -> AofResult<Option<u64>> {
        match self.footer.record_count.checked_sub(1) {
            None => Ok(None),
            Some(last) => Ok(self.read(self.base_id + last)?.map(|(h, _)| h.timestamp_us)),
        }
    }

    /// The whole file's bytes.
    #[must_use]
    pub fn bytes(&self) -> &Bytes {
        &self.data
    }
}

/// Decodes the record at the start of `region` (at `offset` in segment
/// `segment`) and checks that it is record `id`.
pub(crate) fn checked_record(
    region: &[u8],
    id: u64,
    segment: u64,
    offset: u64,
) -> AofResult<aof_record::record::DecodedRecord<'_>> {
    let rec = decode_record(region, FORMAT_MAX_RECORD_SIZE).map_err(|source| AofError::Corruption {
        segment,
        offset,
        source,
    })?;
    if rec.header.id != id {
        return Err(AofError::SegmentMismatch {
            segment,
            what: "record id",
            expected: id,
            actual: rec.header.id,
        });
    }
    Ok(rec)
}

/// The offset table and footer that seal a segment whose data ends at `data_end`.
pub(crate) fn footer_bytes(base_id: u64, offsets: &[u32], data_end: u64, data_crc: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(offsets.len() * 4 + aof_record::SEGMENT_FOOTER_SIZE);
    for o in offsets {
        out.extend_from_slice(&o.to_le_bytes());
    }
    let footer = SegmentFooter {
        base_id,
        record_count: offsets.len() as u64,
        data_end,
        data_crc,
        table_crc: crc64_nvme(&out),
    };
    out.extend_from_slice(&footer.encode());
    out
}

/// Reads a whole file, opened for reading only when `read_only`.
pub(crate) fn read_whole(
    fs: &dyn FileSystem,
    path: &Path,
    read_only: bool,
) -> AofResult<(Arc<dyn FileHandle>, Bytes)> {
    let mode = if read_only {
        OpenMode::Read
    } else {
        OpenMode::ReadWrite
    };
    let file = fs.open(path, mode).map_err(|e| AofError::io(path, e))?;
    let len = file.len().map_err(|e| AofError::io(path, e))?;
    // No segment is larger than the largest segment size plus its offset
    // table and footer: never read (or allocate) more on a file's say-so.
    let limit = aof_record::config::MAX_SEGMENT_SIZE * 2;
    if len > limit {
        return Err(AofError::SegmentMismatch {
            segment: 0,
            what: "segment file size (larger than any segment)",
            expected: limit,
            actual: len,
        });
    }
    let bytes = file
        .read_vec_at(usize::try_from(len).unwrap_or(usize::MAX), 0)
        .map_err(|e| AofError::io(path, e))?;
    Ok((file, Bytes::from(bytes)))
}

/// CRC-64/NVME of `bytes`, as a running digest that can be continued.
pub(crate) fn digest_of(bytes: &[u8]) -> Crc64 {
    let mut d = Crc64::new();
    d.update(bytes);
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use aof_record::record::{RecordFlags, append_record};

    fn segment(records: &[&[u8]], base: u64) -> Vec<u8> {
        let mut f = SegmentHeader {
            base_id: base,
            created_at_us: 0,
        }
        .encode()
        .to_vec();
        for (i, r) in records.iter().enumerate() {
            append_record(&mut f, base + i as u64, i as u64, RecordFlags::NONE, r).unwrap();
        }
        f
    }

    #[test]
    fn scan_stops_at_zeros_and_at_the_end() {
        let mut f = segment(&[b"a", b"bb", b""], 10);
        let end = f.len() as u64;
        let s = scan_records(10, &f, None).unwrap();
        assert_eq!((s.offsets.len(), s.data_end, s.torn), (3, end, None));
        f.resize(4096, 0);
        let s = scan_records(10, &f, None).unwrap();
        assert_eq!(
            (s.offsets.len(), s.data_end, s.torn, s.last_timestamp),
            (3, end, None, Some(2))
        );
    }

    #[test]
    fn a_torn_tail_is_reported_and_a_hole_before_valid_data_is_corruption() {
        let full = segment(&[b"first", b"second", b"third"], 0);
        let second_at = 64 + 32 + 5;
        // Torn: the last record is cut short, zeros follow.
        let mut torn = full[..full.len() - 3].to_vec();
        torn.resize(1000, 0);
        let s = scan_records(0, &torn, None).unwrap();
        assert_eq!(s.offsets.len(), 2);
        assert_eq!(s.torn, Some((s.data_end, (full.len() - 3) as u64)));
        // Garbage instead of the second record, valid third record after it.
        let mut holed = full.clone();
        holed[second_at + 33] ^= 0xff;
        // Beyond the recovery point the hole is an unsynced tail: cut from it on.
        let s = scan_records(0, &holed, Some(1)).unwrap();
        assert_eq!((s.offsets.len(), s.data_end), (1, second_at as u64));
        assert_eq!(s.torn, Some((second_at as u64, full.len() as u64)));
        // Inside the durable prefix (and when none is known) it is corruption.
        assert!(matches!(
            scan_records(0, &holed, Some(2)),
            Err(AofError::Corruption { .. })
        ));
        match scan_records(0, &holed, None) {
            Err(AofError::Corruption {
                segment: 0, offset, ..
            }) => assert_eq!(offset, second_at as u64),
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn finalized_segments_read_by_id_and_verify() {
        let mut f = segment(&[b"x", b"yy", b"zzz"], 7);
        let data_end = f.len() as u64;
        let offsets = [64u32, 64 + 33, 64 + 33 + 34];
        f.extend_from_slice(&footer_bytes(7, &offsets, data_end, crc64_nvme(&f)));
        let seg = FinalizedSegment::from_bytes(Bytes::from(f.clone()), Path::new("t"), 7).unwrap();
        assert_eq!(seg.read(8).unwrap().unwrap().1, Bytes::from_static(b"yy"));
        assert_eq!(seg.read(10).unwrap(), None);
        assert_eq!(seg.read(6).unwrap(), None);
        assert_eq!(seg.verify().unwrap(), 3);
        assert!(FinalizedSegment::from_bytes(Bytes::from(f.clone()), Path::new("t"), 8).is_err());
        let mut bad = f;
        bad[64 + 33 + 33] ^= 1;
        let seg = FinalizedSegment::from_bytes(Bytes::from(bad), Path::new("t"), 7).unwrap();
        assert!(matches!(
            seg.read(8),
            Err(AofError::Corruption {
                segment: 7,
                offset: 97,
                ..
            })
        ));
        assert!(seg.verify().is_err());
    }
}
