//! Crash-test tools (feature `fault-injection`).
//!
//! - [`FaultyFileSystem`]: an in-memory [`FileSystem`](crate::FileSystem)
//!   that keeps each file's durable image apart from its live one and each
//!   directory's durable names apart from its live ones, counts operations
//!   by [`OpKind`], fails one ([`FaultyFileSystem::fail_at`]) or crashes at
//!   one ([`FaultyFileSystem::crash_at`]), and builds the disk as a crash
//!   leaves it ([`CrashMode`], [`CrashImage`]).
//! - [`Sweep`]: crash a workload at every operation (or seeded ones) and
//!   check every image.
//! - [`FileIndex`]: a segment index persisted through any file system.
//!
//! Which crash mode is evidence of what: [`CrashMode::ProcessKill`] keeps
//! the page cache, as `kill -9` does, so it cannot show a missing fsync;
//! [`CrashMode::LoseUnsynced`] and [`CrashMode::Writeback`] (a power loss,
//! with pages written back in any order and directory operations persisted
//! in any subset) can. `tests/crash_model.rs` shows each mode loses exactly
//! what it should.
//!
//! ```
//! use aof_core::testing::{CrashMode, FaultyFileSystem, OpKind};
//! use aof_core::{FileSystem, OpenMode};
//! use std::path::Path;
//!
//! let fs = FaultyFileSystem::new();
//! let f = fs.open(Path::new("/a"), OpenMode::CreateNew).unwrap();
//! fs.sync_dir(Path::new("/")).unwrap();
//! f.write_all_at(&[1; 8192], 0).unwrap(); // two pages, never synced
//! assert_eq!(fs.dirty_pages(Path::new("/a")), vec![0, 1]);
//! // A power loss that wrote back page 1 but not page 0: a hole, then data.
//! let img = fs.crash_builder().length("/a", 8192).page("/a", 0, false).page("/a", 1, true).build();
//! let data = img.read_file(Path::new("/a")).unwrap();
//! assert!(data[..4096].iter().all(|b| *b == 0) && data[4096..].iter().all(|b| *b == 1));
//! // kill -9 keeps everything.
//! assert_eq!(fs.crash_image(CrashMode::ProcessKill).read_file(Path::new("/a")).unwrap(), vec![1; 8192]);
//! assert_eq!(fs.op_counts().get(OpKind::Write), 1);
//! ```

mod faulty_fs;
mod file_index;
mod model;
mod ops;
mod sweep;

pub use faulty_fs::{CrashImage, CrashMode, FaultyFileSystem};
pub use file_index::FileIndex;
pub use model::{DirOp, PAGE_SIZE, SECTOR_SIZE};
pub use ops::{Crashed, InjectedFault, OpCounting, OpCounts, OpKind, OpRecord};
pub use sweep::{CrashCase, CrashPoints, Sweep, SweepFailure, SweepReport};
