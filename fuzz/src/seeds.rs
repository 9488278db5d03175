//! The seed inputs of every target: small valid inputs (a record, a
//! segment header, an active and a finalized segment) under the knob
//! settings each target reads, so that a fuzzer starts from bytes that pass
//! every check and mutates from there.
//!
//! `examples/seeds.rs` writes them to `fuzz/seeds/<target>/`; the proptest
//! suites mutate them directly.

use crate::seal::seal_segment;
use aof_record::SegmentHeader;
use aof_record::record::{RecordFlags, append_record};

/// A segment file for `base_id` holding `payloads` (no footer), and the
/// offset of each record.
#[must_use]
pub fn active(base_id: u64, payloads: &[&[u8]]) -> (Vec<u8>, Vec<u32>) {
    let mut file = SegmentHeader {
        base_id,
        created_at_us: 1_700_000_000_000_000,
    }
    .encode()
    .to_vec();
    let mut offsets = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        offsets.push(u32::try_from(file.len()).expect("a seed is small"));
        let flags = if i % 2 == 0 {
            RecordFlags::NONE
        } else {
            RecordFlags::COMPRESSED
        };
        let id = base_id.wrapping_add(i as u64);
        append_record(&mut file, id, 1_700_000_000_000_000 + i as u64, flags, p)
            .expect("a small record encodes");
    }
    (file, offsets)
}

/// A finalized segment file for `base_id` holding `payloads`.
#[must_use]
pub fn finalized(base_id: u64, payloads: &[&[u8]]) -> Vec<u8> {
    let (mut file, offsets) = active(base_id, payloads);
    seal_segment(&mut file, base_id, &offsets);
    file
}

/// One file of a `directory_open` input: `[kind][len][bytes]`.
fn file(kind: u8, bytes: &[u8]) -> Vec<u8> {
    let len = u16::try_from(bytes.len()).expect("a seed file is small");
    let mut v = vec![kind];
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(bytes);
    v
}

fn with(knobs: &[u8], bytes: &[u8]) -> Vec<u8> {
    let mut v = knobs.to_vec();
    v.extend_from_slice(bytes);
    v
}

/// Every target's seeds: `(target, inputs)`, knob prefix included.
#[must_use]
pub fn all() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let three: [&[u8]; 3] = [b"first", b"", b"the third record, a little longer"];
    let (seg, _) = active(0, &three);
    let mut torn = seg.clone();
    torn.truncate(torn.len() - 7);
    torn.resize(torn.len() + 100, 0);
    let mut zeroed = seg.clone();
    zeroed.resize(1024, 0);
    let fin = finalized(0, &three);
    let fin_high = finalized(u64::MAX - 3, &three[..2]);
    let fin_empty = finalized(5, &[]);
    let mut record = Vec::new();
    append_record(&mut record, 7, 1, RecordFlags::NONE, b"hello").expect("encodes");
    let mut empty_record = Vec::new();
    append_record(&mut empty_record, u64::MAX, 0, RecordFlags::KNOWN, b"").expect("encodes");
    let header = SegmentHeader {
        base_id: 42,
        created_at_us: 1,
    }
    .encode();

    // Knob layouts: see crate::decoders and crate::log.
    let max = 1024u32.to_le_bytes();
    vec![
        (
            "record_decode",
            vec![
                with(&[max[0], max[1], max[2], max[3], 0], &record),
                with(&[max[0], max[1], max[2], max[3], 1], &empty_record),
                with(&[5, 0, 0, 0, 3], &record),
            ],
        ),
        ("segment_header", vec![with(&[0], &header), with(&[1], &header)]),
        (
            "segment_footer",
            vec![with(&[0], &fin), with(&[3], &fin_empty), with(&[1], &fin_high)],
        ),
        (
            "active_segment_recovery",
            vec![
                with(&[0, 3, 0, 0], &seg),
                with(&[0b1100_0000, 3, 0, 0], &torn),
                with(&[0b1100_0110, 3, 0, 0], &zeroed),
                with(&[0b1100_1111, 2, 0, 0], &seg),
                with(&[0b0011_0000, 3, 0, 0], &seg),
                with(&[0b1100_0000, 3, 0, 0], &fin),
            ],
        ),
        (
            "directory_open",
            vec![
                // A finalized segment 0 of three records, an active segment
                // 3 of two, and an index that says so.
                [vec![0, 3, 1, 0], file(0x20, b"first||third"), file(0x11, b"a|b")].concat(),
                // The same with no index (rebuilt from the files), a torn
                // tail, and the leftovers a crash leaves.
                [
                    vec![0, 3, 0, 0],
                    file(0x20, b"first||third"),
                    file(0x31, b"a|b|the torn one"),
                    file(0x06, &[0; 64]),
                    file(0x05, &seg[..80]),
                    file(0x07, b"torn"),
                    file(0x08, b"junk"),
                ]
                .concat(),
                // Segments as raw bytes (for the fuzzer to mutate), a
                // second finalized one, and an index with a wrong checksum.
                [
                    vec![0, 3, 0b1_0001, 2],
                    file(0x00, &fin),
                    file(0x21, b"x|y"),
                    file(0x52, b"z"),
                ]
                .concat(),
                // An index file of arbitrary bytes, a manifest and a lock.
                [
                    vec![0, 3, 0, 0],
                    file(0x04, b"SQLite format 3\0not really"),
                    file(0x10, b"one|two"),
                    file(0x03, b"AOFMANIFEST junk"),
                    file(0x0a, b""),
                ]
                .concat(),
                // A flipped byte in a sealed segment, an index claiming
                // one record too many, every entry active.
                [
                    vec![0, 2, 0b0_1101, 0],
                    file(0x40, b"p|q"),
                    file(0x71, b"headed only"),
                ]
                .concat(),
            ],
        ),
        (
            "finalized_segment",
            vec![
                with(&[0, 3, 0, 0], &fin),
                with(&[0b0011_0110, 3, 0, 0], &fin),
                with(&[0b0111_0110, 3, 0, 0], &fin),
                with(&[0b1011_0110, 3, 0, 2], &fin),
                with(&[0b0011_0110, 3, 0, 0], &fin_high),
                with(&[0b0011_0000, 3, 0, 0], &fin_empty),
            ],
        ),
    ]
}

/// The seeds of `target`.
///
/// # Panics
/// If `target` is not one of the fuzz targets.
#[must_use]
pub fn of(target: &str) -> Vec<Vec<u8>> {
    all()
        .into_iter()
        .find(|(t, _)| *t == target)
        .map(|(_, s)| s)
        .unwrap_or_else(|| panic!("no fuzz target {target:?}"))
}
