//! `aof snapshot export` and `aof snapshot import`.

use crate::index::progress_bar;
use crate::layout;
use crate::output::human_size;
use anyhow::Context;
use aof::snapshot::wire::FrameWriter;
use aof::snapshot::{ExportOptions, ImportOptions};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

fn is_stdio(p: &Path) -> bool {
    p.as_os_str() == "-"
}

/// Exports the log in `dir` to `out` (`-`: standard output).
pub fn export(dir: &Path, out: &Path, chunk_size: Option<usize>) -> anyhow::Result<()> {
    let (_, log) = layout::open_existing(dir, None)?;
    let mut options = ExportOptions::new();
    if let Some(size) = chunk_size {
        options = options.chunk_size(size)?;
    }
    let exporter = aof::snapshot::export(&log, options)?;
    let md = exporter.metadata().clone();
    if is_stdio(out) {
        let stdout = std::io::stdout().lock();
        drop(write_all(exporter, BufWriter::new(stdout), md.total_size)?);
    } else {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(out)
            .with_context(|| format!("creating {}", out.display()))?;
        let result = write_all(exporter, BufWriter::new(file), md.total_size)
            .and_then(|f| f.sync_all().with_context(|| format!("syncing {}", out.display())));
        if let Err(e) = result {
            // A partial snapshot is of no use to anyone.
            let _ = std::fs::remove_file(out);
            return Err(e);
        }
        let ids = match md.last_id {
            Some(last) => format!("ids {}..={last}", md.first_id),
            None => "no records".to_owned(),
        };
        println!(
            "exported {ids}: {} files, {} to {}",
            md.files.len(),
            human_size(md.total_size),
            out.display()
        );
    }
    log.close_blocking().context("closing the log")
}

fn write_all<W: Write>(
    exporter: aof::snapshot::Exporter,
    out: BufWriter<W>,
    total: u64,
) -> anyhow::Result<W> {
    let bar = progress_bar();
    bar.set_length(total);
    bar.set_message("bytes exported");
    let mut frames = FrameWriter::new(out);
    let mut done = 0u64;
    for chunk in exporter {
        let chunk = chunk?;
        if let Some(f) = &chunk.file_chunk {
            done += f.data.len() as u64;
            bar.set_position(done);
        }
        frames.write_chunk(&chunk)?;
    }
    bar.finish_and_clear();
    let out = frames.finish()?;
    out.into_inner().map_err(|e| anyhow::Error::new(e.into_error()))
}

/// Imports the snapshot in `input` (`-`: standard input) into `dir`.
pub fn import(input: &Path, dir: &Path) -> anyhow::Result<()> {
    let reader: Box<dyn Read> = if is_stdio(input) {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?)
    };
    // Building the index from the segment files is this command's plan,
    // not a repair: recovery's warning that the index is empty would only
    // alarm. (A verified snapshot leaves recovery nothing else to warn about.)
    log::set_max_level(log::LevelFilter::Error);
    let bar = progress_bar();
    bar.set_message("bytes imported");
    let imported = aof::snapshot::import_from(
        BufReader::with_capacity(1 << 20, reader),
        dir,
        &ImportOptions::new(),
        &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        },
    );
    bar.finish_and_clear();
    let imported = imported?;
    // The snapshot carries no index: build the SQLite one from the files.
    let log = aof::Builder::new(dir)
        .rebuild_index(true)
        .open()
        .map_err(|e| layout::open_error(dir, e))?;
    imported.check(&log)?;
    let md = &imported.metadata;
    let ids = match md.last_id {
        Some(last) => format!("ids {}..={last}", md.first_id),
        None => "no records".to_owned(),
    };
    println!(
        "imported {ids}: {} files, {} into {}",
        md.files.len(),
        human_size(md.total_size),
        dir.display()
    );
    log.close_blocking().context("closing the log")
}
