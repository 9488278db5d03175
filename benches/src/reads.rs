//! Read-side figures: random read by id on a hot log, a sequential scan
//! beside memcpy of the same bytes, and append-to-tail wake-up latency.

use crate::{BenchResult, Budget, paired};
use aof::{Aof, AofConfig, FlushStrategy};
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Cases [`run`] reports progress for.
pub const CASES: u64 = 3;

fn open(dir: &Path, strategy: FlushStrategy) -> Aof {
    let _ = std::fs::remove_dir_all(dir);
    let config = AofConfig::builder()
        .segment_size(8 << 20)
        .segment_cache_size(64)
        .flush_strategy(strategy)
        .build()
        .expect("valid configuration");
    aof::open(dir, config).expect("open the benchmark log")
}

fn row(
    workload: &str,
    size: usize,
    rate: f64,
    bytes: f64,
    base: Option<(f64, f64)>,
    target: Option<(&str, bool)>,
) -> BenchResult {
    BenchResult {
        workload: workload.to_owned(),
        strategy: None,
        record_size: size,
        appenders: 1,
        records_per_sec: rate,
        bytes_per_sec: bytes,
        p50_us: None,
        p99_us: None,
        baseline_records_per_sec: base.map(|b| b.0),
        ratio_to_baseline: base.map(|b| b.1),
        target: target.map(|t| t.0.to_owned()),
        target_met: target.map(|t| t.1),
    }
}

/// Runs the read-side workloads under `scratch`.
pub fn run(scratch: &Path, budget: Budget, on_case: &mut dyn FnMut(&str)) -> Vec<BenchResult> {
    let mut out = Vec::new();
    let dir = scratch.join("reads");

    // Random reads by id, 64 B records, every segment already open (hot).
    on_case("random read by id, 64 B");
    let n: u64 = 1_000_000;
    {
        let log = open(&dir, FlushStrategy::Async);
        let payload = [0x42u8; 64];
        let batch: Vec<&[u8]> = vec![&payload[..]; 1000];
        for _ in 0..n / 1000 {
            log.append_batch(&batch).expect("append");
        }
        log.flush_blocking().expect("flush");
        // Hot: every segment mapped and every page touched once.
        for r in log.reader(0).expect("reader") {
            black_box(r.expect("record").payload[0]);
        }
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut read = |k: u64| {
            for _ in 0..k {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let p = log.read(x % n).ok().flatten();
                black_box(p.map(|p| p[0]));
            }
        };
        // Baseline: the same random walk over the same bytes in memory,
        // a bounds-checked slice of 64 B per lookup (what a Vec<Vec<u8>> costs).
        let mem: Vec<[u8; 64]> = vec![[0x42u8; 64]; n as usize];
        let mut y = 0x2545_f491_4f6c_dd1du64;
        let mut baseline = |k: u64| {
            for _ in 0..k {
                y ^= y << 13;
                y ^= y >> 7;
                y ^= y << 17;
                let rec = black_box(&mem[(y % n) as usize]);
                black_box(rec.iter().fold(0u8, |a, b| a ^ b));
            }
        };
        let p = paired(budget, &mut read, &mut baseline);
        out.push(row(
            "read_random_by_id",
            64,
            p.subject,
            p.subject * 64.0,
            Some((p.baseline, p.ratio)),
            Some(("≥ 2M reads/s", p.subject >= 2e6)),
        ));
        out.push(row(
            "baseline_in_memory_lookup",
            64,
            p.baseline,
            p.baseline * 64.0,
            None,
            None,
        ));
    }

    // Sequential scan of 4 KiB records with a reader, beside memcpy of the same bytes.
    on_case("sequential scan, 4 KiB");
    {
        let size = 4096usize;
        let count = 64 * 1024u64; // 256 MiB of payload
        let log = open(&dir, FlushStrategy::Async);
        let payload = vec![0x17u8; size];
        let batch: Vec<&[u8]> = vec![&payload[..]; 256];
        for _ in 0..count / 256 {
            log.append_batch(&batch).expect("append");
        }
        log.flush_blocking().expect("flush");
        // Warm the page cache and the segment cache once.
        for r in log.reader(0).expect("reader") {
            black_box(r.expect("record").payload.len());
        }
        let mut scan = |k: u64| {
            for _ in 0..k {
                let mut bytes = 0usize;
                for r in log.reader(0).expect("reader") {
                    bytes += r.expect("record").payload.len();
                }
                black_box(bytes);
            }
        };
        let src = vec![0x17u8; size * count as usize];
        let mut dst = vec![0u8; size * count as usize];
        let mut memcpy = |k: u64| {
            for _ in 0..k {
                dst.copy_from_slice(black_box(&src));
                black_box(dst.as_ptr());
            }
        };
        let p = paired(
            Budget {
                rounds: budget.rounds.min(5),
                round_time: Duration::from_millis(1),
            },
            &mut scan,
            &mut memcpy,
        );
        let bytes = (size as u64 * count) as f64;
        out.push(row(
            "scan_sequential",
            size,
            p.subject * count as f64,
            p.subject * bytes,
            Some((p.baseline * count as f64, p.ratio)),
            Some(("≥ 0.5 × memcpy", p.ratio >= 0.5)),
        ));
        out.push(row(
            "baseline_memcpy_scan",
            size,
            p.baseline * count as f64,
            p.baseline * bytes,
            None,
            None,
        ));
    }

    // Append (Sync) to tail wake-up: time from just before append to the tail holding the record.
    on_case("append to tail wake-up");
    {
        let log = Arc::new(open(&dir, FlushStrategy::Sync));
        let samples = if budget.rounds >= 9 { 2000 } else { 300 };
        let origin = Instant::now();
        let mut tail = log.tail(0).expect("tail");
        let writer = {
            let log = log.clone();
            std::thread::spawn(move || {
                for _ in 0..samples {
                    let t = origin.elapsed().as_nanos() as u64;
                    log.append(&t.to_le_bytes()).expect("append");
                    std::thread::sleep(Duration::from_micros(200));
                }
            })
        };
        let mut lat = Vec::with_capacity(samples);
        for _ in 0..samples {
            let r = tail
                .next_timeout(Duration::from_secs(30))
                .expect("tail")
                .expect("tail timed out");
            let mut b = [0u8; 8];
            b.copy_from_slice(&r.payload[..8]);
            lat.push(origin.elapsed().as_nanos() as u64 - u64::from_le_bytes(b));
        }
        let _ = writer.join();
        lat.sort_unstable();
        let at = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize] as f64 / 1000.0;
        let mut r = row("append_to_tail_wakeup", 8, 0.0, 0.0, None, None);
        r.strategy = Some("Sync".into());
        r.p50_us = Some(at(0.5));
        r.p99_us = Some(at(0.99));
        out.push(r);
    }
    let _ = std::fs::remove_dir_all(&dir);
    out
}
