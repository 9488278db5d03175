//! [`ArchiveFormatExt`]: archive and read segments through any [`ArchiveStorage`].

use crate::FormatError;
use crate::reader::{RestoreError, decode_frame, restore};
use crate::table::{FOOTER_LEN, Footer, FrameLocation, SeekTable};
use crate::writer::{ObjectSummary, SeekableWriter, WriterOptions};
use aof_record::archive::{ArchiveError, ArchiveKey, ArchiveStorage, ObjectMeta, ObjectSource};
use async_trait::async_trait;
use bytes::Bytes;
use std::io::{BufReader, BufWriter, Seek};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why archiving or reading a segment failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SegmentArchiveError {
    /// The storage failed.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// The object is not a valid archive object.
    #[error("archive object {key}: {source}")]
    Format {
        /// The object.
        key: ArchiveKey,
        /// What is wrong.
        #[source]
        source: FormatError,
    },
    /// Restoring the whole segment failed.
    #[error("archive object {key}: {source}")]
    Restore {
        /// The object.
        key: ArchiveKey,
        /// What failed.
        #[source]
        source: RestoreError,
    },
    /// A local file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> SegmentArchiveError + '_ {
    move |source| SegmentArchiveError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Compresses the segment file at `segment` into a temporary file in
/// `scratch` (blocking; memory bounded by `options`), returning the file
/// positioned at its start and what it holds.
pub fn compress_file(
    segment: &Path,
    scratch: &Path,
    options: WriterOptions,
) -> Result<(std::fs::File, ObjectSummary), SegmentArchiveError> {
    let input = std::fs::File::open(segment).map_err(io_at(segment))?;
    let tmp = tempfile::tempfile_in(scratch).map_err(io_at(scratch))?;
    let mut w = SeekableWriter::new(BufWriter::with_capacity(1 << 20, tmp), options).map_err(|source| {
        SegmentArchiveError::Io {
            path: segment.to_owned(),
            source: std::io::Error::other(source),
        }
    })?;
    std::io::copy(&mut BufReader::with_capacity(1 << 20, input), &mut w).map_err(io_at(segment))?;
    let (buf, summary) = w.finish().map_err(io_at(scratch))?;
    let mut file = buf.into_inner().map_err(|e| io_at(scratch)(e.into_error()))?;
    file.rewind().map_err(io_at(scratch))?;
    Ok((file, summary))
}

/// Archiving and reading segments in the archive object format, over any
/// [`ArchiveStorage`].
#[async_trait]
pub trait ArchiveFormatExt: ArchiveStorage {
    /// Compresses the segment file at `segment` (through a temporary file in
    /// `scratch`) and stores it under `key`, with its checksum declared so
    /// the bytes are checked from compression to storage.
    async fn archive_segment(
        &self,
        key: &ArchiveKey,
        segment: &Path,
        scratch: &Path,
        options: WriterOptions,
    ) -> Result<ObjectSummary, SegmentArchiveError> {
        let (segment_path, scratch_path) = (segment.to_owned(), scratch.to_owned());
        let (file, summary) =
            tokio::task::spawn_blocking(move || compress_file(&segment_path, &scratch_path, options))
                .await
                .map_err(|e| SegmentArchiveError::Io {
                    path: segment.to_owned(),
                    source: std::io::Error::other(e),
                })??;
        let source = ObjectSource::from_file(file)
            .map_err(io_at(scratch))?
            .with_checksum(summary.compressed_checksum);
        let meta = self.store(key, source).await?;
        debug_assert_eq!(meta.size, summary.compressed_size);
        Ok(summary)
    }

    /// Reads and checks the seek table of the object under `key`: two
    /// ranged reads (footer, then table). Engines cache the result.
    async fn read_seek_table(
        &self,
        key: &ArchiveKey,
    ) -> Result<(SeekTable, ObjectMeta), SegmentArchiveError> {
        let meta = self.head(key).await?;
        let format = |source| SegmentArchiveError::Format {
            key: key.clone(),
            source,
        };
        if meta.size < FOOTER_LEN as u64 {
            return Err(format(FormatError::TooShort { len: meta.size }));
        }
        let footer_bytes = self
            .read_range(key, meta.size - FOOTER_LEN as u64..meta.size)
            .await?;
        let footer = Footer::decode(&footer_bytes).map_err(format)?;
        let table_len = footer.table_len() as u64;
        if table_len > meta.size {
            return Err(format(FormatError::SizeMismatch {
                table: table_len,
                object: meta.size,
            }));
        }
        let bytes = self.read_range(key, meta.size - table_len..meta.size).await?;
        let table = SeekTable::decode(&bytes, Some(meta.size)).map_err(format)?;
        Ok((table, meta))
    }

    /// Fetches and decompresses one frame: one ranged read of its bytes.
    async fn read_frame(
        &self,
        key: &ArchiveKey,
        frame: &FrameLocation,
    ) -> Result<Bytes, SegmentArchiveError> {
        let compressed = self.read_range(key, frame.compressed.clone()).await?;
        let frame = frame.clone();
        let key2 = key.clone();
        tokio::task::spawn_blocking(move || decode_frame(&compressed, &frame))
            .await
            .map_err(|e| SegmentArchiveError::Io {
                path: PathBuf::from(key2.as_str()),
                source: std::io::Error::other(e),
            })?
            .map(Bytes::from)
            .map_err(|source| SegmentArchiveError::Format {
                key: key.clone(),
                source,
            })
    }

    /// Restores the whole segment under `key` into the file at `dest`
    /// (created or truncated, then synced), streaming, and checks its
    /// CRC-64/NVME against `expected_checksum` (the entry's
    /// `uncompressed_checksum`). Returns the segment's size and checksum.
    async fn restore_segment(
        &self,
        key: &ArchiveKey,
        dest: &Path,
        expected_checksum: Option<u64>,
    ) -> Result<(u64, u64), SegmentArchiveError> {
        let mut stream = self.read(key).await?;
        let file = std::fs::File::create(dest).map_err(io_at(dest))?;
        // The stream feeds a blocking decompressor through a small bounded
        // channel: at most a few chunks are held.
        let (tx, rx) = std::sync::mpsc::sync_channel::<Bytes>(4);
        let worker = tokio::task::spawn_blocking(move || {
            let reader = ChannelReader {
                rx,
                current: Bytes::new(),
            };
            let mut out = BufWriter::with_capacity(1 << 20, file);
            let r = restore(reader, &mut out, expected_checksum)?;
            let file = out.into_inner().map_err(|e| RestoreError::Io(e.into_error()))?;
            file.sync_all().map_err(RestoreError::Io)?;
            Ok::<_, RestoreError>(r)
        });
        let mut failed = None;
        while let Some(chunk) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
            match chunk {
                Ok(c) => {
                    let tx = tx.clone();
                    // A send blocks while the decompressor is behind.
                    let sent = tokio::task::spawn_blocking(move || tx.send(c).is_ok())
                        .await
                        .unwrap_or(false);
                    if !sent {
                        break;
                    }
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        drop(tx);
        let result = worker.await.map_err(|e| SegmentArchiveError::Io {
            path: dest.to_owned(),
            source: std::io::Error::other(e),
        })?;
        if let Some(e) = failed {
            return Err(e.into());
        }
        result.map_err(|source| SegmentArchiveError::Restore {
            key: key.clone(),
            source,
        })
    }
}

impl<T: ArchiveStorage + ?Sized> ArchiveFormatExt for T {}

/// Bytes from a channel as a reader; ends when the sender is dropped.
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.recv() {
                Ok(b) => self.current = b,
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}
