//! Opening a log after a power loss: the crash image comes from the
//! fault-injecting file system (`aof_core::testing::FaultyFileSystem`),
//! SQLite index included (through the SQLite VFS over that file system the
//! crash sweeps use), so unsynced pages are lost or written back out of
//! order as a power cut leaves them. The image is then written to real
//! files, and each sample opens a fresh copy with the embedded defaults
//! (local files, SQLite): tail cut, WAL replayed, everything recovery does.
//!
//! Rows: the open time at `segments` segments against a rebuild of the index
//! by scanning every segment (target ≥ 50× faster), and against the open
//! time of a 10-segment log crashed the same way (issue 15: open at 10k
//! segments ≤ 2 × open at 10, recovery's cost flat in the log's size).

#[path = "../../tests/faulty_vfs.rs"]
mod faulty_vfs;

use crate::Res;
use crate::results::BenchResult;
use crate::scratch;
use aof::{AofConfig, FlushStrategy};
use aof_core::testing::{CrashMode, FaultyFileSystem};
use aof_core::{Aof, AofOptions, FileSystem};
use aof_index_sqlite::{SqliteIndexOptions, SqliteSegmentIndex};
use faulty_vfs::{Mount, VFS_NAME};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Opens timed per log size; the median is reported.
pub const SAMPLES: usize = 5;

/// Payload size of the crashed logs' records.
const PAYLOAD: usize = 4000;

/// 64 KiB segments: a thousandth of the default size, so that building
/// 10,000 of them stays quick, yet big enough that a rebuild scans data.
fn config() -> Res<AofConfig> {
    Ok(AofConfig::builder()
        .segment_size(64 * 1024)
        .flush_strategy(FlushStrategy::Async)
        .pre_allocate_enabled(false)
        .build()?)
}

/// Builds a log of `segments` finalized segments on the fault model, Async,
/// appends half a segment more without a flush, and writes the power-loss
/// image (writeback seed `seed`) to `out` as real files.
fn crash_image(segments: usize, seed: u64, out: &Path) -> Res<()> {
    let fs = FaultyFileSystem::new();
    let dyn_fs: Arc<dyn FileSystem> = Arc::new(fs.clone());
    let mount = Mount::new(dyn_fs.clone());
    let dir = Path::new("/log");
    let index = SqliteSegmentIndex::open_with(
        mount.path(&dir.join(aof_core::layout::SQLITE_INDEX_FILE)),
        &SqliteIndexOptions::default().vfs(VFS_NAME),
    )?;
    let mut options = AofOptions::new(config()?);
    options.fs = dyn_fs;
    let log = Aof::open_with(dir, options, Arc::new(index))?;
    let payload = vec![7u8; PAYLOAD];
    let batch = vec![payload.as_slice(); 16];
    while (log.performance_metrics().segments_finalized() as usize) < segments {
        log.append_batch(&batch)?;
    }
    log.append_batch(&batch[..8])?;
    let image = fs.crash_image(CrashMode::Writeback { seed });
    drop(log);
    drop(mount);
    scratch::fresh_dir(out)?;
    for name in image.list(dir)? {
        let data = image
            .read_file(&dir.join(&name))
            .ok_or_else(|| format!("{name} is listed in the crash image but holds no file"))?;
        std::fs::write(out.join(&name), data)?;
    }
    Ok(())
}

/// Copies the files of `from` into a fresh `to`, leaving out the index when
/// `with_index` is false.
fn copy_log(from: &Path, to: &Path, with_index: bool) -> Res<()> {
    scratch::fresh_dir(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        let is_index = name
            .to_str()
            .is_some_and(|n| n.starts_with(aof_core::layout::SQLITE_INDEX_FILE));
        if with_index || !is_index {
            std::fs::copy(entry.path(), to.join(&name))?;
        }
    }
    Ok(())
}

/// One timed open of a fresh copy of `image`: with its index, or rebuilding
/// it by scanning the segments. Returns the time and the log's next id.
fn timed_open(image: &Path, run: &Path, rebuild: bool) -> Res<(Duration, u64)> {
    copy_log(image, run, !rebuild)?;
    let mut options = aof::AofOptions::new(config()?);
    options.rebuild_index = rebuild;
    let t = Instant::now();
    let log = aof::open_with(run, options)?;
    let took = t.elapsed();
    let next = log.next_id();
    log.close_blocking()?;
    Ok((took, next))
}

/// Median open time over [`SAMPLES`] fresh copies, and the next id all of
/// them agree on.
fn median_open(image: &Path, run: &Path, rebuild: bool) -> Res<(Duration, u64)> {
    let mut times = Vec::with_capacity(SAMPLES);
    let mut next = None;
    for _ in 0..SAMPLES {
        let (took, n) = timed_open(image, run, rebuild)?;
        if next.is_some_and(|x| x != n) {
            return Err(format!("two opens of one crash image end at {next:?} and {n}").into());
        }
        next = Some(n);
        times.push(took);
    }
    times.sort();
    Ok((times[SAMPLES / 2], next.ok_or("no sample")?))
}

/// The rows described in the module docs, for a log of `segments` segments.
pub fn run(dir: &Path, segments: usize) -> Res<Vec<BenchResult>> {
    let (image, run) = (dir.join("image"), dir.join("run"));
    crash_image(10, 1, &image)?;
    let (small, _) = median_open(&image, &run, false)?;
    crash_image(segments, 1, &image)?;
    let (open, next) = median_open(&image, &run, false)?;
    let (rebuild, rebuilt_next) = median_open(&image, &run, true)?;
    scratch::remove_dir(dir)?;
    if rebuilt_next != next {
        return Err(format!("the rebuilt log ends at {rebuilt_next}, the indexed one at {next}").into());
    }
    let min_records = (segments * 64 * 1024 / (PAYLOAD + 32) / 2) as u64;
    if next < min_records {
        return Err(format!("the crashed log kept {next} records of {segments} segments").into());
    }
    let rate = |d: Duration| 1.0 / d.as_secs_f64();
    let us = |d: Duration| Some(d.as_secs_f64() * 1e6);
    let speedup = rate(open) / rate(rebuild);
    let flat = rate(open) / rate(small);
    Ok(vec![
        BenchResult::new(
            format!("open_after_crash_{segments}_segments"),
            PAYLOAD,
            rate(open),
            0.0,
        )
        .latency(us(open), None)
        .baseline(rate(rebuild), speedup)
        .target("≥ 50 × faster than rebuild", speedup >= 50.0),
        BenchResult::new(
            format!("open_after_crash_{segments}_vs_10_segments"),
            PAYLOAD,
            rate(open),
            0.0,
        )
        .latency(us(open), None)
        .baseline(rate(small), flat)
        .target("≤ 2 × open at 10 segments", flat >= 0.5),
        BenchResult::new(
            format!("baseline_rebuild_by_scan_{segments}_segments"),
            PAYLOAD,
            rate(rebuild),
            0.0,
        )
        .latency(us(rebuild), None),
        BenchResult::new("baseline_open_after_crash_10_segments", PAYLOAD, rate(small), 0.0)
            .latency(us(small), None),
    ])
}
