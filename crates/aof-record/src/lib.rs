//! The shared vocabulary of the aof log: the on-disk record and segment
//! formats, configuration, segment metadata, errors, and the traits that the
//! index and archive backends implement.
//!
//! Backends depend on this crate only, never on the engine (`aof-core`), so
//! each can be built, tested and used alone.
//!
//! | module | what it holds |
//! |---|---|
//! | [`record`] | the 32-byte record header; encode into a caller's buffer, decode with full validation |
//! | [`segment`] | the 64-byte segment file header and segment file names |
//! | [`checksum`] | CRC-64/NVME (hardware-accelerated) and the 32-bit fold |
//! | [`config`] | [`AofConfig`] and its builder, [`FlushStrategy`] |
//! | [`entry`] | [`SegmentEntry`], [`SegmentStatus`] and the segment lifecycle |
//! | [`index`] | the [`SegmentIndex`] trait and the in-memory reference index |
//! | [`archive`] | the [`ArchiveStorage`] trait and its [`ArchiveStorageExt`] conveniences, [`ArchiveKey`], [`ObjectSource`], the in-memory archive |
//! | [`error`] | [`AofError`] |
//! | `conformance` | (feature `conformance`) the suites every backend runs |
//!
//! # Example
//!
//! Encode a record into a reused buffer, then decode and verify it:
//!
//! ```
//! use aof_record::record::{append_record, decode_record, RecordFlags};
//!
//! let mut buf = Vec::with_capacity(4096);
//! for (id, payload) in [b"first".as_slice(), b"", b"third"].into_iter().enumerate() {
//!     append_record(&mut buf, id as u64, 1_700_000_000_000_000, RecordFlags::NONE, payload).unwrap();
//! }
//! let mut at = 0;
//! let mut ids = Vec::new();
//! while at < buf.len() {
//!     let rec = decode_record(&buf[at..], 1 << 20).unwrap();
//!     ids.push(rec.header.id);
//!     at += rec.encoded_len();
//! }
//! assert_eq!(ids, [0, 1, 2]);
//!
//! // A flipped bit is caught.
//! buf[33] ^= 1;
//! assert!(decode_record(&buf, 1 << 20).is_err());
//! ```

pub mod archive;
pub mod checksum;
pub mod config;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod entry;
pub mod error;
pub mod index;
pub mod manifest;
pub mod payload;
pub mod record;
pub mod segment;

pub use archive::{
    ArchiveError, ArchiveKey, ArchiveResult, ArchiveStorage, ArchiveStorageExt, ListedObject, MemoryArchive,
    ObjectMeta, ObjectSource, ObjectStream,
};
pub use config::{
    AofConfig, AofConfigBuilder, ConfigError, ConfigField, FORMAT_MAX_RECORD_SIZE, FlushStrategy,
    IndexBackend,
};
pub use entry::{SegmentEntry, SegmentStatus, TransitionError};
pub use error::{AofError, AofResult};
pub use index::{IndexError, MemorySegmentIndex, SegmentIndex, SegmentIndexExt};
pub use manifest::{InvalidLogId, LogId, ManifestError, ManifestSlot};
pub use record::{RECORD_HEADER_SIZE, RecordError, RecordFlags, RecordHeader};
pub use segment::{
    FooterError, SEGMENT_FOOTER_SIZE, SEGMENT_HEADER_SIZE, SegmentFooter, SegmentHeader, SegmentHeaderError,
};
