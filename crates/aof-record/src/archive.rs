//! Where sealed segments go: [`ArchiveStorage`], keyed by [`ArchiveKey`].
//!
//! Backends (filesystem, S3-compatible) implement the trait; the conformance
//! suite in [`crate::conformance::archive`] checks them, and
//! [`MemoryArchive`] passes it as the reference.

use async_trait::async_trait;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::fmt::{self, Debug};
use std::sync::{Mutex, PoisonError};
use thiserror::Error;

/// Longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 512;

/// A validated archive key: `/`-separated parts of `[A-Za-z0-9._-]`, none of
/// them empty, `.` or `..`, at most [`MAX_KEY_LEN`] bytes.
///
/// Such a key maps to the same object on every backend, and never escapes
/// the archive's root directory or bucket prefix.
///
/// ```
/// use aof_record::archive::ArchiveKey;
/// assert!(ArchiveKey::new("segments/00000000000000000042.seg.zst").is_ok());
/// assert!(ArchiveKey::new("../etc/passwd").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ArchiveKey(String);

impl ArchiveKey {
    /// Validates `key`.
    pub fn new(key: impl Into<String>) -> Result<Self, ArchiveError> {
        let key = key.into();
        let reason = if key.is_empty() {
            Some(KeyProblem::Empty)
        } else if key.len() > MAX_KEY_LEN {
            Some(KeyProblem::TooLong)
        } else if key
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
        {
            Some(KeyProblem::BadPart)
        } else if !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
        {
            Some(KeyProblem::BadCharacter)
        } else {
            None
        };
        match reason {
            Some(reason) => Err(ArchiveError::InvalidKey { key, reason }),
            None => Ok(Self(key)),
        }
    }

    /// The key as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key's `/`-separated parts.
    pub fn parts(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl Debug for ArchiveKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for ArchiveKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ArchiveKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// What is wrong with a would-be [`ArchiveKey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyProblem {
    /// The key is empty.
    Empty,
    /// The key is longer than [`MAX_KEY_LEN`].
    TooLong,
    /// A part is empty, `.` or `..`.
    BadPart,
    /// A character outside `[A-Za-z0-9._-/]`.
    BadCharacter,
}

impl fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "empty",
            Self::TooLong => "too long",
            Self::BadPart => "a part is empty, '.' or '..'",
            Self::BadCharacter => "a character outside [A-Za-z0-9._-/]",
        })
    }
}

/// Why an archive operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// No object has this key.
    #[error("archive object {key} not found")]
    NotFound {
        /// The key.
        key: ArchiveKey,
    },
    /// The key is not a valid [`ArchiveKey`].
    #[error("invalid archive key {key:?}: {reason}")]
    InvalidKey {
        /// The key given.
        key: String,
        /// What is wrong with it.
        reason: KeyProblem,
    },
    /// The archive refused the credentials.
    #[error("archive refused the credentials for {key}")]
    Unauthenticated {
        /// The key being accessed.
        key: ArchiveKey,
    },
    /// The credentials are valid but lack permission.
    #[error("archive denied access to {key}")]
    PermissionDenied {
        /// The key being accessed.
        key: ArchiveKey,
    },
    /// The archive could not be reached, or failed to answer.
    #[error("archive unavailable for {key}: {source}")]
    Unavailable {
        /// The key being accessed.
        key: ArchiveKey,
        /// The transport or server error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A local file operation failed.
    #[error("archive I/O on {key}: {source}")]
    Io {
        /// The key being accessed.
        key: ArchiveKey,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The storage behind the archive failed in another way.
    #[error("{backend} archive, {key}: {source}")]
    Backend {
        /// Which backend: "fs", "s3", ….
        backend: &'static str,
        /// The key being accessed.
        key: ArchiveKey,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

/// Shorthand for results of archive operations.
pub type ArchiveResult<T> = Result<T, ArchiveError>;

/// An object store for archived segments.
///
/// Objects are immutable blobs addressed by [`ArchiveKey`].
#[async_trait]
pub trait ArchiveStorage: Send + Sync + Debug + 'static {
    /// Stores `data` under `key`, replacing any object there; once this
    /// returns, the object is durable and `retrieve` returns exactly `data`.
    async fn store(&self, key: &ArchiveKey, data: Bytes) -> ArchiveResult<()>;

    /// The object under `key`; `NotFound` if there is none.
    async fn retrieve(&self, key: &ArchiveKey) -> ArchiveResult<Bytes>;

    /// Deletes the object under `key`; deleting a missing object succeeds.
    async fn delete(&self, key: &ArchiveKey) -> ArchiveResult<()>;

    /// Whether an object exists under `key`.
    async fn exists(&self, key: &ArchiveKey) -> ArchiveResult<bool>;
}

/// An in-memory [`ArchiveStorage`]: the reference implementation and a test double.
#[derive(Debug, Default)]
pub struct MemoryArchive {
    objects: Mutex<BTreeMap<ArchiveKey, Bytes>>,
}

impl MemoryArchive {
    /// An empty archive.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of objects held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.objects.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether no object is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl ArchiveStorage for MemoryArchive {
    async fn store(&self, key: &ArchiveKey, data: Bytes) -> ArchiveResult<()> {
        self.objects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.clone(), data);
        Ok(())
    }

    async fn retrieve(&self, key: &ArchiveKey) -> ArchiveResult<Bytes> {
        self.objects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
            .ok_or_else(|| ArchiveError::NotFound { key: key.clone() })
    }

    async fn delete(&self, key: &ArchiveKey) -> ArchiveResult<()> {
        self.objects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
        Ok(())
    }

    async fn exists(&self, key: &ArchiveKey) -> ArchiveResult<bool> {
        Ok(self
            .objects
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[tokio::test]
    async fn memory_archive_passes_the_conformance_suite() {
        crate::conformance::archive::run_all(&MemoryArchive::new()).await;
    }

    #[test]
    fn keys_that_could_escape_are_refused() {
        for bad in [
            "", "/abs", "a//b", "a/", "..", "a/../b", "./a", "a b", "a\\b", "é", "a\0b",
        ] {
            assert!(
                matches!(ArchiveKey::new(bad), Err(ArchiveError::InvalidKey { .. })),
                "{bad:?}"
            );
        }
        assert!(ArchiveKey::new("x".repeat(MAX_KEY_LEN + 1)).is_err());
        for good in ["a", "a/b", "segments/0001.seg.zst", "...", "a-b_c.d"] {
            assert_eq!(ArchiveKey::new(good).unwrap().as_str(), good);
        }
    }

    proptest! {
        #[test]
        fn valid_keys_never_contain_traversal(key in "[a-z./]{0,12}") {
            if let Ok(k) = ArchiveKey::new(key) {
                prop_assert!(k.parts().all(|p| !p.is_empty() && p != "." && p != ".."));
                prop_assert!(!k.as_str().starts_with('/'));
            }
        }
    }
}
