//! What a directory holds, and opening the log in it.

use anyhow::bail;
use aof::engine::layout::parse_segment_file_name;
use aof::{Aof, AofConfig, AofError, FlushStrategy, IndexBackend};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The index backends the tool knows, in detection order.
pub const BACKENDS: [IndexBackend; 2] = [IndexBackend::Sqlite, IndexBackend::Mdbx];

/// What a directory is, as far as the tool is concerned.
#[derive(Debug)]
pub enum Found {
    /// Nothing at that path.
    Missing,
    /// An empty directory.
    Empty,
    /// A log: segment files, an index, or both.
    Log(Layout),
}

/// The files of a log directory that tell what it is.
#[derive(Debug)]
pub struct Layout {
    /// Which index the log uses (SQLite when there is none yet).
    pub backend: IndexBackend,
}

/// The file name of the `backend` index inside a log directory.
pub fn index_file(dir: &Path, backend: IndexBackend) -> PathBuf {
    // The defaults with another backend are valid; `build` cannot fail here.
    let config = AofConfig::builder()
        .index_backend(backend)
        .build()
        .unwrap_or_default();
    aof::index_path(dir, &config)
}

/// A short name of a backend, as on the command line.
pub fn backend_name(backend: IndexBackend) -> &'static str {
    match backend {
        IndexBackend::Mdbx => "mdbx",
        _ => "sqlite",
    }
}

/// Looks at `dir` without changing anything.
pub fn inspect(dir: &Path) -> anyhow::Result<Found> {
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Missing),
        Err(e) => return Err(AofError::io(dir, e).into()),
    };
    if !meta.is_dir() {
        return Err(AofError::NotALog {
            path: dir.to_owned(),
            reason: "it is not a directory",
        }
        .into());
    }
    let mut segment_files = false;
    let mut any = false;
    for entry in std::fs::read_dir(dir).map_err(|e| AofError::io(dir, e))? {
        let entry = entry.map_err(|e| AofError::io(dir, e))?;
        any = true;
        segment_files |= entry
            .file_name()
            .to_str()
            .and_then(parse_segment_file_name)
            .is_some();
    }
    let indexes: Vec<IndexBackend> = BACKENDS
        .into_iter()
        .filter(|b| index_file(dir, *b).exists())
        .collect();
    let backend = match indexes[..] {
        [] if !segment_files => {
            if any {
                return Err(AofError::NotALog {
                    path: dir.to_owned(),
                    reason: "no segment files or index",
                }
                .into());
            }
            return Ok(Found::Empty);
        }
        [] => IndexBackend::Sqlite,
        [one] => one,
        _ => bail!(
            "{} holds both index.sqlite and index.mdbx (an interrupted `aof index migrate`?): \
             run `aof index migrate {0} --to <backend>` to finish the migration",
            dir.display()
        ),
    };
    Ok(Found::Log(Layout { backend }))
}

/// The log in `dir`, which must exist.
pub fn existing(dir: &Path) -> anyhow::Result<Layout> {
    match inspect(dir)? {
        Found::Log(layout) => Ok(layout),
        Found::Missing => bail!("{} does not exist", dir.display()),
        Found::Empty => Err(AofError::NotALog {
            path: dir.to_owned(),
            reason: "the directory is empty",
        }
        .into()),
    }
}

/// The configuration to open an existing log with, for reading: embedded
/// defaults on the detected backend, no pre-allocation (nothing is appended).
pub fn read_config(layout: &Layout) -> anyhow::Result<AofConfig> {
    Ok(AofConfig::builder()
        .index_backend(layout.backend)
        .flush_strategy(FlushStrategy::Sync)
        .pre_allocate_enabled(false)
        .build()?)
}

/// Opens the existing log in `dir` to read it, read-only: no lock, not a
/// byte written, beside a writer in another process (on either index
/// backend). With `archive` (a URL, see [`archive`]), archived segments are
/// read from it.
pub fn open_existing(dir: &Path, archive: Option<&str>) -> anyhow::Result<(Layout, Aof)> {
    let layout = existing(dir)?;
    let config = read_config(&layout)?;
    let storage = archive.map(self::archive).transpose()?;
    let log = aof::open_read_only_with_archive(dir, config, storage).map_err(|e| open_error(dir, e))?;
    Ok((layout, log))
}

/// The archive storage `url` names: a path or `file:///path`, or
/// `s3://bucket/prefix` with credentials from the `AWS_*` variables.
pub fn archive(url: &str) -> anyhow::Result<Arc<dyn aof::ArchiveStorage>> {
    Ok(aof::archive_from_url(url)?)
}

/// A failed open, said once: errors that name the directory as they are,
/// the others (corruption, index trouble) with the directory added.
pub fn open_error(dir: &Path, e: AofError) -> anyhow::Error {
    match e {
        AofError::Locked { .. } | AofError::NotALog { .. } | AofError::Io { .. } => e.into(),
        other => anyhow::Error::new(other).context(format!("opening the log in {}", dir.display())),
    }
}

/// The writer lock of the log in `dir` (the engine's own, see
/// [`aof::engine::lock_log`]), held until the guard drops: no writer can
/// open the log meanwhile.
pub fn lock(dir: &Path) -> anyhow::Result<Box<dyn aof::engine::LockGuard>> {
    Ok(aof::engine::lock_log(
        aof::engine::LocalFileSystem::shared().as_ref(),
        dir,
    )?)
}
