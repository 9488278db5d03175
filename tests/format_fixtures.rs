//! Checked-in files of every on-disk format version: every future version of
//! the code must keep reading them exactly.
//!
//! To add a fixture for a new format version, write it with the (ignored)
//! generator below, check it in, and never change it again.

use aof_record::record::{RecordFlags, append_record, decode_record};
use aof_record::segment::{SEGMENT_HEADER_SIZE, SegmentHeader};
use aof_tests::fixture;

/// The records of `segment-v1.seg`: ids 1000.., varied sizes, one empty payload.
fn v1_records() -> Vec<(u64, u64, RecordFlags, Vec<u8>)> {
    let ts = 1_763_700_000_000_000u64;
    vec![
        (1000, ts, RecordFlags::NONE, b"hello, aof".to_vec()),
        (1001, ts + 1, RecordFlags::NONE, Vec::new()),
        (1002, ts + 1, RecordFlags::NONE, vec![0xff; 1]),
        (1003, ts + 50, RecordFlags::NONE, (0..=255u8).collect()),
        (
            1004,
            ts + 51,
            RecordFlags::NONE,
            (0..5000u32).map(|i| (i % 251) as u8).collect(),
        ),
        (
            1005,
            ts + 99,
            RecordFlags::COMPRESSED,
            b"flag bits survive".to_vec(),
        ),
    ]
}

const V1_HEADER: SegmentHeader = SegmentHeader {
    base_id: 1000,
    created_at_us: 1_763_700_000_000_000,
};

#[test]
fn segment_v1_fixture_still_reads() {
    let bytes = std::fs::read(fixture("segment-v1.seg")).expect("fixture present");
    assert_eq!(SegmentHeader::decode(&bytes), Ok(V1_HEADER));
    let mut at = SEGMENT_HEADER_SIZE;
    let mut got = Vec::new();
    while at < bytes.len() {
        let rec = decode_record(&bytes[at..], 1 << 20).unwrap_or_else(|e| panic!("offset {at}: {e}"));
        got.push((
            rec.header.id,
            rec.header.timestamp_us,
            rec.header.flags,
            rec.payload.to_vec(),
        ));
        at += rec.encoded_len();
    }
    assert_eq!(got, v1_records());
}

#[test]
fn segment_v1_fixture_is_byte_stable() {
    // Encoding the same records today gives the same bytes: the format has not drifted.
    assert_eq!(std::fs::read(fixture("segment-v1.seg")).unwrap(), encode_v1());
}

fn encode_v1() -> Vec<u8> {
    let mut out = V1_HEADER.encode().to_vec();
    for (id, ts, flags, payload) in v1_records() {
        append_record(&mut out, id, ts, flags, &payload).unwrap();
    }
    out
}

#[test]
#[ignore = "writes the fixture; run once per new format version"]
fn write_segment_v1_fixture() {
    std::fs::write(fixture("segment-v1.seg"), encode_v1()).unwrap();
}
