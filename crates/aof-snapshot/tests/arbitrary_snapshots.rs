//! Property tests of the frame decoder and the importer on arbitrary and
//! mutated bytes: never a panic, never an allocation beyond the limits,
//! and never an installed log unless the stream is intact.
//!
//! The `snapshot_stream` fuzz target's checks (`fuzz/src/snapshot.rs`,
//! included here) run on random inputs and mutations of its seeds, so they
//! run on stable in every test run; `cargo xtask fuzz snapshot_stream` runs
//! them under libFuzzer.

mod common;

#[allow(
    dead_code,
    reason = "shared with the fuzz crate; not every helper is used here"
)]
#[path = "../../../fuzz/src/snapshot.rs"]
mod fuzz_snapshot;

use aof_snapshot::wire::FrameReader;
use aof_snapshot::{ImportOptions, SnapshotError};
use proptest::prelude::*;
use std::sync::OnceLock;

/// One valid stream, made once.
fn valid() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let log = common::filled(&dir.path().join("src"), 60, 8 * 1024);
        common::encode(&common::chunks(&log, 2048))
    })
}

fn decode_all(bytes: &[u8]) -> Result<usize, SnapshotError> {
    let mut r = FrameReader::new(bytes);
    let mut n = 0;
    while r.next_chunk()?.is_some() {
        n += 1;
    }
    Ok(n)
}

fn import(bytes: &[u8]) -> Result<(), SnapshotError> {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("t");
    let r = aof_snapshot::import_from(bytes, &target, &ImportOptions::new(), &mut |_, _| {});
    assert!(!dir.path().join(".t.aof-import").exists(), "staging left behind");
    if r.is_err() {
        assert!(!target.exists(), "a failed import installed something");
    }
    r.map(drop)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = decode_all(&bytes);
        let _ = import(&bytes);
    }

    #[test]
    fn arbitrary_payloads_behind_a_valid_header_never_panic(
        payload in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        // A correct header and CRC around arbitrary bytes reaches bincode.
        let mut frame = Vec::new();
        frame.extend_from_slice(b"AOFS");
        frame.extend_from_slice(&1u16.to_le_bytes());
        frame.extend_from_slice(&0u16.to_le_bytes());
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        let mut crc = aof_record::checksum::Crc64::new();
        crc.update(&frame[..12]);
        crc.update(&payload);
        frame.extend_from_slice(&crc.finish().to_le_bytes());
        frame.extend_from_slice(&payload);
        let _ = decode_all(&frame);
        let _ = import(&frame);
    }

    #[test]
    fn any_flipped_byte_is_refused(at in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let mut bytes = valid().to_vec();
        let i = at.index(bytes.len());
        bytes[i] ^= xor;
        prop_assert!(import(&bytes).is_err());
    }

    #[test]
    fn any_cut_is_refused(at in any::<prop::sample::Index>()) {
        let bytes = valid();
        let i = at.index(bytes.len());
        prop_assert!(import(&bytes[..i]).is_err());
    }

    #[test]
    fn spliced_streams_are_refused(
        a in any::<prop::sample::Index>(),
        b in any::<prop::sample::Index>(),
        len in 1usize..5000,
    ) {
        // A run of the stream copied over another place of it.
        let mut bytes = valid().to_vec();
        let (from, to) = (a.index(bytes.len()), b.index(bytes.len()));
        let n = len.min(bytes.len() - from).min(bytes.len() - to);
        let src = bytes[from..from + n].to_vec();
        let changed = bytes[to..to + n] != src[..];
        bytes[to..to + n].copy_from_slice(&src);
        if changed {
            prop_assert!(import(&bytes).is_err());
        }
    }
}

/// The fuzz target's seeds, made once.
fn fuzz_seeds() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(fuzz_snapshot::seeds)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_fuzz_harness_holds_on_random_inputs(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        fuzz_snapshot::snapshot_stream(&bytes);
    }

    #[test]
    fn the_fuzz_harness_holds_on_mutated_seeds(
        seed in 0usize..3,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut bytes = fuzz_seeds()[seed].clone();
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        fuzz_snapshot::snapshot_stream(&bytes);
    }
}

#[test]
fn the_fuzz_seeds_import() {
    for seed in fuzz_seeds() {
        fuzz_snapshot::snapshot_stream(seed);
    }
    // And they are complete logs, not refusals: mode 1 reframes the payloads.
    let stream = fuzz_snapshot::valid_stream(12, 1024);
    assert_eq!(
        fuzz_snapshot::frames_of(&fuzz_snapshot::payloads_of(&stream)),
        stream
    );
    let fs = aof_core::testing::FaultyFileSystem::new();
    let options = ImportOptions::new().file_system(std::sync::Arc::new(fs));
    let imported = aof_snapshot::import_from(&stream[..], "/s/log", &options, &mut |_, _| {}).unwrap();
    assert_eq!(imported.metadata.last_id, Some(11));
}

#[test]
fn the_valid_stream_imports() {
    assert!(decode_all(valid()).unwrap() > 5);
    import(valid()).unwrap();
}
