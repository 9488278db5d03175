//! Where sealed segments go: [`ArchiveStorage`], keyed by [`ArchiveKey`].
//!
//! Backends (filesystem, S3-compatible) implement the six required methods;
//! conveniences live in [`ArchiveStorageExt`], so no backend can get them
//! subtly wrong. The conformance suite in `conformance::archive` (feature
//! `conformance`) checks every backend, and [`MemoryArchive`] passes it as
//! the reference.
//!
//! Objects are immutable: a key, once stored, holds the same bytes until it
//! is deleted. Storing the identical bytes again is a no-op (so a retried
//! upload whose first acknowledgement was lost succeeds); storing different
//! bytes is refused with [`ArchiveError::AlreadyExists`].
//!
//! A segment is 64–256 MiB, so [`ObjectSource`] hands a backend a reader of
//! known length rather than one buffer, and [`ArchiveStorage::read`] returns
//! a stream. Every object is identified by its size and CRC-64/NVME
//! ([`ObjectMeta`]); [`SourceReader`] checks a source against both while a
//! backend copies it, so a file that changed under an upload is refused
//! rather than archived.

use crate::checksum::{Crc64, crc64_nvme};
use async_trait::async_trait;
use bytes::Bytes;
use futures_core::Stream;
use std::collections::BTreeMap;
use std::fmt::{self, Debug};
use std::io::Read;
use std::ops::Range;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};
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
    /// A different object is already stored under this key; it was kept.
    #[error("a different archive object already exists under {key}")]
    AlreadyExists {
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
    /// Bytes did not match their CRC-64/NVME: a source that changed while
    /// it was stored, or an upload the server refused as damaged.
    #[error("archive object {key}: CRC-64/NVME {actual:#018x}, expected {expected:#018x}")]
    ChecksumMismatch {
        /// The key.
        key: ArchiveKey,
        /// The checksum declared or recorded (0, like `actual`, when a
        /// server refused the bytes without saying more).
        expected: u64,
        /// The checksum of the bytes seen.
        actual: u64,
    },
    /// An [`ObjectSource`] held more or fewer bytes than it declared.
    #[error("archive object {key}: the source holds {actual} bytes, not the {expected} it declared")]
    SourceLength {
        /// The key.
        key: ArchiveKey,
        /// Bytes declared.
        expected: u64,
        /// Bytes found (`expected + 1` means "at least one more").
        actual: u64,
    },
    /// A read asked for bytes outside the object.
    #[error("archive object {key}: range {start}..{end} is outside its {size} bytes")]
    InvalidRange {
        /// The key.
        key: ArchiveKey,
        /// First byte asked for.
        start: u64,
        /// One past the last byte asked for.
        end: u64,
        /// The object's size (0 when a backend could not learn it).
        size: u64,
    },
    /// The archive refused the credentials.
    #[error("archive refused the credentials for {key}")]
    AuthFailed {
        /// The key being accessed.
        key: ArchiveKey,
    },
    /// The credentials are valid but lack permission.
    #[error("archive denied access to {key}")]
    PermissionDenied {
        /// The key being accessed.
        key: ArchiveKey,
    },
    /// The archive did not answer within the configured timeout.
    #[error("archive timed out on {key}: {source}")]
    TimedOut {
        /// The key being accessed.
        key: ArchiveKey,
        /// The transport's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The archive could not be reached, or failed to answer (after retries).
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

impl ArchiveError {
    /// The key the failed operation was about (for `InvalidKey`: none).
    #[must_use]
    pub fn key(&self) -> Option<&ArchiveKey> {
        match self {
            Self::InvalidKey { .. } => None,
            Self::NotFound { key }
            | Self::AlreadyExists { key }
            | Self::ChecksumMismatch { key, .. }
            | Self::SourceLength { key, .. }
            | Self::InvalidRange { key, .. }
            | Self::AuthFailed { key }
            | Self::PermissionDenied { key }
            | Self::TimedOut { key, .. }
            | Self::Unavailable { key, .. }
            | Self::Io { key, .. }
            | Self::Backend { key, .. } => Some(key),
        }
    }
}

/// Shorthand for results of archive operations.
pub type ArchiveResult<T> = Result<T, ArchiveError>;

/// What identifies a stored object: its size and the CRC-64/NVME of its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObjectMeta {
    /// Bytes in the object.
    pub size: u64,
    /// CRC-64/NVME of the object's bytes.
    pub checksum: u64,
}

/// One object found by [`ArchiveStorage::list`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListedObject {
    /// Its key.
    pub key: ArchiveKey,
    /// Bytes in the object.
    pub size: u64,
}

/// An object's bytes in order, as [`ArchiveStorage::read`] returns them.
pub type ObjectStream = Pin<Box<dyn Stream<Item = ArchiveResult<Bytes>> + Send>>;

/// The bytes to store: a reader of known length, optionally with the
/// CRC-64/NVME its bytes must have.
///
/// ```
/// use aof_record::archive::ObjectSource;
/// let src = ObjectSource::from_bytes(bytes::Bytes::from_static(b"abc"));
/// assert_eq!(src.len(), 3);
/// assert_eq!(src.expected_checksum(), Some(aof_record::checksum::crc64_nvme(b"abc")));
/// ```
pub struct ObjectSource {
    reader: Box<dyn Read + Send>,
    len: u64,
    checksum: Option<u64>,
}

impl ObjectSource {
    /// Bytes already in memory; their checksum is computed here.
    #[must_use]
    pub fn from_bytes(bytes: Bytes) -> Self {
        let checksum = crc64_nvme(&bytes);
        Self {
            len: bytes.len() as u64,
            reader: Box::new(std::io::Cursor::new(bytes)),
            checksum: Some(checksum),
        }
    }

    /// A file, read from its current position; its length is the file's
    /// size less that position.
    pub fn from_file(mut file: std::fs::File) -> std::io::Result<Self> {
        use std::io::Seek;
        let size = file.metadata()?.len();
        let at = file.stream_position()?;
        Ok(Self::from_reader(file, size.saturating_sub(at)))
    }

    /// Any reader that yields exactly `len` bytes.
    #[must_use]
    pub fn from_reader(reader: impl Read + Send + 'static, len: u64) -> Self {
        Self {
            reader: Box::new(reader),
            len,
            checksum: None,
        }
    }

    /// Declares the CRC-64/NVME of the bytes; the store is refused with
    /// [`ArchiveError::ChecksumMismatch`] if they do not have it.
    #[must_use]
    pub fn with_checksum(mut self, checksum: u64) -> Self {
        self.checksum = Some(checksum);
        self
    }

    /// Bytes the source declares.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the source declares no bytes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The checksum declared, if any.
    #[must_use]
    pub fn expected_checksum(&self) -> Option<u64> {
        self.checksum
    }

    /// A reader that checks the source's length and checksum as a backend
    /// copies it for `key`.
    #[must_use]
    pub fn into_checked(self, key: &ArchiveKey) -> SourceReader {
        SourceReader {
            key: key.clone(),
            reader: self.reader,
            len: self.len,
            expected: self.checksum,
            read: 0,
            crc: Crc64::new(),
        }
    }
}

impl Debug for ObjectSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectSource")
            .field("len", &self.len)
            .field("checksum", &self.checksum)
            .finish_non_exhaustive()
    }
}

/// Reads an [`ObjectSource`] for a backend, in chunks, checking as it goes.
///
/// The last chunk is handed out only after the source has proven to end at
/// its declared length with its declared checksum, so a backend that stops at
/// the first error never completes an object from bad bytes.
pub struct SourceReader {
    key: ArchiveKey,
    reader: Box<dyn Read + Send>,
    len: u64,
    expected: Option<u64>,
    read: u64,
    crc: Crc64,
}

impl SourceReader {
    /// Bytes the source declares.
    #[must_use]
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the source declares no bytes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes not read yet.
    #[must_use]
    pub fn remaining(&self) -> u64 {
        self.len - self.read
    }

    /// The next chunk: `min(max, remaining)` bytes, or `None` at the end.
    /// Blocking (it reads a file): call it from blocking context.
    pub fn next_chunk(&mut self, max: usize) -> ArchiveResult<Option<Bytes>> {
        let want = usize::try_from(self.remaining())
            .unwrap_or(usize::MAX)
            .min(max.max(1));
        if want == 0 {
            if self.len == 0 {
                self.verify_end()?;
            }
            return Ok(None);
        }
        let mut buf = vec![0u8; want];
        let mut filled = 0;
        while filled < want {
            match self.reader.read(&mut buf[filled..]) {
                Ok(0) => {
                    return Err(ArchiveError::SourceLength {
                        key: self.key.clone(),
                        expected: self.len,
                        actual: self.read + filled as u64,
                    });
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(ArchiveError::Io {
                        key: self.key.clone(),
                        source,
                    });
                }
            }
        }
        self.crc.update(&buf);
        self.read += want as u64;
        if self.read == self.len {
            self.verify_end()?;
        }
        Ok(Some(Bytes::from(buf)))
    }

    /// Checks that nothing follows the declared bytes and that the checksum holds.
    fn verify_end(&mut self) -> ArchiveResult<()> {
        let mut one = [0u8; 1];
        loop {
            match self.reader.read(&mut one) {
                Ok(0) => break,
                Ok(_) => {
                    return Err(ArchiveError::SourceLength {
                        key: self.key.clone(),
                        expected: self.len,
                        actual: self.len + 1,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(ArchiveError::Io {
                        key: self.key.clone(),
                        source,
                    });
                }
            }
        }
        let actual = self.crc.finish();
        match self.expected {
            Some(expected) if expected != actual => Err(ArchiveError::ChecksumMismatch {
                key: self.key.clone(),
                expected,
                actual,
            }),
            _ => Ok(()),
        }
    }

    /// The object's size and checksum, once every byte has been read.
    #[must_use]
    pub fn meta(&self) -> Option<ObjectMeta> {
        (self.read == self.len).then(|| ObjectMeta {
            size: self.len,
            checksum: self.crc.finish(),
        })
    }
}

impl Debug for SourceReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceReader")
            .field("key", &self.key)
            .field("len", &self.len)
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

/// An object store for archived segments.
///
/// Objects are immutable blobs addressed by [`ArchiveKey`]. Implementations
/// are `Send + Sync` and used as `Arc<dyn ArchiveStorage>`.
#[async_trait]
pub trait ArchiveStorage: Send + Sync + Debug + 'static {
    /// Stores the bytes of `source` under `key`. Once this returns `Ok`, the
    /// object is durable and every read returns exactly those bytes. If `key`
    /// already holds the same bytes (size and CRC-64/NVME), this succeeds and
    /// changes nothing; if it holds other bytes: `AlreadyExists`, and the old
    /// object is kept. A source that breaks its declared length or checksum
    /// is refused (`SourceLength`, `ChecksumMismatch`) and no object appears.
    async fn store(&self, key: &ArchiveKey, source: ObjectSource) -> ArchiveResult<ObjectMeta>;

    /// Bytes `range` of the object; `InvalidRange` unless
    /// `range.start <= range.end <= size`.
    async fn read_range(&self, key: &ArchiveKey, range: Range<u64>) -> ArchiveResult<Bytes>;

    /// The whole object as a stream of chunks, without holding it in memory.
    async fn read(&self, key: &ArchiveKey) -> ArchiveResult<ObjectStream>;

    /// The object's size and CRC-64/NVME; `NotFound` if there is none.
    async fn head(&self, key: &ArchiveKey) -> ArchiveResult<ObjectMeta>;

    /// Deletes the object under `key`; deleting a missing object succeeds.
    async fn delete(&self, key: &ArchiveKey) -> ArchiveResult<()>;

    /// Every object whose key is `prefix` followed by `/` and more parts
    /// (every object when `prefix` is `None`), in key order.
    async fn list(&self, prefix: Option<&ArchiveKey>) -> ArchiveResult<Vec<ListedObject>>;
}

/// Conveniences over [`ArchiveStorage`], for every implementation.
#[async_trait]
pub trait ArchiveStorageExt: ArchiveStorage {
    /// Stores bytes held in memory.
    async fn store_bytes(&self, key: &ArchiveKey, bytes: Bytes) -> ArchiveResult<ObjectMeta> {
        self.store(key, ObjectSource::from_bytes(bytes)).await
    }

    /// The whole object in one buffer: for small objects and tests.
    async fn read_all(&self, key: &ArchiveKey) -> ArchiveResult<Bytes> {
        let mut stream = self.read(key).await?;
        let mut out = Vec::new();
        while let Some(chunk) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
            out.extend_from_slice(&chunk?);
        }
        Ok(Bytes::from(out))
    }

    /// Whether an object exists under `key`.
    async fn exists(&self, key: &ArchiveKey) -> ArchiveResult<bool> {
        match self.head(key).await {
            Ok(_) => Ok(true),
            Err(ArchiveError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl<T: ArchiveStorage + ?Sized> ArchiveStorageExt for T {}

/// Checks `range` against an object of `size` bytes, as every backend must.
pub fn check_range(key: &ArchiveKey, range: &Range<u64>, size: u64) -> ArchiveResult<()> {
    if range.start <= range.end && range.end <= size {
        Ok(())
    } else {
        Err(ArchiveError::InvalidRange {
            key: key.clone(),
            start: range.start,
            end: range.end,
            size,
        })
    }
}

/// An in-memory [`ArchiveStorage`]: the reference implementation and a test double.
#[derive(Debug, Default)]
pub struct MemoryArchive {
    objects: Mutex<BTreeMap<ArchiveKey, (Bytes, ObjectMeta)>>,
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
        self.lock().len()
    }

    /// Whether no object is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<ArchiveKey, (Bytes, ObjectMeta)>> {
        self.objects.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, key: &ArchiveKey) -> ArchiveResult<(Bytes, ObjectMeta)> {
        self.lock()
            .get(key)
            .cloned()
            .ok_or_else(|| ArchiveError::NotFound { key: key.clone() })
    }
}

/// A stream of one chunk.
struct Once(Option<Bytes>);

impl Stream for Once {
    type Item = ArchiveResult<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(self.0.take().map(Ok))
    }
}

#[async_trait]
impl ArchiveStorage for MemoryArchive {
    async fn store(&self, key: &ArchiveKey, source: ObjectSource) -> ArchiveResult<ObjectMeta> {
        let mut reader = source.into_checked(key);
        let mut data = Vec::with_capacity(usize::try_from(reader.len().min(1 << 26)).unwrap_or(0));
        while let Some(chunk) = reader.next_chunk(1 << 20)? {
            data.extend_from_slice(&chunk);
        }
        let meta = reader.meta().expect("the reader reached its end");
        let mut objects = self.lock();
        match objects.get(key) {
            Some((_, existing)) if *existing == meta => Ok(meta),
            Some(_) => Err(ArchiveError::AlreadyExists { key: key.clone() }),
            None => {
                objects.insert(key.clone(), (Bytes::from(data), meta));
                Ok(meta)
            }
        }
    }

    async fn read_range(&self, key: &ArchiveKey, range: Range<u64>) -> ArchiveResult<Bytes> {
        let (data, meta) = self.get(key)?;
        check_range(key, &range, meta.size)?;
        // In range, so both ends fit in usize.
        Ok(data.slice(range.start as usize..range.end as usize))
    }

    async fn read(&self, key: &ArchiveKey) -> ArchiveResult<ObjectStream> {
        let (data, _) = self.get(key)?;
        Ok(Box::pin(Once(Some(data))))
    }

    async fn head(&self, key: &ArchiveKey) -> ArchiveResult<ObjectMeta> {
        Ok(self.get(key)?.1)
    }

    async fn delete(&self, key: &ArchiveKey) -> ArchiveResult<()> {
        self.lock().remove(key);
        Ok(())
    }

    async fn list(&self, prefix: Option<&ArchiveKey>) -> ArchiveResult<Vec<ListedObject>> {
        let under = prefix.map(|p| format!("{p}/"));
        Ok(self
            .lock()
            .iter()
            .filter(|(k, _)| under.as_deref().is_none_or(|u| k.as_str().starts_with(u)))
            .map(|(k, (_, meta))| ListedObject {
                key: k.clone(),
                size: meta.size,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[tokio::test]
    async fn memory_archive_passes_the_conformance_suite() {
        crate::conformance::archive::run_all(&MemoryArchive::new(), &Default::default()).await;
    }

    fn k() -> ArchiveKey {
        ArchiveKey::new("k").unwrap()
    }

    fn drain(mut r: SourceReader, max: usize) -> ArchiveResult<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(c) = r.next_chunk(max)? {
            assert!(c.len() <= max);
            out.extend_from_slice(&c);
        }
        assert_eq!(r.meta().map(|m| m.size), Some(out.len() as u64));
        Ok(out)
    }

    #[test]
    fn a_source_is_read_exactly_and_checked() {
        let data = b"0123456789".to_vec();
        let ok = ObjectSource::from_reader(std::io::Cursor::new(data.clone()), 10)
            .with_checksum(crc64_nvme(&data));
        assert_eq!(drain(ok.into_checked(&k()), 3).unwrap(), data);
        let short = ObjectSource::from_reader(std::io::Cursor::new(data.clone()), 11);
        assert!(matches!(
            drain(short.into_checked(&k()), 4),
            Err(ArchiveError::SourceLength {
                expected: 11,
                actual: 10,
                ..
            })
        ));
        let long = ObjectSource::from_reader(std::io::Cursor::new(data.clone()), 9);
        assert!(matches!(
            drain(long.into_checked(&k()), 100),
            Err(ArchiveError::SourceLength {
                expected: 9,
                actual: 10,
                ..
            })
        ));
        let lying = ObjectSource::from_reader(std::io::Cursor::new(data.clone()), 10).with_checksum(1);
        let mut r = lying.into_checked(&k());
        // The first chunks pass; the last is withheld once the checksum fails.
        assert_eq!(r.next_chunk(5).unwrap().unwrap().len(), 5);
        assert!(matches!(
            r.next_chunk(5),
            Err(ArchiveError::ChecksumMismatch { expected: 1, .. })
        ));
        let empty = ObjectSource::from_bytes(Bytes::new());
        assert_eq!(drain(empty.into_checked(&k()), 1).unwrap(), b"");
        let empty_lying = ObjectSource::from_reader(std::io::Cursor::new(vec![1u8]), 0);
        assert!(matches!(
            drain(empty_lying.into_checked(&k()), 1),
            Err(ArchiveError::SourceLength {
                expected: 0,
                actual: 1,
                ..
            })
        ));
    }

    #[test]
    fn a_file_source_starts_at_the_file_position() {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"headerbody").unwrap();
        f.seek(SeekFrom::Start(6)).unwrap();
        let src = ObjectSource::from_file(f).unwrap();
        assert_eq!(src.len(), 4);
        assert_eq!(drain(src.into_checked(&k()), 2).unwrap(), b"body");
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
