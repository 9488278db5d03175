//! The checks behind the decoder targets: record, segment header, segment
//! footer and offset table. Each takes the raw fuzzer input and panics only
//! when a decoder breaks its contract.
//!
//! Shared by the cargo-fuzz targets and by the proptest suites that run the
//! same checks where no nightly toolchain is available.

use crate::seal::{Knobs, Reseal, fix_footer, fix_segment_header_checksum, reseal_records};
use aof_record::record::{RecordHeader, decode_record, encode_record};
use aof_record::{
    RECORD_HEADER_SIZE, SEGMENT_FOOTER_SIZE, SEGMENT_HEADER_SIZE, SegmentFooter, SegmentHeader,
};

/// `decode_record(bytes, max)` with `max` from the input.
///
/// Input: `[max: u32 LE][mode][record bytes...]`; mode bit 0 reseals the
/// record's checksum first, bit 1 also normalises version, flags and
/// reserved bytes, so the fuzzer gets past the checksum.
///
/// Checks: no panic; on success the record's size is within `max`, the
/// payload is the bytes after the header, the header parses alone and its
/// checksum verifies, and encoding the decoded record again gives the same
/// bytes; on failure with a parsable header and the whole payload present,
/// the checksum indeed does not verify.
pub fn record(data: &[u8]) {
    let (k, bytes) = Knobs::<5>::split(data);
    let max = k.u32_at(0);
    let mut bytes = bytes.to_vec();
    if k.bit(4, 0) {
        reseal_records(
            &mut bytes,
            Reseal {
                renumber: None,
                normalize: k.bit(4, 1),
            },
        );
    }
    match decode_record(&bytes, max) {
        Ok(rec) => {
            let h = rec.header;
            assert!(h.size <= max, "size {} over the maximum {max}", h.size);
            assert_eq!(rec.payload.len(), h.size as usize);
            assert_eq!(rec.encoded_len(), RECORD_HEADER_SIZE + rec.payload.len());
            assert_eq!(rec.payload, &bytes[RECORD_HEADER_SIZE..rec.encoded_len()]);
            assert_eq!(RecordHeader::parse(&bytes, max), Ok(h));
            assert_eq!(h.verify(rec.payload), Ok(()));
            let mut again = vec![0u8; rec.encoded_len()];
            let n = encode_record(&mut again, h.id, h.timestamp_us, h.flags, rec.payload)
                .expect("a decoded record encodes again");
            assert_eq!(n, rec.encoded_len());
            assert_eq!(again, &bytes[..n], "re-encoding differs from the decoded bytes");
        }
        Err(_) => {
            if let Ok(h) = RecordHeader::parse(&bytes, max)
                && let Some(payload) = bytes.get(RECORD_HEADER_SIZE..RECORD_HEADER_SIZE + h.size as usize)
            {
                assert!(
                    h.verify(payload).is_err(),
                    "decode refused a record whose header parses and checksum verifies"
                );
            }
        }
    }
}

/// `SegmentHeader::decode` on arbitrary bytes.
///
/// Input: `[mode][bytes...]`; mode bit 0 rewrites the checksum field so
/// the fuzzer reaches the checks behind it.
///
/// Checks: no panic; on success the bytes are at least a header long and
/// encoding the decoded header gives the first 64 bytes back.
pub fn segment_header(data: &[u8]) {
    let (k, bytes) = Knobs::<1>::split(data);
    let mut bytes = bytes.to_vec();
    if k.bit(0, 0) {
        fix_segment_header_checksum(&mut bytes);
    }
    if let Ok(h) = SegmentHeader::decode(&bytes) {
        assert!(bytes.len() >= SEGMENT_HEADER_SIZE);
        assert_eq!(
            &h.encode()[..],
            &bytes[..SEGMENT_HEADER_SIZE],
            "header does not round-trip"
        );
    }
}

/// `SegmentFooter::decode` over a whole file, then `offset_of` for every
/// index, `table` and `verify_data`.
///
/// Input: `[mode][file bytes...]`; mode bit 0 makes the footer consistent
/// (lengths, table and footer checksums; see [`fix_footer`]), bit 1 also
/// fixes the data checksum.
///
/// Checks: no panic; on success the footer's lengths add up to the file's,
/// its data end is past the segment header, every index below the record
/// count has an offset and the count itself has none, the table is
/// `4 × count` bytes, re-encoding gives the last 64 bytes back, and
/// `verify_data` agrees with a checksum computed here.
pub fn segment_footer(data: &[u8]) {
    let (k, bytes) = Knobs::<1>::split(data);
    let mut file = bytes.to_vec();
    if k.bit(0, 0) {
        fix_footer(&mut file, k.bit(0, 1));
    }
    let Ok(f) = SegmentFooter::decode(&file) else {
        return;
    };
    assert_eq!(f.file_len(), file.len() as u64);
    assert!(f.data_end >= SEGMENT_HEADER_SIZE as u64);
    assert_eq!(&f.encode()[..], &file[file.len() - SEGMENT_FOOTER_SIZE..]);
    let table = f.table(&file);
    assert_eq!(table.len() as u64, f.record_count * 4);
    for i in 0..f.record_count {
        let at = (f.data_end + i * 4) as usize;
        let want = u64::from(u32::from_le_bytes([
            file[at],
            file[at + 1],
            file[at + 2],
            file[at + 3],
        ]));
        assert_eq!(f.offset_of(&file, i), Some(want), "offset of record {i}");
    }
    assert_eq!(f.offset_of(&file, f.record_count), None);
    assert_eq!(f.offset_of(&file, u64::MAX), None);
    let data_ok = aof_record::checksum::crc64_nvme(&file[..f.data_end as usize]) == f.data_crc;
    assert_eq!(f.verify_data(&file).is_ok(), data_ok);
}
