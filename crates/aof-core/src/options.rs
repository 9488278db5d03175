//! How a log is opened beyond its configuration: [`AofOptions`] (file
//! system, clocks, archive storage), and the
//! wall clock of record timestamps, [`TimeSource`].

use crate::codec::KeyRing;
use crate::fs::{FileSystem, LocalFileSystem};
use aof_flush::{Clock, SystemClock};
use aof_record::AofConfig;
use aof_record::archive::ArchiveStorage;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Wall-clock time for record timestamps, in microseconds since the Unix epoch.
///
/// The engine never lets timestamps decrease, whatever this returns.
pub trait TimeSource: Send + Sync + fmt::Debug + 'static {
    /// Now, in µs since the Unix epoch.
    fn now_us(&self) -> u64;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemTime;

impl TimeSource for SystemTime {
    fn now_us(&self) -> u64 {
        // On every append: plain u64 arithmetic rather than u128 `as_micros`.
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| {
                d.as_secs()
                    .saturating_mul(1_000_000)
                    .saturating_add(u64::from(d.subsec_micros()))
            })
    }
}

/// How to open a log, beyond its [`AofConfig`].
#[derive(Debug, Clone)]
pub struct AofOptions {
    /// The configuration.
    pub config: AofConfig,
    /// The file system to write through.
    pub fs: Arc<dyn FileSystem>,
    /// The monotonic clock of the flush policy and metrics.
    pub clock: Arc<dyn Clock>,
    /// The wall clock of record timestamps.
    pub time: Arc<dyn TimeSource>,
    /// Rebuild the index from the segment files when it is empty but files
    /// exist, or when it disagrees with them.
    pub rebuild_index: bool,
    /// Most readers and tails open at once; one more is refused with
    /// [`aof_record::AofError::ReaderLimitExceeded`]. Default 1024.
    pub max_readers: usize,
    /// How often a group-commit round may persist the recovery point in the
    /// manifest (one 64-byte write and fdatasync): the most it lags the
    /// durable watermark. Default 1 s. `None`: only when a segment is
    /// sealed, after recovery and on close. Recovery keeps every intact
    /// record either way; the interval decides how much of the durable tail
    /// is covered against media damage: a damaged record past the recovery
    /// point is taken for a torn unsynced write and cut with what follows,
    /// where one before it is reported as corruption.
    pub checkpoint_interval: Option<Duration>,
    /// The keys of record encryption: required when the configuration
    /// enables encryption (new records use the current key), and needed to
    /// read encrypted records (each names its key). Default none.
    pub keys: Option<Arc<KeyRing>>,
    /// Where finalized segments are archived when the configuration enables
    /// archival ([`AofConfig::archive_enabled`]). Enabled without one, the
    /// open fails with [`aof_record::AofError::ArchiveNotConfigured`];
    /// given but not enabled, archived segments stay readable and nothing
    /// new is archived.
    pub archive: Option<Arc<dyn ArchiveStorage>>,
    /// Most bytes of fetched archived data kept in the log's
    /// `archive-cache/` directory; the least recently used segments go
    /// first (never one a reader is positioned in). Default 256 MiB.
    pub archive_cache_bytes: u64,
    /// How long `append` waits for the archiver to catch up, under
    /// backpressure, before it fails with
    /// [`aof_record::AofError::Backpressure`]. Default 0: fail at once.
    pub backpressure_wait: Duration,
    /// First wait before retrying a failed archive operation; doubled on
    /// each failure up to 64 times this. Default 200 ms.
    pub archive_retry_backoff: Duration,
}

impl AofOptions {
    /// Options for `config` on the local file system and the system clocks.
    #[must_use]
    pub fn new(config: AofConfig) -> Self {
        Self {
            config,
            fs: LocalFileSystem::shared(),
            clock: Arc::new(SystemClock),
            time: Arc::new(SystemTime),
            rebuild_index: false,
            max_readers: 1024,
            checkpoint_interval: Some(Duration::from_secs(1)),
            keys: None,
            archive: None,
            archive_cache_bytes: 256 << 20,
            backpressure_wait: Duration::ZERO,
            archive_retry_backoff: Duration::from_millis(200),
        }
    }
}
