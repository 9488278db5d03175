//! [`read_entries`]: an index's entries for a read-only view of its log,
//! without opening the index file itself.
//!
//! A writer holds its MDBX file exclusively, and even a read-only open of a
//! file nobody holds would keep a writer from starting while it lasts. So
//! the file is copied into a private directory and the copy is read.
//!
//! The copy is taken again until the file's length and modification time
//! are the same after it as before; after 20 tries, a copy the file changed
//! under is taken if it reads. What guards those, and a torn copy within the
//! file system's timestamp granularity: libmdbx's own checks on open and
//! read (meta page checksums; a page whose transaction id is newer than the
//! page or meta that refers to it, as a page the writer reused after the
//! copy's meta was taken), and the checks of every row's decoding; a failure
//! of either takes the copy again. Beside a writer that commits back to back
//! (a test showed it) every copy is torn: then the error is
//! [`std::io::ErrorKind::ResourceBusy`], on which the caller can fall back
//! to another way (`aof` rebuilds a view's entries from the segment files).

use crate::codec::ENTRIES;
use crate::env::{Bytes, open_env};
use crate::error::{mdbx, open_error};
use crate::options::MdbxIndexOptions;
use crate::rows::decode_row;
use crate::schema::read_format;
use aof_record::entry::SegmentEntry;
use aof_record::index::{IndexError, IndexResult};
use libmdbx::Mode;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// How many times a copy is taken, waiting for one the file does not change
/// under.
const ATTEMPTS: usize = 20;

/// How many copies the file changed under are tried after that, each kept
/// only if libmdbx opens and reads it and every row decodes.
const LENIENT_ATTEMPTS: usize = 10;

/// Every entry of the MDBX index at `path`, read from a private copy of the
/// file: the file is never opened, so this works beside a writer in another
/// process (or this one) and never keeps one from opening it. Empty when
/// there is no file. The entries are those of the last synced state, plus
/// the commits since that reached the file (a writer's unsynced commits, in
/// the page cache, are in the copy; libmdbx discards them if the newest is
/// only partly there).
///
/// Fails with [`IndexError::NotAnIndex`] for a file that is not an aof index,
/// [`IndexError::UnsupportedSchemaVersion`] for a newer format, and
/// [`IndexError::Io`] of kind [`std::io::ErrorKind::ResourceBusy`] when the
/// file changed under every copy (a writer committing back to back).
pub fn read_entries(path: impl AsRef<Path>) -> IndexResult<Vec<SegmentEntry>> {
    let path = path.as_ref();
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            return Err(IndexError::NotAnIndex {
                path: path.to_owned(),
                reason: "a directory, not an MDBX data file",
            });
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(io(path, source)),
    }
    // Removed with its contents on drop.
    let dir = tempfile::Builder::new()
        .prefix("aof-mdbx-view-")
        .tempdir()
        .map_err(|e| io(&std::env::temp_dir(), e))?;
    let copy = dir.path().join("index.mdbx");
    let mut last_error = None;
    for attempt in 0..ATTEMPTS + LENIENT_ATTEMPTS {
        let before = stamp(path)?;
        std::fs::copy(path, &copy).map_err(|e| io(path, e))?;
        let quiet = stamp(path)? == before;
        // A copy the file changed under is only taken when no quiet one
        // came: beside a writer committing back to back none does.
        if !quiet && attempt < ATTEMPTS {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        match read_copy(&copy, path) {
            Ok(entries) => return Ok(entries),
            // A quiet copy is the file as it is: its errors are the file's.
            Err(e) if quiet => return Err(e),
            // Torn: copy again.
            Err(e) => last_error = Some(e),
        }
        // libmdbx's lock file of the copy goes with it.
        let _ = std::fs::remove_file(dir.path().join("index.mdbx-lck"));
    }
    let reason = match last_error {
        Some(e) => format!("every copy of the index was torn by the writer (the last: {e})"),
        None => "the index kept changing while it was copied for reading".to_owned(),
    };
    Err(io(
        path,
        std::io::Error::new(std::io::ErrorKind::ResourceBusy, reason),
    ))
}

/// The entries of the private copy `copy` of the index at `path` (named in
/// errors).
fn read_copy(copy: &Path, path: &Path) -> IndexResult<Vec<SegmentEntry>> {
    let env = match open_env(copy, Mode::ReadOnly) {
        Ok(env) => env,
        // The newest meta page is not synced ("weak"): only a read-write
        // open settles it, which on a private copy changes nothing of the
        // log's.
        Err(libmdbx::Error::WannaRecovery) => {
            open_env(copy, MdbxIndexOptions::default().mode()).map_err(|e| open_error(path, e))?
        }
        Err(e) => return Err(open_error(path, e)),
    };
    let txn = env.begin_ro_txn().map_err(mdbx)?;
    if read_format(&txn, path)?.is_none() {
        // A new file no writer has committed to yet.
        return Ok(Vec::new());
    }
    let table = txn.open_table(Some(ENTRIES)).map_err(|e| open_error(path, e))?;
    let mut cursor = txn.cursor(&table).map_err(mdbx)?;
    cursor
        .iter_start::<Bytes<'_>, Bytes<'_>>()
        .map(|row| {
            let (k, v) = row.map_err(mdbx)?;
            decode_row(&k, &v)
        })
        .collect()
}

/// The length and modification time of `path`.
fn stamp(path: &Path) -> IndexResult<(u64, Option<SystemTime>)> {
    let meta = std::fs::metadata(path).map_err(|e| io(path, e))?;
    Ok((meta.len(), meta.modified().ok()))
}

fn io(path: &Path, source: std::io::Error) -> IndexError {
    IndexError::Io {
        path: path.to_owned(),
        source,
    }
}
