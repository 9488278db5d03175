//! The format marker and version in `aof.meta`: checked before a file is
//! opened for writing, written into a new one.

use crate::codec::{
    FORMAT_MAGIC, FORMAT_VERSION, META, META_FORMAT, META_MAX_SPAN, META_VERSION, TABLES, decode_meta_u64,
};
use crate::env::{Bytes, Env, Txn, open_env};
use crate::error::{mdbx, open_error};
use aof_record::index::{IndexError, IndexResult};
use libmdbx::{Mode, TableFlags, TransactionKind, WriteFlags};
use std::path::Path;

/// Looks at an existing file without the right to write, so that a file
/// this code refuses (a directory, a foreign file, a newer format) comes out
/// of it untouched. A missing file is fine: opening creates it.
pub(crate) fn check_existing(path: &Path) -> IndexResult<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Err(IndexError::NotAnIndex {
            path: path.to_owned(),
            reason: "a directory, not an MDBX data file",
        }),
        Ok(_) => match open_env(path, Mode::ReadOnly) {
            Ok(env) => {
                let txn = env.begin_ro_txn().map_err(mdbx)?;
                read_format(&txn, path).map(drop)
            }
            // A process died with commits not yet synced (the file's
            // newest meta page is "weak"): only a read-write open
            // recovers it. The format is checked right after that.
            Err(libmdbx::Error::WannaRecovery) => Ok(()),
            Err(e) => Err(open_error(path, e)),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(IndexError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Checks the format of the environment just opened read-write, or gives a
/// new, empty one its tables and marker (synced before this returns).
pub(crate) fn init(env: &Env, path: &Path) -> IndexResult<()> {
    let txn = env.begin_rw_txn().map_err(mdbx)?;
    if read_format(&txn, path)?.is_some() {
        return Ok(());
    }
    for name in TABLES {
        txn.create_table(Some(name), TableFlags::empty()).map_err(mdbx)?;
    }
    let meta = txn.open_table(Some(META)).map_err(mdbx)?;
    let put = |k: &[u8], v: &[u8]| txn.put(&meta, k, v, WriteFlags::empty()).map_err(mdbx);
    put(META_FORMAT, FORMAT_MAGIC)?;
    put(META_VERSION, &FORMAT_VERSION.to_be_bytes())?;
    put(META_MAX_SPAN, &0u64.to_be_bytes())?;
    txn.commit().map_err(mdbx)?;
    env.sync(true).map_err(mdbx)?;
    Ok(())
}

/// Reads the format marker: `None` for an environment with no table at all
/// (new), the version if it is an index this code can open.
pub(crate) fn read_format<K: TransactionKind>(txn: &Txn<'_, K>, path: &Path) -> IndexResult<Option<u64>> {
    let not_index = |reason| IndexError::NotAnIndex {
        path: path.to_owned(),
        reason,
    };
    let meta = match txn.open_table(Some(META)) {
        Ok(meta) => meta,
        Err(libmdbx::Error::NotFound) => {
            let main = txn.open_table(None).map_err(mdbx)?;
            let stat = txn.table_stat(&main).map_err(mdbx)?;
            return if stat.entries() == 0 {
                Ok(None)
            } else {
                Err(not_index("an MDBX environment without the aof index tables"))
            };
        }
        Err(e) => return Err(open_error(path, e)),
    };
    let magic: Option<Bytes<'_>> = txn.get(&meta, META_FORMAT).map_err(mdbx)?;
    if magic.as_deref() != Some(FORMAT_MAGIC) {
        return Err(not_index("the aof.meta table lacks the aof index marker"));
    }
    let version: Option<Bytes<'_>> = txn.get(&meta, META_VERSION).map_err(mdbx)?;
    let version = version
        .as_deref()
        .and_then(decode_meta_u64)
        .ok_or_else(|| not_index("the format version is missing or unreadable"))?;
    if version > FORMAT_VERSION {
        return Err(IndexError::UnsupportedSchemaVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if version == 0 {
        return Err(not_index("format version 0"));
    }
    Ok(Some(version))
}
