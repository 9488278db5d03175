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

/// The records of `segment-payloads-v1.seg`: compressed, encrypted, both,
/// and plain, as the engine stores them (segment base id 0, key id 7).
fn payload_records() -> Vec<Vec<u8>> {
    let line = b"2026-12-04T11:00:00Z INFO GET /api/v1/items status=200 user=alice took=12ms ".repeat(6);
    vec![
        b"plain and short".to_vec(),
        line.clone(),
        Vec::new(),
        (0..3000u32).map(|i| (i % 7) as u8).collect(),
        line,
    ]
}

/// The key of the encrypted half of the payload fixture.
fn fixture_keys() -> std::sync::Arc<aof::KeyRing> {
    std::sync::Arc::new(aof::KeyRing::new(aof::EncryptionKey::new(7, [0x42; 32])))
}

fn payload_config(compress: bool, encrypt: bool) -> aof::AofConfig {
    aof::AofConfig::builder()
        .pre_allocate_enabled(false)
        .enable_compression(compress)
        .enable_encryption(encrypt)
        .build()
        .unwrap()
}

/// The fixture's segment, copied into a fresh log directory and opened
/// with an empty index (rebuilt from the file) and the fixture's key.
#[test]
fn compressed_and_encrypted_payload_fixture_still_reads() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture("segment-payloads-v1.seg"),
        tmp.path().join("00000000000000000000.seg"),
    )
    .unwrap();
    let log = aof::Builder::new(tmp.path())
        .config(payload_config(false, false))
        .keys(fixture_keys())
        .rebuild_index(true)
        .open()
        .unwrap();
    let got: Vec<Vec<u8>> = log
        .reader(0)
        .unwrap()
        .map(|r| r.unwrap().payload.to_vec())
        .collect();
    let want = payload_records();
    // Records 0..5 plain+compressed, 5..10 encrypted+compressed, 10..15 encrypted only.
    let expected: Vec<Vec<u8>> = want.iter().chain(&want).chain(&want).cloned().collect();
    assert_eq!(got, expected);
    // Every flag combination is in the file.
    let bytes = std::fs::read(fixture("segment-payloads-v1.seg")).unwrap();
    let mut at = SEGMENT_HEADER_SIZE;
    let mut flags = std::collections::BTreeSet::new();
    while let Ok(rec) = decode_record(&bytes[at..], 1 << 20) {
        flags.insert(rec.header.flags.bits());
        at += rec.encoded_len();
    }
    assert_eq!(flags.into_iter().collect::<Vec<_>>(), [0, 1, 2, 3]);
}

#[test]
#[ignore = "writes the fixture; run once per new format version"]
fn write_payload_fixture() {
    let tmp = tempfile::tempdir().unwrap();
    for (compress, encrypt) in [(true, false), (true, true), (false, true)] {
        let log = aof::Builder::new(tmp.path())
            .config(payload_config(compress, encrypt))
            .keys(fixture_keys())
            .open()
            .unwrap();
        for p in payload_records() {
            log.append(&p).unwrap();
        }
        log.close_blocking().unwrap();
    }
    std::fs::copy(
        tmp.path().join("00000000000000000000.seg"),
        fixture("segment-payloads-v1.seg"),
    )
    .unwrap();
}
