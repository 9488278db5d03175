//! The aof archive object format, defined once for every archive backend
//! and for the engine.
//!
//! An archived segment is the segment file compressed as the **zstd
//! seekable format** (`contrib/seekable_format` in the zstd repository):
//! independent zstd frames of 1 MiB of segment each, with content checksums,
//! followed by a seek table in a skippable frame. So:
//!
//! - `zstd -d` turns an object back into the exact segment file bytes
//!   ([`restore`] does the same and checks the segment's CRC-64/NVME);
//! - a reader fetches the seek table (two small ranged reads, cached by the
//!   engine) and then only the frame that holds a record: one ranged read of
//!   about 1 MiB / ratio bytes ([`ArchiveFormatExt::read_frame`]);
//! - writing streams with bounded memory ([`SeekableWriter`]: a frame per
//!   worker, in and out), and compresses `workers` frames at once.
//!
//! The byte layout is in `docs/format.md`; a checked-in fixture object is
//! read by this crate's tests, so the format cannot drift.
//!
//! # Why a crate of its own
//!
//! zstd is a C library with a slow first build; the index backends and
//! `aof-record`'s other users never need it. The storage backends do not
//! either (they store opaque objects): the engine, the benchmarks and the
//! backends' tests do. A crate keeps the format, its fixture, its fuzz-style
//! tests and its one dependency in one place.
//!
//! # Example
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use aof_archive_format::{ArchiveFormatExt, WriterOptions};
//! use aof_record::archive::{ArchiveKey, MemoryArchive};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let segment = dir.path().join("00000000000000000000.seg");
//! let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
//! std::fs::write(&segment, &bytes).unwrap();
//!
//! let archive = MemoryArchive::new();
//! let key = ArchiveKey::new("segments/00000000000000000000.seg.zst").unwrap();
//! let summary = archive
//!     .archive_segment(&key, &segment, dir.path(), WriterOptions::default())
//!     .await
//!     .unwrap();
//! assert_eq!(summary.table.frames(), 3);
//!
//! // One record's bytes: the seek table, then one frame.
//! let (table, _) = archive.read_seek_table(&key).await.unwrap();
//! let frame = table.frame_at(2_500_000).unwrap();
//! let data = archive.read_frame(&key, &frame).await.unwrap();
//! assert_eq!(data[..], bytes[frame.decompressed.start as usize..frame.decompressed.end as usize]);
//!
//! // The whole segment, checked against its checksum.
//! let back = dir.path().join("restored.seg");
//! archive.restore_segment(&key, &back, Some(summary.uncompressed_checksum)).await.unwrap();
//! assert_eq!(std::fs::read(&back).unwrap(), bytes);
//! # });
//! ```

mod error;
mod reader;
mod storage;
mod table;
mod writer;

pub use error::FormatError;
pub use reader::{RestoreError, decode_frame, restore};
pub use storage::{ArchiveFormatExt, SegmentArchiveError, compress_file};
pub use table::{
    FOOTER_LEN, Footer, FrameEntry, FrameLocation, HEADER_LEN, MAX_FRAME_SIZE, MAX_FRAMES, SEEKABLE_MAGIC,
    SKIPPABLE_MAGIC, SeekTable,
};
pub use writer::{DEFAULT_FRAME_SIZE, ObjectSummary, SeekableWriter, WriterOptions};
