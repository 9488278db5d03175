//! The aof benchmark harness.
//!
//! Every figure is measured beside a baseline run in the same process and
//! reported as a ratio to it, so results stay comparable on a machine whose
//! speed drifts (shared cores, a virtual disk). Subject and baseline run in
//! alternating rounds; the reported rate is the median round.
//!
//! `cargo xtask bench` runs the `aof-bench` binary; `cargo bench -p aof-bench`
//! runs the criterion benches of the same operations.

pub mod compare;
pub mod engine;
pub mod reads;
pub mod record;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};

/// One line of results: a workload on one configuration, or a baseline.
///
/// Serialised as one object of `{"results": [...]}`; fields that do not apply
/// are `null`.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    /// What was measured, e.g. `record_encode`, `baseline_memcpy`.
    pub workload: String,
    /// Flush strategy, where one applies.
    pub strategy: Option<String>,
    /// Payload size in bytes.
    pub record_size: usize,
    /// Concurrent appenders (1 where not applicable).
    pub appenders: usize,
    /// Median records per second.
    pub records_per_sec: f64,
    /// Median payload-and-header bytes per second.
    pub bytes_per_sec: f64,
    /// Median per-operation latency, where measured.
    pub p50_us: Option<f64>,
    /// 99th percentile per-operation latency, where measured.
    pub p99_us: Option<f64>,
    /// The baseline's records per second, measured in the same run.
    pub baseline_records_per_sec: Option<f64>,
    /// `records_per_sec / baseline_records_per_sec`, median over paired rounds.
    pub ratio_to_baseline: Option<f64>,
    /// The target this figure is judged against, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Whether the target was met.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_met: Option<bool>,
}

/// How long and how often to measure.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Rounds per subject (and per baseline).
    pub rounds: usize,
    /// Least wall time of one round.
    pub round_time: Duration,
}

impl Budget {
    /// The full run.
    #[must_use]
    pub const fn full() -> Self {
        Self {
            rounds: 9,
            round_time: Duration::from_millis(150),
        }
    }

    /// `--quick`: fewer, shorter rounds.
    #[must_use]
    pub const fn quick() -> Self {
        Self {
            rounds: 5,
            round_time: Duration::from_millis(40),
        }
    }
}

/// The median of `xs` (which must not be empty).
#[must_use]
pub fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// Runs `op(n)` (which performs `n` operations) until one call takes at
/// least `round_time`, and returns that `n`.
pub fn calibrate(round_time: Duration, op: &mut dyn FnMut(u64)) -> u64 {
    let mut n = 1u64;
    loop {
        let t = Instant::now();
        op(n);
        let el = t.elapsed();
        if el >= round_time || n >= 1 << 40 {
            return n;
        }
        let scale = if el.is_zero() {
            100.0
        } else {
            round_time.as_secs_f64() / el.as_secs_f64() * 1.2
        };
        n = ((n as f64) * scale.clamp(1.5, 100.0)).ceil() as u64;
    }
}

/// Paired measurement: subject and baseline rounds alternate.
#[derive(Debug, Clone, Copy)]
pub struct Paired {
    /// Median operations per second of the subject.
    pub subject: f64,
    /// Median operations per second of the baseline.
    pub baseline: f64,
    /// Median over rounds of subject rate / baseline rate.
    pub ratio: f64,
}

/// Measures `subject` and `baseline` (each performing `n` operations per call)
/// in alternating rounds.
pub fn paired(budget: Budget, subject: &mut dyn FnMut(u64), baseline: &mut dyn FnMut(u64)) -> Paired {
    let ns = calibrate(budget.round_time, subject);
    let nb = calibrate(budget.round_time, baseline);
    let mut s = Vec::with_capacity(budget.rounds);
    let mut b = Vec::with_capacity(budget.rounds);
    let mut r = Vec::with_capacity(budget.rounds);
    for _ in 0..budget.rounds {
        let t = Instant::now();
        subject(ns);
        let rs = ns as f64 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        baseline(nb);
        let rb = nb as f64 / t.elapsed().as_secs_f64();
        s.push(rs);
        b.push(rb);
        r.push(rs / rb);
    }
    Paired {
        subject: median(&mut s),
        baseline: median(&mut b),
        ratio: median(&mut r),
    }
}

/// A progress bar over `len` benchmark cases, on standard error.
#[must_use]
pub fn progress(len: u64) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
    {
        pb.set_style(style);
    }
    pb
}

/// Writes `{"results": [...]}` to `path`.
pub fn write_json(path: &Path, results: &[BenchResult]) -> std::io::Result<()> {
    #[derive(Serialize)]
    struct Out<'a> {
        results: &'a [BenchResult],
    }
    let json = serde_json::to_vec_pretty(&Out { results }).map_err(std::io::Error::other)?;
    std::fs::write(path, json)
}

/// Formats a rate with an SI suffix.
#[must_use]
pub fn si(x: f64) -> String {
    if x >= 1e9 {
        format!("{:.2}G", x / 1e9)
    } else if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.1}")
    }
}

/// Renders results as a plain-text table.
#[must_use]
pub fn table(results: &[BenchResult]) -> String {
    let header = [
        "workload",
        "strategy",
        "size",
        "thr",
        "records/s",
        "MB/s",
        "p50 µs",
        "p99 µs",
        "baseline/s",
        "ratio",
        "target",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| (*s).to_owned()).collect()];
    let opt = |x: Option<f64>| {
        x.map(|v| {
            if v >= 100.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        })
        .unwrap_or_default()
    };
    for r in results {
        rows.push(vec![
            r.workload.clone(),
            r.strategy.clone().unwrap_or_default(),
            r.record_size.to_string(),
            r.appenders.to_string(),
            if r.records_per_sec > 0.0 {
                si(r.records_per_sec)
            } else {
                String::new()
            },
            if r.bytes_per_sec > 0.0 {
                format!("{:.0}", r.bytes_per_sec / 1e6)
            } else {
                String::new()
            },
            opt(r.p50_us),
            opt(r.p99_us),
            r.baseline_records_per_sec.map(si).unwrap_or_default(),
            r.ratio_to_baseline.map(|x| format!("{x:.2}")).unwrap_or_default(),
            match (&r.target, r.target_met) {
                (Some(t), Some(true)) => format!("{t}: met"),
                (Some(t), Some(false)) => format!("{t}: MISSED"),
                (Some(t), None) => t.clone(),
                _ => String::new(),
            },
        ]);
    }
    let cols = header.len();
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, cell)| {
                let pad = widths[c] - cell.chars().count();
                if c <= 1 || c == cols - 1 {
                    format!("{cell}{}", " ".repeat(pad))
                } else {
                    format!("{}{cell}", " ".repeat(pad))
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (cols - 1)));
            out.push('\n');
        }
    }
    out
}
