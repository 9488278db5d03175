//! Consistent snapshots of an aof log, streamed as checksummed chunks, and
//! their verified, atomic import.
//!
//! * [`export`] takes a point of a live log (every record through
//!   [`SnapshotMetadata::last_id`], none after, while appends continue) and
//!   yields it as [`SnapshotChunk`]s: a blocking iterator ([`Exporter`]) or
//!   an async stream ([`ExportStream`]). Finalized segments are read in
//!   place while pinned; memory is a few chunks.
//! * [`wire`] frames each chunk (length, version, CRC-64/NVME, bincode 2
//!   payload) for a byte stream; `docs/snapshot.md` has the format byte by byte.
//! * [`Importer`] / [`import_from`] check every chunk (sequence, names,
//!   offsets, sizes, SHA-256 per file and overall), stage the files beside
//!   the target, verify the staged log and install it with one rename; on
//!   any error the target is untouched.
//!
//! # Example
//!
//! ```
//! use aof_core::Aof;
//! use aof_record::{AofConfig, FlushStrategy, MemorySegmentIndex};
//! use aof_snapshot::{ExportOptions, ImportOptions, wire::FrameWriter};
//! use std::sync::Arc;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let config = AofConfig::builder().flush_strategy(FlushStrategy::Sync).build().unwrap();
//! let log = Aof::open(dir.path().join("source"), config.clone(), Arc::new(MemorySegmentIndex::new())).unwrap();
//! for i in 0..100u32 {
//!     log.append(&i.to_le_bytes()).unwrap();
//! }
//!
//! // Export into bytes (a file, a socket, a pipe)...
//! let mut out = FrameWriter::new(Vec::new());
//! for chunk in aof_snapshot::export(&log, ExportOptions::new()).unwrap() {
//!     out.write_chunk(&chunk.unwrap()).unwrap();
//! }
//! let bytes = out.finish().unwrap();
//!
//! // ...and import them into a new directory.
//! let target = dir.path().join("copy");
//! let imported = aof_snapshot::import_from(&bytes[..], &target, &ImportOptions::new(), &mut |_, _| {}).unwrap();
//! assert_eq!(imported.metadata.last_id, Some(99));
//!
//! // The imported log has no index yet: open it with a rebuild.
//! let mut options = aof_core::AofOptions::new(config);
//! options.rebuild_index = true;
//! let copy = Aof::open_with(&target, options, Arc::new(MemorySegmentIndex::new())).unwrap();
//! imported.check(&copy).unwrap();
//! assert_eq!(copy.read(42).unwrap().as_deref(), Some(&42u32.to_le_bytes()[..]));
//! ```

mod chunk;
pub mod digest;
mod error;
mod export;
mod import;
mod staged;
mod stream;
pub mod wire;

pub use chunk::{
    DEFAULT_CHUNK_SIZE, FileChunk, FileInfo, FileKind, MAX_CHUNK_SIZE, MAX_FILE_SIZE, MAX_FILES,
    MAX_NAME_LEN, NameProblem, SnapshotChunk, SnapshotMetadata, WIRE_VERSION, check_file_name,
};
pub use digest::{Digest, snapshot_checksum};
pub use error::{SnapshotError, SnapshotResult};
pub use export::{ExportOptions, Exporter, export};
pub use import::{ImportOptions, Imported, Importer, import_from};
pub use stream::ExportStream;
