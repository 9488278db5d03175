//! `aof verify`: every checksum of every segment, against the index.

use crate::index::progress_bar;
use crate::layout;
use crate::output::human_size;
use anyhow::{Context, bail};
use aof::AofError;
use aof::engine::layout::segment_file_name;
use aof::format::record::decode_record;
use aof::format::{FooterError, RECORD_HEADER_SIZE, SEGMENT_HEADER_SIZE, SegmentFooter};
use std::path::Path;

/// Verifies the log in `dir`; fails naming the first problem found, or if
/// opening the log had to cut a torn tail.
pub fn run(dir: &Path) -> anyhow::Result<()> {
    let (_, log) = layout::open_existing(dir)?;
    let bar = progress_bar();
    bar.set_message("segments verified");
    let report = log.verify(&mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    let report = report.map_err(|e| failed(dir, locate(dir, e)))?;
    // Opening ran recovery, which cuts bytes at the end of the active segment
    // that fail their checksum: after a crash a torn write, otherwise damage.
    // Either way the records are gone from the log; say so, and fail.
    let cut = log.performance_metrics().torn_tails_cut();
    if cut > 0 {
        bail!(
            "verification failed: the active segment ended in bytes that fail their checksum \
             (a torn write or damage); opening the log cut them off and saved them beside the \
             segment as <segment>.torn-<offset>; the {} records before them verify",
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

/// A data checksum mismatch says that a finalized segment is damaged, not
/// where: walk its records to find the first bad one, so the error names
/// the offset. Any other error is returned as it is.
fn locate(dir: &Path, e: AofError) -> AofError {
    let AofError::InvalidFooter {
        segment,
        source: FooterError::DataChecksumMismatch { .. },
    } = &e
    else {
        return e;
    };
    match first_bad_record(dir, *segment) {
        Some(found) => found,
        None => e,
    }
}

/// The first record of finalized segment `base` that fails to decode or
/// has the wrong id, as an error; `None` if every record holds.
fn first_bad_record(dir: &Path, base: u64) -> Option<AofError> {
    let data = std::fs::read(dir.join(segment_file_name(base))).ok()?;
    let footer = SegmentFooter::decode(&data).ok()?;
    let end = usize::try_from(footer.data_end).ok()?.min(data.len());
    let mut at = SEGMENT_HEADER_SIZE;
    let mut id = base;
    while at < end {
        match decode_record(&data[at..end], u32::MAX - RECORD_HEADER_SIZE as u32) {
            Ok(rec) if rec.header.id == id => {
                at += rec.encoded_len();
                id += 1;
            }
            Ok(rec) => {
                return Some(AofError::SegmentMismatch {
                    segment: base,
                    what: "record id",
                    expected: id,
                    actual: rec.header.id,
                });
            }
            Err(source) => {
                return Some(AofError::Corruption {
                    segment: base,
                    offset: at as u64,
                    source,
                });
            }
        }
    }
    None
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
