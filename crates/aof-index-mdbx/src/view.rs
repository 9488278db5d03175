//! [`read_entries`]: an index's entries for a read-only view of its log,
//! without opening the index file itself.
//!
//! A writer holds its MDBX file exclusively, and even a read-only open of a
//! file nobody holds would keep a writer from starting while it lasts. So
//! the file is copied into a private directory and the copy is read. The
//! copy is taken again until the file's length and modification time are
//! the same after it as before, and a torn copy that slips through anyway
//! (a write within the file system's timestamp granularity) fails libmdbx's
//! own checks on open or read (page checksums and transaction ids newer than
//! the copy's meta page), which take the copy again too.

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

/// How many times a copy is taken before giving up on a file that keeps
/// changing.
const ATTEMPTS: usize = 20;

/// Every entry of the MDBX index at `path`, read from a private copy of the
/// file: the file is never opened, so this works beside a writer in another
/// process (or this one) and never keeps one from opening it. Empty when
/// there is no file. The entries are those of the last synced state, plus
/// the commits since that reached the file (a writer's unsynced commits, in
/// the page cache, are in the copy; libmdbx discards them if the newest is
/// only partly there).
///
/// Fails with [`IndexError::NotAnIndex`] for a file that is not an aof index
/// and [`IndexError::UnsupportedSchemaVersion`] for a newer format.
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
    for _ in 0..ATTEMPTS {
        let before = stamp(path)?;
        std::fs::copy(path, &copy).map_err(|e| io(path, e))?;
        if stamp(path)? != before {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        match read_copy(&copy, path) {
            Ok(entries) => return Ok(entries),
            // Torn after all: copy again.
            Err(e @ IndexError::Backend { .. }) => last_error = Some(e),
            Err(e @ IndexError::NotAnIndex { .. }) if last_error.is_none() => last_error = Some(e),
            Err(e) => return Err(e),
        }
        // libmdbx's lock file of the copy goes with it.
        let _ = std::fs::remove_file(dir.path().join("index.mdbx-lck"));
    }
    Err(last_error.unwrap_or_else(|| {
        io(
            path,
            std::io::Error::other("the index kept changing while it was copied for reading"),
        )
    }))
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
