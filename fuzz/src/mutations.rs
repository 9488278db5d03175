//! Inputs for the proptest fallbacks of the fuzz targets: random bytes, or
//! a fuzz seed with a few bytes and little-endian words overwritten, knob
//! bytes changed, and possibly cut short.
//!
//! Included (`#[path]`) by the stable test suites that replay the fuzz
//! harnesses (`crates/aof-record/tests/arbitrary_bytes.rs`,
//! `crates/aof-core/tests/arbitrary_segments.rs`,
//! `crates/aof/tests/arbitrary_directories.rs`); the fuzz crate itself does
//! not compile it: libFuzzer mutates on its own.

use proptest::prelude::*;
use proptest::sample::Index;

/// How a seed is mutated, and how often random bytes are tried instead.
#[derive(Debug, Clone, Copy)]
pub struct Mutations {
    /// At most this many bytes overwritten (exclusive bound).
    pub bytes: usize,
    /// Width of an overwritten word (ids, sizes, offsets): 2 or 4 bytes.
    pub word_width: usize,
    /// At most this many words overwritten (0: none).
    pub words: usize,
    /// Knob bytes at the start of the input that may be changed.
    pub knobs: usize,
    /// Longest random input (exclusive bound).
    pub random_len: usize,
    /// Weight of mutated seeds against random inputs (weight 1).
    pub mutated_weight: u32,
}

/// Cases per property: `default`, or `AOF_ARBITRARY_CASES` when set.
pub fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("AOF_ARBITRARY_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Random bytes, or one of `seeds` mutated as `m` says.
pub fn input(seeds: Vec<Vec<u8>>, m: Mutations) -> impl Strategy<Value = Vec<u8>> {
    let width = m.word_width;
    let mutated = (
        proptest::sample::select(seeds),
        proptest::collection::vec((any::<Index>(), any::<u8>()), 0..m.bytes),
        proptest::collection::vec((any::<Index>(), any::<u32>()), 0..=m.words),
        proptest::option::of(any::<Index>()),
        proptest::collection::vec((0..m.knobs, any::<u8>()), 0..3),
    )
        .prop_map(move |(mut seed, edits, words, cut, knobs)| {
            for (at, byte) in edits {
                let i = at.index(seed.len());
                seed[i] = byte;
            }
            for (at, word) in words {
                let i = at.index(seed.len().saturating_sub(width - 1));
                if let Some(w) = seed.get_mut(i..i + width) {
                    w.copy_from_slice(&word.to_le_bytes()[..width]);
                }
            }
            for (at, byte) in knobs {
                if let Some(b) = seed.get_mut(at) {
                    *b = byte;
                }
            }
            if let Some(cut) = cut {
                seed.truncate(cut.index(seed.len() + 1));
            }
            seed
        });
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..m.random_len),
        m.mutated_weight => mutated,
    ]
}
