//! The aof benchmark harness.
//!
//! Every figure is measured beside a baseline run in the same process and
//! reported as a ratio to it, so results stay comparable on a machine whose
//! speed drifts (shared cores, a virtual disk). Subject and baseline run in
//! alternating rounds; the reported rate is the median round, the ratio the
//! median of the per-round ratios.
//!
//! Both programs share one measuring loop ([`measure`]) and one table
//! renderer ([`report`]):
//!
//! - `aof-bench` (`cargo xtask bench`): the engine ([`engine`]), read-side
//!   ([`reads`]) and record-format ([`record`]) tables, one [`BenchResult`]
//!   per line ([`results`]);
//! - `aof-compare` (`cargo xtask compare`): the MDBX-vs-SQLite index suite
//!   ([`compare`]).
//!
//! `cargo bench -p aof-bench` runs the criterion benches of the record format.
//!
//! ```
//! use aof_bench::measure::{Budget, paired};
//! use std::time::Duration;
//!
//! let budget = Budget { rounds: 3, round_time: Duration::from_millis(1) };
//! let (mut a, mut b) = (0u64, 0u64);
//! let pair = paired(
//!     budget,
//!     &mut |n| { for i in 0..n { a = std::hint::black_box(a.wrapping_add(i)); } Ok(()) },
//!     &mut |n| { for i in 0..n { b = std::hint::black_box(b ^ i); } Ok(()) },
//! )?;
//! assert!(pair.subject.rate > 0.0 && pair.ratio > 0.0);
//! # Ok::<(), aof_bench::BoxError>(())
//! ```

pub mod compare;
pub mod crash_open;
pub mod engine;
pub mod measure;
pub mod payloads;
pub mod progress;
pub mod reads;
pub mod record;
pub mod report;
pub mod results;
pub mod scratch;

pub use results::{BenchResult, table, write_results};

/// Any error of a benchmark step.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Result of the harness's fallible steps: every error fails the run.
pub type Res<T> = Result<T, BoxError>;
