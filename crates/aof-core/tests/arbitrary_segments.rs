//! Recovery of arbitrary segment files: bytes as the active segment of a
//! log, and as a finalized one, opened, read back, verified, appended to,
//! truncated and reopened through the public API, on the in-memory file
//! system of `aof_core::testing`.
//!
//! The checks are the fuzz targets' own (`fuzz/src/log.rs`, included
//! here), so they run on stable in every test run; `cargo xtask fuzz` runs
//! them under libFuzzer where a nightly toolchain is installed. Inputs are
//! random bytes and mutations of the fuzz seeds (`fuzz/src/seeds.rs`).
//! The findings not fixed yet (`fuzz/src/known.rs`) are steered around
//! here, and their minimised inputs in `fuzz/regressions/` are replayed
//! once they are fixed.
//!
//! `AOF_ARBITRARY_CASES=N` sets the number of cases per property.

#[allow(
    dead_code,
    reason = "shared with the fuzz crate; not every helper is used here"
)]
#[path = "../../../fuzz/src/known.rs"]
mod known;

#[allow(
    dead_code,
    reason = "shared with the fuzz crate; the entry points read the environment"
)]
#[path = "../../../fuzz/src/log.rs"]
mod log;

#[allow(
    dead_code,
    reason = "shared with the fuzz crate; not every helper is used here"
)]
#[path = "../../../fuzz/src/seal.rs"]
mod seal;

#[allow(
    dead_code,
    reason = "shared with the fuzz crate; not every helper is used here"
)]
#[path = "../../../fuzz/src/seeds.rs"]
mod seeds;

#[allow(dead_code, reason = "shared test support; not every helper is used here")]
#[path = "../../../fuzz/src/mutations.rs"]
mod mutations;

use known::Avoid;
use mutations::{Mutations, cases};
use proptest::prelude::*;
use std::path::Path;

/// A seed of `target` with a few bytes and 32-bit words (ids, sizes,
/// offset table entries) overwritten, knobs changed and possibly cut
/// short; or random bytes.
fn input(target: &'static str) -> impl Strategy<Value = Vec<u8>> {
    mutations::input(
        seeds::of(target),
        Mutations {
            bytes: 4,
            word_width: 4,
            words: 2,
            knobs: 4,
            random_len: 400,
            mutated_weight: 4,
        },
    )
}

proptest! {
    #![proptest_config(cases(600))]

    #[test]
    fn arbitrary_active_segment(data in input("active_segment_recovery")) {
        log::active_segment_avoiding(&data, Avoid::UNFIXED);
    }

    #[test]
    fn arbitrary_finalized_segment(data in input("finalized_segment")) {
        log::finalized_segment_avoiding(&data, Avoid::UNFIXED);
    }
}

#[test]
fn the_seeds_open_cleanly() {
    // Unmutated seeds make logs that open and read back: the properties
    // above start from inputs that reach the deep checks. (Seeds with ids
    // near u64::MAX are moved down: near the end of the id space a log is
    // refused with a typed error, since its next id would not exist; so is
    // a finalized segment holding no record, which the engine never seals.)
    let low_ids = Avoid::parse("ids-near-max,empty-finalized-loop");
    for (i, seed) in seeds::of("active_segment_recovery").iter().enumerate() {
        assert!(log::active_segment_avoiding(seed, low_ids), "seed {i}");
    }
    // Without its index entry and without a rebuild, the directory is refused.
    let mut unindexed = seeds::of("active_segment_recovery")[0].clone();
    unindexed[0] = 0b0001_0000;
    assert!(!log::active_segment_avoiding(&unindexed, low_ids));
    for (i, seed) in seeds::of("finalized_segment").iter().enumerate() {
        assert!(log::finalized_segment_avoiding(seed, low_ids), "seed {i}");
    }
}

/// Replays every minimised finding in `fuzz/regressions/` whose fix has
/// landed (those in [`Avoid::UNFIXED`] are skipped and listed).
#[test]
fn fixed_findings_stay_fixed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions");
    type Check = fn(&[u8], Avoid) -> bool;
    let targets: [(&str, Check); 2] = [
        ("active_segment_recovery", log::active_segment_avoiding),
        ("finalized_segment", log::finalized_segment_avoiding),
    ];
    let mut replayed = 0;
    for (target, check) in targets {
        let Ok(dir) = std::fs::read_dir(root.join(target)) else {
            continue;
        };
        for file in dir.flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            if Avoid::UNFIXED.avoids(&name) {
                eprintln!("skipped {target}/{name}: not fixed yet");
                continue;
            }
            let data = std::fs::read(file.path()).unwrap();
            let _opened = check(&data, Avoid::NONE);
            replayed += 1;
        }
    }
    eprintln!("replayed {replayed} fixed findings");
}

#[test]
fn finding_names_parse() {
    assert_eq!(Avoid::parse(""), Avoid::NONE);
    assert_eq!(Avoid::parse("unfixed"), Avoid::UNFIXED);
    let all = Avoid::parse("ids-near-max, empty-finalized-loop,offset-table-unchecked");
    assert_eq!(
        all,
        Avoid {
            ids_near_max: true,
            empty_finalized_loop: true,
            offset_table_unchecked: true,
        }
    );
    assert!(all.avoids("ids-near-max-record-id-u64-max") && all.avoids("empty-finalized-loop"));
    assert!(all.avoids("offset-table-unchecked-truncate-slice"));
    assert!(!Avoid::parse("ids-near-max").avoids("empty-finalized-loop"));
    assert!(std::panic::catch_unwind(|| Avoid::parse("no-such-finding")).is_err());
}
