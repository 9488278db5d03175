//! Configuration of a log: [`AofConfig`], its builder, and [`FlushStrategy`].
//!
//! A configuration is valid by construction: [`AofConfigBuilder::build`] and
//! deserialisation both run [`AofConfig::validate`], and an invalid value is a
//! [`ConfigError`] naming the field.

use crate::record::RECORD_HEADER_SIZE;
use crate::segment::SEGMENT_HEADER_SIZE;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// When appended records are made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum FlushStrategy {
    /// Every append returns only once its bytes are on stable storage.
    /// Concurrent appenders share one fsync (group commit).
    Sync,
    /// Records are flushed only by an explicit flush and on close.
    Async,
    /// A flush runs once this many records are pending.
    Batched(u64),
    /// A flush runs once this many milliseconds have passed since the last.
    Periodic(u64),
    /// A flush runs when either limit is reached, whichever comes first.
    BatchedOrPeriodic {
        /// Pending records that trigger a flush.
        batch_size: u64,
        /// Milliseconds since the last flush that trigger a flush.
        interval_ms: u64,
    },
}

impl FlushStrategy {
    /// The batch size that triggers a flush, if the strategy has one.
    #[must_use]
    pub const fn batch_size(&self) -> Option<u64> {
        match *self {
            Self::Batched(n) | Self::BatchedOrPeriodic { batch_size: n, .. } => Some(n),
            _ => None,
        }
    }

    /// The interval in milliseconds that triggers a flush, if the strategy has one.
    #[must_use]
    pub const fn interval_ms(&self) -> Option<u64> {
        match *self {
            Self::Periodic(ms) | Self::BatchedOrPeriodic { interval_ms: ms, .. } => Some(ms),
            _ => None,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.batch_size() == Some(0) {
            return Err(ConfigError::OutOfRange {
                field: ConfigField::FlushStrategy,
                value: 0,
                min: 1,
                max: u64::MAX,
            });
        }
        if self.interval_ms() == Some(0) {
            return Err(ConfigError::OutOfRange {
                field: ConfigField::FlushStrategy,
                value: 0,
                min: 1,
                max: u64::MAX,
            });
        }
        Ok(())
    }
}

/// Which segment index backend the facade crate (`aof`) opens.
///
/// The engine itself takes any `SegmentIndex`; this field lets a
/// configuration file choose between the two persistent backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum IndexBackend {
    /// SQLite (WAL, one writer, a read pool): `index.sqlite` in the log directory.
    #[default]
    Sqlite,
    /// libmdbx: `index.mdbx` in the log directory.
    Mdbx,
}

/// Names a configuration field in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigField {
    /// [`AofConfig::segment_size`].
    SegmentSize,
    /// [`AofConfig::flush_strategy`].
    FlushStrategy,
    /// [`AofConfig::segment_cache_size`].
    SegmentCacheSize,
    /// [`AofConfig::enable_compression`].
    EnableCompression,
    /// [`AofConfig::enable_encryption`].
    EnableEncryption,
    /// [`AofConfig::compression_level`].
    CompressionLevel,
    /// [`AofConfig::compression_min_size`].
    CompressionMinSize,
    /// [`AofConfig::ttl_seconds`].
    TtlSeconds,
    /// [`AofConfig::pre_allocate_threshold`].
    PreAllocateThreshold,
    /// [`AofConfig::archive_compression_level`].
    ArchiveCompressionLevel,
    /// [`AofConfig::archive_threshold`].
    ArchiveThreshold,
    /// [`AofConfig::archive_backpressure_segments`].
    ArchiveBackpressureSegments,
    /// [`AofConfig::archive_backpressure_bytes`].
    ArchiveBackpressureBytes,
    /// [`AofConfig::max_record_size`].
    MaxRecordSize,
    /// [`AofConfig::index_path`].
    IndexPath,
}

impl ConfigField {
    /// The field's name as written in code and configuration files.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::SegmentSize => "segment_size",
            Self::FlushStrategy => "flush_strategy",
            Self::SegmentCacheSize => "segment_cache_size",
            Self::EnableCompression => "enable_compression",
            Self::EnableEncryption => "enable_encryption",
            Self::CompressionLevel => "compression_level",
            Self::CompressionMinSize => "compression_min_size",
            Self::TtlSeconds => "ttl_seconds",
            Self::PreAllocateThreshold => "pre_allocate_threshold",
            Self::ArchiveCompressionLevel => "archive_compression_level",
            Self::ArchiveThreshold => "archive_threshold",
            Self::ArchiveBackpressureSegments => "archive_backpressure_segments",
            Self::ArchiveBackpressureBytes => "archive_backpressure_bytes",
            Self::MaxRecordSize => "max_record_size",
            Self::IndexPath => "index_path",
        }
    }
}

impl fmt::Display for ConfigField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a configuration is invalid.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// An integer field is outside its allowed range.
    #[error("`{field}` = {value} is outside the allowed range {min}..={max}")]
    OutOfRange {
        /// The field.
        field: ConfigField,
        /// The value given.
        value: u64,
        /// Smallest allowed value.
        min: u64,
        /// Largest allowed value.
        max: u64,
    },
    /// A signed integer field is outside its allowed range.
    #[error("`{field}` = {value} is outside the allowed range {min}..={max}")]
    SignedOutOfRange {
        /// The field.
        field: ConfigField,
        /// The value given.
        value: i64,
        /// Smallest allowed value.
        min: i64,
        /// Largest allowed value.
        max: i64,
    },
    /// A fraction is not in `(0, 1]`.
    #[error("`{field}` = {value} must be a fraction in (0, 1]")]
    InvalidFraction {
        /// The field.
        field: ConfigField,
        /// The value given.
        value: f64,
    },
    /// The field asks for a feature this build does not provide.
    #[error("`{field}` asks for {feature}, which is not available in this version")]
    FeatureNotAvailable {
        /// The field.
        field: ConfigField,
        /// What is missing.
        feature: &'static str,
    },
    /// Two fields contradict each other.
    #[error("`{field}` = {value} must be {relation} `{other}` = {other_value}")]
    Conflict {
        /// The field found wrong.
        field: ConfigField,
        /// Its value.
        value: u64,
        /// How it must relate to the other field.
        relation: &'static str,
        /// The other field.
        other: ConfigField,
        /// The other field's value.
        other_value: u64,
    },
    /// A path field is empty.
    #[error("`{field}` is an empty path")]
    EmptyPath {
        /// The field.
        field: ConfigField,
    },
}

/// Smallest allowed segment size: 4 KiB.
pub const MIN_SEGMENT_SIZE: u64 = 4096;
/// Largest allowed segment size: 4 GiB − 1, so that offsets inside a segment fit in 32 bits.
pub const MAX_SEGMENT_SIZE: u64 = u32::MAX as u64;
/// Default segment size: 64 MiB.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 << 20;
/// Default largest payload: 16 MiB, or less when the segment is smaller.
pub const DEFAULT_MAX_RECORD_SIZE: u32 = 16 << 20;
/// Bytes of a segment that a payload can never use: the segment header and one record header.
pub const SEGMENT_OVERHEAD: u64 = (SEGMENT_HEADER_SIZE + RECORD_HEADER_SIZE) as u64;
/// The largest payload the format can hold (one record filling the largest
/// segment). Bytes already on disk are read with this limit, never with a
/// configuration's [`AofConfig::max_record_size`], which only bounds new
/// appends: a later open with a smaller limit must not reinterpret (or cut)
/// records written under a larger one.
pub const FORMAT_MAX_RECORD_SIZE: u32 = (MAX_SEGMENT_SIZE - SEGMENT_OVERHEAD) as u32;

/// The configuration of a log.
///
/// Build one with [`AofConfig::builder`]; [`AofConfig::default`] is the
/// embedded default. Fields are read through methods so that a value in hand
/// is always a validated one.
///
/// ```
/// use aof_record::{AofConfig, FlushStrategy};
///
/// let config = AofConfig::builder()
///     .segment_size(1 << 20)
///     .flush_strategy(FlushStrategy::Batched(100))
///     .build()
///     .unwrap();
/// assert_eq!(config.segment_size(), 1 << 20);
/// assert_eq!(config.max_record_size(), (1 << 20) - 96);
///
/// let err = AofConfig::builder().segment_size(100).build().unwrap_err();
/// assert!(err.to_string().contains("segment_size"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "AofConfigBuilder", into = "AofConfigBuilder")]
pub struct AofConfig {
    segment_size: u64,
    flush_strategy: FlushStrategy,
    segment_cache_size: usize,
    enable_compression: bool,
    enable_encryption: bool,
    compression_level: i32,
    compression_min_size: u32,
    ttl_seconds: Option<u64>,
    pre_allocate_threshold: f64,
    pre_allocate_enabled: bool,
    archive_enabled: bool,
    archive_compression_level: i32,
    archive_threshold: u64,
    archive_backpressure_segments: u64,
    archive_backpressure_bytes: u64,
    index_path: Option<PathBuf>,
    index_backend: IndexBackend,
    max_record_size: u32,
}

impl Default for AofConfig {
    fn default() -> Self {
        // The defaults are valid; `build` cannot fail on them.
        AofConfigBuilder::default()
            .build()
            .unwrap_or_else(|e| unreachable!("default configuration is invalid: {e}"))
    }
}

impl AofConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> AofConfigBuilder {
        AofConfigBuilder::default()
    }

    /// A builder starting from this configuration.
    pub fn to_builder(&self) -> AofConfigBuilder {
        self.clone().into()
    }

    /// Bytes of a segment file's data after which the log rolls to a new
    /// segment. A record never spans segments. Default 64 MiB.
    #[must_use]
    pub fn segment_size(&self) -> u64 {
        self.segment_size
    }

    /// When appended records become durable. Default [`FlushStrategy::Sync`]:
    /// an acknowledged record is a durable record unless the user opts out.
    #[must_use]
    pub fn flush_strategy(&self) -> FlushStrategy {
        self.flush_strategy
    }

    /// How many finalized segments the read cache keeps open. Default 16.
    #[must_use]
    pub fn segment_cache_size(&self) -> usize {
        self.segment_cache_size
    }

    /// Whether payloads are zstd-compressed per record (flag bit 0): a
    /// payload of at least [`AofConfig::compression_min_size`] bytes is
    /// stored compressed when that saves bytes. Reads always return the
    /// original bytes, whatever this says. Default false.
    #[must_use]
    pub fn enable_compression(&self) -> bool {
        self.enable_compression
    }

    /// Whether new payloads are encrypted (flag bit 1), with the current key
    /// of the key ring given at open (the engine's `AofOptions::keys`;
    /// required when this is set). Default false.
    #[must_use]
    pub fn enable_encryption(&self) -> bool {
        self.enable_encryption
    }

    /// zstd level of per-record compression, -7..=22. Default 3.
    #[must_use]
    pub fn compression_level(&self) -> i32 {
        self.compression_level
    }

    /// Smallest payload, in bytes, that per-record compression tries.
    /// Default 128.
    #[must_use]
    pub fn compression_min_size(&self) -> u32 {
        self.compression_min_size
    }

    /// Age after which finalized segments are deleted; `None` keeps them forever.
    #[must_use]
    pub fn ttl_seconds(&self) -> Option<u64> {
        self.ttl_seconds
    }

    /// Fraction of `segment_size` after which the next segment file is
    /// prepared in the background. Default 0.75.
    #[must_use]
    pub fn pre_allocate_threshold(&self) -> f64 {
        self.pre_allocate_threshold
    }

    /// Whether the next segment file is prepared ahead of rollover. Default true.
    #[must_use]
    pub fn pre_allocate_enabled(&self) -> bool {
        self.pre_allocate_enabled
    }

    /// Whether finalized segments are moved to the archive. Default false.
    #[must_use]
    pub fn archive_enabled(&self) -> bool {
        self.archive_enabled
    }

    /// zstd level for archived segments, -7..=22. Default 3.
    #[must_use]
    pub fn archive_compression_level(&self) -> i32 {
        self.archive_compression_level
    }

    /// Finalized segments kept locally before the oldest are archived. Default 4.
    #[must_use]
    pub fn archive_threshold(&self) -> u64 {
        self.archive_threshold
    }

    /// Finalized, not yet archived segments at which appends are held back
    /// until the archiver catches up. Default 64.
    #[must_use]
    pub fn archive_backpressure_segments(&self) -> u64 {
        self.archive_backpressure_segments
    }

    /// Bytes of finalized, not yet archived segments at which appends are
    /// held back until the archiver catches up. Default 4 GiB.
    #[must_use]
    pub fn archive_backpressure_bytes(&self) -> u64 {
        self.archive_backpressure_bytes
    }

    /// Where the segment index lives; `None` puts it inside the log directory.
    #[must_use]
    pub fn index_path(&self) -> Option<&Path> {
        self.index_path.as_deref()
    }

    /// Which index backend the facade opens. Default [`IndexBackend::Sqlite`].
    #[must_use]
    pub fn index_backend(&self) -> IndexBackend {
        self.index_backend
    }

    /// Largest payload in bytes. Default 16 MiB, capped so one record fits a segment.
    #[must_use]
    pub fn max_record_size(&self) -> u32 {
        self.max_record_size
    }

    /// Checks every field and every relation between fields.
    pub fn validate(&self) -> Result<(), ConfigError> {
        range(
            ConfigField::SegmentSize,
            self.segment_size,
            MIN_SEGMENT_SIZE,
            MAX_SEGMENT_SIZE,
        )?;
        self.flush_strategy.validate()?;
        range(
            ConfigField::SegmentCacheSize,
            self.segment_cache_size as u64,
            1,
            1 << 20,
        )?;
        let level = i64::from(self.compression_level);
        if !(-7..=22).contains(&level) {
            return Err(ConfigError::SignedOutOfRange {
                field: ConfigField::CompressionLevel,
                value: level,
                min: -7,
                max: 22,
            });
        }
        if let Some(ttl) = self.ttl_seconds {
            // Up to ~100 years; beyond that use `None`.
            range(ConfigField::TtlSeconds, ttl, 1, 100 * 365 * 86_400)?;
        }
        let t = self.pre_allocate_threshold;
        if !(t > 0.0 && t <= 1.0) {
            return Err(ConfigError::InvalidFraction {
                field: ConfigField::PreAllocateThreshold,
                value: t,
            });
        }
        let level = i64::from(self.archive_compression_level);
        if !(-7..=22).contains(&level) {
            return Err(ConfigError::SignedOutOfRange {
                field: ConfigField::ArchiveCompressionLevel,
                value: level,
                min: -7,
                max: 22,
            });
        }
        range(
            ConfigField::ArchiveBackpressureSegments,
            self.archive_backpressure_segments,
            1,
            u64::MAX,
        )?;
        range(
            ConfigField::ArchiveBackpressureBytes,
            self.archive_backpressure_bytes,
            self.segment_size,
            u64::MAX,
        )
        .map_err(|_| ConfigError::Conflict {
            field: ConfigField::ArchiveBackpressureBytes,
            value: self.archive_backpressure_bytes,
            relation: "at least",
            other: ConfigField::SegmentSize,
            other_value: self.segment_size,
        })?;
        if self.archive_threshold >= self.archive_backpressure_segments {
            return Err(ConfigError::Conflict {
                field: ConfigField::ArchiveThreshold,
                value: self.archive_threshold,
                relation: "less than",
                other: ConfigField::ArchiveBackpressureSegments,
                other_value: self.archive_backpressure_segments,
            });
        }
        if self.index_path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            return Err(ConfigError::EmptyPath {
                field: ConfigField::IndexPath,
            });
        }
        let max_payload = self.segment_size - SEGMENT_OVERHEAD;
        if u64::from(self.max_record_size) > max_payload {
            return Err(ConfigError::Conflict {
                field: ConfigField::MaxRecordSize,
                value: u64::from(self.max_record_size),
                relation: "at most (this minus 96 bytes of headers)",
                other: ConfigField::SegmentSize,
                other_value: self.segment_size,
            });
        }
        Ok(())
    }
}

fn range(field: ConfigField, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::OutOfRange {
            field,
            value,
            min,
            max,
        })
    }
}

/// Builds a validated [`AofConfig`]. Every field left unset keeps its default.
///
/// This is also the serialised form of a configuration: missing fields take
/// their defaults, and deserialising validates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[must_use]
pub struct AofConfigBuilder {
    segment_size: u64,
    flush_strategy: FlushStrategy,
    segment_cache_size: usize,
    enable_compression: bool,
    enable_encryption: bool,
    compression_level: i32,
    compression_min_size: u32,
    ttl_seconds: Option<u64>,
    pre_allocate_threshold: f64,
    pre_allocate_enabled: bool,
    archive_enabled: bool,
    archive_compression_level: i32,
    archive_threshold: u64,
    archive_backpressure_segments: u64,
    archive_backpressure_bytes: u64,
    index_path: Option<PathBuf>,
    index_backend: IndexBackend,
    /// `None` picks the default, capped to what the segment size allows.
    max_record_size: Option<u32>,
}

impl Default for AofConfigBuilder {
    fn default() -> Self {
        Self {
            segment_size: DEFAULT_SEGMENT_SIZE,
            flush_strategy: FlushStrategy::Sync,
            segment_cache_size: 16,
            enable_compression: false,
            enable_encryption: false,
            compression_level: 3,
            compression_min_size: 128,
            ttl_seconds: None,
            pre_allocate_threshold: 0.75,
            pre_allocate_enabled: true,
            archive_enabled: false,
            archive_compression_level: 3,
            archive_threshold: 4,
            archive_backpressure_segments: 64,
            archive_backpressure_bytes: 4 << 30,
            index_path: None,
            index_backend: IndexBackend::Sqlite,
            max_record_size: None,
        }
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty),* $(,)?) => {$(
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.$name = value;
            self
        }
    )*};
}

impl AofConfigBuilder {
    setters! {
        /// Sets [`AofConfig::segment_size`].
        segment_size: u64,
        /// Sets [`AofConfig::flush_strategy`].
        flush_strategy: FlushStrategy,
        /// Sets [`AofConfig::segment_cache_size`].
        segment_cache_size: usize,
        /// Sets [`AofConfig::enable_compression`].
        enable_compression: bool,
        /// Sets [`AofConfig::enable_encryption`].
        enable_encryption: bool,
        /// Sets [`AofConfig::compression_level`].
        compression_level: i32,
        /// Sets [`AofConfig::compression_min_size`].
        compression_min_size: u32,
        /// Sets [`AofConfig::ttl_seconds`].
        ttl_seconds: Option<u64>,
        /// Sets [`AofConfig::pre_allocate_threshold`].
        pre_allocate_threshold: f64,
        /// Sets [`AofConfig::pre_allocate_enabled`].
        pre_allocate_enabled: bool,
        /// Sets [`AofConfig::archive_enabled`].
        archive_enabled: bool,
        /// Sets [`AofConfig::archive_compression_level`].
        archive_compression_level: i32,
        /// Sets [`AofConfig::archive_threshold`].
        archive_threshold: u64,
        /// Sets [`AofConfig::archive_backpressure_segments`].
        archive_backpressure_segments: u64,
        /// Sets [`AofConfig::archive_backpressure_bytes`].
        archive_backpressure_bytes: u64,
        /// Sets [`AofConfig::index_backend`].
        index_backend: IndexBackend,
    }

    /// Sets [`AofConfig::index_path`].
    pub fn index_path(mut self, value: impl Into<PathBuf>) -> Self {
        self.index_path = Some(value.into());
        self
    }

    /// Sets [`AofConfig::max_record_size`].
    pub fn max_record_size(mut self, value: u32) -> Self {
        self.max_record_size = Some(value);
        self
    }

    /// Validates and returns the configuration.
    pub fn build(self) -> Result<AofConfig, ConfigError> {
        let cap = self.segment_size.saturating_sub(SEGMENT_OVERHEAD);
        let default_max =
            u32::try_from(cap.min(u64::from(DEFAULT_MAX_RECORD_SIZE))).unwrap_or(DEFAULT_MAX_RECORD_SIZE);
        let config = AofConfig {
            segment_size: self.segment_size,
            flush_strategy: self.flush_strategy,
            segment_cache_size: self.segment_cache_size,
            enable_compression: self.enable_compression,
            enable_encryption: self.enable_encryption,
            compression_level: self.compression_level,
            compression_min_size: self.compression_min_size,
            ttl_seconds: self.ttl_seconds,
            pre_allocate_threshold: self.pre_allocate_threshold,
            pre_allocate_enabled: self.pre_allocate_enabled,
            archive_enabled: self.archive_enabled,
            archive_compression_level: self.archive_compression_level,
            archive_threshold: self.archive_threshold,
            archive_backpressure_segments: self.archive_backpressure_segments,
            archive_backpressure_bytes: self.archive_backpressure_bytes,
            index_path: self.index_path,
            index_backend: self.index_backend,
            max_record_size: self.max_record_size.unwrap_or(default_max),
        };
        config.validate()?;
        Ok(config)
    }
}

impl TryFrom<AofConfigBuilder> for AofConfig {
    type Error = ConfigError;
    fn try_from(builder: AofConfigBuilder) -> Result<Self, Self::Error> {
        builder.build()
    }
}

impl From<AofConfig> for AofConfigBuilder {
    fn from(c: AofConfig) -> Self {
        Self {
            segment_size: c.segment_size,
            flush_strategy: c.flush_strategy,
            segment_cache_size: c.segment_cache_size,
            enable_compression: c.enable_compression,
            enable_encryption: c.enable_encryption,
            compression_level: c.compression_level,
            compression_min_size: c.compression_min_size,
            ttl_seconds: c.ttl_seconds,
            pre_allocate_threshold: c.pre_allocate_threshold,
            pre_allocate_enabled: c.pre_allocate_enabled,
            archive_enabled: c.archive_enabled,
            archive_compression_level: c.archive_compression_level,
            archive_threshold: c.archive_threshold,
            archive_backpressure_segments: c.archive_backpressure_segments,
            archive_backpressure_bytes: c.archive_backpressure_bytes,
            index_path: c.index_path,
            index_backend: c.index_backend,
            max_record_size: Some(c.max_record_size),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn defaults_are_valid() {
        let c = AofConfig::default();
        assert_eq!(c.segment_size(), DEFAULT_SEGMENT_SIZE);
        assert_eq!(c.flush_strategy(), FlushStrategy::Sync);
        assert_eq!(c.max_record_size(), DEFAULT_MAX_RECORD_SIZE);
        c.validate().unwrap();
    }

    #[test]
    fn each_invalid_field_is_named() {
        let cases: Vec<(AofConfigBuilder, ConfigField)> = vec![
            (AofConfig::builder().segment_size(4095), ConfigField::SegmentSize),
            (
                AofConfig::builder().segment_size(1 << 32),
                ConfigField::SegmentSize,
            ),
            (
                AofConfig::builder().flush_strategy(FlushStrategy::Batched(0)),
                ConfigField::FlushStrategy,
            ),
            (
                AofConfig::builder().flush_strategy(FlushStrategy::Periodic(0)),
                ConfigField::FlushStrategy,
            ),
            (
                AofConfig::builder().flush_strategy(FlushStrategy::BatchedOrPeriodic {
                    batch_size: 1,
                    interval_ms: 0,
                }),
                ConfigField::FlushStrategy,
            ),
            (
                AofConfig::builder().segment_cache_size(0),
                ConfigField::SegmentCacheSize,
            ),
            (
                AofConfig::builder().compression_level(23),
                ConfigField::CompressionLevel,
            ),
            (AofConfig::builder().ttl_seconds(Some(0)), ConfigField::TtlSeconds),
            (
                AofConfig::builder().pre_allocate_threshold(0.0),
                ConfigField::PreAllocateThreshold,
            ),
            (
                AofConfig::builder().pre_allocate_threshold(f64::NAN),
                ConfigField::PreAllocateThreshold,
            ),
            (
                AofConfig::builder().pre_allocate_threshold(1.5),
                ConfigField::PreAllocateThreshold,
            ),
            (
                AofConfig::builder().archive_compression_level(23),
                ConfigField::ArchiveCompressionLevel,
            ),
            (
                AofConfig::builder().archive_backpressure_segments(0),
                ConfigField::ArchiveBackpressureSegments,
            ),
            (
                AofConfig::builder().archive_backpressure_bytes(1),
                ConfigField::ArchiveBackpressureBytes,
            ),
            (
                AofConfig::builder().archive_threshold(64),
                ConfigField::ArchiveThreshold,
            ),
            (AofConfig::builder().index_path(""), ConfigField::IndexPath),
            (
                AofConfig::builder().segment_size(4096).max_record_size(4001),
                ConfigField::MaxRecordSize,
            ),
        ];
        for (builder, field) in cases {
            let err = builder.clone().build().unwrap_err();
            let named = match &err {
                ConfigError::OutOfRange { field, .. }
                | ConfigError::SignedOutOfRange { field, .. }
                | ConfigError::InvalidFraction { field, .. }
                | ConfigError::FeatureNotAvailable { field, .. }
                | ConfigError::Conflict { field, .. }
                | ConfigError::EmptyPath { field } => *field,
            };
            assert_eq!(named, field, "{builder:?} gave {err}");
            assert!(err.to_string().contains(field.name()), "{err}");
        }
    }

    #[test]
    fn serde_round_trips_and_validates() {
        let c = AofConfig::builder()
            .segment_size(1 << 20)
            .ttl_seconds(Some(3600))
            .flush_strategy(FlushStrategy::BatchedOrPeriodic {
                batch_size: 10,
                interval_ms: 5,
            })
            .index_path("/var/lib/aof/index")
            .build()
            .unwrap();
        let json = serde_json::to_string(&c).unwrap();
        let back: AofConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
        let partial: AofConfig = serde_json::from_str(r#"{"segment_size": 8192}"#).unwrap();
        assert_eq!(partial.segment_size(), 8192);
        assert_eq!(partial.max_record_size(), 8192 - 96);
        let err = serde_json::from_str::<AofConfig>(r#"{"segment_size": 1}"#).unwrap_err();
        assert!(err.to_string().contains("segment_size"), "{err}");
        assert!(serde_json::from_str::<AofConfig>(r#"{"segmnt_size": 8192}"#).is_err());
    }

    proptest! {
        #[test]
        fn build_accepts_exactly_the_valid_segment_and_record_sizes(seg in 0u64..(1 << 33), rec in proptest::option::of(any::<u32>())) {
            let mut b = AofConfig::builder().segment_size(seg).archive_backpressure_bytes(u64::MAX);
            if let Some(r) = rec {
                b = b.max_record_size(r);
            }
            let valid_seg = (MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&seg);
            let valid_rec = rec.is_none_or(|r| u64::from(r) + SEGMENT_OVERHEAD <= seg);
            match b.build() {
                Ok(c) => {
                    prop_assert!(valid_seg && valid_rec);
                    prop_assert!(u64::from(c.max_record_size()) + SEGMENT_OVERHEAD <= c.segment_size());
                    c.validate().unwrap();
                }
                Err(_) => prop_assert!(!(valid_seg && valid_rec)),
            }
        }

        #[test]
        fn strategy_validation(batch in 0u64..4, interval in 0u64..4) {
            let s = FlushStrategy::BatchedOrPeriodic { batch_size: batch, interval_ms: interval };
            let ok = AofConfig::builder().flush_strategy(s).build().is_ok();
            prop_assert_eq!(ok, batch > 0 && interval > 0);
        }
    }
}
