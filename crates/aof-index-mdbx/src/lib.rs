//! The aof segment index on [libmdbx](https://libmdbx.dqdkfa.ru/):
//! [`MdbxSegmentIndex`], an [`aof_record::index::SegmentIndex`] backend.
//!
//! It exists for lookup speed: a point lookup
//! ([`SegmentIndex::find_segment_for_id`]) is one read transaction and one
//! B-tree cursor seek over a memory map, several times faster than SQLite. It
//! behaves exactly like the in-memory reference and the SQLite backend: all
//! three pass the same conformance suite, and migrating between them is
//! [`aof_record::index::copy_index`].
//!
//! ```
//! use aof_index_mdbx::MdbxSegmentIndex;
//! use aof_record::entry::SegmentEntry;
//! use aof_record::index::SegmentIndex;
//!
//! let dir = tempfile::tempdir()?;
//! let index = MdbxSegmentIndex::open(dir.path().join("segments.mdbx"))?;
//! let mut active = SegmentEntry::new_active(1000, 1_700_000_000_000_000, "00000000000000001000.seg");
//! active.set_tail(Some(1099), 4096)?;
//! index.add_entry(&active)?;
//! index.sync()?; // durable from here on
//! assert_eq!(index.find_segment_for_id(1050)?.map(|e| e.base_id), Some(1000));
//! assert_eq!(index.find_segment_for_id(1100)?, None);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Files
//!
//! The path given to [`MdbxSegmentIndex::open`] is the MDBX data file itself
//! (`MDBX_NOSUBDIR`); libmdbx keeps its lock file next to it, at the same path
//! with `-lck` appended. [`SegmentIndex::copy_to`] writes a compacted data
//! file that `open` takes as it is. The file is opened `MDBX_EXCLUSIVE`: one
//! handle in one process at a time, so no other writer can change it behind
//! the read-transaction pool (a second `open` fails with
//! [`IndexError::Backend`]). A read-only view of a log reads the entries
//! with [`read_entries`], from a private copy of the file, beside the writer
//! and without ever keeping one from opening it.
//!
//! # Reads
//!
//! Beginning an MDBX read transaction costs about as much as a lookup, and
//! opening a cursor about a tenth of one, so reads reuse both: each thread
//! takes a cached read transaction, with the cursors it has opened, from a
//! slot of its own (16 slots; a thread whose slot is busy tries the next
//! two, then reads on a transaction of its own). Each cached transaction is
//! tagged with the number of writes committed when it began; a write bumps
//! that number after its commit, and a transaction with an old tag is
//! ended, never used. So every read sees every write that returned before it
//! started (the trait's contract). A write also ends the old transactions of
//! the slots not in use at that moment, and a read ends its own if a write
//! committed while it ran, so old snapshots do not pin the pages the writer
//! reuses. Table handles are opened once, for the environment's lifetime.
//!
//! # Tables
//!
//! | table | key | value |
//! |---|---|---|
//! | `aof.entries` | `base_id`, u64 big-endian (key order is id order) | the entry, layout below |
//! | `aof.by_status` | status byte (1 Active, 2 Finalized, 3 ArchivedCached, 4 ArchivedRemote) ++ `base_id` BE | empty |
//! | `aof.by_time` | end time BE (`finalized_at`, or `u64::MAX` while open-ended) ++ `base_id` BE | `created_at`, u64 BE |
//! | `aof.meta` | `b"format"`, `b"version"`, `b"max_span"`, `b"log_id"` | `b"aof-segment-index"`, u64 BE, u64 BE, u128 BE |
//!
//! Every mutation rewrites the entry and its two secondary rows in **one**
//! write transaction, after checking it there (duplicates, overlaps with the
//! neighbours found by cursor seeks, record counts, lifecycle moves), so the
//! tables never disagree and a refused call changes nothing.
//! [`SegmentIndex::add_entries`] is one write transaction for the whole batch:
//! a libmdbx write transaction costs 60–90 µs here, a put well under 1 µs.
//!
//! A time query (`created_at <= end && start <= end_time`) scans `aof.by_time`
//! from `start` up to `end + max_span`, then jumps to the open-ended rows.
//! `max_span` is the longest `finalized_at - created_at` ever written: an upper
//! bound that only grows, so the scan never misses an entry and, with segments
//! of similar lengths, reads little more than the answer.
//!
//! # Entry layout, version 1
//!
//! Integers little-endian; an absent optional number is stored as 0 with its
//! presence bit clear.
//!
//! | offset | bytes | field |
//! |---|---|---|
//! | 0 | 1 | layout version, 1 |
//! | 1 | 1 | status byte, as in `aof.by_status` |
//! | 2 | 1 | presence bits: 0 `finalized_at`, 1 `archived_at`, 2 `uncompressed_checksum`, 3 `compressed_checksum`, 4 `compressed_size`, 5 `local_path`, 6 `archive_key` |
//! | 3 | 1 | reserved, 0 |
//! | 4 | 8 | `base_id` (must equal the key) |
//! | 12 | 8 | `last_id` |
//! | 20 | 8 | `record_count` |
//! | 28 | 8 | `created_at` |
//! | 36 | 8 | `original_size` |
//! | 44 | 8 | `finalized_at` |
//! | 52 | 8 | `archived_at` |
//! | 60 | 8 | `uncompressed_checksum` |
//! | 68 | 8 | `compressed_checksum` |
//! | 76 | 8 | `compressed_size` |
//! | 84 | 4 | length of `local_path` in bytes (u32) |
//! | 88 | 4 | length of `archive_key` in bytes (u32) |
//! | 92 | … | `local_path` then `archive_key`, UTF-8; nothing after them |
//!
//! Decoding is defensive: a value that is short, long, of another layout, with
//! unknown bits, a `base_id` other than its key, invalid UTF-8 or a record
//! count that does not span its ids is [`IndexError::CorruptEntry`] naming the
//! field, never a panic.
//!
//! # Format versions
//!
//! `aof.meta` holds [`FORMAT_VERSION`]. The `log_id` row (the identity of
//! the log the index belongs to, [`SegmentIndex::set_log_identity`]) is
//! absent until set, so a version-1 file from before identities is still
//! version 1 and opens without one. A file with a newer version is
//! refused with [`IndexError::UnsupportedSchemaVersion`] after a read-only
//! look, so it is not modified (one exception: a file whose writer died with
//! unsynced commits can only be opened read-write, and libmdbx recovers it
//! before the version is read). A file that is not an MDBX environment, or an
//! MDBX environment without the `aof.meta` marker, is
//! [`IndexError::NotAnIndex`].
//!
//! # Durability
//!
//! Commits use `MDBX_SAFE_NOSYNC`: a commit writes its pages but does not
//! fsync, and [`SegmentIndex::sync`] forces an environment sync
//! (`mdbx_env_sync_ex(force)`), after which every committed change is durable.
//! That is exactly the trait's contract ("durable once `sync` returns") at the
//! cost of a write transaction rather than a write transaction plus two fsyncs
//! on every tail update. A crash cannot corrupt the file: libmdbx keeps the
//! last synced ("steady") state intact and rolls back to it, losing only the
//! commits since the last `sync`, which nobody was promised. A process crash
//! without an OS crash loses nothing (the pages are in the page cache;
//! `tests/crash.rs` aborts a writer and reopens).
//! [`MdbxIndexOptions::durable_commits`] switches to `MDBX_SYNC_DURABLE`, where
//! every commit is durable on its own.

mod codec;
mod env;
mod error;
mod index;
mod options;
mod rows;
mod schema;
mod view;
mod writer;

pub use aof_record::index::{IndexError, IndexResult, SegmentIndex, SegmentIndexExt};
pub use codec::FORMAT_VERSION;
pub use error::BACKEND;
pub use index::MdbxSegmentIndex;
pub use options::MdbxIndexOptions;
pub use view::read_entries;
