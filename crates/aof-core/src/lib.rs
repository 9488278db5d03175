//! The aof engine: durable appends to segment files, crash recovery, and
//! reads by id.
//!
//! An [`Aof`] owns one directory: segment files named by their first id,
//! a `LOCK` file that keeps a second writer out, and (through the
//! [`SegmentIndex`](aof_record::SegmentIndex) it is given) the segment index.
//! Appends get contiguous, monotonic ids; the [`FlushStrategy`] decides when
//! they become durable; a restart reads the index and scans only the active
//! segment.
//!
//! # Example
//!
//! ```
//! use aof_core::Aof;
//! use aof_record::{AofConfig, FlushStrategy, MemorySegmentIndex};
//! use std::sync::Arc;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let config = AofConfig::builder()
//!     .segment_size(64 * 1024)
//!     .flush_strategy(FlushStrategy::Sync)
//!     .build()
//!     .unwrap();
//! let index = Arc::new(MemorySegmentIndex::new());
//! let log = Aof::open(dir.path(), config, index).unwrap();
//! let id = log.append(b"hello").unwrap();
//! assert_eq!(log.durable_id(), Some(id)); // Sync: durable on return
//! assert_eq!(log.read(id).unwrap().as_deref(), Some(&b"hello"[..]));
//! assert_eq!(log.read(id + 1).unwrap(), None);
//! log.close_blocking().unwrap();
//! ```
//!
//! Durability, recovery and locking rules are stated where they are kept:
//! [`Aof`], [`recovery`], and the private modules `shared` (rollover,
//! poisoning, lock order), `writer` (segment creation), `commit` (group
//! commit and the durable watermark) and `cache` (pinning). The code map is
//! `docs/architecture.md`.

mod archive_cache;
mod archiver;
mod background;
mod backpressure;
mod cache;
mod codec;
mod commit;
mod engine;
pub mod fs;
pub mod layout;
mod locks;
mod manifest;
mod metrics;
mod options;
mod reader;
pub mod recovery;
mod refresh;
mod seal;
pub mod segment;
mod shared;
mod snapshot_view;
#[cfg(feature = "fault-injection")]
pub mod testing;
mod truncate;
mod verify;
mod writer;

pub use aof_flush::{FlushControllerMetrics, FlushMetricsSnapshot};
pub use aof_record::{AofConfig, AofError, AofResult, FlushStrategy};
pub use codec::{DuplicateKeyId, EncryptionKey, KeyRing};
pub use engine::Aof;
pub use engine::lock_log;
pub use fs::{FileHandle, FileSystem, LocalFileSystem, LockGuard, OpenMode};
pub use metrics::{ArchiveMetrics, EngineMetrics, LatencySummary, PerformanceMetrics};
pub use options::{AofOptions, SystemTime, TimeSource};
pub use reader::{Reader, Record, Tail};
pub use recovery::{Repair, entries_for_view, entries_from_files, rebuild_index};
pub use segment::FinalizedSegment;
pub use snapshot_view::{SegmentBytes, SnapshotSegment, SnapshotView};
pub use verify::VerifyReport;
