//! `aof stat`: segments, statuses, sizes, ids, the index, metrics.

use crate::layout::{self, backend_name, index_file};
use crate::output::human_size;
use anyhow::Context;
use aof::format::SegmentStatus;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// One segment as `stat` shows it.
struct Row {
    base_id: u64,
    /// `None` while the segment is empty.
    last_id: Option<u64>,
    records: u64,
    status: SegmentStatus,
    /// Bytes of the local file (`None`: no local file).
    file_size: Option<u64>,
    file: Option<String>,
    /// Bytes of the archive object, once archived.
    compressed_size: Option<u64>,
    /// Object bytes over segment bytes.
    ratio: Option<f64>,
    archive_key: Option<String>,
}

/// Prints what the log in `dir` holds.
pub fn run(dir: &Path, archive: Option<&str>, json: bool) -> anyhow::Result<()> {
    let (layout, log) = layout::open_existing(dir, archive)?;
    let next_id = log.next_id();
    let durable_id = log.durable_id();
    let first_id = log.first_id();
    let entries = log.index().get_all_segments().context("reading the index")?;
    let rows: Vec<Row> = entries
        .iter()
        .map(|e| {
            // The index records the active segment's tail only now and then;
            // the engine knows it exactly.
            let records = if e.status == SegmentStatus::Active {
                next_id.saturating_sub(e.base_id)
            } else {
                e.record_count
            };
            let file_size = e
                .local_path
                .as_ref()
                .and_then(|p| std::fs::metadata(dir.join(p)).ok())
                .map(|m| m.len());
            Row {
                base_id: e.base_id,
                last_id: (records > 0).then(|| e.base_id + records - 1),
                records,
                status: e.status,
                file_size,
                file: e.local_path.clone(),
                compressed_size: e.compressed_size,
                ratio: e.compression_ratio(),
                archive_key: e.archive_key.clone(),
            }
        })
        .collect();
    let mut by_status: BTreeMap<&'static str, u64> = BTreeMap::new();
    for r in &rows {
        *by_status.entry(r.status.as_str()).or_default() += 1;
    }
    let index_path = index_file(dir, layout.backend);
    // SQLite's write-ahead log and shared memory, MDBX's lock file.
    let index_bytes: u64 = ["", "-wal", "-shm", "-lck"]
        .iter()
        .filter_map(|suffix| {
            let mut p = index_path.clone().into_os_string();
            p.push(suffix);
            std::fs::metadata(p).ok().map(|m| m.len())
        })
        .sum();
    let segment_bytes: u64 = rows.iter().filter_map(|r| r.file_size).sum();
    let archived_bytes: u64 = rows.iter().filter_map(|r| r.compressed_size).sum();
    let perf = log.performance_metrics().snapshot();
    let flush = log.flush_metrics().snapshot();

    let mut out = BufWriter::new(io::stdout().lock());
    if json {
        let segments: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "base_id": r.base_id,
                    "last_id": r.last_id,
                    "records": r.records,
                    "status": r.status.as_str(),
                    "file": r.file,
                    "file_size": r.file_size,
                    "compressed_size": r.compressed_size,
                    "compression_ratio": r.ratio,
                    "archive_key": r.archive_key,
                })
            })
            .collect();
        let value = json!({
            "dir": dir.display().to_string(),
            "first_id": first_id,
            "next_id": next_id,
            "durable_id": durable_id,
            "records": next_id.saturating_sub(first_id),
            "segment_count": rows.len(),
            "segments_by_status": by_status,
            "segment_bytes": segment_bytes,
            "index": {
                "backend": backend_name(layout.backend),
                "path": index_path.display().to_string(),
                "bytes": index_bytes,
            },
            "segments": segments,
            "metrics": {
                "engine": perf,
                "flush": flush,
            },
            "archived_bytes": archived_bytes,
        });
        serde_json::to_writer_pretty(&mut out, &value)?;
        writeln!(out)?;
    } else {
        let statuses: Vec<String> = by_status.iter().map(|(s, n)| format!("{n} {s}")).collect();
        writeln!(out, "log       {}", dir.display())?;
        writeln!(
            out,
            "index     {} ({}, {})",
            backend_name(layout.backend),
            index_path.display(),
            human_size(index_bytes)
        )?;
        let last = next_id.checked_sub(1).filter(|l| *l >= first_id);
        writeln!(
            out,
            "ids       first {first_id}, last {}, next {next_id}, durable through {} ({} records)",
            opt(last),
            opt(durable_id),
            next_id.saturating_sub(first_id)
        )?;
        writeln!(
            out,
            "segments  {} ({}), {} local, {} archived",
            rows.len(),
            statuses.join(", "),
            human_size(segment_bytes),
            human_size(archived_bytes)
        )?;
        writeln!(out)?;
        writeln!(
            out,
            "{:>20}  {:>20}  {:>10}  {:<14}  {:>10}  {:>10}  {:>6}  file",
            "base_id", "last_id", "records", "status", "size", "archived", "ratio"
        )?;
        for r in &rows {
            writeln!(
                out,
                "{:>20}  {:>20}  {:>10}  {:<14}  {:>10}  {:>10}  {:>6}  {}",
                r.base_id,
                opt(r.last_id),
                r.records,
                r.status.as_str(),
                r.file_size.map_or_else(|| "-".to_owned(), human_size),
                r.compressed_size.map_or_else(|| "-".to_owned(), human_size),
                r.ratio.map_or_else(|| "-".to_owned(), |x| format!("{x:.3}")),
                r.file.as_deref().or(r.archive_key.as_deref()).unwrap_or("-")
            )?;
        }
        writeln!(out)?;
        writeln!(out, "metrics (since this open)")?;
        let metrics = serde_json::to_value(perf)?;
        if let Some(map) = metrics.as_object() {
            for (name, value) in map {
                writeln!(out, "  {name:<20} {value}")?;
            }
        }
        writeln!(
            out,
            "  {:<20} {} ({} failed)",
            "flushes", flush.total_flushes, flush.failed_flushes
        )?;
    }
    out.flush()?;
    drop(out);
    log.close_blocking().context("closing the log")
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}
