//! Every name the log uses on disk, in one place.
//!
//! A log directory holds:
//!
//! | name | what it is |
//! |---|---|
//! | `00000000000000000042.seg` | a segment file: 20 zero-padded digits of its first id, so names sort in id order |
//! | `00000000000000000042.seg.tmp` | a segment being created or rewritten, renamed into place once synced |
//! | `prealloc-N.tmp` | a zero-filled file prepared for the next segment |
//! | `<segment>.torn-<offset>[.n]` | bytes recovery cut from a torn tail, kept for inspection |
//! | `LOCK` | the lock file that keeps a second writer out |
//! | `MANIFEST` | the log's identity and recovery point (`MANIFEST.tmp` while it is created) |
//! | `lost+found/` | files recovery would not use but could not prove to be garbage |
//! | `index.sqlite` / `index.mdbx` | the segment index, when kept inside the directory (the default) |
//! | `archive-cache/` | archived segments' fetched bytes: `<segment>` files, sparse until whole (only a cache: dropped on open) |
//!
//! In the archive, a segment's object is `<log id>/<segment>.zst`: the
//! log's identity (32 hex digits) first, so logs sharing a bucket and
//! prefix never touch each other's objects.
//!
//! Nothing else in the workspace spells these names; code that needs one
//! calls this module.

use std::path::{Path, PathBuf};

/// Name of the lock file that keeps a second writer out of a log directory.
pub const LOCK_FILE: &str = "LOCK";

/// Name of the log's manifest: identity and recovery point.
pub const MANIFEST_FILE: &str = "MANIFEST";

/// The manifest's name while it is being created.
pub const MANIFEST_TEMP_FILE: &str = "MANIFEST.tmp";

/// The directory recovery moves files into that it will not use but cannot
/// prove to be garbage.
pub const LOST_FOUND_DIR: &str = "lost+found";

/// File name of the SQLite index inside a log directory.
pub const SQLITE_INDEX_FILE: &str = "index.sqlite";

/// File name of the MDBX index inside a log directory.
pub const MDBX_INDEX_FILE: &str = "index.mdbx";

/// File name extension of segment files.
pub const SEGMENT_FILE_EXTENSION: &str = "seg";

/// The directory (inside a log directory) holding fetched archived data.
pub const ARCHIVE_CACHE_DIR: &str = "archive-cache";

/// The extension of an archive object after the segment's file name.
const ARCHIVE_SUFFIX: &str = ".zst";

const TMP_SUFFIX: &str = ".tmp";
const PREALLOC_PREFIX: &str = "prealloc-";
const TORN_INFIX: &str = ".torn-";

/// The file name of the segment whose first id is `base_id`: 20 zero-padded
/// decimal digits, so that names sort in id order.
///
/// ```
/// assert_eq!(aof_core::layout::segment_file_name(42), "00000000000000000042.seg");
/// ```
#[must_use]
pub fn segment_file_name(base_id: u64) -> String {
    format!("{base_id:020}.{SEGMENT_FILE_EXTENSION}")
}

/// The base id named by a segment file name, or `None` for any other name.
#[must_use]
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_FILE_EXTENSION)?.strip_suffix('.')?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The temp name a segment file has while it is created or rewritten.
#[must_use]
pub fn segment_temp_name(base_id: u64) -> String {
    format!("{}{TMP_SUFFIX}", segment_file_name(base_id))
}

/// The name of the `seq`-th pre-allocated file.
#[must_use]
pub fn prealloc_name(seq: u64) -> String {
    format!("{PREALLOC_PREFIX}{seq}{TMP_SUFFIX}")
}

/// The name of the `n`-th file (0 first) holding a torn tail that recovery
/// cut from `segment_name` at `offset`.
#[must_use]
pub fn torn_tail_name(segment_name: &str, offset: u64, n: u32) -> String {
    if n == 0 {
        format!("{segment_name}{TORN_INFIX}{offset}")
    } else {
        format!("{segment_name}{TORN_INFIX}{offset}.{n}")
    }
}

/// Whether `name` is one of the engine's temp files (a segment being created
/// or a pre-allocated file): a crash before its rename leaves it behind.
#[must_use]
pub fn is_temp_name(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(TMP_SUFFIX) else {
        return false;
    };
    stem.strip_prefix(PREALLOC_PREFIX)
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        || parse_segment_file_name(stem).is_some()
}

/// `dir` joined with a file `name` the engine made.
#[must_use]
pub fn path_in(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// The segment file's name of a path the engine made (empty if it has none).
#[must_use]
pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The archive key prefix of every object of the log `log_id` (with a
/// trailing `/`).
#[must_use]
pub fn archive_prefix(log_id: aof_record::LogId) -> String {
    format!("{log_id}/")
}

/// The archive key of segment `base_id` of the log `log_id`:
/// `<log id>/<segment file name>.zst`.
///
/// ```
/// let key = aof_core::layout::archive_key(aof_record::LogId(1), 42);
/// assert_eq!(key, "00000000000000000000000000000001/00000000000000000042.seg.zst");
/// ```
#[must_use]
pub fn archive_key(log_id: aof_record::LogId, base_id: u64) -> String {
    format!(
        "{}{}{ARCHIVE_SUFFIX}",
        archive_prefix(log_id),
        segment_file_name(base_id)
    )
}

/// The base id named by an archive key of the log `log_id`; `None` for a key
/// of another log or any other name.
#[must_use]
pub fn parse_archive_key(log_id: aof_record::LogId, key: &str) -> Option<u64> {
    let rest = key.strip_prefix(&archive_prefix(log_id))?;
    parse_segment_file_name(rest.strip_suffix(ARCHIVE_SUFFIX)?)
}

/// The name, relative to the log directory, of the cached copy of archived
/// segment `base_id` (what an `ArchivedCached` index entry's `local_path` holds).
#[must_use]
pub fn archive_cache_name(base_id: u64) -> String {
    format!("{ARCHIVE_CACHE_DIR}/{}", segment_file_name(base_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_sort_in_id_order_and_parse_back() {
        assert_eq!(
            parse_segment_file_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
        assert_eq!(parse_segment_file_name(&segment_file_name(0)), Some(0));
        for bad in [
            "",
            "1.seg",
            "0000000000000000000a.seg",
            "00000000000000000001.tmp",
            "00000000000000000001seg",
            "99999999999999999999.seg",
        ] {
            assert_eq!(parse_segment_file_name(bad), None, "{bad}");
        }
        assert!(segment_file_name(9) < segment_file_name(10));
    }

    #[test]
    fn temp_names_are_recognised_and_nothing_else() {
        assert!(is_temp_name(&segment_temp_name(7)));
        assert!(is_temp_name(&prealloc_name(3)));
        for other in [
            "x.tmp",
            "prealloc-.tmp",
            "prealloc-x.tmp",
            ".tmp",
            "00000000000000000001.seg",
            "00000000000000000001.seg.torn-64",
            LOCK_FILE,
            SQLITE_INDEX_FILE,
        ] {
            assert!(!is_temp_name(other), "{other}");
        }
        assert_eq!(torn_tail_name("a.seg", 64, 0), "a.seg.torn-64");
        assert_eq!(torn_tail_name("a.seg", 64, 2), "a.seg.torn-64.2");
    }

    #[test]
    fn archive_keys_name_their_log_and_parse_back() {
        let (a, b) = (aof_record::LogId(7), aof_record::LogId(8));
        let key = archive_key(a, 42);
        assert_eq!(parse_archive_key(a, &key), Some(42));
        assert_eq!(parse_archive_key(b, &key), None, "another log's object");
        for other in [
            "",
            "x/00000000000000000042.seg.zst",
            &format!("{a}/00000000000000000042.seg"),
        ] {
            assert_eq!(parse_archive_key(a, other), None, "{other}");
        }
        assert_eq!(archive_cache_name(3), "archive-cache/00000000000000000003.seg");
    }
}
