//! Per-record compression and encryption (issue 16): append and read
//! throughput of a log storing payloads compressed, encrypted, or both,
//! beside the same log storing them plain, in alternating rounds of one
//! run; and the compression ratio on a log-like corpus beside zstd alone.
//!
//! Every append and read is checked: an error, or a payload that reads
//! back different, fails the run.

use crate::Res;
use crate::measure::{Budget, paired};
use crate::progress::Progress;
use crate::results::BenchResult;
use crate::scratch;
use aof::{Aof, AofConfig, EncryptionKey, FlushStrategy, KeyRing};
use std::path::Path;
use std::sync::Arc;

/// Record sizes measured.
const SIZES: [usize; 3] = [64, 1024, 16384];

/// The stored forms measured beside plain.
const MODES: [(&str, bool, bool); 3] = [
    ("compressed", true, false),
    ("encrypted", false, true),
    ("compressed+encrypted", true, true),
];

/// Cases [`run`] reports progress for.
pub const CASES: u64 = (SIZES.len() * MODES.len() * 2 + 1) as u64;

/// Records of the corpus a read case cycles through.
const READ_RECORDS: usize = 4096;

/// A log-like line of exactly `size` bytes: timestamps, levels, paths,
/// ids and numbers, as services write them (compresses about as well as
/// real logs: repetitive structure, varying values).
fn log_payload(i: u64, size: usize) -> Vec<u8> {
    const PATHS: [&str; 5] = [
        "/api/v1/items",
        "/api/v1/users",
        "/health",
        "/api/v2/orders",
        "/static/app.js",
    ];
    const LEVELS: [&str; 3] = ["INFO", "WARN", "DEBUG"];
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(size + 160);
    while out.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let line = format!(
            "2026-12-04T11:{:02}:{:02}.{:06}Z {} GET {} status={} bytes={} took={}ms req={:016x} user=u{}\n",
            (x >> 8) % 60,
            (x >> 16) % 60,
            (x >> 24) % 1_000_000,
            LEVELS[(x % 3) as usize],
            PATHS[((x >> 4) % 5) as usize],
            [200, 200, 200, 404, 500][((x >> 12) % 5) as usize],
            (x >> 20) % 100_000,
            (x >> 40) % 900,
            x,
            (x >> 50) % 1000,
        );
        out.extend_from_slice(line.as_bytes());
    }
    out.truncate(size);
    out
}

fn keys() -> Arc<KeyRing> {
    Arc::new(KeyRing::new(EncryptionKey::new(1, [0x5a; 32])))
}

fn open(dir: &Path, compress: bool, encrypt: bool) -> Res<Aof> {
    scratch::remove_dir(dir)?;
    let config = AofConfig::builder()
        .segment_size(64 << 20)
        .flush_strategy(FlushStrategy::Async)
        .pre_allocate_enabled(false)
        .enable_compression(compress)
        .enable_encryption(encrypt)
        .build()?;
    Ok(aof::Builder::new(dir).config(config).keys(keys()).open()?)
}

/// Appends `k` records of `corpus` (cycling) to `log`.
fn append(log: &Aof, corpus: &[Vec<u8>], next: &mut usize, k: u64) -> Res<()> {
    for _ in 0..k {
        log.append(&corpus[*next % corpus.len()])?;
        *next += 1;
    }
    Ok(())
}

/// Reads `k` records of `log` by id (cycling), each checked against `corpus`.
fn read(log: &Aof, corpus: &[Vec<u8>], next: &mut usize, k: u64) -> Res<()> {
    for _ in 0..k {
        let i = *next % corpus.len();
        let got = log
            .read(i as u64)?
            .ok_or_else(|| format!("record {i} was appended but reads as absent"))?;
        if got[..] != corpus[i][..] {
            return Err(format!("record {i} reads back different").into());
        }
        *next += 1;
    }
    Ok(())
}

/// Bytes the records of the (unsealed, not pre-allocated) segment files in
/// `dir` take, headers included.
fn stored_bytes(dir: &Path) -> Res<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "seg") {
            total += std::fs::metadata(&p)?.len() - aof::format::segment::SEGMENT_HEADER_SIZE as u64;
        }
    }
    Ok(total)
}

/// Runs the payload workloads under `scratch_dir`.
pub fn run(scratch_dir: &Path, budget: Budget, progress: &Progress) -> Res<Vec<BenchResult>> {
    let mut out = Vec::new();
    let plain_dir = scratch_dir.join("payloads-plain");
    let dir = scratch_dir.join("payloads");
    for size in SIZES {
        let corpus: Vec<Vec<u8>> = (0..READ_RECORDS as u64).map(|i| log_payload(i, size)).collect();
        for (name, compress, encrypt) in MODES {
            progress.case(&format!("payloads: append {name}, {size} B, beside plain"));
            let (subject, baseline) = (open(&dir, compress, encrypt)?, open(&plain_dir, false, false)?);
            let (mut a, mut b) = (0, 0);
            let p = paired(budget, &mut |k| append(&subject, &corpus, &mut a, k), &mut |k| {
                append(&baseline, &corpus, &mut b, k)
            })?;
            subject.close_blocking()?;
            baseline.close_blocking()?;
            out.push(
                BenchResult::of_side(format!("append_{name}"), size, size, p.subject)
                    .strategy("Async")
                    .baseline(p.baseline.rate, p.ratio),
            );

            progress.case(&format!("payloads: read {name}, {size} B, beside plain"));
            let (subject, baseline) = (open(&dir, compress, encrypt)?, open(&plain_dir, false, false)?);
            let (mut a, mut b) = (0, 0);
            append(&subject, &corpus, &mut a, corpus.len() as u64)?;
            append(&baseline, &corpus, &mut b, corpus.len() as u64)?;
            subject.flush_blocking()?;
            baseline.flush_blocking()?;
            let (mut a, mut b) = (0, 0);
            let p = paired(budget, &mut |k| read(&subject, &corpus, &mut a, k), &mut |k| {
                read(&baseline, &corpus, &mut b, k)
            })?;
            subject.close_blocking()?;
            baseline.close_blocking()?;
            out.push(
                BenchResult::of_side(format!("read_{name}"), size, size, p.subject)
                    .baseline(p.baseline.rate, p.ratio),
            );
        }
    }

    // Compression ratio on a corpus of log lines of ~100-300 B, the sizes
    // services log: the engine's stored bytes (headers included) beside
    // zstd alone on each record at the same level (plus the same 32-byte
    // headers) and on the whole corpus at once (what archival reaches).
    progress.case("payloads: compression ratio on a log-like corpus");
    let lines: Vec<Vec<u8>> = (0..20_000u64)
        .map(|i| log_payload(i, 100 + (i as usize * 37) % 200))
        .collect();
    let raw: u64 = lines.iter().map(|l| l.len() as u64 + 32).sum();
    let log = open(&dir, true, false)?;
    let mut n = 0;
    append(&log, &lines, &mut n, lines.len() as u64)?;
    log.close_blocking()?;
    let stored = stored_bytes(&dir)?;
    // The same rule as the engine: records from 128 B (the default
    // compression_min_size) on, compressed when that saves bytes.
    let mut per_record = 0u64;
    for l in &lines {
        let z = if l.len() >= 128 {
            zstd::bulk::compress(l, 3)?.len() + 4
        } else {
            usize::MAX
        };
        per_record += z.min(l.len()) as u64 + 32;
    }
    let whole: Vec<u8> = lines.concat();
    let whole_z = zstd::bulk::compress(&whole, 3)?.len() as u64;
    let ratio = |bytes: u64, of: u64| bytes as f64 / of as f64;
    out.push(
        BenchResult::new("compression_stored_fraction", 200, 0.0, 0.0)
            .baseline(0.0, ratio(stored, raw))
            .target(
                format!(
                    "stored/raw within 1% of zstd alone per record ({:.2}); the whole corpus at once: {:.2}",
                    ratio(per_record, raw),
                    ratio(whole_z, whole.len() as u64)
                ),
                stored as f64 <= 1.01 * per_record as f64,
            ),
    );
    scratch::remove_dir(&dir)?;
    scratch::remove_dir(&plain_dir)?;
    Ok(out)
}
