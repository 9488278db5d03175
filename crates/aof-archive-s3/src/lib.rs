//! An S3-compatible [`ArchiveStorage`](aof_record::archive::ArchiveStorage)
//! (AWS S3, MinIO, …) over `object_store`'s S3 client.
//!
//! See [`S3ArchiveStorage`] for what each operation sends, and [`S3Config`]
//! for the settings (and [`S3Config::from_env`] for AWS's variables).
//!
//! # Features chosen
//!
//! `object_store` is built with `aws-base`, `reqwest` and `ring` instead of
//! its default `aws` feature, which pulls in aws-lc-sys (a C and assembly
//! build of minutes on two cores). TLS is rustls with ring through
//! `reqwest/rustls-no-provider`; ring is installed as rustls's process-wide
//! default provider when none is set. No OpenSSL, no aws-lc.
//!
//! # Example
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use aof_archive_s3::{S3ArchiveStorage, S3Config};
//! use aof_record::archive::{ArchiveKey, ArchiveStorage, ArchiveStorageExt};
//!
//! let mut config = S3Config::new(
//!     Some("http://127.0.0.1:9000".into()),
//!     "access-key",
//!     "secret-key",
//!     "us-east-1",
//!     "aof-archive",
//! );
//! config.prefix = Some("log-a".into());
//! let archive = S3ArchiveStorage::new(config)?;
//! let key = ArchiveKey::new("segments/00000000000000000000.seg.zst")?;
//! archive.store_bytes(&key, bytes::Bytes::from_static(b"...")).await?;
//! let head = archive.head(&key).await?;
//! assert_eq!(head.size, 3);
//! # Ok(())
//! # }
//! ```

mod config;
mod errors;
mod storage;

pub use config::{S3Config, S3ConfigError};
pub use storage::{CHECKSUM_METADATA, S3ArchiveStorage};
