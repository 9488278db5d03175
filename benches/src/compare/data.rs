//! The synthetic index every workload runs on, and the random inputs.

use aof_record::SegmentEntry;

/// Ids per segment.
pub const SPAN: u64 = 100;
/// `created_at` of segment 0, in µs since the epoch.
pub const T0: u64 = 1_700_000_000_000_000;
/// µs between the `created_at` of consecutive segments; each finalized
/// segment lives `TICK - 1` µs.
pub const TICK: u64 = 1_000;
/// First base id of the entries `insert_single` appends, far above the rest.
pub const APPEND_BASE: u64 = 1 << 40;
/// Width of a `time_range` query window: about ten segments.
pub const WINDOW_US: u64 = 10 * TICK;
/// Entries `get_segments_for_archiving` asks for in `status_archiving`.
pub const ARCHIVE_COUNT: usize = 16;

/// `n` finalized segments followed by one active one (the last of
/// [`Dataset::main`]), and a pool of finalized entries to append one by one.
#[derive(Debug)]
pub struct Dataset {
    /// Number of finalized segments.
    pub n: u64,
    /// The `n + 1` entries of the index, then the append pool.
    pub all: Vec<SegmentEntry>,
    /// Length of the index part of [`Dataset::all`]: `n + 1`.
    pub main: usize,
}

impl Dataset {
    /// `n` finalized segments, one active, and `appends` entries to append.
    #[must_use]
    pub fn new(n: u64, appends: usize) -> Self {
        let mut all: Vec<SegmentEntry> = (0..n).map(|i| finalized(i * SPAN, T0 + i * TICK)).collect();
        let base = n * SPAN;
        let mut active = SegmentEntry::new_active(base, T0 + n * TICK, format!("{base:020}.seg"));
        active
            .set_tail(Some(base + 9), 4096)
            .expect("a new entry is active");
        all.push(active);
        let main = all.len();
        all.extend((0..appends as u64).map(|j| finalized(APPEND_BASE + j * SPAN, T0 + (n + 1 + j) * TICK)));
        Self { n, all, main }
    }

    /// Base id of the active segment.
    #[must_use]
    pub fn active_base(&self) -> u64 {
        self.n * SPAN
    }

    /// The entries of the index (without the append pool).
    #[must_use]
    pub fn index_entries(&self) -> &[SegmentEntry] {
        &self.all[..self.main]
    }

    /// `count` pseudo-random ids held by the finalized segments.
    #[must_use]
    pub fn random_ids(&self, count: usize, seed: u64) -> Vec<u64> {
        let mut rng = XorShift::new(seed);
        (0..count).map(|_| rng.next_u64() % (self.n * SPAN)).collect()
    }

    /// `count` pseudo-random `(start, end)` windows of [`WINDOW_US`].
    #[must_use]
    pub fn random_windows(&self, count: usize, seed: u64) -> Vec<(u64, u64)> {
        let mut rng = XorShift::new(seed);
        (0..count)
            .map(|_| {
                let start = T0 + rng.next_u64() % (self.n * TICK);
                (start, start + WINDOW_US)
            })
            .collect()
    }
}

fn finalized(base: u64, created_at: u64) -> SegmentEntry {
    SegmentEntry::new_active(base, created_at, format!("{base:020}.seg"))
        .finalize(
            Some(base + SPAN - 1),
            1 << 26,
            base ^ 0x5555,
            created_at + TICK - 1,
        )
        .expect("an active entry finalizes")
}

/// xorshift64: deterministic and cheap.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator; a zero seed is replaced.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 { 0x9e37_79b9_7f4a_7c15 } else { seed })
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Endless round-robin over a slice.
#[derive(Debug)]
pub struct Cycle<'a, T> {
    items: &'a [T],
    at: usize,
}

impl<'a, T: Copy> Cycle<'a, T> {
    /// Starts at `offset` (modulo the length); `items` must not be empty.
    #[must_use]
    pub fn new(items: &'a [T], offset: usize) -> Self {
        Self {
            items,
            at: offset % items.len().max(1),
        }
    }

    /// The next item.
    pub fn next_item(&mut self) -> T {
        let x = self.items[self.at];
        self.at += 1;
        if self.at == self.items.len() {
            self.at = 0;
        }
        x
    }
}
