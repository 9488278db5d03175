//! `--only archive`, the engine's side: archival while appending, and cold
//! reads of archived records, against s3s-fs in process.
//!
//! - **append while archiving**: sustained Async appends of 1 KiB log-like
//!   records into 8 MiB segments with archival to s3s-fs on (threshold 2),
//!   beside the same appends with archival off, in alternating rounds of
//!   the same run; each round ends when its records are durable. Target:
//!   ≥ 0.8 × archival off, and no backpressure event. The same archiving
//!   to a directory archive shows what the in-process server costs.
//! - **cold read**: a random record of an archived segment read by id just
//!   after the log is opened (nothing of that segment fetched yet): p50/p99
//!   latency, bytes and ranged reads per read (target ≤ 2: the object's
//!   tail, holding the seek table and the last frame with the offset table,
//!   then the record's frame), beside fetching and decompressing the whole
//!   64 MiB segment's object.

use crate::archive::start_s3s;
use aof::{AofConfig, Builder, FlushStrategy};
use aof_archive_s3::{S3ArchiveStorage, S3Config};
use aof_bench::BenchResult;
use aof_bench::measure::median;
use aof_record::archive::{ArchiveKey, ArchiveStorage, ArchiveStorageExt};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Cases reported, for the progress bar.
pub const CASES: u64 = 2;

const RECORD: usize = 1024;
/// Segments of the append case: small, so that many are archived meanwhile.
const SEGMENT: u64 = 8 << 20;
/// Segments of the cold-read case: the default size, so that the whole
/// segment is what a reader without ranged reads would fetch.
const COLD_SEGMENT: u64 = 64 << 20;

fn record(id: u64, buf: &mut Vec<u8>) {
    buf.clear();
    let line = format!(
        "{{\"id\":{id},\"ts\":{},\"level\":\"info\",\"msg\":\"GET /orders/{} 200\",\"latency_us\":{}}}",
        1_700_000_000_000_000u64 + id * 137,
        id % 9973,
        (id * 7919) % 100_000
    );
    while buf.len() < RECORD {
        buf.extend_from_slice(line.as_bytes());
    }
    buf.truncate(RECORD);
}

fn config(archiving: bool, segment: u64) -> AofConfig {
    AofConfig::builder()
        .segment_size(segment)
        .flush_strategy(FlushStrategy::Async)
        .archive_enabled(archiving)
        .archive_threshold(2)
        .build()
        .expect("config")
}

fn row(workload: &str) -> BenchResult {
    BenchResult {
        workload: workload.to_owned(),
        strategy: None,
        record_size: RECORD,
        appenders: 1,
        records_per_sec: 0.0,
        bytes_per_sec: 0.0,
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

/// Appends `n` records to a new log in `dir` (archiving to `archive` if
/// given) until they are durable; returns records/s, backpressure events
/// and segments archived by then.
fn append_round(dir: &Path, n: u64, archive: Option<Arc<dyn ArchiveStorage>>) -> (f64, u64, u64) {
    let _ = std::fs::remove_dir_all(dir);
    let mut b = Builder::new(dir).config(config(archive.is_some(), SEGMENT));
    if let Some(a) = archive {
        b = b.archive(a).backpressure_wait(Duration::from_secs(60));
    }
    let log = b.open().expect("open");
    let mut buf = Vec::with_capacity(RECORD);
    let t = Instant::now();
    for i in 0..n {
        record(i, &mut buf);
        log.append(&buf).expect("append");
    }
    log.flush_blocking().expect("flush");
    let rate = n as f64 / t.elapsed().as_secs_f64();
    let m = log.performance_metrics().archive();
    let out = (rate, m.backpressure_events(), m.segments_archived());
    log.close_blocking().expect("close");
    out
}

/// Runs the engine's archive cases in `scratch`; `quick` shrinks them.
pub fn run(scratch: &Path, quick: bool, step: &mut dyn FnMut(&str)) -> Vec<BenchResult> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = scratch.join("archival");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch");
    let endpoint = rt.block_on(start_s3s(&dir.join("s3s"), "AKIABENCH", "bench-secret"));
    let mut s3_config = S3Config::new(Some(endpoint), "AKIABENCH", "bench-secret", "us-east-1", "bench");
    s3_config.max_concurrent_parts = 2;
    let s3: Arc<dyn ArchiveStorage> = Arc::new(S3ArchiveStorage::new(s3_config).expect("s3 archive"));
    let mut results = Vec::new();

    // Appends while archiving (to s3s-fs; to a directory archive, where no
    // server shares the cores), beside archival off.
    let fs_archive: Arc<dyn ArchiveStorage> =
        Arc::new(aof_archive_fs::FilesystemArchiveStorage::new(dir.join("fs-archive")).expect("fs archive"));
    let targets = [("s3s_fs", s3.clone()), ("fs", fs_archive)];
    let n: u64 = if quick { 48 << 10 } else { 192 << 10 };
    let rounds = if quick { 1 } else { 5 };
    let mut off = Vec::new();
    let mut on = vec![Vec::new(); targets.len()];
    let mut ratios = vec![Vec::new(); targets.len()];
    let (mut events, mut archived) = (vec![0; targets.len()], vec![0; targets.len()]);
    for _ in 0..rounds {
        let (base, _, _) = append_round(&dir.join("off"), n, None);
        off.push(base);
        for (i, (_, archive)) in targets.iter().enumerate() {
            let (rate, ev, ar) = append_round(&dir.join("on"), n, Some(archive.clone()));
            on[i].push(rate);
            ratios[i].push(rate / base);
            events[i] += ev;
            archived[i] = archived[i].max(ar);
        }
    }
    for (i, (name, _)) in targets.iter().enumerate() {
        let mut r = row(&format!("engine_async_append_archiving_{name}"));
        r.records_per_sec = median(&mut on[i]);
        r.bytes_per_sec = r.records_per_sec * RECORD as f64;
        r.strategy = Some(format!(
            "Async, {} segs archived, {} backpressure",
            archived[i], events[i]
        ));
        r.baseline_records_per_sec = Some(median(&mut off.clone()));
        let ratio = median(&mut ratios[i]);
        r.ratio_to_baseline = Some(ratio);
        r.target = Some(">= 0.8x archival off, no backpressure".into());
        r.target_met = Some(ratio >= 0.8 && events[i] == 0);
        results.push(r);
    }
    let mut b = row("baseline_async_append_archival_off");
    b.records_per_sec = median(&mut off);
    b.bytes_per_sec = b.records_per_sec * RECORD as f64;
    b.strategy = Some("Async".into());
    results.push(b);
    step("engine appends while archiving");

    // Cold reads: a log of archived segments, reopened before each batch.
    let log_dir = dir.join("cold");
    let _ = std::fs::remove_dir_all(&log_dir);
    let segments: u64 = if quick { 3 } else { 6 };
    let per_segment = COLD_SEGMENT / (RECORD as u64 + 40);
    let total = segments * per_segment;
    let entries = {
        let log = Builder::new(&log_dir)
            .config(config(false, COLD_SEGMENT))
            .archive(s3.clone())
            .open()
            .expect("open");
        let mut buf = Vec::with_capacity(RECORD);
        for i in 0..total {
            record(i, &mut buf);
            log.append(&buf).expect("append");
        }
        log.flush_blocking().expect("flush");
        log.archive_now(&mut |_, _| {}).expect("archive");
        let entries: Vec<_> = log
            .index()
            .get_all_segments()
            .expect("index")
            .into_iter()
            .filter(|e| e.status.is_archived())
            .collect();
        log.close_blocking().expect("close");
        entries
    };
    let reads = if quick { 12 } else { 64 };
    let (mut lat, mut frames, mut bytes) = (Vec::new(), 0u64, 0u64);
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    while lat.len() < reads {
        let log = Builder::new(&log_dir)
            .config(config(false, COLD_SEGMENT))
            .archive(s3.clone())
            .open()
            .expect("reopen");
        // Each read in a segment not touched since the open: cold.
        for e in &entries {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = e.base_id + x % e.record_count;
            let m = log.performance_metrics().archive();
            let (f0, b0) = (m.frames_fetched(), m.bytes_fetched());
            let t = Instant::now();
            let got = log.read(id).expect("read").expect("record");
            lat.push(t.elapsed().as_secs_f64() * 1e6);
            assert_eq!(got.len(), RECORD);
            frames += m.frames_fetched() - f0;
            bytes += m.bytes_fetched() - b0;
            if lat.len() == reads {
                break;
            }
        }
        log.close_blocking().expect("close");
    }
    let per_read = frames as f64 / lat.len() as f64;
    let mut r = row("engine_cold_read_archived");
    r.record_size = (bytes / lat.len() as u64) as usize;
    r.records_per_sec = 1e6 / median(&mut lat.clone());
    r.p50_us = Some(p(&mut lat, 0.5));
    r.p99_us = Some(p(&mut lat, 0.99));
    r.strategy = Some(format!("{per_read:.2} ranged reads/read"));
    r.target = Some("<= 2 frames (ranged reads) per cold read".into());
    r.target_met = Some(per_read <= 2.0);
    // The whole segment's object, fetched and decompressed.
    let whole_reads = if quick { 3 } else { 8 };
    let mut wl = Vec::new();
    let mut object = 0;
    for e in entries.iter().cycle().take(whole_reads) {
        let key = ArchiveKey::new(e.archive_key.clone().expect("key")).expect("key");
        let t = Instant::now();
        let all = rt.block_on(s3.read_all(&key)).expect("read");
        let seg = zstd::decode_all(&all[..]).expect("decode");
        wl.push(t.elapsed().as_secs_f64() * 1e6);
        object = all.len();
        assert_eq!(seg.len() as u64, e.original_size);
    }
    let mut w = row("baseline_whole_segment_fetch");
    w.record_size = object;
    w.records_per_sec = 1e6 / median(&mut wl.clone());
    w.p50_us = Some(p(&mut wl, 0.5));
    w.p99_us = Some(p(&mut wl, 0.99));
    w.strategy = Some("whole object + decompress".into());
    r.baseline_records_per_sec = Some(w.records_per_sec);
    r.ratio_to_baseline = Some(r.records_per_sec / w.records_per_sec);
    results.push(r);
    results.push(w);
    step("engine cold reads of archived records");
    let _ = std::fs::remove_dir_all(&dir);
    results
}
