//! `aof index migrate` and `aof index backup`.

use crate::layout::{self, backend_name, index_file};
use anyhow::{Context, bail};
use aof::format::index::copy_index;
use aof::index_mdbx::MdbxSegmentIndex;
use aof::index_sqlite::{BackupOptions, SqliteSegmentIndex};
use aof::{AofConfig, AofError, IndexBackend, SegmentIndex};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Files a backend keeps beside its index file: SQLite's write-ahead log and
/// shared memory, MDBX's lock file.
const SIDECARS: [&str; 3] = ["-wal", "-shm", "-lck"];

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s: OsString = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn other(backend: IndexBackend) -> IndexBackend {
    match backend {
        IndexBackend::Mdbx => IndexBackend::Sqlite,
        _ => IndexBackend::Mdbx,
    }
}

/// Opens the `backend` index at `path`.
fn open_at(dir: &Path, backend: IndexBackend, path: &Path) -> anyhow::Result<Arc<dyn SegmentIndex>> {
    let config = AofConfig::builder()
        .index_backend(backend)
        .index_path(path)
        .build()?;
    aof::open_index(dir, &config).with_context(|| format!("opening the index {}", path.display()))
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| AofError::io(dir, e).into())
}

fn rename(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::rename(from, to).with_context(|| format!("renaming {} to {}", from.display(), to.display()))
}

fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(AofError::io(path, e).into()),
    }
}

/// Moves the log in `dir` to the `to` index backend.
///
/// # Crash safety
///
/// The tool picks the index by which file exists (`index.sqlite` or
/// `index.mdbx`), so the switch is a matter of file names, done in this order
/// while holding the log's writer lock (no writer can change the index meanwhile):
///
/// 1. The new index is built beside the old one as `index.<to>.tmp`: every
///    entry copied, read back and compared ([`copy_index`]), synced, closed,
///    the file fsynced. A crash here leaves the old index in force and a
///    `.tmp` file that the next migration removes.
/// 2. `index.<to>.tmp` is renamed to `index.<to>` and the directory fsynced.
///    From here both files exist, complete and identical. A crash here leaves
///    a directory every command refuses with a message saying to run the
///    migration again, which finds both, checks they hold the same entries
///    and log identity, and finishes with step 3. Nothing can write to either meanwhile.
/// 3. The old index is renamed to `index.<from>.bak` (with SQLite's `-wal`,
///    if any, as `index.sqlite.bak-wal`, so the backup still opens), the
///    directory fsynced. This rename is the commit: from here on the log
///    opens with the new backend. An older `.bak` of the same name is replaced.
pub fn migrate(dir: &Path, to: IndexBackend) -> anyhow::Result<()> {
    let from = other(to);
    let from_path = index_file(dir, from);
    let to_path = index_file(dir, to);
    let (from_exists, to_exists) = (from_path.exists(), to_path.exists());
    if !(from_exists && to_exists) {
        // Checks that this is a log at all (and says why not).
        layout::existing(dir)?;
    }
    let _lock = layout::lock(dir)?;
    let entries = match (from_exists, to_exists) {
        (false, true) => bail!("{} already uses the {} index", dir.display(), backend_name(to)),
        (false, false) => bail!(
            "{} has no {} index to migrate from",
            dir.display(),
            backend_name(from)
        ),
        (true, true) => finish_interrupted(dir, from, &from_path, to, &to_path)?,
        (true, false) => {
            let entries = build(dir, from, &from_path, to, &to_path)?;
            rename(&with_suffix(&to_path, ".tmp"), &to_path)?;
            sync_dir(dir)?;
            entries
        }
    };
    // Step 3, the commit.
    let bak = with_suffix(&from_path, ".bak");
    if from == IndexBackend::Sqlite {
        let wal = with_suffix(&from_path, "-wal");
        if wal.exists() {
            rename(&wal, &with_suffix(&bak, "-wal"))?;
        } else {
            remove_if_present(&with_suffix(&bak, "-wal"))?;
        }
    }
    rename(&from_path, &bak)?;
    for sidecar in SIDECARS {
        remove_if_present(&with_suffix(&from_path, sidecar))?;
    }
    sync_dir(dir)?;
    println!(
        "migrated {entries} segment entries from {} to {}; the old index is kept as {}",
        backend_name(from),
        backend_name(to),
        bak.display()
    );
    Ok(())
}

/// Step 1: builds `index.<to>.tmp` as a verified copy of the current index.
fn build(
    dir: &Path,
    from: IndexBackend,
    from_path: &Path,
    to: IndexBackend,
    to_path: &Path,
) -> anyhow::Result<usize> {
    let tmp = with_suffix(to_path, ".tmp");
    for leftover in std::iter::once(tmp.clone()).chain(SIDECARS.map(|s| with_suffix(&tmp, s))) {
        remove_if_present(&leftover)?;
    }
    let result = (|| {
        let source = open_at(dir, from, from_path)?;
        let entries = source.get_all_segments().context("reading the index")?;
        let identity = source
            .log_identity()
            .context("reading the index's log identity")?;
        {
            let target = open_at(dir, to, &tmp)?;
            copy_index(source.as_ref(), target.as_ref())
                .with_context(|| format!("copying the index to {}", tmp.display()))?;
            // For SQLite a full checkpoint: every page is in the main file now.
            target.sync().context("syncing the new index")?;
        }
        drop(source);
        // What is left beside the new file (an already checkpointed WAL,
        // SQLite's shared memory, MDBX's lock file) goes; then the file is
        // opened alone and must hold every entry.
        for sidecar in SIDECARS {
            remove_if_present(&with_suffix(&tmp, sidecar))?;
        }
        let reopened = open_at(dir, to, &tmp)?;
        let reread = reopened
            .get_all_segments()
            .with_context(|| format!("reading back {}", tmp.display()))?;
        let reread_identity = reopened
            .log_identity()
            .with_context(|| format!("reading back {}", tmp.display()))?;
        drop(reopened);
        if reread != entries || reread_identity != identity {
            bail!("the new index {} does not read back as written", tmp.display());
        }
        for sidecar in SIDECARS {
            remove_if_present(&with_suffix(&tmp, sidecar))?;
        }
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| AofError::io(&tmp, e))?;
        Ok(entries.len())
    })();
    if result.is_err() {
        // The half-built copy is ours and nothing refers to it.
        for path in std::iter::once(tmp.clone()).chain(SIDECARS.map(|s| with_suffix(&tmp, s))) {
            let _ = std::fs::remove_file(path);
        }
    }
    result
}

/// Both indexes exist: a migration stopped between steps 2 and 3. Checks
/// that they hold the same entries and log identity, so that step 3 can
/// complete it.
fn finish_interrupted(
    dir: &Path,
    from: IndexBackend,
    from_path: &Path,
    to: IndexBackend,
    to_path: &Path,
) -> anyhow::Result<usize> {
    let contents = |backend, path: &Path| -> anyhow::Result<_> {
        let index = open_at(dir, backend, path)?;
        let read = || format!("reading {}", path.display());
        Ok((
            index.log_identity().with_context(read)?,
            index.get_all_segments().with_context(read)?,
        ))
    };
    let (a_identity, a) = contents(from, from_path)?;
    let (b_identity, b) = contents(to, to_path)?;
    if a != b || a_identity != b_identity {
        bail!(
            "{} and {} both exist and differ: move aside the one that is not in use",
            from_path.display(),
            to_path.display()
        );
    }
    eprintln!(
        "aof: finishing an interrupted migration: {} and {} hold the same entries",
        from_path.display(),
        to_path.display()
    );
    Ok(a.len())
}

/// Copies the index of the log in `dir` to `dest`, consistently: a SQLite
/// index while the log may be open in another process (the online backup
/// API), an MDBX index while the log is closed (MDBX holds it exclusively).
pub fn backup(dir: &Path, dest: &Path) -> anyhow::Result<()> {
    let layout = layout::existing(dir)?;
    let source = index_file(dir, layout.backend);
    if !source.exists() {
        bail!("{} has no index file yet", dir.display());
    }
    let dest = if dest.is_dir() {
        match source.file_name() {
            Some(name) => dest.join(name),
            None => dest.to_owned(),
        }
    } else {
        dest.to_owned()
    };
    if dest.exists() {
        bail!("{} already exists", dest.display());
    }
    let context = || format!("backing up {} to {}", source.display(), dest.display());
    let entries = match layout.backend {
        IndexBackend::Mdbx => {
            // MDBX opens its environment exclusively: only with the log closed.
            let _lock = layout::lock(dir).map_err(|e| match e.downcast_ref::<AofError>() {
                Some(AofError::Locked { .. }) => anyhow::anyhow!(
                    "the log in {} is open in a writer, which holds its MDBX index exclusively: \
                     stop the writer to back up the index (SQLite indexes back up online)",
                    dir.display()
                ),
                _ => e,
            })?;
            let index = MdbxSegmentIndex::open(&source).with_context(context)?;
            index.copy_to(&dest).with_context(context)?;
            index.len().with_context(context)?
        }
        _ => {
            let index = SqliteSegmentIndex::open(&source).with_context(context)?;
            let bar = progress_bar();
            bar.set_message("pages");
            index
                .backup_to(&dest, &BackupOptions::default(), |p| {
                    bar.set_length(p.total_pages);
                    bar.set_position(p.total_pages.saturating_sub(p.remaining_pages));
                })
                .with_context(context)?;
            bar.finish_and_clear();
            // The copy is a snapshot; count what it holds.
            SqliteSegmentIndex::open(&dest)
                .with_context(context)?
                .len()
                .with_context(context)?
        }
    };
    println!(
        "backed up the {} index ({entries} segment entries) to {}",
        backend_name(layout.backend),
        dest.display()
    );
    Ok(())
}

/// A progress bar on stderr, drawn only when stderr is a terminal.
pub fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        None,
        if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} ({eta})") {
        bar.set_style(style);
    }
    bar
}
