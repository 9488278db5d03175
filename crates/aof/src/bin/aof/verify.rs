//! `aof verify`: every checksum of every segment, against the index.

use crate::index::progress_bar;
use crate::layout;
use crate::output::human_size;
use anyhow::{Context, bail};
use aof::AofError;
use aof::engine::layout::segment_file_name;
use std::path::Path;

/// Verifies the log in `dir` without changing it; fails naming the first
/// problem found, or the damage a writable open would repair.
pub fn run(dir: &Path, archive: Option<&str>) -> anyhow::Result<()> {
    let (_, log) = layout::open_existing(dir, archive)?;
    let bar = progress_bar();
    bar.set_message("segments verified");
    let report = log.verify(&mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    let report = report.map_err(|e| failed(dir, e))?;
    // Damage recovery would repair (a torn tail, files that do not belong):
    // the read-only open saw it and left it; say so, and fail.
    let damage: Vec<String> = log
        .repairs()
        .iter()
        .filter(|r| r.is_damage())
        .map(ToString::to_string)
        .collect();
    if !damage.is_empty() {
        bail!(
            "verification failed: the log needs repair (`aof repair {}`): {}; the {} records before it verify",
            dir.display(),
            damage.join("; "),
            report.records
        );
    }
    println!(
        "ok: {} segments, {} records, {} verified",
        report.segments,
        report.records,
        human_size(report.bytes)
    );
    log.close_blocking().context("closing the log")
}

/// `aof repair`: prints what recovery will change, then (unless `dry_run`)
/// opens the log as a writer, which makes those changes.
pub fn repair(dir: &Path, archive: Option<&str>, dry_run: bool) -> anyhow::Result<()> {
    if !dry_run {
        // Refuse a log another process has open before printing a plan.
        drop(layout::lock(dir)?);
    }
    let (layout, log) = layout::open_existing(dir, archive)?;
    let planned: Vec<String> = log.repairs().iter().map(ToString::to_string).collect();
    drop(log);
    // With an archive, the writable open also sweeps this log's orphan objects.
    if planned.is_empty() && (archive.is_none() || dry_run) {
        println!("nothing to repair");
        return Ok(());
    }
    for change in &planned {
        println!("{}{change}", if dry_run { "would " } else { "" });
    }
    if dry_run {
        return Ok(());
    }
    let mut builder = aof::Builder::new(dir).config(layout::read_config(&layout)?);
    if let Some(url) = archive {
        builder = builder.archive(layout::archive(url)?);
    }
    let log = builder.open().map_err(|e| layout::open_error(dir, e))?;
    let done = log.repairs().len();
    if archive.is_some() {
        let swept = log.sweep_archive().context("removing orphan archive objects")?;
        println!("removed {swept} archive objects no segment of this log uses");
    }
    log.close_blocking().context("closing the log")?;
    println!("repaired: {done} changes");
    Ok(())
}

/// The verification failure `e`, naming the segment's file when it has one.
fn failed(dir: &Path, e: AofError) -> anyhow::Error {
    let segment = match &e {
        AofError::Corruption { segment, .. }
        | AofError::InvalidFooter { segment, .. }
        | AofError::SegmentMismatch { segment, .. }
        | AofError::MissingSegment { segment, .. } => Some(*segment),
        _ => None,
    };
    let at = match segment {
        Some(s) => format!(" ({})", dir.join(segment_file_name(s)).display()),
        None => String::new(),
    };
    anyhow::Error::new(e).context(format!("verification failed{at}"))
}
