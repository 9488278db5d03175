//! [`Sweep`]: run a workload, crash it at each operation (or at seeded
//! ones), and check every crash image a set of [`CrashMode`]s gives.

use super::faulty_fs::{CrashMode, FaultyFileSystem};
use super::model::SplitMix;
use super::ops::{Crashed, OpCounting, OpCounts};
use crate::fs::FileSystem;
use std::collections::BTreeSet;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

/// Which crash points a [`Sweep`] tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CrashPoints {
    /// Every counted operation of the workload.
    Every,
    /// `count` distinct operations drawn by `seed` (all of them when the
    /// workload has no more).
    Sample {
        /// Draws the points.
        seed: u64,
        /// How many.
        count: u64,
    },
}

/// One crash image a [`Sweep`] checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrashCase {
    /// Where the workload crashed; `None` for the image taken after it ran
    /// to its end (a crash right after its last operation).
    pub crash: Option<Crashed>,
    /// How the image was built.
    pub mode: CrashMode,
}

impl fmt::Display for CrashCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.crash {
            Some(c) => write!(f, "crash at op {} ({}), {:?}", c.index, c.kind, self.mode),
            None => write!(f, "crash after the end, {:?}", self.mode),
        }
    }
}

/// A check that failed (or panicked) on one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepFailure {
    /// The image.
    pub case: CrashCase,
    /// What the checker said.
    pub message: String,
}

/// What a [`Sweep`] did and found.
#[derive(Debug, Clone, Default)]
pub struct SweepReport {
    /// The operations of a run without a crash, by kind.
    pub ops: OpCounts,
    /// Crash points tried (the image after the end not included).
    pub points: u64,
    /// Crash points the workload did not reach (it did fewer operations
    /// than in the run without a crash: background threads vary the order).
    pub not_reached: Vec<u64>,
    /// Images checked.
    pub images: u64,
    /// Every failed check.
    pub failures: Vec<SweepFailure>,
    /// Runs whose workload panicked: the crash point (`None`: the run
    /// without a crash) and the panic's message. No image is checked then.
    pub workload_panics: Vec<(Option<Crashed>, String)>,
}

impl SweepReport {
    /// The failures whose mode `mode` says yes to.
    pub fn failures_where(&self, mode: impl Fn(CrashMode) -> bool) -> impl Iterator<Item = &SweepFailure> {
        self.failures.iter().filter(move |f| mode(f.case.mode))
    }

    /// A row of the crash-sweep tables in `docs/durability.md`: `| name |
    /// points | images | failures | workload panics | points not reached |`.
    pub fn table_row(&self, name: &str) -> String {
        format!(
            "| {name} | {} | {} | {} | {} | {} |",
            self.points,
            self.images,
            self.failures.len(),
            self.workload_panics.len(),
            self.not_reached.len()
        )
    }

    /// Prints [`SweepReport::table_row`], then the first failures and
    /// workload panics (a test's output, shown with `--nocapture`).
    pub fn print_summary(&self, name: &str) {
        println!("{}", self.table_row(name));
        for f in self.failures.iter().take(10) {
            println!("    FAIL {}: {}", f.case, f.message);
        }
        for (c, p) in self.workload_panics.iter().take(5) {
            println!("    PANIC {c:?}: {p}");
        }
    }

    /// Panics, listing the first failures, unless no check failed and no
    /// workload panicked.
    #[track_caller]
    pub fn assert_clean(&self) {
        assert!(
            self.failures.is_empty() && self.workload_panics.is_empty(),
            "{self}"
        );
    }
}

impl fmt::Display for SweepReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} crash points ({} not reached), {} images, {} failures, {} workload panics; ops: {}",
            self.points,
            self.not_reached.len(),
            self.images,
            self.failures.len(),
            self.workload_panics.len(),
            self.ops
        )?;
        for (crash, message) in self.workload_panics.iter().take(10) {
            match crash {
                Some(c) => writeln!(
                    f,
                    "  workload panicked, crash at op {} ({}): {message}",
                    c.index, c.kind
                )?,
                None => writeln!(f, "  workload panicked without a crash: {message}")?,
            }
        }
        for failure in self.failures.iter().take(10) {
            writeln!(f, "  {}: {}", failure.case, failure.message)?;
        }
        if self.failures.len() > 10 {
            writeln!(f, "  ... and {} more", self.failures.len() - 10)?;
        }
        Ok(())
    }
}

/// A crash sweep: runs a workload once to count its operations, then once
/// per crash point on a fresh copy of a base file system, and hands every
/// crash image to a checker together with what the workload returned.
///
/// The workload gets the file system as `Arc<dyn FileSystem>`, runs until an
/// operation fails (at the crash, every later one fails too), and returns
/// what it had acknowledged; it must stop its threads before returning. The
/// checker gets the image, that value and the case, and says `Err` (or
/// panics) when the image breaks a promise.
///
/// Crash during recovery: start a second sweep whose base is a crash image
/// and whose workload is the recovery, with [`OpCounting::All`] so that
/// reads are crash points.
///
/// ```
/// use aof_core::testing::{CrashMode, FaultyFileSystem, Sweep};
/// use aof_core::{FileSystem, OpenMode};
/// use std::path::Path;
///
/// // Append 3 records of 100 bytes, each synced before it counts.
/// let report = Sweep::new(&FaultyFileSystem::new())
///     .modes([CrashMode::ProcessKill, CrashMode::LoseUnsynced])
///     .writeback_seeds(0..16)
///     .run(
///         |fs| {
///             let mut acked = 0u64;
///             let _ = (|| -> std::io::Result<()> {
///                 let f = fs.open(Path::new("/log"), OpenMode::CreateNew)?;
///                 fs.sync_dir(Path::new("/"))?;
///                 for i in 0..3u64 {
///                     f.write_all_at(&[i as u8 + 1; 100], i * 100)?;
///                     f.sync_data()?;
///                     acked = i + 1;
///                 }
///                 Ok(())
///             })();
///             acked
///         },
///         |img, acked, _case| {
///             let data = img.read_file(Path::new("/log")).unwrap_or_default();
///             for i in 0..*acked {
///                 let at = (i * 100) as usize;
///                 if data.get(at..at + 100) != Some(&[i as u8 + 1; 100][..]) {
///                     return Err(format!("record {i} lost"));
///                 }
///             }
///             Ok(())
///         },
///     );
/// report.assert_clean();
/// assert_eq!(report.points, 8); // create, sync_dir, 3 × (write, sync)
/// ```
#[derive(Debug, Clone)]
pub struct Sweep {
    base: FaultyFileSystem,
    counting: OpCounting,
    points: CrashPoints,
    modes: Vec<CrashMode>,
}

impl Sweep {
    /// A sweep starting each run from a deep copy of `base`, crashing at
    /// every mutating operation, under [`CrashMode::ProcessKill`],
    /// [`CrashMode::LoseUnsynced`], [`CrashMode::TearLastWrite`] and
    /// [`CrashMode::Writeback`] with seeds 0..8.
    #[must_use]
    pub fn new(base: &FaultyFileSystem) -> Self {
        Self {
            base: base.deep_clone(),
            counting: OpCounting::Mutations,
            points: CrashPoints::Every,
            modes: vec![
                CrashMode::ProcessKill,
                CrashMode::LoseUnsynced,
                CrashMode::TearLastWrite,
            ],
        }
        .writeback_seeds(0..8)
    }

    /// Which operations are crash points.
    #[must_use]
    pub fn counting(mut self, counting: OpCounting) -> Self {
        self.counting = counting;
        self
    }

    /// Which of them to try.
    #[must_use]
    pub fn points(mut self, points: CrashPoints) -> Self {
        self.points = points;
        self
    }

    /// The crash modes, replacing the ones set so far.
    #[must_use]
    pub fn modes(mut self, modes: impl IntoIterator<Item = CrashMode>) -> Self {
        self.modes = modes.into_iter().collect();
        self
    }

    /// Adds [`CrashMode::Writeback`] with each of `seeds`.
    #[must_use]
    pub fn writeback_seeds(mut self, seeds: impl IntoIterator<Item = u64>) -> Self {
        self.modes
            .extend(seeds.into_iter().map(|seed| CrashMode::Writeback { seed }));
        self
    }

    fn fresh(&self) -> FaultyFileSystem {
        let fs = self.base.deep_clone();
        fs.set_counting(self.counting);
        fs
    }

    /// Runs the sweep (see [`Sweep`]).
    pub fn run<T>(
        &self,
        workload: impl Fn(Arc<dyn FileSystem>) -> T,
        check: impl Fn(&FaultyFileSystem, &T, &CrashCase) -> Result<(), String>,
    ) -> SweepReport {
        let mut report = SweepReport::default();
        let run = |fs: &FaultyFileSystem| {
            let dyn_fs: Arc<dyn FileSystem> = Arc::new(fs.clone());
            catch_unwind(AssertUnwindSafe(|| workload(dyn_fs))).map_err(|p| panic_text(&*p))
        };
        let clean = self.fresh();
        let total = clean.ops();
        let outcome = run(&clean);
        report.ops = clean.op_counts();
        let total = clean.ops() - total;
        self.check_images(&clean, None, outcome, &check, &mut report);
        for k in self.crash_points(total) {
            report.points += 1;
            let fs = self.fresh();
            fs.crash_at(k);
            let outcome = run(&fs);
            match fs.crash_point() {
                Some(crash) => self.check_images(&fs, Some(crash), outcome, &check, &mut report),
                None => report.not_reached.push(k),
            }
        }
        report
    }

    fn crash_points(&self, total: u64) -> Vec<u64> {
        match self.points {
            CrashPoints::Every => (0..total).collect(),
            CrashPoints::Sample { seed, count } if count < total => {
                let mut rng = SplitMix::new(seed);
                let mut picked = BTreeSet::new();
                while (picked.len() as u64) < count {
                    picked.insert(rng.below(total));
                }
                picked.into_iter().collect()
            }
            CrashPoints::Sample { .. } => (0..total).collect(),
        }
    }

    fn check_images<T>(
        &self,
        fs: &FaultyFileSystem,
        crash: Option<Crashed>,
        outcome: Result<T, String>,
        check: &impl Fn(&FaultyFileSystem, &T, &CrashCase) -> Result<(), String>,
        report: &mut SweepReport,
    ) {
        let out = match outcome {
            Ok(out) => out,
            Err(panic) => {
                report.workload_panics.push((crash, panic));
                return;
            }
        };
        for &mode in &self.modes {
            let case = CrashCase { crash, mode };
            let img = fs.crash_image(mode);
            report.images += 1;
            let verdict = catch_unwind(AssertUnwindSafe(|| check(&img, &out, &case)))
                .unwrap_or_else(|p| Err(format!("the checker panicked: {}", panic_text(&*p))));
            if let Err(message) = verdict {
                report.failures.push(SweepFailure { case, message });
            }
        }
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic".to_owned())
}
