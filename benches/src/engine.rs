//! The engine's throughput table: flush strategies × record sizes on the
//! embedded defaults (local files, SQLite index), beside raw baselines on the
//! same disk in the same run; Sync with concurrent appenders; and the open
//! time after a crash against a rebuild of the index by scanning the log.

use crate::{BenchResult, median};
use aof::{AofConfig, FlushStrategy};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Record payload sizes of the throughput table.
pub const SIZES: [usize; 4] = [64, 1024, 16 * 1024, 64 * 1024];

/// How long to run each case.
#[derive(Debug, Clone, Copy)]
pub struct EngineBudget {
    /// Wall time of one measured run of an append loop.
    pub run: Duration,
    /// Runs per case (subject and baseline alternate); the median is reported.
    pub rounds: usize,
    /// Segments in the open-after-crash log.
    pub segments: usize,
}

impl EngineBudget {
    /// The full run.
    #[must_use]
    pub const fn full() -> Self {
        Self {
            run: Duration::from_millis(700),
            rounds: 3,
            segments: 10_000,
        }
    }

    /// `--quick`.
    #[must_use]
    pub const fn quick() -> Self {
        Self {
            run: Duration::from_millis(150),
            rounds: 1,
            segments: 1_000,
        }
    }
}

fn strategy_name(s: FlushStrategy) -> String {
    match s {
        FlushStrategy::Sync => "Sync".into(),
        FlushStrategy::Async => "Async".into(),
        FlushStrategy::Batched(n) => format!("Batched({n})"),
        FlushStrategy::Periodic(ms) => format!("Periodic({ms}ms)"),
        other => format!("{other:?}"),
    }
}

fn config(strategy: FlushStrategy) -> AofConfig {
    AofConfig::builder()
        .segment_size(64 << 20)
        .flush_strategy(strategy)
        .build()
        .expect("benchmark configuration is valid")
}

/// Latency percentiles in µs of `samples` (ns).
fn percentiles(samples: &mut [u64]) -> (Option<f64>, Option<f64>) {
    if samples.is_empty() {
        return (None, None);
    }
    samples.sort_unstable();
    let at = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0;
    (Some(at(0.50)), Some(at(0.99)))
}

struct Run {
    records: u64,
    elapsed: Duration,
    latencies: Vec<u64>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64()
    }
}

/// Appends `size`-byte records for `budget.run` into a fresh log.
fn run_engine(dir: &Path, strategy: FlushStrategy, size: usize, appenders: usize, run: Duration) -> Run {
    let _ = std::fs::remove_dir_all(dir);
    let log = Arc::new(aof::open(dir, config(strategy)).expect("open the benchmark log"));
    let payload = vec![0x5au8; size];
    let track_latency = strategy == FlushStrategy::Sync;
    let start = Instant::now();
    let mut results = Vec::new();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..appenders)
            .map(|_| {
                let log = log.clone();
                let payload = &payload;
                s.spawn(move || {
                    let mut n = 0u64;
                    let mut lat = Vec::new();
                    let t0 = Instant::now();
                    while t0.elapsed() < run {
                        for _ in 0..64 {
                            if track_latency {
                                let t = Instant::now();
                                log.append(payload).expect("append");
                                lat.push(t.elapsed().as_nanos() as u64);
                            } else {
                                log.append(payload).expect("append");
                            }
                            n += 1;
                        }
                    }
                    (n, lat)
                })
            })
            .collect();
        for h in handles {
            results.push(h.join().expect("appender thread"));
        }
    });
    let elapsed = start.elapsed();
    let records = results.iter().map(|r| r.0).sum();
    let latencies = results.into_iter().flat_map(|r| r.1).collect();
    drop(log);
    let _ = std::fs::remove_dir_all(dir);
    Run {
        records,
        elapsed,
        latencies,
    }
}

/// A plain loop of one `write()` per record of the same bytes (header + payload).
fn run_write_baseline(dir: &Path, size: usize, run: Duration) -> Run {
    let _ = std::fs::create_dir_all(dir);
    let path = dir.join("baseline-write");
    let mut f = File::create(&path).expect("baseline file");
    let record = vec![0x5au8; size + 32];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < run {
        for _ in 0..64 {
            f.write_all(&record).expect("write");
            n += 1;
        }
    }
    let elapsed = start.elapsed();
    drop(f);
    let _ = std::fs::remove_file(&path);
    Run {
        records: n,
        elapsed,
        latencies: Vec::new(),
    }
}

/// `write` + `fdatasync` per record on a file pre-allocated by writing zeros.
fn run_fsync_baseline(dir: &Path, size: usize, run: Duration) -> Run {
    let _ = std::fs::create_dir_all(dir);
    let path = dir.join("baseline-fsync");
    let f = File::create(&path).expect("baseline file");
    let prealloc = 64u64 << 20;
    let zeros = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < prealloc {
        f.write_all_at(&zeros, at).expect("zero fill");
        at += zeros.len() as u64;
    }
    f.sync_all().expect("sync");
    let record = vec![0x5au8; size + 32];
    let mut offset = 0u64;
    let mut lat = Vec::new();
    let start = Instant::now();
    while start.elapsed() < run {
        let t = Instant::now();
        f.write_all_at(&record, offset).expect("write");
        f.sync_data().expect("fdatasync");
        lat.push(t.elapsed().as_nanos() as u64);
        offset = (offset + record.len() as u64) % (prealloc - record.len() as u64);
    }
    let elapsed = start.elapsed();
    drop(f);
    let _ = std::fs::remove_file(&path);
    Run {
        records: lat.len() as u64,
        elapsed,
        latencies: lat,
    }
}

#[allow(clippy::too_many_arguments)]
fn result(
    workload: &str,
    strategy: Option<String>,
    size: usize,
    appenders: usize,
    rate: f64,
    lat: (Option<f64>, Option<f64>),
    baseline: Option<f64>,
    target: Option<(String, bool)>,
) -> BenchResult {
    BenchResult {
        workload: workload.to_owned(),
        strategy,
        record_size: size,
        appenders,
        records_per_sec: rate,
        bytes_per_sec: rate * size as f64,
        p50_us: lat.0,
        p99_us: lat.1,
        baseline_records_per_sec: baseline,
        ratio_to_baseline: baseline.map(|b| rate / b),
        target_met: target.as_ref().map(|t| t.1),
        target: target.map(|t| t.0),
    }
}

/// The median-rate run of `rounds`, with latencies from all rounds pooled.
fn best_of(rounds: usize, mut f: impl FnMut() -> Run) -> (f64, Vec<u64>) {
    let mut rates = Vec::new();
    let mut lat = Vec::new();
    for _ in 0..rounds.max(1) {
        let r = f();
        rates.push(r.rate());
        lat.extend(r.latencies);
    }
    (median(&mut rates), lat)
}

/// Number of cases [`run`] reports progress for.
#[must_use]
pub fn cases(budget: EngineBudget) -> u64 {
    let _ = budget;
    (SIZES.len() * 6 + 3 + 1) as u64
}

/// Runs the whole engine table under `scratch`.
pub fn run(scratch: &Path, budget: EngineBudget, on_case: &mut dyn FnMut(&str)) -> Vec<BenchResult> {
    let mut out = Vec::new();
    let dir = scratch.join("log");
    let base_dir = scratch.join("baseline");
    let strategies = [
        FlushStrategy::Sync,
        FlushStrategy::Batched(100),
        FlushStrategy::Batched(1000),
        FlushStrategy::Async,
    ];
    for size in SIZES {
        on_case(&format!("baselines, {size} B"));
        let (write_rate, _) = best_of(budget.rounds, || run_write_baseline(&base_dir, size, budget.run));
        on_case(&format!("baseline fdatasync, {size} B"));
        let (fsync_rate, mut fsync_lat) =
            best_of(budget.rounds, || run_fsync_baseline(&base_dir, size, budget.run));
        let fsync_pct = percentiles(&mut fsync_lat);
        out.push(result(
            "baseline_write",
            None,
            size,
            1,
            write_rate,
            (None, None),
            None,
            None,
        ));
        out.push(result(
            "baseline_write_fdatasync",
            None,
            size,
            1,
            fsync_rate,
            fsync_pct,
            None,
            None,
        ));
        let mut async_rate = None;
        let mut rows = Vec::new();
        for strategy in strategies.into_iter().rev() {
            on_case(&format!("{} {size} B", strategy_name(strategy)));
            let (rate, mut lat) = best_of(budget.rounds, || run_engine(&dir, strategy, size, 1, budget.run));
            let pct = percentiles(&mut lat);
            let (baseline, target) = match strategy {
                FlushStrategy::Sync => {
                    let ok =
                        rate >= 0.8 * fsync_rate && pct.1.zip(fsync_pct.1).is_none_or(|(p, b)| p <= 2.0 * b);
                    (
                        Some(fsync_rate),
                        Some(("≥ 0.8 × write+fdatasync, p99 ≤ 2 × its p99".to_owned(), ok)),
                    )
                }
                FlushStrategy::Async => {
                    async_rate = Some(rate);
                    let t = if size == 64 {
                        Some(("≥ 5M records/s".to_owned(), rate >= 5e6))
                    } else {
                        Some(("≥ 0.8 × write".to_owned(), rate >= 0.8 * write_rate))
                    };
                    (Some(write_rate), t)
                }
                FlushStrategy::Batched(1000) => {
                    let a = async_rate.unwrap_or(f64::NAN);
                    (
                        Some(write_rate),
                        Some(("≥ 0.9 × Async".to_owned(), rate >= 0.9 * a)),
                    )
                }
                _ => (Some(write_rate), None),
            };
            rows.push(result(
                "append",
                Some(strategy_name(strategy)),
                size,
                1,
                rate,
                pct,
                baseline,
                target,
            ));
        }
        rows.reverse();
        out.extend(rows);
    }
    for appenders in [1usize, 4, 16] {
        on_case(&format!("Sync, {appenders} appenders"));
        let (rate, mut lat) = best_of(budget.rounds, || {
            run_engine(&dir, FlushStrategy::Sync, 64, appenders, budget.run)
        });
        let target = (appenders == 16).then(|| ("≥ 200k records/s".to_owned(), rate >= 200_000.0));
        out.push(result(
            "append_concurrent",
            Some("Sync".into()),
            64,
            appenders,
            rate,
            percentiles(&mut lat),
            None,
            target,
        ));
    }
    on_case(&format!("open after crash, {} segments", budget.segments));
    out.extend(open_after_crash(&scratch.join("crash"), budget.segments));
    out
}

/// Builds a log of `segments` segments and tears its active segment's tail
/// as a crash would; then times `Aof::open` (index + active-segment scan)
/// against `Aof::open` of a copy without its index, rebuilt by scanning
/// every segment (`rebuild_index`). Both include opening the SQLite index.
pub fn open_after_crash(dir: &Path, segments: usize) -> Vec<BenchResult> {
    let _ = std::fs::remove_dir_all(dir);
    // 64 KiB segments: a thousandth of the default size, so that building
    // 10,000 of them stays quick, yet big enough that a rebuild scans data.
    let config = AofConfig::builder()
        .segment_size(64 * 1024)
        .flush_strategy(FlushStrategy::Async)
        .pre_allocate_enabled(false)
        .build()
        .expect("valid");
    let payload = vec![7u8; 4000];
    {
        let log = aof::open(dir, config.clone()).expect("open");
        while (log.performance_metrics().segments_finalized() as usize) < segments {
            let batch = vec![payload.as_slice(); 64];
            log.append_batch(&batch).expect("append");
        }
        log.close_blocking().expect("close");
    }
    // The crash: a half-written record at the end of the active segment.
    let active = std::fs::read_dir(dir)
        .expect("list")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .max()
        .expect("an active segment");
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&active)
        .expect("open active");
    f.write_all(&[0xEE; 100]).expect("tear");
    drop(f);

    // The same crashed log without its index, for the rebuild.
    let rebuild_dir = dir.with_extension("rebuild");
    let _ = std::fs::remove_dir_all(&rebuild_dir);
    std::fs::create_dir_all(&rebuild_dir).expect("mkdir");
    for entry in std::fs::read_dir(dir).expect("list").filter_map(Result::ok) {
        let p = entry.path();
        if p.extension().is_some_and(|x| x == "seg") {
            std::fs::copy(&p, rebuild_dir.join(entry.file_name())).expect("copy");
        }
    }

    let t = Instant::now();
    let log = aof::open(dir, config.clone()).expect("reopen after crash");
    let open_time = t.elapsed();
    let next = log.next_id();
    drop(log);

    let mut options = aof::AofOptions::new(config);
    options.rebuild_index = true;
    let t = Instant::now();
    let log = aof::open_with(&rebuild_dir, options).expect("rebuild");
    let rebuild_time = t.elapsed();
    let n = log.index().len().expect("index length");
    assert_eq!(
        log.next_id(),
        next,
        "the rebuilt log must end where the indexed one does"
    );
    drop(log);
    let _ = std::fs::remove_dir_all(&rebuild_dir);
    let _ = std::fs::remove_dir_all(dir);
    assert!(n >= segments && next > 0);
    let open_rate = 1.0 / open_time.as_secs_f64();
    let rebuild_rate = 1.0 / rebuild_time.as_secs_f64();
    let speedup = open_rate / rebuild_rate;
    vec![
        BenchResult {
            workload: format!("open_after_crash_{n}_segments"),
            strategy: None,
            record_size: payload.len(),
            appenders: 1,
            records_per_sec: open_rate,
            bytes_per_sec: 0.0,
            p50_us: Some(open_time.as_secs_f64() * 1e6),
            p99_us: None,
            baseline_records_per_sec: Some(rebuild_rate),
            ratio_to_baseline: Some(speedup),
            target: Some("≥ 50 × faster than rebuild".into()),
            target_met: Some(speedup >= 50.0),
        },
        BenchResult {
            workload: format!("baseline_rebuild_by_scan_{n}_segments"),
            strategy: None,
            record_size: payload.len(),
            appenders: 1,
            records_per_sec: rebuild_rate,
            bytes_per_sec: 0.0,
            p50_us: Some(rebuild_time.as_secs_f64() * 1e6),
            p99_us: None,
            baseline_records_per_sec: None,
            ratio_to_baseline: None,
            target: None,
            target_met: None,
        },
    ]
}
