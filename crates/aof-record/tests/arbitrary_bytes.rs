//! Arbitrary bytes through every decoder of bytes read from disk: records,
//! segment headers, segment footers and their offset tables.
//!
//! The checks are the fuzz targets' own (`fuzz/src/decoders.rs`, included
//! here), so they run on stable in every test run; `cargo xtask fuzz` runs
//! them under libFuzzer where a nightly toolchain is installed. Inputs are
//! random bytes, and mutations of the fuzz seeds (`fuzz/src/seeds.rs`) so
//! that many pass the checksums and reach the checks behind them.
//!
//! `AOF_ARBITRARY_CASES=N` sets the number of cases per property.

#[allow(
    dead_code,
    reason = "shared with the fuzz crate; not every helper is used here"
)]
#[path = "../../../fuzz/src/seal.rs"]
mod seal;

#[path = "../../../fuzz/src/decoders.rs"]
mod decoders;

#[allow(
    dead_code,
    reason = "shared with the fuzz crate; not every helper is used here"
)]
#[path = "../../../fuzz/src/seeds.rs"]
mod seeds;

#[allow(dead_code, reason = "shared test support; not every helper is used here")]
#[path = "../../../fuzz/src/mutations.rs"]
mod mutations;

use proptest::prelude::*;

use mutations::{Mutations, cases};

/// A seed of `target` with a few bytes overwritten and possibly cut short,
/// or plain random bytes.
fn input(target: &'static str) -> impl Strategy<Value = Vec<u8>> {
    mutations::input(
        seeds::of(target),
        Mutations {
            bytes: 6,
            word_width: 4,
            words: 0,
            knobs: 5,
            random_len: 300,
            mutated_weight: 3,
        },
    )
}

proptest! {
    #![proptest_config(cases(50_000))]

    #[test]
    fn record_decode(data in input("record_decode")) {
        decoders::record(&data);
    }

    #[test]
    fn segment_header_decode(data in input("segment_header")) {
        decoders::segment_header(&data);
    }

    #[test]
    fn segment_footer_decode(data in input("segment_footer")) {
        decoders::segment_footer(&data);
    }
}

#[test]
fn the_seeds_decode() {
    // The mutations start from valid inputs: check that they are.
    let record = &seeds::of("record_decode")[0];
    let rec = aof_record::record::decode_record(&record[5..], 1024).unwrap();
    assert_eq!(rec.payload, b"hello");
    let header = &seeds::of("segment_header")[0];
    assert_eq!(
        aof_record::SegmentHeader::decode(&header[1..]).unwrap().base_id,
        42
    );
    let file = &seeds::of("segment_footer")[0];
    let footer = aof_record::SegmentFooter::decode(&file[1..]).unwrap();
    assert_eq!(footer.record_count, 3);
    footer.verify_data(&file[1..]).unwrap();
}
