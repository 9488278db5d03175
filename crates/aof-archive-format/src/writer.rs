//! [`SeekableWriter`]: compresses a segment into an archive object as it is written.

use crate::FormatError;
use crate::table::{FrameEntry, SeekTable};
use aof_record::checksum::Crc64;
use std::io::{self, Write};
use zstd::zstd_safe::{self, CParameter};

/// Segment bytes per frame by default: 1 MiB.
pub const DEFAULT_FRAME_SIZE: usize = 1 << 20;

/// How an object is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterOptions {
    /// zstd level (`archive_compression_level`).
    pub level: i32,
    /// Segment bytes per frame; a ranged read fetches about this much
    /// compressed. At most [`crate::MAX_FRAME_SIZE`].
    pub frame_size: usize,
    /// Frames compressed at once on their own threads (1: on the caller's
    /// thread). Memory held is about `2 * workers * frame_size`.
    pub workers: usize,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            level: 3,
            frame_size: DEFAULT_FRAME_SIZE,
            workers: 1,
        }
    }
}

/// What a finished object holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSummary {
    /// Bytes of the object (frames and seek table).
    pub compressed_size: u64,
    /// CRC-64/NVME of the object.
    pub compressed_checksum: u64,
    /// Bytes of segment written in.
    pub uncompressed_size: u64,
    /// CRC-64/NVME of the segment bytes written in.
    pub uncompressed_checksum: u64,
    /// The seek table written at the end.
    pub table: SeekTable,
}

/// One worker: its zstd context and its output buffer, reused frame after frame.
struct Worker {
    input: Vec<u8>,
    output: Vec<u8>,
    compressor: zstd::bulk::Compressor<'static>,
}

/// Writes a segment as an archive object: independent zstd frames of
/// `frame_size` segment bytes each (content checksums on), then the seek
/// table in a skippable frame.
///
/// Memory is bounded by the options, whatever the segment's size.
///
/// ```
/// use aof_archive_format::{SeekableWriter, WriterOptions, decode_frame, SeekTable, Footer};
/// use std::io::Write;
/// let segment: Vec<u8> = (0..10_000u32).flat_map(|i| i.to_le_bytes()).collect();
/// let opts = WriterOptions { frame_size: 4096, ..WriterOptions::default() };
/// let mut w = SeekableWriter::new(Vec::new(), opts).unwrap();
/// w.write_all(&segment).unwrap();
/// let (object, summary) = w.finish().unwrap();
/// assert_eq!(summary.table.frames(), 10);
/// // The standard decoder restores the segment...
/// assert_eq!(zstd::decode_all(&object[..]).unwrap(), segment);
/// // ...and one frame is readable alone.
/// let table_len = Footer::decode(&object).unwrap().table_len();
/// let table = SeekTable::decode(&object[object.len() - table_len..], Some(object.len() as u64)).unwrap();
/// let f = table.frame_at(20_000).unwrap();
/// let bytes = decode_frame(&object[f.compressed.start as usize..f.compressed.end as usize], &f).unwrap();
/// assert_eq!(bytes, &segment[f.decompressed.start as usize..f.decompressed.end as usize]);
/// ```
pub struct SeekableWriter<W: Write> {
    inner: W,
    options: WriterOptions,
    workers: Vec<Worker>,
    /// Workers whose input is full, waiting for the batch to fill.
    filled: usize,
    entries: Vec<FrameEntry>,
    in_crc: Crc64,
    in_size: u64,
    out_crc: Crc64,
    out_size: u64,
}

impl<W: Write> SeekableWriter<W> {
    /// A writer into `inner`.
    pub fn new(inner: W, options: WriterOptions) -> Result<Self, FormatError> {
        if options.frame_size == 0
            || options.frame_size > crate::MAX_FRAME_SIZE as usize
            || options.workers == 0
        {
            return Err(FormatError::Compress {
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "frame_size must be 1..={} and workers at least 1, got {options:?}",
                        crate::MAX_FRAME_SIZE
                    ),
                ),
            });
        }
        let workers = (0..options.workers)
            .map(|_| {
                let mut compressor = zstd::bulk::Compressor::new(options.level)
                    .map_err(|source| FormatError::Compress { source })?;
                compressor
                    .set_parameter(CParameter::ChecksumFlag(true))
                    .and_then(|()| compressor.set_parameter(CParameter::ContentSizeFlag(true)))
                    .map_err(|source| FormatError::Compress { source })?;
                Ok(Worker {
                    input: Vec::with_capacity(options.frame_size),
                    output: Vec::with_capacity(zstd_safe::compress_bound(options.frame_size)),
                    compressor,
                })
            })
            .collect::<Result<_, FormatError>>()?;
        Ok(Self {
            inner,
            options,
            workers,
            filled: 0,
            entries: Vec::new(),
            in_crc: Crc64::new(),
            in_size: 0,
            out_crc: Crc64::new(),
            out_size: 0,
        })
    }

    /// Compresses every filled input, in parallel when there are several,
    /// and writes the frames in order.
    fn flush_batch(&mut self) -> io::Result<()> {
        let n = self.filled;
        if n == 0 {
            return Ok(());
        }
        let compress = |w: &mut Worker| -> io::Result<()> {
            w.output.clear();
            w.compressor
                .compress_to_buffer(&w.input, &mut w.output)
                .map(|_| ())
        };
        if n == 1 {
            compress(&mut self.workers[0])?;
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = self.workers[..n]
                    .iter_mut()
                    .map(|w| s.spawn(move || compress(w)))
                    .collect();
                // The scope joins any handle left after an error.
                handles
                    .into_iter()
                    .try_for_each(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            })?;
        }
        for w in &mut self.workers[..n] {
            let out = &w.output;
            // A frame with the checksum flag ends in its 4-byte content
            // checksum: the low 32 bits of XXH64, as the table wants.
            let tail = out
                .len()
                .checked_sub(4)
                .ok_or_else(|| io::Error::other("zstd wrote a frame under 4 bytes"))?;
            let checksum = u32::from_le_bytes([out[tail], out[tail + 1], out[tail + 2], out[tail + 3]]);
            self.inner.write_all(out)?;
            self.out_crc.update(out);
            self.out_size += out.len() as u64;
            self.entries.push(FrameEntry {
                compressed_size: u32::try_from(out.len()).map_err(io::Error::other)?,
                decompressed_size: w.input.len() as u32,
                checksum: Some(checksum),
            });
            if self.entries.len() > crate::MAX_FRAMES as usize {
                return Err(io::Error::other(format!(
                    "an object holds at most {} frames; raise frame_size",
                    crate::MAX_FRAMES
                )));
            }
            w.input.clear();
        }
        self.filled = 0;
        Ok(())
    }

    /// Writes the last frame and the seek table; returns the inner writer
    /// (flushed) and what the object holds.
    pub fn finish(mut self) -> io::Result<(W, ObjectSummary)> {
        if self.filled < self.workers.len() && !self.workers[self.filled].input.is_empty() {
            self.filled += 1;
        }
        self.flush_batch()?;
        let table = SeekTable::new(std::mem::take(&mut self.entries), true);
        let encoded = table.encode();
        self.inner.write_all(&encoded)?;
        self.out_crc.update(&encoded);
        self.out_size += encoded.len() as u64;
        self.inner.flush()?;
        let summary = ObjectSummary {
            compressed_size: self.out_size,
            compressed_checksum: self.out_crc.finish(),
            uncompressed_size: self.in_size,
            uncompressed_checksum: self.in_crc.finish(),
            table,
        };
        Ok((self.inner, summary))
    }
}

impl<W: Write> Write for SeekableWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let frame_size = self.options.frame_size;
        let w = &mut self.workers[self.filled];
        let n = buf.len().min(frame_size - w.input.len());
        w.input.extend_from_slice(&buf[..n]);
        self.in_crc.update(&buf[..n]);
        self.in_size += n as u64;
        if w.input.len() == frame_size {
            self.filled += 1;
            if self.filled == self.workers.len() {
                self.flush_batch()?;
            }
        }
        Ok(n)
    }

    /// Flushes the inner writer only: a partial frame stays buffered, since
    /// every frame but the last holds exactly `frame_size` bytes.
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write> std::fmt::Debug for SeekableWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeekableWriter")
            .field("options", &self.options)
            .field("frames", &self.entries.len())
            .field("in_size", &self.in_size)
            .finish_non_exhaustive()
    }
}
