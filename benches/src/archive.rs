//! `--only archive`: archiving a sealed segment and reading one record back.
//!
//! - **store**: compress a 64 MiB log-like segment into the archive object
//!   format and store it (filesystem: staged, fsynced, linked; s3s-fs in
//!   process over HTTP on 127.0.0.1), beside zstd alone at the same level on
//!   the same bytes (one streaming frame, file to file), in alternating rounds
//!   of the same run. Target: ≥ 0.8 × zstd alone.
//! - **read**: fetch one record's frame by one ranged read (seek table
//!   cached, as the engine keeps it) beside fetching and decompressing the
//!   whole object; p50/p99 latency and the bytes fetched (`size` column).
//!
//! `strategy` shows each object's compression ratio (segment / object).

use aof_archive_format::{ArchiveFormatExt, WriterOptions};
use aof_archive_fs::FilesystemArchiveStorage;
use aof_archive_s3::{S3ArchiveStorage, S3Config};
use aof_bench::BenchResult;
use aof_bench::measure::median;
use aof_record::archive::{ArchiveKey, ArchiveStorage, ArchiveStorageExt};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::io::{BufReader, BufWriter};
use std::path::Path;
use std::time::Instant;

/// zstd level used by every case (the default `archive_compression_level`).
const LEVEL: i32 = 3;
/// Cases reported, for the progress bar.
pub const CASES: u64 = 7;

/// Writes a segment of `size` log-like bytes: JSON-ish lines with varying
/// ids, timestamps and a few random words, compressing about 4–6×.
fn make_segment(path: &Path, size: usize) -> std::io::Result<()> {
    use std::io::Write;
    const WORDS: [&str; 16] = [
        "GET",
        "PUT",
        "user",
        "order",
        "ok",
        "timeout",
        "retry",
        "cache",
        "miss",
        "hit",
        "eu-west-1",
        "shard",
        "commit",
        "append",
        "flush",
        "segment",
    ];
    let mut w = BufWriter::new(std::fs::File::create(path)?);
    let (mut x, mut written, mut id) = (0x9E37_79B9_7F4A_7C15u64, 0usize, 0u64);
    while written < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let line = format!(
            "{{\"id\":{id},\"ts\":{},\"level\":\"{}\",\"msg\":\"{} {} {}\",\"latency_us\":{}}}\n",
            1_700_000_000_000_000u64 + id * 137 + (x & 0xff),
            WORDS[(x >> 8) as usize % 4],
            WORDS[(x >> 12) as usize % 16],
            WORDS[(x >> 16) as usize % 16],
            WORDS[(x >> 20) as usize % 16],
            (x >> 24) % 100_000
        );
        let n = line.len().min(size - written);
        w.write_all(&line.as_bytes()[..n])?;
        written += n;
        id += 1;
    }
    w.flush()
}

/// zstd alone: the segment file to a compressed file, one streaming frame.
fn zstd_alone(segment: &Path, out: &Path) -> std::io::Result<()> {
    let input = BufReader::with_capacity(1 << 20, std::fs::File::open(segment)?);
    let output = BufWriter::with_capacity(1 << 20, std::fs::File::create(out)?);
    zstd::stream::copy_encode(input, output, LEVEL)
}

/// Starts s3s-fs on 127.0.0.1 over `root`; returns its endpoint.
pub(crate) async fn start_s3s(root: &Path, access: &str, secret: &str) -> String {
    std::fs::create_dir_all(root.join("bench")).expect("s3s-fs root");
    let fs = s3s_fs::FileSystem::new(root).expect("s3s-fs");
    let mut b = s3s::service::S3ServiceBuilder::new(fs);
    b.set_auth(s3s::auth::SimpleAuth::from_single(access, secret));
    let service = b.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        while let Ok((socket, _)) = listener.accept().await {
            // As S3 servers do: without it, small responses wait out
            // delayed ACKs (~40 ms per request on loopback).
            let _ = socket.set_nodelay(true);
            let conn = http
                .serve_connection(TokioIo::new(socket), service.clone())
                .into_owned();
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    });
    endpoint
}

fn row(workload: &str, size: usize, per_sec: f64, bytes_per_sec: f64) -> BenchResult {
    BenchResult {
        workload: workload.to_owned(),
        strategy: None,
        record_size: size,
        appenders: 1,
        records_per_sec: per_sec,
        bytes_per_sec,
        p50_us: None,
        p99_us: None,
        baseline_records_per_sec: None,
        ratio_to_baseline: None,
        target: None,
        target_met: None,
    }
}

fn p(xs: &mut [f64], q: f64) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[((xs.len() - 1) as f64 * q).round() as usize]
}

/// Runs the archive cases in `scratch`; `quick` shrinks the segment and rounds.
pub fn run(scratch: &Path, quick: bool, step: &mut dyn FnMut(&str)) -> Vec<BenchResult> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run_async(scratch, quick, step))
}

async fn run_async(scratch: &Path, quick: bool, step: &mut dyn FnMut(&str)) -> Vec<BenchResult> {
    let dir = scratch.join("archive");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch");
    let size: usize = if quick { 16 << 20 } else { 64 << 20 };
    let rounds = if quick { 3 } else { 7 };
    let segment = dir.join("segment.seg");
    make_segment(&segment, size).expect("segment");
    let fs = FilesystemArchiveStorage::new(dir.join("fs")).expect("fs archive");
    let endpoint = start_s3s(&dir.join("s3s"), "AKIABENCH", "bench-secret").await;
    let mut config = S3Config::new(Some(endpoint), "AKIABENCH", "bench-secret", "us-east-1", "bench");
    config.max_concurrent_parts = 2;
    let s3 = S3ArchiveStorage::new(config).expect("s3 archive");
    let stores: [(&str, &dyn ArchiveStorage, usize); 3] = [
        ("archive_store_fs", &fs, 1),
        ("archive_store_fs_2workers", &fs, 2),
        ("archive_store_s3s_fs", &s3, 1),
    ];

    let mut results = Vec::new();
    let mut base_rates = Vec::new();
    let mut rates = vec![Vec::new(); stores.len()];
    let mut ratios = vec![Vec::new(); stores.len()];
    let mut compressed = 0;
    for round in 0..rounds {
        let t = Instant::now();
        zstd_alone(&segment, &dir.join("baseline.zst")).expect("zstd");
        let base = size as f64 / t.elapsed().as_secs_f64();
        base_rates.push(base);
        for (i, (_, storage, workers)) in stores.iter().enumerate() {
            let key = ArchiveKey::new(format!("r{round}/w{workers}/{i}.seg.zst")).expect("key");
            let opts = WriterOptions {
                level: LEVEL,
                workers: *workers,
                ..WriterOptions::default()
            };
            let t = Instant::now();
            let s = storage
                .archive_segment(&key, &segment, &dir, opts)
                .await
                .expect("archive");
            let rate = size as f64 / t.elapsed().as_secs_f64();
            compressed = s.compressed_size;
            rates[i].push(rate);
            ratios[i].push(rate / base);
            if round + 1 < rounds {
                storage.delete(&key).await.expect("delete");
            }
        }
    }
    step("archive store");
    let base = median(&mut base_rates);
    let alone = std::fs::metadata(dir.join("baseline.zst")).map_or(0, |m| m.len());
    let mut b = row("baseline_zstd_alone", size, base / size as f64, base);
    b.strategy = Some(format!("ratio {:.2}", size as f64 / alone.max(1) as f64));
    for (i, (name, _, _)) in stores.iter().enumerate() {
        let rate = median(&mut rates[i]);
        let ratio = median(&mut ratios[i]);
        let mut r = row(name, size, rate / size as f64, rate);
        r.strategy = Some(format!("ratio {:.2}", size as f64 / compressed as f64));
        r.baseline_records_per_sec = Some(base / size as f64);
        r.ratio_to_baseline = Some(ratio);
        r.target = Some(">= 0.8x zstd alone".into());
        r.target_met = Some(ratio >= 0.8);
        results.push(r);
        step(name);
    }
    results.push(b);

    // Reads: the last round's objects stay.
    let last = rounds - 1;
    let reads = if quick { 30 } else { 200 };
    for (i, (name, storage, workers)) in stores.iter().enumerate().filter(|(i, _)| *i != 1) {
        let key = ArchiveKey::new(format!("r{last}/w{workers}/{i}.seg.zst")).expect("key");
        let (table, meta) = storage.read_seek_table(&key).await.expect("seek table");
        let mut lat = Vec::with_capacity(reads);
        let mut fetched = 0u64;
        let mut x = 12345u64;
        for _ in 0..reads {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let at = x % table.decompressed_size();
            let t = Instant::now();
            let f = table.frame_at(at).expect("frame");
            let bytes = storage.read_frame(&key, &f).await.expect("frame read");
            lat.push(t.elapsed().as_secs_f64() * 1e6);
            assert!(!bytes.is_empty());
            fetched += f.compressed.end - f.compressed.start;
        }
        let mut r = row(
            &format!("{}_read_frame", name.trim_start_matches("archive_store_")),
            (fetched / reads as u64) as usize,
            1e6 / median(&mut lat.clone()),
            0.0,
        );
        r.p50_us = Some(p(&mut lat, 0.5));
        r.p99_us = Some(p(&mut lat, 0.99));
        r.strategy = Some("1 ranged read".into());
        let whole_reads = if quick { 3 } else { 10 };
        let mut wl = Vec::with_capacity(whole_reads);
        for _ in 0..whole_reads {
            let t = Instant::now();
            let all = storage.read_all(&key).await.expect("read");
            let seg = zstd::decode_all(&all[..]).expect("decode");
            wl.push(t.elapsed().as_secs_f64() * 1e6);
            assert_eq!(seg.len(), size);
        }
        let mut w = row(
            &format!("{}_read_whole", name.trim_start_matches("archive_store_")),
            meta.size as usize,
            1e6 / median(&mut wl.clone()),
            0.0,
        );
        w.p50_us = Some(p(&mut wl, 0.5));
        w.p99_us = Some(p(&mut wl, 0.99));
        w.strategy = Some("whole object".into());
        r.baseline_records_per_sec = Some(w.records_per_sec);
        r.ratio_to_baseline = Some(r.records_per_sec / w.records_per_sec);
        results.push(r);
        results.push(w);
        step(name);
    }
    let _ = std::fs::remove_dir_all(&dir);
    results
}
