//! Archive storage named by a URL: [`archive_from_url`].

use aof_record::archive::ArchiveStorage;
use std::path::PathBuf;
use std::sync::Arc;
use thiserror::Error;

/// Why an archive URL names no usable archive.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ArchiveUrlError {
    /// The URL's scheme is not `file://` or `s3://` (nor a plain path).
    #[error("archive URL {url:?}: unknown scheme (use a path, file:///path or s3://bucket/prefix)")]
    UnknownScheme {
        /// The URL.
        url: String,
    },
    /// The URL lacks a part it needs (an `s3://` URL without a bucket, say).
    #[error("archive URL {url:?}: {problem}")]
    Invalid {
        /// The URL.
        url: String,
        /// What is missing or wrong.
        problem: &'static str,
    },
    /// The scheme's backend was not built in.
    #[error("archive URL {url:?}: built without the {feature} feature")]
    NotBuilt {
        /// The URL.
        url: String,
        /// The feature that adds the backend.
        feature: &'static str,
    },
    /// The archive directory cannot be used.
    #[error("archive directory {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The S3 configuration from the environment is incomplete or invalid.
    #[cfg(feature = "archive-s3")]
    #[error(transparent)]
    S3(#[from] aof_archive_s3::S3ConfigError),
}

/// The archive storage `url` names:
///
/// * a path, or `file:///path`: a directory archive (feature `archive-fs`),
///   created if missing;
/// * `s3://bucket/prefix`: S3-compatible storage (feature `archive-s3`),
///   with the endpoint, credentials and region from the standard `AWS_*`
///   environment variables (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`,
///   `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ALLOW_HTTP`).
///
/// ```
/// # #[cfg(feature = "archive-fs")] {
/// let dir = tempfile::tempdir().unwrap();
/// let url = format!("file://{}", dir.path().join("archive").display());
/// let archive = aof::archive_from_url(&url).unwrap();
/// assert!(dir.path().join("archive").is_dir());
/// # let _ = archive; }
/// assert!(aof::archive_from_url("ftp://host/x").is_err());
/// ```
pub fn archive_from_url(url: &str) -> Result<Arc<dyn ArchiveStorage>, ArchiveUrlError> {
    if let Some(rest) = url.strip_prefix("s3://") {
        return s3(url, rest);
    }
    let path = match url.strip_prefix("file://") {
        Some(p) => p,
        None if url.contains("://") => return Err(ArchiveUrlError::UnknownScheme { url: url.to_owned() }),
        None => url,
    };
    if path.is_empty() {
        return Err(ArchiveUrlError::Invalid {
            url: url.to_owned(),
            problem: "no path",
        });
    }
    directory(url, PathBuf::from(path))
}

#[cfg(feature = "archive-fs")]
fn directory(_url: &str, path: PathBuf) -> Result<Arc<dyn ArchiveStorage>, ArchiveUrlError> {
    aof_archive_fs::FilesystemArchiveStorage::new(&path)
        .map(|a| Arc::new(a) as Arc<dyn ArchiveStorage>)
        .map_err(|source| ArchiveUrlError::Io { path, source })
}

#[cfg(not(feature = "archive-fs"))]
fn directory(url: &str, _path: PathBuf) -> Result<Arc<dyn ArchiveStorage>, ArchiveUrlError> {
    Err(ArchiveUrlError::NotBuilt {
        url: url.to_owned(),
        feature: "archive-fs",
    })
}

#[cfg(feature = "archive-s3")]
fn s3(url: &str, rest: &str) -> Result<Arc<dyn ArchiveStorage>, ArchiveUrlError> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(ArchiveUrlError::Invalid {
            url: url.to_owned(),
            problem: "no bucket",
        });
    }
    let prefix = prefix.trim_matches('/').to_owned();
    let config = aof_archive_s3::S3Config::from_lookup(|name| match name {
        "AOF_ARCHIVE_BUCKET" => Some(bucket.to_owned()),
        "AOF_ARCHIVE_PREFIX" => Some(prefix.clone()),
        other => std::env::var(other).ok(),
    })?;
    Ok(Arc::new(aof_archive_s3::S3ArchiveStorage::new(config)?))
}

#[cfg(not(feature = "archive-s3"))]
fn s3(url: &str, _rest: &str) -> Result<Arc<dyn ArchiveStorage>, ArchiveUrlError> {
    Err(ArchiveUrlError::NotBuilt {
        url: url.to_owned(),
        feature: "archive-s3",
    })
}
