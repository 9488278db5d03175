//! `--only snapshot`: export and import of a whole log, beside raw I/O and
//! SHA-256 alone on the same bytes, in alternating rounds of one run.
//!
//! - **export**: `aof::snapshot::export` of the log, framed by `FrameWriter`
//!   into a sink (MB/s of file bytes), beside a raw sequential read of the
//!   same segment files (1 MiB reads) and SHA-256 alone over as many bytes
//!   (a cache-resident 1 MiB buffer). Target: ≥ 0.7 × the slower of the two.
//! - **import**: `import_from` of the encoded stream held in memory into a
//!   new directory (each file fsync'd, the staged log verified, the rename),
//!   beside a raw sequential write of the same bytes with one fsync per
//!   file, and SHA-256 alone. Target: ≥ 0.7 × the slower of the two.

use aof::snapshot::wire::FrameWriter;
use aof::snapshot::{ExportOptions, ImportOptions};
use aof::{AofConfig, FlushStrategy};
use aof_bench::BenchResult;
use aof_bench::measure::median;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Cases reported, for the progress bar.
pub const CASES: u64 = 2;

const RECORD: usize = 4096;

fn row(workload: &str, bytes_per_sec: f64) -> BenchResult {
    // One "record" per MiB: records_per_sec is MiB/s.
    BenchResult::new(
        workload,
        1 << 20,
        bytes_per_sec / f64::from(1 << 20),
        bytes_per_sec,
    )
}

/// A log of `size` bytes of 4 KiB records in 32 MiB segments.
fn make_log(dir: &Path, size: usize) -> aof::Aof {
    let config = AofConfig::builder()
        .segment_size(32 << 20)
        .flush_strategy(FlushStrategy::Async)
        .build()
        .expect("config");
    let log = aof::open(dir, config).expect("open");
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut payload = vec![0u8; RECORD];
    for _ in 0..size / RECORD {
        for w in payload.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes()[..w.len()]);
        }
        log.append(&payload).expect("append");
    }
    log.flush_blocking().expect("flush");
    log
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

fn raw_read(files: &[PathBuf], buf: &mut [u8]) -> u64 {
    let mut n = 0u64;
    for f in files {
        let mut file = std::fs::File::open(f).expect("open");
        loop {
            let got = file.read(buf).expect("read");
            if got == 0 {
                break;
            }
            n += got as u64;
        }
    }
    n
}

fn raw_write(dir: &Path, sizes: &[u64], buf: &[u8]) {
    std::fs::create_dir_all(dir).expect("dir");
    for (i, size) in sizes.iter().enumerate() {
        let mut f = std::fs::File::create(dir.join(format!("{i}.raw"))).expect("create");
        let mut left = *size;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            f.write_all(&buf[..n]).expect("write");
            left -= n as u64;
        }
        f.sync_all().expect("sync");
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .expect("sync dir");
}

fn sha_alone(total: u64, buf: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    let mut left = total;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        h.update(&buf[..n]);
        left -= n as u64;
    }
    h.finalize().into()
}

/// Runs the snapshot cases in `scratch`; `quick` shrinks the log and rounds.
pub fn run(scratch: &Path, quick: bool, step: &mut dyn FnMut(&str)) -> Vec<BenchResult> {
    let dir = scratch.join("snapshot");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch");
    let size: usize = if quick { 64 << 20 } else { 256 << 20 };
    let rounds = if quick { 3 } else { 7 };
    let log = make_log(&dir.join("log"), size);
    let files = segment_files(&dir.join("log"));
    let sizes: Vec<u64> = files
        .iter()
        .map(|f| std::fs::metadata(f).expect("meta").len())
        .collect();
    let total: u64 = sizes.iter().sum();
    let mut buf = vec![0u8; 1 << 20];
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (i * 7 + 3) as u8;
    }
    let mut stream = Vec::new();

    let (mut read_r, mut write_r, mut sha_r, mut exp_r, mut imp_r) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut exp_ratio, mut imp_ratio) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // Export, then its baselines; the order alternates between rounds.
        let export = |stream: &mut Vec<u8>| {
            stream.clear();
            let t = Instant::now();
            let exporter = aof::snapshot::export(&log, ExportOptions::new()).expect("export");
            let bytes = exporter.metadata().total_size;
            let mut w = FrameWriter::new(std::mem::take(stream));
            for c in exporter {
                w.write_chunk(&c.expect("chunk")).expect("write");
            }
            *stream = w.finish().expect("finish");
            bytes as f64 / t.elapsed().as_secs_f64()
        };
        let baselines = |buf: &mut Vec<u8>| {
            let t = Instant::now();
            let n = raw_read(&files, buf);
            let read = n as f64 / t.elapsed().as_secs_f64();
            let t = Instant::now();
            std::hint::black_box(sha_alone(total, buf));
            let sha = total as f64 / t.elapsed().as_secs_f64();
            (read, sha)
        };
        let (e, (read, sha)) = if round % 2 == 0 {
            let e = export(&mut stream);
            (e, baselines(&mut buf))
        } else {
            let b = baselines(&mut buf);
            (export(&mut stream), b)
        };
        exp_r.push(e);
        read_r.push(read);
        sha_r.push(sha);
        exp_ratio.push(e / read.min(sha));

        let target = dir.join(format!("import{round}"));
        let raw = dir.join(format!("raw{round}"));
        let import = || {
            let t = Instant::now();
            aof::snapshot::import_from(&stream[..], &target, &ImportOptions::new(), &mut |_, _| {})
                .expect("import");
            total as f64 / t.elapsed().as_secs_f64()
        };
        let write = || {
            let t = Instant::now();
            raw_write(&raw, &sizes, &buf);
            total as f64 / t.elapsed().as_secs_f64()
        };
        let (i, w) = if round % 2 == 0 {
            let i = import();
            (i, write())
        } else {
            let w = write();
            (import(), w)
        };
        imp_r.push(i);
        write_r.push(w);
        imp_ratio.push(i / w.min(sha));
        let _ = std::fs::remove_dir_all(&target);
        let _ = std::fs::remove_dir_all(&raw);
    }
    let (read, write, sha) = (median(&mut read_r), median(&mut write_r), median(&mut sha_r));
    let (exp, imp) = (median(&mut exp_r), median(&mut imp_r));
    let (er, ir) = (median(&mut exp_ratio), median(&mut imp_ratio));
    let strategy = format!("{} MiB, {} files", total >> 20, files.len() + 1);
    let export_row = row("snapshot_export", exp)
        .strategy(strategy.clone())
        .baseline(read.min(sha) / f64::from(1 << 20), er)
        .target(">= 0.7x min(raw read, sha256)", er >= 0.7);
    step("snapshot export");
    let import_row = row("snapshot_import", imp)
        .strategy(strategy)
        .baseline(write.min(sha) / f64::from(1 << 20), ir)
        .target(">= 0.7x min(raw write+fsync, sha256)", ir >= 0.7);
    step("snapshot import");
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
    vec![
        export_row,
        import_row,
        row("baseline_raw_read", read),
        row("baseline_raw_write_fsync", write),
        row("baseline_sha256", sha),
    ]
}
