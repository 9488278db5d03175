//! `aof append`: one record per line of standard input.

use crate::layout::{self, Found};
use anyhow::{Context, bail};
use aof::{Aof, AofConfig, AofError, FlushStrategy, IndexBackend};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

/// Lines appended in one step at most (when that many are already waiting).
const MAX_BATCH_RECORDS: usize = 4096;
/// Payload bytes appended in one step at most.
const MAX_BATCH_BYTES: usize = 4 << 20;

/// Without `--sync`: flush in the background after this many records or
/// milliseconds, whichever comes first.
const BACKGROUND_FLUSH: FlushStrategy = FlushStrategy::BatchedOrPeriodic {
    batch_size: 4096,
    interval_ms: 100,
};

/// Appends stdin's lines to the log in `dir`, creating it if needed.
pub fn run(
    dir: &Path,
    sync: bool,
    segment_size: Option<u64>,
    index: Option<IndexBackend>,
    compress: bool,
    archive: Option<&str>,
    archive_threshold: Option<u64>,
) -> anyhow::Result<()> {
    let backend = match layout::inspect(dir)? {
        Found::Missing | Found::Empty => index.unwrap_or_default(),
        Found::Log(l) => {
            if let Some(asked) = index.filter(|b| *b != l.backend) {
                bail!(
                    "the log in {} uses the {} index, not {} (see `aof index migrate`)",
                    dir.display(),
                    layout::backend_name(l.backend),
                    layout::backend_name(asked)
                );
            }
            l.backend
        }
    };
    let mut builder = AofConfig::builder()
        .index_backend(backend)
        .enable_compression(compress)
        .flush_strategy(if sync {
            FlushStrategy::Sync
        } else {
            BACKGROUND_FLUSH
        });
    if let Some(size) = segment_size {
        builder = builder.segment_size(size);
    }
    // Archival as the log grows: with an archive, or a threshold (which
    // without an archive is refused at open, never ignored).
    if archive.is_some() || archive_threshold.is_some() {
        builder = builder.archive_enabled(true);
    }
    if let Some(n) = archive_threshold {
        builder = builder.archive_threshold(n);
    }
    let config = builder.build()?;
    // Appends outrunning the archiver wait for it (backpressure) rather
    // than fail at once; an archive down for this long fails the command.
    let mut open = aof::Builder::new(dir)
        .config(config)
        .backpressure_wait(std::time::Duration::from_secs(600));
    if let Some(url) = archive {
        open = open.archive(layout::archive(url)?);
    }
    let log = open.open().map_err(|e| layout::open_error(dir, e))?;
    let stdin = io::stdin();
    let stdout = io::stdout();
    let result = append_lines(
        &log,
        BufReader::with_capacity(256 * 1024, stdin.lock()),
        BufWriter::new(stdout.lock()),
    );
    // Flush and close even after a failure: what was appended stays, durably.
    let closed = log.close_blocking().context("closing the log");
    result.and(closed)
}

/// Appends every line of `input` and prints each id to `out` once appended.
///
/// Lines already waiting in the input buffer are appended together (one
/// fsync under `--sync`); an id is printed, and `out` flushed, as soon as
/// its batch returns, so an interactive writer sees each id at once.
fn append_lines<R: Read>(log: &Aof, mut input: BufReader<R>, mut out: impl Write) -> anyhow::Result<()> {
    let max = log.config().max_record_size() as usize;
    let mut batch: Vec<Vec<u8>> = Vec::new();
    let mut batch_bytes = 0usize;
    let mut line_no = 0u64;
    loop {
        let mut line = Vec::new();
        let (n, len) = read_line(&mut input, &mut line, max).context("reading standard input")?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if len > max as u64 {
            flush_batch(log, &mut batch, &mut out)?;
            bail!(
                "line {line_no}: {}",
                AofError::RecordTooLarge {
                    size: len,
                    max: log.config().max_record_size(),
                }
            );
        }
        batch_bytes += line.len();
        batch.push(line);
        // Take whatever complete lines are already buffered, without blocking.
        let more_waiting = input.buffer().contains(&b'\n');
        if !more_waiting || batch.len() >= MAX_BATCH_RECORDS || batch_bytes >= MAX_BATCH_BYTES {
            flush_batch(log, &mut batch, &mut out)?;
            batch_bytes = 0;
        }
    }
    flush_batch(log, &mut batch, &mut out)
}

/// Reads one line into `line` without its `\n`. Returns the bytes consumed
/// (0 at the end of input) and the line's length. Stores at most `max + 1`
/// bytes, so that a huge line is refused without holding all of it.
fn read_line(input: &mut impl BufRead, line: &mut Vec<u8>, max: usize) -> io::Result<(usize, u64)> {
    let limit = max as u64 + 1;
    let mut consumed = 0usize;
    loop {
        let room = limit.saturating_sub(line.len() as u64);
        let n = input.by_ref().take(room).read_until(b'\n', line)?;
        consumed += n;
        if n == 0 || line.last() == Some(&b'\n') {
            break;
        }
        if line.len() as u64 >= limit {
            let (skipped, newline) = skip_line(input)?;
            consumed += skipped;
            let len = (line.len() + skipped - usize::from(newline)) as u64;
            return Ok((consumed, len));
        }
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    Ok((consumed, line.len() as u64))
}

/// Consumes the rest of a line without keeping it; returns the bytes
/// consumed and whether they ended with `\n`.
fn skip_line(input: &mut impl BufRead) -> io::Result<(usize, bool)> {
    let mut consumed = 0;
    loop {
        let buf = input.fill_buf()?;
        if buf.is_empty() {
            return Ok((consumed, false));
        }
        let (n, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        input.consume(n);
        consumed += n;
        if done {
            return Ok((consumed, true));
        }
    }
}

/// Appends `batch` in one step and prints its ids.
fn flush_batch(log: &Aof, batch: &mut Vec<Vec<u8>>, out: &mut impl Write) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let ids = log.append_batch(batch).context("appending")?;
    batch.clear();
    for id in ids {
        writeln!(out, "{id}").context("writing to standard output")?;
    }
    out.flush().context("writing to standard output")
}

/// `aof archive`: archives every finalized segment of the log in `dir` to
/// `archive` now, showing progress.
pub fn archive(dir: &Path, archive: &str) -> anyhow::Result<()> {
    let layout = layout::existing(dir)?;
    let config = layout::read_config(&layout)?;
    let log = aof::Builder::new(dir)
        .config(config)
        .archive(layout::archive(archive)?)
        .open()
        .map_err(|e| layout::open_error(dir, e))?;
    let bar = crate::index::progress_bar();
    bar.set_message("segments archived");
    let done = log.archive_now(&mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    let done = done.context("archiving")?;
    let m = log.performance_metrics().archive();
    println!(
        "archived {done} segments ({} uploaded, ratio {:.3})",
        crate::output::human_size(m.bytes_uploaded()),
        m.compression_ratio()
    );
    log.close_blocking().context("closing the log")
}
