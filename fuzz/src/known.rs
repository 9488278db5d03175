//! Findings of these fuzzers that the engine has not fixed yet, and how a
//! run steers around them so that it can look for new ones.
//!
//! Each finding has a name, a minimised input under
//! `fuzz/regressions/<target>/`, and a description in `fuzz/README.md`.
//! `AOF_FUZZ_AVOID=name,name` (or `unfixed`: every finding in
//! [`Avoid::UNFIXED`], which is what CI uses) makes the harnesses stay clear
//! of the inputs that trigger them. Once the engine is fixed, the finding
//! is turned off in [`Avoid::UNFIXED`]: CI then fuzzes into it again, and
//! the proptest suite replays its regression input.

use std::sync::OnceLock;

/// Which known findings a run steers around.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Avoid {
    /// `ids-near-max`: ids close to `u64::MAX` overflow in the engine's id
    /// arithmetic (a panic in debug builds). Avoided by keeping base ids
    /// below `u64::MAX / 2`.
    pub ids_near_max: bool,
    /// `empty-finalized-loop`: recovery loops forever, growing memory, when
    /// the segment file at the index's next id is sealed with no records.
    /// Avoided by giving the index entry at least one record.
    pub empty_finalized_loop: bool,
    /// `offset-table-unchecked`: nothing checks that a finalized segment's
    /// offset table increases and stays inside the data, and
    /// `truncate_after` slices the file at an entry (a panic when it lies
    /// past the end). Avoided by not truncating such a segment.
    pub offset_table_unchecked: bool,
}

impl Avoid {
    /// Nothing avoided: every finding is reported.
    pub const NONE: Self = Self {
        ids_near_max: false,
        empty_finalized_loop: false,
        offset_table_unchecked: false,
    };

    /// Every finding not fixed yet (all three are fixed: the regression
    /// inputs replay in `crates/aof-core/tests/arbitrary_segments.rs`).
    pub const UNFIXED: Self = Self {
        ids_near_max: false,
        empty_finalized_loop: false,
        offset_table_unchecked: false,
    };

    /// Parses a comma-separated list of finding names; `unfixed` means [`Avoid::UNFIXED`].
    ///
    /// # Panics
    /// On an unknown name, so that a stale list in CI is noticed.
    #[must_use]
    pub fn parse(list: &str) -> Self {
        let mut avoid = Self::NONE;
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "unfixed" => avoid = Self::UNFIXED,
                "ids-near-max" => avoid.ids_near_max = true,
                "empty-finalized-loop" => avoid.empty_finalized_loop = true,
                "offset-table-unchecked" => avoid.offset_table_unchecked = true,
                other => panic!("AOF_FUZZ_AVOID: unknown finding {other:?}"),
            }
        }
        avoid
    }

    /// The findings named by `AOF_FUZZ_AVOID`, read once per process.
    #[must_use]
    pub fn from_env() -> Self {
        static AVOID: OnceLock<Avoid> = OnceLock::new();
        *AVOID.get_or_init(|| Self::parse(&std::env::var("AOF_FUZZ_AVOID").unwrap_or_default()))
    }

    /// Whether the finding whose name starts `file_name` (a file of
    /// `fuzz/regressions/`) is avoided.
    #[must_use]
    pub fn avoids(&self, file_name: &str) -> bool {
        (self.ids_near_max && file_name.starts_with("ids-near-max"))
            || (self.empty_finalized_loop && file_name.starts_with("empty-finalized-loop"))
            || (self.offset_table_unchecked && file_name.starts_with("offset-table-unchecked"))
    }

    /// `base`, moved away from `u64::MAX` when `ids-near-max` is avoided.
    #[must_use]
    pub fn base_id(&self, base: u64) -> u64 {
        if self.ids_near_max && base > u64::MAX / 2 {
            base & 0xffff_ffff
        } else {
            base
        }
    }
}
