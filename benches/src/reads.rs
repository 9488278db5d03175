//! Read-side figures: random read by id on a hot log, a sequential scan
//! beside memcpy of the same bytes, and append-to-tail wake-up latency.
//!
//! Every read is checked: an error, or a record missing that was appended,
//! fails the run.

use crate::Res;
use crate::measure::{Budget, nanos, paired, percentile_us};
use crate::progress::Progress;
use crate::results::BenchResult;
use crate::scratch;
use aof::{Aof, AofConfig, FlushStrategy};
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

/// Cases [`run`] reports progress for.
pub const CASES: u64 = 3;

fn open(dir: &Path, strategy: FlushStrategy) -> Res<Aof> {
    scratch::remove_dir(dir)?;
    let config = AofConfig::builder()
        .segment_size(8 << 20)
        .segment_cache_size(64)
        .flush_strategy(strategy)
        .build()?;
    Ok(aof::open(dir, config)?)
}

/// Records in the log of [`hot_log`].
pub const HOT_RECORDS: u64 = 1_000_000;

/// A fresh log in `dir` of [`HOT_RECORDS`] records of 64 B, durable, every
/// segment mapped and every page read once: the random-read case's log.
pub fn hot_log(dir: &Path) -> Res<Aof> {
    let log = open(dir, FlushStrategy::Async)?;
    let payload = [0x42u8; 64];
    let batch: Vec<&[u8]> = vec![&payload[..]; 1000];
    for _ in 0..HOT_RECORDS / 1000 {
        log.append_batch(&batch)?;
    }
    log.flush_blocking()?;
    for r in log.reader(0)? {
        black_box(r?.payload[0]);
    }
    Ok(log)
}

/// xorshift64, the random walk of the random-read case and its baseline.
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// Runs the read-side workloads under `scratch_dir`.
pub fn run(scratch_dir: &Path, budget: Budget, progress: &Progress) -> Res<Vec<BenchResult>> {
    let mut out = Vec::new();
    let dir = scratch_dir.join("reads");

    // Random reads by id, 64 B records, every segment already open (hot).
    progress.case("reads: random read by id, 64 B");
    let n = HOT_RECORDS;
    {
        let log = hot_log(&dir)?;
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut read = |k: u64| -> Res<()> {
            for _ in 0..k {
                let id = next(&mut x) % n;
                let p = log
                    .read(id)?
                    .ok_or_else(|| format!("record {id} was appended but reads as absent"))?;
                black_box(p[0]);
            }
            Ok(())
        };
        // Baseline: the same random walk over the same bytes in memory,
        // a bounds-checked slice of 64 B per lookup (what a Vec<Vec<u8>> costs).
        let mem: Vec<[u8; 64]> = vec![[0x42u8; 64]; n as usize];
        let mut y = 0x2545_f491_4f6c_dd1du64;
        let mut baseline = |k: u64| -> Res<()> {
            for _ in 0..k {
                let rec = black_box(&mem[(next(&mut y) % n) as usize]);
                black_box(rec.iter().fold(0u8, |a, b| a ^ b));
            }
            Ok(())
        };
        let p = paired(budget, &mut read, &mut baseline)?;
        log.close_blocking()?;
        out.push(
            BenchResult::new("read_random_by_id", 64, p.subject.rate, p.subject.rate * 64.0)
                .baseline(p.baseline.rate, p.ratio)
                .target("≥ 2M reads/s", p.subject.rate >= 2e6),
        );
        out.push(BenchResult::new(
            "baseline_in_memory_lookup",
            64,
            p.baseline.rate,
            p.baseline.rate * 64.0,
        ));
    }

    // Sequential scan of 4 KiB records with a reader, beside memcpy of the same bytes.
    progress.case("reads: sequential scan, 4 KiB");
    {
        let size = 4096usize;
        let count = 64 * 1024u64; // 256 MiB of payload
        let log = open(&dir, FlushStrategy::Async)?;
        let payload = vec![0x17u8; size];
        let batch: Vec<&[u8]> = vec![&payload[..]; 256];
        for _ in 0..count / 256 {
            log.append_batch(&batch)?;
        }
        log.flush_blocking()?;
        // Warm the page cache and the segment cache once.
        for r in log.reader(0)? {
            black_box(r?.payload.len());
        }
        let mut scan = |k: u64| -> Res<()> {
            for _ in 0..k {
                let mut bytes = 0usize;
                let mut records = 0u64;
                for r in log.reader(0)? {
                    bytes += r?.payload.len();
                    records += 1;
                }
                if records != count {
                    return Err(format!("the scan read {records} records of {count}").into());
                }
                black_box(bytes);
            }
            Ok(())
        };
        let src = vec![0x17u8; size * count as usize];
        let mut dst = vec![0u8; size * count as usize];
        let mut memcpy = |k: u64| -> Res<()> {
            for _ in 0..k {
                dst.copy_from_slice(black_box(&src));
                black_box(dst.as_ptr());
            }
            Ok(())
        };
        let p = paired(
            Budget {
                rounds: budget.rounds.min(5),
                round_time: Duration::from_millis(1),
            },
            &mut scan,
            &mut memcpy,
        )?;
        log.close_blocking()?;
        let bytes = (size as u64 * count) as f64;
        let records = count as f64;
        out.push(
            BenchResult::new(
                "scan_sequential",
                size,
                p.subject.rate * records,
                p.subject.rate * bytes,
            )
            .baseline(p.baseline.rate * records, p.ratio)
            .target("≥ 0.5 × memcpy", p.ratio >= 0.5),
        );
        out.push(BenchResult::new(
            "baseline_memcpy_scan",
            size,
            p.baseline.rate * records,
            p.baseline.rate * bytes,
        ));
    }

    // Append (Sync) to tail wake-up: time from just before append to the tail holding the record.
    progress.case("reads: append to tail wake-up");
    {
        let log = open(&dir, FlushStrategy::Sync)?;
        let samples = if budget.rounds >= 9 { 2000 } else { 300 };
        let origin = Instant::now();
        let mut tail = log.tail(0)?;
        let mut lat = std::thread::scope(|s| -> Res<Vec<u64>> {
            let writer = s.spawn(|| -> Res<()> {
                for _ in 0..samples {
                    let t = nanos(origin.elapsed());
                    log.append(&t.to_le_bytes())?;
                    std::thread::sleep(Duration::from_micros(200));
                }
                Ok(())
            });
            let mut lat = Vec::with_capacity(samples);
            for i in 0..samples {
                let r = tail
                    .next_timeout(Duration::from_secs(30))?
                    .ok_or_else(|| format!("the tail waited 30 s for record {i}"))?;
                let sent = r
                    .payload
                    .first_chunk::<8>()
                    .ok_or_else(|| format!("record {i} is shorter than its 8-byte timestamp"))?;
                lat.push(nanos(origin.elapsed()).saturating_sub(u64::from_le_bytes(*sent)));
            }
            writer.join().map_err(|_| "the appending thread panicked")??;
            Ok(lat)
        })?;
        drop(tail);
        log.close_blocking()?;
        lat.sort_unstable();
        out.push(
            BenchResult::new("append_to_tail_wakeup", 8, 0.0, 0.0)
                .strategy("Sync")
                .latency(percentile_us(&lat, 0.50), percentile_us(&lat, 0.99)),
        );
    }
    scratch::remove_dir(&dir)?;
    Ok(out)
}
